/* imgrecon plan and apply end to end: the real binary against the real emulator, limits scaled
 * to 10/1s on both sides. Every scenario also checks the emulator's journal for the ordering
 * rules and for zero throttled calls (apply_support.h). */
#include "apply_support.h"

#define SRV0 "ace0706b2ac4454d984295a94213ab00"
#define SRV1 "ace0706b2ac4454d984295a94213ab01"

static env E;

static void setup(void)
{
    env_init(&E);
}

static void teardown(void)
{
    env_fini(&E);
}

TestSuite(apply, .init = setup, .fini = teardown, .timeout = 300);

/* A manifest entry on server 0 (system snapshot s-sys-00). */
#define IMG(name, extra)                                                                           \
    "  - name: " name "\n    instance_id: " SRV0 "\n    system_snapshot_id: s-sys-00\n" extra

/* A fixture image owned by us on server 0. */
#define FIX(id, name, status, shared, tags)                                                        \
    "      - image_id: " id "\n        name: " name "\n        instance_id: " SRV0                 \
    "\n        system_snapshot_id: s-sys-00\n        status: \"" status                            \
    "\"\n        in_share: " shared "\n        tags: " tags "\n"

#define OWNED "{imgrecon/owner: team-a}"

static void expect_ok(run_result *r, const char *what)
{
    cr_assert_eq(r->status, 0, "%s: exit %d\n%s", what, r->status, r->out);
}

/* The second apply changes nothing and calls only List/Describe. */
static void expect_idempotent(void)
{
    json_t *j = journal_lines(&E);
    size_t before = json_array_size(j);
    json_decref(j);
    run_result r = RUN(&E, "apply", "-f", E.manifest, "--auto-approve");
    expect_ok(&r, "second apply");
    cr_expect(strstr(r.out, "No changes") != NULL, "second apply output:\n%s", r.out);
    run_result_free(&r);
    j = journal_lines(&E);
    for (size_t i = before; i < json_array_size(j); i++) {
        const char *a = jstr(json_array_get(j, i), "action");
        cr_expect(strcmp(a, "ListCustomImages") == 0 || strcmp(a, "DescribeImages") == 0,
                  "second apply called %s", a);
    }
    json_decref(j);
}

Test(apply, create_and_share_then_idempotent)
{
    write_fixture(&E, 2, NULL, NULL);
    start_emu(&E, "300ms", NULL);
    write_file(E.manifest, "region: cn-hangzhou\ncustom_images:\n" IMG("web-a", "")
                               IMG("web-b", "    share_to_ecs: true\n    description: B\n"));

    run_result r = RUN(&E, "plan", "-f", E.manifest, "--detailed-exitcode");
    cr_assert_eq(r.status, 2, "plan with changes: exit %d\n%s", r.status, r.out);
    cr_expect(strstr(r.out, "web-a") && strstr(r.out, "web-b"), "%s", r.out);
    run_result_free(&r);

    r = RUN(&E, "apply", "-f", E.manifest, "--auto-approve");
    expect_ok(&r, "apply");
    cr_expect(strstr(r.out, "Apply complete: 2 created, 0 deleted, 1 shared") != NULL, "%s", r.out);
    cr_expect(strstr(r.out, "0 throttled") != NULL, "%s", r.out);
    run_result_free(&r);

    json_t *imgs = state_images(&E);
    json_t *a = find_image(imgs, "web-a"), *b = find_image(imgs, "web-b");
    cr_assert(a && b);
    cr_expect_str_eq(jstr(a, "status"), "1");
    cr_expect_str_eq(jstr(b, "status"), "1");
    cr_expect(!image_shared(a));
    cr_expect(image_shared(b));
    cr_expect_str_eq(
        json_string_value(json_object_get(json_object_get(a, "tags"), "imgrecon/owner")), "team-a");
    json_decref(imgs);

    json_t *j = journal_lines(&E);
    cr_expect_eq(count_calls(j, 0, "CreateCustomImage", NULL), 2);
    cr_expect_eq(count_calls(j, 0, "ModifyImageShareStatus", NULL), 1);
    json_decref(j);
    assert_journal_rules(&E);

    r = RUN(&E, "plan", "-f", E.manifest, "--detailed-exitcode");
    cr_expect_eq(r.status, 0, "plan after apply: exit %d\n%s", r.status, r.out);
    run_result_free(&r);
    expect_idempotent();
}

