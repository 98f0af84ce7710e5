/* The daemon's loop (see rec_daemon.h): scheduling, manifest watching (rec_watch.c), signals,
 * reload, stop, and the wiring of the lock, log, notify, metrics, status and backoff modules
 * around rec_cycle. Everything runs on one libuv loop; only the metrics server has its own
 * thread. */
#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "prov_cleanup.h"
#include "prov_types.h"
#include "rec_alerts.h"
#include "rec_progress.h"
#include "rec_backoff.h"
#include "rec_cycle.h"
#include "rec_daemon.h"
#include "rec_fights.h"
#include "rec_ha.h"
#include "rec_lock.h"
#include "prov_statedir.h"
#include "rec_metrics.h"
#include "rec_notify.h"
#include "rec_plan.h"
#include "rec_setup.h"
#include "rec_status.h"
#include "rec_watch.h"
#include "rec_webhook.h"
#include "spec.h"
#include "prov_str.h"

#define DEFAULT_INTERVAL_MS (5u * 60u * 1000u)
#define DEFAULT_STOP_TIMEOUT_MS 30000u
#define DEFAULT_DEBOUNCE_MS 500u
#define DEFAULT_BACKOFF_CAP_MS (60u * 60u * 1000u)
/* A manifest file changed less than this before its stamp was taken may still change unseen
 * (spec.h, spec_stamp_take): 2 s covers the coarsest timestamps of common filesystems. */
#define MANIFEST_RACY_MS 2000u

typedef struct rec_dmn rec_dmn;

struct rec_dmn {
    uv_loop_t loop;
    const rec_daemon_opts *opts;
    rec_log *log;
    spec_config *cfg;
    spec_set *desired;
    spec_stamp *stamp; /* the manifest files as they were when desired was read, or NULL */
    char **paths;      /* effective manifest paths */
    size_t n_paths;
    rec_setup *setup;
    rec_lock *lock;
    rec_metrics *metrics;
    rec_backoff *backoff;
    uv_timer_t cycle_timer, debounce_timer, watchdog_timer, stop_timer;
    uv_signal_t sighup, sigterm, sigint;
    bool handles_open;
    rec_watch *watch;
    rec_cycle *cycle;
    uint64_t cycle_t0_ns;
    bool suspended_now;
    bool change_pending, reload_pending, stopping, finished;
    uint64_t interval_ms;
    rec_status st;
    /* The last plan's conflicts (address, message, count = cycles in a row), listed in
     * status.json as failures after the backing-off items. */
    rec_status_failure *conflicts;
    size_t n_conflicts;
    rec_fights fights;       /* fighting controllers, in memory only (rec_fights.h) */
    rec_webhook *hooks;      /* the config's `notify` targets */
    rec_alerts *alerts;      /* what the hooks are told */
    rec_wait_gate wait_gate; /* long waits are logged every 15 s, not every tick */
    char *load_error;        /* the last failed manifest load's first problem, one line */
    bool was_unhealthy;      /* failed or invalid since the last ready: `recovered` is due */
    rec_ha *ha;          /* leader election with `ha` (rec_ha.h); NULL: this daemon acts alone */
    rec_ha_role ha_role; /* the role last told by on_ha_role, for `leadership` notifications */
    int exit_code;
};

/* The actions whose remaining budget is a gauge; in_status: also on the short systemd STATUS=
 * line (the SWAS actions of every cycle). */
static const struct budget_action {
    const char *product;
    const char *action;
    bool in_status;
} budget_actions[] = {
    {"swas", "ListCustomImages", true},
    {"swas", "CreateCustomImage", true},
    {"swas", "ModifyImageShareStatus", true},
    {"swas", "DeleteCustomImage", true},
    {"swas", "DeleteCustomImages", true},
    {"ecs", "DescribeImages", false},
    {"ecs", "DeleteImage", false},
    {"swas", "TagResources", false},
    {"swas", "UntagResources", false},
    {"swas", "AddCustomImageShareAccount", false},
    {"swas", "RemoveCustomImageShareAccount", false},
    {"swas", "ListCustomImageShareAccounts", false},
};
#define N_BUDGET_ACTIONS (sizeof(budget_actions) / sizeof(budget_actions[0]))

static void start_cycle(rec_dmn *d, const char *why);
static void finish(rec_dmn *d);
static void on_debounce(uv_timer_t *t);
static void on_cycle_timer(uv_timer_t *t);

/* ---- small helpers ---- */

static const char *state_dir(const rec_dmn *d)
{
    return d->setup ? d->setup->state_dir : d->cfg->state_dir;
}

/* Logs every problem; the first one, as "file:line:col: message" on one line, becomes
 * d->load_error (what /readyz, status and the manifest_error notification say). */
static void log_diags(rec_dmn *d, const spec_diags *diags, const char *what)
{
    for (size_t i = 0; i < diags->n; i++) {
        char at[4200];
        const spec_diag *g = &diags->v[i];
        (void)snprintf(at, sizeof(at), "%s:%u:%u", g->file ? g->file : "-", g->line, g->col);
        rec_log_event(d->log, REC_LOG_ERROR, what, "at", at, "error", g->msg, NULL);
        if (i > 0)
            continue;
        free(d->load_error);
        if (asprintf(&d->load_error, "%s: %s%s", at, g->msg,
                     diags->n > 1 ? " (and more problems)" : "") < 0)
            d->load_error = NULL;
        for (char *c = d->load_error; c && *c; c++)
            if (*c == '\n' || *c == '\r')
                *c = ' ';
    }
}

static void free_paths(char **paths, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
}

static void free_cfg(spec_config *cfg)
{
    if (cfg == NULL)
        return;
    spec_config_clear(cfg);
    free(cfg);
}

/* rec_setup_close's on_closed for a setup a reload replaced: the config it borrowed goes once
 * the setup has freed itself. */
static void free_cfg_cb(void *ud)
{
    free_cfg(ud);
}

/* Builds a fresh config through the caller's loader; logs every problem. */
static int load_config(rec_dmn *d, spec_config **ret)
{
    spec_diags diags;
    spec_config *cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL)
        return -ENOMEM;
    spec_diags_init(&diags);
    int rc = d->opts->load_config(d->opts->load_ud, cfg, &diags);
    log_diags(d, &diags, "invalid config");
    spec_diags_clear(&diags);
    if (rc < 0) {
        free_cfg(cfg);
        return rc;
    }
    *ret = cfg;
    return 0;
}

/* The manifest paths: -f PATH... or cfg's. Returns 0 with copies (caller frees) or -ENOMEM. */
static int manifest_paths(const rec_dmn *d, const spec_config *cfg, char ***ret_paths,
                          size_t *ret_n)
{
    const char *const *src =
        d->opts->n_manifest_paths ? d->opts->manifest_paths : (const char *const *)cfg->manifests;
    size_t n = d->opts->n_manifest_paths ? d->opts->n_manifest_paths : cfg->n_manifests;
    char **paths = calloc(n ? n : 1, sizeof(*paths));
    if (paths == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        paths[i] = strdup(src[i]);
        if (paths[i] == NULL) {
            free_paths(paths, n);
            return -ENOMEM;
        }
    }
    *ret_paths = paths;
    *ret_n = n;
    return 0;
}

/* Loads the manifests at paths; logs every problem (the first in d->load_error). */
static int load_set(rec_dmn *d, char *const *paths, size_t n, spec_set **ret_set)
{
    spec_diags diags;
    spec_set *set = NULL;
    spec_diags_init(&diags);
    int rc = spec_load((const char *const *)paths, n, &set, &diags);
    log_diags(d, &diags, "invalid manifest");
    if (rc < 0 && diags.n == 0) {
        free(d->load_error);
        d->load_error = strdup(strerror(-rc));
    }
    spec_diags_clear(&diags);
    if (rc < 0)
        return rc;
    *ret_set = set;
    return 0;
}

static uint64_t interval_for(const rec_dmn *d, const spec_config *cfg)
{
    if (d->opts->interval_ms)
        return d->opts->interval_ms;
    return cfg->interval_ms ? cfg->interval_ms : DEFAULT_INTERVAL_MS;
}

