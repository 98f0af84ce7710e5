/* `imgrecon run` as a user runs it: the real binary against the real emulator (rate limit
 * 10/1s, create delay 200ms), with sd_notify captured on a datagram socket named by
 * NOTIFY_SOCKET. The daemon converges at start and again after a manifest edit without waiting
 * for the 1h interval; a SIGHUP with a broken manifest keeps the old set and says why, a later
 * fix applies; SIGTERM during an apply exits 0 and a restart converges without duplicates; the
 * metrics scrape agrees with the emulator's journal; a second daemon on the same state directory
 * exits 1 naming the holder. Manifest changes by rename dance (temporary file renamed over the
 * manifest, hidden temporary renamed into place, unlink and rewrite, deletion; a single -f file)
 * each give one cycle; suspended (config or state-dir file) it plans and reports but makes no
 * mutating call; a permanently failing item is retried with doubling backoff, not every cycle;
 * an idle daemon calls List only inside cycles and uses no CPU between them. Every wait polls a
 * file, socket or the emulator with a deadline, or blocks on inotify/the notify socket. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "emu_proc.h"
#include "test_clock.h"
#include "test_file.h"
#include "test_http.h"
#include "test_notify.h"
#include "test_proc.h"

#define KEY_ID "LTAIemulatorDemoKey"
#define KEY_SECRET "emulator-demo-secret"
#define WAIT_MS 60000
#define INSTANCE "ace0706b2ac4454d984295a94213abcd"
#define SNAPSHOT "s-bp1sys00000001"

typedef struct dproc {
    pid_t pid;
    char log[160];
} dproc;

static emu_proc emu;
static char dir[64];
static char state[128], manifests[128], config[128], sock_path[128];
/* Every daemon started by the current test: teardown kills those still running, so a failed
 * assertion never leaves one behind (holding the runner's output pipe open). */
static pid_t started[16];
static size_t n_started;
/* Journal lines before this index were made by an earlier daemon process (its counters died
 * with it). */
static size_t metrics_journal_from;
static char last_log[160]; /* the latest daemon's log, shown when a wait times out */

/* The sd_notify receiver (tests/support/test_notify.h): every wait below drains it, so a daemon
 * with a short interval never blocks on a full socket queue. */
static test_notify *notify;

/* The only pause: between polls of something with a deadline. It returns early when a notify
 * message arrives (and keeps the socket drained). */
static void poll_pause(void)
{
    if (notify != NULL)
        test_notify_pump(notify, 50);
    else
        (void)poll(NULL, 0, 50);
}

static void manifest(const char *file, const char *const *names, size_t n)
{
    char path[256];
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    fprintf(m, "region: cn-hangzhou\ncustom_images:\n");
    for (size_t i = 0; i < n; i++)
        fprintf(m,
                "  - name: %s\n    instance_id: " INSTANCE "\n    system_snapshot_id: " SNAPSHOT
                "\n",
                names[i]);
    fclose(m);
    snprintf(path, sizeof(path), "%s/%s", manifests, file);
    test_file_replace(path, buf);
    free(buf);
}

static void setup(void)
{
    const char *args[] = {"--rate-limit", "10/1s", "--create-delay", "200ms", NULL};
    cr_assert_eq(emu_proc_start(&emu, args), 0, "emulator starts");
    strcpy(dir, "/tmp/imgrecon-dtest-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(state, sizeof(state), "%s/state", dir);
    snprintf(manifests, sizeof(manifests), "%s/manifests", dir);
    snprintf(config, sizeof(config), "%s/config.yaml", dir);
    snprintf(sock_path, sizeof(sock_path), "%s/notify.sock", dir);
    cr_assert_eq(mkdir(manifests, 0700), 0);
    test_file_replace(config, "metrics_listen: 127.0.0.1:0\n");
    notify = test_notify_open(sock_path);
}

static void teardown(void)
{
    for (size_t i = 0; i < n_started; i++) {
        int status;
        if (waitpid(started[i], &status, WNOHANG) == 0) {
            kill(started[i], SIGKILL);
            (void)waitpid(started[i], &status, 0);
        }
    }
    n_started = 0;
    metrics_journal_from = 0;
    test_notify_free(notify);
    notify = NULL;
    (void)emu_proc_stop(&emu);
    (void)test_file_remove_tree(dir);
}

TestSuite(daemon, .init = setup, .fini = teardown, .timeout = 300);

/* Starts `imgrecon run -f fpath --interval interval` with stderr in log_name; extra args
 * NULL-terminated. */
static dproc start_daemon_with(const char *log_name, const char *interval, const char *fpath,
                               const char *const *extra)
{
    dproc d;
    snprintf(d.log, sizeof(d.log), "%s/%s", dir, log_name);
    const char *argv[32] = {IMGRECON_BIN,  "run",          "-c",    config,       "--endpoint",
                            emu.base_url,  "--rate-limit", "10/1s", "--interval", interval,
                            "--state-dir", state,          "-f",    fpath};
    size_t n = 14;
    for (size_t i = 0; extra && extra[i] && n < 31; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    char home[96], notify_socket[160];
    snprintf(home, sizeof(home), "HOME=%s", dir);
    snprintf(notify_socket, sizeof(notify_socket), "NOTIFY_SOCKET=%s", sock_path);
    const char *const env_edits[] = {"ALIBABA_CLOUD_ACCESS_KEY_ID=" KEY_ID,
                                     "ALIBABA_CLOUD_ACCESS_KEY_SECRET=" KEY_SECRET,
                                     home,
                                     notify_socket,
                                     "JOURNAL_STREAM",
                                     "IMGRECON_ENDPOINT",
                                     NULL};
    /* stderr appends to the log; IMGRECON_TEST_WRAP is honoured (CI: valgrind). */
    test_proc_opts o = {
        .out_path = d.log, .append = true, .stderr_only = true, .env = env_edits, .wrap = true};
    d.pid = test_proc_spawn(argv, &o);
    if (n_started < sizeof(started) / sizeof(started[0]))
        started[n_started++] = d.pid;
    snprintf(last_log, sizeof(last_log), "%s", d.log);
    return d;
}

/* Starts `imgrecon run` on the manifest directory with a 1h interval. */
static dproc start_daemon(const char *log_name, const char *const *extra)
{
    return start_daemon_with(log_name, "1h", manifests, extra);
}

/* Waits at most ms for the process to exit; returns its exit code, or -1 on timeout/signal. */
static int wait_exit(pid_t pid, long ms)
{
    uint64_t deadline = test_clock_ms() + (uint64_t)ms;
    int status;
    while (test_clock_ms() < deadline) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        poll_pause();
    }
    kill(pid, SIGKILL);
    (void)waitpid(pid, &status, 0);
    return -1;
}

/* Takes notify messages (queued first, then from the socket) until one starts with prefix (at
 * most ms); appends all of them to seen. */
static bool await_notify(const char *prefix, long ms, char *seen, size_t seen_size)
{
    return test_notify_await(notify, prefix, NULL, (uint64_t)ms, seen, seen_size);
}

/* Status of the first custom image called name in the emulator's world ("1" available), or NULL;
 * *ret_count is how many images carry that name. */
static char *image_status(const char *name, int *ret_count)
{
    json_t *st = emu_proc_state(&emu);
    char *found = NULL;
    int count = 0;
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
            json_t *s = json_object_get(img, "status");
            if (found == NULL)
                found = strdup(json_is_string(s) ? json_string_value(s) : "?");
        }
    }
    json_decref(st);
    if (ret_count)
        *ret_count = count;
    return found;
}

