/* One reconcile cycle: observe -> plan -> (execute), shared by plan, apply and the daemon
 * (see rec_cycle.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rec_cycle.h"
#include "rec_diff.h"
#include "rec_exec.h"
#include "rec_journal.h"
#include "rec_observe.h"
#include "rec_options.h"
#include "rec_plan.h"

struct rec_cycle {
    uv_loop_t *loop;
    rec_cycle_opts o;
    rec_cycle_done_cb done;
    void *ud;
    uv_timer_t defer; /* starts the work and ends the cycle from the loop */
    rec_journal *journal;
    rec_observed *observed;
    rec_exec *exec;
    rec_cycle_result *res;
    bool stopping;
    bool ending;
};

static void emit(rec_cycle *c, rec_event_kind kind, const char *text, unsigned n_total)
{
    if (c->o.on_event == NULL)
        return;
    rec_event ev = {.kind = kind, .text = text, .n_total = n_total};
    c->o.on_event(c->o.ud, &ev);
}

static void on_closed(uv_handle_t *h)
{
    rec_cycle *c = h->data;
    rec_cycle_result *res = c->res;
    rec_cycle_done_cb done = c->done;
    void *ud = c->ud;
    rec_journal_close(c->journal);
    rec_observed_destroy(c->observed);
    free(c);
    done(res, ud);
}

/* Ends the cycle; rc < 0 with msg for a cycle that could not run. */
static void end(rec_cycle *c, int rc, const char *msg)
{
    if (c->ending)
        return;
    c->ending = true;
    if (rc < 0) {
        c->res->rc = rc;
        free(c->res->error);
        c->res->error = strdup(msg ? msg : strerror(-rc));
    }
    uv_close((uv_handle_t *)&c->defer, on_closed);
}

static void on_exec_done(const rec_exec_result *r, void *ud)
{
    rec_cycle *c = ud;
    c->exec = NULL;
    c->res->n_done = r->n_done;
    c->res->n_failed = r->n_failed;
    c->res->n_skipped = r->n_skipped;
    if (r->n_failed > 0 && r->states != NULL) {
        const char **addrs = calloc(r->n_failed, sizeof(*addrs));
        size_t k = 0;
        for (size_t i = 0; addrs && i < c->res->plan->n_steps && k < r->n_failed; i++)
            if (r->states[i] == REC_STEP_FAILED)
                addrs[k++] = strdup(c->res->plan->steps[i].address);
        c->res->failed_addresses = addrs;
    }
    end(c, 0, NULL);
}

/* Quota learned from a CustomImageQuotaLimit within the last day (the journal keeps the
 * count the region held then). A region now holding more images than that has had its quota
 * raised (servers added), so the learned value is dropped. plan reads the journal read-only so
 * that it shows what apply will do. */
static void learn_quotas(rec_cycle *c, rec_observed *obs)
{
    rec_journal *j = c->journal, *ro = NULL;
    if (j == NULL && c->o.state_dir != NULL && rec_journal_open_readonly(c->o.state_dir, &ro) == 0)
        j = ro;
    if (j == NULL)
        return;
    uint64_t now = prov_now_ms();
    for (size_t i = 0; i < obs->n; i++) {
        rec_region_obs *r = &obs->regions[i];
        unsigned q = rec_journal_learned_quota(j, r->region, now, 24ull * 3600 * 1000);
        if (q > 0 && r->images.n <= q) {
            r->have_quota = true;
            r->quota_learned = q;
        }
    }
    rec_journal_close(ro);
}

