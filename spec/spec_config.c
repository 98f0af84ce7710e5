/* The config file (spec_config.h). Every key is defined once, in `keys` below: its name, default
 * (as YAML text, applied by spec_config_init through the same setter the file goes through, so a
 * default can never be a value the file could not hold), bounds and setter. Called by cmd/ and
 * the daemon (initial load and SIGHUP reload). */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "spec.h"
#include "spec_config.h"
#include "spec_diag_int.h"
#include "spec_known.h"
#include "spec_rules.h"
#include "spec_yaml.h"

/* Where a setter reports to; diags is NULL while applying the built-in defaults. */
typedef struct cfg_ctx {
    spec_diags *diags;
    const char *base_dir; /* the config file's directory, for relative manifest paths */
} cfg_ctx;

/* One config file being read: where setters report, and the first error. */
typedef struct load_ctx {
    spec_config *cfg;
    cfg_ctx c;
    unsigned docs;
    int rc;
} load_ctx;

typedef struct cfg_key cfg_key;
typedef int (*cfg_setter)(spec_config *cfg, const cfg_key *k, const spec_ynode *v, cfg_ctx *c);

typedef struct cfg_choice {
    const char *name;
    int value;
} cfg_choice;

struct cfg_key {
    const char *name;
    const char *def;   /* default as a YAML scalar; NULL is null */
    uint64_t min, max; /* integers: bounds; durations: milliseconds */
    size_t off;        /* the field in spec_config */
    cfg_setter set;
    const cfg_choice *choices; /* enums, terminated by a NULL name */
};

#define FIELD(f) offsetof(spec_config, f)
#define AT(cfg, k, type) ((type *)((char *)(cfg) + (k)->off))

__attribute__((format(printf, 3, 4))) static int bad(cfg_ctx *c, const spec_ynode *n,
                                                     const char *fmt, ...)
{
    if (c->diags != NULL) {
        va_list ap;
        va_start(ap, fmt);
        spec_diags_vadd_clean(c->diags, n->pos, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

static const char *describe(const spec_ynode *n, char *buf, size_t size)
{
    return spec_ynode_describe(n, buf, size);
}

/* A string value: a scalar that is not null or boolean and holds no NUL byte. */
static const char *text_of(const spec_ynode *v)
{
    bool b;
    if (v->kind != SPEC_YSCALAR || spec_ynode_is_null(v) || spec_ynode_bool(v, &b) == 0 ||
        strlen(v->text) != v->len)
        return NULL;
    return v->text;
}

static int replace_str(char **dst, const char *s)
{
    char *copy = NULL;
    if (s != NULL && (copy = strdup(s)) == NULL)
        return -ENOMEM;
    free(*dst);
    *dst = copy;
    return 0;
}

/* ---- Lists of strings ------------------------------------------------------------------- */

/* Checks item i of a list of strings for read_strv; s is its text (text_of), NULL when the item
 * is not a string. A bad item is reported with bad() at items[i], so that the diagnostic carries
 * the item's own file:line:col, and the check returns -EINVAL; a good one returns 0. items[0..i)
 * are the items before it (a check for repeats reads them); ud is cfg_strv's, borrowed. */
typedef int (*cfg_item_check)(cfg_ctx *c, const spec_ynode *const *items, size_t i, const char *s,
                              const void *ud);

/* How read_strv reads one key's list. */
typedef struct cfg_strv {
    cfg_item_check check;
    const void *ud;  /* passed to check, borrowed (usually the key's name for messages) */
    bool first_only; /* stop at the first bad item: one diagnostic */
    bool paths;      /* copy relative items as paths from the config's directory */
} cfg_strv;

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Replaces the list *dst of *n_dst strings with v (n strings, taken); frees the old one. */
static void replace_strv(char ***dst, size_t *n_dst, char **v, size_t n)
{
    free_strv(*dst, *n_dst);
    *dst = v;
    *n_dst = n;
}

/* A path from the config file: a relative one is taken from the config's directory, so that a
 * daemon started from / finds it. Sets *ret (caller frees); 0 or -ENOMEM. Used by manifests and
 * a notify entry's secret_file. */
static int resolve_path(const cfg_ctx *c, const char *s, char **ret)
{
    char *p = NULL;
    if (s[0] != '/' && c->base_dir != NULL && strcmp(c->base_dir, ".") != 0) {
        if (asprintf(&p, "%s/%s", c->base_dir, s) < 0)
            return -ENOMEM;
    } else if ((p = strdup(s)) == NULL) {
        return -ENOMEM;
    }
    *ret = p;
    return 0;
}

/* Reads a YAML list of strings for every config key that holds one (manifests,
 * previous_owners, allow_empty and regions, ha.etcd_endpoints, a notify entry's events): v is a
 * sequence, or one scalar standing for a one-item list. Checks every item with how->check
 * (each bad item reported at its own position; how->first_only stops at the first) and, when
 * all pass and ret is not NULL, copies their text into a fresh array of v's length (NULL when
 * empty; caller frees with free_strv). Returns 0, -EINVAL or -ENOMEM. */
static int read_strv(cfg_ctx *c, const spec_ynode *v, const cfg_strv *how, char ***ret)
{
    const spec_ynode *const *items = &v;
    size_t n = 1;
    if (v->kind == SPEC_YSEQ) {
        items = (const spec_ynode *const *)v->items;
        n = v->n;
    }
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        int r = how->check(c, items, i, text_of(items[i]), how->ud);
        if (r == -ENOMEM || (r < 0 && how->first_only))
            return r;
        if (r < 0)
            rc = r;
    }
    if (rc < 0 || ret == NULL)
        return rc;
    char **list = n ? calloc(n, sizeof(*list)) : NULL;
    if (n && list == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const char *s = items[i]->text;
        if (how->paths ? resolve_path(c, s, &list[i]) < 0 : (list[i] = strdup(s)) == NULL) {
            free_strv(list, i);
            return -ENOMEM;
        }
    }
    *ret = list;
    return 0;
}

/* ---- Strict parsers ----------------------------------------------------------------------- */

/* Reads a positive decimal integer without sign, spaces or leading zeros; *end gets the rest. */
static int parse_positive(const char *s, uint64_t max, uint64_t *ret, const char **end)
{
    if (*s < '1' || *s > '9')
        return -EINVAL;
    uint64_t v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (max - d) / 10)
            return -EINVAL;
        v = v * 10 + d;
    }
    *ret = v;
    *end = s;
    return 0;
}

int spec_parse_duration(const char *s, uint64_t *ret_ms)
{
    uint64_t n, unit;
    const char *u;
    if (s == NULL || parse_positive(s, UINT64_MAX, &n, &u) < 0)
        return -EINVAL;
    if (strcmp(u, "ms") == 0)
        unit = 1;
    else if (strcmp(u, "s") == 0)
        unit = 1000;
    else if (strcmp(u, "m") == 0)
        unit = 60000;
    else if (strcmp(u, "h") == 0)
        unit = 3600000;
    else
        return -EINVAL;
    if (n > UINT64_MAX / unit)
        return -EINVAL;
    *ret_ms = n * unit;
    return 0;
}

int spec_parse_rate(const char *s, spec_rate *ret)
{
    uint64_t calls, window;
    const char *rest;
    if (s == NULL || parse_positive(s, SPEC_RATE_CALLS_MAX, &calls, &rest) < 0 || *rest != '/' ||
        spec_parse_duration(rest + 1, &window) < 0 || window > SPEC_RATE_WINDOW_MAX_MS)
        return -EINVAL;
    ret->calls = (unsigned)calls;
    ret->window_ms = window;
    return 0;
}

/* Formats milliseconds in the largest exact unit, the way durations are written. */
static void fmt_duration(uint64_t ms, char *buf, size_t size)
{
    if (ms > 0 && ms % 3600000 == 0)
        snprintf(buf, size, "%lluh", (unsigned long long)(ms / 3600000));
    else if (ms > 0 && ms % 60000 == 0)
        snprintf(buf, size, "%llum", (unsigned long long)(ms / 60000));
    else if (ms > 0 && ms % 1000 == 0)
        snprintf(buf, size, "%llus", (unsigned long long)(ms / 1000));
    else
        snprintf(buf, size, "%llums", (unsigned long long)ms);
}

