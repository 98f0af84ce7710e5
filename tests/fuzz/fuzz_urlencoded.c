/* libFuzzer target: the query/form parsers of both sides — the emulator's own (emu_kvs) and the
 * product's (prov_kvs) — each followed by its signature code over whatever it parsed. */
#include <stdint.h>
#include <stdlib.h>

#include "emu_kvs.h"
#include "emu_sig.h"
#include "prov_kvs.h"
#include "prov_sig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The emulator's side: V1 over every parameter, V3 with the SignedHeaders of an
 * "authorization" parameter when there is one. */
static void emulator_side(const uint8_t *data, size_t size)
{
    emu_kvs kvs = {0};
    char *sig = NULL, *sts = NULL, *sh = NULL;
    if (emu_kvs_parse_urlencoded(&kvs, (const char *)data, size) == 0) {
        if (emu_sig_v1("GET", &kvs, "secret", &sig, &sts) == 0) {
            free(sig);
            free(sts);
            sig = sts = NULL;
        }
        const char *authz = emu_kvs_get(&kvs, "authorization");
        if (authz && emu_sig_v3_parse_authorization(authz, NULL, &sh, NULL) == 0 &&
            emu_sig_v3("POST", "/", &kvs, &kvs, sh, "", 0, "secret", &sig, NULL, &sts) == 0) {
            free(sig);
            free(sts);
        }
        free(sh);
    }
    emu_kvs_clear(&kvs);
}

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
    prov_kvs_clear(&kvs);
    emulator_side(data, size);
    return 0;
}
