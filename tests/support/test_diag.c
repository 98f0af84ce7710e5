/* See test_diag.h. */
#include "test_diag.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

void test_diag_short(const spec_diag *e, char *buf, size_t size)
{
    snprintf(buf, size, "%u:%u: %s", e->line, e->col, e->msg);
}

void test_diag_expect(const spec_diag *e, const char *want, const char *path, const char *what)
{
    char full[2048], got[2048];
    const char *mark = path != NULL ? strstr(want, "FILE") : NULL;
    if (mark != NULL)
        snprintf(full, sizeof(full), "%.*s%s%s", (int)(mark - want), want, path, mark + 4);
    else
        snprintf(full, sizeof(full), "%s", want);
    test_diag_short(e, got, sizeof(got));
    cr_expect_str_eq(got, full, "[%s]\n  got:  %s\n  want: %s", what, got, full);
    if (path != NULL)
        cr_expect_str_eq(e->file, path, "[%s] file", what);
}
