/*
 * store.h — the SQLite cache: the only module that speaks SQL.
 *
 * One struct store is the writing connection, owned by whichever thread runs
 * syncs (one at a time: the caller serialises). Readers (FUSE threads) use
 * store_reader(), a read-only connection per thread with its prepared
 * statements, created on first use and closed by store_close().
 * WAL mode: readers never block the writer and never see a half-written
 * transaction.
 *
 * Inode numbers: a record's st_ino is STORE_INO_RECORD_BASE + rowid
 * (AUTOINCREMENT, so a number is never reused), stable for its lifetime.
 * Its FUSE node id also carries a version that grows with each change of
 * content (store_node()): to the kernel every version is another inode, so
 * a reader that opened the old version reads it to the end, unmixed, while
 * the next open gets the new one — the semantics of a rename over a file.
 * Replaced and deleted versions stay readable for STORE_SUPERSEDED_KEEP_S.
 * Change-log entries have STORE_INO_CHANGE_BASE + seq as both.
 *
 * Ownership: strings and blobs returned through out-parameters are malloc'd
 * copies the caller frees (or copied into caller buffers); nothing returned
 * points into SQLite.
 */
#ifndef KOMBOFS_STORE_H
#define KOMBOFS_STORE_H

#include <stddef.h>
#include <stdint.h>

#define STORE_SCHEMA_VERSION 2
#define STORE_INO_RECORD_BASE 1000ull
#define STORE_NODE_VER_SHIFT 36                 /* rowids below 2^36 */
#define STORE_NODE_VER_MASK 0xFFFFFFull         /* 24 bits of version */
#define STORE_INO_CHANGE_BASE (1ull << 62)
#define STORE_SUPERSEDED_KEEP_S 60

/* The node id of version ver of the record with st_ino ino. */
static inline uint64_t store_node(uint64_t ino, uint64_t ver)
{
    return ino + ((ver & STORE_NODE_VER_MASK) << STORE_NODE_VER_SHIFT);
}

/* The st_ino of a record node. */
static inline uint64_t store_node_ino(uint64_t node)
{
    return STORE_INO_RECORD_BASE +
           ((node - STORE_INO_RECORD_BASE) & ((1ull << STORE_NODE_VER_SHIFT) - 1));
}

struct store;
struct store_reader;

/* Open (creating with mode 0600 if needed) and check/upgrade the schema.
 * Returns NULL with a message in err if the file is not a kombofs cache,
 * is corrupt, or has a newer schema. Never wipes anything. */
struct store *store_open(const char *path, char *err, size_t errlen);
/* A further connection to a cache the process already opened (no check). */
struct store *store_open_again(const char *path, char *err, size_t errlen);
/* The daemon holds the cache: store_claim() at start, store_release() at a
 * clean stop. store_open() runs PRAGMA quick_check (and refuses a corrupt
 * file) only when the last claim was never released. */
int store_claim(struct store *st);
int store_release(struct store *st);
void store_close(struct store *st);
const char *store_path(const struct store *st);

int store_begin(struct store *st);
int store_commit(struct store *st);
void store_rollback(struct store *st);

/* ---- records (writer side) ---- */

struct store_record {
    uint64_t ino;       /* st_ino; 0 when absent */
    uint64_t node;      /* the current version's node id */
    char *body;         /* rendered file content */
    size_t size;
    char *changed_at;
};
void store_record_free(struct store_record *r);

/* Look a record up by model and file name. Returns 1 found, 0 absent, -1 error. */
int store_record_get(struct store *st, int model, const char *name,
                     struct store_record *out);

/* Insert a new record; gen marks it as seen by the full fetch of that
 * generation. Returns its inode (0 on error, e.g. the name exists). */
uint64_t store_record_insert(struct store *st, int model, const char *id,
                             const char *name, const char *body, size_t size,
                             const char *changed_at, const char *remote_id,
                             int64_t mtime_ns, int64_t gen);
/* Insert a new record together with its "created" change-log entry, which
 * borrows the record's body rather than copying it (see store.c, schema
 * version 2). fn(ctx, seq, &split) returns the entry's text without the
 * record (malloc'd, NUL-terminated) and sets split to where the record goes;
 * there the record appears without its final newline, and each of its line
 * breaks is followed by the indentation of the line the split is on: a
 * record rendered at depth 0 reads as if rendered in place. The entry's
 * time is mtime_ns. Returns the entry's seq (and *ino) or -1. */
typedef char *(*store_created_fn)(void *ctx, int64_t seq, size_t *split);
int64_t store_record_create(struct store *st, int model, const char *id,
                            const char *name, const char *body, size_t size,
                            const char *changed_at, const char *remote_id,
                            int64_t mtime_ns, int64_t gen, store_created_fn fn,
                            void *ctx, uint64_t *ino);
/* Replace the content of the record with st_ino ino; the old version stays
 * readable under its node for a while. *node gets the new version's node. */
int store_record_update(struct store *st, uint64_t ino, const char *body,
                        size_t size, const char *changed_at,
                        const char *remote_id, int64_t mtime_ns, int64_t gen,
                        uint64_t *node);
/* Mark an unchanged record as seen by generation gen. */
int store_record_touch(struct store *st, uint64_t ino, int64_t gen);
/* Delete a record (its last version stays readable for a while). */
int store_record_delete(struct store *st, uint64_t ino);

/* Records of `model` not seen by generation `gen`, in inode order, up to
 * `max` at a time: calls fn(ctx, ino, node, id, name) for each.
 * Returns the number visited or -1. */
typedef int (*store_stale_fn)(void *ctx, uint64_t ino, uint64_t node,
                              const char *id, const char *name);
int store_records_stale(struct store *st, int model, int64_t gen, int max,
                        store_stale_fn fn, void *ctx);
long store_record_count(struct store *st, int model);

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
/* First sequence number present (0 when empty) and the last ever given. */
int store_read_change_range(struct store_reader *r, int64_t *first,
                            int64_t *last);
long store_read_count(struct store_reader *r, int model);
/* The endpoint's watermark (malloc'd) or NULL. */
char *store_read_watermark(struct store_reader *r, int model);

#endif
