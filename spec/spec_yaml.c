/* libyaml event stream -> positioned node trees (see spec_yaml.h). The event API is used instead of
 * yaml_parser_load() so that depth, node count and alias expansion are bounded while the tree is
 * built, before any of it can grow out of hand. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <yaml.h>

#include "spec_yaml.h"

typedef struct anchor {
    char *name;
    spec_ynode *node;
    bool complete; /* false while the anchored container is still open */
} anchor;

typedef struct frame {
    spec_ynode *node;
    spec_ynode *pending_key; /* mappings: a key waiting for its value */
    size_t anchor_idx;       /* index + 1 of the anchor naming this container, or 0 */
} frame;

/* Nodes, their texts and their arrays come from a per-document arena: a list of chunks bumped
 * forward and dropped all at once when the document is done, so building a tree costs a few
 * mallocs per 64 KiB instead of two or three per node, and freeing it costs nothing per node.
 * One chunk is kept across documents of a file. */
typedef struct chunk {
    struct chunk *next;
    size_t cap;  /* bytes of data */
    size_t used; /* bytes handed out */
    max_align_t data[];
} chunk;

#define CHUNK_BYTES (64u * 1024u - sizeof(chunk))

typedef struct builder {
    chunk *arena; /* the chunk being filled first; big requests get their own chunk after it */
    const char *file;
    const unsigned char *buf;
    size_t len;
    bool bom; /* the input starts with a UTF-8 byte order mark */
    spec_diags *diags;
    spec_ynode *root;
    frame stack[SPEC_YAML_MAX_DEPTH + 1];
    unsigned depth;
    anchor *anchors;
    size_t n_anchors;
    size_t *index;       /* open-addressing hash of anchor names: slot -> anchor index + 1, or 0 */
    size_t n_index;      /* slots, a power of two above twice the anchors (0 before the first) */
    uint64_t key[2];     /* random key of the anchor-name hash, per load */
    size_t nodes;        /* nodes created in this file, alias copies included */
    size_t scalar_bytes; /* scalar bytes created in this file, alias copies included */
} builder;

static chunk *chunk_new(size_t cap, chunk *next)
{
    chunk *c = malloc(sizeof(*c) + cap);
    if (c == NULL)
        return NULL;
    c->next = next;
    c->cap = cap;
    c->used = 0;
    return c;
}

/* size bytes from the document's arena, aligned for any type and not zeroed; NULL when out of
 * memory. Requests of a quarter chunk or more get a chunk of their own, so a long list that
 * grows does not waste the rest of the current chunk. */
static void *arena_alloc(builder *b, size_t size)
{
    size_t a = sizeof(max_align_t);
    size = (size + a - 1) / a * a;
    if (size >= CHUNK_BYTES / 4) {
        chunk *c = chunk_new(size, b->arena ? b->arena->next : NULL);
        if (c == NULL)
            return NULL;
        if (b->arena == NULL) {
            b->arena = c;
        } else {
            b->arena->next = c;
        }
        c->used = size;
        return c->data;
    }
    if (b->arena == NULL || b->arena->cap - b->arena->used < size) {
        chunk *c = chunk_new(CHUNK_BYTES, b->arena);
        if (c == NULL)
            return NULL;
        b->arena = c;
    }
    void *p = (char *)b->arena->data + b->arena->used;
    b->arena->used += size;
    return p;
}

/* Drops every node of the document; keeps one normal chunk (emptied) for the next one, or none
 * when all is true. */
static void arena_reset(builder *b, bool all)
{
    chunk *keep = NULL;
    for (chunk *c = b->arena, *next; c != NULL; c = next) {
        next = c->next;
        if (!all && keep == NULL && c->cap == CHUNK_BYTES) {
            keep = c;
            continue;
        }
        free(c);
    }
    if (keep != NULL) {
        keep->next = NULL;
        keep->used = 0;
    }
    b->arena = keep;
}

/* Converts a libyaml mark (0-based, characters; a byte order mark is not counted) into a 1-based
 * position. */
static spec_pos mark_pos(const builder *b, yaml_mark_t m)
{
    spec_pos p = {b->file, (unsigned)m.line + 1, (unsigned)m.column + 1};
    return p;
}

