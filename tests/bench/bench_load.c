/* Manifest loading against its floor (issue 17, item 3): the manifests of N images (as
 * bench_plan writes them, one file per 100 regions) are read in one run three ways side by side:
 *   floor  libyaml alone: each file opened and parsed event by event (yaml_parser_parse, then
 *          yaml_event_delete) to the end of the stream, on one thread;
 *   load   spec_load_threads(..., 1): YAML to the validated desired set on one thread, the
 *          like-for-like comparison with the floor;
 *   par    spec_load as the commands call it: on one thread per CPU once the files hold
 *          SPEC_LOAD_PARALLEL_BYTES (its CPU time counts every thread).
 * The set is freed outside the clock (the plan goes on to use it). Each run measures both, on
 * the wall clock and in CPU time (which waiting for a core on a shared machine does not move);
 * the figures are medians over the runs, and the ratios are load / floor.
 *
 * Usage: bench_load [N_IMAGES (100000)] [RUNS (5)] [floor|load|par]
 * The third argument runs one side only, for a profiler (perf stat -e instructions:u, perf
 * record); the other sides' figures are then 0. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench_gen.h"
#include "spec.h"

static bench_clock time_floor(const char *dir, size_t files, size_t *ret_events)
{
    bench_clock t0 = bench_clock_now();
    size_t events = 0;
    for (size_t i = 0; i < files; i++) {
        char path[600];
        snprintf(path, sizeof(path), "%s/inventory-%05zu.yaml", dir, i);
        events += bench_floor_yaml_file(path);
    }
    *ret_events = events;
    return bench_clock_since(t0);
}

/* One load of dir on `threads` threads (0: spec_load's choice). */
static bench_clock time_load(const char *dir, unsigned threads, size_t *ret_images)
{
    spec_diags diags;
    spec_diags_init(&diags);
    spec_set *set = NULL;
    const char *paths[] = {dir};
    bench_clock t0 = bench_clock_now();
    int rc = spec_load_threads(paths, 1, threads, &set, &diags);
    bench_clock t = bench_clock_since(t0);
    if (rc != 0) {
        spec_diags_print(&diags, stderr);
        exit(1);
    }
    *ret_images = set->n_images;
    spec_diags_clear(&diags);
    spec_set_free(set);
    return t;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
    size_t runs = argc > 2 ? strtoul(argv[2], NULL, 10) : 5;
    const char *only = argc > 3 ? argv[3] : "";
    bool floor_on = !*only || strcmp(only, "floor") == 0, load_on = !*only || !strcmp(only, "load");
    bool par_on = !*only || strcmp(only, "par") == 0;
    if (n == 0 || runs == 0 || runs > 100 || (*only && !floor_on && !load_on && !par_on)) {
        fprintf(stderr, "usage: bench_load [N_IMAGES] [RUNS (1-100)] [floor|load|par]\n");
        return 2;
    }
    char dir[] = "/tmp/imgrecon-bench-load-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    size_t regions = bench_write_manifests(dir, n);
    size_t files = (regions + 99) / 100, events = 0, images = 0;
    /* Per run: floor, load, par on the wall clock, then the same in CPU time. */
    double *v = calloc(6 * runs, sizeof(*v));
    if (v == NULL)
        return 1;
    /* One untimed round of each warms the page cache and the allocator alike. */
    bench_clock none = {0, 0}, f = none, l = none, p = none;
    if (floor_on)
        (void)time_floor(dir, files, &events);
    if (load_on)
        (void)time_load(dir, 1, &images);
    if (par_on)
        (void)time_load(dir, 0, &images);
    for (size_t i = 0; i < runs; i++) {
        f = floor_on ? time_floor(dir, files, &events) : none;
        l = load_on ? time_load(dir, 1, &images) : none;
        p = par_on ? time_load(dir, 0, &images) : none;
        v[i] = f.wall_ms, v[runs + i] = l.wall_ms, v[2 * runs + i] = p.wall_ms;
        v[3 * runs + i] = f.cpu_ms, v[4 * runs + i] = l.cpu_ms, v[5 * runs + i] = p.cpu_ms;
        printf("run %zu  floor_ms %.1f  load_ms %.1f  par_ms %.1f  (CPU %.1f / %.1f / %.1f)\n",
               i + 1, f.wall_ms, l.wall_ms, p.wall_ms, f.cpu_ms, l.cpu_ms, p.cpu_ms);
    }
    double m[6];
    for (size_t k = 0; k < 6; k++)
        m[k] = bench_median(v + k * runs, runs);
    printf("images %zu  files %zu  events %zu  runs %zu\n", images, files, events, runs);
    printf("median  floor_ms %.1f  load_ms %.1f  ratio %.2f  par_ms %.1f  par_ratio %.2f  "
           "cpu_floor_ms %.1f  cpu_load_ms %.1f  cpu_ratio %.2f  cpu_par_ms %.1f\n",
           m[0], m[1], m[1] / m[0], m[2], m[2] / m[0], m[3], m[4], m[4] / m[3], m[5]);
    free(v);
    for (size_t i = 0; i < files; i++) {
        char path[600];
        snprintf(path, sizeof(path), "%s/inventory-%05zu.yaml", dir, i);
        unlink(path);
    }
    return rmdir(dir) == 0 ? 0 : 1;
}
