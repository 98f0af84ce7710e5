/* The chain's STS client (prov_cred_file.h): AssumeRole (V1 RPC signature with the long-term
 * key), AssumeRoleWithOIDC (unsigned) and GetCallerIdentity, as blocking POST requests with a
 * form body, so that no secret or token travels in a URL. Runs at start-up and on refresh. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "prov_cred_file.h"
#include "prov_secret.h"
#include "prov_sig.h"
#include "prov_str.h"

#define DEFAULT_STS_URL "https://sts.aliyuncs.com"
#define STS_VERSION "2015-04-01"
#define OIDC_TOKEN_MAX (64 * 1024)

/* Fills Action, Version, Format and, when key_id is set, the V1 signature over the form. */
static int build_form(prov_kvs *params, const char *action, const char *key_id, const char *secret,
                      const char *token, char **ret_body)
{
    char nonce[33], ts[21];
    int r = prov_random_nonce(nonce);
    prov_format_utc(time(NULL), ts);
    if (r == 0)
        r = prov_kvs_set(params, "Action", action);
    if (r == 0)
        r = prov_kvs_set(params, "Version", STS_VERSION);
    if (r == 0)
        r = prov_kvs_set(params, "Format", "JSON");
    if (r == 0 && key_id == NULL) {
        /* Unsigned: the nonce and time still make every request distinct. */
        r = prov_kvs_set(params, "SignatureNonce", nonce);
        if (r == 0)
            r = prov_kvs_set(params, "Timestamp", ts);
    } else if (r == 0) {
        r = prov_sig_v1_sign(params, "POST", key_id, secret, token, nonce, ts);
    }
    return r == 0 ? prov_canonical_query(params, NULL, ret_body) : r;
}

/* Sends one STS action and parses the JSON answer. An API error becomes -EACCES (refused: bad
 * key, no permission, bad parameters) or -EIO (server side), with the Code in the message. */
static int sts_call(const prov_cred_opts *opts, const char *action, prov_kvs *params,
                    const char *key_id, const char *secret, const char *token, json_t **ret_root,
                    char **ret_error)
{
    const char *url = opts && opts->sts_url ? opts->sts_url : DEFAULT_STS_URL;
    long timeout = opts && opts->sts_timeout_ms > 0 ? opts->sts_timeout_ms : 10000;
    char *form = NULL, *body = NULL, *msg = NULL;
    long status = 0;
    int r = build_form(params, action, key_id, secret, token, &form);
    struct timespec t0, t1;
    (void)clock_gettime(CLOCK_MONOTONIC, &t0);
    if (r == 0)
        r = prov_cred_http("POST", url,
                           "Content-Type: application/x-www-form-urlencoded; charset=utf-8", form,
                           timeout, &status, &body, &msg);
    (void)clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
    prov_free_secret(form);
    if (r < 0) {
        if (opts && opts->on_call && r != -ENOMEM)
            opts->on_call(opts->on_call_ud, action, 0, NULL, ms);
        *ret_error = msg ? prov_asprintf("STS %s: %s", action, msg) : NULL;
        free(msg);
        return r;
    }
    json_t *root = json_loads(body, 0, NULL);
    prov_free_secret(body);
    const char *code = json_string_value(json_object_get(root, "Code"));
    if (opts && opts->on_call)
        opts->on_call(opts->on_call_ud, action, status,
                      status == 200 ? NULL
                      : code        ? code
                                    : "NoCode",
                      ms);
    if (status != 200 || !json_is_object(root)) {
        *ret_error = prov_asprintf("STS %s at %s: HTTP %ld%s%s", action, url, status,
                                   code ? " " : "", code ? code : "");
        json_decref(root);
        return status >= 500 || status == 0 ? -EIO : -EACCES;
    }
    *ret_root = root;
    return 0;
}

/* Credentials{AccessKeyId, AccessKeySecret, SecurityToken, Expiration} of an AssumeRole answer. */
static int take_credentials(const char *action, json_t *root, prov_credential *ret,
                            char **ret_error)
{
    json_t *c = json_object_get(root, "Credentials");
    const char *id = json_string_value(json_object_get(c, "AccessKeyId"));
    const char *secret = json_string_value(json_object_get(c, "AccessKeySecret"));
    const char *token = json_string_value(json_object_get(c, "SecurityToken"));
    const char *exp = json_string_value(json_object_get(c, "Expiration"));
    time_t expiration = 0;
    if (!id || !*id || !secret || !*secret || !token || !*token || !exp ||
        prov_parse_utc(exp, &expiration) < 0) {
        *ret_error =
            prov_asprintf("STS %s: the answer lacks Credentials or their Expiration", action);
        return -EPROTO;
    }
    memset(ret, 0, sizeof(*ret));
    ret->access_key_id = strdup(id);
    ret->access_key_secret = strdup(secret);
    ret->security_token = strdup(token);
    ret->expiration = expiration;
    ret->issued = time(NULL);
    if (!ret->access_key_id || !ret->access_key_secret || !ret->security_token) {
        prov_credential_clear(ret);
        return -ENOMEM;
    }
    return 0;
}

