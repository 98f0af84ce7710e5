/* Terminal and plain-text apply progress (see rec_progress.h). */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "rec_escape.h"
#include "rec_progress.h"

struct rec_progress {
    FILE *out;
    bool tty, color;
    bool line_shown; /* the status line is on screen */
    unsigned n_done, n_failed, n_total;
    char current[256];  /* what is happening now */
    char waiting[192];  /* "next CreateCustomImage call in 12s (waited 8s)" */
    rec_wait_gate gate; /* plain output: when the next waiting line may be printed */
    unsigned created, deleted, shared, unshared, ecs_deleted;
    unsigned other; /* done steps of other kinds (tag, retag, ...) */
};

/* Plain output stays quiet for short waits and repeats a long one this often. */
#define WAIT_FIRST_MS 3000
#define WAIT_EVERY_MS 15000

bool rec_wait_gate_pass(rec_wait_gate *g, const rec_event *ev)
{
    if (ev->kind != REC_EV_WAITING || ev->waited_ms < WAIT_FIRST_MS)
        return false;
    if (ev->wait_for != g->wait_for) {
        g->wait_for = ev->wait_for; /* another kind of wait: reported on its own */
        g->shown = false;
    }
    if (g->shown && ev->at_ms - g->last_at_ms < WAIT_EVERY_MS)
        return false;
    g->shown = true;
    g->last_at_ms = ev->at_ms;
    return true;
}

int rec_wait_describe(const rec_event *ev, char *buf, size_t size)
{
    char what[96], id[96];
    (void)rec_escape(ev->text ? ev->text : "next call", what, sizeof(what));
    (void)rec_escape(ev->image_id ? ev->image_id : "", id, sizeof(id));
    unsigned long long waited = ev->waited_ms / 1000, next = (ev->wait_ms + 999) / 1000;
    const char *kind = ev->wait_for == REC_WAIT_IMAGE_BUILD  ? "image build"
                       : ev->wait_for == REC_WAIT_RATE_LIMIT ? "the rate limit"
                                                             : "the cloud";
    return snprintf(buf, size, "waiting for %s%s%s%s: %s in %llus; waited %llus so far", kind,
                    id[0] ? " (" : "", id, id[0] ? ")" : "", what, next, waited);
}

int rec_progress_new(FILE *out, bool tty, bool color, rec_progress **ret)
{
    rec_progress *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    p->out = out;
    p->tty = tty;
    p->color = color && tty;
    *ret = p;
    return 0;
}

void rec_progress_free(rec_progress *p)
{
    free(p);
}

static void clear_line(rec_progress *p)
{
    if (p->tty && p->line_shown) {
        fputs("\r\033[K", p->out);
        p->line_shown = false;
    }
}

/* Redraws the one status line on a terminal. */
static void draw(rec_progress *p)
{
    if (!p->tty || p->n_total == 0)
        return;
    clear_line(p);
    fprintf(p->out, "[%u/%u] %s%s%s", p->n_done + p->n_failed, p->n_total,
            p->current[0] ? p->current : "working", p->waiting[0] ? " ... " : "", p->waiting);
    fflush(p->out);
    p->line_shown = true;
}

/* The short name of an address: its last dot-separated part. */
static const char *short_name(const char *address)
{
    const char *dot = address ? strrchr(address, '.') : NULL;
    return dot ? dot + 1 : (address ? address : "");
}

static const char *ing(const char *action)
{
    if (action == NULL)
        return "working on";
    if (strcmp(action, "create") == 0)
        return "creating";
    if (strcmp(action, "delete") == 0 || strcmp(action, "ecs_delete") == 0)
        return "deleting";
    if (strcmp(action, "share") == 0)
        return "sharing";
    if (strcmp(action, "unshare") == 0)
        return "unsharing";
    return action;
}

/* Counts a finished step for the summary line; kinds it has no word for count as "other". */
static void count_done(rec_progress *p, const char *action)
{
    static const struct {
        const char *action;
        size_t offset;
    } counters[] = {
        {"create", offsetof(rec_progress, created)},
        {"delete", offsetof(rec_progress, deleted)},
        {"share", offsetof(rec_progress, shared)},
        {"unshare", offsetof(rec_progress, unshared)},
        {"ecs_delete", offsetof(rec_progress, ecs_deleted)},
    };
    for (size_t i = 0; action != NULL && i < sizeof(counters) / sizeof(counters[0]); i++)
        if (strcmp(action, counters[i].action) == 0) {
            (*(unsigned *)((char *)p + counters[i].offset))++;
            return;
        }
    p->other++;
}

