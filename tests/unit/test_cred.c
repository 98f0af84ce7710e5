/* The credentials chain: each source picked up in the documented order, loose permissions and
 * malformed files refused with clear messages, profile selection, the "looked in" message, and
 * the ECS RAM role through a loopback metadata server (libmicrohttpd) checking the IMDSv2 token
 * flow, role discovery, expiry parsing and refresh. Secrets never appear in a message.
 * Criterion runs each test in its own process, so environment changes stay local. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "emu_proc.h"
#include "prov_cred.h"
#include "prov_cred_file.h"
#include "test_file.h"

static char home[64];

static const char *const env_names[] = {
    "ALIBABA_CLOUD_ACCESS_KEY_ID",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    "ALIBABA_CLOUD_SECURITY_TOKEN",
    "ALIBABA_CLOUD_PROFILE",
    "ALIBABA_CLOUD_CREDENTIALS_FILE",
    "ALIBABA_CLOUD_ECS_METADATA",
    "ALICLOUD_ACCESS_KEY",
    "ALICLOUD_SECRET_KEY",
    "ALICLOUD_SECURITY_TOKEN",
    "CREDENTIALS_DIRECTORY",
    "ALIBABA_CLOUD_ROLE_ARN",
    "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
    "ALIBABA_CLOUD_OIDC_TOKEN_FILE",
    "ALIBABA_CLOUD_ROLE_SESSION_NAME",
    "ALIBABA_CLOUD_ECS_METADATA_DISABLED",
    NULL,
};

static void setup(void)
{
    strcpy(home, "/tmp/imgrecon-cred-XXXXXX");
    cr_assert_not_null(mkdtemp(home));
    for (int i = 0; env_names[i]; i++)
        cr_assert_eq(unsetenv(env_names[i]), 0);
    cr_assert_eq(setenv("HOME", home, 1), 0);
}

static void teardown(void)
{
    (void)test_file_remove_tree(home);
}

TestSuite(cred, .init = setup, .fini = teardown);

/* Writes home-relative rel with content and mode, creating parent directories (0700). */
static void put(const char *rel, const char *content, mode_t mode)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", home, rel);
    for (char *p = path + strlen(home) + 1; (p = strchr(p, '/')) != NULL; p++) {
        *p = '\0';
        cr_assert(mkdir(path, 0700) == 0 || errno == EEXIST, "mkdir %s", path);
        *p = '/';
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    cr_assert_eq(fchmod(fd, mode), 0);
    cr_assert_eq(close(fd), 0);
}

static const char ak_json[] =
    "{\"current\": \"work\", \"profiles\": ["
    "{\"name\": \"default\", \"mode\": \"AK\", \"access_key_id\": \"JSONDEF\","
    " \"access_key_secret\": \"json-default-secret\"},"
    "{\"name\": \"work\", \"mode\": \"ak\", \"access_key_id\": \"JSONWORK\","
    " \"access_key_secret\": \"json-work-secret\"},"
    "{\"name\": \"sts\", \"mode\": \"StsToken\", \"access_key_id\": \"JSONSTS\","
    " \"access_key_secret\": \"json-sts-secret\", \"sts_token\": \"json-sts-token\"},"
    "{\"name\": \"arn\", \"mode\": \"RamRoleArn\", \"access_key_id\": \"A\","
    " \"access_key_secret\": \"arn-secret\"},"
    "{\"name\": \"half\", \"mode\": \"AK\", \"access_key_id\": \"HALF\"}"
    "]}";

static const char ini[] = "# comment\n"
                          "[default]\n"
                          "type = access_key\n"
                          "access_key_id = INIDEF\n"
                          "access_key_secret = ini-default-secret\n"
                          "\n"
                          "[other]\n"
                          "type = access_key\n"
                          "access_key_id = \"INIOTHER\"\n"
                          "access_key_secret = ini-other-secret\n"
                          "[rsa]\n"
                          "type = rsa_key_pair\n";

/* Resolves and expects success; returns the credential for further checks. */
static prov_credential resolve_ok(const prov_cred_opts *o)
{
    prov_credential c = {0};
    char *msg = NULL;
    int r = prov_cred_resolve(o, &c, &msg);
    cr_assert_eq(r, 0, "resolve: %d %s", r, msg ? msg : "");
    cr_assert_null(msg);
    return c;
}

/* Resolves and expects failure r; returns the message (caller frees). */
static char *resolve_err(const prov_cred_opts *o, int want)
{
    prov_credential c = {0};
    char *msg = NULL;
    int r = prov_cred_resolve(o, &c, &msg);
    cr_assert_eq(r, want, "resolve: %d (want %d) %s", r, want, msg ? msg : "");
    cr_assert_not_null(msg);
    cr_expect_null(c.access_key_id, "output untouched on error");
    return msg;
}

static void expect_no_secret(const char *msg)
{
    const char *secrets[] = {"secret-", "-secret", "json-sts-token", "md-secret", NULL};
    for (int i = 0; secrets[i]; i++)
        cr_expect_null(strstr(msg, secrets[i]), "message leaks a secret: %s", msg);
}

/* ---- Environment ---- */

Test(cred, env_current_names_win)
{
    put(".aliyun/config.json", ak_json, 0600);
    cr_assert_eq(setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "ENVID", 1), 0);
    cr_assert_eq(setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "env-secret", 1), 0);
    cr_assert_eq(setenv("ALIBABA_CLOUD_SECURITY_TOKEN", "env-token", 1), 0);
    cr_assert_eq(setenv("ALICLOUD_ACCESS_KEY", "LEGACY", 1), 0);
    cr_assert_eq(setenv("ALICLOUD_SECRET_KEY", "legacy-secret", 1), 0);
    prov_credential c = resolve_ok(NULL);
    cr_expect_str_eq(c.access_key_id, "ENVID");
    cr_expect_str_eq(c.access_key_secret, "env-secret");
    cr_expect_str_eq(c.security_token, "env-token");
    cr_expect_str_eq(c.source, "environment (ALIBABA_CLOUD_*)");
    cr_expect_eq(c.expiration, 0);
    cr_expect_null(c.role_name);
    prov_credential_clear(&c);
    cr_expect_null(c.access_key_secret);
    prov_credential_clear(&c);
    prov_credential_clear(NULL);
}

