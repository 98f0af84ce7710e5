/* The cost of the shared call budget per API call (BENCHMARKS.md "HA"): the pacer's acquire and
 * settle (what the client does around every call) against the state-directory file and against
 * the etcd call log of `ha`. A window of 1 ms keeps a slot always free, so every acquire is the
 * full read and compare-and-put, never a wait. Prints the median and 99th percentile in
 * microseconds; then the same for batches of 10 calls (one acquire_n and one settle_n, as the
 * client takes a queue of one action). Asserts nothing.
 * Usage: bench_pacer N STATE_DIR [ETCD_URL...] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "prov_pacer.h"

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Runs n acquire + settle pairs; prints the figures under name. */
static int run(const char *name, prov_pacer *p, int n)
{
    double *acq = calloc((size_t)n, sizeof(*acq)), *set = calloc((size_t)n, sizeof(*set));
    if (acq == NULL || set == NULL)
        return 1;
    for (int i = 0; i < n; i++) {
        uint64_t wait = 0, t = prov_pacer_now_ms(p);
        double t0 = now_us();
        if (prov_pacer_acquire(p, "LTAIbench", "swas", "ListCustomImages", 10, 1, t, &wait) < 0)
            return fprintf(stderr, "%s: acquire failed\n", name), 1;
        double t1 = now_us();
        if (prov_pacer_settle(p, "LTAIbench", "swas", "ListCustomImages", 1, t, t + 1) < 0)
            return fprintf(stderr, "%s: settle failed\n", name), 1;
        acq[i] = t1 - t0;
        set[i] = now_us() - t1;
    }
    qsort(acq, (size_t)n, sizeof(*acq), cmp);
    qsort(set, (size_t)n, sizeof(*set), cmp);
    printf("%-6s acquire median %7.0f us  p99 %7.0f us | settle median %7.0f us  p99 %7.0f us | "
           "per call %7.0f us\n",
           name, acq[n / 2], acq[n * 99 / 100], set[n / 2], set[n * 99 / 100],
           acq[n / 2] + set[n / 2]);
    free(acq);
    free(set);
    return 0;
}

/* Runs n batches of BATCH calls (one acquire_n and one settle_n each, as the client does for a
 * queue of one action); prints the time per batch and per call. */
#define BATCH 10
static int run_batch(const char *name, prov_pacer *p, int n)
{
    double *per = calloc((size_t)n, sizeof(*per));
    if (per == NULL)
        return 1;
    for (int i = 0; i < n; i++) {
        struct timespec gap = {0, 2 * 1000 * 1000}; /* the 1 ms window of the last batch ends */
        nanosleep(&gap, NULL);
        uint64_t wait = 0, t = prov_pacer_now_ms(p), sent[BATCH], done[BATCH];
        unsigned got = 0;
        double t0 = now_us();
        if (prov_pacer_acquire_n(p, "LTAIbench", "swas", "CreateCustomImage", BATCH, 1, t, BATCH,
                                 &got, &wait) < 0 ||
            got != BATCH)
            return fprintf(stderr, "%s: batch acquire failed (%u slots)\n", name, got), 1;
        for (int k = 0; k < BATCH; k++) {
            sent[k] = t;
            done[k] = t + 1;
        }
        if (prov_pacer_settle_n(p, "LTAIbench", "swas", "CreateCustomImage", 1, sent, done, BATCH) <
            0)
            return fprintf(stderr, "%s: batch settle failed\n", name), 1;
        per[i] = now_us() - t0;
    }
    qsort(per, (size_t)n, sizeof(*per), cmp);
    printf("%-6s batch of %d: acquire_n + settle_n median %7.0f us  p99 %7.0f us | per call "
           "%7.0f us\n",
           name, BATCH, per[n / 2], per[n * 99 / 100], per[n / 2] / BATCH);
    free(per);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return fprintf(stderr, "usage: bench_pacer N STATE_DIR [ETCD_URL...]\n"), 2;
    int n = atoi(argv[1]);
    prov_pacer *p = NULL;
    if (n < 1 || prov_pacer_open(argv[2], &p) < 0)
        return 1;
    int rc = run("file", p, n);
    if (rc == 0)
        rc = run_batch("file", p, n);
    prov_pacer_free(p);
    if (rc == 0 && argc > 3) {
        if (prov_pacer_open_etcd((const char *const *)argv + 3, (size_t)(argc - 3),
                                 "/imgrecon-bench", 1000, NULL, &p) < 0)
            return 1;
        rc = run("etcd", p, n);
        if (rc == 0)
            rc = run_batch("etcd", p, n);
        prov_pacer_free(p);
    }
    return rc;
}
