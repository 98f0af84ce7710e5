/* Sliding-window rate limits and fault injection of the emulator (see emu_limits.h). */
#include "emu_limits.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu_util.h"

void emu_limits_init(emu_limits *l, unsigned calls, int64_t window_ms, double fault_rate,
                     uint64_t seed)
{
    memset(l, 0, sizeof(*l));
    l->calls = calls;
    l->window_ms = window_ms;
    l->fault_rate = fault_rate;
    l->rng = seed ^ 0x5eed5eed5eed5eedULL;
}

void emu_limits_reset(emu_limits *l)
{
    for (size_t i = 0; i < l->n_windows; i++) {
        free(l->windows[i].key);
        free(l->windows[i].calls);
    }
    free(l->windows);
    l->windows = NULL;
    l->n_windows = 0;
    emu_limits_clear_faults(l);
}

void emu_limits_free(emu_limits *l)
{
    if (!l) {
        return;
    }
    emu_limits_reset(l);
}

int emu_limits_take(emu_limits *l, const char *key, const char *action, int64_t mono_ms)
{
    char *wkey = NULL;
    if (asprintf(&wkey, "%s\n%s", key ? key : "", action ? action : "") < 0) {
        return -ENOMEM;
    }
    emu_window *w = NULL;
    for (size_t i = 0; i < l->n_windows && !w; i++) {
        if (strcmp(l->windows[i].key, wkey) == 0) {
            w = &l->windows[i];
        }
    }
    if (!w) {
        emu_window *nv = realloc(l->windows, (l->n_windows + 1) * sizeof(*nv));
        if (!nv) {
            free(wkey);
            return -ENOMEM;
        }
        l->windows = nv;
        w = &nv[l->n_windows++];
        memset(w, 0, sizeof(*w));
        w->key = wkey;
        w->calls = calloc(l->calls ? l->calls : 1, sizeof(*w->calls));
        if (!w->calls) {
            return -ENOMEM;
        }
    } else {
        free(wkey);
    }
    /* Drop the calls that left the window. */
    size_t k = 0;
    while (k < w->n && mono_ms - w->calls[k] >= l->window_ms) {
        k++;
    }
    memmove(w->calls, w->calls + k, (w->n - k) * sizeof(*w->calls));
    w->n -= k;
    if (w->n >= l->calls) {
        return 1;
    }
    w->calls[w->n++] = mono_ms;
    return 0;
}

static const struct {
    const char *name;
    enum emu_fault_kind kind;
} kinds[] = {
    {"InternalError", EMU_FAULT_INTERNAL},
    {"ServiceUnavailable", EMU_FAULT_UNAVAILABLE},
    {"Throttling", EMU_FAULT_THROTTLING},
    {"delay", EMU_FAULT_DELAY},
    {"drop", EMU_FAULT_DROP},
    {"late", EMU_FAULT_LATE},
    {"answer", EMU_FAULT_ANSWER},
};

/* The keys a scripted fault may carry. */
static const char *const fault_keys[] = {"action", "kind", "count", "skip", "delay_ms", "body"};

