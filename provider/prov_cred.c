/* The credentials chain (prov_cred.h): environment, systemd $CREDENTIALS_DIRECTORY, the aliyun
 * CLI's config.json, the SDKs' INI file and the ECS RAM role through instance metadata (IMDSv2
 * token, blocking libcurl easy calls with short timeouts; this runs once at start-up and on
 * refresh, before the event loop depends on it). Messages never contain a secret. */
#include "prov_cred.h"

#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "prov_body.h"
#include "prov_cred_file.h"
#include "prov_secret.h"
#include "prov_sig.h"
#include "prov_str.h"

#define DEFAULT_METADATA_URL "http://100.100.100.200"
#define METADATA_TOKEN_TTL "21600"
#define METADATA_MAX_BODY (64 * 1024)
#define CONFIG_MAX_BYTES (1024 * 1024)
#define SECRET_FILE_MAX (64 * 1024)

void prov_credential_clear(prov_credential *cred)
{
    if (cred == NULL)
        return;
    free(cred->access_key_id);
    prov_free_secret(cred->access_key_secret);
    prov_free_secret(cred->security_token);
    free(cred->source);
    free(cred->role_name);
    free(cred->role_arn);
    free(cred->session_name);
    free(cred->base_key_id);
    prov_free_secret(cred->base_key_secret);
    prov_free_secret(cred->base_token);
    free(cred->oidc_provider_arn);
    free(cred->oidc_token_file);
    memset(cred, 0, sizeof(*cred));
}

bool prov_cred_needs_refresh(const prov_credential *cred, time_t now)
{
    if (cred == NULL || cred->expiration == 0)
        return false;
    time_t margin = 300;
    if (cred->issued != 0 && cred->expiration > cred->issued &&
        (cred->expiration - cred->issued) / 2 < margin)
        margin = (cred->expiration - cred->issued) / 2;
    return now + margin >= cred->expiration;
}

/* strdup of an optional string into *to; false on allocation failure. */
static bool dup_opt(char **to, const char *from)
{
    *to = from ? strdup(from) : NULL;
    return from == NULL || *to != NULL;
}

/* Copies how a temporary credential was obtained (kind, source, role, base key, OIDC files),
 * so that refresh can do it again. Called by the chain and by refresh. */
static int copy_recipe(prov_credential *to, const prov_credential *from)
{
    to->kind = from->kind;
    to->duration_s = from->duration_s;
    free(to->source);
    if (!dup_opt(&to->source, from->source) || !dup_opt(&to->role_name, from->role_name) ||
        !dup_opt(&to->role_arn, from->role_arn) ||
        !dup_opt(&to->session_name, from->session_name) ||
        !dup_opt(&to->base_key_id, from->base_key_id) ||
        !dup_opt(&to->base_key_secret, from->base_key_secret) ||
        !dup_opt(&to->base_token, from->base_token) ||
        !dup_opt(&to->oidc_provider_arn, from->oidc_provider_arn) ||
        !dup_opt(&to->oidc_token_file, from->oidc_token_file))
        return -ENOMEM;
    return 0;
}

/* Runs the STS call a ROLE_ARN or OIDC recipe describes; fills the keys of *ret only. */
static int assume(const prov_cred_opts *opts, const prov_credential *recipe, prov_credential *ret,
                  char **ret_error)
{
    if (recipe->kind == PROV_CRED_OIDC)
        return prov_sts_assume_role_oidc(opts, recipe->role_arn, recipe->oidc_provider_arn,
                                         recipe->oidc_token_file, recipe->session_name,
                                         recipe->duration_s, ret, ret_error);
    return prov_sts_assume_role(opts, recipe->base_key_id, recipe->base_key_secret,
                                recipe->base_token, recipe->role_arn, recipe->session_name,
                                recipe->duration_s, ret, ret_error);
}

/* Assumes the role a recipe describes and returns a complete credential (keys and recipe). */
static int assume_full(const prov_cred_opts *opts, const prov_credential *recipe,
                       prov_credential *ret, char **ret_error)
{
    prov_credential c = {0};
    int r = assume(opts, recipe, &c, ret_error);
    if (r == 0 && (r = copy_recipe(&c, recipe)) < 0)
        prov_credential_clear(&c);
    if (r == 0)
        *ret = c;
    return r;
}

