/* The pacer's shared call log in etcd (config `ha`), behind the same operations as the file
 * backend: prov_pacer.c hands every operation with its key ("<hash>:<product>:<action>") here
 * when the pacer was opened with prov_pacer_open_etcd. Internal to provider/. */
#ifndef PROV_PACER_ETCD_H
#define PROV_PACER_ETCD_H

#include <stdint.h>

#include "prov_etcd.h"

/* The length of a clock id: hex digits. */
#define PROV_PACER_CLOCK_ID_LEN 32

/* The time of one operation. boot is the caller's time on the boot clock (prov_pacer_now_ms),
 * offset the wall clock minus the boot clock when the operation began, so boot + offset is the
 * same time on the wall clock; id names this host's boot clock (prov_pacer.c, clock_id). */
typedef struct prov_pacer_etcd_clock {
    uint64_t boot;
    int64_t offset;
    char id[PROV_PACER_CLOCK_ID_LEN + 1];
} prov_pacer_etcd_clock;

/* The operations of prov_pacer.h against the slots under <prefix>/pacer/<key>/. Each returns 0
 * or a negative errno (etcd unreachable or answering garbage: the caller fails the call, it never
 * sends unpaced). Times are on the boot clock of `now` (now->boot). */

/* Takes up to want slots (at most 32 at once: call again for more) in one range and one txn:
 * *ret_got slots; when fewer than want, *ret_wait is the time until the next frees. */
int prov_pacer_etcd_acquire(prov_etcd *e, const char *prefix, const char *key, unsigned calls,
                            uint64_t window_ms, const prov_pacer_etcd_clock *now, unsigned want,
                            unsigned *ret_got, uint64_t *ret_wait);
/* Moves this clock's calls taken at sent[i] to done[i], up to 32 in one txn. */
int prov_pacer_etcd_settle(prov_etcd *e, const char *prefix, const char *key, const uint64_t *sent,
                           const uint64_t *done, size_t n, const prov_pacer_etcd_clock *now);
int prov_pacer_etcd_cooldown(prov_etcd *e, const char *prefix, const char *key, uint64_t window_ms,
                             const prov_pacer_etcd_clock *now);
int prov_pacer_etcd_budget(prov_etcd *e, const char *prefix, const char *key, unsigned calls,
                           uint64_t window_ms, const prov_pacer_etcd_clock *now,
                           unsigned *ret_left);

#endif
