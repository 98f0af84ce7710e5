/* The pacer's call log in etcd (internal/prov_pacer_etcd.h): with `ha`, every process configured
 * for the same prefix (the leader, the standbys, a `plan` on a laptop) takes its call slots from
 * the same place, so together they never exceed N calls in any window.
 *
 * Layout, per pacer key (access key hash, product, action):
 *
 *     <prefix>/pacer/<key>/slot/<i>   i in [0, N): the wall-clock ms of the call that last used
 *                                     the slot (decimal text)
 *     <prefix>/pacer/<key>/cooldown   wall-clock ms until which no call may go (throttled)
 *
 * A call takes a slot whose time is at least a window old (or that does not exist yet) with a
 * compare-and-put on the slot's mod_revision (create_revision 0 for a new one): of two processes
 * racing for the same slot exactly one wins, the other reads again. A slot is reused only a
 * window after its last call, so at most N calls start in any window: the same sliding window
 * as the file backend, shared. Slots are reused forever, so the keys stay bounded (N per action)
 * and need no lease. Taking k slots costs one range and one txn whatever k (up to TXN_MAX at
 * once), the txn comparing every slot's revision; so does moving k settled calls.
 *
 * Times are wall-clock ms because they cross hosts: the hosts' clocks must agree (NTP); a host
 * whose clock runs d ms ahead may reuse a slot d ms early. Times in the future count as now,
 * as in the file backend, so a clock step never blocks for more than a window. */
#include <errno.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prov_pacer_etcd.h"

#define CONTENTION_RETRIES 8
#define CONTENTION_WAIT_MS 20
#define TXN_MAX 32   /* slots taken or moved in one txn (etcd allows 128 operations in one) */
#define BASE_MAX 480 /* "<prefix>/pacer/<key>/" */

/* A parsed view of one key's slots. */
typedef struct slots {
    prov_etcd_result r;  /* owns the kvs */
    uint64_t cool_until; /* 0: none */
    int64_t cool_rev;    /* mod_revision of the cooldown key, 0: absent */
} slots;

static int parse_ms(const prov_etcd_kv *kv, uint64_t *ret)
{
    char *end = NULL;
    if (kv->value_len == 0 || kv->value_len > 20 || kv->value[0] < '0' || kv->value[0] > '9')
        return -EPROTO;
    errno = 0;
    unsigned long long v = strtoull(kv->value, &end, 10);
    if (errno != 0 || *end != '\0')
        return -EPROTO;
    *ret = v;
    return 0;
}

/* The part of kv's key after base; NULL when the key is not under base (a confused answer). */
static const char *suffix(const prov_etcd_kv *kv, const char *base)
{
    size_t blen = strlen(base);
    return strncmp(kv->key, base, blen) == 0 ? kv->key + blen : NULL;
}

/* Reads every key under base (one range). */
static int load(prov_etcd *e, const char *base, slots *s)
{
    char *body = prov_etcd_body_range(base, true);
    memset(s, 0, sizeof(*s));
    if (body == NULL)
        return -ENOMEM;
    prov_etcd_call_sync(e, PROV_ETCD_RANGE, body, &s->r);
    free(body);
    if (s->r.err != 0)
        return s->r.err;
    for (size_t i = 0; i < s->r.n_kvs; i++) {
        const prov_etcd_kv *kv = &s->r.kvs[i];
        const char *name = suffix(kv, base);
        if (name != NULL && strcmp(name, "cooldown") == 0) {
            if (parse_ms(kv, &s->cool_until) < 0)
                s->cool_until = UINT64_MAX; /* garbage: be careful for a window */
            s->cool_rev = kv->mod_revision;
        }
    }
    return 0;
}

/* The slot i's kv, NULL when absent. */
static const prov_etcd_kv *slot_kv(const slots *s, const char *base, unsigned i)
{
    char name[32];
    (void)snprintf(name, sizeof(name), "slot/%u", i);
    for (size_t k = 0; k < s->r.n_kvs; k++) {
        const char *n = suffix(&s->r.kvs[k], base);
        if (n != NULL && strcmp(n, name) == 0)
            return &s->r.kvs[k];
    }
    return NULL;
}

/* When slot i frees (0: free now). A slot whose value does not parse counts as used now. */
static uint64_t slot_frees(const prov_etcd_kv *kv, uint64_t window, uint64_t now)
{
    uint64_t t = now;
    if (kv == NULL)
        return 0;
    if (parse_ms(kv, &t) < 0 || t > now)
        t = now;
    return t + window <= now ? 0 : t + window;
}

/* One conditional put of every slot in puts (prov_etcd_body_put_all_if): 1 when it won, 0 when
 * another process changed one of them first (nothing was written). */