static const char *env_nonempty(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* The "looked in" list for the final message, one entry per source. */
typedef struct looked {
    char *s;
    bool oom;
} looked;

__attribute__((format(printf, 2, 3))) static void looked_add(looked *l, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    char *item = NULL;
    if (vasprintf(&item, f, ap) < 0)
        item = NULL;
    va_end(ap);
    char *joined = item ? prov_asprintf("%s%s%s", l->s ? l->s : "", l->s ? ", " : "", item) : NULL;
    free(item);
    if (joined == NULL) {
        l->oom = true;
        return;
    }
    free(l->s);
    l->s = joined;
}

/* Keys go into HTTP headers and signatures: refuse control characters and blanks, which would
 * otherwise corrupt a request (or smuggle a header). */
static bool value_ok(const char *s)
{
    if (s == NULL)
        return true;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= 0x20 || *p == 0x7f)
            return false;
    return true;
}

static int check_values(const prov_credential *c, char **ret_error)
{
    const char *bad = !value_ok(c->access_key_id)       ? "access key id"
                      : !value_ok(c->access_key_secret) ? "access key secret"
                      : !value_ok(c->security_token)    ? "security token"
                                                        : NULL;
    if (bad == NULL)
        return 0;
    *ret_error = prov_asprintf("%s: the %s contains blanks or control characters", c->source, bad);
    return -EINVAL;
}

/* check_values on a credential just obtained, which is cleared when its values are bad (so a
 * caller never keeps half of one). Called by prov_cred_resolve and prov_cred_refresh on what the
 * chain or the refresh produced; c is the caller's; *ret_error: caller frees. */
static int check_fresh(prov_credential *c, char **ret_error)
{
    int r = check_values(c, ret_error);
    if (r < 0)
        prov_credential_clear(c);
    return r;
}

/* Hands the failure r of a public call to its caller: msg, the message the failing step wrote
 * (taken; may be NULL), or else "<what>: <strerror>". ret_error may be NULL (the message is then
 * dropped); *ret_error: caller frees. Returns r. Called by prov_cred_resolve, prov_cred_refresh
 * and prov_cred_account_id, whose steps explain most failures themselves. */
static int fail_with(int r, char *msg, const char *what, char **ret_error)
{
    if (ret_error)
        *ret_error = msg ? msg : prov_asprintf("%s: %s", what, strerror(-r));
    else
        free(msg);
    return r;
}

static int cred_set(prov_credential *c, const char *id, const char *secret, const char *token,
                    const char *source)
{
    memset(c, 0, sizeof(*c));
    c->access_key_id = strdup(id);
    c->access_key_secret = strdup(secret);
    c->security_token = token ? strdup(token) : NULL;
    c->source = strdup(source);
    if (!c->access_key_id || !c->access_key_secret || (token && !c->security_token) || !c->source) {
        prov_credential_clear(c);
        return -ENOMEM;
    }
    return 0;
}

/* One generation of environment names: 0 found, -ENOENT none set, -EINVAL half set. */
static int from_env_names(const char *id_var, const char *secret_var, const char *token_var,
                          const char *source, prov_credential *ret, char **ret_error)
{
    const char *id = env_nonempty(id_var);
    const char *secret = env_nonempty(secret_var);
    if (id == NULL && secret == NULL)
        return -ENOENT;
    if (id == NULL || secret == NULL) {
        *ret_error = prov_asprintf("environment: %s is set but %s is not", id ? id_var : secret_var,
                                   id ? secret_var : id_var);
        return -EINVAL;
    }
    return cred_set(ret, id, secret, env_nonempty(token_var), source);
}

/* Every variable that may hold a key, a secret or a token: removed from the environment once
 * read, so that no child process and no /proc/<pid>/environ reader sees them. */
static const char *const env_secret_names[] = {
    "ALIBABA_CLOUD_ACCESS_KEY_ID",  "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    "ALIBABA_CLOUD_SECURITY_TOKEN", "ALICLOUD_ACCESS_KEY",
    "ALICLOUD_SECRET_KEY",          "ALICLOUD_SECURITY_TOKEN",
};

/* The credential read from the environment, kept for later resolves in this process (a daemon's
 * reload), since the variables are gone by then. Only touched by the loop thread. */
static prov_credential env_cache;

static int cred_copy(const prov_credential *from, prov_credential *to)
{
    int r = cred_set(to, from->access_key_id, from->access_key_secret, from->security_token,
                     from->source);
    if (r == 0)
        to->expiration = from->expiration;
    return r;
}

