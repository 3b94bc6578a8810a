/*
 * fs.c — FUSE low-level handlers over one table, the namespace.
 *
 * Every fixed entry of the tree (SPEC §2, §10) is a row: its number (ino.h),
 * its parent, its name, and its type, which says how it is looked up, listed,
 * read and stat'ed. Records, change entries, links and exports are not rows:
 * their numbers are computed from the cache (ino.h), so forget needs no
 * bookkeeping and numbers survive remounts. Every handler answers from the
 * store's per-thread read connection.
 */
#define FUSE_USE_VERSION 35
#include "clock.h"
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "ahead.h"
#include "bdi.h"
#include "buf.h"
#include "control.h"
#include "entry.h"
#include "log.h"
#include "metrics.h"
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

/* ---- the namespace ---- */

enum ns_type {
    NS_DIR,         /* a directory whose children are rows */
    NS_RECORDS,     /* <dir>/: the records of `model` */
    NS_CHANGES,     /* changes/ */
    NS_EMAIL,       /* by-email/: links to employees */
    NS_RID,         /* by-remote-id/<dir>/: links to the records of `model` */
    NS_CONTROL,     /* .control */
    NS_STATUS,      /* .status, a link to its latest snapshot */
    NS_EXPORT,      /* exports/<dir>.jsonl, exports/employees.csv: versioned nodes */
    NS_ORIGIN,      /* multi mode: by-origin/, links to the integrations' trees */
};

struct ns_row {
    unsigned ino;       /* its fixed number (ino.h); 0 for exports (versioned) */
    unsigned parent;
    enum ns_type type;
    int model;          /* NS_RECORDS, NS_RID; NS_EXPORT: the model */
    unsigned which;     /* NS_EXPORT: ino_export's which */
    char name[40];
};

#define NS_MAX_ROWS 64

/* A READ of an export queued for the worker already serving that export. */
struct lane_req {
    struct lane_req *next;
    fuse_req_t req;
    size_t size;
    off_t off;
};
#define LANES 8

struct fs {
    struct fsset *set;
    _Atomic long ops[C_COUNT];
    struct store *st;
    struct sync *sync;
    struct notify *nt;
    const struct options *o;
    unsigned slot;              /* the tree's slot (ino.h): 0 in single mode */
    uid_t uid;
    gid_t gid;
    int64_t mount_ns;
    struct ns_row rows[NS_MAX_ROWS];
    int nrows;
    int by_ino[INO_FIXED_COUNT];    /* row index by fixed number, -1 if none */
    _Atomic int64_t dir_mtime[INO_FIXED_COUNT];
    struct snaps *status;       /* .status renderings (see snaps.h) */
    /* multi mode */
    int is_root;                /* the daemon's root, slot 0 */
    fs_control_fn control;      /* the root's .control */
    fs_status_fn render;        /* the root's .status */
    void *ctx;
    char name[768];             /* an integration's directory name */
    char origin[768];           /* its by-origin/ name, "" if none (under set->lock) */
    _Atomic int visible;        /* listed in the root: its first full fetch is done */
    /* Directory handles given out and not released yet: a RELEASEDIR queued
     * when the file system is unmounted never comes (the kernel drops what
     * the daemon has not read), so fs_free() frees what is left. */
    pthread_mutex_t dirs_lock;
    struct dirh *dirs;
    pthread_mutex_t lanes_lock; /* export READs (see export_read) */
    struct lane {
        fuse_ino_t ino;         /* the export node it serves, while busy */
        int busy;
        struct lane_req *head, *tail;
    } lanes[LANES];
};

static void add_row(struct fs *fs, unsigned ino, unsigned parent, enum ns_type type, int model,
                    unsigned which, const char *fmt, const char *arg)
{
    if (fs->nrows == NS_MAX_ROWS)
        abort();    /* the table below is fixed: cannot happen */
    struct ns_row *r = &fs->rows[fs->nrows];
    *r = (struct ns_row){ ino, parent, type, model, which, "" };
    snprintf(r->name, sizeof r->name, fmt, arg);
    if (ino)
        fs->by_ino[ino] = fs->nrows;
    fs->nrows++;
}

/* The tree of SPEC §2 and §10, for the mirrored models. Listing order is
 * the order of the rows. */
static void build_namespace(struct fs *fs)
{
    unsigned models = fs->o->models;
    for (int i = 0; i < INO_FIXED_COUNT; i++)
        fs->by_ino[i] = -1;
    add_row(fs, INO_ROOT, INO_ROOT, NS_DIR, -1, 0, "%s", "");
    for (int m = 0; m < MODEL_COUNT; m++)
        if (models & (1u << m))
            add_row(fs, INO_MODEL_DIR + (unsigned)m, INO_ROOT, NS_RECORDS, m, 0, "%s",
                    models_table[m].dir);
    add_row(fs, INO_CHANGES, INO_ROOT, NS_CHANGES, -1, 0, "%s", "changes");
    add_row(fs, INO_CONTROL, INO_ROOT, NS_CONTROL, -1, 0, "%s", ".control");
    add_row(fs, INO_STATUS, INO_ROOT, NS_STATUS, -1, 0, "%s", ".status");
    if (models & 1u)
        add_row(fs, INO_BY_EMAIL, INO_ROOT, NS_EMAIL, 0, 0, "%s", "by-email");
    add_row(fs, INO_BY_RID, INO_ROOT, NS_DIR, -1, 0, "%s", "by-remote-id");
    for (int m = 0; m < MODEL_COUNT; m++)
        if (models & (1u << m))
            add_row(fs, INO_RID_DIR + (unsigned)m, INO_BY_RID, NS_RID, m, 0, "%s",
                    models_table[m].dir);
    add_row(fs, INO_EXPORTS, INO_ROOT, NS_DIR, -1, 0, "%s", "exports");
    for (int m = 0; m < MODEL_COUNT; m++)
        if (models & (1u << m))
            add_row(fs, 0, INO_EXPORTS, NS_EXPORT, m, (unsigned)m, "%s.jsonl",
                    models_table[m].dir);
    if (models & 1u)
        add_row(fs, 0, INO_EXPORTS, NS_EXPORT, 0, INO_EXPORT_CSV, "%s", "employees.csv");
}

/* The row of a fixed node of this tree, or NULL. */
static const struct ns_row *row_of(const struct fs *fs, uint64_t node)
{
    if (ino_slot(node) != fs->slot || ino_kind(node) != INO_K_FIXED ||
        ino_payload(node) >= INO_FIXED_COUNT)
        return NULL;
    int i = fs->by_ino[ino_payload(node)];
    return i < 0 ? NULL : &fs->rows[i];
}

static uint64_t node_of(const struct fs *fs, unsigned fixed)
{
    return ino_fixed(fs->slot, fixed);
}

/*
 * The set of trees under one FUSE session, by slot (ino.h): in single mode
 * one tree, slot 0, at the root. A tree, once published, stays until the
 * set is freed, so a handler never holds a tree that goes away under it.
 */
