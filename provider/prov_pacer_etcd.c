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
 * and need no lease. Each acquire costs one range and one txn (BENCHMARKS.md).
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

/* Compare-and-put of "<ms>" on key; 1 when it won, 0 when another process got there first. */
static int put_if(prov_etcd *e, const char *key, uint64_t ms, int64_t mod_rev)
{
    char val[24];
    prov_etcd_result r;
    (void)snprintf(val, sizeof(val), "%" PRIu64, ms);
    char *body = prov_etcd_body_put_if(key, val, 0, mod_rev);
    if (body == NULL)
        return -ENOMEM;
    prov_etcd_call_sync(e, PROV_ETCD_TXN, body, &r);
    free(body);
    int rc = r.err != 0 ? r.err : r.succeeded ? 1 : 0;
    prov_etcd_result_clear(&r);
    return rc;
}

/* The time until a call may go (0: a slot is free, *ret_free its index). */
static uint64_t find_slot(const slots *s, const char *base, unsigned calls, uint64_t window,
                          uint64_t now, unsigned *ret_free, unsigned *ret_left)
{
    uint64_t wait = UINT64_MAX;
    unsigned left = 0;
    bool found = false;
    uint64_t cool = s->cool_until > now ? s->cool_until - now : 0;
    if (cool > window)
        cool = window; /* a clock step never holds an action back more than a window */
    for (unsigned i = 0; i < calls; i++) {
        uint64_t frees = slot_frees(slot_kv(s, base, i), window, now);
        if (frees == 0) {
            left++;
            if (!found)
                *ret_free = i;
            found = true;
            wait = 0;
        } else if (frees - now < wait) {
            wait = frees - now;
        }
    }
    *ret_left = cool > 0 ? 0 : left;
    return cool > wait ? cool : wait;
}

static int op_acquire(prov_etcd *e, const char *base, unsigned calls, uint64_t window, uint64_t now,
                      uint64_t *ret_wait)
{
    for (int attempt = 0; attempt < CONTENTION_RETRIES; attempt++) {
        slots s;
        unsigned idx = 0, left = 0;
        int rc = load(e, base, &s);
        if (rc < 0) {
            prov_etcd_result_clear(&s.r);
            return rc;
        }
        uint64_t wait = find_slot(&s, base, calls, window, now, &idx, &left);
        if (wait > 0) {
            prov_etcd_result_clear(&s.r);
            *ret_wait = wait;
            return 0;
        }
        const prov_etcd_kv *kv = slot_kv(&s, base, idx);
        int64_t rev = kv ? kv->mod_revision : 0;
        prov_etcd_result_clear(&s.r);
        char key[512];
        (void)snprintf(key, sizeof(key), "%sslot/%u", base, idx);
        rc = put_if(e, key, now, rev);
        if (rc < 0)
            return rc;
        if (rc == 1) {
            *ret_wait = 0;
            return 0;
        }
    }
    *ret_wait = CONTENTION_WAIT_MS; /* many processes at once: try again shortly */
    return 0;
}

/* The call taken at sent counts from now: its slot (the one holding sent) moves to now. */
static int op_settle(prov_etcd *e, const char *base, uint64_t now, uint64_t sent)
{
    slots s;
    int rc = load(e, base, &s);
    for (size_t i = 0; rc == 0 && i < s.r.n_kvs && now > sent; i++) {
        const prov_etcd_kv *kv = &s.r.kvs[i];
        const char *name = suffix(kv, base);
        uint64_t t;
        if (name == NULL || strncmp(name, "slot/", 5) != 0 || parse_ms(kv, &t) < 0 || t != sent)
            continue;
        rc = put_if(e, kv->key, now, kv->mod_revision);
        rc = rc < 0 ? rc : 0; /* lost the race: someone took the slot later still */
        break;
    }
    prov_etcd_result_clear(&s.r);
    return rc;
}

static int op_cooldown(prov_etcd *e, const char *base, uint64_t window, uint64_t now)
{
    char key[512];
    (void)snprintf(key, sizeof(key), "%scooldown", base);
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
        rc = put_if(e, key, now + window, rev);
        if (rc != 0)
            return rc < 0 ? rc : 0;
    }
    return -EBUSY;
}

int prov_pacer_etcd_run(prov_etcd *e, const char *prefix, prov_pacer_etcd_op op, const char *key,
                        unsigned calls, uint64_t window_ms, uint64_t now, uint64_t sent,
                        uint64_t *ret_wait, unsigned *ret_left)
{
    char base[512];
    int n = snprintf(base, sizeof(base), "%s/pacer/%s/", prefix, key);
    if (n < 0 || (size_t)n >= sizeof(base) - 32)
        return -EINVAL;
    /* More slots than this per action would make every range large; rates are far below. */
    unsigned max_slots = calls > 1000 ? 1000 : calls;
    switch (op) {
    case PACER_ETCD_ACQUIRE:
        return op_acquire(e, base, max_slots, window_ms, now, ret_wait);
    case PACER_ETCD_SETTLE:
        return op_settle(e, base, now, sent);
    case PACER_ETCD_COOLDOWN:
        return op_cooldown(e, base, window_ms, now);
    case PACER_ETCD_BUDGET: {
        slots s;
        unsigned idx = 0, left = 0;
        int rc = load(e, base, &s);
        if (rc == 0)
            (void)find_slot(&s, base, max_slots, window_ms, now, &idx, &left);
        prov_etcd_result_clear(&s.r);
        if (rc == 0 && ret_left)
            *ret_left = left;
        return rc;
    }
    }
    return -EINVAL;
}
