/*
 * sync.c — the engine around fetch.c: per-endpoint state (generation,
 * watermark, the figures of .status), the coalescing job queue, the worker
 * thread and the schedule.
 *
 * The watermark of an endpoint is the start time of its last complete
 * fetch, committed only after fetch_run() succeeded; a delta asks for
 * updated_after = watermark - overlap.
 */
#include "sync.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "models.h"
#include "version.h"

struct run_stat {
    char started_at[32];
    char finished_at[32];
    char result[16];            /* "", "ok", "error", "running" */
    long fetched;
    long changed;
    long skipped;
};

struct model_state {
    struct run_stat last[2];    /* [SYNC_DELTA], [SYNC_FULL] */
    char last_error[600];
    long drift;                 /* records the last full fetch corrected */
    long records;               /* multi mode: counted after each fetch that changed any */
    int64_t full_at;            /* unix s of the last complete full fetch */
    int64_t last_delta_at;      /* unix s of the last delta attempt */
    /* tickets: requested vs finished, per kind, for sync_request(wait) */
    uint64_t requested[2];
    uint64_t finished[2];
    int failed[2];              /* result of the run that set finished[] */
};

struct sync {
    struct store *st;
    struct kombo *k;
    const struct options *o;
    sync_changed_fn listener;
    void *listener_ctx;

    pthread_mutex_t lock;       /* guards everything below */
    pthread_cond_t done;        /* waiters: a job finished */
    /* the pool that runs it (under the pool's lock: pool_next, busy, registered, last_turn) */
    struct sync_pool *pool;
    struct sync_pool *own_pool; /* single mode: a pool of one, freed by sync_stop */
    struct sync *pool_next;
    int busy;
    int registered;
    uint64_t last_turn;
    int64_t started_s;          /* unix s of sync_start (full_due) */
    int running;
    atomic_int stop;
    unsigned pending[2];        /* model masks queued per kind */
    struct model_state ms[MODEL_COUNT];
    char state[24];
    char *integration_deleted;  /* JSON texts of the last webhook facts */
    char *integration_state;
    char disabled[200];         /* non-empty: syncing stopped, and why */
    sync_status_extra_fn extra;
    void *extra_ctx;
    void (*prelude)(void *ctx);     /* once, on the worker, before its first job */
    void *prelude_ctx;
    void (*on_ready)(void *ctx);    /* once every model has a complete snapshot */
    void *ready_ctx;
    int ready_told;
    int paused;                 /* integration-state-changed INACTIVE/INVALID */
    int64_t change_first, change_last;  /* multi mode: the change log's range, kept after each fetch */
};

/* ---- construction ---- */

static void load_state(struct sync *s)
{
    for (int m = 0; m < MODEL_COUNT; m++) {
        struct store_endpoint ep;
        if (store_endpoint_get(s->st, m, &ep) < 0)
            continue;
        s->ms[m].full_at = ep.full_at;
        json_t *j = ep.status_json ? json_loads(ep.status_json, 0, NULL) : NULL;
        for (int kind = 0; kind < 2 && j; kind++) {
            json_t *r = json_object_get(j, kind ? "last_full" : "last_delta");
            struct run_stat *rs = &s->ms[m].last[kind];
            const char *v;
            if ((v = json_string_value(json_object_get(r, "started_at"))))
                snprintf(rs->started_at, sizeof rs->started_at, "%s", v);
            if ((v = json_string_value(json_object_get(r, "finished_at"))))
                snprintf(rs->finished_at, sizeof rs->finished_at, "%s", v);
            if ((v = json_string_value(json_object_get(r, "result"))))
                snprintf(rs->result, sizeof rs->result, "%s", v);
            rs->fetched = (long)json_integer_value(json_object_get(r, "fetched"));
            rs->changed = (long)json_integer_value(json_object_get(r, "changed"));
            rs->skipped = (long)json_integer_value(json_object_get(r, "skipped"));
        }
        if (j) {
            const char *e = json_string_value(json_object_get(j, "last_error"));
            if (e)
                snprintf(s->ms[m].last_error, sizeof s->ms[m].last_error, "%s", e);
            s->ms[m].drift = (long)json_integer_value(json_object_get(j, "drift"));
        }
        if (s->o->multi)
            s->ms[m].records = store_record_count(s->st, m);
        json_decref(j);
        store_endpoint_free(&ep);
    }
    if (s->o->multi)
        store_change_range(s->st, &s->change_first, &s->change_last);
}

