/* Safe file handling inside the state directory (see prov_statedir.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "prov_cleanup.h"
#include "prov_statedir.h"

int prov_statedir_check(const char *dir, char **ret_error)
{
    struct stat st;
    char *msg = NULL;
    int rc = 0;
    if (dir == NULL || *dir == '\0')
        return -EINVAL;
    if (stat(dir, &st) < 0) {
        rc = -errno;
        if (asprintf(&msg, "state directory %s: %s", dir, strerror(-rc)) < 0)
            msg = NULL;
    } else if (!S_ISDIR(st.st_mode)) {
        rc = -ENOTDIR;
        if (asprintf(&msg, "state directory %s is not a directory", dir) < 0)
            msg = NULL;
    } else if (st.st_uid != geteuid()) {
        rc = -EPERM;
        if (asprintf(&msg,
                     "state directory %s belongs to uid %ld, not to this user (uid %ld); "
                     "refusing to use it. Fix: chown %ld %s (or choose another --state-dir)",
                     dir, (long)st.st_uid, (long)geteuid(), (long)geteuid(), dir) < 0)
            msg = NULL;
    } else if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
        rc = -EPERM;
        if (asprintf(&msg,
                     "state directory %s is writable by group or others (mode %04o); refusing "
                     "to use it. Fix: chmod go-w %s",
                     dir, (unsigned)(st.st_mode & 07777), dir) < 0)
            msg = NULL;
    }
    if (rc < 0 && ret_error != NULL)
        *ret_error = msg;
    else
        free(msg);
    return rc;
}

char *prov_statedir_path(const char *dir, const char *name)
{
    char *p = NULL;
    if (dir == NULL || name == NULL || asprintf(&p, "%s/%s", dir, name) < 0)
        return NULL;
    return p;
}

int prov_statedir_fsync(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    (void)close(fd);
    return rc;
}

int prov_statedir_open(const char *dir, const char *name, int flags, mode_t mode)
{
    _cleanup_free_ char *path = prov_statedir_path(dir, name);
    if (path == NULL)
        return -ENOMEM;
    int fd = -1;
    bool created = false;
    if ((flags & O_CREAT) != 0) {
        /* An exclusive create first, so that we know when the directory needs an fsync. */
        fd = open(path, flags | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        if (fd >= 0)
            created = true;
        else if (errno != EEXIST || (flags & O_EXCL) != 0)
            return -errno;
    }
    if (fd < 0) {
        fd = open(path, (flags & ~O_CREAT) | O_NOFOLLOW | O_CLOEXEC, mode);
        if (fd < 0)
            return -errno;
    }
    if (created)
        (void)prov_statedir_fsync(dir);
    return fd;
}

int prov_statedir_mktemp(const char *dir, const char *name, char **ret_tmp)
{
    char *tmpl = NULL;
    if (dir == NULL || name == NULL || asprintf(&tmpl, "%s/%s.XXXXXX", dir, name) < 0)
        return -ENOMEM;
    /* mkostemp creates with O_EXCL and mode 0600: a planted name is never opened. */
    int fd = mkostemp(tmpl, O_CLOEXEC);
    if (fd < 0) {
        int rc = -errno;
        free(tmpl);
        return rc;
    }
    *ret_tmp = tmpl;
    return fd;
}

int prov_statedir_commit(const char *dir, const char *tmp, const char *name)
{
    char *path = prov_statedir_path(dir, name);
    int rc = path == NULL ? -ENOMEM : 0;
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    free(path);
    if (rc < 0) {
        (void)unlink(tmp);
        return rc;
    }
    return prov_statedir_fsync(dir);
}

int rec_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int prov_statedir_write_file(const char *dir, const char *name, const void *buf, size_t len,
                             mode_t mode)
{
    char *tmp = NULL;
    int fd = prov_statedir_mktemp(dir, name, &tmp);
    if (fd < 0)
        return fd;
    int rc = rec_write_all(fd, buf, len);
    if (rc == 0 && fchmod(fd, mode) < 0)
        rc = -errno;
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0)
        rc = prov_statedir_commit(dir, tmp, name);
    else
        (void)unlink(tmp);
    free(tmp);
    return rc;
}
