/* Request signing (V3 ACS3-HMAC-SHA256 and V1 HMAC-SHA1) and the matching verifiers, over
 * OpenSSL. The client signs with these functions (provider/README.md "Signatures"); the emulator
 * verifies with its own implementation written from the vendor's API pages (emu_sig.c), and
 * tests/unit/test_golden_rules.c holds both to the vendor's worked examples. */
#include "prov_sig.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#define V3_ALGORITHM "ACS3-HMAC-SHA256"

/* A growable string used to assemble canonical forms; on allocation failure it remembers the
 * error and later appends become no-ops, so callers check once at the end. */
typedef struct sbuf {
    char *s;
    size_t n;
    size_t cap;
    bool oom;
} sbuf;

static void sb_append(sbuf *b, const char *s, size_t len)
{
    if (b->oom)
        return;
    if (b->n + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 128;
        while (cap < b->n + len + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (p == NULL) {
            b->oom = true;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, len);
    b->n += len;
    b->s[b->n] = '\0';
}

static void sb_puts(sbuf *b, const char *s)
{
    sb_append(b, s, strlen(s));
}

/* Hands the buffer to *ret (an empty string when nothing was appended) or frees it on OOM. */
static int sb_finish(sbuf *b, char **ret)
{
    if (!b->oom && b->s == NULL)
        sb_append(b, "", 0);
    if (b->oom) {
        free(b->s);
        return -ENOMEM;
    }
    *ret = b->s;
    return 0;
}

static void hex_encode(const unsigned char *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0xf];
    }
    out[2 * len] = '\0';
}

static bool is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

int prov_pct_encode(const char *s, size_t len, char **ret)
{
    static const char digits[] = "0123456789ABCDEF";
    if (s == NULL && len > 0)
        return -EINVAL;
    char *out = malloc(len * 3 + 1);
    if (out == NULL)
        return -ENOMEM;
    size_t w = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_unreserved(c)) {
            out[w++] = (char)c;
        } else {
            out[w++] = '%';
            out[w++] = digits[c >> 4];
            out[w++] = digits[c & 0xf];
        }
    }
    out[w] = '\0';
    *ret = out;
    return 0;
}

typedef struct enc_pair {
    char *k;
    char *v;
} enc_pair;

static int enc_pair_cmp(const void *a, const void *b)
{
    const enc_pair *x = a;
    const enc_pair *y = b;
    int c = strcmp(x->k, y->k);
    return c ? c : strcmp(x->v, y->v);
}

/* Used by both signature versions: the query (V3) or every parameter (V1) encoded, sorted in
 * byte order of the encoded names then values, and '&'-joined. */
int prov_canonical_query(const prov_kvs *params, const char *skip_key, char **ret)
{
    if (params == NULL || ret == NULL)
        return -EINVAL;
    enc_pair *pairs = calloc(params->n ? params->n : 1, sizeof(*pairs));
    if (pairs == NULL)
        return -ENOMEM;
    size_t n = 0;
    int r = 0;
    for (size_t i = 0; i < params->n && r == 0; i++) {
        const prov_kv *kv = &params->v[i];
        if (skip_key != NULL && strcmp(kv->key, skip_key) == 0)
            continue;
        r = prov_pct_encode(kv->key, strlen(kv->key), &pairs[n].k);
        if (r == 0) {
            r = prov_pct_encode(kv->value, strlen(kv->value), &pairs[n].v);
            if (r < 0)
                free(pairs[n].k);
            else
                n++;
        }
    }
    sbuf b = {0};
    if (r == 0) {
        qsort(pairs, n, sizeof(*pairs), enc_pair_cmp);
        for (size_t i = 0; i < n; i++) {
            if (i > 0)
                sb_puts(&b, "&");
            sb_puts(&b, pairs[i].k);
            sb_puts(&b, "=");
            sb_puts(&b, pairs[i].v);
        }
        r = sb_finish(&b, ret);
    }
    for (size_t i = 0; i < n; i++) {
        free(pairs[i].k);
        free(pairs[i].v);
    }
    free(pairs);
    return r;
}

