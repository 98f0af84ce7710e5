/* The pacer's shared call log in etcd (config `ha`), behind the same operations as the file
 * backend: prov_pacer.c hands every operation with its key ("<hash>:<product>:<action>") here
 * when the pacer was opened with prov_pacer_open_etcd. Internal to provider/. */
#ifndef PROV_PACER_ETCD_H
#define PROV_PACER_ETCD_H

#include <stdint.h>

#include "prov_etcd.h"

typedef enum prov_pacer_etcd_op {
    PACER_ETCD_ACQUIRE,
    PACER_ETCD_COOLDOWN,
    PACER_ETCD_BUDGET,
    PACER_ETCD_SETTLE,
} prov_pacer_etcd_op;

/* One operation against the slots under <prefix>/pacer/<key>/. Returns 0 or a negative errno
 * (etcd unreachable or answering garbage: the caller fails the call, it never sends unpaced). */
int prov_pacer_etcd_run(prov_etcd *e, const char *prefix, prov_pacer_etcd_op op, const char *key,
                        unsigned calls, uint64_t window_ms, uint64_t now, uint64_t sent,
                        uint64_t *ret_wait, unsigned *ret_left);

#endif
