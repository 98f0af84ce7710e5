/* Wiring shared by `imgrecon plan`, `imgrecon apply` and the daemon: from a loaded spec_config
 * to a usable state directory, credentials, the shared pacer and the API client, plus a count
 * of API calls per action for the summaries. Keeps cmd/ thin. */
#ifndef REC_SETUP_H
#define REC_SETUP_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "prov_client.h"
#include "prov_cred.h"
#include "prov_pacer.h"
#include "rec_cycle.h"
#include "spec_config.h"

#define REC_SETUP_MAX_ACTIONS 16

typedef struct rec_call_count {
    char action[40];
    unsigned calls;     /* HTTP attempts */
    unsigned throttled; /* answers classified as throttled */
} rec_call_count;

typedef struct rec_setup_opts {
    bool state_dir_explicit; /* --state-dir given: never fall back to another directory */
    bool no_metadata;        /* never try the ECS metadata service for credentials */
    const char *method;      /* HTTP method of every call: NULL or "POST" (default), "GET" */
    /* Optional observer of every HTTP attempt (after the counters are updated). */
    void (*on_call)(void *ud, const prov_call_event *ev);
    /* Optional: a credential refresh failed (retried at most once a second; calls wait once
     * the credential has expired) or the account id could not be learned. No secrets. */
    void (*on_cred_error)(void *ud, const char *msg);
    /* Optional: a refresh is about to replace old with fresh (both borrowed for the call), so
     * that the daemon's log learns the new secret and token before any line can carry them. */
    void (*on_cred_refreshed)(void *ud, const prov_credential *old, const prov_credential *fresh);
    /* Optional: a call waits wait_ms for its action's rate-limit window (prov_client_opts
     * on_wait), e.g. during observe; plan and apply show it on a terminal. */
    void (*on_wait)(void *ud, const char *action, uint64_t wait_ms);
    void *ud;
} rec_setup_opts;

/* An STS request made by a credential refresh on the thread pool, kept for the loop. */
#define REC_SETUP_STS_KEPT 4
typedef struct rec_sts_kept {
    const char *action; /* a literal of prov_cred_sts.c */
    long http_status;
    char code[64];
    bool has_code;
    long duration_ms;
} rec_sts_kept;

typedef struct rec_setup {
    const spec_config *cfg; /* borrowed; must outlive the setup */
    char *state_dir;        /* the directory actually used (may be the fallback) */
    char *note;             /* why a fallback directory was chosen (always shown); NULL otherwise */
    prov_credential cred;
    /* How cred was resolved, for refresh. Its strings are the setup's own copies (profile,
     * cred_url below), not cfg's: a reload that keeps the setup replaces cfg while a refresh may
     * be reading them on the thread pool. */
    prov_cred_opts copts;
    char *profile;  /* cfg->profile when resolved (NULL: none) */
    char *cred_url; /* cfg->endpoint when resolved: STS and metadata go there (NULL: none) */
    rec_sts_kept sts_kept[REC_SETUP_STS_KEPT]; /* written by the refresh on the thread pool */
    size_t n_sts_kept;
    /* The pacer's budget key, learned before the first API call ("" until then): the account
     * id, or "key:<access key id>" when it could not be learned. */
    char account_id[80];
    prov_pacer *pacer;
    prov_client *client;
    rec_call_count counts[REC_SETUP_MAX_ACTIONS];
    size_t n_counts;
    rec_setup_opts opts;
    void (*on_closed)(void *ud); /* set by rec_setup_close */
    void *closed_ud;
} rec_setup;

/* Allocates a setup: prepares the state directory (created 0700 when missing; when it cannot be
 * created and opts->state_dir_explicit is false, `$XDG_STATE_HOME/imgrecon` or
 * `~/.local/state/imgrecon`, with s->note saying which and why; callers print it), refuses an
 * unsafe one (prov_statedir_check), resolves credentials with cfg->profile (STS and instance
 * metadata at cfg->endpoint when it is set), opens the pacer there (the account id that keys the
 * call budget is learned before the first call: cfg->account_id, a role ARN, the cache file
 * account_ids in the state directory, else STS GetCallerIdentity) and builds the client with the
 * config's endpoint, signature, rates and CA file; the client refreshes temporary credentials
 * before they expire. Returns 0 and *ret (close it with rec_setup_close), or a negative errno with
 * *ret_error (caller frees; no secrets) saying what went wrong. cfg is borrowed until the setup
 * has closed. Called by cmd/cmd_session.c and the daemon. */
int rec_setup_new(uv_loop_t *loop, const spec_config *cfg, const rec_setup_opts *opts,
                  rec_setup **ret, char **ret_error);
/* Starts closing the setup: its client stops (pending calls end with -ECANCELED) and, from the
 * client's last close callback, the setup frees itself (credentials wiped), then on_closed(ud)
 * runs when not NULL (the daemon frees the config a retired setup borrowed there). s must not be
 * used afterwards; run the loop so the close completes. Accepts NULL. */
void rec_setup_close(rec_setup *s, void (*on_closed)(void *ud), void *ud);

/* "API calls: 3 ListCustomImages, 2 CreateCustomImage; 0 throttled" (malloc'd). */
char *rec_setup_calls_summary(const rec_setup *s);
/* The account id of the credentials, as learned before the first API call (config account_id, a
 * role ARN, the account_ids cache or GetCallerIdentity); NULL before the first call or when it
 * could not be learned. cmd/cmd_plan.c records it in a saved plan, which apply then refuses to
 * run with credentials of another account. Borrowed from s. */
const char *rec_setup_account_id(const rec_setup *s);
unsigned rec_setup_throttled(const rec_setup *s);

/* Runs one cycle to completion on loop with the setup's client and pacer: plan (execute false)
 * and apply (execute true). SIGINT/SIGTERM stop it gracefully (calls in flight finish and are
 * journaled). opts->cfg, client, pacer, access_key_id and state_dir are filled from s; the rest
 * is the caller's. Returns 0 and *ret (free with rec_cycle_result_free), or a negative errno. */
int rec_setup_run_cycle(uv_loop_t *loop, rec_setup *s, rec_cycle_opts *opts,
                        rec_cycle_result **ret);

/* Makes dir and its parents (mode 0700 for the ones it creates). Returns 0 or -errno. */
int rec_mkdir_p(const char *dir);

#endif
