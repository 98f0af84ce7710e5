/* Typed operations (prov_client.h) over prov_client_call: the raw call for `imgrecon api`,
 * ListCustomImages over every page at PageSize=100, CreateCustomImage, ModifyImageShareStatus,
 * DeleteCustomImage, the tag operations (TagResources, UntagResources, ListTagResources by
 * NextToken), the account shares (Add/RemoveCustomImageShareAccount, ListCustomImageShareAccounts),
 * ECS DescribeImages (self, every status, every page) and ECS DeleteImage.
 * Each keeps a small context alive across pages and frees it after the user's callback. */
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

static int set_page(prov_kvs *p, unsigned page)
{
    char buf[16];
    snprintf(buf, sizeof(buf), "%u", page);
    int rc = prov_kvs_set(p, "PageNumber", buf);
    if (rc == 0)
        rc = prov_kvs_set(p, "PageSize", "100");
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

/* ---- ListCustomImages, every page ----
 * Paging stops at a short or empty page, once TotalCount images are in, or at MAX_PAGES. An
 * absent TotalCount (parsed as 0) says nothing: a full page then asks for the next one. */

typedef struct list_ctx {
    prov_client *c;
    char *region;
    prov_kvs params;
    unsigned page;
    prov_image_list acc;
    prov_list_cb cb;
    void *ud;
} list_ctx;

static void list_finish(list_ctx *x, const prov_error *err)
{
    if (err != NULL) {
        prov_image_list_free(&x->acc);
        x->cb(NULL, err, x->ud);
    } else {
        x->cb(&x->acc, NULL, x->ud);
        prov_image_list_free(&x->acc);
    }
    prov_kvs_free(&x->params);
    free(x->region);
    free(x);
}

static void list_page_done(json_t *body, const prov_error *err, void *ud)
{
    list_ctx *x = ud;
    if (err != NULL) {
        list_finish(x, err);
        return;
    }
    size_t before = x->acc.n;
    unsigned total = 0;
    char *text = json_dumps(body, JSON_COMPACT);
    int rc = text ? prov_parse_list_images(text, strlen(text), &x->acc, &total) : -ENOMEM;
    free(text);
    if (rc < 0) {
        prov_error e;
        local_error(&e, rc, "ListCustomImages", "malformed ListCustomImages answer");
        list_finish(x, &e);
        prov_error_clear(&e);
        return;
    }
    size_t got = x->acc.n - before;
    if (got == 0 || got < PAGE_SIZE || (total > 0 && x->acc.n >= total) || x->page >= MAX_PAGES) {
        list_finish(x, NULL);
        return;
    }
    x->page++;
    rc = set_page(&x->params, x->page);
    if (rc == 0)
        rc = prov_client_call(x->c, PROV_SWAS, "ListCustomImages", x->region, &x->params,
                              list_page_done, x);
    if (rc < 0) {
        prov_error e;
        local_error(&e, rc, "ListCustomImages", "could not request the next page");
        list_finish(x, &e);
        prov_error_clear(&e);
    }
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
    x->page = 1;
    x->region = strdup(region);
    int rc = x->region ? 0 : -ENOMEM;
    if (rc == 0 && f != NULL) {
        if (rc == 0 && f->n_image_ids > 0)
            rc = add_json_array(&x->params, "ImageIds", f->image_ids, f->n_image_ids);
        if (rc == 0 && f->n_image_names > 0)
            rc = add_json_array(&x->params, "ImageNames", f->image_names, f->n_image_names);
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
    }
    if (rc == 0)
        rc = set_page(&x->params, 1);
    if (rc == 0)
        rc = prov_client_call(c, PROV_SWAS, "ListCustomImages", region, &x->params, list_page_done,
                              x);
    if (rc < 0) {
        prov_kvs_free(&x->params);
        free(x->region);
        free(x);
    }
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
    prov_kvs_free(&p);
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
    prov_kvs_free(&p);
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
    prov_kvs_free(&p);
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
    prov_kvs_free(&p);
    return rc;
}

/* ---- ECS DescribeImages, every page ---- */

typedef struct ecs_ctx {
    prov_client *c;
    char *region;
    prov_kvs params;
    unsigned page;
    prov_ecs_image_list acc;
    prov_ecs_list_cb cb;
    void *ud;
} ecs_ctx;

static void ecs_finish(ecs_ctx *x, const prov_error *err)
{
    if (err != NULL) {
        prov_ecs_image_list_free(&x->acc);
        x->cb(NULL, err, x->ud);
    } else {
        x->cb(&x->acc, NULL, x->ud);
        prov_ecs_image_list_free(&x->acc);
    }
    prov_kvs_free(&x->params);
    free(x->region);
    free(x);
}

static void ecs_page_done(json_t *body, const prov_error *err, void *ud)
{
    ecs_ctx *x = ud;
    if (err != NULL) {
        ecs_finish(x, err);
        return;
    }
    size_t before = x->acc.n;
    unsigned total = 0;
    char *text = json_dumps(body, JSON_COMPACT);
    int rc = text ? prov_parse_ecs_images(text, strlen(text), &x->acc, &total) : -ENOMEM;
    free(text);
    if (rc < 0) {
        prov_error e;
        local_error(&e, rc, "DescribeImages", "malformed DescribeImages answer");
        ecs_finish(x, &e);
        prov_error_clear(&e);
        return;
    }
    size_t got = x->acc.n - before;
    if (got == 0 || got < PAGE_SIZE || (total > 0 && x->acc.n >= total) || x->page >= MAX_PAGES) {
        ecs_finish(x, NULL);
        return;
    }
    x->page++;
    rc = set_page(&x->params, x->page);
    if (rc == 0)
        rc = prov_client_call(x->c, PROV_ECS, "DescribeImages", x->region, &x->params,
                              ecs_page_done, x);
    if (rc < 0) {
        prov_error e;
        local_error(&e, rc, "DescribeImages", "could not request the next page");
        ecs_finish(x, &e);
        prov_error_clear(&e);
    }
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
    x->page = 1;
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
    if (rc == 0)
        rc = set_page(&x->params, 1);
    if (rc == 0)
        rc = prov_client_call(c, PROV_ECS, "DescribeImages", region, &x->params, ecs_page_done, x);
    if (rc < 0) {
        prov_kvs_free(&x->params);
        free(x->region);
        free(x);
    }
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
    prov_kvs_free(&p);
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
    prov_kvs_free(&p);
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
    prov_kvs_free(&p);
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
    prov_kvs_free(&x->params);
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
        prov_kvs_free(&x->params);
        free(x->region);
        free(x);
    }
    return rc;
}

