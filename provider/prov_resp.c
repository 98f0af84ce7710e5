/* Response parsers (prov_resp.h): a parsed JSON answer in (prov_json_load_object turns bytes into
 * one), structs or -EPROTO out, never a crash. Counters may come as strings ("4") or numbers; any
 * field of the wrong type rejects the whole answer, and a rejected answer appends nothing to the
 * caller's list. Used by the typed operations, the plan-scale benchmark and the fuzz targets. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "prov_jmem.h"
#include "prov_resp.h"

/* Loads a JSON object from bytes, rejecting duplicate keys; NULL when the bytes are not one.
 * Called by the client for every answer and by the tests and fuzz targets before the parsers. */
json_t *prov_json_load_object(const char *body, size_t len)
{
    if (body == NULL)
        return NULL;
    json_error_t je;
    json_t *root = prov_json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (root != NULL && !json_is_object(root)) {
        json_decref(root);
        return NULL;
    }
    return root;
}

/* A member name and its length. */
typedef struct member {
    const char *key;
    size_t len;
} member;
#define MEMBER(k)                                                                                  \
    {                                                                                              \
        k, sizeof(k) - 1                                                                           \
    }

/* Finds the members keys[0..n) of obj in one walk over its members: vals[i] is the value named
 * keys[i], or NULL when absent. parse_image reads over a dozen members of every image, and a
 * json_object_get hashes the name each time; comparing each member's name with the few wanted
 * costs less. An object holds a name once (jansson replaces a repeated key, and answers are
 * loaded with JSON_REJECT_DUPLICATES), and names are compared with their length, so this finds
 * what json_object_get would. */
static void get_members(const json_t *obj, const member *keys, size_t n, json_t **vals)
{
    json_t *o = (json_t *)obj; /* the iterator API is not const, though it only reads */
    for (size_t i = 0; i < n; i++)
        vals[i] = NULL;
    for (void *it = json_object_iter(o); it != NULL; it = json_object_iter_next(o, it)) {
        const char *key = json_object_iter_key(it);
        size_t len = json_object_iter_key_len(it);
        for (size_t i = 0; i < n; i++)
            if (vals[i] == NULL && keys[i].len == len && memcmp(keys[i].key, key, len) == 0) {
                vals[i] = json_object_iter_value(it);
                break;
            }
    }
}

/* Optional string value: absent (NULL) or null -> NULL; a number is accepted and printed (ids
 * and counters are sometimes numeric); anything else is an error. */
static int string_value(const json_t *v, char **ret)
{
    char *s = NULL;
    if (v == NULL || json_is_null(v)) {
        *ret = NULL;
        return 0;
    }
    if (json_is_string(v))
        s = strndup(json_string_value(v), json_string_length(v));
    else if (json_is_integer(v)) {
        if (asprintf(&s, "%" JSON_INTEGER_FORMAT, json_integer_value(v)) < 0)
            s = NULL;
    } else
        return -EPROTO;
    if (s == NULL)
        return -ENOMEM;
    *ret = s;
    return 0;
}

/* Optional string field of obj (string_value of the member named key). */
static int opt_string(const json_t *obj, const char *key, char **ret)
{
    return string_value(json_object_get(obj, key), ret);
}

/* A counter given as a number or a decimal string; absent -> 0. */
static int opt_counter(const json_t *obj, const char *key, unsigned *ret)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL || json_is_null(v)) {
        *ret = 0;
        return 0;
    }
    if (json_is_integer(v)) {
        json_int_t n = json_integer_value(v);
        if (n < 0 || n > INT_MAX)
            return -EPROTO;
        *ret = (unsigned)n;
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end = NULL;
        /* Digits only: strtoul alone would take leading blanks and a sign. */
        if (*s < '0' || *s > '9')
            return -EPROTO;
        errno = 0;
        unsigned long n = strtoul(s, &end, 10);
        if (errno != 0 || *end != '\0' || n > INT_MAX)
            return -EPROTO;
        *ret = (unsigned)n;
        return 0;
    }
    return -EPROTO;
}

