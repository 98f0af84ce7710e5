/* Built-in lists of names the cloud knows: Simple Application Server regions and the API actions
 * imgrecon can call. `validate` checks manifests and config against them so that a typo such as
 * cn-hangzhuo or CreateImag is caught before a cycle fails on it. */
#ifndef SPEC_KNOWN_H
#define SPEC_KNOWN_H

#include <stdbool.h>

#include "spec_diag.h"

/* True when region is a Simple Application Server region id in the built-in list (the vendor's
 * "Endpoints" and ListRegions pages; a region added later gives a warning, not an error). */
bool spec_region_known(const char *region);
/* The known region closest to region (edit distance at most 3), or NULL. */
const char *spec_region_suggest(const char *region);

/* Adds the warning for an unknown region at p, naming the closest known one. Shared by the
 * manifest lint (spec_set_lint) and the config's quotas keys (spec_config_lint). */
void spec_region_warning(spec_diags *warnings, spec_pos p, const char *region);

/* True when action is an API action imgrecon calls or paces (SWAS, ECS, STS). */
bool spec_action_known(const char *action);
/* The known action closest to action (edit distance at most 3, else the shortest action that
 * contains its letters in order, for abbreviations), or NULL. */
const char *spec_action_suggest(const char *action);

#endif
