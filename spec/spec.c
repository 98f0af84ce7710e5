/* Manifest loader (spec.h): finds the files, reads every document through spec_yaml, checks each
 * entry against the schema in spec/README.md and the API's rules, then checks identities
 * across all files and builds the sorted desired set. Every problem becomes one diagnostic; a
 * run reports all of them. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "spec.h"
#include "spec_diag_int.h"
#include "spec_known.h"
#include "spec_rules.h"
#include "spec_rules_int.h"
#include "spec_yaml.h"

#define MAX_DIR_DEPTH 32
#define MAX_LOAD_THREADS 8 /* beyond this, libyaml's work is no longer what a load waits for */

/* Quotes user text in a message as "%.*s%s": at most 64 bytes, then "..." when cut. */
#define CLIP(s) 64, (s), (strlen(s) > 64 ? "..." : "")

typedef struct file_ent {
    char *path;
    dev_t dev;
    ino_t ino;
    mode_t mode;
    off_t size;
    struct timespec mtime, ctime;
} file_ent;

typedef struct loader {
    spec_diags *diags;
    int io_err; /* first I/O or allocation errno (negative), else 0 */
    file_ent *files;
    size_t n_files;
    spec_image *images;
    size_t n_images;
    spec_ecs_image *ecs;
    size_t n_ecs;
    char **regions;
    spec_pos *region_pos; /* where each entry of regions was declared (same count) */
    size_t n_regions;
    size_t docs; /* non-empty documents in the current file */
} loader;

/* Grows a typed array by one slot; returns the slot or NULL (array untouched). The capacity is
 * implied by the count: the array is reallocated to twice its size when the count reaches a power
 * of two, so loading n entries costs log n reallocations. Counts may shrink (the capacity then
 * stays above what the rule implies), never grow by other means. */
static void *grow(void *arrp, size_t *n, size_t elem)
{
    void **arr = arrp;
    if ((*n & (*n - 1)) == 0) {
        size_t cap = *n ? *n * 2 : 1;
        if (cap > SIZE_MAX / elem)
            return NULL;
        void *g = realloc(*arr, cap * elem);
        if (g == NULL)
            return NULL;
        *arr = g;
    }
    char *slot = (char *)*arr + *n * elem;
    memset(slot, 0, elem);
    (*n)++;
    return slot;
}

static void oom(loader *L)
{
    if (L->io_err == 0)
        L->io_err = -ENOMEM;
}

__attribute__((format(printf, 3, 4))) static void at(loader *L, spec_pos p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    spec_diags_vadd_clean(L->diags, p, fmt, ap);
    va_end(ap);
}

/* ---- Finding files ---------------------------------------------------------------------- */

static bool yaml_name(const char *name)
{
    size_t len = strlen(name);
    return (len > 5 && strcmp(name + len - 5, ".yaml") == 0) ||
           (len > 4 && strcmp(name + len - 4, ".yml") == 0);
}

static void add_file(loader *L, const char *path, const struct stat *st)
{
    file_ent *f = grow(&L->files, &L->n_files, sizeof(*f));
    if (f == NULL || (f->path = strdup(path)) == NULL) {
        if (f != NULL)
            L->n_files--;
        oom(L);
        return;
    }
    f->dev = st->st_dev;
    f->ino = st->st_ino;
    f->mode = st->st_mode;
    f->size = st->st_size;
    f->mtime = st->st_mtim;
    f->ctime = st->st_ctim;
}

/* Walks a directory like `find DIR -name '*.y*ml'`: hidden entries (.git) are skipped and
 * symbolic links to directories are not followed, so a link loop cannot run away. */
static void walk(loader *L, const char *dir, unsigned depth)
{
    if (depth > MAX_DIR_DEPTH) {
        spec_diags_add(L->diags, dir, 0, 0, "directories nested deeper than %u levels",
                       MAX_DIR_DEPTH);
        return;
    }
    DIR *d = opendir(dir);
    if (d == NULL) {
        int err = errno;
        spec_diags_add(L->diags, dir, 0, 0, "cannot read directory: %s", strerror(err));
        if (L->io_err == 0)
            L->io_err = -err;
        return;
    }
    size_t dlen = strlen(dir);
    bool slash = dlen > 0 && dir[dlen - 1] == '/';
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char *child = NULL;
        if (asprintf(&child, "%s%s%s", dir, slash ? "" : "/", e->d_name) < 0) {
            oom(L);
            break;
        }
        struct stat lst, st;
        if (lstat(child, &lst) == 0 && S_ISDIR(lst.st_mode)) {
            walk(L, child, depth + 1);
        } else if (yaml_name(e->d_name)) {
            /* A manifest that cannot be read (a dangling link, a file gone mid-walk, a FIFO) is
             * an error, never skipped: its images would drop out of the desired set and prune
             * would delete them. A link to a directory is not followed, as above. */
            if (stat(child, &st) < 0) {
                int err = errno;
                spec_diags_add(L->diags, child, 0, 0, "cannot read: %s", strerror(err));
                if (L->io_err == 0)
                    L->io_err = -err;
            } else if (S_ISREG(st.st_mode)) {
                add_file(L, child, &st);
            } else if (!S_ISDIR(st.st_mode)) {
                spec_diags_add(L->diags, child, 0, 0, "cannot read: not a regular file");
                if (L->io_err == 0)
                    L->io_err = -EINVAL;
            }
        }
        free(child);
    }
    closedir(d);
}

static int cmp_file(const void *a, const void *b)
{
    return strcmp(((const file_ent *)a)->path, ((const file_ent *)b)->path);
}

/* A file's place in path order, sorted by identity by drop_same_files. */
typedef struct file_id {
    dev_t dev;
    ino_t ino;
    size_t at;
} file_id;

static int cmp_file_id(const void *a, const void *b)
{
    const file_id *x = a, *y = b;
    if (x->dev != y->dev)
        return x->dev < y->dev ? -1 : 1;
    if (x->ino != y->ino)
        return x->ino < y->ino ? -1 : 1;
    return x->at < y->at ? -1 : x->at > y->at;
}

