/* The daemon's parts, each against the real thing: log lines (text, JSON parsed back with
 * jansson, journald priority prefixes, secret scrub, normalisation), status.json round trip and
 * malformed input, the lock against a forked child, the metrics exposition parsed back and
 * served by libmicrohttpd (fetched with libcurl on loopback), the backoff schedule, and
 * sd_notify messages received on an AF_UNIX datagram socket named by NOTIFY_SOCKET. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <poll.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>
#include <uv.h>

#include "prov_pacer.h"
#include "rec_backoff.h"
#include "rec_lock.h"
#include "rec_log.h"
#include "rec_metrics.h"
#include "prov_swas.h"
#include "rec_setup.h"
#include "rec_notify.h"
#include "rec_status.h"
#include "test_notify.h"
#include "test_param.h"

static char dir[64];

static void mk_dir(void)
{
    strcpy(dir, "/tmp/imgrecon-daemon-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

/* Removes the files a test may leave and the directory. */
static void rm_dir(void)
{
    const char *names[] = {"status.json", "daemon.lock", "notify.sock"};
    char path[128];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        (void)unlink(path);
    }
    (void)rmdir(dir);
}

/* ---- log ---- */

static rec_log *mklog(bool json, bool journal)
{
    rec_log *l = NULL;
    rec_log_opts o = {.fd = -1, .json = json, .journal = journal, .level = REC_LOG_DEBUG};
    cr_assert_eq(rec_log_new(&o, &l), 0);
    return l;
}

/* 2026-11-22T10:00:00.123Z */
#define T0 1795341600123ull

Test(log, text_line_format)
{
    rec_log *l = mklog(false, false);
    const char *kv[] = {
        "action", "CreateCustomImage", "error", "a \"quoted\" = thing\n", "skipped", NULL, "empty",
        ""};
    char *line = NULL;
    cr_assert_eq(rec_log_format(l, REC_LOG_INFO, T0, "step failed", kv, 4, &line), 0);
    cr_assert_str_eq(line, "2026-11-22T10:00:00.123Z level=info msg=\"step failed\" "
                           "action=CreateCustomImage error=\"a \\\"quoted\\\" = thing\\n\" "
                           "empty=\"\"\n");
    free(line);
    rec_log_free(l);
}

/* Fixed arrays, not pointers: Criterion hands each parameter to a separate process. */
typedef struct prio_case {
    rec_log_level level;
    char prefix[4];
} prio_case;

ParameterizedTestParameters(log, journal_priority_prefix)
{
    static prio_case cases[] = {{REC_LOG_DEBUG, "<7>"},
                                {REC_LOG_INFO, "<6>"},
                                {REC_LOG_WARN, "<4>"},
                                {REC_LOG_ERROR, "<3>"}};
    return cr_make_param_array(prio_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(prio_case *c, log, journal_priority_prefix)
{
    rec_log *l = mklog(false, true);
    char *line = NULL;
    cr_assert_eq(rec_log_format(l, c->level, T0, "m", NULL, 0, &line), 0);
    cr_assert_eq(strncmp(line, c->prefix, 3), 0, "line %s", line);
    cr_assert_eq(strncmp(line + 3, "2026-11-22T10:00:00.123Z level=", 31), 0, "line %s", line);
    free(line);
    rec_log_free(l);
    /* Without journald there is no prefix. */
    l = mklog(false, false);
    cr_assert_eq(rec_log_format(l, c->level, T0, "m", NULL, 0, &line), 0);
    cr_assert_eq(line[0], '2');
    free(line);
    rec_log_free(l);
}

/* Counts, durations and flags are typed in JSON lines, by key; strings stay strings (even one
 * that looks like a number), and a typed key with an odd value stays valid JSON. Parsed with
 * the strict reader (duplicates rejected). */
Test(log, json_fields_are_typed)
{
    rec_log *l = mklog(true, false);
    const char *kv[] = {"done",        "3",    "total",    "12",   "duration_s", "0.250",
                        "suspended",   "true", "image_id", "1234", "wait_ms",    "soon",
                        "http_status", "-1",   "pid",      "07"};
    char *line = NULL;
    cr_assert_eq(rec_log_format(l, REC_LOG_INFO, T0, "cycle finished", kv, 8, &line), 0);
    json_error_t err;
    json_t *o = json_loads(line, JSON_REJECT_DUPLICATES, &err);
    cr_assert_not_null(o, "not JSON: %s (%s)", line, err.text);
    cr_assert(json_is_integer(json_object_get(o, "done")), "%s", line);
    cr_assert_eq(json_integer_value(json_object_get(o, "done")), 3);
    cr_assert_eq(json_integer_value(json_object_get(o, "total")), 12);
    cr_assert(json_is_real(json_object_get(o, "duration_s")), "%s", line);
    cr_assert_float_eq(json_real_value(json_object_get(o, "duration_s")), 0.25, 1e-9);
    cr_assert(json_is_true(json_object_get(o, "suspended")), "%s", line);
    cr_assert_str_eq(json_string_value(json_object_get(o, "image_id")), "1234");
    cr_assert_str_eq(json_string_value(json_object_get(o, "wait_ms")), "soon");
    cr_assert_eq(json_integer_value(json_object_get(o, "http_status")), -1);
    cr_assert_str_eq(json_string_value(json_object_get(o, "pid")), "07", "not a JSON number");
    cr_assert_eq(rec_log_key_type("waited_ms"), REC_LOG_NUMBER);
    cr_assert_eq(rec_log_key_type("address"), REC_LOG_STRING);
    json_decref(o);
    free(line);
    rec_log_free(l);
}

Test(log, json_escaping_parses_back)
{
    rec_log *l = mklog(true, false);
    const char *nasty = "quote\" backslash\\ nl\n tab\t ctl\x01 del\x7f utf8 \xc3\xa9 bad \xff end";
    const char *kv[] = {"error", nasty, "k\"ey", "v"};
    char *line = NULL;
    cr_assert_eq(rec_log_format(l, REC_LOG_ERROR, T0, nasty, kv, 2, &line), 0);
    size_t n = strlen(line);
    cr_assert_eq(line[n - 1], '\n');
    cr_assert_eq(strchr(line, '\n'), line + n - 1, "one line only");
    json_error_t err;
    json_t *o = json_loadb(line, n - 1, 0, &err);
    cr_assert_not_null(o, "not JSON: %s (%s)", line, err.text);
    cr_assert_str_eq(json_string_value(json_object_get(o, "ts")), "2026-11-22T10:00:00.123Z");
    cr_assert_str_eq(json_string_value(json_object_get(o, "level")), "error");
    const char *want = "quote\" backslash\\ nl\n tab\t ctl\x01 del\x7f utf8 \xc3\xa9 bad "
                       "\xef\xbf\xbd end";
    cr_assert_str_eq(json_string_value(json_object_get(o, "msg")), want);
    cr_assert_str_eq(json_string_value(json_object_get(o, "error")), want);
    cr_assert_str_eq(json_string_value(json_object_get(o, "k\"ey")), "v");
    json_decref(o);
    free(line);
    rec_log_free(l);
}

Test(log, secret_scrubbed_everywhere)
{
    const char *secret = "emulator-demo-secret";
    for (int json = 0; json <= 1; json++) {
        rec_log *l = mklog(json, false);
        cr_assert_eq(rec_log_add_secret(l, secret), 0);
        cr_assert_eq(rec_log_add_secret(l, "abc"), 0); /* too short: ignored */
        const char *kv[] = {"error", "SignatureDoesNotMatch: key emulator-demo-secret&x", "path",
                            "/a/emulator-demo-secret/emulator-demo-secret"};
        char *line = NULL;
        cr_assert_eq(
            rec_log_format(l, REC_LOG_ERROR, T0, "leak emulator-demo-secret? abc", kv, 2, &line),
            0);
        cr_assert_null(strstr(line, secret), "secret in %s", line);
        cr_assert_not_null(strstr(line, "abc"));
        cr_assert_not_null(strstr(line, "/a/***/***"), "line %s", line);
        free(line);
        rec_log_clear_secrets(l);
        cr_assert_eq(rec_log_format(l, REC_LOG_INFO, T0, secret, NULL, 0, &line), 0);
        cr_assert_not_null(strstr(line, secret), "cleared secrets are no longer scrubbed");
        free(line);
        rec_log_free(l);
    }
}

/* Text from the cloud has no length limit (an owner tag of 60 KiB, a long error message), and
 * journald splits a line longer than LineMax (48 KiB by default) into entries, the rest looking
 * like a line of its own. Values are cut (with a note, at a character's start, after secrets
 * are scrubbed) so that no line passes 32 KiB, in both formats, however many long fields. */
Test(log, long_values_are_cut_and_lines_stay_below_journald_line_max)
{
    const char *secret = "emulator-demo-secret";
    size_t big = 60 * 1024;
    char *owner = malloc(big + 1);
    memset(owner, 'y', big);
    memcpy(owner + 4090, secret, strlen(secret)); /* across the cut at 4096 */
    memcpy(owner + 48 * 1024, " 2026-12-03T16:00:00.000Z level=info msg=recovered ", 51);
    /* Scrubbed, the secret leaves 17 bytes less: this character spans the cut at 4096. */
    memcpy(owner + 4112, "\xe5\x8c\xba", 3);
    owner[big] = '\0';
    char *ctl = malloc(big + 1);
    memset(ctl, '\x1b', big);
    ctl[big] = '\0';
    for (int json = 0; json <= 1; json++) {
        rec_log *l = mklog(json, true);
        cr_assert_eq(rec_log_add_secret(l, secret), 0);
        const char *kv[] = {"owner", owner, "reason", owner, "a", ctl, "b", ctl, "c", ctl,
                            "d",     ctl,   "e",      ctl,   "f", ctl, "g", ctl, "h", ctl};
        char *line = NULL;
        cr_assert_eq(rec_log_format(l, REC_LOG_ERROR, T0, "conflict: not touched", kv, 2, &line),
                     0);
        cr_assert_leq(strlen(line), 32 * 1024, "%zu bytes", strlen(line));
        cr_assert_not_null(strstr(line, "more bytes)"), "the cut is noted");
        cr_assert_null(strstr(line, "level=info msg=recovered"), "the forged part is cut off");
        cr_assert_null(strstr(line, "emulator"), "no part of the secret");
        cr_assert_null(strstr(line, "\\xe5"), "no character cut in half: %.200s", line + 4000);
        cr_assert_null(strstr(line, "\\ufffd"), "no character cut in half: %.200s", line + 4000);
        if (json) {
            json_t *o = json_loads(line + 3, 0, NULL);
            cr_assert_not_null(o, "valid JSON after the cut");
            json_decref(o);
        }
        free(line);
        cr_assert_eq(rec_log_format(l, REC_LOG_ERROR, T0, "m", kv, 10, &line), 0);
        cr_assert_leq(strlen(line), 32 * 1024, "ten long fields: %zu bytes", strlen(line));
        cr_assert_eq(strchr(line, '\n'), line + strlen(line) - 1, "one line");
        free(line);
        rec_log_free(l);
    }
    free(ctl);
    free(owner);
}

/* A registered token is scrubbed as it is and percent-encoded once and twice (the forms a V1
 * string to sign and a canonical query quote it in), and a forgotten one (a refresh replaced
 * it) is no longer scrubbed in any form, while the others stay. */
Test(log, secret_scrubbed_in_encoded_forms_and_forgotten)
{
    const char *token = "CAISTokSECRETvalue/abc+def=";
    const char *forms[] = {"CAISTokSECRETvalue/abc+def=", "CAISTokSECRETvalue%2Fabc%2Bdef%3D",
                           "CAISTokSECRETvalue%252Fabc%252Bdef%253D"};
    rec_log *l = mklog(false, false);
    cr_assert_eq(rec_log_add_secret(l, token), 0);
    cr_assert_eq(rec_log_add_secret(l, "other-secret-value"), 0);
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        char text[200];
        snprintf(text, sizeof(text), "SecurityToken%%3D%s%%26 and other-secret-value", forms[i]);
        rec_log_scrub(l, text);
        cr_expect_str_eq(text, "SecurityToken%3D***%26 and ***", "form %zu", i);
    }
    rec_log_forget_secret(l, token);
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        char text[200];
        snprintf(text, sizeof(text), "%s other-secret-value", forms[i]);
        rec_log_scrub(l, text);
        cr_expect_not_null(strstr(text, forms[i]), "form %zu still scrubbed: %s", i, text);
        cr_expect_not_null(strstr(text, " ***"), "the other secret is kept: %s", text);
    }
    rec_log_forget_secret(l, NULL);
    rec_log_forget_secret(NULL, token);
    rec_log_free(l);
}

