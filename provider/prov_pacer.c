/* The pacer (provider/prov_pacer.h): a sliding-window call log per (access key hash, product,
 * action), shared by every imgrecon process on the host through a file in the state directory.
 *
 * File format (`<state_dir>/pacer.log`, text, one line per key):
 *
 *     imgrecon-pacer 2
 *     clock <id>                                     (optional, see "Clock" below)
 *     corrupt <ms>                                   (optional, see below)
 *     k <key> <cooldown_until_ms> <n> <t1> ... <tn>   (ascending call times, boot-clock ms)
 *
 * where <key> is the first 16 hex digits of sha256(access key id), ':', product, ':', action.
 * The access key itself is never written.
 *
 * Concurrency: a separate lock file `<state_dir>/pacer.lock` is flock(LOCK_EX)'d for the whole
 * read-modify-write of one operation and released at once; the data file is replaced through a
 * temp file and rename(2), so a crash mid-write leaves the previous file whole. The lock lives on
 * its own file because a rename would give the data file a new inode under a waiting locker.
 *
 * Corruption: a file that exists but does not parse (bad header, a bad line, an empty file after
 * a power loss) is never silently treated as an empty budget. The parsable keys are kept, and a
 * `corrupt <now>` marker is written: a key without a line then counts as cooling down until
 * marker + its window, i.e. one full window of caution, after which it works normally. The
 * marker is dropped after a day.
 *
 * Clock: the call log is shared by processes and outlives them, and the cloud counts its windows
 * on a clock of its own that no step of ours moves. The file and memory backends therefore keep
 * their times on CLOCK_BOOTTIME (prov_pacer_now_ms): one clock for every process of the host,
 * never stepped by NTP or an administrator, counting suspended time. Header version 2 says so;
 * version 1 files held wall-clock times. Across a reboot the boot clock starts again near zero,
 * so a stored time can only look younger than it is (or lie in the future), never older: the
 * cautious direction. Times in the future count as "now" and are stored so at once, so a reboot
 * or an old version-1 file costs at most one window of waiting, never more.
 *
 * The `clock` line names the boot clock the times are on (clock_id: the kernel's boot id and the
 * time namespace). A log that names another clock, or none (written before 2026-12-03, or by a
 * version-1 writer), has times this process cannot read: every call time counts as now and every
 * cooldown as a whole window (the cautious side, once), and the log is rewritten with this clock.
 * A log that names another clock after this process wrote it was written since by another host
 * (a state directory on a network filesystem) or another time namespace, whose times would look
 * arbitrarily old here: the operation fails with -EUSERS instead of spending the budget twice.
 * The etcd backend
 * takes the same boot-clock times and stamps each call on both clocks, the wall clock for other
 * hosts and the boot clock for its own (prov_pacer_etcd.c). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "prov_pacer.h"
#include "prov_statedir.h" /* the one state-directory file helper (reconcile/) */
#include "prov_pacer_etcd.h"
#include "prov_sig.h" /* prov_sha256_hex, prov_random_nonce */

#define PACER_HEADER "imgrecon-pacer 2"
#define PACER_HEADER_V1 "imgrecon-pacer 1" /* wall-clock times: read, clamped, rewritten */
#define PACER_KEY_MAX 200
#define PACER_TS_MAX 100000           /* more call times on one line than this is corrupt */
#define PACER_MARKER_TTL_MS 86400000u /* a corrupt marker is forgotten after a day */

typedef struct pacer_key {
    char *key;
    uint64_t cooldown_until;
    uint64_t *ts; /* ascending */
    size_t n;
} pacer_key;

struct prov_pacer {
    char *path;      /* NULL: in memory */
    char *dir;       /* the state directory; NULL: in memory */
    int lock_fd;     /* -1 in memory */
    pacer_key *keys; /* in memory: the state; file mode: scratch for one operation */
    size_t n_keys;
    bool corrupt;
    uint64_t corrupt_at;
    char log_clock[PROV_PACER_CLOCK_ID_LEN + 1]; /* file mode: the log's clock line, "" none */
    bool foreign;                                /* file mode: the log's times are not ours */
    bool wrote;      /* file mode: this process saved the log (with its clock line) */
    prov_etcd *etcd; /* `ha`: the call log lives in etcd (prov_pacer_etcd.c); NULL: file */
    char *etcd_prefix;
    char clock_id[PROV_PACER_CLOCK_ID_LEN + 1]; /* this boot clock; "" unknown (file mode) */
};

