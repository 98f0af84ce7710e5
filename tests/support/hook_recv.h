/* A loopback webhook receiver for the notification tests: an HTTP server (libmicrohttpd, its own
 * threads) on 127.0.0.1 that records every POST, checks `X-Imgrecon-Signature: sha256=<hex>`
 * with its own HMAC-SHA256 (OpenSSL, independent of the daemon's code) when given a secret, and
 * can answer with a chosen status or after a delay to play a failing or slow receiver. Waits are
 * on a condition variable with a deadline. Used by test_daemon_ops.c and test_daemon_parts.c. */
#ifndef HOOK_RECV_H
#define HOOK_RECV_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct hook_recv hook_recv;

/* Starts a receiver; secret may be NULL (then a signature header is counted as unexpected).
 * Returns 0 and *ret, or a negative errno. */
int hook_recv_start(const char *secret, hook_recv **ret);
/* "http://127.0.0.1:PORT/hook". Borrowed. */
const char *hook_recv_url(const hook_recv *r);
/* Answer every later request with status (default 200), after delay_ms (default 0). */
void hook_recv_set_answer(hook_recv *r, unsigned status, unsigned delay_ms);
/* Requests received so far (every attempt, whatever the answer). */
size_t hook_recv_count(hook_recv *r);
/* Requests whose signature was missing, malformed or wrong (with a secret), or present (without).
 */
size_t hook_recv_bad_signatures(hook_recv *r);
/* Waits at most ms for the n-th (0-based, counting only that event) request whose JSON body has
 * "event" equal to event; returns a new reference to its body, or NULL on timeout. */
json_t *hook_recv_wait(hook_recv *r, const char *event, size_t n, long ms);
/* Every body received so far as a JSON array (new reference), bodies that are not JSON as
 * strings. */
json_t *hook_recv_all(hook_recv *r);
/* Stops the server and frees everything. Accepts NULL. */
void hook_recv_stop(hook_recv *r);
/* A loopback URL where nothing listens (a port bound then closed): connections are refused. */
void hook_recv_dead_url(char *out, size_t size);

#endif
