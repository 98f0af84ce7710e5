/* Answer bodies collected from libcurl (internal/prov_body.h). */
#include "prov_body.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Makes room for need bytes: doubles from 4 KiB, so an answer of n bytes costs log n copies.
 * A secret body is copied into a new block and the old one wiped, since realloc would free a
 * block holding part of the secret without wiping it. */
static int reserve(prov_body *b, size_t need)
{
    if (need <= b->cap)
        return 0;
    size_t want = b->cap ? b->cap : 4096;
    while (want < need)
        want *= 2;
    char *grown;
    if (b->secret) {
        grown = malloc(want);
        if (grown != NULL && b->data != NULL) {
            memcpy(grown, b->data, b->len);
            explicit_bzero(b->data, b->len);
            free(b->data);
        }
    } else {
        grown = realloc(b->data, want);
    }
    if (grown == NULL)
        return -ENOMEM;
    b->data = grown;
    b->cap = want;
    return 0;
}

size_t prov_body_write(char *data, size_t size, size_t nmemb, void *ud)
{
    prov_body *b = ud;
    size_t n = size * nmemb;
    if (b->len + n > b->max) {
        b->too_big = true;
        return 0;
    }
    if (reserve(b, b->len + n + 1) < 0)
        return 0;
    memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

void prov_body_clear(prov_body *b)
{
    if (b->secret && b->data != NULL)
        explicit_bzero(b->data, b->len);
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
