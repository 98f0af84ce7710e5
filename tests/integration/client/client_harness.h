/* The cloud client (prov_client) end to end over real HTTP on a fresh libuv loop per test; the
 * harness shared by the test_client_*.c files of this folder, which build one Criterion binary,
 * integration_test_client. Suite "client": the scripted loopback server (test_srv.h) answers
 * each request with a step of a script (good JSON, garbage, wrong types, a cut-off body, no
 * answer at all, a reset, throttling, 5xx, a permanent 4xx or a body over the size cap) and
 * records every request, so the tests count attempts and check the request's shape and
 * signature (V3 and V1, with the provider's own verifiers) without timing assertions. Suite
 * "emu": round trips of the typed operations against the real emulator. Every wait is bounded
 * by a uv timer that fails the test; uv_loop_close() must succeed. */
#ifndef CLIENT_HARNESS_H
#define CLIENT_HARNESS_H

#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <jansson.h>
#include <uv.h>

#include "emu_proc.h"
#include "prov_client.h"
#include "prov_sig.h"
#include "prov_swas.h"
#include "test_srv.h"

#define KEY "LTAIemulatorDemoKey"
#define SECRET "emulator-demo-secret"
#define BOUND_MS 20000 /* the safety bound of every wait on the loop */

/* One prov_call_event the client reported (the harness's on_event hook). */
typedef struct ev_rec {
    prov_err_class cls;
    long http;
    char code[64];
    char action[48];
    unsigned attempt;
    uint64_t retry_in;
} ev_rec;

/* A loop, a pacer, a client and (use_srv) the scripted server; rate_calls/rate_window are
 * the pacer's budget for every action; ev records the client's events. */
typedef struct harness {
    uv_loop_t loop;
    prov_pacer *pacer;
    prov_client *c;
    prov_credential cred;
    srv s;
    bool use_srv;
    char endpoint[80];
    unsigned rate_calls;
    uint64_t rate_window;
    ev_rec ev[MAX_REQS];
    size_t n_ev;
} harness;

/* The state of run_until_requests. */
typedef struct req_wait {
    harness *h;
    size_t n;
    bool done;
} req_wait;

/* What a callback left. */
typedef struct outcome {
    bool fired;
    int calls;
    bool has_err;
    prov_error err;
    json_t *body;
    prov_image_list list;
    prov_ecs_image_list ecs;
    char image_id[64];
} outcome;

/* A one-image ListCustomImages answer, and a script step that sends it. */
extern const char ok_list[];
/* A Throttling.User answer (status 400). */
extern const char throttled_body[];
#define OK_STEP                                                                                    \
    {                                                                                              \
        ACT_JSON, 200, ok_list, 0                                                                  \
    }

/* s, or dflt when s is NULL. */
const char * or (const char *s, const char *dflt);
/* Options every test starts from: small windows and backoffs, the harness's hooks. */
prov_client_opts base_opts(harness *h);
/* Loop, pacer and (with use_srv) the scripted server; the client comes from h_client. */
void h_init(harness *h, bool use_srv, const char *endpoint);
/* Creates h->c with o (fails the test on error). */
void h_client(harness *h, const prov_client_opts *o);
/* Closes the client, drains the loop and checks that every handle is gone. */
void h_fini(harness *h);
/* The guard timer's callback: fails the test (a wait overstayed BOUND_MS). */
void on_guard(uv_timer_t *t);
/* Runs the loop until *flag, failing the test after BOUND_MS. */
void run_until(harness *h, const bool *flag);
/* Runs the loop until the scripted server has recorded n requests (bounded by BOUND_MS). */
void run_until_requests(harness *h, size_t n);
/* Marks the outcome fired (and counts the call); copies err into it when there is one. */
void keep_err(outcome *o, const prov_error *err);
/* Callbacks of the raw call and the typed operations: each records into the outcome (ud). */
void raw_cb(json_t *body, const prov_error *err, void *ud);
void list_cb(prov_image_list *list, const prov_error *err, void *ud);
void ecs_cb(prov_ecs_image_list *list, const prov_error *err, void *ud);
void create_cb(const char *image_id, const prov_error *err, void *ud);
void done_cb(const prov_error *err, void *ud);
/* Frees what the outcome holds (body, lists, error); the outcome itself is the caller's. */
void outcome_free(outcome *o);
/* One raw ListCustomImages call, run to its callback. */
void raw_list(harness *h, outcome *o);
/* One test against the scripted server: its script (request i gets
 * script[min(i, n_script - 1)], written with H_SCRIPT) and what it changes from the defaults. A
 * zero field keeps the default: base_opts's option, the harness's 10 calls a 1000 ms window. */
typedef struct h_case {
    step script[4];
    size_t n_script;
    unsigned rate_calls;
    uint64_t rate_window;
    unsigned max_retries, max_throttled;
    long timeout_ms;
    int signature;
    size_t max_response;
} h_case;
/* The script fields of an h_case: H_SCRIPT({ACT_RESET, 0, NULL, 0}, OK_STEP). */
#define H_SCRIPT(...)                                                                              \
    .script = {__VA_ARGS__}, .n_script = sizeof((step[]){__VA_ARGS__}) / sizeof(step)
/* h_init with the scripted server, c's script and budget, and h->c from base_opts with c's
 * options: the start of the tests of this area. */
void h_start(harness *h, const h_case *c);
/* h_start, then one raw list into o (which starts zeroed). */
void h_start_raw_list(harness *h, const h_case *c, outcome *o);
/* Frees o and ends h (outcome_free, h_fini): the end of those tests. */
void h_finish(harness *h, outcome *o);
/* Fails the test unless o ended with an error of class cls (says which class it was). */
void expect_failed(const outcome *o, prov_err_class cls);
/* Fails the test unless o ended with a transient error. */
void expect_transient(const outcome *o);
/* Fails the test unless o ended with an error whose errno part is sys. */
void expect_failed_sys(const outcome *o, int sys);
/* Fails the test unless o ended without an error (says which one it was). */
void expect_ok(const outcome *o);
/* Checks the V3 signature of request i with the provider's verifier. */
void expect_v3_signed(srv *s, size_t i, const char *action, const char *version);
/* Checks request i's V1 query (method, action, version, common parameters) and its signature
 * with the provider's verifier. */
void expect_v1_signed(srv *s, size_t i, const char *method, const char *action,
                      const char *version);

#endif
