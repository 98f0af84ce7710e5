/* The config loader (spec/spec_config.c): defaults, every key, bounds, the strict duration and
 * rate parsers (tables of good and bad text), unknown keys with suggestions, --rate-limit, and
 * freeing never-initialised structs. Config files are real files in a temporary directory. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spec_config.h"

static char dir[64];
static char path[128];

static void setup(void)
{
    strcpy(dir, "/tmp/imgrecon-cfg-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/config.yaml", dir);
}

static void teardown(void)
{
    (void)unlink(path);
    cr_assert_eq(rmdir(dir), 0);
}

/* Writes text as the config file and loads it over the defaults. */
static int load(spec_config *cfg, spec_diags *d, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    cr_assert_eq(fputs(text, f) >= 0, 1);
    cr_assert_eq(fclose(f), 0);
    cr_assert_eq(spec_config_init(cfg), 0);
    spec_diags_init(d);
    return spec_config_load(cfg, path, d);
}

Test(config, defaults)
{
    spec_config cfg;
    cr_assert_eq(spec_config_init(&cfg), 0);
    cr_assert_str_eq(cfg.owner, "default");
    cr_assert_eq(cfg.n_manifests, 1);
    cr_assert_str_eq(cfg.manifests[0], "/var/lib/imgrecon/repo/images");
    cr_assert_eq(cfg.interval_ms, 300000);
    cr_assert(!cfg.prune && !cfg.allow_empty && !cfg.suspend);
    cr_assert_eq(cfg.max_deletes, 5);
    cr_assert_eq(cfg.quota_default, 15);
    cr_assert_eq(cfg.n_quotas, 0);
    cr_assert_str_eq(cfg.state_dir, "/var/lib/imgrecon");
    cr_assert_null(cfg.endpoint);
    cr_assert_eq(cfg.signature, SPEC_SIG_V3);
    cr_assert_eq(cfg.rate_default.calls, 10);
    cr_assert_eq(cfg.rate_default.window_ms, 60000);
    cr_assert_str_eq(cfg.metrics_listen, "127.0.0.1:9780");
    cr_assert_eq(cfg.log_format, SPEC_LOG_TEXT);
    cr_assert_null(cfg.profile);
    cr_assert_null(cfg.ca_file);
    spec_rate r = spec_config_rate_for(&cfg, "ListCustomImages");
    cr_assert_eq(r.calls, 10);
    cr_assert_eq(spec_config_quota_for(&cfg, "cn-hangzhou"), 15);
    spec_config_free(&cfg);
    cr_assert_null(cfg.owner, "free leaves a zeroed struct");
    spec_config_free(&cfg); /* twice is harmless */
}

Test(config, previous_owners, .init = setup, .fini = teardown)
{
    spec_config cfg;
    spec_diags d;
    cr_assert_eq(load(&cfg, &d, "owner: team-z\nprevious_owners: [team-a, team-b]\n"), 0);
    cr_assert_eq(cfg.n_previous_owners, 2);
    cr_expect_str_eq(cfg.previous_owners[0], "team-a");
    cr_expect_str_eq(cfg.previous_owners[1], "team-b");
    spec_config_free(&cfg);
    spec_diags_free(&d);
    cr_assert_eq(load(&cfg, &d, "previous_owners: []\n"), 0);
    cr_expect_eq(cfg.n_previous_owners, 0);
    spec_config_free(&cfg);
    spec_diags_free(&d);
    cr_assert_eq(spec_config_init(&cfg), 0);
    cr_expect_eq(cfg.n_previous_owners, 0, "default []");
    spec_config_free(&cfg);
}

Test(config, free_zeroed_and_null)
{
    spec_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    spec_config_free(&cfg);
    spec_config_free(NULL);
    cr_assert_null(cfg.manifests);
}

