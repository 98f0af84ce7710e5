/* The paced executor (see rec_exec.h). One object per apply/cycle; all work happens in client
 * callbacks and one poll timer on the caller's loop. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prov_swas.h"
#include "rec_exec.h"
#include "prov_pacer.h"
#include "prov_str.h"

#define DEFAULT_ADOPT_WINDOW_MS (10ull * 60 * 1000)
#define DEFAULT_UNLISTED_MS (10ull * 60 * 1000)
#define DEFAULT_CREATE_TIMEOUT_MS (2ull * 60 * 60 * 1000)
#define POLL_BATCH 100
#define PROGRESS_TICK_MS 1000

typedef struct xstep xstep;

/* One step's runtime state. */
struct xstep {
    rec_exec *x;
    rec_step *step;
    rec_step_state state;
    char *image_id;       /* the image acted on or created */
    char *error;          /* failure text */
    bool unshared;        /* delete: the CustomImageInShare unshare was inserted already */
    bool unshare_next;    /* delete: the next call is the inserted unshare */
    bool from_journal;    /* awaiting an image a previous run created (list lag) */
    bool renamed_lookup;  /* create: ImageNameAlreadyExist re-observe under way */
    bool single;          /* delete: goes as DeleteCustomImage (a batch fell back to singles) */
    bool batched;         /* delete: its batch was refused for a share; it rejoins a batch */
    bool unsharing;       /* delete: the inserted unshare is in flight */
    bool looked;          /* delete, tags: a listing just before it showed the owner unchanged */
    uint64_t looked_ms;   /* when that listing was answered (boot clock); see look_fresh */
    bool restarted;       /* delete, tags: started once, its call went stale (look_again) */
    uint64_t due_ms;      /* awaiting: when the next poll should ask for this image */
    uint64_t probe2_ms;   /* awaiting: a second probe after a bisecting first one (0: none) */
    uint64_t miss_ms;     /* awaiting: send time of the last poll that saw it not available */
    bool timed;           /* awaiting: await_since_ms is the create's answer (a build sample) */
    bool guided;          /* awaiting: due_ms comes from learned build times */
    bool second_probe;    /* awaiting: due_ms is a guided step's second probe (no slot gap) */
    uint64_t lo_carry_ms; /* awaiting: the learned lower bound this image's sample keeps */
    uint64_t await_since_ms;
    uint64_t running_since_ms; /* when its current call was handed to the client (paced there) */
    uint64_t listed_since_ms;  /* 0 until the image was seen in a poll */
};

/* Recent answer times of one API action, to tell the user when its next call can go. */
#define HIST_MAX 64
typedef struct act_hist {
    const char *api;
    uint64_t t[HIST_MAX];
    size_t n, head;
} act_hist;

struct rec_exec {
    act_hist hist[8];
    size_t n_hist;
    uv_loop_t *loop;
    rec_plan *plan;
    rec_exec_opts o;
    rec_exec_done_cb done;
    void *ud;
    xstep *xs;
    size_t n;
    unsigned n_done, n_failed, n_skipped;
    size_t inflight; /* client callbacks outstanding (calls and polls) */
    bool poll_inflight;
    bool stopping;
    bool finishing;
    uv_timer_t poll_timer;
    uv_timer_t tick_timer;
    int n_handles; /* open timer handles */
    uint64_t last_poll_ms;
    uint64_t poll_at_ms;    /* when the armed poll timer fires */
    rec_wait_for wait_for;  /* the wait on_tick reported last (REC_WAIT_NONE: none) */
    uint64_t wait_since_ms; /* when that wait began */
    size_t poll_rr;         /* round-robin start among regions */
    unsigned poll_failures; /* consecutive failed polls */
};

/* Per-call context: which step and what the call was. */
typedef struct xcall {
    xstep *s;
    const char *api; /* API action for the journal */
    char *token;     /* the token used */
    char **poll_ids; /* poll: the ids asked for */
    size_t n_poll_ids;
    char *poll_region;
    bool inserted_unshare; /* the unshare inserted before a delete */
    xstep **batch;         /* steps sent in this one call (s is batch[0]): tags, or deletes */
    size_t n_batch;
    uint64_t sent_ms; /* poll: when it was sent */
} xcall;

static void pump(rec_exec *x);
static void start_look(rec_exec *x, xstep **v, size_t n);
static void step_fail(xstep *s, const char *what);
static int journal_line(rec_exec *x, rec_journal_phase phase, const xstep *s, const char *api,
                        const char *token, const char *image_id, const char *code);

static void hist_record(rec_exec *x, const char *api)
{
    if (api == NULL)
        return;
    act_hist *h = NULL;
    for (size_t i = 0; i < x->n_hist && h == NULL; i++)
        if (strcmp(x->hist[i].api, api) == 0)
            h = &x->hist[i];
    if (h == NULL) {
        if (x->n_hist == sizeof(x->hist) / sizeof(x->hist[0]))
            return;
        h = &x->hist[x->n_hist++];
        h->api = api;
    }
    h->t[h->head] = uv_now(x->loop);
    h->head = (h->head + 1) % HIST_MAX;
    if (h->n < HIST_MAX)
        h->n++;
}

/* When the next call of api can go by our own recent calls (0: now or unknown). */
static uint64_t hist_next_ms(const rec_exec *x, const char *api)
{
    if (x->o.cfg == NULL)
        return 0;
    spec_rate r = spec_config_rate_for(x->o.cfg, api);
    for (size_t i = 0; i < x->n_hist; i++) {
        const act_hist *h = &x->hist[i];
        if (strcmp(h->api, api) != 0 || r.calls == 0 || r.calls > HIST_MAX || h->n < r.calls)
            continue;
        uint64_t oldest = h->t[(h->head + HIST_MAX - r.calls) % HIST_MAX];
        uint64_t now = uv_now(x->loop);
        return oldest + r.window_ms > now ? oldest + r.window_ms - now : 0;
    }
    return 0;
}
static void schedule_poll(rec_exec *x);

/* The loop's monotonic clock: every wait, timeout and interval of the executor is measured on it,
 * so a step of the wall clock neither fails an await nor hurries a poll. Wall time
 * (prov_now_ms) is only compared with what is stored across processes: the journal and the
 * pacer's call log. */
static uint64_t now_ms(const rec_exec *x)
{
    return uv_now(x->loop);
}

static const char *target_image(const xstep *s);

/* Reports a step event (s set) or a cycle-level one to the caller's on_event (apply's progress,
 * the daemon's log) under the action name given. Step events carry the image the step acts on
 * when it is known. */
static void emit_as(rec_exec *x, rec_event_kind kind, const xstep *s, const char *action,
                    const char *text, uint64_t wait_ms)
{
    if (x->o.on_event == NULL)
        return;
    rec_event ev = {
        .kind = kind,
        .address = s ? s->step->address : NULL,
        .action = action,
        .text = text,
        .image_id = s ? target_image(s) : NULL,
        .n_done = x->n_done,
        .n_failed = x->n_failed,
        .n_total = (unsigned)x->n,
        .wait_ms = wait_ms,
    };
    if (kind == REC_EV_WAITING) {
        ev.wait_for = x->wait_for;
        ev.at_ms = now_ms(x);
        ev.waited_ms = ev.at_ms > x->wait_since_ms ? ev.at_ms - x->wait_since_ms : 0;
    }
    x->o.on_event(x->o.ud, &ev);
}

/* emit_as under the step's action; a delete's inserted unshare, while in flight, is reported as
 * the unshare it is. */
static void emit(rec_exec *x, rec_event_kind kind, const xstep *s, const char *text,
                 uint64_t wait_ms)
{
    const char *action = s == NULL      ? NULL
                         : s->unsharing ? rec_action_name(REC_ACT_UNSHARE)
                                        : rec_action_name(s->step->action);
    emit_as(x, kind, s, action, text, wait_ms);
}

/* Writes a journal line. Any failure stops further mutating calls in this run (crash safety
 * would be lost): an intent that cannot be written fails its step before the call; a result
 * that cannot be written fails the step after it (see journal_result). */
static int journal(rec_exec *x, rec_journal_phase phase, const xstep *s, const char *api,
                   const char *token, const char *image_id, const char *code)
{
    if (x->o.journal == NULL)
        return 0;
    int rc = journal_line(x, phase, s, api, token, image_id, code);
    if (rc < 0 && !x->stopping) {
        x->stopping = true;
        uv_timer_stop(&x->poll_timer);
    }
    return rc;
}

/* After a call: writes its result; when that fails, the step fails (the call happened but is
 * not recorded) and nothing else is started. Returns true when the result was written. */
static bool journal_result(rec_exec *x, xstep *s, const char *api, const char *token,
                           const char *image_id, const char *code)
{
    int rc = journal(x, REC_JOURNAL_RESULT, s, api, token, image_id, code);
    if (rc == 0)
        return true;
    char msg[256];
    snprintf(msg, sizeof(msg),
             "the call was made but its result could not be written to the journal (%s); "
             "stopping: no further changes in this run",
             strerror(-rc));
    step_fail(s, msg);
    return false;
}

static int journal_line(rec_exec *x, rec_journal_phase phase, const xstep *s, const char *api,
                        const char *token, const char *image_id, const char *code)
{
    rec_journal_entry e = {
        .phase = phase,
        .address = s->step->address,
        .action = (char *)api,
        .region = s->step->region,
        .name = s->step->name,
        .client_token = (char *)token,
        .image_id = (char *)image_id,
        .code = (char *)code,
    };
    return rec_journal_append_unsynced(x->o.journal, &e);
}

/* The client's before-send hook (prov_client_set_before_send): the intents written since the
 * last sync reach the disk, in one fdatasync, before the calls they announce leave. A failure
 * stops further mutating calls, as a failed journal write does. */
static int sync_journal(void *ud)
{
    rec_exec *x = ud;
    int rc = rec_journal_sync(x->o.journal);
    if (rc < 0 && !x->stopping) {
        x->stopping = true;
        uv_timer_stop(&x->poll_timer);
    }
    return rc;
}

static void step_done(xstep *s, const char *image_id)
{
    rec_exec *x = s->x;
    if (image_id != NULL && s->image_id != image_id)
        (void)prov_set_str(&s->image_id, image_id);
    s->state = REC_STEP_DONE;
    x->n_done++;
    emit(x, REC_EV_STEP_DONE, s, s->image_id, 0);
}

/* Fails a step with "file:line:col: action name: what". */
static void step_fail(xstep *s, const char *what)
{
    rec_exec *x = s->x;
    char buf[2048];
    const rec_step *st = s->step;
    const char *label = st->name ? st->name : (st->image_id ? st->image_id : st->address);
    if (st->file != NULL)
        snprintf(buf, sizeof(buf), "%s:%u:%u: %s %s: %s", st->file, st->line, st->col,
                 rec_action_name(st->action), label, what);
    else
        snprintf(buf, sizeof(buf), "%s %s: %s", rec_action_name(st->action), label, what);
    free(s->error);
    s->error = strdup(buf);
    s->state = REC_STEP_FAILED;
    x->n_failed++;
    emit(x, REC_EV_STEP_FAILED, s, s->error ? s->error : what, 0);
}

