/* Credentials against the real emulator (issue 13 items 8 and 9), through the real imgrecon
 * binary: a daemon on a RamRoleArn profile keeps working across several STS expiries (5 s
 * credentials) with no failed call; OIDC (RRSA) variables drive a plan; two processes with two
 * keys of one account share one budget at a scaled limit, so the emulator (which counts per
 * account, like the cloud) throttles nothing. */
#include "apply_support.h"

#define SECOND_ID "LTAIsecondKeyOfDemo01"
#define SECOND_SECRET "second-demo-secret"
#define UID "1234567890123456"
#define ROLE "acs:ram::" UID ":role/deployer"
#define SRV0 "ace0706b2ac4454d984295a94213ab00"

static env E;

static void setup(void)
{
    env_init(&E);
}

static void teardown(void)
{
    env_fini(&E);
}

TestSuite(cred, .init = setup, .fini = teardown, .timeout = 180);

/* The demo account with a second key (a RAM user of the same account) and one server. */
static void write_two_key_fixture(void)
{
    write_file(E.fixture, "accounts:\n"
                          "  - access_key_id: " KEY_ID "\n    access_key_secret: " KEY_SECRET
                          "\n    user_id: " UID "\n"
                          "  - access_key_id: " SECOND_ID "\n    access_key_secret: " SECOND_SECRET
                          "\n    user_id: " UID "\n"
                          "regions:\n  - region: cn-hangzhou\n    servers:\n"
                          "      - instance_id: " SRV0 "\n        name: web-0\n"
                          "        status: Running\n        system_snapshots: [s-sys-00]\n");
}

/* Starts imgrecon with no credentials in its environment except envs ("NAME=value", NULL
 * terminated), HOME=home when not NULL, and the common test options with rate. */
