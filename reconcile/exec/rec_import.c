/* imgrecon import: observe regions and write them as manifests (see rec_import.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "prov_swas.h"
#include "rec_import.h"
#include "rec_options.h"
#include "rec_observe.h"
#include "rec_regions.h"
#include "spec.h"
#include "spec_rules.h"
#include "spec_yaml.h"

/* ---- observe ---- */

typedef struct import_obs {
    bool done;
    int rc;
    char *error;
    rec_observed *obs;
    prov_client *client;
    rec_region_list regions;
    spec_set view;   /* no images, only the regions: what rec_observe reads */
    rec_options who; /* owner and previous owners; unowned images' account shares read too */
} import_obs;

static void set_error(import_obs *st, int rc, const char *msg)
{
    st->rc = rc;
    st->error = strdup(msg);
    st->done = true;
}

static void on_observed(rec_observed *obs, int rc, const char *errmsg, void *ud)
{
    import_obs *st = ud;
    if (rc < 0) {
        set_error(st, rc, errmsg ? errmsg : "observe failed");
        return;
    }
    st->obs = obs;
    st->done = true;
}

/* Starts the observation of st->regions (after ListRegions, when asked). */
static void start_observe(import_obs *st)
{
    if (st->regions.n == 0) {
        set_error(st, -ENOENT, "no region to import");
        return;
    }
    for (size_t i = 0; i < st->regions.n; i++) {
        if (!spec_region_valid(st->regions.v[i])) { /* it names a file: never a path */
            char clean[80], msg[160];
            spec_text_sanitize(st->regions.v[i], clean, sizeof(clean));
            snprintf(msg, sizeof(msg), "'%s' is not a region id", clean);
            set_error(st, -EINVAL, msg);
            return;
        }
    }
    st->view.regions = st->regions.v;
    st->view.n_regions = st->regions.n;
    int rc = rec_observe_start(st->client, &st->view, &st->who, on_observed, st);
    if (rc < 0)
        set_error(st, rc, "could not start observing the regions");
}

static void on_regions(const char *const *regions, size_t n, const prov_error *err, void *ud)
{
    import_obs *st = ud;
    if (err != NULL) {
        char *desc = prov_error_describe(err);
        char msg[1024];
        snprintf(msg, sizeof(msg), "--all-regions: ListRegions failed: %s",
                 desc ? desc : "unknown error");
        free(desc);
        set_error(st, err->sys < 0 ? err->sys : -EIO, msg);
        return;
    }
    if (n == 0) { /* an empty answer never means "no region" */
        set_error(st, -EPROTO, "--all-regions: ListRegions answered no region");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (rec_region_list_add(&st->regions, regions[i]) < 0) {
            set_error(st, -ENOMEM, "out of memory");
            return;
        }
    }
    start_observe(st);
}

int rec_import_observe(uv_loop_t *loop, rec_setup *s, const rec_import_regions *regions,
                       rec_observed **ret_obs, char **ret_error)
{
    import_obs st;
    memset(&st, 0, sizeof(st));
    st.client = s->client;
    rec_options_from_config(&st.who, s->cfg);
    st.who.observe_unowned_accounts = true;
    int rc = 0;
    for (size_t i = 0; rc >= 0 && i < regions->n; i++)
        rc = rec_region_list_add(&st.regions, regions->v[i]);
    if (rc < 0) {
        rec_region_list_clear(&st.regions);
        return rc;
    }
    if (regions->all_regions) {
        rc = prov_swas_list_regions(s->client, on_regions, &st);
        if (rc < 0)
            set_error(&st, rc, "could not start ListRegions");
    } else {
        start_observe(&st);
    }
    while (!st.done)
        if (uv_run(loop, UV_RUN_ONCE) == 0 && !st.done)
            set_error(&st, -EIO, "internal error: the observation never finished");
    rec_region_list_clear(&st.regions);
    if (st.rc < 0) {
        rec_observed_free(st.obs);
        *ret_error = st.error;
        return st.rc;
    }
    free(st.error);
    *ret_obs = st.obs;
    return 0;
}

/* ---- deciding what each image becomes ---- */

typedef enum imp_kind { IMP_OWNED, IMP_ADOPT, IMP_SKIP } imp_kind;

/* One observed image and what the manifest makes of it. entry borrows the image's strings. */
typedef struct imp_item {
    const prov_image *img;
    imp_kind kind;
    char why[256]; /* IMP_SKIP: the reason, for the comment */
    const char *owner;
    spec_image entry;
    bool dropped_reserved; /* an imgrecon/ key other than ours has no manifest form */
} imp_item;

