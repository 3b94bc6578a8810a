/*
 * fetch.h — one fetch of one endpoint into the store (SPEC §3, §5): every
 * page in one transaction, each record rendered and compared with its file,
 * a change-log entry for each difference, and after a complete full listing
 * the removal of what it did not return. Also the change log's retention.
 *
 * No threads and no schedule here (that is sync.c): fetch_run() runs in the
 * caller's thread, which must own the store's writing connection.
 *
 * Ownership: the job's pointers are borrowed for the duration of the call.
 */
#ifndef KOMBOFS_FETCH_H
#define KOMBOFS_FETCH_H

#include <stdint.h>

#include "kombo.h"
#include "models.h"
#include "store.h"

enum sync_kind { SYNC_DELTA = 0, SYNC_FULL = 1 };

/* Called after each commit for every name created, changed or removed:
 * the parent directory's row in the namespace table (INO_MODEL_DIR + model,
 * INO_CHANGES, INO_BY_EMAIL, INO_RID_DIR + model, INO_EXPORTS: ino.h), the
 * file's node id (slot 0) and its name. */
typedef void (*fetch_changed_fn)(void *ctx, unsigned dir, uint64_t node,
                                 const char *name, int removed);

struct fetch_job {
    struct store *st;
    struct kombo *k;
    const struct model *m;
    enum sync_kind kind;
    const char *updated_after;  /* delta: the API parameter; full: NULL */
    int64_t gen;                /* full: this fetch's generation; delta: the current one */
    fetch_changed_fn changed;   /* may be NULL */
    void *ctx;
    int pack;                   /* --compress: records packed with a trained dictionary */
};

struct fetch_result {
    long fetched, changed, skipped;
    enum kombo_result api;      /* KOMBO_OK when every page came */
    int store_failed;           /* the cache could not be written */
    struct kombo_error err;
};

/* Returns 0 when the fetch completed (and, for a full fetch, the sweep too). */
int fetch_run(const struct fetch_job *job, struct fetch_result *out);

/* Fill in the view columns of records stored before schema version 3
 * (store_backfill). Returns how many or -1. */
long fetch_backfill(struct store *st);

/* Remove change-log entries older than before_ns, in one transaction. */
int fetch_prune_changes(struct store *st, int64_t before_ns,
                        fetch_changed_fn changed, void *ctx);

#endif
