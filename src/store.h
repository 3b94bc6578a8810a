/*
 * store.h — the SQLite cache: the only module that speaks SQL.
 *
 * One struct store is the writing connection, owned by whichever thread runs
 * syncs (one at a time: the caller serialises). Readers (FUSE threads) use
 * store_reader(), a read-only connection per thread with its prepared
 * statements, created on first use and closed when the thread ends or by
 * store_close(), whichever comes first.
 * WAL mode: readers never block the writer and never see a half-written
 * transaction.
 *
 * Numbers (ino.h, slot 0): a record's st_ino is ino_record(rowid, 0)
 * (AUTOINCREMENT, so a rowid is never reused), stable for its lifetime. Its
 * FUSE node id also carries a version that grows with each change of
 * content: to the kernel every version is another inode, so a reader that
 * opened the old version reads it to the end, unmixed, while the next open
 * gets the new one — the semantics of a rename over a file. Replaced and
 * deleted versions stay readable for STORE_SUPERSEDED_KEEP_S.
 * Change-log entries have ino_change(seq) as both.
 *
 * Views (SPEC §10): each record also carries what its views need, derived
 * from its body by the writer (struct store_derived): its by-email and
 * by-remote-id names, and the sizes of its JSONL line and CSV cells. The
 * store keeps per model a data version and the exports' total sizes, updated
 * in the same transaction as the records, so an export's st_size is exact
 * and a reader of one version never sees the next (store_export_*).
 *
 * Ownership: strings and blobs returned through out-parameters are malloc'd
 * copies the caller frees (or copied into caller buffers); nothing returned
 * points into SQLite.
 */
#ifndef KOMBOFS_STORE_H
#define KOMBOFS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "ino.h"

#define STORE_SCHEMA_VERSION 4
#define STORE_SUPERSEDED_KEEP_S 60

struct store;
struct store_reader;

/* Once per process, before any other SQLite call: statement journals stay in
 * memory up to 1 MiB (SQLite's default spills them to a temporary file at
 * 64 KiB, which is four of our 16 KiB pages: a record update that touches its
 * indexes made and unlinked a file in /var/tmp on every delta). */
void store_library_init(void);

/* Open (creating with mode 0600 if needed) and check/upgrade the schema.
 * Returns NULL with a message in err if the file is not a kombofs cache,
 * is corrupt, or has a newer schema. Never wipes anything. */
struct store *store_open(const char *path, char *err, size_t errlen);
/* store_open for the daemon's cache in single mode: a cache that does not
 * exist yet is built with its first fetch written once, with no journal and
 * no sync (the WAL would write every page twice), until store_build_done().
 * A marker file "<cache>-building" exists meanwhile; a start that finds it
 * (a crash, a kill, a failed first fetch) removes the cache and builds it
 * again. Another connection opened during the build (store_open_again)
 * keeps SQLite's rollback journal for its own writes. */
struct store *store_open_build(const char *path, char *err, size_t errlen);
/* Whether the cache at path has the marker of an unfinished first build. */
int store_build_interrupted(const char *path);
/* The first fetch is complete: sync the file, switch it to WAL, remove the
 * marker. 0 (also when st was not being built) or -1. */
int store_build_done(struct store *st);
/* 1 while st is being built (store_open_build until store_build_done), else 0. */
int store_building(const struct store *st);
/* A further connection to a cache the process already opened (no check). */
struct store *store_open_again(const char *path, char *err, size_t errlen);
/* The daemon holds the cache: store_claim() at start, store_release() at a
 * clean stop. store_open() runs PRAGMA quick_check (and refuses a corrupt
 * file) only when the last claim was never released. */
int store_claim(struct store *st);
int store_release(struct store *st);
void store_close(struct store *st);
/* Multi mode: close the writing connection between batches (its files too,
 * once no reader holds them), so that open files do not grow with the
 * number of integrations; store_resume() opens it again. Everything but the
 * writer's functions works meanwhile (store_path, readers, exports).
 * suspend: 0, or -1 in a transaction (nothing done); resume: 0 or -1. */
