/* The pure core of reconcile/ (reconcile/plan): observed state + desired set -> diff -> ordered
 * plan of steps with dependencies -> render (text, JSON) -> time/call estimate, and the saved-plan
 * file (reconcile/README.md "Semantics", "Data flow"). This header holds the types every part
 * shares and the plumbing of rec_plan.c (containers, options, actions, tokens, fingerprints); the
 * diff is rec_diff.h, the estimate rec_estimate.h, rendering rec_render.h, saved plans
 * rec_planfile.h and options from the config rec_options.h. Nothing here does I/O except the
 * planfile functions and the renderers' FILE output; the executor (rec_exec/rec_cycle) fills
 * rec_observed from the API and runs the steps.
 *
 * Decisions recorded here (where reconcile/README.md "Semantics" is silent):
 * - A create step is done when the image reaches status 1: the executor polls after the call.
 *   A share step always requires status 1; it depends on the create (or on a WAIT step when the
 *   image already exists in status 4/0).
 * - REC_ACT_WAIT is a step without an API call: an observed image in status 4 (creating) or 0
 *   (copying) that is declared. The executor polls (batched ListCustomImages ImageIds) until it is
 *   1. Waits are not "changes" (plan --detailed-exitcode ignores them) and use no mutating call.
 * - Tags are reconciled in place (reconcile/README.md "Semantics", Tags): an entry's tags are
 *   authoritative for user keys, imgrecon/owner and imgrecon/protect are imgrecon's, and keys
 *   starting with `acs:` or `aliyun` are the cloud's and never touched. A difference becomes a
 *   `~` change of an UNTAG step (keys to remove) then a TAG step (keys to set); the executor
 *   sends the ready steps of one region with the same delta as one call (at most 50 images).
 *   Tag and account steps carry no ClientToken: setting a tag or an account twice is harmless,
 *   and one token for a batch whose members change between runs would be refused.
 * - Taking over (adopt: true, config previous_owners) is ONE TAG step whose after carries our
 *   owner tag; it is the only step allowed on an image that is not ours yet.
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

#include "prov_cleanup.h"
#include "prov_types.h"
#include "spec.h"
#include "spec_config.h"

#define REC_OWNER_TAG "imgrecon/owner"
#define REC_PROTECT_TAG "imgrecon/protect"

/* Whether img's imgrecon/protect tag protects it: any value other than "false" (any case), ""
 * and "no" included, so that a tag typed by hand errs on the side of keeping the image. The
 * diff (replace, prune) and the executor's look before a delete ask it. */
bool rec_image_protected(const prov_image *img);
#define REC_PLAN_FORMAT_VERSION "1.2"
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
void rec_observed_clear(rec_observed *obs);
/* Appends an empty region (region copied); *ret points into obs->regions (valid until the next
 * add). Returns 0 or -ENOMEM. */
int rec_observed_add_region(rec_observed *obs, const char *region, rec_region_obs **ret);
/* NULL when the region was not observed. */
const rec_region_obs *rec_observed_find(const rec_observed *obs, const char *region);

/* ---- Options ---- */

typedef struct rec_options {
    const char *owner; /* NULL: "default" */
    /* import: every unowned image may become an `adopt: true` entry, so observe reads its
     * account shares too (rec_observe.c wants_accounts). Plans never set it. */
    bool observe_unowned_accounts;
    bool prune;
    unsigned max_deletes; /* prune deletes allowed per cycle (rec_options_init: 5) */
    bool allow_empty;     /* every region */
    /* Per region (config `allow_empty: [regions]`); NULL: allow_empty alone decides. */
    bool (*allow_empty_for)(void *ud, const char *region);
    /* Quota per region; NULL: quota_default for every region. */
    unsigned (*quota_for)(void *ud, const char *region);
    unsigned quota_default; /* rec_options_init: 15 */
    /* Rate per API action ("CreateCustomImage", ...); NULL: rate_default for every action. */
    spec_rate (*rate_for)(void *ud, const char *action);
    spec_rate rate_default; /* rec_options_init: 10/60s */
    void *ud;
    /* Owners whose images are retagged to owner in place (config previous_owners); borrowed. */
    const char *const *previous_owners;
    size_t n_previous_owners;
    uint64_t create_wait_ms; /* expected time from CreateCustomImage to status 1 (estimate only);
                                rec_options_init: 60000 */
    unsigned create_wait_samples; /* recent creates create_wait_ms was learned from (0: the
                                     default) */
    /* apply without --json, and the daemon: plan->fp is left empty. Only a plan document (plan
     * --json, plan --out, apply --json) shows the fingerprints, and at 100,000 images they are
     * half the plan's time. */
    bool skip_fingerprints;
} rec_options;

