/* The plan's plumbing (reconcile/plan/rec_plan.h): observed-state containers, options, action
 * names, freeing, client tokens and fingerprints. The diff itself is in rec_diff.c. */
#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rec_plan_int.h"

/* ---- small helpers ---- */

int rec_grow(void **v, size_t *cap, size_t n, size_t elem)
{
    if (n + 1 <= *cap)
        return 0;
    size_t nc = *cap ? *cap * 2 : 8;
    while (nc < n + 1)
        nc *= 2;
    void *nv = realloc(*v, nc * elem);
    if (!nv)
        return -ENOMEM;
    *v = nv;
    *cap = nc;
    return 0;
}

char *rec_strdup0(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* ---- images ---- */

void rec_image_free(prov_image *img)
{
    prov_image_clear(img);
    free(img);
}

/* Copies src->f into d->f; on a failed strdup the copy so far is freed (d's cleanup). */
#define DUP_FIELD(f)                                                                               \
    do {                                                                                           \
        if (src->f && !(d->f = strdup(src->f)))                                                    \
            return NULL;                                                                           \
    } while (0)

prov_image *rec_image_dup(const prov_image *src)
{
    _cleanup_(rec_image_freep) prov_image *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    DUP_FIELD(image_id);
    DUP_FIELD(name);
    DUP_FIELD(description);
    DUP_FIELD(instance_id);
    DUP_FIELD(system_snapshot_id);
    DUP_FIELD(data_snapshot_id);
    DUP_FIELD(resource_group_id);
    DUP_FIELD(region_id);
    DUP_FIELD(creation_time);
    d->status = src->status;
    d->in_share = src->in_share;
    d->in_share_user = src->in_share_user;
    d->share_accounts_known = src->share_accounts_known;
    if (src->n_share_accounts) {
        d->share_accounts = calloc(src->n_share_accounts, sizeof(*d->share_accounts));
        if (!d->share_accounts)
            return NULL;
        for (size_t i = 0; i < src->n_share_accounts; i++) {
            d->n_share_accounts = i + 1;
            if (src->share_accounts[i] && !(d->share_accounts[i] = strdup(src->share_accounts[i])))
                return NULL;
        }
    }
    if (src->n_tags) {
        d->tags = calloc(src->n_tags, sizeof(*d->tags));
        if (!d->tags)
            return NULL;
        for (size_t i = 0; i < src->n_tags; i++) {
            d->n_tags = i + 1;
            if ((src->tags[i].key && !(d->tags[i].key = strdup(src->tags[i].key))) ||
                (src->tags[i].value && !(d->tags[i].value = strdup(src->tags[i].value))))
                return NULL;
        }
    }
    return PROV_TAKE_PTR(d);
}

const char *rec_image_tag(const prov_image *img, const char *key)
{
    for (size_t i = 0; img && i < img->n_tags; i++)
        if (img->tags[i].key && strcmp(img->tags[i].key, key) == 0)
            return img->tags[i].value ? img->tags[i].value : "";
    return NULL;
}

int rec_image_set_tag(prov_image *img, const char *key, const char *value)
{
    char *v = strdup(value ? value : "");
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < img->n_tags; i++) {
        if (img->tags[i].key && strcmp(img->tags[i].key, key) == 0) {
            free(img->tags[i].value);
            img->tags[i].value = v;
            return 0;
        }
    }
    char *k = strdup(key);
    prov_tag *nt = k ? realloc(img->tags, (img->n_tags + 1) * sizeof(*nt)) : NULL;
    if (!nt) {
        free(k);
        free(v);
        return -ENOMEM;
    }
    img->tags = nt;
    img->tags[img->n_tags++] = (prov_tag){k, v};
    return 0;
}

/* ---- observed state ---- */

