/* From config to state directory, credentials, pacer and client (see rec_setup.h). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rec_setup.h"
#include "prov_cleanup.h"
#include "prov_statedir.h"

#include "prov_sig.h"

int rec_mkdir_p(const char *dir)
{
    if (dir == NULL || *dir == '\0')
        return -EINVAL;
    char *p = strdup(dir);
    if (p == NULL)
        return -ENOMEM;
    int rc = 0;
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char saved = *s;
        *s = '\0';
        if (mkdir(p, 0700) < 0 && errno != EEXIST) {
            rc = -errno;
            break;
        }
        *s = saved;
        if (saved == '\0')
            break;
    }
    free(p);
    if (rc == 0) {
        struct stat st;
        if (stat(dir, &st) < 0)
            return -errno;
        if (!S_ISDIR(st.st_mode))
            return -ENOTDIR;
        if (access(dir, W_OK | X_OK) < 0)
            return -errno;
    }
    return rc;
}

/* The per-user fallback state directory; malloc'd or NULL. */
static char *fallback_dir(void)
{
    const char *xdg = getenv("XDG_STATE_HOME");
    const char *home = getenv("HOME");
    char buf[4096];
    if (xdg != NULL && xdg[0] == '/')
        snprintf(buf, sizeof(buf), "%s/imgrecon", xdg);
    else if (home != NULL && home[0] == '/')
        snprintf(buf, sizeof(buf), "%s/.local/state/imgrecon", home);
    else
        return NULL;
    return strdup(buf);
}

/* "what: why" as a malloc'd string (NULL on allocation failure). */
static char *fmt_msg(const char *what, const char *why)
{
    char buf[2048];
    snprintf(buf, sizeof(buf), "%s: %s", what ? what : "", why ? why : "");
    return strdup(buf);
}

static void rate_for(void *ud, prov_product product, const char *action, unsigned *ret_calls,
                     uint64_t *ret_window_ms)
{
    const rec_setup *s = ud;
    (void)product;
    spec_rate r = spec_config_rate_for(s->cfg, action);
    *ret_calls = r.calls;
    *ret_window_ms = r.window_ms;
}

/* Counts every HTTP attempt per action for the summaries, then forwards the event. */
static void on_call(void *ud, const prov_call_event *ev)
{
    rec_setup *s = ud;
    rec_call_count *c = NULL;
    for (size_t i = 0; i < s->n_counts && c == NULL; i++)
        if (strcmp(s->counts[i].action, ev->action) == 0)
            c = &s->counts[i];
    if (c == NULL && s->n_counts < REC_SETUP_MAX_ACTIONS) {
        c = &s->counts[s->n_counts++];
        snprintf(c->action, sizeof(c->action), "%s", ev->action);
    }
    if (c != NULL) {
        c->calls++;
        if (ev->cls == PROV_ERR_THROTTLED)
            c->throttled++;
    }
    if (s->opts.on_call != NULL)
        s->opts.on_call(s->opts.ud, ev);
}

/* prov_client_opts.on_wait: forwarded to the caller's observer. */
static void on_wait(void *ud, prov_product product, const char *action, uint64_t wait_ms)
{
    rec_setup *s = ud;
    (void)product;
    if (s->opts.on_wait != NULL)
        s->opts.on_wait(s->opts.ud, action, wait_ms);
}

/* prov_cred_opts.on_call: an STS request of the credentials chain, counted and reported like
 * the client's calls (summaries, daemon metrics and logs). */
static void on_sts_call(void *ud, const char *action, long http_status, const char *code,
                        long duration_ms)
{
    prov_call_event ev = {
        .product = PROV_STS,
        .action = action,
        .attempt = 1,
        .http_status = http_status,
        .code = code,
        .cls = prov_err_classify(action, http_status, code, http_status == 0 ? -EIO : 0),
        .duration_ms = duration_ms > 0 ? (uint64_t)duration_ms : 0,
    };
    on_call(ud, &ev);
}

/* prov_cred_opts.on_call during a refresh, on the thread pool: the STS request is kept for
 * cred_refreshed, which reports it from the loop (the observers are not thread-safe). */
static void keep_sts_call(void *ud, const char *action, long http_status, const char *code,
                          long duration_ms)
{
    rec_setup *s = ud;
    if (s->n_sts_kept == REC_SETUP_STS_KEPT)
        return;
    rec_sts_kept *k = &s->sts_kept[s->n_sts_kept++];
    *k = (rec_sts_kept){.action = action, .http_status = http_status, .duration_ms = duration_ms};
    k->has_code = code != NULL;
    snprintf(k->code, sizeof(k->code), "%s", code ? code : "");
}

