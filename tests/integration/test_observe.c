/* Observe integrity (provider/README.md "Listings are believed only whole"): the real imgrecon
 * binary runs `plan` and `apply` against the scripted loopback server (tests/support/test_srv.h),
 * which answers ListCustomImages and ECS DescribeImages with hostile listings: short pages,
 * missing, negative, non-numeric and lying TotalCount, images of another region, ids listed twice,
 * pages that never end. Each must fail the cycle with a message naming the check and without a
 * single mutating call. A server that answers a smaller PageSize than asked is paged correctly (the
 * control that shows the listings here are otherwise taken). Also against the scripted server: the
 * ImageIds polls awaiting a creation, `regions: all` (ListRegions and its day's cache) and a
 * malformed regions.json. Suite "regions", against the real emulator: a region whose manifest file
 * is removed is pruned only when allow_empty names it, and apply and `run --once` remember the
 * regions they touch (reconcile/README.md "Regions observed"). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply_support.h"
#include "test_srv.h"

#define REGION "cn-shanghai"
#define OWNER "team-a"
#define INSTANCE "cce0706b2ac4454d984295a94213cdef"
#define SNAPSHOT "s-uf6sys00000001"

/* What the server answers; each Criterion test runs in its own process, so one global. */
typedef enum scenario {
    SC_GOOD_SMALL_PAGES, /* 120 images, PageSize capped at 50, "web" on page 3 */
    SC_SHORT_PAGE,       /* a page of 50 while TotalCount says 120 */
    SC_NO_TOTAL,
    SC_NEGATIVE_TOTAL,
    SC_TEXT_TOTAL,
    SC_LYING_TOTAL,   /* TotalCount 2, three images */
    SC_WRONG_REGION,  /* an owned image whose RegionId is cn-hangzhou */
    SC_DUPLICATE_ID,  /* one id twice, TotalCount counting both */
    SC_ENDLESS,       /* every page full of new ids, whatever TotalCount says */
    SC_ECS_NO_TOTAL,  /* SWAS fine; DescribeImages without TotalCount */
    SC_ECS_WRONG_REG, /* SWAS fine; DescribeImages for another region */
    SC_ECS_DUPLICATE, /* SWAS fine; DescribeImages lists an id twice */
    SC_ALL_REGIONS,   /* ListRegions names three regions; every listing empty */
    SC_NO_REGIONS,    /* ListRegions answers an empty list */
    SC_POLL_OK,       /* empty region; the created image polls back available */
    SC_POLL_WRONG,    /* empty region; the ImageIds poll answers it with RegionId cn-hangzhou */
} scenario;

static scenario sc;

static const char *req_action(const req_rec *r)
{
    const char *a = prov_kvs_get(&r->headers, "x-acs-action");
    return a ? a : prov_kvs_get(&r->query, "Action");
}

static unsigned qnum(const req_rec *r, const char *key)
{
    const char *v = prov_kvs_get(&r->query, key);
    return v ? (unsigned)strtoul(v, NULL, 10) : 0;
}

/* One owned image: index 110 is the declared "web" (same instance and snapshot as declared). */
static void put_image(FILE *m, bool first, unsigned i, const char *region)
{
    char name[32];
    if (i == 110)
        snprintf(name, sizeof(name), "web");
    else
        snprintf(name, sizeof(name), "old-%u", i);
    fprintf(m,
            "%s{\"ImageId\":\"m-obs%04u\",\"Name\":\"%s\",\"Status\":\"1\",\"InShare\":false,"
            "\"RegionId\":\"%s\",\"InstanceId\":\"" INSTANCE "\",\"SystemSnapshotId\":\"" SNAPSHOT
            "\",\"Tags\":{\"Tag\":[{\"Key\":\"imgrecon/owner\",\"Value\":\"" OWNER "\"}]}}",
            first ? "" : ",", i, name, region);
}

