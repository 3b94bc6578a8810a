/*
 * wevent.h — the pure half of the webhook receiver (SPEC §6,
 * kombo-api.md §5–§6): Kombo's X-Kombo-Signature (base64url without padding
 * of HMAC-SHA256 over the raw body, verified in constant time), the
 * classification of a verified event body, and the --webhook-listen value.
 * webhook.c puts them on the network; the unit tests and the fuzzer call
 * them directly.
 *
 * Ownership: every argument is borrowed and never kept; results go into
 * buffers and structs the caller provides. Nothing is allocated for the
 * caller except the parsed document wevent_parse() hands back through
 * `root_out` when asked (a NEW jansson reference). No function does I/O or
 * keeps state, so all may be called from any thread.
 */
#ifndef KOMBOFS_WEVENT_H
#define KOMBOFS_WEVENT_H

#include <jansson.h>
#include <stddef.h>
#include <sys/socket.h>

/* base64url without padding of HMAC-SHA256(secret, body); out must hold 44 bytes. */
void wevent_sign(const char *secret, const char *body, size_t len, char out[44]);

/* 1 if `signature` (the header value, may be NULL) is the right one, else 0.
 * Never 1 without a secret (NULL or ""). Constant time in the signature's
 * content. */
int wevent_verify(const char *secret, const char *body, size_t len,
                  const char *signature);

enum wevent_kind {
    WEVENT_INVALID = 0,         /* not JSON or not the Kombo envelope: 400 */
    WEVENT_IGNORED,             /* another integration or an unhandled type: 200 */
    WEVENT_DATA_CHANGED,        /* mask holds the endpoints to refetch */
    WEVENT_INTEGRATION_DELETED,
    WEVENT_INTEGRATION_STATE,
    WEVENT_INTEGRATION_CREATED, /* wevent_parse_any only */
};

struct wevent {
    enum wevent_kind kind;
    char id[128];               /* the event id; "" if the envelope is not valid */
    unsigned mask;              /* for DATA_CHANGED: models_table bits, else 0 */
    char integration[256];      /* wevent_parse_any: the integration it names */
};

/* Classify a verified body for `integration` (NULL: every event is another
 * integration's). `body` may be NULL. If `root_out` is not NULL, *root_out
 * receives the parsed document (a NEW reference) when the kind is not
 * INVALID, and NULL otherwise. */
void wevent_parse(const char *body, size_t len, const char *integration,
                  struct wevent *ev, json_t **root_out);

/* Multi mode (SPEC §9): the same for an event of any integration, whose id
 * goes to ev->integration (an id longer than it holds is INVALID);
 * integration-created is classified too (data.id). */
void wevent_parse_any(const char *body, size_t len, struct wevent *ev, json_t **root_out);

/* Parse a --webhook-listen value: "ADDR:PORT" (ADDR a numeric IPv4 address
 * or "localhost"), "[IPv6]:PORT" or ":PORT" (every address: the IPv6
 * wildcard, dual-stack; webhook_start falls back to 0.0.0.0 on a host
 * without IPv6). PORT is 1..65535 in decimal. Returns 0 and fills *sa and
 * *salen, or -1 with a one-line message in err. */
int wevent_parse_listen(const char *value, struct sockaddr_storage *sa,
                        socklen_t *salen, char *err, size_t errlen);

#endif
