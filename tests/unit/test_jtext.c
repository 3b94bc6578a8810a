#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "jtext.h"
#include "tap.h"

static int pretty_is(const char *in, const char *want)
{
    struct buf b = BUF_INIT;
    int rc = jtext_pretty(in, strlen(in), &b);
    int r = rc == 0 && b.data && strcmp(b.data, want) == 0;
    if (!r)
        diag("got rc=%d:\n%s", rc, b.data ? b.data : "(null)");
    buf_free(&b);
    return r;
}

static int valid(const char *s)
{
    return jtext_validate(s, strlen(s)) == 0;
}

static void test_pretty(void)
{
    ok(pretty_is("{\"a\":1,\"b\":[true,null,\"x\"]}",
                 "{\n  \"a\": 1,\n  \"b\": [\n    true,\n    null,\n    \"x\"\n  ]\n}\n"),
       "object with array");
    ok(pretty_is(" { } ", "{}\n"), "empty object");
    ok(pretty_is("[ ]", "[]\n"), "empty array");
    ok(pretty_is("{\"a\":{},\"b\":[]}", "{\n  \"a\": {},\n  \"b\": []\n}\n"), "empty members");
    ok(pretty_is("[0.1,1.50,123456789012345678901234567890,-0,1e-7]",
                 "[\n  0.1,\n  1.50,\n  123456789012345678901234567890,\n  -0,\n  1e-7\n]\n"),
       "numbers verbatim");
    ok(pretty_is("[\"\\u00f6\\n\\\"q\\\\\",\"ö\"]",
                 "[\n  \"\\u00f6\\n\\\"q\\\\\",\n  \"ö\"\n]\n"), "strings verbatim");
    ok(pretty_is("{\"z\":1,\"a\":2}", "{\n  \"z\": 1,\n  \"a\": 2\n}\n"), "key order kept");
    struct buf b = BUF_INIT;
    buf_adds(&b, "keep");
    ok(jtext_pretty("{\"a\":", 5, &b) < 0 && strcmp(b.data, "keep") == 0,
       "invalid input appends nothing");
    buf_free(&b);
}

static void test_validate(void)
{
    ok(valid("{}") && valid("[]") && valid("0") && valid("\"\"") && valid(" null "),
       "simple values");
    ok(!valid("") && !valid(" "), "empty");
    ok(!valid("{\"a\":1,}"), "trailing comma");
    ok(!valid("[1 2]"), "missing comma");
    ok(!valid("01"), "leading zero");
    ok(!valid("1."), "bare decimal point");
    ok(!valid("\"a\tb\""), "raw control character");
    ok(!valid("\"\\x\""), "bad escape");
    ok(!valid("\"\\u12\""), "short \\u");
    ok(!valid("{\"a\" 1}"), "missing colon");
    ok(!valid("{1:2}"), "non-string key");
    ok(!valid("[1]x"), "trailing garbage");
    ok(!valid("tru"), "truncated literal");
    ok(!valid("{\"a\":[1,2"), "truncated document");
    char deep[2 * JTEXT_MAX_DEPTH + 10];
    size_t n = 0;
    for (int i = 0; i < JTEXT_MAX_DEPTH + 2; i++)
        deep[n++] = '[';
    deep[n] = '\0';
    ok(!valid(deep), "too deep");
}

static void test_page(void)
{
    const char *msg;
    struct jtext_page p;
    const char *body =
        "{\"status\":\"success\",\"data\":{\"next\":\"abc\\u003d\",\"results\":"
        "[{\"id\":\"1\"}, {\"id\":\"2\",\"x\":[1,{\"y\":2}]} ,3]}}";
    ok(jtext_page_parse(body, strlen(body), &p, &msg) == 0, "page parses");
    ok(p.next && strcmp(p.next, "abc=") == 0, "cursor decoded");
    ok(p.nresults == 3, "three results");
    ok(p.nresults == 3 && p.results[1].len == strlen("{\"id\":\"2\",\"x\":[1,{\"y\":2}]}") &&
       strncmp(body + p.results[1].off, "{\"id\":\"2\"", 9) == 0, "span of the second");
    jtext_page_free(&p);

    body = "{\"data\":{\"results\":[],\"next\":null},\"status\":\"success\"}";
    ok(jtext_page_parse(body, strlen(body), &p, &msg) == 0 && !p.next && p.nresults == 0,
       "last page, members in another order");
    jtext_page_free(&p);
    body = "{\"status\":\"success\",\"data\":{\"next\":\"\",\"results\":[]}}";
    ok(jtext_page_parse(body, strlen(body), &p, &msg) == 0 && !p.next, "empty cursor ends");
    jtext_page_free(&p);

    static const char *const bad[] = {
        "{\"status\":\"error\",\"error\":{\"message\":\"x\"}}",
        "{\"status\":\"success\",\"data\":{\"next\":null}}",
        "{\"status\":\"success\",\"data\":{\"results\":[]}}",
        "{\"status\":\"success\",\"data\":{\"next\":null,\"results\":{}}}",
        "{\"status\":\"success\",\"data\":{\"next\":5,\"results\":[]}}",
        "{\"status\":\"success\",\"data\":{\"next\":null,\"results\":[{\"id\":1}",
        "<html><body>502 Bad Gateway</body></html>",
        "[]",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        msg = NULL;
        ok(jtext_page_parse(bad[i], strlen(bad[i]), &p, &msg) < 0 && msg && !p.results,
           "refused: %.40s (%s)", bad[i], msg ? msg : "");
    }
}

static void test_fields(void)
{
    struct jtext_field f[4] = { { .key = "id" }, { .key = "changed_at" },
                                { .key = "remote_deleted_at" }, { .key = "missing" } };
    const char *rec = "{\"n\":{\"id\":\"inner\"},\"id\":\"a\\/b\\u00f6\\ud83d\\ude00\","
                      "\"changed_at\":null,\"remote_deleted_at\":5,\"id\":\"second\"}";
    ok(jtext_fields(rec, strlen(rec), f, 4) == 0, "an object");
    ok(f[0].type == JTEXT_STRING && strcmp(f[0].str, "a/b\xc3\xb6\xf0\x9f\x98\x80") == 0 &&
       f[0].len == 9, "top-level id decoded (escapes, \\u, surrogate pair), not the nested one");
    ok(strncmp(rec + f[0].raw.off, "\"a\\/b\\u00f6", 11) == 0 && f[0].raw.len == 24,
       "raw span of the value");
    ok(f[1].type == JTEXT_NULL && !f[1].str, "null");
    ok(f[2].type == JTEXT_OTHER, "a number");
    ok(f[3].type == JTEXT_ABSENT, "absent");
    jtext_fields_free(f, 4);
    const char *nul = "{\"id\":\"a\\u0000b\"}";
    ok(jtext_fields(nul, strlen(nul), f, 1) == 0 && f[0].type == JTEXT_OTHER,
       "a string with NUL is not a usable string");
    jtext_fields_free(f, 1);
    ok(jtext_fields("[1]", 3, f, 1) < 0 && jtext_fields("\"x\"", 3, f, 1) < 0,
       "not an object");
    ok(jtext_fields("{\"id\":", 6, f, 1) < 0 && !f[0].str, "truncated: nothing to free");
}

int main(void)
{
    test_fields();
    test_pretty();
    test_validate();
    test_page();
    return tap_done_testing();
}
