#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "entry.h"
#include "export.h"
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

/* jtext_pretty_fields is jtext_pretty, jtext_fields and export_compact_size
 * in one pass: the same bytes, the same fields, the same size, on texts with
 * white space, escapes, duplicate and nested keys, and other top levels. */
static void test_pretty_fields(void)
{
    static const char *const texts[] = {
        "{\"n\":{\"id\":\"inner\"},\"id\":\"a\\/b\\u00f6\\ud83d\\ude00\","
        "\"changed_at\":null,\"remote_deleted_at\":5,\"id\":\"second\"}",
        " {\n\t\"id\" : \"x y\" ,\"changed_at\":\"2026-01-01T00:00:00Z\", \"a\":[ 1 , {\"b\" : [ ] } ] }\r\n",
        "{\"id\":\"a\\u0000b\",\"remote_deleted_at\":{\"x\":\"\\\"\"}}",
        "{\"i\\u0064\":\"escaped key\",\"id\":[\"not a string\"],\"changed_at\":true}",
        "{}", "[1,{\"id\":\"nested\"}]", "\"id\"", "12.50e+3", "null",
        "{\"id\":\"\",\"changed_at\":\"\\n\",\"missing\":1}",
    };
    int bad = 0;
    for (size_t t = 0; t < sizeof texts / sizeof *texts; t++) {
        const char *in = texts[t];
        size_t len = strlen(in);
        struct jtext_sizes sz = { 0, 0, 0 }, mz = { 0, 0, 0 };
        struct jtext_field a[4] = { { .key = "id" }, { .key = "changed_at" },
                                    { .key = "remote_deleted_at" }, { .key = "missing" } };
        struct jtext_field b[4] = { { .key = "id" }, { .key = "changed_at" },
                                    { .key = "remote_deleted_at" }, { .key = "missing" } };
        struct buf pa = BUF_INIT, pb = BUF_INIT;
        buf_adds(&pb, "prefix");
        int obj = jtext_fields(in, len, a, 4) == 0;
        int ra = jtext_pretty(in, len, &pa), rb = jtext_pretty_fields(in, len, &pb, b, 4, &sz);
        size_t nl = 0;
        for (size_t i = 0; i < pa.len; i++)
            nl += pa.data[i] == '\n';
        /* measured only (no output): the same fields and sizes */
        struct jtext_field c[4] = { { .key = "id" }, { .key = "changed_at" },
                                    { .key = "remote_deleted_at" }, { .key = "missing" } };
        int rc = jtext_pretty_fields(in, len, NULL, c, 4, &mz);
        int same = ra == 0 && rb == 0 && rc == 0 && pb.len == 6 + pa.len &&
                   memcmp(pb.data + 6, pa.data, pa.len) == 0 && sz.pretty == pa.len &&
                   sz.compact == export_compact_size(in, len) && sz.lines == nl &&
                   mz.pretty == sz.pretty && mz.compact == sz.compact && mz.lines == sz.lines;
        for (int i = 0; i < 4 && same; i++)
            same = c[i].type == b[i].type && c[i].raw.off == b[i].raw.off &&
                   c[i].raw.len == b[i].raw.len &&
                   (c[i].type != JTEXT_STRING || strcmp(c[i].str, b[i].str) == 0);
        jtext_fields_free(c, 4);
        for (int i = 0; i < 4 && same; i++) {
            enum jtext_type want = obj ? a[i].type : JTEXT_ABSENT;
            same = b[i].type == want &&
                   (want == JTEXT_ABSENT ||
                    (b[i].raw.off == a[i].raw.off && b[i].raw.len == a[i].raw.len)) &&
                   (want != JTEXT_STRING ||
                    (b[i].len == a[i].len && memcmp(b[i].str, a[i].str, a[i].len) == 0));
        }
        /* the same text as an element of a page: the page scan measures it
         * alike, and its members give the same fields */
        struct buf body = BUF_INIT;
        buf_adds(&body, "{\"data\":{\"results\":[{\"id\":\"before\"}, ");
        size_t at_in = body.len;
        buf_add(&body, in, len);
        buf_adds(&body, "\t],\"next\":null},\"status\":\"success\"}");
        struct jtext_page pg;
        const char *msg;
        if (same && jtext_page_parse(body.data, body.len, &pg, &msg) == 0 && pg.nresults == 2) {
            const struct jtext_result *r = &pg.info[1];
            const struct jtext_member *m = jtext_page_members(&pg, 1);
            const char *el = body.data + pg.results[1].off;
            size_t lead = pg.results[1].off - at_in;     /* white space before it */
            struct jtext_field d[4] = { { .key = "id" }, { .key = "changed_at" },
                                        { .key = "remote_deleted_at" }, { .key = "missing" } };
            jtext_member_fields(el, m, r->nmembers, d, 4);
            same = r->sizes.pretty == sz.pretty && r->sizes.compact == sz.compact &&
                   r->sizes.lines == sz.lines && pg.info[0].nmembers == 1 &&
                   (el[0] == '{' || r->nmembers == 0);
            for (int i = 0; i < 4 && same; i++)
                same = d[i].type == b[i].type &&
                       (d[i].type == JTEXT_ABSENT || d[i].raw.off + lead == b[i].raw.off) &&
                       d[i].raw.len == b[i].raw.len &&
                       (d[i].type != JTEXT_STRING || strcmp(d[i].str, b[i].str) == 0);
            /* in order, each key between its quotes, each value one valid value */
            size_t at = 0;
            for (size_t j = 0; j < r->nmembers && same; j++) {
                same = m[j].key.off > at && el[m[j].key.off - 1] == '"' &&
                       el[m[j].key.off + m[j].key.len] == '"' &&
                       m[j].value.off > m[j].key.off + m[j].key.len &&
                       jtext_validate(el + m[j].value.off, m[j].value.len) == 0;
                at = m[j].value.off + m[j].value.len;
            }
            jtext_fields_free(d, 4);
            jtext_page_free(&pg);
        } else {
            same = 0;
        }
        buf_free(&body);
        if (!same) {
            diag("text %zu differs: rc %d/%d, compact %zu/%zu, lines %zu/%zu", t, ra, rb,
                 sz.compact, export_compact_size(in, len), sz.lines, nl);
            bad++;
        }
        jtext_fields_free(a, 4);
        jtext_fields_free(b, 4);
        buf_free(&pa);
        buf_free(&pb);
    }
    ok(bad == 0, "pretty + fields + sizes in one pass agree with each alone, and with the "
                 "page scan's sizes and members (%zu texts)",
       sizeof texts / sizeof *texts);
    struct jtext_field f = { .key = "id" };
    struct buf b = BUF_INIT;
    buf_adds(&b, "keep");
    struct jtext_sizes sz = { 7, 7, 7 };
    ok(jtext_pretty_fields("{\"id\":\"x\",", 11, &b, &f, 1, &sz) < 0 &&
       jtext_pretty_fields("{\"id\":\"x\",", 11, NULL, &f, 1, &sz) < 0 &&
       strcmp(b.data, "keep") == 0 && f.type == JTEXT_ABSENT && !f.str && sz.compact == 7 &&
       sz.lines == 7 && sz.pretty == 7,
       "invalid: nothing appended, no field, no size");
    buf_free(&b);
}