/* Keeps the first, in path order, of the files that are one file (the same path given twice, or
 * links): the files sorted by identity, each one after the first of its run is dropped. Sorting
 * keeps 40,000 files at n log n, where comparing every pair took seconds. Called by find_files
 * with L->files sorted by path. */
static void drop_same_files(loader *L)
{
    file_id *ids = calloc(L->n_files, sizeof(*ids));
    if (ids == NULL) {
        oom(L);
        return;
    }
    for (size_t i = 0; i < L->n_files; i++)
        ids[i] = (file_id){.dev = L->files[i].dev, .ino = L->files[i].ino, .at = i};
    qsort(ids, L->n_files, sizeof(*ids), cmp_file_id);
    for (size_t i = 1; i < L->n_files; i++)
        if (ids[i].dev == ids[i - 1].dev && ids[i].ino == ids[i - 1].ino) {
            free(L->files[ids[i].at].path);
            L->files[ids[i].at].path = NULL;
        }
    free(ids);
    size_t out = 0;
    for (size_t i = 0; i < L->n_files; i++)
        if (L->files[i].path != NULL)
            L->files[out++] = L->files[i];
    L->n_files = out;
}

/* Collects, sorts and de-duplicates (same path, or the same file through two paths). */
static void find_files(loader *L, const char *const *paths, size_t n_paths)
{
    if (n_paths == 0) {
        spec_diags_add(L->diags, NULL, 0, 0, "no manifest files: no paths given");
        return;
    }
    for (size_t i = 0; i < n_paths; i++) {
        struct stat st;
        if (stat(paths[i], &st) < 0) {
            int err = errno;
            spec_diags_add(L->diags, paths[i], 0, 0, "cannot read: %s", strerror(err));
            if (L->io_err == 0)
                L->io_err = -err;
            continue;
        }
        size_t before = L->n_files, said = L->diags->n;
        if (S_ISDIR(st.st_mode))
            walk(L, paths[i], 0);
        else
            add_file(L, paths[i], &st); /* named explicitly: read whatever its suffix */
        /* An empty directory is an error; one whose walk already said what was wrong (too
         * deep, unreadable) is not reported twice. */
        if (S_ISDIR(st.st_mode) && L->n_files == before && L->diags->n == said)
            spec_diags_add(L->diags, paths[i], 0, 0,
                           "no manifest files (*.yaml, *.yml) in this directory");
    }
    if (L->n_files > 1) {
        qsort(L->files, L->n_files, sizeof(*L->files), cmp_file);
        drop_same_files(L);
    }
}

/* ---- Schema ----------------------------------------------------------------------------- */

static const char *const doc_keys[] = {"region", "custom_images", "ecs_images"};
static const char *const image_keys[] = {"name",
                                         "instance_id",
                                         "system_snapshot_id",
                                         "data_snapshot_id",
                                         "description",
                                         "resource_group_id",
                                         "tags",
                                         "share_to_ecs",
                                         "protect",
                                         "adopt",
                                         "share_to_accounts"};
/* Indices into image_keys, in the same order. */
enum {
    K_NAME,
    K_INSTANCE,
    K_SYSTEM,
    K_DATA,
    K_DESCRIPTION,
    K_GROUP,
    K_TAGS,
    K_SHARE,
    K_PROTECT,
    K_ADOPT,
    K_ACCOUNTS
};
static const char *const ecs_keys[] = {"image_id", "ensure", "force"};
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))
_Static_assert(K_ACCOUNTS + 1 == N_OF(image_keys), "K_* must index image_keys");

/* Checks a mapping's keys: strings, known (with a suggestion), not repeated. */
static void check_keys(loader *L, const spec_ynode *map, const char *const *known, size_t n_known,
                       const char *what)
{
    char desc[256];
    size_t *dup = NULL;
    bool small = map->n <= SPEC_YMAP_SMALL; /* then pair by pair, without allocating */
    if (!small && spec_ymap_duplicates(map, &dup) < 0) {
        oom(L);
        return;
    }
    for (size_t i = 0; i < map->n; i++) {
        const spec_ynode *k = map->pairs[i].key;
        if (k->kind != SPEC_YSCALAR || spec_ynode_is_null(k)) {
            at(L, k->pos, "keys must be strings, got %s",
               spec_ynode_describe(k, desc, sizeof(desc)));
            continue;
        }
        if (known != NULL && strlen(k->text) != k->len) { /* tag keys: tag_rules say it */
            at(L, k->pos, "keys must not contain NUL characters, got %s",
               spec_ynode_describe(k, desc, sizeof(desc)));
            continue;
        }
        size_t d = small ? spec_ymap_first_dup(map, i) : dup[i];
        bool first = d == SIZE_MAX;
        if (!first) {
            const spec_ynode *o = map->pairs[d].key;
            at(L, k->pos, "duplicate key '%.*s%s' (first at %s:%u:%u)", CLIP(k->text), o->pos.file,
               o->pos.line, o->pos.col);
        }
        if (!first || known == NULL)
            continue;
        bool ok = false;
        for (size_t j = 0; j < n_known && !ok; j++)
            ok = k->text[0] == known[j][0] && strlen(known[j]) == k->len &&
                 memcmp(k->text, known[j], k->len) == 0;
        if (ok)
            continue;
        const char *s = spec_suggest(k->text, known, n_known, 2);
        if (s != NULL) {
            at(L, k->pos, "unknown key '%.*s%s' in %s; did you mean '%s'?", CLIP(k->text), what, s);
        } else {
            char list[512] = "";
            for (size_t j = 0; j < n_known; j++) {
                strncat(list, known[j], sizeof(list) - strlen(list) - 1);
                if (j + 1 < n_known)
                    strncat(list, ", ", sizeof(list) - strlen(list) - 1);
            }
            at(L, k->pos, "unknown key '%.*s%s' in %s (known keys: %s)", CLIP(k->text), what, list);
        }
    }
    free(dup);
}