/* Item 7 of issue 13: the variables are gone (and wiped) once read; a later resolve in the same
 * process (a daemon's reload) still finds the credential. */
Test(cred, env_secrets_removed_after_reading)
{
    cr_assert_eq(setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "ENVID", 1), 0);
    cr_assert_eq(setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "env-secret", 1), 0);
    cr_assert_eq(setenv("ALICLOUD_SECRET_KEY", "legacy-secret", 1), 0);
    prov_credential c = resolve_ok(NULL);
    cr_expect_str_eq(c.access_key_secret, "env-secret");
    prov_credential_clear(&c);
    cr_expect_null(getenv("ALIBABA_CLOUD_ACCESS_KEY_ID"));
    cr_expect_null(getenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET"));
    cr_expect_null(getenv("ALICLOUD_SECRET_KEY"));
    c = resolve_ok(NULL);
    cr_expect_str_eq(c.access_key_id, "ENVID");
    cr_expect_str_eq(c.access_key_secret, "env-secret");
    prov_credential_clear(&c);
}

Test(cred, env_legacy_names)
{
    cr_assert_eq(setenv("ALICLOUD_ACCESS_KEY", "LEGACY", 1), 0);
    cr_assert_eq(setenv("ALICLOUD_SECRET_KEY", "legacy-secret", 1), 0);
    prov_credential c = resolve_ok(NULL);
    cr_expect_str_eq(c.access_key_id, "LEGACY");
    cr_expect_null(c.security_token);
    cr_expect_str_eq(c.source, "environment (ALICLOUD_*)");
    prov_credential_clear(&c);
}

Test(cred, env_half_set_names_missing_variable)
{
    cr_assert_eq(setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "ENVID", 1), 0);
    char *msg = resolve_err(NULL, -EINVAL);
    cr_expect_not_null(strstr(msg, "ALIBABA_CLOUD_ACCESS_KEY_SECRET is not"), "%s", msg);
    free(msg);
    cr_assert_eq(unsetenv("ALIBABA_CLOUD_ACCESS_KEY_ID"), 0);
    cr_assert_eq(setenv("ALICLOUD_SECRET_KEY", "legacy-secret", 1), 0);
    msg = resolve_err(NULL, -EINVAL);
    cr_expect_not_null(strstr(msg, "ALICLOUD_ACCESS_KEY is not"), "%s", msg);
    expect_no_secret(msg);
    free(msg);
}

Test(cred, control_characters_refused)
{
    cr_assert_eq(setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "ID", 1), 0);
    cr_assert_eq(setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "bad\r\nX-Injected: 1-secret", 1), 0);
    char *msg = resolve_err(NULL, -EINVAL);
    cr_expect_not_null(strstr(msg, "control characters"), "%s", msg);
    expect_no_secret(msg);
    free(msg);
}

/* ---- $CREDENTIALS_DIRECTORY ---- */

Test(cred, credentials_directory_beats_files)
{
    put(".aliyun/config.json", ak_json, 0600);
    put("creds/access_key_id", "DIRID\n", 0400);
    put("creds/access_key_secret", "dir-secret\r\n", 0400);
    put("creds/security_token", "dir-token\n", 0600);
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/creds", home);
    cr_assert_eq(setenv("CREDENTIALS_DIRECTORY", dir, 1), 0);
    prov_credential c = resolve_ok(NULL);
    cr_expect_str_eq(c.access_key_id, "DIRID");
    cr_expect_str_eq(c.access_key_secret, "dir-secret");
    cr_expect_str_eq(c.security_token, "dir-token");
    cr_expect_not_null(strstr(c.source, "$CREDENTIALS_DIRECTORY"));
    prov_credential_clear(&c);
}

Test(cred, credentials_directory_without_id_falls_through)
{
    put(".aliyun/config.json", ak_json, 0600);
    put("creds/unrelated", "x", 0600);
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/creds", home);
    cr_assert_eq(setenv("CREDENTIALS_DIRECTORY", dir, 1), 0);
    prov_credential c = resolve_ok(NULL);
    cr_expect_str_eq(c.access_key_id, "JSONWORK");
    prov_credential_clear(&c);
}

Test(cred, credentials_directory_errors)
{
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/creds", home);
    cr_assert_eq(setenv("CREDENTIALS_DIRECTORY", dir, 1), 0);
    put("creds/access_key_id", "DIRID\n", 0400);
    char *msg = resolve_err(NULL, -EINVAL);
    cr_expect_not_null(strstr(msg, "no access_key_secret"), "%s", msg);
    free(msg);

    put("creds/access_key_secret", "dir-secret\n", 0644);
    msg = resolve_err(NULL, -EACCES);
    cr_expect_not_null(strstr(msg, "access_key_secret: permissions 0644 are too open; run chmod "
                                   "600"),
                       "%s", msg);
    expect_no_secret(msg);
    free(msg);

    put("creds/access_key_secret", "\n", 0600);
    msg = resolve_err(NULL, -EINVAL);
    cr_expect_not_null(strstr(msg, "empty"), "%s", msg);
    free(msg);
}

/* ---- ~/.aliyun/config.json ---- */

Test(cred, config_json_current_profile)
{
    put(".aliyun/config.json", ak_json, 0600);
    put(".alibabacloud/credentials", ini, 0600);
    prov_credential c = resolve_ok(NULL);
    cr_expect_str_eq(c.access_key_id, "JSONWORK"); /* "current": "work", mode "ak" */
    cr_expect_str_eq(c.access_key_secret, "json-work-secret");
    cr_expect_not_null(strstr(c.source, "config.json (profile 'work', mode AK)"), "%s", c.source);
    prov_credential_clear(&c);
}

Test(cred, config_json_default_when_no_current)
{
    put(".aliyun/config.json",
        "{\"profiles\": [{\"name\": \"default\", \"access_key_id\": \"D\","
        " \"access_key_secret\": \"d-secret\"}]}",
        0600);
    prov_credential c = resolve_ok(NULL);
    cr_expect_str_eq(c.access_key_id, "D");
    prov_credential_clear(&c);
}

