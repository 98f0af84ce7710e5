/* Saved plans do exactly what they showed (reconcile/README.md "Saved plans do exactly what they
 * showed", "One writer per state directory"), against the real emulator: `apply FILE` as plan
 * prints it works with no other flag and executes only the saved steps; settings that widen or
 * narrow the policy are refused; a manifest entry or an image a saved step depends on that
 * changed is refused, naming image and field; unrelated changes do not stale the plan. Also:
 * apply refuses to run while another process holds the state directory's lock, and a journal
 * result that cannot be written stops the next mutating call. */
#include <sys/file.h>

#include "apply_support.h"
#include "rec_lock.h"
#include "rec_setup.h"

#define SRV0 "ace0706b2ac4454d984295a94213ab00"

static env E;
static char planfile[160];

static void setup(void)
{
    env_init(&E);
    snprintf(planfile, sizeof(planfile), "%s/p.plan", E.dir);
}

static void teardown(void)
{
    env_fini(&E);
}

TestSuite(saved_plan, .init = setup, .fini = teardown, .timeout = 300);

#define IMG(name, extra)                                                                           \
    "  - name: " name "\n    instance_id: " SRV0 "\n    system_snapshot_id: s-sys-00\n" extra

#define FIX(id, name, shared, tags)                                                                \
    "      - image_id: " id "\n        name: " name "\n        instance_id: " SRV0                 \
    "\n        system_snapshot_id: s-sys-00\n        status: \"1\"\n        in_share: " shared     \
    "\n        tags: " tags "\n"

#define OWNED "{imgrecon/owner: team-a}"

static bool is_mutating(const char *action)
{
    static const char *const names[] = {"CreateCustomImage",
                                        "ModifyImageShareStatus",
                                        "DeleteCustomImage",
                                        "DeleteCustomImages",
                                        "DeleteImage",
                                        "TagResources",
                                        "UntagResources",
                                        "AddCustomImageShareAccount",
                                        "RemoveCustomImageShareAccount"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(action, names[i]) == 0)
            return true;
    return false;
}

static size_t journal_len(void)
{
    json_t *j = journal_lines(&E);
    size_t n = json_array_size(j);
    json_decref(j);
    return n;
}

static size_t mutating_since(size_t from)
{
    json_t *j = journal_lines(&E);
    size_t n = 0;
    for (size_t i = from; i < json_array_size(j); i++)
        n += is_mutating(jstr(json_array_get(j, i), "action"));
    json_decref(j);
    return n;
}

/* The emulator's successful mutating calls since `from` are exactly the saved plan's steps:
 * the same count per API action (the scenarios here give each tag step its own delta, so none
 * is batched with another), and every ImageId or ResourceId.1 acted on is one a saved step names
 * or one this apply created. */
static void expect_executed_equals_saved(size_t from)
{
    json_error_t jerr;
    json_t *plan = json_load_file(planfile, 0, &jerr);
    cr_assert_not_null(plan, "%s", jerr.text);
    json_t *steps = json_object_get(plan, "steps");
    json_t *j = journal_lines(&E);
    static const char *const apis[] = {"CreateCustomImage",
                                       "ModifyImageShareStatus",
                                       "DeleteCustomImage",
                                       "DeleteImage",
                                       "TagResources",
                                       "UntagResources",
                                       "AddCustomImageShareAccount",
                                       "RemoveCustomImageShareAccount"};
    for (size_t a = 0; a < sizeof(apis) / sizeof(apis[0]); a++) {
        size_t want = 0;
        for (size_t i = 0; i < json_array_size(steps); i++) {
            const char *api = jstr(json_array_get(steps, i), "api_action");
            want += api != NULL && strcmp(api, apis[a]) == 0;
        }
        cr_expect_eq(count_calls(j, from, apis[a], NULL), want, "%s: %zu calls, %zu saved", apis[a],
                     count_calls(j, from, apis[a], NULL), want);
    }
    for (size_t i = from; i < json_array_size(j); i++) {
        json_t *l = json_array_get(j, i);
        const char *id = jparam(l, "ImageId");
        if (id == NULL)
            id = jparam(l, "ResourceId.1");
        if (!is_mutating(jstr(l, "action")) || id == NULL)
            continue;
        bool known = false;
        for (size_t k = 0; k < json_array_size(steps) && !known; k++) {
            const char *sid = jstr(json_array_get(steps, k), "image_id");
            known = sid != NULL && strcmp(sid, id) == 0;
        }
        for (size_t k = from; k < json_array_size(j) && !known; k++) {
            json_t *c = json_array_get(j, k);
            known = strcmp(jstr(c, "action"), "CreateCustomImage") == 0 &&
                    jstr(c, "image_id") != NULL && strcmp(jstr(c, "image_id"), id) == 0;
        }
        cr_expect(known, "%s on %s, which no saved step names", jstr(l, "action"), id);
    }
    json_decref(j);
    json_decref(plan);
}

/* A NULL-terminated list of strings: the arguments of run_raw and api_call, the texts
 * expect_refused and expect_applied look for. */
#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Runs `imgrecon ARGS...` exactly as given (no common test flags) with the key key_id/secret:
 * the environment carries only these credentials, as a user's shell would. */