/* The interval with ±10% jitter, so that many daemons on one account do not call in step. */
static uint64_t jittered(uint64_t interval_ms)
{
    uint64_t span = interval_ms / 5;
    if (span == 0)
        return interval_ms;
    return interval_ms - interval_ms / 10 + (uint64_t)random() % (span + 1);
}

static bool suspend_file(const rec_dmn *d)
{
    char path[4200];
    (void)snprintf(path, sizeof(path), "%s/suspend", state_dir(d));
    struct stat st; /* any entry suspends, a symlink too: its target is never looked at */
    return lstat(path, &st) == 0;
}

/* ---- status, notify and metrics ---- */

/* Clocks: waits, the cycle timer and the per-item backoff run on the loop's monotonic clock
 * (uv_now), so a step of the wall clock neither hurries nor stalls them; status.json, logs and
 * metrics show wall time (prov_now_ms). This turns a monotonic retry time into the wall time
 * shown for it (0 stays "never", UINT64_MAX "next cycle"). */
static uint64_t shown_time(const rec_dmn *d, uint64_t mono_ms)
{
    uint64_t now = uv_now(&d->loop), wall = prov_now_ms();
    if (mono_ms == 0 || mono_ms == UINT64_MAX)
        return mono_ms;
    return mono_ms > now ? wall + (mono_ms - now) : wall - (now - mono_ms);
}

/* Rewrites status.json from the daemon's state and the backoff table. */
static void write_status(rec_dmn *d)
{
    size_t n;
    const rec_backoff_entry *e = rec_backoff_entries(d->backoff, &n);
    for (size_t i = 0; i < d->st.n_failures; i++) {
        free(d->st.failures[i].address);
        free(d->st.failures[i].message);
    }
    free(d->st.failures);
    d->st.failures = NULL;
    d->st.n_failures = 0;
    for (size_t i = 0; i < n; i++)
        (void)rec_status_add_failure(&d->st, e[i].address, e[i].message, e[i].failures,
                                     shown_time(d, e[i].retry_at_ms));
    for (size_t i = 0; i < d->n_conflicts; i++)
        (void)rec_status_add_failure(&d->st, d->conflicts[i].address, d->conflicts[i].message,
                                     d->conflicts[i].count, 0);
    d->st.conflicts = (unsigned)d->n_conflicts;
    if (d->ha != NULL) {
        prov_set_str(&d->st.role, rec_ha_role_name(rec_ha_role_of(d->ha)));
        prov_set_str(&d->st.leader, rec_ha_leader(d->ha));
    }
    for (size_t i = 0; i < d->st.n_warnings; i++) {
        free(d->st.warnings[i].address);
        free(d->st.warnings[i].message);
    }
    free(d->st.warnings);
    d->st.warnings = NULL;
    d->st.n_warnings = 0;
    for (size_t i = 0; i < d->fights.n; i++)
        if (rec_fight_active(&d->fights.v[i]))
            (void)rec_status_add_warning(&d->st, d->fights.v[i].address,
                                         "fighting controller: imgrecon's fix was undone again "
                                         "after each of the last cycles",
                                         d->fights.v[i].undone);
    int rc = rec_status_write(state_dir(d), &d->st);
    if (rc < 0)
        rec_log_event(d->log, REC_LOG_WARN, "cannot write status.json", "state_dir", state_dir(d),
                      "error", strerror(-rc), NULL);
}

/* Refreshes the budget gauges and the systemd STATUS= line. */
static void update_live(rec_dmn *d)
{
    rec_notify_budget budgets[N_BUDGET_ACTIONS];
    size_t nb = 0;
    if (d->setup != NULL && d->setup->pacer != NULL && d->setup->cred.access_key_id != NULL) {
        uint64_t now = prov_pacer_now_ms(d->setup->pacer);
        for (size_t i = 0; i < N_BUDGET_ACTIONS; i++) {
            spec_rate r = spec_config_rate_for(d->cfg, budget_actions[i].action);
            unsigned left = 0;
            if (prov_pacer_budget(d->setup->pacer,
                                  d->setup->account_id[0] ? d->setup->account_id
                                                          : d->setup->cred.access_key_id,
                                  budget_actions[i].product, budget_actions[i].action, r.calls,
                                  r.window_ms, now, &left) < 0)
                continue;
            rec_metrics_set_budget(d->metrics, budget_actions[i].action, left);
            /* STATUS= stays short: the SWAS actions of every cycle only. */
            if (budget_actions[i].in_status)
                budgets[nb++] = (rec_notify_budget){budget_actions[i].action, left, r.calls};
        }
    }
    uint64_t next_in = UINT64_MAX;
    if (d->st.next_cycle_ms != 0 && !d->stopping)
        next_in = uv_timer_get_due_in(&d->cycle_timer);
    char *line = rec_notify_status_line(d->st.result, d->st.done, d->st.failed, next_in,
                                        d->st.pending, budgets, nb, d->st.suspended);
    if (line != NULL) {
        (void)rec_notify_status(line);
        free(line);
    }
}

/* rec_setup_opts.on_cred_error: a failed credential refresh (retried) or an unknown account. */
static void on_cred_error(void *ud, const char *msg)
{
    rec_dmn *d = ud;
    rec_log_event(d->log, REC_LOG_WARN, "credentials", "error", msg, NULL);
}

/* rec_setup_opts.on_wait: a call held back for its action's rate-limit window, also while
 * observing (the executor reports its own waits as cycle events). A long one is logged at info
 * so that a slow cycle says why. */
#define LONG_WAIT_MS 3000
static void on_wait(void *ud, const char *action, uint64_t wait_ms)
{
    rec_dmn *d = ud;
    char what[96], ms[24];
    (void)snprintf(what, sizeof(what), "next %s call", action ? action : "API");
    (void)snprintf(ms, sizeof(ms), "%llu", (unsigned long long)wait_ms);
    rec_log_event(d->log, wait_ms >= LONG_WAIT_MS ? REC_LOG_INFO : REC_LOG_DEBUG, "waiting", "for",
                  rec_wait_for_name(REC_WAIT_RATE_LIMIT), "what", what, "wait_ms", ms, NULL);
}

/* Every HTTP attempt of the client: metrics, a debug line, a warning when throttled. */
static void on_call(void *ud, const prov_call_event *ev)
{
    rec_dmn *d = ud;
    char codebuf[32];
    const char *code = ev->code;
    if (code == NULL && ev->cls != PROV_ERR_NONE) {
        if (ev->http_status > 0)
            (void)snprintf(codebuf, sizeof(codebuf), "HTTP%ld", ev->http_status);
        else
            (void)snprintf(codebuf, sizeof(codebuf), "NoResponse");
        code = codebuf;
    }
    bool throttled = ev->cls == PROV_ERR_THROTTLED;
    rec_metrics_api_call(d->metrics, ev->action, code, throttled);
    char attempt[16], status[16], ms[24];
    (void)snprintf(attempt, sizeof(attempt), "%u", ev->attempt);
    (void)snprintf(status, sizeof(status), "%ld", ev->http_status);
    (void)snprintf(ms, sizeof(ms), "%llu", (unsigned long long)ev->duration_ms);
    rec_log_event(d->log, throttled ? REC_LOG_WARN : REC_LOG_DEBUG,
                  throttled ? "api call throttled" : "api call", "action", ev->action, "region",
                  ev->region, "attempt", attempt, "http_status", status, "code", code, "request_id",
                  ev->request_id, "duration_ms", ms, NULL);
}

/* ---- readiness and manifest validity ---- */

/* Items failing: backing off after failed steps, or in conflict. */
static size_t items_failing(rec_dmn *d)
{
    size_t n = 0;
    (void)rec_backoff_entries(d->backoff, &n);
    return n + d->n_conflicts;
}

/* Recomputes readiness (what /readyz answers, status.json's "ready"): the manifests valid and
 * the last cycle ok; otherwise one line saying why. Sends `recovered` when ready again after a
 * failure or invalid manifests. Called after every load and every cycle. */
