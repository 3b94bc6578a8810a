/*
 * floor.c — the FUSE floor of the benchmark (SPEC §8, issue 15 §1).
 *
 *   kombofs-floor SRC_DIR MOUNTPOINT [-f] [-s] [-r] [-d] [-c FILE]
 *
 * Loads the directory tree SRC_DIR (regular files, directories, symbolic
 * links) into memory, then serves it read-only at MOUNTPOINT through the
 * libfuse3 low-level API with kombofs's kernel-cache settings (src/fs.c,
 * src/options.c, src/main.c), so that a benchmark row measured on it is the
 * least any FUSE file system can cost for that row:
 *
 *   - init asks exactly what kombofs asks: readdirplus always (never "auto"),
 *     no atomic_o_trunc, no writeback cache;
 *   - open of a regular file answers ENOSYS: the kernel switches to no_open
 *     (no OPEN/RELEASE requests any more) and keeps the page cache
 *     (FOPEN_KEEP_CACHE is the no_open default);
 *   - opendir answers keep_cache and cache_readdir;
 *   - entries and attributes carry a timeout of a day (FS_TIMEOUT); a name
 *     missing from a directory below the root is a cached negative entry;
 *   - attributes as kombofs fills them: the source's permission bits, the
 *     mounting user and group, nlink 2 or 1, st_blksize 4096, and atime,
 *     mtime and ctime all equal to the source's mtime;
 *   - getxattr: ENOTSUP outside user.* (so `ls -l` stops asking), ENODATA
 *     inside; listxattr: an empty list; anything that writes: EROFS;
 *   - the mount's read-ahead raised to BDI_READ_AHEAD_KB (1 MiB) by the first
 *     request after INIT, root only (src/bdi.h);
 *   - mount options default_permissions,fsname=...,subtype=...; the
 *     multi-threaded loop with clone_fd 0, 10 threads, 10 idle (kombofs's
 *     defaults); -s: the single-threaded loop (kombofs -s).
 *
 * A READ is answered straight from the loaded bytes; nothing is allocated
 * per request except a listing's buffer (as in kombofs).
 *
 * -f  stay in the foreground (default: daemonise once mounted, as kombofs);
 * -r  after an unmount from outside (fusermount3 -u), mount again with the
 *     tree still in memory: the benchmark's cold runs unmount and wait for
 *     the mount to come back, which drops every kernel cache of it the way a
 *     kombofs restart does, without reloading the tree. SIGTERM, SIGINT and
 *     SIGHUP unmount and stop it;
 * -d  libfuse's debug output;
 * -c FILE  on SIGUSR1, write the requests served so far, by type, to FILE
 *     (replaced atomically; its first line counts the dumps), so that the
 *     benchmark can see whether a warm pass really made no READ.
 *
 * At each unmount it writes the number of requests by type since the
 * previous unmount to stderr.
 * Part of the benchmark only: meson builds it, never installs it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* realpath, fstatat, st_mtim: meson passes it too */
#endif
#define FUSE_USE_VERSION 312
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "bdi.h"

#define FS_TIMEOUT 86400.0      /* src/fs.c */
#define CHUNK (64u << 20)       /* arena chunk for file contents and names */

struct node {
    const char *name;
    const char *data;           /* a file's bytes, a link's target */
    uint64_t size;
    uint32_t parent;            /* index; the root is its own parent */
    uint32_t first, count;      /* a directory's children: [first, first + count), by name */
    mode_t mode;
    struct timespec mtime;
};

static struct node *nodes;
static size_t nnodes, cap_nodes;
static uid_t uid;
static gid_t gid;

/* ---- an arena of 64 MiB chunks: no per-file allocation ---- */

static char *arena;
static size_t arena_left;

static char *arena_get(size_t n)
{
    if (n > CHUNK / 4) {
        char *p = malloc(n ? n : 1);
        if (!p) {
            perror("kombofs-floor: malloc");
            exit(1);
        }
        return p;
    }
    if (n > arena_left) {
        arena = malloc(CHUNK);
        if (!arena) {
            perror("kombofs-floor: malloc");
            exit(1);
        }
        arena_left = CHUNK;
    }
    char *p = arena;
    arena += n;
    arena_left -= n;
    return p;
}

