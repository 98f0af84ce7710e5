/* The etcd v3 JSON client's pure parts (provider/prov_etcd.c): request bodies (base64 keys,
 * prefix ranges, compare-and-put) and strict answer parsing, with a table of garbage answers
 * that must each give a clear error and no crash; and the `ha` config key (spec_config.c):
 * defaults, the prefix default, and every bad value with its message. */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "prov_etcd.h"
#include "rec_ha.h"
#include "spec_config.h"
#include "test_srv.h"

static void parse(prov_etcd_op op, long status, const char *body, prov_etcd_result *r)
{
    prov_etcd_parse(op, status, body, strlen(body), r);
}

Test(etcd, bodies_encode_keys_in_base64_and_prefix_ranges_end_after_the_prefix)
{
    char *b = prov_etcd_body_range("/a/b", true);
    cr_assert_not_null(b);
    /* "/a/b" = L2EvYg==, range end "/a/c" = L2EvYw== */
    cr_expect_str_eq(b, "{\"key\":\"L2EvYg==\",\"range_end\":\"L2EvYw==\"}");
    free(b);
    b = prov_etcd_body_put_if("/k", "v", 42, 0);
    json_t *j = json_loads(b, 0, NULL);
    cr_assert_not_null(j);
    json_t *cmp = json_array_get(json_object_get(j, "compare"), 0);
    cr_expect_str_eq(json_string_value(json_object_get(cmp, "target")), "CREATE");
    cr_expect_str_eq(json_string_value(json_object_get(cmp, "create_revision")), "0");
    json_t *put = json_object_get(json_array_get(json_object_get(j, "success"), 0), "request_put");
    cr_expect_str_eq(json_string_value(json_object_get(put, "lease")), "42");
    cr_expect_str_eq(json_string_value(json_object_get(put, "value")), "dg==");
    json_decref(j);
    free(b);
    b = prov_etcd_body_put_if("/k", "v", 0, 17);
    cr_expect_not_null(strstr(b, "\"mod_revision\":\"17\""));
    cr_expect_not_null(strstr(b, "\"target\":\"MOD\""));
    free(b);
}

Test(etcd, a_put_of_several_keys_compares_every_revision_and_writes_all_or_nothing)
{
    const prov_etcd_put puts[] = {{"/s/0", "5", 0}, {"/s/1", "6", 9}};
    char *b = prov_etcd_body_put_all_if(puts, 2);
    json_t *j = json_loads(b, 0, NULL);
    cr_assert_not_null(j, "%s", b);
    json_t *cmp = json_object_get(j, "compare"), *ok = json_object_get(j, "success");
    cr_assert_eq(json_array_size(cmp), 2);
    cr_assert_eq(json_array_size(ok), 2);
    cr_expect_eq(json_array_size(json_object_get(j, "failure")), 0, "nothing on failure");
    cr_expect_str_eq(json_string_value(json_object_get(json_array_get(cmp, 0), "target")),
                     "CREATE");
    cr_expect_str_eq(json_string_value(json_object_get(json_array_get(cmp, 1), "mod_revision")),
                     "9");
    json_t *put = json_object_get(json_array_get(ok, 1), "request_put");
    cr_expect_str_eq(json_string_value(json_object_get(put, "key")), "L3MvMQ==");
    cr_expect_str_eq(json_string_value(json_object_get(put, "value")), "Ng==");
    cr_expect_str_eq(json_string_value(json_object_get(put, "lease")), "0");
    json_decref(j);
    free(b);
}

Test(etcd, real_answers_parse)
{
    prov_etcd_result r;
    parse(PROV_ETCD_GRANT, 200,
          "{\"header\":{\"revision\":\"1\"},\"ID\":\"2324035766632566533\",\"TTL\":\"2\"}", &r);
    cr_assert_eq(r.err, 0, "%s", r.errmsg);
    cr_expect_eq(r.id, 2324035766632566533LL);
    cr_expect_eq(r.ttl, 2);
    parse(PROV_ETCD_KEEPALIVE, 200, "{\"result\":{\"header\":{\"revision\":\"1\"},\"ID\":\"5\"}}",
          &r);
    cr_assert_eq(r.err, 0, "%s", r.errmsg);
    cr_expect_eq(r.ttl, 0, "a keepalive without TTL: the lease is gone");
    parse(PROV_ETCD_TXN, 200,
          "{\"header\":{\"revision\":\"2\"},\"responses\":[{\"response_range\":{\"header\":{},"
          "\"kvs\":[{\"key\":\"L3gvbGVhZGVy\",\"create_revision\":\"2\",\"mod_revision\":\"3\","
          "\"version\":\"1\",\"value\":\"aGk=\",\"lease\":\"7\"}],\"count\":\"1\"}}]}",
          &r);
    cr_assert_eq(r.err, 0, "%s", r.errmsg);
    cr_expect(!r.succeeded);
    cr_assert_eq(r.n_kvs, 1);
    cr_expect_str_eq(r.kvs[0].key, "/x/leader");
    cr_expect_str_eq(r.kvs[0].value, "hi");
    cr_expect_eq(r.kvs[0].mod_revision, 3);
    cr_expect_eq(r.kvs[0].lease, 7);
    prov_etcd_result_clear(&r);
    parse(PROV_ETCD_TXN, 200, "{\"header\":{\"revision\":\"2\"},\"succeeded\":true}", &r);
    cr_expect(r.err == 0 && r.succeeded);
}

