/* Response parsers (prov_resp.c): tables of good and bad answers for ListCustomImages, ECS
 * DescribeImages, CreateCustomImage and error bodies. Good answers are checked field by field;
 * every bad one must give -EPROTO and leave the caller's list exactly as it was (count and the
 * items parsed before), the out-parameters untouched. Bodies that cannot be literals (deep
 * nesting, very long lists) are generated at run time. Every test runs on the allocator the
 * product installs (prov_jmem.h), so the answers are loaded into arenas as in the client; the
 * "jmem" tests check the arenas' lifetimes. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prov_jmem.h"
#include "prov_resp.h"

/* Fixed arrays, not pointers: Criterion copies the parameters into each test's own process. */

/* Bodies with embedded NUL bytes carry their length; 0 means strlen. */
#define NUL_BODY(s) s, sizeof(s) - 1

enum gen {
    GEN_NONE = 0,
    GEN_DEEP_ROOT,     /* 100000 nested arrays as the whole body */
    GEN_DEEP_FIELD,    /* 200 nested arrays as a string field (within jansson's depth) */
    GEN_DEEP_UNCLOSED, /* 100000 '{"a":' without an end */
    GEN_DEEP_TAGS,     /* Tags {"Tag":{"Tag":...}} 200 deep */
    GEN_MANY,          /* 1000 good items */
};

/* ---- Shared helpers ---- */

/* The product's jansson allocator, installed in each test's process before the test runs (the
 * products' main installs it through prov_secret_install_allocators, which also starts libcurl). */
static void install_jmem(void)
{
    json_set_alloc_funcs(prov_jmem_malloc, prov_jmem_free);
}

TestSuite(parse, .init = install_jmem);
TestSuite(jmem, .init = install_jmem);

/* The parsers take a parsed answer; these load the bytes as the client does (one object,
 * duplicate keys rejected) and call them, so the tables below test bytes to structs. */
static int bytes_list_images(const char *body, size_t len, prov_image_list *l, unsigned *total)
{
    json_t *root = prov_json_load_object(body, len);
    int rc = root != NULL ? prov_parse_list_images(root, l, total) : -EPROTO;
    json_decref(root);
    return rc;
}

static int bytes_ecs_images(const char *body, size_t len, prov_ecs_image_list *l, unsigned *total)
{
    json_t *root = prov_json_load_object(body, len);
    int rc = root != NULL ? prov_parse_ecs_images(root, l, total) : -EPROTO;
    json_decref(root);
    return rc;
}

static int bytes_create(const char *body, size_t len, char **ret_id)
{
    json_t *root = prov_json_load_object(body, len);
    int rc = root != NULL ? prov_parse_create(root, ret_id) : -EPROTO;
    json_decref(root);
    return rc;
}

static int bytes_regions(const char *body, size_t len, char ***ret_v, size_t *ret_n)
{
    json_t *root = prov_json_load_object(body, len);
    int rc = root != NULL ? prov_parse_regions(root, ret_v, ret_n) : -EPROTO;
    json_decref(root);
    return rc;
}

static int bytes_error_body(const char *body, size_t len, char **code, char **msg, char **rid)
{
    json_t *root = prov_json_load_object(body, len);
    int rc = root != NULL ? prov_parse_error_body(root, code, msg, rid) : -EPROTO;
    json_decref(root);
    return rc;
}

static char *gen_deep(const char *open, const char *close, size_t depth, const char *prefix,
                      const char *suffix)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    cr_assert_not_null(m);
    fputs(prefix, m);
    for (size_t i = 0; i < depth; i++)
        fputs(open, m);
    for (size_t i = 0; close != NULL && i < depth; i++)
        fputs(close, m);
    fputs(suffix, m);
    cr_assert_eq(fclose(m), 0);
    return buf;
}

static char *gen_many(bool ecs, size_t n)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    cr_assert_not_null(m);
    if (ecs)
        fprintf(m, "{\"TotalCount\":%zu,\"Images\":{\"Image\":[", n);
    else
        fprintf(m, "{\"TotalCount\":\"%zu\",\"CustomImages\":[", n);
    for (size_t i = 0; i < n; i++) {
        if (ecs)
            fprintf(m, "%s{\"ImageId\":\"m-many%06zu\",\"ImageName\":\"many-%zu\"}", i ? "," : "",
                    i, i);
        else
            fprintf(m, "%s{\"ImageId\":\"m-many%06zu\",\"Name\":\"many-%zu\",\"Status\":\"1\"}",
                    i ? "," : "", i, i);
    }
    fputs(ecs ? "]}}" : "]}", m);
    cr_assert_eq(fclose(m), 0);
    return buf;
}

/* The body of a case: a literal, or generated (then *owned is set and must be freed). */
static const char *case_body(const char *body, size_t len, enum gen g, bool ecs, size_t *ret_len,
                             char **owned)
{
    *owned = NULL;
    switch (g) {
    case GEN_NONE:
        *ret_len = len ? len : strlen(body);
        return body;
    case GEN_DEEP_ROOT:
        *owned = gen_deep("[", "]", 100000, "", "");
        break;
    case GEN_DEEP_FIELD:
        *owned = gen_deep("[", "]", 200,
                          ecs ? "{\"Images\":{\"Image\":[{\"ImageId\":\"m-1\",\"ImageName\":"
                              : "{\"CustomImages\":[{\"ImageId\":\"m-1\",\"Name\":",
                          ecs ? "}]}}" : "}]}");
        break;
    case GEN_DEEP_UNCLOSED:
        *owned = gen_deep("{\"a\":", NULL, 100000, "", "");
        break;
    case GEN_DEEP_TAGS:
        *owned =
            gen_deep("{\"Tag\":", "}", 200,
                     "{\"CustomImages\":[{\"ImageId\":\"m-1\",\"Name\":\"n\",\"Tags\":", "}]}");
        break;
    case GEN_MANY:
        *owned = gen_many(ecs, 1000);
        break;
    }
    *ret_len = strlen(*owned);
    return *owned;
}

/* ==== ListCustomImages ==== */

struct list_case {
    char name[64];
    char body[720];
    size_t len; /* 0: strlen */
    enum gen gen;
    int want; /* 0 or -EPROTO */
    /* For want == 0: */
    size_t n;
    unsigned total;
    char id0[24], name0[24];
    int status0;
    bool share0;
    size_t ntags0;
    char tagk0[24], tagv0[16];
};

#define ONE(fields) "{\"TotalCount\":\"1\",\"CustomImages\":[{" fields "}]}"
#define IDNAME "\"ImageId\":\"m-1\",\"Name\":\"n1\""
#define BAD(nm, body)                                                                              \
    {                                                                                              \
        nm, body, 0, GEN_NONE, -EPROTO, 0, 0, "", "", 0, false, 0, "", ""                          \
    }
#define BADLEN(nm, body)                                                                           \
    {                                                                                              \
        nm, NUL_BODY(body), GEN_NONE, -EPROTO, 0, 0, "", "", 0, false, 0, "", ""                   \
    }
#define BADGEN(nm, g)                                                                              \
    {                                                                                              \
        nm, "", 0, g, -EPROTO, 0, 0, "", "", 0, false, 0, "", ""                                   \
    }
#define FULL_IMAGE                                                                                 \
    "{\"RequestId\":\"R-1\",\"TotalCount\":\"2\",\"PageNumber\":\"1\",\"PageSize\":\"10\","        \
    "\"CustomImages\":[{\"ImageId\":\"m-full\",\"Name\":\"web-base\",\"Description\":\"d\","       \
    "\"InstanceId\":\"ace1\",\"SystemSnapshotId\":\"s-1\",\"DataSnapshotId\":\"s-2\","             \
    "\"ResourceGroupId\":\"rg-1\",\"RegionId\":\"cn-hangzhou\","                                   \
    "\"CreationTime\":\"2024-01-01T00:00:00Z\",\"Status\":\"1\",\"InShare\":true,"                 \
    "\"Tags\":[{\"Key\":\"imgrecon/"                                                               \
    "owner\",\"Value\":\"default\"},{\"Key\":\"team\",\"Value\":\"w\"}]},"                         \
    "{\"ImageId\":\"m-two\",\"Name\":\"second\",\"Status\":\"4\",\"InShare\":false}]}"
static const char full_image[] = FULL_IMAGE;