static char *swas_answer(const req_rec *r)
{
    if ((sc == SC_POLL_OK || sc == SC_POLL_WRONG) && prov_kvs_get(&r->query, "ImageIds")) {
        char *buf = NULL;
        if (asprintf(&buf,
                     "{\"TotalCount\":1,\"PageNumber\":1,\"PageSize\":100,\"CustomImages\":[{"
                     "\"ImageId\":\"m-new0001\",\"Name\":\"web\",\"Status\":\"1\",\"RegionId\":"
                     "\"%s\",\"InstanceId\":\"" INSTANCE "\",\"SystemSnapshotId\":\"" SNAPSHOT
                     "\",\"Tags\":[{\"Key\":\"imgrecon/owner\",\"Value\":\"" OWNER "\"}]}]}",
                     sc == SC_POLL_OK ? REGION : "cn-hangzhou") < 0)
            buf = NULL;
        return buf;
    }
    if (sc == SC_ALL_REGIONS || sc == SC_NO_REGIONS || sc == SC_POLL_OK || sc == SC_POLL_WRONG)
        return strdup("{\"TotalCount\":0,\"PageNumber\":1,\"PageSize\":100,\"CustomImages\":[]}");
    unsigned page = qnum(r, "PageNumber"), asked = qnum(r, "PageSize");
    unsigned size = asked, total = 120, n_images = 120;
    const char *total_text = NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    switch (sc) {
    case SC_GOOD_SMALL_PAGES:
    case SC_ECS_NO_TOTAL:
    case SC_ECS_WRONG_REG:
    case SC_ECS_DUPLICATE:
        size = asked > 50 ? 50 : asked;
        break;
    case SC_SHORT_PAGE:
        n_images = page * 50 > 120 ? 120 : page * 50; /* only 50 a page, whatever is asked */
        break;
    case SC_NO_TOTAL:
        total_text = "";
        break;
    case SC_NEGATIVE_TOTAL:
        total_text = "\"TotalCount\":\"-1\",";
        break;
    case SC_TEXT_TOTAL:
        total_text = "\"TotalCount\":\"many\",";
        break;
    case SC_LYING_TOTAL:
    case SC_WRONG_REGION:
    case SC_DUPLICATE_ID:
        total = sc == SC_LYING_TOTAL ? 2 : 3;
        n_images = 3;
        break;
    case SC_ENDLESS:
        total = 250;
        n_images = 100000;
        break;
    case SC_ALL_REGIONS:
    case SC_NO_REGIONS:
    case SC_POLL_OK:
    case SC_POLL_WRONG:
        break; /* answered above */
    }
    if (total_text != NULL)
        fputs("{", m);
    else
        fprintf(m, "{\"TotalCount\":%u,", total);
    fprintf(m, "%s\"PageNumber\":%u,\"PageSize\":%u,\"CustomImages\":[",
            total_text ? total_text : "", page, size);
    unsigned from = (page - 1) * size, k = 0;
    if (sc == SC_SHORT_PAGE)
        from = (page - 1) * 50, size = 50;
    for (unsigned i = from; i < n_images && i < from + size; i++, k++) {
        unsigned id = sc == SC_DUPLICATE_ID && i == 2 ? 1 : i;
        if (sc == SC_LYING_TOTAL || sc == SC_WRONG_REGION || sc == SC_DUPLICATE_ID)
            id = i == 0 ? 110 : id; /* the declared image, so the plan would otherwise act */
        put_image(m, k == 0, id, sc == SC_WRONG_REGION && i == 2 ? "cn-hangzhou" : REGION);
    }
    fputs("]}", m);
    fclose(m);
    return buf;
}

