/*
 * sync.c — fetches, the change log, and the job queue.
 *
 * A fetch lists one endpoint page by page; each page is applied in one
 * transaction: every record is rendered (jtext_pretty), compared with the
 * stored file, and written with a change-log entry only if its content
 * differs. The watermark (the fetch's start time) is committed after the
 * last page; a full fetch then removes what it did not see.
 */
#include "sync.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "diff.h"
#include "fsname.h"
#include "log.h"
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
    pthread_cond_t wake;        /* worker: new work or stop */
    pthread_cond_t done;        /* waiters: a job finished */
    pthread_t thread;
    int thread_started;
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
};

/* ---- time ---- */

int64_t sync_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void sync_format_time(int64_t ns, char *out, size_t n)
{
    time_t sec = (time_t)(ns / 1000000000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(ns % 1000000000 / 1000000));
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" -> ns; -1 if malformed. */
static int64_t parse_time(const char *s)
{
    struct tm tm = { 0 };
    int ms = 0;
    const char *rest = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (!rest)
        return -1;
    if (*rest == '.') {
        int digits = 0;
        for (rest++; *rest >= '0' && *rest <= '9'; rest++)
            if (digits++ < 3)
                ms = ms * 10 + (*rest - '0');
        while (digits++ < 3)
            ms *= 10;
    }
    return (int64_t)timegm(&tm) * 1000000000 + (int64_t)ms * 1000000;
}

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
        json_decref(j);
        store_endpoint_free(&ep);
    }
}

/* With s->lock held, or before any thread exists. */
static void set_disabled(struct sync *s, const char *why)
{
    snprintf(s->disabled, sizeof s->disabled, "%s", why);
    snprintf(s->state, sizeof s->state, "error");
    for (int m = 0; m < MODEL_COUNT; m++)
        snprintf(s->ms[m].last_error, sizeof s->ms[m].last_error, "%s", why);
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
    pthread_cond_init(&s->wake, NULL);
    pthread_cond_init(&s->done, NULL);
    snprintf(s->state, sizeof s->state, "%s", o->offline ? "offline" : "ready");
    load_state(s);
    char *disabled = store_meta_get(st, "disabled");
    if (disabled) {
        set_disabled(s, disabled);
        free(disabled);
    }
    if (k)
        kombo_set_cancel(k, &s->stop);
    return s;
}

void sync_free(struct sync *s)
{
    if (!s)
        return;
    sync_stop(s);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->wake);
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

/* ---- one fetch ---- */

struct touched {
    int model;          /* -1: changes/ */
    uint64_t ino;
    char *name;
    int removed;
};

struct fetch {
    struct sync *s;
    const struct model *m;
    enum sync_kind kind;
    int64_t gen;
    int64_t page_ns;            /* the time of the page's transaction */
    long fetched, changed, skipped;
    long pages;
    int64_t progress_ns;        /* when progress was last reported */
    struct touched *touched;    /* files changed by the current transaction */
    size_t ntouched, captouched;
    struct buf body;            /* scratch: rendered record */
    struct buf name;            /* scratch: file name */
};

static void touch(struct fetch *f, int model, uint64_t ino, const char *name,
                  int removed)
{
    if (f->ntouched == f->captouched) {
        f->captouched = f->captouched ? f->captouched * 2 : 64;
        void *p = realloc(f->touched, f->captouched * sizeof *f->touched);
        if (!p)
            abort();
        f->touched = p;
    }
    f->touched[f->ntouched++] = (struct touched){ model, ino, strdup(name), removed };
}

/* Tell the listener about a committed transaction, or forget a rolled back one. */
static void flush_touched(struct fetch *f, int committed)
{
    for (size_t i = 0; i < f->ntouched; i++) {
        struct touched *t = &f->touched[i];
        if (committed && f->s->listener)
            f->s->listener(f->s->listener_ctx, t->model, t->ino, t->name, t->removed);
        free(t->name);
    }
    f->ntouched = 0;
}

