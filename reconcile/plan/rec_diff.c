/* Diff and plan (reconcile/README.md "Semantics"): desired set + observed state -> changes, ordered
 * steps with dependencies, and notes for everything reported but not acted on. Pure: no I/O. Called
 * by rec_cycle (plan, apply, daemon) through rec_plan_build, and by the benchmarks.
 *
 * Steps are first collected as "protos" tagged with their region and phase, then sorted by
 * (region, phase, creation order) and numbered, so that every dependency points backwards:
 *   0 share/unshare toggles, 1 unshare before delete, 2 delete, 3 wait, 4 create,
 *   5 share after create/wait, 6 ECS delete. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rec_diff.h"
#include "rec_estimate.h"
#include "rec_plan_int.h"

#define ACCOUNTS_PER_CALL 10  /* Account.N of Add/RemoveCustomImageShareAccount */
#define MAX_TAGS_PER_IMAGE 20 /* TagResources: at most 20 tags on one resource */

enum {
    PH_TOGGLE = 0,
    PH_UNSHARE = 1,
    PH_DELETE = 2,
    PH_WAIT = 3,
    PH_CREATE = 4,
    PH_SHARE_AFTER = 5,
    PH_ECS = 6,
};

typedef struct proto {
    rec_step st; /* depends_on holds proto indices until numbering */
    size_t region;
    int phase;
    size_t seq;
} proto;

typedef struct builder {
    rec_plan *plan;
    const rec_options *o;
    const char *owner;
    proto *p;
    size_t n, cap;
    size_t cap_changes, cap_notes;
    int rc;
    char *error; /* why rc is -EPERM (the ownership assertion in add_step) */
} builder;

/* A create waiting for quota, and a delete that frees a slot, per region. */
typedef struct slot_ref {
    size_t idx; /* proto index */
    bool flag;  /* create: part of a replace; delete: preceded by an unshare */
    size_t own; /* create in a replace: its own delete's proto index */
} slot_ref;

typedef struct region_work {
    slot_ref *creates_plain, *creates_repl, *deletes;
    size_t n_plain, n_repl, n_del, cap_plain, cap_repl, cap_del;
} region_work;

/* ---- builder primitives (no-ops once an allocation failed) ---- */

static char *own(builder *b, char *s)
{
    if (!s && b->rc == 0)
        b->rc = -ENOMEM;
    return s;
}

static char *dup_or_fail(builder *b, const char *s)
{
    if (!s)
        return NULL;
    return own(b, strdup(s));
}

static void set_pos(builder *b, char **file, unsigned *line, unsigned *col, const spec_pos *pos)
{
    if (!pos || !pos->file)
        return;
    *file = dup_or_fail(b, pos->file);
    *line = pos->line;
    *col = pos->col;
}

static char *swas_address(builder *b, const char *region, const char *name)
{
    return own(b, prov_asprintf("swas.%s.custom_image.%s", region, name ? name : "?"));
}

/* Adds a change; returns its index (or SIZE_MAX after a failure). Takes reason. */
static size_t add_change(builder *b, rec_change_kind kind, char *address, char *reason,
                         const spec_pos *pos)
{
    rec_plan *pl = b->plan;
    if (b->rc == 0 &&
        rec_grow((void **)&pl->changes, &b->cap_changes, pl->n_changes, sizeof(rec_change)) < 0)
        b->rc = -ENOMEM;
    if (b->rc < 0 || !address || !reason) {
        free(address);
        free(reason);
        if (b->rc == 0)
            b->rc = -ENOMEM;
        return SIZE_MAX;
    }
    rec_change *ch = &pl->changes[pl->n_changes];
    memset(ch, 0, sizeof(*ch));
    ch->kind = kind;
    ch->address = address;
    ch->reason = reason;
    set_pos(b, &ch->file, &ch->line, &ch->col, pos);
    return pl->n_changes++;
}

/* Adds a note. Takes text. */
static void add_note(builder *b, rec_note_kind kind, const char *region, const char *name,
                     const char *image_id, char *text, const spec_pos *pos)
{
    rec_plan *pl = b->plan;
    if (b->rc == 0 &&
        rec_grow((void **)&pl->notes, &b->cap_notes, pl->n_notes, sizeof(rec_note)) < 0)
        b->rc = -ENOMEM;
    if (b->rc < 0 || !text) {
        free(text);
        if (b->rc == 0)
            b->rc = -ENOMEM;
        return;
    }
    rec_note *n = &pl->notes[pl->n_notes++];
    memset(n, 0, sizeof(*n));
    n->kind = kind;
    n->text = text;
    n->region = dup_or_fail(b, region);
    n->name = dup_or_fail(b, name);
    n->image_id = dup_or_fail(b, image_id);
    if (name && region)
        n->address = swas_address(b, region, name);
    set_pos(b, &n->file, &n->line, &n->col, pos);
}

static bool owned_by(const prov_image *o, const char *owner);

typedef struct step_args {
    size_t region_idx;
    int phase;
    rec_action action;
    const char *region;
    const char *name;
    const char *image_id;
    const char *reason;
    const spec_pos *pos;
    const char *spec_hash;
    prov_image *before; /* taken */
    prov_image *after;  /* taken */
    size_t change;
    bool ecs_force;
    rec_takeover takeover; /* TAG only */
} step_args;

/* A takeover TAG step (reconcile/README.md "Semantics", Ownership): the only step allowed on an
 * image that is not ours yet. Adoption starts from an image without any owner tag, migration from
 * one of config previous_owners; both end with our owner tag and remove nothing. */
static bool takeover_allowed(const builder *b, const step_args *a)
{
    if (a->action != REC_ACT_TAG || !a->before || !a->after)
        return false;
    const char *from = rec_image_tag(a->before, REC_OWNER_TAG);
    const char *to = rec_image_tag(a->after, REC_OWNER_TAG);
    rec_step probe = {.action = REC_ACT_UNTAG, .before = a->before, .after = a->after};
    const char *keys[1];
    if (!to || strcmp(to, b->owner) != 0 || rec_step_keys_to_remove(&probe, keys, 1) > 0)
        return false;
    if (a->takeover == REC_TAKEOVER_ADOPT)
        return from == NULL;
    return a->takeover == REC_TAKEOVER_MIGRATE && from && rec_options_is_previous_owner(b->o, from);
}

/* A tag step on one of our images keeps it ours: a TAG's after carries our owner tag and an
 * UNTAG never removes it. (Cloud keys are never in a delta: rec_step_*_to_* skip them.) */
static bool keeps_owner(const builder *b, const step_args *a)
{
    if (a->action != REC_ACT_TAG && a->action != REC_ACT_UNTAG)
        return true;
    return a->after && owned_by(a->after, b->owner);
}

/* The ownership assertion every step passes (reconcile/README.md "Semantics", Ownership): a SWAS
 * step on an existing image (share, unshare, delete, wait, tags, accounts: before is the observed
 * image) must name an image that carries our owner tag; a create's before is NULL and a share
 * after a create starts from the desired image, which carries it. The one exception is a
 * takeover TAG step (takeover_allowed). The diff rules never ask for anything else (diff_region
 * turns the image into a conflict first); if one ever did, the whole plan is refused rather than
 * shown or executed. ECS images carry no owner tag: they are named by id in the manifest
 * (ensure: absent) and are not subject to this rule. */
static bool step_allowed(builder *b, const step_args *a)
{
    if (a->action == REC_ACT_ECS_DELETE || a->action == REC_ACT_CREATE)
        return true;
    if (a->takeover != REC_TAKEOVER_NONE
            ? takeover_allowed(b, a)
            : (a->before && owned_by(a->before, b->owner) && keeps_owner(b, a)))
        return true;
    if (b->rc == 0) {
        b->rc = -EPERM;
        b->error = prov_asprintf("internal error: a %s step on %s (%s) was planned for an image "
                                 "not owned by '%s'; plan refused",
                                 rec_action_name(a->action), a->name ? a->name : "?",
                                 a->image_id ? a->image_id : "?", b->owner);
    }
    return false;
}

/* Adds a proto step and links it into its change; returns its index or SIZE_MAX. Every step
 * of every kind is made here, so the ownership assertion lives here too (step_allowed). */
