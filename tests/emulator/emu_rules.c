/* The vendor's value rules (see emu_rules.h). The pages state the prefixes and URL schemes in
 * lower case and say nothing about case, so the checks match them literally. */
#include "emu_rules.h"

#include <stdbool.h>
#include <string.h>

size_t emu_utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    }
    return n;
}

const char *emu_check_image_name(const char *name)
{
    static const char alnum[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    size_t len = name ? strlen(name) : 0;
    if (len < 2 || len > 128) {
        return "must be 2 to 128 characters long";
    }
    if (!strchr(alnum, name[0])) {
        return "must start with a letter or a digit";
    }
    for (size_t i = 0; i < len; i++) {
        if (!strchr(alnum, name[i]) && !strchr(":_-", name[i])) {
            return "may contain only letters, digits, ':', '_' and '-'";
        }
    }
    return NULL;
}

static bool has_url(const char *s)
{
    return strstr(s, "http://") != NULL || strstr(s, "https://") != NULL;
}

const char *emu_check_tag_key(const char *key)
{
    if (!key || !*key) {
        return "must not be empty";
    }
    if (emu_utf8_chars(key, strlen(key)) > 64) {
        return "must be at most 64 characters long";
    }
    if (strncmp(key, "acs:", 4) == 0 || strncmp(key, "aliyun", 6) == 0) {
        return "must not start with 'acs:' or 'aliyun'";
    }
    if (has_url(key)) {
        return "must not contain 'http://' or 'https://'";
    }
    return NULL;
}

const char *emu_check_tag_value(const char *value)
{
    if (!value) {
        return NULL;
    }
    if (emu_utf8_chars(value, strlen(value)) > 64) {
        return "must be at most 64 characters long";
    }
    if (has_url(value)) {
        return "must not contain 'http://' or 'https://'";
    }
    return NULL;
}
