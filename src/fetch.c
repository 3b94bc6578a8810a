/*
 * fetch.c — one fetch: pages, records, change-log entries, the sweep.
 *
 * Each page is one transaction. Every record is scanned once, on the download
 * thread, by the page parse (jtext_page_parse validates it, measures its file
 * and locates its top-level members; its fields and its CSV cells are read
 * from those; nothing is rendered), then compared byte for byte as compact
 * JSON with the stored one and written with a change-log entry only if it
 * differs. jansson parses a record only when it changed (for the diff); new
 * and unchanged records are handled from their text.
 */
#include "fetch.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "clock.h"
#include "diff.h"
#include "entry.h"
#include "export.h"
#include "fsname.h"
#include "jtext.h"
#include "log.h"
#include "pack.h"

struct touched {
    unsigned dir;       /* the parent's row in the namespace table (ino.h) */
    uint64_t ino;
    char *name;
    int removed;
};

struct fetch {
    const struct fetch_job *job;
    struct store *st;           /* job->st */
    const struct model *m;      /* job->m */
    enum sync_kind kind;        /* job->kind */
    int64_t gen;
    int64_t page_ns;            /* the time of the page's transaction */
    long fetched, changed, skipped;
    long pages;
    int64_t progress_ns;        /* when progress was last reported */
    int store_failed;
    struct touched *touched;    /* files changed by the current transaction */
    size_t ntouched, captouched;
    int exports_touched;        /* the transaction changed a record: exports/ moves */
    /* With --compress, bodies are stored packed (pack.h) with the model's
     * dictionary, which the first page with enough records trains when the
     * model has none. The
     * download thread (prepare_page, one page after another) owns cd, tried
     * and new_dict; the worker owns dict_id, pk_ctx and zbuf, and packs with
     * the dictionary a prepared page names. Packing on the worker measured
     * faster than on the download thread, which has the JSON scan and zlib
     * (100,000 employees: 4.6-5.0 s against 6.2-7.0 s); after the scan and
     * the inflate became cheaper, packing a half or a third of a first
     * fetch's records there measured no faster (2.44 s median of four,
     * against 2.58 s and 2.49 s): both CPUs are busy, with the sandbox. */
    struct pack_cdict *cd;
    int tried;                  /* a dictionary exists or a training was tried */
    struct buf new_dict;        /* trained by this fetch */
    int64_t dict_id;            /* cd's id in the cache, 0 until stored */
    struct pack_ctx pk_ctx;
    struct buf zbuf;
    /* A full fetch into a model with no records: records are inserted without
     * being looked up first (a first fetch of 100,000 employees made 100,000
     * lookups that found nothing); a name the listing repeats ends it. */
    int fresh;
    /* The model had no records when this full fetch began: every record it
     * holds at the end was stored or touched by this fetch, under its gen,
     * so there is nothing to sweep (the sweep read every row back: about
     * 0.1 s at 100,000 employees). */
    int was_empty;
    /* The open transaction: one per page, except while the cache is being
     * built (store_building: nothing reads it yet, and a crash builds it
     * again), when it goes on while the next page is already downloaded,
     * up to BATCH_PAGES pages or BATCH_NS. Every commit writes each index
     * page that its records touched, and the names come in no order: at
     * 100,000 employees a commit per page wrote 1.2 GB into a 460 MB cache.
     * The webhook receiver's connection waits for a commit to record an
     * event id, so a batch stays short and never waits for the network. */
    int in_txn, txn_pages;
    int64_t txn_ns;
};

#define BATCH_PAGES 16
#define BATCH_NS (250 * 1000000LL)
#define BATCH_WAIT_MS 20        /* for the next page, before committing without it */

static void touch(struct fetch *f, unsigned dir, uint64_t ino, const char *name,
                  int removed)
{
    if (!f->job->changed)
        return;
    if (f->ntouched == f->captouched) {
        f->captouched = f->captouched ? f->captouched * 2 : 64;
        void *p = realloc(f->touched, f->captouched * sizeof *f->touched);
        if (!p)
            abort();
        f->touched = p;
    }
    f->touched[f->ntouched++] = (struct touched){ dir, ino, strdup(name), removed };
}