static size_t add_step(builder *b, const step_args *a)
{
    if (b->rc == 0 && !step_allowed(b, a)) {
        rec_image_free(a->before);
        rec_image_free(a->after);
        return SIZE_MAX;
    }
    if (b->rc == 0 && rec_grow((void **)&b->p, &b->cap, b->n, sizeof(proto)) < 0)
        b->rc = -ENOMEM;
    if (b->rc < 0 || a->change == SIZE_MAX) {
        rec_image_free(a->before);
        rec_image_free(a->after);
        return SIZE_MAX;
    }
    rec_change *ch = &b->plan->changes[a->change];
    unsigned *ns = realloc(ch->steps, (ch->n_steps + 1) * sizeof(*ns));
    if (!ns) {
        b->rc = -ENOMEM;
        rec_image_free(a->before);
        rec_image_free(a->after);
        return SIZE_MAX;
    }
    ch->steps = ns;
    ch->steps[ch->n_steps++] = (unsigned)b->n;
    proto *pr = &b->p[b->n];
    memset(pr, 0, sizeof(*pr));
    pr->region = a->region_idx;
    pr->phase = a->phase;
    pr->seq = b->n;
    rec_step *st = &pr->st;
    st->action = a->action;
    st->region = dup_or_fail(b, a->region);
    st->name = dup_or_fail(b, a->name);
    st->image_id = dup_or_fail(b, a->image_id);
    st->reason = dup_or_fail(b, a->reason);
    if (a->action == REC_ACT_ECS_DELETE)
        st->address = own(b, prov_asprintf("ecs.%s.image.%s", a->region, a->image_id));
    else
        st->address = swas_address(b, a->region, a->name);
    set_pos(b, &st->file, &st->line, &st->col, a->pos);
    st->before = a->before;
    st->after = a->after;
    st->change = (unsigned)a->change;
    st->ecs_force = a->ecs_force;
    st->takeover = a->takeover;
    memcpy(st->spec_hash, a->spec_hash, REC_HASH_HEX + 1);
    rec_step_set_generation(st, b->owner, 0);
    return b->n++;
}

static void add_dep(builder *b, size_t step, size_t dep)
{
    if (b->rc < 0 || step == SIZE_MAX || dep == SIZE_MAX)
        return;
    rec_step *st = &b->p[step].st;
    for (size_t i = 0; i < st->n_depends; i++)
        if (st->depends_on[i] == dep)
            return;
    unsigned *nd = realloc(st->depends_on, (st->n_depends + 1) * sizeof(*nd));
    if (!nd) {
        b->rc = -ENOMEM;
        return;
    }
    st->depends_on = nd;
    st->depends_on[st->n_depends++] = (unsigned)dep;
}

static void push_ref(builder *b, slot_ref **v, size_t *n, size_t *cap, slot_ref r)
{
    if (b->rc < 0 || r.idx == SIZE_MAX)
        return;
    if (rec_grow((void **)v, cap, *n, sizeof(**v)) < 0) {
        b->rc = -ENOMEM;
        return;
    }
    (*v)[(*n)++] = r;
}

/* ---- image snapshots ---- */

static prov_image *dup_image(builder *b, const prov_image *img)
{
    if (b->rc < 0 || !img)
        return NULL;
    prov_image *d = rec_image_dup(img);
    if (!d)
        b->rc = -ENOMEM;
    return d;
}

/* The image a create makes: every CreateCustomImage parameter, plus the tags imgrecon adds. */
static prov_image *desired_image(builder *b, const spec_image *d)
{
    if (b->rc < 0)
        return NULL;
    prov_image *img = calloc(1, sizeof(*img));
    if (!img) {
        b->rc = -ENOMEM;
        return NULL;
    }
    img->name = dup_or_fail(b, d->name);
    img->region_id = dup_or_fail(b, d->region);
    img->instance_id = dup_or_fail(b, d->instance_id);
    img->system_snapshot_id = dup_or_fail(b, d->system_snapshot_id);
    img->data_snapshot_id = dup_or_fail(b, d->data_snapshot_id);
    img->description = dup_or_fail(b, d->description);
    img->resource_group_id = dup_or_fail(b, d->resource_group_id);
    img->status = PROV_IMG_AVAILABLE;
    img->in_share = false;
    for (size_t i = 0; i < d->n_tags && b->rc == 0; i++)
        if (rec_image_set_tag(img, d->tags[i].key, d->tags[i].value) < 0)
            b->rc = -ENOMEM;
    if (b->rc == 0 && rec_image_set_tag(img, REC_OWNER_TAG, b->owner) < 0)
        b->rc = -ENOMEM;
    if (b->rc == 0 && d->protect && rec_image_set_tag(img, REC_PROTECT_TAG, "true") < 0)
        b->rc = -ENOMEM;
    if (b->rc < 0) {
        rec_image_free(img);
        return NULL;
    }
    return img;
}

static prov_image *with_share(builder *b, const prov_image *img, bool in_share)
{
    prov_image *d = dup_image(b, img);
    if (d)
        d->in_share = in_share;
    return d;
}

/* ---- comparisons ---- */

static bool empty(const char *s)
{
    return !s || !*s;
}

static const char *show(const char *s)
{
    return empty(s) ? "(none)" : s;
}

/* Appends "field changed: a -> b" to *acc ("; " separated). */
static void diff_note(builder *b, char **acc, const char *field, const char *have, const char *want)
{
    if (b->rc < 0)
        return;
    char *s = *acc ? prov_asprintf("%s; %s changed: %s -> %s", *acc, field, show(have), show(want))
                   : prov_asprintf("%s changed: %s -> %s", field, show(have), show(want));
    free(*acc);
    *acc = own(b, s);
}

/* The immutable fields that differ, as text; NULL when none (see rec_plan.h for the rules). */
static char *immutable_diff(builder *b, const spec_image *d, const prov_image *o)
{
    char *acc = NULL;
    if (!empty(d->instance_id) && !empty(o->instance_id) && strcmp(d->instance_id, o->instance_id))
        diff_note(b, &acc, "instance_id", o->instance_id, d->instance_id);
    if (!empty(d->system_snapshot_id) && !empty(o->system_snapshot_id) &&
        strcmp(d->system_snapshot_id, o->system_snapshot_id))
        diff_note(b, &acc, "system_snapshot_id", o->system_snapshot_id, d->system_snapshot_id);
    if (empty(d->data_snapshot_id) != empty(o->data_snapshot_id) ||
        (!empty(d->data_snapshot_id) && strcmp(d->data_snapshot_id, o->data_snapshot_id)))
        diff_note(b, &acc, "data_snapshot_id", o->data_snapshot_id, d->data_snapshot_id);
    if (strcmp(d->description ? d->description : "", o->description ? o->description : ""))
        diff_note(b, &acc, "description", o->description, d->description);
    if (!empty(d->resource_group_id) && !empty(o->resource_group_id) &&
        strcmp(d->resource_group_id, o->resource_group_id))
        diff_note(b, &acc, "resource_group_id", o->resource_group_id, d->resource_group_id);
    return acc;
}

static bool owned_by(const prov_image *o, const char *owner)
{
    const char *t = rec_image_tag(o, REC_OWNER_TAG);
    return t && strcmp(t, owner) == 0;
}

bool rec_image_protected(const prov_image *img)
{
    const char *t = rec_image_tag(img, REC_PROTECT_TAG);
    return t && strcasecmp(t, "false") != 0;
}

static void image_hash(const char *kind, const char *a, const char *b2, char ret[REC_HASH_HEX + 1])
{
    rec_hasher h;
    rec_hasher_init(&h);
    rec_hasher_str(&h, kind);
    rec_hasher_str(&h, a);
    rec_hasher_str(&h, b2);
    rec_hasher_final(&h, ret);
}

/* ---- per-region context ---- */

typedef struct region_ctx {
    size_t idx;
    const char *region;
    const rec_region_obs *obs;
    const spec_image **decl; /* declared images of the region, in manifest order */
    size_t n_decl;
    bool decl_sorted;        /* decl is strictly ascending by name (as spec_load leaves it) */
    const prov_image **imgs; /* observed images sorted by (name, image_id) */
    size_t n_imgs;
    region_work w;
} region_ctx;

/* An observed image's name as the diff compares it: no name is the empty name. */
static const char *img_name(const prov_image *o)
{
    return o->name ? o->name : "";
}

static int cmp_img_name(const void *a, const void *b)
{
    const prov_image *x = *(const prov_image *const *)a, *y = *(const prov_image *const *)b;
    int c = strcmp(img_name(x), img_name(y));
    if (c == 0)
        c = strcmp(x->image_id ? x->image_id : "", y->image_id ? y->image_id : "");
    return c;
}

/* The declared image named name, or NULL. Called for every observed image, twice: a binary
 * search when the region's entries are sorted by name (always, from spec_load), else the first
 * match in manifest order (sets built by hand, in tests). */
