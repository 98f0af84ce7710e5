/* The fault matrix: the real imgrecon binary against the real emulator (limits 10/1s on both
 * sides) with faults injected, one realistic mixed plan per scenario: creates (two shared), a
 * replace of a shared image, a share and an unshare of kept images, prune deletes of owned
 * images (one of them shared, so it is unshared first) and an ECS image to delete, next to an
 * unmanaged image and a protected one that must survive.
 *
 * Scenarios: random InternalError/ServiceUnavailable at 10%, 30% and 50% (--fault-rate with a
 * fixed seed; apply is rerun until it exits 0, at most 10 runs); a scripted throttling storm; an
 * answer of every mutating action held past the client's 30 s timeout (the call is carried out
 * after the client gave up); dropped connections; list lag after create.
 *
 * Every scenario must converge: the exact desired set, no duplicate name or id, nothing
 * unmanaged or protected touched, no genuine throttled call, every share after its image is
 * available and every unshare before its delete. Scripted throttling answers `Throttling`;
 * only the emulator's own rate-limit refusals answer `Throttling.User`, so the journal tells
 * them apart by code. Each scenario prints one line to stderr: apply runs, calls by action
 * and retries (journal lines carrying an error code). */
#include "apply_support.h"

#define SRV0 "ace0706b2ac4454d984295a94213ab00"
#define SRV1 "ace0706b2ac4454d984295a94213ab01"
#define SRV2 "ace0706b2ac4454d984295a94213ab02"

#define ID_KEEP_A "m-fkeepa00000000001"
#define ID_KEEP_B "m-fkeepb00000000001"
#define ID_REPLACE "m-freplace000000001"
#define ID_ORPHAN1 "m-forphan000000001"
#define ID_ORPHAN2 "m-forphan000000002"
#define ID_FOREIGN "m-fforeign00000001"
#define ID_PROTECT "m-fprotect00000001"
#define ID_ECS "m-fecs000000000001"

static env E;

static void setup(void)
{
    env_init(&E);
}

static void teardown(void)
{
    env_fini(&E);
}

TestSuite(faults, .init = setup, .fini = teardown, .timeout = 300);

#define FIX(id, name, srv, snap, shared, tags)                                                     \
    "      - image_id: " id "\n        name: " name "\n        instance_id: " srv                  \
    "\n        system_snapshot_id: " snap "\n        status: \"1\"\n        in_share: " shared     \
    "\n        tags: " tags "\n"

#define OWNED "{imgrecon/owner: team-a}"

/* Four servers: quota 12, room for the creates next to the images still to be deleted. */
static const char fixture_images[] =
    FIX(ID_KEEP_A, "keep-a", SRV0, "s-sys-00", "false", OWNED)        /* -> share */
    FIX(ID_KEEP_B, "keep-b", SRV0, "s-sys-00", "true", OWNED)         /* -> unshare */
    FIX(ID_REPLACE, "web-r", SRV0, "s-sys-00", "true", OWNED)         /* -> replace, shared */
    FIX(ID_ORPHAN1, "old-1", SRV0, "s-sys-00", "false", OWNED)        /* -> pruned */
    FIX(ID_ORPHAN2, "old-2", SRV1, "s-sys-01", "true", OWNED)         /* -> unshare, pruned */
    FIX(ID_FOREIGN, "foreign", SRV1, "s-sys-01", "true", "{team: x}") /* unmanaged */
    FIX(ID_PROTECT, "old-p", SRV1, "s-sys-01", "false",
        "{imgrecon/owner: team-a, imgrecon/protect: \"true\"}"); /* protected */

static const char fixture_ecs[] = "      - image_id: " ID_ECS "\n        name: old-ecs\n"
                                  "        status: Available\n        used_by_instances: 0\n";

#define IMG(name, srv, snap, extra)                                                                \
    "  - name: " name "\n    instance_id: " srv "\n    system_snapshot_id: " snap "\n" extra

