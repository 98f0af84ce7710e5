/* The crash-safety journal: lines survive a reopen, a torn last line is ignored, lookups find
 * the newest create per token, and compaction keeps the last cycles plus every token's newest
 * successful create. */
#include <criterion/criterion.h>
#include <time.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rec_journal.h"

static char dir[64];

static void setup(void)
{
    strcpy(dir, "/tmp/imgrecon-journal-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/journal.jsonl", dir);
    (void)unlink(path);
    (void)rmdir(dir);
}

TestSuite(journal, .init = setup, .fini = teardown);

static void add(rec_journal *j, rec_journal_phase ph, const char *action, const char *token,
                const char *image_id, const char *code)
{
    rec_journal_entry e = {.phase = ph,
                           .address = "swas.cn-hangzhou.custom_image.web",
                           .action = (char *)action,
                           .region = "cn-hangzhou",
                           .name = "web",
                           .client_token = (char *)token,
                           .image_id = (char *)image_id,
                           .code = (char *)code};
    cr_assert_eq(rec_journal_append(j, &e), 0);
}

Test(journal, survives_reopen_and_finds_creates)
{
    rec_journal *j = NULL;
    cr_assert_eq(rec_journal_open(dir, "c1", 0, &j), 0);
    add(j, REC_JOURNAL_INTENT, "CreateCustomImage", "tok-a", NULL, NULL);
    add(j, REC_JOURNAL_RESULT, "CreateCustomImage", "tok-a", "m-1", NULL);
    add(j, REC_JOURNAL_INTENT, "CreateCustomImage", "tok-b", NULL, NULL);
    add(j, REC_JOURNAL_RESULT, "CreateCustomImage", "tok-b", NULL, "CustomImageQuotaLimit");
    add(j, REC_JOURNAL_INTENT, "DeleteCustomImage", "tok-c", "m-9", NULL);
    rec_journal_close(j);

    cr_assert_eq(rec_journal_open(dir, "c2", 0, &j), 0);
    size_t n;
    const rec_journal_entry *v = rec_journal_entries(j, &n);
    cr_assert_eq(n, 5);
    cr_assert_str_eq(v[0].cycle, "c1");
    cr_assert_gt(v[0].ts_ms, 0);
    cr_assert_str_eq(v[3].code, "CustomImageQuotaLimit");
    const rec_journal_entry *e = rec_journal_find_created(j, "tok-a");
    cr_assert_not_null(e);
    cr_assert_str_eq(e->image_id, "m-1");
    cr_assert_null(rec_journal_find_created(j, "tok-b"), "a failed create is not a creation");
    cr_assert_null(rec_journal_find_created(j, "tok-zzz"));
    cr_assert(rec_journal_intent_open(j, "tok-c"), "intent without result is open");
    cr_assert(!rec_journal_intent_open(j, "tok-a"));
    rec_journal_close(j);
}

Test(journal, torn_line_and_garbage_are_ignored)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/journal.jsonl", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("not json at all\n", f);
    fputs("{\"phase\":\"result\",\"ts_ms\":5,\"action\":\"CreateCustomImage\","
          "\"client_token\":\"t1\",\"image_id\":\"m-5\",\"code\":null}\n",
          f);
    fputs("{\"phase\":\"result\",\"ts_ms\":6,\"action\":\"CreateCus", f); /* torn by a crash */
    fclose(f);

    rec_journal *j = NULL;
    cr_assert_eq(rec_journal_open(dir, "c1", 0, &j), 0);
    size_t n;
    (void)rec_journal_entries(j, &n);
    cr_assert_eq(n, 1);
    cr_assert_not_null(rec_journal_find_created(j, "t1"));
    rec_journal_close(j);
}

Test(journal, compaction_keeps_last_cycles_and_creates)
{
    char cyc[16];
    for (int c = 0; c < 6; c++) {
        rec_journal *j = NULL;
        snprintf(cyc, sizeof(cyc), "c%d", c);
        cr_assert_eq(rec_journal_open(dir, cyc, 3, &j), 0);
        char tok[16], img[16];
        snprintf(tok, sizeof(tok), "tok-%d", c);
        snprintf(img, sizeof(img), "m-%d", c);
        add(j, REC_JOURNAL_INTENT, "CreateCustomImage", tok, NULL, NULL);
        add(j, REC_JOURNAL_RESULT, "CreateCustomImage", tok, img, NULL);
        add(j, REC_JOURNAL_INTENT, "ModifyImageShareStatus", "s", img, NULL);
        add(j, REC_JOURNAL_RESULT, "ModifyImageShareStatus", "s", img, NULL);
        rec_journal_close(j);
    }
    rec_journal *j = NULL;
    cr_assert_eq(rec_journal_open(dir, "last", 3, &j), 0);
    size_t n;
    const rec_journal_entry *v = rec_journal_entries(j, &n);
    /* Cycles c3..c5 whole (12 lines) plus the create results of c0..c2 (3 lines) and their
     * share results, whose tokens the cloud still remembers (3 lines). */
    cr_assert_eq(n, 18, "kept %zu lines", n);
    cr_assert(rec_journal_token_used(j, "s"));
    for (int c = 0; c < 6; c++) {
        char tok[16];
        snprintf(tok, sizeof(tok), "tok-%d", c);
        cr_assert_not_null(rec_journal_find_created(j, tok), "create of %s kept", tok);
    }
    cr_assert_str_eq(v[n - 1].cycle, "c5");
    rec_journal_close(j);

    struct stat st;
    char path[128];
    snprintf(path, sizeof(path), "%s/journal.jsonl", dir);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
}