static uint32_t add_node(void)
{
    if (nnodes == cap_nodes) {
        cap_nodes = cap_nodes ? cap_nodes * 2 : 4096;
        struct node *n = realloc(nodes, cap_nodes * sizeof *nodes);
        if (!n || cap_nodes >= UINT32_MAX) {
            fputs("kombofs-floor: out of memory for nodes\n", stderr);
            exit(1);
        }
        nodes = n;
    }
    memset(&nodes[nnodes], 0, sizeof nodes[nnodes]);
    return (uint32_t)nnodes++;
}

/* ---- loading ---- */

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int read_all(int fd, char *buf, size_t size)
{
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    return 0;
}

/* Fills node `dir` (open as dfd) with its children, appended in name order;
 * returns 0 or -1. Subdirectories are loaded by the caller's breadth-first
 * walk, so every directory's children are contiguous. */
static int load_dir(uint32_t dir, int dfd, uint64_t *bytes)
{
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((errno = 0, e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, cap * sizeof *names);
            if (!nn) {
                fputs("kombofs-floor: out of memory\n", stderr);
                exit(1);
            }
            names = nn;
        }
        size_t len = strlen(e->d_name) + 1;
        names[n] = arena_get(len);
        memcpy(names[n], e->d_name, len);
        n++;
    }
    if (errno) {
        perror("kombofs-floor: readdir");
        closedir(d);
        free(names);
        return -1;
    }
    qsort(names, n, sizeof *names, by_name);
    nodes[dir].first = (uint32_t)nnodes;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct stat st;
        if (fstatat(dirfd(d), names[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
            fprintf(stderr, "kombofs-floor: %s: %s\n", names[i], strerror(errno));
            rc = -1;
            break;
        }
        if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode))
            continue;           /* devices, fifos, sockets: not served */
        uint32_t c = add_node();
        struct node *nd = &nodes[c];
        nd->name = names[i];
        nd->parent = dir;
        nd->mode = st.st_mode;
        nd->mtime = st.st_mtim;
        if (S_ISREG(st.st_mode)) {
            char *buf = arena_get((size_t)st.st_size);
            int fd = openat(dirfd(d), names[i], O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
            if (fd < 0 || read_all(fd, buf, (size_t)st.st_size) < 0) {
                fprintf(stderr, "kombofs-floor: reading %s: %s\n", names[i],
                        fd < 0 ? strerror(errno) : "short read");
                rc = -1;
            }
            if (fd >= 0)
                close(fd);
            nd->data = buf;
            nd->size = (uint64_t)st.st_size;
            *bytes += nd->size;
        } else if (S_ISLNK(st.st_mode)) {
            char *buf = arena_get((size_t)st.st_size + 1);
            ssize_t len = readlinkat(dirfd(d), names[i], buf, (size_t)st.st_size + 1);
            if (len < 0 || (size_t)len > (size_t)st.st_size) {
                fprintf(stderr, "kombofs-floor: readlink %s failed\n", names[i]);
                rc = -1;
                len = 0;
            }
            buf[len] = '\0';
            nd->data = buf;
            nd->size = (uint64_t)len;
        }
    }
    nodes[dir].count = (uint32_t)(nnodes - nodes[dir].first);
    closedir(d);
    free(names);
    return rc;
}

