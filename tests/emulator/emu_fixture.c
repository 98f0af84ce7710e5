/* The fixture loader (see emu_fixture.h). libyaml's document API gives a node tree with every
 * node's position; one generic walker reads a mapping into a struct by a table of its keys (the
 * key, what kind of value, where it goes, whether it is required), so each object of the
 * fixture is a table plus a short function that applies defaults, checks duplicates and adds
 * it to the world. The same table frees a half-read object. */
#include "emu_fixture.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <yaml.h>

#include "emu_ops.h"
#include "emu_sig.h"
#include "emu_util.h"

typedef struct fx {
    yaml_document_t *doc;
    const char *file;
    emu_diags *d;
    emu_world *w;
    int64_t now;
    bool nomem;
} fx;

/* What a key's value is and how it is stored. */
enum kind {
    K_STR,    /* char * */
    K_STRV,   /* char ** with a size_t count at off_n */
    K_BOOL,   /* bool */
    K_DIGITS, /* char *, 1 to 20 digits */
    K_STATUS, /* char[2], "0" to "4" */
    K_TIME,   /* int64_t ms from YYYY-MM-DDThh:mm:ssZ */
    K_COUNT,  /* long >= 0 */
    K_BUSY,   /* char *: none, copying, importing or exporting */
    K_TAGS,   /* emu_tag * from a mapping, count at off_n */
    K_SHARES, /* emu_share * from a list of account ids, count at off_n */
    K_LIST,   /* yaml_node_t *: a sequence read later */
};

typedef struct field {
    const char *key;
    enum kind kind;
    size_t off;
    size_t off_n;
    bool required;
} field;

#define FIELD(type, key, kind, member, req)                                                        \
    {                                                                                              \
        key, kind, offsetof(type, member), 0, req                                                  \
    }
#define FIELDV(type, key, kind, member, count)                                                     \
    {                                                                                              \
        key, kind, offsetof(type, member), offsetof(type, count), false                            \
    }
#define N_FIELDS(t) (sizeof(t) / sizeof((t)[0]))

/* Records one problem at the node's position. */
__attribute__((format(printf, 3, 4))) static void at(fx *f, const yaml_node_t *n, const char *fmt,
                                                     ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    emu_diags_add(f->d, f->file, (unsigned)n->start_mark.line + 1,
                  (unsigned)n->start_mark.column + 1, "%s", msg);
}

static const char *scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static yaml_node_t *node(fx *f, int id)
{
    return yaml_document_get_node(f->doc, id);
}

/* A copy of a scalar, or NULL after reporting "expected a string" (or running out of memory). */
static char *str_copy(fx *f, const yaml_node_t *n, const char *key)
{
    const char *s = scalar(n);
    char *c = s ? strdup(s) : NULL;
    if (!s) {
        at(f, n, "%s: expected a string", key);
    }
    f->nomem |= s && !c;
    return c;
}

static bool digits(const char *s, size_t max)
{
    size_t len = s ? strlen(s) : 0;
    return len > 0 && len <= max && strspn(s, "0123456789") == len;
}

/* Grows *v (elements of size sz, count *n) by one zeroed element; NULL when out of memory. */
static void *grow(fx *f, void *v_ptr, size_t *n, size_t sz)
{
    void **v = v_ptr;
    char *nv = realloc(*v, (*n + 1) * sz);
    if (!nv) {
        f->nomem = true;
        return NULL;
    }
    *v = nv;
    memset(nv + *n * sz, 0, sz);
    return nv + (*n)++ * sz;
}

/* A list of strings, a mapping of tags or a list of account ids into their arrays. */
static void read_strv(fx *f, yaml_node_t *n, const char *key, char ***v, size_t *nv)
{
    if (n->type != YAML_SEQUENCE_NODE) {
        at(f, n, "%s: expected a list of strings", key);
        return;
    }
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        char *s = str_copy(f, node(f, *it), key);
        char **slot = s ? grow(f, v, nv, sizeof(char *)) : NULL;
        if (slot) {
            *slot = s;
        } else {
            free(s);
        }
    }
}

