/* Webhook notifications (reconcile/daemon/rec_webhook.c) against the loopback receiver
 * (tests/support/hook_recv.c), on a real libuv loop: the three payload shapes, the HMAC header
 * checked by the receiver's own HMAC, event filtering, bounded retries against a receiver that
 * is down or failing, drops when the queue is full, secret files refused when too open, and a
 * secret that never appears in a body or a report. Every loop run is bounded by a timer. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "hook_recv.h"
#include "rec_webhook.h"

#define SECRET "s3cret-webhook-key"

typedef struct reports {
    size_t ok, retried, dropped, total;
    char text[8192]; /* every report's strings, to look for the secret */
} reports;

static void on_report(void *ud, const rec_webhook_report *r)
{
    reports *rs = ud;
    rs->total++;
    rs->ok += r->ok;
    rs->retried += r->will_retry;
    rs->dropped += r->dropped;
    size_t n = strlen(rs->text);
    snprintf(rs->text + n, sizeof(rs->text) - n, "%s %s %s\n", r->target, r->event,
             r->error ? r->error : "");
}

static void on_deadline(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

/* Runs the loop until nothing is pending or ms passed; true when drained. */
static bool drain(uv_loop_t *loop, rec_webhook *w, long ms)
{
    uv_timer_t t;
    int expired = 0;
    uv_timer_init(loop, &t);
    t.data = &expired;
    uv_timer_start(&t, on_deadline, (uint64_t)ms, 0);
    while (rec_webhook_pending(w) > 0 && !expired)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return rec_webhook_pending(w) == 0;
}

static void close_all(uv_loop_t *loop, rec_webhook *w)
{
    rec_webhook_free(w);
    uv_run(loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(loop), 0, "every handle closed");
}

static char secret_path[64];

static void write_secret(mode_t mode)
{
    strcpy(secret_path, "/tmp/imgrecon-hook-XXXXXX");
    int fd = mkstemp(secret_path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, SECRET "\n", strlen(SECRET) + 1), (ssize_t)strlen(SECRET) + 1);
    cr_assert_eq(fchmod(fd, mode), 0);
    close(fd);
}

static const rec_webhook_item items[] = {
    {"swas.cn-hangzhou.custom_image.web", "create", "m-abc123", "done", NULL},
    {"swas.cn-hangzhou.custom_image.api", "share", NULL, "failed", "quota \"exceeded\""},
};

Test(webhook, payload_shapes)
{
    char *body = NULL;
    cr_assert_eq(rec_webhook_render(SPEC_NOTIFY_JSON, "applied", "team", "host1", 1700000000123,
                                    "2 step(s) done", items, 2, &body),
                 0);
    json_t *o = json_loads(body, 0, NULL);
    cr_assert_not_null(o, "%s", body);
    cr_assert_str_eq(json_string_value(json_object_get(o, "event")), "applied");
    cr_assert_str_eq(json_string_value(json_object_get(o, "owner")), "team");
    cr_assert_str_eq(json_string_value(json_object_get(o, "host")), "host1");
    cr_assert_str_eq(json_string_value(json_object_get(o, "time")), "2023-11-14T22:13:20.123Z");
    cr_assert_str_eq(json_string_value(json_object_get(o, "summary")), "2 step(s) done");
    json_t *it = json_array_get(json_object_get(o, "items"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(it, "image_id")), "m-abc123");
    cr_assert_str_eq(json_string_value(json_object_get(it, "action")), "create");
    cr_assert(json_is_null(json_object_get(it, "message")));
    it = json_array_get(json_object_get(o, "items"), 1);
    cr_assert(json_is_null(json_object_get(it, "image_id")));
    cr_assert_str_eq(json_string_value(json_object_get(it, "message")), "quota \"exceeded\"");
    json_decref(o);
    free(body);

    cr_assert_eq(rec_webhook_render(SPEC_NOTIFY_SLACK, "failed", "team", "h", 0, "1 failed",
                                    items + 1, 1, &body),
                 0);
    o = json_loads(body, 0, NULL);
    cr_assert_eq(json_object_size(o), 1, "slack: only text");
    const char *text = json_string_value(json_object_get(o, "text"));
    cr_assert_not_null(strstr(text, "[imgrecon team@h] failed: 1 failed"), "%s", text);
    cr_assert_not_null(strstr(text, "swas.cn-hangzhou.custom_image.api"), "%s", text);
    json_decref(o);
    free(body);

    cr_assert_eq(
        rec_webhook_render(SPEC_NOTIFY_DINGTALK, "drift", "team", "h", 0, "x", NULL, 0, &body), 0);
    o = json_loads(body, 0, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(o, "msgtype")), "text");
    cr_assert_not_null(
        strstr(json_string_value(json_object_get(json_object_get(o, "text"), "content")), "drift"));
    json_decref(o);
    free(body);
}