/* With s->lock held, or before any thread exists. */
static void set_disabled(struct sync *s, const char *why)
{
    snprintf(s->disabled, sizeof s->disabled, "%s", why);
    snprintf(s->state, sizeof s->state, "error");
    for (int m = 0; m < MODEL_COUNT; m++)
        snprintf(s->ms[m].last_error, sizeof s->ms[m].last_error, "%s", why);
}

static json_t *model_json(struct sync *s, int m, const char *watermark, long records);

/* GET /metrics: in multi mode from memory (sync_summary's reasons), with the
 * fields of .status that the metrics read. */
static void *status_source(void *ctx)
{
    struct sync *s = ctx;
    if (!s->o->multi)
        return sync_status(s);
    json_t *eps = json_object();
    pthread_mutex_lock(&s->lock);
    for (int m = 0; m < MODEL_COUNT; m++)
        if (s->o->models & (1u << m))
            json_object_set_new(eps, models_table[m].dir, model_json(s, m, NULL, s->ms[m].records));
    json_t *j = json_pack("{so s{sI sI}}", "endpoints", eps, "changes", "first_seq",
                          (json_int_t)s->change_first, "last_seq", (json_int_t)s->change_last);
    pthread_mutex_unlock(&s->lock);
    return j;
}

struct sync *sync_new(struct store *st, struct kombo *k,
                      const struct options *o)
{
    struct sync *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    s->st = st;
    s->k = k;
    s->o = o;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->done, NULL);
    snprintf(s->state, sizeof s->state, "%s", o->offline ? "offline" : "ready");
    /* A cache created only by the first batch (store_open_lazy) holds nothing yet. */
    char *disabled = NULL;
    if (store_opened(st)) {
        load_state(s);
        disabled = store_meta_get(st, "disabled");
    }
    if (disabled) {
        set_disabled(s, disabled);
        free(disabled);
    }
    if (k)
        kombo_set_cancel(k, &s->stop);
    metrics_set_multi(o->multi);    /* GET /metrics: the figures of .status, per integration */
    metrics_add_source(o->integration, status_source, s);
    return s;
}

void sync_free(struct sync *s)
{
    if (!s)
        return;
    metrics_remove_source(s);
    sync_stop(s);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->done);
    free(s->integration_deleted);
    free(s->integration_state);
    free(s);
}

void sync_set_listener(struct sync *s, sync_changed_fn fn, void *ctx)
{
    s->listener = fn;
    s->listener_ctx = ctx;
}

unsigned sync_models_without_snapshot(struct sync *s)
{
    unsigned mask = 0;
    pthread_mutex_lock(&s->lock);
    for (int m = 0; m < MODEL_COUNT; m++)
        if ((s->o->models & (1u << m)) && s->ms[m].full_at == 0)
            mask |= 1u << m;
    pthread_mutex_unlock(&s->lock);
    return mask;
}

static void status_persist(struct sync *s, int m);

/* The sync listener as the fetch's callback. */
static void changed(void *ctx, unsigned dir, uint64_t node, const char *name, int removed)
{
    struct sync *s = ctx;
    if (s->listener)
        s->listener(s->listener_ctx, dir, node, name, removed);
}