static run_result run_raw_as(const char *key_id, const char *secret, const char *const *args)
{
    char outpath[160];
    static unsigned seq;
    snprintf(outpath, sizeof(outpath), "%s/raw-%u.txt", E.dir, seq++);
    const char *argv[16];
    size_t n = 0;
    argv[n++] = IMGRECON_BIN;
    for (size_t i = 0; args[i] != NULL && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    char id_env[128], secret_env[128];
    snprintf(id_env, sizeof(id_env), "ALIBABA_CLOUD_ACCESS_KEY_ID=%s", key_id);
    snprintf(secret_env, sizeof(secret_env), "ALIBABA_CLOUD_ACCESS_KEY_SECRET=%s", secret);
    const char *const env_edits[] = {
        id_env,       secret_env, "ALIBABA_CLOUD_SECURITY_TOKEN", "IMGRECON_ENDPOINT",
        "NO_COLOR=1", NULL};
    test_proc_opts o = {.out_path = outpath, .env = env_edits, .cwd = E.dir, .wrap = true};
    pid_t pid = test_proc_spawn(argv, &o);
    run_result r;
    r.status = wait_child(pid, RUN_TIMEOUT_MS);
    r.out = read_file(outpath);
    return r;
}

/* run_raw_as with the demo key, the one the plans here are made with. */
static run_result run_raw(const char *const *args)
{
    return run_raw_as(KEY_ID, KEY_SECRET, args);
}

/* plan --out with the common test flags; returns the printed "imgrecon apply ..." line's
 * argument (malloc'd). */
static char *plan_out(const char *const *extra)
{
    const char *args[16] = {"plan", "-f", E.manifest, "--out", planfile};
    size_t n = 5;
    for (size_t i = 0; extra && extra[i] && n < 15; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    run_result r = run_imgrecon_v(&E, args);
    cr_assert_eq(r.status, 0, "plan --out: %s", r.out);
    const char *hint = strstr(r.out, "    imgrecon apply ");
    cr_assert_not_null(hint, "no apply hint in:\n%s", r.out);
    hint += strlen("    imgrecon apply ");
    char *arg = strndup(hint, strcspn(hint, "\n"));
    run_result_free(&r);
    return arg;
}

/* A signed call behind imgrecon's back (its own state directory) with any number of parameters
 * (NULL-terminated). */
static void api_call(const char *action, const char *const *params)
{
    char api_state[160];
    snprintf(api_state, sizeof(api_state), "%s/api-state", E.dir);
    const char *args[16] = {"api",  "--state-dir", api_state,
                            "swas", action,        "RegionId=cn-hangzhou"};
    size_t n = 6;
    for (size_t i = 0; params[i] != NULL && n < 15; i++)
        args[n++] = params[i];
    args[n] = NULL;
    run_result s = run_imgrecon_v(&E, args);
    cr_assert_eq(s.status, 0, "%s behind the back: %s", action, s.out);
    run_result_free(&s);
}

/* plan --out, for the tests that apply the plan file by its name rather than the printed
 * argument. */
static void save_plan(void)
{
    free(plan_out(NULL));
}

/* r, an apply of the saved plan, was refused: exit 1, each of says in the output, no mutating
 * call since journal line from. Frees r. The end of every staleness and policy check here. */
static void expect_refused(run_result r, size_t from, const char *const *says)
{
    cr_expect_eq(r.status, 1, "%s", r.out);
    for (size_t i = 0; says[i] != NULL; i++)
        cr_expect_not_null(strstr(r.out, says[i]), "%s", r.out);
    run_result_free(&r);
    cr_expect_eq(mutating_since(from), 0, "a refused plan made calls");
}

/* r, an apply of the saved plan, ran it: exit 0, each of says (NULL: nothing) in the output,
 * and the calls since journal line from are exactly the saved steps. Frees r. */
static void expect_applied(run_result r, size_t from, const char *const *says)
{
    cr_expect_eq(r.status, 0, "%s", r.out);
    for (size_t i = 0; says != NULL && says[i] != NULL; i++)
        cr_expect_not_null(strstr(r.out, says[i]), "%s", r.out);
    run_result_free(&r);
    expect_executed_equals_saved(from);
}

/* The world of most scenarios: a declared image to share, an undeclared owned orphan, and a
 * declared image to create. */
static void world(void)
{
    write_fixture(&E, 2,
                  FIX("m-share00000000001", "web-a", "false", OWNED)
                      FIX("m-orphan0000000001", "old-1", "false", OWNED),
                  NULL);
    start_emu(&E, "300ms", NULL);
    write_file(E.manifest, "region: cn-hangzhou\ncustom_images:\n" IMG(
                               "web-a", "    share_to_ecs: true\n") IMG("web-b", ""));
}

Test(saved_plan, apply_as_printed_runs_exactly_the_saved_steps)
{
    world();
    char *arg = plan_out(NULL);
    size_t from = journal_len();
    expect_applied(run_raw(ARGS("apply", arg)), from, NULL);
    free(arg);
    json_t *imgs = state_images(&E);
    cr_expect(image_shared(find_image(imgs, "web-a")));
    cr_expect_not_null(find_image(imgs, "web-b"));
    cr_expect_not_null(find_image(imgs, "old-1"), "prune was off when the plan was made");
    json_decref(imgs);
    assert_journal_rules(&E);
}

/* The hint works as printed through a shell, also for a file name with a space and a quote. */
Test(saved_plan, hint_with_awkward_file_name_works_through_a_shell)
{
    world();
    snprintf(planfile, sizeof(planfile), "%s/it's a plan", E.dir);
    char *arg = plan_out(NULL);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "'%s' apply %s", IMGRECON_BIN, arg);
    free(arg);
    size_t from = journal_len();
    char outpath[160];
    snprintf(outpath, sizeof(outpath), "%s/sh-out.txt", E.dir);
    static const char *const env_edits[] = {"ALIBABA_CLOUD_ACCESS_KEY_ID=" KEY_ID,
                                            "ALIBABA_CLOUD_ACCESS_KEY_SECRET=" KEY_SECRET,
                                            "IMGRECON_ENDPOINT", NULL};
    const char *const argv[] = {"/bin/sh", "-c", cmd, NULL};
    test_proc_opts o = {.out_path = outpath, .env = env_edits, .cwd = E.dir};
    pid_t pid = test_proc_spawn(argv, &o);
    int status = wait_child(pid, RUN_TIMEOUT_MS);
    char *out = read_file(outpath);
    cr_expect_eq(status, 0, "%s\n%s", cmd, out);
    free(out);
    expect_executed_equals_saved(from);
}

/* The reproduced fault: planned with prune off (0 deletes), applied with a config that prunes. */
Test(saved_plan, widened_policy_is_refused)
{
    world();
    save_plan();
    char prune_cfg[160];
    snprintf(prune_cfg, sizeof(prune_cfg), "%s/prune.yaml", E.dir);
    write_file(prune_cfg, "owner: team-a\nprune: true\nallow_empty: true\n");
    size_t from = journal_len();
    expect_refused(run_raw(ARGS("apply", "-c", prune_cfg, planfile)), from,
                   ARGS("prune: the saved plan was made with false"));
    /* The same through the flags common to every test (-c with max_deletes changed). */
    write_file(E.config, "owner: team-a\nmax_deletes: 9\n");
    expect_refused(RUN(&E, "apply", planfile), from, ARGS("max_deletes"));
}

Test(saved_plan, narrowed_policy_is_refused_and_the_saved_one_applies)
{
    world();
    write_file(E.config, "owner: team-a\nprune: true\nallow_empty: true\n");
    save_plan();
    /* Narrowed: prune off now. */
    write_file(E.config, "owner: team-a\n");
    size_t from = journal_len();
    expect_refused(RUN(&E, "apply", planfile), from, ARGS("prune"));
    /* Another owner is refused too. */
    write_file(E.config, "owner: team-b\nprune: true\nallow_empty: true\n");
    expect_refused(RUN(&E, "apply", planfile), from, ARGS("owner"));
    /* The saved settings again: the prune delete that was shown runs. */
    write_file(E.config, "owner: team-a\nprune: true\nallow_empty: true\n");
    expect_applied(RUN(&E, "apply", planfile), from, NULL);
    json_t *imgs = state_images(&E);
    cr_expect_null(find_image(imgs, "old-1"));
    json_decref(imgs);
}

/* The policy matrix: a plan made with allow_empty as a list, config regions and account_id is
 * refused (so is one given previous_owners it was not made with) when apply is given other settings
 * (config or --allow-empty), naming the field, with no mutating call; the same settings (the list
 * given again as a flag, in another order) run exactly the saved steps. */
Test(saved_plan, policy_matrix_allow_empty_regions_account)
{
    static const char made[] =
        "owner: team-a\nprune: true\nallow_empty: [cn-hangzhou, cn-beijing]\n"
        "regions: [cn-beijing]\naccount_id: '1234567890'\n";
    static const struct {
        const char *config; /* NULL: the one the plan was made with */
        const char *flag;   /* --allow-empty; NULL: none */
        const char *field;
    } rows[] = {
        {"owner: team-a\nprune: true\nallow_empty: true\nregions: [cn-beijing]\n"
         "account_id: '1234567890'\n",
         NULL, "allow_empty: the saved plan was made with [cn-beijing, cn-hangzhou]"},
        {NULL, "true",
         "allow_empty: the saved plan was made with [cn-beijing, cn-hangzhou], the "
         "settings given now say true"},
        {NULL, "cn-hangzhou", "allow_empty:"},
        {"owner: team-a\nprune: true\nallow_empty: [cn-hangzhou, cn-beijing]\nregions: all\n"
         "account_id: '1234567890'\n",
         NULL,
         "regions: the saved plan was made with [cn-beijing], the settings given now say all"},
        {"owner: team-a\nprune: true\nallow_empty: [cn-hangzhou, cn-beijing]\n"
         "account_id: '1234567890'\n",
         NULL, "regions:"},
        {"owner: team-a\nprune: true\nallow_empty: [cn-hangzhou, cn-beijing]\n"
         "regions: [cn-beijing]\naccount_id: '1234567891'\n",
         NULL, "account_id: the saved plan was made with '1234567890'"},
        {"owner: team-a\nprune: true\nallow_empty: [cn-hangzhou, cn-beijing]\n"
         "regions: [cn-beijing]\naccount_id: '1234567890'\nprevious_owners: [team-old]\n",
         NULL,
         "previous_owners: the saved plan was made with [], the settings given now say "
         "[team-old]"},
    };
    world();
    write_file(E.config, made);
    save_plan();
    size_t from = journal_len();
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        write_file(E.config, rows[i].config ? rows[i].config : made);
        run_result r = rows[i].flag ? RUN(&E, "apply", "--allow-empty", rows[i].flag, planfile)
                                    : RUN(&E, "apply", planfile);
        cr_expect_eq(r.status, 1, "row %zu: %s", i, r.out);
        cr_expect_not_null(strstr(r.out, rows[i].field), "row %zu: %s", i, r.out);
        run_result_free(&r);
    }
    cr_expect_eq(mutating_since(from), 0, "a refused plan made calls");
    write_file(E.config, made);
    expect_applied(RUN(&E, "apply", "--allow-empty", "cn-beijing,cn-hangzhou", planfile), from,
                   NULL);
    json_t *imgs = state_images(&E);
    cr_expect_null(find_image(imgs, "old-1"), "the prune delete the plan showed did not run");
    json_decref(imgs);
}

