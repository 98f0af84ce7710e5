/* The real imgrecon binary (IMGRECON_BIN): version, help, usage errors, and `validate` over the
 * example manifests (valid) and every file in examples/invalid (each must fail with the
 * file:line:col: message its header names). Children run through test_proc_run with pipes; every
 * wait is bounded and a child that overstays is killed. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test_file.h"
#include "test_proc.h"

#define SRC IMGRECON_SOURCE_DIR
#define RUN_TIMEOUT_MS 30000

typedef test_proc_result run_result;

static void result_free(run_result *r)
{
    test_proc_result_clear(r);
}

/* Runs IMGRECON_BIN with args (NULL-terminated, without argv[0]) and collects its output. */
static run_result run(const char *const *args)
{
    const char *argv[32] = {IMGRECON_BIN};
    size_t n = 1;
    for (; args[n - 1] != NULL && n < 31; n++)
        argv[n] = args[n - 1];
    argv[n] = NULL;
    run_result r;
    test_proc_run(argv, NULL, RUN_TIMEOUT_MS, &r);
    cr_assert_neq(r.status, -ETIMEDOUT, "imgrecon %s did not finish within %d ms",
                  args[0] ? args[0] : "", RUN_TIMEOUT_MS);
    return r;
}

Test(cli, version)
{
    run_result r = run((const char *[]){"version", NULL});
    cr_assert_eq(r.status, 0);
    cr_assert_eq(strncmp(r.out, "imgrecon ", 9), 0, "stdout: %s", r.out);
    cr_assert_str_eq(r.err, "");
    result_free(&r);
}

Test(cli, help)
{
    run_result r = run((const char *[]){"--help", NULL});
    cr_assert_eq(r.status, 0);
    cr_assert(strstr(r.out, "usage: imgrecon COMMAND"), "stdout: %s", r.out);
    cr_assert(strstr(r.out, "validate"));
    cr_assert_str_eq(r.err, "");
    result_free(&r);
}

Test(cli, no_command)
{
    run_result r = run((const char *[]){NULL});
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "usage: imgrecon COMMAND"), "stderr: %s", r.err);
    cr_assert_str_eq(r.out, "");
    result_free(&r);
}

Test(cli, unknown_command)
{
    run_result r = run((const char *[]){"frobnicate", NULL});
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "unknown command 'frobnicate'"), "stderr: %s", r.err);
    cr_assert(strstr(r.err, "usage: imgrecon COMMAND"));
    cr_assert_str_eq(r.out, "");
    result_free(&r);
}

/* A mistyped command names the closest one (edit distance at most 2); a word far from every
 * command gets no guess. */