static char *ecs_answer(const req_rec *r)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    const char *img = "{\"ImageId\":\"m-ecs0001\",\"ImageName\":\"legacy\",\"Status\":"
                      "\"Available\",\"ImageOwnerAlias\":\"self\"}";
    (void)r;
    if (sc == SC_ECS_NO_TOTAL)
        fprintf(m, "{\"RegionId\":\"" REGION "\",\"Images\":{\"Image\":[%s]}}", img);
    else if (sc == SC_ECS_WRONG_REG)
        fprintf(m,
                "{\"RegionId\":\"cn-hangzhou\",\"TotalCount\":1,\"PageNumber\":1,\"PageSize\":"
                "100,\"Images\":{\"Image\":[%s]}}",
                img);
    else
        fprintf(m,
                "{\"RegionId\":\"" REGION "\",\"TotalCount\":2,\"PageNumber\":1,\"PageSize\":100,"
                "\"Images\":{\"Image\":[%s,%s]}}",
                img, img);
    fclose(m);
    return buf;
}

static char *answer_fn(const req_rec *r, int *status)
{
    const char *a = req_action(r);
    *status = 200;
    if (a != NULL && strcmp(a, "ListCustomImages") == 0)
        return swas_answer(r);
    if (a != NULL && strcmp(a, "DescribeImages") == 0)
        return ecs_answer(r);
    if (a != NULL && strcmp(a, "CreateCustomImage") == 0 &&
        (sc == SC_POLL_OK || sc == SC_POLL_WRONG))
        return strdup("{\"RequestId\":\"R-c\",\"ImageId\":\"m-new0001\"}");
    if (a != NULL && strcmp(a, "ListRegions") == 0)
        return strdup(sc == SC_NO_REGIONS
                          ? "{\"Regions\":[]}"
                          : "{\"Regions\":[{\"RegionId\":\"cn-shanghai\"},{\"RegionId\":"
                            "\"cn-beijing\"},{\"RegionId\":\"cn-hangzhou\"}]}");
    /* Anything else is a mutating call the tests count; answer it as the API would refuse. */
    *status = 400;
    return strdup("{\"Code\":\"Forbidden.Test\",\"Message\":\"not expected\",\"RequestId\":\"R\"}");
}

typedef struct fixture {
    env e;
    srv s;
} fixture;

static void setup(fixture *f, scenario which, bool ecs, bool prune)
{
    sc = which;
    env_init(&f->e);
    srv_start(&f->s);
    f->s.dyn = answer_fn;
    snprintf(f->e.emu.base_url, sizeof(f->e.emu.base_url), "http://127.0.0.1:%u", f->s.port);
    /* The account id is given, so no STS GetCallerIdentity (a form POST this scripted server
     * does not read) is sent to learn the pacer's budget key before the first call. */
    char cfg[256];
    /* account_id given: the account is not asked of STS, so the server sees only listings. */
    snprintf(cfg, sizeof(cfg),
             "owner: " OWNER "\nprune: %s\nmax_deletes: 200\naccount_id: '1234567890'\n",
             prune ? "true" : "false");
    write_file(f->e.config, cfg);
    char man[1024];
    snprintf(man, sizeof(man),
             "region: " REGION "\ncustom_images:\n  - name: web\n    instance_id: " INSTANCE
             "\n    system_snapshot_id: " SNAPSHOT "\n%s",
             ecs ? "ecs_images:\n  - image_id: m-ecs0001\n    ensure: absent\n" : "");
    write_file(f->e.manifest, man);
}

static void teardown(fixture *f)
{
    srv_stop(&f->s);
    env_fini(&f->e);
}

/* Requests of the server that were not listings. */
static size_t mutating_calls(srv *s)
{
    size_t n = 0;
    for (size_t i = 0; i < srv_count(s) && i < MAX_REQS; i++) {
        const char *a = req_action(&s->reqs[i]);
        if (a == NULL || (strcmp(a, "ListCustomImages") != 0 && strcmp(a, "DescribeImages") != 0 &&
                          strcmp(a, "ListRegions") != 0))
            n++;
    }
    return n;
}

