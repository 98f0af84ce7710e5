/* The pure core of reconcile/: observed state + desired set -> diff -> ordered plan of steps with
 * dependencies -> render (text, JSON) -> time/call estimate, and the saved-plan file
 * (DESIGN.md "Semantics", "Data flow"). Nothing here does I/O except the planfile functions and
 * the renderers' FILE output; the executor (rec_exec/rec_cycle) fills rec_observed from the API
 * and runs the steps.
 *
 * Decisions recorded here (DESIGN.md leaves them to us):
 * - A create step is done when the image reaches status 1: the executor polls after the call.
 *   A share step always requires status 1; it depends on the create (or on a WAIT step when the
 *   image already exists in status 4/0).
 * - REC_ACT_WAIT is a step without an API call: an observed image in status 4 (creating) or 0
 *   (copying) that is declared. The executor polls (batched ListCustomImages ImageIds) until it is
 *   1. Waits are not "changes" (plan --detailed-exitcode ignores them) and use no mutating call.
 * - Tag drift on a declared image is reported (notes of kind REC_NOTE_DRIFT) but not acted on:
 *   none of the five operations imgrecon uses can change tags, and a replace for a tag would be
 *   out of proportion. Only the owner/protect tags matter for ownership.
 * - Observed NULL (or "") for instance_id, system_snapshot_id or resource_group_id means "not
 *   reported", never a difference; a desired resource_group_id NULL means "account default".
 *   Description NULL and "" are equal. data_snapshot_id NULL vs a value is a difference.
 * - The region quota is min(config quota, learned quota) when a CustomImageQuotaLimit was seen.
 *   Every observed image in the region (any status) counts against it. */
#ifndef REC_PLAN_H
#define REC_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "prov_types.h"
#include "spec.h"
#include "spec_config.h"

#define REC_OWNER_TAG "imgrecon/owner"
#define REC_PROTECT_TAG "imgrecon/protect"
#define REC_PLAN_FORMAT_VERSION "1.0"
#define REC_HASH_HEX 64  /* sha256 as lowercase hex, without the NUL */
#define REC_TOKEN_MAX 64 /* ClientToken length limit of the API */

/* ---- Observed state (filled by the observe step) ---- */

/* What one region looks like. images: every ListCustomImages item (all pages). ecs: the ECS
 * DescribeImages items of this region (only when the desired set names ECS images there). */
typedef struct rec_region_obs {
    char *region;
    prov_image_list images;
    bool have_quota;        /* a CustomImageQuotaLimit answer taught us the real quota */
    unsigned quota_learned; /* valid when have_quota */
    bool ecs_observed;      /* DescribeImages ran for this region */
    prov_ecs_image_list ecs;
} rec_region_obs;

typedef struct rec_observed {
    rec_region_obs *regions;
    size_t n;
} rec_observed;

/* Frees every region's strings and lists and the array; not obs itself. Accepts NULL. */
void rec_observed_free(rec_observed *obs);
/* Appends an empty region (region copied); *ret points into obs->regions (valid until the next
 * add). Returns 0 or -ENOMEM. */
int rec_observed_add_region(rec_observed *obs, const char *region, rec_region_obs **ret);
/* NULL when the region was not observed. */
const rec_region_obs *rec_observed_find(const rec_observed *obs, const char *region);

/* ---- Options ---- */

typedef struct rec_options {
    const char *owner; /* NULL: "default" */
    bool prune;
    unsigned max_deletes; /* prune deletes allowed per cycle (rec_options_init: 5) */
    bool allow_empty;
    /* Quota per region; NULL: quota_default for every region. */
    unsigned (*quota_for)(void *ud, const char *region);
    unsigned quota_default; /* rec_options_init: 15 */
    /* Rate per API action ("CreateCustomImage", ...); NULL: rate_default for every action. */
    spec_rate (*rate_for)(void *ud, const char *action);
    spec_rate rate_default; /* rec_options_init: 10/60s */
    void *ud;
    uint64_t create_wait_ms; /* expected time from CreateCustomImage to status 1 (estimate only);
                                rec_options_init: 60000 */
} rec_options;

/* Fills the defaults above. */
void rec_options_init(rec_options *o);
/* Defaults, then owner/prune/max_deletes/allow_empty/quotas/rates from cfg (cfg must outlive o).
 * Lives in rec_options.c. */
void rec_options_from_config(rec_options *o, const spec_config *cfg);
unsigned rec_options_quota(const rec_options *o, const char *region);
spec_rate rec_options_rate(const rec_options *o, const char *api_action);

