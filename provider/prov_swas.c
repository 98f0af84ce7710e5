/* Typed operations (prov_client.h) over prov_client_call: the raw call for `imgrecon api`,
 * ListCustomImages over every page (checked whole, see "Listing integrity"), CreateCustomImage,
 * ModifyImageShareStatus, DeleteCustomImage, ECS DescribeImages (self, every status, every page)
 * and ECS DeleteImage. Each keeps a small context alive across pages and frees it after the user's
 * callback. */
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

/* ---- Listing integrity (DESIGN.md "Observe integrity") ----
 * A listing counts only when it is complete and consistent: every page carries a TotalCount (a
 * number >= 0, the same on every page), paging follows the PageSize the server answers with, the
 * pages end within TotalCount / PageSize + 1 requests (and MAX_PAGES), the images add up to
 * exactly TotalCount with no id twice, each image is in the region asked (and among the ids or
 * names asked, when the listing was filtered). Anything else rejects the whole listing with a
 * message naming the check, so no plan is ever computed from it. Shared by ListCustomImages and
 * ECS DescribeImages. */

typedef struct page_state {
    unsigned page;      /* the page number asked last */
    unsigned size;      /* the page size to ask for (the server's answer once known) */
    unsigned total;     /* TotalCount of page 1 */
    unsigned max_pages; /* TotalCount / size + 1, at most MAX_PAGES */
} page_state;

/* Reads a non-negative integer counter (number or decimal string); 0 found, -ENOENT absent,
 * -EPROTO otherwise with *ret_bad set to why. */
static int read_counter(json_t *body, const char *key, unsigned *ret, const char **ret_bad)
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
static int page_check_counters(page_state *ps, json_t *body, char *msg, size_t cap)
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
        snprintf(msg, cap, "page %u carries %zu images, more than its PageSize %u", ps->page, got,
                 ps->size);
        return -EPROTO;
    }
    if (have > ps->total) {
        snprintf(msg, cap, "%zu images after page %u, more than TotalCount %u", have, ps->page,
                 ps->total);
        return -EPROTO;
    }
    if (have == ps->total)
        return 1;
    if (got < ps->size) {
        snprintf(msg, cap, "short listing: %zu of TotalCount %u images, page %u had %zu of %u",
                 have, ps->total, ps->page, got, ps->size);
        return -EPROTO;
    }
    if (ps->page >= ps->max_pages) {
        snprintf(msg, cap, "pages never end: %zu of TotalCount %u images after %u pages", have,
                 ps->total, ps->page);
        return -EPROTO;
    }
    return 0;
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Finds an id listed twice; 0, -ENOMEM, or -EPROTO with msg naming the id. ids are borrowed. */
static int check_unique(const char **ids, size_t n, char *msg, size_t cap)
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
            snprintf(msg, cap, "image %s is listed twice", v[i]);
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

/* ---- ListCustomImages, every page ---- */

typedef struct list_ctx {
    prov_client *c;
    char *region;
    prov_kvs params;
    page_state ps;
    char **ids; /* the ImageIds filter (copies), to check the answer against */
    size_t n_ids;
    char **names; /* the ImageNames filter (copies) */
    size_t n_names;
    prov_image_list acc;
    prov_list_cb cb;
    void *ud;
} list_ctx;

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

static void list_ctx_free(list_ctx *x)
{
    prov_kvs_clear(&x->params);
    free_strv(x->ids, x->n_ids);
    free_strv(x->names, x->n_names);
    free(x->region);
    free(x);
}

static void list_finish(list_ctx *x, const prov_error *err)
{
    if (err != NULL) {
        prov_image_list_clear(&x->acc);
        x->cb(NULL, err, x->ud);
    } else {
        x->cb(&x->acc, NULL, x->ud);
        prov_image_list_clear(&x->acc);
    }
    list_ctx_free(x);
}

/* Fails the listing with a local error whose message says which check failed. */
static void list_reject(list_ctx *x, int rc, const char *msg)
{
    char buf[640];
    snprintf(buf, sizeof(buf), "ListCustomImages in %s rejected: %s", x->region, msg);
    prov_error e;
    local_error(&e, rc, "ListCustomImages", buf);
    list_finish(x, &e);
    prov_error_clear(&e);
}

