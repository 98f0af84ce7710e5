/* Checking a saved plan against a fresh one (rec_plancheck.c): apply FILE runs the saved steps
 * only when nothing they read or depend on has changed. Called by rec_cycle. */
#ifndef REC_PLANCHECK_H
#define REC_PLANCHECK_H

#include <stddef.h>

#include "rec_plan.h"

/* Appends a plan-level warning note (no address) with a copy of text. Returns 0 or -ENOMEM. */
int rec_plan_add_warning(rec_plan *plan, const char *text);
/* Checks a saved plan against one computed now under the same policy from a fresh observation
 * (rec_plancheck.c). Every saved step must still be planned identically: same action, address
 * and image, the image's observed fields (status, in_share, tags, name, description, instance
 * and snapshots) and the manifest entry it comes from unchanged, every value it sends (its after:
 * instance, snapshots, description, resource group, tags, share flag, accounts) equal to the fresh
 * step's, and no new step on an image or address a saved step names. Steps of the fresh plan on
 * other addresses are unrelated: they are not executed and counted in *ret_n_unrelated (may be
 * NULL). Returns 0, -ENOMEM, or -ESTALE with *ret_error (malloc'd, caller frees) naming the first
 * difference (image and field). */
int rec_plan_check_saved(const rec_plan *saved, const rec_plan *fresh, const rec_observed *observed,
                         size_t *ret_n_unrelated, char **ret_error);

#endif
