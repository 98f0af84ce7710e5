/* The session bracket shared by plan, apply and api (see cmd_session.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_session.h"
#include "prov_cleanup.h"

/* Called by each API command's entry point instead of its own getopt loop, so every command
 * treats help, common options and usage errors alike. */
int cmd_parse_options(cmd_ctx *ctx, int argc, char **argv, const struct option *extra,
                      size_t n_extra, cmd_option_fn on_option, void *ud, bool *ret_help)
{
    _cleanup_free_ struct option *opts = cmd_options(extra, n_extra);
    if (opts == NULL) {
        cmd_error(ctx, "out of memory");
        return -ENOMEM;
    }
    *ret_help = false;
    int opt, rc = 0;
    while ((opt = getopt_long(argc, argv, CMD_COMMON_SHORTOPTS, opts, NULL)) != -1) {
        if (opt == 'h') {
            *ret_help = true;
            return 0;
        }
        int h = cmd_common_option(ctx, opt, optarg);
        if (h == -ENOENT)
            h = on_option != NULL ? on_option(ud, opt, optarg) : -EINVAL;
        if (h < 0)
            rc = -EINVAL;
    }
    return rc;
}

cmd_args_result cmd_parse_args(cmd_ctx *ctx, int argc, char **argv, const cmd_args *a)
{
    bool help = false;
    int rc = cmd_parse_options(ctx, argc, argv, a->extra, a->n_extra, a->on_option, a->ud, &help);
    if (rc == -ENOMEM)
        return CMD_ARGS_ERROR; /* said by cmd_parse_options */
    if (help) {
        a->usage(stdout);
        return CMD_ARGS_HELP;
    }
    if (rc == 0 && (size_t)(argc - optind) > a->max_operands) {
        cmd_error(ctx, "%s: unexpected argument '%s'", a->name, argv[optind + a->max_operands]);
        rc = -EINVAL;
    }
    if (rc < 0) {
        a->usage(stderr);
        return CMD_ARGS_ERROR;
    }
    return CMD_ARGS_GO;
}

/* Loads the desired state named by opts (or the -f/config manifests); prints diagnostics. */
static int load_manifests(cmd_session *s, const cmd_session_opts *opts)
{
    size_t n = opts->n_paths;
    const char *const *paths = opts->paths;
    if (paths == NULL)
        paths = cmd_manifest_paths(s->ctx, &n);
    spec_diags diags;
    spec_diags_init(&diags);
    int rc = spec_load(paths, n, &s->desired, &diags);
    cmd_print_diags(s->ctx, &diags, false);
    spec_diags_clear(&diags);
    return rc;
}

int cmd_session_open(cmd_session *s, cmd_ctx *ctx, const cmd_session_opts *opts)
{
    memset(s, 0, sizeof(*s));
    s->ctx = ctx;
    int rc = opts->load_manifests ? load_manifests(s, opts) : 0;
    if (rc < 0)
        return rc;
    if (uv_loop_init(&s->loop) < 0) {
        cmd_error(ctx, "cannot create the event loop");
        (void)cmd_session_close(s);
        return -ENOMEM;
    }
    s->loop_open = true;
    _cleanup_free_ char *err = NULL;
    rec_setup_opts so = {
        .state_dir_explicit = ctx->state_dir != NULL || opts->state_dir_explicit,
        .method = opts->method,
        .on_call = opts->on_call,
        .on_wait = opts->on_wait,
        .on_cred_error = cmd_cred_warning,
        .ud = ctx,
    };
    rc = rec_setup_new(&s->loop, &ctx->cfg, &so, &s->setup, &err);
    if (rc < 0) {
        cmd_error(ctx, "%s", err ? err : "setup failed");
        (void)cmd_session_close(s);
        return rc;
    }
    if (s->setup->note != NULL)
        cmd_note(ctx, "%s", s->setup->note);
    return 0;
}

int cmd_session_close(cmd_session *s)
{
    int rc = 0;
    rec_setup_close(s->setup, NULL, NULL);
    s->setup = NULL;
    if (s->loop_open) {
        (void)uv_run(&s->loop, UV_RUN_DEFAULT);
        if (uv_loop_close(&s->loop) != 0) {
            cmd_error(s->ctx, "internal error: event loop handles left open");
            rc = -EBUSY;
        }
        s->loop_open = false;
    }
    spec_set_free(s->desired);
    s->desired = NULL;
    return rc;
}
