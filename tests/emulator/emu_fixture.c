/* The fixture loader (see emu_fixture.h): libyaml's document API gives every node with its
 * position, so each check can point at the exact key or value it is about. */
#include "emu_fixture.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <yaml.h>

#include "emu_ops.h"
#include "emu_util.h"
#include "emu_sig.h"

typedef struct fx {
    yaml_document_t *doc;
    const char *file;
    emu_diags *d;
    emu_world *w;
    bool nomem;
} fx;

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

/* A string value; reports "expected a string" and returns NULL otherwise. */
static char *str_value(fx *f, const yaml_node_t *n, const char *key)
{
    const char *s = scalar(n);
    if (!s) {
        at(f, n, "%s: expected a string", key);
        return NULL;
    }
    char *c = strdup(s);
    if (!c) {
        f->nomem = true;
    }
    return c;
}

static bool bool_value(fx *f, const yaml_node_t *n, const char *key, bool *ret)
{
    const char *s = scalar(n);
    if (!s || emu_parse_bool(s, ret) < 0) {
        at(f, n, "%s: expected true or false", key);
        return false;
    }
    return true;
}

/* A sequence of strings into a new array. */
static void strv_value(fx *f, yaml_node_t *n, const char *key, char ***v, size_t *nv)
{
    if (n->type != YAML_SEQUENCE_NODE) {
        at(f, n, "%s: expected a list of strings", key);
        return;
    }
    size_t cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    *v = calloc(cnt ? cnt : 1, sizeof(**v));
    if (!*v) {
        f->nomem = true;
        return;
    }
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        char *s = str_value(f, yaml_document_get_node(f->doc, *it), key);
        if (s) {
            (*v)[(*nv)++] = s;
        }
    }
}

/* Iterates a mapping: calls fn(f, key, keynode, value, ctx) for each pair after checking the
 * key against allowed (NULL-terminated), reporting unknown and duplicate keys. */
typedef void (*pair_fn)(fx *f, const char *key, yaml_node_t *value, void *ctx);

static bool mapping(fx *f, yaml_node_t *n, const char *what, const char *const *allowed, pair_fn fn,
                    void *ctx)
{
    if (n->type != YAML_MAPPING_NODE) {
        at(f, n, "%s: expected a mapping", what);
        return false;
    }
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(f->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(f->doc, p->value);
        const char *key = scalar(k);
        if (!key) {
            at(f, k, "%s: keys must be strings", what);
            continue;
        }
        bool known = false;
        for (size_t i = 0; allowed[i] && !known; i++) {
            known = strcmp(allowed[i], key) == 0;
        }
        if (!known) {
            at(f, k, "unknown key \"%s\"", key);
            continue;
        }
        bool dup = false;
        for (yaml_node_pair_t *q = n->data.mapping.pairs.start; q < p && !dup; q++) {
            const char *qk = scalar(yaml_document_get_node(f->doc, q->key));
            dup = qk && strcmp(qk, key) == 0;
        }
        if (dup) {
            at(f, k, "duplicate key \"%s\"", key);
            continue;
        }
        fn(f, key, v, ctx);
    }
    return true;
}

static void require(fx *f, yaml_node_t *n, const void *field, const char *key)
{
    if (!field) {
        at(f, n, "missing required key \"%s\"", key);
    }
}

/* ---- accounts ---- */

static void account_pair(fx *f, const char *key, yaml_node_t *v, void *ctx)
{
    emu_account *a = ctx;
    if (strcmp(key, "access_key_id") == 0) {
        a->access_key_id = str_value(f, v, key);
    } else if (strcmp(key, "access_key_secret") == 0) {
        a->access_key_secret = str_value(f, v, key);
    } else {
        const char *s = scalar(v);
        size_t len = s ? strlen(s) : 0;
        if (!s || len == 0 || len > 20 || strspn(s, "0123456789") != len) {
            at(f, v, "%s: expected a number", key);
        } else {
            a->user_id = str_value(f, v, key);
        }
    }
}