/* Byte offset -> 1-based line and character column, for reader errors that only carry an
 * offset. Line breaks are \n, \r\n and \r as in YAML. */
static spec_pos offset_pos(const builder *b, size_t off)
{
    spec_pos p = {b->file, 1, 1};
    size_t i = b->bom ? 3 : 0;
    if (off > b->len)
        off = b->len;
    for (; i < off; i++) {
        unsigned char c = b->buf[i];
        if (c == '\n' || (c == '\r' && !(i + 1 < b->len && b->buf[i + 1] == '\n'))) {
            p.line++;
            p.col = 1;
        } else if ((c & 0xC0) != 0x80 && c != '\r') {
            p.col++;
        }
    }
    return p;
}

/* 0-based line/column -> byte offset into the input, or SIZE_MAX when out of range. */
static size_t mark_offset(const builder *b, yaml_mark_t m)
{
    size_t i = b->bom ? 3 : 0, line = 0, col = 0;
    while (i < b->len && line < m.line) {
        unsigned char c = b->buf[i++];
        if (c == '\n' || (c == '\r' && !(i < b->len && b->buf[i] == '\n')))
            line++, col = 0;
    }
    while (i < b->len && col < m.column) {
        i++;
        while (i < b->len && (b->buf[i] & 0xC0) == 0x80)
            i++;
        col++;
    }
    return i < b->len ? i : SIZE_MAX;
}

/* Turns a libyaml failure into one positioned diagnostic. */
static void parser_error(builder *b, const yaml_parser_t *p)
{
    if (p->error == YAML_MEMORY_ERROR) {
        spec_diags_add(b->diags, b->file, 0, 0, "out of memory while parsing");
        return;
    }
    if (p->error == YAML_READER_ERROR) {
        spec_pos at = offset_pos(b, p->problem_offset);
        if (p->problem_value != -1)
            spec_diags_add(b->diags, at.file, at.line, at.col,
                           "invalid text: %s (byte 0x%02x); manifests must be UTF-8",
                           p->problem ? p->problem : "unreadable input",
                           (unsigned)p->problem_value & 0xFFu);
        else
            spec_diags_add(b->diags, at.file, at.line, at.col, "invalid text: %s",
                           p->problem ? p->problem : "unreadable input");
        return;
    }
    spec_pos at = mark_pos(b, p->problem_mark);
    size_t off = mark_offset(b, p->problem_mark);
    if (p->error == YAML_SCANNER_ERROR && off != SIZE_MAX && b->buf[off] == '\t') {
        spec_diags_add(b->diags, at.file, at.line, at.col,
                       "syntax error: tab character here; YAML indentation must use spaces");
        return;
    }
    if (p->context != NULL) {
        spec_pos ctx = mark_pos(b, p->context_mark);
        spec_diags_add(b->diags, at.file, at.line, at.col, "syntax error: %s, %s started at %u:%u",
                       p->problem ? p->problem : "invalid YAML", p->context, ctx.line, ctx.col);
    } else {
        spec_diags_add(b->diags, at.file, at.line, at.col, "syntax error: %s",
                       p->problem ? p->problem : "invalid YAML");
    }
}

static spec_ynode *node_new(builder *b, spec_ynode_kind kind, yaml_mark_t m)
{
    spec_ynode *n = arena_alloc(b, sizeof(*n));
    if (n == NULL)
        return NULL;
    memset(n, 0, sizeof(*n));
    n->kind = kind;
    n->pos = mark_pos(b, m);
    n->size = 1;
    return n;
}

#define MIN_ITEMS 8 /* a power of two */

