/* The daemon's status file (reconcile/README.md "Daemon"): `<state_dir>/status.json`, rewritten
 * atomically (temporary file, fsync, rename) after every cycle by rec_daemon and read by `imgrecon
 * status`. Messages in it are already normalised and scrubbed by the writer. */
#ifndef REC_STATUS_H
#define REC_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rec_status_failure {
    char *address;        /* step address */
    char *message;        /* normalised error text */
    unsigned count;       /* consecutive failed cycles */
    uint64_t retry_at_ms; /* wall clock; 0: next cycle */
} rec_status_failure;

/* Every time is wall-clock milliseconds since the epoch; 0 means "never / unknown". */
typedef struct rec_status {
    long pid;
    char *state;  /* "starting", "idle", "reconciling", "stopped" */
    char *result; /* last cycle: "ok", "failed", "error", "stopped"; NULL before the first */
    char *error;  /* why the last cycle could not run (rc < 0), NULL otherwise */
    uint64_t cycles;
    uint64_t cycle_start_ms;
    uint64_t cycle_end_ms;
    uint64_t next_cycle_ms;
    uint64_t last_success_ms;
    unsigned drift;   /* changes in the last plan */
    unsigned pending; /* steps not done after the last cycle */
    unsigned done;
    unsigned failed;
    unsigned skipped;
    bool suspended;
    char *role;                   /* HA: "leader", "standby"; NULL: "none" (no `ha` configured) */
    char *leader;                 /* HA: the leader as last seen ("host:pid"), NULL when unknown */
    char *metrics_addr;           /* bound host:port of the metrics endpoint, NULL when disabled */
    rec_status_failure *failures; /* backing-off items, then conflicts (count: cycles in a row) */
    size_t n_failures;
    unsigned conflicts;           /* conflicts in the last plan (also listed in failures) */
    rec_status_failure *warnings; /* fighting controllers: address, message, count (times found
                                     undone in a row); retry_at_ms unused */
    size_t n_warnings;
    bool manifests_valid; /* false while the manifests are invalid (the last good set is used) */
    char *manifest_error; /* the first problem ("file:line:col: message"), NULL when valid */
    bool ready;           /* what /readyz answers: manifests valid and the last cycle ok */
    char *ready_reason;   /* one line when not ready, NULL when ready */
} rec_status;

/* What `imgrecon status` exits with: 0 healthy, 1 otherwise (rec_status_health). */
typedef enum rec_health {
    REC_HEALTHY = 0,
    REC_FAILING,     /* the last cycle failed, or items are failing or in conflict */
    REC_NOT_READY,   /* manifests invalid, or no cycle finished yet */
    REC_NOT_RUNNING, /* stopped, its pid is gone, or the status is stale */
} rec_health;

#define REC_STATUS_FORMAT_VERSION 1

/* Serialises to a JSON object (malloc'd, pretty, trailing newline). Returns 0 or -ENOMEM. */
int rec_status_to_json(const rec_status *st, char **ret);
/* Parses what rec_status_to_json wrote. Returns 0, or -EPROTO for malformed or mistyped input,
 * or -ENOMEM. */
int rec_status_from_json(const char *text, size_t len, rec_status *ret);
/* Writes `<state_dir>/status.json` atomically, mode 0640: `imgrecon status` run by the daemon's
 * group reads it, others do not. Returns 0 or a negative errno. */
int rec_status_write(const char *state_dir, const rec_status *st);
/* Reads `<state_dir>/status.json`. -ENOENT when there is none yet, -EPROTO when it is not a
 * regular file holding a status document (a FIFO there is never waited on). */
int rec_status_read(const char *state_dir, rec_status *ret);
/* A human summary relative to now_ms (multi-line, malloc'd). NULL on allocation failure. */
char *rec_status_describe(const rec_status *st, uint64_t now_ms);
/* Adds a failure (copies strings). Returns 0 or -ENOMEM. */
int rec_status_add_failure(rec_status *st, const char *address, const char *message, unsigned count,
                           uint64_t retry_at_ms);
/* Adds a warning (copies strings). Returns 0 or -ENOMEM. */
int rec_status_add_warning(rec_status *st, const char *address, const char *message,
                           unsigned count);
/* Judges a status read by `imgrecon status`: pid_alive says whether st->pid runs (the caller
 * asks the kernel); stale when an idle daemon's next cycle is more than 10 minutes overdue.
 * *ret_reason is one line (static or from st, borrowed). Also used by tests. */
rec_health rec_status_health(const rec_status *st, bool pid_alive, uint64_t now_ms,
                             const char **ret_reason);
/* "healthy", "failing", "not ready", "not running". */
const char *rec_health_name(rec_health h);
/* Frees every field; st itself stays (zeroed). Accepts NULL. */
void rec_status_clear(rec_status *st);

#endif