static bool is_previous_owner(const spec_config *cfg, const char *owner)
{
    for (size_t i = 0; i < cfg->n_previous_owners; i++)
        if (strcmp(cfg->previous_owners[i], owner) == 0)
            return true;
    return false;
}

/* Any imgrecon/protect value other than "false" (any case) protects, as in the plan. */
static bool protect_tagged(const prov_image *img)
{
    const char *t = prov_image_tag(img, REC_PROTECT_TAG);
    return t != NULL && strcasecmp(t, "false") != 0;
}

static const char *status_words(int status)
{
    switch (status) {
    case PROV_IMG_COPYING:
        return "it is being copied (status 0); import again once it is available";
    case PROV_IMG_UNAVAILABLE:
        return "it is unavailable (status 2)";
    case PROV_IMG_FAILED:
        return "its creation failed (status 3); an entry would replace it, adoption cannot take it";
    case PROV_IMG_CREATING:
        return "it is being created (status 4); import again once it is available";
    default:
        return "its status is unknown";
    }
}

/* The API's empty string is "none", as in the plan's comparison: the key is left out. */
static char *or_null(char *s)
{
    return s != NULL && *s != '\0' ? s : NULL;
}

/* The entry that declares img as it is: ids, description, user tags (the cloud's acs:/aliyun
 * keys and ours left out), share_to_ecs, protect, account shares. Returns 0 or -ENOMEM. */
static int build_entry(imp_item *it)
{
    const prov_image *img = it->img;
    spec_image *e = &it->entry;
    e->region = img->region_id;
    e->name = img->name;
    e->instance_id = or_null(img->instance_id);
    e->system_snapshot_id = or_null(img->system_snapshot_id);
    e->data_snapshot_id = or_null(img->data_snapshot_id);
    e->description = or_null(img->description);
    e->resource_group_id = or_null(img->resource_group_id);
    e->share_to_ecs = img->in_share;
    e->protect = protect_tagged(img);
    e->adopt = it->kind == IMP_ADOPT;
    if (img->share_accounts_known) {
        e->share_to_accounts = img->share_accounts;
        e->n_share_to_accounts = img->n_share_accounts;
    }
    e->tags = img->n_tags ? calloc(img->n_tags, sizeof(*e->tags)) : NULL;
    if (img->n_tags && e->tags == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < img->n_tags; i++) {
        const char *k = img->tags[i].key;
        if (k == NULL || rec_tag_key_is_cloud(k) || strcmp(k, REC_OWNER_TAG) == 0 ||
            (strcmp(k, REC_PROTECT_TAG) == 0 && e->protect))
            continue;
        if (strncmp(k, "imgrecon/", 9) == 0) { /* imgrecon/protect=false among them */
            it->dropped_reserved = true;
            continue;
        }
        e->tags[e->n_tags].key = img->tags[i].key;
        e->tags[e->n_tags].value = img->tags[i].value ? img->tags[i].value : "";
        e->n_tags++;
    }
    return 0;
}

/* The image carries this owner's tag or a previous owner's: imgrecon manages it. */
static bool is_ours(const spec_config *cfg, const char *owner)
{
    return owner != NULL && (strcmp(owner, cfg->owner) == 0 || is_previous_owner(cfg, owner));
}

/* Decides what img becomes: an entry (ours or a previous owner's), an adoption (no owner tag),
 * or a comment with the reason. dup: another image of the region has the same name. */
static int classify(imp_item *it, const spec_config *cfg, bool dup)
{
    const prov_image *img = it->img;
    it->owner = prov_image_tag(img, REC_OWNER_TAG);
    if (it->owner == NULL)
        it->kind = IMP_ADOPT;
    else if (is_ours(cfg, it->owner))
        it->kind = IMP_OWNED;
    else
        it->kind = IMP_SKIP;
    if (it->kind == IMP_SKIP) {
        snprintf(it->why, sizeof(it->why), "another owner's image");
        return 0;
    }
    if (img->name == NULL || img->image_id == NULL) {
        it->kind = IMP_SKIP;
        snprintf(it->why, sizeof(it->why), "the API reported no name or id");
        return 0;
    }
    if (img->status != PROV_IMG_AVAILABLE) {
        it->kind = IMP_SKIP;
        snprintf(it->why, sizeof(it->why), "%s", status_words(img->status));
        return 0;
    }
    if (dup) {
        it->kind = IMP_SKIP;
        snprintf(it->why, sizeof(it->why),
                 "another image in the region has the same name; a manifest names one");
        return 0;
    }
    if (build_entry(it) < 0)
        return -ENOMEM;
    const char *field = NULL;
    const char *why = spec_check_entry(&it->entry, &field);
    if (why != NULL) {
        it->kind = IMP_SKIP;
        snprintf(it->why, sizeof(it->why), "no valid manifest entry: %s %s", field, why);
    }
    return 0;
}

