/* The emulator's authenticator (see emu_auth.h). Order of checks: the request carries what
 * signing needs (IncompleteSignature), the key exists (InvalidAccessKeyId.NotFound), the
 * timestamp is well formed and fresh (InvalidTimeStamp.*), the signature matches
 * (SignatureDoesNotMatch, echoing the server's string to sign), and only then the nonce is
 * new (SignatureNonceUsed), so a forged request cannot burn a client's nonce. */
#include "emu_auth.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "emu_sig.h"
#include "emu_sts.h"

void emu_nonces_clear(emu_nonces *n)
{
    for (size_t i = 0; i < n->n; i++) {
        free(n->v[i].key);
    }
    free(n->v);
    n->v = NULL;
    n->n = 0;
}

static const char *authorization(const emu_auth_req *req)
{
    const char *a = emu_kvs_get_ci(req->headers, "authorization");
    return a && strncmp(a, "ACS3-", 5) == 0 ? a : NULL;
}

char *emu_auth_claimed_key(const emu_auth_req *req)
{
    const char *a = authorization(req);
    if (a) {
        char *id = NULL, *sh = NULL, *sig = NULL;
        if (emu_sig_v3_parse_authorization(a, &id, &sh, &sig) < 0) {
            return NULL;
        }
        free(sh);
        free(sig);
        return id;
    }
    const char *id = emu_kvs_get(req->params, "AccessKeyId");
    return id ? strdup(id) : NULL;
}

/* Compares two signatures in time independent of where they differ. */
static bool same_signature(const char *a, const char *b)
{
    size_t n = strlen(a);
    if (n != strlen(b)) {
        return false;
    }
    unsigned char diff = 0;
    for (size_t i = 0; i < n; i++) {
        diff |= (unsigned char)(a[i] ^ b[i]);
    }
    return diff == 0;
}

/* Recomputes the request's signature (V3 when signed_headers is not NULL, else V1) and compares
 * it with the given one. Returns 0 when it matches; -EPERM when not, with the server's string to
 * sign in *ret_sts (caller frees); -EINVAL when a signed header is missing; -ENOMEM. A V3 body
 * whose x-acs-content-sha256 claims another hash does not match either. */
static int verify(const emu_auth_req *req, const char *signed_headers, const char *given,
                  const char *secret, char **ret_sts)
{
    char *sig = NULL, *sts = NULL;
    bool body_ok = true;
    int rc;
    if (signed_headers) {
        char body_hex[65];
        emu_sha256_hex(req->body, req->body_len, body_hex);
        const char *claimed = emu_kvs_get_ci(req->headers, "x-acs-content-sha256");
        body_ok = !claimed || strcasecmp(claimed, body_hex) == 0;
        rc = emu_sig_v3(req->method, "/", req->query, req->headers, signed_headers, req->body,
                        req->body_len, secret, &sig, NULL, &sts);
    } else {
        rc = emu_sig_v1(req->method, req->params, secret, &sig, &sts);
    }
    if (rc < 0) {
        return rc;
    }
    if (body_ok && same_signature(sig, given)) {
        free(sts);
        rc = 0;
    } else {
        *ret_sts = sts;
        rc = -EPERM;
    }
    free(sig);
    return rc;
}

/* The one place an access key id becomes an account and the secret its requests are signed
 * with: the fixture's long-term keys today; temporary (STS) keys would be looked up here too.
 * NULL when the key is unknown. */
static const emu_account *lookup_key(const emu_world *w, const emu_sts *sts, const char *key_id,
                                     const char **ret_secret)
{
    const emu_account *acct = emu_sts_account(sts, key_id);
    if (!acct) {
        acct = emu_world_account(w, key_id);
    }
    if (acct) {
        *ret_secret = acct->access_key_secret;
    }
    return acct;
}

static int incomplete(emu_result *r, const char *why)
{
    return emu_result_error(r, 400, "IncompleteSignature",
                            "The request signature does not conform to Aliyun standards. %s", why);
}

/* Records (key, nonce) until expires; returns 1 when it was already there, 0, -ENOMEM. */
static int nonce_use(emu_nonces *n, const char *key_id, const char *nonce, int64_t now,
                     int64_t expires)
{
    size_t k = 0;
    for (size_t i = 0; i < n->n; i++) {
        if (n->v[i].expires_ms <= now) {
            free(n->v[i].key);
        } else {
            n->v[k++] = n->v[i];
        }
    }
    n->n = k;
    char *key = NULL;
    if (asprintf(&key, "%s\n%s", key_id, nonce) < 0) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < n->n; i++) {
        if (strcmp(n->v[i].key, key) == 0) {
            free(key);
            return 1;
        }
    }
    emu_nonce *nv = realloc(n->v, (n->n + 1) * sizeof(*nv));
    if (!nv) {
        free(key);
        return -ENOMEM;
    }
    n->v = nv;
    nv[n->n++] = (emu_nonce){.key = key, .expires_ms = expires};
    return 0;
}

