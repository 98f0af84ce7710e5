/* The plan core: every diff rule on hand-built desired/observed sets, step ordering and quota
 * dependencies, prune guards, the estimate simulation, client tokens, fingerprints, and the
 * saved-plan round trip. No YAML and no network: spec_set and rec_observed are plain structs. */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rec_diff.h"
#include "rec_estimate.h"
#include "rec_plan.h"
#include "rec_planfile.h"
#include "rec_render.h"

#define R1 "cn-hangzhou"
#define R2 "cn-beijing"
#define INST "ace0706b2ac4454d984295a94213abcd"
#define SNAP "s-sys-0001"

/* ---- building desired sets ---- */

typedef struct fixture {
    spec_image imgs[40];
    spec_ecs_image ecs[4];
    char *regions[4];
    char *files[1];
    spec_set set;
    rec_observed obs;
    rec_options opts;
    rec_plan *plan;
} fixture;

static fixture fx;

static void fx_init(void)
{
    memset(&fx, 0, sizeof(fx));
    fx.files[0] = (char *)"images.yaml";
    fx.set.images = fx.imgs;
    fx.set.ecs = fx.ecs;
    fx.set.regions = fx.regions;
    fx.set.files = fx.files;
    fx.set.n_files = 1;
    rec_options_init(&fx.opts);
}

static void fx_fini(void)
{
    rec_plan_free(fx.plan);
    rec_observed_clear(&fx.obs);
}

TestSuite(plan, .init = fx_init, .fini = fx_fini);

static void want_region(const char *region)
{
    for (size_t i = 0; i < fx.set.n_regions; i++)
        if (strcmp(fx.regions[i], region) == 0)
            return;
    fx.regions[fx.set.n_regions++] = (char *)region;
    rec_region_obs *r = NULL;
    cr_assert_eq(rec_observed_add_region(&fx.obs, region, &r), 0);
}

static spec_image *declare(const char *region, const char *name, bool share)
{
    want_region(region);
    spec_image *d = &fx.imgs[fx.set.n_images++];
    d->region = (char *)region;
    d->name = (char *)name;
    d->instance_id = (char *)INST;
    d->system_snapshot_id = (char *)SNAP;
    d->share_to_ecs = share;
    d->pos = (spec_pos){"images.yaml", (unsigned)(3 * fx.set.n_images), 5};
    return d;
}

static rec_region_obs *obs_region(const char *region)
{
    for (size_t i = 0; i < fx.obs.n; i++)
        if (strcmp(fx.obs.regions[i].region, region) == 0)
            return &fx.obs.regions[i];
    cr_assert_fail("region %s not observed", region);
    return NULL;
}

static void add_tag(prov_image *img, const char *k, const char *v)
{
    img->tags = realloc(img->tags, (img->n_tags + 1) * sizeof(*img->tags));
    cr_assert_not_null(img->tags);
    img->tags[img->n_tags].key = strdup(k);
    img->tags[img->n_tags].value = strdup(v);
    img->n_tags++;
}

/* An observed image; owner NULL: no owner tag. */
static prov_image *observe(const char *region, const char *id, const char *name, int status,
                           bool in_share, const char *owner)
{
    rec_region_obs *r = obs_region(region);
    r->images.v = realloc(r->images.v, (r->images.n + 1) * sizeof(prov_image));
    cr_assert_not_null(r->images.v);
    prov_image *img = &r->images.v[r->images.n++];
    memset(img, 0, sizeof(*img));
    img->image_id = strdup(id);
    img->name = strdup(name);
    img->region_id = strdup(region);
    img->instance_id = strdup(INST);
    img->system_snapshot_id = strdup(SNAP);
    img->status = status;
    img->in_share = in_share;
    if (owner)
        add_tag(img, REC_OWNER_TAG, owner);
    return img;
}

static void build(void)
{
    rec_plan_free(fx.plan);
    fx.plan = NULL;
    char *err = NULL;
    int rc = rec_plan_build(&fx.set, &fx.obs, &fx.opts, &fx.plan, &err);
    cr_assert_eq(rc, 0, "rec_plan_build: %d %s", rc, err ? err : "");
    free(err);
    /* Every plan: dependencies point backwards, ids are positions, tokens are 64 hex. */
    for (size_t i = 0; i < fx.plan->n_steps; i++) {
        const rec_step *st = &fx.plan->steps[i];
        cr_assert_eq(st->id, i + 1);
        cr_assert_eq(strlen(st->client_token), 64);
        for (size_t k = 0; k < st->n_depends; k++)
            cr_assert_lt(st->depends_on[k], st->id, "step %u depends on %u", st->id,
                         st->depends_on[k]);
    }
}

static const rec_step *step_n(size_t i)
{
    cr_assert_lt(i, fx.plan->n_steps);
    return &fx.plan->steps[i];
}

static bool depends(const rec_step *st, unsigned id)
{
    for (size_t k = 0; k < st->n_depends; k++)
        if (st->depends_on[k] == id)
            return true;
    return false;
}

static const rec_note *note_of(rec_note_kind kind, size_t nth)
{
    for (size_t i = 0; i < fx.plan->n_notes; i++)
        if (fx.plan->notes[i].kind == kind && nth-- == 0)
            return &fx.plan->notes[i];
    cr_assert_fail("no note of kind %d", (int)kind);
    return NULL;
}

static char *render(const rec_plan *plan, unsigned flags)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    cr_assert_eq(rec_render_text(plan, f, flags), 0);
    cr_assert_eq(fclose(f), 0);
    return buf;
}

static size_t count_action(rec_action a)
{
    size_t n = 0;
    for (size_t i = 0; i < fx.plan->n_steps; i++)
        n += fx.plan->steps[i].action == a;
    return n;
}

/* ---- diff rules ---- */