Test(saved_plan, edited_manifest_entry_is_refused_unrelated_entry_is_not_run)
{
    world();
    save_plan();
    /* The entry a saved step comes from changes: refused, naming it. */
    write_file(E.manifest,
               "region: cn-hangzhou\ncustom_images:\n" IMG("web-a", "    share_to_ecs: true\n")
                   IMG("web-b", "    description: changed\n"));
    size_t from = journal_len();
    expect_refused(run_raw(ARGS("apply", planfile)), from, ARGS("web-b", "description"));
    /* Back, plus an unrelated new entry: the saved steps run, the new entry does not. */
    write_file(E.manifest,
               "region: cn-hangzhou\ncustom_images:\n" IMG("web-a", "    share_to_ecs: true\n")
                   IMG("web-b", "") IMG("web-z", ""));
    expect_applied(run_raw(ARGS("apply", planfile)), from, ARGS("not in the saved plan"));
    json_t *imgs = state_images(&E);
    cr_expect_null(find_image(imgs, "web-z"), "a step that was never shown ran");
    json_decref(imgs);
}

Test(saved_plan, unmanaged_image_appearing_does_not_stale_the_plan)
{
    world();
    char *arg = plan_out(NULL);
    api_call("CreateCustomImage",
             ARGS("InstanceId=" SRV0, "ImageName=someone-else", "SystemSnapshotId=s-sys-00"));
    size_t from = journal_len();
    expect_applied(run_raw(ARGS("apply", arg)), from, NULL);
    free(arg);
    json_t *imgs = state_images(&E);
    cr_expect_not_null(find_image(imgs, "someone-else"));
    json_decref(imgs);
}