Test(apply, share_toggle_and_unshare)
{
    write_fixture(&E, 1,
                  FIX("m-toshare0000000001", "web-a", "1", "false", OWNED)
                      FIX("m-tounshare00000001", "web-b", "1", "true", OWNED),
                  NULL);
    start_emu(&E, "300ms", NULL);
    write_file(E.manifest, "region: cn-hangzhou\ncustom_images:\n" IMG(
                               "web-a", "    share_to_ecs: true\n") IMG("web-b", ""));
    run_result r = RUN(&E, "apply", "-f", E.manifest, "--auto-approve");
    expect_ok(&r, "apply");
    run_result_free(&r);
    json_t *imgs = state_images(&E);
    cr_expect(image_shared(find_image(imgs, "web-a")));
    cr_expect(!image_shared(find_image(imgs, "web-b")));
    json_decref(imgs);
    json_t *j = journal_lines(&E);
    cr_expect_eq(count_calls(j, 0, "CreateCustomImage", "*"), 0);
    cr_expect_eq(count_calls(j, 0, "DeleteCustomImage", "*"), 0);
    cr_expect_eq(count_calls(j, 0, "ModifyImageShareStatus", NULL), 2);
    json_decref(j);
    assert_journal_rules(&E);
    expect_idempotent();
}

/* Share status is read back every cycle: an image shared by apply and unshared behind
 * imgrecon's back is shared again by the next apply, twice over. The repeat share must go out
 * under a fresh ClientToken, because the cloud answers a token it has seen with the first
 * result and does nothing. */
Test(apply, share_drift_is_repaired_every_time)
{
    write_fixture(&E, 1, FIX("m-drift00000000001", "web-a", "1", "false", OWNED), NULL);
    start_emu(&E, "300ms", NULL);
    write_file(E.manifest,
               "region: cn-hangzhou\ncustom_images:\n" IMG("web-a", "    share_to_ecs: true\n"));
    char api_state[160];
    snprintf(api_state, sizeof(api_state), "%s/api-state", E.dir);
    for (int round = 0; round < 3; round++) {
        run_result r = RUN(&E, "apply", "-f", E.manifest, "--auto-approve");
        expect_ok(&r, "apply");
        cr_expect(strstr(r.out, "1 shared") != NULL, "round %d:\n%s", round, r.out);
        run_result_free(&r);
        json_t *imgs = state_images(&E);
        cr_expect(image_shared(find_image(imgs, "web-a")), "round %d: shared again", round);
        json_decref(imgs);
        /* Someone unshares it with a separate signed call. */
        r = RUN(&E, "api", "--state-dir", api_state, "swas", "ModifyImageShareStatus",
                "RegionId=cn-hangzhou", "ImageId=m-drift00000000001", "Operation=UnShare");
        cr_assert_eq(r.status, 0, "unshare behind the back: %s", r.out);
        run_result_free(&r);
    }
    json_t *j = journal_lines(&E);
    /* Three shares by apply, three unshares by hand, each a distinct token and a real change. */
    cr_expect_eq(count_calls(j, 0, "ModifyImageShareStatus", NULL), 6);
    const char *tokens[8];
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(j); i++) {
        json_t *l = json_array_get(j, i);
        const char *op = jparam(l, "Operation");
        if (op == NULL || strcmp(op, "Share") != 0)
            continue;
        const char *t = jparam(l, "ClientToken");
        cr_assert_not_null(t, "apply's share carries a ClientToken");
        for (size_t k = 0; k < n; k++)
            cr_expect_str_neq(tokens[k], t, "a share token was reused");
        if (n < 8)
            tokens[n++] = t;
    }
    cr_expect_eq(n, 3);
    json_decref(j);
    assert_journal_rules(&E);
}