static void load_accounts(fx *f, yaml_node_t *n)
{
    static const char *const keys[] = {"access_key_id", "access_key_secret", "user_id", NULL};
    if (n->type != YAML_SEQUENCE_NODE) {
        at(f, n, "%s: expected a list", "accounts");
        return;
    }
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        yaml_node_t *item = yaml_document_get_node(f->doc, *it);
        emu_account a = {0};
        if (mapping(f, item, "account", keys, account_pair, &a)) {
            require(f, item, a.access_key_id, "access_key_id");
            require(f, item, a.access_key_secret, "access_key_secret");
            require(f, item, a.user_id, "user_id");
        }
        if (a.access_key_id && emu_world_account(f->w, a.access_key_id)) {
            at(f, item, "duplicate access_key_id \"%s\"", a.access_key_id);
        }
        emu_account *nv = realloc(f->w->accounts, (f->w->n_accounts + 1) * sizeof(*nv));
        if (!nv || !a.access_key_id || !a.access_key_secret || !a.user_id) {
            f->nomem |= !nv;
            free(a.access_key_id);
            free(a.access_key_secret);
            free(a.user_id);
            if (nv) {
                f->w->accounts = nv;
            }
            continue;
        }
        f->w->accounts = nv;
        nv[f->w->n_accounts++] = a;
    }
}

/* ---- servers ---- */

static void server_pair(fx *f, const char *key, yaml_node_t *v, void *ctx)
{
    emu_server *s = ctx;
    if (strcmp(key, "instance_id") == 0) {
        s->instance_id = str_value(f, v, key);
    } else if (strcmp(key, "name") == 0) {
        s->name = str_value(f, v, key);
    } else if (strcmp(key, "status") == 0) {
        s->status = str_value(f, v, key);
    } else if (strcmp(key, "system_snapshots") == 0) {
        strv_value(f, v, key, &s->system_snapshots, &s->n_system_snapshots);
    } else {
        strv_value(f, v, key, &s->data_snapshots, &s->n_data_snapshots);
    }
}

/* ---- custom images ---- */

typedef struct image_ctx {
    emu_image img;
    bool has_status;
} image_ctx;

static void load_tags(fx *f, yaml_node_t *n, emu_image *img)
{
    if (n->type != YAML_MAPPING_NODE) {
        at(f, n, "%s: expected a mapping", "tags");
        return;
    }
    size_t cnt = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    img->tags = calloc(cnt ? cnt : 1, sizeof(*img->tags));
    if (!img->tags) {
        f->nomem = true;
        return;
    }
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(f->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(f->doc, p->value);
        char *key = str_value(f, k, "tag key");
        char *value = str_value(f, v, "tag value");
        if (key && value) {
            for (size_t i = 0; i < img->n_tags; i++) {
                if (strcmp(img->tags[i].key, key) == 0) {
                    at(f, k, "duplicate key \"%s\"", key);
                }
            }
            img->tags[img->n_tags].key = key;
            img->tags[img->n_tags++].value = value;
        } else {
            free(key);
            free(value);
        }
    }
}

/* share_accounts: [uid, ...], account ids (digits) the image is shared to. */
static void load_shares(fx *f, yaml_node_t *n, emu_image *img)
{
    char **v = NULL;
    size_t nv = 0;
    strv_value(f, n, "share_accounts", &v, &nv);
    img->shares = calloc(nv ? nv : 1, sizeof(*img->shares));
    if (!img->shares) {
        f->nomem = true;
    }
    for (size_t i = 0; i < nv; i++) {
        if (strspn(v[i], "0123456789") != strlen(v[i]) || !*v[i]) {
            at(f, n, "share_accounts: \"%s\" is not an account id (digits)", v[i]);
        }
        if (img->shares) {
            img->shares[img->n_shares++] = (emu_share){.user_id = v[i], .at_ms = img->created_ms};
        } else {
            free(v[i]);
        }
    }
    free(v);
}

static void image_pair(fx *f, const char *key, yaml_node_t *v, void *ctx)
{
    image_ctx *c = ctx;
    emu_image *img = &c->img;
    if (strcmp(key, "image_id") == 0) {
        img->image_id = str_value(f, v, key);
    } else if (strcmp(key, "name") == 0) {
        img->name = str_value(f, v, key);
    } else if (strcmp(key, "instance_id") == 0) {
        img->instance_id = str_value(f, v, key);
    } else if (strcmp(key, "system_snapshot_id") == 0) {
        img->system_snapshot_id = str_value(f, v, key);
    } else if (strcmp(key, "data_snapshot_id") == 0) {
        img->data_snapshot_id = str_value(f, v, key);
    } else if (strcmp(key, "description") == 0) {
        img->description = str_value(f, v, key);
    } else if (strcmp(key, "resource_group_id") == 0) {
        img->resource_group_id = str_value(f, v, key);
    } else if (strcmp(key, "status") == 0) {
        const char *s = scalar(v);
        if (!s || strlen(s) != 1 || s[0] < '0' || s[0] > '4') {
            at(f, v, "%s: expected \"0\" to \"4\"", key);
        } else {
            memcpy(img->status, s, 2);
            c->has_status = true;
        }
    } else if (strcmp(key, "in_share") == 0) {
        (void)bool_value(f, v, key, &img->in_share);
    } else if (strcmp(key, "share_accounts") == 0) {
        load_shares(f, v, img);
    } else if (strcmp(key, "creation_time") == 0) {
        const char *s = scalar(v);
        int64_t t;
        if (!s || emu_parse_utc(s, &t) < 0) {
            at(f, v, "%s: expected YYYY-MM-DDThh:mm:ssZ", key);
        } else {
            img->created_ms = t * 1000;
        }
    } else {
        load_tags(f, v, img);
    }
}