/* Requests of one action (and, when region is not NULL, for that RegionId). */
static size_t calls_of(srv *s, const char *action, const char *region)
{
    size_t n = 0;
    for (size_t i = 0; i < srv_count(s) && i < MAX_REQS; i++) {
        const char *a = req_action(&s->reqs[i]);
        const char *rg = prov_kvs_get(&s->reqs[i].query, "RegionId");
        if (a != NULL && strcmp(a, action) == 0 &&
            (region == NULL || (rg != NULL && strcmp(rg, region) == 0)))
            n++;
    }
    return n;
}

/* plan and apply both fail with the message and send nothing but listings. */
static void expect_rejected(scenario which, bool ecs, const char *message, size_t max_requests)
{
    fixture f;
    setup(&f, which, ecs, true);
    run_result r = RUN(&f.e, "plan", "-f", f.e.manifest);
    cr_expect_eq(r.status, 1, "plan exit %d:\n%s", r.status, r.out);
    cr_expect(strstr(r.out, message) != NULL, "plan does not say \"%s\":\n%s", message, r.out);
    cr_expect(strstr(r.out, "Protocol error") == NULL, "a noisy errno suffix:\n%s", r.out);
    run_result_free(&r);
    size_t after_plan = srv_count(&f.s);
    cr_expect_leq(after_plan, max_requests, "plan made %zu requests", after_plan);
    r = RUN(&f.e, "apply", "-f", f.e.manifest, "--auto-approve");
    cr_expect_eq(r.status, 1, "apply exit %d:\n%s", r.status, r.out);
    cr_expect(strstr(r.out, message) != NULL, "apply does not say \"%s\":\n%s", message, r.out);
    run_result_free(&r);
    cr_expect_eq(mutating_calls(&f.s), 0, "a false listing led to a mutating call");
    teardown(&f);
}

Test(observe, short_page_is_not_the_whole_region, .timeout = 120)
{
    expect_rejected(SC_SHORT_PAGE, false,
                    "ListCustomImages in cn-shanghai rejected: short listing: 50 of TotalCount 120",
                    2);
}

Test(observe, missing_total_count, .timeout = 120)
{
    expect_rejected(SC_NO_TOTAL, false, "rejected: page 1 has no TotalCount", 2);
}

Test(observe, negative_total_count, .timeout = 120)
{
    expect_rejected(SC_NEGATIVE_TOTAL, false, "rejected: page 1: TotalCount is negative", 2);
}

Test(observe, non_numeric_total_count, .timeout = 120)
{
    expect_rejected(SC_TEXT_TOTAL, false, "rejected: page 1: TotalCount is not a number", 2);
}

Test(observe, lying_total_count, .timeout = 120)
{
    expect_rejected(SC_LYING_TOTAL, false, "3 images after page 1, more than TotalCount 2", 2);
}

Test(observe, image_of_another_region, .timeout = 120)
{
    expect_rejected(SC_WRONG_REGION, false,
                    "image m-obs0002 has RegionId cn-hangzhou, not the region asked", 2);
}

Test(observe, duplicate_image_id, .timeout = 120)
{
    expect_rejected(SC_DUPLICATE_ID, false, "image m-obs0001 is listed twice", 2);
}

/* 250 said, full pages forever: at most TotalCount / PageSize + 1 = 3 pages per run. */
Test(observe, pages_that_never_end, .timeout = 120)
{
    expect_rejected(SC_ENDLESS, false, "300 images after page 3, more than TotalCount 250", 6);
}

Test(observe, ecs_missing_total_count, .timeout = 120)
{
    expect_rejected(SC_ECS_NO_TOTAL, true,
                    "DescribeImages in cn-shanghai rejected: page 1 has no TotalCount", 10);
}

Test(observe, ecs_answer_for_another_region, .timeout = 120)
{
    expect_rejected(SC_ECS_WRONG_REG, true, "the answer has RegionId cn-hangzhou", 10);
}

Test(observe, ecs_duplicate_id, .timeout = 120)
{
    expect_rejected(SC_ECS_DUPLICATE, true, "image m-ecs0001 is listed twice", 10);
}

