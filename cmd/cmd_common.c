/* Common options and config loading shared by every subcommand. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "rec_escape.h"

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
        return 1;
    case 'f':
        if (push_arg(&ctx->files, &ctx->n_files, arg) < 0) {
            cmd_error(ctx, "out of memory");
            return -1;
        }
        return 1;
    case 'v':
        ctx->verbose++;
        return 1;
    case 'q':
        ctx->quiet = true;
        return 1;
    case CMD_OPT_ENDPOINT:
        ctx->endpoint = arg;
        return 1;
    case CMD_OPT_PROFILE:
        ctx->profile = arg;
        return 1;
    case CMD_OPT_STATE_DIR:
        ctx->state_dir = arg;
        return 1;
    case CMD_OPT_RATE_LIMIT:
        if (push_arg(&ctx->rates, &ctx->n_rates, arg) < 0) {
            cmd_error(ctx, "out of memory");
            return -1;
        }
        return 1;
    case CMD_OPT_LOG_FORMAT:
        if (strcmp(arg, "text") != 0 && strcmp(arg, "json") != 0) {
            cmd_error(ctx, "--log-format must be text or json, not '%s'", arg);
            return -1;
        }
        ctx->log_format = arg;
        return 1;
    case CMD_OPT_NO_COLOR:
        ctx->no_color = true;
        return 1;
    default:
        return 0;
    }
}

/* Replaces a config string with a copy of value. */
static int set_str(char **dst, const char *value)
{
    char *copy = value ? strdup(value) : NULL;
    if (value && copy == NULL)
        return -ENOMEM;
    free(*dst);
    *dst = copy;
    return 0;
}

int cmd_load_config(cmd_ctx *ctx)
{
    spec_diags diags;
    int rc;

    if (spec_config_init(&ctx->cfg) < 0) {
        cmd_error(ctx, "out of memory");
        return -1;
    }
    const char *path = ctx->config_path;
    if (path == NULL && access(DEFAULT_CONFIG, F_OK) == 0)
        path = DEFAULT_CONFIG;
    if (path != NULL) {
        spec_diags_init(&diags);
        rc = spec_config_load(&ctx->cfg, path, &diags);
        spec_diags_print(&diags, stderr);
        spec_diags_free(&diags);
        if (rc < 0)
            return -1;
    }
    const char *endpoint = ctx->endpoint ? ctx->endpoint : getenv("IMGRECON_ENDPOINT");
    if (endpoint != NULL && *endpoint != '\0' && set_str(&ctx->cfg.endpoint, endpoint) < 0)
        goto oom;
    if (ctx->profile && set_str(&ctx->cfg.profile, ctx->profile) < 0)
        goto oom;
    if (ctx->state_dir && set_str(&ctx->cfg.state_dir, ctx->state_dir) < 0)
        goto oom;
    if (ctx->log_format)
        ctx->cfg.log_format = strcmp(ctx->log_format, "json") == 0 ? SPEC_LOG_JSON : SPEC_LOG_TEXT;
    for (size_t i = 0; i < ctx->n_rates; i++) {
        rc = spec_config_set_rate(&ctx->cfg, ctx->rates[i]);
        if (rc == -ENOMEM)
            goto oom;
        if (rc < 0) {
            cmd_error(ctx, "--rate-limit '%s': expected [ACTION=]N/DURATION such as 10/60s",
                      ctx->rates[i]);
            return -1;
        }
    }
    const char *nc = getenv("NO_COLOR");
    if (nc != NULL && *nc != '\0')
        ctx->no_color = true;
    return 0;
oom:
    cmd_error(ctx, "out of memory");
    return -1;
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

void cmd_print_common_help(FILE *out)
{
    fprintf(out,
            "\nCommon options:\n"
            "  -c, --config FILE        config file (default " DEFAULT_CONFIG " when present)\n"
            "  -f, --file PATH          manifest file or directory (repeatable)\n"
            "      --endpoint URL       send every product to this base URL (env IMGRECON_ENDPOINT)\n"
            "      --profile NAME       credentials profile\n"
            "      --state-dir DIR      state directory (pacer log, journal, status)\n"
            "      --rate-limit [ACTION=]N/DUR  call budget, e.g. 10/60s (repeatable)\n"
            "      --log-format text|json\n"
            "  -v, --verbose            more detail (repeatable)\n"
            "  -q, --quiet              errors only\n"
            "      --no-color           no ANSI colour (also NO_COLOR)\n"
            "  -h, --help               this help\n");
}

void cmd_ctx_free(cmd_ctx *ctx)
{
    if (ctx == NULL)
        return;
    free(ctx->files);
    free(ctx->rates);
    spec_config_free(&ctx->cfg);
    memset(ctx, 0, sizeof(*ctx));
}