static bool available(const char *name)
{
    int count;
    char *s = image_status(name, &count);
    bool ok = s != NULL && strcmp(s, "1") == 0 && count == 1;
    free(s);
    return ok;
}

static void await_available(const char *name)
{
    uint64_t deadline = test_clock_ms() + (uint64_t)WAIT_MS;
    while (!available(name)) {
        if (test_clock_ms() >= deadline)
            cr_assert_fail("%s did not become available in time; log:\n%s", name,
                           test_file_read(last_log));
        poll_pause();
    }
}

/* status.json as JSON (NULL when absent or mid-rename). */
static json_t *status_json(void)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/status.json", state);
    return json_load_file(path, 0, NULL);
}

/* Waits until the daemon has finished at least `cycles` cycles and is idle. */
static json_t *await_idle(unsigned cycles)
{
    uint64_t deadline = test_clock_ms() + (uint64_t)WAIT_MS;
    for (;;) {
        json_t *st = status_json();
        if (st != NULL) {
            const char *s = json_string_value(json_object_get(st, "state"));
            json_int_t c = json_integer_value(json_object_get(st, "cycles"));
            if (s != NULL && strcmp(s, "idle") == 0 && c >= (json_int_t)cycles)
                return st;
            json_decref(st);
        }
        if (test_clock_ms() >= deadline)
            cr_assert_fail("daemon not idle after %u cycles in time; log:\n%s", cycles,
                           test_file_read(last_log));
        poll_pause();
    }
}

static bool log_has(const dproc *d, const char *needle)
{
    char *text = test_file_read(d->log);
    bool has = strstr(text, needle) != NULL;
    free(text);
    return has;
}

static void await_log(const dproc *d, const char *needle)
{
    uint64_t deadline = test_clock_ms() + (uint64_t)WAIT_MS;
    while (!log_has(d, needle)) {
        if (test_clock_ms() >= deadline)
            cr_assert_fail("log never said '%s'; log:\n%s", needle, test_file_read(last_log));
        poll_pause();
    }
}

static void stop_daemon(dproc *d)
{
    cr_assert_eq(kill(d->pid, SIGTERM), 0);
    int code = wait_exit(d->pid, 45000);
    cr_assert_eq(code, 0, "SIGTERM exits 0 (got %d); log:\n%s", code, test_file_read(d->log));
    cr_assert_not(log_has(d, KEY_SECRET), "the secret never reaches the log");
}

static char *scrape(const char *path)
{
    char addr_path[160], url[256];
    snprintf(addr_path, sizeof(addr_path), "%s/metrics.addr", state);
    char *addr = test_file_read(addr_path);
    addr[strcspn(addr, "\n")] = '\0';
    cr_assert_eq(strncmp(addr, "127.0.0.1:", 10), 0, "metrics.addr has the bound address");
    snprintf(url, sizeof(url), "http://%s%s", addr, path);
    free(addr);
    char *text = NULL;
    long code = test_http_get(url, &text);
    cr_assert_eq(code, 200, "scrape %s: HTTP %ld", url, code);
    return text;
}

/* Compares one scrape with the emulator's journal (this daemon's key only): every
 * imgrecon_api_calls_total{action,code} sample equals the journal's count for (action, code) and
 * every journaled (action, code) is there; every imgrecon_throttled_calls_total{action} equals the
 * journal's throttling answers (Throttling*) for that action. False with the first difference in
 * why. */
static bool metrics_match_journal(char *why, size_t why_size)
{
    char *text = scrape("/metrics");
    json_t *journal = emu_proc_journal(&emu);
    cr_assert_not_null(journal);
    json_t *counts = json_object(), *throttled = json_object();
    size_t i;
    json_t *line;
    json_array_foreach(journal, i, line)
    {
        if (i < metrics_journal_from)
            continue;
        const char *action = json_string_value(json_object_get(line, "action"));
        const char *key = json_string_value(json_object_get(line, "access_key_id"));
        if (action == NULL || key == NULL || strcmp(key, KEY_ID) != 0)
            continue;
        const char *code = json_string_value(json_object_get(line, "code"));
        char k[256];
        snprintf(k, sizeof(k), "imgrecon_api_calls_total{action=\"%s\",code=\"%s\"}", action,
                 code ? code : "OK");
        json_object_set_new(counts, k,
                            json_integer(json_integer_value(json_object_get(counts, k)) + 1));
        if (code != NULL && strncmp(code, "Throttling", 10) == 0) {
            snprintf(k, sizeof(k), "imgrecon_throttled_calls_total{action=\"%s\"}", action);
            json_object_set_new(
                throttled, k, json_integer(json_integer_value(json_object_get(throttled, k)) + 1));
        }
    }
    cr_assert_gt(json_object_size(counts), 0, "the journal has calls");
    bool ok = true;
    size_t matched = 0, matched_throttled = 0;
    char *save = NULL;
    why[0] = '\0';
    for (char *l = strtok_r(text, "\n", &save); l && ok; l = strtok_r(NULL, "\n", &save)) {
        bool calls = strncmp(l, "imgrecon_api_calls_total{", 25) == 0;
        if (!calls && strncmp(l, "imgrecon_throttled_calls_total{", 31) != 0)
            continue;
        char *sp = strrchr(l, ' ');
        cr_assert_not_null(sp);
        *sp = '\0';
        double v = strtod(sp + 1, NULL);
        json_t *want = json_object_get(calls ? counts : throttled, l);
        if ((json_int_t)v != json_integer_value(want)) {
            snprintf(why, why_size, "%s: metrics %g, journal %lld", l, v,
                     (long long)json_integer_value(want));
            ok = false;
        }
        if (calls)
            matched++;
        else
            matched_throttled++;
    }
    if (ok && matched != json_object_size(counts)) {
        snprintf(why, why_size, "%zu api_calls samples, %zu journaled (action, code) pairs",
                 matched, json_object_size(counts));
        ok = false;
    }
    if (ok && matched_throttled != json_object_size(throttled)) {
        snprintf(why, why_size, "%zu throttled samples, %zu journaled throttled actions",
                 matched_throttled, json_object_size(throttled));
        ok = false;
    }
    json_decref(counts);
    json_decref(throttled);
    json_decref(journal);
    free(text);
    return ok;
}