/* The configured quota (15) is higher than the region's real one (1 server: 3 images). The
 * first refused create teaches the real quota; from then on plan shows the shortfall and no
 * create is sent into a full region again. */
Test(apply, quota_is_learned_from_a_refused_create)
{
    write_fixture(&E, 1,
                  FIX("m-foreign000000001", "foreign-1", "1", "false", "{}")
                      FIX("m-foreign000000002", "foreign-2", "1", "false", "{}"),
                  NULL);
    start_emu(&E, "300ms", NULL);
    write_file(E.manifest,
               "region: cn-hangzhou\ncustom_images:\n" IMG("web-a", "") IMG("web-b", ""));
    run_result r = RUN(&E, "apply", "-f", E.manifest, "--auto-approve");
    cr_expect_eq(r.status, 1, "one create must be refused: exit %d\n%s", r.status, r.out);
    cr_expect(strstr(r.out, "CustomImageQuotaLimit") != NULL, "%s", r.out);
    /* The summary is the last line and does not call a failed apply complete. */
    static const char want[] =
        "\nApply incomplete: 1 created, 0 deleted, 0 shared; 1 step failed. API calls: ";
    const char *last = strstr(r.out, "\nApply ");
    cr_expect(last != NULL && strncmp(last, want, strlen(want)) == 0, "summary line:\n%s", r.out);
    cr_expect(last != NULL && strchr(last + 1, '\n') == last + strlen(last) - 1,
              "the summary is the last line:\n%s", r.out);
    cr_expect(strstr(r.out, "Apply complete") == NULL, "%s", r.out);
    run_result_free(&r);

    r = RUN(&E, "plan", "-f", E.manifest);
    cr_expect_eq(r.status, 0, "plan: exit %d\n%s", r.status, r.out);
    cr_expect(strstr(r.out, "quota of 3") != NULL, "plan names the learned quota:\n%s", r.out);
    run_result_free(&r);

    r = RUN(&E, "apply", "-f", E.manifest, "--auto-approve");
    run_result_free(&r);
    json_t *j = journal_lines(&E);
    cr_expect_eq(count_calls(j, 0, "CreateCustomImage", "CustomImageQuotaLimit"), 1,
                 "no second create into the full region");
    cr_expect_eq(count_calls(j, 0, "CreateCustomImage", NULL), 1);
    json_decref(j);
    json_t *imgs = state_images(&E);
    cr_expect_eq(json_array_size(imgs), 3);
    json_decref(imgs);
}

Test(apply, replace_on_instance_change_and_protected_refused)
{
    write_fixture(&E, 2,
                  FIX("m-replace0000000001", "web-a", "1", "true", OWNED)
                      FIX("m-protect0000000001", "web-p", "1", "false",
                          "{imgrecon/owner: team-a, imgrecon/protect: \"true\"}"),
                  NULL);
    start_emu(&E, "300ms", NULL);
    /* Both move to server 1: web-a is replaced (unshare, delete, create, share); web-p is
     * protected and stays. */
    write_file(E.manifest,
               "region: cn-hangzhou\ncustom_images:\n"
               "  - name: web-a\n    instance_id: " SRV1 "\n    system_snapshot_id: s-sys-01\n"
               "    share_to_ecs: true\n"
               "  - name: web-p\n    instance_id: " SRV1 "\n    system_snapshot_id: s-sys-01\n"
               "    protect: true\n");
    run_result r = RUN(&E, "plan", "-f", E.manifest);
    expect_ok(&r, "plan");
    cr_expect(strstr(r.out, "-/+") != NULL, "replace shown:\n%s", r.out);
    cr_expect(strstr(r.out, "protect") != NULL, "refusal shown:\n%s", r.out);
    run_result_free(&r);
    r = RUN(&E, "apply", "-f", E.manifest, "--auto-approve");
    expect_ok(&r, "apply");
    run_result_free(&r);
    json_t *imgs = state_images(&E);
    json_t *a = find_image(imgs, "web-a"), *p = find_image(imgs, "web-p");
    cr_assert(a && p);
    cr_expect_str_neq(jstr(a, "image_id"), "m-replace0000000001");
    cr_expect_str_eq(jstr(a, "instance_id"), SRV1);
    cr_expect(image_shared(a));
    cr_expect_str_eq(jstr(p, "image_id"), "m-protect0000000001");
    json_decref(imgs);
    json_t *j = journal_lines(&E);
    cr_expect_eq(count_calls(j, 0, "DeleteCustomImage", NULL), 1);
    cr_expect_eq(count_calls(j, 0, "CreateCustomImage", NULL), 1);
    json_decref(j);
    assert_journal_rules(&E);
}

