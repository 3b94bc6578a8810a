/*
 * test_webhook.c — the receiver's pure parts: the signature (kombo-api.md §5
 * test vector), the event classification and the --webhook-listen parser.
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

#define SECRET "test-webhook-secret"
#define OURS "personio:Q4vX8kLm2PzR7tYb3NcW9sHd"
#define VECTOR_SIG "mbsrnNJOKrGKennEgGDqkjJ8gaWDcs8UzCZAgAYqWDU"

static const char vector[] =
    "{\"id\":\"Y7mQ2bWc9LkTz4HfPx3nRs8e\",\"type\":\"data-changed\",\"data\":{"
    "\"integration_id\":\"personio:Q4vX8kLm2PzR7tYb3NcW9sHd\",\"integration_tool\":"
    "\"personio\",\"integration_category\":\"HRIS\",\"changed_models\":[{\"name\":"
    "\"hris_employees\"},{\"name\":\"hris_employments\"}]}}";

static unsigned bit(const char *dir)
{
    return 1u << models_by_dir(dir)->index;
}

static int verify(const char *sig)
{
    return webhook_verify(SECRET, vector, strlen(vector), sig);
}

static void test_signature(void)
{
    char sig[44], alt[64];
    ok(strlen(vector) == 250, "the test vector body is 250 bytes");
    webhook_sign(SECRET, vector, strlen(vector), sig);
    ok(strcmp(sig, VECTOR_SIG) == 0, "sign: the test vector's digest (%s)", sig);
    ok(verify(VECTOR_SIG), "verify accepts the test vector");

    ok(!verify(NULL), "rejects a missing signature");
    ok(!verify(""), "rejects an empty signature");
    for (size_t i = 0; i < strlen(VECTOR_SIG); i += 7) {
        snprintf(alt, sizeof alt, "%s", VECTOR_SIG);
        alt[i] = alt[i] == 'A' ? 'B' : 'A';
        ok(!verify(alt), "rejects one changed character at %zu", i);
    }
    snprintf(alt, sizeof alt, "%s=", VECTOR_SIG);
    ok(!verify(alt), "rejects padding '=' appended");
    snprintf(alt, sizeof alt, "%s==", VECTOR_SIG);
    ok(!verify(alt), "rejects '==' appended");
    snprintf(alt, sizeof alt, "%sA", VECTOR_SIG);
    ok(!verify(alt), "rejects one extra character");
    snprintf(alt, sizeof alt, "%.42s", VECTOR_SIG);
    ok(!verify(alt), "rejects the signature truncated by one");
    snprintf(alt, sizeof alt, "%.20s", VECTOR_SIG);
    ok(!verify(alt), "rejects the signature truncated to 20");
    ok(!verify(" " VECTOR_SIG), "rejects a leading space");

    /* A body whose digest has '-' and '_': its standard-alphabet variants fail. */
    char body[64], std[44];
    int found = 0;
    for (int i = 0; i < 1000 && !found; i++) {
        snprintf(body, sizeof body, "{\"n\":%d}", i);
        webhook_sign(SECRET, body, strlen(body), sig);
        found = strchr(sig, '-') && strchr(sig, '_');
    }
    ok(found, "found a body whose signature uses '-' and '_' (%s)", body);
    ok(webhook_verify(SECRET, body, strlen(body), sig), "... which verifies");
    snprintf(std, sizeof std, "%s", sig);
    for (char *p = std; *p; p++)
        *p = *p == '-' ? '+' : *p == '_' ? '/' : *p;
    ok(!webhook_verify(SECRET, body, strlen(body), std), "rejects the standard base64 '+/' alphabet");
    snprintf(alt, sizeof alt, "%s=", std);
    ok(!webhook_verify(SECRET, body, strlen(body), alt), "rejects standard base64 with padding");

    webhook_sign(SECRET, "{}", 2, sig);
    ok(!verify(sig), "rejects a signature made for another body");
    webhook_sign("another-secret", vector, strlen(vector), sig);
    ok(!verify(sig), "rejects a signature made with another secret");
    ok(!webhook_verify(SECRET, vector, strlen(vector) - 1, VECTOR_SIG),
       "rejects the body with its last byte cut");
    ok(!webhook_verify("", vector, strlen(vector), VECTOR_SIG), "an empty secret accepts nothing");
    ok(!webhook_verify(NULL, vector, strlen(vector), VECTOR_SIG), "a NULL secret accepts nothing");

    webhook_sign(SECRET, NULL, 0, sig);
    ok(strlen(sig) == 43, "an empty body has a 43-character signature");
    ok(webhook_verify(SECRET, NULL, 0, sig), "... which verifies");
    ok(webhook_verify(SECRET, "", 0, sig), "... also with a non-NULL empty body");

    /* The body is raw bytes: NUL and high bytes count. */
    static const char raw[] = { 'a', '\0', 'b', (char)0xff };
    webhook_sign(SECRET, raw, sizeof raw, sig);
    ok(webhook_verify(SECRET, raw, sizeof raw, sig), "binary bodies verify over every byte");
    ok(!webhook_verify(SECRET, raw, 1, sig), "... and not over a prefix");
}

