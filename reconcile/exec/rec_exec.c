/* The paced executor (see rec_exec.h). One object per apply/cycle; all work happens in client
 * callbacks and one poll timer on the caller's loop. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prov_swas.h"
#include "rec_exec.h"

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
    char *image_id;      /* the image acted on or created */
    char *error;         /* failure text */
    bool unshared;       /* delete: the CustomImageInShare unshare was inserted already */
    bool unshare_next;   /* delete: the next call is the inserted unshare */
    bool from_journal;   /* awaiting an image a previous run created (list lag) */
    bool renamed_lookup; /* create: ImageNameAlreadyExist re-observe under way */
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
} xcall;

static void pump(rec_exec *x);
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
 * the daemon's log). Step events carry the image the step acts on when it is known. */
static void emit(rec_exec *x, rec_event_kind kind, const xstep *s, const char *text,
                 uint64_t wait_ms)
{
    if (x->o.on_event == NULL)
        return;
    rec_event ev = {
        .kind = kind,
        .address = s ? s->step->address : NULL,
        .action = s ? rec_action_name(s->step->action) : NULL,
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

static int set_str(char **dst, const char *src)
{
    char *c = src ? strdup(src) : NULL;
    if (src != NULL && c == NULL)
        return -ENOMEM;
    free(*dst);
    *dst = c;
    return 0;
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
    return rec_journal_append(x->o.journal, &e);
}

static void step_done(xstep *s, const char *image_id)
{
    rec_exec *x = s->x;
    if (image_id != NULL && s->image_id != image_id)
        (void)set_str(&s->image_id, image_id);
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

static void step_skip(xstep *s)
{
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

static void start_await(xstep *s, const char *image_id)
{
    if (image_id != NULL && s->image_id != image_id)
        (void)set_str(&s->image_id, image_id);
    s->state = REC_STEP_AWAITING;
    s->await_since_ms = now_ms(s->x);
    schedule_poll(s->x);
}

/* ---- mutating calls ---- */

static void on_create(const char *image_id, const prov_error *err, void *ud);
static void start_create(xstep *s);

static void on_lookup(prov_image_list *list, const prov_error *err, void *ud)
{
    xcall *c = ud;
    xstep *s = c->s;
    rec_exec *x = s->x;
    x->inflight--;
    s->renamed_lookup = false;
    const prov_image *mine = NULL;
    for (size_t i = 0; err == NULL && list != NULL && i < list->n; i++) {
        const prov_image *img = &list->v[i];
        const char *owner = prov_image_tag(img, REC_OWNER_TAG);
        const prov_image *want = s->step->after;
        bool same_spec =
            want == NULL || ((img->instance_id == NULL || want->instance_id == NULL ||
                              strcmp(img->instance_id, want->instance_id) == 0) &&
                             (img->system_snapshot_id == NULL || want->system_snapshot_id == NULL ||
                              strcmp(img->system_snapshot_id, want->system_snapshot_id) == 0));
        if (img->name && strcmp(img->name, s->step->name) == 0 && owner && x->o.owner &&
            strcmp(owner, x->o.owner) == 0 && same_spec)
            mine = img;
    }
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
        start_await(s, mine->image_id);
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

static void on_create(const char *image_id, const prov_error *err, void *ud)
{
    xcall *c = ud;
    xstep *s = c->s;
    rec_exec *x = s->x;
    x->inflight--;
    hist_record(x, c->api);
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
        if (rec_journal_append(x->o.journal, &e) < 0 && !x->stopping) {
            x->stopping = true; /* a lost result: no further mutating call (see journal) */
            uv_timer_stop(&x->poll_timer);
        }
    } else if (!journal_result(x, s, c->api, c->token, err ? NULL : image_id,
                               err ? (err->code ? err->code : "local") : NULL)) {
        xcall_free(c);
        pump(x);
        return;
    }
    if (err == NULL && image_id != NULL) {
        start_await(s, image_id);
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
            strcmp(v[i].action, "DeleteCustomImage") == 0 && strcmp(v[i].image_id, image_id) == 0)
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
            start_await(s, e->image_id);
            return true;
        }
        /* The image this token made is gone: a new generation makes a new token. */
        rec_step_set_generation(s->step, x->o.owner, s->step->generation + 1);
    }
    return false;
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
    int rc = journal(x, REC_JOURNAL_INTENT, s, c->api, c->token, NULL, NULL);
    if (rc < 0) {
        xcall_free(c);
        step_fail(s, "cannot write the journal; no call made");
        return;
    }
    s->state = REC_STEP_RUNNING;
    s->running_since_ms = now_ms(x);
    emit(x, REC_EV_STEP_START, s, NULL, 0);
    rc = prov_swas_create_image(x->o.client, &req, on_create, c);
    if (rc < 0) {
        (void)journal(x, REC_JOURNAL_RESULT, s, c->api, c->token, NULL, "local");
        xcall_free(c);
        step_fail(s, strerror(-rc));
        return;
    }
    x->inflight++;
}

static void start_simple(xstep *s);

static void on_simple(const prov_error *err, void *ud)
{
    xcall *c = ud;
    xstep *s = c->s;
    rec_exec *x = s->x;
    x->inflight--;
    hist_record(x, c->api);
    const char *img = target_image(s);
    if (!journal_result(x, s, c->api, c->token, img,
                        err ? (err->code ? err->code : "local") : NULL)) {
        /* Failed and stopped: nothing more for this step. */
    } else if (err == NULL && c->inserted_unshare) {
        /* The inserted unshare is done: retry the delete under a new token. */
        s->state = REC_STEP_PENDING;
        rec_step_set_generation(s->step, x->o.owner, s->step->generation + 1);
        if (!x->stopping)
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

/* The executor's last-line ownership check (DESIGN.md "Semantics", Ownership), run before
 * every mutating SWAS call on an existing image: the image must have been observed in the
 * step's region with our owner tag, or be one this execution created (creates tag it). The
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
        if (c->step->action == REC_ACT_CREATE && c->image_id != NULL &&
            strcmp(c->image_id, image_id) == 0 && c->step->region != NULL &&
            strcmp(c->step->region, region) == 0)
            return true;
    }
    return false;
}

/* Share, unshare, delete (with the inserted unshare) and ECS delete. */
static void start_simple(xstep *s)
{
    rec_exec *x = s->x;
    const rec_step *st = s->step;
    const char *img = target_image(s);
    if (img == NULL) {
        step_fail(s, "no image id to act on");
        return;
    }
    if (!rec_action_is_ecs(st->action) && !image_is_ours(x, st->region, img)) {
        step_fail(s, "refused: the image was not observed carrying this owner's " REC_OWNER_TAG
                     " tag; no call made");
        return;
    }
    if (s->image_id == NULL)
        (void)set_str(&s->image_id, img);
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
    if (journal(x, REC_JOURNAL_INTENT, s, api, c->token, img, NULL) < 0) {
        xcall_free(c);
        step_fail(s, "cannot write the journal; no call made");
        return;
    }
    s->state = REC_STEP_RUNNING;
    s->running_since_ms = now_ms(x);
    emit(x, REC_EV_STEP_START, s, NULL, 0);
    int rc;
    if (insert_unshare)
        rc = prov_swas_share_image(x->o.client, st->region, img, false, token, on_simple, c);
    else if (st->action == REC_ACT_SHARE || st->action == REC_ACT_UNSHARE)
        rc = prov_swas_share_image(x->o.client, st->region, img, st->action == REC_ACT_SHARE, token,
                                   on_simple, c);
    else if (st->action == REC_ACT_DELETE)
        rc = prov_swas_delete_image(x->o.client, st->region, img, token, on_simple, c);
    else
        rc =
            prov_ecs_delete_image(x->o.client, st->region, img, st->ecs_force, false, on_simple, c);
    if (rc < 0) {
        (void)journal(x, REC_JOURNAL_RESULT, s, api, c->token, img, "local");
        xcall_free(c);
        step_fail(s, strerror(-rc));
        return;
    }
    x->inflight++;
}

/* ---- polling for creations ---- */

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
            if (img->status == PROV_IMG_AVAILABLE)
                step_done(s, NULL);
            else if (img->status == PROV_IMG_FAILED)
                step_fail(s, "image creation failed (status 3)");
            else if (img->status == PROV_IMG_UNAVAILABLE)
                step_fail(s, "the image is unavailable (status 2)");
            else if (now - s->listed_since_ms > maxwait)
                step_fail(s, "timed out waiting for the image to become available");
        }
    }
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

static void do_poll(rec_exec *x)
{
    if (x->poll_inflight || x->stopping)
        return;
    /* Pick a region with awaited images, round-robin, and up to 100 of its ids. */
    xstep *first = NULL;
    for (size_t k = 0; k < x->n && first == NULL; k++) {
        xstep *s = &x->xs[(x->poll_rr + k) % x->n];
        if (s->state == REC_STEP_AWAITING && s->image_id != NULL)
            first = s;
    }
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
    do_poll(x);
    maybe_finish(x);
}

/* Arms the poll timer while creations are awaited: one poll per List slot, at most one in
 * flight, and later when the shared List window is spent (another process, or observe) so a
 * poll never queues behind the pacer. */
static void schedule_poll(rec_exec *x)
{
    if (x->poll_inflight || x->stopping || x->finishing ||
        uv_is_active((uv_handle_t *)&x->poll_timer))
        return;
    bool awaiting = false;
    for (size_t i = 0; i < x->n && !awaiting; i++)
        awaiting = x->xs[i].state == REC_STEP_AWAITING;
    if (!awaiting)
        return;
    uint64_t iv = poll_interval(x), now = now_ms(x), delay = 0;
    if (x->last_poll_ms != 0 && x->last_poll_ms + iv > now)
        delay = x->last_poll_ms + iv - now;
    if (x->o.pacer != NULL && x->o.access_key_id != NULL && x->o.cfg != NULL) {
        spec_rate r = spec_config_rate_for(x->o.cfg, "ListCustomImages");
        unsigned left = 1;
        if (prov_pacer_budget(x->o.pacer, x->o.access_key_id, "swas", "ListCustomImages", r.calls,
                              r.window_ms, prov_now_ms(), &left) == 0 &&
            left == 0 && delay < iv)
            delay = iv;
    }
    (void)uv_timer_start(&x->poll_timer, on_poll_timer, delay, 0);
}

/* ---- scheduling ---- */

/* Starts every step whose dependencies are done; skips those whose dependencies failed. */
static void pump(rec_exec *x)
{
    if (x->finishing)
        return;
    for (size_t i = 0; i < x->n; i++) {
        xstep *s = &x->xs[i];
        if (s->state != REC_STEP_PENDING)
            continue;
        bool ready = true, blocked = false;
        for (size_t k = 0; k < s->step->n_depends; k++) {
            unsigned id = s->step->depends_on[k];
            if (id == 0 || id > x->n)
                continue;
            rec_step_state ds = x->xs[id - 1].state;
            if (ds == REC_STEP_FAILED || ds == REC_STEP_SKIPPED)
                blocked = true;
            else if (ds != REC_STEP_DONE)
                ready = false;
        }
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
        switch (s->step->action) {
        case REC_ACT_CREATE:
            if (s->step->over_quota)
                step_fail(s, "not sent: the region's custom image quota is full even after the "
                             "planned deletes (see the plan's warning)");
            else
                start_create(s);
            break;
        case REC_ACT_WAIT:
            if (s->step->image_id == NULL)
                step_fail(s, "internal error: wait step without an image id");
            else
                start_await(s, s->step->image_id);
            break;
        default:
            start_simple(s);
            break;
        }
    }
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