Test(apply, prune_off_on_and_unmanaged_untouched)
{
    write_fixture(&E, 2,
                  FIX("m-keep000000000001", "web-a", "1", "false", OWNED)
                      FIX("m-orphan0000000001", "old-1", "1", "true", OWNED)
                          FIX("m-foreign000000001", "foreign", "1", "false", "{team: x}"),
                  NULL);
    start_emu(&E, "300ms", NULL);
    write_file(E.manifest, "region: cn-hangzhou\ncustom_images:\n" IMG("web-a", ""));
    /* prune off (default): nothing to do, the orphan and the foreign image are reported. */
    run_result r = RUN(&E, "plan", "-f", E.manifest, "--detailed-exitcode");
    cr_expect_eq(r.status, 0, "prune off: exit %d\n%s", r.status, r.out);
    cr_expect(strstr(r.out, "foreign") != NULL, "unmanaged reported:\n%s", r.out);
    run_result_free(&r);

    write_file(E.config, "owner: team-a\nprune: true\n");
    r = RUN(&E, "apply", "-f", E.manifest, "--auto-approve");
    expect_ok(&r, "apply with prune");
    run_result_free(&r);
    json_t *imgs = state_images(&E);
    cr_expect_not_null(find_image(imgs, "web-a"));
    cr_expect_null(find_image(imgs, "old-1"), "owned orphan pruned");
    cr_expect_not_null(find_image(imgs, "foreign"), "unmanaged image untouched");
    json_decref(imgs);
    json_t *j = journal_lines(&E);
    cr_expect_eq(count_calls(j, 0, "ModifyImageShareStatus", NULL), 1, "unshared first");
    cr_expect_eq(count_calls(j, 0, "DeleteCustomImage", NULL), 1);
    json_decref(j);
    assert_journal_rules(&E);
    expect_idempotent();
}

Test(apply, prune_guards_allow_empty_and_max_deletes)
{
    write_fixture(&E, 3,
                  FIX("m-orphan0000000001", "old-1", "1", "false", OWNED)
                      FIX("m-orphan0000000002", "old-2", "1", "false", OWNED)
                          FIX("m-orphan0000000003", "old-3", "1", "false", OWNED),
                  NULL);
    start_emu(&E, "300ms", NULL);
    /* An empty desired set for the region: refused without allow_empty. */
    write_file(E.manifest, "region: cn-hangzhou\ncustom_images: []\n");
    write_file(E.config, "owner: team-a\nprune: true\n");
    run_result r = RUN(&E, "apply", "-f", E.manifest, "--auto-approve");
    cr_expect_eq(r.status, 1, "a refused prune is not a success:\n%s", r.out);
    cr_expect(strstr(r.out, "prune refused: cn-hangzhou: no custom image is declared") != NULL,
              "guard named:\n%s", r.out);
    run_result_free(&r);
    json_t *imgs = state_images(&E);
    cr_expect_eq(json_array_size(imgs), 3, "nothing deleted by the empty set");
    json_decref(imgs);

    /* max_deletes 2 < 3 deletes: refused too. */
    write_file(E.config, "owner: team-a\nprune: true\nallow_empty: true\nmax_deletes: 2\n");
    r = RUN(&E, "apply", "-f", E.manifest, "--auto-approve");
    cr_expect_eq(r.status, 1, "%s", r.out);
    cr_expect(strstr(r.out, "prune refused: 3 prune deletes exceed max_deletes (2)") != NULL,
              "guard named:\n%s", r.out);
    run_result_free(&r);
    imgs = state_images(&E);
    cr_expect_eq(json_array_size(imgs), 3, "nothing deleted over max_deletes");
    json_decref(imgs);

    write_file(E.config, "owner: team-a\nprune: true\nallow_empty: true\nmax_deletes: 3\n");
    r = RUN(&E, "apply", "-f", E.manifest, "--auto-approve");
    expect_ok(&r, "apply within the guards");
    run_result_free(&r);
    imgs = state_images(&E);
    cr_expect_eq(json_array_size(imgs), 0);
    json_decref(imgs);
    assert_journal_rules(&E);
}

