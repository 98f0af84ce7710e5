/* Files for tests: read a whole file, write one (in place, with a mode, or by renaming a
 * temporary over it as editors and deploy tools do), and remove a temporary directory tree.
 * Writers fail the current Criterion test on error; readers report a missing file. */
#ifndef TEST_FILE_H
#define TEST_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The whole file as a NUL-terminated string (caller frees); "" when it cannot be opened. */
char *test_file_read(const char *path);
/* The whole file (caller frees; NUL-terminated, may contain NULs) and its length in *ret_len
 * (may be NULL); NULL when it cannot be opened. */
char *test_file_read_len(const char *path, size_t *ret_len);
/* Creates or truncates path and writes text (mode 0666 minus umask for a new file). */
void test_file_write(const char *path, const char *text);
/* Creates or truncates path with exactly this mode (fchmod after open) and writes text. */
void test_file_write_mode(const char *path, const char *text, mode_t mode);
/* Writes path.tmp~ and renames it over path: a watcher sees one complete new file. */
void test_file_replace(const char *path, const char *text);
/* Calls ready(ud) until it returns true or timeout_ms have passed, waiting in between for an
 * inotify event in mask on path (a file, or a directory for events on its entries) instead of
 * sleeping; the watch is set before the first call, so no change is missed. Returns ready's last
 * answer. For the tests that wait for a journal line or a lock file another process writes;
 * fails the current test when path cannot be watched. */
bool test_file_await(const char *path, uint32_t mask, int timeout_ms, bool (*ready)(void *ud),
                     void *ud);
/* Removes dir and everything under it (symbolic links are removed, never followed), unless
 * IMGRECON_TEST_KEEP is set: then it says on stderr where the directory was kept. Returns 0 or
 * a negative errno (the first entry that could not be removed stops the walk). */
int test_file_remove_tree(const char *dir);

#endif