void rec_observed_clear(rec_observed *obs)
{
    if (!obs)
        return;
    for (size_t i = 0; i < obs->n; i++) {
        rec_region_obs *r = &obs->regions[i];
        free(r->region);
        for (size_t j = 0; j < r->images.n; j++)
            prov_image_clear(&r->images.v[j]);
        free(r->images.v);
        prov_ecs_image_list_clear(&r->ecs);
    }
    free(obs->regions);
    obs->regions = NULL;
    obs->n = 0;
}

int rec_observed_add_region(rec_observed *obs, const char *region, rec_region_obs **ret)
{
    char *r = strdup(region ? region : "");
    rec_region_obs *nv = r ? realloc(obs->regions, (obs->n + 1) * sizeof(*nv)) : NULL;
    if (!nv) {
        free(r);
        return -ENOMEM;
    }
    obs->regions = nv;
    memset(&nv[obs->n], 0, sizeof(nv[obs->n]));
    nv[obs->n].region = r;
    *ret = &nv[obs->n++];
    return 0;
}

const rec_region_obs *rec_observed_find(const rec_observed *obs, const char *region)
{
    for (size_t i = 0; obs && region && i < obs->n; i++)
        if (obs->regions[i].region && strcmp(obs->regions[i].region, region) == 0)
            return &obs->regions[i];
    return NULL;
}

/* ---- options ---- */

void rec_options_init(rec_options *o)
{
    memset(o, 0, sizeof(*o));
    o->owner = "default";
    o->max_deletes = 5;
    o->quota_default = 15;
    o->rate_default = (spec_rate){10, 60000};
    o->create_wait_ms = 60000;
}

unsigned rec_options_quota(const rec_options *o, const char *region)
{
    if (o->quota_for)
        return o->quota_for(o->ud, region);
    return o->quota_default;
}

bool rec_options_allow_empty(const rec_options *o, const char *region)
{
    if (o->allow_empty)
        return true;
    return o->allow_empty_for != NULL && o->allow_empty_for(o->ud, region);
}

spec_rate rec_options_rate(const rec_options *o, const char *api_action)
{
    spec_rate r = o->rate_default;
    if (o->rate_for && api_action)
        r = o->rate_for(o->ud, api_action);
    if (r.calls == 0 || r.window_ms == 0)
        r = (spec_rate){10, 60000};
    return r;
}

/* ---- actions ---- */

static const char *const action_names[REC_ACT__COUNT] = {
    "create", "share", "unshare", "delete",       "ecs_delete",
    "wait",   "tag",   "untag",   "add_accounts", "remove_accounts",
};

const char *rec_action_name(rec_action a)
{
    return (unsigned)a < REC_ACT__COUNT ? action_names[a] : "unknown";
}

const char *rec_action_api(rec_action a)
{
    switch (a) {
    case REC_ACT_CREATE:
        return "CreateCustomImage";
    case REC_ACT_SHARE:
    case REC_ACT_UNSHARE:
        return "ModifyImageShareStatus";
    case REC_ACT_DELETE:
        return "DeleteCustomImage";
    case REC_ACT_ECS_DELETE:
        return "DeleteImage";
    case REC_ACT_TAG:
        return "TagResources";
    case REC_ACT_UNTAG:
        return "UntagResources";
    case REC_ACT_ADD_ACCOUNTS:
        return "AddCustomImageShareAccount";
    case REC_ACT_REMOVE_ACCOUNTS:
        return "RemoveCustomImageShareAccount";
    default:
        return NULL;
    }
}

bool rec_action_is_ecs(rec_action a)
{
    return a == REC_ACT_ECS_DELETE;
}

int rec_action_parse(const char *s, rec_action *ret)
{
    for (unsigned i = 0; s && i < REC_ACT__COUNT; i++) {
        if (strcmp(s, action_names[i]) == 0) {
            *ret = (rec_action)i;
            return 0;
        }
    }
    return -EINVAL;
}

static const char *const conflict_names[] = {"not_owned", "duplicate_name", "adopt_mismatch"};

static const char *const change_kind_names[] = {"create",  "delete",     "share", "unshare",
                                                "replace", "ecs_delete", "wait",  "tags",
                                                "adopt",   "accounts"};

