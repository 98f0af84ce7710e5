/* More SWAS operations of the emulator (README.md "More SWAS operations"): TagResources,
 * UntagResources, ListTagResources (NextToken paging), DeleteCustomImages (up to 15 ids),
 * ListRegions and the account shares (Add/Remove/ListCustomImageShareAccount(s)). The limits
 * and codes are the vendor pages' where they state them; where they do not, the choice is
 * written in README.md ("More SWAS operations"). Called through emu_world_call() under the
 * server's mutex. Tags are kept on custom images only: another resource type is valid but has no
 * resources here. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu_ops.h"
#include "emu_rules.h"
#include "emu_util.h"

#define MAX_RESOURCE_IDS 50
#define MAX_TAGS_PER_RESOURCE 20
#define MAX_BATCH_DELETE 15
#define MAX_ACCOUNTS_PER_CALL 10
#define MAX_SHARE_ACCOUNTS 50
#define TAG_PAGE 50

/* Sets an API error and turns the result into the "error set" return (1), or -ENOMEM. */
#define API_ERROR(r, status, code, ...)                                                            \
    (emu_result_error((r), (status), (code), __VA_ARGS__) < 0 ? -ENOMEM : 1)

/* emu_token_check in this file's chain convention (0 go on, 1 answered, negative errno): a
 * replayed token is answered (a success that acts nothing), and so is a mismatch (the error is
 * on r). Called by every mutating handler here after its parameters are checked. */
static int token_step(emu_world *w, const char *action, const emu_kvs *p, int64_t now,
                      const emu_token **prev, emu_result *r)
{
    int rc = emu_token_check(w, action, p, now, prev, r);
    if (rc == -EEXIST || (rc == 0 && *prev != NULL)) {
        return 1;
    }
    return rc;
}

/* The values of "prefix.N" (N = 1..max) ordered by N, borrowed from p, into v[0..*ret_n).
 * An N outside 1..max sets too_many on r. */
static int indexed(const emu_kvs *p, const char *prefix, size_t max, const char *too_many,
                   const char **v, size_t *ret_n, emu_result *r)
{
    const char *by_n[MAX_RESOURCE_IDS + 1] = {0};
    size_t plen = strlen(prefix);
    for (size_t i = 0; i < p->n; i++) {
        const char *k = p->v[i].key;
        long n = 0;
        if (strncmp(k, prefix, plen) != 0 || k[plen] != '.') {
            continue;
        }
        if (emu_parse_long(k + plen + 1, 1, 1000000, &n) < 0) {
            return API_ERROR(r, 400, "InvalidParameter",
                             "The specified parameter \"%s\" is not valid.", k);
        }
        if ((size_t)n > max) {
            return API_ERROR(r, 400, too_many, "At most %zu %s values are allowed (got %s).", max,
                             prefix, k);
        }
        by_n[n] = p->v[i].value;
    }
    size_t out = 0;
    for (size_t n = 1; n <= max; n++) {
        if (by_n[n] && *by_n[n]) {
            v[out++] = by_n[n];
        }
    }
    *ret_n = out;
    return 0;
}

static const char *const resource_types[] = {"instance", "snapshot",     "customimage",
                                             "command",  "firewallrule", "disk"};

/* RegionId and ResourceType (one of the documented types), or an error on r. */
static int tag_target(const emu_kvs *p, const char **ret_region, const char **ret_type,
                      emu_result *r)
{
    int rc = 0;
    const char *region = emu_required(p, "RegionId", r, &rc);
    const char *type = region ? emu_required(p, "ResourceType", r, &rc) : NULL;
    if (!type) {
        return rc < 0 ? rc : 1;
    }
    for (size_t i = 0; i < sizeof(resource_types) / sizeof(resource_types[0]); i++) {
        if (strcmp(type, resource_types[i]) == 0) {
            *ret_region = region;
            *ret_type = type;
            return 0;
        }
    }
    return API_ERROR(r, 400, "InvalidResourceType.NotFound",
                     "The specified ResourceType \"%s\" is not supported: instance, snapshot, "
                     "customimage, command, firewallrule or disk.",
                     type);
}

/* The images named by ids (custom images only), all of them or an error on r. */
static int tag_resources(emu_world *w, const char *region, const char *type, const char **ids,
                         size_t n, emu_image **out, emu_result *r)
{
    emu_region *reg = emu_world_region(w, region);
    for (size_t i = 0; i < n; i++) {
        out[i] = reg && strcmp(type, "customimage") == 0 ? emu_region_image(reg, ids[i]) : NULL;
        if (!out[i]) {
            return API_ERROR(r, 404, "InvalidResourceId.NotFound",
                             "The specified resource %s of type %s does not exist.", ids[i], type);
        }
    }
    return 0;
}

