/* Plain provider data: image records (free, deep copy, tag lookup) and the error record with
 * its classification (provider/README.md "Errors"). */
#include "prov_types.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void prov_image_clear(prov_image *img)
{
    if (img == NULL)
        return;
    free(img->image_id);
    free(img->name);
    free(img->description);
    free(img->instance_id);
    free(img->system_snapshot_id);
    free(img->data_snapshot_id);
    free(img->resource_group_id);
    free(img->region_id);
    free(img->creation_time);
    for (size_t i = 0; i < img->n_tags; i++) {
        free(img->tags[i].key);
        free(img->tags[i].value);
    }
    free(img->tags);
    for (size_t i = 0; i < img->n_share_accounts; i++)
        free(img->share_accounts[i]);
    free(img->share_accounts);
    memset(img, 0, sizeof(*img));
    img->status = PROV_IMG_UNKNOWN;
}

void prov_image_list_clear(prov_image_list *list)
{
    if (list == NULL)
        return;
    for (size_t i = 0; i < list->n; i++)
        prov_image_clear(&list->v[i]);
    free(list->v);
    list->v = NULL;
    list->n = 0;
}

void prov_ecs_image_clear(prov_ecs_image *e)
{
    if (e == NULL)
        return;
    free(e->image_id);
    free(e->name);
    free(e->status);
    free(e->owner_alias);
    free(e->usage);
    memset(e, 0, sizeof(*e));
}

void prov_ecs_image_list_clear(prov_ecs_image_list *list)
{
    if (list == NULL)
        return;
    for (size_t i = 0; i < list->n; i++)
        prov_ecs_image_clear(&list->v[i]);
    free(list->v);
    list->v = NULL;
    list->n = 0;
}

void prov_tag_resource_list_free(prov_tag_resource_list *list)
{
    if (list == NULL)
        return;
    for (size_t i = 0; i < list->n; i++) {
        free(list->v[i].resource_id);
        free(list->v[i].resource_type);
        free(list->v[i].key);
        free(list->v[i].value);
    }
    free(list->v);
    list->v = NULL;
    list->n = 0;
}

void prov_str_list_free(prov_str_list *list)
{
    if (list == NULL)
        return;
    for (size_t i = 0; i < list->n; i++)
        free(list->v[i]);
    free(list->v);
    list->v = NULL;
    list->n = 0;
}

int prov_str_list_add(prov_str_list *list, const char *s)
{
    if (list == NULL || s == NULL)
        return -EINVAL;
    char *d = strdup(s);
    char **g = d ? realloc(list->v, (list->n + 1) * sizeof(*g)) : NULL;
    if (g == NULL) {
        free(d);
        return -ENOMEM;
    }
    list->v = g;
    list->v[list->n++] = d;
    return 0;
}

/* strdup that keeps NULL as NULL and reports allocation failure through *oom. */
static char *dup_or_null(const char *s, int *oom)
{
    if (s == NULL)
        return NULL;
    char *d = strdup(s);
    if (d == NULL)
        *oom = 1;
    return d;
}

/* Used by the reconciler to keep observed images beyond the callback that delivered them. dst is
 * written only on success. */
int prov_image_copy(prov_image *dst, const prov_image *src)
{
    if (dst == NULL || src == NULL)
        return -EINVAL;
    int oom = 0;
    prov_image c = {0};
    c.image_id = dup_or_null(src->image_id, &oom);
    c.name = dup_or_null(src->name, &oom);
    c.description = dup_or_null(src->description, &oom);
    c.instance_id = dup_or_null(src->instance_id, &oom);
    c.system_snapshot_id = dup_or_null(src->system_snapshot_id, &oom);
    c.data_snapshot_id = dup_or_null(src->data_snapshot_id, &oom);
    c.resource_group_id = dup_or_null(src->resource_group_id, &oom);
    c.region_id = dup_or_null(src->region_id, &oom);
    c.creation_time = dup_or_null(src->creation_time, &oom);
    c.status = src->status;
    c.in_share = src->in_share;
    c.in_share_user = src->in_share_user;
    c.share_accounts_known = src->share_accounts_known;
    if (src->n_share_accounts > 0 && !oom) {
        c.share_accounts = calloc(src->n_share_accounts, sizeof(*c.share_accounts));
        if (c.share_accounts == NULL) {
            oom = 1;
        } else {
            c.n_share_accounts = src->n_share_accounts;
            for (size_t i = 0; i < src->n_share_accounts; i++)
                c.share_accounts[i] = dup_or_null(src->share_accounts[i], &oom);
        }
    }
    if (src->n_tags > 0 && !oom) {
        c.tags = calloc(src->n_tags, sizeof(*c.tags));
        if (c.tags == NULL) {
            oom = 1;
        } else {
            c.n_tags = src->n_tags;
            for (size_t i = 0; i < src->n_tags; i++) {
                c.tags[i].key = dup_or_null(src->tags[i].key, &oom);
                c.tags[i].value = dup_or_null(src->tags[i].value, &oom);
            }
        }
    }
    if (oom) {
        prov_image_clear(&c);
        return -ENOMEM;
    }
    *dst = c;
    return 0;
}