/* Hangs a new node under the open container (or makes it the document root). */
static int attach(builder *b, spec_ynode *n)
{
    if (b->depth == 0) {
        if (b->root != NULL)
            return -EINVAL; /* libyaml never sends two roots; be safe anyway */
        b->root = n;
        return 0;
    }
    frame *f = &b->stack[b->depth - 1];
    spec_ynode *c = f->node;
    /* Arrays start with room for MIN_ITEMS (a manifest entry's keys fit) and then double when n
     * reaches a power of two (capacity is implied by n), so long lists stay linear; an old array
     * stays in the arena, at most as much again. */
    bool full = c->n == 0 || (c->n >= MIN_ITEMS && (c->n & (c->n - 1)) == 0);
    size_t cap = c->n ? c->n * 2 : MIN_ITEMS;
    if (c->kind == SPEC_YSEQ) {
        if (full) {
            spec_ynode **grown = arena_alloc(b, cap * sizeof(*grown));
            if (grown == NULL)
                return -ENOMEM;
            if (c->n > 0)
                memcpy(grown, c->items, c->n * sizeof(*grown));
            c->items = grown;
        }
        c->items[c->n++] = n;
        return 0;
    }
    if (f->pending_key == NULL) {
        f->pending_key = n;
        return 0;
    }
    if (full) {
        spec_ypair *grown = arena_alloc(b, cap * sizeof(*grown));
        if (grown == NULL)
            return -ENOMEM;
        if (c->n > 0)
            memcpy(grown, c->pairs, c->n * sizeof(*grown));
        c->pairs = grown;
    }
    c->pairs[c->n].key = f->pending_key;
    c->pairs[c->n].value = n;
    c->n++;
    f->pending_key = NULL;
    return 0;
}

/* Counts a new node against the per-file budget. */
static int count_node(builder *b, spec_pos at, size_t nodes, size_t bytes)
{
    if (nodes > SPEC_YAML_MAX_NODES - b->nodes) {
        spec_diags_add(b->diags, at.file, at.line, at.col,
                       "document too large: more than %u nodes (alias expansion included)",
                       SPEC_YAML_MAX_NODES);
        return -EINVAL;
    }
    if (bytes > SPEC_YAML_MAX_SCALAR_BYTES - b->scalar_bytes) {
        spec_diags_add(b->diags, at.file, at.line, at.col,
                       "document too large: more than %u bytes of text (alias expansion included)",
                       SPEC_YAML_MAX_SCALAR_BYTES);
        return -EINVAL;
    }
    b->nodes += nodes;
    b->scalar_bytes += bytes;
    return 0;
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1, v1 = ROTL(v1, 13), v1 ^= v0, v0 = ROTL(v0, 32);                                  \
        v2 += v3, v3 = ROTL(v3, 16), v3 ^= v2;                                                     \
        v0 += v3, v3 = ROTL(v3, 21), v3 ^= v0;                                                     \
        v2 += v1, v1 = ROTL(v1, 17), v1 ^= v2, v2 = ROTL(v2, 32);                                  \
    } while (0)

/* SipHash-2-4 of an anchor name under the builder's random key. A keyed hash keeps alias lookups
 * constant-time even for names crafted to collide (an unkeyed hash would let a hostile manifest
 * make every lookup walk one long chain, quadratic again). */
static size_t name_hash(const builder *b, const char *s)
{
    size_t len = strlen(s);
    uint64_t k0 = b->key[0], k1 = b->key[1];
    uint64_t v0 = k0 ^ 0x736f6d6570736575ull, v1 = k1 ^ 0x646f72616e646f6dull;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ull, v3 = k1 ^ 0x7465646279746573ull;
    uint64_t m;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        memcpy(&m, s + i, 8);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    m = (uint64_t)len << 56;
    for (size_t j = 0; i + j < len; j++)
        m |= (uint64_t)(unsigned char)s[i + j] << (8 * j);
    v3 ^= m;
    SIPROUND;
    SIPROUND;
    v0 ^= m;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return (size_t)(v0 ^ v1 ^ v2 ^ v3);
}

/* The slot holding name, or the empty slot where it would go. */
static size_t index_slot(const builder *b, const char *name)
{
    size_t mask = b->n_index - 1, i = name_hash(b, name) & mask;
    while (b->index[i] != 0 && strcmp(b->anchors[b->index[i] - 1].name, name) != 0)
        i = (i + 1) & mask;
    return i;
}

/* Doubles the hash table when it is half full and re-inserts every anchor (latest wins). */
static int index_grow(builder *b)
{
    if (b->n_index > 2 * (b->n_anchors + 1))
        return 0;
    size_t n = b->n_index ? b->n_index * 2 : 64;
    size_t *grown = calloc(n, sizeof(*grown));
    if (grown == NULL)
        return -ENOMEM;
    free(b->index);
    b->index = grown;
    b->n_index = n;
    for (size_t i = 0; i < b->n_anchors; i++)
        b->index[index_slot(b, b->anchors[i].name)] = i + 1;
    return 0;
}