/* Bookkeeping around one fetch_run: generation, watermark, status, log. */
static int fetch_model(struct sync *s, const struct model *m, enum sync_kind kind)
{
    pthread_mutex_lock(&s->lock);
    int disabled = s->disabled[0] != '\0' || s->paused;
    pthread_mutex_unlock(&s->lock);
    if (disabled)
        return -1;
    struct store_endpoint ep;
    if (store_endpoint_get(s->st, m->index, &ep) < 0)
        return -1;
    int64_t wm = clock_parse(ep.watermark);
    if (kind == SYNC_DELTA && wm < 0)
        kind = SYNC_FULL;   /* nothing to be relative to */

    int64_t start = clock_now_ns();
    char started[CLOCK_ISO_LEN], since[CLOCK_ISO_LEN];
    clock_format(start, started, sizeof started);
    clock_format(wm - (int64_t)s->o->overlap * 1000000000, since, sizeof since);

    pthread_mutex_lock(&s->lock);
    struct run_stat *rs = &s->ms[m->index].last[kind];
    memset(rs, 0, sizeof *rs);
    snprintf(rs->started_at, sizeof rs->started_at, "%s", started);
    snprintf(rs->result, sizeof rs->result, "running");
    pthread_mutex_unlock(&s->lock);

    /* Before the mount (no listener yet) the kernel holds nothing to invalidate. */
    struct fetch_job job = { s->st, s->k, m, kind, kind == SYNC_DELTA ? since : NULL,
                             kind == SYNC_FULL ? ep.gen + 1 : ep.gen,
                             s->listener ? changed : NULL, s, s->o->compress };
    struct fetch_result fr = { 0 };
    int rc = kind == SYNC_FULL ? store_endpoint_set_gen(s->st, m->index, job.gen) : 0;
    if (rc == 0)
        rc = fetch_run(&job, &fr);
    else
        fr.store_failed = 1;
    /* The watermark is the start of a complete fetch: committed only now. */
    if (rc == 0)
        rc = store_endpoint_set_watermark(s->st, m->index, started);
    if (rc == 0 && kind == SYNC_FULL)
        rc = store_endpoint_set_full_at(s->st, m->index, clock_now_ns() / 1000000000);
    if (rc < 0 && fr.api == KOMBO_OK)
        fr.store_failed = 1;
    int ok = rc == 0;
    metrics_fetch(s->o->integration, m->path, kind == SYNC_FULL,
                  ok ? "ok" : fr.store_failed ? "cache-error" : kombo_result_str(fr.api),
                  (double)(clock_now_ns() - start) / 1e9);
    /* The root's .status counts from memory (sync_summary); a delta that
     * changed nothing leaves the count as it is. */
    if (ok && s->o->changes_retention > 0)
        fetch_prune_changes(s->st, clock_now_ns() - (int64_t)s->o->changes_retention * 1000000000,
                            changed, s);
    long records = -1;
    int64_t ch_first = 0, ch_last = 0;
    if (s->o->multi && (fr.changed > 0 || kind == SYNC_FULL)) {
        records = store_record_count(s->st, m->index);
        store_change_range(s->st, &ch_first, &ch_last);
    }

    pthread_mutex_lock(&s->lock);
    struct model_state *ms = &s->ms[m->index];
    clock_format(clock_now_ns(), rs->finished_at, sizeof rs->finished_at);
    snprintf(rs->result, sizeof rs->result, "%s", ok ? "ok" : "error");
    rs->fetched = fr.fetched;
    rs->changed = fr.changed;
    rs->skipped = fr.skipped;
    if (records >= 0) {
        ms->records = records;
        s->change_first = ch_first;
        s->change_last = ch_last;
    }
    if (ok) {
        ms->last_error[0] = '\0';
        if (kind == SYNC_FULL) {
            /* The first snapshot corrects nothing: it is where the mirror starts. */
            ms->drift = ms->full_at > 0 ? fr.changed : 0;
            ms->full_at = clock_now_ns() / 1000000000;
        }
    } else if (fr.store_failed) {
        snprintf(ms->last_error, sizeof ms->last_error, "cache: could not write the cache");
    } else {
        snprintf(ms->last_error, sizeof ms->last_error, "%s: %s", kombo_result_str(fr.api),
                 fr.err.message);
        if (fr.api == KOMBO_AUTH)
            snprintf(s->state, sizeof s->state, "error");
    }
    if (ok && strcmp(s->state, "error") == 0)
        snprintf(s->state, sizeof s->state, "ready");
    pthread_mutex_unlock(&s->lock);
    status_persist(s, m->index);

    const char *what = kind == SYNC_FULL ? "full" : "delta";
    /* Multi mode: every line names its integration. */
    const char *who = s->o->multi ? s->o->integration : "", *sep = s->o->multi ? " " : "";
    if (ok) {
        double secs = (double)(clock_now_ns() - start) / 1e9;
        log_info("%s%s%s: %s fetch: %ld fetched, %ld changed, %ld skipped (%.2f s)", who, sep,
                 m->dir, what, fr.fetched, fr.changed, fr.skipped, secs);
        log_status("%s%s%s: %s fetch at %s: %ld fetched, %ld changed (%.2f s)", who, sep, m->dir,
                   what, started, fr.fetched, fr.changed, secs);
    } else {
        log_warnx("%s%s%s: %s fetch failed: %s", who, sep, m->dir, what, ms->last_error);
    }
    store_endpoint_free(&ep);
    return ok ? 0 : -1;
}