/* The metrics agree with the journal exactly. A daemon with a short interval may be between a
 * journaled answer and counting it, so a difference is looked at again until the deadline; a
 * real disagreement persists and fails. */
static void assert_metrics_match_journal(void)
{
    char why[512];
    uint64_t deadline = test_clock_ms() + (uint64_t)10000;
    while (!metrics_match_journal(why, sizeof(why))) {
        if (test_clock_ms() >= deadline)
            cr_assert_fail("metrics disagree with the journal: %s; log:\n%s", why,
                           test_file_read(last_log));
        poll_pause();
    }
}

Test(daemon, converges_at_start_and_after_edit_with_metrics_and_notify)
{
    const char *first[] = {"d-web-1"};
    manifest("web.yaml", first, 1);
    dproc d = start_daemon("daemon.log", NULL);
    char seen[16384] = "";
    cr_assert(await_notify("READY=1", WAIT_MS, seen, sizeof(seen)), "READY=1; log:\n%s",
              test_file_read(d.log));
    await_available("d-web-1");
    json_decref(await_idle(1));

    /* An edit converges without waiting for the 1h interval. */
    const char *both[] = {"d-web-1", "d-web-2"};
    manifest("web.yaml", both, 2);
    await_available("d-web-2");
    json_t *st = await_idle(2);
    cr_assert_str_eq(json_string_value(json_object_get(st, "result")), "ok");
    cr_assert_eq(json_integer_value(json_object_get(st, "pending")), 0);
    json_decref(st);
    cr_assert(available("d-web-1"), "no duplicate and still there");

    /* A file created in the directory (not only a rewrite) is picked up too. */
    const char *third[] = {"d-api-1"};
    manifest("api.yml", third, 1);
    await_available("d-api-1");
    json_decref(await_idle(3));

    assert_metrics_match_journal();
    char *health = scrape("/healthz");
    cr_assert_str_eq(health, "ok\n");
    free(health);
    cr_assert(await_notify("STATUS=", 5000, seen, sizeof(seen)) || strstr(seen, "STATUS=") != NULL,
              "a STATUS= line was sent: %s", seen);

    /* imgrecon status reads what the daemon wrote. */
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s status --state-dir %s --json", IMGRECON_BIN, state);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    char out[8192];
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    cr_assert_eq(pclose(p), 0, "imgrecon status exits 0");
    cr_assert_not_null(strstr(out, "\"result\": \"ok\""), "status --json: %s", out);

    stop_daemon(&d);
    cr_assert(await_notify("STOPPING=1", 5000, seen, sizeof(seen)) ||
                  strstr(seen, "STOPPING=1") != NULL,
              "STOPPING=1 sent: %s", seen);
    st = status_json();
    cr_assert_str_eq(json_string_value(json_object_get(st, "state")), "stopped");
    json_decref(st);
}

Test(daemon, sighup_with_broken_manifest_keeps_old_set_then_fix_applies)
{
    const char *first[] = {"d-keep-1"};
    manifest("web.yaml", first, 1);
    dproc d = start_daemon("daemon.log", NULL);
    cr_assert(await_notify("READY=1", WAIT_MS, NULL, 0));
    await_available("d-keep-1");
    json_decref(await_idle(1));

    /* A broken manifest: the watcher refuses it, and so does SIGHUP. */
    char path[256];
    snprintf(path, sizeof(path), "%s/web.yaml", manifests);
    test_file_replace(path,
                      "region: cn-hangzhou\ncustom_images:\n  - name: d-keep-1\n    bogus: 1\n");
    await_log(&d, "manifests changed but are invalid; keeping the previous set");
    cr_assert_eq(kill(d.pid, SIGHUP), 0);
    cr_assert(await_notify("RELOADING=1", WAIT_MS, NULL, 0));
    cr_assert(await_notify("READY=1", WAIT_MS, NULL, 0), "READY=1 after a refused reload");
    await_log(&d, "reload refused: the manifests are invalid; keeping the previous set");
    cr_assert(log_has(&d, "web.yaml:4:5"), "the log names the position: %s", test_file_read(d.log));
    cr_assert_eq(kill(d.pid, 0), 0, "still running");

    /* The fix applies (through the watcher; a SIGHUP afterwards reloads the same set). */
    const char *fixed[] = {"d-keep-1", "d-keep-2"};
    manifest("web.yaml", fixed, 2);
    await_available("d-keep-2");
    cr_assert(available("d-keep-1"));
    cr_assert_eq(kill(d.pid, SIGHUP), 0);
    await_log(&d, "msg=\"reloaded\"");
    stop_daemon(&d);
}

Test(daemon, sigterm_during_apply_exits_zero_and_restart_converges)
{
    const char *names[] = {"d-stop-1", "d-stop-2", "d-stop-3"};
    manifest("web.yaml", names, 3);
    dproc d = start_daemon("daemon.log", NULL);
    await_log(&d, "step started");
    stop_daemon(&d);
    json_t *st = status_json();
    cr_assert_str_eq(json_string_value(json_object_get(st, "state")), "stopped");
    json_decref(st);

    dproc again = start_daemon("daemon2.log", NULL);
    for (size_t i = 0; i < 3; i++)
        await_available(names[i]);
    json_decref(await_idle(1));
    for (size_t i = 0; i < 3; i++) {
        int count = 0;
        free(image_status(names[i], &count));
        cr_assert_eq(count, 1, "%s exists once", names[i]);
    }
    stop_daemon(&again);
}

Test(daemon, second_daemon_exits_1_naming_the_holder)
{
    const char *first[] = {"d-lock-1"};
    manifest("web.yaml", first, 1);
    dproc d = start_daemon("daemon.log", NULL);
    cr_assert(await_notify("READY=1", WAIT_MS, NULL, 0));
    dproc second = start_daemon("second.log", NULL);
    cr_assert_eq(wait_exit(second.pid, WAIT_MS), 1);
    char want[256];
    snprintf(want, sizeof(want), "another imgrecon run (pid %ld) holds %s/daemon.lock", (long)d.pid,
             state);
    cr_assert(log_has(&second, want), "second daemon's log: %s", test_file_read(second.log));
    stop_daemon(&d);
}

/* ---- manifest watching, suspend, backoff, idle ---- */

#define BAD_INSTANCE "dead0706b2ac4454d984295a94213dead" /* not in the demo fixture */

