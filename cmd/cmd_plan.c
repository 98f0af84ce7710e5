/* imgrecon plan: observe, diff and show what apply would change (cmd/README.md). Argument
 * parsing and wiring only; the cycle lives in reconcile/. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "rec_cycle.h"
#include "rec_plan.h"
#include "rec_planfile.h"
#include "rec_render.h"
#include "rec_setup.h"
#include "spec.h"

enum { OPT_JSON = CMD_OPT_LOCAL, OPT_OUT, OPT_DETAILED };

static void usage(FILE *out)
{
    fprintf(out, "usage: imgrecon plan [-f PATH]... [--json] [--out FILE] [--detailed-exitcode]\n\n"
                 "Reads the account and shows what apply would change. Changes nothing.\n\n"
                 "  --json               the plan as versioned JSON (reconcile/plan/PLAN-JSON.md)\n"
                 "  --out FILE           also save the plan for 'imgrecon apply FILE'\n"
                 "  --detailed-exitcode  exit 2 when there are changes (0 none, 1 error)\n");
    cmd_print_common_help(out, CMD_USES_PLAN);
}

/* Prints s so that a shell reads it back as one word (the apply hint must work as printed):
 * as is when it holds only safe characters, else in single quotes. */
static void print_shell_word(FILE *f, const char *s)
{
    if (*s != '\0' && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                "_./-+:=@%,") == strlen(s)) {
        fputs(s[0] == '-' ? "./" : "", f); /* never read as an option */
        fputs(s, f);
        return;
    }
    fputs(s[0] == '-' ? "'./" : "'", f);
    for (; *s; s++) {
        if (*s == '\'')
            fputs("'\\''", f);
        else
            fputc(*s, f);
    }
    fputc('\'', f);
}

/* Saves the plan with the policy and places it was made with, so that `apply FILE` needs no
 * other flag and refuses settings that disagree. */
static int save_plan(cmd_ctx *ctx, const rec_setup *setup, const rec_plan *plan, const char *out)
{
    size_t n_paths;
    const char *const *paths = cmd_manifest_paths(ctx, &n_paths);
    rec_plan_policy pol;
    int rc =
        rec_plan_policy_init(&pol, &ctx->cfg, paths, n_paths, setup->state_dir, ctx->config_used);
    if (rc < 0)
        return rc;
    rc = rec_plan_save(plan, &pol, out);
    rec_plan_policy_clear(&pol);
    return rc;
}

int cmd_plan(cmd_ctx *ctx, int argc, char **argv)
{
    static const struct option extra[] = {
        {"json", no_argument, NULL, OPT_JSON},
        {"out", required_argument, NULL, OPT_OUT},
        {"detailed-exitcode", no_argument, NULL, OPT_DETAILED},
    };
    bool json = false, detailed = false;
    const char *out = NULL;
    struct option *opts = cmd_options(extra, sizeof(extra) / sizeof(extra[0]));
    if (opts == NULL) {
        cmd_error(ctx, "out of memory");
        return 1;
    }
    int opt, bad = 0;
    while ((opt = getopt_long(argc, argv, CMD_COMMON_SHORTOPTS, opts, NULL)) != -1) {
        if (opt == 'h') {
            free(opts);
            usage(stdout);
            return 0;
        }
        int h = cmd_common_option(ctx, opt, optarg);
        if (h < 0)
            bad = 1;
        if (h != 0)
            continue;
        if (opt == OPT_JSON)
            json = true;
        else if (opt == OPT_OUT)
            out = optarg;
        else if (opt == OPT_DETAILED)
            detailed = true;
        else
            bad = 1;
    }
    free(opts);
    if (bad || optind < argc) {
        if (optind < argc)
            cmd_error(ctx, "plan: unexpected argument '%s'", argv[optind]);
        usage(stderr);
        return 1;
    }
    if (cmd_load_config(ctx) < 0)
        return 1;

    size_t n_paths;
    const char *const *paths = cmd_manifest_paths(ctx, &n_paths);
    spec_diags diags;
    spec_diags_init(&diags);
    spec_set *desired = NULL;
    int rc = spec_load(paths, n_paths, &desired, &diags);
    spec_diags_print(&diags, stderr);
    spec_diags_free(&diags);
    if (rc < 0)
        return 1;

    uv_loop_t loop;
    if (uv_loop_init(&loop) < 0) {
        spec_set_free(desired);
        cmd_error(ctx, "cannot create the event loop");
        return 1;
    }
    int exit_code = 1;
    rec_setup setup;
    char *err = NULL;
    rec_setup_opts so = {.state_dir_explicit = ctx->state_dir != NULL,
                         .on_cred_error = cmd_cred_warning,
                         .ud = ctx};
    rc = rec_setup_init(&loop, &ctx->cfg, &so, &setup, &err);
    if (rc < 0) {
        cmd_error(ctx, "%s", err ? err : "setup failed");
        free(err);
        goto out_loop;
    }
    if (setup.note != NULL)
        fprintf(stderr, "imgrecon: %s\n", setup.note);

    rec_cycle_opts co = {.desired = desired, .execute = false};
    rec_cycle_result *res = NULL;
    rc = rec_setup_run_cycle(&loop, &setup, &co, &res);
    if (rc < 0) {
        cmd_error(ctx, "plan failed: %s", strerror(-rc));
    } else if (res->rc < 0) {
        cmd_error(ctx, "%s", res->error ? res->error : strerror(-res->rc));
    } else {
        bool color = !ctx->no_color && isatty(STDOUT_FILENO);
        if (json) {
            char *doc = rec_render_json(res->plan, true);
            if (doc != NULL) {
                puts(doc);
                free(doc);
            } else {
                cmd_error(ctx, "out of memory");
            }
        } else if (!ctx->quiet) {
            (void)rec_render_text(res->plan, stdout, color ? REC_RENDER_COLOR : 0);
        }
        exit_code = 0;
        if (out != NULL) {
            int src = save_plan(ctx, &setup, res->plan, out);
            if (src < 0) {
                cmd_error(ctx, "cannot save the plan to %s: %s", out, strerror(-src));
                exit_code = 1;
            } else if (!json && !ctx->quiet) {
                printf("\nSaved the plan to %s. To perform exactly these actions, run:\n"
                       "    imgrecon apply ",
                       out);
                print_shell_word(stdout, out);
                putchar('\n');
            }
        }
        if (exit_code == 0 && detailed && rec_plan_n_changes(res->plan) > 0)
            exit_code = 2;
        if (ctx->verbose > 0) {
            char *calls = rec_setup_calls_summary(&setup);
            if (calls != NULL)
                fprintf(stderr, "imgrecon: %s\n", calls);
            free(calls);
        }
    }
    rec_cycle_result_free(res);
    rec_setup_close(&setup);
    (void)uv_run(&loop, UV_RUN_DEFAULT);
    rec_setup_free(&setup);
out_loop:
    if (uv_loop_close(&loop) != 0)
        cmd_error(ctx, "internal error: event loop handles left open");
    spec_set_free(desired);
    return exit_code;
}
