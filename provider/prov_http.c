/* Asynchronous HTTP (prov_http.h): one libcurl multi handle driven by a libuv loop, in the shape
 * of curl's docs/examples/multi-uv.c: one uv_timer per multi, one uv_poll context per socket
 * attached with curl_multi_assign. Beyond that example: every return is checked, poll errors
 * become CURL_CSELECT_ERR, curl_multi_info_read is drained after every socket_action, user
 * callbacks never run inside libcurl's callbacks (completions are collected and delivered from
 * the uv callbacks after curl_multi_remove_handle), and close tears down in order: requests,
 * the multi handle, then the uv handles, with memory freed in the last close callback. */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "prov_body.h"
#include "prov_http.h"
#include "prov_tls.h"
#include "prov_types.h"

typedef struct http_req http_req;

struct prov_http {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer; /* curl's timeout timer */
    prov_http_opts opts;
    http_req *reqs;          /* every request under way, doubly linked */
    struct http_sock *socks; /* every open poll context, for close */
    size_t pending;
    unsigned open_handles; /* uv handles not yet closed (timer and polls) */
    bool closing;
};

/* One socket's poll context, owned by curl through curl_multi_assign. */
typedef struct http_sock {
    uv_poll_t poll;
    curl_socket_t fd;
    prov_http *http;
    bool closing;
    struct http_sock *prev, *next;
} http_sock;

struct http_req {
    prov_http *http;
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    prov_body resp; /* its max is the client's max_response */
    prov_kvs resp_headers;
    prov_http_cb cb;
    void *ud;
    http_req *prev, *next;
    char errbuf[CURL_ERROR_SIZE];
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_OK;

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void handle_closed(uv_handle_t *h);

/* Maps a libcurl result to a negative errno for callers that do not speak curl. */
static int map_curl_error(CURLcode rc)
{
    switch (rc) {
    case CURLE_OK:
        return 0;
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    case CURLE_COULDNT_CONNECT:
        return -ECONNREFUSED;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return -EHOSTUNREACH;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
        return -ECONNRESET;
    case CURLE_WRITE_ERROR:
        return -EFBIG; /* only our size cap makes the write callback fail */
    case CURLE_OUT_OF_MEMORY:
        return -ENOMEM;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
        return -EACCES;
    default:
        return -EIO;
    }
}

static void req_free(http_req *r)
{
    if (r == NULL)
        return;
    curl_slist_free_all(r->headers);
    free(r->body);
    prov_body_clear(&r->resp);
    prov_kvs_clear(&r->resp_headers);
    free(r);
}

static void req_unlink(prov_http *http, http_req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else if (http->reqs == r)
        http->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

/* Hands a finished request to its owner and frees it. The easy handle is already out of the
 * multi, so the user callback may start new requests or close the client. */
static void req_deliver(prov_http *http, http_req *r, int err, long status)
{
    prov_http_response res = {
        .err = err,
        .errmsg = err ? (r->errbuf[0] ? r->errbuf : strerror(-err)) : NULL,
        .status = status,
        .body = r->resp.data ? r->resp.data : "",
        .body_len = r->resp.len,
        .headers = &r->resp_headers,
    };
    if (err == -EFBIG && r->resp.too_big)
        res.errmsg = "response larger than the configured limit";
    http->pending--;
    if (r->easy)
        curl_easy_cleanup(r->easy);
    r->easy = NULL;
    prov_http_cb cb = r->cb;
    void *ud = r->ud;
    cb(&res, ud);
    req_free(r);
}

/* Drains curl_multi_info_read after a socket_action: every finished transfer is removed from
 * the multi and delivered. Called only from uv callbacks, never from libcurl's. */
static void drain_done(prov_http *http)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(http->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode rc = msg->data.result;
        http_req *r = NULL;
        if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r) != CURLE_OK || r == NULL)
            continue;
        long status = 0;
        if (curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK)
            status = 0;
        (void)curl_multi_remove_handle(http->multi, easy);
        req_unlink(http, r);
        int err = map_curl_error(rc);
        if (r->resp.too_big)
            err = -EFBIG;
        if (err == 0 && r->resp.data == NULL) {
            r->resp.data = calloc(1, 1);
            if (r->resp.data == NULL)
                err = -ENOMEM;
        }
        req_deliver(http, r, err, err ? 0 : status);
    }
}

static void socket_action(prov_http *http, curl_socket_t fd, int flags)
{
    int running = 0;
    CURLMcode mc = curl_multi_socket_action(http->multi, fd, flags, &running);
    (void)mc; /* failures show up as CURLMSG_DONE entries or stalled transfers timing out */
    drain_done(http);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    http_sock *s = p->data;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    socket_action(s->http, s->fd, flags);
}

static void on_timer(uv_timer_t *t)
{
    prov_http *http = t->data;
    socket_action(http, CURL_SOCKET_TIMEOUT, 0);
}