/*
 * A change-log entry is written as compact JSON text and re-indented by
 * jtext_pretty, like the records: the record of a "created" entry is copied
 * byte for byte from the API's response, without a jansson round trip.
 */
struct change {
    struct fetch *f;
    const char *id_json;        /* the id as a JSON string token */
    size_t id_len;
    const char *op;
    int direct;
    const char *nested;         /* compact JSON text of the array */
    const struct buf *patch;    /* compact JSON text of the array */
};

static char *render_change(void *ctx, int64_t seq)
{
    struct change *c = ctx;
    struct buf text = BUF_INIT, out = BUF_INIT;
    char at[32];
    sync_format_time(c->f->page_ns, at, sizeof at);
    buf_printf(&text, "{\"seq\":%lld,\"at\":\"%s\",\"model\":\"%s\",\"id\":", (long long)seq,
               at, c->f->m->dir);
    buf_add(&text, c->id_json, c->id_len);
    buf_printf(&text, ",\"op\":\"%s\",\"sync\":\"%s\",\"direct\":%s,\"nested\":%s,\"patch\":",
               c->op, c->f->kind == SYNC_FULL ? "full" : "delta", c->direct ? "true" : "false",
               c->nested);
    buf_add(&text, c->patch->data, c->patch->len);
    buf_addc(&text, '}');
    int rc = jtext_pretty(text.data, text.len, &out);
    buf_free(&text);
    if (rc < 0) {
        buf_free(&out);
        return NULL;
    }
    return buf_detach(&out);
}

static int log_change(struct fetch *f, const char *id_json, size_t id_len,
                      const char *op, int direct, const char *nested,
                      const struct buf *patch)
{
    struct change c = { f, id_json, id_len, op, direct, nested, patch };
    int64_t seq = store_change_add(f->s->st, f->page_ns, render_change, &c);
    if (seq < 0)
        return -1;
    char name[32];
    snprintf(name, sizeof name, "%012lld.json", (long long)seq);
    touch(f, -1, STORE_INO_CHANGE_BASE + (uint64_t)seq, name, 0);
    f->changed++;
    return 0;
}

/* Parse one record. jansson refuses integers beyond 64 bits; such a record
 * is parsed again with every integer as a real, for its diffs only: the
 * file keeps the number exactly as sent. */
static json_t *parse_record(const char *text, size_t len)
{
    json_t *j = json_loadb(text, len, 0, NULL);
    return j ? j : json_loadb(text, len, JSON_DECODE_INT_AS_REAL, NULL);
}

static const char *str_field(json_t *rec, const char *key)
{
    return json_string_value(json_object_get(rec, key));
}

static void append_json(struct buf *b, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
    if (!s)
        abort();
    buf_adds(b, s);
    free(s);
}

static int record_created(struct fetch *f, const char *id_json, size_t id_len,
                          const char *text, size_t len)
{
    struct buf patch = BUF_INIT;
    buf_adds(&patch, "[{\"op\":\"add\",\"path\":\"\",\"value\":");
    buf_add(&patch, text, len);
    buf_adds(&patch, "}]");
    int rc = log_change(f, id_json, id_len, "created", 1, "[]", &patch);
    buf_free(&patch);
    return rc;
}

/* id_json may be NULL: the id is then encoded from `id`. */
static int record_deleted(struct fetch *f, const char *id, const char *id_json,
                          size_t id_len, uint64_t ino, uint64_t node, const char *name,
                          int direct)
{
    struct buf patch = BUF_INIT, idbuf = BUF_INIT;
    if (store_record_delete(f->s->st, ino) < 0)
        return -1;
    touch(f, f->m->index, node, name, 1);
    if (!id_json) {
        json_t *j = json_string(id);
        append_json(&idbuf, j);
        json_decref(j);
        id_json = idbuf.data;
        id_len = idbuf.len;
    }
    buf_adds(&patch, "[]");
    int rc = log_change(f, id_json, id_len, "deleted", direct, "[]", &patch);
    buf_free(&patch);
    buf_free(&idbuf);
    return rc;
}