/* The latest anchor of that name (YAML lets a later anchor redefine a name), or NULL. */
static const anchor *find_anchor(const builder *b, const char *name)
{
    if (b->n_index == 0)
        return NULL;
    size_t i = b->index[index_slot(b, name)];
    return i == 0 ? NULL : &b->anchors[i - 1];
}

static int add_anchor(builder *b, const yaml_char_t *name, spec_ynode *n, bool complete,
                      size_t *ret_idx)
{
    if (name == NULL)
        return 0;
    if (index_grow(b) < 0)
        return -ENOMEM;
    if ((b->n_anchors & (b->n_anchors - 1)) == 0) { /* grow at powers of two */
        anchor *grown = realloc(b->anchors, (b->n_anchors ? b->n_anchors * 2 : 1) * sizeof(*grown));
        if (grown == NULL)
            return -ENOMEM;
        b->anchors = grown;
    }
    char *copy = strdup((const char *)name);
    if (copy == NULL)
        return -ENOMEM;
    b->anchors[b->n_anchors] = (anchor){copy, n, complete};
    b->n_anchors++;
    b->index[index_slot(b, copy)] = b->n_anchors;
    if (ret_idx)
        *ret_idx = b->n_anchors;
    return 0;
}

static void drop_anchors(builder *b)
{
    for (size_t i = 0; i < b->n_anchors; i++)
        free(b->anchors[i].name);
    free(b->anchors);
    b->anchors = NULL;
    b->n_anchors = 0;
    free(b->index);
    b->index = NULL;
    b->n_index = 0;
}

/* Counts the scalar bytes of a subtree (bounded: the tree itself is within the budget). */
static size_t subtree_bytes(const spec_ynode *n)
{
    size_t sum = n->kind == SPEC_YSCALAR ? n->len : 0;
    for (size_t i = 0; n->kind == SPEC_YSEQ && i < n->n; i++)
        sum += subtree_bytes(n->items[i]);
    for (size_t i = 0; n->kind == SPEC_YMAP && i < n->n; i++)
        sum += subtree_bytes(n->pairs[i].key) + subtree_bytes(n->pairs[i].value);
    return sum;
}

/* Deep copy of an anchored subtree for an alias, in the arena; the budget was checked by the
 * caller. NULL when out of memory (what was copied goes with the arena). */
static spec_ynode *node_copy(builder *b, const spec_ynode *src)
{
    spec_ynode *n = arena_alloc(b, sizeof(*n));
    if (n == NULL)
        return NULL;
    *n = *src;
    n->text = NULL;
    n->items = NULL;
    n->pairs = NULL;
    n->n = 0;
    if (src->text != NULL) {
        if ((n->text = arena_alloc(b, src->len + 1)) == NULL)
            return NULL;
        memcpy(n->text, src->text, src->len + 1);
    }
    if (src->kind == SPEC_YSEQ && src->n > 0) {
        if ((n->items = arena_alloc(b, src->n * sizeof(*n->items))) == NULL)
            return NULL;
        for (; n->n < src->n; n->n++)
            if ((n->items[n->n] = node_copy(b, src->items[n->n])) == NULL)
                return NULL;
    } else if (src->kind == SPEC_YMAP && src->n > 0) {
        if ((n->pairs = arena_alloc(b, src->n * sizeof(*n->pairs))) == NULL)
            return NULL;
        for (; n->n < src->n; n->n++) {
            n->pairs[n->n].key = node_copy(b, src->pairs[n->n].key);
            n->pairs[n->n].value = node_copy(b, src->pairs[n->n].value);
            if (n->pairs[n->n].key == NULL || n->pairs[n->n].value == NULL)
                return NULL;
        }
    }
    return n;
}