static void read_tags(fx *f, yaml_node_t *n, emu_tag **v, size_t *nv)
{
    if (n->type != YAML_MAPPING_NODE) {
        at(f, n, "%s: expected a mapping", "tags");
        return;
    }
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        char *key = str_copy(f, node(f, p->key), "tag key");
        char *value = str_copy(f, node(f, p->value), "tag value");
        for (size_t i = 0; key && i < *nv; i++) {
            if (strcmp((*v)[i].key, key) == 0) {
                at(f, node(f, p->key), "duplicate key \"%s\"", key);
            }
        }
        emu_tag *t = key && value ? grow(f, v, nv, sizeof(emu_tag)) : NULL;
        if (t) {
            *t = (emu_tag){.key = key, .value = value};
        } else {
            free(key);
            free(value);
        }
    }
}

static void read_shares(fx *f, yaml_node_t *n, emu_share **v, size_t *nv)
{
    char **ids = NULL;
    size_t n_ids = 0;
    read_strv(f, n, "share_accounts", &ids, &n_ids);
    for (size_t i = 0; i < n_ids; i++) {
        if (!digits(ids[i], 20)) {
            at(f, n, "share_accounts: \"%s\" is not an account id (digits)", ids[i]);
        }
        emu_share *s = grow(f, v, nv, sizeof(emu_share));
        if (s) {
            s->user_id = ids[i];
        } else {
            free(ids[i]);
        }
    }
    free(ids);
}

/* Reads one value of kind fd->kind into obj. */
static void read_value(fx *f, const field *fd, yaml_node_t *v, char *obj)
{
    void *dst = obj + fd->off;
    size_t *count = (size_t *)(obj + fd->off_n);
    const char *s = scalar(v);
    static const char *const busy[] = {"none", "copying", "importing", "exporting"};
    switch (fd->kind) {
    case K_STR:
        *(char **)dst = str_copy(f, v, fd->key);
        break;
    case K_STRV:
        read_strv(f, v, fd->key, dst, count);
        break;
    case K_BOOL:
        if (!s || emu_parse_bool(s, dst) < 0) {
            at(f, v, "%s: expected true or false", fd->key);
        }
        break;
    case K_DIGITS:
        if (!digits(s, 20)) {
            at(f, v, "%s: expected a number", fd->key);
        } else {
            *(char **)dst = str_copy(f, v, fd->key);
        }
        break;
    case K_STATUS:
        if (!s || strlen(s) != 1 || s[0] < '0' || s[0] > '4') {
            at(f, v, "%s: expected \"0\" to \"4\"", fd->key);
        } else {
            memcpy(dst, s, 2);
        }
        break;
    case K_TIME: {
        int64_t t = 0;
        if (emu_parse_utc(s, &t) < 0) {
            at(f, v, "%s: expected YYYY-MM-DDThh:mm:ssZ", fd->key);
        }
        *(int64_t *)dst = t * 1000;
        break;
    }
    case K_COUNT:
        if (emu_parse_long(s, 0, 1000000, dst) < 0) {
            at(f, v, "%s: expected a number >= 0", fd->key);
        }
        break;
    case K_BUSY:
        for (size_t i = 0; s && i < 4; i++) {
            if (strcmp(s, busy[i]) == 0) {
                *(char **)dst = str_copy(f, v, fd->key);
                return;
            }
        }
        at(f, v, "%s: expected none, copying, importing or exporting", fd->key);
        break;
    case K_TAGS:
        read_tags(f, v, dst, count);
        break;
    case K_SHARES:
        read_shares(f, v, dst, count);
        break;
    case K_LIST:
        if (v->type != YAML_SEQUENCE_NODE) {
            at(f, v, "%s: expected a list", fd->key);
        } else {
            *(yaml_node_t **)dst = v;
        }
        break;
    }
}

/* The walker: reads mapping n into obj by the table, reporting a non-mapping, unknown and
 * duplicate keys and missing required keys. Returns true when every required key was read. */