static const char manifest[] = "region: cn-hangzhou\ncustom_images:\n" IMG(
    "keep-a", SRV0, "s-sys-00", "    share_to_ecs: true\n") IMG("keep-b", SRV0, "s-sys-00", "")
    IMG("web-r", SRV1, "s-sys-01", "    share_to_ecs: true\n") IMG(
        "new-1", SRV0, "s-sys-00b", "    share_to_ecs: true\n    description: one\n")
        IMG("new-2", SRV2, "s-sys-02", "    data_snapshot_id: s-data-02\n") IMG(
            "new-3", SRV2, "s-sys-02b",
            "    share_to_ecs: true\n    tags: {tier: x}\n") "ecs_images:\n  - image_id: " ID_ECS
                                                             "\n    ensure: absent\n";

/* The end state: name, shared, the id it must keep (NULL: a new image). */
static const struct {
    const char *name;
    bool shared;
    const char *id;
} want[] = {
    {"keep-a", true, ID_KEEP_A},   {"keep-b", false, ID_KEEP_B}, {"web-r", true, NULL},
    {"new-1", true, NULL},         {"new-2", false, NULL},       {"new-3", true, NULL},
    {"foreign", true, ID_FOREIGN}, {"old-p", false, ID_PROTECT},
};
#define N_WANT (sizeof(want) / sizeof(want[0]))
#define N_CREATES 4 /* web-r (replacement) and new-1..3 */

static bool streq(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}

static bool is_fixture_id(const char *id)
{
    static const char *const ids[] = {ID_KEEP_A,  ID_KEEP_B,  ID_REPLACE, ID_ORPHAN1,
                                      ID_ORPHAN2, ID_FOREIGN, ID_PROTECT};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
        if (streq(id, ids[i]))
            return true;
    return false;
}

static bool is_mutation(const char *action)
{
    return streq(action, "CreateCustomImage") || streq(action, "ModifyImageShareStatus") ||
           streq(action, "DeleteCustomImage") || streq(action, "DeleteCustomImages") ||
           streq(action, "DeleteImage");
}

/* True when journal line l names image id: its ImageId, or one of a batch's ImageIds. */
static bool names_image(json_t *l, const char *id)
{
    if (streq(jparam(l, "ImageId"), id))
        return true;
    const char *ids = jparam(l, "ImageIds");
    json_t *a = ids ? json_loads(ids, 0, NULL) : NULL;
    bool found = false;
    for (size_t i = 0; i < json_array_size(a) && !found; i++)
        found = streq(json_string_value(json_array_get(a, i)), id);
    json_decref(a);
    return found;
}

/* What makes two journal lines the same call: its ClientToken, or the image for ECS DeleteImage
 * (which takes none). NULL for calls that are not mutations. */
static const char *call_key(json_t *l)
{
    if (!is_mutation(jstr(l, "action")))
        return NULL;
    const char *t = jparam(l, "ClientToken");
    return t ? t : jparam(l, "ImageId");
}

/* Lines repeating an earlier line's mutation (same action and key): the retries that reached
 * the cloud although an earlier attempt did too (a held answer, a dropped connection). */
static size_t count_repeats(json_t *j, const char *action)
{
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(j); i++) {
        json_t *l = json_array_get(j, i);
        const char *k = call_key(l);
        if (k == NULL || (action != NULL && !streq(jstr(l, "action"), action)))
            continue;
        bool seen = false;
        for (size_t b = 0; b < i && !seen; b++) {
            json_t *e = json_array_get(j, b);
            seen = streq(jstr(e, "action"), jstr(l, "action")) && streq(call_key(e), k);
        }
        n += seen;
    }
    return n;
}

/* The calls used by action and the lines with an error code, on one line. */
static void print_stats(const char *scenario, int runs, json_t *j)
{
    static const char *const actions[] = {
        "ListCustomImages",  "DescribeImages",     "CreateCustomImage", "ModifyImageShareStatus",
        "DeleteCustomImage", "DeleteCustomImages", "DeleteImage"};
    char line[1024];
    int off =
        snprintf(line, sizeof(line), "faults: scenario=%s apply_runs=%d calls:", scenario, runs);
    for (size_t a = 0; a < sizeof(actions) / sizeof(actions[0]); a++)
        off += snprintf(line + off, sizeof(line) - (size_t)off, " %s=%zu", actions[a],
                        count_calls(j, 0, actions[a], "*"));
    /* Retries: every line with an error code, by code. */
    const char *codes[16];
    size_t counts[16], n_codes = 0, retries = 0;
    for (size_t i = 0; i < json_array_size(j); i++) {
        const char *c = jstr(json_array_get(j, i), "code");
        if (c == NULL)
            continue;
        retries++;
        size_t k = 0;
        while (k < n_codes && strcmp(codes[k], c) != 0)
            k++;
        if (k == n_codes && n_codes < 16) {
            codes[n_codes] = c;
            counts[n_codes++] = 0;
        }
        if (k < n_codes)
            counts[k]++;
    }
    off += snprintf(line + off, sizeof(line) - (size_t)off, " total=%zu retries=%zu repeats=%zu",
                    json_array_size(j), retries, count_repeats(j, NULL));
    for (size_t k = 0; k < n_codes && off < (int)sizeof(line); k++)
        off += snprintf(line + off, sizeof(line) - (size_t)off, "%s%s=%zu", k ? " " : " (",
                        codes[k], counts[k]);
    if (n_codes > 0 && off < (int)sizeof(line))
        snprintf(line + off, sizeof(line) - (size_t)off, ")");
    fprintf(stderr, "%s\n", line);
}