static int record_updated(struct fetch *f, const char *id_json, size_t id_len,
                          const char *text, size_t len, const struct store_record *old)
{
    json_t *rec = parse_record(text, len);
    json_t *prev = parse_record(old->body, old->size);
    struct buf patch = BUF_INIT, nested = BUF_INIT;
    int rc = -1;
    if (!rec)
        goto out;
    if (prev) {
        const char *was = str_field(prev, "changed_at"), *now = str_field(rec, "changed_at");
        int direct = (was || now) && !(was && now && strcmp(was, now) == 0);
        json_t *n = diff_nested(prev, rec, f->m->nested);
        json_t *p = diff_patch(prev, rec);
        if (n && p) {
            append_json(&nested, n);
            append_json(&patch, p);
            rc = log_change(f, id_json, id_len, "updated", direct, nested.data, &patch);
        }
        json_decref(n);
        json_decref(p);
    } else {
        /* The stored file no longer parses (it always should): replace it whole. */
        buf_adds(&patch, "[{\"op\":\"replace\",\"path\":\"\",\"value\":");
        buf_add(&patch, text, len);
        buf_adds(&patch, "}]");
        rc = log_change(f, id_json, id_len, "updated", 1, "[]", &patch);
    }
out:
    json_decref(rec);
    json_decref(prev);
    buf_free(&patch);
    buf_free(&nested);
    return rc;
}

enum { F_ID, F_CHANGED_AT, F_REMOTE_ID, F_DELETED_AT, F_COUNT };

/* Apply one record of a page. Returns -1 only on a store error. The record's
 * own fields are read from its text; jansson parses it only when it changed. */
static int apply_record(struct fetch *f, const char *text, size_t len)
{
    struct jtext_field fl[F_COUNT] = { [F_ID] = { .key = "id" },
                                       [F_CHANGED_AT] = { .key = "changed_at" },
                                       [F_REMOTE_ID] = { .key = "remote_id" },
                                       [F_DELETED_AT] = { .key = "remote_deleted_at" } };
    struct store_record old = { 0 };
    int found = 0, rc = 0;

    f->fetched++;
    if (jtext_fields(text, len, fl, F_COUNT) < 0 || fl[F_ID].type != JTEXT_STRING ||
        fl[F_ID].len == 0) {
        f->skipped++;
        log_warnx("%s: skipped a record without a string id", f->m->dir);
        goto out;
    }
    const char *id = fl[F_ID].str;
    const char *id_json = text + fl[F_ID].raw.off;
    size_t id_len = fl[F_ID].raw.len;
    buf_reset(&f->name);
    fsname_escape(id, fl[F_ID].len, &f->name);
    buf_adds(&f->name, ".json");

    found = store_record_get(f->s->st, f->m->index, f->name.data, &old);
    if (found < 0) {
        found = 0;
        rc = -1;
        goto out;
    }
    if (fl[F_DELETED_AT].type == JTEXT_STRING || fl[F_DELETED_AT].type == JTEXT_OTHER) {
        if (found)
            rc = record_deleted(f, id, id_json, id_len, old.ino, old.node, f->name.data, 1);
        goto out;
    }
    buf_reset(&f->body);
    if (jtext_pretty(text, len, &f->body) < 0) {
        f->skipped++;
        log_warnx("%s: skipped a record that is not valid JSON", f->m->dir);
        goto out;
    }
    if (found && old.size == f->body.len && memcmp(old.body, f->body.data, f->body.len) == 0) {
        if (f->kind == SYNC_FULL)
            rc = store_record_touch(f->s->st, old.ino, f->gen);
        goto out;
    }
    const char *changed_at = fl[F_CHANGED_AT].str, *remote_id = fl[F_REMOTE_ID].str;
    if (found) {
        uint64_t node;
        rc = store_record_update(f->s->st, old.ino, f->body.data, f->body.len, changed_at,
                                 remote_id, f->page_ns, f->gen, &node);
        if (rc == 0) {
            touch(f, f->m->index, node, f->name.data, 0);
            rc = record_updated(f, id_json, id_len, text, len, &old);
        }
    } else {
        uint64_t ino = store_record_insert(f->s->st, f->m->index, id, f->name.data, f->body.data,
                                           f->body.len, changed_at, remote_id, f->page_ns, f->gen);
        if (!ino) {
            rc = -1;
            goto out;
        }
        touch(f, f->m->index, ino, f->name.data, 0);
        rc = record_created(f, id_json, id_len, text, len);
    }
out:
    if (found)
        store_record_free(&old);
    jtext_fields_free(fl, F_COUNT);
    return rc;
}

