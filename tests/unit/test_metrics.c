/*
 * test_metrics.c — the /metrics exposition (metrics.c): the text format
 * (HELP/TYPE, label escaping, UTF-8), histograms (cumulative buckets, +Inf,
 * _sum, _count), the integration label of multi mode, the FUSE table, the
 * sources (state read from .status JSON) and their registration counts.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "metrics.h"
#include "tap.h"

enum { HAMMER = 100000 };

static void *hammer(void *arg)
{
    (void)arg;
    for (int i = 0; i < HAMMER; i++)
        metrics_fuse_request(1000, METRICS_FUSE_READDIR);
    return NULL;
}

/* The exact line `line` is in text. */
static int has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
            return 1;
    return 0;
}

/* The value of the sample `series` (name and labels as printed), or -1. */
static double value_of(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; (p = strstr(p, series)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}

/* Every line is a comment or "name[{...}] value"; names start with kombofs_;
 * no sample's name and labels appear twice; the text ends in a newline. */
static int well_formed(const char *text, char *why, size_t n)
{
    size_t len = strlen(text);
    if (!len || text[len - 1] != '\n') {
        snprintf(why, n, "does not end in a newline");
        return 0;
    }
    char *copy = strdup(text), *save = NULL;
    char **seen = NULL;
    size_t nseen = 0;
    int good = 1;
    for (char *line = strtok_r(copy, "\n", &save); line && good; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') {
            if (strncmp(line, "# HELP kombofs_", 15) != 0 && strncmp(line, "# TYPE kombofs_", 15) != 0) {
                snprintf(why, n, "comment line: %s", line);
                good = 0;
            }
            continue;
        }
        char *sp = strrchr(line, ' ');
        if (strncmp(line, "kombofs_", 8) != 0 || !sp || sp[1] == '\0') {
            snprintf(why, n, "sample line: %s", line);
            good = 0;
            continue;
        }
        *sp = '\0';
        for (size_t i = 0; i < nseen && good; i++)
            if (strcmp(seen[i], line) == 0) {
                snprintf(why, n, "duplicate series: %s", line);
                good = 0;
            }
        seen = realloc(seen, (nseen + 1) * sizeof *seen);
        seen[nseen++] = line;
    }
    free(seen);
    free(copy);
    return good;
}

static void check(const char *text, const char *what)
{
    char why[512] = "";
    ok(well_formed(text, why, sizeof why), "%s: well formed %s", what, why);
}

static void test_empty(void)
{
    metrics_reset();
    char *t = metrics_render();
    check(t, "empty");
    static const char *const types[] = {
        "# TYPE kombofs_api_requests_total counter",
        "# TYPE kombofs_api_request_duration_seconds histogram",
        "# TYPE kombofs_api_retries_total counter",
        "# TYPE kombofs_api_throttled_total counter",
        "# TYPE kombofs_fetches_total counter",
        "# TYPE kombofs_fetch_duration_seconds histogram",
        "# TYPE kombofs_last_success_timestamp_seconds gauge",
        "# TYPE kombofs_records gauge",
        "# TYPE kombofs_change_log_head_sequence gauge",
        "# TYPE kombofs_webhooks_received_total counter",
        "# TYPE kombofs_webhooks_total counter",
        "# TYPE kombofs_fuse_requests_total counter",
    };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        ok(has_line(t, types[i]), "declares: %s", types[i]);
    ok(strstr(t, "# HELP kombofs_api_requests_total ") != NULL, "a HELP line");
    ok(!strstr(t, "\nkombofs_"), "no samples before any event");
    free(t);
}

