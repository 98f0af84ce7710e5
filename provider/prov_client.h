/* The Alibaba Cloud client: builds, signs, paces, sends and retries RPC calls, and parses the
 * answers of the five SWAS/ECS operations imgrecon uses into C structs. Everything is
 * asynchronous on the caller's libuv loop; each callback runs exactly once. */
#ifndef PROV_CLIENT_H
#define PROV_CLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include <uv.h>

#include "prov_cred.h"
#include "prov_kvs.h"
#include "prov_pacer.h"
#include "prov_types.h"

/* PROV_STS only appears in events: the credentials chain's STS calls (prov_cred_opts.on_call),
 * reported alongside the client's so that call counts match what the account saw. */
typedef enum prov_product { PROV_SWAS = 0, PROV_ECS = 1, PROV_STS = 2 } prov_product;

const char *prov_product_name(prov_product p);    /* "swas", "ecs" */
const char *prov_product_version(prov_product p); /* "2020-06-01", "2014-05-26" */

/* Reported once per HTTP attempt, for logs, metrics and progress. */
typedef struct prov_call_event {
    prov_product product;
    const char *action;
    const char *region;
    unsigned attempt; /* 1-based */
    long http_status; /* 0: no answer */
    const char *code; /* API Code, NULL on success */
    const char *request_id;
    prov_err_class cls; /* PROV_ERR_NONE on success */
    uint64_t duration_ms;
    uint64_t retry_in_ms; /* >0 when the client will retry after this delay */
} prov_call_event;

typedef struct prov_client_opts {
    const char *endpoint; /* NULL: https://swas.<region>.aliyuncs.com etc.; else one base URL */
    int signature;        /* 3 (default when 0) or 1 */
    const char *method;   /* "POST" (default, parameters in the query) or "GET" */
    const prov_credential *cred; /* borrowed; must outlive the client */
    /* The pacer's budget key: the account id (DESIGN.md "Pacing"); NULL or "": the access key
     * id. Borrowed; read at every call, so its owner may fill it in prepare. */
    const char *pacer_key;
    /* Called before a call is sent when cred is a temporary credential within its refresh
     * margin (prov_cred_needs_refresh); replaces *cred in place and returns 0, or a negative
     * errno (the owner logs it). After a failure it is tried again at most once a second; calls
     * go on with the old credential while it is valid and wait once it has expired. NULL: no
     * refresh. */
    int (*refresh)(void *ud);
    void *refresh_ud;
    /* Called once, before the first call is sent (e.g. to learn pacer_key). NULL: nothing. */
    void (*prepare)(void *ud);
    void *prepare_ud;
    prov_pacer *pacer; /* borrowed; NULL: unpaced */
    /* Rate for an action (NULL: 10/60s for every action). */
    void (*rate_for)(void *ud, prov_product product, const char *action, unsigned *ret_calls,
                     uint64_t *ret_window_ms);
    void *rate_ud;
    unsigned max_retries;     /* transient retries per call; 0: 5 */
    unsigned max_throttled;   /* throttled retries per call; 0: 10 */
    uint64_t backoff_base_ms; /* 0: 500 */
    uint64_t backoff_max_ms;  /* 0: 30000 */
    long connect_timeout_ms;  /* 0: 5000 */
    long timeout_ms;          /* 0: 30000 */
    size_t max_response;      /* 0: 8 MiB */
    const char *ca_file;
    void (*on_event)(void *ud, const prov_call_event *ev); /* may be NULL */
    void *event_ud;
} prov_client_opts;

typedef struct prov_client prov_client;

int prov_client_new(uv_loop_t *loop, const prov_client_opts *opts, prov_client **ret);
/* Stops starting calls; pending callbacks run with sys = -ECANCELED; handles close on the loop
 * and memory is freed from the last close callback. Accepts NULL. */
void prov_client_close(prov_client *c);
/* Calls queued or in flight. */
size_t prov_client_pending(const prov_client *c);

/* ---- Raw call (imgrecon api) ----
 * body is the parsed JSON answer (borrowed, NULL on error); err is NULL on success. Pacing,
 * throttled cooldowns and bounded transient retries happen inside. */
typedef void (*prov_call_cb)(json_t *body, const prov_error *err, void *ud);
int prov_call(prov_client *c, prov_product product, const char *action, const char *region,
              const prov_kvs *params, prov_call_cb cb, void *ud);

/* ---- Typed operations ---- */

typedef struct prov_list_filter {
    const char *const *image_ids; /* sent as one JSON array string, at most 100 */
    size_t n_image_ids;
    const char *const *image_names;
    size_t n_image_names;
    const char *instance_id;
    const char *system_snapshot_id;
    const char *data_snapshot_id;
    const char *resource_group_id;
    int share; /* -1 unset, 0 only unshared, 1 only shared */
    const prov_kv *tags;
    size_t n_tags;
} prov_list_filter;

/* list is the callee's; the callback may take its contents (then zero it). */
typedef void (*prov_list_cb)(prov_image_list *list, const prov_error *err, void *ud);
/* Every page at PageSize=100. filter may be NULL. */
int prov_swas_list_images(prov_client *c, const char *region, const prov_list_filter *filter,
                          prov_list_cb cb, void *ud);

typedef struct prov_create_req {
    const char *region;
    const char *name;
    const char *instance_id;
    const char *system_snapshot_id;
    const char *data_snapshot_id;  /* NULL: none */
    const char *description;       /* NULL: none */
    const char *resource_group_id; /* NULL: none */
    const prov_tag *tags;
    size_t n_tags;
    const char *client_token;
} prov_create_req;

typedef void (*prov_create_cb)(const char *image_id, const prov_error *err, void *ud);
int prov_swas_create_image(prov_client *c, const prov_create_req *req, prov_create_cb cb, void *ud);

/* err NULL on success; a PROV_ERR_DONE answer (e.g. NotFound on delete) is reported as success
 * with err NULL. */
typedef void (*prov_done_cb)(const prov_error *err, void *ud);
int prov_swas_share_image(prov_client *c, const char *region, const char *image_id, bool share,
                          const char *client_token, prov_done_cb cb, void *ud);
int prov_swas_delete_image(prov_client *c, const char *region, const char *image_id,
                           const char *client_token, prov_done_cb cb, void *ud);

typedef void (*prov_ecs_list_cb)(prov_ecs_image_list *list, const prov_error *err, void *ud);
/* ImageOwnerAlias=self, every status, every page at PageSize=100; image_ids may be NULL. */
int prov_ecs_describe_images(prov_client *c, const char *region, const char *const *image_ids,
                             size_t n_image_ids, prov_ecs_list_cb cb, void *ud);
int prov_ecs_delete_image(prov_client *c, const char *region, const char *image_id, bool force,
                          bool dry_run, prov_done_cb cb, void *ud);

/* ---- Parsers, exposed for tests and fuzz targets ----
 * Each accepts arbitrary bytes and returns 0 or -EPROTO (malformed, truncated, mistyped), never
 * crashing. Counters may be strings ("4") or numbers. */
int prov_parse_list_images(const char *body, size_t len, prov_image_list *append_to,
                           unsigned *ret_total_count);
int prov_parse_ecs_images(const char *body, size_t len, prov_ecs_image_list *append_to,
                          unsigned *ret_total_count);
int prov_parse_create(const char *body, size_t len, char **ret_image_id);
/* Error body {"RequestId","Code","Message",...}; fills code/message/request_id (NULL if absent). */
int prov_parse_error_body(const char *body, size_t len, char **ret_code, char **ret_message,
                          char **ret_request_id);

#endif
