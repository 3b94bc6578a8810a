/*
 * bdi.h — the kernel's read-ahead of a mount (its backing device's
 * read_ahead_kb in sysfs). A FUSE mount starts at 128 KiB, so a sequential
 * read of a large file (exports/employees.jsonl: 353 MB at 100k employees)
 * arrives as READs of 256 KiB; at BDI_READ_AHEAD_KB, the largest READ
 * libfuse accepts (256 pages), it arrives as READs of 1 MiB, a quarter of the
 * round trips.
 *
 * The value may only be raised after the kernel has applied the mount's INIT
 * reply (which can lower it), i.e. from any request handler but INIT's; and
 * only by root. The mount is found by its mount point in /proc/self/mountinfo,
 * resolved before the mount (afterwards resolving it would ask the file
 * system that is not serving yet).
 *
 * Ownership: every string is the caller's; out buffers are filled NUL-terminated.
 */
#ifndef KOMBOFS_BDI_H
#define KOMBOFS_BDI_H

#include <stddef.h>

#define BDI_READ_AHEAD_KB 1024
#define BDI_DEV_SIZE 32             /* "major:minor" */

/* The "major:minor" of the last FUSE mount (file system type "fuse" or
 * "fuse.*") on the absolute path `path` in the mountinfo text (mount points
 * in it escaped as the kernel does: \040 for a space, \011, \012, \134).
 * 0 and out filled, or -1 if there is none. */
int bdi_find(const char *mountinfo, const char *path, char *out, size_t n);

/* bdi_find in this process's /proc/self/mountinfo. */
int bdi_of_mount(const char *path, char *out, size_t n);

/* Write kb to /sys/class/bdi/<dev>/read_ahead_kb: 0, or -errno. */
int bdi_set_read_ahead(const char *dev, unsigned kb);

#endif
