/* rec_escape: text from the cloud printed to a terminal or a text log (issue 13 item 3). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "rec_escape.h"

static void expect(const char *in, const char *want)
{
    char *got = rec_escape_dup(in);
    cr_assert_not_null(got);
    cr_assert_str_eq(got, want, "escape(%s)", want);
    cr_assert_eq(rec_escape_clean(in), strcmp(in, want) == 0);
    free(got);
}

Test(escape, controls_c1_invalid_utf8_and_bidi)
{
    expect("web-base", "web-base");
    expect("caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80",
           "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80");
    expect("\x1b]0;pwned\x07\x1b[2J", "\\x1b]0;pwned\\x07\\x1b[2J");
    expect("a\nb\rc\td\x7f", "a\\x0ab\\x0dc\\x09d\\x7f");
    expect("csi \xc2\x9b"
           "2J",
           "csi \\u009b2J");
    expect("back\\slash", "back\\\\slash");
    expect("bad \xff \xc0\xaf \xed\xa0\x80 \xe6\x97",
           "bad \\xff \\xc0\\xaf \\xed\\xa0\\x80 \\xe6\\x97");
    expect("rlo \xe2\x80\xae"
           "gnp.exe",
           "rlo \\u202egnp.exe");
}

Test(escape, clips_between_whole_pieces)
{
    char buf[8];
    size_t need = rec_escape("ab\x1b"
                             "cd",
                             buf, sizeof(buf));
    cr_assert_eq(need, 8);
    cr_assert_str_eq(buf, "ab\\x1bc"); /* 7 bytes fit, the 8th would not */
    need = rec_escape("a\x1b", buf, 4);
    cr_assert_eq(need, 5);
    cr_assert_str_eq(buf, "a", "an escape is never cut");
    need = rec_escape("\xe6\x97\xa5\xe6\x97\xa5", buf, 5);
    cr_assert_str_eq(buf, "\xe6\x97\xa5", "a UTF-8 character is never cut");
    cr_assert_eq(rec_escape(NULL, buf, sizeof(buf)), 0);
    cr_assert_str_eq(buf, "");
}

Test(escape, json_c1)
{
    char *in = strdup("{\"d\":\"x\xc2\x9b"
                      "2J \xc2\xa9\"}");
    char *out = rec_escape_json_c1(in);
    cr_assert_str_eq(out, "{\"d\":\"x\\u009b2J \xc2\xa9\"}");
    free(out);
    char *same = strdup("{}");
    cr_assert_eq(rec_escape_json_c1(same), same);
    free(same);
}

/* What jansson refuses becomes U+FFFD, one per byte; valid UTF-8 (CJK, emoji, controls) stays. */
Test(escape, utf8_repair)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"web \xe5\x8c\xba\x1b\n", "web \xe5\x8c\xba\x1b\n"},
        {"cut \xe5\x8c", "cut \xef\xbf\xbd\xef\xbf\xbd"},
        {"\xff\xc0\xaf\xed\xa0\x80",
         "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *got = rec_utf8_repair_dup(cases[i].in);
        cr_assert_not_null(got);
        cr_assert_str_eq(got, cases[i].want, "case %zu", i);
        free(got);
    }
    char *empty = rec_utf8_repair_dup(NULL);
    cr_assert_str_eq(empty, "");
    free(empty);
}
