/* The credentials chain (cmd/README.md, provider/README.md "Credentials"), first found
 * wins: environment (current, then legacy names), OIDC (RRSA: ALIBABA_CLOUD_ROLE_ARN,
 * ALIBABA_CLOUD_OIDC_PROVIDER_ARN, ALIBABA_CLOUD_OIDC_TOKEN_FILE), systemd
 * $CREDENTIALS_DIRECTORY, ~/.aliyun/config.json (profile), ~/.alibabacloud/credentials (INI), ECS
 * RAM role through the instance metadata service with an IMDSv2 token. RamRoleArn profiles and
 * ram_role_arn sections assume their role with STS AssumeRole. Temporary credentials carry what
 * is needed to refresh them. Secrets never appear in any message. */
#ifndef PROV_CRED_H
#define PROV_CRED_H

#include <stdbool.h>
#include <time.h>

/* How a credential was obtained, which decides how it is refreshed. */
typedef enum prov_cred_kind {
    PROV_CRED_STATIC = 0, /* keys as given (environment, files); never refreshed */
    PROV_CRED_ECS_ROLE,   /* ECS RAM role through instance metadata */
    PROV_CRED_ROLE_ARN,   /* STS AssumeRole with a long-term key */
    PROV_CRED_OIDC,       /* STS AssumeRoleWithOIDC with a token file */
} prov_cred_kind;

typedef struct prov_credential {
    char *access_key_id;
    char *access_key_secret;
    char *security_token; /* NULL unless STS */
    time_t expiration;    /* 0: does not expire */
    time_t issued;        /* when a temporary credential was obtained; 0 for static keys */
    char *source;         /* where it came from, e.g. "environment (ALIBABA_CLOUD_*)" */
    prov_cred_kind kind;
    char *role_name; /* ECS RAM role, for refresh; NULL otherwise */
    /* PROV_CRED_ROLE_ARN and PROV_CRED_OIDC: what refresh sends again. */
    char *role_arn;
    char *session_name;
    long duration_s;
    char *base_key_id;     /* ROLE_ARN: the long-term key that assumes the role */
    char *base_key_secret; /* wiped when freed */
    char *base_token;      /* ROLE_ARN from a StsToken base; NULL otherwise */
    char *oidc_provider_arn;
    char *oidc_token_file; /* re-read on every refresh */
} prov_credential;

typedef struct prov_cred_opts {
    const char *profile;      /* --profile / config; NULL: ALIBABA_CLOUD_PROFILE, then current */
    const char *home;         /* NULL: $HOME */
    const char *metadata_url; /* NULL: http://100.100.100.200; tests point it at loopback */
    bool use_metadata;        /* try the ECS metadata service as the last source (never when
                               * ALIBABA_CLOUD_ECS_METADATA_DISABLED=true) */
    long metadata_timeout_ms; /* 0: 1000 */
    const char *sts_url;      /* NULL: https://sts.aliyuncs.com; --endpoint sends STS there too */
    long sts_timeout_ms;      /* 0: 10000 */
    /* Optional: told of every STS request (http_status 0: no answer; code NULL on success), so
     * the caller can count them with the client's calls. */
    void (*on_call)(void *ud, const char *action, long http_status, const char *code,
                    long duration_ms);
    void *on_call_ud;
} prov_cred_opts;

/* Resolves the chain. Returns 0 and fills *ret; -ENOENT when no source has credentials and
 * -EINVAL/-EACCES when a source is broken (loose file permissions, malformed file, incomplete
 * entry); then *ret_error (malloc'd) says where it looked and what was wrong, never a secret.
 * Credentials read from the environment are wiped from it and removed (unsetenv) once read; a
 * later resolve in the same process still finds them. */
int prov_cred_resolve(const prov_cred_opts *opts, prov_credential *ret, char **ret_error);
/* Fetches new temporary credentials for cred (ECS RAM role, AssumeRole, AssumeRoleWithOIDC with
 * the token file read again) with the same opts into *ret_fresh (caller clears), reading cred
 * only: it may run on another thread while the loop signs with cred (prov_client's refresh).
 * Static keys: -EINVAL. Blocking (bounded by the opts' timeouts); opts->on_call runs on the
 * calling thread. */
int prov_cred_fetch(const prov_cred_opts *opts, const prov_credential *cred,
                    prov_credential *ret_fresh, char **ret_error);
/* prov_cred_fetch, then the fresh credential replaces *cred; on failure *cred is left as it
 * was. */
int prov_cred_refresh(const prov_cred_opts *opts, prov_credential *cred, char **ret_error);
/* True when a temporary credential is within its refresh margin of Expiration: 5 minutes, or
 * half its lifetime when that is shorter (tests use lifetimes of seconds). */
bool prov_cred_needs_refresh(const prov_credential *cred, time_t now);
/* The account id the credential belongs to: read from the role ARN for assumed roles, else asked
 * with STS GetCallerIdentity (signed with cred). Returns 0 and a malloc'd *ret_account_id. */
int prov_cred_account_id(const prov_cred_opts *opts, const prov_credential *cred,
                         char **ret_account_id, char **ret_error);
/* Frees and wipes the secrets. Accepts NULL. */
void prov_credential_clear(prov_credential *cred);

#endif
