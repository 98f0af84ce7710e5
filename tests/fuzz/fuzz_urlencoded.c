/* libFuzzer target: the query/form parser the emulator uses for every request, followed by the
 * signature verifiers over whatever it parsed. */
#include <stdint.h>
#include <stdlib.h>

#include "prov_kvs.h"
#include "prov_sig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    prov_kvs kvs = {0};
    char *sts = NULL;
    if (prov_kvs_parse_urlencoded(&kvs, (const char *)data, size) == 0) {
        (void)prov_sig_v1_verify("GET", &kvs, "secret", &sts);
        free(sts);
        sts = NULL;
        const char *authz = prov_kvs_get(&kvs, "authorization");
        if (authz != NULL)
            (void)prov_sig_v3_verify("POST", "/", &kvs, &kvs, "", 0, "secret", &sts);
        free(sts);
    }
    prov_kvs_free(&kvs);
    return 0;
}
