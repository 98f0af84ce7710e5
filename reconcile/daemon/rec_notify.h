/* systemd readiness protocol for the daemon (reconcile/README.md "Daemon"), sent as libsystemd's
 * sd_notify sends it, one datagram to NOTIFY_SOCKET: READY=1 after the first successful load, a
 * live STATUS= line, WATCHDOG=1 from a loop timer, RELOADING=1 with MONOTONIC_USEC= then READY=1
 * around a reload, STOPPING=1. Every sender returns what sd_notify returns: 1 sent, 0 when
 * NOTIFY_SOCKET is not set, negative errno. */
#ifndef REC_NOTIFY_H
#define REC_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

int rec_notify_ready(void);
int rec_notify_reloading(void); /* RELOADING=1 and MONOTONIC_USEC=<CLOCK_MONOTONIC now> */
int rec_notify_stopping(void);
int rec_notify_watchdog(void);
int rec_notify_status(const char *line);

/* The watchdog period systemd expects (WATCHDOG_USEC for this pid): > 0 and *ret_usec when
 * enabled, 0 when not, negative errno when the variables are malformed. */
int rec_notify_watchdog_usec(uint64_t *ret_usec);

typedef struct rec_notify_budget {
    const char *action;
    unsigned left;
    unsigned calls; /* the window's size, for "left/calls" */
} rec_notify_budget;

/* The STATUS= text: "last ok: 3 done, 0 failed; next cycle in 4m59s; 0 pending; budget
 * ListCustomImages 9/10, ..." (malloc'd; NULL on allocation failure). last_result NULL: "no cycle
 * yet". next_in_ms UINT64_MAX: no next cycle (stopping or --once). */
char *rec_notify_status_line(const char *last_result, unsigned done, unsigned failed,
                             uint64_t next_in_ms, unsigned pending,
                             const rec_notify_budget *budgets, size_t n_budgets, int suspended);

#endif
