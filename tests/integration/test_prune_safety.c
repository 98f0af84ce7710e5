/* Prune safety: with `prune: true` and owned images in the emulator, input that is missing,
 * unreadable or wrong never deletes anything. Each case runs `plan --detailed-exitcode`,
 * `apply --auto-approve` and the daemon's `run --once` with the real binary against the real
 * emulator, and checks that each gives a clear error (or a plan with no delete), that the
 * emulator saw no DeleteCustomImage, DeleteImage or unshare, and that every image is still
 * there as it was.
 *
 * Cases: an empty manifest directory (and one holding only an empty file, and one declaring
 * an empty region without allow_empty); an unreadable manifest directory (tests run as root,
 * whom chmod 000 does not stop, so: a file where a directory is expected, a dangling link as
 * the directory, a dangling link as one of its manifests, and chmod 000 with the process
 * dropped to `nobody` when the test runs as root); a manifest with a YAML error next to a good
 * one; a config with the wrong owner. */
#include <grp.h>

#include "apply_support.h"
#include "test_param.h"

#define SRV0 "ace0706b2ac4454d984295a94213ab00"
#define SRV1 "ace0706b2ac4454d984295a94213ab01"

static env E;
static char mdir[160]; /* the manifest directory of a case */

static void setup(void)
{
    env_init(&E);
    snprintf(mdir, sizeof(mdir), "%s/manifests", E.dir);
}

static void teardown(void)
{
    /* Make every path removable again after the chmod 000 cases. */
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "chmod -R u+rwX '%s' 2>/dev/null", E.dir);
    (void)system(cmd);
    env_fini(&E);
}

TestSuite(prune_safety, .init = setup, .fini = teardown, .timeout = 300);

#define FIX(id, name, srv, snap, shared, tags)                                                     \
    "      - image_id: " id "\n        name: " name "\n        instance_id: " srv                  \
    "\n        system_snapshot_id: " snap "\n        status: \"1\"\n        in_share: " shared     \
    "\n        tags: " tags "\n"

#define OWNED "{imgrecon/owner: team-a}"

static const struct {
    const char *id;
    const char *name;
    bool shared;
} images[] = {
    {"m-pweba00000000001", "web-a", false},
    {"m-pold100000000001", "old-1", false},
    {"m-pold200000000001", "old-2", true},
    {"m-pold300000000001", "old-3", false},
};
#define N_IMAGES (sizeof(images) / sizeof(images[0]))

#define ECS_ID "m-pecs000000000001"

/* Everything owned by us: pruning would delete old-1..3 (three deletes, within max_deletes). */
static void start(void)
{
    write_fixture(&E, 2,
                  FIX("m-pweba00000000001", "web-a", SRV0, "s-sys-00", "false", OWNED)
                      FIX("m-pold100000000001", "old-1", SRV0, "s-sys-00", "false", OWNED)
                          FIX("m-pold200000000001", "old-2", SRV1, "s-sys-01", "true", OWNED)
                              FIX("m-pold300000000001", "old-3", SRV1, "s-sys-01", "false", OWNED),
                  "      - image_id: " ECS_ID "\n        name: old-ecs\n"
                  "        status: Available\n        used_by_instances: 0\n");
    start_emu(&E, "300ms", NULL);
    write_file(E.config, "owner: team-a\nprune: true\nmetrics_listen: null\n");
    cr_assert_eq(mkdir(mdir, 0755), 0, "mkdir %s", mdir);
}

#define WEB_A                                                                                      \
    "region: cn-hangzhou\ncustom_images:\n  - name: web-a\n    instance_id: " SRV0                 \
    "\n    system_snapshot_id: s-sys-00\n"