static void update_ready(rec_dmn *d)
{
    char why[600];
    const rec_status *st = &d->st;
    why[0] = '\0';
    if (d->stopping)
        (void)snprintf(why, sizeof(why), "stopping");
    else if (!st->manifests_valid)
        (void)snprintf(why, sizeof(why), "manifests invalid: %.560s",
                       st->manifest_error ? st->manifest_error : "see the log");
    else if (st->result == NULL)
        (void)snprintf(why, sizeof(why), "no cycle has finished yet");
    else if (strcmp(st->result, "ok") != 0 && st->error != NULL)
        (void)snprintf(why, sizeof(why), "last cycle %s: %.500s", st->result, st->error);
    else if (strcmp(st->result, "ok") != 0)
        (void)snprintf(why, sizeof(why), "last cycle %s: %zu item(s) failing", st->result,
                       items_failing(d));
    bool ready = why[0] == '\0';
    if (!ready && !d->stopping && st->result != NULL)
        d->was_unhealthy = true;
    if (ready && d->was_unhealthy) {
        d->was_unhealthy = false;
        rec_log_event(d->log, REC_LOG_INFO, "recovered: manifests valid and the last cycle ok",
                      NULL);
        rec_alerts_recovered(d->alerts, "manifests valid and the last cycle succeeded");
    }
    d->st.ready = ready;
    (void)prov_set_str(&d->st.ready_reason, ready ? NULL : why);
    rec_metrics_set_ready(d->metrics, ready, ready ? NULL : why);
}

/* The manifests loaded: valid (again). */
static void manifests_valid(rec_dmn *d)
{
    if (!d->st.manifests_valid && d->st.manifest_error != NULL)
        rec_log_event(d->log, REC_LOG_INFO, "manifests are valid again", NULL);
    d->st.manifests_valid = true;
    (void)prov_set_str(&d->st.manifest_error, NULL);
    rec_metrics_set_manifests(d->metrics, true);
    rec_alerts_manifests_ok(d->alerts);
    update_ready(d);
}

/* The manifests did not load (d->load_error says why): not ready, `manifest_error` sent once
 * per distinct problem, the last good set (if any) still reconciled. */
static void manifests_invalid(rec_dmn *d)
{
    d->st.manifests_valid = false;
    d->was_unhealthy = true;
    (void)prov_set_str(&d->st.manifest_error,
                       d->load_error ? d->load_error : "the manifests are invalid");
    rec_metrics_set_manifests(d->metrics, false);
    rec_alerts_manifest_error(d->alerts, d->st.manifest_error);
    update_ready(d);
}

/* Reads the manifests again (watcher, interval): a valid set replaces the old one; an invalid one
 * keeps it. With if_changed (the interval), a valid set whose files are unchanged since it was
 * read (spec_stamp_unchanged) is kept without reading them. Returns 0 or the load's error. */
static int refresh_manifests(rec_dmn *d, bool if_changed)
{
    spec_stamp *stamp = NULL;
    (void)spec_stamp_take((const char *const *)d->paths, d->n_paths, MANIFEST_RACY_MS, &stamp);
    if (if_changed && d->desired != NULL && d->st.manifests_valid &&
        spec_stamp_unchanged(d->stamp, stamp)) {
        spec_stamp_free(stamp);
        rec_log_event(d->log, REC_LOG_DEBUG, "manifests unchanged; not read again", NULL);
        return 0;
    }
    spec_set *set = NULL;
    int rc = load_set(d, d->paths, d->n_paths, &set);
    if (rc < 0) {
        spec_stamp_free(stamp);
        manifests_invalid(d);
        return rc;
    }
    spec_set_free(d->desired);
    d->desired = set;
    spec_stamp_free(d->stamp);
    d->stamp = stamp; /* taken before the read: a change during it shows at the next interval */
    manifests_valid(d);
    return 0;
}

/* One webhook delivery attempt (rec_webhook): a log line (the target without its path, which
 * may hold a token) and the notify metrics. */
static void on_hook_report(void *ud, const rec_webhook_report *r)
{
    rec_dmn *d = ud;
    char attempt[16], status[16];
    (void)snprintf(attempt, sizeof(attempt), "%u", r->attempt);
    (void)snprintf(status, sizeof(status), "%ld", r->status);
    const char *result = r->ok ? "ok" : r->will_retry ? "retried" : "failed";
    rec_metrics_notify(d->metrics, result, r->dropped);
    rec_log_event(d->log,
                  r->ok           ? REC_LOG_DEBUG
                  : r->will_retry ? REC_LOG_WARN
                                  : REC_LOG_ERROR,
                  r->ok        ? "notification delivered"
                  : r->dropped ? "notification dropped"
                               : "notification failed; will retry",
                  "target", r->target, "event", r->event, "attempt", attempt, "http_status",
                  r->status ? status : NULL, "error", r->error, NULL);
}

/* ---- manifest watching (rec_watch.c) ---- */

/* A manifest path changed (from rec_watch): restarting the timer is the debounce, so a burst of
 * events gives one cycle. */
static void on_watch_event(void *ud)
{
    rec_dmn *d = ud;
    if (d->stopping)
        return;
    (void)uv_timer_start(&d->debounce_timer, on_debounce,
                         d->opts->debounce_ms ? d->opts->debounce_ms : DEFAULT_DEBOUNCE_MS, 0);
}

/* A manifest changed: reload them and run a cycle now (or right after the one running). */
static void on_change(rec_dmn *d)
{
    if (d->cycle != NULL) {
        d->change_pending = true;
        return;
    }
    int rc = refresh_manifests(d, false);
    if (rc < 0) {
        rec_log_event(d->log, REC_LOG_ERROR,
                      "manifests changed but are invalid; keeping the previous set", "error",
                      rc == -EINVAL ? "see the lines above" : strerror(-rc), NULL);
        write_status(d);
        return;
    }
    /* The user changed something: items in backoff deserve a try now. */
    rec_backoff_reset(d->backoff);
    start_cycle(d, "manifest change");
}

static void on_debounce(uv_timer_t *t)
{
    rec_dmn *d = container_of(t, rec_dmn, debounce_timer);
    if (d->stopping)
        return;
    rec_log_event(d->log, REC_LOG_INFO, "manifest change detected", NULL);
    rec_watch_arm(d->watch, d->paths, d->n_paths);
    on_change(d);
}

/* ---- cycles ---- */

static bool skip_item(void *ud, const char *address)
{
    rec_dmn *d = ud;
    if (!rec_backoff_skip(d->backoff, address, uv_now(&d->loop)))
        return false;
    rec_log_event(d->log, REC_LOG_INFO, "step skipped: backing off after failures", "address",
                  address, NULL);
    return true;
}

/* The HA fence for the executor and the client (rec_ha_may_mutate). */
static bool ha_may_mutate(void *ud)
{
    rec_dmn *d = ud;
    return rec_ha_may_mutate(d->ha);
}

static void on_cycle_event(void *ud, const rec_event *ev)
{
    rec_dmn *d = ud;
    char n1[24], n2[24];
    switch (ev->kind) {
    case REC_EV_OBSERVED:
        rec_log_event(d->log, REC_LOG_INFO, "observed", "summary", ev->text, NULL);
        break;
    case REC_EV_PLANNED:
        (void)snprintf(n1, sizeof(n1), "%u", ev->n_total);
        rec_log_event(d->log, REC_LOG_INFO, "planned", "steps", n1, NULL);
        break;
    case REC_EV_STEP_START:
        rec_log_event(d->log, REC_LOG_INFO, "step started", "address", ev->address, "action",
                      ev->action, "image_id", ev->image_id, NULL);
        break;
    case REC_EV_STEP_DONE:
        (void)snprintf(n1, sizeof(n1), "%u", ev->n_done);
        (void)snprintf(n2, sizeof(n2), "%u", ev->n_total);
        rec_log_event(d->log, REC_LOG_INFO, "step done", "address", ev->address, "action",
                      ev->action, "image_id", ev->image_id, "done", n1, "total", n2, NULL);
        rec_alerts_step(d->alerts, ev->address, ev->action, ev->image_id, false, NULL);
        update_live(d);
        break;
    case REC_EV_STEP_FAILED: {
        char *norm = rec_log_normalise(ev->text);
        rec_log_event(d->log, REC_LOG_ERROR, "step failed", "address", ev->address, "action",
                      ev->action, "image_id", ev->image_id, "error", ev->text, "error_key", norm,
                      NULL);
        rec_alerts_step(d->alerts, ev->address, ev->action, NULL, true, ev->text);
        if (ev->address != NULL && norm != NULL) {
            rec_log_scrub(d->log, norm);
            (void)rec_backoff_note(d->backoff, ev->address, norm);
        }
        free(norm);
        update_live(d);
        break;
    }
    case REC_EV_WAITING: {
        /* Every tick at debug level; a long wait at info, the first after 3 s, then every 15 s. */
        bool shown = rec_wait_gate_pass(&d->wait_gate, ev);
        (void)snprintf(n1, sizeof(n1), "%llu", (unsigned long long)ev->wait_ms);
        (void)snprintf(n2, sizeof(n2), "%llu", (unsigned long long)ev->waited_ms);
        rec_log_event(d->log, shown ? REC_LOG_INFO : REC_LOG_DEBUG, "waiting", "for",
                      rec_wait_for_name(ev->wait_for), "what", ev->text, "address", ev->address,
                      "image_id", ev->image_id, "wait_ms", n1, "waited_ms", n2, NULL);
        break;
    }
    }
}

