/* The cloud client end to end (see client_harness.h): typed operations and listing every page. */
#include "client_harness.h"

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
 * with a message that says so, for SWAS and ECS alike (provider/README.md "Listings are believed
 * only whole"). */
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