/* The control: the server answers PageSize 50 to a request for 100; paging follows it (pages 2
 * and 3 asked at 50), the declared image on page 3 is found, and the plan has no change. */
Test(observe, smaller_page_size_is_followed, .timeout = 120)
{
    fixture f;
    setup(&f, SC_GOOD_SMALL_PAGES, false, false);
    run_result r = RUN(&f.e, "plan", "-f", f.e.manifest, "--detailed-exitcode");
    cr_expect_eq(r.status, 0, "plan exit %d:\n%s", r.status, r.out);
    run_result_free(&r);
    cr_assert_eq(srv_count(&f.s), 3);
    for (size_t i = 0; i < 3; i++) {
        char want[4];
        snprintf(want, sizeof(want), "%zu", i + 1);
        cr_expect_str_eq(prov_kvs_get(&f.s.reqs[i].query, "PageNumber"), want);
        cr_expect_str_eq(prov_kvs_get(&f.s.reqs[i].query, "PageSize"), i == 0 ? "100" : "50");
    }
    cr_expect_eq(mutating_calls(&f.s), 0);
    teardown(&f);
}

/* ==== Remembered regions, against the real emulator ==== */

#define SRV_HZ "ace0706b2ac4454d984295a94213ab00"
#define SRV_SH "bce0706b2ac4454d984295a94213ab00"

/* Two regions with one server each, no image yet. */
static void write_two_region_fixture(env *e)
{
    write_file(e->fixture,
               "accounts:\n  - access_key_id: " KEY_ID "\n    access_key_secret: " KEY_SECRET
               "\n    user_id: 1234567890123456\n"
               "regions:\n"
               "  - region: cn-hangzhou\n    servers:\n"
               "      - instance_id: " SRV_HZ "\n        name: web-0\n"
               "        status: Running\n        system_snapshots: [s-sys-00]\n"
               "  - region: cn-shanghai\n    servers:\n"
               "      - instance_id: " SRV_SH "\n        name: web-1\n"
               "        status: Running\n        system_snapshots: [s-sys-10]\n");
}

/* The emulator's images of a region (a new reference). */
static json_t *region_images(env *e, const char *region)
{
    json_t *st = emu_proc_state(&e->emu);
    cr_assert_not_null(st);
    json_t *regions = json_object_get(st, "regions"), *imgs = NULL;
    for (size_t i = 0; i < json_array_size(regions); i++)
        if (strcmp(jstr(json_array_get(regions, i), "region"), region) == 0)
            imgs = json_object_get(json_array_get(regions, i), "custom_images");
    imgs = imgs ? json_incref(imgs) : json_array();
    json_decref(st);
    return imgs;
}

static void set_config(env *e, const char *allow_empty)
{
    char cfg[256];
    snprintf(cfg, sizeof(cfg), "owner: " OWNER "\nprune: true\nmetrics_listen: null\n%s%s\n",
             allow_empty ? "allow_empty: " : "", allow_empty ? allow_empty : "");
    write_file(e->config, cfg);
}

/* A region whose manifest file is removed is still observed (regions.json remembers it): its
 * owned images are pruned only when allow_empty names it; otherwise the guard refuses and says
 * so. plan never writes regions.json; apply does. */
