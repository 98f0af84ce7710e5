/* Criterion parameters for the tables of cases: a ParameterizedTest's parameter is copied into
 * the process that runs the test, and the pointers of a row (its strings) do not survive that
 * copy, so a test over a table of such rows takes its row's index and reads the row itself. */
#ifndef TEST_PARAM_H
#define TEST_PARAM_H

#include <criterion/parameterized.h>
#include <stddef.h>

/* The parameters 0 to n - 1 (size_t), for ParameterizedTestParameters over a table of n rows;
 * Criterion frees them (cr_malloc'd, as it requires). */
struct criterion_test_params test_param_indices(size_t n);

#endif
