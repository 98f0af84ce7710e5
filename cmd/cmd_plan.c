/* imgrecon plan: observe, diff and show what apply would change (cmd/README.md). Argument
 * parsing and wiring only; the cycle lives in reconcile/. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "cmd_session.h"
#include "prov_cleanup.h"
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

/* Saves the plan with the policy and places it was made with, and the account it was made
 * against, so that `apply FILE` needs no other flag and refuses settings or credentials that
 * disagree. */
static int save_plan(cmd_ctx *ctx, const rec_setup *setup, const rec_plan *plan, const char *out)
{
    size_t n_paths;
    const char *const *paths = cmd_manifest_paths(ctx, &n_paths);
    rec_plan_policy pol;
    int rc = rec_plan_policy_init(&pol, &ctx->cfg, paths, n_paths, setup->state_dir,
                                  ctx->config_used, rec_setup_account_id(setup));
    if (rc < 0)
        return rc;
    rc = rec_plan_save(plan, &pol, out);
    rec_plan_policy_clear(&pol);
    return rc;
}

typedef struct plan_args {
    bool json, detailed;
    const char *out;
} plan_args;

static int plan_option(void *ud, int opt, const char *arg)
{
    plan_args *a = ud;
    if (opt == OPT_JSON)
        a->json = true;
    else if (opt == OPT_OUT)
        a->out = arg;
    else if (opt == OPT_DETAILED)
        a->detailed = true;
    else
        return -EINVAL;
    return 0;
}

/* Shows the plan the cycle made (and saves it with --out); returns the exit status. */
static int show_plan(cmd_ctx *ctx, const plan_args *a, const rec_setup *setup, const rec_plan *plan)
{
    int exit_code = 0;
    bool color = !ctx->no_color && isatty(STDOUT_FILENO);
    if (a->json) {
        _cleanup_free_ char *doc = rec_render_json(plan, true);
        if (doc != NULL)
            puts(doc);
        else
            cmd_error(ctx, "out of memory");
    } else if (!ctx->quiet) {
        (void)rec_render_text(plan, stdout, color ? REC_RENDER_COLOR : 0);
    }
    if (a->out != NULL) {
        int src = save_plan(ctx, setup, plan, a->out);
        if (src < 0) {
            cmd_error(ctx, "cannot save the plan to %s: %s", a->out, strerror(-src));
            exit_code = 1;
        } else if (!a->json && !ctx->quiet) {
            printf("\nSaved the plan to %s. To perform exactly these actions, run:\n"
                   "    imgrecon apply ",
                   a->out);
            print_shell_word(stdout, a->out);
            putchar('\n');
        }
    }
    if (exit_code == 0 && a->detailed && rec_plan_n_changes(plan) > 0)
        exit_code = 2;
    if (ctx->verbose > 0) {
        _cleanup_free_ char *calls = rec_setup_calls_summary(setup);
        if (calls != NULL)
            cmd_note(ctx, "%s", calls);
    }
    return exit_code;
}

int cmd_plan(cmd_ctx *ctx, int argc, char **argv)
{
    static const struct option extra[] = {
        {"json", no_argument, NULL, OPT_JSON},
        {"out", required_argument, NULL, OPT_OUT},
        {"detailed-exitcode", no_argument, NULL, OPT_DETAILED},
    };
    plan_args a = {0};
    const cmd_args args = {"plan",      usage, extra, sizeof(extra) / sizeof(extra[0]),
                           plan_option, &a,    0};
    cmd_args_result parsed = cmd_parse_args(ctx, argc, argv, &args);
    if (parsed != CMD_ARGS_GO)
        return parsed == CMD_ARGS_HELP ? 0 : 1;
    cmd_session s;
    if (cmd_load_config(ctx) < 0)
        return 1;
    /* On a terminal, a wait for the rate limit is said while it lasts (cleared before output). */
    ctx->wait_live = isatty(STDERR_FILENO) && !ctx->quiet && !cmd_log_json(ctx);
    if (cmd_session_open(&s, ctx,
                         &(cmd_session_opts){.load_manifests = true, .on_wait = cmd_wait_line}) < 0)
        return 1;

    int exit_code = 1;
    rec_cycle_opts co = {.desired = s.desired, .execute = false};
    rec_cycle_result *res = NULL;
    int rc = rec_setup_run_cycle(&s.loop, s.setup, &co, &res);
    cmd_wait_clear(ctx);
    if (rc < 0)
        cmd_error(ctx, "plan failed: %s", strerror(-rc));
    else if (res->rc < 0)
        cmd_error(ctx, "%s", res->error ? res->error : strerror(-res->rc));
    else
        exit_code = show_plan(ctx, &a, s.setup, res->plan);
    rec_cycle_result_free(res);
    (void)cmd_session_close(&s);
    return exit_code;
}
