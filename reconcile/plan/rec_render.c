/* Rendering a plan (reconcile/README.md "Data flow" step 4): Terraform-like text for people and the
 * versioned JSON document (reconcile/plan/PLAN-JSON.md) for programs. The JSON builder is also
 * the saved-plan writer's (rec_planfile.c). Called by cmd/ plan and apply and by the daemon's
 * logs. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "rec_escape.h"
#include "rec_plan_int.h"
#include "rec_render.h"

#define C_RESET "\033[0m"
#define C_BOLD "\033[1m"
#define C_RED "\033[31m"
#define C_GREEN "\033[32m"
#define C_YELLOW "\033[33m"
#define C_MAGENTA "\033[35m"

void rec_format_duration(uint64_t ms, char *buf, size_t size)
{
    if (size == 0)
        return;
    if (ms < 10000 && ms % 1000 != 0) {
        snprintf(buf, size, "%.1fs", (double)ms / 1000.0);
        return;
    }
    uint64_t s = (ms + 999) / 1000;
    if (s < 60)
        snprintf(buf, size, "%" PRIu64 "s", s);
    else if (s < 3600)
        snprintf(buf, size, "%" PRIu64 "m %" PRIu64 "s", s / 60, s % 60);
    else
        snprintf(buf, size, "%" PRIu64 "h %" PRIu64 "m", s / 3600, (s % 3600) / 60);
}

/* "10/60s" or "10/500ms". */
static void format_rate(spec_rate r, char *buf, size_t size)
{
    if (r.window_ms % 1000 == 0)
        snprintf(buf, size, "%u/%" PRIu64 "s", r.calls, r.window_ms / 1000);
    else
        snprintf(buf, size, "%u/%" PRIu64 "ms", r.calls, r.window_ms);
}

static const char *change_symbol(rec_change_kind k)
{
    switch (k) {
    case REC_CH_CREATE:
        return "+";
    case REC_CH_DELETE:
    case REC_CH_ECS_DELETE:
        return "-";
    case REC_CH_SHARE:
    case REC_CH_UNSHARE:
    case REC_CH_TAGS:
    case REC_CH_ADOPT:
    case REC_CH_ACCOUNTS:
        return "~";
    case REC_CH_REPLACE:
        return "-/+";
    case REC_CH_WAIT:
        return ".";
    }
    return "?";
}

static const char *change_color(rec_change_kind k)
{
    switch (k) {
    case REC_CH_CREATE:
        return C_GREEN;
    case REC_CH_DELETE:
    case REC_CH_ECS_DELETE:
        return C_RED;
    case REC_CH_SHARE:
    case REC_CH_UNSHARE:
    case REC_CH_TAGS:
    case REC_CH_ADOPT:
    case REC_CH_ACCOUNTS:
        return C_YELLOW;
    case REC_CH_REPLACE:
        return C_MAGENTA;
    case REC_CH_WAIT:
        return "";
    }
    return "";
}

static const char *change_kind_name(rec_change_kind k)
{
    return rec_change_kind_name(k);
}

static const char *note_kind_name(rec_note_kind k)
{
    static const char *const names[] = {"unmanaged", "refused", "conflict",
                                        "guard",     "drift",   "warning"};
    return (unsigned)k < sizeof(names) / sizeof(names[0]) ? names[k] : "unknown";
}

/* Every string that can come from the cloud or a manifest goes through rec_fputs_escaped: names,
 * ids, descriptions and error text are shown, never obeyed by the terminal. */
static void put(FILE *out, const char *s)
{
    (void)rec_fputs_escaped(s, out);
}

static void print_pos(FILE *out, const char *file, unsigned line, unsigned col)
{
    if (file) {
        fputs("  (", out);
        put(out, file);
        fprintf(out, ":%u:%u)", line, col);
    }
}

/* The before/after of the in-place steps of a change, one line per key or account:
 * "+ env = prod (was dev)", "- team (was x)", "+ account 1234". */
