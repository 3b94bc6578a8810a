#define FUSE_USE_VERSION 35
#include "notify.h"

#include <errno.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct item {
    uint64_t parent;
    uint64_t ino;
    char *name;
    int removed;
    size_t order;       /* push order, for sorting */
};

struct notify {
    int enabled;
    struct fuse_session *se;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_cond_t idle;
    struct item *q;
    size_t n, cap;
    uint64_t pushed, sent;      /* batch counters for notify_flush */
    int stop, started;
    pthread_t thread;
};

struct notify *notify_new(int enabled)
{
    struct notify *n = calloc(1, sizeof *n);
    if (!n)
        abort();
    n->enabled = enabled;
    pthread_mutex_init(&n->lock, NULL);
    pthread_cond_init(&n->wake, NULL);
    pthread_cond_init(&n->idle, NULL);
    return n;
}

void notify_push(struct notify *n, uint64_t parent, uint64_t ino,
                 const char *name, int removed)
{
    if (!n || !n->enabled)
        return;
    pthread_mutex_lock(&n->lock);
    if (n->n == n->cap) {
        n->cap = n->cap ? n->cap * 2 : 256;
        void *p = realloc(n->q, n->cap * sizeof *n->q);
        if (!p)
            abort();
        n->q = p;
    }
    n->q[n->n++] = (struct item){ parent, ino, strdup(name), removed, 0 };
    n->pushed++;
    pthread_cond_signal(&n->wake);
    pthread_mutex_unlock(&n->lock);
}

static void check(int rc, const char *what, uint64_t ino)
{
    /* ENOENT: the kernel had nothing cached, which is fine. */
    if (rc < 0 && rc != -ENOENT && rc != -ENOTCONN)
        log_debug("notify %s %llu: %s", what, (unsigned long long)ino, strerror(-rc));
}

/* By inode, then parent and name: one name of a link can go and another
 * come for the same inode (an e-mail address that changed). */
static int cmp_item(const void *a, const void *b)
{
    const struct item *x = a, *y = b;
    if (x->ino != y->ino)
        return x->ino < y->ino ? -1 : 1;
    if (x->parent != y->parent)
        return x->parent < y->parent ? -1 : 1;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

static int same_item(const struct item *x, const struct item *y)
{
    return x->ino == y->ino && x->parent == y->parent && strcmp(x->name, y->name) == 0;
}

static void send_batch(struct notify *n, struct item *items, size_t count)
{
    /* Sorted so that repeats are adjacent: each (inode, name) is sent once,
     * as its last push says. qsort is not stable: the index breaks ties. */
    for (size_t i = 0; i < count; i++)
        items[i].order = i;
    qsort(items, count, sizeof *items, cmp_item);
    uint64_t dirs[16];
    size_t ndirs = 0;
    for (size_t i = 0; i < count; i++) {
        struct item *it = &items[i];
        int last_of_ino = i + 1 == count || !same_item(&items[i + 1], it);
        if (last_of_ino) {
            if (it->removed) {
                check(fuse_lowlevel_notify_delete(n->se, it->parent, it->ino, it->name,
                                                  strlen(it->name)), "delete", it->ino);
            } else {
                check(fuse_lowlevel_notify_inval_inode(n->se, it->ino, 0, 0), "inode", it->ino);
                /* drops a negative dentry left by an earlier failed lookup */
                check(fuse_lowlevel_notify_inval_entry(n->se, it->parent, it->name,
                                                       strlen(it->name)), "entry", it->ino);
            }
            size_t d = 0;
            while (d < ndirs && dirs[d] != it->parent)
                d++;
            if (d == ndirs && ndirs < 16)
                dirs[ndirs++] = it->parent;
        }
        free(it->name);
    }
    for (size_t d = 0; d < ndirs; d++)
        check(fuse_lowlevel_notify_inval_inode(n->se, dirs[d], 0, 0), "dir", dirs[d]);
}

static void *run(void *arg)
{
    struct notify *n = arg;
    pthread_mutex_lock(&n->lock);
    for (;;) {
        while (!n->n && !n->stop)
            pthread_cond_wait(&n->wake, &n->lock);
        if (!n->n && n->stop)
            break;
        struct item *items = n->q;
        size_t count = n->n;
        uint64_t upto = n->pushed;
        n->q = NULL;
        n->n = n->cap = 0;
        pthread_mutex_unlock(&n->lock);
        if (!n->stop)
            send_batch(n, items, count);
        else
            for (size_t i = 0; i < count; i++)
                free(items[i].name);
        free(items);
        pthread_mutex_lock(&n->lock);
        n->sent = upto;
        pthread_cond_broadcast(&n->idle);
    }
    n->sent = n->pushed;
    pthread_cond_broadcast(&n->idle);
    pthread_mutex_unlock(&n->lock);
    return NULL;
}

int notify_start(struct notify *n, struct fuse_session *se)
{
    if (!n->enabled)
        return 0;
    n->se = se;
    if (pthread_create(&n->thread, NULL, run, n) != 0)
        return -1;
    n->started = 1;
    return 0;
}

void notify_flush(struct notify *n)
{
    if (!n || !n->enabled)
        return;
    pthread_mutex_lock(&n->lock);
    uint64_t want = n->pushed;
    while (n->started && !n->stop && n->sent < want)
        pthread_cond_wait(&n->idle, &n->lock);
    pthread_mutex_unlock(&n->lock);
}

void notify_stop(struct notify *n)
{
    if (!n || !n->started)
        return;
    pthread_mutex_lock(&n->lock);
    n->stop = 1;
    pthread_cond_broadcast(&n->wake);
    pthread_mutex_unlock(&n->lock);
    pthread_join(n->thread, NULL);
    n->started = 0;
}

void notify_free(struct notify *n)
{
    if (!n)
        return;
    notify_stop(n);
    for (size_t i = 0; i < n->n; i++)
        free(n->q[i].name);
    free(n->q);
    pthread_mutex_destroy(&n->lock);
    pthread_cond_destroy(&n->wake);
    pthread_cond_destroy(&n->idle);
    free(n);
}