/* The environment source of the chain: the current names, then the legacy ones, then what an
 * earlier resolve of this process read and removed. */
static int from_env(prov_credential *ret, char **ret_error)
{
    int r = from_env_names("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
                           "ALIBABA_CLOUD_SECURITY_TOKEN", "environment (ALIBABA_CLOUD_*)", ret,
                           ret_error);
    if (r == -ENOENT)
        r = from_env_names("ALICLOUD_ACCESS_KEY", "ALICLOUD_SECRET_KEY", "ALICLOUD_SECURITY_TOKEN",
                           "environment (ALICLOUD_*)", ret, ret_error);
    if (r == -ENOENT && env_cache.access_key_id != NULL)
        return cred_copy(&env_cache, ret);
    if (r < 0)
        return r;
    prov_credential copy;
    if (cred_copy(ret, &copy) == 0) {
        prov_credential_clear(&env_cache);
        env_cache = copy;
    }
    /* Wiped in place first: /proc/<pid>/environ shows the original block, which unsetenv
     * alone leaves as it was. */
    for (size_t i = 0; i < sizeof(env_secret_names) / sizeof(env_secret_names[0]); i++) {
        char *v = getenv(env_secret_names[i]);
        if (v != NULL)
            explicit_bzero(v, strlen(v));
        (void)unsetenv(env_secret_names[i]);
    }
    return 0;
}

/* Strips trailing CR/LF, as systemd-creds and editors leave them. */
static void chomp(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
}

/* Reads one file of $CREDENTIALS_DIRECTORY; -ENOENT (no message) when absent. */
static int read_cred_file(const char *dir, const char *name, char **ret, char **ret_error)
{
    char *path = prov_asprintf("%s/%s", dir, name);
    if (path == NULL)
        return -ENOMEM;
    char *data = NULL;
    size_t len = 0;
    int r = prov_cred_read_file(path, SECRET_FILE_MAX, &data, &len, ret_error);
    if (r == 0 && memchr(data, '\0', len) != NULL) {
        *ret_error = prov_asprintf("%s: contains a NUL byte", path);
        r = -EINVAL;
    }
    if (r == 0) {
        chomp(data);
        if (*data == '\0') {
            *ret_error = prov_asprintf("%s: empty", path);
            r = -EINVAL;
        }
    }
    free(path);
    if (r < 0) {
        if (data)
            explicit_bzero(data, len);
        free(data);
        return r;
    }
    *ret = data;
    return 0;
}

static int from_credentials_directory(const char *dir, prov_credential *ret, char **ret_error)
{
    char *id = NULL, *secret = NULL, *token = NULL;
    int r = read_cred_file(dir, "access_key_id", &id, ret_error);
    if (r < 0)
        return r;
    r = read_cred_file(dir, "access_key_secret", &secret, ret_error);
    if (r == -ENOENT) {
        *ret_error = prov_asprintf(
            "$CREDENTIALS_DIRECTORY=%s has access_key_id but no access_key_secret", dir);
        r = -EINVAL;
    }
    if (r == 0) {
        r = read_cred_file(dir, "security_token", &token, ret_error);
        if (r == -ENOENT)
            r = 0;
    }
    char *source = r == 0 ? prov_asprintf("$CREDENTIALS_DIRECTORY=%s", dir) : NULL;
    if (r == 0)
        r = source ? cred_set(ret, id, secret, token, source) : -ENOMEM;
    free(source);
    free(id);
    prov_free_secret(secret);
    prov_free_secret(token);
    return r;
}

/* ---- ECS instance metadata ---- */

static int curl_errno(CURLcode c, bool too_big)
{
    if (too_big)
        return -EPROTO;
    switch (c) {
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    case CURLE_COULDNT_CONNECT:
        return -ECONNREFUSED;
    case CURLE_COULDNT_RESOLVE_HOST:
        return -EHOSTUNREACH;
    case CURLE_OUT_OF_MEMORY:
        return -ENOMEM;
    default:
        return -EIO;
    }
}

/* One blocking request of the chain (metadata and STS; prov_cred_file.h). body: a form body for
 * POST, NULL otherwise. *ret_body is always a string (possibly empty) on success. */
