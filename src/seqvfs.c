/* seqvfs.c — see seqvfs.h. */
#include "seqvfs.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define SEQVFS_NAME "kombofs-seq"

static sqlite3_vfs *base;      /* the default VFS, wrapped */
static sqlite3_vfs seq;
static const char *seq_name;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static _Atomic uint64_t n_fills, n_hits, n_direct;

struct seq_file {
    sqlite3_file file;          /* first: SQLite sees this */
    sqlite3_file *real;         /* the default VFS's file, right after this struct */
    char *block;                /* NULL: not a main database file, or no block yet */
    int scan;                   /* a main database file: reads may fill a block */
    sqlite3_int64 boff;         /* the block holds file[boff, boff + blen) */
    int blen;
    sqlite3_int64 next;         /* where the previous read ended (-1: none yet) */
};

#define REAL(f) (((struct seq_file *)(f))->real)

static void drop(sqlite3_file *f)
{
    ((struct seq_file *)f)->blen = 0;
}

static int seq_close(sqlite3_file *f)
{
    struct seq_file *s = (struct seq_file *)f;
    int rc = s->real->pMethods->xClose(s->real);
    free(s->block);
    s->block = NULL;
    return rc;
}

/* Fill the block at off if this read continues a scan; 1 if it now holds
 * [off, off + amt). */
static int fill(struct seq_file *s, int amt, sqlite3_int64 off)
{
    if (!s->scan || s->next < 0 || off < s->next || off - s->next >= SEQVFS_BLOCK)
        return 0;
    sqlite3_int64 size;
    if (s->real->pMethods->xFileSize(s->real, &size) != SQLITE_OK || off >= size)
        return 0;
    sqlite3_int64 len = size - off < SEQVFS_BLOCK ? size - off : SEQVFS_BLOCK;
    if (len <= amt)
        return 0;
    if (!s->block && !(s->block = malloc(SEQVFS_BLOCK)))
        return 0;
    s->blen = 0;
    if (s->real->pMethods->xRead(s->real, s->block, (int)len, off) != SQLITE_OK)
        return 0;       /* short (the file shrank) or failed: read it alone */
    s->boff = off;
    s->blen = (int)len;
    atomic_fetch_add_explicit(&n_fills, 1, memory_order_relaxed);
    return 1;
}

static int seq_read(sqlite3_file *f, void *dst, int amt, sqlite3_int64 off)
{
    struct seq_file *s = (struct seq_file *)f;
    int in = s->blen > 0 && off >= s->boff && off + amt <= s->boff + s->blen;
    if (in)
        atomic_fetch_add_explicit(&n_hits, 1, memory_order_relaxed);
    if (in || fill(s, amt, off)) {
        memcpy(dst, s->block + (off - s->boff), (size_t)amt);
        s->next = off + amt;
        return SQLITE_OK;
    }
    atomic_fetch_add_explicit(&n_direct, 1, memory_order_relaxed);
    s->next = off + amt;
    return s->real->pMethods->xRead(s->real, dst, amt, off);
}

static int seq_write(sqlite3_file *f, const void *src, int amt, sqlite3_int64 off)
{
    drop(f);
    return REAL(f)->pMethods->xWrite(REAL(f), src, amt, off);
}

