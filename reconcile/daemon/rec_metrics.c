/* The Prometheus registry and its libmicrohttpd server (see rec_metrics.h). The loop thread
 * updates the registry; the MHD thread renders it; one mutex guards both. */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rec_escape.h"

#include "prov_pacer.h"
#include "rec_metrics.h"

/* The codes of one action that imgrecon_api_calls_total keeps apart (OK included); any further
 * one is counted as code="other". */
#define MAX_CODES 32

/* One labelled sample: labels is the rendered label set, e.g. `action="X",code="OK"`. */
typedef struct sample {
    char *labels;
    double value;
} sample;

typedef struct family {
    sample *v;
    size_t n;
} family;

struct rec_metrics {
    pthread_mutex_t mu;
    family cycles;    /* {result} */
    family calls;     /* {action,code} */
    family throttled; /* {action} */
    family budget;    /* {action} */
    double duration_sum;
    double duration_count;
    double duration_last;
    double drift;
    double pending;
    double conflicts;    /* gauge: conflicts in the last plan */
    double fights_total; /* counter: fights detected (rec_metrics_fight) */
    double last_success;
    double manifests_valid; /* gauge: 1 while the manifests load */
    double items_failing;   /* gauge: items failing (backing off) and conflicts */
    double notify_dropped;  /* counter: webhook deliveries dropped (queue full or out of tries) */
    family notify;          /* imgrecon_notify_deliveries_total{result} */
    bool healthy;
    char *health_reason;
    bool ready;
    char *ready_reason;
    char *ha_labels;        /* role="...",leader="..." ; NULL: no `ha` configured */
    uint64_t ha_renewed_ns; /* CLOCK_BOOTTIME of the last lease renewal, 0: no lease */
    struct MHD_Daemon *mhd;
};

int rec_metrics_new(rec_metrics **ret)
{
    rec_metrics *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return -ENOMEM;
    if (pthread_mutex_init(&m->mu, NULL) != 0) {
        free(m);
        return -ENOMEM;
    }
    *ret = m;
    return 0;
}

static void family_free(family *f)
{
    for (size_t i = 0; i < f->n; i++)
        free(f->v[i].labels);
    free(f->v);
}

void rec_metrics_stop(rec_metrics *m)
{
    if (m == NULL || m->mhd == NULL)
        return;
    MHD_stop_daemon(m->mhd);
    m->mhd = NULL;
}

void rec_metrics_free(rec_metrics *m)
{
    if (m == NULL)
        return;
    rec_metrics_stop(m);
    family_free(&m->cycles);
    family_free(&m->calls);
    family_free(&m->throttled);
    family_free(&m->budget);
    family_free(&m->notify);
    free(m->health_reason);
    free(m->ready_reason);
    free(m->ha_labels);
    (void)pthread_mutex_destroy(&m->mu);
    free(m);
}

/* Appends a label value with the exposition format's escapes (\\, \", \n). */
static void label_value(FILE *out, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            fprintf(out, "\\%c", *v);
        else if (*v == '\n')
            fputs("\\n", out);
        else
            fputc(*v, out);
    }
}

