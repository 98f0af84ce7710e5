/* One reconcile cycle: observe -> plan -> (execute), shared by plan, apply and the daemon
 * (see rec_cycle.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "prov_str.h"
#include "prov_swas.h"
#include "rec_cycle.h"
#include "rec_diff.h"
#include "rec_estimate.h"
#include "rec_exec.h"
#include "rec_journal.h"
#include "rec_observe.h"
#include "rec_options.h"
#include "rec_plan.h"
#include "rec_plancheck.h"
#include "rec_planfile.h"
#include "rec_regions.h"

#define LIST_REGIONS_MAX_AGE_S (24 * 3600)

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
    /* The desired set as observed and planned: the manifests' images with the regions widened
     * by the remembered ones and config `regions` (rec_regions.h). Its images are borrowed. */
    spec_set view;
    rec_region_list view_regions; /* owns view.regions' strings */
    rec_region_list remembered;   /* STATE/regions.json for this owner */
    rec_region_list listed;       /* ListRegions, for `regions: all` */
    bool stopping;
    bool ending;
    bool confirm_pending; /* confirm answered REC_CONFIRM_PENDING; rec_cycle_confirm continues */
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
    rec_observed_free(c->observed);
    rec_region_list_clear(&c->view_regions);
    rec_region_list_clear(&c->remembered);
    rec_region_list_clear(&c->listed);
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

/* Quota learned from a CustomImageQuotaLimit within the last day (the journal keeps the count
 * the region held then), and the image build time from the recent creates. A region now holding
 * more images than that has had its quota raised (servers added), so the learned value is dropped.
 * plan reads the journal read-only so that it shows what apply will do. */
static void learn_quotas(rec_cycle *c, rec_observed *obs, rec_options *opts)
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
    /* The estimate's build time: the median of the recent creates' (any region), 60 s until
     * there are any (reconcile/README.md "Completion"). */
    rec_build_learned b;
    rec_journal_learned_build(j, NULL, now, 7ull * 24 * 3600 * 1000, &b);
    if (b.n > 0) {
        opts->create_wait_ms = b.typical_ms;
        opts->create_wait_samples = b.n;
    }
    rec_journal_close(ro);
}

static const char *owner_of(const rec_cycle *c)
{
    return c->o.cfg->owner ? c->o.cfg->owner : "default";
}

/* apply and run: remember every region where this owner's images were seen or are about to be
 * created, before any mutating call, so that removing a region's manifest later still observes
 * (and, with prune, cleans) it. Writes only when something is new. */
static int remember_regions(rec_cycle *c, const rec_observed *obs, const rec_plan *plan)
{
    if (c->o.state_dir == NULL)
        return 0;
    const char *owner = plan->owner ? plan->owner : owner_of(c);
    bool changed = false;
    int rc = 0;
    for (size_t i = 0; rc >= 0 && i < obs->n; i++)
        for (size_t k = 0; rc >= 0 && k < obs->regions[i].images.n; k++) {
            const char *o = prov_image_tag(&obs->regions[i].images.v[k], REC_OWNER_TAG);
            if (o != NULL && strcmp(o, owner) == 0 &&
                (rc = rec_region_list_add(&c->remembered, obs->regions[i].region)) > 0)
                changed = true;
        }
    for (size_t i = 0; rc >= 0 && i < plan->n_steps; i++)
        if (plan->steps[i].action == REC_ACT_CREATE &&
            (rc = rec_region_list_add(&c->remembered, plan->steps[i].region)) > 0)
            changed = true;
    if (rc < 0)
        return rc;
    return changed ? rec_regions_save(c->o.state_dir, owner, &c->remembered) : 0;
}

/* apply PLANFILE: a plan shows what one account needs; run with the credentials of another it
 * would send those steps there. Compares the account the plan was made against with the one
 * learned before this cycle's first call (the pacer's key: the account id, or "key:<access key
 * id>" when it could not be learned; never printed). Called by use_saved; returns the refusal
 * (malloc'd) or NULL when the accounts agree. *oom is set on allocation failure. */
static char *account_mismatch(const rec_cycle *c, bool *oom)
{
    const char *was = c->o.saved_account_id, *now = c->o.access_key_id;
    bool known = now != NULL && *now != '\0' && strncmp(now, "key:", 4) != 0;
    char *msg = NULL;
    if (was != NULL && known && strcmp(was, now) == 0)
        return NULL;
    if (was == NULL && !known)
        return NULL; /* unknown both times: nothing to compare */
    if (was != NULL && known)
        msg = prov_asprintf("the saved plan was made for account %s, and these credentials are of "
                            "account %s; apply it with credentials of account %s, or run plan "
                            "again",
                            was, now, was);
    else if (was != NULL)
        msg = prov_asprintf("the saved plan was made for account %s, and the account of these "
                            "credentials could not be learned; refusing to apply it",
                            was);
    else
        msg = prov_asprintf("the saved plan does not record the account it was made for, and these "
                            "credentials are of account %s; run plan again",
                            now);
    *oom = msg == NULL;
    return msg;
}

