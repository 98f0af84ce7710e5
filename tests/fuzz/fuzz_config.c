/* libFuzzer target: the config loader must turn any bytes into a config or diagnostics. */
#include "fuzz_common.h"
#include "spec_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write_temp(data, size, ".conf.yaml");
    if (path == NULL)
        return 0;
    spec_config cfg;
    spec_diags diags;
    if (spec_config_init(&cfg) < 0)
        return 0;
    spec_diags_init(&diags);
    (void)spec_config_load(&cfg, path, &diags);
    spec_diags_clear(&diags);
    spec_config_clear(&cfg);
    return 0;
}