static emu_tag *tag_find(emu_image *img, const char *key)
{
    for (size_t i = 0; i < img->n_tags; i++) {
        if (strcmp(img->tags[i].key, key) == 0) {
            return &img->tags[i];
        }
    }
    return NULL;
}

/* Sets key=value on img (overwriting an existing key's value). Returns 0 or -ENOMEM. */
static int tag_set(emu_image *img, const emu_tag *t)
{
    emu_tag *have = tag_find(img, t->key);
    char *value = strdup(t->value ? t->value : "");
    if (!value) {
        return -ENOMEM;
    }
    if (have) {
        free(have->value);
        have->value = value;
        return 0;
    }
    char *key = strdup(t->key);
    emu_tag *v = key ? realloc(img->tags, (img->n_tags + 1) * sizeof(*v)) : NULL;
    if (!v) {
        free(key);
        free(value);
        return -ENOMEM;
    }
    img->tags = v;
    v[img->n_tags++] = (emu_tag){.key = key, .value = value};
    return 0;
}

/* The common start of the three tag operations: region, type, ClientToken and ResourceId.N. */
static int tag_common(const emu_kvs *p, const char **region, const char **type, const char **ids,
                      size_t *n_ids, emu_result *r)
{
    int rc = tag_target(p, region, type, r);
    if (rc == 0) {
        rc = emu_swas_check_token(p, r);
    }
    if (rc == 0) {
        rc = indexed(p, "ResourceId", MAX_RESOURCE_IDS, "NumberExceed.ResourceIds", ids, n_ids, r);
    }
    return rc;
}

int emu_swas_tag(emu_world *w, const emu_kvs *p, int64_t now, emu_result *r)
{
    const char *region = NULL, *type = NULL, *ids[MAX_RESOURCE_IDS];
    size_t n_ids = 0, n_tags = 0;
    emu_tag *tags = NULL;
    emu_image *imgs[MAX_RESOURCE_IDS];
    const emu_token *prev = NULL;
    int rc = tag_common(p, &region, &type, ids, &n_ids, r);
    if (rc == 0 && n_ids == 0) {
        rc = API_ERROR(r, 400, "MissingParameter", "ResourceId.N is mandatory for this action.");
    }
    if (rc == 0) {
        rc = emu_swas_parse_tags(p, true, &tags, &n_tags, r);
    }
    if (rc == 0 && n_tags == 0) {
        rc = API_ERROR(r, 400, "MissingParameter", "Tag.N.Key is mandatory for this action.");
    }
    if (rc == 0) {
        rc = token_step(w, "TagResources", p, now, &prev, r);
    }
    if (rc == 0) {
        rc = tag_resources(w, region, type, ids, n_ids, imgs, r);
    }
    /* All or nothing: no resource may end up with more than 20 tags. */
    for (size_t i = 0; rc == 0 && i < n_ids; i++) {
        size_t total = imgs[i]->n_tags;
        for (size_t j = 0; j < n_tags; j++) {
            total += tag_find(imgs[i], tags[j].key) == NULL;
        }
        if (total > MAX_TAGS_PER_RESOURCE) {
            rc = API_ERROR(r, 400, "OperationDenied.QuotaExceed",
                           "The quota of tags on resource %s is beyond permitted range: at most "
                           "20 tags per resource.",
                           ids[i]);
        }
    }
    for (size_t i = 0; rc == 0 && i < n_ids; i++) {
        for (size_t j = 0; rc == 0 && j < n_tags; j++) {
            rc = tag_set(imgs[i], &tags[j]);
        }
    }
    emu_tags_free(tags, n_tags);
    if (rc == 0) {
        rc = emu_token_record(w, "TagResources", p, NULL, now);
    }
    /* A replayed ClientToken (token_step returned 1) is a success that acts nothing. */
    return rc < 0 ? rc : 0;
}

static bool reserved_key(const char *key)
{
    return strncmp(key, "acs:", 4) == 0 || strncmp(key, "aliyun", 6) == 0;
}

/* Removes key from img when present. */
static void tag_remove(emu_image *img, const char *key)
{
    emu_tag *t = tag_find(img, key);
    if (t) {
        free(t->key);
        free(t->value);
        *t = img->tags[--img->n_tags];
    }
}

