/* The emulator's STS and ECS metadata (see emu_sts.h). Issued credentials are kept (also after
 * they expire) so that an expired key is answered InvalidSecurityToken.Expired rather than
 * InvalidAccessKeyId.NotFound, as the cloud does. */
#include "emu_sts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "emu_util.h"

#define DEFAULT_DURATION_S 3600
#define MIN_DURATION_S 900
#define MAX_DURATION_S 43200
#define MD_TTL_MAX_S 21600

void emu_sts_init(emu_sts *s, int64_t duration_ms, const char *md_role, uint64_t seed)
{
    memset(s, 0, sizeof(*s));
    s->duration_ms = duration_ms;
    s->md_role = md_role;
    s->rng = seed ^ 0x5354530000000000ULL;
}

static void wipe_free(char *p)
{
    if (p) {
        explicit_bzero(p, strlen(p));
        free(p);
    }
}

void emu_sts_clear(emu_sts *s)
{
    for (size_t i = 0; i < s->n_creds; i++) {
        emu_sts_cred *c = s->creds[i];
        free(c->account.access_key_id);
        wipe_free(c->account.access_key_secret);
        free(c->account.user_id);
        wipe_free(c->token);
        free(c->arn);
        free(c);
    }
    free(s->creds);
    for (size_t i = 0; i < s->n_md; i++)
        wipe_free(s->md_tokens[i]);
    free(s->md_tokens);
    free(s->md_expires);
    s->creds = NULL;
    s->n_creds = 0;
    s->md_tokens = NULL;
    s->md_expires = NULL;
    s->n_md = 0;
}

static const char *const actions[] = {"AssumeRole", "AssumeRoleWithOIDC", "GetCallerIdentity"};

bool emu_sts_has_action(const char *action)
{
    for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
        if (strcmp(action, actions[i]) == 0)
            return true;
    return false;
}

bool emu_sts_is_unsigned(const char *action)
{
    return strcmp(action, "AssumeRoleWithOIDC") == 0;
}

static emu_sts_cred *find(const emu_sts *s, const char *key_id)
{
    for (size_t i = 0; key_id && i < s->n_creds; i++)
        if (strcmp(s->creds[i]->account.access_key_id, key_id) == 0)
            return s->creds[i];
    return NULL;
}

const emu_account *emu_sts_account(const emu_sts *s, const char *key_id)
{
    emu_sts_cred *c = s ? find(s, key_id) : NULL;
    return c ? &c->account : NULL;
}

int emu_sts_check_token(const emu_sts *s, const char *key_id, const char *token, int64_t now_ms,
                        emu_result *r)
{
    emu_sts_cred *c = s ? find(s, key_id) : NULL;
    if (c == NULL)
        return 0;
    if (token == NULL || *token == '\0')
        return emu_result_error(r, 400, "MissingSecurityToken",
                                "SecurityToken is mandatory for this action.");
    if (strcmp(token, c->token) != 0)
        return emu_result_error(r, 400, "InvalidSecurityToken.MismatchWithAccessKey",
                                "Specified SecurityToken mismatch with the AccessKey.");
    if (now_ms >= c->expires_ms)
        return emu_result_error(r, 400, "InvalidSecurityToken.Expired",
                                "Specified SecurityToken is expired.");
    return 0;
}

/* n random characters of [A-Za-z0-9] from the seeded PRNG. */
static void rand_chars(emu_sts *s, char *out, size_t n)
{
    static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    for (size_t i = 0; i < n; i++)
        out[i] = alnum[emu_rand_next(&s->rng) % (sizeof(alnum) - 1)];
    out[n] = '\0';
}

static void format_utc(int64_t ms, char out[21])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    (void)gmtime_r(&t, &tm);
    (void)strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The account with this user_id, NULL when the fixture has none. */
static const emu_account *account_by_uid(const emu_world *w, const char *uid, size_t len)
{
    for (size_t i = 0; i < w->n_accounts; i++)
        if (strlen(w->accounts[i].user_id) == len && strncmp(w->accounts[i].user_id, uid, len) == 0)
            return &w->accounts[i];
    return NULL;
}

