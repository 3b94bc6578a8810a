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

#include "entry.h"
#include "ino.h"
#include "log.h"
#include "store.h"

#define NSCANS 16               /* walks followed at once (LRU) */
#define NQUEUE 16               /* batches waiting for the pusher */
#define FIRST_WINDOW 16
#define NEAR 8                  /* files a READ may skip and still continue a walk */
#define MAX_FILE (1024 * 1024)  /* larger records are left to the reader's READs */
#define NAME_LEN 256
#define NSTAGED 64              /* files rendered and waiting, per storer */
#define NSTORERS 2              /* threads storing the pages */
#define RUN 16                  /* files in a row for one storer */
#define STAGED_BYTES (2u << 20) /* bytes staged per storer, beyond one file */
#define STAGED_KEEP (64 * 1024) /* a slot keeps its buffer for the next file up to this */

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
    /* A READ beyond the window: where the walk was before it (the window's
     * end or the last READ, whichever is further), to count what it skipped. */
    int probe;
    uint64_t front_rowid;
    char front_name[NAME_LEN];
};

/* A file the pusher laid out, for a storer to push. Each storer's ring has a
 * single producer (the pusher) and a single consumer (that storer): slots
 * [shead, shead + slen) are the storer's, the others the pusher's; the
 * indices and bytes change under a->lock. */
struct staged {
    uint64_t ino;               /* the node with its slot */
    int scan, model;            /* its walk (same_walk) */
    uint64_t gen;
    struct store *st;
    uint64_t rowid;             /* its place (struct pos) */
    char name[NAME_LEN];
    size_t len, cap;
    char *data;
};

struct storer {
    struct ahead *a;
    struct staged ring[NSTAGED];
    int shead, slen, room_wanted;
    size_t bytes;               /* of the slen files staged */
    pthread_cond_t ready, room; /* something to store; room for the pusher */
    pthread_t thread;
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
    struct storer storers[NSTORERS];
    pthread_t thread;
    int started, stop;          /* started: the pusher runs */
    int nstorers;               /* storers running */
    atomic_long n_scans, n_batches, n_files, n_bytes, n_not_held, n_far, n_overtaken, n_late;
};

struct ahead *ahead_new(int max_files, size_t max_bytes)
{
    struct ahead *a = calloc(1, sizeof *a);
    if (!a)
        abort();
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->wake, NULL);
    for (int i = 0; i < NSTORERS; i++) {
        a->storers[i].a = a;
        pthread_cond_init(&a->storers[i].ready, NULL);
        pthread_cond_init(&a->storers[i].room, NULL);
    }
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

#define LEAP 8      /* files left to a reader that overtook the pusher */

struct pos {
    uint64_t rowid;
    const char *name;
};

/* A file's place in its directory's listing: the rowid of a record, the
 * sequence number of a change-log entry. */
static uint64_t place(int model, uint64_t node)
{
    return model == AHEAD_CHANGES ? ino_payload(node) : ino_rowid(node);
}

/* Whether the reader already got to e (its READ reached us): then pushing
 * it is useless. With a->lock held. */
static int passed(const struct scan *sc, const struct pos *e)
{
    return sc->order == BY_NAME ? strcmp(e->name, sc->last_name) <= 0
                                : e->rowid <= sc->last_rowid;
}

/* Whether walk (scan, st, model, gen) is still the one scan slot `scan`
 * follows. With a->lock held. */
static int same_walk(const struct ahead *a, int scan, const struct store *st, int model,
                     uint64_t gen)
{
    const struct scan *sc = &a->scans[scan];
    return sc->st == st && sc->model == model && sc->gen == gen;
}

static int current(const struct ahead *a, const struct job *j)
{
    return !a->stop && same_walk(a, j->scan, j->st, j->model, j->gen);
}

struct pushing {
    struct ahead *a;
    const struct job *j;
    struct fuse_session *se;
    int i, trip, leap;
    unsigned next;              /* the storer of the next file */
    size_t bytes;
};

