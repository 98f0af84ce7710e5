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
#include "spec_known.h"
#include "test_diag.h"
#include "test_param.h"

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
    spec_config_clear(&cfg);
    cr_assert_null(cfg.owner, "free leaves a zeroed struct");
    spec_config_clear(&cfg); /* twice is harmless */
}

Test(config, previous_owners, .init = setup, .fini = teardown)
{
    spec_config cfg;
    spec_diags d;
    cr_assert_eq(load(&cfg, &d, "owner: team-z\nprevious_owners: [team-a, team-b]\n"), 0);
    cr_assert_eq(cfg.n_previous_owners, 2);
    cr_expect_str_eq(cfg.previous_owners[0], "team-a");
    cr_expect_str_eq(cfg.previous_owners[1], "team-b");
    spec_config_clear(&cfg);
    spec_diags_clear(&d);
    cr_assert_eq(load(&cfg, &d, "previous_owners: []\n"), 0);
    cr_expect_eq(cfg.n_previous_owners, 0);
    spec_config_clear(&cfg);
    spec_diags_clear(&d);
    cr_assert_eq(spec_config_init(&cfg), 0);
    cr_expect_eq(cfg.n_previous_owners, 0, "default []");
    spec_config_clear(&cfg);
}

Test(config, free_zeroed_and_null)
{
    spec_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    spec_config_clear(&cfg);
    spec_config_clear(NULL);
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
    spec_config_clear(&cfg);
    spec_diags_clear(&d);
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
    spec_config_clear(&cfg);
    spec_diags_clear(&d);

    rc = load(&cfg, &d, "metrics_listen: ''\n# only a comment otherwise\n");
    cr_assert_eq(rc, 0);
    cr_assert_null(cfg.metrics_listen, "empty disables metrics");
    spec_config_clear(&cfg);
    spec_diags_clear(&d);

    rc = load(&cfg, &d, "");
    cr_assert_eq(rc, 0, "an empty config keeps every default");
    cr_assert_str_eq(cfg.owner, "default");
    spec_config_clear(&cfg);
    spec_diags_clear(&d);
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
    {"quotas: []\n",
     "1:9: 'quotas' must be a mapping such as {default: 15, cn-hangzhou: 9}, got an empty list", 1},
    {"ha: {etcd_endpoints: []}\n",
     "1:22: 'ha.etcd_endpoints' must be a list of etcd URLs such as [http://10.0.0.1:2379], got an "
     "empty list",
     1},
    {"\"owner\\0x\": a\n", "1:1: keys must not contain NUL characters, got string 'owner\\x00x'",
     1},
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
    /* Transport: plain http only to loopback unless allow_insecure_endpoint. */
    {"endpoint: http://10.0.0.1:8080\n",
     "1:11: 'endpoint' uses plain http:// to a host that is not loopback (127.0.0.0/8, ::1, "
     "localhost); use https://, or allow_insecure_endpoint: true (--allow-insecure-endpoint)",
     1},
    {"endpoint: http://emulator.example\nallow_insecure_endpoint: false\n",
     "1:11: 'endpoint' uses plain http:// to a host that is not loopback (127.0.0.0/8, ::1, "
     "localhost); use https://, or allow_insecure_endpoint: true (--allow-insecure-endpoint)",
     1},
    {"endpoint: http://127.0.0.1@evil.example/\n",
     "1:11: 'endpoint' must not contain user:password@", 1},
    {"endpoint: http://127.0.0.1.evil.example\n",
     "1:11: 'endpoint' uses plain http:// to a host that is not loopback (127.0.0.0/8, ::1, "
     "localhost); use https://, or allow_insecure_endpoint: true (--allow-insecure-endpoint)",
     1},
    {"endpoint: https://swas.example:0/\n",
     "1:11: 'endpoint' has a port that is not a number from 1 to 65535", 1},
    {"endpoint: https://[::1/\n", "1:11: 'endpoint' has an unterminated or too long [address]", 1},
    {"endpoint: https://a_b.example\n",
     "1:11: 'endpoint' has a host name with characters other than letters, digits, '.' and '-'", 1},
    {"allow_insecure_endpoint: yes\n",
     "1:26: 'allow_insecure_endpoint' must be a boolean (true or false), got string 'yes'", 1},
    /* Rate windows are bounded (no ts + window overflow), actions must be known ones. */
    {"rate_limits: 10/25h\n",
     "1:14: 'rate_limits' must be a rate such as 10/60s or a mapping of action to rate, got string "
     "'10/25h'",
     1},
    {"rate_limits: {default: 1/5124095576030h}\n",
     "1:24: 'rate_limits' value for 'default' must be a rate such as 10/60s, got string "
     "'1/5124095576030h'",
     1},
    {"rate_limits: {CreateImag: 1/1s}\n",
     "1:15: 'rate_limits': unknown API action 'CreateImag'; did you mean 'CreateCustomImage'?", 1},
    {"rate_limits: {DeleteImages: 1/1s, Frobnicate: 2/1s}\n",
     "1:15: 'rate_limits': unknown API action 'DeleteImages'; did you mean 'DeleteImage'?", 2},
    {"rate_limits: {DeleteImage: 1/1s, default: 5/1s, DeleteImage: 2/1s}\n",
     "1:49: 'rate_limits': duplicate key 'DeleteImage' (first at FILE:1:15)", 1},
    {"quotas: {cn-hangzhou: 1, cn-hangzhou: 2, default: 3, default: 4}\n",
     "1:26: 'quotas': duplicate key 'cn-hangzhou' (first at FILE:1:10)", 2},
    {"quotas: {default: 0, cn-hangzhou: 101, cn-hangzhou: 5}\n",
     "1:40: 'quotas': duplicate key 'cn-hangzhou' (first at FILE:1:22)", 3},
    {"rate_limits: {DeleteImage: 1/1s, DeleteImage: x}\n",
     "1:34: 'rate_limits': duplicate key 'DeleteImage' (first at FILE:1:15)", 2},
    {"metrics_listen: localhost:9780\n",
     "1:17: 'metrics_listen' must name an IP address such as 127.0.0.1 or [::1] (the daemon does "
     "not look names up), got string 'localhost:9780'",
     1},
    {"allow_empty: yes\n",
     "1:14: 'allow_empty' must be true, false or a list of region ids, got string 'yes'", 1},
    {"allow_empty: [cn-hangzhou, Shanghai]\n",
     "1:28: 'allow_empty' items must be region ids such as cn-hangzhou, got string 'Shanghai'", 1},
    {"allow_empty: [cn-hangzhou, cn-hangzhou]\n", "1:28: 'allow_empty' names cn-hangzhou twice", 1},
    {"regions: [cn-hangzhou, cn-hangzhou, cn-hangzhou]\n",
     "1:24: 'regions' names cn-hangzhou twice", 2},
    {"regions: every\n",
     "1:10: 'regions' must be a list of region ids or the string all, got string 'every'", 1},
    {"regions: [all]\n",
     "1:11: 'regions' items must be region ids such as cn-hangzhou, got string 'all'", 1},
    {"regions: [{a: 1}, cn-hangzhou]\n",
     "1:11: 'regions' items must be region ids such as cn-hangzhou, got a mapping", 1},
    {"allow_empty: [[x], cn-hangzhou, cn-hangzhou]\n",
     "1:15: 'allow_empty' items must be region ids such as cn-hangzhou, got a list", 2},
    {"regions: {cn-hangzhou: 1}\n",
     "1:10: 'regions' must be a list of region ids or the string all, got a mapping", 1},
    {"notify: {url: http://x}\n",
     "1:9: 'notify' must be a list of webhooks such as [{url: https://..., format: json}], got a "
     "mapping",
     1},
    {"notify: [{format: json}]\n", "1:10: a 'notify' entry needs a url", 1},
    {"notify: [{url: ftp://x}]\n",
     "1:16: 'notify' url must be an http:// or https:// URL (the value is not shown: webhook URLs "
     "may hold a token)",
     1},
    {"notify: [{url: 'htps://hooks.example/T0/B0/SECRETTOKEN'}]\n",
     "1:16: 'notify' url must be an http:// or https:// URL (the value is not shown: webhook URLs "
     "may hold a token)",
     1},
    {"notify: [{url: [x]}]\n", "1:16: 'notify' url must be an http:// or https:// URL, got a list",
     1},
    {"endpoint: 'htp://admin:S3CRETPW@10.0.0.1'\n",
     "1:11: 'endpoint' must be an http:// or https:// URL (or null), got string "
     "'htp://***@10.0.0.1'",
     1},
    {"notify: [{url: 'http://x', format: xml}]\n",
     "1:36: 'notify' format must be json, slack or dingtalk, got string 'xml'", 1},
    {"notify: [{url: 'http://x', events: [applied, delete]}]\n",
     "1:46: unknown notify event string 'delete': use applied, failed, manifest_error, refused, "
     "drift, recovered or leadership",
     1},
    {"notify: [{url: 'http://x', events: []}]\n",
     "1:36: 'notify' events must name at least one event", 1},
    {"notify: [{url: 'http://x', secret: s}]\n",
     "1:28: unknown key 'secret' in a notify entry (url, format, secret_file, events)", 1},
    {"notify: [{url: 'http://x', evnets: [drift]}]\n",
     "1:28: unknown key 'evnets' in a notify entry; did you mean 'events'?", 1},
    {"notify: [x]\n",
     "1:10: 'notify' entries must be mappings such as {url: https://..., format: json}, got "
     "string 'x'",
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
    return test_param_indices(N_BAD);
}

ParameterizedTest(size_t *i, config, bad, .init = setup, .fini = teardown)
{
    const bad_cfg *c = &bad_cfgs[*i];
    spec_config cfg;
    spec_diags d;
    int rc = load(&cfg, &d, c->text);
    cr_assert_eq(rc, -EINVAL, "[%s] rc %d", c->text, rc);
    cr_assert_geq(d.n, 1);
    test_diag_expect(&d.v[0], c->first, path, c->text);
    cr_expect_eq(d.n, c->count, "[%s] %zu diagnostics", c->text, d.n);
    spec_config_clear(&cfg);
    spec_diags_clear(&d);
}

/* A list of regions longer than any account could need is refused whole, with one error, before
 * its items are compared pairwise (30,000 of them once took ten seconds). */
Test(config, long_region_lists_are_one_error, .init = setup, .fini = teardown)
{
    const char *keys[] = {"regions", "allow_empty"};
    for (size_t k = 0; k < 2; k++) {
        char *text = malloc(300 * 16 + 64);
        cr_assert_not_null(text);
        int off = sprintf(text, "%s: [", keys[k]);
        for (int i = 0; i < 300; i++)
            off += sprintf(text + off, "%scn-r%d", i ? ", " : "", i);
        strcpy(text + off, "]\n");
        spec_config cfg;
        spec_diags d;
        cr_assert_eq(load(&cfg, &d, text), -EINVAL, "%s", keys[k]);
        cr_assert_eq(d.n, 1, "%s: %zu diagnostics", keys[k], d.n);
        cr_assert(strstr(d.v[0].msg, "lists 300 regions (at most 256)"), "%s", d.v[0].msg);
        spec_config_clear(&cfg);
        spec_diags_clear(&d);
        free(text);
    }
}

/* allow_empty as a boolean or a list of regions; regions as a list or all. */
Test(config, allow_empty_and_regions, .init = setup, .fini = teardown)
{
    spec_config cfg;
    spec_diags d;
    cr_assert_eq(spec_config_init(&cfg), 0);
    cr_expect(!cfg.regions_all && cfg.n_regions == 0 && cfg.n_allow_empty_regions == 0);
    cr_expect(!spec_config_allow_empty(&cfg, "cn-hangzhou"));
    spec_config_clear(&cfg);
    cr_assert_eq(load(&cfg, &d, "allow_empty: [cn-shanghai]\nregions: [cn-beijing, cn-hangzhou]\n"),
                 0);
    cr_expect(!spec_config_allow_empty(&cfg, "cn-hangzhou"));
    cr_expect(spec_config_allow_empty(&cfg, "cn-shanghai"));
    cr_assert_eq(cfg.n_regions, 2);
    cr_expect_str_eq(cfg.regions[0], "cn-beijing");
    cr_expect_str_eq(cfg.regions[1], "cn-hangzhou");
    cr_expect(!cfg.regions_all);
    spec_config_clear(&cfg);
    spec_diags_clear(&d);
    cr_assert_eq(load(&cfg, &d, "allow_empty: true\nregions: all\n"), 0);
    cr_expect(spec_config_allow_empty(&cfg, "cn-hangzhou"));
    cr_expect(cfg.regions_all);
    cr_expect_eq(cfg.n_regions, 0);
    spec_config_clear(&cfg);
    spec_diags_clear(&d);
}

/* notify: entries with defaults (json, every event, no secret), formats, event subsets and a
 * secret_file relative to the config's directory. */
Test(config, notify_entries, .init = setup, .fini = teardown)
{
    spec_config cfg;
    spec_diags d;
    cr_assert_eq(load(&cfg, &d,
                      "notify:\n"
                      "  - url: http://127.0.0.1:9/hook\n"
                      "  - url: https://hooks.example/x\n"
                      "    format: dingtalk\n"
                      "    secret_file: secret\n"
                      "    events: [failed, recovered, leadership]\n"),
                 0, "%s", d.n ? d.v[0].msg : "");
    cr_assert_eq(cfg.n_notify, 2);
    cr_assert_str_eq(cfg.notify[0].url, "http://127.0.0.1:9/hook");
    cr_assert_eq(cfg.notify[0].format, SPEC_NOTIFY_JSON);
    cr_assert_eq(cfg.notify[0].events, SPEC_EV_ALL);
    cr_assert_null(cfg.notify[0].secret_file);
    cr_assert_eq(cfg.notify[1].format, SPEC_NOTIFY_DINGTALK);
    cr_assert_eq(cfg.notify[1].events, SPEC_EV_FAILED | SPEC_EV_RECOVERED | SPEC_EV_LEADERSHIP);
    char want[256];
    snprintf(want, sizeof(want), "%s/secret", dir);
    cr_assert_str_eq(cfg.notify[1].secret_file, want);
    cr_assert_str_eq(spec_notify_event_name(SPEC_EV_MANIFEST_ERROR), "manifest_error");
    cr_assert_null(spec_notify_event_name(1u << 9));
    cr_assert_str_eq(spec_notify_format_name(SPEC_NOTIFY_SLACK), "slack");
    spec_config_clear(&cfg);
    spec_diags_clear(&d);
    cr_assert_eq(load(&cfg, &d, "notify: null\n"), 0);
    cr_assert_eq(cfg.n_notify, 0);
    spec_config_clear(&cfg);
    spec_diags_clear(&d);
}

/* --allow-empty: true, false or comma-separated region ids; anything else leaves cfg as it was. */
Test(config, set_allow_empty_flag)
{
    spec_config cfg;
    cr_assert_eq(spec_config_init(&cfg), 0);
    cr_assert_eq(spec_config_set_allow_empty(&cfg, "cn-hangzhou,cn-shanghai"), 0);
    cr_expect(spec_config_allow_empty(&cfg, "cn-shanghai"));
    cr_expect(!spec_config_allow_empty(&cfg, "cn-beijing"));
    const char *bad[] = {"", ",", "yes", "cn-hangzhou,,Shanghai", "cn-a,cn-a", "cn hangzhou"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_expect_eq(spec_config_set_allow_empty(&cfg, bad[i]), -EINVAL, "[%s]", bad[i]);
        cr_expect(spec_config_allow_empty(&cfg, "cn-hangzhou"), "[%s] changed cfg", bad[i]);
    }
    cr_assert_eq(spec_config_set_allow_empty(&cfg, "true"), 0);
    cr_expect(spec_config_allow_empty(&cfg, "cn-beijing"));
    cr_assert_eq(spec_config_set_allow_empty(&cfg, "false"), 0);
    cr_expect(!spec_config_allow_empty(&cfg, "cn-hangzhou"));
    cr_expect_eq(cfg.n_allow_empty_regions, 0);
    spec_config_clear(&cfg);
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
    spec_config_clear(&cfg);
    spec_diags_clear(&d);
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
    return test_param_indices(N_DUR);
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
    {"10/60s", 0, 10, 60000},
    {"1/1ms", 0, 1, 1},
    {"10/1s", 0, 10, 1000},
    {"1000000/1h", 0, 1000000, 3600000},
    {"1000001/1h", -EINVAL, 0, 0},
    {"0/60s", -EINVAL, 0, 0},
    {"10/0s", -EINVAL, 0, 0},
    {"10/60", -EINVAL, 0, 0},
    {"10 /60s", -EINVAL, 0, 0},
    {"10/ 60s", -EINVAL, 0, 0},
    {"10", -EINVAL, 0, 0},
    {"/60s", -EINVAL, 0, 0},
    {"10/60s/1", -EINVAL, 0, 0},
    {"-1/60s", -EINVAL, 0, 0},
    {"1.5/60s", -EINVAL, 0, 0},
    {"", -EINVAL, 0, 0},
    {"1/24h", 0, 1, 86400000},
    {"1/1440m", 0, 1, 86400000},
    {"1/25h", -EINVAL, 0, 0},
    {"1/86400001ms", -EINVAL, 0, 0},
    {"1/5124095576030h", -EINVAL, 0, 0},
};
#define N_RATE (sizeof(rates) / sizeof(rates[0]))

ParameterizedTestParameters(parse, rate)
{
    return test_param_indices(N_RATE);
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
    spec_config_clear(&cfg);
}

/* ---- Endpoint checks: accept and reject rows ------------------------------------------------
 */

typedef struct endpoint_case {
    const char *url;
    bool allow_insecure;
    bool ok;
} endpoint_case;

static const endpoint_case endpoints[] = {
    {"https://swas.cn-hangzhou.aliyuncs.com", false, true},
    {"https://10.0.0.1:8443/prefix", false, true},
    {"https://[2001:db8::1]:443/", false, true},
    {"http://127.0.0.1:8080", false, true},
    {"http://127.255.0.9/", false, true},
    {"http://localhost:9000", false, true},
    {"http://LOCALHOST", false, true},
    {"http://[::1]:8080/", false, true},
    {"http://[::ffff:127.0.0.1]:80", false, true},
    {"http://10.0.0.1:8080", false, false},
    {"http://10.0.0.1:8080", true, true},
    {"http://emulator.internal", false, false},
    {"http://emulator.internal", true, true},
    {"http://[::]:80", false, false},
    {"http://[::ffff:10.0.0.1]:80", false, false},
    {"http://127.0.0.1.nip.io", false, false},
    {"http://localhost.evil.example", false, false},
    {"http://127.1", false, false}, /* not the dotted form curl and inet_pton agree on */
    {"http://127.0.0.1@evil.example", false, false},
    {"http://127.0.0.1@evil.example", true, false},
    {"http://user:pw@127.0.0.1", false, false},
    {"http://127.0.0.1:", false, false},
    {"http://127.0.0.1:65536", false, false},
    {"http://127.0.0.1:08a", false, false},
    {"http://127.0.0.1\\@evil.example", false, false},
    {"https://[not-v6]/", false, false},
    {"https://[::1]x/", false, false},
    {"http://", false, false},
    {"https://", false, false},
    {"ftp://127.0.0.1", false, false},
    {"HTTP://127.0.0.1", false, false},
};
#define N_ENDPOINTS (sizeof(endpoints) / sizeof(endpoints[0]))

ParameterizedTestParameters(config, endpoint_check)
{
    return test_param_indices(N_ENDPOINTS);
}

ParameterizedTest(size_t *i, config, endpoint_check)
{
    const endpoint_case *c = &endpoints[*i];
    const char *why = spec_check_endpoint(c->url, c->allow_insecure);
    if (c->ok)
        cr_expect_null(why, "%s (insecure %d) refused: %s", c->url, c->allow_insecure, why);
    else
        cr_expect_not_null(why, "%s (insecure %d) accepted", c->url, c->allow_insecure);
}

/* The opt-in may come after the endpoint in the file; a flag set before the file is kept. */
Test(config, allow_insecure_endpoint_any_order, .init = setup, .fini = teardown)
{
    spec_config cfg;
    spec_diags d;
    cr_assert_eq(load(&cfg, &d, "endpoint: http://10.0.0.1:80\nallow_insecure_endpoint: true\n"), 0,
                 "%s", d.n ? d.v[0].msg : "");
    cr_assert(cfg.allow_insecure_endpoint);
    spec_config_clear(&cfg);
    spec_diags_clear(&d);

    /* As cmd/ does for --allow-insecure-endpoint: set before the file, the file cannot undo it. */
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("endpoint: http://10.0.0.1:80\nallow_insecure_endpoint: false\n", f);
    cr_assert_eq(fclose(f), 0);
    cr_assert_eq(spec_config_init(&cfg), 0);
    cfg.allow_insecure_endpoint = true;
    spec_diags_init(&d);
    cr_assert_eq(spec_config_load(&cfg, path, &d), 0, "%s", d.n ? d.v[0].msg : "");
    cr_assert(cfg.allow_insecure_endpoint);
    spec_config_clear(&cfg);
    spec_diags_clear(&d);
}

/* The flag and environment path: the source is named instead of a position. */
Test(config, check_endpoint_names_source)
{
    spec_config cfg;
    spec_diags d;
    cr_assert_eq(spec_config_init(&cfg), 0);
    spec_diags_init(&d);
    cr_assert_eq(spec_config_check_endpoint(&cfg, "--endpoint", &d), 0, "no endpoint is fine");
    cfg.endpoint = strdup("http://192.0.2.7:8080");
    cr_assert_eq(spec_config_check_endpoint(&cfg, "IMGRECON_ENDPOINT", &d), -EINVAL);
    cr_assert_eq(d.n, 1);
    cr_expect_str_eq(d.v[0].file, "IMGRECON_ENDPOINT");
    cr_expect_eq(d.v[0].line, 0);
    cr_expect_not_null(strstr(d.v[0].msg, "endpoint 'http://192.0.2.7:8080' uses plain http://"),
                       "%s", d.v[0].msg);
    cfg.allow_insecure_endpoint = true;
    cr_assert_eq(spec_config_check_endpoint(&cfg, "--endpoint", &d), 0);
    spec_config_clear(&cfg);
    spec_diags_clear(&d);
}

/* A refused endpoint from --endpoint or IMGRECON_ENDPOINT is echoed with its user:password@
 * masked, whatever the reason for the refusal. */
struct masked_case {
    char url[80];
    char want[120];
};

ParameterizedTestParameters(config, check_endpoint_masks_userinfo)
{
    static struct masked_case cases[] = {
        {"http://u:hunter2pass@127.0.0.1:8080",
         "endpoint 'http://***@127.0.0.1:8080' must not contain user:password@"},
        {"https://hunter2pass@example.com", "endpoint 'https://***@example.com' must not contain"},
        {"http://u:hunter2@pass@127.0.0.1", "endpoint 'http://***@127.0.0.1' must not contain"},
        {"http://u:hun/ter2pass@127.0.0.1", "endpoint 'http://***@127.0.0.1' has a port"},
        {"http://u:hunter2pass@127.0.0.1 x", "endpoint 'http://***@127.0.0.1 x' must not contain"},
        {"ftp://u:hunter2pass@127.0.0.1", "endpoint 'ftp://***@127.0.0.1' must start with"},
        {"u:hunter2pass@127.0.0.1", "endpoint '***@127.0.0.1' must start with"},
    };
    return cr_make_param_array(struct masked_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct masked_case *c, config, check_endpoint_masks_userinfo)
{
    spec_config cfg;
    spec_diags d;
    cr_assert_eq(spec_config_init(&cfg), 0);
    spec_diags_init(&d);
    cfg.endpoint = strdup(c->url);
    cr_assert_eq(spec_config_check_endpoint(&cfg, "--endpoint", &d), -EINVAL);
    cr_assert_eq(d.n, 1);
    cr_expect_not_null(strstr(d.v[0].msg, c->want), "want %s in: %s", c->want, d.v[0].msg);
    cr_expect_null(strstr(d.v[0].msg, "hunter2"), "the password is echoed: %s", d.v[0].msg);
    spec_config_clear(&cfg);
    spec_diags_clear(&d);
}

/* --rate-limit: unknown actions are -ENOENT (cmd/ names the likely one), windows bounded. */
Test(config, set_rate_unknown_action_and_bounds)
{
    spec_config cfg;
    cr_assert_eq(spec_config_init(&cfg), 0);
    cr_assert_eq(spec_config_set_rate(&cfg, "CreateImag=1/1s"), -ENOENT);
    cr_assert_eq(spec_config_set_rate(&cfg, "Frobnicate=1/1s"), -ENOENT);
    cr_assert_eq(spec_config_set_rate(&cfg, "AssumeRole=1/1s"), 0);
    cr_assert_eq(spec_config_set_rate(&cfg, "DeleteCustomImages=1/24h"), 0);
    cr_assert_eq(spec_config_set_rate(&cfg, "DeleteCustomImages=1/1441m"), -EINVAL);
    cr_assert_eq(spec_config_set_rate(&cfg, "1/86400001ms"), -EINVAL);
    cr_assert_eq(cfg.n_rates, 2);
    cr_expect_str_eq(spec_action_suggest("CreateImag"), "CreateCustomImage");
    cr_expect_str_eq(spec_action_suggest("ListCustomImage"), "ListCustomImages");
    cr_expect_str_eq(spec_action_suggest("DescribeImage"), "DescribeImages");
    cr_expect_null(spec_action_suggest("Frobnicate"));
    spec_config_clear(&cfg);
}

/* ---- Lint: what validate adds (warnings for unknown regions, metrics_listen run refuses) ----
 */

typedef struct lint_case {
    const char *text;
    bool allow_remote;
    const char *first_error;   /* "line:col: message" or NULL */
    const char *first_warning; /* "line:col: message" or NULL */
    size_t warnings;
} lint_case;

static const lint_case lints[] = {
    {"quotas: {default: 5, cn-hangzhou: 3, ap-southeast-1: 4}\n", false, NULL, NULL, 0},
    {"quotas: {cn-hangzhuo: 3}\n", false, NULL,
     "1:10: region 'cn-hangzhuo' is not a known Simple Application Server region; did you mean "
     "'cn-hangzhou'?",
     1},
    {"quotas: {zz-nowhere-1: 3, cn-shangai: 2}\n", false, NULL,
     "1:10: region 'zz-nowhere-1' is not a known Simple Application Server region (the list is in "
     "spec/README.md)",
     2},
    {"metrics_listen: 127.0.0.1:9780\n", false, NULL, NULL, 0},
    {"metrics_listen: '[::1]:9780'\n", false, NULL, NULL, 0},
    {"metrics_listen: null\n", false, NULL, NULL, 0},
    {"metrics_listen: 0.0.0.0:9780\n", false,
     "1:17: 'metrics_listen' 0.0.0.0:9780 is not a loopback address: `run` refuses it without "
     "--metrics-allow-remote (give the same flag to validate to accept it)",
     NULL, 0},
    {"metrics_listen: '[::]:9780'\n", false,
     "1:17: 'metrics_listen' [::]:9780 is not a loopback address: `run` refuses it without "
     "--metrics-allow-remote (give the same flag to validate to accept it)",
     NULL, 0},
    {"metrics_listen: 0.0.0.0:9780\n", true, NULL, NULL, 0},
};
#define N_LINT (sizeof(lints) / sizeof(lints[0]))

ParameterizedTestParameters(config, lint)
{
    return test_param_indices(N_LINT);
}

ParameterizedTest(size_t *i, config, lint, .init = setup, .fini = teardown)
{
    const lint_case *c = &lints[*i];
    spec_config cfg;
    spec_diags d, e, w;
    cr_assert_eq(load(&cfg, &d, c->text), 0, "[%s] %s", c->text, d.n ? d.v[0].msg : "");
    spec_diags_init(&e);
    spec_diags_init(&w);
    int rc = spec_config_lint(&cfg, path, c->allow_remote, &e, &w);
    cr_expect_eq(rc, c->first_error ? -EINVAL : 0, "[%s] rc %d", c->text, rc);
    cr_expect_eq(e.n, c->first_error ? 1 : 0, "[%s] %zu errors", c->text, e.n);
    if (c->first_error && e.n > 0)
        test_diag_expect(&e.v[0], c->first_error, path, c->text);
    cr_expect_eq(w.n, c->warnings, "[%s] %zu warnings", c->text, w.n);
    if (c->first_warning && w.n > 0)
        test_diag_expect(&w.v[0], c->first_warning, NULL, c->text);
    spec_config_clear(&cfg);
    spec_diags_clear(&d);
    spec_diags_clear(&e);
    spec_diags_clear(&w);
}

/* A file value replaces the default table; a flag after the file wins over both. */
Test(config, file_then_flags, .init = setup, .fini = teardown)
{
    spec_config cfg;
    spec_diags d;
    cr_assert_eq(load(&cfg, &d, "rate_limits: {default: 10/60s, DeleteImage: 1/60s}\n"), 0);
    cr_assert_eq(spec_config_set_rate(&cfg, "DeleteImage=10/1s"), 0);
    cr_assert_eq(spec_config_rate_for(&cfg, "DeleteImage").window_ms, 1000);
    spec_config_clear(&cfg);
    spec_diags_clear(&d);
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
    spec_config_clear(&cfg);
    spec_diags_clear(&d);
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
    spec_config_clear(&cfg);
    spec_config_clear(&def);
    spec_diags_clear(&d);
}

/* account_id keys the call budget: digits only (quoted or not), null clears it, anything else is
 * refused with its position. */
Test(config, account_id, .init = setup, .fini = teardown)
{
    spec_config cfg;
    spec_diags d;
    cr_assert_eq(load(&cfg, &d, "account_id: 1234567890123456\n"), 0);
    cr_expect_str_eq(cfg.account_id, "1234567890123456");
    spec_config_clear(&cfg);
    spec_diags_clear(&d);
    cr_assert_eq(load(&cfg, &d, "account_id: '0012'\n"), 0);
    cr_expect_str_eq(cfg.account_id, "0012");
    spec_config_clear(&cfg);
    spec_diags_clear(&d);
    cr_assert_eq(load(&cfg, &d, "account_id: null\n"), 0);
    cr_expect_null(cfg.account_id);
    spec_config_clear(&cfg);
    spec_diags_clear(&d);
    cr_assert_eq(load(&cfg, &d, "owner: x\naccount_id: acs:ram::1\n"), -EINVAL);
    cr_assert_eq(d.n, 1);
    cr_expect_eq(d.v[0].line, 2);
    cr_expect_not_null(strstr(d.v[0].msg, "'account_id' must be the account's numeric id"), "%s",
                       d.v[0].msg);
    spec_config_clear(&cfg);
    spec_diags_clear(&d);
}
