/* Integration tests of the real imgrecon-emulator binary over HTTP: requests signed with the
 * provider's own signer (prov_sig) and sent with libcurl easy. Covers V1 GET/POST and V3
 * acceptance, every authentication failure, throttling, faults, admin routes, the journal and
 * a clean SIGTERM. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "emu_proc.h"
#include "test_clock.h"
#include "prov_sig.h"

#define KEY "LTAIemulatorDemoKey"
#define SECRET "emulator-demo-secret"

typedef struct reply {
    long status;
    json_t *body;
    CURLcode err;
} reply;

static size_t on_data(char *data, size_t size, size_t nmemb, void *ud)
{
    char **buf = ud;
    size_t old = *buf ? strlen(*buf) : 0, add = size * nmemb;
    char *nb = realloc(*buf, old + add + 1);
    if (!nb) {
        return 0;
    }
    memcpy(nb + old, data, add);
    nb[old + add] = '\0';
    *buf = nb;
    return add;
}

/* Sends one request: GET with query, or POST with query and optional form body. */
static reply send_req(const emu_proc *p, const char *method, const char *query, const char *body,
                      const prov_kvs *headers)
{
    CURL *c = curl_easy_init();
    cr_assert_not_null(c);
    char url[2048];
    snprintf(url, sizeof(url), "%s/%s%s", p->base_url, query && *query ? "?" : "",
             query ? query : "");
    struct curl_slist *hl = NULL;
    for (size_t i = 0; headers && i < headers->n; i++) {
        char h[1024];
        snprintf(h, sizeof(h), "%s: %s", headers->v[i].key, headers->v[i].value);
        hl = curl_slist_append(hl, h);
    }
    if (body) {
        hl = curl_slist_append(hl, "Content-Type: application/x-www-form-urlencoded");
    }
    char *buf = NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &buf);
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
    }
    reply r = {0};
    r.err = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    r.body = buf ? json_loads(buf, 0, NULL) : NULL;
    free(buf);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    return r;
}

static void now_stamp(time_t offset, char out[21])
{
    prov_format_utc(time(NULL) + offset, out);
}

/* A V1-signed call: params "K=V&..." plus the common ones, signed with secret. */
static reply v1_call(const emu_proc *p, const char *method, const char *version, const char *action,
                     const char *extra, const char *key, const char *secret, const char *nonce,
                     time_t skew, char **ret_sts)
{
    prov_kvs kv = {0};
    cr_assert_eq(prov_kvs_add(&kv, "Action", action), 0);
    cr_assert_eq(prov_kvs_add(&kv, "Version", version), 0);
    cr_assert_eq(prov_kvs_add(&kv, "Format", "JSON"), 0);
    cr_assert_eq(prov_kvs_parse_urlencoded(&kv, extra, strlen(extra)), 0);
    char n[33], ts[21];
    if (!nonce) {
        cr_assert_eq(prov_random_nonce(n), 0);
        nonce = n;
    }
    now_stamp(skew, ts);
    cr_assert_eq(prov_sig_v1_sign(&kv, method, key, secret, NULL, nonce, ts), 0);
    if (ret_sts) {
        cr_assert_eq(prov_sig_v1_string_to_sign(method, &kv, ret_sts), 0);
    }
    char *q = NULL;
    cr_assert_eq(prov_canonical_query(&kv, NULL, &q), 0);
    reply r = strcmp(method, "GET") == 0 ? send_req(p, "GET", q, NULL, NULL)
                                         : send_req(p, "POST", NULL, q, NULL);
    free(q);
    prov_kvs_clear(&kv);
    return r;
}

static reply swas(const emu_proc *p, const char *action, const char *extra)
{
    return v1_call(p, "GET", "2020-06-01", action, extra, KEY, SECRET, NULL, 0, NULL);
}