static void print_delta(FILE *out, const rec_plan *plan, const rec_change *ch)
{
    for (size_t i = 0; i < ch->n_steps; i++) {
        const rec_step *st = rec_plan_step(plan, ch->steps[i]);
        if (!st)
            continue;
        if (st->action == REC_ACT_TAG) {
            const prov_tag *t[REC_DELTA_MAX];
            size_t n = rec_step_tags_to_set(st, t, REC_DELTA_MAX);
            for (size_t k = 0; k < n && k < REC_DELTA_MAX; k++) {
                const char *was = rec_image_tag(st->before, t[k]->key);
                fputs("        + ", out);
                put(out, t[k]->key);
                fputs(" = \"", out);
                put(out, t[k]->value ? t[k]->value : "");
                fputs(was ? "\" (was \"" : "\" (was absent", out);
                if (was)
                    put(out, was);
                fputs(was ? "\")\n" : ")\n", out);
            }
        } else if (st->action == REC_ACT_UNTAG) {
            const char *key[REC_DELTA_MAX];
            size_t n = rec_step_keys_to_remove(st, key, REC_DELTA_MAX);
            for (size_t k = 0; k < n && k < REC_DELTA_MAX; k++) {
                const char *was = rec_image_tag(st->before, key[k]);
                fputs("        - ", out);
                put(out, key[k]);
                fputs(" (was \"", out);
                put(out, was ? was : "");
                fputs("\")\n", out);
            }
        } else if (st->action == REC_ACT_ADD_ACCOUNTS || st->action == REC_ACT_REMOVE_ACCOUNTS) {
            const char *a[REC_DELTA_MAX];
            size_t n = rec_step_accounts_delta(st, a, REC_DELTA_MAX);
            for (size_t k = 0; k < n && k < REC_DELTA_MAX; k++) {
                fputs(st->action == REC_ACT_ADD_ACCOUNTS ? "        + account "
                                                         : "        - account ",
                      out);
                put(out, a[k]);
                fputc('\n', out);
            }
        }
    }
}

/* Prints "#3 delete after #2" for each step of a change. */
static void print_steps(FILE *out, const rec_plan *plan, const rec_change *ch)
{
    fputs("      steps:", out);
    for (size_t i = 0; i < ch->n_steps; i++) {
        const rec_step *st = rec_plan_step(plan, ch->steps[i]);
        if (!st)
            continue;
        fprintf(out, "%s #%u %s", i ? "," : "", st->id, rec_action_name(st->action));
        for (size_t k = 0; k < st->n_depends; k++)
            fprintf(out, "%s#%u", k ? " " : " after ", st->depends_on[k]);
        if (st->over_quota)
            fputs(" (over quota: not sent)", out);
    }
    fputc('\n', out);
}

static void print_notes(FILE *out, const rec_plan *plan, rec_note_kind kind, const char *title,
                        const char *sym, const char *color)
{
    if (rec_plan_n_notes(plan, kind) == 0)
        return;
    fprintf(out, "\n%s\n", title);
    for (size_t i = 0; i < plan->n_notes; i++) {
        const rec_note *n = &plan->notes[i];
        if (n->kind != kind)
            continue;
        fprintf(out, "  %s%s%s ", color, sym, *color ? C_RESET : "");
        if (n->address) {
            put(out, n->address);
            if (n->image_id) {
                fputs(" (", out);
                put(out, n->image_id);
                fputc(')', out);
            }
            fputs(": ", out);
        }
        put(out, n->text);
        print_pos(out, n->file, n->line, n->col);
        fputc('\n', out);
    }
}

