/* Rate limits and faults of the emulator. The limiter is a sliding window per
 * (account, action): at most N calls in any window W, like the cloud's per-user flow control
 * (every key of one account and every role assumed in it count together; the caller passes the
 * account as the key). Faults are either random (--fault-rate, seeded) or scripted per action
 * through POST /_emulator/faults and consumed in order. Guarded by the server's mutex. */
#ifndef EMU_LIMITS_H
#define EMU_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

enum emu_fault_kind {
    EMU_FAULT_NONE = 0,
    EMU_FAULT_INTERNAL,    /* HTTP 500 InternalError before any state change */
    EMU_FAULT_UNAVAILABLE, /* HTTP 503 ServiceUnavailable before any state change */
    EMU_FAULT_THROTTLING,  /* HTTP 400 Throttling before any state change */
    EMU_FAULT_DELAY,       /* sleep delay_ms, then handle the call normally */
    EMU_FAULT_DROP,        /* close the connection without an answer, no state change */
    EMU_FAULT_LATE,        /* handle the call normally, then hold the answer delay_ms */
    EMU_FAULT_ANSWER,      /* answer 200 with the scripted body instead of handling the call */
};

typedef struct emu_fault {
    char *action; /* NULL or "*" = any action */
    enum emu_fault_kind kind;
    unsigned count;
    unsigned skip; /* matching calls still to let through before the fault applies */
    int64_t delay_ms;
    json_t *body; /* EMU_FAULT_ANSWER: the success body (RequestId is added when sent) */
} emu_fault;

typedef struct emu_window {
    char *key;      /* "access key id\naction" */
    int64_t *calls; /* monotonic ms of the calls inside the window, oldest first */
    size_t n;
} emu_window;

typedef struct emu_limits {
    unsigned calls;
    int64_t window_ms;
    emu_window *windows;
    size_t n_windows;
    emu_fault *faults;
    size_t n_faults;
    double fault_rate;
    uint64_t rng;
} emu_limits;

void emu_limits_init(emu_limits *l, unsigned calls, int64_t window_ms, double fault_rate,
                     uint64_t seed);
void emu_limits_free(emu_limits *l);
/* Forgets every window and scripted fault (POST /_emulator/reset). */
void emu_limits_reset(emu_limits *l);

/* Counts one call of (key, action) at mono_ms when the window has room and returns 0; returns
 * 1 when the window is full (the call is throttled and not counted); -ENOMEM. */
int emu_limits_take(emu_limits *l, const char *key, const char *action, int64_t mono_ms);

/* Parses one scripted fault from the admin body
 * {"action":"CreateCustomImage","kind":"InternalError|ServiceUnavailable|Throttling|delay|late|
 *  drop|answer","count":3,"skip":1,"delay_ms":5000,"body":{...}} and appends it. Returns 0,
 * -EINVAL with a static reason in *ret_why, -ENOMEM. */
int emu_limits_add_fault(emu_limits *l, const json_t *spec, const char **ret_why);
void emu_limits_clear_faults(emu_limits *l);
/* The fault for this call, if any: scripted first (the first one added that matches the action
 * decides: while its skip is above 0 the call goes through unfaulted and skip counts down, else
 * it is consumed one count at a time), else random with probability fault_rate (InternalError or
 * ServiceUnavailable). *ret_body is NULL, or for EMU_FAULT_ANSWER a copy of the body (NULL when out
 * of memory). */
enum emu_fault_kind emu_limits_next_fault(emu_limits *l, const char *action, int64_t *ret_delay_ms,
                                          json_t **ret_body);

#endif