static pid_t spawn_with(const char *outpath, const char *home, const char *rate,
                        const char *const *envs, const char *const *args)
{
    const char *argv[48] = {IMGRECON_BIN,   args[0],        "-c",          E.config,
                            "--endpoint",   E.emu.base_url, "--state-dir", E.state,
                            "--rate-limit", rate,           "--no-color"};
    size_t n = 11;
    for (size_t i = 1; args[i] != NULL && n < 47; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    static const char *const clear[] = {"ALIBABA_CLOUD_ACCESS_KEY_ID",
                                        "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
                                        "ALIBABA_CLOUD_SECURITY_TOKEN",
                                        "ALICLOUD_ACCESS_KEY",
                                        "ALICLOUD_SECRET_KEY",
                                        "CREDENTIALS_DIRECTORY",
                                        "ALIBABA_CLOUD_PROFILE",
                                        "ALIBABA_CLOUD_CREDENTIALS_FILE",
                                        "ALIBABA_CLOUD_ROLE_ARN",
                                        "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
                                        "ALIBABA_CLOUD_OIDC_TOKEN_FILE",
                                        "IMGRECON_ENDPOINT",
                                        NULL};
    /* The edits in order: clear the ambient credentials, then HOME, envs and NO_COLOR. */
    const char *edits[48];
    char home_env[256];
    n = 0;
    for (size_t i = 0; clear[i]; i++)
        edits[n++] = clear[i];
    if (home != NULL) {
        snprintf(home_env, sizeof(home_env), "HOME=%s", home);
        edits[n++] = home_env;
    }
    for (size_t i = 0; envs && envs[i] && n < 46; i++)
        edits[n++] = envs[i];
    edits[n++] = "NO_COLOR=1";
    edits[n] = NULL;
    test_proc_opts o = {.out_path = outpath, .env = edits, .wrap = true};
    return test_proc_spawn(argv, &o);
}

/* Lines of the journal with this code (NULL: the successful ones) and action (NULL: any). */
static size_t count_lines(json_t *j, const char *action, const char *code, bool any_code)
{
    size_t n = 0, i;
    json_t *line;
    json_array_foreach(j, i, line)
    {
        const char *a = jstr(line, "action");
        const char *c = jstr(line, "code");
        if (action && (!a || strcmp(a, action) != 0))
            continue;
        if (any_code || (code == NULL ? c == NULL : (c && strcmp(c, code) == 0)))
            n++;
    }
    return n;
}

/* Item 9: two keys of one account in two concurrent processes share the account's budget. */
Test(cred, two_keys_one_account_share_budget)
{
    write_two_key_fixture();
    const char *extra[] = {"--rate-limit", "4/2s", NULL};
    start_emu(&E, NULL, extra);
    const char *env_a[] = {"ALIBABA_CLOUD_ACCESS_KEY_ID=" KEY_ID,
                           "ALIBABA_CLOUD_ACCESS_KEY_SECRET=" KEY_SECRET, NULL};
    const char *env_b[] = {"ALIBABA_CLOUD_ACCESS_KEY_ID=" SECOND_ID,
                           "ALIBABA_CLOUD_ACCESS_KEY_SECRET=" SECOND_SECRET, NULL};
    enum { ROUNDS = 5 };
    for (int round = 0; round < ROUNDS; round++) {
        char out_a[160], out_b[160];
        snprintf(out_a, sizeof(out_a), "%s/a-%d.txt", E.dir, round);
        snprintf(out_b, sizeof(out_b), "%s/b-%d.txt", E.dir, round);
        const char *args[] = {"api", "swas", "ListCustomImages", "RegionId=cn-hangzhou", NULL};
        pid_t a = spawn_with(out_a, NULL, "4/2s", env_a, args);
        pid_t b = spawn_with(out_b, NULL, "4/2s", env_b, args);
        int sa = wait_child(a, RUN_TIMEOUT_MS), sb = wait_child(b, RUN_TIMEOUT_MS);
        char *ta = read_file(out_a), *tb = read_file(out_b);
        cr_assert_eq(sa, 0, "key A: %s", ta);
        cr_assert_eq(sb, 0, "key B: %s", tb);
        free(ta);
        free(tb);
    }
    json_t *j = journal_lines(&E);
    cr_expect_eq(count_lines(j, "ListCustomImages", NULL, false), 2 * ROUNDS);
    cr_expect_eq(count_lines(j, NULL, "Throttling.User", false), 0, "throttled calls");
    /* The account id was asked once per key and then read from the state directory. */
    cr_expect_eq(count_lines(j, "GetCallerIdentity", NULL, true), 2);
    json_decref(j);
    char path[256];
    snprintf(path, sizeof(path), "%s/account_ids", E.state);
    char *cache = read_file(path);
    cr_expect_not_null(strstr(cache, " " UID "\n"), "%s", cache);
    cr_expect_null(strstr(cache, KEY_ID), "the cache names key ids in clear: %s", cache);
    free(cache);
}

/* Lines of the journal with this action (NULL: any) signed with this access key id. */
static size_t count_signed(json_t *j, const char *action, const char *key)
{
    size_t n = 0, i;
    json_t *line;
    json_array_foreach(j, i, line)
    {
        const char *a = jstr(line, "action");
        const char *k = jstr(line, "access_key_id");
        if ((action == NULL || (a && strcmp(a, action) == 0)) && k && strcmp(k, key) == 0)
            n++;
    }
    return n;
}

/* Polls the journal (bounded) until it has at least n lines of action signed with key (NULL:
 * any key, any code). */
static bool await_signed(const char *action, const char *key, size_t n, int timeout_ms)
{
    int until = mono_ms_now() + timeout_ms;
    for (;;) {
        json_t *j = emu_proc_journal(&E.emu);
        size_t have = 0;
        if (j != NULL)
            have = key ? count_signed(j, action, key) : count_lines(j, action, NULL, true);
        json_decref(j);
        if (have >= n)
            return true;
        if (mono_ms_now() > until)
            return false;
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* Polls the journal (bounded) until it has at least n lines of action. */
static bool await_lines(const char *action, size_t n, int timeout_ms)
{
    return await_signed(action, NULL, n, timeout_ms);
}

/* A HOME (under E.dir, into home) whose ~/.aliyun/config.json has one RamRoleArn profile. */
static void write_role_home(char *home, size_t size)
{
    char dir[200], cfg[260];
    snprintf(home, size, "%s/home", E.dir);
    snprintf(dir, sizeof(dir), "%s/.aliyun", home);
    cr_assert_eq(mkdir(home, 0700), 0);
    cr_assert_eq(mkdir(dir, 0700), 0);
    snprintf(cfg, sizeof(cfg), "%s/config.json", dir);
    write_file(cfg,
               "{\"current\": \"r\", \"profiles\": [{\"name\": \"r\", \"mode\": \"RamRoleArn\","
               " \"access_key_id\": \"" KEY_ID "\", \"access_key_secret\": \"" KEY_SECRET "\","
               " \"ram_role_arn\": \"" ROLE "\", \"ram_session_name\": \"daemon\"}]}");
    cr_assert_eq(chmod(cfg, 0600), 0);
}

/* A daemon cycling every second on a RamRoleArn profile (write_role_home) against an emulator
 * issuing STS credentials of sts_duration, one image declared; its output goes to out. */
static pid_t start_role_daemon(const char *sts_duration, char *out, size_t out_size)
{
    write_fixture(&E, 1, NULL, NULL);
    const char *extra[] = {"--sts-duration", sts_duration, NULL};
    start_emu(&E, NULL, extra);
    char home[160];
    write_role_home(home, sizeof(home));
    write_file(E.manifest,
               "region: cn-hangzhou\ncustom_images:\n"
               "  - name: web-a\n    instance_id: " SRV0 "\n    system_snapshot_id: s-sys-00\n");
    snprintf(out, out_size, "%s/daemon.txt", E.dir);
    const char *args[] = {"run", "-f", E.manifest, "--interval", "1s", NULL};
    return spawn_with(out, home, "10/1s", NULL, args);
}

/* Item 8: a RamRoleArn profile, 5 s credentials, a daemon cycling every second across several
 * expiries: every call succeeds and every SWAS call is signed with a live STS key. */
Test(cred, daemon_ram_role_arn_across_expiries)
{
    char out[160];
    pid_t pid = start_role_daemon("5s", out, sizeof(out));
    /* The first AssumeRole and three refreshes: at least 15 s of 5 s credentials. */
    bool ok = await_lines("AssumeRole", 4, 60000);
    bool cycled = ok && await_lines("ListCustomImages", 12, 30000);
    kill(pid, SIGTERM);
    int st = wait_child(pid, RUN_TIMEOUT_MS);
    char *text = read_file(out);
    cr_expect(ok && cycled, "not enough refreshes or cycles:\n%s", text);
    cr_expect_eq(st, 0, "daemon exit %d:\n%s", st, text);
    free(text);
    json_t *j = journal_lines(&E);
    size_t all = count_lines(j, NULL, NULL, true), good = count_lines(j, NULL, NULL, false);
    cr_expect_eq(good, all, "%zu of %zu calls failed", all - good, all);
    size_t i;
    json_t *line;
    json_array_foreach(j, i, line)
    {
        const char *a = jstr(line, "action");
        const char *k = jstr(line, "access_key_id");
        if (a && strcmp(a, "ListCustomImages") == 0)
            cr_expect(k && strncmp(k, "STS.", 4) == 0, "SWAS call signed with %s", k);
    }
    json_decref(j);
}

/* The refresh runs off the daemon's loop: while STS takes 2.5 s to answer the refresh (a
 * scripted delay), the daemon goes on cycling every second with the credential it has (valid
 * for 10 s, refreshed from half its life), and then signs with the new one. A refresh on the
 * loop stopped every call for the whole delay. */
Test(cred, a_slow_sts_refresh_does_not_stall_the_daemon)
{
    const long delay_ms = 2500;
    char out[160];
    pid_t pid = start_role_daemon("10s", out, sizeof(out));
    cr_assert(await_lines("AssumeRole", 1, 30000), "no AssumeRole:\n%s", read_file(out));
    char fault[128];
    snprintf(fault, sizeof(fault),
             "{\"action\":\"AssumeRole\",\"kind\":\"delay\",\"count\":1,"
             "\"delay_ms\":%ld}",
             delay_ms);
    cr_assert_eq(emu_proc_add_fault(&E.emu, fault), 0);
    bool refreshed = await_lines("AssumeRole", 2, 30000);
    kill(pid, SIGTERM);
    int st = wait_child(pid, RUN_TIMEOUT_MS);
    char *text = read_file(out);
    cr_assert(refreshed, "no refresh:\n%s", text);
    cr_expect_eq(st, 0, "daemon exit %d:\n%s", st, text);
    /* The delayed AssumeRole is journaled when answered; the calls answered while it waited: */
    json_t *j = journal_lines(&E);
    long answered = 0;
    size_t i, during = 0, failed = 0, roles = 0;
    json_t *line;
    json_array_foreach(j, i, line)
    {
        const char *a = jstr(line, "action");
        if (a && strcmp(a, "AssumeRole") == 0 && ++roles == 2)
            answered = emu_proc_line_ms(line);
    }
    json_array_foreach(j, i, line)
    {
        const char *a = jstr(line, "action");
        long t = emu_proc_line_ms(line);
        if (a && strcmp(a, "ListCustomImages") == 0 && t > answered - delay_ms + 300 &&
            t < answered - 100)
            during++;
        if (jstr(line, "code") != NULL)
            failed++;
    }
    json_decref(j);
    cr_expect_geq(during, 1, "no call answered during the %ld ms refresh:\n%s", delay_ms, text);
    cr_expect_eq(failed, 0, "%zu calls failed:\n%s", failed, text);
    free(text);
}

/* A SIGHUP that changes nothing, on a daemon whose RamRoleArn profile (write_role_home) is
 * refused (mode 0644) when break_file, else left alone; the role's 4 s credentials are
 * refreshed from half their life, until the journal has assume_roles AssumeRole lines. Returns
 * the output after SIGTERM (caller frees); every call of the journal succeeded and no refresh
 * failed. */
static char *reload_then_refresh(bool break_file, size_t assume_roles)
{
    char out[160], cfg[200];
    pid_t pid = start_role_daemon("4s", out, sizeof(out));
    cr_assert(await_lines("AssumeRole", 1, 30000), "no AssumeRole:\n%s", read_file(out));
    snprintf(cfg, sizeof(cfg), "%s/home/.aliyun/config.json", E.dir);
    if (break_file)
        cr_assert_eq(chmod(cfg, 0644), 0);
    cr_assert_eq(kill(pid, SIGHUP), 0);
    bool reloaded = test_proc_await_output(pid, out, "msg=\"reloaded\"", 30000);
    /* Two refreshes after the reload, after the AssumeRole of the reload when there is one. */
    bool refreshed = reloaded && await_lines("AssumeRole", assume_roles, 30000);
    kill(pid, SIGTERM);
    int st = wait_child(pid, RUN_TIMEOUT_MS);
    char *text = read_file(out);
    cr_expect(reloaded, "no reload:\n%s", text);
    cr_expect(refreshed, "no refresh after the reload:\n%s", text);
    cr_expect_eq(st, 0, "daemon exit %d:\n%s", st, text);
    cr_expect_null(strstr(text, "credential refresh failed"), "%s", text);
    json_t *j = journal_lines(&E);
    size_t all = count_lines(j, NULL, NULL, true), good = count_lines(j, NULL, NULL, false);
    cr_expect_eq(good, all, "%zu of %zu calls failed", all - good, all);
    json_decref(j);
    return text;
}

/* A SIGHUP that changes nothing while the credentials file cannot be read again keeps the
 * credentials and the client but replaces the config: the refreshes after it still reach STS at
 * the endpoint, with the profile, as before (the credential keeps its base key, the file is not
 * read again). The refresh once read both from the replaced config after it was freed (ASan: use
 * after free on the refresh thread; without it, a refresh sent wherever the freed memory then
 * pointed). */
Test(cred, refreshes_after_a_reload_use_the_setup_own_settings)
{
    char *text = reload_then_refresh(true, 3);
    cr_expect_not_null(strstr(text, "credentials could not be re-read; keeping the previous ones"),
                       "%s", text);
    free(text);
}

/* A SIGHUP assumes the role again (the reload's AssumeRole), and the new setup refreshes that
 * credential in turn, with no failed call. */
Test(cred, refreshes_after_a_reload_that_assumes_the_role_again)
{
    char *text = reload_then_refresh(false, 4);
    cr_expect_null(strstr(text, "could not be re-read"), "%s", text);
    free(text);
}

/* ~/.aliyun/config.json under home (mode 0600) with one AK profile of this key. */
static void write_key_profile(const char *home, const char *id, const char *secret)
{
    char path[260], text[512];
    snprintf(path, sizeof(path), "%s/.aliyun/config.json", home);
    snprintf(text, sizeof(text),
             "{\"current\": \"k\", \"profiles\": [{\"name\": \"k\", \"mode\": \"AK\","
             " \"access_key_id\": \"%s\", \"access_key_secret\": \"%s\"}]}",
             id, secret);
    test_file_write_mode(path, text, 0600);
}

/* A daemon cycling every second with the demo key of an AK profile in ~/.aliyun/config.json
 * (home, under E.dir) against the two-key account, one image declared; output in out. It has
 * made a call signed with the demo key when this returns. */
static pid_t start_key_daemon(char *home, size_t home_size, char *out, size_t out_size)
{
    write_two_key_fixture();
    start_emu(&E, NULL, NULL);
    char dir[200];
    snprintf(home, home_size, "%s/home", E.dir);
    snprintf(dir, sizeof(dir), "%s/.aliyun", home);
    cr_assert_eq(mkdir(home, 0700), 0);
    cr_assert_eq(mkdir(dir, 0700), 0);
    write_key_profile(home, KEY_ID, KEY_SECRET);
    write_file(E.manifest,
               "region: cn-hangzhou\ncustom_images:\n"
               "  - name: web-a\n    instance_id: " SRV0 "\n    system_snapshot_id: s-sys-00\n");
    snprintf(out, out_size, "%s/daemon.txt", E.dir);
    const char *args[] = {"run", "-f", E.manifest, "--interval", "1s", NULL};
    pid_t pid = spawn_with(out, home, "10/1s", NULL, args);
    cr_assert(await_signed("ListCustomImages", KEY_ID, 1, 30000), "no call:\n%s", read_file(out));
    return pid;
}

/* A key rotated in the credentials file is read again on SIGHUP: the calls after the reload
 * are signed with the new key, and none with the old one after the first with the new one. */
Test(cred, a_reload_reads_a_rotated_key)
{
    char home[160], out[160];
    pid_t pid = start_key_daemon(home, sizeof(home), out, sizeof(out));
    write_key_profile(home, SECOND_ID, SECOND_SECRET);
    cr_assert_eq(kill(pid, SIGHUP), 0);
    bool reloaded = test_proc_await_output(pid, out, "msg=\"reloaded\"", 30000);
    bool signed_new = reloaded && await_signed("ListCustomImages", SECOND_ID, 2, 30000);
    kill(pid, SIGTERM);
    int st = wait_child(pid, RUN_TIMEOUT_MS);
    char *text = read_file(out);
    cr_expect(reloaded, "no reload:\n%s", text);
    cr_expect(signed_new, "no call signed with the new key after the reload:\n%s", text);
    cr_expect_eq(st, 0, "daemon exit %d:\n%s", st, text);
    cr_expect_null(strstr(text, SECOND_SECRET), "%s", text);
    free(text);
    json_t *j = journal_lines(&E);
    size_t i;
    json_t *line;
    bool rotated = false;
    json_array_foreach(j, i, line)
    {
        const char *k = jstr(line, "access_key_id");
        rotated = rotated || (k && strcmp(k, SECOND_ID) == 0);
        cr_expect(!rotated || (k && strcmp(k, SECOND_ID) == 0), "line %zu signed with %s", i, k);
    }
    cr_expect_eq(count_lines(j, NULL, NULL, true), count_lines(j, NULL, NULL, false),
                 "failed calls");
    json_decref(j);
}

/* A credentials file that cannot be read again (malformed, or readable by others: mode 0644)
 * does not stop a reload: the new manifest is used, a warning says the previous credentials
 * stay, the calls go on signed with the old key, and no secret reaches the output. */
static void reload_keeps_the_key(bool malformed)
{
    char home[160], out[160], path[260];
    pid_t pid = start_key_daemon(home, sizeof(home), out, sizeof(out));
    snprintf(path, sizeof(path), "%s/.aliyun/config.json", home);
    if (malformed)
        /* The syntax error is next to the secret: a parser's message quoting it would leak it. */
        test_file_write_mode(path,
                             "{\"profiles\": [{\"name\": \"k\", \"access_key_secret\": "
                             "\"" SECOND_SECRET "\" \"" SECOND_SECRET "\"",
                             0600);
    else
        test_file_write_mode(path,
                             "{\"current\": \"k\", \"profiles\": [{\"name\": \"k\", "
                             "\"mode\": \"AK\", \"access_key_id\": \"" SECOND_ID "\", "
                             "\"access_key_secret\": \"" SECOND_SECRET "\"}]}",
                             0644);
    test_file_replace(E.manifest, "region: cn-hangzhou\ncustom_images:\n"
                                  "  - name: web-a\n    instance_id: " SRV0
                                  "\n    system_snapshot_id: s-sys-00\n"
                                  "  - name: web-b\n    instance_id: " SRV0
                                  "\n    system_snapshot_id: s-sys-00\n");
    json_t *j = journal_lines(&E);
    size_t before = count_signed(j, "ListCustomImages", KEY_ID);
    json_decref(j);
    cr_assert_eq(kill(pid, SIGHUP), 0);
    bool reloaded = test_proc_await_output(pid, out, "msg=\"reloaded\" images=2", 30000);
    bool went_on = reloaded && await_signed("ListCustomImages", KEY_ID, before + 2, 30000);
    kill(pid, SIGTERM);
    int st = wait_child(pid, RUN_TIMEOUT_MS);
    char *text = read_file(out);
    cr_expect(reloaded, "no reload with two images:\n%s", text);
    cr_expect(went_on, "no call signed with the old key after the reload:\n%s", text);
    cr_expect_eq(st, 0, "daemon exit %d:\n%s", st, text);
    const char *warn = strstr(text, "credentials could not be re-read; keeping the previous ones");
    cr_expect_not_null(warn, "no warning:\n%s", text);
    cr_expect(warn == NULL || strstr(warn, "config.json") != NULL, "the error names no file:\n%s",
              text);
    cr_expect_null(strstr(text, SECOND_SECRET), "%s", text);
    cr_expect_null(strstr(text, KEY_SECRET), "%s", text);
    free(text);
    j = journal_lines(&E);
    cr_expect_eq(count_signed(j, NULL, SECOND_ID), 0, "calls signed with the unreadable key");
    json_decref(j);
}

Test(cred, a_reload_keeps_the_key_of_a_malformed_file)
{
    reload_keeps_the_key(true);
}

Test(cred, a_reload_keeps_the_key_of_a_file_others_can_read)
{
    reload_keeps_the_key(false);
}

/* Item 8: the RRSA variables alone are enough for a plan; the token never reaches output. */
Test(cred, oidc_plan)
{
    write_fixture(&E, 1, NULL, NULL);
    const char *extra[] = {"--sts-duration", "5s", NULL};
    start_emu(&E, NULL, extra);
    char token[160], env_file[200];
    snprintf(token, sizeof(token), "%s/token", E.dir);
    write_file(token, "eyJoidc-token-value\n");
    snprintf(env_file, sizeof(env_file), "ALIBABA_CLOUD_OIDC_TOKEN_FILE=%s", token);
    const char *envs[] = {"ALIBABA_CLOUD_ROLE_ARN=" ROLE,
                          "ALIBABA_CLOUD_OIDC_PROVIDER_ARN=acs:ram::" UID ":oidc-provider/ack",
                          env_file, NULL};
    write_file(E.manifest, "region: cn-hangzhou\ncustom_images: []\n");
    char out[160];
    snprintf(out, sizeof(out), "%s/plan.txt", E.dir);
    const char *args[] = {"plan", "-f", E.manifest, NULL};
    int st = wait_child(spawn_with(out, NULL, "10/1s", envs, args), RUN_TIMEOUT_MS);
    char *text = read_file(out);
    cr_expect_eq(st, 0, "plan: exit %d\n%s", st, text);
    cr_expect_null(strstr(text, "eyJoidc"), "%s", text);
    free(text);
    json_t *j = journal_lines(&E);
    cr_expect_eq(count_lines(j, "AssumeRoleWithOIDC", NULL, false), 1);
    cr_expect_eq(count_lines(j, "GetCallerIdentity", NULL, true), 0, "account id from the ARN");
    char *dump = json_dumps(j, 0);
    cr_expect_null(strstr(dump, "eyJoidc"), "the journal holds the OIDC token");
    free(dump);
    json_decref(j);
}

/* Item 7: a running imgrecon has overwritten the secret in its initial environment block (what
 * /proc/<pid>/environ shows) and is not dumpable: its /proc files belong to root even though it
 * runs as nobody. The call is held by a scripted delay so the process stays up to be looked at. */
Test(cred, environment_wiped_and_not_dumpable)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to run imgrecon as another user");
    write_fixture(&E, 1, NULL, NULL);
    start_emu(&E, NULL, NULL);
    cr_assert_eq(emu_proc_add_fault(&E.emu, "{\"action\":\"ListCustomImages\",\"kind\":\"delay\","
                                            "\"delay_ms\":4000,\"count\":1}"),
                 0);
    /* Another user must reach the binary, the config and the state directory. */
    char bin[160], state[160];
    snprintf(bin, sizeof(bin), "%s/imgrecon", E.dir);
    snprintf(state, sizeof(state), "%s/nobody-state", E.dir);
    char *text = NULL;
    size_t len = 0;
    FILE *in = fopen(IMGRECON_BIN, "rb"), *out = fopen(bin, "wb");
    cr_assert(in && out);
    char buf[65536];
    while ((len = fread(buf, 1, sizeof(buf), in)) > 0)
        cr_assert_eq(fwrite(buf, 1, len, out), len);
    fclose(in);
    cr_assert_eq(fclose(out), 0);
    cr_assert_eq(chmod(bin, 0755), 0);
    cr_assert_eq(chmod(E.dir, 0755), 0);
    cr_assert_eq(mkdir(state, 0700), 0);
    cr_assert_eq(chown(state, 65534, 65534), 0);
    cr_assert_eq(chmod(E.config, 0644), 0);

    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        if (setgid(65534) != 0 || setuid(65534) != 0)
            _exit(126);
        setenv("HOME", state, 1);
        setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", KEY_ID, 1);
        setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", KEY_SECRET, 1);
        unsetenv("CREDENTIALS_DIRECTORY");
        execl(bin, bin, "api", "swas", "ListCustomImages", "RegionId=cn-hangzhou", "-c", E.config,
              "--endpoint", E.emu.base_url, "--state-dir", state, (char *)NULL);
        _exit(127);
    }
    char environ_path[64];
    snprintf(environ_path, sizeof(environ_path), "/proc/%d/environ", (int)pid);
    /* Bounded wait for the chain to have read (and wiped) the variables. */
    bool wiped = false;
    for (int i = 0; i < 100 && !wiped; i++) {
        free(text);
        text = NULL;
        FILE *f = fopen(environ_path, "rb");
        if (f != NULL) {
            len = fread(buf, 1, sizeof(buf) - 1, f);
            fclose(f);
            buf[len] = '\0';
            for (size_t k = 0; k < len; k++)
                if (buf[k] == '\0')
                    buf[k] = '\n';
            bool has_key = strstr(buf, "ALIBABA_CLOUD_ACCESS_KEY_SECRET=") != NULL;
            wiped = has_key && strstr(buf, KEY_SECRET) == NULL;
        }
        if (!wiped) {
            struct timespec ts = {0, 50 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    struct stat st;
    int src = stat(environ_path, &st);
    int status = wait_child(pid, RUN_TIMEOUT_MS);
    cr_expect(wiped, "the secret is still in /proc/<pid>/environ");
    cr_assert_eq(src, 0);
    cr_expect_eq(st.st_uid, 0, "/proc/<pid>/environ belongs to uid %u: the process is dumpable",
                 (unsigned)st.st_uid);
    cr_expect_eq(status, 0, "imgrecon api exit %d", status);
    free(text);
}