/* Renders `k1="v1",k2="v2"` for up to two label pairs into a malloc'd string. */
static char *labels2(const char *k1, const char *v1, const char *k2, const char *v2)
{
    char *out = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&out, &len);
    if (m == NULL)
        return NULL;
    fprintf(m, "%s=\"", k1);
    label_value(m, v1 ? v1 : "");
    fputc('"', m);
    if (k2 != NULL) {
        fprintf(m, ",%s=\"", k2);
        label_value(m, v2 ? v2 : "");
        fputc('"', m);
    }
    if (fclose(m) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* Finds or adds the sample for labels (taking ownership of labels). Called with mu held. */
static sample *family_get(family *f, char *labels)
{
    if (labels == NULL)
        return NULL;
    for (size_t i = 0; i < f->n; i++) {
        if (strcmp(f->v[i].labels, labels) == 0) {
            free(labels);
            return &f->v[i];
        }
    }
    sample *grown = realloc(f->v, (f->n + 1) * sizeof(*grown));
    if (grown == NULL) {
        free(labels);
        return NULL;
    }
    f->v = grown;
    f->v[f->n].labels = labels;
    f->v[f->n].value = 0;
    return &f->v[f->n++];
}

/* Counts one more in a counter family's sample for labels (taken, as by family_get); a sample
 * that cannot be added (out of memory) goes uncounted. Called with mu held by every counter with
 * labels: cycles, calls, throttled calls and notifications. */
static void family_inc(family *f, char *labels)
{
    sample *s = family_get(f, labels);
    if (s != NULL)
        s->value += 1;
}

void rec_metrics_cycle(rec_metrics *m, const char *result, double duration_s, unsigned drift,
                       unsigned pending, bool success, double now_s)
{
    char *labels = labels2("result", result, NULL, NULL);
    pthread_mutex_lock(&m->mu);
    family_inc(&m->cycles, labels);
    m->duration_sum += duration_s;
    m->duration_count += 1;
    m->duration_last = duration_s;
    m->drift = drift;
    m->pending = pending;
    if (success)
        m->last_success = now_s;
    pthread_mutex_unlock(&m->mu);
}

void rec_metrics_set_conflicts(rec_metrics *m, unsigned conflicts)
{
    pthread_mutex_lock(&m->mu);
    m->conflicts = conflicts;
    pthread_mutex_unlock(&m->mu);
}

void rec_metrics_fight(rec_metrics *m)
{
    pthread_mutex_lock(&m->mu);
    m->fights_total += 1;
    pthread_mutex_unlock(&m->mu);
}

/* How many samples of f have labels starting with prefix. Called with mu held. */
static size_t family_count_prefix(const family *f, const char *prefix)
{
    size_t n = 0, len = strlen(prefix);
    for (size_t i = 0; i < f->n; i++)
        n += strncmp(f->v[i].labels, prefix, len) == 0;
    return n;
}

void rec_metrics_api_call(rec_metrics *m, const char *action, const char *code, bool throttled)
{
    /* The code comes from the endpoint and a scrape is often read on a terminal: escaped. */
    char code_esc[128];
    (void)rec_escape(code ? code : "OK", code_esc, sizeof(code_esc));
    char *labels = labels2("action", action, "code", code_esc);
    char *tlabels = throttled ? labels2("action", action, NULL, NULL) : NULL;
    char *prefix = labels2("action", action, NULL, NULL);
    char *other = labels2("action", action, "code", "other");
    pthread_mutex_lock(&m->mu);
    /* An endpoint that answers a new code every time must not grow the family (and every
     * Prometheus that scrapes it) without bound: past MAX_CODES codes for an action, a new one
     * is counted as code="other". */
    bool known = false;
    for (size_t i = 0; labels != NULL && i < m->calls.n && !known; i++)
        known = strcmp(m->calls.v[i].labels, labels) == 0;
    if (labels != NULL && !known && prefix != NULL && other != NULL &&
        family_count_prefix(&m->calls, prefix) >= MAX_CODES) {
        free(labels);
        labels = other;
        other = NULL;
    }
    family_inc(&m->calls, labels);
    if (throttled)
        family_inc(&m->throttled, tlabels);
    pthread_mutex_unlock(&m->mu);
    free(prefix);
    free(other);
}

void rec_metrics_set_budget(rec_metrics *m, const char *action, unsigned left)
{
    char *labels = labels2("action", action, NULL, NULL);
    pthread_mutex_lock(&m->mu);
    sample *s = family_get(&m->budget, labels);
    if (s != NULL)
        s->value = left;
    pthread_mutex_unlock(&m->mu);
}

/* Sets a probe's state and its reason under the lock: /healthz and /readyz. The reason may quote
 * the cloud (the last cycle's error) and the probes are read on terminals: it is kept escaped
 * (rec_escape), which also keeps the answer to the one line it is documented to be. */
static void set_probe(rec_metrics *m, bool *state, char **reason_slot, bool value,
                      const char *reason)
{
    char *copy = reason ? rec_escape_dup(reason) : NULL;
    pthread_mutex_lock(&m->mu);
    *state = value;
    free(*reason_slot);
    *reason_slot = copy;
    pthread_mutex_unlock(&m->mu);
}

void rec_metrics_set_health(rec_metrics *m, bool ok, const char *reason)
{
    set_probe(m, &m->healthy, &m->health_reason, ok, reason);
}

void rec_metrics_set_ready(rec_metrics *m, bool ready, const char *reason)
{
    set_probe(m, &m->ready, &m->ready_reason, ready, reason);
}

void rec_metrics_set_manifests(rec_metrics *m, bool valid)
{
    pthread_mutex_lock(&m->mu);
    m->manifests_valid = valid ? 1 : 0;
    pthread_mutex_unlock(&m->mu);
}

void rec_metrics_set_items_failing(rec_metrics *m, unsigned n)
{
    pthread_mutex_lock(&m->mu);
    m->items_failing = n;
    pthread_mutex_unlock(&m->mu);
}

void rec_metrics_notify(rec_metrics *m, const char *result, bool dropped)
{
    char *labels = labels2("result", result, NULL, NULL);
    pthread_mutex_lock(&m->mu);
    family_inc(&m->notify, labels);
    if (dropped)
        m->notify_dropped += 1;
    pthread_mutex_unlock(&m->mu);
}

void rec_metrics_set_ha(rec_metrics *m, const char *role, const char *leader, uint64_t renewed_ns)
{
    /* The leader is the etcd key's value, raw when it is not imgrecon's JSON: escaped like the
     * code label, so that bytes that are not UTF-8 (which make Prometheus refuse the whole
     * scrape) and controls never reach the exposition. */
    char *leader_esc = rec_escape_dup(leader);
    char *labels = leader_esc ? labels2("role", role, "leader", leader_esc) : NULL;
    free(leader_esc);
    pthread_mutex_lock(&m->mu);
    free(m->ha_labels);
    m->ha_labels = labels;
    m->ha_renewed_ns = renewed_ns;
    pthread_mutex_unlock(&m->mu);
}

static void render_family(FILE *out, const char *name, const char *type, const char *help,
                          const family *f)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    for (size_t i = 0; i < f->n; i++)
        fprintf(out, "%s{%s} %.17g\n", name, f->v[i].labels, f->v[i].value);
}

