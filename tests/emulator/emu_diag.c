/* The emulator's diagnostics list (see emu_diag.h). */
#include "emu_diag.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void emu_diags_add(emu_diags *d, const char *file, unsigned line, unsigned col, const char *fmt,
                   ...)
{
    char *msg = NULL, *full = NULL;
    va_list ap;
    va_start(ap, fmt);
    int m = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (m < 0 || asprintf(&full, "%s:%u:%u: %s", file, line, col, msg) < 0) {
        full = NULL;
    }
    if (m >= 0) {
        free(msg);
    }
    char **v = realloc(d->v, (d->n + 1) * sizeof(*v));
    if (!v) {
        free(full);
        return;
    }
    d->v = v;
    v[d->n++] = full ? full : strdup("out of memory");
}

void emu_diags_print(const emu_diags *d, FILE *out)
{
    for (size_t i = 0; i < d->n; i++) {
        fprintf(out, "%s\n", d->v[i] ? d->v[i] : "out of memory");
    }
}

void emu_diags_clear(emu_diags *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->v[i]);
    }
    free(d->v);
    *d = (emu_diags){0};
}