static void step_fail_err(xstep *s, const prov_error *err)
{
    char *d = prov_error_describe(err);
    step_fail(s, d ? d : "unknown error");
    free(d);
}

/* A step that will not run: skipped, or failed when it told the listener it started (its call
 * went stale and it waited for another look, look_again), so that no start goes without an end. */
static void step_skip(xstep *s)
{
    if (s->restarted) {
        step_fail(s, "not sent: the run stopped before its call could be sent again");
        return;
    }
    s->state = REC_STEP_SKIPPED;
    s->x->n_skipped++;
}

static xcall *xcall_new(xstep *s, const char *api, const char *token)
{
    xcall *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->s = s;
    c->api = api;
    if (token != NULL && (c->token = strdup(token)) == NULL) {
        free(c);
        return NULL;
    }
    return c;
}

static void xcall_free(xcall *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n_poll_ids; i++)
        free(c->poll_ids[i]);
    free(c->poll_ids);
    free(c->poll_region);
    free(c->batch);
    free(c->token);
    free(c);
}

/* ---- finishing ---- */

static void on_handle_closed(uv_handle_t *h)
{
    rec_exec *x = h->data;
    if (--x->n_handles > 0)
        return;
    const char **errors = calloc(x->n ? x->n : 1, sizeof(*errors));
    const char **ids = calloc(x->n ? x->n : 1, sizeof(*ids));
    rec_step_state *states = calloc(x->n ? x->n : 1, sizeof(*states));
    for (size_t i = 0; i < x->n && errors && ids && states; i++) {
        errors[i] = x->xs[i].error;
        ids[i] = x->xs[i].image_id;
        states[i] = x->xs[i].state;
    }
    rec_exec_result res = {
        .n_done = x->n_done,
        .n_failed = x->n_failed,
        .n_skipped = x->n_skipped,
        .states = states,
        .errors = errors,
        .image_ids = ids,
    };
    if (errors && ids && states)
        x->done(&res, x->ud);
    else
        x->done(&(rec_exec_result){.n_done = x->n_done,
                                   .n_failed = x->n_failed,
                                   .n_skipped = x->n_skipped},
                x->ud);
    free(errors);
    free(ids);
    free(states);
    for (size_t i = 0; i < x->n; i++) {
        free(x->xs[i].image_id);
        free(x->xs[i].error);
    }
    free(x->xs);
    free(x);
}

/* The client's bound on how long the calls the executor looks at before (deletes and tag
 * changes) may wait for their budget: LOOK_MAX_WAIT_MS while a run goes, 0 once it ends (the
 * client outlives the run in the daemon, and `imgrecon api` calls look at nothing). Failures
 * (out of memory for a queue) leave the calls unbounded, as before the bound existed. */
static void set_look_max_wait(rec_exec *x, uint64_t ms)
{
    static const char *const looked[] = {"DeleteCustomImage", "DeleteCustomImages", "TagResources",
                                         "UntagResources"};
    for (size_t i = 0; i < sizeof(looked) / sizeof(looked[0]); i++)
        (void)prov_client_set_max_wait(x->o.client, PROV_SWAS, looked[i], ms);
}

/* Ends the run when nothing is left to do and no callback is outstanding. */
static void maybe_finish(rec_exec *x)
{
    if (x->finishing || x->inflight > 0)
        return;
    bool awaiting = false;
    for (size_t i = 0; i < x->n; i++) {
        rec_step_state st = x->xs[i].state;
        if (st == REC_STEP_RUNNING)
            return;
        if (st == REC_STEP_PENDING && !x->stopping)
            return;
        if (st == REC_STEP_AWAITING)
            awaiting = true;
    }
    if (awaiting && !x->stopping)
        return;
    /* Stopped: what did not finish is skipped (the next cycle sees it again). */
    for (size_t i = 0; i < x->n; i++)
        if (x->xs[i].state == REC_STEP_PENDING || x->xs[i].state == REC_STEP_AWAITING)
            step_skip(&x->xs[i]);
    x->finishing = true;
    set_look_max_wait(x, 0);
    if (x->o.journal != NULL) {
        prov_client_set_before_send(x->o.client, NULL, NULL);
        (void)rec_journal_sync(x->o.journal); /* the last results; close syncs again if need be */
    }
    uv_close((uv_handle_t *)&x->poll_timer, on_handle_closed);
    uv_close((uv_handle_t *)&x->tick_timer, on_handle_closed);
}

/* ---- the image a step acts on ---- */

/* The image id for a step: its own, else the one its create/wait dependency produced. */
static const char *target_image(const xstep *s)
{
    if (s->image_id != NULL)
        return s->image_id;
    if (s->step->image_id != NULL)
        return s->step->image_id;
    rec_exec *x = s->x;
    for (size_t k = 0; k < s->step->n_depends; k++) {
        unsigned id = s->step->depends_on[k];
        if (id == 0 || id > x->n)
            continue;
        const xstep *d = &x->xs[id - 1];
        if ((d->step->action == REC_ACT_CREATE || d->step->action == REC_ACT_WAIT) &&
            d->image_id != NULL && d->step->name && s->step->name &&
            strcmp(d->step->name, s->step->name) == 0)
            return d->image_id;
    }
    return NULL;
}

static uint64_t poll_interval(const rec_exec *x);

/* Build-time samples older than this are not used (reconcile/README.md "Completion": the estimate
 * and the first poll use the build time learned from recent creates). */
#define BUILD_MAX_AGE_MS (7ull * 24 * 3600 * 1000)

/* When to ask first for the image of a create just answered. Without samples for the region:
 * one poll interval after the answer, then every interval (the List budget's half rate). With
 * samples: at the learned build time (the median of the recent ones), and once more a little
 * later if that missed; while the samples still leave a wide interval (lo, hi] for it, first at
 * its three-quarter point and then just after hi, which narrows it run by run at the cost of a
 * quarter of the interval when the first probe misses. A step that awaits an image it did not
 * just create (a WAIT step, one found by name or in the journal) polls at the interval. Called by
 * start_await and when the first sample of a region arrives. */
static void set_first_due(xstep *s)
{
    rec_exec *x = s->x;
    s->due_ms = s->await_since_ms + poll_interval(x);
    s->probe2_ms = 0;
    s->guided = false;
    s->second_probe = false;
    s->lo_carry_ms = 0;
    rec_build_learned b = {0};
    if (s->timed && x->o.journal != NULL)
        rec_journal_learned_build(x->o.journal, s->step->region, prov_now_ms(), BUILD_MAX_AGE_MS,
                                  &b);
    if (s->timed && x->o.journal != NULL && b.n == 0) /* another region's builds are a guess */
        rec_journal_learned_build(x->o.journal, NULL, prov_now_ms(), BUILD_MAX_AGE_MS, &b);
    if (b.n == 0)
        return;
    uint64_t tol = b.hi_ms / 100 > 10 ? b.hi_ms / 100 : 10;
    uint64_t margin = b.hi_ms / 200 > 5 ? b.hi_ms / 200 : 5;
    uint64_t first, second;
    if (b.lo_ms >= b.hi_ms) { /* the samples disagree: builds vary */
        first = b.typical_ms;
        second = b.typical_ms + tol;
    } else if (b.hi_ms - b.lo_ms > tol) {
        first = b.lo_ms + (b.hi_ms - b.lo_ms) * 3 / 4;
        second = b.hi_ms + margin;
    } else {
        first = b.hi_ms;
        second = b.hi_ms + tol;
    }
    s->due_ms = s->await_since_ms + first;
    s->probe2_ms = s->await_since_ms + second;
    s->guided = true;
    /* The lower bound the samples give carries over to this image's sample, a little lowered
     * each time, so that an interval found narrow stays narrow without a bisection every run
     * yet is checked again now and then (builds may get faster). */
    s->lo_carry_ms = b.lo_ms < b.hi_ms && b.lo_ms > tol / 4 ? b.lo_ms - tol / 4 : 0;
}

/* timed: the image was created by a call answered just now, so its wait is a build sample. */
static void start_await(xstep *s, const char *image_id, bool timed)
{
    if (image_id != NULL && s->image_id != image_id)
        (void)prov_set_str(&s->image_id, image_id);
    s->state = REC_STEP_AWAITING;
    s->await_since_ms = now_ms(s->x);
    s->timed = timed;
    s->miss_ms = 0;
    set_first_due(s);
    schedule_poll(s->x);
}

/* ---- mutating calls ---- */

static void on_create(const char *image_id, const prov_error *err, void *ud);
static void start_create(xstep *s);

/* True when img, as a listing shows it, can be the image step s makes or awaits: the step's name,
 * our owner tag, and the instance and system snapshot of the step's desired attributes wherever
 * both sides report them. A create's answer or a poll that names any other image is not ours to
 * act on (reconcile/README.md "Semantics", Ownership). */
static bool image_matches_step(const rec_exec *x, const xstep *s, const prov_image *img)
{
    const char *owner = prov_image_tag(img, REC_OWNER_TAG);
    const prov_image *want = s->step->after;
    bool same_spec =
        want == NULL || ((img->instance_id == NULL || want->instance_id == NULL ||
                          strcmp(img->instance_id, want->instance_id) == 0) &&
                         (img->system_snapshot_id == NULL || want->system_snapshot_id == NULL ||
                          strcmp(img->system_snapshot_id, want->system_snapshot_id) == 0));
    return img->name != NULL && s->step->name != NULL && strcmp(img->name, s->step->name) == 0 &&
           owner != NULL && x->o.owner != NULL && strcmp(owner, x->o.owner) == 0 && same_spec;
}

static void on_lookup(prov_image_list *list, const prov_error *err, void *ud)
{
    xcall *c = ud;
    xstep *s = c->s;
    rec_exec *x = s->x;
    x->inflight--;
    s->renamed_lookup = false;
    const prov_image *mine = NULL;
    for (size_t i = 0; err == NULL && list != NULL && i < list->n; i++)
        if (image_matches_step(x, s, &list->v[i]))
            mine = &list->v[i];
    if (err != NULL)
        step_fail_err(s, err);
    else if (mine == NULL)
        step_fail(s, "ImageNameAlreadyExist: an image with this name exists and is not ours "
                     "(no matching imgrecon/owner tag, or made from another instance or "
                     "snapshot)");
    else if (mine->status == PROV_IMG_AVAILABLE)
        step_done(s, mine->image_id);
    else if (mine->status == PROV_IMG_FAILED)
        step_fail(s, "the existing image with this name failed to create (status 3)");
    else
        start_await(s, mine->image_id, false);
    xcall_free(c);
    pump(x);
}

