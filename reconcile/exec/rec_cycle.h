/* One reconcile cycle: observe -> diff -> plan -> (execute). The regions observed are the
 * declared ones, the remembered ones and config `regions` (rec_regions.h); apply and run record
 * new ones before their first mutating call. `imgrecon plan`, `imgrecon apply`
 * and every daemon cycle run this same code path, so what plan shows is what the daemon does.
 * Owned by the executor; the daemon (reconcile/daemon/rec_daemon.c) only calls it. */
#ifndef REC_CYCLE_H
#define REC_CYCLE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "prov_client.h"
#include "spec.h"
#include "spec_config.h"

typedef struct rec_plan rec_plan; /* reconcile/plan/rec_plan.h */
typedef struct rec_cycle rec_cycle;

/* Progress events for the terminal, logs and metrics. */
typedef enum rec_event_kind {
    REC_EV_OBSERVED,   /* observe finished: text = summary */
    REC_EV_PLANNED,    /* plan computed: n_total steps */
    REC_EV_STEP_START, /* a mutating call is about to be made */
    REC_EV_STEP_DONE,
    REC_EV_STEP_FAILED, /* text = the API's message with the manifest position */
    REC_EV_WAITING,     /* waiting for budget or for creations: wait_ms, waited_ms, wait_for */
} rec_event_kind;

/* What a REC_EV_WAITING event waits for. */
typedef enum rec_wait_for {
    REC_WAIT_NONE = 0,
    REC_WAIT_RATE_LIMIT,  /* the action's rate-limit window; text names the action's next call */
    REC_WAIT_IMAGE_BUILD, /* created images becoming available; image_id is the oldest one */
} rec_wait_for;

/* Step events name the step (address, action: rec_action_name, any kind) and the image it acts
 * on when known (image_id; for a create, known from its done event on). Waiting events come about
 * once a second while a wait lasts; waited_ms counts from the wait's start and at_ms is the
 * monotonic time of the event, so a consumer that prints seldom (a log, a file) can throttle
 * without a clock of its own. All strings are
 * borrowed for the duration of the callback; text and image_id may come from the cloud. */
typedef struct rec_event {
    rec_event_kind kind;
    const char *address; /* the step's address, NULL for cycle-level events */
    const char *action;
    const char *text;     /* done: the image id (as image_id); failed: the error; waiting: what */
    const char *image_id; /* the image acted on or created; NULL when not known */
    unsigned n_done, n_failed, n_total;
    uint64_t wait_ms;   /* waiting: until the next call or poll (0: unknown) */
    uint64_t waited_ms; /* waiting: how long this wait has lasted */
    uint64_t at_ms;     /* waiting: the executor's monotonic clock when sent (for throttling) */
    rec_wait_for wait_for;
} rec_event;

/* "rate_limit", "image_build" (or "none"): the wait's name in logs and JSON events. */
const char *rec_wait_for_name(rec_wait_for w);

/* What rec_cycle_opts.confirm answers. */
typedef enum rec_confirm {
    REC_CONFIRM_PROCEED, /* execute the plan now */
    REC_CONFIRM_REFUSE,  /* end with rc = -ECANCELED, every step skipped */
    /* The answer comes later, from the loop, through rec_cycle_confirm (apply's prompt reads the
     * terminal on the loop, so the HA lease's keepalive and the signal handlers keep running). */
    REC_CONFIRM_PENDING,
} rec_confirm;