/* ---- Steps ---- */

typedef enum rec_action {
    REC_ACT_CREATE = 0, /* CreateCustomImage; done at status 1 */
    REC_ACT_SHARE,      /* ModifyImageShareStatus Operation=Share; needs status 1 */
    REC_ACT_UNSHARE,    /* ModifyImageShareStatus Operation=UnShare */
    REC_ACT_DELETE,     /* DeleteCustomImage */
    REC_ACT_ECS_DELETE, /* ECS DeleteImage (Force from the manifest) */
    REC_ACT_WAIT,       /* no call: poll until the observed image is status 1 */
    REC_ACT__COUNT
} rec_action;

const char *rec_action_name(rec_action a); /* "create", "share", ..., "wait" */
/* The API action, used as the pacer key: "CreateCustomImage", "ModifyImageShareStatus" (share
 * and unshare share one budget), "DeleteCustomImage", "DeleteImage"; NULL for WAIT. */
const char *rec_action_api(rec_action a);
bool rec_action_is_ecs(rec_action a);
/* Parses a name from rec_action_name; returns 0 or -EINVAL. */
int rec_action_parse(const char *s, rec_action *ret);

/* One unit of work. The step's index in plan->steps is id - 1. */
typedef struct rec_step {
    unsigned id; /* 1-based */
    rec_action action;
    char *address; /* swas.<region>.custom_image.<name> or ecs.<region>.image.<image_id> */
    char *region;
    char *name;     /* image name; ECS: the observed image name or NULL */
    char *image_id; /* the image acted on; NULL for create (and for a share after a create:
                       the executor takes the id from the create it depends on) */
    char *reason;   /* human text, e.g. "not found in the account" */
    char *file;     /* manifest position; NULL for prune deletes */
    unsigned line, col;
    unsigned *depends_on; /* ids of steps that must be done first */
    size_t n_depends;
    prov_image *before; /* observed attributes; NULL when nothing exists yet */
    prov_image *after;  /* desired attributes (create: every CreateCustomImage parameter, tags
                           include the owner/protect tags); NULL after a delete */
    unsigned change;    /* index into plan->changes of the change this step belongs to */
    bool ecs_force;     /* ECS_DELETE: Force=true */
    bool over_quota;    /* CREATE beyond the region's quota even after every planned delete:
                           apply does not send it (the step fails, naming the quota) */
    char spec_hash[REC_HASH_HEX + 1]; /* input of the token (desired entry or target image) */
    unsigned generation;              /* 0 at plan time; the executor may bump it */
    char client_token[REC_TOKEN_MAX + 1];
} rec_step;

/* A change as the user sees it (one header line in the text output). */
typedef enum rec_change_kind {
    REC_CH_CREATE = 0, /* + create (then share) */
    REC_CH_DELETE,     /* - (unshare then) delete */
    REC_CH_SHARE,      /* ~ share */
    REC_CH_UNSHARE,    /* ~ unshare */
    REC_CH_REPLACE,    /* -/+ unshare? delete create share? */
    REC_CH_ECS_DELETE, /* - ECS image */
    REC_CH_WAIT,       /* . wait for creating/copying (no call) */
} rec_change_kind;

typedef struct rec_change {
    rec_change_kind kind;
    char *address;
    char *reason;
    char *file; /* NULL for prune */
    unsigned line, col;
    unsigned *steps; /* ids of its steps, in execution order (not always contiguous: a create
                        may wait for another change's delete, so steps are ordered by phase) */
    size_t n_steps;
} rec_change;

/* Everything reported but not acted on. */
typedef enum rec_note_kind {
    REC_NOTE_UNMANAGED = 0, /* undeclared and not ours, protected, or prune off */
    REC_NOTE_REFUSED,       /* replace refused (protect) or failed image not owned */
    REC_NOTE_CONFLICT,      /* several images with one name in a region: none touched */
    REC_NOTE_GUARD,         /* a prune guard refused deletes */
    REC_NOTE_DRIFT,         /* tags differ: reported only */
    REC_NOTE_WARNING,       /* e.g. quota cannot be met, status 2, ECS region not observed */
} rec_note_kind;

typedef struct rec_note {
    rec_note_kind kind;
    char *address; /* NULL for region-level guards */
    char *region;
    char *name;
    char *image_id;
    char *text;
    char *file; /* NULL when no manifest entry */
    unsigned line, col;
} rec_note;