/* The custom images region holds now, as far as this execution knows: what was observed, plus
 * the creates that went through, minus the deletes that did. 0 when the region was not
 * observed. Called when a create is refused for quota: that count is the region's real quota. */
static unsigned region_count_now(const rec_exec *x, const char *region)
{
    const rec_observed *obs = x->o.observed;
    long n = -1;
    for (size_t i = 0; obs != NULL && i < obs->n && n < 0; i++)
        if (strcmp(obs->regions[i].region, region) == 0)
            n = (long)obs->regions[i].images.n;
    if (n < 0)
        return 0;
    for (size_t i = 0; i < x->n; i++) {
        const xstep *o = &x->xs[i];
        if (o->step->region == NULL || strcmp(o->step->region, region) != 0)
            continue;
        if (o->step->action == REC_ACT_CREATE &&
            (o->state == REC_STEP_AWAITING || o->state == REC_STEP_DONE))
            n++;
        else if (o->step->action == REC_ACT_DELETE && o->state == REC_STEP_DONE)
            n--;
    }
    return n > 0 ? (unsigned)n : 0;
}

/* True when the observation holds image_id in any region, as a custom or an ECS image. */
static bool observed_anywhere(const rec_observed *obs, const char *image_id)
{
    for (size_t r = 0; obs != NULL && r < obs->n; r++) {
        const rec_region_obs *ro = &obs->regions[r];
        for (size_t i = 0; i < ro->images.n; i++)
            if (ro->images.v[i].image_id && strcmp(ro->images.v[i].image_id, image_id) == 0)
                return true;
        for (size_t i = 0; i < ro->ecs.n; i++)
            if (ro->ecs.v[i].image_id && strcmp(ro->ecs.v[i].image_id, image_id) == 0)
                return true;
    }
    return false;
}

/* Why the id a CreateCustomImage answered cannot be the image that create just made (NULL when
 * it can): the image existed before (it was observed) or another step holds it. */
static const char *created_id_conflict(const rec_exec *x, const xstep *s, const char *image_id)
{
    if (observed_anywhere(x->o.observed, image_id))
        return "an image observed before the create";
    for (size_t i = 0; i < x->n; i++) {
        const xstep *o = &x->xs[i];
        if (o != s && ((o->image_id && strcmp(o->image_id, image_id) == 0) ||
                       (o->step->image_id && strcmp(o->step->image_id, image_id) == 0)))
            return "an image another step acts on";
    }
    return NULL;
}

/* Fails a create whose answer named an image it cannot have made (created_id_conflict). */
static void create_refuse(xstep *s, const char *image_id, const char *why)
{
    char msg[512];
    snprintf(msg, sizeof(msg),
             "refused: CreateCustomImage answered image %s, %s; not trusted, no call made on it",
             image_id, why);
    step_fail(s, msg);
}

static void on_create(const char *image_id, const prov_error *err, void *ud)
{
    xcall *c = ud;
    xstep *s = c->s;
    rec_exec *x = s->x;
    x->inflight--;
    hist_record(x, c->api);
    const char *conflict =
        err == NULL && image_id != NULL ? created_id_conflict(x, s, image_id) : NULL;
    if (err != NULL && err->code != NULL && strcmp(err->code, "CustomImageQuotaLimit") == 0 &&
        x->o.journal != NULL) {
        /* The next plan keeps creates behind deletes at this count (rec_journal_learned_quota). */
        rec_journal_entry e = {
            .phase = REC_JOURNAL_RESULT,
            .address = s->step->address,
            .action = (char *)c->api,
            .region = s->step->region,
            .name = s->step->name,
            .client_token = c->token,
            .code = err->code,
            .quota = region_count_now(x, s->step->region),
        };
        if (rec_journal_append_unsynced(x->o.journal, &e) < 0 && !x->stopping) {
            x->stopping = true; /* a lost result: no further mutating call (see journal) */
            uv_timer_stop(&x->poll_timer);
        }
    } else if (!journal_result(x, s, c->api, c->token, err ? NULL : image_id,
                               err ? (err->code ? err->code : "local")
                                   : (conflict ? "local" : NULL))) {
        xcall_free(c);
        pump(x);
        return;
    }
    if (conflict != NULL) {
        create_refuse(s, image_id, conflict);
    } else if (err == NULL && image_id != NULL) {
        start_await(s, image_id, true);
    } else if (err != NULL && err->code && strcmp(err->code, "ImageNameAlreadyExist") == 0 &&
               !x->stopping) {
        /* Someone (maybe we, in a run whose answer was lost) made it: look before failing. */
        const char *names[1] = {s->step->name};
        prov_list_filter f = {.image_names = names, .n_image_names = 1, .share = -1};
        xcall *lc = xcall_new(s, "ListCustomImages", NULL);
        int rc =
            lc ? prov_swas_list_images(x->o.client, s->step->region, &f, on_lookup, lc) : -ENOMEM;
        if (rc < 0) {
            xcall_free(lc);
            step_fail_err(s, err);
        } else {
            x->inflight++;
            s->renamed_lookup = true;
        }
    } else if (err != NULL) {
        step_fail_err(s, err);
    } else {
        step_fail(s, "CreateCustomImage answered without an ImageId");
    }
    xcall_free(c);
    pump(x);
}

/* True when the journal shows a successful delete of image_id (so it is gone for sure). */
static bool journal_deleted(const rec_journal *j, const char *image_id)
{
    size_t n;
    const rec_journal_entry *v = rec_journal_entries(j, &n);
    for (size_t i = 0; i < n; i++)
        if (v[i].phase == REC_JOURNAL_RESULT && v[i].code == NULL && v[i].image_id && v[i].action &&
            (strcmp(v[i].action, "DeleteCustomImage") == 0 ||
             strcmp(v[i].action, "DeleteCustomImages") == 0) &&
            strcmp(v[i].image_id, image_id) == 0)
            return true;
    return false;
}

/* Decides from the journal whether a create must be called, awaited, or re-tokened. Returns
 * true when the step went to awaiting without a call. */
static bool create_from_journal(xstep *s)
{
    rec_exec *x = s->x;
    uint64_t window = x->o.adopt_window_ms ? x->o.adopt_window_ms : DEFAULT_ADOPT_WINDOW_MS;
    for (unsigned guard = 0; guard < 64; guard++) {
        const rec_journal_entry *e = rec_journal_find_created(x->o.journal, s->step->client_token);
        if (e == NULL)
            return false;
        /* The journal's times are wall-clock; one in the future (the clock went back) counts
         * as recent. */
        uint64_t now = prov_now_ms();
        if (e->ts_ms + window > now && !journal_deleted(x->o.journal, e->image_id)) {
            /* Created moments ago by a run that died: the list has not caught up yet. */
            s->from_journal = true;
            start_await(s, e->image_id, false);
            return true;
        }
        /* The image this token made is gone: a new generation makes a new token. */
        rec_step_set_generation(s->step, x->o.owner, s->step->generation + 1);
    }
    return false;
}

/* Marks s running and tells the listener it started, once: a step whose call went stale and
 * was looked at again (look_again) started already. Called where a step's call is queued. */
static void step_running(xstep *s)
{
    s->state = REC_STEP_RUNNING;
    s->running_since_ms = now_ms(s->x);
    if (!s->restarted)
        emit(s->x, REC_EV_STEP_START, s, NULL, 0);
    s->restarted = false;
}

/* Before a single step's call c: writes its intent to the journal (no call goes out without
 * one), then marks the step running and tells the listener. When the journal cannot be written,
 * frees c, fails the step and returns false. Called by start_create and start_simple; img is the
 * image acted on (NULL for a create), borrowed. */
static bool single_begin(xstep *s, xcall *c, const char *img)
{
    rec_exec *x = s->x;
    if (journal(x, REC_JOURNAL_INTENT, s, c->api, c->token, img, NULL) < 0) {
        xcall_free(c);
        step_fail(s, "cannot write the journal; no call made");
        return false;
    }
    step_running(s);
    return true;
}

/* After a single step's call c was handed to the client with result rc: in flight, or (rc < 0,
 * the call never left) a "local" result journaled, c freed and the step failed. Called by
 * start_create and start_simple, with the img given to single_begin. */
static void single_sent(xstep *s, xcall *c, const char *img, int rc)
{
    rec_exec *x = s->x;
    if (rc < 0) {
        (void)journal(x, REC_JOURNAL_RESULT, s, c->api, c->token, img, "local");
        s->unsharing = false;
        xcall_free(c);
        step_fail(s, strerror(-rc));
        return;
    }
    x->inflight++;
}

static void start_create(xstep *s)
{
    rec_exec *x = s->x;
    if (create_from_journal(s))
        return;
    const prov_image *a = s->step->after;
    if (a == NULL) {
        step_fail(s, "internal error: create step without desired attributes");
        return;
    }
    prov_create_req req = {
        .region = s->step->region,
        .name = s->step->name,
        .instance_id = a->instance_id,
        .system_snapshot_id = a->system_snapshot_id,
        .data_snapshot_id = a->data_snapshot_id,
        .description = a->description,
        .resource_group_id = a->resource_group_id,
        .tags = a->tags,
        .n_tags = a->n_tags,
        .client_token = s->step->client_token,
    };
    xcall *c = xcall_new(s, "CreateCustomImage", s->step->client_token);
    if (c == NULL) {
        step_fail(s, "out of memory");
        return;
    }
    if (single_begin(s, c, NULL))
        single_sent(s, c, NULL, prov_swas_create_image(x->o.client, &req, on_create, c));
}

static void start_simple(xstep *s);
static void on_simple(const prov_error *err, void *ud);

/* How long a looked-at delete or tag call may wait in the client for its budget
 * (prov_client_set_max_wait) before the look counts as too old: a call that waited longer fails
 * with -ESTALE, unsent, and look_again sends its step back to be looked at once more, so the
 * look a call acts on is never older than this plus the round trips. */
#define LOOK_MAX_WAIT_MS 2000

/* True when s was looked at (on_look) at most LOOK_MAX_WAIT_MS ago. Whatever came between the
 * look and the call (an inserted unshare waiting for its budget, a batch refused and requeued, a
 * fence or a prompt) makes an older look count for nothing: the step is looked at again. Called
 * where a delete or tag call is about to be queued. */
static bool look_fresh(const xstep *s)
{
    return s->looked && prov_pacer_now_ms(NULL) - s->looked_ms <= LOOK_MAX_WAIT_MS;
}

