/* Progress and machine-readable output end to end (issue 14 items 4 and 5): the real binary
 * against the real emulator. apply with stdout to a file prints each step's start and end with
 * image ids and says what a long wait waits for; `apply --json` streams events a strict reader
 * accepts, in order, with the summary last; `--log-format json` turns every command's stderr
 * (and the daemon's log) into typed JSON lines. Limits are scaled down (10/1s). */
#include "apply_support.h"
#include "rec_plan.h"

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

TestSuite(progress, .init = setup, .fini = teardown, .timeout = 300);

#define IMG(name, extra)                                                                           \
    "  - name: " name "\n    instance_id: " SRV0 "\n    system_snapshot_id: s-sys-00\n" extra

/* Two creates, one of them shared: create, wait for the build, share. */
#define TWO_IMAGES                                                                                 \
    "region: cn-hangzhou\ncustom_images:\n" IMG("web-a", "")                                       \
        IMG("web-b", "    share_to_ecs: true\n")

/* Like RUN (apply_support.h: the same common options and environment), with stdout and stderr
 * captured separately (test_proc_run) so that a stream can be parsed strictly. bare: without the
 * common options. */
static test_proc_result run_split_opts(bool bare, const char *const *args)
{
    const char *argv[64];
    size_t n = 0;
    argv[n++] = IMGRECON_BIN;
    argv[n++] = args[0];
    const char *common[] = {"-c",    E.config,       "--endpoint", E.emu.base_url, "--state-dir",
                            E.state, "--rate-limit", "10/1s",      "--no-color"};
    for (size_t i = 0; !bare && i < sizeof(common) / sizeof(common[0]); i++)
        argv[n++] = common[i];
    for (size_t i = 1; args[i] != NULL && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    static const char *const run_env[] = {"ALIBABA_CLOUD_ACCESS_KEY_ID=" KEY_ID,
                                          "ALIBABA_CLOUD_ACCESS_KEY_SECRET=" KEY_SECRET,
                                          "ALIBABA_CLOUD_SECURITY_TOKEN",
                                          "IMGRECON_ENDPOINT",
                                          "JOURNAL_STREAM",
                                          "NO_COLOR=1",
                                          NULL};
    test_proc_opts o = {.env = run_env, .wrap = true};
    test_proc_result r;
    test_proc_run(argv, &o, RUN_TIMEOUT_MS, &r);
    return r;
}

static test_proc_result run_split_v(const char *const *args)
{
    return run_split_opts(false, args);
}

#define SPLIT(...) run_split_v((const char *const[]){__VA_ARGS__, NULL})

/* Parses text as JSON lines with the strict reader: every line one object, no duplicate keys.
 * Returns the array of objects (caller frees). */
static json_t *strict_lines(const char *text, const char *what)
{
    json_t *arr = json_array();
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        cr_assert_not_null(nl, "%s: the last line has no newline: %s", what, p);
        json_error_t e;
        json_t *o = json_loadb(p, (size_t)(nl - p), JSON_REJECT_DUPLICATES, &e);
        cr_assert_not_null(o, "%s: not strict JSON (%s): %.*s", what, e.text, (int)(nl - p), p);
        cr_assert(json_is_object(o), "%s: not an object: %.*s", what, (int)(nl - p), p);
        json_array_append_new(arr, o);
        p = nl + 1;
    }
    return arr;
}

/* Every line of a JSON log has a string ts, level and msg. */
static void check_log_lines(json_t *lines, const char *what)
{
    for (size_t i = 0; i < json_array_size(lines); i++) {
        json_t *o = json_array_get(lines, i);
        cr_expect(json_is_string(json_object_get(o, "ts")), "%s line %zu: ts", what, i);
        cr_expect(json_is_string(json_object_get(o, "level")), "%s line %zu: level", what, i);
        cr_expect(json_is_string(json_object_get(o, "msg")), "%s line %zu: msg", what, i);
    }
}

/* The image id the emulator holds for name (borrowed from imgs). */
static const char *image_id_of(json_t *imgs, const char *name)
{
    json_t *img = find_image(imgs, name);
    cr_assert_not_null(img, "no image %s in the emulator", name);
    return jstr(img, "image_id");
}

