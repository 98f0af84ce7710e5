/* SWAS custom image operations of the emulator: ListCustomImages, CreateCustomImage,
 * ModifyImageShareStatus and DeleteCustomImage, with the codes and HTTP statuses of the vendor's
 * pages (seeds 000, 002, 003, 004). Called through emu_world_call() under the server's mutex. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu_ops.h"
#include "emu_util.h"
#include "emu_rules.h"

#define MAX_TAGS 20
#define MAX_LIST_ITEMS 100

/* Tag.N.Key / Tag.N.Value (N = 1..20) into an array ordered by N. Errors go to r (return 1);
 * allocation failure returns -ENOMEM; success 0. When check_rules is set the API's key and
 * value rules apply (CreateCustomImage); a filter only needs well-formed pairs. */
int emu_swas_parse_tags(const emu_kvs *p, bool check_rules, emu_tag **ret, size_t *ret_n,
                        emu_result *r)
{
    const char *keys[MAX_TAGS + 1] = {0};
    const char *values[MAX_TAGS + 1] = {0};
    int rc;
    for (size_t i = 0; i < p->n; i++) {
        const char *k = p->v[i].key;
        if (strncmp(k, "Tag.", 4) != 0) {
            continue;
        }
        char *end = NULL;
        long n = strtol(k + 4, &end, 10);
        bool is_key = end && strcmp(end, ".Key") == 0;
        bool is_value = end && strcmp(end, ".Value") == 0;
        if (end == k + 4 || (!is_key && !is_value)) {
            rc = emu_result_error(r, 400, "InvalidParameter",
                                  "The specified parameter \"%s\" is not valid.", k);
            return rc < 0 ? rc : 1;
        }
        if (n < 1 || n > MAX_TAGS) {
            rc = emu_result_error(r, 400, "InvalidParam.TagCount",
                                  "The number of tags must be between 1 and 20 (got Tag.%ld).", n);
            return rc < 0 ? rc : 1;
        }
        (is_key ? keys : values)[n] = p->v[i].value;
    }
    emu_tag *tags = calloc(MAX_TAGS, sizeof(*tags));
    size_t n_tags = 0;
    if (!tags) {
        return -ENOMEM;
    }
    rc = 0;
    for (int n = 1; n <= MAX_TAGS && rc == 0; n++) {
        if (!keys[n] && !values[n]) {
            continue;
        }
        const char *why = NULL;
        if (!keys[n] || !*keys[n]) {
            why = "must not be empty";
        } else if (check_rules) {
            why = emu_check_tag_key(keys[n]);
        }
        if (why) {
            rc = emu_result_error(r, 400, "InvalidParam.TagKey",
                                  "The specified parameter Tag.%d.Key is invalid: %s.", n, why);
            rc = rc < 0 ? rc : 1;
            break;
        }
        if (check_rules && values[n] && (why = emu_check_tag_value(values[n])) != NULL) {
            rc = emu_result_error(r, 400, "InvalidParam.TagValue",
                                  "The specified parameter Tag.%d.Value is invalid: %s.", n, why);
            rc = rc < 0 ? rc : 1;
            break;
        }
        for (size_t j = 0; j < n_tags; j++) {
            if (strcmp(tags[j].key, keys[n]) == 0) {
                rc = emu_result_error(r, 400, "InvalidParam.TagKey",
                                      "The specified parameter Tag.%d.Key is duplicated.", n);
                rc = rc < 0 ? rc : 1;
                break;
            }
        }
        if (rc != 0) {
            break;
        }
        /* A filter's Value may be absent (match any value); a created tag's absent value is "". */
        tags[n_tags].key = strdup(keys[n]);
        tags[n_tags].value = values[n] ? strdup(values[n]) : NULL;
        if (!tags[n_tags].key || (values[n] && !tags[n_tags].value)) {
            free(tags[n_tags].key);
            free(tags[n_tags].value);
            rc = -ENOMEM;
            break;
        }
        n_tags++;
    }
    if (rc != 0) {
        for (size_t j = 0; j < n_tags; j++) {
            free(tags[j].key);
            free(tags[j].value);
        }
        free(tags);
        return rc;
    }
    *ret = tags;
    *ret_n = n_tags;
    return 0;
}

