/* Operability of `imgrecon run` (issue 14 items 1-3), with the real binary against the real
 * emulator (rate limit 10/1s, create delay 200ms) and the loopback webhook receiver
 * (tests/support/hook_recv.c) that checks every signature with its own HMAC:
 * - started on broken manifests it stays up, /healthz 200, /readyz 503 naming the file, a
 *   signed manifest_error webhook, `status` exits 1 "not ready"; once fixed it converges,
 *   /readyz 200, drift, applied (with the new image id) and recovered webhooks, `status` exits
 *   0, and after SIGTERM `status` exits 1 "not running";
 * - a failing item and a name conflict: failed and refused webhooks, /readyz 503, `status`
 *   exits 1 "failing"; after SIGKILL "not running";
 * - a manifests path that does not exist yet: watched through its nearest existing parent;
 * - git-sync: an atomic swap of a symlink that is a parent of, or is, the manifests path starts
 *   a cycle within the debounce;
 * - a webhook receiver that is down and one that is slow: cycles are not delayed, retries stop
 *   at the bound, the drop is counted in imgrecon_notify_dropped_total;
 * - `imgrecon notify-test` sends a signed sample, reports each answer, refuses a secret file
 *   group or others may read without showing the secret;
 * - a hostile listing whose quoted text holds terminal escapes and a UTF-8 character cut in half:
 *   status.json and the `failed` webhook still carry it, /readyz and `imgrecon status` show it
 *   escaped on one line.
 * Every wait polls a file, the metrics endpoint or the emulator with a deadline, or blocks on the
 * receiver's condition variable. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "emu_proc.h"
#include "hook_recv.h"
#include "test_clock.h"
#include "test_exec.h"
#include "test_file.h"
#include "test_http.h"
#include "test_proc.h"

#define KEY_ID "LTAIemulatorDemoKey"
#define KEY_SECRET "emulator-demo-secret"
#define HOOK_SECRET "hook-secret-0123456789"
#define WAIT_MS 60000
#define INSTANCE "ace0706b2ac4454d984295a94213abcd"
#define BAD_INSTANCE "dead0706b2ac4454d984295a94213dead" /* not in the demo fixture */
#define SNAPSHOT "s-bp1sys00000001"

static emu_proc emu;
static hook_recv *recv_ok;
static char dir[64], state[128], config[128], logpath[160];
static pid_t daemon_pid = -1;

/* test_clock_ms as the long that this file's deadlines are computed in. */
static long mono_ms(void)
{
    return (long)test_clock_ms();
}

/* The only pause: between polls of something with a deadline. */
static void pause_poll(void)
{
    (void)poll(NULL, 0, 50);
}

/* A manifest with one custom image per name (instance: INSTANCE, or BAD_INSTANCE for names
 * starting with "bad"). */
static void manifest_at(const char *path, const char *const *names, size_t n)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    fprintf(m, "region: cn-hangzhou\ncustom_images:\n");
    for (size_t i = 0; i < n; i++)
        fprintf(m, "  - name: %s\n    instance_id: %s\n    system_snapshot_id: " SNAPSHOT "\n",
                names[i], strncmp(names[i], "bad", 3) == 0 ? BAD_INSTANCE : INSTANCE);
    fclose(m);
    test_file_replace(path, buf);
    free(buf);
}

/* The config: metrics on a free port, webhooks as given (YAML list items, may be ""). */
static void write_config(const char *notify_items)
{
    char text[2048];
    snprintf(text, sizeof(text), "metrics_listen: 127.0.0.1:0\nowner: ops-test\n%s%s",
             notify_items[0] ? "notify:\n" : "", notify_items);
    test_file_replace(config, text);
}

