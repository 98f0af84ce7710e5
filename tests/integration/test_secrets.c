/* Secrets never reach any output (issue 7, item 6). Drives the real imgrecon binary through every
 * command that talks to the real emulator, with a distinctive access key secret and STS token,
 * success and failure paths alike (wrong secret, API errors, JSON logs, saved plans, daemon
 * status), then scans everything produced: stdout, stderr, every file in the state directory,
 * the saved plan and the emulator's journal. Also checks that a credentials file readable by
 * others is refused by the CLI with a message that names the file but not its content. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "emu_proc.h"
#include "hook_recv.h"
#include "test_file.h"
#include "test_http.h"
#include "test_proc.h"

#define KEY_ID "LTAIsecretScanKey01"
#define SECRET "sEcReT-imgrecon-0f9a7c1e5d"
#define TOKEN "StsToKeN-imgrecon-77ab31"
#define WAIT_MS 120000

typedef struct ctx {
    emu_proc emu;
    char dir[64];
    char state[128];
    char manifests[128];
    char out[128];
    unsigned n_runs;
} ctx;

/* Fails the test when path (a file) contains the secret or the token anywhere. */
static void assert_clean_file(const char *path)
{
    size_t len = 0;
    char *buf = test_file_read_len(path, &len);
    if (buf == NULL)
        return;
    cr_assert_null(memmem(buf, len, SECRET, strlen(SECRET)), "the secret appears in %s", path);
    cr_assert_null(memmem(buf, len, TOKEN, strlen(TOKEN)), "the STS token appears in %s", path);
    free(buf);
}

/* Scans every regular file under dir, recursively; returns how many were scanned. */
static unsigned scan_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    unsigned n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            n += scan_dir(path);
        } else if (S_ISREG(st.st_mode)) {
            assert_clean_file(path);
            n++;
        }
    }
    closedir(d);
    return n;
}

/* Starts imgrecon with args (NULL-terminated, after argv[0]); stdout+stderr go to a new file in
 * the out directory (its path in outpath). secret is the secret put in the environment (the
 * right one or a wrong one) with the STS token token. Returns the pid. */