/* The client failed the call of s, looked at before it was queued, with -ESTALE (it waited
 * longer than LOOK_MAX_WAIT_MS for its budget; nothing was sent): s goes back to pending,
 * unlooked, and pump looks at it again. Returns false, changing nothing, for any other answer.
 * Called by on_simple, on_batch and on_tag_batch after the "local" result is journaled. */
static bool look_again(xstep *s, const prov_error *err)
{
    if (err == NULL || err->code != NULL || err->sys != -ESTALE || s->x->stopping ||
        s->state != REC_STEP_RUNNING)
        return false;
    s->looked = false;
    s->restarted = true;
    s->state = REC_STEP_PENDING;
    return true;
}

/* Add/RemoveCustomImageShareAccount of the step's delta (the plan keeps it at 10 accounts). */
static int start_accounts(rec_exec *x, const rec_step *st, const char *img, xcall *c)
{
    const char *acc[REC_DELTA_MAX];
    size_t n = rec_step_accounts_delta(st, acc, REC_DELTA_MAX);
    if (n == 0 || n > PROV_SHARE_MAX_ACCOUNTS)
        return -EINVAL;
    return prov_swas_share_accounts(x->o.client, st->region, img,
                                    st->action == REC_ACT_ADD_ACCOUNTS, acc, n, NULL, on_simple, c);
}

static void on_simple(const prov_error *err, void *ud)
{
    xcall *c = ud;
    xstep *s = c->s;
    rec_exec *x = s->x;
    x->inflight--;
    hist_record(x, c->api);
    s->unsharing = false;
    const char *img = target_image(s);
    if (!journal_result(x, s, c->api, c->token, img,
                        err ? (err->code ? err->code : "local") : NULL)) {
        /* Failed and stopped: nothing more for this step. */
    } else if (!c->inserted_unshare && look_again(s, err)) {
        /* pump looks at it again */
    } else if (err == NULL && c->inserted_unshare) {
        /* The inserted unshare is done, reported as an unshare step of its own; the delete is
         * retried under a new token (a member of a refused batch rejoins a batch through pump). */
        emit_as(x, REC_EV_STEP_DONE, s, rec_action_name(REC_ACT_UNSHARE), img, 0);
        s->state = REC_STEP_PENDING;
        rec_step_set_generation(s->step, x->o.owner, s->step->generation + 1);
        if (!x->stopping && !s->batched)
            start_simple(s);
    } else if (err == NULL) {
        step_done(s, img);
    } else if (err->cls == PROV_ERR_ORDER && s->step->action == REC_ACT_DELETE && !s->unshared &&
               !x->stopping) {
        /* CustomImageInShare: the world changed since observe; unshare first. */
        s->unshared = true;
        s->unshare_next = true;
        s->state = REC_STEP_PENDING;
        start_simple(s);
    } else {
        step_fail_err(s, err);
    }
    xcall_free(c);
    pump(x);
}

/* The executor's last-line ownership check (reconcile/README.md "Semantics", Ownership), run before
 * every mutating SWAS call on an existing image: the image must have been observed in the
 * step's region with our owner tag, or be one this execution created: its create step is done,
 * which it is only once a listing showed it with the step's name, our owner tag and the
 * instance and snapshot asked for (image_matches_step). The
 * plan builder already guarantees this; the check makes a saved or corrupted plan unable to
 * reach an image that is not ours. */
static bool image_is_ours(const rec_exec *x, const char *region, const char *image_id)
{
    const rec_observed *obs = x->o.observed;
    const rec_region_obs *r = obs != NULL ? rec_observed_find(obs, region) : NULL;
    for (size_t i = 0; r != NULL && i < r->images.n; i++) {
        const prov_image *img = &r->images.v[i];
        if (img->image_id == NULL || strcmp(img->image_id, image_id) != 0)
            continue;
        const char *owner = prov_image_tag(img, REC_OWNER_TAG);
        return owner != NULL && x->o.owner != NULL && strcmp(owner, x->o.owner) == 0;
    }
    for (size_t i = 0; i < x->n; i++) {
        const xstep *c = &x->xs[i];
        if (c->step->action == REC_ACT_CREATE && c->state == REC_STEP_DONE && c->image_id != NULL &&
            strcmp(c->image_id, image_id) == 0 && c->step->region != NULL &&
            strcmp(c->step->region, region) == 0)
            return true;
    }
    return false;
}

/* The executor's check for a takeover TAG step (adopt: true, config previous_owners): the image
 * was observed without an owner tag (adoption) or with a previous owner's (migration), and the
 * step ends with our owner tag. Any other step goes through image_is_ours. */
static bool takeover_is_allowed(const rec_exec *x, const rec_step *st, const char *image_id)
{
    const char *to = prov_image_tag(st->after, REC_OWNER_TAG);
    if (st->action != REC_ACT_TAG || to == NULL || x->o.owner == NULL ||
        strcmp(to, x->o.owner) != 0)
        return false;
    const rec_observed *obs = x->o.observed;
    const rec_region_obs *r = obs != NULL ? rec_observed_find(obs, st->region) : NULL;
    for (size_t i = 0; r != NULL && i < r->images.n; i++) {
        const prov_image *img = &r->images.v[i];
        if (img->image_id == NULL || strcmp(img->image_id, image_id) != 0)
            continue;
        const char *from = prov_image_tag(img, REC_OWNER_TAG);
        if (st->takeover == REC_TAKEOVER_ADOPT)
            return from == NULL;
        for (size_t k = 0; from != NULL && x->o.cfg != NULL && k < x->o.cfg->n_previous_owners; k++)
            if (strcmp(x->o.cfg->previous_owners[k], from) == 0)
                return st->takeover == REC_TAKEOVER_MIGRATE;
        return false;
    }
    return false;
}

static bool step_may_touch(const rec_exec *x, const rec_step *st, const char *image_id)
{
    if (st->takeover != REC_TAKEOVER_NONE)
        return takeover_is_allowed(x, st, image_id);
    return image_is_ours(x, st->region, image_id);
}

/* ---- a look before each delete and each tag change ---- */

/* The owner tag a step's image must still carry when its call goes: none for an adoption, the
 * previous owner it was observed with for a migration, ours for every other step. */
static const char *look_expected_owner(const rec_exec *x, const xstep *s)
{
    if (s->step->takeover == REC_TAKEOVER_ADOPT)
        return NULL;
    const rec_region_obs *r = x->o.observed != NULL && s->step->takeover == REC_TAKEOVER_MIGRATE
                                  ? rec_observed_find(x->o.observed, s->step->region)
                                  : NULL;
    for (size_t i = 0; r != NULL && i < r->images.n; i++)
        if (r->images.v[i].image_id != NULL && strcmp(r->images.v[i].image_id, s->image_id) == 0)
            return prov_image_tag(&r->images.v[i], REC_OWNER_TAG);
    return x->o.owner;
}

/* The answer to start_look's listing. A member the listing shows with an owner tag other than
 * the one it was observed with (look_expected_owner) or ours, or a delete the listing shows
 * protected, fails with no call made: someone changed it since it was observed (another team's
 * owner tag on an image being adopted must never be overwritten). The others (one the listing no
 * longer shows too: its delete will meet NotFound, which counts as done, and a tag call decides for
 * itself) are marked looked and go back to pending, where pump sends their call. */
static void on_look(prov_image_list *list, const prov_error *err, void *ud)
{
    xcall *c = ud;
    rec_exec *x = c->s->x;
    x->inflight--;
    for (size_t i = 0; i < c->n_batch; i++) {
        xstep *s = c->batch[i];
        const prov_image *img = NULL;
        for (size_t k = 0; err == NULL && list != NULL && k < list->n && img == NULL; k++)
            if (list->v[k].image_id && strcmp(list->v[k].image_id, s->image_id) == 0)
                img = &list->v[k];
        const char *owner = img != NULL ? prov_image_tag(img, REC_OWNER_TAG) : NULL;
        const char *want = look_expected_owner(x, s);
        /* Our own owner tag is never a change: a takeover whose call went through but whose
         * answer was lost (retried, gone stale, looked at again) finds the result it asked for. */
        bool ours = owner != NULL && x->o.owner != NULL && strcmp(owner, x->o.owner) == 0;
        bool changed =
            !ours && (want == NULL ? owner != NULL : owner == NULL || strcmp(owner, want) != 0);
        char why[256];
        if (err != NULL) {
            step_fail_err(s, err);
        } else if (img != NULL && changed) {
            snprintf(why, sizeof(why),
                     "refused: since it was observed, the image's " REC_OWNER_TAG
                     " tag became %s%.64s%s; no call made",
                     owner ? "'" : "", owner ? owner : "absent", owner ? "'" : "");
            step_fail(s, why);
        } else if (img != NULL && s->step->action == REC_ACT_DELETE && rec_image_protected(img)) {
            step_fail(s, "refused: since it was observed, the image was protected (" REC_PROTECT_TAG
                         "); no call made");
        } else {
            s->looked = true;
            s->looked_ms = prov_pacer_now_ms(NULL);
            s->state = REC_STEP_PENDING;
        }
    }
    xcall_free(c);
    pump(x);
}

/* Lists the images of steps v[0..n) (deletes, or tag changes; one region, n <= 50, ids set)
 * just before their call: the observation the plan came from may be minutes old (a prompt, a
 * paced queue), a delete cannot be undone, and a tag call on an image another team just took
 * would overwrite or edit its tags. Called by start_batch, start_simple and start_tag_batch;
 * on_look answers. The members wait as running, with no event: their step starts when its call
 * is sent. */
static void start_look(rec_exec *x, xstep **v, size_t n)
{
    const char
        *ids[PROV_TAG_MAX_IDS > PROV_DELETE_BATCH_MAX ? PROV_TAG_MAX_IDS : PROV_DELETE_BATCH_MAX];
    if (n > sizeof(ids) / sizeof(ids[0])) {
        for (size_t i = 0; i < n; i++)
            step_fail(v[i], "internal error: too many images for one look");
        return;
    }
    xcall *c = xcall_new(v[0], "ListCustomImages", NULL);
    if (c != NULL && (c->batch = calloc(n, sizeof(*c->batch))) == NULL) {
        xcall_free(c);
        c = NULL;
    }
    for (size_t i = 0; i < n; i++) {
        ids[i] = v[i]->image_id;
        v[i]->state = REC_STEP_RUNNING;
        v[i]->running_since_ms = now_ms(x);
        if (c != NULL)
            c->batch[c->n_batch++] = v[i];
    }
    prov_list_filter f = {.image_ids = ids, .n_image_ids = n, .share = -1};
    int rc = c != NULL ? prov_swas_list_images(x->o.client, v[0]->step->region, &f, on_look, c)
                       : -ENOMEM;
    if (rc < 0) {
        for (size_t i = 0; i < n; i++)
            step_fail(v[i], strerror(-rc));
        xcall_free(c);
        return;
    }
    x->inflight++;
}

