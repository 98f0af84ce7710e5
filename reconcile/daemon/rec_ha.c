/* Leader election and fencing on etcd (rec_ha.h). One repeating timer drives everything, with
 * at most two etcd requests in flight, one per line:
 *
 *   the lease: none      -> grant (TTL)                 deadline = sent + TTL - margin
 *              due       -> keepalive (every TTL/3)     TTL 0 in the answer: the lease is gone
 *   the poll:  with a lease, range <prefix>/leader (a read: no raft write while someone leads)
 *              absent    -> txn "put it if absent, with my lease; else read it"
 *              created, or the key holds my lease -> leader; else standby (leader = value)
 *
 * The deadline is checked at every tick and at every rec_ha_may_mutate call; past it the
 * process drops its lease and is a standby until it wins again with a new one. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "prov_etcd.h"
#include "prov_pacer.h"
#include "rec_ha.h"

#define NS_PER_MS 1000000ull

/* Nanoseconds on the boot clock (prov_pacer_now_ms, CLOCK_BOOTTIME), the clock of the fence. It
 * goes on counting while the machine is suspended, as etcd's clock does while the lease runs
 * out; CLOCK_MONOTONIC (uv_hrtime) stops then, so a process woken from a suspend would still see
 * its fence open after etcd had let the lease go. Every time compared with a deadline of this
 * file comes from here. */
static uint64_t boot_ns(void)
{
    return prov_pacer_now_ms(NULL) * NS_PER_MS;
}

struct rec_ha {
    uv_loop_t *loop;
    rec_log *log;
    rec_metrics *metrics;
    void (*on_role)(void *ud, rec_ha_role role);
    void *ud;
    prov_etcd *etcd;
    uv_timer_t timer;
    char *leader_key;
    char *me;       /* the leader key's value: {"host","pid","start"} */
    char *me_short; /* "host:pid" */
    char *leader;   /* the leader as last seen, "host:pid" */
    int64_t ttl_s;
    uint64_t margin_ns;
    int64_t lease;         /* 0: none */
    uint64_t deadline_ns;  /* fence, boot_ns clock */
    uint64_t ka_sent_ns;   /* when the request that set the deadline was sent */
    uint64_t ka_answer_ns; /* when its answer came (lease age) */
    /* Two independent requests at most: the lease's (grant or keepalive) and the poll's (range,
     * then maybe the txn), so a poll stuck on a member without quorum never delays a keepalive. */
    uint64_t ka_flight_ns;   /* send time of the grant/keepalive in flight, 0: none */
    uint64_t poll_flight_ns; /* send time of the poll in flight, 0: none */
    int64_t poll_lease;      /* the lease the poll in flight was sent with */
    rec_ha_role role;
    bool failing;         /* the last request failed (log once per run of failures) */
    char last_error[256]; /* the last failure's message, for rec_ha_claim */
    bool stopping;
};

const char *rec_ha_role_name(rec_ha_role r)
{
    return r == REC_HA_LEADER ? "leader" : r == REC_HA_STANDBY ? "standby" : "none";
}

/* Mirrors role, leader and the last renewal into the metrics registry. */
static void publish(rec_ha *h)
{
    if (h->metrics != NULL)
        rec_metrics_set_ha(h->metrics, rec_ha_role_name(h->role), h->leader,
                           h->lease ? h->ka_answer_ns : 0);
}

static uint64_t ttl_ns(const rec_ha *h)
{
    return (uint64_t)h->ttl_s * 1000u * NS_PER_MS;
}

