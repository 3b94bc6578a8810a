/*
 * fs.c — FUSE low-level handlers. Every handler answers from the store's
 * per-thread read connection; inodes are computed, never kept in memory, so
 * forget needs no bookkeeping and numbers survive remounts.
 */
#define FUSE_USE_VERSION 35
#include "clock.h"
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "control.h"
#include "log.h"
#include "models.h"
#include "snaps.h"

/* Long kernel caches: the notifier invalidates whatever changes. */
#define FS_TIMEOUT 86400.0

/* Requests counted by type, shown in .status (tests and benchmarks use them). */
enum op_count {
    C_LOOKUP, C_GETATTR, C_READDIR, C_READDIRPLUS, C_OPEN, C_READ, C_WRITE, C_GETXATTR,
    C_COUNT
};
static const char *const op_names[C_COUNT] = {
    "lookup", "getattr", "readdir", "readdirplus", "open", "read", "write", "getxattr",
};

struct fs {
    _Atomic long ops[C_COUNT];
    struct store *st;
    struct sync *sync;
    struct notify *nt;
    const struct options *o;
    uid_t uid;
    gid_t gid;
    int64_t mount_ns;
    _Atomic int64_t dir_mtime[MODEL_COUNT + 1];     /* [MODEL_COUNT] = changes/ */
    struct snaps *status;       /* .status renderings (see snaps.h) */
};

static struct fs *fs_of(fuse_req_t req)
{
    return fuse_req_userdata(req);
}

static struct fs *counted(fuse_req_t req, enum op_count op)
{
    struct fs *fs = fuse_req_userdata(req);
    atomic_fetch_add_explicit(&fs->ops[op], 1, memory_order_relaxed);
    return fs;
}

/* .status: the sync engine's state plus this file system's request counts. */
static char *status_text(void *ctx)
{
    struct fs *fs = ctx;
    json_t *j = sync_status(fs->sync);
    if (!j)
        return NULL;
    json_t *counts = json_object();
    for (int i = 0; i < C_COUNT; i++)
        json_object_set_new(counts, op_names[i], json_integer(atomic_load(&fs->ops[i])));
    json_object_set_new(j, "requests", counts);
    json_object_set_new(j, "kernel_notify", json_boolean(fs->o->kernel_notify));
    return sync_render(j);
}

struct fs *fs_new(struct store *st, struct sync *sync, struct notify *nt,
                  const struct options *o)
{
    struct fs *fs = calloc(1, sizeof *fs);
    if (!fs)
        abort();
    fs->st = st;
    fs->sync = sync;
    fs->nt = nt;
    fs->o = o;
    fs->uid = o->uid_set ? o->uid : getuid();
    fs->gid = o->gid_set ? o->gid : getgid();
    fs->mount_ns = clock_now_ns();
    for (int i = 0; i <= MODEL_COUNT; i++)
        atomic_store(&fs->dir_mtime[i], fs->mount_ns);
    fs->status = snaps_new(status_text, fs);
    return fs;
}

void fs_free(struct fs *fs)
{
    if (fs)
        snaps_free(fs->status);
    free(fs);
}

void fs_changed(void *ctx, int model, uint64_t ino, const char *name,
                int removed)
{
    struct fs *fs = ctx;
    int slot = model < 0 ? MODEL_COUNT : model;
    uint64_t parent = model < 0 ? FS_INO_CHANGES : FS_INO_MODEL(model);
    atomic_store(&fs->dir_mtime[slot], clock_now_ns());
    notify_push(fs->nt, parent, ino, name, removed);
}

/* ---- attributes ---- */

static int model_of_dir(uint64_t ino)
{
    return ino >= FS_INO_MODEL(0) && ino < FS_INO_MODEL(MODEL_COUNT)
               ? (int)(ino - FS_INO_MODEL(0)) : -1;
}

static int mirrored(const struct fs *fs, int model)
{
    return model >= 0 && (fs->o->models & (1u << model));
}

static void set_times(struct stat *st, int64_t ns)
{
    st->st_mtim.tv_sec = st->st_ctim.tv_sec = st->st_atim.tv_sec = (time_t)(ns / 1000000000);
    st->st_mtim.tv_nsec = st->st_ctim.tv_nsec = st->st_atim.tv_nsec = (long)(ns % 1000000000);
}

