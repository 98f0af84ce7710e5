/* The crash-safety journal: append-only JSONL with an fsync per line (see rec_journal.h). */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "prov_pacer.h"
#include "rec_journal.h"
#include "prov_statedir.h"

#define JOURNAL_FILE "journal.jsonl"
#define MAX_LINE (64 * 1024)

struct rec_journal {
    int fd;     /* O_APPEND, -1 when read-only */
    char *dir;  /* the state directory */
    char *path; /* <dir>/journal.jsonl */
    char *cycle;
    rec_journal_entry *v;
    size_t n, cap;
    bool unsynced; /* lines written since the last fdatasync (rec_journal_append_unsynced) */
};

static void entry_free(rec_journal_entry *e)
{
    free(e->cycle);
    free(e->address);
    free(e->action);
    free(e->region);
    free(e->name);
    free(e->client_token);
    free(e->image_id);
    free(e->code);
    memset(e, 0, sizeof(*e));
}

/* Copies a possibly-NULL string; sets *ok false on allocation failure. */
static char *dup_opt(const char *s, int *ok)
{
    if (s == NULL)
        return NULL;
    char *d = strdup(s);
    if (d == NULL)
        *ok = 0;
    return d;
}

static int entry_copy(rec_journal_entry *dst, const rec_journal_entry *src)
{
    int ok = 1;
    memset(dst, 0, sizeof(*dst));
    dst->phase = src->phase;
    dst->ts_ms = src->ts_ms;
    dst->cycle = dup_opt(src->cycle, &ok);
    dst->address = dup_opt(src->address, &ok);
    dst->action = dup_opt(src->action, &ok);
    dst->region = dup_opt(src->region, &ok);
    dst->name = dup_opt(src->name, &ok);
    dst->client_token = dup_opt(src->client_token, &ok);
    dst->image_id = dup_opt(src->image_id, &ok);
    dst->code = dup_opt(src->code, &ok);
    dst->quota = src->quota;
    dst->build_ms = src->build_ms;
    dst->build_lo_ms = src->build_lo_ms;
    if (!ok) {
        entry_free(dst);
        return -ENOMEM;
    }
    return 0;
}

/* Takes ownership of e's strings on success. */
static int push_entry(rec_journal *j, rec_journal_entry *e)
{
    if (j->n == j->cap) {
        size_t cap = j->cap ? j->cap * 2 : 64;
        rec_journal_entry *grown = realloc(j->v, cap * sizeof(*grown));
        if (grown == NULL)
            return -ENOMEM;
        j->v = grown;
        j->cap = cap;
    }
    j->v[j->n++] = *e;
    memset(e, 0, sizeof(*e));
    return 0;
}

static char *json_str_dup(json_t *obj, const char *key, int *ok)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return dup_opt(s, ok);
}

/* Parses one line into e; returns 0, -EPROTO for a line that is not a journal entry (skipped),
 * or -ENOMEM. */
static int parse_line(const char *line, size_t len, rec_journal_entry *e)
{
    json_error_t jerr;
    json_t *o = json_loadb(line, len, 0, &jerr);
    if (o == NULL || !json_is_object(o)) {
        json_decref(o);
        return -EPROTO;
    }
    const char *phase = json_string_value(json_object_get(o, "phase"));
    json_t *ts = json_object_get(o, "ts_ms");
    if (phase == NULL || !json_is_integer(ts)) {
        json_decref(o);
        return -EPROTO;
    }
    int ok = 1;
    memset(e, 0, sizeof(*e));
    e->phase = strcmp(phase, "result") == 0 ? REC_JOURNAL_RESULT : REC_JOURNAL_INTENT;
    e->ts_ms = (uint64_t)json_integer_value(ts);
    e->cycle = json_str_dup(o, "cycle", &ok);
    e->address = json_str_dup(o, "address", &ok);
    e->action = json_str_dup(o, "action", &ok);
    e->region = json_str_dup(o, "region", &ok);
    e->name = json_str_dup(o, "name", &ok);
    e->client_token = json_str_dup(o, "client_token", &ok);
    e->image_id = json_str_dup(o, "image_id", &ok);
    e->code = json_str_dup(o, "code", &ok);
    json_t *q = json_object_get(o, "quota");
    if (json_is_integer(q) && json_integer_value(q) > 0 && json_integer_value(q) < 100000)
        e->quota = (unsigned)json_integer_value(q);
    /* Build times: at most a week, so a corrupt line cannot make the estimate absurd. */
    json_t *b = json_object_get(o, "build_ms"), *bl = json_object_get(o, "build_lo_ms");
    if (json_is_integer(b) && json_integer_value(b) > 0 &&
        json_integer_value(b) < 7 * 24 * 3600 * 1000ll) {
        e->build_ms = (uint64_t)json_integer_value(b);
        if (json_is_integer(bl) && json_integer_value(bl) > 0 &&
            (uint64_t)json_integer_value(bl) < e->build_ms)
            e->build_lo_ms = (uint64_t)json_integer_value(bl);
    }
    json_decref(o);
    if (!ok) {
        entry_free(e);
        return -ENOMEM;
    }
    return 0;
}

