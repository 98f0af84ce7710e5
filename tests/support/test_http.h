/* HTTP for tests: one GET with libcurl, body captured, bounded at 10 s, never through a proxy.
 * Used by the daemon tests that scrape the daemon's metrics and health endpoints. A transport
 * failure fails the current Criterion test. */
#ifndef TEST_HTTP_H
#define TEST_HTTP_H

/* GETs url and returns the HTTP status; *ret_body is the body, NUL-terminated (caller frees;
 * "" when empty). */
long test_http_get(const char *url, char **ret_body);

#endif