static pid_t spawn_tok(ctx *c, const char *secret, const char *token, const char *home,
                       const char *const *args, char outpath[256])
{
    snprintf(outpath, 256, "%s/run-%02u.txt", c->out, c->n_runs++);
    const char *argv[40] = {IMGRECON_BIN};
    size_t n = 1;
    for (size_t i = 0; args[i] != NULL && n < 39; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    char secret_env[128], home_env[160], token_env[160];
    snprintf(secret_env, sizeof(secret_env), "ALIBABA_CLOUD_ACCESS_KEY_SECRET=%s",
             secret ? secret : "");
    snprintf(token_env, sizeof(token_env), "ALIBABA_CLOUD_SECURITY_TOKEN=%s", token);
    snprintf(home_env, sizeof(home_env), "HOME=%s", home);
    const char *env[16] = {"ALIBABA_CLOUD_ACCESS_KEY_ID",
                           "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
                           "ALIBABA_CLOUD_SECURITY_TOKEN",
                           "ALICLOUD_ACCESS_KEY",
                           "ALICLOUD_SECRET_KEY",
                           "CREDENTIALS_DIRECTORY",
                           "IMGRECON_ENDPOINT",
                           home_env,
                           "NO_COLOR=1"};
    size_t e = 9;
    if (secret != NULL) {
        env[e++] = "ALIBABA_CLOUD_ACCESS_KEY_ID=" KEY_ID;
        env[e++] = secret_env;
        env[e++] = token_env;
    }
    env[e] = NULL;
    test_proc_opts o = {.out_path = outpath, .env = env};
    return test_proc_spawn(argv, &o);
}

/* Runs imgrecon to its end like spawn_tok with the token TOKEN. Returns the exit status. */
static int run(ctx *c, const char *secret, const char *home, const char *const *args)
{
    char outpath[256];
    int status = test_proc_wait(spawn_tok(c, secret, TOKEN, home, args, outpath), WAIT_MS);
    return status == -ETIMEDOUT ? 128 + SIGKILL : status;
}

static void setup_ctx(ctx *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->dir, sizeof(c->dir), "/tmp/imgrecon-secrets-XXXXXX");
    cr_assert_not_null(mkdtemp(c->dir));
    snprintf(c->state, sizeof(c->state), "%s/state", c->dir);
    snprintf(c->manifests, sizeof(c->manifests), "%s/manifests", c->dir);
    snprintf(c->out, sizeof(c->out), "%s/out", c->dir);
    cr_assert_eq(mkdir(c->manifests, 0700), 0);
    cr_assert_eq(mkdir(c->out, 0700), 0);

    char path[256];
    snprintf(path, sizeof(path), "%s/fixture.yaml", c->dir);
    test_file_write_mode(path,
                         "accounts:\n"
                         "  - access_key_id: " KEY_ID "\n"
                         "    access_key_secret: " SECRET "\n"
                         "    user_id: 1234567890123456\n"
                         "regions:\n"
                         "  - region: cn-hangzhou\n"
                         "    servers:\n"
                         "      - instance_id: ace0706b2ac4454d984295a94213abcd\n"
                         "        name: web-1\n"
                         "        status: Running\n"
                         "        system_snapshots: [s-sys-0001]\n"
                         "    custom_images:\n"
                         "      - image_id: m-oldsecret0001\n"
                         "        name: old-web\n"
                         "        instance_id: ace0706b2ac4454d984295a94213abcd\n"
                         "        system_snapshot_id: s-sys-0001\n"
                         "        status: \"1\"\n"
                         "        in_share: true\n"
                         "        tags: {imgrecon/owner: team-a}\n",
                         0600);
    const char *args[] = {"--fixture", path, "--rate-limit", "10/1s", "--create-delay",
                          "200ms",     NULL};
    int rc = emu_proc_start(&c->emu, args);
    cr_assert_eq(rc, 0, "emulator: %s", strerror(-rc));

    snprintf(path, sizeof(path), "%s/images.yaml", c->manifests);
    test_file_write_mode(path,
                         "region: cn-hangzhou\n"
                         "custom_images:\n"
                         "  - name: web-secret-test\n"
                         "    instance_id: ace0706b2ac4454d984295a94213abcd\n"
                         "    system_snapshot_id: s-sys-0001\n"
                         "    share_to_ecs: true\n",
                         0600);
    snprintf(path, sizeof(path), "%s/config.yaml", c->dir);
    test_file_write_mode(
        path, "owner: team-a\nprune: true\nallow_empty: false\nmetrics_listen: null\n", 0600);
}

static void teardown_ctx(ctx *c)
{
    if (c->emu.pid > 0)
        (void)emu_proc_stop(&c->emu);
    (void)test_file_remove_tree(c->dir);
}

