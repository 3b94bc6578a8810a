/*
 * metrics.c — the registry behind GET /metrics (see metrics.h).
 *
 * Event series live in one hash table under `lock`, each keyed by its
 * family and label values (the integration's id first, "" in single mode);
 * a family keeps an array of its series for rendering, sorted then. FUSE
 * requests are a two-level table of atomics (slot block, slot, type),
 * allocated a block of 256 slots at a time on first use. Sources are a list
 * under `src_lock`, held while a scrape calls them (so that removing one
 * waits for the scrape to be done with it); the two locks are never held
 * together.
 */
#include "metrics.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "clock.h"
#include "ino.h"
#include "models.h"

/* ---- families ---- */

enum fam {
    F_API_REQUESTS,
    F_API_DURATION,
    F_API_RETRIES,
    F_API_THROTTLED,
    F_FETCHES,
    F_FETCH_DURATION,
    F_LAST_OK,          /* kept here and merged with the sources' at scrape time */
    F_WH_RECEIVED,
    F_WH,
    F_COUNT
};

static const double api_bounds[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
                                      10, 30, 60 };
static const double fetch_bounds[] = { 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600,
                                       1800, 3600 };

struct family {
    const char *name;
    const char *type;
    const char *help;
    const char *labels[3];      /* after `integration`; NULL-terminated */
    const double *bounds;       /* histograms */
    int nbounds;
};

static const struct family fams[F_COUNT] = {
    [F_API_REQUESTS] = { "kombofs_api_requests_total", "counter",
        "HTTP requests sent to the Kombo API (each attempt), by endpoint and HTTP status "
        "(code \"none\": no HTTP answer).", { "endpoint", "code" }, NULL, 0 },
    [F_API_DURATION] = { "kombofs_api_request_duration_seconds", "histogram",
        "Time from sending a Kombo API request to its complete answer.", { "endpoint" },
        api_bounds, (int)(sizeof api_bounds / sizeof api_bounds[0]) },
    [F_API_RETRIES] = { "kombofs_api_retries_total", "counter",
        "Kombo API requests that repeated a failed attempt.", { "endpoint" }, NULL, 0 },
    [F_API_THROTTLED] = { "kombofs_api_throttled_total", "counter",
        "Kombo API answers 429 Too Many Requests (they pause every request of the key).",
        { "endpoint" }, NULL, 0 },
    [F_FETCHES] = { "kombofs_fetches_total", "counter",
        "Fetches of one endpoint into the cache, by kind (delta, full) and result.",
        { "endpoint", "kind", "result" }, NULL, 0 },
    [F_FETCH_DURATION] = { "kombofs_fetch_duration_seconds", "histogram",
        "Duration of a fetch of one endpoint, every page and the commit included.",
        { "endpoint", "kind" }, fetch_bounds, (int)(sizeof fetch_bounds / sizeof fetch_bounds[0]) },
    [F_LAST_OK] = { "kombofs_last_success_timestamp_seconds", "gauge",
        "Unix time at which the last successful fetch of an endpoint ended, by kind.",
        { "endpoint", "kind" }, NULL, 0 },
    [F_WH_RECEIVED] = { "kombofs_webhooks_received_total", "counter",
        "Requests to the webhook path (the sum of kombofs_webhooks_total).", { NULL }, NULL, 0 },
    [F_WH] = { "kombofs_webhooks_total", "counter",
        "Requests to the webhook path by result: accepted, duplicate (an event id seen "
        "before), ignored (not for an integration mirrored here, or an unhandled type), "
        "rejected (refused: signature, size, method, body).", { "result" }, NULL, 0 },
};

/* Families computed at scrape time (sources and the FUSE table). */
static const struct family fam_records = { "kombofs_records", "gauge",
    "Records mirrored in a directory (files shown).", { "directory" }, NULL, 0 };
static const struct family fam_head = { "kombofs_change_log_head_sequence", "gauge",
    "Sequence number of the newest change-log entry (0 when the log is empty).",
    { NULL }, NULL, 0 };