Test(cred, profile_selection_order)
{
    put(".aliyun/config.json", ak_json, 0600);
    /* ALIBABA_CLOUD_PROFILE beats "current". */
    cr_assert_eq(setenv("ALIBABA_CLOUD_PROFILE", "sts", 1), 0);
    prov_credential c = resolve_ok(NULL);
    cr_expect_str_eq(c.access_key_id, "JSONSTS");
    cr_expect_str_eq(c.security_token, "json-sts-token");
    prov_credential_clear(&c);
    /* --profile beats ALIBABA_CLOUD_PROFILE. */
    prov_cred_opts o = {.profile = "default"};
    c = resolve_ok(&o);
    cr_expect_str_eq(c.access_key_id, "JSONDEF");
    prov_credential_clear(&c);
    /* opts->home overrides $HOME. */
    cr_assert_eq(setenv("HOME", "/nonexistent", 1), 0);
    o.home = home;
    c = resolve_ok(&o);
    cr_expect_str_eq(c.access_key_id, "JSONDEF");
    prov_credential_clear(&c);
}

Test(cred, config_json_broken_profiles)
{
    put(".aliyun/config.json", ak_json, 0600);
    prov_cred_opts o = {.profile = "arn"};
    char *msg = resolve_err(&o, -EINVAL);
    cr_expect_not_null(strstr(msg, "profile 'arn' (mode RamRoleArn) has no ram_role_arn"), "%s",
                       msg);
    expect_no_secret(msg);
    free(msg);
    o.profile = "half";
    msg = resolve_err(&o, -EINVAL);
    cr_expect_not_null(strstr(msg, "profile 'half' (mode AK) has no access_key_secret"), "%s", msg);
    free(msg);
}

Test(cred, config_json_malformed)
{
    put(".aliyun/config.json", "{\"profiles\": [ {\"name\": \"default\",\n \"mode\": }", 0600);
    char *msg = resolve_err(NULL, -EINVAL);
    cr_expect_not_null(strstr(msg, "config.json:2:"), "%s", msg);
    cr_expect_not_null(strstr(msg, "malformed JSON"), "%s", msg);
    free(msg);
    put(".aliyun/config.json", "[1, 2]", 0600);
    msg = resolve_err(NULL, -EINVAL);
    cr_expect_not_null(strstr(msg, "\"profiles\" array"), "%s", msg);
    free(msg);
}

/* A config.json that jansson refuses inside or right after a secret: the message gives the
 * position and a reason of its own, never jansson's "near '<text>'" quote of the input. */
struct json_bad {
    char text[160];
    char want[96];
};

#define JSON_HEAD                                                                                  \
    "{\"profiles\": [{\"name\": \"default\", \"mode\": \"AK\", \"access_key_id\": \"A\", "