static bool fault_key_known(const char *key)
{
    for (size_t i = 0; i < sizeof(fault_keys) / sizeof(fault_keys[0]); i++) {
        if (strcmp(key, fault_keys[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* An optional integer member within [lo, hi]: 0 (left as is when absent) or -EINVAL. */
static int opt_int(const json_t *v, long long lo, long long hi, long long *ret)
{
    if (!v) {
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        return -EINVAL;
    }
    *ret = json_integer_value(v);
    return 0;
}

/* Fills f from spec's members; 0 or -EINVAL with a static reason in *ret_why. */
static int fault_from_json(const json_t *spec, emu_fault *f, const char **ret_why)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)spec, key, v)
    {
        if (!fault_key_known(key)) {
            *ret_why = "unknown key (expected action, kind, count, skip, delay_ms, body)";
            return -EINVAL;
        }
    }
    const json_t *kind = json_object_get(spec, "kind");
    bool found = false;
    for (size_t i = 0; json_is_string(kind) && i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (strcmp(json_string_value(kind), kinds[i].name) == 0) {
            f->kind = kinds[i].kind;
            found = true;
        }
    }
    if (!found) {
        *ret_why = "kind must be InternalError, ServiceUnavailable, Throttling, delay, late, drop "
                   "or answer";
        return -EINVAL;
    }
    long long count = 1, skip = 0, delay = -1;
    if (opt_int(json_object_get(spec, "count"), 1, 1000000, &count) < 0) {
        *ret_why = "count must be an integer >= 1";
        return -EINVAL;
    }
    if (opt_int(json_object_get(spec, "skip"), 0, 1000000, &skip) < 0) {
        *ret_why = "skip must be an integer >= 0";
        return -EINVAL;
    }
    if (opt_int(json_object_get(spec, "delay_ms"), 0, 600000, &delay) < 0) {
        *ret_why = "delay_ms must be an integer from 0 to 600000";
        return -EINVAL;
    }
    if (delay < 0 && (f->kind == EMU_FAULT_DELAY || f->kind == EMU_FAULT_LATE)) {
        *ret_why = "delay and late need delay_ms";
        return -EINVAL;
    }
    const json_t *body = json_object_get(spec, "body");
    if ((f->kind == EMU_FAULT_ANSWER) != json_is_object(body) ||
        (f->kind != EMU_FAULT_ANSWER && body)) {
        *ret_why = "answer needs a body (a JSON object), and only answer takes one";
        return -EINVAL;
    }
    f->count = (unsigned)count;
    f->skip = (unsigned)skip;
    f->delay_ms = delay < 0 ? 0 : delay;
    f->body = body ? json_deep_copy(body) : NULL;
    return body && !f->body ? -ENOMEM : 0;
}

int emu_limits_add_fault(emu_limits *l, const json_t *spec, const char **ret_why)
{
    if (!json_is_object(spec)) {
        *ret_why = "expected a JSON object";
        return -EINVAL;
    }
    const json_t *action = json_object_get(spec, "action");
    if (action && !json_is_string(action)) {
        *ret_why = "action must be a string";
        return -EINVAL;
    }
    emu_fault f = {0};
    int rc = fault_from_json(spec, &f, ret_why);
    if (rc < 0) {
        return rc;
    }
    emu_fault *nv = realloc(l->faults, (l->n_faults + 1) * sizeof(*nv));
    f.action = nv ? strdup(action ? json_string_value(action) : "*") : NULL;
    if (nv) {
        l->faults = nv;
    }
    if (!f.action) {
        json_decref(f.body);
        return -ENOMEM;
    }
    nv[l->n_faults++] = f;
    return 0;
}

void emu_limits_clear_faults(emu_limits *l)
{
    for (size_t i = 0; i < l->n_faults; i++) {
        free(l->faults[i].action);
        json_decref(l->faults[i].body);
    }
    free(l->faults);
    l->faults = NULL;
    l->n_faults = 0;
}

enum emu_fault_kind emu_limits_next_fault(emu_limits *l, const char *action, int64_t *ret_delay_ms,
                                          json_t **ret_body)
{
    *ret_delay_ms = 0;
    *ret_body = NULL;
    for (size_t i = 0; i < l->n_faults; i++) {
        emu_fault *f = &l->faults[i];
        if (strcmp(f->action, "*") != 0 && (!action || strcmp(f->action, action) != 0)) {
            continue;
        }
        if (f->skip > 0) {
            f->skip--;
            return EMU_FAULT_NONE;
        }
        enum emu_fault_kind kind = f->kind;
        *ret_delay_ms = f->delay_ms;
        *ret_body = f->body ? json_deep_copy(f->body) : NULL;
        if (--f->count == 0) {
            free(f->action);
            json_decref(f->body);
            memmove(f, f + 1, (l->n_faults - i - 1) * sizeof(*f));
            l->n_faults--;
        }
        return kind;
    }
    if (l->fault_rate > 0) {
        double u = (double)(emu_rand_next(&l->rng) >> 11) / (double)(1ULL << 53);
        if (u < l->fault_rate) {
            return (emu_rand_next(&l->rng) & 1) ? EMU_FAULT_INTERNAL : EMU_FAULT_UNAVAILABLE;
        }
    }
    return EMU_FAULT_NONE;
}
