/* The daemon's notifications (see rec_alerts.h): items collected from the cycle's step events,
 * events decided when the cycle ends. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rec_alerts.h"
#include "rec_plan.h"

/* One item with owned strings (rec_webhook_item borrows). */
typedef struct item {
    char *address, *action, *image_id, *result, *message;
} item;

typedef struct items {
    item *v;
    size_t n;
} items;

struct rec_alerts {
    rec_webhook *hooks;
    rec_log *log;
    items done, failed;
    char *last_refused;  /* the refused notes last sent, to send only changes */
    char *last_manifest; /* the manifest problem last sent */
};

static void items_clear(items *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].address);
        free(l->v[i].action);
        free(l->v[i].image_id);
        free(l->v[i].result);
        free(l->v[i].message);
    }
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* Appends an item (strings copied; message scrubbed of secrets). */
static void items_add(rec_alerts *a, items *l, const char *address, const char *action,
                      const char *image_id, const char *result, const char *message)
{
    item *grown = realloc(l->v, (l->n + 1) * sizeof(*grown));
    if (grown == NULL)
        return;
    l->v = grown;
    item *it = &l->v[l->n++];
    *it = (item){dup_or_null(address), dup_or_null(action), dup_or_null(image_id),
                 dup_or_null(result), dup_or_null(message)};
    if (it->message != NULL)
        rec_log_scrub(a->log, it->message);
}

/* Sends one event with the items of l (borrowed views). */
static void notify(rec_alerts *a, unsigned event, const char *summary, const items *l)
{
    rec_webhook_item *v = calloc(l->n ? l->n : 1, sizeof(*v));
    if (v == NULL)
        return;
    for (size_t i = 0; i < l->n; i++)
        v[i] = (rec_webhook_item){l->v[i].address, l->v[i].action, l->v[i].image_id, l->v[i].result,
                                  l->v[i].message};
    char *s = strdup(summary);
    if (s != NULL)
        rec_log_scrub(a->log, s);
    (void)rec_webhook_send(a->hooks, event, s ? s : "", v, l->n);
    free(s);
    free(v);
}

int rec_alerts_new(rec_webhook *hooks, rec_log *log, rec_alerts **ret)
{
    rec_alerts *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return -ENOMEM;
    a->hooks = hooks;
    a->log = log;
    *ret = a;
    return 0;
}

void rec_alerts_free(rec_alerts *a)
{
    if (a == NULL)
        return;
    items_clear(&a->done);
    items_clear(&a->failed);
    free(a->last_refused);
    free(a->last_manifest);
    free(a);
}

void rec_alerts_cycle_start(rec_alerts *a)
{
    if (a == NULL)
        return;
    items_clear(&a->done);
    items_clear(&a->failed);
}

void rec_alerts_step(rec_alerts *a, const char *address, const char *action, const char *image_id,
                     bool failed, const char *message)
{
    if (a == NULL)
        return;
    items_add(a, failed ? &a->failed : &a->done, address, action, image_id,
              failed ? "failed" : "done", message);
}

/* Guards and conflicts of the plan; sent when they differ from the last ones sent. */
static void send_refused(rec_alerts *a, const rec_plan *plan)
{
    items l = {NULL, 0};
    char *key = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&key, &len);
    for (size_t i = 0; m != NULL && i < plan->n_notes; i++) {
        const rec_note *no = &plan->notes[i];
        if (no->kind != REC_NOTE_GUARD && no->kind != REC_NOTE_CONFLICT)
            continue;
        const char *addr = no->address ? no->address : no->region;
        items_add(a, &l, addr, no->kind == REC_NOTE_GUARD ? "delete" : NULL, no->image_id,
                  no->kind == REC_NOTE_GUARD ? "refused" : "conflict", no->text);
        fprintf(m, "%s|%s\n", addr ? addr : "", no->text ? no->text : "");
    }
    if (m == NULL || fclose(m) != 0) {
        items_clear(&l);
        return;
    }
    bool same = a->last_refused != NULL ? strcmp(a->last_refused, key) == 0 : len == 0;
    if (!same && l.n > 0) {
        char summary[160];
        (void)snprintf(summary, sizeof(summary),
                       "%zu item(s) refused: prune guard or a name taken by an image that is not "
                       "ours",
                       l.n);
        notify(a, SPEC_EV_REFUSED, summary, &l);
    }
    free(a->last_refused);
    a->last_refused = key;
    items_clear(&l);
}

