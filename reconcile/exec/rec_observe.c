/* Observe every region of the desired set in parallel (see rec_observe.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prov_cleanup.h"
#include "prov_swas.h"
#include "rec_observe.h"

typedef struct rec_observe rec_observe;

typedef struct obs_call {
    rec_observe *owner;
    size_t idx; /* region index */
} obs_call;

struct rec_observe {
    rec_observed *obs;
    size_t pending; /* calls not answered yet */
    int rc;         /* first failure */
    char *errmsg;
    rec_observe_cb cb;
    void *ud;
    obs_call *calls;         /* one per region */
    const char ***ecs_ids;   /* per region: declared ids (borrowed strings), or NULL */
    const spec_set *desired; /* borrowed: share_to_accounts and adopt of declared images */
    rec_options who;         /* owner and previous_owners (strings borrowed) */
    prov_client *client;
    size_t *n_ecs;    /* per region: how many */
    size_t n_regions; /* length of calls, ecs_ids and n_ecs */
};

/* Frees the observation's bookkeeping, not obs (which finish_if_done hands on or frees). */
static void observe_free(rec_observe *o)
{
    if (o->ecs_ids != NULL)
        for (size_t i = 0; i < o->n_regions; i++)
            free(o->ecs_ids[i]);
    free(o->ecs_ids);
    free(o->n_ecs);
    free(o->errmsg);
    free(o->calls);
    free(o);
}

/* Hands the result to the caller when the last call has answered. */
static void finish_if_done(rec_observe *o)
{
    if (o->pending > 0)
        return;
    rec_observed *obs = o->obs;
    if (o->rc < 0) {
        o->cb(NULL, o->rc, o->errmsg ? o->errmsg : "observe failed", o->ud);
        observe_free(o);
        rec_observed_free(obs);
        return;
    }
    rec_observe_cb cb = o->cb;
    void *ud = o->ud;
    observe_free(o);
    cb(obs, 0, NULL, ud);
}

/* Records the first failure with the region and the API's words (never a secret). */
static void fail(rec_observe *o, const char *what, const char *region, const prov_error *err)
{
    if (o->rc < 0)
        return;
    o->rc = err->sys < 0 ? err->sys : -EIO;
    char *desc = prov_error_describe(err);
    char buf[1024];
    snprintf(buf, sizeof(buf), "observe %s in %s failed: %s", what, region,
             desc ? desc : "unknown error");
    free(desc);
    o->errmsg = strdup(buf);
}

/* One ListCustomImageShareAccounts: which region and image it is for. */
typedef struct acct_call {
    rec_observe *owner;
    size_t region, image;
} acct_call;

static void on_accounts(prov_str_list *accounts, const prov_error *err, void *ud)
{
    acct_call *a = ud;
    rec_observe *o = a->owner;
    rec_region_obs *rs = &o->obs->regions[a->region];
    prov_image *img = &rs->images.v[a->image];
    if (err != NULL) {
        fail(o, "ListCustomImageShareAccounts", rs->region, err);
    } else if (accounts != NULL) {
        img->share_accounts = accounts->v;
        img->n_share_accounts = accounts->n;
        img->share_accounts_known = true;
        memset(accounts, 0, sizeof(*accounts));
    }
    free(a);
    o->pending--;
    finish_if_done(o);
}

/* Account shares are observed only where they can matter (reconcile/README.md "Semantics",
 * Cross-account sharing): images whose declared entry names accounts, and images shared to accounts
 * (InShareUser) that a step may touch: ours, a previous owner's, or an unowned one a declared
 * entry may adopt. Another owner's image is never acted on, so its shares cost no call. */
static bool wants_accounts(const rec_observe *o, const char *region, const prov_image *img)
{
    const spec_image *d = spec_set_find(o->desired, region, img->name);
    if (d != NULL && d->n_share_to_accounts > 0)
        return true;
    if (!img->in_share_user)
        return false;
    const char *owner = prov_image_tag(img, REC_OWNER_TAG);
    if (owner == NULL)
        return (d != NULL && d->adopt) || o->who.observe_unowned_accounts;
    return strcmp(owner, o->who.owner ? o->who.owner : "default") == 0 ||
           rec_options_is_previous_owner(&o->who, owner);
}

