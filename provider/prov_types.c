/* Plain provider data: image records (free, deep copy, tag lookup) and the error record with
 * its classification (provider/README.md "Errors"). */
#include "prov_types.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    e.message = dup_or_null(message, &oom);
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
