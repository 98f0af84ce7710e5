/* The cloud client end to end (see client_harness.h): closing with calls in flight, pacing, V3 GET,
 * argument checks. */
#include "client_harness.h"

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

/* Counts the before-send hook's runs and answers with a chosen result. */
typedef struct hook_rec {
    unsigned runs;
    int result;
} hook_rec;

static int before_send_hook(void *ud)
{
    hook_rec *r = ud;
    r->runs++;
    return r->result;
}

/* The executor's journal is synced by the before-send hook: it runs once for a batch of calls of
 * a mutating action the pacer grants together, never for a read, and a failure holds the batch
 * back (nothing is sent, each call fails with the hook's errno). */
Test(client, before_send_runs_once_per_batch_and_holds_calls_back, .timeout = 30)
{
    harness h;
    h_start(&h, &(h_case){H_SCRIPT(OK_STEP), .rate_calls = 10, .rate_window = 60000});
    hook_rec hook = {0, 0};
    prov_client_set_before_send(h.c, before_send_hook, &hook);
    outcome out[6] = {0};
    for (int i = 0; i < 5; i++)
        cr_assert_eq(
            prov_call(h.c, PROV_SWAS, "CreateCustomImage", "cn-hangzhou", NULL, raw_cb, &out[i]),
            0);
    cr_assert_eq(
        prov_call(h.c, PROV_SWAS, "ListCustomImages", "cn-hangzhou", NULL, raw_cb, &out[5]), 0);
    for (int i = 0; i < 6; i++)
        run_until(&h, &out[i].fired);
    cr_expect_eq(hook.runs, 1, "one run for the batch of 5 creates, none for the list: %u",
                 hook.runs);
    cr_expect_eq(srv_count(&h.s), 6);

    hook.result = -EIO;
    outcome held[2] = {0};
    for (int i = 0; i < 2; i++)
        cr_assert_eq(
            prov_call(h.c, PROV_SWAS, "DeleteCustomImage", "cn-hangzhou", NULL, raw_cb, &held[i]),
            0);
    for (int i = 0; i < 2; i++) {
        run_until(&h, &held[i].fired);
        cr_expect(held[i].has_err);
        cr_expect_eq(held[i].err.sys, -EIO);
        outcome_free(&held[i]);
    }
    cr_expect_eq(hook.runs, 2);
    cr_expect_eq(srv_count(&h.s), 6, "the held calls were never sent");
    for (int i = 0; i < 6; i++) {
        cr_expect(!out[i].has_err);
        outcome_free(&out[i]);
    }
    h_fini(&h);
}

/* The fake etcd of fence_is_asked_again_after_the_shared_budget: the pacer's range finds no slot
 * taken, and its txn (the slot taken) is where this process loses its lease, as when the budget's
 * answer is slow and the lease's deadline passes meanwhile. */
static volatile bool lease_lost;

static char *etcd_losing_the_lease(const req_rec *r, int *status)
{
    *status = 200;
    if (strcmp(r->target, "/v3/kv/txn") == 0) {
        lease_lost = true;
        return strdup("{\"header\":{\"revision\":\"2\"},\"succeeded\":true}");
    }
    return strdup("{\"header\":{\"revision\":\"1\"}}");
}

static bool fence_until_lost(void *ud)
{
    (void)ud;
    return !lease_lost;
}

/* The pacer's shared budget in etcd is read while the loop waits (a slow member can take a
 * quarter of the lease TTL per endpoint, and no keepalive goes meanwhile): a process whose lease
 * lapsed during that read sends nothing; its calls fail with -EPERM. */
Test(client, fence_is_asked_again_after_the_shared_budget, .timeout = 30)
{
    harness h;
    srv etcd;
    h_init(&h, true, NULL);
    SCRIPT(&h.s, OK_STEP);
    srv_start(&etcd);
    etcd.dyn = etcd_losing_the_lease;
    lease_lost = false;
    char url[48];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", etcd.port);
    const char *eps[] = {url};
    prov_pacer_free(h.pacer);
    h.pacer = NULL;
    cr_assert_eq(prov_pacer_open_etcd(eps, 1, "/fence-test", 1000, NULL, &h.pacer), 0);
    prov_client_opts o = base_opts(&h);
    h_client(&h, &o);
    prov_client_set_fence(h.c, fence_until_lost, NULL);
    outcome out = {0};
    cr_assert_eq(prov_call(h.c, PROV_SWAS, "DeleteCustomImage", "cn-hangzhou", NULL, raw_cb, &out),
                 0);
    run_until(&h, &out.fired);
    cr_expect(lease_lost, "the pacer took its slot in etcd");
    cr_expect(out.has_err);
    cr_expect_eq(out.err.sys, -EPERM, "sys %d", out.err.sys);
    cr_expect_eq(srv_count(&h.s), 0, "nothing was sent once the lease had lapsed");
    outcome_free(&out);
    h_fini(&h);
    srv_stop(&etcd);
}

/* A bounded action (prov_client_set_max_wait): a call that waited longer than the bound for its
 * budget fails with -ESTALE, unsent and without taking the slot, which the next call then gets
 * at once; with the bound cleared, calls wait as long as it takes. */
Test(client, a_call_that_waited_past_its_bound_is_not_sent, .timeout = 30)
{
    harness h;
    h_init(&h, true, NULL);
    h.rate_calls = 1;
    h.rate_window = 600;
    SCRIPT(&h.s, OK_STEP, OK_STEP, OK_STEP, OK_STEP);
    prov_client_opts o = base_opts(&h);
    h_client(&h, &o);
    cr_assert_eq(prov_client_set_max_wait(h.c, PROV_SWAS, "DeleteCustomImage", 200), 0);
    cr_assert_eq(prov_client_set_max_wait(NULL, PROV_SWAS, "DeleteCustomImage", 200), -EINVAL);
    outcome out[4] = {0};
    for (int i = 0; i < 2; i++)
        cr_assert_eq(
            prov_call(h.c, PROV_SWAS, "DeleteCustomImage", "cn-hangzhou", NULL, raw_cb, &out[i]),
            0);
    run_until(&h, &out[1].fired);
    cr_expect(out[0].fired && !out[0].has_err);
    cr_expect(out[1].has_err);
    cr_expect_eq(out[1].err.sys, -ESTALE, "sys %d", out[1].err.sys);
    cr_expect_eq(srv_count(&h.s), 1, "the stale call was sent");
    /* The slot the stale call did not take is there for the next call, at once. */
    uint64_t before = uv_now(&h.loop);
    cr_assert_eq(
        prov_call(h.c, PROV_SWAS, "DeleteCustomImage", "cn-hangzhou", NULL, raw_cb, &out[2]), 0);
    run_until(&h, &out[2].fired);
    cr_expect(!out[2].has_err);
    cr_expect_lt(uv_now(&h.loop) - before, 150, "the next call waited");
    /* Unbounded again: a call waits its 600 ms and goes. */
    cr_assert_eq(prov_client_set_max_wait(h.c, PROV_SWAS, "DeleteCustomImage", 0), 0);
    cr_assert_eq(
        prov_call(h.c, PROV_SWAS, "DeleteCustomImage", "cn-hangzhou", NULL, raw_cb, &out[3]), 0);
    run_until(&h, &out[3].fired);
    cr_expect(!out[3].has_err);
    cr_expect_eq(srv_count(&h.s), 3);
    for (int i = 0; i < 4; i++)
        outcome_free(&out[i]);
    h_fini(&h);
}