static void test_histogram(void)
{
    metrics_reset();
    const double obs[] = { 0.003, 0.07, 0.07, 2, 100 };
    for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++)
        metrics_api_request("ignored:in-single-mode", "/hris/employees", 200, obs[i], 0);
    char *t = metrics_render();
    check(t, "histogram");
    ok(has_line(t, "kombofs_api_requests_total{endpoint=\"/hris/employees\",code=\"200\"} 5"),
       "requests by endpoint and code, no integration label in single mode");
    static const struct { const char *le; int n; } want[] = {
        { "0.005", 1 }, { "0.01", 1 }, { "0.025", 1 }, { "0.05", 1 }, { "0.1", 3 },
        { "0.25", 3 }, { "0.5", 3 }, { "1", 3 }, { "2.5", 4 }, { "5", 4 }, { "10", 4 },
        { "30", 4 }, { "60", 4 }, { "+Inf", 5 },
    };
    char line[200];
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        snprintf(line, sizeof line, "kombofs_api_request_duration_seconds_bucket"
                 "{endpoint=\"/hris/employees\",le=\"%s\"} %d", want[i].le, want[i].n);
        ok(has_line(t, line), "cumulative bucket: %s", line);
    }
    ok(has_line(t, "kombofs_api_request_duration_seconds_sum{endpoint=\"/hris/employees\"} 102.143"),
       "_sum is the sum of the observations");
    ok(has_line(t, "kombofs_api_request_duration_seconds_count{endpoint=\"/hris/employees\"} 5"),
       "_count is the number of observations");
    /* Buckets appear in order, +Inf last, then _sum, then _count. */
    const char *a = strstr(t, "le=\"60\"}"), *b = strstr(t, "le=\"+Inf\"}"),
               *c = strstr(t, "duration_seconds_sum"), *d = strstr(t, "duration_seconds_count");
    ok(a && b && c && d && a < b && b < c && c < d, "bucket order, then _sum and _count");
    free(t);

    metrics_reset();
    metrics_api_request(NULL, "/x", 200, 0.1, 0);
    metrics_api_request(NULL, "/x", 200, 0.2, 0);
    t = metrics_render();
    ok(has_line(t, "kombofs_api_request_duration_seconds_sum{endpoint=\"/x\"} 0.30000000000000004"),
       "a sum is printed so that it reads back exactly");
    ok(has_line(t, "kombofs_api_request_duration_seconds_bucket{endpoint=\"/x\",le=\"0.1\"} 1"),
       "an observation equal to a bound is in that bucket (le)");
    free(t);
}

static void test_api(void)
{
    metrics_reset();
    metrics_api_request("i", "/hris/employees", 429, 0.01, 0);
    metrics_api_request("i", "/hris/employees", 429, 0.01, 1);
    metrics_api_request("i", "/hris/employees", 200, 0.01, 1);
    metrics_api_request("i", "/hris/teams", 0, 0.01, 0);
    char *t = metrics_render();
    check(t, "api");
    ok(has_line(t, "kombofs_api_requests_total{endpoint=\"/hris/employees\",code=\"429\"} 2"), "429s by code");
    ok(has_line(t, "kombofs_api_requests_total{endpoint=\"/hris/employees\",code=\"200\"} 1"), "200s by code");
    ok(has_line(t, "kombofs_api_requests_total{endpoint=\"/hris/teams\",code=\"none\"} 1"),
       "no HTTP answer: code \"none\"");
    ok(has_line(t, "kombofs_api_retries_total{endpoint=\"/hris/employees\"} 2"), "retries");
    ok(has_line(t, "kombofs_api_throttled_total{endpoint=\"/hris/employees\"} 2"), "throttled");
    ok(!strstr(t, "kombofs_api_retries_total{endpoint=\"/hris/teams\"}"), "no retries series for teams");
    /* Series are sorted: employees' before teams'. */
    ok(strstr(t, "/hris/employees\",code=\"200\"") < strstr(t, "/hris/employees\",code=\"429\"") &&
       strstr(t, "/hris/employees\",code=\"429\"") < strstr(t, "/hris/teams\",code=\"none\""),
       "series in label order");
    free(t);
}

