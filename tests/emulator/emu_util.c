/* Helpers shared by the emulator's modules (see emu_util.h). */
#include "emu_util.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

char *emu_strdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

int64_t emu_now_ms(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t emu_mono_ms(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t emu_rand_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

bool emu_is_common_param(const char *key)
{
    static const char *const common[] = {
        "Action",          "Version",          "Format",         "AccessKeyId",   "Signature",
        "SignatureMethod", "SignatureVersion", "SignatureNonce", "SignatureType", "Timestamp",
        "SecurityToken",   "BearerToken",      "OIDCToken", /* a secret: never in the journal */
    };
    for (size_t i = 0; i < sizeof(common) / sizeof(common[0]); i++) {
        if (strcmp(key, common[i]) == 0) {
            return true;
        }
    }
    return false;
}

int emu_parse_bool(const char *s, bool *ret)
{
    if (strcasecmp(s, "true") == 0) {
        *ret = true;
        return 0;
    }
    if (strcasecmp(s, "false") == 0) {
        *ret = false;
        return 0;
    }
    return -EINVAL;
}

int emu_parse_long(const char *s, long min, long max, long *ret)
{
    if (!s || !*s || !(isdigit((unsigned char)s[0]) || s[0] == '-')) {
        return -EINVAL;
    }
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) {
        return -EINVAL;
    }
    *ret = v;
    return 0;
}

void emu_strv_free(char **v, size_t n)
{
    if (!v) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        free(v[i]);
    }
    free(v);
}

/* Appends a copy of s[0..len) trimmed of spaces, unless it is empty. */
static int strv_push(char ***v, size_t *n, const char *s, size_t len)
{
    while (len > 0 && isspace((unsigned char)*s)) {
        s++;
        len--;
    }
    while (len > 0 && isspace((unsigned char)s[len - 1])) {
        len--;
    }
    if (len == 0) {
        return 0;
    }
    char **nv = realloc(*v, (*n + 1) * sizeof(**v));
    if (!nv) {
        return -ENOMEM;
    }
    *v = nv;
    nv[*n] = strndup(s, len);
    if (!nv[*n]) {
        return -ENOMEM;
    }
    (*n)++;
    return 0;
}

int emu_parse_list(const char *s, char ***ret, size_t *ret_n)
{
    char **v = NULL;
    size_t n = 0;
    int rc = 0;
    const char *p = s;
    while (isspace((unsigned char)*p)) {
        p++;
    }
    if (*p == '[') {
        json_error_t jerr;
        json_t *arr = json_loads(p, JSON_DECODE_ANY, &jerr);
        if (!arr || !json_is_array(arr)) {
            json_decref(arr);
            return -EINVAL;
        }
        size_t i;
        json_t *it;
        json_array_foreach(arr, i, it)
        {
            if (!json_is_string(it)) {
                rc = -EINVAL;
                break;
            }
            rc = strv_push(&v, &n, json_string_value(it), json_string_length(it));
            if (rc < 0) {
                break;
            }
        }
        json_decref(arr);
    } else {
        while (*p) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            rc = strv_push(&v, &n, p, len);
            if (rc < 0 || !comma) {
                break;
            }
            p = comma + 1;
        }
    }
    if (rc < 0) {
        emu_strv_free(v, n);
        return rc;
    }
    *ret = v;
    *ret_n = n;
    return 0;
}

void emu_request_id(uint64_t *state, char out[37])
{
    uint64_t a = emu_rand_next(state);
    uint64_t b = emu_rand_next(state);
    (void)snprintf(out, 37, "%08X-%04X-%04X-%04X-%012llX", (unsigned)(a >> 32),
                   (unsigned)((a >> 16) & 0xffff), (unsigned)(a & 0xffff), (unsigned)(b >> 48),
                   (unsigned long long)(b & 0xffffffffffffULL));
}

int emu_parse_duration(const char *s, int64_t *ret_ms)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    char *end = NULL;
    if (!s || *s < '1' || *s > '9') {
        return -EINVAL;
    }
    errno = 0;
    long long n = strtoll(s, &end, 10);
    for (size_t i = 0; errno == 0 && i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(end, units[i].unit) == 0 && n <= INT64_MAX / units[i].ms) {
            *ret_ms = (int64_t)n * units[i].ms;
            return 0;
        }
    }
    return -EINVAL;
}

int emu_parse_rate(const char *s, unsigned *ret_calls, int64_t *ret_window_ms)
{
    const char *slash = s ? strchr(s, '/') : NULL;
    char calls[16];
    long n = 0;
    int64_t ms = 0;
    if (!slash || slash == s || (size_t)(slash - s) >= sizeof(calls) || *s == '0') {
        return -EINVAL;
    }
    memcpy(calls, s, (size_t)(slash - s));
    calls[slash - s] = '\0';
    if (emu_parse_long(calls, 1, 1000000, &n) < 0 || emu_parse_duration(slash + 1, &ms) < 0) {
        return -EINVAL;
    }
    *ret_calls = (unsigned)n;
    *ret_window_ms = ms;
    return 0;
}
