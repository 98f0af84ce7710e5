/* Signing: the vendor's worked V1 and V3 examples, the RFC 3986 encoder, canonical ordering,
 * the STS token, GET vs POST, the urlencoded parser, and sign-then-verify round trips with the
 * failures the emulator must report (tampering, wrong secret, missing header, body hash). */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "prov_kvs.h"
#include "prov_sig.h"

/* ---- Encoder ---- */

/* Fixed arrays, not pointers: Criterion copies parameters into each test's own process. */
struct enc_case {
    char in[24];
    char out[64];
};

ParameterizedTestParameters(sig, pct_encode)
{
    static struct enc_case cases[] = {
        {"", ""},
        {"abcXYZ019-_.~", "abcXYZ019-_.~"},
        {"*", "%2A"},
        {"~", "~"},
        {"!", "%21"},
        {"'", "%27"},
        {"(", "%28"},
        {")", "%29"},
        {" ", "%20"},
        {"+", "%2B"},
        {"/", "%2F"},
        {"=", "%3D"},
        {"&", "%26"},
        {"%", "%25"},
        {"a b*c~d", "a%20b%2Ac~d"},
        {"数据", "%E6%95%B0%E6%8D%AE"},
        {"[\"m-a\",\"m-b\"]", "%5B%22m-a%22%2C%22m-b%22%5D"},
        {"\xff", "%FF"},
    };
    return cr_make_param_array(struct enc_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct enc_case *c, sig, pct_encode)
{
    char *out = NULL;
    cr_assert_eq(prov_pct_encode(c->in, strlen(c->in), &out), 0);
    cr_expect_str_eq(out, c->out, "encode(%s)", c->in);
    free(out);
}

/* ---- urlencoded parser ---- */

struct parse_case {
    char in[32];
    int ret;
    char expect[32]; /* "k=v|k=v" after decoding, for ret == 0 */
};

ParameterizedTestParameters(sig, parse_urlencoded)
{
    static struct parse_case cases[] = {
        {"", 0, ""},
        {"a=1&b=%20x", 0, "a=1|b= x"},
        {"a=b+c", 0, "a=b c"},
        {"a=&b=", 0, "a=|b="},
        {"a", 0, "a="},
        {"a&&b=2&", 0, "a=|b=2"},
        {"x=%E6%95%B0", 0, "x=数"},
        {"k%2Ak=%2a", 0, "k*k=*"},
        {"a=%", -EINVAL, ""},
        {"a=%4", -EINVAL, ""},
        {"a=%zz", -EINVAL, ""},
        {"a=%00", -EINVAL, ""},
        {"%G1=b", -EINVAL, ""},
    };
    return cr_make_param_array(struct parse_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct parse_case *c, sig, parse_urlencoded)
{
    prov_kvs kvs = {0};
    int r = prov_kvs_parse_urlencoded(&kvs, c->in, strlen(c->in));
    cr_assert_eq(r, c->ret, "parse(%s) = %d", c->in, r);
    if (r == 0) {
        char buf[256] = "";
        for (size_t i = 0; i < kvs.n; i++) {
            if (i)
                strcat(buf, "|");
            strcat(buf, kvs.v[i].key);
            strcat(buf, "=");
            strcat(buf, kvs.v[i].value);
        }
        cr_expect_str_eq(buf, c->expect, "parse(%s)", c->in);
    }
    prov_kvs_clear(&kvs);
}

Test(sig, parse_urlencoded_embedded_nul_refused)
{
    prov_kvs kvs = {0};
    cr_expect_eq(prov_kvs_parse_urlencoded(&kvs, "a=b\0c", 5), -EINVAL);
    prov_kvs_clear(&kvs);
}

Test(sig, kvs_set_get_remove)
{
    prov_kvs kvs = {0};
    cr_assert_eq(prov_kvs_add(&kvs, "A", "1"), 0);
    cr_assert_eq(prov_kvs_add(&kvs, "B", ""), 0);
    cr_assert_eq(prov_kvs_add(&kvs, "A", "2"), 0);
    cr_assert_eq(prov_kvs_set(&kvs, "A", "3"), 0);
    cr_expect_str_eq(prov_kvs_get(&kvs, "A"), "3");
    cr_expect_str_eq(prov_kvs_get(&kvs, "B"), "");
    cr_expect_null(prov_kvs_get(&kvs, "a"));
    cr_expect_str_eq(prov_kvs_get_ci(&kvs, "a"), "3");
    prov_kvs_remove(&kvs, "A");
    cr_expect_eq(kvs.n, 1);
    cr_expect_null(prov_kvs_get(&kvs, "A"));
    prov_kvs_clear(&kvs);
    prov_kvs_clear(&kvs);
    prov_kvs_clear(NULL);
}

/* ---- Canonical query ---- */

Test(sig, canonical_query_orders_by_encoded_bytes)
{
    prov_kvs kvs = {0};
    cr_assert_eq(prov_kvs_add(&kvs, "Tag.2.Key", "b"), 0);
    cr_assert_eq(prov_kvs_add(&kvs, "Tag.10.Key", "c"), 0);
    cr_assert_eq(prov_kvs_add(&kvs, "Tag.1.Key", "a"), 0);
    cr_assert_eq(prov_kvs_add(&kvs, "Empty", ""), 0);
    cr_assert_eq(prov_kvs_add(&kvs, "Signature", "skipme"), 0);
    cr_assert_eq(prov_kvs_add(&kvs, "Dup", "z"), 0);
    cr_assert_eq(prov_kvs_add(&kvs, "Dup", "y"), 0);
    char *q = NULL;
    cr_assert_eq(prov_canonical_query(&kvs, "Signature", &q), 0);
    cr_expect_str_eq(q, "Dup=y&Dup=z&Empty=&Tag.1.Key=a&Tag.10.Key=c&Tag.2.Key=b");
    free(q);
    cr_assert_eq(prov_canonical_query(&kvs, NULL, &q), 0);
    cr_expect_not_null(strstr(q, "Signature=skipme"));
    free(q);
    prov_kvs_clear(&kvs);
}

/* ---- Timestamps and nonces ---- */

Test(sig, utc_round_trip_and_rejects)
{
    char buf[21];
    prov_format_utc(1456231584, buf);
    cr_expect_str_eq(buf, "2016-02-23T12:46:24Z");
    time_t t = 0;
    cr_assert_eq(prov_parse_utc("2016-02-23T12:46:24Z", &t), 0);
    cr_expect_eq(t, 1456231584);
    const char *bad[] = {"",
                         "2016-02-23 12:46:24Z",
                         "2016-02-30T00:00:00Z",
                         "2016-13-01T00:00:00Z",
                         "2016-02-23T24:00:00Z",
                         "2016-02-23T12:46:24",
                         "2016-02-23T12:46:2xZ",
                         "2016-02-23T12:46:24Z ",
                         NULL};
    for (int i = 0; bad[i]; i++) {
        t = 7;
        cr_expect_eq(prov_parse_utc(bad[i], &t), -EINVAL, "%s", bad[i]);
        cr_expect_eq(t, 7, "output untouched on error");
    }
    cr_expect_eq(prov_parse_utc(NULL, &t), -EINVAL);
}

Test(sig, nonce_is_hex_and_differs)
{
    char a[33], b[33];
    cr_assert_eq(prov_random_nonce(a), 0);
    cr_assert_eq(prov_random_nonce(b), 0);
    cr_expect_eq(strlen(a), 32);
    cr_expect_eq(strspn(a, "0123456789abcdef"), 32);
    cr_expect_str_neq(a, b);
}

Test(sig, sha256_hex_empty)
{
    char hex[65];
    prov_sha256_hex("", 0, hex);
    cr_expect_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    prov_sha256_hex(NULL, 0, hex);
    cr_expect_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

/* ---- V1 ---- */

static void v1_vendor_params(prov_kvs *p)
{
    cr_assert_eq(prov_kvs_add(p, "Action", "DescribeRegions"), 0);
    cr_assert_eq(prov_kvs_add(p, "Format", "XML"), 0);
    cr_assert_eq(prov_kvs_add(p, "Version", "2014-05-26"), 0);
}

Test(sig, v1_vendor_example)
{
    prov_kvs p = {0};
    v1_vendor_params(&p);
    cr_assert_eq(prov_sig_v1_sign(&p, "GET", "testid", "testsecret", NULL,
                                  "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf", "2016-02-23T12:46:24Z"),
                 0);
    char *sts = NULL;
    cr_assert_eq(prov_sig_v1_string_to_sign("GET", &p, &sts), 0);
    cr_expect_str_eq(sts,
                     "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML"
                     "%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-"
                     "4e0ad82fd6cf%26SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%"
                     "253A24Z%26Version%3D2014-05-26");
    free(sts);
    cr_expect_str_eq(prov_kvs_get(&p, "Signature"), "OLeaidS1JvxuMvnyHOwuJ+uX5qY=");
    cr_expect_null(prov_kvs_get(&p, "SecurityToken"));
    cr_expect_eq(prov_sig_v1_verify("GET", &p, "testsecret", NULL), 0);
    prov_kvs_clear(&p);
}

Test(sig, v1_get_and_post_differ)
{
    prov_kvs g = {0}, q = {0};
    v1_vendor_params(&g);
    v1_vendor_params(&q);
    cr_assert_eq(prov_sig_v1_sign(&g, "GET", "id", "s", NULL, "n", "2016-02-23T12:46:24Z"), 0);
    cr_assert_eq(prov_sig_v1_sign(&q, "POST", "id", "s", NULL, "n", "2016-02-23T12:46:24Z"), 0);
    cr_expect_str_neq(prov_kvs_get(&g, "Signature"), prov_kvs_get(&q, "Signature"));
    cr_expect_eq(prov_sig_v1_verify("POST", &q, "s", NULL), 0);
    char *sts = NULL;
    cr_expect_eq(prov_sig_v1_verify("POST", &g, "s", &sts), -EPERM);
    cr_assert_not_null(sts);
    cr_expect_eq(strncmp(sts, "POST&%2F&", 9), 0);
    free(sts);
    prov_kvs_clear(&g);
    prov_kvs_clear(&q);
}

Test(sig, v1_sts_token_is_signed)
{
    prov_kvs a = {0}, b = {0};
    v1_vendor_params(&a);
    v1_vendor_params(&b);
    cr_assert_eq(prov_sig_v1_sign(&a, "GET", "id", "s", "tok1", "n", "2016-02-23T12:46:24Z"), 0);
    cr_assert_eq(prov_sig_v1_sign(&b, "GET", "id", "s", NULL, "n", "2016-02-23T12:46:24Z"), 0);
    cr_expect_str_eq(prov_kvs_get(&a, "SecurityToken"), "tok1");
    cr_expect_str_neq(prov_kvs_get(&a, "Signature"), prov_kvs_get(&b, "Signature"));
    cr_expect_eq(prov_sig_v1_verify("GET", &a, "s", NULL), 0);
    /* Swapping the token after signing breaks the signature. */
    cr_assert_eq(prov_kvs_set(&a, "SecurityToken", "tok2"), 0);
    char *sts = NULL;
    cr_expect_eq(prov_sig_v1_verify("GET", &a, "s", &sts), -EPERM);
    cr_expect_not_null(strstr(sts, "SecurityToken%3Dtok2"));
    free(sts);
    prov_kvs_clear(&a);
    prov_kvs_clear(&b);
}

Test(sig, v1_resign_replaces_common_params)
{
    prov_kvs p = {0};
    v1_vendor_params(&p);
    cr_assert_eq(prov_sig_v1_sign(&p, "GET", "id", "s", "tok", "n1", "2016-02-23T12:46:24Z"), 0);
    cr_assert_eq(prov_sig_v1_sign(&p, "GET", "id", "s", NULL, "n2", "2016-02-23T12:46:25Z"), 0);
    size_t sigs = 0;
    for (size_t i = 0; i < p.n; i++)
        sigs += strcmp(p.v[i].key, "Signature") == 0;
    cr_expect_eq(sigs, 1);
    cr_expect_null(prov_kvs_get(&p, "SecurityToken"));
    cr_expect_str_eq(prov_kvs_get(&p, "SignatureNonce"), "n2");
    cr_expect_eq(prov_sig_v1_verify("GET", &p, "s", NULL), 0);
    prov_kvs_clear(&p);
}

Test(sig, v1_round_trip_through_wire_format)
{
    /* Encode the signed params as a form body, parse them back, verify: what the emulator does. */
    prov_kvs p = {0};
    v1_vendor_params(&p);
    cr_assert_eq(prov_kvs_add(&p, "ImageName", "web 数据 *~!'()"), 0);
    cr_assert_eq(prov_kvs_add(&p, "Description", ""), 0);
    cr_assert_eq(prov_kvs_add(&p, "Tag.10.Key", "k10"), 0);
    cr_assert_eq(prov_kvs_add(&p, "Tag.1.Key", "k1"), 0);
    cr_assert_eq(
        prov_sig_v1_sign(&p, "POST", "id", "s3cr3t", "tok", "nonce-1", "2024-01-01T00:00:00Z"), 0);
    char *body = NULL;
    cr_assert_eq(prov_canonical_query(&p, NULL, &body), 0);
    prov_kvs back = {0};
    cr_assert_eq(prov_kvs_parse_urlencoded(&back, body, strlen(body)), 0);
    cr_expect_eq(prov_sig_v1_verify("POST", &back, "s3cr3t", NULL), 0);
    free(body);
    prov_kvs_clear(&back);
    prov_kvs_clear(&p);
}

Test(sig, v1_verify_failures)
{
    prov_kvs p = {0};
    v1_vendor_params(&p);
    cr_assert_eq(prov_sig_v1_sign(&p, "GET", "id", "s", NULL, "n", "2016-02-23T12:46:24Z"), 0);
    char *sts = NULL;
    cr_expect_eq(prov_sig_v1_verify("GET", &p, "wrong", &sts), -EPERM);
    cr_assert_not_null(sts);
    cr_expect_eq(strncmp(sts, "GET&%2F&AccessKeyId%3Did", 24), 0);
    free(sts);
    sts = NULL;

    cr_assert_eq(prov_kvs_set(&p, "Format", "JSON"), 0);
    cr_expect_eq(prov_sig_v1_verify("GET", &p, "s", &sts), -EPERM);
    cr_expect_not_null(strstr(sts, "Format%3DJSON"));
    free(sts);
    sts = NULL;

    /* Incomplete requests: each missing or wrong signing parameter. */
    const char *keys[] = {"Signature", "AccessKeyId", "SignatureMethod", "SignatureVersion"};
    for (size_t i = 0; i < 4; i++) {
        prov_kvs c = {0};
        v1_vendor_params(&c);
        cr_assert_eq(prov_sig_v1_sign(&c, "GET", "id", "s", NULL, "n", "2016-02-23T12:46:24Z"), 0);
        prov_kvs_remove(&c, keys[i]);
        cr_expect_eq(prov_sig_v1_verify("GET", &c, "s", &sts), -EINVAL, "without %s", keys[i]);
        cr_expect_null(sts);
        prov_kvs_clear(&c);
    }
    cr_assert_eq(prov_kvs_set(&p, "SignatureMethod", "HMAC-SHA256"), 0);
    cr_expect_eq(prov_sig_v1_verify("GET", &p, "s", &sts), -EINVAL);
    cr_assert_eq(prov_kvs_set(&p, "SignatureMethod", "HMAC-SHA1"), 0);
    cr_assert_eq(prov_kvs_set(&p, "SignatureVersion", "2.0"), 0);
    cr_expect_eq(prov_sig_v1_verify("GET", &p, "s", &sts), -EINVAL);
    prov_kvs_clear(&p);
}

/* ---- V3 ---- */

#define V3_HOST "ecs.cn-shanghai.aliyuncs.com"
#define V3_IMAGE "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd"

static void v3_vendor_query(prov_kvs *q)
{
    cr_assert_eq(prov_kvs_add(q, "RegionId", "cn-shanghai"), 0);
    cr_assert_eq(prov_kvs_add(q, "ImageId", V3_IMAGE), 0);
}

static int v3_vendor_sign(prov_kvs *h, const prov_kvs *q)
{
    return prov_sig_v3_sign(h, "POST", V3_HOST, "/", q, "", 0, NULL, "RunInstances", "2014-05-26",
                            "YourAccessKeyId", "YourAccessKeySecret", NULL,
                            "3156853299f313e23d1673dc12e1703d", "2023-10-26T10:22:32Z");
}

Test(sig, v3_vendor_example)
{
    prov_kvs q = {0}, h = {0};
    v3_vendor_query(&q);
    cr_assert_eq(v3_vendor_sign(&h, &q), 0);

    const char *signed_list =
        "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version";
    char *creq = NULL, *sts = NULL, *sig = NULL;
    cr_assert_eq(prov_sig_v3_canonical_request(
                     "POST", "/", &q, &h, signed_list,
                     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", &creq),
                 0);
    cr_expect_str_eq(creq, "POST\n/\nImageId=" V3_IMAGE "&RegionId=cn-shanghai\n"
                           "host:" V3_HOST "\n"
                           "x-acs-action:RunInstances\n"
                           "x-acs-content-sha256:"
                           "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
                           "x-acs-date:2023-10-26T10:22:32Z\n"
                           "x-acs-signature-nonce:3156853299f313e23d1673dc12e1703d\n"
                           "x-acs-version:2014-05-26\n\n" //
                           "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-"
                           "nonce;x-acs-version\n"
                           "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    cr_assert_eq(prov_sig_v3_string_to_sign(creq, &sts), 0);
    cr_expect_str_eq(sts, "ACS3-HMAC-SHA256\n"
                          "7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259");
    cr_assert_eq(prov_sig_v3_signature("YourAccessKeySecret", sts, &sig), 0);
    cr_expect_str_eq(sig, "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0");
    cr_expect_str_eq(prov_kvs_get(&h, "authorization"),
                     "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host;x-acs-action;"
                     "x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,"
                     "Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0");
    cr_expect_eq(prov_sig_v3_verify("POST", "/", &q, &h, "", 0, "YourAccessKeySecret", NULL), 0);
    free(creq);
    free(sts);
    free(sig);
    prov_kvs_clear(&q);
    prov_kvs_clear(&h);
}

Test(sig, v3_parse_authorization)
{
    char *id = NULL, *sh = NULL, *sig = NULL;
    cr_assert_eq(prov_sig_v3_parse_authorization(
                     "ACS3-HMAC-SHA256 Credential=AK,SignedHeaders=host;x-acs-date,Signature=ab12",
                     &id, &sh, &sig),
                 0);
    cr_expect_str_eq(id, "AK");
    cr_expect_str_eq(sh, "host;x-acs-date");
    cr_expect_str_eq(sig, "ab12");
    free(id);
    free(sh);
    free(sig);
    const char *bad[] = {
        "",
        "ACS3-HMAC-SHA256",
        "HMAC-SHA1 Credential=AK,SignedHeaders=host,Signature=ab",
        "ACS3-HMAC-SHA256 Credential=AK,SignedHeaders=host",
        "ACS3-HMAC-SHA256 Credential=,SignedHeaders=host,Signature=ab",
        "ACS3-HMAC-SHA256 SignedHeaders=host,Signature=ab",
        NULL,
    };
    for (int i = 0; bad[i]; i++)
        cr_expect_eq(prov_sig_v3_parse_authorization(bad[i], &id, &sh, &sig), -EINVAL, "%s",
                     bad[i]);
    cr_expect_eq(prov_sig_v3_parse_authorization(NULL, &id, &sh, &sig), -EINVAL);
}

static const char form_body[] = "ImageName=web%20%E6%95%B0&Tag.1.Key=a&Tag.10.Key=b";

static void v3_sign_form(prov_kvs *h, const prov_kvs *q, const char *token)
{
    cr_assert_eq(prov_sig_v3_sign(h, "POST", "swas.cn-hangzhou.aliyuncs.com", "/", q, form_body,
                                  strlen(form_body), "application/x-www-form-urlencoded",
                                  "CreateCustomImage", "2020-06-01", "AK", "sekrit", token,
                                  "nonce-1", "2024-01-01T00:00:00Z"),
                 0);
}

Test(sig, v3_round_trip_with_body_token_and_extra_header)
{
    prov_kvs q = {0}, h = {0};
    cr_assert_eq(prov_kvs_add(&q, "RegionId", "cn-hangzhou"), 0);
    cr_assert_eq(prov_kvs_add(&h, "x-acs-credentials-provider", "static"), 0);
    cr_assert_eq(prov_kvs_add(&h, "user-agent", "imgrecon-test"), 0);
    v3_sign_form(&h, &q, "tok");
    char *sh = NULL;
    cr_assert_eq(
        prov_sig_v3_parse_authorization(prov_kvs_get(&h, "authorization"), NULL, &sh, NULL), 0);
    cr_expect_str_eq(sh, "content-type;host;x-acs-action;x-acs-content-sha256;x-acs-credentials-"
                         "provider;x-acs-date;x-acs-security-token;x-acs-signature-nonce;x-acs-"
                         "version");
    free(sh);
    cr_expect_str_eq(prov_kvs_get(&h, "x-acs-security-token"), "tok");
    cr_expect_eq(
        prov_sig_v3_verify("POST", "/", &q, &h, form_body, strlen(form_body), "sekrit", NULL), 0);
    /* Headers outside the signed set may change; signed ones may not. */
    cr_assert_eq(prov_kvs_set(&h, "user-agent", "other"), 0);
    cr_expect_eq(
        prov_sig_v3_verify("POST", "/", &q, &h, form_body, strlen(form_body), "sekrit", NULL), 0);
    cr_assert_eq(prov_kvs_set(&h, "x-acs-security-token", "tok2"), 0);
    char *sts = NULL;
    cr_expect_eq(
        prov_sig_v3_verify("POST", "/", &q, &h, form_body, strlen(form_body), "sekrit", &sts),
        -EPERM);
    cr_assert_not_null(sts);
    cr_expect_eq(strncmp(sts, "ACS3-HMAC-SHA256\n", 17), 0);
    free(sts);
    prov_kvs_clear(&q);
    prov_kvs_clear(&h);
}

Test(sig, v3_sts_token_changes_signature)
{
    prov_kvs q = {0}, a = {0}, b = {0};
    v3_sign_form(&a, &q, "tok");
    v3_sign_form(&b, &q, NULL);
    cr_expect_null(prov_kvs_get(&b, "x-acs-security-token"));
    cr_expect_str_neq(prov_kvs_get(&a, "authorization"), prov_kvs_get(&b, "authorization"));
    prov_kvs_clear(&a);
    prov_kvs_clear(&b);
}

Test(sig, v3_verify_failures)
{
    prov_kvs q = {0}, h = {0};
    cr_assert_eq(prov_kvs_add(&q, "RegionId", "cn-hangzhou"), 0);
    v3_sign_form(&h, &q, NULL);
    size_t blen = strlen(form_body);
    char *sts = NULL;

    /* Wrong secret. */
    cr_expect_eq(prov_sig_v3_verify("POST", "/", &q, &h, form_body, blen, "nope", &sts), -EPERM);
    cr_expect_not_null(sts);
    free(sts);
    sts = NULL;
    /* Tampered query parameter. */
    cr_assert_eq(prov_kvs_set(&q, "RegionId", "cn-beijing"), 0);
    cr_expect_eq(prov_sig_v3_verify("POST", "/", &q, &h, form_body, blen, "sekrit", &sts), -EPERM);
    cr_assert_not_null(sts);
    free(sts);
    sts = NULL;
    cr_assert_eq(prov_kvs_set(&q, "RegionId", "cn-hangzhou"), 0);
    /* Different method. */
    cr_expect_eq(prov_sig_v3_verify("GET", "/", &q, &h, form_body, blen, "sekrit", NULL), -EPERM);
    /* A body that does not hash to x-acs-content-sha256. */
    cr_expect_eq(prov_sig_v3_verify("POST", "/", &q, &h, "ImageName=x", 11, "sekrit", &sts),
                 -EPERM);
    cr_expect_not_null(sts);
    free(sts);
    sts = NULL;
    cr_expect_eq(prov_sig_v3_verify("POST", "/", &q, &h, form_body, blen, "sekrit", NULL), 0);

    /* A signed header missing from the request. */
    prov_kvs h2 = {0};
    v3_sign_form(&h2, &q, NULL);
    prov_kvs_remove(&h2, "x-acs-date");
    cr_expect_eq(prov_sig_v3_verify("POST", "/", &q, &h2, form_body, blen, "sekrit", &sts),
                 -EINVAL);
    cr_expect_null(sts);
    /* No Authorization at all, or a malformed one. */
    prov_kvs_remove(&h2, "authorization");
    cr_expect_eq(prov_sig_v3_verify("POST", "/", &q, &h2, form_body, blen, "sekrit", &sts),
                 -EINVAL);
    cr_assert_eq(prov_kvs_add(&h2, "Authorization", "ACS3-HMAC-SHA256 garbage"), 0);
    cr_expect_eq(prov_sig_v3_verify("POST", "/", &q, &h2, form_body, blen, "sekrit", &sts),
                 -EINVAL);
    cr_expect_null(sts);
    prov_kvs_clear(&h2);
    prov_kvs_clear(&q);
    prov_kvs_clear(&h);
}

Test(sig, v3_resign_replaces_authorization)
{
    prov_kvs q = {0}, h = {0};
    v3_sign_form(&h, &q, "tok");
    v3_sign_form(&h, &q, NULL);
    size_t n = 0;
    for (size_t i = 0; i < h.n; i++)
        n += strcmp(h.v[i].key, "authorization") == 0;
    cr_expect_eq(n, 1);
    cr_expect_null(prov_kvs_get(&h, "x-acs-security-token"));
    cr_expect_eq(
        prov_sig_v3_verify("POST", "/", &q, &h, form_body, strlen(form_body), "sekrit", NULL), 0);
    prov_kvs_clear(&q);
    prov_kvs_clear(&h);
}

Test(sig, v3_repeated_header_values_joined_sorted)
{
    prov_kvs q = {0}, h = {0};
    cr_assert_eq(prov_kvs_add(&h, "x-acs-extra", " b "), 0);
    cr_assert_eq(prov_kvs_add(&h, "X-Acs-Extra", "a"), 0);
    cr_assert_eq(prov_kvs_add(&h, "host", "h"), 0);
    char *creq = NULL;
    cr_assert_eq(prov_sig_v3_canonical_request("GET", "/", &q, &h, "host;x-acs-extra", "00", &creq),
                 0);
    cr_expect_str_eq(creq, "GET\n/\n\nhost:h\nx-acs-extra:a,b\n\nhost;x-acs-extra\n00");
    free(creq);
    cr_expect_eq(
        prov_sig_v3_canonical_request("GET", "/", &q, &h, "host;x-acs-missing", "00", &creq),
        -EINVAL);
    cr_expect_eq(
        prov_sig_v3_canonical_request("GET", "/", &q, &h, "host;;x-acs-extra", "00", &creq),
        -EINVAL);
    prov_kvs_clear(&h);
}
