/*
 * ahead.h — reading ahead across files (SPEC §12, issue 15 §2).
 *
 * A scan (grep -r, find -exec cat, tar, rsync, jq over a glob) reads file
 * after file at offset 0, in the directory's listing order (rowid) or in name
 * order (a sorted glob). Each such read costs a FUSE round trip; the kernel's
 * own read-ahead stops at the end of a file. ahead_read() is told of every
 * uncached read at offset 0 of a record or a change-log entry; after two in
 * one order in one directory it has a thread of its own push the next files'
 * contents into the kernel's page cache (fuse_lowlevel_notify_store), so the
 * reader finds them there and sends no READ. The kernel takes a pushed page
 * only for an inode it holds (readdirplus made one for every listed entry);
 * others are skipped.
 *
 * The window: 16 files at first, doubled each time the reader gets past what
 * was pushed (it reads, uncached, a file beyond the window: its READ reaches
 * us), up to max_files, and at most max_bytes per batch; a read out of order
 * (a jump, another directory) starts again from 16. Reads of pushed pages are
 * invisible to the daemon, so nothing more than one window beyond the last
 * READ seen is ever pushed: that is the budget of bytes pushed and not yet
 * read. A lone `cat` or an `ls -l` pushes nothing.
 *
 * Never stale: a record's node id carries its version (ino.h) and versions are
 * immutable, so the pusher sends the current version's bytes to the current
 * version's node; a record that changes gets a new node, and the notifier's
 * entry invalidation makes the next reader look the new one up.
 *
 * Threads: ahead_read() on FUSE workers (it never blocks on the pusher). The
 * pusher lists a batch and lays each file out; two storers take the files
 * from it (16 in a row each, through a ring of 64 files or 2 MiB apiece) and
 * push them, so the kernel's storing of one file's pages overlaps the next
 * files' layout. A storer drops a file the reader has already READ. None of
 * them runs in a request handler, so a push never waits for a page that the
 * pushing thread's own reply would unlock. One mutex guards the scans, the
 * queue and the rings; ahead_stop() wakes and joins all three threads.
 *
 * Ownership: the stores and the session given are borrowed; they must outlive
 * ahead_stop(). ahead_stats() returns a NEW jansson reference (json_t *).
 */
#ifndef KOMBOFS_AHEAD_H
#define KOMBOFS_AHEAD_H

#include <stddef.h>
#include <stdint.h>

struct ahead;
struct fuse_session;
struct store;

/* The "model" of change-log entries (changes/<seq>.json): their listing order
 * is their sequence number, and so is their name order (fixed width). */
#define AHEAD_CHANGES (-1)

/* max_files: the largest window (512); max_bytes: bytes per batch at most. */
struct ahead *ahead_new(int max_files, size_t max_bytes);
/* The session pushes go to; the thread starts on the first scan. */
void ahead_set_session(struct ahead *a, struct fuse_session *se);
/* A read at offset 0 of record `node` (ino.h, with its slot) of store st,
 * model `model`, file name `name`, is being answered; or of change-log entry
 * `node` with model AHEAD_CHANGES. */
void ahead_read(struct ahead *a, struct store *st, uint64_t node, int model, const char *name);
/* Stop the pusher (before the session and the stores go). NULL is fine. */
void ahead_stop(struct ahead *a);
void ahead_free(struct ahead *a);
/* {"scans", "batches", "files", "bytes", "not_held", "far", "overtaken",
 * "late"}: what was pushed; "far" counts READs beyond a walk's window that
 * skipped more than a few files (a warm tree's dropped file), after which the
 * window starts again; "overtaken" the times the pusher found the reader
 * ahead of it (it then leaves the next 8 files to the reader), "late" the
 * files a storer dropped because the reader had READ them meanwhile. */
void *ahead_stats(struct ahead *a);

#endif
