/* The emulator's string-pair list and the vendor's encodings over it (see emu_kvs.h). */
#include "emu_kvs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int emu_kvs_add(emu_kvs *kvs, const char *key, const char *value)
{
    if (kvs->n == kvs->cap) {
        size_t cap = kvs->cap ? kvs->cap * 2 : 8;
        emu_kv *v = realloc(kvs->v, cap * sizeof(*v));
        if (!v) {
            return -ENOMEM;
        }
        kvs->v = v;
        kvs->cap = cap;
    }
    char *k = strdup(key);
    char *val = strdup(value ? value : "");
    if (!k || !val) {
        free(k);
        free(val);
        return -ENOMEM;
    }
    kvs->v[kvs->n++] = (emu_kv){.key = k, .value = val};
    return 0;
}

const char *emu_kvs_get(const emu_kvs *kvs, const char *key)
{
    for (size_t i = 0; kvs && i < kvs->n; i++) {
        if (strcmp(kvs->v[i].key, key) == 0) {
            return kvs->v[i].value;
        }
    }
    return NULL;
}

const char *emu_kvs_get_ci(const emu_kvs *kvs, const char *key)
{
    for (size_t i = 0; kvs && i < kvs->n; i++) {
        if (strcasecmp(kvs->v[i].key, key) == 0) {
            return kvs->v[i].value;
        }
    }
    return NULL;
}

void emu_kvs_clear(emu_kvs *kvs)
{
    for (size_t i = 0; i < kvs->n; i++) {
        free(kvs->v[i].key);
        free(kvs->v[i].value);
    }
    free(kvs->v);
    *kvs = (emu_kvs){0};
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Decodes one form-encoded name or value into a string the caller frees. A NUL byte cannot live
 * in a C string, so one (raw or escaped) is refused instead of truncating silently. */
static int form_decode(const char *s, size_t len, char **ret)
{
    char *out = malloc(len + 1);
    if (!out) {
        return -ENOMEM;
    }
    size_t w = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            int hi = i + 2 < len ? hex_digit(s[i + 1]) : -1;
            int lo = i + 2 < len ? hex_digit(s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi | lo) == 0) {
                free(out);
                return -EINVAL;
            }
            out[w++] = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '\0') {
            free(out);
            return -EINVAL;
        } else {
            out[w++] = c == '+' ? ' ' : c;
        }
    }
    out[w] = '\0';
    *ret = out;
    return 0;
}

int emu_kvs_parse_urlencoded(emu_kvs *kvs, const char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        const char *amp = memchr(s + i, '&', len - i);
        size_t end = amp ? (size_t)(amp - s) : len;
        if (end > i) {
            const char *eq = memchr(s + i, '=', end - i);
            size_t klen = eq ? (size_t)(eq - (s + i)) : end - i;
            char *k = NULL, *v = NULL;
            int rc = form_decode(s + i, klen, &k);
            if (rc == 0) {
                rc = eq ? form_decode(eq + 1, end - klen - i - 1, &v) : form_decode("", 0, &v);
            }
            if (rc == 0) {
                rc = emu_kvs_add(kvs, k, v);
            }
            free(k);
            free(v);
            if (rc < 0) {
                return rc;
            }
        }
        i = end + 1;
    }
    return 0;
}

int emu_pct_encode(const char *s, size_t len, char **ret)
{
    char *out = malloc(len * 3 + 1);
    if (!out) {
        return -ENOMEM;
    }
    size_t w = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            out[w++] = (char)c;
        } else {
            w += (size_t)sprintf(out + w, "%%%02X", c);
        }
    }
    out[w] = '\0';
    *ret = out;
    return 0;
}

/* One encoded pair, for sorting. */
typedef struct enc_pair {
    char *k;
    char *v;
} enc_pair;

static int pair_cmp(const void *a, const void *b)
{
    const enc_pair *x = a, *y = b;
    int c = strcmp(x->k, y->k);
    return c ? c : strcmp(x->v, y->v);
}

int emu_canonical_query(const emu_kvs *kvs, const char *skip_key, char **ret)
{
    enc_pair *p = calloc(kvs->n + 1, sizeof(*p));
    if (!p) {
        return -ENOMEM;
    }
    size_t n = 0, total = 1;
    int rc = 0;
    for (size_t i = 0; i < kvs->n && rc == 0; i++) {
        if (skip_key && strcmp(kvs->v[i].key, skip_key) == 0) {
            continue;
        }
        rc = emu_pct_encode(kvs->v[i].key, strlen(kvs->v[i].key), &p[n].k);
        if (rc == 0) {
            rc = emu_pct_encode(kvs->v[i].value, strlen(kvs->v[i].value), &p[n].v);
        }
        if (p[n].k) {
            total += strlen(p[n].k) + (p[n].v ? strlen(p[n].v) : 0) + 2;
            n++;
        }
    }
    char *out = rc == 0 ? malloc(total) : NULL;
    if (out) {
        qsort(p, n, sizeof(*p), pair_cmp);
        size_t w = 0;
        for (size_t i = 0; i < n; i++) {
            w += (size_t)sprintf(out + w, "%s%s=%s", i ? "&" : "", p[i].k, p[i].v);
        }
        out[w] = '\0';
        *ret = out;
    } else {
        rc = -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        free(p[i].k);
        free(p[i].v);
    }
    free(p);
    return rc;
}