/* apply PLANFILE: the saved plan must have been made for the account of these credentials
 * (account_mismatch), and the plan just computed (under the saved policy, which cmd/ enforces)
 * must agree with every saved step (rec_plan_check_saved); then a copy of the saved plan replaces
 * it, so exactly the saved steps run. Steps found now on unrelated addresses are not run; a
 * warning says how many. Returns 0, or ends the cycle (-EPERM naming both accounts, -ESTALE
 * naming the first difference) and returns a negative errno. */
static int use_saved(rec_cycle *c, const rec_options *ro)
{
    bool oom = false;
    char *why = account_mismatch(c, &oom);
    if (why != NULL || oom) {
        end(c, oom ? -ENOMEM : -EPERM, why ? why : "out of memory");
        free(why);
        return oom ? -ENOMEM : -EPERM;
    }
    size_t unrelated = 0;
    int rc = rec_plan_check_saved(c->o.saved, c->res->plan, c->observed, &unrelated, &why);
    if (rc < 0) {
        char *msg = NULL;
        if (rc == -ESTALE &&
            asprintf(&msg, "the saved plan is stale: %s; run plan again", why ? why : "") < 0)
            msg = NULL;
        end(c, rc, msg ? msg : "could not check the saved plan");
        free(msg);
        free(why);
        return rc;
    }
    rec_plan *copy = NULL;
    rc = rec_plan_copy(c->o.saved, &copy);
    if (rc == 0 && unrelated > 0) {
        char text[256];
        snprintf(text, sizeof(text),
                 "%zu step%s needed now %s not in the saved plan and will not run; run plan "
                 "again to see them",
                 unrelated, unrelated == 1 ? "" : "s", unrelated == 1 ? "is" : "are");
        rc = rec_plan_add_warning(copy, text);
    }
    if (rc < 0) {
        rec_plan_free(copy);
        end(c, rc, "out of memory");
        return rc;
    }
    rec_plan_estimate(copy, ro);
    rec_plan_free(c->res->plan);
    c->res->plan = copy;
    return 0;
}

/* The rest of a cycle once the plan is confirmed or refused: from on_observed when confirm
 * answered at once, from rec_cycle_confirm when the answer came later. */