static int cmp_items(const void *a, const void *b)
{
    const char *x = ((const imp_item *)a)->img->name, *y = ((const imp_item *)b)->img->name;
    if (x == NULL || y == NULL)
        return (x == NULL) - (y == NULL);
    int c = strcmp(x, y);
    if (c != 0)
        return c;
    const char *i = ((const imp_item *)a)->img->image_id, *j = ((const imp_item *)b)->img->image_id;
    return strcmp(i ? i : "", j ? j : "");
}

/* ---- YAML ---- */

typedef struct emitter {
    yaml_emitter_t em;
    bool ok;
} emitter;

static int write_handler(void *data, unsigned char *buf, size_t size)
{
    return fwrite(buf, 1, size, (FILE *)data) == size;
}

/* True when s reads back as the same string without quotes: a letter first, then only
 * letters, digits, spaces and _ . / : -, no ": " and no trailing space or ':', and not a YAML 1.1
 * boolean or null word (which a YAML 1.1 reader would not take for a string). Everything else is
 * double-quoted, with libyaml's escapes. */
static bool plain_safe(const char *s)
{
    static const char *const words[] = {"y",     "n",  "yes", "no",  "true",
                                        "false", "on", "off", "null"};
    size_t len = strlen(s);
    if (len == 0 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')) ||
        s[len - 1] == ':' || s[len - 1] == ' ' || strstr(s, ": ") != NULL)
        return false;
    if (strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:- ") != len)
        return false;
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strcasecmp(s, words[i]) == 0)
            return false;
    return true;
}

static void emit(emitter *e, yaml_event_t *ev, int init_ok)
{
    if (!init_ok) {
        e->ok = false;
        return;
    }
    if (e->ok && !yaml_emitter_emit(&e->em, ev))
        e->ok = false;
    else if (!e->ok)
        yaml_event_delete(ev);
}

/* A string scalar; force_plain forces the plain style (the booleans we write). */
static void scalar_styled(emitter *e, const char *s, bool force_plain)
{
    yaml_event_t ev;
    yaml_scalar_style_t style =
        force_plain || plain_safe(s) ? YAML_PLAIN_SCALAR_STYLE : YAML_DOUBLE_QUOTED_SCALAR_STYLE;
    int ok = yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)strlen(s), 1, 1,
                                          style);
    emit(e, &ev, ok);
}

static void scalar(emitter *e, const char *s)
{
    scalar_styled(e, s, false);
}

static void map_start(emitter *e, bool flow)
{
    yaml_event_t ev;
    int ok = yaml_mapping_start_event_initialize(
        &ev, NULL, NULL, 1, flow ? YAML_FLOW_MAPPING_STYLE : YAML_BLOCK_MAPPING_STYLE);
    emit(e, &ev, ok);
}

static void map_end(emitter *e)
{
    yaml_event_t ev;
    emit(e, &ev, yaml_mapping_end_event_initialize(&ev));
}

static void seq_start(emitter *e, bool flow)
{
    yaml_event_t ev;
    int ok = yaml_sequence_start_event_initialize(
        &ev, NULL, NULL, 1, flow ? YAML_FLOW_SEQUENCE_STYLE : YAML_BLOCK_SEQUENCE_STYLE);
    emit(e, &ev, ok);
}

static void seq_end(emitter *e)
{
    yaml_event_t ev;
    emit(e, &ev, yaml_sequence_end_event_initialize(&ev));
}

static void pair(emitter *e, const char *key, const char *value)
{
    if (value == NULL)
        return;
    scalar(e, key);
    scalar(e, value);
}

/* key: true (plain, so that it reads as a boolean); nothing when off. */
static void flag(emitter *e, const char *key, bool on)
{
    if (!on)
        return;
    scalar(e, key);
    scalar_styled(e, "true", true);
}

/* One custom_images item, keys in the order of the manifest reference. */
static void emit_entry(emitter *e, const spec_image *d)
{
    map_start(e, false);
    pair(e, "name", d->name);
    pair(e, "instance_id", d->instance_id);
    pair(e, "system_snapshot_id", d->system_snapshot_id);
    pair(e, "data_snapshot_id", d->data_snapshot_id);
    pair(e, "description", d->description);
    pair(e, "resource_group_id", d->resource_group_id);
    if (d->n_tags > 0) {
        scalar(e, "tags");
        map_start(e, false);
        for (size_t i = 0; i < d->n_tags; i++)
            pair(e, d->tags[i].key, d->tags[i].value);
        map_end(e);
    }
    flag(e, "share_to_ecs", d->share_to_ecs);
    flag(e, "protect", d->protect);
    if (d->n_share_to_accounts > 0) {
        scalar(e, "share_to_accounts");
        seq_start(e, true);
        for (size_t i = 0; i < d->n_share_to_accounts; i++)
            scalar(e, d->share_to_accounts[i]);
        seq_end(e);
    }
    flag(e, "adopt", d->adopt);
    map_end(e);
}