/* Renders e as one JSON line (with the trailing newline); malloc'd or NULL. */
static char *format_line(const rec_journal_entry *e)
{
    char iso[40];
    time_t secs = (time_t)(e->ts_ms / 1000);
    struct tm tm;
    if (gmtime_r(&secs, &tm) == NULL)
        return NULL;
    size_t k = strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(iso + k, sizeof(iso) - k, ".%03uZ", (unsigned)(e->ts_ms % 1000));

    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    int bad = 0;
    bad |= json_object_set_new(o, "ts", json_string(iso));
    bad |= json_object_set_new(o, "ts_ms", json_integer((json_int_t)e->ts_ms));
    bad |= json_object_set_new(o, "phase",
                               json_string(e->phase == REC_JOURNAL_RESULT ? "result" : "intent"));
    const struct {
        const char *key;
        const char *val;
    } fields[] = {{"cycle", e->cycle},      {"address", e->address},
                  {"action", e->action},    {"region", e->region},
                  {"name", e->name},        {"client_token", e->client_token},
                  {"image_id", e->image_id}};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (fields[i].val != NULL)
            bad |= json_object_set_new(o, fields[i].key, json_string(fields[i].val));
    if (e->phase == REC_JOURNAL_RESULT)
        bad |= json_object_set_new(o, "code", e->code ? json_string(e->code) : json_null());
    if (e->quota > 0)
        bad |= json_object_set_new(o, "quota", json_integer((json_int_t)e->quota));
    if (e->build_ms > 0)
        bad |= json_object_set_new(o, "build_ms", json_integer((json_int_t)e->build_ms));
    if (e->build_lo_ms > 0)
        bad |= json_object_set_new(o, "build_lo_ms", json_integer((json_int_t)e->build_lo_ms));
    char *s = bad ? NULL : json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (s == NULL)
        return NULL;
    size_t len = strlen(s);
    char *line = realloc(s, len + 2);
    if (line == NULL) {
        free(s);
        return NULL;
    }
    line[len] = '\n';
    line[len + 1] = '\0';
    return line;
}

/* Reads every line of f into j. *ret_valid is the length of the file up to the end of its last
 * valid entry: what follows is a torn line from a crash (no newline) or lines that are not
 * entries, which rec_journal_open cuts so that the next line is appended on a clean end. */
static int load(rec_journal *j, FILE *f, off_t *ret_valid)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    off_t end = 0, valid = 0;
    int rc = 0;
    while ((len = getline(&line, &cap, f)) > 0) {
        if (line[len - 1] != '\n')
            break; /* a torn last line: not ours to trust */
        end += len;
        if (len > MAX_LINE)
            continue;
        rec_journal_entry e;
        int prc = parse_line(line, (size_t)len - 1, &e);
        if (prc == -EPROTO)
            continue;
        if (prc < 0 || (prc = push_entry(j, &e)) < 0) {
            entry_free(&e);
            rc = prc;
            break;
        }
        valid = end;
    }
    if (rc == 0 && ferror(f))
        rc = -EIO;
    free(line);
    *ret_valid = valid;
    return rc;
}

static int is_create_result(const rec_journal_entry *e)
{
    return e->phase == REC_JOURNAL_RESULT && e->code == NULL && e->image_id != NULL &&
           e->action != NULL && strcmp(e->action, "CreateCustomImage") == 0 &&
           e->client_token != NULL;
}

/* A successful result under a ClientToken younger than the cloud's memory of tokens. */
static int is_recent_token_result(const rec_journal_entry *e, uint64_t now)
{
    return e->phase == REC_JOURNAL_RESULT && e->code == NULL && e->client_token != NULL &&
           e->ts_ms + REC_JOURNAL_TOKEN_TTL_MS > now;
}

/* Keeps the lines of the last keep cycles, plus the newest successful create per token (needed
 * to tell a vanished image from a lagging list) and every successful result whose token the
 * cloud may still remember (rec_journal_token_used), rewriting the file atomically. */