void prov_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256(data ? data : (const void *)"", len, md);
    hex_encode(md, sizeof(md), out);
}

int prov_random_nonce(char out[33])
{
    unsigned char raw[16];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return -EIO;
    hex_encode(raw, sizeof(raw), out);
    OPENSSL_cleanse(raw, sizeof(raw));
    return 0;
}

void prov_format_utc(time_t t, char out[21])
{
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm) != 20)
        memcpy(out, "1970-01-01T00:00:00Z", 21);
}

/* Reads a fixed-width decimal field; -1 when any character is not a digit. */
static int read_digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* Strict parser for the API's timestamps and the metadata service's Expiration; it refuses
 * out-of-range fields (Feb 30, 25:00) by checking that the broken-down time round-trips. */
int prov_parse_utc(const char *s, time_t *ret)
{
    if (s == NULL || ret == NULL || strlen(s) != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' ||
        s[13] != ':' || s[16] != ':' || s[19] != 'Z')
        return -EINVAL;
    int year = read_digits(s, 4), mon = read_digits(s + 5, 2), day = read_digits(s + 8, 2);
    int hour = read_digits(s + 11, 2), min = read_digits(s + 14, 2), sec = read_digits(s + 17, 2);
    if (year < 1970 || mon < 1 || mon > 12 || day < 1 || day > 31 || hour < 0 || hour > 23 ||
        min < 0 || min > 59 || sec < 0 || sec > 60)
        return -EINVAL;
    struct tm tm = {0};
    tm.tm_year = year - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = min;
    tm.tm_sec = sec == 60 ? 59 : sec;
    time_t t = timegm(&tm);
    struct tm check;
    if (t == (time_t)-1 || gmtime_r(&t, &check) == NULL || check.tm_mday != day ||
        check.tm_mon != mon - 1)
        return -EINVAL;
    *ret = t;
    return 0;
}

/* ---- V1 ---- */

int prov_sig_v1_string_to_sign(const char *method, const prov_kvs *params, char **ret)
{
    if (method == NULL || params == NULL || ret == NULL)
        return -EINVAL;
    char *canonical = NULL;
    char *encoded = NULL;
    int r = prov_canonical_query(params, "Signature", &canonical);
    if (r < 0)
        return r;
    r = prov_pct_encode(canonical, strlen(canonical), &encoded);
    free(canonical);
    if (r < 0)
        return r;
    sbuf b = {0};
    sb_puts(&b, method);
    sb_puts(&b, "&%2F&");
    sb_puts(&b, encoded);
    free(encoded);
    return sb_finish(&b, ret);
}

int prov_sig_v1_signature(const char *secret, const char *string_to_sign, char **ret)
{
    if (secret == NULL || string_to_sign == NULL || ret == NULL)
        return -EINVAL;
    size_t slen = strlen(secret);
    char *key = malloc(slen + 2);
    if (key == NULL)
        return -ENOMEM;
    memcpy(key, secret, slen);
    key[slen] = '&';
    key[slen + 1] = '\0';
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    unsigned char *ok =
        HMAC(EVP_sha1(), key, (int)(slen + 1), (const unsigned char *)string_to_sign,
             strlen(string_to_sign), md, &mdlen);
    OPENSSL_cleanse(key, slen + 1);
    free(key);
    if (ok == NULL)
        return -EIO;
    char *out = malloc(4 * ((mdlen + 2) / 3) + 1);
    if (out == NULL)
        return -ENOMEM;
    EVP_EncodeBlock((unsigned char *)out, md, (int)mdlen);
    *ret = out;
    return 0;
}

/* One parameter or header a signer owns; value NULL leaves it out (the optional security token
 * and content type). Both strings are borrowed. */
typedef struct owned_kv {
    const char *key;
    const char *value;
} owned_kv;

/* Sets each pair that has a value, in order, with prov_kvs_set (replacing a value the list already
 * holds), and stops at the first failure. Exists so that prov_sig_v1_sign and prov_sig_v3_sign
 * list what they own as a table; kvs is the caller's. */