static void fill_stat(const struct fs *fs, uint64_t ino, mode_t type, mode_t perm,
                      uint64_t size, int64_t mtime_ns, struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_ino = ino;
    st->st_mode = type | (perm & ~fs->o->umask);
    st->st_nlink = type == S_IFDIR ? 2 : 1;
    st->st_uid = fs->uid;
    st->st_gid = fs->gid;
    st->st_size = (off_t)size;
    st->st_blksize = 4096;
    st->st_blocks = (blkcnt_t)((size + 511) / 512);
    set_times(st, mtime_ns);
}

/* Attributes of a fixed inode; 0, or -ENOENT. */
static int fixed_stat(struct fs *fs, uint64_t ino, struct stat *st)
{
    int model = model_of_dir(ino);
    if (ino == FS_INO_ROOT)
        fill_stat(fs, ino, S_IFDIR, 0550, 0, fs->mount_ns, st);
    else if (mirrored(fs, model))
        fill_stat(fs, ino, S_IFDIR, 0550, 0, atomic_load(&fs->dir_mtime[model]), st);
    else if (ino == FS_INO_CHANGES)
        fill_stat(fs, ino, S_IFDIR, 0550, 0, atomic_load(&fs->dir_mtime[MODEL_COUNT]), st);
    else if (ino == FS_INO_CONTROL)
        fill_stat(fs, ino, S_IFREG, 0220, 0, fs->mount_ns, st);
    else if (ino == FS_INO_STATUS)
        fill_stat(fs, ino, S_IFLNK, 0440, STATUS_NAME_LEN, fs->mount_ns, st);
    else
        return -ENOENT;
    return 0;
}

/* The node ranges, from the top: change entries, .status snapshots, records. */
static int is_change(uint64_t node)
{
    return node >= STORE_INO_CHANGE_BASE;
}

static int is_snapshot(uint64_t node)
{
    return node >= FS_INO_STATUS_SNAP(0) && !is_change(node);
}

static int is_record(uint64_t node)
{
    return node >= STORE_INO_RECORD_BASE && node < FS_INO_STATUS_SNAP(0);
}

/* Attributes of any node: 0, -ENOENT or -EIO. For records st_ino is the
 * record's stable number, not the node id (see store.h). */
static int stat_ino(struct fs *fs, uint64_t ino, struct stat *st)
{
    if (ino < STORE_INO_RECORD_BASE)
        return fixed_stat(fs, ino, st);
    if (is_snapshot(ino)) {
        size_t len;
        int64_t ns;
        if (!snaps_stat(fs->status, (int64_t)(ino - FS_INO_STATUS_SNAP(0)), &len, &ns))
            return -ENOENT;
        fill_stat(fs, ino, S_IFREG, 0440, len, ns, st);
        return 0;
    }
    struct store_reader *r = store_reader(fs->st);
    struct store_attr a;
    int rc;
    if (!r)
        return -EIO;
    if (is_change(ino)) {
        rc = store_read_change_attr(r, (int64_t)(ino - STORE_INO_CHANGE_BASE), &a);
    } else {
        int model;
        rc = store_read_record_attr(r, ino, &model, &a);
        if (rc == 1 && model >= 0 && !mirrored(fs, model))
            rc = 0;
    }
    if (rc < 0)
        return -EIO;
    if (rc == 0)
        return -ENOENT;
    fill_stat(fs, a.ino, S_IFREG, 0440, a.size, a.mtime_ns, st);
    return 0;
}

/* node: the FUSE node id, which for records differs from st_ino (store.h). */
static void fill_entry(uint64_t node, const struct stat *st, struct fuse_entry_param *e)
{
    memset(e, 0, sizeof *e);
    e->ino = node;
    e->attr = *st;
    e->attr_timeout = FS_TIMEOUT;
    e->entry_timeout = FS_TIMEOUT;
}

static void reply_entry(fuse_req_t req, uint64_t node, const struct stat *st)
{
    struct fuse_entry_param e;
    fill_entry(node, st, &e);
    fuse_reply_entry(req, &e);
}

static void reply_negative(fuse_req_t req)
{
    /* A cached negative entry; the notifier drops it when the name appears. */
    struct fuse_entry_param e;
    memset(&e, 0, sizeof e);
    e.entry_timeout = FS_TIMEOUT;
    fuse_reply_entry(req, &e);
}

