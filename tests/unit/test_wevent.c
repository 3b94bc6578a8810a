/*
 * test_wevent.c — the webhook receiver's pure parts (wevent.c): the
 * signature (kombo-api.md §5 test vector), the event classification and the
 * --webhook-listen parser.
 */
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"
#include "models.h"
#include "tap.h"
#include "wevent.h"

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
    return wevent_verify(SECRET, vector, strlen(vector), sig);
}

static void test_signature(void)
{
    char sig[44], alt[64];
    ok(strlen(vector) == 250, "the test vector body is 250 bytes");
    wevent_sign(SECRET, vector, strlen(vector), sig);
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
        wevent_sign(SECRET, body, strlen(body), sig);
        found = strchr(sig, '-') && strchr(sig, '_');
    }
    ok(found, "found a body whose signature uses '-' and '_' (%s)", body);
    ok(wevent_verify(SECRET, body, strlen(body), sig), "... which verifies");
    snprintf(std, sizeof std, "%s", sig);
    for (char *p = std; *p; p++)
        *p = *p == '-' ? '+' : *p == '_' ? '/' : *p;
    ok(!wevent_verify(SECRET, body, strlen(body), std), "rejects the standard base64 '+/' alphabet");
    snprintf(alt, sizeof alt, "%s=", std);
    ok(!wevent_verify(SECRET, body, strlen(body), alt), "rejects standard base64 with padding");

    wevent_sign(SECRET, "{}", 2, sig);
    ok(!verify(sig), "rejects a signature made for another body");
    wevent_sign("another-secret", vector, strlen(vector), sig);
    ok(!verify(sig), "rejects a signature made with another secret");
    ok(!wevent_verify(SECRET, vector, strlen(vector) - 1, VECTOR_SIG),
       "rejects the body with its last byte cut");
    ok(!wevent_verify("", vector, strlen(vector), VECTOR_SIG), "an empty secret accepts nothing");
    ok(!wevent_verify(NULL, vector, strlen(vector), VECTOR_SIG), "a NULL secret accepts nothing");

    wevent_sign(SECRET, NULL, 0, sig);
    ok(strlen(sig) == 43, "an empty body has a 43-character signature");
    ok(wevent_verify(SECRET, NULL, 0, sig), "... which verifies");
    ok(wevent_verify(SECRET, "", 0, sig), "... also with a non-NULL empty body");

    /* The body is raw bytes: NUL and high bytes count. */
    static const char raw[] = { 'a', '\0', 'b', (char)0xff };
    wevent_sign(SECRET, raw, sizeof raw, sig);
    ok(wevent_verify(SECRET, raw, sizeof raw, sig), "binary bodies verify over every byte");
    ok(!wevent_verify(SECRET, raw, 1, sig), "... and not over a prefix");
}

static struct wevent parse(const char *body)
{
    struct wevent ev;
    memset(&ev, 0x5a, sizeof ev);
    wevent_parse(body, strlen(body), OURS, &ev, NULL);
    return ev;
}