static int set_owned(prov_kvs *kvs, const owned_kv *pairs, size_t n)
{
    int r = 0;
    for (size_t i = 0; r == 0 && i < n; i++)
        if (pairs[i].value != NULL)
            r = prov_kvs_set(kvs, pairs[i].key, pairs[i].value);
    return r;
}

/* Called by the client for every V1 request (and every retry, with a fresh nonce). Existing
 * common parameters are replaced, so a params list can be re-signed. */
int prov_sig_v1_sign(prov_kvs *params, const char *method, const char *access_key_id,
                     const char *secret, const char *token, const char *nonce,
                     const char *timestamp)
{
    if (params == NULL || method == NULL || access_key_id == NULL || secret == NULL ||
        nonce == NULL || timestamp == NULL)
        return -EINVAL;
    prov_kvs_remove(params, "Signature");
    prov_kvs_remove(params, "SecurityToken");
    const owned_kv owned[] = {
        {"AccessKeyId", access_key_id}, {"SignatureMethod", "HMAC-SHA1"},
        {"SignatureVersion", "1.0"},    {"SignatureNonce", nonce},
        {"Timestamp", timestamp},       {"SecurityToken", token},
    };
    int r = set_owned(params, owned, sizeof(owned) / sizeof(owned[0]));
    if (r < 0)
        return r;
    char *sts = NULL;
    char *sig = NULL;
    r = prov_sig_v1_string_to_sign(method, params, &sts);
    if (r < 0)
        return r;
    r = prov_sig_v1_signature(secret, sts, &sig);
    free(sts);
    if (r < 0)
        return r;
    r = prov_kvs_add(params, "Signature", sig);
    free(sig);
    return r;
}

/* ---- V3 ---- */

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Copies value without leading and trailing blanks (the canonical header value). */
static char *trimmed_copy(const char *v)
{
    while (*v == ' ' || *v == '\t')
        v++;
    size_t len = strlen(v);
    while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    return strndup(v, len);
}

/* The canonical value of one header: every value the request carries under that name
 * (case-insensitively), each trimmed, sorted and ','-joined as the SDKs do; -EINVAL when the
 * request does not carry the header at all. */
static int header_values(const prov_kvs *headers, const char *name, char **ret)
{
    char **vals = calloc(headers->n ? headers->n : 1, sizeof(*vals));
    if (vals == NULL)
        return -ENOMEM;
    size_t n = 0;
    int r = 0;
    for (size_t i = 0; i < headers->n && r == 0; i++) {
        if (strcasecmp(headers->v[i].key, name) != 0)
            continue;
        vals[n] = trimmed_copy(headers->v[i].value);
        if (vals[n] == NULL)
            r = -ENOMEM;
        else
            n++;
    }
    if (r == 0 && n == 0)
        r = -EINVAL;
    if (r == 0) {
        qsort(vals, n, sizeof(*vals), str_cmp);
        sbuf b = {0};
        for (size_t i = 0; i < n; i++) {
            if (i > 0)
                sb_puts(&b, ",");
            sb_puts(&b, vals[i]);
        }
        r = sb_finish(&b, ret);
    }
    for (size_t i = 0; i < n; i++)
        free(vals[i]);
    free(vals);
    return r;
}

