/* The crash-safety journal (reconcile/README.md "Idempotency"): `<state_dir>/journal.jsonl`,
 * append-only, one JSON object per line, fsync'd after every line. The executor writes an intent
 * line before each mutating call and a result line after it. After a crash the next run reads the
 * journal to recognise a create whose image is not listed yet (list lag) and to pick a fresh step
 * generation only when a completed create's image has since vanished. Synchronous and small:
 * a line or two per API call, which the pacer limits to a few per second. */
#ifndef REC_JOURNAL_H
#define REC_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "prov_cleanup.h"

typedef enum rec_journal_phase { REC_JOURNAL_INTENT = 0, REC_JOURNAL_RESULT = 1 } rec_journal_phase;

/* One line as read back. Absent strings are NULL. */
typedef struct rec_journal_entry {
    rec_journal_phase phase;
    uint64_t ts_ms; /* wall clock */
    char *cycle;    /* cycle id (one per process run and cycle) */
    char *address;  /* step address, e.g. swas.cn-hangzhou.custom_image.web */
    char *action;   /* API action, e.g. CreateCustomImage */
    char *region;
    char *name;
    char *client_token;
    char *image_id; /* result: the image acted on or created */
    char *code;     /* result: NULL on success, else the API Code or a local cause */
    unsigned quota; /* CustomImageQuotaLimit result: images in the region then; 0 otherwise */
    /* REC_JOURNAL_AVAILABLE lines: a poll sent build_ms after the create's answer saw the image
     * available; the last poll that did not was sent build_lo_ms after it (0: none). */
    uint64_t build_ms, build_lo_ms;
} rec_journal_entry;

typedef struct rec_journal rec_journal;

/* Opens (creating 0600 when missing) `<state_dir>/journal.jsonl` through prov_statedir (no
 * symlink followed; -ELOOP when it is one), reads every complete line, cuts what follows the
 * last valid entry (a torn line from a crash, trailing garbage) so that the next line starts
 * clean, and compacts the file when it holds more than keep_cycles cycles (0: 20) by writing the
 * lines of the last keep_cycles cycles to a unique temp file renamed over it. Reading, cutting
 * and compacting happen under the file's flock, and every append takes it too and follows a
 * compaction by another process to the new file, so concurrent writers lose no line.
 * cycle_id names the lines this process writes. Returns 0 or a negative errno. */
int rec_journal_open(const char *state_dir, const char *cycle_id, unsigned keep_cycles,
                     rec_journal **ret);
/* Reads the journal without compacting or creating it (plan, which changes nothing); appends
 * fail with -EROFS. A missing file is an empty journal. */
int rec_journal_open_readonly(const char *state_dir, rec_journal **ret);
void rec_journal_close(rec_journal *j);
PROV_DEFINE_FREEP(rec_journal, rec_journal_close)

/* Appends one line and fsyncs it; the entry is also kept in memory for lookups. e->ts_ms 0 means
 * now; e->cycle is ignored (the journal's own cycle id is written). Returns 0 or a negative
 * errno. */
int rec_journal_append(rec_journal *j, const rec_journal_entry *e);
/* Group commit: appends the line without waiting for the disk; rec_journal_sync (or close) makes
 * every such line durable with one fdatasync. The executor writes its intents this way and syncs
 * once right before the calls they announce leave (prov_client_set_before_send), so a batch of
 * calls costs one disk flush, not one per call. */
int rec_journal_append_unsynced(rec_journal *j, const rec_journal_entry *e);
/* fdatasync when lines were appended unsynced since the last one; 0 or a negative errno. */
int rec_journal_sync(rec_journal *j);

/* Every entry read or appended, oldest first. */
const rec_journal_entry *rec_journal_entries(const rec_journal *j, size_t *ret_n);

/* The newest successful CreateCustomImage result for client_token; NULL when none. */
const rec_journal_entry *rec_journal_find_created(const rec_journal *j, const char *client_token);

/* True when a call with client_token succeeded (a result line without code). The cloud
 * remembers a ClientToken for a day and answers a repeat with the first result without acting
 * again, so a share, unshare or delete needed again later must not reuse it. Successful results
 * stay in the journal for REC_JOURNAL_TOKEN_TTL_MS across compaction so that this holds. */
#define REC_JOURNAL_TOKEN_TTL_MS (26ull * 3600 * 1000)
int rec_journal_token_used(const rec_journal *j, const char *client_token);

/* The region's quota learned from the newest CustomImageQuotaLimit result younger than
 * max_age_ms: the number of images the region held when the create was refused. 0: none. */
unsigned rec_journal_learned_quota(const rec_journal *j, const char *region, uint64_t now_ms,
                                   uint64_t max_age_ms);

/* The action of the line the executor writes when a poll first sees an image it created become
 * available (status 1): the build-time sample of rec_journal_learned_build. */
#define REC_JOURNAL_AVAILABLE "ImageAvailable"
#define REC_BUILD_SAMPLES 8
typedef struct rec_build_learned {
    unsigned n;          /* samples used (0: nothing learned, the other fields are 0) */
    uint64_t typical_ms; /* median of build_ms: the estimate's build time */
    uint64_t lo_ms;      /* median of the nonzero build_lo_ms (0: none): not ready before */
    uint64_t hi_ms;      /* = typical_ms: ready by then */
} rec_build_learned;
/* The newest REC_BUILD_SAMPLES build-time samples younger than max_age_ms, of region (NULL:
 * every region). Called by the executor (when to poll first) and rec_cycle (the estimate). */
void rec_journal_learned_build(const rec_journal *j, const char *region, uint64_t now_ms,
                               uint64_t max_age_ms, rec_build_learned *ret);
/* True when an intent for client_token has no result after it (the process died mid-call). */
int rec_journal_intent_open(const rec_journal *j, const char *client_token);

#endif
