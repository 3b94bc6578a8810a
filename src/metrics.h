/*
 * metrics.h — the figures of SPEC §11 in Prometheus's text exposition
 * format (version 0.0.4), for GET /metrics (webhook.c serves it, on the
 * receiver's listener or on --metrics-listen).
 *
 * Two kinds of figures:
 *   - events, recorded where they happen and kept here: API requests
 *     (kombo.c), fetches (sync.c), webhooks (webhook.c), FUSE requests
 *     (fs.c). Counters and histograms; FUSE requests are lock-free atomics,
 *     the rest sit under one mutex (they are rare next to their own cost:
 *     an HTTP request, a fetch).
 *   - state, computed at scrape time from "sources": a function that
 *     returns the same JSON as an integration's .status (sync_status()), so
 *     that records per directory, the last successful fetches and the change
 *     log's head are never kept twice.
 *
 * Every name starts with "kombofs_". In multi mode (metrics_set_multi) every
 * per-integration series carries an `integration` label; in single mode
 * none does. Label values are escaped as the format says (\\, \", \n), and
 * bytes that are not UTF-8 become U+FFFD.
 *
 * Threads: every function may be called from any thread.
 *
 * Ownership: string arguments are borrowed for the call (what is kept is
 * copied), except a source's ctx, borrowed until metrics_remove_source().
 * A source function returns a NEW jansson reference (json_t *, declared
 * void * to keep jansson out of this header), which is released here.
 * metrics_render() returns malloc'd text the caller frees.
 */
#ifndef KOMBOFS_METRICS_H
#define KOMBOFS_METRICS_H

/* Multi mode: per-integration series get the `integration` label. Set
 * before the first event (sync_new does it for o->multi); never unset. */
void metrics_set_multi(int on);

/* One HTTP request to the Kombo API (each attempt, retries included):
 * `endpoint` is the path without ids ("/hris/employees",
 * "/integrations/{id}"), http_status 0 when no HTTP answer came (network
 * error), `retry` non-zero when the attempt repeats a failed one. A 429 is
 * also counted as throttled. */
void metrics_api_request(const char *integration, const char *endpoint, long http_status,
                         double seconds, int retry);

/* One fetch of one endpoint (sync.c's fetch_model): `full` 0 for a delta,
 * `result` "ok" or a short word for the failure (kombo_result_str(), or
 * "cache-error"). An "ok" also sets the last successful fetch to now. */
void metrics_fetch(const char *integration, const char *endpoint, int full,
                   const char *result, double seconds);

/* One request to the webhook path. The integration is named only for an
 * event routed to a mirrored integration (multi mode); NULL otherwise. */
enum metrics_webhook_result {
    METRICS_WEBHOOK_ACCEPTED,
    METRICS_WEBHOOK_DUPLICATE,
    METRICS_WEBHOOK_IGNORED,
    METRICS_WEBHOOK_REJECTED,
};
void metrics_webhook(const char *integration, enum metrics_webhook_result r);

/* FUSE requests, by type. slot: the tree's 16-bit slot (ino.h), 0 in single
 * mode and for multi mode's root. Lock-free (a relaxed atomic add). */
enum metrics_fuse_op {
    METRICS_FUSE_LOOKUP,
    METRICS_FUSE_GETATTR,
    METRICS_FUSE_SETATTR,
    METRICS_FUSE_READLINK,
    METRICS_FUSE_MKNOD,
    METRICS_FUSE_MKDIR,
    METRICS_FUSE_UNLINK,
    METRICS_FUSE_RMDIR,
    METRICS_FUSE_SYMLINK,
    METRICS_FUSE_RENAME,
    METRICS_FUSE_LINK,
    METRICS_FUSE_OPEN,
    METRICS_FUSE_READ,
    METRICS_FUSE_WRITE,
    METRICS_FUSE_OPENDIR,
    METRICS_FUSE_READDIR,
    METRICS_FUSE_READDIRPLUS,
    METRICS_FUSE_STATFS,
    METRICS_FUSE_SETXATTR,
    METRICS_FUSE_GETXATTR,
    METRICS_FUSE_LISTXATTR,
    METRICS_FUSE_REMOVEXATTR,
    METRICS_FUSE_CREATE,
    METRICS_FUSE_OP_COUNT
};
void metrics_fuse_request(unsigned slot, enum metrics_fuse_op op);
/* The integration id of a slot (multi mode), for the FUSE series' label;
 * NULL forgets it. Requests of a slot without a name count with slot 0's. */
void metrics_set_slot_name(unsigned slot, const char *integration);

/* A source of state: fn(ctx) returns the integration's .status JSON (a NEW
 * reference, or NULL): "endpoints".<dir>.{records, last_delta, last_full}
 * and "changes".{first_seq, last_seq} are read. Called at each scrape, on
 * the scraping thread. Adding a ctx already registered only counts it once
 * more; metrics_remove_source() waits for a scrape that is calling it and
 * forgets it after as many removals as additions. */
typedef void *(*metrics_source_fn)(void *ctx);
void metrics_add_source(const char *integration, metrics_source_fn fn, void *ctx);
void metrics_remove_source(const void *ctx);

/* The whole exposition (malloc'd, never NULL). */
char *metrics_render(void);
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Tests: forget every figure, source, slot name and the multi flag. */
void metrics_reset(void);

#endif