ParameterizedTestParameters(parse, list_images)
{
    static struct list_case cases[] = {
        /* ---- good ---- */
        {"full, counters as strings", FULL_IMAGE, 0, GEN_NONE, 0, 2, 2, "m-full", "web-base", 1,
         true, 2, "imgrecon/owner", "default"},
        {"counters as numbers",
         "{\"TotalCount\":7,\"PageNumber\":2,\"PageSize\":100,\"CustomImages\":[{" IDNAME "}]}", 0,
         GEN_NONE, 0, 1, 7, "m-1", "n1", PROV_IMG_UNKNOWN, false, 0, "", ""},
        {"counters absent", "{\"CustomImages\":[{" IDNAME "}]}", 0, GEN_NONE, 0, 1, 0, "m-1", "n1",
         PROV_IMG_UNKNOWN, false, 0, "", ""},
        {"counters null",
         "{\"TotalCount\":null,\"PageNumber\":null,\"PageSize\":null,\"CustomImages\":[]}", 0,
         GEN_NONE, 0, 0, 0, "", "", 0, false, 0, "", ""},
        {"empty page, strings",
         "{\"TotalCount\":\"0\",\"PageNumber\":\"1\",\"PageSize\":\"100\","
         "\"CustomImages\":[]}",
         0, GEN_NONE, 0, 0, 0, "", "", 0, false, 0, "", ""},
        {"empty page beyond the end",
         "{\"TotalCount\":\"5\",\"PageNumber\":\"9\",\"CustomImages\":[]}", 0, GEN_NONE, 0, 0, 5,
         "", "", 0, false, 0, "", ""},
        {"tags as an array", ONE(IDNAME ",\"Tags\":[{\"Key\":\"k\",\"Value\":\"v\"}]"), 0, GEN_NONE,
         0, 1, 1, "m-1", "n1", PROV_IMG_UNKNOWN, false, 1, "k", "v"},
        {"tags as {Tag:[...]}", ONE(IDNAME ",\"Tags\":{\"Tag\":[{\"Key\":\"k\",\"Value\":\"v\"}]}"),
         0, GEN_NONE, 0, 1, 1, "m-1", "n1", PROV_IMG_UNKNOWN, false, 1, "k", "v"},
        {"tags {Tag:[]}", ONE(IDNAME ",\"Tags\":{\"Tag\":[]}"), 0, GEN_NONE, 0, 1, 1, "m-1", "n1",
         PROV_IMG_UNKNOWN, false, 0, "", ""},
        {"tags empty", ONE(IDNAME ",\"Tags\":[]"), 0, GEN_NONE, 0, 1, 1, "m-1", "n1",
         PROV_IMG_UNKNOWN, false, 0, "", ""},
        {"tags null", ONE(IDNAME ",\"Tags\":null"), 0, GEN_NONE, 0, 1, 1, "m-1", "n1",
         PROV_IMG_UNKNOWN, false, 0, "", ""},
        {"tag without value", ONE(IDNAME ",\"Tags\":[{\"Key\":\"k\"}]"), 0, GEN_NONE, 0, 1, 1,
         "m-1", "n1", PROV_IMG_UNKNOWN, false, 1, "k", ""},
        {"tag value null", ONE(IDNAME ",\"Tags\":[{\"Key\":\"k\",\"Value\":null}]"), 0, GEN_NONE, 0,
         1, 1, "m-1", "n1", PROV_IMG_UNKNOWN, false, 1, "k", ""},
        {"tag value numeric", ONE(IDNAME ",\"Tags\":[{\"Key\":\"k\",\"Value\":42}]"), 0, GEN_NONE,
         0, 1, 1, "m-1", "n1", PROV_IMG_UNKNOWN, false, 1, "k", "42"},
        {"InShare \"true\"", ONE(IDNAME ",\"InShare\":\"true\""), 0, GEN_NONE, 0, 1, 1, "m-1", "n1",
         PROV_IMG_UNKNOWN, true, 0, "", ""},
        {"InShare \"TRUE\"", ONE(IDNAME ",\"InShare\":\"TRUE\""), 0, GEN_NONE, 0, 1, 1, "m-1", "n1",
         PROV_IMG_UNKNOWN, true, 0, "", ""},
        {"InShare \"false\"", ONE(IDNAME ",\"InShare\":\"false\""), 0, GEN_NONE, 0, 1, 1, "m-1",
         "n1", PROV_IMG_UNKNOWN, false, 0, "", ""},
        {"InShare true", ONE(IDNAME ",\"InShare\":true"), 0, GEN_NONE, 0, 1, 1, "m-1", "n1",
         PROV_IMG_UNKNOWN, true, 0, "", ""},
        {"InShare null", ONE(IDNAME ",\"InShare\":null"), 0, GEN_NONE, 0, 1, 1, "m-1", "n1",
         PROV_IMG_UNKNOWN, false, 0, "", ""},
        {"Status number", ONE(IDNAME ",\"Status\":3"), 0, GEN_NONE, 0, 1, 1, "m-1", "n1", 3, false,
         0, "", ""},
        {"Status \"0\"", ONE(IDNAME ",\"Status\":\"0\""), 0, GEN_NONE, 0, 1, 1, "m-1", "n1", 0,
         false, 0, "", ""},
        {"Status unknown string", ONE(IDNAME ",\"Status\":\"7\""), 0, GEN_NONE, 0, 1, 1, "m-1",
         "n1", PROV_IMG_UNKNOWN, false, 0, "", ""},
        {"Status unknown number", ONE(IDNAME ",\"Status\":99"), 0, GEN_NONE, 0, 1, 1, "m-1", "n1",
         PROV_IMG_UNKNOWN, false, 0, "", ""},
        {"Status word", ONE(IDNAME ",\"Status\":\"Available\""), 0, GEN_NONE, 0, 1, 1, "m-1", "n1",
         PROV_IMG_UNKNOWN, false, 0, "", ""},
        {"ImageId numeric", ONE("\"ImageId\":12345,\"Name\":\"n1\""), 0, GEN_NONE, 0, 1, 1, "12345",
         "n1", PROV_IMG_UNKNOWN, false, 0, "", ""},
        {"optional fields null", ONE(IDNAME ",\"Description\":null,\"DataSnapshotId\":null"), 0,
         GEN_NONE, 0, 1, 1, "m-1", "n1", PROV_IMG_UNKNOWN, false, 0, "", ""},
        {"unknown keys ignored", ONE(IDNAME ",\"Platform\":{\"x\":[1,2]},\"Size\":1.5"), 0,
         GEN_NONE, 0, 1, 1, "m-1", "n1", PROV_IMG_UNKNOWN, false, 0, "", ""},
        {"UTF-8 name", ONE("\"ImageId\":\"m-1\",\"Name\":\"\xe6\x95\xb0\xe6\x8d\xae\""), 0,
         GEN_NONE, 0, 1, 1, "m-1", "\xe6\x95\xb0\xe6\x8d\xae", PROV_IMG_UNKNOWN, false, 0, "", ""},
        {"whitespace around", " \n{\"CustomImages\":[]}\r\n\t ", 0, GEN_NONE, 0, 0, 0, "", "", 0,
         false, 0, "", ""},
        {"1000 items", "", 0, GEN_MANY, 0, 1000, 1000, "m-many000000", "many-0", 1, false, 0, "",
         ""},
        {"counter INT_MAX", "{\"TotalCount\":\"2147483647\",\"CustomImages\":[]}", 0, GEN_NONE, 0,
         0, 2147483647u, "", "", 0, false, 0, "", ""},

        /* ---- bad: not JSON, truncated, not an object ---- */
        BAD("empty body", ""),
        BAD("only whitespace", "  \n"),
        BAD("ImageId with a newline", ONE("\"ImageId\":\"m-1\\nREADY=1\",\"Name\":\"n\"")),
        BAD("ImageId with an escape", ONE("\"ImageId\":\"m-1\\u001b[2J\",\"Name\":\"n\"")),
        BAD("ImageId with a space", ONE("\"ImageId\":\"m-1 m-2\",\"Name\":\"n\"")),
        BAD("ImageId with a slash", ONE("\"ImageId\":\"../m-1\",\"Name\":\"n\"")),
        BAD("ImageId empty", ONE("\"ImageId\":\"\",\"Name\":\"n\"")),
        BAD("truncated after items", "{\"TotalCount\":\"1\",\"CustomImages\":[{" IDNAME "}"),
        BAD("truncated in a string", "{\"TotalCount\":\"1\",\"CustomImages\":[{\"ImageId\":\"m-"),
        BAD("truncated after a key", "{\"CustomImages\""),
        BAD("just a brace", "{"),
        BAD("trailing garbage", "{\"CustomImages\":[]}x"),
        BAD("two objects", "{\"CustomImages\":[]}{\"CustomImages\":[]}"),
        BAD("HTML", "<html><body>502 Bad Gateway</body></html>"),
        BAD("XML", "<?xml version=\"1.0\"?><ListCustomImagesResponse/>"),
        BAD("array root", "[]"),
        BAD("array of the object", "[{\"CustomImages\":[]}]"),
        BAD("string root", "\"CustomImages\""),
        BAD("number root", "42"),
        BAD("null root", "null"),
        BAD("true root", "true"),
        BAD("single quotes", "{'CustomImages':[]}"),
        BAD("trailing comma", "{\"CustomImages\":[{" IDNAME "},]}"),
        BAD("bad escape", ONE("\"ImageId\":\"m-\\x41\",\"Name\":\"n\"")),
        BAD("invalid UTF-8", ONE("\"ImageId\":\"m-\xff\xfe\",\"Name\":\"n\"")),
        BAD("lone surrogate", ONE("\"ImageId\":\"m-\\ud800\",\"Name\":\"n\"")),
        /* ---- bad: the list ---- */
        BAD("CustomImages missing", "{\"TotalCount\":\"0\"}"),
        BAD("CustomImages wrapped", "{\"CustomImages\":{\"CustomImage\":[{" IDNAME "}]}}"),
        BAD("good item then bad item", "{\"CustomImages\":[{" IDNAME "},{\"ImageId\":\"m-2\"}]}"),
        BAD("good items then wrong type",
            "{\"CustomImages\":[{" IDNAME ",\"Tags\":[{\"Key\":\"k\",\"Value\":\"v\"}]},"
            "{\"ImageId\":\"m-2\",\"Name\":\"n2\",\"Tags\":[{\"Key\":\"a\"},{\"Key\":[]}]}]}"),
        BAD("bad counter with a good item",
            "{\"TotalCount\":\"x\",\"CustomImages\":[{" IDNAME "}]}"),
        /* ---- bad: identity ---- */
        BAD("ImageId missing", ONE("\"Name\":\"n1\"")),
        BAD("Name missing", ONE("\"ImageId\":\"m-1\"")),
        BAD("both missing", ONE("\"Status\":\"1\"")),
        BAD("empty item", "{\"CustomImages\":[{}]}"),
        BAD("ImageId null", ONE("\"ImageId\":null,\"Name\":\"n1\"")),
        BAD("Name null", ONE("\"ImageId\":\"m-1\",\"Name\":null")),
        /* ---- bad: duplicate keys ---- */
        BAD("duplicate top-level list", "{\"CustomImages\":[{" IDNAME "}],\"CustomImages\":[]}"),
        BAD("duplicate TotalCount",
            "{\"TotalCount\":\"1\",\"TotalCount\":\"2\",\"CustomImages\":[]}"),
        BAD("duplicate ImageId", ONE(IDNAME ",\"ImageId\":\"m-2\"")),
        BAD("duplicate Name", ONE(IDNAME ",\"Name\":\"n2\"")),
        BAD("duplicate tag Key", ONE(IDNAME ",\"Tags\":[{\"Key\":\"a\",\"Key\":\"b\"}]")),
        BAD("duplicate in an ignored key", ONE(IDNAME ",\"Extra\":{\"a\":1,\"a\":2}")),
        /* ---- bad: NUL bytes ---- */
        BADLEN("NUL before the body", "\0{\"CustomImages\":[]}"),
        BADLEN("NUL after the body", "{\"CustomImages\":[]}\0"),
        BADLEN("NUL between tokens", "{\"CustomImages\":\0[]}"),
        BADLEN("NUL in a string", ONE("\"ImageId\":\"m-\0x\",\"Name\":\"n1\"")),
        BADLEN("NUL in a key", ONE("\"Image\0Id\":\"m-1\",\"Name\":\"n1\"")),
        BAD("escaped NUL in ImageId", ONE("\"ImageId\":\"m-1\\u0000x\",\"Name\":\"n1\"")),
        BAD("escaped NUL in a tag",
            ONE(IDNAME ",\"Tags\":[{\"Key\":\"k\\u0000\",\"Value\":\"v\"}]")),
        BAD("escaped NUL in a counter", "{\"TotalCount\":\"4\\u0000\",\"CustomImages\":[]}"),
        /* ---- bad: deep nesting ---- */
        BADGEN("deep arrays as the body", GEN_DEEP_ROOT),
        BADGEN("deep arrays in a field", GEN_DEEP_FIELD),
        BADGEN("deep unclosed objects", GEN_DEEP_UNCLOSED),
        BADGEN("deep Tags wrapping", GEN_DEEP_TAGS),
    };
    return cr_make_param_array(struct list_case, cases, sizeof(cases) / sizeof(cases[0]));
}

