/* The scripted loopback HTTP server (see test_srv.h). */
#include "test_srv.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

/* Waits until fd is readable or the server stops; false when stopping or after 20 s. */
static bool wait_readable(srv *s, int fd)
{
    struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = s->stop_r, .events = POLLIN}};
    int rc;
    do
        rc = poll(p, 2, 20000);
    while (rc < 0 && errno == EINTR);
    return rc > 0 && p[1].revents == 0;
}

static void lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

/* Reads and records one request; returns its index or -1. */
static long read_request(srv *s, int fd)
{
    char buf[65536];
    size_t len = 0;
    char *end = NULL;
    while (end == NULL) {
        if (len + 1 >= sizeof(buf) || !wait_readable(s, fd))
            return -1;
        ssize_t r = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
        if (r <= 0)
            return -1;
        len += (size_t)r;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    req_rec rec = {0};
    rec.at_ms = mono_ms();
    *end = '\0';
    char *save = NULL;
    char *line = strtok_r(buf, "\r\n", &save);
    char target[32768];
    if (line == NULL || sscanf(line, "%7s %32767s", rec.method, target) != 2)
        return -1;
    rec.target = strdup(target);
    char *q = strchr(target, '?');
    if (q != NULL)
        (void)prov_kvs_parse_urlencoded(&rec.query, q + 1, strlen(q + 1));
    size_t content_length = 0;
    while ((line = strtok_r(NULL, "\r\n", &save)) != NULL) {
        char *colon = strchr(line, ':');
        if (colon == NULL)
            continue;
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        lower(line);
        (void)prov_kvs_add(&rec.headers, line, v);
        if (strcmp(line, "content-length") == 0)
            content_length = strtoul(v, NULL, 10);
    }
    /* The client sends no body; drain whatever a Content-Length announces. */
    size_t have = len - (size_t)(end + 4 - buf);
    while (have < content_length && wait_readable(s, fd)) {
        ssize_t r = recv(fd, buf, sizeof(buf), 0);
        if (r <= 0)
            break;
        have += (size_t)r;
    }
    pthread_mutex_lock(&s->mu);
    long idx = -1;
    if (s->n_reqs < MAX_REQS) {
        idx = (long)s->n_reqs;
        s->reqs[s->n_reqs++] = rec;
    } else {
        free(rec.target);
        prov_kvs_clear(&rec.query);
        prov_kvs_clear(&rec.headers);
    }
    pthread_mutex_unlock(&s->mu);
    return idx;
}

static void answer(int fd, int status, const char *body, size_t len, size_t announced)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d X\r\nContent-Type: application/json;charset=utf-8\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     status, announced);
    send_all(fd, head, (size_t)n);
    send_all(fd, body, len);
}

static void serve(srv *s, int fd)
{
    long idx = read_request(s, fd);
    if (idx < 0)
        return;
    if (s->dyn != NULL) {
        int status = 200;
        char *body = s->dyn(&s->reqs[idx], &status);
        answer(fd, status, body, strlen(body), strlen(body));
        free(body);
        return;
    }
    step st = s->steps[(size_t)idx < s->n_steps ? (size_t)idx : s->n_steps - 1];
    switch (st.kind) {
    case ACT_JSON:
        answer(fd, st.status, st.body, strlen(st.body), strlen(st.body));
        break;
    case ACT_TRUNCATE:
        answer(fd, st.status, st.body, strlen(st.body), strlen(st.body) + 100);
        break;
    case ACT_HANG: {
        char c;
        if (wait_readable(s, fd))
            (void)recv(fd, &c, 1, 0); /* EOF: the client gave up */
        break;
    }
    case ACT_RESET: {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        break;
    }
    case ACT_BIG: {
        char *b = malloc(st.size + 1);
        if (b == NULL)
            break;
        memset(b, 'x', st.size);
        memcpy(b, "{\"RequestId\":\"R-big\",\"Pad\":\"", 28);
        memcpy(b + st.size - 2, "\"}", 2);
        b[st.size] = '\0';
        answer(fd, 200, b, st.size, st.size);
        free(b);
        break;
    }
    }
}

static void *srv_main(void *arg)
{
    srv *s = arg;
    for (;;) {
        struct pollfd p[2] = {{.fd = s->lfd, .events = POLLIN},
                              {.fd = s->stop_r, .events = POLLIN}};
        int rc = poll(p, 2, -1);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0 || p[1].revents != 0)
            break;
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        serve(s, fd);
        close(fd);
    }
    return NULL;
}

void srv_start(srv *s)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(s->lfd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(s->lfd, 16), 0);
    socklen_t al = sizeof(a);
    cr_assert_eq(getsockname(s->lfd, (struct sockaddr *)&a, &al), 0);
    s->port = ntohs(a.sin_port);
    int pf[2];
    cr_assert_eq(pipe(pf), 0);
    s->stop_r = pf[0];
    s->stop_w = pf[1];
    cr_assert_eq(pthread_create(&s->th, NULL, srv_main, s), 0);
    s->running = true;
}

void srv_stop(srv *s)
{
    if (!s->running)
        return;
    cr_assert_eq(write(s->stop_w, "x", 1), 1);
    pthread_join(s->th, NULL);
    s->running = false;
    close(s->lfd);
    close(s->stop_r);
    close(s->stop_w);
    for (size_t i = 0; i < s->n_reqs; i++) {
        free(s->reqs[i].target);
        prov_kvs_clear(&s->reqs[i].query);
        prov_kvs_clear(&s->reqs[i].headers);
    }
    pthread_mutex_destroy(&s->mu);
}

size_t srv_count(srv *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->n_reqs;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void srv_script(srv *s, const step *steps, size_t n)
{
    pthread_mutex_lock(&s->mu);
    memcpy(s->steps, steps, n * sizeof(*steps));
    s->n_steps = n;
    pthread_mutex_unlock(&s->mu);
}
