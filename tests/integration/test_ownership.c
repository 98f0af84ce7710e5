/* Ownership end to end (reconcile/README.md "Semantics", Ownership; issue 11 items 1 and 7):
 * manifests that declare names taken by images that are not ours (a console image without the owner
 * tag, an image of team-b) against the real emulator. plan shows the conflicts (text and JSON),
 * apply does the independent steps and exits 1, a daemon cycle reports the item failing, and
 * the emulator's journal shows no mutating call naming those images. */
#include <uv.h>

#include "apply_support.h"
#include "prov_client.h"
#include "prov_cred.h"
#include "rec_exec.h"
#include "rec_plan.h"

#define SRV0 "ace0706b2ac4454d984295a94213ab00"
#define ID_HAND "m-bp1handmade0000001"
#define ID_TEAMB "m-bp1teamb000000001"
#define ID_OURS "m-bp1ours0000000001"

static env E;

static void setup(void)
{
    env_init(&E);
}

static void teardown(void)
{
    env_fini(&E);
}

TestSuite(ownership, .init = setup, .fini = teardown, .timeout = 300);

#define IMG(name, extra)                                                                           \
    "  - name: " name "\n    instance_id: " SRV0 "\n    system_snapshot_id: s-sys-00\n" extra

#define FIX(id, name, status, shared, tags)                                                        \
    "      - image_id: " id "\n        name: " name "\n        instance_id: " SRV0                 \
    "\n        system_snapshot_id: s-sys-00\n        status: \"" status                            \
    "\"\n        in_share: " shared "\n        tags: " tags "\n"

/* hand-made (console, no owner tag, shared), team-b's image (failed), and one of ours. The
 * manifest wants other descriptions and other share states for both foreign names (a replace
 * and a toggle under the old rules) and a share of ours. */
static void scenario(void)
{
    write_fixture(&E, 2,
                  FIX(ID_HAND, "hand-made", "1", "true", "{team: ops}")
                      FIX(ID_TEAMB, "theirs", "3", "false", "{imgrecon/owner: team-b}")
                          FIX(ID_OURS, "web", "1", "false", "{imgrecon/owner: team-a}"),
                  NULL);
    start_emu(&E, "300ms", NULL);
    write_file(E.config, "owner: team-a\nprune: true\nmetrics_listen: null\n");
    write_file(E.manifest, "region: cn-hangzhou\ncustom_images:\n" IMG(
                               "hand-made", "    description: another one\n    share_to_ecs: "
                                            "false\n") IMG("theirs", "    share_to_ecs: true\n")
                               IMG("web", "    share_to_ecs: true\n"));
}

/* No call but List/Describe names a non-owned image id. */
static void expect_untouched(const char *what)
{
    json_t *j = journal_lines(&E);
    size_t mutating = 0;
    for (size_t i = 0; i < json_array_size(j); i++) {
        json_t *line = json_array_get(j, i);
        const char *a = jstr(line, "action");
        if (strncmp(a, "List", 4) == 0 || strncmp(a, "Describe", 8) == 0)
            continue;
        mutating++;
        char *text = json_dumps(line, JSON_COMPACT);
        cr_assert_not_null(text);
        cr_expect_null(strstr(text, ID_HAND), "%s: %s", what, text);
        cr_expect_null(strstr(text, ID_TEAMB), "%s: %s", what, text);
        free(text);
    }
    json_decref(j);
    json_t *imgs = state_images(&E);
    json_t *hand = find_image(imgs, "hand-made"), *theirs = find_image(imgs, "theirs");
    cr_assert_not_null(hand, "%s: hand-made still there", what);
    cr_assert_not_null(theirs, "%s: team-b's image still there", what);
    cr_expect_str_eq(jstr(hand, "image_id"), ID_HAND);
    cr_expect(image_shared(hand), "%s: hand-made still shared", what);
    cr_expect_str_eq(jstr(theirs, "image_id"), ID_TEAMB);
    json_decref(imgs);
    (void)mutating;
}