/* Changes role, logs the transition and tells the daemon. */
static void set_role(rec_ha *h, rec_ha_role role, const char *why)
{
    if (h->role == role)
        return;
    rec_ha_role old = h->role;
    h->role = role;
    rec_log_event(h->log,
                  role == REC_HA_LEADER || old == REC_HA_LEADER ? REC_LOG_WARN : REC_LOG_INFO,
                  role == REC_HA_LEADER  ? "ha: became leader"
                  : old == REC_HA_LEADER ? "ha: lost leadership; standing by"
                                         : "ha: standing by",
                  "from", rec_ha_role_name(old), "to", rec_ha_role_name(role), "reason", why,
                  "leader", h->leader, "me", h->me_short, NULL);
    publish(h);
    if (h->on_role != NULL && !h->stopping)
        h->on_role(h->ud, role);
}

/* The lease may have lapsed: forget it (a new one is granted at the next tick). */
static void drop_lease(rec_ha *h, const char *why)
{
    h->lease = 0;
    h->deadline_ns = 0;
    h->ka_answer_ns = 0;
    set_role(h, REC_HA_STANDBY, why);
}

bool rec_ha_may_mutate(rec_ha *h)
{
    if (h == NULL || h->role != REC_HA_LEADER || h->stopping)
        return false;
    /* No state change here: callers are deep inside the executor or the client; the next
     * tick drops the lease and tells the daemon. */
    return boot_ns() < h->deadline_ns;
}

rec_ha_role rec_ha_role_of(const rec_ha *h)
{
    return h ? h->role : REC_HA_NONE;
}

const char *rec_ha_leader(const rec_ha *h)
{
    return h ? h->leader : NULL;
}

const char *rec_ha_me(const rec_ha *h)
{
    return h ? h->me_short : NULL;
}

uint64_t rec_ha_lease_age_ms(const rec_ha *h)
{
    if (h == NULL || h->lease == 0 || h->ka_answer_ns == 0)
        return 0;
    return (boot_ns() - h->ka_answer_ns) / NS_PER_MS;
}

/* A failed request: one warning per run of failures, and an info line when they end. */
static void note_failure(rec_ha *h, const prov_etcd_result *r)
{
    if (r->err == 0) {
        if (h->failing)
            rec_log_event(h->log, REC_LOG_INFO, "ha: etcd answers again", "endpoint",
                          prov_etcd_endpoint(h->etcd), NULL);
        h->failing = false;
        return;
    }
    if (!h->failing)
        rec_log_event(h->log, REC_LOG_WARN, "ha: etcd request failed", "error", r->errmsg, NULL);
    (void)snprintf(h->last_error, sizeof(h->last_error), "%s", r->errmsg);
    h->failing = true;
}

/* The leader's identity from the key's value ("host:pid"); the raw text when not ours. */
static void learn_leader(rec_ha *h, const prov_etcd_kv *kv)
{
    char *who = NULL;
    json_t *j = json_loadb(kv->value, kv->value_len, 0, NULL);
    const char *host = json_string_value(json_object_get(j, "host"));
    json_int_t pid = json_integer_value(json_object_get(j, "pid"));
    if (host != NULL && asprintf(&who, "%.100s:%lld", host, (long long)pid) < 0)
        who = NULL;
    json_decref(j);
    if (who == NULL)
        who = strndup(kv->value, 120);
    if (who != NULL && (h->leader == NULL || strcmp(who, h->leader) != 0))
        rec_log_event(h->log, REC_LOG_INFO, "ha: leader seen", "leader", who, NULL);
    bool changed = who != NULL && (h->leader == NULL || strcmp(who, h->leader) != 0);
    free(h->leader);
    h->leader = who;
    publish(h);
    /* A standby's status names the current leader: tell the daemon (same role, new leader). */
    if (changed && h->role != REC_HA_LEADER && h->on_role != NULL && !h->stopping)
        h->on_role(h->ud, h->role);
}

/* Records an answer that gives the lease ttl_s more seconds: the fence deadline counts from
 * when the request was sent (sent_ns, boot_ns), not from when the answer came, less the safety
 * margin, so that this process stops leading before etcd can let the lease go. A TTL above the
 * one asked for counts as the one asked for: etcd grants what it is asked or, rarely, its own
 * minimum, and counting the shorter TTL is the stricter side, while a garbage value (up to 2^63
 * seconds) would keep the fence open for years or wrap the deadline. Called by on_grant and
 * on_keepalive. */