/* ---- ECS images ---- */

static void ecs_pair(fx *f, const char *key, yaml_node_t *v, void *ctx)
{
    emu_ecs_image *e = ctx;
    if (strcmp(key, "image_id") == 0) {
        e->image_id = str_value(f, v, key);
    } else if (strcmp(key, "name") == 0) {
        e->name = str_value(f, v, key);
    } else if (strcmp(key, "status") == 0) {
        e->status = str_value(f, v, key);
    } else if (strcmp(key, "used_by_instances") == 0) {
        if (emu_parse_long(scalar(v), 0, 1000000, &e->used_by_instances) < 0) {
            at(f, v, "%s: expected a number >= 0", key);
        }
    } else if (strcmp(key, "shared") == 0) {
        (void)bool_value(f, v, key, &e->shared);
    } else if (strcmp(key, "public") == 0) {
        (void)bool_value(f, v, key, &e->is_public);
    } else {
        const char *s = scalar(v);
        if (!s || (strcmp(s, "none") != 0 && strcmp(s, "copying") != 0 &&
                   strcmp(s, "importing") != 0 && strcmp(s, "exporting") != 0)) {
            at(f, v, "%s: expected none, copying, importing or exporting", key);
        } else {
            free(e->busy);
            e->busy = str_value(f, v, key);
        }
    }
}

/* ---- regions ---- */

typedef struct region_ctx {
    emu_region *r;
    yaml_node_t *servers, *images, *ecs;
} region_ctx;

static void region_pair(fx *f, const char *key, yaml_node_t *v, void *ctx)
{
    region_ctx *c = ctx;
    if (strcmp(key, "region") == 0) {
        c->r->region = str_value(f, v, key);
    } else if (v->type != YAML_SEQUENCE_NODE) {
        at(f, v, "%s: expected a list", key);
    } else if (strcmp(key, "servers") == 0) {
        c->servers = v;
    } else if (strcmp(key, "custom_images") == 0) {
        c->images = v;
    } else {
        c->ecs = v;
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

static void load_servers(fx *f, yaml_node_t *n, emu_region *r)
{
    static const char *const keys[] = {"instance_id",      "name",           "status",
                                       "system_snapshots", "data_snapshots", NULL};
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        yaml_node_t *item = yaml_document_get_node(f->doc, *it);
        emu_server s = {0};
        if (mapping(f, item, "server", keys, server_pair, &s)) {
            require(f, item, s.instance_id, "instance_id");
        }
        if (s.instance_id && emu_region_server(r, s.instance_id)) {
            at(f, item, "duplicate instance_id \"%s\"", s.instance_id);
        }
        if (!s.name) {
            s.name = strdup("");
        }
        if (!s.status) {
            s.status = strdup("Running");
        }
        emu_server *nv = realloc(r->servers, (r->n_servers + 1) * sizeof(*nv));
        if (nv) {
            r->servers = nv;
        }
        if (!nv || !s.instance_id || !s.name || !s.status) {
            f->nomem |= !nv || !s.name || !s.status;
            free(s.instance_id);
            free(s.name);
            free(s.status);
            emu_strv_free(s.system_snapshots, s.n_system_snapshots);
            emu_strv_free(s.data_snapshots, s.n_data_snapshots);
            continue;
        }
        nv[r->n_servers++] = s;
    }
}

static void load_images(fx *f, yaml_node_t *n, emu_region *r, int64_t now)
{
    static const char *const keys[] = {"image_id",
                                       "name",
                                       "instance_id",
                                       "system_snapshot_id",
                                       "data_snapshot_id",
                                       "description",
                                       "resource_group_id",
                                       "status",
                                       "in_share",
                                       "tags",
                                       "creation_time",
                                       "share_accounts",
                                       NULL};
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        yaml_node_t *item = yaml_document_get_node(f->doc, *it);
        image_ctx c = {0};
        c.img.created_ms = now;
        if (mapping(f, item, "custom image", keys, image_pair, &c)) {
            require(f, item, c.img.image_id, "image_id");
            require(f, item, c.img.name, "name");
        }
        if (c.img.image_id && id_taken(f->w, c.img.image_id)) {
            at(f, item, "duplicate image_id \"%s\"", c.img.image_id);
        }
        for (size_t i = 0; c.img.name && i < r->n_images; i++) {
            if (strcmp(r->images[i].name, c.img.name) == 0) {
                at(f, item, "duplicate image name \"%s\" in the region", c.img.name);
            }
        }
        if (!c.has_status) {
            memcpy(c.img.status, "1", 2);
        }
        if (!c.img.description) {
            c.img.description = strdup("");
        }
        if (!c.img.resource_group_id) {
            c.img.resource_group_id = strdup(EMU_DEFAULT_RG);
        }
        if (!c.img.image_id || !c.img.name || !c.img.description || !c.img.resource_group_id ||
            emu_region_add_image(r, &c.img) < 0) {
            f->nomem |= !c.img.description || !c.img.resource_group_id;
            emu_image_free_fields(&c.img);
        }
    }
}