Test(plan, missing_image_is_created_then_shared)
{
    spec_image *d = declare(R1, "web", true);
    spec_tag tags[] = {{(char *)"team", (char *)"web"}};
    d->tags = tags;
    d->n_tags = 1;
    d->protect = true;
    build();
    cr_assert_eq(fx.plan->n_steps, 2);
    const rec_step *c = step_n(0), *s = step_n(1);
    cr_assert_eq(c->action, REC_ACT_CREATE);
    cr_assert_str_eq(c->address, "swas.cn-hangzhou.custom_image.web");
    cr_assert_str_eq(c->reason, "not found in the account");
    cr_assert_null(c->image_id);
    cr_assert_str_eq(c->file, "images.yaml");
    cr_assert_eq(c->line, 3);
    cr_assert_eq(c->col, 5);
    cr_assert_null(c->before);
    cr_assert_not_null(c->after);
    cr_assert_str_eq(c->after->instance_id, INST);
    cr_assert_str_eq(c->after->system_snapshot_id, SNAP);
    cr_assert_eq(c->after->n_tags, 3);
    cr_assert_str_eq(c->after->tags[0].key, "team");
    cr_assert_str_eq(c->after->tags[1].key, REC_OWNER_TAG);
    cr_assert_str_eq(c->after->tags[1].value, "default");
    cr_assert_str_eq(c->after->tags[2].key, REC_PROTECT_TAG);
    cr_assert_eq(s->action, REC_ACT_SHARE);
    cr_assert(depends(s, c->id));
    cr_assert(s->after->in_share);
    cr_assert_eq(fx.plan->n_changes, 1);
    cr_assert_eq(fx.plan->changes[0].kind, REC_CH_CREATE);
    cr_assert_eq(fx.plan->changes[0].n_steps, 2);
    cr_assert_eq(rec_plan_n_changes(fx.plan), 2);
    cr_assert_eq(fx.plan->estimate.n_create, 1);
    cr_assert_eq(fx.plan->estimate.api_calls[REC_ACT_CREATE], 1);
    cr_assert_eq(fx.plan->estimate.api_calls[REC_ACT_SHARE], 1);
}

Test(plan, matching_image_means_no_changes)
{
    spec_image *d = declare(R1, "web", true);
    d->description = (char *)"";
    observe(R1, "m-1", "web", PROV_IMG_AVAILABLE, true, "default");
    build();
    cr_assert_eq(fx.plan->n_steps, 0);
    cr_assert_eq(fx.plan->n_notes, 0);
    char *text = render(fx.plan, 0);
    cr_assert_str_eq(text, "No changes. The account matches the manifests.\n");
    free(text);
}

Test(plan, share_and_unshare_toggles)
{
    declare(R1, "a", true);
    declare(R1, "b", false);
    observe(R1, "m-a", "a", PROV_IMG_AVAILABLE, false, "default");
    observe(R1, "m-b", "b", PROV_IMG_AVAILABLE, true, "default");
    build();
    cr_assert_eq(fx.plan->n_steps, 2);
    cr_assert_eq(step_n(0)->action, REC_ACT_SHARE);
    cr_assert_str_eq(step_n(0)->image_id, "m-a");
    cr_assert_str_eq(step_n(0)->reason, "share_to_ecs is true but the image is not shared");
    cr_assert_eq(step_n(1)->action, REC_ACT_UNSHARE);
    cr_assert_str_eq(step_n(1)->image_id, "m-b");
    cr_assert_str_eq(step_n(1)->reason, "share_to_ecs is false but the image is shared");
    cr_assert_eq(step_n(0)->n_depends + step_n(1)->n_depends, 0);
    cr_assert_eq(fx.plan->estimate.n_share, 1);
    cr_assert_eq(fx.plan->estimate.n_unshare, 1);
}

Test(plan, creating_image_is_awaited_not_changed)
{
    declare(R1, "a", false);
    declare(R1, "b", true);
    observe(R1, "m-a", "a", PROV_IMG_CREATING, false, "default");
    observe(R1, "m-b", "b", PROV_IMG_COPYING, false, "default");
    build();
    cr_assert_eq(count_action(REC_ACT_WAIT), 2);
    cr_assert_eq(count_action(REC_ACT_SHARE), 1);
    cr_assert_eq(rec_plan_n_changes(fx.plan), 1);
    const rec_step *share = step_n(2);
    cr_assert_eq(share->action, REC_ACT_SHARE);
    cr_assert_str_eq(share->image_id, "m-b");
    cr_assert_eq(share->n_depends, 1);
    cr_assert_eq(rec_plan_step(fx.plan, share->depends_on[0])->action, REC_ACT_WAIT);
    cr_assert_str_eq(rec_plan_step(fx.plan, share->depends_on[0])->image_id, "m-b");
    cr_assert_str_eq(step_n(0)->reason, "creating (status 4): waiting until it is available");
}

Test(plan, failed_image_is_replaced_only_when_owned)
{
    declare(R1, "mine", false);
    declare(R1, "theirs", false);
    observe(R1, "m-1", "mine", PROV_IMG_FAILED, false, "default");
    observe(R1, "m-2", "theirs", PROV_IMG_FAILED, false, "other");
    build();
    cr_assert_eq(fx.plan->n_steps, 2);
    cr_assert_eq(step_n(0)->action, REC_ACT_DELETE);
    cr_assert_str_eq(step_n(0)->image_id, "m-1");
    cr_assert_eq(step_n(1)->action, REC_ACT_CREATE);
    cr_assert(depends(step_n(1), step_n(0)->id));
    cr_assert_str_eq(step_n(1)->reason, "creation failed (status 3)");
    cr_assert_eq(fx.plan->changes[0].kind, REC_CH_REPLACE);
    const rec_note *n = note_of(REC_NOTE_CONFLICT, 0);
    cr_assert_str_eq(n->image_id, "m-2");
    cr_assert_eq(n->conflict, REC_CONFLICT_NOT_OWNED);
    cr_assert_str_eq(n->owner, "other");
    cr_assert_not_null(strstr(n->text, "owned by 'other' (not 'default')"), "%s", n->text);
    cr_assert_eq(rec_plan_n_notes(fx.plan, REC_NOTE_REFUSED), 0);
    cr_assert_eq(fx.plan->estimate.n_replace, 1);
}

Test(plan, immutable_change_replaces_with_unshare_and_share)
{
    spec_image *d = declare(R1, "web", true);
    d->instance_id = (char *)"ace-new";
    d->description = (char *)"new text";
    prov_image *o = observe(R1, "m-old", "web", PROV_IMG_AVAILABLE, true, "default");
    o->description = strdup("old text");
    build();
    cr_assert_eq(fx.plan->n_steps, 4);
    const rec_step *un = step_n(0), *del = step_n(1), *cr = step_n(2), *sh = step_n(3);
    cr_assert_eq(un->action, REC_ACT_UNSHARE);
    cr_assert_eq(del->action, REC_ACT_DELETE);
    cr_assert_eq(cr->action, REC_ACT_CREATE);
    cr_assert_eq(sh->action, REC_ACT_SHARE);
    cr_assert(depends(del, un->id));
    cr_assert(depends(cr, del->id));
    cr_assert(depends(sh, cr->id));
    cr_assert_str_eq(del->reason, "instance_id changed: " INST " -> ace-new; description "
                                  "changed: old text -> new text");
    cr_assert_eq(fx.plan->n_changes, 1);
    cr_assert_eq(fx.plan->changes[0].kind, REC_CH_REPLACE);
    cr_assert_eq(fx.plan->changes[0].n_steps, 4);
    /* The new image gets a token of its own, unlike a plain create of the same entry. */
    char plain[REC_TOKEN_MAX + 1], hash[REC_HASH_HEX + 1];
    rec_spec_image_hash(d, hash);
    rec_client_token("default", R1, REC_ACT_CREATE, "web", hash, 0, plain);
    cr_assert_str_neq(cr->client_token, plain);
}

