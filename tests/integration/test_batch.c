/* Batched deletes and learned build times (issue 17 items 1 and 2; reconcile/README.md
 * "Deletes are batched", "Completion") with the real binary against the real emulator:
 *  - 20 owned images pruned in one region go out as 2 DeleteCustomImages calls (15 + 5), none
 *    naming an image that is not ours, and the plan's summary counts those 2 calls;
 *  - a batch refused because one of its images was shared after observe gets that image's
 *    unshare inserted and is sent again;
 *  - after an apply, the plan's estimate uses the build time learned from its creates;
 *  - a learned first probe that missed is followed by the second at its own time, not a List
 *    slot later, and the creates of a second window probe with the samples of the first. */
#include "apply_support.h"

#define SRV0 "ace0706b2ac4454d984295a94213ab00"

static env E;

static void setup(void)
{
    env_init(&E);
}

static void teardown(void)
{
    env_fini(&E);
}

TestSuite(batch, .init = setup, .fini = teardown, .timeout = 300);

/* One fixture image line block (indented for write_fixture). */
static void fix_image(FILE *m, const char *id, const char *name, bool shared, const char *tags)
{
    fprintf(m,
            "      - image_id: %s\n        name: %s\n        instance_id: " SRV0 "\n"
            "        system_snapshot_id: s-sys-00\n        status: \"1\"\n        in_share: %s\n"
            "        tags: %s\n",
            id, name, shared ? "true" : "false", tags);
}

#define KEEP_MANIFEST                                                                              \
    "region: cn-hangzhou\ncustom_images:\n  - name: keep\n    instance_id: " SRV0                  \
    "\n    system_snapshot_id: s-sys-00\n"

/* The ImageIds of a DeleteCustomImages journal line, parsed (caller frees). */
static json_t *batch_ids(json_t *line)
{
    const char *s = jparam(line, "ImageIds");
    cr_assert_not_null(s, "DeleteCustomImages without ImageIds");
    json_t *ids = json_loads(s, 0, NULL);
    cr_assert(json_is_array(ids), "ImageIds is not a JSON array: %s", s);
    return ids;
}

static bool ids_have(json_t *ids, const char *id)
{
    for (size_t i = 0; i < json_array_size(ids); i++)
        if (strcmp(json_string_value(json_array_get(ids, i)), id) == 0)
            return true;
    return false;
}

Test(batch, twenty_pruned_images_take_two_calls_and_never_name_a_foreign_one)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    fix_image(m, "m-keep00000000000001", "keep", false, "{imgrecon/owner: team-a}");
    fix_image(m, "m-hand00000000000001", "hand-made", true, "{team: ops}");
    fix_image(m, "m-teamb0000000000001", "theirs", false, "{imgrecon/owner: team-b}");
    for (int i = 0; i < 20; i++) {
        char id[32], name[32];
        snprintf(id, sizeof(id), "m-stale%013d", i);
        snprintf(name, sizeof(name), "stale-%d", i);
        fix_image(m, id, name, false, "{imgrecon/owner: team-a}");
    }
    fclose(m);
    write_fixture(&E, 5, buf, NULL);
    free(buf);
    start_emu(&E, "300ms", NULL);
    write_file(E.config, "owner: team-a\nprune: true\nmax_deletes: 100\nmetrics_listen: null\n");
    write_file(E.manifest, KEEP_MANIFEST);

    run_result p = RUN(&E, "plan", "-f", E.manifest);
    cr_assert_eq(p.status, 0, "%s", p.out);
    cr_expect_not_null(strstr(p.out, "20 to delete. API calls: DeleteCustomImages 2."), "%s",
                       p.out);
    run_result_free(&p);

    run_result r = RUN(&E, "apply", "-f", E.manifest, "--auto-approve");
    cr_assert_eq(r.status, 0, "%s", r.out);
    run_result_free(&r);

    json_t *j = journal_lines(&E);
    cr_expect_eq(count_calls(j, 0, "DeleteCustomImage", "*"), 0, "no single delete");
    cr_expect_eq(count_calls(j, 0, "DeleteCustomImages", "*"), 2, "ceil(20/15) = 2 calls");
    size_t named = 0;
    for (size_t i = 0; i < json_array_size(j); i++) {
        json_t *l = json_array_get(j, i);
        if (strcmp(jstr(l, "action"), "DeleteCustomImages") != 0)
            continue;
        cr_expect_null(jstr(l, "code"), "batch failed: %s", jstr(l, "code"));
        json_t *ids = batch_ids(l);
        cr_expect_leq(json_array_size(ids), 15);
        named += json_array_size(ids);
        cr_expect(!ids_have(ids, "m-hand00000000000001") &&
                      !ids_have(ids, "m-teamb0000000000001") &&
                      !ids_have(ids, "m-keep00000000000001"),
                  "a batch names an image that is not to be deleted: %s", jparam(l, "ImageIds"));
        json_decref(ids);
    }
    cr_expect_eq(named, 20);
    json_decref(j);
    json_t *imgs = state_images(&E);
    cr_expect_eq(json_array_size(imgs), 3, "keep, hand-made and theirs are left");
    cr_expect_not_null(find_image(imgs, "hand-made"));
    cr_expect_not_null(find_image(imgs, "theirs"));
    cr_expect_not_null(find_image(imgs, "keep"));
    json_decref(imgs);
    assert_journal_rules(&E);
}

