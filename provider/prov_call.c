/* The RPC client (prov_client.h): builds, signs, paces, sends and retries one API call at a time
 * per attempt. Calls of one action wait in a FIFO queue so that a later call never overtakes an
 * earlier one that waits for budget; different actions have different queues and run side by
 * side. The pacer decides when a call may go; a throttled answer cools the action down for a
 * window and the same call (same ClientToken) is retried; transient failures back off with full
 * jitter, bounded. The typed operations (prov_ops_*.c) sit on prov_client_call below. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "prov_call_int.h"
#include "prov_cleanup.h"
#include "prov_jmem.h"
#include "prov_resp.h"
#include "prov_secret.h"
#include "prov_sig.h"
#include "prov_str.h"

#ifndef IMGRECON_VERSION
#define IMGRECON_VERSION "dev"
#endif

/* Answers of one action recorded in the pacer together (see settle_later). */
#define SETTLE_MAX 64

typedef struct action_queue {
    prov_client *c;
    prov_product product;
    char action[64];
    pcall *head, *tail;
    uv_timer_t timer; /* armed while the head waits for budget, or to record answers */
    uint64_t settle_sent[SETTLE_MAX], settle_done[SETTLE_MAX]; /* answers not yet recorded */
    size_t n_settle;
    uint64_t max_wait_ms; /* prov_client_set_max_wait; 0: a call may wait as long as it takes */
    struct action_queue *next;
} action_queue;

struct prov_client {
    uv_loop_t *loop;
    prov_client_opts o;
    char *endpoint, *method, *ca_file;
    prov_http *http;
    action_queue *queues;
    pcall *backoff; /* calls waiting out a backoff (their own timers) */
    size_t pending;
    unsigned open_handles;
    bool closing;
    uint64_t refresh_retry_at;    /* loop time before which a failed refresh is not retried */
    struct refresh_job *job;      /* the credential refresh on the thread pool; NULL: none */
    bool held_for_cred;           /* a queue waits for the refresh (the credential expired) */
    bool prepared;                /* prepare has run */
    bool (*may_mutate)(void *ud); /* the HA fence (prov_client_set_fence); NULL: none */
    void *fence_ud;
    int (*before_send)(void *ud); /* prov_client_set_before_send; NULL: none */
    void *before_send_ud;
};

struct pcall {
    prov_client *c;
    action_queue *q;
    prov_product product;
    char *action;
    char *region;
    prov_kvs params;
    prov_json_cb done;
    void *ud;
    unsigned attempt, n_throttled, n_transient;
    uint64_t started_ms;     /* uv_now when queued: durations are monotonic */
    uint64_t queued_boot_ms; /* prov_pacer_now_ms (boot clock) when queued: for max_wait_ms */
    uint64_t paced_ms;       /* when the pacer granted the attempt in flight (0: unpaced) */
    uv_timer_t timer;        /* backoff */
    bool timer_open;
    bool in_flight;
    pcall *next, *prev; /* queue or backoff list */
};

static const char *const product_names[] = {"swas", "ecs", "sts"};
static const char *const product_versions[] = {"2020-06-01", "2014-05-26", "2015-04-01"};

const char *prov_product_name(prov_product p)
{
    return (unsigned)p < 3 ? product_names[p] : "unknown";
}

const char *prov_product_version(prov_product p)
{
    return (unsigned)p < 3 ? product_versions[p] : "";
}

static void pump(action_queue *q);
static void send_attempt(pcall *k);

static void maybe_free_client(prov_client *c)
{
    if (!c->closing || c->open_handles > 0)
        return;
    void (*on_closed)(void *) = c->o.on_closed;
    void *ud = c->o.closed_ud;
    free(c->endpoint);
    free(c->method);
    free(c->ca_file);
    free(c);
    if (on_closed != NULL)
        on_closed(ud);
}

/* Close callback of a call's backoff timer: the call's memory goes here. */
static void call_timer_closed(uv_handle_t *h)
{
    pcall *k = h->data;
    prov_client *c = k->c;
    prov_kvs_clear(&k->params);
    free(k->action);
    free(k->region);
    free(k);
    c->open_handles--;
    maybe_free_client(c);
}