Test(plan, replace_refused_when_protected)
{
    spec_image *d = declare(R1, "a", false);
    d->protect = true;
    d->instance_id = (char *)"ace-new";
    declare(R1, "b", false)->instance_id = (char *)"ace-new";
    observe(R1, "m-a", "a", PROV_IMG_AVAILABLE, false, "default");
    prov_image *b = observe(R1, "m-b", "b", PROV_IMG_AVAILABLE, false, "default");
    add_tag(b, REC_PROTECT_TAG, "true");
    build();
    cr_assert_eq(fx.plan->n_steps, 0);
    cr_assert_eq(rec_plan_n_notes(fx.plan, REC_NOTE_REFUSED), 2);
    cr_assert_not_null(strstr(note_of(REC_NOTE_REFUSED, 0)->text, "protect: true"));
    cr_assert_not_null(strstr(note_of(REC_NOTE_REFUSED, 1)->text, REC_PROTECT_TAG "=true"));
    char *text = render(fx.plan, 0);
    cr_assert_not_null(strstr(text, "No changes. 2 item(s) need attention"), "%s", text);
    free(text);
}

Test(plan, same_name_twice_is_a_conflict)
{
    declare(R1, "web", true);
    observe(R1, "m-1", "web", PROV_IMG_AVAILABLE, false, "default");
    observe(R1, "m-2", "web", PROV_IMG_AVAILABLE, false, "default");
    observe(R1, "m-3", "dup", PROV_IMG_AVAILABLE, false, "default");
    observe(R1, "m-4", "dup", PROV_IMG_AVAILABLE, false, "default");
    fx.opts.prune = true;
    build();
    cr_assert_eq(fx.plan->n_steps, 0);
    cr_assert_eq(rec_plan_n_notes(fx.plan, REC_NOTE_CONFLICT), 2);
    const rec_note *n = note_of(REC_NOTE_CONFLICT, 1);
    cr_assert_str_eq(n->text,
                     "2 images owned by 'default' are named 'web' (m-1, m-2): none of them is "
                     "touched");
    cr_assert_eq(n->conflict, REC_CONFLICT_DUPLICATE);
    cr_assert_str_eq(n->file, "images.yaml");
}

Test(plan, undeclared_images_and_prune)
{
    declare(R1, "keep", false);
    observe(R1, "m-keep", "keep", PROV_IMG_AVAILABLE, false, "default");
    observe(R1, "m-foreign", "foreign", PROV_IMG_AVAILABLE, false, "other");
    observe(R1, "m-untagged", "untagged", PROV_IMG_AVAILABLE, false, NULL);
    prov_image *p = observe(R1, "m-prot", "prot", PROV_IMG_AVAILABLE, false, "default");
    add_tag(p, REC_PROTECT_TAG, "true");
    observe(R1, "m-old", "old", PROV_IMG_AVAILABLE, true, "default");
    build();
    /* Prune is off: nothing to do, everything listed. */
    cr_assert_eq(fx.plan->n_steps, 0);
    cr_assert_eq(rec_plan_n_notes(fx.plan, REC_NOTE_UNMANAGED), 4);
    cr_assert_str_eq(note_of(REC_NOTE_UNMANAGED, 0)->text,
                     "undeclared, owned by 'other' (not 'default'): never touched");
    cr_assert_str_eq(note_of(REC_NOTE_UNMANAGED, 1)->text,
                     "undeclared, owned by 'default': would prune (prune is off)");
    cr_assert_not_null(strstr(note_of(REC_NOTE_UNMANAGED, 2)->text, "carries imgrecon/protect"));
    cr_assert_str_eq(note_of(REC_NOTE_UNMANAGED, 3)->text,
                     "undeclared, no imgrecon/owner tag: never touched");
    /* Prune on: the owned, unprotected image is unshared then deleted. */
    fx.opts.prune = true;
    build();
    cr_assert_eq(fx.plan->n_steps, 2);
    cr_assert_eq(step_n(0)->action, REC_ACT_UNSHARE);
    cr_assert_eq(step_n(1)->action, REC_ACT_DELETE);
    cr_assert_str_eq(step_n(1)->image_id, "m-old");
    cr_assert(depends(step_n(1), step_n(0)->id));
    cr_assert_str_eq(step_n(1)->reason, "undeclared, owned by 'default', prune on");
    cr_assert_null(step_n(1)->file);
    cr_assert_eq(rec_plan_n_notes(fx.plan, REC_NOTE_UNMANAGED), 3);
    cr_assert_eq(fx.plan->estimate.n_delete, 1);
}

/* allow_empty as a list: only the region allowed_region. */
static const char *allowed_region;
static bool allow_only(void *ud, const char *region)
{
    (void)ud;
    return allowed_region != NULL && strcmp(region, allowed_region) == 0;
}

Test(plan, prune_guard_allow_empty)
{
    want_region(R1);
    want_region(R2);
    declare(R2, "x", false);
    observe(R2, "m-x", "x", PROV_IMG_AVAILABLE, false, "default");
    observe(R1, "m-1", "old1", PROV_IMG_AVAILABLE, false, "default");
    observe(R1, "m-2", "old2", PROV_IMG_AVAILABLE, false, "default");
    fx.opts.prune = true;
    build();
    cr_assert_eq(fx.plan->n_steps, 0);
    cr_assert_eq(rec_plan_n_notes(fx.plan, REC_NOTE_GUARD), 1);
    cr_assert_str_eq(note_of(REC_NOTE_GUARD, 0)->text,
                     "cn-hangzhou: no custom image is declared in this region and allow_empty "
                     "does not name it: 2 prune delete(s) refused");
    cr_assert_not_null(
        strstr(note_of(REC_NOTE_UNMANAGED, 0)->text, "allow_empty does not name it"));
    /* allow_empty naming another region does not allow this one; naming it does. */
    fx.opts.allow_empty_for = allow_only;
    allowed_region = R2;
    build();
    cr_assert_eq(count_action(REC_ACT_DELETE), 0);
    cr_assert_eq(rec_plan_n_notes(fx.plan, REC_NOTE_GUARD), 1);
    allowed_region = R1;
    build();
    cr_assert_eq(count_action(REC_ACT_DELETE), 2);
    cr_assert_eq(rec_plan_n_notes(fx.plan, REC_NOTE_GUARD), 0);
    fx.opts.allow_empty_for = NULL;
    fx.opts.allow_empty = true;
    build();
    cr_assert_eq(count_action(REC_ACT_DELETE), 2);
    cr_assert_eq(rec_plan_n_notes(fx.plan, REC_NOTE_GUARD), 0);
}

