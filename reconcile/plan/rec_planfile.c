/* Saved plans (reconcile/README.md "Saved plans do exactly what they showed"): `plan --out FILE`
 * writes the plan's JSON document (the same one `plan --json` prints, plus "kind": "imgrecon-plan"
 * and the "policy" it was made with); `apply FILE` reads it back here, uses the recorded policy,
 * and rec_cycle checks the saved steps against a fresh observation (rec_plancheck.c) before it
 * executes exactly those steps.
 * Everything read is validated: a hand-edited or truncated file gets a clear error, never a
 * crash, and a step whose client_token does not match its inputs is refused. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "prov_cleanup.h"
#include "rec_escape.h"
#include "rec_plan_int.h"
#include "rec_planfile.h"
#include "prov_statedir.h"
#include "spec_rules.h"

#define PLAN_KIND "imgrecon-plan"
#define PLAN_MAX_BYTES (16u << 20) /* as status.json: far above any plan a quota allows */

/* An absolute form of path (realpath when it exists, else joined to the working directory);
 * malloc'd or NULL on allocation failure. */
static char *abs_path(const char *path)
{
    char *r = realpath(path, NULL);
    if (r != NULL || path[0] == '/')
        return r ? r : strdup(path);
    char cwd[4096];
    if (getcwd(cwd, sizeof(cwd)) == NULL)
        return strdup(path);
    return prov_asprintf("%s/%s", cwd, path);
}

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Copies the n strings of src into *ret (malloc'd, caller frees with free_list). Returns false
 * on allocation failure (nothing to free then). */
static bool copy_list(char *const *src, size_t n, char ***ret, size_t *ret_n)
{
    char **v = n ? calloc(n, sizeof(*v)) : NULL;
    bool ok = n == 0 || v != NULL;
    for (size_t i = 0; ok && i < n; i++)
        ok = (v[i] = strdup(src[i])) != NULL;
    if (!ok) {
        free_list(v, n);
        return false;
    }
    *ret = v;
    *ret_n = n;
    return true;
}

void rec_plan_policy_clear(rec_plan_policy *p)
{
    if (p == NULL)
        return;
    free(p->owner);
    free_list(p->allow_empty_regions, p->n_allow_empty_regions);
    free_list(p->regions, p->n_regions);
    free(p->account_id);
    free(p->caller_account_id);
    free_list(p->previous_owners, p->n_previous_owners);
    for (size_t i = 0; i < p->n_quotas; i++)
        free(p->quotas[i].region);
    free(p->quotas);
    for (size_t i = 0; i < p->n_manifests; i++)
        free(p->manifests[i]);
    free(p->manifests);
    free(p->endpoint);
    free(p->state_dir);
    free(p->config);
    memset(p, 0, sizeof(*p));
}

int rec_plan_policy_init(rec_plan_policy *p, const spec_config *cfg, const char *const *manifests,
                         size_t n_manifests, const char *state_dir, const char *config_path,
                         const char *caller_account_id)
{
    memset(p, 0, sizeof(*p));
    bool ok = true;
    p->owner = strdup(cfg->owner ? cfg->owner : "default");
    p->prune = cfg->prune;
    p->max_deletes = cfg->max_deletes;
    p->allow_empty = cfg->allow_empty;
    p->regions_all = cfg->regions_all;
    p->quota_default = cfg->quota_default;
    p->quotas = cfg->n_quotas ? calloc(cfg->n_quotas, sizeof(*p->quotas)) : NULL;
    ok = p->owner && (cfg->n_quotas == 0 || p->quotas);
    ok = ok && copy_list(cfg->allow_empty_regions, cfg->n_allow_empty_regions,
                         &p->allow_empty_regions, &p->n_allow_empty_regions);
    ok = ok && copy_list(cfg->regions, cfg->n_regions, &p->regions, &p->n_regions);
    if (ok && cfg->account_id)
        ok = (p->account_id = strdup(cfg->account_id)) != NULL;
    ok = ok && copy_list(cfg->previous_owners, cfg->n_previous_owners, &p->previous_owners,
                         &p->n_previous_owners);
    for (size_t i = 0; ok && i < cfg->n_quotas; i++) {
        p->quotas[p->n_quotas].limit = cfg->quotas[i].limit;
        ok = (p->quotas[p->n_quotas++].region = strdup(cfg->quotas[i].region)) != NULL;
    }
    p->manifests = n_manifests ? calloc(n_manifests, sizeof(*p->manifests)) : NULL;
    ok = ok && (n_manifests == 0 || p->manifests);
    for (size_t i = 0; ok && i < n_manifests; i++)
        ok = (p->manifests[p->n_manifests++] = abs_path(manifests[i])) != NULL;
    if (ok && cfg->endpoint)
        ok = (p->endpoint = strdup(cfg->endpoint)) != NULL;
    if (ok && state_dir)
        ok = (p->state_dir = abs_path(state_dir)) != NULL;
    if (ok && config_path)
        ok = (p->config = abs_path(config_path)) != NULL;
    if (ok && caller_account_id)
        ok = (p->caller_account_id = strdup(caller_account_id)) != NULL;
    if (!ok) {
        rec_plan_policy_clear(p);
        return -ENOMEM;
    }
    return 0;
}

/* The quota the policy gives region (the per-region override, else the default). */
static unsigned policy_quota(const rec_plan_policy *p, const char *region)
{
    for (size_t i = 0; i < p->n_quotas; i++)
        if (strcmp(p->quotas[i].region, region) == 0)
            return p->quotas[i].limit;
    return p->quota_default;
}

static const char *yes_no(bool b)
{
    return b ? "true" : "false";
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A region list as "[a, b]" sorted (so that lists compare as sets), or `empty` when n is 0;
 * malloc'd or NULL on allocation failure. */
static char *list_text(char *const *v, size_t n, const char *empty)
{
    if (n == 0)
        return strdup(empty);
    const char **sorted = calloc(n, sizeof(*sorted));
    char *buf = NULL;
    size_t len = 0;
    FILE *m = sorted ? open_memstream(&buf, &len) : NULL;
    if (m == NULL) {
        free(sorted);
        return NULL;
    }
    memcpy(sorted, v, n * sizeof(*sorted));
    qsort(sorted, n, sizeof(*sorted), cmp_str);
    for (size_t i = 0; i < n; i++)
        fprintf(m, "%s%s", i ? ", " : "[", sorted[i]);
    fputc(']', m);
    free(sorted);
    return fclose(m) == 0 ? buf : (free(buf), NULL);
}

/* The policy fields compared as text, in the order they are reported. */
enum {
    F_OWNER,
    F_PRUNE,
    F_MAX_DELETES,
    F_ALLOW_EMPTY,
    F_QUOTA_DEFAULT,
    F_REGIONS,
    F_ACCOUNT,
    F_PREVIOUS_OWNERS,
    F_N
};
static const char *const field_names[F_N] = {"owner",       "prune",          "max_deletes",
                                             "allow_empty", "quotas.default", "regions",
                                             "account_id",  "previous_owners"};

/* The policy values policy_texts renders: borrowed from a saved policy or from a config. */
typedef struct policy_view {
    const char *owner;
    bool prune;
    unsigned max_deletes;
    bool allow_empty;
    char *const *empty_regions;
    size_t n_empty;
    unsigned quota_default;
    bool regions_all;
    char *const *regions;
    size_t n_regions;
    const char *account_id;
    char *const *previous_owners;
    size_t n_previous_owners;
} policy_view;

/* Fills t[F_N] with the text of each policy field of v (malloc'd; free each); lists are
 * sorted so that they compare as sets. Returns false on allocation failure (t is then still safe
 * to free). */
static bool policy_texts(char *t[F_N], const policy_view *v)
{
    t[F_OWNER] = prov_asprintf("'%s'", v->owner);
    t[F_PRUNE] = strdup(yes_no(v->prune));
    t[F_MAX_DELETES] = prov_asprintf("%u", v->max_deletes);
    t[F_ALLOW_EMPTY] =
        v->allow_empty ? strdup("true") : list_text(v->empty_regions, v->n_empty, "false");
    t[F_QUOTA_DEFAULT] = prov_asprintf("%u", v->quota_default);
    t[F_REGIONS] = v->regions_all ? strdup("all") : list_text(v->regions, v->n_regions, "[]");
    t[F_ACCOUNT] = v->account_id ? prov_asprintf("'%s'", v->account_id) : strdup("(none)");
    t[F_PREVIOUS_OWNERS] = list_text(v->previous_owners, v->n_previous_owners, "[]");
    for (size_t i = 0; i < F_N; i++)
        if (t[i] == NULL)
            return false;
    return true;
}

/* The first policy field whose text differs, as the refusal message; NULL when none does.
 * *oom is set on allocation failure. */
static char *first_difference(const rec_plan_policy *p, const spec_config *cfg, const char *tail,
                              bool *oom)
{
    const policy_view pv = {p->owner,
                            p->prune,
                            p->max_deletes,
                            p->allow_empty,
                            p->allow_empty_regions,
                            p->n_allow_empty_regions,
                            p->quota_default,
                            p->regions_all,
                            p->regions,
                            p->n_regions,
                            p->account_id,
                            p->previous_owners,
                            p->n_previous_owners};
    const policy_view cv = {cfg->owner ? cfg->owner : "default",
                            cfg->prune,
                            cfg->max_deletes,
                            cfg->allow_empty,
                            cfg->allow_empty_regions,
                            cfg->n_allow_empty_regions,
                            cfg->quota_default,
                            cfg->regions_all,
                            cfg->regions,
                            cfg->n_regions,
                            cfg->account_id,
                            cfg->previous_owners,
                            cfg->n_previous_owners};
    char *was[F_N] = {0}, *now[F_N] = {0};
    bool ok = policy_texts(was, &pv) && policy_texts(now, &cv);
    char *msg = NULL;
    for (size_t i = 0; ok && msg == NULL && i < F_N; i++)
        if (strcmp(was[i], now[i]) != 0)
            ok = (msg = prov_asprintf("%s: the saved plan was made with %s, the settings given "
                                      "now say %s%s",
                                      field_names[i], was[i], now[i], tail)) != NULL;
    for (size_t i = 0; i < F_N; i++) {
        free(was[i]);
        free(now[i]);
    }
    *oom = !ok;
    return msg;
}

int rec_plan_policy_check(const rec_plan_policy *p, const spec_config *cfg, char **ret_error)
{
    const char *tail = "; run plan again with these settings, or apply the saved plan without "
                       "them (it records its own)";
    bool oom = false;
    char *msg = first_difference(p, cfg, tail, &oom);
    for (size_t i = 0; !oom && msg == NULL && i < cfg->n_quotas + p->n_quotas; i++) {
        const char *region =
            i < cfg->n_quotas ? cfg->quotas[i].region : p->quotas[i - cfg->n_quotas].region;
        unsigned was = policy_quota(p, region), now = spec_config_quota_for(cfg, region);
        if (was != now)
            oom = (msg = prov_asprintf("quotas.%s: the saved plan was made with %u, the settings "
                                       "given now say %u%s",
                                       region, was, now, tail)) == NULL;
    }
    if (oom)
        return -ENOMEM;
    if (msg == NULL)
        return 0;
    if (ret_error != NULL)
        *ret_error = msg;
    else
        free(msg);
    return -ESTALE;
}

/* A JSON array of the n strings of v; NULL on allocation failure. */
static json_t *list_json(char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < n; i++)
        if (json_array_append_new(a, json_string(v[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

/* The policy as recorded in the "policy" object: allow_empty is a boolean or a list of regions,
 * regions is "all" or a list, account_id a string or null (see PLAN-JSON.md). */
static json_t *policy_json(const rec_plan_policy *p)
{
    json_t *o = json_object(), *q = json_object(), *m = json_array();
    int bad = !o || !q || !m;
    for (size_t i = 0; !bad && i < p->n_quotas; i++)
        bad |= json_object_set_new(q, p->quotas[i].region, json_integer(p->quotas[i].limit));
    for (size_t i = 0; !bad && i < p->n_manifests; i++)
        bad |= json_array_append_new(m, json_string(p->manifests[i]));
    if (bad) {
        json_decref(o);
        json_decref(q);
        json_decref(m);
        return NULL;
    }
    bad |= json_object_set_new(o, "owner", json_string(p->owner));
    bad |= json_object_set_new(o, "prune", json_boolean(p->prune));
    bad |= json_object_set_new(o, "max_deletes", json_integer(p->max_deletes));
    bad |= json_object_set_new(o, "allow_empty",
                               p->n_allow_empty_regions && !p->allow_empty
                                   ? list_json(p->allow_empty_regions, p->n_allow_empty_regions)
                                   : json_boolean(p->allow_empty));
    bad |= json_object_set_new(
        o, "regions", p->regions_all ? json_string("all") : list_json(p->regions, p->n_regions));
    bad |= json_object_set_new(o, "account_id",
                               p->account_id ? json_string(p->account_id) : json_null());
    bad |=
        json_object_set_new(o, "caller_account_id",
                            p->caller_account_id ? json_string(p->caller_account_id) : json_null());
    bad |= json_object_set_new(o, "previous_owners",
                               list_json(p->previous_owners, p->n_previous_owners));
    bad |= json_object_set_new(o, "quota_default", json_integer(p->quota_default));
    bad |= json_object_set_new(o, "quotas", q);
    bad |= json_object_set_new(o, "manifests", m);
    bad |= json_object_set_new(o, "endpoint", p->endpoint ? json_string(p->endpoint) : json_null());
    bad |=
        json_object_set_new(o, "state_dir", p->state_dir ? json_string(p->state_dir) : json_null());
    bad |= json_object_set_new(o, "config", p->config ? json_string(p->config) : json_null());
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Writes via a unique temp file next to path + rename, so that a crash never leaves half a
 * plan behind and a planted "<path>.tmp" is never followed. */
int rec_plan_save(const rec_plan *plan, const rec_plan_policy *policy, const char *path)
{
    if (!plan || !path)
        return -EINVAL;
    json_t *doc = rec_plan_json(plan);
    if (!doc)
        return -ENOMEM;
    json_t *pj = policy ? policy_json(policy) : NULL;
    if (json_object_set_new(doc, "kind", json_string(PLAN_KIND)) != 0 || (policy && !pj) ||
        (pj && json_object_set_new(doc, "policy", pj) != 0)) {
        json_decref(doc);
        return -ENOMEM;
    }
    /* C1 controls escaped like in `plan --json`: a saved plan is often read with cat. */
    _cleanup_free_ char *text =
        rec_escape_json_c1(json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER));
    json_decref(doc);
    _cleanup_free_ char *tmp = prov_asprintf("%s.XXXXXX", path);
    if (!text || !tmp)
        return -ENOMEM;
    if (strlen(text) + 1 > PLAN_MAX_BYTES) /* rec_plan_load would refuse it */
        return -EFBIG;
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = rec_write_all(fd, text, strlen(text));
    if (rc == 0)
        rc = rec_write_all(fd, "\n", 1);
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc < 0)
        (void)unlink(tmp);
    return rc;
}

/* ---- loading ---- */

typedef struct loader {
    char *err;
    int rc;
} loader;

static void fail(loader *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Records the first problem found (later ones are consequences). */
static void fail(loader *l, const char *fmt, ...)
{
    va_list ap;
    if (l->rc < 0)
        return;
    l->rc = -EINVAL;
    va_start(ap, fmt);
    if (vasprintf(&l->err, fmt, ap) < 0)
        l->err = NULL;
    va_end(ap);
}

/* Optional string member: NULL/absent -> NULL; a non-string -> error. */
static bool get_str(loader *l, json_t *obj, const char *key, char **ret, bool required,
                    const char *what, size_t idx)
{
    json_t *v = json_object_get(obj, key);
    *ret = NULL;
    if (!v || json_is_null(v)) {
        if (required)
            fail(l, "%s %zu: missing string field", what, idx);
        return !required;
    }
    if (!json_is_string(v)) {
        fail(l, "%s %zu: a field is not a string", what, idx);
        return false;
    }
    *ret = strdup(json_string_value(v));
    if (!*ret) {
        l->rc = -ENOMEM;
        return false;
    }
    return true;
}

static bool get_uint(json_t *obj, const char *key, unsigned *ret)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 0x7fffffff)
        return false;
    *ret = (unsigned)json_integer_value(v);
    return true;
}

static bool get_manifest(loader *l, json_t *obj, char **file, unsigned *line, unsigned *col,
                         const char *what, size_t idx)
{
    json_t *m = json_object_get(obj, "manifest");
    if (!m || json_is_null(m))
        return true;
    if (!json_is_object(m) || !get_uint(m, "line", line) || !get_uint(m, "col", col)) {
        fail(l, "%s %zu: malformed manifest position", what, idx);
        return false;
    }
    return get_str(l, m, "file", file, true, what, idx);
}

static prov_image *parse_image(loader *l, json_t *v, size_t idx)
{
    if (!v || json_is_null(v))
        return NULL;
    if (!json_is_object(v)) {
        fail(l, "%s %zu: before/after is not an object", "step", idx);
        return NULL;
    }
    prov_image *img = calloc(1, sizeof(*img));
    if (!img) {
        l->rc = -ENOMEM;
        return NULL;
    }
    bool ok = get_str(l, v, "image_id", &img->image_id, false, "step", idx) &&
              get_str(l, v, "name", &img->name, false, "step", idx) &&
              get_str(l, v, "region", &img->region_id, false, "step", idx) &&
              get_str(l, v, "instance_id", &img->instance_id, false, "step", idx) &&
              get_str(l, v, "system_snapshot_id", &img->system_snapshot_id, false, "step", idx) &&
              get_str(l, v, "data_snapshot_id", &img->data_snapshot_id, false, "step", idx) &&
              get_str(l, v, "description", &img->description, false, "step", idx) &&
              get_str(l, v, "resource_group_id", &img->resource_group_id, false, "step", idx);
    json_t *st = json_object_get(v, "status");
    img->status = PROV_IMG_UNKNOWN;
    if (ok && st && !json_is_null(st)) {
        if (!json_is_integer(st) || json_integer_value(st) < 0 || json_integer_value(st) > 4) {
            fail(l, "step %zu: bad image status", idx);
            ok = false;
        } else {
            img->status = (int)json_integer_value(st);
        }
    }
    img->in_share = json_is_true(json_object_get(v, "in_share"));
    img->in_share_user = json_is_true(json_object_get(v, "in_share_user"));
    json_t *accts = json_object_get(v, "share_accounts");
    if (ok && accts && !json_is_null(accts)) {
        if (!json_is_array(accts)) {
            fail(l, "step %zu: share_accounts is not an array", idx);
            ok = false;
        }
        img->share_accounts_known = ok;
        size_t n = ok ? json_array_size(accts) : 0;
        img->share_accounts = n ? calloc(n, sizeof(char *)) : NULL;
        if (n && !img->share_accounts) {
            l->rc = -ENOMEM;
            ok = false;
        }
        for (size_t k = 0; ok && k < n; k++) {
            json_t *a = json_array_get(accts, k);
            if (!json_is_string(a)) {
                fail(l, "step %zu: an account is not a string", idx);
                ok = false;
            } else if (!(img->share_accounts[img->n_share_accounts++] =
                             strdup(json_string_value(a)))) {
                l->rc = -ENOMEM;
                ok = false;
            }
        }
    }
    json_t *tags = json_object_get(v, "tags");
    if (ok && tags && !json_is_null(tags)) {
        const char *k;
        json_t *tv;
        if (!json_is_object(tags)) {
            fail(l, "step %zu: tags is not an object", idx);
            ok = false;
        }
        json_object_foreach(tags, k, tv)
        {
            if (!ok)
                break;
            if (!json_is_string(tv)) {
                fail(l, "step %zu: a tag value is not a string", idx);
                ok = false;
            } else if (rec_image_set_tag(img, k, json_string_value(tv)) < 0) {
                l->rc = -ENOMEM;
                ok = false;
            }
        }
    }
    if (!ok) {
        rec_image_free(img);
        return NULL;
    }
    return img;
}

static bool is_hex64(const char *s)
{
    if (!s || strlen(s) != REC_HASH_HEX)
        return false;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return false;
    return true;
}

static void parse_step(loader *l, rec_plan *pl, json_t *js, size_t i, size_t n_changes)
{
    rec_step *st = &pl->steps[i];
    char *action = NULL, *hash = NULL, *token = NULL;
    if (!json_is_object(js)) {
        fail(l, "%s %zu: not an object", "step", i + 1);
        return;
    }
    if (!get_uint(js, "id", &st->id) || st->id != i + 1) {
        fail(l, "%s %zu: id must equal its position", "step", i + 1);
        return;
    }
    if (!get_str(l, js, "action", &action, true, "step", i + 1) ||
        rec_action_parse(action, &st->action) < 0) {
        free(action);
        fail(l, "step %zu: unknown action", i + 1);
        return;
    }
    free(action);
    if (!get_str(l, js, "address", &st->address, true, "step", i + 1) ||
        !get_str(l, js, "region", &st->region, true, "step", i + 1) ||
        !get_str(l, js, "name", &st->name, false, "step", i + 1) ||
        !get_str(l, js, "image_id", &st->image_id, false, "step", i + 1) ||
        !get_str(l, js, "reason", &st->reason, false, "step", i + 1) ||
        !get_manifest(l, js, &st->file, &st->line, &st->col, "step", i + 1))
        return;
    unsigned change = 0, gen = 0;
    if (!get_uint(js, "change", &change) || change >= n_changes ||
        !get_uint(js, "generation", &gen)) {
        fail(l, "step %zu: bad change or generation", i + 1);
        return;
    }
    st->change = change;
    st->ecs_force = json_is_true(json_object_get(js, "force"));
    json_t *tk = json_object_get(js, "takeover");
    if (tk &&
        (!json_is_string(tk) || rec_takeover_parse(json_string_value(tk), &st->takeover) < 0)) {
        fail(l, "step %zu: unknown takeover", i + 1);
        return;
    }
    st->over_quota = json_is_true(json_object_get(js, "over_quota"));
    json_t *deps = json_object_get(js, "depends_on");
    if (!json_is_array(deps)) {
        fail(l, "%s %zu: depends_on is not an array", "step", i + 1);
        return;
    }
    size_t nd = json_array_size(deps);
    st->depends_on = nd ? calloc(nd, sizeof(*st->depends_on)) : NULL;
    if (nd && !st->depends_on) {
        l->rc = -ENOMEM;
        return;
    }
    for (size_t k = 0; k < nd; k++) {
        json_t *d = json_array_get(deps, k);
        if (!json_is_integer(d) || json_integer_value(d) < 1 ||
            json_integer_value(d) >= (json_int_t)st->id) {
            fail(l, "step %zu: a dependency must name an earlier step", i + 1);
            return;
        }
        st->depends_on[st->n_depends++] = (unsigned)json_integer_value(d);
    }
    st->before = parse_image(l, json_object_get(js, "before"), i + 1);
    if (l->rc < 0)
        return;
    st->after = parse_image(l, json_object_get(js, "after"), i + 1);
    if (l->rc < 0)
        return;
    if (st->action == REC_ACT_CREATE && (!st->after || !st->after->instance_id || !st->name)) {
        fail(l, "step %zu: a create needs its name and after.instance_id", i + 1);
        return;
    }
    if ((st->action == REC_ACT_TAG || st->action == REC_ACT_UNTAG ||
         st->action == REC_ACT_ADD_ACCOUNTS || st->action == REC_ACT_REMOVE_ACCOUNTS) &&
        (!st->before || !st->after)) {
        fail(l, "step %zu: an in-place step needs before and after", i + 1);
        return;
    }
    if (st->takeover != REC_TAKEOVER_NONE && st->action != REC_ACT_TAG) {
        fail(l, "step %zu: only a tag step takes an image over", i + 1);
        return;
    }
    if (st->action != REC_ACT_CREATE && st->action != REC_ACT_SHARE &&
        st->action != REC_ACT_ADD_ACCOUNTS && !st->image_id) {
        fail(l, "step %zu: image_id is required for this action", i + 1);
        return;
    }
    if (!get_str(l, js, "spec_hash", &hash, true, "step", i + 1))
        return;
    if (!get_str(l, js, "client_token", &token, true, "step", i + 1)) {
        free(hash);
        return;
    }
    if (!is_hex64(hash)) {
        fail(l, "step %zu: bad spec_hash", i + 1);
    } else {
        memcpy(st->spec_hash, hash, REC_HASH_HEX + 1);
        rec_step_set_generation(st, pl->owner, gen);
        if (strcmp(st->client_token, token) != 0)
            fail(l, "step %zu: client_token does not match the step", i + 1);
    }
    free(hash);
    free(token);
}

static void parse_change(loader *l, rec_plan *pl, json_t *jc, size_t i)
{
    rec_change *ch = &pl->changes[i];
    char *kind = NULL;
    if (!json_is_object(jc) || !get_str(l, jc, "kind", &kind, true, "change", i)) {
        fail(l, "%s %zu: malformed", "change", i);
        return;
    }
    bool found = rec_change_kind_parse(kind, &ch->kind) == 0;
    free(kind);
    if (!found) {
        fail(l, "%s %zu: unknown kind", "change", i);
        return;
    }
    if (!get_str(l, jc, "address", &ch->address, true, "change", i) ||
        !get_str(l, jc, "reason", &ch->reason, false, "change", i) ||
        !get_manifest(l, jc, &ch->file, &ch->line, &ch->col, "change", i))
        return;
    json_t *steps = json_object_get(jc, "steps");
    if (!json_is_array(steps)) {
        fail(l, "%s %zu: steps is not an array", "change", i);
        return;
    }
    size_t n = json_array_size(steps);
    ch->steps = n ? calloc(n, sizeof(*ch->steps)) : NULL;
    if (n && !ch->steps) {
        l->rc = -ENOMEM;
        return;
    }
    for (size_t k = 0; k < n; k++) {
        json_t *s = json_array_get(steps, k);
        if (!json_is_integer(s) || json_integer_value(s) < 1 ||
            json_integer_value(s) > (json_int_t)pl->n_steps) {
            fail(l, "%s %zu: a step id is out of range", "change", i);
            return;
        }
        ch->steps[ch->n_steps++] = (unsigned)json_integer_value(s);
    }
}

static void parse_notes(loader *l, rec_plan *pl, json_t *doc, size_t *cap)
{
    static const struct {
        const char *key;
        rec_note_kind kind;
    } lists[] = {{"unmanaged", REC_NOTE_UNMANAGED}, {"guards", REC_NOTE_GUARD},
                 {"conflicts", REC_NOTE_CONFLICT},  {"refused", REC_NOTE_REFUSED},
                 {"drift", REC_NOTE_DRIFT},         {"warnings", REC_NOTE_WARNING}};
    for (size_t li = 0; li < sizeof(lists) / sizeof(lists[0]) && l->rc == 0; li++) {
        json_t *arr = json_object_get(doc, lists[li].key);
        if (!arr)
            continue;
        if (!json_is_array(arr)) {
            fail(l, "a note list is not an array");
            return;
        }
        for (size_t i = 0; i < json_array_size(arr) && l->rc == 0; i++) {
            json_t *jn = json_array_get(arr, i);
            if (!json_is_object(jn)) {
                fail(l, "%s %zu: not an object", "note", i);
                return;
            }
            if (rec_grow((void **)&pl->notes, cap, pl->n_notes, sizeof(rec_note)) < 0) {
                l->rc = -ENOMEM;
                return;
            }
            rec_note *n = &pl->notes[pl->n_notes++];
            memset(n, 0, sizeof(*n));
            n->kind = lists[li].kind;
            if (!get_str(l, jn, "address", &n->address, false, "note", i) ||
                !get_str(l, jn, "region", &n->region, false, "note", i) ||
                !get_str(l, jn, "name", &n->name, false, "note", i) ||
                !get_str(l, jn, "image_id", &n->image_id, false, "note", i) ||
                !get_str(l, jn, "message", &n->text, true, "note", i) ||
                !get_manifest(l, jn, &n->file, &n->line, &n->col, "note", i) ||
                !get_str(l, jn, "owner", &n->owner, false, "note", i))
                return;
            json_t *kind = json_object_get(jn, "conflict");
            if (n->kind == REC_NOTE_CONFLICT && json_is_string(kind))
                (void)rec_conflict_kind_parse(json_string_value(kind), &n->conflict);
        }
    }
}

static void parse_doc(loader *l, rec_plan *pl, json_t *doc)
{
    json_t *fv = json_object_get(doc, "format_version");
    json_t *kind = json_object_get(doc, "kind");
    if (!json_is_object(doc) || !json_is_string(kind) ||
        strcmp(json_string_value(kind), PLAN_KIND) != 0) {
        fail(l, "not an imgrecon plan file");
        return;
    }
    if (!json_is_string(fv) || strcmp(json_string_value(fv), REC_PLAN_FORMAT_VERSION) != 0) {
        fail(l, "unsupported format_version (this imgrecon reads %s)", REC_PLAN_FORMAT_VERSION);
        return;
    }
    if (!get_str(l, doc, "owner", &pl->owner, true, "plan", 0))
        return;
    json_t *fp = json_object_get(doc, "fingerprint");
    json_t *fd = json_object_get(fp, "desired"), *fo = json_object_get(fp, "observed");
    if (!json_is_string(fd) || !json_is_string(fo) || !is_hex64(json_string_value(fd)) ||
        !is_hex64(json_string_value(fo))) {
        fail(l, "missing or malformed fingerprint");
        return;
    }
    memcpy(pl->fp.desired, json_string_value(fd), REC_HASH_HEX + 1);
    memcpy(pl->fp.observed, json_string_value(fo), REC_HASH_HEX + 1);
    json_t *steps = json_object_get(doc, "steps"), *changes = json_object_get(doc, "changes");
    if (!json_is_array(steps) || !json_is_array(changes)) {
        fail(l, "steps and changes must be arrays");
        return;
    }
    size_t ns = json_array_size(steps), nc = json_array_size(changes);
    pl->steps = ns ? calloc(ns, sizeof(*pl->steps)) : NULL;
    pl->changes = nc ? calloc(nc, sizeof(*pl->changes)) : NULL;
    if ((ns && !pl->steps) || (nc && !pl->changes)) {
        l->rc = -ENOMEM;
        return;
    }
    pl->n_steps = ns;
    pl->n_changes = nc;
    for (size_t i = 0; i < ns && l->rc == 0; i++)
        parse_step(l, pl, json_array_get(steps, i), i, nc);
    for (size_t i = 0; i < nc && l->rc == 0; i++)
        parse_change(l, pl, json_array_get(changes, i), i);
    size_t cap = 0;
    if (l->rc == 0)
        parse_notes(l, pl, doc, &cap);
}

/* True when s is a valid imgrecon/owner tag value (a policy's previous_owners item). */
static bool owner_valid(const char *s)
{
    return *s != '\0' && spec_check_tag_value(s) == NULL;
}

/* True when s looks like an Alibaba Cloud account id (digits only, as GetCallerIdentity says). */
static bool account_valid(const char *s)
{
    return *s != '\0' && strlen(s) <= 32 && strspn(s, "0123456789") == strlen(s);
}

/* Reads a JSON list of strings that valid() accepts (field and what name them in errors) into
 * *ret / *ret_n (caller frees through rec_plan_policy_clear). Returns false after fail() or on
 * allocation failure. */
static bool parse_names(loader *l, json_t *a, const char *field, bool (*valid)(const char *),
                        const char *what, char ***ret, size_t *ret_n)
{
    size_t n = json_array_size(a);
    char **v = n ? calloc(n, sizeof(*v)) : NULL;
    if (n && !v) {
        l->rc = -ENOMEM;
        return false;
    }
    *ret = v;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(a, i);
        if (!json_is_string(e) || !valid(json_string_value(e))) {
            fail(l, "policy: %s[%zu] is not %s", field, i, what);
            return false;
        }
        if ((v[i] = strdup(json_string_value(e))) == NULL) {
            l->rc = -ENOMEM;
            return false;
        }
        *ret_n = i + 1;
    }
    return true;
}

/* parse_names for a list of region ids. */
static bool parse_regions(loader *l, json_t *a, const char *field, char ***ret, size_t *ret_n)
{
    return parse_names(l, a, field, spec_region_valid, "a region id", ret, ret_n);
}

/* Reads the "policy" object into p (see rec_plan_policy). */
static void parse_policy(loader *l, json_t *doc, rec_plan_policy *p)
{
    json_t *o = json_object_get(doc, "policy");
    if (!json_is_object(o)) {
        fail(l, "the plan records no policy (made by an older imgrecon); run plan again");
        return;
    }
    json_t *prune = json_object_get(o, "prune"), *empty = json_object_get(o, "allow_empty");
    json_t *q = json_object_get(o, "quotas"), *m = json_object_get(o, "manifests");
    json_t *regions = json_object_get(o, "regions");
    json_t *prev = json_object_get(o, "previous_owners");
    json_t *caller = json_object_get(o, "caller_account_id");
    if (!get_str(l, o, "owner", &p->owner, true, "policy", 0) ||
        !get_str(l, o, "endpoint", &p->endpoint, false, "policy", 0) ||
        !get_str(l, o, "state_dir", &p->state_dir, true, "policy", 0) ||
        !get_str(l, o, "config", &p->config, false, "policy", 0) ||
        !get_str(l, o, "account_id", &p->account_id, false, "policy", 0) ||
        !get_str(l, o, "caller_account_id", &p->caller_account_id, false, "policy", 0))
        return;
    if (regions == NULL || prev == NULL || caller == NULL) {
        fail(l, "the plan records no %s in its policy (made by an older imgrecon); run plan again",
             regions == NULL ? "regions"
             : prev == NULL  ? "previous_owners"
                             : "caller_account_id");
        return;
    }
    if (p->caller_account_id != NULL && !account_valid(p->caller_account_id)) {
        fail(l, "policy: caller_account_id is not an account id");
        return;
    }
    if (!json_is_array(prev)) {
        fail(l, "policy: previous_owners must be a list of owner names");
        return;
    }
    if (!parse_names(l, prev, "previous_owners", owner_valid, "an owner name", &p->previous_owners,
                     &p->n_previous_owners))
        return;
    if (json_is_array(empty)) {
        if (!parse_regions(l, empty, "allow_empty", &p->allow_empty_regions,
                           &p->n_allow_empty_regions))
            return;
    } else if (!json_is_boolean(empty)) {
        fail(l, "policy: allow_empty must be true, false or a list of region ids");
        return;
    }
    if (json_is_string(regions) && strcmp(json_string_value(regions), "all") == 0) {
        p->regions_all = true;
    } else if (!json_is_array(regions)) {
        fail(l, "policy: regions must be \"all\" or a list of region ids");
        return;
    } else if (!parse_regions(l, regions, "regions", &p->regions, &p->n_regions)) {
        return;
    }
    if (!json_is_boolean(prune) || !get_uint(o, "max_deletes", &p->max_deletes) ||
        !get_uint(o, "quota_default", &p->quota_default) || !json_is_object(q) ||
        !json_is_array(m)) {
        fail(l, "policy: a field is missing or has the wrong type");
        return;
    }
    p->prune = json_is_true(prune);
    p->allow_empty = json_is_true(empty);
    size_t nq = json_object_size(q), nm = json_array_size(m);
    p->quotas = nq ? calloc(nq, sizeof(*p->quotas)) : NULL;
    p->manifests = nm ? calloc(nm, sizeof(*p->manifests)) : NULL;
    if ((nq && !p->quotas) || (nm && !p->manifests)) {
        l->rc = -ENOMEM;
        return;
    }
    const char *k;
    json_t *v;
    json_object_foreach(q, k, v)
    {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 100000) {
            fail(l, "policy: quotas.%s is not a count", k);
            return;
        }
        p->quotas[p->n_quotas].limit = (unsigned)json_integer_value(v);
        if ((p->quotas[p->n_quotas++].region = strdup(k)) == NULL) {
            l->rc = -ENOMEM;
            return;
        }
    }
    for (size_t i = 0; i < nm; i++) {
        json_t *e = json_array_get(m, i);
        if (!json_is_string(e)) {
            fail(l, "policy: a manifest path is not a string");
            return;
        }
        if ((p->manifests[p->n_manifests++] = strdup(json_string_value(e))) == NULL) {
            l->rc = -ENOMEM;
            return;
        }
    }
}

int rec_plan_copy(const rec_plan *plan, rec_plan **ret)
{
    json_t *doc = rec_plan_json(plan);
    if (!doc || json_object_set_new(doc, "kind", json_string(PLAN_KIND)) != 0) {
        json_decref(doc);
        return -ENOMEM;
    }
    loader l = {0};
    rec_plan *pl = calloc(1, sizeof(*pl));
    if (pl)
        parse_doc(&l, pl, doc);
    json_decref(doc);
    free(l.err);
    if (!pl || l.rc < 0) {
        rec_plan_free(pl);
        return -ENOMEM; /* our own document always parses; only allocation can fail */
    }
    *ret = pl;
    return 0;
}

/* Reads the plan file whole for rec_plan_load: `apply FILE` names it, so it may be anything. It
 * is opened without blocking (a FIFO or a device would otherwise hang apply with nothing said),
 * must be a regular file, and is read up to PLAN_MAX_BYTES. Returns 0 and *ret (malloc'd, NUL
 * terminated) and *ret_len, or a negative errno with *ret_error (malloc'd, may be NULL) as
 * "path: message". */
static int read_plan_file(const char *path, char **ret, size_t *ret_len, char **ret_error)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int rc = -errno;
        *ret_error = prov_asprintf("%s: %s", path, strerror(-rc));
        return rc;
    }
    struct stat st;
    int rc = fstat(fd, &st) < 0 ? -errno : 0;
    if (rc == 0 && !S_ISREG(st.st_mode))
        rc = -EINVAL;
    else if (rc == 0 && (uint64_t)st.st_size > PLAN_MAX_BYTES)
        rc = -EFBIG;
    char *buf = rc == 0 ? malloc((size_t)st.st_size + 1) : NULL;
    size_t len = 0;
    if (rc == 0 && buf == NULL)
        rc = -ENOMEM;
    /* Up to one byte past the size fstat gave: a file that grew meanwhile is caught, not cut. */
    while (rc == 0 && len <= (size_t)st.st_size) {
        ssize_t n = read(fd, buf + len, (size_t)st.st_size + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            rc = -errno;
        else if (n == 0)
            break;
        else
            len += (size_t)n;
    }
    if (rc == 0 && len > (size_t)st.st_size)
        rc = -EAGAIN;
    (void)close(fd);
    if (rc < 0) {
        free(buf);
        *ret_error = rc == -EINVAL   ? prov_asprintf("%s: not a regular file", path)
                     : rc == -EFBIG  ? prov_asprintf("%s: larger than %u bytes, too large for a "
                                                      "saved plan",
                                                     path, PLAN_MAX_BYTES)
                     : rc == -EAGAIN ? prov_asprintf("%s: changed while it was read", path)
                     : rc != -ENOMEM ? prov_asprintf("%s: %s", path, strerror(-rc))
                                     : NULL;
        return rc;
    }
    buf[len] = '\0';
    *ret = buf;
    *ret_len = len;
    return 0;
}

int rec_plan_load(const char *path, rec_plan **ret, rec_plan_policy *ret_policy, char **ret_error)
{
    if (!path || !ret)
        return -EINVAL;
    char *text = NULL, *ferr = NULL;
    size_t len = 0;
    int rrc = read_plan_file(path, &text, &len, &ferr);
    if (rrc < 0) {
        if (ret_error)
            *ret_error = ferr;
        else
            free(ferr);
        return rrc;
    }
    json_error_t jerr;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (!doc) {
        if (ret_error)
            *ret_error = prov_asprintf("%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
        return -EINVAL;
    }
    loader l = {0};
    rec_plan *pl = calloc(1, sizeof(*pl));
    if (!pl) {
        json_decref(doc);
        return -ENOMEM;
    }
    rec_plan_policy pol;
    memset(&pol, 0, sizeof(pol));
    parse_doc(&l, pl, doc);
    if (l.rc == 0 && ret_policy)
        parse_policy(&l, doc, &pol);
    json_decref(doc);
    if (l.rc < 0) {
        rec_plan_policy_clear(&pol);
        rec_plan_free(pl);
        if (ret_error && l.rc == -EINVAL)
            *ret_error = prov_asprintf("%s: %s", path, l.err ? l.err : "invalid plan");
        free(l.err);
        return l.rc;
    }
    free(l.err);
    *ret = pl;
    if (ret_policy)
        *ret_policy = pol;
    return 0;
}
