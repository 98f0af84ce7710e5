/* The time/call estimate of a plan (reconcile/README.md "Data flow" step 4): a simulation of the
 * executor under the per-action sliding windows. Used by rec_plan_build (for plan's summary line),
 * by rec_cycle after loading a saved plan, and by tests/bench for the lower bound the limits allow.
 * ListCustomImages polls and the observe calls are not simulated: they have their own budget and
 * do not gate the mutating calls. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "prov_cleanup.h"
#include "rec_estimate.h"
#include "rec_plan_int.h"

/* Earliest time a call on a key may start given its log of call times (ascending). */
static uint64_t slot_time(const uint64_t *log, size_t n, spec_rate r)
{
    if (n < r.calls)
        return 0;
    return log[n - r.calls] + r.window_ms;
}

/* Greedy list scheduling, see rec_plan.h. Start times come out non-decreasing (a task becomes
 * ready no earlier than its dependencies started, and windows only move forward), so each key's
 * log stays sorted by appending. O(n^2) in the number of tasks, which is fine for plans (tens of
 * steps) and benches (hundreds). */
int rec_simulate(const rec_sim_task *tasks, size_t n, const spec_rate *rates, size_t n_rates,
                 uint64_t *ret_total_ms, uint64_t *ret_done_ms)
{
    for (size_t i = 0; i < n; i++) {
        if (tasks[i].key >= 0 && (size_t)tasks[i].key >= n_rates)
            return -EINVAL;
        for (size_t k = 0; k < tasks[i].n_deps; k++)
            if (tasks[i].deps[k] >= n)
                return -EINVAL;
    }
    for (size_t k = 0; k < n_rates; k++)
        if (rates[k].calls == 0 || rates[k].window_ms == 0)
            return -EINVAL;
    _cleanup_free_ uint64_t *done = n ? calloc(n, sizeof(*done)) : NULL;
    _cleanup_free_ bool *sched = n ? calloc(n, sizeof(*sched)) : NULL;
    /* The call log of key k is logs[k * n ...], nlog[k] times long. */
    _cleanup_free_ uint64_t *logs = n_rates && n ? calloc(n_rates, n * sizeof(*logs)) : NULL;
    _cleanup_free_ size_t *nlog = n_rates ? calloc(n_rates, sizeof(*nlog)) : NULL;
    if ((n && (!done || !sched)) || (n_rates && (!nlog || (n && !logs))))
        return -ENOMEM;
    uint64_t total = 0;
    for (size_t round = 0; round < n; round++) {
        size_t best = SIZE_MAX;
        uint64_t best_t = UINT64_MAX;
        for (size_t i = 0; i < n; i++) {
            if (sched[i])
                continue;
            uint64_t ready = 0;
            bool ok = true;
            for (size_t k = 0; k < tasks[i].n_deps && ok; k++) {
                size_t d = tasks[i].deps[k];
                ok = sched[d];
                if (ok && done[d] > ready)
                    ready = done[d];
            }
            if (!ok)
                continue;
            uint64_t t = ready;
            if (tasks[i].key >= 0) {
                size_t key = (size_t)tasks[i].key;
                uint64_t s = slot_time(logs + key * n, nlog[key], rates[key]);
                if (s > t)
                    t = s;
            }
            if (t < best_t) {
                best_t = t;
                best = i;
            }
        }
        if (best == SIZE_MAX)
            return -EINVAL; /* a dependency cycle */
        sched[best] = true;
        if (tasks[best].key >= 0) {
            size_t key = (size_t)tasks[best].key;
            logs[key * n + nlog[key]++] = best_t;
        }
        done[best] = best_t + tasks[best].duration_ms;
        if (done[best] > total)
            total = done[best];
    }
    if (ret_done_ms && n)
        memcpy(ret_done_ms, done, n * sizeof(*done));
    if (ret_total_ms)
        *ret_total_ms = total;
    return 0;
}

/* Budget keys of the mutating API actions; the last is the batched delete. */
static const char *const api_keys[] = {"CreateCustomImage",
                                       "ModifyImageShareStatus",
                                       "DeleteCustomImage",
                                       "DeleteImage",
                                       "TagResources",
                                       "UntagResources",
                                       "AddCustomImageShareAccount",
                                       "RemoveCustomImageShareAccount",
                                       "DeleteCustomImages"};
