/* libFuzzer target: the manifest loader must turn any bytes into a set or diagnostics. */
#include "fuzz_common.h"
#include "spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write_temp(data, size, ".yaml");
    if (path == NULL)
        return 0;
    spec_diags diags;
    spec_set *set = NULL;
    spec_diags_init(&diags);
    if (spec_load(&path, 1, &set, &diags) == 0)
        spec_set_free(set);
    spec_diags_clear(&diags);
    return 0;
}
