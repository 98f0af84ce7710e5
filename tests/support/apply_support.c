/* See apply_support.h. */
#include "apply_support.h"

int64_t mono_ms_now(void)
{
    return (int64_t)test_clock_ms();
}

void write_file(const char *path, const char *text)
{
    test_file_write(path, text);
}

char *read_file(const char *path)
{
    return test_file_read(path);
}

/* A fixture with one account (the demo key), one region, `servers` servers (quota 3 each, at
 * most 15) and the given custom_images / ecs_images YAML blocks (already indented by 4). */
void write_fixture(env *e, unsigned servers, const char *images_yaml, const char *ecs_yaml)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    fprintf(m, "accounts:\n  - access_key_id: " KEY_ID "\n    access_key_secret: " KEY_SECRET
               "\n    user_id: 1234567890123456\n"
               "regions:\n  - region: cn-hangzhou\n    servers:\n");
    for (unsigned i = 0; i < servers; i++)
        fprintf(m,
                "      - instance_id: ace0706b2ac4454d984295a94213ab%02u\n"
                "        name: web-%u\n        status: Running\n"
                "        system_snapshots: [s-sys-%02u, s-sys-%02ub]\n"
                "        data_snapshots: [s-data-%02u]\n",
                i, i, i, i, i);
    if (images_yaml != NULL)
        fprintf(m, "    custom_images:\n%s", images_yaml);
    if (ecs_yaml != NULL)
        fprintf(m, "    ecs_images:\n%s", ecs_yaml);
    fclose(m);
    write_file(e->fixture, buf);
    free(buf);
}

/* Starts the emulator on e->fixture with scaled limits. extra: more emulator args or NULL. */
void start_emu(env *e, const char *create_delay, const char *const *extra)
{
    const char *args[32] = {"--fixture", e->fixture,       "--rate-limit",
                            "10/1s",     "--create-delay", create_delay ? create_delay : "300ms"};
    size_t n = 6;
    for (size_t i = 0; extra && extra[i] && n < 31; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    int rc = emu_proc_start(&e->emu, args);
    cr_assert_eq(rc, 0, "emulator start: %s", strerror(-rc));
}

void env_init(env *e)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->dir, sizeof(e->dir), "/tmp/imgrecon-apply-XXXXXX");
    cr_assert_not_null(mkdtemp(e->dir));
    snprintf(e->state, sizeof(e->state), "%s/state", e->dir);
    snprintf(e->manifest, sizeof(e->manifest), "%s/images.yaml", e->dir);
    snprintf(e->fixture, sizeof(e->fixture), "%s/fixture.yaml", e->dir);
    snprintf(e->config, sizeof(e->config), "%s/config.yaml", e->dir);
    write_file(e->config, "owner: team-a\n");
}

void env_fini(env *e)
{
    if (e->emu.pid > 0)
        (void)emu_proc_stop(&e->emu);
    (void)test_file_remove_tree(e->dir); /* IMGRECON_TEST_KEEP=1 keeps it for a post-mortem */
}

void run_result_free(run_result *r)
{
    free(r->out);
    r->out = NULL;
}

/* Starts imgrecon with the common test options and the NULL-terminated args. */
pid_t spawn_imgrecon(env *e, const char *outpath, const char *const *args)
{
    return spawn_imgrecon_tty(e, outpath, NULL, args);
}