int prov_cred_http(const char *method, const char *url, const char *header, const char *body,
                   long timeout_ms, long *ret_status, char **ret_body, char **ret_error)
{
    CURL *h = curl_easy_init();
    if (h == NULL)
        return -ENOMEM;
    struct curl_slist *hdrs = NULL, *tmp = NULL;
    prov_body b = {.max = METADATA_MAX_BODY, .secret = true};
    int r = 0;
    if (header != NULL) {
        hdrs = curl_slist_append(NULL, header);
        if (hdrs == NULL)
            r = -ENOMEM;
    }
    if (r == 0 && strcmp(method, "PUT") == 0) {
        /* An empty PUT body; no form content type. */
        tmp = curl_slist_append(hdrs, "Content-Type:");
        if (tmp == NULL)
            r = -ENOMEM;
        else
            hdrs = tmp;
    }
    CURLcode c = CURLE_OK;
    if (r == 0) {
        c |= curl_easy_setopt(h, CURLOPT_URL, url);
        c |= curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        c |= curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
        c |= curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
        c |= curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
        c |= curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
        c |= curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, prov_body_write);
        c |= curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
        if (hdrs != NULL)
            c |= curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        if (strcmp(method, "PUT") == 0) {
            c |= curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
            c |= curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
            c |= curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PUT");
        } else if (body != NULL) {
            c |= curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
            c |= curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
        }
        if (c != CURLE_OK)
            r = -EINVAL;
    }
    if (r == 0) {
        c = curl_easy_perform(h);
        if (c != CURLE_OK) {
            r = curl_errno(c, b.too_big);
            *ret_error = prov_asprintf("%s %s: %s", method, url,
                                       b.too_big ? "response too large" : curl_easy_strerror(c));
        }
    }
    long status = 0;
    if (r == 0 && curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK)
        r = -EIO;
    if (r == 0 && b.data == NULL) {
        b.data = strdup("");
        if (b.data == NULL)
            r = -ENOMEM;
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    if (r < 0) {
        prov_body_clear(&b);
        return r;
    }
    *ret_status = status;
    *ret_body = b.data;
    return 0;
}

/* Used by the chain and by refresh: token, role discovery when role is "" or NULL, then the
 * role's STS credentials. */