int emu_auth_check(const emu_world *w, emu_nonces *nonces, int64_t skew_ms, const emu_auth_req *req,
                   int64_t now_ms, const emu_account **ret_account, emu_result *r)
{
    const char *authz = authorization(req);
    char *key_id = NULL, *signed_headers = NULL, *given = NULL;
    const char *nonce, *stamp;
    int rc = 0;
    if (authz) {
        rc = emu_sig_v3_parse_authorization(authz, &key_id, &signed_headers, &given);
        if (rc == -ENOMEM) {
            return rc;
        }
        if (rc < 0 || strncmp(authz, "ACS3-HMAC-SHA256 ", 17) != 0) {
            rc = incomplete(r, "Malformed Authorization header.");
            goto out;
        }
        nonce = emu_kvs_get_ci(req->headers, "x-acs-signature-nonce");
        stamp = emu_kvs_get_ci(req->headers, "x-acs-date");
        if (!stamp || !*stamp) {
            rc = incomplete(r, "The x-acs-date header is missing.");
            goto out;
        }
    } else {
        const char *sig = emu_kvs_get(req->params, "Signature");
        const char *id = emu_kvs_get(req->params, "AccessKeyId");
        const char *method = emu_kvs_get(req->params, "SignatureMethod");
        const char *version = emu_kvs_get(req->params, "SignatureVersion");
        nonce = emu_kvs_get(req->params, "SignatureNonce");
        stamp = emu_kvs_get(req->params, "Timestamp");
        if (!sig || !*sig || !id || !*id) {
            rc = incomplete(r, "Signature and AccessKeyId (or an ACS3-HMAC-SHA256 "
                               "Authorization header) are required.");
            goto out;
        }
        if (!method || strcmp(method, "HMAC-SHA1") != 0 || !version ||
            strcmp(version, "1.0") != 0) {
            rc = incomplete(r, "SignatureMethod must be HMAC-SHA1 and SignatureVersion 1.0.");
            goto out;
        }
        if (!stamp || !*stamp) {
            rc = incomplete(r, "The Timestamp parameter is missing.");
            goto out;
        }
        key_id = strdup(id);
        if (!key_id) {
            return -ENOMEM;
        }
    }
    if (!nonce || !*nonce) {
        rc = incomplete(r, "The signature nonce is missing.");
        goto out;
    }
    const char *secret = NULL;
    const emu_account *acct = lookup_key(w, req->sts, key_id, &secret);
    if (!acct) {
        rc = emu_result_error(r, 404, "InvalidAccessKeyId.NotFound",
                              "Specified access key is not found.");
        goto out;
    }
    int64_t t;
    if (emu_parse_utc(stamp, &t) < 0) {
        rc = emu_result_error(r, 400, "InvalidTimeStamp.Format",
                              "Specified time stamp or date value is not well formatted.");
        goto out;
    }
    int64_t diff = now_ms - t * 1000;
    if (diff > skew_ms || -diff > skew_ms) {
        rc = emu_result_error(r, 400, "InvalidTimeStamp.Expired",
                              "Specified time stamp or date value is expired.");
        goto out;
    }
    char *sts = NULL;
    int vr = verify(req, signed_headers, authz ? given : emu_kvs_get(req->params, "Signature"),
                    secret, &sts);
    if (vr == -EPERM) {
        rc = emu_result_error(r, 400, "SignatureDoesNotMatch",
                              "Specified signature is not matched with our calculation. server "
                              "string to sign is:%s",
                              sts ? sts : "");
        free(sts);
        goto out;
    }
    free(sts);
    if (vr == -ENOMEM) {
        rc = vr;
        goto out;
    }
    if (vr < 0) {
        rc = incomplete(r, "The signature could not be computed from this request.");
        goto out;
    }
    /* An STS key: its SecurityToken (signed with the rest) must match and be unexpired. */
    const char *token = authz ? emu_kvs_get_ci(req->headers, "x-acs-security-token")
                              : emu_kvs_get(req->params, "SecurityToken");
    rc = emu_sts_check_token(req->sts, key_id, token, now_ms, r);
    if (rc < 0 || r->code) {
        goto out;
    }
    /* A nonce is remembered as long as its request could still be accepted. */
    int nr = nonce_use(nonces, key_id, nonce, now_ms, t * 1000 + skew_ms + 1000);
    if (nr < 0) {
        rc = nr;
        goto out;
    }
    if (nr == 1) {
        rc = emu_result_error(r, 400, "SignatureNonceUsed",
                              "Specified signature nonce was used already.");
        goto out;
    }
    *ret_account = acct;
out:
    free(key_id);
    free(signed_headers);
    free(given);
    return rc;
}