/* The complete listing's per-image checks: region, filter, no id twice. */
static int list_check_items(const list_ctx *x, char *msg, size_t cap)
{
    const prov_image_list *l = &x->acc;
    for (size_t i = 0; i < l->n; i++) {
        const prov_image *img = &l->v[i];
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
    const char **ids = l->n ? malloc(l->n * sizeof(*ids)) : NULL;
    if (l->n > 0 && ids == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < l->n; i++)
        ids[i] = l->v[i].image_id;
    int rc = check_unique(ids, l->n, msg, cap);
    free(ids);
    return rc;
}

static void list_page_done(json_t *body, const prov_error *err, void *ud)
{
    list_ctx *x = ud;
    char msg[512];
    if (err != NULL) {
        list_finish(x, err);
        return;
    }
    int rc = page_check_counters(&x->ps, body, msg, sizeof(msg));
    if (rc < 0) {
        list_reject(x, rc, msg);
        return;
    }
    size_t before = x->acc.n;
    char *text = json_dumps(body, JSON_COMPACT);
    rc = text ? prov_parse_list_images(text, strlen(text), &x->acc, NULL) : -ENOMEM;
    free(text);
    if (rc < 0) {
        list_reject(x, rc, "malformed ListCustomImages answer");
        return;
    }
    rc = page_after_items(&x->ps, x->acc.n - before, x->acc.n, msg, sizeof(msg));
    if (rc == 1) {
        rc = list_check_items(x, msg, sizeof(msg));
        if (rc < 0)
            list_reject(x, rc, rc == -ENOMEM ? "out of memory" : msg);
        else
            list_finish(x, NULL);
        return;
    }
    if (rc < 0) {
        list_reject(x, rc, msg);
        return;
    }
    x->ps.page++;
    rc = set_page(&x->params, x->ps.page, x->ps.size);
    if (rc == 0)
        rc = prov_client_call(x->c, PROV_SWAS, "ListCustomImages", x->region, &x->params,
                              list_page_done, x);
    if (rc < 0)
        list_reject(x, rc, "could not request the next page");
}

/* Adds the filter's parameters and keeps copies of the ids and names asked for. */
static int list_add_filter(list_ctx *x, const prov_list_filter *f)
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
    list_ctx *x = calloc(1, sizeof(*x));
    if (x == NULL)
        return -ENOMEM;
    x->c = c;
    x->cb = cb;
    x->ud = ud;
    x->ps.page = 1;
    x->ps.size = PAGE_SIZE;
    x->region = strdup(region);
    int rc = x->region ? 0 : -ENOMEM;
    if (rc == 0 && f != NULL)
        rc = list_add_filter(x, f);
    if (rc == 0)
        rc = set_page(&x->params, 1, PAGE_SIZE);
    if (rc == 0)
        rc = prov_client_call(c, PROV_SWAS, "ListCustomImages", region, &x->params, list_page_done,
                              x);
    if (rc < 0)
        list_ctx_free(x);
    return rc;
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
    char *text = json_dumps(body, JSON_COMPACT);
    int rc = text ? prov_parse_regions(text, strlen(text), &v, &n) : -ENOMEM;
    free(text);
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

typedef struct ecs_ctx {
    prov_client *c;
    char *region;
    prov_kvs params;
    page_state ps;
    char **ids; /* the ImageId filter (copies) */
    size_t n_ids;
    prov_ecs_image_list acc;
    prov_ecs_list_cb cb;
    void *ud;
} ecs_ctx;

static void ecs_ctx_free(ecs_ctx *x)
{
    prov_kvs_clear(&x->params);
    free_strv(x->ids, x->n_ids);
    free(x->region);
    free(x);
}

static void ecs_finish(ecs_ctx *x, const prov_error *err)
{
    if (err != NULL) {
        prov_ecs_image_list_clear(&x->acc);
        x->cb(NULL, err, x->ud);
    } else {
        x->cb(&x->acc, NULL, x->ud);
        prov_ecs_image_list_clear(&x->acc);
    }
    ecs_ctx_free(x);
}

static void ecs_reject(ecs_ctx *x, int rc, const char *msg)
{
    char buf[640];
    snprintf(buf, sizeof(buf), "DescribeImages in %s rejected: %s", x->region, msg);
    prov_error e;
    local_error(&e, rc, "DescribeImages", buf);
    ecs_finish(x, &e);
    prov_error_clear(&e);
}

/* The answer's RegionId, and each image's when it carries one, must be the region asked. */
static int ecs_check_regions(const ecs_ctx *x, json_t *body, char *msg, size_t cap)
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

/* The complete listing's checks: only the ids asked (when filtered), none twice. */
static int ecs_check_items(const ecs_ctx *x, char *msg, size_t cap)
{
    const prov_ecs_image_list *l = &x->acc;
    for (size_t i = 0; x->n_ids > 0 && i < l->n; i++)
        if (!in_set(l->v[i].image_id, (const char *const *)x->ids, x->n_ids)) {
            snprintf(msg, cap, "image %s was not among the ImageId asked", l->v[i].image_id);
            return -EPROTO;
        }
    const char **ids = l->n ? malloc(l->n * sizeof(*ids)) : NULL;
    if (l->n > 0 && ids == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < l->n; i++)
        ids[i] = l->v[i].image_id;
    int rc = check_unique(ids, l->n, msg, cap);
    free(ids);
    return rc;
}

static void ecs_page_done(json_t *body, const prov_error *err, void *ud)
{
    ecs_ctx *x = ud;
    char msg[512];
    if (err != NULL) {
        ecs_finish(x, err);
        return;
    }
    int rc = page_check_counters(&x->ps, body, msg, sizeof(msg));
    if (rc == 0)
        rc = ecs_check_regions(x, body, msg, sizeof(msg));
    if (rc < 0) {
        ecs_reject(x, rc, msg);
        return;
    }
    size_t before = x->acc.n;
    char *text = json_dumps(body, JSON_COMPACT);
    rc = text ? prov_parse_ecs_images(text, strlen(text), &x->acc, NULL) : -ENOMEM;
    free(text);
    if (rc < 0) {
        ecs_reject(x, rc, "malformed DescribeImages answer");
        return;
    }
    rc = page_after_items(&x->ps, x->acc.n - before, x->acc.n, msg, sizeof(msg));
    if (rc == 1) {
        rc = ecs_check_items(x, msg, sizeof(msg));
        if (rc < 0)
            ecs_reject(x, rc, rc == -ENOMEM ? "out of memory" : msg);
        else
            ecs_finish(x, NULL);
        return;
    }
    if (rc < 0) {
        ecs_reject(x, rc, msg);
        return;
    }
    x->ps.page++;
    rc = set_page(&x->params, x->ps.page, x->ps.size);
    if (rc == 0)
        rc = prov_client_call(x->c, PROV_ECS, "DescribeImages", x->region, &x->params,
                              ecs_page_done, x);
    if (rc < 0)
        ecs_reject(x, rc, "could not request the next page");
}

int prov_ecs_describe_images(prov_client *c, const char *region, const char *const *image_ids,
                             size_t n_image_ids, prov_ecs_list_cb cb, void *ud)
{
    if (c == NULL || region == NULL || cb == NULL)
        return -EINVAL;
    ecs_ctx *x = calloc(1, sizeof(*x));
    if (x == NULL)
        return -ENOMEM;
    x->c = c;
    x->cb = cb;
    x->ud = ud;
    x->ps.page = 1;
    x->ps.size = PAGE_SIZE;
    x->region = strdup(region);
    int rc = x->region ? 0 : -ENOMEM;
    if (rc == 0)
        rc = prov_kvs_set(&x->params, "ImageOwnerAlias", "self");
    if (rc == 0)
        rc = prov_kvs_set(&x->params, "Status", ECS_ALL_STATUSES);
    if (rc == 0 && n_image_ids > 0) {
        char *ids = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&ids, &len);
        if (m == NULL)
            rc = -ENOMEM;
        for (size_t i = 0; m != NULL && i < n_image_ids; i++)
            fprintf(m, "%s%s", i ? "," : "", image_ids[i]);
        if (m != NULL && fclose(m) != 0)
            rc = -ENOMEM;
        if (rc == 0)
            rc = prov_kvs_set(&x->params, "ImageId", ids);
        free(ids);
    }
    if (rc == 0 && (rc = copy_strv(image_ids, n_image_ids, &x->ids)) == 0)
        x->n_ids = n_image_ids;
    if (rc == 0)
        rc = set_page(&x->params, 1, PAGE_SIZE);
    if (rc == 0)
        rc = prov_client_call(c, PROV_ECS, "DescribeImages", region, &x->params, ecs_page_done, x);
    if (rc < 0)
        ecs_ctx_free(x);
    return rc;
}
