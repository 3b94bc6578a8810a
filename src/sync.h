/*
 * sync.h — the sync engine: delta and full fetches per endpoint (SPEC §5),
 * the change log (SPEC §3), and the coalescing job queue with its worker
 * thread and schedule (periodic full fetch, poll fallback).
 *
 * Threads: the worker thread is the only writer to the store once started;
 * before sync_start() the caller may run sync_run_now() itself (start-up).
 * sync_request() may be called from any thread (FUSE .control, webhooks).
 *
 * Ownership: struct sync borrows the store, the options and the client
 * passed to sync_new(); they must outlive it. Strings returned are malloc'd
 * copies the caller frees.
 */
#ifndef KOMBOFS_SYNC_H
#define KOMBOFS_SYNC_H

#include <stdint.h>

#include "fetch.h"
#include "kombo.h"
#include "options.h"
#include "store.h"

struct sync;

/* Called by the worker after each committed transaction, for each record
 * or change-log file created, changed or removed (see fetch_changed_fn).
 * Must not block long. */
typedef fetch_changed_fn sync_changed_fn;

struct sync *sync_new(struct store *st, struct kombo *k,
                      const struct options *o);
void sync_free(struct sync *s);
void sync_set_listener(struct sync *s, sync_changed_fn fn, void *ctx);

/* Run one fetch of `kind` for every model in `mask`, in this thread.
 * Returns 0 if all succeeded, -1 otherwise (details in the status). */
int sync_run_now(struct sync *s, unsigned mask, enum sync_kind kind);

/* Mask of mirrored models that have never completed a full fetch. */
unsigned sync_models_without_snapshot(struct sync *s);

/* Worker threads shared by several engines (multi mode): at most
 * `workers` fetches run at once, engines with pending work take turns.
 * Free it after every engine that uses it was stopped. */
struct sync_pool;
struct sync_pool *sync_pool_new(int workers);
void sync_pool_free(struct sync_pool *p);
/* Run s on pool p (before sync_start); without it, s gets a pool of one. */
void sync_set_pool(struct sync *s, struct sync_pool *p);

/* Start / stop running queued and scheduled work (stop waits for a batch
 * in progress, which it cancels: its watermark stays unchanged). */
int sync_start(struct sync *s);
void sync_stop(struct sync *s);
/* Ask a running fetch to stop: async-signal-safe (one atomic store). */
void sync_cancel(struct sync *s);

/* Queue a fetch. With wait, block until a fetch that started after this
 * call has finished for every model in mask; returns 0 if all succeeded,
 * -1 if any failed. Without wait, returns 0 at once. */
int sync_request(struct sync *s, unsigned mask, enum sync_kind kind, int wait);

/* The state of the daemon for .status, as a NEW jansson reference
 * (json_t *, declared void * to keep jansson out of this header), or NULL. */
void *sync_status(struct sync *s);
/* Multi mode, the root's .status: from memory only, never the cache (1,000
 * integrations read through a reader each took 1.4-2.1 s): a NEW reference to
 * {"state", "records" (all endpoints), "last_delta", "last_full" (the
 * endpoints' latest run of each kind, or null), "last_error" (the first
 * endpoint's, or null)}. */
void *sync_summary(struct sync *s);
/* Indented JSON text with a final newline (malloc'd) of a json_t *; STEALS
 * the reference. NULL if json is NULL or on failure. */
char *sync_render(void *json);

/* The daemon-wide state shown in .status ("initial-sync", "ready", ...),
 * and the webhook receiver's facts for it. */
void sync_set_state(struct sync *s, const char *state);
void sync_set_integration_event(struct sync *s, const char *key,
                                const char *json);

/* Stop fetching for good (e.g. integration-deleted): queued and future
 * requests fail, .status shows state "error" and `why` as the last error.
 * In memory only: the caller persists it as meta "disabled" (store_meta_set)
 * through its own store handle; sync_new() reads it back after a restart. */
void sync_disable(struct sync *s, const char *why);

/* Multi mode: fn(ctx) is called once, by the worker, after the first fetch
 * that leaves every mirrored model with a complete snapshot (the tree may be
 * shown). */
void sync_set_ready(struct sync *s, void (*fn)(void *ctx), void *ctx);
/* fn(ctx) runs once on the worker thread before its first job (it may use
 * the engine's API client: the same thread). */
void sync_set_prelude(struct sync *s, void (*fn)(void *ctx), void *ctx);
/* integration-state-changed: a paused engine fetches nothing (state
 * "paused") until resumed. */
void sync_pause(struct sync *s, int paused);

/* A provider of the "webhooks" object of .status: returns a NEW jansson
 * reference (json_t *) or NULL. Called from FUSE threads. */
typedef void *(*sync_status_extra_fn)(void *ctx);
void sync_set_status_extra(struct sync *s, sync_status_extra_fn fn, void *ctx);

#endif