int emu_swas_untag(emu_world *w, const emu_kvs *p, int64_t now, emu_result *r)
{
    const char *region = NULL, *type = NULL, *ids[MAX_RESOURCE_IDS], *keys[MAX_RESOURCE_IDS];
    size_t n_ids = 0, n_keys = 0;
    emu_image *imgs[MAX_RESOURCE_IDS];
    const emu_token *prev = NULL;
    bool all = false;
    const char *s = emu_kvs_get(p, "All");
    int rc = tag_common(p, &region, &type, ids, &n_ids, r);
    if (rc == 0 && n_ids == 0) {
        rc = API_ERROR(r, 400, "MissingParameter", "ResourceId.N is mandatory for this action.");
    }
    if (rc == 0 && s && *s && emu_parse_bool(s, &all) < 0) {
        rc = API_ERROR(r, 400, "InvalidParam.All", "The specified parameter All is invalid.");
    }
    if (rc == 0) {
        rc = indexed(p, "TagKey", MAX_TAGS_PER_RESOURCE, "NumberExceed.Tags", keys, &n_keys, r);
    }
    if (rc == 0 && n_keys == 0 && !all) {
        rc = API_ERROR(r, 400, "MissingParameter", "TagKey.N or All=true is mandatory.");
    }
    for (size_t i = 0; rc == 0 && i < n_keys; i++) {
        if (reserved_key(keys[i])) {
            rc = API_ERROR(r, 400, "InvalidParam.TagKey",
                           "The specified parameter TagKey.%zu is invalid: system tags (acs:, "
                           "aliyun) cannot be removed.",
                           i + 1);
        }
    }
    if (rc == 0) {
        rc = token_step(w, "UntagResources", p, now, &prev, r);
    }
    if (rc == 0) {
        rc = tag_resources(w, region, type, ids, n_ids, imgs, r);
    }
    for (size_t i = 0; rc == 0 && i < n_ids; i++) {
        for (size_t j = 0; j < n_keys; j++) {
            tag_remove(imgs[i], keys[j]);
        }
        /* All=true removes every user tag; system tags stay. */
        for (size_t j = imgs[i]->n_tags; all && j-- > 0;) {
            if (!reserved_key(imgs[i]->tags[j].key)) {
                tag_remove(imgs[i], imgs[i]->tags[j].key);
            }
        }
    }
    if (rc == 0) {
        rc = emu_token_record(w, "UntagResources", p, NULL, now);
    }
    return rc < 0 ? rc : 0;
}

static bool has_tags(const emu_image *img, const emu_tag *want, size_t n)
{
    for (size_t i = 0; i < n; i++) {
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

static bool in_list(const char **v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i], s) == 0) {
            return true;
        }
    }
    return n == 0;
}

/* NextToken: "emu-<offset>" as this emulator issues it; "" or absent is the first page. */
static int next_token(const emu_kvs *p, long *ret_offset, emu_result *r)
{
    const char *s = emu_kvs_get(p, "NextToken");
    *ret_offset = 0;
    if (!s || !*s) {
        return 0;
    }
    if (strncmp(s, "emu-", 4) != 0 || emu_parse_long(s + 4, 1, 100000000, ret_offset) < 0) {
        return API_ERROR(r, 400, "InvalidParam.NextToken",
                         "The specified parameter NextToken is invalid.");
    }
    return 0;
}

int emu_swas_list_tags(emu_world *w, const emu_kvs *p, int64_t now, emu_result *r)
{
    const char *region = NULL, *type = NULL, *ids[MAX_RESOURCE_IDS];
    size_t n_ids = 0, n_tags = 0;
    emu_tag *tags = NULL;
    long offset = 0;
    int rc = tag_common(p, &region, &type, ids, &n_ids, r);
    if (rc == 0) {
        rc = emu_swas_parse_tags(p, false, &tags, &n_tags, r);
    }
    if (rc == 0) {
        rc = next_token(p, &offset, r);
    }
    json_t *items = rc == 0 ? json_array() : NULL;
    if (rc == 0 && !items) {
        rc = -ENOMEM;
    }
    emu_region *reg = emu_world_region(w, region);
    size_t seen = 0;
    bool more = false;
    for (size_t i = 0; rc == 0 && reg && strcmp(type, "customimage") == 0 && i < reg->n_images;
         i++) {
        const emu_image *img = &reg->images[i];
        if (!in_list(ids, n_ids, img->image_id) || !has_tags(img, tags, n_tags)) {
            continue;
        }
        for (size_t j = 0; rc == 0 && j < img->n_tags; j++, seen++) {
            if (seen < (size_t)offset) {
                continue;
            }
            if (seen >= (size_t)offset + TAG_PAGE) {
                more = true;
                break;
            }
            json_t *it = json_pack("{s:s,s:s,s:s,s:s}", "ResourceId", img->image_id, "ResourceType",
                                   type, "TagKey", img->tags[j].key, "TagValue",
                                   img->tags[j].value ? img->tags[j].value : "");
            if (!it || json_array_append_new(items, it) != 0) {
                rc = -ENOMEM;
            }
        }
    }
    char token[32] = "";
    if (more) {
        (void)snprintf(token, sizeof(token), "emu-%ld", offset + TAG_PAGE);
    }
    if (rc == 0) {
        r->body =
            json_pack("{s:s,s:{s:O}}", "NextToken", token, "TagResources", "TagResource", items);
        rc = r->body ? 0 : -ENOMEM;
    }
    json_decref(items);
    emu_tags_free(tags, n_tags);
    return rc < 0 ? rc : 0;
}