/* ListCustomImageShareAccounts over every page at PageSize=50: stops at a short page or once
 * TotalCount accounts are in. */
#define SHARE_PAGE_SIZE 50

typedef struct accts_ctx {
    prov_client *c;
    char *region;
    prov_kvs params;
    unsigned page;
    prov_str_list acc;
    prov_accounts_cb cb;
    void *ud;
} accts_ctx;

static void accts_finish(accts_ctx *x, const prov_error *err)
{
    if (err != NULL) {
        prov_str_list_free(&x->acc);
        x->cb(NULL, err, x->ud);
    } else {
        x->cb(&x->acc, NULL, x->ud);
        prov_str_list_free(&x->acc);
    }
    prov_kvs_free(&x->params);
    free(x->region);
    free(x);
}

static int accts_set_page(prov_kvs *p, unsigned page)
{
    char buf[16];
    snprintf(buf, sizeof(buf), "%u", page);
    int rc = prov_kvs_set(p, "PageNumber", buf);
    if (rc == 0)
        rc = prov_kvs_set(p, "PageSize", "50");
    return rc;
}

static void accts_page_done(json_t *body, const prov_error *err, void *ud)
{
    accts_ctx *x = ud;
    if (err != NULL) {
        accts_finish(x, err);
        return;
    }
    size_t before = x->acc.n;
    unsigned total = 0;
    int rc = prov_parse_share_accounts(body, &x->acc, &total);
    if (rc < 0) {
        prov_error e;
        local_error(&e, rc, "ListCustomImageShareAccounts",
                    "malformed ListCustomImageShareAccounts answer");
        accts_finish(x, &e);
        prov_error_clear(&e);
        return;
    }
    size_t got = x->acc.n - before;
    if (got < SHARE_PAGE_SIZE || (total > 0 && x->acc.n >= total) || x->page >= MAX_PAGES) {
        accts_finish(x, NULL);
        return;
    }
    rc = accts_set_page(&x->params, ++x->page);
    if (rc == 0)
        rc = prov_client_call(x->c, PROV_SWAS, "ListCustomImageShareAccounts", x->region,
                              &x->params, accts_page_done, x);
    if (rc < 0) {
        prov_error e;
        local_error(&e, rc, "ListCustomImageShareAccounts", "could not request the next page");
        accts_finish(x, &e);
        prov_error_clear(&e);
    }
}

int prov_swas_list_share_accounts(prov_client *c, const char *region, const char *image_id,
                                  prov_accounts_cb cb, void *ud)
{
    if (c == NULL || region == NULL || image_id == NULL || cb == NULL)
        return -EINVAL;
    accts_ctx *x = calloc(1, sizeof(*x));
    if (x == NULL)
        return -ENOMEM;
    x->c = c;
    x->cb = cb;
    x->ud = ud;
    x->page = 1;
    x->region = strdup(region);
    int rc = x->region ? prov_kvs_set(&x->params, "ImageId", image_id) : -ENOMEM;
    if (rc == 0)
        rc = accts_set_page(&x->params, 1);
    if (rc == 0)
        rc = prov_client_call(c, PROV_SWAS, "ListCustomImageShareAccounts", region, &x->params,
                              accts_page_done, x);
    if (rc < 0) {
        prov_kvs_free(&x->params);
        free(x->region);
        free(x);
    }
    return rc;
}
