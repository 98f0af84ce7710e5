/* Common options and config loading shared by every subcommand. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "spec_known.h"
#include "rec_escape.h"
#include "prov_str.h"

#define DEFAULT_CONFIG "/etc/imgrecon/config.yaml"

const struct option cmd_common_options[] = {
    {"config", required_argument, NULL, 'c'},
    {"file", required_argument, NULL, 'f'},
    {"verbose", no_argument, NULL, 'v'},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {"endpoint", required_argument, NULL, CMD_OPT_ENDPOINT},
    {"profile", required_argument, NULL, CMD_OPT_PROFILE},
    {"state-dir", required_argument, NULL, CMD_OPT_STATE_DIR},
    {"rate-limit", required_argument, NULL, CMD_OPT_RATE_LIMIT},
    {"log-format", required_argument, NULL, CMD_OPT_LOG_FORMAT},
    {"no-color", no_argument, NULL, CMD_OPT_NO_COLOR},
    {"allow-insecure-endpoint", no_argument, NULL, CMD_OPT_ALLOW_INSECURE},
    {"allow-empty", required_argument, NULL, CMD_OPT_ALLOW_EMPTY},
};
const size_t cmd_n_common_options = sizeof(cmd_common_options) / sizeof(cmd_common_options[0]);

struct option *cmd_options(const struct option *extra, size_t n_extra)
{
    struct option *o = calloc(cmd_n_common_options + n_extra + 1, sizeof(*o));
    if (o == NULL)
        return NULL;
    memcpy(o, cmd_common_options, sizeof(cmd_common_options));
    if (n_extra > 0)
        memcpy(o + cmd_n_common_options, extra, n_extra * sizeof(*o));
    return o;
}

/* Every error message of the CLI. Messages carry text from the cloud (error codes, messages,
 * request ids, names) and from the command line, so the formatted message is printed through
 * rec_fputs_escaped: one line, and nothing in it drives the terminal. */
void cmd_error(const cmd_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    char *msg = NULL;
    fprintf(stderr, "%s: ", ctx->prog ? ctx->prog : "imgrecon");
    va_start(ap, fmt);
    int n = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        fputs("(out of memory formatting an error)", stderr);
    else
        (void)rec_fputs_escaped(msg, stderr);
    free(msg);
    fputc('\n', stderr);
}

void cmd_cred_warning(void *ud, const char *msg)
{
    cmd_error(ud, "warning: %s", msg);
}

/* Appends to a growable array of borrowed argv strings. */
static int push_arg(const char ***arr, size_t *n, const char *s)
{
    const char **grown = realloc(*arr, (*n + 1) * sizeof(**arr));
    if (grown == NULL)
        return -ENOMEM;
    grown[(*n)++] = s;
    *arr = grown;
    return 0;
}

int cmd_common_option(cmd_ctx *ctx, int opt, const char *arg)
{
    switch (opt) {
    case 'c':
        ctx->config_path = arg;
        return 0;
    case 'f':
        if (push_arg(&ctx->files, &ctx->n_files, arg) < 0) {
            cmd_error(ctx, "out of memory");
            return -ENOMEM;
        }
        return 0;
    case 'v':
        ctx->verbose++;
        return 0;
    case 'q':
        ctx->quiet = true;
        return 0;
    case CMD_OPT_ENDPOINT:
        ctx->endpoint = arg;
        return 0;
    case CMD_OPT_PROFILE:
        ctx->profile = arg;
        return 0;
    case CMD_OPT_STATE_DIR:
        ctx->state_dir = arg;
        return 0;
    case CMD_OPT_RATE_LIMIT:
        if (push_arg(&ctx->rates, &ctx->n_rates, arg) < 0) {
            cmd_error(ctx, "out of memory");
            return -ENOMEM;
        }
        return 0;
    case CMD_OPT_LOG_FORMAT:
        if (strcmp(arg, "text") != 0 && strcmp(arg, "json") != 0) {
            cmd_error(ctx, "--log-format must be text or json, not '%s'", arg);
            return -EINVAL;
        }
        ctx->log_format = arg;
        return 0;
    case CMD_OPT_NO_COLOR:
        ctx->no_color = true;
        return 0;
    case CMD_OPT_ALLOW_INSECURE:
        ctx->allow_insecure = true;
        return 0;
    case CMD_OPT_ALLOW_EMPTY:
        ctx->allow_empty = arg;
        return 0;
    default:
        return -ENOENT;
    }
}

