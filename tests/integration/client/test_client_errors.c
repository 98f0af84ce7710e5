/* The cloud client end to end (see client_harness.h): hostile and failing answers: malformed,
 * truncated, slow, reset, throttled, 5xx, permanent errors, oversize bodies; and its transport's
 * discard_body option (prov_http.h), which the daemon's webhooks use. */
#include "client_harness.h"
#include "prov_http.h"

Test(client, malformed_json_retried_then_transient, .timeout = 30)
{
    static const h_case c = {
        H_SCRIPT({ACT_JSON, 200, "{\"TotalCount\":\"1\",\"CustomImages\":[", 0},
                 {ACT_JSON, 200, "[]", 0}, {ACT_JSON, 200, "<html>oops</html>", 0}),
        .max_retries = 2};
    harness h;
    outcome out = {0};
    h_start_raw_list(&h, &c, &out);
    expect_transient(&out);
    expect_failed_sys(&out, -EPROTO);
    cr_expect_null(out.body);
    cr_expect_eq(srv_count(&h.s), 3, "1 + max_retries attempts, got %zu", srv_count(&h.s));
    cr_assert_eq(h.n_ev, 3);
    cr_expect_gt(h.ev[0].retry_in, 0);
    cr_expect_gt(h.ev[1].retry_in, 0);
    cr_expect_eq(h.ev[2].retry_in, 0);
    h_finish(&h, &out);
}

/* Garbage first, then a good answer: the retry succeeds and the list is whole. */
Test(client, malformed_then_good, .timeout = 30)
{
    static const h_case c = {
        H_SCRIPT({ACT_JSON, 200, "{\"CustomImages\":[{\"ImageId\":", 0}, OK_STEP)};
    harness h;
    h_start(&h, &c);
    outcome out = {0};
    cr_assert_eq(prov_swas_list_images(h.c, "cn-hangzhou", NULL, list_cb, &out), 0);
    run_until(&h, &out.fired);
    expect_ok(&out);
    cr_assert_eq(out.list.n, 1);
    cr_expect_str_eq(out.list.v[0].image_id, "m-ok1");
    cr_expect_eq(srv_count(&h.s), 2);
    h_finish(&h, &out);
}

/* Well-formed JSON with the wrong types: the typed operation rejects it with -EPROTO and
 * hands over no list; no partial result leaks. */
Test(client, wrong_types_rejected_by_typed_ops, .timeout = 30)
{
    static const h_case c = {H_SCRIPT(
        {ACT_JSON, 200,
         "{\"TotalCount\":\"2\",\"CustomImages\":[{\"ImageId\":\"m-1\",\"Name\":\"a\"},"
         "{\"ImageId\":\"m-2\",\"Name\":\"b\",\"InShare\":\"maybe\"}]}",
         0},
        {ACT_JSON, 200, "{\"RequestId\":\"R\",\"ImageId\":12345}", 0},
        {ACT_JSON, 200, "{\"TotalCount\":1,\"Images\":{\"Image\":{\"ImageId\":\"m-1\"}}}", 0})};
    harness h;
    h_start(&h, &c);

    outcome out = {0};
    cr_assert_eq(prov_swas_list_images(h.c, "cn-hangzhou", NULL, list_cb, &out), 0);
    run_until(&h, &out.fired);
    expect_failed_sys(&out, -EPROTO);
    cr_expect_eq(out.list.n, 0);
    cr_expect_null(out.list.v);
    outcome_free(&out);

    prov_create_req req = {
        .region = "cn-hangzhou", .name = "web", .instance_id = "ace1", .client_token = "tok-1"};
    cr_assert_eq(prov_swas_create_image(h.c, &req, create_cb, &out), 0);
    run_until(&h, &out.fired);
    expect_failed_sys(&out, -EPROTO);
    outcome_free(&out);

    cr_assert_eq(prov_ecs_describe_images(h.c, "cn-hangzhou", NULL, 0, ecs_cb, &out), 0);
    run_until(&h, &out.fired);
    expect_failed_sys(&out, -EPROTO);
    cr_expect_eq(out.ecs.n, 0);
    outcome_free(&out);

    cr_expect_eq(srv_count(&h.s), 3, "a well-formed but mistyped answer is not retried");
    h_fini(&h);
}

