/* Outgoing HTTP POSTs for the daemon's webhooks (rec_webhook.c): one libcurl multi handle driven
 * by the daemon's libuv loop, in the shape of provider/prov_curl.c (itself curl's multi-uv.c
 * example): one uv_timer for curl's timeout, one uv_poll per socket, completions delivered from
 * the uv callbacks and never from inside libcurl's. provider's HTTP layer is internal to the
 * provider room, so the daemon room keeps this small equivalent: POST only, the answer's body
 * discarded, no cookies, no redirects, certificates always verified. */
#ifndef REC_HTTP_H
#define REC_HTTP_H

#include <stddef.h>
#include <uv.h>

typedef struct rec_http rec_http;

/* err: 0 when an HTTP answer came (status is its code), else a negative errno (-ETIMEDOUT,
 * -ECONNREFUSED, -ECANCELED on close, ...) with errmsg (borrowed, valid during the call). */
typedef void (*rec_http_cb)(void *ud, int err, long status, const char *errmsg);

/* A client on loop (borrowed; must outlive it). Returns 0 and *ret, or a negative errno. */
int rec_http_new(uv_loop_t *loop, rec_http **ret);
/* Starts a POST of body (copied) with extra header lines ("Name: value", copied), timing out
 * after timeout_ms. cb runs exactly once, from the loop, never from inside this call. Returns 0
 * or a negative errno (then cb never runs). */
int rec_http_post(rec_http *h, const char *url, const char *const *headers, size_t n_headers,
                  const char *body, size_t body_len, long timeout_ms, rec_http_cb cb, void *ud);
/* Requests under way. */
size_t rec_http_pending(const rec_http *h);
/* Cancels every request (their callbacks run now with -ECANCELED), closes the handles and frees
 * the client from the last close callback; the loop must run for that. Accepts NULL. */
void rec_http_close(rec_http *h);

#endif