Test(plan, prune_guard_max_deletes)
{
    declare(R1, "keep", false);
    observe(R1, "m-keep", "keep", PROV_IMG_AVAILABLE, false, "default");
    char ids[6][16], names[6][16];
    for (unsigned i = 0; i < 6; i++) {
        snprintf(ids[i], sizeof(ids[i]), "m-%u", i);
        snprintf(names[i], sizeof(names[i]), "old%u", i);
        observe(R1, ids[i], names[i], PROV_IMG_AVAILABLE, false, "default");
    }
    fx.opts.prune = true;
    build();
    cr_assert_eq(fx.plan->n_steps, 0);
    cr_assert_str_eq(note_of(REC_NOTE_GUARD, 0)->text,
                     "6 prune deletes exceed max_deletes (5): no image is pruned");
    cr_assert_eq(rec_plan_n_notes(fx.plan, REC_NOTE_UNMANAGED), 6);
    fx.opts.max_deletes = 6;
    build();
    cr_assert_eq(count_action(REC_ACT_DELETE), 6);
}

Test(plan, tag_drift_is_reported_only)
{
    spec_image *d = declare(R1, "web", false);
    spec_tag tags[] = {{(char *)"team", (char *)"web"}};
    d->tags = tags;
    d->n_tags = 1;
    prov_image *o = observe(R1, "m-1", "web", PROV_IMG_AVAILABLE, false, "default");
    add_tag(o, "team", "api");
    add_tag(o, "cost", "x");
    build();
    cr_assert_eq(fx.plan->n_steps, 0);
    cr_assert_str_eq(note_of(REC_NOTE_DRIFT, 0)->text,
                     "tags differ (team: api -> web; cost: x -> (absent)); not changed: the API "
                     "cannot update tags");
}

Test(plan, ecs_entries)
{
    want_region(R1);
    fx.ecs[0] = (spec_ecs_image){{"images.yaml", 20, 5}, (char *)R1, (char *)"m-ecs1", true};
    fx.ecs[1] = (spec_ecs_image){{"images.yaml", 23, 5}, (char *)R1, (char *)"m-gone", false};
    fx.set.n_ecs = 2;
    rec_region_obs *r = obs_region(R1);
    r->ecs_observed = true;
    r->ecs.v = calloc(1, sizeof(prov_ecs_image));
    r->ecs.v[0].image_id = strdup("m-ecs1");
    r->ecs.v[0].name = strdup("old-ecs");
    r->ecs.v[0].status = strdup("Available");
    r->ecs.n = 1;
    build();
    cr_assert_eq(fx.plan->n_steps, 1);
    cr_assert_eq(step_n(0)->action, REC_ACT_ECS_DELETE);
    cr_assert_str_eq(step_n(0)->address, "ecs.cn-hangzhou.image.m-ecs1");
    cr_assert(step_n(0)->ecs_force);
    cr_assert_str_eq(rec_action_api(step_n(0)->action), "DeleteImage");
    cr_assert_eq(fx.plan->estimate.n_ecs_delete, 1);
    r->ecs_observed = false;
    build();
    cr_assert_eq(fx.plan->n_steps, 0);
    cr_assert_eq(rec_plan_n_notes(fx.plan, REC_NOTE_WARNING), 2);
}

Test(plan, unobserved_region_is_an_error)
{
    declare(R1, "web", false);
    fx.regions[fx.set.n_regions++] = (char *)R2;
    char *err = NULL;
    cr_assert_eq(rec_plan_build(&fx.set, &fx.obs, &fx.opts, &fx.plan, &err), -ENOENT);
    cr_assert_null(fx.plan);
    cr_assert_str_eq(err, "region cn-beijing was not observed");
    free(err);
}

/* ---- quota ordering ---- */

static char qnames[40][16], qids[40][16];

/* n existing owned undeclared images old0..; plus the given declared names new0.. */
static void quota_world(unsigned existing, unsigned creates, const char *keep_name)
{
    declare(R1, keep_name, false);
    observe(R1, "m-keep", keep_name, PROV_IMG_AVAILABLE, false, "default");
    for (unsigned i = 0; i + 1 < existing; i++) {
        snprintf(qids[i], sizeof(qids[i]), "m-old%02u", i);
        snprintf(qnames[i], sizeof(qnames[i]), "old%02u", i);
        observe(R1, qids[i], qnames[i], PROV_IMG_AVAILABLE, i % 2 == 0, "default");
    }
    for (unsigned i = 0; i < creates; i++) {
        snprintf(qnames[20 + i], sizeof(qnames[20 + i]), "new%02u", i);
        declare(R1, qnames[20 + i], false);
    }
}

Test(plan, creates_wait_only_for_the_deletes_they_need)
{
    /* 13 images of 15: two creates fit, the third needs one delete, the fourth two. */
    quota_world(13, 4, "keep");
    fx.opts.prune = true;
    fx.opts.max_deletes = 20;
    build();
    cr_assert_eq(count_action(REC_ACT_DELETE), 12);
    cr_assert_eq(count_action(REC_ACT_CREATE), 4);
    unsigned seen = 0;
    for (size_t i = 0; i < fx.plan->n_steps; i++) {
        const rec_step *st = step_n(i);
        if (st->action != REC_ACT_CREATE)
            continue;
        size_t want = seen < 2 ? 0 : 1;
        cr_assert_eq(st->n_depends, want, "create %u depends on %zu", seen, st->n_depends);
        for (size_t k = 0; k < st->n_depends; k++) {
            const rec_step *dep = rec_plan_step(fx.plan, st->depends_on[k]);
            cr_assert_eq(dep->action, REC_ACT_DELETE);
            /* Deletes that need no unshare are used first. */
            cr_assert_eq(dep->n_depends, 0);
        }
        seen++;
    }
}