Test(regions, removed_region_file_is_pruned_only_with_allow_empty, .timeout = 300)
{
    env e;
    env_init(&e);
    write_two_region_fixture(&e);
    start_emu(&e, "300ms", NULL);
    char mdir[160], hz[200], sh[200], remembered[200];
    snprintf(mdir, sizeof(mdir), "%s/manifests", e.dir);
    cr_assert_eq(mkdir(mdir, 0700), 0);
    snprintf(hz, sizeof(hz), "%s/hangzhou.yaml", mdir);
    snprintf(sh, sizeof(sh), "%s/shanghai.yaml", mdir);
    snprintf(remembered, sizeof(remembered), "%s/regions.json", e.state);
    write_file(hz, "region: cn-hangzhou\ncustom_images:\n  - name: web-a\n    instance_id: " SRV_HZ
                   "\n    system_snapshot_id: s-sys-00\n");
    write_file(sh, "region: cn-shanghai\ncustom_images:\n  - name: web-s\n    instance_id: " SRV_SH
                   "\n    system_snapshot_id: s-sys-10\n");
    set_config(&e, NULL);

    run_result r = RUN(&e, "plan", "-f", mdir);
    cr_expect_eq(r.status, 0, "%s", r.out);
    run_result_free(&r);
    cr_expect_neq(access(remembered, F_OK), 0, "plan wrote regions.json");
    r = RUN(&e, "apply", "-f", mdir, "--auto-approve");
    cr_assert_eq(r.status, 0, "%s", r.out);
    run_result_free(&r);
    char *text = read_file(remembered);
    cr_expect(strstr(text, "cn-shanghai") != NULL && strstr(text, "cn-hangzhou") != NULL,
              "regions.json: %s", text);
    free(text);
    json_t *imgs = region_images(&e, "cn-shanghai");
    cr_assert_eq(json_array_size(imgs), 1);
    json_decref(imgs);

    /* The Shanghai file goes; without allow_empty for it the guard refuses, in plan and apply. */
    cr_assert_eq(unlink(sh), 0);
    const char *refusals[] = {NULL, "[cn-hangzhou]", "false"};
    for (size_t i = 0; i < 3; i++) {
        set_config(&e, refusals[i]);
        json_t *before = journal_lines(&e);
        size_t from = json_array_size(before);
        json_decref(before);
        r = RUN(&e, "plan", "-f", mdir);
        cr_expect(strstr(r.out, "cn-shanghai: no custom image is declared in this region and "
                                "allow_empty does not name it") != NULL,
                  "plan (allow_empty %s) does not name the guard:\n%s", refusals[i], r.out);
        run_result_free(&r);
        r = RUN(&e, "apply", "-f", mdir, "--auto-approve");
        cr_expect_eq(r.status, 1, "apply (allow_empty %s) exit %d:\n%s", refusals[i], r.status,
                     r.out);
        cr_expect(strstr(r.out, "prune refused: cn-shanghai: no custom image is declared in this "
                                "region and allow_empty does not name it") != NULL,
                  "apply:\n%s", r.out);
        run_result_free(&r);
        json_t *j = journal_lines(&e);
        cr_expect_eq(count_calls(j, from, "DeleteCustomImage", "*"), 0);
        json_decref(j);
        imgs = region_images(&e, "cn-shanghai");
        cr_expect_eq(json_array_size(imgs), 1, "deleted without allow_empty %s", refusals[i]);
        json_decref(imgs);
    }

    /* The flag replaces the config's list: naming another region still refuses. */
    set_config(&e, "[cn-shanghai]");
    r = RUN(&e, "apply", "-f", mdir, "--auto-approve", "--allow-empty", "cn-hangzhou,cn-beijing");
    cr_expect(strstr(r.out, "allow_empty does not name it") != NULL, "apply --allow-empty:\n%s",
              r.out);
    run_result_free(&r);
    imgs = region_images(&e, "cn-shanghai");
    cr_expect_eq(json_array_size(imgs), 1, "deleted although --allow-empty does not name it");
    json_decref(imgs);
    r = RUN(&e, "plan", "-f", mdir, "--allow-empty", "cn-shang hai");
    cr_expect_eq(r.status, 1, "%s", r.out);
    cr_expect(strstr(r.out, "--allow-empty 'cn-shang hai': expected true, false or region ids") !=
                  NULL,
              "%s", r.out);
    run_result_free(&r);

    /* allow_empty naming the region: its owned image is pruned; Hangzhou keeps its own. */
    set_config(&e, "[cn-shanghai]");
    r = RUN(&e, "apply", "-f", mdir, "--auto-approve");
    cr_expect_eq(r.status, 0, "%s", r.out);
    run_result_free(&r);
    imgs = region_images(&e, "cn-shanghai");
    cr_expect_eq(json_array_size(imgs), 0, "the removed region's image is still there");
    json_decref(imgs);
    imgs = region_images(&e, "cn-hangzhou");
    cr_expect_eq(json_array_size(imgs), 1);
    json_decref(imgs);
    assert_journal_rules(&e);
    env_fini(&e);
}