/* A manifest for region cn-hangzhou: names[i] on instance[i] (NULL: the demo's web-1). */
static char *manifest_text(const char *const *names, const char *const *instances, size_t n)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    fprintf(m, "region: cn-hangzhou\ncustom_images:\n");
    for (size_t i = 0; i < n; i++)
        fprintf(m, "  - name: %s\n    instance_id: %s\n    system_snapshot_id: " SNAPSHOT "\n",
                names[i], instances && instances[i] ? instances[i] : INSTANCE);
    fclose(m);
    return buf;
}

/* Writes text to path directly (open, write, close: no rename). */
static void write_in_place(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "open %s", path);
    cr_assert_geq(fputs(text, f), 0);
    cr_assert_eq(fclose(f), 0);
}

/* Lines of the journal made with this daemon's key; action and image_name filter when non-NULL. */
static size_t journal_count(const char *action, const char *image_name)
{
    json_t *journal = emu_proc_journal(&emu);
    cr_assert_not_null(journal);
    size_t i, n = 0;
    json_t *line;
    json_array_foreach(journal, i, line)
    {
        const char *a = json_string_value(json_object_get(line, "action"));
        const char *key = json_string_value(json_object_get(line, "access_key_id"));
        const char *name =
            json_string_value(json_object_get(json_object_get(line, "params"), "ImageName"));
        if (a == NULL || key == NULL || strcmp(key, KEY_ID) != 0)
            continue;
        if (action != NULL && strcmp(a, action) != 0)
            continue;
        if (image_name != NULL && (name == NULL || strcmp(name, image_name) != 0))
            continue;
        n++;
    }
    json_decref(journal);
    return n;
}

static bool read_only_action(const char *a)
{
    /* GetCallerIdentity: the account id of the key, asked once per state directory. */
    return strcmp(a, "ListCustomImages") == 0 || strcmp(a, "DescribeImages") == 0 ||
           strcmp(a, "GetCallerIdentity") == 0;
}

/* Journal lines of this key whose action changes something. */
static size_t journal_mutations(void)
{
    json_t *journal = emu_proc_journal(&emu);
    cr_assert_not_null(journal);
    size_t i, n = 0;
    json_t *line;
    json_array_foreach(journal, i, line)
    {
        const char *a = json_string_value(json_object_get(line, "action"));
        const char *key = json_string_value(json_object_get(line, "access_key_id"));
        if (a != NULL && key != NULL && strcmp(key, KEY_ID) == 0 && !read_only_action(a))
            n++;
    }
    json_decref(journal);
    return n;
}

static void await_gone(const char *name)
{
    uint64_t deadline = test_clock_ms() + (uint64_t)WAIT_MS;
    for (;;) {
        int count = 0;
        free(image_status(name, &count));
        if (count == 0)
            return;
        if (test_clock_ms() >= deadline)
            cr_assert_fail("%s was not deleted in time; log:\n%s", name, test_file_read(last_log));
        poll_pause();
    }
}

/* Takes notify messages until one starts with prefix and contains needle (at most ms); the last
 * one with prefix goes to last. */
static bool await_notify_with(const char *prefix, const char *needle, long ms, char *last,
                              size_t last_size)
{
    uint64_t deadline = test_clock_ms() + (uint64_t)ms;
    for (;;) {
        char *msg;
        while ((msg = test_notify_pop(notify)) != NULL) {
            bool hit = false;
            if (strncmp(msg, prefix, strlen(prefix)) == 0) {
                snprintf(last, last_size, "%s", msg);
                hit = strstr(msg, needle) != NULL;
            }
            free(msg);
            if (hit)
                return true;
        }
        int left = test_clock_left(deadline);
        if (left <= 0)
            return false;
        test_notify_pump(notify, left);
    }
}

static size_t count_in_log(const dproc *d, const char *needle)
{
    char *text = test_file_read(d->log);
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    free(text);
    return n;
}

static json_int_t status_int(json_t *st, const char *key)
{
    return json_integer_value(json_object_get(st, key));
}

/* A consistent view of an idle daemon: status.json says idle after `cycles` >= min_cycles both
 * before and after the journal was read, so the journal holds exactly the calls of those cycles
 * (plus any made between cycles). *ret_journal is the journal's lines for this key. */
static json_t *idle_snapshot(json_int_t min_cycles, json_t **ret_journal)
{
    uint64_t deadline = test_clock_ms() + (uint64_t)WAIT_MS;
    for (;;) {
        json_t *a = status_json();
        const char *s = a ? json_string_value(json_object_get(a, "state")) : NULL;
        if (s != NULL && strcmp(s, "idle") == 0 && status_int(a, "cycles") >= min_cycles) {
            json_t *journal = emu_proc_journal(&emu);
            cr_assert_not_null(journal);
            json_t *b = status_json();
            const char *sb = b ? json_string_value(json_object_get(b, "state")) : NULL;
            bool same = sb != NULL && strcmp(sb, "idle") == 0 &&
                        status_int(a, "cycles") == status_int(b, "cycles");
            json_decref(b);
            if (same) {
                json_t *mine = json_array();
                size_t i;
                json_t *line;
                json_array_foreach(journal, i, line)
                {
                    const char *key = json_string_value(json_object_get(line, "access_key_id"));
                    if (key != NULL && strcmp(key, KEY_ID) == 0)
                        json_array_append(mine, line);
                }
                json_decref(journal);
                *ret_journal = mine;
                return a;
            }
            json_decref(journal);
        }
        json_decref(a);
        if (test_clock_ms() >= deadline)
            cr_assert_fail("no idle snapshot after %lld cycles in time; log:\n%s",
                           (long long)min_cycles, test_file_read(last_log));
        poll_pause();
    }
}

/* utime + stime of pid in clock ticks (/proc/PID/stat fields 14 and 15). */
static long cpu_ticks(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    char *text = test_file_read(path);
    char *p = strrchr(text, ')');
    cr_assert_not_null(p, "%s readable", path);
    unsigned long ut = 0, st = 0;
    /* After ")": state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
     * utime(14) stime(15). */
    int got = sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st);
    free(text);
    cr_assert_eq(got, 2, "parse %s", path);
    return (long)(ut + st);
}

/* Context switches of every thread of pid: a thread that wakes up to do anything switches. */
static long ctxt_switches(pid_t pid)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd),
             "cat /proc/%ld/task/*/status | awk '/ctxt_switches/ {n += $2} END {print n}'",
             (long)pid);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    long n = -1;
    cr_assert_eq(fscanf(p, "%ld", &n), 1);
    pclose(p);
    return n;
}

/* Watches the journal for ms: false as soon as a line is written (inotify, no polling). */
static bool journal_quiet_for(long ms)
{
    int fd = inotify_init1(IN_CLOEXEC);
    cr_assert_geq(fd, 0);
    cr_assert_geq(inotify_add_watch(fd, emu.journal, IN_MODIFY), 0);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, (int)ms);
    close(fd);
    return r == 0;
}

