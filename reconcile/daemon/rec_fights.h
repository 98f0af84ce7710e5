/* Fighting controllers (issue 11 item 7): an item imgrecon fixed in one cycle (a share or unshare
 * of an existing image) that the next cycle finds undone again, twice in a row, is another
 * controller (or a person) fighting imgrecon. The daemon feeds every cycle's plan here and
 * reports the items that fight: a log line, imgrecon_item_fights_total and a status warning.
 *
 * Decision: the state lives in the daemon's memory only. A restart forgets it, which costs at
 * most two more cycles before a fight is reported again; nothing in the state directory can go
 * stale or be shared by two processes. Pure: no I/O. */
#ifndef REC_FIGHTS_H
#define REC_FIGHTS_H

#include <stdbool.h>
#include <stddef.h>

#include "rec_plan.h"

#define REC_FIGHT_THRESHOLD 2 /* times found undone in a row before it is a fight */

typedef struct rec_fight {
    char *address;
    rec_change_kind kind; /* what the fix was: REC_CH_SHARE or REC_CH_UNSHARE */
    unsigned undone;      /* consecutive cycles that found the fix undone */
    bool fixed;           /* the last cycle's fix went through (not failed, executed) */
} rec_fight;

typedef struct rec_fights {
    rec_fight *v;
    size_t n;
} rec_fights;

/* Feeds one finished cycle. plan: its plan (borrowed); failed: the addresses whose steps failed
 * (borrowed); executed: false for a suspended (plan-only) cycle, which fixes nothing. Returns
 * how many items are fighting after this cycle (undone >= REC_FIGHT_THRESHOLD), or -ENOMEM (then
 * the table is left as it was before the item that failed). */
int rec_fights_cycle(rec_fights *f, const rec_plan *plan, const char *const *failed,
                     size_t n_failed, bool executed);
/* True when the entry is fighting. */
bool rec_fight_active(const rec_fight *e);
/* Frees the entries; f itself stays (zeroed). Accepts NULL. */
void rec_fights_clear(rec_fights *f);

#endif