Test(secrets, never_in_any_output)
{
    ctx c;
    setup_ctx(&c);
    char cfg[256], planfile[256];
    snprintf(cfg, sizeof(cfg), "%s/config.yaml", c.dir);
    snprintf(planfile, sizeof(planfile), "%s/saved.plan", c.state);
    const char *common[] = {"-c",          cfg,        "--endpoint",   c.emu.base_url,
                            "--state-dir", c.state,    "--rate-limit", "10/1s",
                            "-f",          c.manifests};
#define CMD(...)                                                                                   \
    (const char *const[]){__VA_ARGS__, common[0], common[1], common[2], common[3], common[4],      \
                          common[5],   common[6], common[7], common[8], common[9], NULL}

    /* Success paths, verbose and JSON logs included. */
    cr_expect_eq(run(&c, SECRET, c.dir, CMD("validate")), 0);
    cr_expect_eq(run(&c, SECRET, c.dir, CMD("plan", "-v", "-v")), 0);
    cr_expect_eq(run(&c, SECRET, c.dir, CMD("plan", "--json")), 0);
    cr_expect_eq(run(&c, SECRET, c.dir, CMD("plan", "--out", planfile)), 0);
    cr_expect_eq(
        run(&c, SECRET, c.dir, CMD("apply", "--auto-approve", "-v", "--log-format", "json")), 0);
    cr_expect_eq(run(&c, SECRET, c.dir, CMD("run", "--once", "-v", "--log-format", "json")), 0);
    /* The --once daemon has stopped: status says "not running" and exits 1 (README). */
    cr_expect_eq(run(&c, SECRET, c.dir, CMD("status", "--json")), 1);
    cr_expect_eq(
        run(&c, SECRET, c.dir,
            (const char *const[]){"api", "swas", "ListCustomImages", "RegionId=cn-hangzhou",
                                  "--endpoint", c.emu.base_url, "--state-dir", c.state,
                                  "--rate-limit", "10/1s", "-v", NULL}),
        0);
    /* Failure paths: an API error, then a wrong secret (SignatureDoesNotMatch echoes the string
     * to sign, which must not carry the secret either). */
    cr_expect_eq(
        run(&c, SECRET, c.dir,
            (const char *const[]){"api", "swas", "DeleteCustomImage", "RegionId=cn-hangzhou",
                                  "ImageId=m-doesnotexist", "--endpoint", c.emu.base_url,
                                  "--state-dir", c.state, "--rate-limit", "10/1s", "-v", NULL}),
        1);
    cr_expect_eq(run(&c, "wrong-" SECRET, c.dir, CMD("plan", "-v")), 1);
    cr_expect_eq(run(&c, "wrong-" SECRET, c.dir,
                     (const char *const[]){"api", "swas", "ListCustomImages",
                                           "RegionId=cn-hangzhou", "--endpoint", c.emu.base_url,
                                           "--state-dir", c.state, "--rate-limit", "10/1s", NULL}),
                 1);

    /* Everything produced: the command outputs, the state directory, the emulator journal. */
    unsigned scanned = scan_dir(c.out) + scan_dir(c.state);
    assert_clean_file(c.emu.journal);
    cr_expect_geq(scanned, c.n_runs + 2, "scanned %u files", scanned);

    /* The wrong-secret run did fail for the right reason (so the scan above covered it). */
    char path[256];
    snprintf(path, sizeof(path), "%s/run-%02u.txt", c.out, c.n_runs - 1);
    char *text = test_file_read_len(path, NULL);
    cr_assert_not_null(text);
    cr_expect_not_null(strstr(text, "SignatureDoesNotMatch"), "wrong-secret output: %s", text);
    free(text);
    teardown_ctx(&c);
}

Test(secrets, loose_credentials_file_refused)
{
    ctx c;
    setup_ctx(&c);
    char home[256], dir[300], file[320];
    snprintf(home, sizeof(home), "%s/home", c.dir);
    snprintf(dir, sizeof(dir), "%s/.aliyun", home);
    snprintf(file, sizeof(file), "%s/config.json", dir);
    cr_assert_eq(mkdir(home, 0700), 0);
    cr_assert_eq(mkdir(dir, 0700), 0);
    test_file_write_mode(
        file,
        "{\"current\":\"default\",\"profiles\":[{\"name\":\"default\",\"mode\":\"AK\","
        "\"access_key_id\":\"" KEY_ID "\",\"access_key_secret\":\"" SECRET "\"}]}",
        0644);
    const char *args[] = {"plan",  "--endpoint", c.emu.base_url, "--state-dir",
                          c.state, "-f",         c.manifests,    NULL};
    cr_expect_eq(run(&c, NULL, home, args), 1);
    char path[256];
    snprintf(path, sizeof(path), "%s/run-%02u.txt", c.out, c.n_runs - 1);
    char *text = test_file_read_len(path, NULL);
    cr_assert_not_null(text);
    cr_expect_not_null(strstr(text, "config.json"), "names the file: %s", text);
    cr_expect_not_null(strstr(text, "0644"), "names the mode: %s", text);
    cr_expect_null(strstr(text, SECRET));
    free(text);

    /* Tightened to 0600, the same file is accepted. */
    cr_assert_eq(chmod(file, 0600), 0);
    cr_expect_eq(run(&c, NULL, home, args), 0);
    (void)scan_dir(c.out);
    teardown_ctx(&c);
}

/* An STS token as the cloud issues them, with '/', '+' and '='; TOKEN_MARK is in every form of
 * it (raw, percent-encoded once and twice). */
#define V1_TOKEN "CAISTokSECRETvalue/abc+def="
#define TOKEN_MARK "CAISTokSECRETvalue"

/* Fails the test when text holds the token in any form. */
static void assert_no_token(const char *what, const char *text)
{
    cr_assert_not_null(text, "%s was read", what);
    cr_expect_null(strstr(text, TOKEN_MARK), "the STS token appears in %s: %s", what, text);
}

/* With `signature: v1`, a wrong secret makes the API answer SignatureDoesNotMatch with its
 * string to sign, which quotes the SecurityToken percent-encoded twice (provider/README.md). That
 * token never reaches the CLI's stderr, the daemon's log, status.json, /readyz or a webhook. */