/* Share, unshare, delete (with the inserted unshare), account shares and ECS delete. */
static void start_simple(xstep *s)
{
    rec_exec *x = s->x;
    const rec_step *st = s->step;
    const char *img = target_image(s);
    if (img == NULL) {
        step_fail(s, "no image id to act on");
        return;
    }
    if (!rec_action_is_ecs(st->action) && !step_may_touch(x, st, img)) {
        step_fail(s, "refused: the image was not observed carrying this owner's " REC_OWNER_TAG
                     " tag; no call made");
        return;
    }
    if (s->image_id == NULL)
        (void)prov_set_str(&s->image_id, img);
    if (st->action == REC_ACT_DELETE && !s->unshare_next && !look_fresh(s)) {
        xstep *one[1] = {s};
        start_look(x, one, 1);
        return;
    }
    bool insert_unshare = st->action == REC_ACT_DELETE && s->unshare_next;
    s->unshare_next = false;
    const char *api = insert_unshare ? "ModifyImageShareStatus" : rec_action_api(st->action);
    char token[REC_TOKEN_MAX + 1];
    rec_action act = insert_unshare ? REC_ACT_UNSHARE : st->action;
    rec_client_token(x->o.owner, st->region, act, st->name, st->spec_hash, st->generation, token);
    if (!rec_action_is_ecs(st->action)) {
        /* A token that already succeeded (an earlier cycle shared this image, someone unshared
         * it since) would be answered from the cloud's memory without acting: move on to the
         * first generation not used yet. Bounded; the journal holds a day of results. */
        unsigned gen = st->generation;
        while (rec_journal_token_used(x->o.journal, token) && gen - st->generation < 10000) {
            gen++;
            rec_client_token(x->o.owner, st->region, act, st->name, st->spec_hash, gen, token);
        }
        if (!insert_unshare && gen != st->generation)
            rec_step_set_generation(s->step, x->o.owner, gen);
    }
    xcall *c = xcall_new(s, api, rec_action_is_ecs(st->action) ? NULL : token);
    if (c == NULL) {
        step_fail(s, "out of memory");
        return;
    }
    c->inserted_unshare = insert_unshare;
    s->unsharing = insert_unshare;
    if (!single_begin(s, c, img))
        return;
    int rc;
    if (insert_unshare)
        rc = prov_swas_share_image(x->o.client, st->region, img, false, token, on_simple, c);
    else if (st->action == REC_ACT_SHARE || st->action == REC_ACT_UNSHARE)
        rc = prov_swas_share_image(x->o.client, st->region, img, st->action == REC_ACT_SHARE, token,
                                   on_simple, c);
    else if (st->action == REC_ACT_DELETE)
        rc = prov_swas_delete_image(x->o.client, st->region, img, token, on_simple, c);
    else if (st->action == REC_ACT_ADD_ACCOUNTS || st->action == REC_ACT_REMOVE_ACCOUNTS)
        rc = start_accounts(x, st, img, c);
    else
        rc =
            prov_ecs_delete_image(x->o.client, st->region, img, st->ecs_force, false, on_simple, c);
    single_sent(s, c, img, rc);
}

/* ---- tags, batched ---- */

static void on_tag_batch(const prov_error *err, void *ud)
{
    xcall *c = ud;
    rec_exec *x = c->s->x;
    x->inflight--;
    hist_record(x, c->api);
    for (size_t i = 0; i < c->n_batch; i++) {
        xstep *m = c->batch[i];
        (void)journal(x, REC_JOURNAL_RESULT, m, c->api, NULL, m->image_id,
                      err ? (err->code ? err->code : "local") : NULL);
        if (err == NULL)
            step_done(m, NULL);
        else if (!look_again(m, err))
            step_fail_err(m, err);
    }
    xcall_free(c);
    pump(x);
}

/* A tag delta imgrecon may send: never our owner tag removed or set to another value, never
 * more keys than one call takes. (Cloud keys are never in a delta.) */
static bool tag_delta_safe(const rec_exec *x, const rec_step *st, const prov_tag **tags,
                           size_t n_tags, const char **keys, size_t n_keys)
{
    if (n_tags > PROV_TAG_MAX_TAGS || n_keys > PROV_TAG_MAX_TAGS || n_tags + n_keys == 0)
        return false;
    for (size_t i = 0; i < n_keys; i++)
        if (strcmp(keys[i], REC_OWNER_TAG) == 0)
            return false;
    for (size_t i = 0; i < n_tags; i++)
        if (strcmp(tags[i]->key, REC_OWNER_TAG) == 0 &&
            (x->o.owner == NULL || strcmp(tags[i]->value ? tags[i]->value : "", x->o.owner) != 0))
            return false;
    (void)st;
    return true;
}

static bool deps_ready(const rec_exec *x, const xstep *s, bool *ret_blocked);

/* TagResources / UntagResources for s and every other ready step of the same region with the
 * same delta (rec_step_batch_key), at most 50 images: one call, each member journaled. Every
 * member passes the ownership check on its own; one that fails it fails alone. */
static void start_tag_batch(xstep *s)
{
    rec_exec *x = s->x;
    const rec_step *st = s->step;
    const prov_tag *tags[REC_DELTA_MAX];
    const char *keys[REC_DELTA_MAX];
    size_t n_tags = st->action == REC_ACT_TAG ? rec_step_tags_to_set(st, tags, REC_DELTA_MAX) : 0;
    size_t n_keys =
        st->action == REC_ACT_UNTAG ? rec_step_keys_to_remove(st, keys, REC_DELTA_MAX) : 0;
    if (!tag_delta_safe(x, st, tags, n_tags, keys, n_keys)) {
        step_fail(s, "refused: the tag change would remove or alter the owner tag, or is empty "
                     "or too large; no call made");
        return;
    }
    const char *api = rec_action_api(st->action);
    xcall *c = xcall_new(s, api, NULL);
    const char **ids = calloc(PROV_TAG_MAX_IDS, sizeof(*ids));
    if (c == NULL || ids == NULL ||
        (c->batch = calloc(PROV_TAG_MAX_IDS, sizeof(xstep *))) == NULL) {
        xcall_free(c);
        free(ids);
        step_fail(s, "out of memory");
        return;
    }
    char key[REC_HASH_HEX + 1], other[REC_HASH_HEX + 1];
    rec_step_batch_key(st, key);
    /* First a look at the members (start_look), then, once they are back as looked, the call:
     * a round gathers only members in the state s is in, so a member that joins late gets its
     * own look rather than riding on an older one. */
    bool looking = !look_fresh(s);
    for (size_t i = (size_t)(s - x->xs); i < x->n && c->n_batch < PROV_TAG_MAX_IDS; i++) {
        xstep *m = &x->xs[i];
        bool blocked = false;
        if (m != s && (m->state != REC_STEP_PENDING || m->step->action != st->action ||
                       look_fresh(m) == looking || !deps_ready(x, m, &blocked) || blocked ||
                       (x->o.skip_item != NULL && x->o.skip_item(x->o.ud, m->step->address))))
            continue;
        if (m != s) {
            rec_step_batch_key(m->step, other);
            if (strcmp(key, other) != 0)
                continue;
        }
        const char *img = target_image(m);
        if (img == NULL || !step_may_touch(x, m->step, img)) {
            step_fail(m, img == NULL ? "no image id to act on"
                                     : "refused: the image was not observed carrying this "
                                       "owner's " REC_OWNER_TAG " tag; no call made");
            continue;
        }
        if (m->image_id == NULL)
            (void)prov_set_str(&m->image_id, img);
        if (looking) {
            c->batch[c->n_batch++] = m;
            continue;
        }
        if (journal(x, REC_JOURNAL_INTENT, m, api, NULL, img, NULL) < 0) {
            step_fail(m, "cannot write the journal; no call made");
            continue;
        }
        step_running(m);
        ids[c->n_batch] = m->image_id;
        c->batch[c->n_batch++] = m;
    }
    if (looking) {
        if (c->n_batch > 0)
            start_look(x, c->batch, c->n_batch);
        xcall_free(c);
        free(ids);
        return;
    }
    prov_tag tv[PROV_TAG_MAX_TAGS];
    for (size_t i = 0; i < n_tags; i++)
        tv[i] = *tags[i];
    int rc = -ENOENT;
    if (c->n_batch > 0) {
        c->s = c->batch[0];
        rc = st->action == REC_ACT_TAG
                 ? prov_swas_tag_resources(x->o.client, st->region, ids, c->n_batch, tv, n_tags,
                                           NULL, on_tag_batch, c)
                 : prov_swas_untag_resources(x->o.client, st->region, ids, c->n_batch, keys, n_keys,
                                             NULL, on_tag_batch, c);
    }
    free(ids);
    if (rc < 0) {
        for (size_t i = 0; i < c->n_batch; i++) {
            (void)journal(x, REC_JOURNAL_RESULT, c->batch[i], api, NULL, c->batch[i]->image_id,
                          "local");
            step_fail(c->batch[i], strerror(-rc));
        }
        xcall_free(c);
        return;
    }
    x->inflight++;
}

/* ---- batched deletes (DeleteCustomImages) ---- */

#define BATCH_API "DeleteCustomImages"

static void start_batch(rec_exec *x, xstep **v, size_t n);

/* The id a DeleteCustomImages NotFound names: the batch member whose image id appears in the
 * message. NULL when none or more than one does (then the batch goes out as single deletes). */
static xstep *batch_missing(xcall *c, const prov_error *err)
{
    xstep *found = NULL;
    for (size_t i = 0; err->message != NULL && i < c->n_batch; i++) {
        const char *id = target_image(c->batch[i]);
        if (id != NULL && strstr(err->message, id) != NULL) {
            if (found != NULL)
                return NULL;
            found = c->batch[i];
        }
    }
    return found;
}

/* Puts the members still running back to pending: single deletes when single is set, else a
 * new batch (fewer ids, so a new token). */
static void batch_requeue(xcall *c, bool single)
{
    for (size_t i = 0; i < c->n_batch; i++)
        if (c->batch[i]->state == REC_STEP_RUNNING) {
            c->batch[i]->state = REC_STEP_PENDING;
            c->batch[i]->single |= single;
        }
}

/* The listing of a batch refused with CustomImageInShare: members shown shared to ECS get the
 * unshare inserted (start_simple) and rejoin a batch after it; the others wait for them in
 * pump. When none is shown shared (a share to accounts, or the share went meanwhile), the members
 * go out as single deletes, which handle the refusal one by one. */