Test(plan, full_region_creates_wait_for_deletes)
{
    quota_world(15, 3, "keep");
    fx.opts.prune = true;
    fx.opts.max_deletes = 3;
    fx.opts.quota_default = 15;
    /* Only 3 prune candidates allowed: declare all but three of the old images. */
    for (unsigned i = 3; i < 14; i++)
        declare(R1, qnames[i], i % 2 == 0);
    build();
    cr_assert_eq(count_action(REC_ACT_DELETE), 3);
    /* No free slot: each create waits for exactly one delete, a different one each. */
    unsigned seen = 0, used[3] = {0};
    for (size_t i = 0; i < fx.plan->n_steps; i++) {
        const rec_step *st = step_n(i);
        if (st->action == REC_ACT_CREATE) {
            cr_assert_eq(st->n_depends, 1);
            cr_assert_eq(rec_plan_step(fx.plan, st->depends_on[0])->action, REC_ACT_DELETE);
            for (unsigned k = 0; k < seen; k++)
                cr_assert_neq(used[k], st->depends_on[0]);
            used[seen++] = st->depends_on[0];
        }
    }
    cr_assert_eq(seen, 3);
    cr_assert_eq(rec_plan_n_notes(fx.plan, REC_NOTE_WARNING), 0);
}

Test(plan, learned_quota_and_overflow_warning)
{
    quota_world(5, 2, "keep");
    rec_region_obs *r = obs_region(R1);
    r->have_quota = true;
    r->quota_learned = 6;
    build();
    /* One create fits; the other has no delete to wait for and is flagged. */
    cr_assert_eq(count_action(REC_ACT_CREATE), 2);
    cr_assert_eq(rec_plan_n_notes(fx.plan, REC_NOTE_WARNING), 1);
    cr_assert_not_null(strstr(note_of(REC_NOTE_WARNING, 0)->text, "quota of 6"));
}

Test(plan, replace_in_full_region_waits_for_its_own_delete)
{
    quota_world(15, 0, "keep");
    for (unsigned i = 0; i < 14; i++)
        declare(R1, qnames[i], i % 2 == 0);
    fx.imgs[1].instance_id = (char *)"ace-other"; /* old00 changes: replace */
    build();
    cr_assert_eq(fx.plan->estimate.n_replace, 1);
    const rec_step *cr = NULL, *del = NULL;
    for (size_t i = 0; i < fx.plan->n_steps; i++) {
        if (step_n(i)->action == REC_ACT_CREATE)
            cr = step_n(i);
        if (step_n(i)->action == REC_ACT_DELETE)
            del = step_n(i);
    }
    cr_assert_not_null(cr);
    cr_assert_not_null(del);
    cr_assert_eq(cr->n_depends, 1);
    cr_assert(depends(cr, del->id));
}

/* ---- estimate ---- */

Test(plan, estimate_fifteen_creates)
{
    for (unsigned i = 0; i < 15; i++) {
        snprintf(qnames[i], sizeof(qnames[i]), "img%02u", i);
        declare(R1, qnames[i], false);
    }
    fx.opts.create_wait_ms = 0;
    build();
    cr_assert_eq(fx.plan->estimate.api_calls[REC_ACT_CREATE], 15);
    cr_assert_eq(fx.plan->estimate.estimated_ms, 60000);
    char *text = render(fx.plan, 0);
    cr_assert_not_null(strstr(text, "Plan: 15 to create, 0 to replace, 0 to share/unshare, 0 to "
                                    "delete. API calls: CreateCustomImage 15. Estimated time: "
                                    "1m 0s at 10/60s per action.\n"),
                       "%s", text);
    free(text);
}

Test(plan, simulate_respects_windows_deps_and_independent_actions)
{
    /* Keys: 0 = 2/1000ms, 1 = 1/500ms. Tasks: three on key 0, two on key 1 after task 0, and a
     * no-call task after task 4 that lasts 100 ms. */
    spec_rate rates[] = {{2, 1000}, {1, 500}};
    size_t d0[] = {0}, d4[] = {4};
    rec_sim_task t[] = {
        {0, 50, NULL, 0}, {0, 0, NULL, 0}, {0, 0, NULL, 0},
        {1, 0, d0, 1},    {1, 0, d0, 1},   {-1, 100, d4, 1},
    };
    uint64_t total = 0, done[6];
    cr_assert_eq(rec_simulate(t, 6, rates, 2, &total, done), 0);
    cr_assert_eq(done[0], 50);
    cr_assert_eq(done[1], 0);
    cr_assert_eq(done[2], 1000);
    cr_assert_eq(done[3], 50);
    cr_assert_eq(done[4], 550);
    cr_assert_eq(done[5], 650);
    cr_assert_eq(total, 1000);
    size_t cyc0[] = {1}, cyc1[] = {0};
    rec_sim_task cyc[] = {{0, 0, cyc0, 1}, {0, 0, cyc1, 1}};
    cr_assert_eq(rec_simulate(cyc, 2, rates, 2, &total, NULL), -EINVAL);
    rec_sim_task badkey[] = {{5, 0, NULL, 0}};
    cr_assert_eq(rec_simulate(badkey, 1, rates, 2, &total, NULL), -EINVAL);
}

Test(plan, estimate_share_and_unshare_share_one_budget)
{
    for (unsigned i = 0; i < 12; i++) {
        snprintf(qnames[i], sizeof(qnames[i]), "img%02u", i);
        snprintf(qids[i], sizeof(qids[i]), "m-%02u", i);
        declare(R1, qnames[i], i < 6);
        observe(R1, qids[i], qnames[i], PROV_IMG_AVAILABLE, i >= 6, "default");
    }
    fx.opts.rate_default = (spec_rate){10, 1000};
    build();
    cr_assert_eq(fx.plan->estimate.n_share, 6);
    cr_assert_eq(fx.plan->estimate.n_unshare, 6);
    /* 12 ModifyImageShareStatus calls at 10/1s: the last two wait one window. */
    cr_assert_eq(fx.plan->estimate.estimated_ms, 1000);
}

/* ---- tokens and fingerprints ---- */