Test(secrets, v1_string_to_sign_never_shows_the_token, .timeout = 240)
{
    ctx c;
    setup_ctx(&c);
    hook_recv *hooks = NULL;
    cr_assert_eq(hook_recv_start(NULL, &hooks), 0);
    char cfg[256], text[1024];
    snprintf(cfg, sizeof(cfg), "%s/config-v1.yaml", c.dir);
    snprintf(text, sizeof(text),
             "owner: team-a\nsignature: v1\nmetrics_listen: 127.0.0.1:0\n"
             "notify:\n  - url: %s\n    events: [failed]\n",
             hook_recv_url(hooks));
    test_file_write_mode(cfg, text, 0600);
    const char *wrong = "wrong-" SECRET;

    /* The CLI: plan prints the API's message on stderr. */
    const char *plan[] = {"plan",        "-v",    "-c", cfg,         "--endpoint", c.emu.base_url,
                          "--state-dir", c.state, "-f", c.manifests, NULL};
    char out[256];
    cr_expect_eq(test_proc_wait(spawn_tok(&c, wrong, V1_TOKEN, c.dir, plan, out), WAIT_MS), 1);
    char *plan_out = test_file_read(out);
    cr_assert_not_null(plan_out);
    cr_expect_not_null(strstr(plan_out, "SignatureDoesNotMatch"), "plan: %s", plan_out);
    cr_expect_not_null(strstr(plan_out, "SecurityToken%3D***%26"), "plan: %s", plan_out);
    assert_no_token("plan's output", plan_out);
    free(plan_out);

    /* The daemon: its log, the failed webhook, /readyz and status.json. */
    const char *daemon[] = {"run",          "--interval",  "1h",    "-c", cfg,         "--endpoint",
                            c.emu.base_url, "--state-dir", c.state, "-f", c.manifests, NULL};
    char log[256];
    pid_t pid = spawn_tok(&c, wrong, V1_TOKEN, c.dir, daemon, log);
    json_t *failed = hook_recv_wait(hooks, "failed", 0, WAIT_MS);
    cr_assert_not_null(failed, "a failed notification; log:\n%s", test_file_read(log));
    char *body = json_dumps(failed, 0);
    cr_expect_not_null(strstr(body, "SignatureDoesNotMatch"), "webhook: %s", body);
    assert_no_token("the webhook", body);
    free(body);
    json_decref(failed);

    char addr_path[256], url[256];
    snprintf(addr_path, sizeof(addr_path), "%s/metrics.addr", c.state);
    char *addr = test_file_read(addr_path);
    cr_assert_not_null(addr, "metrics.addr is written before the first cycle ends");
    addr[strcspn(addr, "\n")] = '\0';
    snprintf(url, sizeof(url), "http://%s/readyz", addr);
    free(addr);
    char *ready = NULL;
    cr_expect_eq(test_http_get(url, &ready), 503);
    cr_expect_not_null(strstr(ready, "SignatureDoesNotMatch"), "readyz: %s", ready);
    assert_no_token("/readyz", ready);
    free(ready);

    cr_assert_eq(kill(pid, SIGTERM), 0);
    cr_expect_eq(test_proc_wait(pid, WAIT_MS), 0);
    char *log_text = test_file_read(log);
    cr_expect_not_null(strstr(log_text, "SecurityToken%3D***%26"), "log: %s", log_text);
    assert_no_token("the daemon's log", log_text);
    free(log_text);

    char status_path[256];
    snprintf(status_path, sizeof(status_path), "%s/status.json", c.state);
    char *status = test_file_read(status_path);
    cr_expect_not_null(strstr(status, "SignatureDoesNotMatch"), "status.json: %s", status);
    assert_no_token("status.json", status);
    free(status);
    struct stat st;
    cr_assert_eq(stat(status_path, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0640, "status.json is 0640, not %04o", st.st_mode & 0777);

    /* And `imgrecon status`, which shows the last error. */
    const char *show[] = {"status", "--state-dir", c.state, NULL};
    (void)test_proc_wait(spawn_tok(&c, NULL, V1_TOKEN, c.dir, show, out), WAIT_MS);
    char *shown = test_file_read(out);
    assert_no_token("imgrecon status", shown);
    free(shown);
    hook_recv_stop(hooks);
    teardown_ctx(&c);
}
