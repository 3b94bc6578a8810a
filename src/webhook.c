/*
 * webhook.c — the webhook receiver (SPEC §6, kombo-api.md §5–§6).
 *
 * One libmicrohttpd daemon with its own polling thread (epoll where the
 * library has it) on a listening socket opened here, so that a port in use
 * is reported precisely. Every callback below runs on that one thread, so
 * the store handle (the receiver's own SQLite connection) and the fields
 * marked "receiver thread" need no lock; the counters are read by FUSE
 * threads for .status and sit under `lock`.
 *
 * A request to the webhook path goes through the access handler three ways:
 *   1. headers received: method and Content-Length are checked (405 / 413
 *      at once, without reading the body), per-request state is set up;
 *   2. body chunks: appended while the total stays within WEBHOOK_MAX_BODY,
 *      discarded (never buffered) once it does not;
 *   3. end of body: signature, then parsing (both wevent.c), then the answer.
 * The per-request state is freed in the request-completed callback.
 */
#include "webhook.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "models.h"
#include "wevent.h"

#define CONN_LIMIT 64u                  /* concurrent connections */
#define PER_IP_LIMIT 16u                /* ... from one address */
#define CONN_TIMEOUT_S 10u              /* idle connection timeout */
#define CONN_MEMORY ((size_t)32 * 1024) /* per connection: request line, headers, read buffer */
#define DISCARD_LIMIT ((size_t)4 * WEBHOOK_MAX_BODY) /* then the connection is dropped */
#define BODY_CHUNK ((size_t)16 * 1024)  /* first allocation for a body */
#define LISTEN_BACKLOG 128
#define LOG_WINDOW_S 10                 /* rejected-request warnings: at most */
#define LOG_PER_WINDOW 50               /* ... this many per window */

struct webhook {
    const struct options *o;
    struct sync *sync;
    struct store *st;
    webhook_route_fn route;             /* multi mode: sync and st are NULL */
    void *route_ctx;
    int metrics_only;                   /* --metrics-listen: o, sync and st are NULL */
    struct MHD_Daemon *daemon;

    pthread_mutex_t lock;               /* guards the counters */
    long received, accepted, rejected, duplicates, ignored;
    char last_at[32];                   /* "" until an event is accepted */

    /* receiver thread only */
    int deleted;                        /* integration-deleted was accepted */
    time_t log_window;
    int log_count;
    long log_suppressed;
};

/* Per-request state of a POST to the webhook path. */
struct request {
    char *body;
    size_t len, cap;
    int too_big;
    size_t discarded;
};

/* Mark a GET/HEAD /healthz or /metrics between the first and the final call. */
static char health_route, metrics_route;

/* ------------------------------------------------------------------------ */
/* Listening socket                                                         */
/* ------------------------------------------------------------------------ */

static int is_wildcard6(const struct sockaddr_storage *sa)
{
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
    return sa->ss_family == AF_INET6 &&
           memcmp(&s6->sin6_addr, &in6addr_any, sizeof in6addr_any) == 0;
}

/* A host without IPv6: the wildcard becomes 0.0.0.0. */
static void wildcard_to_ipv4(struct sockaddr_storage *sa, socklen_t *salen)
{
    in_port_t port = ((struct sockaddr_in6 *)sa)->sin6_port;
    struct sockaddr_in *s4 = (struct sockaddr_in *)sa;
    memset(sa, 0, sizeof *sa);
    s4->sin_family = AF_INET;
    s4->sin_port = port;
    s4->sin_addr.s_addr = htonl(INADDR_ANY);
    *salen = sizeof *s4;
}

