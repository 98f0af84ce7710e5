/* Internal helpers shared by the rec_plan*.c, rec_diff.c, rec_render.c, rec_estimate.c and
 * rec_planfile.c files: image snapshots, hashing, small growable arrays. Not for other modules. */
#ifndef REC_PLAN_INT_H
#define REC_PLAN_INT_H

#include <jansson.h>
#include <openssl/evp.h>

#include "rec_plan.h"
#include "prov_str.h"

/* Deep copies of provider images (kept local so that reconcile's pure core needs nothing but
 * the plain structs of prov_types.h). Return NULL on allocation failure. */
prov_image *rec_image_dup(const prov_image *src);
void rec_image_free(prov_image *img); /* fields and the struct; accepts NULL */
PROV_DEFINE_FREEP(prov_image, rec_image_free)
/* Sets (replacing) or adds a tag; returns 0 or -ENOMEM. */
int rec_image_set_tag(prov_image *img, const char *key, const char *value);
const char *rec_image_tag(const prov_image *img, const char *key);

/* Incremental sha256 with unambiguous, length-prefixed fields (NULL differs from ""). Fields
 * are gathered in buf and handed to OpenSSL a buffer at a time: a plan's fingerprints hash a
 * few dozen short fields per image, and one EVP_DigestUpdate per field cost more than the
 * hashing itself. */
typedef struct rec_hasher {
    EVP_MD_CTX *ctx;
    bool failed;
    size_t len; /* bytes waiting in buf */
    unsigned char buf[1024];
} rec_hasher;
void rec_hasher_init(rec_hasher *h);
void rec_hasher_str(rec_hasher *h, const char *s);
void rec_hasher_u64(rec_hasher *h, uint64_t v);
/* Writes 64 hex chars + NUL (all zeros on an OpenSSL failure) and frees the context. */
void rec_hasher_final(rec_hasher *h, char ret[REC_HASH_HEX + 1]);

/* Grows *v (element size elem) to hold at least n + 1 elements; 0 or -ENOMEM. */
int rec_grow(void **v, size_t *cap, size_t n, size_t elem);
char *rec_strdup0(const char *s); /* NULL stays NULL; sets *failed-style errors via NULL */

/* JSON of an image snapshot (json null for NULL) and of a whole plan (rec_render.c); *ok is
 * cleared on allocation failure. rec_plan_json returns NULL on failure. */
json_t *rec_image_json(const prov_image *img, bool *ok);
json_t *rec_plan_json(const rec_plan *plan);

void rec_step_clear(rec_step *st);
void rec_change_clear(rec_change *ch);
void rec_note_clear(rec_note *n);

#endif