/* The role's parameters, shared by both AssumeRole actions. */
static int role_params(prov_kvs *p, const char *role_arn, const char *session, long duration_s)
{
    char dur[24];
    (void)snprintf(dur, sizeof(dur), "%ld", duration_s > 0 ? duration_s : 3600);
    int r = prov_kvs_set(p, "RoleArn", role_arn);
    if (r == 0)
        r = prov_kvs_set(p, "RoleSessionName", session && *session ? session : "imgrecon");
    if (r == 0)
        r = prov_kvs_set(p, "DurationSeconds", dur);
    return r;
}

int prov_sts_assume_role(const prov_cred_opts *opts, const char *key_id, const char *secret,
                         const char *token, const char *role_arn, const char *session,
                         long duration_s, prov_credential *ret, char **ret_error)
{
    prov_kvs p = {0};
    json_t *root = NULL;
    int r = role_params(&p, role_arn, session, duration_s);
    if (r == 0)
        r = sts_call(opts, "AssumeRole", &p, key_id, secret, token, &root, ret_error);
    if (r == 0)
        r = take_credentials("AssumeRole", root, ret, ret_error);
    json_decref(root);
    prov_kvs_clear(&p);
    return r;
}

int prov_sts_assume_role_oidc(const prov_cred_opts *opts, const char *role_arn,
                              const char *provider_arn, const char *token_file, const char *session,
                              long duration_s, prov_credential *ret, char **ret_error)
{
    FILE *f = fopen(token_file, "re");
    if (f == NULL) {
        int e = errno;
        *ret_error = prov_asprintf("ALIBABA_CLOUD_OIDC_TOKEN_FILE %s: %s", token_file, strerror(e));
        return -e;
    }
    char *tok = calloc(1, OIDC_TOKEN_MAX + 1);
    size_t n = tok ? fread(tok, 1, OIDC_TOKEN_MAX + 1, f) : 0;
    (void)fclose(f);
    if (tok == NULL)
        return -ENOMEM;
    while (n > 0 && (tok[n - 1] == '\n' || tok[n - 1] == '\r' || tok[n - 1] == ' '))
        tok[--n] = '\0';
    int r = 0;
    if (n == 0 || n > OIDC_TOKEN_MAX) {
        *ret_error = prov_asprintf("ALIBABA_CLOUD_OIDC_TOKEN_FILE %s: %s", token_file,
                                   n == 0 ? "empty" : "larger than 64 KiB");
        r = -EINVAL;
    }
    prov_kvs p = {0};
    json_t *root = NULL;
    if (r == 0)
        r = role_params(&p, role_arn, session, duration_s);
    if (r == 0)
        r = prov_kvs_set(&p, "OIDCProviderArn", provider_arn);
    if (r == 0)
        r = prov_kvs_set(&p, "OIDCToken", tok);
    explicit_bzero(tok, OIDC_TOKEN_MAX + 1);
    free(tok);
    if (r == 0)
        r = sts_call(opts, "AssumeRoleWithOIDC", &p, NULL, NULL, NULL, &root, ret_error);
    if (r == 0)
        r = take_credentials("AssumeRoleWithOIDC", root, ret, ret_error);
    json_decref(root);
    prov_kvs_clear(&p);
    return r;
}

int prov_sts_caller_account(const prov_cred_opts *opts, const prov_credential *cred,
                            char **ret_account_id, char **ret_error)
{
    prov_kvs p = {0};
    json_t *root = NULL;
    int r = sts_call(opts, "GetCallerIdentity", &p, cred->access_key_id, cred->access_key_secret,
                     cred->security_token, &root, ret_error);
    const char *acct = r == 0 ? json_string_value(json_object_get(root, "AccountId")) : NULL;
    if (r == 0 && (acct == NULL || *acct == '\0' || strspn(acct, "0123456789") != strlen(acct))) {
        *ret_error = prov_asprintf("STS GetCallerIdentity: the answer has no numeric AccountId");
        r = -EPROTO;
    }
    if (r == 0) {
        *ret_account_id = strdup(acct);
        r = *ret_account_id ? 0 : -ENOMEM;
    }
    json_decref(root);
    prov_kvs_clear(&p);
    return r;
}