/* Fills the defaults above. */
void rec_options_init(rec_options *o);
unsigned rec_options_quota(const rec_options *o, const char *region);
/* True when prune may delete every owned image of region (its desired set is empty). */
bool rec_options_allow_empty(const rec_options *o, const char *region);
spec_rate rec_options_rate(const rec_options *o, const char *api_action);

/* ---- Steps ---- */

typedef enum rec_action {
    REC_ACT_CREATE = 0,      /* CreateCustomImage; done at status 1 */
    REC_ACT_SHARE,           /* ModifyImageShareStatus Operation=Share; needs status 1 */
    REC_ACT_UNSHARE,         /* ModifyImageShareStatus Operation=UnShare */
    REC_ACT_DELETE,          /* DeleteCustomImage */
    REC_ACT_ECS_DELETE,      /* ECS DeleteImage (Force from the manifest) */
    REC_ACT_WAIT,            /* no call: poll until the observed image is status 1 */
    REC_ACT_TAG,             /* TagResources: after's tags that before lacks or holds otherwise */
    REC_ACT_UNTAG,           /* UntagResources: before's keys that after lacks */
    REC_ACT_ADD_ACCOUNTS,    /* AddCustomImageShareAccount: after's accounts before lacks */
    REC_ACT_REMOVE_ACCOUNTS, /* RemoveCustomImageShareAccount: before's accounts after lacks */
    REC_ACT__COUNT
} rec_action;

const char *rec_action_name(rec_action a); /* "create", "share", ..., "wait" */
/* The API action, used as the pacer key: "CreateCustomImage", "ModifyImageShareStatus" (share
 * and unshare share one budget), "DeleteCustomImage", "DeleteImage"; NULL for WAIT. */
const char *rec_action_api(rec_action a);
bool rec_action_is_ecs(rec_action a);
/* True when owner is one of o's previous_owners. */
bool rec_options_is_previous_owner(const rec_options *o, const char *owner);
/* Parses a name from rec_action_name; returns 0 or -EINVAL. */
int rec_action_parse(const char *s, rec_action *ret);

struct rec_step;

/* Whose image a TAG step starts from (reconcile/README.md "Semantics", Ownership). */
typedef enum rec_takeover {
    REC_TAKEOVER_NONE = 0, /* ours already */
    REC_TAKEOVER_ADOPT,    /* no owner tag, the entry says adopt: true */
    REC_TAKEOVER_MIGRATE,  /* owned by one of config previous_owners */
} rec_takeover;

const char *rec_takeover_name(rec_takeover t); /* "none", "adopt", "migrate" */
int rec_takeover_parse(const char *s, rec_takeover *ret);

/* True for tag keys that belong to the cloud (`acs:`, `aliyun` prefixes, in any case, as the
 * manifest refuses them): never set or removed. */
bool rec_tag_key_is_cloud(const char *key);

/* The delta of a TAG/UNTAG/account step, computed from its before and after the same way by the
 * plan, the renderer and the executor. Pointers are borrowed from the step; at most max are
 * written; returns the count (which may exceed max: then the step is malformed). TAG: the tags
 * of after that before lacks or holds with another value. UNTAG: the keys of before that after
 * lacks (cloud keys never). Accounts: after's accounts before lacks (add) or the reverse. */
