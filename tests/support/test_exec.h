/* Exec for test children that run imgrecon: honours IMGRECON_TEST_WRAP so that CI can run every
 * imgrecon process of a scenario under a tool (valgrind). Used by test_proc.c (the wrap option),
 * which apply_support.c and test_daemon.c start imgrecon through. */
#ifndef TEST_EXEC_H
#define TEST_EXEC_H

/* In a forked child: execs argv (argv[0] is the binary), prefixed with the words of
 * IMGRECON_TEST_WRAP when it is set and not empty (e.g. "valgrind --error-exitcode=99
 * --leak-check=full"), whose exit code then carries the tool's verdict. Never returns: _exit(127)
 * when the exec fails. Touches no Criterion state. */
_Noreturn void test_exec(const char *const *argv);

#endif
