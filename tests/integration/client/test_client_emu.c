/* The cloud client end to end (see client_harness.h): typed operations against the real emulator
 * (suite emu). */
#include "client_harness.h"
#include "test_file.h"

/* ==== Suite emu: typed operations against the real emulator ==== */

typedef struct emu_env {
    emu_proc emu;
    char dir[64];
    char fixture[128];
} emu_env;

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
    test_file_write(e->fixture, buf);
    free(buf);
    const char *args[] = {"--fixture", e->fixture, "--rate-limit", "10/1s", "--create-delay",
                          "0",         NULL};
    int rc = emu_proc_start(&e->emu, args);
    cr_assert_eq(rc, 0, "emulator start: %s", strerror(-rc));
}

static void emu_env_stop(emu_env *e)
{
    cr_expect_eq(emu_proc_stop(&e->emu), 0);
    (void)test_file_remove_tree(e->dir);
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

/* Tag and account-share operations (issue 12 item 1) against the emulator: limits checked
 * before a call, ListTagResources over every NextToken page, the error classes. */
typedef struct tags_out {
    outcome o;
    prov_tag_resource_list rows;
    prov_str_list accounts;
} tags_out;

static void tag_rows_cb(prov_tag_resource_list *list, const prov_error *err, void *ud)
{
    tags_out *t = ud;
    keep_err(&t->o, err);
    if (list != NULL) {
        t->rows = *list;
        memset(list, 0, sizeof(*list));
    }
}

static void accounts_cb(prov_str_list *accounts, const prov_error *err, void *ud)
{
    tags_out *t = ud;
    keep_err(&t->o, err);
    if (accounts != NULL) {
        t->accounts = *accounts;
        memset(accounts, 0, sizeof(*accounts));
    }
}

static void tags_out_free(tags_out *t)
{
    outcome_free(&t->o);
    prov_tag_resource_list_free(&t->rows);
    prov_str_list_free(&t->accounts);
}

Test(emu, tags_and_account_shares_typed, .timeout = 60)
{
    emu_env e;
    emu_env_start(&e, 1, 60, 0);
    harness h;
    h_init(&h, false, e.emu.base_url);
    prov_client_opts o = base_opts(&h);
    h_client(&h, &o);
    char idbuf[60][16];
    const char *ids[60];
    for (size_t i = 0; i < 60; i++) {
        snprintf(idbuf[i], sizeof(idbuf[i]), "m-page%06zu", i);
        ids[i] = idbuf[i];
    }
    prov_tag env_prod[] = {{"env", "prod"}};
    tags_out t = {0};

    /* Limits are checked before any call. */
    cr_expect_eq(
        prov_swas_tag_resources(h.c, "cn-hangzhou", ids, 51, env_prod, 1, NULL, done_cb, &t.o),
        -EINVAL);
    cr_expect_eq(
        prov_swas_untag_resources(h.c, "cn-hangzhou", ids, 1, NULL, 0, NULL, done_cb, &t.o),
        -EINVAL);

    /* One TagResources for 50 images; every tag listed back over NextToken pages (50 rows). */
    cr_assert_eq(
        prov_swas_tag_resources(h.c, "cn-hangzhou", ids, 50, env_prod, 1, NULL, done_cb, &t.o), 0);
    emu_done(&h, &t.o, "tag 50");
    tags_out_free(&t);
    cr_assert_eq(prov_swas_list_tag_resources(h.c, "cn-hangzhou", ids, 50, tag_rows_cb, &t), 0);
    emu_done(&h, &t.o, "list tags");
    cr_expect_eq(t.rows.n, 100, "team and env on 50 images: %zu rows", t.rows.n);
    size_t prod = 0;
    for (size_t i = 0; i < t.rows.n; i++) {
        prod += strcmp(t.rows.v[i].key, "env") == 0 && strcmp(t.rows.v[i].value, "prod") == 0;
        cr_expect_str_eq(t.rows.v[i].resource_type, "customimage");
    }
    cr_expect_eq(prod, 50);
    tags_out_free(&t);
    cr_expect_geq(journal_count(&e, "ListTagResources", NULL), 2, "paged by NextToken");

    /* Untag, then the image holds only its team tag. */
    const char *env_key[] = {"env"};
    cr_assert_eq(
        prov_swas_untag_resources(h.c, "cn-hangzhou", ids, 2, env_key, 1, NULL, done_cb, &t.o), 0);
    emu_done(&h, &t.o, "untag");
    tags_out_free(&t);
    cr_assert_eq(prov_swas_list_tag_resources(h.c, "cn-hangzhou", ids, 1, tag_rows_cb, &t), 0);
    emu_done(&h, &t.o, "list one");
    cr_assert_eq(t.rows.n, 1);
    cr_expect_str_eq(t.rows.v[0].key, "team");
    tags_out_free(&t);

    /* A cloud key is refused for good; untagging an unknown image is done already. */
    prov_tag cloud[] = {{"acs:x", "1"}};
    cr_assert_eq(prov_swas_tag_resources(h.c, "cn-hangzhou", ids, 1, cloud, 1, NULL, done_cb, &t.o),
                 0);
    run_until(&h, &t.o.fired);
    cr_assert(t.o.has_err);
    cr_expect_str_eq(t.o.err.code, "InvalidParam.TagKey");
    cr_expect_eq(t.o.err.cls, PROV_ERR_PERMANENT);
    tags_out_free(&t);
    const char *gone[] = {"m-gone00000000"};
    cr_assert_eq(
        prov_swas_untag_resources(h.c, "cn-hangzhou", gone, 1, env_key, 1, NULL, done_cb, &t.o), 0);
    emu_done(&h, &t.o, "untag an unknown image");
    tags_out_free(&t);

    /* Account shares: add two, InShareUser turns true, remove one, list what is left. */
    const char *two[] = {"1111", "2222"};
    cr_assert_eq(prov_swas_share_accounts(h.c, "cn-hangzhou", ids[1], true, two, 2, "tok-acc-1",
                                          done_cb, &t.o),
                 0);
    emu_done(&h, &t.o, "add accounts");
    tags_out_free(&t);
    prov_list_filter f = {.image_ids = &ids[1], .n_image_ids = 1, .share = -1};
    emu_list(&h, &f, &t.o);
    cr_assert_eq(t.o.list.n, 1);
    cr_expect(t.o.list.v[0].in_share_user);
    tags_out_free(&t);
    cr_assert_eq(
        prov_swas_share_accounts(h.c, "cn-hangzhou", ids[1], false, two, 1, NULL, done_cb, &t.o),
        0);
    emu_done(&h, &t.o, "remove an account");
    tags_out_free(&t);
    cr_assert_eq(prov_swas_list_share_accounts(h.c, "cn-hangzhou", ids[1], accounts_cb, &t), 0);
    emu_done(&h, &t.o, "list accounts");
    cr_assert_eq(t.accounts.n, 1);
    cr_expect_str_eq(t.accounts.v[0], "2222");
    tags_out_free(&t);
    cr_expect_eq(
        prov_swas_share_accounts(h.c, "cn-hangzhou", ids[1], true, two, 11, NULL, done_cb, &t.o),
        -EINVAL);
    cr_assert_eq(prov_swas_share_accounts(h.c, "cn-hangzhou", "m-gone00000000", false, two, 1, NULL,
                                          done_cb, &t.o),
                 0);
    emu_done(&h, &t.o, "remove from an unknown image is done");
    tags_out_free(&t);
    json_t *adds = NULL;
    cr_expect_eq(journal_count(&e, "AddCustomImageShareAccount", &adds), 1);
    json_t *p0 = json_object_get(json_array_get(adds, 0), "params");
    cr_expect_str_eq(json_string_value(json_object_get(p0, "Account.2")), "2222");
    json_decref(adds);
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
