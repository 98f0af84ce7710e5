/* imgrecon validate: loads the config (when given or present) and the manifests, prints every
 * diagnostic as file:line:col: message, and changes nothing. Exit 0 valid, 1 invalid. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "cmd_session.h"
#include "spec.h"

enum { OPT_STRICT = CMD_OPT_LOCAL, OPT_METRICS_ALLOW_REMOTE };

static const struct option validate_options[] = {
    {"strict", no_argument, NULL, OPT_STRICT},
    {"metrics-allow-remote", no_argument, NULL, OPT_METRICS_ALLOW_REMOTE},
};

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: imgrecon validate [-f PATH]... [-c CONFIG] [--strict] [--metrics-allow-remote]\n\n"
        "Checks the config file and the manifests (every *.yaml / *.yml under each PATH,\n"
        "recursively) and reports every problem as file:line:col: message. Makes no API\n"
        "call. Exit 0 when everything is valid, 1 otherwise.\n\n"
        "  --strict                 warnings are errors (a region that is not a known Simple\n"
        "                           Application Server region, in manifests or quotas)\n"
        "  --metrics-allow-remote   accept a metrics_listen that is not loopback, as\n"
        "                           `run --metrics-allow-remote` does\n");
    cmd_print_common_help(out, CMD_USES_VALIDATE);
}

static const char *plural(size_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

typedef struct validate_args {
    bool strict;       /* --strict */
    bool allow_remote; /* --metrics-allow-remote */
} validate_args;

/* validate's own options, for cmd_parse_options. */
static int validate_option(void *ud, int opt, const char *arg)
{
    validate_args *a = ud;
    (void)arg;
    if (opt == OPT_STRICT)
        a->strict = true;
    else if (opt == OPT_METRICS_ALLOW_REMOTE)
        a->allow_remote = true;
    else
        return -EINVAL;
    return 0;
}

/* Parses validate's arguments; returns 0 to go on, 1 or 2 (help printed: exit 0) to stop. */
static int parse_args(cmd_ctx *ctx, int argc, char **argv, validate_args *a)
{
    const cmd_args args = {"validate",
                           usage,
                           validate_options,
                           sizeof(validate_options) / sizeof(validate_options[0]),
                           validate_option,
                           a,
                           0};
    cmd_args_result parsed = cmd_parse_args(ctx, argc, argv, &args);
    return parsed == CMD_ARGS_GO ? 0 : parsed == CMD_ARGS_HELP ? 2 : 1;
}

int cmd_validate(cmd_ctx *ctx, int argc, char **argv)
{
    validate_args a = {0};
    int stop = parse_args(ctx, argc, argv, &a);
    if (stop != 0)
        return stop == 2 ? 0 : 1;
    /* A config error is reported and the manifests are still checked: every error in one run. */
    bool config_ok = cmd_load_config(ctx) == 0;
    size_t n_errors = 0;

    spec_diags errors, warnings;
    spec_diags_init(&errors);
    spec_diags_init(&warnings);
    if (config_ok) /* its errors (file unreadable, metrics_listen) are counted from the diags */
        (void)spec_config_lint(&ctx->cfg, cmd_config_path(ctx), a.allow_remote, &errors, &warnings);
    size_t n_paths;
    const char *const *paths = cmd_manifest_paths(ctx, &n_paths);
    spec_set *set = NULL;
    int rc = n_paths > 0 ? spec_load(paths, n_paths, &set, &errors) : -EINVAL;
    if (set != NULL)
        spec_set_lint(set, &warnings);
    cmd_print_diags(ctx, &errors, false);
    cmd_print_diags(ctx, &warnings, !a.strict); /* --strict: warnings are errors */
    n_errors += errors.n + (a.strict ? warnings.n : 0);
    size_t n_warnings = a.strict ? 0 : warnings.n;
    spec_diags_clear(&errors);
    spec_diags_clear(&warnings);
    if (rc < 0 || !config_ok || n_errors > 0) {
        if (!ctx->quiet && cmd_log_json(ctx))
            cmd_error(ctx, "validation failed: %s%zu %s",
                      config_ok ? "" : "the config has errors; ", n_errors,
                      plural(n_errors, "error", "errors"));
        else if (!ctx->quiet && config_ok)
            fprintf(stderr, "%zu %s\n", n_errors, plural(n_errors, "error", "errors"));
        else if (!ctx->quiet)
            fprintf(stderr, "the config has errors; %zu more in the manifests\n", n_errors);
        spec_set_free(set);
        return 1;
    }
    if (!ctx->quiet) {
        printf("ok: %zu %s, %zu ECS %s in %zu %s from %zu %s", set->n_images,
               plural(set->n_images, "image", "images"), set->n_ecs,
               plural(set->n_ecs, "image", "images"), set->n_regions,
               plural(set->n_regions, "region", "regions"), set->n_files,
               plural(set->n_files, "file", "files"));
        if (n_warnings > 0)
            printf(" (%zu %s)", n_warnings, plural(n_warnings, "warning", "warnings"));
        printf("\n");
    }
    spec_set_free(set);
    return 0;
}
