/* Test helpers around the real emulator binary (see emu_proc.h). Plain libcurl easy calls for
 * the admin routes: tests may use them from any thread without a loop. */
#include "emu_proc.h"
#include "test_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int read_port(const char *path, unsigned *ret)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        return -errno;
    }
    unsigned port = 0;
    int n = fscanf(f, "%u", &port);
    (void)fclose(f);
    if (n != 1 || port == 0 || port > 65535) {
        return -EAGAIN;
    }
    *ret = port;
    return 0;
}

int emu_proc_start(emu_proc *p, const char *const *extra_args)
{
    memset(p, 0, sizeof(*p));
    (void)snprintf(p->dir, sizeof(p->dir), "/tmp/imgrecon-emu-XXXXXX");
    if (!mkdtemp(p->dir)) {
        return -errno;
    }
    char port_file[128];
    (void)snprintf(port_file, sizeof(port_file), "%s/port", p->dir);
    (void)snprintf(p->journal, sizeof(p->journal), "%s/journal.jsonl", p->dir);
    const char *argv[64] = {
        IMGRECON_EMULATOR_BIN, "--listen", "127.0.0.1:0", "--port-file", port_file,
        "--journal",           p->journal};
    size_t n = 7;
    for (size_t i = 0; extra_args && extra_args[i] && n < 63; i++) {
        argv[n++] = extra_args[i];
    }
    argv[n] = NULL;
    pid_t parent = getpid(), pid = fork();
    if (pid < 0) {
        return -errno;
    }
    if (pid == 0) {
        test_proc_die_with(parent);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    p->pid = pid;
    /* The port file appears (atomically) once the socket is bound; poll it, bounded. */
    for (int i = 0; i < 1000; i++) {
        if (read_port(port_file, &p->port) == 0) {
            (void)snprintf(p->base_url, sizeof(p->base_url), "http://127.0.0.1:%u", p->port);
            return 0;
        }
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            p->pid = 0;
            return -ECHILD;
        }
        sleep_ms(10);
    }
    (void)emu_proc_stop(p);
    return -ETIMEDOUT;
}

int emu_proc_stop(emu_proc *p)
{
    int result = -1;
    if (p->pid > 0) {
        (void)kill(p->pid, SIGTERM);
        int status = 0;
        bool done = false;
        for (int i = 0; i < 1000 && !done; i++) {
            pid_t r = waitpid(p->pid, &status, WNOHANG);
            done = r == p->pid || (r < 0 && errno != EINTR);
            if (!done) {
                sleep_ms(10);
            }
        }
        if (!done) {
            (void)kill(p->pid, SIGKILL);
            (void)waitpid(p->pid, &status, 0);
        } else if (WIFEXITED(status)) {
            result = WEXITSTATUS(status);
        }
        p->pid = 0;
    }
    if (p->dir[0]) {
        char path[160];
        const char *names[] = {"port", "journal.jsonl"};
        for (size_t i = 0; i < 2; i++) {
            (void)snprintf(path, sizeof(path), "%s/%s", p->dir, names[i]);
            (void)unlink(path);
        }
        (void)rmdir(p->dir);
        p->dir[0] = '\0';
    }
    return result;
}

long emu_proc_line_ms(const json_t *line)
{
    const char *ts = json_string_value(json_object_get(line, "ts"));
    struct tm tm = {0};
    int ms = 0;
    if (ts == NULL || sscanf(ts, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                             &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (long)timegm(&tm) * 1000 + ms;
}

json_t *emu_proc_journal(const emu_proc *p)
{
    FILE *f = fopen(p->journal, "re");
    if (!f) {
        return NULL;
    }
    json_t *arr = json_array();
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while (arr && (len = getline(&line, &cap, f)) > 0) {
        if (line[len - 1] != '\n') {
            break; /* a line still being written */
        }
        json_t *o = json_loadb(line, (size_t)len, 0, NULL);
        if (o && json_array_append_new(arr, o) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    free(line);
    (void)fclose(f);
    return arr;
}

typedef struct buf {
    char *s;
    size_t n;
} buf;

static size_t on_data(char *data, size_t size, size_t nmemb, void *ud)
{
    buf *b = ud;
    size_t add = size * nmemb;
    char *ns = realloc(b->s, b->n + add + 1);
    if (!ns) {
        return 0;
    }
    b->s = ns;
    memcpy(b->s + b->n, data, add);
    b->n += add;
    b->s[b->n] = '\0';
    return add;
}

/* One admin request; returns the HTTP status (0 on a transport error) and the body. */
static long admin_call(const emu_proc *p, const char *method, const char *path, const char *body,
                       buf *out)
{
    CURL *c = curl_easy_init();
    if (!c) {
        return 0;
    }
    char url[160];
    (void)snprintf(url, sizeof(url), "%s%s", p->base_url, path);
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    (void)curl_easy_setopt(c, CURLOPT_URL, url);
    (void)curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    (void)curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    (void)curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    (void)curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    (void)curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    (void)curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    if (body) {
        (void)curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    }
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK) {
        (void)curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    }
    curl_slist_free_all(hdr);
    curl_easy_cleanup(c);
    return status;
}

json_t *emu_proc_state(const emu_proc *p)
{
    buf b = {0};
    long st = admin_call(p, "GET", "/_emulator/state", NULL, &b);
    json_t *o = st == 200 && b.s ? json_loads(b.s, 0, NULL) : NULL;
    free(b.s);
    return o;
}

static int admin_ok(const emu_proc *p, const char *method, const char *path, const char *body)
{
    buf b = {0};
    long st = admin_call(p, method, path, body, &b);
    free(b.s);
    return st == 200 ? 0 : -EIO;
}

int emu_proc_reset(const emu_proc *p)
{
    return admin_ok(p, "POST", "/_emulator/reset", "");
}

int emu_proc_add_fault(const emu_proc *p, const char *json_body)
{
    return admin_ok(p, "POST", "/_emulator/faults", json_body);
}

int emu_proc_clear_faults(const emu_proc *p)
{
    return admin_ok(p, "DELETE", "/_emulator/faults", NULL);
}
