/* State-directory hardening (reconcile/README.md "One writer per state directory"): an unsafe
 * directory is refused with a fix, planted symlinks are never followed, temporary files are unique,
 * a torn journal line is cut on open, and two processes appending and compacting one journal at
 * once never lose a line. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "prov_pacer.h"
#include "rec_journal.h"
#include "rec_lock.h"
#include "prov_statedir.h"
#include "rec_status.h"
#include "test_file.h"

static char dir[64];

static void setup(void)
{
    strcpy(dir, "/tmp/imgrecon-statedir-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    cr_assert_eq(test_file_remove_tree(dir), 0);
}

TestSuite(statedir, .init = setup, .fini = teardown);

static void write_text(const char *path, const char *text)
{
    test_file_write(path, text);
}

static char *read_text(const char *path)
{
    /* Valid until the next call, as the tests use it inline. */
    static char *text;
    free(text);
    text = test_file_read_len(path, NULL);
    cr_assert_not_null(text, "%s", path);
    return text;
}

static void add(rec_journal *j, const char *token)
{
    rec_journal_entry e = {.phase = REC_JOURNAL_RESULT,
                           .address = "swas.cn-hangzhou.custom_image.web",
                           .action = "ShareImage",
                           .region = "cn-hangzhou",
                           .client_token = (char *)token};
    cr_assert_eq(rec_journal_append(j, &e), 0);
}

Test(statedir, group_or_world_writable_dir_is_refused_with_the_fix)
{
    char *err = NULL;
    cr_assert_eq(prov_statedir_check(dir, &err), 0);
    cr_assert_null(err);
    cr_assert_eq(chmod(dir, 0777), 0);
    cr_assert_eq(prov_statedir_check(dir, &err), -EPERM);
    cr_assert_not_null(err);
    cr_assert_not_null(strstr(err, "chmod go-w"), "%s", err);
    cr_assert_not_null(strstr(err, dir), "%s", err);
    free(err);
    err = NULL;
    cr_assert_eq(chmod(dir, 0770), 0);
    cr_assert_eq(prov_statedir_check(dir, &err), -EPERM);
    free(err);
}

Test(statedir, symlinked_files_are_not_followed)
{
    char target[128], link[128];
    snprintf(target, sizeof(target), "%s/victim", dir);
    write_text(target, "precious\n");
    static const char *const names[] = {"journal.jsonl", "daemon.lock", "status.json",
                                        "pacer.lock"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(link, sizeof(link), "%s/%s", dir, names[i]);
        cr_assert_eq(symlink(target, link), 0);
    }
    rec_journal *j = NULL;
    cr_assert_eq(rec_journal_open(dir, "c1", 0, &j), -ELOOP);
    cr_assert_eq(rec_journal_open_readonly(dir, &j), -ELOOP);
    rec_lock *l = NULL;
    cr_assert_eq(rec_lock_acquire(dir, &l, NULL), -ELOOP);
    rec_status st;
    memset(&st, 0, sizeof(st));
    cr_assert_eq(rec_status_read(dir, &st), -ELOOP);
    prov_pacer *p = NULL;
    cr_assert_eq(prov_pacer_open(dir, &p), -ELOOP);
    cr_assert_str_eq(read_text(target), "precious\n");
}

/* The reproduced attack: journal.jsonl.tmp planted as a link to another file; compaction must
 * write its own unique temp file and leave the target alone. */
Test(statedir, planted_journal_tmp_link_is_left_alone)
{
    char target[128], link[128];
    snprintf(target, sizeof(target), "%s/victim", dir);
    write_text(target, "precious\n");
    snprintf(link, sizeof(link), "%s/journal.jsonl.tmp", dir);
    cr_assert_eq(symlink(target, link), 0);
    for (int c = 0; c < 4; c++) {
        char id[16];
        snprintf(id, sizeof(id), "c%d", c);
        rec_journal *j = NULL;
        cr_assert_eq(rec_journal_open(dir, id, 2, &j), 0); /* compacts from the third */
        add(j, id);
        rec_journal_close(j);
    }
    cr_assert_str_eq(read_text(target), "precious\n");
    struct stat st;
    cr_assert_eq(lstat(link, &st), 0);
    cr_assert(S_ISLNK(st.st_mode));
}