/* A message from the cloud with a character cut in half (bytes that are not UTF-8) is sent with
 * U+FFFD in its place, in every format. It used to make the payload fail to build, and the
 * notification was lost without a log line or a count. */
Test(webhook, text_that_is_not_utf8_is_sent_as_u_fffd)
{
    static const rec_webhook_item cut[] = {
        {"swas.cn-hangzhou.custom_image.web-a", "delete", NULL, "failed",
         "refused: the image's imgrecon/owner tag became 'xx\xc3'; no call made"},
    };
    static const int formats[] = {SPEC_NOTIFY_JSON, SPEC_NOTIFY_SLACK, SPEC_NOTIFY_DINGTALK};
    for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
        char *body = NULL;
        cr_assert_eq(rec_webhook_render(formats[i], "failed", "team", "h\xe5", 0,
                                        "1 step(s) failed \xe5\x8c", cut, 1, &body),
                     0, "format %d", formats[i]);
        json_t *o = json_loads(body, 0, NULL);
        cr_assert_not_null(o, "%s", body);
        cr_assert_not_null(strstr(body, "became 'xx\xef\xbf\xbd'"), "%s", body);
        cr_assert_not_null(strstr(body, "failed \xef\xbf\xbd\xef\xbf\xbd"), "%s", body);
        json_decref(o);
        free(body);
    }
}

/* RFC 4231 test case 2. */
Test(webhook, hmac_known_answer)
{
    char sig[72];
    const char *data = "what do ya want for nothing?";
    rec_webhook_sign("Jefe", 4, data, strlen(data), sig);
    cr_assert_str_eq(sig,
                     "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

Test(webhook, signed_delivery_and_event_filter)
{
    hook_recv *all = NULL, *only_failed = NULL;
    cr_assert_eq(hook_recv_start(SECRET, &all), 0);
    cr_assert_eq(hook_recv_start(NULL, &only_failed), 0);
    write_secret(0600);
    spec_notify t[] = {
        {(char *)hook_recv_url(all), SPEC_NOTIFY_JSON, secret_path, SPEC_EV_ALL},
        {(char *)hook_recv_url(only_failed), SPEC_NOTIFY_SLACK, NULL, SPEC_EV_FAILED},
    };
    uv_loop_t loop;
    uv_loop_init(&loop);
    reports rs = {0};
    rec_webhook_opts o = {.owner = "team", .host = "h", .on_report = on_report, .ud = &rs};
    rec_webhook *w = NULL;
    cr_assert_eq(rec_webhook_new(&loop, &o, &w), 0);
    char *err = NULL;
    cr_assert_eq(rec_webhook_configure(w, t, 2, &err), 0, "%s", err ? err : "");
    unlink(secret_path);

    cr_assert_eq(rec_webhook_send(w, SPEC_EV_APPLIED, "1 step(s) done", items, 1), 1,
                 "applied goes only to the target that wants it");
    cr_assert_eq(rec_webhook_send(w, SPEC_EV_FAILED, "1 step(s) failed", items + 1, 1), 2);
    cr_assert(drain(&loop, w, 10000));
    json_t *b = hook_recv_wait(all, "applied", 0, 5000);
    cr_assert_not_null(b);
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(b, "items"), 0), "image_id")),
                     "m-abc123");
    json_decref(b);
    cr_assert_eq(hook_recv_count(all), 2);
    cr_assert_eq(hook_recv_bad_signatures(all), 0, "every signature verified by the receiver");
    cr_assert_eq(hook_recv_count(only_failed), 1);
    cr_assert_eq(hook_recv_bad_signatures(only_failed), 0, "no signature without a secret");
    cr_assert_eq(rs.ok, 3);

    /* The secret is nowhere in what was sent or reported. */
    json_t *bodies = hook_recv_all(all);
    char *dump = json_dumps(bodies, 0);
    cr_assert_null(strstr(dump, SECRET));
    cr_assert_null(strstr(rs.text, SECRET));
    free(dump);
    json_decref(bodies);

    close_all(&loop, w);
    hook_recv_stop(all);
    hook_recv_stop(only_failed);
}