static void schedule_next(rec_dmn *d)
{
    if (d->stopping || d->opts->once || (d->ha != NULL && !rec_ha_may_mutate(d->ha)))
        return;
    uint64_t delay = jittered(d->interval_ms);
    d->st.next_cycle_ms = prov_now_ms() + delay;
    (void)uv_timer_start(&d->cycle_timer, on_cycle_timer, delay, 0);
}

static void do_reload(rec_dmn *d);

static void free_conflicts(rec_status_failure *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].address);
        free(v[i].message);
    }
    free(v);
}

/* Conflicts of the cycle's plan (a declared name taken by an image that is not ours): one log
 * line each, remembered for status.json with how many cycles in a row they were seen. Returns
 * their number (0 without a plan). Called by cycle_done. */
static size_t note_conflicts(rec_dmn *d, const rec_plan *plan)
{
    rec_status_failure *v = NULL;
    size_t n = 0;
    for (size_t i = 0; plan != NULL && i < plan->n_notes; i++) {
        const rec_note *no = &plan->notes[i];
        if (no->kind != REC_NOTE_CONFLICT)
            continue;
        const char *addr = no->address ? no->address : no->region ? no->region : "?";
        rec_log_event(
            d->log, REC_LOG_ERROR, "conflict: not touched", "address", addr, "image_id",
            no->image_id, "owner",
            no->conflict == REC_CONFLICT_NOT_OWNED ? (no->owner ? no->owner : "(no owner)") : NULL,
            "reason", no->text, NULL);
        unsigned count = 1;
        for (size_t k = 0; k < d->n_conflicts; k++)
            if (strcmp(d->conflicts[k].address, addr) == 0)
                count = d->conflicts[k].count + 1;
        rec_status_failure *grown = realloc(v, (n + 1) * sizeof(*v));
        if (grown == NULL)
            break;
        v = grown;
        const char *text = no->text ? no->text : "";
        char *msg = malloc(strlen(text) + sizeof("conflict: "));
        if (msg != NULL)
            (void)sprintf(msg, "conflict: %s", text);
        v[n] = (rec_status_failure){strdup(addr), msg, count, 0};
        if (v[n].address == NULL || v[n].message == NULL) {
            free(v[n].address);
            free(v[n].message);
            break;
        }
        n++;
    }
    free_conflicts(d->conflicts, d->n_conflicts);
    d->conflicts = v;
    d->n_conflicts = n;
    return plan != NULL ? rec_plan_n_notes(plan, REC_NOTE_CONFLICT) : 0;
}

/* Fighting controllers (rec_fights.h): a log line and imgrecon_item_fights_total += 1 for each
 * item found undone again twice or more in a row; status.json lists them (write_status). */
static void note_fights(rec_dmn *d, const rec_cycle_result *res)
{
    if (res->rc < 0 || res->plan == NULL)
        return;
    bool executed = !d->suspended_now && !d->stopping;
    if (rec_fights_cycle(&d->fights, res->plan, res->failed_addresses, res->n_failed, executed) <=
        0)
        return;
    for (size_t i = 0; i < d->fights.n; i++) {
        const rec_fight *e = &d->fights.v[i];
        if (!rec_fight_active(e))
            continue;
        char n[16];
        (void)snprintf(n, sizeof(n), "%u", e->undone);
        rec_log_event(d->log, REC_LOG_WARN,
                      "fighting controller: an item imgrecon fixed was found undone again",
                      "address", e->address, "fix", rec_change_kind_name(e->kind),
                      "undone_in_a_row", n, NULL);
        rec_metrics_fight(d->metrics);
    }
}

static void cycle_done(rec_cycle_result *res, void *ud)
{
    rec_dmn *d = ud;
    uint64_t now = prov_now_ms();
    double secs = (double)(uv_hrtime() - d->cycle_t0_ns) / 1e9;
    d->cycle = NULL;
    if (d->finished) {
        rec_cycle_result_free(res);
        return;
    }
    const char *result;
    bool ok = false;
    /* Items skipped because they are backing off after failures: still failing, so the cycle is
     * not a success (else last_success would advance while an item never converges). */
    size_t n_entries, backing_off = 0;
    const rec_backoff_entry *be = rec_backoff_entries(d->backoff, &n_entries);
    for (size_t i = 0; i < n_entries; i++)
        backing_off += be[i].skipped;
    (void)prov_set_str(&d->st.error, NULL);
    if (res->rc < 0) {
        result = "error";
        char *norm = rec_log_normalise(res->error ? res->error : strerror(-res->rc));
        if (norm != NULL)
            rec_log_scrub(d->log, norm);
        (void)prov_set_str(&d->st.error, norm);
        free(norm);
    } else if (res->n_failed > 0 || (backing_off > 0 && !d->stopping)) {
        result = "failed";
    } else if ((d->stopping || (d->ha != NULL && !rec_ha_may_mutate(d->ha))) &&
               res->n_skipped > 0) {
        /* Stopped by SIGTERM, or by the loss of leadership (HA): not a success. */
        result = "stopped";
    } else {
        result = "ok";
        ok = true;
    }
    size_t n_conflicts = note_conflicts(d, res->plan);
    if (n_conflicts > 0 && ok) {
        /* A declared item that cannot converge: the cycle is not a success. */
        result = "failed";
        ok = false;
    }
    note_fights(d, res);
    if (res->plan != NULL) {
        /* A prune guard holds deletes back: say so every cycle, as plan and apply do. */
        for (size_t i = 0; i < res->plan->n_notes; i++)
            if (res->plan->notes[i].kind == REC_NOTE_GUARD)
                rec_log_event(d->log, REC_LOG_WARN, "prune refused", "reason",
                              res->plan->notes[i].text, NULL);
        d->st.drift = (unsigned)rec_plan_n_changes(res->plan);
        size_t steps = res->plan->n_steps;
        d->st.pending = steps > res->n_done ? (unsigned)(steps - res->n_done) : 0;
    }
    d->st.done = res->n_done;
    d->st.failed = res->n_failed;
    d->st.skipped = res->n_skipped;
    d->st.cycles++;
    d->st.cycle_end_ms = now;
    if (ok)
        d->st.last_success_ms = now;
    (void)prov_set_str(&d->st.result, result);
    (void)rec_backoff_cycle_end(d->backoff, res->failed_addresses, res->n_failed, uv_now(&d->loop));
    rec_metrics_cycle(d->metrics, result, secs, d->st.drift, d->st.pending, ok,
                      (double)now / 1000.0);
    rec_metrics_set_conflicts(d->metrics, (unsigned)n_conflicts);
    rec_metrics_set_items_failing(d->metrics, (unsigned)items_failing(d));
    update_ready(d);
    rec_alerts_cycle_end(d->alerts, res->rc < 0 ? NULL : res->plan, d->st.error, !d->suspended_now);

    char n_done[16], n_failed[16], n_pending[16], n_drift[16], dur[32], n_backoff[16];
    (void)snprintf(n_backoff, sizeof(n_backoff), "%zu", backing_off);
    (void)snprintf(n_done, sizeof(n_done), "%u", res->n_done);
    (void)snprintf(n_failed, sizeof(n_failed), "%u", res->n_failed);
    (void)snprintf(n_pending, sizeof(n_pending), "%u", d->st.pending);
    (void)snprintf(n_drift, sizeof(n_drift), "%u", d->st.drift);
    (void)snprintf(dur, sizeof(dur), "%.3f", secs);
    rec_log_event(d->log, res->rc < 0 || res->n_failed ? REC_LOG_ERROR : REC_LOG_INFO,
                  "cycle finished", "result", result, "drift", n_drift, "done", n_done, "failed",
                  n_failed, "backing_off", backing_off ? n_backoff : NULL, "pending", n_pending,
                  "duration_s", dur, "suspended", d->suspended_now ? "true" : NULL, "error",
                  d->st.error, NULL);
    if (d->opts->once)
        d->exit_code = ok ? 0 : 1;
    rec_cycle_result_free(res);
    /* The cycle's observation, plan and answers are freed now: hand the heap's free pages back
     * to the system so the idle daemon does not keep its peak (BENCHMARKS.md "Daemon idle
     * cost"). */
    (void)malloc_trim(0);

    if (d->stopping || d->opts->once) {
        d->st.next_cycle_ms = 0;
        finish(d);
        return;
    }
    (void)prov_set_str(&d->st.state, "idle");
    schedule_next(d);
    write_status(d);
    update_live(d);
    if (d->reload_pending) {
        d->reload_pending = false;
        d->change_pending = false;
        do_reload(d);
    } else if (d->change_pending) {
        d->change_pending = false;
        on_change(d);
    }
}