static const spec_image *find_decl(const region_ctx *rc, const char *name)
{
    if (!name)
        return NULL;
    if (!rc->decl_sorted) {
        for (size_t i = 0; i < rc->n_decl; i++)
            if (strcmp(rc->decl[i]->name, name) == 0)
                return rc->decl[i];
        return NULL;
    }
    size_t lo = 0, hi = rc->n_decl;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(rc->decl[mid]->name, name);
        if (c == 0)
            return rc->decl[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Range [*first, *first + *count) of observed images named name (*first is 0 when there is
 * none). rc->imgs is sorted by name, so the range is found with a binary search: a scan of the
 * region per call made the diff quadratic in the images of a region. */
static void find_named(const region_ctx *rc, const char *name, size_t *first, size_t *count)
{
    size_t lo = 0, hi = rc->n_imgs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(img_name(rc->imgs[mid]), name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t end = lo;
    while (end < rc->n_imgs && strcmp(img_name(rc->imgs[end]), name) == 0)
        end++;
    *first = end > lo ? lo : 0;
    *count = end - lo;
}

/* Range [*first, *first + *count) of the observed images named like rc->imgs[i]: its
 * neighbours in name order. For the loops over observed images, where this is cheaper than
 * find_named's search. */
static void group_of(const region_ctx *rc, size_t i, size_t *first, size_t *count)
{
    const char *name = img_name(rc->imgs[i]);
    size_t lo = i, end = i + 1;
    while (lo > 0 && strcmp(img_name(rc->imgs[lo - 1]), name) == 0)
        lo--;
    while (end < rc->n_imgs && strcmp(img_name(rc->imgs[end]), name) == 0)
        end++;
    *first = lo;
    *count = end - lo;
}

/* Declared images ordered by region, then manifest order (their place in desired->images), so
 * each region finds its own with a binary search instead of a scan of every declared image
 * (which made planning quadratic: minutes for 100,000 images in 6,667 regions). */
static int cmp_decl_region(const void *a, const void *b)
{
    const spec_image *x = *(const spec_image *const *)a, *y = *(const spec_image *const *)b;
    int c = strcmp(x->region, y->region);
    if (c == 0)
        c = x < y ? -1 : x > y;
    return c;
}

static int region_ctx_init(region_ctx *rc, const spec_image *const *by_region, size_t n_by_region,
                           const rec_region_obs *obs, size_t idx, const char *region)
{
    memset(rc, 0, sizeof(*rc));
    rc->idx = idx;
    rc->region = region;
    rc->obs = obs;
    size_t lo = 0, hi = n_by_region;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(by_region[mid]->region, region) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t end = lo;
    while (end < n_by_region && strcmp(by_region[end]->region, region) == 0)
        end++;
    rc->decl = end > lo ? calloc(end - lo, sizeof(*rc->decl)) : NULL;
    rc->imgs = obs->images.n ? calloc(obs->images.n, sizeof(*rc->imgs)) : NULL;
    if ((end > lo && !rc->decl) || (obs->images.n && !rc->imgs))
        return -ENOMEM;
    rc->decl_sorted = true;
    for (size_t i = lo; i < end; i++) {
        rc->decl[rc->n_decl++] = by_region[i];
        if (rc->n_decl > 1 && strcmp(rc->decl[rc->n_decl - 2]->name, by_region[i]->name) >= 0)
            rc->decl_sorted = false;
    }
    for (size_t i = 0; i < obs->images.n; i++)
        rc->imgs[rc->n_imgs++] = &obs->images.v[i];
    if (rc->n_imgs)
        qsort(rc->imgs, rc->n_imgs, sizeof(*rc->imgs), cmp_img_name);
    return 0;
}

static void region_ctx_free(region_ctx *rc)
{
    free(rc->decl);
    free(rc->imgs);
    free(rc->w.creates_plain);
    free(rc->w.creates_repl);
    free(rc->w.deletes);
}

/* ---- diff rules ---- */

/* How many of the images [first, first + count) are ours; *ret_last: the last of them. */
static size_t count_owned(const region_ctx *rc, const char *owner, size_t first, size_t count,
                          const prov_image **ret_last)
{
    size_t n = 0;
    for (size_t k = first; k < first + count; k++)
        if (owned_by(rc->imgs[k], owner)) {
            n++;
            *ret_last = rc->imgs[k];
        }
    return n;
}

static size_t plan_unshare_accounts(builder *b, region_ctx *rc, const char *name,
                                    const prov_image *o, size_t ch, const spec_pos *pos);
static void plan_accounts_after_create(builder *b, region_ctx *rc, const spec_image *d,
                                       size_t create, size_t ch);

/* share_to_ecs: the share that follows a create (plain or replacing) once the new image is
 * available; token from the create's hash. Called by plan_create and plan_replace. */
static void plan_share_after_create(builder *b, region_ctx *rc, const spec_image *d, size_t c,
                                    size_t ch, const char *hash)
{
    if (!d->share_to_ecs || c == SIZE_MAX)
        return;
    prov_image *before = dup_image(b, b->p[c].st.after);
    step_args s = {rc->idx,
                   PH_SHARE_AFTER,
                   REC_ACT_SHARE,
                   rc->region,
                   d->name,
                   NULL,
                   "share_to_ecs is true (after the image is available)",
                   &d->pos,
                   hash,
                   before,
                   with_share(b, before, true),
                   ch,
                   false,
                   REC_TAKEOVER_NONE};
    add_dep(b, add_step(b, &s), c);
}

/* create (+ share when share_to_ecs, + account shares) of a declared image that does not
 * exist. */
static void plan_create(builder *b, region_ctx *rc, const spec_image *d)
{
    char hash[REC_HASH_HEX + 1];
    rec_spec_image_hash(d, hash);
    size_t ch = add_change(b, REC_CH_CREATE, swas_address(b, rc->region, d->name),
                           own(b, strdup("not found in the account")), &d->pos);
    step_args a = {rc->idx,
                   PH_CREATE,
                   REC_ACT_CREATE,
                   rc->region,
                   d->name,
                   NULL,
                   "not found in the account",
                   &d->pos,
                   hash,
                   NULL,
                   desired_image(b, d),
                   ch,
                   false,
                   REC_TAKEOVER_NONE};
    size_t c = add_step(b, &a);
    push_ref(b, &rc->w.creates_plain, &rc->w.n_plain, &rc->w.cap_plain, (slot_ref){c, false, 0});
    plan_accounts_after_create(b, rc, d, c, ch);
    plan_share_after_create(b, rc, d, c, ch, hash);
}

/* Replace = unshare? -> remove accounts? -> delete -> create -> share?. */
static void plan_replace(builder *b, region_ctx *rc, const spec_image *d, const prov_image *o,
                         const char *why)
{
    char hash[REC_HASH_HEX + 1], ihash[REC_HASH_HEX + 1], rhash[REC_HASH_HEX + 1];
    rec_spec_image_hash(d, hash);
    image_hash("image", o->image_id, NULL, ihash);
    image_hash("replace", hash, o->image_id, rhash); /* a fresh token for the new image */
    size_t ch = add_change(b, REC_CH_REPLACE, swas_address(b, rc->region, d->name),
                           own(b, strdup(why)), &d->pos);
    size_t un = SIZE_MAX;
    if (o->in_share) {
        step_args u = {rc->idx,
                       PH_UNSHARE,
                       REC_ACT_UNSHARE,
                       rc->region,
                       d->name,
                       o->image_id,
                       "replace: a shared image must be unshared before it is deleted",
                       &d->pos,
                       ihash,
                       dup_image(b, o),
                       with_share(b, o, false),
                       ch,
                       false,
                       REC_TAKEOVER_NONE};
        un = add_step(b, &u);
    }
    size_t acc = plan_unshare_accounts(b, rc, d->name, o, ch, &d->pos);
    prov_image *before = with_share(b, o, false);
    step_args del = {rc->idx, PH_DELETE,        REC_ACT_DELETE, rc->region, d->name, o->image_id,
                     why,     &d->pos,          ihash,          before,     NULL,    ch,
                     false,   REC_TAKEOVER_NONE};
    size_t dl = add_step(b, &del);
    add_dep(b, dl, un);
    add_dep(b, dl, acc);
    step_args cr = {
        rc->idx, PH_CREATE, REC_ACT_CREATE, rc->region,          d->name, NULL,  why,
        &d->pos, rhash,     NULL,           desired_image(b, d), ch,      false, REC_TAKEOVER_NONE};
    size_t c = add_step(b, &cr);
    add_dep(b, c, dl);
    push_ref(b, &rc->w.deletes, &rc->w.n_del, &rc->w.cap_del, (slot_ref){dl, o->in_share, 1});
    push_ref(b, &rc->w.creates_repl, &rc->w.n_repl, &rc->w.cap_repl, (slot_ref){c, true, dl});
    plan_accounts_after_create(b, rc, d, c, ch);
    plan_share_after_create(b, rc, d, c, ch, rhash);
}

static void plan_toggle(builder *b, region_ctx *rc, const spec_image *d, const prov_image *o)
{
    char ihash[REC_HASH_HEX + 1];
    image_hash("image", o->image_id, NULL, ihash);
    bool share = d->share_to_ecs;
    const char *why = share ? "share_to_ecs is true but the image is not shared"
                            : "share_to_ecs is false but the image is shared";
    size_t ch = add_change(b, share ? REC_CH_SHARE : REC_CH_UNSHARE,
                           swas_address(b, rc->region, d->name), own(b, strdup(why)), &d->pos);
    step_args s = {rc->idx,
                   PH_TOGGLE,
                   share ? REC_ACT_SHARE : REC_ACT_UNSHARE,
                   rc->region,
                   d->name,
                   o->image_id,
                   why,
                   &d->pos,
                   ihash,
                   dup_image(b, o),
                   with_share(b, o, share),
                   ch,
                   false,
                   REC_TAKEOVER_NONE};
    add_step(b, &s);
}

/* An image still being created or copied: wait for status 1 (no call), then share if asked. */
static void plan_wait(builder *b, region_ctx *rc, const spec_image *d, const prov_image *o)
{
    char ihash[REC_HASH_HEX + 1];
    image_hash("image", o->image_id, NULL, ihash);
    char *why =
        own(b, prov_asprintf("%s (status %d): waiting until it is available",
                             o->status == PROV_IMG_COPYING ? "copying" : "creating", o->status));
    size_t ch = add_change(b, REC_CH_WAIT, swas_address(b, rc->region, d->name), why, &d->pos);
    prov_image *after = dup_image(b, o);
    if (after)
        after->status = PROV_IMG_AVAILABLE;
    step_args w = {
        rc->idx, PH_WAIT, REC_ACT_WAIT,    rc->region, d->name, o->image_id, why ? why : "",
        &d->pos, ihash,   dup_image(b, o), after,      ch,      false,       REC_TAKEOVER_NONE};
    size_t wt = add_step(b, &w);
    if (d->share_to_ecs != o->in_share && wt != SIZE_MAX) {
        prov_image *sb = dup_image(b, b->p[wt].st.after);
        bool share = d->share_to_ecs;
        step_args s = {rc->idx,
                       PH_SHARE_AFTER,
                       share ? REC_ACT_SHARE : REC_ACT_UNSHARE,
                       rc->region,
                       d->name,
                       o->image_id,
                       share ? "share_to_ecs is true (after the image is available)"
                             : "share_to_ecs is false but the image is shared",
                       &d->pos,
                       ihash,
                       sb,
                       with_share(b, sb, share),
                       ch,
                       false,
                       REC_TAKEOVER_NONE};
        add_dep(b, add_step(b, &s), wt);
    }
}

/* ---- in place: tags, takeover, account shares ---- */

/* Removes a tag key from an image snapshot (no-op when absent). */
static void drop_tag(prov_image *img, const char *key)
{
    for (size_t i = 0; img && i < img->n_tags; i++) {
        if (img->tags[i].key && strcmp(img->tags[i].key, key) == 0) {
            free(img->tags[i].key);
            free(img->tags[i].value);
            img->tags[i] = img->tags[--img->n_tags];
            return;
        }
    }
}

/* o with the entry's tags: every declared user tag, our owner tag, and imgrecon/protect when
 * the entry says protect (an existing protecting value is kept). With authoritative, every
 * other key that is neither the cloud's nor declared is dropped (an in-place retag); without
 * (a takeover), the image's other keys stay until the image is ours. */
static prov_image *entry_tags_image(builder *b, const spec_image *d, const prov_image *o,
                                    bool authoritative)
{
    prov_image *img = dup_image(b, o);
    if (!img)
        return NULL;
    for (size_t i = img->n_tags; authoritative && i-- > 0;) {
        const char *k = img->tags[i].key;
        bool keep = !k || rec_tag_key_is_cloud(k) || strcmp(k, REC_OWNER_TAG) == 0 ||
                    (d->protect && strcmp(k, REC_PROTECT_TAG) == 0);
        for (size_t j = 0; !keep && j < d->n_tags; j++)
            keep = d->tags[j].key && strcmp(k, d->tags[j].key) == 0;
        if (!keep)
            drop_tag(img, k);
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < d->n_tags; i++)
        rc = rec_image_set_tag(img, d->tags[i].key, d->tags[i].value);
    if (rc == 0)
        rc = rec_image_set_tag(img, REC_OWNER_TAG, b->owner);
    if (rc == 0 && d->protect && !rec_image_protected(o))
        rc = rec_image_set_tag(img, REC_PROTECT_TAG, "true");
    if (rc < 0) {
        b->rc = -ENOMEM;
        rec_image_free(img);
        return NULL;
    }
    return img;
}

/* The UNTAG then TAG steps that turn before into after, in change ch; returns the last step
 * (or dep when there is nothing to do). A takeover has only its TAG step. */
static size_t plan_tag_steps(builder *b, region_ctx *rc, const char *name, const prov_image *o,
                             prov_image *after, size_t ch, const spec_pos *pos,
                             rec_takeover takeover, size_t dep)
{
    char ihash[REC_HASH_HEX + 1];
    image_hash("image", o->image_id, NULL, ihash);
    const char *keys[1];
    const prov_tag *tags[1];
    rec_step probe = {.before = (prov_image *)o, .after = after};
    size_t last = dep;
    prov_image *mid = dup_image(b, o);
    if (b->rc == 0 && takeover == REC_TAKEOVER_NONE &&
        rec_step_keys_to_remove(&probe, keys, 1) > 0) {
        for (size_t i = mid->n_tags; i-- > 0;)
            if (mid->tags[i].key && !rec_tag_key_is_cloud(mid->tags[i].key) &&
                !rec_image_tag(after, mid->tags[i].key))
                drop_tag(mid, mid->tags[i].key);
        step_args u = {rc->idx,
                       PH_TOGGLE,
                       REC_ACT_UNTAG,
                       rc->region,
                       name,
                       o->image_id,
                       "tags not in the manifest",
                       pos,
                       ihash,
                       dup_image(b, o),
                       dup_image(b, mid),
                       ch,
                       false,
                       REC_TAKEOVER_NONE};
        last = add_step(b, &u);
        add_dep(b, last, dep);
    }
    probe.before = mid;
    if (b->rc == 0 && rec_step_tags_to_set(&probe, tags, 1) > 0) {
        const char *why = takeover == REC_TAKEOVER_ADOPT
                              ? "adopt: our owner tag and the manifest's tags"
                          : takeover == REC_TAKEOVER_MIGRATE ? "owner migration: our owner tag"
                                                             : "tags differ from the manifest";
        step_args t = {rc->idx, PH_TOGGLE, REC_ACT_TAG, rc->region, name, o->image_id, why,
                       pos,     ihash,     mid,         after,      ch,   false,       takeover};
        /* The untag goes first only when the image would otherwise hold more than 20 tags
         * for a moment (the API's limit); independent steps batch better (one TagResources
         * for every image that gets the same set). */
        size_t adds = 0;
        for (size_t i = 0; i < after->n_tags; i++)
            adds += after->tags[i].key && !rec_image_tag(o, after->tags[i].key);
        size_t ts = add_step(b, &t);
        add_dep(b, ts, o->n_tags + adds > MAX_TAGS_PER_IMAGE ? last : dep);
        return ts;
    }
    rec_image_free(mid);
    rec_image_free(after);
    return last;
}

/* The entry's value for a user tag key: the last declaration of it wins, as in
 * entry_tags_image. Sets *ret_found. */
static const char *declared_tag(const spec_image *d, const char *key, bool *ret_found)
{
    const char *v = NULL;
    *ret_found = false;
    for (size_t j = 0; j < d->n_tags; j++)
        if (d->tags[j].key && strcmp(d->tags[j].key, key) == 0) {
            v = d->tags[j].value ? d->tags[j].value : "";
            *ret_found = true;
        }
    return v;
}

/* True when o's tags already are what entry_tags_image(b, d, o, true) would make them, so that
 * plan_tags has nothing to do; the common case, decided without copying the image (a copy and
 * a free of every declared image made up most of the diff's time). False means "not sure":
 * plan_tags then builds the image and compares, as before. It is sure when o has no key twice,
 * keeps every key of its own (cloud, owner, protect when the entry protects, or declared), and
 * already holds each declared value and our owner tag, with nothing to add for protect. */
static bool tags_in_sync(const builder *b, const spec_image *d, const prov_image *o)
{
    if (d->protect && !rec_image_protected(o))
        return false; /* entry_tags_image adds imgrecon/protect */
    for (size_t i = 0; i < o->n_tags; i++) {
        const char *k = o->tags[i].key;
        if (!k || rec_tag_key_is_cloud(k))
            continue;
        for (size_t j = 0; j < i; j++)
            if (o->tags[j].key && strcmp(o->tags[j].key, k) == 0)
                return false;
        bool declared;
        const char *want = declared_tag(d, k, &declared);
        const char *have = o->tags[i].value ? o->tags[i].value : "";
        if (strcmp(k, REC_OWNER_TAG) == 0)
            want = b->owner; /* set after the declared tags: it wins */
        else if (!declared && d->protect && strcmp(k, REC_PROTECT_TAG) == 0)
            continue; /* kept with its (protecting) value, as entry_tags_image keeps it */
        else if (!declared)
            return false; /* an UNTAG */
        if (strcmp(have, want) != 0)
            return false;
    }
    /* Every declared key and the owner tag must be there already (their values were compared
     * above). */
    for (size_t j = 0; j < d->n_tags; j++)
        if (d->tags[j].key && !rec_tag_key_is_cloud(d->tags[j].key) &&
            !rec_image_tag(o, d->tags[j].key))
            return false;
    return rec_image_tag(o, REC_OWNER_TAG) != NULL;
}

/* Tags of one of our declared, available images against its entry: one `~` change when they
 * differ (tag drift made by hand is repaired the same way, every cycle). */
static void plan_tags(builder *b, region_ctx *rc, const spec_image *d, const prov_image *o)
{
    if (tags_in_sync(b, d, o))
        return;
    prov_image *after = entry_tags_image(b, d, o, true);
    if (!after)
        return;
    rec_step probe = {.before = (prov_image *)o, .after = after};
    const char *keys[1];
    const prov_tag *tags[1];
    if (rec_step_keys_to_remove(&probe, keys, 1) == 0 &&
        rec_step_tags_to_set(&probe, tags, 1) == 0) {
        rec_image_free(after);
        return;
    }
    size_t ch =
        add_change(b, REC_CH_TAGS, swas_address(b, rc->region, d->name),
                   own(b, strdup("tags differ from the manifest (changed in place)")), &d->pos);
    plan_tag_steps(b, rc, d->name, o, after, ch, &d->pos, REC_TAKEOVER_NONE, SIZE_MAX);
}

/* Account-share steps from before's accounts to want (sorted), at most 10 accounts a call:
 * removals first, then additions, chained after dep. Returns the last step or dep. */
static size_t plan_account_steps(builder *b, region_ctx *rc, const char *name, const prov_image *o,
                                 char *const *want, size_t n_want, size_t ch, const spec_pos *pos,
                                 const char *why, size_t dep, int rm_phase, int add_phase)
{
    char ihash[REC_HASH_HEX + 1];
    image_hash("image", o->image_id, NULL, ihash);
    prov_image *cur = dup_image(b, o);
    size_t last = dep;
    for (int add = 0; add < 2 && cur && b->rc == 0; add++) {
        for (;;) {
            prov_image *next = dup_image(b, cur);
            if (!next)
                break;
            size_t moved = 0;
            if (!add) {
                for (size_t i = next->n_share_accounts; i-- > 0 && moved < ACCOUNTS_PER_CALL;) {
                    bool keep = false;
                    for (size_t k = 0; k < n_want && !keep; k++)
                        keep = strcmp(want[k], next->share_accounts[i]) == 0;
                    if (keep)
                        continue;
                    free(next->share_accounts[i]);
                    next->share_accounts[i] = next->share_accounts[--next->n_share_accounts];
                    moved++;
                }
            } else {
                for (size_t k = 0; k < n_want && moved < ACCOUNTS_PER_CALL; k++) {
                    bool have = false;
                    for (size_t i = 0; i < next->n_share_accounts && !have; i++)
                        have = strcmp(want[k], next->share_accounts[i]) == 0;
                    if (have)
                        continue;
                    char **g =
                        realloc(next->share_accounts, (next->n_share_accounts + 1) * sizeof(*g));
                    char *a = strdup(want[k]);
                    if (!g || !a) {
                        if (g)
                            next->share_accounts = g;
                        free(a);
                        b->rc = -ENOMEM;
                        break;
                    }
                    next->share_accounts = g;
                    next->share_accounts[next->n_share_accounts++] = a;
                    moved++;
                }
            }
            if (moved == 0 || b->rc < 0) {
                rec_image_free(next);
                break;
            }
            next->in_share_user = next->n_share_accounts > 0;
            step_args a = {rc->idx,
                           add ? add_phase : rm_phase,
                           add ? REC_ACT_ADD_ACCOUNTS : REC_ACT_REMOVE_ACCOUNTS,
                           rc->region,
                           name,
                           o->image_id,
                           why,
                           pos,
                           ihash,
                           dup_image(b, cur),
                           dup_image(b, next),
                           ch,
                           false,
                           REC_TAKEOVER_NONE};
            size_t st = add_step(b, &a);
            add_dep(b, st, last);
            last = st;
            rec_image_free(cur);
            cur = next;
        }
    }
    rec_image_free(cur);
    return last;
}

/* A new image (create, or the create of a replace) gets the entry's account shares once it is
 * available: add steps after the create, on the id the create returns. */
static void plan_accounts_after_create(builder *b, region_ctx *rc, const spec_image *d,
                                       size_t create, size_t ch)
{
    if (d->n_share_to_accounts == 0 || create == SIZE_MAX || b->rc < 0)
        return;
    prov_image *start = dup_image(b, b->p[create].st.after);
    if (!start)
        return;
    start->share_accounts_known = true;
    plan_account_steps(b, rc, d->name, start, d->share_to_accounts, d->n_share_to_accounts, ch,
                       &d->pos, "share_to_accounts (after the image is available)", create,
                       PH_SHARE_AFTER, PH_SHARE_AFTER);
    rec_image_free(start);
}

/* True when the image's account shares are known and differ from the entry's. */
static bool accounts_differ(const spec_image *d, const prov_image *o)
{
    if (!o->share_accounts_known)
        return false;
    if (d->n_share_to_accounts != o->n_share_accounts)
        return true;
    for (size_t k = 0; k < d->n_share_to_accounts; k++) {
        bool have = false;
        for (size_t i = 0; i < o->n_share_accounts && !have; i++)
            have = strcmp(d->share_to_accounts[k], o->share_accounts[i]) == 0;
        if (!have)
            return true;
    }
    return false;
}

static void plan_accounts(builder *b, region_ctx *rc, const spec_image *d, const prov_image *o)
{
    if (!o->share_accounts_known && (d->n_share_to_accounts > 0 || o->in_share_user)) {
        add_note(b, REC_NOTE_WARNING, rc->region, d->name, o->image_id,
                 own(b, strdup("the image's account shares were not observed: not compared")),
                 &d->pos);
        return;
    }
    if (!accounts_differ(d, o))
        return;
    size_t ch = add_change(b, REC_CH_ACCOUNTS, swas_address(b, rc->region, d->name),
                           own(b, strdup("share_to_accounts differs (changed in place)")), &d->pos);
    plan_account_steps(b, rc, d->name, o, d->share_to_accounts, d->n_share_to_accounts, ch, &d->pos,
                       "share_to_accounts differs", SIZE_MAX, PH_TOGGLE, PH_TOGGLE);
}

/* Before a delete: every account share removed (the API refuses to delete a shared image).
 * Returns the last removal step, or SIZE_MAX when there is none. */
static size_t plan_unshare_accounts(builder *b, region_ctx *rc, const char *name,
                                    const prov_image *o, size_t ch, const spec_pos *pos)
{
    if (!o->share_accounts_known || o->n_share_accounts == 0)
        return SIZE_MAX;
    return plan_account_steps(b, rc, name, o, NULL, 0, ch, pos,
                              "an image shared to accounts must be unshared before it is deleted",
                              SIZE_MAX, PH_UNSHARE, PH_UNSHARE);
}

/* Takes over a declared entry's image that is not ours (adopt: true and no owner tag, or an
 * owner of config previous_owners): one TAG step, never a replace. Adoption needs the image's
 * immutable fields to match the entry and the image to be available; otherwise the plan says
 * why and does nothing. */
static void plan_takeover(builder *b, region_ctx *rc, const spec_image *d, const prov_image *o,
                          rec_takeover how)
{
    if (how == REC_TAKEOVER_ADOPT) {
        char *diff = immutable_diff(b, d, o);
        if (diff) {
            size_t before = b->plan->n_notes;
            add_note(
                b, REC_NOTE_CONFLICT, rc->region, d->name, o->image_id,
                prov_asprintf("adopt: true, but the unowned image differs from the entry (%s): "
                              "not adopted (adoption never replaces); make the entry match "
                              "the image or rename one of them",
                              diff),
                &d->pos);
            if (b->plan->n_notes > before)
                b->plan->notes[b->plan->n_notes - 1].conflict = REC_CONFLICT_ADOPT_MISMATCH;
            free(diff);
            return;
        }
        if (o->status != PROV_IMG_AVAILABLE) {
            add_note(b, REC_NOTE_WARNING, rc->region, d->name, o->image_id,
                     prov_asprintf("adopt: true, but the image is in status %d: adopted once it is "
                                   "available (status 1)",
                                   o->status),
                     &d->pos);
            return;
        }
    }
    const char *from = rec_image_tag(o, REC_OWNER_TAG);
    char *why =
        how == REC_TAKEOVER_ADOPT
            ? prov_asprintf("adopt: the image has no %s tag and matches the entry", REC_OWNER_TAG)
            : prov_asprintf("owner migration: '%s' is a previous owner; retagged to '%s'",
                            from ? from : "", b->owner);
    size_t ch =
        add_change(b, REC_CH_ADOPT, swas_address(b, rc->region, d->name), own(b, why), &d->pos);
    plan_tag_steps(b, rc, d->name, o, entry_tags_image(b, d, o, false), ch, &d->pos, how, SIZE_MAX);
}

/* An undeclared image of a previous owner: retagged to our owner in place (nothing else). */
static void plan_migrate_undeclared(builder *b, region_ctx *rc, const prov_image *o)
{
    const char *from = rec_image_tag(o, REC_OWNER_TAG);
    size_t ch = add_change(b, REC_CH_ADOPT, swas_address(b, rc->region, o->name),
                           own(b, prov_asprintf("owner migration (undeclared): '%s' is a previous "
                                                "owner; retagged to '%s'",
                                                from ? from : "", b->owner)),
                           NULL);
    prov_image *after = dup_image(b, o);
    if (after && rec_image_set_tag(after, REC_OWNER_TAG, b->owner) < 0)
        b->rc = -ENOMEM;
    plan_tag_steps(b, rc, o->name, o, after, ch, NULL, REC_TAKEOVER_MIGRATE, SIZE_MAX);
}

/* An image whose Status is missing or none of 0 to 4 (a deletion under way, a state added
 * later): it is neither replaced nor pruned until a listing reports a known status. */
#define UNKNOWN_STATUS_TEXT                                                                        \
    "the image reports a status imgrecon does not know (not 0 to 4): nothing is done until it "    \
    "does"

/* One declared image with exactly one observed match of ours (or none at all); diff_region
 * never passes an image that is not ours. */
static void diff_declared(builder *b, region_ctx *rc, const spec_image *d, const prov_image *o)
{
    if (!o) {
        plan_create(b, rc, d);
        return;
    }
    bool prot = d->protect || rec_image_protected(o);
    const char *why_prot = d->protect ? "protect: true in the manifest"
                                      : "the image carries " REC_PROTECT_TAG
                                        " (any value but false protects)";
    switch (o->status) {
    case PROV_IMG_CREATING:
    case PROV_IMG_COPYING:
        plan_wait(b, rc, d, o);
        return;
    case PROV_IMG_FAILED:
        if (prot)
            add_note(b, REC_NOTE_REFUSED, rc->region, d->name, o->image_id,
                     prov_asprintf("creation failed (status 3); replace refused: %s", why_prot),
                     &d->pos);
        else
            plan_replace(b, rc, d, o, "creation failed (status 3)");
        return;
    case PROV_IMG_UNAVAILABLE:
        add_note(b, REC_NOTE_WARNING, rc->region, d->name, o->image_id,
                 own(b, strdup("the image is unavailable (status 2): nothing can be done now")),
                 &d->pos);
        return;
    case PROV_IMG_AVAILABLE:
        break;
    default:
        add_note(b, REC_NOTE_WARNING, rc->region, d->name, o->image_id,
                 own(b, strdup(UNKNOWN_STATUS_TEXT)), &d->pos);
        return;
    }
    char *diff = immutable_diff(b, d, o);
    if (diff) {
        if (prot)
            add_note(b, REC_NOTE_REFUSED, rc->region, d->name, o->image_id,
                     prov_asprintf("%s; replace refused: %s", diff, why_prot), &d->pos);
        else
            plan_replace(b, rc, d, o, diff);
        free(diff);
        return;
    }
    if (d->share_to_ecs != o->in_share)
        plan_toggle(b, rc, d, o);
    plan_tags(b, rc, d, o);
    plan_accounts(b, rc, d, o);
}

typedef enum und_class { UND_NOT_OWNED, UND_PROTECTED, UND_UNKNOWN_STATUS, UND_PRUNE } und_class;

static und_class classify_undeclared(const prov_image *o, const char *owner)
{
    if (!owned_by(o, owner))
        return UND_NOT_OWNED;
    if (rec_image_protected(o))
        return UND_PROTECTED;
    return o->status == PROV_IMG_UNKNOWN ? UND_UNKNOWN_STATUS : UND_PRUNE;
}

/* Counts the region's prune candidates (undeclared, owned, unprotected, the only one of ours
 * with its name). */
static size_t count_prune(const region_ctx *rc, const char *owner)
{
    size_t n = 0;
    for (size_t i = 0; i < rc->n_imgs; i++) {
        const prov_image *o = rc->imgs[i];
        size_t first, count;
        const prov_image *last = NULL;
        group_of(rc, i, &first, &count);
        if (!find_decl(rc, o->name) && classify_undeclared(o, owner) == UND_PRUNE &&
            count_owned(rc, owner, first, count, &last) == 1)
            n++;
    }
    return n;
}

static void plan_prune_delete(builder *b, region_ctx *rc, const prov_image *o)
{
    char ihash[REC_HASH_HEX + 1];
    image_hash("image", o->image_id, NULL, ihash);
    char *why = own(b, prov_asprintf("undeclared, owned by '%s', prune on", b->owner));
    size_t ch = add_change(b, REC_CH_DELETE, swas_address(b, rc->region, o->name), why, NULL);
    size_t un = SIZE_MAX;
    if (o->in_share) {
        step_args u = {rc->idx,
                       PH_UNSHARE,
                       REC_ACT_UNSHARE,
                       rc->region,
                       o->name,
                       o->image_id,
                       "a shared image must be unshared before it is deleted",
                       NULL,
                       ihash,
                       dup_image(b, o),
                       with_share(b, o, false),
                       ch,
                       false,
                       REC_TAKEOVER_NONE};
        un = add_step(b, &u);
    }
    step_args del = {rc->idx,        PH_DELETE,
                     REC_ACT_DELETE, rc->region,
                     o->name,        o->image_id,
                     why ? why : "", NULL,
                     ihash,          with_share(b, o, false),
                     NULL,           ch,
                     false,          REC_TAKEOVER_NONE};
    size_t acc = plan_unshare_accounts(b, rc, o->name, o, ch, NULL);
    size_t dl = add_step(b, &del);
    add_dep(b, dl, un);
    add_dep(b, dl, acc);
    push_ref(b, &rc->w.deletes, &rc->w.n_del, &rc->w.cap_del,
             (slot_ref){dl, o->in_share || acc != SIZE_MAX, 0});
}

typedef struct prune_guard {
    bool region_refused; /* allow_empty guard for this region */
    bool max_refused;    /* the global max_deletes guard */
} prune_guard;

static void diff_undeclared(builder *b, region_ctx *rc, const prov_image *o, prune_guard g)
{
    const char *name = o->name ? o->name : "";
    const char *their = rec_image_tag(o, REC_OWNER_TAG);
    char *text = NULL;
    switch (classify_undeclared(o, b->owner)) {
    case UND_NOT_OWNED:
        text = their ? prov_asprintf("undeclared, owned by '%s' (not '%s'): never touched", their,
                                     b->owner)
                     : prov_asprintf("undeclared, no %s tag: never touched", REC_OWNER_TAG);
        break;
    case UND_PROTECTED:
        text = prov_asprintf("undeclared, owned by '%s' but carries %s: never touched", b->owner,
                             REC_PROTECT_TAG);
        break;
    case UND_UNKNOWN_STATUS:
        add_note(
            b, REC_NOTE_WARNING, rc->region, name, o->image_id,
            own(b, prov_asprintf("undeclared, owned by '%s': %s", b->owner, UNKNOWN_STATUS_TEXT)),
            NULL);
        return;
    case UND_PRUNE:
        if (!b->o->prune)
            text = prov_asprintf("undeclared, owned by '%s': would prune (prune is off)", b->owner);
        else if (g.region_refused)
            text = prov_asprintf("undeclared, owned by '%s': would prune (refused: no image is "
                                 "declared in %s and allow_empty does not name it)",
                                 b->owner, rc->region);
        else if (g.max_refused)
            text = prov_asprintf("undeclared, owned by '%s': would prune (refused: more than "
                                 "max_deletes=%u prune deletes)",
                                 b->owner, b->o->max_deletes);
        else {
            plan_prune_delete(b, rc, o);
            return;
        }
        break;
    }
    add_note(b, REC_NOTE_UNMANAGED, rc->region, name, o->image_id, own(b, text), NULL);
}

/* A declared name that matches an image that is not ours (reconcile/README.md "Semantics",
 * Ownership): reported, never touched, and it makes apply exit 1 and the daemon's item fail. One
 * note per such image. Later kinds (adopt: true, previous_owners) would decide here instead. */
static void add_not_owned_conflict(builder *b, region_ctx *rc, const spec_image *d,
                                   const prov_image *o)
{
    const char *their = rec_image_tag(o, REC_OWNER_TAG);
    char *text = their ? prov_asprintf("declared, but the image named '%s' is owned by '%s' "
                                       "(not '%s'): not touched; rename the entry or the image",
                                       d->name, their, b->owner)
                       : prov_asprintf("declared, but the image named '%s' has no %s tag (made "
                                       "outside imgrecon): not touched; rename the entry or the "
                                       "image",
                                       d->name, REC_OWNER_TAG);
    size_t before = b->plan->n_notes;
    add_note(b, REC_NOTE_CONFLICT, rc->region, d->name, o->image_id, own(b, text), &d->pos);
    if (b->plan->n_notes > before) {
        rec_note *n = &b->plan->notes[b->plan->n_notes - 1];
        n->conflict = REC_CONFLICT_NOT_OWNED;
        n->owner = dup_or_fail(b, their);
    }
}

/* Several of our images share one name: none of them is touched (a reconciler cannot tell
 * which one the manifest means). */
static void add_duplicate_conflict(builder *b, region_ctx *rc, const char *name, size_t first,
                                   size_t count, const spec_image *d)
{
    char *ids = NULL;
    size_t n_owned = 0;
    for (size_t k = first; k < first + count; k++) {
        if (!owned_by(rc->imgs[k], b->owner))
            continue;
        n_owned++;
        char *s =
            prov_asprintf("%s%s%s", ids ? ids : "", ids ? ", " : "", show(rc->imgs[k]->image_id));
        free(ids);
        ids = own(b, s);
    }
    size_t before = b->plan->n_notes;
    add_note(b, REC_NOTE_CONFLICT, rc->region, name, NULL,
             prov_asprintf("%zu images owned by '%s' are named '%s' (%s): none of them is touched",
                           n_owned, b->owner, name, ids ? ids : ""),
             d ? &d->pos : NULL);
    if (b->plan->n_notes > before)
        b->plan->notes[b->plan->n_notes - 1].conflict = REC_CONFLICT_DUPLICATE;
    free(ids);
}

/* The one image of [first, first + count) (none of them ours) that the entry may take over:
 * without an owner tag when the entry says adopt: true, or owned by a previous owner. Two or
 * more candidates take over nothing (each stays a conflict). */
static const prov_image *takeover_candidate(const builder *b, const region_ctx *rc,
                                            const spec_image *d, size_t first, size_t count,
                                            rec_takeover *ret_how)
{
    const prov_image *take = NULL;
    size_t n = 0;
    for (size_t k = first; k < first + count; k++) {
        const char *their = rec_image_tag(rc->imgs[k], REC_OWNER_TAG);
        rec_takeover how = !their && d->adopt ? REC_TAKEOVER_ADOPT
                           : their && rec_options_is_previous_owner(b->o, their)
                               ? REC_TAKEOVER_MIGRATE
                               : REC_TAKEOVER_NONE;
        if (how != REC_TAKEOVER_NONE) {
            take = rc->imgs[k];
            *ret_how = how;
            n++;
        }
    }
    return n == 1 ? take : NULL;
}

/* Conflicts, declared images, undeclared images, ECS entries of one region. The ownership rule
 * is applied here, once, before any rule that makes steps: of the images a name matches, only
 * ours are diffed (declared: replace, toggle, wait; undeclared: prune); each one that is not
 * ours is a conflict when the name is declared and unmanaged otherwise, and a declared name
 * whose every match is not ours gets no create either (the name is taken). */
static void diff_region(builder *b, region_ctx *rc, const spec_set *desired, prune_guard g)
{
    for (size_t i = 0; i < rc->n_imgs;) {
        const char *name = rc->imgs[i]->name ? rc->imgs[i]->name : "";
        size_t first, count;
        const prov_image *last = NULL;
        group_of(rc, i, &first, &count);
        if (count_owned(rc, b->owner, first, count, &last) > 1)
            add_duplicate_conflict(b, rc, name, first, count, find_decl(rc, name));
        i = first + count;
    }
    for (size_t i = 0; i < rc->n_decl; i++) {
        const spec_image *d = rc->decl[i];
        size_t first, count;
        const prov_image *mine = NULL;
        find_named(rc, d->name, &first, &count);
        size_t n_owned = count_owned(rc, b->owner, first, count, &mine);
        rec_takeover how = REC_TAKEOVER_NONE;
        const prov_image *take =
            n_owned == 0 ? takeover_candidate(b, rc, d, first, count, &how) : NULL;
        for (size_t k = first; k < first + count; k++)
            if (!owned_by(rc->imgs[k], b->owner) && rc->imgs[k] != take)
                add_not_owned_conflict(b, rc, d, rc->imgs[k]);
        if (take)
            plan_takeover(b, rc, d, take, how);
        else if (count == 0 || n_owned == 1)
            diff_declared(b, rc, d, mine);
    }
    for (size_t i = 0; i < rc->n_imgs; i++) {
        const prov_image *o = rc->imgs[i];
        size_t first, count;
        const prov_image *last = NULL;
        if (find_decl(rc, o->name))
            continue;
        group_of(rc, i, &first, &count);
        size_t n_owned = count_owned(rc, b->owner, first, count, &last);
        if (!owned_by(o, b->owner) && n_owned == 0 &&
            rec_options_is_previous_owner(b->o, rec_image_tag(o, REC_OWNER_TAG)))
            plan_migrate_undeclared(b, rc, o);
        else if (!owned_by(o, b->owner) || n_owned == 1)
            diff_undeclared(b, rc, o, g);
    }
    for (size_t i = 0; i < desired->n_ecs; i++) {
        const spec_ecs_image *e = &desired->ecs[i];
        if (!e->region || !e->image_id || strcmp(e->region, rc->region) != 0)
            continue;
        if (!rc->obs->ecs_observed) {
            add_note(b, REC_NOTE_WARNING, rc->region, NULL, e->image_id,
                     prov_asprintf("ECS image %s: ECS images were not observed in %s", e->image_id,
                                   rc->region),
                     &e->pos);
            continue;
        }
        const prov_ecs_image *found = NULL;
        for (size_t k = 0; k < rc->obs->ecs.n && !found; k++)
            if (rc->obs->ecs.v[k].image_id && strcmp(rc->obs->ecs.v[k].image_id, e->image_id) == 0)
                found = &rc->obs->ecs.v[k];
        if (!found)
            continue;
        char hash[REC_HASH_HEX + 1];
        image_hash("ecs", e->image_id, e->force ? "force" : "", hash);
        char *why = own(b, prov_asprintf("ensure: absent, but the ECS image exists (status %s)",
                                         found->status ? found->status : "unknown"));
        size_t ch = add_change(b, REC_CH_ECS_DELETE,
                               own(b, prov_asprintf("ecs.%s.image.%s", rc->region, e->image_id)),
                               why, &e->pos);
        prov_image *before = NULL;
        if (b->rc == 0 && (before = calloc(1, sizeof(*before))) == NULL)
            b->rc = -ENOMEM;
        if (before) {
            before->image_id = dup_or_fail(b, found->image_id);
            before->name = dup_or_fail(b, found->name);
            before->region_id = dup_or_fail(b, rc->region);
            before->status = PROV_IMG_UNKNOWN;
        }
        step_args s = {rc->idx,
                       PH_ECS,
                       REC_ACT_ECS_DELETE,
                       rc->region,
                       found->name,
                       e->image_id,
                       why ? why : "",
                       &e->pos,
                       hash,
                       before,
                       NULL,
                       ch,
                       e->force,
                       REC_TAKEOVER_NONE};
        add_step(b, &s);
    }
}

static int cmp_delete_ref(const void *a, const void *b)
{
    const slot_ref *x = a, *y = b;
    if (x->own != y->own)
        return x->own ? 1 : -1; /* prune deletes before the deletes of replaces */
    if (x->flag != y->flag)
        return x->flag ? 1 : -1; /* deletes without an unshare free their slot sooner */
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static void quota_warning(builder *b, region_ctx *rc, size_t over, unsigned quota)
{
    add_note(b, REC_NOTE_WARNING, rc->region, NULL, NULL,
             prov_asprintf("%s: %zu create(s) exceed the quota of %u images (%zu now, %zu "
                           "delete(s) planned): apply will not send them",
                           rc->region, over, quota, rc->obs->images.n, rc->w.n_del),
             NULL);
}

/* Quota ordering (reconcile/README.md "Ordering"): a create may start only when the region has a
 * free slot. With F = quota - images free slots, plain creates take the free slots first, then the
 * replaces' creates. Every create beyond the free slots is matched with ONE delete of its own:
 * a replace with its own delete, a plain create with a distinct delete from the pool (prune
 * deletes, cheapest first, then the deletes of replaces that fit in the free slots). This is
 * safe whatever order the deletes finish in: at any time the creates started beyond F are at
 * most the deletes done, so images <= quota. Creates that fit do not wait at all, and no create
 * waits for more than the one delete it needs. When the region is already over its quota
 * (learned quota lower than the count) the conservative prefix rule is used instead: create i
 * waits for the first i + 1 - F deletes. */
static void plan_quota(builder *b, region_ctx *rc)
{
    region_work *w = &rc->w;
    unsigned quota = rec_options_quota(b->o, rc->region);
    if (rc->obs->have_quota && rc->obs->quota_learned < quota)
        quota = rc->obs->quota_learned;
    long free_slots = (long)quota - (long)rc->obs->images.n;
    if (w->n_del > 1)
        qsort(w->deletes, w->n_del, sizeof(*w->deletes), cmp_delete_ref);
    size_t n_creates = w->n_plain + w->n_repl, over = 0;
    if (n_creates == 0)
        return;
    if (free_slots < 0) {
        for (size_t i = 0; i < n_creates; i++) {
            const slot_ref *c =
                i < w->n_plain ? &w->creates_plain[i] : &w->creates_repl[i - w->n_plain];
            size_t need = i + 1 + (size_t)(-free_slots);
            if (need > w->n_del) {
                over++;
                need = w->n_del;
                b->p[c->idx].st.over_quota = true;
            }
            for (size_t k = 0; k < need; k++)
                add_dep(b, c->idx, w->deletes[k].idx);
        }
        if (over)
            quota_warning(b, rc, over, quota);
        return;
    }
    size_t slots = (size_t)free_slots;
    size_t plain_free = w->n_plain < slots ? w->n_plain : slots;
    size_t repl_free = w->n_repl < slots - plain_free ? w->n_repl : slots - plain_free;
    /* The pool: prune deletes (sorted first), then the own deletes of replaces that fit. */
    size_t *pool = w->n_del ? calloc(w->n_del, sizeof(*pool)) : NULL;
    if (w->n_del && !pool) {
        b->rc = -ENOMEM;
        return;
    }
    size_t n_pool = 0;
    for (size_t k = 0; k < w->n_del; k++)
        if (!w->deletes[k].own)
            pool[n_pool++] = w->deletes[k].idx;
    for (size_t j = 0; j < repl_free; j++)
        pool[n_pool++] = w->creates_repl[j].own;
    size_t next = 0;
    for (size_t i = plain_free; i < w->n_plain; i++) {
        if (next < n_pool) {
            add_dep(b, w->creates_plain[i].idx, pool[next++]);
        } else {
            over++;
            b->p[w->creates_plain[i].idx].st.over_quota = true;
            for (size_t k = 0; k < w->n_del; k++)
                add_dep(b, w->creates_plain[i].idx, w->deletes[k].idx);
        }
    }
    free(pool);
    if (over)
        quota_warning(b, rc, over, quota);
}

static int cmp_proto_idx(const void *a, const void *b, void *base)
{
    const proto *p = base;
    const proto *x = &p[*(const size_t *)a], *y = &p[*(const size_t *)b];
    if (x->region != y->region)
        return x->region < y->region ? -1 : 1;
    if (x->phase != y->phase)
        return x->phase < y->phase ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Numbers the protos by (region, phase, creation order) and rewrites every reference. */
static int finish_steps(builder *b)
{
    rec_plan *pl = b->plan;
    if (b->n == 0)
        return 0;
    size_t *order = calloc(b->n, sizeof(*order));
    unsigned *id_of = calloc(b->n, sizeof(*id_of));
    pl->steps = calloc(b->n, sizeof(*pl->steps));
    if (!order || !id_of || !pl->steps) {
        free(order);
        free(id_of);
        return -ENOMEM;
    }
    for (size_t i = 0; i < b->n; i++)
        order[i] = i;
    qsort_r(order, b->n, sizeof(*order), cmp_proto_idx, b->p);
    for (size_t i = 0; i < b->n; i++)
        id_of[order[i]] = (unsigned)(i + 1);
    for (size_t i = 0; i < b->n; i++) {
        rec_step *st = &pl->steps[i];
        *st = b->p[order[i]].st;
        memset(&b->p[order[i]].st, 0, sizeof(rec_step));
        st->id = (unsigned)(i + 1);
        for (size_t k = 0; k < st->n_depends; k++)
            st->depends_on[k] = id_of[st->depends_on[k]];
    }
    pl->n_steps = b->n;
    for (size_t c = 0; c < pl->n_changes; c++) {
        rec_change *ch = &pl->changes[c];
        for (size_t k = 0; k < ch->n_steps; k++)
            ch->steps[k] = id_of[ch->steps[k]];
        for (size_t k = 1; k < ch->n_steps; k++) /* insertion sort: a handful of ids */
            for (size_t j = k; j > 0 && ch->steps[j - 1] > ch->steps[j]; j--) {
                unsigned t = ch->steps[j];
                ch->steps[j] = ch->steps[j - 1];
                ch->steps[j - 1] = t;
            }
    }
    free(order);
    free(id_of);
    return 0;
}

static void builder_free_protos(builder *b)
{
    for (size_t i = 0; i < b->n; i++)
        rec_step_clear(&b->p[i].st);
    free(b->p);
    b->p = NULL;
    b->n = 0;
}

/* True when the n elements of size elem at v are already in cmp's order. spec_load sorts the
 * desired set by region and the client observes regions in that order, so the plan's two big
 * sorts (100,000 images, 6,667 regions) usually have nothing to do: one pass finds that out.
 * Equal neighbours count as in order (only a region observed twice, which should not happen,
 * compares equal; find_obs takes any of the two). */
static bool in_order(const void *v, size_t n, size_t elem, int (*cmp)(const void *, const void *))
{
    const char *p = v;
    for (size_t i = 1; i < n; i++)
        if (cmp(p + (i - 1) * elem, p + i * elem) > 0)
            return false;
    return true;
}

/* Orders observed regions by name (the plan builder's index). */
static int cmp_obs_region(const void *a, const void *b)
{
    const rec_region_obs *x = *(const rec_region_obs *const *)a;
    const rec_region_obs *y = *(const rec_region_obs *const *)b;
    return strcmp(x->region, y->region);
}

/* The observed region named region in a sorted index, or NULL. When the observation holds a
 * region twice (it should not), any of them; rec_observed_find took the first. */
static const rec_region_obs *find_obs(const rec_region_obs *const *index, size_t n,
                                      const char *region)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(index[mid]->region, region);
        if (c == 0)
            return index[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Entry point: see rec_plan.h. Two passes over the regions: the first counts prune candidates
 * so that the max_deletes guard (which spans regions) is known before any step is made. */
int rec_plan_build(const spec_set *desired, const rec_observed *observed, const rec_options *opts,
                   rec_plan **ret, char **ret_error)
{
    rec_options defaults;
    if (!opts) {
        rec_options_init(&defaults);
        opts = &defaults;
    }
    if (!desired || !observed || !ret)
        return -EINVAL;
    /* One sorted index of the observed regions, searched per desired region: a linear
     * rec_observed_find per region made planning quadratic in the number of regions. */
    const rec_region_obs **obs_index = observed->n ? calloc(observed->n, sizeof(*obs_index)) : NULL;
    if (observed->n && !obs_index)
        return -ENOMEM;
    for (size_t i = 0; i < observed->n; i++)
        obs_index[i] = &observed->regions[i];
    if (!in_order(obs_index, observed->n, sizeof(*obs_index), cmp_obs_region))
        qsort(obs_index, observed->n, sizeof(*obs_index), cmp_obs_region);
    for (size_t r = 0; r < desired->n_regions; r++) {
        if (!find_obs(obs_index, observed->n, desired->regions[r])) {
            if (ret_error)
                *ret_error = prov_asprintf("region %s was not observed", desired->regions[r]);
            free(obs_index);
            return -ENOENT;
        }
    }
    builder b = {0};
    b.o = opts;
    b.owner = opts->owner ? opts->owner : "default";
    b.plan = calloc(1, sizeof(*b.plan));
    if (!b.plan) {
        free(obs_index);
        return -ENOMEM;
    }
    b.plan->owner = own(&b, strdup(b.owner));
    size_t nr = desired->n_regions;
    region_ctx *rcs = nr ? calloc(nr, sizeof(*rcs)) : NULL;
    prune_guard *guards = nr ? calloc(nr, sizeof(*guards)) : NULL;
    if (nr && (!rcs || !guards))
        b.rc = -ENOMEM;
    const spec_image **by_region =
        desired->n_images ? calloc(desired->n_images, sizeof(*by_region)) : NULL;
    size_t n_by_region = 0;
    if (desired->n_images && !by_region)
        b.rc = -ENOMEM;
    for (size_t i = 0; by_region && i < desired->n_images; i++)
        if (desired->images[i].region && desired->images[i].name)
            by_region[n_by_region++] = &desired->images[i];
    if (!in_order(by_region, n_by_region, sizeof(*by_region), cmp_decl_region))
        qsort(by_region, n_by_region, sizeof(*by_region), cmp_decl_region);
    size_t total_prune = 0;
    for (size_t r = 0; r < nr && b.rc == 0; r++) {
        const rec_region_obs *obs = find_obs(obs_index, observed->n, desired->regions[r]);
        if (region_ctx_init(&rcs[r], by_region, n_by_region, obs, r, desired->regions[r]) < 0) {
            b.rc = -ENOMEM;
            break;
        }
        size_t n = opts->prune ? count_prune(&rcs[r], b.owner) : 0;
        if (n && rcs[r].n_decl == 0 && !rec_options_allow_empty(opts, rcs[r].region)) {
            guards[r].region_refused = true;
            add_note(&b, REC_NOTE_GUARD, rcs[r].region, NULL, NULL,
                     prov_asprintf("%s: no custom image is declared in this region and "
                                   "allow_empty does not name it: %zu prune delete(s) refused",
                                   rcs[r].region, n),
                     NULL);
        } else {
            total_prune += n;
        }
    }
    bool max_refused = opts->prune && total_prune > opts->max_deletes;
    if (max_refused)
        add_note(&b, REC_NOTE_GUARD, NULL, NULL, NULL,
                 prov_asprintf("%zu prune deletes exceed max_deletes (%u): no image is pruned",
                               total_prune, opts->max_deletes),
                 NULL);
    for (size_t r = 0; r < nr && b.rc == 0; r++) {
        guards[r].max_refused = max_refused;
        diff_region(&b, &rcs[r], desired, guards[r]);
        plan_quota(&b, &rcs[r]);
    }
    if (b.rc == 0)
        b.rc = finish_steps(&b);
    for (size_t r = 0; rcs && r < nr; r++)
        region_ctx_free(&rcs[r]);
    free(rcs);
    free(by_region);
    free(obs_index);
    free(guards);
    builder_free_protos(&b);
    if (b.rc < 0) {
        if (ret_error && b.error)
            *ret_error = b.error;
        else
            free(b.error);
        rec_plan_free(b.plan);
        return b.rc;
    }
    rec_plan_estimate(b.plan, opts);
    if (!opts->skip_fingerprints) {
        rec_fingerprint_desired(desired, b.owner, b.plan->fp.desired);
        rec_fingerprint_observed(observed, b.plan->fp.observed);
    }
    *ret = b.plan;
    return 0;
}
