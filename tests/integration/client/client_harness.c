/* See client_harness.h. */
#include "client_harness.h"

const char * or (const char *s, const char *dflt)
{
    return s != NULL ? s : dflt;
}

/* ==== The client harness ==== */

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
prov_client_opts base_opts(harness *h)
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
void h_init(harness *h, bool use_srv, const char *endpoint)
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

void h_client(harness *h, const prov_client_opts *o)
{
    cr_assert_eq(prov_client_new(&h->loop, o, &h->c), 0);
}

/* Closes the client, drains the loop and checks that every handle is gone. */
void h_fini(harness *h)
{
    prov_client_close(h->c);
    h->c = NULL;
    (void)uv_run(&h->loop, UV_RUN_DEFAULT);
    cr_expect_eq(uv_loop_close(&h->loop), 0, "handles left on the loop");
    prov_pacer_free(h->pacer);
    if (h->use_srv)
        srv_stop(&h->s);
}

void on_guard(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

/* Runs the loop until *flag, failing the test after BOUND_MS. */
void run_until(harness *h, const bool *flag)
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

static void on_req_poll(uv_timer_t *t)
{
    req_wait *w = t->data;
    if (srv_count(&w->h->s) >= w->n) {
        w->done = true;
        (void)uv_timer_stop(t);
    }
}

void run_until_requests(harness *h, size_t n)
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

void keep_err(outcome *o, const prov_error *err)
{
    o->fired = true;
    o->calls++;
    if (err != NULL) {
        o->has_err = true;
        cr_assert_eq(prov_error_copy(&o->err, err), 0);
    }
}

void raw_cb(json_t *body, const prov_error *err, void *ud)
{
    outcome *o = ud;
    keep_err(o, err);
    cr_expect((body == NULL) == (err != NULL), "body xor error");
    if (body != NULL)
        o->body = json_incref(body);
}

void list_cb(prov_image_list *list, const prov_error *err, void *ud)
{
    outcome *o = ud;
    keep_err(o, err);
    cr_expect((list == NULL) == (err != NULL), "list xor error");
    if (list != NULL) {
        o->list = *list; /* take the contents */
        memset(list, 0, sizeof(*list));
    }
}

void ecs_cb(prov_ecs_image_list *list, const prov_error *err, void *ud)
{
    outcome *o = ud;
    keep_err(o, err);
    if (list != NULL) {
        o->ecs = *list;
        memset(list, 0, sizeof(*list));
    }
}

void create_cb(const char *image_id, const prov_error *err, void *ud)
{
    outcome *o = ud;
    keep_err(o, err);
    cr_expect((image_id == NULL) == (err != NULL), "id xor error");
    if (image_id != NULL)
        snprintf(o->image_id, sizeof(o->image_id), "%s", image_id);
}

void done_cb(const prov_error *err, void *ud)
{
    keep_err(ud, err);
}

void outcome_free(outcome *o)
{
    prov_error_clear(&o->err);
    json_decref(o->body);
    prov_image_list_clear(&o->list);
    prov_ecs_image_list_clear(&o->ecs);
    memset(o, 0, sizeof(*o));
}

/* One raw ListCustomImages call, run to its callback. */
void raw_list(harness *h, outcome *o)
{
    prov_kvs p = {0};
    cr_assert_eq(prov_kvs_add(&p, "PageSize", "10"), 0);
    cr_assert_eq(prov_call(h->c, PROV_SWAS, "ListCustomImages", "cn-hangzhou", &p, raw_cb, o), 0);
    prov_kvs_clear(&p);
    cr_expect(!o->fired, "the callback ran inside prov_call");
    run_until(h, &o->fired);
    cr_expect_eq(o->calls, 1, "the callback ran %d times", o->calls);
}

void h_start(harness *h, const h_case *c)
{
    h_init(h, true, NULL);
    if (c->rate_calls != 0)
        h->rate_calls = c->rate_calls;
    if (c->rate_window != 0)
        h->rate_window = c->rate_window;
    srv_script(&h->s, c->script, c->n_script);
    prov_client_opts o = base_opts(h);
    o.max_retries = c->max_retries;
    o.max_throttled = c->max_throttled;
    if (c->timeout_ms != 0)
        o.timeout_ms = c->timeout_ms;
    o.signature = c->signature;
    o.max_response = c->max_response;
    h_client(h, &o);
}

void h_start_raw_list(harness *h, const h_case *c, outcome *o)
{
    h_start(h, c);
    raw_list(h, o);
}

void h_finish(harness *h, outcome *o)
{
    outcome_free(o);
    h_fini(h);
}

void expect_failed(const outcome *o, prov_err_class cls)
{
    cr_assert(o->has_err);
    cr_expect_eq(o->err.cls, cls, "class %s", prov_err_class_name(o->err.cls));
}

void expect_transient(const outcome *o)
{
    expect_failed(o, PROV_ERR_TRANSIENT);
}

void expect_failed_sys(const outcome *o, int sys)
{
    cr_assert(o->has_err);
    cr_expect_eq(o->err.sys, sys, "sys %d", o->err.sys);
}

void expect_ok(const outcome *o)
{
    cr_assert(!o->has_err, "error: class %s, sys %d, code %s: %s", prov_err_class_name(o->err.cls),
              o->err.sys, or (o->err.code, "-"), or (o->err.message, "-"));
}

const char throttled_body[] =
    "{\"RequestId\":\"R-thr\",\"HostId\":\"swas.aliyuncs.com\",\"Code\":\"Throttling.User\","
    "\"Message\":\"Request was denied due to user flow control.\"}";

const char ok_list[] =
    "{\"RequestId\":\"R-ok\",\"TotalCount\":\"1\",\"PageNumber\":\"1\",\"PageSize\":\"10\","
    "\"CustomImages\":[{\"ImageId\":\"m-ok1\",\"Name\":\"ok-1\",\"Status\":\"1\","
    "\"InShare\":\"false\",\"RegionId\":\"cn-hangzhou\"}]}";

/* Checks the V3 signature of request i with the provider's verifier. */
void expect_v3_signed(srv *s, size_t i, const char *action, const char *version)
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

void expect_v1_signed(srv *s, size_t i, const char *method, const char *action, const char *version)
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