int sync_run_now(struct sync *s, unsigned mask, enum sync_kind kind)
{
    int rc = 0;
    for (int m = 0; m < MODEL_COUNT; m++)
        if ((mask & s->o->models & (1u << m)) && !atomic_load(&s->stop))
            if (fetch_model(s, &models_table[m], kind) < 0)
                rc = -1;
    return rc;
}

/* ---- status ---- */

static json_t *run_json(const struct run_stat *r)
{
    if (!r->started_at[0])
        return json_null();
    return json_pack("{ss* ss* ss si si si}", "started_at", r->started_at,
                     "finished_at", r->finished_at[0] ? r->finished_at : NULL,
                     "result", r->result, "fetched", (json_int_t)r->fetched,
                     "changed", (json_int_t)r->changed, "skipped", (json_int_t)r->skipped);
}

static int64_t full_due(const struct sync *s, const struct model_state *ms);

/* Called with s->lock held. */
static json_t *model_json(struct sync *s, int m, const char *watermark, long records)
{
    const struct model_state *ms = &s->ms[m];
    json_t *j = json_object();
    char next[32] = "";
    if (records >= 0)
        json_object_set_new(j, "records", json_integer(records));
    json_object_set_new(j, "watermark", watermark ? json_string(watermark) : json_null());
    json_object_set_new(j, "last_delta", run_json(&ms->last[SYNC_DELTA]));
    json_object_set_new(j, "last_full", run_json(&ms->last[SYNC_FULL]));
    json_object_set_new(j, "last_error", ms->last_error[0] ? json_string(ms->last_error) : json_null());
    if (s->o->full_sync_interval > 0 && ms->full_at > 0)
        clock_format(full_due(s, ms) * 1000000000, next, sizeof next);
    json_object_set_new(j, "next_full_at", next[0] ? json_string(next) : json_null());
    json_object_set_new(j, "drift", json_integer(ms->drift));
    return j;
}

static void status_persist(struct sync *s, int m)
{
    pthread_mutex_lock(&s->lock);
    json_t *j = model_json(s, m, NULL, -1);
    pthread_mutex_unlock(&s->lock);
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (text)
        store_endpoint_set_status(s->st, m, text);
    free(text);
}