static void test_parse_data_changed(void)
{
    struct wevent ev = parse(vector);
    ok(ev.kind == WEVENT_DATA_CHANGED, "the test vector is data-changed");
    ok(strcmp(ev.id, "Y7mQ2bWc9LkTz4HfPx3nRs8e") == 0, "its id");
    ok(ev.mask == (models_mask_for_kombo_model("hris_employees") |
                   models_mask_for_kombo_model("hris_employments")), "its mask");

    ev = parse("{\"id\":\"e1\",\"type\":\"data-changed\",\"data\":{\"integration_id\":\"" OURS
               "\",\"changed_models\":[{\"name\":\"hris_employments\"}]}}");
    ok(ev.kind == WEVENT_DATA_CHANGED && ev.mask == (bit("employees") | bit("employments")),
       "hris_employments -> employees|employments (0x%x)", ev.mask);

    ev = parse("{\"id\":\"e2\",\"type\":\"data-changed\",\"data\":{\"integration_id\":\"" OURS
               "\",\"changed_models\":[{\"name\":\"hris_absence_types\"}]}}");
    ok(ev.kind == WEVENT_DATA_CHANGED &&
       ev.mask == (bit("absences") | bit("absence-types") | bit("time-off-balances")),
       "hris_absence_types -> absences|absence-types|time-off-balances");

    ev = parse("{\"id\":\"e3\",\"type\":\"data-changed\",\"data\":{\"integration_id\":\"" OURS
               "\",\"changed_models\":[{\"name\":\"hris_skills\"},{\"name\":\"ats_jobs\"},"
               "{\"name\":\"hris_teams\"}]}}");
    ok(ev.kind == WEVENT_DATA_CHANGED && ev.mask == (bit("employees") | bit("groups")),
       "unknown model names are ignored, known ones kept");

    ev = parse("{\"id\":\"e4\",\"type\":\"data-changed\",\"data\":{\"integration_id\":\"" OURS
               "\",\"changed_models\":[{\"name\":\"hris_performance_reviews\"}]}}");
    ok(ev.kind == WEVENT_DATA_CHANGED && ev.mask == 0, "only unknown models: data-changed, empty mask");

    ev = parse("{\"id\":\"e5\",\"type\":\"data-changed\",\"data\":{\"integration_id\":\"" OURS
               "\",\"changed_models\":[]}}");
    ok(ev.kind == WEVENT_DATA_CHANGED && ev.mask == 0, "an empty list: data-changed, empty mask");

    ev = parse("{\"id\":\"e6\",\"type\":\"data-changed\",\"data\":{\"integration_id\":"
               "\"personio:OTHERotherOTHERother0000\",\"changed_models\":[{\"name\":\"hris_employees\"}]}}");
    ok(ev.kind == WEVENT_IGNORED && ev.mask == 0, "another integration: IGNORED");
    ok(strcmp(ev.id, "e6") == 0, "... with its id kept for the log");

    ev = parse("{\"id\":\"e7\",\"type\":\"data-changed\",\"data\":{\"integration_id\":\"" OURS
               "x\",\"changed_models\":[]}}");
    ok(ev.kind == WEVENT_IGNORED, "an integration id with our id as a prefix is another one");
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
        struct wevent ev = parse(bad[i]);
        ok(ev.kind == WEVENT_INVALID && ev.mask == 0, "INVALID: %.90s", bad[i][0] ? bad[i] : "(empty)");
    }

    char big[300];
    char id[200];
    memset(id, 'x', 128);
    id[128] = '\0';
    snprintf(big, sizeof big, "{\"id\":\"%s\",\"type\":\"integration-created\",\"data\":{}}", id);
    struct wevent ev = parse(big);
    ok(ev.kind == WEVENT_INVALID, "an id of 128 bytes (no room for the NUL) is INVALID");
    id[127] = '\0';
    snprintf(big, sizeof big, "{\"id\":\"%s\",\"type\":\"integration-created\",\"data\":{}}", id);
    ev = parse(big);
    ok(ev.kind == WEVENT_IGNORED && strlen(ev.id) == 127, "an id of 127 bytes fits");
    memset(id, 'y', 199);
    id[199] = '\0';
    snprintf(big, sizeof big, "{\"id\":\"%s\",\"type\":\"data-changed\",\"data\":{}}", id);
    ev = parse(big);
    ok(ev.kind == WEVENT_INVALID, "an id longer than the buffer is INVALID");

    ev = parse("{\"id\":\"nul\",\"type\":\"data-changed\",\"data\":{\"integration_id\":\"" OURS
               "\\u0000\",\"changed_models\":[]}}");
    ok(ev.kind == WEVENT_INVALID, "a NUL escaped into a string is INVALID");

    struct wevent e2;
    wevent_parse(vector, 100, OURS, &e2, NULL);
    ok(e2.kind == WEVENT_INVALID, "a truncated body is INVALID");
    wevent_parse(NULL, 0, OURS, &e2, NULL);
    ok(e2.kind == WEVENT_INVALID, "no body is INVALID");
}

