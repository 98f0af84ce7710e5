/* Small string helpers (see prov_str.h). */
#include "prov_str.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Formats the messages of the credential chain, the planner and the saved-plan checks. */
char *prov_asprintf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    return n < 0 ? NULL : s;
}

/* Sets a string field of a config or status record (cmd, exec, daemon). */
int prov_set_str(char **dst, const char *value)
{
    char *copy = value ? strdup(value) : NULL;
    if (value != NULL && copy == NULL)
        return -ENOMEM;
    free(*dst);
    *dst = copy;
    return 0;
}
