/* Request signing, V3 (ACS3-HMAC-SHA256, the default) and V1 (HMAC-SHA1), plus the matching
 * verifiers (provider/README.md "Signatures"). The emulator has its own, written from the
 * vendor's API pages; tests/unit/test_golden_rules.c holds both to the vendor's examples. */
#ifndef PROV_SIG_H
#define PROV_SIG_H

#include <stddef.h>
#include <time.h>

#include "prov_kvs.h"

/* RFC 3986 encoding as the API wants it: A-Za-z0-9-_.~ literal, everything else %XY uppercase
 * over the bytes (UTF-8). Returns 0 and a malloc'd *ret, or -ENOMEM. */
int prov_pct_encode(const char *s, size_t len, char **ret);
/* Sorted (byte order of the encoded names, then values), encoded, '&'-joined; entries whose key
 * equals skip_key (may be NULL) are left out. */
int prov_canonical_query(const prov_kvs *params, const char *skip_key, char **ret);

void prov_sha256_hex(const void *data, size_t len, char out[65]);
/* 32 lowercase hex characters from the OS random source. Returns 0 or a negative errno. */
int prov_random_nonce(char out[33]);
/* UTC "YYYY-MM-DDThh:mm:ssZ". */
void prov_format_utc(time_t t, char out[21]);
/* Parses that format back; returns 0 or -EINVAL. */
int prov_parse_utc(const char *s, time_t *ret);

/* ---- V1 ---- */

/* METHOD&%2F&percentEncode(canonical query of params without Signature). */
int prov_sig_v1_string_to_sign(const char *method, const prov_kvs *params, char **ret);
/* Base64(HMAC-SHA1(secret + "&", sts)). */
int prov_sig_v1_signature(const char *secret, const char *string_to_sign, char **ret);
/* Adds AccessKeyId, SignatureMethod, SignatureVersion, SignatureNonce, Timestamp, SecurityToken
 * (when token is not NULL) and finally Signature to params, which must already hold Action,
 * Version, Format and the operation's parameters (query and form body together). */
int prov_sig_v1_sign(prov_kvs *params, const char *method, const char *access_key_id,
                     const char *secret, const char *token, const char *nonce,
                     const char *timestamp);

/* ---- V3 ---- */

/* CanonicalRequest for the given lowercased headers restricted to signed_headers (";"-list). */
int prov_sig_v3_canonical_request(const char *method, const char *path, const prov_kvs *query,
                                  const prov_kvs *headers, const char *signed_headers,
                                  const char *body_sha256_hex, char **ret);
/* "ACS3-HMAC-SHA256\n" + hex(sha256(canonical_request)). */
int prov_sig_v3_string_to_sign(const char *canonical_request, char **ret);
/* hex(HMAC-SHA256(secret, sts)). */
int prov_sig_v3_signature(const char *secret, const char *string_to_sign, char **ret);
/* Adds host, x-acs-action, x-acs-version, x-acs-date, x-acs-signature-nonce,
 * x-acs-content-sha256, x-acs-security-token (when token), content-type (when content_type) and
 * authorization to headers (lowercase names). */
int prov_sig_v3_sign(prov_kvs *headers, const char *method, const char *host, const char *path,
                     const prov_kvs *query, const char *body, size_t body_len,
                     const char *content_type, const char *action, const char *version,
                     const char *access_key_id, const char *secret, const char *token,
                     const char *nonce, const char *date);

/* ---- Verification (the emulator) ----
 * Return 0 when the signature matches; -EINVAL when the request lacks what signing needs
 * (IncompleteSignature); -EPERM when it does not match, and then *ret_string_to_sign holds the
 * server's string to sign (malloc'd) for the error message. */
int prov_sig_v1_verify(const char *method, const prov_kvs *params, const char *secret,
                       char **ret_string_to_sign);
/* Splits "ACS3-HMAC-SHA256 Credential=ID,SignedHeaders=a;b,Signature=hex". -EINVAL if malformed. */
int prov_sig_v3_parse_authorization(const char *authorization, char **ret_key_id,
                                    char **ret_signed_headers, char **ret_signature);
/* headers: every request header with lowercase names; the signed list comes from Authorization. */
int prov_sig_v3_verify(const char *method, const char *path, const prov_kvs *query,
                       const prov_kvs *headers, const char *body, size_t body_len,
                       const char *secret, char **ret_string_to_sign);

#endif