int store_suspend(struct store *st);
int store_resume(struct store *st);
/* Multi mode, a cache that does not exist yet: nothing is created now; the
 * store starts suspended, and its first store_resume() (on the worker that
 * runs the first fetch) creates the file, its schema and the claim. An
 * existing file is opened as store_open() does. store_opened() is 0 until
 * that first resume: until then only store_path() and readers (which fail
 * cleanly on a missing file) may be used, and store_close() creates nothing.
 * Creating a cache is serialised in the process, so a further connection
 * (store_open_again, the webhook receiver's) may create it first. */
struct store *store_open_lazy(const char *path, char *err, size_t errlen);
int store_opened(const struct store *st);
const char *store_path(const struct store *st);

int store_begin(struct store *st);
int store_commit(struct store *st);
void store_rollback(struct store *st);

/* ---- records (writer side) ---- */

/* What a record's views need, derived from its body (fetch_derive()). */
struct store_derived {
    const char *ename;      /* by-email/ name (escaped, lower-cased address), or NULL */
    const char *rname;      /* by-remote-id/ name (escaped remote_id), or NULL */
    uint64_t jsize;         /* bytes of its compact JSON (its JSONL line without "\n") */
    uint64_t csize;         /* bytes of its CSV cells (export_csv_cells_size), employees */
    const char *keys;       /* its top-level keys, each NUL-terminated (CSV columns) */
    size_t keys_len;        /* 0: none (models without a CSV export) */
};

/* A record's content as the writer hands it over (schema version 4). Its
 * file is `size` bytes with `lines` line breaks. With dict > 0, bytes[0..len)
 * is a zstd frame (pack.h) of dictionary `dict` holding the record's compact
 * JSON, whose jtext_pretty() is the file; with dict STORE_COMPACT, it is that
 * compact JSON as it is. In both, size and lines must be given (the file is
 * not there to count: the change-log entry's size is computed from them).
 * With dict 0, bytes[0..len) is the file itself (len == size; lines 0: the
 * store counts them). */
struct store_body {
    uint64_t size, lines;
    int64_t dict;
    const void *bytes;
    size_t len;
};
/* store_body.dict: bytes is the record's compact JSON as it is (not packed) */
#define STORE_COMPACT (-1)

/* The dictionaries bodies are packed with: add one for `model` (its id, or
 * -1), and the latest of a model (its bytes appended to out; its id, 0 when
 * the model has none, -1 on error). A dictionary is never changed or removed:
 * rows point at it. */
int64_t store_dict_add(struct store *st, int model, const void *bytes, size_t len);
struct buf;
int64_t store_dict_latest(struct store *st, int model, struct buf *out);

struct store_record {
    uint64_t ino;       /* st_ino; 0 when absent */
    uint64_t node;      /* the current version's node id */
    char *body;         /* the record's compact JSON (its file without the layout) */
    size_t size;        /* its length */
    char *changed_at;
    char *ename;        /* its view names (NULL where none) */
    char *rname;
};
void store_record_free(struct store_record *r);

/* Look a record up by model and file name. Returns 1 found, 0 absent, -1 error. */
int store_record_get(struct store *st, int model, const char *name,
                     struct store_record *out);

/* Insert a new record together with its "created" change-log entry, which
 * borrows the record's body rather than copying it (see store.c, schema
 * version 2); gen marks it as seen by the full fetch of that generation.
 * fn(ctx, seq, &split) returns the entry's text without the record
 * (malloc'd, NUL-terminated) and sets split to where the record goes
 * (entry_render_created, entry_splice). The entry's time is mtime_ns.
 * Returns the entry's seq (and *ino), STORE_EXISTS (nothing written) when the
 * model holds a record of that name, or -1. */
