/* A scripted loopback HTTP server for hostile-answer tests: a thread on 127.0.0.1 (one
 * connection at a time, "Connection: close") answers each request with a step of a script (good
 * JSON, garbage, a cut-off body, no answer, a reset, a big body) or with a dynamic function of the
 * request, and records every request (method, target, decoded query, lowercase headers). Used by
 * tests/integration/client (the cloud client's transport and paging) and test_observe.c (plan and
 * apply against hostile listings). Failures to set it up fail the Criterion test. */
#ifndef TEST_SRV_H
#define TEST_SRV_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "prov_kvs.h"

#define MAX_REQS 64 /* requests recorded; later ones are still answered */

typedef enum act_kind {
    ACT_JSON,     /* status + body, Content-Length exact */
    ACT_TRUNCATE, /* Content-Length 100 more than sent, then close */
    ACT_HANG,     /* no answer; waits until the client gives up (or the server stops) */
    ACT_RESET,    /* SO_LINGER 0 and close: the client sees a reset */
    ACT_BIG,      /* 200 with a valid JSON object of `size` bytes */
} act_kind;

typedef struct step {
    act_kind kind;
    int status;
    const char *body;
    size_t size;
} step;

typedef struct req_rec {
    char method[8];
    char *target;
    prov_kvs query;   /* decoded */
    prov_kvs headers; /* lowercase names */
    int64_t at_ms;    /* monotonic, when the request was read */
} req_rec;

typedef struct srv srv;
/* A dynamic answer: sets *status, returns a malloc'd body. */
typedef char *(*dyn_fn)(const req_rec *r, int *status);

struct srv {
    int lfd, stop_r, stop_w;
    unsigned port;
    pthread_t th;
    bool running;
    pthread_mutex_t mu;
    step steps[8]; /* request i gets steps[min(i, n_steps - 1)] */
    size_t n_steps;
    dyn_fn dyn; /* when set, used instead of steps */
    req_rec reqs[MAX_REQS];
    size_t n_reqs;
};

/* Starts the server on an ephemeral loopback port (s->port). */
void srv_start(srv *s);
/* Stops the thread, closes the sockets and frees the recorded requests. Safe to call twice. */
void srv_stop(srv *s);
/* Requests recorded so far. */
size_t srv_count(srv *s);
/* Replaces the script: request i gets steps[min(i, n - 1)]; n at most 8. */
void srv_script(srv *s, const step *steps, size_t n);

#define SCRIPT(s, ...)                                                                             \
    do {                                                                                           \
        const step steps_[] = {__VA_ARGS__};                                                       \
        srv_script((s), steps_, sizeof(steps_) / sizeof(steps_[0]));                               \
    } while (0)

#endif