/* A boolean given as true/false or "true"/"false" (any case); absent (NULL) -> false. */
static int bool_value(const json_t *v, bool *ret)
{
    if (v == NULL || json_is_null(v)) {
        *ret = false;
        return 0;
    }
    if (json_is_boolean(v)) {
        *ret = json_is_true(v);
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strcasecmp(s, "true") == 0 || strcasecmp(s, "false") == 0) {
            *ret = strcasecmp(s, "true") == 0;
            return 0;
        }
    }
    return -EPROTO;
}

/* A boolean field of obj (bool_value of the member named key). */
static int opt_bool(const json_t *obj, const char *key, bool *ret)
{
    return bool_value(json_object_get(obj, key), ret);
}

/* An image's Status value (absent: NULL). */
static int parse_status(const json_t *v, int *ret)
{
    long n = -1;
    if (v == NULL || json_is_null(v)) {
        *ret = PROV_IMG_UNKNOWN;
        return 0;
    }
    if (json_is_integer(v))
        n = (long)json_integer_value(v);
    else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strlen(s) == 1 && s[0] >= '0' && s[0] <= '9')
            n = s[0] - '0';
    } else
        return -EPROTO;
    *ret = (n >= 0 && n <= 4) ? (int)n : PROV_IMG_UNKNOWN;
    return 0;
}

/* An image's Tags value (absent: NULL) into img->tags. */
static int parse_tags(json_t *tags, prov_image *img)
{
    static const member tag_members[] = {MEMBER("Key"), MEMBER("Value")};
    if (tags == NULL || json_is_null(tags))
        return 0;
    /* Some answers wrap lists as {"Tag":[...]}. */
    if (json_is_object(tags))
        tags = json_object_get(tags, "Tag");
    if (tags == NULL || !json_is_array(tags))
        return -EPROTO;
    size_t n = json_array_size(tags);
    if (n == 0)
        return 0;
    img->tags = calloc(n, sizeof(*img->tags));
    if (img->tags == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(tags, i);
        if (!json_is_object(t))
            return -EPROTO;
        prov_tag *tag = &img->tags[img->n_tags];
        json_t *kv[2];
        get_members(t, tag_members, 2, kv);
        int rc = string_value(kv[0], &tag->key);
        if (rc == 0)
            rc = string_value(kv[1], &tag->value);
        if (rc < 0 || tag->key == NULL) {
            free(tag->key);
            free(tag->value);
            tag->key = tag->value = NULL;
            return rc < 0 ? rc : -EPROTO;
        }
        if (tag->value == NULL && (tag->value = strdup("")) == NULL) {
            free(tag->key);
            tag->key = NULL;
            return -ENOMEM;
        }
        img->n_tags++;
    }
    return 0;
}

/* The members of a ListCustomImages item that parse_image reads: the string fields first, in
 * the order they are read (and checked), then the others. */
enum {
    M_STRINGS = 9, /* ImageId .. CreationTime */
    M_STATUS = M_STRINGS,
    M_IN_SHARE,
    M_IN_SHARE_USER,
    M_TAGS,
    M_COUNT
};
static const member image_members[M_COUNT] = {
    MEMBER("ImageId"),
    MEMBER("Name"),
    MEMBER("Description"),
    MEMBER("InstanceId"),
    MEMBER("SystemSnapshotId"),
    MEMBER("DataSnapshotId"),
    MEMBER("ResourceGroupId"),
    MEMBER("RegionId"),
    MEMBER("CreationTime"),
    MEMBER("Status"),
    MEMBER("InShare"),
    MEMBER("InShareUser"),
    MEMBER("Tags"),
};

/* An id the cloud gives (image, ECS image, account): 1 to 128 letters, digits and `-_.:`.
 * Every id imgrecon later sends back in a mutating call comes through here, so that an answer
 * cannot make it name something else or carry a control character into a request or a line of
 * output. Called by the parsers below. */
