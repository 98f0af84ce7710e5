/* Webhook notifications (see rec_webhook.h): payload rendering with jansson, HMAC-SHA256
 * signatures with OpenSSL, a bounded set of jobs each with its own retry timer, POSTs through
 * provider's asynchronous HTTP client (prov_http.h) on the caller's loop. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "prov_http.h"
#include "prov_types.h"
#include "rec_escape.h"
#include "rec_webhook.h"

#define DEFAULT_QUEUE 64u
#define DEFAULT_ATTEMPTS 4u
#define DEFAULT_RETRY_MS 1000u
#define MAX_RETRY_MS 60000u
#define DEFAULT_TIMEOUT_MS 10000L
#define MAX_SECRET_BYTES 4096u

typedef struct target {
    char *url;
    char *label; /* scheme://host[:port], what reports show */
    int format;
    unsigned events;
    char *secret; /* NULL: unsigned */
    size_t secret_len;
} target;

typedef struct job job;

struct rec_webhook {
    uv_loop_t *loop;
    prov_http *http; /* every attempt's timeout is o.timeout_ms; answers' bodies are dropped */
    rec_webhook_opts o;
    char *owner, *host;
    target *targets;
    size_t n_targets;
    job *jobs; /* under way or waiting, doubly linked */
    size_t n_jobs;
};

/* One notification to one target: its own copies (the targets may be replaced by a reload) and
 * its own retry timer, closed (and the job freed) when the job ends. */
struct job {
    rec_webhook *w;
    char *url, *label, *event, *body;
    size_t body_len;
    prov_kvs headers; /* Content-Type, and the signature when signed */
    unsigned attempt;
    uv_timer_t timer;
    job *prev, *next;
};

/* ---- targets and secrets ---- */

static void wipe_free(char *s, size_t n)
{
    if (s != NULL)
        OPENSSL_cleanse(s, n);
    free(s);
}

static void targets_free(target *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].url);
        free(v[i].label);
        wipe_free(v[i].secret, v[i].secret_len);
    }
    free(v);
}

/* scheme://host[:port] of a URL: the path and query of a Slack or DingTalk hook are its token. */
static char *url_label(const char *url)
{
    const char *sep = strstr(url, "://");
    const char *host = sep ? sep + 3 : url;
    size_t n = strcspn(host, "/?#");
    const char *at = memrchr(host, '@', n); /* user:password@ is never shown */
    if (at != NULL) {
        n -= (size_t)(at + 1 - host);
        host = at + 1;
    }
    char *out = NULL;
    if (asprintf(&out, "%.*s://%.*s", sep ? (int)(sep - url) : 0, url, (int)n, host) < 0)
        return NULL;
    return out;
}

/* Reads a secret file the way credentials files are read: the descriptor is checked, a file
 * group or others may read is refused, trailing newlines are dropped, empty is refused. */
static int read_secret(const char *path, char **ret, size_t *ret_len, char **ret_error)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    int rc = 0;
    if (fd < 0 || fstat(fd, &st) < 0) {
        rc = -errno;
        if (asprintf(ret_error, "notify secret_file %s: %s", path, strerror(-rc)) < 0)
            *ret_error = NULL;
        if (fd >= 0)
            (void)close(fd);
        return rc;
    }
    const char *why = !S_ISREG(st.st_mode)      ? "not a regular file"
                      : (st.st_mode & 077) != 0 ? "readable by group or others (chmod 600)"
                      : (size_t)st.st_size > MAX_SECRET_BYTES ? "larger than 4096 bytes"
                                                              : NULL;
    char *buf = why ? NULL : calloc(1, MAX_SECRET_BYTES + 1);
    ssize_t n = 0;
    while (buf != NULL && n < (ssize_t)MAX_SECRET_BYTES) {
        ssize_t r = read(fd, buf + n, MAX_SECRET_BYTES - (size_t)n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            n = r < 0 ? -1 : n;
            break;
        }
        n += r;
    }
    (void)close(fd);
    if (why == NULL && buf == NULL)
        return -ENOMEM;
    if (why == NULL && n < 0)
        why = "cannot be read";
    while (why == NULL && n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    if (why == NULL && n <= 0)
        why = "is empty";
    if (why != NULL) {
        wipe_free(buf, MAX_SECRET_BYTES + 1);
        if (asprintf(ret_error, "notify secret_file %s: %s", path, why) < 0)
            *ret_error = NULL;
        return -EACCES;
    }
    *ret = buf;
    *ret_len = (size_t)n;
    return 0;
}

