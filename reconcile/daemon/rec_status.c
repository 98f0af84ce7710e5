/* status.json: serialisation with jansson, atomic writes, the human summary (see rec_status.h). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rec_escape.h"
#include "rec_status.h"
#include "prov_statedir.h"

void rec_status_clear(rec_status *st)
{
    if (st == NULL)
        return;
    free(st->state);
    free(st->result);
    free(st->error);
    free(st->metrics_addr);
    free(st->manifest_error);
    free(st->ready_reason);
    free(st->role);
    free(st->leader);
    for (size_t i = 0; i < st->n_failures; i++) {
        free(st->failures[i].address);
        free(st->failures[i].message);
    }
    free(st->failures);
    for (size_t i = 0; i < st->n_warnings; i++) {
        free(st->warnings[i].address);
        free(st->warnings[i].message);
    }
    free(st->warnings);
    memset(st, 0, sizeof(*st));
}

/* Appends one entry to a failure-shaped list; shared by failures and warnings. */
static int add_entry(rec_status_failure **v, size_t *n, const char *address, const char *message,
                     unsigned count, uint64_t retry_at_ms)
{
    rec_status_failure *grown = realloc(*v, (*n + 1) * sizeof(**v));
    if (grown == NULL)
        return -ENOMEM;
    *v = grown;
    rec_status_failure *f = &grown[*n];
    f->address = strdup(address ? address : "");
    f->message = strdup(message ? message : "");
    if (f->address == NULL || f->message == NULL) {
        free(f->address);
        free(f->message);
        return -ENOMEM;
    }
    f->count = count;
    f->retry_at_ms = retry_at_ms;
    (*n)++;
    return 0;
}

int rec_status_add_warning(rec_status *st, const char *address, const char *message, unsigned count)
{
    return add_entry(&st->warnings, &st->n_warnings, address, message, count, 0);
}

int rec_status_add_failure(rec_status *st, const char *address, const char *message, unsigned count,
                           uint64_t retry_at_ms)
{
    return add_entry(&st->failures, &st->n_failures, address, message, count, retry_at_ms);
}

/* ISO 8601 UTC with milliseconds, or JSON null for 0. */
static json_t *time_json(uint64_t ms)
{
    if (ms == 0)
        return json_null();
    char ts[80];
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&secs, &tm) == NULL)
        return json_null();
    (void)snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
                   tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                   (unsigned)(ms % 1000));
    return json_string(ts);
}

/* Parses what time_json wrote; 0 for null. Returns 0 or -EPROTO. */
static int time_parse(json_t *v, uint64_t *ret)
{
    if (v == NULL || json_is_null(v)) {
        *ret = 0;
        return 0;
    }
    const char *s = json_string_value(v);
    struct tm tm;
    unsigned ms;
    char z;
    memset(&tm, 0, sizeof(tm));
    if (s == NULL ||
        sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3u%c", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms, &z) != 8 ||
        z != 'Z' || ms > 999)
        return -EPROTO;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t secs = timegm(&tm);
    if (secs < 0)
        return -EPROTO;
    *ret = (uint64_t)secs * 1000u + ms;
    return 0;
}

