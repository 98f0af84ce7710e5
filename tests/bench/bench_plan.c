/* Plan-scale benchmark (issue 8, item 3): how long load + diff + plan + render take for a large
 * inventory, and the peak RSS. Observe is answered from files: for each region the bench writes
 * the ListCustomImages answer a real account would give (PageSize 100 pages, counters as
 * strings) and parses them with the real response parser, so parsing cost is included.
 *
 * Usage: bench_plan N_IMAGES [DRIFT_PERCENT]   (15 images per region, like the real quota)
 * Prints one line per phase with milliseconds, then the peak RSS. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "prov_resp.h"
#include "rec_diff.h"
#include "rec_plan.h"
#include "rec_render.h"
#include "spec.h"

#define PER_REGION 15
#define PAGE 100

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static long peak_rss_kib(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1;
    return ru.ru_maxrss;
}

/* Writes the manifests (one file per 100 regions) and returns the number of regions. */
static size_t write_manifests(const char *dir, size_t n)
{
    size_t regions = (n + PER_REGION - 1) / PER_REGION;
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
        for (size_t i = 0; i < PER_REGION && written < n; i++, written++)
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

/* Writes region r's ListCustomImages answer; drift_every > 0 flips InShare on every Nth image. */
static void write_observed(const char *dir, size_t r, size_t n, size_t drift_every)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/obs-%05zu.json", dir, r);
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        perror(path);
        exit(1);
    }
    size_t first = r * PER_REGION, count = 0;
    fprintf(f, "{\"RequestId\":\"B\",\"CustomImages\":[");
    for (size_t i = 0; i < PER_REGION && first + i < n; i++, count++) {
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
    fprintf(f, "],\"TotalCount\":\"%zu\",\"PageSize\":\"%d\",\"PageNumber\":\"1\"}", count, PAGE);
    if (fclose(f) != 0)
        exit(1);
}

static char *slurp(const char *path, size_t *ret_len)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    char chunk[65536];
    size_t k;
    while ((k = fread(chunk, 1, sizeof(chunk), f)) > 0)
        fwrite(chunk, 1, k, m);
    fclose(f);
    fclose(m);
    *ret_len = len;
    return buf;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_plan N_IMAGES [DRIFT_PERCENT]\n");
        return 2;
    }
    size_t n = strtoul(argv[1], NULL, 10);
    double drift = argc > 2 ? atof(argv[2]) : 1.0;
    size_t drift_every = drift > 0 ? (size_t)(100.0 / drift) : 0;
    char dir[] = "/tmp/imgrecon-bench-plan-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    char mdir[600], odir[600];
    snprintf(mdir, sizeof(mdir), "%s/manifests", dir);
    snprintf(odir, sizeof(odir), "%s/observed", dir);
    if (mkdir(mdir, 0700) != 0 || mkdir(odir, 0700) != 0)
        return 1;
    size_t regions = write_manifests(mdir, n);
    for (size_t r = 0; r < regions; r++)
        write_observed(odir, r, n, drift_every);
    long rss_before = peak_rss_kib();

    /* load */
    double t0 = now_ms();
    spec_diags diags;
    spec_diags_init(&diags);
    spec_set *set = NULL;
    const char *paths[] = {mdir};
    if (spec_load(paths, 1, &set, &diags) != 0) {
        spec_diags_print(&diags, stderr);
        return 1;
    }
    spec_diags_clear(&diags);
    double t_load = now_ms() - t0;

    /* observe from files through the real parser */
    t0 = now_ms();
    rec_observed obs = {0};
    for (size_t r = 0; r < regions; r++) {
        char path[700], name[32];
        snprintf(path, sizeof(path), "%s/obs-%05zu.json", odir, r);
        snprintf(name, sizeof(name), "bench-r%05zu", r);
        size_t len = 0;
        char *body = slurp(path, &len);
        rec_region_obs *ro = NULL;
        unsigned total = 0;
        if (body == NULL || rec_observed_add_region(&obs, name, &ro) != 0 ||
            prov_parse_list_images(body, len, &ro->images, &total) != 0) {
            fprintf(stderr, "observe %s failed\n", name);
            return 1;
        }
        free(body);
    }
    double t_observe = now_ms() - t0;

    /* diff + plan */
    t0 = now_ms();
    rec_options opts;
    rec_options_init(&opts);
    opts.create_wait_ms = 60000;
    rec_plan *plan = NULL;
    char *err = NULL;
    int rc = rec_plan_build(set, &obs, &opts, &plan, &err);
    if (rc != 0) {
        fprintf(stderr, "plan: %s\n", err ? err : strerror(-rc));
        return 1;
    }
    double t_plan = now_ms() - t0;

    /* render */
    t0 = now_ms();
    FILE *devnull = fopen("/dev/null", "w");
    if (devnull == NULL || rec_render_text(plan, devnull, 0) != 0)
        return 1;
    fclose(devnull);
    double t_text = now_ms() - t0;
    t0 = now_ms();
    char *json = rec_render_json(plan, false);
    if (json == NULL)
        return 1;
    double t_json = now_ms() - t0;

    printf("images %zu  regions %zu  drift %.1f%%  changes %zu  steps %zu\n", n, regions, drift,
           rec_plan_n_changes(plan), plan->n_steps);
    printf("load_ms %.1f  observe_parse_ms %.1f  plan_ms %.1f  render_text_ms %.1f  "
           "render_json_ms %.1f  total_ms %.1f\n",
           t_load, t_observe, t_plan, t_text, t_json,
           t_load + t_observe + t_plan + t_text + t_json);
    printf("peak_rss_mib %.1f  (after writing inputs %.1f)  json_bytes %zu\n",
           peak_rss_kib() / 1024.0, rss_before / 1024.0, strlen(json));
    free(json);
    rec_plan_free(plan);
    rec_observed_clear(&obs);
    spec_set_free(set);
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : 1;
}
