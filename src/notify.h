/*
 * notify.h — the one thread that tells the kernel what changed
 * (fuse_lowlevel_notify_inval_inode / _inval_entry / _delete), so that long
 * kernel cache timeouts never serve stale data.
 *
 * libfuse's rule: never send these from inside a request handler or while
 * holding a lock a handler needs. So producers (the sync worker) only queue
 * (parent, ino, name) triples here; the notifier thread sends them, once per
 * inode per batch, and invalidates each touched directory once.
 *
 * Ownership: notify_push() copies the name. The session is borrowed.
 */
#ifndef KOMBOFS_NOTIFY_H
#define KOMBOFS_NOTIFY_H

#include <stdint.h>

struct fuse_session;
struct notify;

/* enabled = 0 makes every push a no-op (the paired test's control case). */
struct notify *notify_new(int enabled);
void notify_free(struct notify *n);     /* stops the thread first */
int notify_start(struct notify *n, struct fuse_session *se);
void notify_stop(struct notify *n);

/* A file in directory `parent` was created/changed (removed = 0) or removed. */
void notify_push(struct notify *n, uint64_t parent, uint64_t ino,
                 const char *name, int removed);

/* Wait until everything pushed so far has been sent (for tests of latency
 * and for .control: a command returns after the kernel was told). */
void notify_flush(struct notify *n);

#endif
