/* The emulator's world: data, lookups, dispatch, ClientToken records and the state JSON.
 * The operations themselves live in emu_swas.c and emu_ecs.c (see emu_world.h). */
#include "emu_world.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "emu_ops.h"
#include "emu_util.h"
#include "emu_sig.h"

void emu_result_clear(emu_result *r)
{
    if (!r) {
        return;
    }
    free(r->message);
    json_decref(r->body);
    free(r->image_id);
    memset(r, 0, sizeof(*r));
}

int emu_result_error(emu_result *r, int http_status, const char *code, const char *fmt, ...)
{
    char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return -ENOMEM;
    }
    emu_result_clear(r);
    r->http_status = http_status;
    r->code = code;
    r->message = msg;
    return 0;
}

int emu_world_new(emu_world **ret)
{
    emu_world *w = calloc(1, sizeof(*w));
    if (!w) {
        return -ENOMEM;
    }
    w->rng = 1;
    w->create_delay_ms = 1000;
    *ret = w;
    return 0;
}

void emu_world_seed(emu_world *w, uint64_t seed)
{
    w->rng = seed;
}

void emu_image_free_fields(emu_image *img)
{
    free(img->image_id);
    free(img->name);
    free(img->instance_id);
    free(img->system_snapshot_id);
    free(img->data_snapshot_id);
    free(img->description);
    free(img->resource_group_id);
    for (size_t i = 0; i < img->n_tags; i++) {
        free(img->tags[i].key);
        free(img->tags[i].value);
    }
    free(img->tags);
    for (size_t i = 0; i < img->n_shares; i++) {
        free(img->shares[i].user_id);
    }
    free(img->shares);
    memset(img, 0, sizeof(*img));
}

static void region_free_fields(emu_region *r)
{
    free(r->region);
    for (size_t i = 0; i < r->n_servers; i++) {
        emu_server *s = &r->servers[i];
        free(s->instance_id);
        free(s->name);
        free(s->status);
        emu_strv_free(s->system_snapshots, s->n_system_snapshots);
        emu_strv_free(s->data_snapshots, s->n_data_snapshots);
    }
    free(r->servers);
    for (size_t i = 0; i < r->n_images; i++) {
        emu_image_free_fields(&r->images[i]);
    }
    free(r->images);
    for (size_t i = 0; i < r->n_ecs; i++) {
        emu_ecs_image *e = &r->ecs[i];
        free(e->image_id);
        free(e->name);
        free(e->status);
        free(e->busy);
    }
    free(r->ecs);
}

static void token_free_fields(emu_token *t)
{
    free(t->action);
    free(t->token);
    free(t->fingerprint);
    free(t->image_id);
}

void emu_world_free(emu_world *w)
{
    if (!w) {
        return;
    }
    for (size_t i = 0; i < w->n_accounts; i++) {
        free(w->accounts[i].access_key_id);
        free(w->accounts[i].access_key_secret);
        free(w->accounts[i].user_id);
    }
    free(w->accounts);
    for (size_t i = 0; i < w->n_regions; i++) {
        region_free_fields(&w->regions[i]);
    }
    free(w->regions);
    for (size_t i = 0; i < w->n_tokens; i++) {
        token_free_fields(&w->tokens[i]);
    }
    free(w->tokens);
    free(w);
}

const emu_account *emu_world_account(const emu_world *w, const char *access_key_id)
{
    for (size_t i = 0; access_key_id && i < w->n_accounts; i++) {
        if (strcmp(w->accounts[i].access_key_id, access_key_id) == 0) {
            return &w->accounts[i];
        }
    }
    return NULL;
}

emu_region *emu_world_region(emu_world *w, const char *region)
{
    for (size_t i = 0; region && i < w->n_regions; i++) {
        if (strcmp(w->regions[i].region, region) == 0) {
            return &w->regions[i];
        }
    }
    return NULL;
}

emu_region *emu_world_region_get(emu_world *w, const char *region)
{
    emu_region *r = emu_world_region(w, region);
    if (r) {
        return r;
    }
    emu_region *nv = realloc(w->regions, (w->n_regions + 1) * sizeof(*nv));
    if (!nv) {
        return NULL;
    }
    w->regions = nv;
    r = &nv[w->n_regions];
    memset(r, 0, sizeof(*r));
    r->region = strdup(region);
    if (!r->region) {
        return NULL;
    }
    w->n_regions++;
    return r;
}

