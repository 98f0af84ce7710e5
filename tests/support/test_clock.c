/* See test_clock.h. */
#include "test_clock.h"

#include <limits.h>
#include <time.h>

uint64_t test_clock_ms(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int test_clock_left(uint64_t deadline)
{
    uint64_t now = test_clock_ms();
    if (now >= deadline)
        return 0;
    return deadline - now > INT_MAX ? INT_MAX : (int)(deadline - now);
}
