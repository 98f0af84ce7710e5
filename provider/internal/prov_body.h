/* Internal to provider/: an answer's body collected from libcurl's write callback. Every HTTP
 * path of the room keeps one: the event-loop client (prov_http.c), the blocking requests of the
 * credentials chain (prov_cred.c, whose bodies hold secrets) and etcd's synchronous calls
 * (prov_etcd.c). */
#ifndef PROV_BODY_H
#define PROV_BODY_H

#include <stdbool.h>
#include <stddef.h>

typedef struct prov_body {
    char *data;   /* NUL-terminated once a byte has arrived, else NULL; freed by prov_body_clear */
    size_t len;   /* bytes in data, the NUL not counted */
    size_t cap;   /* bytes allocated */
    size_t max;   /* set by the caller: the most bytes kept; a longer answer sets too_big */
    bool secret;  /* set by the caller: grow by copying and wiping, never realloc, so that no
                   * freed block keeps part of a secret; prov_body_clear wipes too */
    bool too_big; /* the answer was longer than max and the transfer was failed */
} prov_body;

/* CURLOPT_WRITEFUNCTION with a prov_body as CURLOPT_WRITEDATA: appends the chunk, or returns 0
 * (libcurl then fails the transfer with CURLE_WRITE_ERROR) when it would pass max, setting
 * too_big, or when memory runs out. */
size_t prov_body_write(char *data, size_t size, size_t nmemb, void *ud);

/* Frees what b holds (wiped first when b->secret) and empties it; b is the caller's. */
void prov_body_clear(prov_body *b);

#endif
