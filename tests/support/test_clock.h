/* The tests' clock: milliseconds on CLOCK_MONOTONIC as uint64_t (an int wraps after 24 days of
 * uptime), and the time left to a deadline clamped for poll(2). Used by every test that waits
 * with a deadline. */
#ifndef TEST_CLOCK_H
#define TEST_CLOCK_H

#include <stdint.h>

/* Milliseconds on the monotonic clock. */
uint64_t test_clock_ms(void);
/* Milliseconds from now until deadline (a test_clock_ms() value), 0 when it has passed, at most
 * INT_MAX: the timeout argument of poll(2). */
int test_clock_left(uint64_t deadline);

#endif