static int open_listener(struct sockaddr_storage *sa, socklen_t salen,
                         const char *listen_value, char *err, size_t errlen)
{
    int fd = socket(sa->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 && errno == EAFNOSUPPORT && is_wildcard6(sa)) {
        wildcard_to_ipv4(sa, &salen);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    }
    if (fd < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", listen_value, strerror(errno));
        return -1;
    }
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  /* restart over TIME_WAIT */
    if (is_wildcard6(sa))
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    if (bind(fd, (struct sockaddr *)sa, salen) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", listen_value, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* ------------------------------------------------------------------------ */
/* Counters and logging                                                     */
/* ------------------------------------------------------------------------ */

enum outcome { O_ACCEPTED, O_REJECTED, O_DUPLICATE, O_IGNORED };

/* integration: the one an event was routed to (multi mode), else NULL. */
static void count(struct webhook *w, enum outcome what, const char *integration)
{
    static const enum metrics_webhook_result as_metric[] = {
        [O_ACCEPTED] = METRICS_WEBHOOK_ACCEPTED, [O_REJECTED] = METRICS_WEBHOOK_REJECTED,
        [O_DUPLICATE] = METRICS_WEBHOOK_DUPLICATE, [O_IGNORED] = METRICS_WEBHOOK_IGNORED,
    };
    metrics_webhook(integration, as_metric[what]);
    pthread_mutex_lock(&w->lock);
    w->received++;
    switch (what) {
    case O_ACCEPTED:
        w->accepted++;
        clock_format(clock_now_ns(), w->last_at, sizeof w->last_at);
        break;
    case O_REJECTED:
        w->rejected++;
        break;
    case O_DUPLICATE:
        w->duplicates++;
        break;
    case O_IGNORED:
        w->ignored++;
        break;
    }
    pthread_mutex_unlock(&w->lock);
}

void *webhook_status_json(struct webhook *w)
{
    if (!w)
        return NULL;
    pthread_mutex_lock(&w->lock);
    json_t *j = json_pack("{sI sI sI sI sI so}",
                          "received", (json_int_t)w->received,
                          "accepted", (json_int_t)w->accepted,
                          "rejected", (json_int_t)w->rejected,
                          "duplicates", (json_int_t)w->duplicates,
                          "ignored", (json_int_t)w->ignored,
                          "last_at", w->last_at[0] ? json_string(w->last_at) : json_null());
    pthread_mutex_unlock(&w->lock);
    return j;
}

/* Copy src into dst with anything outside printable ASCII as '?'. */
static void printable(char *dst, size_t n, const char *src)
{
    size_t i = 0;
    for (; src && src[i] && i + 1 < n; i++)
        dst[i] = (unsigned char)src[i] >= 0x20 && (unsigned char)src[i] < 0x7f ? src[i] : '?';
    dst[i] = '\0';
}

/* "1.2.3.4:5678" or "[::1]:5678", plus the X-Forwarded-For a proxy added. */
static void peer_name(struct MHD_Connection *c, char *out, size_t n)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    if (sa && sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof host);
        port = ntohs(s4->sin_port);
    } else if (sa && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof host);
        port = ntohs(s6->sin6_port);
    }
    int v6 = sa && sa->sa_family == AF_INET6;
    int k = snprintf(out, n, "%s%s%s:%u", v6 ? "[" : "", host, v6 ? "]" : "", port);
    const char *fwd = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Forwarded-For");
    if (fwd && k > 0 && (size_t)k < n) {
        char clean[80];
        printable(clean, sizeof clean, fwd);
        snprintf(out + k, n - (size_t)k, " (X-Forwarded-For: %s)", clean);
    }
}

/* At most LOG_PER_WINDOW warnings per LOG_WINDOW_S, so a flood cannot fill
 * the journal; what was left out is summed up in the next window. */