/* CURLMOPT_TIMERFUNCTION: only arms or stops the uv timer; never calls back into libcurl. */
static int curl_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    prov_http *http = userp;
    (void)multi;
    if (timeout_ms < 0)
        return uv_timer_stop(&http->timer) == 0 ? 0 : -1;
    /* A zero timeout fires on the next loop iteration, outside this callback. */
    return uv_timer_start(&http->timer, on_timer, (uint64_t)timeout_ms, 0) == 0 ? 0 : -1;
}

/* Stops and closes one poll context; it leaves the list at once and is freed on close. */
static void sock_close(http_sock *s)
{
    prov_http *http = s->http;
    if (s->closing)
        return;
    s->closing = true;
    (void)uv_poll_stop(&s->poll);
    if (s->prev)
        s->prev->next = s->next;
    else if (http->socks == s)
        http->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    uv_close((uv_handle_t *)&s->poll, handle_closed);
}

/* CURLMOPT_SOCKETFUNCTION: creates, updates or removes the poll context of one socket. */
static int curl_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    prov_http *http = userp;
    http_sock *s = socketp;
    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            (void)curl_multi_assign(http->multi, fd, NULL);
            sock_close(s);
        }
        return 0;
    }
    if (s == NULL) {
        s = calloc(1, sizeof(*s));
        if (s == NULL)
            return -1;
        s->fd = fd;
        s->http = http;
        if (uv_poll_init_socket(http->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->poll.data = s;
        http->open_handles++;
        s->next = http->socks;
        if (http->socks)
            http->socks->prev = s;
        http->socks = s;
        if (curl_multi_assign(http->multi, fd, s) != CURLM_OK) {
            sock_close(s);
            return -1;
        }
    }
    int events = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        events |= UV_READABLE;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        events |= UV_WRITABLE;
    return uv_poll_start(&s->poll, events, on_poll) == 0 ? 0 : -1;
}

/* CURLOPT_WRITEFUNCTION: keeps the answer's body up to max_response, or drops it with
 * discard_body. */
static size_t write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
    http_req *r = userp;
    if (r->http->opts.discard_body)
        return size * nmemb;
    return prov_body_write(data, size, nmemb, &r->resp);
}

/* Collects response headers with lowercase names; the status line and blank lines are
 * skipped. A redirect or 100-continue resets nothing: the last value wins in lookups. */
static size_t header_cb(char *data, size_t size, size_t nmemb, void *userp)
{
    http_req *r = userp;
    size_t n = size * nmemb;
    const char *colon = memchr(data, ':', n);
    if (colon == NULL)
        return n;
    size_t klen = (size_t)(colon - data);
    const char *v = colon + 1;
    const char *end = data + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    char *key = strndup(data, klen);
    char *val = strndup(v, (size_t)(end - v));
    if (key != NULL && val != NULL) {
        for (char *p = key; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
        (void)prov_kvs_add(&r->resp_headers, key, val);
    }
    free(key);
    free(val);
    return n;
}

static void handle_closed(uv_handle_t *h)
{
    prov_http *http;
    if (h->type == UV_POLL) {
        http_sock *s = container_of((uv_poll_t *)h, http_sock, poll);
        http = s->http;
        free(s);
    } else {
        http = h->data;
    }
    if (--http->open_handles == 0 && http->closing)
        free(http);
}

int prov_http_new(uv_loop_t *loop, const prov_http_opts *opts, prov_http **ret)
{
    (void)pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK)
        return -EIO;
    prov_http *http = calloc(1, sizeof(*http));
    if (http == NULL)
        return -ENOMEM;
    http->loop = loop;
    if (opts != NULL)
        http->opts = *opts;
    if (http->opts.connect_timeout_ms <= 0)
        http->opts.connect_timeout_ms = 5000;
    if (http->opts.timeout_ms <= 0)
        http->opts.timeout_ms = 30000;
    if (http->opts.max_response == 0)
        http->opts.max_response = 8u << 20;
    http->multi = curl_multi_init();
    if (http->multi == NULL) {
        free(http);
        return -ENOMEM;
    }
    if (curl_multi_setopt(http->multi, CURLMOPT_SOCKETFUNCTION, curl_socket_cb) != CURLM_OK ||
        curl_multi_setopt(http->multi, CURLMOPT_SOCKETDATA, http) != CURLM_OK ||
        curl_multi_setopt(http->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb) != CURLM_OK ||
        curl_multi_setopt(http->multi, CURLMOPT_TIMERDATA, http) != CURLM_OK) {
        (void)curl_multi_cleanup(http->multi);
        free(http);
        return -EIO;
    }
    if (uv_timer_init(loop, &http->timer) != 0) {
        (void)curl_multi_cleanup(http->multi);
        free(http);
        return -EIO;
    }
    http->timer.data = http;
    http->open_handles = 1;
    *ret = http;
    return 0;
}

/* Config ca_file adds certificates to the system store (CURLOPT_CAINFO would replace it, so a
 * private CA for one proxy would break every public endpoint). libcurl has loaded its default
 * bundle into the context when it calls this, once per new TLS connection; the file's
 * certificates join that store. An unreadable file, or one without certificates, fails the
 * handshake: never a silent fallback. */