Test(config, every_key, .init = setup, .fini = teardown)
{
    spec_config cfg;
    spec_diags d;
    int rc = load(&cfg, &d,
                  "owner: team-a\n"
                  "manifests: [/srv/images, relative/dir]\n"
                  "interval: 90s\n"
                  "prune: true\n"
                  "max_deletes: 0\n"
                  "allow_empty: true\n"
                  "suspend: true\n"
                  "quotas: {default: 12, cn-hangzhou: 9, cn-shanghai: 100}\n"
                  "state_dir: /tmp/state\n"
                  "endpoint: http://127.0.0.1:8080\n"
                  "signature: v1\n"
                  "rate_limits: {default: 20/1s, ListCustomImages: 5/500ms}\n"
                  "metrics_listen: '[::1]:9100'\n"
                  "log_format: json\n"
                  "profile: prod\n"
                  "ca_file: /etc/ssl/extra.pem\n");
    cr_assert_eq(rc, 0, "%s", d.n ? d.v[0].msg : "");
    cr_assert_eq(d.n, 0);
    cr_assert_str_eq(cfg.owner, "team-a");
    cr_assert_eq(cfg.n_manifests, 2);
    cr_assert_str_eq(cfg.manifests[0], "/srv/images");
    char want[256];
    snprintf(want, sizeof(want), "%s/relative/dir", dir);
    cr_assert_str_eq(cfg.manifests[1], want, "relative to the config file's directory");
    cr_assert_eq(cfg.interval_ms, 90000);
    cr_assert(cfg.prune && cfg.allow_empty && cfg.suspend);
    cr_assert_eq(cfg.max_deletes, 0);
    cr_assert_eq(cfg.quota_default, 12);
    cr_assert_eq(spec_config_quota_for(&cfg, "cn-hangzhou"), 9);
    cr_assert_eq(spec_config_quota_for(&cfg, "cn-shanghai"), 100);
    cr_assert_eq(spec_config_quota_for(&cfg, "cn-beijing"), 12);
    cr_assert_str_eq(cfg.state_dir, "/tmp/state");
    cr_assert_str_eq(cfg.endpoint, "http://127.0.0.1:8080");
    cr_assert_eq(cfg.signature, SPEC_SIG_V1);
    cr_assert_eq(cfg.rate_default.calls, 20);
    cr_assert_eq(cfg.rate_default.window_ms, 1000);
    spec_rate r = spec_config_rate_for(&cfg, "ListCustomImages");
    cr_assert_eq(r.calls, 5);
    cr_assert_eq(r.window_ms, 500);
    cr_assert_eq(spec_config_rate_for(&cfg, "DeleteImage").calls, 20);
    cr_assert_str_eq(cfg.metrics_listen, "[::1]:9100");
    cr_assert_eq(cfg.log_format, SPEC_LOG_JSON);
    cr_assert_str_eq(cfg.profile, "prod");
    cr_assert_str_eq(cfg.ca_file, "/etc/ssl/extra.pem");
    spec_config_free(&cfg);
    spec_diags_free(&d);
}

Test(config, scalar_forms_and_nulls, .init = setup, .fini = teardown)
{
    spec_config cfg;
    spec_diags d;
    int rc = load(&cfg, &d,
                  "manifests: images\nquotas: 3\nrate_limits: 10/1s\nmetrics_listen: null\n"
                  "endpoint: ~\nprofile:\n");
    cr_assert_eq(rc, 0, "%s", d.n ? d.v[0].msg : "");
    cr_assert_eq(cfg.n_manifests, 1);
    cr_assert(strstr(cfg.manifests[0], "/images"));
    cr_assert_eq(cfg.quota_default, 3);
    cr_assert_eq(cfg.rate_default.window_ms, 1000);
    cr_assert_null(cfg.metrics_listen, "null disables metrics");
    cr_assert_null(cfg.endpoint);
    cr_assert_null(cfg.profile);
    spec_config_free(&cfg);
    spec_diags_free(&d);

    rc = load(&cfg, &d, "metrics_listen: ''\n# only a comment otherwise\n");
    cr_assert_eq(rc, 0);
    cr_assert_null(cfg.metrics_listen, "empty disables metrics");
    spec_config_free(&cfg);
    spec_diags_free(&d);

    rc = load(&cfg, &d, "");
    cr_assert_eq(rc, 0, "an empty config keeps every default");
    cr_assert_str_eq(cfg.owner, "default");
    spec_config_free(&cfg);
    spec_diags_free(&d);
}

