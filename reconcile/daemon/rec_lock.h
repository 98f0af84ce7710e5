/* The single-writer lock (reconcile/README.md "Daemon"): `<state_dir>/daemon.lock`, held with
 * flock(LOCK_EX|LOCK_NB) for the daemon's lifetime and holding its pid, so two daemons on one
 * state directory never act at once. The kernel drops the lock when the process dies, so a crash
 * never leaves a stale lock. Used by rec_daemon; tests call it directly. */
#ifndef REC_LOCK_H
#define REC_LOCK_H

typedef struct rec_lock rec_lock;

/* Takes the lock. Returns 0 and *ret; -EWOULDBLOCK when another process holds it, then
 * *ret_holder_pid is the pid written in the file (0 when unknown); other negative errno on I/O
 * failure. ret_holder_pid may be NULL. */
int rec_lock_acquire(const char *state_dir, rec_lock **ret, long *ret_holder_pid);
/* The lock file's path (for messages). */
const char *rec_lock_path(const rec_lock *l);
/* Builds `<state_dir>/daemon.lock` into a malloc'd string (NULL on allocation failure). */
char *rec_lock_path_for(const char *state_dir);
/* Releases the lock and closes the file (the file stays). Accepts NULL. */
void rec_lock_release(rec_lock *l);

#endif