void *sync_status(struct sync *s)
{
    /* Read-only facts come through this thread's reader; the watermark is
     * read there too so .status never touches the writer's connection. */
    struct store_reader *r = store_reader(s->st);
    json_t *eps = json_object();
    long total_drift = 0;
    for (int m = 0; m < MODEL_COUNT; m++) {
        if (!(s->o->models & (1u << m)))
            continue;
        long n = r ? store_read_count(r, m) : -1;
        char *wm = r ? store_read_watermark(r, m) : NULL;
        pthread_mutex_lock(&s->lock);
        json_object_set_new(eps, models_table[m].dir, model_json(s, m, wm, n < 0 ? 0 : n));
        total_drift += s->ms[m].drift;
        pthread_mutex_unlock(&s->lock);
        free(wm);
    }
    int64_t first = 0, last = 0;
    if (r)
        store_read_change_range(r, &first, &last);
    pthread_mutex_lock(&s->lock);
    json_t *j = json_pack("{ss ss ss ss so s{sI sI} sI}", "version", KOMBOFS_VERSION,
                          "integration", s->o->integration, "cache", store_path(s->st),
                          "state", s->state, "endpoints", eps,
                          "changes", "first_seq", (json_int_t)first, "last_seq", (json_int_t)last,
                          "drift", (json_int_t)total_drift);
    if (j && s->integration_deleted)
        json_object_set_new(j, "integration_deleted", json_loads(s->integration_deleted, 0, NULL));
    if (j && s->integration_state)
        json_object_set_new(j, "integration_state", json_loads(s->integration_state, 0, NULL));
    sync_status_extra_fn extra = s->extra;
    void *extra_ctx = s->extra_ctx;
    pthread_mutex_unlock(&s->lock);
    json_t *wh = extra ? extra(extra_ctx) : NULL;
    if (j)
        json_object_set_new(j, "webhooks", wh ? wh : json_pack("{si si si si sn}",
                            "received", 0, "accepted", 0, "rejected", 0, "duplicates", 0, "last_at"));
    return j;
}

/* The latest of the endpoints' runs of one kind (with s->lock held). */
static json_t *latest_run(const struct sync *s, enum sync_kind kind)
{
    const struct run_stat *best = NULL;
    for (int m = 0; m < MODEL_COUNT; m++) {
        const struct run_stat *r = &s->ms[m].last[kind];
        if (!(s->o->models & (1u << m)) || !r->started_at[0])
            continue;
        if (!best || strcmp(r->finished_at, best->finished_at) > 0)
            best = r;
    }
    return best ? run_json(best) : json_null();
}

void *sync_summary(struct sync *s)
{
    pthread_mutex_lock(&s->lock);
    long records = 0;
    const char *err = NULL;
    for (int m = 0; m < MODEL_COUNT; m++) {
        if (!(s->o->models & (1u << m)))
            continue;
        records += s->ms[m].records;
        if (!err && s->ms[m].last_error[0])
            err = s->ms[m].last_error;
    }
    json_t *j = json_pack("{ss sI so so ss?}", "state", s->state, "records", (json_int_t)records,
                          "last_delta", latest_run(s, SYNC_DELTA), "last_full",
                          latest_run(s, SYNC_FULL), "last_error", err);
    pthread_mutex_unlock(&s->lock);
    return j;
}

char *sync_render(void *json)
{
    json_t *j = json;
    char *text = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
    json_decref(j);
    if (!text)
        return NULL;
    size_t n = strlen(text);
    char *out = realloc(text, n + 2);
    if (!out)
        abort();
    out[n] = '\n';
    out[n + 1] = '\0';
    return out;
}

void sync_set_state(struct sync *s, const char *state)
{
    pthread_mutex_lock(&s->lock);
    snprintf(s->state, sizeof s->state, "%s", state);
    pthread_mutex_unlock(&s->lock);
}

void sync_disable(struct sync *s, const char *why)
{
    pthread_mutex_lock(&s->lock);
    set_disabled(s, why);
    pthread_mutex_unlock(&s->lock);
    log_warnx("syncing stopped: %s", why);
}

void sync_set_status_extra(struct sync *s, sync_status_extra_fn fn, void *ctx)
{
    pthread_mutex_lock(&s->lock);
    s->extra = fn;
    s->extra_ctx = ctx;
    pthread_mutex_unlock(&s->lock);
}

void sync_set_integration_event(struct sync *s, const char *key, const char *json)
{
    pthread_mutex_lock(&s->lock);
    char **slot = strcmp(key, "integration_deleted") == 0 ? &s->integration_deleted
                                                          : &s->integration_state;
    free(*slot);
    *slot = strdup(json);
    pthread_mutex_unlock(&s->lock);
}

/* ---- the queue and the worker ---- */

static void kick(struct sync *s);