static struct webhook_event parse(const char *body)
{
    struct webhook_event ev;
    memset(&ev, 0x5a, sizeof ev);
    webhook_parse(body, strlen(body), OURS, &ev);
    return ev;
}

static void test_parse_data_changed(void)
{
    struct webhook_event ev = parse(vector);
    ok(ev.kind == WEBHOOK_DATA_CHANGED, "the test vector is data-changed");
    ok(strcmp(ev.id, "Y7mQ2bWc9LkTz4HfPx3nRs8e") == 0, "its id");
    ok(ev.mask == (models_mask_for_kombo_model("hris_employees") |
                   models_mask_for_kombo_model("hris_employments")), "its mask");

    ev = parse("{\"id\":\"e1\",\"type\":\"data-changed\",\"data\":{\"integration_id\":\"" OURS
               "\",\"changed_models\":[{\"name\":\"hris_employments\"}]}}");
    ok(ev.kind == WEBHOOK_DATA_CHANGED && ev.mask == (bit("employees") | bit("employments")),
       "hris_employments -> employees|employments (0x%x)", ev.mask);

    ev = parse("{\"id\":\"e2\",\"type\":\"data-changed\",\"data\":{\"integration_id\":\"" OURS
               "\",\"changed_models\":[{\"name\":\"hris_absence_types\"}]}}");
    ok(ev.kind == WEBHOOK_DATA_CHANGED &&
       ev.mask == (bit("absences") | bit("absence-types") | bit("time-off-balances")),
       "hris_absence_types -> absences|absence-types|time-off-balances");

    ev = parse("{\"id\":\"e3\",\"type\":\"data-changed\",\"data\":{\"integration_id\":\"" OURS
               "\",\"changed_models\":[{\"name\":\"hris_skills\"},{\"name\":\"ats_jobs\"},"
               "{\"name\":\"hris_teams\"}]}}");
    ok(ev.kind == WEBHOOK_DATA_CHANGED && ev.mask == (bit("employees") | bit("groups")),
       "unknown model names are ignored, known ones kept");

    ev = parse("{\"id\":\"e4\",\"type\":\"data-changed\",\"data\":{\"integration_id\":\"" OURS
               "\",\"changed_models\":[{\"name\":\"hris_performance_reviews\"}]}}");
    ok(ev.kind == WEBHOOK_DATA_CHANGED && ev.mask == 0, "only unknown models: data-changed, empty mask");

    ev = parse("{\"id\":\"e5\",\"type\":\"data-changed\",\"data\":{\"integration_id\":\"" OURS
               "\",\"changed_models\":[]}}");
    ok(ev.kind == WEBHOOK_DATA_CHANGED && ev.mask == 0, "an empty list: data-changed, empty mask");

    ev = parse("{\"id\":\"e6\",\"type\":\"data-changed\",\"data\":{\"integration_id\":"
               "\"personio:OTHERotherOTHERother0000\",\"changed_models\":[{\"name\":\"hris_employees\"}]}}");
    ok(ev.kind == WEBHOOK_IGNORED && ev.mask == 0, "another integration: IGNORED");
    ok(strcmp(ev.id, "e6") == 0, "... with its id kept for the log");

    ev = parse("{\"id\":\"e7\",\"type\":\"data-changed\",\"data\":{\"integration_id\":\"" OURS
               "x\",\"changed_models\":[]}}");
    ok(ev.kind == WEBHOOK_IGNORED, "an integration id with our id as a prefix is another one");
}

