/* Leader election and fencing on etcd (reconcile/README.md "Daemon", HA; config key `ha`). Every
 * daemon configured with `ha` holds an etcd lease of `lease_ttl` and keeps it alive; the one that
 * creates `<prefix>/leader` (a txn: put if absent, attached to its lease) leads, the others stand
 * by and read the key every poll (which tells them who leads), trying the txn again as soon as
 * it is gone. The key disappears when the leader's lease ends (revoked on a clean stop, expired
 * after a crash or a partition), and the next poll of a standby takes it: failover within the
 * TTL plus one poll.
 *
 * Fencing: rec_ha_may_mutate is true only while this process leads and its lease cannot have
 * lapsed: deadline = time the last successful grant/keepalive was *sent* + the TTL etcd answered
 * (at most the one asked for) - margin (max(500 ms, TTL/5)), on CLOCK_BOOTTIME (read at each
 * check, counting a suspend as etcd does, so a stopped or blocked process sees the true time when
 * it wakes). Counting from the send and not from the answer is the stricter choice: etcd renews the
 * lease somewhere between the two; a keepalive answer about another lease renews nothing. Once the
 * deadline passes the process is a standby, whatever etcd says later. Called by the daemon
 * (rec_daemon.c) and by `imgrecon apply` (rec_ha_claim); the executor and the client reach the
 * fence through their "may mutate" hooks. */
#ifndef REC_HA_H
#define REC_HA_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "rec_log.h"
#include "rec_metrics.h"
#include "spec_config.h"

typedef enum rec_ha_role { REC_HA_NONE = 0, REC_HA_STANDBY, REC_HA_LEADER } rec_ha_role;

typedef struct rec_ha rec_ha;

typedef struct rec_ha_opts {
    const spec_config *cfg; /* borrowed during rec_ha_start only: endpoints, TTL, prefix */
    rec_log *log;           /* borrowed; every transition is logged */
    rec_metrics *metrics;   /* borrowed, may be NULL: role, leader and lease age */
    /* Called on every change of role (not from inside rec_ha_start). */
    void (*on_role)(void *ud, rec_ha_role role);
    void *ud;
} rec_ha_opts;

/* Starts campaigning on loop. Returns 0 or a negative errno. */
int rec_ha_start(uv_loop_t *loop, const rec_ha_opts *opts, rec_ha **ret);
/* Steps down: revokes the lease when it has one (so a standby takes over at once), then closes
 * every handle and frees h from the loop. Accepts NULL. */
void rec_ha_stop(rec_ha *h);

/* The fence: true while leading with a lease that cannot have lapsed (see above). */
bool rec_ha_may_mutate(rec_ha *h);
rec_ha_role rec_ha_role_of(const rec_ha *h);
const char *rec_ha_role_name(rec_ha_role r); /* "leader", "standby", "none" */
/* The leader as last seen ("host:pid"), NULL when unknown. Borrowed until the next loop turn. */
const char *rec_ha_leader(const rec_ha *h);
/* This process as it names itself in the leader key ("host:pid"). Borrowed while h lives. */
const char *rec_ha_me(const rec_ha *h);
/* Milliseconds since the last keepalive answer (0 without a lease). */
uint64_t rec_ha_lease_age_ms(const rec_ha *h);

/* For `imgrecon apply` with `ha`: takes the leader key with a lease of its own for the run.
 * Runs loop until this process leads (returns 0 and *ret: the lease is kept alive while the
 * caller runs the loop; pass rec_ha_may_mutate as the fence and call rec_ha_stop at the end,
 * which revokes it), another process leads (-EBUSY, *ret_error = "host:pid" of the leader, caller
 * frees), or wait_ms passes without an answer (-ETIMEDOUT, *ret_error says why). On an error the
 * handle is already stopped; run the loop afterwards so that it closes. */
int rec_ha_claim(uv_loop_t *loop, const spec_config *cfg, uint64_t wait_ms, rec_ha **ret,
                 char **ret_error);

#endif