/* Tell the listener about a committed transaction, or forget a rolled back one. */
static void flush_touched(struct fetch *f, int committed)
{
    if (committed && f->exports_touched) {
        char name[64];
        snprintf(name, sizeof name, "%s.jsonl", f->m->dir);
        touch(f, INO_EXPORTS, ino_export(f->m->index, 0), name, 0);
        if (f->m->index == 0)
            touch(f, INO_EXPORTS, ino_export(INO_EXPORT_CSV, 0), "employees.csv", 0);
    }
    f->exports_touched = 0;
    for (size_t i = 0; i < f->ntouched; i++) {
        struct touched *t = &f->touched[i];
        if (committed && f->job->changed)
            f->job->changed(f->job->ctx, t->dir, t->ino, t->name, t->removed);
        free(t->name);
    }
    f->ntouched = 0;
}

/* What an entry of this fetch says about a record. */
static struct entry entry_of(const struct fetch *f, const char *id_json, size_t id_len,
                             const char *op, int direct, const char *nested,
                             const struct buf *patch)
{
    return (struct entry){ .at_ns = f->page_ns, .model = f->m->dir, .id_json = id_json,
                           .id_len = id_len, .op = op, .full = f->kind == SYNC_FULL,
                           .direct = direct, .nested = nested,
                           .patch = patch ? patch->data : NULL,
                           .patch_len = patch ? patch->len : 0 };
}

static char *render_change(void *ctx, int64_t seq)
{
    return entry_render(ctx, seq);
}

/* A "created" entry is stored without its record, which the store splices in
 * (store_record_create): the first full fetch does not write every record
 * twice. */
static char *render_created(void *ctx, int64_t seq, size_t *split)
{
    return entry_render_created(ctx, seq, split);
}

/* An entry was written: its file appears when the transaction commits. */
static void logged(struct fetch *f, int64_t seq)
{
    char name[ENTRY_NAME_SIZE];
    entry_name(seq, name);
    touch(f, INO_CHANGES, ino_change(seq), name, 0);
    f->changed++;
}

static int log_change(struct fetch *f, const char *id_json, size_t id_len,
                      const char *op, int direct, const char *nested,
                      const struct buf *patch)
{
    struct entry e = entry_of(f, id_json, id_len, op, direct, nested, patch);
    int64_t seq = store_change_add(f->st, f->page_ns, render_change, &e);
    if (seq < 0)
        return -1;
    logged(f, seq);
    return 0;
}

/* Parse one record. jansson refuses integers beyond 64 bits; such a record
 * is parsed again with every integer as a real, for its diffs only: the
 * file keeps the number exactly as sent. */