Test(plan, client_tokens_are_stable)
{
    char a[REC_TOKEN_MAX + 1], b[REC_TOKEN_MAX + 1], c[REC_TOKEN_MAX + 1], d[REC_TOKEN_MAX + 1];
    rec_client_token("default", R1, REC_ACT_CREATE, "web", "abc", 0, a);
    rec_client_token("default", R1, REC_ACT_CREATE, "web", "abc", 0, b);
    rec_client_token("default", R1, REC_ACT_CREATE, "web", "abc", 1, c);
    rec_client_token("default", R1, REC_ACT_SHARE, "web", "abc", 0, d);
    cr_assert_str_eq(a, b);
    cr_assert_str_neq(a, c);
    cr_assert_str_neq(a, d);
    cr_assert_eq(strlen(a), 64);
    /* Field boundaries are unambiguous. */
    rec_client_token("default", R1, REC_ACT_CREATE, "we", "babc", 0, b);
    cr_assert_str_neq(a, b);
    /* Two builds of the same world give the same tokens; the generation bump changes one. */
    declare(R1, "web", true);
    build();
    char first[REC_TOKEN_MAX + 1];
    memcpy(first, fx.plan->steps[0].client_token, sizeof(first));
    build();
    cr_assert_str_eq(first, fx.plan->steps[0].client_token);
    rec_step_set_generation(&fx.plan->steps[0], "default", 1);
    cr_assert_str_neq(first, fx.plan->steps[0].client_token);
    cr_assert_eq(fx.plan->steps[0].generation, 1);
}

Test(plan, observed_fingerprint_ignores_order_but_not_state)
{
    declare(R1, "a", false);
    observe(R1, "m-1", "a", PROV_IMG_AVAILABLE, false, "default");
    prov_image *two = observe(R1, "m-2", "b", PROV_IMG_AVAILABLE, false, "default");
    add_tag(two, "x", "1");
    add_tag(two, "y", "2");
    char f1[REC_HASH_HEX + 1], f2[REC_HASH_HEX + 1], f3[REC_HASH_HEX + 1];
    rec_fingerprint_observed(&fx.obs, f1);
    rec_region_obs *r = obs_region(R1);
    prov_image tmp = r->images.v[0];
    r->images.v[0] = r->images.v[1];
    r->images.v[1] = tmp;
    prov_tag tt = r->images.v[0].tags[1];
    r->images.v[0].tags[1] = r->images.v[0].tags[2];
    r->images.v[0].tags[2] = tt;
    rec_fingerprint_observed(&fx.obs, f2);
    cr_assert_str_eq(f1, f2);
    r->images.v[1].in_share = true;
    rec_fingerprint_observed(&fx.obs, f3);
    cr_assert_str_neq(f1, f3);
    char d1[REC_HASH_HEX + 1], d2[REC_HASH_HEX + 1];
    rec_fingerprint_desired(&fx.set, "default", d1);
    fx.imgs[0].share_to_ecs = true;
    rec_fingerprint_desired(&fx.set, "default", d2);
    cr_assert_str_neq(d1, d2);
}

/* ---- rendering ---- */

/* One of everything: create+share, replace of a shared image, toggle, prune, ECS, unmanaged,
 * conflict, wait. */
static void mixed_world(void)
{
    declare(R1, "api", false)->instance_id = (char *)"ace-new";
    declare(R1, "db", true);
    declare(R1, "web", true);
    declare(R1, "worker", false);
    observe(R1, "m-api", "api", PROV_IMG_AVAILABLE, true, "default");
    observe(R1, "m-db", "db", PROV_IMG_AVAILABLE, false, "default");
    observe(R1, "m-worker", "worker", PROV_IMG_CREATING, false, "default");
    observe(R1, "m-old", "old", PROV_IMG_AVAILABLE, false, "default");
    observe(R1, "m-x", "foreign", PROV_IMG_AVAILABLE, false, "other");
    fx.ecs[0] = (spec_ecs_image){{"images.yaml", 30, 5}, (char *)R1, (char *)"m-ecs1", false};
    fx.set.n_ecs = 1;
    rec_region_obs *r = obs_region(R1);
    r->ecs_observed = true;
    r->ecs.v = calloc(1, sizeof(prov_ecs_image));
    r->ecs.v[0].image_id = strdup("m-ecs1");
    r->ecs.v[0].status = strdup("Available");
    r->ecs.n = 1;
    fx.opts.prune = true;
    fx.opts.create_wait_ms = 30000;
}

static const char mixed_text[] =
    "imgrecon will perform the following actions:\n"
    "\n"
    "-/+ swas.cn-hangzhou.custom_image.api  (images.yaml:3:5)\n"
    "      instance_id changed: ace0706b2ac4454d984295a94213abcd -> ace-new\n"
    "      steps: #2 unshare, #3 delete after #2, #6 create after #3\n"
    "  ~ swas.cn-hangzhou.custom_image.db  (images.yaml:6:5)\n"
    "      share_to_ecs is true but the image is not shared\n"
    "      steps: #1 share\n"
    "  + swas.cn-hangzhou.custom_image.web  (images.yaml:9:5)\n"
    "      not found in the account\n"
    "      steps: #7 create after #4, #8 share after #7\n"
    "  . swas.cn-hangzhou.custom_image.worker  (images.yaml:12:5)\n"
    "      creating (status 4): waiting until it is available\n"
    "      steps: #5 wait\n"
    "  - swas.cn-hangzhou.custom_image.old  (prune)\n"
    "      undeclared, owned by 'default', prune on\n"
    "      steps: #4 delete\n"
    "  - ecs.cn-hangzhou.image.m-ecs1  (images.yaml:30:5)\n"
    "      ensure: absent, but the ECS image exists (status Available)\n"
    "      steps: #9 ecs_delete\n"
    "\n"
    "Unmanaged images (never touched):\n"
    "  ? swas.cn-hangzhou.custom_image.foreign (m-x): undeclared, owned by 'other' (not "
    "'default'): never touched\n"
    "\n"
    "Plan: 1 to create, 1 to replace, 3 to share/unshare, 1 to delete, 1 ECS image(s) to "
    "delete. API calls: CreateCustomImage 2, ModifyImageShareStatus 3, DeleteCustomImage 2, "
    "DeleteImage 1. Estimated time: 30s at 10/60s per action, assuming 30s per image build.\n";

Test(plan, render_text_snapshot)
{
    mixed_world();
    /* Five images in a region whose quota is 5: web's create must wait for a delete. */
    fx.opts.quota_default = 5;
    build();
    char *text = render(fx.plan, 0);
    cr_assert_str_eq(text, mixed_text, "got:\n%s", text);
    cr_assert_null(strchr(text, '\033'));
    free(text);
    text = render(fx.plan, REC_RENDER_COLOR);
    cr_assert_not_null(strstr(text, "\033[35m-/+\033[0m"));
    cr_assert_not_null(strstr(text, "\033[32m  +\033[0m"));
    cr_assert_not_null(strstr(text, "\033[33m  ~\033[0m"));
    cr_assert_not_null(strstr(text, "\033[31m  -\033[0m"));
    free(text);
}

