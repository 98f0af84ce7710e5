/* The CLI's shared frame: common options, config loading, and the subcommand table. Each
 * subcommand lives in cmd/cmd_<name>.c and only parses its arguments and wires core calls. */
#ifndef CMD_H
#define CMD_H

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

#include "spec_config.h"

typedef struct cmd_ctx {
    const char *prog;
    const char *config_path; /* -c; NULL: /etc/imgrecon/config.yaml when it exists */
    const char **files;      /* -f PATH, repeatable; empty: config manifests */
    size_t n_files;
    const char *endpoint;  /* --endpoint, else IMGRECON_ENDPOINT, else config */
    const char *profile;   /* --profile */
    const char *state_dir; /* --state-dir */
    const char **rates;    /* --rate-limit, repeatable, applied in order */
    size_t n_rates;
    const char *log_format; /* --log-format */
    int verbose;            /* -v count */
    bool quiet;             /* -q */
    bool no_color;          /* --no-color or NO_COLOR set */
    spec_config cfg;        /* defaults, then the file, then the flags */
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
    CMD_OPT_LOCAL /* subcommands number their own options from here */
};
#define CMD_COMMON_SHORTOPTS "c:f:vqh"
extern const struct option cmd_common_options[];
extern const size_t cmd_n_common_options;

/* Builds "common + extra" into a malloc'd array terminated by a zero entry. */
struct option *cmd_options(const struct option *extra, size_t n_extra);
/* Handles one common option from getopt_long. Returns 1 if handled, 0 if not a common option,
 * -1 on error (message printed). */
int cmd_common_option(cmd_ctx *ctx, int opt, const char *arg);
/* Loads the config file (explicit -c must exist) and applies the flags over it. Prints every
 * diagnostic as file:line:col and returns 0 or -1. */
int cmd_load_config(cmd_ctx *ctx);
/* Manifest paths to load: -f if given, else the config's manifests. */
const char *const *cmd_manifest_paths(const cmd_ctx *ctx, size_t *ret_n);
/* Prints "Common options" help text. */
void cmd_print_common_help(FILE *out);
/* Prints "prog: message" to stderr. */
void cmd_error(const cmd_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cmd_ctx_free(cmd_ctx *ctx);

/* Subcommands: argv[0] is the subcommand name; getopt state is reset by the dispatcher. */
int cmd_validate(cmd_ctx *ctx, int argc, char **argv);
int cmd_plan(cmd_ctx *ctx, int argc, char **argv);
int cmd_apply(cmd_ctx *ctx, int argc, char **argv);
int cmd_run(cmd_ctx *ctx, int argc, char **argv);
int cmd_status(cmd_ctx *ctx, int argc, char **argv);
int cmd_api(cmd_ctx *ctx, int argc, char **argv);
int cmd_notify_test(cmd_ctx *ctx, int argc, char **argv);

#endif
