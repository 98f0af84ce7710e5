/* Per-item failure backoff across daemon cycles (see rec_backoff.h). A handful of entries at
 * most, so a plain array with linear search. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rec_backoff.h"

struct rec_backoff {
    uint64_t base_ms, cap_ms, slack_ms;
    rec_backoff_entry *v;
    size_t n;
};

int rec_backoff_new(uint64_t base_ms, uint64_t cap_ms, uint64_t slack_ms, rec_backoff **ret)
{
    rec_backoff *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return -ENOMEM;
    b->base_ms = base_ms;
    b->cap_ms = cap_ms;
    b->slack_ms = slack_ms;
    *ret = b;
    return 0;
}

void rec_backoff_set_base(rec_backoff *b, uint64_t base_ms, uint64_t slack_ms)
{
    b->base_ms = base_ms;
    b->slack_ms = slack_ms;
}

static void entry_free(rec_backoff_entry *e)
{
    free(e->address);
    free(e->message);
}

void rec_backoff_reset(rec_backoff *b)
{
    for (size_t i = 0; i < b->n; i++)
        entry_free(&b->v[i]);
    free(b->v);
    b->v = NULL;
    b->n = 0;
}

void rec_backoff_free(rec_backoff *b)
{
    if (b == NULL)
        return;
    rec_backoff_reset(b);
    free(b);
}

uint64_t rec_backoff_delay(uint64_t base_ms, uint64_t cap_ms, unsigned n)
{
    uint64_t d = base_ms;
    for (unsigned i = 1; i < n && d < cap_ms; i++)
        d = d > UINT64_MAX / 2 ? UINT64_MAX : d * 2;
    return d < cap_ms ? d : cap_ms;
}

static rec_backoff_entry *find(rec_backoff *b, const char *address)
{
    for (size_t i = 0; i < b->n; i++)
        if (strcmp(b->v[i].address, address) == 0)
            return &b->v[i];
    return NULL;
}

/* Finds or adds the entry for address (failures 0, retry now). NULL on allocation failure. */
static rec_backoff_entry *get(rec_backoff *b, const char *address)
{
    rec_backoff_entry *e = find(b, address);
    if (e != NULL)
        return e;
    rec_backoff_entry *grown = realloc(b->v, (b->n + 1) * sizeof(*grown));
    if (grown == NULL)
        return NULL;
    b->v = grown;
    e = &b->v[b->n];
    memset(e, 0, sizeof(*e));
    e->address = strdup(address);
    if (e->address == NULL)
        return NULL;
    b->n++;
    return e;
}

bool rec_backoff_skip(rec_backoff *b, const char *address, uint64_t now_ms)
{
    rec_backoff_entry *e = find(b, address);
    if (e == NULL || e->failures == 0 || now_ms >= e->retry_at_ms)
        return false;
    e->skipped = true;
    return true;
}

int rec_backoff_note(rec_backoff *b, const char *address, const char *message)
{
    rec_backoff_entry *e = get(b, address);
    char *copy = message ? strdup(message) : NULL;
    if (e == NULL || (message != NULL && copy == NULL)) {
        free(copy);
        return -ENOMEM;
    }
    free(e->message);
    e->message = copy;
    return 0;
}

int rec_backoff_cycle_end(rec_backoff *b, const char *const *failed, size_t n_failed,
                          uint64_t now_ms)
{
    int rc = 0;
    /* Mark the failures first (adding entries that only failed now). */
    for (size_t i = 0; i < n_failed; i++) {
        rec_backoff_entry *e = get(b, failed[i]);
        if (e == NULL) {
            rc = -ENOMEM;
            continue;
        }
        /* One failure per cycle even when several steps of the item failed. */
        if (e->skipped && e->retry_at_ms == UINT64_MAX)
            continue;
        e->failures++;
        e->skipped = true; /* keeps it below; cleared at the end */
        e->retry_at_ms = UINT64_MAX;
    }
    size_t kept = 0;
    for (size_t i = 0; i < b->n; i++) {
        rec_backoff_entry *e = &b->v[i];
        if (e->retry_at_ms == UINT64_MAX) {
            uint64_t d = rec_backoff_delay(b->base_ms, b->cap_ms, e->failures);
            d = d > b->slack_ms ? d - b->slack_ms : 0;
            e->retry_at_ms = now_ms + d;
        } else if (!e->skipped || e->failures == 0) {
            entry_free(e);
            continue;
        }
        e->skipped = false;
        b->v[kept++] = *e;
    }
    b->n = kept;
    return rc;
}

const rec_backoff_entry *rec_backoff_entries(const rec_backoff *b, size_t *ret_n)
{
    *ret_n = b->n;
    return b->v;
}