/* A V3-signed POST with the parameters in the query; extra_header adds one more signed header. */
static reply v3_call(const emu_proc *p, const char *action, const char *extra, const char *secret,
                     const char *extra_header)
{
    prov_kvs q = {0}, h = {0};
    cr_assert_eq(prov_kvs_parse_urlencoded(&q, extra, strlen(extra)), 0);
    if (extra_header) {
        cr_assert_eq(prov_kvs_add(&h, extra_header, "static_ak"), 0);
    }
    char host[64], nonce[33], date[21];
    snprintf(host, sizeof(host), "127.0.0.1:%u", p->port);
    cr_assert_eq(prov_random_nonce(nonce), 0);
    now_stamp(0, date);
    cr_assert_eq(prov_sig_v3_sign(&h, "POST", host, "/", &q, "", 0, NULL, action, "2020-06-01", KEY,
                                  secret, NULL, nonce, date),
                 0);
    char *qs = NULL;
    cr_assert_eq(prov_canonical_query(&q, NULL, &qs), 0);
    prov_kvs_remove(&h, "host"); /* curl sends the same Host itself */
    reply r = send_req(p, "POST", qs, NULL, &h);
    free(qs);
    prov_kvs_clear(&q);
    prov_kvs_clear(&h);
    return r;
}

static const char *code_of(const reply *r)
{
    return json_string_value(json_object_get(r->body, "Code"));
}

static void expect_error(reply r, long status, const char *code)
{
    cr_expect_eq(r.err, CURLE_OK);
    cr_expect_eq(r.status, status, "status %ld, want %ld (%s)", r.status, status,
                 code_of(&r) ? code_of(&r) : "-");
    cr_expect(code_of(&r) && strcmp(code_of(&r), code) == 0, "code %s, want %s",
              code_of(&r) ? code_of(&r) : "(none)", code);
    for (const char *k = "RequestId"; k; k = NULL) {
        cr_expect(json_is_string(json_object_get(r.body, k)), "error body lacks %s", k);
    }
    cr_expect(json_is_string(json_object_get(r.body, "HostId")));
    cr_expect(json_is_string(json_object_get(r.body, "Message")));
    cr_expect(json_is_string(json_object_get(r.body, "Recommend")));
    json_decref(r.body);
}

static void expect_ok(reply r, const char *what)
{
    cr_expect_eq(r.err, CURLE_OK, "%s: transport %d", what, r.err);
    cr_expect_eq(r.status, 200, "%s: status %ld code %s", what, r.status,
                 code_of(&r) ? code_of(&r) : "-");
    cr_expect(json_is_string(json_object_get(r.body, "RequestId")), "%s: RequestId", what);
    json_decref(r.body);
}

static void start(emu_proc *p, const char *rate)
{
    const char *args[] = {"--rate-limit", rate, "--create-delay", "200ms", NULL};
    int rc = emu_proc_start(p, args);
    cr_assert_eq(rc, 0, "emulator start: %d", rc);
}

static void stop(emu_proc *p)
{
    cr_expect_eq(emu_proc_stop(p), 0, "the emulator exits 0 on SIGTERM");
}

Test(emulator_http, signed_v1_get_post_and_v3_accepted)
{
    emu_proc p;
    start(&p, "10/1s");
    reply r = swas(&p, "ListCustomImages", "RegionId=cn-hangzhou&PageSize=100");
    cr_expect_str_eq(json_string_value(json_object_get(r.body, "TotalCount")), "2");
    expect_ok(r, "V1 GET");
    expect_ok(v1_call(&p, "POST", "2020-06-01", "ListCustomImages", "RegionId=cn-hangzhou", KEY,
                      SECRET, NULL, 0, NULL),
              "V1 POST form body");
    expect_ok(v3_call(&p, "ListCustomImages", "RegionId=cn-hangzhou", SECRET, NULL), "V3");
    expect_ok(v3_call(&p, "ListCustomImages", "RegionId=cn-hangzhou", SECRET,
                      "x-acs-credentials-provider"),
              "V3 with an extra signed header");
    expect_ok(v1_call(&p, "GET", "2014-05-26", "DescribeImages",
                      "RegionId=cn-hangzhou&ImageOwnerAlias=self", KEY, SECRET, NULL, 0, NULL),
              "ECS on the same port");
    stop(&p);
}