Test(progress, apply_to_a_file_prints_steps_with_image_ids_and_long_waits)
{
    write_fixture(&E, 1, NULL, NULL);
    start_emu(&E, "5s", NULL);
    write_file(E.manifest, TWO_IMAGES);
    run_result r = RUN(&E, "apply", "-f", E.manifest, "--auto-approve");
    cr_assert_eq(r.status, 0, "apply: exit %d\n%s", r.status, r.out);
    json_t *imgs = state_images(&E);
    const char *a = image_id_of(imgs, "web-a"), *b = image_id_of(imgs, "web-b");
    /* Each line once, in an order a reader can follow: the share after its create's end. */
    const struct {
        const char *head, *id;
    } lines[] = {
        {"create swas.cn-hangzhou.custom_image.web-a: started", NULL},
        {"create swas.cn-hangzhou.custom_image.web-b: started", NULL},
        {"create swas.cn-hangzhou.custom_image.web-a: done", a},
        {"create swas.cn-hangzhou.custom_image.web-b: done", b},
        {"share swas.cn-hangzhou.custom_image.web-b: started", b},
        {"share swas.cn-hangzhou.custom_image.web-b: done", b},
    };
    const char *b_done = NULL;
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        char want[256];
        snprintf(want, sizeof(want), "%s%s%s%s\n", lines[i].head, lines[i].id ? " (" : "",
                 lines[i].id ? lines[i].id : "", lines[i].id ? ")" : "");
        const char *at = strstr(r.out, want);
        cr_expect_not_null(at, "missing \"%s\" in:\n%s", want, r.out);
        if (i == 3)
            b_done = at;
        if (i >= 4)
            cr_expect(at != NULL && b_done != NULL && at > b_done,
                      "\"%s\" before web-b's create "
                      "ended:\n%s",
                      want, r.out);
    }
    /* The build takes 5 s: the wait is reported (after 3 s) with what it waits for. */
    cr_expect_not_null(strstr(r.out, "waiting for image build ("), "no waiting line:\n%s", r.out);
    cr_expect_not_null(strstr(r.out, "becoming available"), "%s", r.out);
    cr_expect_not_null(strstr(r.out, "so far"), "how long it has waited:\n%s", r.out);
    cr_expect(strstr(r.out, "\033[") == NULL, "no terminal control in a file:\n%s", r.out);
    json_decref(imgs);
    run_result_free(&r);
}

Test(progress, apply_to_a_file_says_when_it_waits_for_the_rate_limit)
{
    write_fixture(&E, 1, NULL, NULL);
    start_emu(&E, "300ms", NULL);
    write_file(E.manifest, "region: cn-hangzhou\ncustom_images:\n" IMG("web-a", "") IMG("web-b", "")
                               IMG("web-c", ""));
    /* One CreateCustomImage every 4 s: the third create waits about 8 s. */
    run_result r = RUN(&E, "apply", "-f", E.manifest, "--auto-approve", "--rate-limit",
                       "CreateCustomImage=1/4s");
    cr_assert_eq(r.status, 0, "apply: exit %d\n%s", r.status, r.out);
    cr_expect_not_null(strstr(r.out, "waiting for the rate limit: next CreateCustomImage call in"),
                       "no rate-limit waiting line:\n%s", r.out);
    cr_expect(strstr(r.out, "Apply complete: 3 created") != NULL, "%s", r.out);
    run_result_free(&r);
    assert_journal_rules(&E);
}

/* The event stream: strict JSON lines, seq 1, 2, ...; planned first, summary last; each step
 * starts before it ends; creates end with the emulator's image ids. */
