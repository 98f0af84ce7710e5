/* Fighting controllers: see rec_fights.h. Called by rec_daemon after every cycle. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rec_fights.h"

/* The change kinds that fix an existing item in place and can be undone by someone else. */
static bool is_fix(rec_change_kind k)
{
    return k == REC_CH_SHARE || k == REC_CH_UNSHARE || k == REC_CH_TAGS || k == REC_CH_ACCOUNTS;
}

static bool contains(const char *const *v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] != NULL && strcmp(v[i], s) == 0)
            return true;
    return false;
}

static rec_fight *find(rec_fights *f, const char *address, rec_change_kind kind)
{
    for (size_t i = 0; i < f->n; i++)
        if (f->v[i].kind == kind && strcmp(f->v[i].address, address) == 0)
            return &f->v[i];
    return NULL;
}

bool rec_fight_active(const rec_fight *e)
{
    return e->undone >= REC_FIGHT_THRESHOLD;
}

/* Items whose fix the previous cycle made and this cycle's plan wants again are undone once
 * more; items this plan does not mention have converged and are forgotten; items this cycle
 * fixes are remembered as fixed. */
int rec_fights_cycle(rec_fights *f, const rec_plan *plan, const char *const *failed,
                     size_t n_failed, bool executed)
{
    rec_fight *next = NULL;
    size_t n_next = 0;
    for (size_t i = 0; plan != NULL && i < plan->n_changes; i++) {
        const rec_change *ch = &plan->changes[i];
        if (!is_fix(ch->kind) || ch->address == NULL)
            continue;
        const rec_fight *prev = find(f, ch->address, ch->kind);
        rec_fight *grown = realloc(next, (n_next + 1) * sizeof(*next));
        char *addr = strdup(ch->address);
        if (grown == NULL || addr == NULL) {
            free(addr);
            for (size_t k = 0; k < n_next; k++)
                free((grown ? grown : next)[k].address);
            free(grown ? grown : next);
            return -ENOMEM;
        }
        next = grown;
        next[n_next++] = (rec_fight){
            .address = addr,
            .kind = ch->kind,
            .undone = prev == NULL  ? 0
                      : prev->fixed ? prev->undone + 1
                                    : prev->undone,
            .fixed = executed && !contains(failed, n_failed, ch->address),
        };
    }
    rec_fights_clear(f);
    f->v = next;
    f->n = n_next;
    size_t active = 0;
    for (size_t i = 0; i < f->n; i++)
        active += rec_fight_active(&f->v[i]);
    return (int)active;
}

void rec_fights_clear(rec_fights *f)
{
    if (f == NULL)
        return;
    for (size_t i = 0; i < f->n; i++)
        free(f->v[i].address);
    free(f->v);
    f->v = NULL;
    f->n = 0;
}
