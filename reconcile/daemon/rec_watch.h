/* The daemon's manifest watcher (rec_watch.c): uv_fs_event watchers on every manifest directory
 * tree (inotify is not recursive: subdirectories up to 8 deep) and on each manifest path's parent,
 * filtered to the path's own name, so that a file or directory replaced by rename (git, editors,
 * deployment tools) is noticed; on the parent of every symlink among the path's ancestors,
 * filtered to its name, so that git-sync's atomic symlink swap is noticed; and, for a path that
 * does not exist yet, on its nearest existing parent, filtered to the next missing name. The daemon
 * re-arms after every change so that the new inodes are watched. Editor droppings (dot files, `~`,
 * .swp, .swx) are ignored. The watcher does not debounce: it calls on_change for every relevant
 * event and the daemon restarts its debounce timer. Called only by rec_daemon.c, on the daemon's
 * loop. */
#ifndef REC_WATCH_H
#define REC_WATCH_H

#include <stddef.h>
#include <uv.h>

#include "rec_log.h"

typedef struct rec_watch rec_watch;

/* Called on the loop for every event on a watched manifest path. */
typedef void (*rec_watch_fn)(void *ud);

/* An empty watcher set (nothing watched until rec_watch_arm). loop and log are borrowed and must
 * outlive it. Returns 0 and *ret (caller frees with rec_watch_free), or -ENOMEM. */
int rec_watch_new(uv_loop_t *loop, rec_log *log, rec_watch_fn on_change, void *ud, rec_watch **ret);
/* Closes the current watchers and watches paths (borrowed, read now) again. A directory or
 * path that cannot be watched is logged as a warning and skipped. */
void rec_watch_arm(rec_watch *w, char *const *paths, size_t n_paths);
/* Closes every watcher (each is freed from its close callback on the loop) and frees the set.
 * Accepts NULL. */
void rec_watch_free(rec_watch *w);

#endif
