/* Tags, protect, adoption, owner migration and account shares in place (reconcile/README.md
 * "Semantics"; issue 12 items 3, 4, 5 and 7) against the real emulator: each scenario checks the
 * emulator's journal (which calls were made) and its state (what the account holds afterwards), and
 * that the next plan is empty where the manifest is now met. */
#include "apply_support.h"
#include "test_param.h"

#define SRV0 "ace0706b2ac4454d984295a94213ab00"
#define ID_WEB "m-bp1tagweb00000001"
#define ID_API "m-bp1tagapi00000001"
#define ID_OLD "m-bp1tagold00000001"

static env E;

static void setup(void)
{
    env_init(&E);
}

static void teardown(void)
{
    env_fini(&E);
}

TestSuite(tags, .init = setup, .fini = teardown, .timeout = 300);

#define IMG(name, extra)                                                                           \
    "  - name: " name "\n    instance_id: " SRV0 "\n    system_snapshot_id: s-sys-00\n" extra

#define FIX(id, name, shared, tags, extra)                                                         \
    "      - image_id: " id "\n        name: " name "\n        instance_id: " SRV0                 \
    "\n        system_snapshot_id: s-sys-00\n        status: \"1\"\n        in_share: " shared     \
    "\n        tags: " tags "\n" extra

/* Journal lines of mutating calls (anything but List and Describe) from line `from` on. */
static size_t mutating_calls(size_t from)
{
    json_t *j = journal_lines(&E);
    size_t n = 0;
    for (size_t i = from; i < json_array_size(j); i++) {
        const char *a = jstr(json_array_get(j, i), "action");
        n += strncmp(a, "List", 4) != 0 && strncmp(a, "Describe", 8) != 0 &&
             strcmp(a, "GetCallerIdentity") != 0; /* STS: read-only */
    }
    json_decref(j);
    return n;
}

static size_t journal_len(void)
{
    json_t *j = journal_lines(&E);
    size_t n = json_array_size(j);
    json_decref(j);
    return n;
}

static size_t calls(const char *action)
{
    json_t *j = journal_lines(&E);
    size_t n = count_calls(j, 0, action, NULL);
    json_decref(j);
    return n;
}