Test(progress, apply_json_streams_events_in_order_with_a_summary_last)
{
    write_fixture(&E, 1, NULL, NULL);
    start_emu(&E, "5s", NULL);
    write_file(E.manifest, TWO_IMAGES);
    test_proc_result r = SPLIT("apply", "-f", E.manifest, "--auto-approve", "--json");
    cr_assert_eq(r.status, 0, "exit %d\nstdout:\n%s\nstderr:\n%s", r.status, r.out, r.err);
    cr_expect_str_eq(r.err, "", "nothing on stderr");
    json_t *ev = strict_lines(r.out, "apply --json");
    size_t n = json_array_size(ev);
    cr_assert_geq(n, 8, "%s", r.out);
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(ev, i);
        cr_expect_str_eq(jstr(o, "format_version"), "1.0");
        cr_expect_eq(json_integer_value(json_object_get(o, "seq")), (json_int_t)i + 1);
        cr_expect(json_is_string(json_object_get(o, "event")), "line %zu", i);
    }
    json_t *first = json_array_get(ev, 0), *last = json_array_get(ev, n - 1);
    cr_expect_str_eq(jstr(first, "event"), "planned");
    cr_expect_eq(json_integer_value(json_object_get(first, "steps")), 3);
    cr_expect_str_eq(jstr(json_object_get(first, "plan"), "format_version"),
                     REC_PLAN_FORMAT_VERSION);
    /* The embedded plan is the whole document: apply computes the fingerprints for --json
     * (without it, apply and the daemon skip them). */
    json_t *fp = json_object_get(json_object_get(first, "plan"), "fingerprint");
    cr_expect_eq(strlen(jstr(fp, "desired") ? jstr(fp, "desired") : ""), 64);
    cr_expect_eq(strlen(jstr(fp, "observed") ? jstr(fp, "observed") : ""), 64);
    cr_expect_str_eq(jstr(last, "event"), "summary");
    cr_expect_str_eq(jstr(last, "result"), "complete");
    cr_expect(json_is_integer(json_object_get(last, "exit_code")));
    cr_expect_eq(json_integer_value(json_object_get(last, "exit_code")), 0);
    cr_expect_eq(json_integer_value(json_object_get(last, "steps_done")), 3);
    cr_expect_eq(json_integer_value(json_object_get(last, "steps_failed")), 0);
    json_t *by = json_object_get(last, "done_by_action");
    cr_expect_eq(json_integer_value(json_object_get(by, "create")), 2);
    cr_expect_eq(json_integer_value(json_object_get(by, "share")), 1);
    cr_expect(json_is_null(json_object_get(last, "error")));

    json_t *imgs = state_images(&E);
    size_t started = 0, done = 0, waits = 0;
    for (size_t i = 1; i + 1 < n; i++) {
        json_t *o = json_array_get(ev, i);
        const char *kind = jstr(o, "event"), *addr = jstr(o, "address");
        cr_assert(kind != NULL);
        if (strcmp(kind, "waiting") == 0) {
            waits++;
            cr_expect_str_eq(jstr(o, "for"), "image_build");
            cr_expect(json_is_integer(json_object_get(o, "waited_ms")));
            cr_expect_geq(json_integer_value(json_object_get(o, "waited_ms")), 3000);
            cr_expect(json_is_integer(json_object_get(o, "wait_ms")));
            continue;
        }
        cr_expect(strcmp(kind, "step_started") == 0 || strcmp(kind, "step_done") == 0,
                  "unexpected event %s", kind);
        cr_assert_not_null(addr);
        if (strcmp(kind, "step_started") == 0) {
            started++;
            continue;
        }
        done++;
        /* Its start came first. */
        bool seen = false;
        for (size_t k = 1; k < i; k++) {
            json_t *s = json_array_get(ev, k);
            seen |= strcmp(jstr(s, "event"), "step_started") == 0 &&
                    strcmp(jstr(s, "address"), addr) == 0 &&
                    strcmp(jstr(s, "action"), jstr(o, "action")) == 0;
        }
        cr_expect(seen, "%s %s done before it started", jstr(o, "action"), addr);
        const char *name = strrchr(addr, '.') + 1;
        cr_expect_str_eq(jstr(o, "image_id"), image_id_of(imgs, name), "%s", addr);
        cr_expect(json_is_integer(json_object_get(o, "done")));
    }
    cr_expect_eq(started, 3);
    cr_expect_eq(done, 3);
    cr_expect_geq(waits, 1, "the 5 s build is reported:\n%s", r.out);
    json_decref(imgs);
    json_decref(ev);
    test_proc_result_clear(&r);
}