int sync_request(struct sync *s, unsigned mask, enum sync_kind kind, int wait)
{
    uint64_t ticket[MODEL_COUNT] = { 0 };
    mask &= s->o->models;
    pthread_mutex_lock(&s->lock);
    for (int m = 0; m < MODEL_COUNT; m++)
        if (mask & (1u << m))
            ticket[m] = ++s->ms[m].requested[kind];
    s->pending[kind] |= mask;
    pthread_mutex_unlock(&s->lock);
    kick(s);
    pthread_mutex_lock(&s->lock);
    int failed = 0;
    if (wait) {
        for (int m = 0; m < MODEL_COUNT; m++) {
            if (!(mask & (1u << m)))
                continue;
            while (s->ms[m].finished[kind] < ticket[m] && s->running)
                pthread_cond_wait(&s->done, &s->lock);
            if (s->ms[m].finished[kind] < ticket[m] || s->ms[m].failed[kind])
                failed = 1;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return failed ? -1 : 0;
}

/* Schedule: a full fetch when the last is older than the interval, a delta
 * when the poll interval has passed. Called with the lock held; returns the
 * unix time of the next due job (0 if none). */
/*
 * Multi mode spreads the periodic full fetches of many integrations: each one
 * is due up to a quarter of the interval early, by an amount fixed by its id
 * (their first full fetches all ended at about the same time), and after a
 * start one that is overdue waits up to 10 minutes, also by its id, so that a
 * restart after a long stop does not start them all at once (the pool would
 * queue them, but their results would all be as old as each other again).
 */
static uint32_t id_hash(const char *id)
{
    uint32_t h = 2166136261u;       /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)id; p && *p; p++)
        h = (h ^ *p) * 16777619u;
    return h;
}

static int64_t full_due(const struct sync *s, const struct model_state *ms)
{
    int64_t interval = s->o->full_sync_interval;
    if (interval <= 0)
        return 0;
    int64_t due = ms->full_at + interval;
    if (!s->o->multi || ms->full_at == 0)
        return due;
    uint32_t h = id_hash(s->o->integration);
    due -= (int64_t)(h % 1000) * (interval / 4) / 1000;
    uint32_t spread = (uint32_t)(interval / 4 < 600 ? interval / 4 : 600) + 1;
    int64_t earliest = s->started_s + (int64_t)((h >> 10) % spread);
    return due < earliest ? earliest : due;
}

static int64_t schedule(struct sync *s, int64_t now)
{
    int64_t next = 0;
    for (int m = 0; m < MODEL_COUNT; m++) {
        if (!(s->o->models & (1u << m)))
            continue;
        struct model_state *ms = &s->ms[m];
        const int64_t due[2] = {
            s->o->poll_interval > 0 ? ms->last_delta_at + s->o->poll_interval : 0,
            full_due(s, ms),
        };
        for (int kind = 0; kind < 2; kind++) {
            if (!due[kind])
                continue;
            if (due[kind] <= now) {
                s->pending[kind] |= 1u << m;
                ms->requested[kind]++;
            } else if (!next || due[kind] < next) {
                next = due[kind];
            }
        }
    }
    return next;
}

/* After a fetch: the first time every mirrored model has a snapshot. */
static void tell_ready(struct sync *s)
{
    pthread_mutex_lock(&s->lock);
    void (*fn)(void *) = s->ready_told ? NULL : s->on_ready;
    void *ctx = s->ready_ctx;
    pthread_mutex_unlock(&s->lock);
    if (!fn || sync_models_without_snapshot(s) != 0)
        return;
    pthread_mutex_lock(&s->lock);
    s->ready_told = 1;
    pthread_mutex_unlock(&s->lock);
    fn(ctx);
}

void sync_set_ready(struct sync *s, void (*fn)(void *ctx), void *ctx)
{
    pthread_mutex_lock(&s->lock);
    s->on_ready = fn;
    s->ready_ctx = ctx;
    pthread_mutex_unlock(&s->lock);
}

void sync_pause(struct sync *s, int paused)
{
    pthread_mutex_lock(&s->lock);
    s->paused = paused;
    if (paused)
        snprintf(s->state, sizeof s->state, "paused");
    else if (strcmp(s->state, "paused") == 0)
        snprintf(s->state, sizeof s->state, "ready");
    pthread_mutex_unlock(&s->lock);
}