const char *rec_change_kind_name(rec_change_kind k)
{
    return (unsigned)k < sizeof(change_kind_names) / sizeof(change_kind_names[0])
               ? change_kind_names[k]
               : "unknown";
}

int rec_change_kind_parse(const char *s, rec_change_kind *ret)
{
    for (unsigned i = 0; s && i < sizeof(change_kind_names) / sizeof(change_kind_names[0]); i++) {
        if (strcmp(s, change_kind_names[i]) == 0) {
            *ret = (rec_change_kind)i;
            return 0;
        }
    }
    return -EINVAL;
}

static const char *const takeover_names[] = {"none", "adopt", "migrate"};

const char *rec_takeover_name(rec_takeover t)
{
    return (unsigned)t < sizeof(takeover_names) / sizeof(takeover_names[0]) ? takeover_names[t]
                                                                            : "unknown";
}

int rec_takeover_parse(const char *s, rec_takeover *ret)
{
    for (unsigned i = 0; s && i < sizeof(takeover_names) / sizeof(takeover_names[0]); i++) {
        if (strcmp(s, takeover_names[i]) == 0) {
            *ret = (rec_takeover)i;
            return 0;
        }
    }
    return -EINVAL;
}

bool rec_options_is_previous_owner(const rec_options *o, const char *owner)
{
    for (size_t i = 0; o && owner && i < o->n_previous_owners; i++)
        if (o->previous_owners[i] && strcmp(o->previous_owners[i], owner) == 0)
            return true;
    return false;
}

/* ---- tag and account deltas ---- */

bool rec_tag_key_is_cloud(const char *key)
{
    return key && (strncasecmp(key, "acs:", 4) == 0 || strncasecmp(key, "aliyun", 6) == 0);
}

size_t rec_step_tags_to_set(const rec_step *st, const prov_tag **ret, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; st->after && i < st->after->n_tags; i++) {
        const prov_tag *t = &st->after->tags[i];
        const char *have = rec_image_tag(st->before, t->key);
        if (!t->key || rec_tag_key_is_cloud(t->key) ||
            (have && strcmp(have, t->value ? t->value : "") == 0))
            continue;
        if (n < max)
            ret[n] = t;
        n++;
    }
    return n;
}

size_t rec_step_keys_to_remove(const rec_step *st, const char **ret, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; st->before && i < st->before->n_tags; i++) {
        const char *k = st->before->tags[i].key;
        if (!k || rec_tag_key_is_cloud(k) || rec_image_tag(st->after, k))
            continue;
        if (n < max)
            ret[n] = k;
        n++;
    }
    return n;
}

static bool has_account(const prov_image *img, const char *a)
{
    for (size_t i = 0; img && i < img->n_share_accounts; i++)
        if (img->share_accounts[i] && strcmp(img->share_accounts[i], a) == 0)
            return true;
    return false;
}

size_t rec_step_accounts_delta(const rec_step *st, const char **ret, size_t max)
{
    bool add = st->action == REC_ACT_ADD_ACCOUNTS;
    const prov_image *from = add ? st->after : st->before, *other = add ? st->before : st->after;
    size_t n = 0;
    for (size_t i = 0; from && i < from->n_share_accounts; i++) {
        const char *a = from->share_accounts[i];
        if (!a || has_account(other, a))
            continue;
        if (n < max)
            ret[n] = a;
        n++;
    }
    return n;
}