static int put_all(prov_etcd *e, const prov_etcd_put *puts, size_t n)
{
    prov_etcd_result r;
    char *body = prov_etcd_body_put_all_if(puts, n);
    if (body == NULL)
        return -ENOMEM;
    prov_etcd_call_sync(e, PROV_ETCD_TXN, body, &r);
    free(body);
    int rc = r.err != 0 ? r.err : r.succeeded ? 1 : 0;
    prov_etcd_result_clear(&r);
    return rc;
}

/* What the slots say at now for a caller that wants `want` calls. */
typedef struct slot_view {
    unsigned take[TXN_MAX]; /* free slots to take, lowest index first (only when wait is 0) */
    unsigned n_take;
    unsigned left;  /* calls still allowed in the window (0 while cooling down) */
    uint64_t wait;  /* until a call may go (0: now) */
    uint64_t after; /* until a slot frees once the listed ones are taken */
} slot_view;

static void view_slots(const slots *s, const char *base, unsigned calls, uint64_t window,
                       uint64_t now, unsigned want, slot_view *v)
{
    uint64_t busy = UINT64_MAX, cool = s->cool_until > now ? s->cool_until - now : 0;
    unsigned n_free = 0;
    if (cool > window)
        cool = window; /* a clock step never holds an action back more than a window */
    memset(v, 0, sizeof(*v));
    for (unsigned i = 0; i < calls; i++) {
        uint64_t frees = slot_frees(slot_kv(s, base, i), window, now);
        if (frees == 0) {
            if (cool == 0 && v->n_take < want && v->n_take < TXN_MAX)
                v->take[v->n_take++] = i;
            n_free++;
        } else if (frees - now < busy) {
            busy = frees - now;
        }
    }
    uint64_t slots_wait = n_free > 0 ? 0 : busy;
    v->wait = cool > slots_wait ? cool : slots_wait;
    v->left = cool > 0 ? 0 : n_free;
    /* Taking fewer than every free slot leaves one free; otherwise the next to free is the
     * oldest busy slot, or one just taken a window from now. */
    v->after = n_free > v->n_take ? 0 : busy < window ? busy : window;
}

/* Takes up to want free slots (at most TXN_MAX) in one txn: one range and one txn however many,
 * again after a lost race. */
static int op_acquire(prov_etcd *e, const char *base, unsigned calls, uint64_t window, uint64_t now,
                      unsigned want, unsigned *ret_got, uint64_t *ret_wait)
{
    char keys[TXN_MAX][BASE_MAX + 32], val[24];
    prov_etcd_put puts[TXN_MAX];
    (void)snprintf(val, sizeof(val), "%" PRIu64, now);
    for (int attempt = 0; attempt < CONTENTION_RETRIES; attempt++) {
        slots s;
        slot_view v;
        int rc = load(e, base, &s);
        if (rc == 0)
            view_slots(&s, base, calls, window, now, want, &v);
        for (unsigned i = 0; rc == 0 && i < v.n_take; i++) {
            const prov_etcd_kv *kv = slot_kv(&s, base, v.take[i]);
            (void)snprintf(keys[i], sizeof(keys[i]), "%sslot/%u", base, v.take[i]);
            puts[i] = (prov_etcd_put){keys[i], val, kv ? kv->mod_revision : 0};
        }
        prov_etcd_result_clear(&s.r);
        if (rc < 0)
            return rc;
        if (v.n_take == 0) {
            *ret_got = 0;
            *ret_wait = v.wait;
            return 0;
        }
        rc = put_all(e, puts, v.n_take);
        if (rc < 0)
            return rc;
        if (rc == 1) {
            *ret_got = v.n_take;
            *ret_wait = v.n_take < want ? v.after : 0;
            return 0;
        }
    }
    *ret_got = 0;
    *ret_wait = CONTENTION_WAIT_MS; /* many processes at once: try again shortly */
    return 0;
}

/* The slot holding time t that no put of puts[0..n) moves yet; NULL when none (the call left the
 * window, or a later call took its slot). */
static const prov_etcd_kv *slot_at(const slots *s, const char *base, uint64_t t,
                                   const prov_etcd_put *puts, size_t n)
{
    for (size_t i = 0; i < s->r.n_kvs; i++) {
        const prov_etcd_kv *kv = &s->r.kvs[i];
        const char *name = suffix(kv, base);
        uint64_t v;
        bool moved = false;
        if (name == NULL || strncmp(name, "slot/", 5) != 0 || parse_ms(kv, &v) < 0 || v != t)
            continue;
        for (size_t k = 0; k < n && !moved; k++)
            moved = puts[k].key == kv->key;
        if (!moved)
            return kv;
    }
    return NULL;
}

