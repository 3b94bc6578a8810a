/*
 * fs.h — the file system: FUSE low-level operations over the store.
 *
 * Nothing here touches the network or waits for a fetch, except a write to
 * .control, whose contract (SPEC §4) is to return when the command finished.
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

/* Fixed inode numbers; records and change entries come from the store. */
#define FS_INO_ROOT 1
#define FS_INO_MODEL(i) (2 + (uint64_t)(i))     /* 2..10 */
#define FS_INO_CHANGES 11
#define FS_INO_CONTROL 12
#define FS_INO_STATUS 13                        /* a symlink to its latest snapshot */
#define FS_INO_STATUS_SNAP(n) ((1ull << 61) + (n))  /* below STORE_INO_CHANGE_BASE,
                                                       above every record node */
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
void fs_changed(void *ctx, int model, uint64_t ino, const char *name,
                int removed);

#endif
