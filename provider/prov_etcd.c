/* The etcd v3 JSON client (prov_etcd.h). Request bodies are built with jansson; answers are
 * parsed strictly by prov_etcd_parse; transport is prov_http on a loop (async) or a curl easy
 * handle (sync), both with the same endpoint failover. */
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "prov_body.h"
#include "prov_etcd.h"
#include "prov_tls.h"
#include "prov_http.h"

/* CURLOPT_SSL_CTX_FUNCTION for the blocking requests: config `ca_file` joins the system store
 * (prov_tls_add_ca_file) instead of replacing it as CURLOPT_CAINFO would. */
static CURLcode add_ca_file(CURL *c, void *ssl_ctx, void *path)
{
    (void)c;
    return prov_tls_add_ca_file(ssl_ctx, (const char *)path) == 0 ? CURLE_OK
                                                                  : CURLE_SSL_CACERT_BADFILE;
}

#define ETCD_MAX_ANSWER (4u << 20)

struct prov_etcd {
    char **endpoints;
    size_t n_endpoints;
    size_t current; /* the endpoint tried first */
    long timeout_ms;
    char *ca_file;
    prov_http *http; /* NULL without a loop */
};

/* One asynchronous request: the body and how many endpoints it has tried. */
typedef struct etcd_req {
    prov_etcd *e;
    prov_etcd_op op;
    char *body;
    size_t tries;
    prov_etcd_cb cb;
    void *ud;
} etcd_req;

static const char *const op_paths[] = {
    [PROV_ETCD_GRANT] = "/v3/lease/grant",   [PROV_ETCD_KEEPALIVE] = "/v3/lease/keepalive",
    [PROV_ETCD_REVOKE] = "/v3/lease/revoke", [PROV_ETCD_RANGE] = "/v3/kv/range",
    [PROV_ETCD_TXN] = "/v3/kv/txn",          [PROV_ETCD_DELETE] = "/v3/kv/deleterange",
};

/* Sets r's error and its message (printf-style). */
__attribute__((format(printf, 3, 4))) static void fail(prov_etcd_result *r, int err,
                                                       const char *fmt, ...)
{
    va_list ap;
    r->err = err;
    va_start(ap, fmt);
    (void)vsnprintf(r->errmsg, sizeof(r->errmsg), fmt, ap);
    va_end(ap);
}

/* ---- base64 ---- */

/* Standard base64 of n bytes (malloc'd, caller frees). */
static char *b64_encode(const void *data, size_t n)
{
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    if (out != NULL)
        (void)EVP_EncodeBlock((unsigned char *)out, data, (int)n);
    return out;
}

/* Strict base64 decoding: length a multiple of 4, only the alphabet, '=' only at the end.
 * Returns the decoded bytes NUL-terminated (malloc'd) or NULL; *ret_len the length. */
static char *b64_decode(const char *s, size_t *ret_len, int *ret_err)
{
    size_t n = strlen(s), pad = 0;
    *ret_err = -EPROTO;
    if (n % 4 != 0)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                     c == '+' || c == '/';
        if (c == '=' && i + 2 >= n && (i + 1 == n || s[i + 1] == '='))
            pad++;
        else if (!alpha || pad > 0)
            return NULL;
    }
    char *out = malloc(n / 4 * 3 + 1);
    if (out == NULL) {
        *ret_err = -ENOMEM;
        return NULL;
    }
    int got = n ? EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n) : 0;
    if (got < 0 || (size_t)got < pad) {
        free(out);
        return NULL;
    }
    *ret_len = (size_t)got - pad;
    out[*ret_len] = '\0';
    return out;
}

/* ---- request bodies ---- */

static char *dump(json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return s;
}

static json_t *b64_json(const char *s)
{
    char *b = b64_encode(s, strlen(s));
    json_t *j = b ? json_string(b) : NULL;
    free(b);
    return j;
}

static json_t *i64_json(int64_t v)
{
    char buf[32];
    (void)snprintf(buf, sizeof(buf), "%" PRId64, v);
    return json_string(buf);
}

char *prov_etcd_body_grant(int64_t ttl_s)
{
    return dump(json_pack("{s:o}", "TTL", i64_json(ttl_s)));
}