static int log_allowed(struct webhook *w)
{
    time_t now = time(NULL);
    if (now - w->log_window >= LOG_WINDOW_S) {
        if (w->log_suppressed)
            log_warnx("webhook: %ld more rejected requests were not logged",
                      w->log_suppressed);
        w->log_window = now;
        w->log_count = 0;
        w->log_suppressed = 0;
    }
    if (w->log_count >= LOG_PER_WINDOW) {
        w->log_suppressed++;
        return 0;
    }
    w->log_count++;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Answers                                                                  */
/* ------------------------------------------------------------------------ */

/* `text` must be a string literal (the response does not copy it). */
static enum MHD_Result reply(struct MHD_Connection *c, unsigned status,
                             const char *text, const char *allow)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        strlen(text), (void *)(uintptr_t)text, MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (allow)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

/* GET /metrics: the exposition, made now (metrics.h). */
static enum MHD_Result reply_metrics(struct MHD_Connection *c)
{
    char *text = metrics_render();
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text,
                                                             MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, METRICS_CONTENT_TYPE);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result rc = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return rc;
}

/* A rejected request to the webhook path: counted, logged, answered. */
static enum MHD_Result reject(struct webhook *w, struct MHD_Connection *c,
                              unsigned status, const char *text, const char *why,
                              const char *allow)
{
    count(w, O_REJECTED, NULL);
    if (log_allowed(w)) {
        char peer[160];
        peer_name(c, peer, sizeof peer);
        log_warnx("webhook: rejected a request from %s: %u %s", peer, status, why);
    }
    return reply(c, status, text, allow);
}

/* ------------------------------------------------------------------------ */
/* Events                                                                   */
/* ------------------------------------------------------------------------ */

static void mask_names(unsigned mask, char *out, size_t n)
{
    size_t k = 0;
    out[0] = '\0';
    for (int m = 0; m < MODEL_COUNT; m++) {
        if (!(mask & (1u << m)))
            continue;
        int r = snprintf(out + k, n - k, "%s%s", k ? "," : "", models_table[m].dir);
        if (r < 0 || (size_t)r >= n - k)
            break;
        k += (size_t)r;
    }
    if (!k)
        snprintf(out, n, "nothing mirrored");
}

static void act_data_changed(struct webhook *w, const struct wevent *ev)
{
    char names[160];
    unsigned mask = ev->mask & w->o->models;
    mask_names(mask, names, sizeof names);
    log_debug("webhook: data-changed %s: delta fetch of %s", ev->id, names);
    if (mask)
        sync_request(w->sync, mask, SYNC_DELTA, 0);
}

static void act_deleted(struct webhook *w, const struct wevent *ev, json_t *data)
{
    char when[48], why[96];
    printable(when, sizeof when, json_string_value(json_object_get(data, "deleted_at")));
    snprintf(why, sizeof why, "integration deleted at %s", when);
    char *text = json_dumps(data, JSON_COMPACT);
    if (text)
        sync_set_integration_event(w->sync, "integration_deleted", text);
    free(text);
    sync_disable(w->sync, why);
    if (store_meta_set(w->st, "disabled", why) < 0)    /* survives a restart */
        log_warnx("webhook: could not record the integration's deletion in the cache");
    w->deleted = 1;
    log_debug("webhook: integration-deleted %s", ev->id);
}

static void act_state(struct webhook *w, const struct wevent *ev, json_t *data)
{
    static const char *const keys[] = { "state", "setup_status", "qa_status",
                                        "updated_at" };
    json_t *j = json_object();
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        json_t *v = json_object_get(data, keys[i]);
        json_object_set(j, keys[i], v ? v : json_null());
    }
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (text)
        sync_set_integration_event(w->sync, "integration_state", text);
    free(text);
    char state[32];
    printable(state, sizeof state, json_string_value(json_object_get(data, "state")));
    log_info("webhook: integration state is now %s", state[0] ? state : "(not given)");
    log_debug("webhook: integration-state-changed %s", ev->id);
}

