/* Webhook POSTs on the daemon's loop through libcurl multi (see rec_http.h). The socket and
 * timer callbacks only (re)arm uv handles; transfers are driven and completions delivered from
 * the uv callbacks. Close order: requests, the multi handle, then the uv handles; the client is
 * freed from the last close callback. */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "prov_types.h"
#include "rec_http.h"

typedef struct hreq hreq;

struct rec_http {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    hreq *reqs;          /* under way, doubly linked */
    struct hsock *socks; /* open poll contexts, doubly linked, for close */
    size_t pending;
    unsigned open_handles; /* the timer and every poll not yet closed */
    bool closing;
};

/* One socket's poll context, owned by curl through curl_multi_assign. */
typedef struct hsock {
    uv_poll_t poll;
    curl_socket_t fd;
    rec_http *h;
    struct hsock *prev, *next;
} hsock;

struct hreq {
    rec_http *h;
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    rec_http_cb cb;
    void *ud;
    hreq *prev, *next;
    char errbuf[CURL_ERROR_SIZE];
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_OK;

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int map_curl(CURLcode rc)
{
    switch (rc) {
    case CURLE_OK:
        return 0;
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    case CURLE_COULDNT_CONNECT:
        return -ECONNREFUSED;
    case CURLE_COULDNT_RESOLVE_HOST:
        return -EHOSTUNREACH;
    case CURLE_OUT_OF_MEMORY:
        return -ENOMEM;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
        return -ECONNRESET;
    default:
        return -EIO;
    }
}

static void on_closed(uv_handle_t *handle)
{
    rec_http *h;
    if (handle->type == UV_POLL) {
        hsock *s = container_of((uv_poll_t *)handle, hsock, poll);
        h = s->h;
        free(s);
    } else {
        h = handle->data;
    }
    if (--h->open_handles == 0 && h->closing)
        free(h);
}

/* Stops and closes one poll context; it leaves the list now and is freed on close. */
static void sock_close(hsock *s)
{
    rec_http *h = s->h;
    (void)uv_poll_stop(&s->poll);
    if (s->prev)
        s->prev->next = s->next;
    else
        h->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    uv_close((uv_handle_t *)&s->poll, on_closed);
}

static void unlink_req(rec_http *h, hreq *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        h->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
}

/* Takes a finished request out of the multi and the list, tells its owner and frees it. */
static void deliver(rec_http *h, hreq *r, int err, long status)
{
    (void)curl_multi_remove_handle(h->multi, r->easy);
    unlink_req(h, r);
    h->pending--;
    const char *msg = err ? (r->errbuf[0] ? r->errbuf : strerror(-err)) : NULL;
    r->cb(r->ud, err, status, msg);
    curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    free(r->body);
    free(r);
}

static void drain(rec_http *h)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(h->multi, &left)) != NULL) {
        hreq *r = NULL;
        long status = 0;
        if (m->msg != CURLMSG_DONE ||
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r) != CURLE_OK ||
            r == NULL)
            continue;
        int err = map_curl(m->data.result);
        if (err == 0 && curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK)
            err = -EIO;
        deliver(h, r, err, status);
    }
}

static void act(rec_http *h, curl_socket_t fd, int flags)
{
    int running = 0;
    (void)curl_multi_socket_action(h->multi, fd, flags, &running);
    drain(h);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    hsock *s = p->data;
    int flags = status < 0 ? CURL_CSELECT_ERR : 0;
    if (status == 0 && (events & UV_READABLE))
        flags |= CURL_CSELECT_IN;
    if (status == 0 && (events & UV_WRITABLE))
        flags |= CURL_CSELECT_OUT;
    act(s->h, s->fd, flags);
}

