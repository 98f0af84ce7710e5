/* The emulator's HTTP front: libmicrohttpd (one thread per connection, so a scripted delay
 * holds only its own connection), request parsing (query, form body, headers), dispatch of
 * both products on one port, authentication, rate limits, faults, the journal and the admin
 * routes under /_emulator/. One mutex guards the world, the limiter, the nonces and the
 * journal. Started by main.c and, in-process, by nothing else: tests run the real binary. */
#ifndef EMU_SERVER_H
#define EMU_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "emu_diag.h"

typedef struct emu_http_config {
    struct sockaddr_storage addr; /* where to listen; port 0 = any free port */
    socklen_t addr_len;
    const char *fixture_name; /* for diagnostics: the file, or "<demo>" */
    const char *fixture;      /* the fixture's YAML, kept for /_emulator/reset */
    size_t fixture_len;
    unsigned rate_calls;       /* default 10 */
    int64_t rate_window_ms;    /* default 60000 */
    int64_t create_delay_ms;   /* default 1000 */
    int64_t list_lag_ms;       /* default 0 */
    int64_t skew_ms;           /* default 15 minutes */
    double fault_rate;         /* default 0 */
    uint64_t seed;             /* default 1 */
    const char *journal_path;  /* NULL = no journal */
    int64_t sts_duration_ms;   /* STS credentials' lifetime; 0 = the request's DurationSeconds */
    const char *metadata_role; /* --metadata ROLE: serve ECS metadata for it; NULL = off */
} emu_http_config;

typedef struct emu_http emu_http;

/* Loads the fixture (errors into diags, -EINVAL), opens the journal and starts listening.
 * Returns 0 and the running server, or a negative errno. cfg's strings must outlive it. */
int emu_http_start(const emu_http_config *cfg, emu_http **ret, emu_diags *diags);
/* The bound port (useful with port 0). */
unsigned emu_http_port(const emu_http *h);
/* Stops accepting, wakes delayed requests, joins the connection threads, flushes and closes
 * the journal and frees everything. Accepts NULL. */
void emu_http_stop(emu_http *h);

#endif