emu_image *emu_region_image(emu_region *r, const char *image_id)
{
    for (size_t i = 0; r && image_id && i < r->n_images; i++) {
        if (strcmp(r->images[i].image_id, image_id) == 0) {
            return &r->images[i];
        }
    }
    return NULL;
}

emu_server *emu_region_server(emu_region *r, const char *instance_id)
{
    for (size_t i = 0; r && instance_id && i < r->n_servers; i++) {
        if (strcmp(r->servers[i].instance_id, instance_id) == 0) {
            return &r->servers[i];
        }
    }
    return NULL;
}

int emu_region_add_image(emu_region *r, emu_image *img)
{
    emu_image *nv = realloc(r->images, (r->n_images + 1) * sizeof(*nv));
    if (!nv) {
        return -ENOMEM;
    }
    r->images = nv;
    nv[r->n_images++] = *img;
    memset(img, 0, sizeof(*img));
    return 0;
}

void emu_region_remove_image(emu_region *r, size_t index)
{
    emu_image_free_fields(&r->images[index]);
    memmove(&r->images[index], &r->images[index + 1],
            (r->n_images - index - 1) * sizeof(r->images[0]));
    r->n_images--;
}

size_t emu_region_quota(const emu_region *r)
{
    size_t q = 3 * r->n_servers;
    return q > 15 ? 15 : q;
}

void emu_format_time(int64_t ms, char out[21])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    (void)gmtime_r(&t, &tm);
    (void)strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void emu_world_tick(emu_world *w, int64_t now_ms)
{
    for (size_t i = 0; i < w->n_regions; i++) {
        emu_region *r = &w->regions[i];
        for (size_t j = 0; j < r->n_images; j++) {
            emu_image *img = &r->images[j];
            if (img->ready_ms != 0 && img->ready_ms <= now_ms) {
                memcpy(img->status, "1", 2);
                img->ready_ms = 0;
            }
        }
    }
}

const char *emu_required(const emu_kvs *p, const char *key, emu_result *r, int *rc)
{
    const char *v = emu_kvs_get(p, key);
    if (v && *v) {
        return v;
    }
    *rc = emu_result_error(r, 400, "MissingParameter",
                           "The input parameter \"%s\" that is mandatory for processing this "
                           "request is not supplied.",
                           key);
    return NULL;
}

int emu_json_set_str(json_t *obj, const char *key, const char *value)
{
    return json_object_set_new(obj, key, json_string(value ? value : "")) == 0 ? 0 : -ENOMEM;
}

/* The canonical query of the operation's own parameters (no common or signing ones): two calls
 * with the same token must carry the same fingerprint to count as the same request. */
static int fingerprint(const emu_kvs *p, char **ret)
{
    emu_kvs own = {0};
    int rc = 0;
    for (size_t i = 0; i < p->n && rc == 0; i++) {
        if (!emu_is_common_param(p->v[i].key)) {
            rc = emu_kvs_add(&own, p->v[i].key, p->v[i].value);
        }
    }
    if (rc == 0) {
        rc = emu_canonical_query(&own, NULL, ret);
    }
    emu_kvs_clear(&own);
    return rc;
}

int emu_token_check(emu_world *w, const char *action, const emu_kvs *p, int64_t now,
                    const emu_token **ret_prev, emu_result *r)
{
    *ret_prev = NULL;
    const char *token = emu_kvs_get(p, "ClientToken");
    if (!token || !*token) {
        return 0;
    }
    /* Forget records older than a day. */
    size_t k = 0;
    for (size_t i = 0; i < w->n_tokens; i++) {
        if (now - w->tokens[i].at_ms > EMU_TOKEN_TTL_MS) {
            token_free_fields(&w->tokens[i]);
        } else {
            w->tokens[k++] = w->tokens[i];
        }
    }
    w->n_tokens = k;
    for (size_t i = 0; i < w->n_tokens; i++) {
        emu_token *t = &w->tokens[i];
        if (strcmp(t->action, action) != 0 || strcmp(t->token, token) != 0) {
            continue;
        }
        char *fp = NULL;
        int rc = fingerprint(p, &fp);
        if (rc < 0) {
            return rc;
        }
        bool same = strcmp(fp, t->fingerprint) == 0;
        free(fp);
        if (same) {
            *ret_prev = t;
            return 0;
        }
        rc = emu_result_error(r, 400, "IdempotentParameterMismatch",
                              "The request uses the same client token as a previous, but "
                              "non-identical request.");
        return rc < 0 ? rc : -EEXIST;
    }
    return 0;
}

