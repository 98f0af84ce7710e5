/* Unit tests of the emulator's world and fixture loader, linked directly (no HTTP): quota,
 * ClientToken idempotency, share/delete rules, list filters and paging, async status, list lag,
 * ECS delete rules, and fixture errors with their positions. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "emu_fixture.h"
#include "emu_world.h"
#include "emu_kvs.h"
#include "emu_limits.h"
#include "emu_sig.h"
#include "emu_util.h"

#define T0 1700000000000LL

static emu_world *demo(void)
{
    emu_diags d = {0};
    emu_world *w = NULL;
    int rc = emu_fixture_parse("<demo>", emu_demo_fixture, strlen(emu_demo_fixture), &w, &d);
    cr_assert_eq(rc, 0, "demo fixture: %s", d.n ? d.v[0] : "?");
    emu_diags_clear(&d);
    w->create_delay_ms = 1000;
    return w;
}

/* Runs one operation with "K=V&..." parameters; returns the result (caller clears it). */
static emu_result run(emu_world *w, enum emu_product p, const char *action, const char *query,
                      int64_t now)
{
    emu_kvs kv = {0};
    cr_assert_eq(emu_kvs_parse_urlencoded(&kv, query, strlen(query)), 0);
    emu_result r;
    cr_assert_eq(emu_world_call(w, p, action, &kv, now, &r), 0);
    emu_kvs_clear(&kv);
    return r;
}

static void expect_code(emu_world *w, enum emu_product p, const char *action, const char *query,
                        int status, const char *code)
{
    emu_result r = run(w, p, action, query, T0);
    cr_expect_eq(r.http_status, status, "%s %s: status %d", action, query, r.http_status);
    cr_expect(r.code && strcmp(r.code, code) == 0, "%s %s: code %s, want %s", action, query,
              r.code ? r.code : "(none)", code);
    emu_result_clear(&r);
}

static char *create(emu_world *w, const char *name, const char *extra, int64_t now)
{
    char q[512];
    snprintf(q, sizeof(q),
             "RegionId=cn-hangzhou&ImageName=%s&InstanceId=ace0706b2ac4454d984295a94213abcd&"
             "SystemSnapshotId=s-bp1sys00000001%s",
             name, extra);
    emu_result r = run(w, EMU_SWAS, "CreateCustomImage", q, now);
    cr_assert_eq(r.http_status, 200, "create %s: %s %s", name, r.code, r.message);
    char *id = strdup(json_string_value(json_object_get(r.body, "ImageId")));
    emu_result_clear(&r);
    return id;
}

static size_t list_count(emu_world *w, const char *query, int64_t now, json_t **ret_body)
{
    emu_result r = run(w, EMU_SWAS, "ListCustomImages", query, now);
    cr_assert_eq(r.http_status, 200, "list %s: %s", query, r.code);
    size_t n = json_array_size(json_object_get(r.body, "CustomImages"));
    if (ret_body) {
        *ret_body = json_incref(r.body);
    }
    emu_result_clear(&r);
    return n;
}

Test(emulator_world, demo_quota_is_three_per_server)
{
    emu_world *w = demo();
    cr_expect_eq(emu_region_quota(emu_world_region(w, "cn-hangzhou")), 6);
    cr_expect_eq(emu_region_quota(emu_world_region(w, "cn-shanghai")), 3);
    /* Two images exist: four creates fit, the fifth hits the quota. */
    for (int i = 0; i < 4; i++) {
        char name[16];
        snprintf(name, sizeof(name), "q-%d", i);
        free(create(w, name, "", T0));
    }
    expect_code(w, EMU_SWAS, "CreateCustomImage",
                "RegionId=cn-hangzhou&ImageName=q-4&InstanceId=ace0706b2ac4454d984295a94213abcd",
                400, "CustomImageQuotaLimit");
    emu_world_free(w);
}

Test(emulator_world, create_validation_codes)
{
    emu_world *w = demo();
    const char *base = "RegionId=cn-hangzhou&InstanceId=ace0706b2ac4454d984295a94213abcd";
    char q[512];
    expect_code(w, EMU_SWAS, "CreateCustomImage", base, 400, "MissingParameter");
    snprintf(q, sizeof(q), "%s&ImageName=-x", base);
    expect_code(w, EMU_SWAS, "CreateCustomImage", q, 400, "InvalidParam.IllegalImageName");
    snprintf(q, sizeof(q), "%s&ImageName=legacy-web", base);
    expect_code(w, EMU_SWAS, "CreateCustomImage", q, 400, "ImageNameAlreadyExist");
    snprintf(q, sizeof(q), "%s&ImageName=a1&SystemSnapshotId=s-bp1data0000001", base);
    expect_code(w, EMU_SWAS, "CreateCustomImage", q, 400,
                "InvalidParam.SystemSnapshotIdNotSupport");
    snprintf(q, sizeof(q), "%s&ImageName=a1&SystemSnapshotId=s-bp1sys00000003", base);
    expect_code(w, EMU_SWAS, "CreateCustomImage", q, 400, "InvalidParam.SystemSnapshotIdNotFound");
    snprintf(q, sizeof(q), "%s&ImageName=a1&DataSnapshotId=s-nope", base);
    expect_code(w, EMU_SWAS, "CreateCustomImage", q, 400, "InvalidParam.DataSnapshotIdNotFound");
    snprintf(q, sizeof(q), "%s&ImageName=a1&Tag.1.Key=acs:x&Tag.1.Value=v", base);
    expect_code(w, EMU_SWAS, "CreateCustomImage", q, 400, "InvalidParam.TagKey");
    snprintf(q, sizeof(q), "%s&ImageName=a1&Tag.21.Key=k", base);
    expect_code(w, EMU_SWAS, "CreateCustomImage", q, 400, "InvalidParam.TagCount");
    expect_code(w, EMU_SWAS, "CreateCustomImage",
                "RegionId=cn-hangzhou&ImageName=a1&InstanceId=nosuch", 404,
                "InvalidInstanceId.NotFound");
    emu_world_region(w, "cn-hangzhou")->servers[0].status[0] = 'X'; /* "Xunning" */
    snprintf(q, sizeof(q), "%s&ImageName=a1", base);
    expect_code(w, EMU_SWAS, "CreateCustomImage", q, 403, "IncorrectInstanceStatus");
    emu_world_free(w);
}