char *prov_etcd_body_lease(int64_t id)
{
    return dump(json_pack("{s:o}", "ID", i64_json(id)));
}

/* The end of a prefix range: the key with its last byte incremented (etcd's convention). */
static char *prefix_end(const char *key)
{
    size_t n = strlen(key);
    char *end = strdup(key);
    while (end != NULL && n > 0) {
        if ((unsigned char)end[n - 1] < 0xff) {
            end[n - 1]++;
            end[n] = '\0';
            return end;
        }
        n--;
    }
    free(end);
    return NULL;
}

char *prov_etcd_body_range(const char *key, bool prefix)
{
    json_t *j = json_pack("{s:o}", "key", b64_json(key));
    if (j != NULL && prefix) {
        char *end = prefix_end(key);
        if (end == NULL || json_object_set_new(j, "range_end", b64_json(end)) < 0) {
            json_decref(j);
            j = NULL;
        }
        free(end);
    }
    return dump(j);
}

char *prov_etcd_body_delete(const char *key)
{
    return dump(json_pack("{s:o}", "key", b64_json(key)));
}

/* The compare of a conditional put: the key's mod_revision is mod_revision (0: it is absent). */
static json_t *compare_rev(const char *key, int64_t mod_revision)
{
    return mod_revision == 0 ? json_pack("{s:o,s:s,s:s,s:s}", "key", b64_json(key), "target",
                                         "CREATE", "result", "EQUAL", "create_revision", "0")
                             : json_pack("{s:o,s:s,s:s,s:o}", "key", b64_json(key), "target", "MOD",
                                         "result", "EQUAL", "mod_revision", i64_json(mod_revision));
}

static json_t *request_put(const char *key, const char *value, int64_t lease)
{
    return json_pack("{s:{s:o,s:o,s:o}}", "request_put", "key", b64_json(key), "value",
                     b64_json(value), "lease", i64_json(lease));
}

char *prov_etcd_body_put_if(const char *key, const char *value, int64_t lease, int64_t mod_revision)
{
    json_t *cmp = compare_rev(key, mod_revision);
    json_t *put = request_put(key, value, lease);
    json_t *get = json_pack("{s:{s:o}}", "request_range", "key", b64_json(key));
    if (cmp == NULL || put == NULL || get == NULL) {
        json_decref(cmp);
        json_decref(put);
        json_decref(get);
        return NULL;
    }
    return dump(json_pack("{s:[o],s:[o],s:[o]}", "compare", cmp, "success", put, "failure", get));
}

char *prov_etcd_body_put_all_if(const prov_etcd_put *puts, size_t n)
{
    json_t *doc = json_object(), *cmps = json_array(), *oks = json_array(), *fail = json_array();
    bool ok = doc != NULL && cmps != NULL && oks != NULL && fail != NULL &&
              json_object_set(doc, "compare", cmps) == 0 &&
              json_object_set(doc, "success", oks) == 0 &&
              json_object_set(doc, "failure", fail) == 0;
    for (size_t i = 0; ok && i < n; i++)
        ok = json_array_append_new(cmps, compare_rev(puts[i].key, puts[i].mod_revision)) == 0 &&
             json_array_append_new(oks, request_put(puts[i].key, puts[i].value, 0)) == 0;
    json_decref(cmps);
    json_decref(oks);
    json_decref(fail);
    if (!ok) {
        json_decref(doc);
        return NULL;
    }
    return dump(doc);
}

/* ---- answers ---- */

/* An int64 field: absent is 0 (proto3 omits zero values); a decimal string or an integer. */
static bool get_i64(json_t *obj, const char *name, int64_t *ret)
{
    json_t *v = json_object_get(obj, name);
    *ret = 0;
    if (v == NULL)
        return true;
    if (json_is_integer(v)) {
        *ret = json_integer_value(v);
        return true;
    }
    const char *s = json_string_value(v);
    if (s == NULL || *s == '\0' || strlen(s) > 20)
        return false;
    char *end = NULL;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *ret = x;
    return true;
}