/* Duplicate keys make an answer ambiguous (which CustomImages is it?): rejected like the
 * parsers reject them, not resolved by "last one wins". */
Test(client, duplicate_keys_rejected, .timeout = 30)
{
    static const h_case c = {
        H_SCRIPT({ACT_JSON, 200,
                  "{\"TotalCount\":\"1\",\"CustomImages\":[{\"ImageId\":\"m-1\",\"Name\":\"a\"}],"
                  "\"CustomImages\":[]}",
                  0}),
        .max_retries = 1};
    harness h;
    h_start(&h, &c);
    outcome out = {0};
    cr_assert_eq(prov_swas_list_images(h.c, "cn-hangzhou", NULL, list_cb, &out), 0);
    run_until(&h, &out.fired);
    cr_assert(out.has_err, "an answer with duplicate keys was accepted (%zu images)", out.list.n);
    cr_expect_eq(out.err.sys, -EPROTO);
    h_finish(&h, &out);
}

/* Content-Length larger than what comes before the close. */
Test(client, truncated_body_retried_then_transient, .timeout = 30)
{
    static const h_case c = {H_SCRIPT({ACT_TRUNCATE, 200, ok_list, 0}), .max_retries = 2};
    harness h;
    outcome out = {0};
    h_start_raw_list(&h, &c, &out);
    expect_transient(&out);
    expect_failed_sys(&out, -ECONNRESET);
    cr_expect_eq(out.err.http_status, 0);
    cr_expect_eq(srv_count(&h.s), 3);
    h_finish(&h, &out);
}

Test(client, truncated_then_good, .timeout = 30)
{
    static const h_case c = {H_SCRIPT({ACT_TRUNCATE, 200, ok_list, 0}, OK_STEP)};
    harness h;
    outcome out = {0};
    h_start_raw_list(&h, &c, &out);
    expect_ok(&out);
    cr_expect_eq(srv_count(&h.s), 2);
    cr_assert_eq(h.n_ev, 2);
    cr_expect_eq(h.ev[0].cls, PROV_ERR_TRANSIENT);
    cr_expect_eq(h.ev[1].cls, PROV_ERR_NONE);
    cr_expect_eq(h.ev[1].attempt, 2);
    h_finish(&h, &out);
}

/* No answer within timeout_ms: transient, retried, each attempt counted at the server. */
Test(client, slow_answer_times_out_and_retries, .timeout = 30)
{
    static const h_case c = {H_SCRIPT({ACT_HANG, 0, NULL, 0}), .timeout_ms = 300, .max_retries = 2};
    harness h;
    outcome out = {0};
    h_start_raw_list(&h, &c, &out);
    expect_transient(&out);
    expect_failed_sys(&out, -ETIMEDOUT);
    cr_expect_eq(srv_count(&h.s), 3, "requests at the server: %zu", srv_count(&h.s));
    cr_assert_eq(h.n_ev, 3);
    for (size_t i = 0; i < 3; i++) {
        cr_expect_eq(h.ev[i].attempt, i + 1);
        cr_expect_eq(h.ev[i].http, 0);
        cr_expect_eq(h.ev[i].cls, PROV_ERR_TRANSIENT);
    }
    h_finish(&h, &out);
}

Test(client, connection_reset_then_good, .timeout = 30)
{
    static const h_case c = {H_SCRIPT({ACT_RESET, 0, NULL, 0}, {ACT_RESET, 0, NULL, 0}, OK_STEP)};
    harness h;
    outcome out = {0};
    h_start_raw_list(&h, &c, &out);
    expect_ok(&out);
    cr_expect_eq(srv_count(&h.s), 3);
    cr_assert_eq(h.n_ev, 3);
    cr_expect_eq(h.ev[0].cls, PROV_ERR_TRANSIENT);
    cr_expect_gt(h.ev[0].retry_in, 0);
    cr_expect_eq(h.ev[2].cls, PROV_ERR_NONE);
    h_finish(&h, &out);
}

