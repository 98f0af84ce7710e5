/* The wipers of prov_secret.h. Blocks are wiped over their usable size (glibc's
 * malloc_usable_size), so a secret anywhere in a block jansson or libcurl allocated is gone once
 * the block is freed or moved by realloc. */
#include "prov_secret.h"

#include "prov_jmem.h"

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

void prov_free_secret(char *s)
{
    if (s == NULL)
        return;
    explicit_bzero(s, strlen(s));
    free(s);
}

/* free() that wipes the whole block first; libcurl calls it, and jansson through prov_jmem.c. */
void prov_wipe_free(void *p)
{
    if (p == NULL)
        return;
    explicit_bzero(p, malloc_usable_size(p));
    free(p);
}

/* realloc() that never leaves the old contents behind in a freed block. */
static void *wipe_realloc(void *p, size_t n)
{
    if (p == NULL)
        return malloc(n);
    if (n == 0) {
        prov_wipe_free(p);
        return NULL;
    }
    size_t old = malloc_usable_size(p);
    if (n <= old)
        return p;
    void *q = malloc(n);
    if (q == NULL)
        return NULL;
    memcpy(q, p, old);
    prov_wipe_free(p);
    return q;
}

static char *plain_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

int prov_secret_install_allocators(void)
{
    json_set_alloc_funcs(prov_jmem_malloc, prov_jmem_free);
    if (curl_global_init_mem(CURL_GLOBAL_DEFAULT, malloc, prov_wipe_free, wipe_realloc,
                             plain_strdup, calloc) != CURLE_OK)
        return -EIO;
    return 0;
}