static bool cloud_id_ok(const char *s)
{
    size_t len = s != NULL ? strlen(s) : 0;
    if (len == 0 || len > 128)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == ':'))
            return false;
    }
    return true;
}

static int parse_image(const json_t *obj, prov_image *img)
{
    if (!json_is_object(obj))
        return -EPROTO;
    json_t *v[M_COUNT];
    get_members(obj, image_members, M_COUNT, v);
    char **strings[M_STRINGS] = {
        &img->image_id,           &img->name,
        &img->description,        &img->instance_id,
        &img->system_snapshot_id, &img->data_snapshot_id,
        &img->resource_group_id,  &img->region_id,
        &img->creation_time,
    };
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < M_STRINGS; i++)
        rc = string_value(v[i], strings[i]);
    if (rc == 0)
        rc = parse_status(v[M_STATUS], &img->status);
    if (rc == 0)
        rc = bool_value(v[M_IN_SHARE], &img->in_share);
    if (rc == 0)
        rc = bool_value(v[M_IN_SHARE_USER], &img->in_share_user);
    if (rc == 0)
        rc = parse_tags(v[M_TAGS], img);
    if (rc == 0 && (img->image_id == NULL || img->name == NULL || !cloud_id_ok(img->image_id)))
        rc = -EPROTO; /* an image without id or name cannot be reconciled */
    return rc;
}

/* Makes room for n more zeroed items after the count already in *v (the count itself is the
 * caller's to raise once they parse). Growing by nothing succeeds, even on an empty list. */
static int grow(void **v, size_t count, size_t size, size_t n)
{
    if (n == 0)
        return 0;
    if (n > SIZE_MAX / size - count)
        return -ENOMEM;
    void *g = realloc(*v, (count + n) * size);
    if (g == NULL)
        return -ENOMEM;
    memset((char *)g + count * size, 0, n * size);
    *v = g;
    return 0;
}

int prov_parse_list_images(const json_t *root, prov_image_list *append_to,
                           unsigned *ret_total_count)
{
    if (!json_is_object(root))
        return -EPROTO;
    unsigned total = 0, page = 0, size = 0;
    int rc = opt_counter(root, "TotalCount", &total);
    if (rc == 0)
        rc = opt_counter(root, "PageNumber", &page);
    if (rc == 0)
        rc = opt_counter(root, "PageSize", &size);
    json_t *items = json_object_get(root, "CustomImages");
    if (rc == 0 && (items == NULL || !json_is_array(items)))
        rc = -EPROTO;
    size_t n = rc == 0 ? json_array_size(items) : 0;
    size_t base = append_to->n;
    if (rc == 0 && grow((void **)&append_to->v, append_to->n, sizeof(prov_image), n) < 0) {
        rc = -ENOMEM;
        n = 0;
    }
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = parse_image(json_array_get(items, i), &append_to->v[base + i]);
    if (rc < 0) {
        /* Roll back: nothing of a rejected answer stays in the caller's list (the new items
         * were zeroed by grow, so freeing the unparsed ones is harmless). */
        for (size_t i = 0; i < n; i++)
            prov_image_clear(&append_to->v[base + i]);
        append_to->n = base;
        return rc;
    }
    append_to->n = base + n;
    if (ret_total_count)
        *ret_total_count = total;
    return 0;
}

