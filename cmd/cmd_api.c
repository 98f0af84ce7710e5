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
#include "cmd_session.h"
#include "prov_cleanup.h"
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

typedef struct api_args {
    const cmd_ctx *ctx;
    const char *method, *region;
    int pretty; /* -1: by terminal */
} api_args;

static int api_option(void *ud, int opt, const char *arg)
{
    api_args *a = ud;
    if (opt == OPT_METHOD) {
        if (strcasecmp(arg, "GET") == 0)
            a->method = "GET";
        else if (strcasecmp(arg, "POST") == 0)
            a->method = "POST";
        else {
            cmd_error(a->ctx, "api: --method must be GET or POST, not '%s'", arg);
            return -EINVAL;
        }
    } else if (opt == OPT_REGION) {
        a->region = arg;
    } else if (opt == OPT_PRETTY) {
        a->pretty = 1;
    } else if (opt == OPT_COMPACT) {
        a->pretty = 0;
    } else {
        return -EINVAL;
    }
    return 0;
}

/* The operands: the product, then the action (at argv[optind + 1]). */
static int parse_product(const cmd_ctx *ctx, int argc, char **argv, prov_product *ret)
{
    if (argc - optind < 2) {
        cmd_error(ctx, "api: need a product (swas or ecs) and an action");
        return -EINVAL;
    }
    if (strcmp(argv[optind], "swas") == 0)
        *ret = PROV_SWAS;
    else if (strcmp(argv[optind], "ecs") == 0)
        *ret = PROV_ECS;
    else {
        cmd_error(ctx, "api: unknown product '%s' (swas or ecs)", argv[optind]);
        return -EINVAL;
    }
    return 0;
}

/* Makes the call, runs the loop until it answers and prints the answer; returns the exit
 * status. */
static int call_and_print(cmd_session *s, const api_args *a, prov_product product,
                          const char *action, const prov_kvs *params)
{
    const cmd_ctx *ctx = s->ctx;
    api_result res = {0};
    int exit_code = 1;
    int rc = prov_call(s->setup->client, product, action, a->region ? a->region : "cn-hangzhou",
                       params, on_answer, &res);
    if (rc < 0) {
        cmd_error(ctx, "api: cannot start the call: %s", strerror(-rc));
        return 1;
    }
    /* The loop runs until the answer (after any pacing waits and retries) arrives. */
    while (!res.done && uv_run(&s->loop, UV_RUN_ONCE) != 0)
        ;
    if (!res.done) {
        cmd_error(ctx, "api: internal error: the call never completed");
    } else if (res.failed) {
        _cleanup_free_ char *why = prov_error_describe(&res.err);
        cmd_error(ctx, "api: %s %s failed: %s [%s]", prov_product_name(product), action,
                  why ? why : "unknown error", prov_err_class_name(res.err.cls));
    } else {
        bool indent = a->pretty == 1 || (a->pretty == -1 && isatty(STDOUT_FILENO));
        /* jansson escapes C0 controls (ESC is \u001b); C1 controls are escaped here. */
        _cleanup_free_ char *doc =
            rec_escape_json_c1(json_dumps(res.body, indent ? JSON_INDENT(2) | JSON_PRESERVE_ORDER
                                                           : JSON_COMPACT | JSON_PRESERVE_ORDER));
        if (doc == NULL) {
            cmd_error(ctx, "out of memory");
        } else {
            puts(doc);
            exit_code = fflush(stdout) == 0 ? 0 : 1;
        }
    }
    json_decref(res.body);
    prov_error_clear(&res.err);
    return exit_code;
}

int cmd_api(cmd_ctx *ctx, int argc, char **argv)
{
    static const struct option extra[] = {
        {"method", required_argument, NULL, OPT_METHOD},
        {"region", required_argument, NULL, OPT_REGION},
        {"pretty", no_argument, NULL, OPT_PRETTY},
        {"compact", no_argument, NULL, OPT_COMPACT},
    };
    api_args a = {.ctx = ctx, .method = "POST", .pretty = -1};
    bool help;
    prov_product product = PROV_SWAS;
    int rc = cmd_parse_options(ctx, argc, argv, extra, sizeof(extra) / sizeof(extra[0]), api_option,
                               &a, &help);
    if (rc == -ENOMEM)
        return 1;
    if (help) {
        usage(stdout);
        return 0;
    }
    if (rc < 0 || parse_product(ctx, argc, argv, &product) < 0) {
        usage(stderr);
        return 1;
    }
    const char *action = argv[optind + 1];
    _cleanup_(prov_kvs_clear) prov_kvs params = {0};
    if (parse_params(ctx, argv + optind + 2, argc - optind - 2, &params) < 0)
        return 1;
    const char *region_id = prov_kvs_get(&params, "RegionId");
    if (region_id != NULL && *region_id != '\0')
        a.region = region_id;
    cmd_session s;
    cmd_session_opts so = {.method = a.method, .on_call = on_attempt};
    if (cmd_load_config(ctx) < 0 || cmd_session_open(&s, ctx, &so) < 0)
        return 1;
    int exit_code = call_and_print(&s, &a, product, action, &params);
    (void)cmd_session_close(&s);
    return exit_code;
}
