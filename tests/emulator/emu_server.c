/* The emulator's HTTP server (see emu_server.h). */
#include "emu_server.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <microhttpd.h>

#include "emu_auth.h"
#include "emu_fixture.h"
#include "emu_journal.h"
#include "emu_limits.h"
#include "emu_sts.h"
#include "emu_util.h"
#include "emu_world.h"

#define MAX_BODY (1u << 20)

struct emu_http {
    emu_http_config cfg;
    struct MHD_Daemon *mhd;
    unsigned port;
    pthread_mutex_t lock;
    pthread_cond_t wake; /* signalled on shutdown so delayed requests end at once */
    bool stopping;
    emu_world *world;
    emu_limits limits;
    emu_nonces nonces;
    emu_journal journal;
    emu_sts sts;
    uint64_t rid_rng;
};

/* Per-connection state: the raw URI (MHD decodes the query, but signatures need the exact
 * parameters, so the URI log callback keeps it) and the body as it arrives. */
typedef struct emu_conn {
    char *uri;
    char *body;
    size_t len;
    bool too_big;
    bool started; /* MHD calls the handler once for the headers before any body */
} emu_conn;

static void *uri_log(void *cls, const char *uri, struct MHD_Connection *con)
{
    (void)cls;
    (void)con;
    emu_conn *c = calloc(1, sizeof(*c));
    if (c) {
        c->uri = strdup(uri ? uri : "/");
        if (!c->uri) {
            free(c);
            c = NULL;
        }
    }
    return c;
}

static void completed(void *cls, struct MHD_Connection *con, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)con;
    (void)toe;
    emu_conn *c = *con_cls;
    if (c) {
        free(c->uri);
        free(c->body);
        free(c);
        *con_cls = NULL;
    }
}

/* Sends a JSON body (consumed) with the status. */
static enum MHD_Result send_json(struct MHD_Connection *con, unsigned status, json_t *body)
{
    char *s = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(body);
    if (!s) {
        s = strdup("{\"Code\":\"InternalError\",\"Message\":\"out of memory\"}");
        status = 500;
        if (!s) {
            return MHD_NO;
        }
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(s);
        return MHD_NO;
    }
    (void)MHD_add_response_header(resp, "Content-Type", "application/json;charset=utf-8");
    enum MHD_Result rc = MHD_queue_response(con, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    (void)kind;
    emu_kvs *h = cls;
    char *lk = strdup(key);
    if (!lk) {
        return MHD_NO;
    }
    for (char *p = lk; *p; p++) {
        *p = (char)tolower((unsigned char)*p);
    }
    int rc = emu_kvs_add(h, lk, value ? value : "");
    free(lk);
    return rc == 0 ? MHD_YES : MHD_NO;
}

static bool utf8_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n = *p < 0x80         ? 0
                   : (*p >> 5) == 6  ? 1
                   : (*p >> 4) == 14 ? 2
                   : (*p >> 3) == 30 ? 3
                                     : 9;
        if (n == 9) {
            return false;
        }
        p++;
        for (size_t i = 0; i < n; i++, p++) {
            if ((*p & 0xc0) != 0x80) {
                return false;
            }
        }
    }
    return true;
}

/* ---- admin routes ---- */

static json_t *admin_msg(const char *key, const char *value)
{
    return json_pack("{s:s}", key, value);
}

/* Rebuilds the world from the fixture text and forgets limits, nonces, faults, ClientTokens
 * and the journal's lines. Called with the lock held. */
static int reset_world(emu_http *h)
{
    emu_diags d = {0};
    emu_world *w = NULL;
    int rc = emu_fixture_parse(h->cfg.fixture_name, h->cfg.fixture, h->cfg.fixture_len, &w, &d);
    emu_diags_clear(&d);
    if (rc < 0) {
        return rc;
    }
    emu_world_seed(w, h->cfg.seed);
    w->create_delay_ms = h->cfg.create_delay_ms;
    w->list_lag_ms = h->cfg.list_lag_ms;
    emu_world_free(h->world);
    h->world = w;
    emu_limits_reset(&h->limits);
    emu_nonces_clear(&h->nonces);
    emu_sts_clear(&h->sts);
    return emu_journal_truncate(&h->journal);
}