static int on_alias(builder *b, const yaml_event_t *ev)
{
    spec_pos at = mark_pos(b, ev->start_mark);
    const char *name = (const char *)ev->data.alias.anchor;
    const anchor *a = find_anchor(b, name);
    if (a == NULL) {
        spec_diags_add(b->diags, at.file, at.line, at.col, "alias '*%.64s' has no anchor", name);
        return -EINVAL;
    }
    if (!a->complete) {
        spec_diags_add(b->diags, at.file, at.line, at.col,
                       "alias '*%.64s' refers to a node that contains it", name);
        return -EINVAL;
    }
    if (b->depth + a->node->height > SPEC_YAML_MAX_DEPTH) {
        spec_diags_add(b->diags, at.file, at.line, at.col, "nesting deeper than %u levels",
                       SPEC_YAML_MAX_DEPTH);
        return -EINVAL;
    }
    int rc = count_node(b, at, a->node->size, subtree_bytes(a->node));
    if (rc < 0)
        return rc;
    spec_ynode *copy = node_copy(b, a->node);
    if (copy == NULL)
        return -ENOMEM;
    copy->pos = at;
    return attach(b, copy);
}

static int on_scalar(builder *b, const yaml_event_t *ev)
{
    spec_pos at = mark_pos(b, ev->start_mark);
    size_t len = ev->data.scalar.length;
    int rc = count_node(b, at, 1, len);
    if (rc < 0)
        return rc;
    spec_ynode *n = node_new(b, SPEC_YSCALAR, ev->start_mark);
    if (n == NULL)
        return -ENOMEM;
    n->text = arena_alloc(b, len + 1);
    if (n->text == NULL)
        return -ENOMEM;
    memcpy(n->text, ev->data.scalar.value, len);
    n->text[len] = '\0';
    n->len = len;
    const char *tag = (const char *)ev->data.scalar.tag;
    n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
               (tag == NULL || strcmp(tag, YAML_STR_TAG) != 0);
    if ((rc = add_anchor(b, ev->data.scalar.anchor, n, true, NULL)) < 0)
        return rc;
    return attach(b, n);
}

static int on_start(builder *b, const yaml_event_t *ev, spec_ynode_kind kind,
                    const yaml_char_t *anchor_name)
{
    spec_pos at = mark_pos(b, ev->start_mark);
    if (b->depth >= SPEC_YAML_MAX_DEPTH) {
        spec_diags_add(b->diags, at.file, at.line, at.col, "nesting deeper than %u levels",
                       SPEC_YAML_MAX_DEPTH);
        return -EINVAL;
    }
    int rc = count_node(b, at, 1, 0);
    if (rc < 0)
        return rc;
    spec_ynode *n = node_new(b, kind, ev->start_mark);
    if (n == NULL)
        return -ENOMEM;
    if ((rc = attach(b, n)) < 0)
        return rc;
    size_t idx = 0;
    if ((rc = add_anchor(b, anchor_name, n, false, &idx)) < 0)
        return rc;
    b->stack[b->depth++] = (frame){n, NULL, idx};
    return 0;
}

static void on_end(builder *b)
{
    if (b->depth == 0)
        return;
    frame *f = &b->stack[--b->depth];
    spec_ynode *n = f->node;
    f->pending_key = NULL; /* never set by a well-formed stream; the arena holds it */
    n->size = 1;
    n->height = 1;
    for (size_t i = 0; i < n->n; i++) {
        const spec_ynode *kids[2] = {n->kind == SPEC_YSEQ ? n->items[i] : n->pairs[i].key,
                                     n->kind == SPEC_YSEQ ? NULL : n->pairs[i].value};
        for (int k = 0; k < 2; k++) {
            if (kids[k] == NULL)
                continue;
            n->size += kids[k]->size;
            if (kids[k]->height + 1 > n->height)
                n->height = kids[k]->height + 1;
        }
    }
    if (f->anchor_idx > 0)
        b->anchors[f->anchor_idx - 1].complete = true;
}

/* Drops whatever a failed or finished document left behind. */
static void reset_doc(builder *b)
{
    while (b->depth > 0)
        b->stack[--b->depth].pending_key = NULL;
    b->root = NULL;
    drop_anchors(b);
    arena_reset(b, false);
}

/* A fresh key for the anchor-name hash. getrandom() rarely fails; the fallback (clock, addresses)
 * still differs from run to run, which is what matters against precomputed collisions. */
static void hash_key(uint64_t key[2])
{
    if (getrandom(key, 2 * sizeof(key[0]), GRND_NONBLOCK) == (ssize_t)(2 * sizeof(key[0])))
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    key[0] = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)key;
    key[1] = (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)&hash_key;
}

