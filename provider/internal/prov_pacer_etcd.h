/* The pacer's shared call log in etcd (config `ha`), behind the same operations as the file
 * backend: prov_pacer.c hands every operation with its key ("<hash>:<product>:<action>") here
 * when the pacer was opened with prov_pacer_open_etcd. Internal to provider/. */
#ifndef PROV_PACER_ETCD_H
#define PROV_PACER_ETCD_H

#include <stdint.h>

#include "prov_etcd.h"

/* The operations of prov_pacer.h against the slots under <prefix>/pacer/<key>/. Each returns 0
 * or a negative errno (etcd unreachable or answering garbage: the caller fails the call, it never
 * sends unpaced). */

/* Takes up to want slots (at most 32 at once: call again for more) in one range and one txn:
 * *ret_got slots; when fewer than want, *ret_wait is the time until the next frees. */
int prov_pacer_etcd_acquire(prov_etcd *e, const char *prefix, const char *key, unsigned calls,
                            uint64_t window_ms, uint64_t now, unsigned want, unsigned *ret_got,
                            uint64_t *ret_wait);
/* Moves the calls taken at sent[i] to done[i], up to 32 in one txn. */
int prov_pacer_etcd_settle(prov_etcd *e, const char *prefix, const char *key, const uint64_t *sent,
                           const uint64_t *done, size_t n);
int prov_pacer_etcd_cooldown(prov_etcd *e, const char *prefix, const char *key, uint64_t window_ms,
                             uint64_t now);
int prov_pacer_etcd_budget(prov_etcd *e, const char *prefix, const char *key, unsigned calls,
                           uint64_t window_ms, uint64_t now, unsigned *ret_left);

#endif