Test(client, connection_reset_exhausts_retries, .timeout = 30)
{
    static const h_case c = {H_SCRIPT({ACT_RESET, 0, NULL, 0}), .max_retries = 1};
    harness h;
    outcome out = {0};
    h_start_raw_list(&h, &c, &out);
    expect_transient(&out);
    expect_failed_sys(&out, -ECONNRESET);
    cr_expect_eq(srv_count(&h.s), 2);
    h_finish(&h, &out);
}

/* Throttled: the action cools down a whole window, then the same call goes again. */
Test(client, throttled_retried_after_cooldown, .timeout = 30)
{
    static const h_case c = {H_SCRIPT({ACT_JSON, 400, throttled_body, 0}, OK_STEP),
                             .rate_calls = 10,
                             .rate_window = 1000, /* 10/1s: the scaled SWAS limit */
                             .max_retries = 1};   /* throttling has its own budget */
    harness h;
    outcome out = {0};
    h_start_raw_list(&h, &c, &out);
    expect_ok(&out);
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
    cr_assert_eq(prov_pacer_budget(h.pacer, KEY, "swas", "ListCustomImages", 10, 1000,
                                   prov_pacer_now_ms(h.pacer), &left),
                 0);
    cr_expect_lt(left, 10, "budget left %u", left);
    h_finish(&h, &out);
}

/* Throttled every time: bounded by max_throttled, then reported as throttled. */
Test(client, throttled_gives_up_after_max_throttled, .timeout = 30)
{
    static const h_case c = {H_SCRIPT({ACT_JSON, 400, throttled_body, 0}), .rate_calls = 10,
                             .rate_window = 200, .max_throttled = 2};
    harness h;
    outcome out = {0};
    h_start_raw_list(&h, &c, &out);
    expect_failed(&out, PROV_ERR_THROTTLED);
    cr_expect_str_eq(out.err.code, "Throttling.User");
    cr_expect_str_eq(out.err.request_id, "R-thr");
    cr_expect_eq(srv_count(&h.s), 3);
    h_finish(&h, &out);
}

static const char internal_body[] =
    "{\"RequestId\":\"R-500\",\"Code\":\"InternalError\",\"Message\":\"The request processing "
    "has failed due to some unknown error.\"}";

Test(client, internal_error_retried_up_to_max, .timeout = 30)
{
    static const h_case c = {H_SCRIPT({ACT_JSON, 500, internal_body, 0}), .max_retries = 3};
    harness h;
    outcome out = {0};
    h_start_raw_list(&h, &c, &out);
    expect_transient(&out);
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
    h_finish(&h, &out);
}

Test(client, service_unavailable_then_good_v1, .timeout = 30)
{
    static const h_case c = {
        H_SCRIPT({ACT_JSON, 503, "{\"Code\":\"ServiceUnavailable\",\"RequestId\":\"R\"}", 0},
                 {ACT_JSON, 502, "<html>bad gateway</html>", 0}, OK_STEP),
        .signature = 1};
    harness h;
    outcome out = {0};
    h_start_raw_list(&h, &c, &out);
    expect_ok(&out);
    cr_assert_eq(srv_count(&h.s), 3);
    for (size_t i = 0; i < 3; i++)
        expect_v1_signed(&h.s, i, "POST", "ListCustomImages", "2020-06-01");
    cr_expect_str_neq(prov_kvs_get(&h.s.reqs[0].query, "SignatureNonce"),
                      prov_kvs_get(&h.s.reqs[1].query, "SignatureNonce"));
    h_finish(&h, &out);
}

