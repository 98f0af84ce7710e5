/* Common options and config loading shared by every subcommand. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "spec_known.h"
#include "rec_escape.h"
#include "prov_str.h"
#include "rec_log.h"

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

bool cmd_log_json(const cmd_ctx *ctx)
{
    return ctx->log_format != NULL && strcmp(ctx->log_format, "json") == 0;
}

/* One JSON log line on stderr, as the daemon writes them (rec_log.h: typed fields, one object
 * per line, controls escaped). Logging never fails a command: errors are ignored. */
void cmd_json_line(rec_log_level level, const char *msg, const char *const *kv, size_t n_kv)
{
    rec_log_opts o = {.fd = STDERR_FILENO, .json = true, .level = REC_LOG_DEBUG};
    rec_log *l = NULL;
    if (rec_log_new(&o, &l) < 0)
        return;
    fflush(stderr);
    rec_log_write(l, level, msg, kv, n_kv);
    rec_log_free(l);
}

/* Prints one message at level: "prog: message" in text, else a JSON line. Messages carry text
 * from the cloud (error codes, messages, request ids, names) and from the command line, so the
 * text form goes through rec_fputs_escaped: one line, and nothing in it drives the terminal. */
static void vlog(const cmd_ctx *ctx, rec_log_level level, const char *fmt, va_list ap)
{
    char *msg = NULL;
    int n = vasprintf(&msg, fmt, ap);
    if (cmd_log_json(ctx)) {
        const char *m = n < 0 ? "(out of memory formatting a message)" : msg;
        /* "warning: ..." from a caller is a warn line with the prefix dropped. */
        if (level == REC_LOG_ERROR && strncmp(m, "warning: ", 9) == 0) {
            level = REC_LOG_WARN;
            m += 9;
        }
        cmd_json_line(level, m, NULL, 0);
        free(msg);
        return;
    }
    fprintf(stderr, "%s: ", ctx->prog ? ctx->prog : "imgrecon");
    if (n < 0)
        fputs("(out of memory formatting a message)", stderr);
    else
        (void)rec_fputs_escaped(msg, stderr);
    free(msg);
    fputc('\n', stderr);
}

/* Every error message of the CLI (see vlog). */
void cmd_error(const cmd_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(ctx, REC_LOG_ERROR, fmt, ap);
    va_end(ap);
}

void cmd_note(const cmd_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(ctx, REC_LOG_INFO, fmt, ap);
    va_end(ap);
}

void cmd_print_diags(const cmd_ctx *ctx, const spec_diags *d, bool warnings)
{
    for (size_t i = 0; i < d->n; i++) {
        const spec_diag *e = &d->v[i];
        if (cmd_log_json(ctx)) {
            char line[16], col[16];
            snprintf(line, sizeof(line), "%u", e->line);
            snprintf(col, sizeof(col), "%u", e->col);
            const char *kv[] = {
                "file", e->file, "line", e->line ? line : NULL, "col", e->line ? col : NULL};
            cmd_json_line(warnings ? REC_LOG_WARN : REC_LOG_ERROR, e->msg, kv, 3);
        } else if (e->file && e->line > 0) {
            fprintf(stderr, "%s:%u:%u: %s%s\n", e->file, e->line, e->col,
                    warnings ? "warning: " : "", e->msg);
        } else if (e->file || warnings) {
            fprintf(stderr, "%s: %s%s\n", e->file ? e->file : "imgrecon",
                    warnings ? "warning: " : "", e->msg);
        } else {
            fprintf(stderr, "%s\n", e->msg);
        }
    }
}

void cmd_wait_line(void *ud, const char *action, uint64_t wait_ms)
{
    cmd_ctx *ctx = ud;
    if (!ctx->wait_live)
        return;
    char name[64];
    (void)rec_escape(action ? action : "API", name, sizeof(name));
    fprintf(stderr, "\r\033[Kwaiting for the rate limit: next %s call in %llus", name,
            (unsigned long long)((wait_ms + 999) / 1000));
    fflush(stderr);
    ctx->wait_shown = true;
}

void cmd_wait_clear(cmd_ctx *ctx)
{
    if (ctx->wait_shown) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
        ctx->wait_shown = false;
    }
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
        cmd_print_diags(ctx, &diags, false);
        spec_diags_clear(&diags);
        if (rc < 0)
            return rc;
    }
    spec_diags_init(&diags);
    rc = cmd_apply_endpoint(ctx, &ctx->cfg, &diags);
    cmd_print_diags(ctx, &diags, false);
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
