/*
 * test_receiver.c — the webhook receiver on the loopback: answers, counters,
 * .status, and that starting and stopping it leaks no descriptor. It needs
 * libmicrohttpd and the sync engine, so it is a test of its own; the pure
 * half (signatures, events, addresses) is test_wevent.c, core only.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "models.h"
#include "store.h"
#include "sync.h"
#include "tap.h"
#include "webhook.h"
#include "wevent.h"

#define SECRET "test-webhook-secret"
#define OURS "personio:Q4vX8kLm2PzR7tYb3NcW9sHd"
#define VECTOR_SIG "mbsrnNJOKrGKennEgGDqkjJ8gaWDcs8UzCZAgAYqWDU"

static const char vector[] =
    "{\"id\":\"Y7mQ2bWc9LkTz4HfPx3nRs8e\",\"type\":\"data-changed\",\"data\":{"
    "\"integration_id\":\"personio:Q4vX8kLm2PzR7tYb3NcW9sHd\",\"integration_tool\":"
    "\"personio\",\"integration_category\":\"HRIS\",\"changed_models\":[{\"name\":"
    "\"hris_employees\"},{\"name\":\"hris_employments\"}]}}";

static int free_port(void)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
        return -1;
    close(fd);
    return ntohs(sa.sin_port);
}

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* Send one request (Connection: close); returns the status, body in out. */
static int http(int port, const char *method, const char *path, const char *sig,
                const char *body, char *out, size_t n)
{
    char head[512];
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    size_t blen = body ? strlen(body) : 0;
    int k = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
                     "Content-Length: %zu\r\n%s%s%s\r\n",
                     method, path, blen, sig ? "X-Kombo-Signature: " : "", sig ? sig : "",
                     sig ? "\r\n" : "");
    if (write(fd, head, (size_t)k) != k || (blen && write(fd, body, blen) != (ssize_t)blen)) {
        close(fd);
        return -1;
    }
    char buf[4096];
    size_t got = 0;
    ssize_t r;
    while (got + 1 < sizeof buf && (r = read(fd, buf + got, sizeof buf - 1 - got)) > 0)
        got += (size_t)r;
    buf[got] = '\0';
    close(fd);
    int status = -1;
    if (sscanf(buf, "HTTP/1.1 %d", &status) != 1)
        return -1;
    const char *b = strstr(buf, "\r\n\r\n");
    snprintf(out, n, "%s", b ? b + 4 : "");
    return status;
}

static long counter(struct webhook *w, const char *key)
{
    json_t *j = webhook_status_json(w);
    long v = (long)json_integer_value(json_object_get(j, key));
    json_decref(j);
    return v;
}