static uint64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    if (clock_gettime(id, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t prov_now_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

uint64_t prov_pacer_now_ms(const prov_pacer *p)
{
    (void)p; /* every backend counts on the boot clock (the file comment) */
    return clock_ms(CLOCK_BOOTTIME);
}

static char *path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *s = malloc(a + b + 2);
    if (!s)
        return NULL;
    memcpy(s, dir, a);
    s[a] = '/';
    memcpy(s + a + 1, name, b + 1);
    return s;
}

static void keys_clear(prov_pacer *p)
{
    for (size_t i = 0; i < p->n_keys; i++) {
        free(p->keys[i].key);
        free(p->keys[i].ts);
    }
    free(p->keys);
    p->keys = NULL;
    p->n_keys = 0;
    p->corrupt = false;
    p->corrupt_at = 0;
    p->log_clock[0] = '\0';
    p->foreign = false;
}

/* Reads a small text file of /proc into buf (NUL-terminated, at most size - 1 bytes); 0 or a
 * negative errno. */
static int read_proc(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, size - 1);
    int err = n < 0 ? -errno : 0;
    (void)close(fd);
    if (err < 0 || n == 0)
        return err < 0 ? err : -ENODATA;
    buf[n] = '\0';
    return 0;
}

/* Names the boot clock of this process in ret_id (PROV_PACER_CLOCK_ID_LEN hex digits): a digest
 * of the kernel's boot id and the process's time namespace, so processes that read the same
 * CLOCK_BOOTTIME share it and no others do. Returns 0, or -ENOENT when /proc cannot tell (ret_id
 * is then ""). Called once when a pacer opens. */
static int clock_id(char ret_id[PROV_PACER_CLOCK_ID_LEN + 1])
{
    char text[160] = "", ns[64] = "", hex[65];
    ret_id[0] = '\0';
    /* Kernels before 5.6 have no time namespaces: every process then shares the boot clock. */
    ssize_t nl = readlink("/proc/self/ns/time", ns, sizeof(ns) - 1);
    ns[nl > 0 ? nl : 0] = '\0';
    if (read_proc("/proc/sys/kernel/random/boot_id", text, 64) < 0)
        return -ENOENT;
    strcat(text, ns);
    prov_sha256_hex(text, strlen(text), hex);
    memcpy(ret_id, hex, PROV_PACER_CLOCK_ID_LEN);
    ret_id[PROV_PACER_CLOCK_ID_LEN] = '\0';
    return 0;
}

/* Opens the pacer. The state directory is created (0700) when missing; the lock file is opened
 * once here, the data file is read on every operation. */
int prov_pacer_open(const char *state_dir, prov_pacer **ret)
{
    _cleanup_(prov_pacer_freep) prov_pacer *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->lock_fd = -1;
    if (state_dir) {
        p->path = path_join(state_dir, "pacer.log");
        p->dir = strdup(state_dir);
        if (!p->path || !p->dir)
            return -ENOMEM;
        if (mkdir(state_dir, 0700) != 0 && errno != EEXIST)
            return -errno;
        /* Every file in the state directory goes through prov_statedir (no symlink is followed). */
        int fd = prov_statedir_open(state_dir, "pacer.lock", O_RDWR | O_CREAT, 0600);
        if (fd < 0)
            return fd;
        p->lock_fd = fd;
        (void)clock_id(p->clock_id); /* unknown: the log is trusted as before, no clock line */
    }
    *ret = PROV_TAKE_PTR(p);
    return 0;
}