/* spawn_imgrecon with stdin on a terminal: the prompt tests. */
pid_t spawn_imgrecon_tty(env *e, const char *outpath, const char *tty, const char *const *args)
{
    const char *argv[64];
    size_t n = 0;
    argv[n++] = IMGRECON_BIN;
    argv[n++] = args[0]; /* subcommand */
    argv[n++] = "-c";
    argv[n++] = e->config;
    argv[n++] = "--endpoint";
    argv[n++] = e->emu.base_url;
    argv[n++] = "--state-dir";
    argv[n++] = e->state;
    argv[n++] = "--rate-limit";
    argv[n++] = "10/1s";
    argv[n++] = "--no-color";
    for (size_t i = 1; args[i] != NULL && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    static const char *const env_edits[] = {"ALIBABA_CLOUD_ACCESS_KEY_ID=" KEY_ID,
                                            "ALIBABA_CLOUD_ACCESS_KEY_SECRET=" KEY_SECRET,
                                            "ALIBABA_CLOUD_SECURITY_TOKEN",
                                            "IMGRECON_ENDPOINT",
                                            "NO_COLOR=1",
                                            NULL};
    test_proc_opts o = {.out_path = outpath, .env = env_edits, .wrap = true, .stdin_tty = tty};
    return test_proc_spawn(argv, &o);
}

/* Waits for pid at most timeout_ms (event-driven through a pidfd); kills it on timeout. */
int wait_child(pid_t pid, int timeout_ms)
{
    int rc = test_proc_wait(pid, timeout_ms > 0 ? (uint64_t)timeout_ms : 0);
    if (rc == -ETIMEDOUT) {
        cr_log_error("imgrecon did not finish within %d ms; killed", timeout_ms);
        return 128 + SIGKILL;
    }
    return rc;
}

run_result run_imgrecon_v(env *e, const char *const *args)
{
    char outpath[160];
    static unsigned seq;
    snprintf(outpath, sizeof(outpath), "%s/out-%u.txt", e->dir, seq++);
    pid_t pid = spawn_imgrecon(e, outpath, args);
    run_result r;
    r.status = wait_child(pid, RUN_TIMEOUT_MS);
    r.out = read_file(outpath);
    return r;
}

json_t *journal_lines(env *e)
{
    json_t *j = emu_proc_journal(&e->emu);
    cr_assert_not_null(j, "emulator journal");
    return j;
}

const char *jstr(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

const char *jparam(json_t *line, const char *key)
{
    return json_string_value(json_object_get(json_object_get(line, "params"), key));
}

/* Calls of an action from index `from`, with code (NULL: successes only; "*": any). */
size_t count_calls(json_t *j, size_t from, const char *action, const char *code)
{
    size_t n = 0;
    for (size_t i = from; i < json_array_size(j); i++) {
        json_t *l = json_array_get(j, i);
        const char *a = jstr(l, "action");
        const char *c = jstr(l, "code");
        if (action != NULL && (a == NULL || strcmp(a, action) != 0))
            continue;
        if (code == NULL && c != NULL)
            continue;
        if (code != NULL && strcmp(code, "*") != 0 && (c == NULL || strcmp(c, code) != 0))
            continue;
        n++;
    }
    return n;
}

/* The ordering rules every scenario must keep, from the emulator's journal. */
void assert_journal_rules(env *e)
{
    json_t *j = journal_lines(e);
    size_t n = json_array_size(j);
    for (size_t i = 0; i < n; i++) {
        json_t *l = json_array_get(j, i);
        const char *c = jstr(l, "code");
        cr_expect(c == NULL || strcmp(c, "Throttling.User") != 0, "throttled: %s %s at %s",
                  jstr(l, "action"), jparam(l, "ImageId") ? jparam(l, "ImageId") : "",
                  jstr(l, "ts"));
    }
    cr_expect_eq(count_calls(j, 0, "CreateCustomImage", "CustomImageQuotaLimit"), 0,
                 "a create was sent while the region was at quota");
    cr_expect_eq(count_calls(j, 0, "ModifyImageShareStatus", "IncorrectImageStatus"), 0,
                 "a share was sent before its image was available");
    /* Every successful delete of a shared image comes after the unshare of that image. */
    for (size_t i = 0; i < n; i++) {
        json_t *l = json_array_get(j, i);
        const char *a = jstr(l, "action");
        if (jstr(l, "code") != NULL ||
            (strcmp(a, "DeleteCustomImage") != 0 && strcmp(a, "DeleteCustomImages") != 0))
            continue;
        /* A single delete names ImageId; a batch a JSON array in ImageIds. */
        const char *ids_text = jparam(l, "ImageIds");
        json_t *ids = ids_text ? json_loads(ids_text, 0, NULL) : NULL;
        size_t n_ids = ids ? json_array_size(ids) : 1;
        for (size_t d = 0; d < n_ids; d++) {
            const char *id = ids ? json_string_value(json_array_get(ids, d)) : jparam(l, "ImageId");
            for (size_t k = i + 1; k < n; k++) {
                json_t *u = json_array_get(j, k);
                const char *op = jparam(u, "Operation");
                cr_expect(!(strcmp(jstr(u, "action"), "ModifyImageShareStatus") == 0 && op &&
                            strcmp(op, "UnShare") == 0 && jparam(u, "ImageId") && id &&
                            strcmp(jparam(u, "ImageId"), id) == 0),
                          "unshare of %s after its delete", id);
            }
        }
        json_decref(ids);
    }
    json_decref(j);
}

/* The emulator's current images of cn-hangzhou. */
json_t *state_images(env *e)
{
    json_t *st = emu_proc_state(&e->emu);
    cr_assert_not_null(st);
    json_t *regions = json_object_get(st, "regions");
    json_t *imgs = NULL;
    for (size_t i = 0; i < json_array_size(regions); i++) {
        json_t *r = json_array_get(regions, i);
        if (strcmp(jstr(r, "region"), "cn-hangzhou") == 0)
            imgs = json_object_get(r, "custom_images");
    }
    imgs = imgs ? json_incref(imgs) : json_array();
    json_decref(st);
    return imgs;
}

json_t *find_image(json_t *imgs, const char *name)
{
    for (size_t i = 0; i < json_array_size(imgs); i++)
        if (strcmp(jstr(json_array_get(imgs, i), "name"), name) == 0)
            return json_array_get(imgs, i);
    return NULL;
}

bool image_shared(json_t *img)
{
    return json_is_true(json_object_get(img, "in_share"));
}
