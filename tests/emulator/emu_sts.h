/* The emulator's STS (2015-04-01) and ECS instance metadata (tests/emulator/README.md):
 * AssumeRole (signed by a fixture account's key, roles acs:ram::<user_id>:role/<name> of that
 * account), AssumeRoleWithOIDC (unsigned, a non-empty token), GetCallerIdentity, the issued
 * STS.… keys with their SecurityToken and expiry for the authenticator, and the IMDSv2 routes
 * for one RAM role (--metadata). Everything runs under the server's mutex. */
#ifndef EMU_STS_H
#define EMU_STS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "emu_world.h"

#define EMU_STS_VERSION "2015-04-01"

/* One issued temporary credential. account is what the authenticator returns for its key:
 * the key id and secret are the STS ones, user_id the owning account's (limits count by it). */
typedef struct emu_sts_cred {
    emu_account account;
    char *token;
    char *arn; /* acs:ram::<uid>:assumed-role/<role>/<session> */
    int64_t expires_ms;
} emu_sts_cred;

typedef struct emu_sts {
    int64_t duration_ms;  /* 0: the request's DurationSeconds (default 3600 s) */
    const char *md_role;  /* --metadata ROLE; NULL: no metadata routes */
    emu_sts_cred **creds; /* pointers stay valid while the server runs */
    size_t n_creds;
    char **md_tokens; /* IMDSv2 session tokens handed out */
    int64_t *md_expires;
    size_t n_md;
    uint64_t rng;
} emu_sts;

void emu_sts_init(emu_sts *s, int64_t duration_ms, const char *md_role, uint64_t seed);
/* Forgets every issued credential and metadata token (also POST /_emulator/reset). */
void emu_sts_clear(emu_sts *s);

bool emu_sts_has_action(const char *action);
/* AssumeRoleWithOIDC is not signed: the server skips authentication for it. */
bool emu_sts_is_unsigned(const char *action);

/* The authenticator's key lookup for STS.… keys; NULL for any other key. */
const emu_account *emu_sts_account(const emu_sts *s, const char *key_id);
/* After the signature matched: an STS key needs its own SecurityToken (token: the request's
 * SecurityToken parameter or x-acs-security-token header, NULL when absent) and must not have
 * expired. Other keys pass. Returns 0 (error set on r when refused) or -ENOMEM. */
int emu_sts_check_token(const emu_sts *s, const char *key_id, const char *token, int64_t now_ms,
                        emu_result *r);

/* A request parameter by name, NULL when absent (the server passes its parsed parameters). */
typedef const char *(*emu_sts_param_fn)(const void *ud, const char *name);

/* Runs an STS action. caller is the authenticated account (NULL for unsigned actions). Returns 0
 * with r filled (success body or API error) or -ENOMEM. */
int emu_sts_call(emu_sts *s, const emu_world *w, const emu_account *caller, const char *action,
                 emu_sts_param_fn param, const void *ud, int64_t now_ms, emu_result *r);

/* The ECS metadata routes (path under /latest/). ttl and token are the request's
 * X-aliyun-ecs-metadata-token-ttl-seconds and X-aliyun-ecs-metadata-token headers (NULL when
 * absent). Returns 0 with *ret_status, *ret_body (malloc'd) and *ret_json (content type), 1 when
 * the route is not a metadata route, -ENOMEM. */
int emu_sts_metadata(emu_sts *s, const emu_world *w, const char *method, const char *path,
                     const char *ttl, const char *token, int64_t now_ms, unsigned *ret_status,
                     char **ret_body, bool *ret_json);

#endif