/* The journal path and the text await_state_journal looks for. */
typedef struct journal_text {
    char path[192];
    const char *text;
} journal_text;

/* Whether imgrecon's own journal holds the text (ud: a journal_text). */
static bool journal_has(void *ud)
{
    const journal_text *w = ud;
    char *s = read_file(w->path);
    bool found = strstr(s, w->text) != NULL;
    free(s);
    return found;
}

/* Waits (inotify on the state directory: writes, new files and renames; bounded) until
 * imgrecon's own journal holds a line containing text. */
static bool await_state_journal(const char *text, int timeout_ms)
{
    journal_text w = {.text = text};
    snprintf(w.path, sizeof(w.path), "%s/journal.jsonl", E.state);
    return test_file_await(E.state, IN_MODIFY | IN_CREATE | IN_MOVED_TO, timeout_ms, journal_has,
                           &w);
}

#define ID_A "m-shra00000000000001"
#define ID_B "m-shrb00000000000001"
#define ID_C "m-shrc00000000000001"

Test(batch, a_batch_refused_for_a_share_gets_the_unshare_and_is_sent_again)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    fix_image(m, "m-keep00000000000001", "keep", false, "{imgrecon/owner: team-a}");
    fix_image(m, "m-spare0000000000001", "spare", false, "{imgrecon/owner: team-a}");
    fix_image(m, ID_A, "old-a", true, "{imgrecon/owner: team-a}");
    fix_image(m, ID_B, "old-b", false, "{imgrecon/owner: team-a}");
    fix_image(m, ID_C, "old-c", false, "{imgrecon/owner: team-a}");
    fclose(m);
    write_fixture(&E, 5, buf, NULL);
    free(buf);
    start_emu(&E, "300ms", NULL);
    write_file(E.config, "owner: team-a\nprune: true\nmax_deletes: 100\nmetrics_listen: null\n");
    /* spare is declared so that the apply leaves it; the call below deletes it. */
    write_file(E.manifest, KEEP_MANIFEST "  - name: spare\n    instance_id: " SRV0
                                         "\n    system_snapshot_id: s-sys-00\n");

    /* Spend the DeleteCustomImages budget (1 per 4 s, shared through the state directory) so
     * that the apply's batch waits in the pacer; meanwhile old-b gets shared behind its back. */
    run_result a =
        RUN(&E, "api", "--rate-limit", "DeleteCustomImages=1/4s", "swas", "DeleteCustomImages",
            "RegionId=cn-hangzhou", "ImageIds=[\"m-spare0000000000001\"]");
    cr_assert_eq(a.status, 0, "%s", a.out);
    run_result_free(&a);
    write_file(E.manifest, KEEP_MANIFEST);
    char outpath[160];
    snprintf(outpath, sizeof(outpath), "%s/apply.txt", E.dir);
    pid_t pid =
        spawn_imgrecon(&E, outpath,
                       (const char *const[]){"apply", "-f", E.manifest, "--auto-approve",
                                             "--rate-limit", "DeleteCustomImages=1/4s", NULL});
    cr_assert(await_state_journal("\"action\":\"DeleteCustomImages\"", 20000),
              "the batch's intent was never journaled");
    run_result s = RUN(&E, "api", "swas", "ModifyImageShareStatus", "RegionId=cn-hangzhou",
                       "ImageId=" ID_B, "Operation=Share");
    cr_assert_eq(s.status, 0, "%s", s.out);
    run_result_free(&s);
    int code = wait_child(pid, RUN_TIMEOUT_MS);
    char *out = read_file(outpath);
    cr_assert_eq(code, 0, "%s", out);
    free(out);

    json_t *j = journal_lines(&E);
    size_t refused = SIZE_MAX, unshare_b = SIZE_MAX, retried = SIZE_MAX;
    for (size_t i = 0; i < json_array_size(j); i++) {
        json_t *l = json_array_get(j, i);
        const char *act = jstr(l, "action"), *c = jstr(l, "code");
        const char *op = jparam(l, "Operation"), *id = jparam(l, "ImageId");
        if (strcmp(act, "DeleteCustomImages") == 0 && c && strcmp(c, "CustomImageInShare") == 0)
            refused = refused == SIZE_MAX ? i : refused;
        else if (strcmp(act, "ModifyImageShareStatus") == 0 && c == NULL && op &&
                 strcmp(op, "UnShare") == 0 && id && strcmp(id, ID_B) == 0)
            unshare_b = i;
        else if (strcmp(act, "DeleteCustomImages") == 0 && c == NULL && i > 0) {
            json_t *ids = batch_ids(l);
            if (ids_have(ids, ID_B))
                retried = i;
            json_decref(ids);
        }
    }
    char trail[4096] = "";
    for (size_t i = 0, k = 0; i < json_array_size(j) && k < sizeof(trail) - 200; i++) {
        json_t *l = json_array_get(j, i);
        k += (size_t)snprintf(trail + k, sizeof(trail) - k, "%s %s %s %s\n", jstr(l, "action"),
                              jstr(l, "code") ? jstr(l, "code") : "ok",
                              jparam(l, "ImageId") ? jparam(l, "ImageId") : "",
                              jparam(l, "ImageIds") ? jparam(l, "ImageIds") : "");
    }
    json_decref(j);
    cr_log_info("emulator calls:\n%s", trail);
    cr_assert_neq(refused, SIZE_MAX, "the batch was not refused for the share");
    cr_assert_neq(unshare_b, SIZE_MAX, "old-b was not unshared");
    cr_assert_neq(retried, SIZE_MAX, "the batch was not sent again:\n%s", trail);
    cr_expect(refused < unshare_b && unshare_b < retried,
              "order: refused %zu, unshare %zu, retry %zu", refused, unshare_b, retried);
    json_t *imgs = state_images(&E);
    cr_expect_eq(json_array_size(imgs), 1, "only keep is left");
    cr_expect_not_null(find_image(imgs, "keep"));
    json_decref(imgs);
}