/* Splits "acs:ram::<uid>:<kind>/<name>"; returns 0 or -EINVAL. */
static int parse_arn(const char *arn, const char *kind, const char **ret_uid, size_t *ret_uid_len,
                     const char **ret_name)
{
    if (arn == NULL || strncmp(arn, "acs:ram::", 9) != 0)
        return -EINVAL;
    const char *uid = arn + 9;
    size_t n = strspn(uid, "0123456789");
    size_t k = strlen(kind);
    if (n == 0 || uid[n] != ':' || strncmp(uid + n + 1, kind, k) != 0 || uid[n + 1 + k] != '/' ||
        uid[n + 2 + k] == '\0')
        return -EINVAL;
    *ret_uid = uid;
    *ret_uid_len = n;
    *ret_name = uid + n + 2 + k;
    return 0;
}

/* Issues a credential for role (of account) and fills the answer's Credentials and
 * AssumedRoleUser. */
static int issue(emu_sts *s, const emu_account *account, const char *role, const char *session,
                 int64_t duration_s, int64_t now_ms, emu_result *r)
{
    char id[25], secret[41], token[65], role_id[20];
    rand_chars(s, id, 21);
    memcpy(id, "STS.", 4);
    rand_chars(s, secret, 40);
    rand_chars(s, token, 64);
    (void)snprintf(role_id, sizeof(role_id), "3%018llu",
                   (unsigned long long)(emu_rand_next(&s->rng) % 1000000000000000000ULL));
    int64_t dur_ms = s->duration_ms > 0 ? s->duration_ms : duration_s * 1000;
    emu_sts_cred *c = calloc(1, sizeof(*c));
    emu_sts_cred **v = realloc(s->creds, (s->n_creds + 1) * sizeof(*v));
    if (v)
        s->creds = v;
    if (!c || !v)
        goto oom;
    c->account.access_key_id = strdup(id);
    c->account.access_key_secret = strdup(secret);
    c->account.user_id = strdup(account->user_id);
    c->token = strdup(token);
    if (asprintf(&c->arn, "acs:ram::%s:assumed-role/%s/%s", account->user_id, role, session) < 0)
        c->arn = NULL;
    if (!c->account.access_key_id || !c->account.access_key_secret || !c->account.user_id ||
        !c->token || !c->arn)
        goto oom;
    c->expires_ms = now_ms + dur_ms;
    s->creds[s->n_creds++] = c;
    char exp[21];
    format_utc(c->expires_ms, exp);
    char assumed_id[80];
    (void)snprintf(assumed_id, sizeof(assumed_id), "%s:%s", role_id, session);
    r->http_status = 200;
    r->body = json_pack("{s:{s:s,s:s,s:s,s:s},s:{s:s,s:s}}", "Credentials", "AccessKeyId", id,
                        "AccessKeySecret", secret, "SecurityToken", token, "Expiration", exp,
                        "AssumedRoleUser", "Arn", c->arn, "AssumedRoleId", assumed_id);
    explicit_bzero(secret, sizeof(secret));
    explicit_bzero(token, sizeof(token));
    return r->body ? 0 : -ENOMEM;
oom:
    if (c) {
        free(c->account.access_key_id);
        free(c->account.access_key_secret);
        free(c->account.user_id);
        free(c->token);
        free(c->arn);
        free(c);
    }
    return -ENOMEM;
}

static int missing(emu_result *r, const char *name)
{
    return emu_result_error(r, 400, "MissingParameter",
                            "The input parameter \"%s\" that is mandatory for processing this "
                            "request is not supplied.",
                            name);
}