/* Opens directory node i (a path relative to the root's fd). */
static int open_dir_node(int rootfd, uint32_t i)
{
    if (i == 0)
        return openat(rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int pfd = open_dir_node(rootfd, nodes[i].parent);
    if (pfd < 0)
        return -1;
    int fd = openat(pfd, nodes[i].name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    close(pfd);
    return fd;
}

static int load(const char *src)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rootfd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct stat st;
    if (rootfd < 0 || fstat(rootfd, &st) < 0) {
        fprintf(stderr, "kombofs-floor: %s: %s\n", src, strerror(errno));
        return -1;
    }
    uint32_t root = add_node();
    nodes[root].name = "";
    nodes[root].parent = root;
    nodes[root].mode = st.st_mode;
    nodes[root].mtime = st.st_mtim;
    uint64_t bytes = 0;
    size_t dirs = 0;
    for (size_t i = 0; i < nnodes; i++) {        /* breadth first: nnodes grows */
        if (!S_ISDIR(nodes[i].mode))
            continue;
        int dfd = open_dir_node(rootfd, (uint32_t)i);
        if (dfd < 0 || load_dir((uint32_t)i, dfd, &bytes) < 0) {
            if (dfd < 0)
                fprintf(stderr, "kombofs-floor: opening %s: %s\n", nodes[i].name, strerror(errno));
            close(rootfd);
            return -1;
        }
        dirs++;
    }
    close(rootfd);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "kombofs-floor: loaded %zu nodes (%zu directories), %llu bytes, in %.2f s\n",
            nnodes, dirs, (unsigned long long)bytes,
            (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    return 0;
}

/* ---- requests ---- */

enum { C_LOOKUP, C_GETATTR, C_READDIRPLUS, C_READDIR, C_OPEN, C_OPENDIR, C_READ, C_GETXATTR,
       C_OTHER, C_COUNT };
static const char *const op_names[C_COUNT] = {
    "lookup", "getattr", "readdirplus", "readdir", "open", "opendir", "read", "getxattr", "other",
};
static _Atomic long counts[C_COUNT];     /* since the start */
static long counts_unmount[C_COUNT];     /* at the previous unmount */

/* The mount's read-ahead, raised as kombofs raises it (src/bdi.h): by the
 * first request after INIT, root only. */
static char mnt_real[PATH_MAX];
static char bdi_dev[BDI_DEV_SIZE];
static atomic_int raise_ahead;

static void count(int c)
{
    atomic_fetch_add_explicit(&counts[c], 1, memory_order_relaxed);
    if (atomic_load_explicit(&raise_ahead, memory_order_relaxed) && atomic_exchange(&raise_ahead, 0))
        bdi_set_read_ahead(bdi_dev, BDI_READ_AHEAD_KB);
}

/* Node id = index + 1, so the root is FUSE_ROOT_ID. */
static struct node *node_of(fuse_ino_t ino)
{
    return ino >= 1 && ino <= nnodes ? &nodes[ino - 1] : NULL;
}

static void fill_stat(const struct node *n, struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_ino = (ino_t)(n - nodes) + 1;
    st->st_mode = n->mode & (S_IFMT | 07777);
    st->st_nlink = S_ISDIR(n->mode) ? 2 : 1;
    st->st_uid = uid;
    st->st_gid = gid;
    st->st_size = (off_t)n->size;
    st->st_blksize = 4096;
    st->st_blocks = (blkcnt_t)((n->size + 511) / 512);
    st->st_mtim = st->st_ctim = st->st_atim = n->mtime;
}

static void fill_entry(const struct node *n, struct fuse_entry_param *e)
{
    memset(e, 0, sizeof *e);
    e->ino = (fuse_ino_t)(n - nodes) + 1;
    fill_stat(n, &e->attr);
    e->attr_timeout = FS_TIMEOUT;
    e->entry_timeout = FS_TIMEOUT;
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
    (void)userdata;
    if (conn->capable & FUSE_CAP_READDIRPLUS)
        conn->want |= FUSE_CAP_READDIRPLUS;
    conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
    conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
    conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    count(C_LOOKUP);
    const struct node *d = node_of(parent);
    if (!d || !S_ISDIR(d->mode)) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    size_t lo = d->first, hi = (size_t)d->first + d->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, nodes[mid].name);
        if (c == 0) {
            struct fuse_entry_param e;
            fill_entry(&nodes[mid], &e);
            fuse_reply_entry(req, &e);
            return;
        }
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    if (parent == FUSE_ROOT_ID) {       /* kombofs: fixed names are never cached absent */
        fuse_reply_err(req, ENOENT);
        return;
    }
    struct fuse_entry_param e;
    memset(&e, 0, sizeof e);
    e.entry_timeout = FS_TIMEOUT;
    fuse_reply_entry(req, &e);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)fi;
    count(C_GETATTR);
    const struct node *n = node_of(ino);
    if (!n) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    struct stat st;
    fill_stat(n, &st);
    fuse_reply_attr(req, &st, FS_TIMEOUT);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
    count(C_OTHER);
    const struct node *n = node_of(ino);
    if (!n || !S_ISLNK(n->mode))
        fuse_reply_err(req, n ? EINVAL : ENOENT);
    else
        fuse_reply_readlink(req, n->data);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    count(C_OPENDIR);
    const struct node *n = node_of(ino);
    if (!n) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    if (!S_ISDIR(n->mode)) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    fi->cache_readdir = 1;
    fi->keep_cache = 1;
    fuse_reply_open(req, fi);
}