/* Close callback of an action queue's timer. */
static void queue_timer_closed(uv_handle_t *h)
{
    action_queue *q = h->data;
    prov_client *c = q->c;
    free(q);
    c->open_handles--;
    maybe_free_client(c);
}

uint64_t prov_client_rate_window(const prov_client *c, prov_product product, const char *action,
                                 unsigned *ret_calls)
{
    unsigned calls = 10;
    uint64_t window = 60000;
    if (c->o.rate_for != NULL)
        c->o.rate_for(c->o.rate_ud, product, action, &calls, &window);
    if (calls == 0)
        calls = 1;
    if (window == 0)
        window = 1;
    if (ret_calls)
        *ret_calls = calls;
    return window;
}

int prov_client_new(uv_loop_t *loop, const prov_client_opts *opts, prov_client **ret)
{
    if (loop == NULL || opts == NULL || opts->cred == NULL)
        return -EINVAL;
    prov_client *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->loop = loop;
    c->o = *opts;
    if (c->o.signature == 0)
        c->o.signature = 3;
    if (c->o.max_retries == 0)
        c->o.max_retries = 5;
    if (c->o.max_throttled == 0)
        c->o.max_throttled = 10;
    if (c->o.backoff_base_ms == 0)
        c->o.backoff_base_ms = 500;
    if (c->o.backoff_max_ms == 0)
        c->o.backoff_max_ms = 30000;
    c->endpoint = opts->endpoint ? strdup(opts->endpoint) : NULL;
    c->method = strdup(opts->method ? opts->method : "POST");
    c->ca_file = opts->ca_file ? strdup(opts->ca_file) : NULL;
    if ((opts->endpoint && !c->endpoint) || !c->method || (opts->ca_file && !c->ca_file)) {
        free(c->endpoint);
        free(c->method);
        free(c->ca_file);
        free(c);
        return -ENOMEM;
    }
    /* Trailing slashes of the base URL are dropped; "/?query" is appended per call. */
    if (c->endpoint) {
        size_t n = strlen(c->endpoint);
        while (n > 0 && c->endpoint[n - 1] == '/')
            c->endpoint[--n] = '\0';
    }
    c->o.endpoint = c->endpoint;
    c->o.method = c->method;
    c->o.ca_file = c->ca_file;
    prov_http_opts ho = {.connect_timeout_ms = opts->connect_timeout_ms,
                         .timeout_ms = opts->timeout_ms,
                         .max_response = opts->max_response,
                         .ca_file = c->ca_file};
    int rc = prov_http_new(loop, &ho, &c->http);
    if (rc < 0) {
        free(c->endpoint);
        free(c->method);
        free(c->ca_file);
        free(c);
        return rc;
    }
    *ret = c;
    return 0;
}

size_t prov_client_pending(const prov_client *c)
{
    return c ? c->pending : 0;
}

/* Finishes a call: the callback runs once, then the call's timer closes and frees it. */
static void finish(pcall *k, json_t *body, const prov_error *err)
{
    prov_client *c = k->c;
    c->pending--;
    k->done(body, err, k->ud);
    uv_close((uv_handle_t *)&k->timer, call_timer_closed);
}

static void finish_local(pcall *k, int sys, const char *message)
{
    prov_error err = {0};
    if (prov_error_set(&err, 0, sys, NULL, message, NULL, k->action) < 0) {
        err.cls = PROV_ERR_PERMANENT;
        err.sys = -ENOMEM;
    }
    finish(k, NULL, &err);
    prov_error_clear(&err);
}

static action_queue *queue_for(prov_client *c, prov_product product, const char *action)
{
    for (action_queue *q = c->queues; q; q = q->next)
        if (q->product == product && strcmp(q->action, action) == 0)
            return q;
    action_queue *q = calloc(1, sizeof(*q));
    if (q == NULL)
        return NULL;
    q->c = c;
    q->product = product;
    snprintf(q->action, sizeof(q->action), "%s", action);
    if (uv_timer_init(c->loop, &q->timer) != 0) {
        free(q);
        return NULL;
    }
    q->timer.data = q;
    c->open_handles++;
    q->next = c->queues;
    c->queues = q;
    return q;
}

