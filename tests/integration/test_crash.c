/* Crash safety: an apply killed with SIGKILL in the middle, then run again, converges with no
 * duplicate image: ClientTokens derived from the steps make the emulator return the same ImageId,
 * and the journal makes the rerun wait for a create whose image is not listed yet. */
#include "apply_support.h"

#define SRV0 "ace0706b2ac4454d984295a94213ab00"
#define N_IMAGES 6

static env E;

static void setup(void)
{
    env_init(&E);
}

static void teardown(void)
{
    env_fini(&E);
}

TestSuite(crash, .init = setup, .fini = teardown, .timeout = 300);

static void write_manifest(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    fprintf(m, "region: cn-hangzhou\ncustom_images:\n");
    for (int i = 0; i < N_IMAGES; i++)
        fprintf(m,
                "  - name: img-%d\n    instance_id: " SRV0 "\n    system_snapshot_id: s-sys-00\n"
                "    share_to_ecs: %s\n",
                i, i % 2 ? "true" : "false");
    fclose(m);
    write_file(E.manifest, buf);
    free(buf);
}

/* Whether the emulator's journal holds at least *(size_t *)n successful creates. */
static bool has_creates(void *n)
{
    json_t *j = journal_lines(&E);
    bool seen = count_calls(j, 0, "CreateCustomImage", NULL) >= *(const size_t *)n;
    json_decref(j);
    return seen;
}

/* Waits, on the emulator journal's writes, until it holds at least n successful creates. */
static bool await_creates(size_t n, int timeout_ms)
{
    return test_file_await(E.emu.journal, IN_MODIFY, timeout_ms, has_creates, &n);
}

/* Kills an apply after `after` creates, reruns it, and checks the end state. */
static void kill_and_rerun(size_t after, const char *list_lag)
{
    write_fixture(&E, 2, NULL, NULL);
    const char *extra[] = {"--list-lag", list_lag, NULL};
    start_emu(&E, "500ms", list_lag ? extra : NULL);
    write_manifest();

    char outpath[160];
    snprintf(outpath, sizeof(outpath), "%s/apply-killed.txt", E.dir);
    /* Creates at 2/1s so the kill lands mid-way. */
    pid_t pid =
        spawn_imgrecon(&E, outpath,
                       (const char *const[]){"apply", "-f", E.manifest, "--auto-approve",
                                             "--rate-limit", "CreateCustomImage=2/1s", NULL});
    cr_assert(await_creates(after, 60000), "no %zu creates within 60 s", after);
    cr_assert_eq(kill(pid, SIGKILL), 0);
    (void)wait_child(pid, 10000);

    run_result r = RUN(&E, "apply", "-f", E.manifest, "--auto-approve");
    cr_assert_eq(r.status, 0, "rerun: exit %d\n%s", r.status, r.out);
    run_result_free(&r);

    json_t *imgs = state_images(&E);
    cr_expect_eq(json_array_size(imgs), N_IMAGES, "images in the region");
    for (size_t i = 0; i < json_array_size(imgs); i++) {
        json_t *img = json_array_get(imgs, i);
        cr_expect_str_eq(jstr(img, "status"), "1");
        for (size_t k = i + 1; k < json_array_size(imgs); k++)
            cr_expect_str_neq(jstr(img, "name"), jstr(json_array_get(imgs, k), "name"),
                              "duplicate name");
        int idx = atoi(jstr(img, "name") + 4);
        cr_expect_eq(image_shared(img), idx % 2 == 1, "share of %s", jstr(img, "name"));
    }
    json_decref(imgs);

    /* Distinct image ids among successful creates = the desired images. */
    json_t *j = journal_lines(&E);
    const char *ids[64];
    size_t n_ids = 0;
    for (size_t i = 0; i < json_array_size(j); i++) {
        json_t *l = json_array_get(j, i);
        if (strcmp(jstr(l, "action"), "CreateCustomImage") != 0 || jstr(l, "code") != NULL)
            continue;
        const char *id = jstr(l, "image_id");
        cr_assert_not_null(id);
        bool dup = false;
        for (size_t k = 0; k < n_ids && !dup; k++)
            dup = strcmp(ids[k], id) == 0;
        if (!dup && n_ids < 64)
            ids[n_ids++] = id;
    }
    cr_expect_eq(n_ids, N_IMAGES, "distinct created image ids");
    cr_expect_eq(count_calls(j, 0, "CreateCustomImage", "ImageNameAlreadyExist"), 0);
    json_decref(j);
    assert_journal_rules(&E);
}

Test(crash, kill9_after_two_creates_then_rerun)
{
    kill_and_rerun(2, NULL);
}

Test(crash, kill9_with_list_lag_then_rerun)
{
    kill_and_rerun(3, "3s");
}