int rec_webhook_configure(rec_webhook *w, const spec_notify *t, size_t n, char **ret_error)
{
    target *v = calloc(n ? n : 1, sizeof(*v));
    if (v == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        v[i].format = t[i].format;
        v[i].events = t[i].events;
        v[i].url = strdup(t[i].url);
        v[i].label = url_label(t[i].url);
        int rc = v[i].url && v[i].label ? 0 : -ENOMEM;
        if (rc == 0 && t[i].secret_file != NULL)
            rc = read_secret(t[i].secret_file, &v[i].secret, &v[i].secret_len, ret_error);
        if (rc < 0) {
            targets_free(v, i + 1);
            return rc;
        }
    }
    targets_free(w->targets, w->n_targets);
    w->targets = v;
    w->n_targets = n;
    return 0;
}

const char *rec_webhook_secret(const rec_webhook *w, size_t i)
{
    return i < w->n_targets ? w->targets[i].secret : NULL;
}

size_t rec_webhook_n_targets(const rec_webhook *w)
{
    return w ? w->n_targets : 0;
}

/* ---- rendering and signing ---- */

/* The text of slack and dingtalk messages: a headline and one line per item. */
static char *render_text(const char *event, const char *owner, const char *host,
                         const char *summary, const rec_webhook_item *items, size_t n)
{
    char *out = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&out, &len);
    if (m == NULL)
        return NULL;
    fprintf(m, "[imgrecon %s@%s] %s: %s", owner, host, event, summary ? summary : "");
    for (size_t i = 0; i < n; i++) {
        const rec_webhook_item *it = &items[i];
        fprintf(m, "\n- %s %s", it->action ? it->action : "", it->address ? it->address : "");
        if (it->image_id)
            fprintf(m, " (%s)", it->image_id);
        if (it->result)
            fprintf(m, ": %s", it->result);
        if (it->message)
            fprintf(m, ": %s", it->message);
    }
    if (fclose(m) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* ISO 8601 UTC with milliseconds. */
static void iso_time(uint64_t ms, char out[40])
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&secs, &tm) == NULL)
        memset(&tm, 0, sizeof(tm));
    (void)snprintf(out, 40, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1,
                   tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(ms % 1000));
}

static json_t *json_payload(const char *event, const char *owner, const char *host,
                            uint64_t time_ms, const char *summary, const rec_webhook_item *items,
                            size_t n)
{
    char ts[40];
    iso_time(time_ms, ts);
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < n; i++) {
        const rec_webhook_item *it = &items[i];
        json_t *o =
            json_pack("{s:o, s:o, s:o, s:o, s:o}", "address", rec_json_text(it->address), "action",
                      rec_json_text(it->action), "image_id", rec_json_text(it->image_id), "result",
                      rec_json_text(it->result), "message", rec_json_text(it->message));
        if (o == NULL || json_array_append_new(arr, o) < 0) {
            json_decref(arr);
            return NULL;
        }
    }
    if (arr == NULL)
        return NULL;
    return json_pack("{s:s, s:o, s:o, s:s, s:o, s:o}", "event", event, "owner",
                     rec_json_text(owner), "host", rec_json_text(host), "time", ts, "summary",
                     rec_json_text(summary ? summary : ""), "items", arr);
}

int rec_webhook_render(int format, const char *event, const char *owner, const char *host,
                       uint64_t time_ms, const char *summary, const rec_webhook_item *items,
                       size_t n_items, char **ret)
{
    json_t *o = NULL;
    if (format == SPEC_NOTIFY_JSON) {
        o = json_payload(event, owner, host, time_ms, summary, items, n_items);
    } else {
        char *text = render_text(event, owner, host, summary, items, n_items);
        if (text == NULL)
            return -ENOMEM;
        o = format == SPEC_NOTIFY_SLACK ? json_pack("{s:o}", "text", rec_json_text(text))
                                        : json_pack("{s:s, s:{s:o}}", "msgtype", "text", "text",
                                                    "content", rec_json_text(text));
        free(text);
    }
    char *body = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (body == NULL)
        return -ENOMEM;
    *ret = body;
    return 0;
}

