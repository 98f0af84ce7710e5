/* Text from the cloud never drives the terminal (issue 13 item 3). The real emulator serves a
 * fixture with hostile text: an image of ours whose description is an OSC window-title sequence,
 * a bell and a clear-screen (`ESC]0;...BEL ESC[2J`), a tag whose key and value hold ESC, BEL and
 * the C1 CSI (U+009B), and an unmanaged image whose name holds ESC and a bidi override. The real
 * imgrecon binary then runs plan (text and JSON), apply, run --once (text and JSON logs),
 * status (text and JSON) and api (success, and an error whose message echoes a hostile
 * parameter). Every output must hold no byte below 0x20 except newline, no DEL, and no C1
 * control; each run also shows the hostile text escaped, so the check cannot pass because the
 * text never reached the output. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "emu_proc.h"
#include "test_file.h"
#include "test_proc.h"

#define KEY_ID "LTAIterminalKey0001"
#define SECRET "terminal-test-secret"
#define WAIT_MS 120000

static emu_proc emu;
static char dir[64], state[128], manifests[128], config[160];
static unsigned n_runs;

/* The environment of every run: no ambient credentials or endpoint, the test key, a private
 * HOME (set in setup) and no colour. */
static char home_env[80];
static const char *const run_env[] = {"ALIBABA_CLOUD_SECURITY_TOKEN",
                                      "CREDENTIALS_DIRECTORY",
                                      "IMGRECON_ENDPOINT",
                                      "JOURNAL_STREAM",
                                      "ALIBABA_CLOUD_ACCESS_KEY_ID=" KEY_ID,
                                      "ALIBABA_CLOUD_ACCESS_KEY_SECRET=" SECRET,
                                      home_env,
                                      "NO_COLOR=1",
                                      NULL};

/* Runs imgrecon with args (NULL-terminated, after argv[0]), stdout and stderr into one file;
 * waits at most WAIT_MS. Returns the exit status and the output (caller frees). */
static int run(const char *const *args, char **ret_out)
{
    char outpath[256];
    snprintf(outpath, sizeof(outpath), "%s/run-%02u.txt", dir, n_runs++);
    const char *argv[40] = {IMGRECON_BIN};
    size_t n = 1;
    for (size_t i = 0; args[i] != NULL && n < 39; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    test_proc_opts o = {.out_path = outpath, .env = run_env};
    int st = test_proc_wait(test_proc_spawn(argv, &o), WAIT_MS);
    *ret_out = test_file_read(outpath);
    return st;
}

/* No byte below 0x20 but newline, no DEL, no UTF-8 encoded C1 control (C2 80..C2 9F). */
static void assert_inert(const char *what, const char *text)
{
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        cr_assert(!((*p < 0x20 && *p != '\n') || *p == 0x7f),
                  "%s: raw control byte 0x%02x at offset %zu:\n%s", what, *p,
                  (size_t)(p - (const unsigned char *)text), text);
        cr_assert(!(p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f),
                  "%s: raw C1 control U+00%02X at offset %zu:\n%s", what, p[1],
                  (size_t)(p - (const unsigned char *)text), text);
    }
}

static void expect_run(int want_rc, const char *want_text, const char *const *args)
{
    char *out = NULL;
    int rc = run(args, &out);
    cr_expect_eq(rc, want_rc, "imgrecon %s %s: exit %d, output:\n%s", args[0], args[1], rc, out);
    assert_inert(args[0], out);
    if (want_text != NULL)
        cr_expect_not_null(strstr(out, want_text), "imgrecon %s %s: no '%s' in:\n%s", args[0],
                           args[1], want_text, out);
    free(out);
}

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/imgrecon-terminal-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(state, sizeof(state), "%s/state", dir);
    snprintf(manifests, sizeof(manifests), "%s/manifests", dir);
    snprintf(config, sizeof(config), "%s/config.yaml", dir);
    snprintf(home_env, sizeof(home_env), "HOME=%s", dir);
    cr_assert_eq(mkdir(manifests, 0700), 0);
    char path[256];
    snprintf(path, sizeof(path), "%s/fixture.yaml", dir);
    /* YAML double-quoted escapes: \e ESC, \a BEL, \x9b and \u009b the C1 CSI, \u202e RLO. */
    test_file_write_mode(
        path,
        "accounts:\n"
        "  - access_key_id: " KEY_ID "\n"
        "    access_key_secret: " SECRET "\n"
        "    user_id: 1234567890123456\n"
        "regions:\n"
        "  - region: cn-hangzhou\n"
        "    servers:\n"
        "      - instance_id: ace0706b2ac4454d984295a94213abcd\n"
        "        name: web-1\n"
        "        system_snapshots: [s-sys-0001]\n"
        "    custom_images:\n"
        "      - image_id: m-hostile00000000001\n"
        "        name: web\n"
        "        instance_id: ace0706b2ac4454d984295a94213abcd\n"
        "        system_snapshot_id: s-sys-0001\n"
        "        description: \"\\e]0;pwned\\a\\e[2J\"\n"
        "        tags: {imgrecon/owner: default, \"ev\\e[31mil\": \"v\\a\\u009b2J\"}\n"
        "      - image_id: m-hostile00000000002\n"
        "        name: \"evil\\e[2J\\u202ename\"\n"
        "        instance_id: ace0706b2ac4454d984295a94213abcd\n"
        "        system_snapshot_id: s-sys-0001\n"
        "        description: \"\\x1b[31mred\\r\\nforged line\"\n",
        0600);
    const char *args[] = {"--fixture", path, "--rate-limit", "10/1s", "--create-delay",
                          "100ms",     NULL};
    int rc = emu_proc_start(&emu, args);
    cr_assert_eq(rc, 0, "emulator: %s", strerror(-rc));
    /* Ours, declared with another description: replaced, and the plan shows the old one. */
    snprintf(path, sizeof(path), "%s/images.yaml", manifests);
    test_file_write_mode(path,
                         "region: cn-hangzhou\n"
                         "custom_images:\n"
                         "  - name: web\n"
                         "    instance_id: ace0706b2ac4454d984295a94213abcd\n"
                         "    system_snapshot_id: s-sys-0001\n"
                         "    description: clean\n",
                         0600);
    test_file_write_mode(config, "metrics_listen: null\n", 0600);
}

