/* The daemon's Prometheus endpoint (reconcile/README.md "Daemon"): a mutex-protected registry the
 * loop updates, rendered in the text exposition format (version 0.0.4) on GET /metrics, and GET
 * /healthz (alive) and GET /readyz (ready), served by libmicrohttpd in its own thread on
 * `metrics_listen` (loopback only unless explicitly allowed; port 0 picks a free port and the bound
 * address is reported back). */
#ifndef REC_METRICS_H
#define REC_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct rec_metrics rec_metrics;

int rec_metrics_new(rec_metrics **ret);
/* Stops the server (if any) and frees the registry. Accepts NULL. */
void rec_metrics_free(rec_metrics *m);

/* One cycle ended: imgrecon_reconcile_cycles_total{result} += 1, the duration summary, the
 * imgrecon_drift and imgrecon_pending_steps gauges, and on success the last-success timestamp
 * (now_s, wall clock seconds). */
void rec_metrics_cycle(rec_metrics *m, const char *result, double duration_s, unsigned drift,
                       unsigned pending, bool success, double now_s);
/* imgrecon_conflicts: conflicts in the last plan (gauge). */
void rec_metrics_set_conflicts(rec_metrics *m, unsigned conflicts);
/* imgrecon_item_fights_total += 1: an item we fixed was found undone twice in a row. */
void rec_metrics_fight(rec_metrics *m);
/* One HTTP attempt: imgrecon_api_calls_total{action,code} += 1 (code NULL: "OK"); throttled
 * answers also count in imgrecon_throttled_calls_total{action}. */
void rec_metrics_api_call(rec_metrics *m, const char *action, const char *code, bool throttled);
/* imgrecon_budget_left{action}. */
void rec_metrics_set_budget(rec_metrics *m, const char *action, unsigned left);
/* /healthz answers 200 "ok" when healthy, 503 with the reason otherwise (before the first
 * successful load, while stopping). reason may be NULL. */
void rec_metrics_set_health(rec_metrics *m, bool ok, const char *reason);
/* HA (`ha` configured): imgrecon_ha_role{role,leader} 1 and imgrecon_ha_lease_age_seconds,
 * computed at render time from renewed_ns (CLOCK_BOOTTIME of the last renewal, 0: no lease). */
void rec_metrics_set_ha(rec_metrics *m, const char *role, const char *leader, uint64_t renewed_ns);

/* /readyz answers 200 "ready" while ready, else 503 with reason (one line): the manifests are
 * invalid, no cycle yet, the last cycle failed, stopping. Also the imgrecon_ready gauge. */
void rec_metrics_set_ready(rec_metrics *m, bool ready, const char *reason);
/* imgrecon_manifests_valid: 1 while the manifests load, 0 while they are invalid. */
void rec_metrics_set_manifests(rec_metrics *m, bool valid);
/* imgrecon_items_failing: items backing off after failures plus conflicts. */
void rec_metrics_set_items_failing(rec_metrics *m, unsigned n);
/* One webhook delivery attempt: imgrecon_notify_deliveries_total{result} += 1, and with dropped
 * imgrecon_notify_dropped_total += 1 (queue full, or the last attempt failed). */
void rec_metrics_notify(rec_metrics *m, const char *result, bool dropped);

/* The exposition text (malloc'd). Returns 0 or -ENOMEM. */
int rec_metrics_render(rec_metrics *m, char **ret);

/* Parses "HOST:PORT" or "[V6]:PORT" with a numeric host. Returns 0, -EINVAL when malformed, or
 * -EPERM when the address is not loopback and allow_remote is false. */
int rec_metrics_parse_listen(const char *spec, bool allow_remote, struct sockaddr_storage *ret,
                             socklen_t *ret_len);
/* Binds and starts serving. *ret_bound is the actual "host:port" (malloc'd). Returns 0 or a
 * negative errno (-EINVAL/-EPERM from the parser, -EADDRINUSE, ...). */
int rec_metrics_serve(rec_metrics *m, const char *listen, bool allow_remote, char **ret_bound);
/* Stops serving (joins the server thread). Accepts NULL. */
void rec_metrics_stop(rec_metrics *m);

#endif