static void test_multi_and_escaping(void)
{
    metrics_reset();
    metrics_set_multi(1);
    metrics_set_multi(0);       /* never unset */
    metrics_api_request("personio:A", "/hris/employees", 200, 0.5, 0);
    metrics_api_request("we\"ird\\id\nx", "/hris/employees", 200, 0.5, 0);
    metrics_api_request("bad\xff" "byte \xc3\xbc ok", "/hris/employees", 200, 0.5, 0);
    metrics_api_request("over\xc0\xaflong", "/hris/employees", 200, 0.5, 0);
    metrics_webhook("personio:A", METRICS_WEBHOOK_ACCEPTED);
    metrics_webhook("personio:A", METRICS_WEBHOOK_DUPLICATE);
    metrics_webhook(NULL, METRICS_WEBHOOK_REJECTED);
    metrics_webhook(NULL, METRICS_WEBHOOK_IGNORED);
    char *t = metrics_render();
    check(t, "multi");
    ok(has_line(t, "kombofs_api_requests_total{integration=\"personio:A\",endpoint=\"/hris/employees\","
                   "code=\"200\"} 1"), "multi mode: the integration label comes first");
    ok(has_line(t, "kombofs_api_requests_total{integration=\"we\\\"ird\\\\id\\nx\","
                   "endpoint=\"/hris/employees\",code=\"200\"} 1"),
       "\", \\ and newline escaped in a label value");
    ok(has_line(t, "kombofs_api_requests_total{integration=\"bad\xef\xbf\xbd" "byte \xc3\xbc ok\","
                   "endpoint=\"/hris/employees\",code=\"200\"} 1"),
       "a byte that is not UTF-8 becomes U+FFFD, valid UTF-8 stays");
    ok(has_line(t, "kombofs_api_requests_total{integration=\"over\xef\xbf\xbd\xef\xbf\xbdlong\","
                   "endpoint=\"/hris/employees\",code=\"200\"} 1"),
       "an overlong sequence is not UTF-8");
    ok(has_line(t, "kombofs_webhooks_total{integration=\"personio:A\",result=\"accepted\"} 1"),
       "webhooks routed to an integration carry its label");
    ok(has_line(t, "kombofs_webhooks_total{integration=\"personio:A\",result=\"duplicate\"} 1"),
       "duplicates too");
    ok(has_line(t, "kombofs_webhooks_total{result=\"rejected\"} 1"), "rejected: no integration");
    ok(has_line(t, "kombofs_webhooks_total{result=\"ignored\"} 1"), "ignored: no integration");
    ok(has_line(t, "kombofs_webhooks_received_total{integration=\"personio:A\"} 2") &&
       has_line(t, "kombofs_webhooks_received_total 2"), "received: every request, unlabelled without one");
    ok(strstr(t, "# HELP kombofs_webhooks_total ") != NULL, "HELP of webhooks");
    free(t);
}

static void test_fuse(void)
{
    metrics_reset();
    metrics_fuse_request(0, METRICS_FUSE_LOOKUP);
    metrics_fuse_request(0, METRICS_FUSE_READ);
    metrics_fuse_request(7, METRICS_FUSE_READ);
    metrics_fuse_request(300, METRICS_FUSE_GETATTR);
    metrics_fuse_request(65535, METRICS_FUSE_OPEN);
    metrics_fuse_request(65536, METRICS_FUSE_OPEN);               /* out of range: ignored */
    metrics_fuse_request(1, (enum metrics_fuse_op)METRICS_FUSE_OP_COUNT);   /* ignored */
    char *t = metrics_render();
    check(t, "fuse single");
    ok(has_line(t, "kombofs_fuse_requests_total{type=\"read\"} 2"), "single mode: every slot summed");
    ok(has_line(t, "kombofs_fuse_requests_total{type=\"lookup\"} 1"), "lookup");
    ok(has_line(t, "kombofs_fuse_requests_total{type=\"getattr\"} 1"), "a slot of another block");
    ok(has_line(t, "kombofs_fuse_requests_total{type=\"open\"} 1"), "the last slot");
    ok(!strstr(t, "type=\"write\""), "a type never seen has no series");
    free(t);

    metrics_set_multi(1);
    metrics_set_slot_name(7, "personio:seven");
    metrics_set_slot_name(300, "hibob:three\"hundred");
    metrics_set_slot_name(300, "hibob:300");        /* renamed */
    metrics_set_slot_name(9, "personio:nine");
    metrics_set_slot_name(9, NULL);                 /* forgotten */
    metrics_fuse_request(9, METRICS_FUSE_READ);
    t = metrics_render();
    check(t, "fuse multi");
    ok(has_line(t, "kombofs_fuse_requests_total{integration=\"personio:seven\",type=\"read\"} 1"),
       "multi mode: a named slot carries its integration");
    ok(has_line(t, "kombofs_fuse_requests_total{integration=\"hibob:300\",type=\"getattr\"} 1"),
       "the latest name of a slot");
    ok(has_line(t, "kombofs_fuse_requests_total{type=\"read\"} 2"),
       "slot 0 and slots without a name count together, unlabelled");
    ok(has_line(t, "kombofs_fuse_requests_total{type=\"open\"} 1"), "slot 65535 without a name");
    free(t);

    /* Concurrent adds, some racing to allocate a slot block, are all counted. */
    metrics_reset();
    enum { THREADS = 4 };
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, hammer, NULL);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    t = metrics_render();
    char line[120];
    snprintf(line, sizeof line, "kombofs_fuse_requests_total{type=\"readdir\"} %d", THREADS * HAMMER);
    ok(has_line(t, line), "%d threads x %d requests: %s", THREADS, HAMMER, line);
    free(t);
}

