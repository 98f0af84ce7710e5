/* Calls on a prov_client (prov_swas.c): the raw call of `imgrecon api` and the typed SWAS/ECS
 * operations imgrecon uses (every page of the list operations, create, share/unshare, delete).
 * Each callback runs exactly once, on the client's loop. Called by reconcile/exec and cmd/. */
#ifndef PROV_SWAS_H
#define PROV_SWAS_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "prov_client.h"
#include "prov_kvs.h"
#include "prov_types.h"

/* ---- Raw call (imgrecon api) ----
 * body is the parsed JSON answer (borrowed, NULL on error); err is NULL on success. Pacing,
 * throttled cooldowns and bounded transient retries happen inside. */
typedef void (*prov_call_cb)(json_t *body, const prov_error *err, void *ud);
int prov_call(prov_client *c, prov_product product, const char *action, const char *region,
              const prov_kvs *params, prov_call_cb cb, void *ud);

/* ---- Typed operations ---- */

typedef struct prov_list_filter {
    const char *const *image_ids; /* sent as one JSON array string, at most 100 */
    size_t n_image_ids;
    const char *const *image_names;
    size_t n_image_names;
    const char *instance_id;
    const char *system_snapshot_id;
    const char *data_snapshot_id;
    const char *resource_group_id;
    int share; /* -1 unset, 0 only unshared, 1 only shared */
    const prov_kv *tags;
    size_t n_tags;
} prov_list_filter;

/* list is borrowed for the call: the client frees it after the callback returns; the callback
 * may take its contents (then zero it). */
typedef void (*prov_list_cb)(prov_image_list *list, const prov_error *err, void *ud);
/* Every page, asked at PageSize=100 and then at the PageSize the server answers. The list is
 * handed over only when complete and consistent: TotalCount present, numeric, >= 0 and the same
 * on every page; exactly TotalCount images, no id twice, each with RegionId == region and among
 * the ImageIds/ImageNames asked; at most TotalCount / PageSize + 1 pages. Otherwise err is a local
 * -EPROTO error whose message names the failed check. filter may be NULL. */
int prov_swas_list_images(prov_client *c, const char *region, const prov_list_filter *filter,
                          prov_list_cb cb, void *ud);

typedef struct prov_create_req {
    const char *region;
    const char *name;
    const char *instance_id;
    const char *system_snapshot_id;
    const char *data_snapshot_id;  /* NULL: none */
    const char *description;       /* NULL: none */
    const char *resource_group_id; /* NULL: none */
    const prov_tag *tags;
    size_t n_tags;
    const char *client_token;
} prov_create_req;

typedef void (*prov_create_cb)(const char *image_id, const prov_error *err, void *ud);
int prov_swas_create_image(prov_client *c, const prov_create_req *req, prov_create_cb cb, void *ud);

/* err NULL on success; a PROV_ERR_DONE answer (e.g. NotFound on delete) is reported as success
 * with err NULL. */
typedef void (*prov_done_cb)(const prov_error *err, void *ud);
int prov_swas_share_image(prov_client *c, const char *region, const char *image_id, bool share,
                          const char *client_token, prov_done_cb cb, void *ud);
int prov_swas_delete_image(prov_client *c, const char *region, const char *image_id,
                           const char *client_token, prov_done_cb cb, void *ud);

/* ---- Tags (ResourceType=customimage) and account shares ----
 * Limits of one call (provider/README.md "Operations"); a larger request is -EINVAL. */
#define PROV_TAG_MAX_IDS 50
#define PROV_TAG_MAX_TAGS 20
#define PROV_SHARE_MAX_ACCOUNTS 10

/* TagResources: sets every tag on every image (an existing key's value is overwritten). */
int prov_swas_tag_resources(prov_client *c, const char *region, const char *const *image_ids,
                            size_t n_ids, const prov_tag *tags, size_t n_tags,
                            const char *client_token, prov_done_cb cb, void *ud);
/* UntagResources: removes the keys from every image (keys an image lacks are ignored). */
int prov_swas_untag_resources(prov_client *c, const char *region, const char *const *image_ids,
                              size_t n_ids, const char *const *keys, size_t n_keys,
                              const char *client_token, prov_done_cb cb, void *ud);
/* ListTagResources of the given images (at most 50; 0: every tagged image of the region), every
 * page by NextToken. list is the callee's; the callback may take its contents (then zero it). */
typedef void (*prov_tag_list_cb)(prov_tag_resource_list *list, const prov_error *err, void *ud);
int prov_swas_list_tag_resources(prov_client *c, const char *region, const char *const *image_ids,
                                 size_t n_ids, prov_tag_list_cb cb, void *ud);
/* AddCustomImageShareAccount (add) or RemoveCustomImageShareAccount: 1 to 10 account ids. */
int prov_swas_share_accounts(prov_client *c, const char *region, const char *image_id, bool add,
                             const char *const *accounts, size_t n_accounts,
                             const char *client_token, prov_done_cb cb, void *ud);
/* ListCustomImageShareAccounts, every page at PageSize=50, checked whole as the image listings
 * are (provider/README.md "Listings are believed only whole"). accounts is the callee's. */
typedef void (*prov_accounts_cb)(prov_str_list *accounts, const prov_error *err, void *ud);
int prov_swas_list_share_accounts(prov_client *c, const char *region, const char *image_id,
                                  prov_accounts_cb cb, void *ud);

/* DeleteCustomImages: 1 to PROV_DELETE_BATCH_MAX ids of one region in one call (ImageIds, a JSON
 * array), paced as its own action. All or nothing: on any error no image was deleted, and
 * InvalidImageId.NotFound is reported as an error (it names one id; the others still exist).
 * Returns -EINVAL for no id, too many, or an empty one. */
#define PROV_DELETE_BATCH_MAX 15
int prov_swas_delete_images(prov_client *c, const char *region, const char *const *image_ids,
                            size_t n, const char *client_token, prov_done_cb cb, void *ud);

typedef void (*prov_ecs_list_cb)(prov_ecs_image_list *list, const prov_error *err, void *ud);
/* ImageOwnerAlias=self, every status, every page; image_ids may be NULL. Checked like
 * ListCustomImages: TotalCount, the answer's and each image's RegionId when present, only the ids
 * asked, no id twice. */
int prov_ecs_describe_images(prov_client *c, const char *region, const char *const *image_ids,
                             size_t n_image_ids, prov_ecs_list_cb cb, void *ud);
int prov_ecs_delete_image(prov_client *c, const char *region, const char *image_id, bool force,
                          bool dry_run, prov_done_cb cb, void *ud);

/* SWAS ListRegions (paced as its own action, endpoint region cn-hangzhou): regions are the
 * answer's RegionId values, distinct and sorted (borrowed for the callback); NULL on error. */
typedef void (*prov_regions_cb)(const char *const *regions, size_t n, const prov_error *err,
                                void *ud);
int prov_swas_list_regions(prov_client *c, prov_regions_cb cb, void *ud);

#endif