/* The owner a reload sets names every notification queued after it (the daemon calls
 * rec_webhook_set_owner from each reload; `owner` may change with the config). */
Test(webhook, a_new_owner_names_later_notifications)
{
    hook_recv *r = NULL;
    cr_assert_eq(hook_recv_start(NULL, &r), 0);
    spec_notify t[] = {{(char *)hook_recv_url(r), SPEC_NOTIFY_JSON, NULL, SPEC_EV_ALL}};
    uv_loop_t loop;
    uv_loop_init(&loop);
    rec_webhook_opts o = {.owner = "team-a", .host = "h"};
    rec_webhook *w = NULL;
    cr_assert_eq(rec_webhook_new(&loop, &o, &w), 0);
    cr_assert_eq(rec_webhook_configure(w, t, 1, NULL), 0);
    cr_assert_eq(rec_webhook_send(w, SPEC_EV_DRIFT, "before", NULL, 0), 1);
    cr_assert(drain(&loop, w, 10000));
    cr_assert_eq(rec_webhook_set_owner(w, "team-b"), 0);
    cr_assert_eq(rec_webhook_send(w, SPEC_EV_DRIFT, "after", NULL, 0), 1);
    cr_assert(drain(&loop, w, 10000));
    json_t *all = hook_recv_all(r);
    cr_assert_eq(json_array_size(all), 2);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(all, 0), "owner")), "team-a");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(all, 1), "owner")), "team-b");
    json_decref(all);
    close_all(&loop, w);
    hook_recv_stop(r);
}

Test(webhook, receiver_down_retries_are_bounded)
{
    char url[64];
    hook_recv_dead_url(url, sizeof(url));
    spec_notify t[] = {{url, SPEC_NOTIFY_JSON, NULL, SPEC_EV_ALL}};
    uv_loop_t loop;
    uv_loop_init(&loop);
    reports rs = {0};
    rec_webhook_opts o = {.owner = "team",
                          .max_attempts = 3,
                          .retry_base_ms = 20,
                          .timeout_ms = 2000,
                          .on_report = on_report,
                          .ud = &rs};
    rec_webhook *w = NULL;
    cr_assert_eq(rec_webhook_new(&loop, &o, &w), 0);
    cr_assert_eq(rec_webhook_configure(w, t, 1, NULL), 0);
    cr_assert_eq(rec_webhook_send(w, SPEC_EV_FAILED, "x", NULL, 0), 1);
    cr_assert(drain(&loop, w, 10000), "gave up within the bound");
    cr_assert_eq(rs.total, 3, "exactly max_attempts attempts");
    cr_assert_eq(rs.retried, 2);
    cr_assert_eq(rs.dropped, 1);
    cr_assert_eq(rs.ok, 0);
    close_all(&loop, w);
}

