/*
 * mset.c — multi mode: the set of mirrors (mset.h).
 *
 * Each mirror is what single mode's daemon holds for its one integration: a
 * cache, an API client, a sync engine, a tree. The engines share one pool of
 * --max-connections workers (sync.h), so fetches in flight, and threads, do
 * not grow with the integrations. Every active mirror keeps its cache open:
 * caches opened on demand (SPEC §8's bound on open files for hundreds of
 * integrations) are the next step.
 */
#include "mset.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "fetch.h"
#include "fsname.h"
#include "ilist.h"
#include "kombo.h"
#include "log.h"
#include "metrics.h"
#include "models.h"
#include "roster.h"
#include "store.h"
#include "sync.h"
#include "version.h"
#include "webhook.h"

struct mirror {
    struct mset *m;
    char *id;
    unsigned slot;
    char name[768];             /* the escaped id: directory and cache file name */
    char *cache;                /* <cache-dir>/<name>.db */
    struct options o;           /* the daemon's, with integration and cache set */
    struct store *st;           /* NULL: the cache could not be opened (error) */
    struct store *wh_st;        /* the receiver's connection, opened on first use */
    struct kombo *k;
    struct sync *sync;
    struct fs *fs;              /* owned by the fsset */
    char error[512];            /* why the mirror does not run */
    int active;                 /* not removed */
    int running;                /* its engine was started */
    int discovered;
    char origin[768];           /* origin_id, "" if unknown */
    struct mirror *next;        /* in the set, in the order added */
    /* its webhooks (under the set's wh_lock), for its own .status */
    long wh_accepted, wh_duplicates;
    int deleted;                /* integration-deleted: syncing stopped, files stay */
    char wh_last_at[CLOCK_ISO_LEN];
};

struct mset {
    const struct options *o;
    struct notify *nt;
    struct fsset *set;
    struct fs *root;
    pthread_mutex_t lock;       /* the mirrors and the roster */
    struct roster *roster;
    struct mirror *first, *last;    /* only ever grows while the daemon runs */
    struct sync_pool *pool;         /* --max-connections workers for every mirror */
    pthread_mutex_t wh_lock;        /* the mirrors' webhook figures (never held with lock) */
    void *(*webhooks)(void *ctx);   /* the receiver's figures for the root's .status */
    void *webhooks_ctx;
    size_t n;
    int started;
};

/* ---- one mirror ---- */

static struct mirror *find(struct mset *m, const char *id)
{
    for (struct mirror *mi = m->first; mi; mi = mi->next)
        if (strcmp(mi->id, id) == 0)
            return mi;
    return NULL;
}

/* by-origin/ names are escaped like file names. */
static void show_origin(struct mirror *mi, const char *origin)
{
    struct buf e = BUF_INIT;
    fsname_escape(origin, strlen(origin), &e);
    if (mi->fs)
        fs_set_origin(mi->fs, e.data);
    buf_free(&e);
}

static void on_ready(void *ctx)
{
    struct mirror *mi = ctx;
    log_info("%s: first complete fetch done, the directory appears", mi->id);
    fs_set_visible(mi->fs, 1);
}

/* The "webhooks" object of an integration's .status: what the receiver
 * routed to it (rejected ones name no integration). */
static void *mirror_webhooks(void *ctx)
{
    struct mirror *mi = ctx;
    pthread_mutex_lock(&mi->m->wh_lock);
    json_t *j = json_pack("{sI sI sI si so?}", "received",
                          (json_int_t)mi->wh_accepted + (json_int_t)mi->wh_duplicates, "accepted",
                          (json_int_t)mi->wh_accepted, "duplicates", (json_int_t)mi->wh_duplicates,
                          "rejected", 0, "last_at",
                          mi->wh_last_at[0] ? json_string(mi->wh_last_at) : NULL);
    pthread_mutex_unlock(&mi->m->wh_lock);
    return j;
}