int prov_parse_ecs_images(const json_t *root, prov_ecs_image_list *append_to,
                          unsigned *ret_total_count)
{
    if (!json_is_object(root))
        return -EPROTO;
    unsigned total = 0;
    int rc = opt_counter(root, "TotalCount", &total);
    json_t *images = json_object_get(root, "Images");
    json_t *items = json_is_object(images) ? json_object_get(images, "Image") : NULL;
    /* {"Images":{}} is an empty page. */
    bool empty = json_is_object(images) && items == NULL;
    if (rc == 0 && !empty && !json_is_array(items))
        rc = -EPROTO;
    size_t n = rc == 0 ? json_array_size(items) : 0;
    size_t base = append_to->n;
    if (rc == 0 && grow((void **)&append_to->v, append_to->n, sizeof(prov_ecs_image), n) < 0) {
        rc = -ENOMEM;
        n = 0;
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        json_t *o = json_array_get(items, i);
        prov_ecs_image *e = &append_to->v[base + i];
        if (!json_is_object(o)) {
            rc = -EPROTO;
            break;
        }
        if ((rc = opt_string(o, "ImageId", &e->image_id)) == 0 &&
            (rc = opt_string(o, "ImageName", &e->name)) == 0 &&
            (rc = opt_string(o, "Status", &e->status)) == 0 &&
            (rc = opt_string(o, "ImageOwnerAlias", &e->owner_alias)) == 0 &&
            (rc = opt_string(o, "Usage", &e->usage)) == 0)
            rc = opt_bool(o, "IsSelfShared", &e->is_self_shared);
        if (rc == 0 && !cloud_id_ok(e->image_id))
            rc = -EPROTO;
    }
    if (rc < 0) {
        for (size_t i = 0; i < n; i++)
            prov_ecs_image_clear(&append_to->v[base + i]);
        append_to->n = base;
        return rc;
    }
    append_to->n = base + n;
    if (ret_total_count)
        *ret_total_count = total;
    return 0;
}

int prov_parse_create(const json_t *root, char **ret_image_id)
{
    if (!json_is_object(root))
        return -EPROTO;
    json_t *v = json_object_get(root, "ImageId");
    int rc = -EPROTO;
    if (json_is_string(v) && json_string_length(v) == strlen(json_string_value(v)) &&
        cloud_id_ok(json_string_value(v))) {
        char *id = strdup(json_string_value(v));
        rc = id ? 0 : -ENOMEM;
        if (id)
            *ret_image_id = id;
    }
    return rc;
}

static bool region_id_ok(const char *s, size_t len)
{
    if (len == 0 || len > 64 || strlen(s) != len)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return false;
    return true;
}

static int cmp_region(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int prov_parse_regions(const json_t *root, char ***ret_regions, size_t *ret_n)
{
    if (!json_is_object(root))
        return -EPROTO;
    json_t *items = json_object_get(root, "Regions");
    if (json_is_object(items))
        items = json_object_get(items, "Region");
    size_t n = json_is_array(items) ? json_array_size(items) : 0;
    int rc = n > 0 ? 0 : -EPROTO;
    char **v = rc == 0 ? calloc(n, sizeof(*v)) : NULL;
    if (rc == 0 && v == NULL)
        rc = -ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        json_t *id = json_object_get(json_array_get(items, i), "RegionId");
        if (!json_is_string(id) || !region_id_ok(json_string_value(id), json_string_length(id)))
            rc = -EPROTO;
        else if ((v[i] = strdup(json_string_value(id))) == NULL)
            rc = -ENOMEM;
    }
    if (rc == 0)
        qsort(v, n, sizeof(*v), cmp_region);
    for (size_t i = 1; rc == 0 && i < n; i++)
        if (strcmp(v[i - 1], v[i]) == 0)
            rc = -EPROTO;
    if (rc < 0) {
        for (size_t i = 0; v != NULL && i < n; i++)
            free(v[i]);
        free(v);
        return rc;
    }
    *ret_regions = v;
    *ret_n = n;
    return 0;
}

int prov_parse_error_body(const json_t *root, char **ret_code, char **ret_message,
                          char **ret_request_id)
{
    if (!json_is_object(root))
        return -EPROTO;
    char *code = NULL, *message = NULL, *rid = NULL;
    int rc = opt_string(root, "Code", &code);
    if (rc == 0)
        rc = opt_string(root, "Message", &message);
    if (rc == 0)
        rc = opt_string(root, "RequestId", &rid);
    if (rc < 0) {
        free(code);
        free(message);
        free(rid);
        return rc;
    }
    *ret_code = code;
    *ret_message = message;
    *ret_request_id = rid;
    return 0;
}