typedef char *(*store_created_fn)(void *ctx, int64_t seq, size_t *split);
#define STORE_EXISTS (-2)       /* store_record_create: the model has that name already */
int64_t store_record_create(struct store *st, int model, const char *id,
                            const char *name, const struct store_body *b,
                            const char *changed_at, const char *remote_id,
                            const struct store_derived *d, int64_t mtime_ns,
                            int64_t gen, store_created_fn fn, void *ctx,
                            uint64_t *ino);
/* Replace the content of the record with st_ino ino; the old version stays
 * readable under its node for a while. *node gets the new version's node. */
int store_record_update(struct store *st, uint64_t ino, const struct store_body *b,
                        const char *changed_at, const char *remote_id,
                        const struct store_derived *d, int64_t mtime_ns, int64_t gen,
                        uint64_t *node);
/* Mark an unchanged record as seen by generation gen. */
int store_record_touch(struct store *st, uint64_t ino, int64_t gen);
/* Delete a record (its last version stays readable for a while). */
int store_record_delete(struct store *st, uint64_t ino);

/* Records of `model` not seen by generation `gen`, in inode order, up to
 * `max` at a time: calls fn(ctx, ino, node, id, name, ename, rname) for each
 * (the view names may be NULL). Returns the number visited or -1. */
typedef int (*store_stale_fn)(void *ctx, uint64_t ino, uint64_t node,
                              const char *id, const char *name,
                              const char *ename, const char *rname);
int store_records_stale(struct store *st, int model, int64_t gen, int max,
                        store_stale_fn fn, void *ctx);
long store_record_count(struct store *st, int model);
/* 1 when the model has no record, 0 when it has, -1 on error. */
int store_model_empty(struct store *st, int model);
/* The change log's first and last numbers through the writer (0, 0 if empty). */
int store_change_range(struct store *st, int64_t *first, int64_t *last);

/* The file names of the records of `model` whose by-email (view 0) or
 * by-remote-id (view 1) name is `vname`, smallest id first: fn(ctx, rowid,
 * record name, is_first). Returns the number or -1. For the notifier: a
 * change to one member can rename another's link. */
enum store_view { STORE_VIEW_EMAIL = 0, STORE_VIEW_RID = 1 };
typedef void (*store_member_fn)(void *ctx, uint64_t rowid, const char *name,
                                int first);
int store_view_members(struct store *st, enum store_view view, int model,
                       const char *vname, store_member_fn fn, void *ctx);

/* A first full fetch into an empty cache: the views' lookup indexes are
 * dropped (returns 1) and built once by store_views_index() at its end,
 * instead of row by row. Returns 0 if the cache holds records, -1 on error.
 * store_open() builds them if they are missing (a crash in between). */
int store_views_defer(struct store *st);
int store_views_index(struct store *st);

/* Records whose derived columns are missing (caches from schema version 2):
 * fn(ctx, model, body, size, &derived) fills them in; committed in batches.
 * Then the exports' totals are recomputed. Returns the number or -1. */
typedef int (*store_derive_fn)(void *ctx, int model, const char *body, size_t size,
                               struct store_derived *out);
long store_backfill(struct store *st, store_derive_fn fn, void *ctx);

/* ---- endpoint state ---- */

struct store_endpoint {
    char *watermark;        /* ISO-8601 start time of the last complete fetch, or NULL */
    int64_t gen;            /* generation of the last full fetch started */
    int64_t full_at;        /* unix seconds the last complete full fetch finished, 0 = never */
    char *status_json;      /* last_delta/last_full/last_error, for .status; may be NULL */
};
void store_endpoint_free(struct store_endpoint *e);
int store_endpoint_get(struct store *st, int model, struct store_endpoint *out);
int store_endpoint_set_watermark(struct store *st, int model, const char *watermark);
int store_endpoint_set_gen(struct store *st, int model, int64_t gen);
int store_endpoint_set_full_at(struct store *st, int model, int64_t full_at);
int store_endpoint_set_status(struct store *st, int model, const char *status_json);

/* ---- change log ---- */

