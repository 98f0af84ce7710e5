/* imgrecon validate: loads the config (when given or present) and the manifests, prints every
 * diagnostic as file:line:col: message, and changes nothing. Exit 0 valid, 1 invalid. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "spec.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: imgrecon validate [-f PATH]... [-c CONFIG]\n\n"
                 "Checks the config file and the manifests (every *.yaml / *.yml under each PATH,\n"
                 "recursively) and reports every problem as file:line:col: message. Makes no API\n"
                 "call. Exit 0 when everything is valid, 1 otherwise.\n");
    cmd_print_common_help(out);
}

static const char *plural(size_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

int cmd_validate(cmd_ctx *ctx, int argc, char **argv)
{
    struct option *opts = cmd_options(NULL, 0);
    if (opts == NULL) {
        cmd_error(ctx, "out of memory");
        return 1;
    }
    int opt, bad = 0;
    while ((opt = getopt_long(argc, argv, CMD_COMMON_SHORTOPTS, opts, NULL)) != -1) {
        if (opt == 'h') {
            free(opts);
            usage(stdout);
            return 0;
        }
        int h = cmd_common_option(ctx, opt, optarg);
        if (h <= 0)
            bad = 1;
    }
    free(opts);
    if (bad || optind < argc) {
        if (optind < argc)
            cmd_error(ctx, "validate: unexpected argument '%s'", argv[optind]);
        usage(stderr);
        return 1;
    }
    if (cmd_load_config(ctx) < 0)
        return 1;

    size_t n_paths;
    const char *const *paths = cmd_manifest_paths(ctx, &n_paths);
    spec_diags diags;
    spec_diags_init(&diags);
    spec_set *set = NULL;
    int rc = spec_load(paths, n_paths, &set, &diags);
    spec_diags_print(&diags, stderr);
    size_t n_diags = diags.n;
    spec_diags_free(&diags);
    if (rc < 0) {
        if (!ctx->quiet)
            fprintf(stderr, "%zu %s\n", n_diags, plural(n_diags, "error", "errors"));
        return 1;
    }
    if (!ctx->quiet)
        printf("ok: %zu %s, %zu ECS %s in %zu %s from %zu %s\n", set->n_images,
               plural(set->n_images, "image", "images"), set->n_ecs,
               plural(set->n_ecs, "image", "images"), set->n_regions,
               plural(set->n_regions, "region", "regions"), set->n_files,
               plural(set->n_files, "file", "files"));
    spec_set_free(set);
    return 0;
}