Test(ownership, plan_shows_conflicts_and_apply_exits_1_without_touching_them)
{
    scenario();
    run_result r = RUN(&E, "plan", "-f", E.manifest);
    cr_assert_eq(r.status, 0, "plan: exit %d\n%s", r.status, r.out);
    cr_expect(strstr(r.out, "Conflicts (nothing is done):") != NULL, "%s", r.out);
    cr_expect(strstr(r.out, "(" ID_HAND "): declared, but the image named 'hand-made' has no "
                            "imgrecon/owner tag") != NULL,
              "%s", r.out);
    cr_expect(strstr(r.out, "(" ID_TEAMB "): declared, but the image named 'theirs' is owned by "
                            "'team-b' (not 'team-a')") != NULL,
              "%s", r.out);
    run_result_free(&r);

    r = RUN(&E, "plan", "-f", E.manifest, "--json");
    cr_assert_eq(r.status, 0, "plan --json: exit %d\n%s", r.status, r.out);
    json_t *doc = json_loads(r.out, 0, NULL);
    cr_assert_not_null(doc, "%s", r.out);
    cr_expect_str_eq(jstr(doc, "format_version"), "1.2");
    json_t *conf = json_object_get(doc, "conflicts");
    cr_assert_eq(json_array_size(conf), 2, "%s", r.out);
    json_t *c0 = json_array_get(conf, 0), *c1 = json_array_get(conf, 1);
    cr_expect_str_eq(jstr(c0, "image_id"), ID_HAND);
    cr_expect(json_is_null(json_object_get(c0, "owner")));
    cr_expect_str_eq(jstr(c0, "conflict"), "not_owned");
    cr_expect_str_eq(jstr(c0, "region"), "cn-hangzhou");
    cr_expect_str_eq(jstr(c0, "address"), "swas.cn-hangzhou.custom_image.hand-made");
    cr_expect_str_eq(jstr(c1, "image_id"), ID_TEAMB);
    cr_expect_str_eq(jstr(c1, "owner"), "team-b");
    json_t *steps = json_object_get(doc, "steps");
    cr_expect_eq(json_array_size(steps), 1, "only the share of ours:\n%s", r.out);
    cr_expect_str_eq(jstr(json_array_get(steps, 0), "image_id"), ID_OURS);
    json_decref(doc);
    run_result_free(&r);

    r = RUN(&E, "apply", "-f", E.manifest, "--auto-approve");
    cr_expect_eq(r.status, 1, "apply with conflicts: exit %d\n%s", r.status, r.out);
    cr_expect(strstr(r.out, "2 conflicts") != NULL, "%s", r.out);
    run_result_free(&r);
    json_t *imgs = state_images(&E);
    cr_expect(image_shared(find_image(imgs, "web")), "the independent share was done");
    json_decref(imgs);
    expect_untouched("apply");
    assert_journal_rules(&E);
}

Test(ownership, daemon_cycle_reports_the_conflicting_items_failing)
{
    scenario();
    run_result r = RUN(&E, "run", "--once", "-f", E.manifest);
    cr_expect_eq(r.status, 1, "run --once with conflicts: exit %d\n%s", r.status, r.out);
    cr_expect(strstr(r.out, "conflict: not touched") != NULL, "one log line per conflict:\n%s",
              r.out);
    run_result_free(&r);
    char path[256];
    snprintf(path, sizeof(path), "%s/status.json", E.state);
    char *text = read_file(path);
    cr_assert_not_null(text);
    json_t *st = json_loads(text, 0, NULL);
    cr_assert_not_null(st, "%s", text);
    cr_expect_str_eq(jstr(st, "result"), "failed", "%s", text);
    cr_expect_eq(json_integer_value(json_object_get(st, "conflicts")), 2, "%s", text);
    json_t *fails = json_object_get(st, "failures");
    size_t hits = 0;
    for (size_t i = 0; i < json_array_size(fails); i++) {
        const char *a = jstr(json_array_get(fails, i), "address");
        hits += strcmp(a, "swas.cn-hangzhou.custom_image.hand-made") == 0 ||
                strcmp(a, "swas.cn-hangzhou.custom_image.theirs") == 0;
    }
    cr_expect_eq(hits, 2, "both items failing:\n%s", text);
    json_decref(st);
    free(text);
    expect_untouched("daemon");
}

