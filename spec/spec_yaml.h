/* A small YAML document model over libyaml for the manifest and config loaders: every node keeps
 * its file:line:col, and hostile input (deep nesting, alias bombs, huge files, bad bytes) is turned
 * into positioned diagnostics instead of a crash. Anchors and aliases are expanded into copies
 * under a node and byte budget, so consumers only ever see trees. */
#ifndef SPEC_YAML_H
#define SPEC_YAML_H

#include <stdbool.h>
#include <stddef.h>

#include "spec_diag.h"

/* Limits applied to every load; a violation is a positioned diagnostic. */
#define SPEC_YAML_MAX_FILE_BYTES (4u * 1024u * 1024u)    /* bytes of input per file */
#define SPEC_YAML_MAX_DEPTH 64u                          /* nesting of lists and mappings */
#define SPEC_YAML_MAX_NODES 200000u                      /* nodes per file, alias copies included */
#define SPEC_YAML_MAX_SCALAR_BYTES (16u * 1024u * 1024u) /* scalar bytes, alias copies included */

typedef enum spec_ynode_kind {
    SPEC_YSCALAR = 0,
    SPEC_YSEQ = 1,
    SPEC_YMAP = 2,
} spec_ynode_kind;

typedef struct spec_ynode spec_ynode;

typedef struct spec_ypair {
    spec_ynode *key;
    spec_ynode *value;
} spec_ypair;

struct spec_ynode {
    spec_ynode_kind kind;
    spec_pos pos; /* where the node starts; pos.file is the name given to the loader */
    /* Scalars: NUL-terminated text (len excludes the NUL; the text may hold NUL bytes from
     * escapes, so compare len with strlen when that matters), and whether it was written plain
     * (unquoted, no explicit !!str tag), which is when null/bool/number readings apply. */
    char *text;
    size_t len;
    bool plain;
    /* Sequences: items; mappings: pairs, in document order. */
    spec_ynode **items;
    spec_ypair *pairs;
    size_t n;
    /* Bookkeeping for alias expansion: nodes in this subtree and its height. */
    size_t size;
    unsigned height;
};

/* Called once per document of a stream, in order. root is NULL for an empty document; doc_pos is
 * where the document starts. The tree is freed after the call returns. A negative return stops
 * the load and is returned by the loader. */
typedef int (*spec_yaml_doc_fn)(void *ud, const spec_ynode *root, spec_pos doc_pos);

/* Reads path and parses it; `file` is the name used in positions and diagnostics (callers keep it
 * alive while the callback runs; it is usually path itself). Returns 0; -EINVAL after a syntax or
 * limit error (recorded in diags, documents before it were delivered); a negative errno when the
 * file cannot be read (recorded with the name); or the callback's negative value. */
int spec_yaml_load_file(const char *path, const char *file, spec_yaml_doc_fn fn, void *ud,
                        spec_diags *diags);
/* The same over a buffer already in memory (tests, fuzzing, built-in documents). */
int spec_yaml_load_mem(const char *buf, size_t len, const char *file, spec_yaml_doc_fn fn, void *ud,
                       spec_diags *diags);

/* Scalar readings shared by the loaders. A plain scalar "", "~", "null", "Null" or "NULL" is
 * null. Booleans are only true/True/TRUE/false/False/FALSE written plain (YAML 1.2 core schema;
 * yes/no/on/off are strings). */
bool spec_ynode_is_null(const spec_ynode *n);
int spec_ynode_bool(const spec_ynode *n, bool *ret_value);
/* Describes a node for a message: "a list", "a mapping", "null", "boolean true", "number 5",
 * "string 'yes'" (long or non-printable text is shortened and escaped). Writes into buf. */
const char *spec_ynode_describe(const spec_ynode *n, char *buf, size_t size);
/* Finds the value of a key in a mapping (the first one); NULL when absent or n is not a map. */
const spec_ynode *spec_ynode_get(const spec_ynode *map, const char *key);

/* Finds repeated scalar keys of a mapping in O(n log n). On success *ret_first (caller frees,
 * map->n entries) holds, for each pair, the index of the first pair with the same key text, or
 * SIZE_MAX when the pair's key is the first of its text or not a scalar. Used by the manifest
 * and config loaders to report "duplicate key ... (first at ...)". Returns 0 or -ENOMEM. */
int spec_ymap_duplicates(const spec_ynode *map, size_t **ret_first);
/* The same for one pair, without allocating: the index of the first earlier pair whose key has
 * the same text as pair i's, or SIZE_MAX. O(i); loaders use it for mappings of at most
 * SPEC_YMAP_SMALL pairs (a manifest entry's handful of keys), where it beats sorting. */
#define SPEC_YMAP_SMALL 16
size_t spec_ymap_first_dup(const spec_ynode *map, size_t i);

/* Levenshtein distance with a cap (returns cap + 1 once it is certainly larger); used for
 * "did you mean" suggestions against a list of known keys. Returns the best candidate within
 * max_distance, or NULL. */
const char *spec_suggest(const char *word, const char *const *known, size_t n_known,
                         unsigned max_distance);

/* Copies a message for display: control characters become \xNN and bytes that are not valid
 * UTF-8 (such as a character cut by %.64s) become '?', so one diagnostic is one clean line. */
void spec_text_sanitize(const char *in, char *out, size_t size);

/* Counts UTF-8 characters (code points) in s; invalid bytes count one each. */
size_t spec_utf8_chars(const char *s, size_t len);

#endif