static void test_parse_invalid(void)
{
    static const char *const bad[] = {
        "",
        "not json",
        "{\"id\":\"a\",\"type\":\"data-changed\"",
        "[1,2,3]",
        "\"a string\"",
        "42",
        "null",
        "{}",
        "{\"type\":\"data-changed\",\"data\":{}}",
        "{\"id\":\"a\",\"data\":{}}",
        "{\"id\":\"a\",\"type\":\"data-changed\"}",
        "{\"id\":\"a\",\"type\":\"data-changed\",\"data\":null}",
        "{\"id\":\"a\",\"type\":\"data-changed\",\"data\":[]}",
        "{\"id\":\"a\",\"type\":\"data-changed\",\"data\":\"x\"}",
        "{\"id\":7,\"type\":\"data-changed\",\"data\":{}}",
        "{\"id\":\"\",\"type\":\"data-changed\",\"data\":{}}",
        "{\"id\":\"a b\",\"type\":\"data-changed\",\"data\":{}}",
        "{\"id\":\"a\\n\",\"type\":\"data-changed\",\"data\":{}}",
        "{\"id\":\"a\",\"type\":3,\"data\":{}}",
        "{\"id\":\"a\",\"type\":\"data-changed\",\"data\":{\"changed_models\":[]}}",
        "{\"id\":\"a\",\"type\":\"data-changed\",\"data\":{\"integration_id\":1,\"changed_models\":[]}}",
        "{\"id\":\"a\",\"type\":\"data-changed\",\"data\":{\"integration_id\":\"" OURS "\"}}",
        "{\"id\":\"a\",\"type\":\"data-changed\",\"data\":{\"integration_id\":\"" OURS "\",\"changed_models\":{}}}",
        "{\"id\":\"a\",\"type\":\"data-changed\",\"data\":{\"integration_id\":\"" OURS "\",\"changed_models\":[\"hris_employees\"]}}",
        "{\"id\":\"a\",\"type\":\"data-changed\",\"data\":{\"integration_id\":\"" OURS "\",\"changed_models\":[{\"name\":1}]}}",
        "{\"id\":\"a\",\"type\":\"data-changed\",\"data\":{\"integration_id\":\"" OURS "\",\"changed_models\":[{}]}}",
        "{\"id\":\"a\",\"type\":\"data-changed\",\"data\":{\"integration_id\":\"" OURS "\",\"changed_models\":[]}} trailing",
        "{\"id\":\"a\",\"id\":\"b\",\"type\":\"data-changed\",\"data\":{\"integration_id\":\"" OURS "\",\"changed_models\":[]}}",
        "{\"id\":\"a\",\"type\":\"integration-deleted\",\"data\":{\"tool\":\"personio\"}}",
        "{\"id\":\"a\",\"type\":\"integration-deleted\",\"data\":{\"id\":\"" OURS "\"}}",
        "{\"id\":\"a\",\"type\":\"integration-deleted\",\"data\":{\"id\":\"" OURS "\",\"deleted_at\":5}}",
        "{\"id\":\"a\",\"type\":\"integration-state-changed\",\"data\":{\"state\":\"ACTIVE\"}}",
        "{\"id\":\"a\",\"type\":\"integration-state-changed\",\"data\":{\"integration_id\":\"" OURS "\",\"state\":1}}",
        "{\"id\":\"a\",\"type\":\"integration-state-changed\",\"data\":{\"integration_id\":\"" OURS "\",\"updated_at\":{}}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct webhook_event ev = parse(bad[i]);
        ok(ev.kind == WEBHOOK_INVALID && ev.mask == 0, "INVALID: %.90s", bad[i][0] ? bad[i] : "(empty)");
    }

    char big[300];
    char id[200];
    memset(id, 'x', 128);
    id[128] = '\0';
    snprintf(big, sizeof big, "{\"id\":\"%s\",\"type\":\"integration-created\",\"data\":{}}", id);
    struct webhook_event ev = parse(big);
    ok(ev.kind == WEBHOOK_INVALID, "an id of 128 bytes (no room for the NUL) is INVALID");
    id[127] = '\0';
    snprintf(big, sizeof big, "{\"id\":\"%s\",\"type\":\"integration-created\",\"data\":{}}", id);
    ev = parse(big);
    ok(ev.kind == WEBHOOK_IGNORED && strlen(ev.id) == 127, "an id of 127 bytes fits");
    memset(id, 'y', 199);
    id[199] = '\0';
    snprintf(big, sizeof big, "{\"id\":\"%s\",\"type\":\"data-changed\",\"data\":{}}", id);
    ev = parse(big);
    ok(ev.kind == WEBHOOK_INVALID, "an id longer than the buffer is INVALID");

    ev = parse("{\"id\":\"nul\",\"type\":\"data-changed\",\"data\":{\"integration_id\":\"" OURS
               "\\u0000\",\"changed_models\":[]}}");
    ok(ev.kind == WEBHOOK_INVALID, "a NUL escaped into a string is INVALID");

    struct webhook_event e2;
    webhook_parse(vector, 100, OURS, &e2);
    ok(e2.kind == WEBHOOK_INVALID, "a truncated body is INVALID");
    webhook_parse(NULL, 0, OURS, &e2);
    ok(e2.kind == WEBHOOK_INVALID, "no body is INVALID");
}