static void lease_extended(rec_ha *h, uint64_t sent_ns, int64_t ttl_s)
{
    uint64_t ttl = ttl_s < h->ttl_s ? (uint64_t)ttl_s : (uint64_t)h->ttl_s;
    h->ka_sent_ns = sent_ns;
    h->ka_answer_ns = boot_ns();
    h->deadline_ns = sent_ns + ttl * 1000u * NS_PER_MS - h->margin_ns;
    publish(h);
}

static void on_grant(const prov_etcd_result *r, void *ud)
{
    rec_ha *h = ud;
    uint64_t sent = h->ka_flight_ns;
    h->ka_flight_ns = 0;
    note_failure(h, r);
    if (r->err != 0 || h->stopping)
        return;
    h->lease = r->id;
    lease_extended(h, sent, r->ttl);
}

static void on_keepalive(const prov_etcd_result *r, void *ud)
{
    rec_ha *h = ud;
    uint64_t sent = h->ka_flight_ns;
    h->ka_flight_ns = 0;
    if (r->err == 0 && h->lease != 0 && r->id != h->lease) {
        /* An answer about another lease (garbage) renews nothing of this one. */
        prov_etcd_result bad = {.err = -EPROTO};
        (void)snprintf(bad.errmsg, sizeof(bad.errmsg),
                       "etcd %s answered a keepalive of lease %lld for lease %lld",
                       prov_etcd_endpoint(h->etcd), (long long)r->id, (long long)h->lease);
        note_failure(h, &bad);
        return;
    }
    note_failure(h, r);
    if (r->err != 0 || h->stopping || h->lease == 0)
        return;
    if (r->ttl <= 0) {
        drop_lease(h, "etcd says the lease expired");
        return;
    }
    lease_extended(h, sent, r->ttl);
}

static void on_campaign(const prov_etcd_result *r, void *ud)
{
    rec_ha *h = ud;
    h->poll_flight_ns = 0;
    note_failure(h, r);
    /* An answer about a lease this process has since dropped says nothing about the new one. */
    if (r->err != 0 || h->stopping || h->lease == 0 || h->lease != h->poll_lease)
        return;
    if (r->succeeded || (r->n_kvs == 1 && r->kvs[0].lease == h->lease)) {
        free(h->leader);
        h->leader = strdup(h->me_short);
        if (boot_ns() < h->deadline_ns)
            set_role(h, REC_HA_LEADER, r->succeeded ? "created the leader key" : "holds the key");
        return;
    }
    if (r->n_kvs == 1)
        learn_leader(h, &r->kvs[0]);
    set_role(h, REC_HA_STANDBY, "another process holds the leader key");
}

static void ha_send(rec_ha *h, prov_etcd_op op, char *body, prov_etcd_cb cb, uint64_t *flight);

/* The poll: a linearizable read of the leader key (no raft write). When the key is gone, the
 * put-if-absent transaction follows at once; otherwise the answer says who leads. */
static void on_look(const prov_etcd_result *r, void *ud)
{
    rec_ha *h = ud;
    if (r->err == 0 && r->n_kvs == 0 && !h->stopping && h->lease != 0 &&
        h->lease == h->poll_lease) {
        h->poll_flight_ns = 0;
        note_failure(h, r);
        ha_send(h, PROV_ETCD_TXN, prov_etcd_body_put_if(h->leader_key, h->me, h->lease, 0),
                on_campaign, &h->poll_flight_ns);
        return;
    }
    on_campaign(r, ud);
}

/* Sends one request and marks its slot (*flight) busy; a failure to start it is treated as an
 * etcd failure. */