/* ---- Setters ------------------------------------------------------------------------------ */

static int set_owner(spec_config *cfg, const cfg_key *k, const spec_ynode *v, cfg_ctx *c)
{
    char d[256];
    const char *s = text_of(v);
    if (s == NULL || *s == '\0')
        return bad(c, v, "'%s' must be a non-empty string, got %s", k->name,
                   describe(v, d, sizeof(d)));
    const char *why = spec_check_tag_value(s);
    if (why != NULL)
        return bad(c, v, "'%s' is used as the imgrecon/owner tag value and %s", k->name, why);
    return replace_str(AT(cfg, k, char *), s);
}

/* A required, non-empty string such as state_dir. */
static int set_string(spec_config *cfg, const cfg_key *k, const spec_ynode *v, cfg_ctx *c)
{
    char d[256];
    const char *s = text_of(v);
    if (s == NULL || *s == '\0')
        return bad(c, v, "'%s' must be a non-empty string, got %s", k->name,
                   describe(v, d, sizeof(d)));
    return replace_str(AT(cfg, k, char *), s);
}

/* url with any user:password@ masked (defined with the endpoint checks below). */
static void endpoint_masked(const char *url, char *out, size_t size);

/* An optional string: null (or empty) means "not set". */
static int set_opt_string(spec_config *cfg, const cfg_key *k, const spec_ynode *v, cfg_ctx *c)
{
    if (spec_ynode_is_null(v))
        return replace_str(AT(cfg, k, char *), NULL);
    return set_string(cfg, k, v, c);
}

static int set_endpoint(spec_config *cfg, const cfg_key *k, const spec_ynode *v, cfg_ctx *c)
{
    char d[256];
    if (spec_ynode_is_null(v))
        return replace_str(AT(cfg, k, char *), NULL);
    const char *s = text_of(v);
    size_t skip = s == NULL                        ? 0
                  : strncmp(s, "http://", 7) == 0  ? 7
                  : strncmp(s, "https://", 8) == 0 ? 8
                                                   : 0;
    if (s != NULL && (skip == 0 || s[skip] == '\0' || s[skip] == '/' || strpbrk(s, " \t\r\n"))) {
        char shown[160];
        endpoint_masked(s, shown, sizeof(shown));
        return bad(c, v, "'%s' must be an http:// or https:// URL (or null), got string '%.128s'",
                   k->name, shown);
    }
    if (s == NULL)
        return bad(c, v, "'%s' must be an http:// or https:// URL (or null), got %s", k->name,
                   describe(v, d, sizeof(d)));
    return replace_str(AT(cfg, k, char *), s);
}

/* Copies the host of a HOST:PORT or [V6]:PORT listen address (already shape-checked). */
static void listen_host(const char *s, char *host, size_t size, bool *ret_bracketed)
{
    *ret_bracketed = s[0] == '[';
    const char *start = *ret_bracketed ? s + 1 : s;
    const char *end = *ret_bracketed ? strrchr(s, ']') : strrchr(s, ':');
    size_t len = end && end > start ? (size_t)(end - start) : 0;
    snprintf(host, size, "%.*s", (int)(len < size ? len : size - 1), start);
}

/* The daemon binds metrics_listen with AI_NUMERICHOST: only an address in numeric form works. */
static bool listen_host_numeric(const char *s)
{
    char host[256];
    unsigned char a[16];
    bool bracketed;
    listen_host(s, host, sizeof(host), &bracketed);
    return inet_pton(bracketed ? AF_INET6 : AF_INET, host, a) == 1;
}

/* The Alibaba Cloud account id (digits) the credentials belong to; null: learned with STS. It
 * keys the pacer's budget, so a wrong one would share or split budgets silently: checked here. */
static int set_account_id(spec_config *cfg, const cfg_key *k, const spec_ynode *v, cfg_ctx *c)
{
    char d[256];
    if (spec_ynode_is_null(v))
        return replace_str(AT(cfg, k, char *), NULL);
    const char *s = text_of(v);
    if (s == NULL || *s == '\0' || strlen(s) > 32 || strspn(s, "0123456789") != strlen(s))
        return bad(c, v, "'%s' must be the account's numeric id (or null), got %s", k->name,
                   describe(v, d, sizeof(d)));
    return replace_str(AT(cfg, k, char *), s);
}

/* host:port, [v6]:port; port 0 asks for any free port (tests). null or "" disables. */
static int set_listen(spec_config *cfg, const cfg_key *k, const spec_ynode *v, cfg_ctx *c)
{
    char d[256];
    if (spec_ynode_is_null(v) || (v->kind == SPEC_YSCALAR && v->len == 0))
        return replace_str(AT(cfg, k, char *), NULL);
    const char *s = text_of(v);
    const char *colon = s ? strrchr(s, ':') : NULL;
    bool ok = colon != NULL && colon != s && strpbrk(s, " \t/") == NULL;
    if (ok && s[0] == '[')
        ok = colon[-1] == ']' && colon - s > 2;
    else if (ok)
        ok = memchr(s, ':', (size_t)(colon - s)) == NULL;
    uint64_t port = 0;
    const char *end = colon ? colon + 1 : NULL;
    if (ok && strcmp(colon + 1, "0") != 0)
        ok = parse_positive(colon + 1, 65535, &port, &end) == 0 && *end == '\0';
    if (!ok)
        return bad(c, v,
                   "'%s' must be HOST:PORT such as 127.0.0.1:9780 (or null to disable), got %s",
                   k->name, describe(v, d, sizeof(d)));
    if (!listen_host_numeric(s))
        return bad(c, v,
                   "'%s' must name an IP address such as 127.0.0.1 or [::1] (the daemon does not "
                   "look names up), got %s",
                   k->name, describe(v, d, sizeof(d)));
    return replace_str(AT(cfg, k, char *), s);
}

static int set_bool(spec_config *cfg, const cfg_key *k, const spec_ynode *v, cfg_ctx *c)
{
    char d[256];
    bool b;
    if (spec_ynode_bool(v, &b) < 0)
        return bad(c, v, "'%s' must be a boolean (true or false), got %s", k->name,
                   describe(v, d, sizeof(d)));
    *AT(cfg, k, bool) = b;
    return 0;
}

/* An opt-in such as allow_insecure_endpoint: true turns it on; false keeps a true that the
 * matching flag set before the file was read (flags win over the file). */
static int set_opt_in(spec_config *cfg, const cfg_key *k, const spec_ynode *v, cfg_ctx *c)
{
    bool before = *AT(cfg, k, bool);
    int rc = set_bool(cfg, k, v, c);
    if (rc == 0 && before)
        *AT(cfg, k, bool) = true;
    return rc;
}

/* Reads a plain non-negative integer within [min, max]; 0 or -EINVAL (no diagnostic). */
static int uint_value(const spec_ynode *v, uint64_t min, uint64_t max, unsigned *ret)
{
    uint64_t n = 0;
    const char *end;
    if (v->kind != SPEC_YSCALAR || !v->plain)
        return -EINVAL;
    if (strcmp(v->text, "0") != 0 && (parse_positive(v->text, UINT_MAX, &n, &end) < 0 || *end))
        return -EINVAL;
    if (n < min || n > max)
        return -EINVAL;
    *ret = (unsigned)n;
    return 0;
}

static int set_uint(spec_config *cfg, const cfg_key *k, const spec_ynode *v, cfg_ctx *c)
{
    char d[256];
    unsigned n;
    if (uint_value(v, k->min, k->max, &n) < 0)
        return bad(c, v, "'%s' must be an integer from %llu to %llu, got %s", k->name,
                   (unsigned long long)k->min, (unsigned long long)k->max,
                   describe(v, d, sizeof(d)));
    *AT(cfg, k, unsigned) = n;
    return 0;
}