/* Finds the value of each known key of a mapping in one pass: vals[j] is the value of the first
 * pair whose key is known[j] (as spec_ynode_get finds it), or NULL. Entries read many keys; one
 * pass costs less than a lookup each. */
static void find_keys(const spec_ynode *map, const char *const *known, size_t n_known,
                      const spec_ynode **vals)
{
    for (size_t j = 0; j < n_known; j++)
        vals[j] = NULL;
    for (size_t i = 0; i < map->n; i++) {
        const spec_ynode *k = map->pairs[i].key;
        if (k->kind != SPEC_YSCALAR || k->len == 0)
            continue;
        for (size_t j = 0; j < n_known; j++)
            if (vals[j] == NULL && k->text[0] == known[j][0] && strlen(known[j]) == k->len &&
                memcmp(k->text, known[j], k->len) == 0) {
                vals[j] = map->pairs[i].value;
                break;
            }
    }
}

/* Reads a string field whose value is v (NULL when absent; key names it in messages). Returns 1
 * with *ret (malloc'd) when present and a string, 0 when absent, -1 after a diagnostic. Numbers
 * are accepted as their text; booleans, null and collections are type errors. */
static int get_string(loader *L, const spec_ynode *v, const char *key, char **ret)
{
    char desc[256];
    bool b;
    if (v == NULL)
        return 0;
    if (v->kind != SPEC_YSCALAR || spec_ynode_is_null(v) || spec_ynode_bool(v, &b) == 0) {
        at(L, v->pos, "'%s' must be a string, got %s", key,
           spec_ynode_describe(v, desc, sizeof(desc)));
        return -1;
    }
    if (memchr(v->text, '\0', v->len) != NULL) {
        at(L, v->pos, "'%s' must not contain NUL characters", key);
        return -1;
    }
    if ((*ret = malloc(v->len + 1)) == NULL) {
        oom(L);
        return -1;
    }
    memcpy(*ret, v->text, v->len + 1);
    return 1;
}

/* Reads a boolean field: only true/false (YAML 1.1 yes/no/on/off are refused on purpose, since
 * a YAML 1.2 reader would see strings there). */
static int get_bool(loader *L, const spec_ynode *v, const char *key, bool *ret)
{
    char desc[256];
    if (v == NULL)
        return 0;
    if (spec_ynode_bool(v, ret) < 0) {
        at(L, v->pos, "'%s' must be a boolean (true or false), got %s", key,
           spec_ynode_describe(v, desc, sizeof(desc)));
        return -1;
    }
    return 1;
}

/* Reports a required key whose value v is absent from map. */
static void require(loader *L, const spec_ynode *map, const spec_ynode *v, const char *key,
                    const char *what)
{
    if (v == NULL)
        at(L, map->pos, "missing required key '%s' in %s", key, what);
}

/* Reads an optional id field and checks its shape; *ret stays NULL when absent or invalid. */
static void get_id(loader *L, const spec_ynode *v, const char *key, spec_id_kind kind, char **ret)
{
    char *s = NULL;
    if (get_string(L, v, key, &s) <= 0)
        return;
    const char *why = spec_check_id(kind, s);
    if (why != NULL) {
        at(L, v->pos, "invalid %s '%.*s%s': %s", key, CLIP(s), why);
        free(s);
        return;
    }
    *ret = s;
}

static void read_tags(loader *L, const spec_ynode *v, spec_image *img)
{
    char desc[256];
    if (v->kind != SPEC_YMAP) {
        at(L, v->pos, "'tags' must be a mapping of tag key to value, got %s",
           spec_ynode_describe(v, desc, sizeof(desc)));
        return;
    }
    check_keys(L, v, NULL, 0, NULL); /* only the key type and duplicates matter here */
    size_t limit = img->protect ? SPEC_MAX_USER_TAGS - 1 : SPEC_MAX_USER_TAGS;
    if (v->n > limit)
        at(L, v->pos, "too many tags: %zu (at most %zu%s)", v->n, limit,
           img->protect ? " with protect: true, since imgrecon adds imgrecon/owner and "
                          "imgrecon/protect"
                        : ", since imgrecon adds imgrecon/owner");
    img->tags = calloc(v->n ? v->n : 1, sizeof(*img->tags));
    if (img->tags == NULL) {
        oom(L);
        return;
    }
    for (size_t i = 0; i < v->n; i++) {
        const spec_ynode *k = v->pairs[i].key, *val = v->pairs[i].value;
        bool b;
        if (k->kind != SPEC_YSCALAR || spec_ynode_is_null(k))
            continue; /* reported by check_keys */
        const char *why = strlen(k->text) != k->len ? "must not contain NUL characters"
                                                    : spec_check_tag_key(k->text);
        if (why != NULL) {
            at(L, k->pos, "invalid tag key '%.*s%s': %s", CLIP(k->text), why);
            continue;
        }
        if (strncmp(k->text, SPEC_RESERVED_TAG_PREFIX, strlen(SPEC_RESERVED_TAG_PREFIX)) == 0) {
            at(L, k->pos, "tag key '%.64s' is reserved: imgrecon manages the '%s' prefix", k->text,
               SPEC_RESERVED_TAG_PREFIX);
            continue;
        }
        if (val->kind != SPEC_YSCALAR || spec_ynode_is_null(val) || spec_ynode_bool(val, &b) == 0) {
            at(L, val->pos,
               "value of tag '%.64s' must be a string (quote it; '' for empty), got %s", k->text,
               spec_ynode_describe(val, desc, sizeof(desc)));
            continue;
        }
        why = strlen(val->text) != val->len ? "must not contain NUL characters"
                                            : spec_check_tag_value(val->text);
        if (why != NULL) {
            at(L, val->pos, "invalid value for tag '%.64s': %s", k->text, why);
            continue;
        }
        spec_tag *t = &img->tags[img->n_tags];
        t->key = strdup(k->text);
        t->value = strdup(val->text);
        img->n_tags++;
        if (t->key == NULL || t->value == NULL)
            oom(L);
    }
}

/* qsort comparator for an array of C strings (share_to_accounts). */
static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* share_to_accounts: a list of Alibaba Cloud account ids (digits, at most 50, no repeats),
 * kept sorted so that the plan compares sets. */