/* ---- lookup ---- */

static int root_child(const struct fs *fs, const char *name, uint64_t *ino)
{
    for (int i = 0; i < MODEL_COUNT; i++)
        if (mirrored(fs, i) && strcmp(name, models_table[i].dir) == 0)
            return *ino = FS_INO_MODEL(i), 0;
    if (strcmp(name, "changes") == 0)
        return *ino = FS_INO_CHANGES, 0;
    if (strcmp(name, ".control") == 0)
        return *ino = FS_INO_CONTROL, 0;
    if (strcmp(name, ".status") == 0)
        return *ino = FS_INO_STATUS, 0;
    /* ".status.000000000042": a snapshot, found but never listed */
    if (strncmp(name, ".status.", 8) == 0 && strlen(name) == STATUS_NAME_LEN) {
        int64_t n = 0;
        for (const char *p = name + 8; *p; p++) {
            if (*p < '0' || *p > '9')
                return -ENOENT;
            n = n * 10 + (*p - '0');
        }
        return *ino = FS_INO_STATUS_SNAP((uint64_t)n), 0;
    }
    return -ENOENT;
}

/* "000000000042.json" -> 42; -1 unless the name is exactly that form. */
static int64_t change_seq(const char *name)
{
    int64_t seq = 0;
    int i;
    for (i = 0; i < 12; i++) {
        if (name[i] < '0' || name[i] > '9')
            return -1;
        seq = seq * 10 + (name[i] - '0');
    }
    return strcmp(name + 12, ".json") == 0 ? seq : -1;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fs *fs = fs_of(req);
    /* Snapshot names of .status are plumbing, not counted as lookups. */
    if (parent != FS_INO_ROOT || strncmp(name, ".status.", 8) != 0)
        counted(req, C_LOOKUP);
    struct stat st;
    uint64_t node = 0;
    int rc;

    memset(&st, 0, sizeof st);
    if (parent == FS_INO_ROOT) {
        rc = root_child(fs, name, &node);
        if (rc == 0)
            rc = stat_ino(fs, node, &st);
    } else {
        struct store_reader *r = store_reader(fs->st);
        struct store_attr a;
        int model = model_of_dir(parent);
        if (!r) {
            fuse_reply_err(req, EIO);
            return;
        }
        if (mirrored(fs, model)) {
            rc = store_read_lookup(r, model, name, &a);
        } else if (parent == FS_INO_CHANGES) {
            int64_t seq = change_seq(name);
            rc = seq > 0 ? store_read_change_attr(r, seq, &a) : 0;
        } else {
            fuse_reply_err(req, parent >= STORE_INO_RECORD_BASE ? ENOTDIR : ENOENT);
            return;
        }
        if (rc == 1) {
            node = a.node;
            fill_stat(fs, a.ino, S_IFREG, 0440, a.size, a.mtime_ns, &st);
        }
        rc = rc < 0 ? -EIO : rc == 0 ? -ENOENT : 0;
    }
    if (rc == -ENOENT && parent != FS_INO_ROOT)
        reply_negative(req);    /* root names are fixed or snapshots: never cached absent */
    else if (rc < 0)
        fuse_reply_err(req, -rc);
    else
        reply_entry(req, node, &st);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct stat st;
    (void)fi;
    int rc = stat_ino(counted(req, C_GETATTR), ino, &st);
    if (rc < 0)
        fuse_reply_err(req, -rc);
    else
        fuse_reply_attr(req, &st, FS_TIMEOUT);
}

/* Everything is read-only except truncating .control (the shell's ">"). */
static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
                       int to_set, struct fuse_file_info *fi)
{
    (void)attr;
    if (ino == FS_INO_CONTROL && (to_set & ~(FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_ATIME |
                                             FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW |
                                             FUSE_SET_ATTR_MTIME_NOW | FUSE_SET_ATTR_CTIME)) == 0) {
        op_getattr(req, ino, fi);
        return;
    }
    fuse_reply_err(req, EROFS);
}

/* ---- directories ---- */

struct dirbuf {
    fuse_req_t req;
    struct fs *fs;
    char *buf;
    size_t size, used;
    int plus;
    off_t last;         /* offset of the last entry added */
    int full;
};