static void queue_push(action_queue *q, pcall *k, bool front)
{
    k->q = q;
    k->prev = k->next = NULL;
    if (q->head == NULL) {
        q->head = q->tail = k;
    } else if (front) {
        k->next = q->head;
        q->head->prev = k;
        q->head = k;
    } else {
        k->prev = q->tail;
        q->tail->next = k;
        q->tail = k;
    }
}

static pcall *queue_pop(action_queue *q)
{
    pcall *k = q->head;
    if (k == NULL)
        return NULL;
    q->head = k->next;
    if (q->head)
        q->head->prev = NULL;
    else
        q->tail = NULL;
    k->next = k->prev = NULL;
    return k;
}

static void on_queue_timer(uv_timer_t *t)
{
    action_queue *q = container_of(t, action_queue, timer);
    pump(q);
}

static const char *pacer_key(const prov_client *c)
{
    return c->o.pacer_key != NULL && *c->o.pacer_key ? c->o.pacer_key : c->o.cred->access_key_id;
}

#define REFRESH_RETRY_MS 1000

/* A credential refresh running on libuv's thread pool (prov_client_opts.refresh): STS and the
 * metadata service answer within their timeouts (10 s), which the loop must not wait out. */
typedef struct refresh_job {
    uv_work_t work;
    prov_client *c;
    prov_credential fresh;
    char *error;
    int rc;
} refresh_job;

/* On the thread pool: the owner's refresh, which touches nothing the loop uses. */
static void refresh_work(uv_work_t *w)
{
    refresh_job *j = w->data;
    j->rc = j->c->o.refresh(j->c->o.refresh_ud, &j->fresh, &j->error);
}

/* Back on the loop: the owner installs the new credential or logs the failure (not after
 * close), and the queues that waited for it go on. The job counts as an open handle, so the
 * client (and what its owner lent it) outlives the thread that reads them. */
static void refresh_done(uv_work_t *w, int status)
{
    refresh_job *j = w->data;
    prov_client *c = j->c;
    c->job = NULL;
    c->open_handles--;
    if (status < 0)
        j->rc = -ECANCELED;
    if (!c->closing) {
        if (j->rc < 0)
            c->refresh_retry_at = uv_now(c->loop) + REFRESH_RETRY_MS;
        if (c->o.refreshed != NULL)
            c->o.refreshed(c->o.refresh_ud, j->rc, &j->fresh, j->error);
    }
    prov_credential_clear(&j->fresh);
    free(j->error);
    free(j);
    if (c->closing) {
        maybe_free_client(c);
        return;
    }
    if (c->held_for_cred) {
        c->held_for_cred = false;
        for (action_queue *q = c->queues; q != NULL; q = q->next)
            if (q->head != NULL)
                (void)uv_timer_start(&q->timer, on_queue_timer, 0, 0);
    }
}

/* Queues the refresh on the thread pool. Returns 0 or a negative errno. */
static int start_refresh(prov_client *c)
{
    refresh_job *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return -ENOMEM;
    j->c = c;
    j->work.data = j;
    int rc = uv_queue_work(c->loop, &j->work, refresh_work, refresh_done);
    if (rc < 0) {
        free(j);
        return rc;
    }
    c->job = j;
    c->open_handles++;
    return 0;
}

/* Before a call leaves: starts the refresh of a temporary credential within its margin, off the
 * loop. Returns 0 to send now (the credential is still valid, refreshed or not), or the time to
 * wait when it has expired: until the refresh ends (which wakes the queues sooner) or can be
 * tried again. Called by pump. */
static uint64_t credential_wait(prov_client *c)
{
    if (c->o.refresh == NULL || !prov_cred_needs_refresh(c->o.cred, time(NULL)))
        return 0;
    uint64_t now = uv_now(c->loop);
    if (c->job == NULL && now >= c->refresh_retry_at && start_refresh(c) < 0)
        c->refresh_retry_at = now + REFRESH_RETRY_MS;
    if (time(NULL) < c->o.cred->expiration)
        return 0;
    c->held_for_cred = true;
    if (c->job != NULL || c->refresh_retry_at <= now)
        return REFRESH_RETRY_MS;
    return c->refresh_retry_at - now;
}

/* Read-only actions pass the fence; every other action changes the account. */
static bool action_mutates(const char *action)
{
    return strncmp(action, "List", 4) != 0 && strncmp(action, "Describe", 8) != 0 &&
           strncmp(action, "Get", 3) != 0;
}