static void test_parse_other_types(void)
{
    struct wevent ev = parse(
        "{\"id\":\"Cbfk5sHtDxrSrJBRjsDtbaN9\",\"type\":\"integration-created\",\"data\":{\"id\":\"" OURS
        "\",\"tool\":\"personio\",\"category\":\"HRIS\",\"end_user\":{\"origin_id\":\"36123\","
        "\"creator_email\":\"user@example.com\",\"organization_name\":\"Acme, Inc.\"}}}");
    ok(ev.kind == WEVENT_IGNORED, "integration-created: IGNORED");

    ev = parse("{\"id\":\"d1\",\"type\":\"integration-deleted\",\"data\":{\"id\":\"" OURS
               "\",\"tool\":\"personio\",\"category\":\"HRIS\",\"end_user\":{},"
               "\"deleted_at\":\"2026-05-02T07:41:10.512Z\"}}");
    ok(ev.kind == WEVENT_INTEGRATION_DELETED && strcmp(ev.id, "d1") == 0,
       "integration-deleted for ours: INTEGRATION_DELETED");

    ev = parse("{\"id\":\"d2\",\"type\":\"integration-deleted\",\"data\":{\"id\":"
               "\"workday:HWUTwvyx2wLoSUHphiWVrp28\",\"deleted_at\":\"2026-05-02T07:41:10.512Z\"}}");
    ok(ev.kind == WEVENT_IGNORED, "integration-deleted for another: IGNORED");

    ev = parse("{\"id\":\"d3\",\"type\":\"integration-deleted\",\"data\":{\"integration_id\":\"" OURS
               "\",\"deleted_at\":\"2026-05-02T07:41:10.512Z\"}}");
    ok(ev.kind == WEVENT_INVALID, "integration-deleted names the integration in data.id, not data.integration_id");

    ev = parse("{\"id\":\"s1\",\"type\":\"integration-state-changed\",\"data\":{\"integration_tool\":"
               "\"personio\",\"integration_id\":\"" OURS "\",\"integration_category\":\"HRIS\","
               "\"end_user\":{},\"qa_status\":\"PASSED\",\"setup_status\":\"COMPLETED\","
               "\"state\":\"INVALID\",\"updated_at\":\"2026-05-02T07:41:10.512Z\"}}");
    ok(ev.kind == WEVENT_INTEGRATION_STATE && strcmp(ev.id, "s1") == 0,
       "integration-state-changed for ours: INTEGRATION_STATE");

    ev = parse("{\"id\":\"s2\",\"type\":\"integration-state-changed\",\"data\":{\"integration_id\":"
               "\"workday:HWUTwvyx2wLoSUHphiWVrp28\",\"state\":\"INACTIVE\"}}");
    ok(ev.kind == WEVENT_IGNORED, "integration-state-changed for another: IGNORED");

    ev = parse("{\"id\":\"s3\",\"type\":\"integration-state-changed\",\"data\":{\"integration_id\":\"" OURS
               "\",\"state\":null}}");
    ok(ev.kind == WEVENT_INTEGRATION_STATE, "state-changed with null fields is accepted");

    ev = parse("{\"id\":\"f1\",\"type\":\"sync-finished\",\"data\":{\"integration_id\":\"" OURS "\"}}");
    ok(ev.kind == WEVENT_IGNORED, "sync-finished: IGNORED");
    ev = parse("{\"id\":\"f2\",\"type\":\"something-new\",\"data\":{}}");
    ok(ev.kind == WEVENT_IGNORED, "an unknown type: IGNORED");

    struct wevent e2;
    wevent_parse(vector, strlen(vector), NULL, &e2, NULL);
    ok(e2.kind == WEVENT_IGNORED, "no integration configured: every data-changed is another's");
}

/* The parsed document handed back to the receiver (act_deleted, act_state). */
static void test_parse_root(void)
{
    struct wevent ev;
    json_t *root = json_null();     /* anything but NULL */
    wevent_parse(vector, strlen(vector), OURS, &ev, &root);
    json_t *want = json_loads(vector, 0, NULL);
    ok(ev.kind == WEVENT_DATA_CHANGED && root && json_equal(root, want),
       "DATA_CHANGED: the parsed document is handed back");
    ok(root && root->refcount == 1, "... as a new reference");
    json_decref(want);
    json_decref(root);

    root = json_null();
    wevent_parse(vector, strlen(vector), "personio:another", &ev, &root);
    ok(ev.kind == WEVENT_IGNORED && json_is_object(root), "IGNORED: the document too");
    json_decref(root);

    root = json_null();
    wevent_parse("[1]", 3, OURS, &ev, &root);
    ok(ev.kind == WEVENT_INVALID && root == NULL, "INVALID (JSON, not the envelope): NULL");
    static const char bad_data[] = "{\"id\":\"a\",\"type\":\"data-changed\",\"data\":{}}";
    root = json_null();
    wevent_parse(bad_data, strlen(bad_data), OURS, &ev, &root);
    ok(ev.kind == WEVENT_INVALID && root == NULL && strcmp(ev.id, "a") == 0,
       "INVALID (the envelope, bad data): NULL, the id kept");
    root = json_null();
    wevent_parse(NULL, 0, OURS, &ev, &root);
    ok(ev.kind == WEVENT_INVALID && root == NULL, "no body: NULL");
}

