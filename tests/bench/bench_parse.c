/* Observe-answer parsing against its floor (issue 17, item 4): the ListCustomImages answers of N
 * images (15 per region, one page each, as bench_plan writes them) are parsed in memory, in one
 * run, two ways side by side:
 *   floor  a bare json_loadb of each answer (then json_decref);
 *   parse  what the client does: prov_json_load_object (duplicate keys rejected), then
 *          prov_parse_list_images into the region's list, then json_decref.
 * The lists are freed outside the clock (the plan goes on to use them). Each run measures both,
 * on the wall clock and in CPU time (which waiting for a core on a shared machine does not
 * move); the figures are medians over the runs, and the ratios are parse / floor.
 *
 * Usage: bench_parse [N_IMAGES (100000)] [RUNS (5)] */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_gen.h"
#include "prov_resp.h"

typedef struct answers {
    char **body;
    size_t *len;
    size_t n;
} answers;

static bench_clock time_floor(const answers *a)
{
    bench_clock t0 = bench_clock_now();
    for (size_t r = 0; r < a->n; r++)
        bench_floor_json(a->body[r], a->len[r]);
    return bench_clock_since(t0);
}

static bench_clock time_parse(const answers *a, prov_image_list *lists)
{
    bench_clock t0 = bench_clock_now();
    for (size_t r = 0; r < a->n; r++) {
        json_t *root = prov_json_load_object(a->body[r], a->len[r]);
        if (root == NULL || prov_parse_list_images(root, &lists[r], NULL) != 0) {
            fprintf(stderr, "parse: answer %zu rejected\n", r);
            exit(1);
        }
        json_decref(root);
    }
    bench_clock t = bench_clock_since(t0);
    for (size_t r = 0; r < a->n; r++)
        prov_image_list_clear(&lists[r]);
    return t;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
    size_t runs = argc > 2 ? strtoul(argv[2], NULL, 10) : 5;
    if (n == 0 || runs == 0 || runs > 100) {
        fprintf(stderr, "usage: bench_parse [N_IMAGES] [RUNS (1-100)]\n");
        return 2;
    }
    bench_product_alloc();
    answers a = {.n = (n + BENCH_PER_REGION - 1) / BENCH_PER_REGION};
    a.body = calloc(a.n, sizeof(*a.body));
    a.len = calloc(a.n, sizeof(*a.len));
    prov_image_list *lists = calloc(a.n, sizeof(*lists));
    double *v = calloc(4 * runs, sizeof(*v)); /* floor wall, parse wall, floor CPU, parse CPU */
    if (a.body == NULL || a.len == NULL || lists == NULL || v == NULL)
        return 1;
    size_t bytes = 0;
    for (size_t r = 0; r < a.n; r++) {
        a.body[r] = bench_observed_body(r, n, 100, &a.len[r]);
        bytes += a.len[r];
    }
    /* One untimed round of each warms the allocator and the caches alike. */
    (void)time_floor(&a);
    (void)time_parse(&a, lists);
    for (size_t i = 0; i < runs; i++) {
        bench_clock f = time_floor(&a), p = time_parse(&a, lists);
        v[i] = f.wall_ms, v[runs + i] = p.wall_ms;
        v[2 * runs + i] = f.cpu_ms, v[3 * runs + i] = p.cpu_ms;
        printf("run %zu  floor_ms %.1f  parse_ms %.1f  (CPU %.1f / %.1f)\n", i + 1, f.wall_ms,
               p.wall_ms, f.cpu_ms, p.cpu_ms);
    }
    double fw = bench_median(v, runs), pw = bench_median(v + runs, runs);
    double fc = bench_median(v + 2 * runs, runs), pc = bench_median(v + 3 * runs, runs);
    printf("images %zu  answers %zu  bytes %zu  runs %zu\n", n, a.n, bytes, runs);
    printf("median  floor_ms %.1f  parse_ms %.1f  ratio %.2f  cpu_floor_ms %.1f  cpu_parse_ms "
           "%.1f  cpu_ratio %.2f\n",
           fw, pw, pw / fw, fc, pc, pc / fc);
    for (size_t r = 0; r < a.n; r++)
        free(a.body[r]);
    free(a.body);
    free(a.len);
    free(lists);
    free(v);
    return 0;
}