static void setup(void)
{
    const char *args[] = {"--rate-limit", "10/1s", "--create-delay", "200ms", NULL};
    cr_assert_eq(emu_proc_start(&emu, args), 0, "emulator starts");
    strcpy(dir, "/tmp/imgrecon-ops-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(state, sizeof(state), "%s/state", dir);
    snprintf(config, sizeof(config), "%s/config.yaml", dir);
    snprintf(logpath, sizeof(logpath), "%s/daemon.log", dir);
    cr_assert_eq(hook_recv_start(HOOK_SECRET, &recv_ok), 0);
    char secret[160], items[1024];
    snprintf(secret, sizeof(secret), "%s/hook.secret", dir);
    test_file_replace(secret, HOOK_SECRET "\n");
    cr_assert_eq(chmod(secret, 0600), 0);
    snprintf(items, sizeof(items), "  - url: %s\n    secret_file: %s\n", hook_recv_url(recv_ok),
             secret);
    write_config(items);
}

static void teardown(void)
{
    if (daemon_pid > 0) {
        int status;
        if (waitpid(daemon_pid, &status, WNOHANG) == 0) {
            kill(daemon_pid, SIGKILL);
            (void)waitpid(daemon_pid, &status, 0);
        }
    }
    daemon_pid = -1;
    hook_recv_stop(recv_ok);
    recv_ok = NULL;
    (void)emu_proc_stop(&emu);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    (void)system(cmd);
}

TestSuite(ops, .init = setup, .fini = teardown, .timeout = 300);

/* Starts `imgrecon run -c config -f fpath --interval 1h` with stderr in logpath. */
static void start_daemon(const char *fpath)
{
    const char *argv[] = {IMGRECON_BIN,  "run",          "-c",    config,       "--endpoint",
                          emu.base_url,  "--rate-limit", "10/1s", "--interval", "1h",
                          "--state-dir", state,          "-f",    fpath,        NULL};
    static char home[80];
    snprintf(home, sizeof(home), "HOME=%s", dir);
    const char *const env[] = {"ALIBABA_CLOUD_ACCESS_KEY_ID=" KEY_ID,
                               "ALIBABA_CLOUD_ACCESS_KEY_SECRET=" KEY_SECRET,
                               home,
                               "NOTIFY_SOCKET",
                               "JOURNAL_STREAM",
                               "IMGRECON_ENDPOINT",
                               NULL};
    /* The daemon logs to stderr, appended to logpath across restarts; stdout is inherited. */
    test_proc_opts o = {
        .out_path = logpath, .append = true, .stderr_only = true, .env = env, .wrap = true};
    daemon_pid = test_proc_spawn(argv, &o);
}

static bool daemon_running(void)
{
    int status;
    return waitpid(daemon_pid, &status, WNOHANG) == 0;
}

static void stop_daemon(int sig)
{
    cr_assert_eq(kill(daemon_pid, sig), 0);
    long deadline = mono_ms() + 45000;
    int status = 0;
    pid_t r;
    while ((r = waitpid(daemon_pid, &status, WNOHANG)) == 0 && mono_ms() < deadline)
        pause_poll();
    cr_assert_eq(r, daemon_pid, "the daemon exits; log:\n%s", test_file_read(logpath));
    if (sig == SIGTERM)
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "SIGTERM exits 0");
    daemon_pid = -1;
    char *log = test_file_read(logpath);
    cr_assert_null(strstr(log, KEY_SECRET), "no API secret in the log");
    cr_assert_null(strstr(log, HOOK_SECRET), "no webhook secret in the log");
    free(log);
}

/* GET path on the metrics endpoint (address from metrics.addr, awaited); returns the status and
 * the body in *ret (caller frees). */
static long get(const char *path, char **ret)
{
    char addr_path[160], url[256];
    snprintf(addr_path, sizeof(addr_path), "%s/metrics.addr", state);
    long deadline = mono_ms() + WAIT_MS;
    while (access(addr_path, F_OK) != 0) {
        cr_assert_lt(mono_ms(), deadline, "metrics.addr written; log:\n%s",
                     test_file_read(logpath));
        pause_poll();
    }
    char *addr = test_file_read(addr_path);
    addr[strcspn(addr, "\n")] = '\0';
    snprintf(url, sizeof(url), "http://%s%s", addr, path);
    free(addr);
    long code = test_http_get(url, ret);
    return code;
}