/* ---- Bad config files: the first diagnostic, exactly ------------------------------------------
 */

typedef struct bad_cfg {
    const char *text;
    const char *first; /* "line:col: message" */
    size_t count;
} bad_cfg;

static const bad_cfg bad_cfgs[] = {
    {"intervall: 5m\n", "1:1: unknown key 'intervall' in config; did you mean 'interval'?", 1},
    {"previous_owners: team-a\n",
     "1:18: 'previous_owners' must be a list of owner names, got string 'team-a'", 1},
    {"previous_owners: [team-a, '']\n",
     "1:27: 'previous_owners' item 2 is an imgrecon/owner tag value and must be a non-empty "
     "string",
     1},
    {"colour: red\n", "1:1: unknown key 'colour' in config", 1},
    {"prune: false\nprune: true\n", "2:1: duplicate key 'prune' (first at FILE:1:1)", 1},
    {"prune: true\n",
     "1:1: prune: true needs an owner of its own: set `owner: <team-name>` (a name unique to this "
     "installation, used as the imgrecon/owner tag); with the owner left at 'default', two "
     "installations would prune each other's images",
     1},
    {"owner: default\nallow_empty: true\nprune: true\n",
     "3:1: prune: true needs an owner of its own: set `owner: <team-name>` (a name unique to this "
     "installation, used as the imgrecon/owner tag); with the owner left at 'default', two "
     "installations would prune each other's images",
     1},
    {"interval: 5\n",
     "1:11: 'interval' must be a duration such as 500ms, 6s, 5m or 1h, got number 5", 1},
    {"interval: 500ms\n", "1:11: 'interval' must be from 1s to 24h, got 500ms", 1},
    {"interval: 25h\n", "1:11: 'interval' must be from 1s to 24h, got 25h", 1},
    {"prune: yes\n", "1:8: 'prune' must be a boolean (true or false), got string 'yes'", 1},
    {"max_deletes: 1001\n",
     "1:14: 'max_deletes' must be an integer from 0 to 1000, got number 1001", 1},
    {"max_deletes: -1\n", "1:14: 'max_deletes' must be an integer from 0 to 1000, got number -1",
     1},
    {"max_deletes: '5'\n", "1:14: 'max_deletes' must be an integer from 0 to 1000, got string '5'",
     1},
    {"quotas: {default: 0}\n",
     "1:19: 'quotas' value for 'default' must be an integer from 1 to 100, got number 0", 1},
    {"quotas: {Hangzhou: 5}\n",
     "1:10: 'quotas' keys must be 'default' or a region id such as cn-hangzhou, got string "
     "'Hangzhou'",
     1},
    {"quotas: [1]\n",
     "1:9: 'quotas' must be a mapping such as {default: 15, cn-hangzhou: 9}, got a list", 1},
    {"owner: ''\n", "1:8: 'owner' must be a non-empty string, got string ''", 1},
    {"owner: see http://x\n",
     "1:8: 'owner' is used as the imgrecon/owner tag value and must not contain 'http://' or "
     "'https://'",
     1},
    {"manifests: []\n", "1:12: 'manifests' must name at least one file or directory", 1},
    {"manifests: [a, {b: c}]\n",
     "1:16: 'manifests' must be a path or a list of paths, got a mapping", 1},
    {"state_dir: null\n", "1:12: 'state_dir' must be a non-empty string, got null", 1},
    {"endpoint: ftp://x\n",
     "1:11: 'endpoint' must be an http:// or https:// URL (or null), got string 'ftp://x'", 1},
    {"endpoint: http://\n",
     "1:11: 'endpoint' must be an http:// or https:// URL (or null), got string 'http://'", 1},
    {"signature: v2\n", "1:12: 'signature' must be v3 or v1, got string 'v2'", 1},
    {"log_format: xml\n", "1:13: 'log_format' must be text or json, got string 'xml'", 1},
    {"rate_limits: 10/0s\n",
     "1:14: 'rate_limits' must be a rate such as 10/60s or a mapping of action to rate, got string "
     "'10/0s'",
     1},
    {"rate_limits: {default: 10}\n",
     "1:24: 'rate_limits' value for 'default' must be a rate such as 10/60s, got number 10", 1},
    {"rate_limits: {list_images: 1/1s}\n",
     "1:15: 'rate_limits' keys must be 'default' or an API action such as ListCustomImages, got "
     "string 'list_images'",
     1},
    {"metrics_listen: 9780\n",
     "1:17: 'metrics_listen' must be HOST:PORT such as 127.0.0.1:9780 (or null to disable), got "
     "number 9780",
     1},
    {"metrics_listen: 127.0.0.1:70000\n",
     "1:17: 'metrics_listen' must be HOST:PORT such as 127.0.0.1:9780 (or null to disable), got "
     "string '127.0.0.1:70000'",
     1},
    {"- owner: x\n", "1:1: the config file must be a mapping of settings, got a list", 1},
    {"owner: a\n---\nowner: b\n", "3:1: a config file holds one document; this is another", 1},
    {"owner: [\n",
     "2:1: syntax error: did not find expected node content, while parsing a flow "
     "node started at 2:1",
     1},
    {"prune: maybe\nmax_deletes: x\nsignatur: v3\n",
     "1:8: 'prune' must be a boolean (true or false), got string 'maybe'", 3},
};
#define N_BAD (sizeof(bad_cfgs) / sizeof(bad_cfgs[0]))

