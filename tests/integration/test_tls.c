/* TLS verification is always on: `imgrecon api` against a self-signed loopback HTTPS server
 * (a certificate made with the openssl CLI, served by libmicrohttpd's TLS support) fails with a
 * certificate error and no request reaches the server; with config `ca_file:` naming that
 * certificate the same call succeeds. A CA file holding another certificate, and the right CA
 * with a certificate for another host name, still fail. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_file.h"
#include "test_proc.h"

#define KEY_ID "LTAIemulatorDemoKey"
#define KEY_SECRET "emulator-demo-secret"

static char dir[64];
static struct MHD_Daemon *mhd;
static atomic_uint requests;
static char *key_pem, *cert_pem;
static unsigned port;

/* A self-signed certificate (CA:TRUE, as `req -x509` makes it) for subject alt name san. */
static void make_cert(const char *name, const char *san)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-days 2 -subj /CN=imgrecon-test -addext subjectAltName=%s -keyout %s/%s.key "
             "-out %s/%s.pem >%s/openssl.log 2>&1",
             san, dir, name, dir, name, dir);
    int rc = system(cmd);
    char log[160];
    snprintf(log, sizeof(log), "%s/openssl.log", dir);
    cr_assert_eq(rc, 0, "openssl req: %s", test_file_read(log));
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **state)
{
    (void)cls, (void)url, (void)method, (void)version, (void)upload;
    if (*state == NULL) {
        /* A request reached the server: the TLS handshake succeeded. */
        atomic_fetch_add(&requests, 1);
        *state = (void *)1;
        return MHD_YES;
    }
    if (*upload_size != 0) {
        *upload_size = 0;
        return MHD_YES;
    }
    static const char body[] = "{\"RequestId\":\"5B2F0B0E-TLS0-4C4C-9D3E-000000000001\","
                               "\"TotalCount\":\"0\",\"PageSize\":\"10\",\"PageNumber\":\"1\","
                               "\"CustomImages\":[]}";
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", "application/json;charset=utf-8");
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

static void serve(const char *name)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/%s.key", dir, name);
    key_pem = test_file_read(path);
    snprintf(path, sizeof(path), "%s/%s.pem", dir, name);
    cert_pem = test_file_read(path);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_TLS, 0, NULL, NULL, answer,
                           NULL, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_HTTPS_MEM_KEY, key_pem,
                           MHD_OPTION_HTTPS_MEM_CERT, cert_pem, MHD_OPTION_END);
    cr_assert_not_null(mhd, "libmicrohttpd HTTPS server");
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(mhd, MHD_DAEMON_INFO_BIND_PORT);
    cr_assert_not_null(info);
    port = info->port;
    cr_assert_gt(port, 0);
}