/* Strings are scanned eight bytes at a time: a byte that ends the plain run
 * (a control character, '\\', '"') is found at every position of a word, and
 * bytes >= 0x80 (UTF-8) and 0x7f never are. */
static void test_string_words(void)
{
    static const unsigned char fill[] = { 'a', 0x7f, 0x80, 0xc3, 0xff, ' ' };
    int bad = 0, cases = 0;
    for (size_t f = 0; f < sizeof fill; f++) {
        for (int len = 0; len <= 19; len++) {
            for (int at = -1; at < len; at++) {
                for (int kind = 0; kind < 4; kind++) {
                    char text[32], out[64];
                    int n = 0, want;
                    text[n++] = '"';
                    for (int i = 0; i < len; i++)
                        text[n++] = (char)fill[f];
                    if (at >= 0) {
                        /* 0: a control byte (invalid), 1: an escape (valid),
                         * 2: a quote that ends the string early (invalid), 3: 0x1f */
                        static const char kinds[] = { 0x01, '\\', '"', 0x1f };
                        text[1 + at] = kinds[kind];
                        if (kind == 1)
                            text[n++] = 'n';    /* keep the length: the escape's letter */
                        want = kind == 1;
                        if (kind == 1 && at < len - 1) {
                            /* the escape swallows the next filler byte as its letter */
                            text[2 + at] = 'n';
                            n--;
                        }
                    } else {
                        want = 1;
                    }
                    text[n++] = '"';
                    if (at < 0 && kind > 0)
                        continue;
                    cases++;
                    int got = jtext_validate(text, (size_t)n) == 0;
                    struct buf b = BUF_INIT;
                    int pr = jtext_pretty(text, (size_t)n, &b) == 0;
                    int same = pr == got && (!pr || (b.len == (size_t)n + 1 &&
                                                     memcmp(b.data, text, (size_t)n) == 0));
                    buf_free(&b);
                    if (got != want || !same) {
                        snprintf(out, sizeof out, "fill %02x len %d at %d kind %d", fill[f], len,
                                 at, kind);
                        diag("%s: valid %d, want %d", out, got, want);
                        bad++;
                    }
                }
            }
        }
    }
    ok(bad == 0, "strings: the plain run ends exactly at the first special byte (%d cases)",
       cases);
}