void prov_client_set_fence(prov_client *c, bool (*may_mutate)(void *ud), void *ud)
{
    c->may_mutate = may_mutate;
    c->fence_ud = ud;
}

/* Calls waiting in a queue (bounded by what the executor starts at once). */
static unsigned queue_len(const action_queue *q)
{
    unsigned n = 0;
    for (const pcall *k = q->head; k != NULL && n < UINT32_MAX; k = k->next)
        n++;
    return n;
}

/* Records the answers of one action's calls in the pacer in one transaction (see on_response):
 * called before the next budget decision of that action and when the client closes. */
static void flush_settles(action_queue *q)
{
    if (q->n_settle == 0)
        return;
    prov_client *c = q->c;
    uint64_t window = prov_client_rate_window(c, q->product, q->action, NULL);
    (void)prov_pacer_settle_n(c->o.pacer, pacer_key(c), prov_product_name(q->product), q->action,
                              window, q->settle_sent, q->settle_done, q->n_settle);
    q->n_settle = 0;
}

/* Asks the pacer for slots for every queued call of the action at once (one transaction of the
 * call log for the whole batch). Returns the slots granted, or 0 with *ret_wait set; a pacer
 * failure fails the head call and returns 0 with *ret_wait 0. */
static unsigned take_slots(action_queue *q, uint64_t now, uint64_t *ret_wait)
{
    prov_client *c = q->c;
    unsigned calls, got = 0;
    uint64_t window = prov_client_rate_window(c, q->product, q->action, &calls);
    int rc = prov_pacer_acquire_n(c->o.pacer, pacer_key(c), prov_product_name(q->product),
                                  q->action, calls, window, now, queue_len(q), &got, ret_wait);
    if (rc < 0) {
        finish_local(queue_pop(q), rc,
                     rc == -EUSERS ? "the call budget (pacer) in the state directory was written "
                                     "by another host or time namespace since this process "
                                     "wrote it: give each host a state directory of its own "
                                     "(hosts share a budget through `ha`)"
                                   : "the call budget (pacer) could not be read");
        *ret_wait = 0;
        return 0;
    }
    if (got == 0 && *ret_wait > 0 && c->o.on_wait != NULL)
        c->o.on_wait(c->o.event_ud, q->product, q->action, *ret_wait);
    return got;
}

void prov_client_set_before_send(prov_client *c, int (*before_send)(void *ud), void *ud)
{
    c->before_send = before_send;
    c->before_send_ud = ud;
}

int prov_client_set_max_wait(prov_client *c, prov_product product, const char *action,
                             uint64_t max_ms)
{
    if (c == NULL || action == NULL)
        return -EINVAL;
    action_queue *q = queue_for(c, product, action);
    if (q == NULL)
        return -ENOMEM;
    q->max_wait_ms = max_ms;
    return 0;
}

/* Fails, unsent and before any budget is taken, every call of q queued longer than the queue's
 * max_wait_ms (prov_client_set_max_wait): what its caller checked before queueing it is too old
 * to act on. The calls are taken out of the queue first, then finished, since a done callback
 * may queue calls again. Returns true when it failed any. Called by pump. */
static bool fail_stale(action_queue *q)
{
    if (q->max_wait_ms == 0)
        return false;
    uint64_t now = prov_pacer_now_ms(q->c->o.pacer); /* the boot clock: a suspend counts */
    pcall *stale = NULL, **tail = &stale;
    for (pcall *k = q->head, *next; k != NULL; k = next) {
        next = k->next;
        if (now - k->queued_boot_ms <= q->max_wait_ms)
            continue;
        if (k->prev != NULL)
            k->prev->next = k->next;
        else
            q->head = k->next;
        if (k->next != NULL)
            k->next->prev = k->prev;
        else
            q->tail = k->prev;
        k->next = k->prev = NULL;
        *tail = k;
        tail = &k->next;
    }
    for (pcall *k = stale, *next; k != NULL; k = next) {
        next = k->next;
        k->next = NULL;
        finish_local(k, -ESTALE,
                     "not sent: it waited for the rate limit longer than its caller allows "
                     "after looking at the images");
    }
    return stale != NULL;
}

