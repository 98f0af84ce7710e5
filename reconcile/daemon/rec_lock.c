/* The daemon's single-writer lock file (see rec_lock.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "rec_lock.h"
#include "prov_statedir.h"

struct rec_lock {
    int fd;
    char *path;
};

char *rec_lock_path_for(const char *state_dir)
{
    char *path = NULL;
    if (asprintf(&path, "%s/daemon.lock", state_dir) < 0)
        return NULL;
    return path;
}

/* Reads the holder's pid from an open lock file; 0 when the file holds no number yet. */
static long read_pid(int fd)
{
    char text[32];
    ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
    if (n <= 0)
        return 0;
    text[n] = '\0';
    char *end;
    long pid = strtol(text, &end, 10);
    return pid > 0 && (*end == '\n' || *end == '\0') ? pid : 0;
}

int rec_lock_acquire(const char *state_dir, rec_lock **ret, long *ret_holder_pid)
{
    int rc;
    char *path = rec_lock_path_for(state_dir);
    if (path == NULL)
        return -ENOMEM;
    int fd = prov_statedir_open(state_dir, "daemon.lock", O_RDWR | O_CREAT, 0644);
    if (fd < 0) {
        free(path);
        return fd;
    }
    while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EINTR)
            continue;
        rc = -errno;
        if (rc == -EWOULDBLOCK && ret_holder_pid != NULL)
            *ret_holder_pid = read_pid(fd);
        (void)close(fd);
        free(path);
        return rc;
    }
    char text[32];
    int n = snprintf(text, sizeof(text), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, text, (size_t)n, 0) != n) {
        rc = errno ? -errno : -EIO;
        (void)close(fd);
        free(path);
        return rc;
    }
    rec_lock *l = malloc(sizeof(*l));
    if (l == NULL) {
        (void)close(fd);
        free(path);
        return -ENOMEM;
    }
    l->fd = fd;
    l->path = path;
    *ret = l;
    return 0;
}

const char *rec_lock_path(const rec_lock *l)
{
    return l->path;
}

void rec_lock_release(rec_lock *l)
{
    if (l == NULL)
        return;
    /* Empty the pid first so a reader never names a process that has let go. */
    (void)ftruncate(l->fd, 0);
    (void)flock(l->fd, LOCK_UN);
    (void)close(l->fd);
    free(l->path);
    free(l);
}
