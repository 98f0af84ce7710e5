/* Apply progress for people: on a terminal one updating status line
 * (`[3/12] creating web-base-v3 ... next CreateCustomImage call in 12s`) above which finished
 * steps scroll; elsewhere plain lines (`create swas.cn-hangzhou.custom_image.web: done (m-xxx)`).
 * Fed with rec_cycle events by `imgrecon apply`. */
#ifndef REC_PROGRESS_H
#define REC_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "rec_cycle.h"

typedef struct rec_progress rec_progress;

/* When a consumer without a live line (a file, a log) reports a wait: once it has lasted 3 s,
 * then at most every 15 s (by the events' at_ms) while waits of that kind go on; a wait of
 * another kind is reported on its own. Zero-initialise; one per consumer. */
typedef struct rec_wait_gate {
    rec_wait_for wait_for;
    uint64_t last_at_ms; /* at_ms of the last one shown */
    bool shown;
} rec_wait_gate;

/* True when this REC_EV_WAITING event should be shown (updates g); false for other events. Used
 * by the plain progress output and the daemon's log. */
bool rec_wait_gate_pass(rec_wait_gate *g, const rec_event *ev);
/* "waiting for image build (m-1): 2 images becoming available; next ListCustomImages call in 3s;
 * waited 12s so far" or "waiting for the rate limit: next CreateCustomImage call in 8s; waited
 * 20s so far" into buf, escaped. Returns what snprintf returns. */
int rec_wait_describe(const rec_event *ev, char *buf, size_t size);

/* tty: updating line; color: ANSI colours for done/failed. out is borrowed. */
int rec_progress_new(FILE *out, bool tty, bool color, rec_progress **ret);
void rec_progress_event(rec_progress *p, const rec_event *ev);
/* "3 created, 1 deleted, 2 shared" (+ unshared / ECS deleted when any), from the done events. */
void rec_progress_summary(const rec_progress *p, char *buf, size_t size);
/* Clears the status line (call before printing the summary). */
void rec_progress_finish(rec_progress *p);
void rec_progress_free(rec_progress *p);

#endif
