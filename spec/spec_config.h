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

/* Webhook events (config `notify: [{events: [...]}]`), one bit each. */
enum spec_notify_event {
    SPEC_EV_APPLIED = 1u << 0,        /* a cycle changed something (with image ids) */
    SPEC_EV_FAILED = 1u << 1,         /* a cycle failed or an item failed */
    SPEC_EV_MANIFEST_ERROR = 1u << 2, /* the manifests are invalid (kept the last good set) */
    SPEC_EV_REFUSED = 1u << 3,        /* a guard held deletes back, or a name conflict */
    SPEC_EV_DRIFT = 1u << 4,          /* a cycle found changes to make */
    SPEC_EV_RECOVERED = 1u << 5,      /* healthy again after failures or invalid manifests */
};
#define SPEC_EV_ALL 0x3Fu

enum spec_notify_format { SPEC_NOTIFY_JSON = 0, SPEC_NOTIFY_SLACK = 1, SPEC_NOTIFY_DINGTALK = 2 };

/* One webhook. The secret itself is read by the daemon (rec_webhook.c), never by spec/. */
typedef struct spec_notify {
    char *url;         /* http:// or https:// */
    int format;        /* enum spec_notify_format */
    char *secret_file; /* NULL: no signature */
    unsigned events;   /* SPEC_EV_* bits; default SPEC_EV_ALL */
} spec_notify;

/* The name of one event bit ("applied", ...), NULL for anything else. */
const char *spec_notify_event_name(unsigned event);
/* The name of a format ("json", "slack", "dingtalk"). */
const char *spec_notify_format_name(int format);

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
    char *profile;       /* credentials profile; NULL: the file's current one */
    char *ca_file;       /* extra CA bundle for TLS; NULL: system store */
    spec_notify *notify; /* webhooks; default none */
    size_t n_notify;
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

/* Strict parsers: "500ms", "6s", "5m", "1h" (positive integer and unit, nothing else);
 * "10/60s" (calls >= 1, window > 0). Return 0 or -EINVAL. */
int spec_parse_duration(const char *s, uint64_t *ret_ms);
int spec_parse_rate(const char *s, spec_rate *ret);

#endif