static int metadata_fetch(const prov_cred_opts *opts, const char *role, prov_credential *ret,
                          char **ret_error)
{
    const char *base = opts && opts->metadata_url ? opts->metadata_url : DEFAULT_METADATA_URL;
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/')
        blen--;
    long timeout = opts && opts->metadata_timeout_ms > 0 ? opts->metadata_timeout_ms : 1000;
    char *url = NULL, *body = NULL, *token = NULL, *token_hdr = NULL, *found_role = NULL;
    long status = 0;
    int r;

    /* IMDSv2: a session token first; an HTTP refusal means IMDSv1 only, so go on without. */
    url = prov_asprintf("%.*s/latest/api/token", (int)blen, base);
    if (url == NULL)
        return -ENOMEM;
    r = prov_cred_http("PUT", url, "X-aliyun-ecs-metadata-token-ttl-seconds: " METADATA_TOKEN_TTL,
                       NULL, timeout, &status, &body, ret_error);
    free(url);
    url = NULL;
    if (r < 0)
        return r;
    if (status == 200) {
        chomp(body);
        token = body;
        body = NULL;
        token_hdr = prov_asprintf("X-aliyun-ecs-metadata-token: %s", token);
        if (token_hdr == NULL)
            r = -ENOMEM;
    }
    free(body);
    body = NULL;

    if (r == 0 && (role == NULL || *role == '\0')) {
        url = prov_asprintf("%.*s/latest/meta-data/ram/security-credentials/", (int)blen, base);
        r = url ? prov_cred_http("GET", url, token_hdr, NULL, timeout, &status, &body, ret_error)
                : -ENOMEM;
        if (r == 0 && status != 200) {
            *ret_error = prov_asprintf("ECS metadata: listing RAM roles answered HTTP %ld", status);
            r = status == 404 ? -ENOENT : -EIO;
        }
        if (r == 0) {
            size_t n = strcspn(body, "\r\n");
            if (n == 0) {
                *ret_error =
                    prov_asprintf("ECS metadata: no RAM role is attached to this instance");
                r = -ENOENT;
            } else {
                found_role = strndup(body, n);
                r = found_role ? 0 : -ENOMEM;
            }
        }
        free(url);
        url = NULL;
        free(body);
        body = NULL;
        role = found_role;
    }

    char *enc_role = NULL;
    if (r == 0)
        r = prov_pct_encode(role, strlen(role), &enc_role);
    if (r == 0) {
        url = prov_asprintf("%.*s/latest/meta-data/ram/security-credentials/%s", (int)blen, base,
                            enc_role);
        r = url ? prov_cred_http("GET", url, token_hdr, NULL, timeout, &status, &body, ret_error)
                : -ENOMEM;
        if (r == 0 && status != 200) {
            *ret_error = prov_asprintf(
                "ECS metadata: credentials for RAM role '%s' answered HTTP %ld", role, status);
            r = status == 404 ? -ENOENT : -EIO;
        }
    }
    json_t *root = NULL;
    if (r == 0) {
        root = json_loads(body, 0, NULL);
        const char *code = json_string_value(json_object_get(root, "Code"));
        const char *id = json_string_value(json_object_get(root, "AccessKeyId"));
        const char *secret = json_string_value(json_object_get(root, "AccessKeySecret"));
        const char *sts = json_string_value(json_object_get(root, "SecurityToken"));
        const char *exp = json_string_value(json_object_get(root, "Expiration"));
        time_t expiration = 0;
        if (root == NULL || !json_is_object(root)) {
            *ret_error =
                prov_asprintf("ECS metadata: RAM role '%s': malformed credentials response", role);
            r = -EPROTO;
        } else if (code == NULL || strcmp(code, "Success") != 0) {
            *ret_error = prov_asprintf("ECS metadata: RAM role '%s': Code is '%s', not 'Success'",
                                       role, code ? code : "(missing)");
            r = -EIO;
        } else if (!id || !*id || !secret || !*secret || !sts || !*sts || !exp) {
            *ret_error = prov_asprintf("ECS metadata: RAM role '%s': response lacks %s", role,
                                       !id || !*id           ? "AccessKeyId"
                                       : !secret || !*secret ? "AccessKeySecret"
                                       : !sts || !*sts       ? "SecurityToken"
                                                             : "Expiration");
            r = -EPROTO;
        } else if (prov_parse_utc(exp, &expiration) < 0) {
            *ret_error = prov_asprintf("ECS metadata: RAM role '%s': Expiration '%s' is not "
                                       "YYYY-MM-DDThh:mm:ssZ",
                                       role, exp);
            r = -EPROTO;
        } else {
            char *source = prov_asprintf("ECS RAM role '%s' (instance metadata)", role);
            prov_credential c;
            r = source ? cred_set(&c, id, secret, sts, source) : -ENOMEM;
            free(source);
            if (r == 0) {
                c.expiration = expiration;
                c.issued = time(NULL);
                c.kind = PROV_CRED_ECS_ROLE;
                c.role_name = strdup(role);
                if (c.role_name == NULL) {
                    prov_credential_clear(&c);
                    r = -ENOMEM;
                } else {
                    *ret = c;
                }
            }
        }
    }
    json_decref(root);
    free(enc_role);
    free(url);
    prov_free_secret(body);
    prov_free_secret(token);
    prov_free_secret(token_hdr);
    free(found_role);
    return r;
}

int prov_cred_fetch(const prov_cred_opts *opts, const prov_credential *cred,
                    prov_credential *ret_fresh, char **ret_error)
{
    char *msg = NULL;
    if (cred == NULL || cred->kind == PROV_CRED_STATIC ||
        (cred->kind == PROV_CRED_ECS_ROLE && cred->role_name == NULL)) {
        if (ret_error)
            *ret_error = prov_asprintf("credential refresh: static keys cannot be refreshed");
        return -EINVAL;
    }
    prov_credential fresh = {0};
    int r = cred->kind == PROV_CRED_ECS_ROLE ? metadata_fetch(opts, cred->role_name, &fresh, &msg)
                                             : assume_full(opts, cred, &fresh, &msg);
    if (r == 0)
        r = check_fresh(&fresh, &msg);
    if (r < 0)
        return fail_with(r, msg, "credential refresh", ret_error);
    *ret_fresh = fresh;
    return 0;
}

int prov_cred_refresh(const prov_cred_opts *opts, prov_credential *cred, char **ret_error)
{
    prov_credential fresh;
    int r = prov_cred_fetch(opts, cred, &fresh, ret_error);
    if (r < 0)
        return r;
    prov_credential_clear(cred);
    *cred = fresh;
    return 0;
}