static void on_batch_shares(prov_image_list *list, const prov_error *err, void *ud)
{
    xcall *c = ud;
    rec_exec *x = c->s->x;
    x->inflight--;
    size_t shared = 0;
    for (size_t i = 0; err == NULL && list != NULL && i < c->n_batch; i++) {
        xstep *s = c->batch[i];
        for (size_t k = 0; k < list->n; k++)
            if (list->v[k].image_id && strcmp(list->v[k].image_id, target_image(s)) == 0 &&
                list->v[k].in_share) {
                s->unshare_next = true;
                shared++;
            }
    }
    for (size_t i = 0; i < c->n_batch; i++) {
        xstep *s = c->batch[i];
        s->state = REC_STEP_PENDING;
        s->unshared = true;
        s->batched = shared > 0;
        s->single = shared == 0;
        if (s->unshare_next && !x->stopping)
            start_simple(s);
    }
    xcall_free(c);
    pump(x);
}

/* Lists the refused batch's ids to learn which of them are shared. */
static void batch_find_shares(xcall *c, const prov_error *err)
{
    rec_exec *x = c->s->x;
    xcall *lc = xcall_new(c->s, "ListCustomImages", NULL);
    const char **ids = lc ? calloc(c->n_batch, sizeof(*ids)) : NULL;
    int rc = -ENOMEM;
    if (ids != NULL) {
        for (size_t i = 0; i < c->n_batch; i++)
            ids[i] = target_image(c->batch[i]);
        prov_list_filter f = {.image_ids = ids, .n_image_ids = c->n_batch, .share = -1};
        lc->batch = c->batch;
        lc->n_batch = c->n_batch;
        c->batch = NULL;
        c->n_batch = 0;
        rc = prov_swas_list_images(x->o.client, lc->s->step->region, &f, on_batch_shares, lc);
        free(ids);
    }
    if (rc < 0) {
        xstep **v = lc && lc->batch ? lc->batch : c->batch;
        size_t n = lc && lc->batch ? lc->n_batch : c->n_batch;
        for (size_t i = 0; i < n; i++)
            step_fail_err(v[i], err);
        xcall_free(lc);
        return;
    }
    x->inflight++;
}

/* The answer of a DeleteCustomImages call: every member's result is journaled; success is done
 * for all; NotFound naming one id is done for that id and the rest go again as a batch;
 * CustomImageInShare inserts the unshares (once); any other error retries the members as single
 * deletes so that one bad image does not fail the others. */
static void on_batch(const prov_error *err, void *ud)
{
    xcall *c = ud;
    rec_exec *x = c->s->x;
    x->inflight--;
    hist_record(x, c->api);
    const char *code = err ? (err->code ? err->code : "local") : NULL;
    for (size_t i = 0; i < c->n_batch; i++)
        (void)journal_result(x, c->batch[i], c->api, c->token, target_image(c->batch[i]), code);
    bool all_unshared = true;
    for (size_t i = 0; i < c->n_batch; i++)
        all_unshared &= c->batch[i]->unshared;
    xstep *missing = err && err->code && strcmp(err->code, "InvalidImageId.NotFound") == 0
                         ? batch_missing(c, err)
                         : NULL;
    bool stale = false;
    for (size_t i = 0; i < c->n_batch; i++)
        stale |= look_again(c->batch[i], err);
    if (stale) {
        /* pump looks at the members again */
    } else if (err == NULL) {
        for (size_t i = 0; i < c->n_batch; i++)
            if (c->batch[i]->state == REC_STEP_RUNNING)
                step_done(c->batch[i], NULL);
    } else if (x->stopping || err->cls == PROV_ERR_THROTTLED || err->cls == PROV_ERR_TRANSIENT) {
        for (size_t i = 0; i < c->n_batch; i++)
            if (c->batch[i]->state == REC_STEP_RUNNING)
                step_fail_err(c->batch[i], err);
    } else if (missing != NULL) {
        if (missing->state == REC_STEP_RUNNING)
            step_done(missing, NULL);
        batch_requeue(c, false);
    } else if (err->cls == PROV_ERR_ORDER && !all_unshared) {
        batch_find_shares(c, err);
    } else {
        batch_requeue(c, true);
    }
    xcall_free(c);
    pump(x);
}

/* The batch's ClientToken: derived from its sorted ids and its members' generations, so a rerun
 * after a crash that deletes the same images reuses it, and a retry after an unshare (new
 * generations) or with other members does not. Skips tokens that already succeeded. */
static int batch_token(rec_exec *x, const char *region, const char **ids, size_t n, unsigned gen,
                       char token[REC_TOKEN_MAX + 1])
{
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(ids[i]) + 1;
    char *joined = calloc(1, len);
    if (joined == NULL)
        return -ENOMEM;
    const char *sorted[PROV_DELETE_BATCH_MAX];
    memcpy(sorted, ids, n * sizeof(*ids));
    for (size_t i = 1; i < n; i++)
        for (size_t k = i; k > 0 && strcmp(sorted[k - 1], sorted[k]) > 0; k--) {
            const char *t = sorted[k];
            sorted[k] = sorted[k - 1];
            sorted[k - 1] = t;
        }
    for (size_t i = 0; i < n; i++) {
        strcat(joined, sorted[i]);
        strcat(joined, ",");
    }
    unsigned g = gen;
    do
        rec_client_token(x->o.owner, region, REC_ACT_DELETE, joined, BATCH_API, g++, token);
    while (rec_journal_token_used(x->o.journal, token) && g - gen < 10000);
    free(joined);
    return 0;
}

/* Sends the deletes v[0..n) of one region (n <= 15, all pending and ready) as one
 * DeleteCustomImages. Every member passes the owner check on its own id first; a member that
 * fails it fails and is left out. What remains as a batch of one goes as DeleteCustomImage. */
static void start_batch(rec_exec *x, xstep **v, size_t n)
{
    const char *ids[PROV_DELETE_BATCH_MAX];
    xstep *ok[PROV_DELETE_BATCH_MAX];
    size_t k = 0;
    unsigned gen = 0;
    for (size_t i = 0; i < n && i < PROV_DELETE_BATCH_MAX; i++) {
        const char *img = target_image(v[i]);
        if (img == NULL)
            step_fail(v[i], "no image id to act on");
        else if (!image_is_ours(x, v[i]->step->region, img))
            step_fail(v[i],
                      "refused: the image was not observed carrying this owner's " REC_OWNER_TAG
                      " tag; no call made");
        else {
            if (v[i]->image_id == NULL)
                (void)prov_set_str(&v[i]->image_id, img);
            ids[k] = v[i]->image_id ? v[i]->image_id : img;
            gen += v[i]->step->generation;
            ok[k++] = v[i];
        }
    }
    bool looked = true;
    for (size_t i = 0; i < k; i++)
        looked &= look_fresh(ok[i]);
    if (k > 1 && !looked) {
        start_look(x, ok, k);
        return;
    }
    if (k == 1)
        start_simple(ok[0]);
    if (k <= 1)
        return;
    char token[REC_TOKEN_MAX + 1];
    xcall *c = batch_token(x, ok[0]->step->region, ids, k, gen, token) == 0
                   ? xcall_new(ok[0], BATCH_API, token)
                   : NULL;
    if (c != NULL && (c->batch = calloc(k, sizeof(*c->batch))) == NULL) {
        xcall_free(c);
        c = NULL;
    }
    for (size_t i = 0; i < k; i++) {
        if (c == NULL) {
            step_fail(ok[i], "out of memory");
        } else if (journal(x, REC_JOURNAL_INTENT, ok[i], BATCH_API, token, ids[i], NULL) < 0) {
            step_fail(ok[i], "cannot write the journal; no call made");
        } else {
            step_running(ok[i]);
            c->batch[c->n_batch++] = ok[i];
        }
    }
    if (c == NULL)
        return;
    /* Only the members whose intent was written go out. */
    const char *sent[PROV_DELETE_BATCH_MAX];
    for (size_t i = 0; i < c->n_batch; i++)
        sent[i] = c->batch[i]->image_id;
    int rc = c->n_batch == 0 ? -EIO
                             : prov_swas_delete_images(x->o.client, c->batch[0]->step->region, sent,
                                                       c->n_batch, token, on_batch, c);
    if (rc < 0) {
        for (size_t i = 0; i < c->n_batch; i++) {
            (void)journal(x, REC_JOURNAL_RESULT, c->batch[i], BATCH_API, token, sent[i], "local");
            step_fail(c->batch[i], strerror(-rc));
        }
        xcall_free(c);
        return;
    }
    x->inflight++;
}

/* ---- polling for creations ---- */

/* A poll goes when its time is at most this near (on_poll_timer): steps answered a millisecond
 * apart share it. A step due that much after the poll was sent was probed by it too; were it not,
 * it would keep its first probe and the next poll would wait a List slot for it. */
#define POLL_EARLY_MS 1

/* A poll sent at sent_ms did not see s available: the next one for s goes at its second probe
 * when one is left (at once when its time passed while the first was answered, e.g. behind the
 * answers of other creates), else an interval later. A poll that asked before s was due changes
 * nothing but the sample's lower bound. */
static void poll_missed(xstep *s, uint64_t sent_ms, uint64_t now)
{
    s->miss_ms = sent_ms;
    if (s->due_ms > sent_ms + POLL_EARLY_MS)
        return;
    s->second_probe = s->probe2_ms != 0;
    s->due_ms = !s->second_probe     ? now + poll_interval(s->x)
                : s->probe2_ms > now ? s->probe2_ms
                                     : now;
    s->probe2_ms = 0;
}

/* Journals the build-time sample of a create whose image a poll sent at sent_ms saw available.
 * A hint for later runs, not a safety record: a failed write is ignored. Returns true when a
 * sample was written. */
static bool record_build(xstep *s, uint64_t sent_ms)
{
    rec_exec *x = s->x;
    if (!s->timed || x->o.journal == NULL || sent_ms <= s->await_since_ms)
        return false;
    uint64_t build = sent_ms - s->await_since_ms;
    uint64_t lo = s->miss_ms > s->await_since_ms ? s->miss_ms - s->await_since_ms : 0;
    if (s->lo_carry_ms > lo && s->lo_carry_ms < build)
        lo = s->lo_carry_ms;
    rec_journal_entry e = {
        .phase = REC_JOURNAL_RESULT,
        .address = s->step->address,
        .action = REC_JOURNAL_AVAILABLE,
        .region = s->step->region,
        .name = s->step->name,
        .image_id = s->image_id,
        .build_ms = build,
        .build_lo_ms = lo,
    };
    return rec_journal_append_unsynced(x->o.journal, &e) == 0;
}

/* Fails an awaited step whose image a poll shows as another image than the one awaited
 * (image_matches_step): its name, owner or origin differ. */
static void poll_refuse(xstep *s, const prov_image *img)
{
    const char *owner = prov_image_tag(img, REC_OWNER_TAG);
    char msg[512];
    snprintf(msg, sizeof(msg),
             "refused: ListCustomImages shows image %s as '%s' owned by '%s' (instance %s), not "
             "the image this step awaits; no call made on it",
             s->image_id, img->name ? img->name : "", owner ? owner : "(none)",
             img->instance_id ? img->instance_id : "(not reported)");
    step_fail(s, msg);
}