Test(saved_plan, share_flipped_by_hand_is_refused_naming_image_and_field)
{
    world();
    char *arg = plan_out(NULL);
    api_call("ModifyImageShareStatus",
             ARGS("ImageId=m-share00000000001", "Operation=Share", "ClientToken=by-hand-1"));
    size_t from = journal_len();
    expect_refused(run_raw(ARGS("apply", arg)), from,
                   ARGS("m-share00000000001", "in_share changed from false to true"));
    free(arg);
}

Test(saved_plan, image_deleted_by_hand_is_refused)
{
    world();
    write_file(E.config, "owner: team-a\nprune: true\nallow_empty: true\n");
    char *arg = plan_out(NULL);
    api_call("DeleteCustomImage", ARGS("ImageId=m-orphan0000000001", "ClientToken=by-hand-2"));
    size_t from = journal_len();
    expect_refused(run_raw(ARGS("apply", arg)), from,
                   ARGS("m-orphan0000000001", "no longer exists"));
    free(arg);
}

Test(saved_plan, apply_refused_while_another_process_holds_the_lock)
{
    world();
    cr_assert_eq(rec_mkdir_p(E.state), 0);
    rec_lock *lock = NULL;
    cr_assert_eq(rec_lock_acquire(E.state, &lock, NULL), 0);
    size_t from = journal_len();
    run_result r = RUN(&E, "apply", "-f", E.manifest, "--auto-approve");
    cr_expect_eq(r.status, 1, "%s", r.out);
    char pid[32];
    snprintf(pid, sizeof(pid), "pid %ld", (long)getpid());
    cr_expect_not_null(strstr(r.out, pid), "holder's pid named:\n%s", r.out);
    run_result_free(&r);
    cr_expect_eq(mutating_since(from), 0);
    rec_lock_release(lock);
    r = RUN(&E, "apply", "-f", E.manifest, "--auto-approve");
    cr_expect_eq(r.status, 0, "%s", r.out);
    run_result_free(&r);
}

/* Whether the journal at path (a char *) has the unshare's intent line: test_file_await's
 * condition below. */
static bool has_unshare_intent(void *path)
{
    char *text = read_file(path);
    bool seen = strstr(text, "\"intent\"") != NULL && strstr(text, "ModifyImageShareStatus");
    free(text);
    return seen;
}

/* The unshare before a prune delete is held by the emulator; meanwhile the journal's name is
 * made unusable (a symlink), so the unshare's result cannot be written: the delete, which
 * depends on it, must not be sent. */
