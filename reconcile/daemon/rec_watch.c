/* The daemon's manifest watcher (see rec_watch.h): one uv_fs_event watcher per directory, each
 * freed from its own close callback, so the watcher set itself can go at once. Moved out of
 * rec_daemon.c unchanged in behaviour; the variable `d` names the watcher set. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

#include "prov_types.h"
#include "rec_watch.h"

#define MAX_WATCH_DEPTH 8

/* One uv_fs_event watcher on a directory. filter: only events naming that entry (the watch on
 * a manifest path's parent); NULL: any entry (a manifest directory). */
typedef struct watch {
    uv_fs_event_t h;
    rec_watch *d;
    char *filter;
} watch;

struct rec_watch {
    uv_loop_t *loop; /* borrowed */
    rec_log *log;    /* borrowed */
    rec_watch_fn on_change;
    void *ud;
    watch **watches;
    size_t n_watches;
};

int rec_watch_new(uv_loop_t *loop, rec_log *log, rec_watch_fn on_change, void *ud, rec_watch **ret)
{
    rec_watch *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return -ENOMEM;
    d->loop = loop;
    d->log = log;
    d->on_change = on_change;
    d->ud = ud;
    *ret = d;
    return 0;
}

static void watch_close_cb(uv_handle_t *h)
{
    watch *w = container_of((uv_fs_event_t *)h, watch, h);
    free(w->filter);
    free(w);
}

static void close_watches(rec_watch *d)
{
    for (size_t i = 0; i < d->n_watches; i++)
        uv_close((uv_handle_t *)&d->watches[i]->h, watch_close_cb);
    free(d->watches);
    d->watches = NULL;
    d->n_watches = 0;
}

/* Editor and tool droppings that are not manifests. */
static bool ignored_name(const char *name)
{
    size_t n = strlen(name);
    return name[0] == '.' || (n > 0 && name[n - 1] == '~') ||
           (n > 4 && (strcmp(name + n - 4, ".swp") == 0 || strcmp(name + n - 4, ".swx") == 0));
}

static void on_fs_event(uv_fs_event_t *h, const char *filename, int events, int status)
{
    watch *w = container_of(h, watch, h);
    rec_watch *d = w->d;
    if (status < 0)
        return;
    if (w->filter != NULL) {
        if (filename == NULL || strcmp(filename, w->filter) != 0)
            return;
    } else if (filename != NULL && ignored_name(filename)) {
        return;
    }
    /* The daemon debounces: a burst of events gives one cycle. */
    d->on_change(d->ud);
}

static int add_watch(rec_watch *d, const char *dir, const char *filter)
{
    watch *w = calloc(1, sizeof(*w));
    watch **grown = realloc(d->watches, (d->n_watches + 1) * sizeof(*grown));
    if (w == NULL || grown == NULL) {
        free(w);
        if (grown != NULL)
            d->watches = grown;
        return -ENOMEM;
    }
    d->watches = grown;
    w->d = d;
    if (filter != NULL && (w->filter = strdup(filter)) == NULL) {
        free(w);
        return -ENOMEM;
    }
    int rc = uv_fs_event_init(d->loop, &w->h);
    if (rc == 0) {
        rc = uv_fs_event_start(&w->h, on_fs_event, dir, 0);
        if (rc < 0) {
            d->watches[d->n_watches++] = w; /* closed with the others */
            return rc;
        }
        d->watches[d->n_watches++] = w;
        return 0;
    }
    free(w->filter);
    free(w);
    return rc;
}

/* Watches dir and every non-hidden subdirectory (inotify is not recursive). */
static void watch_tree(rec_watch *d, const char *dir, unsigned depth)
{
    int rc = add_watch(d, dir, NULL);
    if (rc < 0) {
        rec_log_event(d->log, REC_LOG_WARN, "cannot watch manifest directory", "path", dir, "error",
                      uv_strerror(rc), NULL);
        return;
    }
    if (depth >= MAX_WATCH_DEPTH)
        return;
    DIR *dh = opendir(dir);
    if (dh == NULL)
        return;
    struct dirent *de;
    while ((de = readdir(dh)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char sub[PATH_MAX];
        struct stat st;
        if (snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name) >= (int)sizeof(sub))
            continue;
        if (stat(sub, &st) == 0 && S_ISDIR(st.st_mode))
            watch_tree(d, sub, depth + 1);
    }
    (void)closedir(dh);
}

/* Watches the entry name in directory parent (the first len bytes of path, "" meaning "/" for
 * an absolute path and "." for a relative one). */
static void watch_entry(rec_watch *d, const char *path, size_t len, const char *name)
{
    char parent[PATH_MAX];
    if (len == 0)
        (void)snprintf(parent, sizeof(parent), "%s", path[0] == '/' ? "/" : ".");
    else
        (void)snprintf(parent, sizeof(parent), "%.*s", (int)len, path);
    if (*name != '\0' && add_watch(d, parent, name) < 0)
        rec_log_event(d->log, REC_LOG_WARN, "cannot watch manifest path's directory", "path",
                      parent, NULL);
}

/* Watches what can replace path without touching its own directory tree: its own name in its
 * parent (a file or directory renamed into place), every symlink among its ancestors in theirs
 * (git-sync and similar tools publish a checkout by renaming a new symlink over the old one),
 * and, when a part of it does not exist yet, that part's name in its nearest existing parent. */
static void watch_path_entries(rec_watch *d, const char *p)
{
    char copy[PATH_MAX];
    if (snprintf(copy, sizeof(copy), "%s", p) >= (int)sizeof(copy))
        return;
    size_t n = strlen(copy);
    while (n > 1 && copy[n - 1] == '/')
        copy[--n] = '\0';
    size_t start = copy[0] == '/' ? 1 : 0; /* the current component's first byte */
    while (start < n) {
        size_t end = start;
        while (end < n && copy[end] != '/')
            end++;
        char name[NAME_MAX + 1];
        (void)snprintf(name, sizeof(name), "%.*s", (int)(end - start), copy + start);
        size_t parent_len = start > 1 ? start - 1 : 0;
        if (start == 1)
            parent_len = 0; /* "/" */
        if (end == n) {
            watch_entry(d, copy, parent_len, name);
            return;
        }
        char prefix[PATH_MAX];
        struct stat st;
        (void)snprintf(prefix, sizeof(prefix), "%.*s", (int)end, copy);
        if (lstat(prefix, &st) < 0) {
            watch_entry(d, copy, parent_len, name); /* the nearest existing parent */
            return;
        }
        if (S_ISLNK(st.st_mode) && strcmp(name, ".") != 0 && strcmp(name, "..") != 0)
            watch_entry(d, copy, parent_len, name);
        start = end + 1;
        while (start < n && copy[start] == '/')
            start++;
    }
}

/* (Re)arms the watchers: every manifest directory tree, and the entries that can replace each
 * manifest path (watch_path_entries), so that a file, directory or symlink replaced by rename
 * (git, editors, git-sync, deployment tools) or created later is noticed, and the new inode is
 * watched after the re-arm. */
void rec_watch_arm(rec_watch *d, char *const *paths, size_t n_paths)
{
    close_watches(d);
    for (size_t i = 0; i < n_paths; i++) {
        struct stat st;
        if (stat(paths[i], &st) == 0 && S_ISDIR(st.st_mode))
            watch_tree(d, paths[i], 0);
        watch_path_entries(d, paths[i]);
    }
}

void rec_watch_free(rec_watch *d)
{
    if (d == NULL)
        return;
    close_watches(d);
    free(d);
}
