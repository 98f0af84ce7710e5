/* The bracket every command that talks to the API shares (plan, apply, api; import later):
 * options parsed into the cmd_ctx, the config and manifests loaded, an event loop and a
 * rec_setup opened, the command's work run, then the setup closed and the loop drained and
 * closed. Each step prints its own errors, so a command only maps failure to exit status 1. */
#ifndef CMD_SESSION_H
#define CMD_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <uv.h>

#include "cmd.h"
#include "rec_setup.h"
#include "spec.h"

/* A command's own option (one it listed in extra): 0, or a negative errno for a usage error
 * (the handler prints the reason when there is one). */
typedef int (*cmd_option_fn)(void *ud, int opt, const char *arg);

/* Parses argv with getopt_long: common options into ctx, the others to on_option (NULL: none
 * accepted). -h/--help stops parsing with *ret_help set (print usage to stdout, exit 0).
 * Returns 0, -EINVAL on a usage error (the caller prints usage to stderr) or -ENOMEM. Operands
 * start at optind afterwards. */
int cmd_parse_options(cmd_ctx *ctx, int argc, char **argv, const struct option *extra,
                      size_t n_extra, cmd_option_fn on_option, void *ud, bool *ret_help);

/* A command's arguments, for cmd_parse_args. */
typedef struct cmd_args {
    const char *name;           /* the command, for "NAME: unexpected argument 'x'" */
    void (*usage)(FILE *out);   /* its usage text */
    const struct option *extra; /* its own options (NULL: none) */
    size_t n_extra;
    cmd_option_fn on_option; /* their handler (NULL: none) */
    void *ud;                /* for on_option */
    size_t max_operands;     /* operands allowed after the options */
} cmd_args;

typedef enum cmd_args_result {
    CMD_ARGS_GO,    /* run the command; its operands start at optind */
    CMD_ARGS_HELP,  /* --help: usage printed to stdout, exit 0 */
    CMD_ARGS_ERROR, /* a usage error: the reason and usage printed to stderr, exit 1 */
} cmd_args_result;

/* cmd_parse_options plus what every command does with its result alike: usage on --help, the
 * reason and usage on a bad option or an operand too many. The commands without their own
 * operand rules call it (validate, plan, apply, import, status, notify-test). */
cmd_args_result cmd_parse_args(cmd_ctx *ctx, int argc, char **argv, const cmd_args *a);

typedef struct cmd_session_opts {
    bool load_manifests;      /* load the desired state into the session's desired */
    const char *const *paths; /* manifests to load; NULL: cmd_manifest_paths */
    size_t n_paths;
    bool state_dir_explicit; /* never fall back to another state directory (besides --state-dir) */
    const char *method;      /* HTTP method of every call; NULL: POST */
    void (*on_call)(void *ud, const prov_call_event *ev); /* ud: the cmd_ctx; may be NULL */
    /* A call waiting for the rate limit (rec_setup_opts.on_wait); ud: the cmd_ctx; may be NULL. */
    void (*on_wait)(void *ud, const char *action, uint64_t wait_ms);
} cmd_session_opts;

typedef struct cmd_session {
    cmd_ctx *ctx; /* borrowed */
    uv_loop_t loop;
    bool loop_open;
    rec_setup *setup;  /* owned; closed by cmd_session_close */
    spec_set *desired; /* owned; NULL unless opts.load_manifests */
} cmd_session;

/* After cmd_load_config: loads the manifests (diagnostics printed as file:line:col), opens the
 * loop and the setup (its note printed). Returns 0 or a negative errno (message printed); on
 * failure the session is already closed. */
int cmd_session_open(cmd_session *s, cmd_ctx *ctx, const cmd_session_opts *opts);
/* Closes the setup, runs the loop until every handle has closed, closes the loop and frees the
 * manifests. Returns 0, or -EBUSY when handles were left open (message printed). Accepts a
 * session that failed to open. */
int cmd_session_close(cmd_session *s);

#endif
