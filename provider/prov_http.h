/* Asynchronous HTTP: one libcurl multi handle driven by a libuv loop, in the shape of curl's
 * docs/examples/multi-uv.c (one timer per multi, one poll context per socket through
 * curl_multi_assign), with every return checked, poll errors mapped to CURL_CSELECT_ERR,
 * curl_multi_info_read drained after every socket_action, no libcurl call from inside libcurl's
 * callbacks, and an orderly close. Implemented by prov_http.c. Public so that asynchronous HTTP
 * has one client: the API calls (prov_call.c), etcd on a loop (prov_etcd.c) and the daemon's
 * webhooks (reconcile/daemon/rec_webhook.c). */
#ifndef PROV_HTTP_H
#define PROV_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "prov_kvs.h"

typedef struct prov_http prov_http;

/* The settings of one client; they apply to every request it sends. */
typedef struct prov_http_opts {
    long connect_timeout_ms; /* 0: 5000 */
    long timeout_ms;         /* total per request; 0: 30000 */
    size_t max_response;     /* bytes; 0: 8 MiB. Larger answers fail with -EFBIG */
    const char *ca_file;     /* borrowed, must outlive the client; added to the system store;
                              * NULL: system store only. Verification is always on. */
    bool discard_body;       /* the answer's body is read and dropped (any size, never -EFBIG);
                              * the callback sees an empty body. For callers that need only the
                              * status (webhooks). */
} prov_http_opts;

typedef struct prov_http_response {
    int err; /* 0, or -ETIMEDOUT, -ECONNREFUSED, -ECONNRESET, -EFBIG, -EPROTO, -ECANCELED, ... */
    const char *errmsg; /* curl's text when err != 0; borrowed, valid during the callback only */
    long status;        /* HTTP status, 0 when none */
    const char *body;   /* NUL-terminated, borrowed, valid during the callback only */
    size_t body_len;
    const prov_kvs *headers; /* response headers, lowercase names; borrowed like body */
} prov_http_response;

typedef void (*prov_http_cb)(const prov_http_response *res, void *ud);

/* A client on loop (borrowed; must outlive the client). opts may be NULL (every default); it is
 * copied, ca_file excepted. Returns 0 and *ret (freed by prov_http_close), or a negative errno. */
int prov_http_new(uv_loop_t *loop, const prov_http_opts *opts, prov_http **ret);
/* Starts a request. headers: "name: value" pairs as kvs (may be NULL; copied). body may be NULL
 * (copied). The callback runs exactly once, from the loop, never from inside prov_http_request;
 * it may start new requests or close the client. Returns 0, or a negative errno (then the
 * callback never runs). */
int prov_http_request(prov_http *http, const char *method, const char *url, const prov_kvs *headers,
                      const char *body, size_t body_len, prov_http_cb cb, void *ud);
/* Cancels pending requests (their callbacks run now, with -ECANCELED), closes every handle and
 * frees the object from the last close callback, so the loop must run after it. Accepts NULL. */
void prov_http_close(prov_http *http);
/* Number of requests under way. */
size_t prov_http_pending(const prov_http *http);

#endif