Test(log, write_goes_to_fd_and_respects_level)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    rec_log *l = NULL;
    rec_log_opts o = {.fd = fds[1], .level = REC_LOG_INFO};
    cr_assert_eq(rec_log_new(&o, &l), 0);
    rec_log_event(l, REC_LOG_DEBUG, "hidden", NULL);
    rec_log_event(l, REC_LOG_INFO, "shown", "k", "v", NULL);
    rec_log_free(l);
    close(fds[1]);
    char buf[512];
    ssize_t n = read(fds[0], buf, sizeof(buf) - 1);
    close(fds[0]);
    cr_assert_gt(n, 0);
    buf[n] = '\0';
    cr_assert_null(strstr(buf, "hidden"));
    cr_assert_not_null(strstr(buf, "level=info msg=\"shown\" k=v\n"), "got %s", buf);
}

Test(log, journal_stream_detection)
{
    char path[128];
    mk_dir();
    snprintf(path, sizeof(path), "%s/status.json", dir);
    int fd = open(path, O_CREAT | O_WRONLY, 0600);
    cr_assert_geq(fd, 0);
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    char js[64];
    snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    cr_assert_eq(setenv("JOURNAL_STREAM", js, 1), 0);
    cr_assert(rec_log_journal_detect(fd));
    snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino + 1);
    cr_assert_eq(setenv("JOURNAL_STREAM", js, 1), 0);
    cr_assert_not(rec_log_journal_detect(fd), "another inode is not our stderr");
    cr_assert_eq(setenv("JOURNAL_STREAM", "garbage", 1), 0);
    cr_assert_not(rec_log_journal_detect(fd));
    cr_assert_eq(unsetenv("JOURNAL_STREAM"), 0);
    cr_assert_not(rec_log_journal_detect(fd));
    close(fd);
    rm_dir();
}

typedef struct norm_case {
    char in[128];
    char out[128];
} norm_case;

