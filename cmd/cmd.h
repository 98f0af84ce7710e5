/* The CLI's shared frame: common options, config loading, and the subcommand table. Each
 * subcommand lives in cmd/cmd_<name>.c and only parses its arguments and wires core calls. */
#ifndef CMD_H
#define CMD_H

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

#include "rec_log.h"
#include "spec_config.h"

typedef struct cmd_ctx {
    const char *prog;
    const char *config_path; /* -c; NULL: /etc/imgrecon/config.yaml when it exists */
    const char *config_used; /* the config file cmd_load_config read; NULL: none */
    bool no_default_config;  /* apply PLANFILE made without a config: do not read the default */
    const char **files;      /* -f PATH, repeatable; empty: config manifests */
    size_t n_files;
    const char *endpoint;  /* --endpoint, else IMGRECON_ENDPOINT, else config */
    const char *profile;   /* --profile */
    const char *state_dir; /* --state-dir */
    const char **rates;    /* --rate-limit, repeatable, applied in order */
    size_t n_rates;
    const char *allow_empty; /* --allow-empty true|false|REGION,... */
    const char *log_format;  /* --log-format */
    bool allow_insecure;     /* --allow-insecure-endpoint (config allow_insecure_endpoint) */
    int verbose;             /* -v count */
    bool quiet;              /* -q */
    bool no_color;           /* --no-color or NO_COLOR set */
    bool wait_live;          /* plan/apply: show rate-limit waits on stderr (a terminal) */
    bool wait_shown;         /* that line is on screen */
    spec_config cfg;         /* defaults, then the file, then the flags */
} cmd_ctx;

/* Long options every subcommand accepts; subcommands append their own. The `val` of each common
 * option is >= CMD_OPT_BASE or one of 'c', 'f', 'v', 'q', 'h'. */
enum {
    CMD_OPT_BASE = 1000,
    CMD_OPT_ENDPOINT,
    CMD_OPT_PROFILE,
    CMD_OPT_STATE_DIR,
    CMD_OPT_RATE_LIMIT,
    CMD_OPT_LOG_FORMAT,
    CMD_OPT_NO_COLOR,
    CMD_OPT_ALLOW_INSECURE,
    CMD_OPT_ALLOW_EMPTY,
    CMD_OPT_LOCAL /* subcommands number their own options from here */
};
#define CMD_COMMON_SHORTOPTS "c:f:vqh"

/* The common options a command uses, as bits: its --help lists only these. Every command still
 * accepts (and ignores) the others, so a wrapper or test harness can pass one set of options
 * to any command. -h/--help is always listed. */
enum {
    CMD_USE_CONFIG = 1u << 0,       /* -c */
    CMD_USE_FILES = 1u << 1,        /* -f */
    CMD_USE_ENDPOINT = 1u << 2,     /* --endpoint, --allow-insecure-endpoint */
    CMD_USE_PROFILE = 1u << 3,      /* --profile */
    CMD_USE_STATE_DIR = 1u << 4,    /* --state-dir */
    CMD_USE_RATE_LIMIT = 1u << 5,   /* --rate-limit */
    CMD_USE_LOG_FORMAT = 1u << 6,   /* --log-format */
    CMD_USE_VERBOSE = 1u << 7,      /* -v */
    CMD_USE_QUIET = 1u << 8,        /* -q */
    CMD_USE_COLOR = 1u << 9,        /* --no-color */
    CMD_USE_ALLOW_EMPTY = 1u << 10, /* --allow-empty */
};
/* What a session against the API needs: credentials, endpoint, pacing and state. */
#define CMD_USES_SESSION                                                                           \
    (CMD_USE_CONFIG | CMD_USE_ENDPOINT | CMD_USE_PROFILE | CMD_USE_STATE_DIR |                     \
     CMD_USE_RATE_LIMIT | CMD_USE_LOG_FORMAT | CMD_USE_VERBOSE)
/* Each command's set, named by its usage(). A command that starts honouring another common
 * option adds its bit here. */
#define CMD_USES_VALIDATE                                                                          \
    (CMD_USE_CONFIG | CMD_USE_FILES | CMD_USE_ENDPOINT | CMD_USE_RATE_LIMIT | CMD_USE_QUIET |      \
     CMD_USE_LOG_FORMAT)
#define CMD_USES_PLAN                                                                              \
    (CMD_USES_SESSION | CMD_USE_FILES | CMD_USE_QUIET | CMD_USE_COLOR | CMD_USE_ALLOW_EMPTY)
#define CMD_USES_APPLY                                                                             \
    (CMD_USES_SESSION | CMD_USE_FILES | CMD_USE_QUIET | CMD_USE_COLOR | CMD_USE_ALLOW_EMPTY)