static enum MHD_Result admin(emu_http *h, struct MHD_Connection *con, const char *method,
                             const char *path, const emu_conn *c)
{
    if (strcmp(path, "/_emulator/state") == 0 && strcmp(method, "GET") == 0) {
        (void)pthread_mutex_lock(&h->lock);
        json_t *s = emu_world_to_json(h->world, emu_now_ms());
        (void)pthread_mutex_unlock(&h->lock);
        return send_json(con, 200, s);
    }
    if (strcmp(path, "/_emulator/reset") == 0 && strcmp(method, "POST") == 0) {
        (void)pthread_mutex_lock(&h->lock);
        int rc = reset_world(h);
        (void)pthread_mutex_unlock(&h->lock);
        return send_json(con, rc == 0 ? 200 : 500,
                         rc == 0 ? json_pack("{s:b}", "ok", 1)
                                 : admin_msg("error", "reset failed"));
    }
    if (strcmp(path, "/_emulator/faults") == 0 && strcmp(method, "DELETE") == 0) {
        (void)pthread_mutex_lock(&h->lock);
        emu_limits_clear_faults(&h->limits);
        (void)pthread_mutex_unlock(&h->lock);
        return send_json(con, 200, json_pack("{s:b}", "ok", 1));
    }
    if (strcmp(path, "/_emulator/faults") == 0 && strcmp(method, "POST") == 0) {
        json_error_t jerr;
        json_t *spec = json_loadb(c->body ? c->body : "", c->len, 0, &jerr);
        if (!spec) {
            return send_json(con, 400, admin_msg("error", "the body must be JSON"));
        }
        const char *why = "expected an object or an array of objects";
        int rc = 0;
        (void)pthread_mutex_lock(&h->lock);
        if (json_is_array(spec)) {
            size_t i;
            json_t *it;
            json_array_foreach(spec, i, it)
            {
                if ((rc = emu_limits_add_fault(&h->limits, it, &why)) < 0) {
                    break;
                }
            }
        } else {
            rc = emu_limits_add_fault(&h->limits, spec, &why);
        }
        size_t pending = h->limits.n_faults;
        (void)pthread_mutex_unlock(&h->lock);
        json_decref(spec);
        if (rc < 0) {
            return send_json(con, 400, admin_msg("error", rc == -ENOMEM ? "out of memory" : why));
        }
        return send_json(con, 200, json_pack("{s:b,s:I}", "ok", 1, "pending", (json_int_t)pending));
    }
    return send_json(con, 404, admin_msg("error", "unknown admin route"));
}

/* ---- API requests ---- */

typedef struct api_call {
    emu_kvs query, params, headers;
    const char *action;
    enum emu_product product;
    bool sts; /* an STS action (product is then meaningless) */
    char *key_id;
    char request_id[37];
    emu_result res;
    const char *region;
} api_call;

/* Copies the characters a host name may hold (the rest is attacker-controlled noise that must
 * not break the JSON). */
static void host_chars(char *out, size_t size, const char *s)
{
    size_t n = 0;
    for (; s && *s && n + 1 < size; s++) {
        if (isalnum((unsigned char)*s) || strchr(".-:[]", *s)) {
            out[n++] = *s;
        }
    }
    out[n] = '\0';
}

static json_t *error_body(const api_call *a, const char *host)
{
    char hostid[160], region[64], h[96];
    const char *prod = a->sts ? "sts" : a->product == EMU_ECS ? "ecs" : "swas";
    host_chars(region, sizeof(region), a->region);
    host_chars(h, sizeof(h), host);
    if (region[0]) {
        (void)snprintf(hostid, sizeof(hostid), "%s.%s.aliyuncs.com", prod, region);
    } else {
        (void)snprintf(hostid, sizeof(hostid), "%s", h[0] ? h : "127.0.0.1");
    }
    char rec[256];
    (void)snprintf(rec, sizeof(rec), "https://api.aliyun.com/troubleshoot?q=%s&product=%s",
                   a->res.code, a->product == EMU_ECS ? "Ecs" : "SWAS-OPEN");
    json_t *msg = json_string(a->res.message ? a->res.message : "");
    return json_pack("{s:s,s:s,s:s,s:o,s:s}", "RequestId", a->request_id, "HostId", hostid, "Code",
                     a->res.code, "Message", msg ? msg : json_string("(message not valid UTF-8)"),
                     "Recommend", rec);
}