static void render_scalar(FILE *out, const char *name, const char *type, const char *help,
                          double value)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, value);
}

/* imgrecon_ha_role and imgrecon_ha_lease_age_seconds, only with `ha` (called with mu held). */
static void render_ha(FILE *out, const rec_metrics *m)
{
    if (m->ha_labels == NULL)
        return;
    fprintf(out,
            "# HELP imgrecon_ha_role This process's HA role (label role: leader, standby, none) "
            "and the leader it sees (label leader: host:pid).\n# TYPE imgrecon_ha_role gauge\n"
            "imgrecon_ha_role{%s} 1\n",
            m->ha_labels);
    uint64_t now = prov_pacer_now_ms(NULL) * 1000000ull; /* rec_ha's clock (boot) */
    double age = m->ha_renewed_ns != 0 && now > m->ha_renewed_ns
                     ? (double)(now - m->ha_renewed_ns) / 1e9
                     : 0.0;
    render_scalar(out, "imgrecon_ha_lease_age_seconds", "gauge",
                  "Seconds since the etcd lease was last renewed (0 without a lease).", age);
}

int rec_metrics_render(rec_metrics *m, char **ret)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    if (out == NULL)
        return -ENOMEM;
    pthread_mutex_lock(&m->mu);
    render_family(out, "imgrecon_reconcile_cycles_total", "counter", "Reconcile cycles by result.",
                  &m->cycles);
    fprintf(out,
            "# HELP imgrecon_reconcile_duration_seconds Duration of reconcile cycles.\n"
            "# TYPE imgrecon_reconcile_duration_seconds summary\n"
            "imgrecon_reconcile_duration_seconds_sum %.17g\n"
            "imgrecon_reconcile_duration_seconds_count %.17g\n",
            m->duration_sum, m->duration_count);
    render_scalar(out, "imgrecon_reconcile_last_duration_seconds", "gauge",
                  "Duration of the last reconcile cycle.", m->duration_last);
    render_scalar(out, "imgrecon_drift", "gauge", "Changes in the last plan.", m->drift);
    render_scalar(out, "imgrecon_pending_steps", "gauge", "Steps not done after the last cycle.",
                  m->pending);
    render_scalar(out, "imgrecon_conflicts", "gauge",
                  "Declared images whose name is taken by an image that is not ours (or by "
                  "several of ours) in the last plan; each is reported failing.",
                  m->conflicts);
    render_scalar(out, "imgrecon_item_fights_total", "counter",
                  "Times an item imgrecon fixed was found undone again twice in a row.",
                  m->fights_total);
    render_family(out, "imgrecon_api_calls_total", "counter",
                  "API call attempts by action and answer code (OK for success; an action's codes "
                  "past the 32nd count as other).",
                  &m->calls);
    render_family(out, "imgrecon_throttled_calls_total", "counter",
                  "API call attempts answered with a throttling error.", &m->throttled);
    render_family(out, "imgrecon_budget_left", "gauge",
                  "Calls still allowed in the current rate-limit window.", &m->budget);
    render_scalar(out, "imgrecon_last_success_timestamp_seconds", "gauge",
                  "Wall-clock time of the last successful cycle.", m->last_success);
    render_scalar(out, "imgrecon_manifests_valid", "gauge",
                  "1 while the manifests load without errors, 0 while they are invalid.",
                  m->manifests_valid);
    render_scalar(out, "imgrecon_items_failing", "gauge",
                  "Items failing: backing off after failed steps, or in conflict.",
                  m->items_failing);
    render_scalar(out, "imgrecon_ready", "gauge",
                  "1 while /readyz answers 200 (manifests valid, last cycle succeeded).",
                  m->ready ? 1 : 0);
    render_family(out, "imgrecon_notify_deliveries_total", "counter",
                  "Webhook delivery attempts by result (ok, failed, retried).", &m->notify);
    render_scalar(out, "imgrecon_notify_dropped_total", "counter",
                  "Webhook notifications dropped: queue full or every attempt failed.",
                  m->notify_dropped);
    render_ha(out, m);
    pthread_mutex_unlock(&m->mu);
    if (fclose(out) != 0) {
        free(text);
        return -ENOMEM;
    }
    *ret = text;
    return 0;
}