/* The emulator's end state equals the manifests: exact names, no duplicate, ids kept where
 * they must be, shares as declared, the ECS image gone. */
static void check_state(void)
{
    json_t *st = emu_proc_state(&E.emu);
    cr_assert_not_null(st);
    json_t *region = NULL, *regions = json_object_get(st, "regions");
    for (size_t i = 0; i < json_array_size(regions); i++)
        if (streq(jstr(json_array_get(regions, i), "region"), "cn-hangzhou"))
            region = json_array_get(regions, i);
    cr_assert_not_null(region);
    json_t *imgs = json_object_get(region, "custom_images");
    cr_expect_eq(json_array_size(imgs), N_WANT, "images in the region: %zu", json_array_size(imgs));
    for (size_t i = 0; i < json_array_size(imgs); i++) {
        json_t *a = json_array_get(imgs, i);
        for (size_t k = i + 1; k < json_array_size(imgs); k++) {
            json_t *b = json_array_get(imgs, k);
            cr_expect(!streq(jstr(a, "name"), jstr(b, "name")), "duplicate name %s",
                      jstr(a, "name"));
            cr_expect(!streq(jstr(a, "image_id"), jstr(b, "image_id")), "duplicate id %s",
                      jstr(a, "image_id"));
        }
    }
    for (size_t w = 0; w < N_WANT; w++) {
        json_t *img = find_image(imgs, want[w].name);
        cr_expect_not_null(img, "%s missing", want[w].name);
        if (img == NULL)
            continue;
        cr_expect(streq(jstr(img, "status"), "1"), "%s status %s", want[w].name,
                  jstr(img, "status"));
        cr_expect_eq(image_shared(img), want[w].shared, "%s shared", want[w].name);
        if (want[w].id != NULL)
            cr_expect(streq(jstr(img, "image_id"), want[w].id), "%s replaced: %s", want[w].name,
                      jstr(img, "image_id"));
        else
            cr_expect(!is_fixture_id(jstr(img, "image_id")), "%s not new: %s", want[w].name,
                      jstr(img, "image_id"));
    }
    json_t *web_r = find_image(imgs, "web-r");
    if (web_r != NULL)
        cr_expect(streq(jstr(web_r, "instance_id"), SRV1), "web-r on its new server");
    json_t *ecs = json_object_get(region, "ecs_images");
    for (size_t i = 0; i < json_array_size(ecs); i++)
        cr_expect(!streq(jstr(json_array_get(ecs, i), "image_id"), ID_ECS),
                  "the ECS image is still there");
    json_decref(st);
}

/* Index of the first successful line of action (with Operation op when given) on image id at
 * or after `from`; SIZE_MAX when none. */
static size_t find_ok(json_t *j, size_t from, const char *action, const char *op, const char *id)
{
    for (size_t i = from; i < json_array_size(j); i++) {
        json_t *l = json_array_get(j, i);
        const char *a = jstr(l, "action");
        bool same = streq(a, action) ||
                    (streq(action, "DeleteCustomImage") && streq(a, "DeleteCustomImages"));
        if (jstr(l, "code") == NULL && same && (op == NULL || streq(jparam(l, "Operation"), op)) &&
            names_image(l, id))
            return i;
    }
    return SIZE_MAX;
}