Test(cli, unknown_command_suggests)
{
    static const struct {
        const char *typed, *want;
    } cases[] = {
        {"aply", "apply"}, {"stauts", "status"}, {"plna", "plan"}, {"valdiate", "validate"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char want[128];
        snprintf(want, sizeof(want), "unknown command '%s'; did you mean '%s'?", cases[i].typed,
                 cases[i].want);
        run_result r = run((const char *[]){cases[i].typed, NULL});
        cr_expect_eq(r.status, 1);
        cr_expect(strstr(r.err, want), "stderr: %s", r.err);
        cr_expect_str_eq(r.out, "");
        result_free(&r);
    }
    run_result r = run((const char *[]){"frobnicate", NULL});
    cr_expect(strstr(r.err, "did you mean") == NULL, "stderr: %s", r.err);
    result_free(&r);
}

/* `version --help` is help (exit 0, stdout); a stray argument is a usage error. */
Test(cli, version_help)
{
    run_result r = run((const char *[]){"version", "--help", NULL});
    cr_expect_eq(r.status, 0);
    cr_expect(strstr(r.out, "usage: imgrecon version"), "stdout: %s", r.out);
    cr_expect(strncmp(r.out, "imgrecon ", 9) != 0, "help, not the version: %s", r.out);
    cr_expect_str_eq(r.err, "");
    result_free(&r);
    r = run((const char *[]){"version", "extra", NULL});
    cr_expect_eq(r.status, 1);
    cr_expect(strstr(r.err, "unexpected argument 'extra'"), "stderr: %s", r.err);
    cr_expect_str_eq(r.out, "");
    result_free(&r);
}

/* Every command treats its arguments alike (cmd_parse_args, or its own operand rules for api and
 * run): --help is usage on stdout and exit 0; an unknown option is usage on stderr and exit 1;
 * an operand too many names itself, then usage, exit 1. Nothing runs: the config is not read. */
Test(cli, every_command_parses_its_arguments_alike)
{
    static const struct {
        const char *cmd;
        const char *operands[3]; /* one too many */
    } cases[] = {
        {"validate", {"extra"}}, {"plan", {"extra"}},   {"apply", {"plan.json", "extra"}},
        {"import", {"extra"}},   {"status", {"extra"}}, {"notify-test", {"extra"}},
        {"run", {"extra"}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *cmd = cases[i].cmd;
        char usage[64];
        snprintf(usage, sizeof(usage), "usage: imgrecon %s", cmd);
        run_result r = run((const char *[]){cmd, "--help", NULL});
        cr_expect_eq(r.status, 0, "%s --help", cmd);
        cr_expect(strstr(r.out, usage), "%s --help: stdout: %s", cmd, r.out);
        cr_expect_str_eq(r.err, "", "%s --help", cmd);
        result_free(&r);
        r = run((const char *[]){cmd, "--bogus", NULL});
        cr_expect_eq(r.status, 1, "%s --bogus", cmd);
        cr_expect(strstr(r.err, usage), "%s --bogus: stderr: %s", cmd, r.err);
        cr_expect_str_eq(r.out, "", "%s --bogus", cmd);
        result_free(&r);
        const char *const *ops = cases[i].operands;
        const char *last = ops[1] ? ops[1] : ops[0];
        r = run((const char *[]){cmd, "-c", "/nonexistent/config.yaml", ops[0], ops[1], NULL});
        char want[96];
        snprintf(want, sizeof(want), "%s: unexpected argument '%s'", cmd, last);
        cr_expect_eq(r.status, 1, "%s with an operand too many", cmd);
        cr_expect(strstr(r.err, want), "%s: stderr: %s", cmd, r.err);
        cr_expect_null(strstr(r.err, "/nonexistent"), "%s read its config: %s", cmd, r.err);
        result_free(&r);
    }
}

/* `imgrecon help COMMAND` is `imgrecon COMMAND --help`; an unknown one gets the suggestion. */
Test(cli, help_command)
{
    run_result r = run((const char *[]){"help", "plan", NULL});
    cr_expect_eq(r.status, 0);
    cr_expect(strstr(r.out, "usage: imgrecon plan"), "stdout: %s", r.out);
    result_free(&r);
    r = run((const char *[]){"help", "pln", NULL});
    cr_expect_eq(r.status, 1);
    cr_expect(strstr(r.err, "unknown command 'pln'; did you mean 'plan'?"), "stderr: %s", r.err);
    result_free(&r);
}

/* Each command's --help lists the common options it acts on and none of the others. */
Test(cli, help_lists_only_used_options)
{
    static const struct {
        const char *cmd, *has, *lacks;
    } cases[] = {
        {"status", "--state-dir", "--endpoint"},
        {"status", "--config", "--rate-limit"},
        {"status", "--config", "--file"},
        {"validate", "--endpoint", "--state-dir"},
        {"validate", "--rate-limit", "--profile"},
        {"validate", "--quiet", "--verbose"},
        {"api", "--profile", "--file"},
        {"api", "--state-dir", "--no-color"},
        {"plan", "--no-color", "--interval"},
        {"apply", "--file", "--metrics-allow-remote"},
        {"run", "--log-format", "--no-color"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        run_result r = run((const char *[]){cases[i].cmd, "--help", NULL});
        cr_expect_eq(r.status, 0, "%s --help", cases[i].cmd);
        cr_expect(strstr(r.out, cases[i].has), "%s --help lists %s:\n%s", cases[i].cmd,
                  cases[i].has, r.out);
        cr_expect(strstr(r.out, cases[i].lacks) == NULL, "%s --help does not list %s:\n%s",
                  cases[i].cmd, cases[i].lacks, r.out);
        result_free(&r);
    }
}

Test(cli, validate_help)
{
    run_result r = run((const char *[]){"validate", "--help", NULL});
    cr_assert_eq(r.status, 0);
    cr_assert(strstr(r.out, "usage: imgrecon validate"), "stdout: %s", r.out);
    cr_assert(strstr(r.out, "--config"), "the common options are listed");
    cr_assert_str_eq(r.err, "");
    result_free(&r);
}

Test(cli, validate_unknown_flag)
{
    run_result r = run((const char *[]){"validate", "--bogus", NULL});
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "usage: imgrecon validate"), "stderr: %s", r.err);
    cr_assert_str_eq(r.out, "");
    result_free(&r);
    r = run((const char *[]){"validate", "-f", SRC "/examples/manifests", "extra", NULL});
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "unexpected argument 'extra'"), "stderr: %s", r.err);
    result_free(&r);
}