void emu_tags_free(emu_tag *tags, size_t n)
{
    for (size_t i = 0; tags && i < n; i++) {
        free(tags[i].key);
        free(tags[i].value);
    }
    free(tags);
}

static bool strv_has(char **v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i], s) == 0) {
            return true;
        }
    }
    return false;
}

/* One ListCustomImages item with every documented field. */
static json_t *image_item(const emu_world *w, emu_region *reg, const emu_image *img)
{
    char ct[21];
    emu_format_time(img->created_ms, ct);
    emu_server *srv = emu_region_server(reg, img->instance_id);
    json_t *tags = json_array();
    for (size_t i = 0; tags && i < img->n_tags; i++) {
        if (json_array_append_new(tags, json_pack("{s:s,s:s}", "Key", img->tags[i].key, "Value",
                                                  img->tags[i].value ? img->tags[i].value : "")) !=
            0) {
            json_decref(tags);
            return NULL;
        }
    }
    long long user_id = w->n_accounts > 0 ? atoll(w->accounts[0].user_id) : 0;
    json_t *o = json_pack(
        "{s:s,s:s,s:s,s:s,s:b,s:b,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:s,s:s,s:s,s:I,s:I,"
        "s:[],s:o}",
        "ImageId", img->image_id, "Name", img->name, "Description", img->description, "Status",
        img->status, "InShare", img->in_share, "InShareUser", img->n_shares > 0, "InstanceId",
        img->instance_id ? img->instance_id : "", "InstanceName", srv ? srv->name : "", "RegionId",
        reg->region, "CreationTime", ct, "SystemSnapshotId",
        img->system_snapshot_id ? img->system_snapshot_id : "", "SystemSnapshotName",
        img->system_snapshot_id ? "system-disk-snapshot" : "", "DataSnapshotId",
        img->data_snapshot_id ? img->data_snapshot_id : "", "DataSnapshotName",
        img->data_snapshot_id ? "data-disk-snapshot" : "", "ResourceGroupId",
        img->resource_group_id, "UserId", (json_int_t)user_id, "OsType", "Linux", "SourceImageName",
        "Alibaba Cloud Linux", "SourceImageVersion", "3.21.04", "RequiredSystemDiskSize",
        (json_int_t)40, "RequiredDataDiskSize", (json_int_t)(img->data_snapshot_id ? 20 : 0),
        "CreateInstances", "Tags", tags);
    return o;
}

/* True when img carries every (key[, value]) of the filter. */
static bool tags_match(const emu_image *img, const emu_tag *want, size_t n_want)
{
    for (size_t i = 0; i < n_want; i++) {
        bool found = false;
        for (size_t j = 0; j < img->n_tags && !found; j++) {
            found = strcmp(img->tags[j].key, want[i].key) == 0 &&
                    (!want[i].value || strcmp(img->tags[j].value, want[i].value) == 0);
        }
        if (!found) {
            return false;
        }
    }
    return true;
}

static bool opt_eq(const char *filter, const char *value)
{
    return !filter || !*filter || (value && strcmp(filter, value) == 0);
}

/* Parses ImageIds / ImageNames; returns 0, 1 (error set on r) or -ENOMEM. */
static int list_param(const emu_kvs *p, const char *key, char ***v, size_t *n, emu_result *r)
{
    const char *s = emu_kvs_get(p, key);
    *v = NULL;
    *n = 0;
    if (!s || !*s) {
        return 0;
    }
    int rc = emu_parse_list(s, v, n);
    if (rc == -ENOMEM) {
        return rc;
    }
    if (rc < 0 || *n > MAX_LIST_ITEMS) {
        emu_strv_free(*v, *n);
        *v = NULL;
        *n = 0;
        rc = emu_result_error(r, 400, "InvalidParam.ImageIds",
                              "The specified parameter %s is invalid: a JSON array or a "
                              "comma-separated list of at most 100 items is expected.",
                              key);
        if (strcmp(key, "ImageNames") == 0 && rc == 0) {
            r->code = "InvalidParam.ImageNames";
        }
        return rc < 0 ? rc : 1;
    }
    return 0;
}