static int set_duration(spec_config *cfg, const cfg_key *k, const spec_ynode *v, cfg_ctx *c)
{
    char d[256], lo[32], hi[32];
    uint64_t ms;
    const char *s = text_of(v);
    if (s == NULL || spec_parse_duration(s, &ms) < 0)
        return bad(c, v, "'%s' must be a duration such as 500ms, 6s, 5m or 1h, got %s", k->name,
                   describe(v, d, sizeof(d)));
    if (ms < k->min || ms > k->max) {
        fmt_duration(k->min, lo, sizeof(lo));
        fmt_duration(k->max, hi, sizeof(hi));
        return bad(c, v, "'%s' must be from %s to %s, got %s", k->name, lo, hi, s);
    }
    *AT(cfg, k, uint64_t) = ms;
    return 0;
}

static int set_enum(spec_config *cfg, const cfg_key *k, const spec_ynode *v, cfg_ctx *c)
{
    char d[256], list[128] = "";
    const char *s = text_of(v);
    for (const cfg_choice *ch = k->choices; ch->name; ch++) {
        if (s != NULL && strcmp(s, ch->name) == 0) {
            *AT(cfg, k, int) = ch->value;
            return 0;
        }
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
                 ch == k->choices ? "" : " or ", ch->name);
    }
    return bad(c, v, "'%s' must be %s, got %s", k->name, list, describe(v, d, sizeof(d)));
}

/* An item of manifests: a non-empty path. ud is the key's name. */
static int manifest_item(cfg_ctx *c, const spec_ynode *const *items, size_t i, const char *s,
                         const void *ud)
{
    char d[256];
    if (s == NULL || *s == '\0')
        return bad(c, items[i], "'%s' must be a path or a list of paths, got %s", (const char *)ud,
                   describe(items[i], d, sizeof(d)));
    return 0;
}

/* manifests: one path or a list of paths; relative ones are taken from the config's directory
 * so that a daemon started from / finds them. */
static int set_manifests(spec_config *cfg, const cfg_key *k, const spec_ynode *v, cfg_ctx *c)
{
    if (v->kind == SPEC_YSEQ && v->n == 0)
        return bad(c, v, "'%s' must name at least one file or directory", k->name);
    const cfg_strv how = {.check = manifest_item, .ud = k->name, .paths = true};
    char **paths = NULL;
    int rc = read_strv(c, v, &how, &paths);
    if (rc < 0)
        return rc;
    replace_strv(&cfg->manifests, &cfg->n_manifests, paths, v->kind == SPEC_YSEQ ? v->n : 1);
    return 0;
}

/* A mapping value (quotas, rate_limits) with a key written twice: the later one would silently
 * win, so each repeat is an error naming the first. Returns 0, -EINVAL or -ENOMEM. */
static int repeated_keys(cfg_ctx *c, const cfg_key *k, const spec_ynode *map)
{
    size_t *dup = NULL;
    int rc = 0;
    if (spec_ymap_duplicates(map, &dup) < 0)
        return -ENOMEM;
    for (size_t i = 0; i < map->n; i++) {
        if (dup[i] == SIZE_MAX)
            continue;
        const spec_ynode *first = map->pairs[dup[i]].key;
        rc = bad(c, map->pairs[i].key, "'%s': duplicate key '%.64s' (first at %s:%u:%u)", k->name,
                 map->pairs[i].key->text, first->pos.file, first->pos.line, first->pos.col);
    }
    free(dup);
    return rc;
}

/* An item of previous_owners: a valid imgrecon/owner tag value. ud is the key's name. */
static int owner_item(cfg_ctx *c, const spec_ynode *const *items, size_t i, const char *s,
                      const void *ud)
{
    const char *why =
        s == NULL || *s == '\0' ? "must be a non-empty string" : spec_check_tag_value(s);
    if (why != NULL)
        return bad(c, items[i], "'%s' item %zu is an imgrecon/owner tag value and %s",
                   (const char *)ud, i + 1, why);
    return 0;
}

/* previous_owners: a list of owner names (tag values) whose images are retagged to `owner` in
 * place (reconcile/README.md "Semantics", Ownership). Null or an empty scalar (the default) is [].
 */
static int set_previous_owners(spec_config *cfg, const cfg_key *k, const spec_ynode *v, cfg_ctx *c)
{
    char d[256];
    char **names = NULL;
    size_t n = 0;
    if (v->kind == SPEC_YSEQ) {
        const cfg_strv how = {.check = owner_item, .ud = k->name};
        int rc = read_strv(c, v, &how, &names);
        if (rc < 0)
            return rc;
        n = v->n;
    } else if (!(v->kind == SPEC_YSCALAR && (spec_ynode_is_null(v) || v->len == 0))) {
        return bad(c, v, "'%s' must be a list of owner names, got %s", k->name,
                   describe(v, d, sizeof(d)));
    }
    replace_strv(&cfg->previous_owners, &cfg->n_previous_owners, names, n);
    return 0;
}

/* quotas: `15` (every region) or `{default: 15, cn-hangzhou: 9}`. Keys present replace the
 * per-region table; the default is kept unless given. */
static int set_quotas(spec_config *cfg, const cfg_key *k, const spec_ynode *v, cfg_ctx *c)
{
    char d[256];
    unsigned n;
    if (v->kind == SPEC_YSCALAR) {
        if (uint_value(v, k->min, k->max, &n) < 0)
            return bad(c, v,
                       "'%s' must be an integer from %llu to %llu or a mapping of region to "
                       "integer, got %s",
                       k->name, (unsigned long long)k->min, (unsigned long long)k->max,
                       describe(v, d, sizeof(d)));
        cfg->quota_default = n;
        return 0;
    }
    if (v->kind != SPEC_YMAP)
        return bad(c, v, "'%s' must be a mapping such as {default: 15, cn-hangzhou: 9}, got %s",
                   k->name, describe(v, d, sizeof(d)));
    /* A repeated key is reported, and the values are still checked: every error at once. */
    int rc = repeated_keys(c, k, v);
    if (rc == -ENOMEM)
        return rc;
    unsigned def = cfg->quota_default;
    spec_quota *q = calloc(v->n ? v->n : 1, sizeof(*q));
    size_t nq = 0;
    if (q == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < v->n && rc != -ENOMEM; i++) {
        const spec_ynode *key = v->pairs[i].key, *val = v->pairs[i].value;
        const char *name = text_of(key);
        if (name == NULL || (strcmp(name, "default") != 0 && !spec_region_valid(name))) {
            rc = bad(c, key,
                     "'%s' keys must be 'default' or a region id such as cn-hangzhou, got %s",
                     k->name, describe(key, d, sizeof(d)));
            continue;
        }
        if (uint_value(val, k->min, k->max, &n) < 0) {
            rc = bad(c, val, "'%s' value for '%s' must be an integer from %llu to %llu, got %s",
                     k->name, name, (unsigned long long)k->min, (unsigned long long)k->max,
                     describe(val, d, sizeof(d)));
            continue;
        }
        if (strcmp(name, "default") == 0)
            def = n;
        else if ((q[nq].region = strdup(name)) == NULL)
            rc = -ENOMEM;
        else
            q[nq++].limit = n;
    }
    if (rc < 0) {
        for (size_t i = 0; i < nq; i++)
            free(q[i].region);
        free(q);
        return rc;
    }
    for (size_t i = 0; i < cfg->n_quotas; i++)
        free(cfg->quotas[i].region);
    free(cfg->quotas);
    cfg->quotas = q;
    cfg->n_quotas = nq;
    cfg->quota_default = def;
    return 0;
}

/* An API action name as the SDKs spell it: ListCustomImages. */
static bool action_valid(const char *s)
{
    if (s[0] < 'A' || s[0] > 'Z' || strlen(s) > 64)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
            return false;
    return true;
}

