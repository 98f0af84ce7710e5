/* The daemon/CLI config file (cmd/README.md): keys defined once in a table with type, default
 * and bounds. Flags are applied over it by cmd/. */
#ifndef SPEC_CONFIG_H
#define SPEC_CONFIG_H

/* Bounds of the daemon's interval, shared by the config key and `run --interval`. */
#define SPEC_INTERVAL_MIN_MS 1000ull
#define SPEC_INTERVAL_MAX_MS 86400000ull

/* Upper bounds of a rate limit: a window of at most a day (so `time + window` cannot overflow
 * and a typo such as 10/60000h is caught) and at most a million calls in it. */
#define SPEC_RATE_WINDOW_MAX_MS 86400000ull
#define SPEC_RATE_CALLS_MAX 1000000u

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
    SPEC_EV_LEADERSHIP = 1u << 6,     /* with `ha`: this daemon became leader or lost the lease */
};
#define SPEC_EV_ALL 0x7Fu

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
    uint64_t interval_ms;       /* default 5m */
    bool prune;                 /* default false */
    unsigned max_deletes;       /* default 5 */
    bool allow_empty;           /* default false; true: every region (see allow_empty_regions) */
    char **allow_empty_regions; /* `allow_empty: [cn-hangzhou]`: only these regions */
    size_t n_allow_empty_regions;
    char **regions; /* more regions to observe (`regions: [..]`); default none */
    size_t n_regions;
    bool regions_all;       /* `regions: all`: every region ListRegions names */
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
    char *profile;    /* credentials profile; NULL: the file's current one */
    char *account_id; /* the account the keys belong to (pacer budget); NULL: asked of STS */
    char *ca_file;    /* extra CA certificates for TLS, added to the system store; NULL: none */
    bool allow_insecure_endpoint; /* default false: http:// endpoints only to loopback hosts */
    spec_notify *notify;          /* webhooks; default none */
    size_t n_notify;
    char **previous_owners; /* owners whose images are retagged to owner in place; default [] */
    size_t n_previous_owners;
    /* `ha:` (reconcile/README.md "HA"): several hosts, one leader through an etcd lease. */
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
void spec_config_clear(spec_config *cfg);

/* Checks an endpoint URL as every API call would use it: http:// or https://, a host name or
 * address and an optional port, no user:password@, and plain http:// only to a loopback host
 * (127.0.0.0/8, ::1, localhost) unless allow_insecure. Returns NULL when usable, else a static
 * reason that completes "endpoint '<url>' ...". Called by the config loader, cmd/ (flag and
 * environment) and reconcile's setup before any request. */
const char *spec_check_endpoint(const char *url, bool allow_insecure);
/* Checks cfg->endpoint after flags or the environment replaced it; source names where it came
 * from ("--endpoint", "IMGRECON_ENDPOINT") in the diagnostic. Returns 0 or -EINVAL. */
int spec_config_check_endpoint(const spec_config *cfg, const char *source, spec_diags *diags);

/* What `validate` checks beyond loading a config file that loaded (path may be NULL): quotas
 * keys that are not known SWAS regions (warnings), and a metrics_listen that `run` refuses (not
 * loopback, without --metrics-allow-remote) as an error, each at its file:line:col. Returns 0,
 * -EINVAL after adding an error, or a negative errno when the file cannot be read again. */
int spec_config_lint(const spec_config *cfg, const char *path, bool metrics_allow_remote,
                     spec_diags *errors, spec_diags *warnings);

/* Applies one --rate-limit argument: "N/DUR" sets the default, "ACTION=N/DUR" one action.
 * Returns 0, -EINVAL when malformed, -ENOENT when ACTION is not one imgrecon calls
 * (spec_action_suggest names the likely one), or -ENOMEM. */
int spec_config_set_rate(spec_config *cfg, const char *arg);
spec_rate spec_config_rate_for(const spec_config *cfg, const char *action);
unsigned spec_config_quota_for(const spec_config *cfg, const char *region);
/* Applies one --allow-empty argument: "true", "false" or comma-separated region ids. Returns 0,
 * -EINVAL (cfg unchanged) or -ENOMEM. */
int spec_config_set_allow_empty(spec_config *cfg, const char *arg);
/* True when prune may empty region: allow_empty is true, or the region is in its list. */
bool spec_config_allow_empty(const spec_config *cfg, const char *region);
/* The etcd key prefix of `ha` (the configured one, or /imgrecon/<owner>); malloc'd, caller
 * frees; NULL on allocation failure. */
char *spec_config_ha_prefix(const spec_config *cfg);

/* Strict parsers: "500ms", "6s", "5m", "1h" (positive integer and unit, nothing else);
 * "10/60s" (calls 1 to SPEC_RATE_CALLS_MAX, window 1ms to SPEC_RATE_WINDOW_MAX_MS). Return 0 or
 * -EINVAL. */
int spec_parse_duration(const char *s, uint64_t *ret_ms);
int spec_parse_rate(const char *s, spec_rate *ret);

#endif
