/* The pacer's call log in etcd (internal/prov_pacer_etcd.h): with `ha`, every process configured
 * for the same prefix (the leader, the standbys, a `plan` on a laptop) takes its call slots from
 * the same place, so together they never exceed N calls in any window.
 *
 * Layout, per pacer key (access key hash, product, action):
 *
 *     <prefix>/pacer/<key>/slot/<i>   i in [0, N): a stamp of the call that last used the slot
 *     <prefix>/pacer/<key>/cooldown   a stamp of the time until which no call may go (throttled)
 *
 * A stamp is "<wall ms> <clock id>:<boot ms>" (decimal, one space): the time on the wall clock,
 * which every host reads, and the same time on the boot clock of the host that wrote it, named
 * by a clock id (prov_pacer.c: one per boot and time namespace). A stamp of the old
 * form "<wall ms>" is still read.
 *
 * A call takes a slot that is at least a window old (or that does not exist yet) with a
 * compare-and-put on the slot's mod_revision (create_revision 0 for a new one): of two processes
 * racing for the same slot exactly one wins, the other reads again. A slot is reused only a
 * window after its last call, so at most N calls start in any window: the same sliding window
 * as the file backend, shared. Slots are reused forever, so the keys stay bounded (N per action)
 * and need no lease. Taking k slots costs one range and one txn whatever k (up to TXN_MAX at
 * once), the txn comparing every slot's revision; so does moving k settled calls.
 *
 * Clocks: the wall-clock part crosses hosts, so the hosts' clocks must agree (NTP). A step of one
 * host's wall clock would make every stamp look older or younger there; the boot-clock part, which
 * no step moves, is what a stamp written on the same host (the same clock id) is judged on, as
 * the file backend judges its log. So a step of a host's wall clock neither frees a window early
 * nor holds one longer for the calls of its own host, the usual case (the leader makes the
 * calls); other hosts' stamps are judged on the wall clock, and a host whose wall clock runs d ms
 * ahead of another's may still reuse that one's slots d ms early. Times in the future count as
 * now, as in the file backend, so a clock step never holds an action back for more than a window
 * at a time. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prov_pacer_etcd.h"

#define CONTENTION_RETRIES 8
#define CONTENTION_WAIT_MS 20
#define TXN_MAX 32   /* slots taken or moved in one txn (etcd allows 128 operations in one) */
#define BASE_MAX 480 /* "<prefix>/pacer/<key>/" */
#define STAMP_MAX 80 /* "<wall> <clock id>:<boot>" */

/* A parsed view of one key's slots. */
typedef struct slots {
    prov_etcd_result r;          /* owns the kvs */
    const prov_etcd_kv *cool_kv; /* the cooldown key, NULL: absent */
} slots;

/* One parsed stamp (see the file comment). */
typedef struct stamp {
    uint64_t wall;
    bool has_boot; /* the new form: id and boot are set */
    char id[PROV_PACER_CLOCK_ID_LEN + 1];
    uint64_t boot;
} stamp;

/* Reads decimal ms at *s up to stop (one of the characters in stops, or the end); advances *s. */
static int parse_u64_at(const char **s, const char *stops, uint64_t *ret)
{
    char *end = NULL;
    if (**s < '0' || **s > '9')
        return -EPROTO;
    errno = 0;
    unsigned long long v = strtoull(*s, &end, 10);
    if (errno != 0 || (*end != '\0' && strchr(stops, *end) == NULL))
        return -EPROTO;
    *ret = v;
    *s = end;
    return 0;
}

/* Parses "<wall>" or "<wall> <id>:<boot>"; -EPROTO for anything else (the caller then counts the
 * stamp as now: garbage never frees a slot). */
static int parse_stamp(const prov_etcd_kv *kv, stamp *ret)
{
    const char *s = kv->value;
    stamp t;
    memset(&t, 0, sizeof(t));
    if (kv->value_len == 0 || kv->value_len >= STAMP_MAX || strlen(s) != kv->value_len ||
        parse_u64_at(&s, " ", &t.wall) < 0)
        return -EPROTO;
    if (*s == ' ') {
        size_t n = strspn(++s, "0123456789abcdef");
        if (n != PROV_PACER_CLOCK_ID_LEN || s[n] != ':')
            return -EPROTO;
        memcpy(t.id, s, n);
        s += n + 1;
        if (parse_u64_at(&s, "", &t.boot) < 0)
            return -EPROTO;
        t.has_boot = true;
    }
    *ret = t;
    return 0;
}