static void execute(rec_cycle *c, bool approved)
{
    rec_plan *plan = c->res->plan;
    if (!approved) {
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
    int rc = rec_exec_start(c->loop, plan, &xo, on_exec_done, c, &c->exec);
    if (rc < 0)
        end(c, rc, "could not start executing the plan");
}

/* A confirmation is pending and the cycle stops: the caller drops its prompt (confirm_cancel,
 * so it never answers a freed cycle) and the cycle ends as a refusal would. Called by
 * rec_cycle_stop and by on_observed. */
static void cancel_pending(rec_cycle *c)
{
    c->confirm_pending = false;
    if (c->o.confirm_cancel != NULL)
        c->o.confirm_cancel(c->o.ud);
    execute(c, false);
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

    rec_options ro;
    rec_options_from_config(&ro, c->o.cfg);
    learn_quotas(c, obs, &ro);
    ro.skip_fingerprints = c->o.skip_fingerprints;
    char *perr = NULL;
    rc = rec_plan_build(c->o.desired, obs, &ro, &c->res->plan, &perr);
    if (rc < 0) {
        end(c, rc, perr ? perr : "could not compute the plan");
        free(perr);
        return;
    }
    free(perr);
    if (c->o.saved != NULL && use_saved(c, &ro) < 0)
        return;
    rec_plan *plan = c->res->plan;
    emit(c, REC_EV_PLANNED, NULL, (unsigned)plan->n_steps);
    if (!c->o.execute) {
        end(c, 0, NULL);
        return;
    }
    rc = remember_regions(c, obs, plan);
    if (rc < 0) {
        char msg[512];
        snprintf(msg, sizeof(msg), "cannot record the observed regions in %s/regions.json: %s",
                 c->o.state_dir, strerror(-rc));
        end(c, rc, msg);
        return;
    }
    rec_confirm answer =
        c->o.confirm != NULL ? c->o.confirm(c->o.ud, c, plan) : REC_CONFIRM_PROCEED;
    if (answer != REC_CONFIRM_PENDING) {
        execute(c, answer == REC_CONFIRM_PROCEED);
        return;
    }
    c->confirm_pending = true;
    /* A signal came while observing: the cycle stopped before the question was put, so nobody
     * waits for the answer. */
    if (c->stopping)
        cancel_pending(c);
}

/* The late answer (see rec_cycle.h): apply's prompt (cmd/cmd_apply.c) calls it from its read
 * callback on the loop. */
int rec_cycle_confirm(rec_cycle *c, bool yes)
{
    if (c == NULL || !c->confirm_pending || c->ending)
        return -EINVAL;
    c->confirm_pending = false;
    execute(c, yes);
    return 0;
}

/* Observes the declared regions, the remembered ones, config `regions` and, for `regions:
 * all`, the ListRegions answer (reconcile/README.md "Regions observed"). */
static void observe_view(rec_cycle *c)
{
    const spec_set *d = c->o.desired;
    const spec_config *cfg = c->o.cfg;
    int rc = 0;
    for (size_t i = 0; rc >= 0 && i < d->n_regions; i++)
        rc = rec_region_list_add(&c->view_regions, d->regions[i]);
    for (size_t i = 0; rc >= 0 && i < c->remembered.n; i++)
        rc = rec_region_list_add(&c->view_regions, c->remembered.v[i]);
    for (size_t i = 0; rc >= 0 && i < cfg->n_regions; i++)
        rc = rec_region_list_add(&c->view_regions, cfg->regions[i]);
    for (size_t i = 0; rc >= 0 && i < c->listed.n; i++)
        rc = rec_region_list_add(&c->view_regions, c->listed.v[i]);
    if (rc < 0) {
        end(c, rc, "out of memory");
        return;
    }
    c->view = *d;
    c->view.regions = c->view_regions.v;
    c->view.n_regions = c->view_regions.n;
    c->o.desired = &c->view;
    rec_options who;
    rec_options_from_config(&who, c->o.cfg);
    rc = rec_observe_start(c->o.client, c->o.desired, &who, on_observed, c);
    if (rc < 0)
        end(c, rc, "could not start observing");
}

static void on_regions(const char *const *regions, size_t n, const prov_error *err, void *ud)
{
    rec_cycle *c = ud;
    if (err != NULL) {
        char *desc = prov_error_describe(err);
        char msg[768];
        snprintf(msg, sizeof(msg), "regions: all: ListRegions failed: %s",
                 desc ? desc : "unknown error");
        free(desc);
        end(c, err->sys < 0 ? err->sys : -EIO, msg);
        return;
    }
    int rc = 0;
    for (size_t i = 0; rc >= 0 && i < n; i++)
        rc = rec_region_list_add(&c->listed, regions[i]);
    if (rc < 0) {
        end(c, rc, "out of memory");
        return;
    }
    /* A cache: a state directory that cannot be written only costs a call next time. */
    if (c->o.state_dir != NULL)
        (void)rec_regions_cache_save(c->o.state_dir, (int64_t)time(NULL), &c->listed);
    if (c->stopping)
        end(c, -ECANCELED, "stopped before the cycle began");
    else
        observe_view(c);
}

static void on_defer(uv_timer_t *t)
{
    rec_cycle *c = t->data;
    if (c->stopping) {
        end(c, -ECANCELED, "stopped before the cycle began");
        return;
    }
    if (c->o.state_dir != NULL) {
        char *why = NULL;
        int rc = rec_regions_load(c->o.state_dir, owner_of(c), &c->remembered, &why);
        if (rc < 0) {
            char msg[768];
            snprintf(msg, sizeof(msg), "cannot read the remembered regions: %s",
                     why ? why : strerror(-rc));
            free(why);
            end(c, rc, msg);
            return;
        }
    }
    if (c->o.cfg->regions_all && (c->o.state_dir == NULL ||
                                  rec_regions_cache_load(c->o.state_dir, (int64_t)time(NULL),
                                                         LIST_REGIONS_MAX_AGE_S, &c->listed) < 0)) {
        int rc = prov_swas_list_regions(c->o.client, on_regions, c);
        if (rc < 0)
            end(c, rc, "could not start ListRegions");
        return;
    }
    observe_view(c);
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
    if (c->confirm_pending)
        cancel_pending(c);
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

const char *rec_wait_for_name(rec_wait_for w)
{
    switch (w) {
    case REC_WAIT_RATE_LIMIT:
        return "rate_limit";
    case REC_WAIT_IMAGE_BUILD:
        return "image_build";
    case REC_WAIT_NONE:
        break;
    }
    return "none";
}