Test(daemon, rename_dance_new_file_and_delete_each_trigger_one_cycle)
{
    test_file_replace(config, "owner: team-a\nmetrics_listen: 127.0.0.1:0\nprune: true\n");
    char web[256], api[256], tmp[256];
    snprintf(web, sizeof(web), "%s/web.yaml", manifests);
    snprintf(api, sizeof(api), "%s/api.yaml", manifests);
    const char *g1[] = {"g-1", "g-2", "g-3", "g-4"};
    char *text = manifest_text(g1, NULL, 1);
    write_in_place(web, text);
    free(text);
    dproc d = start_daemon("daemon.log", NULL);
    await_available("g-1");
    json_decref(await_idle(1));

    /* A tool's rename dance: a temporary file (not a manifest name, not hidden) in the same
     * directory, written, then renamed over the manifest. One cycle, well before the 1h
     * interval. */
    snprintf(tmp, sizeof(tmp), "%s/web.yaml.new", manifests);
    text = manifest_text(g1, NULL, 2);
    write_in_place(tmp, text);
    free(text);
    cr_assert_eq(rename(tmp, web), 0);
    await_available("g-2");
    json_decref(await_idle(2));

    /* A new manifest appears through a hidden temporary file renamed into place. */
    snprintf(tmp, sizeof(tmp), "%s/.api.yaml.XXXXXX", manifests);
    text = manifest_text(g1 + 2, NULL, 1);
    write_in_place(tmp, text);
    free(text);
    cr_assert_eq(rename(tmp, api), 0);
    await_available("g-3");
    json_decref(await_idle(3));

    /* git checkout's way: unlink, then create and write the file in place. */
    cr_assert_eq(unlink(api), 0);
    text = manifest_text(g1 + 2, NULL, 2);
    write_in_place(api, text);
    free(text);
    await_available("g-4");
    json_decref(await_idle(4));

    /* A manifest deleted: with prune its images go. */
    cr_assert_eq(unlink(web), 0);
    await_gone("g-1");
    await_gone("g-2");
    json_t *st = await_idle(5);
    cr_assert_str_eq(json_string_value(json_object_get(st, "result")), "ok");
    cr_assert_eq(status_int(st, "pending"), 0);
    json_decref(st);
    cr_assert(available("g-3") && available("g-4"), "the other manifest's images stay");

    /* Each change gave exactly one cycle (debounced), none came from the interval. */
    st = status_json();
    cr_assert_eq(status_int(st, "cycles"), 5, "cycles: %lld; log:\n%s",
                 (long long)status_int(st, "cycles"), test_file_read(d.log));
    json_decref(st);
    cr_assert_eq(count_in_log(&d, "manifest change detected"), 4, "log:\n%s",
                 test_file_read(d.log));
    cr_assert_eq(journal_count("CreateCustomImage", NULL), 4, "each image created once");
    assert_metrics_match_journal();
    stop_daemon(&d);
}

Test(daemon, single_manifest_file_replaced_by_rename_converges)
{
    /* -f names one file: its directory is watched (the file's inode changes with every
     * rename); other entries in that directory do not trigger anything. */
    char web[256], other[256];
    snprintf(web, sizeof(web), "%s/web.yaml", manifests);
    snprintf(other, sizeof(other), "%s/unrelated.yaml", manifests);
    const char *names[] = {"h-1", "h-2"};
    manifest("web.yaml", names, 1);
    dproc d = start_daemon_with("daemon.log", "1h", web, NULL);
    await_available("h-1");
    json_decref(await_idle(1));

    char *text = manifest_text(names, NULL, 2);
    write_in_place(other, text); /* not watched: no cycle */
    free(text);
    manifest("web.yaml", names, 2); /* temp + rename over it */
    await_available("h-2");
    json_t *st = await_idle(2);
    cr_assert_eq(status_int(st, "cycles"), 2);
    json_decref(st);
    /* A second rename over the (new) file is seen too: the watch follows the name. */
    manifest("web.yaml", names, 1);
    await_log(&d, "manifest change detected");
    json_decref(await_idle(3));
    cr_assert_eq(count_in_log(&d, "manifest change detected"), 2, "log:\n%s",
                 test_file_read(d.log));
    stop_daemon(&d);
}

/* Suspended: the daemon plans and reports the pending change (status.json, STATUS=, log) but the
 * emulator sees no mutating call. */
static void assert_suspended_reporting(const dproc *d, const char *name, json_int_t pending)
{
    json_t *st = await_idle(1);
    cr_assert(json_is_true(json_object_get(st, "suspended")), "status.json says suspended");
    cr_assert_eq(status_int(st, "pending"), pending, "pending %lld",
                 (long long)status_int(st, "pending"));
    cr_assert_eq(status_int(st, "drift"), pending);
    cr_assert_eq(status_int(st, "done"), 0);
    json_decref(st);
    char last[2048] = "", want[64];
    snprintf(want, sizeof(want), "%lld pending", (long long)pending);
    cr_assert(await_notify_with("STATUS=", want, WAIT_MS, last, sizeof(last)),
              "STATUS= reports %s: last %s", want, last);
    cr_assert_not_null(strstr(last, "suspended"), "STATUS= says suspended: %s", last);
    cr_assert(log_has(d, "suspended=true"), "log:\n%s", test_file_read(d->log));
    cr_assert_eq(journal_mutations(), 0, "no mutating call while suspended");
    cr_assert_gt(journal_count("ListCustomImages", NULL), 0, "it still observes");
    int count = 0;
    free(image_status(name, &count));
    cr_assert_eq(count, 0);

    char cmd[512], out[8192];
    snprintf(cmd, sizeof(cmd), "%s status --state-dir %s", IMGRECON_BIN, state);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    pclose(p);
    cr_assert_not_null(strstr(out, "suspended"), "imgrecon status: %s", out);
}

Test(daemon, suspend_in_config_plans_without_changes_until_reload)
{
    test_file_replace(config, "metrics_listen: 127.0.0.1:0\nsuspend: true\n");
    const char *names[] = {"s-1", "s-2"};
    manifest("web.yaml", names, 1);
    dproc d = start_daemon("daemon.log", NULL);
    cr_assert(await_notify("READY=1", WAIT_MS, NULL, 0));
    assert_suspended_reporting(&d, "s-1", 1);

    /* An edit while suspended is planned too, still without a call. */
    manifest("web.yaml", names, 2);
    json_t *st = await_idle(2);
    cr_assert_eq(status_int(st, "pending"), 2);
    json_decref(st);
    cr_assert_eq(journal_mutations(), 0);

    /* Unsuspend and reload: it converges. */
    test_file_replace(config, "metrics_listen: 127.0.0.1:0\nsuspend: false\n");
    cr_assert_eq(kill(d.pid, SIGHUP), 0);
    await_available("s-1");
    await_available("s-2");
    st = await_idle(3);
    cr_assert(json_is_false(json_object_get(st, "suspended")));
    cr_assert_eq(status_int(st, "pending"), 0);
    json_decref(st);
    stop_daemon(&d);
}