/* Two items already in the list, as a second page would find them. */
static void prefill(prov_image_list *l)
{
    static const char first_page[] =
        "{\"TotalCount\":\"3\",\"CustomImages\":[{\"ImageId\":\"m-pre1\",\"Name\":\"pre-1\","
        "\"Status\":\"1\",\"InShare\":true,\"Tags\":[{\"Key\":\"k1\",\"Value\":\"v1\"}]},"
        "{\"ImageId\":\"m-pre2\",\"Name\":\"pre-2\",\"Description\":\"two\"}]}";
    unsigned total = 0;
    cr_assert_eq(bytes_list_images(first_page, strlen(first_page), l, &total), 0);
    cr_assert_eq(l->n, 2);
    cr_assert_eq(total, 3);
}

static void expect_prefill_intact(const prov_image_list *l, const char *what)
{
    cr_assert_geq(l->n, 2, "%s", what);
    cr_expect_str_eq(l->v[0].image_id, "m-pre1", "%s", what);
    cr_expect_str_eq(l->v[0].name, "pre-1", "%s", what);
    cr_expect_eq(l->v[0].status, PROV_IMG_AVAILABLE, "%s", what);
    cr_expect(l->v[0].in_share, "%s", what);
    cr_assert_eq(l->v[0].n_tags, 1, "%s", what);
    cr_expect_str_eq(l->v[0].tags[0].key, "k1", "%s", what);
    cr_expect_str_eq(l->v[0].tags[0].value, "v1", "%s", what);
    cr_expect_str_eq(l->v[1].image_id, "m-pre2", "%s", what);
    cr_expect_str_eq(l->v[1].name, "pre-2", "%s", what);
    cr_expect_str_eq(l->v[1].description, "two", "%s", what);
    cr_expect_null(l->v[1].tags, "%s", what);
}

ParameterizedTest(struct list_case *c, parse, list_images)
{
    size_t len;
    char *owned;
    const char *body = case_body(c->body, c->len, c->gen, false, &len, &owned);

    for (int pre = 0; pre < 2; pre++) {
        prov_image_list l = {0};
        if (pre)
            prefill(&l);
        size_t before = l.n;
        unsigned total = 777;
        int rc = bytes_list_images(body, len, &l, &total);
        cr_assert_eq(rc, c->want, "[%s] prefilled=%d: rc %d, want %d", c->name, pre, rc, c->want);
        if (c->want < 0) {
            cr_expect_eq(l.n, before, "[%s] the list grew on a rejected answer", c->name);
            cr_expect_eq(total, 777, "[%s] total written on a rejected answer", c->name);
            if (pre)
                expect_prefill_intact(&l, c->name);
            else
                cr_expect_eq(l.n, 0);
        } else {
            cr_assert_eq(l.n, before + c->n, "[%s] %zu items, want %zu", c->name, l.n - before,
                         c->n);
            cr_expect_eq(total, c->total, "[%s] total %u", c->name, total);
            if (pre)
                expect_prefill_intact(&l, c->name);
            if (c->n > 0) {
                const prov_image *im = &l.v[before];
                cr_expect_str_eq(im->image_id, c->id0, "[%s]", c->name);
                cr_expect_str_eq(im->name, c->name0, "[%s]", c->name);
                cr_expect_eq(im->status, c->status0, "[%s] status %d", c->name, im->status);
                cr_expect_eq(im->in_share, c->share0, "[%s] in_share", c->name);
                cr_assert_eq(im->n_tags, c->ntags0, "[%s] %zu tags", c->name, im->n_tags);
                if (c->ntags0 > 0) {
                    cr_expect_str_eq(im->tags[0].key, c->tagk0, "[%s]", c->name);
                    cr_expect_str_eq(im->tags[0].value, c->tagv0, "[%s]", c->name);
                }
            }
        }
        prov_image_list_clear(&l);
    }
    free(owned);
}