void sync_set_prelude(struct sync *s, void (*fn)(void *ctx), void *ctx)
{
    pthread_mutex_lock(&s->lock);
    s->prelude = fn;
    s->prelude_ctx = ctx;
    pthread_mutex_unlock(&s->lock);
}

/*
 * The pool: a few worker threads shared by every engine (multi mode: every
 * integration; single mode: a pool of one, its own). A worker takes the
 * engine with pending work that ran least recently (round robin, so one
 * integration's long fetch never starves the others beyond the pool's size),
 * runs one batch of it (one kind, every model it asked for), and looks
 * again. An engine is never run by two workers at once (busy). The schedule
 * (periodic full fetch, poll) of every engine is looked at on each turn; an
 * idle pool sleeps until the earliest due time. Lock order: pool, then engine.
 */
struct sync_pool {
    pthread_mutex_t lock;
    pthread_cond_t wake;        /* work was queued, or stop */
    pthread_cond_t idle;        /* an engine's batch ended */
    struct sync *first;         /* registered engines */
    pthread_t *threads;
    int nthreads;
    int stop;
    uint64_t clock;             /* turns, for round robin */
};

/* One batch of s's pending work, on a pool worker. */
static void run_once(struct sync *s)
{
    pthread_mutex_lock(&s->lock);
    void (*prelude)(void *) = s->prelude;
    void *prelude_ctx = s->prelude_ctx;
    s->prelude = NULL;
    pthread_mutex_unlock(&s->lock);
    if (prelude)
        prelude(prelude_ctx);

    pthread_mutex_lock(&s->lock);
    if (atomic_load(&s->stop) || (!s->pending[SYNC_DELTA] && !s->pending[SYNC_FULL])) {
        pthread_mutex_unlock(&s->lock);
        if (s->o->multi)
            kombo_release(s->k);    /* the prelude may have used it */
        return;
    }
    pthread_mutex_unlock(&s->lock);
    /* Multi mode: the writing connection is open only during a batch. */
    if (s->o->multi && store_resume(s->st) < 0) {
        pthread_mutex_lock(&s->lock);
        for (int m = 0; m < MODEL_COUNT; m++)
            snprintf(s->ms[m].last_error, sizeof s->ms[m].last_error, "cache: cannot open %s",
                     store_path(s->st));
        snprintf(s->state, sizeof s->state, "error");
        pthread_mutex_unlock(&s->lock);
        return;
    }
    pthread_mutex_lock(&s->lock);
    /* Full before delta: a full fetch also answers a delta request. */
    enum sync_kind kind = s->pending[SYNC_FULL] ? SYNC_FULL : SYNC_DELTA;
    unsigned mask = s->pending[kind];
    uint64_t taken[MODEL_COUNT], taken_delta[MODEL_COUNT];
    s->pending[kind] = 0;
    if (kind == SYNC_FULL)
        s->pending[SYNC_DELTA] &= ~mask;
    for (int m = 0; m < MODEL_COUNT; m++) {
        taken[m] = s->ms[m].requested[kind];
        taken_delta[m] = s->ms[m].requested[SYNC_DELTA];
    }
    pthread_mutex_unlock(&s->lock);

    for (int m = 0; m < MODEL_COUNT && !atomic_load(&s->stop); m++) {
        if (!(mask & (1u << m)))
            continue;
        int rc = fetch_model(s, &models_table[m], kind);
        pthread_mutex_lock(&s->lock);
        s->ms[m].finished[kind] = taken[m];
        s->ms[m].failed[kind] = rc < 0;
        if (kind == SYNC_DELTA || rc == 0)
            s->ms[m].last_delta_at = clock_now_ns() / 1000000000;
        if (kind == SYNC_FULL) {
            s->ms[m].finished[SYNC_DELTA] = taken_delta[m];
            s->ms[m].failed[SYNC_DELTA] = rc < 0;
        }
        pthread_cond_broadcast(&s->done);
        pthread_mutex_unlock(&s->lock);
    }
    if (s->o->multi) {
        store_suspend(s->st);
        kombo_release(s->k);
    }
    tell_ready(s);
}