/* A reload that changes what the client is built from (here the account id) replaces the
 * setup: the replaced one, with its credentials, frees itself once its client has closed
 * instead of waiting for exit (ASan and valgrind in CI watch the free), and the cycles after
 * the reloads run on the new setup. The manifest watcher is armed again before READY=1, so an
 * edit made as soon as READY=1 arrives converges without waiting for the 1h interval. */
Test(daemon, reloads_that_rebuild_the_client_free_the_old_setup)
{
    const char *names[] = {"r-1", "r-2"};
    manifest("web.yaml", names, 1);
    dproc d = start_daemon("daemon.log", NULL);
    cr_assert(await_notify("READY=1", WAIT_MS, NULL, 0));
    await_available("r-1");
    for (int i = 0; i < 2; i++) {
        char text[128];
        snprintf(text, sizeof(text), "metrics_listen: 127.0.0.1:0\naccount_id: \"1234567890%d\"\n",
                 i);
        test_file_write(config, text);
        cr_assert_eq(kill(d.pid, SIGHUP), 0);
        cr_assert(await_notify("READY=1", WAIT_MS, NULL, 0), "READY=1 after reload %d", i + 1);
    }
    /* Straight after the last READY=1: no wait for the reload's cycle. */
    manifest("web.yaml", names, 2);
    await_available("r-2");
    cr_assert_not(log_has(&d, "reload refused"), "a reload was refused:\n%s",
                  test_file_read(d.log));
    stop_daemon(&d);
}

Test(daemon, suspend_file_in_state_dir_plans_without_changes_until_removed)
{
    char flag[200];
    cr_assert_eq(mkdir(state, 0700), 0);
    snprintf(flag, sizeof(flag), "%s/suspend", state);
    write_in_place(flag, "");
    const char *names[] = {"u-1"};
    manifest("web.yaml", names, 1);
    dproc d = start_daemon_with("daemon.log", "1s", manifests, NULL);
    assert_suspended_reporting(&d, "u-1", 1);
    /* Several interval cycles pass; none acts. */
    json_t *journal = NULL;
    json_t *st = idle_snapshot(4, &journal);
    json_decref(journal);
    cr_assert(json_is_true(json_object_get(st, "suspended")));
    json_decref(st);
    cr_assert_eq(journal_mutations(), 0, "no mutating call over several suspended cycles");

    /* Removing the file lets the next cycle (no signal needed) converge. */
    cr_assert_eq(unlink(flag), 0);
    await_available("u-1");
    st = idle_snapshot(5, &journal);
    json_decref(journal);
    cr_assert(json_is_false(json_object_get(st, "suspended")));
    cr_assert_eq(status_int(st, "pending"), 0);
    json_decref(st);
    cr_assert_eq(journal_count("CreateCustomImage", "u-1"), 1);
    stop_daemon(&d);
}

/* The interval reads the manifests again only when their files changed (spec_stamp_unchanged).
 * The manifest is a hard link to a file outside the watched directories, and the edit goes
 * through that other name: the watcher sees nothing, so only the interval's stamp can find it. */
Test(daemon, interval_skips_unchanged_manifests_and_reads_changed_ones)
{
    const char *one[] = {"h-1"}, *two[] = {"h-1", "h-2"};
    manifest("web.yaml", one, 1);
    char inside[256], outside[256];
    snprintf(inside, sizeof(inside), "%s/web.yaml", manifests);
    snprintf(outside, sizeof(outside), "%s/outside.yaml", dir);
    cr_assert_eq(link(inside, outside), 0);
    const char *verbose[] = {"-v", NULL};
    dproc d = start_daemon_with("daemon.log", "1s", manifests, verbose);
    await_available("h-1");
    /* Once the file is older than the racy window (2 s), cycles stop reading it. */
    await_log(&d, "manifests unchanged; not read again");
    char *text = manifest_text(two, NULL, 2);
    write_in_place(outside, text);
    free(text);
    await_available("h-2");
    cr_assert_not(log_has(&d, "manifest change detected"), "the watcher saw nothing");
    cr_assert_eq(journal_count("CreateCustomImage", "h-2"), 1);
    stop_daemon(&d);
}

Test(daemon, failing_item_backs_off_across_cycles_while_healthy_item_converges)
{
    /* b-bad names an instance the emulator does not have: InvalidInstanceId.NotFound every
     * time. With a 1 s interval the backoff is 1 s, 2 s, 4 s, 8 s ...: over ten cycles it is
     * attempted in cycles 1, 2, about 4 and about 8, never every cycle. */
    const char *names[] = {"b-ok", "b-bad"};
    const char *instances[] = {INSTANCE, BAD_INSTANCE};
    char path[256];
    snprintf(path, sizeof(path), "%s/web.yaml", manifests);
    char *text = manifest_text(names, instances, 2);
    test_file_replace(path, text);
    free(text);
    dproc d = start_daemon_with("daemon.log", "1s", manifests, NULL);
    await_available("b-ok");
    json_t *journal = NULL;
    json_t *st = idle_snapshot(10, &journal);
    json_int_t cycles = status_int(st, "cycles");
    size_t attempts = 0, ok_creates = 0;
    size_t i;
    json_t *line;
    json_array_foreach(journal, i, line)
    {
        if (strcmp(json_string_value(json_object_get(line, "action")), "CreateCustomImage") != 0)
            continue;
        const char *name =
            json_string_value(json_object_get(json_object_get(line, "params"), "ImageName"));
        if (strcmp(name, "b-bad") == 0) {
            attempts++;
            cr_assert_str_eq(json_string_value(json_object_get(line, "code")),
                             "InvalidInstanceId.NotFound");
        } else {
            ok_creates++;
        }
    }
    json_decref(journal);
    printf("backoff: b-bad attempted %zu times in %lld cycles\n", attempts, (long long)cycles);
    cr_assert_eq(ok_creates, 1, "the healthy item is created once");
    cr_assert_geq(attempts, 3, "it is retried when its backoff expires (%zu in %lld cycles)",
                  attempts, (long long)cycles);
    cr_assert_leq(attempts * 2, (size_t)cycles,
                  "not retried every cycle: %zu attempts in %lld cycles; log:\n%s", attempts,
                  (long long)cycles, test_file_read(d.log));
    /* status.json lists the item with its consecutive failures and normalised message. */
    json_t *fails = json_object_get(st, "failures");
    cr_assert_eq(json_array_size(fails), 1, "one failing item");
    json_t *f = json_array_get(fails, 0);
    cr_assert_not_null(strstr(json_string_value(json_object_get(f, "address")), "b-bad"));
    cr_assert_eq(status_int(f, "count"), (json_int_t)attempts, "one failure per attempted cycle");
    cr_assert_not_null(
        strstr(json_string_value(json_object_get(f, "message")), "InvalidInstanceId.NotFound"));
    cr_assert(log_has(&d, "step skipped: backing off after failures"));
    /* A cycle that only skipped the item is no success: the item still fails. */
    cr_assert(log_has(&d, "result=failed drift=1 done=0 failed=0 backing_off=1"), "log:\n%s",
              test_file_read(d.log));
    cr_assert_str_eq(json_string_value(json_object_get(st, "result")), "failed");
    cr_assert(json_is_null(json_object_get(st, "last_success")), "no cycle succeeded yet");
    json_decref(st);
    assert_metrics_match_journal();

    /* Editing the manifest forgets the backoff: the fixed item is tried at once. */
    const char *fixed[] = {"b-ok", "b-bad"};
    text = manifest_text(fixed, NULL, 2);
    test_file_replace(path, text);
    free(text);
    await_available("b-bad");
    json_t *after = NULL;
    st = idle_snapshot(cycles + 1, &after);
    json_decref(after);
    cr_assert_str_eq(json_string_value(json_object_get(st, "result")), "ok");
    cr_assert_eq(json_array_size(json_object_get(st, "failures")), 0, "the backoff is forgotten");
    json_decref(st);
    stop_daemon(&d);
}

