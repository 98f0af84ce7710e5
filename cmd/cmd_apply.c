/* imgrecon apply: observe, show the plan, ask, then execute it paced (cmd/README.md). Argument
 * parsing and wiring only; the cycle, executor and progress live in reconcile/. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd.h"
#include "cmd_session.h"
#include "prov_cleanup.h"
#include "rec_applyjson.h"
#include "rec_cycle.h"
#include "rec_ha.h"
#include "rec_lock.h"
#include "rec_plan.h"
#include "rec_planfile.h"
#include "rec_progress.h"
#include "rec_render.h"
#include "rec_setup.h"
#include "spec.h"

enum { OPT_AUTO_APPROVE = CMD_OPT_LOCAL, OPT_JSON };

typedef struct apply_prompt apply_prompt;

typedef struct apply_ui {
    cmd_ctx *ctx;
    bool auto_approve;
    bool color;
    bool stdin_tty;
    bool refused_no_tty;
    rec_progress *progress;
    bool want_json;        /* --json given */
    rec_applyjson *json;   /* --json: the event stream instead of the text output */
    rec_applyjson_end end; /* --json: what the summary says (filled by run_apply) */
    char error[1024];      /* end.error's text, which outlives the cycle result */
    rec_ha *ha;            /* with `ha`: this run's hold on the leader key; NULL otherwise */
    uv_loop_t *loop;       /* the session's loop (borrowed): the prompt reads stdin on it */
    apply_prompt *prompt;  /* the question being asked; NULL when none is */
} apply_ui;

/* The answer to "Do you want to perform these actions?", read on the session's loop instead of
 * with a blocking fgets, so that the loop keeps the HA lease alive and handles SIGINT/SIGTERM
 * while the user types (README.md "High availability (several hosts, one reconciler)"). A
 * uv_tty_t on stdin in normal mode: the terminal's own line editing and echo apply, termios is
 * not touched. libuv makes the descriptor non-blocking (on a reopened copy of the terminal when
 * it can), so fd 0's flags are put back when the handle has closed. Owned by apply_ui while the
 * question is open; freed from the handle's close callback. */
struct apply_prompt {
    uv_tty_t tty;
    apply_ui *ui;     /* borrowed */
    rec_cycle *cycle; /* borrowed: answered once with rec_cycle_confirm */
    char chunk[256];  /* libuv reads into it */
    char line[64];    /* the first 63 bytes of the line, as fgets(line, 64) kept */
    size_t len;
    int fd_flags, fl_flags; /* fd 0's F_GETFD and F_GETFL before libuv touched them */
};

static void usage(FILE *out)
{
    fprintf(out, "usage: imgrecon apply [-f PATH]... [--auto-approve] [--json] [PLANFILE]\n\n"
                 "Makes the account match the manifests. With PLANFILE (from plan --out) it\n"
                 "uses the settings the plan was made with (no other flag needed), re-reads the\n"
                 "account, refuses when anything the saved steps depend on changed or when the\n"
                 "settings given disagree, runs only the saved steps, and does not ask.\n\n"
                 "  --auto-approve       do not ask for confirmation\n"
                 "  --json               one JSON event per line on stdout (steps, waits, a\n"
                 "                       summary last; reconcile/exec/APPLY-JSON.md); needs\n"
                 "                       --auto-approve or PLANFILE\n");
    cmd_print_common_help(out, CMD_USES_APPLY);
}

static void on_prompt_closed(uv_handle_t *h)
{
    apply_prompt *p = h->data;
    if (p->fd_flags >= 0)
        (void)fcntl(STDIN_FILENO, F_SETFD, p->fd_flags);
    if (p->fl_flags >= 0)
        (void)fcntl(STDIN_FILENO, F_SETFL, p->fl_flags);
    free(p);
}

/* Stops reading and closes the prompt (freed from the close callback). Called when the answer
 * is in (prompt_answer) and when the cycle stops while it waits (confirm_cancel). */
