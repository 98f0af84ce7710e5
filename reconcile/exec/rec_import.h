/* `imgrecon import` (cmd/README.md, issue 12 item 6): reads the account's custom images and
 * writes them as manifests, one YAML document per region, so that an account made by hand can
 * be brought under management (import, review, apply). What is written, and why an image is
 * left out, is in README.md "Bring an existing account under management". Called by
 * cmd/cmd_import.c; the observation is rec_observe's (whole or failed, never partial). */
#ifndef REC_IMPORT_H
#define REC_IMPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <uv.h>

#include "rec_plan.h"
#include "rec_setup.h"
#include "spec_config.h"

/* Which regions to read: the listed ones (borrowed), plus every region of SWAS ListRegions
 * when all_regions is set. */
typedef struct rec_import_regions {
    const char *const *v;
    size_t n;
    bool all_regions;
} rec_import_regions;

/* What the written manifests hold, for the closing summary. */
typedef struct rec_import_counts {
    size_t regions;
    size_t owned;         /* this owner's (and previous owners') images, written as entries */
    size_t adopted;       /* images without an owner tag, written with adopt: true */
    size_t skipped;       /* written as comments only: other owners', failed, invalid, ... */
    size_t owned_skipped; /* of skipped, images with our owner tag: undeclared once imported */
} rec_import_counts;

/* Observes the regions with the setup's client, running loop until the observation is done.
 * Returns 0 and *ret_obs (free with rec_observed_free), or a negative errno and *ret_error
 * (malloc'd; which call failed) when any call failed: nothing is written from partial state. */
int rec_import_observe(uv_loop_t *loop, rec_setup *s, const rec_import_regions *regions,
                       rec_observed **ret_obs, char **ret_error);

/* Writes every observed region as one YAML document to f, separated by `---` (`--out -`).
 * cfg gives the owner and previous owners. Returns 0 or a negative errno. */
int rec_import_write_stream(const rec_observed *obs, const spec_config *cfg, FILE *f,
                            rec_import_counts *ret_counts);

/* Writes DIR/<region>.yaml for every observed region. Unless force, refuses before writing
 * anything when one of the files exists: -EEXIST and *ret_error names it (caller frees). Other
 * failures: a negative errno and *ret_error. */
int rec_import_write_dir(const rec_observed *obs, const spec_config *cfg, const char *dir,
                         bool force, rec_import_counts *ret_counts, char **ret_error);

#endif
