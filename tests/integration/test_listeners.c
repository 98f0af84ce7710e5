/* Listeners refuse non-loopback addresses by default: `imgrecon-emulator --listen` without
 * --allow-remote, and the daemon's `metrics_listen` without --metrics-allow-remote, exit
 * non-zero with a message that says why and how to opt in, before serving anything (the daemon
 * makes no API call). With the opt-in both start. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
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
#include "test_clock.h"
#include "test_file.h"
#include "test_proc.h"

#define KEY_ID "LTAIemulatorDemoKey"
#define KEY_SECRET "emulator-demo-secret"
#define WAIT_MS 20000

static char dir[64];

static void setup(void)
{
    strcpy(dir, "/tmp/imgrecon-listen-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    (void)test_file_remove_tree(dir);
}

TestSuite(listeners, .init = setup, .fini = teardown, .timeout = 120);

/* Starts argv with stdout+stderr in log; the daemon environment when daemon is set. */
static pid_t spawn(const char *const *argv, const char *log, bool daemon)
{
    char home[96];
    snprintf(home, sizeof(home), "HOME=%s", dir);
    const char *const env_edits[] = {"ALIBABA_CLOUD_ACCESS_KEY_ID=" KEY_ID,
                                     "ALIBABA_CLOUD_ACCESS_KEY_SECRET=" KEY_SECRET,
                                     home,
                                     "NOTIFY_SOCKET",
                                     "IMGRECON_ENDPOINT",
                                     NULL};
    test_proc_opts o = {.out_path = log, .env = daemon ? env_edits : NULL};
    return test_proc_spawn(argv, &o);
}

/* Exit code within ms, or -1 on a signal or a timeout (then the process is killed). */
static int wait_exit(pid_t pid, long ms)
{
    int rc = test_proc_wait(pid, (uint64_t)ms);
    return rc >= 0 && rc < 128 ? rc : -1;
}

/* Waits for a non-empty file; returns its text (or NULL on timeout). */
static char *await_file(const char *path, long ms)
{
    uint64_t deadline = test_clock_ms() + (uint64_t)ms;
    while (test_clock_ms() < deadline) {
        char *t = test_file_read(path);
        if (t[0] != '\0')
            return t;
        free(t);
        (void)poll(NULL, 0, 20);
    }
    return NULL;
}

static const char *const remote[] = {"0.0.0.0:0", "[::]:0", "192.0.2.10:0", "[2001:db8::1]:0",
                                     "[::ffff:10.0.0.1]:0"};
#define N_REMOTE (sizeof(remote) / sizeof(remote[0]))

Test(listeners, emulator_refuses_non_loopback_without_allow_remote)
{
    char log[160], portfile[160];
    snprintf(log, sizeof(log), "%s/emu.log", dir);
    snprintf(portfile, sizeof(portfile), "%s/port", dir);
    for (size_t i = 0; i < N_REMOTE; i++) {
        const char *argv[] = {IMGRECON_EMULATOR_BIN, "--listen", remote[i],
                              "--port-file",         portfile,   NULL};
        int code = wait_exit(spawn(argv, log, false), WAIT_MS);
        char *text = test_file_read(log);
        cr_expect(code > 0, "--listen %s: exit %d (want non-zero): %s", remote[i], code, text);
        cr_expect_not_null(strstr(text, "is not a loopback address"), "--listen %s: %s", remote[i],
                           text);
        cr_expect_not_null(strstr(text, "--allow-remote"), "names the opt-in: %s", text);
        cr_expect_eq(access(portfile, F_OK), -1, "--listen %s: nothing was bound", remote[i]);
        free(text);
    }

    /* Loopback in every spelling is served. */
    const char *local[] = {"127.0.0.1:0", "127.0.0.2:0", "localhost:0", "[::1]:0"};
    for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++) {
        unlink(portfile);
        const char *argv[] = {IMGRECON_EMULATOR_BIN, "--listen", local[i],
                              "--port-file",         portfile,   NULL};
        pid_t pid = spawn(argv, log, false);
        char *port = await_file(portfile, WAIT_MS);
        if (port == NULL) {
            /* A host without IPv6 cannot bind ::1; that is not this test's concern. */
            int code = wait_exit(pid, 100);
            char *text = test_file_read(log);
            cr_expect(strcmp(local[i], "[::1]:0") == 0 && code > 0 &&
                          strstr(text, "loopback") == NULL,
                      "--listen %s did not start: %s", local[i], text);
            free(text);
            continue;
        }
        free(port);
        cr_assert_eq(kill(pid, SIGTERM), 0);
        cr_expect_eq(wait_exit(pid, WAIT_MS), 0, "--listen %s: SIGTERM exits 0", local[i]);
    }

    /* --allow-remote is the opt-in (bound for a moment, never spoken to). */
    unlink(portfile);
    const char *argv[] = {IMGRECON_EMULATOR_BIN, "--listen", "0.0.0.0:0", "--allow-remote",
                          "--port-file",         portfile,   NULL};
    pid_t pid = spawn(argv, log, false);
    char *port = await_file(portfile, WAIT_MS);
    cr_expect_not_null(port, "--allow-remote starts: %s", test_file_read(log));
    free(port);
    kill(pid, SIGTERM);
    cr_expect_eq(wait_exit(pid, WAIT_MS), 0);
}