#define KEY_BATCH 8
#define BATCH_MAX 15 /* DeleteCustomImages takes up to 15 ids */
#define NO_BATCH SIZE_MAX
#define N_KEYS (sizeof(api_keys) / sizeof(api_keys[0]))

static int key_of(rec_action a)
{
    const char *api = rec_action_api(a);
    for (size_t k = 0; api && k < N_KEYS; k++)
        if (strcmp(api, api_keys[k]) == 0)
            return (int)k;
    return -1;
}

/* Which steps are sent in the call of an earlier step: tag steps of one batch key, up to 50
 * images a call (the executor's grouping, rec_exec.c). rides[i] is set for those; sorting by
 * (key, id) keeps this O(n log n) for plans of many images. Returns 0 or -ENOMEM. */
typedef struct batch_ref {
    char key[REC_HASH_HEX + 1];
    size_t idx;
} batch_ref;

static int cmp_batch_ref(const void *a, const void *b)
{
    const batch_ref *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

static int batch_riders(const rec_plan *plan, bool *rides)
{
    size_t n = 0;
    for (size_t i = 0; i < plan->n_steps; i++)
        n += plan->steps[i].action == REC_ACT_TAG || plan->steps[i].action == REC_ACT_UNTAG;
    if (n == 0)
        return 0;
    batch_ref *v = calloc(n, sizeof(*v));
    if (!v)
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < plan->n_steps; i++)
        if (plan->steps[i].action == REC_ACT_TAG || plan->steps[i].action == REC_ACT_UNTAG) {
            rec_step_batch_key(&plan->steps[i], v[k].key);
            v[k++].idx = i;
        }
    qsort(v, n, sizeof(*v), cmp_batch_ref);
    for (size_t i = 0, rank = 0; i < n; i++) {
        rank = i > 0 && strcmp(v[i].key, v[i - 1].key) == 0 ? rank + 1 : 0;
        rides[v[i].idx] = rank % 50 != 0;
    }
    free(v);
    return 0;
}

/* Groups the SWAS deletes of each region, in step order, into batches of up to 15 as the executor
 * sends them (one DeleteCustomImages call each); a group of one stays a DeleteCustomImage.
 * batch_of[i] is step i's batch or NO_BATCH. Returns the number of batches. */
static size_t assign_batches(const rec_plan *plan, size_t *batch_of)
{
    size_t nb = 0;
    for (size_t i = 0; i < plan->n_steps; i++)
        batch_of[i] = NO_BATCH;
    for (size_t i = 0; i < plan->n_steps; i++) {
        const rec_step *a = &plan->steps[i];
        if (a->action != REC_ACT_DELETE || batch_of[i] != NO_BATCH || a->region == NULL)
            continue;
        size_t members[BATCH_MAX], n = 0;
        for (size_t k = i; k < plan->n_steps && n < BATCH_MAX; k++) {
            const rec_step *b = &plan->steps[k];
            if (b->action == REC_ACT_DELETE && batch_of[k] == NO_BATCH && b->region != NULL &&
                strcmp(b->region, a->region) == 0)
                members[n++] = k;
        }
        if (n < 2)
            continue;
        for (size_t k = 0; k < n; k++)
            batch_of[members[k]] = nb;
        nb++;
    }
    return nb;
}

/* Counts and simulated time of a plan. A create takes create_wait_ms to be done (status 1); so
 * does a WAIT step (the image is already on its way, the remaining time is unknown). Deletes are
 * simulated as the executor batches them: one DeleteCustomImages task per batch, after every
 * member's dependencies, and the members after it, so deletes in a region cost ceil(n/15)
 * calls. */