/* Each entry: an answer that must be refused, and a word of the message. */
static const struct {
    long status;
    const char *body;
    int err;
    const char *says;
} garbage[] = {
    {200, "", -EPROTO, "not a JSON object"},
    {200, "nope", -EPROTO, "not a JSON object"},
    {200, "[1,2]", -EPROTO, "not a JSON object"},
    {200, "{}", -EPROTO, "not an etcd v3"},
    {200, "{\"header\":[1]}", -EPROTO, "not an etcd v3"},
    {200, "{\"header\":{\"revision\":\"1x\"}}", -EPROTO, "not an etcd v3"},
    {200, "{\"header\":{},\"ID\":\"99999999999999999999999\"}", -EPROTO, "not an etcd v3"},
    {200, "{\"header\":{},\"TTL\":true}", -EPROTO, "not an etcd v3"},
    {200, "{\"header\":{},\"kvs\":{}}", -EPROTO, "not a list"},
    {200, "{\"header\":{},\"kvs\":[{\"value\":\"aGk=\"}]}", -EPROTO, "without a key"},
    {200, "{\"header\":{},\"kvs\":[{\"key\":\"!!!!\"}]}", -EPROTO, "base64"},
    {200, "{\"header\":{},\"kvs\":[{\"key\":\"YQ==\",\"value\":\"a\"}]}", -EPROTO, "base64"},
    {200, "{\"header\":{},\"kvs\":[{\"key\":\"YQBi\"}]}", -EPROTO, "base64"}, /* NUL in key */
    {200, "{\"header\":{},\"kvs\":[{\"key\":\"YQ==\",\"lease\":\"-\"}]}", -EPROTO, "number"},
    {200, "{\"header\":{},\"succeeded\":\"yes\"}", -EPROTO, "boolean"},
    {200, "{\"header\":{},\"a\":1,\"a\":2}", -EPROTO, "not a JSON object"},
    {503, "{\"error\":\"etcdserver: no leader\",\"code\":14}", -EAGAIN, "no leader"},
    {400, "{\"error\":\"bad\",\"code\":3,\"message\":\"invalid\"}", -EIO, "invalid"},
    {500, "<html>oops</html>", -EPROTO, "HTTP 500"},
};

Test(etcd, garbage_answers_give_clear_errors)
{
    for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
        prov_etcd_result r;
        prov_etcd_op op = strstr(garbage[i].body, "succeeded") ? PROV_ETCD_TXN : PROV_ETCD_RANGE;
        parse(op, garbage[i].status, garbage[i].body, &r);
        cr_expect_eq(r.err, garbage[i].err, "%zu: %s -> %d %s", i, garbage[i].body, r.err,
                     r.errmsg);
        cr_expect_not_null(strstr(r.errmsg, garbage[i].says), "%zu: message '%s' lacks '%s'", i,
                           r.errmsg, garbage[i].says);
        prov_etcd_result_clear(&r);
    }
    prov_etcd_result r;
    parse(PROV_ETCD_GRANT, 200, "{\"header\":{},\"ID\":\"0\",\"TTL\":\"5\"}", &r);
    cr_expect_eq(r.err, -EPROTO, "a grant without an ID");
}

/* ---- config ---- */

static char dir[64], path[128];