/* Runs the before-send hook for a batch of a mutating action; on failure fails the batch's
 * calls locally (nothing is sent) and returns false. */
static bool ready_to_send(action_queue *q, unsigned got)
{
    prov_client *c = q->c;
    if (c->before_send == NULL || !action_mutates(q->action))
        return true;
    int rc = c->before_send(c->before_send_ud);
    if (rc >= 0)
        return true;
    for (unsigned i = 0; i < got && q->head != NULL; i++)
        finish_local(queue_pop(q), rc, "not sent: the journal could not be written");
    return false;
}

/* True when the fence lets calls of q's action leave now: no fence, a read, or a fence that says
 * yes. */
static bool fence_open(const action_queue *q)
{
    const prov_client *c = q->c;
    return c->may_mutate == NULL || !action_mutates(q->action) || c->may_mutate(c->fence_ud);
}

/* Fails the head call of q locally because the fence said no (nothing is sent). */
static void fence_refuse(action_queue *q)
{
    finish_local(queue_pop(q), -EPERM,
                 "not sent: this process is not the leader or its lease may have lapsed "
                 "(HA fencing)");
}

/* Sends queued calls of one action while the pacer allows; arms the queue timer otherwise. The
 * fence is asked right before each attempt of a mutating action (retries included), after any
 * wait for the budget, so a process that lost its lease while a call was queued sends nothing.
 * The pacer grants the queue's calls in one batch; the fence is asked for the batch before the
 * budget is taken and again right before it leaves, which is the same instant for every call of
 * it: taking the budget (synchronous requests to etcd with `ha`) and the before-send hook (a
 * journal fsync) block the loop, long enough for a lease to lapse meanwhile. */
static void pump(action_queue *q)
{
    prov_client *c = q->c;
    if (q->head != NULL && !c->closing && !c->prepared) {
        c->prepared = true;
        if (c->o.prepare != NULL)
            c->o.prepare(c->o.prepare_ud);
    }
    flush_settles(q);
    while (q->head != NULL && !c->closing) {
        uint64_t wait = credential_wait(c), now = prov_pacer_now_ms(c->o.pacer);
        if (!fence_open(q)) {
            fence_refuse(q);
            continue;
        }
        if (fail_stale(q))
            continue;
        unsigned got = 0;
        if (wait == 0 && c->o.pacer == NULL)
            got = 1;
        else if (wait == 0 && (got = take_slots(q, now, &wait)) == 0 && wait == 0)
            continue; /* the pacer failed the head call */
        if (got > 0 && !ready_to_send(q, got))
            continue;
        if (got > 0 && !fence_open(q)) {
            for (unsigned i = 0; i < got && q->head != NULL; i++)
                fence_refuse(q);
            continue;
        }
        for (unsigned i = 0; i < got && q->head != NULL && !c->closing; i++) {
            pcall *k = queue_pop(q);
            k->paced_ms = c->o.pacer != NULL ? now : 0;
            send_attempt(k);
        }
        if (wait > 0) {
            (void)uv_timer_start(&q->timer, on_queue_timer, wait, 0);
            return;
        }
    }
}

static void on_backoff_timer(uv_timer_t *t)
{
    pcall *k = container_of(t, pcall, timer);
    prov_client *c = k->c;
    if (k->prev)
        k->prev->next = k->next;
    else
        c->backoff = k->next;
    if (k->next)
        k->next->prev = k->prev;
    k->next = k->prev = NULL;
    /* Back to the front of its queue: it was earlier than anything queued since. */
    queue_push(k->q, k, true);
    pump(k->q);
}

/* Full jitter: a random delay in [0, min(max, base * 2^n)]. */
static uint64_t backoff_ms(const prov_client *c, unsigned n)
{
    uint64_t cap = c->o.backoff_base_ms;
    for (unsigned i = 0; i < n && cap < c->o.backoff_max_ms; i++)
        cap *= 2;
    if (cap > c->o.backoff_max_ms)
        cap = c->o.backoff_max_ms;
    unsigned char r[4];
    char nonce[33];
    uint32_t x = 0;
    if (prov_random_nonce(nonce) == 0) {
        for (int i = 0; i < 4; i++)
            r[i] = (unsigned char)nonce[i * 2];
        x = (uint32_t)r[0] << 24 | (uint32_t)r[1] << 16 | (uint32_t)r[2] << 8 | r[3];
        x ^= (uint32_t)strtoul(nonce + 24, NULL, 16);
    }
    return cap / 2 + (cap > 1 ? x % (cap / 2 + 1) : 0);
}

