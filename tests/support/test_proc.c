/* See test_proc.h. */
#include "test_proc.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_clock.h"
#include "test_exec.h"
#include "test_file.h"

/* In the child: applies the environment edits of o. */
static void apply_env(const char *const *env)
{
    for (size_t i = 0; env != NULL && env[i] != NULL; i++) {
        const char *eq = strchr(env[i], '=');
        if (eq == NULL) {
            (void)unsetenv(env[i]);
        } else {
            char name[128];
            size_t n = (size_t)(eq - env[i]);
            if (n >= sizeof(name))
                _exit(126);
            memcpy(name, env[i], n);
            name[n] = '\0';
            (void)setenv(name, eq + 1, 1);
        }
    }
}

void test_proc_die_with(pid_t parent)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        _exit(125);
}

/* In the child: stdin from /dev/null (or o->stdin_tty, the controlling terminal of a new
 * session), the given descriptors for stdout and stderr (-1 keeps one), the environment edits,
 * then the exec. Never returns. */
static _Noreturn void child(const char *const *argv, const test_proc_opts *o, int out, int err,
                            pid_t parent)
{
    if (o->stdin_tty != NULL && setsid() < 0)
        _exit(126);
    int in = o->stdin_tty != NULL ? open(o->stdin_tty, O_RDWR) : open("/dev/null", O_RDONLY);
    if (in < 0 || (o->stdin_tty != NULL && ioctl(in, TIOCSCTTY, 0) < 0) || dup2(in, 0) < 0)
        _exit(126);
    if (in != 0)
        close(in);
    if ((out >= 0 && dup2(out, 1) < 0) || (err >= 0 && dup2(err, 2) < 0))
        _exit(126);
    if (o->cwd != NULL && chdir(o->cwd) < 0)
        _exit(126);
    if (o->uid != 0 && (setgroups(0, NULL) < 0 || setresgid(o->uid, o->uid, o->uid) < 0 ||
                        setresuid(o->uid, o->uid, o->uid) < 0))
        _exit(125);
    test_proc_die_with(parent);
    apply_env(o->env);
    if (o->wrap)
        test_exec(argv);
    execv(argv[0], (char *const *)argv);
    _exit(127);
}

pid_t test_proc_spawn(const char *const *argv, const test_proc_opts *o)
{
    static const test_proc_opts defaults;
    if (o == NULL)
        o = &defaults;
    int fd = -1;
    if (o->out_path != NULL) {
        int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (o->append ? O_APPEND : O_TRUNC);
        fd = open(o->out_path, flags, 0600);
        cr_assert_geq(fd, 0, "open %s: %s", o->out_path, strerror(errno));
    }
    pid_t parent = getpid(), pid = fork();
    /* Checked with a plain if: the child must not report to Criterion. */
    if (pid < 0)
        cr_assert_fail("fork: %s", strerror(errno));
    if (pid == 0)
        child(argv, o, o->stderr_only ? -1 : fd, fd, parent);
    if (fd >= 0)
        close(fd);
    return pid;
}

/* Waits for pid to become waitable until deadline: on its pidfd, or (a kernel or a tool such as
 * valgrind without pidfd_open) by polling waitpid every 10 ms. Returns false on timeout. */
static bool await_exit(pid_t pid, uint64_t deadline)
{
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pfd >= 0) {
        struct pollfd p = {.fd = pfd, .events = POLLIN};
        int rc;
        while ((rc = poll(&p, 1, test_clock_left(deadline))) < 0 && errno == EINTR)
            ;
        close(pfd);
        return rc != 0;
    }
    siginfo_t si;
    for (;;) {
        memset(&si, 0, sizeof(si));
        if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid)
            return true;
        if (test_clock_left(deadline) == 0)
            return false;
        (void)poll(NULL, 0, 10);
    }
}

