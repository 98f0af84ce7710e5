/* imgrecon status: reads `<state_dir>/status.json` (written by `imgrecon run`) and prints a
 * summary or the JSON with the daemon's health; the exit code is 0 only when healthy. */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "cmd_session.h"
#include "prov_pacer.h"
#include "rec_escape.h"
#include "rec_status.h"

enum { OPT_JSON = CMD_OPT_LOCAL };

static const struct option status_options[] = {
    {"json", no_argument, NULL, OPT_JSON},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: imgrecon status [--json] [OPTIONS]\n\n"
                 "Shows what the daemon (imgrecon run) last did, from <state_dir>/status.json.\n"
                 "Exits 0 when healthy; 1 when failing, not ready (invalid manifests, no cycle\n"
                 "yet) or not running (stopped, pid gone, status stale), and says which.\n\n"
                 "  --json   print the status document itself\n");
    cmd_print_common_help(out, CMD_USES_STATUS);
}

/* The per-user directory `imgrecon run` falls back to when state_dir cannot be created; says
 * on stderr that it is read and why (never a silent switch of directory). */
static int read_fallback(const cmd_ctx *ctx, int why, rec_status *st)
{
    char dir[4096];
    const char *xdg = getenv("XDG_STATE_HOME");
    const char *home = getenv("HOME");
    if (xdg != NULL && xdg[0] == '/')
        (void)snprintf(dir, sizeof(dir), "%s/imgrecon", xdg);
    else if (home != NULL && home[0] == '/')
        (void)snprintf(dir, sizeof(dir), "%s/.local/state/imgrecon", home);
    else
        return -ENOENT;
    int rc = rec_status_read(dir, st);
    if (rc == 0)
        cmd_note(ctx, "%s/status.json: %s; showing the per-user fallback %s", ctx->cfg.state_dir,
                 strerror(-why), dir);
    return rc;
}

/* The summary with a first line saying the health and why (the exit code's reason). The reason
 * may be status.json's ready_reason, which quotes the cloud: escaped like the rest. */
static int status_text(const rec_status *st, rec_health h, const char *why, char **ret)
{
    char *body = rec_status_describe(st, prov_now_ms());
    char *why_esc = rec_escape_dup(why);
    if (body == NULL || why_esc == NULL ||
        asprintf(ret, "health:       %s (%s)\n%s", rec_health_name(h), why_esc, body) < 0) {
        free(why_esc);
        free(body);
        return -ENOMEM;
    }
    free(why_esc);
    free(body);
    return 0;
}

/* The status document with "health" and "health_reason" added. */
static int status_json(const rec_status *st, rec_health h, const char *why, char **ret)
{
    char *doc = NULL;
    int rc = rec_status_to_json(st, &doc);
    if (rc < 0)
        return rc;
    json_t *o = json_loads(doc, 0, NULL);
    free(doc);
    if (o == NULL || json_object_set_new(o, "health", json_string(rec_health_name(h))) < 0 ||
        json_object_set_new(o, "health_reason", json_string(why)) < 0) {
        json_decref(o);
        return -ENOMEM;
    }
    char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (text == NULL || asprintf(ret, "%s\n", text) < 0) {
        free(text);
        return -ENOMEM;
    }
    free(text);
    return 0;
}

/* status's own option (--json), for cmd_parse_args. */
static int status_option(void *ud, int opt, const char *arg)
{
    (void)arg;
    if (opt != OPT_JSON)
        return -EINVAL;
    *(bool *)ud = true;
    return 0;
}

int cmd_status(cmd_ctx *ctx, int argc, char **argv)
{
    bool json = false;
    const cmd_args args = {"status",
                           usage,
                           status_options,
                           sizeof(status_options) / sizeof(status_options[0]),
                           status_option,
                           &json,
                           0};
    cmd_args_result parsed = cmd_parse_args(ctx, argc, argv, &args);
    if (parsed != CMD_ARGS_GO)
        return parsed == CMD_ARGS_HELP ? 0 : 1;
    int rc;
    if (cmd_load_config(ctx) < 0)
        return 1;
    rec_status st;
    rc = rec_status_read(ctx->cfg.state_dir, &st);
    if ((rc == -ENOENT || rc == -EACCES) && ctx->state_dir == NULL &&
        read_fallback(ctx, rc, &st) == 0)
        rc = 0;
    if (rc == -ENOENT) {
        cmd_error(ctx, "no status in %s yet: has 'imgrecon run' started with this state directory?",
                  ctx->cfg.state_dir);
        return 1;
    }
    if (rc < 0) {
        cmd_error(ctx, "cannot read %s/status.json: %s", ctx->cfg.state_dir,
                  rc == -EPROTO ? "not a status document" : strerror(-rc));
        return 1;
    }
    bool alive = st.pid > 0 && !(kill((pid_t)st.pid, 0) < 0 && errno == ESRCH);
    const char *why = NULL;
    rec_health h = rec_status_health(&st, alive, prov_now_ms(), &why);
    char *text = NULL;
    rc = json ? status_json(&st, h, why, &text) : status_text(&st, h, why, &text);
    if (rc == 0 && json && (text = rec_escape_json_c1(text)) == NULL)
        rc = -ENOMEM;
    rec_status_clear(&st);
    if (rc < 0) {
        cmd_error(ctx, "out of memory");
        return 1;
    }
    fputs(text, stdout);
    free(text);
    return h == REC_HEALTHY ? 0 : 1;
}