struct fsset {
    const struct options *o;
    struct ahead *ahead;            /* reading ahead across files; NULL: --no-read-ahead */
    _Atomic(struct fs *) *trees;    /* [INO_SLOT_MAX + 1] */
    pthread_mutex_t lock;           /* guards the trees' origin names */
    char *mountpoint;               /* resolved before the mount (fsset_mounting) */
    char dev[BDI_DEV_SIZE];         /* the mount's device, once found */
    atomic_int raise_ahead;         /* 1: the first request raises its read-ahead */
};

void fsset_mounting(struct fsset *set, const char *mountpoint)
{
    free(set->mountpoint);
    set->mountpoint = strncmp(mountpoint, "/dev/fd/", 8) == 0 ? NULL : realpath(mountpoint, NULL);
}

void fsset_mounted(struct fsset *set)
{
    if (!set->mountpoint)
        return;
    if (bdi_of_mount(set->mountpoint, set->dev, sizeof set->dev) < 0) {
        log_debug("read-ahead: %s is not in /proc/self/mountinfo", set->mountpoint);
        return;
    }
    atomic_store(&set->raise_ahead, 1);
}

/* The first request after INIT (which may lower the read-ahead, not raise it). */
static void started(fuse_req_t req)
{
    struct fsset *set = fuse_req_userdata(req);
    if (!atomic_load_explicit(&set->raise_ahead, memory_order_relaxed) ||
        !atomic_exchange(&set->raise_ahead, 0))
        return;
    int rc = bdi_set_read_ahead(set->dev, BDI_READ_AHEAD_KB);
    if (rc < 0)
        log_debug("read-ahead of %s (bdi %s) left as it is: %s", set->mountpoint, set->dev,
                  strerror(-rc));
    else
        log_debug("read-ahead of %s (bdi %s): %u KiB", set->mountpoint, set->dev,
                  BDI_READ_AHEAD_KB);
}

/* The tree a node belongs to, or NULL. */
static struct fs *tree(fuse_req_t req, uint64_t node)
{
    struct fsset *set = fuse_req_userdata(req);
    return atomic_load_explicit(&set->trees[ino_slot(node)], memory_order_acquire);
}

static struct fs *counted(struct fs *fs, enum op_count op)
{
    if (fs)
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
    /* The daemon's, not this tree's: one pusher serves every tree. */
    json_object_set_new(j, "read_ahead", fs->set && fs->set->ahead ? ahead_stats(fs->set->ahead)
                                                                   : json_null());
    return sync_render(j);
}

struct fsset *fsset_new(const struct options *o)
{
    struct fsset *set = calloc(1, sizeof *set);
    if (!set || !(set->trees = calloc(INO_SLOT_MAX + 1, sizeof *set->trees)))
        abort();
    set->o = o;
    /* 512 files ahead at most, 32 MiB per batch (SPEC §12). */
    if (!o->no_read_ahead)
        set->ahead = ahead_new(512, 32u << 20);
    pthread_mutex_init(&set->lock, NULL);
    return set;
}

void fsset_stop(struct fsset *set)
{
    if (set)
        ahead_stop(set->ahead);
}

void fsset_free(struct fsset *set)
{
    if (!set)
        return;
    ahead_free(set->ahead);
    for (unsigned i = 0; i <= INO_SLOT_MAX; i++)
        fs_free(atomic_load(&set->trees[i]));
    free(set->trees);
    free(set->mountpoint);
    pthread_mutex_destroy(&set->lock);
    free(set);
}

void fsset_put(struct fsset *set, struct fs *fs)
{
    fs->set = set;
    atomic_store_explicit(&set->trees[fs->slot], fs, memory_order_release);
}

struct fs *fs_new(struct store *st, struct sync *sync, struct notify *nt,
                  const struct options *o, unsigned slot)
{
    struct fs *fs = calloc(1, sizeof *fs);
    if (!fs)
        abort();
    fs->slot = slot;
    fs->st = st;
    fs->sync = sync;
    fs->nt = nt;
    fs->o = o;
    fs->uid = o->uid_set ? o->uid : getuid();
    fs->gid = o->gid_set ? o->gid : getgid();
    fs->mount_ns = clock_now_ns();
    for (int i = 0; i < INO_FIXED_COUNT; i++)
        atomic_store(&fs->dir_mtime[i], fs->mount_ns);
    build_namespace(fs);
    fs->status = snaps_new(status_text, fs);
    pthread_mutex_init(&fs->dirs_lock, NULL);
    pthread_mutex_init(&fs->lanes_lock, NULL);
    return fs;
}

static void dirs_free(struct fs *fs);

void fs_free(struct fs *fs)
{
    if (!fs)
        return;
    snaps_free(fs->status);
    dirs_free(fs);
    pthread_mutex_destroy(&fs->dirs_lock);
    pthread_mutex_destroy(&fs->lanes_lock);
    free(fs);
}

/* The root's .status: rendered by its owner, plus the root's own request counts. */
static char *root_status_text(void *ctx)
{
    struct fs *fs = ctx;
    return fs->render ? fs->render(fs->ctx) : NULL;
}

struct fs *fs_new_root(const struct options *o, struct notify *nt, fs_control_fn control,
                       fs_status_fn status, void *ctx)
{
    struct fs *fs = calloc(1, sizeof *fs);
    if (!fs)
        abort();
    fs->o = o;
    fs->nt = nt;
    fs->is_root = 1;
    fs->control = control;
    fs->render = status;
    fs->ctx = ctx;
    fs->uid = o->uid_set ? o->uid : getuid();
    fs->gid = o->gid_set ? o->gid : getgid();
    fs->mount_ns = clock_now_ns();
    for (int i = 0; i < INO_FIXED_COUNT; i++) {
        atomic_store(&fs->dir_mtime[i], fs->mount_ns);
        fs->by_ino[i] = -1;
    }
    add_row(fs, INO_ROOT, INO_ROOT, NS_DIR, -1, 0, "%s", "");
    add_row(fs, INO_BY_ORIGIN, INO_ROOT, NS_ORIGIN, -1, 0, "%s", "by-origin");
    add_row(fs, INO_CONTROL, INO_ROOT, NS_CONTROL, -1, 0, "%s", ".control");
    add_row(fs, INO_STATUS, INO_ROOT, NS_STATUS, -1, 0, "%s", ".status");
    fs->status = snaps_new(root_status_text, fs);
    pthread_mutex_init(&fs->dirs_lock, NULL);
    pthread_mutex_init(&fs->lanes_lock, NULL);
    return fs;
}

void fs_set_name(struct fs *fs, const char *name)
{
    snprintf(fs->name, sizeof fs->name, "%s", name);
}

void fs_set_origin(struct fs *fs, const char *origin)
{
    pthread_mutex_lock(&fs->set->lock);
    snprintf(fs->origin, sizeof fs->origin, "%s", origin ? origin : "");
    pthread_mutex_unlock(&fs->set->lock);
}