/* ---- the executor's last-line check ---- */

static void exec_rate(void *ud, prov_product product, const char *action, unsigned *ret_calls,
                      uint64_t *ret_window_ms)
{
    (void)ud;
    (void)product;
    (void)action;
    *ret_calls = 10;
    *ret_window_ms = 1000;
}

typedef struct exec_outcome {
    bool done;
    unsigned n_done, n_failed;
    char *error[2];
} exec_outcome;

static void on_exec_done(const rec_exec_result *res, void *ud)
{
    exec_outcome *o = ud;
    o->done = true;
    o->n_done = res->n_done;
    o->n_failed = res->n_failed;
    for (size_t i = 0; i < 2; i++)
        o->error[i] = res->errors[i] ? strdup(res->errors[i]) : NULL;
}

/* A plan step of kind action on image_id (all strings owned by the step). */
static void make_step(rec_step *st, unsigned id, rec_action action, const char *name,
                      const char *image_id)
{
    memset(st, 0, sizeof(*st));
    st->id = id;
    st->action = action;
    st->region = strdup("cn-hangzhou");
    st->name = strdup(name);
    st->image_id = strdup(image_id);
    st->reason = strdup("hand-made plan");
    char addr[128];
    snprintf(addr, sizeof(addr), "swas.cn-hangzhou.custom_image.%s", name);
    st->address = strdup(addr);
    memset(st->spec_hash, 'a', REC_HASH_HEX);
    rec_step_set_generation(st, "team-a", 0);
}

/* An observed image (strings owned by the list); owner NULL: no owner tag. */
static void add_observed(rec_region_obs *r, const char *id, const char *name, const char *owner)
{
    r->images.v = realloc(r->images.v, (r->images.n + 1) * sizeof(prov_image));
    cr_assert_not_null(r->images.v);
    prov_image *img = &r->images.v[r->images.n++];
    memset(img, 0, sizeof(*img));
    img->image_id = strdup(id);
    img->name = strdup(name);
    img->region_id = strdup("cn-hangzhou");
    img->status = PROV_IMG_AVAILABLE;
    img->in_share = true;
    if (owner) {
        img->tags = calloc(1, sizeof(*img->tags));
        cr_assert_not_null(img->tags);
        img->tags[0].key = strdup(REC_OWNER_TAG);
        img->tags[0].value = strdup(owner);
        img->n_tags = 1;
    }
}

/* One step of a hand-made plan and one image the executor observed (owner NULL: no owner tag). */
typedef struct step_row {
    rec_action action;
    const char *name, *image_id;
} step_row;

typedef struct seen_row {
    const char *image_id, *name, *owner;
} seen_row;

#define N_ROWS(a) (sizeof(a) / sizeof((a)[0]))

/* Runs a plan of team-a made of steps (ids from 1) through the executor, with seen as what was
 * observed in cn-hangzhou, against the emulator on its own loop and client, and waits (bounded,
 * 20 s) until it reports; out gets the counts and the first two errors (exec_outcome_clear frees
 * them). Both executor tests drive it this way. */