/* Add one entry; returns 1 when the buffer is full (entry not added). */
static int dir_add(struct dirbuf *d, const char *name, uint64_t node, const struct stat *st,
                   off_t off)
{
    size_t need;
    if (d->plus) {
        struct fuse_entry_param e;
        fill_entry(node, st, &e);
        need = fuse_add_direntry_plus(d->req, d->buf + d->used, d->size - d->used,
                                      name, &e, off);
    } else {
        need = fuse_add_direntry(d->req, d->buf + d->used, d->size - d->used, name, st, off);
    }
    if (need > d->size - d->used) {
        d->full = 1;
        return 1;
    }
    d->used += need;
    d->last = off;
    return 0;
}

/* Fixed entries "." (offset 1), ".." (2), and for the root its children (3..). */
static int dir_fixed(struct dirbuf *d, uint64_t self, off_t off)
{
    struct stat st;
    if (off < 1) {
        fixed_stat(d->fs, self, &st);
        if (dir_add(d, ".", self, &st, 1))
            return 1;
    }
    if (off < 2) {
        fixed_stat(d->fs, FS_INO_ROOT, &st);
        if (dir_add(d, "..", FS_INO_ROOT, &st, 2))
            return 1;
    }
    if (self != FS_INO_ROOT)
        return 0;
    static const uint64_t extra[] = { FS_INO_CHANGES, FS_INO_CONTROL, FS_INO_STATUS };
    static const char *const extra_names[] = { "changes", ".control", ".status" };
    for (int i = 0; i < MODEL_COUNT + 3; i++) {
        uint64_t ino = i < MODEL_COUNT ? FS_INO_MODEL(i) : extra[i - MODEL_COUNT];
        const char *name = i < MODEL_COUNT ? models_table[i].dir : extra_names[i - MODEL_COUNT];
        if (off >= 3 + i || (i < MODEL_COUNT && !mirrored(d->fs, i)))
            continue;
        fixed_stat(d->fs, ino, &st);
        if (dir_add(d, name, ino, &st, 3 + i))
            return 1;
    }
    return 0;
}