/* The client's refresh (prov_client_opts.refresh), on the thread pool: a new temporary
 * credential fetched with the setup's options. It reads s->cred and s->copts, which the loop
 * does not change while it runs, and writes only s->sts_kept. */
static int refresh_cred(void *ud, prov_credential *ret_fresh, char **ret_error)
{
    rec_setup *s = ud;
    prov_cred_opts o = s->copts;
    o.on_call = keep_sts_call;
    o.on_call_ud = s;
    s->n_sts_kept = 0;
    return prov_cred_fetch(&o, &s->cred, ret_fresh, ret_error);
}

/* Back on the loop (prov_client_opts.refreshed): the refresh's STS requests are reported, and
 * the new credential replaces the old one (on_cred_refreshed told first), or the failure is
 * said. */
static void cred_refreshed(void *ud, int rc, prov_credential *fresh, const char *error)
{
    rec_setup *s = ud;
    for (size_t i = 0; i < s->n_sts_kept; i++) {
        const rec_sts_kept *k = &s->sts_kept[i];
        on_sts_call(s, k->action, k->http_status, k->has_code ? k->code : NULL, k->duration_ms);
    }
    s->n_sts_kept = 0;
    if (rc == 0) {
        if (s->opts.on_cred_refreshed != NULL)
            s->opts.on_cred_refreshed(s->opts.ud, &s->cred, fresh);
        prov_credential_clear(&s->cred);
        s->cred = *fresh;
        memset(fresh, 0, sizeof(*fresh));
    } else if (s->opts.on_cred_error != NULL) {
        char buf[1024];
        snprintf(buf, sizeof(buf), "credential refresh failed (retrying): %s",
                 error ? error : strerror(-rc));
        s->opts.on_cred_error(s->opts.ud, buf);
    }
}

/* What identifies the credential across runs without naming a secret: the key id for static
 * keys (hashed in the cache), the role for an ECS RAM role (its keys change at every refresh). */
static void identity_hash(const prov_credential *c, char out[65])
{
    char buf[512];
    if (c->kind == PROV_CRED_ECS_ROLE)
        snprintf(buf, sizeof(buf), "ecs-role:%s", c->role_name ? c->role_name : "");
    else
        snprintf(buf, sizeof(buf), "key:%s", c->access_key_id);
    prov_sha256_hex(buf, strlen(buf), out);
}

#define ACCOUNT_CACHE "account_ids"

/* Looks the identity up in <state_dir>/account_ids ("<sha256> <account id>" lines; a symlink is
 * not followed, a torn line is skipped). */