/* True for 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104. */
static bool is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
            return true;
        return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127;
    }
    return false;
}

int rec_metrics_parse_listen(const char *spec, bool allow_remote, struct sockaddr_storage *ret,
                             socklen_t *ret_len)
{
    char host[256];
    const char *port;
    if (spec == NULL || *spec == '\0')
        return -EINVAL;
    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');
        if (close == NULL || close[1] != ':' || (size_t)(close - spec - 1) >= sizeof(host))
            return -EINVAL;
        memcpy(host, spec + 1, (size_t)(close - spec - 1));
        host[close - spec - 1] = '\0';
        port = close + 2;
    } else {
        const char *colon = strrchr(spec, ':');
        if (colon == NULL || (size_t)(colon - spec) >= sizeof(host) ||
            memchr(spec, ':', (size_t)(colon - spec)) != NULL)
            return -EINVAL;
        memcpy(host, spec, (size_t)(colon - spec));
        host[colon - spec] = '\0';
        port = colon + 1;
    }
    if (*port == '\0' || strspn(port, "0123456789") != strlen(port) || strlen(port) > 5 ||
        atoi(port) > 65535 || host[0] == '\0')
        return -EINVAL;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &res) != 0 || res == NULL)
        return -EINVAL;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    memcpy(&ss, res->ai_addr, res->ai_addrlen);
    socklen_t len = res->ai_addrlen;
    freeaddrinfo(res);
    if (!allow_remote && !is_loopback(&ss))
        return -EPERM;
    *ret = ss;
    *ret_len = len;
    return 0;
}