void rec_step_batch_key(const rec_step *st, char ret[REC_HASH_HEX + 1])
{
    rec_hasher h;
    rec_hasher_init(&h);
    rec_hasher_str(&h, "batch-v1");
    rec_hasher_str(&h, rec_action_name(st->action));
    rec_hasher_str(&h, st->region);
    if (st->action == REC_ACT_TAG) {
        const prov_tag *t[REC_DELTA_MAX];
        size_t n = rec_step_tags_to_set(st, t, REC_DELTA_MAX);
        rec_hasher_u64(&h, n);
        for (size_t i = 0; i < n && i < REC_DELTA_MAX; i++) {
            rec_hasher_str(&h, t[i]->key);
            rec_hasher_str(&h, t[i]->value ? t[i]->value : "");
        }
    } else if (st->action == REC_ACT_UNTAG) {
        const char *k[REC_DELTA_MAX];
        size_t n = rec_step_keys_to_remove(st, k, REC_DELTA_MAX);
        rec_hasher_u64(&h, n);
        for (size_t i = 0; i < n && i < REC_DELTA_MAX; i++)
            rec_hasher_str(&h, k[i]);
    } else {
        rec_hasher_str(&h, st->image_id); /* every other action: one image per call */
    }
    rec_hasher_final(&h, ret);
}

const char *rec_conflict_kind_name(rec_conflict_kind k)
{
    return (unsigned)k < sizeof(conflict_names) / sizeof(conflict_names[0]) ? conflict_names[k]
                                                                            : "unknown";
}

int rec_conflict_kind_parse(const char *s, rec_conflict_kind *ret)
{
    for (unsigned i = 0; s && i < sizeof(conflict_names) / sizeof(conflict_names[0]); i++) {
        if (strcmp(s, conflict_names[i]) == 0) {
            *ret = (rec_conflict_kind)i;
            return 0;
        }
    }
    return -EINVAL;
}

/* ---- freeing and accessors ---- */

void rec_step_clear(rec_step *st)
{
    free(st->address);
    free(st->region);
    free(st->name);
    free(st->image_id);
    free(st->reason);
    free(st->file);
    free(st->depends_on);
    rec_image_free(st->before);
    rec_image_free(st->after);
    memset(st, 0, sizeof(*st));
}

void rec_change_clear(rec_change *ch)
{
    free(ch->address);
    free(ch->reason);
    free(ch->file);
    free(ch->steps);
    memset(ch, 0, sizeof(*ch));
}

void rec_note_clear(rec_note *n)
{
    free(n->address);
    free(n->region);
    free(n->name);
    free(n->image_id);
    free(n->owner);
    free(n->text);
    free(n->file);
    memset(n, 0, sizeof(*n));
}

void rec_plan_free(rec_plan *plan)
{
    if (!plan)
        return;
    for (size_t i = 0; i < plan->n_steps; i++)
        rec_step_clear(&plan->steps[i]);
    for (size_t i = 0; i < plan->n_changes; i++)
        rec_change_clear(&plan->changes[i]);
    for (size_t i = 0; i < plan->n_notes; i++)
        rec_note_clear(&plan->notes[i]);
    free(plan->steps);
    free(plan->changes);
    free(plan->notes);
    free(plan->owner);
    free(plan);
}

size_t rec_plan_n_changes(const rec_plan *plan)
{
    size_t n = 0;
    for (size_t i = 0; plan && i < plan->n_steps; i++)
        if (plan->steps[i].action != REC_ACT_WAIT)
            n++;
    return n;
}

size_t rec_plan_n_notes(const rec_plan *plan, rec_note_kind kind)
{
    size_t n = 0;
    for (size_t i = 0; plan && i < plan->n_notes; i++)
        if (plan->notes[i].kind == kind)
            n++;
    return n;
}

const rec_step *rec_plan_step(const rec_plan *plan, unsigned id)
{
    if (!plan || id == 0 || id > plan->n_steps)
        return NULL;
    return &plan->steps[id - 1];
}

/* ---- hashing ---- */

void rec_hasher_init(rec_hasher *h)
{
    h->failed = false;
    h->len = 0;
    h->ctx = EVP_MD_CTX_new();
    if (!h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1)
        h->failed = true;
}

/* Hands the buffered bytes to OpenSSL. */
static void hasher_flush(rec_hasher *h)
{
    if (!h->failed && h->len && EVP_DigestUpdate(h->ctx, h->buf, h->len) != 1)
        h->failed = true;
    h->len = 0;
}

/* Appends n bytes to the digest input; what does not fit in the buffer goes straight through.
 * The digest sees the same bytes in the same order either way. */