static const struct family fam_first = { "kombofs_change_log_first_sequence", "gauge",
    "Sequence number of the oldest change-log entry kept (0 when the log is empty).",
    { NULL }, NULL, 0 };
static const struct family fam_fuse = { "kombofs_fuse_requests_total", "counter",
    "FUSE requests received, by type.", { "type" }, NULL, 0 };

static const char *const fuse_names[METRICS_FUSE_OP_COUNT] = {
    [METRICS_FUSE_LOOKUP] = "lookup", [METRICS_FUSE_GETATTR] = "getattr",
    [METRICS_FUSE_SETATTR] = "setattr", [METRICS_FUSE_READLINK] = "readlink",
    [METRICS_FUSE_MKNOD] = "mknod", [METRICS_FUSE_MKDIR] = "mkdir",
    [METRICS_FUSE_UNLINK] = "unlink", [METRICS_FUSE_RMDIR] = "rmdir",
    [METRICS_FUSE_SYMLINK] = "symlink", [METRICS_FUSE_RENAME] = "rename",
    [METRICS_FUSE_LINK] = "link", [METRICS_FUSE_OPEN] = "open", [METRICS_FUSE_READ] = "read",
    [METRICS_FUSE_WRITE] = "write", [METRICS_FUSE_OPENDIR] = "opendir",
    [METRICS_FUSE_READDIR] = "readdir", [METRICS_FUSE_READDIRPLUS] = "readdirplus",
    [METRICS_FUSE_STATFS] = "statfs", [METRICS_FUSE_SETXATTR] = "setxattr",
    [METRICS_FUSE_GETXATTR] = "getxattr", [METRICS_FUSE_LISTXATTR] = "listxattr",
    [METRICS_FUSE_REMOVEXATTR] = "removexattr", [METRICS_FUSE_CREATE] = "create",
};

/* ---- event series ---- */

#define NLV 4                   /* integration + up to 3 labels */
#define HASH_SIZE 4096u

