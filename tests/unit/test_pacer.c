/* The pacer: sliding windows, cooldowns, the budget shared through the state directory by
 * several pacer objects and by forked processes, persistence across reopen, and the handling of
 * a corrupt call log. Times are passed explicitly, so nothing here sleeps or asserts timing. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "prov_pacer.h"
#include "test_file.h"

#define AK "LTAIpacerTestKey"
#define T0 1700000000000ull

static char dir[256];

static void make_dir(void)
{
    snprintf(dir, sizeof(dir), "/tmp/imgrecon-pacer-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void)
{
    char path[512];
    const char *names[] = {"pacer.log", "pacer.lock", "pacer.log.tmp"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        (void)unlink(path);
    }
    (void)rmdir(dir);
}

static void write_file(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    test_file_write(path, text);
}

static char *read_file(const char *name)
{
    /* Valid until the next call, as the tests use it inline. */
    static char *text;
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    free(text);
    text = test_file_read_len(path, NULL);
    cr_assert_not_null(text, "read %s", path);
    return text;
}

static uint64_t acq(prov_pacer *p, const char *action, unsigned calls, uint64_t window,
                    uint64_t now)
{
    uint64_t wait = 12345;
    cr_assert_eq(prov_pacer_acquire(p, AK, "swas", action, calls, window, now, &wait), 0);
    return wait;
}

TestSuite(pacer, .init = make_dir, .fini = remove_dir);

Test(pacer, n_calls_then_wait_until_oldest_expires)
{
    prov_pacer *p = NULL;
    cr_assert_eq(prov_pacer_open(dir, &p), 0);
    cr_assert_eq(acq(p, "CreateCustomImage", 3, 1000, T0), 0);
    cr_assert_eq(acq(p, "CreateCustomImage", 3, 1000, T0 + 100), 0);
    cr_assert_eq(acq(p, "CreateCustomImage", 3, 1000, T0 + 200), 0);
    /* Full: the oldest call (T0) leaves the window at T0 + 1000. */
    cr_assert_eq(acq(p, "CreateCustomImage", 3, 1000, T0 + 300), 700);
    /* A refused attempt records nothing. */
    cr_assert_eq(acq(p, "CreateCustomImage", 3, 1000, T0 + 999), 1);
    cr_assert_eq(acq(p, "CreateCustomImage", 3, 1000, T0 + 1000), 0);
    /* Now T0+100, T0+200, T0+1000 are in the window: next frees at T0 + 1100. */
    cr_assert_eq(acq(p, "CreateCustomImage", 3, 1000, T0 + 1001), 99);
    prov_pacer_free(p);
}

Test(pacer, actions_products_and_keys_are_independent)
{
    prov_pacer *p = NULL;
    uint64_t wait = 1;
    cr_assert_eq(prov_pacer_open(dir, &p), 0);
    cr_assert_eq(acq(p, "CreateCustomImage", 1, 1000, T0), 0);
    cr_assert_gt(acq(p, "CreateCustomImage", 1, 1000, T0), 0);
    cr_assert_eq(acq(p, "DeleteCustomImage", 1, 1000, T0), 0);
    cr_assert_eq(prov_pacer_acquire(p, AK, "ecs", "CreateCustomImage", 1, 1000, T0, &wait), 0);
    cr_assert_eq(wait, 0);
    cr_assert_eq(
        prov_pacer_acquire(p, "LTAIother", "swas", "CreateCustomImage", 1, 1000, T0, &wait), 0);
    cr_assert_eq(wait, 0);
    /* The access key is stored hashed, never in clear. */
    cr_assert_null(strstr(read_file("pacer.log"), AK));
    cr_assert_null(strstr(read_file("pacer.log"), "LTAIother"));
    prov_pacer_free(p);
}

Test(pacer, two_objects_share_the_budget)
{
    prov_pacer *a = NULL, *b = NULL;
    cr_assert_eq(prov_pacer_open(dir, &a), 0);
    cr_assert_eq(prov_pacer_open(dir, &b), 0);
    cr_assert_eq(acq(a, "ListCustomImages", 2, 60000, T0), 0);
    cr_assert_eq(acq(b, "ListCustomImages", 2, 60000, T0 + 10), 0);
    cr_assert_eq(acq(a, "ListCustomImages", 2, 60000, T0 + 20), 59980);
    cr_assert_eq(acq(b, "ListCustomImages", 2, 60000, T0 + 20), 59980);
    prov_pacer_free(a);
    prov_pacer_free(b);
}