Test(webhook, failing_receiver_then_recovers_and_4xx_is_not_retried)
{
    hook_recv *r = NULL;
    cr_assert_eq(hook_recv_start(NULL, &r), 0);
    spec_notify t[] = {{(char *)hook_recv_url(r), SPEC_NOTIFY_JSON, NULL, SPEC_EV_ALL}};
    uv_loop_t loop;
    uv_loop_init(&loop);
    reports rs = {0};
    rec_webhook_opts o = {
        .max_attempts = 4, .retry_base_ms = 20, .on_report = on_report, .ud = &rs};
    rec_webhook *w = NULL;
    cr_assert_eq(rec_webhook_new(&loop, &o, &w), 0);
    cr_assert_eq(rec_webhook_configure(w, t, 1, NULL), 0);
    hook_recv_set_answer(r, 503, 0);
    cr_assert_eq(rec_webhook_send(w, SPEC_EV_DRIFT, "x", NULL, 0), 1);
    cr_assert(drain(&loop, w, 10000));
    cr_assert_eq(hook_recv_count(r), 4, "503: retried up to the bound");
    cr_assert_eq(rs.dropped, 1);

    hook_recv_set_answer(r, 404, 0);
    cr_assert_eq(rec_webhook_send(w, SPEC_EV_DRIFT, "x", NULL, 0), 1);
    cr_assert(drain(&loop, w, 10000));
    cr_assert_eq(hook_recv_count(r), 5, "404 is permanent: one attempt");
    cr_assert_eq(rs.dropped, 2);

    hook_recv_set_answer(r, 200, 0);
    cr_assert_eq(rec_webhook_send(w, SPEC_EV_RECOVERED, "x", NULL, 0), 1);
    cr_assert(drain(&loop, w, 10000));
    cr_assert_eq(rs.ok, 1);
    close_all(&loop, w);
    hook_recv_stop(r);
}

Test(webhook, slow_receiver_fills_the_bounded_queue)
{
    hook_recv *r = NULL;
    cr_assert_eq(hook_recv_start(NULL, &r), 0);
    hook_recv_set_answer(r, 200, 300);
    spec_notify t[] = {{(char *)hook_recv_url(r), SPEC_NOTIFY_JSON, NULL, SPEC_EV_ALL}};
    uv_loop_t loop;
    uv_loop_init(&loop);
    reports rs = {0};
    rec_webhook_opts o = {.max_queue = 2, .on_report = on_report, .ud = &rs};
    rec_webhook *w = NULL;
    cr_assert_eq(rec_webhook_new(&loop, &o, &w), 0);
    cr_assert_eq(rec_webhook_configure(w, t, 1, NULL), 0);
    size_t queued = 0;
    for (int i = 0; i < 5; i++)
        queued += rec_webhook_send(w, SPEC_EV_DRIFT, "x", NULL, 0);
    cr_assert_eq(queued, 2, "never more than max_queue under way");
    cr_assert_eq(rs.dropped, 3, "the others dropped and reported at once");
    cr_assert(drain(&loop, w, 10000));
    cr_assert_eq(rs.ok, 2);
    close_all(&loop, w);
    hook_recv_stop(r);
}

Test(webhook, secret_file_too_open_is_refused_without_showing_it)
{
    write_secret(0644);
    spec_notify t[] = {{"http://127.0.0.1:9/x", SPEC_NOTIFY_JSON, secret_path, SPEC_EV_ALL}};
    uv_loop_t loop;
    uv_loop_init(&loop);
    rec_webhook_opts o = {0};
    rec_webhook *w = NULL;
    cr_assert_eq(rec_webhook_new(&loop, &o, &w), 0);
    char *err = NULL;
    cr_assert_eq(rec_webhook_configure(w, t, 1, &err), -EACCES);
    cr_assert_not_null(err);
    cr_assert_not_null(strstr(err, secret_path), "%s", err);
    cr_assert_not_null(strstr(err, "group or others"), "%s", err);
    cr_assert_null(strstr(err, SECRET));
    cr_assert_eq(rec_webhook_n_targets(w), 0, "nothing changed");
    free(err);
    unlink(secret_path);
    err = NULL;
    cr_assert_eq(rec_webhook_configure(w, t, 1, &err), -ENOENT);
    free(err);
    close_all(&loop, w);
}