int prov_pacer_open_etcd(const char *const *endpoints, size_t n_endpoints, const char *prefix,
                         long timeout_ms, const char *ca_file, prov_pacer **ret)
{
    prov_pacer *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->lock_fd = -1;
    prov_etcd_opts eo = {endpoints, n_endpoints, timeout_ms, ca_file};
    int rc = prefix ? prov_etcd_new(NULL, &eo, &p->etcd) : -EINVAL;
    if (rc == 0 && (p->etcd_prefix = strdup(prefix)) == NULL)
        rc = -ENOMEM;
    /* Without /proc the etcd stamps get a random id: the process's own calls are still judged
     * on its boot clock. */
    _Static_assert(PROV_PACER_CLOCK_ID_LEN == 32, "a nonce is 32 hex digits");
    if (rc == 0 && clock_id(p->clock_id) < 0)
        rc = prov_random_nonce(p->clock_id);
    if (rc < 0) {
        prov_pacer_free(p);
        return rc;
    }
    *ret = p;
    return 0;
}

void prov_pacer_free(prov_pacer *p)
{
    if (!p)
        return;
    prov_etcd_close(p->etcd);
    free(p->etcd_prefix);
    keys_clear(p);
    if (p->lock_fd >= 0)
        (void)close(p->lock_fd);
    free(p->path);
    free(p->dir);
    free(p);
}

/* Builds "<16 hex of sha256(access key)>:<product>:<action>"; -EINVAL when product or action
 * holds a character the file format cannot carry. */
static int make_key(const char *access_key_id, const char *product, const char *action, char *buf,
                    size_t size)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    const char *ak = access_key_id ? access_key_id : "";
    if (!product || !action || !*product || !*action)
        return -EINVAL;
    for (const char *s = product; *s; s++)
        if (!(s[0] > ' ' && s[0] < 127 && s[0] != ':'))
            return -EINVAL;
    for (const char *s = action; *s; s++)
        if (!(s[0] > ' ' && s[0] < 127))
            return -EINVAL;
    if (EVP_Digest(ak, strlen(ak), md, &mdlen, EVP_sha256(), NULL) != 1)
        return -EIO;
    int n = snprintf(buf, size, "%02x%02x%02x%02x%02x%02x%02x%02x:%s:%s", md[0], md[1], md[2],
                     md[3], md[4], md[5], md[6], md[7], product, action);
    if (n < 0 || (size_t)n >= size)
        return -EINVAL;
    return 0;
}

static bool parse_u64(const char *s, uint64_t *ret)
{
    if (!s || *s < '0' || *s > '9')
        return false;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *ret = (uint64_t)v;
    return true;
}

static bool key_chars_ok(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > PACER_KEY_MAX)
        return false;
    for (; *k; k++)
        if (!(*k > ' ' && *k < 127))
            return false;
    return true;
}

/* Parses one "k ..." line into a new key appended to p. Returns 0, -EINVAL (corrupt line) or
 * -ENOMEM. */
static int parse_key_line(prov_pacer *p, char *line)
{
    char *save = NULL;
    char *tag = strtok_r(line, " ", &save);
    char *key = strtok_r(NULL, " ", &save);
    char *cool = strtok_r(NULL, " ", &save);
    char *cnt = strtok_r(NULL, " ", &save);
    uint64_t cooldown, n;
    if (!tag || strcmp(tag, "k") != 0 || !key || !key_chars_ok(key) ||
        !parse_u64(cool, &cooldown) || !parse_u64(cnt, &n) || n > PACER_TS_MAX)
        return -EINVAL;
    for (size_t i = 0; i < p->n_keys; i++)
        if (strcmp(p->keys[i].key, key) == 0)
            return -EINVAL;
    uint64_t *ts = n ? calloc((size_t)n, sizeof(*ts)) : NULL;
    if (n && !ts)
        return -ENOMEM;
    for (uint64_t i = 0; i < n; i++) {
        if (!parse_u64(strtok_r(NULL, " ", &save), &ts[i]) || (i > 0 && ts[i] < ts[i - 1])) {
            free(ts);
            return -EINVAL;
        }
    }
    if (strtok_r(NULL, " ", &save) != NULL) {
        free(ts);
        return -EINVAL;
    }
    pacer_key *nk = realloc(p->keys, (p->n_keys + 1) * sizeof(*nk));
    if (!nk) {
        free(ts);
        return -ENOMEM;
    }
    p->keys = nk;
    char *kc = strdup(key);
    if (!kc) {
        free(ts);
        return -ENOMEM;
    }
    p->keys[p->n_keys++] = (pacer_key){kc, cooldown, ts, (size_t)n};
    return 0;
}

