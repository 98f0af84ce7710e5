/* Terminal and plain-text apply progress (see rec_progress.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rec_escape.h"
#include "rec_progress.h"

struct rec_progress {
    FILE *out;
    bool tty, color;
    bool line_shown; /* the status line is on screen */
    unsigned n_done, n_failed, n_total;
    char current[256]; /* what is happening now */
    char waiting[128]; /* "next CreateCustomImage call in 12s" */
    unsigned created, deleted, shared, unshared, ecs_deleted;
};

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
        draw(p);
        break;
    }
    case REC_EV_STEP_DONE:
    case REC_EV_STEP_FAILED: {
        bool ok = ev->kind == REC_EV_STEP_DONE;
        if (ok && ev->action != NULL) {
            if (strcmp(ev->action, "create") == 0)
                p->created++;
            else if (strcmp(ev->action, "delete") == 0)
                p->deleted++;
            else if (strcmp(ev->action, "share") == 0)
                p->shared++;
            else if (strcmp(ev->action, "unshare") == 0)
                p->unshared++;
            else if (strcmp(ev->action, "ecs_delete") == 0)
                p->ecs_deleted++;
        }
        clear_line(p);
        const char *on = p->color ? (ok ? "\033[32m" : "\033[31m") : "";
        const char *off = p->color ? "\033[0m" : "";
        fprintf(p->out, "%s%s ", on, ev->action ? ev->action : "step");
        (void)rec_fputs_escaped(ev->address, p->out);
        if (ok && ev->text) {
            fputs(": done (", p->out);
            (void)rec_fputs_escaped(ev->text, p->out);
            fputc(')', p->out);
        } else if (ok) {
            fputs(": done", p->out);
        } else {
            fputs(": failed: ", p->out);
            (void)rec_fputs_escaped(ev->text ? ev->text : "unknown error", p->out);
        }
        fprintf(p->out, "%s\n", off);
        fflush(p->out);
        draw(p);
        break;
    }
    case REC_EV_WAITING:
        if (ev->wait_ms > 0) {
            char what[96];
            (void)rec_escape(ev->text ? ev->text : "next call", what, sizeof(what));
            snprintf(p->waiting, sizeof(p->waiting), "%s in %llus", what,
                     (unsigned long long)((ev->wait_ms + 999) / 1000));
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
        (void)snprintf(buf + k, size - (size_t)k, ", %u ECS image%s deleted", p->ecs_deleted,
                       p->ecs_deleted == 1 ? "" : "s");
}