ParameterizedTestParameters(log, normalise)
{
    static norm_case cases[] = {
        {"Throttling.User: Request was denied (RequestId: 4C4F7E3A-1B2C-4D5E-8F90-ABCDEF012345)",
         "Throttling.User: Request was denied"},
        {"InternalError: oops RequestId=4C4F7E3A-1B2C-4D5E-8F90-ABCDEF012345, retry",
         "InternalError: oops, retry"},
        {"failed request_id=\"abc123\" later", "failed later"},
        {"id 0123456789abcdef0123 and 4c4f7e3a-1b2c-4d5e-8f90-abcdef012345 here",
         "id <id> and <id> here"},
        {"image m-bp67acfmxazb4p1234 at web.yaml:3:5 stays", "image m-bp67acfmxazb4p1234 at "
                                                             "web.yaml:3:5 stays"},
        {"", ""},
        {"(RequestId: unterminated", "("},
    };
    return cr_make_param_array(norm_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(norm_case *c, log, normalise)
{
    char *got = rec_log_normalise(c->in);
    cr_assert_not_null(got);
    cr_assert_str_eq(got, c->out);
    free(got);
}

Test(log, normalise_makes_repeats_equal)
{
    char *a = rec_log_normalise(
        "QuotaExceed: too many (RequestId: 11111111-2222-3333-4444-555555555555)");
    char *b = rec_log_normalise(
        "QuotaExceed: too many (RequestId: 99999999-8888-7777-6666-000000000000)");
    cr_assert_str_eq(a, b);
    free(a);
    free(b);
    cr_assert_null(rec_log_normalise(NULL));
}

/* ---- status.json ---- */

Test(status, round_trip_through_file)
{
    mk_dir();
    rec_status st;
    memset(&st, 0, sizeof(st));
    st.pid = 4242;
    st.state = strdup("idle");
    st.result = strdup("failed");
    st.error = NULL;
    st.cycles = 7;
    st.cycle_start_ms = T0;
    st.cycle_end_ms = T0 + 1500;
    st.next_cycle_ms = T0 + 300000;
    st.last_success_ms = T0 - 60000;
    st.drift = 3;
    st.pending = 2;
    st.done = 1;
    st.failed = 1;
    st.skipped = 1;
    st.suspended = true;
    st.metrics_addr = strdup("127.0.0.1:9780");
    cr_assert_eq(rec_status_add_failure(&st, "swas.cn-hangzhou.custom_image.web",
                                        "QuotaExceed: \"too\" many", 2, T0 + 600000),
                 0);
    cr_assert_eq(rec_status_write(dir, &st), 0);

    rec_status back;
    cr_assert_eq(rec_status_read(dir, &back), 0);
    cr_assert_eq(back.pid, 4242);
    cr_assert_str_eq(back.state, "idle");
    cr_assert_str_eq(back.result, "failed");
    cr_assert_null(back.error);
    cr_assert_eq(back.cycles, 7);
    cr_assert_eq(back.cycle_start_ms, T0);
    cr_assert_eq(back.cycle_end_ms, T0 + 1500);
    cr_assert_eq(back.next_cycle_ms, T0 + 300000);
    cr_assert_eq(back.last_success_ms, T0 - 60000);
    cr_assert_eq(back.drift, 3);
    cr_assert_eq(back.pending, 2);
    cr_assert_eq(back.done, 1);
    cr_assert_eq(back.failed, 1);
    cr_assert_eq(back.skipped, 1);
    cr_assert(back.suspended);
    cr_assert_str_eq(back.metrics_addr, "127.0.0.1:9780");
    cr_assert_eq(back.n_failures, 1);
    cr_assert_str_eq(back.failures[0].address, "swas.cn-hangzhou.custom_image.web");
    cr_assert_str_eq(back.failures[0].message, "QuotaExceed: \"too\" many");
    cr_assert_eq(back.failures[0].count, 2);
    cr_assert_eq(back.failures[0].retry_at_ms, T0 + 600000);

    char *text = rec_status_describe(&back, T0 + 2000);
    cr_assert_not_null(text);
    cr_assert_not_null(strstr(text, "pid 4242, idle (suspended"), "%s", text);
    cr_assert_not_null(strstr(text, "next cycle:   in 4m58s"), "%s", text);
    cr_assert_not_null(strstr(text, "swas.cn-hangzhou.custom_image.web (2 time(s), retry in"), "%s",
                       text);
    free(text);
    rec_status_clear(&back);
    rec_status_clear(&st);
    rec_status_clear(NULL);

    /* No temporary file is left next to it. */
    char tmp[128];
    snprintf(tmp, sizeof(tmp), "%s/.status.json.%ld", dir, (long)getpid());
    cr_assert_neq(access(tmp, F_OK), 0);
    rm_dir();
}

/* ---- status health: what `imgrecon status` exits with ---- */

typedef struct health_case {
    const char *state, *result, *error;
    bool manifests_valid, pid_alive;
    size_t failures;
    uint64_t next_cycle_ms; /* relative to now: 0 none, else now + value - 20 min */
    rec_health want;
    const char *reason_has;
} health_case;

static const health_case health_cases[] = {
    {"idle", "ok", NULL, true, true, 0, 0, REC_HEALTHY, "last cycle succeeded"},
    {"reconciling", "ok", NULL, true, true, 0, 0, REC_HEALTHY, "succeeded"},
    {"idle", "failed", NULL, true, true, 1, 0, REC_FAILING, "did not succeed"},
    {"idle", "error", "observe failed: timeout", true, true, 0, 0, REC_FAILING, "timeout"},
    {"idle", "ok", NULL, true, true, 1, 0, REC_FAILING, "did not succeed"},
    {"idle", "ok", NULL, false, true, 0, 0, REC_NOT_READY, "web.yaml:3:1"},
    {"starting", NULL, NULL, true, true, 0, 0, REC_NOT_READY, "no cycle"},
    {"stopped", "ok", NULL, true, false, 0, 0, REC_NOT_RUNNING, "stopped"},
    {"idle", "ok", NULL, true, false, 0, 0, REC_NOT_RUNNING, "pid"},
    {"idle", "ok", NULL, true, true, 0, 1, REC_NOT_RUNNING, "stale"},
    {"idle", "ok", NULL, true, true, 0, 15 * 60 * 1000, REC_HEALTHY, "succeeded"},
};

Test(status, health_table)
{
    const uint64_t now = 1800000000000ull;
    for (size_t i = 0; i < sizeof(health_cases) / sizeof(health_cases[0]); i++) {
        const health_case *c = &health_cases[i];
        rec_status st;
        memset(&st, 0, sizeof(st));
        st.pid = 42;
        st.state = (char *)c->state;
        st.result = (char *)c->result;
        st.error = (char *)c->error;
        st.manifests_valid = c->manifests_valid;
        st.manifest_error = c->manifests_valid ? NULL : "web.yaml:3:1: syntax error";
        st.n_failures = c->failures;
        st.next_cycle_ms = c->next_cycle_ms ? now + c->next_cycle_ms - 20 * 60 * 1000 : 0;
        const char *why = NULL;
        rec_health h = rec_status_health(&st, c->pid_alive, now, &why);
        cr_expect_eq(h, c->want, "case %zu: %s (%s)", i, rec_health_name(h), why);
        cr_expect_not_null(strstr(why, c->reason_has), "case %zu: %s", i, why);
    }
    cr_assert_str_eq(rec_health_name(REC_NOT_READY), "not ready");
}

/* The readiness fields survive status.json; an old file without them reads as before. */
Test(status, readiness_round_trip_and_old_files)
{
    rec_status st;
    memset(&st, 0, sizeof(st));
    st.state = strdup("idle");
    st.manifests_valid = false;
    st.manifest_error = strdup("a.yaml:1:1: bad");
    st.ready_reason = strdup("manifests invalid: a.yaml:1:1: bad");
    char *text = NULL;
    cr_assert_eq(rec_status_to_json(&st, &text), 0);
    rec_status back;
    cr_assert_eq(rec_status_from_json(text, strlen(text), &back), 0);
    cr_assert(!back.manifests_valid && !back.ready);
    cr_assert_str_eq(back.manifest_error, "a.yaml:1:1: bad");
    cr_assert_str_eq(back.ready_reason, "manifests invalid: a.yaml:1:1: bad");
    rec_status_clear(&back);
    rec_status_clear(&st);
    free(text);
    const char *old = "{\"pid\": 7, \"state\": \"idle\", \"result\": \"ok\"}";
    cr_assert_eq(rec_status_from_json(old, strlen(old), &back), 0);
    cr_assert(back.manifests_valid && back.ready);
    rec_status_clear(&back);
    const char *bad = "{\"ready\": \"yes\"}";
    cr_assert_eq(rec_status_from_json(bad, strlen(bad), &back), -EPROTO);
}

/* Text from the cloud with a UTF-8 character cut in half by a bounded buffer (an owner tag cut
 * by "%.64s", an error cut by "%.500s"): status.json is still written, the cut byte as U+FFFD.
 * It used to fail (jansson refuses such a string) and the file stayed at "reconciling". */
Test(status, text_that_is_not_utf8_is_written_as_u_fffd)
{
    rec_status st;
    memset(&st, 0, sizeof(st));
    st.state = strdup("idle");
    st.result = strdup("error");
    st.error = strdup("rejected: RegionId \xe5\x8c\xba\xe5\x8c");
    st.ready_reason = strdup("last cycle error: rejected: RegionId \xe5\x8c\xba\xe5");
    st.failures = calloc(1, sizeof(*st.failures));
    st.failures[0] = (rec_status_failure){strdup("swas.cn-hangzhou.custom_image.web-a"),
                                          strdup("owner tag became 'xx\xc3'"), 1, 0};
    st.n_failures = 1;
    char *text = NULL;
    cr_assert_eq(rec_status_to_json(&st, &text), 0);
    rec_status back;
    cr_assert_eq(rec_status_from_json(text, strlen(text), &back), 0, "%s", text);
    cr_assert_str_eq(back.error, "rejected: RegionId \xe5\x8c\xba\xef\xbf\xbd\xef\xbf\xbd");
    cr_assert_str_eq(back.ready_reason,
                     "last cycle error: rejected: RegionId \xe5\x8c\xba\xef\xbf\xbd");
    cr_assert_eq(back.n_failures, 1);
    cr_assert_str_eq(back.failures[0].message, "owner tag became 'xx\xef\xbf\xbd'");
    rec_status_clear(&back);
    rec_status_clear(&st);
    free(text);
}

/* HA: the role and the leader survive the file; no role is written as "none" and read back as
 * NULL; the text names both. */
Test(status, ha_role_and_leader)
{
    mk_dir();
    rec_status st;
    memset(&st, 0, sizeof(st));
    st.pid = 7;
    st.state = strdup("idle");
    st.role = strdup("standby");
    st.leader = strdup("host-a:123");
    cr_assert_eq(rec_status_write(dir, &st), 0);
    rec_status back;
    cr_assert_eq(rec_status_read(dir, &back), 0);
    cr_assert_str_eq(back.role, "standby");
    cr_assert_str_eq(back.leader, "host-a:123");
    char *text = rec_status_describe(&back, T0);
    cr_assert_not_null(strstr(text, "role:         standby (leader: host-a:123)"), "%s", text);
    free(text);
    rec_status_clear(&back);
    free(st.role);
    st.role = NULL;
    char *json = NULL;
    cr_assert_eq(rec_status_to_json(&st, &json), 0);
    cr_assert_not_null(strstr(json, "\"role\": \"none\""), "%s", json);
    cr_assert_eq(rec_status_from_json(json, strlen(json), &back), 0);
    cr_assert_null(back.role);
    text = rec_status_describe(&back, T0);
    cr_assert_not_null(strstr(text, "role:         none (no ha configured"), "%s", text);
    free(text);
    free(json);
    rec_status_clear(&back);
    rec_status_clear(&st);
    rm_dir();
}

/* HA metrics appear only once set, with the role and leader as labels. */
Test(metrics, ha_role_and_lease_age)
{
    rec_metrics *m = NULL;
    char *text = NULL;
    cr_assert_eq(rec_metrics_new(&m), 0);
    cr_assert_eq(rec_metrics_render(m, &text), 0);
    cr_assert_null(strstr(text, "imgrecon_ha_role"), "no ha: no ha metrics");
    free(text);
    /* Renewals are stamped on rec_ha's clock, the boot clock (prov_pacer_now_ms). */
    rec_metrics_set_ha(m, "leader", "host-a:1",
                       prov_pacer_now_ms(NULL) * 1000000ull - 1500000000ull);
    cr_assert_eq(rec_metrics_render(m, &text), 0);
    cr_assert_not_null(strstr(text, "imgrecon_ha_role{role=\"leader\",leader=\"host-a:1\"} 1\n"),
                       "%s", text);
    const char *age = strstr(text, "\nimgrecon_ha_lease_age_seconds ");
    cr_assert_not_null(age, "%s", text);
    double v = atof(age + strlen("\nimgrecon_ha_lease_age_seconds "));
    cr_expect(v >= 1.5 && v < 60, "lease age %f", v);
    free(text);
    /* The leader is what the etcd key holds, raw when it is not imgrecon's JSON: bytes that are
     * not UTF-8 made Prometheus refuse the whole scrape ("invalid UTF-8 label value"), and
     * controls reached the terminal of whoever read it. Escaped, like the code label. */
    rec_metrics_set_ha(m, "standby", "evil\xff\r\x1b[2J\"} 1\nimgrecon_ready 1", 0);
    cr_assert_eq(rec_metrics_render(m, &text), 0);
    cr_assert_not_null(strstr(text, "imgrecon_ha_role{role=\"standby\",leader=\"evil\\\\xff\\\\x0d"
                                    "\\\\x1b[2J\\\"} 1\\\\x0aimgrecon_ready 1\"} 1\n"),
                       "%s", text);
    for (const unsigned char *c = (const unsigned char *)text; *c; c++)
        cr_assert(*c == '\n' || (*c >= 0x20 && *c < 0x7f), "byte 0x%02x in:\n%s", *c, text);
    free(text);
    rec_metrics_free(m);
}

Test(status, missing_file_is_enoent)
{
    mk_dir();
    rec_status st;
    cr_assert_eq(rec_status_read(dir, &st), -ENOENT);
    rm_dir();
}

/* A FIFO planted as status.json: `imgrecon status` used to block in open(2) until a writer came
 * (forever); it is refused at once as not a status document. A directory is refused too. */
Test(status, fifo_or_directory_is_refused_without_waiting, .timeout = 10)
{
    mk_dir();
    char path[96];
    snprintf(path, sizeof(path), "%s/status.json", dir);
    cr_assert_eq(mkfifo(path, 0600), 0);
    rec_status st;
    cr_assert_eq(rec_status_read(dir, &st), -EPROTO);
    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(mkdir(path, 0700), 0);
    cr_assert_eq(rec_status_read(dir, &st), -EPROTO);
    cr_assert_eq(rmdir(path), 0);
    rm_dir();
}

typedef struct bad_status {
    char text[96];
} bad_status;

ParameterizedTestParameters(status, malformed_is_eproto)
{
    static bad_status cases[] = {
        {""},
        {"[]"},
        {"{\"pid\": \"12\"}"},
        {"{\"pid\": -1}"},
        {"{\"state\": 3}"},
        {"{\"drift\": 1.5}"},
        {"{\"drift\": 99999999999}"},
        {"{\"cycle_end\": \"yesterday\"}"},
        {"{\"cycle_end\": \"2026-11-22T10:00:00.123\"}"},
        {"{\"suspended\": \"yes\"}"},
        {"{\"failures\": {}}"},
        {"{\"failures\": [{\"address\": 1, \"message\": \"m\"}]}"},
        {"{\"failures\": [{\"address\": \"a\", \"message\": \"m\", \"count\": -2}]}"},
        {"{\"pid\": 1"},
    };
    return cr_make_param_array(bad_status, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(bad_status *c, status, malformed_is_eproto)
{
    rec_status st;
    cr_assert_eq(rec_status_from_json(c->text, strlen(c->text), &st), -EPROTO, "input %s", c->text);
}

/* ---- lock ---- */

Test(lock, second_holder_is_refused_and_named)
{
    mk_dir();
    rec_lock *l = NULL;
    long holder = -1;
    cr_assert_eq(rec_lock_acquire(dir, &l, &holder), 0);
    cr_assert_eq(holder, -1, "untouched on success");
    char *want = rec_lock_path_for(dir);
    cr_assert_str_eq(rec_lock_path(l), want);
    free(want);

    /* A child process (another daemon) cannot take it and learns our pid. */
    pid_t parent = getpid();
    /* The child must not touch Criterion: its reports would name a pid the runner never
     * started. So the fork result is checked only in the parent. */
    pid_t child = fork();
    if (child == 0) {
        rec_lock *other = NULL;
        long h = 0;
        int rc = rec_lock_acquire(dir, &other, &h);
        _exit(rc == -EWOULDBLOCK && h == (long)parent ? 0 : 1);
    }
    cr_assert_gt(child, 0);
    int status;
    cr_assert_eq(waitpid(child, &status, 0), child);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child saw the holder");

    /* After release (or the holder's death) the next one gets it. */
    rec_lock_release(l);
    child = fork();
    if (child == 0) {
        rec_lock *other = NULL;
        int rc = rec_lock_acquire(dir, &other, NULL);
        rec_lock_release(other);
        _exit(rc == 0 ? 0 : 1);
    }
    cr_assert_gt(child, 0);
    cr_assert_eq(waitpid(child, &status, 0), child);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child took the released lock");
    rec_lock_release(NULL);
    rm_dir();
}

Test(lock, missing_directory_is_an_error)
{
    rec_lock *l = NULL;
    cr_assert_eq(rec_lock_acquire("/nonexistent/imgrecon-test", &l, NULL), -ENOENT);
}

/* ---- metrics ---- */

/* Checks every line of an exposition against the text format and returns the value of the
 * sample `name{labels}` (labels "" for none), or -1 when absent. */
static double sample_value(const char *text, const char *series)
{
    regex_t re;
    cr_assert_eq(
        regcomp(
            &re,
            "^[a-zA-Z_:][a-zA-Z0-9_:]*(\\{([a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\.)*\",?)*\\})? "
            "[-+0-9.eEInfa]+$",
            REG_EXTENDED | REG_NOSUB),
        0);
    double found = -1;
    char *copy = strdup(text);
    char *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0)
            continue;
        cr_assert_eq(regexec(&re, line, 0, NULL, 0), 0, "bad exposition line: %s", line);
        size_t n = strlen(series);
        if (strncmp(line, series, n) == 0 && line[n] == ' ')
            found = strtod(line + n + 1, NULL);
    }
    free(copy);
    regfree(&re);
    return found;
}

static rec_metrics *filled_metrics(void)
{
    rec_metrics *m = NULL;
    cr_assert_eq(rec_metrics_new(&m), 0);
    rec_metrics_cycle(m, "ok", 1.5, 3, 0, true, 1795341600.5);
    rec_metrics_cycle(m, "failed", 0.5, 2, 1, false, 1795341700.0);
    rec_metrics_cycle(m, "ok", 1.0, 0, 0, true, 1795341800.0);
    rec_metrics_api_call(m, "ListCustomImages", NULL, false);
    rec_metrics_api_call(m, "ListCustomImages", NULL, false);
    rec_metrics_api_call(m, "CreateCustomImage", "Throttling.User", true);
    rec_metrics_api_call(m, "CreateCustomImage", NULL, false);
    rec_metrics_api_call(m, "Weird\"Action\\", "X", false);
    rec_metrics_set_budget(m, "CreateCustomImage", 7);
    rec_metrics_set_budget(m, "CreateCustomImage", 8);
    return m;
}

Test(metrics, exposition_parses_back)
{
    rec_metrics *m = filled_metrics();
    char *text = NULL;
    cr_assert_eq(rec_metrics_render(m, &text), 0);
    cr_assert_eq(sample_value(text, "imgrecon_reconcile_cycles_total{result=\"ok\"}"), 2);
    cr_assert_eq(sample_value(text, "imgrecon_reconcile_cycles_total{result=\"failed\"}"), 1);
    cr_assert_eq(sample_value(text, "imgrecon_reconcile_duration_seconds_sum"), 3.0);
    cr_assert_eq(sample_value(text, "imgrecon_reconcile_duration_seconds_count"), 3);
    cr_assert_eq(sample_value(text, "imgrecon_drift"), 0);
    cr_assert_eq(sample_value(text, "imgrecon_pending_steps"), 0);
    cr_assert_eq(
        sample_value(text, "imgrecon_api_calls_total{action=\"ListCustomImages\",code=\"OK\"}"), 2);
    cr_assert_eq(sample_value(text, "imgrecon_api_calls_total{action=\"CreateCustomImage\","
                                    "code=\"Throttling.User\"}"),
                 1);
    cr_assert_eq(
        sample_value(text, "imgrecon_api_calls_total{action=\"CreateCustomImage\",code=\"OK\"}"),
        1);
    cr_assert_eq(
        sample_value(text, "imgrecon_api_calls_total{action=\"Weird\\\"Action\\\\\",code=\"X\"}"),
        1);
    cr_assert_eq(sample_value(text, "imgrecon_throttled_calls_total{action=\"CreateCustomImage\"}"),
                 1);
    cr_assert_eq(sample_value(text, "imgrecon_throttled_calls_total{action=\"ListCustomImages\"}"),
                 -1);
    cr_assert_eq(sample_value(text, "imgrecon_budget_left{action=\"CreateCustomImage\"}"), 8);
    cr_assert_eq(sample_value(text, "imgrecon_last_success_timestamp_seconds"), 1795341800.0);
    cr_assert_not_null(strstr(text, "# TYPE imgrecon_api_calls_total counter\n"));
    cr_assert_not_null(strstr(text, "# TYPE imgrecon_budget_left gauge\n"));
    free(text);
    rec_metrics_free(m);
    rec_metrics_free(NULL);
}

/* An endpoint that answers a new error code every time (hostile, or a request id in the code):
 * the family used to grow by one series per call, forever, in the daemon and in every Prometheus
 * that scrapes it. Past 32 codes for an action, a new one counts as code="other". */
Test(metrics, codes_per_action_are_bounded)
{
    rec_metrics *m = NULL;
    cr_assert_eq(rec_metrics_new(&m), 0);
    rec_metrics_api_call(m, "ListCustomImages", NULL, false);
    for (int i = 0; i < 200; i++) {
        char code[32];
        snprintf(code, sizeof(code), "Err.%d", i);
        rec_metrics_api_call(m, "ListCustomImages", code, false);
    }
    rec_metrics_api_call(m, "ListCustomImages", "Err.3", false);
    rec_metrics_api_call(m, "ListCustomImages", NULL, false);
    rec_metrics_api_call(m, "DeleteCustomImage", "Err.999", false);
    char *text = NULL;
    cr_assert_eq(rec_metrics_render(m, &text), 0);
    size_t series = 0;
    for (const char *p = text;
         (p = strstr(p, "\nimgrecon_api_calls_total{action=\"ListCustomImages\"")); p++)
        series++;
    cr_assert_eq(series, 33, "32 codes and other: %zu\n%s", series, text);
    cr_assert_eq(
        sample_value(text, "imgrecon_api_calls_total{action=\"ListCustomImages\",code=\"OK\"}"), 2);
    cr_assert_eq(
        sample_value(text, "imgrecon_api_calls_total{action=\"ListCustomImages\",code=\"Err.3\"}"),
        2, "a known code still counts as itself");
    cr_assert_eq(
        sample_value(text, "imgrecon_api_calls_total{action=\"ListCustomImages\",code=\"other\"}"),
        200 - 31);
    cr_assert_eq(
        sample_value(text,
                     "imgrecon_api_calls_total{action=\"DeleteCustomImage\",code=\"Err.999\"}"),
        1, "each action has its own room");
    free(text);
    rec_metrics_free(m);
}

typedef struct listen_case {
    char spec[32];
    bool allow_remote;
    int rc;
} listen_case;

ParameterizedTestParameters(metrics, parse_listen)
{
    static listen_case cases[] = {
        {"127.0.0.1:9780", false, 0},
        {"127.9.9.9:0", false, 0},
        {"[::1]:9780", false, 0},
        {"0.0.0.0:9780", false, -EPERM},
        {"0.0.0.0:9780", true, 0},
        {"[::]:9780", false, -EPERM},
        {"10.1.2.3:80", false, -EPERM},
        {"localhost:9780", false, -EINVAL},
        {"127.0.0.1", false, -EINVAL},
        {"127.0.0.1:", false, -EINVAL},
        {"127.0.0.1:70000", false, -EINVAL},
        {"127.0.0.1:12a", false, -EINVAL},
        {"::1:9780", false, -EINVAL},
        {"[::1]9780", false, -EINVAL},
        {":9780", false, -EINVAL},
        {"", false, -EINVAL},
    };
    return cr_make_param_array(listen_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(listen_case *c, metrics, parse_listen)
{
    struct sockaddr_storage ss;
    socklen_t len;
    cr_assert_eq(rec_metrics_parse_listen(c->spec, c->allow_remote, &ss, &len), c->rc, "spec %s",
                 c->spec);
}

typedef struct body {
    char buf[16384];
    size_t len;
} body;

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    body *b = ud;
    size_t k = size * n;
    if (b->len + k >= sizeof(b->buf))
        return 0;
    memcpy(b->buf + b->len, p, k);
    b->len += k;
    b->buf[b->len] = '\0';
    return k;
}

/* GET url on loopback; returns the HTTP status (0 on a transport error). */
static long http_get(const char *url, body *b)
{
    CURL *c = curl_easy_init();
    cr_assert_not_null(c);
    b->len = 0;
    b->buf[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    long code = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    return code;
}

Test(metrics, served_on_port_zero_with_healthz)
{
    rec_metrics *m = filled_metrics();
    char *bound = NULL;
    cr_assert_eq(rec_metrics_serve(m, "0.0.0.0:0", false, &bound), -EPERM);
    cr_assert_eq(rec_metrics_serve(m, "127.0.0.1:0", false, &bound), 0);
    cr_assert_eq(strncmp(bound, "127.0.0.1:", 10), 0);
    cr_assert_neq(strcmp(bound, "127.0.0.1:0"), 0, "the real port is reported");
    char url[128];
    body *b = malloc(sizeof(*b));

    snprintf(url, sizeof(url), "http://%s/healthz", bound);
    cr_assert_eq(http_get(url, b), 503, "unhealthy before the first load");
    rec_metrics_set_health(m, true, NULL);
    cr_assert_eq(http_get(url, b), 200);
    cr_assert_str_eq(b->buf, "ok\n");

    snprintf(url, sizeof(url), "http://%s/readyz", bound);
    cr_assert_eq(http_get(url, b), 503, "not ready before the first cycle");
    cr_assert_str_eq(b->buf, "no cycle yet\n");
    rec_metrics_set_ready(m, false, "manifests invalid: a.yaml:1:1: bad");
    cr_assert_eq(http_get(url, b), 503);
    cr_assert_str_eq(b->buf, "manifests invalid: a.yaml:1:1: bad\n");
    /* The last cycle's error quotes the cloud: one line, escaped, whatever it holds. */
    rec_metrics_set_ready(m, false,
                          "last cycle error: RegionId cn-x\n\x1b[2J\x1b]0;pwned\x07READY=1 \xe5");
    cr_assert_eq(http_get(url, b), 503);
    cr_assert_str_eq(
        b->buf, "last cycle error: RegionId cn-x\\x0a\\x1b[2J\\x1b]0;pwned\\x07READY=1 \\xe5\n");
    rec_metrics_set_ready(m, true, NULL);
    cr_assert_eq(http_get(url, b), 200);
    cr_assert_str_eq(b->buf, "ready\n");

    snprintf(url, sizeof(url), "http://%s/metrics", bound);
    cr_assert_eq(http_get(url, b), 200);
    cr_assert_eq(
        sample_value(b->buf, "imgrecon_api_calls_total{action=\"ListCustomImages\",code=\"OK\"}"),
        2);
    rec_metrics_api_call(m, "ListCustomImages", NULL, false);
    cr_assert_eq(http_get(url, b), 200);
    cr_assert_eq(
        sample_value(b->buf, "imgrecon_api_calls_total{action=\"ListCustomImages\",code=\"OK\"}"),
        3, "a scrape sees updates");

    snprintf(url, sizeof(url), "http://%s/nope", bound);
    cr_assert_eq(http_get(url, b), 404);
    rec_metrics_stop(m);
    snprintf(url, sizeof(url), "http://%s/metrics", bound);
    cr_assert_eq(http_get(url, b), 0, "stopped: connection refused");
    free(b);
    free(bound);
    rec_metrics_free(m);
}

/* ---- backoff ---- */

Test(backoff, schedule_doubles_and_caps)
{
    const uint64_t min = 60000, hour = 3600000;
    uint64_t want[] = {min, 2 * min, 4 * min, 8 * min, 16 * min, 32 * min, hour, hour};
    for (unsigned n = 1; n <= 8; n++)
        cr_assert_eq(rec_backoff_delay(min, hour, n), want[n - 1], "n=%u", n);
    cr_assert_eq(rec_backoff_delay(min, hour, 4000), hour, "no overflow");
}

Test(backoff, skip_retry_and_reset_across_cycles)
{
    rec_backoff *b = NULL;
    const uint64_t base = 1000, t0 = 1000000;
    cr_assert_eq(rec_backoff_new(base, 8000, 100, &b), 0);
    const char *web = "swas.r.custom_image.web";
    const char *db = "swas.r.custom_image.db";
    cr_assert_not(rec_backoff_skip(b, web, t0));

    /* Cycle 1: web fails. Retry after 1 s (minus the jitter slack). */
    cr_assert_eq(rec_backoff_note(b, web, "QuotaExceed: x"), 0);
    const char *f1[] = {web, web};
    cr_assert_eq(rec_backoff_cycle_end(b, f1, 2, t0), 0);
    size_t n;
    const rec_backoff_entry *e = rec_backoff_entries(b, &n);
    cr_assert_eq(n, 1);
    cr_assert_eq(e[0].failures, 1, "two failed steps of one item are one failure");
    cr_assert_eq(e[0].retry_at_ms, t0 + 900);
    cr_assert_str_eq(e[0].message, "QuotaExceed: x");
    cr_assert(rec_backoff_skip(b, web, t0 + 899));
    cr_assert_not(rec_backoff_skip(b, db, t0 + 899));

    /* Cycle 2 (skipped web): it stays with its count. */
    cr_assert_eq(rec_backoff_cycle_end(b, NULL, 0, t0 + 899), 0);
    e = rec_backoff_entries(b, &n);
    cr_assert_eq(n, 1);
    cr_assert_eq(e[0].failures, 1);

    /* Cycle 3: retried and failed again: 2 s, then 4 s, 8 s, capped at 8 s. */
    uint64_t now = t0 + 1000;
    uint64_t expect[] = {2000, 4000, 8000, 8000};
    for (unsigned i = 0; i < 4; i++) {
        cr_assert_not(rec_backoff_skip(b, web, now));
        const char *f[] = {web};
        cr_assert_eq(rec_backoff_cycle_end(b, f, 1, now), 0);
        e = rec_backoff_entries(b, &n);
        cr_assert_eq(e[0].failures, i + 2);
        cr_assert_eq(e[0].retry_at_ms, now + expect[i] - 100);
        now = e[0].retry_at_ms;
    }

    /* Retried and succeeded (not in the failed list, not skipped): forgotten. */
    cr_assert_not(rec_backoff_skip(b, web, now));
    cr_assert_eq(rec_backoff_cycle_end(b, NULL, 0, now), 0);
    rec_backoff_entries(b, &n);
    cr_assert_eq(n, 0);
    cr_assert_not(rec_backoff_skip(b, web, now));

    /* Reset forgets failing items at once (manifest changed). */
    const char *f2[] = {db};
    cr_assert_eq(rec_backoff_cycle_end(b, f2, 1, now), 0);
    cr_assert(rec_backoff_skip(b, db, now + 1));
    rec_backoff_reset(b);
    cr_assert_not(rec_backoff_skip(b, db, now + 1));
    rec_backoff_free(b);
    rec_backoff_free(NULL);
}

/* ---- sd_notify ---- */

/* A receiver at dir/notify.sock, named by NOTIFY_SOCKET for rec_notify (caller frees). */
static test_notify *notify_open(void)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/notify.sock", dir);
    test_notify *n = test_notify_open(path);
    cr_assert_eq(setenv("NOTIFY_SOCKET", path, 1), 0);
    return n;
}

/* The next datagram, waiting at most 5 s. */
static void recv_msg(test_notify *n, char *buf, size_t size)
{
    char *m = test_notify_recv(n, 5000);
    cr_assert_not_null(m, "a notify message arrives");
    snprintf(buf, size, "%s", m);
    free(m);
}

Test(notify, messages_reach_notify_socket)
{
    char msg[1024];
    cr_assert_eq(unsetenv("NOTIFY_SOCKET"), 0);
    cr_assert_eq(rec_notify_ready(), 0, "no socket: nothing sent, no error");
    mk_dir();
    test_notify *n = notify_open();

    cr_assert_gt(rec_notify_ready(), 0);
    recv_msg(n, msg, sizeof(msg));
    cr_assert_str_eq(msg, "READY=1");

    cr_assert_gt(rec_notify_status("last ok: 1 done"), 0);
    recv_msg(n, msg, sizeof(msg));
    cr_assert_str_eq(msg, "STATUS=last ok: 1 done");

    cr_assert_gt(rec_notify_reloading(), 0);
    recv_msg(n, msg, sizeof(msg));
    unsigned long long usec = 0;
    cr_assert_eq(sscanf(msg, "RELOADING=1\nMONOTONIC_USEC=%llu", &usec), 1, "got %s", msg);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    cr_assert_gt(usec, 0);
    cr_assert_leq(usec, (unsigned long long)now.tv_sec * 1000000ull + now.tv_nsec / 1000);

    cr_assert_gt(rec_notify_watchdog(), 0);
    recv_msg(n, msg, sizeof(msg));
    cr_assert_str_eq(msg, "WATCHDOG=1");

    cr_assert_gt(rec_notify_stopping(), 0);
    recv_msg(n, msg, sizeof(msg));
    cr_assert_str_eq(msg, "STOPPING=1");
    test_notify_free(n);
    rm_dir();
}

/* ---- The notify sender beside libsystemd's ---- */

/* How a case's NOTIFY_SOCKET is formed: as written, under the test's directory, in the abstract
 * namespace (with this pid, so parallel runs do not meet), or a path one byte too long. */
typedef enum { ADDR_RAW, ADDR_IN_DIR, ADDR_ABSTRACT, ADDR_TOO_LONG } addr_kind;

typedef struct notify_case {
    addr_kind kind;
    const char *name; /* NULL with ADDR_RAW: NOTIFY_SOCKET unset */
    bool receiver;    /* a receiver is bound at the address */
    bool plain_file;  /* a regular file is at the address */
} notify_case;

static const notify_case notify_cases[] = {
    {ADDR_RAW, NULL, false, false},
    {ADDR_RAW, "", false, false},
    {ADDR_RAW, "/", false, false},
    {ADDR_RAW, "@", false, false},
    {ADDR_RAW, "notify.sock", false, false},
    {ADDR_RAW, "x/notify.sock", false, false},
    {ADDR_RAW, "vsock:2:1234", false, false},
    {ADDR_IN_DIR, "n.sock", true, false},
    {ADDR_ABSTRACT, "imgrecon-n", true, false},
    {ADDR_IN_DIR, "gone.sock", false, false},
    {ADDR_IN_DIR, "file", false, true},
    {ADDR_ABSTRACT, "imgrecon-none", false, false},
    {ADDR_TOO_LONG, NULL, false, false},
};

ParameterizedTestParameters(notify, sender_matches_libsystemd)
{
    return test_param_indices(sizeof(notify_cases) / sizeof(notify_cases[0]));
}

/* The address of case c in out; sets NOTIFY_SOCKET to it (or unsets it). */
static void notify_case_env(const notify_case *c, char *out, size_t size)
{
    switch (c->kind) {
    case ADDR_RAW:
        snprintf(out, size, "%s", c->name ? c->name : "");
        break;
    case ADDR_IN_DIR:
        snprintf(out, size, "%s/%s", dir, c->name);
        break;
    case ADDR_ABSTRACT:
        snprintf(out, size, "@%s-%ld", c->name, (long)getpid());
        break;
    case ADDR_TOO_LONG: {
        struct sockaddr_un sa;
        int n = snprintf(out, size, "%s/", dir);
        memset(out + n, 'x', sizeof(sa.sun_path) - (size_t)n);
        out[sizeof(sa.sun_path)] = '\0'; /* no room left for the terminating NUL */
        break;
    }
    }
    if (c->kind == ADDR_RAW && c->name == NULL)
        cr_assert_eq(unsetenv("NOTIFY_SOCKET"), 0);
    else
        cr_assert_eq(setenv("NOTIFY_SOCKET", out, 1), 0);
}

/* For every form of NOTIFY_SOCKET, rec_notify returns what libsystemd's sd_notify returns, and
 * where a receiver listens both datagrams arrive, byte for byte the same. */
ParameterizedTest(size_t *i, notify, sender_matches_libsystemd)
{
    const notify_case *c = &notify_cases[*i];
    char addr[256];
    mk_dir();
    notify_case_env(c, addr, sizeof(addr));
    test_notify *n = c->receiver ? test_notify_open(addr) : NULL;
    if (c->plain_file)
        cr_assert_eq(close(open(addr, O_CREAT | O_WRONLY | O_CLOEXEC, 0600)), 0);

    int ours = rec_notify_status("last ok: 1 done");
    int theirs = sd_notify(0, "STATUS=last ok: 1 done");
    cr_assert_eq(ours, theirs, "NOTIFY_SOCKET=%s: rec_notify %d (%s), sd_notify %d (%s)", addr,
                 ours, strerror(-ours), theirs, strerror(-theirs));
    if (n != NULL) {
        char a[256], b[256];
        recv_msg(n, a, sizeof(a));
        recv_msg(n, b, sizeof(b));
        cr_assert_str_eq(a, b);
        cr_assert_str_eq(a, "STATUS=last ok: 1 done");
    }
    test_notify_free(n);
    rm_dir();
}

typedef struct watchdog_case {
    const char *usec, *pid; /* NULL: unset; pid "self": this process's pid */
} watchdog_case;

static const watchdog_case watchdog_cases[] = {
    {NULL, NULL},
    {NULL, "self"},
    {"2000000", "self"},
    {"2000000", NULL},
    {"2000000", "1"},
    {"2000000", "0"},
    {"2000000", "-1"},
    {"2000000", ""},
    {"2000000", "abc"},
    {"2000000", "99999999999999999999"},
    {"1", "self"},
    {"18446744073709551614", NULL},
    {"18446744073709551615", NULL},
    {"18446744073709551616", NULL},
    {"0", NULL},
    {"", NULL},
    {"abc", NULL},
    {"-5", NULL},
    {"2000000x", NULL},
};

ParameterizedTestParameters(notify, watchdog_matches_libsystemd)
{
    return test_param_indices(sizeof(watchdog_cases) / sizeof(watchdog_cases[0]));
}

static void set_or_unset(const char *var, const char *value)
{
    if (value == NULL)
        cr_assert_eq(unsetenv(var), 0);
    else
        cr_assert_eq(setenv(var, value, 1), 0);
}

/* The watchdog period read from WATCHDOG_USEC and WATCHDOG_PID: the same answer and the same
 * period as libsystemd's sd_watchdog_enabled, for good, foreign and malformed values. */
ParameterizedTest(size_t *i, notify, watchdog_matches_libsystemd)
{
    const watchdog_case *c = &watchdog_cases[*i];
    char self[32];
    snprintf(self, sizeof(self), "%ld", (long)getpid());
    set_or_unset("WATCHDOG_USEC", c->usec);
    set_or_unset("WATCHDOG_PID", c->pid && strcmp(c->pid, "self") == 0 ? self : c->pid);
    uint64_t ours_usec = 7, theirs_usec = 7;
    int ours = rec_notify_watchdog_usec(&ours_usec);
    int theirs = sd_watchdog_enabled(0, &theirs_usec);
    cr_assert_eq(ours > 0, theirs > 0, "USEC=%s PID=%s: ours %d, libsystemd %d", c->usec, c->pid,
                 ours, theirs);
    cr_assert_eq(ours < 0, theirs < 0, "USEC=%s PID=%s: ours %d, libsystemd %d", c->usec, c->pid,
                 ours, theirs);
    if (ours > 0)
        cr_assert_eq(ours_usec, theirs_usec);
    else
        cr_assert_eq(ours_usec, 7, "written only on success");
}

Test(notify, status_line_content)
{
    rec_notify_budget b[] = {{"ListCustomImages", 9, 10}, {"CreateCustomImage", 10, 10}};
    char *line = rec_notify_status_line("ok", 3, 0, 299500, 0, b, 2, 0);
    cr_assert_str_eq(line, "last ok: 3 done, 0 failed; next cycle in 5m00s; 0 pending; budget "
                           "ListCustomImages 9/10, CreateCustomImage 10/10");
    free(line);
    line = rec_notify_status_line(NULL, 0, 0, UINT64_MAX, 4, NULL, 0, 1);
    cr_assert_str_eq(line, "suspended; no cycle yet; no next cycle; 4 pending");
    free(line);
}

/* ---- Setup: an insecure endpoint is refused before anything else ------------------------- */

/* The loaders refuse it with a position; this is the last line before a request: setup returns
 * -EPERM without creating the state directory, reading credentials or opening a connection. */
Test(setup, refuses_plain_http_to_remote_host_first)
{
    char state[] = "/tmp/imgrecon-setup-XXXXXX";
    cr_assert_not_null(mkdtemp(state));
    char sub[64];
    snprintf(sub, sizeof(sub), "%s/state", state);
    uv_loop_t loop;
    cr_assert_eq(uv_loop_init(&loop), 0);
    spec_config cfg;
    cr_assert_eq(spec_config_init(&cfg), 0);
    free(cfg.state_dir);
    cfg.state_dir = strdup(sub);
    cfg.endpoint = strdup("http://192.0.2.1:8080");
    rec_setup *s = NULL;
    char *msg = NULL;
    cr_assert_eq(rec_setup_new(&loop, &cfg, NULL, &s, &msg), -EPERM);
    cr_expect_null(s, "*ret was written on failure");
    cr_assert_not_null(msg);
    cr_expect_not_null(strstr(msg, "endpoint: uses plain http:// to a host that is not loopback"),
                       "%s", msg);
    cr_expect_neq(access(sub, F_OK), 0, "the state directory was created before the refusal");
    free(msg);
    spec_config_clear(&cfg);
    cr_assert_eq(uv_loop_close(&loop), 0);
    cr_assert_eq(rmdir(state), 0);
}

/* ---- Setup: frees itself from its client's last close callback -------------------------- */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void count_closed(void *ud)
{
    (*(int *)ud)++;
}

static void on_cancelled(json_t *answer, const prov_error *err, void *ud)
{
    (void)answer;
    *(int *)ud = err != NULL && err->sys == -ECANCELED ? 1 : -1;
}

/* A reload replaces a setup while a call may be queued: rec_setup_close cancels it, and the
 * setup (credentials included) is freed from the client's last close callback, after which the
 * owner's on_closed runs once; nothing is kept for later (ASan and valgrind check the free). */
Test(setup, frees_itself_from_the_last_close_callback)
{
    char state[] = "/tmp/imgrecon-setup-XXXXXX";
    cr_assert_not_null(mkdtemp(state));
    cr_assert_eq(setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAIsetupTestKey", 1), 0);
    cr_assert_eq(setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "setup-test-secret", 1), 0);
    uv_loop_t loop;
    cr_assert_eq(uv_loop_init(&loop), 0);
    spec_config cfg;
    cr_assert_eq(spec_config_init(&cfg), 0);
    free(cfg.state_dir);
    cfg.state_dir = strdup(state);
    cfg.endpoint = strdup("http://127.0.0.1:9");
    cfg.account_id = strdup("1234567890"); /* no STS call to learn it */
    rec_setup *s = NULL;
    char *msg = NULL;
    rec_setup_opts so = {.state_dir_explicit = true, .no_metadata = true};
    cr_assert_eq(rec_setup_new(&loop, &cfg, &so, &s, &msg), 0, "%s", msg ? msg : "");
    cr_assert_not_null(s);
    int answered = 0, closed = 0;
    cr_assert_eq(prov_call(s->client, PROV_SWAS, "ListCustomImages", "cn-hangzhou", NULL,
                           on_cancelled, &answered),
                 0);
    rec_setup_close(s, count_closed, &closed);
    cr_expect_eq(closed, 0, "on_closed ran before the client's handles had closed");
    (void)uv_run(&loop, UV_RUN_DEFAULT);
    cr_expect_eq(answered, 1, "the queued call was not cancelled (%d)", answered);
    cr_expect_eq(closed, 1, "on_closed ran %d times", closed);
    cr_expect_eq(uv_loop_close(&loop), 0, "handles left open");
    spec_config_clear(&cfg);
    (void)nftw(state, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}