static int on_page(void *ctx, const char *body, const struct jtext_page *page)
{
    struct fetch *f = ctx;
    f->page_ns = sync_now_ns();
    if (store_begin(f->s->st) < 0)
        return -1;
    for (size_t i = 0; i < page->nresults; i++) {
        if (apply_record(f, body + page->results[i].off, page->results[i].len) < 0) {
            store_rollback(f->s->st);
            flush_touched(f, 0);
            return -1;
        }
    }
    if (store_commit(f->s->st) < 0) {
        store_rollback(f->s->st);
        flush_touched(f, 0);
        return -1;
    }
    flush_touched(f, 1);
    /* A long fetch reports progress every 5 s (stderr in the foreground, journal, STATUS=). */
    f->pages++;
    if (f->page_ns - f->progress_ns >= 5000000000LL) {
        if (f->progress_ns) {
            log_info("%s: %s fetch: %ld records so far (%ld pages)", f->m->dir,
                     f->kind == SYNC_FULL ? "full" : "delta", f->fetched, f->pages);
            log_status("%s: %s fetch: %ld records so far", f->m->dir,
                       f->kind == SYNC_FULL ? "full" : "delta", f->fetched);
        }
        f->progress_ns = f->page_ns;
    }
    return 0;
}

static int sweep_one(void *ctx, uint64_t ino, uint64_t node, const char *id,
                     const char *name)
{
    return record_deleted(ctx, id, NULL, 0, ino, node, name, 0);
}

/* After a complete full listing: remove what it did not return, in batches. */
static int sweep(struct fetch *f)
{
    for (;;) {
        f->page_ns = sync_now_ns();
        if (store_begin(f->s->st) < 0)
            return -1;
        int n = store_records_stale(f->s->st, f->m->index, f->gen, 500, sweep_one, f);
        if (n < 0 || store_commit(f->s->st) < 0) {
            store_rollback(f->s->st);
            flush_touched(f, 0);
            return -1;
        }
        flush_touched(f, 1);
        if (n < 500)
            return 0;
    }
}

static void status_persist(struct sync *s, int m);

static void pruned(void *ctx, int64_t seq)
{
    char name[32];
    snprintf(name, sizeof name, "%012lld.json", (long long)seq);
    touch(ctx, -1, STORE_INO_CHANGE_BASE + (uint64_t)seq, name, 1);
}

/* Retention: remove change-log entries older than --changes-retention. */
static void prune_changes(struct fetch *f)
{
    if (f->s->o->changes_retention <= 0)
        return;
    int64_t before = sync_now_ns() - (int64_t)f->s->o->changes_retention * 1000000000;
    if (store_begin(f->s->st) < 0)
        return;
    if (store_changes_prune(f->s->st, before, pruned, f) < 0 || store_commit(f->s->st) < 0) {
        store_rollback(f->s->st);
        flush_touched(f, 0);
        return;
    }
    flush_touched(f, 1);
}