static void run_executor(const step_row *steps, size_t n_steps, const seen_row *seen, size_t n_seen,
                         exec_outcome *out)
{
    rec_plan *plan = calloc(1, sizeof(*plan));
    cr_assert_not_null(plan);
    plan->owner = strdup("team-a");
    plan->steps = calloc(n_steps, sizeof(rec_step));
    plan->n_steps = n_steps;
    for (size_t i = 0; i < n_steps; i++)
        make_step(&plan->steps[i], (unsigned)i + 1, steps[i].action, steps[i].name,
                  steps[i].image_id);
    rec_observed obs = {0};
    rec_region_obs *r = NULL;
    cr_assert_eq(rec_observed_add_region(&obs, "cn-hangzhou", &r), 0);
    for (size_t i = 0; i < n_seen; i++)
        add_observed(r, seen[i].image_id, seen[i].name, seen[i].owner);

    uv_loop_t loop;
    cr_assert_eq(uv_loop_init(&loop), 0);
    prov_credential cred = {.access_key_id = (char *)KEY_ID,
                            .access_key_secret = (char *)KEY_SECRET};
    prov_client_opts co = {.endpoint = E.emu.base_url,
                           .cred = &cred,
                           .rate_for = exec_rate,
                           .timeout_ms = 5000,
                           .connect_timeout_ms = 2000};
    prov_client *client = NULL;
    cr_assert_eq(prov_client_new(&loop, &co, &client), 0);
    rec_exec_opts xo = {.client = client, .observed = &obs, .owner = "team-a"};
    cr_assert_eq(rec_exec_start(&loop, plan, &xo, on_exec_done, out, NULL), 0);
    int64_t deadline = mono_ms_now() + 20000;
    while (!out->done && mono_ms_now() < deadline)
        uv_run(&loop, UV_RUN_ONCE);
    cr_assert(out->done, "the executor finished in time");
    prov_client_close(client);
    (void)uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0);
    rec_plan_free(plan);
    rec_observed_clear(&obs);
}

/* The one step on the console image failed for ownership, n_done others went through (why: the
 * message for n_done). */
static void expect_one_refused(const exec_outcome *out, unsigned n_done, const char *why)
{
    cr_expect_eq(out->n_failed, 1);
    cr_expect_eq(out->n_done, n_done, "%s", why);
    cr_assert_not_null(out->error[0]);
    cr_expect_not_null(strstr(out->error[0], "not observed carrying this owner's"), "%s",
                       out->error[0]);
}

/* Frees the errors run_executor copied. */
static void exec_outcome_clear(exec_outcome *out)
{
    for (size_t i = 0; i < 2; i++)
        free(out->error[i]);
}

/* Whatever plan reaches the executor (a tampered saved plan, a bug in the planner), it sends no
 * mutating call for an image it did not observe as ours: here a delete of the console image
 * fails without a call, while an unshare of our own image in the same plan goes through. */
Test(ownership, executor_refuses_a_step_on_an_image_not_observed_as_ours)
{
    static const step_row steps[] = {{REC_ACT_DELETE, "hand-made", ID_HAND},
                                     {REC_ACT_SHARE, "web", ID_OURS}};
    static const seen_row seen[] = {{ID_HAND, "hand-made", NULL}, {ID_OURS, "web", "team-a"}};
    scenario();
    exec_outcome out = {0};
    run_executor(steps, N_ROWS(steps), seen, N_ROWS(seen), &out);

    expect_one_refused(&out, 1, "the step on our image ran");
    cr_expect_null(out.error[1]);
    json_t *j = journal_lines(&E);
    cr_expect_eq(count_calls(j, 0, "DeleteCustomImage", NULL), 0);
    cr_expect_eq(count_calls(j, 0, "ModifyImageShareStatus", NULL), 1);
    json_decref(j);
    expect_untouched("executor");
    exec_outcome_clear(&out);
}

#define ID_MINE1 "m-bp1mine0000000001"
#define ID_MINE2 "m-bp1mine0000000002"

/* Batched deletes pass the same check per id: a plan deleting the console image and two of ours
 * sends one DeleteCustomImages naming exactly our two ids, and the console image's step fails
 * without a call. */