Test(emulator_http, authentication_failures)
{
    emu_proc p;
    start(&p, "10/1s");
    char *sts = NULL;
    reply r = v1_call(&p, "GET", "2020-06-01", "ListCustomImages", "RegionId=cn-hangzhou", KEY,
                      "wrong-secret", NULL, 0, &sts);
    const char *msg = json_string_value(json_object_get(r.body, "Message"));
    char *want = NULL;
    cr_assert(asprintf(&want, "server string to sign is:%s", sts) > 0);
    cr_expect(msg && strlen(msg) >= strlen(want) &&
                  strcmp(msg + strlen(msg) - strlen(want), want) == 0,
              "message \"%s\" must end with \"%s\"", msg ? msg : "", want);
    cr_expect(msg && strstr(msg, "wrong-secret") == NULL);
    free(want);
    free(sts);
    expect_error(r, 400, "SignatureDoesNotMatch");
    expect_error(v3_call(&p, "ListCustomImages", "RegionId=cn-hangzhou", "wrong", NULL), 400,
                 "SignatureDoesNotMatch");
    expect_error(v1_call(&p, "GET", "2020-06-01", "ListCustomImages", "RegionId=cn-hangzhou", KEY,
                         SECRET, NULL, -16 * 60, NULL),
                 400, "InvalidTimeStamp.Expired");
    expect_error(v1_call(&p, "GET", "2020-06-01", "ListCustomImages", "RegionId=cn-hangzhou",
                         "LTAInobody", SECRET, NULL, 0, NULL),
                 404, "InvalidAccessKeyId.NotFound");
    expect_ok(v1_call(&p, "GET", "2020-06-01", "ListCustomImages", "RegionId=cn-hangzhou", KEY,
                      SECRET, "nonce-once-0001", 0, NULL),
              "first use of a nonce");
    expect_error(v1_call(&p, "GET", "2020-06-01", "ListCustomImages", "RegionId=cn-hangzhou", KEY,
                         SECRET, "nonce-once-0001", 0, NULL),
                 400, "SignatureNonceUsed");
    expect_error(
        send_req(&p, "GET", "Action=ListCustomImages&Version=2020-06-01&RegionId=x", NULL, NULL),
        400, "IncompleteSignature");
    expect_error(swas(&p, "NoSuchAction", "RegionId=cn-hangzhou"), 404, "InvalidAction.NotFound");
    expect_error(v1_call(&p, "GET", "2099-01-01", "ListCustomImages", "RegionId=cn-hangzhou", KEY,
                         SECRET, NULL, 0, NULL),
                 400, "InvalidVersion");
    stop(&p);
}

Test(emulator_http, eleventh_call_in_a_window_is_throttled)
{
    emu_proc p;
    /* A 10 s window, so that 11 calls surely fall into one even on a busy machine. */
    start(&p, "10/10s");
    for (int i = 0; i < 10; i++) {
        expect_ok(swas(&p, "ListCustomImages", "RegionId=cn-hangzhou"), "within the budget");
    }
    reply r = swas(&p, "ListCustomImages", "RegionId=cn-hangzhou");
    cr_expect_str_eq(json_string_value(json_object_get(r.body, "Message")),
                     "Request was denied due to user flow control.");
    expect_error(r, 400, "Throttling.User");
    expect_ok(swas(&p, "DeleteCustomImage", "RegionId=cn-hangzhou&ImageId=m-bp1handmade0000001"),
              "another action has its own window");
    json_t *j = emu_proc_journal(&p);
    cr_assert_not_null(j);
    size_t throttled = 0, i;
    json_t *line;
    json_array_foreach(j, i, line)
    {
        const char *code = json_string_value(json_object_get(line, "code"));
        throttled += code && strcmp(code, "Throttling.User") == 0;
    }
    cr_expect_eq(throttled, 1, "the throttled call is journaled");
    json_decref(j);
    stop(&p);
}

/* The newer SWAS operations each have their own window: with ListCustomImages used up, each
 * still answers twice (success or its own error), and its third call is throttled. */