/* Reads the data file into p->keys (file mode only, lock held). A missing file is an empty
 * state; a malformed one marks the state corrupt (see the file comment). */
static int load_file(prov_pacer *p, uint64_t now)
{
    keys_clear(p);
    int fd = prov_statedir_open(p->dir, "pacer.log", O_RDONLY, 0);
    if (fd < 0)
        return fd == -ENOENT ? 0 : fd;
    FILE *f = fdopen(fd, "r");
    if (!f) {
        int e = -errno;
        (void)close(fd);
        return e;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    bool bad = false, first = true;
    int rc = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        else
            bad = true; /* a torn last line */
        if (first) {
            first = false;
            if (strcmp(line, PACER_HEADER) != 0 && strcmp(line, PACER_HEADER_V1) != 0) {
                bad = true;
                break;
            }
            continue;
        }
        if (strncmp(line, "clock ", 6) == 0) {
            if (strlen(line + 6) == PROV_PACER_CLOCK_ID_LEN &&
                strspn(line + 6, "0123456789abcdef") == PROV_PACER_CLOCK_ID_LEN && !p->log_clock[0])
                memcpy(p->log_clock, line + 6, PROV_PACER_CLOCK_ID_LEN + 1);
            else
                bad = true;
            continue;
        }
        if (strncmp(line, "corrupt ", 8) == 0) {
            uint64_t at;
            if (parse_u64(line + 8, &at)) {
                p->corrupt = true;
                p->corrupt_at = at > now ? now : at;
            } else {
                bad = true;
            }
            continue;
        }
        rc = parse_key_line(p, line);
        if (rc == -EINVAL) {
            bad = true;
            rc = 0;
        } else if (rc < 0) {
            break;
        }
    }
    if (rc == 0 && ferror(f))
        rc = -EIO;
    free(line);
    (void)fclose(f);
    if (first)
        bad = true; /* the file exists but is empty */
    if (bad) {
        p->corrupt = true;
        p->corrupt_at = now;
    }
    return rc;
}

/* Writes p->keys to the temp file and renames it over the data file (lock held). */
static int save_file(prov_pacer *p, uint64_t now)
{
    char *tmp = NULL;
    int fd = prov_statedir_mktemp(p->dir, "pacer.log", &tmp);
    if (fd < 0)
        return fd;
    FILE *f = fdopen(fd, "w");
    if (!f) {
        int e = -errno;
        (void)close(fd);
        (void)unlink(tmp);
        free(tmp);
        return e;
    }
    fprintf(f, "%s\n", PACER_HEADER);
    if (p->clock_id[0])
        fprintf(f, "clock %s\n", p->clock_id);
    if (p->corrupt && now - p->corrupt_at < PACER_MARKER_TTL_MS)
        fprintf(f, "corrupt %" PRIu64 "\n", p->corrupt_at);
    for (size_t i = 0; i < p->n_keys; i++) {
        const pacer_key *k = &p->keys[i];
        fprintf(f, "k %s %" PRIu64 " %zu", k->key, k->cooldown_until, k->n);
        for (size_t j = 0; j < k->n; j++)
            fprintf(f, " %" PRIu64, k->ts[j]);
        fputc('\n', f);
    }
    int rc = 0;
    if (fflush(f) != 0 || ferror(f))
        rc = -EIO;
    if (rc == 0 && fsync(fileno(f)) != 0)
        rc = -errno;
    if (fclose(f) != 0 && rc == 0)
        rc = -EIO;
    if (rc == 0)
        rc = prov_statedir_commit(p->dir, tmp, "pacer.log");
    else
        (void)unlink(tmp);
    free(tmp);
    if (rc == 0 && p->clock_id[0])
        p->wrote = true;
    return rc;
}

/* Finds the key, or adds it. A key added while a corrupt marker is active starts cooling down
 * until marker + window. Returns NULL on allocation failure. */
