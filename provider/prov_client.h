/* The Alibaba Cloud client: builds, signs, paces, sends and retries RPC calls, and parses the
 * answers of the SWAS/ECS operations imgrecon uses into C structs. Everything is
 * asynchronous on the caller's libuv loop; each callback runs exactly once. This header is the
 * client itself (prov_call.c); the raw call and the typed operations are prov_swas.h, the
 * answer parsers prov_resp.h. */
#ifndef PROV_CLIENT_H
#define PROV_CLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include <uv.h>

#include "prov_cred.h"
#include "prov_kvs.h"
#include "prov_pacer.h"
#include "prov_types.h"

/* PROV_STS only appears in events: the credentials chain's STS calls (prov_cred_opts.on_call),
 * reported alongside the client's so that call counts match what the account saw. */
typedef enum prov_product { PROV_SWAS = 0, PROV_ECS = 1, PROV_STS = 2 } prov_product;

const char *prov_product_name(prov_product p);    /* "swas", "ecs" */
const char *prov_product_version(prov_product p); /* "2020-06-01", "2014-05-26" */

/* Reported once per HTTP attempt, for logs, metrics and progress. */
typedef struct prov_call_event {
    prov_product product;
    const char *action;
    const char *region;
    unsigned attempt; /* 1-based */
    long http_status; /* 0: no answer */
    const char *code; /* API Code, NULL on success */
    const char *request_id;
    prov_err_class cls; /* PROV_ERR_NONE on success */
    uint64_t duration_ms;
    uint64_t retry_in_ms; /* >0 when the client will retry after this delay */
} prov_call_event;

typedef struct prov_client_opts {
    const char *endpoint; /* NULL: https://swas.<region>.aliyuncs.com etc.; else one base URL */
    int signature;        /* 3 (default when 0) or 1 */
    const char *method;   /* "POST" (default, parameters in the query) or "GET" */
    const prov_credential *cred; /* borrowed; must outlive the client */
    /* The pacer's budget key: the account id (provider/README.md "Pacing"); NULL or "": the access
     * key id. Borrowed; read at every call, so its owner may fill it in prepare. */
    const char *pacer_key;
    /* A temporary credential within its refresh margin (prov_cred_needs_refresh) is refreshed
     * off the loop. `refresh` runs on libuv's thread pool: it writes a new credential to
     * *ret_fresh, reading *cred (unchanged while it runs) and nothing else the loop uses, or
     * returns a negative errno with *ret_error (caller frees; may stay NULL). Then `refreshed`
     * runs on the loop with its result: on success the owner moves *fresh into the credential
     * it lent as cred (the client never writes it; what is left in *fresh is cleared), on
     * failure it logs. Calls go on with the old credential while it is valid and wait once it
     * has expired; after a failure the refresh is tried again at most once a second. After
     * prov_client_close `refreshed` no longer runs, and the client is freed only once a
     * running `refresh` has returned. NULL: no refresh. */
    int (*refresh)(void *ud, prov_credential *ret_fresh, char **ret_error);
    void (*refreshed)(void *ud, int rc, prov_credential *fresh, const char *error);
    void *refresh_ud;
    /* Called once, before the first call is sent (e.g. to learn pacer_key). NULL: nothing. */
    void (*prepare)(void *ud);
    void *prepare_ud;
    prov_pacer *pacer; /* borrowed; NULL: unpaced */
    /* Rate for an action (NULL: 10/60s for every action). */
    void (*rate_for)(void *ud, prov_product product, const char *action, unsigned *ret_calls,
                     uint64_t *ret_window_ms);
    void *rate_ud;
    unsigned max_retries;     /* transient retries per call; 0: 5 */
    unsigned max_throttled;   /* throttled retries per call; 0: 10 */
    uint64_t backoff_base_ms; /* 0: 500 */
    uint64_t backoff_max_ms;  /* 0: 30000 */
    long connect_timeout_ms;  /* 0: 5000 */
    long timeout_ms;          /* 0: 30000 */
    size_t max_response;      /* 0: 8 MiB */
    const char *ca_file;
    void (*on_event)(void *ud, const prov_call_event *ev); /* may be NULL */
    /* Called (with event_ud) each time a queued call is held back by the pacer: its action's
     * rate-limit window is full for wait_ms more. For "waiting for the rate limit" lines.
     * NULL: nothing. */
    void (*on_wait)(void *ud, prov_product product, const char *action, uint64_t wait_ms);
    void *event_ud;
    /* Optional: runs once, from the last close callback after prov_client_close (or inside it
     * when no handle was open), once the client's memory is freed and no callback of this
     * client can run again: its owner frees what it lent the client there (rec_setup). */
    void (*on_closed)(void *ud);
    void *closed_ud;
} prov_client_opts;

typedef struct prov_client prov_client;

int prov_client_new(uv_loop_t *loop, const prov_client_opts *opts, prov_client **ret);
/* Stops starting calls; pending callbacks run with sys = -ECANCELED; handles close on the loop
 * and memory is freed from the last close callback, which then runs opts.on_closed. Accepts
 * NULL. */
void prov_client_close(prov_client *c);
/* The HA fence (reconcile/daemon/rec_ha.h through the daemon): when set, every attempt of a
 * mutating action (not List*, Describe*, Get*) asks may_mutate right before it is sent and fails
 * locally with -EPERM, sending nothing, when it says no. NULL clears it. */
void prov_client_set_fence(prov_client *c, bool (*may_mutate)(void *ud), void *ud);
/* Sets the hook run right before calls of a mutating action leave (after the fence, once per
 * batch the pacer grants, retries included): the executor makes its journal durable there. When
 * it returns a negative errno the calls of that batch are not sent and fail locally with it. NULL
 * clears it. */
void prov_client_set_before_send(prov_client *c, int (*before_send)(void *ud), void *ud);
/* Calls of action queued (first queued, retries included) more than max_ms before the pacer
 * grants them fail locally with -ESTALE, unsent and without taking budget; 0 (the default) lets
 * them wait. The executor sets it for the deletes and tag changes it looks at just before
 * queueing them (reconcile/README.md "A look before each delete"), so that the look is never older
 * than that when the call leaves. Returns 0, -EINVAL or -ENOMEM. */
int prov_client_set_max_wait(prov_client *c, prov_product product, const char *action,
                             uint64_t max_ms);
/* Calls queued or in flight. */
size_t prov_client_pending(const prov_client *c);

#endif