int spec_yaml_load_mem(const char *buf, size_t len, const char *file, spec_yaml_doc_fn fn, void *ud,
                       spec_diags *diags)
{
    builder b;
    memset(&b, 0, sizeof(b));
    b.file = file;
    b.buf = (const unsigned char *)buf;
    b.len = len;
    b.bom = len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0;
    b.diags = diags;
    hash_key(b.key);
    if (len > SPEC_YAML_MAX_FILE_BYTES) {
        /* A file is read only up to one byte past the limit, so len is not its size. */
        spec_diags_add(diags, file, 0, 0, "file too large: more than %u bytes",
                       SPEC_YAML_MAX_FILE_BYTES);
        return -EINVAL;
    }

    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        spec_diags_add(diags, file, 0, 0, "out of memory while parsing");
        return -ENOMEM;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
    spec_pos doc_pos = {file, 1, 1};
    int rc = 0;
    bool done = false;
    while (!done && rc == 0) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            parser_error(&b, &p);
            rc = p.error == YAML_MEMORY_ERROR ? -ENOMEM : -EINVAL;
            break;
        }
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            reset_doc(&b);
            doc_pos = mark_pos(&b, ev.start_mark);
            break;
        case YAML_DOCUMENT_END_EVENT:
            rc = fn(ud, b.root, doc_pos);
            reset_doc(&b);
            break;
        case YAML_SCALAR_EVENT:
            rc = on_scalar(&b, &ev);
            break;
        case YAML_SEQUENCE_START_EVENT:
            rc = on_start(&b, &ev, SPEC_YSEQ, ev.data.sequence_start.anchor);
            break;
        case YAML_MAPPING_START_EVENT:
            rc = on_start(&b, &ev, SPEC_YMAP, ev.data.mapping_start.anchor);
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            on_end(&b);
            break;
        case YAML_ALIAS_EVENT:
            rc = on_alias(&b, &ev);
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    if (rc == -ENOMEM)
        spec_diags_add(diags, file, 0, 0, "out of memory while parsing");
    reset_doc(&b);
    arena_reset(&b, true);
    yaml_parser_delete(&p);
    return rc;
}

