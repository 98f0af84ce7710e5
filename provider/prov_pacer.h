/* The pacer: a sliding window per (access key, product, action), at most N calls in any window W
 * (provider/README.md "Pacing"). The call log lives in a file in the state directory under an
 * flock, so every imgrecon process on the host shares one budget and a restart remembers the last
 * window. Every time given to an operation is read from prov_pacer_now_ms(p). The access key is
 * stored as a hash, never in clear. Synchronous and loop-free: prov_client schedules waits. */
#ifndef PROV_PACER_H
#define PROV_PACER_H

#include <stddef.h>
#include <stdint.h>

#include "prov_cleanup.h"

typedef struct prov_pacer prov_pacer;

/* state_dir NULL: in-memory only (tests of other parts; never the CLI). Creates the directory's
 * file "pacer.log" on first use. */
int prov_pacer_open(const char *state_dir, prov_pacer **ret);
/* With `ha`: the call log lives in etcd under <prefix>/pacer/ (provider/prov_pacer_etcd.c), shared
 * by every process configured with the same endpoints and prefix, on any host. Each operation is
 * a blocking etcd exchange of at most timeout_ms per endpoint; etcd unreachable makes it fail
 * (the call is not sent). */
int prov_pacer_open_etcd(const char *const *endpoints, size_t n_endpoints, const char *prefix,
                         long timeout_ms, const char *ca_file, prov_pacer **ret);
void prov_pacer_free(prov_pacer *p);
PROV_DEFINE_FREEP(prov_pacer, prov_pacer_free)

/* Tries to take one call slot now. On success records the call and sets *ret_wait_ms = 0; when
 * the window is full (or the action is cooling down) records nothing and sets *ret_wait_ms to
 * the time until a slot frees. Returns 0, or a negative errno on I/O failure. */
int prov_pacer_acquire(prov_pacer *p, const char *access_key_id, const char *product,
                       const char *action, unsigned calls, uint64_t window_ms, uint64_t now_ms,
                       uint64_t *ret_wait_ms);
/* The same for up to `want` calls of one action in one transaction (one read and one write of
 * the call log however many slots): takes min(want, free slots) and sets *ret_got; when it took
 * fewer than want, *ret_wait_ms is the time until the next slot frees (0 otherwise). */
int prov_pacer_acquire_n(prov_pacer *p, const char *access_key_id, const char *product,
                         const char *action, unsigned calls, uint64_t window_ms, uint64_t now_ms,
                         unsigned want, unsigned *ret_got, uint64_t *ret_wait_ms);
/* After a throttled answer: no call of this action until now + window. */
int prov_pacer_cooldown(prov_pacer *p, const char *access_key_id, const char *product,
                        const char *action, uint64_t window_ms, uint64_t now_ms);
/* When the answer to a call taken at sent_ms arrives at done_ms: the call now counts from
 * done_ms. The server counts a call from when it arrives, which is after it was sent and before
 * its answer came back; counting from the answer keeps the next window's first call from
 * reaching the server less than a window after the call it replaces, whatever the network's
 * delays. A call no longer in the log is left alone. */
int prov_pacer_settle(prov_pacer *p, const char *access_key_id, const char *product,
                      const char *action, uint64_t window_ms, uint64_t sent_ms, uint64_t done_ms);
/* Settles n calls at once (sent_ms[i] to done_ms[i]), in one transaction. */
int prov_pacer_settle_n(prov_pacer *p, const char *access_key_id, const char *product,
                        const char *action, uint64_t window_ms, const uint64_t *sent_ms,
                        const uint64_t *done_ms, size_t n);
/* Calls still allowed in the current window (for STATUS= and metrics). */
int prov_pacer_budget(prov_pacer *p, const char *access_key_id, const char *product,
                      const char *action, unsigned calls, uint64_t window_ms, uint64_t now_ms,
                      unsigned *ret_left);

/* The pacer's clock in ms: what every operation of p takes as now_ms, sent_ms and done_ms.
 * Every backend uses CLOCK_BOOTTIME, which every process of the host shares and no step of the
 * wall clock moves (the cloud's windows do not move when ours would); the etcd backend, which
 * crosses hosts, also stamps each call with the wall-clock time of the operation. */
uint64_t prov_pacer_now_ms(const prov_pacer *p);

/* Wall-clock time (CLOCK_REALTIME) in ms: only for what is stored across processes or shown
 * (journal and status timestamps), never to time a wait: waits, timeouts, durations and backoff
 * use the loop's monotonic clock (uv_now), CLOCK_MONOTONIC outside one, and the pacer its own
 * (prov_pacer_now_ms). */
uint64_t prov_now_ms(void);

#endif