ParameterizedTestParameters(config, bad)
{
    static size_t idx[N_BAD];
    for (size_t i = 0; i < N_BAD; i++)
        idx[i] = i;
    return cr_make_param_array(size_t, idx, N_BAD);
}

ParameterizedTest(size_t *i, config, bad, .init = setup, .fini = teardown)
{
    const bad_cfg *c = &bad_cfgs[*i];
    spec_config cfg;
    spec_diags d;
    int rc = load(&cfg, &d, c->text);
    cr_assert_eq(rc, -EINVAL, "[%s] rc %d", c->text, rc);
    cr_assert_geq(d.n, 1);
    char want[1024], got[1024];
    const char *mark = strstr(c->first, "FILE");
    if (mark)
        snprintf(want, sizeof(want), "%.*s%s%s", (int)(mark - c->first), c->first, path, mark + 4);
    else
        snprintf(want, sizeof(want), "%s", c->first);
    snprintf(got, sizeof(got), "%u:%u: %s", d.v[0].line, d.v[0].col, d.v[0].msg);
    cr_expect_str_eq(got, want, "[%s]\n  got:  %s\n  want: %s", c->text, got, want);
    cr_expect_str_eq(d.v[0].file, path);
    cr_expect_eq(d.n, c->count, "[%s] %zu diagnostics", c->text, d.n);
    spec_config_free(&cfg);
    spec_diags_free(&d);
}

Test(config, missing_file)
{
    spec_config cfg;
    spec_diags d;
    cr_assert_eq(spec_config_init(&cfg), 0);
    spec_diags_init(&d);
    cr_assert_eq(spec_config_load(&cfg, "/nonexistent/imgrecon.yaml", &d), -ENOENT);
    cr_assert_eq(d.n, 1);
    cr_assert_str_eq(d.v[0].msg, "cannot read: No such file or directory");
    spec_config_free(&cfg);
    spec_diags_free(&d);
}

/* ---- Strict parsers ----------------------------------------------------------------------------
 */

typedef struct dur_case {
    const char *text;
    int rc;
    uint64_t ms;
} dur_case;