/* Append an entry; the body is built by fn once the sequence number is
 * known: fn(ctx, seq) returns a malloc'd NUL-terminated body. Returns seq or -1. */
typedef char *(*store_change_fn)(void *ctx, int64_t seq);
int64_t store_change_add(struct store *st, int64_t at_ns, store_change_fn fn,
                         void *ctx);
/* Remove entries older than before_ns, calling fn(ctx, seq) for each one
 * removed (fn may be NULL); returns how many or -1. */
typedef void (*store_seq_fn)(void *ctx, int64_t seq);
long store_changes_prune(struct store *st, int64_t before_ns, store_seq_fn fn,
                         void *ctx);

/* ---- webhook event ids ---- */

/* Record a webhook event id durably (committed when this returns).
 * Returns 1 if it is new, 0 if it was seen before, -1 on error. Ids older
 * than keep_s seconds are forgotten on the way. */
int store_webhook_record(struct store *st, const char *id, int64_t now_s,
                         int64_t keep_s);

/* ---- meta (small key/value facts) ---- */
char *store_meta_get(struct store *st, const char *key);
int store_meta_set(struct store *st, const char *key, const char *value);

/* ---- readers (any thread) ---- */

struct store_attr {
    uint64_t node;      /* FUSE node id */
    uint64_t ino;       /* st_ino */
    uint64_t size;
    int64_t mtime_ns;
};

struct store_reader *store_reader(struct store *st);
/* A count that moves with every write the writer made visible to readers (a
 * commit, or a statement outside a transaction), read from any thread:
 * something read from a reader after it was taken is current while it has
 * not moved. */
uint64_t store_commits(struct store *st);
/* The export pins' turns (store.c, "exports"): until when a pin its reader
 * last read at used_ns, whose offsets took build_ns to build, stays that
 * reader's against a reader of another version waiting since since_ns
 * (clock_now_ns() times); current: no write was made visible since the
 * pin's transaction began (else its version may be one that only it holds).
 * A pure function, for tests. */
int64_t store_pin_kept_until(int64_t used_ns, int64_t build_ns, int current, int64_t since_ns);
/* How many read connections of st are open (threads that read it and are
 * still alive; for tests). */
int store_reader_count(struct store *st);

/* 1 found, 0 absent, -1 error. */
int store_read_lookup(struct store_reader *r, int model, const char *name,
                      struct store_attr *out);
/* For a record node, current or superseded: its model (-1 for a
 * superseded version) and attributes. */
int store_read_record_attr(struct store_reader *r, uint64_t node, int *model,
                           struct store_attr *out);
/* List records of a model after inode `after`: fn(ctx, name, attr) for each
 * until fn returns non-zero (entry not consumed) or max rows. Returns the
 * number consumed or -1. */
typedef int (*store_list_fn)(void *ctx, const char *name,
                             const struct store_attr *attr);
int store_read_list(struct store_reader *r, int model, uint64_t after,
                    int max, store_list_fn fn, void *ctx);
/* Read-ahead: the next records of a model after a rowid (listing order) or a
 * name (by_name), at most max, each with its bytes (borrowed until fn
 * returns; a non-zero return stops). The statement holds a read
 * transaction until it ends. Returns how many were given, or -1. */
typedef int (*store_body_fn)(void *ctx, const char *name, const struct store_attr *attr,
                             const void *body, size_t len);
int store_read_ahead(struct store_reader *r, int model, int by_name, uint64_t after_rowid,
                     const char *after_name, int max, store_body_fn fn, void *ctx);
/* How many records of a model lie strictly between two places of its listing
 * (rowids, or names when by_name; the strings are the caller's), counted up to
 * limit. Returns the count, or -1. */
int store_read_ahead_gap(struct store_reader *r, int model, int by_name, uint64_t from_rowid,
                         const char *from_name, uint64_t to_rowid, const char *to_name, int limit);
/* The model and file name of a record's current version `node`: 1 found
 * (name truncated to namelen), 0 not current or absent, -1 error. */