#define REC_DELTA_MAX 64
size_t rec_step_tags_to_set(const struct rec_step *st, const prov_tag **ret, size_t max);
size_t rec_step_keys_to_remove(const struct rec_step *st, const char **ret, size_t max);
size_t rec_step_accounts_delta(const struct rec_step *st, const char **ret, size_t max);
/* Steps that the executor may send as one call share this key: action, region and delta. */
void rec_step_batch_key(const struct rec_step *st, char ret[REC_HASH_HEX + 1]);

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
    rec_takeover takeover;            /* TAG only: adoption or owner migration */
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
    REC_CH_TAGS,       /* ~ tags (user tags, protect) in place */
    REC_CH_ADOPT,      /* ~ take over: adopt an unowned image or migrate a previous owner's */
    REC_CH_ACCOUNTS,   /* ~ account shares in place */
} rec_change_kind;

/* "create", "delete", "share", "unshare", "replace", "ecs_delete", "wait", "tags", "adopt",
 * "accounts" (the JSON plan's change kinds); rec_change_kind_parse reads them back. */
const char *rec_change_kind_name(rec_change_kind k);
int rec_change_kind_parse(const char *s, rec_change_kind *ret);

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
    REC_NOTE_REFUSED,       /* replace refused (protect) */
    REC_NOTE_CONFLICT,      /* a declared name matches an image that is not ours, or several
                               of our images share one name: none of them is touched */
    REC_NOTE_GUARD,         /* a prune guard refused deletes */
    REC_NOTE_DRIFT,         /* unused since format 1.2 (tags are changed in place) */
    REC_NOTE_WARNING,       /* e.g. quota cannot be met, status 2, ECS region not observed */
} rec_note_kind;

/* Why a REC_NOTE_CONFLICT exists (reconcile/README.md "Semantics", Ownership). */
typedef enum rec_conflict_kind {
    REC_CONFLICT_NOT_OWNED = 0,  /* declared name, image without our imgrecon/owner tag */
    REC_CONFLICT_DUPLICATE,      /* several of our images share one name */
    REC_CONFLICT_ADOPT_MISMATCH, /* adopt: true, but the image's immutable fields differ */
} rec_conflict_kind;

/* "not_owned", "duplicate_name", "adopt_mismatch" */
const char *rec_conflict_kind_name(rec_conflict_kind k);
/* Parses a name from rec_conflict_kind_name; returns 0 or -EINVAL. */
int rec_conflict_kind_parse(const char *s, rec_conflict_kind *ret);

typedef struct rec_note {
    rec_note_kind kind;
    rec_conflict_kind conflict; /* REC_NOTE_CONFLICT only */
    char *owner;   /* REC_NOTE_CONFLICT not_owned: the image's imgrecon/owner value, NULL when it
                      has none */
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
    unsigned n_tags, n_adopt, n_accounts; /* in-place changes (format 1.2) */
    spec_rate rate_default;               /* for the "at 10/60s per action" text */
    bool rates_uniform;                   /* every API action used has rate_default */
    uint64_t create_wait_ms;              /* the image build time the simulation assumed */
    unsigned create_wait_samples;         /* recent creates it was learned from; 0: the default */
    unsigned delete_batch_calls; /* DeleteCustomImages calls (deletes batched per region) */
} rec_estimate;

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
    rec_fingerprint fp; /* empty strings when built with skip_fingerprints */
} rec_plan;

void rec_plan_free(rec_plan *plan);
PROV_DEFINE_FREEP(rec_plan, rec_plan_free)

/* Steps that change something (everything but WAIT). plan --detailed-exitcode: 2 when > 0. */
size_t rec_plan_n_changes(const rec_plan *plan);
/* Notes of a kind (e.g. REC_NOTE_REFUSED + REC_NOTE_CONFLICT are errors for the user). */
size_t rec_plan_n_notes(const rec_plan *plan, rec_note_kind kind);
const rec_step *rec_plan_step(const rec_plan *plan, unsigned id); /* NULL when out of range */

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

#endif
