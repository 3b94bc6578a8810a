/*
 * seqvfs.h — a SQLite VFS that reads a database file ahead in large blocks
 * for a connection that scans it (the exports' pins, store.c).
 *
 * SQLite reads a database one page per pread(2). On this project's hosts a
 * call costs about 3 us beside its copy, and a cold read of a 353 MB export
 * made 25,424 of them (docs/performance.md, "Fewer writes in the first
 * fetch, fewer reads in the export"). "kombofs-seq" wraps the default VFS:
 * a read of the main database file that follows the connection's previous
 * read (or skips ahead by less than a block) fills a block of SEQVFS_BLOCK
 * bytes with one pread and serves the next pages from it; any other read
 * goes to the file as before. Every other method is the default VFS's.
 *
 * Why a block never serves stale bytes: it is emptied whenever the
 * connection takes or drops a lock (xLock, xUnlock, xShmLock: a read
 * transaction begins and ends with xShmLock of its read mark), and by any
 * write or truncation. Within one read transaction the pages SQLite reads
 * from the database file are the ones no WAL frame of its snapshot holds,
 * and SQLite's own page cache relies on those not changing until the
 * transaction ends: a checkpoint backfills only frames every reader's
 * snapshot includes (and none while a reader reads the file alone). A page
 * that a checkpoint rewrites may sit in a block torn, but it is a page the
 * snapshot reads from the WAL, never from the block.
 *
 * Ownership: seqvfs_register() registers the VFS once per process (not as
 * the default) and returns its name, a static string; pass it to
 * sqlite3_open_v2(). Each open file owns its block (malloc'd on the first
 * block read, freed by xClose). seqvfs_stats() reads process-wide counters.
 */
#ifndef KOMBOFS_SEQVFS_H
#define KOMBOFS_SEQVFS_H

#include <stdint.h>

#define SEQVFS_BLOCK (256 * 1024)

/* Register "kombofs-seq" (thread-safe, idempotent). NULL if SQLite has no
 * default VFS or registering failed: open with the default VFS then. */
const char *seqvfs_register(void);

struct seqvfs_stats {
    uint64_t fills;     /* blocks read */
    uint64_t hits;      /* reads served from a block */
    uint64_t direct;    /* reads passed to the file */
};

void seqvfs_stats(struct seqvfs_stats *out);

#endif
