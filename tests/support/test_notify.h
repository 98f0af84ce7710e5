/* An sd_notify receiver for tests: a datagram socket bound at a path (to be named by
 * NOTIFY_SOCKET in the child's environment) and a queue of the messages received and not yet
 * looked at. libsystemd's sd_notify blocks when the receiver's queue (net.unix.max_dgram_qlen,
 * often 10 datagrams) is full, as systemd always reads; so every wait drains the socket into the
 * queue, and a daemon with a short interval never stalls on an unread STATUS= line. Used by
 * test_daemon.c (the real daemon) and test_daemon_parts.c (rec_notify). */
#ifndef TEST_NOTIFY_H
#define TEST_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct test_notify test_notify;

/* Binds a new receiver at path (which must not exist), or at a name in the abstract namespace
 * when path is "@name". Fails the test on error. Caller frees with test_notify_free. */
test_notify *test_notify_open(const char *path);
/* Closes the socket, frees queued messages and the receiver; accepts NULL. */
void test_notify_free(test_notify *n);
/* The bound path (borrowed). */
const char *test_notify_path(const test_notify *n);
/* Waits at most ms for the socket, then moves every datagram waiting there into the queue
 * (dropping the oldest queued one when full). */
void test_notify_pump(test_notify *n, int ms);
/* The oldest queued message (caller frees), or NULL. */
char *test_notify_pop(test_notify *n);
/* The oldest message, waiting at most ms for one (caller frees); NULL on timeout. */
char *test_notify_recv(test_notify *n, uint64_t ms);
/* Takes messages (queued first, then from the socket) until one starts with prefix and, when
 * needle is not NULL, contains needle; at most ms. Every message taken is appended to seen
 * (one a line, clipped at seen_size; seen may be NULL). Returns whether one matched. */
bool test_notify_await(test_notify *n, const char *prefix, const char *needle, uint64_t ms,
                       char *seen, size_t seen_size);

#endif