Test(cli, validate_examples)
{
    run_result r = run((const char *[]){"validate", "-f", SRC "/examples/manifests", "-c",
                                        SRC "/examples/config.yaml", NULL});
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_assert_str_eq(r.out, "ok: 4 images, 1 ECS image in 2 regions from 3 files\n");
    cr_assert_str_eq(r.err, "");
    result_free(&r);
    /* Two paths, one of them a single file, and -q. */
    r = run((const char *[]){"validate", "-q", "-f", SRC "/examples/manifests/cn-shanghai.yaml",
                             "--file", SRC "/examples/manifests/cn-hangzhou", NULL});
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_assert_str_eq(r.out, "");
    result_free(&r);
}

Test(cli, validate_missing_path)
{
    run_result r = run((const char *[]){"validate", "-f", "/nonexistent/imgrecon", NULL});
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "/nonexistent/imgrecon: cannot read: No such file or directory"),
              "stderr: %s", r.err);
    result_free(&r);
}

Test(cli, validate_bad_config)
{
    char dir[] = "/tmp/imgrecon-cli-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char cfg[128];
    snprintf(cfg, sizeof(cfg), "%s/config.yaml", dir);
    test_file_write(cfg, "owner: x\nintervall: 5m\n");
    run_result r =
        run((const char *[]){"validate", "-c", cfg, "-f", SRC "/examples/manifests", NULL});
    char want[256];
    snprintf(want, sizeof(want),
             "%s:2:1: unknown key 'intervall' in config; did you mean 'interval'?", cfg);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, want), "stderr: %s", r.err);
    cr_assert_str_eq(r.out, "");
    result_free(&r);
    cr_assert_eq(unlink(cfg), 0);
    cr_assert_eq(rmdir(dir), 0);
}

/* Every examples/invalid file fails with the diagnostic its "# expect: L:C: message" header
 * names, printed as path:L:C: message. */
Test(cli, validate_invalid_examples)
{
    DIR *d = opendir(SRC "/examples/invalid");
    cr_assert_not_null(d);
    struct dirent *e;
    int checked = 0;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".yaml") != 0)
            continue;
        char path[512], line[1024], expect[2048] = "";
        snprintf(path, sizeof(path), SRC "/examples/invalid/%s", e->d_name);
        FILE *f = fopen(path, "r");
        cr_assert_not_null(f);
        while (fgets(line, sizeof(line), f))
            if (strncmp(line, "# expect: ", 10) == 0) {
                line[strcspn(line, "\n")] = '\0';
                snprintf(expect, sizeof(expect), "%s:%s", path, line + 10);
                break;
            }
        fclose(f);
        cr_assert_neq(expect[0], '\0', "%s has no '# expect:' header", e->d_name);
        run_result r = run((const char *[]){"validate", "-f", path, NULL});
        cr_expect_eq(r.status, 1, "%s: exit %d", e->d_name, r.status);
        cr_expect(strstr(r.err, expect) != NULL, "%s:\n  stderr: %s\n  want: %s", e->d_name, r.err,
                  expect);
        cr_expect_str_eq(r.out, "", "%s", e->d_name);
        result_free(&r);
        checked++;
    }
    closedir(d);
    cr_assert_geq(checked, 8, "only %d invalid examples", checked);
}

/* imgrecon api usage errors: each exits 1 before any credentials, config or network, with a
 * clear message on stderr and nothing on stdout. */
static void expect_api_usage_error(const char *const *args, const char *want)
{
    run_result r = run(args);
    cr_expect_eq(r.status, 1, "%s: exit %d, stderr: %s", want, r.status, r.err);
    cr_expect(strstr(r.err, want) != NULL, "stderr: %s\n  want: %s", r.err, want);
    cr_expect_str_eq(r.out, "", "%s", want);
    result_free(&r);
}

