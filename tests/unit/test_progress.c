/* Apply's progress output and event stream without a cloud: rec_progress (plain lines and the
 * terminal's status line), the wait gate that keeps files and logs quiet, and rec_applyjson's
 * lines under a strict reader. Text from the cloud (names, ids, errors) carries terminal
 * controls here and must come out escaped. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rec_applyjson.h"
#include "rec_progress.h"

#define ADDR "swas.cn-hangzhou.custom_image.web"
#define EVIL "m-1\033]0;pwned\007"

static rec_event step(rec_event_kind kind, const char *action, const char *image_id,
                      const char *text)
{
    return (rec_event){.kind = kind,
                       .address = ADDR,
                       .action = action,
                       .image_id = image_id,
                       .text = text,
                       .n_total = 2};
}

static rec_event waiting(rec_wait_for w, uint64_t waited_ms)
{
    return (rec_event){.kind = REC_EV_WAITING,
                       .text = "next CreateCustomImage call",
                       .wait_ms = 2000,
                       .waited_ms = waited_ms,
                       .wait_for = w,
                       .n_total = 2};
}

/* Runs events through a plain (not a terminal) progress writer; returns what it printed. */
static char *plain(const rec_event *evs, size_t n, bool tty)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    rec_progress *p = NULL;
    cr_assert_eq(rec_progress_new(f, tty, false, &p), 0);
    for (size_t i = 0; i < n; i++)
        rec_progress_event(p, &evs[i]);
    rec_progress_finish(p);
    rec_progress_free(p);
    fclose(f);
    return buf;
}

Test(progress, plain_lines_name_each_step_and_its_image)
{
    rec_event evs[] = {
        step(REC_EV_STEP_START, "create", NULL, NULL),
        step(REC_EV_STEP_DONE, "create", "m-new", "m-new"),
        step(REC_EV_STEP_START, "retag", "m-old", NULL), /* a kind added later: by its name */
        step(REC_EV_STEP_FAILED, "retag", "m-old", "web.yaml:3:5: retag web: Forbidden"),
    };
    char *out = plain(evs, 4, false);
    cr_expect_str_eq(out, "create " ADDR ": started\n"
                          "create " ADDR ": done (m-new)\n"
                          "retag " ADDR ": started (m-old)\n"
                          "retag " ADDR ": failed: web.yaml:3:5: retag web: Forbidden\n");
    free(out);
}

Test(progress, cloud_text_is_escaped)
{
    rec_event evs[] = {
        step(REC_EV_STEP_START, "delete", EVIL, NULL),
        step(REC_EV_STEP_FAILED, "delete", EVIL, "boom \033[2J"),
    };
    char *out = plain(evs, 2, false);
    cr_expect(strchr(out, '\033') == NULL, "no raw ESC: %s", out);
    cr_expect(strchr(out, '\007') == NULL, "no raw BEL: %s", out);
    cr_expect_not_null(strstr(out, "started (m-1"), "%s", out);
    free(out);
}

/* Without a terminal a wait is shown once it has lasted 3 s, then at most every 15 s while
 * waits of that kind go on (even when the oldest image is done and the next one has waited long
 * too); another kind of wait is shown on its own. */
Test(progress, wait_gate_is_quiet_for_short_waits_and_repeats_seldom)
{
    rec_wait_gate g = {0};
    static const struct {
        rec_wait_for w;
        uint64_t at, waited;
        bool shown;
    } seq[] = {
        {REC_WAIT_IMAGE_BUILD, 1000, 1000, false},  {REC_WAIT_IMAGE_BUILD, 2000, 2000, false},
        {REC_WAIT_IMAGE_BUILD, 3000, 3000, true},   {REC_WAIT_IMAGE_BUILD, 4000, 4000, false},
        {REC_WAIT_IMAGE_BUILD, 5000, 3500, false},  {REC_WAIT_IMAGE_BUILD, 17000, 16000, false},
        {REC_WAIT_IMAGE_BUILD, 18000, 17000, true}, {REC_WAIT_IMAGE_BUILD, 19000, 18000, false},
        {REC_WAIT_RATE_LIMIT, 20000, 3000, true},   {REC_WAIT_RATE_LIMIT, 21000, 4000, false},
        {REC_WAIT_IMAGE_BUILD, 22000, 2000, false}, {REC_WAIT_IMAGE_BUILD, 23000, 3000, true},
        {REC_WAIT_IMAGE_BUILD, 38000, 18000, true},
    };
    for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
        rec_event ev = waiting(seq[i].w, seq[i].waited);
        ev.at_ms = seq[i].at;
        cr_expect_eq(rec_wait_gate_pass(&g, &ev), seq[i].shown, "event %zu (at %llu ms)", i,
                     (unsigned long long)seq[i].at);
    }
    rec_event start = step(REC_EV_STEP_START, "create", NULL, NULL);
    cr_expect(!rec_wait_gate_pass(&g, &start), "only waiting events pass");
}

