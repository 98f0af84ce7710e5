/* jansson's allocator and per-document arenas (prov_jmem.h). Outside a load, a block is a plain
 * malloc block (so what jansson hands out, json_dumps' text included, may still be released with
 * free()), wiped when jansson frees it. A free tells an arena block by its address: this thread's
 * arenas register their chunks, and there are seldom more than one or two alive. The state is
 * per thread, so a document loaded by prov_json_loadb must be freed on the thread that loaded it
 * (the client's loop thread; jansson documents are not shared between threads anyway). */
#include "prov_jmem.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "prov_secret.h"

#if defined(__SANITIZE_ADDRESS__)
#define JMEM_ARENAS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define JMEM_ARENAS 0
#endif
#endif
#ifndef JMEM_ARENAS
#define JMEM_ARENAS 1
#endif

/* A chunk's size, and the largest block taken from a chunk: a bigger one (a long string, or the
 * buffer jansson doubles while it reads one) comes from malloc, so regrowing it wastes nothing. */
enum { CHUNK_SIZE = 64 * 1024, ARENA_MAX_BLOCK = 4 * 1024 };

typedef struct jarena jarena;

typedef struct jchunk {
    struct jchunk *next;
    size_t used;
    max_align_t data[(CHUNK_SIZE + sizeof(max_align_t) - 1) / sizeof(max_align_t)];
} jchunk;

struct jarena {
    jchunk *chunks; /* newest first; blocks are taken from the first */
    size_t live;    /* blocks handed out and not freed */
    bool open;      /* still loading: released only once closed and empty */
};

/* A registered chunk: where its blocks lie, and their arena. */
typedef struct jrange {
    const unsigned char *start;
    jarena *arena;
} jrange;

static _Thread_local bool in_load;
static _Thread_local jarena *loading;
static _Thread_local size_t n_arenas;
static _Thread_local jrange *ranges;
static _Thread_local size_t n_ranges, cap_ranges;

size_t prov_jmem_live_arenas(void)
{
    return n_arenas;
}

/* The arena whose chunk holds p, or NULL for a malloc block. */
static jarena *arena_of(const void *p)
{
    const unsigned char *b = p;
    for (size_t i = n_ranges; i-- > 0;)
        if (b >= ranges[i].start && b < ranges[i].start + CHUNK_SIZE)
            return ranges[i].arena;
    return NULL;
}

static int register_chunk(jchunk *c, jarena *a)
{
    if (n_ranges == cap_ranges) {
        size_t cap = cap_ranges ? 2 * cap_ranges : 8;
        jrange *r = realloc(ranges, cap * sizeof(*r));
        if (r == NULL)
            return -1;
        ranges = r;
        cap_ranges = cap;
    }
    ranges[n_ranges++] = (jrange){(const unsigned char *)c->data, a};
    return 0;
}

/* Drops an arena's chunks from the registry; the array itself goes when it empties, so a thread
 * that is done loading holds nothing. */
static void unregister_arena(const jarena *a)
{
    for (size_t i = 0; i < n_ranges;)
        if (ranges[i].arena == a)
            ranges[i] = ranges[--n_ranges];
        else
            i++;
    if (n_ranges == 0) {
        free(ranges);
        ranges = NULL;
        cap_ranges = 0;
    }
}

/* Wipes and frees every chunk of an arena whose blocks are all freed and whose load is over. */
static void arena_release(jarena *a)
{
    unregister_arena(a);
    for (jchunk *c = a->chunks, *next; c != NULL; c = next) {
        next = c->next;
        explicit_bzero(c->data, c->used);
        free(c);
    }
    free(a);
    n_arenas--;
}

/* A block of size bytes (a multiple of 16, at most ARENA_MAX_BLOCK) from the arena of the
 * document being loaded, which is made on the first block. NULL when out of memory. */
static void *arena_take(size_t size)
{
    if (loading == NULL) {
        loading = calloc(1, sizeof(*loading));
        if (loading == NULL)
            return NULL;
        loading->open = true;
        n_arenas++;
    }
    jchunk *c = loading->chunks;
    if (c == NULL || CHUNK_SIZE - c->used < size) {
        c = malloc(sizeof(*c));
        if (c == NULL)
            return NULL;
        if (register_chunk(c, loading) < 0) {
            free(c);
            return NULL;
        }
        c->used = 0;
        c->next = loading->chunks;
        loading->chunks = c;
    }
    void *p = (unsigned char *)c->data + c->used;
    c->used += size;
    loading->live++;
    return p;
}

void *prov_jmem_malloc(size_t size)
{
    if (in_load && size <= ARENA_MAX_BLOCK)
        return arena_take((size + 15) & ~(size_t)15);
    return malloc(size);
}

void prov_jmem_free(void *ptr)
{
    if (ptr == NULL)
        return;
    jarena *a = n_ranges != 0 ? arena_of(ptr) : NULL;
    if (a == NULL) {
        prov_wipe_free(ptr);
        return;
    }
    if (--a->live == 0 && !a->open)
        arena_release(a);
}

json_t *prov_json_loadb(const char *buffer, size_t len, size_t flags, json_error_t *error)
{
    if (!JMEM_ARENAS)
        return json_loadb(buffer, len, flags, error);
    in_load = true;
    loading = NULL;
    json_t *root = json_loadb(buffer, len, flags, error);
    in_load = false;
    jarena *a = loading;
    loading = NULL;
    if (a != NULL) {
        a->open = false;
        if (a->live == 0)
            arena_release(a);
    }
    return root;
}