static void read_accounts(loader *L, const spec_ynode *v, spec_image *img)
{
    char desc[256];
    if (v->kind != SPEC_YSEQ) {
        at(L, v->pos, "'share_to_accounts' must be a list of account ids, got %s",
           spec_ynode_describe(v, desc, sizeof(desc)));
        return;
    }
    /* Past the limit the list is refused whole: its items are not read, so that a list of
     * thousands costs no more than its length (the duplicate check below is quadratic). */
    if (v->n > SPEC_MAX_SHARE_ACCOUNTS) {
        at(L, v->pos, "too many accounts in 'share_to_accounts': %zu (at most %d)", v->n,
           SPEC_MAX_SHARE_ACCOUNTS);
        return;
    }
    img->share_to_accounts = calloc(v->n ? v->n : 1, sizeof(char *));
    if (img->share_to_accounts == NULL) {
        oom(L);
        return;
    }
    for (size_t i = 0; i < v->n; i++) {
        const spec_ynode *it = v->items[i];
        bool ok = it->kind == SPEC_YSCALAR && !spec_ynode_is_null(it) && it->len > 0 &&
                  it->len <= 20 && strlen(it->text) == it->len;
        for (size_t k = 0; ok && k < it->len; k++)
            ok = it->text[k] >= '0' && it->text[k] <= '9';
        if (!ok) {
            at(L, it->pos, "account id must be 1-20 digits, got %s",
               spec_ynode_describe(it, desc, sizeof(desc)));
            continue;
        }
        bool dup = false;
        for (size_t k = 0; k < img->n_share_to_accounts && !dup; k++)
            dup = strcmp(img->share_to_accounts[k], it->text) == 0;
        if (dup) {
            at(L, it->pos, "account %.32s is listed twice in 'share_to_accounts'", it->text);
            continue;
        }
        if ((img->share_to_accounts[img->n_share_to_accounts] = strdup(it->text)) == NULL) {
            oom(L);
            return;
        }
        img->n_share_to_accounts++;
    }
    if (img->n_share_to_accounts > 1)
        qsort(img->share_to_accounts, img->n_share_to_accounts, sizeof(char *), cmp_str);
}

static void free_image(spec_image *img)
{
    for (size_t i = 0; i < img->n_share_to_accounts; i++)
        free(img->share_to_accounts[i]);
    free(img->share_to_accounts);
    free(img->region);
    free(img->name);
    free(img->instance_id);
    free(img->system_snapshot_id);
    free(img->data_snapshot_id);
    free(img->description);
    free(img->resource_group_id);
    for (size_t i = 0; i < img->n_tags; i++) {
        free(img->tags[i].key);
        free(img->tags[i].value);
    }
    free(img->tags);
}

static void read_image(loader *L, const spec_ynode *item, const char *region)
{
    char desc[256];
    if (item->kind != SPEC_YMAP) {
        at(L, item->pos, "each custom_images entry must be a mapping, got %s",
           spec_ynode_describe(item, desc, sizeof(desc)));
        return;
    }
    const char *what = "custom_images entry";
    check_keys(L, item, image_keys, N_OF(image_keys), what);
    const spec_ynode *v[N_OF(image_keys)]; /* indexed like image_keys */
    find_keys(item, image_keys, N_OF(image_keys), v);
    require(L, item, v[K_NAME], "name", what);
    require(L, item, v[K_INSTANCE], "instance_id", what);
    require(L, item, v[K_SYSTEM], "system_snapshot_id", what);

    spec_image img;
    memset(&img, 0, sizeof(img));
    img.pos = item->pos;
    if (get_string(L, v[K_NAME], "name", &img.name) > 0) {
        const char *why = spec_check_image_name(img.name);
        if (why != NULL) {
            at(L, v[K_NAME]->pos, "invalid image name '%.*s%s': %s", CLIP(img.name), why);
            free(img.name);
            img.name = NULL;
        }
    }
    get_id(L, v[K_INSTANCE], "instance_id", SPEC_ID_INSTANCE, &img.instance_id);
    get_id(L, v[K_SYSTEM], "system_snapshot_id", SPEC_ID_SNAPSHOT, &img.system_snapshot_id);
    get_id(L, v[K_DATA], "data_snapshot_id", SPEC_ID_SNAPSHOT, &img.data_snapshot_id);
    get_id(L, v[K_GROUP], "resource_group_id", SPEC_ID_RESOURCE_GROUP, &img.resource_group_id);
    if (get_string(L, v[K_DESCRIPTION], "description", &img.description) > 0) {
        size_t chars = spec_utf8_chars(img.description, strlen(img.description));
        if (chars > SPEC_MAX_DESCRIPTION)
            at(L, v[K_DESCRIPTION]->pos, "'description' is too long: %zu characters (at most %d)",
               chars, SPEC_MAX_DESCRIPTION);
    }
    (void)get_bool(L, v[K_SHARE], "share_to_ecs", &img.share_to_ecs);
    (void)get_bool(L, v[K_PROTECT], "protect", &img.protect);
    (void)get_bool(L, v[K_ADOPT], "adopt", &img.adopt);
    const spec_ynode *accounts = v[K_ACCOUNTS];
    if (accounts != NULL && !spec_ynode_is_null(accounts))
        read_accounts(L, accounts, &img);
    const spec_ynode *tags = v[K_TAGS];
    if (tags != NULL && !spec_ynode_is_null(tags))
        read_tags(L, tags, &img);

    /* Keep entries with an identity, even incomplete ones, so duplicates are still found. */
    spec_image *slot = NULL;
    if (img.name != NULL && region != NULL && (img.region = strdup(region)) != NULL)
        slot = grow(&L->images, &L->n_images, sizeof(*slot));
    if (slot == NULL) {
        if (img.name != NULL && region != NULL)
            oom(L);
        free_image(&img);
        return;
    }
    *slot = img;
}