void fs_set_visible(struct fs *fs, int visible)
{
    atomic_store(&fs->visible, visible);
    struct fs *root = atomic_load(&fs->set->trees[0]);
    if (root && root->is_root) {
        /* The root's listing and the name (it may have been looked up as absent). */
        atomic_store(&root->dir_mtime[INO_ROOT], clock_now_ns());
        notify_push(root->nt, FUSE_ROOT_ID, ino_fixed(fs->slot, INO_ROOT), fs->name, !visible);
    }
}

void fs_changed(void *ctx, unsigned dir, uint64_t node, const char *name, int removed)
{
    struct fs *fs = ctx;
    if (dir < INO_FIXED_COUNT)
        atomic_store(&fs->dir_mtime[dir], clock_now_ns());
    /* Multi mode: a tree not listed in the root yet (its first fetch) or any
     * more (removed, its engine stopped) cannot be reached by a new lookup,
     * and before it was first listed the kernel held nothing of it: there is
     * nothing to invalidate. fs_set_visible() drops the whole subtree of a
     * tree leaving the root. */
    if (fs->slot != 0 && !atomic_load(&fs->visible))
        return;
    notify_push(fs->nt, node_of(fs, dir), ino_with_slot(node, fs->slot), name, removed);
}

/* ---- attributes ---- */

