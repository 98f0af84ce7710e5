/* Plan-scale benchmark (issue 8, item 3): how long load + diff + plan + render take for a large
 * inventory, and the peak RSS. Observe is answered from files: for each region the bench writes
 * the ListCustomImages answer a real account would give (PageSize 100 pages, counters as
 * strings) and parses them with the real response parser, so parsing cost is included.
 *
 * The product receives those answers from the network into memory, so reading the files is not
 * product work: it is its own phase ("read"), timed but left out of the total, and the parse
 * phase starts from the answers in memory, as bench_parse does. Until issue 17 item 4 the parse
 * column included the read; parse + read (and total + read) compare with those figures.
 * Every phase is timed on the wall clock and in CPU time (cpu_*), which waiting for a core on a
 * shared machine does not move.
 *
 * After the product's phases (and outside the total), the same run times the two floors of
 * bench_load and bench_parse on the same inputs: libyaml's events over the manifests
 * (floor_load) and a bare json_loadb of every answer (floor_parse). A shared machine's speed
 * varies by 2x and more from one run to the next; total / (floor_load + floor_parse) moves much
 * less, and scales a run to another machine's floors.
 *
 * The plan is also timed as apply and the daemon build it, without the fingerprints
 * (plan_nofp, outside the total).
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

/* The answers of every region, read from dir before the parse clock starts. */
typedef struct answers {
    char **body;
    size_t *len;
    size_t n;
} answers;

static void read_answers(const char *dir, answers *a)
{
    for (size_t r = 0; r < a->n; r++) {
        char path[700];
        snprintf(path, sizeof(path), "%s/obs-%05zu.json", dir, r);
        a->body[r] = bench_slurp(path, &a->len[r]);
        if (a->body[r] == NULL) {
            perror(path);
            exit(1);
        }
    }
}

/* Parses every answer into obs with the real response parser, freeing each answer once parsed
 * (the client drops a page once it has its images), so the peak RSS does not count them twice.
 * obs gets one slot per region up front, as rec_observe_start makes them. */
static void parse_answers(answers *a, rec_observed *obs)
{
    obs->regions = calloc(a->n, sizeof(*obs->regions));
    if (obs->regions == NULL)
        exit(1);
    obs->n = a->n;
    for (size_t r = 0; r < a->n; r++) {
        char name[32];
        snprintf(name, sizeof(name), "bench-r%05zu", r);
        rec_region_obs *ro = &obs->regions[r];
        unsigned total = 0;
        json_t *root = prov_json_load_object(a->body[r], a->len[r]);
        if (root == NULL || (ro->region = strdup(name)) == NULL ||
            prov_parse_list_images(root, &ro->images, &total) != 0) {
            fprintf(stderr, "observe %s failed\n", name);
            exit(1);
        }
        json_decref(root);
        free(a->body[r]);
        a->body[r] = NULL;
    }
}

enum {
    PH_LOAD,
    PH_READ,
    PH_PARSE,
    PH_PLAN,
    PH_PLAN_NOFP,
    PH_TEXT,
    PH_JSON,
    PH_FLOOR_LOAD,
    PH_FLOOR_PARSE,
    PH_COUNT
};

/* Prints one line of phase times (prefix "" for the wall clock, "cpu_" for CPU time). The total
 * leaves out the read, the plan without fingerprints and the floors; total_with_read_ms compares
 * with runs before the read was split off; total_per_floors is the total over the sum of the two
 * floors. */
static void print_times(const char *prefix, const double *ms)
{
    double total = ms[PH_LOAD] + ms[PH_PARSE] + ms[PH_PLAN] + ms[PH_TEXT] + ms[PH_JSON];
    printf("%sload_ms %.1f  %sobserve_read_ms %.1f  %sobserve_parse_ms %.1f  %splan_ms %.1f  "
           "%srender_text_ms %.1f  %srender_json_ms %.1f  %stotal_ms %.1f  "
           "%stotal_with_read_ms %.1f  %sfloor_load_ms %.1f  %sfloor_parse_ms %.1f  "
           "%stotal_per_floors %.2f  %splan_nofp_ms %.1f\n",
           prefix, ms[PH_LOAD], prefix, ms[PH_READ], prefix, ms[PH_PARSE], prefix, ms[PH_PLAN],
           prefix, ms[PH_TEXT], prefix, ms[PH_JSON], prefix, total, prefix, total + ms[PH_READ],
           prefix, ms[PH_FLOOR_LOAD], prefix, ms[PH_FLOOR_PARSE], prefix,
           total / (ms[PH_FLOOR_LOAD] + ms[PH_FLOOR_PARSE]), prefix, ms[PH_PLAN_NOFP]);
}

/* The floors over the same inputs, after the product is done (bench_gen.h): libyaml over the
 * manifests, then json_loadb over the answers (read again, outside the clock). */
