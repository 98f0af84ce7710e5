/* Request authentication as the cloud does it: V1 (Signature parameter, HMAC-SHA1) and V3
 * (Authorization: ACS3-HMAC-SHA256 with the request's own SignedHeaders), timestamp skew and
 * nonce replay. The signature maths is the emulator's own (emu_sig.h, written from the vendor's
 * pages), so the client and the emulator check each other. The secret of an access key is looked
 * up in one place (emu_auth_check, through emu_world_account), where temporary (STS)
 * credentials would be added. Called by emu_server.c under its mutex; tested over HTTP. */
#ifndef EMU_AUTH_H
#define EMU_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "emu_world.h"
#include "emu_kvs.h"

/* What the authenticator needs of one request. */
typedef struct emu_auth_req {
    const char *method;
    const emu_kvs *query;   /* the URL query only (V3 signs it; the body is hashed) */
    const emu_kvs *params;  /* query and form body together (V1 signs all of it) */
    const emu_kvs *headers; /* every header, lowercase names */
    const char *body;
    size_t body_len;
    const struct emu_sts *sts; /* issued STS keys (emu_sts.h); NULL: none */
} emu_auth_req;

/* Nonces seen within the skew window, per access key. */
typedef struct emu_nonce {
    char *key; /* "access key id\nnonce" */
    int64_t expires_ms;
} emu_nonce;

typedef struct emu_nonces {
    emu_nonce *v;
    size_t n;
} emu_nonces;

void emu_nonces_clear(emu_nonces *n);

/* The access key id the request claims (V3 Credential= or V1 AccessKeyId), unverified: for
 * the journal and the rate limiter. Returns a malloc'd string or NULL. */
char *emu_auth_claimed_key(const emu_auth_req *req);

/* Verifies the request at now_ms (wall clock) with at most skew_ms between its timestamp and
 * now. Returns 0 with *ret_account set when it is authentic; 0 with an error on r
 * (IncompleteSignature, InvalidAccessKeyId.NotFound, InvalidTimeStamp.*,
 * SignatureDoesNotMatch, SignatureNonceUsed) when not; -ENOMEM. */
int emu_auth_check(const emu_world *w, emu_nonces *nonces, int64_t skew_ms, const emu_auth_req *req,
                   int64_t now_ms, const emu_account **ret_account, emu_result *r);

#endif