/* A verified, well-formed event for this integration. */
static enum MHD_Result handle_event(struct webhook *w, struct MHD_Connection *c,
                                    const struct wevent *ev, json_t *root)
{
    if (w->deleted && ev->kind != WEVENT_INTEGRATION_STATE) {
        count(w, O_IGNORED, NULL);
        log_debug("webhook: %s ignored: the integration was deleted", ev->id);
        return reply(c, MHD_HTTP_OK, "ignored\n", NULL);
    }
    int rc = store_webhook_record(w->st, ev->id, (int64_t)time(NULL), WEBHOOK_KEEP_IDS_S);
    if (rc < 0) {
        /* Not recorded: answer 500 so that Kombo may send it again. */
        return reject(w, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot record the event\n",
                      "cannot record the event id in the cache", NULL);
    }
    if (rc == 0) {
        count(w, O_DUPLICATE, NULL);
        log_debug("webhook: %s is a duplicate, nothing to do", ev->id);
        return reply(c, MHD_HTTP_OK, "duplicate\n", NULL);
    }
    json_t *data = json_object_get(root, "data");
    if (ev->kind == WEVENT_DATA_CHANGED)
        act_data_changed(w, ev);
    else if (ev->kind == WEVENT_INTEGRATION_DELETED)
        act_deleted(w, ev, data);
    else
        act_state(w, ev, data);
    count(w, O_ACCEPTED, NULL);
    return reply(c, MHD_HTTP_OK, "ok\n", NULL);
}

/* The whole body is here: verify, parse, act, answer. */
static enum MHD_Result finish_webhook(struct webhook *w, struct MHD_Connection *c,
                                      struct request *rq)
{
    if (rq->too_big)
        return reject(w, c, MHD_HTTP_CONTENT_TOO_LARGE, "body too large\n",
                      "body larger than 1 MiB", NULL);
    const char *sig = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Kombo-Signature");
    if (!sig)
        return reject(w, c, MHD_HTTP_UNAUTHORIZED, "unauthorized\n",
                      "no X-Kombo-Signature header", NULL);
    if (!wevent_verify(w->o->webhook_secret, rq->body, rq->len, sig))
        return reject(w, c, MHD_HTTP_UNAUTHORIZED, "unauthorized\n",
                      "X-Kombo-Signature does not match the body", NULL);
    struct wevent ev;
    json_t *root = NULL;
    if (w->route)
        wevent_parse_any(rq->body, rq->len, &ev, &root);
    else
        wevent_parse(rq->body, rq->len, w->o->integration, &ev, &root);
    enum MHD_Result r;
    if (w->route && ev.kind != WEVENT_INVALID && ev.kind != WEVENT_IGNORED) {
        int rc = w->route(w->route_ctx, &ev, json_object_get(root, "data"));
        if (rc < 0) {
            r = reject(w, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot record the event\n",
                       "cannot record the event id", NULL);
        } else {
            static const char *const answers[] = { "duplicate\n", "ok\n", "ignored\n" };
            /* Ignored ones name no integration: a shard sees every other shard's. */
            count(w, rc == WEBHOOK_ROUTE_ACCEPTED ? O_ACCEPTED
                     : rc == WEBHOOK_ROUTE_DUPLICATE ? O_DUPLICATE : O_IGNORED,
                  rc == WEBHOOK_ROUTE_IGNORED ? NULL : ev.integration);
            r = reply(c, MHD_HTTP_OK, answers[rc], NULL);
        }
    } else if (ev.kind == WEVENT_INVALID) {
        r = reject(w, c, MHD_HTTP_BAD_REQUEST, "not a Kombo webhook event\n",
                   "signed, but not JSON or not a Kombo event envelope", NULL);
    } else if (ev.kind == WEVENT_IGNORED) {
        count(w, O_IGNORED, NULL);
        log_debug("webhook: %s ignored (another integration or an unhandled type)", ev.id);
        r = reply(c, MHD_HTTP_OK, "ignored\n", NULL);
    } else {
        r = handle_event(w, c, &ev, root);
    }
    json_decref(root);
    return r;
}

/* ------------------------------------------------------------------------ */
/* The access handler                                                       */
/* ------------------------------------------------------------------------ */