/* `regions: all`: one ListRegions (then the day's cache), every region it names observed. */
Test(observe, regions_all_lists_every_region_once_a_day, .timeout = 120)
{
    fixture f;
    setup(&f, SC_ALL_REGIONS, false, false);
    write_file(f.e.config, "owner: " OWNER "\nregions: all\naccount_id: '1234567890'\n");
    run_result r = RUN(&f.e, "plan", "-f", f.e.manifest);
    cr_expect_eq(r.status, 0, "plan exit %d:\n%s", r.status, r.out);
    run_result_free(&r);
    cr_expect_eq(calls_of(&f.s, "ListRegions", NULL), 1);
    const char *want[] = {"cn-beijing", "cn-hangzhou", "cn-shanghai"};
    for (size_t i = 0; i < 3; i++)
        cr_expect_eq(calls_of(&f.s, "ListCustomImages", want[i]), 1, "%s", want[i]);
    char cache[200];
    snprintf(cache, sizeof(cache), "%s/list-regions.json", f.e.state);
    char *text = read_file(cache);
    cr_expect(strstr(text, "cn-beijing") != NULL, "cache: %s", text);
    free(text);
    r = RUN(&f.e, "plan", "-f", f.e.manifest);
    cr_expect_eq(r.status, 0, "second plan exit %d:\n%s", r.status, r.out);
    run_result_free(&r);
    cr_expect_eq(calls_of(&f.s, "ListRegions", NULL), 1, "the day's cache was not used");
    cr_expect_eq(calls_of(&f.s, "ListCustomImages", "cn-beijing"), 2);
    cr_expect_eq(mutating_calls(&f.s), 0);
    teardown(&f);
}

/* An empty ListRegions answer is not "no region": the cycle fails and says why. */
Test(observe, regions_all_with_empty_answer_fails, .timeout = 120)
{
    fixture f;
    setup(&f, SC_NO_REGIONS, false, false);
    write_file(f.e.config, "owner: " OWNER "\nregions: all\naccount_id: '1234567890'\n");
    run_result r = RUN(&f.e, "plan", "-f", f.e.manifest);
    cr_expect_eq(r.status, 1, "plan exit %d:\n%s", r.status, r.out);
    cr_expect(strstr(r.out, "regions: all: ListRegions failed: ListRegions answer rejected") !=
                  NULL,
              "%s", r.out);
    run_result_free(&r);
    cr_expect_eq(calls_of(&f.s, "ListCustomImages", NULL), 0);
    teardown(&f);
}

/* The ImageIds polls that await a creation check the region too: an answer carrying the new
 * image with another RegionId never completes the step (the control: the right region does). */
static run_result apply_and_poll(fixture *f, scenario which)
{
    setup(f, which, false, false);
    return RUN(&f->e, "apply", "-f", f->e.manifest, "--auto-approve");
}

Test(observe, poll_accepts_the_created_image_in_its_region, .timeout = 120)
{
    fixture f;
    run_result r = apply_and_poll(&f, SC_POLL_OK);
    cr_expect_eq(r.status, 0, "apply exit %d:\n%s", r.status, r.out);
    run_result_free(&r);
    cr_expect_eq(calls_of(&f.s, "CreateCustomImage", REGION), 1);
    teardown(&f);
}

