/* The remembered regions and the ListRegions cache (reconcile/rec_regions.c): round trips, other
 * owners' entries kept, malformed files refused with the path, the day's cache expiring, and the
 * atomic write leaving no temporary file behind. Files live in a temporary state directory. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rec_regions.h"
#include "test_file.h"

static char dir[64];

static void setup(void)
{
    strcpy(dir, "/tmp/imgrecon-regions-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    (void)test_file_remove_tree(dir);
}

TestSuite(regions, .init = setup, .fini = teardown);

static void put(const char *name, const char *text)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

/* Entries of dir, "." and ".." excluded. */
static size_t n_entries(void)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

Test(regions, list_is_sorted_and_distinct)
{
    rec_region_list l = {0};
    cr_expect_eq(rec_region_list_add(&l, "cn-shanghai"), 1);
    cr_expect_eq(rec_region_list_add(&l, "cn-beijing"), 1);
    cr_expect_eq(rec_region_list_add(&l, "cn-shanghai"), 0);
    cr_expect_eq(rec_region_list_add(&l, "cn-hangzhou"), 1);
    cr_assert_eq(l.n, 3);
    cr_expect_str_eq(l.v[0], "cn-beijing");
    cr_expect_str_eq(l.v[1], "cn-hangzhou");
    cr_expect_str_eq(l.v[2], "cn-shanghai");
    cr_expect(rec_region_list_has(&l, "cn-hangzhou"));
    cr_expect(!rec_region_list_has(&l, "cn-qingdao"));
    rec_region_list_clear(&l);
    cr_expect_eq(l.n, 0);
    cr_expect_null(l.v);
}

Test(regions, absent_file_is_empty_and_save_round_trips)
{
    rec_region_list l = {0}, got = {0};
    char *why = NULL;
    cr_assert_eq(rec_regions_load(dir, "team-a", &got, &why), 0);
    cr_expect_eq(got.n, 0);
    cr_assert_eq(rec_region_list_add(&l, "cn-hangzhou"), 1);
    cr_assert_eq(rec_regions_save(dir, "team-b", &l), 0);
    cr_assert_eq(rec_region_list_add(&l, "cn-shanghai"), 1);
    cr_assert_eq(rec_regions_save(dir, "team-a", &l), 0);
    cr_expect_eq(n_entries(), 1, "a temporary file was left behind");
    cr_assert_eq(rec_regions_load(dir, "team-a", &got, &why), 0);
    cr_assert_eq(got.n, 2);
    cr_expect_str_eq(got.v[1], "cn-shanghai");
    rec_region_list_clear(&got);
    cr_assert_eq(rec_regions_load(dir, "team-b", &got, &why), 0, "another owner's entry lost");
    cr_assert_eq(got.n, 1);
    cr_expect_str_eq(got.v[0], "cn-hangzhou");
    rec_region_list_clear(&got);
    rec_region_list_clear(&l);
}

Test(regions, malformed_file_is_refused_with_its_path)
{
    const char *bad[] = {"{",
                         "[]",
                         "{\"owners\":[]}",
                         "{\"owners\":{\"team-a\":\"cn-hangzhou\"}}",
                         "{\"owners\":{\"team-a\":[1]}}",
                         "{\"owners\":{\"team-a\":[\"\"]}}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        put("regions.json", bad[i]);
        rec_region_list got = {0};
        char *why = NULL;
        cr_expect_eq(rec_regions_load(dir, "team-a", &got, &why), -EPROTO, "[%s]", bad[i]);
        cr_expect_eq(got.n, 0, "[%s]", bad[i]);
        cr_expect(why != NULL && strstr(why, dir) != NULL && strstr(why, "regions.json") != NULL,
                  "[%s] %s", bad[i], why ? why : "(no reason)");
        free(why);
    }
}

Test(regions, list_regions_cache_lasts_a_day)
{
    rec_region_list l = {0}, got = {0};
    cr_assert_eq(rec_regions_cache_load(dir, 1000, 86400, &got), -ENOENT);
    cr_assert_eq(rec_region_list_add(&l, "cn-hangzhou"), 1);
    cr_assert_eq(rec_regions_cache_save(dir, 1000, &l), 0);
    cr_assert_eq(rec_regions_cache_load(dir, 1000 + 86399, 86400, &got), 0);
    cr_expect_eq(got.n, 1);
    rec_region_list_clear(&got);
    cr_expect_eq(rec_regions_cache_load(dir, 1000 + 86400, 86400, &got), -ENOENT, "stale");
    cr_expect_eq(rec_regions_cache_load(dir, 999, 86400, &got), -ENOENT, "from the future");
    put("list-regions.json", "{\"fetched_at\":1000,\"regions\":[]}");
    cr_expect_eq(rec_regions_cache_load(dir, 1001, 86400, &got), -ENOENT, "empty");
    put("list-regions.json", "not json");
    cr_expect_eq(rec_regions_cache_load(dir, 1001, 86400, &got), -ENOENT, "garbage");
    cr_expect_eq(got.n, 0);
    rec_region_list_clear(&l);
}

Test(regions, write_atomic_into_a_missing_file_path_fails_cleanly)
{
    char sub[128];
    snprintf(sub, sizeof(sub), "%s/no/such", dir);
    cr_expect_eq(rec_write_atomic(sub, "x.json", "{}"), -ENOENT);
    cr_expect_eq(n_entries(), 0);
}