static json_t *success_body(const api_call *a)
{
    json_t *o = json_pack("{s:s}", "RequestId", a->request_id);
    if (o && a->res.body && json_object_update(o, a->res.body) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Sleeps ms unless the server stops first. Called with the lock held; returns with it held. */
static void delay_locked(emu_http *h, int64_t ms)
{
    struct timespec until;
    (void)clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while (!h->stopping) {
        if (pthread_cond_timedwait(&h->wake, &h->lock, &until) == ETIMEDOUT) {
            break;
        }
    }
}

static const char *kvs_param(const void *ud, const char *name)
{
    return emu_kvs_get(ud, name);
}

/* Decides the answer of one API call with the lock held. Returns 0, 1 to drop the connection,
 * or -ENOMEM. */
static int api_locked(emu_http *h, api_call *a, const char *method, const emu_conn *c)
{
    int rc;
    emu_auth_req req = {.method = method,
                        .query = &a->query,
                        .params = &a->params,
                        .headers = &a->headers,
                        .body = c->body,
                        .body_len = c->len};
    req.sts = &h->sts;
    const emu_account *acct = NULL;
    if (a->sts && emu_sts_is_unsigned(a->action)) {
        return emu_sts_call(&h->sts, h->world, NULL, a->action, kvs_param, &a->params, emu_now_ms(),
                            &a->res);
    }
    rc = emu_auth_check(h->world, &h->nonces, h->cfg.skew_ms, &req, emu_now_ms(), &acct, &a->res);
    if (rc < 0 || a->res.code) {
        return rc;
    }
    /* A call that reaches the API counts against the window, even when a fault answers it;
     * a throttled call does not (the cloud rejects it at the gate). The window belongs to the
     * account: every key and assumed role of one user_id together. */
    rc = emu_limits_take(&h->limits, acct->user_id, a->action, emu_mono_ms());
    if (rc < 0) {
        return rc;
    }
    if (rc == 1) {
        return emu_result_error(&a->res, 400, "Throttling.User",
                                "Request was denied due to user flow control.");
    }
    int64_t delay = 0, late = 0;
    json_t *body = NULL;
    switch (emu_limits_next_fault(&h->limits, a->action, &delay, &body)) {
    case EMU_FAULT_INTERNAL:
        return emu_result_error(&a->res, 500, "InternalError",
                                "The request processing has failed due to some unknown error, "
                                "exception or failure.");
    case EMU_FAULT_UNAVAILABLE:
        return emu_result_error(&a->res, 503, "ServiceUnavailable",
                                "The request has failed due to a temporary failure of the "
                                "server.");
    case EMU_FAULT_THROTTLING:
        return emu_result_error(&a->res, 400, "Throttling",
                                "Request was denied due to request throttling.");
    case EMU_FAULT_DROP:
        return 1;
    case EMU_FAULT_DELAY:
        /* The call still happens after the delay: a client that timed out does not know
         * whether it did, which is what ClientToken idempotency is for. */
        delay_locked(h, delay);
        break;
    case EMU_FAULT_LATE:
        late = delay;
        break;
    case EMU_FAULT_ANSWER:
        /* The scripted body stands for the call's answer; the world does not change. */
        a->res.http_status = body ? 200 : 0;
        a->res.body = body;
        return body ? 0 : -ENOMEM;
    case EMU_FAULT_NONE:
        break;
    }
    rc = a->sts
             ? emu_sts_call(&h->sts, h->world, acct, a->action, kvs_param, &a->params, emu_now_ms(),
                            &a->res)
             : emu_world_call(h->world, a->product, a->action, &a->params, emu_now_ms(), &a->res);
    /* The answer reflects the world as it was; only its way back is slow. */
    if (late > 0)
        delay_locked(h, late);
    return rc;
}

static enum MHD_Result api(emu_http *h, struct MHD_Connection *con, const char *method,
                           const char *query, const emu_conn *c)
{
    api_call a = {0};
    enum MHD_Result ret = MHD_NO;
    int rc = 0;
    bool drop = false;
    const char *host = NULL;
    if (MHD_get_connection_values(con, MHD_HEADER_KIND, collect_header, &a.headers) < 0) {
        goto out;
    }
    host = emu_kvs_get_ci(&a.headers, "host");
    rc = emu_kvs_parse_urlencoded(&a.query, query, strlen(query));
    for (size_t i = 0; rc == 0 && i < a.query.n; i++) {
        rc = emu_kvs_add(&a.params, a.query.v[i].key, a.query.v[i].value);
    }
    const char *ctype = emu_kvs_get_ci(&a.headers, "content-type");
    if (rc == 0 && c->len > 0 && ctype &&
        strncasecmp(ctype, "application/x-www-form-urlencoded", 33) == 0) {
        rc = emu_kvs_parse_urlencoded(&a.params, c->body, c->len);
    }
    (void)pthread_mutex_lock(&h->lock);
    emu_request_id(&h->rid_rng, a.request_id);
    (void)pthread_mutex_unlock(&h->lock);
    if (rc == -ENOMEM) {
        goto out;
    }
    a.region = emu_kvs_get(&a.params, "RegionId");
    const char *version = emu_kvs_get_ci(&a.headers, "x-acs-version");
    a.action = emu_kvs_get_ci(&a.headers, "x-acs-action");
    if (!a.action) {
        version = emu_kvs_get(&a.params, "Version");
        a.action = emu_kvs_get(&a.params, "Action");
    }
    bool text_ok = rc == 0;
    for (size_t i = 0; text_ok && i < a.params.n; i++) {
        text_ok = utf8_ok(a.params.v[i].key) && utf8_ok(a.params.v[i].value);
    }
    if (!text_ok) {
        a.action = NULL;
        rc = emu_result_error(&a.res, 400, "InvalidParameter",
                              "The request parameters are not well-formed UTF-8 "
                              "x-www-form-urlencoded text.");
    } else if (!a.action || !*a.action || !version || !*version) {
        const char *what = !a.action || !*a.action ? "Action" : "Version";
        rc = emu_result_error(&a.res, 400, "MissingParameter",
                              "The input parameter \"%s\" that is mandatory for processing this "
                              "request is not supplied.",
                              what);
    } else if (strcmp(version, EMU_STS_VERSION) == 0) {
        a.sts = true;
        if (!emu_sts_has_action(a.action)) {
            rc = emu_result_error(&a.res, 404, "InvalidAction.NotFound",
                                  "Specified api is not found, please check your url and "
                                  "method.");
        }
    } else if (strcmp(version, EMU_SWAS_VERSION) != 0 && strcmp(version, EMU_ECS_VERSION) != 0) {
        rc = emu_result_error(&a.res, 400, "InvalidVersion",
                              "Specified parameter Version is not valid.");
    } else {
        a.product = strcmp(version, EMU_ECS_VERSION) == 0 ? EMU_ECS : EMU_SWAS;
        if (!emu_world_has_action(a.product, a.action)) {
            rc = emu_result_error(&a.res, 404, "InvalidAction.NotFound",
                                  "Specified api is not found, please check your url and "
                                  "method.");
        }
    }
    emu_auth_req req = {.method = method,
                        .query = &a.query,
                        .params = &a.params,
                        .headers = &a.headers,
                        .body = c->body,
                        .body_len = c->len};
    a.key_id = emu_auth_claimed_key(&req);
    (void)pthread_mutex_lock(&h->lock);
    if (rc == 0 && !a.res.code) {
        rc = api_locked(h, &a, method, c);
        drop = rc == 1;
    }
    if (rc >= 0 && !drop && !a.res.code && a.res.http_status == 0) {
        rc = -ENOMEM;
    }
    if (rc < 0) {
        emu_result_clear(&a.res);
        a.res.http_status = 500;
        a.res.code = "InternalError";
    }
    (void)emu_journal_write(&h->journal, emu_now_ms(), a.key_id, a.action, &a.params,
                            drop ? 0 : a.res.http_status, drop ? "ConnectionDropped" : a.res.code,
                            a.request_id, a.res.code ? NULL : a.res.image_id);
    (void)pthread_mutex_unlock(&h->lock);
    if (drop) {
        goto out; /* MHD_NO closes the connection without an answer */
    }
    ret = send_json(con, (unsigned)a.res.http_status,
                    a.res.code ? error_body(&a, host) : success_body(&a));
out:
    emu_result_clear(&a.res);
    free(a.key_id);
    emu_kvs_clear(&a.query);
    emu_kvs_clear(&a.params);
    emu_kvs_clear(&a.headers);
    return ret;
}

/* The ECS metadata routes (--metadata); 404 when not enabled. */
static enum MHD_Result metadata(emu_http *h, struct MHD_Connection *con, const char *method,
                                const char *path)
{
    const char *ttl = MHD_lookup_connection_value(con, MHD_HEADER_KIND,
                                                  "X-aliyun-ecs-metadata-token-ttl-seconds");
    const char *token =
        MHD_lookup_connection_value(con, MHD_HEADER_KIND, "X-aliyun-ecs-metadata-token");
    unsigned status = 404;
    char *body = NULL;
    bool json = false;
    (void)pthread_mutex_lock(&h->lock);
    int rc = emu_sts_metadata(&h->sts, h->world, method, path, ttl, token, emu_now_ms(), &status,
                              &body, &json);
    (void)pthread_mutex_unlock(&h->lock);
    if (rc != 0) {
        return send_json(con, rc == 1 ? 404 : 500,
                         admin_msg("error", rc == 1 ? "no such route" : "out of memory"));
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    (void)MHD_add_response_header(resp, "Content-Type", json ? "application/json" : "text/plain");
    enum MHD_Result ret = MHD_queue_response(con, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *con, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls)
{
    (void)url;
    (void)version;
    emu_http *h = cls;
    emu_conn *c = *con_cls;
    if (!c) {
        return MHD_NO; /* the URI log callback ran out of memory */
    }
    if (!c->started) {
        c->started = true;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (c->too_big || c->len + *upload_data_size > MAX_BODY) {
            c->too_big = true;
        } else {
            char *nb = realloc(c->body, c->len + *upload_data_size + 1);
            if (!nb) {
                return MHD_NO;
            }
            c->body = nb;
            memcpy(c->body + c->len, upload_data, *upload_data_size);
            c->len += *upload_data_size;
            c->body[c->len] = '\0';
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (c->too_big) {
        return send_json(con, 413, admin_msg("error", "request body larger than 1 MiB"));
    }
    char *q = strchr(c->uri, '?');
    const char *query = "";
    if (q) {
        *q = '\0';
        query = q + 1;
    }
    if (strncmp(c->uri, "/_emulator/", 11) == 0) {
        return admin(h, con, method, c->uri, c);
    }
    if (strncmp(c->uri, "/latest/", 8) == 0) {
        return metadata(h, con, method, c->uri);
    }
    return api(h, con, method, query, c);
}

int emu_http_start(const emu_http_config *cfg, emu_http **ret, emu_diags *diags)
{
    emu_http *h = calloc(1, sizeof(*h));
    if (!h) {
        return -ENOMEM;
    }
    h->cfg = *cfg;
    h->rid_rng = cfg->seed ^ 0x0123456789abcdefULL;
    int rc = emu_fixture_parse(cfg->fixture_name, cfg->fixture, cfg->fixture_len, &h->world, diags);
    if (rc < 0) {
        free(h);
        return rc;
    }
    emu_world_seed(h->world, cfg->seed);
    h->world->create_delay_ms = cfg->create_delay_ms;
    h->world->list_lag_ms = cfg->list_lag_ms;
    emu_limits_init(&h->limits, cfg->rate_calls, cfg->rate_window_ms, cfg->fault_rate, cfg->seed);
    emu_sts_init(&h->sts, cfg->sts_duration_ms, cfg->metadata_role, cfg->seed);
    if ((rc = emu_journal_open(&h->journal, cfg->journal_path)) < 0) {
        emu_diags_add(diags, cfg->journal_path, 0, 0, "cannot open the journal: %s", strerror(-rc));
        emu_world_free(h->world);
        free(h);
        return rc;
    }
    (void)pthread_mutex_init(&h->lock, NULL);
    pthread_condattr_t ca;
    (void)pthread_condattr_init(&ca);
    (void)pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    (void)pthread_cond_init(&h->wake, &ca);
    (void)pthread_condattr_destroy(&ca);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG;
    if (cfg->addr.ss_family == AF_INET6) {
        flags |= MHD_USE_IPv6;
    }
    h->mhd = MHD_start_daemon(flags, 0, NULL, NULL, handler, h, MHD_OPTION_SOCK_ADDR,
                              (const struct sockaddr *)&h->cfg.addr, MHD_OPTION_URI_LOG_CALLBACK,
                              uri_log, h, MHD_OPTION_NOTIFY_COMPLETED, completed, h,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120, MHD_OPTION_END);
    if (!h->mhd) {
        rc = errno ? -errno : -EADDRINUSE;
        emu_diags_add(diags, "listen", 0, 0, "cannot listen: %s", strerror(-rc));
        h->mhd = NULL;
        emu_http_stop(h);
        return rc;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : 0;
    *ret = h;
    return 0;
}

unsigned emu_http_port(const emu_http *h)
{
    return h->port;
}

void emu_http_stop(emu_http *h)
{
    if (!h) {
        return;
    }
    (void)pthread_mutex_lock(&h->lock);
    h->stopping = true;
    (void)pthread_cond_broadcast(&h->wake);
    (void)pthread_mutex_unlock(&h->lock);
    if (h->mhd) {
        MHD_stop_daemon(h->mhd);
    }
    emu_journal_close(&h->journal);
    emu_limits_free(&h->limits);
    emu_nonces_clear(&h->nonces);
    emu_sts_clear(&h->sts);
    emu_world_free(h->world);
    (void)pthread_cond_destroy(&h->wake);
    (void)pthread_mutex_destroy(&h->lock);
    free(h);
}
