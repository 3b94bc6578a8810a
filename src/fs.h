/*
 * fs.h — the file system: FUSE low-level operations over the store.
 *
 * Nothing here touches the network or waits for a fetch, except a write to
 * .control, whose contract (SPEC §4) is to return when the command finished.
 *
 * The tree is one table (fs.c, "the namespace"): a row per fixed entry
 * (directories, .control, .status, the views' directories and exports),
 * each with how it is looked up, listed and read. Numbers: ino.h.
 *
 * Ownership: fs_new() borrows the store, the sync engine, the notifier and
 * the options; they must outlive the struct fs and its session.
 */
#ifndef KOMBOFS_FS_H
#define KOMBOFS_FS_H

#include <stdint.h>

#include "notify.h"
#include "options.h"
#include "store.h"
#include "sync.h"

#define STATUS_NAME_LEN 20                      /* ".status.000000000042" */

struct fs;
struct fsset;
struct fuse_session;

/* A tree: the namespace of one integration over its store, in slot `slot`
 * (ino.h; 0 in single mode, where the tree is the mount's root). */
struct fs *fs_new(struct store *st, struct sync *sync, struct notify *nt,
                  const struct options *o, unsigned slot);
void fs_free(struct fs *fs);

/* Multi mode (SPEC §9): the daemon's root, slot 0: by-origin/, .control and
 * .status, and a directory per visible integration tree. control(ctx, cmd,
 * len) runs a .control write and returns 0 or an errno; status(ctx) renders
 * .status (malloc'd text). */
typedef int (*fs_control_fn)(void *ctx, const char *cmd, size_t len);
typedef char *(*fs_status_fn)(void *ctx);
struct fs *fs_new_root(const struct options *o, struct notify *nt, fs_control_fn control,
                       fs_status_fn status, void *ctx);
/* An integration tree's directory name (escaped id), its by-origin name (NULL:
 * none), and whether the root lists it (after its first full fetch). Call
 * fs_set_origin and fs_set_visible after fsset_put. */
void fs_set_name(struct fs *fs, const char *name);
void fs_set_origin(struct fs *fs, const char *origin);
void fs_set_visible(struct fs *fs, int visible);

/* The set of trees under one FUSE session (single mode: a set of one).
 * fsset_put() publishes a tree, which the set then owns: fsset_free() frees
 * every tree it holds. A tree is never taken out while the session runs. */
struct fsset *fsset_new(const struct options *o);
/* Stop reading ahead (before the session and the caches go). */
void fsset_stop(struct fsset *set);
void fsset_put(struct fsset *set, struct fs *fs);
void fsset_free(struct fsset *set);

/* Resolve the mount point before the mount (bdi.h); after it, fsset_mounted()
 * finds the mount's device, and the first request after INIT raises its
 * read-ahead to BDI_READ_AHEAD_KB (root only; a debug line says what came
 * of it). A mount point given as /dev/fd/N is left as it is. */
void fsset_mounting(struct fsset *set, const char *mountpoint);
void fsset_mounted(struct fsset *set);

/* Create the FUSE session (parses the FUSE options; nothing is mounted).
 * Returns NULL on bad options (libfuse has printed why). */
struct fuse_session *fs_session(struct fsset *set);

/* The sync listener: route a committed change to the notifier and bump the
 * directory's mtime. Matches sync_changed_fn; ctx is the struct fs. */
void fs_changed(void *ctx, unsigned dir, uint64_t node, const char *name,
                int removed);

#endif