/* The document: region and custom_images (entries only; comments are written around it). */
static int emit_document(FILE *f, const char *region, const imp_item *items, size_t n)
{
    emitter e = {.ok = true};
    if (!yaml_emitter_initialize(&e.em))
        return -ENOMEM;
    yaml_emitter_set_output(&e.em, write_handler, f);
    yaml_emitter_set_unicode(&e.em, 1);
    yaml_emitter_set_width(&e.em, -1);
    yaml_emitter_set_indent(&e.em, 2);
    yaml_event_t ev;
    emit(&e, &ev, yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING));
    emit(&e, &ev, yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1));
    map_start(&e, false);
    pair(&e, "region", region);
    scalar(&e, "custom_images");
    size_t entries = 0;
    for (size_t i = 0; i < n; i++)
        entries += items[i].kind != IMP_SKIP;
    seq_start(&e, entries == 0); /* `custom_images: []` when nothing is importable */
    for (size_t i = 0; i < n; i++)
        if (items[i].kind != IMP_SKIP)
            emit_entry(&e, &items[i].entry);
    seq_end(&e);
    map_end(&e);
    emit(&e, &ev, yaml_document_end_event_initialize(&ev, 1));
    emit(&e, &ev, yaml_stream_end_event_initialize(&ev));
    bool ok = e.ok && yaml_emitter_flush(&e.em);
    yaml_emitter_delete(&e.em);
    return ok ? 0 : -EIO;
}

/* One comment line per skipped image (text from the cloud made one clean line). */
static void write_comments(FILE *f, const imp_item *items, size_t n)
{
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        const imp_item *it = &items[i];
        if (it->kind != IMP_SKIP && !it->dropped_reserved)
            continue;
        if (!any)
            fputs("#\n# Left out of this file, or not written exactly as they are:\n", f);
        any = true;
        char name[200], id[100], owner[100];
        spec_text_sanitize(it->img->name ? it->img->name : "(no name)", name, sizeof(name));
        spec_text_sanitize(it->img->image_id ? it->img->image_id : "(no id)", id, sizeof(id));
        spec_text_sanitize(it->owner ? it->owner : "", owner, sizeof(owner));
        fprintf(f, "#   %s \"%s\" (owner: %s): %s\n", id, name, it->owner ? owner : "none",
                it->kind == IMP_SKIP ? it->why
                                     : "imported, but an imgrecon/ tag of it (other than the owner "
                                       "tag or a protecting imgrecon/protect) has no manifest "
                                       "form; the plan removes it");
    }
}

static void free_items(imp_item *items, size_t n)
{
    for (size_t i = 0; items != NULL && i < n; i++)
        free(items[i].entry.tags);
    free(items);
}

/* Renders one region (comments, then the document) into f and adds to the counts. */
static int render_region(FILE *f, const rec_region_obs *rs, const spec_config *cfg,
                         rec_import_counts *counts)
{
    size_t n = rs->images.n;
    imp_item *items = n ? calloc(n, sizeof(*items)) : NULL;
    if (n && items == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        items[i].img = &rs->images.v[i];
    qsort(items, n, sizeof(*items), cmp_items);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *nm = items[i].img->name;
        bool dup =
            nm != NULL &&
            ((i > 0 && items[i - 1].img->name && strcmp(items[i - 1].img->name, nm) == 0) ||
             (i + 1 < n && items[i + 1].img->name && strcmp(items[i + 1].img->name, nm) == 0));
        rc = classify(&items[i], cfg, dup);
    }
    if (rc == 0) {
        char owner[100];
        spec_text_sanitize(cfg->owner, owner, sizeof(owner));
        fprintf(f,
                "# Imported by `imgrecon import` from %s for owner %s. Review it, then\n"
                "# `imgrecon plan -f` this file: it shows only in-place steps (adoption, tags).\n",
                rs->region, owner);
        write_comments(f, items, n);
        rc = emit_document(f, rs->region, items, n);
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        counts->owned += items[i].kind == IMP_OWNED;
        counts->adopted += items[i].kind == IMP_ADOPT;
        counts->skipped += items[i].kind == IMP_SKIP;
        counts->owned_skipped += items[i].kind == IMP_SKIP && is_ours(cfg, items[i].owner);
    }
    counts->regions += rc == 0;
    free_items(items, n);
    return rc;
}

