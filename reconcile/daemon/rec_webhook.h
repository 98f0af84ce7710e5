/* Webhook notifications (cmd/README.md, config `notify:`): events of the daemon (applied,
 * failed, manifest_error, refused, drift, recovered, leadership) POSTed to every configured URL
 * that asked for them, as JSON ({"event", "owner", "host", "time", "summary", "items": [{"address",
 * "action", "image_id", "result", "message"}]}), Slack ({"text"}) or DingTalk ({"msgtype":
 * "text", "text": {"content"}}). With a secret_file, the header `X-Imgrecon-Signature:
 * sha256=<hex HMAC-SHA256 of the body>`. Delivery runs on the daemon's loop (through provider's
 * prov_http.h), never blocks or fails a cycle, retries with doubling backoff a bounded number of
 * times, and keeps a bounded queue: a notification that does not fit, or whose last attempt
 * fails, is dropped and reported (the daemon counts it in imgrecon_notify_dropped_total). The
 * secret never leaves this module: it is not in the payload nor in any report, and it is wiped
 * when freed. Called by rec_daemon.c and by `imgrecon notify-test` (cmd/cmd_notify.c). */
#ifndef REC_WEBHOOK_H
#define REC_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "spec_config.h"

typedef struct rec_webhook rec_webhook;

/* One item of a notification; every field may be NULL (JSON null). Borrowed. */
typedef struct rec_webhook_item {
    const char *address;
    const char *action;
    const char *image_id;
    const char *result; /* "done", "failed", "refused", "conflict", "planned" */
    const char *message;
} rec_webhook_item;

/* What one delivery attempt came to, for the caller's log and metrics. */
typedef struct rec_webhook_report {
    const char *target; /* scheme://host[:port] of the URL: the path may hold a token */
    const char *event;
    unsigned attempt;  /* 1-based */
    bool ok;           /* a 2xx answer */
    bool will_retry;   /* failed, another attempt is scheduled */
    bool dropped;      /* never delivered: queue full, or the last attempt failed */
    long status;       /* HTTP status, 0 without an answer */
    const char *error; /* why it failed; NULL when ok */
} rec_webhook_report;

typedef void (*rec_webhook_report_fn)(void *ud, const rec_webhook_report *r);

typedef struct rec_webhook_opts {
    const char *owner;               /* copied */
    const char *host;                /* copied; NULL: gethostname() */
    size_t max_queue;                /* notifications under way or waiting to retry; 0: 64 */
    unsigned max_attempts;           /* 0: 4 */
    uint64_t retry_base_ms;          /* first retry delay, doubled each time up to 60 s; 0: 1000 */
    long timeout_ms;                 /* per attempt; 0: 10000 */
    rec_webhook_report_fn on_report; /* may be NULL */
    void *ud;
} rec_webhook_opts;

/* A notifier with no targets on loop (borrowed). Returns 0 and *ret, or a negative errno. */
int rec_webhook_new(uv_loop_t *loop, const rec_webhook_opts *opts, rec_webhook **ret);
/* Replaces the targets with cfg's `notify` entries (borrowed, copied), reading each secret_file
 * (refused when group or others may read it, or empty). On an error nothing changes and
 * *ret_error (caller frees) names the file; the secret's text is never in it. Notifications under
 * way keep going. Returns 0 or a negative errno. */
int rec_webhook_configure(rec_webhook *w, const spec_notify *targets, size_t n, char **ret_error);
/* Names owner (copied) in every notification queued from now on: the daemon calls it on each
 * reload, as `owner` may change with the config. Returns 0, or -ENOMEM (the owner is kept). */
int rec_webhook_set_owner(rec_webhook *w, const char *owner);
/* The secrets read by the last configure, for the caller's log scrubbing: the i-th one, NULL
 * when none. Borrowed until the next configure. */
const char *rec_webhook_secret(const rec_webhook *w, size_t i);
size_t rec_webhook_n_targets(const rec_webhook *w);
/* Queues one notification to every target whose events include event (SPEC_EV_*); event 0 is a
 * test, sent to every target. Never blocks. Returns how many were queued (drops are reported
 * through on_report). */
size_t rec_webhook_send(rec_webhook *w, unsigned event, const char *summary,
                        const rec_webhook_item *items, size_t n_items);
/* Notifications under way or waiting to retry. */
size_t rec_webhook_pending(const rec_webhook *w);
/* Cancels what is under way (not reported), closes the handles; memory goes from the loop's
 * close callbacks, so the loop must run after it. Accepts NULL. */
void rec_webhook_free(rec_webhook *w);

/* The body for a format (enum spec_notify_format); time_ms is wall-clock milliseconds. Returns 0
 * with *ret (caller frees) or -ENOMEM. Exposed for tests. */
int rec_webhook_render(int format, const char *event, const char *owner, const char *host,
                       uint64_t time_ms, const char *summary, const rec_webhook_item *items,
                       size_t n_items, char **ret);
/* "sha256=" and the lowercase hex HMAC-SHA256 of body under secret, into out (72 bytes). */
void rec_webhook_sign(const char *secret, size_t secret_len, const char *body, size_t body_len,
                      char out[72]);

#endif
