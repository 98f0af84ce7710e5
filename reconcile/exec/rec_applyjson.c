/* The apply event stream (see rec_applyjson.h and APPLY-JSON.md). */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "rec_applyjson.h"
#include "rec_escape.h"
#include "rec_progress.h"
#include "rec_render.h"

#define MAX_KINDS 16

struct rec_applyjson {
    FILE *out;
    rec_wait_gate gate;
    unsigned seq; /* events written so far */
    struct {
        char action[32];
        unsigned n;
    } done[MAX_KINDS]; /* done steps per action name, any kind */
    size_t n_kinds;
};

int rec_applyjson_new(FILE *out, rec_applyjson **ret)
{
    rec_applyjson *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return -ENOMEM;
    w->out = out;
    *ret = w;
    return 0;
}

void rec_applyjson_free(rec_applyjson *w)
{
    free(w);
}

/* Sets key to s, or to null when s is NULL (absent values are null, never missing). */
static void set_str(json_t *o, const char *key, const char *s)
{
    (void)json_object_set_new(o, key, s ? json_string(s) : json_null());
}

/* Writes o (stolen) as one line with "event" and "seq" first. Strings from the cloud are JSON
 * escapes for every control, C1 included, so a terminal reading the stream obeys nothing. */
static void write_event(rec_applyjson *w, const char *event, json_t *o)
{
    json_t *line = json_pack("{s:s, s:s, s:I}", "format_version", REC_APPLYJSON_VERSION, "event",
                             event, "seq", (json_int_t)++w->seq);
    if (line == NULL || o == NULL || json_object_update(line, o) < 0) {
        json_decref(line);
        json_decref(o);
        return;
    }
    json_decref(o);
    char *text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(line);
    text = text ? rec_escape_json_c1(text) : NULL;
    if (text == NULL)
        return;
    fprintf(w->out, "%s\n", text);
    fflush(w->out);
    free(text);
}

void rec_applyjson_planned(rec_applyjson *w, const rec_plan *plan)
{
    if (w == NULL || plan == NULL)
        return;
    char *doc = rec_render_json(plan, false);
    json_t *p = doc ? json_loads(doc, JSON_REJECT_DUPLICATES, NULL) : NULL;
    free(doc);
    json_t *o = json_pack("{s:I, s:I}", "steps", (json_int_t)plan->n_steps, "changes",
                          (json_int_t)rec_plan_n_changes(plan));
    if (o != NULL)
        (void)json_object_set_new(o, "plan", p ? p : json_null());
    else
        json_decref(p);
    write_event(w, "planned", o);
}

static void count_done(rec_applyjson *w, const char *action)
{
    if (action == NULL)
        return;
    for (size_t i = 0; i < w->n_kinds; i++)
        if (strcmp(w->done[i].action, action) == 0) {
            w->done[i].n++;
            return;
        }
    if (w->n_kinds == MAX_KINDS)
        return;
    snprintf(w->done[w->n_kinds].action, sizeof(w->done[0].action), "%s", action);
    w->done[w->n_kinds++].n = 1;
}

/* The fields every step and waiting event has. */
static json_t *step_fields(const rec_event *ev)
{
    json_t *o = json_pack("{s:I, s:I, s:I}", "done", (json_int_t)ev->n_done, "failed",
                          (json_int_t)ev->n_failed, "total", (json_int_t)ev->n_total);
    if (o == NULL)
        return NULL;
    set_str(o, "address", ev->address);
    set_str(o, "action", ev->action);
    set_str(o, "image_id", ev->image_id);
    return o;
}

void rec_applyjson_event(rec_applyjson *w, const rec_event *ev)
{
    if (w == NULL || ev == NULL)
        return;
    json_t *o = NULL;
    switch (ev->kind) {
    case REC_EV_OBSERVED:
    case REC_EV_PLANNED:
        return;
    case REC_EV_STEP_START:
        write_event(w, "step_started", step_fields(ev));
        return;
    case REC_EV_STEP_DONE:
        count_done(w, ev->action);
        write_event(w, "step_done", step_fields(ev));
        return;
    case REC_EV_STEP_FAILED:
        o = step_fields(ev);
        if (o != NULL)
            set_str(o, "error", ev->text ? ev->text : "unknown error");
        write_event(w, "step_failed", o);
        return;
    case REC_EV_WAITING:
        if (!rec_wait_gate_pass(&w->gate, ev))
            return;
        o = step_fields(ev);
        if (o == NULL)
            return;
        set_str(o, "for", rec_wait_for_name(ev->wait_for));
        set_str(o, "what", ev->text);
        (void)json_object_set_new(o, "wait_ms", json_integer((json_int_t)ev->wait_ms));
        (void)json_object_set_new(o, "waited_ms", json_integer((json_int_t)ev->waited_ms));
        write_event(w, "waiting", o);
        return;
    }
}

void rec_applyjson_summary(rec_applyjson *w, const rec_applyjson_end *end)
{
    if (w == NULL || end == NULL)
        return;
    json_t *counts = json_object();
    for (size_t i = 0; counts != NULL && i < w->n_kinds; i++)
        (void)json_object_set_new(counts, w->done[i].action, json_integer(w->done[i].n));
    json_t *o = json_pack(
        "{s:s, s:i, s:I, s:I, s:I, s:I, s:o}", "result", end->result ? end->result : "error",
        "exit_code", end->exit_code, "steps_done", (json_int_t)end->n_done, "steps_failed",
        (json_int_t)end->n_failed, "steps_not_run", (json_int_t)end->n_skipped, "conflicts",
        (json_int_t)end->n_conflicts, "done_by_action", counts ? counts : json_object());
    if (o != NULL)
        set_str(o, "error", end->error);
    write_event(w, "summary", o);
}
