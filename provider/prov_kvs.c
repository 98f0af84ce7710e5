/* The ordered string-pair list behind request parameters, headers and form fields, and the
 * x-www-form-urlencoded parser the emulator and the tests use to read requests back. */
#include "prov_kvs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Makes room for one more entry, growing geometrically. */
static int kvs_reserve(prov_kvs *kvs)
{
    if (kvs->n < kvs->cap)
        return 0;
    size_t cap = kvs->cap ? kvs->cap * 2 : 8;
    prov_kv *v = realloc(kvs->v, cap * sizeof(*v));
    if (v == NULL)
        return -ENOMEM;
    kvs->v = v;
    kvs->cap = cap;
    return 0;
}

/* Appends an entry taking ownership of key and value (both malloc'd); frees them on failure. */
static int kvs_add_owned(prov_kvs *kvs, char *key, char *value)
{
    if (key == NULL || value == NULL || kvs_reserve(kvs) < 0) {
        free(key);
        free(value);
        return -ENOMEM;
    }
    kvs->v[kvs->n].key = key;
    kvs->v[kvs->n].value = value;
    kvs->n++;
    return 0;
}

int prov_kvs_add(prov_kvs *kvs, const char *key, const char *value)
{
    if (kvs == NULL || key == NULL)
        return -EINVAL;
    return kvs_add_owned(kvs, strdup(key), strdup(value ? value : ""));
}

int prov_kvs_set(prov_kvs *kvs, const char *key, const char *value)
{
    if (kvs == NULL || key == NULL)
        return -EINVAL;
    for (size_t i = 0; i < kvs->n; i++) {
        if (strcmp(kvs->v[i].key, key) == 0) {
            char *copy = strdup(value ? value : "");
            if (copy == NULL)
                return -ENOMEM;
            free(kvs->v[i].value);
            kvs->v[i].value = copy;
            return 0;
        }
    }
    return prov_kvs_add(kvs, key, value);
}

const char *prov_kvs_get(const prov_kvs *kvs, const char *key)
{
    if (kvs == NULL || key == NULL)
        return NULL;
    for (size_t i = 0; i < kvs->n; i++)
        if (strcmp(kvs->v[i].key, key) == 0)
            return kvs->v[i].value;
    return NULL;
}

const char *prov_kvs_get_ci(const prov_kvs *kvs, const char *key)
{
    if (kvs == NULL || key == NULL)
        return NULL;
    for (size_t i = 0; i < kvs->n; i++)
        if (strcasecmp(kvs->v[i].key, key) == 0)
            return kvs->v[i].value;
    return NULL;
}

/* Removes every entry with this key (exact match), keeping the order of the others. */
void prov_kvs_remove(prov_kvs *kvs, const char *key)
{
    if (kvs == NULL || key == NULL)
        return;
    size_t w = 0;
    for (size_t i = 0; i < kvs->n; i++) {
        if (strcmp(kvs->v[i].key, key) == 0) {
            free(kvs->v[i].key);
            free(kvs->v[i].value);
            continue;
        }
        kvs->v[w++] = kvs->v[i];
    }
    kvs->n = w;
}

void prov_kvs_clear(prov_kvs *kvs)
{
    if (kvs == NULL)
        return;
    /* Values may be signatures, tokens or secrets (headers, V1 parameters): wiped. */
    for (size_t i = 0; i < kvs->n; i++) {
        free(kvs->v[i].key);
        explicit_bzero(kvs->v[i].value, strlen(kvs->v[i].value));
        free(kvs->v[i].value);
    }
    free(kvs->v);
    kvs->v = NULL;
    kvs->n = 0;
    kvs->cap = 0;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes one name or value: '+' is a space, %XY needs two hex digits. A NUL byte, raw or
 * escaped, cannot live in a C string and is refused rather than silently truncating. */
static int url_decode(const char *s, size_t len, char **ret)
{
    char *out = malloc(len + 1);
    if (out == NULL)
        return -ENOMEM;
    size_t w = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= len) {
                free(out);
                return -EINVAL;
            }
            int hi = hexval((unsigned char)s[i + 1]);
            int lo = hexval((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                free(out);
                return -EINVAL;
            }
            out[w++] = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+') {
            out[w++] = ' ';
        } else if (c == '\0') {
            free(out);
            return -EINVAL;
        } else {
            out[w++] = (char)c;
        }
    }
    out[w] = '\0';
    *ret = out;
    return 0;
}

/* Called by the emulator for query strings and form bodies and by tests that read captured
 * requests. Empty segments ("a=1&&b") are skipped; "a" alone means a="". On error the entries
 * already appended stay in kvs (the caller frees kvs either way). */
int prov_kvs_parse_urlencoded(prov_kvs *kvs, const char *s, size_t len)
{
    if (kvs == NULL || (s == NULL && len > 0))
        return -EINVAL;
    size_t i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && s[end] != '&')
            end++;
        if (end > i) {
            size_t eq = i;
            while (eq < end && s[eq] != '=')
                eq++;
            char *key = NULL;
            char *value = NULL;
            int r = url_decode(s + i, eq - i, &key);
            if (r < 0)
                return r;
            if (eq < end)
                r = url_decode(s + eq + 1, end - eq - 1, &value);
            else
                r = (value = strdup("")) ? 0 : -ENOMEM;
            if (r < 0) {
                free(key);
                return r;
            }
            r = kvs_add_owned(kvs, key, value);
            if (r < 0)
                return r;
        }
        i = end + 1;
    }
    return 0;
}
