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
struct fuse_session;

struct fs *fs_new(struct store *st, struct sync *sync, struct notify *nt,
                  const struct options *o);
void fs_free(struct fs *fs);

/* Create the FUSE session (parses the FUSE options; nothing is mounted).
 * Returns NULL on bad options (libfuse has printed why). */
struct fuse_session *fs_session(struct fs *fs);

/* The sync listener: route a committed change to the notifier and bump the
 * directory's mtime. Matches sync_changed_fn; ctx is the struct fs. */
void fs_changed(void *ctx, unsigned dir, uint64_t node, const char *name,
                int removed);

#endif
