/* Internal to provider/: the JSON-level call that prov_call.c implements and the typed
 * operations (prov_swas.c) and prov_call (raw) build on. */
#ifndef PROV_CALL_INT_H
#define PROV_CALL_INT_H

#include "prov_client.h"
#include "prov_http.h"

typedef struct pcall pcall;

/* body: the parsed answer (borrowed, NULL on error); err NULL on success. */
typedef void (*prov_json_cb)(json_t *body, const prov_error *err, void *ud);

/* Queues one call (RegionId added from region unless params has it). The callback runs once,
 * from the loop, never from inside this function. */
int prov_client_call(prov_client *c, prov_product product, const char *action, const char *region,
                     const prov_kvs *params, prov_json_cb done, void *ud);
/* The configured rate of an action: returns the window in ms and sets *ret_calls. */
uint64_t prov_client_rate_window(const prov_client *c, prov_product product, const char *action,
                                 unsigned *ret_calls);

#endif