typedef struct rec_cycle_opts {
    const spec_config *cfg;
    const spec_set *desired;
    prov_client *client;
    prov_pacer *pacer;         /* for budget figures; pacing itself happens in the client */
    const char *access_key_id; /* the pacer's key (budget checks before polls); may be NULL */
    const char *state_dir;     /* journal lives here */
    bool execute;              /* false: observe and plan only */
    const rec_plan *saved;     /* apply PLANFILE: refuse when stale; NULL otherwise */
    /* apply PLANFILE: the account the plan was made against (its policy's caller_account_id);
     * NULL when it could not be learned then. Credentials of another account are refused. */
    const char *saved_account_id;
    bool skip_fingerprints; /* apply, daemon: the plan's fp stays empty (rec_options) */
    /* Daemon: items that failed permanently are skipped until their backoff expires. NULL: none. */
    bool (*skip_item)(void *ud, const char *address);
    /* HA fence (daemon with `ha`): asked right before each step's call; false skips the step
     * (nothing sent). NULL: always allowed. */
    bool (*may_mutate)(void *ud);
    void (*on_event)(void *ud, const rec_event *ev);
    /* apply: called once, from the loop, with the fresh plan before anything is executed (shows
     * it, asks the user). plan is borrowed for the call; cycle is borrowed, for
     * rec_cycle_confirm. REC_CONFIRM_PROCEED and REC_CONFIRM_REFUSE answer at once
     * (refuse ends the cycle with rc = -ECANCELED and every step skipped). REC_CONFIRM_PENDING
     * leaves the cycle waiting: the caller then calls rec_cycle_confirm(cycle, ...) exactly once,
     * later, from a loop callback (never from inside confirm) - unless the cycle is stopped
     * first, see confirm_cancel. NULL: proceed. */
    rec_confirm (*confirm)(void *ud, rec_cycle *cycle, const rec_plan *plan);
    /* Required when confirm may answer REC_CONFIRM_PENDING: rec_cycle_stop calls it (from inside
     * rec_cycle_stop, once) when an answer is pending. The caller drops its prompt there and
     * must not call rec_cycle_confirm afterwards: the cycle ends as cancelled (rc = -ECANCELED,
     * every step skipped) and is freed before its done callback runs. */
    void (*confirm_cancel)(void *ud);
    void *ud;
} rec_cycle_opts;

typedef struct rec_cycle_result {
    int rc;                        /* 0, or negative errno when the cycle could not run */
    char *error;                   /* human text when rc < 0 (no secrets) */
    rec_plan *plan;                /* owned by the result; NULL when observe failed */
    unsigned n_done;               /* steps completed */
    unsigned n_failed;             /* steps failed for good */
    unsigned n_skipped;            /* steps not started (stopped, dependency failed, skipped) */
    const char **failed_addresses; /* n_failed entries, for the daemon's backoff */
} rec_cycle_result;

/* res: the callback frees it (rec_cycle_result_free); ownership passes to the callback. */
typedef void (*rec_cycle_done_cb)(rec_cycle_result *res, void *ud);

/* Starts a cycle on loop; done runs once (from the loop, never from inside this call). A stale
 * saved plan ends the cycle with rc = -ESTALE before any mutating call. c is valid until done
 * runs. */
int rec_cycle_start(uv_loop_t *loop, const rec_cycle_opts *opts, rec_cycle_done_cb done, void *ud,
                    rec_cycle **ret);
/* Graceful stop (SIGTERM): start no new call, let calls in flight finish and be journaled, then
 * done runs with the steps not started counted as skipped. While a confirmation is pending it
 * calls opts.confirm_cancel and the cycle ends as cancelled (rc = -ECANCELED, every step
 * skipped). */
void rec_cycle_stop(rec_cycle *c);
/* The answer to a confirmation that rec_cycle_opts.confirm left pending (REC_CONFIRM_PENDING):
 * yes executes the plan, as REC_CONFIRM_PROCEED would have; false ends the cycle with rc =
 * -ECANCELED and every step skipped. Called once, by the owner of the prompt (cmd/cmd_apply.c),
 * from a loop callback; done runs later, from the loop. Returns 0, or -EINVAL when no answer is
 * pending (then nothing happens). */
int rec_cycle_confirm(rec_cycle *c, bool yes);
/* Frees everything the result holds and the result itself. Accepts NULL. */
void rec_cycle_result_free(rec_cycle_result *res);

#endif
