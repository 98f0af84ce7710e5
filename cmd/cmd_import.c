/* imgrecon import: write the account's custom images as manifests (cmd/README.md; README.md
 * "Bring an existing account under management"). Argument parsing and wiring only; what is
 * written lives in reconcile/exec/rec_import.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "cmd_session.h"
#include "rec_import.h"
#include "rec_observe.h"
#include "rec_regions.h"
#include "rec_setup.h"
#include "spec.h"
#include "spec_rules.h"

enum { OPT_REGION = CMD_OPT_LOCAL, OPT_ALL_REGIONS, OPT_OUT, OPT_FORCE };

static void usage(FILE *out)
{
    fprintf(out,
            "usage: imgrecon import [--region R]... [--all-regions] [--out DIR|-] [--force]\n\n"
            "Writes the account's custom images as manifests, one per region: this owner's\n"
            "images as they are, images without an owner tag with 'adopt: true', everything\n"
            "else as comments. Changes nothing in the account.\n\n"
            "  --region R      a region to import (repeatable)\n"
            "  --all-regions   every region SWAS ListRegions names\n"
            "  --out DIR|-     write DIR/<region>.yaml (default: .), or '-' for stdout\n"
            "  --force         overwrite existing files in DIR\n"
            "Without --region and --all-regions: the regions of the -f manifests, the config's\n"
            "'regions' and the regions remembered in the state directory.\n");
    cmd_print_common_help(out, CMD_USES_IMPORT);
}

typedef struct import_args {
    cmd_ctx *ctx;         /* borrowed, for messages */
    const char **regions; /* --region, borrowed from argv */
    size_t n_regions;
    bool all_regions;
    const char *out;
    bool force;
} import_args;

/* import's own options, for cmd_parse_options. */
static int import_option(void *ud, int opt, const char *arg)
{
    import_args *a = ud;
    switch (opt) {
    case OPT_REGION:
        if (!spec_region_valid(arg)) {
            cmd_error(a->ctx, "import: --region '%s' is not a region id (such as cn-hangzhou)",
                      arg);
            return -EINVAL;
        }
        a->regions[a->n_regions++] = arg;
        return 0;
    case OPT_ALL_REGIONS:
        a->all_regions = true;
        return 0;
    case OPT_OUT:
        a->out = arg;
        return 0;
    case OPT_FORCE:
        a->force = true;
        return 0;
    default:
        return -EINVAL;
    }
}

/* Parses the arguments; 0 to go on, 1 for a usage error, 2 after --help. a->regions: caller
 * frees, also when parsing stops. */
static int parse_args(cmd_ctx *ctx, int argc, char **argv, import_args *a)
{
    static const struct option extra[] = {
        {"region", required_argument, NULL, OPT_REGION},
        {"all-regions", no_argument, NULL, OPT_ALL_REGIONS},
        {"out", required_argument, NULL, OPT_OUT},
        {"force", no_argument, NULL, OPT_FORCE},
    };
    a->ctx = ctx;
    a->regions = calloc((size_t)argc, sizeof(*a->regions));
    if (a->regions == NULL) {
        cmd_error(ctx, "out of memory");
        return 1;
    }
    const cmd_args args = {"import",      usage, extra, sizeof(extra) / sizeof(extra[0]),
                           import_option, a,     0};
    cmd_args_result parsed = cmd_parse_args(ctx, argc, argv, &args);
    return parsed == CMD_ARGS_GO ? 0 : parsed == CMD_ARGS_HELP ? 2 : 1;
}

/* Without --region and --all-regions: the regions of -f manifests (the config's manifests are
 * not read: they may be the very directory being written), config `regions` (`all` asks
 * ListRegions) and the remembered ones. Returns 0 or -1 (message printed). */
static int default_regions(cmd_ctx *ctx, const rec_setup *setup, rec_region_list *l,
                           bool *all_regions)
{
    int rc = 0;
    if (ctx->n_files > 0) {
        spec_diags diags;
        spec_diags_init(&diags);
        spec_set *set = NULL;
        rc = spec_load(ctx->files, ctx->n_files, &set, &diags);
        spec_diags_print(&diags, stderr);
        spec_diags_clear(&diags);
        for (size_t i = 0; rc == 0 && i < set->n_regions; i++)
            rc = rec_region_list_add(l, set->regions[i]) < 0 ? -ENOMEM : 0;
        spec_set_free(set);
        if (rc < 0)
            return -1;
    }
    for (size_t i = 0; rc == 0 && i < ctx->cfg.n_regions; i++)
        rc = rec_region_list_add(l, ctx->cfg.regions[i]) < 0 ? -ENOMEM : 0;
    *all_regions = ctx->cfg.regions_all;
    rec_region_list remembered = {0};
    char *why = NULL;
    if (rc == 0)
        rc = rec_regions_load(setup->state_dir, ctx->cfg.owner, &remembered, &why);
    for (size_t i = 0; rc == 0 && i < remembered.n; i++)
        rc = rec_region_list_add(l, remembered.v[i]) < 0 ? -ENOMEM : 0;
    rec_region_list_clear(&remembered);
    if (rc < 0) {
        cmd_error(ctx, "cannot read the remembered regions: %s", why ? why : strerror(-rc));
        free(why);
        return -1;
    }
    if (l->n == 0 && !*all_regions) {
        cmd_error(ctx, "import: no region to read: give --region R (repeatable) or "
                       "--all-regions");
        return -1;
    }
    return 0;
}