int emu_swas_list(emu_world *w, const emu_kvs *p, int64_t now, emu_result *r)
{
    int rc = 0;
    const char *region = emu_required(p, "RegionId", r, &rc);
    if (!region) {
        return rc;
    }
    long page_size = 10, page_number = 1;
    const char *s = emu_kvs_get(p, "PageSize");
    if (s && *s && emu_parse_long(s, 1, 100, &page_size) < 0) {
        return emu_result_error(r, 400, "InvalidParam.PageSize",
                                "The specified parameter PageSize is invalid: 1 to 100.");
    }
    s = emu_kvs_get(p, "PageNumber");
    if (s && *s && emu_parse_long(s, 1, 1000000, &page_number) < 0) {
        return emu_result_error(r, 400, "InvalidParam.PageNumber",
                                "The specified parameter PageNumber is invalid.");
    }
    bool share = false, has_share = false;
    s = emu_kvs_get(p, "Share");
    if (s && *s) {
        if (emu_parse_bool(s, &share) < 0) {
            return emu_result_error(r, 400, "InvalidParam.Share",
                                    "The specified parameter Share is invalid: true or false.");
        }
        has_share = true;
    }
    char **ids = NULL, **names = NULL;
    size_t n_ids = 0, n_names = 0;
    emu_tag *tags = NULL;
    size_t n_tags = 0;
    json_t *items = NULL;
    rc = list_param(p, "ImageIds", &ids, &n_ids, r);
    if (rc == 0) {
        rc = list_param(p, "ImageNames", &names, &n_names, r);
    }
    if (rc == 0) {
        rc = emu_swas_parse_tags(p, false, &tags, &n_tags, r);
    }
    if (rc != 0) {
        goto out;
    }
    const char *instance = emu_kvs_get(p, "InstanceId");
    const char *sys = emu_kvs_get(p, "SystemSnapshotId");
    const char *data = emu_kvs_get(p, "DataSnapshotId");
    const char *rg = emu_kvs_get(p, "ResourceGroupId");
    emu_region *reg = emu_world_region(w, region);
    items = json_array();
    if (!items) {
        rc = -ENOMEM;
        goto out;
    }
    size_t total = 0;
    size_t first = (size_t)(page_number - 1) * (size_t)page_size;
    for (size_t i = 0; reg && i < reg->n_images; i++) {
        const emu_image *img = &reg->images[i];
        /* Eventual consistency after a create; the fixture's images existed before. */
        if (img->lagged && w->list_lag_ms > 0 && now - img->created_ms < w->list_lag_ms) {
            continue;
        }
        if ((n_ids && !strv_has(ids, n_ids, img->image_id)) ||
            (n_names && !strv_has(names, n_names, img->name)) ||
            !opt_eq(instance, img->instance_id) || !opt_eq(sys, img->system_snapshot_id) ||
            !opt_eq(data, img->data_snapshot_id) || !opt_eq(rg, img->resource_group_id) ||
            (has_share && img->in_share != share) || !tags_match(img, tags, n_tags)) {
            continue;
        }
        if (total >= first && total < first + (size_t)page_size) {
            json_t *it = image_item(w, reg, img);
            if (!it || json_array_append_new(items, it) != 0) {
                rc = -ENOMEM;
                goto out;
            }
        }
        total++;
    }
    char tc[24], ps[24], pn[24];
    (void)snprintf(tc, sizeof(tc), "%zu", total);
    (void)snprintf(ps, sizeof(ps), "%ld", page_size);
    (void)snprintf(pn, sizeof(pn), "%ld", page_number);
    r->body = json_pack("{s:s,s:s,s:s,s:O}", "TotalCount", tc, "PageSize", ps, "PageNumber", pn,
                        "CustomImages", items);
    if (!r->body) {
        rc = -ENOMEM;
    }
out:
    json_decref(items);
    emu_strv_free(ids, n_ids);
    emu_strv_free(names, n_names);
    emu_tags_free(tags, n_tags);
    return rc < 0 ? rc : 0;
}

