/* The cloud client (prov_client) end to end over real HTTP on a fresh libuv loop per test.
 * Suite "client": a scripted loopback server in a thread (one connection at a time,
 * "Connection: close") answers each request with a step of a script: good JSON, garbage, wrong
 * types, a cut-off body, no answer at all, a reset, throttling, 5xx, a permanent 4xx or a body
 * over the size cap. It records every request, so the tests count attempts and check the
 * request's shape and signature (V3 and V1, with the provider's own verifiers) without timing
 * assertions. Suite "emu": round trips of the typed operations against the real emulator.
 * Every wait is bounded by a uv timer that fails the test; uv_loop_close() must succeed. */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <jansson.h>
#include <uv.h>

#include "emu_proc.h"
#include "prov_client.h"
#include "prov_sig.h"
#include "prov_swas.h"
#include "test_srv.h"

#define KEY "LTAIemulatorDemoKey"
#define SECRET "emulator-demo-secret"
#define BOUND_MS 20000 /* the safety bound of every wait on the loop */

static const char * or (const char *s, const char *dflt)
{
    return s != NULL ? s : dflt;
}

/* ==== The client harness ==== */

typedef struct ev_rec {
    prov_err_class cls;
    long http;
    char code[64];
    char action[48];
    unsigned attempt;
    uint64_t retry_in;
} ev_rec;

typedef struct harness {
    uv_loop_t loop;
    prov_pacer *pacer;
    prov_client *c;
    prov_credential cred;
    srv s;
    bool use_srv;
    char endpoint[80];
    unsigned rate_calls;
    uint64_t rate_window;
    ev_rec ev[MAX_REQS];
    size_t n_ev;
} harness;

static char key_id[] = KEY;
static char key_secret[] = SECRET;

static void rate_for(void *ud, prov_product product, const char *action, unsigned *ret_calls,
                     uint64_t *ret_window_ms)
{
    harness *h = ud;
    (void)product;
    (void)action;
    *ret_calls = h->rate_calls;
    *ret_window_ms = h->rate_window;
}

static void on_event(void *ud, const prov_call_event *ev)
{
    harness *h = ud;
    if (h->n_ev >= MAX_REQS)
        return;
    ev_rec *r = &h->ev[h->n_ev++];
    r->cls = ev->cls;
    r->http = ev->http_status;
    snprintf(r->code, sizeof(r->code), "%s", ev->code ? ev->code : "");
    snprintf(r->action, sizeof(r->action), "%s", ev->action ? ev->action : "");
    r->attempt = ev->attempt;
    r->retry_in = ev->retry_in_ms;
}

/* Options every test starts from: small windows and backoffs, the harness's hooks. */
static prov_client_opts base_opts(harness *h)
{
    prov_client_opts o = {0};
    o.endpoint = h->endpoint;
    o.cred = &h->cred;
    o.pacer = h->pacer;
    o.rate_for = rate_for;
    o.rate_ud = h;
    o.backoff_base_ms = 10;
    o.backoff_max_ms = 40;
    o.timeout_ms = 5000;
    o.connect_timeout_ms = 2000;
    o.on_event = on_event;
    o.event_ud = h;
    return o;
}

/* Loop, pacer and (with use_srv) the scripted server; the client comes from h_client. */
static void h_init(harness *h, bool use_srv, const char *endpoint)
{
    memset(h, 0, sizeof(*h));
    cr_assert_eq(uv_loop_init(&h->loop), 0);
    cr_assert_eq(prov_pacer_open(NULL, &h->pacer), 0);
    h->cred.access_key_id = key_id;
    h->cred.access_key_secret = key_secret;
    h->rate_calls = 10;
    h->rate_window = 1000;
    h->use_srv = use_srv;
    if (use_srv) {
        srv_start(&h->s);
        snprintf(h->endpoint, sizeof(h->endpoint), "http://127.0.0.1:%u/", h->s.port);
    } else {
        snprintf(h->endpoint, sizeof(h->endpoint), "%s", endpoint);
    }
}

static void h_client(harness *h, const prov_client_opts *o)
{
    cr_assert_eq(prov_client_new(&h->loop, o, &h->c), 0);
}

/* Closes the client, drains the loop and checks that every handle is gone. */
static void h_fini(harness *h)
{
    prov_client_close(h->c);
    h->c = NULL;
    (void)uv_run(&h->loop, UV_RUN_DEFAULT);
    cr_expect_eq(uv_loop_close(&h->loop), 0, "handles left on the loop");
    prov_pacer_free(h->pacer);
    if (h->use_srv)
        srv_stop(&h->s);
}