ParameterizedTestParameters(cred, config_json_errors_quote_nothing)
{
    static struct json_bad cases[] = {
        {JSON_HEAD "\"access_key_secret\": \"TopSecretValue\tx\"}]}",
         "config.json:1:106: malformed JSON: invalid syntax"},
        {JSON_HEAD "\"access_key_secret\": \"TopSecretValue\\q\"}]}",
         "config.json:1:108: malformed JSON: invalid syntax"},
        {JSON_HEAD "\"access_key_secret\": \"TopSecretValue\\uZZZZ\"}]}",
         "config.json:1:109: malformed JSON: invalid syntax"},
        {JSON_HEAD "\"access_key_secret\":\n\"TopSecretValue\n\"}]}",
         "config.json:2:15: malformed JSON: invalid syntax"},
        {JSON_HEAD "\"access_key_secret\": \"TopSecretValue\xff\"}]}",
         "config.json:1:106: malformed JSON: invalid UTF-8"},
        {JSON_HEAD "\"access_key_secret\": \"TopSecretValue", "malformed JSON: unexpected end"},
        {JSON_HEAD "\"access_key_secret\": TopSecretValue}]}", "malformed JSON: invalid syntax"},
        {JSON_HEAD "\"access_key_secret\": \"TopSecretValue\"}]} TopSecretValue",
         "malformed JSON: text after the end"},
    };
    return cr_make_param_array(struct json_bad, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct json_bad *c, cred, config_json_errors_quote_nothing)
{
    put(".aliyun/config.json", c->text, 0600);
    char *msg = resolve_err(NULL, -EINVAL);
    cr_expect_not_null(strstr(msg, c->want), "want %s in: %s", c->want, msg);
    cr_expect_null(strstr(msg, "Secret"), "message quotes the secret: %s", msg);
    cr_expect_null(strstr(msg, "near"), "message quotes the input: %s", msg);
    free(msg);
}

Test(cred, config_json_loose_permissions)
{
    put(".aliyun/config.json", ak_json, 0644);
    put(".alibabacloud/credentials", ini, 0600);
    char *msg = resolve_err(NULL, -EACCES);
    char want[256];
    snprintf(want, sizeof(want),
             "%s/.aliyun/config.json: permissions 0644 are too open; run chmod 600 "
             "%s/.aliyun/config.json",
             home, home);
    cr_expect_str_eq(msg, want);
    free(msg);
    put(".aliyun/config.json", ak_json, 0640);
    msg = resolve_err(NULL, -EACCES);
    cr_expect_not_null(strstr(msg, "0640"), "%s", msg);
    free(msg);
}

Test(cred, config_json_missing_profile_falls_to_ini)
{
    put(".aliyun/config.json", ak_json, 0600);
    put(".alibabacloud/credentials", ini, 0600);
    prov_cred_opts o = {.profile = "other"};
    prov_credential c = resolve_ok(&o);
    cr_expect_str_eq(c.access_key_id, "INIOTHER");
    cr_expect_str_eq(c.access_key_secret, "ini-other-secret");
    prov_credential_clear(&c);
}

/* ---- INI ---- */

Test(cred, ini_default_section)
{
    put(".alibabacloud/credentials", ini, 0600);
    prov_credential c = resolve_ok(NULL);
    cr_expect_str_eq(c.access_key_id, "INIDEF");
    cr_expect_not_null(strstr(c.source, "[default]"));
    prov_credential_clear(&c);
}

Test(cred, ini_file_from_environment)
{
    put("elsewhere/creds.ini", "[default]\naccess_key_id=E\naccess_key_secret=e-secret\n", 0600);
    char path[160];
    snprintf(path, sizeof(path), "%s/elsewhere/creds.ini", home);
    cr_assert_eq(setenv("ALIBABA_CLOUD_CREDENTIALS_FILE", path, 1), 0);
    put(".alibabacloud/credentials", ini, 0600);
    prov_credential c = resolve_ok(NULL);
    cr_expect_str_eq(c.access_key_id, "E");
    prov_credential_clear(&c);
    cr_assert_eq(setenv("ALIBABA_CLOUD_CREDENTIALS_FILE", "/nonexistent/creds", 1), 0);
    char *msg = resolve_err(NULL, -EINVAL);
    cr_expect_not_null(strstr(msg, "ALIBABA_CLOUD_CREDENTIALS_FILE"), "%s", msg);
    free(msg);
}

struct ini_bad {
    char text[96];
    int ret;
    char needle[64];
};

ParameterizedTestParameters(cred, ini_errors)
{
    static struct ini_bad cases[] = {
        {"[default\naccess_key_id = A\n", -EINVAL, "credentials:1: malformed section"},
        {"[default]\njust words\n", -EINVAL, "credentials:2: expected 'key = value'"},
        {"[default]\n = v\n", -EINVAL, "credentials:2: empty key"},
        {"[default]\ntype = rsa_key_pair\n", -EINVAL, "type 'rsa_key_pair' is not supported"},
        {"[default]\naccess_key_id = A\n", -EINVAL, "has no access_key_secret"},
        {"[default]\naccess_key_secret = s-secret\n", -EINVAL, "has no access_key_id"},
        {"[other]\naccess_key_id = A\naccess_key_secret=b\n", -ENOENT, "(no section [default])"},
    };
    return cr_make_param_array(struct ini_bad, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct ini_bad *c, cred, ini_errors)
{
    put(".alibabacloud/credentials", c->text, 0600);
    char *msg = resolve_err(NULL, c->ret);
    cr_expect_not_null(strstr(msg, c->needle), "%s", msg);
    expect_no_secret(msg);
    free(msg);
}

Test(cred, ini_loose_permissions)
{
    put(".alibabacloud/credentials", ini, 0604);
    char *msg = resolve_err(NULL, -EACCES);
    cr_expect_not_null(strstr(msg, "permissions 0604 are too open; run chmod 600"), "%s", msg);
    free(msg);
}

/* ---- Nothing found ---- */

Test(cred, nothing_found_lists_every_place)
{
    char *msg = resolve_err(NULL, -ENOENT);
    char want[512];
    snprintf(want, sizeof(want),
             "no credentials found; looked in: environment (ALIBABA_CLOUD_ACCESS_KEY_ID, "
             "ALICLOUD_ACCESS_KEY), OIDC (ALIBABA_CLOUD_ROLE_ARN unset), $CREDENTIALS_DIRECTORY "
             "(unset), %s/.aliyun/config.json "
             "(absent), %s/.alibabacloud/credentials (absent), ECS instance metadata (not "
             "enabled)",
             home, home);
    cr_expect_str_eq(msg, want);
    free(msg);

    put(".aliyun/config.json", ak_json, 0600);
    prov_cred_opts o = {.profile = "nope"};
    msg = resolve_err(&o, -ENOENT);
    cr_expect_not_null(strstr(msg, "config.json (no profile 'nope')"), "%s", msg);
    free(msg);
}

/* ---- ECS instance metadata ---- */

enum md_mode {
    MD_OK,
    MD_V1_ONLY,
    MD_BAD_JSON,
    MD_FAIL_CODE,
    MD_BAD_EXPIRATION,
    MD_NO_ROLE,
    MD_HUGE, /* the credentials answer is larger than the 64 KiB the client keeps */
};

static struct md_server {
    struct MHD_Daemon *d;
    unsigned short port;
    pthread_mutex_t mu;
    enum md_mode mode;
    int generation;
    int puts, gets, rejected;
    char log[32][96];
    int n_log;
} md = {.mu = PTHREAD_MUTEX_INITIALIZER};

#define MD_TOKEN "tok-6f2a"
#define MD_ROLE "imgrecon-role"

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *body)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ok = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result md_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    static int marker;
    (void)cls;
    (void)version;
    (void)upload;
    if (*con_cls == NULL) {
        *con_cls = &marker;
        return MHD_YES;
    }
    if (*upload_size != 0) {
        *upload_size = 0;
        return MHD_YES;
    }
    const char *ttl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                  "X-aliyun-ecs-metadata-token-ttl-seconds");
    const char *tok =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-aliyun-ecs-metadata-token");
    pthread_mutex_lock(&md.mu);
    if (md.n_log < 32)
        snprintf(md.log[md.n_log++], sizeof(md.log[0]), "%s %s%s", method, url,
                 tok && strcmp(tok, MD_TOKEN) == 0 ? " +token" : "");
    enum md_mode mode = md.mode;
    char body[512];
    unsigned status = 200;
    const char *prefix = "/latest/meta-data/ram/security-credentials/";
    if (strcmp(method, "PUT") == 0 && strcmp(url, "/latest/api/token") == 0) {
        md.puts++;
        if (mode == MD_V1_ONLY) {
            status = 403;
            snprintf(body, sizeof(body), "forbidden");
        } else if (ttl == NULL || strcmp(ttl, "21600") != 0) {
            status = 400;
            snprintf(body, sizeof(body), "bad ttl");
        } else {
            snprintf(body, sizeof(body), MD_TOKEN);
        }
    } else if (strcmp(method, "GET") == 0 && strncmp(url, prefix, strlen(prefix)) == 0) {
        md.gets++;
        const char *role = url + strlen(prefix);
        if (mode != MD_V1_ONLY && (tok == NULL || strcmp(tok, MD_TOKEN) != 0)) {
            md.rejected++;
            status = 401;
            snprintf(body, sizeof(body), "token required");
        } else if (*role == '\0') {
            snprintf(body, sizeof(body), mode == MD_NO_ROLE ? "" : MD_ROLE "\n");
        } else if (strcmp(role, MD_ROLE) != 0) {
            status = 404;
            snprintf(body, sizeof(body), "no such role");
        } else if (mode == MD_HUGE) {
            pthread_mutex_unlock(&md.mu);
            size_t n = 70 * 1024;
            char *huge = malloc(n + 1);
            if (huge == NULL)
                return MHD_NO;
            memset(huge, 'x', n);
            huge[n] = '\0';
            enum MHD_Result ok = reply(conn, 200, huge);
            free(huge);
            return ok;
        } else if (mode == MD_BAD_JSON) {
            snprintf(body, sizeof(body), "{\"AccessKeyId\": \"x\", \"AccessKeySecret\": ");
        } else {
            md.generation++;
            snprintf(body, sizeof(body),
                     "{\"AccessKeyId\": \"STS.id%d\", \"AccessKeySecret\": \"md-secret-%d\","
                     " \"SecurityToken\": \"md-token-%d\", \"Expiration\": \"%s\","
                     " \"LastUpdated\": \"2030-01-01T00:00:00Z\", \"Code\": \"%s\"}",
                     md.generation, md.generation, md.generation,
                     mode == MD_BAD_EXPIRATION ? "2030-01-01 06:00:00" : "2030-01-01T06:00:00Z",
                     mode == MD_FAIL_CODE ? "Failed" : "Success");
        }
    } else {
        status = 404;
        snprintf(body, sizeof(body), "not found");
    }
    pthread_mutex_unlock(&md.mu);
    return reply(conn, status, body);
}