/* One record of the batch, with its bytes, as the listing gives it. */
static int push_one(void *ctx, const char *name, const struct store_attr *attr, const void *body,
                    size_t len)
{
    struct pushing *p = ctx;
    struct ahead *a = p->a;
    const struct job *j = p->j;
    if (p->bytes >= a->max_bytes)
        return 1;
    int i = p->i++;
    struct pos e = { place(j->model, attr->node), name };
    pthread_mutex_lock(&a->lock);
    struct scan *sc = &a->scans[j->scan];
    /* After the request loop ends nothing answers a READ still queued in the
     * kernel, and a push onto its locked page would wait for ever: stop. */
    int cur = current(a, j) && !fuse_session_exited(p->se), done = cur && passed(sc, &e);
    if (cur) {
        /* The window ends where the pusher is; its middle is the tripwire. */
        sc->end_rowid = e.rowid;
        snprintf(sc->end_name, sizeof sc->end_name, "%s", name);
        if (i == p->trip) {
            sc->trip = 1;
            sc->trip_rowid = e.rowid;
            snprintf(sc->trip_name, sizeof sc->trip_name, "%s", name);
        }
    }
    pthread_mutex_unlock(&a->lock);
    if (!cur)
        return 1;
    p->bytes += len;
    if (done) {
        /* Overtaken (a fast reader, a busy machine): leave the next few to the
         * reader's own READs and push from beyond them. */
        p->leap = LEAP;
        atomic_fetch_add(&a->n_overtaken, 1);
        return 0;
    }
    if (p->leap > 0) {
        p->leap--;
        return 0;
    }
    if (i == p->trip || len == 0 || len > MAX_FILE || len != attr->size)
        return 0;
    /* Hand the bytes to a storer, whose writes to /dev/fuse (the kernel
     * storing the pages) then overlap the next files' listing and layout. */
    struct storer *w = &a->storers[p->next++ / RUN % NSTORERS];
    pthread_mutex_lock(&a->lock);
    if (w->slen == NSTAGED || (w->slen > 0 && w->bytes + len > STAGED_BYTES)) {
        /* Full: wait until the storer has drained half, not a slot (a wake-up
         * per file would cost both threads more than it saves). */
        w->room_wanted = 1;
        while ((w->slen > NSTAGED / 2 || w->bytes > STAGED_BYTES / 2) && current(a, j))
            pthread_cond_wait(&w->room, &a->lock);
        w->room_wanted = 0;
    }
    cur = current(a, j);
    int t = (w->shead + w->slen) % NSTAGED;
    pthread_mutex_unlock(&a->lock);
    if (!cur)
        return 1;
    struct staged *f = &w->ring[t];
    if (f->cap < len) {
        free(f->data);
        if (!(f->data = malloc(len)))
            abort();
        f->cap = len;
    }
    memcpy(f->data, body, len);
    f->len = len;
    f->ino = ino_with_slot(attr->node, j->slot);
    f->rowid = e.rowid;
    snprintf(f->name, sizeof f->name, "%s", name);
    f->scan = j->scan;
    f->model = j->model;
    f->gen = j->gen;
    f->st = j->st;
    pthread_mutex_lock(&a->lock);
    w->bytes += len;
    if (w->slen++ == 0)
        pthread_cond_signal(&w->ready);
    pthread_mutex_unlock(&a->lock);
    return 0;
}

/* A storer: pushes what the pusher staged for it, in its order. A file of a
 * walk that started again, one the reader already got to (it READ it), or
 * one of a stopped daemon is dropped, not pushed. */