/* Content-Length, or -1 when absent (chunked) or unparsable. */
static long long content_length(struct MHD_Connection *c)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (!v || !*v)
        return -1;
    unsigned long long n = 0;
    for (const char *p = v; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        if (n > (unsigned long long)WEBHOOK_MAX_BODY * 16)
            return (long long)WEBHOOK_MAX_BODY * 16;   /* large: the exact value does not matter */
        n = n * 10 + (unsigned)(*p - '0');
    }
    return (long long)n;
}

/* First call for the webhook path: check what can be checked from the headers. */
static enum MHD_Result begin_webhook(struct webhook *w, struct MHD_Connection *c,
                                     const char *method, void **con_cls)
{
    if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
        return reject(w, c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n",
                      "method is not POST", MHD_HTTP_METHOD_POST);
    long long cl = content_length(c);
    if (cl > WEBHOOK_MAX_BODY)
        return reject(w, c, MHD_HTTP_CONTENT_TOO_LARGE, "body too large\n",
                      "Content-Length larger than 1 MiB", NULL);
    struct request *rq = calloc(1, sizeof *rq);
    if (!rq)
        return MHD_NO;
    /* Memory follows the bytes that arrive, not what Content-Length promises:
     * a client that announces 1 MiB and sends nothing costs a few KiB. */
    rq->cap = cl > 0 && cl < (long long)BODY_CHUNK ? (size_t)cl : BODY_CHUNK;
    rq->body = malloc(rq->cap);
    if (!rq->body) {
        free(rq);
        return MHD_NO;
    }
    *con_cls = rq;
    return MHD_YES;
}

/* Append a body chunk while the total stays within the cap; past it, drop
 * what was buffered and only count. Returns -1 when the connection must go. */
static int append_body(struct request *rq, const char *data, size_t n)
{
    if (!rq->too_big && n > WEBHOOK_MAX_BODY - rq->len) {
        rq->too_big = 1;
        free(rq->body);
        rq->body = NULL;
        rq->len = rq->cap = 0;
    }
    if (rq->too_big) {
        rq->discarded += n;
        return rq->discarded > DISCARD_LIMIT ? -1 : 0;
    }
    if (rq->len + n > rq->cap) {
        size_t cap = rq->cap ? rq->cap : BODY_CHUNK;
        while (cap < rq->len + n)
            cap *= 2;
        if (cap > WEBHOOK_MAX_BODY)
            cap = WEBHOOK_MAX_BODY;
        char *b = realloc(rq->body, cap);
        if (!b)
            return -1;
        rq->body = b;
        rq->cap = cap;
    }
    memcpy(rq->body + rq->len, data, n);
    rq->len += n;
    return 0;
}

/* A body that cannot be kept (far over the cap, or no memory): no answer
 * can be queued while it is being uploaded, so the connection is closed. */
static enum MHD_Result drop(struct webhook *w, struct MHD_Connection *c,
                            const struct request *rq)
{
    count(w, O_REJECTED, NULL);
    if (log_allowed(w)) {
        char peer[160];
        peer_name(c, peer, sizeof peer);
        log_warnx("webhook: rejected a request from %s: connection closed, %s", peer,
                  rq->too_big ? "body far larger than 1 MiB" : "out of memory");
    }
    return MHD_NO;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct webhook *w = cls;
    (void)version;
    if (*con_cls == &health_route)
        return reply(c, MHD_HTTP_OK, "ok\n", NULL);
    if (*con_cls == &metrics_route)
        return reply_metrics(c);
    if (*con_cls) {
        struct request *rq = *con_cls;
        if (*upload_data_size) {
            int rc = append_body(rq, upload_data, *upload_data_size);
            *upload_data_size = 0;
            if (rc < 0)
                return drop(w, c, rq);
            return MHD_YES;
        }
        return finish_webhook(w, c, rq);
    }
    /* A webhook path of /healthz or /metrics takes their POSTs only. */
    int get = strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    int fixed = strcmp(url, "/healthz") == 0 || strcmp(url, "/metrics") == 0;
    if (!w->metrics_only && strcmp(url, w->o->webhook_path) == 0 &&
        !(fixed && strcmp(method, MHD_HTTP_METHOD_POST) != 0))
        return begin_webhook(w, c, method, con_cls);
    if (fixed) {
        if (!get)
            return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n", "GET, HEAD");
        *con_cls = url[1] == 'h' ? &health_route : &metrics_route;
        return MHD_YES;
    }
    log_debug("webhook: 404 for a request to another path");
    return reply(c, MHD_HTTP_NOT_FOUND, "not found\n", NULL);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    if (*con_cls && *con_cls != &health_route && *con_cls != &metrics_route) {
        struct request *rq = *con_cls;
        free(rq->body);
        free(rq);
    }
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    (void)cls;
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    log_warnx("webhook receiver: %s", msg);
}

