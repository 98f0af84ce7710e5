/* imgrecon apply: observe, show the plan, ask, then execute it paced (cmd/README.md). Argument
 * parsing and wiring only; the cycle, executor and progress live in reconcile/. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "rec_cycle.h"
#include "rec_lock.h"
#include "rec_plan.h"
#include "rec_planfile.h"
#include "rec_progress.h"
#include "rec_render.h"
#include "rec_setup.h"
#include "spec.h"

enum { OPT_AUTO_APPROVE = CMD_OPT_LOCAL };

typedef struct apply_ui {
    cmd_ctx *ctx;
    bool auto_approve;
    bool color;
    bool stdin_tty;
    bool refused_no_tty;
    rec_progress *progress;
} apply_ui;

static void usage(FILE *out)
{
    fprintf(out, "usage: imgrecon apply [-f PATH]... [--auto-approve] [PLANFILE]\n\n"
                 "Makes the account match the manifests. With PLANFILE (from plan --out) it\n"
                 "uses the settings the plan was made with (no other flag needed), re-reads the\n"
                 "account, refuses when anything the saved steps depend on changed or when the\n"
                 "settings given disagree, runs only the saved steps, and does not ask.\n\n"
                 "  --auto-approve       do not ask for confirmation\n");
    cmd_print_common_help(out, CMD_USES_APPLY);
}

/* Shows the plan and asks, as Terraform does; only "yes" proceeds. */
static bool confirm(void *ud, const rec_plan *plan)
{
    apply_ui *ui = ud;
    if (!ui->ctx->quiet)
        (void)rec_render_text(plan, stdout, ui->color ? REC_RENDER_COLOR : 0);
    if (rec_plan_n_changes(plan) == 0 || ui->auto_approve)
        return true;
    if (!ui->stdin_tty) {
        ui->refused_no_tty = true;
        return false;
    }
    printf("\nDo you want to perform these actions? Only 'yes' will be accepted: ");
    fflush(stdout);
    char line[64];
    if (fgets(line, sizeof(line), stdin) == NULL)
        return false;
    line[strcspn(line, "\r\n")] = '\0';
    return strcmp(line, "yes") == 0;
}

static void on_event(void *ud, const rec_event *ev)
{
    apply_ui *ui = ud;
    if (!ui->ctx->quiet || ev->kind == REC_EV_STEP_FAILED)
        rec_progress_event(ui->progress, ev);
}

/* True when both paths name the same file (or, when either is missing, the same text). */
static bool same_path(const char *a, const char *b)
{
    char *ra = realpath(a, NULL), *rb = realpath(b, NULL);
    bool same = ra && rb ? strcmp(ra, rb) == 0 : strcmp(a, b) == 0;
    free(ra);
    free(rb);
    return same;
}

/* apply PLANFILE: the settings given now (the config, with --allow-empty already applied to it
 * by cmd_load_config) must agree with the ones the plan was made with, allow_empty lists,
 * regions and account_id included (a saved plan computed without prune must never delete
 * because -c says prune: true); then the recorded endpoint and state directory are used.
 * Prints the first disagreement and returns -1, or 0. */
static int adopt_policy(cmd_ctx *ctx, const rec_plan_policy *p)
{
    char *why = NULL;
    if (rec_plan_policy_check(p, &ctx->cfg, &why) < 0) {
        cmd_error(ctx, "refusing the saved plan: %s", why ? why : "the policy differs");
        free(why);
        return -1;
    }
    bool files_differ = ctx->n_files > 0 && ctx->n_files != p->n_manifests;
    for (size_t i = 0; !files_differ && i < ctx->n_files; i++)
        files_differ = !same_path(ctx->files[i], p->manifests[i]);
    if (files_differ) {
        cmd_error(ctx,
                  "refusing the saved plan: -f names other manifests than the plan was made "
                  "from (%s%s); apply the plan without -f, or run plan again",
                  p->n_manifests ? p->manifests[0] : "none", p->n_manifests > 1 ? ", ..." : "");
        return -1;
    }
    if (ctx->state_dir != NULL && !same_path(ctx->state_dir, p->state_dir)) {
        cmd_error(ctx,
                  "refusing the saved plan: --state-dir %s differs from %s, the state "
                  "directory it was made with",
                  ctx->state_dir, p->state_dir);
        return -1;
    }
    const char *ep = ctx->cfg.endpoint;
    if (ep != NULL && (p->endpoint == NULL || strcmp(ep, p->endpoint) != 0)) {
        cmd_error(ctx,
                  "refusing the saved plan: the endpoint %s differs from %s, the one it "
                  "was made with",
                  ep, p->endpoint ? p->endpoint : "the real per-region endpoints");
        return -1;
    }
    char *sd = strdup(p->state_dir);
    char *e = p->endpoint ? strdup(p->endpoint) : NULL;
    if (sd == NULL || (p->endpoint && e == NULL)) {
        free(sd);
        free(e);
        cmd_error(ctx, "out of memory");
        return -1;
    }
    free(ctx->cfg.state_dir);
    ctx->cfg.state_dir = sd;
    free(ctx->cfg.endpoint);
    ctx->cfg.endpoint = e;
    return 0;
}

