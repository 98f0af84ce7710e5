/* Diagnostics: every problem found in a manifest, config or fixture, as file:line:col: message.
 * Loaders collect all of them in one run instead of stopping at the first. */
#ifndef SPEC_DIAG_H
#define SPEC_DIAG_H

#include <stddef.h>
#include <stdio.h>

/* A position in a source file; line and col are 1-based, file is owned by whoever loaded it. */
typedef struct spec_pos {
    const char *file;
    unsigned line;
    unsigned col;
} spec_pos;

typedef struct spec_diag {
    char *file;
    unsigned line;
    unsigned col;
    char *msg;
} spec_diag;

typedef struct spec_diags {
    spec_diag *v;
    size_t n;
    size_t cap;
} spec_diags;

void spec_diags_init(spec_diags *d);
/* Appends one message; allocation failure is recorded as a final "out of memory" entry. */
void spec_diags_add(spec_diags *d, const char *file, unsigned line, unsigned col, const char *fmt,
                    ...) __attribute__((format(printf, 5, 6)));
/* Prints "file:line:col: message\n" for each entry, in the order they were added. */
void spec_diags_print(const spec_diags *d, FILE *out);
void spec_diags_clear(spec_diags *d);

#endif