int prov_sig_v3_canonical_request(const char *method, const char *path, const prov_kvs *query,
                                  const prov_kvs *headers, const char *signed_headers,
                                  const char *body_sha256_hex, char **ret)
{
    if (method == NULL || headers == NULL || signed_headers == NULL || body_sha256_hex == NULL ||
        ret == NULL)
        return -EINVAL;
    prov_kvs empty = {0};
    char *cq = NULL;
    int r = prov_canonical_query(query ? query : &empty, NULL, &cq);
    if (r < 0)
        return r;
    sbuf b = {0};
    sb_puts(&b, method);
    sb_puts(&b, "\n");
    sb_puts(&b, path && *path ? path : "/");
    sb_puts(&b, "\n");
    sb_puts(&b, cq);
    sb_puts(&b, "\n");
    free(cq);

    /* CanonicalHeaders follows the SignedHeaders list, which the signer builds sorted. */
    const char *p = signed_headers;
    while (r == 0) {
        const char *semi = strchr(p, ';');
        size_t len = semi ? (size_t)(semi - p) : strlen(p);
        char *name = strndup(p, len);
        if (name == NULL) {
            r = -ENOMEM;
            break;
        }
        char *value = NULL;
        r = len ? header_values(headers, name, &value) : -EINVAL;
        if (r == 0) {
            for (char *c = name; *c; c++)
                *c = (char)tolower((unsigned char)*c);
            sb_puts(&b, name);
            sb_puts(&b, ":");
            sb_puts(&b, value);
            sb_puts(&b, "\n");
            free(value);
        }
        free(name);
        if (semi == NULL)
            break;
        p = semi + 1;
    }
    if (r < 0) {
        free(b.s);
        return r;
    }
    sb_puts(&b, "\n");
    /* The list itself goes in lowercase, as the signer produced it. */
    for (const char *c = signed_headers; *c; c++) {
        char lc = (char)tolower((unsigned char)*c);
        sb_append(&b, &lc, 1);
    }
    sb_puts(&b, "\n");
    sb_puts(&b, body_sha256_hex);
    return sb_finish(&b, ret);
}

int prov_sig_v3_string_to_sign(const char *canonical_request, char **ret)
{
    if (canonical_request == NULL || ret == NULL)
        return -EINVAL;
    char hex[65];
    prov_sha256_hex(canonical_request, strlen(canonical_request), hex);
    sbuf b = {0};
    sb_puts(&b, V3_ALGORITHM "\n");
    sb_puts(&b, hex);
    return sb_finish(&b, ret);
}

int prov_sig_v3_signature(const char *secret, const char *string_to_sign, char **ret)
{
    if (secret == NULL || string_to_sign == NULL || ret == NULL)
        return -EINVAL;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)string_to_sign,
             strlen(string_to_sign), md, &mdlen) == NULL)
        return -EIO;
    char *out = malloc(2 * mdlen + 1);
    if (out == NULL)
        return -ENOMEM;
    hex_encode(md, mdlen, out);
    *ret = out;
    return 0;
}

static bool v3_header_is_signed(const char *name)
{
    return strncasecmp(name, "x-acs-", 6) == 0 || strcasecmp(name, "host") == 0 ||
           strcasecmp(name, "content-type") == 0;
}

/* The SignedHeaders list for a request about to be signed: every x-acs-*, host and content-type
 * header present, lowercased, sorted, without duplicates, ';'-joined. */
