/* Manifest loading against its floor (issue 17, item 3): the manifests of N images (as
 * bench_plan writes them, one file per 100 regions) are read in one run two ways side by side:
 *   floor  libyaml alone: each file opened and parsed event by event (yaml_parser_parse, then
 *          yaml_event_delete) to the end of the stream;
 *   load   spec_load of the same directory: YAML to the validated desired set.
 * The set is freed outside the clock (the plan goes on to use it). Each run measures both; the
 * figures are medians over the runs, and the ratio is load / floor.
 *
 * Usage: bench_load [N_IMAGES (100000)] [RUNS (5)] */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "bench_gen.h"
#include "spec.h"

static size_t floor_file(const char *path)
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

static double time_floor(const char *dir, size_t files, size_t *ret_events)
{
    double t0 = bench_now_ms();
    size_t events = 0;
    for (size_t i = 0; i < files; i++) {
        char path[600];
        snprintf(path, sizeof(path), "%s/inventory-%05zu.yaml", dir, i);
        events += floor_file(path);
    }
    *ret_events = events;
    return bench_now_ms() - t0;
}

static double time_load(const char *dir, size_t *ret_images)
{
    spec_diags diags;
    spec_diags_init(&diags);
    spec_set *set = NULL;
    const char *paths[] = {dir};
    double t0 = bench_now_ms();
    int rc = spec_load(paths, 1, &set, &diags);
    double t = bench_now_ms() - t0;
    if (rc != 0) {
        spec_diags_print(&diags, stderr);
        exit(1);
    }
    *ret_images = set->n_images;
    spec_diags_free(&diags);
    spec_set_free(set);
    return t;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
    size_t runs = argc > 2 ? strtoul(argv[2], NULL, 10) : 5;
    if (n == 0 || runs == 0 || runs > 100) {
        fprintf(stderr, "usage: bench_load [N_IMAGES] [RUNS (1-100)]\n");
        return 2;
    }
    char dir[] = "/tmp/imgrecon-bench-load-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    size_t regions = bench_write_manifests(dir, n);
    size_t files = (regions + 99) / 100, events = 0, images = 0;
    double *tf = calloc(runs, sizeof(*tf)), *tl = calloc(runs, sizeof(*tl));
    if (tf == NULL || tl == NULL)
        return 1;
    /* One untimed round of each warms the page cache and the allocator alike. */
    (void)time_floor(dir, files, &events);
    (void)time_load(dir, &images);
    for (size_t i = 0; i < runs; i++) {
        tf[i] = time_floor(dir, files, &events);
        tl[i] = time_load(dir, &images);
        printf("run %zu  floor_ms %.1f  load_ms %.1f\n", i + 1, tf[i], tl[i]);
    }
    double mf = bench_median(tf, runs), ml = bench_median(tl, runs);
    printf("images %zu  files %zu  events %zu  runs %zu\n", images, files, events, runs);
    printf("median  floor_ms %.1f  load_ms %.1f  ratio %.2f\n", mf, ml, ml / mf);
    free(tf);
    free(tl);
    for (size_t i = 0; i < files; i++) {
        char path[600];
        snprintf(path, sizeof(path), "%s/inventory-%05zu.yaml", dir, i);
        unlink(path);
    }
    return rmdir(dir) == 0 ? 0 : 1;
}