/* Every field of the full image, and a second append after the first. */
Test(parse, list_images_full_fields_and_append)
{
    prov_image_list l = {0};
    unsigned total = 0;
    cr_assert_eq(bytes_list_images(full_image, strlen(full_image), &l, &total), 0);
    cr_assert_eq(l.n, 2);
    const prov_image *a = &l.v[0];
    cr_expect_str_eq(a->description, "d");
    cr_expect_str_eq(a->instance_id, "ace1");
    cr_expect_str_eq(a->system_snapshot_id, "s-1");
    cr_expect_str_eq(a->data_snapshot_id, "s-2");
    cr_expect_str_eq(a->resource_group_id, "rg-1");
    cr_expect_str_eq(a->region_id, "cn-hangzhou");
    cr_expect_str_eq(a->creation_time, "2024-01-01T00:00:00Z");
    cr_expect_str_eq(prov_image_tag(a, "team"), "w");
    const prov_image *b = &l.v[1];
    cr_expect_str_eq(b->image_id, "m-two");
    cr_expect_eq(b->status, PROV_IMG_CREATING);
    cr_expect(!b->in_share);
    cr_expect_null(b->description);
    cr_expect_null(b->tags);
    /* A second page appends after the first. */
    cr_assert_eq(bytes_list_images(full_image, strlen(full_image), &l, &total), 0);
    cr_assert_eq(l.n, 4);
    cr_expect_str_eq(l.v[2].image_id, "m-full");
    cr_expect_str_eq(l.v[3].image_id, "m-two");
    cr_expect_str_eq(l.v[0].image_id, "m-full");
    /* A NULL total pointer is allowed. */
    cr_assert_eq(bytes_list_images(full_image, strlen(full_image), &l, NULL), 0);
    cr_assert_eq(l.n, 6);
    prov_image_list_clear(&l);
    cr_expect_eq(l.n, 0);
    cr_expect_null(l.v);
}

/* The length given is the body: bytes after it are not read, a shorter length truncates. */
Test(parse, list_images_respects_length)
{
    const char body[] = "{\"CustomImages\":[]}GARBAGE";
    prov_image_list l = {0};
    cr_expect_eq(bytes_list_images(body, strlen("{\"CustomImages\":[]}"), &l, NULL), 0);
    cr_expect_eq(bytes_list_images(body, 5, &l, NULL), -EPROTO);
    cr_expect_eq(bytes_list_images(body, 0, &l, NULL), -EPROTO);
    cr_expect_eq(bytes_list_images(NULL, 0, &l, NULL), -EPROTO);
    cr_expect_eq(l.n, 0);
    prov_image_list_clear(&l);
}

/* ==== ECS DescribeImages ==== */

struct ecs_case {
    char name[64];
    char body[400];
    size_t len;
    enum gen gen;
    int want;
    size_t n;
    unsigned total;
    char id0[24], name0[16], status0[16], alias0[8], usage0[8]; /* "": want NULL */
    bool shared0;
};

#define ECS_ONE(fields) "{\"TotalCount\":1,\"Images\":{\"Image\":[{" fields "}]}}"
#define EBAD(nm, body)                                                                             \
    {                                                                                              \
        nm, body, 0, GEN_NONE, -EPROTO, 0, 0, "", "", "", "", "", false                            \
    }
#define EBADLEN(nm, body)                                                                          \
    {                                                                                              \
        nm, NUL_BODY(body), GEN_NONE, -EPROTO, 0, 0, "", "", "", "", "", false                     \
    }
#define EBADGEN(nm, g)                                                                             \
    {                                                                                              \
        nm, "", 0, g, -EPROTO, 0, 0, "", "", "", "", "", false                                     \
    }

ParameterizedTestParameters(parse, ecs_images)
{
    static struct ecs_case cases[] = {
        /* ---- good ---- */
        {"full, counters as numbers",
         "{\"RequestId\":\"R\",\"TotalCount\":2,\"PageNumber\":1,\"PageSize\":100,\"RegionId\":"
         "\"cn-hangzhou\",\"Images\":{\"Image\":[{\"ImageId\":\"m-e1\",\"ImageName\":\"old\","
         "\"Status\":\"Available\",\"ImageOwnerAlias\":\"self\",\"Usage\":\"none\","
         "\"IsSelfShared\":\"true\",\"Size\":40},{\"ImageId\":\"m-e2\"}]}}",
         0, GEN_NONE, 0, 2, 2, "m-e1", "old", "Available", "self", "none", true},
        {"counters as strings",
         "{\"TotalCount\":\"1\",\"PageNumber\":\"1\",\"PageSize\":\"10\",\"Images\":{\"Image\":[{"
         "\"ImageId\":\"m-e1\",\"IsSelfShared\":false}]}}",
         0, GEN_NONE, 0, 1, 1, "m-e1", "", "", "", "", false},
        {"Images {}", "{\"TotalCount\":0,\"PageNumber\":1,\"PageSize\":100,\"Images\":{}}", 0,
         GEN_NONE, 0, 0, 0, "", "", "", "", "", false},
        {"Images {} without counters", "{\"Images\":{}}", 0, GEN_NONE, 0, 0, 0, "", "", "", "", "",
         false},
        {"Image []", "{\"TotalCount\":\"0\",\"Images\":{\"Image\":[]}}", 0, GEN_NONE, 0, 0, 0, "",
         "", "", "", "", false},
        {"IsSelfShared true", ECS_ONE("\"ImageId\":\"m-1\",\"IsSelfShared\":true"), 0, GEN_NONE, 0,
         1, 1, "m-1", "", "", "", "", true},
        {"IsSelfShared \"False\"", ECS_ONE("\"ImageId\":\"m-1\",\"IsSelfShared\":\"False\""), 0,
         GEN_NONE, 0, 1, 1, "m-1", "", "", "", "", false},
        {"ImageId numeric", ECS_ONE("\"ImageId\":7"), 0, GEN_NONE, 0, 1, 1, "7", "", "", "", "",
         false},
        {"nulls", ECS_ONE("\"ImageId\":\"m-1\",\"ImageName\":null,\"Usage\":null"), 0, GEN_NONE, 0,
         1, 1, "m-1", "", "", "", "", false},
        {"1000 items", "", 0, GEN_MANY, 0, 1000, 1000, "m-many000000", "many-0", "", "", "", false},
        /* ---- bad ---- */
        EBAD("empty body", ""),
        EBAD("ImageId with a newline", ECS_ONE("\"ImageId\":\"m-1\\nx\"")),
        EBAD("ImageId with a comma", ECS_ONE("\"ImageId\":\"m-1,m-2\"")),
        EBAD("truncated", "{\"TotalCount\":1,\"Images\":{\"Image\":[{\"ImageId\":\"m-1\"}]}"),
        EBAD("truncated early", "{\"Images\":{\"Ima"),
        EBAD("array root", "[{\"Images\":{}}]"),
        EBAD("string root", "\"Images\""),
        EBAD("null root", "null"),
        EBAD("Images missing", "{\"TotalCount\":0}"),
        EBAD("ImageId missing", ECS_ONE("\"ImageName\":\"x\"")),
        EBAD("good then bad",
             "{\"Images\":{\"Image\":[{\"ImageId\":\"m-1\"},{\"ImageName\":\"x\"}]}}"),
        EBAD("bad counter, good items",
             "{\"TotalCount\":\"x\",\"Images\":{\"Image\":[{\"ImageId\":\"m-1\"}]}}"),
        EBAD("duplicate Images", "{\"Images\":{\"Image\":[{\"ImageId\":\"m-1\"}]},\"Images\":{}}"),
        EBAD("duplicate Image", "{\"Images\":{\"Image\":[],\"Image\":[]}}"),
        EBAD("duplicate ImageId", ECS_ONE("\"ImageId\":\"m-1\",\"ImageId\":\"m-2\"")),
        EBADLEN("NUL after the body", "{\"Images\":{}}\0"),
        EBADLEN("NUL in a string", ECS_ONE("\"ImageId\":\"m\0-1\"")),
        EBAD("escaped NUL", ECS_ONE("\"ImageId\":\"m-1\\u0000\"")),
        EBADGEN("deep arrays as the body", GEN_DEEP_ROOT),
        EBADGEN("deep arrays in a field", GEN_DEEP_FIELD),
        EBADGEN("deep unclosed objects", GEN_DEEP_UNCLOSED),
    };
    return cr_make_param_array(struct ecs_case, cases, sizeof(cases) / sizeof(cases[0]));
}

static void str_or_null_eq(const char *got, const char *want, const char *what)
{
    if (want[0] == '\0') /* the tables' "" stands for NULL */
        cr_expect_null(got, "[%s] want NULL, got %s", what, got);
    else
        cr_expect_str_eq(got ? got : "(null)", want, "[%s]", what);
}