static void teardown(void)
{
    if (emu.pid > 0)
        (void)emu_proc_stop(&emu);
    (void)test_file_remove_tree(dir);
}

TestSuite(terminal, .init = setup, .fini = teardown, .timeout = 300);

#define COMMON                                                                                     \
    "-c", config, "--endpoint", emu.base_url, "--state-dir", state, "--rate-limit", "10/1s"

Test(terminal, hostile_cloud_text_is_escaped_everywhere)
{
    /* plan: the replacement's reason shows the old description, escaped. */
    expect_run(0, "\\x1b]0;pwned\\x07\\x1b[2J",
               (const char *const[]){"plan", COMMON, "-f", manifests, NULL});
    expect_run(0, "evil\\x1b[2J\\u202ename",
               (const char *const[]){"plan", COMMON, "-f", manifests, NULL});
    /* JSON: jansson escapes C0 controls, C1 is escaped on top. */
    expect_run(0, "\\u001B]0;pwned\\u0007\\u001B[2J",
               (const char *const[]){"plan", COMMON, "-f", manifests, "--json", NULL});
    expect_run(0, "\\u009b2J",
               (const char *const[]){"api", "swas", "ListCustomImages", "RegionId=cn-hangzhou",
                                     "--endpoint", emu.base_url, "--state-dir", state,
                                     "--rate-limit", "10/1s", NULL});
    /* An error message from the endpoint that echoes a hostile parameter name. */
    expect_run(1, "Tag.x\\x1b[2J.Key",
               (const char *const[]){"api", "swas", "ListCustomImages", "RegionId=cn-hangzhou",
                                     "Tag.x\x1b[2J.Key=a", "--endpoint", emu.base_url,
                                     "--state-dir", state, "--rate-limit", "10/1s", "-v", NULL});
    /* A saved plan holds the hostile text escaped (C1 included) and applies as saved: the
     * escapes round-trip to the same values and fingerprint. Then the daemon's text and JSON
     * logs and status. */
    char saved[200];
    snprintf(saved, sizeof(saved), "%s/saved.plan", dir);
    expect_run(0, NULL,
               (const char *const[]){"plan", COMMON, "-f", manifests, "--out", saved, NULL});
    char *text = test_file_read(saved);
    assert_inert("saved plan", text);
    cr_expect_not_null(strstr(text, "\\u009b2J"), "C1 escaped in the saved plan:\n%s", text);
    free(text);
    expect_run(0, "replace",
               (const char *const[]){"apply", COMMON, "-f", manifests, "--auto-approve", "-v",
                                     saved, NULL});
    expect_run(0, NULL,
               (const char *const[]){"run", COMMON, "-f", manifests, "--once", "-v", "-v",
                                     "--log-format", "text", NULL});
    expect_run(0, NULL,
               (const char *const[]){"run", COMMON, "-f", manifests, "--once", "-v", "-v",
                                     "--log-format", "json", NULL});
    /* The daemon ran once and stopped: status says so and exits 1 (not running). */
    expect_run(1, "last cycle", (const char *const[]){"status", COMMON, NULL});
    expect_run(1, NULL, (const char *const[]){"status", COMMON, "--json", NULL});
}