struct series {
    struct series *hnext;
    uint32_t hash;
    enum fam fam;
    char *lv[NLV];              /* label values, "" when the family has fewer */
    uint64_t count;             /* counters; histograms: observations */
    double value;               /* histograms: sum; gauges: value */
    uint64_t *buckets;          /* histograms: per bound, not cumulative */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct series *table[HASH_SIZE];
static struct { struct series **v; size_t n, cap; } by_fam[F_COUNT];
static char **slot_names;       /* [slot], under lock */
static size_t nslot_names;
static atomic_int multi;

static uint32_t fnv(uint32_t h, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        h = (h ^ *p) * 16777619u;
    return (h ^ 0xffu) * 16777619u;    /* a separator, so "ab","c" differs from "a","bc" */
}

static char *dup_or_die(const char *s)
{
    char *d = strdup(s ? s : "");
    if (!d)
        abort();
    return d;
}

/* The series of fam with these label values, created at zero. Under lock. */
static struct series *get(enum fam f, const char *integration, const char *a, const char *b,
                          const char *c)
{
    const char *lv[NLV] = { atomic_load(&multi) && integration ? integration : "",
                            a ? a : "", b ? b : "", c ? c : "" };
    uint32_t h = 2166136261u ^ (uint32_t)f;
    for (int i = 0; i < NLV; i++)
        h = fnv(h, lv[i]);
    struct series **slot = &table[h % HASH_SIZE];
    for (struct series *s = *slot; s; s = s->hnext) {
        if (s->hash != h || s->fam != f)
            continue;
        int same = 1;
        for (int i = 0; i < NLV && same; i++)
            same = strcmp(s->lv[i], lv[i]) == 0;
        if (same)
            return s;
    }
    struct series *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    s->hash = h;
    s->fam = f;
    for (int i = 0; i < NLV; i++)
        s->lv[i] = dup_or_die(lv[i]);
    if (fams[f].nbounds && !(s->buckets = calloc((size_t)fams[f].nbounds, sizeof *s->buckets)))
        abort();
    if (by_fam[f].n == by_fam[f].cap) {
        size_t cap = by_fam[f].cap ? by_fam[f].cap * 2 : 16;
        struct series **v = realloc(by_fam[f].v, cap * sizeof(struct series *));
        if (!v)
            abort();
        by_fam[f].v = v;
        by_fam[f].cap = cap;
    }
    by_fam[f].v[by_fam[f].n++] = s;
    s->hnext = *slot;
    *slot = s;
    return s;
}

static void observe(struct series *s, double v)
{
    const struct family *fm = &fams[s->fam];
    for (int i = 0; i < fm->nbounds; i++)
        if (v <= fm->bounds[i]) {
            s->buckets[i]++;
            break;
        }
    s->count++;
    s->value += v;
}

void metrics_set_multi(int on)
{
    if (on)
        atomic_store(&multi, 1);
}

void metrics_api_request(const char *integration, const char *endpoint, long http_status,
                         double seconds, int retry)
{
    char code[24];
    if (http_status > 0)
        snprintf(code, sizeof code, "%ld", http_status);
    else
        snprintf(code, sizeof code, "none");
    pthread_mutex_lock(&lock);
    get(F_API_REQUESTS, integration, endpoint, code, NULL)->count++;
    observe(get(F_API_DURATION, integration, endpoint, NULL, NULL), seconds);
    if (retry)
        get(F_API_RETRIES, integration, endpoint, NULL, NULL)->count++;
    if (http_status == 429)
        get(F_API_THROTTLED, integration, endpoint, NULL, NULL)->count++;
    pthread_mutex_unlock(&lock);
}

void metrics_fetch(const char *integration, const char *endpoint, int full,
                   const char *result, double seconds)
{
    const char *kind = full ? "full" : "delta";
    int ok = result && strcmp(result, "ok") == 0;
    double now = (double)clock_now_ns() / 1e9;
    pthread_mutex_lock(&lock);
    get(F_FETCHES, integration, endpoint, kind, result)->count++;
    observe(get(F_FETCH_DURATION, integration, endpoint, kind, NULL), seconds);
    if (ok)
        get(F_LAST_OK, integration, endpoint, kind, NULL)->value = now;
    pthread_mutex_unlock(&lock);
}

void metrics_webhook(const char *integration, enum metrics_webhook_result r)
{
    static const char *const names[] = { "accepted", "duplicate", "ignored", "rejected" };
    if ((unsigned)r >= sizeof names / sizeof names[0])
        return;
    pthread_mutex_lock(&lock);
    get(F_WH_RECEIVED, integration, NULL, NULL, NULL)->count++;
    get(F_WH, integration, names[r], NULL, NULL)->count++;
    pthread_mutex_unlock(&lock);
}

/* ---- FUSE requests ---- */

#define FUSE_BLOCK 256u
#define FUSE_NBLOCKS ((INO_SLOT_MAX + 1u) / FUSE_BLOCK)

struct fuse_block {
    _Atomic uint64_t n[FUSE_BLOCK][METRICS_FUSE_OP_COUNT];
};

static _Atomic(struct fuse_block *) fuse_blocks[FUSE_NBLOCKS];

void metrics_fuse_request(unsigned slot, enum metrics_fuse_op op)
{
    if (slot > INO_SLOT_MAX || (unsigned)op >= METRICS_FUSE_OP_COUNT)
        return;
    _Atomic(struct fuse_block *) *bp = &fuse_blocks[slot / FUSE_BLOCK];
    struct fuse_block *b = atomic_load_explicit(bp, memory_order_acquire);
    if (!b) {
        struct fuse_block *fresh = calloc(1, sizeof *fresh);
        if (!fresh)
            return;         /* not counted, nothing else lost */
        if (atomic_compare_exchange_strong_explicit(bp, &b, fresh, memory_order_acq_rel,
                                                    memory_order_acquire))
            b = fresh;
        else
            free(fresh);    /* another thread's block won; b is it */
    }
    atomic_fetch_add_explicit(&b->n[slot % FUSE_BLOCK][op], 1, memory_order_relaxed);
}

void metrics_set_slot_name(unsigned slot, const char *integration)
{
    if (slot > INO_SLOT_MAX)
        return;
    pthread_mutex_lock(&lock);
    if (slot >= nslot_names && integration) {
        size_t n = slot + 1 > nslot_names * 2 ? slot + 1 : nslot_names * 2;
        char **v = realloc(slot_names, n * sizeof *v);
        if (!v)
            abort();
        memset(v + nslot_names, 0, (n - nslot_names) * sizeof *v);
        slot_names = v;
        nslot_names = n;
    }
    if (slot < nslot_names) {
        free(slot_names[slot]);
        slot_names[slot] = integration ? dup_or_die(integration) : NULL;
    }
    pthread_mutex_unlock(&lock);
}

/* ---- sources ---- */

struct source {
    struct source *next;
    char *integration;
    metrics_source_fn fn;
    void *ctx;
    int refs;
};

static pthread_mutex_t src_lock = PTHREAD_MUTEX_INITIALIZER;
static struct source *sources;

void metrics_add_source(const char *integration, metrics_source_fn fn, void *ctx)
{
    pthread_mutex_lock(&src_lock);
    struct source *s = sources;
    while (s && s->ctx != ctx)
        s = s->next;
    if (s) {
        s->refs++;
    } else {
        s = calloc(1, sizeof *s);
        if (!s)
            abort();
        s->integration = dup_or_die(integration);
        s->fn = fn;
        s->ctx = ctx;
        s->refs = 1;
        s->next = sources;
        sources = s;
    }
    pthread_mutex_unlock(&src_lock);
}

void metrics_remove_source(const void *ctx)
{
    pthread_mutex_lock(&src_lock);
    for (struct source **p = &sources; *p; p = &(*p)->next) {
        struct source *s = *p;
        if (s->ctx != ctx)
            continue;
        if (--s->refs == 0) {
            *p = s->next;
            free(s->integration);
            free(s);
        }
        break;
    }
    pthread_mutex_unlock(&src_lock);
}

/* ---- rendering ---- */

/* A label value or HELP text: \ and newline escaped (and " in label values);
 * bytes that are not UTF-8 as U+FFFD, so the output is always UTF-8. */
static void put_escaped(struct buf *b, const char *s, int quote)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned char c = *p;
        if (c < 0x80) {
            if (c == '\\')
                buf_adds(b, "\\\\");
            else if (c == '\n')
                buf_adds(b, "\\n");
            else if (c == '"' && quote)
                buf_adds(b, "\\\"");
            else
                buf_addc(b, (char)c);
            p++;
            continue;
        }
        /* The length of a well-formed sequence at p (RFC 3629), 0 if none. */
        size_t n = 0;
        if (c >= 0xc2 && c <= 0xdf)
            n = 2;
        else if (c >= 0xe0 && c <= 0xef)
            n = 3;
        else if (c >= 0xf0 && c <= 0xf4)
            n = 4;
        for (size_t i = 1; i < n; i++)
            if ((p[i] & 0xc0) != 0x80)
                n = 0;
        if (n >= 3) {
            unsigned cp = n == 3 ? ((c & 0x0fu) << 12) | ((p[1] & 0x3fu) << 6) | (p[2] & 0x3fu)
                                 : ((c & 0x07u) << 18) | ((p[1] & 0x3fu) << 12) |
                                   ((p[2] & 0x3fu) << 6) | (p[3] & 0x3fu);
            if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
                (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
                n = 0;      /* overlong, a surrogate, beyond Unicode */
        }
        if (n) {
            buf_add(b, p, n);
            p += n;
        } else {
            buf_adds(b, "\xef\xbf\xbd");
            p++;
        }
    }
}