ParameterizedTest(struct ecs_case *c, parse, ecs_images)
{
    size_t len;
    char *owned;
    const char *body = case_body(c->body, c->len, c->gen, true, &len, &owned);
    static const char pre_body[] = "{\"TotalCount\":3,\"Images\":{\"Image\":[{\"ImageId\":\"m-p1\","
                                   "\"ImageName\":\"p1\",\"Status\":\"Available\"},{\"ImageId\":"
                                   "\"m-p2\",\"IsSelfShared\":true}]}}";
    for (int pre = 0; pre < 2; pre++) {
        prov_ecs_image_list l = {0};
        if (pre)
            cr_assert_eq(bytes_ecs_images(pre_body, strlen(pre_body), &l, NULL), 0);
        size_t before = l.n;
        unsigned total = 777;
        int rc = bytes_ecs_images(body, len, &l, &total);
        cr_assert_eq(rc, c->want, "[%s] prefilled=%d: rc %d, want %d", c->name, pre, rc, c->want);
        if (c->want < 0) {
            cr_expect_eq(l.n, before, "[%s] the list changed on a rejected answer", c->name);
            cr_expect_eq(total, 777, "[%s]", c->name);
        } else {
            cr_assert_eq(l.n, before + c->n, "[%s] %zu items", c->name, l.n - before);
            cr_expect_eq(total, c->total, "[%s] total %u", c->name, total);
            if (c->n > 0) {
                const prov_ecs_image *e = &l.v[before];
                str_or_null_eq(e->image_id, c->id0, c->name);
                str_or_null_eq(e->name, c->name0, c->name);
                str_or_null_eq(e->status, c->status0, c->name);
                str_or_null_eq(e->owner_alias, c->alias0, c->name);
                str_or_null_eq(e->usage, c->usage0, c->name);
                cr_expect_eq(e->is_self_shared, c->shared0, "[%s]", c->name);
            }
        }
        if (pre) {
            cr_assert_geq(l.n, 2);
            cr_expect_str_eq(l.v[0].image_id, "m-p1", "[%s]", c->name);
            cr_expect_str_eq(l.v[0].name, "p1", "[%s]", c->name);
            cr_expect_str_eq(l.v[0].status, "Available", "[%s]", c->name);
            cr_expect_str_eq(l.v[1].image_id, "m-p2", "[%s]", c->name);
            cr_expect(l.v[1].is_self_shared, "[%s]", c->name);
        }
        prov_ecs_image_list_clear(&l);
    }
    free(owned);
}

/* ==== Wrong types and bad counters, field by field ====
 * One row per field: every '|'-separated JSON value is put in that field of an otherwise good
 * answer, and each must be rejected without touching the list. */

enum where {
    LIST_TOP, /* {"<field>":V,"CustomImages":[good image]} */
    LIST_IMG, /* {"CustomImages":[{good image with "<field>":V}]} */
    ECS_TOP,  /* {"<field>":V,"Images":{"Image":[good image]}} */
    ECS_IMG,  /* {"Images":{"Image":[{good image with "<field>":V}]}} */
};

struct wt_case {
    enum where where;
    char field[24];
    char values[400];
};

#define WRONG_STRING "[]|[\"m-1\"]|true|false|{}|{\"a\":1}|1.5|-0.1|1e2"
#define WRONG_COUNTER                                                                              \
    "true|[1]|{}|1.5|1.0|1e3|-1|\"-1\"|\"+4\"|\" 4\"|\"\\t4\"|\"4 \"|\"\"|\"four\"|\"0x10\"|"      \
    "\"1e3\"|2147483648|\"4294967296\"|99999999999999999999999|\"99999999999999999999999\"|"       \
    "-9223372036854775808|\"3000000000\""

ParameterizedTestParameters(parse, wrong_types)
{
    static struct wt_case cases[] = {
        {LIST_TOP, "TotalCount", WRONG_COUNTER},
        {LIST_TOP, "PageNumber", WRONG_COUNTER},
        {LIST_TOP, "PageSize", WRONG_COUNTER},
        {LIST_TOP, "CustomImages", "null|{}|\"[]\"|0|true|[1]|[\"m-1\"]|[null]|[[]]|[{}]"},
        {LIST_IMG, "ImageId", WRONG_STRING "|null"},
        {LIST_IMG, "Name", WRONG_STRING "|null"},
        {LIST_IMG, "Description", WRONG_STRING},
        {LIST_IMG, "InstanceId", WRONG_STRING},
        {LIST_IMG, "SystemSnapshotId", WRONG_STRING},
        {LIST_IMG, "DataSnapshotId", WRONG_STRING},
        {LIST_IMG, "ResourceGroupId", WRONG_STRING},
        {LIST_IMG, "RegionId", WRONG_STRING},
        {LIST_IMG, "CreationTime", WRONG_STRING},
        {LIST_IMG, "Status", "true|false|[]|[1]|{}|1.0|0.5"},
        {LIST_IMG, "InShare", "1|0|\"yes\"|\"1\"|\"\"|\"truee\"|[]|[true]|{}|1.5"},
        {LIST_IMG, "Tags",
         "\"k=v\"|1|true|{}|{\"Tag\":{}}|{\"Tag\":\"x\"}|{\"Tag\":null}|{\"Tags\":[]}|[1]|[null]|"
         "[[]]|[\"k\"]|[{}]|[{\"Value\":\"v\"}]|[{\"Key\":null,\"Value\":\"v\"}]|"
         "[{\"Key\":[],\"Value\":\"v\"}]|[{\"Key\":true}]|[{\"Key\":1.5}]|"
         "[{\"Key\":\"k\",\"Value\":{}}]|[{\"Key\":\"k\",\"Value\":false}]|"
         "[{\"Key\":\"k\",\"Value\":1.5}]|[{\"Key\":\"a\",\"Value\":\"1\"},{\"Key\":\"b\","
         "\"Value\":[]}]"},
        {ECS_TOP, "TotalCount", WRONG_COUNTER},
        {ECS_TOP, "Images",
         "null|[]|[{\"ImageId\":\"m-1\"}]|\"\"|0|true|{\"Image\":{}}|{\"Image\":\"m-1\"}|"
         "{\"Image\":null}|{\"Image\":{\"ImageId\":\"m-1\"}}|{\"Image\":[1]}|{\"Image\":[null]}|"
         "{\"Image\":[[]]}|{\"Image\":[{}]}"},
        {ECS_IMG, "ImageId", WRONG_STRING "|null"},
        {ECS_IMG, "ImageName", WRONG_STRING},
        {ECS_IMG, "Status", WRONG_STRING},
        {ECS_IMG, "ImageOwnerAlias", WRONG_STRING},
        {ECS_IMG, "Usage", WRONG_STRING},
        {ECS_IMG, "IsSelfShared", "1|0|\"yes\"|\"\"|[]|{}|1.5"},
    };
    return cr_make_param_array(struct wt_case, cases, sizeof(cases) / sizeof(cases[0]));
}

static char *wt_body(const struct wt_case *c, const char *v)
{
    char *out = NULL;
    bool id = strcmp(c->field, "ImageId") == 0, nm = strcmp(c->field, "Name") == 0;
    int n = -1;
    switch (c->where) {
    case LIST_TOP:
        if (strcmp(c->field, "CustomImages") == 0)
            n = asprintf(&out, "{\"TotalCount\":\"1\",\"CustomImages\":%s}", v);
        else
            n = asprintf(&out,
                         "{\"%s\":%s,\"CustomImages\":[{\"ImageId\":\"m-1\",\"Name\":\"n1\"}]}",
                         c->field, v);
        break;
    case LIST_IMG:
        n = asprintf(&out, "{\"TotalCount\":\"1\",\"CustomImages\":[{%s\"%s\":%s}]}",
                     id   ? "\"Name\":\"n1\","
                     : nm ? "\"ImageId\":\"m-1\","
                          : "\"ImageId\":\"m-1\",\"Name\":\"n1\",",
                     c->field, v);
        break;
    case ECS_TOP:
        if (strcmp(c->field, "Images") == 0)
            n = asprintf(&out, "{\"TotalCount\":1,\"Images\":%s}", v);
        else
            n = asprintf(&out, "{\"%s\":%s,\"Images\":{\"Image\":[{\"ImageId\":\"m-1\"}]}}",
                         c->field, v);
        break;
    case ECS_IMG:
        n = asprintf(&out, "{\"TotalCount\":1,\"Images\":{\"Image\":[{%s\"%s\":%s}]}}",
                     id ? "" : "\"ImageId\":\"m-1\",", c->field, v);
        break;
    }
    cr_assert_geq(n, 0);
    return out;
}

