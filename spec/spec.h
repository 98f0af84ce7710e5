/* Manifests: YAML files -> the validated desired set of images (spec/README.md).
 * Called by cmd/ (validate, plan, apply) and by the daemon on every cycle and reload. */
#ifndef SPEC_H
#define SPEC_H

#include <stdbool.h>
#include <stddef.h>

#include "spec_diag.h"

typedef struct spec_tag {
    char *key;
    char *value;
} spec_tag;

/* One entry of custom_images; optional strings are NULL when absent. */
typedef struct spec_image {
    spec_pos pos; /* the list item (its first key) */
    char *region;
    char *name;
    char *instance_id;
    char *system_snapshot_id;
    char *data_snapshot_id;
    char *description;
    char *resource_group_id;
    spec_tag *tags; /* user tags only, in manifest order */
    size_t n_tags;
    bool share_to_ecs;
    bool protect;
    bool adopt;               /* take over an unowned image of this name in place */
    char **share_to_accounts; /* account ids (digits), sorted, unique */
    size_t n_share_to_accounts;
} spec_image;

/* One entry of ecs_images (ensure: absent is the only state). */
typedef struct spec_ecs_image {
    spec_pos pos;
    char *region;
    char *image_id;
    bool force;
} spec_ecs_image;

/* The desired set. Images are sorted by (region, name), ECS entries by (region, image_id);
 * regions lists every region named by any document, even one that declares no images, sorted. */
typedef struct spec_set {
    spec_image *images;
    size_t n_images;
    spec_ecs_image *ecs;
    size_t n_ecs;
    char **regions;
    spec_pos *region_pos; /* where each region was first declared (same count as regions) */
    size_t n_regions;
    char **files; /* every file read, sorted; spec_pos.file points into these */
    size_t n_files;
} spec_set;

/* Loads every *.yaml / *.yml under paths (files or directories, recursive, sorted,
 * multi-document). Returns 0 and *ret_set when there is no error; -EINVAL when any diagnostic was
 * recorded (all of them are in diags); other negative errno on I/O or allocation failure (also
 * recorded in diags with the path). A set with zero files is an error ("no manifest files"). */
int spec_load(const char *const *paths, size_t n_paths, spec_set **ret_set, spec_diags *diags);
/* Files holding at least this many bytes in all are read on several threads by spec_load. */
#define SPEC_LOAD_PARALLEL_BYTES (1024 * 1024)
/* spec_load on at most `threads` threads (and never more than files, or than 8): 0 is spec_load's
 * choice, one thread per CPU the process may run on once the files hold at least
 * SPEC_LOAD_PARALLEL_BYTES; 1 reads on the calling thread alone. The set and the diagnostics do
 * not depend on it. The threads take no signal and are joined before it returns. */
int spec_load_threads(const char *const *paths, size_t n_paths, unsigned threads,
                      spec_set **ret_set, spec_diags *diags);
void spec_set_free(spec_set *set);
/* For `_cleanup_(spec_set_freep)` (the attribute is provider/prov_cleanup.h's; spec does not
 * include it, the function is all a cleanup needs, so the arrow stays spec <- provider-free). */
static inline void spec_set_freep(spec_set **set)
{
    spec_set_free(*set);
}

/* What `validate` reports beyond the schema: each region that is not a known Simple Application
 * Server region (spec_known.h), at its first declaration, naming the closest known one. These
 * are warnings (a new region may be missing from the built-in list); `validate --strict` makes
 * them errors. Adds to warnings and returns how many it added. */
size_t spec_set_lint(const spec_set *set, spec_diags *warnings);

/* A stamp of the manifest files under paths: each file spec_load would read (the same walk), with
 * its path, device, inode, mode, size and modification and change times. The daemon takes one
 * before each load and, at the interval, reads the manifests again only when a new stamp differs
 * (a file added, removed, replaced, written or chmod-ed). A stamp is trusted only when settled:
 * no file changed within racy_ms before the walk (file times may tick coarsely, so a write just
 * after the walk could leave them equal). */
typedef struct spec_stamp spec_stamp;

/* Returns 0 and *ret_stamp (caller frees), or a negative errno when the walk meets any problem
 * spec_load would report (-EINVAL, or the I/O error): then there is nothing to compare, load. */
int spec_stamp_take(const char *const *paths, size_t n_paths, unsigned racy_ms,
                    spec_stamp **ret_stamp);

/* True when old is settled and now names the same files with the same metadata. NULL for either
 * is "changed". */
bool spec_stamp_unchanged(const spec_stamp *old, const spec_stamp *now);

/* Frees a stamp; accepts NULL. */
void spec_stamp_free(spec_stamp *stamp);

/* Finds a declared image by identity; NULL when absent. */
const spec_image *spec_set_find(const spec_set *set, const char *region, const char *name);

#endif
