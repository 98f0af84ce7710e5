/* The daemon's event log (reconcile/README.md "Daemon"): one line per event on stderr, as text
 * (`2026-11-22T10:00:00.123Z level=info msg="..." key=value`) or JSON, with `<N>` syslog priority
 * prefixes when journald reads the stream (JOURNAL_STREAM names stderr's dev:ino). Every line is
 * scrubbed of the registered secret values before it is written, so a secret that slipped into an
 * API message or a path never reaches the journal. Used by rec_daemon and cmd/cmd_run.c. */
#ifndef REC_LOG_H
#define REC_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum rec_log_level {
    REC_LOG_DEBUG = 0,
    REC_LOG_INFO = 1,
    REC_LOG_WARN = 2,
    REC_LOG_ERROR = 3,
} rec_log_level;

typedef struct rec_log_opts {
    int fd;              /* where lines go; normally 2 */
    bool json;           /* JSON objects instead of key=value text */
    bool journal;        /* prefix `<N>`; see rec_log_journal_detect() */
    rec_log_level level; /* lines below this level are dropped */
} rec_log_opts;

typedef struct rec_log rec_log;

int rec_log_new(const rec_log_opts *opts, rec_log **ret);
void rec_log_free(rec_log *l);
void rec_log_set_json(rec_log *l, bool json);

/* True when $JOURNAL_STREAM is "DEV:INO" and equals fd's st_dev:st_ino, i.e. journald reads fd. */
bool rec_log_journal_detect(int fd);

/* Registers a value that must never appear in a line (access key secret, STS token), as it is
 * and percent-encoded once and twice (API messages quote request text in those forms). Values
 * shorter than 4 characters are ignored (they would match ordinary words). Returns 0 or -ENOMEM. */
int rec_log_add_secret(rec_log *l, const char *secret);
/* Forgets one registered secret and its encoded forms (wiping the copies), e.g. the credential a
 * refresh replaced. Accepts NULL. */
void rec_log_forget_secret(rec_log *l, const char *secret);
/* Forgets every registered secret (wiping the copies). */
void rec_log_clear_secrets(rec_log *l);

/* Formats one line (with the trailing newline, priority prefix and scrub) into a malloc'd string.
 * kv holds n_kv key/value pairs as 2*n_kv strings; a NULL value omits the pair. now_ms is the wall
 * clock in milliseconds. Exposed for tests; rec_log_write() uses it. Returns 0 or -ENOMEM. */
int rec_log_format(const rec_log *l, rec_log_level level, uint64_t now_ms, const char *msg,
                   const char *const *kv, size_t n_kv, char **ret_line);
/* Formats and writes one line with a single write(2). Errors are ignored: logging cannot fail
 * the daemon. */
void rec_log_write(rec_log *l, rec_log_level level, const char *msg, const char *const *kv,
                   size_t n_kv);
/* Convenience: key/value pairs as varargs terminated by a NULL key. */
void rec_log_event(rec_log *l, rec_log_level level, const char *msg, ...) __attribute__((sentinel));

/* Replaces every occurrence of a registered secret in text with "***" (in place: the result is
 * never longer). */
void rec_log_scrub(const rec_log *l, char *text);

/* Error text normalised for comparison and counting: drops "(RequestId: ...)" / "RequestId=..."
 * parts and replaces UUID-shaped and long hexadecimal tokens with "<id>", so the same failure
 * repeated reads the same. Returns a malloc'd string, or NULL on allocation failure or NULL input.
 */
char *rec_log_normalise(const char *text);

const char *rec_log_level_name(rec_log_level level); /* "debug", "info", "warn", "error" */

/* JSON lines type a field by its key: counts and durations (attempt, backing_off, done, drift,
 * duration_ms, duration_s, failed, http_status, images, line, col, interval_ms, pending, pid,
 * steps, total, undone_in_a_row, wait_ms, waited_ms) are numbers, suspended is a boolean, every
 * other key a string; the text format is unchanged. Callers pass every value as text ("12",
 * "true"). */
typedef enum rec_log_type { REC_LOG_STRING = 0, REC_LOG_NUMBER, REC_LOG_BOOL } rec_log_type;
rec_log_type rec_log_key_type(const char *key);

#endif