static void on_guard(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

/* Runs the loop until *flag, failing the test after BOUND_MS. */
static void run_until(harness *h, const bool *flag)
{
    bool expired = false;
    uv_timer_t guard;
    cr_assert_eq(uv_timer_init(&h->loop, &guard), 0);
    guard.data = &expired;
    cr_assert_eq(uv_timer_start(&guard, on_guard, BOUND_MS, 0), 0);
    while (!*flag && !expired)
        (void)uv_run(&h->loop, UV_RUN_ONCE);
    (void)uv_timer_stop(&guard);
    uv_close((uv_handle_t *)&guard, NULL);
    (void)uv_run(&h->loop, UV_RUN_NOWAIT);
    cr_assert(!expired, "the callback did not run within %d ms", BOUND_MS);
}

/* Runs the loop until the server has read n requests (checked by a 5 ms loop timer; the
 * server is another thread and cannot wake the loop). Bounded like run_until. */
typedef struct req_wait {
    harness *h;
    size_t n;
    bool done;
} req_wait;

static void on_req_poll(uv_timer_t *t)
{
    req_wait *w = t->data;
    if (srv_count(&w->h->s) >= w->n) {
        w->done = true;
        (void)uv_timer_stop(t);
    }
}

static void run_until_requests(harness *h, size_t n)
{
    req_wait w = {h, n, false};
    uv_timer_t t;
    cr_assert_eq(uv_timer_init(&h->loop, &t), 0);
    t.data = &w;
    cr_assert_eq(uv_timer_start(&t, on_req_poll, 5, 5), 0);
    run_until(h, &w.done);
    uv_close((uv_handle_t *)&t, NULL);
    (void)uv_run(&h->loop, UV_RUN_NOWAIT);
}

/* What a callback left. */
typedef struct outcome {
    bool fired;
    int calls;
    bool has_err;
    prov_error err;
    json_t *body;
    prov_image_list list;
    prov_ecs_image_list ecs;
    char image_id[64];
} outcome;

static void keep_err(outcome *o, const prov_error *err)
{
    o->fired = true;
    o->calls++;
    if (err != NULL) {
        o->has_err = true;
        cr_assert_eq(prov_error_copy(&o->err, err), 0);
    }
}

static void raw_cb(json_t *body, const prov_error *err, void *ud)
{
    outcome *o = ud;
    keep_err(o, err);
    cr_expect((body == NULL) == (err != NULL), "body xor error");
    if (body != NULL)
        o->body = json_incref(body);
}

static void list_cb(prov_image_list *list, const prov_error *err, void *ud)
{
    outcome *o = ud;
    keep_err(o, err);
    cr_expect((list == NULL) == (err != NULL), "list xor error");
    if (list != NULL) {
        o->list = *list; /* take the contents */
        memset(list, 0, sizeof(*list));
    }
}

static void ecs_cb(prov_ecs_image_list *list, const prov_error *err, void *ud)
{
    outcome *o = ud;
    keep_err(o, err);
    if (list != NULL) {
        o->ecs = *list;
        memset(list, 0, sizeof(*list));
    }
}

static void create_cb(const char *image_id, const prov_error *err, void *ud)
{
    outcome *o = ud;
    keep_err(o, err);
    cr_expect((image_id == NULL) == (err != NULL), "id xor error");
    if (image_id != NULL)
        snprintf(o->image_id, sizeof(o->image_id), "%s", image_id);
}

static void done_cb(const prov_error *err, void *ud)
{
    keep_err(ud, err);
}

static void outcome_free(outcome *o)
{
    prov_error_clear(&o->err);
    json_decref(o->body);
    prov_image_list_clear(&o->list);
    prov_ecs_image_list_clear(&o->ecs);
    memset(o, 0, sizeof(*o));
}

/* One raw ListCustomImages call, run to its callback. */
static void raw_list(harness *h, outcome *o)
{
    prov_kvs p = {0};
    cr_assert_eq(prov_kvs_add(&p, "PageSize", "10"), 0);
    cr_assert_eq(prov_call(h->c, PROV_SWAS, "ListCustomImages", "cn-hangzhou", &p, raw_cb, o), 0);
    prov_kvs_clear(&p);
    cr_expect(!o->fired, "the callback ran inside prov_call");
    run_until(h, &o->fired);
    cr_expect_eq(o->calls, 1, "the callback ran %d times", o->calls);
}

static const char ok_list[] =
    "{\"RequestId\":\"R-ok\",\"TotalCount\":\"1\",\"PageNumber\":\"1\",\"PageSize\":\"10\","
    "\"CustomImages\":[{\"ImageId\":\"m-ok1\",\"Name\":\"ok-1\",\"Status\":\"1\","
    "\"InShare\":\"false\",\"RegionId\":\"cn-hangzhou\"}]}";

#define OK_STEP                                                                                    \
    {                                                                                              \
        ACT_JSON, 200, ok_list, 0                                                                  \
    }

/* Checks the V3 signature of request i with the provider's verifier. */
static void expect_v3_signed(srv *s, size_t i, const char *action, const char *version)
{
    req_rec *r = &s->reqs[i];
    const char *auth = prov_kvs_get(&r->headers, "authorization");
    cr_assert_not_null(auth, "request %zu has no Authorization", i);
    cr_expect(strncmp(auth, "ACS3-HMAC-SHA256 ", 17) == 0, "authorization: %s", auth);
    cr_expect(strstr(auth, "Credential=" KEY ",") != NULL, "authorization: %s", auth);
    cr_expect_str_eq(prov_kvs_get(&r->headers, "x-acs-action"), action);
    cr_expect_str_eq(prov_kvs_get(&r->headers, "x-acs-version"), version);
    cr_expect_not_null(prov_kvs_get(&r->headers, "x-acs-signature-nonce"));
    cr_expect_not_null(prov_kvs_get(&r->headers, "x-acs-date"));
    char *sts = NULL;
    int rc = prov_sig_v3_verify(r->method, "/", &r->query, &r->headers, "", 0, SECRET, &sts);
    cr_expect_eq(rc, 0, "request %zu: V3 signature does not verify (%d); server sts:\n%s", i, rc,
                 sts ? sts : "-");
    free(sts);
}

static void expect_v1_signed(srv *s, size_t i, const char *method, const char *action,
                             const char *version)
{
    req_rec *r = &s->reqs[i];
    cr_expect_str_eq(r->method, method);
    cr_expect_str_eq(prov_kvs_get(&r->query, "Action"), action);
    cr_expect_str_eq(prov_kvs_get(&r->query, "Version"), version);
    cr_expect_str_eq(prov_kvs_get(&r->query, "Format"), "JSON");
    cr_expect_str_eq(prov_kvs_get(&r->query, "AccessKeyId"), KEY);
    cr_expect_str_eq(prov_kvs_get(&r->query, "SignatureMethod"), "HMAC-SHA1");
    cr_expect_str_eq(prov_kvs_get(&r->query, "SignatureVersion"), "1.0");
    cr_expect_not_null(prov_kvs_get(&r->query, "Signature"));
    cr_expect_not_null(prov_kvs_get(&r->query, "SignatureNonce"));
    cr_expect_not_null(prov_kvs_get(&r->query, "Timestamp"));
    cr_expect_null(prov_kvs_get(&r->headers, "authorization"));
    char *sts = NULL;
    int rc = prov_sig_v1_verify(r->method, &r->query, SECRET, &sts);
    cr_expect_eq(rc, 0, "request %zu: V1 signature does not verify (%d); server sts:\n%s", i, rc,
                 sts ? sts : "-");
    free(sts);
}

/* ==== Suite client ==== */

Test(client, ok_v3_post_request_shape, .timeout = 30)
{
    harness h;
    h_init(&h, true, NULL);
    SCRIPT(&h.s, OK_STEP);
    prov_client_opts o = base_opts(&h);
    h_client(&h, &o);
    outcome out = {0};
    raw_list(&h, &out);
    cr_assert(!out.has_err, "error: %s", out.err.message ? out.err.message : "-");
    cr_expect_str_eq(json_string_value(json_object_get(out.body, "TotalCount")), "1");
    cr_assert_eq(srv_count(&h.s), 1);
    req_rec *r = &h.s.reqs[0];
    cr_expect_str_eq(r->method, "POST");
    cr_expect(strncmp(r->target, "/?", 2) == 0, "target %s", r->target);
    cr_expect_str_eq(prov_kvs_get(&r->query, "RegionId"), "cn-hangzhou");
    cr_expect_str_eq(prov_kvs_get(&r->query, "PageSize"), "10");
    cr_expect_null(prov_kvs_get(&r->query, "Signature"), "V3 puts no signature in the query");
    char host[32];
    snprintf(host, sizeof(host), "127.0.0.1:%u", h.s.port);
    cr_expect_str_eq(prov_kvs_get(&r->headers, "host"), host);
    cr_expect(strncmp(prov_kvs_get(&r->headers, "user-agent"), "imgrecon/", 9) == 0);
    expect_v3_signed(&h.s, 0, "ListCustomImages", "2020-06-01");
    /* One event: success on the first attempt, with the answer's RequestId. */
    cr_assert_eq(h.n_ev, 1);
    cr_expect_eq(h.ev[0].cls, PROV_ERR_NONE);
    cr_expect_eq(h.ev[0].http, 200);
    cr_expect_eq(h.ev[0].attempt, 1);
    cr_expect_eq(h.ev[0].retry_in, 0);
    cr_expect_str_eq(h.ev[0].action, "ListCustomImages");
    outcome_free(&out);
    h_fini(&h);
}

static void v1_shape(const char *method)
{
    harness h;
    h_init(&h, true, NULL);
    SCRIPT(&h.s, OK_STEP);
    prov_client_opts o = base_opts(&h);
    o.signature = 1;
    o.method = method;
    h_client(&h, &o);
    outcome out = {0};
    raw_list(&h, &out);
    cr_assert(!out.has_err);
    cr_assert_eq(srv_count(&h.s), 1);
    cr_expect_str_eq(prov_kvs_get(&h.s.reqs[0].query, "RegionId"), "cn-hangzhou");
    expect_v1_signed(&h.s, 0, method, "ListCustomImages", "2020-06-01");
    outcome_free(&out);
    h_fini(&h);
}

Test(client, ok_v1_get_request_shape, .timeout = 30)
{
    v1_shape("GET");
}

Test(client, ok_v1_post_request_shape, .timeout = 30)
{
    v1_shape("POST");
}

/* ECS requests carry ECS's version and the typed call's fixed parameters. */
Test(client, ecs_describe_request_shape, .timeout = 30)
{
    harness h;
    h_init(&h, true, NULL);
    SCRIPT(&h.s, {ACT_JSON, 200,
                  "{\"RequestId\":\"R\",\"TotalCount\":2,\"PageNumber\":1,\"PageSize\":100,"
                  "\"Images\":{\"Image\":[{\"ImageId\":\"m-e1\",\"ImageName\":\"a\"},"
                  "{\"ImageId\":\"m-e2\",\"IsSelfShared\":\"true\"}]}}",
                  0});
    prov_client_opts o = base_opts(&h);
    h_client(&h, &o);
    outcome out = {0};
    const char *ids[] = {"m-e1", "m-e2"};
    cr_assert_eq(prov_ecs_describe_images(h.c, "cn-shanghai", ids, 2, ecs_cb, &out), 0);
    run_until(&h, &out.fired);
    cr_assert(!out.has_err);
    cr_assert_eq(out.ecs.n, 2);
    cr_expect_str_eq(out.ecs.v[0].name, "a");
    cr_expect(out.ecs.v[1].is_self_shared);
    cr_assert_eq(srv_count(&h.s), 1);
    req_rec *r = &h.s.reqs[0];
    cr_expect_str_eq(prov_kvs_get(&r->query, "RegionId"), "cn-shanghai");
    cr_expect_str_eq(prov_kvs_get(&r->query, "ImageOwnerAlias"), "self");
    cr_expect_str_eq(prov_kvs_get(&r->query, "ImageId"), "m-e1,m-e2");
    cr_expect_str_eq(prov_kvs_get(&r->query, "PageSize"), "100");
    cr_expect_str_eq(prov_kvs_get(&r->query, "PageNumber"), "1");
    cr_expect(strstr(prov_kvs_get(&r->query, "Status"), "Available") != NULL);
    expect_v3_signed(&h.s, 0, "DescribeImages", "2014-05-26");
    outcome_free(&out);
    h_fini(&h);
}

/* A 200 answer that is not a JSON object is a transient failure: retried, then reported. */
Test(client, malformed_json_retried_then_transient, .timeout = 30)
{
    harness h;
    h_init(&h, true, NULL);
    SCRIPT(&h.s, {ACT_JSON, 200, "{\"TotalCount\":\"1\",\"CustomImages\":[", 0},
           {ACT_JSON, 200, "[]", 0}, {ACT_JSON, 200, "<html>oops</html>", 0});
    prov_client_opts o = base_opts(&h);
    o.max_retries = 2;
    h_client(&h, &o);
    outcome out = {0};
    raw_list(&h, &out);
    cr_assert(out.has_err);
    cr_expect_eq(out.err.cls, PROV_ERR_TRANSIENT, "class %s", prov_err_class_name(out.err.cls));
    cr_expect_eq(out.err.sys, -EPROTO);
    cr_expect_null(out.body);
    cr_expect_eq(srv_count(&h.s), 3, "1 + max_retries attempts, got %zu", srv_count(&h.s));
    cr_assert_eq(h.n_ev, 3);
    cr_expect_gt(h.ev[0].retry_in, 0);
    cr_expect_gt(h.ev[1].retry_in, 0);
    cr_expect_eq(h.ev[2].retry_in, 0);
    outcome_free(&out);
    h_fini(&h);
}

/* Garbage first, then a good answer: the retry succeeds and the list is whole. */
Test(client, malformed_then_good, .timeout = 30)
{
    harness h;
    h_init(&h, true, NULL);
    SCRIPT(&h.s, {ACT_JSON, 200, "{\"CustomImages\":[{\"ImageId\":", 0}, OK_STEP);
    prov_client_opts o = base_opts(&h);
    h_client(&h, &o);
    outcome out = {0};
    cr_assert_eq(prov_swas_list_images(h.c, "cn-hangzhou", NULL, list_cb, &out), 0);
    run_until(&h, &out.fired);
    cr_assert(!out.has_err);
    cr_assert_eq(out.list.n, 1);
    cr_expect_str_eq(out.list.v[0].image_id, "m-ok1");
    cr_expect_eq(srv_count(&h.s), 2);
    outcome_free(&out);
    h_fini(&h);
}

/* Well-formed JSON with the wrong types: the typed operation rejects it with -EPROTO and
 * hands over no list; no partial result leaks. */
Test(client, wrong_types_rejected_by_typed_ops, .timeout = 30)
{
    harness h;
    h_init(&h, true, NULL);
    SCRIPT(&h.s,
           {ACT_JSON, 200,
            "{\"TotalCount\":\"2\",\"CustomImages\":[{\"ImageId\":\"m-1\",\"Name\":\"a\"},"
            "{\"ImageId\":\"m-2\",\"Name\":\"b\",\"InShare\":\"maybe\"}]}",
            0},
           {ACT_JSON, 200, "{\"RequestId\":\"R\",\"ImageId\":12345}", 0},
           {ACT_JSON, 200, "{\"TotalCount\":1,\"Images\":{\"Image\":{\"ImageId\":\"m-1\"}}}", 0});
    prov_client_opts o = base_opts(&h);
    h_client(&h, &o);

    outcome out = {0};
    cr_assert_eq(prov_swas_list_images(h.c, "cn-hangzhou", NULL, list_cb, &out), 0);
    run_until(&h, &out.fired);
    cr_assert(out.has_err);
    cr_expect_eq(out.err.sys, -EPROTO);
    cr_expect_eq(out.list.n, 0);
    cr_expect_null(out.list.v);
    outcome_free(&out);

    prov_create_req req = {
        .region = "cn-hangzhou", .name = "web", .instance_id = "ace1", .client_token = "tok-1"};
    cr_assert_eq(prov_swas_create_image(h.c, &req, create_cb, &out), 0);
    run_until(&h, &out.fired);
    cr_assert(out.has_err);
    cr_expect_eq(out.err.sys, -EPROTO);
    outcome_free(&out);

    cr_assert_eq(prov_ecs_describe_images(h.c, "cn-hangzhou", NULL, 0, ecs_cb, &out), 0);
    run_until(&h, &out.fired);
    cr_assert(out.has_err);
    cr_expect_eq(out.err.sys, -EPROTO);
    cr_expect_eq(out.ecs.n, 0);
    outcome_free(&out);

    cr_expect_eq(srv_count(&h.s), 3, "a well-formed but mistyped answer is not retried");
    h_fini(&h);
}

/* Duplicate keys make an answer ambiguous (which CustomImages is it?): rejected like the
 * parsers reject them, not resolved by "last one wins". */
Test(client, duplicate_keys_rejected, .timeout = 30)
{
    harness h;
    h_init(&h, true, NULL);
    SCRIPT(&h.s, {ACT_JSON, 200,
                  "{\"TotalCount\":\"1\",\"CustomImages\":[{\"ImageId\":\"m-1\",\"Name\":\"a\"}],"
                  "\"CustomImages\":[]}",
                  0});
    prov_client_opts o = base_opts(&h);
    o.max_retries = 1;
    h_client(&h, &o);
    outcome out = {0};
    cr_assert_eq(prov_swas_list_images(h.c, "cn-hangzhou", NULL, list_cb, &out), 0);
    run_until(&h, &out.fired);
    cr_assert(out.has_err, "an answer with duplicate keys was accepted (%zu images)", out.list.n);
    cr_expect_eq(out.err.sys, -EPROTO);
    outcome_free(&out);
    h_fini(&h);
}

/* Content-Length larger than what comes before the close. */
Test(client, truncated_body_retried_then_transient, .timeout = 30)
{
    harness h;
    h_init(&h, true, NULL);
    SCRIPT(&h.s, {ACT_TRUNCATE, 200, ok_list, 0});
    prov_client_opts o = base_opts(&h);
    o.max_retries = 2;
    h_client(&h, &o);
    outcome out = {0};
    raw_list(&h, &out);
    cr_assert(out.has_err);
    cr_expect_eq(out.err.cls, PROV_ERR_TRANSIENT, "class %s", prov_err_class_name(out.err.cls));
    cr_expect_eq(out.err.sys, -ECONNRESET, "sys %d", out.err.sys);
    cr_expect_eq(out.err.http_status, 0);
    cr_expect_eq(srv_count(&h.s), 3);
    outcome_free(&out);
    h_fini(&h);
}

Test(client, truncated_then_good, .timeout = 30)
{
    harness h;
    h_init(&h, true, NULL);
    SCRIPT(&h.s, {ACT_TRUNCATE, 200, ok_list, 0}, OK_STEP);
    prov_client_opts o = base_opts(&h);
    h_client(&h, &o);
    outcome out = {0};
    raw_list(&h, &out);
    cr_assert(!out.has_err);
    cr_expect_eq(srv_count(&h.s), 2);
    cr_assert_eq(h.n_ev, 2);
    cr_expect_eq(h.ev[0].cls, PROV_ERR_TRANSIENT);
    cr_expect_eq(h.ev[1].cls, PROV_ERR_NONE);
    cr_expect_eq(h.ev[1].attempt, 2);
    outcome_free(&out);
    h_fini(&h);
}

/* No answer within timeout_ms: transient, retried, each attempt counted at the server. */
Test(client, slow_answer_times_out_and_retries, .timeout = 30)
{
    harness h;
    h_init(&h, true, NULL);
    SCRIPT(&h.s, {ACT_HANG, 0, NULL, 0});
    prov_client_opts o = base_opts(&h);
    o.timeout_ms = 300;
    o.max_retries = 2;
    h_client(&h, &o);
    outcome out = {0};
    raw_list(&h, &out);
    cr_assert(out.has_err);
    cr_expect_eq(out.err.cls, PROV_ERR_TRANSIENT, "class %s", prov_err_class_name(out.err.cls));
    cr_expect_eq(out.err.sys, -ETIMEDOUT, "sys %d", out.err.sys);
    cr_expect_eq(srv_count(&h.s), 3, "requests at the server: %zu", srv_count(&h.s));
    cr_assert_eq(h.n_ev, 3);
    for (size_t i = 0; i < 3; i++) {
        cr_expect_eq(h.ev[i].attempt, i + 1);
        cr_expect_eq(h.ev[i].http, 0);
        cr_expect_eq(h.ev[i].cls, PROV_ERR_TRANSIENT);
    }
    outcome_free(&out);
    h_fini(&h);
}

Test(client, connection_reset_then_good, .timeout = 30)
{
    harness h;
    h_init(&h, true, NULL);
    SCRIPT(&h.s, {ACT_RESET, 0, NULL, 0}, {ACT_RESET, 0, NULL, 0}, OK_STEP);
    prov_client_opts o = base_opts(&h);
    h_client(&h, &o);
    outcome out = {0};
    raw_list(&h, &out);
    cr_assert(!out.has_err, "error: sys %d %s", out.err.sys, out.err.message);
    cr_expect_eq(srv_count(&h.s), 3);
    cr_assert_eq(h.n_ev, 3);
    cr_expect_eq(h.ev[0].cls, PROV_ERR_TRANSIENT);
    cr_expect_gt(h.ev[0].retry_in, 0);
    cr_expect_eq(h.ev[2].cls, PROV_ERR_NONE);
    outcome_free(&out);
    h_fini(&h);
}

Test(client, connection_reset_exhausts_retries, .timeout = 30)
{
    harness h;
    h_init(&h, true, NULL);
    SCRIPT(&h.s, {ACT_RESET, 0, NULL, 0});
    prov_client_opts o = base_opts(&h);
    o.max_retries = 1;
    h_client(&h, &o);
    outcome out = {0};
    raw_list(&h, &out);
    cr_assert(out.has_err);
    cr_expect_eq(out.err.cls, PROV_ERR_TRANSIENT);
    cr_expect_eq(out.err.sys, -ECONNRESET, "sys %d", out.err.sys);
    cr_expect_eq(srv_count(&h.s), 2);
    outcome_free(&out);
    h_fini(&h);
}

static const char throttled_body[] =
    "{\"RequestId\":\"R-thr\",\"HostId\":\"swas.aliyuncs.com\",\"Code\":\"Throttling.User\","
    "\"Message\":\"Request was denied due to user flow control.\"}";

/* Throttled: the action cools down a whole window, then the same call goes again. */
Test(client, throttled_retried_after_cooldown, .timeout = 30)
{
    harness h;
    h_init(&h, true, NULL);
    h.rate_calls = 10;
    h.rate_window = 1000; /* 10/1s: the scaled SWAS limit */
    SCRIPT(&h.s, {ACT_JSON, 400, throttled_body, 0}, OK_STEP);
    prov_client_opts o = base_opts(&h);
    o.max_retries = 1; /* throttling has its own budget */
    h_client(&h, &o);
    outcome out = {0};
    raw_list(&h, &out);
    cr_assert(!out.has_err, "error: %s", out.err.code ? out.err.code : "-");
    cr_assert_eq(srv_count(&h.s), 2);
    cr_assert_eq(h.n_ev, 2);
    cr_expect_eq(h.ev[0].cls, PROV_ERR_THROTTLED);
    cr_expect_eq(h.ev[0].http, 400);
    cr_expect_str_eq(h.ev[0].code, "Throttling.User");
    cr_expect_eq(h.ev[0].retry_in, 1000, "retry_in %" PRIu64, h.ev[0].retry_in);
    cr_expect_eq(h.ev[1].cls, PROV_ERR_NONE);
    cr_expect_eq(h.ev[1].attempt, 2);
    /* The retry came after the cooldown: the whole window after the throttled answer, which
     * the server sent after it read the first request. */
    int64_t gap = h.s.reqs[1].at_ms - h.s.reqs[0].at_ms;
    cr_expect_geq(gap, 990, "the retry came %" PRId64 " ms after the throttled call", gap);
    /* The same call: same parameters, fresh nonce, valid signature each time. */
    cr_expect_str_eq(prov_kvs_get(&h.s.reqs[1].query, "PageSize"), "10");
    cr_expect_str_neq(prov_kvs_get(&h.s.reqs[0].headers, "x-acs-signature-nonce"),
                      prov_kvs_get(&h.s.reqs[1].headers, "x-acs-signature-nonce"));
    expect_v3_signed(&h.s, 0, "ListCustomImages", "2020-06-01");
    expect_v3_signed(&h.s, 1, "ListCustomImages", "2020-06-01");
    /* The pacer holds the action's budget back for the window: none left right after. */
    unsigned left = 99;
    cr_assert_eq(
        prov_pacer_budget(h.pacer, KEY, "swas", "ListCustomImages", 10, 1000, prov_now_ms(), &left),
        0);
    cr_expect_lt(left, 10, "budget left %u", left);
    outcome_free(&out);
    h_fini(&h);
}

/* Throttled every time: bounded by max_throttled, then reported as throttled. */
Test(client, throttled_gives_up_after_max_throttled, .timeout = 30)
{
    harness h;
    h_init(&h, true, NULL);
    h.rate_calls = 10;
    h.rate_window = 200;
    SCRIPT(&h.s, {ACT_JSON, 400, throttled_body, 0});
    prov_client_opts o = base_opts(&h);
    o.max_throttled = 2;
    h_client(&h, &o);
    outcome out = {0};
    raw_list(&h, &out);
    cr_assert(out.has_err);
    cr_expect_eq(out.err.cls, PROV_ERR_THROTTLED);
    cr_expect_str_eq(out.err.code, "Throttling.User");
    cr_expect_str_eq(out.err.request_id, "R-thr");
    cr_expect_eq(srv_count(&h.s), 3);
    outcome_free(&out);
    h_fini(&h);
}

static const char internal_body[] =
    "{\"RequestId\":\"R-500\",\"Code\":\"InternalError\",\"Message\":\"The request processing "
    "has failed due to some unknown error.\"}";

Test(client, internal_error_retried_up_to_max, .timeout = 30)
{
    harness h;
    h_init(&h, true, NULL);
    SCRIPT(&h.s, {ACT_JSON, 500, internal_body, 0});
    prov_client_opts o = base_opts(&h);
    o.max_retries = 3;
    h_client(&h, &o);
    outcome out = {0};
    raw_list(&h, &out);
    cr_assert(out.has_err);
    cr_expect_eq(out.err.cls, PROV_ERR_TRANSIENT, "class %s", prov_err_class_name(out.err.cls));
    cr_expect_str_eq(out.err.code, "InternalError");
    cr_expect_eq(out.err.http_status, 500);
    cr_expect_eq(out.err.sys, 0);
    cr_expect_str_eq(out.err.request_id, "R-500");
    cr_assert_eq(srv_count(&h.s), 4, "1 + max_retries attempts, got %zu", srv_count(&h.s));
    cr_assert_eq(h.n_ev, 4);
    for (size_t i = 0; i < 4; i++) {
        cr_expect_eq(h.ev[i].attempt, i + 1);
        cr_expect_eq(h.ev[i].cls, PROV_ERR_TRANSIENT);
        cr_expect_str_eq(h.ev[i].code, "InternalError");
        if (i < 3)
            cr_expect(h.ev[i].retry_in > 0 && h.ev[i].retry_in <= 40, "retry_in %" PRIu64,
                      h.ev[i].retry_in);
        else
            cr_expect_eq(h.ev[i].retry_in, 0);
        /* Every attempt is signed afresh and verifies. */
        expect_v3_signed(&h.s, i, "ListCustomImages", "2020-06-01");
        for (size_t j = 0; j < i; j++)
            cr_expect_str_neq(prov_kvs_get(&h.s.reqs[i].headers, "x-acs-signature-nonce"),
                              prov_kvs_get(&h.s.reqs[j].headers, "x-acs-signature-nonce"));
    }
    outcome_free(&out);
    h_fini(&h);
}

Test(client, service_unavailable_then_good_v1, .timeout = 30)
{
    harness h;
    h_init(&h, true, NULL);
    SCRIPT(&h.s, {ACT_JSON, 503, "{\"Code\":\"ServiceUnavailable\",\"RequestId\":\"R\"}", 0},
           {ACT_JSON, 502, "<html>bad gateway</html>", 0}, OK_STEP);
    prov_client_opts o = base_opts(&h);
    o.signature = 1;
    h_client(&h, &o);
    outcome out = {0};
    raw_list(&h, &out);
    cr_assert(!out.has_err);
    cr_assert_eq(srv_count(&h.s), 3);
    for (size_t i = 0; i < 3; i++)
        expect_v1_signed(&h.s, i, "POST", "ListCustomImages", "2020-06-01");
    cr_expect_str_neq(prov_kvs_get(&h.s.reqs[0].query, "SignatureNonce"),
                      prov_kvs_get(&h.s.reqs[1].query, "SignatureNonce"));
    outcome_free(&out);
    h_fini(&h);
}

Test(client, permanent_error_not_retried, .timeout = 30)
{
    harness h;
    h_init(&h, true, NULL);
    SCRIPT(&h.s,
           {ACT_JSON, 400,
            "{\"RequestId\":\"R-400\",\"Code\":\"InvalidParameter\",\"Message\":\"The specified "
            "parameter is invalid.\"}",
            0},
           OK_STEP);
    prov_client_opts o = base_opts(&h);
    h_client(&h, &o);
    outcome out = {0};
    raw_list(&h, &out);
    cr_assert(out.has_err);
    cr_expect_eq(out.err.cls, PROV_ERR_PERMANENT);
    cr_expect_str_eq(out.err.code, "InvalidParameter");
    cr_expect_str_eq(out.err.message, "The specified parameter is invalid.");
    cr_expect_str_eq(out.err.request_id, "R-400");
    cr_expect_eq(out.err.http_status, 400);
    cr_expect_eq(srv_count(&h.s), 1);
    cr_assert_eq(h.n_ev, 1);
    cr_expect_eq(h.ev[0].retry_in, 0);
    outcome_free(&out);
    h_fini(&h);
}

/* A 4xx without a JSON body is permanent too, with the HTTP status kept. */
Test(client, permanent_error_without_body, .timeout = 30)
{
    harness h;
    h_init(&h, true, NULL);
    SCRIPT(&h.s, {ACT_JSON, 403, "Forbidden", 0});
    prov_client_opts o = base_opts(&h);
    h_client(&h, &o);
    outcome out = {0};
    raw_list(&h, &out);
    cr_assert(out.has_err);
    cr_expect_eq(out.err.cls, PROV_ERR_PERMANENT);
    cr_expect_eq(out.err.http_status, 403);
    cr_expect_null(out.err.code);
    cr_expect_eq(srv_count(&h.s), 1);
    outcome_free(&out);
    h_fini(&h);
}

Test(client, response_over_max_rejected, .timeout = 30)
{
    harness h;
    h_init(&h, true, NULL);
    SCRIPT(&h.s, {ACT_BIG, 200, NULL, 1000}, {ACT_BIG, 200, NULL, 64 * 1024});
    prov_client_opts o = base_opts(&h);
    o.max_response = 1024;
    h_client(&h, &o);
    /* Under the cap: fine. */
    outcome out = {0};
    raw_list(&h, &out);
    cr_assert(!out.has_err, "a 1000-byte answer under a 1024-byte cap failed: %d", out.err.sys);
    cr_expect_str_eq(json_string_value(json_object_get(out.body, "RequestId")), "R-big");
    outcome_free(&out);
    /* Over it: -EFBIG, not retried (the next answer would be as big). */
    raw_list(&h, &out);
    cr_assert(out.has_err);
    cr_expect_eq(out.err.sys, -EFBIG, "sys %d", out.err.sys);
    cr_expect_eq(out.err.cls, PROV_ERR_PERMANENT);
    cr_expect_eq(srv_count(&h.s), 2);
    outcome_free(&out);
    h_fini(&h);
}

/* A done-class answer is the success it means; an order-class one is reported. */
Test(client, typed_done_and_order_classes, .timeout = 30)
{
    harness h;
    h_init(&h, true, NULL);
    SCRIPT(&h.s, {ACT_JSON, 404, "{\"RequestId\":\"R\",\"Code\":\"InvalidImageId.NotFound\"}", 0},
           {ACT_JSON, 400, "{\"RequestId\":\"R\",\"Code\":\"CustomImageInShare\"}", 0},
           {ACT_JSON, 400, "{\"RequestId\":\"R\",\"Code\":\"DryRunOperation\"}", 0},
           {ACT_JSON, 404, "{\"RequestId\":\"R\",\"Code\":\"InvalidImageId.NotFound\"}", 0});
    prov_client_opts o = base_opts(&h);
    h_client(&h, &o);
    outcome out = {0};
    cr_assert_eq(prov_swas_delete_image(h.c, "cn-hangzhou", "m-gone", "tok", done_cb, &out), 0);
    run_until(&h, &out.fired);
    cr_expect(!out.has_err, "NotFound on delete counts as done");
    cr_expect_str_eq(prov_kvs_get(&h.s.reqs[0].query, "ImageId"), "m-gone");
    cr_expect_str_eq(prov_kvs_get(&h.s.reqs[0].query, "ClientToken"), "tok");
    outcome_free(&out);
    cr_assert_eq(prov_swas_delete_image(h.c, "cn-hangzhou", "m-shared", NULL, done_cb, &out), 0);
    run_until(&h, &out.fired);
    cr_assert(out.has_err);
    cr_expect_eq(out.err.cls, PROV_ERR_ORDER);
    outcome_free(&out);
    cr_assert_eq(prov_ecs_delete_image(h.c, "cn-hangzhou", "m-e", true, true, done_cb, &out), 0);
    run_until(&h, &out.fired);
    cr_expect(!out.has_err, "DryRunOperation counts as done");
    cr_expect_str_eq(prov_kvs_get(&h.s.reqs[2].query, "DryRun"), "true");
    cr_expect_str_eq(prov_kvs_get(&h.s.reqs[2].query, "Force"), "true");
    outcome_free(&out);
    /* NotFound on share is not done: the image is not there to share. */
    cr_assert_eq(prov_swas_share_image(h.c, "cn-hangzhou", "m-gone", true, NULL, done_cb, &out), 0);
    run_until(&h, &out.fired);
    cr_assert(out.has_err);
    cr_expect_eq(out.err.cls, PROV_ERR_PERMANENT);
    cr_expect_str_eq(prov_kvs_get(&h.s.reqs[3].query, "Operation"), "Share");
    outcome_free(&out);
    cr_expect_eq(srv_count(&h.s), 4);
    h_fini(&h);
}

/* Pages by PageNumber: 250 images (named "a" or "b", as the test's filter asks) at 100 a page,
 * the last one short. */
static char *paged_answer(const req_rec *r, int *status)
{
    unsigned page = (unsigned)strtoul(or (prov_kvs_get(&r->query, "PageNumber"), "0"), NULL, 10);
    unsigned size = (unsigned)strtoul(or (prov_kvs_get(&r->query, "PageSize"), "0"), NULL, 10);
    *status = 200;
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    fprintf(m,
            "{\"RequestId\":\"R-p%u\",\"TotalCount\":\"250\",\"PageNumber\":\"%u\","
            "\"PageSize\":\"%u\",\"CustomImages\":[",
            page, page, size);
    for (unsigned i = (page - 1) * size, k = 0; size > 0 && i < 250 && i < page * size; i++, k++)
        fprintf(m,
                "%s{\"ImageId\":\"m-p%04u\",\"Name\":\"%s\",\"Status\":\"1\","
                "\"RegionId\":\"cn-hangzhou\"}",
                k ? "," : "", i, i % 2 ? "b" : "a");
    fputs("]}", m);
    fclose(m);
    return buf;
}

Test(client, list_every_page, .timeout = 30)
{
    harness h;
    h_init(&h, true, NULL);
    h.s.dyn = paged_answer;
    prov_client_opts o = base_opts(&h);
    h_client(&h, &o);
    outcome out = {0};
    const char *names[] = {"a", "b"};
    prov_list_filter f = {.image_names = names, .n_image_names = 2, .share = -1};
    cr_assert_eq(prov_swas_list_images(h.c, "cn-hangzhou", &f, list_cb, &out), 0);
    run_until(&h, &out.fired);
    cr_assert(!out.has_err);
    cr_assert_eq(out.list.n, 250);
    for (size_t i = 0; i < 250; i++) {
        char want[16];
        snprintf(want, sizeof(want), "m-p%04zu", i);
        cr_assert_str_eq(out.list.v[i].image_id, want);
    }
    cr_assert_eq(srv_count(&h.s), 3);
    for (size_t i = 0; i < 3; i++) {
        char page[4];
        snprintf(page, sizeof(page), "%zu", i + 1);
        cr_expect_str_eq(prov_kvs_get(&h.s.reqs[i].query, "PageNumber"), page);
        cr_expect_str_eq(prov_kvs_get(&h.s.reqs[i].query, "PageSize"), "100");
        cr_expect_str_eq(prov_kvs_get(&h.s.reqs[i].query, "ImageNames"), "[\"a\",\"b\"]");
        cr_expect_null(prov_kvs_get(&h.s.reqs[i].query, "Share"));
    }
    outcome_free(&out);
    h_fini(&h);
}

/* Pages without TotalCount: nothing says where the listing ends, so it is rejected on page 1
 * with a message that says so, for SWAS and ECS alike (DESIGN.md "Observe integrity"). */
static char *paged_no_total(const req_rec *r, int *status)
{
    unsigned page = (unsigned)strtoul(or (prov_kvs_get(&r->query, "PageNumber"), "0"), NULL, 10);
    *status = 200;
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    bool ecs = strcmp(or (prov_kvs_get(&r->headers, "x-acs-action"), ""), "DescribeImages") == 0;
    fputs(ecs ? "{\"Images\":{\"Image\":[" : "{\"CustomImages\":[", m);
    for (unsigned i = (page - 1) * 100, k = 0; page > 0 && i < 150 && i < page * 100; i++, k++)
        fprintf(m, "%s{\"ImageId\":\"m-n%04u\",\"%s\":\"n-%04u\",\"RegionId\":\"cn-hangzhou\"}",
                k ? "," : "", i, ecs ? "ImageName" : "Name", i);
    fputs(ecs ? "]}}" : "]}", m);
    fclose(m);
    return buf;
}

Test(client, list_without_total_count_rejected, .timeout = 30)
{
    harness h;
    h_init(&h, true, NULL);
    h.s.dyn = paged_no_total;
    prov_client_opts o = base_opts(&h);
    h_client(&h, &o);
    outcome out = {0};
    cr_assert_eq(prov_swas_list_images(h.c, "cn-hangzhou", NULL, list_cb, &out), 0);
    run_until(&h, &out.fired);
    cr_assert(out.has_err);
    cr_expect_eq(out.err.sys, -EPROTO);
    cr_expect(strstr(or (out.err.message, ""), "page 1 has no TotalCount") != NULL, "%s",
              or (out.err.message, "(none)"));
    cr_expect_eq(out.list.n, 0);
    cr_expect_eq(srv_count(&h.s), 1);
    outcome_free(&out);
    cr_assert_eq(prov_ecs_describe_images(h.c, "cn-hangzhou", NULL, 0, ecs_cb, &out), 0);
    run_until(&h, &out.fired);
    cr_assert(out.has_err);
    cr_expect(strstr(or (out.err.message, ""), "DescribeImages in cn-hangzhou rejected: page 1 "
                                               "has no TotalCount") != NULL,
              "%s", or (out.err.message, "(none)"));
    cr_expect_eq(out.ecs.n, 0);
    cr_expect_eq(srv_count(&h.s), 2);
    outcome_free(&out);
    h_fini(&h);
}

/* A failure on page 2 fails the whole listing; page 1's images are not handed over. */
Test(client, list_fails_on_a_later_page, .timeout = 30)
{
    harness h;
    h_init(&h, true, NULL);
    SCRIPT(&h.s, {ACT_JSON, 200, NULL, 0}, /* replaced below */
           {ACT_JSON, 400, "{\"Code\":\"InvalidParam.PageNumber\",\"RequestId\":\"R\"}", 0});
    /* Page 1: a full page of 100 out of 150. */
    char *page1 = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&page1, &len);
    fputs("{\"TotalCount\":150,\"CustomImages\":[", m);
    for (int i = 0; i < 100; i++)
        fprintf(m, "%s{\"ImageId\":\"m-%03d\",\"Name\":\"n-%03d\"}", i ? "," : "", i, i);
    fputs("]}", m);
    fclose(m);
    h.s.steps[0].body = page1;
    prov_client_opts o = base_opts(&h);
    h_client(&h, &o);
    outcome out = {0};
    cr_assert_eq(prov_swas_list_images(h.c, "cn-hangzhou", NULL, list_cb, &out), 0);
    run_until(&h, &out.fired);
    cr_assert(out.has_err);
    cr_expect_str_eq(out.err.code, "InvalidParam.PageNumber");
    cr_expect_eq(out.list.n, 0);
    cr_expect_eq(srv_count(&h.s), 2);
    outcome_free(&out);
    h_fini(&h);
    free(page1);
}

