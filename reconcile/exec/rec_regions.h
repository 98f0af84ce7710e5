/* Regions observed beyond the declared ones (reconcile/README.md "Regions observed"): the regions
 * where this owner's images were seen or created, remembered in STATE_DIR/regions.json, and the
 * answer of SWAS ListRegions for `regions: all`, cached for a day in STATE_DIR/list-regions.json.
 * Both files go through provider/prov_statedir.h: read with O_NOFOLLOW (a symlink is refused, never
 * followed), written atomically (exclusive temp file, fsync, rename, fsync of the directory).
 * Called by rec_cycle: plan only reads regions.json, apply and run update it. */
#ifndef REC_REGIONS_H
#define REC_REGIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A sorted list of distinct region ids (copies). */
typedef struct rec_region_list {
    char **v;
    size_t n;
} rec_region_list;

/* Adds region unless present, keeping the order; 1 added, 0 present, -ENOMEM. */
int rec_region_list_add(rec_region_list *l, const char *region);
bool rec_region_list_has(const rec_region_list *l, const char *region);
/* Frees the contents; the list is empty afterwards. */
void rec_region_list_clear(rec_region_list *l);

/* The regions remembered for owner (an empty list when the file does not exist). Returns 0, or
 * -EPROTO when the file is not what we write or -ELOOP when it is a symbolic link (ret_error
 * then says where; caller frees), or a negative errno when it cannot be read. *ret must be
 * empty. */
int rec_regions_load(const char *state_dir, const char *owner, rec_region_list *ret,
                     char **ret_error);
/* Replaces owner's remembered regions with l, keeping other owners' entries. 0, -ELOOP when
 * regions.json is a symbolic link (left alone), or another negative errno. */
int rec_regions_save(const char *state_dir, const char *owner, const rec_region_list *l);

/* The cached ListRegions answer when younger than max_age_s at now_s (wall clock, seconds):
 * 0, or -ENOENT when absent, stale or unreadable (then ask again). *ret must be empty. */
int rec_regions_cache_load(const char *state_dir, int64_t now_s, int64_t max_age_s,
                           rec_region_list *ret);
int rec_regions_cache_save(const char *state_dir, int64_t now_s, const rec_region_list *l);

#endif