/* "m-" and 20 lowercase letters and digits from the seeded PRNG. */
static void new_image_id(emu_world *w, char out[23])
{
    static const char alnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    out[0] = 'm';
    out[1] = '-';
    for (int i = 0; i < 20; i++) {
        out[2 + i] = alnum[emu_rand_next(&w->rng) % 36];
    }
    out[22] = '\0';
}

/* ClientToken: at most 64 printable ASCII characters (the pages' rule). */
static bool token_ok(const char *t)
{
    if (!t) {
        return true;
    }
    size_t n = strlen(t);
    if (n > 64) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)t[i] < 0x20 || (unsigned char)t[i] > 0x7e) {
            return false;
        }
    }
    return true;
}

int emu_swas_check_token(const emu_kvs *p, emu_result *r)
{
    if (token_ok(emu_kvs_get(p, "ClientToken"))) {
        return 0;
    }
    int rc = emu_result_error(r, 400, "InvalidParam.ClientToken",
                              "The specified parameter ClientToken is invalid: at most 64 "
                              "ASCII characters.");
    return rc < 0 ? rc : 1;
}

int emu_swas_create(emu_world *w, const emu_kvs *p, int64_t now, emu_result *r)
{
    int rc = 0;
    const char *region = emu_required(p, "RegionId", r, &rc);
    const char *name = region ? emu_required(p, "ImageName", r, &rc) : NULL;
    const char *why = name ? emu_check_image_name(name) : NULL;
    if (why) {
        return emu_result_error(r, 400, "InvalidParam.IllegalImageName",
                                "The specified parameter imageName is illegal: %s.", why);
    }
    const char *instance_id = name ? emu_required(p, "InstanceId", r, &rc) : NULL;
    if (!instance_id) {
        return rc;
    }
    if ((rc = emu_swas_check_token(p, r)) != 0) {
        return rc < 0 ? rc : 0;
    }
    emu_tag *tags = NULL;
    size_t n_tags = 0;
    rc = emu_swas_parse_tags(p, true, &tags, &n_tags, r);
    if (rc != 0) {
        return rc < 0 ? rc : 0;
    }
    const emu_token *prev = NULL;
    rc = emu_token_check(w, "CreateCustomImage", p, now, &prev, r);
    if (rc != 0 || prev != NULL) {
        emu_tags_free(tags, n_tags);
        if (rc == 0) {
            /* A replayed token answers, and is journaled, with the first call's image. */
            r->body = json_pack("{s:s}", "ImageId", prev->image_id);
            r->image_id = strdup(prev->image_id);
            return r->body && r->image_id ? 0 : -ENOMEM;
        }
        return rc == -EEXIST ? 0 : rc;
    }
    emu_region *reg = emu_world_region_get(w, region);
    emu_server *srv = reg ? emu_region_server(reg, instance_id) : NULL;
    const char *sys = emu_kvs_get(p, "SystemSnapshotId");
    const char *data = emu_kvs_get(p, "DataSnapshotId");
    if (!reg) {
        rc = -ENOMEM;
    } else if (!srv) {
        rc = emu_result_error(r, 404, "InvalidInstanceId.NotFound",
                              "The specified InstanceId does not exist.");
    } else if (strcmp(srv->status, "Running") != 0 && strcmp(srv->status, "Stopped") != 0) {
        rc = emu_result_error(r, 403, "IncorrectInstanceStatus",
                              "The state of the current instance does not support this "
                              "operation.");
    } else if (sys && *sys && strv_has(srv->data_snapshots, srv->n_data_snapshots, sys)) {
        rc = emu_result_error(r, 400, "InvalidParam.SystemSnapshotIdNotSupport",
                              "You cannot create custom images in the specified parameter "
                              "system snapshotId.");
    } else if ((sys && *sys && !strv_has(srv->system_snapshots, srv->n_system_snapshots, sys)) ||
               ((!sys || !*sys) && srv->n_system_snapshots == 0)) {
        rc = emu_result_error(r, 400, "InvalidParam.SystemSnapshotIdNotFound",
                              "The specified parameter systemSnapshotId is not found.");
    } else if (data && *data && !strv_has(srv->data_snapshots, srv->n_data_snapshots, data)) {
        rc = emu_result_error(r, 400, "InvalidParam.DataSnapshotIdNotFound",
                              "The specified parameter dataSnapshotId is not found.");
    } else {
        for (size_t i = 0; i < reg->n_images && !r->code; i++) {
            if (strcmp(reg->images[i].name, name) == 0) {
                rc = emu_result_error(r, 400, "ImageNameAlreadyExist",
                                      "The image name already exists.");
            }
        }
        if (!r->code && rc == 0 && reg->n_images >= emu_region_quota(reg)) {
            rc = emu_result_error(r, 400, "CustomImageQuotaLimit",
                                  "The maximum number of custom image in this region is "
                                  "exceeded.");
        }
    }
    if (rc < 0 || r->code) {
        emu_tags_free(tags, n_tags);
        return rc;
    }
    char id[23];
    do {
        new_image_id(w, id);
    } while (emu_region_image(reg, id));
    /* Without SystemSnapshotId (optional in the docs) the server's newest system snapshot is
     * the base. */
    emu_image img = {0};
    img.image_id = strdup(id);
    img.name = strdup(name);
    img.instance_id = strdup(instance_id);
    img.system_snapshot_id =
        strdup(sys && *sys ? sys : srv->system_snapshots[srv->n_system_snapshots - 1]);
    img.data_snapshot_id = data && *data ? strdup(data) : NULL;
    const char *desc = emu_kvs_get(p, "Description");
    img.description = strdup(desc ? desc : "");
    const char *rg = emu_kvs_get(p, "ResourceGroupId");
    img.resource_group_id = strdup(rg && *rg ? rg : EMU_DEFAULT_RG);
    img.tags = tags;
    img.n_tags = n_tags;
    for (size_t i = 0; i < n_tags; i++) {
        if (!tags[i].value && !(tags[i].value = strdup(""))) {
            rc = -ENOMEM;
        }
    }
    img.created_ms = now;
    img.lagged = true;
    if (w->create_delay_ms > 0) {
        memcpy(img.status, "4", 2);
        img.ready_ms = now + w->create_delay_ms;
    } else {
        memcpy(img.status, "1", 2);
    }
    if (rc < 0 || !img.image_id || !img.name || !img.instance_id || !img.system_snapshot_id ||
        (data && *data && !img.data_snapshot_id) || !img.description || !img.resource_group_id) {
        emu_image_free_fields(&img);
        return -ENOMEM;
    }
    r->body = json_pack("{s:s}", "ImageId", id);
    r->image_id = strdup(id);
    if (!r->body || !r->image_id || emu_region_add_image(reg, &img) < 0) {
        emu_image_free_fields(&img);
        return -ENOMEM;
    }
    return emu_token_record(w, "CreateCustomImage", p, id, now);
}

