/* `imgrecon apply --json`: one JSON object per line on stdout, in the order things happen (the
 * format is reconcile/exec/APPLY-JSON.md, format_version "1.0"). Fed with the plan and the
 * rec_cycle events by cmd/cmd_apply.c, which writes the summary last whatever happened. */
#ifndef REC_APPLYJSON_H
#define REC_APPLYJSON_H

#include <stdbool.h>
#include <stdio.h>

#include "rec_cycle.h"
#include "rec_plan.h"

#define REC_APPLYJSON_VERSION "1.0"

typedef struct rec_applyjson rec_applyjson;

/* out is borrowed and must outlive the writer. Returns 0 or -ENOMEM. */
int rec_applyjson_new(FILE *out, rec_applyjson **ret);
/* Frees the writer (not out). Accepts NULL. */
void rec_applyjson_free(rec_applyjson *w);
/* The "planned" event: the fresh plan as PLAN-JSON under "plan", before any step starts. */
void rec_applyjson_planned(rec_applyjson *w, const rec_plan *plan);
/* step_started, step_done, step_failed and (first after 3 s, then every 15 s of one wait)
 * waiting events; observed/planned cycle events are not written (see rec_applyjson_planned). */
void rec_applyjson_event(rec_applyjson *w, const rec_event *ev);

/* What the summary reports besides the counts the writer kept from the events. */
typedef struct rec_applyjson_end {
    const char *result; /* "complete", "incomplete", "no_changes", "cancelled", "error" */
    int exit_code;      /* the process's exit code */
    unsigned n_done, n_failed, n_skipped;
    size_t n_conflicts;
    const char *error; /* why the apply could not run or failed; NULL: none */
} rec_applyjson_end;

/* The "summary" event, always the last line. */
void rec_applyjson_summary(rec_applyjson *w, const rec_applyjson_end *end);

#endif
