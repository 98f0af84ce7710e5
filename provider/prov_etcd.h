/* A small etcd v3 client over etcd's JSON gateway (`/v3/lease/grant`, `/v3/lease/keepalive`,
 * `/v3/lease/revoke`, `/v3/kv/range`, `/v3/kv/txn`, `/v3/kv/deleterange`; keys and values in
 * base64, 64-bit numbers as JSON strings). Used by the daemon's leader election
 * (reconcile/daemon/rec_ha.c, asynchronously on its libuv loop through prov_http) and by the
 * pacer's shared call log (provider/prov_pacer_etcd.c, synchronously: the pacer is loop-free).
 *
 * Several endpoints: a request that gets no answer, or an answer saying the member cannot serve
 * it (HTTP 5xx, gRPC code 14 "unavailable", "no leader"), is sent to the next endpoint, each at
 * most once per request; the endpoint that answered is tried first next time. Every request has
 * its own timeout. Answers are parsed strictly: anything that is not an etcd v3 answer (not
 * JSON, a missing header, a number that is not a decimal string, bad base64) is an error with a
 * clear message, never a crash. */
#ifndef PROV_ETCD_H
#define PROV_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct prov_etcd prov_etcd;

typedef struct prov_etcd_opts {
    const char *const *endpoints; /* "http://10.0.0.1:2379"...; copied */
    size_t n_endpoints;
    long timeout_ms; /* per request and endpoint; 0: 2000 */
    const char *ca_file;
} prov_etcd_opts;

typedef struct prov_etcd_kv {
    char *key;   /* NUL-terminated (keys with NUL bytes are refused as garbage) */
    char *value; /* NUL-terminated; value_len excludes the NUL */
    size_t value_len;
    int64_t create_revision, mod_revision, lease;
} prov_etcd_kv;

/* One answer. err 0: success; else a negative errno and errmsg (always set then). */
typedef struct prov_etcd_result {
    int err;
    char errmsg[256];
    int64_t revision;  /* header.revision */
    bool succeeded;    /* txn only: false for every other op */
    int64_t id, ttl;   /* lease grant/keepalive: ttl 0 means the lease is gone */
    prov_etcd_kv *kvs; /* range, or the first response_range of a txn */
    size_t n_kvs;
} prov_etcd_result;

typedef enum prov_etcd_op {
    PROV_ETCD_GRANT,
    PROV_ETCD_KEEPALIVE,
    PROV_ETCD_REVOKE,
    PROV_ETCD_RANGE,
    PROV_ETCD_TXN,
    PROV_ETCD_DELETE,
} prov_etcd_op;

/* loop NULL: synchronous use only (prov_etcd_call_sync). */
int prov_etcd_new(uv_loop_t *loop, const prov_etcd_opts *opts, prov_etcd **ret);
/* Cancels pending requests (their callbacks run with -ECANCELED) and frees the client once its
 * handles are closed (run the loop afterwards when it had one). Accepts NULL. */
void prov_etcd_close(prov_etcd *e);

/* Request bodies (malloc'd JSON text, caller frees; NULL on allocation failure). */
char *prov_etcd_body_grant(int64_t ttl_s);
char *prov_etcd_body_lease(int64_t id); /* keepalive and revoke */
/* prefix true: every key starting with key. */
char *prov_etcd_body_range(const char *key, bool prefix);
char *prov_etcd_body_delete(const char *key);
/* Puts key=value (with lease, 0: none) when the key's mod_revision equals mod_revision (0: the
 * key must be absent); on failure the txn returns the key as it is (result kvs). */
char *prov_etcd_body_put_if(const char *key, const char *value, int64_t lease,
                            int64_t mod_revision);
/* One conditional put of several keys (without lease): every key is written only when each
 * one's mod_revision equals its mod_revision (0: absent); otherwise nothing is written (the txn
 * answers succeeded false and ranges nothing). The pacer takes or moves a batch of slots so. */
typedef struct prov_etcd_put {
    const char *key;
    const char *value;
    int64_t mod_revision;
} prov_etcd_put;
char *prov_etcd_body_put_all_if(const prov_etcd_put *puts, size_t n);

/* Parses an answer body for op (also used by tests and the fuzzer). Never fails on memory
 * silently: -ENOMEM is reported as such. */
void prov_etcd_parse(prov_etcd_op op, long http_status, const char *body, size_t len,
                     prov_etcd_result *ret);
void prov_etcd_result_clear(prov_etcd_result *r);

typedef void (*prov_etcd_cb)(const prov_etcd_result *res, void *ud);

/* Sends body (borrowed, copied) on the loop; cb runs exactly once from the loop. */
int prov_etcd_call(prov_etcd *e, prov_etcd_op op, const char *body, prov_etcd_cb cb, void *ud);
/* Blocking variant for loop-free callers (the pacer): at most timeout_ms per endpoint. */
void prov_etcd_call_sync(prov_etcd *e, prov_etcd_op op, const char *body, prov_etcd_result *ret);

/* The endpoint that answered last (for logs). */
const char *prov_etcd_endpoint(const prov_etcd *e);

#endif