static void emit(pcall *k, long status, const char *code, const char *request_id,
                 prov_err_class cls, uint64_t retry_in)
{
    prov_client *c = k->c;
    if (c->o.on_event == NULL)
        return;
    prov_call_event ev = {
        .product = k->product,
        .action = k->action,
        .region = k->region,
        .attempt = k->attempt,
        .http_status = status,
        .code = code,
        .request_id = request_id,
        .cls = cls,
        .duration_ms = uv_now(k->c->loop) - k->started_ms,
        .retry_in_ms = retry_in,
    };
    c->o.on_event(c->o.event_ud, &ev);
}

/* Parks a call on the backoff list until its own timer puts it back at the front of its queue. */
static void backoff_push(pcall *k, uint64_t delay_ms)
{
    prov_client *c = k->c;
    k->next = c->backoff;
    k->prev = NULL;
    if (c->backoff)
        c->backoff->prev = k;
    c->backoff = k;
    (void)uv_timer_start(&k->timer, on_backoff_timer, delay_ms, 0);
}

/* The call counts from its answer from now on (prov_pacer_settle). Answers that arrive together
 * are recorded in one transaction: the settle waits in the queue until the queue's timer runs
 * pump, at once unless the queue waits for budget (then pump runs when the wait ends, before the
 * next budget decision). A closing client, or a full batch, records at once. A failure to record
 * only leaves the earlier, slightly less cautious time. */
static void settle_later(pcall *k)
{
    prov_client *c = k->c;
    action_queue *q = k->q;
    uint64_t done = prov_pacer_now_ms(c->o.pacer);
    if (q == NULL || c->closing || q->n_settle == SETTLE_MAX) {
        uint64_t window = prov_client_rate_window(c, k->product, k->action, NULL);
        (void)prov_pacer_settle(c->o.pacer, pacer_key(c), prov_product_name(k->product), k->action,
                                window, k->paced_ms, done);
        return;
    }
    q->settle_sent[q->n_settle] = k->paced_ms;
    q->settle_done[q->n_settle++] = done;
    if (!uv_is_active((uv_handle_t *)&q->timer))
        (void)uv_timer_start(&q->timer, on_queue_timer, 0, 0);
}