Test(apply, failed_status3_replaced_and_ecs_delete_force)
{
    write_fixture(&E, 1, FIX("m-failed0000000001", "web-a", "3", "false", OWNED),
                  "      - image_id: m-ecs0000000000001\n        name: old-ecs\n"
                  "        status: Available\n        used_by_instances: 1\n");
    start_emu(&E, "300ms", NULL);
    write_file(E.manifest, "region: cn-hangzhou\ncustom_images:\n" IMG(
                               "web-a", "") "ecs_images:\n  - image_id: m-ecs0000000000001\n"
                                            "    ensure: absent\n    force: true\n");
    run_result r = RUN(&E, "apply", "-f", E.manifest, "--auto-approve");
    expect_ok(&r, "apply");
    run_result_free(&r);
    json_t *imgs = state_images(&E);
    json_t *a = find_image(imgs, "web-a");
    cr_assert_not_null(a);
    cr_expect_str_eq(jstr(a, "status"), "1");
    cr_expect_str_neq(jstr(a, "image_id"), "m-failed0000000001");
    json_decref(imgs);
    json_t *j = journal_lines(&E);
    cr_expect_eq(count_calls(j, 0, "DeleteImage", NULL), 1);
    for (size_t i = 0; i < json_array_size(j); i++) {
        json_t *l = json_array_get(j, i);
        if (strcmp(jstr(l, "action"), "DeleteImage") == 0)
            cr_expect_str_eq(jparam(l, "Force"), "true");
    }
    json_decref(j);
    assert_journal_rules(&E);
    expect_idempotent();
}

Test(apply, quota_full_deletes_before_creates)
{
    /* One server: quota 3, full with three owned images (two shared) to retire. */
    write_fixture(&E, 1,
                  FIX("m-retire0000000001", "old-1", "1", "true", OWNED)
                      FIX("m-retire0000000002", "old-2", "1", "true", OWNED)
                          FIX("m-retire0000000003", "old-3", "1", "false", OWNED),
                  NULL);
    start_emu(&E, "300ms", NULL);
    write_file(E.config, "owner: team-a\nprune: true\nquotas: {default: 3}\n");
    write_file(E.manifest,
               "region: cn-hangzhou\ncustom_images:\n" IMG("new-1", "    share_to_ecs: true\n")
                   IMG("new-2", "") IMG("new-3", "    share_to_ecs: true\n"));
    run_result r = RUN(&E, "apply", "-f", E.manifest, "--auto-approve");
    expect_ok(&r, "apply");
    run_result_free(&r);
    json_t *imgs = state_images(&E);
    cr_expect_eq(json_array_size(imgs), 3);
    cr_expect(image_shared(find_image(imgs, "new-1")));
    cr_expect(!image_shared(find_image(imgs, "new-2")));
    cr_expect(image_shared(find_image(imgs, "new-3")));
    json_decref(imgs);
    assert_journal_rules(&E);
    expect_idempotent();
}

