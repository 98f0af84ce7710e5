/* Diagnostics with user text in them (spec/ internal; spec_diag.c). A message that quotes a
 * manifest or config value may hold control characters or a UTF-8 character cut by "%.64s";
 * these helpers format it and pass it through spec_text_sanitize before it is recorded, so every
 * diagnostic prints as one clean line. */
#ifndef SPEC_DIAG_INT_H
#define SPEC_DIAG_INT_H

#include <stdarg.h>

#include "spec_diag.h"

/* Formats fmt (at most 1023 bytes; longer output is cut), sanitises the text and appends it to d
 * at p. Exists so that each loader's reporting function (spec.c's at(), spec_config.c's bad())
 * does not repeat the format-sanitise-add steps; d and p.file are borrowed. */
void spec_diags_vadd_clean(spec_diags *d, spec_pos p, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* spec_diags_vadd_clean with the arguments inline, for single messages (spec_known.c's region
 * warning, spec_config.c's endpoint check). */
void spec_diags_add_clean(spec_diags *d, spec_pos p, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Moves every diagnostic of from to the end of d, in order, and leaves from empty. On allocation
 * failure from's diagnostics are dropped and -ENOMEM returned (the caller reports it). The
 * parallel loader (spec.c) gathers each file's diagnostics so, in file order. */
int spec_diags_take(spec_diags *d, spec_diags *from);

#endif