/* One kv object into out; returns 0 or a negative errno with r's message set. */
static int parse_kv(json_t *o, prov_etcd_kv *out, prov_etcd_result *r)
{
    const char *k = json_string_value(json_object_get(o, "key"));
    json_t *vj = json_object_get(o, "value");
    const char *v = vj ? json_string_value(vj) : "";
    int err = 0;
    size_t klen = 0;
    if (!json_is_object(o) || k == NULL || v == NULL)
        return fail(r, -EPROTO, "etcd answered a key-value without a key or value"), -EPROTO;
    if (!get_i64(o, "create_revision", &out->create_revision) ||
        !get_i64(o, "mod_revision", &out->mod_revision) || !get_i64(o, "lease", &out->lease))
        return fail(r, -EPROTO, "etcd answered a key-value with a malformed number"), -EPROTO;
    out->key = b64_decode(k, &klen, &err);
    if (out->key != NULL && strlen(out->key) != klen) {
        free(out->key);
        out->key = NULL;
    }
    if (out->key == NULL)
        return fail(r, err, "etcd answered a key that is not valid base64"), err;
    out->value = b64_decode(v, &out->value_len, &err);
    if (out->value == NULL)
        return fail(r, err, "etcd answered a value that is not valid base64"), err;
    return 0;
}

static int parse_kvs(json_t *arr, prov_etcd_result *r)
{
    if (arr == NULL)
        return 0;
    if (!json_is_array(arr))
        return fail(r, -EPROTO, "etcd answered 'kvs' that is not a list"), -EPROTO;
    size_t n = json_array_size(arr);
    if (n == 0)
        return 0;
    r->kvs = calloc(n, sizeof(*r->kvs));
    if (r->kvs == NULL)
        return fail(r, -ENOMEM, "out of memory"), -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        r->n_kvs = i + 1;
        int rc = parse_kv(json_array_get(arr, i), &r->kvs[i], r);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* gRPC codes that mean "another member may serve this": unavailable, deadline exceeded. */
static bool code_retryable(int64_t code)
{
    return code == 14 || code == 4;
}

void prov_etcd_parse(prov_etcd_op op, long http_status, const char *body, size_t len,
                     prov_etcd_result *r)
{
    memset(r, 0, sizeof(*r));
    json_error_t je;
    json_t *root = body ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &je) : NULL;
    if (!json_is_object(root)) {
        fail(r, -EPROTO, "etcd answered HTTP %ld with something that is not a JSON object",
             http_status);
        json_decref(root);
        return;
    }
    json_t *err = json_object_get(root, "error");
    int64_t code = 0;
    if (err != NULL || http_status != 200) {
        const char *msg = json_string_value(json_object_get(root, "message"));
        if (msg == NULL)
            msg = json_string_value(err);
        (void)get_i64(root, "code", &code);
        fail(r, code_retryable(code) || http_status >= 500 ? -EAGAIN : -EIO,
             "etcd refused the request (HTTP %ld, code %" PRId64 "): %.160s", http_status, code,
             msg ? msg : "no message");
        json_decref(root);
        return;
    }
    json_t *o = op == PROV_ETCD_KEEPALIVE ? json_object_get(root, "result") : root;
    json_t *hdr = json_object_get(o, "header");
    if (!json_is_object(o) || !json_is_object(hdr) || !get_i64(hdr, "revision", &r->revision) ||
        !get_i64(o, "ID", &r->id) || !get_i64(o, "TTL", &r->ttl)) {
        fail(r, -EPROTO, "etcd answered JSON that is not an etcd v3 %s answer", op_paths[op]);
        json_decref(root);
        return;
    }
    json_t *ok = json_object_get(o, "succeeded");
    if (ok != NULL && !json_is_boolean(ok)) {
        fail(r, -EPROTO, "etcd answered a txn whose 'succeeded' is not a boolean");
        json_decref(root);
        return;
    }
    /* Only a txn answers whether it succeeded: a range that says so (garbage) must not read as
     * a won compare-and-put. */
    r->succeeded = op == PROV_ETCD_TXN && json_is_true(ok);
    json_t *kvs = json_object_get(o, "kvs");
    if (op == PROV_ETCD_TXN) {
        json_t *resps = json_object_get(o, "responses");
        if (resps != NULL && !json_is_array(resps)) {
            fail(r, -EPROTO, "etcd answered a txn whose 'responses' is not a list");
            json_decref(root);
            return;
        }
        for (size_t i = 0; i < json_array_size(resps) && kvs == NULL; i++) {
            json_t *rr = json_object_get(json_array_get(resps, i), "response_range");
            kvs = json_object_get(rr, "kvs");
        }
    }
    if (op == PROV_ETCD_GRANT && (r->id == 0 || r->ttl <= 0))
        fail(r, -EPROTO, "etcd granted a lease without an ID or TTL");
    else
        (void)parse_kvs(kvs, r);
    json_decref(root);
}