static bool walk(fx *f, yaml_node_t *n, const char *what, const field *t, size_t nt, void *obj)
{
    bool seen[16] = {0}; /* no table has more keys */
    if (n->type != YAML_MAPPING_NODE) {
        at(f, n, "%s: expected a mapping", what);
        return false;
    }
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node(f, p->key);
        const char *key = scalar(k);
        size_t i = 0;
        while (key && i < nt && strcmp(t[i].key, key) != 0) {
            i++;
        }
        if (!key) {
            at(f, k, "%s: keys must be strings", what);
        } else if (i == nt) {
            at(f, k, "unknown key \"%s\"", key);
        } else if (seen[i]) {
            at(f, k, "duplicate key \"%s\"", key);
        } else {
            seen[i] = true;
            read_value(f, &t[i], node(f, p->value), obj);
        }
    }
    bool complete = true;
    for (size_t i = 0; i < nt; i++) {
        /* A required string that was present but invalid has been reported already. */
        if (t[i].required && !*(char **)((char *)obj + t[i].off)) {
            if (!seen[i]) {
                at(f, n, "missing required key \"%s\"", t[i].key);
            }
            complete = false;
        }
    }
    return complete;
}

/* Frees what the table's fields of obj hold (the struct is the caller's). */
static void clear(const field *t, size_t nt, void *obj)
{
    for (size_t i = 0; i < nt; i++) {
        void *p = (char *)obj + t[i].off;
        size_t n = t[i].off_n ? *(size_t *)((char *)obj + t[i].off_n) : 0;
        if (t[i].kind == K_STR || t[i].kind == K_DIGITS || t[i].kind == K_BUSY) {
            free(*(char **)p);
        } else if (t[i].kind == K_STRV) {
            emu_strv_free(*(char ***)p, n);
        } else if (t[i].kind == K_TAGS) {
            for (size_t j = 0; j < n; j++) {
                free((*(emu_tag **)p)[j].key);
                free((*(emu_tag **)p)[j].value);
            }
            free(*(emu_tag **)p);
        } else if (t[i].kind == K_SHARES) {
            for (size_t j = 0; j < n; j++) {
                free((*(emu_share **)p)[j].user_id);
            }
            free(*(emu_share **)p);
        }
    }
}

/* A default for an optional string left out; false when out of memory. */
static bool dflt(fx *f, char **field_ptr, const char *value)
{
    if (!*field_ptr && !(*field_ptr = strdup(value))) {
        f->nomem = true;
    }
    return *field_ptr != NULL;
}

/* Calls add(f, item, ctx) for each item of sequence n. */
static void each(fx *f, yaml_node_t *n, void (*add)(fx *, yaml_node_t *, void *), void *ctx)
{
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        add(f, node(f, *it), ctx);
    }
}

/* ---- the objects ---- */

static const field account_fields[] = {
    FIELD(emu_account, "access_key_id", K_STR, access_key_id, true),
    FIELD(emu_account, "access_key_secret", K_STR, access_key_secret, true),
    FIELD(emu_account, "user_id", K_DIGITS, user_id, true),
};

static void add_account(fx *f, yaml_node_t *item, void *ctx)
{
    emu_account a = {0};
    bool ok = walk(f, item, "account", account_fields, N_FIELDS(account_fields), &a);
    if (ok && emu_world_account(f->w, a.access_key_id)) {
        at(f, item, "duplicate access_key_id \"%s\"", a.access_key_id);
    }
    emu_account *slot = ok ? grow(f, &f->w->accounts, &f->w->n_accounts, sizeof(a)) : NULL;
    if (slot) {
        *slot = a;
    } else {
        clear(account_fields, N_FIELDS(account_fields), &a);
    }
}

static const field server_fields[] = {
    FIELD(emu_server, "instance_id", K_STR, instance_id, true),
    FIELD(emu_server, "name", K_STR, name, false),
    FIELD(emu_server, "status", K_STR, status, false),
    FIELDV(emu_server, "system_snapshots", K_STRV, system_snapshots, n_system_snapshots),
    FIELDV(emu_server, "data_snapshots", K_STRV, data_snapshots, n_data_snapshots),
};

static void add_server(fx *f, yaml_node_t *item, void *ctx)
{
    emu_region *r = ctx;
    emu_server s = {0};
    bool ok = walk(f, item, "server", server_fields, N_FIELDS(server_fields), &s);
    if (ok && emu_region_server(r, s.instance_id)) {
        at(f, item, "duplicate instance_id \"%s\"", s.instance_id);
    }
    ok = ok && dflt(f, &s.name, "") && dflt(f, &s.status, "Running");
    emu_server *slot = ok ? grow(f, &r->servers, &r->n_servers, sizeof(s)) : NULL;
    if (slot) {
        *slot = s;
    } else {
        clear(server_fields, N_FIELDS(server_fields), &s);
    }
}