Test(emulator_http, newer_operations_are_rate_limited_as_their_own_actions)
{
    static const struct {
        const char *action, *params;
    } ops[] = {
        {"TagResources", "RegionId=cn-hangzhou&ResourceType=customimage&ResourceId.1="
                         "m-bp1handmade0000001&Tag.1.Key=team&Tag.1.Value=web"},
        {"UntagResources", "RegionId=cn-hangzhou&ResourceType=customimage&ResourceId.1="
                           "m-bp1handmade0000001&TagKey.1=team"},
        {"ListTagResources", "RegionId=cn-hangzhou&ResourceType=customimage"},
        {"DeleteCustomImages", "RegionId=cn-hangzhou&ImageIds=%5B%22m-nosuch%22%5D"},
        {"ListRegions", "AcceptLanguage=en-US"},
        {"AddCustomImageShareAccount",
         "RegionId=cn-hangzhou&ImageId=m-bp1handmade0000001&Account.1=2222"},
        {"RemoveCustomImageShareAccount",
         "RegionId=cn-hangzhou&ImageId=m-bp1handmade0000001&Account.1=2222"},
        {"ListCustomImageShareAccounts", "RegionId=cn-hangzhou&ImageId=m-bp1handmade0000001"},
    };
    emu_proc p;
    start(&p, "2/10s");
    for (int i = 0; i < 2; i++) {
        expect_ok(swas(&p, "ListCustomImages", "RegionId=cn-hangzhou"), "list within the budget");
    }
    expect_error(swas(&p, "ListCustomImages", "RegionId=cn-hangzhou"), 400, "Throttling.User");
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        for (int n = 0; n < 2; n++) {
            reply r = swas(&p, ops[i].action, ops[i].params);
            cr_expect_eq(r.err, CURLE_OK);
            cr_expect(!code_of(&r) || strcmp(code_of(&r), "Throttling.User") != 0,
                      "%s call %d: throttled", ops[i].action, n + 1);
            cr_expect(r.status == 200 || strcmp(ops[i].action, "DeleteCustomImages") == 0,
                      "%s: status %ld %s", ops[i].action, r.status, code_of(&r) ? code_of(&r) : "");
            json_decref(r.body);
        }
        expect_error(swas(&p, ops[i].action, ops[i].params), 400, "Throttling.User");
    }
    stop(&p);
}

Test(emulator_http, journal_lines_are_well_formed_without_signatures)
{
    emu_proc p;
    start(&p, "10/1s");
    reply r = swas(&p, "CreateCustomImage",
                   "RegionId=cn-hangzhou&ImageName=journal-1&InstanceId="
                   "ace0706b2ac4454d984295a94213abcd&SystemSnapshotId=s-bp1sys00000001");
    const char *id = json_string_value(json_object_get(r.body, "ImageId"));
    char *image_id = id ? strdup(id) : NULL;
    expect_ok(r, "create");
    expect_error(swas(&p, "DeleteCustomImage", "RegionId=cn-hangzhou&ImageId=m-nope"), 404,
                 "InvalidImageId.NotFound");
    json_t *j = emu_proc_journal(&p);
    cr_assert_eq(json_array_size(j), 2);
    json_t *create = json_array_get(j, 0), *del = json_array_get(j, 1);
    static const char *const keys[] = {"ts",          "access_key_id", "action",    "params",
                                       "http_status", "code",          "request_id"};
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        cr_expect(json_object_get(create, keys[k]) != NULL, "missing %s", keys[k]);
    }
    const char *ts = json_string_value(json_object_get(create, "ts"));
    cr_expect(ts && strlen(ts) == 24 && ts[10] == 'T' && ts[19] == '.' && ts[23] == 'Z', "%s", ts);
    cr_expect_str_eq(json_string_value(json_object_get(create, "access_key_id")), KEY);
    cr_expect_str_eq(json_string_value(json_object_get(create, "action")), "CreateCustomImage");
    cr_expect(json_is_null(json_object_get(create, "code")));
    cr_expect_eq(json_integer_value(json_object_get(create, "http_status")), 200);
    cr_expect_str_eq(json_string_value(json_object_get(create, "image_id")), image_id);
    json_t *params = json_object_get(create, "params");
    cr_expect_str_eq(json_string_value(json_object_get(params, "ImageName")), "journal-1");
    const char *banned[] = {"Signature", "SignatureNonce",  "AccessKeyId",
                            "Timestamp", "SignatureMethod", "SecurityToken"};
    for (size_t k = 0; k < sizeof(banned) / sizeof(banned[0]); k++) {
        cr_expect_null(json_object_get(params, banned[k]), "params carry %s", banned[k]);
    }
    cr_expect_str_eq(json_string_value(json_object_get(del, "code")), "InvalidImageId.NotFound");
    cr_expect_eq(json_integer_value(json_object_get(del, "http_status")), 404);
    cr_expect_null(json_object_get(del, "image_id"));
    free(image_id);
    json_decref(j);
    stop(&p);
}