/* Closing with one call in flight and one waiting for budget: both callbacks run once with
 * -ECANCELED and the loop closes clean. */
Test(client, close_cancels_in_flight_and_queued, .timeout = 30)
{
    harness h;
    h_init(&h, true, NULL);
    h.rate_calls = 1;
    h.rate_window = 60000;
    SCRIPT(&h.s, {ACT_HANG, 0, NULL, 0});
    prov_client_opts o = base_opts(&h);
    h_client(&h, &o);
    outcome a = {0}, b = {0};
    cr_assert_eq(prov_call(h.c, PROV_SWAS, "ListCustomImages", "cn-hangzhou", NULL, raw_cb, &a), 0);
    cr_assert_eq(prov_call(h.c, PROV_SWAS, "ListCustomImages", "cn-hangzhou", NULL, raw_cb, &b), 0);
    cr_expect_eq(prov_client_pending(h.c), 2);
    /* Run until the first request reached the server. */
    run_until_requests(&h, 1);
    prov_client *closing = h.c;
    prov_client_close(h.c);
    h.c = NULL;
    cr_expect(a.fired && b.fired, "close runs every pending callback");
    /* Until the loop runs its close callbacks the client is still there: calls are refused. */
    outcome late = {0};
    cr_expect_eq(
        prov_call(closing, PROV_SWAS, "ListCustomImages", "cn-hangzhou", NULL, raw_cb, &late),
        -ECANCELED);
    cr_expect(!late.fired);
    cr_expect_eq(a.calls, 1);
    cr_expect_eq(b.calls, 1);
    cr_expect_eq(a.err.sys, -ECANCELED);
    cr_expect_eq(b.err.sys, -ECANCELED);
    outcome_free(&a);
    outcome_free(&b);
    size_t sent = srv_count(&h.s);
    h_fini(&h);
    cr_expect_eq(sent, 1, "the queued call was never sent");
}