static pacer_key *get_key(prov_pacer *p, const char *key, uint64_t window_ms)
{
    for (size_t i = 0; i < p->n_keys; i++)
        if (strcmp(p->keys[i].key, key) == 0)
            return &p->keys[i];
    pacer_key *nk = realloc(p->keys, (p->n_keys + 1) * sizeof(*nk));
    if (!nk)
        return NULL;
    p->keys = nk;
    char *kc = strdup(key);
    if (!kc)
        return NULL;
    uint64_t cool = p->corrupt ? p->corrupt_at + window_ms : 0;
    p->keys[p->n_keys] = (pacer_key){kc, cool, NULL, 0};
    return &p->keys[p->n_keys++];
}

/* Drops call times that left the window and keeps at most `calls` (the newest), clamping times
 * in the future to now and cooldowns to one window. Returns whether it clamped anything: a clamp
 * must be stored, or the same future times would count as "now" again at every later operation
 * and hold the action back until the clock caught up with them. */
static bool key_trim(pacer_key *k, unsigned calls, uint64_t window_ms, uint64_t now)
{
    size_t keep_from = 0;
    bool clamped = false;
    for (size_t i = 0; i < k->n; i++) {
        if (k->ts[i] > now) {
            k->ts[i] = now;
            clamped = true;
        }
        if (k->ts[i] + window_ms <= now)
            keep_from = i + 1;
    }
    if (k->n - keep_from > calls)
        keep_from = k->n - calls;
    if (keep_from > 0) {
        memmove(k->ts, k->ts + keep_from, (k->n - keep_from) * sizeof(*k->ts));
        k->n -= keep_from;
    }
    if (k->cooldown_until > now + window_ms) {
        k->cooldown_until = now + window_ms;
        clamped = true;
    }
    return clamped;
}

/* Time until a call is allowed for a trimmed key (0: now). */
static uint64_t key_wait(const pacer_key *k, unsigned calls, uint64_t window_ms, uint64_t now)
{
    uint64_t wait = 0;
    if (k->cooldown_until > now)
        wait = k->cooldown_until - now;
    if (k->n >= calls) {
        uint64_t frees = k->ts[k->n - calls] + window_ms;
        if (frees > now && frees - now > wait)
            wait = frees - now;
    }
    return wait;
}

/* Moves the newest call time equal to sent to done (done >= sent), keeping the times ascending.
 * Returns whether anything changed: a call already trimmed out of the window is left alone. */
static bool key_settle(pacer_key *k, uint64_t sent, uint64_t done)
{
    if (done <= sent)
        return false;
    for (size_t i = k->n; i-- > 0;) {
        if (k->ts[i] != sent)
            continue;
        while (i + 1 < k->n && k->ts[i + 1] < done) {
            k->ts[i] = k->ts[i + 1];
            i++;
        }
        k->ts[i] = done;
        return true;
    }
    return false;
}

typedef enum { OP_ACQUIRE, OP_COOLDOWN, OP_BUDGET, OP_SETTLE } pacer_op;

/* One operation's inputs and outputs. Acquire takes up to `want` slots; settle moves n calls
 * (sent[i] to done[i]); `now` is the operation's time (for settle, the latest answer). */
typedef struct pacer_req {
    pacer_op op;
    unsigned calls;
    uint64_t window_ms;
    uint64_t now;
    unsigned want;
    const uint64_t *sent, *done;
    size_t n_settle;
    unsigned got;  /* out: slots taken */
    uint64_t wait; /* out: time until the next slot (0: one is free now) */
    unsigned left; /* out: calls still allowed in the window */
} pacer_req;

/* Applies one operation to a trimmed key (file or memory backend). Returns whether the key
 * changed, or -ENOMEM. */
static int key_apply(pacer_key *k, pacer_req *r)
{
    r->wait = key_wait(k, r->calls, r->window_ms, r->now);
    switch (r->op) {
    case OP_ACQUIRE:
        while (r->got < r->want && r->wait == 0) {
            uint64_t *nts = realloc(k->ts, (k->n + 1) * sizeof(*nts));
            if (!nts)
                return -ENOMEM;
            k->ts = nts;
            k->ts[k->n++] = r->now;
            r->got++;
            r->wait = key_wait(k, r->calls, r->window_ms, r->now);
        }
        return r->got > 0;
    case OP_COOLDOWN:
        if (k->cooldown_until < r->now + r->window_ms)
            k->cooldown_until = r->now + r->window_ms;
        return 1;
    case OP_SETTLE: {
        bool changed = false;
        for (size_t i = 0; i < r->n_settle; i++)
            changed |= key_settle(k, r->sent[i], r->done[i]);
        return changed;
    }
    case OP_BUDGET:
        break;
    }
    return 0;
}