/* A sample's value from a scrape, -1 when absent. */
static double metric(const char *name)
{
    char *text = NULL;
    cr_assert_eq(get("/metrics", &text), 200);
    double v = -1;
    size_t n = strlen(name);
    for (char *line = text; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (strncmp(line, name, n) == 0 && line[n] == ' ')
            v = strtod(line + n + 1, NULL);
    free(text);
    return v;
}

/* Polls /readyz until it answers want (at most WAIT_MS); returns the last body. */
static char *await_ready(long want)
{
    long deadline = mono_ms() + WAIT_MS;
    for (;;) {
        char *b = NULL;
        long code = get("/readyz", &b);
        if (code == want)
            return b;
        if (mono_ms() >= deadline)
            cr_assert_fail("/readyz %ld, want %ld (%s); log:\n%s", code, want, b,
                           test_file_read(logpath));
        free(b);
        pause_poll();
    }
}

/* Runs `imgrecon status [--json]`; returns its exit code and its stdout in out. */
static int status_cmd(bool json, char *out, size_t size)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s status --state-dir %s%s", IMGRECON_BIN, state,
             json ? " --json" : "");
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, size - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static bool available(const char *name)
{
    json_t *st = emu_proc_state(&emu);
    int count = 0;
    bool ok = false;
    size_t i, j;
    json_t *region, *img;
    json_array_foreach(json_object_get(st, "regions"), i, region)
    {
        json_array_foreach(json_object_get(region, "custom_images"), j, img)
        {
            const char *n = json_string_value(json_object_get(img, "name"));
            if (n == NULL || strcmp(n, name) != 0)
                continue;
            count++;
            ok = strcmp(json_string_value(json_object_get(img, "status")), "1") == 0;
        }
    }
    json_decref(st);
    return ok && count == 1;
}

static void await_available(const char *name)
{
    long deadline = mono_ms() + WAIT_MS;
    while (!available(name)) {
        if (mono_ms() >= deadline)
            cr_assert_fail("%s not available in time; log:\n%s", name, test_file_read(logpath));
        pause_poll();
    }
}

/* Waits until the log holds needle after byte offset from; returns the offset just past it. */
static size_t await_log(const char *needle, size_t from, long ms)
{
    long deadline = mono_ms() + ms;
    for (;;) {
        char *text = test_file_read(logpath);
        const char *hit = strlen(text) > from ? strstr(text + from, needle) : NULL;
        size_t at = hit ? (size_t)(hit - text) + strlen(needle) : 0;
        free(text);
        if (hit != NULL)
            return at;
        if (mono_ms() >= deadline)
            cr_assert_fail("'%s' not logged within %ld ms; log:\n%s", needle, ms,
                           test_file_read(logpath));
        pause_poll();
    }
}

static json_t *await_hook(hook_recv *r, const char *event, size_t n)
{
    json_t *b = hook_recv_wait(r, event, n, WAIT_MS);
    if (b == NULL) {
        json_t *all = hook_recv_all(r);
        char *dump = json_dumps(all, JSON_INDENT(1));
        cr_assert_fail("no '%s' webhook; received: %s\nlog:\n%s", event, dump,
                       test_file_read(logpath));
    }
    return b;
}

static const char BROKEN[] = "region: cn-hangzhou\ncustom_images:\n  - name: [unclosed\n";

