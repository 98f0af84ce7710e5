/* Time and call estimate of a plan under the rate limits (rec_estimate.c): a simulation of the
 * pacer. rec_plan_build fills plan->estimate; a loaded plan recomputes it here. */
#ifndef REC_ESTIMATE_H
#define REC_ESTIMATE_H

#include <stddef.h>
#include <stdint.h>

#include "rec_plan.h"
#include "spec_config.h"

/* Generic simulation, exported for the benchmarks' lower bound. Each task makes one call on
 * budget key `key` (index into rates) at some time t >= every dependency's done time, subject to
 * "at most rates[key].calls calls in any window of rates[key].window_ms" per key; it is done at
 * t + duration_ms. key < 0: no call (the task is done duration_ms after its dependencies).
 * Greedy list scheduling: always the task that can start earliest, ties by index. Dependencies
 * are indices (< n, acyclic). ret_done_ms (may be NULL) gets each task's done time. */
typedef struct rec_sim_task {
    int key;
    uint64_t duration_ms;
    const size_t *deps;
    size_t n_deps;
} rec_sim_task;
int rec_simulate(const rec_sim_task *tasks, size_t n, const spec_rate *rates, size_t n_rates,
                 uint64_t *ret_total_ms, uint64_t *ret_done_ms);

/* Recomputes plan->estimate under opts (e.g. after loading a plan file). */
void rec_plan_estimate(rec_plan *plan, const rec_options *opts);

#endif