/* The pacer spaces calls of one action: with 2 per window, the third waits for the window. */
Test(client, pacer_spaces_calls, .timeout = 30)
{
    harness h;
    h_init(&h, true, NULL);
    h.rate_calls = 2;
    h.rate_window = 500;
    SCRIPT(&h.s, OK_STEP);
    prov_client_opts o = base_opts(&h);
    h_client(&h, &o);
    outcome out[3] = {0};
    for (int i = 0; i < 3; i++)
        cr_assert_eq(
            prov_call(h.c, PROV_SWAS, "ListCustomImages", "cn-hangzhou", NULL, raw_cb, &out[i]), 0);
    run_until(&h, &out[2].fired);
    cr_expect(out[0].fired && out[1].fired);
    cr_assert_eq(srv_count(&h.s), 3);
    int64_t gap = h.s.reqs[2].at_ms - h.s.reqs[0].at_ms;
    cr_expect_geq(gap, 490, "the third call came %" PRId64 " ms after the first", gap);
    for (int i = 0; i < 3; i++) {
        cr_expect(!out[i].has_err);
        outcome_free(&out[i]);
    }
    h_fini(&h);
}

/* Without a pacer the throttled retry still waits out the window instead of hammering the
 * server at once. */
Test(client, throttled_unpaced_still_cools_down, .timeout = 30)
{
    harness h;
    h_init(&h, true, NULL);
    h.rate_calls = 10;
    h.rate_window = 300;
    SCRIPT(&h.s, {ACT_JSON, 400, throttled_body, 0}, OK_STEP);
    prov_client_opts o = base_opts(&h);
    o.pacer = NULL;
    h_client(&h, &o);
    outcome out = {0};
    raw_list(&h, &out);
    cr_assert(!out.has_err);
    cr_assert_eq(srv_count(&h.s), 2);
    cr_assert_geq(h.n_ev, 1);
    cr_expect_eq(h.ev[0].retry_in, 300);
    int64_t gap = h.s.reqs[1].at_ms - h.s.reqs[0].at_ms;
    cr_expect_geq(gap, 290, "the throttled call was retried %" PRId64 " ms later", gap);
    outcome_free(&out);
    h_fini(&h);
}