Test(ownership, executor_batch_leaves_out_an_image_not_observed_as_ours)
{
    write_fixture(&E, 2,
                  FIX(ID_HAND, "hand-made", "1", "false", "{team: ops}")
                      FIX(ID_MINE1, "mine-1", "1", "false", "{imgrecon/owner: team-a}")
                          FIX(ID_MINE2, "mine-2", "1", "false", "{imgrecon/owner: team-a}"),
                  NULL);
    start_emu(&E, "300ms", NULL);
    static const step_row steps[] = {{REC_ACT_DELETE, "hand-made", ID_HAND},
                                     {REC_ACT_DELETE, "mine-1", ID_MINE1},
                                     {REC_ACT_DELETE, "mine-2", ID_MINE2}};
    static const seen_row seen[] = {{ID_HAND, "hand-made", NULL},
                                    {ID_MINE1, "mine-1", "team-a"},
                                    {ID_MINE2, "mine-2", "team-a"}};
    exec_outcome out = {0};
    run_executor(steps, N_ROWS(steps), seen, N_ROWS(seen), &out);

    expect_one_refused(&out, 2, "both of our images were deleted");
    json_t *j = journal_lines(&E);
    cr_expect_eq(count_calls(j, 0, "DeleteCustomImage", "*"), 0);
    cr_assert_eq(count_calls(j, 0, "DeleteCustomImages", "*"), 1);
    for (size_t i = 0; i < json_array_size(j); i++) {
        json_t *l = json_array_get(j, i);
        if (strcmp(jstr(l, "action"), "DeleteCustomImages") != 0)
            continue;
        json_t *ids = json_loads(jparam(l, "ImageIds"), 0, NULL);
        cr_assert(json_is_array(ids), "ImageIds is a JSON array: %s", jparam(l, "ImageIds"));
        cr_expect_eq(json_array_size(ids), 2);
        for (size_t k = 0; k < json_array_size(ids); k++)
            cr_expect_str_neq(json_string_value(json_array_get(ids, k)), ID_HAND);
        json_decref(ids);
    }
    json_decref(j);
    json_t *imgs = state_images(&E);
    cr_expect_not_null(find_image(imgs, "hand-made"), "the console image is still there");
    cr_expect_null(find_image(imgs, "mine-1"));
    cr_expect_null(find_image(imgs, "mine-2"));
    json_decref(imgs);
    exec_outcome_clear(&out);
}

/* ---- creates answered with an image that is not the one created ---- */

#define ID_FOREIGN "m-bp1foreign00000001"
#define ID_LEGACY "m-bp1legacy000000001"

/* A manifest of "web" (shared to ECS and to an account) next to "legacy" (ours, share off). */
static void create_scenario(const char *images_yaml)
{
    write_fixture(&E, 2, images_yaml, NULL);
    start_emu(&E, "300ms", NULL);
    write_file(E.manifest,
               "region: cn-hangzhou\ncustom_images:\n" IMG(
                   "web", "    share_to_ecs: true\n    share_to_accounts: ['2222222222222222']\n")
                   IMG("legacy", ""));
}

/* No share, unshare or account share names image_id in the emulator's journal. */
static void expect_not_shared(const char *image_id, const char *what)
{
    static const char *const actions[] = {"ModifyImageShareStatus", "AddCustomImageShareAccount",
                                          "DeleteCustomImage", "DeleteCustomImages"};
    json_t *j = journal_lines(&E);
    for (size_t i = 0; i < json_array_size(j); i++) {
        json_t *l = json_array_get(j, i);
        for (size_t a = 0; a < N_ROWS(actions); a++)
            if (strcmp(jstr(l, "action"), actions[a]) == 0) {
                char *text = json_dumps(l, JSON_COMPACT);
                cr_expect_null(strstr(text, image_id), "%s: %s", what, text);
                free(text);
            }
    }
    json_decref(j);
}