/* Whether the emulator's journal has a throttled DeleteCustomImage: test_file_await's condition
 * below (ud unused). */
static bool delete_throttled(void *ud)
{
    (void)ud;
    json_t *j = journal_lines(&E);
    bool seen = count_calls(j, 0, "DeleteCustomImage", "Throttling") > 0;
    json_decref(j);
    return seen;
}

Test(apply, custom_image_in_share_when_the_world_changes)
{
    write_fixture(&E, 1, FIX("m-orphan0000000001", "old-1", "1", "false", OWNED), NULL);
    start_emu(&E, "300ms", NULL);
    write_file(E.config, "owner: team-a\nprune: true\nallow_empty: true\n");
    write_file(E.manifest, "region: cn-hangzhou\ncustom_images: []\n");
    /* The first delete is throttled (cooling DeleteCustomImage down for 5 s); meanwhile
     * someone shares the image, so the retried delete meets CustomImageInShare. */
    cr_assert_eq(emu_proc_add_fault(&E.emu, "{\"action\":\"DeleteCustomImage\","
                                            "\"kind\":\"Throttling\",\"count\":1}"),
                 0);
    char outpath[160];
    snprintf(outpath, sizeof(outpath), "%s/apply-inshare.txt", E.dir);
    pid_t pid =
        spawn_imgrecon(&E, outpath,
                       (const char *const[]){"apply", "-f", E.manifest, "--auto-approve",
                                             "--rate-limit", "DeleteCustomImage=1/5s", NULL});
    /* Wait (bounded, on journal writes) for the throttled delete. */
    cr_assert(test_file_await(E.emu.journal, IN_MODIFY, 30000, delete_throttled, NULL),
              "the throttled delete never came");
    /* Share it behind imgrecon's back with a separate, signed `imgrecon api` call. */
    char api_state[160];
    snprintf(api_state, sizeof(api_state), "%s/api-state", E.dir);
    run_result s = RUN(&E, "api", "--state-dir", api_state, "swas", "ModifyImageShareStatus",
                       "RegionId=cn-hangzhou", "ImageId=m-orphan0000000001", "Operation=Share");
    cr_assert_eq(s.status, 0, "share behind the back: %s", s.out);
    run_result_free(&s);

    int status = wait_child(pid, RUN_TIMEOUT_MS);
    char *out = read_file(outpath);
    cr_expect_eq(status, 0, "apply: %s", out);
    /* The inserted unshare is shown and counted as the unshare it is, not as a third start of
     * the delete. */
    cr_expect(strstr(out, "unshare swas.cn-hangzhou.custom_image.old-1: started") != NULL, "%s",
              out);
    cr_expect(strstr(out, "unshare swas.cn-hangzhou.custom_image.old-1: done") != NULL, "%s", out);
    cr_expect(strstr(out, "1 deleted, 0 shared, 1 unshared") != NULL, "%s", out);
    size_t starts = 0;
    for (const char *p = out; (p = strstr(p, "delete swas.cn-hangzhou.custom_image.old-1: "
                                             "started")) != NULL;
         p++)
        starts++;
    cr_expect_eq(starts, 2, "the delete, then the delete after the unshare:\n%s", out);
    free(out);
    json_t *imgs = state_images(&E);
    cr_expect_eq(json_array_size(imgs), 0, "the image is gone");
    json_decref(imgs);
    json_t *j = journal_lines(&E);
    cr_expect_eq(count_calls(j, 0, "DeleteCustomImage", "CustomImageInShare"), 1);
    cr_expect_eq(count_calls(j, 0, "DeleteCustomImage", NULL), 1);
    json_decref(j);
    assert_journal_rules(&E);
}