static int mirrored(const struct fs *fs, int model)
{
    return model >= 0 && model < MODEL_COUNT && (fs->o->models & (1u << model));
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

/* A link's target: "../employees/<name>" or "../../<dir>/<name>". */
static void link_target(const struct store_link *l, enum store_view view, struct buf *out)
{
    buf_adds(out, view == STORE_VIEW_EMAIL ? "../" : "../../");
    buf_adds(out, models_table[l->model].dir);
    buf_addc(out, '/');
    buf_adds(out, l->name);
}

static void link_stat(const struct fs *fs, const struct store_link *l, enum store_view view,
                      struct stat *st)
{
    struct buf t = BUF_INIT;
    link_target(l, view, &t);
    fill_stat(fs, ino_make(fs->slot, view == STORE_VIEW_EMAIL ? INO_K_EMAIL : INO_K_RID, l->rowid),
              S_IFLNK, 0777, t.len, l->mtime_ns, st);
    buf_free(&t);
}

/* An export of this tree: 0, or -ENOENT / -ESTALE / -EIO. *node gets the
 * version's node (ver 0: the current one). */
static int export_stat(struct fs *fs, unsigned which, uint64_t ver, uint64_t *node,
                       struct stat *st)
{
    uint64_t size;
    int64_t mtime;
    if (which == INO_EXPORT_CSV ? !mirrored(fs, 0) : !mirrored(fs, (int)which))
        return -ENOENT;
    int rc = store_export_stat(fs->st, which, &ver, &size, &mtime);
    if (rc < 0)
        return rc;
    *node = ino_with_slot(ino_export(which, ver), fs->slot);
    fill_stat(fs, *node, S_IFREG, 0440, size, mtime ? mtime : fs->mount_ns, st);
    return 0;
}

/* Attributes of a row; *node gets its node id. */
static int row_stat(struct fs *fs, const struct ns_row *r, uint64_t *node, struct stat *st)
{
    if (r->type == NS_EXPORT)
        return export_stat(fs, r->which, 0, node, st);
    *node = node_of(fs, r->ino);
    switch (r->type) {
    case NS_CONTROL:
        fill_stat(fs, *node, S_IFREG, 0220, 0, fs->mount_ns, st);
        break;
    case NS_STATUS:
        fill_stat(fs, *node, S_IFLNK, 0440, STATUS_NAME_LEN, fs->mount_ns, st);
        break;
    default:
        fill_stat(fs, *node, S_IFDIR, 0550, 0,
                  r->ino == INO_ROOT ? fs->mount_ns : atomic_load(&fs->dir_mtime[r->ino]), st);
        break;
    }
    return 0;
}

/* Multi mode: the visible integration tree of slot `slot`, or NULL. */
static struct fs *visible_tree(const struct fs *root, unsigned slot)
{
    if (slot == 0 || slot > INO_SLOT_MAX)
        return NULL;
    struct fs *t = atomic_load_explicit(&root->set->trees[slot], memory_order_acquire);
    return t && atomic_load(&t->visible) ? t : NULL;
}

/* by-origin/<origin>: a link to "../<integration directory>". */
static void origin_stat(const struct fs *root, const struct fs *t, struct stat *st)
{
    fill_stat(root, ino_make(0, INO_K_ORIGIN, t->slot), S_IFLNK, 0777, strlen(t->name) + 3,
              t->mount_ns, st);
}

/* The tree whose origin name is `name`, or NULL. */
static struct fs *tree_by_origin(const struct fs *root, const char *name)
{
    struct fs *found = NULL;
    pthread_mutex_lock(&root->set->lock);
    for (unsigned i = 1; i <= INO_SLOT_MAX && !found; i++) {
        struct fs *t = visible_tree(root, i);
        if (t && t->origin[0] && strcmp(t->origin, name) == 0)
            found = t;
    }
    pthread_mutex_unlock(&root->set->lock);
    return found;
}

/* The visible tree whose directory is `name`, or NULL. */
static struct fs *tree_by_name(const struct fs *root, const char *name)
{
    for (unsigned i = 1; i <= INO_SLOT_MAX; i++) {
        struct fs *t = visible_tree(root, i);
        if (t && strcmp(t->name, name) == 0)
            return t;
    }
    return NULL;
}

/* Attributes of any node: 0, -ENOENT, -ESTALE or -EIO. For records st_ino is
 * the record's stable number, not the node id (see store.h). */
static int stat_node(struct fs *fs, uint64_t node, struct stat *st)
{
    struct store_reader *r;
    struct store_attr a;
    struct store_link l;
    uint64_t dummy;
    int rc, model;
    if (ino_slot(node) != fs->slot)
        return -ENOENT;
    switch (ino_kind(node)) {
    case INO_K_FIXED: {
        const struct ns_row *row = row_of(fs, node);
        return row ? row_stat(fs, row, &dummy, st) : -ENOENT;
    }
    case INO_K_SNAP: {
        size_t len;
        int64_t ns;
        if (!snaps_stat(fs->status, (int64_t)ino_payload(node), &len, &ns))
            return -ENOENT;
        fill_stat(fs, node, S_IFREG, 0440, len, ns, st);
        return 0;
    }
    case INO_K_EXPORT:
        return fs->is_root ? -ENOENT
                           : export_stat(fs, ino_export_which(node), ino_export_ver(node), &dummy, st);
    case INO_K_ORIGIN: {
        struct fs *t = fs->is_root ? visible_tree(fs, (unsigned)ino_payload(node)) : NULL;
        if (!t || !t->origin[0])
            return -ENOENT;
        origin_stat(fs, t, st);
        return 0;
    }
    default:
        break;
    }
    if (fs->is_root || !(r = store_reader(fs->st)))
        return -EIO;
    uint64_t local = ino_with_slot(node, 0);
    switch (ino_kind(node)) {
    case INO_K_RECORD:
        rc = store_read_record_attr(r, local, &model, &a);
        if (rc == 1 && model >= 0 && !mirrored(fs, model))
            rc = 0;
        break;
    case INO_K_CHANGE:
        rc = store_read_change_attr(r, (int64_t)ino_payload(node), &a);
        break;
    case INO_K_EMAIL:
    case INO_K_RID: {
        enum store_view view = ino_kind(node) == INO_K_EMAIL ? STORE_VIEW_EMAIL : STORE_VIEW_RID;
        rc = store_read_link(r, view, ino_payload(node), &l);
        if (rc == 1 && !mirrored(fs, l.model))
            rc = 0;
        if (rc == 1)
            link_stat(fs, &l, view, st);
        return rc < 0 ? -EIO : rc == 1 ? 0 : -ENOENT;
    }
    default:
        return -ENOENT;
    }
    if (rc < 0)
        return -EIO;
    if (rc != 1)
        return -ENOENT;
    fill_stat(fs, ino_with_slot(a.ino, fs->slot), S_IFREG, 0440, a.size, a.mtime_ns, st);
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

/* ".status.000000000042": a snapshot, found but never listed. */
static int snapshot_name(const struct fs *fs, const char *name, uint64_t *node)
{
    int64_t n = 0;
    if (strncmp(name, ".status.", 8) != 0 || strlen(name) != STATUS_NAME_LEN)
        return -ENOENT;
    for (const char *p = name + 8; *p; p++) {
        if (*p < '0' || *p > '9')
            return -ENOENT;
        n = n * 10 + (*p - '0');
    }
    *node = ino_make(fs->slot, INO_K_SNAP, (uint64_t)n);
    return 0;
}

/* A child of a directory row: 0 with *node and *st, or -errno. */
static int lookup_in(struct fs *fs, const struct ns_row *dir, const char *name, uint64_t *node,
                     struct stat *st)
{
    struct store_reader *r;
    struct store_attr a;
    struct store_link l;
    int rc;
    if (dir->type == NS_DIR) {
        for (int i = 0; i < fs->nrows; i++) {
            const struct ns_row *c = &fs->rows[i];
            if (c != dir && c->parent == dir->ino && strcmp(c->name, name) == 0)
                return row_stat(fs, c, node, st);
        }
        if (dir->ino == INO_ROOT && snapshot_name(fs, name, node) == 0)
            return stat_node(fs, *node, st);
        struct fs *t = fs->is_root && dir->ino == INO_ROOT ? tree_by_name(fs, name) : NULL;
        if (t)
            return row_stat(t, &t->rows[t->by_ino[INO_ROOT]], node, st);
        return -ENOENT;
    }
    if (dir->type == NS_ORIGIN) {
        struct fs *t = tree_by_origin(fs, name);
        if (!t)
            return -ENOENT;
        origin_stat(fs, t, st);
        *node = st->st_ino;
        return 0;
    }
    if (dir->type != NS_RECORDS && dir->type != NS_CHANGES && dir->type != NS_EMAIL &&
        dir->type != NS_RID)
        return -ENOTDIR;
    if (!(r = store_reader(fs->st)))
        return -EIO;
    if (dir->type == NS_EMAIL || dir->type == NS_RID) {
        enum store_view view = dir->type == NS_EMAIL ? STORE_VIEW_EMAIL : STORE_VIEW_RID;
        rc = store_read_link_lookup(r, view, dir->model, name, &l);
        if (rc == 1) {
            link_stat(fs, &l, view, st);
            *node = st->st_ino;
        }
        return rc < 0 ? -EIO : rc == 1 ? 0 : -ENOENT;
    }
    if (dir->type == NS_RECORDS) {
        rc = store_read_lookup(r, dir->model, name, &a);
    } else {
        int64_t seq = entry_seq(name);
        rc = seq > 0 ? store_read_change_attr(r, seq, &a) : 0;
    }
    if (rc == 1) {
        *node = ino_with_slot(a.node, fs->slot);
        fill_stat(fs, ino_with_slot(a.ino, fs->slot), S_IFREG, 0440, a.size, a.mtime_ns, st);
    }
    return rc < 0 ? -EIO : rc == 1 ? 0 : -ENOENT;
}

/* "." and "..", asked by the kernel only to rebuild a dentry from a file
 * handle (NFS export, open_by_handle_at) for a node it does not hold: every
 * node id says what it is (ino.h), so any node of a record, change or view
 * that still exists is answered, after a remount too, and a node that is gone
 * is ENOENT, which the kernel turns into ESTALE. A record's node carries its
 * version: a record that changed is a new file, as when an editor replaces a
 * file by rename. */
static void lookup_dot(fuse_req_t req, struct fs *fs, uint64_t node, int dotdot)
{
    struct fsset *set = fuse_req_userdata(req);
    struct stat st;
    int rc = -ENOENT;
    if (fs && fs->slot != 0 && !atomic_load(&fs->visible))
        fs = NULL;      /* not listed in the root (yet, or any more) */
    if (fs && dotdot) {
        const struct ns_row *row = row_of(fs, node);
        node = 0;
        if (row && row->ino == INO_ROOT)
            node = FUSE_ROOT_ID;    /* single mode: the root's parent is itself */
        else if (row && row->parent)
            node = node_of(fs, row->parent);
        fs = node ? atomic_load_explicit(&set->trees[ino_slot(node)], memory_order_acquire) : NULL;
    }
    if (fs)
        rc = stat_node(fs, node, &st);
    if (rc == 0 && ino_kind(node) == INO_K_RECORD) {
        /* A superseded version is kept a while for handles already open,
         * not for new ones: a record that changed or went is stale. */
        struct store_reader *r = store_reader(fs->st);
        struct store_attr a;
        int model = -1;
        if (!r || store_read_record_attr(r, ino_with_slot(node, 0), &model, &a) != 1 || model < 0)
            rc = -ENOENT;
    }
    if (rc < 0)
        fuse_reply_err(req, -rc);
    else
        reply_entry(req, node, &st);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    metrics_fuse_request(ino_slot(parent), METRICS_FUSE_LOOKUP);
    started(req);
    struct fs *fs = tree(req, parent);
    if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'))) {
        lookup_dot(req, counted(fs, C_LOOKUP), parent, name[1] == '.');
        return;
    }
    const struct ns_row *dir = fs ? row_of(fs, parent) : NULL;
    /* Snapshot names of .status are plumbing, not counted as lookups. */
    if (!dir || dir->ino != INO_ROOT || strncmp(name, ".status.", 8) != 0)
        counted(fs, C_LOOKUP);
    struct stat st;
    uint64_t node = 0;
    int rc = dir ? lookup_in(fs, dir, name, &node, &st) : -ENOTDIR;
    if (rc == -ENOENT && dir && dir->type != NS_DIR)
        reply_negative(req);    /* fixed names are never cached absent */
    else if (rc < 0)
        fuse_reply_err(req, -rc);
    else
        reply_entry(req, node, &st);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    metrics_fuse_request(ino_slot(ino), METRICS_FUSE_GETATTR);
    started(req);
    struct stat st;
    (void)fi;
    struct fs *fs = counted(tree(req, ino), C_GETATTR);
    int rc = fs ? stat_node(fs, ino, &st) : -ENOENT;
    if (rc < 0)
        fuse_reply_err(req, -rc);
    else
        fuse_reply_attr(req, &st, FS_TIMEOUT);
}

static int is_control(const struct fs *fs, uint64_t node)
{
    const struct ns_row *r = row_of(fs, node);
    return r && r->type == NS_CONTROL;
}

/* Everything is read-only except truncating .control (the shell's ">"). */
static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
                       int to_set, struct fuse_file_info *fi)
{
    metrics_fuse_request(ino_slot(ino), METRICS_FUSE_SETATTR);
    (void)attr;
    struct fs *fs = tree(req, ino);
    if (fs && is_control(fs, ino) &&
        (to_set & ~(FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME |
                    FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW | FUSE_SET_ATTR_CTIME)) == 0) {
        op_getattr(req, ino, fi);
        return;
    }
    fuse_reply_err(req, EROFS);
}