const char *prov_image_tag(const prov_image *img, const char *key)
{
    if (img == NULL || key == NULL)
        return NULL;
    for (size_t i = 0; i < img->n_tags; i++)
        if (img->tags[i].key != NULL && strcmp(img->tags[i].key, key) == 0)
            return img->tags[i].value ? img->tags[i].value : "";
    return NULL;
}

const char *prov_err_class_name(prov_err_class cls)
{
    switch (cls) {
    case PROV_ERR_NONE:
        return "none";
    case PROV_ERR_THROTTLED:
        return "throttled";
    case PROV_ERR_TRANSIENT:
        return "transient";
    case PROV_ERR_DONE:
        return "done";
    case PROV_ERR_ORDER:
        return "order";
    case PROV_ERR_PERMANENT:
        return "permanent";
    }
    return "unknown";
}

static int streq(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}

/* Local failures worth retrying: the network and a cut-off or garbled answer. */
static int sys_is_transient(int sys)
{
    switch (-sys) {
    case ETIMEDOUT:
    case ECONNRESET:
    case ECONNREFUSED:
    case ECONNABORTED:
    case EPIPE:
    case EPROTO:
    case EIO:
    case EAGAIN:
    case EHOSTUNREACH:
    case ENETUNREACH:
    case ENETDOWN:
        return 1;
    default:
        return 0;
    }
}

/* The retry policy's input: called by the client for every failed call. The API's Code decides
 * when there is one; otherwise the HTTP status and then the local errno. */
prov_err_class prov_err_classify(const char *action, long http_status, const char *code, int sys)
{
    if (code != NULL && *code != '\0') {
        if (streq(code, "Throttling") || strncmp(code, "Throttling.", 11) == 0 ||
            streq(code, "Rejected.Throttling"))
            return PROV_ERR_THROTTLED;
        if (streq(code, "InternalError") || streq(code, "ServiceUnavailable") ||
            streq(code, "UnknownError"))
            return PROV_ERR_TRANSIENT;
        /* Our nonces are random per attempt, so this means the transport sent one attempt
         * twice: libcurl silently resends a request whose reused keep-alive connection closed
         * without an answer. The next attempt is signed with a new nonce (and a mutating call
         * keeps its ClientToken), so it is retried like a dropped connection. */
        if (streq(code, "SignatureNonceUsed"))
            return PROV_ERR_TRANSIENT;
        /* A call signed just before its STS token expired: the client refreshes the credential
         * before the next attempt (prov_client_opts.refresh). */
        if (streq(code, "InvalidSecurityToken.Expired"))
            return PROV_ERR_TRANSIENT;
        if (streq(code, "DryRunOperation"))
            return PROV_ERR_DONE;
        if (streq(code, "InvalidImageId.NotFound") &&
            (streq(action, "DeleteCustomImage") || streq(action, "DeleteImage")))
            return PROV_ERR_DONE;
        /* Removing what is already gone is the outcome asked for: an untag or an account
         * removal on an image deleted meanwhile. Adding is not (the image is needed). */
        if (streq(code, "InvalidResourceId.NotFound") && streq(action, "UntagResources"))
            return PROV_ERR_DONE;
        if (streq(code, "InvalidImageId.NotFound") &&
            streq(action, "RemoveCustomImageShareAccount"))
            return PROV_ERR_DONE;
        if (streq(code, "CustomImageInShare"))
            return PROV_ERR_ORDER;
        if (http_status == 429)
            return PROV_ERR_THROTTLED;
        return PROV_ERR_PERMANENT;
    }
    if (http_status == 429)
        return PROV_ERR_THROTTLED;
    if (http_status == 500 || http_status == 502 || http_status == 503 || http_status == 504)
        return PROV_ERR_TRANSIENT;
    if (sys != 0)
        return sys_is_transient(sys) ? PROV_ERR_TRANSIENT : PROV_ERR_PERMANENT;
    if (http_status == 0 || (http_status >= 200 && http_status < 300))
        return PROV_ERR_NONE;
    return PROV_ERR_PERMANENT;
}