Test(client, permanent_error_not_retried, .timeout = 30)
{
    static const h_case c = {H_SCRIPT({ACT_JSON, 400,
                                       "{\"RequestId\":\"R-400\",\"Code\":\"InvalidParameter\","
                                       "\"Message\":\"The specified parameter is invalid.\"}",
                                       0},
                                      OK_STEP)};
    harness h;
    outcome out = {0};
    h_start_raw_list(&h, &c, &out);
    expect_failed(&out, PROV_ERR_PERMANENT);
    cr_expect_str_eq(out.err.code, "InvalidParameter");
    cr_expect_str_eq(out.err.message, "The specified parameter is invalid.");
    cr_expect_str_eq(out.err.request_id, "R-400");
    cr_expect_eq(out.err.http_status, 400);
    cr_expect_eq(srv_count(&h.s), 1);
    cr_assert_eq(h.n_ev, 1);
    cr_expect_eq(h.ev[0].retry_in, 0);
    h_finish(&h, &out);
}

/* A 4xx without a JSON body is permanent too, with the HTTP status kept. */
Test(client, permanent_error_without_body, .timeout = 30)
{
    static const h_case c = {H_SCRIPT({ACT_JSON, 403, "Forbidden", 0})};
    harness h;
    outcome out = {0};
    h_start_raw_list(&h, &c, &out);
    expect_failed(&out, PROV_ERR_PERMANENT);
    cr_expect_eq(out.err.http_status, 403);
    cr_expect_null(out.err.code);
    cr_expect_eq(srv_count(&h.s), 1);
    h_finish(&h, &out);
}

Test(client, response_over_max_rejected, .timeout = 30)
{
    static const h_case c = {H_SCRIPT({ACT_BIG, 200, NULL, 1000}, {ACT_BIG, 200, NULL, 64 * 1024}),
                             .max_response = 1024};
    harness h;
    h_start(&h, &c);
    /* Under the cap: fine. */
    outcome out = {0};
    raw_list(&h, &out);
    cr_assert(!out.has_err, "a 1000-byte answer under a 1024-byte cap failed: %d", out.err.sys);
    cr_expect_str_eq(json_string_value(json_object_get(out.body, "RequestId")), "R-big");
    outcome_free(&out);
    /* Over it: -EFBIG, not retried (the next answer would be as big). */
    raw_list(&h, &out);
    expect_failed_sys(&out, -EFBIG);
    cr_expect_eq(out.err.cls, PROV_ERR_PERMANENT);
    cr_expect_eq(srv_count(&h.s), 2);
    h_finish(&h, &out);
}

/* What one prov_http request ended with. */
typedef struct http_out {
    bool fired;
    int err;
    long status;
    size_t body_len;
} http_out;

static void http_cb(const prov_http_response *res, void *ud)
{
    http_out *o = ud;
    o->fired = true;
    o->err = res->err;
    o->status = res->status;
    o->body_len = res->body_len;
}

/* The transport alone: an answer over max_response fails with -EFBIG, unless the client was
 * opened with discard_body (the webhooks' client), which reads and drops a body of any size and
 * keeps the status. */
Test(client, http_discard_body_ignores_the_size_cap, .timeout = 30)
{
    harness h;
    h_init(&h, true, NULL);
    SCRIPT(&h.s, {ACT_BIG, 200, NULL, 64 * 1024});
    prov_http_opts o = {.max_response = 1024, .discard_body = true};
    prov_http *kept = NULL, *dropped = NULL;
    cr_assert_eq(prov_http_new(&h.loop, &o, &dropped), 0);
    o.discard_body = false;
    cr_assert_eq(prov_http_new(&h.loop, &o, &kept), 0);
    http_out a = {0}, b = {0};
    cr_assert_eq(prov_http_request(dropped, "POST", h.endpoint, NULL, "{}", 2, http_cb, &a), 0);
    run_until(&h, &a.fired);
    cr_expect_eq(a.err, 0, "a discarded 64 KiB body failed: %d", a.err);
    cr_expect_eq(a.status, 200);
    cr_expect_eq(a.body_len, 0);
    cr_assert_eq(prov_http_request(kept, "POST", h.endpoint, NULL, "{}", 2, http_cb, &b), 0);
    run_until(&h, &b.fired);
    cr_expect_eq(b.err, -EFBIG, "err %d", b.err);
    cr_expect_eq(srv_count(&h.s), 2);
    prov_http_close(dropped);
    prov_http_close(kept);
    h_fini(&h);
}