Test(progress, apply_json_refuses_to_ask_and_ends_with_a_summary_on_errors)
{
    write_fixture(&E, 1, NULL, NULL);
    start_emu(&E, "300ms", NULL);
    write_file(E.manifest, TWO_IMAGES);
    test_proc_result r = SPLIT("apply", "-f", E.manifest, "--json");
    cr_expect_eq(r.status, 1);
    cr_expect_str_eq(r.out, "", "no events without an approval");
    cr_expect_not_null(strstr(r.err, "--auto-approve"), "%s", r.err);
    test_proc_result_clear(&r);

    write_file(E.manifest, "region: cn-hangzhou\ncustom_images:\n  - name: -bad\n");
    r = SPLIT("apply", "-f", E.manifest, "--json", "--auto-approve");
    cr_expect_eq(r.status, 1);
    json_t *ev = strict_lines(r.out, "apply --json on a broken manifest");
    cr_assert_eq(json_array_size(ev), 1, "only the summary:\n%s", r.out);
    json_t *s = json_array_get(ev, 0);
    cr_expect_str_eq(jstr(s, "event"), "summary");
    cr_expect_str_eq(jstr(s, "result"), "error");
    cr_expect_eq(json_integer_value(json_object_get(s, "exit_code")), 1);
    cr_expect(json_is_string(json_object_get(s, "error")));
    cr_expect_not_null(strstr(r.err, "images.yaml:3:"), "the diagnostic on stderr:\n%s", r.err);
    json_decref(ev);
    test_proc_result_clear(&r);
}

/* --log-format json on every command: whatever it says on stderr is JSON lines a strict reader
 * accepts; manifest diagnostics keep their position as typed fields. */