/* Region names as the console shows them, Chinese (the default) and English. */
static const struct {
    const char *id, *zh, *en;
} region_names[] = {
    {"cn-hangzhou", "华东1（杭州）", "China (Hangzhou)"},
    {"cn-shanghai", "华东2（上海）", "China (Shanghai)"},
    {"cn-qingdao", "华北1（青岛）", "China (Qingdao)"},
    {"cn-beijing", "华北2（北京）", "China (Beijing)"},
    {"cn-zhangjiakou", "华北3（张家口）", "China (Zhangjiakou)"},
    {"cn-huhehaote", "华北5（呼和浩特）", "China (Hohhot)"},
    {"cn-shenzhen", "华南1（深圳）", "China (Shenzhen)"},
    {"cn-chengdu", "西南1（成都）", "China (Chengdu)"},
    {"cn-hongkong", "中国香港", "China (Hong Kong)"},
    {"ap-southeast-1", "新加坡", "Singapore"},
    {"ap-southeast-3", "马来西亚（吉隆坡）", "Malaysia (Kuala Lumpur)"},
    {"ap-southeast-5", "印度尼西亚（雅加达）", "Indonesia (Jakarta)"},
    {"ap-northeast-1", "日本（东京）", "Japan (Tokyo)"},
    {"us-west-1", "美国（硅谷）", "US (Silicon Valley)"},
    {"us-east-1", "美国（弗吉尼亚）", "US (Virginia)"},
    {"eu-central-1", "德国（法兰克福）", "Germany (Frankfurt)"},
};

/* ListRegions: the regions of this emulator's world (the fixture's), in fixture order. */
int emu_swas_regions(emu_world *w, const emu_kvs *p, int64_t now, emu_result *r)
{
    const char *lang = emu_kvs_get(p, "AcceptLanguage");
    bool en = lang && strcmp(lang, "en-US") == 0;
    if (lang && *lang && !en && strcmp(lang, "zh-CN") != 0) {
        int rc = API_ERROR(r, 400, "InvalidParam.AcceptLanguage",
                           "The specified parameter AcceptLanguage is invalid: zh-CN or en-US.");
        return rc < 0 ? rc : 0;
    }
    json_t *regions = json_array();
    for (size_t i = 0; regions && i < w->n_regions; i++) {
        const char *id = w->regions[i].region, *name = id;
        for (size_t j = 0; j < sizeof(region_names) / sizeof(region_names[0]); j++) {
            if (strcmp(region_names[j].id, id) == 0) {
                name = en ? region_names[j].en : region_names[j].zh;
            }
        }
        char endpoint[160];
        (void)snprintf(endpoint, sizeof(endpoint), "swas.%s.aliyuncs.com", id);
        if (json_array_append_new(regions, json_pack("{s:s,s:s,s:s}", "RegionId", id, "LocalName",
                                                     name, "RegionEndpoint", endpoint)) != 0) {
            json_decref(regions);
            return -ENOMEM;
        }
    }
    r->body = regions ? json_pack("{s:o}", "Regions", regions) : NULL;
    return r->body ? 0 : -ENOMEM;
}

