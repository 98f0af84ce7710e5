/* The three-member etcd cluster of the HA tests (see etcd_proc.h). Ports come from binding port
 * 0 on loopback; a member's stdout and stderr go to <dir>/mN.log. */
#include "etcd_proc.h"
#include "test_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#define ETCD_BIN "/usr/bin/etcd"

static long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A port that was free a moment ago (the kernel's pick for port 0). */
static unsigned free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    unsigned port = 0;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

int etcd_member_start(etcd_cluster *c, int i)
{
    char name[8], data[128], log[128], client[48], peer[48];
    snprintf(name, sizeof(name), "m%d", i);
    snprintf(data, sizeof(data), "%s/m%d", c->dir, i);
    snprintf(log, sizeof(log), "%s/m%d.log", c->dir, i);
    snprintf(client, sizeof(client), "http://127.0.0.1:%u", c->client_port[i]);
    snprintf(peer, sizeof(peer), "http://127.0.0.1:%u", c->peer_port[i]);
    const char *argv[] = {
        ETCD_BIN, "--name", name, "--data-dir", data, "--listen-client-urls", client,
        "--advertise-client-urls", client, "--listen-peer-urls", peer,
        "--initial-advertise-peer-urls", peer, "--initial-cluster", c->initial_cluster,
        "--initial-cluster-state", "new", "--initial-cluster-token", c->dir,
        /* Test data only: no fsync keeps two cores free for the daemons. */
        "--unsafe-no-fsync", "--heartbeat-interval", "50", "--election-timeout", "500", NULL};
    pid_t parent = getpid(), pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        test_proc_die_with(parent);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
            _exit(126);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    c->pid[i] = pid;
    return 0;
}

void etcd_member_kill(etcd_cluster *c, int i)
{
    if (c->pid[i] <= 0)
        return;
    kill(c->pid[i], SIGKILL);
    (void)waitpid(c->pid[i], NULL, 0);
    c->pid[i] = 0;
}

static size_t discard(char *p, size_t s, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return s * n;
}

/* One linearizable range through any member: true when it answers 200. */
static bool quorum_answers(const etcd_cluster *c)
{
    for (int i = 0; i < ETCD_MEMBERS; i++) {
        if (c->pid[i] <= 0)
            continue;
        char url[96];
        long status = 0;
        snprintf(url, sizeof(url), "%s/v3/kv/range", c->client_url[i]);
        CURL *h = curl_easy_init();
        if (h == NULL)
            return false;
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "{\"key\":\"AA==\"}");
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 1000L);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
        CURLcode rc = curl_easy_perform(h);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(h);
        if (rc == CURLE_OK && status == 200)
            return true;
    }
    return false;
}

typedef struct grow_buf {
    char data[4096];
    size_t len;
} grow_buf;

static size_t keep(char *p, size_t s, size_t n, void *ud)
{
    grow_buf *b = ud;
    size_t len = s * n;
    if (b->len + len >= sizeof(b->data))
        return 0;
    memcpy(b->data + b->len, p, len);
    b->len += len;
    b->data[b->len] = '\0';
    return len;
}

int etcd_cluster_raft_leader(const etcd_cluster *c)
{
    for (int i = 0; i < ETCD_MEMBERS; i++) {
        if (c->pid[i] <= 0)
            continue;
        char url[96];
        grow_buf b = {.len = 0};
        snprintf(url, sizeof(url), "%s/v3/maintenance/status", c->client_url[i]);
        CURL *h = curl_easy_init();
        if (h == NULL)
            return -1;
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "{}");
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 1000L);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, keep);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
        CURLcode rc = curl_easy_perform(h);
        curl_easy_cleanup(h);
        json_t *j = rc == CURLE_OK ? json_loads(b.data, 0, NULL) : NULL;
        const char *me =
            json_string_value(json_object_get(json_object_get(j, "header"), "member_id"));
        const char *leader = json_string_value(json_object_get(j, "leader"));
        bool is_leader = me != NULL && leader != NULL && strcmp(me, leader) == 0;
        json_decref(j);
        if (is_leader)
            return i;
    }
    return -1;
}

bool etcd_cluster_wait_ready(const etcd_cluster *c, long ms)
{
    long deadline = mono_ms() + ms;
    while (mono_ms() < deadline) {
        if (quorum_answers(c))
            return true;
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return false;
}

int etcd_cluster_start(etcd_cluster *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->dir, sizeof(c->dir), "/tmp/imgrecon-etcd-XXXXXX");
    if (mkdtemp(c->dir) == NULL)
        return -errno;
    size_t off = 0;
    for (int i = 0; i < ETCD_MEMBERS; i++) {
        c->client_port[i] = free_port();
        c->peer_port[i] = free_port();
        if (c->client_port[i] == 0 || c->peer_port[i] == 0)
            return -EADDRNOTAVAIL;
        snprintf(c->client_url[i], sizeof(c->client_url[i]), "http://127.0.0.1:%u",
                 c->client_port[i]);
        off += (size_t)snprintf(c->initial_cluster + off, sizeof(c->initial_cluster) - off,
                                "%sm%d=http://127.0.0.1:%u", i ? "," : "", i, c->peer_port[i]);
    }
    for (int i = 0; i < ETCD_MEMBERS; i++) {
        int rc = etcd_member_start(c, i);
        if (rc < 0) {
            etcd_cluster_stop(c);
            return rc;
        }
    }
    if (!etcd_cluster_wait_ready(c, 20000)) {
        etcd_cluster_stop(c);
        return -ETIMEDOUT;
    }
    return 0;
}

void etcd_cluster_stop(etcd_cluster *c)
{
    for (int i = 0; i < ETCD_MEMBERS; i++)
        etcd_member_kill(c, i);
    if (c->dir[0] != '\0') {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", c->dir);
        (void)system(cmd);
        c->dir[0] = '\0';
    }
}

void etcd_cluster_endpoints_yaml(const etcd_cluster *c, char *buf, size_t size)
{
    snprintf(buf, size, "[%s, %s, %s]", c->client_url[0], c->client_url[1], c->client_url[2]);
}
