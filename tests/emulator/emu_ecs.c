/* ECS image operations of the emulator: DescribeImages (custom images of the account, paging,
 * status filter) and DeleteImage with Force, DryRun and every 403 of the vendor's page. Called
 * through emu_world_call() under the server's mutex. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu_ops.h"
#include "emu_util.h"

static bool strv_has(char **v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i], s) == 0) {
            return true;
        }
    }
    return false;
}

static json_t *ecs_item(const emu_region *reg, const emu_ecs_image *e)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:b,s:b,s:s,s:s,s:s,s:I,s:{s:[]}}", "ImageId",
                     e->image_id, "ImageName", e->name, "Status", e->status, "ImageOwnerAlias",
                     "self", "Usage", e->used_by_instances > 0 ? "instance" : "none",
                     "IsSelfShared", e->shared, "IsPublic", e->is_public, "OSType", "linux",
                     "Architecture", "x86_64", "CreationTime", "2024-01-01T00:00:00Z", "Size",
                     (json_int_t)40, "Tags", "Tag");
}

int emu_ecs_describe(emu_world *w, const emu_kvs *p, int64_t now, emu_result *r)
{
    (void)now;
    int rc = 0;
    const char *region = emu_required(p, "RegionId", r, &rc);
    if (!region) {
        return rc;
    }
    long page_size = 10, page_number = 1;
    const char *s = emu_kvs_get(p, "PageSize");
    if (s && *s && emu_parse_long(s, 1, 100, &page_size) < 0) {
        return emu_result_error(r, 400, "InvalidParameter.PageSize",
                                "The specified parameter PageSize is not valid: 1 to 100.");
    }
    s = emu_kvs_get(p, "PageNumber");
    if (s && *s && emu_parse_long(s, 1, 1000000, &page_number) < 0) {
        return emu_result_error(r, 400, "InvalidParameter.PageNumber",
                                "The specified parameter PageNumber is not valid.");
    }
    const char *alias = emu_kvs_get(p, "ImageOwnerAlias");
    if (alias && *alias && strcmp(alias, "self") != 0 && strcmp(alias, "system") != 0 &&
        strcmp(alias, "others") != 0 && strcmp(alias, "marketplace") != 0) {
        return emu_result_error(r, 400, "InvalidImageOwnerAlias.ValueNotSupported",
                                "The specified ImageOwnerAlias is not supported.");
    }
    /* Only the account's own images exist here: system, others and marketplace are empty. */
    bool none = alias && *alias && strcmp(alias, "self") != 0;
    char **ids = NULL, **statuses = NULL;
    size_t n_ids = 0, n_statuses = 0;
    s = emu_kvs_get(p, "ImageId");
    if (s && *s && (rc = emu_parse_list(s, &ids, &n_ids)) < 0) {
        return rc == -ENOMEM ? rc
                             : emu_result_error(r, 400, "InvalidParameter.ImageId",
                                                "The specified parameter ImageId is not valid.");
    }
    s = emu_kvs_get(p, "Status");
    if ((rc = emu_parse_list(s && *s ? s : "Available", &statuses, &n_statuses)) < 0) {
        emu_strv_free(ids, n_ids);
        return rc == -ENOMEM ? rc
                             : emu_result_error(r, 400, "InvalidParameter.Status",
                                                "The specified parameter Status is not valid.");
    }
    const char *name = emu_kvs_get(p, "ImageName");
    emu_region *reg = emu_world_region(w, region);
    json_t *items = json_array();
    size_t total = 0;
    size_t first = (size_t)(page_number - 1) * (size_t)page_size;
    rc = items ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && !none && reg && i < reg->n_ecs; i++) {
        const emu_ecs_image *e = &reg->ecs[i];
        if ((n_ids && !strv_has(ids, n_ids, e->image_id)) ||
            !strv_has(statuses, n_statuses, e->status) ||
            (name && *name && strcmp(name, e->name) != 0)) {
            continue;
        }
        if (total >= first && total < first + (size_t)page_size) {
            json_t *it = ecs_item(reg, e);
            if (!it || json_array_append_new(items, it) != 0) {
                rc = -ENOMEM;
            }
        }
        total++;
    }
    emu_strv_free(ids, n_ids);
    emu_strv_free(statuses, n_statuses);
    if (rc == 0) {
        r->body = json_pack("{s:s,s:I,s:I,s:I,s:{s:O}}", "RegionId", region, "TotalCount",
                            (json_int_t)total, "PageNumber", (json_int_t)page_number, "PageSize",
                            (json_int_t)page_size, "Images", "Image", items);
        rc = r->body ? 0 : -ENOMEM;
    }
    json_decref(items);
    return rc;
}

