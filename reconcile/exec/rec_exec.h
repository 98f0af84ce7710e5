/* The paced executor (reconcile/README.md "Data flow" step 5): runs a plan's steps as soon as their
 * dependencies are done, issuing the calls of every ready step at once and letting the client's
 * pacer queue them per action (different actions run side by side). Creations are awaited with
 * batched ListCustomImages(ImageIds=[...]) polls, at most one in flight, spaced at half the List
 * rate. Every mutating call is journaled before and after. Called by rec_cycle. */
#ifndef REC_EXEC_H
#define REC_EXEC_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "prov_client.h"
#include "rec_cycle.h"
#include "rec_journal.h"
#include "rec_plan.h"

typedef enum rec_step_state {
    REC_STEP_PENDING = 0,
    REC_STEP_RUNNING,  /* a call is queued or in flight */
    REC_STEP_AWAITING, /* created (or observed creating): polling until status 1 */
    REC_STEP_DONE,
    REC_STEP_FAILED,
    REC_STEP_SKIPPED, /* not started: stopped, dependency failed, or skipped by the caller */
} rec_step_state;

typedef struct rec_exec_opts {
    prov_client *client;
    prov_pacer *pacer;         /* may be NULL: polls are spaced by the List rate only */
    const char *access_key_id; /* for prov_pacer_budget; may be NULL */
    const spec_config *cfg;    /* rates (ListCustomImages spacing) */
    rec_journal *journal;      /* may be NULL (no crash safety: tests of other parts only) */
    /* What the plan was built from: the image count per region, from which the executor tells
     * the journal the quota a CustomImageQuotaLimit answer reveals. May be NULL. */
    const rec_observed *observed;
    const char *owner; /* owner tag value; adoption after ImageNameAlreadyExist */
    /* A completed create in the journal whose image is not listed is awaited (list lag) when it
     * is younger than this, else the step's generation is bumped (the image vanished).
     * 0: 10 minutes. */
    uint64_t adopt_window_ms;
    /* How long a created image may stay unlisted before the step fails. 0: 10 minutes. */
    uint64_t unlisted_timeout_ms;
    /* How long an image may stay in status 4/0 before the step fails. 0: 2 hours. */
    uint64_t create_timeout_ms;
    bool (*skip_item)(void *ud, const char *address);
    /* HA fence (daemon with `ha`): asked right before each step's call; false skips the step
     * (nothing sent). NULL: always allowed. */
    bool (*may_mutate)(void *ud);
    void (*on_event)(void *ud, const rec_event *ev);
    void *ud;
} rec_exec_opts;

typedef struct rec_exec rec_exec;

/* Summary handed to the done callback (valid during the callback only). */
typedef struct rec_exec_result {
    unsigned n_done, n_failed, n_skipped;
    const rec_step_state *states; /* per step, index id - 1 */
    const char *const *errors;    /* per step: failure text or NULL */
    const char *const *image_ids; /* per step: image created/acted on, or NULL */
} rec_exec_result;

typedef void (*rec_exec_done_cb)(const rec_exec_result *res, void *ud);

/* Starts executing plan (borrowed; the executor may bump step generations and tokens). done
 * runs once from the loop after every handle is closed. Returns 0 or a negative errno (then
 * done never runs). */
int rec_exec_start(uv_loop_t *loop, rec_plan *plan, const rec_exec_opts *opts,
                   rec_exec_done_cb done, void *ud, rec_exec **ret);
/* Graceful stop: no new call; calls in flight finish and are journaled; then done runs. */
void rec_exec_stop(rec_exec *x);

#endif
