/*
 * ahead.c — reading ahead across files: see ahead.h.
 */
#define FUSE_USE_VERSION 312
#include "ahead.h"

#include <errno.h>
#include <fuse_lowlevel.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ino.h"
#include "log.h"
#include "store.h"

#define NSCANS 16               /* walks followed at once (LRU) */
#define NQUEUE 16               /* batches waiting for the pusher */
#define FIRST_WINDOW 16
#define MAX_FILE (1024 * 1024)  /* larger records are left to the reader's READs */
#define NAME_LEN 256

enum order { NONE, BY_ROWID, BY_NAME };

struct scan {
    struct store *st;           /* NULL: free */
    int model;
    unsigned slot;
    uint64_t used;              /* LRU clock */
    uint64_t gen;               /* bumped when the walk starts again */
    /* the reads that reached us (uncached) */
    uint64_t last_rowid;
    char last_name[NAME_LEN];
    int streak_rowid, streak_name;
    enum order order;
    /* the end of what was queued or pushed (the window's end) */
    uint64_t end_rowid;
    char end_name[NAME_LEN];
    /* the tripwire: one file in the middle of a batch left unpushed, whose
     * READ says the reader is half through it (its reads of pushed pages
     * never reach us): the next batch starts then, not when it runs out */
    uint64_t trip_rowid;
    char trip_name[NAME_LEN];
    int trip;
    int window;
    int pending;                /* a batch is queued or being pushed */
};

struct job {
    int scan;
    uint64_t gen;
    struct store *st;
    unsigned slot;
    int model;
    enum order order;
    uint64_t after_rowid;
    char after_name[NAME_LEN];
    int count;
};

struct ahead {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct fuse_session *se;
    struct scan scans[NSCANS];
    struct job queue[NQUEUE];
    int qhead, qlen;
    uint64_t clock;
    int max_files;
    size_t max_bytes;
    pthread_t thread;
    int started, stop;
    atomic_long n_scans, n_batches, n_files, n_bytes, n_not_held;
};

struct ahead *ahead_new(int max_files, size_t max_bytes)
{
    struct ahead *a = calloc(1, sizeof *a);
    if (!a)
        abort();
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->wake, NULL);
    a->max_files = max_files < FIRST_WINDOW ? FIRST_WINDOW : max_files;
    a->max_bytes = max_bytes;
    return a;
}

void ahead_set_session(struct ahead *a, struct fuse_session *se)
{
    pthread_mutex_lock(&a->lock);
    a->se = se;
    pthread_mutex_unlock(&a->lock);
}

/* ---- the pusher ---- */

struct entry {
    uint64_t node;
    uint64_t size;
    uint64_t rowid;
    char name[NAME_LEN];
};

struct listing {
    struct entry *v;
    int n, cap;
};

static int collect(void *ctx, const char *name, const struct store_attr *attr)
{
    struct listing *l = ctx;
    if (l->n == l->cap)
        return 1;
    struct entry *e = &l->v[l->n++];
    e->node = attr->node;
    e->size = attr->size;
    e->rowid = ino_rowid(attr->node);
    snprintf(e->name, sizeof e->name, "%s", name);
    return 0;
}

/* Whether the reader already got to e (its READ reached us): then pushing
 * it is useless. With a->lock held. */
static int passed(const struct scan *sc, const struct entry *e)
{
    return sc->order == BY_NAME ? strcmp(e->name, sc->last_name) <= 0
                                : e->rowid <= sc->last_rowid;
}

static int current(const struct ahead *a, const struct job *j)
{
    const struct scan *sc = &a->scans[j->scan];
    return !a->stop && sc->st == j->st && sc->model == j->model && sc->gen == j->gen;
}