Test(client, v3_get_request_shape, .timeout = 30)
{
    harness h;
    h_init(&h, true, NULL);
    SCRIPT(&h.s, OK_STEP);
    prov_client_opts o = base_opts(&h);
    o.method = "GET";
    h_client(&h, &o);
    outcome out = {0};
    raw_list(&h, &out);
    cr_assert(!out.has_err);
    cr_assert_eq(srv_count(&h.s), 1);
    cr_expect_str_eq(h.s.reqs[0].method, "GET");
    expect_v3_signed(&h.s, 0, "ListCustomImages", "2020-06-01");
    outcome_free(&out);
    h_fini(&h);
}

/* A callback may close the client: the other call in flight is cancelled, once. */
typedef struct closer {
    harness *h;
    outcome *mine, *other;
} closer;

static void closing_cb(json_t *body, const prov_error *err, void *ud)
{
    closer *x = ud;
    raw_cb(body, err, x->mine);
    if (x->h->c != NULL) {
        prov_client *c = x->h->c;
        x->h->c = NULL;
        prov_client_close(c);
        cr_expect(x->other->fired, "close ran the other call's callback");
    }
}

Test(client, close_from_a_callback, .timeout = 30)
{
    harness h;
    h_init(&h, true, NULL);
    SCRIPT(&h.s, OK_STEP, {ACT_HANG, 0, NULL, 0});
    prov_client_opts o = base_opts(&h);
    h_client(&h, &o);
    outcome a = {0}, b = {0};
    closer ca = {&h, &a, &b}, cb = {&h, &b, &a};
    cr_assert_eq(
        prov_call(h.c, PROV_SWAS, "ListCustomImages", "cn-hangzhou", NULL, closing_cb, &ca), 0);
    cr_assert_eq(prov_call(h.c, PROV_ECS, "DescribeImages", "cn-hangzhou", NULL, closing_cb, &cb),
                 0);
    bool any = false;
    uv_timer_t guard;
    bool expired = false;
    cr_assert_eq(uv_timer_init(&h.loop, &guard), 0);
    guard.data = &expired;
    cr_assert_eq(uv_timer_start(&guard, on_guard, BOUND_MS, 0), 0);
    while (!any && !expired) {
        (void)uv_run(&h.loop, UV_RUN_ONCE);
        any = a.fired || b.fired;
    }
    uv_close((uv_handle_t *)&guard, NULL);
    cr_assert(!expired);
    cr_expect(a.fired && b.fired);
    cr_expect_eq(a.calls, 1);
    cr_expect_eq(b.calls, 1);
    /* One succeeded, the other was cancelled by the close. */
    cr_expect_eq(a.has_err + b.has_err, 1);
    outcome *cancelled = a.has_err ? &a : &b;
    cr_expect_eq(cancelled->err.sys, -ECANCELED);
    outcome_free(&a);
    outcome_free(&b);
    h_fini(&h);
}