Test(ops, broken_manifests_at_start_stay_up_not_ready_then_converge)
{
    char mdir[160], web[200], out[16384];
    snprintf(mdir, sizeof(mdir), "%s/manifests", dir);
    snprintf(web, sizeof(web), "%s/web.yaml", mdir);
    cr_assert_eq(mkdir(mdir, 0700), 0);
    test_file_replace(web, BROKEN);
    start_daemon(mdir);

    json_t *b = await_hook(recv_ok, "manifest_error", 0);
    cr_assert_str_eq(json_string_value(json_object_get(b, "owner")), "ops-test");
    cr_assert(json_is_string(json_object_get(b, "host")) &&
              json_is_string(json_object_get(b, "time")));
    const char *msg = json_string_value(
        json_object_get(json_array_get(json_object_get(b, "items"), 0), "message"));
    cr_assert_not_null(msg);
    cr_assert_not_null(strstr(msg, "web.yaml:4:1: syntax error"),
                       "the problem with its position: %s", msg);
    json_decref(b);

    char *text = NULL;
    cr_assert_eq(get("/healthz", &text), 200, "alive");
    free(text);
    text = await_ready(503);
    cr_assert_eq(strncmp(text, "manifests invalid: ", 19), 0, "%s", text);
    cr_assert_not_null(strstr(text, "web.yaml:4:1: syntax error"), "%s", text);
    cr_assert_eq(strchr(text, '\n'), text + strlen(text) - 1, "one line: %s", text);
    free(text);
    cr_assert_eq(metric("imgrecon_manifests_valid"), 0);
    cr_assert_eq(metric("imgrecon_ready"), 0);
    cr_assert_eq(status_cmd(false, out, sizeof(out)), 1, "not ready: %s", out);
    cr_assert_not_null(strstr(out, "health:       not ready"), "%s", out);
    cr_assert_not_null(strstr(out, "manifests:    invalid"), "%s", out);
    cr_assert(daemon_running(), "still up; log:\n%s", test_file_read(logpath));

    /* Fixed: it converges without a signal, on the watcher alone. */
    const char *names[] = {"ops-web-1"};
    manifest_at(web, names, 1);
    await_available("ops-web-1");
    b = await_hook(recv_ok, "drift", 0);
    json_t *planned = json_array_get(json_object_get(b, "items"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(planned, "result")), "planned");
    cr_assert_str_eq(json_string_value(json_object_get(planned, "address")),
                     "swas.cn-hangzhou.custom_image.ops-web-1");
    json_decref(b);
    b = await_hook(recv_ok, "applied", 0);
    json_t *item = json_array_get(json_object_get(b, "items"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(item, "action")), "create");
    const char *id = json_string_value(json_object_get(item, "image_id"));
    cr_assert(id != NULL && strncmp(id, "m-", 2) == 0, "the new image id: %s", id ? id : "null");
    json_decref(b);
    json_decref(await_hook(recv_ok, "recovered", 0));
    text = await_ready(200);
    cr_assert_str_eq(text, "ready\n");
    free(text);
    cr_assert_eq(metric("imgrecon_manifests_valid"), 1);
    cr_assert_eq(metric("imgrecon_items_failing"), 0);
    cr_assert_eq(status_cmd(true, out, sizeof(out)), 0, "healthy: %s", out);
    json_t *st = json_loads(out, 0, NULL);
    cr_assert_not_null(st, "%s", out);
    cr_assert_str_eq(json_string_value(json_object_get(st, "health")), "healthy");
    cr_assert(json_is_true(json_object_get(st, "ready")));
    json_decref(st);

    /* Broken again after a good set: the last good set stays, not ready, a new notification. */
    test_file_replace(web, "region: cn-hangzhou\ncustom_images: 7\n");
    json_decref(await_hook(recv_ok, "manifest_error", 1));
    text = await_ready(503);
    free(text);
    cr_assert(available("ops-web-1"), "nothing deleted");
    cr_assert_eq(hook_recv_bad_signatures(recv_ok), 0, "every webhook signed with the secret");

    stop_daemon(SIGTERM);
    cr_assert_eq(status_cmd(false, out, sizeof(out)), 1, "stopped: %s", out);
    cr_assert_not_null(strstr(out, "health:       not running"), "%s", out);
}

Test(ops, failing_item_is_failing_and_killed_daemon_is_not_running)
{
    char mdir[160], web[200], out[16384];
    snprintf(mdir, sizeof(mdir), "%s/manifests", dir);
    snprintf(web, sizeof(web), "%s/web.yaml", mdir);
    cr_assert_eq(mkdir(mdir, 0700), 0);
    /* ops-taken exists already without our owner tag: a conflict, reported as refused. */
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "HOME=%s ALIBABA_CLOUD_ACCESS_KEY_ID=" KEY_ID
             " ALIBABA_CLOUD_ACCESS_KEY_SECRET=" KEY_SECRET
             " %s api swas CreateCustomImage RegionId=cn-hangzhou InstanceId=" INSTANCE
             " SystemSnapshotId=" SNAPSHOT " ImageName=ops-taken --endpoint %s --state-dir %s/api"
             " --rate-limit 10/1s >/dev/null",
             dir, IMGRECON_BIN, emu.base_url, dir);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    const char *names[] = {"ops-ok", "bad-one", "ops-taken"};
    manifest_at(web, names, 3);
    start_daemon(mdir);
    json_t *rb = await_hook(recv_ok, "refused", 0);
    json_t *ri = json_array_get(json_object_get(rb, "items"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(ri, "result")), "conflict");
    cr_assert_not_null(strstr(json_string_value(json_object_get(ri, "address")), "ops-taken"));
    cr_assert(json_is_string(json_object_get(ri, "image_id")), "the conflicting image's id");
    json_decref(rb);
    json_t *b = await_hook(recv_ok, "failed", 0);
    const char *addr = json_string_value(
        json_object_get(json_array_get(json_object_get(b, "items"), 0), "address"));
    cr_assert(addr && strstr(addr, "bad-one"), "%s", addr ? addr : "null");
    json_decref(b);
    char *text = await_ready(503);
    cr_assert_eq(strncmp(text, "last cycle failed: 2 item(s) failing", 36), 0, "%s", text);
    free(text);
    cr_assert_eq(metric("imgrecon_items_failing"), 2, "the failing item and the conflict");
    cr_assert_eq(status_cmd(false, out, sizeof(out)), 1, "%s", out);
    cr_assert_not_null(strstr(out, "health:       failing"), "%s", out);

    stop_daemon(SIGKILL);
    cr_assert_eq(status_cmd(true, out, sizeof(out)), 1, "%s", out);
    json_t *st = json_loads(out, 0, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(st, "health")), "not running");
    cr_assert_not_null(strstr(json_string_value(json_object_get(st, "health_reason")), "pid"));
    json_decref(st);
}