/* The image named by RegionId + ImageId, or NULL with InvalidImageId.NotFound (or
 * MissingParameter) set on r. */
static emu_image *find_image(emu_world *w, const emu_kvs *p, emu_region **ret_reg,
                             size_t *ret_index, emu_result *r, int *rc)
{
    const char *region = emu_required(p, "RegionId", r, rc);
    const char *image_id = region ? emu_required(p, "ImageId", r, rc) : NULL;
    if (!image_id) {
        return NULL;
    }
    emu_region *reg = emu_world_region(w, region);
    for (size_t i = 0; reg && i < reg->n_images; i++) {
        if (strcmp(reg->images[i].image_id, image_id) == 0) {
            *ret_reg = reg;
            *ret_index = i;
            return &reg->images[i];
        }
    }
    *rc = emu_result_error(r, 404, "InvalidImageId.NotFound",
                           "The specified ImageId does not exist.");
    return NULL;
}

int emu_swas_share(emu_world *w, const emu_kvs *p, int64_t now, emu_result *r)
{
    int rc = 0;
    if (!emu_required(p, "RegionId", r, &rc) || !emu_required(p, "ImageId", r, &rc)) {
        return rc;
    }
    const char *op = emu_required(p, "Operation", r, &rc);
    if (!op) {
        return rc;
    }
    if (strcmp(op, "Share") != 0 && strcmp(op, "UnShare") != 0) {
        return emu_result_error(r, 400, "InvalidParam.OperationIllegal",
                                "The specified parameter operation is illegal.");
    }
    if ((rc = emu_swas_check_token(p, r)) != 0) {
        return rc < 0 ? rc : 0;
    }
    const emu_token *prev = NULL;
    rc = emu_token_check(w, "ModifyImageShareStatus", p, now, &prev, r);
    if (rc != 0 || prev != NULL) {
        return rc == -EEXIST ? 0 : rc; /* a mismatch is answered on r; a replay acts nothing */
    }
    emu_region *reg = NULL;
    size_t idx = 0;
    emu_image *img = find_image(w, p, &reg, &idx, r, &rc);
    if (!img) {
        return rc;
    }
    bool want = strcmp(op, "Share") == 0;
    if (want && !img->in_share && strcmp(img->status, "1") != 0) {
        return emu_result_error(r, 403, "IncorrectImageStatus",
                                "The current status of the image does not support this "
                                "operation.");
    }
    img->in_share = want;
    return emu_token_record(w, "ModifyImageShareStatus", p, NULL, now);
}

