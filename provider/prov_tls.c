/* Config ca_file (prov_tls.h): adds a private CA to the system trust store. */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "prov_tls.h"

/* Kept apart from prov_http.c's static callback so a unit test can run it on an SSL_CTX whose
 * store stands for the system one and check that both stay trusted. X509_STORE_load_file adds to
 * the store and fails when the file cannot be read or yields no certificate or CRL. The error
 * queue is cleared so a later, unrelated OpenSSL call does not report this failure. */
int prov_tls_add_ca_file(void *ssl_ctx, const char *path)
{
    X509_STORE *store = ssl_ctx ? SSL_CTX_get_cert_store((SSL_CTX *)ssl_ctx) : NULL;
    if (store == NULL || path == NULL || X509_STORE_load_file(store, path) != 1) {
        ERR_clear_error();
        return -EINVAL;
    }
    return 0;
}
