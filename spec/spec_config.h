/* The daemon/CLI config file (DESIGN.md "CLI"): keys defined once in a table with type, default
 * and bounds. Flags are applied over it by cmd/. */
#ifndef SPEC_CONFIG_H
#define SPEC_CONFIG_H

/* Bounds of the daemon's interval, shared by the config key and `run --interval`. */
#define SPEC_INTERVAL_MIN_MS 1000ull
#define SPEC_INTERVAL_MAX_MS 86400000ull

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spec_diag.h"

enum spec_log_format { SPEC_LOG_TEXT = 0, SPEC_LOG_JSON = 1 };
enum spec_signature { SPEC_SIG_V3 = 3, SPEC_SIG_V1 = 1 };

/* At most `calls` calls in any window of `window_ms`. */
typedef struct spec_rate {
    unsigned calls;
    uint64_t window_ms;
} spec_rate;

typedef struct spec_rate_limit {
    char *action;
    spec_rate rate;
} spec_rate_limit;

typedef struct spec_quota {
    char *region;
    unsigned limit;
} spec_quota;

typedef struct spec_config {
    char *owner;      /* value of the imgrecon/owner tag, default "default" */
    char **manifests; /* default {"/var/lib/imgrecon/repo/images"} */
    size_t n_manifests;
    uint64_t interval_ms;   /* default 5m */
    bool prune;             /* default false */
    unsigned max_deletes;   /* default 5 */
    bool allow_empty;       /* default false */
    bool suspend;           /* default false: plan and report, change nothing */
    unsigned quota_default; /* default 15 */
    spec_quota *quotas;     /* per-region overrides from `quotas: {cn-hangzhou: 9}` */
    size_t n_quotas;
    char *state_dir;               /* default /var/lib/imgrecon */
    char *endpoint;                /* NULL: the real per-region endpoints */
    enum spec_signature signature; /* default v3 */
    spec_rate rate_default;        /* default 10/60s */
    spec_rate_limit *rates;        /* per-action overrides */
    size_t n_rates;
    char *metrics_listen; /* default 127.0.0.1:9780; NULL or "" disables */
    enum spec_log_format log_format;
    char *profile; /* credentials profile; NULL: the file's current one */
    char *ca_file; /* extra CA bundle for TLS; NULL: system store */
    /* `ha:` (DESIGN.md "Daemon", HA): several hosts, one leader through an etcd lease. */
    char **ha_endpoints; /* etcd client URLs; n_ha_endpoints 0: no HA */
    size_t n_ha_endpoints;
    uint64_t ha_lease_ttl_ms; /* whole seconds, 2s..5m; default 15s */
    char *ha_prefix;          /* NULL: /imgrecon/<owner> (spec_config_ha_prefix) */
} spec_config;

/* Fills every field with its default. Returns -ENOMEM on allocation failure. */
int spec_config_init(spec_config *cfg);
/* Reads a config file over cfg (keys present replace defaults). Returns 0, or -EINVAL with every
 * problem in diags, or a negative errno when the file cannot be read (also in diags). */
int spec_config_load(spec_config *cfg, const char *path, spec_diags *diags);
void spec_config_free(spec_config *cfg);

/* Applies one --rate-limit argument: "N/DUR" sets the default, "ACTION=N/DUR" one action. */
int spec_config_set_rate(spec_config *cfg, const char *arg);
spec_rate spec_config_rate_for(const spec_config *cfg, const char *action);
unsigned spec_config_quota_for(const spec_config *cfg, const char *region);
/* The etcd key prefix of `ha` (the configured one, or /imgrecon/<owner>); malloc'd, caller
 * frees; NULL on allocation failure. */
char *spec_config_ha_prefix(const spec_config *cfg);

/* Strict parsers: "500ms", "6s", "5m", "1h" (positive integer and unit, nothing else);
 * "10/60s" (calls >= 1, window > 0). Return 0 or -EINVAL. */
int spec_parse_duration(const char *s, uint64_t *ret_ms);
int spec_parse_rate(const char *s, spec_rate *ret);

#endif
