/* The daemon's event log: text or JSON lines on stderr, journald priority prefixes, secret
 * scrubbing and error-text normalisation (see rec_log.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "prov_secret.h"
#include "prov_sig.h"
#include "rec_escape.h"
#include "rec_log.h"

struct rec_log {
    rec_log_opts opts;
    char **secrets;
    size_t n_secrets;
};

/* A growable byte buffer; on allocation failure `failed` is set and appends are ignored. */
typedef struct buf {
    char *p;
    size_t len, cap;
    bool failed;
} buf;

static void buf_reserve(buf *b, size_t extra)
{
    if (b->failed || b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 128;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *grown = realloc(b->p, cap);
    if (grown == NULL) {
        b->failed = true;
        return;
    }
    b->p = grown;
    b->cap = cap;
}

static void buf_add(buf *b, const char *s, size_t n)
{
    buf_reserve(b, n);
    if (b->failed)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_str(buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

static void buf_char(buf *b, char c)
{
    buf_add(b, &c, 1);
}

int rec_log_new(const rec_log_opts *opts, rec_log **ret)
{
    rec_log *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return -ENOMEM;
    l->opts = *opts;
    *ret = l;
    return 0;
}

void rec_log_clear_secrets(rec_log *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->n_secrets; i++)
        prov_free_secret(l->secrets[i]);
    free(l->secrets);
    l->secrets = NULL;
    l->n_secrets = 0;
}

void rec_log_free(rec_log *l)
{
    if (l == NULL)
        return;
    rec_log_clear_secrets(l);
    free(l);
}

void rec_log_set_json(rec_log *l, bool json)
{
    l->opts.json = json;
}

bool rec_log_journal_detect(int fd)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    char tail;
    struct stat st;

    if (js == NULL || sscanf(js, "%llu:%llu%c", &dev, &ino, &tail) != 2)
        return false;
    if (fstat(fd, &st) < 0)
        return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

/* The forms of secret a line may carry: as it is, percent-encoded once (a canonical query) and
 * twice (a V1 string to sign). A form that cannot be made (-ENOMEM) is NULL; the caller wipes
 * and frees forms[1] and forms[2] with secret_forms_clear. */
#define N_FORMS 3
static int secret_forms(const char *secret, char *forms[N_FORMS])
{
    forms[0] = (char *)secret;
    forms[1] = forms[2] = NULL;
    int rc = prov_pct_encode(secret, strlen(secret), &forms[1]);
    if (rc == 0)
        rc = prov_pct_encode(forms[1], strlen(forms[1]), &forms[2]);
    return rc;
}

static void secret_forms_clear(char *forms[N_FORMS])
{
    prov_free_secret(forms[1]);
    prov_free_secret(forms[2]);
}

/* Keeps a copy of value unless it is registered already. */
static int add_one(rec_log *l, const char *value)
{
    for (size_t i = 0; i < l->n_secrets; i++)
        if (strcmp(l->secrets[i], value) == 0)
            return 0;
    char **grown = realloc(l->secrets, (l->n_secrets + 1) * sizeof(*grown));
    if (grown == NULL)
        return -ENOMEM;
    l->secrets = grown;
    char *copy = strdup(value);
    if (copy == NULL)
        return -ENOMEM;
    l->secrets[l->n_secrets++] = copy;
    return 0;
}

int rec_log_add_secret(rec_log *l, const char *secret)
{
    if (secret == NULL || strlen(secret) < 4)
        return 0;
    /* Every form there is gets registered, even when encoding ran out of memory. */
    char *forms[N_FORMS];
    int rc = secret_forms(secret, forms);
    for (size_t i = 0; i < N_FORMS; i++) {
        int r = forms[i] != NULL ? add_one(l, forms[i]) : 0;
        rc = rc < 0 ? rc : r;
    }
    secret_forms_clear(forms);
    return rc;
}

void rec_log_forget_secret(rec_log *l, const char *secret)
{
    if (l == NULL || secret == NULL)
        return;
    /* Out of memory, only the forms that could be made are matched. */
    char *forms[N_FORMS];
    (void)secret_forms(secret, forms);
    for (size_t i = 0; i < l->n_secrets;) {
        bool match = false;
        for (size_t f = 0; f < N_FORMS; f++)
            match = match || (forms[f] != NULL && strcmp(l->secrets[i], forms[f]) == 0);
        if (!match) {
            i++;
            continue;
        }
        prov_free_secret(l->secrets[i]);
        l->secrets[i] = l->secrets[--l->n_secrets];
    }
    secret_forms_clear(forms);
}

void rec_log_scrub(const rec_log *l, char *text)
{
    if (l == NULL || text == NULL)
        return;
    for (size_t i = 0; i < l->n_secrets; i++) {
        const char *s = l->secrets[i];
        size_t n = strlen(s);
        char *hit;
        char *from = text;
        while ((hit = strstr(from, s)) != NULL) {
            memcpy(hit, "***", 3);
            memmove(hit + 3, hit + n, strlen(hit + n) + 1);
            from = hit + 3;
        }
    }
}

const char *rec_log_level_name(rec_log_level level)
{
    switch (level) {
    case REC_LOG_DEBUG:
        return "debug";
    case REC_LOG_INFO:
        return "info";
    case REC_LOG_WARN:
        return "warn";
    case REC_LOG_ERROR:
        return "error";
    }
    return "info";
}

/* syslog(3) priorities as journald reads them from `<N>` prefixes. */
static int level_priority(rec_log_level level)
{
    switch (level) {
    case REC_LOG_DEBUG:
        return 7;
    case REC_LOG_INFO:
        return 6;
    case REC_LOG_WARN:
        return 4;
    case REC_LOG_ERROR:
        return 3;
    }
    return 6;
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 when the bytes are not valid UTF-8. */
static size_t utf8_len(const unsigned char *s)
{
    if (s[0] < 0x80)
        return 1;
    size_t n;
    if ((s[0] & 0xE0) == 0xC0 && s[0] >= 0xC2)
        n = 2;
    else if ((s[0] & 0xF0) == 0xE0)
        n = 3;
    else if ((s[0] & 0xF8) == 0xF0 && s[0] <= 0xF4)
        n = 4;
    else
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return n;
}

/* Appends s as a JSON string literal; invalid UTF-8 bytes become U+FFFD. */
static void json_escape(buf *b, const char *s)
{
    buf_char(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        if (*p == '"' || *p == '\\') {
            buf_char(b, '\\');
            buf_char(b, (char)*p++);
        } else if (*p == '\n') {
            buf_str(b, "\\n");
            p++;
        } else if (*p == '\t') {
            buf_str(b, "\\t");
            p++;
        } else if (*p == '\r') {
            buf_str(b, "\\r");
            p++;
        } else if (*p < 0x20 || *p == 0x7f) {
            char esc[8];
            (void)snprintf(esc, sizeof(esc), "\\u%04x", *p++);
            buf_str(b, esc);
        } else {
            size_t n = utf8_len(p);
            if (n == 0) {
                buf_str(b, "\\ufffd");
                p++;
            } else {
                buf_add(b, (const char *)p, n);
                p += n;
            }
        }
    }
    buf_char(b, '"');
}

/* A text value is quoted when it is empty or holds a space, quote, '=', backslash, or anything
 * rec_escape would change (controls, C1, invalid UTF-8, bidi controls). */
static bool needs_quotes(const char *s)
{
    if (*s == '\0')
        return true;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p == 0x7f)
            return true;
    return !rec_escape_clean(s);
}

/* Appends s for the text format: bare when safe, else quoted with \" \\ \n \t escapes and
 * rec_escape's \xNN and \uNNNN for the rest, so a value from the cloud can neither drive the
 * terminal nor forge a line. */
static void text_value(buf *b, const char *s, bool force_quotes)
{
    if (!force_quotes && !needs_quotes(s)) {
        buf_str(b, s);
        return;
    }
    buf_char(b, '"');
    for (const char *p = s; *p;) {
        size_t run = strcspn(p, "\"\\\n\t");
        if (run > 0) {
            /* The run holds no backslash and ends at an ASCII byte: rec_escape sees whole
             * UTF-8 sequences only. */
            char *chunk = strndup(p, run);
            char *esc = chunk ? rec_escape_dup(chunk) : NULL;
            if (esc == NULL)
                b->failed = true;
            else
                buf_str(b, esc);
            free(esc);
            free(chunk);
            p += run;
            continue;
        }
        if (*p == '"' || *p == '\\') {
            buf_char(b, '\\');
            buf_char(b, *p);
        } else {
            buf_str(b, *p == '\n' ? "\\n" : "\\t");
        }
        p++;
    }
    buf_char(b, '"');
}

/* The JSON type of a field is a property of its key, so a reader sees one type per key in every
 * line: these keys are numbers or booleans, every other key a string. A value that does not
 * have its key's shape (never expected) stays a string rather than making the line invalid. */
static const struct {
    const char *key;
    rec_log_type type;
} typed_keys[] = {
    {"attempt", REC_LOG_NUMBER},     {"backing_off", REC_LOG_NUMBER},
    {"col", REC_LOG_NUMBER},         {"done", REC_LOG_NUMBER},
    {"drift", REC_LOG_NUMBER},       {"duration_ms", REC_LOG_NUMBER},
    {"duration_s", REC_LOG_NUMBER},  {"failed", REC_LOG_NUMBER},
    {"http_status", REC_LOG_NUMBER}, {"images", REC_LOG_NUMBER},
    {"interval_ms", REC_LOG_NUMBER}, {"line", REC_LOG_NUMBER},
    {"pending", REC_LOG_NUMBER},     {"pid", REC_LOG_NUMBER},
    {"retry_in_ms", REC_LOG_NUMBER}, {"steps", REC_LOG_NUMBER},
    {"total", REC_LOG_NUMBER},       {"undone_in_a_row", REC_LOG_NUMBER},
    {"wait_ms", REC_LOG_NUMBER},     {"waited_ms", REC_LOG_NUMBER},
    {"suspended", REC_LOG_BOOL},
};

rec_log_type rec_log_key_type(const char *key)
{
    for (size_t i = 0; key != NULL && i < sizeof(typed_keys) / sizeof(typed_keys[0]); i++)
        if (strcmp(typed_keys[i].key, key) == 0)
            return typed_keys[i].type;
    return REC_LOG_STRING;
}

/* True when s is a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?, which is all the daemon writes. */
static bool json_number(const char *s)
{
    const char *p = s + (*s == '-');
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (*p >= '0' && *p <= '9')
            p++;
    else
        return false;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return *p == '\0';
}

/* Appends a field's value in JSON: bare for a typed key whose value has that shape, else a
 * string. */
static void json_value(buf *b, const char *key, const char *v)
{
    rec_log_type t = rec_log_key_type(key);
    if ((t == REC_LOG_NUMBER && json_number(v)) ||
        (t == REC_LOG_BOOL && (strcmp(v, "true") == 0 || strcmp(v, "false") == 0)))
        buf_str(b, v);
    else
        json_escape(b, v);
}

/* journald keeps a line of up to LineMax bytes (48 KiB by default) as one entry and splits a
 * longer one: the rest becomes an entry of its own, which text from the cloud (an owner tag, an
 * error message) could make look like any line. A line is formatted with values of at most
 * VALUE_MAX bytes, and again with VALUE_MIN when it is still longer than LINE_LIMIT; with at
 * most 16 fields and 6 bytes of escape per byte, VALUE_MIN keeps any line below it. */
#define LINE_LIMIT (32u * 1024u)
#define VALUE_MAX 4096u
#define VALUE_MIN 256u

/* A scrubbed copy of s cut to at most max bytes (at a UTF-8 character's start, with a note of
 * what was left out), or NULL on allocation failure. Scrubbed before it is cut, so that a secret
 * across the cut is never half shown. */
static char *scrubbed(const rec_log *l, const char *s, size_t max)
{
    char *copy = strdup(s ? s : "");
    if (copy == NULL)
        return NULL;
    rec_log_scrub(l, copy);
    size_t len = strlen(copy);
    if (len <= max)
        return copy;
    size_t cut = max;
    while (cut > 0 && ((unsigned char)copy[cut] & 0xC0) == 0x80)
        cut--;
    char note[48];
    int n = snprintf(note, sizeof(note), "...(%zu more bytes)", len - cut);
    if (n < 0 || (size_t)n >= sizeof(note)) {
        free(copy);
        return NULL;
    }
    if ((size_t)n > len - cut) {
        char *grown = realloc(copy, cut + (size_t)n + 1);
        if (grown == NULL) {
            free(copy);
            return NULL;
        }
        copy = grown;
    }
    memcpy(copy + cut, note, (size_t)n + 1);
    return copy;
}

static int format_line(const rec_log *l, rec_log_level level, uint64_t now_ms, const char *msg,
                       const char *const *kv, size_t n_kv, size_t max, char **ret_line);

int rec_log_format(const rec_log *l, rec_log_level level, uint64_t now_ms, const char *msg,
                   const char *const *kv, size_t n_kv, char **ret_line)
{
    char *line = NULL;
    int rc = format_line(l, level, now_ms, msg, kv, n_kv, VALUE_MAX, &line);
    if (rc == 0 && strlen(line) > LINE_LIMIT) {
        free(line);
        rc = format_line(l, level, now_ms, msg, kv, n_kv, VALUE_MIN, &line);
    }
    if (rc < 0)
        return rc;
    *ret_line = line;
    return 0;
}

/* One line with every value cut to max bytes (scrubbed). Returns 0 or -ENOMEM. */
static int format_line(const rec_log *l, rec_log_level level, uint64_t now_ms, const char *msg,
                       const char *const *kv, size_t n_kv, size_t max, char **ret_line)
{
    buf b = {0};
    char ts[80];
    time_t secs = (time_t)(now_ms / 1000);
    struct tm tm;

    if (gmtime_r(&secs, &tm) == NULL)
        memset(&tm, 0, sizeof(tm));
    (void)snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
                   tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                   (unsigned)(now_ms % 1000));
    if (l->opts.journal) {
        char prio[8];
        (void)snprintf(prio, sizeof(prio), "<%d>", level_priority(level));
        buf_str(&b, prio);
    }
    char *m = scrubbed(l, msg, max);
    if (m == NULL) {
        free(b.p);
        return -ENOMEM;
    }
    if (l->opts.json) {
        buf_str(&b, "{\"ts\":\"");
        buf_str(&b, ts);
        buf_str(&b, "\",\"level\":\"");
        buf_str(&b, rec_log_level_name(level));
        buf_str(&b, "\",\"msg\":");
        json_escape(&b, m);
    } else {
        buf_str(&b, ts);
        buf_str(&b, " level=");
        buf_str(&b, rec_log_level_name(level));
        buf_str(&b, " msg=");
        text_value(&b, m, true);
    }
    free(m);
    for (size_t i = 0; i < n_kv; i++) {
        const char *key = kv[2 * i];
        const char *value = kv[2 * i + 1];
        if (key == NULL || value == NULL)
            continue;
        char *v = scrubbed(l, value, max);
        if (v == NULL) {
            free(b.p);
            return -ENOMEM;
        }
        if (l->opts.json) {
            buf_char(&b, ',');
            json_escape(&b, key);
            buf_char(&b, ':');
            json_value(&b, key, v);
        } else {
            buf_char(&b, ' ');
            buf_str(&b, key);
            buf_char(&b, '=');
            text_value(&b, v, false);
        }
        free(v);
    }
    if (l->opts.json)
        buf_char(&b, '}');
    buf_char(&b, '\n');
    if (b.failed) {
        free(b.p);
        return -ENOMEM;
    }
    /* A secret that spans an escape boundary was caught above; this pass catches the rest. */
    rec_log_scrub(l, b.p);
    /* JSON allows C1 controls unescaped; a terminal tailing the log would act on them. */
    char *line = l->opts.json ? rec_escape_json_c1(b.p) : b.p;
    if (line == NULL)
        return -ENOMEM;
    *ret_line = line;
    return 0;
}

void rec_log_write(rec_log *l, rec_log_level level, const char *msg, const char *const *kv,
                   size_t n_kv)
{
    char *line;
    struct timespec now;

    if (l == NULL || level < l->opts.level)
        return;
    (void)clock_gettime(CLOCK_REALTIME, &now);
    uint64_t ms = (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
    if (rec_log_format(l, level, ms, msg, kv, n_kv, &line) < 0)
        return;
    size_t len = strlen(line);
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(l->opts.fd, line + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    free(line);
}

void rec_log_event(rec_log *l, rec_log_level level, const char *msg, ...)
{
    const char *kv[32];
    size_t n = 0;
    va_list ap;

    va_start(ap, msg);
    for (;;) {
        const char *key = va_arg(ap, const char *);
        if (key == NULL)
            break;
        const char *value = va_arg(ap, const char *);
        if (n < 16) {
            kv[2 * n] = key;
            kv[2 * n + 1] = value;
            n++;
        }
    }
    va_end(ap);
    rec_log_write(l, level, msg, kv, n);
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_token_char(char c)
{
    return is_hex(c) || (c >= 'g' && c <= 'z') || (c >= 'G' && c <= 'Z') || c == '-' || c == '_';
}

/* True for a request-id-like token: only hex digits and dashes, at least 16 hex digits. */
static bool id_like(const char *s, size_t n)
{
    size_t hex = 0;
    for (size_t i = 0; i < n; i++) {
        if (is_hex(s[i]))
            hex++;
        else if (s[i] != '-')
            return false;
    }
    return hex >= 16;
}

char *rec_log_normalise(const char *text)
{
    if (text == NULL)
        return NULL;
    buf b = {0};
    buf_str(&b, "");
    const char *p = text;
    while (*p) {
        /* "(RequestId: X)" disappears together with the space before it. */
        if (strncasecmp(p, "(RequestId", 10) == 0) {
            const char *close = strchr(p, ')');
            if (close != NULL) {
                while (b.len > 0 && b.p[b.len - 1] == ' ')
                    b.p[--b.len] = '\0';
                p = close + 1;
                continue;
            }
        }
        /* "RequestId: X", "RequestId=X", "request_id=X" lose the id. */
        if (strncasecmp(p, "RequestId", 9) == 0 || strncasecmp(p, "request_id", 10) == 0) {
            const char *q = p + (p[7] == '_' ? 10 : 9);
            if (*q == ':' || *q == '=') {
                q++;
                while (*q == ' ' || *q == '"')
                    q++;
                while (*q && *q != ' ' && *q != '"' && *q != ',' && *q != ')')
                    q++;
                if (*q == '"')
                    q++;
                while (b.len > 0 && b.p[b.len - 1] == ' ')
                    b.p[--b.len] = '\0';
                p = q;
                continue;
            }
        }
        if (is_token_char(*p)) {
            size_t n = 0;
            while (is_token_char(p[n]))
                n++;
            if (id_like(p, n))
                buf_str(&b, "<id>");
            else
                buf_add(&b, p, n);
            p += n;
            continue;
        }
        buf_char(&b, *p++);
    }
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