static void on_poll(prov_image_list *list, const prov_error *err, void *ud)
{
    xcall *c = ud;
    rec_exec *x = c->s ? c->s->x : NULL;
    x->inflight--;
    x->poll_inflight = false;
    x->last_poll_ms = now_ms(x);
    uint64_t now = x->last_poll_ms;
    uint64_t unlisted = x->o.unlisted_timeout_ms ? x->o.unlisted_timeout_ms : DEFAULT_UNLISTED_MS;
    uint64_t maxwait = x->o.create_timeout_ms ? x->o.create_timeout_ms : DEFAULT_CREATE_TIMEOUT_MS;
    bool learned = false;
    if (err == NULL) {
        for (size_t i = 0; i < x->n; i++) {
            xstep *s = &x->xs[i];
            if (s->state != REC_STEP_AWAITING || strcmp(s->step->region, c->poll_region) != 0)
                continue;
            bool asked = false;
            for (size_t k = 0; k < c->n_poll_ids && !asked; k++)
                asked = strcmp(c->poll_ids[k], s->image_id) == 0;
            if (!asked)
                continue;
            const prov_image *img = NULL;
            for (size_t k = 0; list && k < list->n && img == NULL; k++)
                if (list->v[k].image_id && strcmp(list->v[k].image_id, s->image_id) == 0)
                    img = &list->v[k];
            if (img == NULL) {
                poll_missed(s, c->sent_ms, now);
                if (now - s->await_since_ms > unlisted) {
                    if (s->from_journal && s->step->action == REC_ACT_CREATE) {
                        /* The journaled image never showed up: create it under a new token. */
                        s->from_journal = false;
                        rec_step_set_generation(s->step, x->o.owner, s->step->generation + 1);
                        free(s->image_id);
                        s->image_id = NULL;
                        s->state = REC_STEP_PENDING;
                    } else {
                        step_fail(s, "the created image never appeared in ListCustomImages");
                    }
                }
                continue;
            }
            if (s->listed_since_ms == 0)
                s->listed_since_ms = now;
            if (img->status == PROV_IMG_AVAILABLE && !image_matches_step(x, s, img)) {
                poll_refuse(s, img);
                continue;
            }
            if (img->status == PROV_IMG_AVAILABLE) {
                learned |= record_build(s, c->sent_ms);
                step_done(s, NULL);
                continue;
            }
            poll_missed(s, c->sent_ms, now);
            if (img->status == PROV_IMG_FAILED)
                step_fail(s, "image creation failed (status 3)");
            else if (img->status == PROV_IMG_UNAVAILABLE)
                step_fail(s, "the image is unavailable (status 2)");
            else if (now - s->listed_since_ms > maxwait)
                step_fail(s, "timed out waiting for the image to become available");
        }
    }
    /* The region's new samples also serve the creates already waiting: those without a sample
     * (polled at the interval until now), and the guided ones whose first probe is still to come
     * (a poll for other images may have asked already), which now probe where the fresher
     * samples say: a run's second window of creates learns from its first. */
    for (size_t i = 0; learned && i < x->n; i++) {
        xstep *s = &x->xs[i];
        if (s->state == REC_STEP_AWAITING && s->timed &&
            (!s->guided || (s->probe2_ms != 0 && s->due_ms > now)) &&
            strcmp(s->step->region, c->poll_region) == 0) {
            set_first_due(s);
            if (s->due_ms < now)
                s->due_ms = now;
        }
    }
    for (size_t i = 0; err != NULL && i < x->n; i++)
        if (x->xs[i].state == REC_STEP_AWAITING && x->xs[i].due_ms <= c->sent_ms &&
            strcmp(x->xs[i].step->region, c->poll_region) == 0)
            x->xs[i].due_ms = now + poll_interval(x);
    /* A failed poll is retried after the next interval (the client already retried transient
     * errors); after a few in a row the awaited steps of that region fail rather than wait
     * forever. */
    if (err != NULL && ++x->poll_failures >= 5) {
        for (size_t i = 0; i < x->n; i++)
            if (x->xs[i].state == REC_STEP_AWAITING &&
                strcmp(x->xs[i].step->region, c->poll_region) == 0)
                step_fail_err(&x->xs[i], err);
        x->poll_failures = 0;
    } else if (err == NULL) {
        x->poll_failures = 0;
    }
    xcall_free(c);
    pump(x);
}

/* The spacing of polls: two List call slots of the configured rate, so that awaiting images
 * uses at most half of the List budget and the other half stays free for whoever shares it (a
 * `plan` run by hand, the daemon's next observe, another region's listing). With a rate of a
 * single call per window, every slot. */
static uint64_t poll_interval(const rec_exec *x)
{
    spec_rate r = {10, 60000};
    if (x->o.cfg != NULL)
        r = spec_config_rate_for(x->o.cfg, "ListCustomImages");
    if (r.calls == 0)
        r.calls = 1;
    uint64_t iv = r.window_ms / r.calls * (r.calls >= 2 ? 2 : 1);
    return iv > 0 ? iv : 1;
}

/* One List slot of the configured rate: the least spacing of two polls. */
static uint64_t poll_slot(const rec_exec *x)
{
    spec_rate r = {10, 60000};
    if (x->o.cfg != NULL)
        r = spec_config_rate_for(x->o.cfg, "ListCustomImages");
    uint64_t slot = r.calls ? r.window_ms / r.calls : r.window_ms;
    return slot > 0 ? slot : 1;
}

/* The awaited step due first (ties: round-robin from poll_rr, so regions take turns). */
static xstep *earliest_due(rec_exec *x)
{
    xstep *first = NULL;
    for (size_t k = 0; k < x->n; k++) {
        xstep *s = &x->xs[(x->poll_rr + k) % x->n];
        if (s->state == REC_STEP_AWAITING && s->image_id != NULL &&
            (first == NULL || s->due_ms < first->due_ms))
            first = s;
    }
    return first;
}

/* When to poll for e's region: at e's due time, moved later to cover the region's other images
 * due within a short while (creates answered a few ms apart share one poll), and never sooner
 * than a slot after the last poll (an interval for unguided polls: half the List budget). A
 * second probe goes at its time: it is one more List call per batch of creates at most, and a
 * slot's wait (a tenth of the window) would cost more than the whole learned interval. */
static uint64_t poll_at(const rec_exec *x, const xstep *e)
{
    uint64_t iv = poll_interval(x), span = iv / 2;
    if (e->guided && e->due_ms > e->await_since_ms && (e->due_ms - e->await_since_ms) / 20 < span)
        span = (e->due_ms - e->await_since_ms) / 20;
    uint64_t at = e->due_ms;
    for (size_t i = 0; i < x->n; i++) {
        const xstep *s = &x->xs[i];
        if (s->state == REC_STEP_AWAITING && s->image_id != NULL && s->due_ms > at &&
            s->due_ms <= e->due_ms + span && strcmp(s->step->region, e->step->region) == 0)
            at = s->due_ms;
    }
    uint64_t gap = e->second_probe ? 0 : e->guided ? poll_slot(x) : iv;
    if (x->last_poll_ms != 0 && x->last_poll_ms + gap > at)
        at = x->last_poll_ms + gap;
    return at;
}

static void do_poll(rec_exec *x)
{
    if (x->poll_inflight || x->stopping)
        return;
    /* The region of the image due first, and up to 100 of its awaited ids. */
    xstep *first = earliest_due(x);
    if (first == NULL)
        return;
    xcall *c = xcall_new(first, "ListCustomImages", NULL);
    if (c == NULL)
        return;
    c->poll_region = strdup(first->step->region);
    c->poll_ids = calloc(POLL_BATCH, sizeof(*c->poll_ids));
    if (c->poll_region == NULL || c->poll_ids == NULL) {
        xcall_free(c);
        return;
    }
    for (size_t i = 0; i < x->n && c->n_poll_ids < POLL_BATCH; i++) {
        xstep *s = &x->xs[i];
        if (s->state != REC_STEP_AWAITING || s->image_id == NULL ||
            strcmp(s->step->region, c->poll_region) != 0)
            continue;
        bool dup = false;
        for (size_t k = 0; k < c->n_poll_ids && !dup; k++)
            dup = strcmp(c->poll_ids[k], s->image_id) == 0;
        if (dup)
            continue;
        if ((c->poll_ids[c->n_poll_ids] = strdup(s->image_id)) == NULL)
            break;
        c->n_poll_ids++;
    }
    x->poll_rr = (size_t)(first - x->xs) + 1;
    c->sent_ms = now_ms(x);
    prov_list_filter f = {
        .image_ids = (const char *const *)c->poll_ids, .n_image_ids = c->n_poll_ids, .share = -1};
    int rc = prov_swas_list_images(x->o.client, c->poll_region, &f, on_poll, c);
    if (rc < 0) {
        /* Could not even queue the poll: try again a slot later, and give up on the awaited
         * steps after a few failures rather than wait forever. */
        if (++x->poll_failures >= 5) {
            for (size_t i = 0; i < x->n; i++)
                if (x->xs[i].state == REC_STEP_AWAITING)
                    step_fail(&x->xs[i], "cannot poll ListCustomImages");
            x->poll_failures = 0;
        }
        xcall_free(c);
        x->last_poll_ms = now_ms(x);
        schedule_poll(x);
        return;
    }
    x->inflight++;
    x->poll_inflight = true;
}

static void on_poll_timer(uv_timer_t *t)
{
    rec_exec *x = t->data;
    /* The image the timer was armed for may be done meanwhile: poll only when one is due. */
    const xstep *e = earliest_due(x);
    if (e != NULL && poll_at(x, e) > now_ms(x) + POLL_EARLY_MS)
        schedule_poll(x);
    else
        do_poll(x);
    maybe_finish(x);
}

/* Arms the poll timer while creations are awaited: one poll per List slot, at most one in
 * flight, and later when the shared List window is spent (another process, or observe) so a
 * poll never queues behind the pacer. */
static void schedule_poll(rec_exec *x)
{
    if (x->poll_inflight || x->stopping || x->finishing)
        return;
    bool awaiting = false;
    for (size_t i = 0; i < x->n && !awaiting; i++)
        awaiting = x->xs[i].state == REC_STEP_AWAITING;
    if (!awaiting)
        return;
    const xstep *e = earliest_due(x);
    if (e == NULL)
        return;
    uint64_t iv = poll_interval(x), now = now_ms(x), at = poll_at(x, e);
    uint64_t delay = at > now ? at - now : 0;
    if (x->o.pacer != NULL && x->o.access_key_id != NULL && x->o.cfg != NULL) {
        spec_rate r = spec_config_rate_for(x->o.cfg, "ListCustomImages");
        unsigned left = 1;
        if (prov_pacer_budget(x->o.pacer, x->o.access_key_id, "swas", "ListCustomImages", r.calls,
                              r.window_ms, prov_pacer_now_ms(x->o.pacer), &left) == 0 &&
            left == 0 && delay < iv)
            delay = iv;
    }
    /* An armed timer stays unless this poll is due sooner. */
    if (uv_is_active((uv_handle_t *)&x->poll_timer) && x->poll_at_ms <= now + delay)
        return;
    x->poll_at_ms = now + delay;
    (void)uv_timer_start(&x->poll_timer, on_poll_timer, delay, 0);
}