Test(pacer, forked_processes_never_exceed_the_budget)
{
    /* Parent and child race for 40 attempts each on a 10-call window; the lock must let exactly
     * 10 through in total. Each side reports its successes through its exit code / a counter. */
    enum { ATTEMPTS = 40, CALLS = 10 };
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        prov_pacer *c = NULL;
        int got = 0;
        if (prov_pacer_open(dir, &c) != 0)
            _exit(100);
        for (int i = 0; i < ATTEMPTS; i++) {
            uint64_t wait = 0;
            if (prov_pacer_acquire(c, AK, "swas", "DeleteCustomImage", CALLS, 600000, T0 + 1,
                                   &wait) != 0)
                _exit(101);
            if (wait == 0)
                got++;
        }
        prov_pacer_free(c);
        _exit(got);
    }
    prov_pacer *p = NULL;
    int got = 0;
    cr_assert_eq(prov_pacer_open(dir, &p), 0);
    for (int i = 0; i < ATTEMPTS; i++)
        if (acq(p, "DeleteCustomImage", CALLS, 600000, T0 + 1) == 0)
            got++;
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status));
    int child = WEXITSTATUS(status);
    cr_assert_leq(child, CALLS, "child failed with %d", child);
    cr_assert_eq(got + child, CALLS, "parent %d + child %d", got, child);
    unsigned left = 99;
    cr_assert_eq(
        prov_pacer_budget(p, AK, "swas", "DeleteCustomImage", CALLS, 600000, T0 + 2, &left), 0);
    cr_assert_eq(left, 0);
    prov_pacer_free(p);
}

Test(pacer, cooldown_blocks_for_a_window)
{
    prov_pacer *p = NULL;
    cr_assert_eq(prov_pacer_open(dir, &p), 0);
    cr_assert_eq(acq(p, "ModifyImageShareStatus", 10, 1000, T0), 0);
    cr_assert_eq(prov_pacer_cooldown(p, AK, "swas", "ModifyImageShareStatus", 1000, T0 + 100), 0);
    cr_assert_eq(acq(p, "ModifyImageShareStatus", 10, 1000, T0 + 100), 1000);
    cr_assert_eq(acq(p, "ModifyImageShareStatus", 10, 1000, T0 + 600), 500);
    unsigned left = 99;
    cr_assert_eq(
        prov_pacer_budget(p, AK, "swas", "ModifyImageShareStatus", 10, 1000, T0 + 600, &left), 0);
    cr_assert_eq(left, 0);
    cr_assert_eq(acq(p, "ModifyImageShareStatus", 10, 1000, T0 + 1100), 0);
    /* Other actions are not cooled down. */
    cr_assert_eq(acq(p, "CreateCustomImage", 10, 1000, T0 + 200), 0);
    prov_pacer_free(p);
}