static int load(spec_config *cfg, spec_diags *d, const char *text)
{
    strcpy(dir, "/tmp/imgrecon-hacfg-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/config.yaml", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    cr_assert_eq(spec_config_init(cfg), 0);
    spec_diags_init(d);
    int rc = spec_config_load(cfg, path, d);
    unlink(path);
    rmdir(dir);
    return rc;
}

Test(ha_config, defaults_and_a_full_key)
{
    spec_config cfg;
    spec_diags d;
    cr_assert_eq(load(&cfg, &d, "owner: team\n"), 0);
    cr_expect_eq(cfg.n_ha_endpoints, 0);
    cr_expect_eq(cfg.ha_lease_ttl_ms, 15000);
    char *p = spec_config_ha_prefix(&cfg);
    cr_expect_str_eq(p, "/imgrecon/team");
    free(p);
    spec_config_clear(&cfg);
    spec_diags_clear(&d);
    cr_assert_eq(load(&cfg, &d,
                      "ha:\n  etcd_endpoints: [http://10.0.0.1:2379, https://e2:2379/]\n"
                      "  lease_ttl: 5s\n  prefix: /x/y\n"),
                 0);
    cr_expect_eq(cfg.n_ha_endpoints, 2);
    cr_expect_str_eq(cfg.ha_endpoints[1], "https://e2:2379/");
    cr_expect_eq(cfg.ha_lease_ttl_ms, 5000);
    cr_expect_str_eq(cfg.ha_prefix, "/x/y");
    spec_config_clear(&cfg);
    spec_diags_clear(&d);
}

static const struct {
    const char *text;
    const char *says;
} bad_ha[] = {
    {"ha: yes\n", "must be a mapping"},
    {"ha: {lease_ttl: 5s}\n", "needs 'etcd_endpoints'"},
    {"ha: {etcd_endpoints: []}\n", "list of etcd URLs"},
    {"ha: {etcd_endpoints: http://a:2379}\n", "list of etcd URLs"},
    {"ha: {etcd_endpoints: [ftp://a:2379]}\n", "http:// or https://"},
    {"ha: {etcd_endpoints: [http://a:2379/v3/kv]}\n", "without a path"},
    {"ha: {etcd_endpoints: ['http://u:secret@a:2379']}\n", "must not hold a user"},
    {"ha: {etcd_endpoints: [http://a:2379], lease_ttl: 1s}\n", "from 2s to 5m"},
    {"ha: {etcd_endpoints: [http://a:2379], lease_ttl: 2500ms}\n", "whole seconds"},
    {"ha: {etcd_endpoints: [http://a:2379], lease_ttl: 1h}\n", "from 2s to 5m"},
    {"ha: {etcd_endpoints: [http://a:2379], prefix: x}\n", "must start with '/'"},
    {"ha: {etcd_endpoints: [http://a:2379], prefix: /x/}\n", "trailing"},
    {"ha: {etcd_endpoints: [http://a:2379], prefix: /a b}\n", "no spaces"},
    {"ha: {etcd_endpoints: [http://a:2379], ttl: 5s}\n", "unknown key"},
};

Test(ha_config, bad_values_are_refused_with_their_position)
{
    for (size_t i = 0; i < sizeof(bad_ha) / sizeof(bad_ha[0]); i++) {
        spec_config cfg;
        spec_diags d;
        cr_expect_eq(load(&cfg, &d, bad_ha[i].text), -EINVAL, "%s", bad_ha[i].text);
        cr_assert_geq(d.n, 1, "%s", bad_ha[i].text);
        cr_expect_not_null(strstr(d.v[0].msg, bad_ha[i].says), "%s -> %s", bad_ha[i].text,
                           d.v[0].msg);
        cr_expect_eq(d.v[0].line, 1, "%s", bad_ha[i].text);
        cr_expect_gt(d.v[0].col, 0);
        cr_expect_null(strstr(d.v[0].msg, "secret"), "a password is never echoed");
        spec_config_clear(&cfg);
        spec_diags_clear(&d);
    }
}

/* ---- the fence against a scripted etcd ---- */

/* What the fake etcd (test_srv) answers besides a first grant of lease 7 with TTL 2 and the
 * leader key held by lease 7: a keepalive granting far more than was asked and then nothing, a
 * keepalive about another lease, or a range that also says "succeeded" with the key held by
 * another lease. */
typedef enum etcd_case { KA_HUGE_TTL, KA_OTHER_LEASE, RANGE_SUCCEEDED } etcd_case;

static volatile etcd_case fake_case;
static volatile int fake_grants, fake_keepalives;

/* The leader key "/t/leader" (L3QvbGVhZGVy) holding {"host":"h","pid":1}, with lease. */
#define LEADER_KV(lease)                                                                           \
    "{\"key\":\"L3QvbGVhZGVy\",\"value\":\"eyJob3N0IjoiaCIsInBpZCI6MX0=\",\"lease\":\"" lease      \
    "\",\"create_revision\":\"2\",\"mod_revision\":\"2\"}"

static char *fake_etcd(const req_rec *r, int *status)
{
    *status = 200;
    if (strcmp(r->target, "/v3/lease/grant") == 0 && fake_grants++ == 0)
        return strdup("{\"header\":{\"revision\":\"1\"},\"ID\":\"7\",\"TTL\":\"2\"}");
    if (strcmp(r->target, "/v3/lease/keepalive") == 0) {
        int n = fake_keepalives++;
        if (fake_case == KA_HUGE_TTL && n == 0)
            return strdup("{\"result\":{\"header\":{\"revision\":\"1\"},\"ID\":\"7\","
                          "\"TTL\":\"9000000000\"}}");
        if (fake_case == KA_OTHER_LEASE)
            return strdup(
                "{\"result\":{\"header\":{\"revision\":\"1\"},\"ID\":\"8\",\"TTL\":\"2\"}}");
    }
    if (strcmp(r->target, "/v3/kv/range") == 0 && fake_case == RANGE_SUCCEEDED)
        return strdup(
            "{\"header\":{\"revision\":\"2\"},\"succeeded\":true,\"kvs\":[" LEADER_KV("99") "]}");
    if (strcmp(r->target, "/v3/kv/range") == 0 || strcmp(r->target, "/v3/kv/txn") == 0)
        return strdup("{\"header\":{\"revision\":\"2\"},\"kvs\":[" LEADER_KV("7") "]}");
    if (strcmp(r->target, "/v3/lease/revoke") == 0)
        return strdup("{\"header\":{\"revision\":\"3\"}}");
    *status = 503;
    return strdup("{\"error\":\"etcdserver: no leader\",\"code\":14}");
}

static void on_fake_timer(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

/* Runs loop for ms milliseconds (a loop timer ends the wait); true when h was a leader whose
 * fence was open at some point. */
static bool run_ha_for(uv_loop_t *loop, rec_ha *h, uint64_t ms)
{
    bool done = false, opened = false;
    uv_timer_t t;
    cr_assert_eq(uv_timer_init(loop, &t), 0);
    t.data = &done;
    cr_assert_eq(uv_timer_start(&t, on_fake_timer, ms, 0), 0);
    while (!done) {
        (void)uv_run(loop, UV_RUN_ONCE);
        opened = opened || rec_ha_may_mutate(h);
    }
    uv_close((uv_handle_t *)&t, NULL);
    (void)uv_run(loop, UV_RUN_NOWAIT);
    return opened;
}

static void fence_against(etcd_case which, bool leads_first)
{
    srv s;
    srv_start(&s);
    fake_case = which;
    fake_grants = fake_keepalives = 0;
    s.dyn = fake_etcd;
    char text[160];
    snprintf(text, sizeof(text),
             "owner: team\nha:\n  etcd_endpoints: [http://127.0.0.1:%u]\n  lease_ttl: 2s\n"
             "  prefix: /t\n",
             s.port);
    spec_config cfg;
    spec_diags d;
    cr_assert_eq(load(&cfg, &d, text), 0);
    uv_loop_t loop;
    cr_assert_eq(uv_loop_init(&loop), 0);
    rec_ha *h = NULL;
    cr_assert_eq(rec_ha_start(&loop, &(rec_ha_opts){.cfg = &cfg}, &h), 0);
    /* The TTL is 2 s and the margin 500 ms: a fence opened by the grant closes 1.5 s after it was
     * sent unless a keepalive about this lease, answered by etcd, moves it. */
    bool opened = run_ha_for(&loop, h, 1000);
    cr_expect_eq(opened, leads_first, "the fence opened in the first second: %d", opened);
    (void)run_ha_for(&loop, h, 2000);
    cr_expect(!rec_ha_may_mutate(h), "the fence is closed 3 s after the only grant");
    cr_expect_neq(rec_ha_role_of(h), REC_HA_LEADER);
    rec_ha_stop(h);
    (void)uv_run(&loop, UV_RUN_DEFAULT);
    cr_expect_eq(uv_loop_close(&loop), 0);
    srv_stop(&s);
    spec_config_clear(&cfg);
    spec_diags_clear(&d);
}

/* etcd's keepalive answer carries the lease's TTL; a TTL larger than the one asked for (garbage:
 * etcd grants what it is asked, or its minimum) never stretches the fence past the asked TTL. */
Test(ha_fence, a_keepalive_granting_more_than_asked_keeps_the_fence_to_the_asked_ttl, .timeout = 30)
{
    fence_against(KA_HUGE_TTL, true);
    cr_expect_geq(fake_keepalives, 1, "the huge TTL was answered");
}

/* A keepalive answer about another lease says nothing about this one. */
Test(ha_fence, a_keepalive_answer_about_another_lease_does_not_extend_the_fence, .timeout = 30)
{
    fence_against(KA_OTHER_LEASE, true);
}

/* A range answer is never a won election, whatever else it holds. */
Test(ha_fence, a_range_answer_that_says_succeeded_is_not_a_won_election, .timeout = 30)
{
    fence_against(RANGE_SUCCEEDED, false);
}