static void *storer(void *arg)
{
    struct storer *w = arg;
    struct ahead *a = w->a;
    pthread_mutex_lock(&a->lock);
    for (;;) {
        while (!a->stop && w->slen == 0)
            pthread_cond_wait(&w->ready, &a->lock);
        if (a->stop)
            break;
        struct staged *f = &w->ring[w->shead];
        const struct scan *sc = &a->scans[f->scan];
        struct fuse_session *se = a->se;
        struct pos e = { f->rowid, f->name };
        int walk = se && same_walk(a, f->scan, f->st, f->model, f->gen),
            late = walk && passed(sc, &e);
        pthread_mutex_unlock(&a->lock);
        if (late)
            atomic_fetch_add(&a->n_late, 1);
        /* After the request loop ends nothing answers a READ still queued in
         * the kernel, and a push onto its locked page would wait for ever. */
        if (walk && !late && !fuse_session_exited(se)) {
            struct fuse_bufvec bv = FUSE_BUFVEC_INIT(f->len);
            bv.buf[0].mem = f->data;
            if (fuse_lowlevel_notify_store(se, f->ino, 0, &bv, 0) == 0) {
                atomic_fetch_add(&a->n_files, 1);
                atomic_fetch_add(&a->n_bytes, (long)f->len);
            } else {
                atomic_fetch_add(&a->n_not_held, 1);  /* -ENOENT: no such inode held */
            }
        }
        if (f->cap > STAGED_KEEP) {
            free(f->data);
            f->data = NULL;
            f->cap = 0;
        }
        pthread_mutex_lock(&a->lock);
        w->shead = (w->shead + 1) % NSTAGED;
        w->slen--;
        w->bytes -= f->len;
        if (w->room_wanted && w->slen <= NSTAGED / 2 && w->bytes <= STAGED_BYTES / 2)
            pthread_cond_signal(&w->room);
    }
    w->slen = 0;
    w->bytes = 0;
    pthread_mutex_unlock(&a->lock);
    return NULL;
}

/* Files the READ of a probing job skipped since the walk's front, up to
 * NEAR + 1 (a change-log entry's place is its dense sequence number), or -1. */
static int skipped(struct store_reader *r, const struct job *j)
{
    if (j->model == AHEAD_CHANGES) {
        int64_t to = j->order == BY_NAME ? entry_seq(j->after_name) : (int64_t)j->after_rowid;
        int64_t from = j->order == BY_NAME ? entry_seq(j->front_name) : (int64_t)j->front_rowid;
        if (to < 0 || from < 0)
            return -1;
        int64_t gap = to - from - 1;
        return gap > NEAR ? NEAR + 1 : gap < 0 ? 0 : (int)gap;
    }
    return store_read_ahead_gap(r, j->model, j->order == BY_NAME, j->front_rowid, j->front_name,
                                j->after_rowid, j->after_name, NEAR + 1);
}

