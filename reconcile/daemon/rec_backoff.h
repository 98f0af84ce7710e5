/* Per-item failure backoff across daemon cycles (reconcile/README.md "Errors": "the daemon backs
 * off that item across cycles"), keyed by step address: after the n-th consecutive failed cycle the
 * item is skipped until base * 2^(n-1) (capped) has passed, then tried again; one success (or the
 * item no longer failing) forgets it. rec_daemon feeds rec_backoff_skip() to
 * rec_cycle_opts.skip_item. Pure bookkeeping: times are passed in, on a monotonic clock (the daemon
 * passes uv_now). */
#ifndef REC_BACKOFF_H
#define REC_BACKOFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rec_backoff_entry {
    char *address;
    char *message;        /* last normalised failure text, NULL when none was reported */
    unsigned failures;    /* consecutive failed cycles */
    uint64_t retry_at_ms; /* not attempted before this time */
    bool skipped;         /* skipped in the current cycle (see rec_backoff_cycle_end) */
} rec_backoff_entry;

typedef struct rec_backoff rec_backoff;

/* base_ms: the first delay (normally the cycle interval); cap_ms: the largest (e.g. 1h). slack_ms
 * is subtracted from each retry time so that a cycle scheduled with jitter slightly early still
 * retries (normally 10% of the interval). */
int rec_backoff_new(uint64_t base_ms, uint64_t cap_ms, uint64_t slack_ms, rec_backoff **ret);
void rec_backoff_free(rec_backoff *b);
void rec_backoff_set_base(rec_backoff *b, uint64_t base_ms, uint64_t slack_ms);

/* The delay after the n-th consecutive failure (n >= 1): min(base * 2^(n-1), cap). */
uint64_t rec_backoff_delay(uint64_t base_ms, uint64_t cap_ms, unsigned n);

/* True when address must not be attempted at now_ms; remembers that it was skipped. */
bool rec_backoff_skip(rec_backoff *b, const char *address, uint64_t now_ms);
/* Records the failure text of address in the current cycle (copied). Returns 0 or -ENOMEM. */
int rec_backoff_note(rec_backoff *b, const char *address, const char *message);
/* Ends a cycle: every address in failed (n_failed) gets one more failure and a new retry time;
 * every other known address that was not skipped this cycle is forgotten (it succeeded or is no
 * longer planned). Returns 0 or -ENOMEM. */
int rec_backoff_cycle_end(rec_backoff *b, const char *const *failed, size_t n_failed,
                          uint64_t now_ms);
/* Forgets everything (the user changed the manifests: try again now). */
void rec_backoff_reset(rec_backoff *b);
const rec_backoff_entry *rec_backoff_entries(const rec_backoff *b, size_t *ret_n);

#endif