/* Open the mirror's cache and build its engine and tree (nothing starts). */
static void mirror_open(struct mirror *mi)
{
    struct mset *m = mi->m;
    char err[512];
    /* A new cache is created by its first fetch, on a pool worker: 1,000 of
     * them created here, one after another, delayed the mount by 10-18 s. */
    mi->st = store_open_lazy(mi->cache, err, sizeof err);
    if (!mi->st) {
        snprintf(mi->error, sizeof mi->error, "%s", err);
        log_warnx("%s: %s", mi->id, err);
        return;
    }
    if (store_opened(mi->st) && (store_claim(mi->st) < 0 || fetch_backfill(mi->st) < 0)) {
        snprintf(mi->error, sizeof mi->error, "cache %s cannot be written", mi->cache);
        store_close(mi->st);
        mi->st = NULL;
        return;
    }
    if (!m->o->offline)
        mi->k = kombo_new(m->o->api_url, m->o->api_key, mi->id);
    mi->sync = sync_new(mi->st, mi->k, &mi->o);
    mi->fs = fs_new(mi->st, mi->sync, m->nt, &mi->o, mi->slot);
    fs_set_name(mi->fs, mi->name);
    fsset_put(m->set, mi->fs);
    sync_set_listener(mi->sync, fs_changed, mi->fs);
    sync_set_status_extra(mi->sync, mirror_webhooks, mi);
    if (sync_models_without_snapshot(mi->sync) == 0)
        fs_set_visible(mi->fs, 1);
    else
        sync_set_ready(mi->sync, on_ready, mi);
    store_suspend(mi->st);      /* opened again for each batch (sync.c) */
}

static struct mirror *mirror_new(struct mset *m, const char *id, unsigned slot,
                                 const char *origin)
{
    struct mirror *mi = calloc(1, sizeof *mi);
    if (!mi)
        abort();
    mi->m = m;
    mi->id = strdup(id);
    mi->slot = slot;
    metrics_set_slot_name(slot, id);    /* GET /metrics: FUSE requests by integration */
    mi->active = 1;
    struct buf b = BUF_INIT;
    fsname_escape(id, strlen(id), &b);
    snprintf(mi->name, sizeof mi->name, "%s", b.data);
    buf_reset(&b);
    buf_printf(&b, "%s/%s.db", m->o->cache_dir, mi->name);
    mi->cache = buf_detach(&b);
    mi->o = *m->o;              /* a shallow copy: never options_free()d */
    mi->o.integration = mi->id;
    mi->o.cache = mi->cache;
    if (m->last)
        m->last->next = mi;
    else
        m->first = mi;
    m->last = mi;
    m->n++;
    snprintf(mi->origin, sizeof mi->origin, "%s", origin ? origin : "");
    mirror_open(mi);
    if (origin)
        show_origin(mi, origin);
    return mi;
}

/* On the mirror's worker, before its first fetch: an origin not known yet is
 * asked of GET /integrations/{id}; an id Kombo does not know shows as an
 * error of that integration only. */
static void learn_origin(void *ctx)
{
    struct mirror *mi = ctx;
    struct mset *m = mi->m;
    pthread_mutex_lock(&m->lock);
    int known = mi->origin[0] != '\0';
    pthread_mutex_unlock(&m->lock);
    if (known || !mi->k)
        return;
    char *origin = NULL;
    struct kombo_error ke;
    enum kombo_result r = kombo_get_integration(mi->k, mi->id, &origin, &ke);
    if (r != KOMBO_OK) {
        log_warnx("%s: GET /integrations/%s: %s", mi->id, mi->id, ke.message);
        return;
    }
    if (!origin)
        return;
    pthread_mutex_lock(&m->lock);
    snprintf(mi->origin, sizeof mi->origin, "%s", origin);
    roster_set_origin(m->roster, mi->id, origin);
    show_origin(mi, origin);
    pthread_mutex_unlock(&m->lock);
    free(origin);
}

static int mirror_start(struct mirror *mi)
{
    if (!mi->sync || mi->running || mi->m->o->offline)
        return 0;
    sync_set_prelude(mi->sync, learn_origin, mi);
    sync_set_pool(mi->sync, mi->m->pool);
    if (sync_start(mi->sync) < 0)
        return -1;
    mi->running = 1;
    /* A delta of an endpoint without a snapshot is a full fetch (sync.c). */
    sync_request(mi->sync, MODELS_ALL, SYNC_DELTA, 0);
    return 0;
}

/* Stop syncing; the tree leaves the root, its files stay readable through
 * handles already open. */
static void mirror_stop(struct mirror *mi)
{
    mi->active = 0;
    if (mi->fs)
        fs_set_visible(mi->fs, 0);
    if (mi->running) {
        sync_stop(mi->sync);
        mi->running = 0;
    }
}