/* ---- The chain ---- */

static char *home_dir(const prov_cred_opts *opts)
{
    if (opts && opts->home)
        return strdup(opts->home);
    const char *h = env_nonempty("HOME");
    if (h)
        return strdup(h);
    struct passwd *pw = getpwuid(getuid());
    return pw && pw->pw_dir ? strdup(pw->pw_dir) : NULL;
}

/* A source the user chose (the OIDC variables, a role profile or section) failed with r and
 * msg (taken; may be NULL). Its failure is the chain's error: *ret_error is the prefix fmt
 * describes followed by msg (or strerror), and -ENOENT becomes -EINVAL, which would otherwise let
 * the chain fall through to another identity. Called by from_oidc_env, assume_from_file and
 * role_from_file; *ret_error: caller frees. */
__attribute__((format(printf, 4, 5))) static int
chosen_source_failed(int r, char *msg, char **ret_error, const char *fmt, ...)
{
    char *prefix = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&prefix, fmt, ap) < 0)
        prefix = NULL;
    va_end(ap);
    *ret_error = prefix ? prov_asprintf("%s%s", prefix, msg ? msg : strerror(-r)) : NULL;
    free(prefix);
    free(msg);
    return r == -ENOENT ? -EINVAL : r;
}

/* RRSA on ACK: the three variables name the role, the OIDC provider and the token file the
 * platform keeps fresh. All three or none; the token itself is read on every refresh. */
static int from_oidc_env(const prov_cred_opts *opts, prov_credential *ret, char **ret_error)
{
    static const char *const names[] = {"ALIBABA_CLOUD_ROLE_ARN", "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
                                        "ALIBABA_CLOUD_OIDC_TOKEN_FILE"};
    const char *v[3];
    int set = 0;
    for (int i = 0; i < 3; i++)
        set += (v[i] = env_nonempty(names[i])) != NULL;
    if (set == 0)
        return -ENOENT;
    for (int i = 0; i < 3 && set < 3; i++)
        if (v[i] == NULL) {
            *ret_error = prov_asprintf("environment: OIDC needs %s, %s and %s; %s is not set",
                                       names[0], names[1], names[2], names[i]);
            return -EINVAL;
        }
    const char *session = env_nonempty("ALIBABA_CLOUD_ROLE_SESSION_NAME");
    prov_credential recipe = {.kind = PROV_CRED_OIDC, .duration_s = 3600};
    recipe.role_arn = (char *)v[0];
    recipe.oidc_provider_arn = (char *)v[1];
    recipe.oidc_token_file = (char *)v[2];
    recipe.session_name = (char *)(session ? session : "imgrecon");
    recipe.source = prov_asprintf("OIDC role %s (ALIBABA_CLOUD_OIDC_TOKEN_FILE)", v[0]);
    if (recipe.source == NULL)
        return -ENOMEM;
    char *msg = NULL;
    int r = assume_full(opts, &recipe, ret, &msg);
    free(recipe.source);
    if (r < 0)
        return chosen_source_failed(r, msg, ret_error, "OIDC role %s: ", v[0]);
    return 0;
}

/* A RamRoleArn profile or ram_role_arn section: AssumeRole with the file's long-term key. */
static int assume_from_file(const prov_cred_opts *opts, prov_cred_lookup *l, const char *where,
                            prov_credential *ret, char **ret_error)
{
    prov_credential recipe = {.kind = PROV_CRED_ROLE_ARN};
    recipe.role_arn = l->role_arn;
    recipe.session_name = l->session_name ? l->session_name : (char *)"imgrecon";
    recipe.duration_s = l->duration_s > 0 ? l->duration_s : 3600;
    recipe.base_key_id = l->cred.access_key_id;
    recipe.base_key_secret = l->cred.access_key_secret;
    recipe.base_token = l->cred.security_token;
    recipe.source = prov_asprintf("%s, role %s", where, l->role_arn);
    if (recipe.source == NULL)
        return -ENOMEM;
    char *msg = NULL;
    int r = assume_full(opts, &recipe, ret, &msg);
    free(recipe.source);
    if (r < 0)
        return chosen_source_failed(r, msg, ret_error, "%s: assuming %s failed: ", where,
                                    l->role_arn);
    return 0;
}

