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
};

int emu_limits_add_fault(emu_limits *l, const json_t *spec, const char **ret_why)
{
    if (!json_is_object(spec)) {
        *ret_why = "expected a JSON object";
        return -EINVAL;
    }
    const json_t *action = json_object_get(spec, "action");
    const json_t *kind = json_object_get(spec, "kind");
    const json_t *count = json_object_get(spec, "count");
    const json_t *delay = json_object_get(spec, "delay_ms");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)spec, key, v)
    {
        if (strcmp(key, "action") != 0 && strcmp(key, "kind") != 0 && strcmp(key, "count") != 0 &&
            strcmp(key, "delay_ms") != 0) {
            *ret_why = "unknown key (expected action, kind, count, delay_ms)";
            return -EINVAL;
        }
    }
    if (action && !json_is_string(action)) {
        *ret_why = "action must be a string";
        return -EINVAL;
    }
    emu_fault f = {.count = 1};
    bool found = false;
    for (size_t i = 0; json_is_string(kind) && i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (strcmp(json_string_value(kind), kinds[i].name) == 0) {
            f.kind = kinds[i].kind;
            found = true;
        }
    }
    if (!found) {
        *ret_why = "kind must be InternalError, ServiceUnavailable, Throttling, delay or drop";
        return -EINVAL;
    }
    if (count) {
        if (!json_is_integer(count) || json_integer_value(count) < 1 ||
            json_integer_value(count) > 1000000) {
            *ret_why = "count must be an integer >= 1";
            return -EINVAL;
        }
        f.count = (unsigned)json_integer_value(count);
    }
    if (delay) {
        if (!json_is_integer(delay) || json_integer_value(delay) < 0 ||
            json_integer_value(delay) > 600000) {
            *ret_why = "delay_ms must be an integer from 0 to 600000";
            return -EINVAL;
        }
        f.delay_ms = json_integer_value(delay);
    } else if (f.kind == EMU_FAULT_DELAY || f.kind == EMU_FAULT_LATE) {
        *ret_why = "delay and late need delay_ms";
        return -EINVAL;
    }
    const char *a = action ? json_string_value(action) : "*";
    emu_fault *nv = realloc(l->faults, (l->n_faults + 1) * sizeof(*nv));
    if (!nv) {
        return -ENOMEM;
    }
    l->faults = nv;
    f.action = strdup(a);
    if (!f.action) {
        return -ENOMEM;
    }
    nv[l->n_faults++] = f;
    return 0;
}

void emu_limits_clear_faults(emu_limits *l)
{
    for (size_t i = 0; i < l->n_faults; i++) {
        free(l->faults[i].action);
    }
    free(l->faults);
    l->faults = NULL;
    l->n_faults = 0;
}

enum emu_fault_kind emu_limits_next_fault(emu_limits *l, const char *action, int64_t *ret_delay_ms)
{
    *ret_delay_ms = 0;
    for (size_t i = 0; i < l->n_faults; i++) {
        emu_fault *f = &l->faults[i];
        if (strcmp(f->action, "*") != 0 && (!action || strcmp(f->action, action) != 0)) {
            continue;
        }
        enum emu_fault_kind kind = f->kind;
        *ret_delay_ms = f->delay_ms;
        if (--f->count == 0) {
            free(f->action);
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
