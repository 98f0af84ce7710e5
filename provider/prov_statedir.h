/* Every file in the state directory goes through here (reconcile/README.md "One writer per state
 * directory"): the directory must belong to the effective user and not be writable by group or
 * others; files are opened with O_NOFOLLOW | O_CLOEXEC so a planted symlink is never followed;
 * temporary files are created exclusively under a unique name (mkostemp); a rename is followed
 * by an fsync of the directory. Used by the journal, the lock, the pacer's call log, status.json,
 * metrics.addr, regions.json, list-regions.json and account_ids. Library code: no logging,
 * errors are returned. */
#ifndef PROV_STATEDIR_H
#define PROV_STATEDIR_H

#include <stddef.h>
#include <sys/types.h>

/* Refuses a directory not owned by the effective user or writable by group/others: returns 0,
 * or -EPERM (unsafe; *ret_error says how to fix it with chmod/chown), -ENOTDIR, or another
 * negative errno from stat. *ret_error (malloc'd, caller frees) is set on every failure when
 * ret_error is not NULL. */
int prov_statedir_check(const char *dir, char **ret_error);

/* "<dir>/<name>" as a malloc'd string (caller frees); NULL on allocation failure. */
char *prov_statedir_path(const char *dir, const char *name);

/* Opens <dir>/<name> with flags | O_NOFOLLOW | O_CLOEXEC (mode for O_CREAT). Returns the fd or a
 * negative errno (-ELOOP when the name is a symlink). When flags hold O_CREAT and the file was
 * created, the directory is fsync'd so the new name survives a crash. */
int prov_statedir_open(const char *dir, const char *name, int flags, mode_t mode);

/* Creates "<dir>/<name>.XXXXXX" exclusively (mode 0600, O_CLOEXEC). Returns the fd and
 * *ret_tmp (malloc'd, caller frees), or a negative errno. */
int prov_statedir_mktemp(const char *dir, const char *name, char **ret_tmp);

/* Renames tmp (from prov_statedir_mktemp) to <dir>/<name> and fsyncs the directory. On failure
 * tmp is unlinked. Returns 0 or a negative errno. */
int prov_statedir_commit(const char *dir, const char *tmp, const char *name);

/* fsync of the directory itself (after a rename or a create). Returns 0 or a negative errno. */
int prov_statedir_fsync(const char *dir);

/* Replaces <dir>/<name> with len bytes of buf: unique temp file, write, fsync, chmod to mode,
 * rename, directory fsync. Returns 0 or a negative errno; the old file stays on failure. */
int prov_statedir_write_file(const char *dir, const char *name, const void *buf, size_t len,
                             mode_t mode);

/* Writes all of buf to fd, retrying on EINTR. Returns 0 or a negative errno. */
int rec_write_all(int fd, const void *buf, size_t len);

#endif