void prov_etcd_result_clear(prov_etcd_result *r)
{
    for (size_t i = 0; r != NULL && i < r->n_kvs; i++) {
        free(r->kvs[i].key);
        free(r->kvs[i].value);
    }
    if (r != NULL) {
        free(r->kvs);
        r->kvs = NULL;
        r->n_kvs = 0;
    }
}

/* ---- client ---- */

int prov_etcd_new(uv_loop_t *loop, const prov_etcd_opts *opts, prov_etcd **ret)
{
    if (opts == NULL || opts->n_endpoints == 0)
        return -EINVAL;
    prov_etcd *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return -ENOMEM;
    e->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 2000;
    e->endpoints = calloc(opts->n_endpoints, sizeof(*e->endpoints));
    int rc = e->endpoints ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < opts->n_endpoints; i++) {
        const char *s = opts->endpoints[i];
        size_t n = strlen(s);
        while (n > 0 && s[n - 1] == '/')
            n--; /* "http://h:2379/" and "http://h:2379" name the same base */
        e->endpoints[i] = strndup(s, n);
        rc = e->endpoints[i] ? 0 : -ENOMEM;
        e->n_endpoints = i + 1;
    }
    if (rc == 0 && opts->ca_file != NULL && (e->ca_file = strdup(opts->ca_file)) == NULL)
        rc = -ENOMEM;
    if (rc == 0 && loop != NULL) {
        prov_http_opts ho = {.connect_timeout_ms = e->timeout_ms,
                             .timeout_ms = e->timeout_ms,
                             .max_response = ETCD_MAX_ANSWER,
                             .ca_file = e->ca_file};
        rc = prov_http_new(loop, &ho, &e->http);
    }
    if (rc < 0) {
        prov_etcd_close(e);
        return rc;
    }
    *ret = e;
    return 0;
}

void prov_etcd_close(prov_etcd *e)
{
    if (e == NULL)
        return;
    prov_http_close(e->http);
    for (size_t i = 0; i < e->n_endpoints; i++)
        free(e->endpoints[i]);
    free(e->endpoints);
    free(e->ca_file);
    free(e);
}

const char *prov_etcd_endpoint(const prov_etcd *e)
{
    return e && e->n_endpoints ? e->endpoints[e->current] : "";
}

static char *url_for(const prov_etcd *e, size_t idx, prov_etcd_op op)
{
    char *url = NULL;
    if (asprintf(&url, "%s%s", e->endpoints[idx], op_paths[op]) < 0)
        return NULL;
    return url;
}

/* Turns one transport outcome into a result; true when the next endpoint should be tried. */
static bool outcome(prov_etcd *e, prov_etcd_op op, int err, const char *errmsg, long status,
                    const char *body, size_t len, prov_etcd_result *r)
{
    const char *ep = e->endpoints[e->current];
    if (err != 0) {
        memset(r, 0, sizeof(*r));
        fail(r, err, "etcd %s: %s", ep, errmsg ? errmsg : strerror(-err));
        return true;
    }
    prov_etcd_parse(op, status, body, len, r);
    if (r->err != 0) {
        char tmp[sizeof(r->errmsg)];
        (void)snprintf(tmp, sizeof(tmp), "etcd %s: %s", ep, r->errmsg);
        memcpy(r->errmsg, tmp, sizeof(tmp));
    }
    return r->err == -EAGAIN || r->err == -EPROTO;
}

static int send_async(etcd_req *q);