#define CMD_USES_RUN (CMD_USES_SESSION | CMD_USE_FILES | CMD_USE_QUIET | CMD_USE_ALLOW_EMPTY)
/* import: -f only names regions to read (the manifests are not otherwise used). */
#define CMD_USES_IMPORT (CMD_USES_SESSION | CMD_USE_FILES | CMD_USE_QUIET)
#define CMD_USES_STATUS (CMD_USE_CONFIG | CMD_USE_STATE_DIR | CMD_USE_LOG_FORMAT)
#define CMD_USES_API CMD_USES_SESSION
#define CMD_USES_NOTIFY (CMD_USE_CONFIG | CMD_USE_LOG_FORMAT)
extern const struct option cmd_common_options[];
extern const size_t cmd_n_common_options;

/* Builds "common + extra" into a malloc'd array terminated by a zero entry. */
struct option *cmd_options(const struct option *extra, size_t n_extra);
/* Handles one common option from getopt_long. Returns 0 when handled, -ENOENT when opt is not a
 * common option, or -EINVAL / -ENOMEM on error (message printed). */
int cmd_common_option(cmd_ctx *ctx, int opt, const char *arg);
/* Loads the config file (explicit -c must exist) and applies the flags over it. Prints every
 * diagnostic as file:line:col and returns 0 or a negative errno. */
int cmd_load_config(cmd_ctx *ctx);
/* Applies --endpoint / IMGRECON_ENDPOINT and --allow-insecure-endpoint over cfg and checks the
 * endpoint a request would use (spec_check_endpoint). Shared by cmd_load_config and the daemon's
 * reload. Returns 0, -ENOMEM, or -EINVAL with the problem in diags. */
int cmd_apply_endpoint(const cmd_ctx *ctx, spec_config *cfg, spec_diags *diags);
/* Describes why spec_config_set_rate(arg) returned rc (-EINVAL or -ENOENT) in buf, without the
 * "--rate-limit" prefix: the expected shape, or the unknown action with a suggestion. */
void cmd_rate_message(const char *arg, int rc, char *buf, size_t size);
/* The config file in use: -c, else /etc/imgrecon/config.yaml when it exists, else NULL. */
const char *cmd_config_path(const cmd_ctx *ctx);
/* Manifest paths to load: -f if given, else the config's manifests. */
const char *const *cmd_manifest_paths(const cmd_ctx *ctx, size_t *ret_n);
/* Prints the "Common options" help text: only the options in uses (CMD_USES_<COMMAND>). */
void cmd_print_common_help(FILE *out, unsigned uses);
/* True when --log-format json was given: cmd_error, cmd_note and cmd_print_diags then write
 * JSON log lines (the daemon's format, reconcile/daemon/rec_log.h) instead of text. */
bool cmd_log_json(const cmd_ctx *ctx);
/* Prints "prog: message" to stderr, or a JSON line with level error ("warning: ..." messages:
 * level warn). */
void cmd_error(const cmd_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* One JSON log line on stderr with fields (kv: n_kv key/value pairs, NULL values left out),
 * for a command's own structured lines under --log-format json. */
void cmd_json_line(rec_log_level level, const char *msg, const char *const *kv, size_t n_kv);
/* An informational message ("prog: message" or a JSON line with level info) on stderr. */
void cmd_note(const cmd_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints diagnostics on stderr: "file:line:col: message" ("warning: " before the message when
 * warnings is set), or JSON lines with level error/warn and file, line, col fields. */
void cmd_print_diags(const cmd_ctx *ctx, const spec_diags *d, bool warnings);
/* rec_setup_opts.on_wait for plan and apply (ud: the cmd_ctx): while ctx->wait_live, one
 * updating line on stderr, "waiting for the rate limit: next ListCustomImages call in 12s". */
void cmd_wait_line(void *ud, const char *action, uint64_t wait_ms);
/* Removes that line (before other output). */
void cmd_wait_clear(cmd_ctx *ctx);
/* rec_setup_opts.on_cred_error for the one-shot commands (ud: the cmd_ctx): a warning on
 * stderr. */
void cmd_cred_warning(void *ud, const char *msg);
void cmd_ctx_clear(cmd_ctx *ctx);

/* Subcommands: argv[0] is the subcommand name; getopt state is reset by the dispatcher. */
int cmd_validate(cmd_ctx *ctx, int argc, char **argv);
int cmd_plan(cmd_ctx *ctx, int argc, char **argv);
int cmd_apply(cmd_ctx *ctx, int argc, char **argv);
int cmd_run(cmd_ctx *ctx, int argc, char **argv);
int cmd_status(cmd_ctx *ctx, int argc, char **argv);
int cmd_api(cmd_ctx *ctx, int argc, char **argv);
int cmd_import(cmd_ctx *ctx, int argc, char **argv);
int cmd_notify_test(cmd_ctx *ctx, int argc, char **argv);

#endif