/* ListTagResources: {NextToken, TagResources: {TagResource: [{ResourceId, ResourceType, TagKey,
 * TagValue}]}} (an unwrapped array is accepted too). Rows without ResourceId or TagKey reject
 * the answer; an absent TagValue is "". */
int prov_parse_tag_resources(const json_t *body, prov_tag_resource_list *append_to,
                             char **ret_next_token)
{
    json_t *root = (json_t *)body;
    if (!json_is_object(root) || append_to == NULL)
        return -EPROTO;
    char *next = NULL;
    int rc = opt_string(root, "NextToken", &next);
    json_t *items = json_object_get(root, "TagResources");
    if (json_is_object(items))
        items = json_object_get(items, "TagResource");
    if (rc == 0 && items != NULL && !json_is_null(items) && !json_is_array(items))
        rc = -EPROTO;
    size_t n = rc == 0 && json_is_array(items) ? json_array_size(items) : 0;
    size_t base = append_to->n;
    if (rc == 0 && grow((void **)&append_to->v, base, sizeof(prov_tag_resource), n) < 0) {
        rc = -ENOMEM;
        n = 0;
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        json_t *o = json_array_get(items, i);
        prov_tag_resource *t = &append_to->v[base + i];
        if (!json_is_object(o)) {
            rc = -EPROTO;
            break;
        }
        if ((rc = opt_string(o, "ResourceId", &t->resource_id)) == 0 &&
            (rc = opt_string(o, "ResourceType", &t->resource_type)) == 0 &&
            (rc = opt_string(o, "TagKey", &t->key)) == 0)
            rc = opt_string(o, "TagValue", &t->value);
        if (rc == 0 && (t->resource_id == NULL || t->key == NULL))
            rc = -EPROTO;
        if (rc == 0 && t->value == NULL && (t->value = strdup("")) == NULL)
            rc = -ENOMEM;
    }
    if (rc < 0) {
        for (size_t i = 0; i < n; i++) {
            prov_tag_resource *t = &append_to->v[base + i];
            free(t->resource_id);
            free(t->resource_type);
            free(t->key);
            free(t->value);
        }
        append_to->n = base;
        free(next);
        return rc;
    }
    append_to->n = base + n;
    if (ret_next_token != NULL)
        *ret_next_token = next;
    else
        free(next);
    return 0;
}

/* ListCustomImageShareAccounts: {TotalCount, PageSize, PageNumber, ImageShareUsers: [{UserId,
 * SharedTime}]} (or {ImageShareUsers: {ImageShareUser: [...]}}); UserId a number or a string. */
int prov_parse_share_accounts(const json_t *body, prov_str_list *append_to,
                              unsigned *ret_total_count)
{
    json_t *root = (json_t *)body;
    if (!json_is_object(root) || append_to == NULL)
        return -EPROTO;
    unsigned total = 0;
    int rc = opt_counter(root, "TotalCount", &total);
    json_t *items = json_object_get(root, "ImageShareUsers");
    if (json_is_object(items))
        items = json_object_get(items, "ImageShareUser");
    if (rc == 0 && items != NULL && !json_is_null(items) && !json_is_array(items))
        rc = -EPROTO;
    size_t n = rc == 0 && json_is_array(items) ? json_array_size(items) : 0;
    size_t base = append_to->n;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        json_t *o = json_array_get(items, i);
        char *uid = NULL;
        if (!json_is_object(o) || (rc = opt_string(o, "UserId", &uid)) < 0 || !cloud_id_ok(uid)) {
            free(uid);
            rc = rc < 0 ? rc : -EPROTO;
            break;
        }
        rc = prov_str_list_add(append_to, uid);
        free(uid);
    }
    if (rc < 0) {
        while (append_to->n > base)
            free(append_to->v[--append_to->n]);
        return rc;
    }
    if (ret_total_count != NULL)
        *ret_total_count = total;
    return 0;
}
