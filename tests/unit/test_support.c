/* The support library itself (tests/support): a child's output, exit status and environment
 * edits reach the test; an overstaying child is killed at its deadline; files round-trip; the
 * tree remover removes; the notify receiver queues datagrams in order and times out. Every other
 * test relies on these, so a broken helper fails here first, by name. */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_clock.h"
#include "test_file.h"
#include "test_notify.h"
#include "test_proc.h"

static char dir[64];

static void setup(void)
{
    strcpy(dir, "/tmp/imgrecon-support-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    cr_assert_eq(test_file_remove_tree(dir), 0);
}

TestSuite(support, .init = setup, .fini = teardown, .timeout = 60);

Test(support, run_captures_stdout_stderr_status_and_environment)
{
    const char *argv[] = {"/bin/sh", "-c",
                          "echo \"out:$SUPPORT_A:${SUPPORT_B-unset}:$(pwd)\"; echo err >&2; exit 3",
                          NULL};
    const char *env[] = {"SUPPORT_A=set", "SUPPORT_B", NULL};
    cr_assert_eq(setenv("SUPPORT_B", "inherited", 1), 0);
    test_proc_opts o = {.env = env, .cwd = dir};
    test_proc_result r;
    test_proc_run(argv, &o, 20000, &r);
    char want[160];
    snprintf(want, sizeof(want), "out:set:unset:%s\n", dir);
    cr_expect_eq(r.status, 3);
    cr_expect_str_eq(r.out, want);
    cr_expect_str_eq(r.err, "err\n");
    test_proc_result_clear(&r);
}

Test(support, overstaying_child_is_killed_at_the_deadline)
{
    const char *argv[] = {"/bin/sleep", "30", NULL};
    uint64_t t0 = test_clock_ms();
    int rc = test_proc_wait(test_proc_spawn(argv, NULL), 200);
    uint64_t took = test_clock_ms() - t0;
    cr_expect_eq(rc, -ETIMEDOUT);
    cr_expect_geq(took, 200);
    cr_expect_lt(took, 10000, "killed promptly, not after the child's 30 s");

    test_proc_result r;
    test_proc_run(argv, NULL, 200, &r);
    cr_expect_eq(r.status, -ETIMEDOUT);
    test_proc_result_clear(&r);
}

/* True when pid ended within ms: on its pidfd, or by polling where pidfd_open is missing (an
 * old kernel, valgrind). pid is not our child, so waitpid cannot tell. */
static bool gone_within(pid_t pid, int ms)
{
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pfd < 0 && errno == ESRCH)
        return true;
    if (pfd >= 0) {
        struct pollfd p = {pfd, POLLIN, 0};
        int n = poll(&p, 1, ms);
        close(pfd);
        return n == 1;
    }
    for (uint64_t end = test_clock_ms() + (uint64_t)ms; test_clock_ms() < end;) {
        if (kill(pid, 0) != 0 && errno == ESRCH)
            return true;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return false;
}

/* What a test starts dies with the test's process, so a test that times out leaves nothing
 * running: a process spawns `sleep 60` and exits without reaping it. */
Test(support, a_spawned_child_dies_with_the_process_that_spawned_it)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t mid = fork();
    cr_assert_geq(mid, 0);
    if (mid == 0) {
        const char *argv[] = {"/bin/sleep", "60", NULL};
        pid_t pid = test_proc_spawn(argv, NULL);
        _exit(write(fds[1], &pid, sizeof(pid)) == (ssize_t)sizeof(pid) ? 0 : 1);
    }
    pid_t pid = 0;
    cr_assert_eq(read(fds[0], &pid, sizeof(pid)), (ssize_t)sizeof(pid));
    close(fds[0]);
    close(fds[1]);
    int st = 0;
    cr_assert_eq(waitpid(mid, &st, 0), mid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    cr_expect(gone_within(pid, 10000), "sleep (pid %d) outlived the process that spawned it",
              (int)pid);
    if (kill(pid, 0) == 0)
        (void)kill(pid, SIGKILL);
}

Test(support, spawn_writes_output_to_a_file_and_reports_signals)
{
    char log[128];
    snprintf(log, sizeof(log), "%s/out.txt", dir);
    const char *argv[] = {"/bin/sh", "-c", "echo one; echo two >&2; kill -TERM $$", NULL};
    test_proc_opts o = {.out_path = log};
    cr_expect_eq(test_proc_wait(test_proc_spawn(argv, &o), 20000), 128 + SIGTERM);
    char *text = test_file_read(log);
    cr_expect_str_eq(text, "one\ntwo\n");
    free(text);
}

Test(support, files_round_trip_and_trees_are_removed)
{
    char sub[128], path[192];
    snprintf(sub, sizeof(sub), "%s/a", dir);
    cr_assert_eq(mkdir(sub, 0700), 0);
    snprintf(path, sizeof(path), "%s/f.txt", sub);
    test_file_write(path, "hello\n");
    test_file_replace(path, "replaced\n");
    char *text = test_file_read(path);
    cr_expect_str_eq(text, "replaced\n");
    free(text);
    test_file_write_mode(path, "x", 0640);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0640);
    size_t len = 0;
    text = test_file_read_len(path, &len);
    cr_expect_eq(len, 1);
    free(text);
    cr_expect_null(test_file_read_len("/nonexistent/imgrecon", NULL));
    text = test_file_read("/nonexistent/imgrecon");
    cr_expect_str_eq(text, "");
    free(text);
    cr_assert_eq(test_file_remove_tree(sub), 0);
    cr_expect_neq(access(sub, F_OK), 0, "the tree is gone");
}

Test(support, notify_receiver_queues_in_order_and_times_out)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/notify.sock", dir);
    test_notify *n = test_notify_open(path);
    cr_expect_str_eq(test_notify_path(n), path);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, path, strlen(path) + 1);
    const char *msgs[] = {"READY=1", "STATUS=working", "STATUS=idle", "STOPPING=1"};
    for (size_t i = 0; i < 4; i++)
        cr_assert_eq(sendto(fd, msgs[i], strlen(msgs[i]), 0, (struct sockaddr *)&sa, sizeof(sa)),
                     (ssize_t)strlen(msgs[i]));
    char *m = test_notify_recv(n, 5000);
    cr_expect_str_eq(m, "READY=1");
    free(m);
    char seen[256] = "";
    cr_expect(test_notify_await(n, "STATUS=", "idle", 5000, seen, sizeof(seen)));
    cr_expect_str_eq(seen, "STATUS=working\nSTATUS=idle\n");
    m = test_notify_pop(n);
    cr_expect_str_eq(m, "STOPPING=1");
    free(m);
    uint64_t t0 = test_clock_ms();
    cr_expect_null(test_notify_recv(n, 100));
    cr_expect_geq(test_clock_ms() - t0, 100);
    cr_expect_not(test_notify_await(n, "READY=1", NULL, 50, NULL, 0));
    close(fd);
    test_notify_free(n);
}

Test(support, clock_is_monotonic_and_left_is_clamped)
{
    uint64_t a = test_clock_ms();
    uint64_t b = test_clock_ms();
    cr_expect_geq(b, a);
    cr_expect_eq(test_clock_left(a > 5 ? a - 5 : 0), 0);
    int left = test_clock_left(b + 60000);
    cr_expect(left > 50000 && left <= 60000, "left %d", left);
    cr_expect_eq(test_clock_left(UINT64_MAX), INT32_MAX);
}