static const char *tag_value(json_t *img, const char *key)
{
    json_t *v = json_object_get(json_object_get(img, "tags"), key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void expect_plan_empty(const char *what)
{
    run_result r = RUN(&E, "plan", "-f", E.manifest, "--detailed-exitcode");
    cr_expect_eq(r.status, 0, "%s: plan after apply must be empty (exit %d)\n%s", what, r.status,
                 r.out);
    run_result_free(&r);
}

static void apply_ok(const char *what)
{
    run_result r = RUN(&E, "apply", "-f", E.manifest, "--auto-approve");
    cr_assert_eq(r.status, 0, "%s: apply exit %d\n%s", what, r.status, r.out);
    run_result_free(&r);
}

Test(tags, tag_edit_makes_only_tag_calls_batched_by_tag_set)
{
    write_fixture(&E, 1,
                  FIX(ID_WEB, "web", "false",
                      "{imgrecon/owner: team-a, team: old, cost: x, 'acs:rm:rgId': rg-1}", "")
                      FIX(ID_API, "api", "false", "{imgrecon/owner: team-a, team: old}", ""),
                  NULL);
    start_emu(&E, "300ms", NULL);
    write_file(E.manifest,
               "region: cn-hangzhou\ncustom_images:\n" IMG("web", "    tags: {team: new}\n")
                   IMG("api", "    tags: {team: new}\n"));
    run_result r = RUN(&E, "plan", "-f", E.manifest);
    cr_assert_eq(r.status, 0, "%s", r.out);
    cr_expect(strstr(r.out, "+ team = \"new\" (was \"old\")") != NULL, "%s", r.out);
    cr_expect(strstr(r.out, "- cost (was \"x\")") != NULL, "%s", r.out);
    cr_expect(strstr(r.out, "cannot update tags") == NULL, "%s", r.out);
    run_result_free(&r);
    size_t before = journal_len();
    apply_ok("tag edit");
    /* Both images get the same set (team=new): one TagResources; one UntagResources for cost. */
    cr_expect_eq(calls("TagResources"), 1);
    cr_expect_eq(calls("UntagResources"), 1);
    cr_expect_eq(mutating_calls(before), 2, "only the two tag calls");
    cr_expect_eq(calls("CreateCustomImage") + calls("DeleteCustomImage"), 0);
    json_t *imgs = state_images(&E);
    json_t *web = find_image(imgs, "web"), *api = find_image(imgs, "api");
    cr_assert_not_null(web);
    cr_expect_str_eq(jstr(web, "image_id"), ID_WEB, "not recreated");
    cr_expect_str_eq(tag_value(web, "team"), "new");
    cr_expect_null(tag_value(web, "cost"));
    cr_expect_str_eq(tag_value(web, "acs:rm:rgId"), "rg-1", "cloud keys are never touched");
    cr_expect_str_eq(tag_value(web, "imgrecon/owner"), "team-a");
    cr_expect_str_eq(tag_value(api, "team"), "new");
    json_decref(imgs);
    expect_plan_empty("tag edit");
}

Test(tags, protect_added_then_entry_removed_with_prune_keeps_the_image)
{
    write_fixture(&E, 1, FIX(ID_WEB, "web", "false", "{imgrecon/owner: team-a}", ""), NULL);
    start_emu(&E, "300ms", NULL);
    write_file(E.config, "owner: team-a\nprune: true\nallow_empty: true\nmetrics_listen: null\n");
    write_file(E.manifest,
               "region: cn-hangzhou\ncustom_images:\n" IMG("web", "    protect: true\n"));
    apply_ok("protect added");
    cr_expect_eq(calls("TagResources"), 1);
    json_t *imgs = state_images(&E);
    cr_expect_str_eq(tag_value(find_image(imgs, "web"), "imgrecon/protect"), "true");
    json_decref(imgs);
    expect_plan_empty("protect added");

    write_file(E.manifest, "region: cn-hangzhou\ncustom_images: []\n");
    run_result r = RUN(&E, "apply", "-f", E.manifest, "--auto-approve");
    cr_expect_eq(r.status, 0, "%s", r.out);
    run_result_free(&r);
    cr_expect_eq(calls("DeleteCustomImage") + calls("DeleteCustomImages"), 0);
    imgs = state_images(&E);
    cr_expect_not_null(find_image(imgs, "web"), "a protected image is never pruned");
    json_decref(imgs);
}

Test(tags, owner_renamed_with_previous_owners_is_retagged_not_recreated)
{
    write_fixture(&E, 1,
                  FIX(ID_WEB, "web", "false", "{imgrecon/owner: team-a, team: web}", "")
                      FIX(ID_OLD, "old", "false", "{imgrecon/owner: team-a}", ""),
                  NULL);
    start_emu(&E, "300ms", NULL);
    write_file(E.config, "owner: team-z\nprevious_owners: [team-a]\nmetrics_listen: null\n");
    write_file(E.manifest,
               "region: cn-hangzhou\ncustom_images:\n" IMG("web", "    tags: {team: web}\n"));
    size_t before = journal_len();
    apply_ok("owner migration");
    cr_expect_eq(calls("TagResources"), 1, "both images share the set imgrecon/owner=team-z");
    cr_expect_eq(mutating_calls(before), 1);
    json_t *imgs = state_images(&E);
    cr_expect_str_eq(jstr(find_image(imgs, "web"), "image_id"), ID_WEB);
    cr_expect_str_eq(tag_value(find_image(imgs, "web"), "imgrecon/owner"), "team-z");
    cr_expect_str_eq(tag_value(find_image(imgs, "old"), "imgrecon/owner"), "team-z");
    json_decref(imgs);
    expect_plan_empty("owner migration");
}

Test(tags, adopt_mismatch_is_refused_with_no_mutating_call)
{
    write_fixture(&E, 1, FIX(ID_WEB, "web", "false", "{team: ops}", ""), NULL);
    start_emu(&E, "300ms", NULL);
    write_file(E.manifest,
               "region: cn-hangzhou\ncustom_images:\n" IMG("web", "    adopt: true\n    "
                                                                  "description: another\n"));
    run_result r = RUN(&E, "plan", "-f", E.manifest, "--json");
    cr_assert_eq(r.status, 0, "%s", r.out);
    json_t *doc = json_loads(r.out, 0, NULL);
    cr_assert_not_null(doc, "%s", r.out);
    cr_expect_str_eq(jstr(doc, "format_version"), "1.2");
    json_t *c0 = json_array_get(json_object_get(doc, "conflicts"), 0);
    cr_assert_not_null(c0, "%s", r.out);
    cr_expect_str_eq(jstr(c0, "conflict"), "adopt_mismatch");
    cr_expect(strstr(jstr(c0, "message"), "description changed") != NULL, "%s", r.out);
    cr_expect_eq(json_array_size(json_object_get(doc, "steps")), 0, "%s", r.out);
    json_decref(doc);
    run_result_free(&r);
    r = RUN(&E, "apply", "-f", E.manifest, "--auto-approve");
    cr_expect_eq(r.status, 1, "a conflict makes apply exit 1\n%s", r.out);
    run_result_free(&r);
    cr_expect_eq(mutating_calls(0), 0);
    json_t *imgs = state_images(&E);
    cr_expect_null(tag_value(find_image(imgs, "web"), "imgrecon/owner"));
    json_decref(imgs);
}

Test(tags, adopt_match_is_one_tag_call_then_plan_empty)
{
    write_fixture(&E, 1, FIX(ID_WEB, "web", "false", "{team: web}", ""), NULL);
    start_emu(&E, "300ms", NULL);
    write_file(E.manifest,
               "region: cn-hangzhou\ncustom_images:\n" IMG("web", "    adopt: true\n    "
                                                                  "tags: {team: web}\n"));
    apply_ok("adopt");
    cr_expect_eq(calls("TagResources"), 1);
    cr_expect_eq(mutating_calls(0), 1);
    json_t *imgs = state_images(&E);
    cr_expect_str_eq(jstr(find_image(imgs, "web"), "image_id"), ID_WEB);
    cr_expect_str_eq(tag_value(find_image(imgs, "web"), "imgrecon/owner"), "team-a");
    json_decref(imgs);
    expect_plan_empty("adopt");
}

Test(tags, account_shares_added_and_removed_and_removed_before_delete)
{
    write_fixture(&E, 1,
                  FIX(ID_WEB, "web", "false", "{imgrecon/owner: team-a}",
                      "        share_accounts: ['2222', '3333']\n")
                      FIX(ID_OLD, "old", "false", "{imgrecon/owner: team-a}",
                          "        share_accounts: ['4444']\n"),
                  NULL);
    start_emu(&E, "300ms", NULL);
    write_file(E.config, "owner: team-a\nprune: true\nmetrics_listen: null\n");
    write_file(E.manifest, "region: cn-hangzhou\ncustom_images:\n" IMG(
                               "web", "    share_to_accounts: ['1111', '2222']\n")
                               IMG("fresh", "    share_to_accounts: ['6666']\n"));
    apply_ok("accounts");
    /* A new image gets its accounts once it is available. */
    json_t *fresh = state_images(&E);
    json_t *fa = json_object_get(find_image(fresh, "fresh"), "share_accounts");
    cr_expect_eq(json_array_size(fa), 1);
    cr_expect_str_eq(json_string_value(json_array_get(fa, 0)), "6666");
    json_decref(fresh);
    cr_expect_eq(calls("AddCustomImageShareAccount"), 2);
    cr_expect_eq(calls("RemoveCustomImageShareAccount"), 2);
    json_t *j = journal_lines(&E);
    size_t rm_old = SIZE_MAX, del_old = SIZE_MAX;
    for (size_t i = 0; i < json_array_size(j); i++) {
        json_t *l = json_array_get(j, i);
        const char *a = jstr(l, "action"), *img = jparam(l, "ImageId");
        if (img && strcmp(img, ID_OLD) == 0 && strcmp(a, "RemoveCustomImageShareAccount") == 0)
            rm_old = i;
        if (strcmp(a, "DeleteCustomImage") == 0 && img && strcmp(img, ID_OLD) == 0 &&
            jstr(l, "code") == NULL)
            del_old = i;
    }
    json_decref(j);
    cr_expect_neq(rm_old, SIZE_MAX);
    cr_expect_neq(del_old, SIZE_MAX, "the shared image is pruned");
    cr_expect_lt(rm_old, del_old, "accounts removed before the delete");
    j = journal_lines(&E);
    cr_expect_eq(count_calls(j, 0, "DeleteCustomImage", "CustomImageInShare"), 0);
    json_decref(j);
    json_t *imgs = state_images(&E);
    json_t *acc = json_object_get(find_image(imgs, "web"), "share_accounts");
    cr_expect_eq(json_array_size(acc), 2);
    const char *a0 = json_string_value(json_array_get(acc, 0));
    const char *a1 = json_string_value(json_array_get(acc, 1));
    cr_expect(a0 && a1 && strcmp(a0, a1) != 0 &&
                  (strcmp(a0, "1111") == 0 || strcmp(a0, "2222") == 0) &&
                  (strcmp(a1, "1111") == 0 || strcmp(a1, "2222") == 0),
              "accounts: %s %s", a0 ? a0 : "-", a1 ? a1 : "-");
    cr_expect_null(find_image(imgs, "old"));
    json_decref(imgs);
    expect_plan_empty("accounts");
}

/* Account shares are read only for images a step may touch (reconcile/README.md "Semantics",
 * Cross-account sharing): ours, a previous owner's, an unowned one whose entry says adopt: true,
 * and any whose entry declares accounts. Another owner's account-shared image, and an unowned
 * one nobody adopts, cost no ListCustomImageShareAccounts call, and the plan leaves them be. */
Test(tags, foreign_account_shared_image_costs_no_share_accounts_call)
{
    static const struct {
        const char *id;
        bool read;
    } rows[] = {
        {"m-bp1acctours00001", true},  /* ours, undeclared: its shares go before a prune */
        {"m-bp1acctprev00001", true},  /* a previous owner's: taken over */
        {"m-bp1acctadopt0001", true},  /* unowned, adopt: true */
        {"m-bp1acctdecl00001", true},  /* not shared, but the entry declares accounts */
        {"m-bp1accttheirs001", false}, /* another owner's */
        {"m-bp1acctstray0001", false}, /* unowned, nobody adopts it */
    };
    write_fixture(
        &E, 1,
        FIX("m-bp1acctours00001", "ours", "false", "{imgrecon/owner: team-a}",
            "        share_accounts: ['2222']\n")
            FIX("m-bp1acctprev00001", "prev", "false", "{imgrecon/owner: team-old}",
                "        share_accounts: ['2222']\n")
                FIX("m-bp1acctadopt0001", "adoptee", "false", "{team: web}",
                    "        share_accounts: ['2222']\n")
                    FIX("m-bp1acctdecl00001", "decl", "false", "{imgrecon/owner: team-a}", "")
                        FIX("m-bp1accttheirs001", "theirs", "false", "{imgrecon/owner: team-b}",
                            "        share_accounts: ['5555']\n")
                            FIX("m-bp1acctstray0001", "stray", "false", "{team: ops}",
                                "        share_accounts: ['5555']\n"),
        NULL);
    start_emu(&E, "300ms", NULL);
    write_file(E.config, "owner: team-a\nprevious_owners: [team-old]\nmetrics_listen: null\n");
    write_file(E.manifest,
               "region: cn-hangzhou\ncustom_images:\n" IMG("adoptee", "    adopt: true\n    "
                                                                      "tags: {team: web}\n")
                   IMG("decl", "    share_to_accounts: ['2222']\n"));
    run_result r = RUN(&E, "plan", "-f", E.manifest, "--json");
    cr_assert_eq(r.status, 0, "%s", r.out);
    json_t *doc = json_loads(r.out, 0, NULL);
    cr_assert_not_null(doc, "%s", r.out);
    json_t *steps = json_object_get(doc, "steps");
    for (size_t i = 0; i < json_array_size(steps); i++) {
        const char *id = jstr(json_array_get(steps, i), "image_id");
        cr_expect(id == NULL || (strcmp(id, "m-bp1accttheirs001") != 0 &&
                                 strcmp(id, "m-bp1acctstray0001") != 0),
                  "a step on an image that is not ours: %s", r.out);
    }
    json_decref(doc);
    run_result_free(&r);
    json_t *j = journal_lines(&E);
    for (size_t k = 0; k < sizeof(rows) / sizeof(rows[0]); k++) {
        size_t n = 0;
        for (size_t i = 0; i < json_array_size(j); i++) {
            json_t *l = json_array_get(j, i);
            const char *img = jparam(l, "ImageId");
            n += strcmp(jstr(l, "action"), "ListCustomImageShareAccounts") == 0 && img &&
                 strcmp(img, rows[k].id) == 0;
        }
        cr_expect_eq(n, rows[k].read ? 1 : 0, "%s: %zu ListCustomImageShareAccounts calls",
                     rows[k].id, n);
    }
    json_decref(j);
}

/* `imgrecon api swas <Action>` reaches each new operation (a raw, signed, paced call). */
Test(tags, api_reaches_each_new_operation)
{
    write_fixture(&E, 1, FIX(ID_WEB, "web", "false", "{imgrecon/owner: team-a}", ""), NULL);
    start_emu(&E, "300ms", NULL);
    static const struct {
        const char *args[8];
        const char *expect; /* a piece of the printed answer */
    } cases[] = {
        {{"swas", "TagResources", "RegionId=cn-hangzhou", "ResourceType=customimage",
          "ResourceId.1=" ID_WEB, "Tag.1.Key=env", "Tag.1.Value=prod", NULL},
         "RequestId"},
        {{"swas", "ListTagResources", "RegionId=cn-hangzhou", "ResourceType=customimage",
          "ResourceId.1=" ID_WEB, NULL},
         "\"TagValue\":\"prod\""},
        {{"swas", "UntagResources", "RegionId=cn-hangzhou", "ResourceType=customimage",
          "ResourceId.1=" ID_WEB, "TagKey.1=env", NULL},
         "RequestId"},
        {{"swas", "AddCustomImageShareAccount", "RegionId=cn-hangzhou", "ImageId=" ID_WEB,
          "Account.1=1111", NULL},
         "RequestId"},
        {{"swas", "ListCustomImageShareAccounts", "RegionId=cn-hangzhou", "ImageId=" ID_WEB, NULL},
         "1111"},
        {{"swas", "RemoveCustomImageShareAccount", "RegionId=cn-hangzhou", "ImageId=" ID_WEB,
          "Account.1=1111", NULL},
         "RequestId"},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        const char *argv[12] = {"api", "--compact"};
        size_t n = 2;
        for (size_t k = 0; cases[c].args[k]; k++)
            argv[n++] = cases[c].args[k];
        argv[n] = NULL;
        run_result r = run_imgrecon_v(&E, argv);
        cr_expect_eq(r.status, 0, "%s: exit %d\n%s", cases[c].args[1], r.status, r.out);
        cr_expect(strstr(r.out, cases[c].expect) != NULL, "%s:\n%s", cases[c].args[1], r.out);
        run_result_free(&r);
    }
    cr_expect_eq(calls("TagResources") + calls("UntagResources"), 2);
    json_t *imgs = state_images(&E);
    cr_expect_null(tag_value(find_image(imgs, "web"), "env"));
    cr_expect_eq(json_array_size(json_object_get(find_image(imgs, "web"), "share_accounts")), 0);
    json_decref(imgs);
}

/* Tag drift made by hand is repaired by the daemon's next cycle (`run --once`), in place. */
Test(tags, daemon_cycle_repairs_tag_drift)
{
    write_fixture(&E, 1, FIX(ID_WEB, "web", "false", "{imgrecon/owner: team-a, team: web}", ""),
                  NULL);
    start_emu(&E, "300ms", NULL);
    write_file(E.config, "owner: team-a\nmetrics_listen: null\n");
    write_file(E.manifest,
               "region: cn-hangzhou\ncustom_images:\n" IMG("web", "    tags: {team: web}\n"));
    /* By hand: team changed, a stray key added. */
    run_result r = RUN(&E, "api", "swas", "TagResources", "RegionId=cn-hangzhou",
                       "ResourceType=customimage", "ResourceId.1=" ID_WEB, "Tag.1.Key=team",
                       "Tag.1.Value=ops", "Tag.2.Key=stray", "Tag.2.Value=1");
    cr_assert_eq(r.status, 0, "%s", r.out);
    run_result_free(&r);
    r = RUN(&E, "run", "--once", "-f", E.manifest);
    cr_expect_eq(r.status, 0, "run --once: exit %d\n%s", r.status, r.out);
    run_result_free(&r);
    json_t *imgs = state_images(&E);
    json_t *web = find_image(imgs, "web");
    cr_expect_str_eq(jstr(web, "image_id"), ID_WEB);
    cr_expect_str_eq(tag_value(web, "team"), "web");
    cr_expect_null(tag_value(web, "stray"));
    json_decref(imgs);
    cr_expect_eq(calls("CreateCustomImage") + calls("DeleteCustomImage"), 0);
}

/* The question apply asks before changing anything, when stdin is a terminal. */
#define PROMPT "Do you want to perform these actions? Only 'yes' will be accepted: "

/* A tag step whose image someone changes while apply waits at its prompt: the config, the image
 * as the plan sees it, and the manifest entry. */
static const struct {
    const char *what;
    const char *config;
    const char *tags; /* the image's tags in the fixture */
    const char *entry;
} taken[] = {
    {"adopt", "owner: team-a\nmetrics_listen: null\n", "{team: web}",
     IMG("web", "    adopt: true\n    tags: {team: web}\n")},
    {"migration", "owner: team-a\nprevious_owners: [team-old]\nmetrics_listen: null\n",
     "{imgrecon/owner: team-old, team: web}", IMG("web", "    tags: {team: web}\n")},
    {"retag", "owner: team-a\nmetrics_listen: null\n", "{imgrecon/owner: team-a, team: ops}",
     IMG("web", "    tags: {team: web}\n")},
};

ParameterizedTestParameters(tags, an_image_another_team_took_after_observe_is_not_retagged)
{
    return test_param_indices(sizeof(taken) / sizeof(taken[0]));
}

/* The plan takes over web (adoption of an unowned image, migration from a previous owner) or
 * fixes its tags, and apply waits at its prompt. Meanwhile team-b tags web as theirs
 * (`imgrecon api swas TagResources`, as one would in the console). The look just before the
 * tag call sees it: the step is refused with no call and web stays team-b's. Without the look,
 * TagResources went out on the observation made before the prompt and overwrote team-b's owner
 * tag (the image was stolen) or rewrote team-b's tags. */
ParameterizedTest(size_t *i, tags, an_image_another_team_took_after_observe_is_not_retagged)
{
    char fix[512];
    snprintf(fix, sizeof(fix), FIX(ID_WEB, "web", "false", "%s", ""), taken[*i].tags);
    write_fixture(&E, 1, fix, NULL);
    start_emu(&E, "300ms", NULL);
    write_file(E.config, taken[*i].config);
    char manifest[512];
    snprintf(manifest, sizeof(manifest), "region: cn-hangzhou\ncustom_images:\n%s",
             taken[*i].entry);
    write_file(E.manifest, manifest);
    char outpath[200];
    snprintf(outpath, sizeof(outpath), "%s/prompt.txt", E.dir);
    test_pty pty;
    test_pty_open(&pty);
    pid_t pid = spawn_imgrecon_tty(&E, outpath, pty.slave,
                                   (const char *const[]){"apply", "-f", E.manifest, NULL});
    bool asked = test_proc_await_output(pid, outpath, PROMPT, RUN_TIMEOUT_MS);
    run_result t =
        RUN(&E, "api", "swas", "TagResources", "RegionId=cn-hangzhou", "ResourceType=customimage",
            "ResourceId.1=" ID_WEB, "Tag.1.Key=imgrecon/owner", "Tag.1.Value=team-b",
            "Tag.2.Key=team", "Tag.2.Value=theirs");
    if (asked)
        test_pty_type(&pty, "yes\n");
    int st = wait_child(pid, RUN_TIMEOUT_MS);
    test_pty_close(&pty);
    char *out = read_file(outpath);
    cr_assert(asked, "%s: apply on a terminal asks:\n%s", taken[*i].what, out);
    cr_assert_eq(t.status, 0, "team-b's TagResources: exit %d\n%s", t.status, t.out);
    run_result_free(&t);
    cr_expect_eq(st, 1, "%s: apply exit %d\n%s", taken[*i].what, st, out);
    cr_expect(strstr(out, "since it was observed, the image's imgrecon/owner tag became "
                          "'team-b'") != NULL,
              "%s:\n%s", taken[*i].what, out);
    free(out);
    cr_expect_eq(calls("TagResources"), 1, "%s: only team-b's own call", taken[*i].what);
    cr_expect_eq(calls("UntagResources"), 0, "%s", taken[*i].what);
    json_t *imgs = state_images(&E);
    cr_expect_str_eq(tag_value(find_image(imgs, "web"), "imgrecon/owner"), "team-b", "%s",
                     taken[*i].what);
    cr_expect_str_eq(tag_value(find_image(imgs, "web"), "team"), "theirs", "%s", taken[*i].what);
    json_decref(imgs);
}

/* Our own owner tag is no change: while apply waits at its prompt to adopt web, web gets
 * imgrecon/owner=team-a by another way (another imgrecon of this owner, or the adoption's own
 * call whose answer was lost and whose retry went stale). The look accepts it and the step
 * completes; it was refused as "became 'team-a'" before. */
Test(tags, an_adoption_that_finds_our_own_tag_completes)
{
    write_fixture(&E, 1, FIX(ID_WEB, "web", "false", "{team: ops}", ""), NULL);
    start_emu(&E, "300ms", NULL);
    write_file(E.config, "owner: team-a\nmetrics_listen: null\n");
    write_file(E.manifest, "region: cn-hangzhou\ncustom_images:\n" IMG(
                               "web", "    adopt: true\n    tags: {team: web}\n"));
    char outpath[200];
    snprintf(outpath, sizeof(outpath), "%s/prompt.txt", E.dir);
    test_pty pty;
    test_pty_open(&pty);
    pid_t pid = spawn_imgrecon_tty(&E, outpath, pty.slave,
                                   (const char *const[]){"apply", "-f", E.manifest, NULL});
    bool asked = test_proc_await_output(pid, outpath, PROMPT, RUN_TIMEOUT_MS);
    run_result t =
        RUN(&E, "api", "swas", "TagResources", "RegionId=cn-hangzhou", "ResourceType=customimage",
            "ResourceId.1=" ID_WEB, "Tag.1.Key=imgrecon/owner", "Tag.1.Value=team-a");
    if (asked)
        test_pty_type(&pty, "yes\n");
    int st = wait_child(pid, RUN_TIMEOUT_MS);
    test_pty_close(&pty);
    char *out = read_file(outpath);
    cr_assert(asked, "apply on a terminal asks:\n%s", out);
    cr_assert_eq(t.status, 0, "TagResources: exit %d\n%s", t.status, t.out);
    run_result_free(&t);
    cr_expect_eq(st, 0, "apply exit %d\n%s", st, out);
    free(out);
    json_t *imgs = state_images(&E);
    cr_expect_str_eq(tag_value(find_image(imgs, "web"), "imgrecon/owner"), "team-a");
    cr_expect_str_eq(tag_value(find_image(imgs, "web"), "team"), "web");
    json_decref(imgs);
}