static void read_ecs(loader *L, const spec_ynode *item, const char *region)
{
    char desc[256];
    if (item->kind != SPEC_YMAP) {
        at(L, item->pos, "each ecs_images entry must be a mapping, got %s",
           spec_ynode_describe(item, desc, sizeof(desc)));
        return;
    }
    const char *what = "ecs_images entry";
    check_keys(L, item, ecs_keys, N_OF(ecs_keys), what);
    require(L, item, spec_ynode_get(item, "image_id"), "image_id", what);
    if (spec_ynode_get(item, "ensure") == NULL)
        at(L, item->pos, "missing required key 'ensure' in %s (write ensure: absent)", what);
    char *ensure = NULL;
    if (get_string(L, spec_ynode_get(item, "ensure"), "ensure", &ensure) > 0 &&
        strcmp(ensure, "absent") != 0)
        at(L, spec_ynode_get(item, "ensure")->pos,
           "'ensure' must be 'absent' (the only supported state), got '%.*s%s'", CLIP(ensure));
    free(ensure);
    spec_ecs_image e;
    memset(&e, 0, sizeof(e));
    e.pos = item->pos;
    get_id(L, spec_ynode_get(item, "image_id"), "image_id", SPEC_ID_ECS_IMAGE, &e.image_id);
    (void)get_bool(L, spec_ynode_get(item, "force"), "force", &e.force);
    spec_ecs_image *slot = NULL;
    if (e.image_id != NULL && region != NULL && (e.region = strdup(region)) != NULL)
        slot = grow(&L->ecs, &L->n_ecs, sizeof(*slot));
    if (slot == NULL) {
        if (e.image_id != NULL && region != NULL)
            oom(L);
        free(e.region);
        free(e.image_id);
        return;
    }
    *slot = e;
}

/* Reads a list-valued document key; null or absent means an empty list. */
static void read_list(loader *L, const spec_ynode *doc, const char *key, const char *region,
                      void (*item_fn)(loader *, const spec_ynode *, const char *))
{
    const spec_ynode *v = spec_ynode_get(doc, key);
    char desc[256];
    if (v == NULL || spec_ynode_is_null(v))
        return;
    if (v->kind != SPEC_YSEQ) {
        at(L, v->pos, "'%s' must be a list, got %s", key,
           spec_ynode_describe(v, desc, sizeof(desc)));
        return;
    }
    for (size_t i = 0; i < v->n; i++)
        item_fn(L, v->items[i], region);
}

/* spec_yaml callback: one manifest document. Empty documents are allowed and skipped. */
static int on_document(void *ud, const spec_ynode *root, spec_pos doc_pos)
{
    loader *L = ud;
    char desc[256];
    if (root == NULL || spec_ynode_is_null(root))
        return 0;
    L->docs++;
    if (root->kind != SPEC_YMAP) {
        at(L, root->pos, "a manifest document must be a mapping with a 'region' key, got %s",
           spec_ynode_describe(root, desc, sizeof(desc)));
        return 0;
    }
    check_keys(L, root, doc_keys, N_OF(doc_keys), "manifest document");
    require(L, root, spec_ynode_get(root, "region"), "region", "manifest document");
    char *region = NULL;
    if (get_string(L, spec_ynode_get(root, "region"), "region", &region) > 0 &&
        !spec_region_valid(region)) {
        at(L, spec_ynode_get(root, "region")->pos,
           "invalid region '%.*s%s': expected a region id such as cn-hangzhou", CLIP(region));
        free(region);
        region = NULL;
    }
    if (region != NULL) {
        size_t n_pos = L->n_regions;
        spec_pos *p = grow(&L->region_pos, &n_pos, sizeof(*p));
        char **slot = p ? grow(&L->regions, &L->n_regions, sizeof(*slot)) : NULL;
        if (slot == NULL) {
            oom(L);
            free(region);
            region = NULL;
        } else {
            *slot = region;
            *p = spec_ynode_get(root, "region")->pos;
        }
    }
    read_list(L, root, "custom_images", region, read_image);
    read_list(L, root, "ecs_images", region, read_ecs);
    return 0;
}

/* ---- Cross-file checks and the set ------------------------------------------------------ */

typedef struct ref {
    const char *region, *key;
    size_t idx; /* load order */
} ref;

