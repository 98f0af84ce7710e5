/* sd_notify messages for the daemon (see rec_notify.h). */
#include <stdio.h>
#include <stdlib.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "rec_notify.h"

int rec_notify_ready(void)
{
    return sd_notify(0, "READY=1");
}

int rec_notify_reloading(void)
{
    struct timespec now;
    (void)clock_gettime(CLOCK_MONOTONIC, &now);
    unsigned long long usec =
        (unsigned long long)now.tv_sec * 1000000ull + (unsigned long long)now.tv_nsec / 1000ull;
    return sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu", usec);
}

int rec_notify_stopping(void)
{
    return sd_notify(0, "STOPPING=1");
}

int rec_notify_watchdog(void)
{
    return sd_notify(0, "WATCHDOG=1");
}

int rec_notify_status(const char *line)
{
    return sd_notifyf(0, "STATUS=%s", line);
}

int rec_notify_watchdog_usec(uint64_t *ret_usec)
{
    uint64_t usec = 0;
    int rc = sd_watchdog_enabled(0, &usec);
    if (rc > 0)
        *ret_usec = usec;
    return rc;
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
