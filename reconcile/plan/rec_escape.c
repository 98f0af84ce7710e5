/* Terminal-safe text (see rec_escape.h). It lives in the plan core, the lowest room that prints
 * text from the cloud; exec, daemon and cmd reach it through their links to imgrecon_plan. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rec_escape.h"

/* Decodes the valid UTF-8 sequence at s into *cp and returns its length (1-4), or 0 when the
 * bytes there are not valid UTF-8 (overlong forms, surrogates and values past U+10FFFF
 * included). */
static size_t utf8_decode(const unsigned char *s, uint32_t *cp)
{
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    size_t n;
    uint32_t v;
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if ((s[0] & 0xE0) == 0xC0) {
        n = 2;
        v = s[0] & 0x1Fu;
    } else if ((s[0] & 0xF0) == 0xE0) {
        n = 3;
        v = s[0] & 0x0Fu;
    } else if ((s[0] & 0xF8) == 0xF0) {
        n = 4;
        v = s[0] & 0x07u;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3Fu);
    }
    if (v < min[n] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return n;
}

/* Code points that a terminal acts on or that reorder what is shown around them. */
static bool cp_needs_escape(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0x200E || cp == 0x200F ||
           (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069);
}

/* The escape of the unit at s into out (at most 8 bytes and a terminator); returns how many
 * input bytes it consumed and sets *out_len, or returns the unit's length with *out_len 0 when
 * it prints as is. */
static size_t next_unit(const unsigned char *s, char out[12], size_t *out_len)
{
    uint32_t cp = 0;
    size_t n = utf8_decode(s, &cp);
    *out_len = 0;
    if (n == 0 || (n == 1 && cp_needs_escape(cp))) {
        *out_len = (size_t)snprintf(out, 12, "\\x%02x", s[0]);
        return 1;
    }
    if (cp == '\\') {
        memcpy(out, "\\\\", 3);
        *out_len = 2;
    } else if (cp_needs_escape(cp)) {
        *out_len = (size_t)snprintf(out, 12, "\\u%04x", (unsigned)cp);
    }
    return n;
}

bool rec_escape_clean(const char *s)
{
    char esc[12];
    size_t elen;
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p;) {
        p += next_unit(p, esc, &elen);
        if (elen)
            return false;
    }
    return true;
}

size_t rec_escape(const char *s, char *buf, size_t size)
{
    size_t need = 0, written = 0;
    char esc[12];
    size_t elen;
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p;) {
        const unsigned char *unit = p;
        p += next_unit(p, esc, &elen);
        const char *piece = elen ? esc : (const char *)unit;
        size_t plen = elen ? elen : (size_t)(p - unit);
        /* Once one piece does not fit, nothing after it is written either. */
        if (written == need && need + plen < size) {
            memcpy(buf + need, piece, plen);
            written += plen;
        }
        need += plen;
    }
    if (size > 0)
        buf[written] = '\0';
    return need;
}

char *rec_escape_dup(const char *s)
{
    size_t n = rec_escape(s, NULL, 0);
    char *out = malloc(n + 1);
    if (out != NULL)
        (void)rec_escape(s, out, n + 1);
    return out;
}

int rec_fputs_escaped(const char *s, FILE *out)
{
    char esc[12];
    size_t elen;
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p;) {
        const unsigned char *unit = p;
        p += next_unit(p, esc, &elen);
        size_t plen = elen ? elen : (size_t)(p - unit);
        if (fwrite(elen ? esc : (const char *)unit, 1, plen, out) != plen)
            return -EIO;
    }
    return 0;
}

char *rec_escape_json_c1(char *json)
{
    if (json == NULL)
        return NULL;
    size_t n_c1 = 0, len = 0;
    for (const unsigned char *p = (const unsigned char *)json; *p; p++, len++)
        if (p[0] == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F)
            n_c1++;
    if (n_c1 == 0)
        return json;
    /* Each two-byte sequence becomes six bytes ("\u00NN"). */
    char *out = malloc(len + 4 * n_c1 + 1), *o = out;
    if (out == NULL) {
        free(json);
        return NULL;
    }
    for (const unsigned char *p = (const unsigned char *)json; *p; p++) {
        if (p[0] == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F) {
            o += snprintf(o, 7, "\\u%04x", (unsigned)p[1]);
            p++;
        } else {
            *o++ = (char)*p;
        }
    }
    *o = '\0';
    free(json);
    return out;
}

json_t *rec_json_text(const char *s)
{
    if (s == NULL)
        return json_null();
    json_t *v = json_string(s);
    if (v != NULL)
        return v;
    char *repaired = rec_utf8_repair_dup(s);
    v = repaired != NULL ? json_string(repaired) : NULL;
    free(repaired);
    return v;
}

char *rec_utf8_repair_dup(const char *s)
{
    static const char replacement[] = "\xEF\xBF\xBD"; /* U+FFFD */
    const unsigned char *in = (const unsigned char *)(s ? s : "");
    /* Each invalid byte (one) becomes three. */
    char *out = malloc(3 * strlen((const char *)in) + 1), *o = out;
    if (out == NULL)
        return NULL;
    for (const unsigned char *p = in; *p;) {
        uint32_t cp;
        size_t n = utf8_decode(p, &cp);
        if (n == 0) {
            memcpy(o, replacement, 3);
            o += 3;
            p++;
        } else {
            memcpy(o, p, n);
            o += n;
            p += n;
        }
    }
    *o = '\0';
    return out;
}