Test(client, bad_arguments, .timeout = 30)
{
    harness h;
    h_init(&h, true, NULL);
    prov_client_opts o = base_opts(&h);
    prov_client *c = NULL;
    prov_client_opts no_cred = o;
    no_cred.cred = NULL;
    cr_expect_eq(prov_client_new(&h.loop, &no_cred, &c), -EINVAL);
    cr_expect_eq(prov_client_new(NULL, &o, &c), -EINVAL);
    h_client(&h, &o);
    cr_expect_eq(prov_call(h.c, PROV_SWAS, "ListCustomImages", "r", NULL, NULL, NULL), -EINVAL);
    cr_expect_eq(prov_swas_list_images(h.c, NULL, NULL, list_cb, NULL), -EINVAL);
    prov_create_req req = {.region = "r", .name = "n"};
    cr_expect_eq(prov_swas_create_image(h.c, &req, create_cb, NULL), -EINVAL);
    cr_expect_eq(prov_swas_share_image(h.c, "r", NULL, true, NULL, done_cb, NULL), -EINVAL);
    cr_expect_eq(prov_swas_delete_image(h.c, "r", NULL, NULL, done_cb, NULL), -EINVAL);
    cr_expect_eq(prov_ecs_delete_image(h.c, NULL, "m", false, false, done_cb, NULL), -EINVAL);
    cr_expect_eq(prov_client_pending(h.c), 0);
    prov_client_close(NULL);
    cr_expect_eq(srv_count(&h.s), 0);
    h_fini(&h);
}