static void *pool_worker(void *arg)
{
    struct sync_pool *p = arg;
    pthread_mutex_lock(&p->lock);
    while (!p->stop) {
        int64_t now = clock_now_ns() / 1000000000, next = 0;
        struct sync *pick = NULL;
        for (struct sync *s = p->first; s; s = s->pool_next) {
            if (s->busy)
                continue;
            pthread_mutex_lock(&s->lock);
            int stopped = atomic_load(&s->stop);
            int64_t due = stopped ? 0 : schedule(s, now);
            int work = !stopped && (s->pending[SYNC_DELTA] || s->pending[SYNC_FULL] || s->prelude);
            pthread_mutex_unlock(&s->lock);
            if (due && (!next || due < next))
                next = due;
            if (work && (!pick || s->last_turn < pick->last_turn))
                pick = s;
        }
        if (!pick) {
            if (next) {
                struct timespec ts = { (time_t)next, 0 };
                pthread_cond_timedwait(&p->wake, &p->lock, &ts);
            } else {
                pthread_cond_wait(&p->wake, &p->lock);
            }
            continue;
        }
        pick->busy = 1;
        pick->last_turn = ++p->clock;
        pthread_mutex_unlock(&p->lock);
        run_once(pick);
        pthread_mutex_lock(&p->lock);
        pick->busy = 0;
        pthread_cond_broadcast(&p->idle);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

struct sync_pool *sync_pool_new(int workers)
{
    struct sync_pool *p = calloc(1, sizeof *p);
    if (!p || !(p->threads = calloc((size_t)(workers > 0 ? workers : 1), sizeof *p->threads)))
        abort();
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->idle, NULL);
    for (int i = 0; i < (workers > 0 ? workers : 1); i++) {
        if (pthread_create(&p->threads[i], NULL, pool_worker, p) != 0)
            break;
        p->nthreads++;
    }
    if (p->nthreads == 0) {
        sync_pool_free(p);
        return NULL;
    }
    return p;
}

void sync_pool_free(struct sync_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stop = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->idle);
    free(p->threads);
    free(p);
}

void sync_set_pool(struct sync *s, struct sync_pool *p)
{
    s->pool = p;
}

/* Work was queued for s: the pool looks again. */
static void kick(struct sync *s)
{
    struct sync_pool *p = s->pool;
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
}

int sync_start(struct sync *s)
{
    if (!s->pool && !(s->pool = s->own_pool = sync_pool_new(1)))
        return -1;
    pthread_mutex_lock(&s->lock);
    int64_t now = clock_now_ns() / 1000000000;
    for (int m = 0; m < MODEL_COUNT; m++)
        s->ms[m].last_delta_at = now;
    s->started_s = now;
    s->running = 1;
    atomic_store(&s->stop, 0);      /* a mirror removed and added again starts anew */
    pthread_mutex_unlock(&s->lock);
    struct sync_pool *p = s->pool;
    pthread_mutex_lock(&p->lock);
    s->pool_next = p->first;
    p->first = s;
    s->registered = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    return 0;
}

void sync_cancel(struct sync *s)
{
    atomic_store(&s->stop, 1);
}

void sync_stop(struct sync *s)
{
    atomic_store(&s->stop, 1);      /* also ends a fetch in progress (kombo's cancel flag) */
    struct sync_pool *p = s->pool;
    if (p && s->registered) {
        pthread_mutex_lock(&p->lock);
        struct sync **q = &p->first;
        while (*q && *q != s)
            q = &(*q)->pool_next;
        if (*q)
            *q = s->pool_next;
        s->registered = 0;
        while (s->busy)
            pthread_cond_wait(&p->idle, &p->lock);
        pthread_mutex_unlock(&p->lock);
    }
    pthread_mutex_lock(&s->lock);
    s->running = 0;
    pthread_cond_broadcast(&s->done);
    pthread_mutex_unlock(&s->lock);
    if (s->own_pool) {
        sync_pool_free(s->own_pool);
        s->own_pool = NULL;
        s->pool = NULL;
    }
}