/* ---- scheduling ---- */

/* Whether s's dependencies are all done (ready), one failed or was skipped (blocked), or all are
 * done or have their call in flight (soon). */
static void deps_state(const rec_exec *x, const xstep *s, bool *ready, bool *blocked, bool *soon)
{
    *ready = true;
    *blocked = false;
    *soon = true;
    for (size_t k = 0; k < s->step->n_depends; k++) {
        unsigned id = s->step->depends_on[k];
        if (id == 0 || id > x->n)
            continue;
        rec_step_state ds = x->xs[id - 1].state;
        if (ds == REC_STEP_FAILED || ds == REC_STEP_SKIPPED)
            *blocked = true;
        else if (ds != REC_STEP_DONE)
            *ready = false;
        if (ds != REC_STEP_DONE && ds != REC_STEP_RUNNING)
            *soon = false;
    }
}

/* True when every dependency of s is done; *ret_blocked when one failed or was skipped. */
static bool deps_ready(const rec_exec *x, const xstep *s, bool *ret_blocked)
{
    bool ready, blocked, soon;
    deps_state(x, s, &ready, &blocked, &soon);
    *ret_blocked = blocked;
    return ready;
}

/* True for a SWAS delete that goes out in a batch (not an inserted unshare, not a fallback). */
static bool batchable(const xstep *s)
{
    return s->step->action == REC_ACT_DELETE && !s->single && !s->unshare_next;
}

/* Groups the ready batchable deletes of each region into DeleteCustomImages calls of up to 15
 * ids. A region's deletes wait while another of its deletes is about to be ready (its
 * dependencies, e.g. an unshare, are in flight, or its own inserted unshare is) and the batch is
 * not full: the answers come within a round trip and the deletes then share one call. */
static void start_batches(rec_exec *x)
{
    for (size_t i = 0; i < x->n && !x->stopping; i++) {
        xstep *first = &x->xs[i];
        bool ready, blocked, soon;
        if (first->state != REC_STEP_PENDING || !batchable(first))
            continue;
        deps_state(x, first, &ready, &blocked, &soon);
        if (!ready || blocked)
            continue;
        xstep *v[PROV_DELETE_BATCH_MAX];
        size_t n = 0;
        bool wait = false;
        for (size_t k = 0; k < x->n; k++) {
            xstep *s = &x->xs[k];
            if (s->step->action != REC_ACT_DELETE || strcmp(s->step->region, first->step->region))
                continue;
            if (s->state == REC_STEP_RUNNING && s->unsharing && s->batched) {
                wait = true;
                continue;
            }
            if (s->state != REC_STEP_PENDING || !batchable(s))
                continue;
            deps_state(x, s, &ready, &blocked, &soon);
            if (ready && !blocked && n < PROV_DELETE_BATCH_MAX)
                v[n++] = s;
            else if (!blocked && soon)
                wait = true;
        }
        if (n < PROV_DELETE_BATCH_MAX && wait)
            continue;
        start_batch(x, v, n);
    }
}

/* Starts every step whose dependencies are done; skips those whose dependencies failed. Ready
 * SWAS deletes are left to start_batches. */
static void pump(rec_exec *x)
{
    if (x->finishing)
        return;
    for (size_t i = 0; i < x->n; i++) {
        xstep *s = &x->xs[i];
        if (s->state != REC_STEP_PENDING)
            continue;
        bool ready, blocked, soon;
        deps_state(x, s, &ready, &blocked, &soon);
        if (blocked) {
            step_skip(s);
            continue;
        }
        if (!ready || x->stopping)
            continue;
        if (x->o.skip_item != NULL && x->o.skip_item(x->o.ud, s->step->address)) {
            step_skip(s);
            continue;
        }
        if (x->o.may_mutate != NULL && !x->o.may_mutate(x->o.ud)) {
            step_skip(s); /* HA fencing: not the leader any more; the next leader observes anew */
            continue;
        }
        switch (s->step->action) {
        case REC_ACT_CREATE:
            if (s->step->over_quota)
                step_fail(s, "not sent: the region's custom image quota is full even after the "
                             "planned deletes (see the plan's warning)");
            else
                start_create(s);
            break;
        case REC_ACT_TAG:
        case REC_ACT_UNTAG:
            start_tag_batch(s);
            break;
        case REC_ACT_DELETE:
            if (!batchable(s))
                start_simple(s);
            break;
        case REC_ACT_WAIT:
            if (s->step->image_id == NULL)
                step_fail(s, "internal error: wait step without an image id");
            else
                start_await(s, s->step->image_id, false);
            break;
        default:
            start_simple(s);
            break;
        }
    }
    start_batches(x);
    schedule_poll(x);
    maybe_finish(x);
}

/* Notes the wait under way for the waiting events: its kind and when it began, which is when
 * the oldest call or image it is about began to wait, not when a tick first saw it. */
static void wait_note(rec_exec *x, rec_wait_for w, uint64_t since_ms)
{
    x->wait_for = w;
    x->wait_since_ms = since_ms;
}

/* The awaiting step that has waited longest (its image is the one named in the event). */
static const xstep *oldest_awaiting(const rec_exec *x, size_t *ret_n)
{
    const xstep *oldest = NULL;
    size_t n = 0;
    for (size_t i = 0; i < x->n; i++) {
        const xstep *s = &x->xs[i];
        if (s->state != REC_STEP_AWAITING)
            continue;
        n++;
        if (oldest == NULL || s->await_since_ms < oldest->await_since_ms)
            oldest = s;
    }
    *ret_n = n;
    return oldest;
}

/* Once a second while the run has an event consumer: what the run is waiting for (the pacer
 * queues calls inside the client; our own recent calls tell when the next slot of the busiest
 * action frees), or which images it waits to become available. */
static void on_tick(uv_timer_t *t)
{
    rec_exec *x = t->data;
    const char *busiest = NULL;
    size_t most = 0;
    uint64_t queued_since = 0; /* the busiest action's oldest call still running */
    for (size_t i = 0; i < x->n; i++) {
        if (x->xs[i].state != REC_STEP_RUNNING)
            continue;
        const char *api = rec_action_api(x->xs[i].step->action);
        size_t q = 0;
        uint64_t since = x->xs[i].running_since_ms;
        for (size_t k = 0; api && k < x->n; k++)
            if (x->xs[k].state == REC_STEP_RUNNING &&
                x->xs[k].step->action == x->xs[i].step->action) {
                q++;
                if (x->xs[k].running_since_ms < since)
                    since = x->xs[k].running_since_ms;
            }
        if (api && q > most) {
            most = q;
            busiest = api;
            queued_since = since;
        }
    }
    size_t awaiting;
    const xstep *oldest = oldest_awaiting(x, &awaiting);
    char text[160];
    uint64_t next = busiest ? hist_next_ms(x, busiest) : 0;
    if (busiest != NULL && next > 0) {
        /* The pacer has held the oldest call since it was handed to the client. */
        wait_note(x, REC_WAIT_RATE_LIMIT, queued_since);
        snprintf(text, sizeof(text), "next %s call", busiest);
        emit(x, REC_EV_WAITING, NULL, text, next);
    } else if (busiest == NULL && oldest != NULL) {
        wait_note(x, REC_WAIT_IMAGE_BUILD, oldest->await_since_ms);
        uint64_t iv = poll_interval(x), now = now_ms(x);
        next = x->last_poll_ms != 0 && x->last_poll_ms + iv > now ? x->last_poll_ms + iv - now : 0;
        snprintf(text, sizeof(text), "%zu image%s becoming available; next ListCustomImages call",
                 awaiting, awaiting == 1 ? "" : "s");
        emit(x, REC_EV_WAITING, oldest, text, next ? next : 1);
    } else {
        wait_note(x, REC_WAIT_NONE, now_ms(x));
    }
}

/* Frees an executor whose start failed half way (no done callback). */
static void free_on_close(uv_handle_t *h)
{
    rec_exec *x = h->data;
    free(x->xs);
    free(x);
}

int rec_exec_start(uv_loop_t *loop, rec_plan *plan, const rec_exec_opts *opts,
                   rec_exec_done_cb done, void *ud, rec_exec **ret)
{
    if (loop == NULL || plan == NULL || opts == NULL || opts->client == NULL || done == NULL)
        return -EINVAL;
    rec_exec *x = calloc(1, sizeof(*x));
    if (x == NULL)
        return -ENOMEM;
    x->loop = loop;
    x->plan = plan;
    x->o = *opts;
    x->done = done;
    x->ud = ud;
    x->n = plan->n_steps;
    x->xs = calloc(x->n ? x->n : 1, sizeof(*x->xs));
    if (x->xs == NULL) {
        free(x);
        return -ENOMEM;
    }
    for (size_t i = 0; i < x->n; i++) {
        x->xs[i].x = x;
        x->xs[i].step = &plan->steps[i];
    }
    if (uv_timer_init(loop, &x->poll_timer) < 0) {
        free(x->xs);
        free(x);
        return -ENOMEM;
    }
    x->poll_timer.data = x;
    x->n_handles = 1;
    if (uv_timer_init(loop, &x->tick_timer) < 0) {
        /* Close the first timer; its close callback frees x without calling done. */
        x->finishing = true;
        x->done = NULL;
        uv_close((uv_handle_t *)&x->poll_timer, free_on_close);
        return -ENOMEM;
    }
    x->tick_timer.data = x;
    x->n_handles = 2;
    if (x->o.on_event != NULL) {
        (void)uv_timer_start(&x->tick_timer, on_tick, PROGRESS_TICK_MS, PROGRESS_TICK_MS);
        uv_unref((uv_handle_t *)&x->tick_timer);
    }
    if (x->o.journal != NULL)
        prov_client_set_before_send(x->o.client, sync_journal, x);
    set_look_max_wait(x, LOOK_MAX_WAIT_MS);
    if (ret != NULL)
        *ret = x;
    pump(x);
    return 0;
}

void rec_exec_stop(rec_exec *x)
{
    if (x == NULL || x->stopping)
        return;
    x->stopping = true;
    uv_timer_stop(&x->poll_timer);
    maybe_finish(x);
}
