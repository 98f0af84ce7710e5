/* imgrecon notify-test: sends one sample notification (event "test") to every webhook of the
 * config's `notify:` list, through the daemon's own delivery code (rec_webhook: same payload
 * shapes, same signature), one attempt each, and reports each result. Exits 0 when every
 * target answered 2xx, 1 otherwise (or when none is configured). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "cmd.h"
#include "cmd_session.h"
#include "rec_webhook.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: imgrecon notify-test [OPTIONS]\n\n"
                 "Sends a sample notification (event \"test\") to each webhook in the config's\n"
                 "`notify:` list, signed when it has a secret_file, and reports each answer.\n"
                 "Exits 0 when every webhook answered with a 2xx status.\n");
    cmd_print_common_help(out, CMD_USES_NOTIFY);
}

typedef struct tally {
    unsigned ok, failed;
} tally;

static void on_report(void *ud, const rec_webhook_report *r)
{
    tally *t = ud;
    if (r->ok) {
        t->ok++;
        printf("ok      %s (HTTP %ld)\n", r->target, r->status);
        return;
    }
    t->failed++;
    printf("failed  %s: %s\n", r->target, r->error ? r->error : "no answer");
}

int cmd_notify_test(cmd_ctx *ctx, int argc, char **argv)
{
    const cmd_args args = {"notify-test", usage, NULL, 0, NULL, NULL, 0};
    cmd_args_result parsed = cmd_parse_args(ctx, argc, argv, &args);
    if (parsed != CMD_ARGS_GO)
        return parsed == CMD_ARGS_HELP ? 0 : 1;
    int rc;
    if (cmd_load_config(ctx) < 0)
        return 1;
    if (ctx->cfg.n_notify == 0) {
        cmd_error(ctx, "notify-test: no webhooks: the config has no `notify:` entries");
        return 1;
    }
    uv_loop_t loop;
    if (uv_loop_init(&loop) < 0)
        return 1;
    tally t = {0, 0};
    rec_webhook_opts o = {
        .owner = ctx->cfg.owner, .max_attempts = 1, .on_report = on_report, .ud = &t};
    rec_webhook *w = NULL;
    char *err = NULL;
    rc = rec_webhook_new(&loop, &o, &w);
    if (rc == 0)
        rc = rec_webhook_configure(w, ctx->cfg.notify, ctx->cfg.n_notify, &err);
    if (rc == 0)
        (void)rec_webhook_send(w, 0, "imgrecon notify-test: a sample notification", NULL, 0);
    while (rc == 0 && rec_webhook_pending(w) > 0)
        (void)uv_run(&loop, UV_RUN_ONCE); /* every attempt ends within its timeout */
    if (rc < 0)
        cmd_error(ctx, "notify-test: %s", err ? err : strerror(-rc));
    free(err);
    rec_webhook_free(w);
    (void)uv_run(&loop, UV_RUN_DEFAULT);
    (void)uv_loop_close(&loop);
    return rc == 0 && t.failed == 0 && t.ok > 0 ? 0 : 1;
}
