/* imgrecon api: one signed, paced call to SWAS or ECS with the caller's parameters, printing the
 * JSON answer. The aliyun CLI does not cover SWAS, so this is the users' raw client; it goes
 * through the same credentials chain, pacer, rate limits and retries as every other call.
 * Argument parsing and wiring only; the client lives in provider/. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cmd.h"
#include "prov_client.h"
#include "prov_swas.h"
#include "rec_escape.h"
#include "rec_setup.h"

enum { OPT_METHOD = CMD_OPT_LOCAL, OPT_REGION, OPT_PRETTY, OPT_COMPACT };

static void usage(FILE *out)
{
    fprintf(out,
            "usage: imgrecon api swas|ecs ACTION [Key=Value]... [--method GET|POST]\n"
            "                    [--region REGION] [--pretty|--compact]\n\n"
            "Makes one signed call and prints the JSON answer. The call is paced and retried\n"
            "like every other imgrecon call (shared rate limits, throttled cooldowns).\n\n"
            "  Key=Value          a request parameter, e.g. RegionId=cn-hangzhou PageSize=100;\n"
            "                     repeat for several; Action and Version are set for you\n"
            "  --method M         POST (default) or GET\n"
            "  --region REGION    region of the endpoint when RegionId is not given\n"
            "                     (default cn-hangzhou)\n"
            "  --pretty           indent the JSON (the default on a terminal)\n"
            "  --compact          one line of JSON (the default otherwise)\n\n"
            "Exit status: 0 on success, 1 on any error (the API's Code, Message, RequestId and\n"
            "error class go to stderr).\n\n"
            "example: imgrecon api swas ListCustomImages RegionId=cn-hangzhou PageSize=100\n");
    cmd_print_common_help(out, CMD_USES_API);
}

/* What the callback hands back to cmd_api once the loop has run. */
typedef struct api_result {
    bool done;
    json_t *body;   /* owned reference on success */
    prov_error err; /* copy of the error on failure */
    bool failed;
} api_result;

static void on_answer(json_t *body, const prov_error *err, void *ud)
{
    api_result *r = ud;
    r->done = true;
    if (err != NULL) {
        r->failed = true;
        if (prov_error_copy(&r->err, err) < 0)
            r->err.cls = err->cls; /* keep at least the class when out of memory */
        return;
    }
    r->body = json_incref(body);
}

/* With -v, one line per HTTP attempt: status, code, request id, duration, and the retry delay
 * when the client will try again. */
static void on_attempt(void *ud, const prov_call_event *ev)
{
    const cmd_ctx *ctx = ud;
    if (ctx->verbose == 0)
        return;
    if (cmd_log_json(ctx)) {
        char attempt[16], status[16], ms[24], retry[24];
        snprintf(attempt, sizeof(attempt), "%u", ev->attempt);
        snprintf(status, sizeof(status), "%ld", ev->http_status);
        snprintf(ms, sizeof(ms), "%llu", (unsigned long long)ev->duration_ms);
        snprintf(retry, sizeof(retry), "%llu", (unsigned long long)ev->retry_in_ms);
        const char *kv[] = {"product",     prov_product_name(ev->product),
                            "action",      ev->action,
                            "region",      ev->region,
                            "attempt",     attempt,
                            "http_status", status,
                            "code",        ev->code,
                            "request_id",  ev->request_id,
                            "duration_ms", ms,
                            "retry_in_ms", ev->retry_in_ms ? retry : NULL};
        cmd_json_line(REC_LOG_INFO, "api call", kv, sizeof(kv) / sizeof(kv[0]) / 2);
        return;
    }
    /* The code and the request id come from the endpoint: escaped like every cloud text. */
    char *code = rec_escape_dup(ev->code), *rid = rec_escape_dup(ev->request_id);
    char *region = rec_escape_dup(ev->region ? ev->region : "-");
    fprintf(stderr, "imgrecon: %s %s %s attempt %u: HTTP %ld%s%s%s%s (%llu ms)",
            prov_product_name(ev->product), ev->action, region ? region : "-", ev->attempt,
            ev->http_status, ev->code ? " " : "", ev->code && code ? code : "",
            ev->request_id ? " RequestId " : "", ev->request_id && rid ? rid : "",
            (unsigned long long)ev->duration_ms);
    free(code);
    free(rid);
    free(region);
    if (ev->retry_in_ms > 0)
        fprintf(stderr, ", %s, retry in %llu ms", prov_err_class_name(ev->cls),
                (unsigned long long)ev->retry_in_ms);
    fputc('\n', stderr);
}

/* Splits each Key=Value argument into params; a missing '=' or an empty key is a usage error.
 * The signer owns Action, Version, Format and the signature fields, so they are refused here
 * rather than silently overridden. */
static int parse_params(const cmd_ctx *ctx, char **args, int n, prov_kvs *params)
{
    static const char *const reserved[] = {
        "Action",           "Version",        "Format",      "Signature", "SignatureMethod",
        "SignatureVersion", "SignatureNonce", "AccessKeyId", "Timestamp", "SecurityToken"};
    int bad = 0;
    for (int i = 0; i < n; i++) {
        const char *eq = strchr(args[i], '=');
        if (eq == NULL || eq == args[i]) {
            cmd_error(ctx, "api: '%s' is not Key=Value", args[i]);
            bad = 1;
            continue;
        }
        char *key = strndup(args[i], (size_t)(eq - args[i]));
        if (key == NULL) {
            cmd_error(ctx, "out of memory");
            return -ENOMEM;
        }
        for (size_t r = 0; r < sizeof(reserved) / sizeof(reserved[0]); r++)
            if (strcasecmp(key, reserved[r]) == 0) {
                cmd_error(ctx, "api: %s is set by imgrecon itself; leave it out", reserved[r]);
                bad = 1;
            }
        int rc = bad ? 0 : prov_kvs_add(params, key, eq + 1);
        free(key);
        if (rc < 0) {
            cmd_error(ctx, "out of memory");
            return rc;
        }
    }
    return bad ? -EINVAL : 0;
}