void rec_webhook_sign(const char *secret, size_t secret_len, const char *body, size_t body_len,
                      char out[72])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "sha256=", 7);
    if (HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)body, body_len, mac,
             &mac_len) == NULL)
        mac_len = 0;
    for (unsigned i = 0; i < mac_len && i < 32; i++) {
        out[7 + 2 * i] = hex[mac[i] >> 4];
        out[8 + 2 * i] = hex[mac[i] & 15];
    }
    out[7 + 2 * (mac_len < 32 ? mac_len : 32)] = '\0';
    OPENSSL_cleanse(mac, sizeof(mac));
}

/* ---- jobs ---- */

/* Wall-clock milliseconds: the payload's "time". */
static uint64_t wall_ms(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void job_closed(uv_handle_t *h)
{
    job *j = h->data;
    free(j->url);
    free(j->label);
    free(j->event);
    free(j->body);
    prov_kvs_clear(&j->headers);
    free(j);
}

/* Ends a job: out of the list, its timer closed, memory freed from the close callback. */
static void job_end(job *j)
{
    rec_webhook *w = j->w;
    if (j->prev)
        j->prev->next = j->next;
    else
        w->jobs = j->next;
    if (j->next)
        j->next->prev = j->prev;
    w->n_jobs--;
    (void)uv_timer_stop(&j->timer);
    uv_close((uv_handle_t *)&j->timer, job_closed);
}

static void report(rec_webhook *w, const rec_webhook_report *r)
{
    if (w->o.on_report != NULL)
        w->o.on_report(w->o.ud, r);
}

static void job_post(job *j);

static void on_retry(uv_timer_t *t)
{
    job_post(t->data);
}

/* A permanent answer: a client error other than timeout and rate limiting is not retried. */
static bool permanent(long status)
{
    return status >= 400 && status < 500 && status != 408 && status != 429;
}

/* prov_http's callback for one attempt: reports it, then ends the job or arms its retry. */
static void on_answer(const prov_http_response *res, void *ud)
{
    job *j = ud;
    rec_webhook *w = j->w;
    int err = res->err;
    long status = res->status;
    const char *errmsg = res->errmsg;
    if (err == -ECANCELED)
        return; /* rec_webhook_free: the job is closed there */
    bool ok = err == 0 && status >= 200 && status < 300;
    char why[256];
    if (err != 0)
        (void)snprintf(why, sizeof(why), "%s", errmsg ? errmsg : strerror(-err));
    else
        (void)snprintf(why, sizeof(why), "HTTP %ld", status);
    bool retry = !ok && j->attempt < w->o.max_attempts && !(err == 0 && permanent(status));
    rec_webhook_report r = {j->label, j->event,      j->attempt,       ok,
                            retry,    !ok && !retry, err ? 0 : status, ok ? NULL : why};
    report(w, &r);
    if (!retry) {
        job_end(j);
        return;
    }
    uint64_t delay = w->o.retry_base_ms;
    for (unsigned i = 1; i < j->attempt && delay < MAX_RETRY_MS; i++)
        delay *= 2;
    (void)uv_timer_start(&j->timer, on_retry, delay < MAX_RETRY_MS ? delay : MAX_RETRY_MS, 0);
}

static void job_post(job *j)
{
    rec_webhook *w = j->w;
    j->attempt++;
    int rc =
        prov_http_request(w->http, "POST", j->url, &j->headers, j->body, j->body_len, on_answer, j);
    if (rc < 0) {
        rec_webhook_report r = {j->label, j->event, j->attempt, false,
                                false,    true,     0,          strerror(-rc)};
        report(w, &r);
        job_end(j);
    }
}

/* Builds and starts one job for target t; reports a drop when the queue is full. */
static bool job_start(rec_webhook *w, const target *t, const char *event, const char *summary,
                      const rec_webhook_item *items, size_t n_items)
{
    if (w->n_jobs >= w->o.max_queue) {
        rec_webhook_report r = {t->label, event, 0, false, false, true, 0, "queue full"};
        report(w, &r);
        return false;
    }
    job *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return false;
    j->w = w;
    j->url = strdup(t->url);
    j->label = strdup(t->label);
    j->event = strdup(event);
    int rc = rec_webhook_render(t->format, event, w->owner, w->host, wall_ms(), summary, items,
                                n_items, &j->body);
    if (rc == 0)
        rc = prov_kvs_add(&j->headers, "Content-Type", "application/json; charset=utf-8");
    if (rc == 0 && t->secret != NULL) {
        char sig[72];
        j->body_len = strlen(j->body);
        rec_webhook_sign(t->secret, t->secret_len, j->body, j->body_len, sig);
        rc = prov_kvs_add(&j->headers, "X-Imgrecon-Signature", sig);
    }
    if (rc < 0 || j->url == NULL || j->label == NULL || j->event == NULL ||
        uv_timer_init(w->loop, &j->timer) != 0) {
        j->timer.data = j;
        job_closed((uv_handle_t *)&j->timer);
        return false;
    }
    j->body_len = strlen(j->body);
    j->timer.data = j;
    j->next = w->jobs;
    if (w->jobs)
        w->jobs->prev = j;
    w->jobs = j;
    w->n_jobs++;
    job_post(j);
    return true;
}

size_t rec_webhook_send(rec_webhook *w, unsigned event, const char *summary,
                        const rec_webhook_item *items, size_t n_items)
{
    const char *name = event == 0 ? "test" : spec_notify_event_name(event);
    size_t queued = 0;
    if (w == NULL || name == NULL)
        return 0;
    for (size_t i = 0; i < w->n_targets; i++)
        if (event == 0 || (w->targets[i].events & event) != 0)
            queued += job_start(w, &w->targets[i], name, summary, items, n_items);
    return queued;
}

size_t rec_webhook_pending(const rec_webhook *w)
{
    return w ? w->n_jobs : 0;
}

int rec_webhook_new(uv_loop_t *loop, const rec_webhook_opts *opts, rec_webhook **ret)
{
    rec_webhook *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return -ENOMEM;
    w->loop = loop;
    w->o = *opts;
    if (w->o.max_queue == 0)
        w->o.max_queue = DEFAULT_QUEUE;
    if (w->o.max_attempts == 0)
        w->o.max_attempts = DEFAULT_ATTEMPTS;
    if (w->o.retry_base_ms == 0)
        w->o.retry_base_ms = DEFAULT_RETRY_MS;
    if (w->o.timeout_ms <= 0)
        w->o.timeout_ms = DEFAULT_TIMEOUT_MS;
    char host[256] = "";
    if (opts->host == NULL && gethostname(host, sizeof(host) - 1) < 0)
        (void)snprintf(host, sizeof(host), "unknown");
    w->owner = strdup(opts->owner ? opts->owner : "default");
    w->host = strdup(opts->host ? opts->host : host);
    w->o.owner = w->o.host = NULL;
    /* One timeout bounds both the connection and the whole attempt; only the answer's status
     * counts, so its body is dropped, whatever its size. ca_file stays NULL: webhooks trust the
     * system store only. */
    prov_http_opts ho = {
        .connect_timeout_ms = w->o.timeout_ms, .timeout_ms = w->o.timeout_ms, .discard_body = true};
    int rc = w->owner && w->host ? prov_http_new(loop, &ho, &w->http) : -ENOMEM;
    if (rc < 0) {
        free(w->owner);
        free(w->host);
        free(w);
        return rc;
    }
    *ret = w;
    return 0;
}

int rec_webhook_set_owner(rec_webhook *w, const char *owner)
{
    char *copy = strdup(owner ? owner : "default");
    if (copy == NULL)
        return -ENOMEM;
    free(w->owner);
    w->owner = copy;
    return 0;
}

void rec_webhook_free(rec_webhook *w)
{
    if (w == NULL)
        return;
    prov_http_close(w->http); /* answers come back -ECANCELED and are ignored */
    while (w->jobs != NULL)
        job_end(w->jobs);
    targets_free(w->targets, w->n_targets);
    free(w->owner);
    free(w->host);
    free(w);
}