/* A file source that asked for the ECS RAM role: errors are errors, since the user chose it. */
static int role_from_file(const prov_cred_opts *opts, const char *role, const char *where,
                          prov_credential *ret, char **ret_error)
{
    char *msg = NULL;
    int r = metadata_fetch(opts, role, ret, &msg);
    if (r < 0)
        return chosen_source_failed(r, msg, ret_error, "%s asks for the ECS RAM role%s%s%s, but ",
                                    where, *role ? " '" : "", role, *role ? "'" : "");
    return 0;
}

/* Turns what a credentials file said into a credential: a RamRoleArn profile (ram_role_arn
 * section) assumes its role, an EcsRamRole profile (ecs_ram_role section) asks instance metadata,
 * plain keys are moved out of l into *ret. Messages name the file and the config.json profile
 * (ini false) or the INI section (ini true). Exists so that resolve handles both files the same
 * way; l, path and name are borrowed; *ret and *ret_error: caller frees. */
static int take_lookup(const prov_cred_opts *opts, prov_cred_lookup *l, const char *path,
                       const char *name, bool ini, prov_credential *ret, char **ret_error)
{
    if (!l->wants_assume && !l->wants_role) {
        *ret = l->cred;
        memset(&l->cred, 0, sizeof(l->cred));
        return 0;
    }
    char *where;
    if (ini)
        where = prov_asprintf("%s ([%s], type %s)", path, name,
                              l->wants_assume ? "ram_role_arn" : "ecs_ram_role");
    else
        where = prov_asprintf("%s (profile '%s', mode %s)", path, name,
                              l->wants_assume ? "RamRoleArn" : "EcsRamRole");
    if (where == NULL)
        return -ENOMEM;
    int r = l->wants_assume ? assume_from_file(opts, l, where, ret, ret_error)
                            : role_from_file(opts, l->role_name, where, ret, ret_error);
    free(where);
    return r;
}

/* Runs the chain in the documented order; the first source with credentials wins and a broken
 * source stops the chain (rather than silently falling through to another identity). */