static void mirror_free(struct mirror *mi)
{
    if (mi->running)
        sync_stop(mi->sync);
    sync_free(mi->sync);
    kombo_free(mi->k);
    store_close(mi->wh_st);
    if (mi->st && store_opened(mi->st) && store_resume(mi->st) == 0)
        store_release(mi->st);  /* a clean stop: the next start skips the check */
    store_close(mi->st);
    free(mi->cache);
    free(mi->id);
    free(mi);
}

/* ---- the set ---- */

/* Make the mirrors what the roster says (at start, and after reload). With
 * the lock held (or before any thread exists). */
static int reconcile_one(const struct roster_entry *e, void *ctx)
{
    struct mset *m = ctx;
    struct mirror *mi = find(m, e->id);
    if (e->removed) {
        if (mi && mi->active)
            mirror_stop(mi);
        return 0;
    }
    if (!mi) {
        mi = mirror_new(m, e->id, e->slot, e->origin_id);
        mi->discovered = e->source == ROSTER_DISCOVERED;
        if (e->deleted && mi->sync)
            sync_disable(mi->sync, "integration deleted");
        mi->deleted = e->deleted;
        if (e->paused && mi->sync)
            sync_pause(mi->sync, 1);
    } else if (!mi->active) {
        mi->active = 1;
        if (mi->fs && mi->sync && sync_models_without_snapshot(mi->sync) == 0)
            fs_set_visible(mi->fs, 1);
    }
    if (m->started && mirror_start(mi) < 0)
        log_warnx("%s: cannot start its sync engine", mi->id);
    return 0;
}

/* Apply the integrations file to the roster; log what changed. */
static int apply_file(struct mset *m, char *err, size_t errlen)
{
    struct ilist file;
    if (ilist_read(m->o->integrations_file, &file, err, errlen) < 0)
        return -1;
    struct ilist added, removed;
    memset(&added, 0, sizeof added);
    memset(&removed, 0, sizeof removed);
    int rc = roster_apply_file(m->roster, &file, &added, &removed);
    if (rc < 0)
        snprintf(err, errlen, "%s: %s", m->o->integrations_file,
                 rc == -ENOSPC ? "no inode slot left for a new integration"
                               : roster_errmsg(m->roster));
    if (rc == 0) {
        for (size_t i = 0; i < added.n; i++)
            log_info("%s: added by %s", added.ids[i], m->o->integrations_file);
        for (size_t i = 0; i < removed.n; i++)
            log_info("%s: removed from %s (its cache is kept)", removed.ids[i],
                     m->o->integrations_file);
        ilist_free(&added);
        ilist_free(&removed);
    }
    ilist_free(&file);
    return rc;
}