static void push_batch(struct ahead *a, struct job *j)
{
    struct store_reader *r = store_reader(j->st);
    if (!r)
        return;
    /* A READ far beyond the walk's front, with the files between it cached:
     * a file the kernel dropped from a warm tree, not a reader outrunning the
     * pushes. Push a first window after it, not a widened one. */
    int far = j->probe && skipped(r, j) > NEAR;
    if (far) {
        atomic_fetch_add(&a->n_far, 1);
        if (j->count > FIRST_WINDOW)
            j->count = FIRST_WINDOW;
    }
    pthread_mutex_lock(&a->lock);
    if (far && current(a, j))
        a->scans[j->scan].window = FIRST_WINDOW;
    struct pushing p = { a, j, a->se, 0, j->count >= 8 ? j->count / 2 : -1, 0, 0, 0 };
    pthread_mutex_unlock(&a->lock);
    /* One statement for the batch: the bytes come with the listing. */
    if (j->model == AHEAD_CHANGES) {
        /* Names are the sequence numbers, fixed width: one order. */
        int64_t after = j->order == BY_NAME ? entry_seq(j->after_name) : (int64_t)j->after_rowid;
        store_read_change_ahead(r, after < 0 ? 0 : after, j->count, push_one, &p);
    } else {
        store_read_ahead(r, j->model, j->order == BY_NAME, j->after_rowid, j->after_name,
                         j->count, push_one, &p);
    }
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

/* Queue a batch after the read just seen, or after the window's end. A
 * batch after a READ beyond the window first counts what that READ skipped
 * since `front` (NULL: nothing to count). With a->lock held. */
static void enqueue(struct ahead *a, struct scan *sc, int from_end, const struct pos *front)
{
    if (a->qlen == NQUEUE)
        return;     /* the pusher is behind: the reader's READs serve it */
    if (!a->started) {
        /* The storers first: a pusher never runs without them. A thread that
         * cannot be made leaves this scan to the reader's READs; the next
         * batch tries again. */
        while (a->nstorers < NSTORERS && pthread_create(&a->storers[a->nstorers].thread, NULL,
                                                        storer, &a->storers[a->nstorers]) == 0)
            a->nstorers++;
        if (a->nstorers < NSTORERS || pthread_create(&a->thread, NULL, pusher, a) != 0)
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
    if (front) {
        j->probe = 1;
        j->front_rowid = front->rowid;
        snprintf(j->front_name, sizeof j->front_name, "%s", front->name);
    }
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
    uint64_t rowid = place(model, node);
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
    /* The walk's front before this READ, for a READ beyond the window: the
     * window's end or the last READ, whichever is further. */
    char front_name[NAME_LEN];
    front_name[0] = '\0';
    struct pos front = { sc->end_rowid > sc->last_rowid ? sc->end_rowid : sc->last_rowid,
                         front_name };
    if (beyond)
        snprintf(front_name, sizeof front_name, "%s",
                 strcmp(sc->end_name, sc->last_name) > 0 ? sc->end_name : sc->last_name);
    sc->last_rowid = rowid;
    snprintf(sc->last_name, sizeof sc->last_name, "%s", name);
    if (was != NONE && (was == BY_ROWID ? by_rowid : by_name)) {
        /* The walk goes on. Past the window: it outran what was pushed (or
         * a file of it was not held): a wider window from here. Inside it
         * with a batch under way: the pusher skips what was read. */
        if ((beyond || tripped) && !sc->pending) {
            if (sc->window < a->max_files)
                sc->window = sc->window * 2 > a->max_files ? a->max_files : sc->window * 2;
            enqueue(a, sc, !beyond, beyond ? &front : NULL);
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
            enqueue(a, sc, 0, NULL);
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
    int started = a->started, nstorers = a->nstorers;
    a->started = 0;
    a->nstorers = 0;
    pthread_cond_broadcast(&a->wake);
    for (int i = 0; i < NSTORERS; i++) {
        pthread_cond_broadcast(&a->storers[i].ready);
        pthread_cond_broadcast(&a->storers[i].room);
    }
    pthread_mutex_unlock(&a->lock);
    if (started)
        pthread_join(a->thread, NULL);
    for (int i = 0; i < nstorers; i++)
        pthread_join(a->storers[i].thread, NULL);
}

void ahead_free(struct ahead *a)
{
    if (!a)
        return;
    ahead_stop(a);
    for (int i = 0; i < NSTORERS; i++) {
        for (int k = 0; k < NSTAGED; k++)
            free(a->storers[i].ring[k].data);
        pthread_cond_destroy(&a->storers[i].ready);
        pthread_cond_destroy(&a->storers[i].room);
    }
    pthread_mutex_destroy(&a->lock);
    pthread_cond_destroy(&a->wake);
    free(a);
}

void *ahead_stats(struct ahead *a)
{
    if (!a)
        return json_null();
    return json_pack("{sI sI sI sI sI sI sI sI}", "scans", (json_int_t)atomic_load(&a->n_scans),
                     "batches", (json_int_t)atomic_load(&a->n_batches), "files",
                     (json_int_t)atomic_load(&a->n_files), "bytes",
                     (json_int_t)atomic_load(&a->n_bytes), "not_held",
                     (json_int_t)atomic_load(&a->n_not_held), "far",
                     (json_int_t)atomic_load(&a->n_far), "overtaken",
                     (json_int_t)atomic_load(&a->n_overtaken), "late",
                     (json_int_t)atomic_load(&a->n_late));
}
