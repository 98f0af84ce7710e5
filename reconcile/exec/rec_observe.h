/* Observe (reconcile/README.md "Data flow" step 2): the current state of every region of the
 * desired set. Per region one paged ListCustomImages (PageSize=100, one call per 100 images) and,
 * for regions with ecs_images entries, one ECS DescribeImages with the declared ids (self, every
 * status), and ListCustomImageShareAccounts for each image whose entry declares share_to_accounts
 * and each image with InShareUser true that a step may touch (ours, a previous owner's, or an
 * unowned one whose entry says adopt: true); another owner's shared image costs no call. Regions
 * run in parallel; the client's pacer spaces the calls. Any failure fails the whole observation, so
 * no plan is ever computed from partial state; that includes a listing the provider rejects as
 * incomplete or inconsistent (prov_swas_list_images). Called by rec_cycle. */
#ifndef REC_OBSERVE_H
#define REC_OBSERVE_H

#include <stddef.h>
#include <uv.h>

#include "prov_client.h"
#include "rec_plan.h"
#include "spec.h"

/* Runs once: on success the callback frees obs (ownership passes to it; free with
 * rec_observed_free); on failure obs is NULL and errmsg says which region and call failed. */
typedef void (*rec_observe_cb)(rec_observed *obs, int rc, const char *errmsg, void *ud);

/* Starts observing every region of desired (which must outlive the observation). who gives the
 * owner and previous_owners (copied; its strings are borrowed and must outlive the observation).
 * Returns 0 (cb runs exactly once, possibly before this returns when nothing could be started) or
 * a negative errno (cb will not run). */
int rec_observe_start(prov_client *client, const spec_set *desired, const rec_options *who,
                      rec_observe_cb cb, void *ud);

/* Frees what rec_observe_start handed out (contents and the struct). Accepts NULL. */
void rec_observed_free(rec_observed *obs);
/* Finds an observed image by name in a region; NULL when absent. */
const prov_image *rec_observed_find_name(const rec_observed *obs, const char *region,
                                         const char *name);
/* Finds an observed image by id in a region; NULL when absent. */
const prov_image *rec_observed_find_id(const rec_observed *obs, const char *region,
                                       const char *image_id);

#endif
