/* Wiping secrets from memory: one helper for buffers the project frees itself, and allocators
 * that wipe every block jansson and libcurl free (config.json strings, STS and metadata answers,
 * request headers and URLs carrying a SecurityToken). */
#ifndef PROV_SECRET_H
#define PROV_SECRET_H

/* Wipes the string (up to its NUL) and frees it. Accepts NULL. */
void prov_free_secret(char *s);

/* free() that wipes the block over its usable size first. Accepts NULL. */
void prov_wipe_free(void *p);

/* Makes jansson and libcurl wipe every block they free. Call once at start-up, before any other
 * use of either library (cmd/main.c does). Returns 0 or -EIO when libcurl refuses. */
int prov_secret_install_allocators(void);

#endif
