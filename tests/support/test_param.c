/* See test_param.h. */
#include "test_param.h"

#include <criterion/alloc.h>
#include <criterion/criterion.h>

/* The cleanup Criterion calls once the parameters are no longer needed. */
static void free_indices(struct criterion_test_params *p)
{
    cr_free(p->params);
}

struct criterion_test_params test_param_indices(size_t n)
{
    size_t *idx = cr_malloc(n * sizeof(*idx));
    cr_assert_not_null(idx);
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    return cr_make_param_array(size_t, idx, n, free_indices);
}