int store_read_record_key(struct store_reader *r, uint64_t node, int *model, char *name,
                          size_t namelen);
/* Copy up to n bytes of a record's content from offset off into dst.
 * Returns the number of bytes copied (0 past the end), or -1 if the record
 * is gone or on error. No statement stays open afterwards, so an idle
 * reader never pins the WAL. */
long store_read_body(struct store_reader *r, uint64_t node, char *dst,
                     size_t off, size_t n);
/* Record metadata for xattrs: malloc'd copies (NULL where the value is
 * null). Returns 1, 0 if the record is gone, -1 on error. */
int store_read_meta(struct store_reader *r, uint64_t node, char **id,
                    char **remote_id, char **changed_at);

/* Change-log entries. */
int store_read_change_attr(struct store_reader *r, int64_t seq,
                           struct store_attr *out);
int store_read_change_list(struct store_reader *r, int64_t after, int max,
                           store_list_fn fn, void *ctx);
long store_read_change_body(struct store_reader *r, int64_t seq, char *dst,
                            size_t off, size_t n);
/* Read-ahead in the change log: the entries after seq `after`, at most max,
 * each with its text (borrowed until fn returns; non-zero stops), named and
 * with attributes as store_read_change_list gives them. Returns how many
 * were given, or -1. */
int store_read_change_ahead(struct store_reader *r, int64_t after, int max, store_body_fn fn,
                            void *ctx);
/* First sequence number present (0 when empty) and the last ever given. */
int store_read_change_range(struct store_reader *r, int64_t *first,
                            int64_t *last);
long store_read_count(struct store_reader *r, int model);
/* The endpoint's watermark (malloc'd) or NULL. */
char *store_read_watermark(struct store_reader *r, int model);

/* ---- views: by-email/, by-remote-id/<dir>/ (SPEC §10) ---- */

/* A link: the record it points to. Its name in the view is vname for the
 * record with the smallest id of those sharing vname, else
 * "<vname>~<record name without .json>". */
struct store_link {
    uint64_t rowid;
    int model;
    int first;              /* the smallest id of its vname */
    int64_t mtime_ns;
    char vname[1024];       /* truncated names are skipped: see store.c */
    char name[1024];        /* the record's file name */
};

/* Resolve a link's name in the view of `model`: 1 found, 0 absent, -1 error. */
int store_read_link_lookup(struct store_reader *r, enum store_view view, int model,
                           const char *name, struct store_link *out);
/* The link of record rowid, if it has one in that view: 1, 0 or -1. */
int store_read_link(struct store_reader *r, enum store_view view, uint64_t rowid,
                    struct store_link *out);
/* List the links of `model` after rowid `after`, in rowid order:
 * fn(ctx, link) until it returns non-zero or max rows; returns the number
 * consumed or -1. */
typedef int (*store_link_fn)(void *ctx, const struct store_link *link);
int store_read_link_list(struct store_reader *r, enum store_view view, int model,
                         uint64_t after, int max, store_link_fn fn, void *ctx);
/* The link's name in its view (appended to out). */
struct buf;
void store_link_name(const struct store_link *l, struct buf *out);

/* ---- exports (SPEC §10) ---- */

/* exports/<dir>.jsonl is `which` = the model; exports/employees.csv is
 * INO_EXPORT_CSV. Each version of a model's data (a counter bumped by every
 * transaction that changes one of its records) is served from a read
 * transaction pinned at that version: the sizes and bytes of one version
 * never mix with the next. *ver = 0 asks for the current version (and sets
 * it). Returns 0, -ESTALE if that version is no longer current and no longer
 * pinned, -EIO on error. Any thread. */
int store_export_stat(struct store *st, unsigned which, uint64_t *ver, uint64_t *size,
                      int64_t *mtime_ns);
/* Copy up to n bytes from offset off of version ver: the count (0 past the
 * end), or -ESTALE / -EIO. */
long store_export_read(struct store *st, unsigned which, uint64_t ver, char *dst,
                       size_t off, size_t n);

#endif