Test(emulator_http, scripted_faults_and_admin_routes)
{
    emu_proc p;
    start(&p, "10/1s");
    cr_assert_eq(emu_proc_add_fault(&p, "{\"action\":\"ListCustomImages\",\"kind\":"
                                        "\"InternalError\",\"count\":1}"),
                 0);
    cr_assert_eq(emu_proc_add_fault(&p, "{\"action\":\"ListCustomImages\",\"kind\":"
                                        "\"ServiceUnavailable\"}"),
                 0);
    expect_error(swas(&p, "ListCustomImages", "RegionId=cn-hangzhou"), 500, "InternalError");
    expect_error(swas(&p, "ListCustomImages", "RegionId=cn-hangzhou"), 503, "ServiceUnavailable");
    expect_ok(swas(&p, "ListCustomImages", "RegionId=cn-hangzhou"), "faults consumed");
    cr_expect_neq(emu_proc_add_fault(&p, "{\"kind\":\"explode\"}"), 0, "bad fault refused");
    /* A dropped connection: no answer and no state change. */
    cr_assert_eq(emu_proc_add_fault(&p, "{\"action\":\"DeleteCustomImage\",\"kind\":\"drop\"}"), 0);
    reply r = swas(&p, "DeleteCustomImage", "RegionId=cn-hangzhou&ImageId=m-bp1handmade0000001");
    cr_expect_neq(r.err, CURLE_OK, "the connection is dropped");
    json_decref(r.body);
    json_t *s = emu_proc_state(&p);
    json_t *imgs =
        json_object_get(json_array_get(json_object_get(s, "regions"), 0), "custom_images");
    cr_expect_eq(json_array_size(imgs), 2, "nothing deleted by the dropped call");
    char *text = json_dumps(s, 0);
    cr_expect(text && strstr(text, SECRET) == NULL, "the state never shows a secret");
    free(text);
    json_decref(s);
    expect_ok(swas(&p, "DeleteCustomImage", "RegionId=cn-hangzhou&ImageId=m-bp1handmade0000001"),
              "delete");
    s = emu_proc_state(&p);
    imgs = json_object_get(json_array_get(json_object_get(s, "regions"), 0), "custom_images");
    cr_expect_eq(json_array_size(imgs), 1);
    json_decref(s);
    /* A late answer: the call is carried out, then its answer held for delay_ms. */
    cr_expect_neq(emu_proc_add_fault(&p, "{\"kind\":\"late\"}"), 0, "late needs delay_ms");
    cr_assert_eq(emu_proc_add_fault(&p, "{\"action\":\"ListCustomImages\",\"kind\":\"late\","
                                        "\"delay_ms\":300}"),
                 0);
    uint64_t t0 = test_clock_ms();
    expect_ok(swas(&p, "ListCustomImages", "RegionId=cn-hangzhou"), "a late answer");
    cr_expect_geq(test_clock_ms() - t0, 300, "the answer was held");
    cr_assert_eq(emu_proc_reset(&p), 0);
    s = emu_proc_state(&p);
    imgs = json_object_get(json_array_get(json_object_get(s, "regions"), 0), "custom_images");
    cr_expect_eq(json_array_size(imgs), 2, "reset restores the fixture");
    json_decref(s);
    json_t *j = emu_proc_journal(&p);
    cr_expect_eq(json_array_size(j), 0, "reset empties the journal");
    json_decref(j);
    stop(&p);
}
