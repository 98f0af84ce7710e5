/* rec_options from the config file (rec_options.c). The struct, its defaults (rec_options_init)
 * and its lookups live in rec_plan.h; this is apart so that the plan core links without the
 * config loader. Called by rec_cycle and cmd/ plan/apply. */
#ifndef REC_OPTIONS_H
#define REC_OPTIONS_H

#include "rec_plan.h"
#include "spec_config.h"

/* Defaults, then owner/prune/max_deletes/allow_empty/quotas/rates from cfg (cfg must outlive o).
 * Lives in rec_options.c. */
void rec_options_from_config(rec_options *o, const spec_config *cfg);

#endif