void rec_plan_estimate(rec_plan *plan, const rec_options *opts)
{
    rec_options defaults;
    if (!opts) {
        rec_options_init(&defaults);
        opts = &defaults;
    }
    rec_estimate *e = &plan->estimate;
    memset(e, 0, sizeof(*e));
    e->rate_default = opts->rate_default;
    if (e->rate_default.calls == 0 || e->rate_default.window_ms == 0)
        e->rate_default = (spec_rate){10, 60000};
    e->rates_uniform = true;
    e->create_wait_ms = opts->create_wait_ms;
    e->create_wait_samples = opts->create_wait_samples;
    spec_rate rates[N_KEYS];
    for (size_t k = 0; k < N_KEYS; k++)
        rates[k] = rec_options_rate(opts, api_keys[k]);
    for (size_t i = 0; i < plan->n_changes; i++) {
        switch (plan->changes[i].kind) {
        case REC_CH_CREATE:
            e->n_create++;
            break;
        case REC_CH_DELETE:
            e->n_delete++;
            break;
        case REC_CH_REPLACE:
            e->n_replace++;
            break;
        case REC_CH_ECS_DELETE:
            e->n_ecs_delete++;
            break;
        case REC_CH_WAIT:
            e->n_wait++;
            break;
        case REC_CH_TAGS:
            e->n_tags++;
            break;
        case REC_CH_ADOPT:
            e->n_adopt++;
            break;
        case REC_CH_ACCOUNTS:
            e->n_accounts++;
            break;
        default:
            break;
        }
    }
    size_t ns = plan->n_steps;
    size_t *batch_of = ns ? calloc(ns, sizeof(*batch_of)) : NULL;
    size_t nb = batch_of ? assign_batches(plan, batch_of) : 0;
    e->delete_batch_calls = (unsigned)nb;
    if (nb > 0 && (rates[KEY_BATCH].calls != e->rate_default.calls ||
                   rates[KEY_BATCH].window_ms != e->rate_default.window_ms))
        e->rates_uniform = false;
    /* Tasks: the steps, then one per batch. A batch takes its members' dependencies; a member
     * depends on its batch only. Two passes: count each task's dependencies, then fill them. */
    bool *riders = ns ? calloc(ns, sizeof(*riders)) : NULL;
    if (riders && batch_riders(plan, riders) < 0) {
        free(riders);
        riders = NULL;
    }
    size_t nt = ns + nb;
    rec_sim_task *tasks = calloc(nt ? nt : 1, sizeof(*tasks));
    size_t *off = calloc(nt + 1, sizeof(*off));
    size_t n_deps = 0;
    for (size_t i = 0; i < ns; i++)
        n_deps += plan->steps[i].n_depends + 1;
    size_t *deps = calloc(n_deps ? n_deps : 1, sizeof(*deps));
    bool ok = tasks && off && deps && (!ns || batch_of);
    for (size_t i = 0; ok && i < ns; i++) {
        bool batched = batch_of[i] != NO_BATCH;
        off[batched ? ns + batch_of[i] : i] += plan->steps[i].n_depends;
        off[i] += batched;
    }
    for (size_t t = 0, sum = 0; ok && t <= nt; t++) {
        size_t c = off[t];
        off[t] = sum;
        sum += c;
        if (t < nt)
            tasks[t].deps = deps + off[t];
    }
    for (size_t i = 0; i < ns; i++) {
        const rec_step *st = &plan->steps[i];
        bool batched = batch_of != NULL && batch_of[i] != NO_BATCH;
        if (st->action == REC_ACT_SHARE)
            e->n_share++;
        else if (st->action == REC_ACT_UNSHARE)
            e->n_unshare++;
        /* Batched tag steps (same action, region and tag delta) ride on the first one's call;
         * batched deletes are counted once per batch (delete_batch_calls). */
        bool rides = riders && riders[i];
        if ((unsigned)st->action < REC_ACT__COUNT && st->action != REC_ACT_WAIT && !batched &&
            !rides)
            e->api_calls[st->action]++;
        int key = rides ? -1 : key_of(st->action);
        if (key >= 0 && !batched &&
            (rates[key].calls != e->rate_default.calls ||
             rates[key].window_ms != e->rate_default.window_ms))
            e->rates_uniform = false;
        if (!ok)
            continue;
        tasks[i].key = batched ? -1 : key;
        tasks[i].duration_ms =
            (st->action == REC_ACT_CREATE || st->action == REC_ACT_WAIT) ? opts->create_wait_ms : 0;
        rec_sim_task *dst = batched ? &tasks[ns + batch_of[i]] : &tasks[i];
        if (batched)
            deps[off[i] + tasks[i].n_deps++] = ns + batch_of[i];
        size_t base = off[dst - tasks];
        for (size_t k = 0; k < st->n_depends; k++)
            if (st->depends_on[k] >= 1 && st->depends_on[k] <= ns)
                deps[base + dst->n_deps++] = st->depends_on[k] - 1;
    }
    for (size_t b = 0; tasks && b < nb; b++)
        tasks[ns + b].key = KEY_BATCH;
    uint64_t total = 0;
    if (ok && rec_simulate(tasks, nt, rates, N_KEYS, &total, NULL) == 0)
        e->estimated_ms = total;
    free(off);
    free(tasks);
    free(deps);
    free(riders);
    free(batch_of);
}