static void on_observed(rec_observed *obs, int rc, const char *errmsg, void *ud)
{
    rec_cycle *c = ud;
    if (rc < 0) {
        end(c, rc, errmsg);
        return;
    }
    c->observed = obs;
    size_t n_images = 0;
    for (size_t i = 0; i < obs->n; i++)
        n_images += obs->regions[i].images.n;
    char text[256];
    snprintf(text, sizeof(text), "observed %zu region%s, %zu custom image%s", obs->n,
             obs->n == 1 ? "" : "s", n_images, n_images == 1 ? "" : "s");
    emit(c, REC_EV_OBSERVED, text, 0);

    learn_quotas(c, obs);
    rec_options ro;
    rec_options_from_config(&ro, c->o.cfg);
    char *perr = NULL;
    rc = rec_plan_build(c->o.desired, obs, &ro, &c->res->plan, &perr);
    if (rc < 0) {
        end(c, rc, perr ? perr : "could not compute the plan");
        free(perr);
        return;
    }
    free(perr);
    rec_plan *plan = c->res->plan;
    if (c->o.saved != NULL) {
        if (strcmp(c->o.saved->fp.desired, plan->fp.desired) != 0) {
            end(c, -ESTALE,
                "the saved plan is stale: the manifests (or owner) changed since it was made; "
                "run plan again");
            return;
        }
        if (strcmp(c->o.saved->fp.observed, plan->fp.observed) != 0) {
            end(c, -ESTALE,
                "the saved plan is stale: the account's images changed since it was made; run "
                "plan again");
            return;
        }
    }
    emit(c, REC_EV_PLANNED, NULL, (unsigned)plan->n_steps);
    if (!c->o.execute) {
        end(c, 0, NULL);
        return;
    }
    if (c->o.confirm != NULL && !c->o.confirm(c->o.ud, plan)) {
        c->res->n_skipped = (unsigned)plan->n_steps;
        end(c, -ECANCELED, "apply cancelled");
        return;
    }
    if (c->stopping || plan->n_steps == 0) {
        c->res->n_skipped = (unsigned)plan->n_steps;
        end(c, 0, NULL);
        return;
    }
    if (c->o.cfg->suspend) {
        c->res->n_skipped = (unsigned)plan->n_steps;
        end(c, 0, NULL);
        return;
    }
    rec_exec_opts xo = {
        .client = c->o.client,
        .pacer = c->o.pacer,
        .access_key_id = c->o.access_key_id,
        .cfg = c->o.cfg,
        .journal = c->journal,
        .observed = c->observed,
        .owner = plan->owner ? plan->owner : c->o.cfg->owner,
        .skip_item = c->o.skip_item,
        .may_mutate = c->o.may_mutate,
        .on_event = c->o.on_event,
        .ud = c->o.ud,
    };
    rc = rec_exec_start(c->loop, plan, &xo, on_exec_done, c, &c->exec);
    if (rc < 0)
        end(c, rc, "could not start executing the plan");
}

static void on_defer(uv_timer_t *t)
{
    rec_cycle *c = t->data;
    if (c->stopping) {
        end(c, -ECANCELED, "stopped before the cycle began");
        return;
    }
    int rc = rec_observe_start(c->o.client, c->o.desired, on_observed, c);
    if (rc < 0)
        end(c, rc, "could not start observing");
}

int rec_cycle_start(uv_loop_t *loop, const rec_cycle_opts *opts, rec_cycle_done_cb done, void *ud,
                    rec_cycle **ret)
{
    if (loop == NULL || opts == NULL || opts->cfg == NULL || opts->desired == NULL ||
        opts->client == NULL || done == NULL)
        return -EINVAL;
    rec_cycle *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->res = calloc(1, sizeof(*c->res));
    if (c->res == NULL) {
        free(c);
        return -ENOMEM;
    }
    c->loop = loop;
    c->o = *opts;
    c->done = done;
    c->ud = ud;
    if (opts->execute && opts->state_dir != NULL) {
        char id[64];
        snprintf(id, sizeof(id), "%llu-%ld", (unsigned long long)prov_now_ms(), (long)getpid());
        int rc = rec_journal_open(opts->state_dir, id, 0, &c->journal);
        if (rc < 0) {
            free(c->res);
            free(c);
            return rc;
        }
    }
    int rc = uv_timer_init(loop, &c->defer);
    if (rc < 0) {
        rec_journal_close(c->journal);
        free(c->res);
        free(c);
        return -ENOMEM;
    }
    c->defer.data = c;
    (void)uv_timer_start(&c->defer, on_defer, 0, 0);
    if (ret != NULL)
        *ret = c;
    return 0;
}

void rec_cycle_stop(rec_cycle *c)
{
    if (c == NULL || c->stopping)
        return;
    c->stopping = true;
    if (c->exec != NULL)
        rec_exec_stop(c->exec);
}

void rec_cycle_result_free(rec_cycle_result *res)
{
    if (res == NULL)
        return;
    free(res->error);
    rec_plan_free(res->plan);
    if (res->failed_addresses != NULL)
        for (unsigned i = 0; i < res->n_failed; i++)
            free((char *)res->failed_addresses[i]);
    free((void *)res->failed_addresses);
    free(res);
}
