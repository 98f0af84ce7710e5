/* `imgrecon run`: the long-running reconciler (reconcile/README.md "Daemon"). One libuv loop runs a
 * cycle (rec_cycle, the same code path as `apply --auto-approve`) every interval with ±10% jitter,
 * at once when a manifest changes (uv_fs_event on the manifest directories, debounced, re-armed
 * after every change so git's rename dance is followed), and on SIGHUP after a validated reload.
 * SIGTERM/SIGINT stop starting calls, wait (bounded) for the call in flight, write status.json
 * and exit 0. Around it: the single-writer lock, sd_notify, the metrics endpoint, status.json,
 * per-item failure backoff and the suspend switch. cmd/cmd_run.c only parses arguments. */
#ifndef REC_DAEMON_H
#define REC_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rec_log.h"
#include "spec_config.h"
#include "spec_diag.h"

/* Builds a fresh config (defaults, the config file, then the command-line flags) into *cfg, which
 * the callee initialises. Returns 0, or a negative errno with every problem in diags. Called at
 * start and on every SIGHUP. */
typedef int (*rec_daemon_load_config_fn)(void *ud, spec_config *cfg, spec_diags *diags);

typedef struct rec_daemon_opts {
    rec_daemon_load_config_fn load_config;
    void *load_ud;
    const char *const *manifest_paths; /* -f PATH...; n 0: the config's manifests */
    size_t n_manifest_paths;
    uint64_t interval_ms;      /* --interval; 0: the config's interval */
    bool once;                 /* one cycle, then exit (0 when it converged, else 1) */
    bool state_dir_explicit;   /* --state-dir given */
    bool metrics_allow_remote; /* serve metrics on a non-loopback address */
    uint64_t stop_timeout_ms;  /* how long SIGTERM waits for the call in flight; 0: 30 s */
    uint64_t debounce_ms;      /* manifest change debounce; 0: 500 ms */
    uint64_t backoff_cap_ms;   /* largest per-item backoff; 0: 1 h */
    rec_log *log;              /* borrowed; every event goes here */
} rec_daemon_opts;

/* Runs the daemon until stopped (or one cycle with once). Returns the process exit code: 0 after
 * a clean stop (or a converged --once), 1 on a startup error (invalid config or manifests,
 * another daemon holding the lock, no credentials), already logged. */
int rec_daemon_run(const rec_daemon_opts *opts);

#endif
