/* See test_pty.h. */
#include "test_pty.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void test_pty_open(test_pty *p)
{
    p->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    cr_assert_geq(p->master, 0, "posix_openpt: %s", strerror(errno));
    cr_assert_eq(grantpt(p->master), 0, "grantpt: %s", strerror(errno));
    cr_assert_eq(unlockpt(p->master), 0, "unlockpt: %s", strerror(errno));
    cr_assert_eq(ptsname_r(p->master, p->slave, sizeof(p->slave)), 0, "ptsname_r: %s",
                 strerror(errno));
}

void test_pty_type(test_pty *p, const char *text)
{
    size_t n = strlen(text), done = 0;
    while (done < n) {
        ssize_t w = write(p->master, text + done, n - done);
        if (w < 0 && errno == EINTR)
            continue;
        cr_assert_gt(w, 0, "typing on the pty: %s", strerror(errno));
        done += (size_t)w;
    }
}

void test_pty_close(test_pty *p)
{
    if (p->master >= 0)
        close(p->master);
    p->master = -1;
}
