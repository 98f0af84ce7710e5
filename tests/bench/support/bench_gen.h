/* Inputs and clocks shared by the benchmarks (bench_gen.c): the manifests and the
 * ListCustomImages answers of a large inventory, written the same way by every bench so their
 * figures compare, and a monotonic clock and a median. */
#ifndef BENCH_GEN_H
#define BENCH_GEN_H

#include <stddef.h>

#define BENCH_PER_REGION 15 /* images per region, like the real quota */
#define BENCH_PAGE 100      /* the PageSize the answers carry */

/* Milliseconds on the monotonic clock. */
double bench_now_ms(void);

/* Milliseconds of CPU time this process has used: on a machine shared with other work it moves
 * less than the wall clock, since time spent waiting for a core is not counted. */
double bench_cpu_ms(void);

/* A point in time on both clocks, and the time since one. */
typedef struct bench_clock {
    double wall_ms;
    double cpu_ms;
} bench_clock;
bench_clock bench_clock_now(void);
bench_clock bench_clock_since(bench_clock t0);

/* The median of v (sorted in place). */
double bench_median(double *v, size_t n);

/* Writes manifests for n images into dir (one file per 100 regions: inventory-NNNNN.yaml).
 * Returns the number of regions; exits on an I/O error (a bench has no way to go on). */
size_t bench_write_manifests(const char *dir, size_t n);

/* Region r's ListCustomImages answer for an inventory of n images; drift_every > 0 flips InShare
 * on every Nth image. Caller frees; *ret_len is its length. Exits when out of memory. */
char *bench_observed_body(size_t r, size_t n, size_t drift_every, size_t *ret_len);

/* Reads a whole file; NULL on error. Caller frees. */
char *bench_slurp(const char *path, size_t *ret_len);

/* The floors the product's load and parse are measured against: libyaml alone, pulling every
 * event of the file at path to the end of the stream (returns the number of events), and a bare
 * json_loadb (flags 0) of one answer, then json_decref, on libc's malloc and free. Both exit on
 * an error. */
size_t bench_floor_yaml_file(const char *path);
void bench_floor_json(const char *body, size_t len);

/* Installs the jansson allocator imgrecon runs on (prov_jmem.h: arenas for answers, wiping), as
 * cmd/main.c does, so the product's side of a bench pays what it pays in the product. Call before
 * any json_t exists. */
void bench_product_alloc(void);

#endif
