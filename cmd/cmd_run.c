/* imgrecon run: argument parsing and wiring for the daemon (reconcile/daemon/rec_daemon.c). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "cmd_session.h"
#include "rec_daemon.h"
#include "rec_log.h"

#define DEFAULT_CONFIG "/etc/imgrecon/config.yaml"

enum { OPT_INTERVAL = CMD_OPT_LOCAL, OPT_ONCE, OPT_METRICS_ALLOW_REMOTE };

static const struct option run_options[] = {
    {"interval", required_argument, NULL, OPT_INTERVAL},
    {"once", no_argument, NULL, OPT_ONCE},
    {"metrics-allow-remote", no_argument, NULL, OPT_METRICS_ALLOW_REMOTE},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: imgrecon run [-f PATH]... [--interval DUR] [--once] [OPTIONS]\n\n"
                 "Reconciles continuously: a cycle every interval (config `interval`, default 5m,\n"
                 "with jitter), at once when a manifest changes, and on SIGHUP (reload).\n"
                 "SIGTERM/SIGINT finish the call in flight and exit 0.\n\n"
                 "  --interval DUR           time between cycles (1s to 24h), e.g. 30s, 5m, 1h\n"
                 "  --once                   run one cycle and exit (1 when it did not converge)\n"
                 "  --metrics-allow-remote   serve metrics_listen even when it is not loopback\n");
    cmd_print_common_help(out, CMD_USES_RUN);
}

/* Fills an initialised cfg from the config file and the flags; load_config clears it when this
 * fails. */
static int fill_config(const cmd_ctx *ctx, spec_config *cfg, spec_diags *diags)
{
    int rc;
    const char *path = ctx->config_path;
    if (path == NULL && access(DEFAULT_CONFIG, F_OK) == 0)
        path = DEFAULT_CONFIG;
    cfg->allow_insecure_endpoint = ctx->allow_insecure; /* the file cannot undo the flag */
    if (path != NULL && (rc = spec_config_load(cfg, path, diags)) < 0)
        return rc;
    if ((rc = cmd_apply_endpoint(ctx, cfg, diags)) < 0)
        return rc;
    if (ctx->profile != NULL) {
        free(cfg->profile);
        if ((cfg->profile = strdup(ctx->profile)) == NULL)
            return -ENOMEM;
    }
    if (ctx->state_dir != NULL) {
        free(cfg->state_dir);
        if ((cfg->state_dir = strdup(ctx->state_dir)) == NULL)
            return -ENOMEM;
    }
    if (ctx->log_format != NULL)
        cfg->log_format = strcmp(ctx->log_format, "json") == 0 ? SPEC_LOG_JSON : SPEC_LOG_TEXT;
    for (size_t i = 0; i < ctx->n_rates; i++) {
        rc = spec_config_set_rate(cfg, ctx->rates[i]);
        if (rc < 0) {
            char msg[512];
            cmd_rate_message(ctx->rates[i], rc, msg, sizeof(msg));
            if (rc != -ENOMEM)
                spec_diags_add(diags, "--rate-limit", 0, 0, "%s", msg);
            return rc;
        }
    }
    if (ctx->allow_empty != NULL && (rc = spec_config_set_allow_empty(cfg, ctx->allow_empty)) < 0) {
        if (rc != -ENOMEM)
            spec_diags_add(diags, "--allow-empty", 0, 0,
                           "'%s': expected true, false or region ids such as cn-hangzhou",
                           ctx->allow_empty);
        return rc;
    }
    return 0;
}

/* Builds a config as cmd_load_config does (file, then flags), collecting problems in diags so
 * that the daemon logs them; called at start and on every SIGHUP. */
static int load_config(void *ud, spec_config *cfg, spec_diags *diags)
{
    const cmd_ctx *ctx = ud;
    int rc = spec_config_init(cfg);
    if (rc < 0)
        return rc;
    rc = fill_config(ctx, cfg, diags);
    if (rc < 0)
        spec_config_clear(cfg);
    return rc;
}

typedef struct run_args {
    const cmd_ctx *ctx;
    rec_daemon_opts *o;
    bool unknown; /* an option run does not know: usage follows */
} run_args;

static int run_option(void *ud, int opt, const char *arg)
{
    run_args *a = ud;
    switch (opt) {
    case OPT_INTERVAL:
        if (spec_parse_duration(arg, &a->o->interval_ms) < 0) {
            cmd_error(a->ctx, "--interval '%s': expected a duration such as 30s, 5m or 1h", arg);
            return -EINVAL;
        }
        if (a->o->interval_ms < SPEC_INTERVAL_MIN_MS || a->o->interval_ms > SPEC_INTERVAL_MAX_MS) {
            cmd_error(a->ctx, "--interval '%s': must be between 1s and 24h (as the config key)",
                      arg);
            return -EINVAL;
        }
        return 0;
    case OPT_ONCE:
        a->o->once = true;
        return 0;
    case OPT_METRICS_ALLOW_REMOTE:
        a->o->metrics_allow_remote = true;
        return 0;
    default:
        a->unknown = true;
        return -EINVAL;
    }
}

int cmd_run(cmd_ctx *ctx, int argc, char **argv)
{
    rec_daemon_opts o;
    memset(&o, 0, sizeof(o));
    run_args args = {.ctx = ctx, .o = &o};
    bool help;
    int rc =
        cmd_parse_options(ctx, argc, argv, run_options,
                          sizeof(run_options) / sizeof(run_options[0]), run_option, &args, &help);
    if (rc == 0 && help) {
        usage(stdout);
        return 0;
    }
    if (rc < 0) {
        if (args.unknown)
            usage(stderr);
        return 1;
    }
    if (optind < argc) {
        cmd_error(ctx, "run: unexpected argument '%s'", argv[optind]);
        return 1;
    }

    rec_log *log;
    rec_log_opts lo = {
        .fd = STDERR_FILENO,
        .json = ctx->log_format != NULL && strcmp(ctx->log_format, "json") == 0,
        .journal = rec_log_journal_detect(STDERR_FILENO),
        .level = ctx->quiet         ? REC_LOG_ERROR
                 : ctx->verbose > 0 ? REC_LOG_DEBUG
                                    : REC_LOG_INFO,
    };
    if (rec_log_new(&lo, &log) < 0) {
        cmd_error(ctx, "out of memory");
        return 1;
    }
    /* A closed metrics or API connection must not kill the daemon. */
    (void)signal(SIGPIPE, SIG_IGN);
    o.load_config = load_config;
    o.load_ud = ctx;
    o.manifest_paths = ctx->files;
    o.n_manifest_paths = ctx->n_files;
    o.state_dir_explicit = ctx->state_dir != NULL;
    o.log = log;
    rc = rec_daemon_run(&o);
    rec_log_free(log);
    return rc;
}