Test(plan, render_json_fields)
{
    mixed_world();
    build();
    char *s = rec_render_json(fx.plan, false);
    cr_assert_not_null(s);
    json_error_t err;
    json_t *doc = json_loads(s, 0, &err);
    free(s);
    cr_assert_not_null(doc, "%s", err.text);
    cr_assert_str_eq(json_string_value(json_object_get(doc, "format_version")), "1.1");
    json_t *steps = json_object_get(doc, "steps");
    cr_assert_eq(json_array_size(steps), fx.plan->n_steps);
    json_t *s2 = json_array_get(steps, 2); /* the replace's delete */
    cr_assert_str_eq(json_string_value(json_object_get(s2, "action")), "delete");
    cr_assert_str_eq(json_string_value(json_object_get(s2, "api_action")), "DeleteCustomImage");
    cr_assert_str_eq(json_string_value(json_object_get(s2, "address")),
                     "swas.cn-hangzhou.custom_image.api");
    cr_assert_str_eq(json_string_value(json_object_get(s2, "image_id")), "m-api");
    json_t *m = json_object_get(s2, "manifest");
    cr_assert_str_eq(json_string_value(json_object_get(m, "file")), "images.yaml");
    cr_assert_eq(json_integer_value(json_object_get(m, "line")), 3);
    cr_assert_eq(json_integer_value(json_array_get(json_object_get(s2, "depends_on"), 0)), 2);
    cr_assert(json_is_object(json_object_get(s2, "before")));
    cr_assert(json_is_null(json_object_get(s2, "after")));
    cr_assert_eq(json_string_length(json_object_get(s2, "client_token")), 64);
    json_t *prune = json_array_get(steps, 3);
    cr_assert(json_is_null(json_object_get(prune, "manifest")));
    json_t *create = json_array_get(steps, 5);
    json_t *after = json_object_get(create, "after");
    cr_assert_str_eq(
        json_string_value(json_object_get(json_object_get(after, "tags"), REC_OWNER_TAG)),
        "default");
    cr_assert(json_is_null(json_object_get(create, "image_id")));
    json_t *sum = json_object_get(doc, "summary");
    cr_assert_eq(json_integer_value(json_object_get(sum, "create")), 1);
    cr_assert_eq(json_integer_value(json_object_get(sum, "replace")), 1);
    cr_assert_eq(json_integer_value(json_object_get(sum, "delete")), 1);
    cr_assert_eq(json_integer_value(json_object_get(sum, "ecs_delete")), 1);
    json_t *calls = json_object_get(sum, "api_calls");
    cr_assert_eq(json_integer_value(json_object_get(calls, "CreateCustomImage")), 2);
    cr_assert_eq(json_integer_value(json_object_get(calls, "ModifyImageShareStatus")), 3);
    cr_assert_eq(json_real_value(json_object_get(sum, "estimated_seconds")), 30.0);
    cr_assert_str_eq(json_string_value(json_object_get(sum, "rate")), "10/60s");
    json_t *un = json_object_get(doc, "unmanaged");
    cr_assert_eq(json_array_size(un), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(un, 0), "image_id")), "m-x");
    cr_assert(json_is_array(json_object_get(doc, "guards")));
    cr_assert(json_is_array(json_object_get(doc, "conflicts")));
    cr_assert_eq(
        json_string_length(json_object_get(json_object_get(doc, "fingerprint"), "observed")), 64);
    json_decref(doc);
}

Test(plan, format_duration)
{
    char b[32];
    rec_format_duration(0, b, sizeof(b));
    cr_assert_str_eq(b, "0s");
    rec_format_duration(1500, b, sizeof(b));
    cr_assert_str_eq(b, "1.5s");
    rec_format_duration(45000, b, sizeof(b));
    cr_assert_str_eq(b, "45s");
    rec_format_duration(72000, b, sizeof(b));
    cr_assert_str_eq(b, "1m 12s");
    rec_format_duration(7380000, b, sizeof(b));
    cr_assert_str_eq(b, "2h 3m");
}

/* ---- saved plans ---- */

static char plan_path[128];

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    cr_assert_gt(n, 0);
    rewind(f);
    char *text = malloc((size_t)n + 1);
    cr_assert_not_null(text);
    cr_assert_eq(fread(text, 1, (size_t)n, f), (size_t)n);
    text[n] = '\0';
    fclose(f);
    return text;
}

Test(plan, planfile_round_trip)
{
    mixed_world();
    build();
    snprintf(plan_path, sizeof(plan_path), "/tmp/imgrecon-plan-%d.json", (int)getpid());
    cr_assert_eq(rec_plan_save(fx.plan, NULL, plan_path), 0);
    rec_plan *loaded = NULL;
    char *err = NULL;
    cr_assert_eq(rec_plan_load(plan_path, &loaded, NULL, &err), 0, "%s", err ? err : "");
    cr_assert(rec_fingerprint_equal(&loaded->fp, &fx.plan->fp));
    cr_assert_eq(loaded->n_steps, fx.plan->n_steps);
    cr_assert_eq(loaded->n_changes, fx.plan->n_changes);
    cr_assert_eq(loaded->n_notes, fx.plan->n_notes);
    for (size_t i = 0; i < loaded->n_steps; i++) {
        const rec_step *a = &loaded->steps[i], *b = &fx.plan->steps[i];
        cr_assert_eq(a->action, b->action);
        cr_assert_str_eq(a->address, b->address);
        cr_assert_str_eq(a->client_token, b->client_token);
        cr_assert_eq(a->n_depends, b->n_depends);
        cr_assert_eq(a->change, b->change);
    }
    /* The same plan renders the same once its estimate is recomputed. */
    rec_plan_estimate(loaded, &fx.opts);
    char *t1 = render(fx.plan, 0), *t2 = render(loaded, 0);
    cr_assert_str_eq(t1, t2);
    free(t1);
    free(t2);
    rec_plan_free(loaded);

    /* A tampered token, a bad dependency, garbage and a missing file are refused clearly. */
    char *text = slurp(plan_path);
    char *tok = strstr(text, "\"client_token\": \"");
    cr_assert_not_null(tok);
    tok += strlen("\"client_token\": \"");
    *tok = *tok == 'a' ? 'b' : 'a';
    write_text(plan_path, text);
    free(text);
    cr_assert_eq(rec_plan_load(plan_path, &loaded, NULL, &err), -EINVAL);
    cr_assert_not_null(strstr(err, "client_token does not match"), "%s", err);
    free(err);
    err = NULL;
    write_text(plan_path, "{\"format_version\": \"1.0\", \"kind\": \"imgrecon-plan\"");
    cr_assert_eq(rec_plan_load(plan_path, &loaded, NULL, &err), -EINVAL);
    free(err);
    err = NULL;
    write_text(plan_path, "{\"format_version\": \"9\", \"kind\": \"imgrecon-plan\"}");
    cr_assert_eq(rec_plan_load(plan_path, &loaded, NULL, &err), -EINVAL);
    cr_assert_not_null(strstr(err, "unsupported format_version"), "%s", err);
    free(err);
    err = NULL;
    cr_assert_eq(unlink(plan_path), 0);
    cr_assert_eq(rec_plan_load(plan_path, &loaded, NULL, &err), -ENOENT);
    free(err);
}