static void on_http(const prov_http_response *res, void *ud)
{
    etcd_req *q = ud;
    prov_etcd *e = q->e;
    prov_etcd_result r;
    bool next = outcome(e, q->op, res->err, res->errmsg, res->status, res->body, res->body_len, &r);
    if (next && res->err != -ECANCELED && q->tries < e->n_endpoints) {
        prov_etcd_result_clear(&r);
        e->current = (e->current + 1) % e->n_endpoints;
        if (send_async(q) == 0)
            return;
        memset(&r, 0, sizeof(r));
        fail(&r, -ENOMEM, "cannot start an etcd request");
    }
    q->cb(&r, q->ud);
    prov_etcd_result_clear(&r);
    free(q->body);
    free(q);
}

static int send_async(etcd_req *q)
{
    static const prov_kv ct[] = {{"Content-Type", "application/json"}};
    const prov_kvs headers = {(prov_kv *)ct, 1, 1};
    char *url = url_for(q->e, q->e->current, q->op);
    if (url == NULL)
        return -ENOMEM;
    q->tries++;
    int rc =
        prov_http_request(q->e->http, "POST", url, &headers, q->body, strlen(q->body), on_http, q);
    free(url);
    return rc;
}

int prov_etcd_call(prov_etcd *e, prov_etcd_op op, const char *body, prov_etcd_cb cb, void *ud)
{
    if (e == NULL || e->http == NULL || body == NULL || cb == NULL)
        return -EINVAL;
    etcd_req *q = calloc(1, sizeof(*q));
    if (q == NULL || (q->body = strdup(body)) == NULL) {
        free(q);
        return -ENOMEM;
    }
    *q = (etcd_req){e, op, q->body, 0, cb, ud};
    int rc = send_async(q);
    if (rc < 0) {
        free(q->body);
        free(q);
    }
    return rc;
}

/* ---- synchronous ---- */

/* One blocking POST to one endpoint. */
static bool sync_once(prov_etcd *e, prov_etcd_op op, const char *body, prov_etcd_result *r)
{
    prov_body b = {.max = ETCD_MAX_ANSWER};
    char errbuf[CURL_ERROR_SIZE] = "";
    char *url = url_for(e, e->current, op);
    CURL *c = url ? curl_easy_init() : NULL;
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    long status = 0;
    CURLcode cc = CURLE_OUT_OF_MEMORY;
    if (c != NULL && h != NULL) {
        (void)curl_easy_setopt(c, CURLOPT_URL, url);
        (void)curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        (void)curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        (void)curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        (void)curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, e->timeout_ms);
        (void)curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, e->timeout_ms);
        (void)curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        (void)curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
        (void)curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, prov_body_write);
        (void)curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
        if (e->ca_file != NULL) { /* added to the system store, as for the API (prov_tls.h) */
            (void)curl_easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, add_ca_file);
            (void)curl_easy_setopt(c, CURLOPT_SSL_CTX_DATA, (void *)e->ca_file);
        }
        cc = curl_easy_perform(c);
        (void)curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    }
    int err = cc == CURLE_OK                   ? 0
              : cc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT
              : b.too_big                      ? -EFBIG
              : cc == CURLE_COULDNT_CONNECT    ? -ECONNREFUSED
                                               : -EIO;
    bool next = outcome(e, op, err, errbuf[0] ? errbuf : curl_easy_strerror(cc), status,
                        b.data ? b.data : "", b.len, r);
    curl_slist_free_all(h);
    if (c != NULL)
        curl_easy_cleanup(c);
    free(url);
    prov_body_clear(&b);
    return next;
}

void prov_etcd_call_sync(prov_etcd *e, prov_etcd_op op, const char *body, prov_etcd_result *ret)
{
    memset(ret, 0, sizeof(*ret));
    if (e == NULL || body == NULL) {
        fail(ret, -EINVAL, "no etcd client or request");
        return;
    }
    for (size_t i = 0; i < e->n_endpoints; i++) {
        if (i > 0) {
            prov_etcd_result_clear(ret);
            e->current = (e->current + 1) % e->n_endpoints;
        }
        if (!sync_once(e, op, body, ret))
            return;
    }
}