int test_proc_wait(pid_t pid, uint64_t timeout_ms)
{
    bool exited = await_exit(pid, test_clock_ms() + timeout_ms);
    if (!exited)
        kill(pid, SIGKILL);
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    if (!exited)
        return -ETIMEDOUT;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Whether pid has exited (not reaped). */
static bool has_exited(pid_t pid)
{
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid;
}

/* Whether the file at path holds text. */
static bool file_holds(const char *path, const char *text)
{
    char *s = test_file_read(path);
    bool found = strstr(s, text) != NULL;
    free(s);
    return found;
}

bool test_proc_await_output(pid_t pid, const char *path, const char *text, uint64_t timeout_ms)
{
    int ino = inotify_init1(IN_CLOEXEC);
    cr_assert_geq(ino, 0);
    cr_assert_geq(inotify_add_watch(ino, path, IN_MODIFY), 0, "cannot watch %s", path);
    /* Without a pidfd (valgrind), the exit is polled every 10 ms as await_exit does. */
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    uint64_t deadline = test_clock_ms() + timeout_ms;
    bool seen = false, exited = false;
    for (;;) {
        /* Read once more after the exit: the last words may be the text. */
        seen = file_holds(path, text);
        int left = test_clock_left(deadline);
        if (seen || exited || left == 0)
            break;
        struct pollfd p[2] = {{ino, POLLIN, 0}, {pfd, POLLIN, 0}};
        int n = poll(p, pfd >= 0 ? 2 : 1, pfd >= 0 || left < 10 ? left : 10);
        if (n < 0 && errno != EINTR)
            cr_assert_fail("poll: %s", strerror(errno));
        if (n > 0 && p[0].revents != 0) {
            char buf[4096];
            (void)read(ino, buf, sizeof(buf));
        }
        exited = pfd >= 0 ? n > 0 && p[1].revents != 0 : has_exited(pid);
    }
    if (pfd >= 0)
        close(pfd);
    close(ino);
    return seen;
}

/* Appends n bytes to a growing NUL-terminated buffer. */
static void append(char **buf, size_t *len, const char *data, size_t n)
{
    char *grown = realloc(*buf, *len + n + 1);
    cr_assert_not_null(grown);
    memcpy(grown + *len, data, n);
    *len += n;
    grown[*len] = '\0';
    *buf = grown;
}

/* Reads both pipes until they close or the deadline passes; returns false on timeout. */
static bool drain(int fds[2], char **bufs[2], uint64_t deadline)
{
    size_t lens[2] = {0, 0};
    struct pollfd pf[2] = {{fds[0], POLLIN, 0}, {fds[1], POLLIN, 0}};
    int open_fds = 2;
    while (open_fds > 0) {
        int left = test_clock_left(deadline);
        if (left <= 0)
            return false;
        int ready = poll(pf, 2, left);
        if (ready < 0 && errno == EINTR)
            continue;
        cr_assert_geq(ready, 0);
        for (int i = 0; i < 2; i++) {
            if (pf[i].fd < 0 || pf[i].revents == 0)
                continue;
            char chunk[4096];
            ssize_t got = read(pf[i].fd, chunk, sizeof(chunk));
            if (got > 0) {
                append(bufs[i], &lens[i], chunk, (size_t)got);
            } else if (got == 0 || errno != EINTR) {
                close(pf[i].fd);
                pf[i].fd = fds[i] = -1;
                open_fds--;
            }
        }
    }
    return true;
}

void test_proc_run(const char *const *argv, const test_proc_opts *o, uint64_t timeout_ms,
                   test_proc_result *ret)
{
    static const test_proc_opts defaults;
    if (o == NULL)
        o = &defaults;
    int out[2], err[2];
    cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
    cr_assert_eq(pipe2(err, O_CLOEXEC), 0);
    uint64_t deadline = test_clock_ms() + timeout_ms;
    pid_t parent = getpid(), pid = fork();
    if (pid < 0)
        cr_assert_fail("fork: %s", strerror(errno));
    if (pid == 0)
        child(argv, o, out[1], err[1], parent);
    close(out[1]);
    close(err[1]);
    *ret = (test_proc_result){0, strdup(""), strdup("")};
    cr_assert(ret->out != NULL && ret->err != NULL);
    int fds[2] = {out[0], err[0]};
    char **bufs[2] = {&ret->out, &ret->err};
    bool finished = drain(fds, bufs, deadline);
    for (int i = 0; i < 2; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    if (!finished)
        kill(pid, SIGKILL);
    int rc = test_proc_wait(pid, finished ? (uint64_t)test_clock_left(deadline) + 1000 : 10000);
    ret->status = finished ? rc : -ETIMEDOUT;
}

void test_proc_result_clear(test_proc_result *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}