static void load_ecs(fx *f, yaml_node_t *n, emu_region *r)
{
    static const char *const keys[] = {"image_id", "name",   "status", "used_by_instances",
                                       "shared",   "public", "busy",   NULL};
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        yaml_node_t *item = yaml_document_get_node(f->doc, *it);
        emu_ecs_image e = {0};
        if (mapping(f, item, "ECS image", keys, ecs_pair, &e)) {
            require(f, item, e.image_id, "image_id");
        }
        if (e.image_id && id_taken(f->w, e.image_id)) {
            at(f, item, "duplicate image_id \"%s\"", e.image_id);
        }
        if (!e.name) {
            e.name = strdup("");
        }
        if (!e.status) {
            e.status = strdup("Available");
        }
        if (!e.busy) {
            e.busy = strdup("none");
        }
        emu_ecs_image *nv = realloc(r->ecs, (r->n_ecs + 1) * sizeof(*nv));
        if (nv) {
            r->ecs = nv;
        }
        if (!nv || !e.image_id || !e.name || !e.status || !e.busy) {
            f->nomem |= !nv || !e.name || !e.status || !e.busy;
            free(e.image_id);
            free(e.name);
            free(e.status);
            free(e.busy);
            continue;
        }
        nv[r->n_ecs++] = e;
    }
}

static void load_regions(fx *f, yaml_node_t *n, int64_t now)
{
    static const char *const keys[] = {"region", "servers", "custom_images", "ecs_images", NULL};
    if (n->type != YAML_SEQUENCE_NODE) {
        at(f, n, "%s: expected a list", "regions");
        return;
    }
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        yaml_node_t *item = yaml_document_get_node(f->doc, *it);
        emu_region tmp = {0};
        region_ctx c = {.r = &tmp};
        if (!mapping(f, item, "region", keys, region_pair, &c)) {
            continue;
        }
        require(f, item, tmp.region, "region");
        if (!tmp.region) {
            continue;
        }
        if (emu_world_region(f->w, tmp.region)) {
            at(f, item, "duplicate region \"%s\"", tmp.region);
            free(tmp.region);
            continue;
        }
        emu_region *r = emu_world_region_get(f->w, tmp.region);
        free(tmp.region);
        if (!r) {
            f->nomem = true;
            return;
        }
        /* Servers first: images may name them in any order in the file. */
        if (c.servers) {
            load_servers(f, c.servers, r);
        }
        if (c.images) {
            load_images(f, c.images, r, now);
        }
        if (c.ecs) {
            load_ecs(f, c.ecs, r);
        }
    }
}

typedef struct root_ctx {
    yaml_node_t *accounts, *regions;
} root_ctx;

static void root_pair(fx *f, const char *key, yaml_node_t *v, void *ctx)
{
    root_ctx *c = ctx;
    if (strcmp(key, "accounts") == 0) {
        c->accounts = v;
    } else {
        c->regions = v;
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
    fx f = {.doc = &doc, .file = file, .d = diags, .w = w};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    static const char *const keys[] = {"accounts", "regions", NULL};
    root_ctx c = {0};
    if (!root) {
        emu_diags_add(diags, file, 1, 1, "empty fixture: accounts and regions are required");
    } else if (mapping(&f, root, "fixture", keys, root_pair, &c)) {
        int64_t now = emu_now_ms();
        if (c.accounts) {
            load_accounts(&f, c.accounts);
        }
        if (w->n_accounts == 0) {
            at(&f, c.accounts ? c.accounts : root, "%s", "at least one account is required");
        }
        if (c.regions) {
            load_regions(&f, c.regions, now);
        }
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