/* ---- directories ---- */

/*
 * A listing is one reader waiting for one READDIRPLUS after another, and the
 * kernel takes each reply in (an inode and a dentry per entry) while the
 * daemon waits for the next request. So each open directory's handle keeps
 * the entries that follow the last reply, read from the cache right after it
 * was sent: the next request finds them ready and the two sides work at the
 * same time. Prepared entries are given out only while no write was made
 * visible since they were read (store_commits), and only from the offset
 * they follow; anything else is listed as it is now.
 */
#define PREP_MAX 1024           /* entries prepared at most */

struct prep_entry {
    size_t name;                /* offset in the handle's names */
    uint64_t node;
    struct stat st;
    off_t off;
};

struct dirh {
    struct fs *fs;              /* whose list it is in */
    struct dirh *prev, *next;   /* in fs->dirs */
    pthread_mutex_t mu;         /* one listing step at a time */
    uint64_t commits;           /* store_commits() before they were read */
    off_t from;                 /* they follow the entry at this offset */
    int n, used;                /* prepared, given out */
    int end;                    /* the listing ends after them */
    int cap;
    struct prep_entry *e;
    struct buf names;
};

struct dirbuf {
    fuse_req_t req;
    struct fs *fs;
    char *buf;
    size_t size, used;
    int plus;
    off_t last;         /* offset of the last entry added */
    int full;
    enum store_view view;   /* link listings */
    struct dirh *prep;  /* preparing: entries go there, up to max */
    int max;
    int added;          /* entries added */
};

static void prep_add(struct dirh *h, const char *name, uint64_t node, const struct stat *st,
                     off_t off)
{
    if (h->n == h->cap) {
        int cap = h->cap ? 2 * h->cap : 64;
        struct prep_entry *e = realloc(h->e, (size_t)cap * sizeof *e);
        if (!e)
            abort();
        h->e = e;
        h->cap = cap;
    }
    struct prep_entry *e = &h->e[h->n++];
    e->name = h->names.len;
    buf_add(&h->names, name, strlen(name) + 1);
    e->node = node;
    e->st = *st;
    e->off = off;
}