static int resolve(const prov_cred_opts *opts, prov_credential *ret, char **ret_error, looked *lk)
{
    int r = from_env(ret, ret_error);
    if (r != -ENOENT)
        return r;
    looked_add(lk, "environment (ALIBABA_CLOUD_ACCESS_KEY_ID, ALICLOUD_ACCESS_KEY)");
    r = from_oidc_env(opts, ret, ret_error);
    if (r != -ENOENT)
        return r;
    looked_add(lk, "OIDC (ALIBABA_CLOUD_ROLE_ARN unset)");

    const char *dir = env_nonempty("CREDENTIALS_DIRECTORY");
    if (dir == NULL) {
        looked_add(lk, "$CREDENTIALS_DIRECTORY (unset)");
    } else {
        r = from_credentials_directory(dir, ret, ret_error);
        if (r != -ENOENT)
            return r;
        looked_add(lk, "$CREDENTIALS_DIRECTORY=%s (no access_key_id)", dir);
    }

    const char *profile = opts && opts->profile && *opts->profile
                              ? opts->profile
                              : env_nonempty("ALIBABA_CLOUD_PROFILE");
    char *home = home_dir(opts);
    char *path = NULL, *data = NULL, *note = NULL, *json_profile = NULL;
    size_t len = 0;
    prov_cred_lookup l = {0};
    if (home == NULL) {
        looked_add(lk, "~/.aliyun/config.json (no home directory)");
    } else {
        path = prov_asprintf("%s/.aliyun/config.json", home);
        r = path ? prov_cred_read_file(path, CONFIG_MAX_BYTES, &data, &len, ret_error) : -ENOMEM;
        if (r == -ENOENT) {
            looked_add(lk, "%s (absent)", path);
        } else if (r == 0) {
            json_profile = profile ? strdup(profile) : prov_cred_config_json_current(data, len);
            r = json_profile ? prov_cred_parse_config_json(path, data, len, json_profile, &l, &note,
                                                           ret_error)
                             : -ENOMEM;
            if (r == -ENOENT)
                looked_add(lk, "%s (%s)", path, note ? note : "no such profile");
        }
        if (data)
            explicit_bzero(data, len);
        free(data);
        data = NULL;
        free(note);
        note = NULL;
        if (r == 0)
            r = take_lookup(opts, &l, path, json_profile, false, ret, ret_error);
        free(path);
        path = NULL;
        free(json_profile);
        prov_cred_lookup_clear(&l);
        if (r != -ENOENT) {
            free(home);
            return r;
        }
    }

    const char *ini_env = env_nonempty("ALIBABA_CLOUD_CREDENTIALS_FILE");
    const char *section = profile ? profile : "default";
    bool have_home = home != NULL;
    if (ini_env != NULL)
        path = strdup(ini_env);
    else if (have_home)
        path = prov_asprintf("%s/.alibabacloud/credentials", home);
    free(home);
    home = NULL;
    if (path == NULL && (ini_env != NULL || have_home))
        return -ENOMEM;
    if (path == NULL) {
        looked_add(lk, "~/.alibabacloud/credentials (no home directory)");
    } else {
        r = prov_cred_read_file(path, CONFIG_MAX_BYTES, &data, &len, ret_error);
        if (r == -ENOENT && ini_env != NULL) {
            *ret_error = prov_asprintf(
                "ALIBABA_CLOUD_CREDENTIALS_FILE names %s, which does not exist", path);
            r = -EINVAL;
        } else if (r == -ENOENT) {
            looked_add(lk, "%s (absent)", path);
        } else if (r == 0) {
            r = prov_cred_parse_ini(path, data, len, section, &l, &note, ret_error);
            if (r == -ENOENT)
                looked_add(lk, "%s (%s)", path, note ? note : "no such section");
        }
        if (data)
            explicit_bzero(data, len);
        free(data);
        free(note);
        if (r == 0)
            r = take_lookup(opts, &l, path, section, true, ret, ret_error);
        prov_cred_lookup_clear(&l);
        free(path);
        if (r != -ENOENT)
            return r;
    }

    const char *env_role = env_nonempty("ALIBABA_CLOUD_ECS_METADATA");
    if (env_role != NULL)
        return role_from_file(opts, env_role, "ALIBABA_CLOUD_ECS_METADATA", ret, ret_error);
    const char *md_off = env_nonempty("ALIBABA_CLOUD_ECS_METADATA_DISABLED");
    if (md_off != NULL && strcasecmp(md_off, "true") == 0) {
        looked_add(lk, "ECS instance metadata (ALIBABA_CLOUD_ECS_METADATA_DISABLED=true)");
        return -ENOENT;
    }
    if (opts == NULL || !opts->use_metadata) {
        looked_add(lk, "ECS instance metadata (not enabled)");
        return -ENOENT;
    }
    char *msg = NULL;
    r = metadata_fetch(opts, NULL, ret, &msg);
    if (r < 0) {
        looked_add(lk, "ECS instance metadata (%s)", msg ? msg : strerror(-r));
        free(msg);
        return -ENOENT;
    }
    return 0;
}

int prov_cred_resolve(const prov_cred_opts *opts, prov_credential *ret, char **ret_error)
{
    if (ret == NULL)
        return -EINVAL;
    looked lk = {0};
    char *msg = NULL;
    prov_credential c = {0};
    int r = resolve(opts, &c, &msg, &lk);
    if (r == 0)
        r = check_fresh(&c, &msg);
    if (r == -ENOENT && msg == NULL && !lk.oom)
        msg = prov_asprintf("no credentials found; looked in: %s", lk.s ? lk.s : "nothing");
    free(lk.s);
    if (r < 0)
        return fail_with(r, msg, "credentials", ret_error);
    free(msg);
    *ret = c;
    return 0;
}

/* Parses the account id out of "acs:ram::<digits>:role/<name>"; NULL when it is not there. */
static char *account_of_role_arn(const char *arn)
{
    if (arn == NULL || strncmp(arn, "acs:ram::", 9) != 0)
        return NULL;
    size_t n = strspn(arn + 9, "0123456789");
    return n > 0 && arn[9 + n] == ':' ? strndup(arn + 9, n) : NULL;
}

int prov_cred_account_id(const prov_cred_opts *opts, const prov_credential *cred,
                         char **ret_account_id, char **ret_error)
{
    char *acct = account_of_role_arn(cred->role_arn);
    if (acct != NULL) {
        *ret_account_id = acct;
        return 0;
    }
    char *msg = NULL;
    int r = prov_sts_caller_account(opts, cred, ret_account_id, &msg);
    if (r < 0)
        return fail_with(r, msg, "STS GetCallerIdentity", ret_error);
    free(msg);
    return 0;
}