/* The shortest text that reads back as v (Prometheus parses Go floats). */
static void fmt_double(char *t, size_t n, double v)
{
    if (isnan(v)) {
        snprintf(t, n, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(t, n, "%s", v > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (v == (double)(long long)v && v > -1e15 && v < 1e15) {
        snprintf(t, n, "%lld", (long long)v);     /* 10, not 1e+01 */
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(t, n, "%.*g", prec, v);
        if (strtod(t, NULL) == v)
            break;
    }
}

static void put_double(struct buf *b, double v)
{
    char t[40];
    fmt_double(t, sizeof t, v);
    buf_adds(b, t);
}

static void header(struct buf *b, const struct family *f)
{
    buf_printf(b, "# HELP %s ", f->name);
    put_escaped(b, f->help, 0);
    buf_printf(b, "\n# TYPE %s %s\n", f->name, f->type);
}

/* name{integration="..",label=".."...[,le=".."]} — lv[0] is the integration,
 * lv[1..] the family's labels; extra_name/extra_value one more (le). */
static void sample_name(struct buf *b, const char *name, const char *suffix,
                        const struct family *f, const char *const *lv,
                        const char *extra_name, const char *extra_value)
{
    buf_adds(b, name);
    buf_adds(b, suffix);
    int n = 0;
    if (lv[0][0]) {
        buf_adds(b, "{integration=\"");
        put_escaped(b, lv[0], 1);
        buf_addc(b, '"');
        n++;
    }
    for (int i = 0; i < 3 && f->labels[i]; i++) {
        buf_printf(b, "%s%s=\"", n++ ? "," : "{", f->labels[i]);
        put_escaped(b, lv[i + 1], 1);
        buf_addc(b, '"');
    }
    if (extra_name) {
        buf_printf(b, "%s%s=\"%s\"", n++ ? "," : "{", extra_name, extra_value);
    }
    if (n)
        buf_addc(b, '}');
    buf_addc(b, ' ');
}

static int cmp_lv(const char *const *a, const char *const *b)
{
    for (int i = 0; i < NLV; i++) {
        int c = strcmp(a[i], b[i]);
        if (c)
            return c;
    }
    return 0;
}

static int cmp_series(const void *a, const void *b)
{
    const struct series *x = *(const struct series *const *)a;
    const struct series *y = *(const struct series *const *)b;
    return cmp_lv((const char *const *)x->lv, (const char *const *)y->lv);
}

static void render_series(struct buf *b, const struct series *s)
{
    const struct family *f = &fams[s->fam];
    const char *const *lv = (const char *const *)s->lv;
    if (!f->nbounds) {
        sample_name(b, f->name, "", f, lv, NULL, NULL);
        if (s->fam == F_LAST_OK)
            put_double(b, s->value);
        else
            buf_printf(b, "%llu", (unsigned long long)s->count);
        buf_addc(b, '\n');
        return;
    }
    /* name_bucket{..,le="x"} cumulative, le="+Inf" = count, then _sum and _count. */
    const char *stem = f->name;
    uint64_t cum = 0;
    for (int i = 0; i < f->nbounds; i++) {
        char le[40];
        fmt_double(le, sizeof le, f->bounds[i]);
        cum += s->buckets[i];
        sample_name(b, stem, "_bucket", f, lv, "le", le);
        buf_printf(b, "%llu\n", (unsigned long long)cum);
    }
    sample_name(b, stem, "_bucket", f, lv, "le", "+Inf");
    buf_printf(b, "%llu\n", (unsigned long long)s->count);
    sample_name(b, stem, "_sum", f, lv, NULL, NULL);
    put_double(b, s->value);
    buf_addc(b, '\n');
    sample_name(b, stem, "_count", f, lv, NULL, NULL);
    buf_printf(b, "%llu\n", (unsigned long long)s->count);
}

/* Under lock. */
static void render_family(struct buf *b, enum fam f)
{
    header(b, &fams[f]);
    if (by_fam[f].n)    /* an empty family has no array: qsort(NULL, 0) is undefined */
        qsort(by_fam[f].v, by_fam[f].n, sizeof(struct series *), cmp_series);
    for (size_t i = 0; i < by_fam[f].n; i++)
        render_series(b, by_fam[f].v[i]);
}

/* One source's answer at this scrape. */
struct scraped {
    char *key;                  /* the integration label, "" in single mode */
    json_t *status;
};

static int cmp_scraped(const void *a, const void *b)
{
    return strcmp(((const struct scraped *)a)->key, ((const struct scraped *)b)->key);
}

/* Call every source; sorted by integration, one per label value. */
static struct scraped *scrape_sources(size_t *n)
{
    struct scraped *v = NULL;
    size_t k = 0, cap = 0;
    int is_multi = atomic_load(&multi);
    pthread_mutex_lock(&src_lock);
    for (struct source *s = sources; s; s = s->next) {
        json_t *j = s->fn(s->ctx);
        if (!j)
            continue;
        if (k == cap) {
            cap = cap ? cap * 2 : 8;
            struct scraped *nv = realloc(v, cap * sizeof *v);
            if (!nv)
                abort();
            v = nv;
        }
        v[k].key = dup_or_die(is_multi ? s->integration : "");
        v[k].status = j;
        k++;
    }
    pthread_mutex_unlock(&src_lock);
    if (k)
        qsort(v, k, sizeof *v, cmp_scraped);
    size_t w = 0;       /* two sources for one label value would be duplicate series */
    for (size_t i = 0; i < k; i++) {
        if (w && strcmp(v[w - 1].key, v[i].key) == 0) {
            free(v[i].key);
            json_decref(v[i].status);
            continue;
        }
        v[w++] = v[i];
    }
    *n = w;
    return v;
}

static void render_records(struct buf *b, const struct scraped *v, size_t n)
{
    header(b, &fam_records);
    for (size_t i = 0; i < n; i++) {
        json_t *eps = json_object_get(v[i].status, "endpoints");
        /* In the models' order, which is fixed, not the object's. */
        for (int m = 0; m < MODEL_COUNT; m++) {
            json_t *r = json_object_get(json_object_get(eps, models_table[m].dir), "records");
            if (!json_is_integer(r))
                continue;
            const char *lv[NLV] = { v[i].key, models_table[m].dir, "", "" };
            sample_name(b, fam_records.name, "", &fam_records, lv, NULL, NULL);
            buf_printf(b, "%lld\n", (long long)json_integer_value(r));
        }
    }
}

static void render_changes(struct buf *b, const struct scraped *v, size_t n,
                           const struct family *f, const char *key)
{
    header(b, f);
    for (size_t i = 0; i < n; i++) {
        json_t *seq = json_object_get(json_object_get(v[i].status, "changes"), key);
        if (!json_is_integer(seq))
            continue;
        const char *lv[NLV] = { v[i].key, "", "", "" };
        sample_name(b, f->name, "", f, lv, NULL, NULL);
        buf_printf(b, "%lld\n", (long long)json_integer_value(seq));
    }
}

/* The last successful fetches: what this process saw end (F_LAST_OK), and
 * what the status says (a fetch before a restart, when its result was ok),
 * whichever is later; kept, since the time only moves forward. Under lock. */
static void merge_last_ok(const struct scraped *v, size_t n)
{
    static const char *const kinds[2] = { "delta", "full" };
    for (size_t i = 0; i < n; i++) {
        json_t *eps = json_object_get(v[i].status, "endpoints");
        for (int m = 0; m < MODEL_COUNT; m++) {
            json_t *ep = json_object_get(eps, models_table[m].dir);
            for (int k = 0; k < 2 && ep; k++) {
                json_t *run = json_object_get(ep, k ? "last_full" : "last_delta");
                const char *res = json_string_value(json_object_get(run, "result"));
                const char *at = json_string_value(json_object_get(run, "finished_at"));
                int64_t ns = at && res && strcmp(res, "ok") == 0 ? clock_parse(at) : -1;
                if (ns <= 0)
                    continue;
                /* v[i].key is "" in single mode already, as get() would make it */
                struct series *s = get(F_LAST_OK, v[i].key, models_table[m].path, kinds[k], NULL);
                double t = (double)ns / 1e9;
                if (t > s->value)
                    s->value = t;
            }
        }
    }
}

struct fuse_row {
    const char *name;           /* "" for slot 0 and slots without a name */
    uint64_t n[METRICS_FUSE_OP_COUNT];
};

static int cmp_fuse_row(const void *a, const void *b)
{
    return strcmp(((const struct fuse_row *)a)->name, ((const struct fuse_row *)b)->name);
}

/* Under lock (slot names). */
static void render_fuse(struct buf *b)
{
    header(b, &fam_fuse);
    int is_multi = atomic_load(&multi);
    struct fuse_row *rows = NULL;
    size_t n = 0, cap = 0;
    for (unsigned blk = 0; blk < FUSE_NBLOCKS; blk++) {
        struct fuse_block *fb = atomic_load_explicit(&fuse_blocks[blk], memory_order_acquire);
        for (unsigned i = 0; fb && i < FUSE_BLOCK; i++) {
            struct fuse_row r = { "", { 0 } };
            int any = 0;
            for (int op = 0; op < METRICS_FUSE_OP_COUNT; op++)
                any |= (r.n[op] = atomic_load_explicit(&fb->n[i][op], memory_order_relaxed)) != 0;
            if (!any)
                continue;
            unsigned slot = blk * FUSE_BLOCK + i;
            if (is_multi && slot && slot < nslot_names && slot_names[slot])
                r.name = slot_names[slot];
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                struct fuse_row *nr = realloc(rows, cap * sizeof *nr);
                if (!nr)
                    abort();
                rows = nr;
            }
            rows[n++] = r;
        }
    }
    if (n)
        qsort(rows, n, sizeof *rows, cmp_fuse_row);
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;       /* rows of one label value are summed */
        for (; j < n && strcmp(rows[j].name, rows[i].name) == 0; j++)
            for (int op = 0; op < METRICS_FUSE_OP_COUNT; op++)
                rows[i].n[op] += rows[j].n[op];
        for (int op = 0; op < METRICS_FUSE_OP_COUNT; op++) {
            if (!rows[i].n[op])
                continue;
            const char *lv[NLV] = { rows[i].name, fuse_names[op], "", "" };
            sample_name(b, fam_fuse.name, "", &fam_fuse, lv, NULL, NULL);
            buf_printf(b, "%llu\n", (unsigned long long)rows[i].n[op]);
        }
        i = j;
    }
    free(rows);
}

char *metrics_render(void)
{
    struct buf b = BUF_INIT;
    size_t n;
    struct scraped *v = scrape_sources(&n);
    pthread_mutex_lock(&lock);
    merge_last_ok(v, n);
    for (enum fam f = 0; f < F_COUNT; f++)
        render_family(&b, f);
    pthread_mutex_unlock(&lock);

    render_records(&b, v, n);
    render_changes(&b, v, n, &fam_head, "last_seq");
    render_changes(&b, v, n, &fam_first, "first_seq");
    pthread_mutex_lock(&lock);
    render_fuse(&b);
    pthread_mutex_unlock(&lock);
    for (size_t i = 0; i < n; i++) {
        free(v[i].key);
        json_decref(v[i].status);
    }
    free(v);
    return buf_detach(&b);
}

void metrics_reset(void)
{
    pthread_mutex_lock(&lock);
    for (unsigned i = 0; i < HASH_SIZE; i++) {
        struct series *s = table[i];
        while (s) {
            struct series *next = s->hnext;
            for (int k = 0; k < NLV; k++)
                free(s->lv[k]);
            free(s->buckets);
            free(s);
            s = next;
        }
        table[i] = NULL;
    }
    for (int f = 0; f < F_COUNT; f++) {
        free(by_fam[f].v);
        by_fam[f].v = NULL;
        by_fam[f].n = by_fam[f].cap = 0;
    }
    for (size_t i = 0; i < nslot_names; i++)
        free(slot_names[i]);
    free(slot_names);
    slot_names = NULL;
    nslot_names = 0;
    for (unsigned i = 0; i < FUSE_NBLOCKS; i++)
        free(atomic_exchange(&fuse_blocks[i], NULL));
    atomic_store(&multi, 0);
    pthread_mutex_unlock(&lock);
    pthread_mutex_lock(&src_lock);
    while (sources) {
        struct source *s = sources;
        sources = s->next;
        free(s->integration);
        free(s);
    }
    pthread_mutex_unlock(&src_lock);
}