ParameterizedTest(struct wt_case *c, parse, wrong_types)
{
    char values[sizeof(c->values)];
    memcpy(values, c->values, sizeof(values));
    char *save = NULL;
    size_t tried = 0;
    bool ecs = c->where == ECS_TOP || c->where == ECS_IMG;
    for (char *v = strtok_r(values, "|", &save); v != NULL; v = strtok_r(NULL, "|", &save)) {
        char *body = wt_body(c, v);
        unsigned total = 777;
        int rc;
        if (ecs) {
            prov_ecs_image_list l = {0};
            static const char pre[] = "{\"Images\":{\"Image\":[{\"ImageId\":\"m-p1\"}]}}";
            cr_assert_eq(bytes_ecs_images(pre, strlen(pre), &l, NULL), 0);
            rc = bytes_ecs_images(body, strlen(body), &l, &total);
            cr_expect_eq(l.n, 1, "%s=%s: the list changed", c->field, v);
            cr_expect_str_eq(l.v[0].image_id, "m-p1");
            prov_ecs_image_list_clear(&l);
        } else {
            prov_image_list l = {0};
            prefill(&l);
            rc = bytes_list_images(body, strlen(body), &l, &total);
            cr_expect_eq(l.n, 2, "%s=%s: the list changed", c->field, v);
            expect_prefill_intact(&l, c->field);
            prov_image_list_clear(&l);
        }
        cr_expect_eq(rc, -EPROTO, "%s=%s accepted (rc %d): %s", c->field, v, rc, body);
        cr_expect_eq(total, 777, "%s=%s: total written", c->field, v);
        free(body);
        tried++;
    }
    cr_expect_gt(tried, 0);
}

/* The templates above are good answers with a good value in the field. */
Test(parse, wrong_types_templates_accept_good_values)
{
    struct wt_case list_top = {LIST_TOP, "TotalCount", ""}, list_img = {LIST_IMG, "Status", ""},
                   ecs_top = {ECS_TOP, "TotalCount", ""}, ecs_img = {ECS_IMG, "Usage", ""},
                   list_id = {LIST_IMG, "ImageId", ""}, ecs_id = {ECS_IMG, "ImageId", ""};
    char *b;
    prov_image_list l = {0};
    prov_ecs_image_list e = {0};
    b = wt_body(&list_top, "\"5\"");
    cr_expect_eq(bytes_list_images(b, strlen(b), &l, NULL), 0, "%s", b);
    free(b);
    b = wt_body(&list_img, "\"1\"");
    cr_expect_eq(bytes_list_images(b, strlen(b), &l, NULL), 0, "%s", b);
    free(b);
    b = wt_body(&list_id, "\"m-9\"");
    cr_expect_eq(bytes_list_images(b, strlen(b), &l, NULL), 0, "%s", b);
    free(b);
    b = wt_body(&ecs_top, "5");
    cr_expect_eq(bytes_ecs_images(b, strlen(b), &e, NULL), 0, "%s", b);
    free(b);
    b = wt_body(&ecs_img, "\"none\"");
    cr_expect_eq(bytes_ecs_images(b, strlen(b), &e, NULL), 0, "%s", b);
    free(b);
    b = wt_body(&ecs_id, "\"m-9\"");
    cr_expect_eq(bytes_ecs_images(b, strlen(b), &e, NULL), 0, "%s", b);
    free(b);
    cr_expect_eq(l.n, 3);
    cr_expect_eq(e.n, 3);
    prov_image_list_clear(&l);
    prov_ecs_image_list_clear(&e);
}

/* ==== CreateCustomImage ==== */

struct create_case {
    char name[32];
    char body[64];
    size_t len;
    int want;
    char id[16];
};

