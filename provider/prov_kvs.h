/* An ordered list of string pairs: request parameters, headers, form fields. Used by the signer,
 * the client, the emulator's request parser and the tests. */
#ifndef PROV_KVS_H
#define PROV_KVS_H

#include <stddef.h>

typedef struct prov_kv {
    char *key;
    char *value;
} prov_kv;

typedef struct prov_kvs {
    prov_kv *v;
    size_t n;
    size_t cap;
} prov_kvs;

/* Appends a copy of key/value (value may be ""). Returns 0 or -ENOMEM. */
int prov_kvs_add(prov_kvs *kvs, const char *key, const char *value);
/* Replaces the first entry with this key, or appends. */
int prov_kvs_set(prov_kvs *kvs, const char *key, const char *value);
/* First value for key (exact, case-sensitive), NULL when absent. */
const char *prov_kvs_get(const prov_kvs *kvs, const char *key);
/* Case-insensitive lookup, for HTTP header names. */
const char *prov_kvs_get_ci(const prov_kvs *kvs, const char *key);
void prov_kvs_remove(prov_kvs *kvs, const char *key);
void prov_kvs_clear(prov_kvs *kvs); /* frees entries; the struct itself is the caller's */

/* Parses "a=1&b=%20x" (query or x-www-form-urlencoded body; '+' is a space) and appends the
 * decoded pairs. Returns 0, -EINVAL on a malformed escape, -ENOMEM. */
int prov_kvs_parse_urlencoded(prov_kvs *kvs, const char *s, size_t len);

#endif
