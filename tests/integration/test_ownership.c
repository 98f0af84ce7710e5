/* Ownership end to end (DESIGN.md "Semantics", Ownership; issue 11 items 1 and 7): manifests
 * that declare names taken by images that are not ours (a console image without the owner tag,
 * an image of team-b) against the real emulator. plan shows the conflicts (text and JSON),
 * apply does the independent steps and exits 1, a daemon cycle reports the item failing, and
 * the emulator's journal shows no mutating call naming those images. */
#include "apply_support.h"

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
    cr_expect_str_eq(jstr(doc, "format_version"), "1.1");
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
