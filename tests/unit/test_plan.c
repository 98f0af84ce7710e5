/* The plan core: every diff rule on hand-built desired/observed sets, step ordering and quota
 * dependencies, prune guards, the estimate simulation, client tokens, fingerprints, and the
 * saved-plan round trip. No YAML and no network: spec_set and rec_observed are plain structs. */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rec_diff.h"
#include "rec_estimate.h"
#include "rec_plan.h"
#include "rec_plancheck.h"
#include "rec_planfile.h"
#include "rec_render.h"
#include "test_file.h"

#define R1 "cn-hangzhou"
#define R2 "cn-beijing"
#define INST "ace0706b2ac4454d984295a94213abcd"
#define SNAP "s-sys-0001"

/* ---- building desired sets ---- */

typedef struct fixture {
    spec_image imgs[80];
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

/* Marks img shared to the n accounts given, as a ListCustomImageShareAccounts would show it. */
static void shared_to(prov_image *img, const char *const *accounts, size_t n)
{
    img->in_share_user = true;
    img->share_accounts_known = true;
    img->share_accounts = calloc(n, sizeof(char *));
    cr_assert_not_null(img->share_accounts);
    for (size_t i = 0; i < n; i++)
        img->share_accounts[i] = strdup(accounts[i]);
    img->n_share_accounts = n;
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
    cr_assert_not_null(strstr(note_of(REC_NOTE_REFUSED, 1)->text, "carries " REC_PROTECT_TAG));
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

/* An owned image whose status imgrecon does not know (a "Deleting" listed, a missing Status):
 * neither the declared one (its description differs, a replace if it were available) nor the
 * undeclared one (prune on) gets a step; each gets a warning. The same images available are the
 * control: a replace and a prune. */
Test(plan, unknown_status_is_left_alone)
{
    static const struct {
        int status;
        size_t steps, warnings;
    } rows[] = {{PROV_IMG_AVAILABLE, 3, 0}, {PROV_IMG_UNKNOWN, 0, 2}};
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        fx_fini();
        fx_init();
        fx.opts.prune = true;
        declare(R1, "web", false)->description = (char *)"new text";
        observe(R1, "m-web", "web", rows[i].status, false, "default");
        observe(R1, "m-old", "old", rows[i].status, false, "default");
        build();
        cr_expect_eq(fx.plan->n_steps, rows[i].steps, "status %d", rows[i].status);
        cr_expect_eq(rec_plan_n_notes(fx.plan, REC_NOTE_WARNING), rows[i].warnings, "status %d",
                     rows[i].status);
    }
    cr_expect_str_eq(note_of(REC_NOTE_WARNING, 0)->text,
                     "the image reports a status imgrecon does not know (not 0 to 4): nothing is "
                     "done until it does");
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

static const char *tag_of(const prov_image *img, const char *key)
{
    const char *v = prov_image_tag(img, key);
    return v ? v : "(absent)";
}

/* ---- tags, protect, takeover, accounts in place (reconcile/README.md "Semantics") ---- */

/* The keys of the plan's TAG (set) and UNTAG (remove) deltas as "k=v,k=v" / "k,k" (sorted as
 * the steps list them), "" when there is no such step. */
static void deltas(char *set, size_t set_len, char *rm, size_t rm_len)
{
    set[0] = rm[0] = '\0';
    for (size_t i = 0; i < fx.plan->n_steps; i++) {
        const rec_step *st = &fx.plan->steps[i];
        if (st->action == REC_ACT_TAG) {
            const prov_tag *t[REC_DELTA_MAX];
            size_t n = rec_step_tags_to_set(st, t, REC_DELTA_MAX);
            for (size_t k = 0; k < n; k++)
                snprintf(set + strlen(set), set_len - strlen(set), "%s%s=%s", *set ? "," : "",
                         t[k]->key, t[k]->value);
        } else if (st->action == REC_ACT_UNTAG) {
            const char *keys[REC_DELTA_MAX];
            size_t n = rec_step_keys_to_remove(st, keys, REC_DELTA_MAX);
            for (size_t k = 0; k < n; k++)
                snprintf(rm + strlen(rm), rm_len - strlen(rm), "%s%s", *rm ? "," : "", keys[k]);
        }
    }
}

Test(plan, tags_are_reconciled_in_place_table)
{
    static const struct {
        const char *what;
        const char *have[6][2]; /* observed tags besides the owner tag */
        const char *want[3][2]; /* declared tags */
        bool protect;
        const char *set, *rm;
    } cases[] = {
        {"declared tags are authoritative for user keys",
         {{"team", "api"}, {"cost", "x"}},
         {{"team", "web"}},
         false,
         "team=web",
         "cost"},
        {"acs: and aliyun keys are never touched",
         {{"acs:rm:rgId", "rg-1"}, {"aliyun-x", "y"}, {"aliyunfoo", "z"}},
         {{0}},
         false,
         "",
         ""},
        /* The manifest refuses these prefixes in any case (spec_check_tag_key) and the API's
         * pages do not say that the cloud reads them literally: never removed either. */
        {"ACS: and Aliyun keys in another case are never touched",
         {{"ACS:rm:x", "1"}, {"Aliyun-x", "y"}, {"aLiYuNfoo", "z"}},
         {{0}},
         false,
         "",
         ""},
        {"an empty value is a value",
         {{"team", ""}},
         {{"team", "web"}, {"env", ""}},
         false,
         "team=web,env=",
         ""},
        {"protect added to an existing image tags it",
         {{0}},
         {{0}},
         true,
         REC_PROTECT_TAG "=true",
         ""},
        {"protect removed from the entry untags it",
         {{REC_PROTECT_TAG, "true"}},
         {{0}},
         false,
         "",
         REC_PROTECT_TAG},
        {"True protects already", {{REC_PROTECT_TAG, "True"}}, {{0}}, true, "", ""},
        {"yes protects already", {{REC_PROTECT_TAG, "yes"}}, {{0}}, true, "", ""},
        {"false does not protect",
         {{REC_PROTECT_TAG, "false"}},
         {{0}},
         true,
         REC_PROTECT_TAG "=true",
         ""},
        {"FALSE does not protect",
         {{REC_PROTECT_TAG, "FALSE"}},
         {{0}},
         true,
         REC_PROTECT_TAG "=true",
         ""},
        {"a matching image needs nothing", {{"team", "web"}}, {{"team", "web"}}, false, "", ""},
        /* Edges of the diff's shortcut for images whose tags match (tags_in_sync). */
        {"a key observed twice with the declared value needs nothing",
         {{"team", "web"}, {"team", "web"}},
         {{"team", "web"}},
         false,
         "",
         ""},
        {"a declared protect tag is compared as declared",
         {{REC_PROTECT_TAG, "yes"}},
         {{REC_PROTECT_TAG, "true"}},
         true,
         REC_PROTECT_TAG "=true",
         ""},
        {"an owner tag declared by hand gives way to ours",
         {{0}},
         {{REC_OWNER_TAG, "x"}},
         false,
         "",
         ""},
        {"a declared cloud key is not set", {{0}}, {{"acs:x", "1"}}, false, "", ""},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        fx_fini();
        fx_init();
        spec_image *d = declare(R1, "web", false);
        spec_tag tags[3];
        for (size_t k = 0; k < 3 && cases[c].want[k][0]; k++) {
            tags[k] = (spec_tag){(char *)cases[c].want[k][0], (char *)cases[c].want[k][1]};
            d->n_tags = k + 1;
        }
        d->tags = d->n_tags ? tags : NULL;
        d->protect = cases[c].protect;
        prov_image *o = observe(R1, "m-1", "web", PROV_IMG_AVAILABLE, false, "default");
        for (size_t k = 0; k < 6 && cases[c].have[k][0]; k++)
            add_tag(o, cases[c].have[k][0], cases[c].have[k][1]);
        build();
        char set[256], rm[256];
        deltas(set, sizeof(set), rm, sizeof(rm));
        cr_expect_str_eq(set, cases[c].set, "%s: set", cases[c].what);
        cr_expect_str_eq(rm, cases[c].rm, "%s: remove", cases[c].what);
        bool any = *cases[c].set || *cases[c].rm;
        cr_expect_eq(fx.plan->n_changes, any ? 1u : 0u, "%s", cases[c].what);
        if (any)
            cr_expect_eq(fx.plan->changes[0].kind, REC_CH_TAGS, "%s", cases[c].what);
        cr_expect_eq(count_action(REC_ACT_DELETE) + count_action(REC_ACT_CREATE), 0, "%s",
                     cases[c].what);
        for (size_t i = 0; i < fx.plan->n_steps; i++) /* no need to wait: far below 20 tags */
            cr_expect_eq(step_n(i)->n_depends, 0, "%s", cases[c].what);
    }
}

Test(plan, untag_goes_first_near_the_twenty_tag_limit)
{
    static char keys[19][8];
    spec_image *d = declare(R1, "web", false);
    spec_tag want[] = {{(char *)"fresh", (char *)"1"}};
    d->tags = want;
    d->n_tags = 1;
    prov_image *o = observe(R1, "m-1", "web", PROV_IMG_AVAILABLE, false, "default");
    for (int i = 0; i < 19; i++) { /* 19 user tags + the owner tag: the image is full */
        snprintf(keys[i], sizeof(keys[i]), "k%02d", i);
        add_tag(o, keys[i], "v");
    }
    build();
    cr_assert_eq(fx.plan->n_steps, 2);
    cr_expect_eq(step_n(0)->action, REC_ACT_UNTAG);
    cr_expect_eq(step_n(1)->action, REC_ACT_TAG);
    cr_expect(depends(step_n(1), step_n(0)->id), "21 tags for a moment otherwise");
}

Test(plan, protect_values_decide_replace_and_prune)
{
    static const struct {
        const char *value;
        bool protects;
    } cases[] = {{"true", true}, {"True", true},   {"TRUE", true},   {"yes", true},
                 {"", true},     {"false", false}, {"FALSE", false}, {"False", false}};
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        fx_fini();
        fx_init();
        spec_image *d = declare(R1, "web", false);
        d->instance_id = (char *)"ace-new";
        add_tag(observe(R1, "m-1", "web", PROV_IMG_AVAILABLE, false, "default"), REC_PROTECT_TAG,
                cases[c].value);
        add_tag(observe(R1, "m-2", "old", PROV_IMG_AVAILABLE, false, "default"), REC_PROTECT_TAG,
                cases[c].value);
        fx.opts.prune = true;
        build();
        cr_expect_eq(count_action(REC_ACT_DELETE), cases[c].protects ? 0u : 2u, "'%s'",
                     cases[c].value);
        cr_expect_eq(rec_plan_n_notes(fx.plan, REC_NOTE_REFUSED), cases[c].protects ? 1u : 0u,
                     "'%s'", cases[c].value);
    }
}

Test(plan, owner_migration_retags_in_place)
{
    static const char *const prev[] = {"team-old"};
    fx.opts.owner = "team-new";
    fx.opts.previous_owners = prev;
    fx.opts.n_previous_owners = 1;
    fx.opts.prune = true;
    spec_image *d = declare(R1, "web", false);
    d->instance_id = (char *)"ace-other"; /* migration never replaces, even when fields differ */
    declare(R1, "api", false);
    observe(R1, "m-1", "web", PROV_IMG_AVAILABLE, false, "team-old");
    observe(R1, "m-2", "api", PROV_IMG_AVAILABLE, false, "team-b");
    observe(R1, "m-3", "cache", PROV_IMG_AVAILABLE, false, "team-old");
    build();
    cr_assert_eq(fx.plan->n_steps, 2, "only the two retags");
    for (size_t i = 0; i < 2; i++) {
        cr_expect_eq(step_n(i)->action, REC_ACT_TAG);
        cr_expect_eq(step_n(i)->takeover, REC_TAKEOVER_MIGRATE);
        cr_expect_str_eq(tag_of(step_n(i)->after, REC_OWNER_TAG), "team-new");
    }
    cr_expect_eq(fx.plan->changes[0].kind, REC_CH_ADOPT);
    cr_assert_eq(rec_plan_n_notes(fx.plan, REC_NOTE_CONFLICT), 1, "team-b is never adopted");
    cr_expect_eq(note_of(REC_NOTE_CONFLICT, 0)->conflict, REC_CONFLICT_NOT_OWNED);
    cr_expect_str_eq(note_of(REC_NOTE_CONFLICT, 0)->image_id, "m-2");
}

Test(plan, adoption_matches_or_refuses)
{
    /* Matching: one TAG step with the owner and the declared tags, nothing else. */
    spec_image *d = declare(R1, "web", false);
    spec_tag tags[] = {{(char *)"team", (char *)"web"}};
    d->tags = tags;
    d->n_tags = 1;
    d->adopt = true;
    observe(R1, "m-1", "web", PROV_IMG_AVAILABLE, false, NULL);
    build();
    cr_assert_eq(fx.plan->n_steps, 1);
    cr_expect_eq(step_n(0)->action, REC_ACT_TAG);
    cr_expect_eq(step_n(0)->takeover, REC_TAKEOVER_ADOPT);
    char set[256], rm[256];
    deltas(set, sizeof(set), rm, sizeof(rm));
    cr_expect_str_eq(set, "team=web," REC_OWNER_TAG "=default");
    cr_expect_eq(rec_plan_n_notes(fx.plan, REC_NOTE_CONFLICT), 0);

    /* Different immutable fields: an adopt_mismatch conflict naming them, no step at all. */
    d->instance_id = (char *)"ace-other";
    d->description = (char *)"new text";
    build();
    cr_expect_eq(fx.plan->n_steps, 0);
    cr_assert_eq(rec_plan_n_notes(fx.plan, REC_NOTE_CONFLICT), 1);
    const rec_note *n = note_of(REC_NOTE_CONFLICT, 0);
    cr_expect_eq(n->conflict, REC_CONFLICT_ADOPT_MISMATCH);
    cr_expect_str_eq(rec_conflict_kind_name(n->conflict), "adopt_mismatch");
    cr_expect_not_null(strstr(n->text, "instance_id changed"), "%s", n->text);
    cr_expect_not_null(strstr(n->text, "description changed"), "%s", n->text);

    /* Another owner's image is never adopted. */
    d->instance_id = (char *)INST;
    d->description = NULL;
    rec_observed_clear(&fx.obs);
    cr_assert_eq(rec_observed_add_region(&fx.obs, R1, &(rec_region_obs *){NULL}), 0);
    observe(R1, "m-1", "web", PROV_IMG_AVAILABLE, false, "team-b");
    build();
    cr_expect_eq(fx.plan->n_steps, 0);
    cr_expect_eq(note_of(REC_NOTE_CONFLICT, 0)->conflict, REC_CONFLICT_NOT_OWNED);

    /* Without adopt: true an unowned image stays a conflict. */
    d->adopt = false;
    rec_observed_clear(&fx.obs);
    cr_assert_eq(rec_observed_add_region(&fx.obs, R1, &(rec_region_obs *){NULL}), 0);
    observe(R1, "m-1", "web", PROV_IMG_AVAILABLE, false, NULL);
    build();
    cr_expect_eq(fx.plan->n_steps, 0);
    cr_expect_eq(note_of(REC_NOTE_CONFLICT, 0)->conflict, REC_CONFLICT_NOT_OWNED);
}

Test(plan, tag_steps_batch_by_identical_tag_set_up_to_fifty)
{
    static char names[70][16], ids[70][16];
    spec_tag web[] = {{(char *)"team", (char *)"web"}};
    spec_tag db[] = {{(char *)"team", (char *)"db"}};
    for (unsigned i = 0; i < 70; i++) {
        snprintf(names[i], sizeof(names[i]), "img%02u", i);
        snprintf(ids[i], sizeof(ids[i]), "m-%02u", i);
        spec_image *d = declare(R1, names[i], false);
        d->tags = i < 55 ? web : db; /* 55 one way (2 calls), 15 the other (1 call) */
        d->n_tags = 1;
        add_tag(observe(R1, ids[i], names[i], PROV_IMG_AVAILABLE, false, "default"), "team", "old");
    }
    build();
    cr_expect_eq(count_action(REC_ACT_TAG), 70);
    cr_expect_eq(count_action(REC_ACT_UNTAG), 0);
    cr_expect_eq(fx.plan->estimate.api_calls[REC_ACT_TAG], 3);
    cr_expect_eq(fx.plan->estimate.n_tags, 70);
    char k0[REC_HASH_HEX + 1], k1[REC_HASH_HEX + 1], k60[REC_HASH_HEX + 1];
    rec_step_batch_key(step_n(0), k0);
    rec_step_batch_key(step_n(1), k1);
    rec_step_batch_key(step_n(60), k60);
    cr_expect_str_eq(k0, k1);
    cr_expect_str_neq(k0, k60);
}

Test(plan, account_shares_in_place_and_before_delete)
{
    spec_image *d = declare(R1, "web", false);
    char *want[] = {(char *)"1111", (char *)"2222"};
    d->share_to_accounts = want;
    d->n_share_to_accounts = 2;
    prov_image *o = observe(R1, "m-1", "web", PROV_IMG_AVAILABLE, false, "default");
    shared_to(o, (const char *const[]){"2222", "3333"}, 2);
    prov_image *old = observe(R1, "m-2", "old", PROV_IMG_AVAILABLE, false, "default");
    shared_to(old, (const char *const[]){"4444"}, 1);
    fx.opts.prune = true;
    build();
    cr_assert_eq(count_action(REC_ACT_ADD_ACCOUNTS), 1);
    cr_assert_eq(count_action(REC_ACT_REMOVE_ACCOUNTS), 2);
    cr_assert_eq(count_action(REC_ACT_DELETE), 1);
    const rec_step *del = NULL, *rm_old = NULL;
    for (size_t i = 0; i < fx.plan->n_steps; i++) {
        const rec_step *st = step_n(i);
        const char *a[REC_DELTA_MAX];
        size_t n = rec_step_accounts_delta(st, a, REC_DELTA_MAX);
        if (st->action == REC_ACT_DELETE)
            del = st;
        else if (st->action == REC_ACT_REMOVE_ACCOUNTS && strcmp(st->image_id, "m-2") == 0)
            rm_old = st;
        else if (st->action == REC_ACT_REMOVE_ACCOUNTS)
            cr_expect(n == 1 && strcmp(a[0], "3333") == 0);
        else if (st->action == REC_ACT_ADD_ACCOUNTS)
            cr_expect(n == 1 && strcmp(a[0], "1111") == 0);
    }
    cr_assert_not_null(del);
    cr_assert_not_null(rm_old);
    cr_expect(depends(del, rm_old->id), "the accounts are removed before the delete");
}

Test(plan, replace_of_an_account_shared_image_removes_the_accounts_first_then_adds_them)
{
    spec_image *d = declare(R1, "web", false);
    d->instance_id = (char *)"ace-new";
    char *keep[] = {(char *)"5555"};
    d->share_to_accounts = keep;
    d->n_share_to_accounts = 1;
    prov_image *o = observe(R1, "m-1", "web", PROV_IMG_AVAILABLE, true, "default");
    shared_to(o, (const char *const[]){"5555"}, 1);
    build();
    cr_assert_eq(fx.plan->n_changes, 1);
    cr_expect_eq(fx.plan->changes[0].kind, REC_CH_REPLACE);
    const rec_step *rm = NULL, *un = NULL, *del = NULL, *cr = NULL, *add = NULL;
    for (size_t i = 0; i < fx.plan->n_steps; i++) {
        const rec_step *st = step_n(i);
        if (st->action == REC_ACT_CREATE)
            cr = st;
        else if (st->action == REC_ACT_ADD_ACCOUNTS)
            add = st;
        else if (st->action == REC_ACT_REMOVE_ACCOUNTS)
            rm = st;
        else if (st->action == REC_ACT_UNSHARE)
            un = st;
        else if (st->action == REC_ACT_DELETE)
            del = st;
    }
    cr_assert(rm && un && del);
    cr_expect(depends(del, rm->id) && depends(del, un->id));
    /* The new image gets the entry's accounts once the create is done, on the created id. */
    cr_assert(cr && add);
    cr_expect(depends(add, cr->id));
    cr_expect_null(add->image_id);
    const char *a[REC_DELTA_MAX];
    cr_expect(rec_step_accounts_delta(add, a, REC_DELTA_MAX) == 1 && strcmp(a[0], "5555") == 0);
}

Test(plan, in_place_steps_round_trip_through_a_planfile)
{
    static const char *const prev[] = {"team-old"};
    fx.opts.previous_owners = prev;
    fx.opts.n_previous_owners = 1;
    spec_image *d = declare(R1, "web", false);
    spec_tag tags[] = {{(char *)"team", (char *)"web"}};
    d->tags = tags;
    d->n_tags = 1;
    add_tag(observe(R1, "m-1", "web", PROV_IMG_AVAILABLE, false, "default"), "cost", "x");
    declare(R1, "api", false)->adopt = true;
    observe(R1, "m-2", "api", PROV_IMG_AVAILABLE, false, NULL);
    observe(R1, "m-3", "cache", PROV_IMG_AVAILABLE, false, "team-old");
    build();
    cr_assert_eq(fx.plan->n_steps, 4);
    char path[] = "/tmp/imgrecon-tags-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    cr_assert_eq(rec_plan_save(fx.plan, NULL, path), 0);
    rec_plan *back = NULL;
    cr_assert_eq(rec_plan_load(path, &back, NULL, NULL), 0);
    unlink(path);
    cr_assert_eq(back->n_steps, fx.plan->n_steps);
    for (size_t i = 0; i < back->n_steps; i++) {
        cr_expect_eq(back->steps[i].action, fx.plan->steps[i].action);
        cr_expect_eq(back->steps[i].takeover, fx.plan->steps[i].takeover);
        char a[REC_HASH_HEX + 1], b[REC_HASH_HEX + 1];
        rec_step_batch_key(&back->steps[i], a);
        rec_step_batch_key(&fx.plan->steps[i], b);
        cr_expect_str_eq(a, b, "step %zu delta", i + 1);
    }
    rec_plan_free(back);
    char *text = render(fx.plan, 0);
    cr_expect_not_null(strstr(text, "+ team = \"web\" (was absent)"), "%s", text);
    cr_expect_not_null(strstr(text, "- cost (was \"x\")"), "%s", text);
    cr_expect_null(strstr(text, "cannot update tags"), "%s", text);
    free(text);
}

/* A saved step's after is what the executor sends (a create's parameters, an account or tag
 * step's delta): rec_plan_check_saved refuses a saved plan whose after differs from the fresh
 * plan's in any field, naming the step and the field, whether the manifest changed (the last
 * account of share_to_accounts replaced: the step's spec_hash and token stay the same) or the plan
 * file was edited (an account, a create's instance or snapshot, a tag); an unchanged copy passes.
 */
Test(plan, saved_after_must_equal_the_fresh_after)
{
    static const struct {
        rec_action action;
        const char *field; /* in prov_image; NULL: add a tag team=x; "accounts": add 7777 */
        const char *value;
        const char *says;
    } edits[] = {
        {REC_ACT_ADD_ACCOUNTS, "accounts", NULL,
         "share_accounts changed from [3333, 4444, 7777, 9999] to [3333, 4444, 9999]"},
        {REC_ACT_CREATE, "instance_id", "ace-other", "instance_id changed from ace-other to " INST},
        {REC_ACT_CREATE, "system_snapshot_id", "s-other",
         "system_snapshot_id changed from s-other"},
        {REC_ACT_CREATE, "description", "edited", "description changed from edited to (none)"},
        {REC_ACT_CREATE, NULL, NULL, "tags changed from"},
    };
    char *accts[] = {(char *)"3333", (char *)"9999", (char *)"4444"};
    spec_image *web = declare(R1, "web", false);
    web->share_to_accounts = accts;
    web->n_share_to_accounts = 3;
    prov_image *o = observe(R1, "m-1", "web", PROV_IMG_AVAILABLE, false, "default");
    shared_to(o, (const char *const[]){"3333", "9999"}, 2);
    declare(R1, "api", false);
    build();
    cr_assert_eq(count_action(REC_ACT_ADD_ACCOUNTS), 1);
    cr_assert_eq(count_action(REC_ACT_CREATE), 1);
    rec_plan *saved = NULL;
    char *err = NULL;
    cr_assert_eq(rec_plan_copy(fx.plan, &saved), 0);
    cr_assert_eq(rec_plan_check_saved(saved, fx.plan, &fx.obs, NULL, &err), 0, "%s",
                 err ? err : "");
    for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
        rec_plan *edited = NULL;
        cr_assert_eq(rec_plan_copy(fx.plan, &edited), 0);
        prov_image *a = NULL;
        for (size_t k = 0; k < edited->n_steps && a == NULL; k++)
            if (edited->steps[k].action == edits[i].action)
                a = edited->steps[k].after;
        cr_assert_not_null(a, "row %zu", i);
        if (edits[i].field == NULL) {
            add_tag(a, "team", "x");
        } else if (strcmp(edits[i].field, "accounts") == 0) {
            a->share_accounts =
                realloc(a->share_accounts, (a->n_share_accounts + 1) * sizeof(char *));
            a->share_accounts[a->n_share_accounts++] = strdup("7777");
        } else {
            char **f = strcmp(edits[i].field, "instance_id") == 0   ? &a->instance_id
                       : strcmp(edits[i].field, "description") == 0 ? &a->description
                                                                    : &a->system_snapshot_id;
            free(*f);
            *f = strdup(edits[i].value);
        }
        cr_expect_eq(rec_plan_check_saved(edited, fx.plan, &fx.obs, NULL, &err), -ESTALE,
                     "row %zu: an edited after was accepted", i);
        cr_expect(err != NULL && strstr(err, edits[i].says) != NULL, "row %zu: %s", i,
                  err ? err : "(none)");
        cr_expect(err != NULL && strstr(err, rec_action_name(edits[i].action)) != NULL,
                  "row %zu: the step is named: %s", i, err ? err : "(none)");
        free(err);
        err = NULL;
        rec_plan_free(edited);
    }
    /* The manifest now names 5555 instead of 4444: same step, same token, other account. */
    accts[2] = (char *)"5555";
    build();
    int rc = rec_plan_check_saved(saved, fx.plan, &fx.obs, NULL, &err);
    cr_expect_eq(rc, -ESTALE, "a saved plan adding 4444 was accepted for a manifest naming 5555");
    cr_expect(err != NULL && strstr(err, "share_accounts changed from [3333, 4444, 9999] to "
                                         "[3333, 5555, 9999]") != NULL,
              "%s", err ? err : "(none)");
    cr_expect(err != NULL && strstr(err, "add_accounts") != NULL, "%s", err ? err : "(none)");
    free(err);
    rec_plan_free(saved);
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
    "delete. API calls: CreateCustomImage 2, ModifyImageShareStatus 3, DeleteCustomImages 1, "
    "DeleteImage 1. Estimated time: 30s at 10/60s per action, assuming 30s per image build "
    "(default).\n";

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
    cr_assert_str_eq(json_string_value(json_object_get(doc, "format_version")), "1.2");
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

/* apply and the daemon build their plans without fingerprints (rec_options.skip_fingerprints):
 * the fingerprints are empty and the rest of the document is the same, step for step. */
Test(plan, skip_fingerprints_changes_nothing_else)
{
    mixed_world();
    build();
    char *with = rec_render_json(fx.plan, false);
    cr_assert_eq(strlen(fx.plan->fp.desired), 64);
    cr_assert_eq(strlen(fx.plan->fp.observed), 64);
    fx.opts.skip_fingerprints = true;
    build();
    cr_assert_str_eq(fx.plan->fp.desired, "");
    cr_assert_str_eq(fx.plan->fp.observed, "");
    char *without = rec_render_json(fx.plan, false);
    json_t *a = json_loads(with, 0, NULL), *b = json_loads(without, 0, NULL);
    free(with);
    free(without);
    cr_assert(a != NULL && b != NULL);
    cr_assert(!json_equal(a, b));
    cr_assert_eq(json_object_del(a, "fingerprint"), 0);
    cr_assert_eq(json_object_del(b, "fingerprint"), 0);
    cr_assert(json_equal(a, b), "only the fingerprints may differ");
    json_decref(a);
    json_decref(b);
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

/* test_file_write, under the name the saved-plan tests use. */
static void write_text(const char *path, const char *text)
{
    test_file_write(path, text);
}

/* The file's text (caller frees); fails the test when it is missing or empty. */
static char *slurp(const char *path)
{
    char *text = test_file_read_len(path, NULL);
    cr_assert(text != NULL && text[0] != '\0', "%s is missing or empty", path);
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

/* apply FILE names any path: a FIFO is refused at once (opened without blocking; before, apply
 * waited for a writer forever with nothing said), so are a directory and a file over 16 MiB,
 * each as "path: message". The timeout fails the test on a hang. */
Test(plan, planfile_that_is_not_a_regular_file_or_too_large_is_refused, .timeout = 20)
{
    char dir[] = "/tmp/imgrecon-planfifo-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char fifo[64], big[64];
    snprintf(fifo, sizeof(fifo), "%s/p.plan", dir);
    snprintf(big, sizeof(big), "%s/big.plan", dir);
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    FILE *f = fopen(big, "w");
    cr_assert_not_null(f);
    cr_assert_eq(fseek(f, (16L << 20), SEEK_SET), 0); /* one byte past 16 MiB, sparse */
    cr_assert_eq(fputc('{', f), '{');
    cr_assert_eq(fclose(f), 0);
    static const struct {
        const char *path_of; /* "fifo", "dir", "big" */
        int rc;
        const char *says;
    } rows[] = {
        {"fifo", -EINVAL, ": not a regular file"},
        {"dir", -EINVAL, ": not a regular file"},
        {"big", -EFBIG, ": larger than 16777216 bytes"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const char *path = strcmp(rows[i].path_of, "fifo") == 0  ? fifo
                           : strcmp(rows[i].path_of, "dir") == 0 ? dir
                                                                 : big;
        rec_plan *loaded = NULL;
        rec_plan_policy pol;
        char *err = NULL;
        cr_expect_eq(rec_plan_load(path, &loaded, &pol, &err), rows[i].rc, "row %zu", i);
        char want[128];
        snprintf(want, sizeof(want), "%s%s", path, rows[i].says);
        cr_expect(err != NULL && strncmp(err, want, strlen(want)) == 0, "row %zu: %s", i,
                  err ? err : "(none)");
        free(err);
    }
    cr_assert_eq(unlink(fifo), 0);
    cr_assert_eq(unlink(big), 0);
    cr_assert_eq(rmdir(dir), 0);
}

/* The recorded policy survives a save and a load, and apply FILE refuses settings that differ
 * from it, naming the field: allow_empty as a boolean or a list of regions (compared as a set,
 * also when given as --allow-empty), regions (a list or all), account_id and previous_owners
 * (compared as a set). */
Test(plan, saved_policy_matrix)
{
    static const struct {
        const char *made;  /* config when the plan was made */
        const char *now;   /* config given to apply FILE */
        const char *flag;  /* --allow-empty given to apply FILE; NULL: none */
        const char *field; /* expected refusal; NULL: accepted */
    } rows[] = {
        {"", "", NULL, NULL},
        {"prune: true\n", "", NULL, "prune: the saved plan was made with true"},
        {"allow_empty: [cn-hangzhou]\n", "allow_empty: true\n", NULL,
         "allow_empty: the saved plan was made with [cn-hangzhou], the settings given now say "
         "true"},
        {"allow_empty: [cn-hangzhou, cn-beijing]\n", "allow_empty: [cn-beijing, cn-hangzhou]\n",
         NULL, NULL},
        {"allow_empty: [cn-hangzhou]\n", "allow_empty: [cn-beijing]\n", NULL, "allow_empty:"},
        {"allow_empty: [cn-hangzhou]\n", "allow_empty: [cn-hangzhou]\n", "cn-hangzhou", NULL},
        {"allow_empty: [cn-hangzhou]\n", "allow_empty: [cn-hangzhou]\n", "true",
         "allow_empty: the saved plan was made with [cn-hangzhou], the settings given now say "
         "true"},
        {"", "", "cn-hangzhou",
         "allow_empty: the saved plan was made with false, the settings given now say "
         "[cn-hangzhou]"},
        {"allow_empty: true\n", "", "true", NULL},
        {"regions: [cn-beijing]\n", "", NULL,
         "regions: the saved plan was made with [cn-beijing], the settings given now say []"},
        {"regions: all\n", "regions: [cn-beijing]\n", NULL,
         "regions: the saved plan was made "
         "with all"},
        {"regions: all\n", "regions: all\n", NULL, NULL},
        {"account_id: '1234567890'\n", "", NULL,
         "account_id: the saved plan was made with '1234567890', the settings given now say "
         "(none)"},
        {"account_id: '1234567890'\n", "account_id: '1234567891'\n", NULL, "account_id:"},
        {"account_id: '1234567890'\nregions: [cn-beijing]\n",
         "account_id: '1234567890'\nregions: [cn-beijing]\n", NULL, NULL},
        {"previous_owners: [team-old]\n", "", NULL,
         "previous_owners: the saved plan was made with [team-old], the settings given now say "
         "[]"},
        {"", "previous_owners: [team-old]\n", NULL,
         "previous_owners: the saved plan was made with [], the settings given now say "
         "[team-old]"},
        {"previous_owners: [team-old, team-b]\n", "previous_owners: [team-b, team-old]\n", NULL,
         NULL},
        {"previous_owners: [team-old]\n", "previous_owners: [team-b]\n", NULL, "previous_owners:"},
    };
    mixed_world();
    build();
    char cfg_path[128];
    snprintf(cfg_path, sizeof(cfg_path), "/tmp/imgrecon-policy-%d.yaml", (int)getpid());
    snprintf(plan_path, sizeof(plan_path), "/tmp/imgrecon-plan-%d.json", (int)getpid());
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        spec_config made, now;
        spec_diags diags;
        spec_diags_init(&diags);
        cr_assert_eq(spec_config_init(&made), 0);
        cr_assert_eq(spec_config_init(&now), 0);
        char text[256];
        snprintf(text, sizeof(text), "owner: team-a\n%s", rows[i].made);
        write_text(cfg_path, text);
        cr_assert_eq(spec_config_load(&made, cfg_path, &diags), 0, "row %zu", i);
        snprintf(text, sizeof(text), "owner: team-a\n%s", rows[i].now);
        write_text(cfg_path, text);
        cr_assert_eq(spec_config_load(&now, cfg_path, &diags), 0, "row %zu", i);
        if (rows[i].flag != NULL)
            cr_assert_eq(spec_config_set_allow_empty(&now, rows[i].flag), 0);
        rec_plan_policy pol, loaded_pol;
        cr_assert_eq(rec_plan_policy_init(&pol, &made, NULL, 0, "/tmp", NULL, "1234567890"), 0);
        cr_assert_eq(rec_plan_save(fx.plan, &pol, plan_path), 0);
        rec_plan *loaded = NULL;
        char *err = NULL;
        cr_assert_eq(rec_plan_load(plan_path, &loaded, &loaded_pol, &err), 0, "row %zu: %s", i,
                     err ? err : "");
        /* The loaded policy equals the one saved, and the settings it was made with pass. */
        cr_expect(loaded_pol.caller_account_id != NULL &&
                      strcmp(loaded_pol.caller_account_id, "1234567890") == 0,
                  "row %zu: the account the plan was made for is recorded", i);
        cr_expect_eq(rec_plan_policy_check(&loaded_pol, &made, NULL), 0, "row %zu", i);
        int rc = rec_plan_policy_check(&loaded_pol, &now, &err);
        if (rows[i].field == NULL) {
            cr_expect_eq(rc, 0, "row %zu: %s", i, rc < 0 && err ? err : "");
        } else {
            cr_expect_eq(rc, -ESTALE, "row %zu", i);
            cr_expect(rc == -ESTALE && strstr(err, rows[i].field) != NULL, "row %zu: %s", i,
                      rc == -ESTALE ? err : "(accepted)");
        }
        if (rc < 0)
            free(err);
        rec_plan_free(loaded);
        rec_plan_policy_clear(&loaded_pol);
        rec_plan_policy_clear(&pol);
        spec_config_clear(&made);
        spec_config_clear(&now);
        spec_diags_clear(&diags);
    }
    cr_assert_eq(unlink(cfg_path), 0);
    cr_assert_eq(unlink(plan_path), 0);
}

/* A recorded policy with a malformed allow_empty, regions, previous_owners or caller_account_id,
 * or without regions, previous_owners or caller_account_id (an older imgrecon), is refused with
 * a message naming it. */
Test(plan, saved_policy_malformed_is_refused)
{
    static const struct {
        const char *from, *to, *why;
    } edits[] = {
        {"\"regions\": []", "\"regions\": \"some\"", "regions must be"},
        {"\"regions\": []", "\"regions\": [\"Not A Region\"]", "regions[0] is not a region id"},
        {"\"regions\": [],", "", "records no regions"},
        {"\"allow_empty\": false", "\"allow_empty\": [7]", "allow_empty[0] is not a region id"},
        {"\"allow_empty\": false", "\"allow_empty\": \"yes\"", "allow_empty must be"},
        {"\"previous_owners\": []", "\"previous_owners\": \"team-old\"",
         "previous_owners must be a list"},
        {"\"previous_owners\": []", "\"previous_owners\": [\"\"]",
         "previous_owners[0] is not an owner name"},
        {"\"previous_owners\": [],", "", "records no previous_owners"},
        {"\"caller_account_id\": null,", "", "records no caller_account_id"},
        {"\"caller_account_id\": null", "\"caller_account_id\": \"12ab\"",
         "caller_account_id is not an account id"},
    };
    mixed_world();
    build();
    spec_config cfg;
    cr_assert_eq(spec_config_init(&cfg), 0);
    rec_plan_policy pol;
    cr_assert_eq(rec_plan_policy_init(&pol, &cfg, NULL, 0, "/tmp", NULL, NULL), 0);
    snprintf(plan_path, sizeof(plan_path), "/tmp/imgrecon-plan-%d.json", (int)getpid());
    for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
        cr_assert_eq(rec_plan_save(fx.plan, &pol, plan_path), 0);
        char *text = slurp(plan_path);
        char *at = strstr(text, edits[i].from);
        cr_assert_not_null(at, "row %zu: %s not in the saved plan", i, edits[i].from);
        char *edited = NULL;
        cr_assert_gt(asprintf(&edited, "%.*s%s%s", (int)(at - text), text, edits[i].to,
                              at + strlen(edits[i].from)),
                     0);
        write_text(plan_path, edited);
        free(edited);
        free(text);
        rec_plan *loaded = NULL;
        rec_plan_policy lp;
        char *err = NULL;
        cr_expect_eq(rec_plan_load(plan_path, &loaded, &lp, &err), -EINVAL, "row %zu", i);
        cr_expect(err != NULL && strstr(err, edits[i].why) != NULL, "row %zu: %s", i,
                  err ? err : "(none)");
        free(err);
    }
    rec_plan_policy_clear(&pol);
    spec_config_clear(&cfg);
    cr_assert_eq(unlink(plan_path), 0);
}

/* ---- ownership (reconcile/README.md "Semantics", Ownership) ---- */

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

/* ---- batched deletes in the estimate ---- */

/* A hand-made plan: n_a deletes in cn-a, n_b in cn-b, n_c in cn-c, in that order, then one
 * create in cn-a that depends on the last delete of cn-a. */
static rec_plan *delete_plan(size_t n_a, size_t n_b, size_t n_c)
{
    rec_plan *p = calloc(1, sizeof(*p));
    cr_assert_not_null(p);
    size_t n = n_a + n_b + n_c + 1;
    p->steps = calloc(n, sizeof(*p->steps));
    cr_assert_not_null(p->steps);
    p->n_steps = n;
    for (size_t i = 0; i < n; i++) {
        rec_step *st = &p->steps[i];
        st->id = (unsigned)i + 1;
        st->action = i + 1 == n ? REC_ACT_CREATE : REC_ACT_DELETE;
        st->region = strdup(i < n_a || i + 1 == n ? "cn-a" : i < n_a + n_b ? "cn-b" : "cn-c");
        char name[32];
        snprintf(name, sizeof(name), "img-%zu", i);
        st->name = strdup(name);
        cr_assert(st->region && st->name);
    }
    rec_step *c = &p->steps[n - 1];
    c->depends_on = calloc(1, sizeof(*c->depends_on));
    cr_assert_not_null(c->depends_on);
    c->depends_on[0] = (unsigned)n_a; /* the last delete of cn-a */
    c->n_depends = 1;
    return p;
}

Test(plan, estimate_batches_deletes_per_region_up_to_15)
{
    rec_options o;
    rec_options_init(&o);
    o.create_wait_ms = 30000;
    /* cn-a: 15 + 5 in two batches; cn-b: one delete, a single call; cn-c: 15 in a batch and the
     * 16th alone. ceil(20/15) + ceil(1/15) + ceil(16/15) = 5 calls. */
    rec_plan *p = delete_plan(20, 1, 16);
    rec_plan_estimate(p, &o);
    cr_expect_eq(p->estimate.delete_batch_calls, 3);
    cr_expect_eq(p->estimate.api_calls[REC_ACT_DELETE], 2);
    cr_expect_eq(p->estimate.api_calls[REC_ACT_CREATE], 1);
    /* Five delete calls fit one window of 10/60s each: the create starts at once and the plan
     * ends when its image is built. */
    cr_expect_eq(p->estimate.estimated_ms, 30000);
    char *text = render(p, 0);
    cr_expect_not_null(strstr(text, "API calls: CreateCustomImage 1, DeleteCustomImage 2, "
                                    "DeleteCustomImages 3."),
                       "%s", text);
    free(text);
    rec_plan_free(p);

    /* 165 deletes in one region: 11 batches. At 10/60s the 11th waits a window, and the create
     * behind the last delete with it: 60 s + 30 s. One call per image would need 16 windows. */
    p = delete_plan(165, 0, 0);
    rec_plan_estimate(p, &o);
    cr_expect_eq(p->estimate.delete_batch_calls, 11);
    cr_expect_eq(p->estimate.api_calls[REC_ACT_DELETE], 0);
    cr_expect_eq(p->estimate.estimated_ms, 90000);
    rec_plan_free(p);
}

Test(plan, estimate_says_whether_the_build_time_was_learned)
{
    mixed_world();
    fx.opts.quota_default = 5;
    build();
    cr_expect_eq(fx.plan->estimate.create_wait_samples, 0);
    char *text = render(fx.plan, 0);
    cr_expect_not_null(strstr(text, "assuming 30s per image build (default)."), "%s", text);
    free(text);
    fx.opts.create_wait_ms = 95000;
    fx.opts.create_wait_samples = 3;
    rec_plan_estimate(fx.plan, &fx.opts);
    cr_expect_eq(fx.plan->estimate.create_wait_ms, 95000);
    cr_expect_eq(fx.plan->estimate.create_wait_samples, 3);
    text = render(fx.plan, 0);
    cr_expect_not_null(strstr(text, "assuming 1m 35s per image build (learned from 3 recent "
                                    "creates)."),
                       "%s", text);
    free(text);
}