static void push_batch(struct ahead *a, const struct job *j)
{
    struct store_reader *r = store_reader(j->st);
    struct listing l = { calloc((size_t)j->count, sizeof *l.v), 0, j->count };
    if (!r || !l.v) {
        free(l.v);
        return;
    }
    if (j->order == BY_NAME)
        store_read_list_by_name(r, j->model, j->after_name, j->count, collect, &l);
    else
        store_read_list(r, j->model, ino_record(j->after_rowid, 0), j->count, collect, &l);
    /* The window ends at the last entry listed, or where the bytes ran out. */
    size_t bytes = 0;
    int n = 0;
    while (n < l.n && bytes < a->max_bytes)
        bytes += l.v[n++].size;
    int trip = n >= 8 ? n / 2 : -1;
    pthread_mutex_lock(&a->lock);
    struct scan *sc = &a->scans[j->scan];
    int ok = current(a, j) && n > 0;
    if (ok) {
        sc->end_rowid = l.v[n - 1].rowid;
        snprintf(sc->end_name, sizeof sc->end_name, "%s", l.v[n - 1].name);
        sc->trip = trip >= 0;
        if (trip >= 0) {
            sc->trip_rowid = l.v[trip].rowid;
            snprintf(sc->trip_name, sizeof sc->trip_name, "%s", l.v[trip].name);
        }
    }
    struct fuse_session *se = a->se;
    pthread_mutex_unlock(&a->lock);
    char *buf = NULL;
    size_t cap = 0;
    for (int i = 0; ok && i < n; i++) {
        const struct entry *e = &l.v[i];
        pthread_mutex_lock(&a->lock);
        int skip = !current(a, j) ? -1 : passed(sc, e);
        pthread_mutex_unlock(&a->lock);
        if (skip < 0)
            break;
        if (skip || i == trip || e->size == 0 || e->size > MAX_FILE)
            continue;
        if (e->size > cap) {
            char *nb = realloc(buf, e->size);
            if (!nb)
                break;
            buf = nb;
            cap = e->size;
        }
        long got = store_read_body(r, e->node, buf, 0, e->size);
        if (got != (long)e->size)
            continue;   /* changed meanwhile: its new node is another file */
        struct fuse_bufvec bv = FUSE_BUFVEC_INIT((size_t)got);
        bv.buf[0].mem = buf;
        int rc = fuse_lowlevel_notify_store(se, ino_with_slot(e->node, j->slot), 0, &bv, 0);
        if (rc == 0) {
            atomic_fetch_add(&a->n_files, 1);
            atomic_fetch_add(&a->n_bytes, got);
        } else {
            atomic_fetch_add(&a->n_not_held, 1);   /* -ENOENT: the kernel holds no such inode */
        }
    }
    free(buf);
    free(l.v);
    atomic_fetch_add(&a->n_batches, 1);
}

static void *pusher(void *arg)
{
    struct ahead *a = arg;
    pthread_mutex_lock(&a->lock);
    for (;;) {
        while (!a->stop && a->qlen == 0)
            pthread_cond_wait(&a->wake, &a->lock);
        if (a->stop)
            break;
        struct job j = a->queue[a->qhead];
        a->qhead = (a->qhead + 1) % NQUEUE;
        a->qlen--;
        int run = current(a, &j) && a->se;
        pthread_mutex_unlock(&a->lock);
        if (run)
            push_batch(a, &j);
        pthread_mutex_lock(&a->lock);
        struct scan *sc = &a->scans[j.scan];
        if (sc->st == j.st && sc->gen == j.gen)
            sc->pending = 0;
    }
    pthread_mutex_unlock(&a->lock);
    return NULL;
}

/* ---- the reads ---- */

static struct scan *find_scan(struct ahead *a, struct store *st, int model)
{
    struct scan *lru = &a->scans[0];
    for (int i = 0; i < NSCANS; i++) {
        struct scan *sc = &a->scans[i];
        if (sc->st == st && sc->model == model)
            return sc;
        if (!sc->st || (lru->st && sc->used < lru->used))
            lru = sc;
    }
    memset(lru, 0, sizeof *lru);
    lru->st = st;
    lru->model = model;
    lru->gen = ++a->clock;
    return lru;
}

/* Queue a batch after the read just seen, or after the window's end. With
 * a->lock held. */