int rec_status_to_json(const rec_status *st, char **ret)
{
    json_t *o = json_object();
    json_t *fails = json_array();
    json_t *warns = json_array();
    int bad = o == NULL || fails == NULL || warns == NULL;

    for (size_t i = 0; !bad && i < st->n_failures; i++) {
        const rec_status_failure *f = &st->failures[i];
        json_t *fo = json_pack("{s:o, s:o, s:I, s:o}", "address", rec_json_text(f->address),
                               "message", rec_json_text(f->message), "count", (json_int_t)f->count,
                               "retry_at", time_json(f->retry_at_ms));
        bad |= fo == NULL || json_array_append_new(fails, fo) < 0;
    }
    for (size_t i = 0; !bad && i < st->n_warnings; i++) {
        const rec_status_failure *w = &st->warnings[i];
        json_t *wo = json_pack("{s:o, s:o, s:I}", "address", rec_json_text(w->address), "message",
                               rec_json_text(w->message), "count", (json_int_t)w->count);
        bad |= wo == NULL || json_array_append_new(warns, wo) < 0;
    }
    if (!bad) {
        bad |= json_object_set_new(o, "format_version", json_integer(REC_STATUS_FORMAT_VERSION));
        bad |= json_object_set_new(o, "pid", json_integer(st->pid));
        bad |= json_object_set_new(o, "state", rec_json_text(st->state));
        bad |= json_object_set_new(o, "result", rec_json_text(st->result));
        bad |= json_object_set_new(o, "error", rec_json_text(st->error));
        bad |= json_object_set_new(o, "cycles", json_integer((json_int_t)st->cycles));
        bad |= json_object_set_new(o, "cycle_start", time_json(st->cycle_start_ms));
        bad |= json_object_set_new(o, "cycle_end", time_json(st->cycle_end_ms));
        bad |= json_object_set_new(o, "next_cycle", time_json(st->next_cycle_ms));
        bad |= json_object_set_new(o, "last_success", time_json(st->last_success_ms));
        bad |= json_object_set_new(o, "drift", json_integer(st->drift));
        bad |= json_object_set_new(o, "pending", json_integer(st->pending));
        bad |= json_object_set_new(o, "done", json_integer(st->done));
        bad |= json_object_set_new(o, "failed", json_integer(st->failed));
        bad |= json_object_set_new(o, "skipped", json_integer(st->skipped));
        bad |= json_object_set_new(o, "suspended", json_boolean(st->suspended));
        bad |= json_object_set_new(o, "metrics_addr", rec_json_text(st->metrics_addr));
        bad |= json_object_set_new(o, "role", json_string(st->role ? st->role : "none"));
        bad |= json_object_set_new(o, "leader", rec_json_text(st->leader));
        bad |= json_object_set(o, "failures", fails);
        bad |= json_object_set_new(o, "conflicts", json_integer(st->conflicts));
        bad |= json_object_set(o, "warnings", warns);
        bad |= json_object_set_new(o, "manifests_valid", json_boolean(st->manifests_valid));
        bad |= json_object_set_new(o, "manifest_error", rec_json_text(st->manifest_error));
        bad |= json_object_set_new(o, "ready", json_boolean(st->ready));
        bad |= json_object_set_new(o, "ready_reason", rec_json_text(st->ready_reason));
    }
    char *text = bad ? NULL : json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(fails);
    json_decref(warns);
    json_decref(o);
    if (text == NULL)
        return -ENOMEM;
    size_t n = strlen(text);
    char *withnl = realloc(text, n + 2);
    if (withnl == NULL) {
        free(text);
        return -ENOMEM;
    }
    withnl[n] = '\n';
    withnl[n + 1] = '\0';
    *ret = withnl;
    return 0;
}

/* Copies an optional string member: absent or null -> NULL; wrong type -> -EPROTO. */
static int get_str(json_t *o, const char *key, char **ret)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL || json_is_null(v)) {
        *ret = NULL;
        return 0;
    }
    if (!json_is_string(v))
        return -EPROTO;
    *ret = strdup(json_string_value(v));
    return *ret ? 0 : -ENOMEM;
}

/* Reads an optional non-negative integer member (absent: 0). */
static int get_uint(json_t *o, const char *key, uint64_t max, uint64_t *ret)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL) {
        *ret = 0;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max)
        return -EPROTO;
    *ret = (uint64_t)json_integer_value(v);
    return 0;
}

static int get_unsigned(json_t *o, const char *key, unsigned *ret)
{
    uint64_t v;
    int rc = get_uint(o, key, 0xFFFFFFFFu, &v);
    if (rc == 0)
        *ret = (unsigned)v;
    return rc;
}

