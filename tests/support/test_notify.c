/* See test_notify.h. */
#include "test_notify.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "test_clock.h"

#define QUEUE 512

struct test_notify {
    int fd;
    char path[108];
    char *queue[QUEUE];
    size_t head, len;
};

test_notify *test_notify_open(const char *path)
{
    test_notify *n = calloc(1, sizeof(*n));
    cr_assert_not_null(n);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    cr_assert_lt(len, sizeof(sa.sun_path), "notify socket path too long: %s", path);
    memcpy(sa.sun_path, path, len + 1);
    memcpy(n->path, path, len + 1);
    /* "@name" is a name in the abstract namespace: a leading NUL and no terminating one. */
    socklen_t salen = sizeof(sa);
    if (path[0] == '@') {
        sa.sun_path[0] = '\0';
        salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    }
    n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(n->fd, 0, "socket: %s", strerror(errno));
    cr_assert_eq(bind(n->fd, (struct sockaddr *)&sa, salen), 0, "bind %s: %s", path,
                 strerror(errno));
    return n;
}

void test_notify_free(test_notify *n)
{
    if (n == NULL)
        return;
    char *m;
    while ((m = test_notify_pop(n)) != NULL)
        free(m);
    if (n->fd >= 0)
        close(n->fd);
    free(n);
}

const char *test_notify_path(const test_notify *n)
{
    return n->path;
}

void test_notify_pump(test_notify *n, int ms)
{
    struct pollfd p = {.fd = n->fd, .events = POLLIN};
    if (poll(&p, 1, ms) <= 0)
        return;
    char msg[2048];
    ssize_t got;
    while ((got = recv(n->fd, msg, sizeof(msg) - 1, MSG_DONTWAIT)) >= 0) {
        msg[got] = '\0';
        if (n->len == QUEUE) {
            free(n->queue[n->head]);
            n->head = (n->head + 1) % QUEUE;
            n->len--;
        }
        n->queue[(n->head + n->len++) % QUEUE] = strdup(msg);
    }
}

char *test_notify_pop(test_notify *n)
{
    if (n->len == 0)
        return NULL;
    char *m = n->queue[n->head];
    n->head = (n->head + 1) % QUEUE;
    n->len--;
    return m;
}

char *test_notify_recv(test_notify *n, uint64_t ms)
{
    uint64_t deadline = test_clock_ms() + ms;
    char *m;
    while ((m = test_notify_pop(n)) == NULL) {
        int left = test_clock_left(deadline);
        if (left <= 0)
            return NULL;
        test_notify_pump(n, left);
    }
    return m;
}

/* Appends msg and a newline to seen when both fit. */
static void note(char *seen, size_t seen_size, const char *msg)
{
    if (seen != NULL && strlen(seen) + strlen(msg) + 2 < seen_size) {
        strcat(seen, msg);
        strcat(seen, "\n");
    }
}

bool test_notify_await(test_notify *n, const char *prefix, const char *needle, uint64_t ms,
                       char *seen, size_t seen_size)
{
    uint64_t deadline = test_clock_ms() + ms;
    for (;;) {
        char *msg;
        while ((msg = test_notify_pop(n)) != NULL) {
            note(seen, seen_size, msg);
            bool hit = strncmp(msg, prefix, strlen(prefix)) == 0 &&
                       (needle == NULL || strstr(msg, needle) != NULL);
            free(msg);
            if (hit)
                return true;
        }
        int left = test_clock_left(deadline);
        if (left <= 0)
            return false;
        test_notify_pump(n, left);
    }
}
