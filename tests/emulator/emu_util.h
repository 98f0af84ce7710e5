/* Small helpers shared by the emulator's modules: strings, clocks, parameter parsing. */
#ifndef EMU_UTIL_H
#define EMU_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* strdup that accepts NULL (and then returns NULL). */
char *emu_strdup(const char *s);
/* Wall clock and monotonic clock in milliseconds. */
int64_t emu_now_ms(void);
int64_t emu_mono_ms(void);
/* splitmix64 step: the emulator's seeded PRNG for ids, request ids and random faults. */
uint64_t emu_rand_next(uint64_t *state);

/* True for the common and signing parameters that are not the operation's own (Action,
 * Version, Format, AccessKeyId, Signature*, Timestamp, SecurityToken, ...). The journal leaves
 * them out and the ClientToken fingerprint ignores them. */
bool emu_is_common_param(const char *key);

/* "true"/"false" in any case. Returns 0 or -EINVAL. */
int emu_parse_bool(const char *s, bool *ret);
/* A decimal integer in [min, max] with nothing else. Returns 0 or -EINVAL. */
int emu_parse_long(const char *s, long min, long max, long *ret);
/* A list parameter as the API accepts it: a JSON array of strings ('["a","b"]') or a
 * comma-separated list ("a,b"). Empty items are skipped. Returns 0 and a malloc'd array of
 * malloc'd strings, -EINVAL when the JSON is malformed, -ENOMEM. */
int emu_parse_list(const char *s, char ***ret, size_t *ret_n);
void emu_strv_free(char **v, size_t n);

/* The command line's durations: a positive integer with a unit ms, s, m or h ("500ms", "6s").
 * Returns 0 and milliseconds, or -EINVAL. */
int emu_parse_duration(const char *s, int64_t *ret_ms);
/* A rate "N/DUR" (N calls per window, 1 to 1,000,000). Returns 0 or -EINVAL. */
int emu_parse_rate(const char *s, unsigned *ret_calls, int64_t *ret_window_ms);

/* 32 random hex digits as an uppercase UUID "8-4-4-4-12" from the given PRNG state. */
void emu_request_id(uint64_t *state, char out[37]);

#endif