Test(emulator_world, client_token_idempotency)
{
    emu_world *w = demo();
    char *a = create(w, "tok-img", "&ClientToken=t-1", T0);
    char *b = create(w, "tok-img", "&ClientToken=t-1", T0 + 1000);
    cr_expect_str_eq(a, b, "same token and parameters answer the same ImageId");
    cr_expect_eq(emu_world_region(w, "cn-hangzhou")->n_images, 3, "no second image");
    expect_code(w, EMU_SWAS, "CreateCustomImage",
                "RegionId=cn-hangzhou&ImageName=other&InstanceId=ace0706b2ac4454d984295a94213abcd"
                "&ClientToken=t-1",
                400, "IdempotentParameterMismatch");
    /* After 24 hours the token is forgotten: a new create with it is a new request. */
    char *c = create(w, "tok-img2", "&ClientToken=t-1", T0 + 25LL * 3600 * 1000);
    cr_expect_str_neq(a, c);
    free(a);
    free(b);
    free(c);
    emu_world_free(w);
}

Test(emulator_world, image_ids_are_seeded_and_well_formed)
{
    emu_world *w1 = demo(), *w2 = demo();
    emu_world_seed(w1, 42);
    emu_world_seed(w2, 42);
    char *a = create(w1, "s-1", "", T0), *b = create(w2, "s-1", "", T0);
    cr_expect_str_eq(a, b);
    cr_expect_eq(strlen(a), 22);
    cr_expect_eq(strspn(a + 2, "abcdefghijklmnopqrstuvwxyz0123456789"), 20);
    free(a);
    free(b);
    emu_world_free(w1);
    emu_world_free(w2);
}

Test(emulator_world, async_status_and_list_lag)
{
    emu_world *w = demo();
    w->list_lag_ms = 500;
    char *id = create(w, "slow", "", T0);
    char q[128];
    snprintf(q, sizeof(q), "RegionId=cn-hangzhou&ImageIds=[\"%s\"]", id);
    cr_expect_eq(list_count(w, q, T0 + 100, NULL), 0, "not listed inside the lag");
    /* The lag is eventual consistency after a create: the world's existing images are listed. */
    cr_expect_eq(
        list_count(w, "RegionId=cn-hangzhou&ImageIds=[\"m-bp1legacyweb000001\"]", T0 + 100, NULL),
        1, "a fixture image hidden by the lag");
    json_t *body = NULL;
    cr_expect_eq(list_count(w, q, T0 + 600, &body), 1);
    cr_expect_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(body, "CustomImages"), 0), "Status")),
                     "4");
    json_decref(body);
    cr_expect_eq(list_count(w, q, T0 + 1000, &body), 1);
    cr_expect_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(body, "CustomImages"), 0), "Status")),
                     "1");
    json_decref(body);
    free(id);
    emu_world_free(w);
}

Test(emulator_world, share_and_delete_rules)
{
    emu_world *w = demo();
    char *id = create(w, "sh", "", T0);
    char q[160];
    snprintf(q, sizeof(q), "RegionId=cn-hangzhou&ImageId=%s&Operation=Share", id);
    expect_code(w, EMU_SWAS, "ModifyImageShareStatus", q, 403, "IncorrectImageStatus");
    emu_result r = run(w, EMU_SWAS, "ModifyImageShareStatus", q, T0 + 2000);
    cr_expect_eq(r.http_status, 200, "share once available: %s", r.code);
    emu_result_clear(&r);
    r = run(w, EMU_SWAS, "ModifyImageShareStatus", q, T0 + 2000);
    cr_expect_eq(r.http_status, 200, "sharing again is idempotent");
    emu_result_clear(&r);
    snprintf(q, sizeof(q), "RegionId=cn-hangzhou&ImageId=%s", id);
    expect_code(w, EMU_SWAS, "DeleteCustomImage", q, 400, "CustomImageInShare");
    snprintf(q, sizeof(q), "RegionId=cn-hangzhou&ImageId=%s&Operation=share", id);
    expect_code(w, EMU_SWAS, "ModifyImageShareStatus", q, 400, "InvalidParam.OperationIllegal");
    snprintf(q, sizeof(q), "RegionId=cn-hangzhou&ImageId=%s&Operation=UnShare", id);
    r = run(w, EMU_SWAS, "ModifyImageShareStatus", q, T0 + 2000);
    cr_expect_eq(r.http_status, 200);
    emu_result_clear(&r);
    snprintf(q, sizeof(q), "RegionId=cn-hangzhou&ImageId=%s&ClientToken=d-1", id);
    r = run(w, EMU_SWAS, "DeleteCustomImage", q, T0 + 2000);
    cr_expect_eq(r.http_status, 200);
    emu_result_clear(&r);
    r = run(w, EMU_SWAS, "DeleteCustomImage", q, T0 + 2000);
    cr_expect_eq(r.http_status, 200, "a retried delete with its token succeeds again");
    emu_result_clear(&r);
    snprintf(q, sizeof(q), "RegionId=cn-hangzhou&ImageId=%s", id);
    expect_code(w, EMU_SWAS, "DeleteCustomImage", q, 404, "InvalidImageId.NotFound");
    free(id);
    emu_world_free(w);
}