static const dur_case durations[] = {
    {"500ms", 0, 500},
    {"1ms", 0, 1},
    {"6s", 0, 6000},
    {"5m", 0, 300000},
    {"1h", 0, 3600000},
    {"120s", 0, 120000},
    {"5124095576030h", 0, 5124095576030ull * 3600000ull},
    {"5124095576031h", -EINVAL, 0}, /* * 3,600,000 overflows 64 bits */
    {"18446744073709551615ms", 0, UINT64_MAX},
    {"18446744073709551616ms", -EINVAL, 0},
    {"99999999999999999999999s", -EINVAL, 0},
    {"5", -EINVAL, 0},
    {"5 m", -EINVAL, 0},
    {" 5m", -EINVAL, 0},
    {"5m ", -EINVAL, 0},
    {"-1s", -EINVAL, 0},
    {"+1s", -EINVAL, 0},
    {"1.5s", -EINVAL, 0},
    {"0s", -EINVAL, 0},
    {"05s", -EINVAL, 0},
    {"1d", -EINVAL, 0},
    {"1S", -EINVAL, 0},
    {"1sec", -EINVAL, 0},
    {"1m30s", -EINVAL, 0},
    {"ms", -EINVAL, 0},
    {"", -EINVAL, 0},
};
#define N_DUR (sizeof(durations) / sizeof(durations[0]))

ParameterizedTestParameters(parse, duration)
{
    static size_t idx[N_DUR];
    for (size_t i = 0; i < N_DUR; i++)
        idx[i] = i;
    return cr_make_param_array(size_t, idx, N_DUR);
}

ParameterizedTest(size_t *i, parse, duration)
{
    const dur_case *c = &durations[*i];
    uint64_t ms = 12345;
    int rc = spec_parse_duration(c->text, &ms);
    cr_assert_eq(rc, c->rc, "'%s': rc %d", c->text, rc);
    cr_assert_eq(ms, c->rc == 0 ? c->ms : 12345, "'%s': %llu (untouched on error)", c->text,
                 (unsigned long long)ms);
}

typedef struct rate_case {
    const char *text;
    int rc;
    unsigned calls;
    uint64_t window_ms;
} rate_case;

static const rate_case rates[] = {
    {"10/60s", 0, 10, 60000},      {"1/1ms", 0, 1, 1},
    {"10/1s", 0, 10, 1000},        {"1000000/1h", 0, 1000000, 3600000},
    {"1000001/1h", -EINVAL, 0, 0}, {"0/60s", -EINVAL, 0, 0},
    {"10/0s", -EINVAL, 0, 0},      {"10/60", -EINVAL, 0, 0},
    {"10 /60s", -EINVAL, 0, 0},    {"10/ 60s", -EINVAL, 0, 0},
    {"10", -EINVAL, 0, 0},         {"/60s", -EINVAL, 0, 0},
    {"10/60s/1", -EINVAL, 0, 0},   {"-1/60s", -EINVAL, 0, 0},
    {"1.5/60s", -EINVAL, 0, 0},    {"", -EINVAL, 0, 0},
};
#define N_RATE (sizeof(rates) / sizeof(rates[0]))

ParameterizedTestParameters(parse, rate)
{
    static size_t idx[N_RATE];
    for (size_t i = 0; i < N_RATE; i++)
        idx[i] = i;
    return cr_make_param_array(size_t, idx, N_RATE);
}

ParameterizedTest(size_t *i, parse, rate)
{
    const rate_case *c = &rates[*i];
    spec_rate r = {77, 77};
    int rc = spec_parse_rate(c->text, &r);
    cr_assert_eq(rc, c->rc, "'%s': rc %d", c->text, rc);
    if (c->rc == 0) {
        cr_assert_eq(r.calls, c->calls, "'%s'", c->text);
        cr_assert_eq(r.window_ms, c->window_ms, "'%s'", c->text);
    } else {
        cr_assert_eq(r.calls, 77, "'%s': untouched on error", c->text);
    }
}

Test(parse, null_input)
{
    uint64_t ms;
    spec_rate r;
    cr_assert_eq(spec_parse_duration(NULL, &ms), -EINVAL);
    cr_assert_eq(spec_parse_rate(NULL, &r), -EINVAL);
}

