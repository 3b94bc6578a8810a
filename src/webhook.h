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
 * Ownership: webhook_start() borrows the options, the sync engine and the
 * store handle it is given (a connection of its own: the receiver's thread
 * writes event ids through it); they must outlive the receiver.
 * The pure functions below do no I/O and allocate nothing the caller frees
 * unless stated.
 */
#ifndef KOMBOFS_WEBHOOK_H
#define KOMBOFS_WEBHOOK_H

#include <stddef.h>
#include <sys/socket.h>

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
/* Stop listening, finish or drop open requests, free everything; also
 * withdraws the .status provider from the sync engine. NULL is fine. */
void webhook_stop(struct webhook *w);

/* The "webhooks" object of .status: received, accepted, rejected,
 * duplicates, last_at. Returns a NEW jansson reference (json_t *), or NULL. */
void *webhook_status_json(struct webhook *w);

/* ---- pure parts (unit tests, fuzzers) ---- */

/* Parse a --webhook-listen value: "ADDR:PORT" (ADDR a numeric IPv4 address
 * or "localhost"), "[IPv6]:PORT" or ":PORT" (every address: the IPv6
 * wildcard, dual-stack; webhook_start falls back to 0.0.0.0 on a host
 * without IPv6). PORT is 1..65535 in decimal. Returns 0 and fills *sa and
 * *salen, or -1 with a one-line message in err. */
int webhook_parse_listen(const char *value, struct sockaddr_storage *sa,
                         socklen_t *salen, char *err, size_t errlen);

/* base64url without padding of HMAC-SHA256(secret, body); out must hold 44 bytes. */
void webhook_sign(const char *secret, const char *body, size_t len, char out[44]);

/* 1 if `signature` (the header value, may be NULL) is the right one, else 0.
 * Constant time in the signature's content. */
int webhook_verify(const char *secret, const char *body, size_t len,
                   const char *signature);

enum webhook_kind {
    WEBHOOK_INVALID = 0,        /* not JSON or not the Kombo envelope: 400 */
    WEBHOOK_IGNORED,            /* another integration or an unhandled type: 200 */
    WEBHOOK_DATA_CHANGED,       /* *mask holds the endpoints to refetch */
    WEBHOOK_INTEGRATION_DELETED,
    WEBHOOK_INTEGRATION_STATE,
};

struct webhook_event {
    enum webhook_kind kind;
    char id[128];               /* the event id */
    unsigned mask;              /* for DATA_CHANGED: models_table bits */
};

/* Classify a verified body for `integration`. */
void webhook_parse(const char *body, size_t len, const char *integration,
                   struct webhook_event *ev);

#endif
