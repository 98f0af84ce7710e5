/* The service manager's notify protocol for the daemon (see rec_notify.h), written here rather
 * than linked from libsystemd: systemd documents the datagram protocol as the stable interface
 * and recommends a standalone sender to programs that need nothing else of libsystemd
 * (sd_notify(3), "Standalone Implementations"). Linking libsystemd only for this pulled seven
 * libraries into every imgrecon process (0.8 MiB resident; BENCHMARKS.md section 4).
 * tests/unit/test_daemon_parts.c checks every sender and reader against libsystemd's own. */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "prov_cleanup.h"
#include "rec_notify.h"

/* The address NOTIFY_SOCKET names: an absolute path, or "@name" for a socket in the abstract
 * namespace. Returns the address length, -ENAMETOOLONG for a name longer than sun_path holds, or
 * -EINVAL for anything else (a relative path, "vsock:" addresses), as libsystemd does. */
static int notify_address(const char *name, struct sockaddr_un *ret_sa)
{
    size_t len = strlen(name);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (len < 2 || (name[0] != '/' && name[0] != '@'))
        return -EINVAL;
    /* A path keeps its terminating NUL inside sun_path; an abstract name has none. */
    if (len + (name[0] == '/') > sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, name, len);
    if (name[0] == '@')
        sa.sun_path[0] = '\0';
    *ret_sa = sa;
    return (int)(offsetof(struct sockaddr_un, sun_path) + len + (name[0] == '/'));
}

/* Sends msg as one datagram to NOTIFY_SOCKET. Returns 1 when sent, 0 when NOTIFY_SOCKET is not
 * set (not run by a service manager), a negative errno otherwise. Every sender below calls it. */
static int notify_send(const char *msg)
{
    const char *name = getenv("NOTIFY_SOCKET");
    if (name == NULL)
        return 0;
    struct sockaddr_un sa;
    int salen = notify_address(name, &sa);
    if (salen < 0)
        return salen;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    size_t len = strlen(msg);
    ssize_t n = sendto(fd, msg, len, MSG_NOSIGNAL, (const struct sockaddr *)&sa, (socklen_t)salen);
    int rc = n < 0 ? -errno : (size_t)n == len ? 1 : -EPROTO;
    (void)close(fd);
    return rc;
}

int rec_notify_ready(void)
{
    return notify_send("READY=1");
}

int rec_notify_reloading(void)
{
    struct timespec now;
    char msg[64];
    (void)clock_gettime(CLOCK_MONOTONIC, &now);
    unsigned long long usec =
        (unsigned long long)now.tv_sec * 1000000ull + (unsigned long long)now.tv_nsec / 1000ull;
    (void)snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu", usec);
    return notify_send(msg);
}

int rec_notify_stopping(void)
{
    return notify_send("STOPPING=1");
}

int rec_notify_watchdog(void)
{
    return notify_send("WATCHDOG=1");
}

int rec_notify_status(const char *line)
{
    _cleanup_free_ char *msg = NULL;
    if (asprintf(&msg, "STATUS=%s", line) < 0) {
        msg = NULL;
        return -ENOMEM;
    }
    return notify_send(msg);
}

/* A decimal number and nothing else, as the service manager writes it. Returns 0 or -EINVAL. */
static int parse_u64(const char *s, uint64_t *ret)
{
    uint64_t v = 0;
    if (*s == '\0')
        return -EINVAL;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
            return -EINVAL;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *ret = v;
    return 0;
}

int rec_notify_watchdog_usec(uint64_t *ret_usec)
{
    uint64_t usec = 0, pid = 0;
    const char *s = getenv("WATCHDOG_USEC");
    if (s == NULL)
        return 0;
    /* 0 and UINT64_MAX ("infinity") are not periods. */
    if (parse_u64(s, &usec) < 0 || usec == 0 || usec == UINT64_MAX)
        return -EINVAL;
    s = getenv("WATCHDOG_PID");
    if (s != NULL) {
        if (parse_u64(s, &pid) < 0 || pid == 0 || pid > INT32_MAX)
            return -EINVAL;
        if ((pid_t)pid != getpid())
            return 0; /* the watchdog of the process that started us, not ours */
    }
    *ret_usec = usec;
    return 1;
}

/* "4m59s" for the status line. */
static void span(char *out, size_t n, uint64_t ms)
{
    uint64_t s = (ms + 999) / 1000;
    if (s >= 3600)
        (void)snprintf(out, n, "%uh%02um", (unsigned)(s / 3600), (unsigned)(s % 3600 / 60));
    else if (s >= 60)
        (void)snprintf(out, n, "%um%02us", (unsigned)(s / 60), (unsigned)(s % 60));
    else
        (void)snprintf(out, n, "%us", (unsigned)s);
}

char *rec_notify_status_line(const char *last_result, unsigned done, unsigned failed,
                             uint64_t next_in_ms, unsigned pending,
                             const rec_notify_budget *budgets, size_t n_budgets, int suspended)
{
    char *out = NULL;
    size_t len = 0;
    char next[32];
    FILE *m = open_memstream(&out, &len);
    if (m == NULL)
        return NULL;
    if (suspended)
        fputs("suspended; ", m);
    if (last_result)
        fprintf(m, "last %s: %u done, %u failed; ", last_result, done, failed);
    else
        fputs("no cycle yet; ", m);
    if (next_in_ms == UINT64_MAX) {
        fputs("no next cycle; ", m);
    } else {
        span(next, sizeof(next), next_in_ms);
        fprintf(m, "next cycle in %s; ", next);
    }
    fprintf(m, "%u pending", pending);
    for (size_t i = 0; i < n_budgets; i++)
        fprintf(m, "%s%s %u/%u", i == 0 ? "; budget " : ", ", budgets[i].action, budgets[i].left,
                budgets[i].calls);
    if (fclose(m) != 0) {
        free(out);
        return NULL;
    }
    return out;
}