/* A token is "used" only by a successful result; results older than the cloud's token memory
 * are dropped by compaction (creates excepted), recent ones are kept. */
Test(journal, token_used_and_its_retention)
{
    struct timespec now_ts;
    clock_gettime(CLOCK_REALTIME, &now_ts);
    uint64_t now = (uint64_t)now_ts.tv_sec * 1000u;
    char cyc[16];
    for (int c = 0; c < 4; c++) {
        rec_journal *j = NULL;
        snprintf(cyc, sizeof(cyc), "c%d", c);
        cr_assert_eq(rec_journal_open(dir, cyc, 1, &j), 0);
        char tok[16];
        snprintf(tok, sizeof(tok), "share-%d", c);
        /* c0's result is two days old, c1's an hour old. */
        uint64_t ts = c == 0 ? now - 48ull * 3600 * 1000 : c == 1 ? now - 3600ull * 1000 : 0;
        rec_journal_entry e = {.phase = REC_JOURNAL_RESULT,
                               .ts_ms = ts,
                               .action = "ModifyImageShareStatus",
                               .client_token = tok,
                               .image_id = "m-1"};
        cr_assert_eq(rec_journal_append(j, &e), 0);
        add(j, REC_JOURNAL_RESULT, "DeleteCustomImage", "del-failed", "m-1", "CustomImageInShare");
        rec_journal_close(j);
    }
    rec_journal *j = NULL;
    cr_assert_eq(rec_journal_open(dir, "last", 1, &j), 0);
    cr_assert(!rec_journal_token_used(j, "share-0"), "forgotten after the cloud forgot it");
    cr_assert(rec_journal_token_used(j, "share-1"));
    cr_assert(rec_journal_token_used(j, "share-2"));
    cr_assert(rec_journal_token_used(j, "share-3"));
    cr_assert(!rec_journal_token_used(j, "del-failed"), "a failed call does not use its token");
    cr_assert(!rec_journal_token_used(j, NULL));
    cr_assert(!rec_journal_token_used(NULL, "share-1"));
    rec_journal_close(j);
}

Test(journal, bad_arguments_and_unwritable_dir)
{
    rec_journal *j = NULL;
    cr_assert_eq(rec_journal_open(NULL, "c", 0, &j), -EINVAL);
    cr_assert_lt(rec_journal_open("/nonexistent-imgrecon-dir/x", "c", 0, &j), 0);
    cr_assert_null(j);
    rec_journal_close(NULL);
    cr_assert_eq(rec_journal_append(NULL, NULL), -EINVAL);
}

static void add_sample(rec_journal *j, const char *region, uint64_t ts_ms, uint64_t build_ms,
                       uint64_t lo_ms)
{
    rec_journal_entry e = {.phase = REC_JOURNAL_RESULT,
                           .ts_ms = ts_ms,
                           .address = "swas.r.custom_image.web",
                           .action = REC_JOURNAL_AVAILABLE,
                           .region = (char *)region,
                           .name = "web",
                           .image_id = "m-1",
                           .build_ms = build_ms,
                           .build_lo_ms = lo_ms};
    cr_assert_eq(rec_journal_append(j, &e), 0);
}

/* Build-time samples survive a reopen; the learned values are medians of the newest 8 of the
 * region (or of every region), younger than the age limit. */
Test(journal, learned_build_time_from_samples)
{
    rec_journal *j = NULL;
    cr_assert_eq(rec_journal_open(dir, "c1", 0, &j), 0);
    uint64_t now = 1800000000000ull;
    add_sample(j, "cn-a", now - 10 * 86400000ull, 5000, 0); /* too old */
    add_sample(j, "cn-a", now - 1000, 61000, 59000);
    add_sample(j, "cn-a", now - 900, 60000, 0);
    add_sample(j, "cn-a", now - 800, 90000, 58000); /* a slow one does not move the median */
    add_sample(j, "cn-b", now - 700, 30000, 29000);
    rec_journal_close(j);
    cr_assert_eq(rec_journal_open(dir, "c2", 0, &j), 0);
    rec_build_learned b;
    rec_journal_learned_build(j, "cn-a", now, 7 * 86400000ull, &b);
    cr_expect_eq(b.n, 3);
    cr_expect_eq(b.typical_ms, 61000);
    cr_expect_eq(b.hi_ms, 61000);
    cr_expect_eq(b.lo_ms, 59000);
    rec_journal_learned_build(j, NULL, now, 7 * 86400000ull, &b);
    cr_expect_eq(b.n, 4);
    rec_journal_learned_build(j, "cn-z", now, 7 * 86400000ull, &b);
    cr_expect_eq(b.n, 0);
    cr_expect_eq(b.typical_ms, 0);
    rec_journal_close(j);
}