static void print_summary(FILE *out, const rec_plan *plan)
{
    const rec_estimate *e = &plan->estimate;
    size_t n_changes = rec_plan_n_changes(plan);
    size_t n_attention =
        rec_plan_n_notes(plan, REC_NOTE_REFUSED) + rec_plan_n_notes(plan, REC_NOTE_CONFLICT);
    if (n_changes == 0) {
        if (plan->n_steps == 0 && n_attention == 0) {
            fputs("No changes. The account matches the manifests.\n", out);
            return;
        }
        fputs("No changes.", out);
        if (e->n_wait)
            fprintf(out, " %u image(s) still being created or copied.", e->n_wait);
        if (n_attention)
            fprintf(out, " %zu item(s) need attention (see above).", n_attention);
        fputc('\n', out);
        return;
    }
    fprintf(out, "Plan: %u to create, %u to replace, %u to share/unshare, %u to delete",
            e->n_create, e->n_replace, e->n_share + e->n_unshare, e->n_delete);
    if (e->n_tags + e->n_adopt + e->n_accounts)
        fprintf(out, ", %u to retag, %u to take over, %u to change account shares", e->n_tags,
                e->n_adopt, e->n_accounts);
    if (e->n_ecs_delete)
        fprintf(out, ", %u ECS image(s) to delete", e->n_ecs_delete);
    fputs(". API calls:", out);
    static const rec_action order[] = {
        REC_ACT_CREATE, REC_ACT_SHARE, REC_ACT_DELETE,       REC_ACT_ECS_DELETE,
        REC_ACT_TAG,    REC_ACT_UNTAG, REC_ACT_ADD_ACCOUNTS, REC_ACT_REMOVE_ACCOUNTS};
    bool first = true;
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        unsigned n = e->api_calls[order[i]];
        if (order[i] == REC_ACT_SHARE)
            n += e->api_calls[REC_ACT_UNSHARE];
        if (n) {
            fprintf(out, "%s %s %u", first ? "" : ",", rec_action_api(order[i]), n);
            first = false;
        }
        if (order[i] == REC_ACT_DELETE && e->delete_batch_calls) {
            fprintf(out, "%s DeleteCustomImages %u", first ? "" : ",", e->delete_batch_calls);
            first = false;
        }
    }
    char dur[32], rate[32];
    rec_format_duration(e->estimated_ms, dur, sizeof(dur));
    format_rate(e->rate_default, rate, sizeof(rate));
    if (e->rates_uniform)
        fprintf(out, ". Estimated time: %s at %s per action", dur, rate);
    else
        fprintf(out, ". Estimated time: %s at the configured per-action limits", dur);
    if (e->n_create + e->n_replace + e->n_wait > 0 && e->create_wait_ms > 0) {
        char build[32];
        rec_format_duration(e->create_wait_ms, build, sizeof(build));
        if (e->create_wait_samples > 0)
            fprintf(out, ", assuming %s per image build (learned from %u recent create%s)", build,
                    e->create_wait_samples, e->create_wait_samples == 1 ? "" : "s");
        else
            fprintf(out, ", assuming %s per image build (default)", build);
    }
    fputs(".\n", out);
}

int rec_render_text(const rec_plan *plan, FILE *out, unsigned flags)
{
    bool color = flags & REC_RENDER_COLOR;
    if (!plan || !out)
        return -EINVAL;
    if (plan->n_changes)
        fputs("imgrecon will perform the following actions:\n\n", out);
    for (size_t i = 0; i < plan->n_changes; i++) {
        const rec_change *ch = &plan->changes[i];
        const char *c = color ? change_color(ch->kind) : "";
        fprintf(out, "%s%3s%s %s", c, change_symbol(ch->kind), *c ? C_RESET : "",
                color ? C_BOLD : "");
        put(out, ch->address);
        fputs(color ? C_RESET : "", out);
        print_pos(out, ch->file, ch->line, ch->col);
        if (!ch->file)
            fputs("  (prune)", out);
        fputs("\n      ", out);
        put(out, ch->reason);
        fputc('\n', out);
        print_delta(out, plan, ch);
        print_steps(out, plan, ch);
    }
    const char *bang = color ? C_BOLD C_RED : "";
    print_notes(out, plan, REC_NOTE_REFUSED, "Refused (nothing is done):", "!", bang);
    print_notes(out, plan, REC_NOTE_CONFLICT, "Conflicts (nothing is done):", "!", bang);
    print_notes(out, plan, REC_NOTE_GUARD, "Prune guards:", "!", color ? C_YELLOW : "");
    print_notes(out, plan, REC_NOTE_UNMANAGED, "Unmanaged images (never touched):", "?", "");
    print_notes(out, plan, REC_NOTE_DRIFT, "Drift reported only:", "~", "");
    print_notes(out, plan, REC_NOTE_WARNING, "Warnings:", "!", color ? C_YELLOW : "");
    if (plan->n_changes || plan->n_notes)
        fputc('\n', out);
    print_summary(out, plan);
    return ferror(out) ? -EIO : 0;
}

