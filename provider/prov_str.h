/* Small string helpers every room shares (provider is the lowest room that cmd/, plan, exec and
 * the daemon all reach; spec/ keeps its own because it may not include provider). One copy
 * each: do not write another set_str or asprintf wrapper. */
#ifndef PROV_STR_H
#define PROV_STR_H

/* asprintf that returns the malloc'd string (caller frees) or NULL on failure. */
char *prov_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Replaces *dst with a copy of value (NULL: *dst becomes NULL), freeing the old string. Returns
 * 0, or -ENOMEM with *dst unchanged. */
int prov_set_str(char **dst, const char *value);

#endif