static void md_start(enum md_mode mode)
{
    md.mode = mode;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    md.d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, md_handler, NULL,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_END);
    cr_assert_not_null(md.d);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(md.d, MHD_DAEMON_INFO_BIND_PORT);
    cr_assert_not_null(info);
    md.port = info->port;
    cr_assert_neq(md.port, 0);
}

static void md_stop(void)
{
    if (md.d != NULL)
        MHD_stop_daemon(md.d);
    md.d = NULL;
}

static char md_url[64];

static prov_cred_opts md_opts(void)
{
    snprintf(md_url, sizeof(md_url), "http://127.0.0.1:%u/", md.port);
    prov_cred_opts o = {.metadata_url = md_url, .use_metadata = true, .metadata_timeout_ms = 5000};
    return o;
}

Test(cred, metadata_token_flow_discovery_and_expiry)
{
    md_start(MD_OK);
    prov_cred_opts o = md_opts();
    prov_credential c = resolve_ok(&o);
    cr_expect_str_eq(c.access_key_id, "STS.id1");
    cr_expect_str_eq(c.access_key_secret, "md-secret-1");
    cr_expect_str_eq(c.security_token, "md-token-1");
    cr_expect_str_eq(c.role_name, MD_ROLE);
    cr_expect_eq(c.expiration, 1893477600); /* 2030-01-01T06:00:00Z */
    cr_expect_not_null(strstr(c.source, "ECS RAM role 'imgrecon-role'"));
    cr_expect_not(prov_cred_needs_refresh(&c, 1893477600 - 301));
    cr_expect(prov_cred_needs_refresh(&c, 1893477600 - 300));
    cr_expect(prov_cred_needs_refresh(&c, 1893477600 + 10));

    pthread_mutex_lock(&md.mu);
    cr_expect_eq(md.n_log, 3);
    cr_expect_str_eq(md.log[0], "PUT /latest/api/token");
    cr_expect_str_eq(md.log[1], "GET /latest/meta-data/ram/security-credentials/ +token");
    cr_expect_str_eq(md.log[2],
                     "GET /latest/meta-data/ram/security-credentials/" MD_ROLE " +token");
    cr_expect_eq(md.rejected, 0);
    pthread_mutex_unlock(&md.mu);

    /* Refresh: a fresh token, no discovery (the role is known), new keys. */
    char *msg = NULL;
    cr_assert_eq(prov_cred_refresh(&o, &c, &msg), 0, "%s", msg ? msg : "");
    cr_expect_str_eq(c.access_key_id, "STS.id2");
    cr_expect_str_eq(c.access_key_secret, "md-secret-2");
    cr_expect_str_eq(c.role_name, MD_ROLE);
    pthread_mutex_lock(&md.mu);
    cr_expect_eq(md.n_log, 5);
    cr_expect_str_eq(md.log[3], "PUT /latest/api/token");
    cr_expect_str_eq(md.log[4],
                     "GET /latest/meta-data/ram/security-credentials/" MD_ROLE " +token");
    pthread_mutex_unlock(&md.mu);
    prov_credential_clear(&c);
    md_stop();
}

Test(cred, metadata_imdsv1_fallback)
{
    md_start(MD_V1_ONLY);
    prov_cred_opts o = md_opts();
    prov_credential c = resolve_ok(&o);
    cr_expect_str_eq(c.access_key_id, "STS.id1");
    pthread_mutex_lock(&md.mu);
    cr_expect_eq(md.puts, 1);
    cr_expect_str_eq(md.log[1], "GET /latest/meta-data/ram/security-credentials/");
    pthread_mutex_unlock(&md.mu);
    prov_credential_clear(&c);
    md_stop();
}

Test(cred, metadata_role_from_env_and_profiles)
{
    md_start(MD_OK);
    prov_cred_opts o = md_opts();
    o.use_metadata = false;
    /* ALIBABA_CLOUD_ECS_METADATA names the role and enables the source. */
    cr_assert_eq(setenv("ALIBABA_CLOUD_ECS_METADATA", MD_ROLE, 1), 0);
    prov_credential c = resolve_ok(&o);
    cr_expect_str_eq(c.role_name, MD_ROLE);
    prov_credential_clear(&c);
    cr_assert_eq(unsetenv("ALIBABA_CLOUD_ECS_METADATA"), 0);
    /* config.json EcsRamRole (mode case-insensitive). */
    put(".aliyun/config.json",
        "{\"current\": \"ecs\", \"profiles\": [{\"name\": \"ecs\", \"mode\": \"ecsramrole\","
        " \"ram_role_name\": \"" MD_ROLE "\"}]}",
        0600);
    c = resolve_ok(&o);
    cr_expect_str_eq(c.access_key_id, "STS.id2");
    prov_credential_clear(&c);
    /* INI ecs_ram_role. */
    char path[160];
    snprintf(path, sizeof(path), "%s/.aliyun/config.json", home);
    cr_assert_eq(unlink(path), 0);
    put(".alibabacloud/credentials", "[default]\ntype = ecs_ram_role\nrole_name = " MD_ROLE "\n",
        0600);
    c = resolve_ok(&o);
    cr_expect_str_eq(c.access_key_id, "STS.id3");
    prov_credential_clear(&c);
    /* A role that does not exist is an error, since the file asked for it. */
    put(".alibabacloud/credentials", "[default]\ntype = ecs_ram_role\nrole_name = ghost\n", 0600);
    char *msg = resolve_err(&o, -EINVAL);
    cr_expect_not_null(strstr(msg, "role 'ghost'"), "%s", msg);
    cr_expect_not_null(
        strstr(msg, "([default], type ecs_ram_role) asks for the ECS RAM role 'ghost', but "), "%s",
        msg);
    free(msg);
    md_stop();
}

