/* See test_http.h. */
#include "test_http.h"

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

typedef struct body {
    char *buf;
    size_t len;
} body;

/* libcurl's write callback: appends to the body and keeps it NUL-terminated. */
static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    body *b = ud;
    char *grown = realloc(b->buf, b->len + size * n + 1);
    if (grown == NULL)
        return 0;
    b->buf = grown;
    memcpy(b->buf + b->len, p, size * n);
    b->len += size * n;
    b->buf[b->len] = '\0';
    return size * n;
}

long test_http_get(const char *url, char **ret_body)
{
    body b = {calloc(1, 1), 0};
    cr_assert_not_null(b.buf);
    CURL *c = curl_easy_init();
    cr_assert_not_null(c);
    (void)curl_easy_setopt(c, CURLOPT_URL, url);
    (void)curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    (void)curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    (void)curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    (void)curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    (void)curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    CURLcode rc = curl_easy_perform(c);
    long code = 0;
    (void)curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK) {
        free(b.buf);
        cr_assert_fail("GET %s: %s", url, curl_easy_strerror(rc));
    }
    *ret_body = b.buf;
    return code;
}
