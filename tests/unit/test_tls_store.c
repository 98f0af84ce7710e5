/* Config ca_file adds to the system trust store and never replaces it (issue 13 item 2). An
 * SSL_CTX whose store already trusts CA "A" stands for the store libcurl loaded from the system
 * bundle; prov_tls_add_ca_file, the body of prov_http.c's CURLOPT_SSL_CTX_FUNCTION, then loads a
 * file holding CA "B". Leaves signed by A and by B must both verify afterwards, a leaf of an
 * untrusted CA must not, and a missing or certificate-less file is an error that leaves the
 * store as it was. Every certificate is made in memory (P-256 keys); only B's PEM is written. */
#include <criterion/criterion.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>

#include "prov_tls.h"
#include "test_file.h"

/* A certificate and its key. */
typedef struct cert {
    X509 *x509;
    EVP_PKEY *key;
} cert;

static char dir[64];
static cert ca_a, ca_b, ca_c, leaf_a, leaf_b, leaf_c;
static SSL_CTX *ctx;

/* Adds one X509v3 extension (config-string form) issued by issuer to x. */
static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    cr_assert_not_null(ext);
    cr_assert_eq(X509_add_ext(x, ext, -1), 1);
    X509_EXTENSION_free(ext);
}

/* Makes a certificate named cn: a self-signed CA when issuer is NULL, else a leaf signed by
 * issuer. Valid from an hour ago for two days. */
static cert make_cert(const char *cn, const cert *issuer)
{
    static long serial = 1;
    cert c = {X509_new(), EVP_EC_gen("P-256")};
    cr_assert(c.x509 != NULL && c.key != NULL);
    X509 *iss = issuer ? issuer->x509 : c.x509;
    EVP_PKEY *sign_key = issuer ? issuer->key : c.key;
    cr_assert_eq(X509_set_version(c.x509, 2), 1);
    cr_assert_eq(ASN1_INTEGER_set(X509_get_serialNumber(c.x509), serial++), 1);
    cr_assert_not_null(X509_gmtime_adj(X509_getm_notBefore(c.x509), -3600));
    cr_assert_not_null(X509_gmtime_adj(X509_getm_notAfter(c.x509), 2 * 86400));
    X509_NAME *name = X509_get_subject_name(c.x509);
    cr_assert_eq(
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0),
        1);
    cr_assert_eq(X509_set_issuer_name(c.x509, X509_get_subject_name(iss)), 1);
    cr_assert_eq(X509_set_pubkey(c.x509, c.key), 1);
    add_ext(c.x509, iss, NID_basic_constraints, issuer ? "critical,CA:FALSE" : "critical,CA:TRUE");
    add_ext(c.x509, iss, NID_key_usage,
            issuer ? "critical,digitalSignature" : "critical,keyCertSign,cRLSign");
    cr_assert_gt(X509_sign(c.x509, sign_key, EVP_sha256()), 0);
    return c;
}

static void cert_clear(cert *c)
{
    X509_free(c->x509);
    EVP_PKEY_free(c->key);
}

/* Appends c's certificate as PEM to path. */
static void append_pem(const char *path, const cert *c)
{
    FILE *f = fopen(path, "a");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(PEM_write_X509(f, c->x509), 1);
    cr_assert_eq(fclose(f), 0);
}

/* Whether leaf verifies against ctx's store as it is now (fetched anew, so a callback that had
 * swapped the store in would be seen). */
static bool verifies(const cert *leaf)
{
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    cr_assert_not_null(store);
    X509_STORE_CTX *sc = X509_STORE_CTX_new();
    cr_assert_not_null(sc);
    cr_assert_eq(X509_STORE_CTX_init(sc, store, leaf->x509, NULL), 1);
    bool ok = X509_verify_cert(sc) == 1;
    X509_STORE_CTX_free(sc);
    return ok;
}

static char *path_of(const char *name)
{
    char *p = NULL;
    cr_assert_gt(asprintf(&p, "%s/%s", dir, name), 0);
    return p;
}

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/imgrecon-tls-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    ca_a = make_cert("imgrecon test CA A (system)", NULL);
    ca_b = make_cert("imgrecon test CA B (ca_file)", NULL);
    ca_c = make_cert("imgrecon test CA C (untrusted)", NULL);
    leaf_a = make_cert("leaf-a.test", &ca_a);
    leaf_b = make_cert("leaf-b.test", &ca_b);
    leaf_c = make_cert("leaf-c.test", &ca_c);
    ctx = SSL_CTX_new(TLS_client_method());
    cr_assert_not_null(ctx);
    /* A stands for the system bundle libcurl has loaded before it calls the callback. */
    cr_assert_eq(X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), ca_a.x509), 1);
    /* Controls: the store trusts A only, so the assertions below are not vacuous. */
    cr_assert(verifies(&leaf_a));
    cr_assert_not(verifies(&leaf_b));
    cr_assert_not(verifies(&leaf_c));
}

static void teardown(void)
{
    SSL_CTX_free(ctx);
    cert *all[] = {&ca_a, &ca_b, &ca_c, &leaf_a, &leaf_b, &leaf_c};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        cert_clear(all[i]);
    cr_assert_eq(test_file_remove_tree(dir), 0);
}

TestSuite(tls_store, .init = setup, .fini = teardown);

Test(tls_store, ca_file_adds_to_the_store_and_keeps_the_system_cas)
{
    char *b = path_of("b.pem");
    append_pem(b, &ca_b);
    cr_assert_eq(prov_tls_add_ca_file(ctx, b), 0);
    cr_expect(verifies(&leaf_a), "the system CA A was dropped: ca_file replaced the store");
    cr_expect(verifies(&leaf_b), "the ca_file CA B was not added");
    cr_expect_not(verifies(&leaf_c), "a leaf of an untrusted CA verified");
    free(b);
}

Test(tls_store, every_certificate_in_the_file_is_added)
{
    char *bc = path_of("bc.pem");
    append_pem(bc, &ca_b);
    append_pem(bc, &ca_c);
    cr_assert_eq(prov_tls_add_ca_file(ctx, bc), 0);
    cr_expect(verifies(&leaf_a));
    cr_expect(verifies(&leaf_b));
    cr_expect(verifies(&leaf_c));
    free(bc);
}

/* A missing file, an empty one, text without PEM and a PEM private key alone all fail, and the
 * store still trusts exactly what it did. */
Test(tls_store, a_missing_or_certificate_less_file_is_an_error)
{
    char *missing = path_of("missing.pem"), *empty = path_of("empty.pem");
    char *text = path_of("text.pem"), *key = path_of("key.pem");
    test_file_write(empty, "");
    test_file_write(text, "not a certificate\n");
    FILE *f = fopen(key, "w");
    cr_assert_not_null(f);
    cr_assert_eq(PEM_write_PrivateKey(f, ca_b.key, NULL, NULL, 0, NULL, NULL), 1);
    cr_assert_eq(fclose(f), 0);
    const char *bad[] = {missing, empty, text, key};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_eq(prov_tls_add_ca_file(ctx, bad[i]), -EINVAL, "%s", bad[i]);
    cr_expect_eq(prov_tls_add_ca_file(NULL, missing), -EINVAL);
    cr_expect(verifies(&leaf_a));
    cr_expect_not(verifies(&leaf_b));
    free(missing);
    free(empty);
    free(text);
    free(key);
}
