/* Diagnostics collection (see spec_diag.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spec_diag.h"
#include "spec_diag_int.h"
#include "spec_yaml.h"

void spec_diags_init(spec_diags *d)
{
    memset(d, 0, sizeof(*d));
}

/* Records an allocation failure without allocating: the static message is never freed. */
static char oom_msg[] = "out of memory while recording diagnostics";

void spec_diags_add(spec_diags *d, const char *file, unsigned line, unsigned col, const char *fmt,
                    ...)
{
    va_list ap;
    char *msg = NULL;

    va_start(ap, fmt);
    int len = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (len < 0)
        msg = NULL;
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        spec_diag *grown = realloc(d->v, cap * sizeof(*grown));
        if (grown == NULL) {
            free(msg);
            return;
        }
        d->v = grown;
        d->cap = cap;
    }
    spec_diag *e = &d->v[d->n++];
    e->file = file ? strdup(file) : NULL;
    e->line = line;
    e->col = col;
    e->msg = msg ? msg : oom_msg;
}

void spec_diags_vadd_clean(spec_diags *d, spec_pos p, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    char clean[sizeof(msg) * 4];
    spec_text_sanitize(msg, clean, sizeof(clean));
    spec_diags_add(d, p.file, p.line, p.col, "%s", clean);
}

void spec_diags_add_clean(spec_diags *d, spec_pos p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    spec_diags_vadd_clean(d, p, fmt, ap);
    va_end(ap);
}

int spec_diags_take(spec_diags *d, spec_diags *from)
{
    if (from->n > 0 && d->cap - d->n < from->n) {
        size_t cap = d->n + from->n;
        spec_diag *grown = realloc(d->v, cap * sizeof(*grown));
        if (grown == NULL) {
            spec_diags_clear(from);
            return -ENOMEM;
        }
        d->v = grown;
        d->cap = cap;
    }
    if (from->n > 0)
        memcpy(d->v + d->n, from->v, from->n * sizeof(*from->v));
    d->n += from->n;
    free(from->v);
    memset(from, 0, sizeof(*from));
    return 0;
}

void spec_diags_print(const spec_diags *d, FILE *out)
{
    for (size_t i = 0; i < d->n; i++) {
        const spec_diag *e = &d->v[i];
        if (e->file && e->line > 0)
            fprintf(out, "%s:%u:%u: %s\n", e->file, e->line, e->col, e->msg);
        else if (e->file)
            fprintf(out, "%s: %s\n", e->file, e->msg);
        else
            fprintf(out, "%s\n", e->msg);
    }
}

void spec_diags_clear(spec_diags *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->n; i++) {
        free(d->v[i].file);
        if (d->v[i].msg != oom_msg)
            free(d->v[i].msg);
    }
    free(d->v);
    memset(d, 0, sizeof(*d));
}
