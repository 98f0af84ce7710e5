/* The emulator's request journal: JSONL, one line per API request written when the answer is
 * sent (README.md "Journal"), flushed after each line so tests can read it at any time.
 * Guarded by the server's mutex. */
#ifndef EMU_JOURNAL_H
#define EMU_JOURNAL_H

#include <stdint.h>
#include <stdio.h>

#include "emu_kvs.h"

typedef struct emu_journal {
    FILE *f; /* NULL when no --journal was given */
} emu_journal;

/* Opens (appending) path, or does nothing when path is NULL. Returns 0 or a negative errno. */
int emu_journal_open(emu_journal *j, const char *path);
void emu_journal_close(emu_journal *j);
/* Empties the file (POST /_emulator/reset). */
int emu_journal_truncate(emu_journal *j);

/* The line: ts (ms, UTC, Z), access_key_id (or null), action (or null), params (without the
 * common and signing parameters), http_status, code (null on success), request_id, and
 * image_id on a successful create. Returns 0 or a negative errno. */
int emu_journal_write(emu_journal *j, int64_t now_ms, const char *access_key_id, const char *action,
                      const emu_kvs *params, int http_status, const char *code,
                      const char *request_id, const char *image_id);

#endif