int rec_import_write_stream(const rec_observed *obs, const spec_config *cfg, FILE *f,
                            rec_import_counts *ret_counts)
{
    rec_import_counts counts = {0};
    for (size_t i = 0; i < obs->n; i++) {
        if (i > 0)
            fputs("---\n", f);
        int rc = render_region(f, &obs->regions[i], cfg, &counts);
        if (rc < 0)
            return rc;
    }
    if (fflush(f) != 0 || ferror(f))
        return -EIO;
    *ret_counts = counts;
    return 0;
}

static char *path_of(const char *dir, const char *region)
{
    size_t len = strlen(dir) + strlen(region) + 8;
    char *p = malloc(len);
    if (p != NULL)
        snprintf(p, len, "%s/%s.yaml", dir, region);
    return p;
}

/* a, b, c and d as one malloc'd message (NULL when out of memory). */
static char *message(const char *a, const char *b, const char *c, const char *d)
{
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s%s%s%s", a, b, c, d);
    return strdup(buf);
}

/* Writes len bytes of buf to a new temporary file next to path (mode 0644 before the umask)
 * and fsyncs it; *ret_tmp is its name (caller frees; the file is removed on failure). */
static int write_temp(const char *path, const char *buf, size_t len, char **ret_tmp)
{
    size_t n = strlen(path) + 16;
    char *tmp = malloc(n);
    if (tmp == NULL)
        return -ENOMEM;
    snprintf(tmp, n, "%s.tmp-XXXXXX", path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    int rc = fd < 0 ? -errno : 0;
    if (rc == 0) {
        mode_t um = umask(0);
        umask(um);
        if (fchmod(fd, 0644 & ~um) != 0)
            rc = -errno;
    }
    for (size_t off = 0; rc == 0 && off < len;) {
        ssize_t w = write(fd, buf + off, len - off);
        if (w < 0 && errno != EINTR)
            rc = -errno;
        else if (w > 0)
            off += (size_t)w;
    }
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (fd >= 0 && close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc < 0) {
        if (fd >= 0)
            (void)unlink(tmp);
        free(tmp);
        return rc;
    }
    *ret_tmp = tmp;
    return 0;
}

/* Renders a region into memory and puts it at path whole or not at all: a temporary file, then
 * rename(2) with force, else link(2), which refuses an existing path, so a file made after the
 * early check is not overwritten either. */
static int write_region_file(const rec_region_obs *rs, const spec_config *cfg, const char *path,
                             bool force, rec_import_counts *counts)
{
    char *buf = NULL, *tmp = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (m == NULL)
        return -ENOMEM;
    int rc = render_region(m, rs, cfg, counts);
    if (fclose(m) != 0 && rc == 0)
        rc = -ENOMEM;
    if (rc == 0)
        rc = write_temp(path, buf, len, &tmp);
    if (rc == 0 && (force ? rename(tmp, path) : link(tmp, path)) != 0)
        rc = -errno;
    if (tmp != NULL && (!force || rc < 0))
        (void)unlink(tmp);
    free(tmp);
    free(buf);
    return rc;
}

int rec_import_write_dir(const rec_observed *obs, const spec_config *cfg, const char *dir,
                         bool force, rec_import_counts *ret_counts, char **ret_error)
{
    int rc = rec_mkdir_p(dir);
    if (rc < 0) {
        *ret_error = message("cannot create ", dir, ": ", strerror(-rc));
        return rc;
    }
    for (size_t i = 0; !force && i < obs->n; i++) { /* refuse before writing anything */
        char *p = path_of(dir, obs->regions[i].region);
        struct stat st;
        if (p == NULL)
            return -ENOMEM;
        if (lstat(p, &st) == 0) {
            *ret_error = message(p, " exists", "; use --force to overwrite it", "");
            free(p);
            return -EEXIST;
        }
        free(p);
    }
    rec_import_counts counts = {0};
    for (size_t i = 0; i < obs->n; i++) {
        char *p = path_of(dir, obs->regions[i].region);
        if (p == NULL)
            return -ENOMEM;
        rc = write_region_file(&obs->regions[i], cfg, p, force, &counts);
        if (rc < 0) {
            *ret_error = message("cannot write ", p, ": ", strerror(-rc));
            free(p);
            return rc;
        }
        free(p);
    }
    *ret_counts = counts;
    return 0;
}
