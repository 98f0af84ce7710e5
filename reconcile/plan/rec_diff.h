/* The diff and planner (rec_diff.c): desired set + observed state -> the ordered plan of
 * rec_plan.h, with its estimate and fingerprint. Called by rec_cycle (plan, apply, the daemon's
 * cycle), the tests and the benchmarks. */
#ifndef REC_DIFF_H
#define REC_DIFF_H

#include "rec_plan.h"
#include "spec.h"

/* Diff + plan + estimate + fingerprint (left empty with opts->skip_fingerprints). Every region
 * named by desired must be in observed (-ENOENT otherwise, *ret_error says which when not NULL);
 * ECS entries need ecs_observed (else a warning note and no step). Returns 0 and *ret, -ENOMEM,
 * -ENOENT, or -EPERM (with *ret_error) when a rule asked for a step on an image that is not ours:
 * an internal error, the plan is refused whole. */
int rec_plan_build(const spec_set *desired, const rec_observed *observed, const rec_options *opts,
                   rec_plan **ret, char **ret_error);

#endif