static void test_parse_other_types(void)
{
    struct webhook_event ev = parse(
        "{\"id\":\"Cbfk5sHtDxrSrJBRjsDtbaN9\",\"type\":\"integration-created\",\"data\":{\"id\":\"" OURS
        "\",\"tool\":\"personio\",\"category\":\"HRIS\",\"end_user\":{\"origin_id\":\"36123\","
        "\"creator_email\":\"user@example.com\",\"organization_name\":\"Acme, Inc.\"}}}");
    ok(ev.kind == WEBHOOK_IGNORED, "integration-created: IGNORED");

    ev = parse("{\"id\":\"d1\",\"type\":\"integration-deleted\",\"data\":{\"id\":\"" OURS
               "\",\"tool\":\"personio\",\"category\":\"HRIS\",\"end_user\":{},"
               "\"deleted_at\":\"2026-05-02T07:41:10.512Z\"}}");
    ok(ev.kind == WEBHOOK_INTEGRATION_DELETED && strcmp(ev.id, "d1") == 0,
       "integration-deleted for ours: INTEGRATION_DELETED");

    ev = parse("{\"id\":\"d2\",\"type\":\"integration-deleted\",\"data\":{\"id\":"
               "\"workday:HWUTwvyx2wLoSUHphiWVrp28\",\"deleted_at\":\"2026-05-02T07:41:10.512Z\"}}");
    ok(ev.kind == WEBHOOK_IGNORED, "integration-deleted for another: IGNORED");

    ev = parse("{\"id\":\"d3\",\"type\":\"integration-deleted\",\"data\":{\"integration_id\":\"" OURS
               "\",\"deleted_at\":\"2026-05-02T07:41:10.512Z\"}}");
    ok(ev.kind == WEBHOOK_INVALID, "integration-deleted names the integration in data.id, not data.integration_id");

    ev = parse("{\"id\":\"s1\",\"type\":\"integration-state-changed\",\"data\":{\"integration_tool\":"
               "\"personio\",\"integration_id\":\"" OURS "\",\"integration_category\":\"HRIS\","
               "\"end_user\":{},\"qa_status\":\"PASSED\",\"setup_status\":\"COMPLETED\","
               "\"state\":\"INVALID\",\"updated_at\":\"2026-05-02T07:41:10.512Z\"}}");
    ok(ev.kind == WEBHOOK_INTEGRATION_STATE && strcmp(ev.id, "s1") == 0,
       "integration-state-changed for ours: INTEGRATION_STATE");

    ev = parse("{\"id\":\"s2\",\"type\":\"integration-state-changed\",\"data\":{\"integration_id\":"
               "\"workday:HWUTwvyx2wLoSUHphiWVrp28\",\"state\":\"INACTIVE\"}}");
    ok(ev.kind == WEBHOOK_IGNORED, "integration-state-changed for another: IGNORED");

    ev = parse("{\"id\":\"s3\",\"type\":\"integration-state-changed\",\"data\":{\"integration_id\":\"" OURS
               "\",\"state\":null}}");
    ok(ev.kind == WEBHOOK_INTEGRATION_STATE, "state-changed with null fields is accepted");

    ev = parse("{\"id\":\"f1\",\"type\":\"sync-finished\",\"data\":{\"integration_id\":\"" OURS "\"}}");
    ok(ev.kind == WEBHOOK_IGNORED, "sync-finished: IGNORED");
    ev = parse("{\"id\":\"f2\",\"type\":\"something-new\",\"data\":{}}");
    ok(ev.kind == WEBHOOK_IGNORED, "an unknown type: IGNORED");

    struct webhook_event e2;
    webhook_parse(vector, strlen(vector), NULL, &e2);
    ok(e2.kind == WEBHOOK_IGNORED, "no integration configured: every data-changed is another's");
}