/* The image of RegionId + ImageId with its region, or an error on r. */
static int image_arg(emu_world *w, const emu_kvs *p, emu_region **ret_reg, emu_image **ret_img,
                     emu_result *r)
{
    int rc = 0;
    const char *region = emu_required(p, "RegionId", r, &rc);
    const char *id = region ? emu_required(p, "ImageId", r, &rc) : NULL;
    if (!id) {
        return rc < 0 ? rc : 1;
    }
    emu_region *reg = emu_world_region(w, region);
    emu_image *img = reg ? emu_region_image(reg, id) : NULL;
    if (!img) {
        return API_ERROR(r, 404, "InvalidImageId.NotFound",
                         "The specified ImageId %s does not exist.", id);
    }
    *ret_reg = reg;
    *ret_img = img;
    return 0;
}

int emu_swas_delete_batch(emu_world *w, const emu_kvs *p, int64_t now, emu_result *r)
{
    int rc = 0;
    const char *region = emu_required(p, "RegionId", r, &rc);
    const char *list = region ? emu_required(p, "ImageIds", r, &rc) : NULL;
    if (!list) {
        return rc;
    }
    char **ids = NULL;
    size_t n = 0;
    const emu_token *prev = NULL;
    rc = emu_parse_list(list, &ids, &n);
    if (rc == -ENOMEM) {
        return rc;
    }
    if (rc < 0 || n == 0 || n > MAX_BATCH_DELETE) {
        rc = API_ERROR(r, 400, "InvalidParam.ImageIds",
                       "The specified parameter ImageIds is invalid: a JSON array of 1 to 15 "
                       "image ids is expected.");
    }
    if (rc == 0) {
        rc = emu_swas_check_token(p, r);
    }
    if (rc == 0) {
        rc = token_step(w, "DeleteCustomImages", p, now, &prev, r);
    }
    /* All or nothing: every id must exist and be deletable before any is deleted. */
    emu_region *reg = emu_world_region(w, region);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        emu_image *img = reg ? emu_region_image(reg, ids[i]) : NULL;
        rc = img ? emu_swas_deletable(img, r)
                 : API_ERROR(r, 404, "InvalidImageId.NotFound",
                             "The specified ImageId %s does not exist.", ids[i]);
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        emu_image *img = emu_region_image(reg, ids[i]);
        if (img) { /* NULL when the id was listed twice */
            emu_region_remove_image(reg, (size_t)(img - reg->images));
        }
    }
    emu_strv_free(ids, n);
    if (rc == 0) {
        rc = emu_token_record(w, "DeleteCustomImages", p, NULL, now);
    }
    return rc < 0 ? rc : 0;
}

/* Account.N: 1 to 10 Alibaba Cloud account ids (digits), none of them this world's own. */
static int accounts_arg(emu_world *w, const emu_kvs *p, const char **v, size_t *n, emu_result *r)
{
    int rc = indexed(p, "Account", MAX_ACCOUNTS_PER_CALL, "InvalidParam.AccountCount", v, n, r);
    if (rc == 0 && *n == 0) {
        rc = API_ERROR(r, 400, "MissingParameter", "Account.N is mandatory for this action.");
    }
    for (size_t i = 0; rc == 0 && i < *n; i++) {
        long long digits = (long long)strspn(v[i], "0123456789");
        bool own = false;
        for (size_t a = 0; a < w->n_accounts; a++) {
            own |= strcmp(w->accounts[a].user_id, v[i]) == 0;
        }
        if (digits != (long long)strlen(v[i]) || digits > 20 || own) {
            rc = API_ERROR(r, 400, "InvalidParam.Account",
                           "The specified account %s is invalid: another Alibaba Cloud account "
                           "id is expected.",
                           v[i]);
        }
    }
    return rc;
}

static emu_share *share_find(emu_image *img, const char *uid)
{
    for (size_t i = 0; i < img->n_shares; i++) {
        if (strcmp(img->shares[i].user_id, uid) == 0) {
            return &img->shares[i];
        }
    }
    return NULL;
}

/* The start shared by Add and Remove: accounts, ClientToken, the image. */
static int share_common(emu_world *w, const emu_kvs *p, const char *action, int64_t now,
                        const char **accounts, size_t *n, emu_image **img, emu_result *r)
{
    emu_region *reg = NULL;
    const emu_token *prev = NULL;
    int rc = image_arg(w, p, &reg, img, r);
    if (rc == 0) {
        rc = accounts_arg(w, p, accounts, n, r);
    }
    if (rc == 0) {
        rc = emu_swas_check_token(p, r);
    }
    if (rc == 0) {
        rc = token_step(w, action, p, now, &prev, r);
    }
    return rc;
}