static int v3_signed_header_list(const prov_kvs *headers, char **ret)
{
    char **names = calloc(headers->n ? headers->n : 1, sizeof(*names));
    if (names == NULL)
        return -ENOMEM;
    size_t n = 0;
    int r = 0;
    for (size_t i = 0; i < headers->n; i++) {
        if (!v3_header_is_signed(headers->v[i].key))
            continue;
        char *name = strdup(headers->v[i].key);
        if (name == NULL) {
            r = -ENOMEM;
            break;
        }
        for (char *c = name; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        names[n++] = name;
    }
    sbuf b = {0};
    if (r == 0) {
        qsort(names, n, sizeof(*names), str_cmp);
        bool first = true;
        for (size_t i = 0; i < n; i++) {
            if (i > 0 && strcmp(names[i], names[i - 1]) == 0)
                continue;
            if (!first)
                sb_puts(&b, ";");
            sb_puts(&b, names[i]);
            first = false;
        }
        r = sb_finish(&b, ret);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return r;
}

/* The V3 signature of a request whose signed header list and body hash are known: canonical
 * request, string to sign, HMAC-SHA256. Exists so that prov_sig_v3_sign (which signs) and
 * prov_sig_v3_verify (which recomputes what it checks) build it the same way. All inputs are
 * borrowed; *ret_string_to_sign (a verifier shows it on a mismatch) and *ret_signature: caller
 * frees, both written only on success. */
static int v3_compute(const char *method, const char *path, const prov_kvs *query,
                      const prov_kvs *headers, const char *signed_headers, const char *body_hex,
                      const char *secret, char **ret_string_to_sign, char **ret_signature)
{
    char *creq = NULL;
    char *sts = NULL;
    char *sig = NULL;
    int r = prov_sig_v3_canonical_request(method, path, query, headers, signed_headers, body_hex,
                                          &creq);
    if (r == 0)
        r = prov_sig_v3_string_to_sign(creq, &sts);
    if (r == 0)
        r = prov_sig_v3_signature(secret, sts, &sig);
    free(creq);
    if (r < 0) {
        free(sts);
        return r;
    }
    *ret_string_to_sign = sts;
    *ret_signature = sig;
    return 0;
}

/* Called by the client for every V3 request and every retry. Headers the caller already set
 * (for instance extra x-acs-* headers) are kept and signed; the ones this function owns are
 * replaced, and any previous authorization is dropped first. */
int prov_sig_v3_sign(prov_kvs *headers, const char *method, const char *host, const char *path,
                     const prov_kvs *query, const char *body, size_t body_len,
                     const char *content_type, const char *action, const char *version,
                     const char *access_key_id, const char *secret, const char *token,
                     const char *nonce, const char *date)
{
    if (headers == NULL || method == NULL || host == NULL || action == NULL || version == NULL ||
        access_key_id == NULL || secret == NULL || nonce == NULL || date == NULL ||
        (body == NULL && body_len > 0))
        return -EINVAL;
    char body_hex[65];
    prov_sha256_hex(body, body_len, body_hex);
    prov_kvs_remove(headers, "authorization");
    prov_kvs_remove(headers, "x-acs-security-token");
    const owned_kv owned[] = {
        {"host", host},
        {"x-acs-action", action},
        {"x-acs-version", version},
        {"x-acs-date", date},
        {"x-acs-signature-nonce", nonce},
        {"x-acs-content-sha256", body_hex},
        {"x-acs-security-token", token},
        {"content-type", content_type},
    };
    int r = set_owned(headers, owned, sizeof(owned) / sizeof(owned[0]));
    if (r < 0)
        return r;

    char *signed_headers = NULL;
    char *sts = NULL;
    char *sig = NULL;
    r = v3_signed_header_list(headers, &signed_headers);
    if (r == 0)
        r = v3_compute(method, path, query, headers, signed_headers, body_hex, secret, &sts, &sig);
    if (r == 0) {
        sbuf b = {0};
        sb_puts(&b, V3_ALGORITHM " Credential=");
        sb_puts(&b, access_key_id);
        sb_puts(&b, ",SignedHeaders=");
        sb_puts(&b, signed_headers);
        sb_puts(&b, ",Signature=");
        sb_puts(&b, sig);
        char *authz = NULL;
        r = sb_finish(&b, &authz);
        if (r == 0)
            r = prov_kvs_add(headers, "authorization", authz);
        free(authz);
    }
    free(signed_headers);
    free(sts);
    free(sig);
    return r;
}

/* ---- Verification ---- */

/* Constant-time comparison of two signatures given as strings. */
static bool sig_equal(const char *a, const char *b)
{
    size_t la = strlen(a);
    return la == strlen(b) && CRYPTO_memcmp(a, b, la) == 0;
}

/* Used by the emulator for V1 requests: params holds the query and form body together. */
int prov_sig_v1_verify(const char *method, const prov_kvs *params, const char *secret,
                       char **ret_string_to_sign)
{
    if (method == NULL || params == NULL || secret == NULL)
        return -EINVAL;
    const char *given = prov_kvs_get(params, "Signature");
    const char *smethod = prov_kvs_get(params, "SignatureMethod");
    const char *sversion = prov_kvs_get(params, "SignatureVersion");
    if (given == NULL || *given == '\0' || prov_kvs_get(params, "AccessKeyId") == NULL ||
        smethod == NULL || strcmp(smethod, "HMAC-SHA1") != 0 || sversion == NULL ||
        strcmp(sversion, "1.0") != 0)
        return -EINVAL;
    char *sts = NULL;
    char *sig = NULL;
    int r = prov_sig_v1_string_to_sign(method, params, &sts);
    if (r < 0)
        return r;
    r = prov_sig_v1_signature(secret, sts, &sig);
    if (r < 0) {
        free(sts);
        return r;
    }
    bool ok = sig_equal(sig, given);
    free(sig);
    if (ok) {
        free(sts);
        return 0;
    }
    if (ret_string_to_sign != NULL)
        *ret_string_to_sign = sts;
    else
        free(sts);
    return -EPERM;
}

/* Finds "name=" in one comma-separated field of the Authorization value and copies its value. */
static int authz_field(const char *fields, const char *name, char **ret)
{
    size_t nlen = strlen(name);
    const char *p = fields;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len > 0 && p[len - 1] == ' ')
            len--;
        if (len > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
            if (len == nlen + 1)
                return -EINVAL;
            char *v = strndup(p + nlen + 1, len - nlen - 1);
            if (v == NULL)
                return -ENOMEM;
            *ret = v;
            return 0;
        }
        if (end == NULL)
            break;
        p = end + 1;
    }
    return -EINVAL;
}