/* A hostile listing: RegionId holds a newline, terminal escapes and a run of CJK characters that
 * the client's bounded message buffer cuts in the middle of one (the check quotes it: "image
 * m-abc has RegionId ..."). The cycle fails with that text as its error. */
static void add_hostile_listing(void)
{
    char *region = NULL, *fault = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&region, &len);
    fputs("\\n\\u001b[2J\\u001b]0;pwned\\u0007x", m);
    for (int i = 0; i < 300; i++)
        fputs("\xe5\x8c\xba", m); /* U+533A, three bytes */
    fclose(m);
    cr_assert_gt(asprintf(&fault,
                          "{\"action\":\"ListCustomImages\",\"kind\":\"answer\",\"count\":100,"
                          "\"body\":{\"TotalCount\":1,\"PageSize\":10,\"PageNumber\":1,"
                          "\"CustomImages\":[{\"ImageId\":\"m-abc\",\"Name\":\"a\",\"Status\":"
                          "\"1\",\"RegionId\":\"%s\",\"Tags\":[]}]}}",
                          region),
                 0);
    cr_assert_eq(emu_proc_add_fault(&emu, fault), 0, "%s", fault);
    free(fault);
    free(region);
}

/* Text from the cloud in the operability surfaces: status.json is still written (it used to
 * stay at "reconciling": jansson refused the cut character), the `failed` webhook is still sent
 * (it used to be lost without a log line or a count), and /readyz and `imgrecon status` show
 * the error on one line with no byte a terminal acts on (they used to print it raw). */
Test(ops, hostile_cloud_text_reaches_status_webhooks_and_probes_intact_and_escaped)
{
    char mdir[160], web[200], out[16384];
    snprintf(mdir, sizeof(mdir), "%s/manifests", dir);
    snprintf(web, sizeof(web), "%s/web.yaml", mdir);
    cr_assert_eq(mkdir(mdir, 0700), 0);
    const char *names[] = {"ops-ok"};
    manifest_at(web, names, 1);
    add_hostile_listing();
    start_daemon(mdir);

    json_t *b = await_hook(recv_ok, "failed", 0);
    const char *msg = json_string_value(
        json_object_get(json_array_get(json_object_get(b, "items"), 0), "message"));
    cr_assert(msg && strstr(msg, "has RegionId \n\x1b[2J"), "%s", msg ? msg : "null");
    json_decref(b);

    char *text = await_ready(503);
    cr_assert_eq(strncmp(text, "last cycle error: ", 18), 0, "%s", text);
    cr_assert_eq(strchr(text, '\n'), text + strlen(text) - 1, "one line: %s", text);
    cr_assert_null(strchr(text, '\x1b'), "no escape: %s", text);
    cr_assert_not_null(strstr(text, "RegionId \\x0a\\x1b[2J"), "%s", text);
    free(text);

    long deadline = mono_ms() + WAIT_MS;
    json_t *st = NULL;
    for (;;) {
        cr_assert_eq(status_cmd(true, out, sizeof(out)), 1, "%s", out);
        st = json_loads(out, 0, NULL);
        cr_assert_not_null(st, "%s", out);
        const char *result = json_string_value(json_object_get(st, "result"));
        if (result != NULL && strcmp(result, "error") == 0)
            break;
        json_decref(st);
        cr_assert_lt(mono_ms(), deadline, "status.json never shows the failed cycle:\n%s\nlog:\n%s",
                     out, test_file_read(logpath));
        pause_poll();
    }
    cr_assert_not_null(strstr(json_string_value(json_object_get(st, "error")), "RegionId \n"));
    json_decref(st);
    cr_assert_eq(status_cmd(false, out, sizeof(out)), 1, "%s", out);
    cr_assert_not_null(strstr(out, "health:       failing (last cycle error: "), "%s", out);
    cr_assert_null(strchr(out, '\x1b'), "no escape in status:\n%s", out);
    char *log = test_file_read(logpath);
    cr_assert_null(strstr(log, "cannot write status.json"), "%s", log);
    free(log);
    stop_daemon(SIGTERM);
}