void cmd_rate_message(const char *arg, int rc, char *buf, size_t size)
{
    size_t len = strcspn(arg, "=");
    char action[65];
    snprintf(action, sizeof(action), "%.*s", (int)(len < 64 ? len : 64), arg);
    const char *s = rc == -ENOENT ? spec_action_suggest(action) : NULL;
    if (rc != -ENOENT)
        snprintf(
            buf, size,
            "'%.64s': expected [ACTION=]N/DURATION such as 10/60s (at most %u calls in at most "
            "24h)",
            arg, SPEC_RATE_CALLS_MAX);
    else if (s != NULL)
        snprintf(buf, size, "'%.64s': unknown API action '%s'; did you mean '%s'?", arg, action, s);
    else
        snprintf(buf, size, "'%.64s': unknown API action '%s'", arg, action);
}

int cmd_apply_endpoint(const cmd_ctx *ctx, spec_config *cfg, spec_diags *diags)
{
    const char *env = getenv("IMGRECON_ENDPOINT");
    const char *endpoint = ctx->endpoint, *source = "--endpoint";
    if (endpoint == NULL && env != NULL && *env != '\0') {
        endpoint = env;
        source = "IMGRECON_ENDPOINT";
    }
    if (ctx->allow_insecure)
        cfg->allow_insecure_endpoint = true;
    if (endpoint == NULL || *endpoint == '\0') {
        /* The file's endpoint was checked at load, but the flag may have changed the verdict. */
        return 0;
    }
    if (prov_set_str(&cfg->endpoint, endpoint) < 0)
        return -ENOMEM;
    return spec_config_check_endpoint(cfg, source, diags);
}

const char *cmd_config_path(const cmd_ctx *ctx)
{
    if (ctx->config_path == NULL && !ctx->no_default_config && access(DEFAULT_CONFIG, F_OK) == 0)
        return DEFAULT_CONFIG;
    return ctx->config_path;
}

/* Reports an allocation failure for cmd_load_config; returns -ENOMEM. */
static int oom(const cmd_ctx *ctx)
{
    cmd_error(ctx, "out of memory");
    return -ENOMEM;
}

int cmd_load_config(cmd_ctx *ctx)
{
    spec_diags diags;
    int rc;

    if (spec_config_init(&ctx->cfg) < 0)
        return oom(ctx);
    const char *path = cmd_config_path(ctx);
    ctx->config_used = path;
    ctx->cfg.allow_insecure_endpoint = ctx->allow_insecure; /* the file cannot undo the flag */
    if (path != NULL) {
        spec_diags_init(&diags);
        rc = spec_config_load(&ctx->cfg, path, &diags);
        spec_diags_print(&diags, stderr);
        spec_diags_clear(&diags);
        if (rc < 0)
            return rc;
    }
    spec_diags_init(&diags);
    rc = cmd_apply_endpoint(ctx, &ctx->cfg, &diags);
    spec_diags_print(&diags, stderr);
    spec_diags_clear(&diags);
    if (rc == -ENOMEM)
        return oom(ctx);
    if (rc < 0)
        return rc;
    if (ctx->profile && prov_set_str(&ctx->cfg.profile, ctx->profile) < 0)
        return oom(ctx);
    if (ctx->state_dir && prov_set_str(&ctx->cfg.state_dir, ctx->state_dir) < 0)
        return oom(ctx);
    if (ctx->log_format)
        ctx->cfg.log_format = strcmp(ctx->log_format, "json") == 0 ? SPEC_LOG_JSON : SPEC_LOG_TEXT;
    for (size_t i = 0; i < ctx->n_rates; i++) {
        rc = spec_config_set_rate(&ctx->cfg, ctx->rates[i]);
        if (rc == -ENOMEM)
            return oom(ctx);
        if (rc < 0) {
            char msg[512];
            cmd_rate_message(ctx->rates[i], rc, msg, sizeof(msg));
            cmd_error(ctx, "--rate-limit %s", msg);
            return -EINVAL;
        }
    }
    if (ctx->allow_empty != NULL) {
        rc = spec_config_set_allow_empty(&ctx->cfg, ctx->allow_empty);
        if (rc == -ENOMEM)
            return oom(ctx);
        if (rc < 0) {
            cmd_error(ctx,
                      "--allow-empty '%s': expected true, false or region ids such as "
                      "cn-hangzhou,cn-shanghai",
                      ctx->allow_empty);
            return -EINVAL;
        }
    }
    const char *nc = getenv("NO_COLOR");
    if (nc != NULL && *nc != '\0')
        ctx->no_color = true;
    return 0;
}