/* Add one entry; returns 1 when the buffer is full (entry not added). */
static int dir_add(struct dirbuf *d, const char *name, uint64_t node, const struct stat *st,
                   off_t off)
{
    size_t need;
    if (d->prep) {
        if (d->added == d->max) {
            d->full = 1;
            return 1;
        }
        prep_add(d->prep, name, node, st, off);
        need = 0;
    } else if (d->plus) {
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
    d->added++;
    return 0;
}

static void dirh_free(struct dirh *h)
{
    if (!h)
        return;
    pthread_mutex_destroy(&h->mu);
    free(h->e);
    buf_free(&h->names);
    free(h);
}

/* Unlink a handle from fs->dirs and free it. */
static void dirh_release(struct dirh *h)
{
    struct fs *fs = h->fs;
    pthread_mutex_lock(&fs->dirs_lock);
    if (h->prev)
        h->prev->next = h->next;
    else
        fs->dirs = h->next;
    if (h->next)
        h->next->prev = h->prev;
    pthread_mutex_unlock(&fs->dirs_lock);
    dirh_free(h);
}

/* At the end: the handles whose RELEASEDIR never came. */
static void dirs_free(struct fs *fs)
{
    int left = 0;
    while (fs->dirs) {
        struct dirh *h = fs->dirs;
        fs->dirs = h->next;
        dirh_free(h);
        left++;
    }
    if (left)
        log_debug("%s%s%d directory handle(s) the kernel did not release, freed", fs->name,
                  fs->name[0] ? ": " : "", left);
}

/* "." (offset 1), ".." (2), and for a directory row its child rows (3..). */
static int dir_fixed(struct dirbuf *d, const struct ns_row *dir, off_t off)
{
    struct stat st;
    uint64_t node = 0;
    const struct ns_row *parent = row_of(d->fs, node_of(d->fs, dir->parent));
    memset(&st, 0, sizeof st);
    if (off < 1) {
        row_stat(d->fs, dir, &node, &st);
        if (dir_add(d, ".", node, &st, 1))
            return 1;
    }
    if (off < 2) {
        struct fs *up = d->fs;
        if (dir->ino == INO_ROOT && d->fs->slot != 0) {    /* a tree under the daemon's root */
            struct fs *root = atomic_load(&d->fs->set->trees[0]);
            if (root) {
                up = root;
                parent = &root->rows[root->by_ino[INO_ROOT]];
            }
        }
        row_stat(up, parent ? parent : dir, &node, &st);
        if (dir_add(d, "..", node, &st, 2))
            return 1;
    }
    if (dir->type == NS_ORIGIN) {
        for (unsigned i = 1; i <= INO_SLOT_MAX; i++) {
            struct fs *t = visible_tree(d->fs, i);
            char name[sizeof t->origin];
            if (!t || off >= (off_t)3 + (off_t)i)
                continue;
            pthread_mutex_lock(&d->fs->set->lock);
            snprintf(name, sizeof name, "%s", t->origin);
            pthread_mutex_unlock(&d->fs->set->lock);
            if (!name[0])
                continue;
            origin_stat(d->fs, t, &st);
            if (dir_add(d, name, st.st_ino, &st, (off_t)3 + (off_t)i))
                return 1;
        }
        return 0;
    }
    if (dir->type != NS_DIR)
        return 0;
    for (int i = 0; i < d->fs->nrows; i++) {
        const struct ns_row *c = &d->fs->rows[i];
        if (c == dir || c->parent != dir->ino || off >= 3 + i)
            continue;
        if (row_stat(d->fs, c, &node, &st) < 0)
            continue;
        if (dir_add(d, c->name, node, &st, 3 + i))
            return 1;
    }
    for (unsigned i = 1; d->fs->is_root && dir->ino == INO_ROOT && i <= INO_SLOT_MAX; i++) {
        struct fs *t = visible_tree(d->fs, i);
        if (!t || off >= (off_t)(3 + NS_MAX_ROWS) + (off_t)i)
            continue;
        row_stat(t, &t->rows[t->by_ino[INO_ROOT]], &node, &st);
        if (dir_add(d, t->name, node, &st, (off_t)(3 + NS_MAX_ROWS) + (off_t)i))
            return 1;
    }
    return 0;
}

static int list_cb(void *ctx, const char *name, const struct store_attr *a)
{
    struct dirbuf *d = ctx;
    struct stat st;
    uint64_t ino = ino_with_slot(a->ino, d->fs->slot);
    fill_stat(d->fs, ino, S_IFREG, 0440, a->size, a->mtime_ns, &st);
    /* The offset is the entry's st_ino: stable while entries come and go. */
    return dir_add(d, name, ino_with_slot(a->node, d->fs->slot), &st, (off_t)ino);
}

static int link_cb(void *ctx, const struct store_link *l)
{
    struct dirbuf *d = ctx;
    struct stat st;
    struct buf name = BUF_INIT;
    link_stat(d->fs, l, d->view, &st);
    store_link_name(l, &name);
    /* A name longer than NAME_MAX could be listed but never looked up: left out. */
    int full = name.len > 255 ? 0 : dir_add(d, name.data, st.st_ino, &st, (off_t)st.st_ino);
    buf_free(&name);
    return full;
}

/* One batch of a dynamic directory after offset `after` (0: from the start). */
static int list_batch(struct dirbuf *d, struct store_reader *r, const struct ns_row *dir,
                      uint64_t after)
{
    switch (dir->type) {
    case NS_RECORDS:
        return store_read_list(r, dir->model, after ? ino_with_slot(after, 0) : 0, 64, list_cb, d);
    case NS_CHANGES:
        return store_read_change_list(r, after ? (int64_t)ino_payload(after) : 0, 64, list_cb, d);
    case NS_EMAIL:
    case NS_RID:
        d->view = dir->type == NS_EMAIL ? STORE_VIEW_EMAIL : STORE_VIEW_RID;
        return store_read_link_list(r, d->view, dir->model, after ? ino_payload(after) : 0, 64,
                                    link_cb, d);
    default:
        return 0;
    }
}

/* The entries of dir after offset d->last, into d until it is full. */
static int dir_fill(struct dirbuf *d, const struct ns_row *dir)
{
    int rc = 0;
    if (!dir_fixed(d, dir, d->last) && dir->type != NS_DIR && dir->type != NS_ORIGIN) {
        struct store_reader *r = store_reader(d->fs->st);
        while (r && !d->full && rc >= 0) {
            uint64_t after = d->last > 2 ? (uint64_t)d->last : 0;
            rc = list_batch(d, r, dir, after);
            if (rc < 64)
                break;
        }
        if (!r)
            rc = -1;
    }
    return rc;
}

static int dynamic(const struct ns_row *dir)
{
    return dir->type == NS_RECORDS || dir->type == NS_CHANGES || dir->type == NS_EMAIL ||
           dir->type == NS_RID;
}

/* After a reply that ended at offset `after`: have h hold `want` entries
 * that follow it, keeping those still there from before when nothing was
 * written since they were read. With h->mu held. */
static void dir_prepare(struct dirh *h, struct fs *fs, const struct ns_row *dir, off_t after,
                        int want)
{
    uint64_t now = store_commits(fs->st);
    int left = h->n - h->used;
    off_t from = after;
    if (left > 0 && h->commits == now && h->from == after) {
        struct buf names = BUF_INIT;
        for (int i = 0; i < left; i++) {
            h->e[i] = h->e[h->used + i];
            const char *nm = h->names.data + h->e[i].name;
            h->e[i].name = names.len;
            buf_add(&names, nm, strlen(nm) + 1);
        }
        buf_free(&h->names);
        h->names = names;
        h->n = left;
        h->used = 0;
        if (h->end || left >= want)
            return;
        from = h->e[left - 1].off;
    } else {
        h->n = h->used = 0;
        buf_reset(&h->names);
        h->commits = now;
        h->from = after;
        left = 0;
    }
    struct dirbuf d = { .fs = fs, .plus = 1, .last = from, .view = STORE_VIEW_EMAIL, .prep = h,
                        .max = want - left };
    if (dir_fill(&d, dir) < 0) {
        h->n = h->used = 0;
        return;
    }
    h->end = !d.full;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, int plus,
                       struct fuse_file_info *fi)
{
    struct fs *fs = counted(tree(req, ino), plus ? C_READDIRPLUS : C_READDIR);
    struct dirbuf d = { .req = req, .fs = fs, .size = size, .plus = plus, .last = off,
                        .view = STORE_VIEW_EMAIL };
    const struct ns_row *dir = fs ? row_of(fs, ino) : NULL;
    if (!dir || dir->type == NS_CONTROL || dir->type == NS_STATUS || dir->type == NS_EXPORT) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    d.buf = malloc(size);
    if (!d.buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    struct dirh *h = fi && dynamic(dir) ? (struct dirh *)(uintptr_t)fi->fh : NULL;
    if (h)
        pthread_mutex_lock(&h->mu);
    int rc = 0, done = 0;
    if (h && h->used < h->n && h->from == off && h->commits == store_commits(fs->st)) {
        for (; h->used < h->n && !d.full; h->used++) {
            const struct prep_entry *e = &h->e[h->used];
            if (dir_add(&d, h->names.data + e->name, e->node, &e->st, e->off))
                break;
        }
        h->from = d.last;
        done = d.full || (h->used == h->n && h->end);
    }
    if (!done)
        rc = dir_fill(&d, dir);
    if (rc < 0 && d.used == 0)
        fuse_reply_err(req, EIO);
    else
        fuse_reply_buf(req, d.buf, d.used);
    free(d.buf);
    /* The reply is on its way: what follows it, while the kernel takes it in
     * (a little more than this reply held, so that the next is all there). */
    if (h && rc >= 0 && d.full && h->n - h->used < d.added) {
        int want = d.added + d.added / 4;
        dir_prepare(h, fs, dir, d.last, want < 32 ? 32 : want > PREP_MAX ? PREP_MAX : want);
    }
    if (h)
        pthread_mutex_unlock(&h->mu);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    metrics_fuse_request(ino_slot(ino), METRICS_FUSE_READDIR);
    started(req);
    do_readdir(req, ino, size, off, 0, fi);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                           struct fuse_file_info *fi)
{
    metrics_fuse_request(ino_slot(ino), METRICS_FUSE_READDIRPLUS);
    started(req);
    do_readdir(req, ino, size, off, 1, fi);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    metrics_fuse_request(ino_slot(ino), METRICS_FUSE_OPENDIR);
    started(req);
    struct stat st;
    struct fs *fs = tree(req, ino);
    int rc = fs ? stat_node(fs, ino, &st) : -ENOENT;
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
    struct dirh *h = calloc(1, sizeof *h);
    if (!h) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    pthread_mutex_init(&h->mu, NULL);
    h->fs = fs;
    pthread_mutex_lock(&fs->dirs_lock);
    h->next = fs->dirs;
    if (fs->dirs)
        fs->dirs->prev = h;
    fs->dirs = h;
    pthread_mutex_unlock(&fs->dirs_lock);
    fi->fh = (uint64_t)(uintptr_t)h;
    if (fuse_reply_open(req, fi) != 0)     /* the kernel will not release it */
        dirh_release(h);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    struct dirh *h = (struct dirh *)(uintptr_t)fi->fh;
    if (h) {
        /* The last step's reply may have let the reader close the directory
         * while its request thread still prepares what follows it. */
        pthread_mutex_lock(&h->mu);
        pthread_mutex_unlock(&h->mu);
        dirh_release(h);
    }
    fuse_reply_err(req, 0);
}

/* ---- files ---- */

/*
 * Regular files are never opened: answering ENOSYS once puts the kernel in
 * its "no_open" mode, where opens and closes make no request at all and
 * pages are kept (FOPEN_KEEP_CACHE) until the notifier invalidates them.
 * That makes a warm pass over the tree as fast as tmpfs. Permissions are
 * checked by the kernel (default_permissions); writes to records fail in
 * op_write/op_setattr with EROFS; .status is a link to snapshots (snaps.h);
 * an export is a node per version of its data (store.h).
 */
static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    metrics_fuse_request(ino_slot(ino), METRICS_FUSE_OPEN);
    (void)ino;
    (void)fi;
    counted(tree(req, ino), C_OPEN);
    fuse_reply_err(req, ENOSYS);
}

static void export_reply(struct fs *fs, fuse_req_t req, fuse_ino_t ino, size_t size, off_t off)
{
    char *buf = malloc(size ? size : 1);
    if (!buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    counted(fs, C_READ);
    long n = store_export_read(fs->st, ino_export_which(ino), ino_export_ver(ino), buf,
                               (size_t)off, size);
    if (n < 0)
        fuse_reply_err(req, (int)-n);
    else
        fuse_reply_buf(req, buf, (size_t)n);
    free(buf);
}

/* A READ of an export. The kernel's read-ahead sends a file's next READ
 * while the last one renders; a second worker that took it would wait for the
 * version's pin (store.c), one sleep and wake-up more per READ (at 100,000
 * employees, 1,350 READs of 256 KiB: 2,900 context switches in the daemon
 * against 50 with one worker). Instead it queues the READ on the export's
 * lane and goes back to the kernel, and the worker serving that export
 * answers it next, in the order the kernel sent them. A lane ends when its
 * queue is empty; with every lane busy, or no memory for the queue entry, a
 * READ is served where it is (it waits in the store, as before). */
static void export_read(struct fs *fs, fuse_req_t req, fuse_ino_t ino, size_t size, off_t off)
{
    struct lane *l = NULL, *idle = NULL;
    pthread_mutex_lock(&fs->lanes_lock);
    for (int i = 0; i < LANES && !l; i++) {
        if (fs->lanes[i].busy && fs->lanes[i].ino == ino)
            l = &fs->lanes[i];
        else if (!fs->lanes[i].busy && !idle)
            idle = &fs->lanes[i];
    }
    if (l) {
        struct lane_req *q = malloc(sizeof *q);
        if (q) {
            *q = (struct lane_req){ NULL, req, size, off };
            if (l->tail)
                l->tail->next = q;
            else
                l->head = q;
            l->tail = q;
            pthread_mutex_unlock(&fs->lanes_lock);
            return;
        }
        l = NULL;
    } else if (idle) {
        l = idle;
        l->busy = 1;
        l->ino = ino;
    }
    pthread_mutex_unlock(&fs->lanes_lock);
    for (;;) {
        export_reply(fs, req, ino, size, off);
        if (!l)
            return;
        pthread_mutex_lock(&fs->lanes_lock);
        struct lane_req *q = l->head;
        if (q) {
            l->head = q->next;
            if (!l->head)
                l->tail = NULL;
        } else {
            l->busy = 0;
        }
        pthread_mutex_unlock(&fs->lanes_lock);
        if (!q)
            return;
        req = q->req;
        size = q->size;
        off = q->off;
        free(q);
    }
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    metrics_fuse_request(ino_slot(ino), METRICS_FUSE_READ);
    started(req);
    struct fs *fs = tree(req, ino);
    (void)fi;
    enum ino_kind kind = ino_kind(ino);
    if (!fs) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    if (is_control(fs, ino)) {
        fuse_reply_buf(req, NULL, 0);   /* no bytes (SPEC §11): a root `tar` of the mount works */
        return;
    }
    if (kind == INO_K_FIXED || kind == INO_K_EMAIL || kind == INO_K_RID) {
        fuse_reply_err(req, kind == INO_K_FIXED ? EISDIR : EINVAL);
        return;
    }
    if (kind == INO_K_EXPORT) {
        export_read(fs, req, ino, size, off);
        return;
    }
    char *buf = malloc(size ? size : 1);
    if (!buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    long n;
    if (kind == INO_K_SNAP) {
        n = snaps_read(fs->status, (int64_t)ino_payload(ino), (size_t)off, buf, size);
        if (n < 0)
            n = -ENOENT;
    } else {
        counted(fs, C_READ);       /* reads of records and change entries */
        struct store_reader *r = store_reader(fs->st);
        if (!r)
            n = -EIO;
        else if (kind == INO_K_CHANGE)
            n = store_read_change_body(r, (int64_t)ino_payload(ino), buf, (size_t)off, size);
        else
            n = store_read_body(r, ino_with_slot(ino, 0), buf, (size_t)off, size);
        if (n == -1)
            n = -ENOENT;
    }
    /* An uncached read of a record's start may be a scan (ahead.h). Told
     * before the reply: after it, the reader's next READ may reach another
     * worker first, and the walk would look out of order. */
    struct fsset *set = fs->set;
    struct store_reader *r;
    if (kind == INO_K_RECORD && off == 0 && n > 0 && set->ahead && (r = store_reader(fs->st))) {
        char name[256];
        int model;
        if (store_read_record_key(r, ino_with_slot(ino, 0), &model, name, sizeof name) == 1)
            ahead_read(set->ahead, fs->st, ino, model, name);
    } else if (kind == INO_K_CHANGE && off == 0 && n > 0 && set->ahead) {
        char name[ENTRY_NAME_SIZE];
        entry_name((int64_t)ino_payload(ino), name);
        ahead_read(set->ahead, fs->st, ino, AHEAD_CHANGES, name);
    }
    if (n < 0)
        fuse_reply_err(req, (int)-n);
    else
        fuse_reply_buf(req, buf, (size_t)n);
    free(buf);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
                     off_t off, struct fuse_file_info *fi)
{
    metrics_fuse_request(ino_slot(ino), METRICS_FUSE_WRITE);
    struct fs *fs = counted(tree(req, ino), C_WRITE);
    enum sync_kind kind;
    unsigned mask;
    (void)off;
    (void)fi;
    if (!fs || !is_control(fs, ino)) {
        fuse_reply_err(req, EROFS);
        return;
    }
    if (fs->is_root) {
        int err = fs->control ? fs->control(fs->ctx, buf, size) : EINVAL;
        notify_flush(fs->nt);
        if (err)
            fuse_reply_err(req, err);
        else
            fuse_reply_write(req, size);
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

/* .status: every resolution renders a new snapshot and points at it; a view
 * link points at its record. */
static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
    metrics_fuse_request(ino_slot(ino), METRICS_FUSE_READLINK);
    struct fs *fs = tree(req, ino);
    enum ino_kind kind = ino_kind(ino);
    const struct ns_row *row = fs ? row_of(fs, ino) : NULL;
    if (!fs) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    if (row && row->type == NS_STATUS) {
        char target[32];
        int64_t n = snaps_take(fs->status);
        if (n < 0) {
            fuse_reply_err(req, EIO);
            return;
        }
        snprintf(target, sizeof target, ".status.%012lld", (long long)n);
        fuse_reply_readlink(req, target);
        return;
    }
    if (kind == INO_K_ORIGIN && fs->is_root) {
        struct fs *t = visible_tree(fs, (unsigned)ino_payload(ino));
        char target[sizeof t->name + 3];
        if (!t) {
            fuse_reply_err(req, ENOENT);
            return;
        }
        snprintf(target, sizeof target, "../%s", t->name);
        fuse_reply_readlink(req, target);
        return;
    }
    if (fs->is_root || ino_slot(ino) != fs->slot || (kind != INO_K_EMAIL && kind != INO_K_RID)) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    enum store_view view = kind == INO_K_EMAIL ? STORE_VIEW_EMAIL : STORE_VIEW_RID;
    struct store_reader *r = store_reader(fs->st);
    struct store_link l;
    int rc = r ? store_read_link(r, view, ino_payload(ino), &l) : -1;
    if (rc < 0 || rc == 0 || !mirrored(fs, l.model)) {
        fuse_reply_err(req, rc < 0 ? EIO : ENOENT);
        return;
    }
    struct buf t = BUF_INIT;
    link_target(&l, view, &t);
    fuse_reply_readlink(req, t.data);
    buf_free(&t);
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
    if (ino_kind(ino) != INO_K_RECORD || ino_slot(ino) != fs->slot)
        return 0;
    struct store_reader *r = store_reader(fs->st);
    if (!r)
        return -1;
    return store_read_meta(r, ino_with_slot(ino, 0), &vals[0], &vals[1], &vals[2]);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
    metrics_fuse_request(ino_slot(ino), METRICS_FUSE_GETXATTR);
    char *vals[3] = { NULL, NULL, NULL };
    struct fs *fs = counted(tree(req, ino), C_GETXATTR);
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
    metrics_fuse_request(ino_slot(ino), METRICS_FUSE_LISTXATTR);
    char *vals[3] = { NULL, NULL, NULL };
    char list[128];
    size_t len = 0;
    struct fs *fs = tree(req, ino);
    int rc = fs ? record_meta(fs, ino, vals) : 0;
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
    metrics_fuse_request(ino_slot(ino), METRICS_FUSE_STATFS);
    started(req);
    struct statvfs sv;
    (void)ino;
    memset(&sv, 0, sizeof sv);
    sv.f_bsize = sv.f_frsize = 4096;
    sv.f_namemax = 255;
    sv.f_flag = ST_RDONLY | ST_NOSUID | ST_NODEV;
    fuse_reply_statfs(req, &sv);
}

static void erofs(fuse_req_t req)
{
    fuse_reply_err(req, EROFS);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    (void)name;
    metrics_fuse_request(ino_slot(parent), METRICS_FUSE_UNLINK);
    erofs(req);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    (void)name;
    metrics_fuse_request(ino_slot(parent), METRICS_FUSE_RMDIR);
    erofs(req);
}

static void op_mknod(fuse_req_t req, fuse_ino_t p, const char *n, mode_t m, dev_t d)
{
    (void)n;
    (void)m;
    (void)d;
    metrics_fuse_request(ino_slot(p), METRICS_FUSE_MKNOD);
    erofs(req);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t p, const char *n, mode_t m)
{
    (void)n;
    (void)m;
    metrics_fuse_request(ino_slot(p), METRICS_FUSE_MKDIR);
    erofs(req);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t p, const char *n)
{
    (void)n;
    (void)link;
    metrics_fuse_request(ino_slot(p), METRICS_FUSE_SYMLINK);
    erofs(req);
}

static void op_rename(fuse_req_t req, fuse_ino_t p, const char *n, fuse_ino_t np,
                      const char *nn, unsigned int flags)
{
    (void)n;
    (void)np;
    (void)nn;
    (void)flags;
    metrics_fuse_request(ino_slot(p), METRICS_FUSE_RENAME);
    erofs(req);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t np, const char *nn)
{
    (void)nn;
    (void)ino;
    metrics_fuse_request(ino_slot(np), METRICS_FUSE_LINK);
    erofs(req);
}

static void op_create(fuse_req_t req, fuse_ino_t p, const char *n, mode_t m,
                      struct fuse_file_info *fi)
{
    (void)n;
    (void)m;
    (void)fi;
    metrics_fuse_request(ino_slot(p), METRICS_FUSE_CREATE);
    erofs(req);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
                        const char *value, size_t size, int flags)
{
    (void)name;
    (void)value;
    (void)size;
    (void)flags;
    metrics_fuse_request(ino_slot(ino), METRICS_FUSE_SETXATTR);
    erofs(req);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
    (void)name;
    metrics_fuse_request(ino_slot(ino), METRICS_FUSE_REMOVEXATTR);
    erofs(req);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
    const struct fsset *set = userdata;
    /* NFS export: the kernel asks "." and ".." of nodes it does not hold
     * (lookup_dot) instead of answering ESTALE. */
    if (set->o->export_support && (conn->capable & FUSE_CAP_EXPORT_SUPPORT))
        conn->want |= FUSE_CAP_EXPORT_SUPPORT;
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
    .unlink = op_unlink,
    .rmdir = op_rmdir,
    .symlink = op_symlink,
    .rename = op_rename,
    .link = op_link,
    .open = op_open,
    .read = op_read,
    .write = op_write,
    .opendir = op_opendir,
    .releasedir = op_releasedir,
    .readdir = op_readdir,
    .readdirplus = op_readdirplus,
    .statfs = op_statfs,
    .setxattr = op_setxattr,
    .getxattr = op_getxattr,
    .listxattr = op_listxattr,
    .removexattr = op_removexattr,
    .create = op_create,
};

struct fuse_session *fs_session(struct fsset *set)
{
    struct fuse_args args = FUSE_ARGS_INIT(set->o->fuse_argc, set->o->fuse_argv);
    struct fuse_session *se = fuse_session_new(&args, &ops, sizeof ops, set);
    fuse_opt_free_args(&args);     /* frees only what libfuse allocated */
    if (se && set->ahead)
        ahead_set_session(set->ahead, se);
    return se;
}