/* ---- JSON ---- */

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* json_object_set_new that remembers a failure. */
static void jset(json_t *obj, const char *key, json_t *val, bool *ok)
{
    if (!val || json_object_set_new(obj, key, val) != 0)
        *ok = false;
}

static void jpush(json_t *arr, json_t *val, bool *ok)
{
    if (!val || json_array_append_new(arr, val) != 0)
        *ok = false;
}

static json_t *manifest_json(const char *file, unsigned line, unsigned col, bool *ok)
{
    if (!file)
        return json_null();
    json_t *m = json_object();
    if (!m) {
        *ok = false;
        return NULL;
    }
    jset(m, "file", json_string(file), ok);
    jset(m, "line", json_integer(line), ok);
    jset(m, "col", json_integer(col), ok);
    return m;
}

json_t *rec_image_json(const prov_image *img, bool *ok)
{
    if (!img)
        return json_null();
    json_t *o = json_object();
    json_t *tags = json_object();
    if (!o || !tags) {
        json_decref(o);
        json_decref(tags);
        *ok = false;
        return NULL;
    }
    jset(o, "image_id", str_or_null(img->image_id), ok);
    jset(o, "name", str_or_null(img->name), ok);
    jset(o, "region", str_or_null(img->region_id), ok);
    jset(o, "status", img->status >= 0 ? json_integer(img->status) : json_null(), ok);
    jset(o, "in_share", json_boolean(img->in_share), ok);
    jset(o, "in_share_user", json_boolean(img->in_share_user), ok); /* format 1.2 */
    json_t *accts = img->share_accounts_known ? json_array() : json_null();
    for (size_t i = 0; accts && img->share_accounts_known && i < img->n_share_accounts; i++)
        jpush(accts, json_string(img->share_accounts[i] ? img->share_accounts[i] : ""), ok);
    jset(o, "share_accounts", accts, ok);
    jset(o, "instance_id", str_or_null(img->instance_id), ok);
    jset(o, "system_snapshot_id", str_or_null(img->system_snapshot_id), ok);
    jset(o, "data_snapshot_id", str_or_null(img->data_snapshot_id), ok);
    jset(o, "description", str_or_null(img->description), ok);
    jset(o, "resource_group_id", str_or_null(img->resource_group_id), ok);
    for (size_t i = 0; i < img->n_tags; i++)
        if (img->tags[i].key)
            jset(tags, img->tags[i].key, json_string(img->tags[i].value ? img->tags[i].value : ""),
                 ok);
    jset(o, "tags", tags, ok);
    return o;
}