Test(pacer, reopen_remembers_the_window)
{
    prov_pacer *p = NULL;
    cr_assert_eq(prov_pacer_open(dir, &p), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(acq(p, "CreateCustomImage", 4, 60000, T0 + (uint64_t)i), 0);
    prov_pacer_free(p);
    cr_assert_eq(prov_pacer_open(dir, &p), 0);
    cr_assert_eq(acq(p, "CreateCustomImage", 4, 60000, T0 + 30000), 30000);
    cr_assert_eq(acq(p, "CreateCustomImage", 4, 60000, T0 + 60000), 0);
    prov_pacer_free(p);
}

Test(pacer, budget_counts_calls_left)
{
    prov_pacer *p = NULL;
    unsigned left = 0;
    cr_assert_eq(prov_pacer_open(dir, &p), 0);
    cr_assert_eq(prov_pacer_budget(p, AK, "swas", "DeleteCustomImage", 10, 1000, T0, &left), 0);
    cr_assert_eq(left, 10);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(acq(p, "DeleteCustomImage", 10, 1000, T0 + (uint64_t)i * 100), 0);
    cr_assert_eq(prov_pacer_budget(p, AK, "swas", "DeleteCustomImage", 10, 1000, T0 + 250, &left),
                 0);
    cr_assert_eq(left, 7);
    /* The first call leaves the window at T0 + 1000. */
    cr_assert_eq(prov_pacer_budget(p, AK, "swas", "DeleteCustomImage", 10, 1000, T0 + 1000, &left),
                 0);
    cr_assert_eq(left, 8);
    prov_pacer_free(p);
}

Test(pacer, in_memory_mode)
{
    prov_pacer *p = NULL;
    cr_assert_eq(prov_pacer_open(NULL, &p), 0);
    cr_assert_eq(acq(p, "CreateCustomImage", 2, 1000, T0), 0);
    cr_assert_eq(acq(p, "CreateCustomImage", 2, 1000, T0), 0);
    cr_assert_eq(acq(p, "CreateCustomImage", 2, 1000, T0 + 1), 999);
    prov_pacer_free(p);
    prov_pacer_free(NULL);
}

Test(pacer, clock_going_back_never_waits_more_than_a_window)
{
    prov_pacer *p = NULL;
    cr_assert_eq(prov_pacer_open(dir, &p), 0);
    cr_assert_eq(acq(p, "CreateCustomImage", 1, 1000, T0 + 3600000), 0);
    /* The clock went back an hour (a reboot, for the boot clock): the recorded call counts as
     * "now", and is stored so: one window later the action is free, not an hour later. */
    cr_assert_eq(acq(p, "CreateCustomImage", 1, 1000, T0), 1000);
    cr_assert_eq(acq(p, "CreateCustomImage", 1, 1000, T0 + 999), 1);
    cr_assert_eq(acq(p, "CreateCustomImage", 1, 1000, T0 + 1000), 0);
    cr_assert_eq(acq(p, "CreateCustomImage", 1, 1000, T0 + 1001), 999);
    prov_pacer_free(p);
}

Test(pacer, a_cooldown_in_the_future_is_capped_and_stored)
{
    prov_pacer *p = NULL;
    cr_assert_eq(prov_pacer_open(dir, &p), 0);
    cr_assert_eq(prov_pacer_cooldown(p, AK, "swas", "ListCustomImages", 1000, T0 + 3600000), 0);
    cr_assert_eq(acq(p, "ListCustomImages", 10, 1000, T0), 1000);
    cr_assert_eq(acq(p, "ListCustomImages", 10, 1000, T0 + 1000), 0);
    prov_pacer_free(p);
}

/* The text of a call log holding one call of action (1 per 60 s, at T0); caller frees. */
static char *log_of_one_call(const char *action)
{
    prov_pacer *p = NULL;
    cr_assert_eq(prov_pacer_open(dir, &p), 0);
    cr_assert_eq(acq(p, action, 1, 60000, T0), 0);
    prov_pacer_free(p);
    char *text = strdup(read_file("pacer.log"));
    cr_assert_not_null(text);
    return text;
}

/* Version 1 files held wall-clock times, far in the future on the boot clock: an upgrade reads
 * them as calls made now (one window of caution, not a corrupt file) and writes version 2. */
Test(pacer, a_version_1_file_costs_one_window_and_is_rewritten)
{
    prov_pacer *p = NULL;
    char *text = log_of_one_call("CreateCustomImage");
    cr_assert(strncmp(text, "imgrecon-pacer 2\n", 17) == 0, "%s", text);
    text[15] = '1';
    write_file("pacer.log", text);
    free(text);
    const uint64_t boot = 5000; /* five seconds after a boot */
    cr_assert_eq(prov_pacer_open(dir, &p), 0);
    cr_assert_eq(acq(p, "CreateCustomImage", 1, 60000, boot), 60000);
    cr_assert(strncmp(read_file("pacer.log"), "imgrecon-pacer 2\n", 17) == 0, "%s",
              read_file("pacer.log"));
    cr_assert_null(strstr(read_file("pacer.log"), "corrupt"));
    cr_assert_eq(acq(p, "CreateCustomImage", 1, 60000, boot + 60000), 0);
    prov_pacer_free(p);
}

/* The file backend's clock is the boot clock (not stepped, shared by the host's processes); the
 * integration test test_clocks shows a wall-clock step does not move it. */
Test(pacer, the_file_backend_counts_on_the_boot_clock)
{
    prov_pacer *p = NULL;
    cr_assert_eq(prov_pacer_open(dir, &p), 0);
    struct timespec ts;
    cr_assert_eq(clock_gettime(CLOCK_BOOTTIME, &ts), 0);
    uint64_t boot = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    uint64_t got = prov_pacer_now_ms(p);
    cr_assert(got >= boot && got - boot < 1000, "pacer %llu, boot clock %llu",
              (unsigned long long)got, (unsigned long long)boot);
    prov_pacer_free(p);
}

Test(pacer, corrupt_file_cools_down_for_one_window)
{
    write_file("pacer.log", "imgrecon-pacer 1\nk garbage line\n");
    prov_pacer *p = NULL;
    cr_assert_eq(prov_pacer_open(dir, &p), 0);
    /* The lost key's budget is unknown: wait one full window from the discovery. */
    cr_assert_eq(acq(p, "CreateCustomImage", 10, 1000, T0), 1000);
    cr_assert_eq(acq(p, "CreateCustomImage", 10, 1000, T0 + 400), 600);
    cr_assert_eq(acq(p, "CreateCustomImage", 10, 1000, T0 + 1000), 0);
    cr_assert_eq(acq(p, "CreateCustomImage", 10, 1000, T0 + 1001), 0);
    /* The file was rewritten in the proper format (header, this clock) and keeps the marker. */
    const char *text = read_file("pacer.log");
    cr_assert(strncmp(text, "imgrecon-pacer 2\nclock ", 23) == 0, "%s", text);
    cr_assert_not_null(strstr(text, "\ncorrupt "), "%s", text);
    cr_assert_null(strstr(text, "garbage"));
    prov_pacer_free(p);
}

Test(pacer, corrupt_file_keeps_parsable_keys)
{
    /* A good line for another action survives next to an empty/garbled one. */
    prov_pacer *p = NULL;
    char *good = log_of_one_call("DeleteCustomImage");
    char text[4096];
    snprintf(text, sizeof(text), "%sk broken\n", good);
    free(good);
    write_file("pacer.log", text);
    cr_assert_eq(prov_pacer_open(dir, &p), 0);
    cr_assert_eq(acq(p, "DeleteCustomImage", 1, 60000, T0 + 1000), 59000);
    prov_pacer_free(p);
}

Test(pacer, empty_or_torn_file_is_not_an_empty_budget)
{
    write_file("pacer.log", "");
    prov_pacer *p = NULL;
    cr_assert_eq(prov_pacer_open(dir, &p), 0);
    cr_assert_eq(acq(p, "CreateCustomImage", 10, 60000, T0), 60000);
    prov_pacer_free(p);
    write_file("pacer.log", "imgrecon-pacer 1\nk abc 0 1 17");
    cr_assert_eq(prov_pacer_open(dir, &p), 0);
    cr_assert_eq(acq(p, "CreateCustomImage", 10, 60000, T0), 60000);
    prov_pacer_free(p);
}

Test(pacer, bad_arguments)
{
    prov_pacer *p = NULL;
    uint64_t wait = 0;
    cr_assert_eq(prov_pacer_open(dir, &p), 0);
    cr_assert_eq(prov_pacer_acquire(p, AK, "swas", "Create Custom", 1, 1000, T0, &wait), -EINVAL);
    cr_assert_eq(prov_pacer_acquire(p, AK, "swas", "", 1, 1000, T0, &wait), -EINVAL);
    cr_assert_eq(prov_pacer_acquire(p, AK, "sw:as", "X", 1, 1000, T0, &wait), -EINVAL);
    cr_assert_eq(prov_pacer_acquire(p, AK, "swas", "X", 0, 1000, T0, &wait), -EINVAL);
    cr_assert_eq(prov_pacer_acquire(p, AK, "swas", "X", 1, 0, T0, &wait), -EINVAL);
    cr_assert_eq(prov_pacer_open("/proc/definitely/not/here", &p), -ENOENT);
    prov_pacer_free(p);
}

/* A call counts from its answer once settled: the slot it held frees a window after the answer,
 * not a window after it was sent, and the log stays ordered when answers come back out of
 * order. Both the in-memory and the file-backed pacer. */
static void settle_case(prov_pacer *p)
{
    /* Two calls per 1000 ms: sent at T0 and T0+10. */
    cr_assert_eq(acq(p, "ListCustomImages", 2, 1000, T0), 0);
    cr_assert_eq(acq(p, "ListCustomImages", 2, 1000, T0 + 10), 0);
    /* The second answer arrives first (T0+300), then the first (T0+400). */
    cr_assert_eq(prov_pacer_settle(p, AK, "swas", "ListCustomImages", 1000, T0 + 10, T0 + 300), 0);
    cr_assert_eq(prov_pacer_settle(p, AK, "swas", "ListCustomImages", 1000, T0, T0 + 400), 0);
    /* Unsettled, a slot would free at T0+1000; settled, the oldest is T0+300 -> T0+1300. */
    cr_assert_eq(acq(p, "ListCustomImages", 2, 1000, T0 + 1000), 300);
    cr_assert_eq(acq(p, "ListCustomImages", 2, 1000, T0 + 1300), 0);
    /* The next frees with the other settled call: T0+400+1000. */
    cr_assert_eq(acq(p, "ListCustomImages", 2, 1000, T0 + 1301), 99);
    /* A call no longer in the log (or an answer "before" it was sent) changes nothing. */
    cr_assert_eq(prov_pacer_settle(p, AK, "swas", "ListCustomImages", 1000, T0 - 5000, T0 + 1302),
                 0);
    cr_assert_eq(prov_pacer_settle(p, AK, "swas", "ListCustomImages", 1000, T0 + 1300, T0 + 1200),
                 0);
    cr_assert_eq(acq(p, "ListCustomImages", 2, 1000, T0 + 1301), 99);
}

Test(pacer, settle_counts_a_call_from_its_answer)
{
    prov_pacer *p = NULL;
    cr_assert_eq(prov_pacer_open(NULL, &p), 0);
    settle_case(p);
    prov_pacer_free(p);

    cr_assert_eq(prov_pacer_open(dir, &p), 0);
    settle_case(p);
    prov_pacer_free(p);
}

/* A batch takes what the window has left, in one write of the call log, and says when the next
 * slot frees; later single calls see the batch. Shared with another pacer object on the same
 * directory, as a second process would. */
Test(pacer, batch_takes_the_slots_left_in_one_write)
{
    prov_pacer *p = NULL, *q = NULL;
    cr_assert_eq(prov_pacer_open(dir, &p), 0);
    cr_assert_eq(prov_pacer_open(dir, &q), 0);
    cr_assert_eq(acq(p, "CreateCustomImage", 10, 1000, T0), 0);
    unsigned got = 99;
    uint64_t wait = 99;
    cr_assert_eq(
        prov_pacer_acquire_n(q, AK, "swas", "CreateCustomImage", 10, 1000, T0 + 5, 15, &got, &wait),
        0);
    cr_assert_eq(got, 9, "9 slots were left, got %u", got);
    cr_assert_eq(wait, 995, "the first call frees at T0+1000, wait %llu", (unsigned long long)wait);
    cr_assert_eq(acq(p, "CreateCustomImage", 10, 1000, T0 + 5), 995);
    /* One slot in the file per granted call: the log names 10 calls. */
    cr_assert_not_null(strstr(read_file("pacer.log"), ":swas:CreateCustomImage 0 10 "));

    /* A full grant says no wait; a zero want takes nothing. */
    cr_assert_eq(
        prov_pacer_acquire_n(q, AK, "swas", "ListCustomImages", 10, 1000, T0, 4, &got, &wait), 0);
    cr_assert_eq(got, 4);
    cr_assert_eq(wait, 0);
    cr_assert_eq(
        prov_pacer_acquire_n(q, AK, "swas", "ListCustomImages", 10, 1000, T0, 0, &got, &wait), 0);
    cr_assert_eq(got, 0);
    prov_pacer_free(p);
    prov_pacer_free(q);
}

/* Settling a batch moves each call to its own answer time, and the window frees from the
 * latest of them; a call not in the log is left alone. */
Test(pacer, batch_settle_moves_each_call_to_its_answer)
{
    prov_pacer *p = NULL;
    cr_assert_eq(prov_pacer_open(dir, &p), 0);
    unsigned got = 0;
    uint64_t wait = 0;
    cr_assert_eq(
        prov_pacer_acquire_n(p, AK, "swas", "DeleteCustomImages", 3, 1000, T0, 3, &got, &wait), 0);
    cr_assert_eq(got, 3);
    uint64_t sent[] = {T0, T0, T0, T0 - 5000};
    uint64_t done[] = {T0 + 10, T0 + 30, T0 + 20, T0 + 40};
    cr_assert_eq(prov_pacer_settle_n(p, AK, "swas", "DeleteCustomImages", 1000, sent, done, 4), 0);
    cr_assert_not_null(strstr(read_file("pacer.log"), " 3 "
                                                      "1700000000010 1700000000020 1700000000030"),
                       "log: %s", read_file("pacer.log"));
    /* The oldest call now counts from T0+10: the next slot frees at T0+1010. */
    cr_assert_eq(acq(p, "DeleteCustomImages", 3, 1000, T0 + 100), 910);
    cr_assert_eq(prov_pacer_settle_n(p, AK, "swas", "DeleteCustomImages", 1000, sent, done, 0), 0);
    prov_pacer_free(p);
}

/* The log of one call (log_of_one_call) with its clock line replaced by line ("" drops it). */
static void reclock_log(const char *text, const char *line)
{
    const char *clock = strstr(text, "\nclock ");
    cr_assert_not_null(clock, "the log names its clock:\n%s", text);
    const char *end = strchr(clock + 1, '\n');
    char out[4096];
    snprintf(out, sizeof(out), "%.*s%s%s", (int)(clock - text + 1), text, line, end + 1);
    write_file("pacer.log", out);
}

#define OTHER_CLOCK "clock 0123456789abcdef0123456789abcdef\n"

/* A log on another boot clock (after a reboot, or written by another host) or on none (before
 * the clock line): its times mean nothing here, so each call counts as made now and each
 * cooldown lasts a window from now, once; the log is rewritten with this process's clock. */
Test(pacer, a_log_on_another_clock_counts_its_calls_as_now)
{
    const char *lines[] = {OTHER_CLOCK, ""};
    char path[512];
    snprintf(path, sizeof(path), "%s/pacer.log", dir);
    for (size_t i = 0; i < 2; i++) {
        (void)unlink(path);
        char *text = log_of_one_call("CreateCustomImage");
        reclock_log(text, lines[i]);
        free(text);
        prov_pacer *p = NULL;
        cr_assert_eq(prov_pacer_open(dir, &p), 0);
        /* Ten windows after the call on the log's clock: still a whole window to wait. */
        cr_expect_eq(acq(p, "CreateCustomImage", 1, 60000, T0 + 600000), 60000, "case %zu", i);
        text = read_file("pacer.log");
        cr_expect_null(strstr(text, "0123456789abcdef"), "rewritten with this clock:\n%s", text);
        cr_expect_not_null(strstr(text, "\nclock "), "%s", text);
        cr_expect_eq(acq(p, "CreateCustomImage", 1, 60000, T0 + 660000), 0, "case %zu", i);
        prov_pacer_free(p);
    }
    /* A cooldown on another clock: one window from now. */
    prov_pacer *p = NULL;
    cr_assert_eq(prov_pacer_open(dir, &p), 0);
    cr_assert_eq(prov_pacer_cooldown(p, AK, "swas", "ListCustomImages", 1000, T0), 0);
    prov_pacer_free(p);
    reclock_log(read_file("pacer.log"), OTHER_CLOCK);
    cr_assert_eq(prov_pacer_open(dir, &p), 0);
    cr_expect_eq(acq(p, "ListCustomImages", 10, 1000, T0 + 5000), 1000);
    prov_pacer_free(p);
}

/* A log that names another clock after this process wrote it was written since by another host
 * sharing the state directory (or another time namespace): refused, not read as old calls. A
 * new process adopts it as after a reboot. */
Test(pacer, another_host_writing_after_us_is_refused)
{
    prov_pacer *p = NULL;
    cr_assert_eq(prov_pacer_open(dir, &p), 0);
    cr_assert_eq(acq(p, "CreateCustomImage", 2, 60000, T0), 0);
    reclock_log(read_file("pacer.log"), OTHER_CLOCK);
    uint64_t wait = 0;
    unsigned left = 0;
    cr_expect_eq(prov_pacer_acquire(p, AK, "swas", "CreateCustomImage", 2, 60000, T0 + 1, &wait),
                 -EUSERS);
    cr_expect_eq(prov_pacer_budget(p, AK, "swas", "CreateCustomImage", 2, 60000, T0 + 1, &left),
                 -EUSERS);
    cr_expect_not_null(strstr(read_file("pacer.log"), OTHER_CLOCK), "left as it was");
    prov_pacer_free(p);
    cr_assert_eq(prov_pacer_open(dir, &p), 0);
    cr_expect_eq(acq(p, "CreateCustomImage", 2, 60000, T0 + 600000), 0, "one slot of two left");
    cr_expect_eq(acq(p, "CreateCustomImage", 2, 60000, T0 + 600000), 60000);
    prov_pacer_free(p);
}
