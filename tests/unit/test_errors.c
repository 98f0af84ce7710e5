/* Error classes by Code, HTTP status and local errno (provider/README.md "Errors"),
 * the error record's set/copy/clear/describe, and the image helpers in prov_types.c. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "prov_types.h"

/* Fixed arrays: Criterion hands each parameter to a separate process. An empty string stands
 * for a NULL action or code. */
struct cls_case {
    char action[32];
    long http;
    char code[40];
    int sys;
    prov_err_class want;
};

ParameterizedTestParameters(errors, classify)
{
    static struct cls_case cases[] = {
        /* Throttled. */
        {"ListCustomImages", 400, "Throttling", 0, PROV_ERR_THROTTLED},
        {"ListCustomImages", 400, "Throttling.User", 0, PROV_ERR_THROTTLED},
        {"CreateCustomImage", 400, "Throttling.Api", 0, PROV_ERR_THROTTLED},
        {"DescribeImages", 400, "Rejected.Throttling", 0, PROV_ERR_THROTTLED},
        {"ListCustomImages", 429, "", 0, PROV_ERR_THROTTLED},
        {"ListCustomImages", 429, "SomethingElse", 0, PROV_ERR_THROTTLED},
        {"ListCustomImages", 400, "ThrottlingX", 0, PROV_ERR_PERMANENT},
        /* Transient. */
        {"ListCustomImages", 500, "InternalError", 0, PROV_ERR_TRANSIENT},
        {"ListCustomImages", 503, "ServiceUnavailable", 0, PROV_ERR_TRANSIENT},
        {"ListCustomImages", 500, "UnknownError", 0, PROV_ERR_TRANSIENT},
        {"ListCustomImages", 500, "", 0, PROV_ERR_TRANSIENT},
        {"ListCustomImages", 502, "", 0, PROV_ERR_TRANSIENT},
        {"ListCustomImages", 503, "", 0, PROV_ERR_TRANSIENT},
        {"ListCustomImages", 504, "", 0, PROV_ERR_TRANSIENT},
        {"ListCustomImages", 0, "", -ETIMEDOUT, PROV_ERR_TRANSIENT},
        {"ListCustomImages", 0, "", -ECONNRESET, PROV_ERR_TRANSIENT},
        {"ListCustomImages", 0, "", -ECONNREFUSED, PROV_ERR_TRANSIENT},
        {"ListCustomImages", 0, "", -EPIPE, PROV_ERR_TRANSIENT},
        {"ListCustomImages", 200, "", -EPROTO, PROV_ERR_TRANSIENT},
        {"ListCustomImages", 0, "", -EIO, PROV_ERR_TRANSIENT},
        /* An attempt the transport sent twice (libcurl's resend after a dead connection). */
        {"DeleteCustomImage", 400, "SignatureNonceUsed", 0, PROV_ERR_TRANSIENT},
        /* Done. */
        {"DeleteCustomImage", 404, "InvalidImageId.NotFound", 0, PROV_ERR_DONE},
        {"DeleteImage", 404, "InvalidImageId.NotFound", 0, PROV_ERR_DONE},
        {"ModifyImageShareStatus", 404, "InvalidImageId.NotFound", 0, PROV_ERR_PERMANENT},
        {"", 404, "InvalidImageId.NotFound", 0, PROV_ERR_PERMANENT},
        /* Removing what is gone is done; adding to what is gone is not. */
        {"UntagResources", 404, "InvalidResourceId.NotFound", 0, PROV_ERR_DONE},
        {"TagResources", 404, "InvalidResourceId.NotFound", 0, PROV_ERR_PERMANENT},
        {"RemoveCustomImageShareAccount", 404, "InvalidImageId.NotFound", 0, PROV_ERR_DONE},
        {"AddCustomImageShareAccount", 404, "InvalidImageId.NotFound", 0, PROV_ERR_PERMANENT},
        {"TagResources", 400, "OperationDenied.QuotaExceed", 0, PROV_ERR_PERMANENT},
        {"AddCustomImageShareAccount", 400, "QuotaExceed.ShareAccount", 0, PROV_ERR_PERMANENT},
        {"DeleteImage", 400, "DryRunOperation", 0, PROV_ERR_DONE},
        /* Fixable by order. */
        {"DeleteCustomImage", 400, "CustomImageInShare", 0, PROV_ERR_ORDER},
        /* Permanent. */
        {"CreateCustomImage", 400, "InvalidParam.ImageName", 0, PROV_ERR_PERMANENT},
        {"CreateCustomImage", 400, "ImageNameAlreadyExist", 0, PROV_ERR_PERMANENT},
        {"CreateCustomImage", 400, "CustomImageQuotaLimit", 0, PROV_ERR_PERMANENT},
        {"CreateCustomImage", 403, "IncorrectInstanceStatus", 0, PROV_ERR_PERMANENT},
        {"DeleteImage", 403, "ImageUsingByInstance", 0, PROV_ERR_PERMANENT},
        {"ListCustomImages", 400, "SignatureDoesNotMatch", 0, PROV_ERR_PERMANENT},
        {"ListCustomImages", 503, "Forbidden.Other", 0, PROV_ERR_PERMANENT},
        {"ListCustomImages", 404, "", 0, PROV_ERR_PERMANENT},
        {"ListCustomImages", 0, "", -ENOMEM, PROV_ERR_PERMANENT},
        {"ListCustomImages", 0, "", -EINVAL, PROV_ERR_PERMANENT},
        /* No error at all. */
        {"ListCustomImages", 200, "", 0, PROV_ERR_NONE},
        {"ListCustomImages", 0, "", 0, PROV_ERR_NONE},
    };
    return cr_make_param_array(struct cls_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct cls_case *c, errors, classify)
{
    const char *action = c->action[0] ? c->action : NULL;
    const char *code = c->code[0] ? c->code : NULL;
    prov_err_class got = prov_err_classify(action, c->http, code, c->sys);
    cr_expect_eq(got, c->want, "%s/%ld/%s/%d: got %s, want %s", c->action, c->http, c->code, c->sys,
                 prov_err_class_name(got), prov_err_class_name(c->want));
    /* prov_error_set classifies the same way. */
    prov_error e = {0};
    cr_assert_eq(prov_error_set(&e, c->http, c->sys, code, "m", "rid", action), 0);
    cr_expect_eq(e.cls, c->want);
    prov_error_clear(&e);
}

Test(errors, class_names)
{
    cr_expect_str_eq(prov_err_class_name(PROV_ERR_NONE), "none");
    cr_expect_str_eq(prov_err_class_name(PROV_ERR_THROTTLED), "throttled");
    cr_expect_str_eq(prov_err_class_name(PROV_ERR_TRANSIENT), "transient");
    cr_expect_str_eq(prov_err_class_name(PROV_ERR_DONE), "done");
    cr_expect_str_eq(prov_err_class_name(PROV_ERR_ORDER), "order");
    cr_expect_str_eq(prov_err_class_name(PROV_ERR_PERMANENT), "permanent");
    cr_expect_str_eq(prov_err_class_name((prov_err_class)42), "unknown");
}

Test(errors, set_copy_describe_clear)
{
    prov_error e = {0};
    cr_assert_eq(prov_error_set(&e, 400, 0, "CustomImageInShare", "The image is shared.", "5E3A-11",
                                "DeleteCustomImage"),
                 0);
    cr_expect_eq(e.cls, PROV_ERR_ORDER);
    cr_expect_eq(e.http_status, 400);
    char *d = prov_error_describe(&e);
    cr_expect_str_eq(d, "CustomImageInShare: The image is shared. (RequestId: 5E3A-11)");
    free(d);

    prov_error c = {0};
    cr_assert_eq(prov_error_copy(&c, &e), 0);
    cr_expect_neq(c.code, e.code);
    cr_expect_str_eq(c.code, e.code);
    cr_expect_str_eq(c.request_id, "5E3A-11");
    cr_expect_eq(c.cls, e.cls);

    /* Setting again replaces (and frees) the earlier strings. */
    cr_assert_eq(prov_error_set(&e, 0, -ETIMEDOUT, NULL, "request timed out", NULL, "X"), 0);
    cr_expect_null(e.code);
    cr_expect_eq(e.cls, PROV_ERR_TRANSIENT);
    d = prov_error_describe(&e);
    cr_expect_str_eq(d, "request timed out: Connection timed out");
    free(d);

    /* A malformed or inconsistent answer is described by its message alone. */
    cr_assert_eq(prov_error_set(&e, 0, -EPROTO, NULL, "short listing: 3 of TotalCount 5 images",
                                NULL, "ListCustomImages"),
                 0);
    d = prov_error_describe(&e);
    cr_expect_str_eq(d, "short listing: 3 of TotalCount 5 images");
    free(d);
    cr_assert_eq(prov_error_set(&e, 0, -EPROTO, NULL, NULL, NULL, NULL), 0);
    d = prov_error_describe(&e);
    cr_expect_str_eq(d, "Protocol error");
    free(d);

    cr_assert_eq(prov_error_set(&e, 502, 0, NULL, NULL, NULL, NULL), 0);
    d = prov_error_describe(&e);
    cr_expect_str_eq(d, "HTTP 502");
    free(d);

    cr_assert_eq(prov_error_set(&e, 400, 0, "Throttling.User", NULL, "r1", NULL), 0);
    d = prov_error_describe(&e);
    cr_expect_str_eq(d, "Throttling.User (RequestId: r1)");
    free(d);

    prov_error_clear(&e);
    prov_error_clear(&e);
    prov_error_clear(&c);
    prov_error_clear(NULL);
    cr_expect_null(prov_error_describe(NULL));
    cr_expect_eq(prov_error_set(NULL, 0, 0, NULL, NULL, NULL, NULL), -EINVAL);
}

Test(errors, image_copy_tag_free)
{
    prov_tag tags[] = {{"imgrecon:managed", "true"}, {"env", "prod"}};
    prov_image src = {.image_id = "m-1",
                      .name = "web",
                      .region_id = "cn-hangzhou",
                      .status = PROV_IMG_AVAILABLE,
                      .in_share = true,
                      .tags = tags,
                      .n_tags = 2};
    prov_image dst = {0};
    cr_assert_eq(prov_image_copy(&dst, &src), 0);
    cr_expect_str_eq(dst.image_id, "m-1");
    cr_expect_neq(dst.image_id, src.image_id);
    cr_expect_null(dst.description);
    cr_expect_eq(dst.status, PROV_IMG_AVAILABLE);
    cr_expect(dst.in_share);
    cr_expect_str_eq(prov_image_tag(&dst, "env"), "prod");
    cr_expect_null(prov_image_tag(&dst, "missing"));
    cr_expect_null(prov_image_tag(NULL, "env"));

    prov_image_list list = {.v = calloc(1, sizeof(prov_image)), .n = 1};
    cr_assert_not_null(list.v);
    list.v[0] = dst;
    prov_image_list_clear(&list);
    cr_expect_null(list.v);
    cr_expect_eq(list.n, 0);
    prov_image_list_clear(&list);
    prov_image_list_clear(NULL);
    prov_image_clear(NULL);

    prov_ecs_image_list el = {.v = calloc(1, sizeof(prov_ecs_image)), .n = 1};
    cr_assert_not_null(el.v);
    el.v[0].image_id = strdup("m-2");
    el.v[0].status = strdup("Available");
    prov_ecs_image_list_clear(&el);
    cr_expect_null(el.v);
    prov_ecs_image_list_clear(NULL);
}

/* prov_redact_message: the value of every secret parameter becomes "***", raw and inside a
 * string percent-encoded once or twice; everything else is kept byte for byte. The token is
 * the audit's CAISTokSECRETvalue/abc+def= in the form each context gives it. */
struct redact_case {
    char in[256];
    char want[256];
};

ParameterizedTestParameters(errors, redact_message)
{
    static struct redact_case cases[] = {
        /* The V1 string to sign of SignatureDoesNotMatch: the name once encoded, the value twice.
         */
        {"is:POST&%2F&AccessKeyId%3DLTAIkey%26SecurityToken%3DCAISTokSECRETvalue%252Fabc%252Bdef%"
         "253D%26SignatureMethod%3DHMAC-SHA1",
         "is:POST&%2F&AccessKeyId%3DLTAIkey%26SecurityToken%3D***%26SignatureMethod%3DHMAC-SHA1"},
        /* The same string to sign encoded once more (quoted inside a URL). */
        {"x%2526SecurityToken%253DCAISTokSECRETvalue%25252Fabc%25252Bdef%25253D%2526Timestamp%"
         "253D1",
         "x%2526SecurityToken%253D***%2526Timestamp%253D1"},
        /* The canonical query (encoded once) and the raw value. */
        {"AccessKeyId=LTAIkey&SecurityToken=CAISTokSECRETvalue%2Fabc%2Bdef%3D&Timestamp=1",
         "AccessKeyId=LTAIkey&SecurityToken=***&Timestamp=1"},
        {"token SecurityToken=CAISTokSECRETvalue/abc+def= was refused",
         "token SecurityToken=*** was refused"},
        /* At the end of the text, lower-case hex, any case of the name. */
        {"%26SecurityToken%3dCAISTokSECRETvalue%252fabc", "%26SecurityToken%3d***"},
        {"securitytoken=CAISTokSECRETvalue/abc", "securitytoken=***"},
        /* The V3 header, JSON, and the other secret parameters. */
        {"x-acs-security-token:CAISTokSECRETvalue/abc+def=\nhost:h",
         "x-acs-security-token:***\nhost:h"},
        {"{\"SecurityToken\": \"CAISTokSECRETvalue/abc+def=\"}", "{\"SecurityToken\": \"***\"}"},
        {"Signature=OLeaidS1JvxuMvnyHOwuJ%2Bu&SignatureMethod=HMAC-SHA1",
         "Signature=***&SignatureMethod=HMAC-SHA1"},
        {"AccessKeySecret=CAISTokSECRETvalue, OIDCToken=eyJhbGciOi.x.y",
         "AccessKeySecret=***, OIDCToken=***"},
        /* Two occurrences. */
        {"SecurityToken=CAISTokSECRETvalue%2F; SecurityToken%3DCAISTokSECRETvalue%252F%26",
         "SecurityToken=***; SecurityToken%3D***%26"},
        /* Kept: the key id, other Signature* parameters, a longer name, an empty value, prose. */
        {"AccessKeyId%3DLTAIkey%26SignatureNonce%3Dabc%26SignatureVersion%3D1.0",
         "AccessKeyId%3DLTAIkey%26SignatureNonce%3Dabc%26SignatureVersion%3D1.0"},
        {"MySecurityToken=visible", "MySecurityToken=visible"},
        {"SecurityToken=&A=1", "SecurityToken=&A=1"},
        {"Specified signature is not matched with our calculation.",
         "Specified signature is not matched with our calculation."},
        {"", ""},
    };
    return cr_make_param_array(struct redact_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct redact_case *c, errors, redact_message)
{
    char *got = NULL;
    cr_assert_eq(prov_redact_message(c->in, &got), 0);
    cr_expect_str_eq(got, c->want, "in: %s", c->in);
    cr_expect_null(strstr(got, "CAISTokSECRETvalue"), "the token is left in: %s", got);
    free(got);
}

/* Every message prov_error_set stores is redacted, so no describe or copy can show the token. */
Test(errors, set_redacts_the_message)
{
    prov_error e = {0}, c = {0};
    cr_assert_eq(prov_error_set(&e, 400, 0, "SignatureDoesNotMatch",
                                "Specified signature is not matched with our calculation. server "
                                "string to sign is:POST&%2F&SecurityToken%3DCAISTokSECRETvalue%"
                                "252Fabc%252Bdef%253D%26Timestamp%3D1",
                                "rid-1", "ListCustomImages"),
                 0);
    cr_assert_eq(prov_error_copy(&c, &e), 0);
    char *d = prov_error_describe(&c);
    cr_expect_str_eq(d, "SignatureDoesNotMatch: Specified signature is not matched with our "
                        "calculation. server string to sign is:POST&%2F&SecurityToken%3D***%"
                        "26Timestamp%3D1 (RequestId: rid-1)");
    free(d);
    cr_expect_eq(prov_redact_message(NULL, &d), -EINVAL);
    prov_error_clear(&e);
    prov_error_clear(&c);
}