/* Observes and writes; returns the exit code. */
static int run_import(cmd_ctx *ctx, uv_loop_t *loop, rec_setup *setup, const import_args *a)
{
    rec_region_list dflt = {0};
    rec_import_regions regions = {a->regions, a->n_regions, a->all_regions};
    if (a->n_regions == 0 && !a->all_regions) {
        if (default_regions(ctx, setup, &dflt, &regions.all_regions) < 0)
            return 1;
        regions.v = (const char *const *)dflt.v;
        regions.n = dflt.n;
    }
    rec_observed *obs = NULL;
    char *err = NULL;
    int rc = rec_import_observe(loop, setup, &regions, &obs, &err);
    rec_region_list_clear(&dflt);
    if (rc < 0) {
        cmd_error(ctx, "import failed: %s", err ? err : strerror(-rc));
        free(err);
        return 1;
    }
    rec_import_counts counts = {0};
    const char *out = a->out ? a->out : ".";
    if (strcmp(out, "-") == 0)
        rc = rec_import_write_stream(obs, &ctx->cfg, stdout, &counts);
    else
        rc = rec_import_write_dir(obs, &ctx->cfg, out, a->force, &counts, &err);
    rec_observed_free(obs);
    if (rc < 0) {
        cmd_error(ctx, "import: %s", err ? err : strerror(-rc));
        free(err);
        return 1;
    }
    bool to_stdout = strcmp(out, "-") == 0;
    if (!ctx->quiet)
        fprintf(stderr,
                "imgrecon: imported %zu region%s%s%s: %zu image%s of owner %s, %zu to adopt, "
                "%zu as comments only. Review, then run 'imgrecon plan -f %s'.\n",
                counts.regions, counts.regions == 1 ? "" : "s", to_stdout ? "" : " into ",
                to_stdout ? "" : out, counts.owned, counts.owned == 1 ? "" : "s", ctx->cfg.owner,
                counts.adopted, counts.skipped, to_stdout ? "FILE" : out);
    /* Owned images left as comments are undeclared once these manifests are applied: with
     * prune they would be deleted. Said even with -q: it is about what the next apply does. */
    if (counts.owned_skipped > 0 && ctx->cfg.prune)
        fprintf(stderr,
                "imgrecon: warning: %zu image%s tagged for owner %s %s written as comments only "
                "(failed, invalid or duplicate name); the config has prune: true, so applying "
                "these manifests would delete %s. Declare %s by hand or set prune: false "
                "first.\n",
                counts.owned_skipped, counts.owned_skipped == 1 ? "" : "s", ctx->cfg.owner,
                counts.owned_skipped == 1 ? "is" : "are", counts.owned_skipped == 1 ? "it" : "them",
                counts.owned_skipped == 1 ? "it" : "them");
    return 0;
}

int cmd_import(cmd_ctx *ctx, int argc, char **argv)
{
    import_args a = {0};
    int prc = parse_args(ctx, argc, argv, &a);
    if (prc != 0) {
        free(a.regions);
        return prc == 2 ? 0 : 1;
    }
    if (cmd_load_config(ctx) < 0) {
        free(a.regions);
        return 1;
    }
    /* The session bracket (cmd_session.c): loop and setup; import reads no manifests of its
     * own (its -f paths only name regions, see run_import). */
    cmd_session_opts so = {.state_dir_explicit = ctx->state_dir != NULL};
    cmd_session s;
    int exit_code = 1;
    if (cmd_session_open(&s, ctx, &so) == 0) {
        exit_code = run_import(ctx, &s.loop, s.setup, &a);
        if (ctx->verbose > 0) {
            char *calls = rec_setup_calls_summary(s.setup);
            if (calls != NULL)
                fprintf(stderr, "imgrecon: %s\n", calls);
            free(calls);
        }
    }
    if (cmd_session_close(&s) < 0)
        exit_code = 1;
    free(a.regions);
    return exit_code;
}