/* What the team's other file declares: without it old-1..3 look undeclared. */
#define OLD_123                                                                                    \
    "region: cn-hangzhou\ncustom_images:\n"                                                        \
    "  - name: old-1\n    instance_id: " SRV0 "\n    system_snapshot_id: s-sys-00\n"               \
    "  - name: old-2\n    instance_id: " SRV1 "\n    system_snapshot_id: s-sys-01\n"               \
    "    share_to_ecs: true\n"                                                                     \
    "  - name: old-3\n    instance_id: " SRV1 "\n    system_snapshot_id: s-sys-01\n"

static void mfile(const char *name, const char *text)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", mdir, name);
    write_file(p, text);
}

/* A copy of the imgrecon binary that another user can run: the build tree may sit below a
 * directory only root may enter (a clone in `mktemp -d`, mode 0700). Empty: use IMGRECON_BIN. */
static char bin_copy[256];

/* Copies IMGRECON_BIN to dir/imgrecon, mode 0755, and uses that copy from now on. */
static void copy_binary_to(const char *dir)
{
    snprintf(bin_copy, sizeof(bin_copy), "%s/imgrecon", dir);
    FILE *in = fopen(IMGRECON_BIN, "rb");
    FILE *out = fopen(bin_copy, "wb");
    cr_assert(in != NULL && out != NULL, "copy %s: %s", IMGRECON_BIN, strerror(errno));
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        cr_assert_eq(fwrite(buf, 1, n, out), n);
    cr_assert(!ferror(in));
    fclose(in);
    cr_assert_eq(fclose(out), 0);
    cr_assert_eq(chmod(bin_copy, 0755), 0);
}

