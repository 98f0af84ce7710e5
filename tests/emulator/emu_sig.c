/* The vendor's V1 and V3 signatures (see emu_sig.h). */
#include "emu_sig.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

static void hex(const unsigned char *d, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        sprintf(out + 2 * i, "%02x", d[i]);
    }
    out[2 * n] = '\0';
}

void emu_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256(data ? data : "", len, d);
    hex(d, sizeof(d), out);
}

int emu_sig_v1(const char *method, const emu_kvs *params, const char *secret, char **ret_sig,
               char **ret_sts)
{
    char *canon = NULL, *enc = NULL, *sts = NULL, *key = NULL;
    int rc = emu_canonical_query(params, "Signature", &canon);
    if (rc == 0) {
        rc = emu_pct_encode(canon, strlen(canon), &enc);
    }
    if (rc == 0 &&
        (asprintf(&sts, "%s&%%2F&%s", method, enc) < 0 || asprintf(&key, "%s&", secret) < 0)) {
        rc = -ENOMEM;
    }
    char *sig = rc == 0 ? malloc(4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1) : NULL;
    if (sig) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned mac_len = 0;
        HMAC(EVP_sha1(), key, (int)strlen(key), (const unsigned char *)sts, strlen(sts), mac,
             &mac_len);
        EVP_EncodeBlock((unsigned char *)sig, mac, (int)mac_len);
        *ret_sig = sig;
        if (ret_sts) {
            *ret_sts = sts;
            sts = NULL;
        }
    } else {
        rc = -ENOMEM;
    }
    free(canon);
    free(enc);
    free(sts);
    free(key);
    return rc;
}

/* Copies the value of "name=" from the comma-separated fields of an Authorization value. */
static int auth_field(const char *fields, const char *name, char **ret)
{
    size_t nlen = strlen(name);
    for (const char *p = fields; *p;) {
        p += strspn(p, " ,");
        size_t len = strcspn(p, ",");
        if (len > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
            size_t vlen = len - nlen - 1;
            while (vlen > 0 && p[nlen + vlen] == ' ') {
                vlen--;
            }
            if (vlen == 0) {
                return -EINVAL;
            }
            *ret = strndup(p + nlen + 1, vlen);
            return *ret ? 0 : -ENOMEM;
        }
        p += len;
    }
    return -EINVAL;
}

int emu_sig_v3_parse_authorization(const char *authorization, char **ret_key_id,
                                   char **ret_signed_headers, char **ret_signature)
{
    static const char scheme[] = "ACS3-HMAC-SHA256 ";
    if (!authorization || strncmp(authorization, scheme, sizeof(scheme) - 1) != 0) {
        return -EINVAL;
    }
    const char *f = authorization + sizeof(scheme) - 1;
    char *id = NULL, *sh = NULL, *sig = NULL;
    int rc = auth_field(f, "Credential", &id);
    if (rc == 0) {
        rc = auth_field(f, "SignedHeaders", &sh);
    }
    if (rc == 0) {
        rc = auth_field(f, "Signature", &sig);
    }
    if (rc < 0) {
        free(id);
        free(sh);
        free(sig);
        return rc;
    }
#define EMU_HAND_OUT(ret, v)                                                                       \
    do {                                                                                           \
        if (ret) {                                                                                 \
            *(ret) = (v);                                                                          \
        } else {                                                                                   \
            free(v);                                                                               \
        }                                                                                          \
    } while (0)
    EMU_HAND_OUT(ret_key_id, id);
    EMU_HAND_OUT(ret_signed_headers, sh);
    EMU_HAND_OUT(ret_signature, sig);
    return 0;
}

/* "name:trimmed value\n" for each name of the ";"-list, in the list's order, appended to out
 * (an open memstream). Returns 0 or -EINVAL when a signed header is absent. */
static int canonical_headers(FILE *out, const emu_kvs *headers, const char *signed_headers)
{
    for (const char *p = signed_headers; *p;) {
        size_t len = strcspn(p, ";");
        char name[128];
        if (len == 0 || len >= sizeof(name)) {
            return -EINVAL;
        }
        memcpy(name, p, len);
        name[len] = '\0';
        const char *v = emu_kvs_get_ci(headers, name);
        if (!v) {
            return -EINVAL;
        }
        size_t vlen = strlen(v);
        while (vlen > 0 && isspace((unsigned char)*v)) {
            v++;
            vlen--;
        }
        while (vlen > 0 && isspace((unsigned char)v[vlen - 1])) {
            vlen--;
        }
        for (size_t i = 0; i < len; i++) {
            fputc(tolower((unsigned char)name[i]), out);
        }
        fprintf(out, ":%.*s\n", (int)vlen, v);
        p += len + (p[len] == ';');
    }
    return 0;
}

int emu_sig_v3(const char *method, const char *path, const emu_kvs *query, const emu_kvs *headers,
               const char *signed_headers, const char *body, size_t body_len, const char *secret,
               char **ret_sig, char **ret_hashed_request, char **ret_sts)
{
    char *creq = NULL, *cq = NULL, *sts = NULL;
    size_t creq_len = 0;
    char body_hex[65], creq_hex[65], sig_hex[65];
    int rc = emu_canonical_query(query, NULL, &cq);
    if (rc < 0) {
        return rc;
    }
    FILE *f = open_memstream(&creq, &creq_len);
    if (!f) {
        free(cq);
        return -ENOMEM;
    }
    emu_sha256_hex(body, body_len, body_hex);
    fprintf(f, "%s\n%s\n%s\n", method, path, cq);
    rc = canonical_headers(f, headers, signed_headers);
    fprintf(f, "\n%s\n%s", signed_headers, body_hex);
    if (fclose(f) != 0 && rc == 0) {
        rc = -ENOMEM;
    }
    free(cq);
    if (rc == 0) {
        emu_sha256_hex(creq, creq_len, creq_hex);
        if (asprintf(&sts, "ACS3-HMAC-SHA256\n%s", creq_hex) < 0) {
            sts = NULL;
            rc = -ENOMEM;
        }
    }
    free(creq);
    char *sig = NULL, *hashed = NULL;
    if (rc == 0) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned mac_len = 0;
        HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)sts, strlen(sts),
             mac, &mac_len);
        hex(mac, mac_len, sig_hex);
        sig = strdup(sig_hex);
        hashed = strdup(creq_hex);
        rc = sig && hashed ? 0 : -ENOMEM;
    }
    if (rc == 0) {
        *ret_sig = sig;
        sig = NULL;
        EMU_HAND_OUT(ret_hashed_request, hashed);
        hashed = NULL;
        EMU_HAND_OUT(ret_sts, sts);
        sts = NULL;
    }
    free(sig);
    free(hashed);
    free(sts);
    return rc;
}

int emu_parse_utc(const char *s, int64_t *ret_s)
{
    struct tm tm = {0};
    int n = 0;
    if (!s || strlen(s) != 20 ||
        sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2dZ%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &n) != 6 ||
        n != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || tm.tm_mon < 1 || tm.tm_mon > 12 ||
        tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60) {
        return -EINVAL;
    }
    for (int i = 0; i < 20; i++) {
        if (i != 4 && i != 7 && i != 10 && i != 13 && i != 16 && i != 19 &&
            !isdigit((unsigned char)s[i])) {
            return -EINVAL;
        }
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    *ret_s = (int64_t)timegm(&tm);
    return 0;
}