/* The first successful call of action (either delete for "DeleteCustomImage") on id. */
static size_t find_ok(json_t *j, size_t from, const char *action, const char *op, const char *id);

/* The journal rules, read from the emulator's journal (one line per request, in the order the
 * answers were sent). */
static void check_journal(json_t *j)
{
    size_t n = json_array_size(j);
    const char *created[32];
    size_t n_created = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *l = json_array_get(j, i);
        const char *a = jstr(l, "action"), *c = jstr(l, "code"), *id = jparam(l, "ImageId");
        /* Genuine rate-limit refusals only; scripted ones answer plain "Throttling". */
        cr_expect(!streq(c, "Throttling.User"), "over the rate limit: %s %s at %s", a, id ? id : "",
                  jstr(l, "ts"));
        cr_expect(!streq(c, "CustomImageQuotaLimit"), "a create into a full region at %s",
                  jstr(l, "ts"));
        cr_expect(!streq(c, "IncorrectImageStatus"), "%s %s before available at %s", a,
                  id ? id : "", jstr(l, "ts"));
        cr_expect(!streq(c, "ImageNameAlreadyExist"), "a second create of %s at %s",
                  jparam(l, "ImageName"), jstr(l, "ts"));
        /* Nothing unmanaged or protected is touched, and kept images are never deleted. */
        if (streq(a, "DeleteCustomImages"))
            cr_expect(!names_image(l, ID_FOREIGN) && !names_image(l, ID_PROTECT) &&
                          !names_image(l, ID_KEEP_A) && !names_image(l, ID_KEEP_B),
                      "a batch names an image that is not to be deleted: %s",
                      jparam(l, "ImageIds"));
        if (is_mutation(a) && id != NULL) {
            cr_expect(!streq(id, ID_FOREIGN), "%s on the unmanaged image", a);
            cr_expect(!streq(id, ID_PROTECT), "%s on the protected image", a);
            cr_expect(
                !(streq(a, "DeleteCustomImage") && (streq(id, ID_KEEP_A) || streq(id, ID_KEEP_B))),
                "a kept image was deleted");
        }
        if (streq(a, "CreateCustomImage") && c == NULL) {
            const char *nid = jstr(l, "image_id");
            cr_expect_not_null(nid);
            bool seen = false;
            for (size_t k = 0; k < n_created && !seen; k++)
                seen = streq(created[k], nid);
            if (!seen && nid && n_created < 32)
                created[n_created++] = nid;
        }
    }
    cr_expect_eq(n_created, N_CREATES, "distinct images created: %zu", n_created);

    /* Shares only of images that are available: the emulator refuses a share of an image
     * still creating with IncorrectImageStatus (checked above); and every created image that
     * is shared was shared after its create was answered. */
    for (size_t i = 0; i < n; i++) {
        json_t *l = json_array_get(j, i);
        if (!streq(jstr(l, "action"), "ModifyImageShareStatus") || jstr(l, "code") != NULL ||
            !streq(jparam(l, "Operation"), "Share"))
            continue;
        const char *id = jparam(l, "ImageId");
        if (id == NULL || is_fixture_id(id))
            continue;
        size_t created_at = SIZE_MAX;
        for (size_t k = 0; k < i && created_at == SIZE_MAX; k++) {
            json_t *c = json_array_get(j, k);
            if (streq(jstr(c, "action"), "CreateCustomImage") && jstr(c, "code") == NULL &&
                streq(jstr(c, "image_id"), id))
                created_at = k;
        }
        cr_expect_neq(created_at, SIZE_MAX, "share of %s before its create was answered", id);
    }

    /* Unshare before delete, for each image deleted while shared (the replaced web-r and the
     * pruned old-2). A successful unshare of the image comes before its first successful
     * delete; an unshare answered after the delete can only be the late answer of a call
     * already carried out before it (same ClientToken), as with a held response. */
    static const char *const shared_deleted[] = {ID_REPLACE, ID_ORPHAN2};
    for (size_t s = 0; s < 2; s++) {
        const char *id = shared_deleted[s];
        size_t del = find_ok(j, 0, "DeleteCustomImage", NULL, id);
        cr_expect_neq(del, SIZE_MAX, "%s never deleted", id);
        size_t un = find_ok(j, 0, "ModifyImageShareStatus", "UnShare", id);
        cr_expect(un < del, "%s: no unshare before its delete", id);
        for (size_t k = del + 1; del != SIZE_MAX && k < n; k++) {
            json_t *l = json_array_get(j, k);
            if (!streq(jstr(l, "action"), "ModifyImageShareStatus") ||
                !streq(jparam(l, "ImageId"), id))
                continue;
            bool replay = false;
            for (size_t b = 0; b < del && !replay; b++) {
                json_t *e = json_array_get(j, b);
                replay = jstr(e, "code") == NULL &&
                         streq(jstr(e, "action"), "ModifyImageShareStatus") &&
                         streq(jparam(e, "ClientToken"), jparam(l, "ClientToken")) &&
                         streq(jparam(e, "ImageId"), id);
            }
            cr_expect(replay, "%s %s of %s after its delete", jparam(l, "Operation"),
                      jstr(l, "code") ? jstr(l, "code") : "ok", id);
        }
    }
    /* The pruned image without a share and the ECS image were deleted too. */
    cr_expect_neq(find_ok(j, 0, "DeleteCustomImage", NULL, ID_ORPHAN1), SIZE_MAX);
    cr_expect_neq(find_ok(j, 0, "DeleteImage", NULL, ID_ECS), SIZE_MAX);
}

