/* Typed operations (prov_client.h) over prov_client_call: the raw call for `imgrecon api`,
 * ListCustomImages over every page (checked whole, see "Listing integrity"), CreateCustomImage,
 * ModifyImageShareStatus, DeleteCustomImage, DeleteCustomImages (up to 15 ids), the tag
 * operations (TagResources, UntagResources, ListTagResources by NextToken), the account shares
 * (Add/RemoveCustomImageShareAccount, ListCustomImageShareAccounts), ECS DescribeImages (self,
 * every status, every page) and ECS DeleteImage. Each keeps a small context alive across pages
 * and frees it after the user's callback. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prov_call_int.h"
#include "prov_resp.h"
#include "prov_swas.h"

#define PAGE_SIZE 100
#define MAX_PAGES 1000 /* a server that keeps saying "more" cannot keep us paging forever */
#define ECS_ALL_STATUSES "Creating,Waiting,Available,UnAvailable,CreateFailed,Deprecated"

/* ---- Raw call ---- */

typedef struct raw_ctx {
    prov_call_cb cb;
    void *ud;
} raw_ctx;

static void raw_done(json_t *body, const prov_error *err, void *ud)
{
    raw_ctx *x = ud;
    x->cb(body, err, x->ud);
    free(x);
}

int prov_call(prov_client *c, prov_product product, const char *action, const char *region,
              const prov_kvs *params, prov_call_cb cb, void *ud)
{
    if (cb == NULL)
        return -EINVAL;
    raw_ctx *x = calloc(1, sizeof(*x));
    if (x == NULL)
        return -ENOMEM;
    x->cb = cb;
    x->ud = ud;
    int rc = prov_client_call(c, product, action, region, params, raw_done, x);
    if (rc < 0)
        free(x);
    return rc;
}

