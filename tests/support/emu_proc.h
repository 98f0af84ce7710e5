/* Helpers for tests that need the real emulator: start the imgrecon-emulator binary on a free
 * loopback port, stop it, read its journal and its state. Used by the integration tests of
 * every area (client, reconcile, CLI) and by test_emulator_http.c. */
#ifndef EMU_PROC_H
#define EMU_PROC_H

#include <stdbool.h>
#include <sys/types.h>

#include <jansson.h>

typedef struct emu_proc {
    pid_t pid;
    unsigned port;
    char base_url[64]; /* "http://127.0.0.1:PORT" */
    char dir[64];      /* private temporary directory (port file, journal) */
    char journal[128]; /* the journal path inside dir */
} emu_proc;

/* Starts IMGRECON_EMULATOR_BIN with --listen 127.0.0.1:0 --port-file --journal (both in a new
 * temporary directory) plus the NULL-terminated extra args (e.g. "--rate-limit", "10/1s"), and
 * waits at most 10 s for the port. Returns 0 or a negative errno (the child is reaped then). */
int emu_proc_start(emu_proc *p, const char *const *extra_args);
/* SIGTERM, waits at most 10 s (then SIGKILL), removes the temporary directory. Returns the
 * child's exit status (0 for a clean shutdown), or -1 when it did not exit by itself. */
int emu_proc_stop(emu_proc *p);
/* The journal as a JSON array of the line objects (a torn last line is skipped). NULL on
 * error. */
json_t *emu_proc_journal(const emu_proc *p);
/* A journal line's "ts" ("YYYY-MM-DDTHH:MM:SS.mmmZ") in ms since the epoch; 0 when absent or
 * malformed. */
long emu_proc_line_ms(const json_t *line);
/* GET /_emulator/state; NULL on error. */
json_t *emu_proc_state(const emu_proc *p);
/* POST /_emulator/reset, POST /_emulator/faults (body JSON text), DELETE /_emulator/faults.
 * Return 0 or -EIO. */
int emu_proc_reset(const emu_proc *p);
int emu_proc_add_fault(const emu_proc *p, const char *json_body);
int emu_proc_clear_faults(const emu_proc *p);

#endif