Test(observe, poll_rejects_the_created_image_from_another_region, .timeout = 120)
{
    fixture f;
    run_result r = apply_and_poll(&f, SC_POLL_WRONG);
    cr_expect_eq(r.status, 1, "apply exit %d:\n%s", r.status, r.out);
    cr_expect(strstr(r.out, "image m-new0001 has RegionId cn-hangzhou, not the region asked") !=
                  NULL,
              "%s", r.out);
    run_result_free(&r);
    cr_expect_eq(calls_of(&f.s, "CreateCustomImage", REGION), 1);
    cr_expect_geq(calls_of(&f.s, "ListCustomImages", REGION), 2, "the creation was never polled");
    teardown(&f);
}

/* The daemon remembers too: `run --once` records the regions of the images it created. */
Test(regions, run_remembers_created_regions, .timeout = 300)
{
    env e;
    env_init(&e);
    write_two_region_fixture(&e);
    start_emu(&e, "300ms", NULL);
    char sh[200], remembered[200];
    snprintf(sh, sizeof(sh), "%s/shanghai.yaml", e.dir);
    snprintf(remembered, sizeof(remembered), "%s/regions.json", e.state);
    write_file(sh, "region: cn-shanghai\ncustom_images:\n  - name: web-s\n    instance_id: " SRV_SH
                   "\n    system_snapshot_id: s-sys-10\n");
    set_config(&e, NULL);
    run_result r = RUN(&e, "run", "-f", sh, "--once");
    cr_expect_eq(r.status, 0, "%s", r.out);
    run_result_free(&r);
    char *text = read_file(remembered);
    cr_expect(strstr(text, "\"" OWNER "\"") != NULL && strstr(text, "cn-shanghai") != NULL &&
                  strstr(text, "cn-hangzhou") == NULL,
              "regions.json: %s", text);
    free(text);
    env_fini(&e);
}

/* A regions.json planted as a symlink is not followed: the cycle stops before any call, naming
 * the file, and the link's target is neither read nor written. */
Test(observe, symlinked_regions_file_is_not_followed, .timeout = 120)
{
    fixture f;
    setup(&f, SC_GOOD_SMALL_PAGES, false, false);
    cr_assert_eq(mkdir(f.e.state, 0700), 0);
    char path[200], target[200];
    snprintf(path, sizeof(path), "%s/regions.json", f.e.state);
    snprintf(target, sizeof(target), "%s/elsewhere.json", f.e.dir);
    write_file(target, "{\"owners\": {\"" OWNER "\": [\"cn-beijing\"]}}");
    cr_assert_eq(symlink(target, path), 0);
    run_result r = RUN(&f.e, "apply", "-f", f.e.manifest, "--auto-approve");
    cr_expect_eq(r.status, 1, "%s", r.out);
    cr_expect(strstr(r.out, "regions.json is a symbolic link") != NULL, "%s", r.out);
    run_result_free(&r);
    cr_expect_eq(calls_of(&f.s, "ListCustomImages", NULL), 0);
    char *text = read_file(target);
    cr_expect_str_eq(text, "{\"owners\": {\"" OWNER "\": [\"cn-beijing\"]}}");
    free(text);
    teardown(&f);
}

/* A regions.json that is not ours stops the cycle before any call, naming the file. */
Test(observe, malformed_regions_file_stops_the_cycle, .timeout = 120)
{
    fixture f;
    setup(&f, SC_GOOD_SMALL_PAGES, false, false);
    cr_assert_eq(mkdir(f.e.state, 0700), 0);
    char path[200];
    snprintf(path, sizeof(path), "%s/regions.json", f.e.state);
    write_file(path, "{\"owners\": [\"cn-hangzhou\"]}");
    run_result r = RUN(&f.e, "plan", "-f", f.e.manifest);
    cr_expect_eq(r.status, 1, "%s", r.out);
    cr_expect(strstr(r.out, "cannot read the remembered regions") != NULL &&
                  strstr(r.out, "regions.json: not an imgrecon regions file") != NULL,
              "%s", r.out);
    run_result_free(&r);
    cr_expect_eq(calls_of(&f.s, "ListCustomImages", NULL), 0);
    teardown(&f);
}