static void ha_send(rec_ha *h, prov_etcd_op op, char *body, prov_etcd_cb cb, uint64_t *flight)
{
    *flight = boot_ns();
    if (flight == &h->poll_flight_ns)
        h->poll_lease = h->lease;
    int rc = body ? prov_etcd_call(h->etcd, op, body, cb, h) : -ENOMEM;
    free(body);
    if (rc < 0) {
        *flight = 0;
        prov_etcd_result r = {.err = rc};
        (void)snprintf(r.errmsg, sizeof(r.errmsg), "cannot start an etcd request: %s",
                       strerror(-rc));
        note_failure(h, &r);
    }
}

static void on_tick(uv_timer_t *t)
{
    rec_ha *h = t->data;
    uint64_t now = boot_ns();
    if (h->lease != 0 && now >= h->deadline_ns)
        drop_lease(h, "the lease may have lapsed (no keepalive answer in time)");
    if (h->stopping)
        return;
    if (h->ka_flight_ns == 0 && h->lease == 0)
        ha_send(h, PROV_ETCD_GRANT, prov_etcd_body_grant(h->ttl_s), on_grant, &h->ka_flight_ns);
    else if (h->ka_flight_ns == 0 && now - h->ka_sent_ns >= ttl_ns(h) / 3)
        ha_send(h, PROV_ETCD_KEEPALIVE, prov_etcd_body_lease(h->lease), on_keepalive,
                &h->ka_flight_ns);
    if (h->poll_flight_ns == 0 && h->lease != 0)
        ha_send(h, PROV_ETCD_RANGE, prov_etcd_body_range(h->leader_key, false), on_look,
                &h->poll_flight_ns);
}