/* ==== Suite emu: typed operations against the real emulator ==== */

typedef struct emu_env {
    emu_proc emu;
    char dir[64];
    char fixture[128];
} emu_env;

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    cr_assert_geq(fputs(text, f), 0);
    cr_assert_eq(fclose(f), 0);
}

/* One account (the demo key), cn-hangzhou with `servers` servers, n_images custom images and
 * n_ecs ECS images. */
static void emu_env_start(emu_env *e, unsigned servers, unsigned n_images, unsigned n_ecs)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->dir, sizeof(e->dir), "/tmp/imgrecon-client-XXXXXX");
    cr_assert_not_null(mkdtemp(e->dir));
    snprintf(e->fixture, sizeof(e->fixture), "%s/fixture.yaml", e->dir);
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    fprintf(m, "accounts:\n  - access_key_id: " KEY "\n    access_key_secret: " SECRET
               "\n    user_id: 1234567890123456\n"
               "regions:\n  - region: cn-hangzhou\n    servers:\n");
    for (unsigned i = 0; i < servers; i++)
        fprintf(m,
                "      - instance_id: ace0706b2ac4454d984295a94213ab%02u\n"
                "        name: web-%u\n        status: Running\n"
                "        system_snapshots: [s-sys-%02u]\n        data_snapshots: [s-data-%02u]\n",
                i, i, i, i);
    if (n_images > 0)
        fputs("    custom_images:\n", m);
    for (unsigned i = 0; i < n_images; i++)
        fprintf(m,
                "      - image_id: m-page%06u\n        name: page-%04u\n"
                "        instance_id: ace0706b2ac4454d984295a94213ab00\n"
                "        in_share: %s\n        tags: {team: t%u}\n",
                i, i, i % 3 == 0 ? "true" : "false", i % 5);
    if (n_ecs > 0)
        fputs("    ecs_images:\n", m);
    for (unsigned i = 0; i < n_ecs; i++)
        fprintf(m, "      - image_id: m-ecs%06u\n        name: ecs-%04u\n", i, i);
    fclose(m);
    write_text(e->fixture, buf);
    free(buf);
    const char *args[] = {"--fixture", e->fixture, "--rate-limit", "10/1s", "--create-delay",
                          "0",         NULL};
    int rc = emu_proc_start(&e->emu, args);
    cr_assert_eq(rc, 0, "emulator start: %s", strerror(-rc));
}

static void emu_env_stop(emu_env *e)
{
    cr_expect_eq(emu_proc_stop(&e->emu), 0);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
    (void)system(cmd);
}

/* Journal lines of one action. */
static size_t journal_count(const emu_env *e, const char *action, json_t **ret_lines)
{
    json_t *j = emu_proc_journal(&e->emu);
    cr_assert_not_null(j);
    json_t *out = json_array();
    size_t i;
    json_t *line;
    json_array_foreach(j, i, line)
    {
        if (strcmp(or (json_string_value(json_object_get(line, "action")), ""), action) == 0)
            json_array_append(out, line);
    }
    json_decref(j);
    size_t n = json_array_size(out);
    if (ret_lines)
        *ret_lines = out;
    else
        json_decref(out);
    return n;
}

static void emu_list(harness *h, const prov_list_filter *f, outcome *o)
{
    cr_assert_eq(prov_swas_list_images(h->c, "cn-hangzhou", f, list_cb, o), 0);
    run_until(h, &o->fired);
    cr_assert(!o->has_err, "list: %s %s", o->err.code ? o->err.code : "-",
              o->err.message ? o->err.message : "");
}

static void list_paging(bool v1_get)
{
    emu_env e;
    emu_env_start(&e, 1, 250, 120);
    harness h;
    h_init(&h, false, e.emu.base_url);
    prov_client_opts o = base_opts(&h);
    if (v1_get) {
        o.signature = 1;
        o.method = "GET";
    }
    h_client(&h, &o);

    outcome out = {0};
    emu_list(&h, NULL, &out);
    cr_assert_eq(out.list.n, 250, "%zu images", out.list.n);
    for (size_t i = 0; i < 250; i++) {
        char id[32], name[32], team[8];
        snprintf(id, sizeof(id), "m-page%06zu", i);
        snprintf(name, sizeof(name), "page-%04zu", i);
        snprintf(team, sizeof(team), "t%zu", i % 5);
        const prov_image *im = &out.list.v[i];
        cr_assert_str_eq(im->image_id, id);
        cr_assert_str_eq(im->name, name);
        cr_assert_eq(im->status, PROV_IMG_AVAILABLE);
        cr_assert_eq(im->in_share, i % 3 == 0, "%s in_share", id);
        cr_assert_str_eq(or (prov_image_tag(im, "team"), "-"), team);
        cr_assert_str_eq(im->instance_id, "ace0706b2ac4454d984295a94213ab00");
    }
    outcome_free(&out);

    json_t *lines = NULL;
    cr_assert_eq(journal_count(&e, "ListCustomImages", &lines), 3, "one call per 100 images");
    for (size_t i = 0; i < 3; i++) {
        json_t *p = json_object_get(json_array_get(lines, i), "params");
        char page[4];
        snprintf(page, sizeof(page), "%zu", i + 1);
        cr_expect_str_eq(json_string_value(json_object_get(p, "PageNumber")), page);
        cr_expect_str_eq(json_string_value(json_object_get(p, "PageSize")), "100");
        cr_expect_eq(json_integer_value(json_object_get(json_array_get(lines, i), "http_status")),
                     200);
    }
    json_decref(lines);

    /* A filter: shared images only (every third), still over every page. */
    prov_list_filter f = {.share = 1};
    emu_list(&h, &f, &out);
    cr_expect_eq(out.list.n, 84, "%zu shared images", out.list.n);
    for (size_t i = 0; i < out.list.n; i++)
        cr_expect(out.list.v[i].in_share);
    outcome_free(&out);

    /* ECS: 120 images, two pages. */
    cr_assert_eq(prov_ecs_describe_images(h.c, "cn-hangzhou", NULL, 0, ecs_cb, &out), 0);
    run_until(&h, &out.fired);
    cr_assert(!out.has_err, "describe: %s", out.err.code ? out.err.code : "-");
    cr_assert_eq(out.ecs.n, 120);
    cr_expect_str_eq(out.ecs.v[0].image_id, "m-ecs000000");
    cr_expect_str_eq(out.ecs.v[119].image_id, "m-ecs000119");
    cr_expect_str_eq(out.ecs.v[119].name, "ecs-0119");
    outcome_free(&out);
    cr_expect_eq(journal_count(&e, "DescribeImages", NULL), 2);

    /* An empty region: one call, no images. */
    cr_assert_eq(prov_swas_list_images(h.c, "cn-beijing", NULL, list_cb, &out), 0);
    run_until(&h, &out.fired);
    cr_assert(!out.has_err);
    cr_expect_eq(out.list.n, 0);
    outcome_free(&out);

    for (size_t i = 0; i < h.n_ev; i++)
        cr_expect_eq(h.ev[i].cls, PROV_ERR_NONE, "event %zu: %s %s", i, h.ev[i].action,
                     h.ev[i].code);
    h_fini(&h);
    emu_env_stop(&e);
}

Test(emu, list_every_page_v3_post, .timeout = 60)
{
    list_paging(false);
}

Test(emu, list_every_page_v1_get, .timeout = 60)
{
    list_paging(true);
}

static const prov_image *find_id(const prov_image_list *l, const char *id)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i].image_id, id) == 0)
            return &l->v[i];
    return NULL;
}