/* Sets or adds one per-action rate (the config key and --rate-limit share it). */
static int put_rate(spec_config *cfg, const char *action, spec_rate r)
{
    for (size_t i = 0; i < cfg->n_rates; i++)
        if (strcmp(cfg->rates[i].action, action) == 0) {
            cfg->rates[i].rate = r;
            return 0;
        }
    spec_rate_limit *grown = realloc(cfg->rates, (cfg->n_rates + 1) * sizeof(*grown));
    if (grown == NULL)
        return -ENOMEM;
    cfg->rates = grown;
    if ((grown[cfg->n_rates].action = strdup(action)) == NULL)
        return -ENOMEM;
    grown[cfg->n_rates++].rate = r;
    return 0;
}

/* A well-formed action name that imgrecon never calls, most likely a typo: a rate limit on it
 * would silently never apply. */
static int unknown_action(cfg_ctx *c, const spec_ynode *at, const char *key, const char *name)
{
    const char *s = spec_action_suggest(name);
    if (s != NULL)
        return bad(c, at, "'%s': unknown API action '%.64s'; did you mean '%s'?", key, name, s);
    return bad(c, at,
               "'%s': unknown API action '%.64s' (imgrecon calls ListCustomImages, "
               "CreateCustomImage, DeleteCustomImage(s), ModifyImageShareStatus, DescribeImages, "
               "DeleteImage and the other actions listed in spec/README.md)",
               key, name);
}

/* rate_limits: `10/60s` (every action) or `{default: 10/60s, ListCustomImages: 5/60s}`. */
static int set_rates(spec_config *cfg, const cfg_key *k, const spec_ynode *v, cfg_ctx *c)
{
    char d[256];
    spec_rate r;
    const char *s = text_of(v);
    if (v->kind == SPEC_YSCALAR) {
        if (s == NULL || spec_parse_rate(s, &r) < 0)
            return bad(c, v,
                       "'%s' must be a rate such as 10/60s or a mapping of action to rate, "
                       "got %s",
                       k->name, describe(v, d, sizeof(d)));
        cfg->rate_default = r;
        return 0;
    }
    if (v->kind != SPEC_YMAP)
        return bad(c, v, "'%s' must be a mapping such as {default: 10/60s}, got %s", k->name,
                   describe(v, d, sizeof(d)));
    /* A repeated key is reported, and the values are still checked: every error at once. */
    int rc = repeated_keys(c, k, v);
    if (rc == -ENOMEM)
        return rc;
    for (size_t i = 0; i < v->n; i++) {
        const spec_ynode *key = v->pairs[i].key, *val = v->pairs[i].value;
        const char *name = text_of(key), *spec = text_of(val);
        if (name == NULL || (strcmp(name, "default") != 0 && !action_valid(name)))
            rc = bad(c, key,
                     "'%s' keys must be 'default' or an API action such as "
                     "ListCustomImages, got %s",
                     k->name, describe(key, d, sizeof(d)));
        else if (strcmp(name, "default") != 0 && !spec_action_known(name))
            rc = unknown_action(c, key, k->name, name);
        else if (spec == NULL || spec_parse_rate(spec, &r) < 0)
            rc = bad(c, val, "'%s' value for '%s' must be a rate such as 10/60s, got %s", k->name,
                     name, describe(val, d, sizeof(d)));
    }
    if (rc < 0)
        return rc;
    /* Valid as a whole: apply. */
    for (size_t i = 0; i < cfg->n_rates; i++)
        free(cfg->rates[i].action);
    free(cfg->rates);
    cfg->rates = NULL;
    cfg->n_rates = 0;
    for (size_t i = 0; i < v->n; i++) {
        const char *name = v->pairs[i].key->text;
        (void)spec_parse_rate(v->pairs[i].value->text, &r);
        if (strcmp(name, "default") == 0)
            cfg->rate_default = r;
        else if (put_rate(cfg, name, r) < 0)
            return -ENOMEM;
    }
    return 0;
}

/* ---- Endpoint checks (transport safety) ---------------------------------------------------- */

/* True for localhost, 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104 written as addresses (no name
 * lookup: a name other than localhost may resolve anywhere). */
static bool host_is_loopback(const char *host, bool bracketed)
{
    unsigned char a[16];
    if (!bracketed && strcasecmp(host, "localhost") == 0)
        return true;
    if (!bracketed && inet_pton(AF_INET, host, a) == 1)
        return a[0] == 127;
    if (bracketed && inet_pton(AF_INET6, host, a) == 1) {
        static const unsigned char v6_lo[16] = {[15] = 1};
        static const unsigned char v4_mapped[12] = {[10] = 0xff, [11] = 0xff};
        return memcmp(a, v6_lo, 16) == 0 || (memcmp(a, v4_mapped, 12) == 0 && a[12] == 127);
    }
    return false;
}

/* Splits the authority of url (after the scheme) into host and port; a static reason on error. */
static const char *endpoint_host(const char *auth, char *host, size_t size, bool *ret_bracketed)
{
    size_t len = strcspn(auth, "/?#");
    const char *port = NULL;
    if (memchr(auth, '@', len) != NULL)
        return "must not contain user:password@";
    *ret_bracketed = auth[0] == '[';
    if (*ret_bracketed) {
        const char *close = memchr(auth, ']', len);
        if (close == NULL || (size_t)(close - auth - 1) >= size)
            return "has an unterminated or too long [address]";
        memcpy(host, auth + 1, (size_t)(close - auth - 1));
        host[close - auth - 1] = '\0';
        unsigned char a[16];
        if (inet_pton(AF_INET6, host, a) != 1)
            return "has a [bracketed] host that is not an IPv6 address";
        if (close + 1 < auth + len && close[1] != ':')
            return "has text after the [address]";
        port = close + 1 < auth + len ? close + 2 : NULL;
    } else {
        const char *colon = memchr(auth, ':', len);
        size_t hlen = colon ? (size_t)(colon - auth) : len;
        if (hlen == 0 || hlen >= size)
            return "must name a host";
        memcpy(host, auth, hlen);
        host[hlen] = '\0';
        if (strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") !=
            hlen)
            return "has a host name with characters other than letters, digits, '.' and '-'";
        port = colon ? colon + 1 : NULL;
    }
    if (port != NULL) {
        size_t plen = (size_t)(auth + len - port);
        uint64_t p = 0;
        const char *end;
        if (plen == 0 || plen > 5 || parse_positive(port, 65535, &p, &end) < 0 || end != auth + len)
            return "has a port that is not a number from 1 to 65535";
    }
    return NULL;
}

const char *spec_check_endpoint(const char *url, bool allow_insecure)
{
    bool tls = strncmp(url, "https://", 8) == 0;
    if (!tls && strncmp(url, "http://", 7) != 0)
        return "must start with http:// or https://";
    if (strpbrk(url, " \t\r\n\\") != NULL)
        return "must not contain spaces or backslashes";
    char host[256];
    bool bracketed = false;
    const char *why = endpoint_host(url + (tls ? 8 : 7), host, sizeof(host), &bracketed);
    if (why != NULL)
        return why;
    if (!tls && !allow_insecure && !host_is_loopback(host, bracketed))
        return "uses plain http:// to a host that is not loopback (127.0.0.0/8, ::1, localhost); "
               "use https://, or allow_insecure_endpoint: true (--allow-insecure-endpoint)";
    return NULL;
}

/* url as a message may show it: everything between the scheme's "://" (or the start) and the
 * last '@' becomes "***", so a refused user:password@ (even one whose password holds '/' or
 * '@') is never echoed. Truncated to fit out. */
static void endpoint_masked(const char *url, char *out, size_t size)
{
    const char *scheme = strstr(url, "://");
    const char *auth = scheme != NULL ? scheme + 3 : url;
    const char *at = strrchr(auth, '@');
    if (at == NULL)
        (void)snprintf(out, size, "%s", url);
    else
        (void)snprintf(out, size, "%.*s***%s", (int)(auth - url), url, at);
}