/* --rate-limit: "N/DUR" sets the default, "ACTION=N/DUR" one action, later flags win. */
Test(config, set_rate)
{
    spec_config cfg;
    cr_assert_eq(spec_config_init(&cfg), 0);
    cr_assert_eq(spec_config_set_rate(&cfg, "10/1s"), 0);
    cr_assert_eq(cfg.rate_default.window_ms, 1000);
    cr_assert_eq(spec_config_set_rate(&cfg, "DeleteImage=5/1s"), 0);
    cr_assert_eq(spec_config_set_rate(&cfg, "DeleteImage=3/2s"), 0);
    cr_assert_eq(cfg.n_rates, 1, "the same action is replaced, not added");
    spec_rate r = spec_config_rate_for(&cfg, "DeleteImage");
    cr_assert_eq(r.calls, 3);
    cr_assert_eq(r.window_ms, 2000);
    cr_assert_eq(spec_config_rate_for(&cfg, "CreateCustomImage").calls, 10);
    cr_assert_eq(spec_config_set_rate(&cfg, "default=7/1s"), 0);
    cr_assert_eq(cfg.rate_default.calls, 7);
    cr_assert_eq(spec_config_set_rate(&cfg, "=5/1s"), -EINVAL);
    cr_assert_eq(spec_config_set_rate(&cfg, "delete-image=5/1s"), -EINVAL);
    cr_assert_eq(spec_config_set_rate(&cfg, "DeleteImage=5"), -EINVAL);
    cr_assert_eq(spec_config_set_rate(&cfg, "5"), -EINVAL);
    cr_assert_eq(spec_config_set_rate(&cfg, NULL), -EINVAL);
    cr_assert_eq(cfg.rate_default.calls, 7, "failed flags change nothing");
    cr_assert_eq(spec_config_rate_for(&cfg, "DeleteImage").calls, 3);
    spec_config_free(&cfg);
}

/* A file value replaces the default table; a flag after the file wins over both. */
Test(config, file_then_flags, .init = setup, .fini = teardown)
{
    spec_config cfg;
    spec_diags d;
    cr_assert_eq(load(&cfg, &d, "rate_limits: {default: 10/60s, DeleteImage: 1/60s}\n"), 0);
    cr_assert_eq(spec_config_set_rate(&cfg, "DeleteImage=10/1s"), 0);
    cr_assert_eq(spec_config_rate_for(&cfg, "DeleteImage").window_ms, 1000);
    spec_config_free(&cfg);
    spec_diags_free(&d);
}

/* A failed key leaves the earlier value in place (reload keeps a usable config). */
Test(config, bad_value_keeps_old, .init = setup, .fini = teardown)
{
    spec_config cfg;
    spec_diags d;
    cr_assert_eq(load(&cfg, &d, "quotas: {default: 9, cn-hangzhou: 0}\nmanifests: [a, '']\n"),
                 -EINVAL);
    cr_assert_eq(d.n, 2);
    cr_assert_eq(cfg.quota_default, 15);
    cr_assert_eq(cfg.n_quotas, 0);
    cr_assert_str_eq(cfg.manifests[0], "/var/lib/imgrecon/repo/images");
    spec_config_free(&cfg);
    spec_diags_free(&d);
}

/* The commented example config in the repository loads and equals the defaults. */
Test(config, example_file)
{
    spec_config cfg, def;
    spec_diags d;
    cr_assert_eq(spec_config_init(&cfg), 0);
    cr_assert_eq(spec_config_init(&def), 0);
    spec_diags_init(&d);
    cr_assert_eq(spec_config_load(&cfg, IMGRECON_SOURCE_DIR "/examples/config.yaml", &d), 0, "%s",
                 d.n ? d.v[0].msg : "");
    cr_assert_str_eq(cfg.owner, def.owner);
    cr_assert_str_eq(cfg.manifests[0], def.manifests[0]);
    cr_assert_eq(cfg.interval_ms, def.interval_ms);
    cr_assert_eq(cfg.quota_default, def.quota_default);
    cr_assert_eq(cfg.rate_default.calls, def.rate_default.calls);
    cr_assert_str_eq(cfg.metrics_listen, def.metrics_listen);
    spec_config_free(&cfg);
    spec_config_free(&def);
    spec_diags_free(&d);
}