int emu_token_record(emu_world *w, const char *action, const emu_kvs *p, const char *image_id,
                     int64_t now)
{
    const char *token = emu_kvs_get(p, "ClientToken");
    if (!token || !*token) {
        return 0;
    }
    emu_token *nv = realloc(w->tokens, (w->n_tokens + 1) * sizeof(*nv));
    if (!nv) {
        return -ENOMEM;
    }
    w->tokens = nv;
    emu_token t = {.at_ms = now};
    t.action = strdup(action);
    t.token = strdup(token);
    t.image_id = emu_strdup(image_id);
    int rc = fingerprint(p, &t.fingerprint);
    if (rc < 0 || !t.action || !t.token || (image_id && !t.image_id)) {
        token_free_fields(&t);
        return -ENOMEM;
    }
    nv[w->n_tokens++] = t;
    return 0;
}

typedef int (*emu_op_fn)(emu_world *w, const emu_kvs *p, int64_t now, emu_result *r);

static const struct {
    enum emu_product product;
    const char *action;
    emu_op_fn fn;
} ops[] = {
    {EMU_SWAS, "ListCustomImages", emu_swas_list},
    {EMU_SWAS, "CreateCustomImage", emu_swas_create},
    {EMU_SWAS, "ModifyImageShareStatus", emu_swas_share},
    {EMU_SWAS, "DeleteCustomImage", emu_swas_delete},
    {EMU_SWAS, "DeleteCustomImages", emu_swas_delete_batch},
    {EMU_SWAS, "TagResources", emu_swas_tag},
    {EMU_SWAS, "UntagResources", emu_swas_untag},
    {EMU_SWAS, "ListTagResources", emu_swas_list_tags},
    {EMU_SWAS, "ListRegions", emu_swas_regions},
    {EMU_SWAS, "AddCustomImageShareAccount", emu_swas_share_add},
    {EMU_SWAS, "RemoveCustomImageShareAccount", emu_swas_share_remove},
    {EMU_SWAS, "ListCustomImageShareAccounts", emu_swas_share_list},
    {EMU_ECS, "DescribeImages", emu_ecs_describe},
    {EMU_ECS, "DeleteImage", emu_ecs_delete},
};

bool emu_world_has_action(enum emu_product product, const char *action)
{
    for (size_t i = 0; action && i < sizeof(ops) / sizeof(ops[0]); i++) {
        if (ops[i].product == product && strcmp(ops[i].action, action) == 0) {
            return true;
        }
    }
    return false;
}

int emu_world_call(emu_world *w, enum emu_product product, const char *action,
                   const emu_kvs *params, int64_t now_ms, emu_result *ret)
{
    memset(ret, 0, sizeof(*ret));
    emu_world_tick(w, now_ms);
    for (size_t i = 0; action && i < sizeof(ops) / sizeof(ops[0]); i++) {
        if (ops[i].product == product && strcmp(ops[i].action, action) == 0) {
            int rc = ops[i].fn(w, params, now_ms, ret);
            if (rc < 0) {
                emu_result_clear(ret);
                return rc;
            }
            if (!ret->code && !ret->body) {
                ret->body = json_object();
                if (!ret->body) {
                    return -ENOMEM;
                }
            }
            if (!ret->code) {
                ret->http_status = 200;
            }
            return 0;
        }
    }
    return emu_result_error(ret, 404, "InvalidAction.NotFound",
                            "Specified api is not found, please check your url and method.");
}

