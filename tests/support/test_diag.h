/* Diagnostics for tests: the loaders' spec_diag as the "line:col: message" text the tables of bad
 * inputs give, and the check of a first diagnostic against such a text, where FILE stands for
 * the path of the file that was loaded. Used by the config and manifest tables (test_config.c,
 * test_spec.c). Checks fail the current Criterion test and go on. */
#ifndef TEST_DIAG_H
#define TEST_DIAG_H

#include <stddef.h>

#include "spec_diag.h"

/* "line:col: message" of e, without the file, into buf (truncated to size). */
void test_diag_short(const spec_diag *e, char *buf, size_t size);
/* Expects e to read want ("line:col: message"; its first "FILE", if any, is path) and, when path
 * is not NULL, to name path as its file. what names the case in the failure messages. */
void test_diag_expect(const spec_diag *e, const char *want, const char *path, const char *what);

#endif