/* The query of a fetch; the delta's updated_after is watermark - overlap. */
static void build_query(struct sync *s, const struct store_endpoint *ep,
                        enum sync_kind kind, struct buf *q)
{
    buf_adds(q, "page_size=250");
    if (kind == SYNC_DELTA) {
        char t[32];
        int64_t wm = parse_time(ep->watermark);
        sync_format_time(wm - (int64_t)s->o->overlap * 1000000000, t, sizeof t);
        buf_printf(q, "&updated_after=%s&include_deleted=true", t);
    }
}

static int fetch_model(struct sync *s, const struct model *m, enum sync_kind kind)
{
    pthread_mutex_lock(&s->lock);
    int disabled = s->disabled[0] != '\0';
    pthread_mutex_unlock(&s->lock);
    if (disabled)
        return -1;
    struct store_endpoint ep;
    if (store_endpoint_get(s->st, m->index, &ep) < 0)
        return -1;
    if (kind == SYNC_DELTA && (!ep.watermark || parse_time(ep.watermark) < 0))
        kind = SYNC_FULL;   /* nothing to be relative to */

    struct fetch f = { .s = s, .m = m, .kind = kind, .gen = ep.gen };
    int64_t start = sync_now_ns();
    char started[32];
    sync_format_time(start, started, sizeof started);

    pthread_mutex_lock(&s->lock);
    struct run_stat *rs = &s->ms[m->index].last[kind];
    memset(rs, 0, sizeof *rs);
    snprintf(rs->started_at, sizeof rs->started_at, "%s", started);
    snprintf(rs->result, sizeof rs->result, "running");
    pthread_mutex_unlock(&s->lock);

    int rc = 0;
    if (kind == SYNC_FULL) {
        f.gen = ep.gen + 1;
        rc = store_endpoint_set_gen(s->st, m->index, f.gen);
    }
    struct buf q = BUF_INIT;
    build_query(s, &ep, kind, &q);
    struct kombo_error err = { 0 };
    enum kombo_result res = KOMBO_ABORTED;
    if (rc == 0)
        res = kombo_list(s->k, m->path, q.data, on_page, &f, &err);
    buf_free(&q);
    if (res == KOMBO_OK && kind == SYNC_FULL)
        rc = sweep(&f);
    if (res == KOMBO_OK && rc == 0)
        rc = store_endpoint_set_watermark(s->st, m->index, started);
    if (res == KOMBO_OK && rc == 0 && kind == SYNC_FULL)
        rc = store_endpoint_set_full_at(s->st, m->index, sync_now_ns() / 1000000000);
    int ok = res == KOMBO_OK && rc == 0;
    if (ok)
        prune_changes(&f);

    pthread_mutex_lock(&s->lock);
    struct model_state *ms = &s->ms[m->index];
    sync_format_time(sync_now_ns(), rs->finished_at, sizeof rs->finished_at);
    snprintf(rs->result, sizeof rs->result, "%s", ok ? "ok" : "error");
    rs->fetched = f.fetched;
    rs->changed = f.changed;
    rs->skipped = f.skipped;
    if (ok) {
        ms->last_error[0] = '\0';
        if (kind == SYNC_FULL) {
            /* The first snapshot corrects nothing: it is where the mirror starts. */
            ms->drift = ms->full_at > 0 ? f.changed : 0;
            ms->full_at = sync_now_ns() / 1000000000;
        }
    } else {
        snprintf(ms->last_error, sizeof ms->last_error, "%s: %s",
                 res == KOMBO_OK ? "cache" : kombo_result_str(res),
                 res == KOMBO_OK ? "could not write the cache" : err.message);
        if (res == KOMBO_AUTH)
            snprintf(s->state, sizeof s->state, "error");
    }
    if (ok && strcmp(s->state, "error") == 0)
        snprintf(s->state, sizeof s->state, "ready");
    pthread_mutex_unlock(&s->lock);
    status_persist(s, m->index);

    if (ok) {
        double secs = (double)(sync_now_ns() - start) / 1e9;
        log_info("%s: %s fetch: %ld fetched, %ld changed, %ld skipped (%.2f s)",
                 m->dir, kind == SYNC_FULL ? "full" : "delta", f.fetched, f.changed,
                 f.skipped, secs);
        log_status("%s: %s fetch at %s: %ld fetched, %ld changed (%.2f s)", m->dir,
                   kind == SYNC_FULL ? "full" : "delta", started, f.fetched, f.changed, secs);
    }
    else
        log_warnx("%s: %s fetch failed: %s", m->dir, kind == SYNC_FULL ? "full" : "delta",
                  ms->last_error);
    flush_touched(&f, 0);
    free(f.touched);
    buf_free(&f.body);
    buf_free(&f.name);
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
        sync_format_time((ms->full_at + s->o->full_sync_interval) * 1000000000, next, sizeof next);
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

char *sync_status_json(struct sync *s)
{
    return sync_render(sync_status(s));
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

int sync_request(struct sync *s, unsigned mask, enum sync_kind kind, int wait)
{
    uint64_t ticket[MODEL_COUNT] = { 0 };
    mask &= s->o->models;
    pthread_mutex_lock(&s->lock);
    for (int m = 0; m < MODEL_COUNT; m++)
        if (mask & (1u << m))
            ticket[m] = ++s->ms[m].requested[kind];
    s->pending[kind] |= mask;
    pthread_cond_signal(&s->wake);
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
static int64_t schedule(struct sync *s, int64_t now)
{
    int64_t next = 0;
    for (int m = 0; m < MODEL_COUNT; m++) {
        if (!(s->o->models & (1u << m)))
            continue;
        struct model_state *ms = &s->ms[m];
        int64_t due[2] = {
            s->o->poll_interval > 0 ? ms->last_delta_at + s->o->poll_interval : 0,
            s->o->full_sync_interval > 0 ? ms->full_at + s->o->full_sync_interval : 0,
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

static void *worker(void *arg)
{
    struct sync *s = arg;
    pthread_mutex_lock(&s->lock);
    while (!atomic_load(&s->stop)) {
        int64_t now = sync_now_ns() / 1000000000;
        int64_t next = schedule(s, now);
        if (!s->pending[SYNC_DELTA] && !s->pending[SYNC_FULL]) {
            if (next) {
                struct timespec ts = { (time_t)next, 0 };
                pthread_cond_timedwait(&s->wake, &s->lock, &ts);
            } else {
                pthread_cond_wait(&s->wake, &s->lock);
            }
            continue;
        }
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
                s->ms[m].last_delta_at = sync_now_ns() / 1000000000;
            if (kind == SYNC_FULL) {
                s->ms[m].finished[SYNC_DELTA] = taken_delta[m];
                s->ms[m].failed[SYNC_DELTA] = rc < 0;
            }
            pthread_cond_broadcast(&s->done);
            pthread_mutex_unlock(&s->lock);
        }
        pthread_mutex_lock(&s->lock);
    }
    s->running = 0;
    pthread_cond_broadcast(&s->done);
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

int sync_start(struct sync *s)
{
    pthread_mutex_lock(&s->lock);
    int64_t now = sync_now_ns() / 1000000000;
    for (int m = 0; m < MODEL_COUNT; m++)
        s->ms[m].last_delta_at = now;
    s->running = 1;
    pthread_mutex_unlock(&s->lock);
    if (pthread_create(&s->thread, NULL, worker, s) != 0) {
        s->running = 0;
        return -1;
    }
    s->thread_started = 1;
    return 0;
}

void sync_cancel(struct sync *s)
{
    atomic_store(&s->stop, 1);
}

void sync_stop(struct sync *s)
{
    pthread_mutex_lock(&s->lock);
    atomic_store(&s->stop, 1);
    pthread_cond_broadcast(&s->wake);
    pthread_mutex_unlock(&s->lock);
    if (s->thread_started) {
        pthread_join(s->thread, NULL);
        s->thread_started = 0;
    }
}
