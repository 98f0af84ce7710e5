/* The cloud client end to end (see client_harness.h): request shapes and signatures (V3 POST, V1
 * GET and POST, ECS). */
#include "client_harness.h"

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
                  "\"Images\":{\"Image\":[{\"ImageId\":\"m-e1\",\"ImageName\":\"a\","
                  "\"ImageOwnerAlias\":\"self\"},{\"ImageId\":\"m-e2\",\"IsSelfShared\":"
                  "\"true\",\"ImageOwnerAlias\":\"self\"}]}}",
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