/* ---- Estimate ---- */

typedef struct rec_estimate {
    uint64_t estimated_ms;              /* simulated time until every step is done */
    unsigned api_calls[REC_ACT__COUNT]; /* mutating calls per step action (WAIT: 0) */
    unsigned n_create, n_delete, n_share, n_unshare, n_replace, n_ecs_delete, n_wait;
    spec_rate rate_default;  /* for the "at 10/60s per action" text */
    bool rates_uniform;      /* every API action used has rate_default */
    uint64_t create_wait_ms; /* the image build time the simulation assumed */
} rec_estimate;

/* Generic simulation, exported for the benchmarks' lower bound. Each task makes one call on
 * budget key `key` (index into rates) at some time t >= every dependency's done time, subject to
 * "at most rates[key].calls calls in any window of rates[key].window_ms" per key; it is done at
 * t + duration_ms. key < 0: no call (the task is done duration_ms after its dependencies).
 * Greedy list scheduling: always the task that can start earliest, ties by index. Dependencies
 * are indices (< n, acyclic). ret_done_ms (may be NULL) gets each task's done time. */
typedef struct rec_sim_task {
    int key;
    uint64_t duration_ms;
    const size_t *deps;
    size_t n_deps;
} rec_sim_task;
int rec_simulate(const rec_sim_task *tasks, size_t n, const spec_rate *rates, size_t n_rates,
                 uint64_t *ret_total_ms, uint64_t *ret_done_ms);

/* ---- The plan ---- */

typedef struct rec_fingerprint {
    char desired[REC_HASH_HEX + 1];  /* rec_fingerprint_desired */
    char observed[REC_HASH_HEX + 1]; /* rec_fingerprint_observed */
} rec_fingerprint;

typedef struct rec_plan {
    char *owner;
    rec_step *steps; /* ordered: a step's dependencies always come before it */
    size_t n_steps;
    rec_change *changes;
    size_t n_changes;
    rec_note *notes;
    size_t n_notes;
    rec_estimate estimate;
    rec_fingerprint fp;
} rec_plan;

/* Diff + plan + estimate + fingerprint. Every region named by desired must be in observed
 * (-ENOENT otherwise, *ret_error says which when not NULL); ECS entries need ecs_observed
 * (else a warning note and no step). Returns 0 and *ret, -ENOMEM, or -ENOENT. */
int rec_plan_build(const spec_set *desired, const rec_observed *observed, const rec_options *opts,
                   rec_plan **ret, char **ret_error);
void rec_plan_free(rec_plan *plan);

/* Steps that change something (everything but WAIT). plan --detailed-exitcode: 2 when > 0. */
size_t rec_plan_n_changes(const rec_plan *plan);
/* Notes of a kind (e.g. REC_NOTE_REFUSED + REC_NOTE_CONFLICT are errors for the user). */
size_t rec_plan_n_notes(const rec_plan *plan, rec_note_kind kind);
const rec_step *rec_plan_step(const rec_plan *plan, unsigned id); /* NULL when out of range */
/* Recomputes plan->estimate under opts (e.g. after loading a plan file). */
void rec_plan_estimate(rec_plan *plan, const rec_options *opts);

/* ---- Tokens and fingerprints ---- */

/* sha256 over (owner, region, action name, image name, spec_hash, generation), length-prefixed,
 * as 64 lowercase hex characters (the API allows at most 64 ASCII). */
void rec_client_token(const char *owner, const char *region, rec_action action, const char *name,
                      const char *spec_hash, unsigned generation, char ret[REC_TOKEN_MAX + 1]);
/* Recomputes step->client_token from its fields with a new generation. */
void rec_step_set_generation(rec_step *step, const char *owner, unsigned generation);
/* Canonical hash of a desired entry (every field that CreateCustomImage receives + protect). */
void rec_spec_image_hash(const spec_image *img, char ret[REC_HASH_HEX + 1]);
/* Canonical hash of the desired set (images, ECS entries, regions) and owner. */
void rec_fingerprint_desired(const spec_set *desired, const char *owner,
                             char ret[REC_HASH_HEX + 1]);
/* Hash of what the plan depends on: per region (sorted) every image's id, name, status,
 * in_share and tags (sorted by image id) and the ECS image ids. */
void rec_fingerprint_observed(const rec_observed *observed, char ret[REC_HASH_HEX + 1]);
/* True when both fingerprints are equal. */
bool rec_fingerprint_equal(const rec_fingerprint *a, const rec_fingerprint *b);