/* ------------------------------------------------------------------------ */
/* Start and stop                                                           */
/* ------------------------------------------------------------------------ */

static struct webhook *serve(struct webhook *w, const char *listen, char *err, size_t errlen);

struct webhook *webhook_start_routed(const struct options *o, webhook_route_fn route,
                                     void *ctx, char *err, size_t errlen)
{
    struct webhook *w = webhook_start(o, NULL, NULL, err, errlen);
    if (w) {
        w->route = route;       /* before the first request: MHD's thread reads it after */
        w->route_ctx = ctx;
    }
    return w;
}

struct webhook *webhook_start(const struct options *o, struct sync *sync,
                              struct store *st, char *err, size_t errlen)
{
    if (!o->webhook_secret || !*o->webhook_secret) {
        snprintf(err, errlen, "no webhook secret (--webhook-secret-file=FILE or KOMBO_WEBHOOK_SECRET)");
        return NULL;
    }
    if (!o->webhook_path || o->webhook_path[0] != '/') {
        snprintf(err, errlen, "--webhook-path must start with '/'");
        return NULL;
    }
    struct webhook *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->o = o;
    w->sync = sync;
    w->st = st;
    return serve(w, o->webhook_listen, err, errlen);
}

struct webhook *webhook_start_metrics(const char *listen, char *err, size_t errlen)
{
    struct webhook *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->metrics_only = 1;
    return serve(w, listen, err, errlen);
}

/* Listen on `listen` and start w's HTTP server; frees w on failure. */
static struct webhook *serve(struct webhook *w, const char *listen, char *err, size_t errlen)
{
    struct sockaddr_storage sa;
    socklen_t salen = 0;
    int fd = -1;
    if (wevent_parse_listen(listen, &sa, &salen, err, errlen) < 0 ||
        (fd = open_listener(&sa, salen, listen, err, errlen)) < 0) {
        free(w);
        return NULL;
    }
    pthread_mutex_init(&w->lock, NULL);

    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    flags |= MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES ? MHD_USE_EPOLL
                                                                     : MHD_USE_POLL;
    if (sa.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* From here on the socket is MHD's: MHD_stop_daemon closes it, and a
     * failing MHD_start_daemon closes it (or, in some early failures, leaks
     * it); it is never closed here, so it can never be closed twice. */
    w->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, w,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, (void *)NULL,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, (void *)w,
        MHD_OPTION_CONNECTION_LIMIT, CONN_LIMIT,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, PER_IP_LIMIT,
        MHD_OPTION_CONNECTION_TIMEOUT, CONN_TIMEOUT_S,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, CONN_MEMORY,
        MHD_OPTION_STRICT_FOR_CLIENT, (int)1,
        MHD_OPTION_END);
    if (!w->daemon) {
        snprintf(err, errlen, "cannot start the HTTP server on %s", listen);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return NULL;
    }
    return w;
}

void webhook_stop(struct webhook *w)
{
    if (!w)
        return;
    if (w->sync)
        sync_set_status_extra(w->sync, NULL, NULL);     /* .status stops asking us */
    MHD_stop_daemon(w->daemon);     /* joins the thread, completes every request, closes the socket */
    pthread_mutex_destroy(&w->lock);
    free(w);
}