int rec_status_from_json(const char *text, size_t len, rec_status *ret)
{
    rec_status st;
    json_error_t jerr;
    uint64_t u = 0;
    int rc = 0;

    memset(&st, 0, sizeof(st));
    json_t *o = json_loadb(text, len, 0, &jerr);
    if (o == NULL || !json_is_object(o)) {
        json_decref(o);
        return -EPROTO;
    }
    json_t *sus = json_object_get(o, "suspended");
    json_t *mvalid = json_object_get(o, "manifests_valid");
    json_t *ready = json_object_get(o, "ready");
    if ((mvalid != NULL && !json_is_boolean(mvalid)) || (ready != NULL && !json_is_boolean(ready)))
        rc = -EPROTO;
    json_t *fails = json_object_get(o, "failures");
    json_t *warns = json_object_get(o, "warnings");
    if ((sus != NULL && !json_is_boolean(sus)) || (fails != NULL && !json_is_array(fails)) ||
        (warns != NULL && !json_is_array(warns)))
        rc = -EPROTO;
    if (rc == 0)
        rc = get_uint(o, "pid", 0x7FFFFFFF, &u);
    st.pid = (long)u;
    if (rc == 0)
        rc = get_str(o, "state", &st.state);
    if (rc == 0)
        rc = get_str(o, "result", &st.result);
    if (rc == 0)
        rc = get_str(o, "error", &st.error);
    if (rc == 0)
        rc = get_str(o, "metrics_addr", &st.metrics_addr);
    if (rc == 0)
        rc = get_str(o, "manifest_error", &st.manifest_error);
    if (rc == 0)
        rc = get_str(o, "ready_reason", &st.ready_reason);
    /* Written by a daemon before readiness existed: valid manifests, ready when the last cycle
     * was ok. */
    st.manifests_valid = mvalid == NULL || json_is_true(mvalid);
    if (rc == 0)
        rc = get_str(o, "role", &st.role);
    if (rc == 0 && st.role != NULL && strcmp(st.role, "none") == 0) {
        free(st.role); /* "none" is how NULL is written */
        st.role = NULL;
    }
    if (rc == 0)
        rc = get_str(o, "leader", &st.leader);
    if (rc == 0)
        rc = get_uint(o, "cycles", UINT64_MAX, &st.cycles);
    if (rc == 0)
        rc = time_parse(json_object_get(o, "cycle_start"), &st.cycle_start_ms);
    if (rc == 0)
        rc = time_parse(json_object_get(o, "cycle_end"), &st.cycle_end_ms);
    if (rc == 0)
        rc = time_parse(json_object_get(o, "next_cycle"), &st.next_cycle_ms);
    if (rc == 0)
        rc = time_parse(json_object_get(o, "last_success"), &st.last_success_ms);
    if (rc == 0)
        rc = get_unsigned(o, "drift", &st.drift);
    if (rc == 0)
        rc = get_unsigned(o, "pending", &st.pending);
    if (rc == 0)
        rc = get_unsigned(o, "done", &st.done);
    if (rc == 0)
        rc = get_unsigned(o, "failed", &st.failed);
    if (rc == 0)
        rc = get_unsigned(o, "skipped", &st.skipped);
    if (rc == 0)
        rc = get_unsigned(o, "conflicts", &st.conflicts);
    for (size_t i = 0; rc == 0 && warns != NULL && i < json_array_size(warns); i++) {
        json_t *w = json_array_get(warns, i);
        json_t *addr = json_object_get(w, "address");
        json_t *msg = json_object_get(w, "message");
        unsigned count = 0;
        if (!json_is_object(w) || !json_is_string(addr) || !json_is_string(msg)) {
            rc = -EPROTO;
            break;
        }
        rc = get_unsigned(w, "count", &count);
        if (rc == 0)
            rc =
                rec_status_add_warning(&st, json_string_value(addr), json_string_value(msg), count);
    }
    st.suspended = sus != NULL && json_is_true(sus);
    st.ready =
        ready != NULL ? json_is_true(ready) : st.result != NULL && strcmp(st.result, "ok") == 0;
    for (size_t i = 0; rc == 0 && fails != NULL && i < json_array_size(fails); i++) {
        json_t *f = json_array_get(fails, i);
        json_t *addr = json_object_get(f, "address");
        json_t *msg = json_object_get(f, "message");
        unsigned count = 0;
        uint64_t retry = 0;
        if (!json_is_object(f) || !json_is_string(addr) || !json_is_string(msg)) {
            rc = -EPROTO;
            break;
        }
        rc = get_unsigned(f, "count", &count);
        if (rc == 0)
            rc = time_parse(json_object_get(f, "retry_at"), &retry);
        if (rc == 0)
            rc = rec_status_add_failure(&st, json_string_value(addr), json_string_value(msg), count,
                                        retry);
    }
    json_decref(o);
    if (rc < 0) {
        rec_status_clear(&st);
        return rc;
    }
    *ret = st;
    return 0;
}