/* The plan's changes as `drift` items (one per change, its first step's action). */
static void send_drift(rec_alerts *a, const rec_plan *plan)
{
    items l = {NULL, 0};
    for (size_t i = 0; i < plan->n_changes; i++) {
        const rec_change *c = &plan->changes[i];
        const rec_step *st = c->n_steps ? rec_plan_step(plan, c->steps[0]) : NULL;
        if (st == NULL || st->action == REC_ACT_WAIT)
            continue;
        items_add(a, &l, c->address, rec_action_name(st->action), st->image_id, "planned",
                  c->reason);
    }
    if (l.n > 0) {
        char summary[96];
        (void)snprintf(summary, sizeof(summary), "%zu change(s) found", l.n);
        notify(a, SPEC_EV_DRIFT, summary, &l);
    }
    items_clear(&l);
}

void rec_alerts_cycle_end(rec_alerts *a, const rec_plan *plan, const char *error, bool executed)
{
    if (a == NULL)
        return;
    char summary[160];
    if (plan == NULL) {
        items l = {NULL, 0};
        items_add(a, &l, NULL, NULL, NULL, "error", error ? error : "the cycle could not run");
        notify(a, SPEC_EV_FAILED, "the cycle could not run", &l);
        items_clear(&l);
        return;
    }
    send_drift(a, plan);
    send_refused(a, plan);
    if (executed && a->done.n > 0) {
        (void)snprintf(summary, sizeof(summary), "%zu step(s) done", a->done.n);
        notify(a, SPEC_EV_APPLIED, summary, &a->done);
    }
    if (a->failed.n > 0) {
        (void)snprintf(summary, sizeof(summary), "%zu step(s) failed", a->failed.n);
        notify(a, SPEC_EV_FAILED, summary, &a->failed);
    }
}

void rec_alerts_manifest_error(rec_alerts *a, const char *why)
{
    if (a == NULL)
        return;
    const char *text = why ? why : "the manifests are invalid";
    if (a->last_manifest != NULL && strcmp(a->last_manifest, text) == 0)
        return;
    free(a->last_manifest);
    a->last_manifest = strdup(text);
    items l = {NULL, 0};
    items_add(a, &l, NULL, NULL, NULL, "invalid", text);
    notify(a, SPEC_EV_MANIFEST_ERROR,
           "the manifests are invalid; the last good set is kept (none at start)", &l);
    items_clear(&l);
}

void rec_alerts_manifests_ok(rec_alerts *a)
{
    if (a == NULL)
        return;
    free(a->last_manifest);
    a->last_manifest = NULL;
}

void rec_alerts_recovered(rec_alerts *a, const char *summary)
{
    if (a == NULL)
        return;
    items l = {NULL, 0};
    notify(a, SPEC_EV_RECOVERED, summary, &l);
}

void rec_alerts_leadership(rec_alerts *a, bool leading, const char *me, const char *leader,
                           const char *why)
{
    if (a == NULL)
        return;
    char summary[320];
    if (leading)
        (void)snprintf(summary, sizeof(summary), "%.120s became leader", me ? me : "this daemon");
    else
        (void)snprintf(summary, sizeof(summary),
                       "%.120s lost leadership and stands by; leader: %.120s",
                       me ? me : "this daemon", leader ? leader : "unknown");
    items l = {NULL, 0};
    items_add(a, &l, leader, NULL, NULL, leading ? "leader" : "standby", why);
    notify(a, SPEC_EV_LEADERSHIP, summary, &l);
    items_clear(&l);
}