struct md_bad {
    int mode;
    char needle[48];
};

ParameterizedTestParameters(cred, metadata_bad_answers)
{
    static struct md_bad cases[] = {
        {MD_BAD_JSON, "malformed credentials response"},
        {MD_FAIL_CODE, "Code is 'Failed'"},
        {MD_BAD_EXPIRATION, "Expiration '2030-01-01 06:00:00'"},
        {MD_NO_ROLE, "no RAM role is attached"},
        {MD_HUGE, "response too large"},
    };
    return cr_make_param_array(struct md_bad, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct md_bad *bc, cred, metadata_bad_answers)
{
    md_start((enum md_mode)bc->mode);
    prov_cred_opts o = md_opts();
    /* As the last resort it yields "not found" with the reason in the list... */
    char *msg = resolve_err(&o, -ENOENT);
    cr_expect_not_null(strstr(msg, bc->needle), "%s", msg);
    cr_expect_not_null(strstr(msg, "ECS instance metadata ("), "%s", msg);
    expect_no_secret(msg);
    free(msg);
    /* ...and when the environment asks for the role, it is an error (a named role needs no
     * discovery, so the MD_NO_ROLE case ends here). */
    if (bc->mode == MD_NO_ROLE) {
        md_stop();
        return;
    }
    cr_assert_eq(setenv("ALIBABA_CLOUD_ECS_METADATA", MD_ROLE, 1), 0);
    prov_credential c = {0};
    int r = prov_cred_resolve(&o, &c, &msg);
    cr_expect_lt(r, 0);
    cr_expect_neq(r, -ENOENT);
    cr_expect_not_null(strstr(msg, bc->needle), "%s", msg);
    expect_no_secret(msg);
    free(msg);
    md_stop();
}

Test(cred, metadata_unreachable)
{
    /* A port nobody listens on: bind, read the port, close. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sa);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    cr_assert_eq(close(fd), 0);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", ntohs(sa.sin_port));
    prov_cred_opts o = {.metadata_url = url, .use_metadata = true, .metadata_timeout_ms = 2000};
    char *msg = resolve_err(&o, -ENOENT);
    cr_expect_not_null(strstr(msg, "ECS instance metadata (PUT http://127.0.0.1:"), "%s", msg);
    free(msg);

    prov_credential c = {.kind = PROV_CRED_ECS_ROLE, .role_name = "r"};
    msg = NULL;
    cr_expect_eq(prov_cred_refresh(&o, &c, &msg), -ECONNREFUSED);
    cr_expect_not_null(msg);
    free(msg);
    prov_credential none = {0};
    msg = NULL;
    cr_expect_eq(prov_cred_refresh(&o, &none, &msg), -EINVAL);
    free(msg);
}

/* ---- STS through the real emulator (issue 13 items 8 and 10) ---- */

#define DEMO_ID "LTAIemulatorDemoKey"
#define DEMO_SECRET "emulator-demo-secret"
#define DEMO_UID "1234567890123456"
#define DEMO_ROLE "acs:ram::" DEMO_UID ":role/deployer"

static emu_proc sts_emu;

static void sts_start(const char *duration)
{
    const char *args[] = {"--sts-duration", duration, "--metadata", "ecsrole", NULL};
    cr_assert_eq(emu_proc_start(&sts_emu, args), 0);
}

static prov_cred_opts sts_opts(void)
{
    prov_cred_opts o = {.sts_url = sts_emu.base_url,
                        .metadata_url = sts_emu.base_url,
                        .sts_timeout_ms = 5000,
                        .metadata_timeout_ms = 5000};
    return o;
}

/* The account the credential authenticates as, asked of the emulator's GetCallerIdentity: so
 * the STS key and its SecurityToken really are accepted by a signed call. */
static int caller_account(const prov_cred_opts *o, const prov_credential *c, char **ret_msg)
{
    prov_credential plain = *c;
    plain.role_arn = NULL; /* force the STS call instead of parsing the ARN */
    char *acct = NULL;
    int r = prov_cred_account_id(o, &plain, &acct, ret_msg);
    if (r == 0) {
        cr_expect_str_eq(acct, DEMO_UID);
        free(acct);
    }
    return r;
}

Test(cred, ram_role_arn_profile_assumes_and_refreshes)
{
    sts_start("5s");
    put(".aliyun/config.json",
        "{\"current\": \"r\", \"profiles\": [{\"name\": \"r\", \"mode\": \"RamRoleArn\","
        " \"access_key_id\": \"" DEMO_ID "\", \"access_key_secret\": \"" DEMO_SECRET "\","
        " \"ram_role_arn\": \"" DEMO_ROLE "\", \"ram_session_name\": \"ci\","
        " \"expired_seconds\": 900}]}",
        0600);
    prov_cred_opts o = sts_opts();
    time_t before = time(NULL);
    prov_credential c = resolve_ok(&o);
    cr_expect_eq(c.kind, PROV_CRED_ROLE_ARN);
    cr_expect_eq(strncmp(c.access_key_id, "STS.", 4), 0, "%s", c.access_key_id);
    cr_expect_not_null(c.security_token);
    cr_expect(c.expiration >= before + 3 && c.expiration <= time(NULL) + 5, "expiration %ld",
              (long)c.expiration);
    cr_expect_not_null(strstr(c.source, "/.aliyun/config.json (profile 'r', mode RamRoleArn), "
                                        "role " DEMO_ROLE),
                       "%s", c.source);
    cr_expect_not(prov_cred_needs_refresh(&c, c.issued));
    cr_expect(prov_cred_needs_refresh(&c, c.expiration - 2));
    char *msg = NULL;
    cr_expect_eq(caller_account(&o, &c, &msg), 0, "%s", msg ? msg : "");
    char *acct = NULL;
    cr_expect_eq(prov_cred_account_id(&o, &c, &acct, &msg), 0);
    cr_expect_str_eq(acct, DEMO_UID);
    free(acct);

    char *old_id = strdup(c.access_key_id);
    cr_assert_eq(prov_cred_refresh(&o, &c, &msg), 0, "%s", msg ? msg : "");
    cr_expect_str_neq(c.access_key_id, old_id);
    cr_expect_eq(c.kind, PROV_CRED_ROLE_ARN);
    cr_expect_str_eq(c.base_key_id, DEMO_ID);
    cr_expect_eq(caller_account(&o, &c, &msg), 0, "%s", msg ? msg : "");
    free(old_id);
    prov_credential_clear(&c);
    emu_proc_stop(&sts_emu);
}

Test(cred, ram_role_arn_ini_and_refusals)
{
    sts_start("5s");
    put(".alibabacloud/credentials",
        "[default]\ntype = ram_role_arn\naccess_key_id = " DEMO_ID
        "\naccess_key_secret = " DEMO_SECRET "\nrole_arn = " DEMO_ROLE "\nrole_session_name = ini\n"
        "[other]\ntype = ram_role_arn\naccess_key_id = " DEMO_ID
        "\naccess_key_secret = " DEMO_SECRET "\nrole_arn = acs:ram::999:role/x\n"
        "[wrong]\ntype = ram_role_arn\naccess_key_id = " DEMO_ID
        "\naccess_key_secret = wrong-secret"
        "\nrole_arn = " DEMO_ROLE "\n"
        "[half]\ntype = ram_role_arn\naccess_key_id = " DEMO_ID "\naccess_key_secret = x\n",
        0600);
    prov_cred_opts o = sts_opts();
    prov_credential c = resolve_ok(&o);
    cr_expect_eq(c.kind, PROV_CRED_ROLE_ARN);
    cr_expect_str_eq(c.session_name, "ini");
    cr_expect_not_null(
        strstr(c.source, "/.alibabacloud/credentials ([default], type ram_role_arn), role "), "%s",
        c.source);
    prov_credential_clear(&c);

    o.profile = "other";
    char *msg = resolve_err(&o, -EACCES);
    cr_expect_not_null(strstr(msg, "EntityNotExist.Role"), "%s", msg);
    cr_expect_not_null(strstr(msg, "/.alibabacloud/credentials ([other], type ram_role_arn): "
                                   "assuming acs:ram::999:role/x failed: "),
                       "%s", msg);
    expect_no_secret(msg);
    free(msg);
    o.profile = "wrong";
    msg = resolve_err(&o, -EACCES);
    cr_expect_not_null(strstr(msg, "SignatureDoesNotMatch"), "%s", msg);
    expect_no_secret(msg);
    free(msg);
    o.profile = "half";
    msg = resolve_err(&o, -EINVAL);
    cr_expect_not_null(strstr(msg, "has no role_arn"), "%s", msg);
    free(msg);
    emu_proc_stop(&sts_emu);
}

Test(cred, oidc_token_file_reread_on_refresh)
{
    sts_start("5s");
    put("oidc/token", "eyJ-first-token\n", 0600);
    char path[256];
    snprintf(path, sizeof(path), "%s/oidc/token", home);
    cr_assert_eq(setenv("ALIBABA_CLOUD_ROLE_ARN", DEMO_ROLE, 1), 0);
    cr_assert_eq(setenv("ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
                        "acs:ram::" DEMO_UID ":oidc-provider/ack-rrsa", 1),
                 0);
    cr_assert_eq(setenv("ALIBABA_CLOUD_OIDC_TOKEN_FILE", path, 1), 0);
    prov_cred_opts o = sts_opts();
    prov_credential c = resolve_ok(&o);
    cr_expect_eq(c.kind, PROV_CRED_OIDC);
    cr_expect_eq(strncmp(c.access_key_id, "STS.", 4), 0);
    char *msg = NULL;
    cr_expect_eq(caller_account(&o, &c, &msg), 0, "%s", msg ? msg : "");

    /* The token file is read again: an emptied file makes the refresh fail, and the old
     * credential stays in place. */
    put("oidc/token", "", 0600);
    char *old_id = strdup(c.access_key_id);
    cr_expect_eq(prov_cred_refresh(&o, &c, &msg), -EINVAL);
    cr_expect_not_null(msg && strstr(msg, "empty"), "%s", msg ? msg : "");
    free(msg);
    msg = NULL;
    cr_expect_str_eq(c.access_key_id, old_id);
    put("oidc/token", "eyJ-second-token", 0600);
    cr_expect_eq(prov_cred_refresh(&o, &c, &msg), 0, "%s", msg ? msg : "");
    cr_expect_str_neq(c.access_key_id, old_id);
    free(old_id);
    prov_credential_clear(&c);

    /* The token never reaches the emulator's journal. */
    json_t *j = emu_proc_journal(&sts_emu);
    char *dump = json_dumps(j, 0);
    cr_expect_null(strstr(dump, "eyJ-"), "%s", dump);
    free(dump);
    json_decref(j);

    /* A chosen source that fails is an error, with its own prefix. */
    put("oidc/token", "", 0600);
    msg = resolve_err(&o, -EINVAL);
    char want[512];
    snprintf(want, sizeof(want), "OIDC role %s: ALIBABA_CLOUD_OIDC_TOKEN_FILE %s: empty", DEMO_ROLE,
             path);
    cr_expect_str_eq(msg, want);
    free(msg);

    cr_assert_eq(unsetenv("ALIBABA_CLOUD_OIDC_TOKEN_FILE"), 0);
    msg = resolve_err(&o, -EINVAL);
    cr_expect_not_null(strstr(msg, "ALIBABA_CLOUD_OIDC_TOKEN_FILE is not set"), "%s", msg);
    free(msg);
    emu_proc_stop(&sts_emu);
}

/* The emulator's metadata routes need the IMDSv2 token; the credential they hand out signs
 * calls until it expires, and then the documented error comes back. */
Test(cred, metadata_imdsv2_and_expired_token)
{
    sts_start("2s");
    prov_cred_opts o = sts_opts();
    o.use_metadata = true;
    prov_credential c = resolve_ok(&o);
    cr_expect_eq(c.kind, PROV_CRED_ECS_ROLE);
    cr_expect_str_eq(c.role_name, "ecsrole");
    char *msg = NULL;
    cr_expect_eq(caller_account(&o, &c, &msg), 0, "%s", msg ? msg : "");

    /* Waits (bounded) for the expiry the emulator chose, then one more second of margin. */
    for (int i = 0; i < 50 && time(NULL) <= c.expiration; i++)
        usleep(100 * 1000);
    cr_assert_gt(time(NULL), c.expiration);
    usleep(100 * 1000);
    msg = NULL;
    cr_expect_eq(caller_account(&o, &c, &msg), -EACCES);
    cr_expect_not_null(msg && strstr(msg, "InvalidSecurityToken.Expired"), "%s", msg ? msg : "");
    free(msg);
    msg = NULL;
    cr_expect_eq(prov_cred_refresh(&o, &c, &msg), 0, "%s", msg ? msg : "");
    cr_expect_eq(caller_account(&o, &c, &msg), 0, "%s", msg ? msg : "");
    prov_credential_clear(&c);

    cr_assert_eq(setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true", 1), 0);
    msg = resolve_err(&o, -ENOENT);
    cr_expect_not_null(strstr(msg, "ALIBABA_CLOUD_ECS_METADATA_DISABLED=true"), "%s", msg);
    free(msg);
    emu_proc_stop(&sts_emu);
}

/* ---- The emulator's STS refusals and per-account limits (issue 13 item 10) ---- */

/* A fixture with two accounts: the demo one with a second key, and another account. */
static void two_account_emulator(const char *rate)
{
    put("fixture.yaml",
        "accounts:\n"
        "  - {access_key_id: " DEMO_ID ", access_key_secret: " DEMO_SECRET ", user_id: " DEMO_UID
        "}\n"
        "  - {access_key_id: LTAIsecondOfDemo, access_key_secret: second-secret, user_id: " DEMO_UID
        "}\n"
        "  - {access_key_id: LTAIotherAccount, access_key_secret: other-secret, user_id: "
        "2222222222222222}\n"
        "regions:\n  - region: cn-hangzhou\n",
        0600);
    char fixture[256];
    snprintf(fixture, sizeof(fixture), "%s/fixture.yaml", home);
    const char *args[] = {"--fixture", fixture, "--rate-limit", rate, NULL};
    cr_assert_eq(emu_proc_start(&sts_emu, args), 0);
}

/* GetCallerIdentity signed with (id, secret, token); returns the result, *msg the message. */
static int who(const prov_cred_opts *o, const char *id, const char *secret, const char *token,
               char **msg)
{
    prov_credential c = {.access_key_id = (char *)id,
                         .access_key_secret = (char *)secret,
                         .security_token = (char *)token};
    char *acct = NULL;
    *msg = NULL;
    int r = prov_cred_account_id(o, &c, &acct, msg);
    free(acct);
    return r;
}

Test(cred, emulator_sts_refusals)
{
    two_account_emulator("100/1s");
    prov_cred_opts o = sts_opts();
    prov_credential c = {0};
    char *msg = NULL;
    /* Another account's role. */
    cr_expect_eq(prov_sts_assume_role(&o, "LTAIotherAccount", "other-secret", NULL, DEMO_ROLE, "x1",
                                      900, &c, &msg),
                 -EACCES);
    cr_expect_not_null(msg && strstr(msg, "NoPermission"), "%s", msg ? msg : "");
    free(msg);
    msg = NULL;
    /* A RAM user (second key) of the role's account may assume it. */
    cr_assert_eq(prov_sts_assume_role(&o, "LTAIsecondOfDemo", "second-secret", NULL, DEMO_ROLE,
                                      "x2", 900, &c, &msg),
                 0, "%s", msg ? msg : "");
    cr_expect_eq(who(&o, c.access_key_id, c.access_key_secret, c.security_token, &msg), 0, "%s",
                 msg ? msg : "");
    free(msg);
    cr_expect_eq(who(&o, c.access_key_id, c.access_key_secret, NULL, &msg), -EACCES);
    cr_expect_not_null(msg && strstr(msg, "MissingSecurityToken"), "%s", msg ? msg : "");
    free(msg);
    cr_expect_eq(who(&o, c.access_key_id, c.access_key_secret, "not-the-token", &msg), -EACCES);
    cr_expect_not_null(msg && strstr(msg, "InvalidSecurityToken.MismatchWithAccessKey"), "%s",
                       msg ? msg : "");
    free(msg);
    cr_expect_eq(who(&o, c.access_key_id, "wrong-secret", c.security_token, &msg), -EACCES);
    cr_expect_not_null(msg && strstr(msg, "SignatureDoesNotMatch"), "%s", msg ? msg : "");
    free(msg);
    prov_credential_clear(&c);
    emu_proc_stop(&sts_emu);
}

/* Every key and every assumed role of one account share its window; another account has its
 * own. The limit is 3 calls per action in 60 s. */
Test(cred, emulator_limits_count_per_account)
{
    two_account_emulator("3/60s");
    prov_cred_opts o = sts_opts();
    prov_credential c = {0};
    char *msg = NULL;
    cr_assert_eq(
        prov_sts_assume_role(&o, DEMO_ID, DEMO_SECRET, NULL, DEMO_ROLE, "lim", 900, &c, &msg), 0,
        "%s", msg ? msg : "");
    cr_expect_eq(who(&o, DEMO_ID, DEMO_SECRET, NULL, &msg), 0, "%s", msg ? msg : "");
    free(msg);
    cr_expect_eq(who(&o, "LTAIsecondOfDemo", "second-secret", NULL, &msg), 0, "%s", msg ? msg : "");
    free(msg);
    cr_expect_eq(who(&o, c.access_key_id, c.access_key_secret, c.security_token, &msg), 0, "%s",
                 msg ? msg : "");
    free(msg);
    /* The fourth GetCallerIdentity of the account, whichever key: throttled. */
    cr_expect_eq(who(&o, "LTAIsecondOfDemo", "second-secret", NULL, &msg), -EACCES);
    cr_expect_not_null(msg && strstr(msg, "Throttling.User"), "%s", msg ? msg : "");
    free(msg);
    cr_expect_eq(who(&o, "LTAIotherAccount", "other-secret", NULL, &msg), 0, "%s", msg ? msg : "");
    free(msg);
    prov_credential_clear(&c);
    emu_proc_stop(&sts_emu);
}