/* RoleArn, RoleSessionName and DurationSeconds, shared by both AssumeRole actions. */
static int role_params(const emu_world *w, emu_sts_param_fn param, const void *ud,
                       const emu_account **ret_owner, const char **ret_role,
                       const char **ret_session, long *ret_duration, emu_result *r)
{
    const char *arn = param(ud, "RoleArn");
    const char *session = param(ud, "RoleSessionName");
    const char *dur = param(ud, "DurationSeconds");
    const char *uid, *role;
    size_t uid_len;
    long duration = DEFAULT_DURATION_S;
    if (!arn || !*arn)
        return missing(r, "RoleArn");
    if (!session || !*session)
        return missing(r, "RoleSessionName");
    if (strlen(session) < 2 || strlen(session) > 64 ||
        strspn(session, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.@-_") !=
            strlen(session))
        return emu_result_error(r, 400, "InvalidParameter.RoleSessionName",
                                "The parameter RoleSessionName is wrongly formed.");
    if (dur && emu_parse_long(dur, MIN_DURATION_S, MAX_DURATION_S, &duration) < 0)
        return emu_result_error(r, 400, "InvalidParameter.DurationSeconds",
                                "The Min/Max value of DurationSeconds is 15min/12hr.");
    if (parse_arn(arn, "role", &uid, &uid_len, &role) < 0)
        return emu_result_error(r, 400, "InvalidParameter.RoleArn",
                                "The parameter RoleArn is wrongly formed.");
    const emu_account *owner = account_by_uid(w, uid, uid_len);
    if (owner == NULL)
        return emu_result_error(r, 404, "EntityNotExist.Role", "The role not exists: %s.", arn);
    *ret_owner = owner;
    *ret_role = role;
    *ret_session = session;
    *ret_duration = duration;
    return 0;
}

static int assume_role(emu_sts *s, const emu_world *w, const emu_account *caller,
                       emu_sts_param_fn param, const void *ud, int64_t now_ms, emu_result *r)
{
    const emu_account *owner = NULL;
    const char *role = NULL, *session = NULL;
    long duration = 0;
    int rc = role_params(w, param, ud, &owner, &role, &session, &duration, r);
    if (rc < 0 || r->code)
        return rc;
    if (strcmp(owner->user_id, caller->user_id) != 0)
        return emu_result_error(r, 403, "NoPermission",
                                "You are not authorized to do this action. You should be "
                                "authorized by RAM.");
    return issue(s, owner, role, session, duration, now_ms, r);
}

static int assume_role_oidc(emu_sts *s, const emu_world *w, emu_sts_param_fn param, const void *ud,
                            int64_t now_ms, emu_result *r)
{
    const char *provider = param(ud, "OIDCProviderArn");
    const char *token = param(ud, "OIDCToken");
    if (!provider || !*provider)
        return missing(r, "OIDCProviderArn");
    if (!token || !*token)
        return missing(r, "OIDCToken");
    const emu_account *owner = NULL;
    const char *role = NULL, *session = NULL, *puid, *pname;
    size_t plen;
    long duration = 0;
    int rc = role_params(w, param, ud, &owner, &role, &session, &duration, r);
    if (rc < 0 || r->code)
        return rc;
    if (parse_arn(provider, "oidc-provider", &puid, &plen, &pname) < 0 ||
        strlen(owner->user_id) != plen || strncmp(owner->user_id, puid, plen) != 0)
        return emu_result_error(r, 400, "InvalidParameter.OIDCProviderArn",
                                "The parameter OIDCProviderArn is wrongly formed or not of the "
                                "role's account.");
    rc = issue(s, owner, role, session, duration, now_ms, r);
    if (rc == 0 && json_object_set_new(r->body, "OIDCTokenInfo",
                                       json_pack("{s:s,s:s,s:s}", "Subject", "emulator-subject",
                                                 "Issuer", "https://oidc.emulator.invalid",
                                                 "ClientIds", "sts.aliyuncs.com")) != 0)
        rc = -ENOMEM;
    return rc;
}

static int caller_identity(const emu_sts *s, const emu_account *caller, emu_result *r)
{
    emu_sts_cred *c = find(s, caller->access_key_id);
    char arn[128];
    if (c == NULL)
        (void)snprintf(arn, sizeof(arn), "acs:ram::%s:root", caller->user_id);
    r->http_status = 200;
    r->body = json_pack("{s:s,s:s,s:s,s:s,s:s}", "IdentityType", c ? "AssumedRoleUser" : "Account",
                        "AccountId", caller->user_id, "UserId", caller->user_id, "PrincipalId",
                        caller->user_id, "Arn", c ? c->arn : arn);
    return r->body ? 0 : -ENOMEM;
}

int emu_sts_call(emu_sts *s, const emu_world *w, const emu_account *caller, const char *action,
                 emu_sts_param_fn param, const void *ud, int64_t now_ms, emu_result *r)
{
    if (strcmp(action, "AssumeRoleWithOIDC") == 0)
        return assume_role_oidc(s, w, param, ud, now_ms, r);
    if (caller == NULL)
        return emu_result_error(r, 400, "IncompleteSignature", "The request is not signed.");
    if (strcmp(action, "AssumeRole") == 0)
        return assume_role(s, w, caller, param, ud, now_ms, r);
    return caller_identity(s, caller, r);
}

/* ---- ECS instance metadata (IMDSv2) ---- */

static bool md_token_ok(const emu_sts *s, const char *token, int64_t now_ms)
{
    for (size_t i = 0; token && i < s->n_md; i++)
        if (strcmp(s->md_tokens[i], token) == 0 && now_ms < s->md_expires[i])
            return true;
    return false;
}

static int md_new_token(emu_sts *s, long ttl_s, int64_t now_ms, char **ret)
{
    char tok[49];
    rand_chars(s, tok, 48);
    char **t = realloc(s->md_tokens, (s->n_md + 1) * sizeof(*t));
    if (t)
        s->md_tokens = t;
    int64_t *e = realloc(s->md_expires, (s->n_md + 1) * sizeof(*e));
    if (e)
        s->md_expires = e;
    char *copy = strdup(tok);
    *ret = strdup(tok);
    if (!t || !e || !copy || !*ret) {
        free(copy);
        free(*ret);
        return -ENOMEM;
    }
    s->md_tokens[s->n_md] = copy;
    s->md_expires[s->n_md++] = now_ms + ttl_s * 1000;
    return 0;
}

/* The role's credentials in the metadata service's shape. */
static int md_credentials(emu_sts *s, const emu_world *w, int64_t now_ms, char **ret)
{
    if (w->n_accounts == 0)
        return 1;
    emu_result r = {0};
    int rc = issue(s, &w->accounts[0], s->md_role, "ecs-metadata", DEFAULT_DURATION_S, now_ms, &r);
    json_t *cr = rc == 0 ? json_object_get(r.body, "Credentials") : NULL;
    char now[21];
    format_utc(now_ms, now);
    if (cr && json_object_set_new(cr, "Code", json_string("Success")) == 0 &&
        json_object_set_new(cr, "LastUpdated", json_string(now)) == 0)
        *ret = json_dumps(cr, JSON_COMPACT);
    else
        *ret = NULL;
    emu_result_clear(&r);
    return *ret ? 0 : -ENOMEM;
}

int emu_sts_metadata(emu_sts *s, const emu_world *w, const char *method, const char *path,
                     const char *ttl, const char *token, int64_t now_ms, unsigned *ret_status,
                     char **ret_body, bool *ret_json)
{
    static const char creds_prefix[] = "/latest/meta-data/ram/security-credentials/";
    if (s->md_role == NULL || strncmp(path, "/latest/", 8) != 0)
        return 1;
    *ret_json = false;
    *ret_body = NULL;
    if (strcmp(path, "/latest/api/token") == 0) {
        long ttl_s = 0;
        if (strcmp(method, "PUT") != 0) {
            *ret_status = 405;
        } else if (!ttl || emu_parse_long(ttl, 1, MD_TTL_MAX_S, &ttl_s) < 0) {
            *ret_status = 400;
        } else {
            *ret_status = 200;
            return md_new_token(s, ttl_s, now_ms, ret_body);
        }
        *ret_body = strdup("");
        return *ret_body ? 0 : -ENOMEM;
    }
    /* IMDSv2 only: every other route needs a live session token. */
    if (!md_token_ok(s, token, now_ms)) {
        *ret_status = 401;
        *ret_body = strdup("");
        return *ret_body ? 0 : -ENOMEM;
    }
    *ret_status = 200;
    if (strcmp(method, "GET") == 0 && strcmp(path, creds_prefix) == 0) {
        *ret_body = strdup(s->md_role);
        return *ret_body ? 0 : -ENOMEM;
    }
    if (strcmp(method, "GET") == 0 && strncmp(path, creds_prefix, sizeof(creds_prefix) - 1) == 0 &&
        strcmp(path + sizeof(creds_prefix) - 1, s->md_role) == 0) {
        *ret_json = true;
        int rc = md_credentials(s, w, now_ms, ret_body);
        if (rc != 1)
            return rc;
    }
    *ret_status = 404;
    *ret_body = strdup("");
    return *ret_body ? 0 : -ENOMEM;
}