int emu_swas_share_add(emu_world *w, const emu_kvs *p, int64_t now, emu_result *r)
{
    const char *accounts[MAX_ACCOUNTS_PER_CALL];
    size_t n = 0, total = 0;
    emu_image *img = NULL;
    int rc = share_common(w, p, "AddCustomImageShareAccount", now, accounts, &n, &img, r);
    if (rc == 0 && strcmp(img->status, "1") != 0) {
        rc = API_ERROR(r, 403, "IncorrectImageStatus",
                       "The current status of the image does not support this operation.");
    }
    if (rc == 0) {
        total = img->n_shares;
        for (size_t i = 0; i < n; i++) {
            total += share_find(img, accounts[i]) == NULL;
        }
        if (total > MAX_SHARE_ACCOUNTS) {
            rc = API_ERROR(r, 400, "QuotaExceed.ShareAccount",
                           "An image can be shared to at most 50 accounts.");
        }
    }
    emu_share *v = rc == 0 ? realloc(img->shares, (total + 1) * sizeof(*v)) : NULL;
    if (rc == 0 && !v) {
        rc = -ENOMEM;
    }
    if (rc == 0) {
        img->shares = v;
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (share_find(img, accounts[i])) {
            continue; /* sharing again is a no-op */
        }
        char *uid = strdup(accounts[i]);
        if (!uid) {
            rc = -ENOMEM;
            break;
        }
        img->shares[img->n_shares++] = (emu_share){.user_id = uid, .at_ms = now};
    }
    if (rc == 0) {
        rc = emu_token_record(w, "AddCustomImageShareAccount", p, NULL, now);
    }
    return rc < 0 ? rc : 0;
}

int emu_swas_share_remove(emu_world *w, const emu_kvs *p, int64_t now, emu_result *r)
{
    const char *accounts[MAX_ACCOUNTS_PER_CALL];
    size_t n = 0;
    emu_image *img = NULL;
    int rc = share_common(w, p, "RemoveCustomImageShareAccount", now, accounts, &n, &img, r);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        emu_share *s = share_find(img, accounts[i]);
        if (s) { /* an account the image is not shared to is ignored */
            free(s->user_id);
            memmove(s, s + 1, (size_t)(img->shares + img->n_shares - (s + 1)) * sizeof(*s));
            img->n_shares--;
        }
    }
    if (rc == 0) {
        rc = emu_token_record(w, "RemoveCustomImageShareAccount", p, NULL, now);
    }
    return rc < 0 ? rc : 0;
}

int emu_swas_share_list(emu_world *w, const emu_kvs *p, int64_t now, emu_result *r)
{
    emu_region *reg = NULL;
    emu_image *img = NULL;
    long size = 10, number = 1;
    const char *ps = emu_kvs_get(p, "PageSize"), *pn = emu_kvs_get(p, "PageNumber");
    int rc = image_arg(w, p, &reg, &img, r);
    if (rc == 0 && ps && *ps && emu_parse_long(ps, 1, 50, &size) < 0) {
        rc = API_ERROR(r, 400, "InvalidParam.PageSize",
                       "The specified parameter PageSize is invalid: 1 to 50.");
    }
    if (rc == 0 && pn && *pn && emu_parse_long(pn, 1, 1000000, &number) < 0) {
        rc = API_ERROR(r, 400, "InvalidParam.PageNumber",
                       "The specified parameter PageNumber is invalid.");
    }
    if (rc != 0) {
        return rc < 0 ? rc : 0;
    }
    json_t *users = json_array();
    size_t first = (size_t)(number - 1) * (size_t)size;
    for (size_t i = first; users && i < img->n_shares && i < first + (size_t)size; i++) {
        char when[21], shown[32];
        emu_format_time(img->shares[i].at_ms, when);
        /* The page's shape: "2024-07-15 13:59:21.0". */
        (void)snprintf(shown, sizeof(shown), "%.10s %.8s.0", when, when + 11);
        if (json_array_append_new(users,
                                  json_pack("{s:I,s:s}", "UserId",
                                            (json_int_t)strtoll(img->shares[i].user_id, NULL, 10),
                                            "SharedTime", shown)) != 0) {
            json_decref(users);
            return -ENOMEM;
        }
    }
    r->body = users ? json_pack("{s:I,s:I,s:I,s:o}", "TotalCount", (json_int_t)img->n_shares,
                                "PageSize", (json_int_t)size, "PageNumber", (json_int_t)number,
                                "ImageShareUsers", users)
                    : NULL;
    return r->body ? 0 : -ENOMEM;
}