/* ---- Redacting secret parameters from API messages ---- */

/* The parameters whose values must never leave the process. SecurityToken and the V3 header
 * carry the STS token; a Signature next to the string to sign it covers is an offline oracle
 * for guessing the secret; AccessKeySecret and OIDCToken are secrets themselves. AccessKeyId
 * stays: it names the key (the console shows it), and a user needs it to see which key failed. */
static const char *const redacted_params[] = {
    "SecurityToken", "Signature", "AccessKeySecret", "OIDCToken", "x-acs-security-token",
};

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_name_char(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           c == '-' || c == '.';
}

/* Length of "%" "25"*depth followed by the two hex digits hex2 (case-insensitive) at s: the
 * character hex2 stands for, percent-encoded depth + 1 times. 0 when s does not start so. */
static size_t encoded_len(const char *s, unsigned depth, const char *hex2)
{
    if (s[0] != '%')
        return 0;
    size_t n = 1;
    for (unsigned i = 0; i < depth; i++, n += 2)
        if (s[n] != '2' || s[n + 1] != '5')
            return 0;
    if (strncasecmp(s + n, hex2, 2) != 0)
        return 0;
    return n + 2;
}

/* True when a parameter name may start at text + i: at the start, after a character that
 * cannot belong to a name, or right after a percent escape (…%26Name, …%2526Name). */
static bool name_may_start(const char *text, size_t i)
{
    if (i == 0 || !is_name_char(text[i - 1]))
        return true;
    if (i < 3 || !is_hex(text[i - 1]) || !is_hex(text[i - 2]))
        return false;
    size_t j = i - 2;
    while (j >= 3 && text[j - 2] == '2' && text[j - 1] == '5')
        j -= 2;
    return text[j - 1] == '%';
}

/* After a redacted name at s: the separator ('=' or ':' raw, "%3D" encoded once, "%253D" twice,
 * …), optionally inside JSON quotes. Returns the separator's length with *ret_depth (0 raw,
 * n when the separator is percent-encoded n times), or 0 when s holds none. */
static size_t separator_len(const char *s, unsigned *ret_depth)
{
    size_t q = s[0] == '"' ? 1 : 0;
    size_t n = 0;
    if (s[q] == '=' || s[q] == ':') {
        n = q + 1;
        *ret_depth = 0;
        while (s[n] == ' ')
            n++;
        if (s[n] == '"')
            n++;
        return n;
    }
    if (q != 0 || s[0] != '%')
        return 0;
    unsigned depth = 0;
    n = 1;
    while (s[n] == '2' && s[n + 1] == '5') {
        n += 2;
        depth++;
    }
    if (strncasecmp(s + n, "3D", 2) != 0)
        return 0;
    *ret_depth = depth + 1;
    return n + 2;
}

/* Length of the value at s after a separator of the given depth. A raw value runs to '&', blank
 * or punctuation that cannot be part of a token; an encoded one over URL characters up to the
 * '&' encoded at the same depth ("%26" after "%3D", "%2526" after "%253D"). */
static size_t value_len(const char *s, unsigned depth)
{
    size_t n = 0;
    if (depth == 0)
        return strcspn(s, "&\"'<>,;)]} \t\r\n\\");
    while (s[n] != '\0') {
        char c = s[n];
        if (c == '%' && encoded_len(s + n, depth - 1, "26") != 0)
            break;
        if (!is_name_char(c) && c != '~' && c != '%' && c != '+' && c != '*' && c != '/' &&
            c != '=')
            break;
        n++;
    }
    return n;
}

