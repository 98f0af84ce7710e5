/* The shared golden table (tests/data/golden_rules.json): the vendor's documented examples of
 * image names, tag keys and values and V1/V3 signatures, each marked accept or reject, checked
 * against both implementations — the product's (spec_check_*, prov_sig_*) and the emulator's
 * own (emu_check_*, emu_sig_*). The two are written independently, so a rule one of them gets
 * wrong fails here instead of being enforced on both sides. */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "emu_rules.h"
#include "emu_sig.h"
#include "prov_sig.h"
#include "spec.h"
#include "spec_rules.h"

static json_t *golden(const char *section)
{
    static json_t *root;
    if (!root) {
        json_error_t err;
        root = json_load_file(IMGRECON_SOURCE_DIR "/tests/data/golden_rules.json", 0, &err);
        cr_assert_not_null(root, "golden_rules.json:%d: %s", err.line, err.text);
    }
    json_t *a = json_object_get(root, section);
    cr_assert(json_is_array(a) && json_array_size(a) > 0, "section %s", section);
    return a;
}

typedef const char *(*check_fn)(const char *);

/* Every entry of a rule section: both checkers agree with the table. */
static void check_rules(const char *section, check_fn product, check_fn emulator)
{
    json_t *a = golden(section), *e;
    size_t i;
    json_array_foreach(a, i, e)
    {
        const char *v = json_string_value(json_object_get(e, "value"));
        bool accept = json_is_true(json_object_get(e, "accept"));
        const char *why = json_string_value(json_object_get(e, "why"));
        cr_assert_not_null(v);
        cr_expect_eq(product(v) == NULL, accept, "product %s \"%s\" (%s): %s", section, v, why,
                     product(v) ? product(v) : "accepted");
        cr_expect_eq(emulator(v) == NULL, accept, "emulator %s \"%s\" (%s): %s", section, v, why,
                     emulator(v) ? emulator(v) : "accepted");
    }
}

Test(golden_rules, image_names)
{
    check_rules("image_names", spec_check_image_name, emu_check_image_name);
}

Test(golden_rules, tag_keys)
{
    check_rules("tag_keys", spec_check_tag_key, emu_check_tag_key);
}

Test(golden_rules, tag_values)
{
    check_rules("tag_values", spec_check_tag_value, emu_check_tag_value);
}

/* Fills both implementations' pair lists from a [[k, v], ...] array. */
static void pairs(json_t *a, prov_kvs *p, emu_kvs *e)
{
    json_t *kv;
    size_t i;
    cr_assert(json_is_array(a));
    json_array_foreach(a, i, kv)
    {
        const char *k = json_string_value(json_array_get(kv, 0));
        const char *v = json_string_value(json_array_get(kv, 1));
        cr_assert(k && v);
        cr_assert_eq(prov_kvs_add(p, k, v), 0);
        cr_assert_eq(emu_kvs_add(e, k, v), 0);
    }
}

#define STR(e, k) json_string_value(json_object_get((e), (k)))

Test(golden_rules, signatures_v1)
{
    json_t *a = golden("v1"), *e;
    size_t i;
    json_array_foreach(a, i, e)
    {
        prov_kvs p = {0};
        emu_kvs q = {0};
        pairs(json_object_get(e, "params"), &p, &q);
        const char *want = STR(e, "signature"), *why = STR(e, "why");
        bool accept = json_is_true(json_object_get(e, "accept"));
        char *sts = NULL, *psig = NULL, *esig = NULL;
        cr_assert_eq(prov_sig_v1_string_to_sign(STR(e, "method"), &p, &sts), 0);
        cr_assert_eq(prov_sig_v1_signature(STR(e, "secret"), sts, &psig), 0);
        cr_assert_eq(emu_sig_v1(STR(e, "method"), &q, STR(e, "secret"), &esig, NULL), 0);
        cr_expect_eq(strcmp(psig, want) == 0, accept, "product v1 (%s): %s", why, psig);
        cr_expect_eq(strcmp(esig, want) == 0, accept, "emulator v1 (%s): %s", why, esig);
        /* The product's verifier reads the signature from the parameters, as a server would. */
        cr_assert_eq(prov_kvs_add(&p, "Signature", want), 0);
        char *vsts = NULL;
        int vr = prov_sig_v1_verify(STR(e, "method"), &p, STR(e, "secret"), &vsts);
        cr_expect_eq(vr, accept ? 0 : -EPERM, "product v1 verify (%s)", why);
        free(vsts);
        free(sts);
        free(psig);
        free(esig);
        prov_kvs_clear(&p);
        emu_kvs_clear(&q);
    }
}

Test(golden_rules, signatures_v3)
{
    json_t *a = golden("v3"), *e;
    size_t i;
    json_array_foreach(a, i, e)
    {
        prov_kvs pq = {0}, ph = {0};
        emu_kvs eq = {0}, eh = {0};
        pairs(json_object_get(e, "query"), &pq, &eq);
        pairs(json_object_get(e, "headers"), &ph, &eh);
        const char *method = STR(e, "method"), *sh = STR(e, "signed_headers");
        const char *body = STR(e, "body"), *secret = STR(e, "secret"), *why = STR(e, "why");
        const char *want = STR(e, "signature"), *want_hash = STR(e, "hashed_canonical_request");
        bool accept = json_is_true(json_object_get(e, "accept"));
        char body_hex[65], creq_hex[65];
        char *creq = NULL, *sts = NULL, *psig = NULL, *esig = NULL, *ehash = NULL;
        prov_sha256_hex(body, strlen(body), body_hex);
        cr_assert_eq(prov_sig_v3_canonical_request(method, "/", &pq, &ph, sh, body_hex, &creq), 0);
        prov_sha256_hex(creq, strlen(creq), creq_hex);
        cr_assert_eq(prov_sig_v3_string_to_sign(creq, &sts), 0);
        cr_assert_eq(prov_sig_v3_signature(secret, sts, &psig), 0);
        cr_assert_eq(
            emu_sig_v3(method, "/", &eq, &eh, sh, body, strlen(body), secret, &esig, &ehash, NULL),
            0);
        cr_expect_eq(strcmp(psig, want) == 0, accept, "product v3 (%s): %s", why, psig);
        cr_expect_eq(strcmp(esig, want) == 0, accept, "emulator v3 (%s): %s", why, esig);
        cr_expect_eq(strcmp(creq_hex, want_hash) == 0, accept, "product v3 hash (%s)", why);
        cr_expect_eq(strcmp(ehash, want_hash) == 0, accept, "emulator v3 hash (%s)", why);
        free(creq);
        free(sts);
        free(psig);
        free(esig);
        free(ehash);
        prov_kvs_clear(&pq);
        prov_kvs_clear(&ph);
        emu_kvs_clear(&eq);
        emu_kvs_clear(&eh);
    }
}
