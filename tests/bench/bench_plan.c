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

#include "bench_gen.h"
#include "prov_resp.h"
#include "rec_diff.h"
#include "rec_plan.h"
#include "rec_render.h"
#include "spec.h"

/* Writes region r's answer into dir/obs-NNNNN.json, so observe parsing starts from files. */
static void write_observed(const char *dir, size_t r, size_t n, size_t drift_every)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/obs-%05zu.json", dir, r);
    size_t len = 0;
    char *body = bench_observed_body(r, n, drift_every, &len);
    FILE *f = fopen(path, "w");
    if (f == NULL || fwrite(body, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
    free(body);
}

static long peak_rss_kib(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1;
    return ru.ru_maxrss;
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
    size_t regions = bench_write_manifests(mdir, n);
    for (size_t r = 0; r < regions; r++)
        write_observed(odir, r, n, drift_every);
    long rss_before = peak_rss_kib();

    /* load */
    double t0 = bench_now_ms();
    spec_diags diags;
    spec_diags_init(&diags);
    spec_set *set = NULL;
    const char *paths[] = {mdir};
    if (spec_load(paths, 1, &set, &diags) != 0) {
        spec_diags_print(&diags, stderr);
        return 1;
    }
    spec_diags_clear(&diags);
    double t_load = bench_now_ms() - t0;

    /* observe from files through the real parser */
    t0 = bench_now_ms();
    rec_observed obs = {0};
    for (size_t r = 0; r < regions; r++) {
        char path[700], name[32];
        snprintf(path, sizeof(path), "%s/obs-%05zu.json", odir, r);
        snprintf(name, sizeof(name), "bench-r%05zu", r);
        size_t len = 0;
        char *body = bench_slurp(path, &len);
        rec_region_obs *ro = NULL;
        unsigned total = 0;
        json_t *root = body != NULL ? prov_json_load_object(body, len) : NULL;
        if (root == NULL || rec_observed_add_region(&obs, name, &ro) != 0 ||
            prov_parse_list_images(root, &ro->images, &total) != 0) {
            fprintf(stderr, "observe %s failed\n", name);
            return 1;
        }
        json_decref(root);
        free(body);
    }
    double t_observe = bench_now_ms() - t0;

    /* diff + plan */
    t0 = bench_now_ms();
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
    double t_plan = bench_now_ms() - t0;

    /* render */
    t0 = bench_now_ms();
    FILE *devnull = fopen("/dev/null", "w");
    if (devnull == NULL || rec_render_text(plan, devnull, 0) != 0)
        return 1;
    fclose(devnull);
    double t_text = bench_now_ms() - t0;
    t0 = bench_now_ms();
    char *json = rec_render_json(plan, false);
    if (json == NULL)
        return 1;
    double t_json = bench_now_ms() - t0;

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