static void start_cycle(rec_dmn *d, const char *why)
{
    if (d->cycle != NULL || d->stopping || d->finished)
        return;
    if (d->ha != NULL && !rec_ha_may_mutate(d->ha))
        return; /* a standby observes nothing; it starts when it becomes leader (on_ha_role) */
    (void)uv_timer_stop(&d->cycle_timer);
    if (d->desired == NULL) {
        /* Started on invalid manifests and never had a good set: nothing is reconciled (an empty
         * desired set would read as "delete everything"); the watcher and the interval retry. */
        rec_log_event(d->log, REC_LOG_WARN, "no valid manifests yet: cycle skipped", "trigger", why,
                      NULL);
        (void)prov_set_str(&d->st.state, "idle");
        schedule_next(d);
        write_status(d);
        return;
    }
    rec_alerts_cycle_start(d->alerts);
    d->suspended_now = d->cfg->suspend || suspend_file(d);
    rec_cycle_opts o = {
        .cfg = d->cfg,
        .desired = d->desired,
        .client = d->setup->client,
        .pacer = d->setup->pacer,
        .state_dir = d->setup->state_dir,
        .execute = !d->suspended_now,
        .saved = NULL,
        .skip_fingerprints = true, /* the daemon renders no plan document */
        .skip_item = skip_item,
        .may_mutate = d->ha != NULL ? ha_may_mutate : NULL,
        .on_event = on_cycle_event,
        .ud = d,
    };
    rec_log_event(d->log, REC_LOG_INFO, "cycle started", "trigger", why, "suspended",
                  d->suspended_now ? "true" : NULL, NULL);
    d->cycle_t0_ns = uv_hrtime();
    d->st.cycle_start_ms = prov_now_ms();
    d->st.next_cycle_ms = 0;
    d->st.suspended = d->suspended_now;
    int rc = rec_cycle_start(&d->loop, &o, cycle_done, d, &d->cycle);
    if (rc < 0) {
        d->cycle = NULL;
        rec_log_event(d->log, REC_LOG_ERROR, "cannot start a cycle", "error", strerror(-rc), NULL);
        if (d->opts->once) {
            d->exit_code = 1;
            finish(d);
            return;
        }
        schedule_next(d);
        return;
    }
    (void)prov_set_str(&d->st.state, "reconciling");
    write_status(d);
    update_live(d);
}

static void on_cycle_timer(uv_timer_t *t)
{
    rec_dmn *d = container_of(t, rec_dmn, cycle_timer);
    /* Manifests are read again when their files changed (the watcher may miss a change, on a
     * network filesystem say); an invalid edit keeps the previous set. */
    if (refresh_manifests(d, true) < 0)
        rec_log_event(d->log, REC_LOG_ERROR,
                      d->desired ? "manifests are invalid; reconciling the previous set"
                                 : "manifests are still invalid; nothing to reconcile yet",
                      NULL);
    start_cycle(d, "interval");
}

/* ---- reload and stop ---- */

static bool str_differs(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a != b;
    return strcmp(a, b) != 0;
}

/* Registers with the log (add) or lets it forget every secret a credential holds: its own
 * secret and token and, for an assumed role, the long-term key that assumes it. */
static void register_cred(rec_dmn *d, const prov_credential *c, bool add)
{
    const char *const secrets[] = {c->access_key_secret, c->security_token, c->base_key_secret,
                                   c->base_token};
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
        if (add)
            (void)rec_log_add_secret(d->log, secrets[i]);
        else
            rec_log_forget_secret(d->log, secrets[i]);
    }
}

/* rec_setup_opts.on_cred_refreshed: the log learns the new secret and token before the client
 * signs with them, and forgets the replaced ones (whose calls still answering had their API
 * messages redacted by the provider), so the list stays as long as the live set however long
 * the daemon runs. The current setup's credential is registered again in case it shared a value
 * with the replaced one. */
static void on_cred_refreshed(void *ud, const prov_credential *old, const prov_credential *fresh)
{
    rec_dmn *d = ud;
    register_cred(d, old, false);
    register_cred(d, fresh, true);
    if (d->setup != NULL && &d->setup->cred != old)
        register_cred(d, &d->setup->cred, true);
}

/* Registers with the log what no line may show: each webhook's secret and its whole URL (Slack
 * and DingTalk URLs carry their token; lines name a webhook by scheme://host:port only). */
static void register_hook_secrets(rec_dmn *d, const spec_config *cfg)
{
    for (size_t i = 0; i < rec_webhook_n_targets(d->hooks); i++)
        (void)rec_log_add_secret(d->log, rec_webhook_secret(d->hooks, i));
    for (size_t i = 0; i < cfg->n_notify; i++)
        (void)rec_log_add_secret(d->log, cfg->notify[i].url);
}

/* The webhooks and owner of cfg (reload): a secret that cannot be read keeps the previous
 * targets and is logged, without the secret. Secrets are registered with the
 * log so that no line ever shows them. */
static void configure_hooks(rec_dmn *d, const spec_config *cfg)
{
    char *err = NULL;
    if (rec_webhook_set_owner(d->hooks, cfg->owner) < 0)
        rec_log_event(d->log, REC_LOG_ERROR, "notify: out of memory; keeping the previous owner",
                      NULL);
    int rc = rec_webhook_configure(d->hooks, cfg->notify, cfg->n_notify, &err);
    if (rc < 0) {
        rec_log_event(d->log, REC_LOG_ERROR, "notify: keeping the previous webhooks", "error",
                      err ? err : strerror(-rc), NULL);
        free(err);
        return;
    }
    register_hook_secrets(d, cfg);
}

/* Manifest paths as manifest_paths hands them out, so that one cleanup frees both. */
typedef struct path_list {
    char **v;
    size_t n;
} path_list;

static void path_list_clear(path_list *p)
{
    if (p->v != NULL)
        free_paths(p->v, p->n);
    p->v = NULL;
    p->n = 0;
}

PROV_DEFINE_FREEP(spec_config, free_cfg)

/* Whether a reload changes what only a new setup can apply: the endpoint, the signature, the
 * profile, the CA file or the account id. */
static bool setup_settings_differ(const spec_config *a, const spec_config *b)
{
    return str_differs(a->endpoint, b->endpoint) || a->signature != b->signature ||
           str_differs(a->profile, b->profile) || str_differs(a->ca_file, b->ca_file) ||
           str_differs(a->account_id, b->account_id);
}

/* A setup for the reloaded ncfg: credentials resolved again (environment and files read,
 * roles assumed: a blocking STS call), a pacer and a client, in the state directory of the
 * current setup (the one the daemon locked, perhaps the fallback of an unusable state_dir). Its
 * secrets are registered with the log and the HA fence guards its client before it is
 * returned. Returns 0, or a negative errno with *ret_error (malloc'd or NULL) saying why. */
