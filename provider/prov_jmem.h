/* jansson's memory: the allocator every json_t of the process comes from (installed by
 * prov_secret_install_allocators), and documents whose nodes come from one arena.
 *
 * Parsing an API answer is mostly jansson allocating and freeing small blocks: a node, a hash
 * table, a string per member. prov_json_loadb gives all the blocks of one document one arena
 * (chunks of 64 KiB, a pointer bump per block), released when the last of its blocks is freed,
 * so a document that is kept (json_incref, or a node moved into another document) keeps its
 * arena and nothing dangles. A free tells an arena block from a malloc block by its address, so
 * blocks outside a load are plain malloc blocks (json_dumps' text may be released with free()).
 * Arena chunks are wiped when released and malloc blocks when freed, as prov_secret.h promises
 * for everything jansson frees. A document from prov_json_loadb must be freed on the thread that
 * loaded it. */
#ifndef PROV_JMEM_H
#define PROV_JMEM_H

#include <stddef.h>

#include <jansson.h>

/* The allocator pair for json_set_alloc_funcs. Outside prov_json_loadb a block comes from
 * malloc; inside, from the document's arena. Install it before any json_t exists. */
void *prov_jmem_malloc(size_t size);
void prov_jmem_free(void *ptr);

/* json_loadb(buffer, len, flags, error), with the document's blocks in an arena of their own when
 * the allocator above is installed (plain json_loadb otherwise, with the same result). The caller
 * owns the document as usual (json_decref). Under AddressSanitizer the arena is off, so the
 * sanitizer sees every block. Called for every API answer (prov_call.c, prov_resp.c). */
json_t *prov_json_loadb(const char *buffer, size_t len, size_t flags, json_error_t *error);

/* Arenas alive in this thread (documents loaded and not yet wholly freed), for the tests. */
size_t prov_jmem_live_arenas(void);

#endif