/* The calls taken at sent[i] count from done[i]: their slots move there, in one txn (distinct
 * slots for equal times, as a batch taken together has). After a lost race it reads again: a
 * slot whose time changed was taken by a later call and needs nothing. */
static int op_settle(prov_etcd *e, const char *base, const uint64_t *sent, const uint64_t *done,
                     size_t n)
{
    char vals[TXN_MAX][24];
    prov_etcd_put puts[TXN_MAX];
    for (int attempt = 0; attempt < CONTENTION_RETRIES; attempt++) {
        slots s;
        size_t np = 0;
        int rc = load(e, base, &s);
        for (size_t i = 0; rc == 0 && i < n && np < TXN_MAX; i++) {
            const prov_etcd_kv *kv =
                done[i] > sent[i] ? slot_at(&s, base, sent[i], puts, np) : NULL;
            if (kv == NULL)
                continue;
            (void)snprintf(vals[np], sizeof(vals[np]), "%" PRIu64, done[i]);
            puts[np] = (prov_etcd_put){kv->key, vals[np], kv->mod_revision};
            np++;
        }
        if (rc == 0 && np > 0)
            rc = put_all(e, puts, np);
        prov_etcd_result_clear(&s.r);
        if (rc < 0 || np == 0 || rc == 1)
            return rc < 0 ? rc : 0;
    }
    return 0; /* contention: the calls keep their earlier times */
}

static int op_cooldown(prov_etcd *e, const char *base, uint64_t window, uint64_t now)
{
    char key[BASE_MAX + 32], val[24];
    (void)snprintf(key, sizeof(key), "%scooldown", base);
    (void)snprintf(val, sizeof(val), "%" PRIu64, now + window);
    for (int attempt = 0; attempt < CONTENTION_RETRIES; attempt++) {
        slots s;
        int rc = load(e, base, &s);
        uint64_t until = s.cool_until;
        int64_t rev = s.cool_rev;
        prov_etcd_result_clear(&s.r);
        if (rc < 0)
            return rc;
        if (until != UINT64_MAX && until >= now + window)
            return 0;
        rc = put_all(e, &(prov_etcd_put){key, val, rev}, 1);
        if (rc != 0)
            return rc < 0 ? rc : 0;
    }
    return -EBUSY;
}

/* "<prefix>/pacer/<key>/" into base; -EINVAL when too long. */
static int make_base(const char *prefix, const char *key, char *base)
{
    int n = snprintf(base, BASE_MAX, "%s/pacer/%s/", prefix, key);
    return n < 0 || n >= BASE_MAX ? -EINVAL : 0;
}

/* More slots than this per action would make every range large; rates are far below. */
static unsigned max_slots(unsigned calls)
{
    return calls > 1000 ? 1000 : calls;
}

int prov_pacer_etcd_acquire(prov_etcd *e, const char *prefix, const char *key, unsigned calls,
                            uint64_t window_ms, uint64_t now, unsigned want, unsigned *ret_got,
                            uint64_t *ret_wait)
{
    char base[BASE_MAX];
    int rc = make_base(prefix, key, base);
    if (rc < 0 || want == 0)
        return rc < 0 ? rc : -EINVAL;
    return op_acquire(e, base, max_slots(calls), window_ms, now, want, ret_got, ret_wait);
}

int prov_pacer_etcd_settle(prov_etcd *e, const char *prefix, const char *key, const uint64_t *sent,
                           const uint64_t *done, size_t n)
{
    char base[BASE_MAX];
    int rc = make_base(prefix, key, base);
    for (size_t i = 0; rc == 0 && i < n; i += TXN_MAX)
        rc = op_settle(e, base, sent + i, done + i, n - i < TXN_MAX ? n - i : TXN_MAX);
    return rc;
}

int prov_pacer_etcd_cooldown(prov_etcd *e, const char *prefix, const char *key, uint64_t window_ms,
                             uint64_t now)
{
    char base[BASE_MAX];
    int rc = make_base(prefix, key, base);
    return rc < 0 ? rc : op_cooldown(e, base, window_ms, now);
}

int prov_pacer_etcd_budget(prov_etcd *e, const char *prefix, const char *key, unsigned calls,
                           uint64_t window_ms, uint64_t now, unsigned *ret_left)
{
    char base[BASE_MAX];
    slots s;
    slot_view v;
    int rc = make_base(prefix, key, base);
    if (rc < 0)
        return rc;
    rc = load(e, base, &s);
    if (rc == 0)
        view_slots(&s, base, max_slots(calls), window_ms, now, 0, &v);
    prov_etcd_result_clear(&s.r);
    if (rc == 0)
        *ret_left = v.left;
    return rc;
}
