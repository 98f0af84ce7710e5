/* Inputs and clocks shared by the benchmarks (bench_gen.h). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <yaml.h>

#include "bench_gen.h"
#include "prov_jmem.h"

double bench_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

double bench_cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

bench_clock bench_clock_now(void)
{
    return (bench_clock){bench_now_ms(), bench_cpu_ms()};
}

bench_clock bench_clock_since(bench_clock t0)
{
    bench_clock t = bench_clock_now();
    return (bench_clock){t.wall_ms - t0.wall_ms, t.cpu_ms - t0.cpu_ms};
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *v, size_t n)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

size_t bench_write_manifests(const char *dir, size_t n)
{
    size_t regions = (n + BENCH_PER_REGION - 1) / BENCH_PER_REGION;
    FILE *f = NULL;
    size_t written = 0;
    for (size_t r = 0; r < regions; r++) {
        if (r % 100 == 0) {
            if (f != NULL && fclose(f) != 0)
                exit(1);
            char path[512];
            snprintf(path, sizeof(path), "%s/inventory-%05zu.yaml", dir, r / 100);
            f = fopen(path, "w");
            if (f == NULL) {
                perror(path);
                exit(1);
            }
        } else {
            fputs("---\n", f);
        }
        fprintf(f, "region: bench-r%05zu\ncustom_images:\n", r);
        for (size_t i = 0; i < BENCH_PER_REGION && written < n; i++, written++)
            fprintf(f,
                    "  - name: img-%05zu-%02zu\n"
                    "    instance_id: ace0706b2ac4454d984295a9%08zu\n"
                    "    system_snapshot_id: s-sys%08zu\n"
                    "    description: benchmark image %zu\n"
                    "    tags: {team: bench, tier: t%zu}\n"
                    "    share_to_ecs: %s\n",
                    r, i, r, r, written, i % 3, i % 2 ? "true" : "false");
    }
    if (f != NULL && fclose(f) != 0)
        exit(1);
    return regions;
}

char *bench_observed_body(size_t r, size_t n, size_t drift_every, size_t *ret_len)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL)
        exit(1);
    size_t first = r * BENCH_PER_REGION, count = 0;
    fprintf(f, "{\"RequestId\":\"B\",\"CustomImages\":[");
    for (size_t i = 0; i < BENCH_PER_REGION && first + i < n; i++, count++) {
        size_t g = first + i;
        int shared = i % 2;
        if (drift_every > 0 && g % drift_every == 0)
            shared = !shared;
        fprintf(f,
                "%s{\"ImageId\":\"m-bench%012zu\",\"Name\":\"img-%05zu-%02zu\",\"Status\":\"1\","
                "\"InShare\":%s,\"InstanceId\":\"ace0706b2ac4454d984295a9%08zu\","
                "\"SystemSnapshotId\":\"s-sys%08zu\",\"Description\":\"benchmark image %zu\","
                "\"RegionId\":\"bench-r%05zu\",\"CreationTime\":\"2026-11-01T00:00:00Z\","
                "\"Tags\":[{\"Key\":\"team\",\"Value\":\"bench\"},{\"Key\":\"tier\",\"Value\":"
                "\"t%zu\"},{\"Key\":\"imgrecon/owner\",\"Value\":\"default\"}]}",
                i ? "," : "", g, r, i, shared ? "true" : "false", r, r, g, r, i % 3);
    }
    fprintf(f, "],\"TotalCount\":\"%zu\",\"PageSize\":\"%d\",\"PageNumber\":\"1\"}", count,
            BENCH_PAGE);
    if (fclose(f) != 0)
        exit(1);
    *ret_len = len;
    return buf;
}

char *bench_slurp(const char *path, size_t *ret_len)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (m == NULL) {
        fclose(f);
        return NULL;
    }
    char chunk[65536];
    size_t k;
    while ((k = fread(chunk, 1, sizeof(chunk), f)) > 0)
        fwrite(chunk, 1, k, m);
    fclose(f);
    if (fclose(m) != 0) {
        free(buf);
        return NULL;
    }
    *ret_len = len;
    return buf;
}

size_t bench_floor_yaml_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        exit(1);
    }
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        exit(1);
    yaml_parser_set_input_file(&p, f);
    size_t events = 0;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            fprintf(stderr, "%s: %s\n", path, p.problem ? p.problem : "YAML error");
            exit(1);
        }
        events++;
        int end = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
        if (end)
            break;
    }
    yaml_parser_delete(&p);
    fclose(f);
    return events;
}

void bench_product_alloc(void)
{
    json_set_alloc_funcs(prov_jmem_malloc, prov_jmem_free);
}

/* The floor runs on libc's malloc and free whatever the bench installed: the blocks of this one
 * document never meet the product's allocator. */
void bench_floor_json(const char *body, size_t len)
{
    json_malloc_t m;
    json_free_t f;
    json_get_alloc_funcs(&m, &f);
    json_set_alloc_funcs(malloc, free);
    json_error_t je;
    json_t *root = json_loadb(body, len, 0, &je);
    if (root == NULL) {
        fprintf(stderr, "floor: %s\n", je.text);
        exit(1);
    }
    json_decref(root);
    json_set_alloc_funcs(m, f);
}