static int seq_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    drop(f);
    return REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int seq_sync(sqlite3_file *f, int flags)
{
    return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int seq_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int seq_lock(sqlite3_file *f, int level)
{
    drop(f);
    return REAL(f)->pMethods->xLock(REAL(f), level);
}

static int seq_unlock(sqlite3_file *f, int level)
{
    drop(f);
    return REAL(f)->pMethods->xUnlock(REAL(f), level);
}

static int seq_check_reserved(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int seq_file_control(sqlite3_file *f, int op, void *arg)
{
    drop(f);
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int seq_sector_size(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int seq_device_characteristics(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int seq_shm_map(sqlite3_file *f, int region, int size, int extend, void volatile **out)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), region, size, extend, out);
}

static int seq_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    drop(f);
    return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}

static void seq_shm_barrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int seq_shm_unmap(sqlite3_file *f, int del)
{
    drop(f);
    return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

static int seq_fetch(sqlite3_file *f, sqlite3_int64 off, int amt, void **out)
{
    return REAL(f)->pMethods->xFetch(REAL(f), off, amt, out);
}

static int seq_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static const sqlite3_io_methods seq_methods = {
    .iVersion = 3,
    .xClose = seq_close,
    .xRead = seq_read,
    .xWrite = seq_write,
    .xTruncate = seq_truncate,
    .xSync = seq_sync,
    .xFileSize = seq_file_size,
    .xLock = seq_lock,
    .xUnlock = seq_unlock,
    .xCheckReservedLock = seq_check_reserved,
    .xFileControl = seq_file_control,
    .xSectorSize = seq_sector_size,
    .xDeviceCharacteristics = seq_device_characteristics,
    .xShmMap = seq_shm_map,
    .xShmLock = seq_shm_lock,
    .xShmBarrier = seq_shm_barrier,
    .xShmUnmap = seq_shm_unmap,
    .xFetch = seq_fetch,
    .xUnfetch = seq_unfetch,
};

static int seq_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out)
{
    (void)vfs;
    struct seq_file *s = (struct seq_file *)f;
    memset(s, 0, sizeof *s);
    s->real = (sqlite3_file *)(s + 1);
    s->next = -1;
    int rc = base->xOpen(base, name, s->real, flags, out);
    if (!s->real->pMethods)
        return rc;              /* SQLite calls no method of a file that did not open */
    if (s->real->pMethods->iVersion < 3) {
        s->real->pMethods->xClose(s->real);
        return SQLITE_CANTOPEN;
    }
    s->scan = (flags & SQLITE_OPEN_MAIN_DB) != 0;
    f->pMethods = &seq_methods;
    return rc;
}

static int seq_delete(sqlite3_vfs *v, const char *name, int sync)
{
    (void)v;
    return base->xDelete(base, name, sync);
}

static int seq_access(sqlite3_vfs *v, const char *name, int flags, int *out)
{
    (void)v;
    return base->xAccess(base, name, flags, out);
}

static int seq_full_pathname(sqlite3_vfs *v, const char *name, int n, char *out)
{
    (void)v;
    return base->xFullPathname(base, name, n, out);
}

static void *seq_dl_open(sqlite3_vfs *v, const char *name)
{
    (void)v;
    return base->xDlOpen(base, name);
}

static void seq_dl_error(sqlite3_vfs *v, int n, char *msg)
{
    (void)v;
    base->xDlError(base, n, msg);
}

static void (*seq_dl_sym(sqlite3_vfs *v, void *h, const char *sym))(void)
{
    (void)v;
    return base->xDlSym(base, h, sym);
}

static void seq_dl_close(sqlite3_vfs *v, void *h)
{
    (void)v;
    base->xDlClose(base, h);
}

static int seq_randomness(sqlite3_vfs *v, int n, char *out)
{
    (void)v;
    return base->xRandomness(base, n, out);
}

static int seq_sleep(sqlite3_vfs *v, int us)
{
    (void)v;
    return base->xSleep(base, us);
}

static int seq_current_time(sqlite3_vfs *v, double *out)
{
    (void)v;
    return base->xCurrentTime(base, out);
}

static int seq_last_error(sqlite3_vfs *v, int n, char *out)
{
    (void)v;
    return base->xGetLastError ? base->xGetLastError(base, n, out) : 0;
}

static int seq_current_time64(sqlite3_vfs *v, sqlite3_int64 *out)
{
    (void)v;
    if (base->iVersion >= 2 && base->xCurrentTimeInt64)
        return base->xCurrentTimeInt64(base, out);
    double d;
    int rc = base->xCurrentTime(base, &d);
    *out = (sqlite3_int64)(d * 86400000.0);
    return rc;
}

static void setup(void)
{
    base = sqlite3_vfs_find(NULL);
    if (!base)
        return;
    seq = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)sizeof(struct seq_file) + base->szOsFile,
        .mxPathname = base->mxPathname,
        .zName = SEQVFS_NAME,
        .xOpen = seq_open,
        .xDelete = seq_delete,
        .xAccess = seq_access,
        .xFullPathname = seq_full_pathname,
        .xDlOpen = seq_dl_open,
        .xDlError = seq_dl_error,
        .xDlSym = seq_dl_sym,
        .xDlClose = seq_dl_close,
        .xRandomness = seq_randomness,
        .xSleep = seq_sleep,
        .xCurrentTime = seq_current_time,
        .xGetLastError = seq_last_error,
        .xCurrentTimeInt64 = seq_current_time64,
    };
    if (sqlite3_vfs_register(&seq, 0) == SQLITE_OK)
        seq_name = SEQVFS_NAME;
}

const char *seqvfs_register(void)
{
    pthread_once(&once, setup);
    return seq_name;
}

void seqvfs_stats(struct seqvfs_stats *out)
{
    out->fills = atomic_load_explicit(&n_fills, memory_order_relaxed);
    out->hits = atomic_load_explicit(&n_hits, memory_order_relaxed);
    out->direct = atomic_load_explicit(&n_direct, memory_order_relaxed);
}
