/* Saved plans (rec_planfile.c): plan --out FILE writes one, apply FILE reads it back and
 * applies exactly its steps after rec_plancheck.c finds nothing they depend on changed. */
#ifndef REC_PLANFILE_H
#define REC_PLANFILE_H

#include "rec_plan.h"
#include "spec_config.h"

/* What a saved plan was made with (reconcile/README.md "Saved plans do exactly what they showed"):
 * the policy the steps were computed under, and where they were computed (paths are absolute).
 * `apply FILE` uses these instead of flags and refuses flags or config that disagree. */
typedef struct rec_plan_policy {
    char *owner;
    bool prune;
    unsigned max_deletes;
    bool allow_empty;           /* true: every region may be emptied */
    char **allow_empty_regions; /* else only these (config `allow_empty: [..]`) */
    size_t n_allow_empty_regions;
    char **regions; /* config `regions: [..]`: more regions observed */
    size_t n_regions;
    bool regions_all; /* config `regions: all` */
    char *account_id; /* config account_id; NULL: none configured */
    /* The account the plan was made against, as learned from the credentials (or config
     * account_id); NULL: it could not be learned. apply FILE refuses other credentials. */
    char *caller_account_id;
    char **previous_owners; /* config previous_owners: owners whose images we take over */
    size_t n_previous_owners;
    unsigned quota_default;
    spec_quota *quotas; /* per-region overrides */
    size_t n_quotas;
    char **manifests; /* the manifest paths loaded */
    size_t n_manifests;
    char *endpoint;  /* NULL: the real per-region endpoints */
    char *state_dir; /* the state directory actually used */
    char *config;    /* the config file read; NULL: none */
} rec_plan_policy;

/* Fills p from cfg (owner, prune, max_deletes, allow_empty, regions, account_id,
 * previous_owners, quotas, endpoint), the manifest paths, the state directory, the config path
 * (may be NULL) and the account the plan was made against (caller_account_id; NULL when it could
 * not be learned); paths are made absolute. Returns 0 or -ENOMEM (p is then cleared). */
int rec_plan_policy_init(rec_plan_policy *p, const spec_config *cfg, const char *const *manifests,
                         size_t n_manifests, const char *state_dir, const char *config_path,
                         const char *caller_account_id);
/* Frees p's contents. Accepts NULL. */
void rec_plan_policy_clear(rec_plan_policy *p);
/* Compares the policy part of cfg (owner, prune, max_deletes, allow_empty, quotas, regions,
 * account_id, previous_owners) with p; lists compare as sets. Returns 0 when equal, -ENOMEM, or
 * -ESTALE and *ret_error (malloc'd, caller frees) naming the first difference, e.g. "prune: the
 * saved plan was made with false, the settings given now say true" or "allow_empty: the saved plan
 * was made with [cn-hangzhou], the settings given now say true". */
int rec_plan_policy_check(const rec_plan_policy *p, const spec_config *cfg, char **ret_error);

/* Writes the JSON document plus the fingerprint, each step's token inputs and the policy (may be
 * NULL: none recorded) to path (0600, via a unique temp file + rename). Returns 0 or a negative
 * errno. */
int rec_plan_save(const rec_plan *plan, const rec_plan_policy *policy, const char *path);
/* Reads a saved plan. -EINVAL with *ret_error (malloc'd, may be NULL) on a malformed or
 * unsupported file or one that is not a regular file (a FIFO is refused, never waited on),
 * -EFBIG on one larger than 16 MiB; other negative errno on I/O errors (with *ret_error too). The
 * loaded plan's estimate is zeroed: call rec_plan_estimate. ret_policy (may be NULL) receives the
 * recorded policy (clear it with rec_plan_policy_clear); a file without one is refused when
 * ret_policy is not NULL. */
int rec_plan_load(const char *path, rec_plan **ret, rec_plan_policy *ret_policy, char **ret_error);
/* A deep copy of plan (estimate zeroed). Returns 0 and *ret, or -ENOMEM. */
int rec_plan_copy(const rec_plan *plan, rec_plan **ret);

#endif