int cmd_api(cmd_ctx *ctx, int argc, char **argv)
{
    static const struct option extra[] = {
        {"method", required_argument, NULL, OPT_METHOD},
        {"region", required_argument, NULL, OPT_REGION},
        {"pretty", no_argument, NULL, OPT_PRETTY},
        {"compact", no_argument, NULL, OPT_COMPACT},
    };
    const char *method = "POST", *region = NULL;
    int pretty = -1; /* -1: by terminal */
    struct option *opts = cmd_options(extra, sizeof(extra) / sizeof(extra[0]));
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
        if (h < 0)
            bad = 1;
        if (h != 0)
            continue;
        if (opt == OPT_METHOD) {
            if (strcasecmp(optarg, "GET") == 0)
                method = "GET";
            else if (strcasecmp(optarg, "POST") == 0)
                method = "POST";
            else {
                cmd_error(ctx, "api: --method must be GET or POST, not '%s'", optarg);
                bad = 1;
            }
        } else if (opt == OPT_REGION) {
            region = optarg;
        } else if (opt == OPT_PRETTY) {
            pretty = 1;
        } else if (opt == OPT_COMPACT) {
            pretty = 0;
        } else {
            bad = 1;
        }
    }
    free(opts);
    prov_product product = PROV_SWAS;
    if (!bad && argc - optind < 2) {
        cmd_error(ctx, "api: need a product (swas or ecs) and an action");
        bad = 1;
    } else if (!bad) {
        if (strcmp(argv[optind], "swas") == 0)
            product = PROV_SWAS;
        else if (strcmp(argv[optind], "ecs") == 0)
            product = PROV_ECS;
        else {
            cmd_error(ctx, "api: unknown product '%s' (swas or ecs)", argv[optind]);
            bad = 1;
        }
    }
    if (bad) {
        usage(stderr);
        return 1;
    }
    const char *action = argv[optind + 1];
    prov_kvs params = {0};
    if (parse_params(ctx, argv + optind + 2, argc - optind - 2, &params) < 0) {
        prov_kvs_free(&params);
        return 1;
    }
    const char *region_id = prov_kvs_get(&params, "RegionId");
    if (region_id != NULL && *region_id != '\0')
        region = region_id;
    if (cmd_load_config(ctx) < 0) {
        prov_kvs_free(&params);
        return 1;
    }

    uv_loop_t loop;
    if (uv_loop_init(&loop) < 0) {
        prov_kvs_free(&params);
        cmd_error(ctx, "cannot create the event loop");
        return 1;
    }
    int exit_code = 1;
    rec_setup setup;
    char *err = NULL;
    rec_setup_opts so = {
        .state_dir_explicit = ctx->state_dir != NULL,
        .method = method,
        .on_call = on_attempt,
        .on_cred_error = cmd_cred_warning,
        .ud = ctx,
    };
    int rc = rec_setup_init(&loop, &ctx->cfg, &so, &setup, &err);
    if (rc < 0) {
        cmd_error(ctx, "%s", err ? err : "setup failed");
        free(err);
        goto out_loop;
    }
    if (setup.note != NULL)
        cmd_note(ctx, "%s", setup.note);

    api_result res = {0};
    rc = prov_call(setup.client, product, action, region ? region : "cn-hangzhou", &params,
                   on_answer, &res);
    if (rc < 0) {
        cmd_error(ctx, "api: cannot start the call: %s", strerror(-rc));
    } else {
        /* The loop runs until the answer (after any pacing waits and retries) arrives. */
        while (!res.done && uv_run(&loop, UV_RUN_ONCE) != 0)
            ;
        if (!res.done) {
            cmd_error(ctx, "api: internal error: the call never completed");
        } else if (res.failed) {
            char *why = prov_error_describe(&res.err);
            cmd_error(ctx, "api: %s %s failed: %s [%s]", prov_product_name(product), action,
                      why ? why : "unknown error", prov_err_class_name(res.err.cls));
            free(why);
        } else {
            bool indent = pretty == 1 || (pretty == -1 && isatty(STDOUT_FILENO));
            /* jansson escapes C0 controls (ESC is \u001b); C1 controls are escaped here. */
            char *doc = rec_escape_json_c1(
                json_dumps(res.body, indent ? JSON_INDENT(2) | JSON_PRESERVE_ORDER
                                            : JSON_COMPACT | JSON_PRESERVE_ORDER));
            if (doc == NULL) {
                cmd_error(ctx, "out of memory");
            } else {
                puts(doc);
                free(doc);
                exit_code = fflush(stdout) == 0 ? 0 : 1;
            }
        }
    }
    json_decref(res.body);
    prov_error_clear(&res.err);
    rec_setup_close(&setup);
    (void)uv_run(&loop, UV_RUN_DEFAULT);
    rec_setup_free(&setup);
out_loop:
    if (uv_loop_close(&loop) != 0)
        cmd_error(ctx, "internal error: event loop handles left open");
    prov_kvs_free(&params);
    return exit_code;
}