int spec_config_check_endpoint(const spec_config *cfg, const char *source, spec_diags *diags)
{
    if (cfg->endpoint == NULL)
        return 0;
    const char *why = spec_check_endpoint(cfg->endpoint, cfg->allow_insecure_endpoint);
    if (why == NULL)
        return 0;
    char shown[160];
    endpoint_masked(cfg->endpoint, shown, sizeof(shown));
    spec_diags_add_clean(diags, (spec_pos){source, 0, 0}, "endpoint '%.128s' %s", shown, why);
    return -EINVAL;
}

/* After the whole file is read (allow_insecure_endpoint may come after endpoint): the endpoint
 * as a request would use it, reported at the endpoint's position. */
static void check_file_endpoint(load_ctx *L, const spec_ynode *root)
{
    const spec_ynode *v = spec_ynode_get(root, "endpoint");
    const char *why = NULL;
    if (v == NULL || L->cfg->endpoint == NULL ||
        (why = spec_check_endpoint(L->cfg->endpoint, L->cfg->allow_insecure_endpoint)) == NULL)
        return;
    L->rc = bad(&L->c, v, "'endpoint' %s", why);
}

/* ---- Lint: what `validate` reports beyond loading --------------------------------------- */

typedef struct lint_ctx {
    const spec_config *cfg;
    bool metrics_allow_remote;
    spec_diags *errors, *warnings;
    int rc;
} lint_ctx;

/* quotas keys that are not known SWAS regions: warnings, like manifest regions. */
static void lint_quotas(lint_ctx *x, const spec_ynode *q)
{
    for (size_t i = 0; q != NULL && q->kind == SPEC_YMAP && i < q->n; i++) {
        const char *name = text_of(q->pairs[i].key);
        if (name != NULL && strcmp(name, "default") != 0 && !spec_region_known(name))
            spec_region_warning(x->warnings, q->pairs[i].key->pos, name);
    }
}

/* metrics_listen that `run` refuses: an address that is not loopback, unless the run opt-in
 * (--metrics-allow-remote) is given to validate too. */
static void lint_metrics(lint_ctx *x, const spec_ynode *v)
{
    char host[256];
    bool bracketed;
    if (v == NULL || x->metrics_allow_remote || x->cfg->metrics_listen == NULL)
        return;
    listen_host(x->cfg->metrics_listen, host, sizeof(host), &bracketed);
    if (host_is_loopback(host, bracketed))
        return;
    cfg_ctx c = {x->errors, NULL};
    x->rc = bad(&c, v,
                "'metrics_listen' %.64s is not a loopback address: `run` refuses it without "
                "--metrics-allow-remote (give the same flag to validate to accept it)",
                x->cfg->metrics_listen);
}

static int on_lint_doc(void *ud, const spec_ynode *root, spec_pos doc_pos)
{
    (void)doc_pos;
    if (root == NULL || root->kind != SPEC_YMAP)
        return 0; /* reported by the loader */
    lint_quotas(ud, spec_ynode_get(root, "quotas"));
    lint_metrics(ud, spec_ynode_get(root, "metrics_listen"));
    return 0;
}

int spec_config_lint(const spec_config *cfg, const char *path, bool metrics_allow_remote,
                     spec_diags *errors, spec_diags *warnings)
{
    lint_ctx x = {cfg, metrics_allow_remote, errors, warnings, 0};
    if (path == NULL)
        return 0;
    int rc = spec_yaml_load_file(path, path, on_lint_doc, &x, errors);
    return rc < 0 ? rc : x.rc;
}

/* An item of allow_empty or regions: a region id not named by an earlier item. ud is the key's
 * name. */
static int region_item(cfg_ctx *c, const spec_ynode *const *items, size_t i, const char *s,
                       const void *ud)
{
    char d[256];
    const char *what = ud;
    if (s == NULL || !spec_region_valid(s))
        return bad(c, items[i], "'%s' items must be region ids such as cn-hangzhou, got %s", what,
                   describe(items[i], d, sizeof(d)));
    for (size_t j = 0; j < i; j++) {
        /* An earlier item that is not a string (a mapping, a list) has no text to compare. */
        const char *t = text_of(items[j]);
        if (t != NULL && strcmp(t, s) == 0)
            return bad(c, items[i], "'%s' names %s twice", what, s);
    }
    return 0;
}

/* The most items a list of region ids may have (the cloud has a few dozen regions). A longer
 * list is refused whole, before region_item compares its items pairwise. */
#define MAX_REGION_LIST 256

static int region_list_too_long(cfg_ctx *c, const spec_ynode *v, const char *what)
{
    return bad(c, v, "'%s' lists %zu regions (at most %d)", what, v->n, MAX_REGION_LIST);
}

/* allow_empty: a boolean (every region) or a list of the region ids whose desired set may be
 * empty while prune deletes their owned images. */
static int set_allow_empty(spec_config *cfg, const cfg_key *k, const spec_ynode *v, cfg_ctx *c)
{
    char d[256];
    bool b;
    if (v->kind == SPEC_YSCALAR && spec_ynode_bool(v, &b) == 0) {
        replace_strv(&cfg->allow_empty_regions, &cfg->n_allow_empty_regions, NULL, 0);
        cfg->allow_empty = b;
        return 0;
    }
    if (v->kind != SPEC_YSEQ)
        return bad(c, v, "'%s' must be true, false or a list of region ids, got %s", k->name,
                   describe(v, d, sizeof(d)));
    if (v->n > MAX_REGION_LIST)
        return region_list_too_long(c, v, k->name);
    const cfg_strv how = {.check = region_item, .ud = k->name};
    char **list = NULL;
    int rc = read_strv(c, v, &how, &list);
    if (rc < 0)
        return rc;
    replace_strv(&cfg->allow_empty_regions, &cfg->n_allow_empty_regions, list, v->n);
    cfg->allow_empty = false;
    return 0;
}

/* regions: more regions to observe each cycle, a list of region ids or `all` (ListRegions). */
static int set_regions(spec_config *cfg, const cfg_key *k, const spec_ynode *v, cfg_ctx *c)
{
    char d[256];
    char **list = NULL;
    size_t n = 0;
    bool all = false;
    if (v->kind == SPEC_YSCALAR && (spec_ynode_is_null(v) || v->len == 0)) {
        /* The default: none beyond the declared and remembered ones. */
    } else if (v->kind == SPEC_YSCALAR && text_of(v) != NULL && strcmp(v->text, "all") == 0) {
        all = true;
    } else if (v->kind == SPEC_YSEQ && v->n > MAX_REGION_LIST) {
        return region_list_too_long(c, v, k->name);
    } else if (v->kind == SPEC_YSEQ) {
        const cfg_strv how = {.check = region_item, .ud = k->name};
        int rc = read_strv(c, v, &how, &list);
        if (rc < 0)
            return rc;
        n = v->n;
    } else {
        return bad(c, v, "'%s' must be a list of region ids or the string all, got %s", k->name,
                   describe(v, d, sizeof(d)));
    }
    replace_strv(&cfg->regions, &cfg->n_regions, list, n);
    cfg->regions_all = all;
    return 0;
}

int spec_config_set_allow_empty(spec_config *cfg, const char *arg)
{
    if (arg == NULL || *arg == '\0')
        return -EINVAL;
    if (strcmp(arg, "true") == 0 || strcmp(arg, "false") == 0) {
        replace_strv(&cfg->allow_empty_regions, &cfg->n_allow_empty_regions, NULL, 0);
        cfg->allow_empty = strcmp(arg, "true") == 0;
        return 0;
    }
    char *copy = strdup(arg);
    char **list = calloc(strlen(arg) / 2 + 1, sizeof(*list));
    size_t n = 0;
    int rc = copy && list ? 0 : -ENOMEM;
    char *save = NULL;
    for (char *t = rc == 0 ? strtok_r(copy, ",", &save) : NULL; t != NULL && rc == 0;
         t = strtok_r(NULL, ",", &save)) {
        bool dup = false;
        for (size_t i = 0; i < n; i++)
            dup = dup || strcmp(list[i], t) == 0;
        if (!spec_region_valid(t) || dup)
            rc = -EINVAL;
        else if ((list[n] = strdup(t)) == NULL)
            rc = -ENOMEM;
        else
            n++;
    }
    /* A list of only commas names nothing, which is not what anyone means. */
    if (rc == 0 && n == 0)
        rc = -EINVAL;
    free(copy);
    if (rc < 0) {
        free_strv(list, n);
        return rc;
    }
    replace_strv(&cfg->allow_empty_regions, &cfg->n_allow_empty_regions, list, n);
    cfg->allow_empty = false;
    return 0;
}