Test(daemon, idle_daemon_calls_only_inside_cycles_and_burns_no_cpu)
{
    const char *names[] = {"i-1"};
    manifest("web.yaml", names, 1);

    /* A 1h interval: after convergence the daemon sleeps. Over the stretch the journal stays
     * untouched (inotify) and the process, every thread included, is measured. */
    dproc d = start_daemon("daemon.log", NULL);
    await_available("i-1");
    json_decref(await_idle(1));
    cr_assert(await_notify("READY=1", WAIT_MS, NULL, 0));
    const long stretch_ms = 3000;
    long ticks0 = cpu_ticks(d.pid), sw0 = ctxt_switches(d.pid), t0 = (long)test_clock_ms();
    bool quiet = journal_quiet_for(stretch_ms);
    long ticks = cpu_ticks(d.pid) - ticks0, sw = ctxt_switches(d.pid) - sw0;
    long took = (long)test_clock_ms() - t0;
    printf("idle (--interval 1h): %ld clock ticks of CPU (utime+stime, %ld/s) and %ld context "
           "switches over %ld ms\n",
           ticks, sysconf(_SC_CLK_TCK), sw, took);
    cr_assert(quiet, "no API call while idle; log:\n%s", test_file_read(d.log));
    cr_assert_leq(ticks, 50, "idle CPU: %ld ticks over %ld ms", ticks, took);
    cr_assert_leq(sw, 5, "idle wake-ups: %ld context switches over %ld ms", sw, took);
    assert_metrics_match_journal();
    stop_daemon(&d);
    json_t *before = emu_proc_journal(&emu);
    metrics_journal_from = json_array_size(before);
    json_decref(before);

    /* A 1 s interval: every idle cycle lists and does nothing else, and each call falls inside
     * a cycle (its journal time between the cycle's start and end in status.json). */
    dproc fast = start_daemon_with("fast.log", "1s", manifests, NULL);
    json_t *journal = NULL;
    json_t *prev = idle_snapshot(1, &journal);
    size_t prev_n = json_array_size(journal);
    json_decref(journal);
    unsigned checked = 0;
    size_t per_cycle = 0;
    while (checked < 5) {
        json_t *st = idle_snapshot(status_int(prev, "cycles") + 1, &journal);
        size_t n = json_array_size(journal);
        if (status_int(st, "cycles") == status_int(prev, "cycles") + 1) {
            const char *start = json_string_value(json_object_get(st, "cycle_start"));
            const char *end = json_string_value(json_object_get(st, "cycle_end"));
            cr_assert(start != NULL && end != NULL);
            for (size_t i = prev_n; i < n; i++) {
                json_t *line = json_array_get(journal, i);
                const char *a = json_string_value(json_object_get(line, "action"));
                const char *ts = json_string_value(json_object_get(line, "ts"));
                cr_assert(read_only_action(a), "idle cycle called %s", a);
                cr_assert(strcmp(ts, start) >= 0 && strcmp(ts, end) <= 0,
                          "%s at %s is outside the cycle %s .. %s", a, ts, start, end);
            }
            cr_assert_gt(n, prev_n, "each cycle observes");
            if (per_cycle == 0)
                per_cycle = n - prev_n;
            cr_assert_eq(n - prev_n, per_cycle, "the same calls every idle cycle");
            checked++;
        }
        json_decref(prev);
        json_decref(journal);
        prev = st;
        prev_n = n;
    }
    printf("idle (--interval 1s): %zu read-only call(s) per cycle over %u cycles\n", per_cycle,
           checked);
    json_decref(prev);
    cr_assert_eq(journal_count("CreateCustomImage", "i-1"), 1);
    assert_metrics_match_journal();
    stop_daemon(&fast);
}

Test(daemon, metrics_agree_with_journal_after_throttling_and_server_errors)
{
    /* The emulator answers some calls with Throttling, InternalError and ServiceUnavailable;
     * the client retries them. The counters by (action, code) and the throttled counter still
     * equal the journal's. */
    cr_assert_eq(emu_proc_add_fault(&emu, "[{\"action\":\"CreateCustomImage\",\"kind\":"
                                          "\"Throttling\",\"count\":2},"
                                          "{\"action\":\"ListCustomImages\",\"kind\":"
                                          "\"InternalError\",\"count\":1},"
                                          "{\"action\":\"CreateCustomImage\",\"kind\":"
                                          "\"ServiceUnavailable\",\"count\":1}]"),
                 0);
    const char *names[] = {"m-1", "m-2"};
    manifest("web.yaml", names, 2);
    dproc d = start_daemon("daemon.log", NULL);
    await_available("m-1");
    await_available("m-2");
    json_t *st = await_idle(1);
    json_decref(st);
    cr_assert_geq(journal_count(NULL, NULL), 6, "faults were journaled");
    assert_metrics_match_journal();
    char *text = scrape("/metrics");
    cr_assert_not_null(
        strstr(text, "imgrecon_throttled_calls_total{action=\"CreateCustomImage\"} 2"),
        "metrics:\n%s", text);
    free(text);
    stop_daemon(&d);
}