static int reload_setup(rec_dmn *d, spec_config *ncfg, rec_setup **ret, char **ret_error)
{
    rec_setup_opts so = {.state_dir_explicit = true,
                         .on_call = on_call,
                         .on_cred_error = on_cred_error,
                         .on_cred_refreshed = on_cred_refreshed,
                         .on_wait = on_wait,
                         .ud = d};
    char *configured = ncfg->state_dir;
    ncfg->state_dir = d->setup->state_dir; /* copied by rec_setup_new */
    int rc = rec_setup_new(&d->loop, ncfg, &so, ret, ret_error);
    ncfg->state_dir = configured;
    if (rc < 0)
        return rc;
    register_cred(d, &(*ret)->cred, true);
    if (d->ha != NULL)
        prov_client_set_fence((*ret)->client, ha_may_mutate, d);
    return 0;
}

/* reload_swap's setup step: every reload builds a new setup, so that rotated keys are read
 * again. When that fails and the setup's settings are unchanged, the previous setup stays, on
 * ncfg, with a warning; when they changed, the reload is refused (logged; the previous config,
 * still d->cfg, stays). Returns 0 or a negative errno. */
static int swap_setup(rec_dmn *d, spec_config *ncfg)
{
    rec_setup *nsetup = NULL;
    char *err = NULL;
    int rc = reload_setup(d, ncfg, &nsetup, &err);
    if (rc < 0 && setup_settings_differ(ncfg, d->cfg)) {
        rec_log_event(d->log, REC_LOG_ERROR,
                      "reload refused: cannot set up the new endpoint or credentials", "error",
                      err ? err : strerror(-rc), NULL);
        free(err);
        return rc;
    }
    if (rc < 0) {
        rec_log_event(d->log, REC_LOG_WARN,
                      "credentials could not be re-read; keeping the previous ones", "error",
                      err ? err : strerror(-rc), NULL);
        free(err);
        d->setup->cfg = ncfg;
        free_cfg(d->cfg);
        return 0;
    }
    /* The log forgets the replaced setup's secrets, as after a refresh, so that reloads do not
     * grow the list, and learns the new ones again in case they are the same. The replaced
     * setup frees itself (credentials wiped) once its client has closed, then the config it
     * borrowed goes too. */
    register_cred(d, &d->setup->cred, false);
    register_cred(d, &nsetup->cred, true);
    rec_setup_close(d->setup, free_cfg_cb, d->cfg);
    d->setup = nsetup;
    return 0;
}

/* do_reload's work: reads config and manifests again and swaps them in only when both are
 * valid. Returns 0, or a negative errno after logging why the reload was refused (the previous
 * config and manifests stay). */
static int reload_swap(rec_dmn *d)
{
    _cleanup_(free_cfgp) spec_config *ncfg = NULL;
    _cleanup_(spec_set_freep) spec_set *set = NULL;
    _cleanup_(path_list_clear) path_list paths = {0};

    int rc = load_config(d, &ncfg);
    if (rc < 0) {
        rec_log_event(d->log, REC_LOG_ERROR,
                      "reload refused: the config is invalid; keeping the previous config and "
                      "manifests",
                      NULL);
        return rc;
    }
    if (str_differs(ncfg->state_dir, d->cfg->state_dir)) {
        rec_log_event(d->log, REC_LOG_WARN,
                      "state_dir cannot change on reload; restart the service to move it",
                      "state_dir", d->cfg->state_dir, NULL);
        (void)prov_set_str(&ncfg->state_dir, d->cfg->state_dir);
    }
    if (ncfg->n_ha_endpoints != d->cfg->n_ha_endpoints ||
        ncfg->ha_lease_ttl_ms != d->cfg->ha_lease_ttl_ms ||
        str_differs(ncfg->ha_prefix, d->cfg->ha_prefix))
        rec_log_event(d->log, REC_LOG_WARN, "ha changes take effect after a restart", NULL);
    if (str_differs(ncfg->metrics_listen, d->cfg->metrics_listen))
        rec_log_event(d->log, REC_LOG_WARN, "metrics_listen changes take effect after a restart",
                      NULL);
    rc = manifest_paths(d, ncfg, &paths.v, &paths.n);
    if (rc == 0)
        rc = load_set(d, paths.v, paths.n, &set);
    if (rc < 0) {
        rec_log_event(d->log, REC_LOG_ERROR,
                      "reload refused: the manifests are invalid; keeping the previous set",
                      "error", rc == -EINVAL ? "see the lines above" : strerror(-rc), NULL);
        manifests_invalid(d);
        write_status(d);
        return rc;
    }
    rc = swap_setup(d, ncfg);
    if (rc < 0)
        return rc;
    configure_hooks(d, ncfg);
    d->cfg = PROV_TAKE_PTR(ncfg);
    spec_set_free(d->desired);
    free_paths(d->paths, d->n_paths);
    d->desired = PROV_TAKE_PTR(set);
    spec_stamp_free(d->stamp); /* the next interval reads them and stamps them */
    d->stamp = NULL;
    d->n_paths = paths.n;
    d->paths = PROV_TAKE_PTR(paths.v);
    d->interval_ms = interval_for(d, d->cfg);
    rec_backoff_set_base(d->backoff, d->interval_ms, d->interval_ms / 10);
    rec_backoff_reset(d->backoff);
    if (d->cfg->log_format == SPEC_LOG_JSON)
        rec_log_set_json(d->log, true);
    char nimg[24];
    (void)snprintf(nimg, sizeof(nimg), "%zu", d->desired->n_images);
    rec_log_event(d->log, REC_LOG_INFO, "reloaded", "images", nimg, NULL);
    manifests_valid(d);
    return 0;
}

/* SIGHUP (on_sighup, or after the current cycle): reload, on success watch the new manifests,
 * tell the service manager it is done either way, and on success run a cycle. The watcher is
 * re-armed before READY=1, as at start: whoever waits for READY=1 and then edits a manifest
 * must wake a cycle, not wait for the interval. */
static void do_reload(rec_dmn *d)
{
    (void)rec_notify_reloading();
    rec_log_event(d->log, REC_LOG_INFO, "reloading config and manifests", NULL);
    int rc = reload_swap(d);
    if (rc == 0)
        rec_watch_arm(d->watch, d->paths, d->n_paths);
    (void)rec_notify_ready();
    if (rc == 0)
        start_cycle(d, "reload");
}

static void on_sighup(uv_signal_t *h, int signum)
{
    rec_dmn *d = container_of(h, rec_dmn, sighup);
    if (d->stopping)
        return;
    if (d->cycle != NULL) {
        rec_log_event(d->log, REC_LOG_INFO, "reload requested; it runs after the current cycle",
                      NULL);
        d->reload_pending = true;
        return;
    }
    do_reload(d);
}

static void on_stop_timeout(uv_timer_t *t)
{
    rec_dmn *d = container_of(t, rec_dmn, stop_timer);
    rec_log_event(d->log, REC_LOG_WARN,
                  "the call in flight did not finish in time; abandoning it (the journal lets the "
                  "next run recover)",
                  NULL);
    finish(d);
}

static void on_stop_signal(uv_signal_t *h, int signum)
{
    rec_dmn *d = h->data;
    if (d->stopping) {
        rec_log_event(d->log, REC_LOG_INFO, "already stopping", NULL);
        return;
    }
    d->stopping = true;
    (void)rec_notify_stopping();
    rec_metrics_set_health(d->metrics, false, "stopping");
    update_ready(d);
    rec_log_event(d->log, REC_LOG_INFO, "stopping", "signal", strsignal(signum), NULL);
    (void)uv_timer_stop(&d->cycle_timer);
    (void)uv_timer_stop(&d->debounce_timer);
    if (d->cycle != NULL) {
        rec_cycle_stop(d->cycle);
        uint64_t ms = d->opts->stop_timeout_ms ? d->opts->stop_timeout_ms : DEFAULT_STOP_TIMEOUT_MS;
        (void)uv_timer_start(&d->stop_timer, on_stop_timeout, ms, 0);
        return;
    }
    finish(d);
}

