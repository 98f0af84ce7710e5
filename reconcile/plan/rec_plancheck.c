/* Is a saved plan still exactly what apply would do? (see rec_plan_check_saved in rec_plan.h).
 * Called by rec_cycle for `apply FILE` after a fresh observation and a fresh plan under the
 * saved policy; the saved steps run only when this returns 0. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rec_plan_int.h"
#include "rec_plancheck.h"

static bool str_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

static const char *show(const char *s)
{
    return s ? s : "(none)";
}

/* The image's tags as "k=v,k=v" sorted by key, for comparison and messages; malloc'd. */
static char *tags_text(const prov_image *img)
{
    size_t n = img->n_tags;
    const prov_tag **v = n ? calloc(n, sizeof(*v)) : NULL;
    if (n && !v)
        return NULL;
    for (size_t i = 0; i < n; i++)
        v[i] = &img->tags[i];
    for (size_t i = 1; i < n; i++) /* insertion sort: at most 20 tags */
        for (size_t k = i; k > 0 && strcmp(v[k - 1]->key, v[k]->key) > 0; k--) {
            const prov_tag *t = v[k];
            v[k] = v[k - 1];
            v[k - 1] = t;
        }
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (m == NULL) {
        free(v);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        fprintf(m, "%s%s=%s", i ? "," : "", v[i]->key, v[i]->value ? v[i]->value : "");
    if (n == 0)
        fputs("(none)", m);
    fclose(m);
    free(v);
    return buf;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The accounts the image is shared to as "[a, b]" sorted (they compare as a set), "[]" when none
 * and "(unknown)" when they were not observed; malloc'd or NULL on allocation failure. */
static char *accounts_text(const prov_image *img)
{
    size_t n = img->n_share_accounts;
    if (!img->share_accounts_known)
        return strdup("(unknown)");
    const char **v = n ? calloc(n, sizeof(*v)) : NULL;
    if (n && !v)
        return NULL;
    for (size_t i = 0; i < n; i++)
        v[i] = img->share_accounts[i] ? img->share_accounts[i] : "";
    if (n)
        qsort(v, n, sizeof(*v), cmp_str);
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (m == NULL) {
        free(v);
        return NULL;
    }
    fputc('[', m);
    for (size_t i = 0; i < n; i++)
        fprintf(m, "%s%s", i ? ", " : "", v[i]);
    fputc(']', m);
    free(v);
    return fclose(m) == 0 ? buf : (free(buf), NULL);
}

/* The first field in which b differs from a, as "field changed from X to Y"; NULL when equal
 * (or on allocation failure, reported as -ENOMEM by the caller through *oom). */
static char *image_diff(const prov_image *a, const prov_image *b, bool *oom)
{
    static const struct {
        const char *field;
        size_t off;
    } strs[] = {
        {"name", offsetof(prov_image, name)},
        {"description", offsetof(prov_image, description)},
        {"instance_id", offsetof(prov_image, instance_id)},
        {"system_snapshot_id", offsetof(prov_image, system_snapshot_id)},
        {"data_snapshot_id", offsetof(prov_image, data_snapshot_id)},
        {"resource_group_id", offsetof(prov_image, resource_group_id)},
    };
    if (a->status != b->status)
        return prov_asprintf("status changed from %d to %d", a->status, b->status);
    if (a->in_share != b->in_share)
        return prov_asprintf("in_share changed from %s to %s", a->in_share ? "true" : "false",
                             b->in_share ? "true" : "false");
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
        const char *x = *(char *const *)((const char *)a + strs[i].off);
        const char *y = *(char *const *)((const char *)b + strs[i].off);
        if (!str_eq(x, y))
            return prov_asprintf("%s changed from %s to %s", strs[i].field, show(x), show(y));
    }
    char *ta = tags_text(a), *tb = tags_text(b);
    char *aa = accounts_text(a), *ab = accounts_text(b);
    char *msg = NULL;
    if (!ta || !tb || !aa || !ab)
        *oom = true;
    else if (strcmp(ta, tb) != 0)
        msg = prov_asprintf("tags changed from %s to %s", ta, tb);
    else if (strcmp(aa, ab) != 0)
        msg = prov_asprintf("share_accounts changed from %s to %s", aa, ab);
    free(ta);
    free(tb);
    free(aa);
    free(ab);
    return msg;
}

static const prov_image *find_image(const rec_observed *obs, const char *region, const char *id)
{
    const rec_region_obs *r = rec_observed_find(obs, region);
    for (size_t i = 0; r != NULL && id != NULL && i < r->images.n; i++)
        if (str_eq(r->images.v[i].image_id, id))
            return &r->images.v[i];
    return NULL;
}

static bool ecs_exists(const rec_observed *obs, const char *region, const char *id)
{
    const rec_region_obs *r = rec_observed_find(obs, region);
    for (size_t i = 0; r != NULL && r->ecs_observed && i < r->ecs.n; i++)
        if (str_eq(r->ecs.v[i].image_id, id))
            return true;
    return false;
}

static bool same_step(const rec_step *a, const rec_step *b)
{
    return a->action == b->action && str_eq(a->address, b->address) &&
           str_eq(a->image_id, b->image_id);
}

/* "step 2 (delete swas.cn-hangzhou.custom_image.old, m-...)" into buf. */
static void describe(const rec_step *s, char *buf, size_t size)
{
    snprintf(buf, size, "step %u (%s %s%s%s)", s->id, rec_action_name(s->action), s->address,
             s->image_id ? ", image " : "", s->image_id ? s->image_id : "");
}

/* Why a saved step has no twin in the fresh plan, as precisely as the observation tells. */
static char *explain_missing(const rec_step *s, const rec_observed *obs, bool *oom)
{
    char what[512];
    describe(s, what, sizeof(what));
    if (s->image_id != NULL && rec_action_is_ecs(s->action)) {
        if (!ecs_exists(obs, s->region, s->image_id))
            return prov_asprintf("ECS image %s in %s no longer exists (%s)", s->image_id, s->region,
                                 what);
    } else if (s->image_id != NULL) {
        const prov_image *now = find_image(obs, s->region, s->image_id);
        if (now == NULL)
            return prov_asprintf("image %s (%s) in %s no longer exists (%s)", s->image_id,
                                 show(s->name), s->region, what);
        char *d = s->before ? image_diff(s->before, now, oom) : NULL;
        if (d != NULL) {
            char *msg = prov_asprintf("image %s (%s) in %s: %s (%s)", s->image_id, show(s->name),
                                      s->region, d, what);
            free(d);
            return msg;
        }
    } else if (s->action == REC_ACT_CREATE && s->name != NULL) {
        const rec_region_obs *r = rec_observed_find(obs, s->region);
        for (size_t i = 0; r != NULL && i < r->images.n; i++)
            if (str_eq(r->images.v[i].name, s->name))
                return prov_asprintf("an image named %s now exists in %s (%s), so %s no longer "
                                     "applies",
                                     s->name, s->region, show(r->images.v[i].image_id), what);
    }
    return prov_asprintf("%s is no longer planned (the manifests or the account changed)", what);
}

/* Compares a saved step with its fresh twin; the first difference or NULL. The executor runs the
 * saved copy, so what it sends comes from the saved step: a create's instance, snapshots,
 * description, resource group and tags come from its after, a share's flag and an account or tag
 * step's delta from its before and after. So after is compared field by field, not only through
 * spec_hash: an in-place step's spec_hash names the image alone (its token must survive a change
 * of the entry), and no step's hash covers share_to_accounts. A difference here means the
 * manifest entry asks for something else now, or the plan file was edited. */
static char *compare(const rec_step *s, const rec_step *f, bool *oom)
{
    char what[512];
    describe(s, what, sizeof(what));
    if ((s->before == NULL) != (f->before == NULL))
        return prov_asprintf("%s: the image it acts on appeared or disappeared", what);
    if (s->before != NULL) {
        char *d = image_diff(s->before, f->before, oom);
        if (d != NULL) {
            char *msg = prov_asprintf("image %s (%s) in %s: %s (%s)", show(s->before->image_id),
                                      show(s->before->name), s->region, d, what);
            free(d);
            return msg;
        }
    }
    if (strcmp(s->spec_hash, f->spec_hash) != 0 || (s->after == NULL) != (f->after == NULL)) {
        char *d = s->after && f->after ? image_diff(s->after, f->after, oom) : NULL;
        char *msg = prov_asprintf("the manifest entry for %s%s%s changed%s%s (%s)", s->address,
                                  f->file ? " at " : "", f->file ? f->file : "", d ? ": " : "",
                                  d ? d : "", what);
        free(d);
        return msg;
    }
    if (s->after != NULL && f->after != NULL) {
        char *d = image_diff(s->after, f->after, oom);
        if (d != NULL) {
            char *msg =
                prov_asprintf("the manifest entry for %s%s%s asks for other values than the "
                              "saved step (the manifests or the plan file were edited): "
                              "%s (%s)",
                              s->address, f->file ? " at " : "", f->file ? f->file : "", d, what);
            free(d);
            return msg;
        }
    }
    if (s->takeover != f->takeover)
        return prov_asprintf("%s: the takeover changed from %s to %s", what,
                             rec_takeover_name(s->takeover), rec_takeover_name(f->takeover));
    if (s->over_quota != f->over_quota)
        return prov_asprintf("%s: the region's quota now %s room for it", what,
                             f->over_quota ? "has no" : "has");
    if (s->ecs_force != f->ecs_force)
        return prov_asprintf("%s: the manifest's force setting changed", what);
    return NULL;
}

int rec_plan_check_saved(const rec_plan *saved, const rec_plan *fresh, const rec_observed *observed,
                         size_t *ret_n_unrelated, char **ret_error)
{
    bool *used = fresh->n_steps ? calloc(fresh->n_steps, sizeof(*used)) : NULL;
    if (fresh->n_steps && !used)
        return -ENOMEM;
    bool oom = false;
    char *msg = NULL;
    if (!str_eq(saved->owner, fresh->owner))
        msg = prov_asprintf("owner: the saved plan was made for '%s', now '%s'", show(saved->owner),
                            show(fresh->owner));
    for (size_t i = 0; msg == NULL && !oom && i < saved->n_steps; i++) {
        const rec_step *s = &saved->steps[i];
        size_t k = 0;
        while (k < fresh->n_steps && (used[k] || !same_step(s, &fresh->steps[k])))
            k++;
        if (k == fresh->n_steps) {
            msg = explain_missing(s, observed, &oom);
            break;
        }
        used[k] = true;
        msg = compare(s, &fresh->steps[k], &oom);
    }
    /* A new step on an address or image a saved step names is related: refuse. */
    size_t unrelated = 0;
    for (size_t k = 0; msg == NULL && !oom && k < fresh->n_steps; k++) {
        const rec_step *f = &fresh->steps[k];
        if (used[k])
            continue;
        bool related = false;
        for (size_t i = 0; i < saved->n_steps && !related; i++) {
            const rec_step *s = &saved->steps[i];
            related = str_eq(s->address, f->address) ||
                      (f->image_id != NULL && str_eq(s->image_id, f->image_id));
        }
        if (related) {
            char what[512];
            describe(f, what, sizeof(what));
            const prov_image *now = find_image(observed, f->region, f->image_id);
            const rec_step *s0 = NULL;
            for (size_t i = 0; i < saved->n_steps && s0 == NULL; i++)
                if (str_eq(saved->steps[i].address, f->address) && saved->steps[i].before)
                    s0 = &saved->steps[i];
            char *d = now && s0 && str_eq(s0->before->image_id, now->image_id)
                          ? image_diff(s0->before, now, &oom)
                          : NULL;
            if (d != NULL)
                msg = prov_asprintf("image %s (%s) in %s: %s (%s would now be needed)",
                                    show(now->image_id), show(now->name), f->region, d, what);
            else
                msg = prov_asprintf("%s would now be needed and is not in the saved plan", what);
            free(d);
        } else if (f->action != REC_ACT_WAIT) {
            unrelated++;
        }
    }
    free(used);
    if (oom) {
        free(msg);
        return -ENOMEM;
    }
    if (msg != NULL) {
        if (ret_error != NULL)
            *ret_error = msg;
        else
            free(msg);
        return -ESTALE;
    }
    if (ret_n_unrelated != NULL)
        *ret_n_unrelated = unrelated;
    return 0;
}

int rec_plan_add_warning(rec_plan *plan, const char *text)
{
    rec_note *grown = realloc(plan->notes, (plan->n_notes + 1) * sizeof(*grown));
    if (grown == NULL)
        return -ENOMEM;
    plan->notes = grown;
    rec_note *n = &plan->notes[plan->n_notes];
    memset(n, 0, sizeof(*n));
    n->kind = REC_NOTE_WARNING;
    n->text = strdup(text);
    if (n->text == NULL)
        return -ENOMEM;
    plan->n_notes++;
    return 0;
}
