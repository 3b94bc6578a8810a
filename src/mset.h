/*
 * mset.h — multi mode (SPEC §9): the set of integrations one daemon mirrors,
 * each a mirror of its own (cache, API client, sync engine, tree in its slot),
 * under one FUSE session and one webhook receiver.
 *
 * The roster (roster.h) remembers which integrations there are, their slots
 * and origins, across restarts; the integrations file is applied to it at
 * start and on reload (only what changed in the file). A mirror's tree is
 * published at once but listed in the root only after its first complete
 * fetch; its initial fetch runs in the background, so the mount appears at
 * once.
 *
 * Threads: mset_control() runs on FUSE threads, mset_route() on the
 * receiver's, mset_reload() on the main thread (SIGHUP); one mutex guards the
 * set and the roster.
 *
 * Ownership: mset_new() borrows the options, the notifier and the fsset,
 * which must outlive it; the trees it creates belong to the fsset.
 */
#ifndef KOMBOFS_MSET_H
#define KOMBOFS_MSET_H

#include <jansson.h>
#include <stddef.h>

#include "fs.h"
#include "notify.h"
#include "options.h"
#include "wevent.h"

struct mset;

/* Open the roster, read the integrations file, open every active
 * integration's cache and create its tree (the root tree too). NULL with a
 * one-line message in err (a bad file, an unwritable --cache-dir). */
struct mset *mset_new(const struct options *o, struct notify *nt, struct fsset *set,
                      char *err, size_t errlen);
/* Start every mirror's engine (initial fetches in the background). */
int mset_start(struct mset *m);
void mset_free(struct mset *m);     /* stops the engines first */
/* Ask every running fetch to stop: async-signal-safe. */
void mset_cancel(struct mset *m);

/* The root's .control: sync | resync | add ID | remove ID | purge ID | reload.
 * Returns 0 or an errno (EINVAL, EIO). Matches fs_control_fn. */
int mset_control(void *ctx, const char *cmd, size_t len);
/* The root's .status (malloc'd JSON text). Matches fs_status_fn. */
char *mset_status(void *ctx);
/* Webhooks routed by integration (webhook_route_fn). */
int mset_route(void *ctx, const struct wevent *ev, json_t *data);
/* The receiver's figures for the root's .status: fn(ctx) returns a NEW
 * jansson reference (webhook_status_json). */
void mset_set_webhooks(struct mset *m, void *(*fn)(void *ctx), void *ctx);
/* Read the integrations file again (SIGHUP, `reload`): 0 or an errno. */
int mset_reload(struct mset *m);

#endif
