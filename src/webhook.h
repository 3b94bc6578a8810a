/*
 * webhook.h — the webhook receiver (SPEC §6): libmicrohttpd on
 * --webhook-listen, POST --webhook-path with Kombo's X-Kombo-Signature
 * (base64url without padding of HMAC-SHA256 over the raw body), verified
 * in constant time before anything is parsed.
 *
 * An accepted data-changed event is recorded durably (its id, for
 * de-duplication for at least 7 days) before the 200 is sent, then its
 * models are queued as coalesced delta fetches (sync_request without
 * waiting): the reply never waits for a fetch.
 *
 * The same server answers GET /healthz and GET /metrics (SPEC §11, the
 * Prometheus text made by metrics.h, on this server's thread).
 *
 * The signature, the event classification and the --webhook-listen syntax
 * are wevent.h's pure functions; this module puts them on the network.
 *
 * Ownership: webhook_start() borrows the options, the sync engine and the
 * store handle it is given (a connection of its own: the receiver's thread
 * writes event ids through it); they must outlive the receiver.
 */
#ifndef KOMBOFS_WEBHOOK_H
#define KOMBOFS_WEBHOOK_H

#include <stddef.h>

#include "options.h"
#include "store.h"
#include "sync.h"

#define WEBHOOK_MAX_BODY (1024 * 1024)
#define WEBHOOK_KEEP_IDS_S (8 * 86400)     /* event ids kept for de-duplication */

struct webhook;

/* Start listening (o->webhook_listen is "ADDR:PORT", "[v6]:PORT" or ":PORT").
 * Returns NULL with a one-line message in err. */
struct webhook *webhook_start(const struct options *o, struct sync *sync,
                              struct store *st, char *err, size_t errlen);
/* Multi mode (SPEC §9): one receiver for every integration. A verified,
 * well-formed event naming any integration is handed to route(ctx, ev, data)
 * (data: the envelope's "data", borrowed), on the receiver's thread, which
 * records its id durably and acts, and returns how to answer. */
#include "wevent.h"
enum { WEBHOOK_ROUTE_DUPLICATE = 0, WEBHOOK_ROUTE_ACCEPTED = 1, WEBHOOK_ROUTE_IGNORED = 2 };
typedef int (*webhook_route_fn)(void *ctx, const struct wevent *ev, json_t *data);
struct webhook *webhook_start_routed(const struct options *o, webhook_route_fn route,
                                     void *ctx, char *err, size_t errlen);

/* GET /metrics (metrics.h) is answered on every listener started here. This
 * one serves only /metrics and /healthz (--metrics-listen=ADDR:PORT, same
 * syntax as --webhook-listen, when no receiver runs). NULL with a one-line
 * message in err. Stop it with webhook_stop(). */
struct webhook *webhook_start_metrics(const char *listen, char *err, size_t errlen);

/* Stop listening, finish or drop open requests, free everything; also
 * withdraws the .status provider from the sync engine. NULL is fine. */
void webhook_stop(struct webhook *w);

/* The "webhooks" object of .status: received, accepted, rejected,
 * duplicates, last_at. Returns a NEW jansson reference (json_t *), or NULL. */
void *webhook_status_json(struct webhook *w);

#endif