/* A log on another clock (the file comment, "Clock"): -EUSERS when another host or time namespace
 * wrote it after this process did; otherwise every call time counts as now, every cooldown and
 * a corrupt marker from now, and the log is marked for rewriting with this clock. */
static int adopt_clock(prov_pacer *p, uint64_t now)
{
    if (!p->clock_id[0] || strcmp(p->log_clock, p->clock_id) == 0)
        return 0;
    if (p->wrote && p->log_clock[0])
        return -EUSERS;
    p->foreign = true;
    for (size_t i = 0; i < p->n_keys; i++) {
        pacer_key *k = &p->keys[i];
        for (size_t j = 0; j < k->n; j++)
            k->ts[j] = now;
        if (k->cooldown_until != 0)
            k->cooldown_until = UINT64_MAX; /* key_trim makes it one window from now */
    }
    if (p->corrupt)
        p->corrupt_at = now;
    return 0;
}

/* Takes the lock and reads the data file (file backend); a no-op in memory. */
static int pacer_lock(prov_pacer *p, uint64_t now)
{
    if (p->lock_fd < 0)
        return 0;
    while (flock(p->lock_fd, LOCK_EX) != 0)
        if (errno != EINTR)
            return -errno;
    int rc = load_file(p, now);
    if (rc == 0)
        rc = adopt_clock(p, now);
    if (rc < 0) {
        keys_clear(p);
        (void)flock(p->lock_fd, LOCK_UN);
    }
    return rc;
}

/* Forgets the scratch state and releases the lock (file backend); a no-op in memory. */
static void pacer_unlock(prov_pacer *p)
{
    if (p->lock_fd < 0)
        return;
    keys_clear(p);
    (void)flock(p->lock_fd, LOCK_UN);
}

/* The etcd backend (prov_pacer_etcd.c): a batch of slots or settled calls in one txn. */
static int pacer_etcd_run(prov_pacer *p, const char *keybuf, pacer_req *r)
{
    /* The prefix names the budget: every process with the same prefix shares it, whichever
     * access key it uses (several keys of one account count together at the cloud). */
    const char *colon = strchr(keybuf, ':');
    const char *key = colon ? colon + 1 : keybuf;
    const char *pre = p->etcd_prefix;
    /* The operation's time on both clocks: the caller's boot-clock time, and the wall clock's
     * distance from the boot clock now (a step of the wall clock moves it). */
    prov_pacer_etcd_clock c = {.boot = r->now};
    c.offset = (int64_t)clock_ms(CLOCK_REALTIME) - (int64_t)clock_ms(CLOCK_BOOTTIME);
    memcpy(c.id, p->clock_id, sizeof(c.id));
    switch (r->op) {
    case OP_SETTLE:
        return prov_pacer_etcd_settle(p->etcd, pre, key, r->sent, r->done, r->n_settle, &c);
    case OP_COOLDOWN:
        return prov_pacer_etcd_cooldown(p->etcd, pre, key, r->window_ms, &c);
    case OP_BUDGET:
        return prov_pacer_etcd_budget(p->etcd, pre, key, r->calls, r->window_ms, &c, &r->left);
    case OP_ACQUIRE:
        break;
    }
    unsigned got = 0;
    if (r->want == 0)
        return 0;
    do {
        int rc = prov_pacer_etcd_acquire(p->etcd, pre, key, r->calls, r->window_ms, &c,
                                         r->want - r->got, &got, &r->wait);
        if (rc < 0)
            return rc;
        r->got += got;
    } while (got > 0 && r->wait == 0 && r->got < r->want);
    return 0;
}

/* One locked read-modify-write. Every public operation goes through here so that the file is
 * read and written under the same lock, once per operation whatever the number of slots. */
