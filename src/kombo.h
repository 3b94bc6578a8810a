/*
 * kombo.h — the Kombo HTTP client (libcurl): auth headers, cursor
 * pagination, retries with backoff, the error envelope. Knows nothing of
 * SQLite or FUSE.
 *
 * One struct kombo is one keep-alive connection; use it from one thread at
 * a time. kombo_list_prepared() downloads the first page itself and the
 * rest, if any, through a helper thread of its own, ahead of the callback,
 * which runs on the caller's thread; the helper has ended when it returns. kombo_list() fetches one page at a time.
 * Ownership: kombo_new() copies its string arguments; the API key copy is
 * wiped by kombo_free(). Page bodies passed to callbacks are borrowed and
 * valid only during the callback.
 */
#ifndef KOMBOFS_KOMBO_H
#define KOMBOFS_KOMBO_H

#include <stdatomic.h>
#include <stddef.h>

#include "jtext.h"

enum kombo_result {
    KOMBO_OK = 0,
    KOMBO_TRANSIENT,    /* 429/5xx/network/malformed body, retries exhausted */
    KOMBO_AUTH,         /* 401/403: the key or the integration's permissions */
    KOMBO_NOT_FOUND,    /* 404 */
    KOMBO_CONFLICT,     /* 409, e.g. INTEGRATION.SETUP_SYNC_PENDING */
    KOMBO_CLIENT,       /* another 4xx */
    KOMBO_ABORTED,      /* the page callback failed, or cancelled */
};

struct kombo_error {
    long http_status;   /* 0 when no HTTP answer */
    char code[64];      /* Kombo's error.code, or "" */
    char message[512];  /* one line, never holds a secret */
};

struct kombo_retry {
    int max_attempts;       /* per request, default 6 */
    long base_ms;           /* first backoff, default 200 ms, doubled each time */
    long cap_ms;            /* backoff cap, default 30 s */
    long max_wait_ms;       /* cap on a 429's Retry-After/ratelimit-reset, default 120 s */
};

struct kombo;

struct kombo *kombo_new(const char *api_url, const char *api_key,
                        const char *integration);
void kombo_free(struct kombo *k);
/* Close the connection and the handle, and free the page buffers, until the
 * next request (multi mode, between batches: open sockets and memory do not
 * grow with the integrations). */
void kombo_release(struct kombo *k);
void kombo_set_retry(struct kombo *k, const struct kombo_retry *r);
/* Waits and retries stop early once *flag becomes non-zero. */
void kombo_set_cancel(struct kombo *k, const atomic_int *flag);

/* Called for each page, in order, on the caller's thread. Return 0 to go
 * on, 1 to stop early (KOMBO_OK), -1 to stop on an error (KOMBO_ABORTED);
 * either ends the download of the next page. */
typedef int (*kombo_page_fn)(void *ctx, const char *body,
                             const struct jtext_page *page);

/* GET path?query, then every following page (query + "&cursor=…") until
 * data.next is null. `query` is already URL-encoded. Fills *err on failure. */
enum kombo_result kombo_list(struct kombo *k, const char *path,
                             const char *query, kombo_page_fn fn, void *ctx,
                             struct kombo_error *err);

/* The same, with work done on the download thread: prepare(ctx, body, page)
 * runs there for each page as soon as it arrived (it must not touch what fn
 * changes), and its result, which may be NULL, is handed to fn with the page
 * on the caller's thread; release(ctx, prepared) frees it after fn, and
 * frees the results of pages fn never saw. */
typedef void *(*kombo_prepare_fn)(void *ctx, const char *body,
                                  const struct jtext_page *page);
typedef int (*kombo_prepared_fn)(void *ctx, const char *body,
                                 const struct jtext_page *page, void *prepared);
typedef void (*kombo_release_fn)(void *ctx, void *prepared);
enum kombo_result kombo_list_prepared(struct kombo *k, const char *path, const char *query,
                                      kombo_prepare_fn prepare, kombo_prepared_fn fn,
                                      kombo_release_fn release, void *ctx,
                                      struct kombo_error *err);

/* From kombo_list_prepared's callback: how many pages the helper has
 * downloaded that the callback has not seen yet, after waiting up to
 * wait_ms for one when there is none (0 also when there is no helper: a
 * one-page listing, or kombo_list; and when the listing has ended). */
int kombo_pages_waiting(struct kombo *k, long wait_ms);

/* GET /check-api-key: KOMBO_OK if the key is accepted. */
/* GET /integrations/{id} (kombo-api.md, errata): the integration's
 * end_user.origin_id into *origin_id (malloc'd; NULL when it has none). */
enum kombo_result kombo_get_integration(struct kombo *k, const char *id, char **origin_id,
                                        struct kombo_error *err);
enum kombo_result kombo_check_key(struct kombo *k, struct kombo_error *err);

/* Every client of the process together (one API key): requests sent,
 * retries among them, 429 answers. A 429 also pauses every client until its
 * Retry-After (or its backoff), since Kombo's rate limit is the key's. */
void kombo_stats(long *requests, long *retries, long *throttled);
const char *kombo_result_str(enum kombo_result r);

/* Call once at start-up, before any thread (curl_global_init). */
int kombo_global_init(void);
/* libdeflate's version (the one built with: it has no call that says its own). */
const char *kombo_inflate_version(void);

#endif