/* Entry j of a listing: "." (j 0), ".." (1), child j - 2; its offset is j + 1
 * (kombofs: "." 1, ".." 2, the rows from 3). */
static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, int plus)
{
    count(plus ? C_READDIRPLUS : C_READDIR);
    const struct node *d = node_of(ino);
    if (!d || !S_ISDIR(d->mode)) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    char *buf = malloc(size ? size : 1);
    if (!buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    size_t used = 0;
    for (uint64_t j = off < 0 ? 0 : (uint64_t)off; j < 2 + (uint64_t)d->count; j++) {
        const struct node *c = j == 0 ? d : j == 1 ? &nodes[d->parent] : &nodes[d->first + j - 2];
        const char *name = j == 0 ? "." : j == 1 ? ".." : c->name;
        size_t need;
        if (plus) {
            struct fuse_entry_param e;
            fill_entry(c, &e);
            need = fuse_add_direntry_plus(req, buf + used, size - used, name, &e, (off_t)j + 1);
        } else {
            struct stat st;
            fill_stat(c, &st);
            need = fuse_add_direntry(req, buf + used, size - used, name, &st, (off_t)j + 1);
        }
        if (need > size - used)
            break;
        used += need;
    }
    fuse_reply_buf(req, buf, used);
    free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    (void)fi;
    do_readdir(req, ino, size, off, 0);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                           struct fuse_file_info *fi)
{
    (void)fi;
    do_readdir(req, ino, size, off, 1);
}

/* ENOSYS once: the kernel's no_open mode, pages kept (see src/fs.c op_open). */
static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    (void)fi;
    count(C_OPEN);
    fuse_reply_err(req, ENOSYS);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    (void)fi;
    count(C_READ);
    const struct node *n = node_of(ino);
    if (!n || !S_ISREG(n->mode)) {
        fuse_reply_err(req, !n ? ENOENT : S_ISDIR(n->mode) ? EISDIR : EINVAL);
        return;
    }
    if (off < 0 || (uint64_t)off >= n->size) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    uint64_t left = n->size - (uint64_t)off;
    fuse_reply_buf(req, n->data + off, size < left ? size : (size_t)left);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
    (void)ino;
    (void)size;
    count(C_GETXATTR);
    fuse_reply_err(req, strncmp(name, "user.", 5) != 0 ? ENOTSUP : ENODATA);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
    (void)ino;
    count(C_OTHER);
    if (size == 0)
        fuse_reply_xattr(req, 0);
    else
        fuse_reply_buf(req, NULL, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
    (void)ino;
    count(C_OTHER);
    struct statvfs sv;
    memset(&sv, 0, sizeof sv);
    sv.f_bsize = sv.f_frsize = 4096;
    sv.f_namemax = 255;
    sv.f_flag = ST_RDONLY | ST_NOSUID | ST_NODEV;
    fuse_reply_statfs(req, &sv);
}

/* Everything that would change the tree. */
static void erofs(fuse_req_t req)
{
    count(C_OTHER);
    fuse_reply_err(req, EROFS);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
    (void)ino, (void)attr, (void)to_set, (void)fi;
    erofs(req);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    (void)ino, (void)buf, (void)size, (void)off, (void)fi;
    erofs(req);
}

static void op_create(fuse_req_t req, fuse_ino_t p, const char *n, mode_t m,
                      struct fuse_file_info *fi)
{
    (void)p, (void)n, (void)m, (void)fi;
    erofs(req);
}

static void op_mknod(fuse_req_t req, fuse_ino_t p, const char *n, mode_t m, dev_t d)
{
    (void)p, (void)n, (void)m, (void)d;
    erofs(req);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t p, const char *n, mode_t m)
{
    (void)p, (void)n, (void)m;
    erofs(req);
}

static void op_unlink(fuse_req_t req, fuse_ino_t p, const char *n)
{
    (void)p, (void)n;
    erofs(req);
}

static void op_symlink(fuse_req_t req, const char *l, fuse_ino_t p, const char *n)
{
    (void)l, (void)p, (void)n;
    erofs(req);
}

static void op_rename(fuse_req_t req, fuse_ino_t p, const char *n, fuse_ino_t np, const char *nn,
                      unsigned int flags)
{
    (void)p, (void)n, (void)np, (void)nn, (void)flags;
    erofs(req);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t np, const char *nn)
{
    (void)ino, (void)np, (void)nn;
    erofs(req);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                        size_t size, int flags)
{
    (void)ino, (void)name, (void)value, (void)size, (void)flags;
    erofs(req);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
    (void)ino, (void)name;
    erofs(req);
}

static const struct fuse_lowlevel_ops ops = {
    .init = op_init,
    .lookup = op_lookup,
    .getattr = op_getattr,
    .readlink = op_readlink,
    .setattr = op_setattr,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .unlink = op_unlink,
    .rmdir = op_unlink,
    .symlink = op_symlink,
    .rename = op_rename,
    .link = op_link,
    .open = op_open,
    .read = op_read,
    .write = op_write,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .readdirplus = op_readdirplus,
    .statfs = op_statfs,
    .setxattr = op_setxattr,
    .getxattr = op_getxattr,
    .listxattr = op_listxattr,
    .removexattr = op_removexattr,
    .create = op_create,
};

/* ---- main ---- */

static void usage(FILE *f)
{
    fputs("usage: kombofs-floor SRC_DIR MOUNTPOINT [-f] [-s] [-r] [-d] [-c FILE]\n"
          "  serves SRC_DIR from memory, read-only, with kombofs's kernel-cache settings\n"
          "  -f  foreground   -s  single-threaded loop   -d  libfuse debug output\n"
          "  -r  mount again after an unmount from outside (the benchmark's cold runs)\n"
          "  -c FILE  on SIGUSR1, write the requests served so far to FILE\n", f);
}

/* -c FILE: a thread that waits for SIGUSR1 (blocked in every other thread)
 * and writes the counts. */
static const char *counts_path;

static void *dump_thread(void *arg)
{
    sigset_t *set = arg;
    unsigned long dumps = 0;
    size_t len = strlen(counts_path);
    char *tmp = malloc(len + 5);
    if (!tmp)
        return NULL;
    memcpy(tmp, counts_path, len);
    memcpy(tmp + len, ".tmp", 5);
    for (;;) {
        int sig;
        if (sigwait(set, &sig) != 0)
            continue;
        FILE *f = fopen(tmp, "w");
        if (!f)
            continue;
        fprintf(f, "dump %lu\n", ++dumps);
        for (int i = 0; i < C_COUNT; i++)
            fprintf(f, "%s %ld\n", op_names[i], atomic_load(&counts[i]));
        if (fclose(f) == 0)
            rename(tmp, counts_path);
    }
    return NULL;
}

static int start_dump_thread(void)
{
    static sigset_t set;
    pthread_t t;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    if (pthread_create(&t, NULL, dump_thread, &set) != 0)
        return -1;
    pthread_detach(t);
    return 0;
}

/* One mount: 0 after an unmount from outside, else the signal or -1. */
static int serve(const char *mnt, int foreground, int single, int debug, int *daemonised)
{
    char *argv[4];
    int argc = 0;
    argv[argc++] = "kombofs-floor";
    if (debug)
        argv[argc++] = "-d";
    argv[argc++] = "-o";
    argv[argc++] = "default_permissions,fsname=kombofs-floor,subtype=kombofs-floor";
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    struct fuse_session *se = fuse_session_new(&args, &ops, sizeof ops, NULL);
    fuse_opt_free_args(&args);
    if (!se)
        return -1;
    int rc = -1;
    if (fuse_set_signal_handlers(se) < 0)
        goto out;
    if (!mnt_real[0] && !realpath(mnt, mnt_real))
        mnt_real[0] = '\0';
    if (fuse_session_mount(se, mnt) < 0)
        goto out_signals;
    if (mnt_real[0] && bdi_of_mount(mnt_real, bdi_dev, sizeof bdi_dev) == 0)
        atomic_store(&raise_ahead, 1);
    if (!*daemonised) {
        if (fuse_daemonize(foreground) < 0)
            goto out_unmount;
        *daemonised = 1;
        if (counts_path && start_dump_thread() < 0)
            goto out_unmount;
    }
    if (single) {
        rc = fuse_session_loop(se);
    } else {
        struct fuse_loop_config *cfg = fuse_loop_cfg_create();
        if (!cfg)
            goto out_unmount;
        fuse_loop_cfg_set_clone_fd(cfg, 0);
        fuse_loop_cfg_set_max_threads(cfg, 10);
        fuse_loop_cfg_set_idle_threads(cfg, 10);
        rc = fuse_session_loop_mt(se, cfg);
        fuse_loop_cfg_destroy(cfg);
    }
    fputs("kombofs-floor: unmounted; requests:", stderr);
    for (int i = 0; i < C_COUNT; i++) {
        long now = atomic_load(&counts[i]), n = now - counts_unmount[i];
        counts_unmount[i] = now;
        if (n)
            fprintf(stderr, " %s %ld", op_names[i], n);
    }
    fputc('\n', stderr);
out_unmount:
    fuse_session_unmount(se);
out_signals:
    fuse_remove_signal_handlers(se);
out:
    fuse_session_destroy(se);
    return rc;
}

int main(int argc, char **argv)
{
    const char *src = NULL, *mnt = NULL;
    int foreground = 0, single = 0, remount = 0, debug = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-f") == 0) {
            foreground = 1;
        } else if (strcmp(argv[i], "-s") == 0) {
            single = 1;
        } else if (strcmp(argv[i], "-r") == 0) {
            remount = 1;
        } else if (strcmp(argv[i], "-d") == 0) {
            debug = 1;
        } else if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            counts_path = argv[++i];
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "kombofs-floor: unknown option %s\n", argv[i]);
            usage(stderr);
            return 2;
        } else if (!src) {
            src = argv[i];
        } else if (!mnt) {
            mnt = argv[i];
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (!src || !mnt) {
        usage(stderr);
        return 2;
    }
    /* fuse_daemonize() changes to "/", and a remount must find the same place. */
    char *abs = realpath(mnt, NULL);
    if (!abs) {
        fprintf(stderr, "kombofs-floor: %s: %s\n", mnt, strerror(errno));
        return 1;
    }
    mnt = abs;
    uid = getuid();
    gid = getgid();
    if (counts_path) {
        /* Blocked here, so in every thread libfuse starts; the dump thread waits for it. */
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGUSR1);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
    }
    if (load(src) < 0)
        return 1;
    int daemonised = 0, rc;
    do {
        rc = serve(mnt, foreground, single, debug, &daemonised);
    } while (rc == 0 && remount);
    free(abs);
    return rc == -1 ? 1 : 0;
}
