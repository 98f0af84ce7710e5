/* A pseudo-terminal for the tests that answer a prompt as a person at a terminal does: the test
 * keeps the master and types on it; the child gets the slave as stdin and controlling terminal
 * (test_proc_opts.stdin_tty). The terminal is in its default (canonical) mode, so a line reaches
 * the child when its newline is typed, and ^C sends SIGINT. Used by tests/integration/test_ha.c
 * and tests/integration/test_apply.c (apply's confirmation prompt). Setup failures fail the
 * current Criterion test. */
#ifndef TEST_PTY_H
#define TEST_PTY_H

typedef struct test_pty {
    int master;     /* the test's side (close-on-exec); -1 once closed */
    char slave[64]; /* the child's side, for test_proc_opts.stdin_tty */
} test_pty;

/* Opens a new pty. */
void test_pty_open(test_pty *p);
/* Types text on the terminal (written to the master whole). */
void test_pty_type(test_pty *p, const char *text);
/* Closes the master; accepts a closed pty. Close it after the child has exited: the child's
 * session gets SIGHUP when its terminal hangs up. */
void test_pty_close(test_pty *p);

#endif