const char *const *cmd_manifest_paths(const cmd_ctx *ctx, size_t *ret_n)
{
    if (ctx->n_files > 0) {
        *ret_n = ctx->n_files;
        return ctx->files;
    }
    *ret_n = ctx->cfg.n_manifests;
    return (const char *const *)ctx->cfg.manifests;
}

/* One line of the common options' help, shown when a command uses any of its bits. */
typedef struct help_line {
    unsigned bits;
    const char *text;
} help_line;

static const help_line common_help[] = {
    {CMD_USE_CONFIG,
     "  -c, --config FILE        config file (default " DEFAULT_CONFIG " when present)\n"},
    {CMD_USE_FILES, "  -f, --file PATH          manifest file or directory (repeatable)\n"},
    {CMD_USE_ENDPOINT, "      --endpoint URL       send every product to this base URL (env "
                       "IMGRECON_ENDPOINT)\n"},
    {CMD_USE_ENDPOINT, "      --allow-insecure-endpoint  allow http:// to a host that is not "
                       "loopback\n"},
    {CMD_USE_PROFILE, "      --profile NAME       credentials profile\n"},
    {CMD_USE_STATE_DIR, "      --state-dir DIR      state directory (pacer log, journal, "
                        "status)\n"},
    {CMD_USE_RATE_LIMIT, "      --rate-limit [ACTION=]N/DUR  call budget, e.g. 10/60s "
                         "(repeatable)\n"},
    {CMD_USE_LOG_FORMAT, "      --log-format text|json\n"},
    {CMD_USE_ALLOW_EMPTY, "      --allow-empty true|false|REGION,...  prune may empty these "
                          "regions\n"},
    {CMD_USE_VERBOSE, "  -v, --verbose            more detail (repeatable)\n"},
    {CMD_USE_QUIET, "  -q, --quiet              errors only\n"},
    {CMD_USE_COLOR, "      --no-color           no ANSI colour (also NO_COLOR)\n"},
};

/* Called by every command's usage() with its CMD_USES_* set, so --help lists only the common
 * options that command acts on. */
void cmd_print_common_help(FILE *out, unsigned uses)
{
    fputs("\nCommon options:\n", out);
    for (size_t i = 0; i < sizeof(common_help) / sizeof(common_help[0]); i++)
        if (uses & common_help[i].bits)
            fputs(common_help[i].text, out);
    fputs("  -h, --help               this help\n", out);
}

void cmd_ctx_clear(cmd_ctx *ctx)
{
    if (ctx == NULL)
        return;
    free(ctx->files);
    free(ctx->rates);
    spec_config_clear(&ctx->cfg);
    memset(ctx, 0, sizeof(*ctx));
}
