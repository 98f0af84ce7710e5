/* libFuzzer target: the etcd answer parser (provider/prov_etcd.c) must accept arbitrary bytes
 * for every operation without crashing or leaking. */
#include <stdint.h>
#include <stdlib.h>

#include "prov_etcd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const prov_etcd_op ops[] = {PROV_ETCD_GRANT, PROV_ETCD_KEEPALIVE, PROV_ETCD_RANGE,
                                       PROV_ETCD_TXN};
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        prov_etcd_result r;
        prov_etcd_parse(ops[i], 200, (const char *)data, size, &r);
        prov_etcd_result_clear(&r);
    }
    return 0;
}