Test(cli, api_usage_errors)
{
    expect_api_usage_error((const char *[]){"api", NULL},
                           "api: need a product (swas or ecs) and an action");
    expect_api_usage_error((const char *[]){"api", "rds", "DescribeDBInstances", NULL},
                           "api: unknown product 'rds' (swas or ecs)");
    expect_api_usage_error((const char *[]){"api", "swas", NULL},
                           "api: need a product (swas or ecs) and an action");
    expect_api_usage_error(
        (const char *[]){"api", "swas", "ListCustomImages", "RegionId=cn-hangzhou", "Foo", NULL},
        "api: 'Foo' is not Key=Value");
    expect_api_usage_error((const char *[]){"api", "swas", "ListCustomImages", "=x", NULL},
                           "api: '=x' is not Key=Value");
    expect_api_usage_error((const char *[]){"api", "swas", "ListCustomImages", "Action=X", NULL},
                           "api: Action is set by imgrecon itself; leave it out");
    expect_api_usage_error((const char *[]){"api", "ecs", "DescribeImages", "signature=abc", NULL},
                           "api: Signature is set by imgrecon itself; leave it out");
    expect_api_usage_error(
        (const char *[]){"api", "--method", "PUT", "swas", "ListCustomImages", NULL},
        "api: --method must be GET or POST, not 'PUT'");
    /* The usage text follows the errors that are about the command line's shape. */
    run_result r = run((const char *[]){"api", "swas", NULL});
    cr_expect(strstr(r.err, "usage: imgrecon api"), "stderr: %s", r.err);
    result_free(&r);
}

Test(cli, api_help)
{
    run_result r = run((const char *[]){"api", "--help", NULL});
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_assert(strstr(r.out, "usage: imgrecon api swas|ecs ACTION"), "stdout: %s", r.out);
    cr_assert(strstr(r.out, "--method"), "stdout: %s", r.out);
    cr_assert(strstr(r.out, "--endpoint"), "the common options are listed");
    cr_assert_str_eq(r.err, "");
    result_free(&r);
}

/* run --interval takes the config key's bounds (1s to 24h); outside them it is a usage error
 * before anything starts. */
Test(cli, run_interval_bounds)
{
    expect_api_usage_error((const char *[]){"run", "--interval", "10ms", NULL},
                           "--interval '10ms': must be between 1s and 24h");
    expect_api_usage_error((const char *[]){"run", "--interval", "25h", NULL},
                           "--interval '25h': must be between 1s and 24h");
    expect_api_usage_error((const char *[]){"run", "--interval", "soon", NULL},
                           "--interval 'soon': expected a duration");
}

/* Writes text to dir/name and returns the path in a static buffer (one of four). */
static const char *put_tmp(const char *dir, const char *name, const char *text)
{
    static char paths[4][256];
    static int next;
    char *p = paths[next++ % 4];
    snprintf(p, 256, "%s/%s", dir, name);
    test_file_write(p, text);
    return p;
}

/* An unknown region is a warning (exit 0, named with the closest one); --strict makes it an
 * error (exit 1). A known region gives no warning either way. */