static void test_live(void)
{
    char dir[] = "/tmp/test_webhook_XXXXXX", path[128], err[256], listen[64], body[256];
    char resp[256], sig[44];
    ok(mkdtemp(dir) != NULL, "a temporary directory");
    snprintf(path, sizeof path, "%s/cache.db", dir);
    struct store *st = store_open(path, err, sizeof err);
    struct store *wst = store_open(path, err, sizeof err);
    ok(st && wst, "two connections to a new cache");
    int port = free_port();
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    struct options o;
    memset(&o, 0, sizeof o);
    o.integration = OURS;
    o.webhook_listen = listen;
    o.webhook_path = "/hook";
    o.webhook_secret = SECRET;
    o.models = MODELS_ALL;
    o.overlap = 60;
    struct sync *sync = sync_new(st, NULL, &o);

    int fds = count_fds();
    for (int i = 0; i < 20; i++)
        webhook_stop(webhook_start(&o, sync, wst, err, sizeof err));
    ok(count_fds() == fds, "20 starts and stops leak no descriptor (%d)", count_fds());

    struct webhook *w = webhook_start(&o, sync, wst, err, sizeof err);
    ok(w != NULL, "listening on %s (%s)", listen, w ? "" : err);
    int running = count_fds();
    struct webhook *w2 = webhook_start(&o, sync, wst, err, sizeof err);
    ok(!w2 && strstr(err, "Address already in use") && strstr(err, listen),
       "a second receiver on the same port fails: %s", err);
    ok(count_fds() == running, "... and leaks nothing");
    diag("descriptors: %d idle, %d with a receiver", fds, running);

    ok(http(port, "GET", "/healthz", NULL, NULL, resp, sizeof resp) == 200 &&
       strcmp(resp, "ok\n") == 0, "GET /healthz: 200 ok");
    ok(http(port, "GET", "/hook", NULL, NULL, resp, sizeof resp) == 405, "GET on the webhook path: 405");
    ok(http(port, "POST", "/webhook", NULL, "{}", resp, sizeof resp) == 404, "another path: 404");
    ok(http(port, "POST", "/hook", NULL, vector, resp, sizeof resp) == 401, "no signature: 401");
    ok(http(port, "POST", "/hook", "x", vector, resp, sizeof resp) == 401, "wrong signature: 401");
    ok(http(port, "POST", "/hook", VECTOR_SIG, vector, resp, sizeof resp) == 200 &&
       strcmp(resp, "ok\n") == 0, "the test vector: 200 ok");
    ok(http(port, "POST", "/hook", VECTOR_SIG, vector, resp, sizeof resp) == 200 &&
       strcmp(resp, "duplicate\n") == 0, "again: 200 duplicate");
    wevent_sign(SECRET, "[]", 2, sig);
    ok(http(port, "POST", "/hook", sig, "[]", resp, sizeof resp) == 400, "signed junk: 400");

    snprintf(body, sizeof body, "{\"id\":\"st1\",\"type\":\"integration-state-changed\",\"data\":"
             "{\"integration_id\":\"%s\",\"state\":\"INVALID\",\"setup_status\":\"COMPLETED\","
             "\"qa_status\":\"PASSED\",\"updated_at\":\"2026-01-01T00:00:00.000Z\"}}", OURS);
    wevent_sign(SECRET, body, strlen(body), sig);
    ok(http(port, "POST", "/hook", sig, body, resp, sizeof resp) == 200, "state-changed: 200");
    snprintf(body, sizeof body, "{\"id\":\"del1\",\"type\":\"integration-deleted\",\"data\":"
             "{\"id\":\"%s\",\"deleted_at\":\"2026-01-02T00:00:00.000Z\"}}", OURS);
    wevent_sign(SECRET, body, strlen(body), sig);
    ok(http(port, "POST", "/hook", sig, body, resp, sizeof resp) == 200, "integration-deleted: 200");

    char *status = sync_render(sync_status(sync));
    json_t *j = status ? json_loads(status, 0, NULL) : NULL;
    ok(j && strcmp(json_string_value(json_object_get(j, "state")), "error") == 0,
       ".status: state error after integration-deleted");
    ok(j && strcmp(json_string_value(json_object_get(json_object_get(j, "integration_state"), "state")),
                   "INVALID") == 0, ".status: integration_state.state");
    ok(j && strcmp(json_string_value(json_object_get(json_object_get(j, "integration_deleted"),
                                                     "deleted_at")), "2026-01-02T00:00:00.000Z") == 0,
       ".status: integration_deleted.deleted_at");
    json_decref(j);
    free(status);

    ok(counter(w, "received") == 8 && counter(w, "accepted") == 3 && counter(w, "rejected") == 4 &&
       counter(w, "duplicates") == 1 && counter(w, "ignored") == 0,
       "counters: received 8 = accepted 3 + rejected 4 + duplicates 1");
    json_t *wj = webhook_status_json(w);
    ok(json_is_string(json_object_get(wj, "last_at")), "last_at is set");
    json_decref(wj);
    ok(webhook_status_json(NULL) == NULL, "no receiver, no status");

    int before = count_fds();
    webhook_stop(w);
    webhook_stop(NULL);
    ok(before - count_fds() >= running - fds,
       "stopped: the socket and the poller are closed (%d -> %d)", before, count_fds());
    w = webhook_start(&o, sync, wst, err, sizeof err);
    ok(w != NULL, "the port can be listened on again at once (%s)", w ? "" : err);
    webhook_stop(w);
    ok(http(port, "GET", "/healthz", NULL, NULL, resp, sizeof resp) == -1, "nothing listens any more");

    o.webhook_listen = "127.0.0.1:http";
    ok(!webhook_start(&o, sync, wst, err, sizeof err) && strstr(err, "--webhook-listen="),
       "a bad --webhook-listen: %s", err);
    o.webhook_listen = listen;
    o.webhook_secret = "";
    ok(!webhook_start(&o, sync, wst, err, sizeof err) && strstr(err, "secret"),
       "no secret: %s", err);

    sync_free(sync);
    store_close(wst);
    store_close(st);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ok(system(cmd) == 0, "cleaned up");
}

int main(void)
{
    log_init(0);
    test_live();
    return tap_done_testing();
}