int emu_swas_deletable(const emu_image *img, emu_result *r)
{
    int rc = 0;
    /* The pages say a shared image must be unshared first; an image shared to accounts counts
     * as shared too (README.md "Account shares"). */
    if (img->in_share || img->n_shares > 0) {
        rc = emu_result_error(r, 400, "CustomImageInShare",
                              "The custom image is being shared. Please disable sharing first "
                              "and then delete it.");
    } else if (strcmp(img->status, "4") == 0 || strcmp(img->status, "0") == 0) {
        rc = emu_result_error(r, 403, "IncorrectImageStatus",
                              "The current status of the image does not support this "
                              "operation.");
    } else {
        return 0;
    }
    return rc < 0 ? rc : 1;
}

int emu_swas_delete(emu_world *w, const emu_kvs *p, int64_t now, emu_result *r)
{
    int rc = 0;
    if (!emu_required(p, "RegionId", r, &rc) || !emu_required(p, "ImageId", r, &rc)) {
        return rc;
    }
    if ((rc = emu_swas_check_token(p, r)) != 0) {
        return rc < 0 ? rc : 0;
    }
    const emu_token *prev = NULL;
    rc = emu_token_check(w, "DeleteCustomImage", p, now, &prev, r);
    if (rc != 0 || prev != NULL) {
        return rc == -EEXIST ? 0 : rc; /* a mismatch is answered on r; a replay acts nothing */
    }
    emu_region *reg = NULL;
    size_t idx = 0;
    emu_image *img = find_image(w, p, &reg, &idx, r, &rc);
    if (!img) {
        return rc;
    }
    if ((rc = emu_swas_deletable(img, r)) != 0) {
        return rc < 0 ? rc : 0;
    }
    emu_region_remove_image(reg, idx);
    return emu_token_record(w, "DeleteCustomImage", p, NULL, now);
}