/* The last line of an apply that ran: "Apply complete: <counts>." when every step was done,
 * else "Apply incomplete: <counts>; N steps failed, M not run." so a failure is never reported as
 * complete. The API call totals follow on the same line. */
static void print_summary(const rec_cycle_result *res, const char *counts, const char *calls)
{
    if (res->n_failed == 0 && res->n_skipped == 0) {
        printf("\nApply complete: %s.", counts);
    } else {
        printf("\nApply incomplete: %s", counts);
        if (res->n_failed > 0)
            printf("; %u step%s failed", res->n_failed, res->n_failed == 1 ? "" : "s");
        if (res->n_skipped > 0)
            printf("%s %u %snot run (stopped, skipped or blocked by a failure)",
                   res->n_failed > 0 ? "," : ";", res->n_skipped,
                   res->n_failed > 0     ? ""
                   : res->n_skipped == 1 ? "step "
                                         : "steps ");
        putchar('.');
    }
    printf("%s%s\n", calls ? " " : "", calls ? calls : "");
}

int cmd_apply(cmd_ctx *ctx, int argc, char **argv)
{
    static const struct option extra[] = {
        {"auto-approve", no_argument, NULL, OPT_AUTO_APPROVE},
    };
    apply_ui ui = {.ctx = ctx};
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
        if (opt == OPT_AUTO_APPROVE)
            ui.auto_approve = true;
        else
            bad = 1;
    }
    free(opts);
    const char *planfile = optind < argc ? argv[optind] : NULL;
    if (bad || argc - optind > 1) {
        usage(stderr);
        return 1;
    }
    rec_plan *saved = NULL;
    rec_plan_policy policy;
    memset(&policy, 0, sizeof(policy));
    if (planfile != NULL) {
        /* As with Terraform, a saved plan is the approval: it was reviewed when it was made,
         * and a stale one is refused. */
        ui.auto_approve = true;
        char *perr = NULL;
        int prc = rec_plan_load(planfile, &saved, &policy, &perr);
        if (prc < 0) {
            cmd_error(ctx, "%s", perr ? perr : strerror(-prc));
            free(perr);
            return 1;
        }
        free(perr);
        /* The config the plan was made with, unless -c names one (then it must agree). */
        if (ctx->config_path == NULL) {
            ctx->config_path = policy.config;
            ctx->no_default_config = true;
        }
    }
    if (cmd_load_config(ctx) < 0 || (saved != NULL && adopt_policy(ctx, &policy) < 0)) {
        rec_plan_free(saved);
        rec_plan_policy_clear(&policy);
        return 1;
    }

    size_t n_paths;
    const char *const *paths = cmd_manifest_paths(ctx, &n_paths);
    if (saved != NULL) {
        paths = (const char *const *)policy.manifests;
        n_paths = policy.n_manifests;
    }
    spec_diags diags;
    spec_diags_init(&diags);
    spec_set *desired = NULL;
    int rc = spec_load(paths, n_paths, &desired, &diags);
    spec_diags_print(&diags, stderr);
    spec_diags_free(&diags);
    if (rc < 0) {
        rec_plan_free(saved);
        rec_plan_policy_clear(&policy);
        return 1;
    }

    bool tty = isatty(STDOUT_FILENO);
    ui.color = !ctx->no_color && tty;
    ui.stdin_tty = isatty(STDIN_FILENO);
    if (rec_progress_new(stdout, tty, ui.color, &ui.progress) < 0) {
        cmd_error(ctx, "out of memory");
        spec_set_free(desired);
        rec_plan_free(saved);
        rec_plan_policy_clear(&policy);
        return 1;
    }

    uv_loop_t loop;
    int exit_code = 1;
    if (uv_loop_init(&loop) < 0) {
        cmd_error(ctx, "cannot create the event loop");
        goto out;
    }
    rec_setup setup;
    rec_lock *lock = NULL;
    char *err = NULL;
    rec_setup_opts so = {.state_dir_explicit = ctx->state_dir != NULL || saved != NULL,
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
    /* One writer per state directory: the daemon and other applies hold the same lock. */
    long holder = 0;
    rc = rec_lock_acquire(setup.state_dir, &lock, &holder);
    if (rc == -EWOULDBLOCK) {
        cmd_error(ctx,
                  "another imgrecon process (pid %ld) is working on the state directory %s "
                  "(it holds %s/daemon.lock); refusing to run alongside it",
                  holder, setup.state_dir, setup.state_dir);
        goto out_setup;
    } else if (rc < 0) {
        cmd_error(ctx, "cannot lock %s/daemon.lock: %s", setup.state_dir, strerror(-rc));
        goto out_setup;
    }

    rec_cycle_opts co = {
        .desired = desired,
        .execute = true,
        .saved = saved,
        .on_event = on_event,
        .confirm = confirm,
        .ud = &ui,
    };
    rec_cycle_result *res = NULL;
    rc = rec_setup_run_cycle(&loop, &setup, &co, &res);
    rec_progress_finish(ui.progress);
    if (rc < 0) {
        cmd_error(ctx, "apply failed: %s%s%s", strerror(-rc),
                  rc == -ELOOP ? ": a file in the state directory is a symbolic link (never "
                                 "followed there; remove it) in "
                               : "",
                  rc == -ELOOP ? setup.state_dir : "");
    } else if (res->rc == -ECANCELED && ui.refused_no_tty) {
        cmd_error(ctx, "apply: standard input is not a terminal; refusing to apply without "
                       "confirmation (use --auto-approve)");
    } else if (res->rc == -ECANCELED) {
        printf("\nApply cancelled.\n");
    } else if (res->rc < 0) {
        cmd_error(ctx, "%s", res->error ? res->error : strerror(-res->rc));
    } else {
        char counts[256];
        rec_progress_summary(ui.progress, counts, sizeof(counts));
        char *calls = rec_setup_calls_summary(&setup);
        if (!ctx->quiet && rec_plan_n_changes(res->plan) > 0)
            print_summary(res, counts, calls);
        free(calls);
        exit_code = res->n_failed == 0 && res->n_skipped == 0 ? 0 : 1;
        /* Conflicts (a declared name taken by an image that is not ours): the independent
         * steps ran; the conflicting entries cannot converge, so CI must notice. */
        size_t n_conflicts = res->plan ? rec_plan_n_notes(res->plan, REC_NOTE_CONFLICT) : 0;
        if (n_conflicts > 0) {
            cmd_error(ctx,
                      "%zu conflict%s: declared image%s not owned by '%s' (or several of "
                      "ours with one name, or an adoption whose fields differ) were not "
                      "touched; see the plan's Conflicts",
                      n_conflicts, n_conflicts == 1 ? "" : "s", n_conflicts == 1 ? "" : "s",
                      res->plan->owner ? res->plan->owner : "default");
            exit_code = 1;
        }
        /* A prune a guard refused (allow_empty, max_deletes) is not done: say so and exit 1. */
        for (size_t i = 0; res->plan != NULL && i < res->plan->n_notes; i++)
            if (res->plan->notes[i].kind == REC_NOTE_GUARD) {
                cmd_error(ctx, "prune refused: %s", res->plan->notes[i].text);
                exit_code = 1;
            }
    }
    rec_cycle_result_free(res);
out_setup:
    rec_lock_release(lock);
    rec_setup_close(&setup);
    (void)uv_run(&loop, UV_RUN_DEFAULT);
    rec_setup_free(&setup);
out_loop:
    if (uv_loop_close(&loop) != 0)
        cmd_error(ctx, "internal error: event loop handles left open");
out:
    rec_progress_free(ui.progress);
    spec_set_free(desired);
    rec_plan_free(saved);
    rec_plan_policy_clear(&policy);
    return exit_code;
}
