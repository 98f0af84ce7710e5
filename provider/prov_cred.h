/* The credentials chain (DESIGN.md "CLI", API-NOTES.md "Credentials conventions"), first found
 * wins: environment (current, then legacy names), systemd $CREDENTIALS_DIRECTORY,
 * ~/.aliyun/config.json (profile), ~/.alibabacloud/credentials (INI), ECS RAM role through the
 * instance metadata service with an IMDSv2 token. Secrets never appear in any message. */
#ifndef PROV_CRED_H
#define PROV_CRED_H

#include <stdbool.h>
#include <time.h>

typedef struct prov_credential {
    char *access_key_id;
    char *access_key_secret;
    char *security_token; /* NULL unless STS */
    time_t expiration;    /* 0: does not expire */
    char *source;         /* where it came from, e.g. "environment (ALIBABA_CLOUD_*)" */
    char *role_name;      /* ECS RAM role, for refresh; NULL otherwise */
} prov_credential;

typedef struct prov_cred_opts {
    const char *profile;      /* --profile / config; NULL: ALIBABA_CLOUD_PROFILE, then current */
    const char *home;         /* NULL: $HOME */
    const char *metadata_url; /* NULL: http://100.100.100.200; tests point it at loopback */
    bool use_metadata;        /* try the ECS metadata service as the last source */
    long metadata_timeout_ms; /* 0: 1000 */
} prov_cred_opts;

/* Resolves the chain. Returns 0 and fills *ret; -ENOENT when no source has credentials and
 * -EINVAL/-EACCES when a source is broken (loose file permissions, malformed file, incomplete
 * entry); then *ret_errmsg (malloc'd) says where it looked and what was wrong, never a secret. */
int prov_cred_resolve(const prov_cred_opts *opts, prov_credential *ret, char **ret_errmsg);
/* Fetches new STS credentials for an ECS RAM role credential (same opts). */
int prov_cred_refresh(const prov_cred_opts *opts, prov_credential *cred, char **ret_errmsg);
/* True when the credential expires within the next 5 minutes. */
bool prov_cred_needs_refresh(const prov_credential *cred, time_t now);
/* Frees and wipes the secret. Accepts NULL. */
void prov_credential_free(prov_credential *cred);

#endif