static json_t *step_json(const rec_step *st, bool *ok)
{
    json_t *o = json_object(), *deps = json_array();
    if (!o || !deps) {
        json_decref(o);
        json_decref(deps);
        *ok = false;
        return NULL;
    }
    jset(o, "id", json_integer(st->id), ok);
    jset(o, "action", json_string(rec_action_name(st->action)), ok);
    jset(o, "api_action", str_or_null(rec_action_api(st->action)), ok);
    jset(o, "address", str_or_null(st->address), ok);
    jset(o, "region", str_or_null(st->region), ok);
    jset(o, "name", str_or_null(st->name), ok);
    jset(o, "image_id", str_or_null(st->image_id), ok);
    jset(o, "reason", str_or_null(st->reason), ok);
    jset(o, "manifest", manifest_json(st->file, st->line, st->col, ok), ok);
    for (size_t k = 0; k < st->n_depends; k++)
        jpush(deps, json_integer(st->depends_on[k]), ok);
    jset(o, "depends_on", deps, ok);
    jset(o, "before", rec_image_json(st->before, ok), ok);
    jset(o, "after", rec_image_json(st->after, ok), ok);
    jset(o, "change", json_integer(st->change), ok);
    jset(o, "takeover", json_string(rec_takeover_name(st->takeover)), ok); /* format 1.2 */
    jset(o, "force", json_boolean(st->ecs_force), ok);
    jset(o, "over_quota", json_boolean(st->over_quota), ok);
    jset(o, "spec_hash", json_string(st->spec_hash), ok);
    jset(o, "generation", json_integer(st->generation), ok);
    jset(o, "client_token", json_string(st->client_token), ok);
    return o;
}

static json_t *change_json(const rec_change *ch, bool *ok)
{
    json_t *o = json_object(), *steps = json_array();
    if (!o || !steps) {
        json_decref(o);
        json_decref(steps);
        *ok = false;
        return NULL;
    }
    jset(o, "kind", json_string(change_kind_name(ch->kind)), ok);
    jset(o, "address", str_or_null(ch->address), ok);
    jset(o, "reason", str_or_null(ch->reason), ok);
    jset(o, "manifest", manifest_json(ch->file, ch->line, ch->col, ok), ok);
    for (size_t k = 0; k < ch->n_steps; k++)
        jpush(steps, json_integer(ch->steps[k]), ok);
    jset(o, "steps", steps, ok);
    return o;
}

static json_t *note_json(const rec_note *n, bool *ok)
{
    json_t *o = json_object();
    if (!o) {
        *ok = false;
        return NULL;
    }
    jset(o, "kind", json_string(note_kind_name(n->kind)), ok);
    jset(o, "address", str_or_null(n->address), ok);
    jset(o, "region", str_or_null(n->region), ok);
    jset(o, "name", str_or_null(n->name), ok);
    jset(o, "image_id", str_or_null(n->image_id), ok);
    jset(o, "message", str_or_null(n->text), ok);
    jset(o, "manifest", manifest_json(n->file, n->line, n->col, ok), ok);
    if (n->kind == REC_NOTE_CONFLICT) { /* format 1.1 */
        jset(o, "conflict", json_string(rec_conflict_kind_name(n->conflict)), ok);
        jset(o, "owner", str_or_null(n->owner), ok);
    }
    return o;
}

