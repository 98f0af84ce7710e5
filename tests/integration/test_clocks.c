/* Clocks (issue 13 item 4): waits, timeouts and backoff run on a monotonic clock, so a step of
 * the wall clock during an apply causes no failure and no second create. The real imgrecon binary
 * runs under libfaketime (Debian package faketime) with FAKETIME_DONT_FAKE_MONOTONIC=1, which is
 * what a real step of the wall clock looks like: CLOCK_REALTIME and time() jump, CLOCK_MONOTONIC
 * does not. The offset lives in a FAKETIME_TIMESTAMP_FILE read on every call
 * (FAKETIME_NO_CACHE=1) and is changed while the apply awaits its creations: two hours back
 * after the first create, three hours forward after the next poll. The emulator runs on the
 * real clock with a signature clock skew of 6h (its timestamp check is not what is tested), a
 * create delay and a list lag, so the creations are awaited across both steps. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "emu_proc.h"
#include "etcd_proc.h"
#include "test_clock.h"
#include "test_file.h"
#include "test_proc.h"

#define KEY_ID "LTAIclockStepKey0001"
#define SECRET "clock-step-secret"
#define WAIT_MS 120000
#define N_IMAGES 3

static emu_proc emu;
static char dir[64], state[128], manifests[128], config[160], rc_file[160], out_file[160];

static const char *const faketime_libs[] = {
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
};

static const char *faketime_lib(void)
{
    for (size_t i = 0; i < sizeof(faketime_libs) / sizeof(faketime_libs[0]); i++)
        if (access(faketime_libs[i], R_OK) == 0)
            return faketime_libs[i];
    return NULL;
}

/* How many emulator journal lines have this action and HTTP status (0: any status). */
static size_t count_calls(const char *action, int status)
{
    json_t *j = emu_proc_journal(&emu);
    cr_assert_not_null(j);
    size_t n = 0, i;
    json_t *line;
    json_array_foreach(j, i, line)
    {
        const char *a = json_string_value(json_object_get(line, "action"));
        int st = (int)json_integer_value(json_object_get(line, "http_status"));
        if (a && strcmp(a, action) == 0 && (status == 0 || st == status))
            n++;
    }
    json_decref(j);
    return n;
}