/* Sets key to a JSON array string of the given strings, as ImageIds/ImageNames want. */
static int add_json_array(prov_kvs *p, const char *key, const char *const *v, size_t n)
{
    json_t *a = json_array();
    if (a == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (json_array_append_new(a, json_string(v[i] ? v[i] : "")) != 0) {
            json_decref(a);
            return -ENOMEM;
        }
    char *s = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    if (s == NULL)
        return -ENOMEM;
    int rc = prov_kvs_set(p, key, s);
    free(s);
    return rc;
}

static int add_tags(prov_kvs *p, const char *const *keys, const char *const *values, size_t n)
{
    char k[32];
    for (size_t i = 0; i < n; i++) {
        int rc;
        snprintf(k, sizeof(k), "Tag.%zu.Key", i + 1);
        if ((rc = prov_kvs_set(p, k, keys[i])) < 0)
            return rc;
        snprintf(k, sizeof(k), "Tag.%zu.Value", i + 1);
        if ((rc = prov_kvs_set(p, k, values[i] ? values[i] : "")) < 0)
            return rc;
    }
    return 0;
}

static int set_page(prov_kvs *p, unsigned page, unsigned size)
{
    char buf[16];
    snprintf(buf, sizeof(buf), "%u", page);
    int rc = prov_kvs_set(p, "PageNumber", buf);
    snprintf(buf, sizeof(buf), "%u", size);
    if (rc == 0)
        rc = prov_kvs_set(p, "PageSize", buf);
    return rc;
}

/* Reports a local failure (bad answer) through a typed callback's error. */
static void local_error(prov_error *err, int sys, const char *action, const char *message)
{
    memset(err, 0, sizeof(*err));
    if (prov_error_set(err, 0, sys, NULL, message, NULL, action) < 0) {
        err->cls = PROV_ERR_PERMANENT;
        err->sys = -ENOMEM;
    }
}

/* ---- Listing integrity (provider/README.md "Listings are believed only whole") ----
 * A listing counts only when it is complete and consistent: every page carries a TotalCount (a
 * number >= 0, the same on every page), paging follows the PageSize the server answers with, the
 * pages end within TotalCount / PageSize + 1 requests (and MAX_PAGES), the images add up to
 * exactly TotalCount with no id twice, each image is in the region asked (and among the ids or
 * names asked, when the listing was filtered; a custom image carries each tag key once; an ECS
 * image's ImageOwnerAlias is self). Anything
 * else rejects the whole listing with a message naming the check, so no plan is ever computed from
 * it. The one pager below applies them to ListCustomImages, ECS DescribeImages and
 * ListCustomImageShareAccounts alike. */

typedef struct page_state {
    unsigned page;      /* the page number asked last */
    unsigned size;      /* the page size to ask for (the server's answer once known) */
    unsigned total;     /* TotalCount of page 1 */
    unsigned max_pages; /* TotalCount / size + 1, at most MAX_PAGES */
    const char *items;  /* what is listed, for the messages: "images", "accounts" */
} page_state;

/* Reads a non-negative integer counter (number or decimal string); 0 found, -ENOENT absent,
 * -EPROTO otherwise with *ret_bad set to why. */
static int read_counter(const json_t *body, const char *key, unsigned *ret, const char **ret_bad)
{
    json_t *v = json_object_get(body, key);
    if (v == NULL || json_is_null(v))
        return -ENOENT;
    long long n = -1;
    if (json_is_integer(v)) {
        n = json_integer_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end = NULL;
        if (*s == '-') {
            n = -1;
        } else if (*s >= '0' && *s <= '9') {
            errno = 0;
            n = strtoll(s, &end, 10);
            if (errno != 0 || *end != '\0') {
                *ret_bad = "is not a number";
                return -EPROTO;
            }
        } else {
            *ret_bad = "is not a number";
            return -EPROTO;
        }
    } else {
        *ret_bad = "is not a number";
        return -EPROTO;
    }
    if (n < 0) {
        *ret_bad = "is negative";
        return -EPROTO;
    }
    if (n > 0x7fffffff) {
        *ret_bad = "is too large";
        return -EPROTO;
    }
    *ret = (unsigned)n;
    return 0;
}

/* Checks a page's counters before its items are taken; 0 or -EPROTO with msg set. */
static int page_check_counters(page_state *ps, const json_t *body, char *msg, size_t cap)
{
    const char *bad = NULL;
    unsigned total = 0, size = 0, number = 0;
    int rc = read_counter(body, "TotalCount", &total, &bad);
    if (rc == -ENOENT) {
        snprintf(msg, cap, "page %u has no TotalCount", ps->page);
        return -EPROTO;
    }
    if (rc < 0) {
        snprintf(msg, cap, "page %u: TotalCount %s", ps->page, bad);
        return -EPROTO;
    }
    if (ps->page > 1 && total != ps->total) {
        snprintf(msg, cap, "TotalCount changed between pages: %u on page 1, %u on page %u",
                 ps->total, total, ps->page);
        return -EPROTO;
    }
    rc = read_counter(body, "PageSize", &size, &bad);
    if (rc == 0 && size == 0) {
        bad = "is 0";
        rc = -EPROTO;
    }
    if (rc == -EPROTO) {
        snprintf(msg, cap, "page %u: PageSize %s", ps->page, bad);
        return -EPROTO;
    }
    if (rc == 0)
        ps->size = size; /* follow the server's page size from here on */
    rc = read_counter(body, "PageNumber", &number, &bad);
    if (rc == 0 && number != ps->page) {
        snprintf(msg, cap, "asked for page %u, the answer is page %u", ps->page, number);
        return -EPROTO;
    }
    if (ps->page == 1) {
        ps->total = total;
        unsigned pages = total / ps->size + 1;
        if (pages > MAX_PAGES) {
            snprintf(msg, cap, "TotalCount %u needs more than %u pages of %u", total, MAX_PAGES,
                     ps->size);
            return -EPROTO;
        }
        ps->max_pages = pages;
    }
    return 0;
}

/* Decides after a page's items are in: 1 the listing is complete, 0 ask for the next page,
 * -EPROTO with msg set when the pages contradict TotalCount or never end. */
static int page_after_items(page_state *ps, size_t got, size_t have, char *msg, size_t cap)
{
    if (got > ps->size) {
        snprintf(msg, cap, "page %u carries %zu %s, more than its PageSize %u", ps->page, got,
                 ps->items, ps->size);
        return -EPROTO;
    }
    if (have > ps->total) {
        snprintf(msg, cap, "%zu %s after page %u, more than TotalCount %u", have, ps->items,
                 ps->page, ps->total);
        return -EPROTO;
    }
    if (have == ps->total)
        return 1;
    if (got < ps->size) {
        snprintf(msg, cap, "short listing: %zu of TotalCount %u %s, page %u had %zu of %u", have,
                 ps->total, ps->items, ps->page, got, ps->size);
        return -EPROTO;
    }
    if (ps->page >= ps->max_pages) {
        snprintf(msg, cap, "pages never end: %zu of TotalCount %u %s after %u pages", have,
                 ps->total, ps->items, ps->page);
        return -EPROTO;
    }
    return 0;
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Finds an id listed twice; 0, -ENOMEM, or -EPROTO with msg naming the id (an item, e.g. an
 * "image"). ids are borrowed. */
static int check_unique(const char **ids, size_t n, const char *item, char *msg, size_t cap)
{
    if (n < 2)
        return 0;
    const char **v = malloc(n * sizeof(*v));
    if (v == NULL)
        return -ENOMEM;
    memcpy(v, ids, n * sizeof(*v));
    qsort(v, n, sizeof(*v), cmp_str_ptr);
    int rc = 0;
    for (size_t i = 1; i < n && rc == 0; i++)
        if (strcmp(v[i - 1], v[i]) == 0) {
            snprintf(msg, cap, "%s %s is listed twice", item, v[i]);
            rc = -EPROTO;
        }
    free(v);
    return rc;
}

static bool in_set(const char *s, const char *const *set, size_t n)
{
    for (size_t i = 0; s != NULL && i < n; i++)
        if (set[i] != NULL && strcmp(set[i], s) == 0)
            return true;
    return false;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++)
        free(v[i]);
    free(v);
}

static int copy_strv(const char *const *src, size_t n, char ***ret)
{
    if (n == 0)
        return 0;
    char **v = calloc(n, sizeof(*v));
    if (v == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        if ((v[i] = strdup(src[i] ? src[i] : "")) == NULL) {
            free_strv(v, n);
            return -ENOMEM;
        }
    *ret = v;
    return 0;
}

/* ---- One pager for every paged listing ----
 * A pager asks for page after page of one action in one region, checks each page's counters
 * (page_check_counters) and the complete listing (page_after_items, check_unique, the listing's
 * own item checks), and hands the listing to the user's callback exactly once. What differs
 * between listings is in a pager_ops table: how a page's items are parsed and checked, and how
 * the result is reported. Each page's answer is parsed once by the client and borrowed here. */

typedef struct pager pager;

typedef struct pager_ops {
    prov_product product;
    const char *action;
    const char *item, *items; /* what one item is, for the messages: "image", "images" */
    unsigned page_size;       /* the PageSize asked for */
    /* Extra checks of a page before its items are taken (0 or -EPROTO with msg); may be NULL. */
    int (*check_page)(const pager *p, const json_t *body, char *msg, size_t cap);
    /* Appends the page's items to the accumulator; 0 or a negative errno. */
    int (*parse)(pager *p, const json_t *body);
    /* The number of items accumulated so far, and the id of item i (borrowed). */
    size_t (*count)(const pager *p);
    const char *(*id_at)(const pager *p, size_t i);
    /* The complete listing's per-item checks (region, filter); 0 or -EPROTO with msg set; may
     * be NULL. */
    int (*check_items)(const pager *p, char *msg, size_t cap);
    /* Calls the user's callback with the listing or err, then frees the accumulator. */
    void (*report)(pager *p, const prov_error *err);
} pager_ops;

struct pager {
    const pager_ops *ops;
    prov_client *c;
    char *region;
    prov_kvs params;
    page_state ps;
    char **ids; /* the id filter (copies), to check the answer against */
    size_t n_ids;
    char **names; /* the name filter (copies) */
    size_t n_names;
    prov_image_list list;    /* the accumulator of ListCustomImages */
    prov_ecs_image_list ecs; /* the accumulator of DescribeImages */
    prov_str_list accounts;  /* the accumulator of ListCustomImageShareAccounts */
    prov_list_cb list_cb;
    prov_ecs_list_cb ecs_cb;
    prov_accounts_cb accounts_cb;
    void *ud;
};

/* Allocates a pager for region; the caller sets its callback and parameters, then starts it. */
static pager *pager_new(const pager_ops *ops, prov_client *c, const char *region, void *ud)
{
    pager *x = calloc(1, sizeof(*x));
    if (x == NULL)
        return NULL;
    x->ops = ops;
    x->c = c;
    x->ud = ud;
    x->ps.page = 1;
    x->ps.size = ops->page_size;
    x->ps.items = ops->items;
    x->region = strdup(region);
    if (x->region == NULL) {
        free(x);
        return NULL;
    }
    return x;
}

/* Frees the pager itself (its accumulators are freed by report). Accepts NULL. */
static void pager_free(pager *x)
{
    if (x == NULL)
        return;
    prov_kvs_clear(&x->params);
    free_strv(x->ids, x->n_ids);
    free_strv(x->names, x->n_names);
    free(x->region);
    free(x);
}

static void pager_finish(pager *x, const prov_error *err)
{
    x->ops->report(x, err);
    pager_free(x);
}

/* Fails the listing with a local error whose message says which check failed. */
static void pager_reject(pager *x, int rc, const char *msg)
{
    char buf[640];
    snprintf(buf, sizeof(buf), "%s in %s rejected: %s", x->ops->action, x->region, msg);
    prov_error e;
    local_error(&e, rc, x->ops->action, buf);
    pager_finish(x, &e);
    prov_error_clear(&e);
}

/* The complete listing's checks: the listing's own, then no id twice. */
static int pager_check_items(const pager *x, char *msg, size_t cap)
{
    int rc = x->ops->check_items != NULL ? x->ops->check_items(x, msg, cap) : 0;
    size_t n = x->ops->count(x);
    if (rc < 0 || n < 2)
        return rc;
    const char **ids = malloc(n * sizeof(*ids));
    if (ids == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        ids[i] = x->ops->id_at(x, i);
    rc = check_unique(ids, n, x->ops->item, msg, cap);
    free(ids);
    return rc;
}

static void pager_page_done(json_t *body, const prov_error *err, void *ud);

/* Asks for the page x->ps.page; 0 or a negative errno (then nothing was sent). */
static int pager_request(pager *x)
{
    int rc = set_page(&x->params, x->ps.page, x->ps.size);
    if (rc == 0)
        rc = prov_client_call(x->c, x->ops->product, x->ops->action, x->region, &x->params,
                              pager_page_done, x);
    return rc;
}

/* The client's callback for each page: check, take the items, then finish or ask for more. */
static void pager_page_done(json_t *body, const prov_error *err, void *ud)
{
    pager *x = ud;
    char msg[512];
    if (err != NULL) {
        pager_finish(x, err);
        return;
    }
    int rc = page_check_counters(&x->ps, body, msg, sizeof(msg));
    if (rc == 0 && x->ops->check_page != NULL)
        rc = x->ops->check_page(x, body, msg, sizeof(msg));
    if (rc < 0) {
        pager_reject(x, rc, msg);
        return;
    }
    size_t before = x->ops->count(x);
    rc = x->ops->parse(x, body);
    if (rc < 0) {
        snprintf(msg, sizeof(msg), "malformed %s answer", x->ops->action);
        pager_reject(x, rc, rc == -ENOMEM ? "out of memory" : msg);
        return;
    }
    size_t have = x->ops->count(x);
    rc = page_after_items(&x->ps, have - before, have, msg, sizeof(msg));
    if (rc == 1) {
        rc = pager_check_items(x, msg, sizeof(msg));
        if (rc < 0)
            pager_reject(x, rc, rc == -ENOMEM ? "out of memory" : msg);
        else
            pager_finish(x, NULL);
        return;
    }
    if (rc < 0) {
        pager_reject(x, rc, msg);
        return;
    }
    x->ps.page++;
    rc = pager_request(x);
    if (rc < 0)
        pager_reject(x, rc, "could not request the next page");
}

/* Sends the first page, or frees the pager when a parameter or the call failed. */
static int pager_start(pager *x, int rc)
{
    if (rc == 0)
        rc = pager_request(x);
    if (rc < 0)
        pager_free(x);
    return rc;
}

/* ---- ListCustomImages, every page ---- */

static int list_parse(pager *x, const json_t *body)
{
    return prov_parse_list_images(body, &x->list, NULL);
}

static size_t list_count(const pager *x)
{
    return x->list.n;
}

static const char *list_id_at(const pager *x, size_t i)
{
    return x->list.v[i].image_id;
}

static void list_report(pager *x, const prov_error *err)
{
    x->list_cb(err != NULL ? NULL : &x->list, err, x->ud);
    prov_image_list_clear(&x->list);
}

/* A tag key img carries twice (borrowed), or NULL. Two values for one key contradict each other:
 * whichever came first would decide ownership. */
static const char *repeated_tag_key(const prov_image *img)
{
    for (size_t i = 0; i < img->n_tags; i++)
        for (size_t k = i + 1; k < img->n_tags; k++)
            if (strcmp(img->tags[i].key, img->tags[k].key) == 0)
                return img->tags[i].key;
    return NULL;
}

/* The complete listing's per-image checks: region, filter, each tag key once. */
static int list_check_items(const pager *x, char *msg, size_t cap)
{
    const prov_image_list *l = &x->list;
    for (size_t i = 0; i < l->n; i++) {
        const prov_image *img = &l->v[i];
        const char *twice = repeated_tag_key(img);
        if (twice != NULL) {
            snprintf(msg, cap, "image %s carries the tag key %s twice", img->image_id, twice);
            return -EPROTO;
        }
        if (img->region_id == NULL || strcmp(img->region_id, x->region) != 0) {
            snprintf(msg, cap, "image %s has RegionId %s, not the region asked", img->image_id,
                     img->region_id ? img->region_id : "(none)");
            return -EPROTO;
        }
        if (x->n_ids > 0 && !in_set(img->image_id, (const char *const *)x->ids, x->n_ids)) {
            snprintf(msg, cap, "image %s was not among the ImageIds asked", img->image_id);
            return -EPROTO;
        }
        if (x->n_names > 0 && !in_set(img->name, (const char *const *)x->names, x->n_names)) {
            snprintf(msg, cap, "image %s (%s) was not among the ImageNames asked", img->image_id,
                     img->name);
            return -EPROTO;
        }
    }
    return 0;
}

static const pager_ops list_ops = {
    .product = PROV_SWAS,
    .action = "ListCustomImages",
    .item = "image",
    .items = "images",
    .page_size = PAGE_SIZE,
    .parse = list_parse,
    .count = list_count,
    .id_at = list_id_at,
    .check_items = list_check_items,
    .report = list_report,
};

/* Adds the filter's parameters and keeps copies of the ids and names asked for. */
static int list_add_filter(pager *x, const prov_list_filter *f)
{
    int rc = 0;
    if (rc == 0 && f->n_image_ids > 0)
        rc = add_json_array(&x->params, "ImageIds", f->image_ids, f->n_image_ids);
    if (rc == 0 && (rc = copy_strv(f->image_ids, f->n_image_ids, &x->ids)) == 0)
        x->n_ids = f->n_image_ids;
    if (rc == 0 && f->n_image_names > 0)
        rc = add_json_array(&x->params, "ImageNames", f->image_names, f->n_image_names);
    if (rc == 0 && (rc = copy_strv(f->image_names, f->n_image_names, &x->names)) == 0)
        x->n_names = f->n_image_names;
    if (rc == 0 && f->instance_id)
        rc = prov_kvs_set(&x->params, "InstanceId", f->instance_id);
    if (rc == 0 && f->system_snapshot_id)
        rc = prov_kvs_set(&x->params, "SystemSnapshotId", f->system_snapshot_id);
    if (rc == 0 && f->data_snapshot_id)
        rc = prov_kvs_set(&x->params, "DataSnapshotId", f->data_snapshot_id);
    if (rc == 0 && f->resource_group_id)
        rc = prov_kvs_set(&x->params, "ResourceGroupId", f->resource_group_id);
    if (rc == 0 && f->share >= 0)
        rc = prov_kvs_set(&x->params, "Share", f->share ? "true" : "false");
    for (size_t i = 0; rc == 0 && i < f->n_tags; i++) {
        const char *k = f->tags[i].key, *v = f->tags[i].value;
        rc = add_tags(&x->params, &k, &v, 1);
    }
    return rc;
}

int prov_swas_list_images(prov_client *c, const char *region, const prov_list_filter *f,
                          prov_list_cb cb, void *ud)
{
    if (c == NULL || region == NULL || cb == NULL)
        return -EINVAL;
    pager *x = pager_new(&list_ops, c, region, ud);
    if (x == NULL)
        return -ENOMEM;
    x->list_cb = cb;
    return pager_start(x, f != NULL ? list_add_filter(x, f) : 0);
}

/* ---- ListRegions ---- */

typedef struct regions_ctx {
    prov_regions_cb cb;
    void *ud;
} regions_ctx;

static void regions_done(json_t *body, const prov_error *err, void *ud)
{
    regions_ctx *x = ud;
    char **v = NULL;
    size_t n = 0;
    if (err != NULL) {
        x->cb(NULL, 0, err, x->ud);
        free(x);
        return;
    }
    int rc = prov_parse_regions(body, &v, &n);
    if (rc < 0) {
        prov_error e;
        local_error(&e, rc, "ListRegions",
                    "ListRegions answer rejected: no region, a region id twice, or a malformed "
                    "RegionId");
        x->cb(NULL, 0, &e, x->ud);
        prov_error_clear(&e);
    } else {
        x->cb((const char *const *)v, n, NULL, x->ud);
    }
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
    free(x);
}

int prov_swas_list_regions(prov_client *c, prov_regions_cb cb, void *ud)
{
    if (c == NULL || cb == NULL)
        return -EINVAL;
    regions_ctx *x = calloc(1, sizeof(*x));
    if (x == NULL)
        return -ENOMEM;
    x->cb = cb;
    x->ud = ud;
    prov_kvs p = {0};
    int rc = prov_client_call(c, PROV_SWAS, "ListRegions", NULL, &p, regions_done, x);
    prov_kvs_clear(&p);
    if (rc < 0)
        free(x);
    return rc;
}

/* ---- CreateCustomImage ---- */

typedef struct create_ctx {
    prov_create_cb cb;
    void *ud;
} create_ctx;

static void create_done(json_t *body, const prov_error *err, void *ud)
{
    create_ctx *x = ud;
    if (err != NULL) {
        x->cb(NULL, err, x->ud);
    } else {
        json_t *id = json_object_get(body, "ImageId");
        if (json_is_string(id) && json_string_length(id) > 0) {
            x->cb(json_string_value(id), NULL, x->ud);
        } else {
            prov_error e;
            local_error(&e, -EPROTO, "CreateCustomImage",
                        "CreateCustomImage answer has no ImageId");
            x->cb(NULL, &e, x->ud);
            prov_error_clear(&e);
        }
    }
    free(x);
}

int prov_swas_create_image(prov_client *c, const prov_create_req *req, prov_create_cb cb, void *ud)
{
    if (c == NULL || req == NULL || req->region == NULL || req->name == NULL ||
        req->instance_id == NULL || cb == NULL)
        return -EINVAL;
    prov_kvs p = {0};
    int rc = prov_kvs_set(&p, "ImageName", req->name);
    if (rc == 0)
        rc = prov_kvs_set(&p, "InstanceId", req->instance_id);
    if (rc == 0 && req->system_snapshot_id)
        rc = prov_kvs_set(&p, "SystemSnapshotId", req->system_snapshot_id);
    if (rc == 0 && req->data_snapshot_id)
        rc = prov_kvs_set(&p, "DataSnapshotId", req->data_snapshot_id);
    if (rc == 0 && req->description)
        rc = prov_kvs_set(&p, "Description", req->description);
    if (rc == 0 && req->resource_group_id)
        rc = prov_kvs_set(&p, "ResourceGroupId", req->resource_group_id);
    if (rc == 0 && req->client_token)
        rc = prov_kvs_set(&p, "ClientToken", req->client_token);
    for (size_t i = 0; rc == 0 && i < req->n_tags; i++) {
        const char *k = req->tags[i].key, *v = req->tags[i].value;
        char key[32];
        snprintf(key, sizeof(key), "Tag.%zu.Key", i + 1);
        rc = prov_kvs_set(&p, key, k);
        snprintf(key, sizeof(key), "Tag.%zu.Value", i + 1);
        if (rc == 0)
            rc = prov_kvs_set(&p, key, v ? v : "");
    }
    create_ctx *x = rc == 0 ? calloc(1, sizeof(*x)) : NULL;
    if (rc == 0 && x == NULL)
        rc = -ENOMEM;
    if (rc == 0) {
        x->cb = cb;
        x->ud = ud;
        rc = prov_client_call(c, PROV_SWAS, "CreateCustomImage", req->region, &p, create_done, x);
        if (rc < 0)
            free(x);
    }
    prov_kvs_clear(&p);
    return rc;
}

/* ---- Calls that only succeed or fail ---- */

typedef struct done_ctx {
    prov_done_cb cb;
    void *ud;
} done_ctx;

static void done_done(json_t *body, const prov_error *err, void *ud)
{
    done_ctx *x = ud;
    (void)body;
    /* A "done" class answer (NotFound on delete, DryRunOperation) is the success it means. */
    x->cb(err != NULL && err->cls != PROV_ERR_DONE ? err : NULL, x->ud);
    free(x);
}

static int simple_call(prov_client *c, prov_product product, const char *action, const char *region,
                       prov_kvs *p, prov_done_cb cb, void *ud)
{
    done_ctx *x = calloc(1, sizeof(*x));
    if (x == NULL)
        return -ENOMEM;
    x->cb = cb;
    x->ud = ud;
    int rc = prov_client_call(c, product, action, region, p, done_done, x);
    if (rc < 0)
        free(x);
    return rc;
}

int prov_swas_share_image(prov_client *c, const char *region, const char *image_id, bool share,
                          const char *client_token, prov_done_cb cb, void *ud)
{
    if (c == NULL || region == NULL || image_id == NULL || cb == NULL)
        return -EINVAL;
    prov_kvs p = {0};
    int rc = prov_kvs_set(&p, "ImageId", image_id);
    if (rc == 0)
        rc = prov_kvs_set(&p, "Operation", share ? "Share" : "UnShare");
    if (rc == 0 && client_token)
        rc = prov_kvs_set(&p, "ClientToken", client_token);
    if (rc == 0)
        rc = simple_call(c, PROV_SWAS, "ModifyImageShareStatus", region, &p, cb, ud);
    prov_kvs_clear(&p);
    return rc;
}

int prov_swas_delete_image(prov_client *c, const char *region, const char *image_id,
                           const char *client_token, prov_done_cb cb, void *ud)
{
    if (c == NULL || region == NULL || image_id == NULL || cb == NULL)
        return -EINVAL;
    prov_kvs p = {0};
    int rc = prov_kvs_set(&p, "ImageId", image_id);
    if (rc == 0 && client_token)
        rc = prov_kvs_set(&p, "ClientToken", client_token);
    if (rc == 0)
        rc = simple_call(c, PROV_SWAS, "DeleteCustomImage", region, &p, cb, ud);
    prov_kvs_clear(&p);
    return rc;
}

/* ---- Batched delete (DeleteCustomImages) ----
 * Kept apart from the other typed operations: one call for up to PROV_DELETE_BATCH_MAX images of
 * one region, paced under its own action name. */

typedef struct batch_ctx {
    prov_done_cb cb;
    void *ud;
} batch_ctx;

/* The answer is all or nothing: success deletes every id. Unlike the single delete, a NotFound
 * is passed on as an error, because it names one id of the batch and the others still exist. */
static void batch_done(json_t *body, const prov_error *err, void *ud)
{
    batch_ctx *x = ud;
    (void)body;
    x->cb(err, x->ud);
    free(x);
}

int prov_swas_delete_images(prov_client *c, const char *region, const char *const *image_ids,
                            size_t n, const char *client_token, prov_done_cb cb, void *ud)
{
    if (c == NULL || region == NULL || image_ids == NULL || n == 0 || n > PROV_DELETE_BATCH_MAX ||
        cb == NULL)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (image_ids[i] == NULL || *image_ids[i] == '\0')
            return -EINVAL;
    prov_kvs p = {0};
    int rc = add_json_array(&p, "ImageIds", image_ids, n);
    if (rc == 0 && client_token)
        rc = prov_kvs_set(&p, "ClientToken", client_token);
    batch_ctx *x = rc == 0 ? calloc(1, sizeof(*x)) : NULL;
    if (rc == 0 && x == NULL)
        rc = -ENOMEM;
    if (rc == 0) {
        x->cb = cb;
        x->ud = ud;
        rc = prov_client_call(c, PROV_SWAS, "DeleteCustomImages", region, &p, batch_done, x);
        if (rc < 0)
            free(x);
    }
    prov_kvs_clear(&p);
    return rc;
}

int prov_ecs_delete_image(prov_client *c, const char *region, const char *image_id, bool force,
                          bool dry_run, prov_done_cb cb, void *ud)
{
    if (c == NULL || region == NULL || image_id == NULL || cb == NULL)
        return -EINVAL;
    prov_kvs p = {0};
    int rc = prov_kvs_set(&p, "ImageId", image_id);
    if (rc == 0)
        rc = prov_kvs_set(&p, "Force", force ? "true" : "false");
    if (rc == 0 && dry_run)
        rc = prov_kvs_set(&p, "DryRun", "true");
    if (rc == 0)
        rc = simple_call(c, PROV_ECS, "DeleteImage", region, &p, cb, ud);
    prov_kvs_clear(&p);
    return rc;
}

/* ---- ECS DescribeImages, every page ---- */

static int ecs_parse(pager *x, const json_t *body)
{
    return prov_parse_ecs_images(body, &x->ecs, NULL);
}

static size_t ecs_count(const pager *x)
{
    return x->ecs.n;
}

static const char *ecs_id_at(const pager *x, size_t i)
{
    return x->ecs.v[i].image_id;
}

static void ecs_report(pager *x, const prov_error *err)
{
    x->ecs_cb(err != NULL ? NULL : &x->ecs, err, x->ud);
    prov_ecs_image_list_clear(&x->ecs);
}

/* The answer's RegionId, and each image's when it carries one, must be the region asked. */
static int ecs_check_regions(const pager *x, const json_t *body, char *msg, size_t cap)
{
    json_t *r = json_object_get(body, "RegionId");
    if (r != NULL && !json_is_null(r) &&
        (!json_is_string(r) || strcmp(json_string_value(r), x->region) != 0)) {
        snprintf(msg, cap, "the answer has RegionId %s, not the region asked",
                 json_is_string(r) ? json_string_value(r) : "(not a string)");
        return -EPROTO;
    }
    json_t *images = json_object_get(body, "Images");
    json_t *items = json_is_object(images) ? json_object_get(images, "Image") : NULL;
    size_t i;
    json_t *img;
    json_array_foreach(items, i, img)
    {
        json_t *ir = json_object_get(img, "RegionId");
        json_t *id = json_object_get(img, "ImageId");
        if (ir != NULL && !json_is_null(ir) &&
            (!json_is_string(ir) || strcmp(json_string_value(ir), x->region) != 0)) {
            snprintf(msg, cap, "image %s has RegionId %s, not the region asked",
                     json_is_string(id) ? json_string_value(id) : "(no id)",
                     json_is_string(ir) ? json_string_value(ir) : "(not a string)");
            return -EPROTO;
        }
    }
    return 0;
}

/* The complete listing's per-image checks: every image is the account's own (the listing asks
 * ImageOwnerAlias=self, so any other alias, or none, contradicts it) and, when filtered, among
 * the ids asked. */
static int ecs_check_items(const pager *x, char *msg, size_t cap)
{
    const prov_ecs_image_list *l = &x->ecs;
    for (size_t i = 0; i < l->n; i++) {
        const prov_ecs_image *e = &l->v[i];
        if (e->owner_alias == NULL || strcmp(e->owner_alias, "self") != 0) {
            snprintf(msg, cap, "image %s has ImageOwnerAlias %s, not the self asked", e->image_id,
                     e->owner_alias ? e->owner_alias : "(none)");
            return -EPROTO;
        }
        if (x->n_ids > 0 && !in_set(e->image_id, (const char *const *)x->ids, x->n_ids)) {
            snprintf(msg, cap, "image %s was not among the ImageId asked", e->image_id);
            return -EPROTO;
        }
    }
    return 0;
}

static const pager_ops ecs_ops = {
    .product = PROV_ECS,
    .action = "DescribeImages",
    .item = "image",
    .items = "images",
    .page_size = PAGE_SIZE,
    .check_page = ecs_check_regions,
    .parse = ecs_parse,
    .count = ecs_count,
    .id_at = ecs_id_at,
    .check_items = ecs_check_items,
    .report = ecs_report,
};

/* Sets ImageId to the comma-separated ids asked for and keeps copies of them. */
static int ecs_add_ids(pager *x, const char *const *image_ids, size_t n_image_ids)
{
    int rc = 0;
    if (n_image_ids > 0) {
        char *ids = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&ids, &len);
        if (m == NULL)
            return -ENOMEM;
        for (size_t i = 0; i < n_image_ids; i++)
            fprintf(m, "%s%s", i ? "," : "", image_ids[i]);
        if (fclose(m) != 0)
            rc = -ENOMEM;
        if (rc == 0)
            rc = prov_kvs_set(&x->params, "ImageId", ids);
        free(ids);
    }
    if (rc == 0 && (rc = copy_strv(image_ids, n_image_ids, &x->ids)) == 0)
        x->n_ids = n_image_ids;
    return rc;
}

/* ---- Tags and account shares ---- */

/* Sets prefix.1 .. prefix.n to the strings v (ResourceId.N, TagKey.N, Account.N). */
static int add_numbered(prov_kvs *p, const char *prefix, const char *const *v, size_t n)
{
    char k[48];
    for (size_t i = 0; i < n; i++) {
        if (v[i] == NULL)
            return -EINVAL;
        snprintf(k, sizeof(k), "%s.%zu", prefix, i + 1);
        int rc = prov_kvs_set(p, k, v[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* RegionId is the client's; the common part of the three tag operations. */
static int tag_params(prov_kvs *p, const char *const *ids, size_t n_ids, const char *token)
{
    int rc = prov_kvs_set(p, "ResourceType", "customimage");
    if (rc == 0)
        rc = add_numbered(p, "ResourceId", ids, n_ids);
    if (rc == 0 && token != NULL)
        rc = prov_kvs_set(p, "ClientToken", token);
    return rc;
}

int prov_swas_tag_resources(prov_client *c, const char *region, const char *const *image_ids,
                            size_t n_ids, const prov_tag *tags, size_t n_tags,
                            const char *client_token, prov_done_cb cb, void *ud)
{
    if (c == NULL || region == NULL || image_ids == NULL || cb == NULL || n_ids == 0 ||
        n_ids > PROV_TAG_MAX_IDS || tags == NULL || n_tags == 0 || n_tags > PROV_TAG_MAX_TAGS)
        return -EINVAL;
    prov_kvs p = {0};
    int rc = tag_params(&p, image_ids, n_ids, client_token);
    for (size_t i = 0; rc == 0 && i < n_tags; i++) {
        const char *k = tags[i].key, *v = tags[i].value;
        if (k == NULL)
            rc = -EINVAL;
        char key[32];
        snprintf(key, sizeof(key), "Tag.%zu.Key", i + 1);
        if (rc == 0)
            rc = prov_kvs_set(&p, key, k);
        snprintf(key, sizeof(key), "Tag.%zu.Value", i + 1);
        if (rc == 0)
            rc = prov_kvs_set(&p, key, v ? v : "");
    }
    if (rc == 0)
        rc = simple_call(c, PROV_SWAS, "TagResources", region, &p, cb, ud);
    prov_kvs_clear(&p);
    return rc;
}

int prov_swas_untag_resources(prov_client *c, const char *region, const char *const *image_ids,
                              size_t n_ids, const char *const *keys, size_t n_keys,
                              const char *client_token, prov_done_cb cb, void *ud)
{
    if (c == NULL || region == NULL || image_ids == NULL || cb == NULL || n_ids == 0 ||
        n_ids > PROV_TAG_MAX_IDS || keys == NULL || n_keys == 0 || n_keys > PROV_TAG_MAX_TAGS)
        return -EINVAL;
    prov_kvs p = {0};
    int rc = tag_params(&p, image_ids, n_ids, client_token);
    if (rc == 0)
        rc = add_numbered(&p, "TagKey", keys, n_keys);
    if (rc == 0)
        rc = simple_call(c, PROV_SWAS, "UntagResources", region, &p, cb, ud);
    prov_kvs_clear(&p);
    return rc;
}

int prov_swas_share_accounts(prov_client *c, const char *region, const char *image_id, bool add,
                             const char *const *accounts, size_t n_accounts,
                             const char *client_token, prov_done_cb cb, void *ud)
{
    if (c == NULL || region == NULL || image_id == NULL || cb == NULL || accounts == NULL ||
        n_accounts == 0 || n_accounts > PROV_SHARE_MAX_ACCOUNTS)
        return -EINVAL;
    prov_kvs p = {0};
    int rc = prov_kvs_set(&p, "ImageId", image_id);
    if (rc == 0)
        rc = add_numbered(&p, "Account", accounts, n_accounts);
    if (rc == 0 && client_token != NULL)
        rc = prov_kvs_set(&p, "ClientToken", client_token);
    if (rc == 0)
        rc = simple_call(c, PROV_SWAS,
                         add ? "AddCustomImageShareAccount" : "RemoveCustomImageShareAccount",
                         region, &p, cb, ud);
    prov_kvs_clear(&p);
    return rc;
}

/* ListTagResources over every page: the next page is asked with the NextToken of the last one
 * until an empty or absent token (or MAX_PAGES). */
typedef struct tags_ctx {
    prov_client *c;
    char *region;
    prov_kvs params;
    unsigned page;
    prov_tag_resource_list acc;
    prov_tag_list_cb cb;
    void *ud;
} tags_ctx;

static void tags_finish(tags_ctx *x, const prov_error *err)
{
    if (err != NULL) {
        prov_tag_resource_list_free(&x->acc);
        x->cb(NULL, err, x->ud);
    } else {
        x->cb(&x->acc, NULL, x->ud);
        prov_tag_resource_list_free(&x->acc);
    }
    prov_kvs_clear(&x->params);
    free(x->region);
    free(x);
}

static void tags_page_done(json_t *body, const prov_error *err, void *ud)
{
    tags_ctx *x = ud;
    if (err != NULL) {
        tags_finish(x, err);
        return;
    }
    char *next = NULL;
    int rc = prov_parse_tag_resources(body, &x->acc, &next);
    if (rc < 0) {
        prov_error e;
        local_error(&e, rc, "ListTagResources", "malformed ListTagResources answer");
        tags_finish(x, &e);
        prov_error_clear(&e);
        return;
    }
    if (next == NULL || *next == '\0' || ++x->page >= MAX_PAGES) {
        free(next);
        tags_finish(x, NULL);
        return;
    }
    rc = prov_kvs_set(&x->params, "NextToken", next);
    free(next);
    if (rc == 0)
        rc = prov_client_call(x->c, PROV_SWAS, "ListTagResources", x->region, &x->params,
                              tags_page_done, x);
    if (rc < 0) {
        prov_error e;
        local_error(&e, rc, "ListTagResources", "could not request the next page");
        tags_finish(x, &e);
        prov_error_clear(&e);
    }
}

int prov_swas_list_tag_resources(prov_client *c, const char *region, const char *const *image_ids,
                                 size_t n_ids, prov_tag_list_cb cb, void *ud)
{
    if (c == NULL || region == NULL || cb == NULL || n_ids > PROV_TAG_MAX_IDS ||
        (n_ids > 0 && image_ids == NULL))
        return -EINVAL;
    tags_ctx *x = calloc(1, sizeof(*x));
    if (x == NULL)
        return -ENOMEM;
    x->c = c;
    x->cb = cb;
    x->ud = ud;
    x->region = strdup(region);
    int rc = x->region ? tag_params(&x->params, image_ids, n_ids, NULL) : -ENOMEM;
    if (rc == 0)
        rc = prov_client_call(c, PROV_SWAS, "ListTagResources", region, &x->params, tags_page_done,
                              x);
    if (rc < 0) {
        prov_kvs_clear(&x->params);
        free(x->region);
        free(x);
    }
    return rc;
}

/* ListCustomImageShareAccounts over every page at PageSize=50, through the pager: the same
 * checks as the image listings (TotalCount on every page, the accounts add up to it, no account
 * twice, the pages end), so a partial list of accounts is never taken for the whole. */
#define SHARE_PAGE_SIZE 50

static int accounts_parse(pager *x, const json_t *body)
{
    return prov_parse_share_accounts(body, &x->accounts, NULL);
}

static size_t accounts_count(const pager *x)
{
    return x->accounts.n;
}

static const char *accounts_id_at(const pager *x, size_t i)
{
    return x->accounts.v[i];
}

static void accounts_report(pager *x, const prov_error *err)
{
    x->accounts_cb(err != NULL ? NULL : &x->accounts, err, x->ud);
    prov_str_list_free(&x->accounts);
}

static const pager_ops accounts_ops = {
    .product = PROV_SWAS,
    .action = "ListCustomImageShareAccounts",
    .item = "account",
    .items = "accounts",
    .page_size = SHARE_PAGE_SIZE,
    .parse = accounts_parse,
    .count = accounts_count,
    .id_at = accounts_id_at,
    .report = accounts_report,
};

int prov_swas_list_share_accounts(prov_client *c, const char *region, const char *image_id,
                                  prov_accounts_cb cb, void *ud)
{
    if (c == NULL || region == NULL || image_id == NULL || cb == NULL)
        return -EINVAL;
    pager *x = pager_new(&accounts_ops, c, region, ud);
    if (x == NULL)
        return -ENOMEM;
    x->accounts_cb = cb;
    return pager_start(x, prov_kvs_set(&x->params, "ImageId", image_id));
}

int prov_ecs_describe_images(prov_client *c, const char *region, const char *const *image_ids,
                             size_t n_image_ids, prov_ecs_list_cb cb, void *ud)
{
    if (c == NULL || region == NULL || cb == NULL)
        return -EINVAL;
    pager *x = pager_new(&ecs_ops, c, region, ud);
    if (x == NULL)
        return -ENOMEM;
    x->ecs_cb = cb;
    int rc = prov_kvs_set(&x->params, "ImageOwnerAlias", "self");
    if (rc == 0)
        rc = prov_kvs_set(&x->params, "Status", ECS_ALL_STATUSES);
    if (rc == 0)
        rc = ecs_add_ids(x, image_ids, n_image_ids);
    return pager_start(x, rc);
}