Test(apply, plan_exit_codes_and_broken_manifest)
{
    write_fixture(&E, 1, NULL, NULL);
    start_emu(&E, "300ms", NULL);
    write_file(E.manifest, "region: cn-hangzhou\ncustom_images:\n  - name: x\n    bogus: 1\n");
    run_result r = RUN(&E, "plan", "-f", E.manifest, "--detailed-exitcode");
    cr_expect_eq(r.status, 1, "broken manifest: exit %d\n%s", r.status, r.out);
    cr_expect(strstr(r.out, "images.yaml:") != NULL, "position given:\n%s", r.out);
    run_result_free(&r);
    json_t *j = journal_lines(&E);
    cr_expect_eq(json_array_size(j), 0, "no API call for a broken manifest");
    json_decref(j);

    write_file(E.manifest, "region: cn-hangzhou\ncustom_images: []\n");
    r = RUN(&E, "plan", "-f", E.manifest, "--detailed-exitcode", "--json");
    cr_expect_eq(r.status, 0, "no changes: exit %d\n%s", r.status, r.out);
    json_error_t jerr;
    json_t *doc = json_loads(r.out, 0, &jerr);
    cr_expect_not_null(doc, "JSON output: %s\n%s", jerr.text, r.out);
    cr_expect(json_is_string(json_object_get(doc, "format_version")));
    json_decref(doc);
    run_result_free(&r);

    r = RUN(&E, "apply", "-f", E.manifest);
    cr_expect_eq(r.status, 0, "apply without changes needs no confirmation: %s", r.out);
    run_result_free(&r);
    write_file(E.manifest, "region: cn-hangzhou\ncustom_images:\n" IMG("web-a", ""));
    r = RUN(&E, "apply", "-f", E.manifest);
    cr_expect_eq(r.status, 1, "apply without a terminal and --auto-approve: %s", r.out);
    cr_expect(strstr(r.out, "--auto-approve") != NULL, "%s", r.out);
    run_result_free(&r);
    j = journal_lines(&E);
    cr_expect_eq(count_calls(j, 0, "CreateCustomImage", "*"), 0, "nothing created unasked");
    json_decref(j);
}

/* The question apply asks before changing anything, when stdin is a terminal. */
#define PROMPT "Do you want to perform these actions? Only 'yes' will be accepted: "

/* Runs `apply -f E.manifest` with stdin on a fresh pty (its output in a file), waits for the
 * prompt, types answer on the terminal and waits for the end. Returns the exit status and the
 * output in *ret_out (caller frees). */
static int answer_prompt(const char *answer, char **ret_out)
{
    static unsigned seq;
    char outpath[160];
    snprintf(outpath, sizeof(outpath), "%s/prompt-%u.txt", E.dir, seq++);
    test_pty pty;
    test_pty_open(&pty);
    pid_t pid = spawn_imgrecon_tty(&E, outpath, pty.slave,
                                   (const char *const[]){"apply", "-f", E.manifest, NULL});
    bool asked = test_proc_await_output(pid, outpath, PROMPT, RUN_TIMEOUT_MS);
    if (asked)
        test_pty_type(&pty, answer);
    int status = wait_child(pid, RUN_TIMEOUT_MS);
    test_pty_close(&pty);
    *ret_out = read_file(outpath);
    cr_assert(asked, "apply on a terminal asks:\n%s", *ret_out);
    return status;
}

/* The prompt on a terminal (stdin a pty, read on apply's loop): anything but "yes" - another
 * word, end of input (^D), ^C (SIGINT) - cancels with nothing sent; "yes" applies. */
/* A journal that cannot be opened (a directory in its place) stops apply before any mutating
 * call, and the message names the state directory and the files to look at. */
Test(apply, an_unwritable_journal_is_named_and_nothing_is_sent)
{
    write_fixture(&E, 1, NULL, NULL);
    start_emu(&E, "300ms", NULL);
    write_file(E.manifest, "region: cn-hangzhou\ncustom_images:\n" IMG("web-a", ""));
    char journal[256];
    snprintf(journal, sizeof(journal), "%s/journal.jsonl", E.state);
    (void)mkdir(E.state, 0700);
    cr_assert_eq(mkdir(journal, 0700), 0);
    run_result r = RUN(&E, "apply", "-f", E.manifest, "--auto-approve");
    cr_expect_eq(r.status, 1, "exit %d\n%s", r.status, r.out);
    cr_expect(strstr(r.out, "journal.jsonl") != NULL, "the file is named:\n%s", r.out);
    cr_expect(strstr(r.out, E.state) != NULL, "the directory is named:\n%s", r.out);
    run_result_free(&r);
    json_t *j = journal_lines(&E);
    cr_expect_eq(count_calls(j, 0, "CreateCustomImage", "*"), 0, "nothing created");
    json_decref(j);
}