static void on_watchdog(uv_timer_t *t)
{
    (void)rec_notify_watchdog();
}

/* Closes the webhooks: what is still under way is abandoned (it never delays a stop). */
static void close_hooks(rec_dmn *d)
{
    if (d->hooks != NULL && rec_webhook_pending(d->hooks) > 0)
        rec_log_event(d->log, REC_LOG_WARN, "notify: stopping with notifications undelivered",
                      NULL);
    rec_alerts_free(d->alerts);
    d->alerts = NULL;
    rec_webhook_free(d->hooks);
    d->hooks = NULL;
}

/* Closes every service on the loop that start() may have opened: HA (the lease revoked), the
 * manifest watcher, the webhooks, the daemon's timers and signals, and the setup (its client
 * closes and the setup is freed from the client's last close callback). Each part accepts what
 * was never opened, so this serves both ends: finish() after a run, and rec_daemon_run after a
 * failed start. The loop must run afterwards for the close callbacks. */
static void close_services(rec_dmn *d)
{
    rec_ha_stop(d->ha);
    d->ha = NULL;
    rec_watch_free(d->watch);
    d->watch = NULL;
    close_hooks(d);
    if (d->handles_open) {
        uv_close((uv_handle_t *)&d->cycle_timer, NULL);
        uv_close((uv_handle_t *)&d->debounce_timer, NULL);
        uv_close((uv_handle_t *)&d->watchdog_timer, NULL);
        uv_close((uv_handle_t *)&d->stop_timer, NULL);
        uv_close((uv_handle_t *)&d->sighup, NULL);
        uv_close((uv_handle_t *)&d->sigterm, NULL);
        uv_close((uv_handle_t *)&d->sigint, NULL);
        d->handles_open = false;
    }
    rec_setup_close(d->setup, NULL, NULL);
    d->setup = NULL;
}

/* Ends the daemon after a run: status "stopped" written, metrics stopped, every service closed
 * and "stopped" logged; the loop then runs out. */
static void finish(rec_dmn *d)
{
    if (d->finished)
        return;
    d->finished = true;
    (void)prov_set_str(&d->st.state, "stopped");
    d->st.next_cycle_ms = 0;
    write_status(d);
    rec_metrics_stop(d->metrics);
    close_services(d);
    rec_log_event(d->log, REC_LOG_INFO, "stopped", NULL);
}

/* ---- start ---- */

static int init_handles(rec_dmn *d)
{
    int rc = uv_timer_init(&d->loop, &d->cycle_timer);
    if (rc == 0)
        rc = uv_timer_init(&d->loop, &d->debounce_timer);
    if (rc == 0)
        rc = uv_timer_init(&d->loop, &d->watchdog_timer);
    if (rc == 0)
        rc = uv_timer_init(&d->loop, &d->stop_timer);
    if (rc == 0)
        rc = uv_signal_init(&d->loop, &d->sighup);
    if (rc == 0)
        rc = uv_signal_init(&d->loop, &d->sigterm);
    if (rc == 0)
        rc = uv_signal_init(&d->loop, &d->sigint);
    /* uv_*_init on timers and signals cannot fail on Linux after the loop is up. */
    d->handles_open = rc == 0;
    if (rc < 0)
        return rc;
    d->sigterm.data = d;
    d->sigint.data = d;
    rc = uv_signal_start(&d->sigterm, on_stop_signal, SIGTERM);
    if (rc == 0)
        rc = uv_signal_start(&d->sigint, on_stop_signal, SIGINT);
    if (rc == 0 && !d->opts->once)
        rc = uv_signal_start(&d->sighup, on_sighup, SIGHUP);
    return rc;
}

/* Writes `<state_dir>/metrics.addr` (unique temp file + rename) so that tools find a port-0
 * listener. */
static void write_metrics_addr(rec_dmn *d, const char *addr)
{
    char text[512];
    int n = snprintf(text, sizeof(text), "%s\n", addr);
    if (n > 0 && (size_t)n < sizeof(text))
        (void)prov_statedir_write_file(state_dir(d), "metrics.addr", text, (size_t)n, 0644);
}

/* Start step: the config (logged when invalid), the log format and the interval. */
static int start_config(rec_dmn *d)
{
    int rc = load_config(d, &d->cfg);
    if (rc < 0) {
        rec_log_event(d->log, REC_LOG_ERROR, "cannot start: the config is invalid", NULL);
        return rc;
    }
    if (d->cfg->log_format == SPEC_LOG_JSON)
        rec_log_set_json(d->log, true);
    d->interval_ms = interval_for(d, d->cfg);
    return 0;
}

/* Start step: the manifests (every problem logged). Invalid or missing manifests do not stop
 * the daemon (a service restarting on them would crash-loop): it starts not ready, with no set
 * to reconcile, watches the paths (or their nearest existing parent) and converges once they
 * are fixed. Only --once, which has nothing to wait for, fails. */
static int start_manifests(rec_dmn *d)
{
    int rc = manifest_paths(d, d->cfg, &d->paths, &d->n_paths);
    if (rc == 0)
        rc = load_set(d, d->paths, d->n_paths, &d->desired);
    if (rc == -ENOMEM || (rc < 0 && d->opts->once)) {
        rec_log_event(d->log, REC_LOG_ERROR, "cannot start: the manifests are invalid", "error",
                      rc == -EINVAL ? "see the lines above" : strerror(-rc), NULL);
        return rc;
    }
    if (rc < 0)
        rec_log_event(d->log, REC_LOG_ERROR,
                      "the manifests are invalid: running, not ready, until they are fixed",
                      "error", d->load_error, NULL);
    return 0;
}

/* Start step: the webhooks (config `notify`) and what they are told. An unreadable or too open
 * secret_file stops the start, as an unreadable credentials file does. */
static int start_hooks(rec_dmn *d)
{
    rec_webhook_opts wo = {.owner = d->cfg->owner, .on_report = on_hook_report, .ud = d};
    int rc = rec_webhook_new(&d->loop, &wo, &d->hooks);
    if (rc == 0)
        rc = rec_alerts_new(d->hooks, d->log, &d->alerts);
    if (rc < 0)
        return rc;
    char *err = NULL;
    rc = rec_webhook_configure(d->hooks, d->cfg->notify, d->cfg->n_notify, &err);
    if (rc < 0) {
        rec_log_event(d->log, REC_LOG_ERROR, "cannot start", "error", err ? err : strerror(-rc),
                      NULL);
        free(err);
        return rc;
    }
    register_hook_secrets(d, d->cfg);
    return 0;
}

/* Start step: the session (credentials, client, pacer, state directory); its secrets are
 * registered with the log before anything else is logged. */
static int start_setup(rec_dmn *d)
{
    char *err = NULL;
    rec_setup_opts so = {.state_dir_explicit = d->opts->state_dir_explicit,
                         .on_call = on_call,
                         .on_cred_error = on_cred_error,
                         .on_cred_refreshed = on_cred_refreshed,
                         .on_wait = on_wait,
                         .ud = d};
    int rc = rec_setup_new(&d->loop, d->cfg, &so, &d->setup, &err);
    if (rc < 0) {
        rec_log_event(d->log, REC_LOG_ERROR, "cannot start", "error", err ? err : strerror(-rc),
                      NULL);
        free(err);
        return rc;
    }
    register_cred(d, &d->setup->cred, true);
    if (d->setup->note != NULL)
        rec_log_event(d->log, REC_LOG_INFO, "state directory", "path", d->setup->state_dir, "note",
                      d->setup->note, NULL);
    return 0;
}

/* Start step: the single-writer lock on the state directory, naming the holder when taken. */
static int start_lock(rec_dmn *d)
{
    long holder = 0;
    int rc = rec_lock_acquire(d->setup->state_dir, &d->lock, &holder);
    if (rc < 0) {
        char *path = rec_lock_path_for(d->setup->state_dir);
        char msg[4400];
        if (rc == -EWOULDBLOCK)
            (void)snprintf(msg, sizeof(msg), "another imgrecon run (pid %ld) holds %s", holder,
                           path ? path : "the lock");
        else
            (void)snprintf(msg, sizeof(msg), "cannot lock %s: %s", path ? path : "the lock",
                           strerror(-rc));
        free(path);
        rec_log_event(d->log, REC_LOG_ERROR, msg, NULL);
    }
    return rc;
}

