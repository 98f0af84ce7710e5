/* libFuzzer target: rec_escape (text from the cloud made safe for a terminal). Any input: the
 * output holds no C0, DEL or C1 control and only valid UTF-8; rec_escape_clean agrees with it;
 * a clipped copy is a prefix of the whole one; rec_escape_json_c1 leaves no C1 sequence. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rec_escape.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts unless s is valid UTF-8 without C0, DEL or C1 controls. */
static void check_inert(const unsigned char *s)
{
    while (*s) {
        if (*s < 0x20 || *s == 0x7f)
            abort();
        size_t n = *s < 0x80 ? 1 : (*s & 0xE0) == 0xC0 ? 2 : (*s & 0xF0) == 0xE0 ? 3 : 4;
        if (*s >= 0x80 && (*s < 0xC2 || *s > 0xF4))
            abort();
        for (size_t i = 1; i < n; i++)
            if ((s[i] & 0xC0) != 0x80)
                abort();
        if (s[0] == 0xC2 && s[1] <= 0x9F)
            abort();
        s += n;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = strndup((const char *)data, size);
    if (in == NULL)
        return 0;
    char *out = rec_escape_dup(in);
    if (out != NULL) {
        check_inert((const unsigned char *)out);
        if (strlen(out) != rec_escape(in, NULL, 0))
            abort();
        if (rec_escape_clean(in) != (strcmp(in, out) == 0))
            abort();
        char small[24];
        size_t k = size ? data[0] % sizeof(small) : 0;
        (void)rec_escape(in, small, k);
        if (k > 0 && strncmp(small, out, strlen(small)) != 0)
            abort();
        free(out);
    }
    char *json = rec_escape_json_c1(in); /* takes in */
    if (json != NULL) {
        for (const unsigned char *p = (const unsigned char *)json; *p; p++)
            if (p[0] == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F)
                abort();
        free(json);
    }
    return 0;
}