Test(ops, missing_manifests_path_is_watched_until_it_appears)
{
    char later[160], images[200], web[240];
    snprintf(later, sizeof(later), "%s/later", dir);
    snprintf(images, sizeof(images), "%s/images", later);
    snprintf(web, sizeof(web), "%s/web.yaml", images);
    start_daemon(images);
    char *text = await_ready(503);
    cr_assert_eq(strncmp(text, "manifests invalid: ", 19), 0, "%s", text);
    free(text);
    cr_assert(daemon_running());
    cr_assert_eq(mkdir(later, 0700), 0);
    cr_assert_eq(mkdir(images, 0700), 0);
    const char *names[] = {"ops-late-1"};
    manifest_at(web, names, 1);
    await_available("ops-late-1");
    free(await_ready(200));
    stop_daemon(SIGTERM);
}

/* git-sync's publish: a new checkout, then `ln -s new tmp && mv -T tmp link` (rename(2)). */
static void swap_link(const char *link, const char *target)
{
    char tmp[200];
    snprintf(tmp, sizeof(tmp), "%s.tmp-swap", link);
    cr_assert_eq(symlink(target, tmp), 0);
    cr_assert_eq(rename(tmp, link), 0);
}

/* Runs the swap scenario with the manifests at fpath, which reaches rev/images through link. */
static void git_sync_scenario(const char *fpath, const char *link, const char *rev1_target,
                              const char *rev2_target)
{
    char path[256];
    const char *one[] = {"ops-sync-1"}, *two[] = {"ops-sync-1", "ops-sync-2"};
    for (int r = 1; r <= 2; r++) {
        snprintf(path, sizeof(path), "%s/rev%d", dir, r);
        cr_assert_eq(mkdir(path, 0700), 0);
        snprintf(path, sizeof(path), "%s/rev%d/images", dir, r);
        cr_assert_eq(mkdir(path, 0700), 0);
        snprintf(path, sizeof(path), "%s/rev%d/images/web.yaml", dir, r);
        manifest_at(path, r == 1 ? one : two, r == 1 ? 1 : 2);
    }
    cr_assert_eq(symlink(rev1_target, link), 0);
    start_daemon(fpath);
    await_available("ops-sync-1");
    size_t at = await_log("cycle finished", 0, WAIT_MS);
    long t0 = mono_ms();
    swap_link(link, rev2_target);
    /* The debounce is 500 ms; the interval is 1 h. */
    at = await_log("manifest change detected", at, 5000);
    cr_assert_lt(mono_ms() - t0, 5000, "noticed within the debounce");
    await_available("ops-sync-2");
    stop_daemon(SIGTERM);
}

Test(ops, git_sync_swap_of_a_parent_symlink_starts_a_cycle)
{
    char link[160], fpath[200], r1[160], r2[160];
    snprintf(link, sizeof(link), "%s/current", dir);
    snprintf(fpath, sizeof(fpath), "%s/images", link);
    snprintf(r1, sizeof(r1), "%s/rev1", dir);
    snprintf(r2, sizeof(r2), "rev2"); /* relative, as git-sync writes it */
    git_sync_scenario(fpath, link, r1, r2);
}

Test(ops, git_sync_swap_of_the_root_symlink_starts_a_cycle)
{
    char link[160];
    snprintf(link, sizeof(link), "%s/images-link", dir);
    git_sync_scenario(link, link, "rev1/images", "rev2/images");
}

