/*
 * snaps.h — immutable, numbered renderings of a generated file (.status).
 *
 * Record files are served in the kernel's "no_open" mode (no request per
 * open or close: a warm pass is as fast as tmpfs), so a generated file can
 * not be rendered "on open" into a file handle. Instead .status is a
 * symbolic link: every time the kernel resolves it (each open), kombofs
 * renders a new snapshot and points the link at it (".status.000000000042").
 * A snapshot never changes, so the page cache may keep it and a reader
 * never sees two renderings mixed. The last SNAPS_KEEP snapshots are kept.
 *
 * Ownership: the ring owns every text; callers get sizes and copies.
 * Thread-safe.
 */
#ifndef KOMBOFS_SNAPS_H
#define KOMBOFS_SNAPS_H

#include <stddef.h>
#include <stdint.h>

#define SNAPS_KEEP 256

/* Render the file: a malloc'd NUL-terminated text, or NULL on failure. */
typedef char *(*snaps_render_fn)(void *ctx);

struct snaps;

struct snaps *snaps_new(snaps_render_fn render, void *ctx);
void snaps_free(struct snaps *s);

/* Render a new snapshot; returns its number (1, 2, ...) or -1. */
int64_t snaps_take(struct snaps *s);

/* Size and creation time of snapshot n: 1 if kept, 0 if gone or never taken. */
int snaps_stat(struct snaps *s, int64_t n, size_t *len, int64_t *ns);

/* Copy up to len bytes from offset off of snapshot n; -1 if it is gone. */
long snaps_read(struct snaps *s, int64_t n, size_t off, char *dst, size_t len);

#endif