static void time_floors(const char *mdir, const char *odir, size_t regions, double *wall,
                        double *cpu)
{
    bench_clock t0 = bench_clock_now();
    for (size_t i = 0; i < (regions + 99) / 100; i++) {
        char path[700];
        snprintf(path, sizeof(path), "%s/inventory-%05zu.yaml", mdir, i);
        (void)bench_floor_yaml_file(path);
    }
    bench_clock t = bench_clock_since(t0);
    wall[PH_FLOOR_LOAD] = t.wall_ms, cpu[PH_FLOOR_LOAD] = t.cpu_ms;
    answers a = {.n = regions};
    a.body = calloc(regions, sizeof(*a.body));
    a.len = calloc(regions, sizeof(*a.len));
    if (a.body == NULL || a.len == NULL)
        exit(1);
    read_answers(odir, &a);
    t0 = bench_clock_now();
    for (size_t r = 0; r < regions; r++)
        bench_floor_json(a.body[r], a.len[r]);
    t = bench_clock_since(t0);
    wall[PH_FLOOR_PARSE] = t.wall_ms, cpu[PH_FLOOR_PARSE] = t.cpu_ms;
    for (size_t r = 0; r < regions; r++)
        free(a.body[r]);
    free(a.body);
    free(a.len);
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
    bench_product_alloc();
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
    double wall[PH_COUNT], cpu[PH_COUNT];
    bench_clock t0, t;

    /* load */
    t0 = bench_clock_now();
    spec_diags diags;
    spec_diags_init(&diags);
    spec_set *set = NULL;
    const char *paths[] = {mdir};
    if (spec_load(paths, 1, &set, &diags) != 0) {
        spec_diags_print(&diags, stderr);
        return 1;
    }
    spec_diags_clear(&diags);
    t = bench_clock_since(t0);
    wall[PH_LOAD] = t.wall_ms, cpu[PH_LOAD] = t.cpu_ms;

    /* read the answers into memory (not product work: left out of the total) */
    answers a = {.n = regions};
    a.body = calloc(regions, sizeof(*a.body));
    a.len = calloc(regions, sizeof(*a.len));
    if (a.body == NULL || a.len == NULL)
        return 1;
    t0 = bench_clock_now();
    read_answers(odir, &a);
    t = bench_clock_since(t0);
    wall[PH_READ] = t.wall_ms, cpu[PH_READ] = t.cpu_ms;

    /* observe: the answers through the real parser */
    t0 = bench_clock_now();
    rec_observed obs = {0};
    parse_answers(&a, &obs);
    t = bench_clock_since(t0);
    wall[PH_PARSE] = t.wall_ms, cpu[PH_PARSE] = t.cpu_ms;
    free(a.body);
    free(a.len);

    /* diff + plan */
    t0 = bench_clock_now();
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
    t = bench_clock_since(t0);
    wall[PH_PLAN] = t.wall_ms, cpu[PH_PLAN] = t.cpu_ms;

    /* the same plan as apply and the daemon build it: without the fingerprints, which only the
     * plan document shows (not in the total) */
    t0 = bench_clock_now();
    opts.skip_fingerprints = true;
    rec_plan *plan_nofp = NULL;
    if (rec_plan_build(set, &obs, &opts, &plan_nofp, NULL) != 0 ||
        plan_nofp->n_steps != plan->n_steps)
        return 1;
    rec_plan_free(plan_nofp);
    t = bench_clock_since(t0);
    wall[PH_PLAN_NOFP] = t.wall_ms, cpu[PH_PLAN_NOFP] = t.cpu_ms;

    /* render */
    t0 = bench_clock_now();
    FILE *devnull = fopen("/dev/null", "w");
    if (devnull == NULL || rec_render_text(plan, devnull, 0) != 0)
        return 1;
    fclose(devnull);
    t = bench_clock_since(t0);
    wall[PH_TEXT] = t.wall_ms, cpu[PH_TEXT] = t.cpu_ms;
    t0 = bench_clock_now();
    char *json = rec_render_json(plan, false);
    if (json == NULL)
        return 1;
    t = bench_clock_since(t0);
    wall[PH_JSON] = t.wall_ms, cpu[PH_JSON] = t.cpu_ms;

    long rss_peak = peak_rss_kib(); /* before the floors, which hold less */
    size_t n_changes = rec_plan_n_changes(plan), n_steps = plan->n_steps, json_bytes = strlen(json);
    free(json);
    rec_plan_free(plan);
    rec_observed_clear(&obs);
    spec_set_free(set);
    time_floors(mdir, odir, regions, wall, cpu);

    printf("images %zu  regions %zu  drift %.1f%%  changes %zu  steps %zu\n", n, regions, drift,
           n_changes, n_steps);
    print_times("", wall);
    print_times("cpu_", cpu);
    printf("peak_rss_mib %.1f  (after writing inputs %.1f)  json_bytes %zu\n", rss_peak / 1024.0,
           rss_before / 1024.0, json_bytes);
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : 1;
}