static void observe_accounts(rec_observe *o, size_t region)
{
    rec_region_obs *rs = &o->obs->regions[region];
    for (size_t i = 0; i < rs->images.n && o->rc == 0; i++) {
        if (rs->images.v[i].image_id == NULL || !wants_accounts(o, rs->region, &rs->images.v[i]))
            continue;
        acct_call *a = calloc(1, sizeof(*a));
        int rc = a ? 0 : -ENOMEM;
        if (a) {
            *a = (acct_call){o, region, i};
            o->pending++;
            rc = prov_swas_list_share_accounts(o->client, rs->region, rs->images.v[i].image_id,
                                               on_accounts, a);
            if (rc < 0) {
                o->pending--;
                free(a);
            }
        }
        if (rc < 0 && o->rc == 0) {
            o->rc = rc;
            o->errmsg = strdup("observe: could not start ListCustomImageShareAccounts");
        }
    }
}

static void on_list(prov_image_list *list, const prov_error *err, void *ud)
{
    obs_call *call = ud;
    rec_observe *o = call->owner;
    rec_region_obs *rs = &o->obs->regions[call->idx];
    if (err != NULL) {
        fail(o, "ListCustomImages", rs->region, err);
    } else if (list != NULL) {
        rs->images = *list;
        memset(list, 0, sizeof(*list));
        observe_accounts(o, call->idx);
    }
    o->pending--;
    finish_if_done(o);
}

static void on_ecs(prov_ecs_image_list *list, const prov_error *err, void *ud)
{
    obs_call *call = ud;
    rec_observe *o = call->owner;
    rec_region_obs *rs = &o->obs->regions[call->idx];
    if (err != NULL) {
        fail(o, "DescribeImages", rs->region, err);
    } else if (list != NULL) {
        rs->ecs = *list;
        memset(list, 0, sizeof(*list));
    }
    rs->ecs_observed = true;
    o->pending--;
    finish_if_done(o);
}

/* Frees an observation that never started (obs included); the cleanup of observe_new's
 * variable. Accepts NULL. */
static void observe_abort(rec_observe *o)
{
    if (o == NULL)
        return;
    rec_observed_free(o->obs);
    observe_free(o);
}
PROV_DEFINE_FREEP(rec_observe, observe_abort)

/* Counts the declared ECS images of desired in region i and lists their ids (borrowed) in
 * o->ecs_ids[i] (NULL when there are none). Returns 0 or -ENOMEM. */
static int collect_ecs_ids(rec_observe *o, const spec_set *desired, size_t i)
{
    size_t n = 0;
    for (size_t k = 0; k < desired->n_ecs; k++)
        if (strcmp(desired->ecs[k].region, desired->regions[i]) == 0)
            n++;
    o->n_ecs[i] = n;
    if (n == 0)
        return 0;
    o->ecs_ids[i] = calloc(n, sizeof(*o->ecs_ids[i]));
    if (o->ecs_ids[i] == NULL)
        return -ENOMEM;
    size_t m = 0;
    for (size_t k = 0; k < desired->n_ecs; k++)
        if (strcmp(desired->ecs[k].region, desired->regions[i]) == 0)
            o->ecs_ids[i][m++] = desired->ecs[k].image_id;
    return 0;
}

/* Allocates an observation of every region of desired, nothing issued yet; rec_observe_start's
 * first half. Returns 0 and *ret_o (caller frees with observe_abort or hands it to
 * finish_if_done), or -ENOMEM. */