/* ---- ownership (DESIGN.md "Semantics", Ownership) ---- */

/* Every step kind on an existing image passes the one ownership gate: a declared name whose
 * image is not ours (no owner tag, or another owner) in any status, shared or not, with equal or
 * different immutable fields, gets no step at all (no share, unshare, wait, delete, replace, and
 * no create: the name is taken) and one conflict naming the image and its owner. */
Test(plan, declared_name_on_an_image_not_ours_is_a_conflict_matrix)
{
    static const int statuses[] = {PROV_IMG_AVAILABLE, PROV_IMG_CREATING, PROV_IMG_COPYING,
                                   PROV_IMG_FAILED};
    static const char *const owners[] = {NULL, "team-b"};
    unsigned cases = 0;
    for (size_t s = 0; s < 4; s++)
        for (size_t sh = 0; sh < 2; sh++)
            for (size_t ow = 0; ow < 2; ow++)
                for (size_t diff = 0; diff < 2; diff++) {
                    fx_fini();
                    fx_init();
                    fx.opts.prune = true;
                    fx.opts.owner = "team-a";
                    spec_image *d = declare(R1, "hand-made", sh == 0); /* share differs */
                    if (diff)
                        d->description = (char *)"another description";
                    observe(R1, "m-theirs", "hand-made", statuses[s], sh == 1, owners[ow]);
                    build();
                    cr_assert_eq(fx.plan->n_steps, 0, "status %d share %zu owner %s diff %zu",
                                 statuses[s], sh, owners[ow] ? owners[ow] : "-", diff);
                    cr_assert_eq(rec_plan_n_notes(fx.plan, REC_NOTE_CONFLICT), 1);
                    const rec_note *n = note_of(REC_NOTE_CONFLICT, 0);
                    cr_assert_eq(n->conflict, REC_CONFLICT_NOT_OWNED);
                    cr_assert_str_eq(n->image_id, "m-theirs");
                    cr_assert_str_eq(n->address, "swas.cn-hangzhou.custom_image.hand-made");
                    if (owners[ow])
                        cr_assert_str_eq(n->owner, owners[ow]);
                    else
                        cr_assert_null(n->owner);
                    cr_assert_str_eq(n->file, "images.yaml");
                    char *text = render(fx.plan, 0);
                    cr_assert_not_null(strstr(text, "Conflicts (nothing is done):"), "%s", text);
                    cr_assert_not_null(strstr(text, "(m-theirs)"), "%s", text);
                    cr_assert_not_null(strstr(text, owners[ow] ? "owned by 'team-b'"
                                                               : "has no imgrecon/owner tag"),
                                       "%s", text);
                    free(text);
                    char *json = rec_render_json(fx.plan, false);
                    json_t *doc = json_loads(json, 0, NULL);
                    json_t *c = json_array_get(json_object_get(doc, "conflicts"), 0);
                    cr_assert_str_eq(json_string_value(json_object_get(c, "image_id")), "m-theirs");
                    cr_assert_str_eq(json_string_value(json_object_get(c, "conflict")),
                                     "not_owned");
                    if (owners[ow])
                        cr_assert_str_eq(json_string_value(json_object_get(c, "owner")),
                                         owners[ow]);
                    else
                        cr_assert(json_is_null(json_object_get(c, "owner")));
                    json_decref(doc);
                    free(json);
                    cases++;
                }
    cr_assert_eq(cases, 32);
}

/* Two images with one name, one ours and one not: ours is diffed as before (here shared, as the
 * entry wants), the other is a conflict; no step names the other's id. */
Test(plan, same_name_ours_and_not_ours)
{
    fx.opts.owner = "team-a";
    fx.opts.prune = true;
    declare(R1, "web", true);
    observe(R1, "m-ours", "web", PROV_IMG_AVAILABLE, false, "team-a");
    observe(R1, "m-console", "web", PROV_IMG_AVAILABLE, true, NULL);
    observe(R1, "m-foreign", "web", PROV_IMG_FAILED, false, "team-b");
    build();
    cr_assert_eq(fx.plan->n_steps, 1);
    cr_assert_eq(step_n(0)->action, REC_ACT_SHARE);
    cr_assert_str_eq(step_n(0)->image_id, "m-ours");
    cr_assert_eq(rec_plan_n_notes(fx.plan, REC_NOTE_CONFLICT), 2);
    cr_assert_str_eq(note_of(REC_NOTE_CONFLICT, 0)->image_id, "m-console");
    cr_assert_str_eq(note_of(REC_NOTE_CONFLICT, 1)->image_id, "m-foreign");
    cr_assert_str_eq(note_of(REC_NOTE_CONFLICT, 1)->owner, "team-b");
}

/* Undeclared images that are not ours stay unmanaged even when several share a name (no
 * conflict, which would fail apply for images nobody declared); an undeclared name with one
 * image of ours among foreign ones is pruned as before. */
Test(plan, undeclared_same_name_not_ours_is_unmanaged)
{
    fx.opts.owner = "team-a";
    fx.opts.prune = true;
    declare(R1, "keep", false);
    observe(R1, "m-keep", "keep", PROV_IMG_AVAILABLE, false, "team-a");
    observe(R1, "m-c1", "console", PROV_IMG_AVAILABLE, false, NULL);
    observe(R1, "m-c2", "console", PROV_IMG_AVAILABLE, false, "team-b");
    observe(R1, "m-old", "console", PROV_IMG_AVAILABLE, false, "team-a");
    build();
    cr_assert_eq(rec_plan_n_notes(fx.plan, REC_NOTE_CONFLICT), 0);
    cr_assert_eq(rec_plan_n_notes(fx.plan, REC_NOTE_UNMANAGED), 2);
    cr_assert_eq(fx.plan->n_steps, 1);
    cr_assert_eq(step_n(0)->action, REC_ACT_DELETE);
    cr_assert_str_eq(step_n(0)->image_id, "m-old");
}