/* One custom image in the fixture's shape. */
static json_t *image_state(const emu_image *img)
{
    json_t *o = json_object();
    json_t *tags = json_object();
    char ct[21];
    emu_format_time(img->created_ms, ct);
    if (!o || !tags) {
        json_decref(o);
        json_decref(tags);
        return NULL;
    }
    for (size_t i = 0; i < img->n_tags; i++) {
        (void)json_object_set_new(tags, img->tags[i].key, json_string(img->tags[i].value));
    }
    int bad = 0;
    bad |= emu_json_set_str(o, "image_id", img->image_id);
    bad |= emu_json_set_str(o, "name", img->name);
    bad |= emu_json_set_str(o, "instance_id", img->instance_id);
    bad |= emu_json_set_str(o, "system_snapshot_id", img->system_snapshot_id);
    if (img->data_snapshot_id) {
        bad |= emu_json_set_str(o, "data_snapshot_id", img->data_snapshot_id);
    }
    bad |= emu_json_set_str(o, "description", img->description);
    bad |= emu_json_set_str(o, "resource_group_id", img->resource_group_id);
    bad |= emu_json_set_str(o, "status", img->status);
    bad |= json_object_set_new(o, "in_share", json_boolean(img->in_share));
    bad |= json_object_set_new(o, "tags", tags);
    json_t *shares = json_array();
    for (size_t i = 0; shares && i < img->n_shares; i++) {
        bad |= json_array_append_new(shares, json_string(img->shares[i].user_id));
    }
    bad |= json_object_set_new(o, "share_accounts", shares ? shares : json_null());
    bad |= emu_json_set_str(o, "creation_time", ct);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *strv_json(char **v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) {
        if (json_array_append_new(a, json_string(v[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

json_t *emu_world_to_json(emu_world *w, int64_t now_ms)
{
    emu_world_tick(w, now_ms);
    json_t *root = json_object();
    json_t *accounts = json_array();
    json_t *regions = json_array();
    if (!root || !accounts || !regions) {
        goto fail;
    }
    (void)json_object_set_new(root, "accounts", accounts);
    (void)json_object_set_new(root, "regions", regions);
    for (size_t i = 0; i < w->n_accounts; i++) {
        /* The secret stays out: secrets never reach any output. */
        if (json_array_append_new(accounts, json_pack("{s:s,s:s}", "access_key_id",
                                                      w->accounts[i].access_key_id, "user_id",
                                                      w->accounts[i].user_id)) != 0) {
            goto fail2;
        }
    }
    for (size_t i = 0; i < w->n_regions; i++) {
        emu_region *r = &w->regions[i];
        json_t *servers = json_array(), *images = json_array(), *ecs = json_array();
        json_t *ro = json_pack("{s:s,s:o,s:o,s:o,s:I}", "region", r->region, "servers", servers,
                               "custom_images", images, "ecs_images", ecs, "quota",
                               (json_int_t)emu_region_quota(r));
        if (!ro || json_array_append_new(regions, ro) != 0) {
            goto fail2;
        }
        for (size_t j = 0; j < r->n_servers; j++) {
            emu_server *s = &r->servers[j];
            json_t *so =
                json_pack("{s:s,s:s,s:s,s:o,s:o}", "instance_id", s->instance_id, "name", s->name,
                          "status", s->status, "system_snapshots",
                          strv_json(s->system_snapshots, s->n_system_snapshots), "data_snapshots",
                          strv_json(s->data_snapshots, s->n_data_snapshots));
            if (!so || json_array_append_new(servers, so) != 0) {
                goto fail2;
            }
        }
        for (size_t j = 0; j < r->n_images; j++) {
            json_t *io = image_state(&r->images[j]);
            if (!io || json_array_append_new(images, io) != 0) {
                goto fail2;
            }
        }
        for (size_t j = 0; j < r->n_ecs; j++) {
            emu_ecs_image *e = &r->ecs[j];
            json_t *eo = json_pack("{s:s,s:s,s:s,s:I,s:b,s:b,s:s}", "image_id", e->image_id, "name",
                                   e->name, "status", e->status, "used_by_instances",
                                   (json_int_t)e->used_by_instances, "shared", e->shared, "public",
                                   e->is_public, "busy", e->busy);
            if (!eo || json_array_append_new(ecs, eo) != 0) {
                goto fail2;
            }
        }
    }
    return root;
fail:
    json_decref(accounts);
    json_decref(regions);
fail2:
    json_decref(root);
    return NULL;
}