/* A source: its ctx is the JSON text of a .status. */
static void *source(void *ctx)
{
    return json_loads(ctx, 0, NULL);
}

static const char status_a[] =
    "{\"endpoints\":{"
    " \"employees\":{\"records\":5,"
    "   \"last_delta\":{\"started_at\":\"2026-01-02T03:04:00.000Z\","
    "     \"finished_at\":\"2026-01-02T03:04:05.500Z\",\"result\":\"ok\"},"
    "   \"last_full\":{\"started_at\":\"2026-01-01T00:00:00.000Z\","
    "     \"finished_at\":\"2026-01-01T00:00:09.000Z\",\"result\":\"error\"}},"
    " \"groups\":{\"records\":0,\"last_delta\":null,\"last_full\":{"
    "   \"started_at\":\"2026-01-01T00:00:00.000Z\",\"finished_at\":\"2026-01-01T00:01:00.000Z\","
    "   \"result\":\"ok\"}}},"
    "\"changes\":{\"first_seq\":3,\"last_seq\":42}}";
static const char status_b[] =
    "{\"endpoints\":{\"employees\":{\"records\":7}},\"changes\":{\"first_seq\":0,\"last_seq\":0}}";

static void test_sources(void)
{
    metrics_reset();
    char a[sizeof status_a], b[sizeof status_b];
    memcpy(a, status_a, sizeof a);
    memcpy(b, status_b, sizeof b);
    metrics_add_source("personio:A", source, a);
    char *t = metrics_render();
    check(t, "source");
    ok(has_line(t, "kombofs_records{directory=\"employees\"} 5"), "records per directory");
    ok(has_line(t, "kombofs_records{directory=\"groups\"} 0"), "an empty directory is 0");
    ok(!strstr(t, "directory=\"absences\""), "a directory not in the status has no series");
    ok(has_line(t, "kombofs_change_log_head_sequence 42"), "the change log's head");
    ok(has_line(t, "kombofs_change_log_first_sequence 3"), "the change log's first entry");
    ok(has_line(t, "kombofs_last_success_timestamp_seconds{endpoint=\"/hris/employees\","
                   "kind=\"delta\"} 1767323045.5"), "last successful delta: its end, unix seconds");
    ok(has_line(t, "kombofs_last_success_timestamp_seconds{endpoint=\"/hris/groups\","
                   "kind=\"full\"} 1767225660"), "last successful full");
    ok(!strstr(t, "{endpoint=\"/hris/employees\",kind=\"full\"}"),
       "a last run that failed, and none ok seen: no series");
    free(t);

    /* A fetch that ends now is later than the status's: it wins, and stays
     * when the status says a later run failed. */
    int64_t before = clock_now_ns() / 1000000000;
    metrics_fetch("personio:A", "/hris/employees", 1, "ok", 12.5);
    metrics_fetch("personio:A", "/hris/employees", 0, "unavailable", 0.2);
    t = metrics_render();
    check(t, "fetch");
    double v = value_of(t, "kombofs_last_success_timestamp_seconds{endpoint=\"/hris/employees\",kind=\"full\"}");
    ok(v >= (double)before && v < (double)before + 60, "a full fetch seen ok: now (%f)", v);
    v = value_of(t, "kombofs_last_success_timestamp_seconds{endpoint=\"/hris/employees\",kind=\"delta\"}");
    ok(v == 1767323045.5, "a failed delta leaves the last success as it was (%f)", v);
    ok(has_line(t, "kombofs_fetches_total{endpoint=\"/hris/employees\",kind=\"full\",result=\"ok\"} 1"),
       "fetches by endpoint, kind and result");
    ok(has_line(t, "kombofs_fetches_total{endpoint=\"/hris/employees\",kind=\"delta\",result=\"unavailable\"} 1"),
       "a failed fetch's result");
    ok(has_line(t, "kombofs_fetch_duration_seconds_bucket{endpoint=\"/hris/employees\",kind=\"full\",le=\"10\"} 0") &&
       has_line(t, "kombofs_fetch_duration_seconds_bucket{endpoint=\"/hris/employees\",kind=\"full\",le=\"30\"} 1") &&
       has_line(t, "kombofs_fetch_duration_seconds_sum{endpoint=\"/hris/employees\",kind=\"full\"} 12.5"),
       "fetch durations");
    free(t);

    /* Single mode: a second source would repeat the same series; only one shows. */
    metrics_add_source("personio:B", source, b);
    t = metrics_render();
    check(t, "two sources, single mode");
    ok(has_line(t, "kombofs_records{directory=\"employees\"} 5") ||
       has_line(t, "kombofs_records{directory=\"employees\"} 7"), "one of them");
    free(t);

    /* Multi mode: one series per integration. */
    metrics_set_multi(1);
    t = metrics_render();
    check(t, "two sources, multi mode");
    ok(has_line(t, "kombofs_records{integration=\"personio:A\",directory=\"employees\"} 5") &&
       has_line(t, "kombofs_records{integration=\"personio:B\",directory=\"employees\"} 7"),
       "records per integration");
    ok(has_line(t, "kombofs_change_log_head_sequence{integration=\"personio:B\"} 0"), "head per integration");
    ok(strstr(t, "integration=\"personio:A\",directory") < strstr(t, "integration=\"personio:B\",directory"),
       "integrations in order");
    free(t);

    /* Registrations are counted per ctx. */
    metrics_add_source("personio:B", source, b);
    metrics_remove_source(b);
    t = metrics_render();
    ok(strstr(t, "integration=\"personio:B\",directory") != NULL, "added twice, removed once: still there");
    free(t);
    metrics_remove_source(b);
    metrics_remove_source(b);       /* one too many: nothing happens */
    t = metrics_render();
    ok(strstr(t, "integration=\"personio:B\",directory") == NULL, "removed as often as added: gone");
    ok(strstr(t, "integration=\"personio:A\",directory") != NULL, "the other stays");
    free(t);
    metrics_reset();
}