static CURLcode add_ca_file(CURL *e, void *ssl_ctx, void *path)
{
    (void)e;
    return prov_tls_add_ca_file(ssl_ctx, (const char *)path) == 0 ? CURLE_OK
                                                                  : CURLE_SSL_CACERT_BADFILE;
}

/* Builds the easy handle for one request; returns 0 or a negative errno. */
static int req_setup(prov_http *http, http_req *r, const char *method, const char *url,
                     const prov_kvs *headers, const char *body, size_t body_len)
{
    CURL *e = curl_easy_init();
    if (e == NULL)
        return -ENOMEM;
    r->easy = e;
    int bad = 0;
    bad |= curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PRIVATE, r) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEDATA, r) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_HEADERDATA, r) != CURLE_OK;
    bad |=
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, http->opts.connect_timeout_ms) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, http->opts.timeout_ms) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
    if (http->opts.ca_file != NULL) {
        bad |= curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, add_ca_file) != CURLE_OK;
        bad |= curl_easy_setopt(e, CURLOPT_SSL_CTX_DATA, (void *)http->opts.ca_file) != CURLE_OK;
    }
    if (strcmp(method, "GET") == 0) {
        bad |= curl_easy_setopt(e, CURLOPT_HTTPGET, 1L) != CURLE_OK;
    } else {
        if (body != NULL) {
            r->body = malloc(body_len + 1);
            if (r->body == NULL)
                return -ENOMEM;
            memcpy(r->body, body, body_len);
            r->body[body_len] = '\0';
        }
        bad |= curl_easy_setopt(e, CURLOPT_POST, 1L) != CURLE_OK;
        bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)(body ? body_len : 0)) != CURLE_OK;
        bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body ? r->body : "") != CURLE_OK;
        if (strcmp(method, "POST") != 0)
            bad |= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method) != CURLE_OK;
    }
    /* No "Expect: 100-continue" delays, no default content type for an empty POST: curl would
     * add an unsigned "Content-Type: application/x-www-form-urlencoded", which the SDKs' V3
     * canonical headers would include. "Content-Type:" tells curl to send none. */
    struct curl_slist *l = curl_slist_append(NULL, "Expect:");
    if (l == NULL)
        return -ENOMEM;
    r->headers = l;
    if (strcmp(method, "GET") != 0 &&
        (headers == NULL || prov_kvs_get_ci(headers, "content-type") == NULL)) {
        l = curl_slist_append(r->headers, "Content-Type:");
        if (l == NULL)
            return -ENOMEM;
        r->headers = l;
    }
    for (size_t i = 0; headers != NULL && i < headers->n; i++) {
        char *line = NULL;
        if (asprintf(&line, "%s: %s", headers->v[i].key, headers->v[i].value) < 0)
            return -ENOMEM;
        l = curl_slist_append(r->headers, line);
        free(line);
        if (l == NULL)
            return -ENOMEM;
        r->headers = l;
    }
    bad |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers) != CURLE_OK;
    return bad ? -EINVAL : 0;
}

int prov_http_request(prov_http *http, const char *method, const char *url, const prov_kvs *headers,
                      const char *body, size_t body_len, prov_http_cb cb, void *ud)
{
    if (http == NULL || http->closing || method == NULL || url == NULL || cb == NULL)
        return -EINVAL;
    http_req *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    r->http = http;
    r->resp.max = http->opts.max_response;
    r->cb = cb;
    r->ud = ud;
    int rc = req_setup(http, r, method, url, headers, body, body_len);
    if (rc < 0) {
        if (r->easy)
            curl_easy_cleanup(r->easy);
        req_free(r);
        return rc;
    }
    if (curl_multi_add_handle(http->multi, r->easy) != CURLM_OK) {
        curl_easy_cleanup(r->easy);
        req_free(r);
        return -EIO;
    }
    r->next = http->reqs;
    if (http->reqs)
        http->reqs->prev = r;
    http->reqs = r;
    http->pending++;
    return 0;
}

size_t prov_http_pending(const prov_http *http)
{
    return http ? http->pending : 0;
}

void prov_http_close(prov_http *http)
{
    if (http == NULL || http->closing)
        return;
    http->closing = true;
    /* Cancel every transfer: out of the multi first, then the owner hears -ECANCELED. */
    while (http->reqs != NULL) {
        http_req *r = http->reqs;
        req_unlink(http, r);
        (void)curl_multi_remove_handle(http->multi, r->easy);
        req_deliver(http, r, -ECANCELED, 0);
    }
    /* curl_multi_cleanup closes the connection cache; sockets it reports as removed close
     * through curl_socket_cb, and any it leaves are closed here. */
    (void)curl_multi_cleanup(http->multi);
    http->multi = NULL;
    while (http->socks != NULL)
        sock_close(http->socks);
    (void)uv_timer_stop(&http->timer);
    uv_close((uv_handle_t *)&http->timer, handle_closed);
}