/* Whether every action in held (a NULL-terminated const char *const *) shows a repeated call in
 * the journal: await_held's condition. */
static bool all_held(void *ud)
{
    const char *const *held = ud;
    json_t *j = journal_lines(&E);
    bool all = true;
    for (size_t i = 0; held[i] != NULL && all; i++)
        all = count_repeats(j, held[i]) > 0;
    json_decref(j);
    return all;
}

/* Waits, on the journal's writes and at most timeout_ms, until every action in `held` shows
 * a repeated call: the held attempt (journaled when its answer is finally sent, to a client
 * that gave up) next to the retry that settled it. */
static bool await_held(const char *const *held, int timeout_ms)
{
    return test_file_await(E.emu.journal, IN_MODIFY, timeout_ms, all_held, (void *)held);
}

/* Runs one scenario: starts the emulator with `emu_extra` and the scripted `faults` (JSON or
 * NULL), applies until exit 0 (at most max_runs), then checks everything. */
static void scenario_held(const char *name, const char *const *emu_extra, const char *faults,
                          int max_runs, const char *const *held)
{
    write_fixture(&E, 4, fixture_images, fixture_ecs);
    start_emu(&E, "300ms", emu_extra);
    write_file(E.config, "owner: team-a\nprune: true\n");
    write_file(E.manifest, manifest);
    if (faults != NULL)
        cr_assert_eq(emu_proc_add_fault(&E.emu, faults), 0, "faults: %s", faults);

    int runs = 0, status = -1;
    char *last = NULL;
    while (status != 0 && runs < max_runs) {
        run_result r = RUN(&E, "apply", "-f", E.manifest, "--auto-approve");
        runs++;
        status = r.status;
        cr_assert(status == 0 || status == 1, "%s: apply run %d died: exit %d\n%s", name, runs,
                  status, r.out);
        free(last);
        last = r.out;
    }
    cr_assert_eq(status, 0, "%s: no convergence in %d apply runs; last output:\n%s", name, runs,
                 last);
    free(last);

    if (held != NULL)
        cr_assert(await_held(held, 40000), "%s: the held calls never answered", name);
    json_t *j = journal_lines(&E);
    print_stats(name, runs, j);
    check_state();
    check_journal(j);
    json_decref(j);

    /* imgrecon agrees: a plan shows no change (a plan that met injected faults is run again). */
    (void)emu_proc_clear_faults(&E.emu);
    json_t *j0 = journal_lines(&E);
    size_t before = json_array_size(j0);
    json_decref(j0);
    run_result r = {0};
    for (int i = 0; i < max_runs; i++) {
        run_result_free(&r);
        r = RUN(&E, "plan", "-f", E.manifest, "--detailed-exitcode");
        if (r.status != 1)
            break;
    }
    cr_expect_eq(r.status, 0, "%s: plan after convergence: exit %d\n%s", name, r.status, r.out);
    run_result_free(&r);
    j = journal_lines(&E);
    size_t mutations = 0;
    for (size_t i = before; i < json_array_size(j); i++)
        mutations += is_mutation(jstr(json_array_get(j, i), "action"));
    json_decref(j);
    cr_expect_eq(mutations, 0, "plan sent %zu mutating calls", mutations);
    check_state();
}