static bool id_taken(const emu_world *w, const char *id)
{
    for (size_t i = 0; i < w->n_regions; i++) {
        const emu_region *r = &w->regions[i];
        for (size_t j = 0; j < r->n_images; j++) {
            if (strcmp(r->images[j].image_id, id) == 0) {
                return true;
            }
        }
        for (size_t j = 0; j < r->n_ecs; j++) {
            if (strcmp(r->ecs[j].image_id, id) == 0) {
                return true;
            }
        }
    }
    return false;
}

static const field image_fields[] = {
    FIELD(emu_image, "image_id", K_STR, image_id, true),
    FIELD(emu_image, "name", K_STR, name, true),
    FIELD(emu_image, "instance_id", K_STR, instance_id, false),
    FIELD(emu_image, "system_snapshot_id", K_STR, system_snapshot_id, false),
    FIELD(emu_image, "data_snapshot_id", K_STR, data_snapshot_id, false),
    FIELD(emu_image, "description", K_STR, description, false),
    FIELD(emu_image, "resource_group_id", K_STR, resource_group_id, false),
    FIELD(emu_image, "status", K_STATUS, status, false),
    FIELD(emu_image, "in_share", K_BOOL, in_share, false),
    FIELDV(emu_image, "tags", K_TAGS, tags, n_tags),
    FIELD(emu_image, "creation_time", K_TIME, created_ms, false),
    FIELDV(emu_image, "share_accounts", K_SHARES, shares, n_shares),
};

static void add_image(fx *f, yaml_node_t *item, void *ctx)
{
    emu_region *r = ctx;
    emu_image img = {.created_ms = f->now};
    bool ok = walk(f, item, "custom image", image_fields, N_FIELDS(image_fields), &img);
    if (ok && id_taken(f->w, img.image_id)) {
        at(f, item, "duplicate image_id \"%s\"", img.image_id);
    }
    for (size_t i = 0; ok && i < r->n_images; i++) {
        if (strcmp(r->images[i].name, img.name) == 0) {
            at(f, item, "duplicate image name \"%s\" in the region", img.name);
        }
    }
    if (!img.status[0]) {
        memcpy(img.status, "1", 2);
    }
    for (size_t i = 0; i < img.n_shares; i++) {
        img.shares[i].at_ms = img.created_ms;
    }
    ok = ok && dflt(f, &img.description, "") && dflt(f, &img.resource_group_id, EMU_DEFAULT_RG);
    if (!ok || emu_region_add_image(r, &img) < 0) {
        f->nomem |= ok;
        emu_image_free_fields(&img);
    }
}

static const field ecs_fields[] = {
    FIELD(emu_ecs_image, "image_id", K_STR, image_id, true),
    FIELD(emu_ecs_image, "name", K_STR, name, false),
    FIELD(emu_ecs_image, "status", K_STR, status, false),
    FIELD(emu_ecs_image, "used_by_instances", K_COUNT, used_by_instances, false),
    FIELD(emu_ecs_image, "shared", K_BOOL, shared, false),
    FIELD(emu_ecs_image, "public", K_BOOL, is_public, false),
    FIELD(emu_ecs_image, "busy", K_BUSY, busy, false),
};

static void add_ecs(fx *f, yaml_node_t *item, void *ctx)
{
    emu_region *r = ctx;
    emu_ecs_image e = {0};
    bool ok = walk(f, item, "ECS image", ecs_fields, N_FIELDS(ecs_fields), &e);
    if (ok && id_taken(f->w, e.image_id)) {
        at(f, item, "duplicate image_id \"%s\"", e.image_id);
    }
    ok = ok && dflt(f, &e.name, "") && dflt(f, &e.status, "Available") && dflt(f, &e.busy, "none");
    emu_ecs_image *slot = ok ? grow(f, &r->ecs, &r->n_ecs, sizeof(e)) : NULL;
    if (slot) {
        *slot = e;
    } else {
        clear(ecs_fields, N_FIELDS(ecs_fields), &e);
    }
}

typedef struct region_doc {
    char *region;
    yaml_node_t *servers, *images, *ecs;
} region_doc;