Test(cli, validate_strict_exit_codes)
{
    char dir[] = "/tmp/imgrecon-cli-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    const char *typo = put_tmp(dir, "typo.yaml", "region: cn-hangzhuo\ncustom_images: []\n");
    char want[512];
    snprintf(want, sizeof(want),
             "%s:1:9: warning: region 'cn-hangzhuo' is not a known Simple Application Server "
             "region; did you mean 'cn-hangzhou'?",
             typo);
    run_result r = run((const char *[]){"validate", "-f", typo, NULL});
    cr_expect_eq(r.status, 0, "stderr: %s", r.err);
    cr_expect(strstr(r.err, want), "stderr: %s", r.err);
    cr_expect_str_eq(r.out, "ok: 0 images, 0 ECS images in 1 region from 1 file (1 warning)\n");
    result_free(&r);

    r = run((const char *[]){"validate", "--strict", "-f", typo, NULL});
    cr_expect_eq(r.status, 1, "stderr: %s", r.err);
    snprintf(want, sizeof(want), "%s:1:9: region 'cn-hangzhuo' is not a known", typo);
    cr_expect(strstr(r.err, want), "stderr: %s", r.err);
    cr_expect(strstr(r.err, "1 error\n"), "stderr: %s", r.err);
    cr_expect_str_eq(r.out, "");
    result_free(&r);

    const char *good = put_tmp(dir, "good.yaml", "region: cn-hangzhou\ncustom_images: []\n");
    r = run((const char *[]){"validate", "--strict", "-f", good, NULL});
    cr_expect_eq(r.status, 0, "stderr: %s", r.err);
    cr_expect_str_eq(r.err, "");
    result_free(&r);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

/* What run or a cycle would refuse later is caught by validate, every problem in one run, each
 * at file:line:col; and the manifests are still checked when the config has errors. */
Test(cli, validate_catches_what_fails_later)
{
    char dir[] = "/tmp/imgrecon-cli-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    const char *m = put_tmp(dir, "m.yaml", "region: cn-hangzhou\ncustom_images: [{name: x}]\n");
    const char *cfg = put_tmp(dir, "config.yaml",
                              "rate_limits: {CreateImag: 1/1s}\n"
                              "endpoint: http://192.0.2.1:8080\n"
                              "metrics_listen: 0.0.0.0:9780\n");
    run_result r = run((const char *[]){"validate", "-c", cfg, "-f", m, NULL});
    cr_expect_eq(r.status, 1, "stderr: %s", r.err);
    const char *wants[] = {
        ":1:15: 'rate_limits': unknown API action 'CreateImag'; did you mean 'CreateCustomImage'?",
        ":2:11: 'endpoint' uses plain http:// to a host that is not loopback",
        "m.yaml:2:24: invalid image name 'x'",
    };
    for (size_t i = 0; i < sizeof(wants) / sizeof(wants[0]); i++)
        cr_expect(strstr(r.err, wants[i]), "want %s\nstderr: %s", wants[i], r.err);
    result_free(&r);

    /* A config that loads, with a metrics_listen run would refuse. */
    cfg = put_tmp(dir, "config2.yaml", "metrics_listen: 0.0.0.0:9780\n");
    const char *good = put_tmp(dir, "good.yaml", "region: cn-hangzhou\n");
    r = run((const char *[]){"validate", "-c", cfg, "-f", good, NULL});
    cr_expect_eq(r.status, 1, "stderr: %s", r.err);
    cr_expect(strstr(r.err, "config2.yaml:1:17: 'metrics_listen' 0.0.0.0:9780 is not a loopback"),
              "stderr: %s", r.err);
    result_free(&r);
    r = run((const char *[]){"validate", "-c", cfg, "-f", good, "--metrics-allow-remote", NULL});
    cr_expect_eq(r.status, 0, "stderr: %s", r.err);
    result_free(&r);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

/* Flags and the environment are checked like the file: an unknown --rate-limit action, and a
 * plain-http endpoint to a host that is not loopback, refused before any request (192.0.2.1 is
 * a documentation address: a request would hang until the test's timeout). */
Test(cli, flags_and_environment_checked)
{
    const char *m = SRC "/examples/manifests/cn-shanghai.yaml";
    run_result r =
        run((const char *[]){"validate", "-f", m, "--rate-limit", "CreateImag=1/1s", NULL});
    cr_expect_eq(r.status, 1);
    cr_expect(strstr(r.err, "--rate-limit 'CreateImag=1/1s': unknown API action 'CreateImag'; did "
                            "you mean 'CreateCustomImage'?"),
              "stderr: %s", r.err);
    result_free(&r);

    r = run((const char *[]){"validate", "-f", m, "--rate-limit", "10/25h", NULL});
    cr_expect_eq(r.status, 1);
    cr_expect(strstr(r.err, "at most 24h"), "stderr: %s", r.err);
    result_free(&r);

    r = run((const char *[]){"plan", "-f", m, "--endpoint", "http://192.0.2.1:8080", NULL});
    cr_expect_eq(r.status, 1, "stderr: %s", r.err);
    cr_expect(strstr(r.err, "--endpoint: endpoint 'http://192.0.2.1:8080' uses plain http://"),
              "stderr: %s", r.err);
    result_free(&r);

    cr_assert_eq(setenv("IMGRECON_ENDPOINT", "http://192.0.2.1", 1), 0);
    r = run((const char *[]){"validate", "-f", m, NULL});
    cr_expect_eq(r.status, 1, "stderr: %s", r.err);
    cr_expect(strstr(r.err, "IMGRECON_ENDPOINT: endpoint 'http://192.0.2.1' uses plain http://"),
              "stderr: %s", r.err);
    result_free(&r);
    r = run((const char *[]){"validate", "-f", m, "--allow-insecure-endpoint", NULL});
    cr_expect_eq(r.status, 0, "stderr: %s", r.err);
    result_free(&r);
    cr_assert_eq(unsetenv("IMGRECON_ENDPOINT"), 0);

    r = run((const char *[]){"validate", "-f", m, "--endpoint", "http://127.0.0.1:1", NULL});
    cr_expect_eq(r.status, 0, "loopback is fine: %s", r.err);
    result_free(&r);
}