Test(emulator_world, list_filters_and_paging)
{
    emu_world *w = demo();
    json_t *body = NULL;
    cr_expect_eq(list_count(w, "RegionId=cn-hangzhou", T0, &body), 2);
    cr_expect_str_eq(json_string_value(json_object_get(body, "TotalCount")), "2");
    cr_expect_str_eq(json_string_value(json_object_get(body, "PageSize")), "10");
    cr_expect_str_eq(json_string_value(json_object_get(body, "PageNumber")), "1");
    json_decref(body);
    cr_expect_eq(list_count(w, "RegionId=cn-hangzhou&Share=true", T0, NULL), 1);
    cr_expect_eq(list_count(w, "RegionId=cn-hangzhou&Share=false", T0, NULL), 1);
    cr_expect_eq(list_count(w, "RegionId=cn-hangzhou&ImageNames=legacy-web,hand-made", T0, NULL), 2,
                 "comma-separated lists are accepted");
    cr_expect_eq(
        list_count(w, "RegionId=cn-hangzhou&ImageIds=[\"m-bp1handmade0000001\"]", T0, NULL), 1);
    cr_expect_eq(list_count(w, "RegionId=cn-hangzhou&Tag.1.Key=imgrecon/owner", T0, NULL), 1);
    cr_expect_eq(
        list_count(w, "RegionId=cn-hangzhou&Tag.1.Key=imgrecon/owner&Tag.1.Value=other", T0, NULL),
        0);
    cr_expect_eq(
        list_count(w, "RegionId=cn-hangzhou&InstanceId=bce0706b2ac4454d984295a94213bcde", T0, NULL),
        1);
    cr_expect_eq(list_count(w, "RegionId=cn-hangzhou&ResourceGroupId=rg-other", T0, NULL), 0);
    cr_expect_eq(list_count(w, "RegionId=cn-hangzhou&PageSize=1&PageNumber=2", T0, &body), 1);
    cr_expect_str_eq(json_string_value(json_object_get(body, "TotalCount")), "2");
    json_decref(body);
    cr_expect_eq(list_count(w, "RegionId=cn-hangzhou&PageSize=1&PageNumber=3", T0, NULL), 0);
    cr_expect_eq(list_count(w, "RegionId=cn-beijing", T0, NULL), 0, "unknown region: empty");
    expect_code(w, EMU_SWAS, "ListCustomImages", "RegionId=cn-hangzhou&PageSize=101", 400,
                "InvalidParam.PageSize");
    expect_code(w, EMU_SWAS, "ListCustomImages", "RegionId=cn-hangzhou&ImageIds=[\"a\"", 400,
                "InvalidParam.ImageIds");
    expect_code(w, EMU_SWAS, "ListCustomImages", "PageSize=1", 400, "MissingParameter");
    emu_world_free(w);
}

Test(emulator_world, ecs_describe_and_delete)
{
    emu_world *w = demo();
    emu_result r =
        run(w, EMU_ECS, "DescribeImages", "RegionId=cn-hangzhou&ImageOwnerAlias=self", T0);
    cr_expect_eq(json_integer_value(json_object_get(r.body, "TotalCount")), 2);
    emu_result_clear(&r);
    r = run(w, EMU_ECS, "DescribeImages", "RegionId=cn-hangzhou&Status=Creating", T0);
    cr_expect_eq(json_integer_value(json_object_get(r.body, "TotalCount")), 0);
    emu_result_clear(&r);
    const char *used = "RegionId=cn-hangzhou&ImageId=m-bp67acfmxazb4p5678";
    expect_code(w, EMU_ECS, "DeleteImage", used, 403, "ImageUsingByInstance");
    expect_code(w, EMU_ECS, "DeleteImage",
                "RegionId=cn-hangzhou&ImageId=m-bp67acfmxazb4p1234&DryRun=true", 400,
                "DryRunOperation");
    expect_code(w, EMU_ECS, "DeleteImage", "RegionId=cn-hangzhou&ImageId=m-none", 404,
                "InvalidImageId.NotFound");
    r = run(w, EMU_ECS, "DeleteImage",
            "RegionId=cn-hangzhou&ImageId=m-bp67acfmxazb4p5678&Force=true", T0);
    cr_expect_eq(r.http_status, 200);
    emu_result_clear(&r);
    emu_ecs_image *e = &emu_world_region(w, "cn-hangzhou")->ecs[0];
    const char *busy[][2] = {{"copying", "OperationDenied.ImageCopying"},
                             {"importing", "ImageIsImporting"},
                             {"exporting", "ImageIsExporting"}};
    for (size_t i = 0; i < 3; i++) {
        free(e->busy);
        e->busy = strdup(busy[i][0]);
        expect_code(w, EMU_ECS, "DeleteImage", "RegionId=cn-hangzhou&ImageId=m-bp67acfmxazb4p1234",
                    403, busy[i][1]);
    }
    free(e->busy);
    e->busy = strdup("none");
    e->shared = true;
    expect_code(w, EMU_ECS, "DeleteImage", "RegionId=cn-hangzhou&ImageId=m-bp67acfmxazb4p1234", 403,
                "ImageUseShared");
    e->is_public = true;
    expect_code(w, EMU_ECS, "DeleteImage", "RegionId=cn-hangzhou&ImageId=m-bp67acfmxazb4p1234", 403,
                "ImageIsPublic");
    emu_world_free(w);
}