int rec_status_write(const char *state_dir, const rec_status *st)
{
    char *text;
    int rc = rec_status_to_json(st, &text);
    if (rc < 0)
        return rc;
    rc = prov_statedir_write_file(state_dir, "status.json", text, strlen(text), 0640);
    free(text);
    return rc;
}

int rec_status_read(const char *state_dir, rec_status *ret)
{
    /* O_NONBLOCK: a FIFO planted as status.json would hold open(2) until a writer came. Only a
     * regular file can be the daemon's (it renames one over the name). */
    int fd = prov_statedir_open(state_dir, "status.json", O_RDONLY | O_NONBLOCK, 0);
    if (fd < 0)
        return fd;
    struct stat st;
    int not_file = fstat(fd, &st) < 0 ? -errno : S_ISREG(st.st_mode) ? 0 : -EPROTO;
    if (not_file < 0) {
        (void)close(fd);
        return not_file;
    }
    FILE *f = fdopen(fd, "r");
    if (f == NULL) {
        int err = -errno;
        (void)close(fd);
        return err;
    }
    char *text = NULL;
    size_t len = 0, cap = 0;
    int rc = 0;
    for (;;) {
        if (len + 4096 > cap) {
            if (cap >= (1u << 24)) {
                rc = -EFBIG;
                break;
            }
            cap = cap ? cap * 2 : 8192;
            char *grown = realloc(text, cap);
            if (grown == NULL) {
                rc = -ENOMEM;
                break;
            }
            text = grown;
        }
        size_t n = fread(text + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            if (ferror(f))
                rc = -EIO;
            break;
        }
    }
    (void)fclose(f);
    if (rc == 0)
        rc = rec_status_from_json(text, len, ret);
    free(text);
    return rc;
}

/* The escaped s in buf (clipped to size): status.json is a file anyone with access to the
 * state directory could edit, and its messages come from the cloud. */
static const char *esc(const char *s, char *buf, size_t size)
{
    (void)rec_escape(s, buf, size);
    return buf;
}

/* "in 4m12s" / "3s ago" for a summary. */
static void rel_time(char *out, size_t n, uint64_t t, uint64_t now)
{
    if (t == 0) {
        (void)snprintf(out, n, "never");
        return;
    }
    uint64_t d = t > now ? t - now : now - t;
    uint64_t s = d / 1000;
    char span[32];
    if (s >= 3600)
        (void)snprintf(span, sizeof(span), "%uh%02um", (unsigned)(s / 3600),
                       (unsigned)(s % 3600 / 60));
    else if (s >= 60)
        (void)snprintf(span, sizeof(span), "%um%02us", (unsigned)(s / 60), (unsigned)(s % 60));
    else
        (void)snprintf(span, sizeof(span), "%us", (unsigned)s);
    (void)snprintf(out, n, t > now ? "in %s" : "%s ago", span);
}