Test(saved_plan, failed_result_write_stops_the_next_mutating_call)
{
    write_fixture(&E, 1, FIX("m-orphan0000000001", "old-1", "true", OWNED), NULL);
    start_emu(&E, "300ms", NULL);
    write_file(E.config, "owner: team-a\nprune: true\nallow_empty: true\n");
    write_file(E.manifest, "region: cn-hangzhou\ncustom_images: []\n");
    cr_assert_eq(emu_proc_add_fault(&E.emu, "{\"action\":\"ModifyImageShareStatus\","
                                            "\"kind\":\"delay\",\"delay_ms\":1500}"),
                 0);
    cr_assert_eq(rec_mkdir_p(E.state), 0);
    char outpath[160], jpath[160], lpath[160], victim[160];
    snprintf(outpath, sizeof(outpath), "%s/apply-journal.txt", E.dir);
    snprintf(jpath, sizeof(jpath), "%s/journal.jsonl", E.state);
    snprintf(lpath, sizeof(lpath), "%s/journal.link", E.state);
    snprintf(victim, sizeof(victim), "%s/victim", E.dir);
    write_file(victim, "untouched\n");
    pid_t pid = spawn_imgrecon(
        &E, outpath, (const char *const[]){"apply", "-f", E.manifest, "--auto-approve", NULL});
    /* Wait (bounded, on writes in the state directory) for the unshare's intent line. */
    cr_assert(test_file_await(E.state, IN_MODIFY | IN_CREATE, 30000, has_unshare_intent, jpath),
              "the unshare's intent never came");
    cr_assert_eq(symlink(victim, lpath), 0);
    cr_assert_eq(rename(lpath, jpath), 0);
    int status = wait_child(pid, RUN_TIMEOUT_MS);
    char *out = read_file(outpath);
    cr_expect_eq(status, 1, "apply: %s", out);
    cr_expect_not_null(strstr(out, "journal"), "%s", out);
    free(out);
    json_t *j = journal_lines(&E);
    cr_expect_eq(count_calls(j, 0, "ModifyImageShareStatus", NULL), 1);
    cr_expect_eq(count_calls(j, 0, "DeleteCustomImage", "*"), 0, "a call after a lost result");
    json_decref(j);
    char *v = read_file(victim);
    cr_expect_str_eq(v, "untouched\n");
    free(v);
}

/* The reproduced attack at the CLI: a state directory open to others is refused with the fix;
 * once it is safe, a planted journal.jsonl.tmp link is not followed when apply compacts the
 * journal, and a journal.jsonl link makes apply fail before any change. */
Test(saved_plan, unsafe_state_dir_refused_and_planted_links_not_followed)
{
    world();
    cr_assert_eq(mkdir(E.state, 0700), 0);
    cr_assert_eq(chmod(E.state, 0777), 0);
    run_result r = RUN(&E, "apply", "-f", E.manifest, "--auto-approve");
    cr_expect_eq(r.status, 1, "%s", r.out);
    cr_expect_not_null(strstr(r.out, "chmod go-w"), "%s", r.out);
    run_result_free(&r);
    cr_expect_eq(journal_len(), 0, "no call from an unsafe state directory");
    cr_assert_eq(chmod(E.state, 0700), 0);

    char victim[160], link[160], jpath[160];
    snprintf(victim, sizeof(victim), "%s/victim", E.dir);
    snprintf(link, sizeof(link), "%s/journal.jsonl.tmp", E.state);
    snprintf(jpath, sizeof(jpath), "%s/journal.jsonl", E.state);
    write_file(victim, "untouched\n");
    cr_assert_eq(symlink(victim, link), 0);
    /* 30 old cycles: more than the 20 kept, so this apply compacts. */
    FILE *f = fopen(jpath, "w");
    cr_assert_not_null(f);
    for (int i = 0; i < 30; i++)
        fprintf(f, "{\"ts_ms\":%d,\"phase\":\"intent\",\"cycle\":\"old-%d\"}\n", 1000 + i, i);
    cr_assert_eq(fclose(f), 0);
    r = RUN(&E, "apply", "-f", E.manifest, "--auto-approve");
    cr_expect_eq(r.status, 0, "%s", r.out);
    run_result_free(&r);
    char *v = read_file(victim);
    cr_expect_str_eq(v, "untouched\n");
    free(v);
    char *jtext = read_file(jpath);
    cr_expect_null(strstr(jtext, "old-0\""), "compacted");
    cr_expect_not_null(strstr(jtext, "CreateCustomImage"), "this apply's lines are there");
    free(jtext);

    cr_assert_eq(unlink(jpath), 0);
    cr_assert_eq(symlink(victim, jpath), 0);
    size_t from = journal_len();
    write_file(E.manifest, "region: cn-hangzhou\ncustom_images:\n" IMG("web-c", ""));
    r = RUN(&E, "apply", "-f", E.manifest, "--auto-approve");
    cr_expect_eq(r.status, 1, "%s", r.out);
    run_result_free(&r);
    cr_expect_eq(mutating_since(from), 0);
    v = read_file(victim);
    cr_expect_str_eq(v, "untouched\n");
    free(v);
}

/* A lock file and the text it holds once the daemon owns it. */
typedef struct lock_names {
    const char *path, *text;
} lock_names;

/* Whether the lock file holds exactly its text (ud: a lock_names): test_file_await's condition
 * below. */