/* Handles one HTTP answer: success, a retry (throttled or transient) or a final error. */
static void on_response(const prov_http_response *res, void *ud)
{
    pcall *k = ud;
    prov_client *c = k->c;
    k->in_flight = false;
    if (k->paced_ms != 0) {
        settle_later(k);
        k->paced_ms = 0;
    }
    json_t *body = NULL;
    _cleanup_(prov_error_clear) prov_error err = {0};
    _cleanup_free_ char *code = NULL;
    /* The API's words may quote the request's SecurityToken: wiped, and stored redacted. */
    _cleanup_wipe_ char *message = NULL;
    _cleanup_free_ char *rid = NULL;
    int sys = res->err;

    if (sys == 0 && res->status >= 200 && res->status < 300) {
        json_error_t je;
        /* Duplicate keys make an answer ambiguous ("last one wins" could turn a full page into
         * an empty one); the parsers reject them, and so does the call. */
        body = prov_json_loadb(res->body, res->body_len, JSON_REJECT_DUPLICATES, &je);
        if (body != NULL && json_is_object(body)) {
            const char *r = json_string_value(json_object_get(body, "RequestId"));
            emit(k, res->status, NULL, r, PROV_ERR_NONE, 0);
            finish(k, body, NULL);
            json_decref(body);
            return;
        }
        json_decref(body);
        body = NULL;
        sys = -EPROTO;
    } else if (sys == 0) {
        json_t *eb = prov_json_load_object(res->body, res->body_len);
        (void)prov_parse_error_body(eb, &code, &message, &rid);
        json_decref(eb);
    }
    const char *msg = message;
    if (msg == NULL && sys == -EPROTO)
        msg = "malformed response body (not a JSON object)";
    else if (msg == NULL && sys != 0)
        msg = res->errmsg;
    if (prov_error_set(&err, sys ? 0 : res->status, sys, code, msg, rid, k->action) < 0) {
        err.cls = PROV_ERR_PERMANENT;
        err.sys = -ENOMEM;
    }
    if (c->closing || sys == -ECANCELED) {
        emit(k, err.http_status, err.code, err.request_id, err.cls, 0);
        finish(k, NULL, &err);
        return;
    }
    uint64_t retry_in = 0;
    if (err.cls == PROV_ERR_THROTTLED && k->n_throttled < c->o.max_throttled) {
        k->n_throttled++;
        unsigned calls;
        uint64_t window = prov_client_rate_window(c, k->product, k->action, &calls);
        if (c->o.pacer != NULL)
            (void)prov_pacer_cooldown(c->o.pacer, pacer_key(c), prov_product_name(k->product),
                                      k->action, window, prov_pacer_now_ms(c->o.pacer));
        retry_in = window;
        emit(k, err.http_status, err.code, err.request_id, err.cls, retry_in);
        if (c->o.pacer == NULL) {
            /* Unpaced: nothing else holds the action back, so the call waits the window out
             * itself instead of going again at once. */
            backoff_push(k, retry_in);
            return;
        }
        /* The pacer now holds the whole action back a window; requeue at the front. */
        queue_push(k->q, k, true);
        pump(k->q);
        return;
    }
    if (err.cls == PROV_ERR_TRANSIENT && k->n_transient < c->o.max_retries) {
        retry_in = backoff_ms(c, k->n_transient);
        k->n_transient++;
        emit(k, err.http_status, err.code, err.request_id, err.cls, retry_in);
        backoff_push(k, retry_in);
        return;
    }
    emit(k, err.http_status, err.code, err.request_id, err.cls, 0);
    finish(k, NULL, &err);
}

/* host[:port] of a URL, for the V3 host header. */
static char *url_host(const char *url)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    size_t n = strcspn(p, "/?#");
    return strndup(p, n);
}

/* Signs one attempt of k (new nonce and timestamp every time) and hands it to the HTTP layer,
 * which copies what it needs: everything built here is freed on return, the query and URL
 * wiped (with V1 they carry the SecurityToken and the Signature). Returns 0 or -errno. */
static int sign_and_send(pcall *k)
{
    prov_client *c = k->c;
    const prov_credential *cred = c->o.cred;
    _cleanup_(prov_kvs_clear) prov_kvs params = {0};
    _cleanup_(prov_kvs_clear) prov_kvs headers = {0};
    _cleanup_free_ char *base = NULL;
    _cleanup_free_ char *host = NULL;
    _cleanup_wipe_ char *query = NULL;
    _cleanup_wipe_ char *url = NULL;
    char nonce[33], ts[21];

    int rc = prov_random_nonce(nonce);
    if (rc < 0)
        return rc;
    prov_format_utc(time(NULL), ts);
    if (c->endpoint != NULL)
        base = prov_asprintf("%s", c->endpoint);
    else
        base = prov_asprintf("https://%s.%s.aliyuncs.com", k->product == PROV_SWAS ? "swas" : "ecs",
                             k->region ? k->region : "cn-hangzhou");
    host = base != NULL ? url_host(base) : NULL;
    if (host == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < k->params.n; i++)
        if ((rc = prov_kvs_add(&params, k->params.v[i].key, k->params.v[i].value)) < 0)
            return rc;
    if (c->o.signature == 1) {
        if ((rc = prov_kvs_set(&params, "Action", k->action)) < 0 ||
            (rc = prov_kvs_set(&params, "Version", prov_product_version(k->product))) < 0 ||
            (rc = prov_kvs_set(&params, "Format", "JSON")) < 0 ||
            (rc = prov_sig_v1_sign(&params, c->method, cred->access_key_id, cred->access_key_secret,
                                   cred->security_token, nonce, ts)) < 0)
            return rc;
    } else {
        if ((rc = prov_sig_v3_sign(&headers, c->method, host, "/", &params, "", 0, NULL, k->action,
                                   prov_product_version(k->product), cred->access_key_id,
                                   cred->access_key_secret, cred->security_token, nonce, ts)) < 0)
            return rc;
    }
    if ((rc = prov_kvs_add(&headers, "user-agent", "imgrecon/" IMGRECON_VERSION)) < 0 ||
        (rc = prov_kvs_add(&headers, "accept", "application/json")) < 0)
        return rc;
    if ((rc = prov_canonical_query(&params, NULL, &query)) < 0)
        return rc;
    url = prov_asprintf("%s/?%s", base, query);
    if (url == NULL)
        return -ENOMEM;
    return prov_http_request(c->http, c->method, url, &headers, NULL, 0, on_response, k);
}