static int listen_ok(const char *v, int family, const char *addr, unsigned port)
{
    struct sockaddr_storage sa;
    socklen_t len = 0;
    char err[256] = "", buf[INET6_ADDRSTRLEN] = "";
    if (webhook_parse_listen(v, &sa, &len, err, sizeof err) < 0) {
        diag("%s: %s", v, err);
        return 0;
    }
    if (sa.ss_family != family)
        return 0;
    if (family == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&sa;
        inet_ntop(AF_INET, &s4->sin_addr, buf, sizeof buf);
        return len == sizeof *s4 && ntohs(s4->sin_port) == port && strcmp(buf, addr) == 0;
    }
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&sa;
    inet_ntop(AF_INET6, &s6->sin6_addr, buf, sizeof buf);
    return len == sizeof *s6 && ntohs(s6->sin6_port) == port && strcmp(buf, addr) == 0;
}

static void test_listen(void)
{
    ok(listen_ok("127.0.0.1:8080", AF_INET, "127.0.0.1", 8080), "ADDR:PORT");
    ok(listen_ok("0.0.0.0:1", AF_INET, "0.0.0.0", 1), "0.0.0.0:1");
    ok(listen_ok("localhost:65535", AF_INET, "127.0.0.1", 65535), "localhost:65535");
    ok(listen_ok("[::1]:9000", AF_INET6, "::1", 9000), "[::1]:PORT");
    ok(listen_ok("[fe80::1:2]:443", AF_INET6, "fe80::1:2", 443), "[v6]:PORT");
    ok(listen_ok(":8443", AF_INET6, "::", 8443), ":PORT is the (dual-stack) wildcard");

    static const char *const bad[] = {
        "", "8080", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
        "127.0.0.1:99999999", "127.0.0.1:80x", "127.0.0.1:-1", "127.0.0.1:+80",
        "127.0.0.1: 80", " 127.0.0.1:80", "127.0.0.1 :80", "127.0.0:80", "256.0.0.1:80",
        "example.com:80", "::1:80", "[::1]", "[::1]80", "[::1:80", "[]:80", "[1.2.3.4]:80",
        "[::1]:", "[::1]:0", ":", ":0", ":http", "127.0.0.1:80:80",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct sockaddr_storage sa;
        socklen_t len;
        char err[256] = "";
        int rc = webhook_parse_listen(bad[i], &sa, &len, err, sizeof err);
        ok(rc < 0 && strncmp(err, "--webhook-listen=", 17) == 0 && !strchr(err, '\n'),
           "rejected: '%s' (%s)", bad[i], err);
    }
    struct sockaddr_storage sa;
    socklen_t len;
    char err[256] = "";
    ok(webhook_parse_listen(NULL, &sa, &len, err, sizeof err) < 0, "NULL is rejected");
}

/* ---- the live receiver, over plain sockets ---- */

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
    webhook_sign(SECRET, "[]", 2, sig);
    ok(http(port, "POST", "/hook", sig, "[]", resp, sizeof resp) == 400, "signed junk: 400");

    snprintf(body, sizeof body, "{\"id\":\"st1\",\"type\":\"integration-state-changed\",\"data\":"
             "{\"integration_id\":\"%s\",\"state\":\"INVALID\",\"setup_status\":\"COMPLETED\","
             "\"qa_status\":\"PASSED\",\"updated_at\":\"2026-01-01T00:00:00.000Z\"}}", OURS);
    webhook_sign(SECRET, body, strlen(body), sig);
    ok(http(port, "POST", "/hook", sig, body, resp, sizeof resp) == 200, "state-changed: 200");
    snprintf(body, sizeof body, "{\"id\":\"del1\",\"type\":\"integration-deleted\",\"data\":"
             "{\"id\":\"%s\",\"deleted_at\":\"2026-01-02T00:00:00.000Z\"}}", OURS);
    webhook_sign(SECRET, body, strlen(body), sig);
    ok(http(port, "POST", "/hook", sig, body, resp, sizeof resp) == 200, "integration-deleted: 200");

    char *status = sync_status_json(sync);
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
    test_signature();
    test_parse_data_changed();
    test_parse_invalid();
    test_parse_other_types();
    test_listen();
    test_live();
    return tap_done_testing();
}