ParameterizedTestParameters(parse, create)
{
    static struct create_case cases[] = {
        {"good", "{\"RequestId\":\"R-1\",\"ImageId\":\"m-new1\"}", 0, 0, "m-new1"},
        {"only ImageId", "{\"ImageId\":\"m-x\"}", 0, 0, "m-x"},
        {"extra keys", "{\"ImageId\":\"m-x\",\"Extra\":[1,{\"a\":null}]}", 0, 0, "m-x"},
        {"ImageId missing", "{\"RequestId\":\"R-1\"}", 0, -EPROTO, ""},
        {"ImageId empty", "{\"ImageId\":\"\"}", 0, -EPROTO, ""},
        {"ImageId with a newline", "{\"ImageId\":\"m-1\\nx\"}", 0, -EPROTO, ""},
        {"ImageId with a quote", "{\"ImageId\":\"m-1\\\"\"}", 0, -EPROTO, ""},
        {"ImageId null", "{\"ImageId\":null}", 0, -EPROTO, ""},
        {"ImageId number", "{\"ImageId\":123}", 0, -EPROTO, ""},
        {"ImageId true", "{\"ImageId\":true}", 0, -EPROTO, ""},
        {"ImageId array", "{\"ImageId\":[\"m-1\"]}", 0, -EPROTO, ""},
        {"ImageId object", "{\"ImageId\":{\"Id\":\"m-1\"}}", 0, -EPROTO, ""},
        {"ImageId real", "{\"ImageId\":1.5}", 0, -EPROTO, ""},
        {"empty body", "", 0, -EPROTO, ""},
        {"truncated", "{\"ImageId\":\"m-1\"", 0, -EPROTO, ""},
        {"truncated string", "{\"ImageId\":\"m-1", 0, -EPROTO, ""},
        {"array root", "[\"m-1\"]", 0, -EPROTO, ""},
        {"string root", "\"m-1\"", 0, -EPROTO, ""},
        {"null root", "null", 0, -EPROTO, ""},
        {"duplicate ImageId", "{\"ImageId\":\"m-1\",\"ImageId\":\"m-2\"}", 0, -EPROTO, ""},
        {"NUL after", NUL_BODY("{\"ImageId\":\"m-1\"}\0"), -EPROTO, ""},
        {"NUL inside", NUL_BODY("{\"ImageId\":\"m-\0001\"}"), -EPROTO, ""},
        {"escaped NUL", "{\"ImageId\":\"m-1\\u0000\"}", 0, -EPROTO, ""},
        {"trailing garbage", "{\"ImageId\":\"m-1\"}]", 0, -EPROTO, ""},
    };
    return cr_make_param_array(struct create_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct create_case *c, parse, create)
{
    char sentinel[] = "untouched";
    char *id = sentinel;
    size_t len = c->len ? c->len : strlen(c->body);
    int rc = bytes_create(c->body, len, &id);
    cr_assert_eq(rc, c->want, "[%s] rc %d", c->name, rc);
    if (rc == 0) {
        cr_expect_str_eq(id, c->id, "[%s]", c->name);
        free(id);
    } else {
        cr_expect_eq(id, sentinel, "[%s] out-parameter written on failure", c->name);
    }
}

/* ListRegions: Regions[] (or Regions.Region[]) of RegionId; sorted out, anything odd rejected. */
struct regions_case {
    char name[32];
    char body[160];
    size_t len;
    int want;
    char joined[64]; /* the regions, comma-joined */
};

ParameterizedTestParameters(parse, regions)
{
    static struct regions_case cases[] = {
        {"good",
         "{\"Regions\":[{\"RegionId\":\"cn-shanghai\",\"LocalName\":\"x\"},"
         "{\"RegionId\":\"cn-hangzhou\",\"RegionEndpoint\":\"e\"}]}",
         0, 0, "cn-hangzhou,cn-shanghai"},
        {"wrapped", "{\"Regions\":{\"Region\":[{\"RegionId\":\"ap-southeast-1\"}]}}", 0, 0,
         "ap-southeast-1"},
        {"empty list", "{\"Regions\":[]}", 0, -EPROTO, ""},
        {"no Regions", "{\"RequestId\":\"R\"}", 0, -EPROTO, ""},
        {"Regions string", "{\"Regions\":\"cn-hangzhou\"}", 0, -EPROTO, ""},
        {"item not object", "{\"Regions\":[\"cn-hangzhou\"]}", 0, -EPROTO, ""},
        {"RegionId missing", "{\"Regions\":[{\"LocalName\":\"x\"}]}", 0, -EPROTO, ""},
        {"RegionId number", "{\"Regions\":[{\"RegionId\":5}]}", 0, -EPROTO, ""},
        {"RegionId empty", "{\"Regions\":[{\"RegionId\":\"\"}]}", 0, -EPROTO, ""},
        {"RegionId upper", "{\"Regions\":[{\"RegionId\":\"CN-hangzhou\"}]}", 0, -EPROTO, ""},
        {"RegionId slash", "{\"Regions\":[{\"RegionId\":\"cn/../x\"}]}", 0, -EPROTO, ""},
        {"RegionId NUL", "{\"Regions\":[{\"RegionId\":\"cn\\u0000x\"}]}", 0, -EPROTO, ""},
        {"duplicate", "{\"Regions\":[{\"RegionId\":\"cn-a\"},{\"RegionId\":\"cn-a\"}]}", 0, -EPROTO,
         ""},
        {"truncated", "{\"Regions\":[{\"RegionId\":\"cn-a\"}", 0, -EPROTO, ""},
        {"array root", "[{\"RegionId\":\"cn-a\"}]", 0, -EPROTO, ""},
        {"empty body", "", 0, -EPROTO, ""},
    };
    return cr_make_param_array(struct regions_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct regions_case *c, parse, regions)
{
    char **v = NULL;
    size_t n = 99;
    size_t len = c->len ? c->len : strlen(c->body);
    int rc = bytes_regions(c->body, len, &v, &n);
    cr_assert_eq(rc, c->want, "[%s] rc %d", c->name, rc);
    if (rc != 0) {
        cr_expect_null(v, "[%s] out-parameter written on failure", c->name);
        cr_expect_eq(n, 99, "[%s] out-parameter written on failure", c->name);
        return;
    }
    char joined[128] = "";
    for (size_t i = 0; i < n; i++) {
        if (i)
            strcat(joined, ",");
        strncat(joined, v[i], sizeof(joined) - strlen(joined) - 2);
        free(v[i]);
    }
    free(v);
    cr_expect_str_eq(joined, c->joined, "[%s]", c->name);
}

Test(parse, create_deep)
{
    char *deep = gen_deep("[", "]", 100000, "{\"ImageId\":", "}");
    char *id = NULL;
    cr_expect_eq(bytes_create(deep, strlen(deep), &id), -EPROTO);
    cr_expect_null(id);
    free(deep);
    deep = gen_deep("[", "]", 100, "{\"ImageId\":", "}");
    cr_expect_eq(bytes_create(deep, strlen(deep), &id), -EPROTO);
    cr_expect_null(id);
    free(deep);
    cr_expect_eq(bytes_create(NULL, 0, &id), -EPROTO);
}

/* ==== Error bodies ==== */

struct err_case {
    char name[32];
    char body[200];
    size_t len;
    int want;
    char code[24], message[64], rid[8]; /* "": want NULL */
};

ParameterizedTestParameters(parse, error_body)
{
    static struct err_case cases[] = {
        {"full",
         "{\"RequestId\":\"R-9\",\"HostId\":\"swas.aliyuncs.com\",\"Code\":\"Throttling.User\","
         "\"Message\":\"Request was denied due to user flow control.\",\"Recommend\":\"x\"}",
         0, 0, "Throttling.User", "Request was denied due to user flow control.", "R-9"},
        {"only Code", "{\"Code\":\"InternalError\"}", 0, 0, "InternalError", "", ""},
        {"empty object", "{}", 0, 0, "", "", ""},
        {"nulls", "{\"Code\":null,\"Message\":null,\"RequestId\":null}", 0, 0, "", "", ""},
        {"numeric Code", "{\"Code\":400,\"Message\":\"m\"}", 0, 0, "400", "m", ""},
        {"UTF-8 message", "{\"Code\":\"C\",\"Message\":\"\xe9\x94\x99\"}", 0, 0, "C",
         "\xe9\x94\x99", ""},
        {"extra nested keys", "{\"Code\":\"C\",\"Data\":{\"x\":[1,2,{}]}}", 0, 0, "C", "", ""},
        {"Code array", "{\"Code\":[\"C\"]}", 0, -EPROTO, "", "", ""},
        {"Code object", "{\"Code\":{}}", 0, -EPROTO, "", "", ""},
        {"Code true", "{\"Code\":true}", 0, -EPROTO, "", "", ""},
        {"Code real", "{\"Code\":4.5}", 0, -EPROTO, "", "", ""},
        {"Message array", "{\"Code\":\"C\",\"Message\":[]}", 0, -EPROTO, "", "", ""},
        {"Message object", "{\"Code\":\"C\",\"Message\":{}}", 0, -EPROTO, "", "", ""},
        {"Message false", "{\"Code\":\"C\",\"Message\":false}", 0, -EPROTO, "", "", ""},
        {"RequestId array", "{\"Code\":\"C\",\"RequestId\":[]}", 0, -EPROTO, "", "", ""},
        {"RequestId true", "{\"Code\":\"C\",\"RequestId\":true}", 0, -EPROTO, "", "", ""},
        {"RequestId real", "{\"Code\":\"C\",\"RequestId\":0.1}", 0, -EPROTO, "", "", ""},
        {"empty body", "", 0, -EPROTO, "", "", ""},
        {"truncated", "{\"Code\":\"InternalError\",\"Message\":\"oops", 0, -EPROTO, "", "", ""},
        {"HTML", "<html>503</html>", 0, -EPROTO, "", "", ""},
        {"array root", "[{\"Code\":\"C\"}]", 0, -EPROTO, "", "", ""},
        {"string root", "\"Throttling\"", 0, -EPROTO, "", "", ""},
        {"duplicate Code", "{\"Code\":\"A\",\"Code\":\"B\"}", 0, -EPROTO, "", "", ""},
        {"NUL after", NUL_BODY("{\"Code\":\"C\"}\0"), -EPROTO, "", "", ""},
        {"NUL inside", NUL_BODY("{\"Code\":\"C\0D\"}"), -EPROTO, "", "", ""},
        {"escaped NUL", "{\"Code\":\"C\\u0000D\"}", 0, -EPROTO, "", "", ""},
    };
    return cr_make_param_array(struct err_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct err_case *c, parse, error_body)
{
    char s1[] = "a", s2[] = "b", s3[] = "c";
    char *code = s1, *msg = s2, *rid = s3;
    size_t len = c->len ? c->len : strlen(c->body);
    int rc = bytes_error_body(c->body, len, &code, &msg, &rid);
    cr_assert_eq(rc, c->want, "[%s] rc %d", c->name, rc);
    if (rc == 0) {
        str_or_null_eq(code, c->code, c->name);
        str_or_null_eq(msg, c->message, c->name);
        str_or_null_eq(rid, c->rid, c->name);
        free(code);
        free(msg);
        free(rid);
    } else {
        cr_expect(code == s1 && msg == s2 && rid == s3, "[%s] out-parameters written", c->name);
    }
}

Test(parse, error_body_deep)
{
    char *deep = gen_deep("[", "]", 100000, "{\"Code\":", "}");
    char *code = NULL, *msg = NULL, *rid = NULL;
    cr_expect_eq(bytes_error_body(deep, strlen(deep), &code, &msg, &rid), -EPROTO);
    free(deep);
    deep = gen_deep("[", "]", 300, "{\"Code\":\"C\",\"X\":", "}");
    cr_expect_eq(bytes_error_body(deep, strlen(deep), &code, &msg, &rid), 0);
    cr_expect_str_eq(code, "C");
    free(code);
    free(msg);
    free(rid);
    free(deep);
    cr_expect_eq(bytes_error_body(NULL, 0, &code, &msg, &rid), -EPROTO);
}

/* ListTagResources and ListCustomImageShareAccounts answers (parsed json_t in, rows out): good
 * shapes append, bad ones append nothing and say -EPROTO. */
Test(parse, tag_resources_and_share_accounts)
{
    static const struct {
        const char *body;
        int rc;
        size_t rows;
        const char *next;
    } tags[] = {
        {"{\"NextToken\":\"t2\",\"TagResources\":{\"TagResource\":[{\"ResourceId\":\"m-1\","
         "\"ResourceType\":\"customimage\",\"TagKey\":\"team\",\"TagValue\":\"web\"},"
         "{\"ResourceId\":\"m-1\",\"ResourceType\":\"customimage\",\"TagKey\":\"env\"}]}}",
         0, 2, "t2"},
        {"{\"NextToken\":\"\",\"TagResources\":[]}", 0, 0, ""},
        {"{\"TagResources\":{\"TagResource\":[]}}", 0, 0, NULL},
        {"{\"TagResources\":{\"TagResource\":[{\"ResourceType\":\"customimage\"}]}}", -EPROTO, 0,
         NULL},
        {"{\"TagResources\":{\"TagResource\":[{\"ResourceId\":\"m-1\",\"TagKey\":7.5}]}}", -EPROTO,
         0, NULL},
        {"{\"TagResources\":\"x\"}", -EPROTO, 0, NULL},
        {"[]", -EPROTO, 0, NULL},
    };
    for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++) {
        json_t *body = json_loads(tags[i].body, 0, NULL);
        cr_assert_not_null(body, "%s", tags[i].body);
        prov_tag_resource_list l = {0};
        char *next = NULL;
        cr_expect_eq(prov_parse_tag_resources(body, &l, &next), tags[i].rc, "%s", tags[i].body);
        cr_expect_eq(l.n, tags[i].rows, "%s", tags[i].body);
        if (tags[i].rc == 0 && tags[i].next)
            cr_expect_str_eq(next, tags[i].next);
        if (tags[i].rows == 2)
            cr_expect_str_eq(l.v[1].value, "", "an absent TagValue is empty");
        free(next);
        prov_tag_resource_list_free(&l);
        json_decref(body);
    }
    static const struct {
        const char *body;
        int rc;
        size_t n;
        unsigned total;
    } accts[] = {
        {"{\"TotalCount\":2,\"ImageShareUsers\":[{\"UserId\":1111,\"SharedTime\":\"x\"},"
         "{\"UserId\":\"2222\"}]}",
         0, 2, 2},
        {"{\"TotalCount\":\"0\",\"ImageShareUsers\":{\"ImageShareUser\":[]}}", 0, 0, 0},
        {"{\"ImageShareUsers\":[{\"SharedTime\":\"x\"}]}", -EPROTO, 0, 0},
        {"{\"ImageShareUsers\":[{\"UserId\":true}]}", -EPROTO, 0, 0},
        {"{\"ImageShareUsers\":[{\"UserId\":\"1111&AliUid=2222\"}]}", -EPROTO, 0, 0},
        {"{\"ImageShareUsers\":[{\"UserId\":\"\"}]}", -EPROTO, 0, 0},
        {"{\"TotalCount\":-1,\"ImageShareUsers\":[]}", -EPROTO, 0, 0},
    };
    for (size_t i = 0; i < sizeof(accts) / sizeof(accts[0]); i++) {
        json_t *body = json_loads(accts[i].body, 0, NULL);
        cr_assert_not_null(body, "%s", accts[i].body);
        prov_str_list l = {0};
        unsigned total = 99;
        cr_expect_eq(prov_parse_share_accounts(body, &l, &total), accts[i].rc, "%s", accts[i].body);
        cr_expect_eq(l.n, accts[i].n, "%s", accts[i].body);
        if (accts[i].rc == 0)
            cr_expect_eq(total, accts[i].total);
        if (accts[i].n == 2)
            cr_expect_str_eq(l.v[0], "1111", "a numeric UserId is read as its digits");
        prov_str_list_free(&l);
        json_decref(body);
    }
}

/* ---- Arenas (prov_jmem.c) ---- */

/* Under AddressSanitizer the arenas are off (every block is the sanitizer's); a loaded document
 * then holds no arena and the counts below are 0. */
#if defined(__SANITIZE_ADDRESS__)
#define ARENA 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ARENA 0
#endif
#endif
#ifndef ARENA
#define ARENA 1
#endif

/* An answer-like document of n images, each with tags, and a long description every tenth
 * (longer than an arena block, so from malloc). Caller frees. */
static char *gen_answer(size_t n)
{
    size_t cap = 256 + n * 6000, len = 0;
    char *b = malloc(cap);
    cr_assert_not_null(b);
    len += (size_t)snprintf(b + len, cap - len, "{\"TotalCount\":%zu,\"CustomImages\":[", n);
    for (size_t i = 0; i < n; i++) {
        len += (size_t)snprintf(b + len, cap - len,
                                "%s{\"ImageId\":\"m-%06zu\",\"Name\":\"img-%zu\",\"Tags\":"
                                "[{\"Key\":\"k\",\"Value\":\"v%zu\"}],\"Description\":\"",
                                i ? "," : "", i, i, i);
        size_t d = i % 10 == 0 ? 5000 : 10;
        memset(b + len, 'd', d);
        len += d;
        len += (size_t)snprintf(b + len, cap - len, "\"}");
    }
    len += (size_t)snprintf(b + len, cap - len, "]}");
    return b;
}

/* The document a plain json_loadb gives, with the default allocator's blocks freed by ours. */
static json_t *plain_load(const char *text)
{
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    cr_assert_not_null(j);
    return j;
}

Test(jmem, document_is_equal_and_its_arena_goes_with_it)
{
    static const size_t sizes[] = {0, 1, 50, 2000}; /* 2000 images span many chunks */
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        char *text = gen_answer(sizes[i]);
        json_t *a = prov_json_loadb(text, strlen(text), JSON_REJECT_DUPLICATES, NULL);
        cr_assert_not_null(a);
        cr_expect_eq(prov_jmem_live_arenas(), (size_t)ARENA, "n=%zu", sizes[i]);
        json_t *p = plain_load(text);
        cr_expect(json_equal(a, p), "n=%zu", sizes[i]);
        json_decref(p);
        json_decref(a);
        cr_expect_eq(prov_jmem_live_arenas(), 0, "n=%zu: the last free releases the arena",
                     sizes[i]);
        free(text);
    }
}

Test(jmem, kept_node_keeps_the_arena)
{
    char *text = gen_answer(20);
    json_t *root = prov_json_loadb(text, strlen(text), 0, NULL);
    cr_assert_not_null(root);
    json_t *img = json_incref(json_array_get(json_object_get(root, "CustomImages"), 7));
    json_t *other = json_object();
    cr_assert_eq(
        json_object_set(other, "moved", json_array_get(json_object_get(root, "CustomImages"), 9)),
        0);
    json_decref(root);
    cr_expect_eq(prov_jmem_live_arenas(), (size_t)ARENA, "nodes still in use keep their arena");
    cr_expect_str_eq(json_string_value(json_object_get(img, "ImageId")), "m-000007");
    /* Changing a kept node after the load: new blocks come from malloc, old ones go back. */
    for (int k = 0; k < 64; k++) {
        char key[16];
        snprintf(key, sizeof(key), "x%d", k);
        cr_assert_eq(json_object_set_new(img, key, json_integer(k)), 0);
    }
    cr_assert_eq(json_object_del(img, "Tags"), 0);
    json_decref(img);
    cr_expect_eq(prov_jmem_live_arenas(), (size_t)ARENA);
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(other, "moved"), "Name")),
                     "img-9");
    char *dump = json_dumps(other, 0); /* made outside a load: released with free() */
    cr_assert_not_null(dump);
    cr_expect(strstr(dump, "m-000009") != NULL);
    free(dump);
    json_decref(other);
    cr_expect_eq(prov_jmem_live_arenas(), 0);
    free(text);
}