static void hasher_bytes(rec_hasher *h, const void *p, size_t n)
{
    if (n > sizeof(h->buf) - h->len) {
        hasher_flush(h);
        if (n > sizeof(h->buf)) {
            if (!h->failed && EVP_DigestUpdate(h->ctx, p, n) != 1)
                h->failed = true;
            return;
        }
    }
    memcpy(h->buf + h->len, p, n);
    h->len += n;
}

/* v as 8 bytes, most significant first, into p (one byte swap and a store). */
static void put_u64(unsigned char *p, uint64_t v)
{
    v = htobe64(v);
    memcpy(p, &v, sizeof(v));
}

void rec_hasher_u64(rec_hasher *h, uint64_t v)
{
    if (sizeof(h->buf) - h->len < 8)
        hasher_flush(h);
    put_u64(h->buf + h->len, v);
    h->len += 8;
}

/* A string is its presence byte, then its length and its bytes. The usual short field is
 * written into the buffer in one go (this is the fingerprints' inner loop). */
void rec_hasher_str(rec_hasher *h, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (s && 9 + n <= sizeof(h->buf) - h->len) {
        unsigned char *p = h->buf + h->len;
        p[0] = 1;
        put_u64(p + 1, n);
        memcpy(p + 9, s, n);
        h->len += 9 + n;
        return;
    }
    unsigned char tag = s ? 1 : 0;
    hasher_bytes(h, &tag, 1);
    if (s) {
        rec_hasher_u64(h, n);
        hasher_bytes(h, s, n);
    }
}