static bool lock_holds(void *ud)
{
    const lock_names *l = ud;
    char *text = read_file(l->path);
    bool locked = strcmp(text, l->text) == 0;
    free(text);
    return locked;
}

/* A running daemon (`imgrecon run`) on the state directory: apply is refused with its pid. */
Test(saved_plan, apply_refused_while_the_daemon_runs)
{
    world();
    write_file(E.config, "owner: team-a\nmetrics_listen: 127.0.0.1:0\n");
    write_file(E.manifest, "region: cn-hangzhou\ncustom_images:\n" IMG("web-a", ""));
    cr_assert_eq(rec_mkdir_p(E.state), 0);
    char outpath[160], lockpath[160], status_path[160];
    snprintf(outpath, sizeof(outpath), "%s/run.txt", E.dir);
    snprintf(lockpath, sizeof(lockpath), "%s/daemon.lock", E.state);
    snprintf(status_path, sizeof(status_path), "%s/status.json", E.state);
    pid_t daemon = spawn_imgrecon(
        &E, outpath, (const char *const[]){"run", "-f", E.manifest, "--interval", "1h", NULL});
    /* Wait (bounded, on writes in the state directory) for the daemon's pid in its lock file. */
    char want[32];
    snprintf(want, sizeof(want), "%ld\n", (long)daemon);
    lock_names want_lock = {lockpath, want};
    cr_assert(test_file_await(E.state, IN_MODIFY | IN_CREATE | IN_CLOSE_WRITE, 30000, lock_holds,
                              &want_lock),
              "the daemon never took the lock");
    run_result r = RUN(&E, "apply", "-f", E.manifest, "--auto-approve");
    cr_expect_eq(r.status, 1, "%s", r.out);
    char pid[32];
    snprintf(pid, sizeof(pid), "pid %ld", (long)daemon);
    cr_expect_not_null(strstr(r.out, pid), "the daemon's pid named:\n%s", r.out);
    run_result_free(&r);
    cr_assert_eq(kill(daemon, SIGTERM), 0);
    int status = wait_child(daemon, RUN_TIMEOUT_MS);
    cr_expect_eq(status, 0, "daemon exit");
}

/* ---- in-place steps (tags, adoption, account shares) ---- */

#define ID_TAGGED "m-tagged0000000001"
#define ID_UNOWNED "m-unowned000000001"
#define ID_ACCTS "m-accounts00000001"

/* A tag edit on an owned image and an adoption of an unowned one: each is one TAG step with its
 * own delta. */
static void tag_world(void)
{
    write_fixture(&E, 1,
                  FIX(ID_TAGGED, "web", "false", "{imgrecon/owner: team-a, team: old}")
                      FIX(ID_UNOWNED, "legacy", "false", "{team: ops}"),
                  NULL);
    start_emu(&E, "300ms", NULL);
    write_file(E.manifest,
               "region: cn-hangzhou\ncustom_images:\n" IMG("web", "    tags: {team: new}\n")
                   IMG("legacy", "    adopt: true\n    tags: {team: ops}\n"));
}