Test(progress, log_format_json_on_every_command)
{
    write_fixture(&E, 1, NULL, NULL);
    start_emu(&E, "300ms", NULL);
    write_file(E.manifest, "region: cn-hangzhou\ncustom_images:\n  - name: -bad\n");
    static const struct {
        const char *args[8];
        int status;
    } cases[] = {
        {{"validate", "-f", "@M"}, 1},
        {{"plan", "-f", "@M"}, 1},
        {{"apply", "-f", "@M", "--auto-approve"}, 1},
        {{"run", "-f", "@M", "--once"}, 1},
        {{"status"}, 1},
        {{"api", "swas", "NoSuchThing", "-v"}, 1},
        {{"notify-test"}, 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *argv[12];
        size_t n = 0;
        for (size_t k = 0; k < 8 && cases[i].args[k] != NULL; k++) /* @M: the manifest */
            argv[n++] = strcmp(cases[i].args[k], "@M") == 0 ? E.manifest : cases[i].args[k];
        argv[n++] = "--log-format";
        argv[n++] = "json";
        argv[n] = NULL;
        test_proc_result r = run_split_v(argv);
        char what[64];
        snprintf(what, sizeof(what), "%s --log-format json", argv[0]);
        cr_expect_eq(r.status, cases[i].status, "%s: exit %d\n%s", what, r.status, r.err);
        json_t *lines = strict_lines(r.err, what);
        cr_expect_geq(json_array_size(lines), 1, "%s says why on stderr", what);
        check_log_lines(lines, what);
        if (strcmp(argv[0], "validate") == 0 || strcmp(argv[0], "plan") == 0) {
            json_t *d = json_array_get(lines, 0);
            cr_expect_str_eq(jstr(d, "level"), "error");
            cr_expect_str_eq(jstr(d, "file"), E.manifest);
            cr_expect(json_is_integer(json_object_get(d, "line")), "%s: typed line", what);
            cr_expect_eq(json_integer_value(json_object_get(d, "line")), 3);
        }
        json_decref(lines);
        test_proc_result_clear(&r);
    }
    test_proc_result r =
        run_split_opts(true, (const char *const[]){"version", "--log-format", "json", NULL});
    cr_expect_neq(r.status, 0, "version has no logs: the option is refused");
    cr_expect_str_eq(r.out, "");
    cr_expect_not_null(strstr(r.err, "unexpected argument '--log-format'"), "%s", r.err);
    test_proc_result_clear(&r);
}

/* The daemon's JSON log: typed fields, step lines with image ids (also the new ones), and the
 * long image build logged at info. */
Test(progress, daemon_json_log_is_typed_and_names_images)
{
    write_fixture(&E, 1, NULL, NULL);
    start_emu(&E, "5s", NULL);
    write_file(E.manifest, TWO_IMAGES);
    test_proc_result r = SPLIT("run", "-f", E.manifest, "--once", "--log-format", "json");
    cr_assert_eq(r.status, 0, "exit %d\n%s", r.status, r.err);
    json_t *lines = strict_lines(r.err, "run --log-format json");
    check_log_lines(lines, "run");
    json_t *imgs = state_images(&E);
    size_t started = 0, done = 0, waits = 0, finished = 0;
    for (size_t i = 0; i < json_array_size(lines); i++) {
        json_t *o = json_array_get(lines, i);
        const char *msg = jstr(o, "msg");
        if (strcmp(msg, "step started") == 0) {
            started++;
            if (strcmp(jstr(o, "action"), "share") == 0)
                cr_expect_str_eq(jstr(o, "image_id"), image_id_of(imgs, "web-b"));
        } else if (strcmp(msg, "step done") == 0) {
            done++;
            const char *name = strrchr(jstr(o, "address"), '.') + 1;
            cr_expect_str_eq(jstr(o, "image_id"), image_id_of(imgs, name));
            cr_expect(json_is_integer(json_object_get(o, "done")), "typed done");
            cr_expect_eq(json_integer_value(json_object_get(o, "total")), 3);
        } else if (strcmp(msg, "waiting") == 0) {
            waits++;
            cr_expect_str_eq(jstr(o, "for"), "image_build");
            cr_expect(json_is_integer(json_object_get(o, "waited_ms")));
            cr_expect_str_eq(jstr(o, "level"), "info");
        } else if (strcmp(msg, "cycle finished") == 0) {
            finished++;
            cr_expect(json_is_integer(json_object_get(o, "done")), "typed done");
            cr_expect_eq(json_integer_value(json_object_get(o, "done")), 3);
            cr_expect(json_is_number(json_object_get(o, "duration_s")), "typed duration");
        }
    }
    cr_expect_eq(started, 3, "%s", r.err);
    cr_expect_eq(done, 3, "%s", r.err);
    cr_expect_geq(waits, 1, "the 5 s build is logged at info:\n%s", r.err);
    cr_expect_eq(finished, 1, "%s", r.err);
    json_decref(imgs);
    json_decref(lines);
    test_proc_result_clear(&r);
}

/* An owned image of the fixture (indented for write_fixture), tagged for team-a only. */
#define OWNED(id, name)                                                                            \
    "      - image_id: " id "\n        name: " name "\n        instance_id: " SRV0                 \
    "\n        system_snapshot_id: s-sys-00\n        status: \"1\"\n        in_share: false\n"     \
    "        tags: {imgrecon/owner: team-a}\n"

/* Batched steps (here two TagResources calls, one per tag change) that wait for the rate limit
 * report the wait from when they were handed to the client, as single steps do (they once
 * reported it from the loop clock's origin). */
Test(progress, a_batch_waiting_for_the_rate_limit_reports_its_own_wait)
{
    write_fixture(&E, 1, OWNED("m-prog0tag00000001", "web-a") OWNED("m-prog0tag00000002", "web-b"),
                  NULL);
    start_emu(&E, "300ms", NULL);
    write_file(E.manifest,
               "region: cn-hangzhou\ncustom_images:\n" IMG("web-a", "    tags: {team: x}\n")
                   IMG("web-b", "    tags: {team: y}\n"));
    /* One TagResources call every 6 s: the second tag change waits about 6 s. */
    test_proc_result r = SPLIT("apply", "-f", E.manifest, "--auto-approve", "--json",
                               "--rate-limit", "TagResources=1/6s");
    cr_assert_eq(r.status, 0, "apply --json: exit %d\n%s\n%s", r.status, r.out, r.err);
    json_t *ev = strict_lines(r.out, "apply --json");
    size_t waits = 0;
    for (size_t i = 0; i < json_array_size(ev); i++) {
        json_t *o = json_array_get(ev, i);
        if (strcmp(jstr(o, "event"), "waiting") != 0 || strcmp(jstr(o, "for"), "rate_limit") != 0)
            continue;
        waits++;
        json_int_t waited = json_integer_value(json_object_get(o, "waited_ms"));
        cr_expect(waited >= 2000 && waited <= 7000,
                  "the batch waited %" JSON_INTEGER_FORMAT " ms by its report (about 3-6 s)",
                  waited);
    }
    cr_expect_geq(waits, 1, "the 6 s wait is reported:\n%s", r.out);
    json_t *imgs = state_images(&E);
    json_t *a = find_image(imgs, "web-a"), *b = find_image(imgs, "web-b");
    cr_expect_str_eq(jstr(json_object_get(a, "tags"), "team"), "x");
    cr_expect_str_eq(jstr(json_object_get(b, "tags"), "team"), "y");
    json_decref(imgs);
    json_decref(ev);
    test_proc_result_clear(&r);
}