static int listen_ok(const char *v, int family, const char *addr, unsigned port)
{
    struct sockaddr_storage sa;
    socklen_t len = 0;
    char err[256] = "", buf[INET6_ADDRSTRLEN] = "";
    if (wevent_parse_listen(v, &sa, &len, err, sizeof err) < 0) {
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
        int rc = wevent_parse_listen(bad[i], &sa, &len, err, sizeof err);
        ok(rc < 0 && strncmp(err, "--webhook-listen=", 17) == 0 && !strchr(err, '\n'),
           "rejected: '%s' (%s)", bad[i], err);
    }
    struct sockaddr_storage sa;
    socklen_t len;
    char err[256] = "";
    ok(wevent_parse_listen(NULL, &sa, &len, err, sizeof err) < 0, "NULL is rejected");
}

/* Multi mode: any integration's event, its id in ev.integration. */
static void test_parse_any(void)
{
    struct wevent ev;
    const char *other = "{\"id\":\"e1\",\"type\":\"data-changed\",\"data\":{\"integration_id\":"
                        "\"hibob:OTHER\",\"changed_models\":[{\"name\":\"hris_absences\"}]}}";
    wevent_parse_any(other, strlen(other), &ev, NULL);
    ok(ev.kind == WEVENT_DATA_CHANGED && strcmp(ev.integration, "hibob:OTHER") == 0 &&
       ev.mask == models_mask_for_kombo_model("hris_absences"),
       "any integration's data-changed, named in ev.integration");
    wevent_parse(other, strlen(other), OURS, &ev, NULL);
    ok(ev.kind == WEVENT_IGNORED, "... which single mode ignores");
    const char *created = "{\"id\":\"e2\",\"type\":\"integration-created\",\"data\":{\"id\":"
                          "\"personio:NEW\",\"tool\":\"personio\",\"category\":\"HRIS\","
                          "\"end_user\":{\"origin_id\":\"cust-1\"}}}";
    json_t *root = NULL;
    wevent_parse_any(created, strlen(created), &ev, &root);
    ok(ev.kind == WEVENT_INTEGRATION_CREATED && strcmp(ev.integration, "personio:NEW") == 0 &&
       root && strcmp(json_string_value(json_object_get(json_object_get(json_object_get(root, "data"),
                      "end_user"), "origin_id")), "cust-1") == 0,
       "integration-created: data.id, and the document for its origin_id");
    json_decref(root);
    const char *noid = "{\"id\":\"e3\",\"type\":\"integration-created\",\"data\":{}}";
    wevent_parse_any(noid, strlen(noid), &ev, NULL);
    ok(ev.kind == WEVENT_INVALID, "integration-created without data.id is INVALID in multi mode");
    char big[700], id[300];
    memset(id, 'x', 256);
    id[256] = '\0';
    snprintf(big, sizeof big, "{\"id\":\"e4\",\"type\":\"integration-deleted\",\"data\":"
             "{\"id\":\"%s\",\"deleted_at\":\"2026-01-01T00:00:00Z\"}}", id);
    wevent_parse_any(big, strlen(big), &ev, NULL);
    ok(ev.kind == WEVENT_INVALID, "an integration id longer than 255 bytes is INVALID");
    const char *state = "{\"id\":\"e5\",\"type\":\"integration-state-changed\",\"data\":{"
                        "\"integration_id\":\"x:y\",\"state\":\"INACTIVE\"}}";
    wevent_parse_any(state, strlen(state), &ev, NULL);
    ok(ev.kind == WEVENT_INTEGRATION_STATE && strcmp(ev.integration, "x:y") == 0,
       "state-changed of any integration");
}

int main(void)
{
    log_init(0);
    test_signature();
    test_parse_data_changed();
    test_parse_invalid();
    test_parse_other_types();
    test_parse_root();
    test_listen();
    test_parse_any();
    return tap_done_testing();
}
