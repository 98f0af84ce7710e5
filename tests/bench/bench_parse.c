/* Observe-answer parsing against its floor (issue 17, item 4): the ListCustomImages answers of N
 * images (15 per region, one page each, as bench_plan writes them) are parsed in memory, in one
 * run, two ways side by side:
 *   floor  a bare json_loadb of each answer (then json_decref);
 *   parse  what the client does: prov_json_load_object (duplicate keys rejected), then
 *          prov_parse_list_images into the region's list, then json_decref.
 * The lists are freed outside the clock (the plan goes on to use them). Each run measures both;
 * the figures are medians over the runs, and the ratio is parse / floor.
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

static double time_floor(const answers *a)
{
    double t0 = bench_now_ms();
    for (size_t r = 0; r < a->n; r++) {
        json_error_t je;
        json_t *root = json_loadb(a->body[r], a->len[r], 0, &je);
        if (root == NULL) {
            fprintf(stderr, "floor: answer %zu: %s\n", r, je.text);
            exit(1);
        }
        json_decref(root);
    }
    return bench_now_ms() - t0;
}

static double time_parse(const answers *a, prov_image_list *lists)
{
    double t0 = bench_now_ms();
    for (size_t r = 0; r < a->n; r++) {
        json_t *root = prov_json_load_object(a->body[r], a->len[r]);
        if (root == NULL || prov_parse_list_images(root, &lists[r], NULL) != 0) {
            fprintf(stderr, "parse: answer %zu rejected\n", r);
            exit(1);
        }
        json_decref(root);
    }
    double t = bench_now_ms() - t0;
    for (size_t r = 0; r < a->n; r++)
        prov_image_list_free(&lists[r]);
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
    answers a = {.n = (n + BENCH_PER_REGION - 1) / BENCH_PER_REGION};
    a.body = calloc(a.n, sizeof(*a.body));
    a.len = calloc(a.n, sizeof(*a.len));
    prov_image_list *lists = calloc(a.n, sizeof(*lists));
    double *tf = calloc(runs, sizeof(*tf)), *tp = calloc(runs, sizeof(*tp));
    if (a.body == NULL || a.len == NULL || lists == NULL || tf == NULL || tp == NULL)
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
        tf[i] = time_floor(&a);
        tp[i] = time_parse(&a, lists);
        printf("run %zu  floor_ms %.1f  parse_ms %.1f\n", i + 1, tf[i], tp[i]);
    }
    double mf = bench_median(tf, runs), mp = bench_median(tp, runs);
    printf("images %zu  answers %zu  bytes %zu  runs %zu\n", n, a.n, bytes, runs);
    printf("median  floor_ms %.1f  parse_ms %.1f  ratio %.2f\n", mf, mp, mp / mf);
    for (size_t r = 0; r < a.n; r++)
        free(a.body[r]);
    free(a.body);
    free(a.len);
    free(lists);
    free(tf);
    free(tp);
    return 0;
}