static int list_cb(void *ctx, const char *name, const struct store_attr *a)
{
    struct dirbuf *d = ctx;
    struct stat st;
    fill_stat(d->fs, a->ino, S_IFREG, 0440, a->size, a->mtime_ns, &st);
    /* The offset is the entry's st_ino: stable while entries come and go. */
    return dir_add(d, name, a->node, &st, (off_t)a->ino);
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, int plus)
{
    struct fs *fs = counted(req, plus ? C_READDIRPLUS : C_READDIR);
    struct dirbuf d = { req, fs, NULL, size, 0, plus, off, 0 };
    int model = model_of_dir(ino);
    if (ino != FS_INO_ROOT && ino != FS_INO_CHANGES && !mirrored(fs, model)) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    d.buf = malloc(size);
    if (!d.buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    int rc = 0;
    if (!dir_fixed(&d, ino, off) && ino != FS_INO_ROOT) {
        struct store_reader *r = store_reader(fs->st);
        while (r && !d.full && rc >= 0) {
            off_t after = d.last > 2 ? d.last : 0;
            rc = ino == FS_INO_CHANGES
                     ? store_read_change_list(r, after > 0 ? (int64_t)((uint64_t)after - STORE_INO_CHANGE_BASE) : 0,
                                              64, list_cb, &d)
                     : store_read_list(r, model, (uint64_t)after, 64, list_cb, &d);
            if (rc < 64)
                break;
        }
        if (!r)
            rc = -1;
    }
    if (rc < 0 && d.used == 0)
        fuse_reply_err(req, EIO);
    else
        fuse_reply_buf(req, d.buf, d.used);
    free(d.buf);
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

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct stat st;
    int rc = stat_ino(fs_of(req), ino, &st);
    if (rc < 0) {
        fuse_reply_err(req, -rc);
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    fi->cache_readdir = 1;  /* the notifier invalidates the listing on change */
    fi->keep_cache = 1;
    fuse_reply_open(req, fi);
}

/* ---- files ---- */

/*
 * Regular files are never opened: answering ENOSYS once puts the kernel in
 * its "no_open" mode, where opens and closes make no request at all and
 * pages are kept (FOPEN_KEEP_CACHE) until the notifier invalidates them.
 * That makes a warm pass over the tree as fast as tmpfs. Permissions are
 * checked by the kernel (default_permissions); writes to records fail in
 * op_write/op_setattr with EROFS; .status is a link to snapshots (snaps.h).
 */
static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    (void)fi;
    counted(req, C_OPEN);
    fuse_reply_err(req, ENOSYS);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    struct fs *fs = fs_of(req);
    (void)fi;
    if (is_snapshot(ino)) {
        char *buf = malloc(size ? size : 1);
        long n = buf ? snaps_read(fs->status, (int64_t)(ino - FS_INO_STATUS_SNAP(0)),
                                  (size_t)off, buf, size) : -1;
        if (n < 0)
            fuse_reply_err(req, buf ? ENOENT : ENOMEM);
        else
            fuse_reply_buf(req, buf, (size_t)n);
        free(buf);
        return;
    }
    if (ino < STORE_INO_RECORD_BASE) {
        fuse_reply_err(req, ino == FS_INO_CONTROL ? EBADF : EISDIR);
        return;
    }
    counted(req, C_READ);      /* reads of records and change entries only */
    struct store_reader *r = store_reader(fs->st);
    char *buf = malloc(size ? size : 1);
    long n = -1;
    if (r && buf)
        n = is_change(ino)
                ? store_read_change_body(r, (int64_t)(ino - STORE_INO_CHANGE_BASE), buf,
                                         (size_t)off, size)
                : store_read_body(r, ino, buf, (size_t)off, size);
    if (n < 0)
        fuse_reply_err(req, r && buf ? ENOENT : EIO);
    else
        fuse_reply_buf(req, buf, (size_t)n);
    free(buf);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
                     off_t off, struct fuse_file_info *fi)
{
    struct fs *fs = counted(req, C_WRITE);
    enum sync_kind kind;
    unsigned mask;
    (void)off;
    (void)fi;
    if (ino != FS_INO_CONTROL) {
        fuse_reply_err(req, EROFS);
        return;
    }
    if (control_parse(buf, size, &kind, &mask) < 0) {
        log_warnx(".control: unknown command (%zu bytes)", size);
        fuse_reply_err(req, EINVAL);
        return;
    }
    if (fs->o->offline || (mask & fs->o->models) == 0) {
        fuse_reply_err(req, fs->o->offline ? EIO : EINVAL);
        return;
    }
    int rc = sync_request(fs->sync, mask, kind, 1);
    /* The kernel learns of the changes before the command returns. */
    notify_flush(fs->nt);
    if (rc < 0)
        fuse_reply_err(req, EIO);
    else
        fuse_reply_write(req, size);
}

/* .status: every resolution renders a new snapshot and points at it. */
static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
    struct fs *fs = fs_of(req);
    char target[32];
    int64_t n;
    if (ino != FS_INO_STATUS) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    if ((n = snaps_take(fs->status)) < 0) {
        fuse_reply_err(req, EIO);
        return;
    }
    snprintf(target, sizeof target, ".status.%012lld", (long long)n);
    fuse_reply_readlink(req, target);
}

/* ---- extended attributes ---- */

static const char *const xattr_names[] = { "user.kombo.id", "user.kombo.remote_id",
                                           "user.kombo.changed_at" };

static void reply_xattr(fuse_req_t req, const char *val, size_t len, size_t size)
{
    if (size == 0)
        fuse_reply_xattr(req, len);
    else if (size < len)
        fuse_reply_err(req, ERANGE);
    else
        fuse_reply_buf(req, val, len);
}