static json_t *summary_json(const rec_plan *plan, bool *ok)
{
    const rec_estimate *e = &plan->estimate;
    json_t *o = json_object(), *calls = json_object();
    if (!o || !calls) {
        json_decref(o);
        json_decref(calls);
        *ok = false;
        return NULL;
    }
    jset(o, "changes", json_integer((json_int_t)rec_plan_n_changes(plan)), ok);
    jset(o, "create", json_integer(e->n_create), ok);
    jset(o, "replace", json_integer(e->n_replace), ok);
    jset(o, "share", json_integer(e->n_share), ok);
    jset(o, "unshare", json_integer(e->n_unshare), ok);
    jset(o, "delete", json_integer(e->n_delete), ok);
    jset(o, "ecs_delete", json_integer(e->n_ecs_delete), ok);
    jset(o, "wait", json_integer(e->n_wait), ok);
    jset(o, "tags", json_integer(e->n_tags), ok);
    jset(o, "adopt", json_integer(e->n_adopt), ok);
    jset(o, "accounts", json_integer(e->n_accounts), ok);
    jset(calls, "CreateCustomImage", json_integer(e->api_calls[REC_ACT_CREATE]), ok);
    jset(calls, "ModifyImageShareStatus",
         json_integer(e->api_calls[REC_ACT_SHARE] + e->api_calls[REC_ACT_UNSHARE]), ok);
    jset(calls, "DeleteCustomImage", json_integer(e->api_calls[REC_ACT_DELETE]), ok);
    jset(calls, "DeleteImage", json_integer(e->api_calls[REC_ACT_ECS_DELETE]), ok);
    for (rec_action a = REC_ACT_TAG; a < REC_ACT__COUNT; a++)
        jset(calls, rec_action_api(a), json_integer(e->api_calls[a]), ok);
    jset(calls, "DeleteCustomImages", json_integer(e->delete_batch_calls), ok);
    jset(o, "api_calls", calls, ok);
    jset(o, "estimated_seconds", json_real((double)e->estimated_ms / 1000.0), ok);
    jset(o, "build_seconds", json_real((double)e->create_wait_ms / 1000.0), ok);
    jset(o, "build_learned_from", json_integer(e->create_wait_samples), ok);
    char rate[32];
    format_rate(e->rate_default, rate, sizeof(rate));
    jset(o, "rate", e->rates_uniform ? json_string(rate) : json_null(), ok);
    return o;
}

/* The whole document; NULL on allocation failure. Shared with rec_planfile.c. */
json_t *rec_plan_json(const rec_plan *plan)
{
    bool ok = true;
    json_t *doc = json_object();
    json_t *steps = json_array(), *changes = json_array(), *fp = json_object();
    static const struct {
        const char *key;
        rec_note_kind kind;
    } lists[] = {{"unmanaged", REC_NOTE_UNMANAGED}, {"guards", REC_NOTE_GUARD},
                 {"conflicts", REC_NOTE_CONFLICT},  {"refused", REC_NOTE_REFUSED},
                 {"drift", REC_NOTE_DRIFT},         {"warnings", REC_NOTE_WARNING}};
    if (!doc || !steps || !changes || !fp) {
        json_decref(doc);
        json_decref(steps);
        json_decref(changes);
        json_decref(fp);
        return NULL;
    }
    jset(doc, "format_version", json_string(REC_PLAN_FORMAT_VERSION), &ok);
    jset(doc, "owner", str_or_null(plan->owner), &ok);
    for (size_t i = 0; i < plan->n_steps; i++)
        jpush(steps, step_json(&plan->steps[i], &ok), &ok);
    jset(doc, "steps", steps, &ok);
    for (size_t i = 0; i < plan->n_changes; i++)
        jpush(changes, change_json(&plan->changes[i], &ok), &ok);
    jset(doc, "changes", changes, &ok);
    jset(doc, "summary", summary_json(plan, &ok), &ok);
    for (size_t l = 0; l < sizeof(lists) / sizeof(lists[0]); l++) {
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < plan->n_notes; i++)
            if (plan->notes[i].kind == lists[l].kind)
                jpush(arr, note_json(&plan->notes[i], &ok), &ok);
        jset(doc, lists[l].key, arr, &ok);
    }
    jset(fp, "desired", json_string(plan->fp.desired), &ok);
    jset(fp, "observed", json_string(plan->fp.observed), &ok);
    jset(doc, "fingerprint", fp, &ok);
    if (!ok) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

char *rec_render_json(const rec_plan *plan, bool pretty)
{
    if (!plan)
        return NULL;
    json_t *doc = rec_plan_json(plan);
    if (!doc)
        return NULL;
    char *s = json_dumps(doc, (pretty ? JSON_INDENT(2) : JSON_COMPACT) | JSON_PRESERVE_ORDER);
    json_decref(doc);
    return rec_escape_json_c1(s);
}