void rec_hasher_final(rec_hasher *h, char ret[REC_HASH_HEX + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    static const char hex[] = "0123456789abcdef";
    hasher_flush(h);
    if (!h->failed && EVP_DigestFinal_ex(h->ctx, md, &n) == 1 && n == 32) {
        for (unsigned i = 0; i < 32; i++) {
            ret[2 * i] = hex[md[i] >> 4];
            ret[2 * i + 1] = hex[md[i] & 15];
        }
    } else {
        memset(ret, '0', REC_HASH_HEX);
    }
    ret[REC_HASH_HEX] = '\0';
    EVP_MD_CTX_free(h->ctx);
    h->ctx = NULL;
}

/* Token = hex sha256 of the fields below. 64 hex characters are exactly the API's limit. */
void rec_client_token(const char *owner, const char *region, rec_action action, const char *name,
                      const char *spec_hash, unsigned generation, char ret[REC_TOKEN_MAX + 1])
{
    rec_hasher h;
    rec_hasher_init(&h);
    rec_hasher_str(&h, "imgrecon-client-token-v1");
    rec_hasher_str(&h, owner ? owner : "default");
    rec_hasher_str(&h, region);
    rec_hasher_str(&h, rec_action_name(action));
    rec_hasher_str(&h, name);
    rec_hasher_str(&h, spec_hash);
    rec_hasher_u64(&h, generation);
    rec_hasher_final(&h, ret);
}

void rec_step_set_generation(rec_step *step, const char *owner, unsigned generation)
{
    step->generation = generation;
    rec_client_token(owner, step->region, step->action, step->name ? step->name : step->image_id,
                     step->spec_hash, generation, step->client_token);
}

static void hash_spec_image(rec_hasher *h, const spec_image *img)
{
    rec_hasher_str(h, img->region);
    rec_hasher_str(h, img->name);
    rec_hasher_str(h, img->instance_id);
    rec_hasher_str(h, img->system_snapshot_id);
    rec_hasher_str(h, img->data_snapshot_id);
    rec_hasher_str(h, img->description);
    rec_hasher_str(h, img->resource_group_id);
    rec_hasher_u64(h, img->n_tags);
    for (size_t i = 0; i < img->n_tags; i++) {
        rec_hasher_str(h, img->tags[i].key);
        rec_hasher_str(h, img->tags[i].value);
    }
    rec_hasher_u64(h, img->protect ? 1 : 0);
}

void rec_spec_image_hash(const spec_image *img, char ret[REC_HASH_HEX + 1])
{
    rec_hasher h;
    rec_hasher_init(&h);
    rec_hasher_str(&h, "spec-image-v1");
    hash_spec_image(&h, img);
    rec_hasher_final(&h, ret);
}

/* The desired set is already canonical: spec_load sorts images by (region, name), ECS entries by
 * (region, image_id) and regions by name. share_to_ecs counts here (a plan made for a different
 * share setting is stale) though it is not part of an image's identity hash. */
void rec_fingerprint_desired(const spec_set *desired, const char *owner, char ret[REC_HASH_HEX + 1])
{
    rec_hasher h;
    rec_hasher_init(&h);
    rec_hasher_str(&h, "desired-v1");
    rec_hasher_str(&h, owner ? owner : "default");
    rec_hasher_u64(&h, desired ? desired->n_regions : 0);
    for (size_t i = 0; desired && i < desired->n_regions; i++)
        rec_hasher_str(&h, desired->regions[i]);
    rec_hasher_u64(&h, desired ? desired->n_images : 0);
    for (size_t i = 0; desired && i < desired->n_images; i++) {
        const spec_image *d = &desired->images[i];
        hash_spec_image(&h, d);
        rec_hasher_u64(&h, d->share_to_ecs ? 1 : 0);
        rec_hasher_u64(&h, d->adopt ? 1 : 0);
        rec_hasher_u64(&h, d->n_share_to_accounts);
        for (size_t k = 0; k < d->n_share_to_accounts; k++)
            rec_hasher_str(&h, d->share_to_accounts[k]);
    }
    rec_hasher_u64(&h, desired ? desired->n_ecs : 0);
    for (size_t i = 0; desired && i < desired->n_ecs; i++) {
        rec_hasher_str(&h, desired->ecs[i].region);
        rec_hasher_str(&h, desired->ecs[i].image_id);
        rec_hasher_u64(&h, desired->ecs[i].force ? 1 : 0);
    }
    rec_hasher_final(&h, ret);
}

static int cmp_str_ptr(const void *a, const void *b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    return strcmp(x ? x : "", y ? y : "");
}

static int cmp_region_ptr(const void *a, const void *b)
{
    const rec_region_obs *x = *(const rec_region_obs *const *)a;
    const rec_region_obs *y = *(const rec_region_obs *const *)b;
    return strcmp(x->region ? x->region : "", y->region ? y->region : "");
}

static int cmp_image_ptr(const void *a, const void *b)
{
    const prov_image *x = *(const prov_image *const *)a, *y = *(const prov_image *const *)b;
    int c = strcmp(x->image_id ? x->image_id : "", y->image_id ? y->image_id : "");
    if (c == 0)
        c = strcmp(x->name ? x->name : "", y->name ? y->name : "");
    return c;
}

static int cmp_tag(const void *a, const void *b)
{
    const prov_tag *x = a, *y = b;
    return strcmp(x->key ? x->key : "", y->key ? y->key : "");
}

#define SMALL_TAGS 32 /* the API allows 20 tags a resource */

/* Sorts n tags (n <= SMALL_TAGS) into out by key with an insertion sort: stable, like the merge
 * sort glibc's qsort uses for small arrays, so keys that repeat keep their order. Called for
 * every observed image; a malloc and a qsort each cost more than the sort of a handful. */
static void sort_small_tags(const prov_tag *tags, size_t n, prov_tag *out)
{
    for (size_t i = 0; i < n; i++) {
        size_t j = i;
        for (; j > 0 && cmp_tag(&out[j - 1], &tags[i]) > 0; j--)
            out[j] = out[j - 1];
        out[j] = tags[i];
    }
}

/* Hashes one image's plan-relevant fields with its tags in key order. */
static void hash_observed_image(rec_hasher *h, const prov_image *img)
{
    rec_hasher_str(h, img->image_id);
    rec_hasher_str(h, img->name);
    rec_hasher_u64(h, (uint64_t)(int64_t)img->status);
    rec_hasher_u64(h, img->in_share ? 1 : 0);
    rec_hasher_u64(h, (img->in_share_user ? 1 : 0) | (img->share_accounts_known ? 2 : 0));
    rec_hasher_u64(h, img->n_share_accounts);
    for (size_t i = 0; i < img->n_share_accounts; i++)
        rec_hasher_str(h, img->share_accounts[i]);
    rec_hasher_str(h, img->instance_id);
    rec_hasher_str(h, img->system_snapshot_id);
    rec_hasher_str(h, img->data_snapshot_id);
    rec_hasher_str(h, img->description);
    rec_hasher_str(h, img->resource_group_id);
    prov_tag small[SMALL_TAGS], *tags = small;
    if (img->n_tags <= SMALL_TAGS) {
        sort_small_tags(img->tags, img->n_tags, small);
    } else {
        if (!(tags = malloc(img->n_tags * sizeof(*tags)))) {
            h->failed = true;
            return;
        }
        memcpy(tags, img->tags, img->n_tags * sizeof(*tags));
        qsort(tags, img->n_tags, sizeof(*tags), cmp_tag);
    }
    rec_hasher_u64(h, img->n_tags);
    for (size_t i = 0; i < img->n_tags; i++) {
        rec_hasher_str(h, tags[i].key);
        rec_hasher_str(h, tags[i].value);
    }
    if (tags != small)
        free(tags);
}

/* Observed fingerprint: independent of the order the API listed things in. */
void rec_fingerprint_observed(const rec_observed *observed, char ret[REC_HASH_HEX + 1])
{
    rec_hasher h;
    rec_hasher_init(&h);
    rec_hasher_str(&h, "observed-v1");
    size_t n = observed ? observed->n : 0;
    const rec_region_obs **rs = n ? malloc(n * sizeof(*rs)) : NULL;
    if (n && !rs) {
        h.failed = true;
        rec_hasher_final(&h, ret);
        return;
    }
    for (size_t i = 0; i < n; i++)
        rs[i] = &observed->regions[i];
    if (n)
        qsort(rs, n, sizeof(*rs), cmp_region_ptr);
    rec_hasher_u64(&h, n);
    for (size_t i = 0; i < n; i++) {
        const rec_region_obs *r = rs[i];
        rec_hasher_str(&h, r->region);
        rec_hasher_u64(&h, r->have_quota ? r->quota_learned : 0);
        const prov_image **imgs = r->images.n ? malloc(r->images.n * sizeof(*imgs)) : NULL;
        const char **ecs = r->ecs.n ? malloc(r->ecs.n * sizeof(*ecs)) : NULL;
        if ((r->images.n && !imgs) || (r->ecs.n && !ecs)) {
            h.failed = true;
            free(imgs);
            free(ecs);
            break;
        }
        for (size_t j = 0; j < r->images.n; j++)
            imgs[j] = &r->images.v[j];
        if (imgs)
            qsort(imgs, r->images.n, sizeof(*imgs), cmp_image_ptr);
        rec_hasher_u64(&h, r->images.n);
        for (size_t j = 0; j < r->images.n; j++)
            hash_observed_image(&h, imgs[j]);
        for (size_t j = 0; j < r->ecs.n; j++)
            ecs[j] = r->ecs.v[j].image_id;
        if (ecs)
            qsort(ecs, r->ecs.n, sizeof(*ecs), cmp_str_ptr);
        rec_hasher_u64(&h, r->ecs_observed ? r->ecs.n + 1 : 0);
        for (size_t j = 0; j < r->ecs.n; j++)
            rec_hasher_str(&h, ecs[j]);
        free(imgs);
        free(ecs);
    }
    free(rs);
    rec_hasher_final(&h, ret);
}

bool rec_fingerprint_equal(const rec_fingerprint *a, const rec_fingerprint *b)
{
    return strcmp(a->desired, b->desired) == 0 && strcmp(a->observed, b->observed) == 0;
}
