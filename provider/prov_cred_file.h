/* Internal to the credentials chain (prov_cred.c): reading credentials files safely and parsing
 * ~/.aliyun/config.json and the ~/.alibabacloud/credentials INI file. Not a public contract. */
#ifndef PROV_CRED_FILE_H
#define PROV_CRED_FILE_H

#include <stdbool.h>
#include <stddef.h>

#include "prov_cred.h"

/* What a file source yields: static keys (cred filled) or a request to use an ECS RAM role
 * (role_name set; "" means discover the role through the metadata service). */
typedef struct prov_cred_lookup {
    prov_credential cred;
    char *role_name;
    bool wants_role;
    /* RamRoleArn / ram_role_arn: cred holds the long-term key that assumes role_arn. */
    bool wants_assume;
    char *role_arn;
    char *session_name; /* NULL: "imgrecon" */
    long duration_s;    /* 0: 3600 */
} prov_cred_lookup;

void prov_cred_lookup_clear(prov_cred_lookup *l);

/* Reads a whole credentials file (at most max bytes) after checking that neither group nor
 * others may read it. Returns 0 with a NUL-terminated malloc'd *ret_data; -ENOENT when the file
 * does not exist (no message); -EACCES for loose permissions, -EINVAL when too large, other
 * negative errnos for I/O failures, each with a malloc'd *ret_error naming the path. */
int prov_cred_read_file(const char *path, size_t max, char **ret_data, size_t *ret_len,
                        char **ret_error);

/* Looks up profile in config.json (already read). Returns 0 and fills *ret; -ENOENT when the
 * profile is not there (then *ret_note says so, e.g. "no profile 'x'"); -EINVAL with
 * *ret_error for malformed JSON, incomplete profiles and unsupported modes. */
int prov_cred_parse_config_json(const char *path, const char *data, size_t len, const char *profile,
                                prov_cred_lookup *ret, char **ret_note, char **ret_error);
/* The profile config.json selects when neither --profile nor ALIBABA_CLOUD_PROFILE is set:
 * its "current", else "default". Malformed JSON yields "default" (the parser reports it). */
char *prov_cred_config_json_current(const char *data, size_t len);

/* Looks up [section] in the INI credentials file; same returns as the JSON parser. */
int prov_cred_parse_ini(const char *path, const char *data, size_t len, const char *section,
                        prov_cred_lookup *ret, char **ret_note, char **ret_error);

/* One blocking HTTP request with libcurl (prov_cred.c), for metadata and STS. body: a form
 * body (POST), NULL otherwise. *ret_body is always a string on success; status is not checked. */
int prov_cred_http(const char *method, const char *url, const char *header, const char *body,
                   long timeout_ms, long *ret_status, char **ret_body, char **ret_error);

/* ---- STS (prov_cred_sts.c) ----
 * Each fills only the keys, token, expiration and issued time of *ret (kind, recipe and source
 * are the caller's) and returns 0, or a negative errno with *ret_error naming the action and
 * the answer's Code (never a secret). */
int prov_sts_assume_role(const prov_cred_opts *opts, const char *key_id, const char *secret,
                         const char *token, const char *role_arn, const char *session,
                         long duration_s, prov_credential *ret, char **ret_error);
/* Reads token_file (it is re-read on every refresh, since the platform rotates it). */
int prov_sts_assume_role_oidc(const prov_cred_opts *opts, const char *role_arn,
                              const char *provider_arn, const char *token_file, const char *session,
                              long duration_s, prov_credential *ret, char **ret_error);
/* GetCallerIdentity signed with cred: its AccountId (malloc'd). */
int prov_sts_caller_account(const prov_cred_opts *opts, const prov_credential *cred,
                            char **ret_account_id, char **ret_error);

#endif