Test(ops, webhook_down_or_slow_never_delays_cycles_and_retries_are_bounded)
{
    char dead[64], items[1024], mdir[160], web[200];
    hook_recv *slow = NULL;
    cr_assert_eq(hook_recv_start(NULL, &slow), 0);
    hook_recv_set_answer(slow, 200, 5000);
    hook_recv_dead_url(dead, sizeof(dead));
    snprintf(items, sizeof(items),
             "  - url: %s\n    events: [applied]\n  - url: %s\n    format: slack\n", dead,
             hook_recv_url(slow));
    write_config(items);
    snprintf(mdir, sizeof(mdir), "%s/manifests", dir);
    snprintf(web, sizeof(web), "%s/web.yaml", mdir);
    cr_assert_eq(mkdir(mdir, 0700), 0);
    const char *one[] = {"ops-n-1"}, *two[] = {"ops-n-1", "ops-n-2"};
    manifest_at(web, one, 1);
    start_daemon(mdir);
    await_available("ops-n-1");
    free(await_ready(200));
    cr_assert_eq(hook_recv_count(slow), 0, "the cycle finished before the slow receiver answered");
    /* A change while deliveries are retrying or hanging converges as fast as ever. */
    manifest_at(web, two, 2);
    long t0 = mono_ms();
    await_available("ops-n-2");
    cr_assert_lt(mono_ms() - t0, 20000, "the second cycle was not held up");

    /* The dead target asked for `applied` only: two notifications, 4 attempts each at most. */
    long deadline = mono_ms() + WAIT_MS;
    while (metric("imgrecon_notify_dropped_total") < 2) {
        cr_assert_lt(mono_ms(), deadline, "drops counted; log:\n%s", test_file_read(logpath));
        pause_poll();
    }
    cr_assert_eq(metric("imgrecon_notify_dropped_total"), 2);
    cr_assert_eq(metric("imgrecon_notify_deliveries_total{result=\"retried\"}"), 6,
                 "3 retries per notification, then given up");
    json_t *b = hook_recv_wait(slow, "", 0, 1);
    cr_assert_null(b, "slack bodies carry no event field");
    deadline = mono_ms() + WAIT_MS;
    while (hook_recv_count(slow) < 1) {
        cr_assert_lt(mono_ms(), deadline, "the slow receiver got its notifications");
        pause_poll();
    }
    json_t *all = hook_recv_all(slow);
    cr_assert(json_is_string(json_object_get(json_array_get(all, 0), "text")));
    json_decref(all);
    stop_daemon(SIGTERM);
    hook_recv_stop(slow);
}

/* Runs `imgrecon notify-test -c config`; returns its exit code and its stdout in out. */
static int notify_test_cmd(char *out, size_t size)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "HOME=%s %s notify-test -c %s 2>&1", dir, IMGRECON_BIN, config);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, size - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(ops, notify_test_sends_a_signed_sample_and_reports_each_answer)
{
    char out[4096], dead[64], items[1024], secret[160];
    cr_assert_eq(notify_test_cmd(out, sizeof(out)), 0, "%s", out);
    cr_assert_not_null(strstr(out, "ok      http://127.0.0.1:"), "%s", out);
    cr_assert_null(strstr(out, "/hook"), "the URL's path is not shown: %s", out);
    json_t *b = hook_recv_wait(recv_ok, "test", 0, 10000);
    cr_assert_not_null(b, "the sample arrived");
    cr_assert_str_eq(json_string_value(json_object_get(b, "owner")), "ops-test");
    json_decref(b);
    cr_assert_eq(hook_recv_bad_signatures(recv_ok), 0, "signed with the secret");

    hook_recv_dead_url(dead, sizeof(dead));
    snprintf(secret, sizeof(secret), "%s/hook.secret", dir);
    snprintf(items, sizeof(items), "  - url: %s\n    secret_file: %s\n  - url: %s\n",
             hook_recv_url(recv_ok), secret, dead);
    write_config(items);
    cr_assert_eq(notify_test_cmd(out, sizeof(out)), 1, "one target down: %s", out);
    cr_assert_not_null(strstr(out, "failed  http://127.0.0.1:"), "%s", out);
    cr_assert_eq(hook_recv_count(recv_ok), 2);

    cr_assert_eq(chmod(secret, 0644), 0);
    cr_assert_eq(notify_test_cmd(out, sizeof(out)), 1, "%s", out);
    cr_assert_not_null(strstr(out, "readable by group or others"), "%s", out);
    cr_assert_null(strstr(out, HOOK_SECRET), "%s", out);
}