char *rec_status_describe(const rec_status *st, uint64_t now_ms)
{
    char *out = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&out, &len);
    char a[48], b[48], c[48], e1[512], e2[1024];
    if (m == NULL)
        return NULL;
    rel_time(a, sizeof(a), st->cycle_end_ms, now_ms);
    rel_time(b, sizeof(b), st->next_cycle_ms, now_ms);
    rel_time(c, sizeof(c), st->last_success_ms, now_ms);
    fprintf(m, "daemon:       pid %ld, %s%s\n", st->pid,
            st->state ? esc(st->state, e1, sizeof(e1)) : "unknown",
            st->suspended ? " (suspended: plans only, changes nothing)" : "");
    fprintf(m, "role:         %s", st->role ? esc(st->role, e1, sizeof(e1)) : "none");
    if (st->role != NULL && st->leader != NULL)
        fprintf(m, " (leader: %s)", esc(st->leader, e1, sizeof(e1)));
    fprintf(m, "%s\n", st->role ? "" : " (no ha configured: this daemon acts alone)");
    fprintf(m, "last cycle:   %s (%s), %llu cycles so far\n",
            st->result ? esc(st->result, e1, sizeof(e1)) : "none yet", a,
            (unsigned long long)st->cycles);
    if (st->error)
        fprintf(m, "error:        %s\n", esc(st->error, e1, sizeof(e1)));
    fprintf(m, "last success: %s\n", c);
    fprintf(m, "next cycle:   %s\n", b);
    fprintf(m, "drift:        %u change(s) in the last plan; %u done, %u failed, %u pending\n",
            st->drift, st->done, st->failed, st->pending);
    if (!st->manifests_valid)
        fprintf(m, "manifests:    invalid (the last good set is reconciled): %s\n",
                st->manifest_error ? st->manifest_error : "see the daemon's log");
    if (st->metrics_addr)
        fprintf(m, "metrics:      http://%s/metrics\n", esc(st->metrics_addr, e1, sizeof(e1)));
    for (size_t i = 0; i < st->n_failures; i++) {
        const rec_status_failure *f = &st->failures[i];
        rel_time(a, sizeof(a), f->retry_at_ms, now_ms);
        fprintf(m, "failing:      %s (%u time(s), retry %s): %s\n", esc(f->address, e1, sizeof(e1)),
                f->count, f->retry_at_ms ? a : "next cycle", esc(f->message, e2, sizeof(e2)));
    }
    for (size_t i = 0; i < st->n_warnings; i++)
        fprintf(m, "warning:      %s (undone %u time(s) in a row): %s\n",
                esc(st->warnings[i].address, e1, sizeof(e1)), st->warnings[i].count,
                esc(st->warnings[i].message, e2, sizeof(e2)));
    if (fclose(m) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

const char *rec_health_name(rec_health h)
{
    static const char *const names[] = {"healthy", "failing", "not ready", "not running"};
    return (unsigned)h < sizeof(names) / sizeof(names[0]) ? names[h] : "unknown";
}

/* How late an idle daemon's next cycle may be before its status counts as stale (a hung or
 * frozen process still holding its pid). */
#define STALE_GRACE_MS (10u * 60u * 1000u)

rec_health rec_status_health(const rec_status *st, bool pid_alive, uint64_t now_ms,
                             const char **ret_reason)
{
    const char *state = st->state ? st->state : "";
    if (strcmp(state, "stopped") == 0) {
        *ret_reason = "the daemon stopped";
        return REC_NOT_RUNNING;
    }
    if (!pid_alive) {
        *ret_reason = "its pid is not running (the daemon died without a clean stop)";
        return REC_NOT_RUNNING;
    }
    if (strcmp(state, "idle") == 0 && st->next_cycle_ms != 0 &&
        now_ms > st->next_cycle_ms + STALE_GRACE_MS) {
        *ret_reason = "stale: the next cycle is more than 10 minutes overdue (hung daemon?)";
        return REC_NOT_RUNNING;
    }
    if (!st->manifests_valid) {
        *ret_reason = st->manifest_error ? st->manifest_error : "the manifests are invalid";
        return REC_NOT_READY;
    }
    if (st->result == NULL) {
        *ret_reason = "no cycle has finished yet";
        return REC_NOT_READY;
    }
    if (strcmp(st->result, "ok") != 0 || st->n_failures > 0) {
        *ret_reason = st->ready_reason ? st->ready_reason
                      : st->error      ? st->error
                                       : "the last cycle did not succeed";
        return REC_FAILING;
    }
    *ret_reason = "manifests valid, last cycle succeeded";
    return REC_HEALTHY;
}
