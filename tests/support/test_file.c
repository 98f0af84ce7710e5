/* See test_file.h. */
#include "test_file.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_clock.h"

char *test_file_read_len(const char *path, size_t *ret_len)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    cr_assert_not_null(m, "open_memstream");
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        cr_assert_eq(fwrite(chunk, 1, n, m), n);
    fclose(f);
    cr_assert_eq(fclose(m), 0);
    if (ret_len != NULL)
        *ret_len = len;
    return buf;
}

char *test_file_read(const char *path)
{
    char *text = test_file_read_len(path, NULL);
    return text != NULL ? text : strdup("");
}

void test_file_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "we");
    cr_assert_not_null(f, "open %s: %s", path, strerror(errno));
    cr_assert_geq(fputs(text, f), 0, "write %s", path);
    cr_assert_eq(fclose(f), 0, "close %s", path);
}

void test_file_write_mode(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
    size_t len = strlen(text);
    cr_assert_eq(write(fd, text, len), (ssize_t)len, "write %s", path);
    cr_assert_eq(fchmod(fd, mode), 0);
    cr_assert_eq(close(fd), 0);
}

void test_file_replace(const char *path, const char *text)
{
    char tmp[512];
    cr_assert_lt((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp~", path), sizeof(tmp));
    test_file_write(tmp, text);
    cr_assert_eq(rename(tmp, path), 0, "rename %s: %s", tmp, strerror(errno));
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) < 0 ? -1 : 0;
}

bool test_file_await(const char *path, uint32_t mask, int timeout_ms, bool (*ready)(void *ud),
                     void *ud)
{
    int ino = inotify_init1(IN_CLOEXEC);
    cr_assert_geq(ino, 0);
    cr_assert_geq(inotify_add_watch(ino, path, mask), 0, "cannot watch %s", path);
    uint64_t deadline = test_clock_ms() + (uint64_t)timeout_ms;
    bool seen = false;
    while (!seen && test_clock_ms() < deadline) {
        seen = ready(ud);
        if (!seen) {
            struct pollfd p = {.fd = ino, .events = POLLIN};
            if (poll(&p, 1, test_clock_left(deadline)) > 0) {
                char buf[4096];
                (void)read(ino, buf, sizeof(buf));
            }
        }
    }
    close(ino);
    return seen;
}

int test_file_remove_tree(const char *dir)
{
    if (dir == NULL || dir[0] == '\0')
        return -EINVAL;
    /* IMGRECON_TEST_KEEP=1 keeps the directory (journal, outputs) for a post-mortem. */
    if (getenv("IMGRECON_TEST_KEEP") != NULL) {
        fprintf(stderr, "kept %s\n", dir);
        return 0;
    }
    return nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -errno;
}