/* The wall-clock time of boot (a time on c's boot clock). */
static uint64_t wall_at(uint64_t boot, const prov_pacer_etcd_clock *c)
{
    int64_t w = (int64_t)boot + c->offset;
    return w > 0 ? (uint64_t)w : 0;
}

/* How long from now until t + window; a t in the future counts as now when clamp is set. */
static uint64_t left_until(uint64_t t, uint64_t window, uint64_t now, bool clamp)
{
    if (clamp && t > now)
        t = now;
    return t + window > now ? t + window - now : 0;
}

/* How long, from the operation's time, until the stamp at + window has passed (0: passed): on the
 * boot clock for a stamp of this host's clock, on the wall clock for any other. With clamp, times
 * in the future count as now (a call's time); without, they stand (the end of a cooldown). */
static uint64_t stamp_wait(const stamp *at, uint64_t window, bool clamp,
                           const prov_pacer_etcd_clock *c)
{
    if (at->has_boot && strcmp(at->id, c->id) == 0)
        return left_until(at->boot, window, c->boot, clamp);
    return left_until(at->wall, window, wall_at(c->boot, c), clamp);
}

/* "<wall> <id>:<boot>" for the time boot (on this host's boot clock) into buf. */
static void format_stamp(char *buf, size_t size, uint64_t boot, const prov_pacer_etcd_clock *c)
{
    (void)snprintf(buf, size, "%" PRIu64 " %s:%" PRIu64, wall_at(boot, c), c->id, boot);
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
        if (name != NULL && strcmp(name, "cooldown") == 0)
            s->cool_kv = kv;
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

/* How long until the slot frees (0: free now). A slot whose value does not parse counts as used
 * now. */
static uint64_t slot_wait(const prov_etcd_kv *kv, uint64_t window, const prov_pacer_etcd_clock *c)
{
    stamp at;
    if (kv == NULL)
        return 0;
    return parse_stamp(kv, &at) < 0 ? window : stamp_wait(&at, window, true, c);
}

/* How long the action still cools down (0: not at all), not clamped; garbage counts as a whole
 * window. The stamp holds the end of the cooldown. */
static uint64_t cool_wait(const slots *s, uint64_t window, const prov_pacer_etcd_clock *c)
{
    stamp until;
    if (s->cool_kv == NULL)
        return 0;
    return parse_stamp(s->cool_kv, &until) < 0 ? window : stamp_wait(&until, 0, false, c);
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
                       const prov_pacer_etcd_clock *c, unsigned want, slot_view *v)
{
    uint64_t busy = UINT64_MAX, cool = cool_wait(s, window, c);
    unsigned n_free = 0;
    if (cool > window)
        cool = window; /* a clock step never holds an action back more than a window */
    memset(v, 0, sizeof(*v));
    for (unsigned i = 0; i < calls; i++) {
        uint64_t wait = slot_wait(slot_kv(s, base, i), window, c);
        if (wait == 0) {
            if (cool == 0 && v->n_take < want && v->n_take < TXN_MAX)
                v->take[v->n_take++] = i;
            n_free++;
        } else if (wait < busy) {
            busy = wait;
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
static int op_acquire(prov_etcd *e, const char *base, unsigned calls, uint64_t window,
                      const prov_pacer_etcd_clock *c, unsigned want, unsigned *ret_got,
                      uint64_t *ret_wait)
{
    char keys[TXN_MAX][BASE_MAX + 32], val[STAMP_MAX];
    prov_etcd_put puts[TXN_MAX];
    format_stamp(val, sizeof(val), c->boot, c);
    for (int attempt = 0; attempt < CONTENTION_RETRIES; attempt++) {
        slots s;
        slot_view v;
        int rc = load(e, base, &s);
        if (rc == 0)
            view_slots(&s, base, calls, window, c, want, &v);
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

/* The slot of this clock holding boot time t that no put of puts[0..n) moves yet; NULL when none
 * (the call left the window, or a later call took its slot). */
static const prov_etcd_kv *slot_at(const slots *s, const char *base, uint64_t t,
                                   const prov_pacer_etcd_clock *c, const prov_etcd_put *puts,
                                   size_t n)
{
    for (size_t i = 0; i < s->r.n_kvs; i++) {
        const prov_etcd_kv *kv = &s->r.kvs[i];
        const char *name = suffix(kv, base);
        stamp at;
        bool moved = false;
        if (name == NULL || strncmp(name, "slot/", 5) != 0 || parse_stamp(kv, &at) < 0 ||
            !at.has_boot || strcmp(at.id, c->id) != 0 || at.boot != t)
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
                     size_t n, const prov_pacer_etcd_clock *c)
{
    char vals[TXN_MAX][STAMP_MAX];
    prov_etcd_put puts[TXN_MAX];
    for (int attempt = 0; attempt < CONTENTION_RETRIES; attempt++) {
        slots s;
        size_t np = 0;
        int rc = load(e, base, &s);
        for (size_t i = 0; rc == 0 && i < n && np < TXN_MAX; i++) {
            const prov_etcd_kv *kv =
                done[i] > sent[i] ? slot_at(&s, base, sent[i], c, puts, np) : NULL;
            if (kv == NULL)
                continue;
            format_stamp(vals[np], sizeof(vals[np]), done[i], c);
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

/* Cools the action down for a window from now, unless it already cools at least that long (a
 * cooldown stamp that does not parse is replaced). */
static int op_cooldown(prov_etcd *e, const char *base, uint64_t window,
                       const prov_pacer_etcd_clock *c)
{
    char key[BASE_MAX + 32], val[STAMP_MAX];
    (void)snprintf(key, sizeof(key), "%scooldown", base);
    format_stamp(val, sizeof(val), c->boot + window, c);
    for (int attempt = 0; attempt < CONTENTION_RETRIES; attempt++) {
        slots s;
        stamp until;
        int rc = load(e, base, &s);
        bool long_enough = rc == 0 && s.cool_kv != NULL && parse_stamp(s.cool_kv, &until) == 0 &&
                           stamp_wait(&until, 0, false, c) >= window;
        int64_t rev = rc == 0 && s.cool_kv != NULL ? s.cool_kv->mod_revision : 0;
        prov_etcd_result_clear(&s.r);
        if (rc < 0)
            return rc;
        if (long_enough)
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
                            uint64_t window_ms, const prov_pacer_etcd_clock *now, unsigned want,
                            unsigned *ret_got, uint64_t *ret_wait)
{
    char base[BASE_MAX];
    int rc = make_base(prefix, key, base);
    if (rc < 0 || want == 0)
        return rc < 0 ? rc : -EINVAL;
    return op_acquire(e, base, max_slots(calls), window_ms, now, want, ret_got, ret_wait);
}

int prov_pacer_etcd_settle(prov_etcd *e, const char *prefix, const char *key, const uint64_t *sent,
                           const uint64_t *done, size_t n, const prov_pacer_etcd_clock *now)
{
    char base[BASE_MAX];
    int rc = make_base(prefix, key, base);
    for (size_t i = 0; rc == 0 && i < n; i += TXN_MAX)
        rc = op_settle(e, base, sent + i, done + i, n - i < TXN_MAX ? n - i : TXN_MAX, now);
    return rc;
}

int prov_pacer_etcd_cooldown(prov_etcd *e, const char *prefix, const char *key, uint64_t window_ms,
                             const prov_pacer_etcd_clock *now)
{
    char base[BASE_MAX];
    int rc = make_base(prefix, key, base);
    return rc < 0 ? rc : op_cooldown(e, base, window_ms, now);
}

int prov_pacer_etcd_budget(prov_etcd *e, const char *prefix, const char *key, unsigned calls,
                           uint64_t window_ms, const prov_pacer_etcd_clock *now, unsigned *ret_left)
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