/* The body of a probe: "<ok_text>\n" with 200, else "<reason>\n" (one line) with 503. Called
 * with mu held. */
static unsigned probe_body(bool ok, const char *ok_text, const char *reason, const char *fallback,
                           char **ret)
{
    if (ok) {
        if (asprintf(ret, "%s\n", ok_text) < 0)
            *ret = NULL;
        return MHD_HTTP_OK;
    }
    if (asprintf(ret, "%s\n", reason ? reason : fallback) < 0)
        *ret = NULL;
    return MHD_HTTP_SERVICE_UNAVAILABLE;
}

/* Serves /metrics, /healthz (alive) and /readyz (ready). Runs on MHD's thread. */
static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    rec_metrics *m = cls;
    char *body = NULL;
    unsigned status = MHD_HTTP_OK;
    const char *ctype = "text/plain; charset=utf-8";

    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        status = MHD_HTTP_METHOD_NOT_ALLOWED;
        body = strdup("method not allowed\n");
    } else if (strcmp(url, "/metrics") == 0) {
        ctype = "text/plain; version=0.0.4; charset=utf-8";
        if (rec_metrics_render(m, &body) < 0)
            body = NULL;
    } else if (strcmp(url, "/healthz") == 0) {
        pthread_mutex_lock(&m->mu);
        status = probe_body(m->healthy, "ok", m->health_reason, "not ready", &body);
        pthread_mutex_unlock(&m->mu);
    } else if (strcmp(url, "/readyz") == 0) {
        pthread_mutex_lock(&m->mu);
        status = probe_body(m->ready, "ready", m->ready_reason, "no cycle yet", &body);
        pthread_mutex_unlock(&m->mu);
    } else {
        status = MHD_HTTP_NOT_FOUND;
        body = strdup("not found: try /metrics, /healthz or /readyz\n");
    }
    if (body == NULL)
        return MHD_NO;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(body);
        return MHD_NO;
    }
    (void)MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    enum MHD_Result r = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return r;
}

int rec_metrics_serve(rec_metrics *m, const char *listen_spec, bool allow_remote, char **ret_bound)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int rc = rec_metrics_parse_listen(listen_spec, allow_remote, &ss, &len);
    if (rc < 0)
        return rc;
    if (m->mhd != NULL)
        return -EALREADY;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 16) < 0) {
        rc = -errno;
        (void)close(fd);
        return rc;
    }
    socklen_t blen = sizeof(ss);
    char host[INET6_ADDRSTRLEN], port[8], *bound = NULL;
    if (getsockname(fd, (struct sockaddr *)&ss, &blen) < 0 ||
        getnameinfo((struct sockaddr *)&ss, blen, host, sizeof(host), port, sizeof(port),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0 ||
        asprintf(&bound, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port) < 0) {
        (void)close(fd);
        return -EIO;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    m->mhd = MHD_start_daemon(flags, 0, NULL, NULL, handle, m, MHD_OPTION_LISTEN_SOCKET, fd,
                              MHD_OPTION_CONNECTION_LIMIT, (unsigned)16,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
    if (m->mhd == NULL) {
        (void)close(fd);
        free(bound);
        return -EIO;
    }
    *ret_bound = bound;
    return 0;
}