/* Sends the next attempt of k (first call, retry, after a backoff); a request that cannot be
 * built ends the call as a permanent local error. */
static void send_attempt(pcall *k)
{
    k->attempt++;
    k->in_flight = true;
    int rc = sign_and_send(k);
    if (rc < 0) {
        k->in_flight = false;
        emit(k, 0, NULL, NULL, PROV_ERR_PERMANENT, 0);
        finish_local(k, rc, "the request could not be built");
    }
}

int prov_client_call(prov_client *c, prov_product product, const char *action, const char *region,
                     const prov_kvs *params, prov_json_cb done, void *ud)
{
    if (c == NULL || action == NULL || done == NULL)
        return -EINVAL;
    if (c->closing)
        return -ECANCELED;
    pcall *k = calloc(1, sizeof(*k));
    if (k == NULL)
        return -ENOMEM;
    k->c = c;
    k->product = product;
    k->done = done;
    k->ud = ud;
    k->started_ms = uv_now(c->loop);
    k->queued_boot_ms = prov_pacer_now_ms(c->o.pacer);
    k->action = strdup(action);
    k->region = region ? strdup(region) : NULL;
    int rc = (k->action && (!region || k->region)) ? 0 : -ENOMEM;
    if (rc == 0 && region != NULL && prov_kvs_get(params ? params : &k->params, "RegionId") == NULL)
        rc = prov_kvs_add(&k->params, "RegionId", region);
    for (size_t i = 0; rc == 0 && params != NULL && i < params->n; i++)
        rc = prov_kvs_add(&k->params, params->v[i].key, params->v[i].value);
    action_queue *q = rc == 0 ? queue_for(c, product, action) : NULL;
    if (q == NULL || uv_timer_init(c->loop, &k->timer) != 0) {
        prov_kvs_clear(&k->params);
        free(k->action);
        free(k->region);
        free(k);
        return rc < 0 ? rc : -ENOMEM;
    }
    k->timer.data = k;
    c->open_handles++;
    c->pending++;
    queue_push(q, k, false);
    /* Never call back from inside prov_client_call: the queue is pumped from the loop. */
    if (!uv_is_active((uv_handle_t *)&q->timer))
        (void)uv_timer_start(&q->timer, on_queue_timer, 0, 0);
    return 0;
}

void prov_client_close(prov_client *c)
{
    if (c == NULL || c->closing)
        return;
    c->closing = true;
    /* A refresh that has not started yet never will; one running ends on its own (bounded by
     * its timeouts) and the client is freed after it. */
    if (c->job != NULL)
        (void)uv_cancel((uv_req_t *)&c->job->work);
    /* Queued and backing-off calls are cancelled here; calls in flight are cancelled by the HTTP
     * layer's close, which reports -ECANCELED through on_response. */
    for (action_queue *q = c->queues; q; q = q->next) {
        (void)uv_timer_stop(&q->timer);
        flush_settles(q);
        pcall *k;
        while ((k = queue_pop(q)) != NULL)
            finish_local(k, -ECANCELED, "cancelled: the client is closing");
    }
    while (c->backoff != NULL) {
        pcall *k = c->backoff;
        c->backoff = k->next;
        k->next = k->prev = NULL;
        (void)uv_timer_stop(&k->timer);
        finish_local(k, -ECANCELED, "cancelled: the client is closing");
    }
    prov_http_close(c->http);
    c->http = NULL;
    for (action_queue *q = c->queues; q;) {
        action_queue *next = q->next;
        uv_close((uv_handle_t *)&q->timer, queue_timer_closed);
        q = next;
    }
    c->queues = NULL;
    if (c->open_handles == 0)
        maybe_free_client(c);
}