static const field region_fields[] = {
    FIELD(region_doc, "region", K_STR, region, true),
    FIELD(region_doc, "servers", K_LIST, servers, false),
    FIELD(region_doc, "custom_images", K_LIST, images, false),
    FIELD(region_doc, "ecs_images", K_LIST, ecs, false),
};

static void add_region(fx *f, yaml_node_t *item, void *ctx)
{
    region_doc d = {0};
    emu_region *r = NULL;
    if (walk(f, item, "region", region_fields, N_FIELDS(region_fields), &d)) {
        if (emu_world_region(f->w, d.region)) {
            at(f, item, "duplicate region \"%s\"", d.region);
        } else if (!(r = emu_world_region_get(f->w, d.region))) {
            f->nomem = true;
        }
    }
    free(d.region);
    /* Servers first: images may name them in any order in the file. */
    if (r && d.servers) {
        each(f, d.servers, add_server, r);
    }
    if (r && d.images) {
        each(f, d.images, add_image, r);
    }
    if (r && d.ecs) {
        each(f, d.ecs, add_ecs, r);
    }
}

typedef struct root_doc {
    yaml_node_t *accounts, *regions;
} root_doc;

static const field root_fields[] = {
    FIELD(root_doc, "accounts", K_LIST, accounts, false),
    FIELD(root_doc, "regions", K_LIST, regions, false),
};

/* Reads the root mapping into f->w: the accounts first, then the regions. */
static void load_root(fx *f, yaml_node_t *root)
{
    root_doc d = {0};
    if (!walk(f, root, "fixture", root_fields, N_FIELDS(root_fields), &d)) {
        return;
    }
    if (d.accounts) {
        each(f, d.accounts, add_account, NULL);
    }
    if (f->w->n_accounts == 0) {
        at(f, d.accounts ? d.accounts : root, "%s", "at least one account is required");
    }
    if (d.regions) {
        each(f, d.regions, add_region, NULL);
    }
}

int emu_fixture_parse(const char *file, const char *buf, size_t len, emu_world **ret,
                      emu_diags *diags)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    size_t before = diags->n;
    if (!yaml_parser_initialize(&parser)) {
        return -ENOMEM;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
    if (!yaml_parser_load(&parser, &doc)) {
        emu_diags_add(diags, file, (unsigned)parser.problem_mark.line + 1,
                      (unsigned)parser.problem_mark.column + 1, "YAML syntax error: %s",
                      parser.problem ? parser.problem : "unknown");
        yaml_parser_delete(&parser);
        return -EINVAL;
    }
    emu_world *w = NULL;
    int rc = emu_world_new(&w);
    if (rc < 0) {
        yaml_document_delete(&doc);
        yaml_parser_delete(&parser);
        return rc;
    }
    fx f = {.doc = &doc, .file = file, .d = diags, .w = w, .now = emu_now_ms()};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {
        emu_diags_add(diags, file, 1, 1, "empty fixture: accounts and regions are required");
    } else {
        load_root(&f, root);
    }
    /* A second document would be ignored silently; say so instead. */
    yaml_document_t extra;
    if (root && yaml_parser_load(&parser, &extra)) {
        if (yaml_document_get_root_node(&extra)) {
            emu_diags_add(diags, file, (unsigned)extra.start_mark.line + 1,
                          (unsigned)extra.start_mark.column + 1, "%s",
                          "a fixture holds one YAML document");
        }
        yaml_document_delete(&extra);
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (f.nomem || diags->n > before) {
        emu_world_free(w);
        return f.nomem ? -ENOMEM : -EINVAL;
    }
    *ret = w;
    return 0;
}

int emu_fixture_read_file(const char *path, char **ret_buf, size_t *ret_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = 0;
    for (;;) {
        if (cap - len < 4096) {
            if (cap > (64u << 20)) {
                rc = -EFBIG;
                break;
            }
            char *nb = realloc(buf, cap + 65536);
            if (!nb) {
                rc = -ENOMEM;
                break;
            }
            buf = nb;
            cap += 65536;
        }
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            rc = -errno;
            break;
        }
        if (n == 0) {
            break;
        }
        len += (size_t)n;
    }
    (void)close(fd);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    if (!buf && !(buf = malloc(1))) {
        return -ENOMEM;
    }
    buf[len] = '\0';
    *ret_buf = buf;
    *ret_len = len;
    return 0;
}