Test(apply, the_prompt_on_a_terminal_proceeds_only_on_yes)
{
    write_fixture(&E, 1, NULL, NULL);
    start_emu(&E, "300ms", NULL);
    write_file(E.manifest, "region: cn-hangzhou\ncustom_images:\n" IMG("web-a", ""));
    const char *const refusals[] = {"no\n", "yes please\n", "\x04" /* ^D */, "\x03" /* ^C */};
    for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
        char *out = NULL;
        int status = answer_prompt(refusals[i], &out);
        cr_expect_eq(status, 1, "answer %zu refuses: exit %d\n%s", i, status, out);
        cr_expect(strstr(out, "Apply cancelled.") != NULL, "answer %zu:\n%s", i, out);
        free(out);
    }
    json_t *j = journal_lines(&E);
    cr_expect_eq(count_calls(j, 0, "CreateCustomImage", "*"), 0, "nothing created unasked");
    json_decref(j);
    char *out = NULL;
    int status = answer_prompt("yes\n", &out);
    cr_expect_eq(status, 0, "yes applies: exit %d\n%s", status, out);
    cr_expect(strstr(out, "Apply complete") != NULL, "%s", out);
    free(out);
    json_t *imgs = state_images(&E);
    cr_expect_not_null(find_image(imgs, "web-a"), "web-a created after yes");
    json_decref(imgs);
    assert_journal_rules(&E);
}

Test(apply, saved_plan_and_stale_refusal)
{
    write_fixture(&E, 1, NULL, NULL);
    start_emu(&E, "300ms", NULL);
    char planfile[160];
    snprintf(planfile, sizeof(planfile), "%s/plan.json", E.dir);
    write_file(E.manifest, "region: cn-hangzhou\ncustom_images:\n" IMG("web-a", ""));
    run_result r = RUN(&E, "plan", "-f", E.manifest, "--out", planfile);
    expect_ok(&r, "plan --out");
    run_result_free(&r);

    /* The manifests change: the saved plan is stale. */
    write_file(E.manifest, "region: cn-hangzhou\ncustom_images:\n" IMG("web-b", ""));
    r = RUN(&E, "apply", "-f", E.manifest, "--auto-approve", planfile);
    cr_expect_eq(r.status, 1, "stale plan applied: %s", r.out);
    cr_expect(strstr(r.out, "stale") != NULL, "%s", r.out);
    run_result_free(&r);
    json_t *j = journal_lines(&E);
    cr_expect_eq(count_calls(j, 0, "CreateCustomImage", "*"), 0);
    json_decref(j);

    /* Back to what was planned: the plan applies (a saved plan is the approval). */
    write_file(E.manifest, "region: cn-hangzhou\ncustom_images:\n" IMG("web-a", ""));
    r = RUN(&E, "apply", "-f", E.manifest, "--auto-approve", planfile);
    expect_ok(&r, "apply PLANFILE");
    run_result_free(&r);
    json_t *imgs = state_images(&E);
    cr_expect_not_null(find_image(imgs, "web-a"));
    json_decref(imgs);

    /* The account changed since: stale again. */
    r = RUN(&E, "apply", "-f", E.manifest, "--auto-approve", planfile);
    cr_expect_eq(r.status, 1, "plan made before the account changed: %s", r.out);
    cr_expect(strstr(r.out, "stale") != NULL, "%s", r.out);
    run_result_free(&r);
    assert_journal_rules(&E);
}