/* ---- Rendering ---- */

enum {
    REC_RENDER_COLOR = 1u << 0, /* ANSI colours (the caller checks the tty and NO_COLOR) */
};
/* Terraform-like text (see reconcile/PLAN-JSON.md for an example). Returns 0 or -EIO. */
int rec_render_text(const rec_plan *plan, FILE *out, unsigned flags);
/* The versioned JSON document described in reconcile/PLAN-JSON.md, as a malloc'd string
 * (indented when pretty); NULL on allocation failure. */
char *rec_render_json(const rec_plan *plan, bool pretty);
/* "1m 12s", "45s", "2h 3m", "0s"; writes at most size bytes. */
void rec_format_duration(uint64_t ms, char *buf, size_t size);

/* ---- Saved plans (plan --out FILE, apply FILE) ---- */

/* What a saved plan was made with (DESIGN.md "Saved plans do exactly what they showed"): the
 * policy the steps were computed under, and where they were computed (paths are absolute).
 * `apply FILE` uses these instead of flags and refuses flags or config that disagree. */
typedef struct rec_plan_policy {
    char *owner;
    bool prune;
    unsigned max_deletes;
    bool allow_empty;
    unsigned quota_default;
    spec_quota *quotas; /* per-region overrides */
    size_t n_quotas;
    char **manifests; /* the manifest paths loaded */
    size_t n_manifests;
    char *endpoint;  /* NULL: the real per-region endpoints */
    char *state_dir; /* the state directory actually used */
    char *config;    /* the config file read; NULL: none */
} rec_plan_policy;

/* Fills p from cfg (owner, prune, max_deletes, allow_empty, quotas, endpoint), the manifest
 * paths, the state directory and the config path (may be NULL); paths are made absolute. Returns
 * 0 or -ENOMEM (p is then cleared). */
int rec_plan_policy_init(rec_plan_policy *p, const spec_config *cfg, const char *const *manifests,
                         size_t n_manifests, const char *state_dir, const char *config_path);
/* Frees p's contents. Accepts NULL. */
void rec_plan_policy_clear(rec_plan_policy *p);
/* Compares the policy part of cfg (owner, prune, max_deletes, allow_empty, quotas) with p.
 * Returns 0 when equal, else -ESTALE and *ret_error (malloc'd, caller frees) naming the first
 * difference, e.g. "prune: the saved plan was made with false, the settings given now say
 * true". */
int rec_plan_policy_check(const rec_plan_policy *p, const spec_config *cfg, char **ret_error);

/* Writes the JSON document plus the fingerprint, each step's token inputs and the policy (may be
 * NULL: none recorded) to path (0600, via a unique temp file + rename). Returns 0 or a negative
 * errno. */
int rec_plan_save(const rec_plan *plan, const rec_plan_policy *policy, const char *path);
/* Reads a saved plan. -EINVAL with *ret_error (malloc'd, may be NULL) on a malformed or
 * unsupported file; other negative errno on I/O errors. The loaded plan's estimate is zeroed:
 * call rec_plan_estimate. ret_policy (may be NULL) receives the recorded policy (clear it with
 * rec_plan_policy_clear); a file without one is refused when ret_policy is not NULL. */
int rec_plan_load(const char *path, rec_plan **ret, rec_plan_policy *ret_policy, char **ret_error);
/* A deep copy of plan (estimate zeroed). Returns 0 and *ret, or -ENOMEM. */
int rec_plan_copy(const rec_plan *plan, rec_plan **ret);

/* Appends a plan-level warning note (no address) with a copy of text. Returns 0 or -ENOMEM. */
int rec_plan_add_warning(rec_plan *plan, const char *text);
/* Checks a saved plan against one computed now under the same policy from a fresh observation
 * (rec_plancheck.c). Every saved step must still be planned identically: same action, address
 * and image, the image's observed fields (status, in_share, tags, name, description, instance
 * and snapshots) and the manifest entry it comes from unchanged, and no new step on an image or
 * address a saved step names. Steps of the fresh plan on other addresses are unrelated: they are
 * not executed and counted in *ret_n_unrelated (may be NULL). Returns 0, -ENOMEM, or -ESTALE with
 * *ret_error (malloc'd, caller frees) naming the first difference (image and field). */
int rec_plan_check_saved(const rec_plan *saved, const rec_plan *fresh, const rec_observed *observed,
                         size_t *ret_n_unrelated, char **ret_error);

#endif
