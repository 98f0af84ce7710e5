/* The API's own value rules (the vendor's CreateCustomImage page; provider/README.md "Operations")
 * and the id shapes the manifest loader accepts. */
#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "spec.h"
#include "spec_rules.h"
#include "spec_rules_int.h"
#include "spec_yaml.h"

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

const char *spec_check_image_name(const char *name)
{
    size_t len = name ? strlen(name) : 0;
    if (len < 2 || len > 128)
        return "must be 2-128 characters";
    if (!is_alnum(name[0]))
        return "must start with a letter or a digit";
    for (size_t i = 0; i < len; i++)
        if (!is_alnum(name[i]) && name[i] != ':' && name[i] != '_' && name[i] != '-')
            return "may contain only letters, digits, ':', '_' and '-'";
    return NULL;
}

/* Case-insensitive substring search for the URL schemes the API refuses in tags. */
static bool has_url(const char *s)
{
    for (; *s; s++)
        if ((*s == 'h' || *s == 'H') &&
            (strncasecmp(s, "http://", 7) == 0 || strncasecmp(s, "https://", 8) == 0))
            return true;
    return false;
}

const char *spec_check_tag_key(const char *key)
{
    if (key == NULL || *key == '\0')
        return "must not be empty";
    if (spec_utf8_chars(key, strlen(key)) > 64)
        return "must be at most 64 characters";
    if (strncasecmp(key, "acs:", 4) == 0 || strncasecmp(key, "aliyun", 6) == 0)
        return "must not start with 'acs:' or 'aliyun'";
    if (has_url(key))
        return "must not contain 'http://' or 'https://'";
    return NULL;
}

const char *spec_check_tag_value(const char *value)
{
    if (value == NULL)
        return NULL;
    if (spec_utf8_chars(value, strlen(value)) > 64)
        return "must be at most 64 characters";
    if (has_url(value))
        return "must not contain 'http://' or 'https://'";
    return NULL;
}

/* True when every byte of s after `skip` is in the allowed class and the length fits. */
static bool shaped(const char *s, size_t skip, size_t max, bool upper_ok, const char *extra)
{
    size_t len = strlen(s);
    if (len <= skip || len > max)
        return false;
    for (size_t i = skip; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  (upper_ok && c >= 'A' && c <= 'Z') || (c != '\0' && strchr(extra, c) != NULL);
        if (!ok)
            return false;
    }
    return true;
}

bool spec_region_valid(const char *s)
{
    /* Region ids are lowercase words joined by '-': cn-hangzhou, ap-southeast-1. */
    size_t len = strlen(s);
    if (len < 3 || len > 64 || s[0] == '-' || s[len - 1] == '-' || strchr(s, '-') == NULL)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '-' && s[i + 1] == '-')
            return false;
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return false;
    }
    return true;
}

const char *spec_check_id(spec_id_kind kind, const char *s)
{
    switch (kind) {
    case SPEC_ID_INSTANCE:
        return shaped(s, 0, 64, true, "-_") ? NULL
                                            : "expected letters, digits, '-' and '_' (at most 64)";
    case SPEC_ID_SNAPSHOT:
        return strncmp(s, "s-", 2) == 0 && shaped(s, 2, 64, false, "-")
                   ? NULL
                   : "expected a snapshot id such as s-bp14m09pq8abc0g6";
    case SPEC_ID_RESOURCE_GROUP:
        return strncmp(s, "rg-", 3) == 0 && shaped(s, 3, 64, true, "-")
                   ? NULL
                   : "expected a resource group id such as rg-aek2bti7cf7abcd";
    case SPEC_ID_ECS_IMAGE:
        return strncmp(s, "m-", 2) == 0 && shaped(s, 2, 64, true, "-_")
                   ? NULL
                   : "expected an ECS image id such as m-bp67acfmxazb4p1234";
    }
    return "unknown id kind";
}

/* True when s is an account id the manifest accepts: 1-20 digits. */
static bool account_id_valid(const char *s)
{
    size_t len = s ? strlen(s) : 0;
    return len >= 1 && len <= 20 && strspn(s, "0123456789") == len;
}

/* The tag rules of one entry: the count (one fewer with protect), each key and value. */
static const char *check_entry_tags(const spec_image *img)
{
    size_t limit = img->protect ? SPEC_MAX_USER_TAGS - 1 : SPEC_MAX_USER_TAGS;
    if (img->n_tags > limit)
        return "too many tags for a manifest entry";
    for (size_t i = 0; i < img->n_tags; i++) {
        const char *why = spec_check_tag_key(img->tags[i].key);
        if (why == NULL && strncmp(img->tags[i].key, SPEC_RESERVED_TAG_PREFIX,
                                   strlen(SPEC_RESERVED_TAG_PREFIX)) == 0)
            why = "a key starting with imgrecon/ is reserved";
        if (why == NULL)
            why = spec_check_tag_value(img->tags[i].value);
        if (why != NULL)
            return why;
    }
    return NULL;
}

const char *spec_check_entry(const spec_image *img, const char **ret_field)
{
    struct {
        const char *field;
        const char *why;
    } checks[] = {
        {"name", spec_check_image_name(img->name)},
        {"instance_id",
         img->instance_id ? spec_check_id(SPEC_ID_INSTANCE, img->instance_id) : "is required"},
        {"system_snapshot_id", img->system_snapshot_id
                                   ? spec_check_id(SPEC_ID_SNAPSHOT, img->system_snapshot_id)
                                   : "is required"},
        {"data_snapshot_id",
         img->data_snapshot_id ? spec_check_id(SPEC_ID_SNAPSHOT, img->data_snapshot_id) : NULL},
        {"resource_group_id", img->resource_group_id
                                  ? spec_check_id(SPEC_ID_RESOURCE_GROUP, img->resource_group_id)
                                  : NULL},
        {"description",
         img->description &&
                 spec_utf8_chars(img->description, strlen(img->description)) > SPEC_MAX_DESCRIPTION
             ? "is longer than 256 characters"
             : NULL},
        {"tags", check_entry_tags(img)},
        {"share_to_accounts",
         img->n_share_to_accounts > SPEC_MAX_SHARE_ACCOUNTS ? "names more than 50 accounts" : NULL},
    };
    for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
        if (checks[i].why != NULL) {
            *ret_field = checks[i].field;
            return checks[i].why;
        }
    }
    for (size_t i = 0; i < img->n_share_to_accounts; i++) {
        if (!account_id_valid(img->share_to_accounts[i])) {
            *ret_field = "share_to_accounts";
            return "an account id is not 1-20 digits";
        }
    }
    return NULL;
}