/* A random JSON text from a seed: nested containers, strings with escapes
 * and UTF-8, numbers, literals, empty containers. */
static unsigned rnd(unsigned *x)
{
    *x = *x * 1103515245u + 12345u;
    return *x >> 16;
}

static void gen(unsigned *x, int depth, struct buf *b)
{
    static const char *const strs[] = { "\"\"", "\"a\"", "\"x y,z\"", "\"\\\"q\\\\\"",
                                        "\"\\u00f6\\n\"", "\"\xc3\xb6/\"", "\"[{:,}]\"" };
    static const char *const scal[] = { "0", "-1.5e+3", "123456789012345678901234567890", "true",
                                        "false", "null", "0.10" };
    unsigned k = rnd(x) % (depth > 6 ? 2 : 5);
    if (k == 0) {
        buf_adds(b, strs[rnd(x) % 7]);
    } else if (k == 1) {
        buf_adds(b, scal[rnd(x) % 7]);
    } else {
        int obj = k == 2, n = (int)(rnd(x) % 4);
        buf_addc(b, obj ? '{' : '[');
        for (int i = 0; i < n; i++) {
            if (i)
                buf_addc(b, ',');
            if (obj) {
                buf_adds(b, strs[rnd(x) % 7]);
                buf_addc(b, ':');
            }
            gen(x, depth + 1, b);
        }
        buf_addc(b, obj ? '}' : ']');
    }
}

/* jtext_indent_compact is jtext_pretty of compact JSON, and at a base depth
 * what entry_splice makes of it (every line break followed by base spaces, no
 * final newline). */
static void test_indent_compact(void)
{
    unsigned x = 7;
    int bad = 0, n = 0;
    for (int t = 0; t < 3000; t++) {
        struct buf doc = BUF_INIT, want = BUF_INIT, got = BUF_INIT, spl = BUF_INIT,
                   gb = BUF_INIT;
        gen(&x, 0, &doc);
        if (jtext_pretty(doc.data, doc.len, &want) < 0) {
            diag("generated invalid JSON: %s", doc.data);
            bad++;
        }
        size_t k = jtext_indent_compact(doc.data, doc.len, 0, 1, &got);
        entry_splice("<", 1, 1, want.data, want.len, &spl);    /* "<" then the record */
        buf_adds(&gb, "<");
        jtext_indent_compact(doc.data, doc.len, 0 /* "<" is at column 0 */, 0, &gb);
        struct buf sp4 = BUF_INIT, g4 = BUF_INIT;
        entry_splice("    x", 5, 5, want.data, want.len, &sp4);
        buf_adds(&g4, "    x");
        jtext_indent_compact(doc.data, doc.len, 4, 0, &g4);
        if (k != want.len || got.len != want.len || memcmp(got.data, want.data, got.len) != 0 ||
            gb.len != spl.len || memcmp(gb.data, spl.data, gb.len) != 0 || g4.len != sp4.len ||
            memcmp(g4.data, sp4.data, g4.len) != 0) {
            if (bad++ < 3)
                diag("differs for %s", doc.data);
        }
        n++;
        buf_free(&doc);
        buf_free(&want);
        buf_free(&got);
        buf_free(&spl);
        buf_free(&gb);
        buf_free(&sp4);
        buf_free(&g4);
    }
    ok(bad == 0, "re-indenting compact JSON without validating: jtext_pretty's bytes, and the "
                 "splice's at a depth (%d random texts)", n);
    struct buf b = BUF_INIT;
    ok(jtext_indent_compact("{\"a\":\"unterminated", 18, 2, 1, &b) == b.len && b.len > 0,
       "text that is not valid stays within its bytes");
    buf_free(&b);
}

int main(void)
{
    test_indent_compact();
    test_string_words();
    test_pretty_fields();
    test_fields();
    test_pretty();
    test_validate();
    test_page();
    return tap_done_testing();
}
