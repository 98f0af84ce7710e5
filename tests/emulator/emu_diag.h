/* The emulator's diagnostics: every problem of a fixture (or of the command line) as
 * "file:line:col: message", collected in one pass. Used by emu_fixture.c, emu_server.c and
 * main.c. */
#ifndef EMU_DIAG_H
#define EMU_DIAG_H

#include <stddef.h>
#include <stdio.h>

typedef struct emu_diags {
    char **v; /* "file:line:col: message" lines */
    size_t n;
} emu_diags;

/* Appends one message; when memory runs out the message is dropped and "out of memory" is
 * kept instead (the loader fails with -ENOMEM anyway). */
void emu_diags_add(emu_diags *d, const char *file, unsigned line, unsigned col, const char *fmt,
                   ...) __attribute__((format(printf, 5, 6)));
/* Prints each line followed by a newline. */
void emu_diags_print(const emu_diags *d, FILE *out);
/* Frees the lines; the struct itself is the caller's. */
void emu_diags_clear(emu_diags *d);

#endif
