/* rec_options from the config file (spec_config.h): kept apart from rec_plan.c so that the pure
 * plan core links without the config loader. Called by rec_cycle and cmd/ plan/apply. */
#include "rec_options.h"

static unsigned quota_from_cfg(void *ud, const char *region)
{
    return spec_config_quota_for(ud, region);
}

static bool allow_empty_from_cfg(void *ud, const char *region)
{
    return spec_config_allow_empty(ud, region);
}

static spec_rate rate_from_cfg(void *ud, const char *action)
{
    return spec_config_rate_for(ud, action);
}

void rec_options_from_config(rec_options *o, const spec_config *cfg)
{
    rec_options_init(o);
    if (!cfg)
        return;
    if (cfg->owner)
        o->owner = cfg->owner;
    o->prune = cfg->prune;
    o->max_deletes = cfg->max_deletes;
    o->allow_empty = cfg->allow_empty;
    o->allow_empty_for = allow_empty_from_cfg;
    o->quota_default = cfg->quota_default;
    o->rate_default = cfg->rate_default;
    o->quota_for = quota_from_cfg;
    o->rate_for = rate_from_cfg;
    o->ud = (void *)cfg;
    o->previous_owners = (const char *const *)cfg->previous_owners;
    o->n_previous_owners = cfg->n_previous_owners;
}