int prov_sig_v3_parse_authorization(const char *authorization, char **ret_key_id,
                                    char **ret_signed_headers, char **ret_signature)
{
    if (authorization == NULL)
        return -EINVAL;
    size_t alen = strlen(V3_ALGORITHM);
    if (strncmp(authorization, V3_ALGORITHM, alen) != 0 || authorization[alen] != ' ')
        return -EINVAL;
    const char *fields = authorization + alen + 1;
    char *id = NULL, *sh = NULL, *sig = NULL;
    int r = authz_field(fields, "Credential", &id);
    if (r == 0)
        r = authz_field(fields, "SignedHeaders", &sh);
    if (r == 0)
        r = authz_field(fields, "Signature", &sig);
    if (r < 0) {
        free(id);
        free(sh);
        free(sig);
        return r;
    }
    if (ret_key_id)
        *ret_key_id = id;
    else
        free(id);
    if (ret_signed_headers)
        *ret_signed_headers = sh;
    else
        free(sh);
    if (ret_signature)
        *ret_signature = sig;
    else
        free(sig);
    return 0;
}

/* Used by the emulator for V3 requests. The canonical request is rebuilt from the request's own
 * SignedHeaders list and the hash of the body actually received; a claimed
 * x-acs-content-sha256 that differs from that hash is a mismatch. */
int prov_sig_v3_verify(const char *method, const char *path, const prov_kvs *query,
                       const prov_kvs *headers, const char *body, size_t body_len,
                       const char *secret, char **ret_string_to_sign)
{
    if (method == NULL || headers == NULL || secret == NULL || (body == NULL && body_len > 0))
        return -EINVAL;
    char *signed_headers = NULL;
    char *given = NULL;
    int r = prov_sig_v3_parse_authorization(prov_kvs_get_ci(headers, "authorization"), NULL,
                                            &signed_headers, &given);
    if (r < 0)
        return r;
    char body_hex[65];
    prov_sha256_hex(body, body_len, body_hex);
    const char *claimed = prov_kvs_get_ci(headers, "x-acs-content-sha256");
    bool body_ok = claimed == NULL || strcasecmp(claimed, body_hex) == 0;

    char *sts = NULL;
    char *sig = NULL;
    r = v3_compute(method, path, query, headers, signed_headers, body_hex, secret, &sts, &sig);
    if (r == 0 && !(body_ok && sig_equal(sig, given))) {
        r = -EPERM;
        if (ret_string_to_sign != NULL) {
            *ret_string_to_sign = sts;
            sts = NULL;
        }
    }
    free(signed_headers);
    free(given);
    free(sts);
    free(sig);
    return r;
}
