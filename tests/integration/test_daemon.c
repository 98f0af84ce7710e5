/* `imgrecon run` as a user runs it: the real binary against the real emulator (rate limit
 * 10/1s, create delay 200ms), with sd_notify captured on a datagram socket named by
 * NOTIFY_SOCKET. The daemon converges at start and again after a manifest edit without waiting
 * for the 1h interval; a SIGHUP with a broken manifest keeps the old set and says why, a later
 * fix applies; SIGTERM during an apply exits 0 and a restart converges without duplicates; the
 * metrics scrape agrees with the emulator's journal; a second daemon on the same state directory
 * exits 1 naming the holder. Every wait polls a file, socket or the emulator with a deadline. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "emu_proc.h"

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
static int notify_fd = -1;

static long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The only pause: between polls of something with a deadline. */
static void poll_pause(void)
{
    (void)poll(NULL, 0, 50);
}

static void write_file(const char *path, const char *text)
{
    /* Write a temporary file and rename it over the target, as git and deploy tools do. */
    char tmp[256];
    snprintf(tmp, sizeof(tmp), "%s.tmp~", path);
    FILE *f = fopen(tmp, "w");
    cr_assert_not_null(f, "open %s", tmp);
    cr_assert_geq(fputs(text, f), 0);
    cr_assert_eq(fclose(f), 0);
    cr_assert_eq(rename(tmp, path), 0);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return strdup("");
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        fwrite(chunk, 1, n, m);
    fclose(f);
    fclose(m);
    return buf;
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
    write_file(path, buf);
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
    write_file(config, "metrics_listen: 127.0.0.1:0\n");
    notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(notify_fd, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    cr_assert_lt(strlen(sock_path), sizeof(sa.sun_path));
    memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
    cr_assert_eq(bind(notify_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
}

static void teardown(void)
{
    if (notify_fd >= 0)
        close(notify_fd);
    (void)emu_proc_stop(&emu);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    (void)system(cmd);
}

TestSuite(daemon, .init = setup, .fini = teardown, .timeout = 300);

/* Starts `imgrecon run` with stderr in log_name; extra args NULL-terminated. */
static dproc start_daemon(const char *log_name, const char *const *extra)
{
    dproc d;
    snprintf(d.log, sizeof(d.log), "%s/%s", dir, log_name);
    const char *argv[32] = {IMGRECON_BIN,  "run",          "-c",    config,       "--endpoint",
                            emu.base_url,  "--rate-limit", "10/1s", "--interval", "1h",
                            "--state-dir", state,          "-f",    manifests};
    size_t n = 14;
    for (size_t i = 0; extra && extra[i] && n < 31; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    d.pid = fork();
    /* Checked with a plain if: the child must not report to Criterion. */
    if (d.pid < 0)
        cr_assert_fail("fork: %s", strerror(errno));
    if (d.pid == 0) {
        int fd = open(d.log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd < 0 || dup2(fd, 2) < 0)
            _exit(126);
        setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", KEY_ID, 1);
        setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", KEY_SECRET, 1);
        setenv("HOME", dir, 1);
        setenv("NOTIFY_SOCKET", sock_path, 1);
        unsetenv("JOURNAL_STREAM");
        unsetenv("IMGRECON_ENDPOINT");
        /* IMGRECON_TEST_WRAP (e.g. "valgrind --error-exitcode=99 --leak-check=full") runs the
         * daemon under a tool; its exit code then carries the tool's verdict. */
        const char *wrap = getenv("IMGRECON_TEST_WRAP");
        if (wrap != NULL && *wrap != '\0') {
            static char words[512];
            const char *wargv[48];
            size_t w = 0;
            snprintf(words, sizeof(words), "%s", wrap);
            for (char *save = NULL, *t = strtok_r(words, " ", &save); t != NULL && w < 16;
                 t = strtok_r(NULL, " ", &save))
                wargv[w++] = t;
            for (size_t i = 0; argv[i] != NULL && w < 47; i++)
                wargv[w++] = argv[i];
            wargv[w] = NULL;
            execvp(wargv[0], (char *const *)wargv);
            _exit(127);
        }
        execv(IMGRECON_BIN, (char *const *)argv);
        _exit(127);
    }
    return d;
}

/* Waits at most ms for the process to exit; returns its exit code, or -1 on timeout/signal. */
static int wait_exit(pid_t pid, long ms)
{
    long deadline = mono_ms() + ms;
    int status;
    while (mono_ms() < deadline) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        poll_pause();
    }
    kill(pid, SIGKILL);
    (void)waitpid(pid, &status, 0);
    return -1;
}

/* Reads notify messages until one starts with prefix (at most ms); appends all to seen. */
static bool await_notify(const char *prefix, long ms, char *seen, size_t seen_size)
{
    long deadline = mono_ms() + ms;
    char msg[2048];
    while (mono_ms() < deadline) {
        struct pollfd p = {.fd = notify_fd, .events = POLLIN};
        if (poll(&p, 1, (int)(deadline - mono_ms())) <= 0)
            break;
        ssize_t n = recv(notify_fd, msg, sizeof(msg) - 1, 0);
        if (n <= 0)
            continue;
        msg[n] = '\0';
        if (seen != NULL && strlen(seen) + (size_t)n + 2 < seen_size) {
            strcat(seen, msg);
            strcat(seen, "\n");
        }
        if (strncmp(msg, prefix, strlen(prefix)) == 0)
            return true;
    }
    return false;
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
    long deadline = mono_ms() + WAIT_MS;
    while (!available(name)) {
        cr_assert_lt(mono_ms(), deadline, "%s did not become available in time", name);
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
    long deadline = mono_ms() + WAIT_MS;
    for (;;) {
        json_t *st = status_json();
        if (st != NULL) {
            const char *s = json_string_value(json_object_get(st, "state"));
            json_int_t c = json_integer_value(json_object_get(st, "cycles"));
            if (s != NULL && strcmp(s, "idle") == 0 && c >= (json_int_t)cycles)
                return st;
            json_decref(st);
        }
        cr_assert_lt(mono_ms(), deadline, "daemon not idle after %u cycles in time", cycles);
        poll_pause();
    }
}

static bool log_has(const dproc *d, const char *needle)
{
    char *text = read_file(d->log);
    bool has = strstr(text, needle) != NULL;
    free(text);
    return has;
}

static void await_log(const dproc *d, const char *needle)
{
    long deadline = mono_ms() + WAIT_MS;
    while (!log_has(d, needle)) {
        cr_assert_lt(mono_ms(), deadline, "log never said '%s'", needle);
        poll_pause();
    }
}

static void stop_daemon(dproc *d)
{
    cr_assert_eq(kill(d->pid, SIGTERM), 0);
    int code = wait_exit(d->pid, 45000);
    cr_assert_eq(code, 0, "SIGTERM exits 0 (got %d); log:\n%s", code, read_file(d->log));
    cr_assert_not(log_has(d, KEY_SECRET), "the secret never reaches the log");
}

typedef struct body {
    char *buf;
    size_t len;
} body;

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    body *b = ud;
    char *grown = realloc(b->buf, b->len + size * n + 1);
    if (grown == NULL)
        return 0;
    b->buf = grown;
    memcpy(b->buf + b->len, p, size * n);
    b->len += size * n;
    b->buf[b->len] = '\0';
    return size * n;
}

static char *scrape(const char *path)
{
    char addr_path[160], url[256];
    snprintf(addr_path, sizeof(addr_path), "%s/metrics.addr", state);
    char *addr = read_file(addr_path);
    addr[strcspn(addr, "\n")] = '\0';
    cr_assert_eq(strncmp(addr, "127.0.0.1:", 10), 0, "metrics.addr has the bound address");
    snprintf(url, sizeof(url), "http://%s%s", addr, path);
    free(addr);
    body b = {0};
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    cr_assert_eq(curl_easy_perform(c), CURLE_OK, "scrape %s", url);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    cr_assert_eq(code, 200);
    return b.buf;
}

/* Every imgrecon_api_calls_total sample must equal the journal's count for (action, code), and
 * every journaled (action, code) must appear: the two agree exactly. */
static void assert_metrics_match_journal(void)
{
    char *text = scrape("/metrics");
    json_t *journal = emu_proc_journal(&emu);
    cr_assert_not_null(journal);
    json_t *counts = json_object();
    size_t i;
    json_t *line;
    json_array_foreach(journal, i, line)
    {
        const char *action = json_string_value(json_object_get(line, "action"));
        const char *key = json_string_value(json_object_get(line, "access_key_id"));
        if (action == NULL || key == NULL || strcmp(key, KEY_ID) != 0)
            continue;
        const char *code = json_string_value(json_object_get(line, "code"));
        char k[256];
        snprintf(k, sizeof(k), "imgrecon_api_calls_total{action=\"%s\",code=\"%s\"}", action,
                 code ? code : "OK");
        json_int_t have = json_integer_value(json_object_get(counts, k));
        json_object_set_new(counts, k, json_integer(have + 1));
    }
    cr_assert_gt(json_object_size(counts), 0, "the journal has calls");
    size_t matched = 0;
    char *save = NULL;
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (strncmp(l, "imgrecon_api_calls_total{", 25) != 0)
            continue;
        char *sp = strrchr(l, ' ');
        cr_assert_not_null(sp);
        *sp = '\0';
        double v = strtod(sp + 1, NULL);
        json_t *want = json_object_get(counts, l);
        cr_assert_not_null(want, "metric %s not in the journal", l);
        cr_assert_eq((json_int_t)v, json_integer_value(want), "%s: metrics %g, journal %lld", l, v,
                     (long long)json_integer_value(want));
        matched++;
    }
    cr_assert_eq(matched, json_object_size(counts), "every journaled (action, code) is counted");
    json_decref(counts);
    json_decref(journal);
    free(text);
}

Test(daemon, converges_at_start_and_after_edit_with_metrics_and_notify)
{
    const char *first[] = {"d-web-1"};
    manifest("web.yaml", first, 1);
    dproc d = start_daemon("daemon.log", NULL);
    char seen[16384] = "";
    cr_assert(await_notify("READY=1", WAIT_MS, seen, sizeof(seen)), "READY=1; log:\n%s",
              read_file(d.log));
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
    write_file(path, "region: cn-hangzhou\ncustom_images:\n  - name: d-keep-1\n    bogus: 1\n");
    await_log(&d, "manifests changed but are invalid; keeping the previous set");
    cr_assert_eq(kill(d.pid, SIGHUP), 0);
    cr_assert(await_notify("RELOADING=1", WAIT_MS, NULL, 0));
    cr_assert(await_notify("READY=1", WAIT_MS, NULL, 0), "READY=1 after a refused reload");
    await_log(&d, "reload refused: the manifests are invalid; keeping the previous set");
    cr_assert(log_has(&d, "web.yaml:4:5"), "the log names the position: %s", read_file(d.log));
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
    cr_assert(log_has(&second, want), "second daemon's log: %s", read_file(second.log));
    stop_daemon(&d);
}
