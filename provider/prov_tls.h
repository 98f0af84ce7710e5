/* TLS trust for config `ca_file`: the file's certificates join the system store that libcurl
 * has already loaded into the TLS context, instead of replacing it as CURLOPT_CAINFO would. */
#ifndef PROV_TLS_H
#define PROV_TLS_H

/* Adds every PEM certificate in path to the X509 store of ssl_ctx (an OpenSSL SSL_CTX *,
 * borrowed; void * so callers need not include OpenSSL). Certificates already in the store stay.
 * Returns 0, or -EINVAL when ssl_ctx has no store or path cannot be read or holds no certificate.
 * Called by prov_http.c's CURLOPT_SSL_CTX_FUNCTION for every new TLS connection. */
int prov_tls_add_ca_file(void *ssl_ctx, const char *path);

#endif