bool spec_config_allow_empty(const spec_config *cfg, const char *region)
{
    if (cfg->allow_empty)
        return true;
    for (size_t i = 0; region != NULL && i < cfg->n_allow_empty_regions; i++)
        if (strcmp(cfg->allow_empty_regions[i], region) == 0)
            return true;
    return false;
}

/* One etcd endpoint of `ha`: an http:// or https:// URL with a host and no path. */
static bool etcd_url_ok(const char *s)
{
    size_t skip = strncmp(s, "http://", 7) == 0 ? 7 : strncmp(s, "https://", 8) == 0 ? 8 : 0;
    /* No user:password@ either: etcd authentication is not supported, and URLs reach logs. */
    if (skip == 0 || s[skip] == '\0' || s[skip] == '/' || strpbrk(s, " \t\r\n?#@") != NULL)
        return false;
    const char *slash = strchr(s + skip, '/');
    return slash == NULL || slash[1] == '\0';
}

/* A prefix of etcd keys: starts with '/', printable ASCII without spaces, no trailing '/'. */
static bool ha_prefix_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 2 || n > 200 || s[0] != '/' || s[n - 1] == '/')
        return false;
    for (; *s; s++)
        if (!(*s > ' ' && *s < 127))
            return false;
    return true;
}

/* An item of ha.etcd_endpoints: an etcd URL without user or password (see etcd_url_ok). */
static int etcd_endpoint_item(cfg_ctx *c, const spec_ynode *const *items, size_t i, const char *s,
                              const void *ud)
{
    char d[256];
    if (s != NULL && strchr(s, '@') != NULL) /* not echoed: it may hold a password */
        return bad(c, items[i],
                   "'ha.etcd_endpoints' entries must not hold a user or password (etcd "
                   "authentication is not supported)");
    if (s == NULL || !etcd_url_ok(s))
        return bad(c, items[i],
                   "'ha.etcd_endpoints' entries must be http:// or https:// URLs of etcd "
                   "members without a path, got %s",
                   describe(items[i], d, sizeof(d)));
    return 0;
}

static int set_ha_endpoints(spec_config *cfg, const spec_ynode *v, cfg_ctx *c)
{
    char d[256];
    if (v->kind != SPEC_YSEQ || v->n == 0)
        return bad(c, v,
                   "'ha.etcd_endpoints' must be a list of etcd URLs such as "
                   "[http://10.0.0.1:2379], got %s",
                   describe(v, d, sizeof(d)));
    const cfg_strv how = {.check = etcd_endpoint_item, .first_only = true};
    char **eps = NULL;
    int rc = read_strv(c, v, &how, &eps);
    if (rc < 0)
        return rc;
    replace_strv(&cfg->ha_endpoints, &cfg->n_ha_endpoints, eps, v->n);
    return 0;
}

/* ha: {etcd_endpoints: [...], lease_ttl: 15s, prefix: /imgrecon/<owner>}. etcd_endpoints is
 * required; lease_ttl is whole seconds from 2s to 5m (etcd counts leases in seconds). */
static int set_ha(spec_config *cfg, const cfg_key *k, const spec_ynode *v, cfg_ctx *c)
{
    char d[256];
    if (spec_ynode_is_null(v) || (v->kind == SPEC_YSCALAR && v->len == 0 && v->plain))
        return 0; /* the default: no HA */
    if (v->kind != SPEC_YMAP)
        return bad(c, v,
                   "'%s' must be a mapping such as {etcd_endpoints: [http://10.0.0.1:2379]}, "
                   "got %s",
                   k->name, describe(v, d, sizeof(d)));
    int rc = 0;
    bool have_eps = false;
    for (size_t i = 0; i < v->n && rc != -ENOMEM; i++) {
        const spec_ynode *key = v->pairs[i].key, *val = v->pairs[i].value;
        const char *name = text_of(key), *s = text_of(val);
        uint64_t ms = 0;
        if (name != NULL && strcmp(name, "etcd_endpoints") == 0) {
            have_eps = true;
            int r = set_ha_endpoints(cfg, val, c);
            rc = r < 0 ? r : rc;
        } else if (name != NULL && strcmp(name, "lease_ttl") == 0) {
            if (s == NULL || spec_parse_duration(s, &ms) < 0 || ms < 2000 || ms > 300000 ||
                ms % 1000 != 0)
                rc = bad(c, val, "'ha.lease_ttl' must be whole seconds from 2s to 5m, got %s",
                         describe(val, d, sizeof(d)));
            else
                cfg->ha_lease_ttl_ms = ms;
        } else if (name != NULL && strcmp(name, "prefix") == 0) {
            if (s == NULL || !ha_prefix_ok(s))
                rc = bad(c, val,
                         "'ha.prefix' must start with '/', have no spaces and no trailing "
                         "'/', got %s",
                         describe(val, d, sizeof(d)));
            else if (replace_str(&cfg->ha_prefix, s) < 0)
                rc = -ENOMEM;
        } else {
            rc = bad(c, key, "unknown key %s in 'ha' (etcd_endpoints, lease_ttl, prefix)",
                     describe(key, d, sizeof(d)));
        }
    }
    if (rc == 0 && !have_eps)
        rc = bad(c, v, "'ha' needs 'etcd_endpoints', the etcd members to elect a leader with");
    return rc;
}

char *spec_config_ha_prefix(const spec_config *cfg)
{
    char *s = NULL;
    if (cfg->ha_prefix != NULL)
        return strdup(cfg->ha_prefix);
    if (asprintf(&s, "/imgrecon/%s", cfg->owner ? cfg->owner : "default") < 0)
        return NULL;
    return s;
}

/* ---- The table ------------------------------------------------------------------------------ */

/* ---- notify: webhooks --------------------------------------------------------------------- */

static const cfg_choice notify_events[] = {{"applied", SPEC_EV_APPLIED},
                                           {"failed", SPEC_EV_FAILED},
                                           {"manifest_error", SPEC_EV_MANIFEST_ERROR},
                                           {"refused", SPEC_EV_REFUSED},
                                           {"drift", SPEC_EV_DRIFT},
                                           {"recovered", SPEC_EV_RECOVERED},
                                           {"leadership", SPEC_EV_LEADERSHIP},
                                           {NULL, 0}};
static const cfg_choice notify_formats[] = {{"json", SPEC_NOTIFY_JSON},
                                            {"slack", SPEC_NOTIFY_SLACK},
                                            {"dingtalk", SPEC_NOTIFY_DINGTALK},
                                            {NULL, 0}};

const char *spec_notify_event_name(unsigned event)
{
    for (const cfg_choice *ch = notify_events; ch->name; ch++)
        if ((unsigned)ch->value == event)
            return ch->name;
    return NULL;
}

const char *spec_notify_format_name(int format)
{
    for (const cfg_choice *ch = notify_formats; ch->name; ch++)
        if (ch->value == format)
            return ch->name;
    return "json";
}

static void notify_clear(spec_notify *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].url);
        free(v[i].secret_file);
    }
    free(v);
}

/* Looks a name up in a choice table; -1 when absent. */
static int choice_of(const cfg_choice *t, const char *s)
{
    for (; s != NULL && t->name; t++)
        if (strcmp(s, t->name) == 0)
            return t->value;
    return -1;
}