Test(progress, waiting_lines_say_what_and_how_long)
{
    rec_event evs[] = {waiting(REC_WAIT_RATE_LIMIT, 1000), waiting(REC_WAIT_RATE_LIMIT, 3200)};
    char *out = plain(evs, 2, false);
    cr_expect_str_eq(out, "waiting for the rate limit: next CreateCustomImage call in 2s; "
                          "waited 3s so far\n");
    free(out);
    rec_event build = waiting(REC_WAIT_IMAGE_BUILD, 12000);
    build.image_id = EVIL;
    char line[256];
    cr_assert_gt(rec_wait_describe(&build, line, sizeof(line)), 0);
    cr_expect(strncmp(line, "waiting for image build (m-1", 28) == 0, "%s", line);
    cr_expect(strchr(line, '\033') == NULL, "escaped: %s", line);
    cr_expect_not_null(strstr(line, "waited 12s so far"), "%s", line);
}

/* On a terminal the wait is in the status line, with how long it has waited. */
Test(progress, terminal_status_line_shows_the_wait)
{
    rec_event evs[] = {step(REC_EV_STEP_START, "create", NULL, NULL),
                       waiting(REC_WAIT_RATE_LIMIT, 6000)};
    char *out = plain(evs, 2, true);
    cr_expect_not_null(strstr(out, "create " ADDR ": started\n"), "%s", out);
    cr_expect_not_null(strstr(out, "[0/2] creating web ... next CreateCustomImage call in 2s "
                                   "(waited 6s)"),
                       "%s", out);
    free(out);
}

/* rec_applyjson: strict JSON lines, seq in order, typed fields, escapes for cloud text. */
Test(progress, apply_json_lines_are_strict_and_typed)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    rec_applyjson *w = NULL;
    cr_assert_eq(rec_applyjson_new(f, &w), 0);
    rec_event evs[] = {
        step(REC_EV_STEP_START, "create", NULL, NULL),
        waiting(REC_WAIT_IMAGE_BUILD, 1000), /* too short: not written */
        waiting(REC_WAIT_IMAGE_BUILD, 3000),
        step(REC_EV_STEP_DONE, "create", EVIL, EVIL),
        step(REC_EV_STEP_FAILED, "share", EVIL, "Forbidden \xc2\x9b"),
    };
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
        rec_applyjson_event(w, &evs[i]);
    rec_applyjson_end end = {.result = "incomplete", .exit_code = 1, .n_done = 1, .n_failed = 1};
    rec_applyjson_summary(w, &end);
    rec_applyjson_free(w);
    fclose(f);
    cr_expect(strchr(buf, '\033') == NULL && strstr(buf, "\xc2\x9b") == NULL, "escaped: %s", buf);
    static const char *const kinds[] = {"step_started", "waiting", "step_done", "step_failed",
                                        "summary"};
    const char *p = buf;
    for (size_t i = 0; i < 5; i++) {
        const char *nl = strchr(p, '\n');
        cr_assert_not_null(nl, "line %zu missing in:\n%s", i, buf);
        json_error_t e;
        json_t *o = json_loadb(p, (size_t)(nl - p), JSON_REJECT_DUPLICATES, &e);
        cr_assert_not_null(o, "line %zu: %s", i, e.text);
        cr_expect_str_eq(json_string_value(json_object_get(o, "event")), kinds[i]);
        cr_expect_eq(json_integer_value(json_object_get(o, "seq")), (json_int_t)i + 1);
        if (i == 1)
            cr_expect_eq(json_integer_value(json_object_get(o, "waited_ms")), 3000);
        if (i == 2)
            cr_expect_str_eq(json_string_value(json_object_get(o, "image_id")), EVIL);
        if (i == 4) {
            cr_expect_eq(json_integer_value(json_object_get(o, "exit_code")), 1);
            cr_expect_eq(
                json_integer_value(json_object_get(json_object_get(o, "done_by_action"), "create")),
                1);
        }
        json_decref(o);
        p = nl + 1;
    }
    cr_expect_str_eq(p, "", "nothing after the summary");
    free(buf);
}