Test(listeners, daemon_refuses_non_loopback_metrics_listen)
{
    emu_proc emu;
    const char *eargs[] = {"--rate-limit", "10/1s", "--create-delay", "0", NULL};
    cr_assert_eq(emu_proc_start(&emu, eargs), 0, "emulator starts");
    char manifests[160], config[160], state[160], log[160], text[512];
    snprintf(manifests, sizeof(manifests), "%s/images.yaml", dir);
    snprintf(config, sizeof(config), "%s/config.yaml", dir);
    snprintf(state, sizeof(state), "%s/state", dir);
    snprintf(log, sizeof(log), "%s/daemon.log", dir);
    test_file_write(manifests, "region: cn-hangzhou\ncustom_images:\n  - name: l-web-1\n"
                               "    instance_id: ace0706b2ac4454d984295a94213abcd\n"
                               "    system_snapshot_id: s-bp1sys00000001\n");

    const char *metrics[] = {"0.0.0.0:9780", "[::]:9780", "192.0.2.10:9780", "[2001:db8::1]:9780",
                             "[::ffff:10.0.0.1]:9780"};
    for (size_t i = 0; i < sizeof(metrics) / sizeof(metrics[0]); i++) {
        snprintf(text, sizeof(text), "metrics_listen: \"%s\"\n", metrics[i]);
        test_file_write(config, text);
        const char *argv[] = {IMGRECON_BIN, "run",         "-c",           config,  "--endpoint",
                              emu.base_url, "--state-dir", state,          "-f",    manifests,
                              "--interval", "1h",          "--rate-limit", "10/1s", NULL};
        int code = wait_exit(spawn(argv, log, true), WAIT_MS);
        char *out = test_file_read(log);
        cr_expect_eq(code, 1, "metrics_listen %s: exit %d (want 1): %s", metrics[i], code, out);
        cr_expect_not_null(strstr(out, "metrics_listen is not a loopback address; refusing"),
                           "metrics_listen %s: %s", metrics[i], out);
        cr_expect_not_null(strstr(out, "--metrics-allow-remote"), "names the opt-in: %s", out);
        free(out);
    }
    /* Refused before the first cycle: the emulator saw no call at all. */
    json_t *j = emu_proc_journal(&emu);
    cr_assert_not_null(j);
    cr_expect_eq(json_array_size(j), 0, "API calls before the refusal");
    json_decref(j);

    /* The opt-in: the daemon serves metrics on the wildcard address and says where. */
    test_file_write(config, "metrics_listen: 0.0.0.0:0\n");
    const char *argv[] = {
        IMGRECON_BIN, "run",         "-c",           config,  "--endpoint",
        emu.base_url, "--state-dir", state,          "-f",    manifests,
        "--interval", "1h",          "--rate-limit", "10/1s", "--metrics-allow-remote",
        NULL};
    pid_t pid = spawn(argv, log, true);
    char addr_path[200];
    snprintf(addr_path, sizeof(addr_path), "%s/metrics.addr", state);
    char *addr = await_file(addr_path, WAIT_MS);
    cr_expect_not_null(addr, "metrics.addr written: %s", test_file_read(log));
    if (addr != NULL)
        cr_expect_eq(strncmp(addr, "0.0.0.0:", 8), 0, "metrics.addr: %s", addr);
    free(addr);
    cr_assert_eq(kill(pid, SIGTERM), 0);
    cr_expect_eq(wait_exit(pid, 45000), 0, "SIGTERM exits 0: %s", test_file_read(log));
    (void)emu_proc_stop(&emu);
}