static void prompt_close(apply_prompt *p)
{
    p->ui->prompt = NULL;
    (void)uv_read_stop((uv_stream_t *)&p->tty);
    uv_close((uv_handle_t *)&p->tty, on_prompt_closed);
}

/* The line is complete (newline or end of input; read_ok false: a read error, which refuses):
 * only "yes" proceeds, with what follows a \r cut off as before. A "yes" given after this run's
 * leader lease lapsed (etcd unreachable while the question waited) refuses too, saying so: the
 * fence would hold back every step, so nothing would be done but a list of failures. Closes the
 * prompt first, then hands the answer to the cycle. */
static void prompt_answer(apply_prompt *p, bool read_ok)
{
    p->line[p->len] = '\0';
    p->line[strcspn(p->line, "\r\n")] = '\0';
    bool yes = read_ok && strcmp(p->line, "yes") == 0;
    apply_ui *ui = p->ui;
    if (yes && ui->ha != NULL && !rec_ha_may_mutate(ui->ha)) {
        cmd_error(ui->ctx, "this run's leader lease in etcd lapsed while the question waited "
                           "(etcd unreachable?); nothing was changed: apply again once etcd "
                           "answers");
        yes = false;
    }
    rec_cycle *cycle = p->cycle;
    prompt_close(p);
    (void)rec_cycle_confirm(cycle, yes);
}

static void on_prompt_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    apply_prompt *p = h->data;
    (void)suggested;
    *buf = uv_buf_init(p->chunk, sizeof(p->chunk));
}

/* Accumulates the answer until a newline; end of input answers with what was typed (as fgets
 * returned a last line without newline; nothing typed refuses), a read error refuses. */
static void on_prompt_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    apply_prompt *p = s->data;
    if (nread < 0) {
        prompt_answer(p, nread == UV_EOF);
        return;
    }
    for (ssize_t i = 0; i < nread; i++) {
        if (buf->base[i] == '\n') {
            prompt_answer(p, true);
            return;
        }
        if (p->len < sizeof(p->line) - 1)
            p->line[p->len++] = buf->base[i];
    }
}

/* Starts reading the answer on the loop. Returns 0, or a negative errno (printed; nothing is
 * left open). */
static int prompt_start(apply_ui *ui, rec_cycle *cycle)
{
    apply_prompt *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        cmd_error(ui->ctx, "out of memory");
        return -ENOMEM;
    }
    p->ui = ui;
    p->cycle = cycle;
    p->fd_flags = fcntl(STDIN_FILENO, F_GETFD);
    p->fl_flags = fcntl(STDIN_FILENO, F_GETFL);
    int rc = uv_tty_init(ui->loop, &p->tty, STDIN_FILENO, 1);
    if (rc < 0) {
        cmd_error(ui->ctx, "cannot read the answer from standard input: %s", uv_strerror(rc));
        free(p);
        return rc;
    }
    p->tty.data = p;
    rc = uv_read_start((uv_stream_t *)&p->tty, on_prompt_alloc, on_prompt_read);
    if (rc < 0) {
        cmd_error(ui->ctx, "cannot read the answer from standard input: %s", uv_strerror(rc));
        uv_close((uv_handle_t *)&p->tty, on_prompt_closed);
        return rc;
    }
    ui->prompt = p;
    return 0;
}

/* Shows the plan and asks, as Terraform does; only "yes" proceeds. The question is answered
 * later, from the loop (prompt_answer calls rec_cycle_confirm); everything else answers at once. */
static rec_confirm confirm(void *ud, rec_cycle *cycle, const rec_plan *plan)
{
    apply_ui *ui = ud;
    ui->ctx->wait_live = false;
    cmd_wait_clear(ui->ctx);
    if (ui->json != NULL) {
        /* --json is only accepted with an approval (checked before the session starts). */
        rec_applyjson_planned(ui->json, plan);
        return REC_CONFIRM_PROCEED;
    }
    if (!ui->ctx->quiet)
        (void)rec_render_text(plan, stdout, ui->color ? REC_RENDER_COLOR : 0);
    if (rec_plan_n_changes(plan) == 0 || ui->auto_approve)
        return REC_CONFIRM_PROCEED;
    if (!ui->stdin_tty) {
        ui->refused_no_tty = true;
        return REC_CONFIRM_REFUSE;
    }
    printf("\nDo you want to perform these actions? Only 'yes' will be accepted: ");
    fflush(stdout);
    return prompt_start(ui, cycle) < 0 ? REC_CONFIRM_REFUSE : REC_CONFIRM_PENDING;
}