/* Start step: the per-item failure backoff, based on the interval. */
static int start_backoff(rec_dmn *d)
{
    return rec_backoff_new(
        d->interval_ms, d->opts->backoff_cap_ms ? d->opts->backoff_cap_ms : DEFAULT_BACKOFF_CAP_MS,
        d->interval_ms / 10, &d->backoff);
}

/* Start step: the loop's timers and signal handlers. */
static int start_handles(rec_dmn *d)
{
    int rc = init_handles(d);
    if (rc < 0)
        rec_log_event(d->log, REC_LOG_ERROR, "cannot start the loop", "error", uv_strerror(rc),
                      NULL);
    return rc;
}

/* Start step: the metrics endpoint when configured (not with --once). A non-loopback or
 * malformed address stops the start; any other failure only disables the endpoint. */
static int start_metrics(rec_dmn *d)
{
    if (d->cfg->metrics_listen == NULL || d->cfg->metrics_listen[0] == '\0' || d->opts->once)
        return 0;
    char *bound = NULL;
    int rc = rec_metrics_serve(d->metrics, d->cfg->metrics_listen, d->opts->metrics_allow_remote,
                               &bound);
    if (rc == -EPERM || rc == -EINVAL) {
        rec_log_event(d->log, REC_LOG_ERROR,
                      rc == -EPERM ? "metrics_listen is not a loopback address; refusing "
                                     "(pass --metrics-allow-remote to serve it anyway)"
                                   : "metrics_listen must be HOST:PORT with a numeric host",
                      "metrics_listen", d->cfg->metrics_listen, NULL);
        return rc;
    }
    if (rc < 0) {
        rec_log_event(d->log, REC_LOG_WARN, "metrics endpoint disabled", "metrics_listen",
                      d->cfg->metrics_listen, "error", strerror(-rc), NULL);
    } else {
        rec_log_event(d->log, REC_LOG_INFO, "metrics endpoint listening", "address", bound, NULL);
        write_metrics_addr(d, bound);
        d->st.metrics_addr = bound;
    }
    return 0;
}

/* Start step: the systemd watchdog ping (at half the watchdog interval) and the manifest
 * watcher (armed unless --once). */
static int start_watching(rec_dmn *d)
{
    uint64_t wd_usec = 0;
    if (rec_notify_watchdog_usec(&wd_usec) > 0 && wd_usec >= 2000) {
        uint64_t ms = wd_usec / 2000;
        (void)uv_timer_start(&d->watchdog_timer, on_watchdog, ms, ms);
    }
    int rc = rec_watch_new(&d->loop, d->log, on_watch_event, d, &d->watch);
    if (rc < 0)
        return rc;
    if (!d->opts->once)
        rec_watch_arm(d->watch, d->paths, d->n_paths);
    return 0;
}

/* Called by rec_ha on every change of role: a new leader starts a cycle from a fresh
 * observation; a process that lost the lease stops its cycle (calls in flight finish, nothing
 * new is sent: the fence already says no) and waits. */
static void on_ha_role(void *ud, rec_ha_role role)
{
    rec_dmn *d = ud;
    prov_set_str(&d->st.role, rec_ha_role_name(role));
    prov_set_str(&d->st.leader, rec_ha_leader(d->ha));
    rec_ha_role old = d->ha_role;
    d->ha_role = role;
    /* Right after losing the lease the leader last seen is still this process: unknown. */
    const char *me = rec_ha_me(d->ha), *leader = rec_ha_leader(d->ha);
    if (leader != NULL && me != NULL && role != REC_HA_LEADER && strcmp(leader, me) == 0)
        leader = NULL;
    if (role != old && (role == REC_HA_LEADER || old == REC_HA_LEADER))
        rec_alerts_leadership(d->alerts, role == REC_HA_LEADER, me, leader,
                              role == REC_HA_LEADER ? "took the leader key with its lease"
                                                    : "the lease may have lapsed or another "
                                                      "process holds the leader key");
    if (role == REC_HA_LEADER) {
        if (d->cycle != NULL)
            d->change_pending = true; /* the cut-short cycle is still finishing: then a new one */
        start_cycle(d, "became leader");
        return;
    }
    (void)uv_timer_stop(&d->cycle_timer);
    d->st.next_cycle_ms = 0;
    if (d->cycle != NULL)
        rec_cycle_stop(d->cycle);
    if (!d->finished)
        write_status(d);
}

/* Start step: with `ha`, campaign for leadership; the fence guards the client from now on. */
static int start_ha(rec_dmn *d)
{
    if (d->cfg->n_ha_endpoints == 0)
        return 0;
    rec_ha_opts ho = {d->cfg, d->log, d->metrics, on_ha_role, d};
    int rc = rec_ha_start(&d->loop, &ho, &d->ha);
    if (rc < 0) {
        rec_log_event(d->log, REC_LOG_ERROR, "cannot start: ha", "error", strerror(-rc), NULL);
        return rc;
    }
    prov_client_set_fence(d->setup->client, ha_may_mutate, d);
    prov_set_str(&d->st.state, "idle");
    write_status(d); /* a standby runs no cycle: status.json says so from the start */
    return 0;
}

/* Logs "started", reports health and READY=1. */
static void announce_started(rec_dmn *d)
{
    char nimg[24], interval[24], pid[24];
    (void)snprintf(pid, sizeof(pid), "%ld", (long)getpid());
    (void)snprintf(nimg, sizeof(nimg), "%zu", d->desired ? d->desired->n_images : 0);
    (void)snprintf(interval, sizeof(interval), "%llu", (unsigned long long)d->interval_ms);
    rec_log_event(d->log, REC_LOG_INFO, "started", "pid", pid, "images", nimg, "interval_ms",
                  interval, "state_dir", d->setup->state_dir, "credentials", d->setup->cred.source,
                  NULL);
    rec_metrics_set_health(d->metrics, true, NULL);
    if (d->desired != NULL)
        manifests_valid(d);
    else
        manifests_invalid(d);
    (void)rec_notify_ready();
}

/* Everything the daemon does before its first cycle, in order; each step logs its own failure.
 * Called once by rec_daemon_run; on an error rec_daemon_run closes what was opened. */
static int start(rec_dmn *d)
{
    static int (*const steps[])(rec_dmn *) = {
        start_config,  start_manifests, start_setup,   start_lock,     start_backoff,
        start_handles, start_hooks,     start_metrics, start_watching, start_ha,
    };
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        int rc = steps[i](d);
        if (rc < 0)
            return rc;
    }
    announce_started(d);
    start_cycle(d, "start");
    return 0;
}

int rec_daemon_run(const rec_daemon_opts *opts)
{
    rec_dmn *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return 1;
    d->opts = opts;
    d->log = opts->log;
    d->exit_code = 0;
    d->st.pid = (long)getpid();
    (void)prov_set_str(&d->st.state, "starting");
    srandom((unsigned)(getpid() ^ (unsigned)time(NULL)));
    if (uv_loop_init(&d->loop) < 0) {
        free(d);
        return 1;
    }
    int rc = rec_metrics_new(&d->metrics);
    if (rc == 0)
        rc = start(d);
    if (rc < 0) {
        d->exit_code = 1;
        d->finished = true; /* nothing to write: status stays as the last run left it */
        close_services(d);  /* no "stopped" log: the failed step logged why */
    }
    (void)uv_run(&d->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&d->loop) != 0)
        rec_log_event(d->log, REC_LOG_WARN, "the loop still had open handles at exit", NULL);
    rec_lock_release(d->lock);
    rec_metrics_free(d->metrics);
    rec_backoff_free(d->backoff);
    spec_set_free(d->desired);
    spec_stamp_free(d->stamp);
    free_paths(d->paths, d->n_paths);
    free_cfg(d->cfg);
    rec_status_clear(&d->st);
    free_conflicts(d->conflicts, d->n_conflicts);
    rec_fights_clear(&d->fights);
    free(d->load_error);
    int code = d->exit_code;
    free(d);
    return code;
}