static void on_timer(uv_timer_t *t)
{
    act(t->data, CURL_SOCKET_TIMEOUT, 0);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    rec_http *h = userp;
    if (timeout_ms < 0)
        return uv_timer_stop(&h->timer) == 0 ? 0 : -1;
    return uv_timer_start(&h->timer, on_timer, (uint64_t)timeout_ms, 0) == 0 ? 0 : -1;
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    rec_http *h = userp;
    hsock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            (void)curl_multi_assign(h->multi, fd, NULL);
            sock_close(s);
        }
        return 0;
    }
    if (s == NULL) {
        s = calloc(1, sizeof(*s));
        if (s == NULL || uv_poll_init_socket(h->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->fd = fd;
        s->h = h;
        s->poll.data = s;
        h->open_handles++;
        s->next = h->socks;
        if (h->socks)
            h->socks->prev = s;
        h->socks = s;
        if (curl_multi_assign(h->multi, fd, s) != CURLM_OK) {
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

/* The answer's body is not needed: only its status counts. */
static size_t discard(char *data, size_t size, size_t nmemb, void *userp)
{
    return size * nmemb;
}

int rec_http_new(uv_loop_t *loop, rec_http **ret)
{
    (void)pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK)
        return -EIO;
    rec_http *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return -ENOMEM;
    h->loop = loop;
    h->multi = curl_multi_init();
    if (h->multi == NULL || uv_timer_init(loop, &h->timer) != 0) {
        if (h->multi)
            (void)curl_multi_cleanup(h->multi);
        free(h);
        return -ENOMEM;
    }
    h->timer.data = h;
    h->open_handles = 1;
    (void)curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    (void)curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    (void)curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    (void)curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    *ret = h;
    return 0;
}

/* Builds the easy handle of one POST; 0 or a negative errno. */
static int setup(hreq *r, const char *url, const char *const *headers, size_t n_headers,
                 size_t body_len, long timeout_ms)
{
    CURL *e = r->easy;
    int bad = 0;
    bad |= curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PRIVATE, r) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_POST, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)body_len) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body) != CURLE_OK;
    r->headers = curl_slist_append(NULL, "Expect:");
    for (size_t i = 0; r->headers != NULL && i < n_headers; i++) {
        struct curl_slist *l = curl_slist_append(r->headers, headers[i]);
        if (l == NULL)
            return -ENOMEM;
        r->headers = l;
    }
    if (r->headers == NULL)
        return -ENOMEM;
    bad |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers) != CURLE_OK;
    return bad ? -EINVAL : 0;
}

int rec_http_post(rec_http *h, const char *url, const char *const *headers, size_t n_headers,
                  const char *body, size_t body_len, long timeout_ms, rec_http_cb cb, void *ud)
{
    if (h == NULL || h->closing || url == NULL || cb == NULL)
        return -EINVAL;
    hreq *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    r->h = h;
    r->cb = cb;
    r->ud = ud;
    r->body = malloc(body_len + 1);
    r->easy = curl_easy_init();
    int rc = r->body == NULL || r->easy == NULL ? -ENOMEM : 0;
    if (rc == 0) {
        memcpy(r->body, body, body_len);
        r->body[body_len] = '\0';
        rc = setup(r, url, headers, n_headers, body_len, timeout_ms);
    }
    if (rc == 0 && curl_multi_add_handle(h->multi, r->easy) != CURLM_OK)
        rc = -EIO;
    if (rc < 0) {
        if (r->easy)
            curl_easy_cleanup(r->easy);
        curl_slist_free_all(r->headers);
        free(r->body);
        free(r);
        return rc;
    }
    r->next = h->reqs;
    if (h->reqs)
        h->reqs->prev = r;
    h->reqs = r;
    h->pending++;
    return 0;
}

size_t rec_http_pending(const rec_http *h)
{
    return h ? h->pending : 0;
}

void rec_http_close(rec_http *h)
{
    if (h == NULL || h->closing)
        return;
    h->closing = true;
    while (h->reqs != NULL)
        deliver(h, h->reqs, -ECANCELED, 0);
    /* Cleanup may call socket_cb with CURL_POLL_REMOVE; whatever poll is left is closed here. */
    (void)curl_multi_cleanup(h->multi);
    h->multi = NULL;
    while (h->socks != NULL)
        sock_close(h->socks);
    (void)uv_timer_stop(&h->timer);
    uv_close((uv_handle_t *)&h->timer, on_closed);
}