/* Polls the emulator's journal until at least n calls of action were answered (bounded). */
static void await_calls(const char *action, int status, size_t n, pid_t child)
{
    uint64_t deadline = test_clock_ms() + WAIT_MS;
    while (count_calls(action, status) < n) {
        int st;
        cr_assert_eq(waitpid(child, &st, WNOHANG), 0, "imgrecon exited early:\n%s",
                     test_file_read(out_file));
        cr_assert_lt(test_clock_ms(), deadline, "no %zu %s calls within %d ms", n, action, WAIT_MS);
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* Starts imgrecon with cmd (its name, then its own arguments, NULL-terminated) and the common
 * options, under libfaketime; stdout and stderr go to out_file. */
static pid_t start_imgrecon(const char *lib, const char *const *cmd)
{
    const char *argv[32] = {IMGRECON_BIN,  cmd[0],    "-c",           config,
                            "-f",          manifests, "--endpoint",   emu.base_url,
                            "--state-dir", state,     "--rate-limit", "10/1s"};
    size_t n = 12;
    for (size_t i = 1; cmd[i] != NULL && n < 31; i++)
        argv[n++] = cmd[i];
    argv[n] = NULL;
    /* An ASan build of imgrecon wants its runtime first in the library list; libfaketime
     * only wraps clock calls, so the order does not matter here. */
    static char asan[512], preload[300], home[96], rc_env[200];
    const char *prev = getenv("ASAN_OPTIONS");
    snprintf(asan, sizeof(asan), "ASAN_OPTIONS=%s%sverify_asan_link_order=0", prev ? prev : "",
             prev && *prev ? ":" : "");
    snprintf(preload, sizeof(preload), "LD_PRELOAD=%s", lib);
    snprintf(home, sizeof(home), "HOME=%s", dir);
    snprintf(rc_env, sizeof(rc_env), "FAKETIME_TIMESTAMP_FILE=%s", rc_file);
    const char *const env[] = {"ALIBABA_CLOUD_SECURITY_TOKEN",
                               "CREDENTIALS_DIRECTORY",
                               "IMGRECON_ENDPOINT",
                               "ALIBABA_CLOUD_ACCESS_KEY_ID=" KEY_ID,
                               "ALIBABA_CLOUD_ACCESS_KEY_SECRET=" SECRET,
                               home,
                               "NO_COLOR=1",
                               preload,
                               asan,
                               rc_env,
                               "FAKETIME_NO_CACHE=1",
                               "FAKETIME_DONT_FAKE_MONOTONIC=1",
                               NULL};
    test_proc_opts o = {.out_path = out_file, .env = env};
    return test_proc_spawn(argv, &o);
}

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/imgrecon-clocks-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(state, sizeof(state), "%s/state", dir);
    snprintf(manifests, sizeof(manifests), "%s/manifests", dir);
    snprintf(config, sizeof(config), "%s/config.yaml", dir);
    snprintf(rc_file, sizeof(rc_file), "%s/faketime.rc", dir);
    snprintf(out_file, sizeof(out_file), "%s/apply.txt", dir);
    cr_assert_eq(mkdir(manifests, 0700), 0);
    char path[256];
    snprintf(path, sizeof(path), "%s/fixture.yaml", dir);
    test_file_replace(path, "accounts:\n"
                            "  - access_key_id: " KEY_ID "\n"
                            "    access_key_secret: " SECRET "\n"
                            "    user_id: 1234567890123456\n"
                            "regions:\n"
                            "  - region: cn-hangzhou\n"
                            "    servers:\n"
                            "      - instance_id: ace0706b2ac4454d984295a94213abcd\n"
                            "        name: web-1\n"
                            "        system_snapshots: [s-sys-0001]\n");
    const char *args[] = {
        "--fixture", path,           "--rate-limit", "10/1s", "--create-delay", "3s", "--list-lag",
        "1s",        "--clock-skew", "6h",           NULL};
    int rc = emu_proc_start(&emu, args);
    cr_assert_eq(rc, 0, "emulator: %s", strerror(-rc));
    snprintf(path, sizeof(path), "%s/images.yaml", manifests);
    char text[1024];
    int k = snprintf(text, sizeof(text), "region: cn-hangzhou\ncustom_images:\n");
    for (int i = 0; i < N_IMAGES; i++)
        k += snprintf(text + k, sizeof(text) - (size_t)k,
                      "  - name: clock-%d\n"
                      "    instance_id: ace0706b2ac4454d984295a94213abcd\n"
                      "    system_snapshot_id: s-sys-0001\n",
                      i);
    test_file_replace(path, text);
    /* clock-bad names an instance the emulator does not have (only the daemon test uses it). */
    snprintf(path, sizeof(path), "%s/bad.yaml.off", dir);
    test_file_replace(path, "region: cn-hangzhou\n"
                            "custom_images:\n"
                            "  - name: clock-bad\n"
                            "    instance_id: ace0706b2ac4454d984295a942130000\n"
                            "    system_snapshot_id: s-sys-0001\n");
    test_file_replace(config, "metrics_listen: null\n");
    test_file_replace(rc_file, "+0\n");
}

static void teardown(void)
{
    if (emu.pid > 0)
        (void)emu_proc_stop(&emu);
    (void)test_file_remove_tree(dir);
}

TestSuite(clocks, .init = setup, .fini = teardown, .timeout = 300);

Test(clocks, wall_clock_steps_during_apply)
{
    const char *lib = faketime_lib();
    cr_assert_not_null(lib, "libfaketime not found: install the Debian package faketime "
                            "(make deps does)");
    pid_t child = start_imgrecon(lib, (const char *const[]){"apply", "--auto-approve", "-v", NULL});

    /* The first create answered: the wall clock goes two hours back. */
    await_calls("CreateCustomImage", 200, 1, child);
    test_file_replace(rc_file, "-2h\n");
    size_t polls = count_calls("ListCustomImages", 0);
    /* A poll after the step, while images are still being built: three hours forward. */
    await_calls("ListCustomImages", 0, polls + 1, child);
    test_file_replace(rc_file, "+1h\n");

    int rc = test_proc_wait(child, WAIT_MS);
    char *out = test_file_read(out_file);
    cr_expect_eq(rc, 0, "apply exit %d:\n%s", rc, out);
    cr_expect_null(strstr(out, "failed:"), "a step failed:\n%s", out);
    /* Each image created exactly once, and all of them exist. */
    cr_expect_eq(count_calls("CreateCustomImage", 0), N_IMAGES, "creates:\n%s", out);
    json_t *st = emu_proc_state(&emu);
    cr_assert_not_null(st);
    char *dump = json_dumps(st, JSON_COMPACT);
    for (int i = 0; i < N_IMAGES; i++) {
        char name[32];
        snprintf(name, sizeof(name), "\"clock-%d\"", i);
        const char *hit = strstr(dump, name);
        cr_expect_not_null(hit, "%s missing from the emulator", name);
        cr_expect_null(hit ? strstr(hit + 1, name) : NULL, "%s twice in the emulator", name);
    }
    free(dump);
    json_decref(st);
    free(out);
}

/* CreateCustomImage calls of clock-bad in the emulator's journal. */
static size_t bad_attempts(void)
{
    json_t *j = emu_proc_journal(&emu);
    cr_assert_not_null(j);
    size_t n = 0, i;
    json_t *line;
    json_array_foreach(j, i, line)
    {
        const char *a = json_string_value(json_object_get(line, "action"));
        const char *name =
            json_string_value(json_object_get(json_object_get(line, "params"), "ImageName"));
        if (a && name && strcmp(a, "CreateCustomImage") == 0 && strcmp(name, "clock-bad") == 0)
            n++;
    }
    json_decref(j);
    return n;
}

/* Waits (bounded by ms) until clock-bad was attempted n times. */
static void await_attempts(size_t n, long ms, pid_t child)
{
    uint64_t deadline = test_clock_ms() + (uint64_t)ms;
    while (bad_attempts() < n) {
        int st;
        cr_assert_eq(waitpid(child, &st, WNOHANG), 0, "the daemon exited:\n%s",
                     test_file_read(out_file));
        cr_assert_lt(test_clock_ms(), deadline,
                     "clock-bad attempted %zu times, not %zu, within %ld ms:\n%s", bad_attempts(),
                     n, ms, test_file_read(out_file));
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

Test(clocks, daemon_backoff_survives_wall_clock_steps)
{
    const char *lib = faketime_lib();
    cr_assert_not_null(lib, "libfaketime not found: install the Debian package faketime");
    /* Only the failing item: its per-item backoff (1 s, 2 s, 4 s with a 1 s interval) is what a
     * wall-clock backoff would stretch by the step: two hours. */
    char from[256], to[256];
    snprintf(from, sizeof(from), "%s/bad.yaml.off", dir);
    snprintf(to, sizeof(to), "%s/bad.yaml", manifests);
    cr_assert_eq(rename(from, to), 0);
    snprintf(to, sizeof(to), "%s/images.yaml", manifests);
    cr_assert_eq(unlink(to), 0);
    pid_t child = start_imgrecon(
        lib, (const char *const[]){"run", "--interval", "1s", "--log-format", "text", NULL});

    await_attempts(1, WAIT_MS, child);
    test_file_replace(rc_file, "-2h\n");
    /* Backoff 1 s then 2 s (plus cycle jitter): two more attempts within 15 s. */
    await_attempts(3, 15000, child);
    test_file_replace(rc_file, "+1h\n");
    await_attempts(4, 20000, child);

    cr_assert_eq(kill(child, SIGTERM), 0);
    int rc = test_proc_wait(child, WAIT_MS);
    char *out = test_file_read(out_file);
    cr_expect_eq(rc, 0, "daemon exit %d:\n%s", rc, out);
    cr_expect_not_null(strstr(out, "step skipped: backing off after failures"),
                       "the item did back off:\n%s", out);
    free(out);
}

/* Restarts the emulator with another rate limit (the same fixture and options otherwise). */
static void restart_emu(const char *rate)
{
    cr_assert_eq(emu_proc_stop(&emu), 0);
    char fixture[256];
    snprintf(fixture, sizeof(fixture), "%s/fixture.yaml", dir);
    const char *args[] = {"--fixture", fixture, "--rate-limit", rate, "--clock-skew", "6h", NULL};
    int rc = emu_proc_start(&emu, args);
    cr_assert_eq(rc, 0, "emulator: %s", strerror(-rc));
}

/* One `imgrecon api` ListCustomImages call under libfaketime with the given rate limit; returns
 * its exit status. */
static int api_list(const char *lib, const char *rate)
{
    pid_t child = start_imgrecon(lib, (const char *const[]){"api", "swas", "ListCustomImages",
                                                            "RegionId=cn-hangzhou", "--rate-limit",
                                                            rate, NULL});
    return test_proc_wait(child, WAIT_MS);
}

/* The cloud counts its windows on its own clock, which a step of ours does not move (the
 * emulator counts on CLOCK_MONOTONIC). A window filled by three calls, then the wall clock an
 * hour forward: the fourth call still waits for the window and is never throttled. With the call
 * log on the wall clock the step made the three calls look an hour old and the fourth went at
 * once, into a Throttling answer. */
static void fill_step_call(void)
{
    const char *lib = faketime_lib();
    cr_assert_not_null(lib, "libfaketime not found: install the Debian package faketime");
    restart_emu("3/8s");
    for (int i = 0; i < 3; i++)
        cr_assert_eq(api_list(lib, "ListCustomImages=3/8s"), 0, "%s", test_file_read(out_file));
    test_file_replace(rc_file, "+1h\n");
    cr_assert_eq(api_list(lib, "ListCustomImages=3/8s"), 0, "%s", test_file_read(out_file));
    /* Four calls, each answered once and with 200: none throttled, none retried. */
    size_t all = count_calls("ListCustomImages", 0), ok = count_calls("ListCustomImages", 200);
    cr_expect_eq(all, 4, "%zu calls, %zu answered 200", all, ok);
    cr_expect_eq(ok, 4, "%zu calls, %zu answered 200", all, ok);
}

Test(clocks, a_forward_step_does_not_free_the_window_early)
{
    fill_step_call();
}

/* The same with `ha`: the call log lives in etcd, whose stamps cross hosts on the wall clock.
 * Each stamp also carries the time on the writing host's boot clock, and that host judges its
 * own stamps on it: the forward step frees nothing early.
 * With wall-clock stamps alone the fourth call went at once, into a Throttling answer. */
Test(clocks, a_forward_step_does_not_free_the_window_early_with_ha)
{
    etcd_cluster etcd;
    cr_assert_eq(etcd_cluster_start(&etcd), 0, "a three-member etcd cluster starts");
    char eps[256], text[512];
    etcd_cluster_endpoints_yaml(&etcd, eps, sizeof(eps));
    snprintf(text, sizeof(text),
             "metrics_listen: null\nha:\n  etcd_endpoints: %s\n  prefix: /imgrecon-clocks\n", eps);
    test_file_replace(config, text);
    fill_step_call();
    etcd_cluster_stop(&etcd);
}