static int cmp_ref(const void *a, const void *b)
{
    const ref *x = a, *y = b;
    int c = strcmp(x->region, y->region);
    if (c == 0)
        c = strcmp(x->key, y->key);
    if (c == 0)
        c = x->idx < y->idx ? -1 : x->idx > y->idx;
    return c;
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorts n entries by (region, key), reports later duplicates in load order, and returns the
 * sorted order as indices (NULL with n == 0 or on allocation failure). */
static size_t *sort_and_check(loader *L, size_t n, const char *(*region_of)(loader *, size_t),
                              const char *(*key_of)(loader *, size_t),
                              spec_pos (*pos_of)(loader *, size_t), const char *what)
{
    if (n == 0)
        return NULL;
    ref *r = calloc(n, sizeof(*r));
    size_t *order = calloc(n, sizeof(*order));
    size_t *first_of = calloc(n, sizeof(*first_of)); /* per load index: SIZE_MAX or first */
    size_t *later = calloc(n, sizeof(*later));
    if (r == NULL || order == NULL || first_of == NULL || later == NULL) {
        oom(L);
        free(r), free(order), free(first_of), free(later);
        return NULL;
    }
    bool sorted = true; /* manifests usually declare in order: then one pass is enough */
    for (size_t i = 0; i < n; i++) {
        r[i] = (ref){region_of(L, i), key_of(L, i), i};
        if (i > 0 && sorted && cmp_ref(&r[i - 1], &r[i]) > 0)
            sorted = false;
    }
    if (!sorted)
        qsort(r, n, sizeof(*r), cmp_ref);
    size_t n_later = 0, g = 0;
    for (size_t i = 0; i < n; i++) {
        order[i] = r[i].idx;
        first_of[r[i].idx] = SIZE_MAX;
        if (i == 0 || strcmp(r[i - 1].region, r[i].region) != 0 ||
            strcmp(r[i - 1].key, r[i].key) != 0)
            g = i; /* the first of a new (region, key) group, in load order */
        if (g != i) {
            first_of[r[i].idx] = r[g].idx;
            later[n_later++] = r[i].idx;
        }
    }
    qsort(later, n_later, sizeof(*later), cmp_size);
    for (size_t i = 0; i < n_later; i++) {
        size_t idx = later[i];
        spec_pos p = pos_of(L, idx), f = pos_of(L, first_of[idx]);
        at(L, p, "duplicate %s '%.128s' in region '%s' (first declared at %s:%u:%u)", what,
           key_of(L, idx), region_of(L, idx), f.file, f.line, f.col);
    }
    free(r), free(first_of), free(later);
    return order;
}

static const char *img_region(loader *L, size_t i)
{
    return L->images[i].region;
}
static const char *img_name(loader *L, size_t i)
{
    return L->images[i].name;
}
static spec_pos img_pos(loader *L, size_t i)
{
    return L->images[i].pos;
}
static const char *ecs_region(loader *L, size_t i)
{
    return L->ecs[i].region;
}
static const char *ecs_id(loader *L, size_t i)
{
    return L->ecs[i].image_id;
}
static spec_pos ecs_pos(loader *L, size_t i)
{
    return L->ecs[i].pos;
}

typedef struct diag_ref {
    spec_diag d;
    size_t idx;
} diag_ref;

static int cmp_diag(const void *a, const void *b)
{
    const diag_ref *x = a, *y = b;
    if (x->d.line != y->d.line)
        return x->d.line < y->d.line ? -1 : 1;
    if (x->d.col != y->d.col)
        return x->d.col < y->d.col ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Puts one file's diagnostics (those from index `first` on) in source order: the checks run key
 * by key, but a reader wants them top to bottom. Equal positions keep their order. */
static void sort_diags(spec_diags *diags, size_t first)
{
    size_t n = diags->n - first;
    if (n < 2)
        return;
    diag_ref *r = calloc(n, sizeof(*r));
    if (r == NULL)
        return; /* unsorted is still correct */
    for (size_t i = 0; i < n; i++)
        r[i] = (diag_ref){diags->v[first + i], i};
    qsort(r, n, sizeof(*r), cmp_diag);
    for (size_t i = 0; i < n; i++)
        diags->v[first + i] = r[i].d;
    free(r);
}

static void free_loader(loader *L)
{
    for (size_t i = 0; i < L->n_files; i++)
        free(L->files[i].path);
    free(L->files);
    for (size_t i = 0; i < L->n_images; i++)
        free_image(&L->images[i]);
    free(L->images);
    for (size_t i = 0; i < L->n_ecs; i++) {
        free(L->ecs[i].region);
        free(L->ecs[i].image_id);
    }
    free(L->ecs);
    for (size_t i = 0; i < L->n_regions; i++)
        free(L->regions[i]);
    free(L->regions);
    free(L->region_pos);
}

/* Orders region indices by name, then by declaration order, so the first declaration of each
 * region leads its group. */
static int cmp_region_idx(const void *a, const void *b, void *ud)
{
    const loader *L = ud;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int c = strcmp(L->regions[i], L->regions[j]);
    return c != 0 ? c : (i < j ? -1 : i > j);
}

/* Moves the distinct regions, sorted, with their first positions into set. */
static int take_regions(loader *L, spec_set *set)
{
    size_t n = L->n_regions, out = 0;
    size_t *order = malloc((n ? n : 1) * sizeof(*order));
    set->regions = calloc(n ? n : 1, sizeof(*set->regions));
    set->region_pos = calloc(n ? n : 1, sizeof(*set->region_pos));
    if (order == NULL || set->regions == NULL || set->region_pos == NULL) {
        free(order);
        free(set->regions);
        free(set->region_pos);
        set->regions = NULL;
        set->region_pos = NULL;
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    qsort_r(order, n, sizeof(*order), cmp_region_idx, L);
    for (size_t k = 0; k < n; k++) {
        size_t i = order[k];
        if (out > 0 && strcmp(set->regions[out - 1], L->regions[i]) == 0) {
            free(L->regions[i]);
            continue;
        }
        set->regions[out] = L->regions[i];
        set->region_pos[out++] = L->region_pos[i];
    }
    set->n_regions = out;
    free(order);
    free(L->regions);
    free(L->region_pos);
    L->regions = NULL;
    L->region_pos = NULL;
    L->n_regions = 0;
    return 0;
}

/* ---- Reading the files, on one thread or several ------------------------------------------ */

/* Reads one file into L: its entries, regions and diagnostics (in source order). */
static void read_file(loader *L, const file_ent *f)
{
    size_t first = L->diags->n;
    L->docs = 0;
    int rc = spec_yaml_load_file(f->path, f->path, on_document, L, L->diags);
    if (rc < 0 && rc != -EINVAL && L->io_err == 0)
        L->io_err = rc;
    /* A file without a single manifest is most likely truncated or the wrong file; with prune on,
     * reading it as "nothing wanted" could delete images. */
    if (rc == 0 && L->docs == 0)
        spec_diags_add(L->diags, f->path, 1, 1,
                       "no manifest in this file: expected a document with 'region'");
    sort_diags(L->diags, first);
}

/* One file's results when the files are read in parallel: a loader of its own (which never
 * touches files) and its diagnostics. */
typedef struct part {
    loader L;
    spec_diags diags;
} part;

/* The shared state of a parallel read: every thread takes the next unread file until none is
 * left, so a large file does not hold up the others' share. */
typedef struct reading {
    const loader *src; /* borrowed: only its files are read, never written while threads run */
    part *parts;       /* one per file */
    atomic_size_t next;
} reading;

static void *read_worker(void *arg)
{
    reading *r = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&r->next, 1);
        if (i >= r->src->n_files)
            return NULL;
        read_file(&r->parts[i].L, &r->src->files[i]);
    }
}

/* The smallest power of two >= n (grow()'s capacity rule for n entries), 0 for 0. */
static size_t pow2_at_least(size_t n)
{
    size_t c = 1;
    while (c < n && c <= SIZE_MAX / 2)
        c *= 2;
    return n == 0 ? 0 : c;
}

/* Appends n entries of elem bytes to the array *arrp of *count entries; the result keeps grow()'s
 * capacity rule. -ENOMEM leaves *arrp as it was. */
static int append(void *arrp, size_t *count, const void *src, size_t n, size_t elem)
{
    void **arr = arrp;
    size_t cap = pow2_at_least(*count + n);
    if (n == 0)
        return 0;
    if (cap > SIZE_MAX / elem)
        return -ENOMEM;
    void *g = realloc(*arr, cap * elem);
    if (g == NULL)
        return -ENOMEM;
    memcpy((char *)g + *count * elem, src, n * elem);
    *arr = g;
    *count += n;
    return 0;
}

/* Moves one file's results to the end of L's, so files keep their order and the entries their
 * sequential load order. What moved is no longer the part's (its counts drop to 0); on allocation
 * failure the rest is freed with the part and L records -ENOMEM. */
static void take_part(loader *L, part *p)
{
    loader *q = &p->L;
    int rc = spec_diags_take(L->diags, &p->diags);
    if (L->io_err == 0)
        L->io_err = q->io_err;
    if (rc == 0 &&
        (rc = append(&L->images, &L->n_images, q->images, q->n_images, sizeof(*q->images))) == 0)
        q->n_images = 0;
    if (rc == 0 && (rc = append(&L->ecs, &L->n_ecs, q->ecs, q->n_ecs, sizeof(*q->ecs))) == 0)
        q->n_ecs = 0;
    if (rc == 0) {
        size_t n_pos = L->n_regions; /* region_pos has the same count as regions */
        rc = append(&L->region_pos, &n_pos, q->region_pos, q->n_regions, sizeof(*q->region_pos));
    }
    if (rc == 0 && (rc = append(&L->regions, &L->n_regions, q->regions, q->n_regions,
                                sizeof(*q->regions))) == 0)
        q->n_regions = 0;
    if (rc < 0)
        oom(L);
    free_loader(q);
    spec_diags_clear(&p->diags);
}

/* How many threads read n files of `bytes` in all, `asked` as spec_load_threads takes it. */
static unsigned read_threads(unsigned asked, size_t n_files, uint64_t bytes)
{
    unsigned n = asked;
    if (asked == 0) {
        cpu_set_t cpus;
        n = sched_getaffinity(0, sizeof(cpus), &cpus) == 0 ? (unsigned)CPU_COUNT(&cpus) : 1;
        if (bytes < SPEC_LOAD_PARALLEL_BYTES)
            n = 1;
    }
    if (n > MAX_LOAD_THREADS)
        n = MAX_LOAD_THREADS;
    return n > n_files ? (unsigned)n_files : n;
}

/* Reads every file L found. With more than one thread each file gets a part of its own, read by
 * whichever thread takes it, and the parts are moved into L in file order afterwards: the set and
 * the diagnostics are the same as one thread's, byte for byte. A thread that cannot start leaves
 * its share to the others (the calling thread reads too). */
static void read_files(loader *L, unsigned threads)
{
    uint64_t bytes = 0;
    for (size_t i = 0; i < L->n_files; i++)
        bytes += (uint64_t)L->files[i].size;
    unsigned n = read_threads(threads, L->n_files, bytes);
    reading r = {.src = L, .parts = n > 1 ? calloc(L->n_files, sizeof(part)) : NULL};
    pthread_t tid[MAX_LOAD_THREADS];
    unsigned started = 0;
    if (r.parts == NULL) {
        for (size_t i = 0; i < L->n_files; i++)
            read_file(L, &L->files[i]);
        return;
    }
    atomic_init(&r.next, 0);
    for (size_t i = 0; i < L->n_files; i++)
        r.parts[i].L.diags = &r.parts[i].diags;
    /* The threads take no signal: the caller's handlers stay where the caller expects them. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    while (started + 1 < n && pthread_create(&tid[started], NULL, read_worker, &r) == 0)
        started++;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    (void)read_worker(&r);
    for (unsigned k = 0; k < started; k++)
        (void)pthread_join(tid[k], NULL);
    for (size_t i = 0; i < L->n_files; i++)
        take_part(L, &r.parts[i]);
    free(r.parts);
}

/* ---- Stamps (spec.h) ---------------------------------------------------------------------- */

struct spec_stamp {
    file_ent *files; /* as find_files leaves them: sorted by path, one per file */
    size_t n_files;
    bool settled;
};

static int64_t ts_ns(struct timespec t)
{
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Why a stamp needs settling: a file's times come from a clock that may tick only every few
 * milliseconds (or seconds, on some filesystems), so a write right after the walk's stat can
 * leave every field as it was. A file changed within racy_ms before the walk could still change
 * unseen; as git does with its index, such a stamp is not trusted. */
int spec_stamp_take(const char *const *paths, size_t n_paths, unsigned racy_ms,
                    spec_stamp **ret_stamp)
{
    spec_diags diags;
    spec_diags_init(&diags);
    loader L;
    memset(&L, 0, sizeof(L));
    L.diags = &diags;
    struct timespec now;
    (void)clock_gettime(CLOCK_REALTIME, &now);
    find_files(&L, paths, n_paths);
    int rc = L.io_err != 0 ? L.io_err : diags.n != 0 ? -EINVAL : 0;
    spec_diags_clear(&diags);
    spec_stamp *st = rc == 0 ? calloc(1, sizeof(*st)) : NULL;
    if (rc == 0 && st == NULL)
        rc = -ENOMEM;
    if (rc < 0) {
        free_loader(&L);
        return rc;
    }
    int64_t limit = ts_ns(now) - (int64_t)racy_ms * 1000000;
    st->settled = true;
    for (size_t i = 0; i < L.n_files; i++)
        if (ts_ns(L.files[i].mtime) >= limit || ts_ns(L.files[i].ctime) >= limit)
            st->settled = false;
    st->files = L.files;
    st->n_files = L.n_files;
    L.files = NULL;
    L.n_files = 0;
    free_loader(&L);
    *ret_stamp = st;
    return 0;
}

static bool same_file(const file_ent *a, const file_ent *b)
{
    return strcmp(a->path, b->path) == 0 && a->dev == b->dev && a->ino == b->ino &&
           a->mode == b->mode && a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
           a->mtime.tv_nsec == b->mtime.tv_nsec && a->ctime.tv_sec == b->ctime.tv_sec &&
           a->ctime.tv_nsec == b->ctime.tv_nsec;
}

bool spec_stamp_unchanged(const spec_stamp *old, const spec_stamp *now)
{
    if (old == NULL || now == NULL || !old->settled || old->n_files != now->n_files)
        return false;
    for (size_t i = 0; i < old->n_files; i++)
        if (!same_file(&old->files[i], &now->files[i]))
            return false;
    return true;
}

void spec_stamp_free(spec_stamp *stamp)
{
    if (stamp == NULL)
        return;
    for (size_t i = 0; i < stamp->n_files; i++)
        free(stamp->files[i].path);
    free(stamp->files);
    free(stamp);
}

int spec_load(const char *const *paths, size_t n_paths, spec_set **ret_set, spec_diags *diags)
{
    return spec_load_threads(paths, n_paths, 0, ret_set, diags);
}

int spec_load_threads(const char *const *paths, size_t n_paths, unsigned threads,
                      spec_set **ret_set, spec_diags *diags)
{
    loader L;
    memset(&L, 0, sizeof(L));
    L.diags = diags;
    size_t diags_before = diags->n;

    find_files(&L, paths, n_paths);
    read_files(&L, threads);
    size_t *img_order = sort_and_check(&L, L.n_images, img_region, img_name, img_pos, "image");
    size_t *ecs_order =
        sort_and_check(&L, L.n_ecs, ecs_region, ecs_id, ecs_pos, "ecs_images entry");
    if (L.io_err == -ENOMEM)
        spec_diags_add(diags, NULL, 0, 0, "out of memory while loading manifests");

    int rc = L.io_err;
    if (rc == 0 && diags->n > diags_before)
        rc = -EINVAL;
    spec_set *set = rc == 0 ? calloc(1, sizeof(*set)) : NULL;
    if (rc == 0 && set == NULL) {
        spec_diags_add(diags, NULL, 0, 0, "out of memory while loading manifests");
        rc = -ENOMEM;
    }
    if (rc == 0 && ((L.n_images && !img_order) || (L.n_ecs && !ecs_order))) {
        rc = -ENOMEM; /* sort_and_check failed */
        spec_diags_add(diags, NULL, 0, 0, "out of memory while loading manifests");
        free(set);
        set = NULL;
    }
    if (rc < 0) {
        free(img_order);
        free(ecs_order);
        free_loader(&L);
        return rc;
    }

    /* Move everything into the set: images and ECS entries in sorted order, the file names
     * (which the positions point into), and the distinct regions. */
    set->images = L.n_images ? calloc(L.n_images, sizeof(*set->images)) : NULL;
    set->ecs = L.n_ecs ? calloc(L.n_ecs, sizeof(*set->ecs)) : NULL;
    set->files = calloc(L.n_files ? L.n_files : 1, sizeof(*set->files));
    if ((L.n_images && !set->images) || (L.n_ecs && !set->ecs) || !set->files) {
        free(set->images), free(set->ecs), free(set->files), free(set);
        free(img_order), free(ecs_order);
        free_loader(&L);
        spec_diags_add(diags, NULL, 0, 0, "out of memory while loading manifests");
        return -ENOMEM;
    }
    for (size_t i = 0; i < L.n_images; i++)
        set->images[i] = L.images[img_order[i]];
    set->n_images = L.n_images;
    for (size_t i = 0; i < L.n_ecs; i++)
        set->ecs[i] = L.ecs[ecs_order[i]];
    set->n_ecs = L.n_ecs;
    for (size_t i = 0; i < L.n_files; i++)
        set->files[i] = L.files[i].path;
    set->n_files = L.n_files;
    if (take_regions(&L, set) < 0) {
        /* Images, ECS entries and file names already belong to set; free them through it. */
        free(img_order), free(ecs_order);
        free(L.images), free(L.ecs), free(L.files);
        for (size_t i = 0; i < L.n_regions; i++)
            free(L.regions[i]);
        free(L.regions);
        free(L.region_pos);
        spec_set_free(set);
        spec_diags_add(diags, NULL, 0, 0, "out of memory while loading manifests");
        return -ENOMEM;
    }
    free(img_order);
    free(ecs_order);
    free(L.images);
    free(L.ecs);
    free(L.files);
    *ret_set = set;
    return 0;
}

void spec_set_free(spec_set *set)
{
    if (set == NULL)
        return;
    for (size_t i = 0; i < set->n_images; i++)
        free_image(&set->images[i]);
    free(set->images);
    for (size_t i = 0; i < set->n_ecs; i++) {
        free(set->ecs[i].region);
        free(set->ecs[i].image_id);
    }
    free(set->ecs);
    for (size_t i = 0; i < set->n_regions; i++)
        free(set->regions[i]);
    free(set->regions);
    free(set->region_pos);
    for (size_t i = 0; i < set->n_files; i++)
        free(set->files[i]);
    free(set->files);
    free(set);
}

const spec_image *spec_set_find(const spec_set *set, const char *region, const char *name)
{
    if (set == NULL || region == NULL || name == NULL)
        return NULL;
    size_t lo = 0, hi = set->n_images;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const spec_image *img = &set->images[mid];
        int c = strcmp(img->region, region);
        if (c == 0)
            c = strcmp(img->name, name);
        if (c == 0)
            return img;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

size_t spec_set_lint(const spec_set *set, spec_diags *warnings)
{
    size_t n = 0;
    for (size_t i = 0; set != NULL && i < set->n_regions; i++)
        if (!spec_region_known(set->regions[i])) {
            spec_region_warning(warnings, set->region_pos[i], set->regions[i]);
            n++;
        }
    return n;
}