int spec_yaml_load_file(const char *path, const char *file, spec_yaml_doc_fn fn, void *ud,
                        spec_diags *diags)
{
    /* O_NONBLOCK: opening a FIFO nobody writes to would otherwise wait for a writer forever
     * (a daemon's loop included). A file named explicitly may be a pipe (`-f <(git show ...)`),
     * so reads block again once open; a FIFO with no writer then reads as empty. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        int err = errno;
        spec_diags_add(diags, file, 0, 0, "cannot read: %s", strerror(err));
        return -err;
    }
    struct stat st;
    int flags = 0;
    if (fstat(fd, &st) < 0 || S_ISDIR(st.st_mode) ||
        (!S_ISREG(st.st_mode) &&
         ((flags = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0))) {
        int err = S_ISDIR(st.st_mode) ? EISDIR : errno;
        spec_diags_add(diags, file, 0, 0, "cannot read: %s", strerror(err));
        close(fd);
        return -err;
    }
    /* Read up to one byte past the limit so an oversized file is reported, not truncated. The
     * first buffer holds the whole file as stat sees it (one read, no copies while growing). */
    size_t cap = 64 * 1024, len = 0;
    if (S_ISREG(st.st_mode) && st.st_size > 0 && (uint64_t)st.st_size <= SPEC_YAML_MAX_FILE_BYTES)
        cap = (size_t)st.st_size + 1;
    char *buf = malloc(cap);
    int rc = 0;
    while (buf != NULL) {
        if (len == cap) {
            if (cap > SPEC_YAML_MAX_FILE_BYTES)
                break;
            char *grown = realloc(buf, cap * 2);
            if (grown == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = grown;
            cap *= 2;
        }
        ssize_t got = read(fd, buf + len, cap - len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            rc = -errno;
            spec_diags_add(diags, file, 0, 0, "cannot read: %s", strerror(errno));
            break;
        }
        if (got == 0)
            break;
        len += (size_t)got;
    }
    close(fd);
    if (buf == NULL) {
        spec_diags_add(diags, file, 0, 0, "out of memory while reading");
        return -ENOMEM;
    }
    if (rc == 0)
        rc = spec_yaml_load_mem(buf, len, file, fn, ud, diags);
    free(buf);
    return rc;
}

bool spec_ynode_is_null(const spec_ynode *n)
{
    if (n == NULL)
        return true;
    if (n->kind != SPEC_YSCALAR || !n->plain)
        return false;
    /* By length first: this runs for every value the loaders read. A plain scalar holds no NUL. */
    switch (n->len) {
    case 0:
        return true;
    case 1:
        return n->text[0] == '~';
    case 4:
        return (n->text[0] == 'n' || n->text[0] == 'N') &&
               (!strcmp(n->text, "null") || !strcmp(n->text, "Null") || !strcmp(n->text, "NULL"));
    default:
        return false;
    }
}

int spec_ynode_bool(const spec_ynode *n, bool *ret_value)
{
    if (n == NULL || n->kind != SPEC_YSCALAR || !n->plain || n->len < 4 || n->len > 5)
        return -EINVAL;
    if (!strcmp(n->text, "true") || !strcmp(n->text, "True") || !strcmp(n->text, "TRUE")) {
        *ret_value = true;
        return 0;
    }
    if (!strcmp(n->text, "false") || !strcmp(n->text, "False") || !strcmp(n->text, "FALSE")) {
        *ret_value = false;
        return 0;
    }
    return -EINVAL;
}

/* A plain scalar that YAML would read as an integer or a float. */
static bool looks_numeric(const char *s)
{
    const char *p = s;
    if (*p == '+' || *p == '-')
        p++;
    if (*p == '\0')
        return false;
    bool digits = false, dot = false;
    for (; *p; p++) {
        if (*p >= '0' && *p <= '9')
            digits = true;
        else if (*p == '.' && !dot)
            dot = true;
        else
            return false;
    }
    return digits;
}

const char *spec_ynode_describe(const spec_ynode *n, char *buf, size_t size)
{
    bool b;
    if (n == NULL || spec_ynode_is_null(n))
        snprintf(buf, size, "null");
    else if (n->kind == SPEC_YSEQ)
        snprintf(buf, size, n->n == 0 ? "an empty list" : "a list");
    else if (n->kind == SPEC_YMAP)
        snprintf(buf, size, n->n == 0 ? "an empty mapping" : "a mapping");
    else if (spec_ynode_bool(n, &b) == 0)
        snprintf(buf, size, "boolean %s", n->text);
    else {
        /* Quote about 40 bytes (never cutting a UTF-8 character), escaping control characters
         * and quotes so a message stays one unambiguous line. */
        char text[200];
        size_t o = 0;
        for (size_t i = 0; i < n->len && o + 8 < sizeof(text); i++) {
            unsigned char c = (unsigned char)n->text[i];
            if (i >= 40 && (c & 0xC0) != 0x80) {
                memcpy(text + o, "...", 3);
                o += 3;
                break;
            }
            if (c < 0x20 || c == 0x7F || c == '\'') {
                o += (size_t)snprintf(text + o, sizeof(text) - o, "\\x%02x", c);
            } else {
                text[o++] = (char)c;
            }
        }
        text[o] = '\0';
        if (n->plain && looks_numeric(n->text) && n->len <= 40)
            snprintf(buf, size, "number %s", text);
        else
            snprintf(buf, size, "string '%s'", text);
    }
    return buf;
}

const spec_ynode *spec_ynode_get(const spec_ynode *map, const char *key)
{
    if (map == NULL || map->kind != SPEC_YMAP)
        return NULL;
    /* Lengths first: the loaders look up every known key of every entry. A key holding a NUL
     * byte never equals a C string, as with strcmp. */
    size_t len = strlen(key);
    for (size_t i = 0; i < map->n; i++) {
        const spec_ynode *k = map->pairs[i].key;
        if (k->kind == SPEC_YSCALAR && k->len == len && memcmp(k->text, key, len) == 0)
            return map->pairs[i].value;
    }
    return NULL;
}

/* Orders pair indices by key text (length, then bytes), then by position, so equal keys are
 * adjacent with the first one leading. */
static int cmp_key_idx(const void *a, const void *b, void *ud)
{
    const spec_ynode *map = ud;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    const spec_ynode *x = map->pairs[i].key, *y = map->pairs[j].key;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    int c = memcmp(x->text, y->text, x->len);
    if (c != 0)
        return c;
    return i < j ? -1 : i > j;
}

size_t spec_ymap_first_dup(const spec_ynode *map, size_t i)
{
    if (map == NULL || map->kind != SPEC_YMAP || i >= map->n)
        return SIZE_MAX;
    const spec_ynode *k = map->pairs[i].key;
    if (k->kind != SPEC_YSCALAR)
        return SIZE_MAX;
    for (size_t j = 0; j < i; j++) {
        const spec_ynode *o = map->pairs[j].key;
        if (o->kind == SPEC_YSCALAR && o->len == k->len && memcmp(o->text, k->text, k->len) == 0)
            return j;
    }
    return SIZE_MAX;
}

int spec_ymap_duplicates(const spec_ynode *map, size_t **ret_first)
{
    size_t n = map->kind == SPEC_YMAP ? map->n : 0;
    size_t *first = malloc((n ? n : 1) * sizeof(*first));
    if (first != NULL && n <= SPEC_YMAP_SMALL) {
        for (size_t i = 0; i < n; i++)
            first[i] = spec_ymap_first_dup(map, i);
        *ret_first = first;
        return 0;
    }
    size_t *order = malloc((n ? n : 1) * sizeof(*order));
    if (first == NULL || order == NULL) {
        free(first);
        free(order);
        return -ENOMEM;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        first[i] = SIZE_MAX;
        if (map->pairs[i].key->kind == SPEC_YSCALAR)
            order[m++] = i;
    }
    qsort_r(order, m, sizeof(*order), cmp_key_idx, (void *)map);
    for (size_t g = 0, i = 1; i < m; i++) {
        const spec_ynode *lead = map->pairs[order[g]].key, *k = map->pairs[order[i]].key;
        if (lead->len == k->len && memcmp(lead->text, k->text, k->len) == 0)
            first[order[i]] = order[g];
        else
            g = i; /* a different text starts a new group */
    }
    free(order);
    *ret_first = first;
    return 0;
}

/* Edit distance between two short words, with a cap to keep hostile keys cheap. */
static unsigned distance(const char *a, const char *b, unsigned cap)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return cap + 1;
    if ((la > lb ? la - lb : lb - la) > cap)
        return cap + 1;
    unsigned row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = (unsigned)j;
    for (size_t i = 1; i <= la; i++) {
        unsigned diag = row[0];
        row[0] = (unsigned)i;
        for (size_t j = 1; j <= lb; j++) {
            unsigned up = row[j];
            unsigned cost = a[i - 1] == b[j - 1] ? 0 : 1;
            unsigned best = diag + cost;
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const char *spec_suggest(const char *word, const char *const *known, size_t n_known,
                         unsigned max_distance)
{
    const char *best = NULL;
    unsigned best_d = max_distance + 1;
    for (size_t i = 0; i < n_known; i++) {
        unsigned d = distance(word, known[i], max_distance);
        if (d < best_d) {
            best_d = d;
            best = known[i];
        }
    }
    return best;
}

size_t spec_utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            n++;
    return n;
}

/* Length of a valid UTF-8 sequence at s (1-4), or 0 when the bytes are not valid UTF-8. */
static size_t utf8_seq(const unsigned char *s)
{
    if (s[0] < 0x80)
        return 1;
    size_t n = (s[0] & 0xE0) == 0xC0   ? 2
               : (s[0] & 0xF0) == 0xE0 ? 3
               : (s[0] & 0xF8) == 0xF0 ? 4
                                       : 0;
    if (n == 0 || (n == 2 && s[0] < 0xC2) || (n == 4 && s[0] > 0xF4))
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return n;
}

void spec_text_sanitize(const char *in, char *out, size_t size)
{
    size_t o = 0;
    const unsigned char *s = (const unsigned char *)in;
    if (size == 0)
        return;
    while (*s && o + 5 < size) {
        size_t n = utf8_seq(s);
        if (n == 0) {
            out[o++] = '?';
            s++;
        } else if (n == 1 && (*s < 0x20 || *s == 0x7F)) {
            o += (size_t)snprintf(out + o, size - o, "\\x%02x", *s);
            s++;
        } else {
            memcpy(out + o, s, n);
            o += n;
            s += n;
        }
    }
    out[o] = '\0';
}