static void setup(void)
{
    strcpy(dir, "/tmp/imgrecon-tls-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    atomic_store(&requests, 0);
}

static void teardown(void)
{
    if (mhd != NULL)
        MHD_stop_daemon(mhd);
    mhd = NULL;
    free(key_pem);
    free(cert_pem);
    key_pem = cert_pem = NULL;
    (void)test_file_remove_tree(dir);
}

TestSuite(tls, .init = setup, .fini = teardown, .timeout = 120);

typedef test_proc_result result;

/* imgrecon api swas ListCustomImages against https://127.0.0.1:port with config text. */
static result api_call(const char *config_text)
{
    char config[160], state[160], url[64], home[96];
    snprintf(config, sizeof(config), "%s/config.yaml", dir);
    snprintf(state, sizeof(state), "%s/state", dir);
    snprintf(url, sizeof(url), "https://127.0.0.1:%u", port);
    snprintf(home, sizeof(home), "HOME=%s", dir);
    test_file_write(config, config_text);
    /* Neither the environment's CA bundle nor a proxy may change the outcome. */
    const char *const env_edits[] = {"ALIBABA_CLOUD_ACCESS_KEY_ID=" KEY_ID,
                                     "ALIBABA_CLOUD_ACCESS_KEY_SECRET=" KEY_SECRET,
                                     home,
                                     "CURL_CA_BUNDLE",
                                     "SSL_CERT_FILE",
                                     "SSL_CERT_DIR",
                                     "IMGRECON_ENDPOINT",
                                     "NO_PROXY=*",
                                     NULL};
    const char *const argv[] = {IMGRECON_BIN,
                                "api",
                                "swas",
                                "ListCustomImages",
                                "RegionId=cn-hangzhou",
                                "-c",
                                config,
                                "--state-dir",
                                state,
                                "--endpoint",
                                url,
                                "--rate-limit",
                                "10/1s",
                                "--compact",
                                NULL};
    test_proc_opts o = {.env = env_edits};
    result r;
    test_proc_run(argv, &o, 60000, &r);
    cr_assert_neq(r.status, -ETIMEDOUT, "imgrecon api did not finish within 60 s");
    return r;
}

static void result_free(result *r)
{
    test_proc_result_clear(r);
}

static bool mentions_certificate(const char *text)
{
    return strcasestr(text, "certificate") != NULL || strcasestr(text, "SSL") != NULL;
}

Test(tls, self_signed_server_refused_without_ca_file_and_accepted_with_it)
{
    cr_assert_eq(MHD_is_feature_supported(MHD_FEATURE_TLS), MHD_YES,
                 "libmicrohttpd was built without TLS");
    make_cert("server", "IP:127.0.0.1");
    serve("server");

    /* The system store does not know the certificate: a certificate error, no request. */
    result r = api_call("owner: default\n");
    cr_log_info("without ca_file: %s", r.err);
    cr_expect_eq(r.status, 1, "exit %d\nstdout: %s\nstderr: %s", r.status, r.out, r.err);
    cr_expect(mentions_certificate(r.err), "stderr names the certificate problem: %s", r.err);
    cr_expect_eq(r.out[0], '\0', "nothing on stdout: %s", r.out);
    cr_expect_eq(atomic_load(&requests), 0, "a request got through an unverified TLS session");
    result_free(&r);

    /* ca_file names the certificate: the call succeeds and prints the answer. */
    char config[256];
    snprintf(config, sizeof(config), "owner: default\nca_file: %s/server.pem\n", dir);
    r = api_call(config);
    cr_expect_eq(r.status, 0, "exit %d\nstdout: %s\nstderr: %s", r.status, r.out, r.err);
    cr_expect_not_null(strstr(r.out, "5B2F0B0E-TLS0-4C4C-9D3E-000000000001"), "stdout: %s", r.out);
    cr_expect_eq(atomic_load(&requests), 1, "exactly one request with ca_file");
    result_free(&r);
}

Test(tls, wrong_ca_file_or_wrong_host_name_still_refused)
{
    make_cert("server", "IP:127.0.0.1");
    make_cert("other", "IP:127.0.0.1");
    make_cert("elsewhere", "DNS:elsewhere.example");
    serve("server");

    /* A CA file that holds a different self-signed certificate. */
    char config[256];
    snprintf(config, sizeof(config), "ca_file: %s/other.pem\n", dir);
    result r = api_call(config);
    cr_expect_eq(r.status, 1, "exit %d\nstdout: %s\nstderr: %s", r.status, r.out, r.err);
    cr_expect(mentions_certificate(r.err), "stderr: %s", r.err);
    cr_expect_eq(atomic_load(&requests), 0);
    result_free(&r);

    /* The right CA, but the certificate names another host: host verification is on too. */
    MHD_stop_daemon(mhd);
    mhd = NULL;
    free(key_pem);
    free(cert_pem);
    serve("elsewhere");
    snprintf(config, sizeof(config), "ca_file: %s/elsewhere.pem\n", dir);
    r = api_call(config);
    cr_expect_eq(r.status, 1, "exit %d\nstdout: %s\nstderr: %s", r.status, r.out, r.err);
    cr_expect_eq(atomic_load(&requests), 0, "a request reached a server of the wrong name");
    result_free(&r);

    /* A ca_file that does not exist is an error, never a fallback to no verification. */
    snprintf(config, sizeof(config), "ca_file: %s/missing.pem\n", dir);
    r = api_call(config);
    cr_expect_eq(r.status, 1, "exit %d\nstdout: %s\nstderr: %s", r.status, r.out, r.err);
    cr_expect_eq(atomic_load(&requests), 0);
    result_free(&r);
}