struct mset *mset_new(const struct options *o, struct notify *nt, struct fsset *set,
                      char *err, size_t errlen)
{
    if (mkdir(o->cache_dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create --cache-dir %s: %s", o->cache_dir, strerror(errno));
        return NULL;
    }
    if (access(o->cache_dir, W_OK | X_OK) < 0) {
        snprintf(err, errlen, "--cache-dir %s is not writable: %s", o->cache_dir, strerror(errno));
        return NULL;
    }
    metrics_set_multi(1);       /* the integration label, even if no engine can start */
    struct mset *m = calloc(1, sizeof *m);
    if (!m)
        abort();
    m->o = o;
    m->nt = nt;
    m->set = set;
    pthread_mutex_init(&m->lock, NULL);
    pthread_mutex_init(&m->wh_lock, NULL);
    m->roster = roster_open(o->cache_dir, err, errlen);
    if (!m->roster || apply_file(m, err, errlen) < 0) {
        mset_free(m);
        return NULL;
    }
    m->root = fs_new_root(o, nt, mset_control, mset_status, m);
    fsset_put(set, m->root);
    roster_list(m->roster, reconcile_one, m);
    log_info("multi mode: %zu integrations in %s", m->n, o->cache_dir);
    return m;
}

int mset_start(struct mset *m)
{
    int rc = 0;
    pthread_mutex_lock(&m->lock);
    if (!m->pool && !(m->pool = sync_pool_new(m->o->max_connections))) {
        pthread_mutex_unlock(&m->lock);
        return -1;
    }
    m->started = 1;
    for (struct mirror *mi = m->first; mi; mi = mi->next)
        if (mi->active && mirror_start(mi) < 0)
            rc = -1;
    pthread_mutex_unlock(&m->lock);
    return rc;
}

void mset_cancel(struct mset *m)
{
    /* Async-signal-safe: walks the list without the lock (it only grows, a
     * mirror is linked once complete, and sync_cancel is one atomic store). */
    for (struct mirror *mi = m ? m->first : NULL; mi; mi = mi->next)
        if (mi->sync)
            sync_cancel(mi->sync);
}

void mset_free(struct mset *m)
{
    if (!m)
        return;
    for (struct mirror *mi = m->first; mi; mi = mi->next)
        if (mi->running) {
            sync_stop(mi->sync);
            mi->running = 0;
        }
    sync_pool_free(m->pool);
    struct mirror *mi = m->first;
    while (mi) {
        struct mirror *next = mi->next;
        mirror_free(mi);
        mi = next;
    }
    roster_close(m->roster);
    pthread_mutex_destroy(&m->lock);
    pthread_mutex_destroy(&m->wh_lock);
    free(m);
}

/* ---- add, remove, purge, reload ---- */

/* With the lock held. Returns the mirror (new or already there) or NULL. */
static struct mirror *add(struct mset *m, const char *id, enum roster_source source,
                          const char *origin, int *is_new)
{
    struct mirror *mi = find(m, id);
    *is_new = 0;
    if (mi && mi->active)
        return mi;
    unsigned slot;
    int rc = roster_add(m->roster, id, source, &slot);
    if (rc < 0) {
        log_warnx("%s: cannot add: %s", id, rc == -EINVAL ? "not a valid integration id"
                                              : rc == -ENOSPC ? "no inode slot left"
                                                              : roster_errmsg(m->roster));
        return NULL;
    }
    if (origin) {
        roster_set_origin(m->roster, id, origin);
        if (mi) {
            snprintf(mi->origin, sizeof mi->origin, "%s", origin);
            show_origin(mi, origin);
        }
    }
    *is_new = 1;
    if (mi) {               /* removed before, its tree still in the set */
        mi->active = 1;
        if (mi->fs && sync_models_without_snapshot(mi->sync) == 0)
            fs_set_visible(mi->fs, 1);
    } else {
        mi = mirror_new(m, id, slot, origin);
    }
    if (m->started)
        mirror_start(mi);
    return mi;
}

static int unlink_cache(const char *path)
{
    char p[4200];
    int rc = unlink(path) < 0 && errno != ENOENT ? -1 : 0;
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
    return rc;
}

/* With the lock held: 0, or EINVAL for an id not known. */
static int remove_one(struct mset *m, const char *id, int purge)
{
    struct mirror *mi = find(m, id);
    if (!purge && (!mi || !mi->active))
        return EINVAL;
    if (mi && mi->active) {
        mirror_stop(mi);
        roster_remove(m->roster, id);
    }
    if (purge) {
        if (roster_purge(m->roster, id) < 0 && !mi)
            return EINVAL;
        if (mi) {
            /* The open connections keep the unlinked file readable until exit. */
            if (unlink_cache(mi->cache) < 0)
                log_warn("%s: cannot delete %s", id, mi->cache);
        }
        log_info("%s: purged", id);
    } else {
        log_info("%s: removed (its cache is kept)", id);
    }
    return 0;
}

void mset_set_webhooks(struct mset *m, void *(*fn)(void *ctx), void *ctx)
{
    /* Before the mount: no .status is read yet. */
    m->webhooks = fn;
    m->webhooks_ctx = ctx;
}

int mset_reload(struct mset *m)
{
    char err[512];
    pthread_mutex_lock(&m->lock);
    int rc = apply_file(m, err, sizeof err);
    if (rc < 0)
        log_warnx("reload: %s", err);
    else
        roster_list(m->roster, reconcile_one, m);
    pthread_mutex_unlock(&m->lock);
    return rc < 0 ? EINVAL : 0;
}

/* ---- .control ---- */

static int word(const char *cmd, size_t len, const char *w, const char **arg, size_t *alen)
{
    size_t n = strlen(w);
    if (len < n || memcmp(cmd, w, n) != 0)
        return 0;
    if (len == n) {
        *arg = NULL;
        *alen = 0;
        return 1;
    }
    if (cmd[n] != ' ')
        return 0;
    *arg = cmd + n + 1;
    *alen = len - n - 1;
    return 1;
}

int mset_control(void *ctx, const char *cmd, size_t len)
{
    struct mset *m = ctx;
    while (len && (cmd[len - 1] == '\n' || cmd[len - 1] == '\r'))
        len--;
    const char *arg;
    size_t alen;
    char id[256];
    if ((word(cmd, len, "sync", &arg, &alen) || word(cmd, len, "resync", &arg, &alen)) && !arg) {
        enum sync_kind kind = cmd[0] == 'r' ? SYNC_FULL : SYNC_DELTA;
        if (m->o->offline)
            return EIO;
        int failed = 0;
        pthread_mutex_lock(&m->lock);
        struct mirror *first = m->first;
        pthread_mutex_unlock(&m->lock);
        for (struct mirror *mi = first; mi; mi = mi->next)
            if (mi->active && mi->running && sync_request(mi->sync, MODELS_ALL, kind, 1) < 0)
                failed = 1;
        return failed ? EIO : 0;
    }
    if (cmd[0] == 'r' && word(cmd, len, "reload", &arg, &alen) && !arg)
        return mset_reload(m);
    int is_add = word(cmd, len, "add", &arg, &alen);
    int is_remove = !is_add && word(cmd, len, "remove", &arg, &alen);
    int is_purge = !is_add && !is_remove && word(cmd, len, "purge", &arg, &alen);
    if (!(is_add || is_remove || is_purge) || !arg || alen == 0 || alen >= sizeof id ||
        memchr(arg, ' ', alen) || memchr(arg, '\0', alen))
        return EINVAL;
    memcpy(id, arg, alen);
    id[alen] = '\0';
    pthread_mutex_lock(&m->lock);
    int rc = 0;
    struct mirror *mi = NULL;
    if (is_add) {
        int is_new;
        mi = add(m, id, ROSTER_CONTROL, NULL, &is_new);
        rc = mi ? 0 : EIO;
    } else {
        rc = remove_one(m, id, is_purge);
    }
    pthread_mutex_unlock(&m->lock);
    /* add returns when the first full fetch has finished (SPEC §9) */
    if (mi && rc == 0 && mi->sync && mi->running &&
        sync_models_without_snapshot(mi->sync) != 0)
        rc = sync_request(mi->sync, MODELS_ALL, SYNC_DELTA, 1) < 0 ? EIO : 0;
    if (mi && !mi->sync)
        rc = EIO;
    /* The worker shows the tree after its batch; the command shows it now. */
    if (mi && rc == 0 && mi->fs && sync_models_without_snapshot(mi->sync) == 0)
        fs_set_visible(mi->fs, 1);
    return rc;
}

/* ---- .status ---- */

static json_t *mirror_status(struct mirror *mi)
{
    json_t *j = json_object();
    json_object_set_new(j, "slot", json_integer(mi->slot));
    if (!mi->sync) {
        json_object_set_new(j, "state", json_string("error"));
        json_object_set_new(j, "last_error", json_string(mi->error));
        return j;
    }
    json_t *s = sync_summary(mi->sync);
    int complete = sync_models_without_snapshot(mi->sync) == 0;
    const char *state = json_string_value(json_object_get(s, "state"));
    if (!mi->active)
        state = "removed";
    else if (mi->deleted)
        state = "deleted";
    else if (!complete && state && strcmp(state, "ready") == 0)
        state = "initial-sync";
    json_object_set_new(j, "state", json_string(state ? state : "error"));
    json_object_set(j, "records", json_object_get(s, "records"));
    json_object_set(j, "last_delta", json_object_get(s, "last_delta"));
    json_object_set(j, "last_full", json_object_get(s, "last_full"));
    json_object_set(j, "last_error", json_object_get(s, "last_error"));
    json_object_set_new(j, "cache", json_string(mi->cache));
    if (mi->discovered)
        json_object_set_new(j, "discovered", json_true());
    json_decref(s);
    return j;
}

char *mset_status(void *ctx)
{
    struct mset *m = ctx;
    json_t *ints = json_object();
    pthread_mutex_lock(&m->lock);
    for (struct mirror *mi = m->first; mi; mi = mi->next) {
        json_t *j = mirror_status(mi);
        json_object_set_new(j, "origin_id", mi->origin[0] ? json_string(mi->origin) : json_null());
        json_object_set_new(ints, mi->id, j);
    }
    pthread_mutex_unlock(&m->lock);
    long requests, retries, throttled;
    kombo_stats(&requests, &retries, &throttled);
    json_t *wh = m->webhooks ? m->webhooks(m->webhooks_ctx) : NULL;
    json_t *root = json_pack("{ss ss ss so s{sI sI sI}}", "version", KOMBOFS_VERSION, "state",
                             m->o->offline ? "offline" : "ready", "cache_dir", m->o->cache_dir,
                             "integrations", ints, "api", "requests", (json_int_t)requests,
                             "retries", (json_int_t)retries, "throttled", (json_int_t)throttled);
    if (root)
        json_object_set_new(root, "webhooks", wh ? wh : json_null());
    else
        json_decref(wh);
    return sync_render(root);
}

/* ---- webhooks ---- */

/* The event's id, durably, in the integration's cache: 1 new, 0 seen, -1.
 * The receiver's connection is opened for the event and closed after, so
 * open files do not grow with the integrations that sent webhooks. */
static int record(struct mirror *mi, const struct wevent *ev)
{
    char err[512];
    if (!mi->wh_st && !(mi->wh_st = store_open_again(mi->cache, err, sizeof err)))
        return -1;
    if (store_resume(mi->wh_st) < 0)
        return -1;
    int rc = store_webhook_record(mi->wh_st, ev->id, (int64_t)time(NULL), WEBHOOK_KEEP_IDS_S);
    return rc;
}

int mset_route(void *ctx, const struct wevent *ev, json_t *data)
{
    struct mset *m = ctx;
    int rc = WEBHOOK_ROUTE_IGNORED;
    pthread_mutex_lock(&m->lock);
    struct mirror *mi = find(m, ev->integration);
    if (ev->kind == WEVENT_INTEGRATION_CREATED) {
        if (m->o->discover && !(mi && mi->active)) {
            json_t *eu = json_object_get(data, "end_user");
            const char *origin = json_string_value(json_object_get(eu, "origin_id"));
            int is_new;
            mi = add(m, ev->integration, ROSTER_DISCOVERED, origin, &is_new);
            if (mi) {
                mi->discovered = 1;
                snprintf(mi->origin, sizeof mi->origin, "%s", origin ? origin : "");
            }
            rc = mi ? WEBHOOK_ROUTE_ACCEPTED : -1;
        }
        pthread_mutex_unlock(&m->lock);
        return rc;
    }
    if (!mi || !mi->active || !mi->sync) {
        pthread_mutex_unlock(&m->lock);
        log_debug("webhook: %s for %s, not mirrored here: ignored", ev->id, ev->integration);
        return WEBHOOK_ROUTE_IGNORED;
    }
    int r = record(mi, ev);
    if (r < 0) {
        pthread_mutex_unlock(&m->lock);
        return -1;
    }
    if (r == 0) {
        pthread_mutex_lock(&m->wh_lock);
        mi->wh_duplicates++;
        pthread_mutex_unlock(&m->wh_lock);
        store_suspend(mi->wh_st);
        pthread_mutex_unlock(&m->lock);
        return WEBHOOK_ROUTE_DUPLICATE;
    }
    rc = WEBHOOK_ROUTE_ACCEPTED;
    pthread_mutex_lock(&m->wh_lock);
    mi->wh_accepted++;
    clock_format(clock_now_ns(), mi->wh_last_at, sizeof mi->wh_last_at);
    pthread_mutex_unlock(&m->wh_lock);
    if (ev->kind == WEVENT_DATA_CHANGED) {
        if (ev->mask & m->o->models)
            sync_request(mi->sync, ev->mask & m->o->models, SYNC_DELTA, 0);
    } else if (ev->kind == WEVENT_INTEGRATION_DELETED) {
        sync_disable(mi->sync, "integration deleted");
        store_meta_set(mi->wh_st, "disabled", "integration deleted");
        roster_set_flag(m->roster, mi->id, ROSTER_DELETED, 1);
        mi->deleted = 1;
        log_info("%s: integration deleted: syncing stopped, its files stay readable%s", mi->id,
                 m->o->purge_deleted ? "; purged (--purge-deleted)" : "");
        if (m->o->purge_deleted)
            remove_one(m, mi->id, 1);
    } else if (ev->kind == WEVENT_INTEGRATION_STATE) {
        const char *state = json_string_value(json_object_get(data, "state"));
        int pause = state && (strcmp(state, "INACTIVE") == 0 || strcmp(state, "INVALID") == 0);
        sync_pause(mi->sync, pause);
        roster_set_flag(m->roster, mi->id, ROSTER_PAUSED, pause);
        if (!pause)
            sync_request(mi->sync, MODELS_ALL, SYNC_DELTA, 0);
        log_info("%s: integration state %s%s", mi->id, state ? state : "(none)",
                 pause ? ": paused" : "");
    }
    store_suspend(mi->wh_st);
    pthread_mutex_unlock(&m->lock);
    return rc;
}