static void scenario(const char *name, const char *const *emu_extra, const char *faults,
                     int max_runs)
{
    scenario_held(name, emu_extra, faults, max_runs, NULL);
}

/* Random 5xx at `rate` with a fixed seed (IMGRECON_FAULT_SEED overrides it, to try others);
 * at the higher rates one apply may give up on a call, so apply runs until exit 0, at most 10
 * times. */
static void random_faults(const char *name, const char *rate, const char *seed)
{
    const char *env_seed = getenv("IMGRECON_FAULT_SEED");
    if (env_seed != NULL && *env_seed != '\0')
        seed = env_seed;
    char label[64];
    snprintf(label, sizeof(label), "%s/seed=%s", name, seed);
    scenario(label, (const char *const[]){"--fault-rate", rate, "--seed", seed, NULL}, NULL, 10);
}

Test(faults, random_5xx_10_percent)
{
    random_faults("random-5xx-10%", "0.1", "101");
}

Test(faults, random_5xx_30_percent)
{
    random_faults("random-5xx-30%", "0.3", "303");
}

Test(faults, random_5xx_50_percent)
{
    random_faults("random-5xx-50%", "0.5", "505");
}

/* Every action answers scripted Throttling several times in a row, any action first. */
Test(faults, throttling_storm)
{
    scenario("throttling-storm", NULL,
             "[{\"kind\":\"Throttling\",\"count\":4},"
             "{\"action\":\"ListCustomImages\",\"kind\":\"Throttling\",\"count\":3},"
             "{\"action\":\"DescribeImages\",\"kind\":\"Throttling\",\"count\":2},"
             "{\"action\":\"CreateCustomImage\",\"kind\":\"Throttling\",\"count\":5},"
             "{\"action\":\"ModifyImageShareStatus\",\"kind\":\"Throttling\",\"count\":5},"
             "{\"action\":\"DeleteCustomImages\",\"kind\":\"Throttling\",\"count\":5},"
             "{\"action\":\"DeleteImage\",\"kind\":\"Throttling\",\"count\":2}]",
             1);
}

/* The first call of each mutating action is held past the client's 30 s timeout and then
 * carried out: the retries (same ClientToken) must not act twice. The holds run side by side,
 * so the scenario costs about one timeout. */
Test(faults, responses_slower_than_the_client_timeout)
{
    /* Held 30.2 s: carried out just after the client gave up, so the retry finds it done.
     * Held 31 s: the retry is carried out first and the held call comes after it. */
    scenario_held("slow-responses", NULL,
                  "[{\"action\":\"CreateCustomImage\",\"kind\":\"delay\",\"delay_ms\":30200},"
                  "{\"action\":\"ModifyImageShareStatus\",\"kind\":\"delay\",\"delay_ms\":31000},"
                  "{\"action\":\"DeleteCustomImages\",\"kind\":\"delay\",\"delay_ms\":31000},"
                  "{\"action\":\"DeleteImage\",\"kind\":\"delay\",\"delay_ms\":30200}]",
                  1,
                  (const char *const[]){"CreateCustomImage", "ModifyImageShareStatus",
                                        "DeleteCustomImages", "DeleteImage", NULL});
}

Test(faults, dropped_connections)
{
    scenario("dropped-connections", NULL,
             "[{\"action\":\"ListCustomImages\",\"kind\":\"drop\",\"count\":2},"
             "{\"action\":\"DescribeImages\",\"kind\":\"drop\",\"count\":1},"
             "{\"action\":\"CreateCustomImage\",\"kind\":\"drop\",\"count\":3},"
             "{\"action\":\"ModifyImageShareStatus\",\"kind\":\"drop\",\"count\":3},"
             "{\"action\":\"DeleteCustomImages\",\"kind\":\"drop\",\"count\":2},"
             "{\"action\":\"DeleteImage\",\"kind\":\"drop\",\"count\":1}]",
             1);
}

/* New images stay out of every list for 2 s after their create. */
Test(faults, list_lag_after_create)
{
    scenario("list-lag-2s", (const char *const[]){"--list-lag", "2s", NULL}, NULL, 1);
}