/* The id of the first custom image called name in the emulator's world (caller frees). */
static char *image_id_of(const char *name)
{
    json_t *st = emu_proc_state(&emu);
    char *found = NULL;
    size_t i, j;
    json_t *region, *img;
    json_array_foreach(json_object_get(st, "regions"), i, region)
    {
        json_array_foreach(json_object_get(region, "custom_images"), j, img)
        {
            const char *n = json_string_value(json_object_get(img, "name"));
            if (found == NULL && n != NULL && strcmp(n, name) == 0)
                found = strdup(json_string_value(json_object_get(img, "image_id")));
        }
    }
    json_decref(st);
    cr_assert_not_null(found, "no image %s in the emulator", name);
    return found;
}

/* Another controller: unshares the image with a signed call of its own (`imgrecon api`, its
 * own state directory), as a person in the console would. */
static void hand_unshare(const char *image_id)
{
    char id_arg[96], hand_state[160], log[160];
    snprintf(id_arg, sizeof(id_arg), "ImageId=%s", image_id);
    snprintf(hand_state, sizeof(hand_state), "%s/hand-state", dir);
    snprintf(log, sizeof(log), "%s/hand.log", dir);
    const char *argv[] = {IMGRECON_BIN,
                          "api",
                          "--endpoint",
                          emu.base_url,
                          "--state-dir",
                          hand_state,
                          "--rate-limit",
                          "10/1s",
                          "swas",
                          "ModifyImageShareStatus",
                          "RegionId=cn-hangzhou",
                          id_arg,
                          "Operation=UnShare",
                          NULL};
    char home[96];
    snprintf(home, sizeof(home), "HOME=%s", dir);
    const char *const env_edits[] = {"ALIBABA_CLOUD_ACCESS_KEY_ID=" KEY_ID,
                                     "ALIBABA_CLOUD_ACCESS_KEY_SECRET=" KEY_SECRET, home,
                                     "IMGRECON_ENDPOINT", NULL};
    test_proc_opts o = {.out_path = log, .append = true, .env = env_edits, .wrap = true};
    pid_t pid = test_proc_spawn(argv, &o);
    int code = wait_exit(pid, WAIT_MS);
    cr_assert_eq(code, 0, "imgrecon api UnShare exit %d:\n%s", code, test_file_read(log));
}

static bool image_shared_now(const char *name)
{
    json_t *st = emu_proc_state(&emu);
    bool shared = false;
    size_t i, j;
    json_t *region, *img;
    json_array_foreach(json_object_get(st, "regions"), i, region)
    {
        json_array_foreach(json_object_get(region, "custom_images"), j, img)
        {
            const char *n = json_string_value(json_object_get(img, "name"));
            if (n != NULL && strcmp(n, name) == 0)
                shared = json_is_true(json_object_get(img, "in_share"));
        }
    }
    json_decref(st);
    return shared;
}

/* Fighting controllers (issue 11 item 7): the daemon shares `web`; someone unshares it after
 * every cycle. The cycle after the first undo fixes it; the next two find it undone again (twice
 * in a row): the daemon logs it, counts it in imgrecon_item_fights_total and lists a warning
 * naming the item in status.json; once the item stays fixed the warning goes. Each manifest
 * rewrite gives exactly one cycle (1h interval), so the sequence is deterministic. */
Test(daemon, fighting_controller_is_reported_after_two_undos_in_a_row)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/web.yaml", manifests);
    const char *text =
        "region: cn-hangzhou\ncustom_images:\n  - name: web\n    instance_id: " INSTANCE
        "\n    system_snapshot_id: " SNAPSHOT "\n    share_to_ecs: true\n";
    test_file_replace(path, text);
    dproc d = start_daemon("daemon.log", NULL);
    json_decref(await_idle(1));
    await_available("web");
    cr_assert(image_shared_now("web"), "cycle 1 created and shared web");
    char *id = image_id_of("web");
    for (unsigned undo = 1; undo <= 3; undo++) {
        hand_unshare(id);
        cr_assert_not(image_shared_now("web"));
        test_file_replace(path, text); /* one more cycle */
        json_t *st = await_idle(1 + undo);
        cr_assert(image_shared_now("web"), "cycle %u shared web again", 1 + undo);
        json_t *warns = json_object_get(st, "warnings");
        if (undo < 3) {
            cr_assert_eq(json_array_size(warns), 0, "no fight yet after undo %u", undo);
            cr_assert_not(log_has(&d, "fighting controller"));
        } else {
            cr_assert_eq(json_array_size(warns), 1, "one fighting item");
            json_t *w = json_array_get(warns, 0);
            cr_assert_str_eq(json_string_value(json_object_get(w, "address")),
                             "swas.cn-hangzhou.custom_image.web");
            cr_assert_eq(status_int(w, "count"), 2);
        }
        json_decref(st);
    }
    await_log(&d, "fighting controller");
    char *metrics = scrape("/metrics");
    cr_assert_not_null(strstr(metrics, "\nimgrecon_item_fights_total 1\n"), "%s", metrics);
    free(metrics);
    /* Left alone, the item stays fixed: the warning goes. */
    test_file_replace(path, text);
    json_t *st = await_idle(5);
    cr_assert_eq(json_array_size(json_object_get(st, "warnings")), 0);
    json_decref(st);
    free(id);
    stop_daemon(&d);
}

/* The state directory's call log names the boot clock its times are on. When another host (a
 * state directory on a network filesystem) writes it after the daemon did, the daemon cannot read
 * those times and must not take them for old calls: every call fails with a message that says
 * why and what to do, and nothing is created while it does. */
Test(daemon, a_state_directory_shared_with_another_host_is_refused)
{
    const char *first[] = {"d-shared-1"}, *both[] = {"d-shared-1", "d-shared-2"};
    manifest("web.yaml", first, 1);
    dproc d = start_daemon("daemon.log", NULL);
    cr_assert(await_notify("READY=1", WAIT_MS, NULL, 0));
    await_available("d-shared-1");
    json_decref(await_idle(1));
    /* Another host writes the log: the same calls, on its own clock. */
    char path[256];
    snprintf(path, sizeof(path), "%s/pacer.log", state);
    char *log = test_file_read(path), *clock = strstr(log, "\nclock ");
    cr_assert_not_null(clock, "the log names its clock:\n%s", log);
    memcpy(clock + 7, "0123456789abcdef0123456789abcdef", 32);
    test_file_replace(path, log);
    free(log);
    manifest("web.yaml", both, 2);
    await_log(&d, "the call budget (pacer) in the state directory was written by another host or "
                  "time namespace since this process wrote it");
    cr_expect_eq(journal_count("CreateCustomImage", "d-shared-2"), 0, "nothing created");
    stop_daemon(&d);
}