static void enqueue(struct ahead *a, struct scan *sc, int from_end)
{
    if (a->qlen == NQUEUE)
        return;     /* the pusher is behind: the reader's READs serve it */
    if (!a->started) {
        if (pthread_create(&a->thread, NULL, pusher, a) != 0)
            return;
        a->started = 1;
    }
    struct job *j = &a->queue[(a->qhead + a->qlen++) % NQUEUE];
    memset(j, 0, sizeof *j);
    j->scan = (int)(sc - a->scans);
    j->gen = sc->gen;
    j->st = sc->st;
    j->slot = sc->slot;
    j->model = sc->model;
    j->order = sc->order;
    j->after_rowid = from_end ? sc->end_rowid : sc->last_rowid;
    snprintf(j->after_name, sizeof j->after_name, "%s", from_end ? sc->end_name : sc->last_name);
    j->count = sc->window;
    /* Until the pusher lists the batch, its end is where it starts. */
    sc->end_rowid = j->after_rowid;
    snprintf(sc->end_name, sizeof sc->end_name, "%s", j->after_name);
    sc->trip = 0;
    sc->pending = 1;
    pthread_cond_signal(&a->wake);
}

void ahead_read(struct ahead *a, struct store *st, uint64_t node, int model, const char *name)
{
    if (!a)
        return;
    uint64_t rowid = ino_rowid(node);
    pthread_mutex_lock(&a->lock);
    if (!a->se || a->stop) {
        pthread_mutex_unlock(&a->lock);
        return;
    }
    struct scan *sc = find_scan(a, st, model);
    sc->used = ++a->clock;
    sc->slot = ino_slot(node);
    int by_rowid = sc->last_rowid && rowid > sc->last_rowid;
    int by_name = sc->last_name[0] && strcmp(name, sc->last_name) > 0;
    sc->streak_rowid = by_rowid ? sc->streak_rowid + 1 : 1;
    sc->streak_name = by_name ? sc->streak_name + 1 : 1;
    enum order was = sc->order;
    int beyond = was == BY_ROWID ? rowid > sc->end_rowid : strcmp(name, sc->end_name) > 0;
    int tripped = sc->trip && (was == BY_ROWID ? rowid >= sc->trip_rowid
                                              : strcmp(name, sc->trip_name) >= 0);
    sc->last_rowid = rowid;
    snprintf(sc->last_name, sizeof sc->last_name, "%s", name);
    if (was != NONE && (was == BY_ROWID ? by_rowid : by_name)) {
        /* The walk goes on. Past the window: it outran what was pushed (or
         * a file of it was not held): a wider window from here. Inside it
         * with a batch under way: the pusher skips what was read. */
        if ((beyond || tripped) && !sc->pending) {
            if (sc->window < a->max_files)
                sc->window = sc->window * 2 > a->max_files ? a->max_files : sc->window * 2;
            enqueue(a, sc, !beyond);
        }
    } else {
        /* A jump, or a walk not seen yet: two reads in one order make one. */
        sc->order = sc->streak_rowid >= 2 ? BY_ROWID : sc->streak_name >= 2 ? BY_NAME : NONE;
        if (was != NONE || sc->order != NONE)
            sc->gen = ++a->clock;   /* batches of the old walk stop */
        sc->pending = 0;
        if (sc->order != NONE) {
            log_debug("read-ahead: a walk in %s order from %s",
                      sc->order == BY_ROWID ? "listing" : "name", name);
            sc->window = FIRST_WINDOW;
            atomic_fetch_add(&a->n_scans, 1);
            enqueue(a, sc, 0);
        }
    }
    pthread_mutex_unlock(&a->lock);
}

void ahead_stop(struct ahead *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->lock);
    a->stop = 1;
    int started = a->started;
    a->started = 0;
    pthread_cond_broadcast(&a->wake);
    pthread_mutex_unlock(&a->lock);
    if (started)
        pthread_join(a->thread, NULL);
}

void ahead_free(struct ahead *a)
{
    if (!a)
        return;
    ahead_stop(a);
    pthread_mutex_destroy(&a->lock);
    pthread_cond_destroy(&a->wake);
    free(a);
}

void *ahead_stats(struct ahead *a)
{
    if (!a)
        return json_null();
    return json_pack("{sI sI sI sI sI}", "scans", (json_int_t)atomic_load(&a->n_scans),
                     "batches", (json_int_t)atomic_load(&a->n_batches), "files",
                     (json_int_t)atomic_load(&a->n_files), "bytes",
                     (json_int_t)atomic_load(&a->n_bytes), "not_held",
                     (json_int_t)atomic_load(&a->n_not_held));
}