/* --sample: print an exposition with every family, in multi mode, with
 * labels to escape, for a real parser (tests/integration/test_metrics.py
 * pipes it to promtool). */
static int sample(void)
{
    metrics_reset();
    metrics_set_multi(1);
    metrics_add_source("personio:A", source, (void *)status_a);
    metrics_add_source("we\"ird\\id\n\xff", source, (void *)status_b);
    metrics_api_request("personio:A", "/hris/employees", 200, 0.2, 0);
    metrics_api_request("personio:A", "/hris/employees", 429, 0.01, 1);
    metrics_api_request("we\"ird\\id\n\xff", "/integrations/{id}", 0, 3, 0);
    metrics_fetch("personio:A", "/hris/employees", 0, "ok", 1.5);
    metrics_fetch("personio:A", "/hris/groups", 1, "cache-error", 0.3);
    metrics_webhook("personio:A", METRICS_WEBHOOK_ACCEPTED);
    metrics_webhook(NULL, METRICS_WEBHOOK_REJECTED);
    metrics_set_slot_name(3, "personio:A");
    metrics_fuse_request(3, METRICS_FUSE_LOOKUP);
    metrics_fuse_request(0, METRICS_FUSE_GETATTR);
    char *t = metrics_render();
    fputs(t, stdout);
    free(t);
    metrics_reset();
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--sample") == 0)
        return sample();
    test_empty();
    test_histogram();
    test_api();
    test_multi_and_escaping();
    test_fuse();
    test_sources();
    return tap_done_testing();
}
