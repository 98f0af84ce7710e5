/* Child processes for tests: start a program with its output in a file and an edited
 * environment, wait for it with a deadline (event-driven through a pidfd; killed when it
 * overstays), or run it to the end capturing stdout and stderr through pipes. Used by the
 * integration tests that run the imgrecon and imgrecon-emulator binaries. Setup failures fail
 * the current Criterion test; the child never reports to Criterion. */
#ifndef TEST_PROC_H
#define TEST_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct test_proc_opts {
    /* stdout and stderr go to this file (created 0600, truncated unless append); NULL: they are
     * inherited. stdin is /dev/null unless stdin_tty says otherwise. */
    const char *out_path;
    bool append;
    /* Only stderr goes to out_path; stdout is inherited. */
    bool stderr_only;
    /* NULL-terminated edits applied in order in the child: "NAME=VALUE" sets, "NAME" unsets.
     * NULL: the environment is inherited unchanged. Borrowed. */
    const char *const *env;
    /* The child's working directory; NULL: the test's. */
    const char *cwd;
    /* When not 0, the child drops its groups and becomes this user and group before the exec
     * (exit 125 when it cannot). */
    uid_t uid;
    /* Exec through test_exec, which honours IMGRECON_TEST_WRAP (CI: valgrind). */
    bool wrap;
    /* When not NULL, the path of a terminal (a pty's slave, test_pty.h) that becomes stdin: the
     * child starts a session of its own with that terminal as its controlling terminal, as a
     * program started from a shell has (^C typed on the pty's master sends it SIGINT).
     * Borrowed. */
    const char *stdin_tty;
} test_proc_opts;

typedef struct test_proc_result {
    int status; /* exit code, 128 + signal, or -ETIMEDOUT when it was killed at the deadline */
    char *out;  /* stdout (caller frees with test_proc_result_clear) */
    char *err;  /* stderr */
} test_proc_result;

/* In a child between fork and exec: the kernel SIGKILLs it when the test process that forked it
 * (parent, its pid taken before the fork) ends, so a test that times out or crashes leaves no
 * etcd member, emulator or daemon running; exits at once when parent is already gone. Every
 * spawner in tests/support calls it. */
void test_proc_die_with(pid_t parent);

/* Starts argv (argv[0] is the path of the binary) as described by o (NULL: defaults). Returns
 * the pid. */
pid_t test_proc_spawn(const char *const *argv, const test_proc_opts *o);
/* Waits at most timeout_ms for pid. Returns its exit code, 128 + the signal that ended it, or
 * -ETIMEDOUT after killing it (SIGKILL) and reaping it. */
int test_proc_wait(pid_t pid, uint64_t timeout_ms);
/* Waits at most timeout_ms until the file at path (pid's output, test_proc_opts.out_path) holds
 * text: woken by inotify when the file changes and by pid's pidfd when it exits, so a child that
 * ends without printing text fails the wait at once. Returns whether text appeared; pid is not
 * reaped. For the tests that answer a prompt once it is shown. */
bool test_proc_await_output(pid_t pid, const char *path, const char *text, uint64_t timeout_ms);
/* Runs argv to the end (at most timeout_ms, then killed) with stdout and stderr captured
 * separately; o->out_path is ignored. Fills *ret (always, on return). */
void test_proc_run(const char *const *argv, const test_proc_opts *o, uint64_t timeout_ms,
                   test_proc_result *ret);
/* Frees the captured output; accepts a zeroed result. */
void test_proc_result_clear(test_proc_result *r);

#endif