/* The tag of an image in the account (NULL when absent). */
static const char *state_tag(json_t *imgs, const char *name, const char *key)
{
    json_t *v = json_object_get(json_object_get(find_image(imgs, name), "tags"), key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* plan --out with a tag edit and an adoption; apply FILE makes exactly those two tag calls, in
 * place, and the next plan is empty. */
Test(saved_plan, tag_edit_and_adoption_run_exactly_as_saved)
{
    tag_world();
    save_plan();
    size_t from = journal_len();
    expect_applied(run_raw(ARGS("apply", planfile)), from, NULL);
    json_t *j = journal_lines(&E);
    cr_expect_eq(count_calls(j, from, "TagResources", NULL), 2, "the tag edit and the adoption");
    cr_expect_eq(mutating_since(from), 2, "nothing but the two saved tag calls");
    json_decref(j);
    json_t *imgs = state_images(&E);
    cr_expect_str_eq(jstr(find_image(imgs, "web"), "image_id"), ID_TAGGED, "not recreated");
    cr_expect_str_eq(state_tag(imgs, "web", "team"), "new");
    cr_expect_str_eq(jstr(find_image(imgs, "legacy"), "image_id"), ID_UNOWNED);
    cr_expect_str_eq(state_tag(imgs, "legacy", "imgrecon/owner"), "team-a", "adopted");
    json_decref(imgs);
    run_result r = RUN(&E, "plan", "-f", E.manifest, "--detailed-exitcode");
    cr_expect_eq(r.status, 0, "the plan after the saved apply must be empty\n%s", r.out);
    run_result_free(&r);
}

/* The tag a saved step edits is changed by hand between plan and apply: refused, naming the
 * image and the tag, with no mutating call. */
Test(saved_plan, tag_edited_by_hand_is_refused_naming_the_tag)
{
    tag_world();
    save_plan();
    api_call("TagResources", ARGS("ResourceType=customimage", "ResourceId.1=" ID_TAGGED,
                                  "Tag.1.Key=team", "Tag.1.Value=by-hand"));
    size_t from = journal_len();
    expect_refused(run_raw(ARGS("apply", planfile)), from,
                   ARGS(ID_TAGGED, "tags changed from", "team=by-hand"));
    json_t *imgs = state_images(&E);
    cr_expect_str_eq(state_tag(imgs, "web", "team"), "by-hand");
    cr_expect_null(state_tag(imgs, "legacy", "imgrecon/owner"), "the adoption did not run");
    json_decref(imgs);
}

/* A saved plan with account-share steps (add 1111, remove 3333) is refused when the image's
 * account shares change by hand between plan and apply, even in an account no saved step
 * names; without the change it runs exactly the saved steps. */
Test(saved_plan, account_shares_changed_by_hand_are_refused)
{
    write_fixture(&E, 1,
                  FIX(ID_ACCTS, "web", "false", OWNED) "        share_accounts: ['2222', '3333']\n",
                  NULL);
    start_emu(&E, "300ms", NULL);
    write_file(E.manifest, "region: cn-hangzhou\ncustom_images:\n" IMG(
                               "web", "    share_to_accounts: ['1111', '2222']\n"));
    save_plan();
    api_call("AddCustomImageShareAccount", ARGS("ImageId=" ID_ACCTS, "Account.1=4444"));
    size_t from = journal_len();
    expect_refused(
        run_raw(ARGS("apply", planfile)), from,
        ARGS(ID_ACCTS, "share_accounts changed from [2222, 3333] to [2222, 3333, 4444]"));
    /* Back as planned: the saved add and remove run, nothing else. */
    api_call("RemoveCustomImageShareAccount", ARGS("ImageId=" ID_ACCTS, "Account.1=4444"));
    from = journal_len();
    expect_applied(run_raw(ARGS("apply", planfile)), from, NULL);
    cr_expect_eq(mutating_since(from), 2);
    json_t *imgs = state_images(&E);
    json_t *acc = json_object_get(find_image(imgs, "web"), "share_accounts");
    cr_expect_eq(json_array_size(acc), 2, "1111 and 2222");
    json_decref(imgs);
}

/* ---- a saved step's after is what apply sends ---- */

#define SRV1 "ace0706b2ac4454d984295a94213ab01"

/* An owned image shared to 3333 and 9999 whose entry adds 4444, and an entry to create. */
static void after_world(const char *last_account)
{
    char manifest[512];
    snprintf(manifest, sizeof(manifest),
             "region: cn-hangzhou\ncustom_images:\n" IMG(
                 "web", "    share_to_accounts: ['3333', '9999', '%s']\n") IMG("fresh", ""),
             last_account);
    write_file(E.manifest, manifest);
}

/* Changes the after of the first saved step with this action in the plan file: one field set to
 * value, or (field NULL) a tag team=x added, or (field "accounts") account 7777 added. */
static void edit_after(const char *action, const char *field, const char *value)
{
    json_error_t jerr;
    json_t *plan = json_load_file(planfile, 0, &jerr);
    cr_assert_not_null(plan, "%s", jerr.text);
    json_t *steps = json_object_get(plan, "steps"), *after = NULL;
    for (size_t i = 0; i < json_array_size(steps) && after == NULL; i++)
        if (strcmp(jstr(json_array_get(steps, i), "action"), action) == 0)
            after = json_object_get(json_array_get(steps, i), "after");
    cr_assert(json_is_object(after), "no %s step with an after", action);
    if (field == NULL)
        cr_assert_eq(json_object_set_new(json_object_get(after, "tags"), "team", json_string("x")),
                     0);
    else if (strcmp(field, "accounts") == 0)
        cr_assert_eq(
            json_array_append_new(json_object_get(after, "share_accounts"), json_string("7777")),
            0);
    else
        cr_assert_eq(json_object_set_new(after, field, json_string(value)), 0);
    cr_assert_eq(json_dump_file(plan, planfile, JSON_INDENT(2) | JSON_PRESERVE_ORDER), 0);
    json_decref(plan);
}

/* The audit's repro B: an after edited in the plan file (an account added, a create's instance
 * or snapshot changed, a tag added; the client tokens stay valid) is refused, naming the step
 * and the field, with no mutating call; repro A: the manifest's last account replaced after the
 * plan was saved (4444 shown, 5555 asked now) is refused the same way. The unedited plan then
 * runs exactly its steps. */
Test(saved_plan, edited_after_or_changed_accounts_are_refused)
{
    static const struct {
        const char *action, *field, *value, *says;
    } rows[] = {
        {"add_accounts", "accounts", NULL,
         "share_accounts changed from [3333, 4444, 7777, 9999] to [3333, 4444, 9999]"},
        {"create", "instance_id", SRV1, "instance_id changed from " SRV1 " to " SRV0},
        {"create", "system_snapshot_id", "s-sys-01b",
         "system_snapshot_id changed from s-sys-01b to s-sys-00"},
        {"create", NULL, NULL, "tags changed from"},
    };
    write_fixture(&E, 2,
                  FIX(ID_ACCTS, "web", "false", OWNED) "        share_accounts: ['3333', '9999']\n",
                  NULL);
    start_emu(&E, "300ms", NULL);
    after_world("4444");
    save_plan();
    char *saved = read_file(planfile);
    size_t from = journal_len();
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        write_file(planfile, saved);
        edit_after(rows[i].action, rows[i].field, rows[i].value);
        expect_refused(run_raw(ARGS("apply", planfile)), from,
                       ARGS("the saved plan is stale", rows[i].action, rows[i].says));
    }
    write_file(planfile, saved);
    free(saved);
    after_world("5555");
    expect_refused(run_raw(ARGS("apply", planfile)), from,
                   ARGS("the saved plan is stale", "add_accounts", ID_ACCTS,
                        "share_accounts changed from [3333, 4444, 9999] to [3333, 5555, 9999]"));
    json_t *j = journal_lines(&E);
    cr_expect_eq(count_calls(j, from, "AddCustomImageShareAccount", "*"), 0);
    json_decref(j);
    after_world("4444");
    expect_applied(run_raw(ARGS("apply", planfile)), from, NULL);
}

/* ---- a saved plan belongs to the account it was made for ---- */

#define ACCOUNT_1 "1234567890123456"
#define ACCOUNT_2 "2222333344445555"
#define KEY_2_ID "LTAIsecondAccountKey"
#define KEY_2_SECRET "second-account-secret"

/* The audit's repro: a plan made with the demo key (account 1234567890123456) records that
 * account; applied with the key of account 2222333344445555 it is refused, naming both account
 * ids and neither key, with no mutating call; with the demo key it runs exactly its steps. */
Test(saved_plan, plan_applied_with_another_accounts_key_is_refused)
{
    write_file(E.fixture, "accounts:\n"
                          "  - access_key_id: " KEY_ID "\n    access_key_secret: " KEY_SECRET
                          "\n    user_id: " ACCOUNT_1 "\n"
                          "  - access_key_id: " KEY_2_ID "\n    access_key_secret: " KEY_2_SECRET
                          "\n    user_id: " ACCOUNT_2 "\n"
                          "regions:\n  - region: cn-hangzhou\n    servers:\n"
                          "      - instance_id: " SRV0 "\n        name: web-0\n"
                          "        status: Running\n        system_snapshots: [s-sys-00]\n");
    start_emu(&E, "300ms", NULL);
    write_file(E.manifest, "region: cn-hangzhou\ncustom_images:\n" IMG("web-b", ""));
    save_plan();
    json_error_t jerr;
    json_t *plan = json_load_file(planfile, 0, &jerr);
    cr_assert_not_null(plan, "%s", jerr.text);
    cr_expect_str_eq(jstr(json_object_get(plan, "policy"), "caller_account_id"), ACCOUNT_1);
    json_decref(plan);
    size_t from = journal_len();
    run_result r = run_raw_as(KEY_2_ID, KEY_2_SECRET, ARGS("apply", planfile));
    cr_expect_null(strstr(r.out, KEY_2_ID), "a key id in the output: %s", r.out);
    cr_expect_null(strstr(r.out, KEY_2_SECRET), "a secret in the output: %s", r.out);
    expect_refused(r, from,
                   ARGS("the saved plan was made for account " ACCOUNT_1,
                        "these credentials are of account " ACCOUNT_2));
    expect_applied(run_raw(ARGS("apply", planfile)), from, NULL);
}

/* ---- the state directory a saved plan names ---- */

/* Sets policy.state_dir in the plan file to dir. */
static void edit_state_dir(const char *dir)
{
    json_error_t jerr;
    json_t *plan = json_load_file(planfile, 0, &jerr);
    cr_assert_not_null(plan, "%s", jerr.text);
    cr_assert_eq(
        json_object_set_new(json_object_get(plan, "policy"), "state_dir", json_string(dir)), 0);
    cr_assert_eq(json_dump_file(plan, planfile, JSON_INDENT(2) | JSON_PRESERVE_ORDER), 0);
    json_decref(plan);
}

/* The audit's repro: policy.state_dir edited in the plan file made apply lock and use another
 * state directory (so it ran beside the daemon that holds the real one). A directory that does
 * not exist is refused and not created; with a config that names state_dir, another existing
 * directory is refused naming both; neither makes a mutating call, and the unedited plan runs. */
Test(saved_plan, edited_state_dir_is_refused)
{
    world();
    char cfg[256], other[160], missing[160];
    snprintf(cfg, sizeof(cfg), "owner: team-a\nstate_dir: %s\n", E.state);
    write_file(E.config, cfg);
    snprintf(other, sizeof(other), "%s/other-state", E.dir);
    snprintf(missing, sizeof(missing), "%s/no-such-state", E.dir);
    cr_assert_eq(mkdir(other, 0700), 0);
    save_plan();
    char *saved = read_file(planfile);
    size_t from = journal_len();
    edit_state_dir(missing);
    expect_refused(run_raw(ARGS("apply", planfile)), from,
                   ARGS("refusing the saved plan", missing));
    struct stat st;
    cr_expect_neq(stat(missing, &st), 0, "apply created the edited state directory");
    edit_state_dir(other);
    expect_refused(run_raw(ARGS("apply", planfile)), from,
                   ARGS("refusing the saved plan: the config's state_dir", E.state, other));
    char lock[200];
    snprintf(lock, sizeof(lock), "%s/daemon.lock", other);
    cr_expect_neq(stat(lock, &st), 0, "apply locked the edited state directory");
    write_file(planfile, saved);
    free(saved);
    expect_applied(run_raw(ARGS("apply", planfile)), from, NULL);
}
