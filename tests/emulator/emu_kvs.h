/* The emulator's ordered list of string pairs: a request's query, form body and headers, plus
 * the two encodings the vendor's signature pages define over such a list (RFC 3986 percent
 * encoding and the sorted canonical query). Independent of the product's provider/ code on
 * purpose: the emulator is the oracle the client is checked against. */
#ifndef EMU_KVS_H
#define EMU_KVS_H

#include <stddef.h>

typedef struct emu_kv {
    char *key;
    char *value;
} emu_kv;

typedef struct emu_kvs {
    emu_kv *v;
    size_t n;
    size_t cap;
} emu_kvs;

/* Appends copies of key and value (NULL value means ""). Returns 0 or -ENOMEM. */
int emu_kvs_add(emu_kvs *kvs, const char *key, const char *value);
/* The first value of key (exact match), borrowed; NULL when absent. */
const char *emu_kvs_get(const emu_kvs *kvs, const char *key);
/* The same with a case-insensitive key, for HTTP header names. */
const char *emu_kvs_get_ci(const emu_kvs *kvs, const char *key);
/* Frees the entries; the struct itself is the caller's. */
void emu_kvs_clear(emu_kvs *kvs);

/* Appends the pairs of "a=1&b=%20x" ('+' is a space; "a" alone is a=""). Returns 0, -EINVAL on a
 * malformed or NUL escape, -ENOMEM. */
int emu_kvs_parse_urlencoded(emu_kvs *kvs, const char *s, size_t len);

/* Percent-encodes s[0..len) as the signature pages define it: A-Za-z0-9 - _ . ~ stay, every other
 * byte becomes %XY (uppercase). Returns 0 and a string the caller frees, or -ENOMEM. */
int emu_pct_encode(const char *s, size_t len, char **ret);
/* Encoded name=value pairs sorted by encoded name (then value), joined with '&', leaving out
 * skip_key (may be NULL). Returns 0 and a string the caller frees, or -ENOMEM. */
int emu_canonical_query(const emu_kvs *kvs, const char *skip_key, char **ret);

#endif
