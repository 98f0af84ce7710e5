/* The remembered regions and the ListRegions cache (reconcile/rec_regions.c): round trips, other
 * owners' entries kept, malformed files refused with the path, the day's cache expiring, and the
 * atomic write leaving no temporary file behind, symlinks never followed. Files live in a temporary
 * state directory. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

Test(regions, save_into_a_missing_directory_fails_cleanly)
{
    char sub[128];
    snprintf(sub, sizeof(sub), "%s/no/such", dir);
    rec_region_list l = {0};
    cr_assert_eq(rec_region_list_add(&l, "cn-hangzhou"), 1);
    cr_expect_eq(rec_regions_save(sub, "team-a", &l), -ENOENT);
    cr_expect_eq(rec_regions_cache_save(sub, 1000, &l), -ENOENT);
    cr_expect_eq(n_entries(), 0);
    rec_region_list_clear(&l);
}

/* A symlink planted as regions.json (here to a file another user could write) is never
 * followed: load refuses it naming the path, save leaves both the link and its target alone;
 * a symlinked list-regions.json is not read (the cache is asked again) and is replaced by a
 * real file without writing through it. */
Test(regions, symlinked_files_are_not_followed)
{
    char target[128], link_path[128], cache_path[128];
    snprintf(target, sizeof(target), "%s/elsewhere.json", dir);
    snprintf(link_path, sizeof(link_path), "%s/regions.json", dir);
    snprintf(cache_path, sizeof(cache_path), "%s/list-regions.json", dir);
    put("elsewhere.json", "{\"owners\":{\"team-a\":[\"cn-beijing\"]},\"fetched_at\":1000,"
                          "\"regions\":[\"cn-beijing\"]}");
    cr_assert_eq(symlink(target, link_path), 0);
    cr_assert_eq(symlink(target, cache_path), 0);
    rec_region_list got = {0}, l = {0};
    char *why = NULL;
    cr_expect_eq(rec_regions_load(dir, "team-a", &got, &why), -ELOOP);
    cr_expect_eq(got.n, 0, "the link was followed");
    cr_expect(why != NULL && strstr(why, "regions.json") != NULL && strstr(why, "symbolic link"),
              "%s", why ? why : "(no reason)");
    free(why);
    cr_assert_eq(rec_region_list_add(&l, "cn-hangzhou"), 1);
    cr_expect_eq(rec_regions_save(dir, "team-a", &l), -ELOOP);
    cr_expect_eq(rec_regions_cache_load(dir, 1001, 86400, &got), -ENOENT, "the link was read");
    cr_expect_eq(got.n, 0);
    cr_expect_eq(rec_regions_cache_save(dir, 1001, &l), 0);
    struct stat st;
    cr_assert_eq(lstat(link_path, &st), 0);
    cr_expect(S_ISLNK(st.st_mode), "regions.json: the link was replaced");
    cr_assert_eq(lstat(cache_path, &st), 0);
    cr_expect(S_ISREG(st.st_mode), "list-regions.json is still a link");
    cr_expect_eq(st.st_mode & 07777, 0600);
    FILE *f = fopen(target, "r");
    cr_assert_not_null(f);
    char buf[256] = {0};
    cr_expect_gt(fread(buf, 1, sizeof(buf) - 1, f), 0);
    fclose(f);
    cr_expect_not_null(strstr(buf, "cn-beijing"), "the target was written through: %s", buf);
    cr_expect_null(strstr(buf, "cn-hangzhou"), "the target was written through: %s", buf);
    cr_expect_eq(n_entries(), 3, "a temporary file was left behind");
    rec_region_list_clear(&l);
}