static int record_meta(struct fs *fs, fuse_ino_t ino, char *vals[3])
{
    struct store_reader *r = store_reader(fs->st);
    if (!is_record(ino))
        return 0;
    if (!r)
        return -1;
    return store_read_meta(r, ino, &vals[0], &vals[1], &vals[2]);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
    char *vals[3] = { NULL, NULL, NULL };
    struct fs *fs = counted(req, C_GETXATTR);
    /* Only user.* names exist here. Other namespaces are not supported
     * (ENOTSUP), which `ls -l` remembers per file system: it asks every file
     * for security.selinux and system.posix_acl_access until one says
     * ENOTSUP (with ENODATA: 200,003 requests for 100,000 files, none
     * cached by the kernel). A foreign user.* name: ENODATA, before any query. */
    if (strncmp(name, "user.", 5) != 0) {
        fuse_reply_err(req, ENOTSUP);
        return;
    }
    if (strncmp(name, "user.kombo.", 11) != 0) {
        fuse_reply_err(req, ENODATA);
        return;
    }
    int rc = record_meta(fs, ino, vals);
    int err = ENODATA;
    if (rc < 0)
        err = EIO;
    for (int i = 0; i < 3 && rc == 1; i++) {
        if (strcmp(name, xattr_names[i]) == 0 && vals[i]) {
            reply_xattr(req, vals[i], strlen(vals[i]), size);
            err = 0;
        }
    }
    if (err)
        fuse_reply_err(req, err);
    for (int i = 0; i < 3; i++)
        free(vals[i]);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
    char *vals[3] = { NULL, NULL, NULL };
    char list[128];
    size_t len = 0;
    int rc = record_meta(fs_of(req), ino, vals);
    if (rc < 0) {
        fuse_reply_err(req, EIO);
        return;
    }
    for (int i = 0; i < 3; i++) {
        if (vals[i]) {
            size_t n = strlen(xattr_names[i]) + 1;
            memcpy(list + len, xattr_names[i], n);
            len += n;
        }
        free(vals[i]);
    }
    reply_xattr(req, list, len, size);
}

/* ---- the rest ---- */

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
    struct statvfs sv;
    (void)ino;
    memset(&sv, 0, sizeof sv);
    sv.f_bsize = sv.f_frsize = 4096;
    sv.f_namemax = 255;
    sv.f_flag = ST_RDONLY | ST_NOSUID | ST_NODEV;
    fuse_reply_statfs(req, &sv);
}

static void op_erofs_entry(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    (void)parent;
    (void)name;
    fuse_reply_err(req, EROFS);
}

static void op_mknod(fuse_req_t req, fuse_ino_t p, const char *n, mode_t m, dev_t d)
{
    (void)m;
    (void)d;
    op_erofs_entry(req, p, n);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t p, const char *n, mode_t m)
{
    (void)m;
    op_erofs_entry(req, p, n);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t p, const char *n)
{
    (void)link;
    op_erofs_entry(req, p, n);
}

static void op_rename(fuse_req_t req, fuse_ino_t p, const char *n, fuse_ino_t np,
                      const char *nn, unsigned int flags)
{
    (void)np;
    (void)nn;
    (void)flags;
    op_erofs_entry(req, p, n);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t np, const char *nn)
{
    (void)ino;
    op_erofs_entry(req, np, nn);
}

static void op_create(fuse_req_t req, fuse_ino_t p, const char *n, mode_t m,
                      struct fuse_file_info *fi)
{
    (void)m;
    (void)fi;
    op_erofs_entry(req, p, n);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
                        const char *value, size_t size, int flags)
{
    (void)ino;
    (void)value;
    (void)size;
    (void)flags;
    op_erofs_entry(req, 0, name);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
    (void)ino;
    op_erofs_entry(req, 0, name);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
    (void)userdata;
    /* readdirplus always (ls -l makes no LOOKUP), never "auto". */
    if (conn->capable & FUSE_CAP_READDIRPLUS)
        conn->want |= FUSE_CAP_READDIRPLUS;
    conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
    /* O_TRUNC must reach setattr (EROFS for records, allowed for .control):
     * with atomic_o_trunc it would ride on the OPEN request we never get. */
    conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
    conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
}

static const struct fuse_lowlevel_ops ops = {
    .init = op_init,
    .lookup = op_lookup,
    .getattr = op_getattr,
    .readlink = op_readlink,
    .setattr = op_setattr,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .unlink = op_erofs_entry,
    .rmdir = op_erofs_entry,
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

struct fuse_session *fs_session(struct fs *fs)
{
    struct fuse_args args = FUSE_ARGS_INIT(fs->o->fuse_argc, fs->o->fuse_argv);
    struct fuse_session *se = fuse_session_new(&args, &ops, sizeof ops, fs);
    fuse_opt_free_args(&args);     /* frees only what libfuse allocated */
    return se;
}