static int compact(rec_journal *j, unsigned keep)
{
    struct timespec now_ts;
    (void)clock_gettime(CLOCK_REALTIME, &now_ts);
    uint64_t now = (uint64_t)now_ts.tv_sec * 1000u + (uint64_t)now_ts.tv_nsec / 1000000u;
    /* Walk backwards collecting distinct cycle ids until keep of them are seen. */
    size_t cut = 0, seen = 0;
    const char *last = NULL;
    for (size_t i = j->n; i-- > 0;) {
        const char *c = j->v[i].cycle ? j->v[i].cycle : "";
        if (last == NULL || strcmp(c, last) != 0) {
            /* Count a cycle once even if its lines are interleaved with others. */
            int dup = 0;
            for (size_t k = i + 1; k < j->n && !dup; k++)
                dup = strcmp(j->v[k].cycle ? j->v[k].cycle : "", c) == 0;
            if (!dup && ++seen > keep) {
                cut = i + 1;
                break;
            }
            last = c;
        }
    }
    if (cut == 0)
        return 0;

    char *tmp = NULL;
    int fd = prov_statedir_mktemp(j->dir, JOURNAL_FILE, &tmp);
    if (fd < 0)
        return fd;
    unsigned char *keep_flags = calloc(j->n, 1);
    if (keep_flags == NULL) {
        (void)close(fd);
        (void)unlink(tmp);
        free(tmp);
        return -ENOMEM;
    }
    int rc = 0;
    for (size_t i = 0; i < j->n && rc == 0; i++) {
        int keep_it = i >= cut || is_recent_token_result(&j->v[i], now) ||
                      (j->v[i].quota > 0 && j->v[i].ts_ms + REC_JOURNAL_TOKEN_TTL_MS > now);
        if (!keep_it && is_create_result(&j->v[i])) {
            keep_it = 1;
            for (size_t k = i + 1; k < j->n && keep_it; k++)
                if (is_create_result(&j->v[k]) &&
                    strcmp(j->v[k].client_token, j->v[i].client_token) == 0)
                    keep_it = 0;
        }
        keep_flags[i] = (unsigned char)keep_it;
        if (!keep_it)
            continue;
        char *line = format_line(&j->v[i]);
        if (line == NULL) {
            rc = -ENOMEM;
            break;
        }
        rc = rec_write_all(fd, line, strlen(line));
        free(line);
    }
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0)
        rc = prov_statedir_commit(j->dir, tmp, JOURNAL_FILE);
    else
        (void)unlink(tmp);
    if (rc == 0) {
        size_t kept = 0;
        for (size_t i = 0; i < j->n; i++) {
            if (keep_flags[i])
                j->v[kept++] = j->v[i];
            else
                entry_free(&j->v[i]);
        }
        j->n = kept;
    }
    free(keep_flags);
    free(tmp);
    return rc;
}

/* Allocates a journal for `<state_dir>/journal.jsonl` named cycle_id; nothing is opened. */
static int journal_new(const char *state_dir, const char *cycle_id, rec_journal **ret)
{
    rec_journal *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return -ENOMEM;
    j->fd = -1;
    j->dir = strdup(state_dir);
    j->path = prov_statedir_path(state_dir, JOURNAL_FILE);
    j->cycle = strdup(cycle_id);
    if (j->dir == NULL || j->path == NULL || j->cycle == NULL) {
        rec_journal_close(j);
        return -ENOMEM;
    }
    *ret = j;
    return 0;
}

/* Reads every line of fd from the start (fd stays open). */
static int read_fd(rec_journal *j, int fd, off_t *ret_valid)
{
    int dfd = dup(fd);
    if (dfd < 0)
        return -errno;
    FILE *f = fdopen(dfd, "r");
    if (f == NULL) {
        int rc = -errno;
        (void)close(dfd);
        return rc;
    }
    int rc = fseeko(f, 0, SEEK_SET) < 0 ? -errno : load(j, f, ret_valid);
    (void)fclose(f);
    return rc;
}

/* True when fd (locked) is still the file named by path. */
static bool is_current(int fd, const char *path)
{
    struct stat a, b;
    return fstat(fd, &a) == 0 && lstat(path, &b) == 0 && a.st_dev == b.st_dev &&
           a.st_ino == b.st_ino;
}

/* Opens the journal for appending and takes its flock. Compaction renames a new file over the
 * name while holding the old file's lock, so after the lock is granted the name is checked to
 * still be the file locked; otherwise the new file is opened and locked instead. Returns the
 * locked fd or a negative errno. */