Test(batch, plan_estimate_uses_the_build_time_learned_from_the_creates)
{
    write_fixture(&E, 5, NULL, NULL);
    start_emu(&E, "400ms", NULL);
    write_file(E.config, "owner: team-a\nmetrics_listen: null\n");
    write_file(E.manifest,
               "region: cn-hangzhou\ncustom_images:\n"
               "  - name: img-a\n    instance_id: " SRV0 "\n    system_snapshot_id: s-sys-00\n"
               "  - name: img-b\n    instance_id: " SRV0 "\n    system_snapshot_id: s-sys-00b\n");
    run_result p = RUN(&E, "plan", "-f", E.manifest);
    cr_assert_eq(p.status, 0, "%s", p.out);
    cr_expect_not_null(strstr(p.out, "assuming 1m 0s per image build (default)."), "%s", p.out);
    run_result_free(&p);

    run_result r = RUN(&E, "apply", "-f", E.manifest, "--auto-approve");
    cr_assert_eq(r.status, 0, "%s", r.out);
    run_result_free(&r);

    /* Each create left one sample: a build of at least the emulator's 400 ms. */
    char path[192];
    snprintf(path, sizeof(path), "%s/journal.jsonl", E.state);
    char *jl = read_file(path);
    size_t samples = 0;
    for (char *line = strtok(jl, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        json_t *o = json_loads(line, 0, NULL);
        if (o && jstr(o, "action") && strcmp(jstr(o, "action"), "ImageAvailable") == 0) {
            samples++;
            json_int_t b = json_integer_value(json_object_get(o, "build_ms"));
            cr_expect_geq(b, 400, "build_ms %lld below the create delay", (long long)b);
            cr_expect_lt(b, 5000, "build_ms %lld", (long long)b);
        }
        json_decref(o);
    }
    free(jl);
    cr_expect_eq(samples, 2);

    write_file(E.manifest,
               "region: cn-hangzhou\ncustom_images:\n"
               "  - name: img-a\n    instance_id: " SRV0 "\n    system_snapshot_id: s-sys-00\n"
               "  - name: img-b\n    instance_id: " SRV0 "\n    system_snapshot_id: s-sys-00b\n"
               "  - name: img-c\n    instance_id: " SRV0 "\n    system_snapshot_id: s-sys-00\n");
    p = RUN(&E, "plan", "-f", E.manifest);
    cr_assert_eq(p.status, 0, "%s", p.out);
    cr_expect_not_null(strstr(p.out, "per image build (learned from 2 recent creates)."), "%s",
                       p.out);
    cr_expect_null(strstr(p.out, "assuming 1m 0s"), "%s", p.out);
    run_result_free(&p);
}

/* Plants n build-time samples of cn-hangzhou in the state directory's journal, as an earlier
 * apply leaves them (ImageAvailable lines: the image was seen at hi ms, not yet at lo ms). */
static void plant_samples(unsigned n, unsigned lo, unsigned hi)
{
    cr_assert(mkdir(E.state, 0700) == 0);
    struct timespec now;
    cr_assert_eq(clock_gettime(CLOCK_REALTIME, &now), 0);
    long long at = (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000 - 60000;
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    for (unsigned i = 0; i < n; i++)
        fprintf(m,
                "{\"ts_ms\":%lld,\"phase\":\"result\",\"cycle\":\"planted\","
                "\"address\":\"swas.cn-hangzhou.custom_image.old-%u\",\"action\":"
                "\"ImageAvailable\",\"region\":\"cn-hangzhou\",\"name\":\"old-%u\","
                "\"code\":null,\"build_ms\":%u,\"build_lo_ms\":%u}\n",
                at, i, i, hi, lo);
    fclose(m);
    char path[192];
    snprintf(path, sizeof(path), "%s/journal.jsonl", E.state);
    test_file_write_mode(path, buf, 0600);
    free(buf);
}

/* A manifest of n images img-0 .. img-(n-1) in cn-hangzhou. */
static void write_images(unsigned n)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    fprintf(m, "region: cn-hangzhou\ncustom_images:\n");
    for (unsigned i = 0; i < n; i++)
        fprintf(m,
                "  - name: img-%u\n    instance_id: " SRV0 "\n    system_snapshot_id: s-sys-00\n",
                i);
    fclose(m);
    write_file(E.manifest, buf);
    free(buf);
}

/* The emulator's times (ms) of the creates and of the polls (ListCustomImages naming ImageIds)
 * naming image_id; returns how many polls were found, at most max. *ret_created is 0 when the
 * image's create is not in the journal. */
static size_t polls_of(json_t *j, const char *image_id, long *ret_created, long *polls, size_t max)
{
    size_t n = 0;
    *ret_created = 0;
    for (size_t i = 0; i < json_array_size(j); i++) {
        json_t *l = json_array_get(j, i);
        const char *act = jstr(l, "action"), *ids = jparam(l, "ImageIds");
        if (act && strcmp(act, "CreateCustomImage") == 0 && jstr(l, "image_id") &&
            strcmp(jstr(l, "image_id"), image_id) == 0)
            *ret_created = emu_proc_line_ms(l);
        else if (act && strcmp(act, "ListCustomImages") == 0 && ids && strstr(ids, image_id) &&
                 n < max)
            polls[n++] = emu_proc_line_ms(l);
    }
    return n;
}

/* An emulator whose builds take 600 ms, a manifest of n images and samples (lo, hi] planted. */
static void prepare_with_samples(unsigned n, unsigned lo, unsigned hi)
{
    write_fixture(&E, 5, NULL, NULL);
    start_emu(&E, "600ms", NULL);
    write_file(E.config, "owner: team-a\nmetrics_listen: null\n");
    write_images(n);
    plant_samples(8, lo, hi);
}

/* polls_of for img-0, the image of a one-image apply. */
static size_t img0_polls(long *ret_created, long *polls, size_t max)
{
    json_t *imgs = state_images(&E);
    json_t *img = find_image(imgs, "img-0");
    cr_assert_not_null(img);
    char id[64];
    snprintf(id, sizeof(id), "%s", jstr(img, "image_id"));
    json_decref(imgs);
    json_t *j = journal_lines(&E);
    size_t n = polls_of(j, id, ret_created, polls, max);
    json_decref(j);
    return n;
}

/* Applies a manifest of n images against an emulator whose builds take 600 ms, with samples
 * (lo, hi] planted beforehand; extra (may be NULL) is one more imgrecon option and its value. */
static void apply_with_samples(unsigned n, unsigned lo, unsigned hi, const char *extra,
                               const char *extra_value)
{
    prepare_with_samples(n, lo, hi);
    run_result r = extra ? RUN(&E, "apply", "-f", E.manifest, "--auto-approve", extra, extra_value)
                         : RUN(&E, "apply", "-f", E.manifest, "--auto-approve");
    cr_assert_eq(r.status, 0, "%s", r.out);
    run_result_free(&r);
}

/* The samples say (1, 616] ms and the build takes 600 ms: the first probe goes at the interval's
 * three-quarter point (463 ms) and misses, the second just after its top (619 ms). With List at
 * 10/3s a slot is 300 ms; the second probe goes at its own time, not a slot after the first. */
Test(batch, a_missed_first_probe_is_followed_by_the_second_without_waiting_a_list_slot)
{
    apply_with_samples(1, 1, 616, "--rate-limit", "ListCustomImages=10/3s");
    long created, polls[8];
    size_t n = img0_polls(&created, polls, 8);
    cr_assert_neq(created, 0);
    cr_assert_eq(n, 2, "%zu polls: the first probe should miss and the second see the image", n);
    cr_expect_lt(polls[0] - created, 600, "first probe %ld ms after the create",
                 polls[0] - created);
    cr_expect_geq(polls[1] - created, 600);
    cr_expect_lt(polls[1] - polls[0], 250,
                 "the second probe went %ld ms after the first (a slot is 300 ms)",
                 polls[1] - polls[0]);
}

/* The first probe's answer comes late (the emulator holds it 300 ms after reading the world), after
 * the second probe's time (156 ms after the first): the second probe goes as soon as the miss is
 * known, not a poll interval (600 ms at 10/3s) later. On this VM the loop, busy with the answers of
 * a window of creates, made the same miss now and then (bench replace15's slow runs). */
Test(batch, a_second_probe_whose_time_passed_goes_at_once)
{
    prepare_with_samples(1, 1, 616);
    /* The observe's List passes untouched; the first probe's is held 300 ms. */
    cr_assert_eq(emu_proc_add_fault(&E.emu, "{\"action\":\"ListCustomImages\",\"kind\":\"delay\","
                                            "\"count\":1,\"delay_ms\":0}"),
                 0);
    cr_assert_eq(emu_proc_add_fault(&E.emu, "{\"action\":\"ListCustomImages\",\"kind\":\"late\","
                                            "\"count\":1,\"delay_ms\":300}"),
                 0);
    run_result r = RUN(&E, "apply", "-f", E.manifest, "--auto-approve", "--rate-limit",
                       "ListCustomImages=10/3s");
    cr_assert_eq(r.status, 0, "%s", r.out);
    run_result_free(&r);
    long created, polls[8];
    size_t n = img0_polls(&created, polls, 8);
    cr_assert_eq(n, 2, "%zu polls: the first probe should miss and the second see the image", n);
    /* A journal line's time is its answer's: the first probe's is about 763 ms. */
    cr_expect_geq(polls[0] - created, 700, "the delay held the first probe's answer");
    cr_expect_lt(polls[1] - polls[0], 250, "the second probe went %ld ms after the first's answer",
                 polls[1] - polls[0]);
}

/* Twelve creates at 10/1s go in two windows. The samples say (1, 1600] ms for a 600 ms build:
 * the first window's images are probed at 1,200 ms and seen; the two images of the second
 * window, created about a second later and planned from the old samples (1,200 ms), are probed
 * with the first window's fresher ones instead (about 900 ms after their create). */
Test(batch, the_second_window_of_creates_probes_with_the_samples_of_the_first)
{
    apply_with_samples(12, 1, 1600, NULL, NULL);
    json_t *imgs = state_images(&E);
    cr_assert_eq(json_array_size(imgs), 12);
    json_t *j = journal_lines(&E);
    /* The last image created is of the second window. */
    long last_created = 0, first_created = 0;
    char last_id[64] = "";
    for (size_t i = 0; i < json_array_size(imgs); i++) {
        long created, polls[8];
        const char *id = jstr(json_array_get(imgs, i), "image_id");
        (void)polls_of(j, id, &created, polls, 8);
        if (first_created == 0 || created < first_created)
            first_created = created;
        if (created > last_created) {
            last_created = created;
            snprintf(last_id, sizeof(last_id), "%s", id);
        }
    }
    json_decref(imgs);
    long created, polls[8];
    size_t n = polls_of(j, last_id, &created, polls, 8);
    char trail[256] = "";
    for (size_t i = 0, k = 0; i < n && k < sizeof(trail) - 16; i++)
        k += (size_t)snprintf(trail + k, sizeof(trail) - k, " %ld", polls[i] - first_created);
    cr_log_info("second window created at +%ld ms; polls naming it at%s ms",
                last_created - first_created, trail);
    json_decref(j);
    cr_assert_geq(last_created - first_created, 800, "the creates did not take two windows");
    /* Polls of the first window named it too (too early for it); its own first probe is the
     * first poll after its create plus 600 ms that saw it, here the last one. */
    cr_assert_geq(n, 1);
    long probe = polls[n - 1] - created;
    cr_expect_geq(probe, 600, "seen before its build was done?");
    cr_expect_lt(probe, 1050,
                 "probed %ld ms after its create: planned from the planted samples (about "
                 "1,200 ms), not from the first window's (about 900 ms)",
                 probe);
}