static int observe_new(prov_client *client, const spec_set *desired, const rec_options *who,
                       rec_observe_cb cb, void *ud, rec_observe **ret_o)
{
    _cleanup_(observe_abortp) rec_observe *o = calloc(1, sizeof(*o));
    if (o == NULL)
        return -ENOMEM;
    o->who = *who;
    o->cb = cb;
    o->ud = ud;
    o->desired = desired;
    o->client = client;
    o->obs = calloc(1, sizeof(*o->obs));
    size_t n = desired->n_regions;
    if (o->obs == NULL)
        return -ENOMEM;
    if (n > 0) {
        o->obs->regions = calloc(n, sizeof(*o->obs->regions));
        o->calls = calloc(n, sizeof(*o->calls));
        o->ecs_ids = calloc(n, sizeof(*o->ecs_ids));
        o->n_ecs = calloc(n, sizeof(*o->n_ecs));
        if (o->obs->regions == NULL || o->calls == NULL || o->ecs_ids == NULL || o->n_ecs == NULL)
            return -ENOMEM;
    }
    o->n_regions = n;
    o->obs->n = n;
    for (size_t i = 0; i < n; i++) {
        o->obs->regions[i].region = strdup(desired->regions[i]);
        if (o->obs->regions[i].region == NULL)
            return -ENOMEM;
        o->calls[i].owner = o;
        o->calls[i].idx = i;
        if (collect_ecs_ids(o, desired, i) < 0)
            return -ENOMEM;
    }
    *ret_o = PROV_TAKE_PTR(o);
    return 0;
}

int rec_observe_start(prov_client *client, const spec_set *desired, const rec_options *who,
                      rec_observe_cb cb, void *ud)
{
    if (client == NULL || desired == NULL || who == NULL || cb == NULL)
        return -EINVAL;
    rec_observe *o = NULL;
    int new_rc = observe_new(client, desired, who, cb, ud, &o);
    if (new_rc < 0)
        return new_rc;
    size_t n = o->n_regions;
    size_t *n_ecs = o->n_ecs;

    /* Issue every call at once; the pacer queues them per action. A synchronous start failure
     * stops issuing more and is reported through cb once the calls already started answer. */
    o->pending = 1; /* held until every call is issued */
    for (size_t i = 0; i < n && o->rc == 0; i++) {
        o->pending++;
        int rc = prov_swas_list_images(client, desired->regions[i], NULL, on_list, &o->calls[i]);
        if (rc < 0) {
            o->pending--;
            o->rc = rc;
            o->errmsg = strdup("observe: could not start ListCustomImages");
            break;
        }
        if (o->ecs_ids[i] == NULL)
            continue;
        o->pending++;
        rc = prov_ecs_describe_images(client, desired->regions[i], o->ecs_ids[i], n_ecs[i], on_ecs,
                                      &o->calls[i]);
        if (rc < 0) {
            o->pending--;
            o->rc = rc;
            o->errmsg = strdup("observe: could not start DescribeImages");
        }
    }
    o->pending--;
    /* With zero regions (or every start failing) this completes now; the callback still runs
     * exactly once, which is what the caller expects. */
    finish_if_done(o);
    return 0;
}

void rec_observed_free(rec_observed *obs)
{
    if (obs == NULL)
        return;
    rec_observed_clear(obs);
    free(obs);
}

const prov_image *rec_observed_find_name(const rec_observed *obs, const char *region,
                                         const char *name)
{
    const rec_region_obs *rs = rec_observed_find(obs, region);
    if (rs == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < rs->images.n; i++)
        if (rs->images.v[i].name && strcmp(rs->images.v[i].name, name) == 0)
            return &rs->images.v[i];
    return NULL;
}

const prov_image *rec_observed_find_id(const rec_observed *obs, const char *region,
                                       const char *image_id)
{
    const rec_region_obs *rs = rec_observed_find(obs, region);
    if (rs == NULL || image_id == NULL)
        return NULL;
    for (size_t i = 0; i < rs->images.n; i++)
        if (rs->images.v[i].image_id && strcmp(rs->images.v[i].image_id, image_id) == 0)
            return &rs->images.v[i];
    return NULL;
}