/* One scrolling line for a step: "ACTION ADDRESS: started (IMAGE)", ": done (IMAGE)" or
 * ": failed: ERROR"; any step kind by its action name. Text from the cloud is escaped. */
static void print_step(rec_progress *p, const rec_event *ev, const char *what, const char *on)
{
    bool failed = ev->kind == REC_EV_STEP_FAILED;
    fprintf(p->out, "%s%s ", on ? on : "", ev->action ? ev->action : "step");
    (void)rec_fputs_escaped(ev->address, p->out);
    fputs(what, p->out);
    if (failed) {
        (void)rec_fputs_escaped(ev->text ? ev->text : "unknown error", p->out);
    } else if (ev->image_id != NULL) {
        fputs(" (", p->out);
        (void)rec_fputs_escaped(ev->image_id, p->out);
        fputc(')', p->out);
    }
    fprintf(p->out, "%s\n", on && on[0] ? "\033[0m" : "");
    fflush(p->out);
}

void rec_progress_event(rec_progress *p, const rec_event *ev)
{
    if (p == NULL || ev == NULL)
        return;
    p->n_done = ev->n_done;
    p->n_failed = ev->n_failed;
    if (ev->n_total > 0)
        p->n_total = ev->n_total;
    switch (ev->kind) {
    case REC_EV_OBSERVED:
    case REC_EV_PLANNED:
        break;
    case REC_EV_STEP_START: {
        /* Names and error text may come from the cloud: escaped, never obeyed by the terminal. */
        char name[200];
        (void)rec_escape(short_name(ev->address), name, sizeof(name));
        snprintf(p->current, sizeof(p->current), "%s %s", ing(ev->action), name);
        p->waiting[0] = '\0';
        clear_line(p);
        print_step(p, ev, ": started", NULL);
        draw(p);
        break;
    }
    case REC_EV_STEP_DONE:
    case REC_EV_STEP_FAILED: {
        bool ok = ev->kind == REC_EV_STEP_DONE;
        if (ok)
            count_done(p, ev->action);
        clear_line(p);
        const char *on = p->color ? (ok ? "\033[32m" : "\033[31m") : "";
        print_step(p, ev, ok ? ": done" : ": failed: ", on);
        draw(p);
        break;
    }
    case REC_EV_WAITING:
        if (!p->tty) {
            char line[320];
            if (rec_wait_gate_pass(&p->gate, ev) && rec_wait_describe(ev, line, sizeof(line)) > 0) {
                fprintf(p->out, "%s\n", line);
                fflush(p->out);
            }
        } else if (ev->wait_ms > 0) {
            char what[96];
            (void)rec_escape(ev->text ? ev->text : "next call", what, sizeof(what));
            int k = snprintf(p->waiting, sizeof(p->waiting), "%s in %llus", what,
                             (unsigned long long)((ev->wait_ms + 999) / 1000));
            if (k > 0 && (size_t)k < sizeof(p->waiting) && ev->waited_ms >= WAIT_FIRST_MS)
                (void)snprintf(p->waiting + k, sizeof(p->waiting) - (size_t)k, " (waited %llus)",
                               (unsigned long long)(ev->waited_ms / 1000));
        } else {
            p->waiting[0] = '\0';
        }
        draw(p);
        break;
    }
}

void rec_progress_finish(rec_progress *p)
{
    if (p == NULL)
        return;
    clear_line(p);
    fflush(p->out);
}

void rec_progress_summary(const rec_progress *p, char *buf, size_t size)
{
    if (p == NULL) {
        snprintf(buf, size, "nothing done");
        return;
    }
    int k =
        snprintf(buf, size, "%u created, %u deleted, %u shared", p->created, p->deleted, p->shared);
    if (k > 0 && (size_t)k < size && p->unshared > 0)
        k += snprintf(buf + k, size - (size_t)k, ", %u unshared", p->unshared);
    if (k > 0 && (size_t)k < size && p->ecs_deleted > 0)
        k += snprintf(buf + k, size - (size_t)k, ", %u ECS image%s deleted", p->ecs_deleted,
                      p->ecs_deleted == 1 ? "" : "s");
    if (k > 0 && (size_t)k < size && p->other > 0)
        (void)snprintf(buf + k, size - (size_t)k, ", %u other step%s done", p->other,
                       p->other == 1 ? "" : "s");
}