static int pacer_op_run(prov_pacer *p, const char *access_key_id, const char *product,
                        const char *action, pacer_req *r)
{
    char keybuf[PACER_KEY_MAX + 1];
    if (!p || r->calls == 0 || r->window_ms == 0)
        return -EINVAL;
    int rc = make_key(access_key_id, product, action, keybuf, sizeof(keybuf));
    if (rc < 0)
        return rc;
    if (p->etcd != NULL)
        return pacer_etcd_run(p, keybuf, r);
    rc = pacer_lock(p, r->now);
    if (rc < 0)
        return rc;
    pacer_key *k = get_key(p, keybuf, r->window_ms);
    if (!k) {
        pacer_unlock(p);
        return -ENOMEM;
    }
    bool clamped = key_trim(k, r->calls, r->window_ms, r->now);
    int dirty = key_apply(k, r);
    if (dirty == 0 && clamped)
        dirty = 1;
    if (dirty >= 0 && p->lock_fd >= 0 && (dirty > 0 || p->corrupt || p->foreign))
        rc = save_file(p, r->now);
    else if (dirty < 0)
        rc = dirty;
    if (rc == 0 && k->cooldown_until <= r->now && k->n < r->calls)
        r->left = r->calls - (unsigned)k->n;
    pacer_unlock(p);
    return rc;
}

int prov_pacer_acquire(prov_pacer *p, const char *access_key_id, const char *product,
                       const char *action, unsigned calls, uint64_t window_ms, uint64_t now_ms,
                       uint64_t *ret_wait_ms)
{
    unsigned got = 0;
    uint64_t wait = 0;
    int rc = prov_pacer_acquire_n(p, access_key_id, product, action, calls, window_ms, now_ms, 1,
                                  &got, &wait);
    if (rc == 0 && ret_wait_ms)
        *ret_wait_ms = got == 1 ? 0 : wait;
    return rc;
}

int prov_pacer_acquire_n(prov_pacer *p, const char *access_key_id, const char *product,
                         const char *action, unsigned calls, uint64_t window_ms, uint64_t now_ms,
                         unsigned want, unsigned *ret_got, uint64_t *ret_wait_ms)
{
    pacer_req r = {
        .op = OP_ACQUIRE, .calls = calls, .window_ms = window_ms, .now = now_ms, .want = want};
    int rc = pacer_op_run(p, access_key_id, product, action, &r);
    if (rc < 0)
        return rc;
    if (ret_got)
        *ret_got = r.got;
    if (ret_wait_ms)
        *ret_wait_ms = r.got < want ? r.wait : 0;
    return 0;
}

int prov_pacer_cooldown(prov_pacer *p, const char *access_key_id, const char *product,
                        const char *action, uint64_t window_ms, uint64_t now_ms)
{
    pacer_req r = {.op = OP_COOLDOWN, .calls = UINT32_MAX, .window_ms = window_ms, .now = now_ms};
    return pacer_op_run(p, access_key_id, product, action, &r);
}

int prov_pacer_settle(prov_pacer *p, const char *access_key_id, const char *product,
                      const char *action, uint64_t window_ms, uint64_t sent_ms, uint64_t done_ms)
{
    return prov_pacer_settle_n(p, access_key_id, product, action, window_ms, &sent_ms, &done_ms, 1);
}

int prov_pacer_settle_n(prov_pacer *p, const char *access_key_id, const char *product,
                        const char *action, uint64_t window_ms, const uint64_t *sent_ms,
                        const uint64_t *done_ms, size_t n)
{
    uint64_t now = 0;
    for (size_t i = 0; i < n; i++)
        if (done_ms[i] > now)
            now = done_ms[i];
    if (n == 0)
        return 0;
    pacer_req r = {.op = OP_SETTLE,
                   .calls = UINT32_MAX,
                   .window_ms = window_ms,
                   .now = now,
                   .sent = sent_ms,
                   .done = done_ms,
                   .n_settle = n};
    return pacer_op_run(p, access_key_id, product, action, &r);
}

int prov_pacer_budget(prov_pacer *p, const char *access_key_id, const char *product,
                      const char *action, unsigned calls, uint64_t window_ms, uint64_t now_ms,
                      unsigned *ret_left)
{
    pacer_req r = {.op = OP_BUDGET, .calls = calls, .window_ms = window_ms, .now = now_ms};
    int rc = pacer_op_run(p, access_key_id, product, action, &r);
    if (rc == 0 && ret_left)
        *ret_left = r.left;
    return rc;
}