static void emu_done(harness *h, outcome *o, const char *what)
{
    run_until(h, &o->fired);
    cr_assert(!o->has_err, "%s: %s %s", what, o->err.code ? o->err.code : "-",
              o->err.message ? o->err.message : "");
}

Test(emu, create_share_delete_round_trip, .timeout = 60)
{
    emu_env e;
    emu_env_start(&e, 1, 0, 1);
    harness h;
    h_init(&h, false, e.emu.base_url);
    prov_client_opts o = base_opts(&h);
    h_client(&h, &o);

    /* Create. */
    prov_tag tags[] = {{"imgrecon/owner", "default"}, {"team", "web"}};
    prov_create_req req = {.region = "cn-hangzhou",
                           .name = "web-base-v1",
                           .instance_id = "ace0706b2ac4454d984295a94213ab00",
                           .system_snapshot_id = "s-sys-00",
                           .data_snapshot_id = "s-data-00",
                           .description = "round trip",
                           .tags = tags,
                           .n_tags = 2,
                           .client_token = "tok-create-1"};
    outcome out = {0};
    cr_assert_eq(prov_swas_create_image(h.c, &req, create_cb, &out), 0);
    emu_done(&h, &out, "create");
    char id[64];
    snprintf(id, sizeof(id), "%s", out.image_id);
    cr_expect(strncmp(id, "m-", 2) == 0, "image id %s", id);
    outcome_free(&out);

    /* The same token again: the same image, nothing created twice. */
    cr_assert_eq(prov_swas_create_image(h.c, &req, create_cb, &out), 0);
    emu_done(&h, &out, "create again");
    cr_expect_str_eq(out.image_id, id);
    outcome_free(&out);

    /* Listed with every field. */
    const char *ids[] = {id};
    prov_list_filter f = {.image_ids = ids, .n_image_ids = 1, .share = -1};
    emu_list(&h, &f, &out);
    cr_assert_eq(out.list.n, 1);
    const prov_image *im = &out.list.v[0];
    cr_expect_str_eq(im->image_id, id);
    cr_expect_str_eq(im->name, "web-base-v1");
    cr_expect_str_eq(im->description, "round trip");
    cr_expect_str_eq(im->instance_id, "ace0706b2ac4454d984295a94213ab00");
    cr_expect_str_eq(im->system_snapshot_id, "s-sys-00");
    cr_expect_str_eq(im->data_snapshot_id, "s-data-00");
    cr_expect_eq(im->status, PROV_IMG_AVAILABLE);
    cr_expect(!im->in_share);
    cr_expect_str_eq(or (prov_image_tag(im, "imgrecon/owner"), "-"), "default");
    cr_expect_str_eq(or (prov_image_tag(im, "team"), "-"), "web");
    outcome_free(&out);

    /* A second create with the same name is a permanent error. */
    prov_create_req dup = req;
    dup.client_token = "tok-create-2";
    cr_assert_eq(prov_swas_create_image(h.c, &dup, create_cb, &out), 0);
    run_until(&h, &out.fired);
    cr_assert(out.has_err);
    cr_expect_str_eq(out.err.code, "ImageNameAlreadyExist");
    cr_expect_eq(out.err.cls, PROV_ERR_PERMANENT);
    outcome_free(&out);

    /* Share, then see it shared. */
    cr_assert_eq(prov_swas_share_image(h.c, "cn-hangzhou", id, true, "tok-share-1", done_cb, &out),
                 0);
    emu_done(&h, &out, "share");
    outcome_free(&out);
    emu_list(&h, &f, &out);
    cr_assert_eq(out.list.n, 1);
    cr_expect(out.list.v[0].in_share);
    outcome_free(&out);

    /* Delete while shared: the order class, nothing deleted. */
    cr_assert_eq(prov_swas_delete_image(h.c, "cn-hangzhou", id, "tok-del-1", done_cb, &out), 0);
    run_until(&h, &out.fired);
    cr_assert(out.has_err);
    cr_expect_str_eq(out.err.code, "CustomImageInShare");
    cr_expect_eq(out.err.cls, PROV_ERR_ORDER);
    outcome_free(&out);

    /* Unshare, delete, and delete again (NotFound counts as done). */
    cr_assert_eq(
        prov_swas_share_image(h.c, "cn-hangzhou", id, false, "tok-unshare-1", done_cb, &out), 0);
    emu_done(&h, &out, "unshare");
    outcome_free(&out);
    cr_assert_eq(prov_swas_delete_image(h.c, "cn-hangzhou", id, "tok-del-2", done_cb, &out), 0);
    emu_done(&h, &out, "delete");
    outcome_free(&out);
    cr_assert_eq(prov_swas_delete_image(h.c, "cn-hangzhou", id, "tok-del-3", done_cb, &out), 0);
    emu_done(&h, &out, "delete again");
    outcome_free(&out);

    emu_list(&h, NULL, &out);
    cr_expect_null(find_id(&out.list, id), "the image is gone");
    cr_expect_eq(out.list.n, 0);
    outcome_free(&out);

    /* ECS: the dry run passes and deletes nothing, the real delete removes the image. */
    cr_assert_eq(
        prov_ecs_delete_image(h.c, "cn-hangzhou", "m-ecs000000", false, true, done_cb, &out), 0);
    emu_done(&h, &out, "ecs dry run");
    outcome_free(&out);
    cr_assert_eq(prov_ecs_describe_images(h.c, "cn-hangzhou", NULL, 0, ecs_cb, &out), 0);
    emu_done(&h, &out, "describe");
    cr_expect_eq(out.ecs.n, 1);
    outcome_free(&out);
    cr_assert_eq(
        prov_ecs_delete_image(h.c, "cn-hangzhou", "m-ecs000000", false, false, done_cb, &out), 0);
    emu_done(&h, &out, "ecs delete");
    outcome_free(&out);
    cr_assert_eq(prov_ecs_describe_images(h.c, "cn-hangzhou", NULL, 0, ecs_cb, &out), 0);
    emu_done(&h, &out, "describe after delete");
    cr_expect_eq(out.ecs.n, 0);
    outcome_free(&out);

    /* What the emulator saw: one image created, the journal in call order. */
    json_t *creates = NULL;
    cr_expect_eq(journal_count(&e, "CreateCustomImage", &creates), 3);
    json_t *p0 = json_object_get(json_array_get(creates, 0), "params");
    cr_expect_str_eq(json_string_value(json_object_get(p0, "ClientToken")), "tok-create-1");
    cr_expect_str_eq(json_string_value(json_object_get(p0, "Tag.2.Key")), "team");
    cr_expect_str_eq(json_string_value(json_object_get(p0, "RegionId")), "cn-hangzhou");
    json_decref(creates);
    cr_expect_eq(journal_count(&e, "ModifyImageShareStatus", NULL), 2);
    cr_expect_eq(journal_count(&e, "DeleteCustomImage", NULL), 3);
    h_fini(&h);
    emu_env_stop(&e);
}

/* Injected faults at the emulator: the client retries InternalError and rides out throttling
 * with the same ClientToken, so exactly one image is created. */
Test(emu, faults_retried_with_the_same_token, .timeout = 60)
{
    emu_env e;
    emu_env_start(&e, 1, 0, 0);
    harness h;
    h_init(&h, false, e.emu.base_url);
    cr_assert_eq(emu_proc_add_fault(&e.emu, "[{\"action\":\"CreateCustomImage\",\"kind\":"
                                            "\"InternalError\",\"count\":2},"
                                            "{\"action\":\"CreateCustomImage\",\"kind\":"
                                            "\"Throttling\",\"count\":1}]"),
                 0);
    prov_client_opts o = base_opts(&h);
    h_client(&h, &o);
    prov_create_req req = {.region = "cn-hangzhou",
                           .name = "faulty",
                           .instance_id = "ace0706b2ac4454d984295a94213ab00",
                           .client_token = "tok-faulty"};
    outcome out = {0};
    cr_assert_eq(prov_swas_create_image(h.c, &req, create_cb, &out), 0);
    emu_done(&h, &out, "create through faults");
    outcome_free(&out);
    json_t *lines = NULL;
    cr_assert_eq(journal_count(&e, "CreateCustomImage", &lines), 4);
    size_t i;
    json_t *l;
    json_array_foreach(lines, i, l)
    {
        json_t *p = json_object_get(l, "params");
        cr_expect_str_eq(json_string_value(json_object_get(p, "ClientToken")), "tok-faulty");
    }
    json_decref(lines);
    size_t throttled = 0, transient = 0;
    for (size_t k = 0; k < h.n_ev; k++) {
        throttled += h.ev[k].cls == PROV_ERR_THROTTLED;
        transient += h.ev[k].cls == PROV_ERR_TRANSIENT;
    }
    cr_expect_eq(transient, 2);
    cr_expect_eq(throttled, 1);
    emu_list(&h, NULL, &out);
    cr_expect_eq(out.list.n, 1);
    outcome_free(&out);
    h_fini(&h);
    emu_env_stop(&e);
}