static char *account_cache_get(const char *dir, const char *hash)
{
    int fd = prov_statedir_open(dir, ACCOUNT_CACHE, O_RDONLY, 0);
    FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
    if (f == NULL) {
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    char line[256], *found = NULL;
    while (found == NULL && fgets(line, sizeof(line), f) != NULL) {
        char *sp = strchr(line, ' ');
        if (sp == NULL || (size_t)(sp - line) != 64 || strncmp(line, hash, 64) != 0)
            continue;
        sp[1 + strcspn(sp + 1, "\r\n")] = '\0';
        if (sp[1] != '\0' && strspn(sp + 1, "0123456789") == strlen(sp + 1))
            found = strdup(sp + 1);
    }
    fclose(f);
    return found;
}

/* Appends one line to the cache (best effort: a lost line only means asking STS again). */
static void account_cache_put(const char *dir, const char *hash, const char *account)
{
    int fd = prov_statedir_open(dir, ACCOUNT_CACHE, O_WRONLY | O_APPEND | O_CREAT, 0600);
    if (fd < 0)
        return;
    char line[256];
    int n = snprintf(line, sizeof(line), "%s %s\n", hash, account);
    if (n > 0 && (size_t)n < sizeof(line))
        (void)rec_write_all(fd, line, (size_t)n);
    (void)close(fd);
}

/* Finds the account id (see learn_account); 0 and a malloc'd *ret, or a negative errno with
 * *ret_msg (malloc'd, may be NULL). */
static int find_account(rec_setup *s, char **ret, char **ret_msg)
{
    if (s->cfg->account_id != NULL) {
        *ret = strdup(s->cfg->account_id);
        return *ret ? 0 : -ENOMEM;
    }
    if (s->cred.role_arn != NULL && prov_cred_account_id(&s->copts, &s->cred, ret, NULL) == 0)
        return 0;
    char hash[65];
    identity_hash(&s->cred, hash);
    if ((*ret = account_cache_get(s->state_dir, hash)) != NULL)
        return 0;
    int rc = prov_cred_account_id(&s->copts, &s->cred, ret, ret_msg);
    if (rc == 0)
        account_cache_put(s->state_dir, hash, *ret);
    return rc;
}

/* The call budget belongs to the account (provider/README.md "Pacing"): every key and role of one
 * account shares it. The client's prepare hook, so it runs before the first API call and never
 * when a command stops earlier (a refused config makes no call at all). Learned once per
 * credential identity and cached; when it cannot be learned the budget stays per access key and
 * on_cred_error says so. */
static void learn_account(void *ud)
{
    rec_setup *s = ud;
    char *acct = NULL, *msg = NULL;
    int rc = find_account(s, &acct, &msg);
    if (rc == 0 && strlen(acct) < sizeof(s->account_id)) {
        memcpy(s->account_id, acct, strlen(acct) + 1);
    } else {
        snprintf(s->account_id, sizeof(s->account_id), "key:%s", s->cred.access_key_id);
        if (s->opts.on_cred_error != NULL) {
            char buf[1024];
            snprintf(buf, sizeof(buf),
                     "account id unknown (%s); the call budget is kept per access key (set "
                     "account_id in the config to share it across keys)",
                     msg ? msg : strerror(rc < 0 ? -rc : EINVAL));
            s->opts.on_cred_error(s->opts.ud, buf);
        }
    }
    free(acct);
    free(msg);
}

const char *rec_setup_account_id(const rec_setup *s)
{
    if (s->account_id[0] == '\0' || strncmp(s->account_id, "key:", 4) == 0)
        return NULL;
    return s->account_id;
}

/* The pacer: the file in the state directory, or with `ha` the call log in etcd that every
 * process configured with the same prefix shares (plan, apply and the daemon alike). Requests
 * block the loop, so they time out at a quarter of the lease TTL (at most 1 s) per endpoint. */
static int open_pacer(const spec_config *cfg, rec_setup *s)
{
    if (cfg->n_ha_endpoints == 0)
        return prov_pacer_open(s->state_dir, &s->pacer);
    char *prefix = spec_config_ha_prefix(cfg);
    long timeout = (long)(cfg->ha_lease_ttl_ms / 4);
    int rc = prefix == NULL
                 ? -ENOMEM
                 : prov_pacer_open_etcd((const char *const *)cfg->ha_endpoints, cfg->n_ha_endpoints,
                                        prefix, timeout > 1000 ? 1000 : timeout, cfg->ca_file,
                                        &s->pacer);
    free(prefix);
    return rc;
}

static void setup_clear(rec_setup *s);
static void on_client_closed(void *ud);

/* The steps of rec_setup_new on a zeroed setup. On failure returns a negative errno, with *error
 * (malloc'd, or NULL for a bare errno) saying why; rec_setup_new frees what was built. */
static int setup_init(uv_loop_t *loop, const spec_config *cfg, const rec_setup_opts *opts,
                      rec_setup *s, char **error)
{
    s->cfg = cfg;
    if (opts != NULL)
        s->opts = *opts;
    int rc;

    /* Refused before anything else (state, credentials, any request) when the endpoint would send
     * signed requests in the clear to another host; the loaders report it too, with a position. */
    const char *why =
        cfg->endpoint ? spec_check_endpoint(cfg->endpoint, cfg->allow_insecure_endpoint) : NULL;
    if (why != NULL) {
        rc = -EPERM;
        *error = fmt_msg("endpoint", why);
        return rc;
    }

    /* State directory, with the per-user fallback for an unprivileged CLI run. */
    rc = rec_mkdir_p(cfg->state_dir);
    if (rc == 0) {
        s->state_dir = strdup(cfg->state_dir);
    } else if (!s->opts.state_dir_explicit && rc != -ENOMEM) {
        char *fb = fallback_dir();
        int frc = fb ? rec_mkdir_p(fb) : -ENOENT;
        if (frc == 0) {
            char note[4096];
            snprintf(note, sizeof(note),
                     "state directory %s is not usable (%s); using %s instead (set "
                     "--state-dir or state_dir to choose)",
                     cfg->state_dir, strerror(-rc), fb);
            s->note = strdup(note);
            s->state_dir = fb;
            fb = NULL;
            rc = 0;
        }
        free(fb);
    }
    if (rc < 0) {
        char what[2048];
        snprintf(what, sizeof(what), "state directory %s", cfg->state_dir);
        *error = fmt_msg(what, strerror(-rc));
        return rc;
    }
    if (s->state_dir == NULL) {
        rc = -ENOMEM;
        return rc;
    }
    /* An unsafe directory is refused, never replaced by another one behind the user's back. */
    rc = prov_statedir_check(s->state_dir, error);
    if (rc < 0)
        return rc;

    if ((cfg->profile != NULL && (s->profile = strdup(cfg->profile)) == NULL) ||
        (cfg->endpoint != NULL && (s->cred_url = strdup(cfg->endpoint)) == NULL))
        return -ENOMEM;
    s->copts = (prov_cred_opts){.profile = s->profile,
                                .use_metadata = !s->opts.no_metadata,
                                .metadata_url = s->cred_url,
                                .sts_url = s->cred_url,
                                .on_call = on_sts_call,
                                .on_call_ud = s};
    char *cmsg = NULL;
    rc = prov_cred_resolve(&s->copts, &s->cred, &cmsg);
    if (rc < 0) {
        *error = cmsg ? cmsg : fmt_msg("credentials", "none found");
        memset(&s->cred, 0, sizeof(s->cred));
        return rc;
    }

    rc = open_pacer(cfg, s);
    if (rc < 0) {
        char what[2048];
        if (cfg->n_ha_endpoints > 0)
            snprintf(what, sizeof(what), "shared call budget in etcd (ha.etcd_endpoints)");
        else
            snprintf(what, sizeof(what), "pacer log in %s", s->state_dir);
        *error = fmt_msg(what, strerror(-rc));
        return rc;
    }

    prov_client_opts o = {
        .endpoint = cfg->endpoint,
        .signature = cfg->signature == SPEC_SIG_V1 ? 1 : 3,
        .method = s->opts.method,
        .cred = &s->cred,
        .pacer_key = s->account_id,
        .prepare = learn_account,
        .prepare_ud = s,
        .refresh = refresh_cred,
        .refreshed = cred_refreshed,
        .refresh_ud = s,
        .pacer = s->pacer,
        .rate_for = rate_for,
        .rate_ud = s,
        .ca_file = cfg->ca_file,
        .on_event = on_call,
        .on_wait = on_wait,
        .event_ud = s,
        .on_closed = on_client_closed,
        .closed_ud = s,
    };
    rc = prov_client_new(loop, &o, &s->client);
    if (rc < 0) {
        *error = fmt_msg("API client", strerror(-rc));
        return rc;
    }
    return 0;
}

int rec_setup_new(uv_loop_t *loop, const spec_config *cfg, const rec_setup_opts *opts,
                  rec_setup **ret, char **ret_error)
{
    _cleanup_free_ char *error = NULL;
    rec_setup *s = calloc(1, sizeof(*s));
    int rc = s != NULL ? setup_init(loop, cfg, opts, s, &error) : -ENOMEM;
    if (rc < 0) {
        if (s != NULL)
            setup_clear(s);
        free(s);
        if (ret_error != NULL)
            *ret_error = error != NULL ? PROV_TAKE_PTR(error) : strdup(strerror(-rc));
        return rc;
    }
    *ret = s;
    return 0;
}

/* The client's last close callback: nothing can call into the setup any more, so its contents
 * (credentials wiped) and the setup itself go now, then the owner hears of it. */
static void on_client_closed(void *ud)
{
    rec_setup *s = ud;
    void (*on_closed)(void *) = s->on_closed;
    void *closed_ud = s->closed_ud;
    s->client = NULL;
    setup_clear(s);
    free(s);
    if (on_closed != NULL)
        on_closed(closed_ud);
}

void rec_setup_close(rec_setup *s, void (*on_closed)(void *ud), void *ud)
{
    if (s == NULL)
        return;
    s->on_closed = on_closed;
    s->closed_ud = ud;
    if (s->client != NULL) {
        prov_client *c = s->client;
        s->client = NULL;
        prov_client_close(c); /* on_client_closed frees s, perhaps before this returns */
        return;
    }
    on_client_closed(s);
}

/* Frees what the setup holds (the client is closed already); used by rec_setup_new on failure
 * and by the client's last close callback. */
static void setup_clear(rec_setup *s)
{
    prov_pacer_free(s->pacer);
    s->pacer = NULL;
    if (s->cred.access_key_id != NULL || s->cred.access_key_secret != NULL)
        prov_credential_clear(&s->cred);
    memset(&s->cred, 0, sizeof(s->cred));
    free(s->state_dir);
    free(s->note);
    free(s->profile);
    free(s->cred_url);
    s->account_id[0] = '\0';
    s->state_dir = NULL;
    s->note = NULL;
    s->profile = NULL;
    s->cred_url = NULL;
}

char *rec_setup_calls_summary(const rec_setup *s)
{
    char buf[2048];
    size_t k = 0;
    unsigned total = 0, throttled = 0;
    for (size_t i = 0; i < s->n_counts; i++) {
        total += s->counts[i].calls;
        throttled += s->counts[i].throttled;
    }
    k += (size_t)snprintf(buf + k, sizeof(buf) - k, "API calls: %u", total);
    for (size_t i = 0; i < s->n_counts && k < sizeof(buf); i++)
        k += (size_t)snprintf(buf + k, sizeof(buf) - k, "%s%u %s", i == 0 ? " (" : ", ",
                              s->counts[i].calls, s->counts[i].action);
    if (s->n_counts > 0 && k < sizeof(buf))
        k += (size_t)snprintf(buf + k, sizeof(buf) - k, ")");
    if (k < sizeof(buf))
        snprintf(buf + k, sizeof(buf) - k, ", %u throttled.", throttled);
    return strdup(buf);
}

unsigned rec_setup_throttled(const rec_setup *s)
{
    unsigned t = 0;
    for (size_t i = 0; s != NULL && i < s->n_counts; i++)
        t += s->counts[i].throttled;
    return t;
}

typedef struct run_state {
    rec_cycle *cycle;
    rec_cycle_result *res;
    uv_signal_t sigint, sigterm;
    int open_signals;
    bool done;
} run_state;

static void on_signal_closed(uv_handle_t *h)
{
    run_state *r = h->data;
    r->open_signals--;
}

static void on_cycle_done(rec_cycle_result *res, void *ud)
{
    run_state *r = ud;
    r->res = res;
    r->done = true;
    r->cycle = NULL;
    uv_close((uv_handle_t *)&r->sigint, on_signal_closed);
    uv_close((uv_handle_t *)&r->sigterm, on_signal_closed);
}

static void on_signal(uv_signal_t *h, int signum)
{
    run_state *r = h->data;
    (void)signum;
    if (r->cycle != NULL)
        rec_cycle_stop(r->cycle);
}

int rec_setup_run_cycle(uv_loop_t *loop, rec_setup *s, rec_cycle_opts *opts, rec_cycle_result **ret)
{
    run_state r;
    memset(&r, 0, sizeof(r));
    opts->cfg = s->cfg;
    opts->client = s->client;
    opts->pacer = s->pacer;
    opts->access_key_id = s->account_id; /* filled before the first call */
    opts->state_dir = s->state_dir;
    if (uv_signal_init(loop, &r.sigint) < 0)
        return -ENOMEM;
    r.sigint.data = &r;
    r.open_signals = 1;
    if (uv_signal_init(loop, &r.sigterm) < 0) {
        uv_close((uv_handle_t *)&r.sigint, on_signal_closed);
        while (r.open_signals > 0)
            (void)uv_run(loop, UV_RUN_NOWAIT);
        return -ENOMEM;
    }
    r.sigterm.data = &r;
    r.open_signals = 2;
    (void)uv_signal_start(&r.sigint, on_signal, SIGINT);
    (void)uv_signal_start(&r.sigterm, on_signal, SIGTERM);
    uv_unref((uv_handle_t *)&r.sigint);
    uv_unref((uv_handle_t *)&r.sigterm);
    int rc = rec_cycle_start(loop, opts, on_cycle_done, &r, &r.cycle);
    if (rc < 0) {
        uv_close((uv_handle_t *)&r.sigint, on_signal_closed);
        uv_close((uv_handle_t *)&r.sigterm, on_signal_closed);
        while (r.open_signals > 0)
            (void)uv_run(loop, UV_RUN_NOWAIT);
        return rc;
    }
    while (!r.done)
        if (uv_run(loop, UV_RUN_ONCE) == 0 && !r.done)
            break;
    if (!r.done) {
        /* The loop ran dry without the cycle ending: a bug, reported rather than hung. */
        uv_close((uv_handle_t *)&r.sigint, on_signal_closed);
        uv_close((uv_handle_t *)&r.sigterm, on_signal_closed);
    }
    /* Let the signal handles finish closing (their close callbacks use r). */
    while (r.open_signals > 0)
        (void)uv_run(loop, UV_RUN_NOWAIT);
    if (!r.done)
        return -EIO;
    *ret = r.res;
    return 0;
}