static json_t *parse_record(const char *text, size_t len)
{
    json_t *j = json_loadb(text, len, JSON_ALLOW_NUL, NULL);
    return j ? j : json_loadb(text, len, JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, NULL);
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

/* ---- the views of a changed record (SPEC §10) ---- */

struct member_ctx {
    struct fetch *f;
    unsigned dir;
    enum ino_kind kind;
    const char *vname;
};

/* A member of a group: its "<vname>~<id>" name may have come or gone, and
 * the first one owns the plain name. */
static void member_name(void *ctx, uint64_t rowid, const char *name, int first)
{
    struct member_ctx *c = ctx;
    struct buf link = BUF_INIT;
    size_t n = strlen(name);
    uint64_t ino = ino_make(0, c->kind, rowid);
    buf_adds(&link, c->vname);
    if (first)
        touch(c->f, c->dir, ino, link.data, 0);
    buf_addc(&link, '~');
    buf_add(&link, name, n > 5 ? n - 5 : n);
    touch(c->f, c->dir, ino, link.data, 0);
    buf_free(&link);
}

/* A record joined or left the group of links named vname (by-email/ or
 * by-remote-id/<dir>/): every name of the group may have moved (the smallest
 * id owns the plain name), so all are invalidated, and the record's own
 * names, which it may have left. */
static int view_group(struct fetch *f, enum store_view view, const char *vname,
                      uint64_t ino, const char *name)
{
    if (!vname)
        return 0;
    unsigned dir = view == STORE_VIEW_EMAIL ? INO_BY_EMAIL : INO_RID_DIR + (unsigned)f->m->index;
    struct member_ctx c = { f, dir, view == STORE_VIEW_EMAIL ? INO_K_EMAIL : INO_K_RID, vname };
    if (store_view_members(f->st, view, f->m->index, vname, member_name, &c) < 0)
        return -1;
    member_name(&c, ino_rowid(ino), name, 1);
    return 0;
}

static int same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* After a record's write: what its views must tell the kernel. */
static int views_changed(struct fetch *f, uint64_t ino, const char *name,
                         const char *old_ename, const char *old_rname,
                         const char *new_ename, const char *new_rname)
{
    f->exports_touched = 1;
    if (!f->job->changed)
        return 0;       /* nobody to tell (the initial fetch, before the mount) */
    int rc = 0;
    if (!same(old_ename, new_ename))
        rc |= view_group(f, STORE_VIEW_EMAIL, old_ename, ino, name) |
              view_group(f, STORE_VIEW_EMAIL, new_ename, ino, name);
    if (!same(old_rname, new_rname))
        rc |= view_group(f, STORE_VIEW_RID, old_rname, ino, name) |
              view_group(f, STORE_VIEW_RID, new_rname, ino, name);
    return rc ? -1 : 0;
}

/* A new record and its "created" entry, in one call to the store: 0,
 * STORE_EXISTS (nothing written) or -1. */
static int record_created(struct fetch *f, const char *id, const char *id_json,
                          size_t id_len, const char *name, const struct store_body *b,
                          const char *changed_at, const char *remote_id,
                          const struct store_derived *d)
{
    struct entry e = entry_of(f, id_json, id_len, "created", 1, "[]", NULL);
    uint64_t ino = 0;
    int64_t seq = store_record_create(f->st, f->m->index, id, name, b, changed_at, remote_id,
                                      d, f->page_ns, f->gen, render_created, &e, &ino);
    if (seq < 0)
        return seq == STORE_EXISTS ? STORE_EXISTS : -1;
    touch(f, INO_MODEL_DIR + (unsigned)f->m->index, ino, name, 0);
    logged(f, seq);
    return views_changed(f, ino, name, NULL, NULL, d->ename, d->rname);
}

/* id_json may be NULL: the id is then encoded from `id`. old_ename and
 * old_rname are the record's view names. */
static int record_deleted(struct fetch *f, const char *id, const char *id_json,
                          size_t id_len, uint64_t ino, uint64_t node, const char *name,
                          const char *old_ename, const char *old_rname, int direct)
{
    struct buf patch = BUF_INIT, idbuf = BUF_INIT;
    if (store_record_delete(f->st, ino) < 0)
        return -1;
    touch(f, INO_MODEL_DIR + (unsigned)f->m->index, node, name, 1);
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
    if (rc == 0)
        rc = views_changed(f, ino, name, old_ename, old_rname, NULL, NULL);
    return rc;
}

static int record_updated(struct fetch *f, const char *id_json, size_t id_len,
                          const char *text, size_t len, const struct store_record *old)
{
    json_t *rec = parse_record(text, len);
    json_t *prev = parse_record(old->body, old->size);
    struct buf patch = BUF_INIT, nested = BUF_INIT;
    int rc = -1;
    if (rec && prev) {
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
        /* A version jansson cannot read although jtext accepted it (a number
         * beyond a double, a lone surrogate escape, invalid UTF-8, a key with
         * \u0000): the file keeps the record verbatim; log one whole replace
         * rather than failing the page, and every later fetch with it. */
        buf_adds(&patch, "[{\"op\":\"replace\",\"path\":\"\",\"value\":");
        buf_add(&patch, text, len);
        buf_adds(&patch, "}]");
        rc = log_change(f, id_json, id_len, "updated", 1, "[]", &patch);
    }
    json_decref(rec);
    json_decref(prev);
    buf_free(&patch);
    buf_free(&nested);
    return rc;
}

enum { F_ID, F_CHANGED_AT, F_REMOTE_ID, F_DELETED_AT, F_WORK_EMAIL, F_COUNT };

/* ---- what a record's views need (store_derived) ---- */

/* Offsets into an arena, so that the arena may grow meanwhile. */
struct derived {
    size_t ename_off, rname_off, keys_off, keys_len;    /* SIZE_MAX: none */
    uint64_t jsize, csize;
};

/* vname: escaped (and for e-mail addresses, ASCII lower-cased) view name. */
static size_t view_name(const char *s, size_t n, int lower, struct buf *arena)
{
    if (!s || n == 0)
        return SIZE_MAX;
    size_t off = arena->len;
    if (lower) {
        char *low = malloc(n);
        if (!low)
            abort();
        for (size_t i = 0; i < n; i++) {
            low[i] = s[i];
            if (s[i] >= 'A' && s[i] <= 'Z')
                low[i] = (char)(s[i] + ('a' - 'A'));
        }
        fsname_escape(low, n, arena);
        free(low);
    } else {
        fsname_escape(s, n, arena);
    }
    buf_addc(arena, '\0');
    return off;
}

/* text: the record (any JSON layout); mem[0..nmem): its top-level members as
 * jtext_page_parse located them, or NULL (then the text is scanned again);
 * fl: its fields as read by jtext_fields; jsize: the length of its compact
 * form. */
static void derive(int model, const char *text, size_t len, const struct jtext_member *mem,
                   size_t nmem, const struct jtext_field *fl, size_t jsize, struct buf *arena,
                   struct derived *d)
{
    const struct jtext_field *email = &fl[F_WORK_EMAIL], *rid = &fl[F_REMOTE_ID];
    d->ename_off = model == 0 && email->type == JTEXT_STRING
                       ? view_name(email->str, email->len, 1, arena) : SIZE_MAX;
    d->rname_off = rid->type == JTEXT_STRING ? view_name(rid->str, rid->len, 0, arena)
                                             : SIZE_MAX;
    d->jsize = jsize;
    d->csize = 0;
    d->keys_off = SIZE_MAX;
    d->keys_len = 0;
    if (model == 0) {       /* the one CSV export: employees.csv */
        int nkeys;
        d->keys_off = arena->len;
        d->csize = mem ? export_csv_derive_members(text, mem, nmem, jsize == len, arena, &nkeys)
                       : export_csv_derive(text, len, arena, &nkeys);
        if (nkeys < 0)
            d->keys_off = SIZE_MAX;
        else
            d->keys_len = arena->len - d->keys_off;
    }
}

static struct store_derived derived_of(const struct derived *d, const struct buf *arena)
{
    return (struct store_derived){
        .ename = d->ename_off == SIZE_MAX ? NULL : arena->data + d->ename_off,
        .rname = d->rname_off == SIZE_MAX ? NULL : arena->data + d->rname_off,
        .jsize = d->jsize,
        .csize = d->csize,
        .keys = d->keys_off == SIZE_MAX ? NULL : arena->data + d->keys_off,
        .keys_len = d->keys_off == SIZE_MAX ? 0 : d->keys_len,
    };
}

static void fields_init(struct jtext_field *fl)
{
    fl[F_ID].key = "id";
    fl[F_CHANGED_AT].key = "changed_at";
    fl[F_REMOTE_ID].key = "remote_id";
    fl[F_DELETED_AT].key = "remote_deleted_at";
    fl[F_WORK_EMAIL].key = "work_email";
}

struct backfill {
    struct buf arena;
};

static int backfill_one(void *ctx, int model, const char *body, size_t size,
                        struct store_derived *out)
{
    struct backfill *b = ctx;
    struct jtext_field fl[F_COUNT];
    struct derived d;
    memset(fl, 0, sizeof fl);
    fields_init(fl);
    buf_reset(&b->arena);
    if (jtext_fields(body, size, fl, F_COUNT) < 0) {
        memset(&d, 0, sizeof d);
        d.ename_off = d.rname_off = d.keys_off = SIZE_MAX;
        d.jsize = export_compact_size(body, size);
    } else {
        derive(model, body, size, NULL, 0, fl, export_compact_size(body, size), &b->arena, &d);
    }
    jtext_fields_free(fl, F_COUNT);
    *out = derived_of(&d, &b->arena);
    return 0;
}

long fetch_backfill(struct store *st)
{
    struct backfill b = { BUF_INIT };
    long n = store_backfill(st, backfill_one, &b);
    buf_free(&b.arena);
    return n;
}

/*
 * Reading and rendering a page's records needs no database, so it runs on
 * the download thread (kombo_list_prepared), ahead of the transaction that
 * compares and stores them on the worker: measured at 100,000 employees,
 * a full fetch went from 3.26 s to 2.94 s (medians of five).
 */
enum rec_status { REC_OK, REC_NO_ID };

struct rec {
    enum rec_status status;
    int model;
    int deleted;                    /* remote_deleted_at is set */
    struct jtext_field fl[F_COUNT];
    size_t name_off;                /* in the page's arena */
    /* The record's compact JSON: its own bytes in the page when the API sent
     * it compact (as it does), else made in the arena. */
    int json_in_page;
    size_t json_off, json_len;
    size_t size, lines;             /* its file: jtext_pretty of that JSON */
    struct derived d;
};

struct prepared {
    struct rec *recs;
    size_t n;
    struct buf arena;               /* file names (NUL-terminated), compact JSON */
    const struct pack_cdict *cd;    /* the dictionary to pack with, or NULL */
    int new_dict;                   /* this page trained it: store it first */
};

static const char *rec_json(const struct prepared *p, const char *page, const struct rec *r)
{
    return (r->json_in_page ? page : p->arena.data) + r->json_off;
}

/* No dictionary yet: train one on the page's records (their compact JSON)
 * when it has enough of them (pack.h), once per fetch. */
static void train(struct fetch *f, struct prepared *p, const char *page)
{
    const char **samples = malloc((p->n ? p->n : 1) * sizeof *samples);
    size_t *lens = malloc((p->n ? p->n : 1) * sizeof *lens), n = 0;
    if (!samples || !lens)
        abort();
    for (size_t i = 0; i < p->n; i++) {
        const struct rec *r = &p->recs[i];
        if (r->status == REC_OK && !r->deleted) {
            samples[n] = rec_json(p, page, r);
            lens[n++] = r->json_len;
        }
    }
    if (n >= PACK_TRAIN_MIN_SAMPLES) {      /* fewer: a later page may have enough */
        f->tried = 1;
        if (pack_train(samples, lens, n, &f->new_dict) == 0 &&
            (f->cd = pack_cdict_new(f->new_dict.data, f->new_dict.len))) {
            p->new_dict = 1;
        } else {
            log_info("%s: no dictionary to pack the files with (the records are too few or "
                     "too small): they are stored as they are", f->m->dir);
            buf_reset(&f->new_dict);
        }
    }
    free(samples);
    free(lens);
}

/* The page scan validated the record, measured its file and located its
 * members (jtext_page_parse); from those, its fields, its name and what its
 * views need, without reading the record again (nothing is rendered: the
 * store keeps the compact JSON, and its file is rendered when read). The API
 * sends compact JSON, which is then used where it lies in the page. */
static void prepare_record(const char *body, const struct jtext_page *page, size_t i,
                           struct rec *r, struct buf *arena)
{
    size_t off = page->results[i].off, len = page->results[i].len;
    const struct jtext_result *info = &page->info[i];
    const struct jtext_member *mem = jtext_page_members(page, i);
    const char *text = body + off;
    fields_init(r->fl);
    jtext_member_fields(text, mem, info->nmembers, r->fl, F_COUNT);
    if (r->fl[F_ID].type != JTEXT_STRING || r->fl[F_ID].len == 0)
        r->status = REC_NO_ID;
    r->deleted = r->fl[F_DELETED_AT].type == JTEXT_STRING ||
                 r->fl[F_DELETED_AT].type == JTEXT_OTHER;
    if (r->status == REC_NO_ID)
        return;
    r->name_off = arena->len;
    fsname_escape(r->fl[F_ID].str, r->fl[F_ID].len, arena);
    buf_add(arena, ".json", sizeof ".json");    /* with its NUL */
    if (r->deleted)
        return;
    r->size = info->sizes.pretty;
    r->lines = info->sizes.lines;
    r->json_len = info->sizes.compact;
    if (info->sizes.compact == len) {
        r->json_in_page = 1;
        r->json_off = off;
    } else {
        r->json_off = arena->len;
        export_compact(text, len, arena);
    }
    derive(r->model, text, len, mem, info->nmembers, r->fl, info->sizes.compact, arena,
           &r->d);
}

static void *prepare_page(void *ctx, const char *body, const struct jtext_page *page)
{
    struct fetch *f = ctx;      /* on the download thread: only its own fields (above) */
    struct prepared *p = calloc(1, sizeof *p);
    if (!p)
        abort();
    p->n = page->nresults;
    p->recs = calloc(p->n ? p->n : 1, sizeof *p->recs);
    if (!p->recs)
        abort();
    for (size_t i = 0; i < p->n; i++) {
        p->recs[i].model = f->m->index;
        prepare_record(body, page, i, &p->recs[i], &p->arena);
    }
    if (!f->tried)
        train(f, p, body);
    p->cd = f->cd;
    return p;
}

static void release_page(void *ctx, void *prepared)
{
    struct prepared *p = prepared;
    (void)ctx;
    for (size_t i = 0; i < p->n; i++)
        jtext_fields_free(p->recs[i].fl, F_COUNT);
    free(p->recs);
    buf_free(&p->arena);
    free(p);
}

/* How a record is stored: its compact JSON, packed with --compress when the
 * model has a dictionary (and the frame is smaller), else as it is. */
static struct store_body stored(struct fetch *f, const struct prepared *p, const char *json,
                                const struct rec *r)
{
    struct store_body b = { r->size, r->lines, 0, NULL, 0 };
    buf_reset(&f->zbuf);
    if (p->cd && f->dict_id > 0 &&
        (b.len = pack_compress(&f->pk_ctx, p->cd, json, r->json_len, &f->zbuf)) > 0) {
        b.dict = f->dict_id;
        b.bytes = f->zbuf.data;
        return b;
    }
    b.dict = STORE_COMPACT;
    b.bytes = json;
    b.len = r->json_len;
    return b;
}

/* Apply one prepared record of a page. Returns -1 only on a store error.
 * jansson parses the record only when it changed. */
static int apply_record(struct fetch *f, const char *page, size_t off, size_t len,
                        const struct rec *r, const struct prepared *p)
{
    const struct buf *arena = &p->arena;
    const char *text = page + off;
    struct store_record old = { 0 };
    int found, rc = 0;

    f->fetched++;
    if (r->status == REC_NO_ID) {
        f->skipped++;
        log_warnx("%s: skipped a record without a string id", f->m->dir);
        return 0;
    }
    const char *id = r->fl[F_ID].str;
    const char *id_json = text + r->fl[F_ID].raw.off;
    size_t id_len = r->fl[F_ID].raw.len;
    const char *name = arena->data + r->name_off;
    const char *json = rec_json(p, page, r);

    found = f->fresh && !r->deleted ? 0 : store_record_get(f->st, f->m->index, name, &old);
    if (found < 0)
        return -1;
    if (r->deleted) {
        if (found)
            rc = record_deleted(f, id, id_json, id_len, old.ino, old.node, name, old.ename,
                                old.rname, 1);
        goto out;
    }
    if (found && old.size == r->json_len && memcmp(old.body, json, r->json_len) == 0) {
        if (f->kind == SYNC_FULL)
            rc = store_record_touch(f->st, old.ino, f->gen);
        goto out;
    }
    const char *changed_at = r->fl[F_CHANGED_AT].str, *remote_id = r->fl[F_REMOTE_ID].str;
    struct store_derived d = derived_of(&r->d, arena);
    struct store_body b = stored(f, p, json, r);
    if (found) {
        uint64_t node;
        rc = store_record_update(f->st, old.ino, &b, changed_at, remote_id, &d, f->page_ns,
                                 f->gen, &node);
        if (rc == 0) {
            touch(f, INO_MODEL_DIR + (unsigned)f->m->index, node, name, 0);
            rc = record_updated(f, id_json, id_len, text, len, &old);
        }
        if (rc == 0)
            rc = views_changed(f, old.ino, name, old.ename, old.rname, d.ename, d.rname);
    } else {
        rc = record_created(f, id, id_json, id_len, name, &b, changed_at, remote_id, &d);
        if (rc == STORE_EXISTS && f->fresh) {
            /* the listing named it twice: it is compared like any other */
            log_info("%s: the listing holds %s more than once", f->m->dir, name);
            f->fresh = 0;
            f->fetched--;
            return apply_record(f, page, off, len, r, p);
        }
    }
out:
    if (found)
        store_record_free(&old);
    return rc;
}

/* Roll the open transaction back: its records and its nodes' notices go. */
static void abandon(struct fetch *f)
{
    store_rollback(f->st);
    flush_touched(f, 0);
    f->in_txn = 0;
}

/* Commit the open transaction, if any, and send its nodes' notices. */
static int commit_open(struct fetch *f)
{
    if (!f->in_txn)
        return 0;
    if (store_commit(f->st) < 0) {
        abandon(f);
        return -1;
    }
    if (f->txn_pages > 1)
        log_debug("%s: %d pages committed in one transaction", f->m->dir, f->txn_pages);
    f->in_txn = 0;
    flush_touched(f, 1);
    return 0;
}

static int on_page(void *ctx, const char *body, const struct jtext_page *page,
                   void *prepared)
{
    struct fetch *f = ctx;
    struct prepared *p = prepared;
    f->page_ns = clock_now_ns();
    if (!f->in_txn) {
        if (store_begin(f->st) < 0)
            return f->store_failed = 1, -1;
        f->in_txn = 1;
        f->txn_pages = 0;
        f->txn_ns = f->page_ns;
    }
    if (p->new_dict &&
        (f->dict_id = store_dict_add(f->st, f->m->index, f->new_dict.data, f->new_dict.len)) < 0) {
        abandon(f);
        return f->store_failed = 1, -1;
    }
    for (size_t i = 0; i < page->nresults; i++) {
        if (apply_record(f, body, page->results[i].off, page->results[i].len, &p->recs[i],
                         p) < 0) {
            abandon(f);
            return f->store_failed = 1, -1;
        }
    }
    f->txn_pages++;
    int more = store_building(f->st) && f->txn_pages < BATCH_PAGES &&
               clock_now_ns() - f->txn_ns < BATCH_NS &&
               kombo_pages_waiting(f->job->k, BATCH_WAIT_MS) > 0;
    if (!more && commit_open(f) < 0)
        return f->store_failed = 1, -1;
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
                     const char *name, const char *ename, const char *rname)
{
    return record_deleted(ctx, id, NULL, 0, ino, node, name, ename, rname, 0);
}

/* After a complete full listing: remove what it did not return, in batches. */
static int sweep(struct fetch *f)
{
    for (;;) {
        f->page_ns = clock_now_ns();
        if (store_begin(f->st) < 0)
            return -1;
        int n = store_records_stale(f->st, f->m->index, f->gen, 500, sweep_one, f);
        if (n < 0 || store_commit(f->st) < 0) {
            store_rollback(f->st);
            flush_touched(f, 0);
            return -1;
        }
        flush_touched(f, 1);
        if (n < 500)
            return 0;
    }
}

static void pruned(void *ctx, int64_t seq)
{
    char name[ENTRY_NAME_SIZE];
    entry_name(seq, name);
    touch(ctx, INO_CHANGES, ino_change(seq), name, 1);
}

static void fetch_free(struct fetch *f)
{
    flush_touched(f, 0);
    free(f->touched);
    pack_cdict_free(f->cd);
    pack_ctx_free(&f->pk_ctx);
    buf_free(&f->new_dict);
    buf_free(&f->zbuf);
}

/* The model's dictionary, if it has one (and --compress); whether the fetch
 * fills an empty model. */
static void packer_init(struct fetch *f)
{
    f->fresh = f->kind == SYNC_FULL && store_model_empty(f->st, f->m->index) == 1;
    f->was_empty = f->fresh;
    if (!f->job->pack) {
        f->tried = 1;           /* no dictionary: records stored compact as they are */
        return;
    }
    struct buf d = BUF_INIT;
    int64_t id = store_dict_latest(f->st, f->m->index, &d);
    if (id > 0 && (f->cd = pack_cdict_new(d.data, d.len))) {
        f->dict_id = id;
        f->tried = 1;
    } else if (id > 0) {
        log_warnx("%s: the cache's dictionary %lld is damaged: training another", f->m->dir,
                  (long long)id);
    }
    buf_free(&d);
}

int fetch_prune_changes(struct store *st, int64_t before_ns,
                        fetch_changed_fn changed, void *ctx)
{
    struct fetch_job job = { .st = st, .changed = changed, .ctx = ctx };
    struct fetch f = { .job = &job, .st = st };
    int rc = -1;
    if (store_begin(st) == 0) {
        if (store_changes_prune(st, before_ns, pruned, &f) >= 0 && store_commit(st) == 0) {
            flush_touched(&f, 1);
            rc = 0;
        } else {
            store_rollback(st);
        }
    }
    fetch_free(&f);
    return rc;
}

int fetch_run(const struct fetch_job *job, struct fetch_result *out)
{
    struct fetch f = { .job = job, .st = job->st, .m = job->m, .kind = job->kind,
                       .gen = job->gen };
    struct buf q = BUF_INIT;
    memset(out, 0, sizeof *out);
    packer_init(&f);
    buf_adds(&q, "page_size=250");
    if (job->kind == SYNC_DELTA)
        buf_printf(&q, "&updated_after=%s&include_deleted=true", job->updated_after);
    out->api = kombo_list_prepared(job->k, job->m->path, q.data, prepare_page, on_page,
                                   release_page, &f, &out->err);
    buf_free(&q);
    /* The pages of a batch the listing did not finish are kept, as the
     * pages before them are (a failed listing's pages are committed). */
    if (commit_open(&f) < 0)
        out->store_failed = 1;
    if (out->api == KOMBO_ABORTED && f.store_failed)
        out->store_failed = 1;
    if (out->api == KOMBO_OK && !out->store_failed && job->kind == SYNC_FULL && !f.was_empty &&
        sweep(&f) < 0)
        out->store_failed = 1;
    out->fetched = f.fetched;
    out->changed = f.changed;
    out->skipped = f.skipped;
    fetch_free(&f);
    return out->api == KOMBO_OK && !out->store_failed ? 0 : -1;
}