Test(jmem, documents_freed_in_any_order)
{
    char *text = gen_answer(30);
    json_t *d[3];
    for (int i = 0; i < 3; i++) {
        d[i] = prov_json_loadb(text, strlen(text), 0, NULL);
        cr_assert_not_null(d[i]);
    }
    cr_expect_eq(prov_jmem_live_arenas(), 3 * (size_t)ARENA);
    json_decref(d[1]);
    cr_expect_eq(prov_jmem_live_arenas(), 2 * (size_t)ARENA);
    json_decref(d[0]);
    json_decref(d[2]);
    cr_expect_eq(prov_jmem_live_arenas(), 0);
    free(text);
}

/* A load that fails after many blocks (a duplicate key at the end, a truncated text, an
 * unclosed nest) frees what it made: no arena is left. */
Test(jmem, failed_loads_leave_nothing)
{
    char *text = gen_answer(40);
    size_t len = strlen(text);
    const char *tails[] = {",\"TotalCount\":1}", "", ",\"x\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["};
    for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
        char *bad = malloc(len + 64);
        cr_assert_not_null(bad);
        memcpy(bad, text, len - 1); /* drop the closing brace */
        strcpy(bad + len - 1, tails[i]);
        json_error_t je;
        json_t *j = prov_json_loadb(bad, strlen(bad), JSON_REJECT_DUPLICATES, &je);
        cr_expect_null(j, "tail %zu", i);
        cr_expect_neq(je.text[0], '\0', "tail %zu: an error text", i);
        cr_expect_eq(prov_jmem_live_arenas(), 0, "tail %zu", i);
        free(bad);
    }
    cr_expect_null(prov_json_loadb("", 0, 0, NULL));
    cr_expect_eq(prov_jmem_live_arenas(), 0);
    free(text);
}