Test(emulator_world, state_json_has_no_secret)
{
    emu_world *w = demo();
    json_t *s = emu_world_to_json(w, T0);
    char *text = json_dumps(s, 0);
    cr_expect(strstr(text, "emulator-demo-secret") == NULL);
    cr_expect(strstr(text, "\"in_share\": true") != NULL, "%s", text);
    free(text);
    json_decref(s);
    emu_world_free(w);
}

/* ---- fixture errors: every one with its position ---- */

/* Arrays, not pointers: Criterion may run each case in a re-executed worker, where the
 * parent's pointers mean nothing. */
typedef struct fixture_case {
    char yaml[400];
    char want[100]; /* "line:col: message" substring of the first diagnostic */
} fixture_case;

ParameterizedTestParameters(emulator_fixture, errors)
{
    static fixture_case cases[] = {
        {"accounts: []\nregions: []\nbogus: 1\n", "3:1: unknown key \"bogus\""},
        {"accounts:\n  - access_key_id: a\n    access_key_secret: b\n    user_id: x1\n",
         "4:14: user_id: expected a number"},
        {"accounts:\n  - access_key_id: a\n    user_id: 1\n",
         "2:5: missing required key \"access_key_secret\""},
        {"accounts: []\n", "1:11: at least one account is required"},
        {"accounts:\n  - {access_key_id: a, access_key_secret: b, user_id: 1}\nregions:\n"
         "  - region: r\n    servers:\n      - instance_id: i\n        snapshots: []\n",
         "7:9: unknown key \"snapshots\""},
        {"accounts:\n  - {access_key_id: a, access_key_secret: b, user_id: 1}\nregions:\n"
         "  - region: r\n    custom_images:\n      - {image_id: m-1, name: n, status: \"7\"}\n",
         "6:42: status: expected \"0\" to \"4\""},
        {"accounts:\n  - {access_key_id: a, access_key_secret: b, user_id: 1}\nregions:\n"
         "  - region: r\n    ecs_images:\n      - {image_id: m-1, busy: sleeping}\n",
         "6:31: busy: expected none, copying, importing or exporting"},
        {"accounts:\n  - {access_key_id: a, access_key_secret: b, user_id: 1}\nregions:\n"
         "  - region: r\n    custom_images:\n      - {image_id: m-1, name: n}\n"
         "      - {image_id: m-1, name: o}\n",
         "7:9: duplicate image_id \"m-1\""},
        {"accounts: [\n", "YAML syntax error"},
        {"", "1:1: empty fixture"},
    };
    return cr_make_param_array(fixture_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(fixture_case *c, emulator_fixture, errors)
{
    emu_diags d = {0};
    emu_world *w = NULL;
    int rc = emu_fixture_parse("fx.yaml", c->yaml, strlen(c->yaml), &w, &d);
    cr_assert_eq(rc, -EINVAL);
    cr_assert_null(w);
    cr_assert_gt(d.n, 0);
    char line[600];
    snprintf(line, sizeof(line), "%s", d.v[0]);
    cr_expect(strstr(line, c->want) != NULL, "got \"%s\", want \"%s\"", line, c->want);
    emu_diags_clear(&d);
}

Test(emulator_fixture, every_error_in_one_pass)
{
    const char *yaml = "accounts:\n  - {access_key_id: a, access_key_secret: b, user_id: 1, x: 1}\n"
                       "regions:\n  - region: r\n    y: 2\n";
    emu_diags d = {0};
    emu_world *w = NULL;
    cr_assert_eq(emu_fixture_parse("fx.yaml", yaml, strlen(yaml), &w, &d), -EINVAL);
    cr_expect_eq(d.n, 2, "both unknown keys reported");
    emu_diags_clear(&d);
}

/* ---- More SWAS operations: tags, batch delete, regions, account shares ---- */

#define LEGACY "m-bp1legacyweb000001"
#define HANDMADE "m-bp1handmade0000001"

static void expect_ok(emu_world *w, const char *action, const char *query)
{
    emu_result r = run(w, EMU_SWAS, action, query, T0);
    cr_assert_eq(r.http_status, 200, "%s %s: %s %s", action, query, r.code ? r.code : "",
                 r.message ? r.message : "");
    emu_result_clear(&r);
}

/* The value of tag key on image id as ListCustomImages shows it; NULL when absent. The result
 * is copied into buf. */
static const char *listed_tag(emu_world *w, const char *id, const char *key, char *buf, size_t size)
{
    char q[160];
    json_t *body = NULL;
    snprintf(q, sizeof(q), "RegionId=cn-hangzhou&ImageIds=[\"%s\"]", id);
    cr_assert_eq(list_count(w, q, T0, &body), 1);
    json_t *tags =
        json_object_get(json_array_get(json_object_get(body, "CustomImages"), 0), "Tags");
    const char *found = NULL;
    for (size_t i = 0; i < json_array_size(tags); i++) {
        json_t *t = json_array_get(tags, i);
        if (strcmp(json_string_value(json_object_get(t, "Key")), key) == 0) {
            snprintf(buf, size, "%s", json_string_value(json_object_get(t, "Value")));
            found = buf;
        }
    }
    json_decref(body);
    return found;
}

static bool listed_share_user(emu_world *w, const char *id)
{
    char q[160];
    json_t *body = NULL;
    snprintf(q, sizeof(q), "RegionId=cn-hangzhou&ImageIds=[\"%s\"]", id);
    cr_assert_eq(list_count(w, q, T0, &body), 1);
    json_t *v =
        json_object_get(json_array_get(json_object_get(body, "CustomImages"), 0), "InShareUser");
    cr_assert(json_is_boolean(v));
    bool b = json_is_true(v);
    json_decref(body);
    return b;
}

Test(emulator_more, tags_land_in_place_and_show_at_once)
{
    emu_world *w = demo();
    char buf[80];
    expect_ok(w, "TagResources",
              "RegionId=cn-hangzhou&ResourceType=customimage&ResourceId.1=" LEGACY
              "&ResourceId.2=" HANDMADE "&Tag.1.Key=team&Tag.1.Value=web&Tag.2.Key=imgrecon/owner"
              "&Tag.2.Value=new");
    cr_expect_str_eq(listed_tag(w, HANDMADE, "team", buf, sizeof(buf)), "web");
    cr_expect_str_eq(listed_tag(w, LEGACY, "imgrecon/owner", buf, sizeof(buf)), "new",
                     "an existing key's value is overwritten");
    expect_ok(w, "UntagResources",
              "RegionId=cn-hangzhou&ResourceType=customimage&ResourceId.1=" LEGACY
              "&TagKey.1=team&TagKey.2=absent");
    cr_expect_null(listed_tag(w, LEGACY, "team", buf, sizeof(buf)));
    cr_expect_str_eq(listed_tag(w, LEGACY, "imgrecon/owner", buf, sizeof(buf)), "new");
    expect_ok(w, "UntagResources",
              "RegionId=cn-hangzhou&ResourceType=customimage&ResourceId.1=" HANDMADE "&All=true");
    cr_expect_null(listed_tag(w, HANDMADE, "team", buf, sizeof(buf)));
    cr_expect_null(listed_tag(w, HANDMADE, "imgrecon/owner", buf, sizeof(buf)));
    emu_world_free(w);
}

Test(emulator_more, tag_errors)
{
    emu_world *w = demo();
    const char *t = "TagResources";
    char q[2048], buf[80];
    expect_code(w, EMU_SWAS, t, "RegionId=cn-hangzhou&ResourceId.1=" LEGACY "&Tag.1.Key=k", 400,
                "MissingParameter");
    expect_code(w, EMU_SWAS, t,
                "RegionId=cn-hangzhou&ResourceType=image&ResourceId.1=" LEGACY "&Tag.1.Key=k", 400,
                "InvalidResourceType.NotFound");
    expect_code(w, EMU_SWAS, t,
                "RegionId=cn-hangzhou&ResourceType=customimage&ResourceId.51=" LEGACY
                "&Tag.1.Key=k",
                400, "NumberExceed.ResourceIds");
    expect_code(w, EMU_SWAS, t,
                "RegionId=cn-hangzhou&ResourceType=customimage&ResourceId.1=m-nosuch&Tag.1.Key=k",
                404, "InvalidResourceId.NotFound");
    expect_code(w, EMU_SWAS, t,
                "RegionId=cn-hangzhou&ResourceType=customimage&ResourceId.1=" LEGACY
                "&Tag.1.Key=acs:x",
                400, "InvalidParam.TagKey");
    expect_code(w, EMU_SWAS, t,
                "RegionId=cn-hangzhou&ResourceType=customimage&ResourceId.1=" LEGACY
                "&Tag.1.Key=aliyun-x",
                400, "InvalidParam.TagKey");
    expect_code(w, EMU_SWAS, t,
                "RegionId=cn-hangzhou&ResourceType=customimage&ResourceId.1=" LEGACY
                "&Tag.1.Key=k&Tag.1.Value=see%20http://x",
                400, "InvalidParam.TagValue");
    expect_code(w, EMU_SWAS, t,
                "RegionId=cn-hangzhou&ResourceType=customimage&ResourceId.1=" LEGACY, 400,
                "MissingParameter");
    /* legacy-web has one tag: 20 new keys make 21, refused for both resources at once. */
    int n = snprintf(q, sizeof(q),
                     "RegionId=cn-hangzhou&ResourceType=customimage&ResourceId.1=" HANDMADE
                     "&ResourceId.2=" LEGACY);
    for (int i = 1; i <= 20; i++) {
        n += snprintf(q + n, sizeof(q) - (size_t)n, "&Tag.%d.Key=k%d&Tag.%d.Value=v", i, i, i);
    }
    expect_code(w, EMU_SWAS, t, q, 400, "OperationDenied.QuotaExceed");
    cr_expect_null(listed_tag(w, HANDMADE, "k1", buf, sizeof(buf)), "all or nothing");
    expect_code(w, EMU_SWAS, "UntagResources",
                "RegionId=cn-hangzhou&ResourceType=customimage&ResourceId.1=" LEGACY, 400,
                "MissingParameter");
    expect_code(w, EMU_SWAS, "UntagResources",
                "RegionId=cn-hangzhou&ResourceType=customimage&ResourceId.1=" LEGACY
                "&TagKey.1=acs:system",
                400, "InvalidParam.TagKey");
    emu_world_free(w);
}

/* Tags Tag.1..20 (k1..k20) onto id. */
static void tag20(emu_world *w, const char *id)
{
    char q[2048];
    int n =
        snprintf(q, sizeof(q), "RegionId=cn-hangzhou&ResourceType=customimage&ResourceId.1=%s", id);
    for (int i = 1; i <= 20; i++) {
        n += snprintf(q + n, sizeof(q) - (size_t)n, "&Tag.%d.Key=k%d&Tag.%d.Value=v%d", i, i, i, i);
    }
    expect_ok(w, "TagResources", q);
}

Test(emulator_more, list_tag_resources_pages_with_next_token)
{
    emu_world *w = demo();
    char *a = create(w, "tags-a", "", T0), *b = create(w, "tags-b", "", T0);
    tag20(w, HANDMADE);
    tag20(w, a);
    tag20(w, b);
    /* 60 tags of 3 images plus legacy-web's 1: 50, then 11. */
    char q[256], token[64] = "";
    size_t total = 0;
    int pages = 0;
    do {
        snprintf(q, sizeof(q), "RegionId=cn-hangzhou&ResourceType=customimage&NextToken=%s", token);
        emu_result r = run(w, EMU_SWAS, "ListTagResources", q, T0);
        cr_assert_eq(r.http_status, 200, "%s", r.code);
        json_t *items = json_object_get(json_object_get(r.body, "TagResources"), "TagResource");
        cr_assert(json_is_array(items));
        json_t *first = json_array_get(items, 0);
        cr_expect_str_eq(json_string_value(json_object_get(first, "ResourceType")), "customimage");
        total += json_array_size(items);
        snprintf(token, sizeof(token), "%s",
                 json_string_value(json_object_get(r.body, "NextToken")));
        cr_expect(pages > 0 || json_array_size(items) == 50, "a full first page");
        emu_result_clear(&r);
        pages++;
    } while (*token && pages < 10);
    cr_expect_eq(pages, 2);
    cr_expect_eq(total, 61);
    /* Filters: one resource; a tag every image but legacy-web has. */
    snprintf(q, sizeof(q), "RegionId=cn-hangzhou&ResourceType=customimage&ResourceId.1=%s", a);
    emu_result r = run(w, EMU_SWAS, "ListTagResources", q, T0);
    cr_expect_eq(
        json_array_size(json_object_get(json_object_get(r.body, "TagResources"), "TagResource")),
        20);
    emu_result_clear(&r);
    r = run(w, EMU_SWAS, "ListTagResources",
            "RegionId=cn-hangzhou&ResourceType=customimage&Tag.1.Key=imgrecon/owner", T0);
    cr_expect_eq(
        json_array_size(json_object_get(json_object_get(r.body, "TagResources"), "TagResource")),
        1);
    emu_result_clear(&r);
    expect_code(w, EMU_SWAS, "ListTagResources",
                "RegionId=cn-hangzhou&ResourceType=customimage&NextToken=garbage", 400,
                "InvalidParam.NextToken");
    expect_code(w, EMU_SWAS, "ListTagResources", "RegionId=cn-hangzhou&ResourceType=vm", 400,
                "InvalidResourceType.NotFound");
    free(a);
    free(b);
    emu_world_free(w);
}

Test(emulator_more, delete_custom_images_batch)
{
    emu_world *w = demo();
    char *a = create(w, "del-a", "", T0), *b = create(w, "del-b", "", T0);
    emu_world_tick(w, T0 + 5000);
    char q[512];
    expect_code(w, EMU_SWAS, "DeleteCustomImages",
                "RegionId=cn-hangzhou&ImageIds=[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\","
                "\"9\",\"10\",\"11\",\"12\",\"13\",\"14\",\"15\",\"16\"]",
                400, "InvalidParam.ImageIds");
    expect_code(w, EMU_SWAS, "DeleteCustomImages", "RegionId=cn-hangzhou", 400, "MissingParameter");
    snprintf(q, sizeof(q), "RegionId=cn-hangzhou&ImageIds=[\"%s\",\"m-nosuch\"]", a);
    expect_code(w, EMU_SWAS, "DeleteCustomImages", q, 404, "InvalidImageId.NotFound");
    snprintf(q, sizeof(q), "RegionId=cn-hangzhou&ImageIds=[\"%s\",\"" LEGACY "\"]", a);
    expect_code(w, EMU_SWAS, "DeleteCustomImages", q, 400, "CustomImageInShare");
    cr_expect_eq(list_count(w, "RegionId=cn-hangzhou&PageSize=100", T0 + 5000, NULL), 4,
                 "a refused batch deletes nothing");
    snprintf(q, sizeof(q), "RegionId=cn-hangzhou&ImageIds=[\"%s\",\"%s\",\"%s\"]", a, b, a);
    emu_result r = run(w, EMU_SWAS, "DeleteCustomImages", q, T0 + 5000);
    cr_expect_eq(r.http_status, 200, "%s", r.code);
    emu_result_clear(&r);
    cr_expect_eq(list_count(w, "RegionId=cn-hangzhou&PageSize=100", T0 + 5000, NULL), 2);
    free(a);
    free(b);
    emu_world_free(w);
}

Test(emulator_more, account_shares)
{
    emu_world *w = demo();
    const char *add = "AddCustomImageShareAccount";
    cr_expect_not(listed_share_user(w, HANDMADE));
    expect_ok(w, add, "RegionId=cn-hangzhou&ImageId=" HANDMADE "&Account.1=1111&Account.2=2222");
    expect_ok(w, add, "RegionId=cn-hangzhou&ImageId=" HANDMADE "&Account.1=2222");
    cr_expect(listed_share_user(w, HANDMADE));
    emu_result r = run(w, EMU_SWAS, "ListCustomImageShareAccounts",
                       "RegionId=cn-hangzhou&ImageId=" HANDMADE "&PageSize=1&PageNumber=2", T0);
    cr_assert_eq(r.http_status, 200);
    cr_expect_eq(json_integer_value(json_object_get(r.body, "TotalCount")), 2);
    json_t *u = json_array_get(json_object_get(r.body, "ImageShareUsers"), 0);
    cr_expect_eq(json_integer_value(json_object_get(u, "UserId")), 2222);
    cr_expect_eq(strlen(json_string_value(json_object_get(u, "SharedTime"))), 21);
    emu_result_clear(&r);
    /* Shared to accounts: both deletes are refused with the share error. */
    expect_code(w, EMU_SWAS, "DeleteCustomImage", "RegionId=cn-hangzhou&ImageId=" HANDMADE, 400,
                "CustomImageInShare");
    expect_code(w, EMU_SWAS, "DeleteCustomImages",
                "RegionId=cn-hangzhou&ImageIds=[\"" HANDMADE "\"]", 400, "CustomImageInShare");
    expect_ok(w, "RemoveCustomImageShareAccount",
              "RegionId=cn-hangzhou&ImageId=" HANDMADE
              "&Account.1=1111&Account.2=2222&Account.3=3");
    cr_expect_not(listed_share_user(w, HANDMADE));
    expect_ok(w, "DeleteCustomImage", "RegionId=cn-hangzhou&ImageId=" HANDMADE);
    /* Errors. */
    expect_code(w, EMU_SWAS, add, "RegionId=cn-hangzhou&ImageId=" LEGACY "&Account.1=abc", 400,
                "InvalidParam.Account");
    expect_code(w, EMU_SWAS, add,
                "RegionId=cn-hangzhou&ImageId=" LEGACY "&Account.1=1234567890123456", 400,
                "InvalidParam.Account");
    expect_code(w, EMU_SWAS, add, "RegionId=cn-hangzhou&ImageId=" LEGACY "&Account.11=1", 400,
                "InvalidParam.AccountCount");
    expect_code(w, EMU_SWAS, add, "RegionId=cn-hangzhou&ImageId=" LEGACY, 400, "MissingParameter");
    expect_code(w, EMU_SWAS, add, "RegionId=cn-hangzhou&ImageId=m-nosuch&Account.1=1", 404,
                "InvalidImageId.NotFound");
    expect_code(w, EMU_SWAS, "ListCustomImageShareAccounts",
                "RegionId=cn-hangzhou&ImageId=" LEGACY "&PageSize=51", 400,
                "InvalidParam.PageSize");
    emu_world_free(w);
}

Test(emulator_more, list_regions)
{
    emu_world *w = demo();
    emu_result r = run(w, EMU_SWAS, "ListRegions", "AcceptLanguage=en-US", T0);
    cr_assert_eq(r.http_status, 200);
    json_t *regions = json_object_get(r.body, "Regions");
    cr_assert_eq(json_array_size(regions), 2);
    json_t *first = json_array_get(regions, 0);
    cr_expect_str_eq(json_string_value(json_object_get(first, "RegionId")), "cn-hangzhou");
    cr_expect_str_eq(json_string_value(json_object_get(first, "LocalName")), "China (Hangzhou)");
    cr_expect_str_eq(json_string_value(json_object_get(first, "RegionEndpoint")),
                     "swas.cn-hangzhou.aliyuncs.com");
    emu_result_clear(&r);
    expect_code(w, EMU_SWAS, "ListRegions", "AcceptLanguage=fr-FR", 400,
                "InvalidParam.AcceptLanguage");
    emu_world_free(w);
}

Test(emulator_fixture, share_accounts)
{
    const char *yaml = "accounts:\n  - {access_key_id: a, access_key_secret: b, user_id: \"1\"}\n"
                       "regions:\n  - region: cn-hangzhou\n    custom_images:\n"
                       "      - {image_id: m-1, name: one, share_accounts: [\"2222\"]}\n";
    emu_diags d = {0};
    emu_world *w = NULL;
    cr_assert_eq(emu_fixture_parse("fx.yaml", yaml, strlen(yaml), &w, &d), 0, "%s",
                 d.n ? d.v[0] : "");
    emu_image *img = emu_region_image(emu_world_region(w, "cn-hangzhou"), "m-1");
    cr_assert_not_null(img);
    cr_expect_eq(img->n_shares, 1);
    cr_expect(listed_share_user(w, "m-1"));
    emu_world_free(w);
    const char *bad = "accounts:\n  - {access_key_id: a, access_key_secret: b, user_id: \"1\"}\n"
                      "regions:\n  - region: r\n    custom_images:\n"
                      "      - {image_id: m-1, name: one, share_accounts: [x1]}\n";
    cr_expect_eq(emu_fixture_parse("fx.yaml", bad, strlen(bad), &w, &d), -EINVAL);
    cr_expect(d.n > 0 && strstr(d.v[0], "not an account id"), "%s", d.n ? d.v[0] : "");
    emu_diags_clear(&d);
}

/* ---- The emulator's own parsers (it shares none with the product) ---- */

Test(emulator_parsers, durations_and_rates)
{
    int64_t ms = 0;
    unsigned calls = 0;
    cr_expect(emu_parse_duration("500ms", &ms) == 0 && ms == 500);
    cr_expect(emu_parse_duration("6s", &ms) == 0 && ms == 6000);
    cr_expect(emu_parse_duration("5m", &ms) == 0 && ms == 300000);
    cr_expect(emu_parse_duration("1h", &ms) == 0 && ms == 3600000);
    const char *bad[] = {"", "0s", "-1s", "1", "1d", "s", "1.5s", "01s", "1s ", NULL};
    for (size_t i = 0; bad[i]; i++) {
        cr_expect_eq(emu_parse_duration(bad[i], &ms), -EINVAL, "\"%s\"", bad[i]);
    }
    cr_expect(emu_parse_rate("10/60s", &calls, &ms) == 0 && calls == 10 && ms == 60000);
    cr_expect(emu_parse_rate("1000000/1s", &calls, &ms) == 0 && calls == 1000000);
    const char *bad_rates[] = {"10", "/1s", "0/1s", "10/", "10/0s", "1000001/1s", "x/1s", NULL};
    for (size_t i = 0; bad_rates[i]; i++) {
        cr_expect_eq(emu_parse_rate(bad_rates[i], &calls, &ms), -EINVAL, "\"%s\"", bad_rates[i]);
    }
}

Test(emulator_parsers, utc_timestamps)
{
    int64_t s = 0;
    cr_expect(emu_parse_utc("2016-02-23T12:46:24Z", &s) == 0 && s == 1456231584);
    const char *bad[] = {"2016-02-23 12:46:24Z",  "2016-02-23T12:46:24",
                         "2016-13-23T12:46:24Z",  "2016-02-23T24:00:00Z",
                         "2016-2-23T12:46:24Z",   "+016-02-23T12:46:24Z",
                         "2016-02-23T12:46:24Z0", NULL};
    for (size_t i = 0; bad[i]; i++) {
        cr_expect_eq(emu_parse_utc(bad[i], &s), -EINVAL, "\"%s\"", bad[i]);
    }
}

Test(emulator_parsers, urlencoded)
{
    emu_kvs kv = {0};
    cr_assert_eq(emu_kvs_parse_urlencoded(&kv, "a=1&&b=%20x+y&c&%41=", 20), 0);
    cr_assert_eq(kv.n, 4);
    cr_expect_str_eq(emu_kvs_get(&kv, "b"), " x y");
    cr_expect_str_eq(emu_kvs_get(&kv, "c"), "");
    cr_expect_str_eq(emu_kvs_get(&kv, "A"), "");
    cr_expect_null(emu_kvs_get(&kv, "B"));
    emu_kvs_clear(&kv);
    const char *bad[] = {"a=%", "a=%4", "a=%G1", "a=%00", NULL};
    for (size_t i = 0; bad[i]; i++) {
        cr_expect_eq(emu_kvs_parse_urlencoded(&kv, bad[i], strlen(bad[i])), -EINVAL, "%s", bad[i]);
        emu_kvs_clear(&kv);
    }
    char *enc = NULL;
    cr_assert_eq(emu_pct_encode("a b*~/é", strlen("a b*~/é"), &enc), 0);
    cr_expect_str_eq(enc, "a%20b%2A~%2F%C3%A9");
    free(enc);
}

/* ---- scripted faults (POST /_emulator/faults) ---- */

typedef struct fault_case {
    char json[200];
    char why[80]; /* "" when the fault is accepted, else a substring of the reason */
} fault_case;

ParameterizedTestParameters(emulator_faults, parse)
{
    static fault_case cases[] = {
        {"{\"kind\":\"answer\",\"body\":{\"ImageId\":\"m-x\"}}", ""},
        {"{\"kind\":\"answer\",\"skip\":2,\"count\":3,\"body\":{}}", ""},
        {"{\"kind\":\"InternalError\",\"skip\":0}", ""},
        {"{\"kind\":\"answer\"}", "answer needs a body"},
        {"{\"kind\":\"answer\",\"body\":[1]}", "answer needs a body"},
        {"{\"kind\":\"drop\",\"body\":{}}", "only answer takes one"},
        {"{\"kind\":\"drop\",\"body\":\"x\"}", "only answer takes one"},
        {"{\"kind\":\"answer\",\"skip\":-1,\"body\":{}}", "skip must be"},
        {"{\"kind\":\"drop\",\"skip\":\"1\"}", "skip must be"},
        {"{\"kind\":\"drop\",\"bodies\":{}}", "unknown key"},
        {"{\"kind\":\"respond\"}", "kind must be"},
    };
    return cr_make_param_array(fault_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(fault_case *c, emulator_faults, parse)
{
    emu_limits l;
    emu_limits_init(&l, 10, 1000, 0, 1);
    json_t *spec = json_loads(c->json, 0, NULL);
    cr_assert_not_null(spec, "%s", c->json);
    const char *why = NULL;
    int rc = emu_limits_add_fault(&l, spec, &why);
    if (c->why[0] == '\0') {
        cr_expect_eq(rc, 0, "%s: %s", c->json, why ? why : "");
        cr_expect_eq(l.n_faults, 1);
    } else {
        cr_expect_eq(rc, -EINVAL, "%s", c->json);
        cr_expect(why != NULL && strstr(why, c->why) != NULL, "%s: got \"%s\"", c->json,
                  why ? why : "(none)");
        cr_expect_eq(l.n_faults, 0);
    }
    json_decref(spec);
    emu_limits_free(&l);
}

/* skip lets the first matching calls through (other actions do not count), then the scripted
 * body answers count calls, each with its own copy. */
Test(emulator_faults, answer_after_skip)
{
    emu_limits l;
    emu_limits_init(&l, 10, 1000, 0, 1);
    json_t *spec = json_loads("{\"action\":\"ListCustomImages\",\"kind\":\"answer\",\"skip\":1,"
                              "\"count\":2,\"body\":{\"TotalCount\":7}}",
                              0, NULL);
    const char *why = NULL;
    cr_assert_eq(emu_limits_add_fault(&l, spec, &why), 0);
    json_decref(spec);
    static const struct {
        const char *action;
        enum emu_fault_kind want;
    } calls[] = {{"CreateCustomImage", EMU_FAULT_NONE},
                 {"ListCustomImages", EMU_FAULT_NONE},
                 {"ListCustomImages", EMU_FAULT_ANSWER},
                 {"ListCustomImages", EMU_FAULT_ANSWER},
                 {"ListCustomImages", EMU_FAULT_NONE}};
    for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
        int64_t delay = -1;
        json_t *body = NULL;
        cr_expect_eq(emu_limits_next_fault(&l, calls[i].action, &delay, &body), calls[i].want,
                     "call %zu", i);
        cr_expect_eq(body != NULL, calls[i].want == EMU_FAULT_ANSWER, "call %zu", i);
        if (body != NULL)
            cr_expect_eq(json_integer_value(json_object_get(body, "TotalCount")), 7);
        json_decref(body);
    }
    cr_expect_eq(l.n_faults, 0);
    emu_limits_free(&l);
}
