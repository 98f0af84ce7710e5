/* Fighting controllers (reconcile/rec_fights.c): the daemon's per-cycle bookkeeping, on
 * hand-built plans. A fix found undone twice in a row is a fight; convergence, a failed fix
 * and a plan-only cycle behave as documented in rec_fights.h. */
#include <criterion/criterion.h>
#include <string.h>

#include "rec_fights.h"

static rec_change change(rec_change_kind kind, const char *address)
{
    rec_change c;
    memset(&c, 0, sizeof(c));
    c.kind = kind;
    c.address = (char *)address;
    return c;
}

#define ADDR "swas.cn-hangzhou.custom_image.web"

Test(fights, undone_twice_in_a_row_is_a_fight)
{
    rec_fights f = {0};
    rec_change share = change(REC_CH_SHARE, ADDR);
    rec_change create = change(REC_CH_CREATE, "swas.cn-hangzhou.custom_image.new");
    rec_change both[] = {share, create};
    rec_plan with = {.changes = both, .n_changes = 2}, without = {0};
    cr_assert_eq(rec_fights_cycle(&f, &with, NULL, 0, true), 0); /* fixed */
    cr_assert_eq(rec_fights_cycle(&f, &with, NULL, 0, true), 0); /* undone once */
    cr_assert_eq(rec_fights_cycle(&f, &with, NULL, 0, true), 1); /* undone twice: fight */
    cr_assert_eq(f.n, 1, "creates are not fixes that can be undone");
    cr_assert_str_eq(f.v[0].address, ADDR);
    cr_assert_eq(f.v[0].undone, 2);
    cr_assert(rec_fight_active(&f.v[0]));
    cr_assert_eq(rec_fights_cycle(&f, &without, NULL, 0, true), 0); /* converged: forgotten */
    cr_assert_eq(f.n, 0);
    rec_fights_clear(&f);
}

Test(fights, failed_or_plan_only_cycles_fix_nothing)
{
    rec_fights f = {0};
    rec_change share = change(REC_CH_UNSHARE, ADDR);
    rec_plan p = {.changes = &share, .n_changes = 1};
    const char *failed[] = {ADDR};
    cr_assert_eq(rec_fights_cycle(&f, &p, failed, 1, true), 0);
    cr_assert_eq(rec_fights_cycle(&f, &p, NULL, 0, false), 0); /* suspended */
    cr_assert_eq(rec_fights_cycle(&f, &p, NULL, 0, true), 0);
    cr_assert_eq(f.v[0].undone, 0, "never fixed before: not undone");
    cr_assert_eq(rec_fights_cycle(&f, &p, NULL, 0, true), 0);
    cr_assert_eq(f.v[0].undone, 1);
    rec_fights_clear(&f);
    cr_assert_null(f.v);
}