/* The leader key's value: who leads, for people and for the standbys' logs. */
static int make_identity(rec_ha *h)
{
    char host[256] = "unknown", start[32];
    time_t now = time(NULL);
    struct tm tm;
    (void)gethostname(host, sizeof(host) - 1);
    (void)strftime(start, sizeof(start), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    json_t *j =
        json_pack("{s:s,s:I,s:s}", "host", host, "pid", (json_int_t)getpid(), "start", start);
    h->me = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (asprintf(&h->me_short, "%s:%ld", host, (long)getpid()) < 0)
        h->me_short = NULL;
    return h->me && h->me_short ? 0 : -ENOMEM;
}

static void free_ha(rec_ha *h)
{
    free(h->leader_key);
    free(h->me);
    free(h->me_short);
    free(h->leader);
    free(h);
}

int rec_ha_start(uv_loop_t *loop, const rec_ha_opts *opts, rec_ha **ret)
{
    const spec_config *cfg = opts->cfg;
    if (cfg->n_ha_endpoints == 0 || cfg->ha_lease_ttl_ms < 2000)
        return -EINVAL;
    rec_ha *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return -ENOMEM;
    *h = (rec_ha){.loop = loop,
                  .log = opts->log,
                  .metrics = opts->metrics,
                  .on_role = opts->on_role,
                  .ud = opts->ud};
    h->ttl_s = (int64_t)(cfg->ha_lease_ttl_ms / 1000);
    h->margin_ns = cfg->ha_lease_ttl_ms / 5 * NS_PER_MS;
    if (h->margin_ns < 500 * NS_PER_MS)
        h->margin_ns = 500 * NS_PER_MS;
    char *prefix = spec_config_ha_prefix(cfg);
    int rc = prefix && asprintf(&h->leader_key, "%s/leader", prefix) >= 0 ? 0 : -ENOMEM;
    free(prefix);
    if (rc == 0)
        rc = make_identity(h);
    /* Requests time out well inside the TTL so that a dead member is skipped in time. */
    prov_etcd_opts eo = {(const char *const *)cfg->ha_endpoints, cfg->n_ha_endpoints,
                         (long)(cfg->ha_lease_ttl_ms / 4), cfg->ca_file};
    if (rc == 0)
        rc = prov_etcd_new(loop, &eo, &h->etcd);
    if (rc == 0)
        rc = uv_timer_init(loop, &h->timer);
    if (rc < 0) {
        prov_etcd_close(h->etcd);
        free_ha(h);
        return rc;
    }
    h->timer.data = h;
    uint64_t tick = cfg->ha_lease_ttl_ms / 8;
    tick = tick < 100 ? 100 : tick > 500 ? 500 : tick;
    (void)uv_timer_start(&h->timer, on_tick, 0, tick);
    h->role = REC_HA_STANDBY;
    publish(h);
    rec_log_event(h->log, REC_LOG_INFO, "ha: campaigning for leadership", "key", h->leader_key,
                  "me", h->me_short, NULL);
    *ret = h;
    return 0;
}

static void on_timer_closed(uv_handle_t *t)
{
    free_ha(t->data);
}

static void on_revoked(const prov_etcd_result *r, void *ud)
{
    rec_ha *h = ud;
    if (r->err != 0)
        rec_log_event(h->log, REC_LOG_WARN,
                      "ha: could not revoke the lease; a standby takes over when it expires",
                      "error", r->errmsg, NULL);
    prov_etcd_close(h->etcd);
    uv_close((uv_handle_t *)&h->timer, on_timer_closed);
}

void rec_ha_stop(rec_ha *h)
{
    if (h == NULL || h->stopping)
        return;
    bool was_leader = h->role == REC_HA_LEADER;
    h->stopping = true;
    (void)uv_timer_stop(&h->timer);
    h->role = REC_HA_NONE;
    publish(h);
    rec_log_event(h->log, REC_LOG_INFO, "ha: stepping down", "was",
                  was_leader ? "leader" : "standby", NULL);
    char *body = h->lease ? prov_etcd_body_lease(h->lease) : NULL;
    /* A request in flight is cancelled by the close after the revoke; its callback sees
     * stopping and changes nothing. */
    if (body != NULL && prov_etcd_call(h->etcd, PROV_ETCD_REVOKE, body, on_revoked, h) == 0) {
        free(body);
        return;
    }
    free(body);
    prov_etcd_close(h->etcd);
    uv_close((uv_handle_t *)&h->timer, on_timer_closed);
}

/* True when the leader as last seen is another process. */
static bool other_leads(const rec_ha *h)
{
    return h->leader != NULL && strcmp(h->leader, h->me_short) != 0;
}

/* `imgrecon apply` with `ha` (cmd_apply.c) must not mutate while a daemon leads: it campaigns
 * like a daemon, and the first answer decides. The loop runs (one turn at a time; the tick wakes
 * it at least every 500 ms) until this process leads, another one is seen leading, or wait_ms
 * passes. */
int rec_ha_claim(uv_loop_t *loop, const spec_config *cfg, uint64_t wait_ms, rec_ha **ret,
                 char **ret_error)
{
    rec_ha_opts ho = {cfg, NULL, NULL, NULL, NULL};
    rec_ha *h = NULL;
    int rc = rec_ha_start(loop, &ho, &h);
    if (rc < 0)
        return rc;
    uint64_t until = boot_ns() + wait_ms * NS_PER_MS;
    while (!rec_ha_may_mutate(h) && !(h->role == REC_HA_STANDBY && other_leads(h)) &&
           boot_ns() < until)
        (void)uv_run(loop, UV_RUN_ONCE);
    if (rec_ha_may_mutate(h)) {
        *ret = h;
        return 0;
    }
    char *why = NULL;
    if (other_leads(h))
        rc = asprintf(&why, "%s", h->leader) < 0 ? -ENOMEM : -EBUSY;
    else
        rc = asprintf(&why, "no answer from etcd in %llu ms%s%s", (unsigned long long)wait_ms,
                      h->last_error[0] ? ": " : "", h->last_error) < 0
                 ? -ENOMEM
                 : -ETIMEDOUT;
    rec_ha_stop(h);
    if (rc != -ENOMEM)
        *ret_error = why;
    return rc;
}