/* An item of a notify entry's events: a known event name. */
static int notify_event_item(cfg_ctx *c, const spec_ynode *const *items, size_t i, const char *s,
                             const void *ud)
{
    char d[256];
    if (choice_of(notify_events, s) < 0)
        return bad(c, items[i],
                   "unknown notify event %s: use applied, failed, manifest_error, refused, "
                   "drift, recovered or leadership",
                   describe(items[i], d, sizeof(d)));
    return 0;
}

/* `events: [applied, failed]`: a non-empty list of known names. */
static int notify_events_of(const spec_ynode *v, cfg_ctx *c, unsigned *ret)
{
    char d[256];
    if (v->kind == SPEC_YSEQ && v->n == 0)
        return bad(c, v, "'notify' events must name at least one event");
    if (v->kind != SPEC_YSEQ)
        return bad(c, v,
                   "'notify' events must be a non-empty list of applied, failed, manifest_error, "
                   "refused, drift, recovered, leadership; got %s",
                   describe(v, d, sizeof(d)));
    const cfg_strv how = {.check = notify_event_item};
    int rc = read_strv(c, v, &how, NULL);
    if (rc < 0)
        return rc;
    unsigned bits = 0;
    for (size_t i = 0; i < v->n; i++)
        bits |= (unsigned)choice_of(notify_events, text_of(v->items[i]));
    *ret = bits;
    return 0;
}

/* One `notify:` entry: {url, format, secret_file, events}; url is required. */
static int notify_entry(const spec_ynode *v, cfg_ctx *c, spec_notify *ret)
{
    static const char *const names[] = {"url", "format", "secret_file", "events"};
    char d[256];
    if (v->kind != SPEC_YMAP)
        return bad(c, v,
                   "'notify' entries must be mappings such as {url: https://..., format: "
                   "json}, got %s",
                   describe(v, d, sizeof(d)));
    spec_notify n = {NULL, SPEC_NOTIFY_JSON, NULL, SPEC_EV_ALL};
    int rc = 0;
    for (size_t i = 0; i < v->n; i++) {
        const char *key = text_of(v->pairs[i].key);
        const spec_ynode *val = v->pairs[i].value;
        const char *s = text_of(val);
        if (key != NULL && strcmp(key, "url") == 0) {
            bool ok = s != NULL &&
                      (strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0) &&
                      strpbrk(s, " \t\r\n") == NULL && s[s[4] == 's' ? 8 : 7] != '\0';
            /* A webhook's URL may carry its token (Slack, DingTalk): a string is not echoed. */
            if (!ok && s != NULL)
                rc = bad(c, val,
                         "'notify' url must be an http:// or https:// URL (the value is "
                         "not shown: webhook URLs may hold a token)");
            else if (!ok)
                rc = bad(c, val, "'notify' url must be an http:// or https:// URL, got %s",
                         describe(val, d, sizeof(d)));
            else if (replace_str(&n.url, s) < 0)
                rc = -ENOMEM;
        } else if (key != NULL && strcmp(key, "format") == 0) {
            int f = choice_of(notify_formats, s);
            if (f < 0)
                rc = bad(c, val, "'notify' format must be json, slack or dingtalk, got %s",
                         describe(val, d, sizeof(d)));
            else
                n.format = f;
        } else if (key != NULL && strcmp(key, "secret_file") == 0) {
            if (spec_ynode_is_null(val))
                continue;
            if (s == NULL || *s == '\0')
                rc = bad(c, val, "'notify' secret_file must be a path, got %s",
                         describe(val, d, sizeof(d)));
            else if (resolve_path(c, s, &n.secret_file) < 0)
                rc = -ENOMEM;
        } else if (key != NULL && strcmp(key, "events") == 0) {
            int erc = notify_events_of(val, c, &n.events);
            if (erc < 0)
                rc = erc;
        } else {
            const char *s2 = key ? spec_suggest(key, names, 4, 2) : NULL;
            rc =
                s2 ? bad(c, v->pairs[i].key,
                         "unknown key '%.64s' in a notify entry; did you "
                         "mean '%s'?",
                         key, s2)
                   : bad(c, v->pairs[i].key,
                         "unknown key '%.64s' in a notify entry (url, format, secret_file, events)",
                         key ? key : describe(v->pairs[i].key, d, sizeof(d)));
        }
        if (rc == -ENOMEM)
            break;
    }
    if (rc == 0 && n.url == NULL)
        rc = bad(c, v, "a 'notify' entry needs a url");
    if (rc < 0) {
        free(n.url);
        free(n.secret_file);
        return rc;
    }
    *ret = n;
    return 0;
}

/* notify: null or a list of webhook entries; replaces the list only when every entry is valid. */
static int set_notify(spec_config *cfg, const cfg_key *k, const spec_ynode *v, cfg_ctx *c)
{
    char d[256];
    if (spec_ynode_is_null(v) || (v->kind == SPEC_YSCALAR && v->len == 0)) {
        notify_clear(cfg->notify, cfg->n_notify);
        cfg->notify = NULL;
        cfg->n_notify = 0;
        return 0;
    }
    if (v->kind != SPEC_YSEQ)
        return bad(c, v,
                   "'%s' must be a list of webhooks such as [{url: https://..., format: "
                   "json}], got %s",
                   k->name, describe(v, d, sizeof(d)));
    spec_notify *list = calloc(v->n ? v->n : 1, sizeof(*list));
    if (list == NULL)
        return -ENOMEM;
    int rc = 0;
    size_t n = 0;
    for (size_t i = 0; i < v->n; i++) {
        int erc = notify_entry(v->items[i], c, &list[n]);
        if (erc == 0)
            n++;
        else if (rc != -ENOMEM)
            rc = erc;
    }
    if (rc < 0) {
        notify_clear(list, n);
        return rc;
    }
    notify_clear(cfg->notify, cfg->n_notify);
    cfg->notify = list;
    cfg->n_notify = n;
    return 0;
}

static const cfg_choice signatures[] = {{"v3", SPEC_SIG_V3}, {"v1", SPEC_SIG_V1}, {NULL, 0}};
static const cfg_choice log_formats[] = {
    {"text", SPEC_LOG_TEXT}, {"json", SPEC_LOG_JSON}, {NULL, 0}};

static const cfg_key keys[] = {
    {"owner", "default", 0, 0, FIELD(owner), set_owner, NULL},
    {"manifests", "/var/lib/imgrecon/repo/images", 0, 0, 0, set_manifests, NULL},
    {"interval", "5m", SPEC_INTERVAL_MIN_MS, SPEC_INTERVAL_MAX_MS, FIELD(interval_ms), set_duration,
     NULL},
    {"prune", "false", 0, 0, FIELD(prune), set_bool, NULL},
    {"max_deletes", "5", 0, 1000, FIELD(max_deletes), set_uint, NULL},
    {"allow_empty", "false", 0, 0, 0, set_allow_empty, NULL},
    {"regions", NULL, 0, 0, 0, set_regions, NULL},
    {"suspend", "false", 0, 0, FIELD(suspend), set_bool, NULL},
    {"quotas", "15", 1, 100, 0, set_quotas, NULL},
    {"state_dir", "/var/lib/imgrecon", 0, 0, FIELD(state_dir), set_string, NULL},
    {"endpoint", NULL, 0, 0, FIELD(endpoint), set_endpoint, NULL},
    {"signature", "v3", 0, 0, FIELD(signature), set_enum, signatures},
    {"rate_limits", "10/60s", 0, 0, 0, set_rates, NULL},
    {"metrics_listen", "127.0.0.1:9780", 0, 0, FIELD(metrics_listen), set_listen, NULL},
    {"log_format", "text", 0, 0, FIELD(log_format), set_enum, log_formats},
    {"profile", NULL, 0, 0, FIELD(profile), set_opt_string, NULL},
    {"account_id", NULL, 0, 0, FIELD(account_id), set_account_id, NULL},
    {"ca_file", NULL, 0, 0, FIELD(ca_file), set_opt_string, NULL},
    {"allow_insecure_endpoint", "false", 0, 0, FIELD(allow_insecure_endpoint), set_opt_in, NULL},
    {"notify", NULL, 0, 0, 0, set_notify, NULL},
    {"previous_owners", NULL, 0, 0, 0, set_previous_owners, NULL},
    {"ha", NULL, 0, 0, 0, set_ha, NULL},
};
#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

