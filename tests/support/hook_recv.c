/* The loopback webhook receiver (see hook_recv.h). MHD runs one thread per connection, so a slow
 * answer delays only its own connection; the recorded requests are guarded by one mutex and a
 * condition variable signalled on every arrival. */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hook_recv.h"

struct hook_recv {
    struct MHD_Daemon *mhd;
    char url[64];
    char *secret;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    json_t *bodies; /* every body, in arrival order */
    size_t count, bad_sigs;
    unsigned status, delay_ms;
};

/* One request's body as it arrives. */
typedef struct upload {
    char *buf;
    size_t len;
} upload;

/* True when header is "sha256=" and the hex HMAC-SHA256 of body under secret. */
static bool signature_ok(const char *secret, const char *header, const char *body, size_t len)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    char hex[2 * EVP_MAX_MD_SIZE + 8] = "sha256=";
    if (header == NULL || HMAC(EVP_sha256(), secret, (int)strlen(secret),
                               (const unsigned char *)body, len, mac, &mac_len) == NULL)
        return false;
    for (unsigned i = 0; i < mac_len; i++)
        snprintf(hex + 7 + 2 * i, 3, "%02x", mac[i]);
    return strcmp(hex, header) == 0;
}

static void record(hook_recv *r, struct MHD_Connection *conn, const upload *u)
{
    const char *sig = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Imgrecon-Signature");
    json_t *body = json_loadb(u->buf ? u->buf : "", u->len, 0, NULL);
    if (body == NULL)
        body = json_stringn(u->buf ? u->buf : "", u->len);
    bool good =
        r->secret ? signature_ok(r->secret, sig, u->buf ? u->buf : "", u->len) : sig == NULL;
    pthread_mutex_lock(&r->mu);
    r->count++;
    r->bad_sigs += !good;
    json_array_append_new(r->bodies, body);
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *data,
                              size_t *data_size, void **con_cls)
{
    hook_recv *r = cls;
    upload *u = *con_cls;
    if (u == NULL) {
        *con_cls = u = calloc(1, sizeof(*u));
        return u ? MHD_YES : MHD_NO;
    }
    if (*data_size > 0) {
        char *grown = realloc(u->buf, u->len + *data_size + 1);
        if (grown == NULL)
            return MHD_NO;
        u->buf = grown;
        memcpy(u->buf + u->len, data, *data_size);
        u->len += *data_size;
        u->buf[u->len] = '\0';
        *data_size = 0;
        return MHD_YES;
    }
    pthread_mutex_lock(&r->mu);
    unsigned status = r->status, delay = r->delay_ms;
    pthread_mutex_unlock(&r->mu);
    if (delay > 0) {
        /* Plays a slow receiver: this connection's thread answers late. */
        struct timespec ts = {delay / 1000, (long)(delay % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    record(r, conn, u);
    static const char ok[] = "ok\n";
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(sizeof(ok) - 1, (void *)ok, MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    upload *u = *con_cls;
    if (u != NULL) {
        free(u->buf);
        free(u);
    }
    *con_cls = NULL;
}

int hook_recv_start(const char *secret, hook_recv **ret)
{
    hook_recv *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    r->status = 200;
    r->secret = secret ? strdup(secret) : NULL;
    r->bodies = json_array();
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    r->mhd = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0,
                              NULL, NULL, handle, r, MHD_OPTION_SOCK_ADDR, &sa,
                              MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_END);
    const union MHD_DaemonInfo *info =
        r->mhd ? MHD_get_daemon_info(r->mhd, MHD_DAEMON_INFO_BIND_PORT) : NULL;
    if (info == NULL) {
        hook_recv_stop(r);
        return -EIO;
    }
    snprintf(r->url, sizeof(r->url), "http://127.0.0.1:%u/hook", (unsigned)info->port);
    *ret = r;
    return 0;
}

const char *hook_recv_url(const hook_recv *r)
{
    return r->url;
}

void hook_recv_set_answer(hook_recv *r, unsigned status, unsigned delay_ms)
{
    pthread_mutex_lock(&r->mu);
    r->status = status;
    r->delay_ms = delay_ms;
    pthread_mutex_unlock(&r->mu);
}

size_t hook_recv_count(hook_recv *r)
{
    pthread_mutex_lock(&r->mu);
    size_t n = r->count;
    pthread_mutex_unlock(&r->mu);
    return n;
}

size_t hook_recv_bad_signatures(hook_recv *r)
{
    pthread_mutex_lock(&r->mu);
    size_t n = r->bad_sigs;
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* The n-th body with that event, or NULL. Called with mu held. */
static json_t *find_event(hook_recv *r, const char *event, size_t n)
{
    size_t i, seen = 0;
    json_t *b;
    json_array_foreach(r->bodies, i, b)
    {
        const char *e = json_string_value(json_object_get(b, "event"));
        if (e != NULL && strcmp(e, event) == 0 && seen++ == n)
            return json_incref(b);
    }
    return NULL;
}

json_t *hook_recv_wait(hook_recv *r, const char *event, size_t n, long ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += ms / 1000;
    deadline.tv_nsec += (ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&r->mu);
    json_t *found;
    while ((found = find_event(r, event, n)) == NULL)
        if (pthread_cond_timedwait(&r->cv, &r->mu, &deadline) == ETIMEDOUT) {
            found = find_event(r, event, n);
            break;
        }
    pthread_mutex_unlock(&r->mu);
    return found;
}

json_t *hook_recv_all(hook_recv *r)
{
    pthread_mutex_lock(&r->mu);
    json_t *copy = json_deep_copy(r->bodies);
    pthread_mutex_unlock(&r->mu);
    return copy;
}

void hook_recv_stop(hook_recv *r)
{
    if (r == NULL)
        return;
    if (r->mhd)
        MHD_stop_daemon(r->mhd);
    json_decref(r->bodies);
    free(r->secret);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

void hook_recv_dead_url(char *out, size_t size)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    socklen_t len = sizeof(sa);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    unsigned port = 9; /* discard: refused on a host without it */
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0)
        close(fd);
    snprintf(out, size, "http://127.0.0.1:%u/hook", port);
}
