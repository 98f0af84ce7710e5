/* Apply progress for people: on a terminal one updating status line
 * (`[3/12] creating web-base-v3 ... next CreateCustomImage call in 12s`) above which finished
 * steps scroll; elsewhere plain lines (`create swas.cn-hangzhou.custom_image.web: done (m-xxx)`).
 * Fed with rec_cycle events by `imgrecon apply`. */
#ifndef REC_PROGRESS_H
#define REC_PROGRESS_H

#include <stdbool.h>
#include <stdio.h>

#include "rec_cycle.h"

typedef struct rec_progress rec_progress;

/* tty: updating line; color: ANSI colours for done/failed. out is borrowed. */
int rec_progress_new(FILE *out, bool tty, bool color, rec_progress **ret);
void rec_progress_event(rec_progress *p, const rec_event *ev);
/* "3 created, 1 deleted, 2 shared" (+ unshared / ECS deleted when any), from the done events. */
void rec_progress_summary(const rec_progress *p, char *buf, size_t size);
/* Clears the status line (call before printing the summary). */
void rec_progress_finish(rec_progress *p);
void rec_progress_free(rec_progress *p);

#endif