static int open_locked(rec_journal *j)
{
    for (int tries = 0; tries < 100; tries++) {
        int fd = prov_statedir_open(j->dir, JOURNAL_FILE, O_RDWR | O_APPEND | O_CREAT, 0600);
        if (fd < 0)
            return fd;
        int rc = 0;
        while (flock(fd, LOCK_EX) < 0)
            if (errno != EINTR) {
                rc = -errno;
                break;
            }
        if (rc == 0 && is_current(fd, j->path))
            return fd;
        (void)close(fd);
        if (rc < 0)
            return rc;
    }
    return -EAGAIN;
}

/* Makes j->fd the current journal file, locked: the fd already held when the name still points
 * at it, else a fresh one (see open_locked). */
static int relock(rec_journal *j)
{
    if (j->fd >= 0) {
        int rc;
        while ((rc = flock(j->fd, LOCK_EX)) < 0 && errno == EINTR)
            ;
        if (rc == 0 && is_current(j->fd, j->path))
            return 0;
        (void)close(j->fd);
        j->fd = -1;
    }
    int fd = open_locked(j);
    if (fd < 0)
        return fd;
    j->fd = fd;
    return 0;
}

int rec_journal_open(const char *state_dir, const char *cycle_id, unsigned keep_cycles,
                     rec_journal **ret)
{
    if (state_dir == NULL || cycle_id == NULL || ret == NULL)
        return -EINVAL;
    _cleanup_(rec_journal_closep) rec_journal *j = NULL;
    int rc = journal_new(state_dir, cycle_id, &j);
    if (rc < 0)
        return rc;
    rc = relock(j);
    if (rc < 0)
        return rc;
    off_t valid = 0;
    rc = read_fd(j, j->fd, &valid);
    if (rc < 0)
        return rc;
    /* A torn last line (a crash mid-append) is cut away; otherwise the next line would be
     * glued to it and lost. */
    struct stat st;
    if (fstat(j->fd, &st) == 0 && st.st_size > valid &&
        (ftruncate(j->fd, valid) < 0 || fsync(j->fd) < 0))
        return -errno;
    rc = compact(j, keep_cycles ? keep_cycles : 20);
    if (rc == -ENOMEM)
        return rc; /* other compaction failures leave the old file, still valid */
    /* After a compaction the name is a new file: move to it (its lock is free). */
    rc = relock(j);
    if (rc < 0)
        return rc;
    (void)flock(j->fd, LOCK_UN);
    *ret = PROV_TAKE_PTR(j);
    return 0;
}

int rec_journal_open_readonly(const char *state_dir, rec_journal **ret)
{
    if (state_dir == NULL || ret == NULL)
        return -EINVAL;
    _cleanup_(rec_journal_closep) rec_journal *j = NULL;
    int rc = journal_new(state_dir, "read-only", &j);
    if (rc < 0)
        return rc;
    int fd = prov_statedir_open(state_dir, JOURNAL_FILE, O_RDONLY, 0);
    if (fd >= 0) {
        off_t valid;
        rc = read_fd(j, fd, &valid);
        (void)close(fd);
    } else if (fd != -ENOENT) {
        rc = fd;
    }
    if (rc < 0)
        return rc;
    *ret = PROV_TAKE_PTR(j);
    return 0;
}

void rec_journal_close(rec_journal *j)
{
    if (j == NULL)
        return;
    (void)rec_journal_sync(j);
    if (j->fd >= 0)
        (void)close(j->fd);
    for (size_t i = 0; i < j->n; i++)
        entry_free(&j->v[i]);
    free(j->v);
    free(j->dir);
    free(j->path);
    free(j->cycle);
    free(j);
}

/* Appends one line under the journal's flock, following a compaction by another process to
 * the new file, and after a torn line left by a crashed writer (so ours stays whole). */
static int append_line(rec_journal *j, const char *line)
{
    int rc = relock(j);
    if (rc < 0)
        return rc;
    struct stat st;
    char last = '\n';
    if (fstat(j->fd, &st) == 0 && st.st_size > 0 && pread(j->fd, &last, 1, st.st_size - 1) != 1)
        last = '\n';
    if (last != '\n')
        rc = rec_write_all(j->fd, "\n", 1);
    if (rc == 0)
        rc = rec_write_all(j->fd, line, strlen(line));
    (void)flock(j->fd, LOCK_UN);
    if (rc == 0)
        j->unsynced = true;
    return rc;
}

int rec_journal_sync(rec_journal *j)
{
    if (j == NULL || j->fd < 0 || !j->unsynced)
        return 0;
    if (fdatasync(j->fd) < 0)
        return -errno;
    j->unsynced = false;
    return 0;
}