/* The enum fields are stored through int pointers; make sure that is their size. */
_Static_assert(sizeof(enum spec_signature) == sizeof(int), "enum size");
_Static_assert(sizeof(enum spec_log_format) == sizeof(int), "enum size");

int spec_config_init(spec_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->ha_lease_ttl_ms = 15000;
    cfg_ctx c = {NULL, NULL};
    for (size_t i = 0; i < N_KEYS; i++) {
        const char *def = keys[i].def ? keys[i].def : "";
        spec_ynode v = {
            .kind = SPEC_YSCALAR, .text = (char *)def, .len = strlen(def), .plain = true};
        int rc = keys[i].set(cfg, &keys[i], &v, &c);
        if (rc < 0) {
            spec_config_clear(cfg);
            return rc == -ENOMEM ? -ENOMEM : -EINVAL;
        }
    }
    return 0;
}

/* reconcile/README.md "Semantics", Ownership: the owner has no shared default once prune is on (two
 * installations left at `default` would prune each other's images). Checked once every key of
 * the document is set (the keys may come in any order); the error points at `prune`. Config is
 * the only source of both settings (no command-line flag sets them). */
static void check_prune_owner(load_ctx *L, const spec_ynode *root)
{
    if (!L->cfg->prune || (L->cfg->owner != NULL && strcmp(L->cfg->owner, "default") != 0))
        return;
    const spec_ynode *at = root;
    for (size_t i = 0; i < root->n; i++) {
        const char *name = text_of(root->pairs[i].key);
        if (name != NULL && strcmp(name, "prune") == 0)
            at = root->pairs[i].key;
    }
    L->rc = bad(&L->c, at,
                "prune: true needs an owner of its own: set `owner: <team-name>` (a name unique to "
                "this installation, used as the imgrecon/owner tag); with the owner left at "
                "'default', two installations would prune each other's images");
}

static int on_config_doc(void *ud, const spec_ynode *root, spec_pos doc_pos)
{
    load_ctx *L = ud;
    char d[256];
    if (root == NULL || spec_ynode_is_null(root))
        return 0;
    if (L->docs++ > 0) {
        L->rc = bad(&L->c, root, "a config file holds one document; this is another");
        return 0;
    }
    if (root->kind != SPEC_YMAP) {
        L->rc = bad(&L->c, root, "the config file must be a mapping of settings, got %s",
                    describe(root, d, sizeof(d)));
        return 0;
    }
    const char *names[N_KEYS];
    for (size_t i = 0; i < N_KEYS; i++)
        names[i] = keys[i].name;
    size_t *dup = NULL;
    if (spec_ymap_duplicates(root, &dup) < 0)
        return -ENOMEM;
    for (size_t i = 0; i < root->n; i++) {
        const spec_ynode *key = root->pairs[i].key, *val = root->pairs[i].value;
        const char *name = text_of(key);
        if (name == NULL) {
            L->rc = bad(&L->c, key,
                        key->kind == SPEC_YSCALAR && strlen(key->text) != key->len
                            ? "keys must not contain NUL characters, got %s"
                            : "keys must be strings, got %s",
                        describe(key, d, sizeof(d)));
            continue;
        }
        const spec_ynode *first = dup[i] == SIZE_MAX ? NULL : root->pairs[dup[i]].key;
        if (first != NULL) {
            L->rc = bad(&L->c, key, "duplicate key '%.64s' (first at %s:%u:%u)", name,
                        first->pos.file, first->pos.line, first->pos.col);
            continue;
        }
        const cfg_key *k = NULL;
        for (size_t j = 0; j < N_KEYS && k == NULL; j++)
            if (strcmp(keys[j].name, name) == 0)
                k = &keys[j];
        if (k == NULL) {
            const char *s = spec_suggest(name, names, N_KEYS, 2);
            if (s != NULL)
                L->rc =
                    bad(&L->c, key, "unknown key '%.64s' in config; did you mean '%s'?", name, s);
            else
                L->rc = bad(&L->c, key, "unknown key '%.64s' in config", name);
            continue;
        }
        int rc = k->set(L->cfg, k, val, &L->c);
        if (rc == -ENOMEM) {
            free(dup);
            return rc;
        }
        if (rc < 0)
            L->rc = rc;
    }
    free(dup);
    check_file_endpoint(L, root);
    check_prune_owner(L, root);
    return 0;
}

int spec_config_load(spec_config *cfg, const char *path, spec_diags *diags)
{
    char *dir = strdup(path);
    if (dir == NULL) {
        spec_diags_add(diags, path, 0, 0, "out of memory");
        return -ENOMEM;
    }
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        strcpy(dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    load_ctx L = {cfg, {diags, dir}, 0, 0};
    int rc = spec_yaml_load_file(path, path, on_config_doc, &L, diags);
    if (rc == -ENOMEM)
        spec_diags_add(diags, path, 0, 0, "out of memory");
    free(dir);
    return rc < 0 ? rc : L.rc;
}

void spec_config_clear(spec_config *cfg)
{
    if (cfg == NULL)
        return;
    free(cfg->owner);
    free_strv(cfg->manifests, cfg->n_manifests);
    for (size_t i = 0; i < cfg->n_quotas; i++)
        free(cfg->quotas[i].region);
    free(cfg->quotas);
    free(cfg->state_dir);
    free(cfg->endpoint);
    for (size_t i = 0; i < cfg->n_rates; i++)
        free(cfg->rates[i].action);
    free(cfg->rates);
    free(cfg->metrics_listen);
    free(cfg->profile);
    free(cfg->account_id);
    free(cfg->ca_file);
    free_strv(cfg->allow_empty_regions, cfg->n_allow_empty_regions);
    free_strv(cfg->regions, cfg->n_regions);
    notify_clear(cfg->notify, cfg->n_notify);
    free_strv(cfg->previous_owners, cfg->n_previous_owners);
    free_strv(cfg->ha_endpoints, cfg->n_ha_endpoints);
    free(cfg->ha_prefix);
    memset(cfg, 0, sizeof(*cfg));
}

int spec_config_set_rate(spec_config *cfg, const char *arg)
{
    spec_rate r;
    if (arg == NULL)
        return -EINVAL;
    const char *eq = strchr(arg, '=');
    if (eq == NULL) {
        if (spec_parse_rate(arg, &r) < 0)
            return -EINVAL;
        cfg->rate_default = r;
        return 0;
    }
    char action[65];
    size_t len = (size_t)(eq - arg);
    if (len == 0 || len >= sizeof(action))
        return -EINVAL;
    memcpy(action, arg, len);
    action[len] = '\0';
    if (strcmp(action, "default") == 0) {
        if (spec_parse_rate(eq + 1, &r) < 0)
            return -EINVAL;
        cfg->rate_default = r;
        return 0;
    }
    if (!action_valid(action) || spec_parse_rate(eq + 1, &r) < 0)
        return -EINVAL;
    if (!spec_action_known(action))
        return -ENOENT;
    return put_rate(cfg, action, r);
}

spec_rate spec_config_rate_for(const spec_config *cfg, const char *action)
{
    for (size_t i = 0; action != NULL && i < cfg->n_rates; i++)
        if (strcmp(cfg->rates[i].action, action) == 0)
            return cfg->rates[i].rate;
    return cfg->rate_default;
}

unsigned spec_config_quota_for(const spec_config *cfg, const char *region)
{
    for (size_t i = 0; region != NULL && i < cfg->n_quotas; i++)
        if (strcmp(cfg->quotas[i].region, region) == 0)
            return cfg->quotas[i].limit;
    return cfg->quota_default;
}