int emu_ecs_delete(emu_world *w, const emu_kvs *p, int64_t now, emu_result *r)
{
    (void)now;
    int rc = 0;
    const char *region = emu_required(p, "RegionId", r, &rc);
    const char *image_id = region ? emu_required(p, "ImageId", r, &rc) : NULL;
    if (!image_id) {
        return rc;
    }
    bool force = false, dry_run = false;
    const char *s = emu_kvs_get(p, "Force");
    if (s && *s && emu_parse_bool(s, &force) < 0) {
        return emu_result_error(r, 400, "InvalidParameter.Force",
                                "The specified parameter Force is not valid.");
    }
    s = emu_kvs_get(p, "DryRun");
    if (s && *s && emu_parse_bool(s, &dry_run) < 0) {
        return emu_result_error(r, 400, "InvalidParameter.DryRun",
                                "The specified parameter DryRun is not valid.");
    }
    emu_region *reg = emu_world_region(w, region);
    size_t idx = 0;
    emu_ecs_image *e = NULL;
    for (size_t i = 0; reg && i < reg->n_ecs && !e; i++) {
        if (strcmp(reg->ecs[i].image_id, image_id) == 0) {
            e = &reg->ecs[i];
            idx = i;
        }
    }
    if (!e) {
        return emu_result_error(r, 404, "InvalidImageId.NotFound",
                                "The specified ImageId does not exist.");
    }
    if (e->is_public) {
        return emu_result_error(r, 403, "ImageIsPublic",
                                "You can not delete public image, please modify it to private.");
    }
    if (strcmp(e->busy, "copying") == 0) {
        return emu_result_error(r, 403, "OperationDenied.ImageCopying",
                                "The image is being copied. Please use the CancelCopyImage API.");
    }
    if (strcmp(e->busy, "importing") == 0) {
        return emu_result_error(r, 403, "ImageIsImporting", "The specified Image is importing.");
    }
    if (strcmp(e->busy, "exporting") == 0) {
        return emu_result_error(r, 403, "ImageIsExporting",
                                "The specified image is currently being exported. You can use "
                                "the DescribeTasks API to check the status of related tasks and "
                                "cancel them if needed.");
    }
    if (e->shared) {
        return emu_result_error(r, 403, "ImageUseShared",
                                "The specified image has been shared to others. You can use the "
                                "DescribeImageSharePermission API to query the users who have "
                                "been shared.");
    }
    if (e->used_by_instances > 0 && !force) {
        return emu_result_error(r, 403, "ImageUsingByInstance",
                                "The specified image has been used to create instances. You can "
                                "use the DescribeInstances API to query these instances, or you "
                                "can use the force parameter to proceed.");
    }
    if (dry_run) {
        return emu_result_error(r, 400, "DryRunOperation",
                                "Request validation has been passed with DryRun flag set.");
    }
    free(e->image_id);
    free(e->name);
    free(e->status);
    free(e->busy);
    memmove(&reg->ecs[idx], &reg->ecs[idx + 1], (reg->n_ecs - idx - 1) * sizeof(reg->ecs[0]));
    reg->n_ecs--;
    return 0;
}