/* Like spawn_imgrecon, optionally as another user (uid 0: as is). */
static pid_t spawn_as(uid_t uid, const char *outpath, const char *const *args)
{
    const char *argv[64];
    size_t n = 0;
    argv[n++] = bin_copy[0] != '\0' ? bin_copy : IMGRECON_BIN;
    argv[n++] = args[0];
    const char *common[] = {"-c",    E.config,       "--endpoint", E.emu.base_url, "--state-dir",
                            E.state, "--rate-limit", "10/1s",      "--no-color"};
    for (size_t i = 0; i < sizeof(common) / sizeof(common[0]); i++)
        argv[n++] = common[i];
    for (size_t i = 1; args[i] != NULL && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    static const char *const env_edits[] = {"ALIBABA_CLOUD_ACCESS_KEY_ID=" KEY_ID,
                                            "ALIBABA_CLOUD_ACCESS_KEY_SECRET=" KEY_SECRET,
                                            "ALIBABA_CLOUD_SECURITY_TOKEN",
                                            "IMGRECON_ENDPOINT",
                                            "NO_COLOR=1",
                                            "HOME=/nonexistent",
                                            NULL};
    test_proc_opts o = {.out_path = outpath, .env = env_edits, .uid = uid};
    return test_proc_spawn(argv, &o);
}

static run_result run_as(uid_t uid, const char *const *args)
{
    char outpath[200];
    static unsigned seq;
    snprintf(outpath, sizeof(outpath), "%s/ps-out-%u.txt", E.dir, seq++);
    pid_t pid = spawn_as(uid, outpath, args);
    run_result r;
    r.status = wait_child(pid, RUN_TIMEOUT_MS);
    r.out = read_file(outpath);
    return r;
}

/* Nothing deleted or unshared so far, and the world is as the fixture made it. */
static void expect_untouched(const char *what)
{
    json_t *j = journal_lines(&E);
    cr_expect_eq(count_calls(j, 0, "DeleteCustomImage", "*"), 0, "%s: DeleteCustomImage sent",
                 what);
    cr_expect_eq(count_calls(j, 0, "DeleteImage", "*"), 0, "%s: DeleteImage sent", what);
    cr_expect_eq(count_calls(j, 0, "ModifyImageShareStatus", "*"), 0, "%s: share toggled", what);
    cr_expect_eq(count_calls(j, 0, "CreateCustomImage", "*"), 0, "%s: create sent", what);
    json_decref(j);
    json_t *st = emu_proc_state(&E.emu);
    cr_assert_not_null(st);
    json_t *region = json_array_get(json_object_get(st, "regions"), 0);
    json_t *imgs = json_object_get(region, "custom_images");
    cr_expect_eq(json_array_size(imgs), N_IMAGES, "%s: %zu images left", what,
                 json_array_size(imgs));
    for (size_t i = 0; i < N_IMAGES; i++) {
        json_t *img = find_image(imgs, images[i].name);
        cr_expect_not_null(img, "%s: %s deleted", what, images[i].name);
        if (img == NULL)
            continue;
        cr_expect_str_eq(jstr(img, "image_id"), images[i].id, "%s", what);
        cr_expect_eq(image_shared(img), images[i].shared, "%s: share of %s changed", what,
                     images[i].name);
    }
    cr_expect_eq(json_array_size(json_object_get(region, "ecs_images")), 1, "%s: ECS image", what);
    json_decref(st);
}

/* A load error: plan, apply and run --once all exit 1 with `message` in their output, and not
 * a single API call goes out. With path NULL the manifests come from the config. */
static void expect_refused_as(uid_t uid, const char *path, const char *message)
{
    static const char *const cmds[][4] = {
        {"plan", "--detailed-exitcode", NULL},
        {"apply", "--auto-approve", NULL},
        {"run", "--once", NULL},
    };
    for (size_t c = 0; c < 3; c++) {
        const char *args[8];
        size_t n = 0;
        args[n++] = cmds[c][0];
        if (path != NULL) {
            args[n++] = "-f";
            args[n++] = path;
        }
        args[n++] = cmds[c][1];
        args[n] = NULL;
        run_result r = run_as(uid, args);
        cr_expect_eq(r.status, 1, "%s %s: exit %d\n%s", cmds[c][0], path ? path : "", r.status,
                     r.out);
        cr_expect(strstr(r.out, message) != NULL, "%s %s: no '%s' in:\n%s", cmds[c][0],
                  path ? path : "", message, r.out);
        run_result_free(&r);
    }
    json_t *j = journal_lines(&E);
    cr_expect_eq(json_array_size(j), 0, "%s: API calls after a load error", path ? path : "");
    json_decref(j);
    expect_untouched(path ? path : "config manifests");
}

static void expect_refused(const char *path, const char *message)
{
    expect_refused_as(0, path, message);
}

Test(prune_safety, empty_manifest_directory)
{
    start();
    expect_refused(mdir, "no manifest files");
    /* The same directory named by the config instead of -f. */
    char cfg[512];
    snprintf(cfg, sizeof(cfg),
             "owner: team-a\nprune: true\nmetrics_listen: null\nmanifests: [%s]\n", mdir);
    write_file(E.config, cfg);
    expect_refused(NULL, "no manifest files");
    /* A directory whose only file is empty (a truncated checkout). */
    mfile("images.yaml", "");
    expect_refused(mdir, "no manifest in this file");
    mfile("images.yaml", "# nothing yet\n---\n");
    expect_refused(mdir, "images.yaml");
}

/* A region declared with no images: the allow_empty guard refuses the deletes, and says so. */
Test(prune_safety, empty_region_without_allow_empty)
{
    start();
    mfile("images.yaml", "region: cn-hangzhou\ncustom_images: []\n");
    run_result r = RUN(&E, "plan", "-f", mdir, "--detailed-exitcode");
    cr_expect_neq(r.status, 2, "plan shows changes:\n%s", r.out);
    cr_expect(strstr(r.out, "allow_empty") != NULL, "guard named:\n%s", r.out);
    cr_expect(strstr(r.out, "0 to delete") != NULL || strstr(r.out, "No changes") != NULL,
              "plan with no delete:\n%s", r.out);
    run_result_free(&r);
    r = RUN(&E, "apply", "-f", mdir, "--auto-approve");
    cr_expect(strstr(r.out, "allow_empty") != NULL, "guard named:\n%s", r.out);
    run_result_free(&r);
    r = RUN(&E, "run", "-f", mdir, "--once");
    cr_expect(strstr(r.out, "allow_empty") != NULL, "guard named:\n%s", r.out);
    run_result_free(&r);
    expect_untouched("empty region");
}

Test(prune_safety, unreadable_manifest_directory)
{
    start();
    /* A regular file where a directory is expected. */
    char notdir[256];
    snprintf(notdir, sizeof(notdir), "%s/notadir", E.dir);
    write_file(notdir, WEB_A);
    char slashed[300];
    snprintf(slashed, sizeof(slashed), "%s/", notdir);
    expect_refused(slashed, "Not a directory");
    /* A dangling link as the directory (a checkout that is not there). */
    char link[256];
    snprintf(link, sizeof(link), "%s/images-link", E.dir);
    cr_assert_eq(symlink("/nonexistent/imgrecon-manifests", link), 0);
    expect_refused(link, "No such file or directory");
    /* A directory whose second manifest is a dangling link: reading only the first would
     * leave old-1..3 undeclared, and prune would delete them. */
    mfile("a.yaml", WEB_A);
    char b[256];
    snprintf(b, sizeof(b), "%s/b.yaml", mdir);
    cr_assert_eq(symlink("/nonexistent/b.yaml", b), 0);
    expect_refused(mdir, "b.yaml");
    expect_refused(mdir, "cannot read: No such file or directory");
}

/* chmod 000 stops everyone but root; when the test runs as root, imgrecon runs as nobody. */
Test(prune_safety, permission_denied_directory_and_file)
{
    start();
    uid_t uid = 0;
    if (geteuid() == 0) {
        uid = 65534;
        /* nobody must reach the config and own the state directory. */
        cr_assert_eq(chmod(E.dir, 0755), 0);
        cr_assert_eq(chmod(E.config, 0644), 0);
        cr_assert_eq(mkdir(E.state, 0700), 0);
        cr_assert_eq(chown(E.state, uid, uid), 0);
        copy_binary_to(E.dir);
    }
    mfile("a.yaml", WEB_A);
    /* An unreadable subdirectory holding the other team's manifest. */
    char sub[256], subfile[300];
    snprintf(sub, sizeof(sub), "%s/team-b", mdir);
    cr_assert_eq(mkdir(sub, 0755), 0);
    snprintf(subfile, sizeof(subfile), "%s/old.yaml", sub);
    write_file(subfile, OLD_123);
    cr_assert_eq(chmod(sub, 0), 0);
    expect_refused_as(uid, mdir, "Permission denied");
    cr_assert_eq(chmod(sub, 0755), 0);
    /* An unreadable manifest file. */
    cr_assert_eq(chmod(subfile, 0), 0);
    expect_refused_as(uid, mdir, "Permission denied");
    cr_assert_eq(chmod(subfile, 0644), 0);
    /* The whole directory unreadable. */
    cr_assert_eq(chmod(mdir, 0), 0);
    expect_refused_as(uid, mdir, "Permission denied");
    cr_assert_eq(chmod(mdir, 0755), 0);
}

Test(prune_safety, manifest_with_a_yaml_error)
{
    start();
    mfile("a.yaml", WEB_A);
    /* old-1..3 are declared in a file with a syntax error: nothing may be read as "not
     * wanted". */
    mfile("b.yaml", "region: cn-hangzhou\ncustom_images:\n"
                    "  - name: old-1\n    instance_id: [" SRV0 "\n"
                    "  - name: old-2\n");
    expect_refused(mdir, "b.yaml:");
    /* A schema error (a misspelt key) is refused the same way. */
    mfile("b.yaml", "region: cn-hangzhou\ncustom_imagez:\n  - name: old-1\n");
    expect_refused(mdir, "did you mean 'custom_images'");
    /* A tab (not allowed in YAML indentation) in the middle of the list. */
    mfile("b.yaml", "region: cn-hangzhou\ncustom_images:\n  - name: old-1\n\t- name: old-2\n");
    expect_refused(mdir, "b.yaml:");
}

/* The owned images carry owner=team-a; a config with another owner sees them as unmanaged:
 * reported, never touched. web-a is declared but not ours: a conflict (apply and run --once
 * exit 1), never touched either. */
Test(prune_safety, config_with_the_wrong_owner)
{
    start();
    write_file(E.config, "owner: team-other\nprune: true\nmetrics_listen: null\n");
    mfile("a.yaml", WEB_A);
    run_result r = RUN(&E, "plan", "-f", mdir, "--detailed-exitcode");
    cr_expect_eq(r.status, 0, "plan: exit %d\n%s", r.status, r.out);
    cr_expect(strstr(r.out, "not 'team-other'") != NULL, "unmanaged reported:\n%s", r.out);
    cr_expect(strstr(r.out, "old-2") != NULL, "%s", r.out);
    run_result_free(&r);
    r = RUN(&E, "plan", "-f", mdir, "--json");
    json_error_t jerr;
    json_t *doc = json_loads(r.out, 0, &jerr);
    cr_expect_not_null(doc, "plan --json: %s\n%s", jerr.text, r.out);
    cr_expect_eq(json_array_size(json_object_get(doc, "steps")), 0, "steps:\n%s", r.out);
    json_decref(doc);
    run_result_free(&r);
    r = RUN(&E, "apply", "-f", mdir, "--auto-approve");
    cr_expect_eq(r.status, 1, "apply: exit %d\n%s", r.status, r.out);
    cr_expect(strstr(r.out, "owned by 'team-a' (not 'team-other'): not touched") != NULL, "%s",
              r.out);
    cr_expect(strstr(r.out, "No changes") != NULL, "%s", r.out);
    run_result_free(&r);
    r = RUN(&E, "run", "-f", mdir, "--once");
    cr_expect_eq(r.status, 1, "run --once: exit %d\n%s", r.status, r.out);
    cr_expect(strstr(r.out, "conflict: not touched") != NULL, "%s", r.out);
    run_result_free(&r);
    /* Even with every image undeclared and allow_empty on. */
    write_file(E.config,
               "owner: team-other\nprune: true\nallow_empty: true\nmetrics_listen: null\n");
    mfile("a.yaml", "region: cn-hangzhou\ncustom_images: []\n");
    r = RUN(&E, "apply", "-f", mdir, "--auto-approve");
    cr_expect_eq(r.status, 0, "apply: exit %d\n%s", r.status, r.out);
    cr_expect(strstr(r.out, "No changes") != NULL, "%s", r.out);
    run_result_free(&r);
    expect_untouched("wrong owner");
    assert_journal_rules(&E);
}

/* Polls the emulator's journal (bounded) until it holds at least n calls of action answered
 * with code (count_calls: NULL successes, "*" any). */
static bool await_calls(const char *action, const char *code, size_t n, uint64_t timeout_ms)
{
    for (uint64_t until = test_clock_ms() + timeout_ms; test_clock_ms() < until;) {
        json_t *j = journal_lines(&E);
        size_t have = count_calls(j, 0, action, code);
        json_decref(j);
        if (have >= n)
            return true;
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return false;
}

/* What someone does to old-2 by hand while imgrecon works, and what the refusal says. */
static const struct {
    const char *tag; /* Tag.1.Key=...: the tag set with the account's key */
    const char *value;
    const char *says; /* in apply's output */
} changes[] = {
    {"Tag.1.Key=imgrecon/protect", "Tag.1.Value=true",
     "since it was observed, the image was protected"},
    {"Tag.1.Key=imgrecon/owner", "Tag.1.Value=team-b",
     "since it was observed, the image's imgrecon/owner tag became 'team-b'"},
};

ParameterizedTestParameters(prune_safety, an_image_changed_after_observe_is_not_deleted)
{
    return test_param_indices(sizeof(changes) / sizeof(changes[0]));
}

/* The world changes between observe and delete. Prune deletes old-1..3; old-2 is shared, so its
 * unshare goes first, and the emulator holds that call for 3 s. Meanwhile someone protects
 * old-2, or another team takes it over (`imgrecon api swas TagResources`, as one would in the
 * console). The look just before the deletes sees it: old-2's delete is refused with no call,
 * old-1 and old-3 are deleted. Without the look, the delete went out on the observation of
 * seconds before and old-2 was gone. */
ParameterizedTest(size_t *i, prune_safety, an_image_changed_after_observe_is_not_deleted)
{
    start();
    mfile("a.yaml", WEB_A);
    cr_assert_eq(emu_proc_add_fault(&E.emu, "{\"action\":\"ModifyImageShareStatus\","
                                            "\"kind\":\"delay\",\"delay_ms\":3000}"),
                 0);
    char outpath[200];
    snprintf(outpath, sizeof(outpath), "%s/apply-out.txt", E.dir);
    const char *args[] = {"apply", "-f", mdir, "--auto-approve", NULL};
    pid_t pid = spawn_as(0, outpath, args);
    /* Once the observe is answered, the unshare follows and is held for 3 s: the tag lands
     * after the observe and before any delete. */
    bool observed = await_calls("ListCustomImages", "*", 1, 30000);
    /* Someone changes old-2 by hand, with the same account's key. */
    char tagout[200];
    snprintf(tagout, sizeof(tagout), "%s/tag-out.txt", E.dir);
    const char *tag[] = {"api",
                         "swas",
                         "TagResources",
                         "RegionId=cn-hangzhou",
                         "ResourceType=customimage",
                         "ResourceId.1=m-pold200000000001",
                         changes[*i].tag,
                         changes[*i].value,
                         NULL};
    int tagged = wait_child(spawn_as(0, tagout, tag), RUN_TIMEOUT_MS);
    int st = wait_child(pid, RUN_TIMEOUT_MS);
    char *out = read_file(outpath);
    cr_assert(observed, "no observe:\n%s", out);
    char *tagtext = read_file(tagout);
    cr_assert_eq(tagged, 0, "TagResources: exit %d\n%s", tagged, tagtext);
    free(tagtext);
    cr_expect_eq(st, 1, "apply: exit %d\n%s", st, out);
    cr_expect(strstr(out, changes[*i].says) != NULL, "%s", out);
    free(out);
    json_t *w = emu_proc_state(&E.emu);
    cr_assert_not_null(w);
    json_t *imgs =
        json_object_get(json_array_get(json_object_get(w, "regions"), 0), "custom_images");
    cr_expect_not_null(find_image(imgs, "old-2"), "the changed image was deleted");
    cr_expect_null(find_image(imgs, "old-1"), "old-1 was not deleted");
    cr_expect_null(find_image(imgs, "old-3"), "old-3 was not deleted");
    cr_expect_not_null(find_image(imgs, "web-a"));
    json_decref(w);
}

/* The look must be fresh when the delete leaves, not when it is queued. old-3 is pruned alone
 * (DeleteCustomImage) with that action's budget at 1 call per 8 s, which an earlier call (an
 * `imgrecon api` delete of a missing image, sharing the state directory's budget) has just
 * spent: the look comes at once and the delete waits about 8 s for its slot. Meanwhile someone
 * protects old-3. The delete that waited longer than its bound is not sent; old-3 is looked at
 * again and refused. Before the bound, the delete went out on the look of 8 s before and old-3
 * was gone. */
Test(prune_safety, a_delete_that_waited_for_its_budget_looks_again)
{
    start();
    mfile("a.yaml", WEB_A);
    mfile("b.yaml", "region: cn-hangzhou\ncustom_images:\n"
                    "  - name: old-1\n    instance_id: " SRV0 "\n    system_snapshot_id: s-sys-00\n"
                    "  - name: old-2\n    instance_id: " SRV1 "\n    system_snapshot_id: s-sys-01\n"
                    "    share_to_ecs: true\n");
    char outpath[200], spendout[200], tagout[200];
    snprintf(outpath, sizeof(outpath), "%s/apply-out.txt", E.dir);
    snprintf(spendout, sizeof(spendout), "%s/spend-out.txt", E.dir);
    snprintf(tagout, sizeof(tagout), "%s/tag-out.txt", E.dir);
    const char *spend[] = {"api",
                           "swas",
                           "DeleteCustomImage",
                           "--rate-limit",
                           "DeleteCustomImage=1/8s",
                           "RegionId=cn-hangzhou",
                           "ImageId=m-nothere0000000001",
                           NULL};
    (void)wait_child(spawn_as(0, spendout, spend), RUN_TIMEOUT_MS);
    json_t *j = journal_lines(&E);
    cr_assert_eq(count_calls(j, 0, "DeleteCustomImage", "*"), 1, "the budget was not spent");
    json_decref(j);
    const char *args[] = {
        "apply", "-f", mdir, "--auto-approve", "--rate-limit", "DeleteCustomImage=1/8s", NULL};
    pid_t pid = spawn_as(0, outpath, args);
    /* The observe, then the look at old-3: its delete now waits for the budget. */
    bool looked = await_calls("ListCustomImages", "*", 2, 30000);
    const char *tag[] = {"api",
                         "swas",
                         "TagResources",
                         "RegionId=cn-hangzhou",
                         "ResourceType=customimage",
                         "ResourceId.1=m-pold300000000001",
                         "Tag.1.Key=imgrecon/protect",
                         "Tag.1.Value=true",
                         NULL};
    int tagged = looked ? wait_child(spawn_as(0, tagout, tag), RUN_TIMEOUT_MS) : -1;
    int st = wait_child(pid, RUN_TIMEOUT_MS);
    char *out = read_file(outpath);
    cr_assert(looked, "no look:\n%s", out);
    cr_assert_eq(tagged, 0, "TagResources: exit %d", tagged);
    cr_expect_eq(st, 1, "apply: exit %d\n%s", st, out);
    cr_expect(strstr(out, "since it was observed, the image was protected") != NULL, "%s", out);
    const char *start = strstr(out, "old-3: started");
    cr_expect(start != NULL && strstr(start + 1, "old-3: started") == NULL,
              "not one start for old-3:\n%s", out);
    free(out);
    j = journal_lines(&E);
    cr_expect_eq(count_calls(j, 0, "DeleteCustomImage", "*"), 1, "old-3's delete was sent");
    cr_expect_eq(count_calls(j, 0, "ListCustomImages", "*"), 3, "observe, look, look again");
    json_decref(j);
    json_t *w = emu_proc_state(&E.emu);
    cr_assert_not_null(w);
    json_t *imgs =
        json_object_get(json_array_get(json_object_get(w, "regions"), 0), "custom_images");
    cr_expect_not_null(find_image(imgs, "old-3"), "the protected image was deleted");
    json_decref(w);
}

/* An image as ListCustomImages lists it, ours, for the scripted answers below. */
#define LISTED(id, name, srv, snap, shared)                                                        \
    "{\"ImageId\":\"" id "\",\"Name\":\"" name "\",\"Status\":\"1\",\"RegionId\":"                 \
    "\"cn-hangzhou\",\"InstanceId\":\"" srv "\",\"SystemSnapshotId\":\"" snap "\","                \
    "\"InShare\":" shared ",\"Tags\":[{\"Key\":\"imgrecon/owner\",\"Value\":\"team-a\"}]}"
#define OLD3_LISTED LISTED("m-pold300000000001", "old-3", SRV1, "s-sys-01", "false")

/* A look is good for its own call only. old-3 is pruned; the observe and the look (scripted
 * answers) show it unshared, but someone shared it before (spending the budget of
 * ModifyImageShareStatus, 1 call per 8 s here), so its delete meets CustomImageInShare and the
 * unshare imgrecon inserts waits about 8 s for its budget. Meanwhile someone protects old-3.
 * The delete after that unshare must not ride on the look of 8 s before: old-3 is looked at
 * again and refused. It was deleted before. */
Test(prune_safety, a_delete_after_an_inserted_unshare_looks_again)
{
    start();
    mfile("a.yaml", WEB_A);
    mfile("b.yaml", "region: cn-hangzhou\ncustom_images:\n"
                    "  - name: old-1\n    instance_id: " SRV0 "\n    system_snapshot_id: s-sys-00\n"
                    "  - name: old-2\n    instance_id: " SRV1 "\n    system_snapshot_id: s-sys-01\n"
                    "    share_to_ecs: true\n");
    run_result r = RUN(&E, "api", "swas", "ModifyImageShareStatus", "--rate-limit",
                       "ModifyImageShareStatus=1/8s", "RegionId=cn-hangzhou",
                       "ImageId=m-pold300000000001", "Operation=Share");
    cr_assert_eq(r.status, 0, "share: exit %d\n%s", r.status, r.out);
    run_result_free(&r);
    static const char observe[] =
        "{\"action\":\"ListCustomImages\",\"kind\":\"answer\",\"body\":{\"TotalCount\":4,"
        "\"PageNumber\":1,\"PageSize\":100,\"CustomImages\":[" LISTED(
            "m-pweba00000000001", "web-a", SRV0, "s-sys-00",
            "false") "," LISTED("m-pold100000000001", "old-1", SRV0, "s-sys-00",
                                "false") "," LISTED("m-pold200000000001", "old-2", SRV1, "s-sys-01",
                                                    "true") "," OLD3_LISTED "]}}";
    static const char look[] = "{\"action\":\"ListCustomImages\",\"kind\":\"answer\",\"body\":{"
                               "\"TotalCount\":1,\"PageNumber\":1,\"PageSize\":100,"
                               "\"CustomImages\":[" OLD3_LISTED "]}}";
    cr_assert_eq(emu_proc_add_fault(&E.emu, observe), 0);
    cr_assert_eq(emu_proc_add_fault(&E.emu, look), 0);
    char outpath[200], tagout[200];
    snprintf(outpath, sizeof(outpath), "%s/apply-out.txt", E.dir);
    snprintf(tagout, sizeof(tagout), "%s/tag-out.txt", E.dir);
    const char *args[] = {
        "apply", "-f", mdir, "--auto-approve", "--rate-limit", "ModifyImageShareStatus=1/8s", NULL};
    pid_t pid = spawn_as(0, outpath, args);
    /* The delete met the share: the inserted unshare now waits for its budget. */
    bool refused = await_calls("DeleteCustomImage", "CustomImageInShare", 1, 30000);
    const char *tag[] = {"api",
                         "swas",
                         "TagResources",
                         "RegionId=cn-hangzhou",
                         "ResourceType=customimage",
                         "ResourceId.1=m-pold300000000001",
                         "Tag.1.Key=imgrecon/protect",
                         "Tag.1.Value=true",
                         NULL};
    int tagged = refused ? wait_child(spawn_as(0, tagout, tag), RUN_TIMEOUT_MS) : -1;
    int st = wait_child(pid, RUN_TIMEOUT_MS);
    char *out = read_file(outpath);
    cr_assert(refused, "the delete never met the share:\n%s", out);
    cr_assert_eq(tagged, 0, "TagResources: exit %d", tagged);
    cr_expect_eq(st, 1, "apply: exit %d\n%s", st, out);
    cr_expect(strstr(out, "since it was observed, the image was protected") != NULL, "%s", out);
    free(out);
    json_t *w = emu_proc_state(&E.emu);
    cr_assert_not_null(w);
    json_t *imgs =
        json_object_get(json_array_get(json_object_get(w, "regions"), 0), "custom_images");
    cr_expect_not_null(find_image(imgs, "old-3"), "the protected image was deleted");
    json_decref(w);
}