int prov_redact_message(const char *text, char **ret)
{
    if (text == NULL || ret == NULL)
        return -EINVAL;
    size_t len = strlen(text);
    /* Each redaction consumes at least 11 bytes (a name of 9 or more, a separator, a value) and
     * writes at most 2 more than it consumes, so the copy never exceeds len + len / 3. */
    char *out = malloc(len + len / 3 + 4);
    if (out == NULL)
        return -ENOMEM;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t skip = 0;
        bool may_start = name_may_start(text, i);
        for (size_t k = 0; may_start && k < sizeof(redacted_params) / sizeof(redacted_params[0]);
             k++) {
            size_t nl = strlen(redacted_params[k]);
            if (strncasecmp(text + i, redacted_params[k], nl) != 0)
                continue;
            unsigned depth = 0;
            size_t sl = separator_len(text + i + nl, &depth);
            size_t vl = sl != 0 ? value_len(text + i + nl + sl, depth) : 0;
            if (vl == 0)
                continue;
            memcpy(out + o, text + i, nl + sl);
            o += nl + sl;
            memcpy(out + o, "***", 3);
            o += 3;
            skip = nl + sl + vl;
            break;
        }
        if (skip == 0)
            out[o++] = text[i++];
        else
            i += skip;
    }
    out[o] = '\0';
    *ret = out;
    return 0;
}

/* err must be zero-initialised or hold an earlier value, which is replaced. On -ENOMEM err is
 * left as it was. */
int prov_error_set(prov_error *err, long http_status, int sys, const char *code,
                   const char *message, const char *request_id, const char *action)
{
    if (err == NULL)
        return -EINVAL;
    int oom = 0;
    prov_error e = {0};
    e.http_status = http_status;
    e.sys = sys;
    e.code = dup_or_null(code, &oom);
    /* The message is the one field an API fills with request text (the string to sign of a
     * SignatureDoesNotMatch), so it is stored without the secrets it may quote. */
    if (message != NULL && prov_redact_message(message, &e.message) < 0)
        oom = 1;
    e.request_id = dup_or_null(request_id, &oom);
    e.cls = prov_err_classify(action, http_status, code, sys);
    if (oom) {
        prov_error_clear(&e);
        return -ENOMEM;
    }
    prov_error_clear(err);
    *err = e;
    return 0;
}

/* dst must be zero-initialised or hold an earlier value, which is replaced. */
int prov_error_copy(prov_error *dst, const prov_error *src)
{
    if (dst == NULL || src == NULL)
        return -EINVAL;
    int oom = 0;
    prov_error e = *src;
    e.code = dup_or_null(src->code, &oom);
    e.message = dup_or_null(src->message, &oom);
    e.request_id = dup_or_null(src->request_id, &oom);
    if (oom) {
        prov_error_clear(&e);
        return -ENOMEM;
    }
    prov_error_clear(dst);
    *dst = e;
    return 0;
}

void prov_error_clear(prov_error *err)
{
    if (err == NULL)
        return;
    free(err->code);
    free(err->message);
    free(err->request_id);
    memset(err, 0, sizeof(*err));
}

/* The one-line form users see: the API's words when it answered, the local cause otherwise. */
char *prov_error_describe(const prov_error *err)
{
    if (err == NULL)
        return NULL;
    char *out = NULL;
    int n;
    const char *msg = err->message && *err->message ? err->message : NULL;
    if (err->code != NULL && *err->code != '\0') {
        n = asprintf(&out, "%s%s%s%s%s%s", err->code, msg ? ": " : "", msg ? msg : "",
                     err->request_id ? " (RequestId: " : "", err->request_id ? err->request_id : "",
                     err->request_id ? ")" : "");
    } else if (err->sys == -EPROTO && msg != NULL) {
        /* A malformed or inconsistent answer: the message says what was wrong with it, and
         * "Protocol error" would only add noise. */
        n = asprintf(&out, "%s", msg);
    } else if (err->sys != 0) {
        n = asprintf(&out, "%s%s%s", msg ? msg : "", msg ? ": " : "", strerror(-err->sys));
    } else if (err->http_status != 0) {
        n = asprintf(&out, "HTTP %ld%s%s%s%s%s", err->http_status, msg ? ": " : "", msg ? msg : "",
                     err->request_id ? " (RequestId: " : "", err->request_id ? err->request_id : "",
                     err->request_id ? ")" : "");
    } else {
        n = asprintf(&out, "%s", msg ? msg : "unknown error");
    }
    return n < 0 ? NULL : out;
}