/* The cycle stops (SIGINT, SIGTERM) while the question is open: stop reading; the cycle ends as
 * cancelled and must not be answered. */
static void confirm_cancel(void *ud)
{
    apply_ui *ui = ud;
    if (ui->prompt != NULL)
        prompt_close(ui->prompt);
}

static void on_event(void *ud, const rec_event *ev)
{
    apply_ui *ui = ud;
    if (ui->json != NULL)
        rec_applyjson_event(ui->json, ev);
    else if (!ui->ctx->quiet || ev->kind == REC_EV_STEP_FAILED)
        rec_progress_event(ui->progress, ev);
}

/* The HA fence for the executor and the client (rec_ha_may_mutate). */
static bool apply_may_mutate(void *ud)
{
    apply_ui *ui = ud;
    return ui->ha == NULL || rec_ha_may_mutate(ui->ha);
}

/* With `ha`, apply must not mutate while a daemon leads: it takes the leader key with a lease of
 * its own for the run (released by rec_ha_stop at the end) and fences its calls with it, or
 * refuses naming the leader. Returns 0 (ui->ha set when `ha` is configured) or -1 (printed). */
static int claim_leadership(cmd_ctx *ctx, uv_loop_t *loop, rec_setup *setup, apply_ui *ui)
{
    if (ctx->cfg.n_ha_endpoints == 0)
        return 0;
    char *why = NULL;
    int rc = rec_ha_claim(loop, &ctx->cfg, ctx->cfg.ha_lease_ttl_ms + 2000, &ui->ha, &why);
    if (rc == -EBUSY)
        cmd_error(ctx,
                  "another imgrecon process leads (%s holds the leader key in etcd); refusing to "
                  "apply while it does: it applies the manifests itself, or stop it first",
                  why);
    else if (rc < 0)
        cmd_error(ctx, "cannot take the leader key in etcd: %s", why ? why : strerror(-rc));
    free(why);
    if (rc < 0)
        return -1;
    prov_client_set_fence(setup->client, apply_may_mutate, ui);
    return 0;
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

/* apply PLANFILE: the state directory holds the lock that keeps one writer per account and the
 * journal that makes retries idempotent, so the one the plan names must be the one the settings
 * in effect name: --state-dir when given (the caller checks it), else the config's state_dir when
 * the config names one. The plan's own record is used only when nothing else names one (a plan
 * made with --state-dir needs no flag), and only for a directory that exists: plan created it,
 * so a missing one means an edited plan file or a removed directory, and apply never makes a new
 * one. Called by adopt_policy; prints why and returns -1, or 0. */
static int check_state_dir(cmd_ctx *ctx, const rec_plan_policy *p)
{
    const char *named = ctx->cfg.state_dir;
    spec_config defaults; /* a config that names no state_dir has the default one */
    if (spec_config_init(&defaults) < 0) {
        cmd_error(ctx, "out of memory");
        return -1;
    }
    bool config_names =
        named != NULL && (defaults.state_dir == NULL || strcmp(named, defaults.state_dir) != 0);
    spec_config_clear(&defaults);
    if (ctx->state_dir == NULL && config_names && !same_path(named, p->state_dir)) {
        cmd_error(ctx,
                  "refusing the saved plan: the config's state_dir %s differs from %s, the state "
                  "directory the plan records; pass --state-dir %s if that is the one, or run "
                  "plan again",
                  named, p->state_dir, p->state_dir);
        return -1;
    }
    struct stat st;
    if (stat(p->state_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        cmd_error(ctx,
                  "refusing the saved plan: %s, the state directory it records, is not a "
                  "directory (the plan file was edited, or the directory removed); run plan again",
                  p->state_dir);
        return -1;
    }
    return 0;
}

/* apply PLANFILE: the settings given now (the config, with --allow-empty already applied to it
 * by cmd_load_config) must agree with the ones the plan was made with, allow_empty lists,
 * regions and account_id included (a saved plan computed without prune must never delete
 * because -c says prune: true); then the recorded endpoint and state directory are used
 * (check_state_dir). Prints the first disagreement and returns -1, or 0. */
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
    if (check_state_dir(ctx, p) < 0)
        return -1;
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

static int apply_option(void *ud, int opt, const char *arg)
{
    apply_ui *ui = ud;
    (void)arg;
    if (opt == OPT_AUTO_APPROVE)
        ui->auto_approve = true;
    else if (opt == OPT_JSON)
        ui->want_json = true;
    else
        return -EINVAL;
    return 0;
}

/* apply PLANFILE: loads the saved plan and its policy; the config it was made with is used
 * unless -c names one (then it must agree). Prints why and returns -errno, or 0. */
static int load_saved(cmd_ctx *ctx, const char *planfile, rec_plan **ret, rec_plan_policy *policy)
{
    _cleanup_free_ char *perr = NULL;
    int rc = rec_plan_load(planfile, ret, policy, &perr);
    if (rc < 0) {
        cmd_error(ctx, "%s", perr ? perr : strerror(-rc));
        return rc;
    }
    if (ctx->config_path == NULL) {
        ctx->config_path = policy->config;
        ctx->no_default_config = true;
    }
    return 0;
}

/* One writer per state directory: the daemon and other applies hold the same lock. */
static int lock_state_dir(cmd_ctx *ctx, const rec_setup *setup, rec_lock **ret)
{
    long holder = 0;
    int rc = rec_lock_acquire(setup->state_dir, ret, &holder);
    if (rc == -EWOULDBLOCK)
        cmd_error(ctx,
                  "another imgrecon process (pid %ld) is working on the state directory %s "
                  "(it holds %s/daemon.lock); refusing to run alongside it",
                  holder, setup->state_dir, setup->state_dir);
    else if (rc < 0)
        cmd_error(ctx, "cannot lock %s/daemon.lock: %s", setup->state_dir, strerror(-rc));
    return rc;
}

/* Reports a cycle that ran; returns the exit status. */
static int report(cmd_ctx *ctx, apply_ui *ui, const rec_setup *setup, const rec_cycle_result *res)
{
    if (res->rc == -ECANCELED && ui->refused_no_tty) {
        cmd_error(ctx, "apply: standard input is not a terminal; refusing to apply without "
                       "confirmation (use --auto-approve)");
        return 1;
    }
    if (res->rc == -ECANCELED) {
        ui->end.result = "cancelled";
        if (ui->json == NULL)
            printf("\nApply cancelled.\n");
        return 1;
    }
    if (res->rc < 0) {
        cmd_error(ctx, "%s", res->error ? res->error : strerror(-res->rc));
        snprintf(ui->error, sizeof(ui->error), "%s", res->error ? res->error : strerror(-res->rc));
        ui->end.error = ui->error;
        return 1;
    }
    char counts[256];
    rec_progress_summary(ui->progress, counts, sizeof(counts));
    _cleanup_free_ char *calls = rec_setup_calls_summary(setup);
    if (ui->json == NULL && !ctx->quiet && rec_plan_n_changes(res->plan) > 0)
        print_summary(res, counts, calls);
    int exit_code = res->n_failed == 0 && res->n_skipped == 0 ? 0 : 1;
    ui->end.n_done = res->n_done;
    ui->end.n_failed = res->n_failed;
    ui->end.n_skipped = res->n_skipped;
    /* Conflicts (a declared name taken by an image that is not ours): the independent
     * steps ran; the conflicting entries cannot converge, so CI must notice. */
    size_t n_conflicts = res->plan ? rec_plan_n_notes(res->plan, REC_NOTE_CONFLICT) : 0;
    if (n_conflicts > 0) {
        cmd_error(
            ctx,
            "%zu conflict%s: declared image%s not owned by '%s' (or several of "
            "ours with one name, or an adoption whose fields differ) were not touched; see the "
            "plan's Conflicts",
            n_conflicts, n_conflicts == 1 ? "" : "s", n_conflicts == 1 ? "" : "s",
            res->plan->owner ? res->plan->owner : "default");
        exit_code = 1;
    }
    ui->end.n_conflicts = n_conflicts;
    /* A prune a guard refused (allow_empty, max_deletes) is not done: say so and exit 1. */
    for (size_t i = 0; res->plan != NULL && i < res->plan->n_notes; i++)
        if (res->plan->notes[i].kind == REC_NOTE_GUARD) {
            cmd_error(ctx, "prune refused: %s", res->plan->notes[i].text);
            exit_code = 1;
        }
    /* Conflicts and refused prunes leave the account short of the manifests: incomplete. */
    ui->end.result = exit_code != 0                       ? "incomplete"
                     : rec_plan_n_changes(res->plan) == 0 ? "no_changes"
                                                          : "complete";
    return exit_code;
}

/* What follows "apply failed: <strerror>" when the error came from a file in the state
 * directory (the journal, the call log), so that the message says where to look; the directory
 * is printed after it. "" for other errors. Called by run_apply. */
static const char *state_file_hint(int rc)
{
    switch (rc) {
    case -ELOOP:
        return ": a file in the state directory is a symbolic link (never followed there; remove "
               "it) in ";
    case -EISDIR:
    case -ENOTDIR:
    case -EACCES:
    case -EPERM:
    case -EROFS:
    case -ENOSPC:
    case -EDQUOT:
        return ": a file in the state directory (journal.jsonl, pacer.log) cannot be written in ";
    default:
        return "";
    }
}

/* Locks the state directory, runs the cycle (confirming through ui) and reports it. */
static int run_apply(cmd_session *s, apply_ui *ui, rec_plan *saved, const rec_plan_policy *policy)
{
    cmd_ctx *ctx = s->ctx;
    rec_lock *lock = NULL;
    if (lock_state_dir(ctx, s->setup, &lock) < 0)
        return 1;
    if (claim_leadership(ctx, &s->loop, s->setup, ui) < 0) {
        rec_lock_release(lock);
        return 1;
    }
    ui->loop = &s->loop;
    rec_cycle_opts co = {
        .desired = s->desired,
        .execute = true,
        .saved = saved,
        .saved_account_id = saved != NULL ? policy->caller_account_id : NULL,
        .skip_fingerprints = !ui->want_json, /* the text has none; --json's planned has them */
        .may_mutate = apply_may_mutate,
        .on_event = on_event,
        .confirm = confirm,
        .confirm_cancel = confirm_cancel,
        .ud = ui,
    };
    rec_cycle_result *res = NULL;
    int exit_code = 1;
    int rc = rec_setup_run_cycle(&s->loop, s->setup, &co, &res);
    /* The cycle ends only after the prompt's answer or its cancel; this is a safety net for a
     * run that failed otherwise (the handle closes while the session drains the loop). */
    if (ui->prompt != NULL)
        prompt_close(ui->prompt);
    cmd_wait_clear(ctx);
    rec_progress_finish(ui->progress);
    /* The lease keeps being renewed while the prompt waits (it reads on the loop), so it lapses
     * only when etcd cannot be reached (or the process was stopped): the fence then held every
     * later step back; say why. */
    if (rc == 0 && ui->ha != NULL && res->n_skipped > 0 && !rec_ha_may_mutate(ui->ha))
        cmd_error(ctx, "this run's leader lease in etcd lapsed (etcd unreachable, or the process "
                       "stopped past lease_ttl); the steps after that were not sent");
    if (rc < 0)
        cmd_error(ctx, "apply failed: %s%s%s", strerror(-rc), state_file_hint(rc),
                  state_file_hint(rc)[0] != '\0' ? s->setup->state_dir : "");
    else
        exit_code = report(ctx, ui, s->setup, res);
    rec_cycle_result_free(res);
    rec_ha_stop(ui->ha);
    ui->ha = NULL;
    rec_lock_release(lock);
    return exit_code;
}

/* Everything after the options: the saved plan, config, session and the run. Returns the exit
 * code; every early return has printed why. */
static int apply_main(cmd_ctx *ctx, apply_ui *ui, const char *planfile)
{
    _cleanup_(rec_plan_freep) rec_plan *saved = NULL;
    _cleanup_(rec_plan_policy_clear) rec_plan_policy policy = {0};
    /* As with Terraform, a saved plan is the approval: it was reviewed when it was made, and a
     * stale one is refused. */
    if (planfile != NULL && load_saved(ctx, planfile, &saved, &policy) < 0)
        return 1;
    ui->auto_approve = ui->auto_approve || saved != NULL;
    if (cmd_load_config(ctx) < 0 || (saved != NULL && adopt_policy(ctx, &policy) < 0))
        return 1;

    cmd_session_opts so = {.load_manifests = true, .state_dir_explicit = saved != NULL};
    if (saved != NULL) {
        so.paths = (const char *const *)policy.manifests;
        so.n_paths = policy.n_manifests;
    }
    so.on_wait = cmd_wait_line;
    bool tty = isatty(STDOUT_FILENO);
    ui->color = !ctx->no_color && tty;
    ui->stdin_tty = isatty(STDIN_FILENO);
    /* While observing, a wait for the rate limit is said on a terminal; the steps' waits are
     * the progress output's (confirm turns this off). */
    ctx->wait_live = isatty(STDERR_FILENO) && !ctx->quiet && ui->json == NULL && !cmd_log_json(ctx);
    cmd_session s;
    if (cmd_session_open(&s, ctx, &so) < 0)
        return 1;
    int exit_code = 1;
    if (rec_progress_new(stdout, tty, ui->color, &ui->progress) < 0)
        cmd_error(ctx, "out of memory");
    else
        exit_code = run_apply(&s, ui, saved, &policy);
    (void)cmd_session_close(&s);
    rec_progress_free(ui->progress);
    return exit_code;
}

int cmd_apply(cmd_ctx *ctx, int argc, char **argv)
{
    static const struct option extra[] = {
        {"auto-approve", no_argument, NULL, OPT_AUTO_APPROVE},
        {"json", no_argument, NULL, OPT_JSON},
    };
    apply_ui ui = {.ctx = ctx};
    const cmd_args args = {"apply",      usage, extra, sizeof(extra) / sizeof(extra[0]),
                           apply_option, &ui,   1};
    cmd_args_result parsed = cmd_parse_args(ctx, argc, argv, &args);
    if (parsed != CMD_ARGS_GO)
        return parsed == CMD_ARGS_HELP ? 0 : 1;
    const char *planfile = optind < argc ? argv[optind] : NULL;
    if (ui.want_json && !ui.auto_approve && planfile == NULL) {
        cmd_error(ctx, "apply --json cannot ask for confirmation (stdout carries the events); "
                       "add --auto-approve, or apply a plan saved with plan --out");
        return 1;
    }
    if (ui.want_json && rec_applyjson_new(stdout, &ui.json) < 0) {
        cmd_error(ctx, "out of memory");
        return 1;
    }
    int exit_code = apply_main(ctx, &ui, planfile);
    if (ui.json != NULL) {
        ui.end.exit_code = exit_code;
        if (ui.end.result == NULL) /* stopped before the cycle ran: the reason is on stderr */
            ui.end.result = "error";
        if (exit_code != 0 && ui.end.error == NULL)
            ui.end.error = "see the messages on standard error";
        rec_applyjson_summary(ui.json, &ui.end);
        rec_applyjson_free(ui.json);
    }
    return exit_code;
}