/* The poll after the observe (skip 1) answers the foreign id as team-b's "payroll-db". */
#define POLL_FOREIGN                                                                               \
    "{\"action\":\"ListCustomImages\",\"kind\":\"answer\",\"skip\":1,\"body\":{"                   \
    "\"TotalCount\":1,\"PageSize\":100,\"PageNumber\":1,\"CustomImages\":[{\"ImageId\":"           \
    "\"" ID_FOREIGN "\",\"Name\":\"payroll-db\",\"Status\":\"1\",\"RegionId\":\"cn-hangzhou\","    \
    "\"InstanceId\":\"ace0706b2ac4454d984295a94213ab01\",\"InShare\":false,\"Tags\":[{\"Key\":"    \
    "\"imgrecon/owner\",\"Value\":\"team-b\"}]}]}}"

/* CreateCustomImage answers an id the create did not make, and the poll lists it as team-b's
 * "payroll-db": the create step fails on the poll's answer and nothing shares that image, in the
 * run that sent the create and in the next one, which awaits the journaled id without a call. */
Test(ownership, create_answered_with_a_foreign_image_shares_nothing)
{
    static const char create[] = "{\"action\":\"CreateCustomImage\",\"kind\":\"answer\",\"body\":"
                                 "{\"ImageId\":\"" ID_FOREIGN "\"}}";
    create_scenario(FIX(ID_LEGACY, "legacy", "1", "false", "{imgrecon/owner: team-a}"));
    cr_assert_eq(emu_proc_add_fault(&E.emu, create), 0);
    for (int run = 0; run < 2; run++) {
        cr_assert_eq(emu_proc_add_fault(&E.emu, POLL_FOREIGN), 0);
        run_result r = RUN(&E, "apply", "-f", E.manifest, "--auto-approve");
        cr_expect_eq(r.status, 1, "apply %d: exit %d\n%s", run, r.status, r.out);
        cr_expect(strstr(r.out, "refused: ListCustomImages shows image " ID_FOREIGN
                                " as 'payroll-db' owned by 'team-b'") != NULL,
                  "apply %d:\n%s", run, r.out);
        run_result_free(&r);
        expect_not_shared(ID_FOREIGN, "foreign image");
    }
    json_t *j = journal_lines(&E);
    cr_expect_eq(count_calls(j, 0, "CreateCustomImage", "*"), 1, "the second run sent no create");
    json_decref(j);
}

/* CreateCustomImage answers the id of "legacy", an image of ours observed before the create and
 * declared with sharing off: the create fails at once and legacy is neither polled as web nor
 * shared. */
Test(ownership, create_answered_with_an_observed_image_shares_nothing)
{
    static const char fault[] = "{\"action\":\"CreateCustomImage\",\"kind\":\"answer\",\"body\":{"
                                "\"ImageId\":\"" ID_LEGACY "\"}}";
    create_scenario(FIX(ID_LEGACY, "legacy", "1", "false", "{imgrecon/owner: team-a}"));
    cr_assert_eq(emu_proc_add_fault(&E.emu, fault), 0);
    run_result r = RUN(&E, "apply", "-f", E.manifest, "--auto-approve");
    cr_expect_eq(r.status, 1, "apply: exit %d\n%s", r.status, r.out);
    cr_expect(strstr(r.out, "refused: CreateCustomImage answered image " ID_LEGACY
                            ", an image observed before the create") != NULL,
              "%s", r.out);
    run_result_free(&r);
    expect_not_shared(ID_LEGACY, "legacy");
    json_t *imgs = state_images(&E);
    json_t *legacy = find_image(imgs, "legacy");
    cr_assert_not_null(legacy);
    cr_expect(!image_shared(legacy), "legacy stays unshared");
    cr_expect_eq(json_array_size(json_object_get(legacy, "share_accounts")), 0);
    json_decref(imgs);
}