Test(statedir, torn_last_line_is_cut_and_the_next_entry_is_readable)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/journal.jsonl", dir);
    write_text(path, "{\"phase\":\"result\",\"ts_ms\":5,\"action\":\"X\",\"client_token\":\"t0\","
                     "\"code\":null}\n{\"phase\":\"result\",\"ts_ms\":6,\"act");
    rec_journal *j = NULL;
    cr_assert_eq(rec_journal_open(dir, "c1", 0, &j), 0);
    add(j, "t1");
    rec_journal_close(j);
    cr_assert_eq(rec_journal_open_readonly(dir, &j), 0);
    size_t n;
    const rec_journal_entry *v = rec_journal_entries(j, &n);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(v[1].client_token, "t1");
    cr_assert(rec_journal_token_used(j, "t1"));
    rec_journal_close(j);
    cr_assert_null(strstr(read_text(path), "\"act\n"), "the torn fragment is gone");
}

/* A last line that is complete but not an entry (a crash after a partial write and a newline
 * from elsewhere) is cut too; garbage in the middle is skipped but left alone. */
Test(statedir, trailing_invalid_lines_are_cut)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/journal.jsonl", dir);
    write_text(path, "garbage in the middle\n{\"phase\":\"result\",\"ts_ms\":5,\"action\":\"X\","
                     "\"client_token\":\"t0\",\"code\":null}\n{\"phase\":\"res\n");
    rec_journal *j = NULL;
    cr_assert_eq(rec_journal_open(dir, "c1", 0, &j), 0);
    add(j, "t1");
    rec_journal_close(j);
    const char *text = read_text(path);
    cr_assert_not_null(strstr(text, "garbage in the middle\n"));
    cr_assert_null(strstr(text, "\"res\n"), "%s", text);
    cr_assert_eq(rec_journal_open_readonly(dir, &j), 0);
    size_t n;
    (void)rec_journal_entries(j, &n);
    cr_assert_eq(n, 2);
    cr_assert(rec_journal_token_used(j, "t1"));
    rec_journal_close(j);
}

/* Several processes open (and so compact) and append to one journal at once: every line
 * appended is still there at the end. Each opener keeps 1000 cycles, so compaction only drops
 * cycles that are not ours; the lines are successful results younger than a day, which
 * compaction keeps, so any line missing was lost to a race. */
Test(statedir, concurrent_compaction_loses_no_line)
{
    enum { PROCS = 4, ROUNDS = 25 };
    for (int p = 0; p < PROCS; p++) {
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
            for (int r = 0; r < ROUNDS; r++) {
                char id[32];
                snprintf(id, sizeof(id), "p%d-r%d", p, r);
                rec_journal *j = NULL;
                if (rec_journal_open(dir, id, 1, &j) < 0)
                    _exit(2);
                rec_journal_entry e = {.phase = REC_JOURNAL_RESULT,
                                       .action = "ModifyImageShareStatus",
                                       .client_token = id};
                if (rec_journal_append(j, &e) < 0)
                    _exit(3);
                rec_journal_close(j);
            }
            _exit(0);
        }
    }
    for (int p = 0; p < PROCS; p++) {
        int status;
        cr_assert_gt(wait(&status), 0);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    rec_journal *j = NULL;
    cr_assert_eq(rec_journal_open_readonly(dir, &j), 0);
    for (int p = 0; p < PROCS; p++)
        for (int r = 0; r < ROUNDS; r++) {
            char id[32];
            snprintf(id, sizeof(id), "p%d-r%d", p, r);
            cr_expect(rec_journal_token_used(j, id), "line %s lost", id);
        }
    rec_journal_close(j);
}

Test(statedir, write_file_replaces_atomically_and_leaves_no_temp)
{
    cr_assert_eq(prov_statedir_write_file(dir, "status.json", "{}\n", 3, 0644), 0);
    char path[128];
    snprintf(path, sizeof(path), "%s/status.json", dir);
    cr_assert_str_eq(read_text(path), "{}\n");
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0644);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "test $(ls -A '%s' | wc -l) -eq 1", dir);
    cr_assert_eq(system(cmd), 0, "only status.json remains");
}