int rec_journal_append(rec_journal *j, const rec_journal_entry *e)
{
    int rc = rec_journal_append_unsynced(j, e);
    return rc == 0 ? rec_journal_sync(j) : rc;
}

int rec_journal_append_unsynced(rec_journal *j, const rec_journal_entry *e)
{
    if (j == NULL || e == NULL)
        return -EINVAL;
    if (j->fd < 0)
        return -EROFS;
    rec_journal_entry copy;
    int rc = entry_copy(&copy, e);
    if (rc < 0)
        return rc;
    free(copy.cycle);
    copy.cycle = strdup(j->cycle);
    if (copy.cycle == NULL) {
        entry_free(&copy);
        return -ENOMEM;
    }
    if (copy.ts_ms == 0)
        copy.ts_ms = prov_now_ms();
    char *line = format_line(&copy);
    if (line == NULL) {
        entry_free(&copy);
        return -ENOMEM;
    }
    rc = append_line(j, line);
    free(line);
    if (rc == 0)
        rc = push_entry(j, &copy);
    if (rc < 0)
        entry_free(&copy);
    return rc;
}

const rec_journal_entry *rec_journal_entries(const rec_journal *j, size_t *ret_n)
{
    *ret_n = j ? j->n : 0;
    return j ? j->v : NULL;
}

const rec_journal_entry *rec_journal_find_created(const rec_journal *j, const char *client_token)
{
    if (j == NULL || client_token == NULL)
        return NULL;
    for (size_t i = j->n; i-- > 0;)
        if (is_create_result(&j->v[i]) && strcmp(j->v[i].client_token, client_token) == 0)
            return &j->v[i];
    return NULL;
}

int rec_journal_token_used(const rec_journal *j, const char *client_token)
{
    if (j == NULL || client_token == NULL)
        return 0;
    for (size_t i = j->n; i-- > 0;) {
        const rec_journal_entry *e = &j->v[i];
        if (e->phase == REC_JOURNAL_RESULT && e->code == NULL && e->client_token != NULL &&
            strcmp(e->client_token, client_token) == 0)
            return 1;
    }
    return 0;
}

unsigned rec_journal_learned_quota(const rec_journal *j, const char *region, uint64_t now_ms,
                                   uint64_t max_age_ms)
{
    if (j == NULL || region == NULL)
        return 0;
    for (size_t i = j->n; i-- > 0;) {
        const rec_journal_entry *e = &j->v[i];
        if (e->quota == 0 || e->region == NULL || strcmp(e->region, region) != 0)
            continue;
        return e->ts_ms + max_age_ms > now_ms ? e->quota : 0;
    }
    return 0;
}

int rec_journal_intent_open(const rec_journal *j, const char *client_token)
{
    if (j == NULL || client_token == NULL)
        return 0;
    for (size_t i = j->n; i-- > 0;) {
        const rec_journal_entry *e = &j->v[i];
        if (e->client_token == NULL || strcmp(e->client_token, client_token) != 0)
            continue;
        return e->phase == REC_JOURNAL_INTENT;
    }
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void rec_journal_learned_build(const rec_journal *j, const char *region, uint64_t now_ms,
                               uint64_t max_age_ms, rec_build_learned *ret)
{
    uint64_t hi[REC_BUILD_SAMPLES], lo[REC_BUILD_SAMPLES];
    size_t n_lo = 0;
    rec_build_learned r = {0};
    for (size_t i = j ? j->n : 0; i > 0 && r.n < REC_BUILD_SAMPLES; i--) {
        const rec_journal_entry *e = &j->v[i - 1];
        if (e->build_ms == 0 || e->action == NULL || strcmp(e->action, REC_JOURNAL_AVAILABLE) ||
            e->ts_ms + max_age_ms <= now_ms ||
            (region != NULL && (e->region == NULL || strcmp(e->region, region) != 0)))
            continue;
        hi[r.n++] = e->build_ms;
        if (e->build_lo_ms > 0)
            lo[n_lo++] = e->build_lo_ms;
    }
    /* Medians: one sample delayed by a slow answer or a busy machine does not move them. */
    if (r.n > 0) {
        qsort(hi, r.n, sizeof(hi[0]), cmp_u64);
        r.typical_ms = r.hi_ms = hi[r.n / 2];
    }
    if (n_lo > 0) {
        qsort(lo, n_lo, sizeof(lo[0]), cmp_u64);
        r.lo_ms = lo[n_lo / 2];
    }
    *ret = r;
}
