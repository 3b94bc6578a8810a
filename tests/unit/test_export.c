/*
 * test_export.c — unit tests for src/export.c (the compact JSON of JSONL
 * lines and the CSV rows of SPEC §10). TAP output via tap.h.
 *
 * Fixed cases for each rule, fixtures whose expected CSV was written by
 * Python's csv module, then a few hundred generated records checked against
 * an oracle built alongside them (and the row-size invariant). The generator
 * is seeded with EXPORT_TEST_SEED when set (the seed is printed).
 */
#include "export.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "jtext.h"
#include "tap.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

/* Print a byte string as a TAP comment, escaping what is not printable. */
static void show(const char *label, const char *s, size_t n)
{
    struct buf b = BUF_INIT;
    for (size_t i = 0; i < n && i < 4000; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            buf_addc(&b, (char)c);
        else
            buf_printf(&b, "\\x%02x", c);
    }
    diag("%s (%zu bytes): %s", label, n, b.data ? b.data : "");
    buf_free(&b);
}

static int bytes_eq(const char *label, const char *got, size_t gn, const char *want, size_t wn)
{
    if (gn == wn && memcmp(got, want, gn) == 0)
        return 1;
    diag("%s differs", label);
    show("want", want, wn);
    show("got ", got, gn);
    return 0;
}

/* export_compact(in) == want, appended after existing content, with the
 * right return value; export_compact_size agrees. */
static int compact_is(const char *in, size_t inlen, const char *want, size_t wn)
{
    struct buf b = BUF_INIT;
    buf_adds(&b, "keep:");
    size_t n = export_compact(in, inlen, &b);
    int r = bytes_eq("compact", b.data + 5, b.len - 5, want, wn) &&
            memcmp(b.data, "keep:", 5) == 0 && b.data[b.len] == '\0';
    if (n != wn || export_compact_size(in, inlen) != wn) {
        diag("returned %zu, size %zu, want %zu", n, export_compact_size(in, inlen), wn);
        r = 0;
    }
    buf_free(&b);
    return r;
}

#define COMPACT_IS(in, want) compact_is(in, strlen(in), want, strlen(want))

/* jtext_pretty(compact) compacts back to compact. */
static int pretty_roundtrip(const char *compact)
{
    struct buf p = BUF_INIT, c = BUF_INIT;
    int r = jtext_pretty(compact, strlen(compact), &p) == 0;
    if (r) {
        export_compact(p.data, p.len, &c);
        r = bytes_eq("compact of pretty", c.data, c.len, compact, strlen(compact));
    } else {
        diag("jtext_pretty refused %s", compact);
    }
    buf_free(&p);
    buf_free(&c);
    return r;
}

/* The row of text for cols is want (CRLF included), and so is the row of
 * its jtext_pretty form when it is valid JSON. */
static int row_is(const char *text, const char *const *cols, size_t ncols,
                  const char *want, size_t wn)
{
    struct buf b = BUF_INIT, p = BUF_INIT;
    buf_adds(&b, "keep");
    export_csv_row(text, strlen(text), cols, ncols, &b);
    int r = memcmp(b.data, "keep", 4) == 0 && b.data[b.len] == '\0' &&
            bytes_eq("row", b.data + 4, b.len - 4, want, wn);
    if (jtext_pretty(text, strlen(text), &p) == 0) {
        buf_reset(&b);
        export_csv_row(p.data, p.len, cols, ncols, &b);
        r = r && bytes_eq("row of pretty", b.data, b.len, want, wn);
    }
    buf_free(&b);
    buf_free(&p);
    return r;
}

#define ROW_IS(text, want, ...) \
    row_is(text, (const char *const[]){ __VA_ARGS__ }, \
           sizeof((const char *const[]){ __VA_ARGS__ }) / sizeof(const char *), \
           want, sizeof(want) - 1)

/* text (valid JSON) as an element of a page: jtext_page_parse locates its
 * members, and export_csv_derive_members on them appends the keys and returns
 * the size export_csv_derive does, told it is compact (when it is) or not.
 * The element's span, measured sizes and members are checked on the way. */
static int members_agree(const char *text, size_t len)
{
    struct buf body = BUF_INIT, want = BUF_INIT, got = BUF_INIT;
    buf_adds(&body, "{\"status\":\"success\",\"data\":{\"next\":null,\"results\":[ 7 ,\n");
    size_t off = body.len;
    buf_add(&body, text, len);
    buf_adds(&body, " , {\"id\":\"after\"}]}}");
    struct jtext_page pg;
    const char *msg = NULL;
    int r = jtext_page_parse(body.data, body.len, &pg, &msg) == 0 && pg.nresults == 3;
    if (!r) {
        diag("the page does not parse: %s", msg ? msg : "?");
        goto out;
    }
    /* text may start or end with white space: the span is the value's */
    const char *t = body.data + pg.results[1].off;
    size_t tl = pg.results[1].len;
    const struct jtext_result *in = &pg.info[1];
    struct jtext_sizes sz;
    r = pg.results[1].off >= off && pg.results[1].off + tl <= off + len &&
        jtext_pretty_fields(t, tl, NULL, NULL, 0, &sz) == 0 && sz.pretty == in->sizes.pretty &&
        sz.compact == in->sizes.compact && sz.lines == in->sizes.lines &&
        pg.info[0].nmembers == 0 && pg.info[2].nmembers == 1;
    if (!r) {
        diag("span or sizes differ");
        goto out;
    }
    int wn, gn;
    size_t ws = export_csv_derive(t, tl, &want, &wn);
    for (int compact = 0; compact <= (in->sizes.compact == tl); compact++) {
        buf_reset(&got);
        buf_adds(&got, "k");
        size_t gs = export_csv_derive_members(t, jtext_page_members(&pg, 1), in->nmembers,
                                              compact, &got, &gn);
        if (gs != ws || gn != wn || !bytes_eq("member keys", got.data + 1, got.len - 1,
                                              want.data ? want.data : "", want.len)) {
            diag("compact %d: size %zu/%zu, keys %d/%d", compact, gs, ws, gn, wn);
            show("text", t, tl);
            r = 0;
        }
    }
out:
    jtext_page_free(&pg);
    buf_free(&body);
    buf_free(&want);
    buf_free(&got);
    return r;
}

/* The cell of one value: row of {"k": value} for column k is want + CRLF,
 * and export_csv_cells_size() is the cell's length. */
static int cell_is(const char *value, const char *want, size_t wn)
{
    struct buf rec = BUF_INIT, exp = BUF_INIT;
    buf_printf(&rec, "{\"k\": %s}", value);
    buf_add(&exp, want, wn);
    buf_add(&exp, "\r\n", 2);
    const char *cols[] = { "k" };
    int r = row_is(rec.data, cols, 1, exp.data, exp.len);
    size_t cs = export_csv_cells_size(rec.data, rec.len);
    struct buf keys = BUF_INIT;
    int nkeys;
    size_t ds = export_csv_derive(rec.data, rec.len, &keys, &nkeys);
    if (cs != wn || ds != wn || nkeys != 1 || strcmp(keys.data, "k") != 0) {
        diag("cells_size %zu, derive %zu (%d keys), want %zu", cs, ds, nkeys, wn);
        r = 0;
    }
    if (jtext_validate(rec.data, rec.len) == 0 && !members_agree(rec.data, rec.len))
        r = 0;
    buf_free(&keys);
    buf_free(&rec);
    buf_free(&exp);
    return r;
}

#define CELL_IS(value, want) cell_is(value, want, sizeof(want) - 1)

/* export_csv_keys(text) returns n and appends want (NUL-separated). */
static int keys_are(const char *text, int n, const char *want, size_t wn)
{
    struct buf b = BUF_INIT;
    buf_adds(&b, "k");
    int got = export_csv_keys(text, strlen(text), &b);
    int r = got == n && bytes_eq("keys", b.data + 1, b.len - 1, want, wn) &&
            b.data[b.len] == '\0';
    if (got != n)
        diag("export_csv_keys returned %d, want %d", got, n);
    /* export_csv_derive: the same keys and count, and the cells' size */
    struct buf d = BUF_INIT;
    buf_adds(&d, "k");
    int dn;
    size_t size = export_csv_derive(text, strlen(text), &d, &dn);
    if (dn != n || !bytes_eq("derived keys", d.data + 1, d.len - 1, want, wn) ||
        d.data[d.len] != '\0' || size != export_csv_cells_size(text, strlen(text))) {
        diag("export_csv_derive: %d keys, size %zu", dn, size);
        r = 0;
    }
    if (jtext_validate(text, strlen(text)) == 0 && !members_agree(text, strlen(text)))
        r = 0;
    buf_free(&d);
    buf_free(&b);
    return r;
}

#define KEYS_ARE(text, n, want) keys_are(text, n, want, sizeof(want) - 1)

/* Split a NUL-separated key list into a malloc'd array of pointers into it. */
static const char **split_keys(const struct buf *b, size_t n)
{
    const char **cols = malloc((n ? n : 1) * sizeof *cols);
    if (!cols)
        abort();
    const char *p = b->data;
    for (size_t i = 0; i < n; i++) {
        cols[i] = p;
        p += strlen(p) + 1;
    }
    return cols;
}

/* ------------------------------------------------------------------------ */
/* Compact JSON                                                             */
/* ------------------------------------------------------------------------ */

static void test_compact(void)
{
    ok(COMPACT_IS("{}", "{}") && COMPACT_IS(" { } ", "{}") && COMPACT_IS("[ ]", "[]") &&
       COMPACT_IS("{\n}\n", "{}"), "empty containers");
    ok(COMPACT_IS("", "") && COMPACT_IS(" \n\t\r ", ""), "empty and blank input");
    ok(COMPACT_IS("{\n  \"a\": 1,\n  \"b\": [\n    true,\n    null,\n    \"x\"\n  ]\n}\n",
                  "{\"a\":1,\"b\":[true,null,\"x\"]}"), "pretty object with array");
    ok(COMPACT_IS("{\r\n\t\"a\"\t:\r\n1 ,\"b\" : { \"c\" : [ [ ] , { } ] } }",
                  "{\"a\":1,\"b\":{\"c\":[[],{}]}}"), "every kind of white space, nesting");
    ok(COMPACT_IS("{ \"a\" : \"x \\\" y \\\\ \\u00e9 \\ud83d\\ude00 \\/ \\n\" }",
                  "{\"a\":\"x \\\" y \\\\ \\u00e9 \\ud83d\\ude00 \\/ \\n\"}"),
       "escapes kept verbatim");
    ok(COMPACT_IS("[ \"a  b\" , \" \" , \"\\t \\r\\n \" , \"{ [ , : ] }\" ]",
                  "[\"a  b\",\" \",\"\\t \\r\\n \",\"{ [ , : ] }\"]"),
       "white space and structure inside strings kept");
    ok(COMPACT_IS("[ \"a\\\\\" , \"b\" ]", "[\"a\\\\\",\"b\"]"),
       "escaped backslash before the closing quote");
    ok(COMPACT_IS("[ \"\\\" \" , \"\\\\\\\" x\" ]", "[\"\\\" \",\"\\\\\\\" x\"]"),
       "escaped quotes followed by spaces");
    ok(COMPACT_IS("[ 1.50 , -0 , 1e400 , 123456789012345678901234567890 , -1.5E-7 , 0.1 ]",
                  "[1.50,-0,1e400,123456789012345678901234567890,-1.5E-7,0.1]"),
       "numbers verbatim");
    ok(COMPACT_IS("{ \"\xc3\xa9\" : \"\xe2\x82\xac \xf0\x9f\x98\x80\" }",
                  "{\"\xc3\xa9\":\"\xe2\x82\xac \xf0\x9f\x98\x80\"}"), "raw UTF-8 kept");
    ok(COMPACT_IS("[ \"ab c", "[\"ab c") && COMPACT_IS("[ \"a\\", "[\"a\\"),
       "unterminated string runs to the end");
    ok(COMPACT_IS("\"a b\"", "\"a b\"") && COMPACT_IS(" 1 ", "1") && COMPACT_IS(" null ", "null"),
       "scalars");
    ok(compact_is("[\"a\0b\" , 1]", 11, "[\"a\0b\",1]", 9), "a NUL byte inside a string kept");

    const char *cases[] = {
        "{}", "[]", "{\"a\":{}}", "{\"a\":[]}", "[[],{},[[{}]]]",
        "{\"id\":\"x\",\"n\":1.50,\"z\":-0,\"big\":1e400,\"int\":123456789012345678901234567890}",
        "{\"s\":\"x \\\" y \\\\ \\u00e9 \\ud83d\\ude00\",\"w\":\"  lots   of  space \\t\"}",
        "{\"a\":[1,[2,[3,[4,{\"b\":null}]]]],\"c\":true,\"d\":false}",
        "{\"\":\"\",\"k,ey\":\"v,al\",\"q\\\"\":\"\\\"\"}",
        "{\"e\":\"\xc3\xa9\",\"emoji\":\"\xf0\x9f\x98\x80\"}",
    };
    size_t bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        if (!pretty_roundtrip(cases[i]) || !COMPACT_IS(cases[i], cases[i]))
            bad++;
    ok(bad == 0, "compact of jtext_pretty output is the original compact text (%zu cases)",
       sizeof cases / sizeof *cases);

    /* a large record: the reservation covers the whole output */
    struct buf big = BUF_INIT, want = BUF_INIT;
    buf_addc(&big, '[');
    buf_addc(&want, '[');
    for (int i = 0; i < 5000; i++) {
        buf_printf(&big, "%s\n    \"v %d\" ,\t%d", i ? "," : "", i, i);
        buf_printf(&want, "%s\"v %d\",%d", i ? "," : "", i, i);
    }
    buf_adds(&big, "\n]\n");
    buf_addc(&want, ']');
    ok(COMPACT_IS(big.data, want.data), "large input");
    buf_free(&big);
    buf_free(&want);
}

/* ------------------------------------------------------------------------ */
/* CSV cells, fields, header                                                */
/* ------------------------------------------------------------------------ */

static void test_cells(void)
{
    ok(CELL_IS("\"abc\"", "abc"), "string");
    ok(CELL_IS("\"\"", ""), "empty string: empty cell");
    ok(CELL_IS("\"a b\"", "a b") && CELL_IS("\" x \"", " x "), "spaces need no quotes");
    ok(CELL_IS("\"a,b\"", "\"a,b\""), "comma quoted");
    ok(CELL_IS("\"say \\\"hi\\\"\"", "\"say \"\"hi\"\"\""), "quote doubled");
    ok(CELL_IS("\"\\\"\"", "\"\"\"\""), "a lone quote");
    ok(CELL_IS("\"a\\nb\"", "\"a\nb\"") && CELL_IS("\"a\\rb\"", "\"a\rb\"") &&
       CELL_IS("\"a\\r\\nb\"", "\"a\r\nb\""), "CR and LF quoted");
    ok(CELL_IS("\"\\u002c\"", "\",\"") && CELL_IS("\"\\u0022\"", "\"\"\"\"") &&
       CELL_IS("\"\\u000a\"", "\"\n\"") && CELL_IS("\"\\u000D\"", "\"\r\""),
       "\\u escapes of , \" LF CR quoted");
    ok(CELL_IS("\"\\u00e9\"", "\xc3\xa9") && CELL_IS("\"\\u20AC\"", "\xe2\x82\xac") &&
       CELL_IS("\"\\u0041\\u007f\\u0080\\u07ff\\u0800\\uffff\"",
               "A\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf"),
       "\\u escapes decoded to UTF-8");
    ok(CELL_IS("\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80") &&
       CELL_IS("\"\\uD83D\\uDE00!\"", "\xf0\x9f\x98\x80!") &&
       CELL_IS("\"\\udbff\\udfff\"", "\xf4\x8f\xbf\xbf"), "surrogate pairs");
    ok(CELL_IS("\"\\ud83dx\"", "\xef\xbf\xbdx") && CELL_IS("\"\\ude00\"", "\xef\xbf\xbd") &&
       CELL_IS("\"\\ud83d\"", "\xef\xbf\xbd") &&
       CELL_IS("\"\\ud83d\\u0041\"", "\xef\xbf\xbd" "A") &&
       CELL_IS("\"\\ud83d\\ud83d\\ude00\"", "\xef\xbf\xbd\xf0\x9f\x98\x80") &&
       CELL_IS("\"\\ude00\\ud83d\"", "\xef\xbf\xbd\xef\xbf\xbd"),
       "lone surrogates become U+FFFD");
    ok(CELL_IS("\"\\/\\b\\f\\t\\\\\"", "/\b\f\t\\"), "other escapes, unquoted");
    ok(CELL_IS("\"a\\u0000b\"", "a\0b"), "\\u0000 is a NUL byte");
    ok(CELL_IS("\"\xc3\xa9 \xf0\x9f\x98\x80\"", "\xc3\xa9 \xf0\x9f\x98\x80"), "raw UTF-8 kept");
    ok(CELL_IS("\"{[x]}:\"", "{[x]}:"), "brackets in a string");
    ok(CELL_IS("1.50", "1.50") && CELL_IS("-0", "-0") && CELL_IS("1e400", "1e400") &&
       CELL_IS("123456789012345678901234567890", "123456789012345678901234567890") &&
       CELL_IS("-1.5E-7", "-1.5E-7") && CELL_IS("0", "0"), "numbers verbatim");
    ok(CELL_IS("true", "true") && CELL_IS("false", "false"), "booleans");
    ok(CELL_IS("null", ""), "null: empty cell");
    ok(CELL_IS("{}", "{}") && CELL_IS("[]", "[]") && CELL_IS("[ ]", "[]") &&
       CELL_IS("{\n}", "{}"), "empty containers unquoted");
    ok(CELL_IS("[1]", "[1]") && CELL_IS("[ [ 1.0 ] ]", "[[1.0]]") && CELL_IS("[true]", "[true]"),
       "containers without , or \" unquoted");
    ok(CELL_IS("[1, 2]", "\"[1,2]\"") && CELL_IS("{\"a\": 1}", "\"{\"\"a\"\":1}\"") &&
       CELL_IS("[ \"x\" ]", "\"[\"\"x\"\"]\""), "containers with , or \" quoted");
    ok(CELL_IS("{ \"a\" : \"b\\\"c\" , \"d\" : [ \"x y\" , null ] }",
               "\"{\"\"a\"\":\"\"b\\\"\"c\"\",\"\"d\"\":[\"\"x y\"\",null]}\""),
       "compact nested object: escapes verbatim, quotes doubled");
    ok(CELL_IS("[ \"a\\nb\" , \"\\u00e9\" ]", "\"[\"\"a\\nb\"\",\"\"\\u00e9\"\"]\""),
       "escapes inside containers are not decoded");
    ok(CELL_IS("[\"}\" , \"]\" , \"{\" , \"[\"]", "\"[\"\"}\"\",\"\"]\"\",\"\"{\"\",\"\"[\"\"]\""),
       "brackets inside strings inside containers");
    ok(CELL_IS("[ \"a\\\\\" , 1 ]", "\"[\"\"a\\\\\"\",1]\""), "escaped backslash in a container");
}

static int field_is(const char *s, size_t n, const char *want, size_t wn)
{
    struct buf b = BUF_INIT;
    buf_adds(&b, "k");
    export_csv_field(s, n, &b);
    int r = bytes_eq("field", b.data + 1, b.len - 1, want, wn) && b.data[b.len] == '\0';
    buf_free(&b);
    return r;
}

#define FIELD_IS(s, want) field_is(s, sizeof(s) - 1, want, sizeof(want) - 1)

static void test_field_header(void)
{
    ok(FIELD_IS("", "") && FIELD_IS("plain", "plain") && FIELD_IS(" sp ", " sp "),
       "fields that need no quotes");
    ok(FIELD_IS("a,b", "\"a,b\"") && FIELD_IS("a\nb", "\"a\nb\"") && FIELD_IS("a\rb", "\"a\rb\"") &&
       FIELD_IS(",", "\",\""), "fields with , CR LF quoted");
    ok(FIELD_IS("\"", "\"\"\"\"") && FIELD_IS("a\"\"b", "\"a\"\"\"\"b\"") &&
       FIELD_IS("\"x\"", "\"\"\"x\"\"\""), "quotes doubled");
    ok(FIELD_IS("a\0b", "a\0b") && FIELD_IS("\\", "\\") && FIELD_IS("'x'", "'x'") &&
       FIELD_IS("\t", "\t"), "other bytes as they are");

    struct buf b = BUF_INIT;
    const char *cols[] = { "id", "a,b", "q\"x", "l\nf", "c\rr", "", "\xc3\xa9", "sp ace" };
    export_csv_header(cols, 8, &b);
    const char want[] = "id,\"a,b\",\"q\"\"x\",\"l\nf\",\"c\rr\",,\xc3\xa9,sp ace\r\n";
    ok(bytes_eq("header", b.data, b.len, want, sizeof want - 1), "header row");
    buf_reset(&b);
    export_csv_header(cols, 0, &b);
    ok(b.len == 2 && memcmp(b.data, "\r\n", 2) == 0, "header of no columns");
    buf_free(&b);
}

/* ------------------------------------------------------------------------ */
/* Keys, rows, duplicates, missing keys, invalid text                       */
/* ------------------------------------------------------------------------ */

static void test_keys(void)
{
    ok(KEYS_ARE("{\"id\": 1, \"name\": \"x\", \"z\": null}", 3, "id\0name\0z\0"), "keys in order");
    ok(KEYS_ARE("{}", 0, "") && KEYS_ARE(" {\n}\n", 0, ""), "no keys");
    ok(KEYS_ARE("{\"b\":1,\"a\":2,\"b\":3}", 2, "b\0a\0"), "a duplicate key listed once, first");
    ok(KEYS_ARE("{\"\\u00e9\":1,\"\xc3\xa9\":2,\"a\\/b\":3,\"a/b\":4}", 2, "\xc3\xa9\0a/b\0"),
       "keys decoded; different spellings of one key are one key");
    ok(KEYS_ARE("{\"k,ey\":1,\"q\\\"\":2,\"l\\nf\":3,\"\":4}", 4, "k,ey\0q\"\0l\nf\0\0"),
       "keys as they are, not CSV-quoted; the empty key");
    ok(KEYS_ARE("{\"a\\u0000b\":1,\"c\":2}", 1, "c\0"), "a key holding U+0000 is left out");
    ok(KEYS_ARE("[1]", -1, "") && KEYS_ARE("", -1, "") && KEYS_ARE("{", -1, "") &&
       KEYS_ARE("\"x\"", -1, "") && KEYS_ARE("null", -1, ""), "not an object: -1");
    ok(KEYS_ARE("{} x", -1, "") && KEYS_ARE("{\"a\":1,}", -1, "") &&
       KEYS_ARE("{\"a\" 1}", -1, "") && KEYS_ARE("{\"a\":}", -1, "") &&
       KEYS_ARE("{\"a\":[1,2}", -1, "") && KEYS_ARE("{\"a\":\"x}", -1, "") &&
       KEYS_ARE("{\"a\":tru}", -1, "") && KEYS_ARE("{\"a\":\"\\x\"}", -1, "") &&
       KEYS_ARE("{\"a\":\"\\u12\"}", -1, "") && KEYS_ARE("{a:1}", -1, "") &&
       KEYS_ARE("{\"a\":1 \"b\":2}", -1, ""), "malformed objects: -1, nothing appended");
}

static void test_rows(void)
{
    const char *rec = "{\n  \"id\": \"e1\",\n  \"n\": 1.50,\n  \"ok\": true,\n  \"z\": null,\n"
                      "  \"o\": {\n    \"a\": [\n      1,\n      2\n    ]\n  },\n  \"s\": \"a,b\"\n}\n";
    ok(ROW_IS(rec, "e1,1.50,true,,\"{\"\"a\"\":[1,2]}\",\"a,b\"\r\n", "id", "n", "ok", "z", "o", "s"),
       "row in the record's order");
    ok(ROW_IS(rec, "\"a,b\",\"{\"\"a\"\":[1,2]}\",,true,1.50,e1\r\n", "s", "o", "z", "ok", "n", "id"),
       "columns in reverse order");
    ok(ROW_IS(rec, ",e1,,1.50,,true,,,\"{\"\"a\"\":[1,2]}\",\"a,b\",\r\n",
              "x", "id", "y", "n", "q", "ok", "z", "w", "o", "s", "last"),
       "columns the record lacks: empty cells");
    ok(ROW_IS(rec, "e1,e1,1.50\r\n", "id", "id", "n"), "a column named twice");
    {
        struct buf b = BUF_INIT;
        export_csv_row("{\"a\":1}", 7, NULL, 0, &b);
        ok(b.len == 2 && memcmp(b.data, "\r\n", 2) == 0, "no columns: CRLF");
        buf_free(&b);
    }
    ok(ROW_IS("{}", ",,\r\n", "a", "b", "c"), "empty record");
    ok(ROW_IS("{\"a\":1,\"b\":2,\"a\":\"x,y\"}", "\"x,y\",2\r\n", "a", "b"),
       "duplicate key: its last value, at its first position");
    ok(ROW_IS("{\"a\":1,\"a\":2,\"a\":3,\"b\":4}", "4,3\r\n", "b", "a") &&
       ROW_IS("{\"a\":1,\"a\":2,\"a\":3,\"b\":4}", "3,4\r\n", "a", "b"),
       "a key three times");
    ok(ROW_IS("{\"\\u00e9\":1,\"\xc3\xa9\":2}", "2\r\n", "\xc3\xa9"),
       "different spellings of one key: the last value");
    ok(ROW_IS("{\"a\\/b\":\"x\",\"q\\\"k\":\"y\",\"l\\nf\":\"z\",\"\":\"e\"}", "e,z,y,x\r\n",
              "", "l\nf", "q\"k", "a/b"), "escaped keys match decoded column names");
    ok(ROW_IS("{\"a\\u0000b\":1,\"a\":2}", ",2\r\n", "b", "a") &&
       ROW_IS("{\"a\\u0000b\":1}", "\r\n", "a"),
       "a key holding U+0000 matches no column");
    ok(ROW_IS("{\"ab\":1,\"a\":2,\"abc\":3}", "2,1,3,\r\n", "a", "ab", "abc", "abcd"),
       "keys that are prefixes of one another");
    ok(ROW_IS("[1,2]", ",\r\n", "a", "b") && ROW_IS("{\"a\":1,", ",\r\n", "a", "b") &&
       ROW_IS("{\"a\":1} {", ",\r\n", "a", "b"), "not an object: every cell empty");
    ok(export_csv_cells_size("[1]", 3) == 0 && export_csv_cells_size("{\"a\":1,", 7) == 0 &&
       export_csv_cells_size("", 0) == 0, "not an object: cells size 0");

    const char *dups = "{\"a\":1,\"b\":\"x\\\"y\",\"a\":\"p,q\"}";
    ok(export_csv_cells_size(dups, strlen(dups)) == strlen("\"p,q\"") + strlen("\"x\"\"y\""),
       "cells size counts a duplicate key's last value once");
    const char *nulkey = "{\"a\\u0000\":\"xyz\",\"b\":1}";
    ok(export_csv_cells_size(nulkey, strlen(nulkey)) == 1,
       "cells size leaves out a key holding U+0000");

    /* more members than fit in the scanner's local array */
    struct buf big = BUF_INIT, want = BUF_INIT, keys = BUF_INIT, row = BUF_INIT;
    buf_addc(&big, '{');
    for (int i = 0; i < 200; i++)
        buf_printf(&big, "%s\n  \"k%d\": %d", i ? "," : "", i % 150, i);
    buf_adds(&big, "\n}\n");
    for (int i = 0; i < 150; i++)
        buf_printf(&want, "%s%d", i ? "," : "", i < 50 ? i + 150 : i);
    buf_adds(&want, "\r\n");
    int n = export_csv_keys(big.data, big.len, &keys);
    ok(n == 150, "150 distinct keys among 200 members");
    const char **cols = split_keys(&keys, n > 0 ? (size_t)n : 0);
    export_csv_row(big.data, big.len, cols, n > 0 ? (size_t)n : 0, &row);
    ok(bytes_eq("big row", row.data, row.len, want.data, want.len), "row of a record with 200 members");
    ok(row.len == export_csv_cells_size(big.data, big.len) + (size_t)n + 1, "its size");
    buf_reset(&row);
    /* reversed columns: every column found by search */
    for (int i = 0; i < n / 2; i++) {
        const char *t = cols[i];
        cols[i] = cols[n - 1 - i];
        cols[n - 1 - i] = t;
    }
    export_csv_row(big.data, big.len, cols, (size_t)n, &row);
    ok(row.len == want.len && memcmp(row.data, "149,148,", 8) == 0 &&
       memcmp(row.data + row.len - 10, ",151,150\r\n", 10) == 0, "the same reversed");
    free(cols);
    buf_free(&big);
    buf_free(&want);
    buf_free(&keys);
    buf_free(&row);
}

/* ------------------------------------------------------------------------ */
/* Python csv fixtures                                                      */
/* ------------------------------------------------------------------------ */

/* Records as json.dumps(rec, indent=2, ensure_ascii=True/False) + "\n" and
 * the CSV that Python 3.11's csv.writer(lineterminator="\r\n",
 * quoting=QUOTE_MINIMAL) writes for the header and the row, with the cells
 * str -> itself, number -> json.dumps, bool -> true/false, None -> "",
 * dict/list -> json.dumps(separators=(",", ":"), same ensure_ascii). */
static const struct {
    const char *json;
    const char *csv;
} PYFIX[] = {
    { "{\012  \"id\": \"e1\",\012  \"name\": \"Ana, Mar\\u00eda\",\012  \"quote\": \"say \\\"hi\\\"\",\012  \"nl\": \"a\\nb\",\012  \"cr\": \"a\\rb\",\012  \"crlf\": \"x\\r\\ny\",\012  \"n\": 1.5,\012  \"i\": -3,\012  \"big\": 12345678901234567890123,\012  \"t\": true,\012  \"f\": false,\012  \"z\": null,\012  \"obj\": {\012    \"a\": 1,\012    \"b\": [\012      1,\012      2,\012      {\012        \"c\": \"d,\\\"e\\\"\"\012      }\012    ]\012  },\012  \"arr\": [\012    1\012  ],\012  \"earr\": [],\012  \"eobj\": {},\012  \"emoji\": \"\\ud83d\\ude00 \\u00e9 \\u20ac\",\012  \"tab\": \"a\\tb\",\012  \"bs\": \"back\\\\slash/\",\012  \"empty\": \"\"\012}\012",
      "id,name,quote,nl,cr,crlf,n,i,big,t,f,z,obj,arr,earr,eobj,emoji,tab,bs,empty\015\012e1,\"Ana, Mar\303\255a\",\"say \"\"hi\"\"\",\"a\012b\",\"a\015b\",\"x\015\012y\",1.5,-3,12345678901234567890123,true,false,,\"{\"\"a\"\":1,\"\"b\"\":[1,2,{\"\"c\"\":\"\"d,\\\"\"e\\\"\"\"\"}]}\",[1],[],{},\360\237\230\200 \303\251 \342\202\254,a\011b,back\\slash/,\015\012" },
    { "{\012  \"k,ey\": \"v\",\012  \"k\\\"q\": \"w\",\012  \"k\\ney\": 7,\012  \"\\u00e9\": \"x\"\012}\012",
      "\"k,ey\",\"k\"\"q\",\"k\012ey\",\303\251\015\012v,w,7,x\015\012" },
    { "{\012  \"a\": [\012    null,\012    true,\012    \"s p a c e\"\012  ],\012  \"b\": {\012    \"nested\": {\012      \"deep\": [\012        \"x y\",\012        {\012          \"k\": \"v\"\012        }\012      ]\012    }\012  }\012}\012",
      "a,b\015\012\"[null,true,\"\"s p a c e\"\"]\",\"{\"\"nested\"\":{\"\"deep\"\":[\"\"x y\"\",{\"\"k\"\":\"\"v\"\"}]}}\"\015\012" },
    { "{\012  \"id\": \"e1\",\012  \"name\": \"Ana, Mar\303\255a\",\012  \"quote\": \"say \\\"hi\\\"\",\012  \"nl\": \"a\\nb\",\012  \"cr\": \"a\\rb\",\012  \"crlf\": \"x\\r\\ny\",\012  \"n\": 1.5,\012  \"i\": -3,\012  \"big\": 12345678901234567890123,\012  \"t\": true,\012  \"f\": false,\012  \"z\": null,\012  \"obj\": {\012    \"a\": 1,\012    \"b\": [\012      1,\012      2,\012      {\012        \"c\": \"d,\\\"e\\\"\"\012      }\012    ]\012  },\012  \"arr\": [\012    1\012  ],\012  \"earr\": [],\012  \"eobj\": {},\012  \"emoji\": \"\360\237\230\200 \303\251 \342\202\254\",\012  \"tab\": \"a\\tb\",\012  \"bs\": \"back\\\\slash/\",\012  \"empty\": \"\"\012}\012",
      "id,name,quote,nl,cr,crlf,n,i,big,t,f,z,obj,arr,earr,eobj,emoji,tab,bs,empty\015\012e1,\"Ana, Mar\303\255a\",\"say \"\"hi\"\"\",\"a\012b\",\"a\015b\",\"x\015\012y\",1.5,-3,12345678901234567890123,true,false,,\"{\"\"a\"\":1,\"\"b\"\":[1,2,{\"\"c\"\":\"\"d,\\\"\"e\\\"\"\"\"}]}\",[1],[],{},\360\237\230\200 \303\251 \342\202\254,a\011b,back\\slash/,\015\012" },
    { "{\012  \"k,ey\": \"v\",\012  \"k\\\"q\": \"w\",\012  \"k\\ney\": 7,\012  \"\303\251\": \"x\"\012}\012",
      "\"k,ey\",\"k\"\"q\",\"k\012ey\",\303\251\015\012v,w,7,x\015\012" },
    { "{\012  \"a\": [\012    null,\012    true,\012    \"s p a c e\"\012  ],\012  \"b\": {\012    \"nested\": {\012      \"deep\": [\012        \"x y\",\012        {\012          \"k\": \"v\"\012        }\012      ]\012    }\012  }\012}\012",
      "a,b\015\012\"[null,true,\"\"s p a c e\"\"]\",\"{\"\"nested\"\":{\"\"deep\"\":[\"\"x y\"\",{\"\"k\"\":\"\"v\"\"}]}}\"\015\012" },
};

static void test_python_fixtures(void)
{
    size_t bad = 0, n = sizeof PYFIX / sizeof *PYFIX;
    for (size_t i = 0; i < n; i++) {
        const char *text = PYFIX[i].json;
        struct buf keys = BUF_INIT, out = BUF_INIT, compact = BUF_INIT;
        int nk = export_csv_keys(text, strlen(text), &keys);
        if (nk <= 0) {
            diag("fixture %zu: export_csv_keys returned %d", i, nk);
            bad++;
            buf_free(&keys);
            continue;
        }
        const char **cols = split_keys(&keys, (size_t)nk);
        export_csv_header(cols, (size_t)nk, &out);
        size_t hlen = out.len;
        export_csv_row(text, strlen(text), cols, (size_t)nk, &out);
        int good = bytes_eq("python csv", out.data, out.len, PYFIX[i].csv, strlen(PYFIX[i].csv)) &&
                   out.len - hlen == export_csv_cells_size(text, strlen(text)) + (size_t)nk + 1;
        /* the same from the compact form */
        export_compact(text, strlen(text), &compact);
        buf_reset(&out);
        export_csv_header(cols, (size_t)nk, &out);
        export_csv_row(compact.data, compact.len, cols, (size_t)nk, &out);
        good = good && bytes_eq("python csv (compact input)", out.data, out.len,
                                PYFIX[i].csv, strlen(PYFIX[i].csv));
        if (!good) {
            diag("fixture %zu", i);
            bad++;
        }
        free(cols);
        buf_free(&keys);
        buf_free(&out);
        buf_free(&compact);
    }
    ok(bad == 0, "CSV equals Python's csv module byte for byte (%zu fixtures)", n);
}

/* ------------------------------------------------------------------------ */
/* Generated records against an oracle                                      */
/* ------------------------------------------------------------------------ */

static uint64_t rng;

static uint32_t rnd(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (uint32_t)((rng * 2685821657736338717ULL) >> 32);
}

static size_t rn(size_t n)
{
    return rnd() % n;
}

/* A record's text twice: compact, and with random white space between tokens. */
struct gen {
    struct buf compact;
    struct buf spaced;
};

static void tok(struct gen *g, const char *s, size_t n)
{
    static const char *const WS[] = { "", "", "", " ", "\n", "  ", "\t", "\r\n    ", "\n\n " };
    buf_adds(&g->spaced, WS[rn(sizeof WS / sizeof *WS)]);
    buf_add(&g->compact, s, n);
    buf_add(&g->spaced, s, n);
}

static void toks(struct gen *g, const char *s)
{
    tok(g, s, strlen(s));
}

/* Pieces of strings: the JSON text and what it decodes to. */
struct piece {
    const char *json;
    const char *dec;
    size_t dlen;
};

#define P(j, d) { j, d, sizeof(d) - 1 }
static const struct piece PIECES[] = {
    P("a", "a"), P("Zed", "Zed"), P(" ", " "), P("  ", "  "), P(",", ","), P("\\\"", "\""),
    P("\\\\", "\\"), P("\\/", "/"), P("/", "/"), P("\\n", "\n"), P("\\r", "\r"), P("\\t", "\t"),
    P("\\b", "\b"), P("\\f", "\f"), P("\\u00e9", "\xc3\xa9"), P("\xc3\xa9", "\xc3\xa9"),
    P("\\ud83d\\ude00", "\xf0\x9f\x98\x80"), P("\\uD83D\\uDE00", "\xf0\x9f\x98\x80"),
    P("\\ud83dx", "\xef\xbf\xbdx"), P("\\udc00", "\xef\xbf\xbd"),
    P("\\ud83d\\u0041", "\xef\xbf\xbd" "A"), P("\\u002c", ","), P("\\u0022", "\""),
    P("\\u000a", "\n"), P("\\u000D", "\r"), P("\\u0041", "A"), P("\\u20AC", "\xe2\x82\xac"),
    P("\\u0000", "\0"), P("{", "{"), P("}]", "}]"), P(":", ":"), P("[", "["),
    P("\\\\\\\"", "\\\""), P("'", "'"), P("\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80"),
};
#undef P

static const char *const NUMS[] = {
    "0", "-0", "1.50", "1e400", "-1.5E-7", "123456789012345678901234567890", "42", "0.1",
    "-12", "3E+2",
};

/* Keys: the JSON token and the decoded name. Different spellings of one name
 * make duplicates in a record. */
static const struct {
    const char *json;
    const char *name;
} KEYS[] = {
    { "\"id\"", "id" }, { "\"first_name\"", "first_name" }, { "\"a,b\"", "a,b" },
    { "\"q\\\"k\"", "q\"k" }, { "\"l\\nf\"", "l\nf" }, { "\"\\u00e9\"", "\xc3\xa9" },
    { "\"\xc3\xa9\"", "\xc3\xa9" }, { "\"\"", "" }, { "\"x y\"", "x y" },
    { "\"a\\/b\"", "a/b" }, { "\"a/b\"", "a/b" }, { "\"cr\\r\"", "cr\r" },
    { "\"e\\ud83d\\ude00\"", "e\xf0\x9f\x98\x80" }, { "\"work_email\"", "work_email" },
    { "\"manager\"", "manager" }, { "\"groups\"", "groups" }, { "\"f0\"", "f0" },
    { "\"f1\"", "f1" }, { "\"f2\"", "f2" }, { "\"f3\"", "f3" }, { "\"f4\"", "f4" },
    { "\"f5\"", "f5" }, { "\"f6\"", "f6" }, { "\"f7\"", "f7" }, { "\"f\"", "f" },
    { "\"f00\"", "f00" },
};
#define NKEYS (sizeof KEYS / sizeof *KEYS)

/* A string token; its decoded text goes to dec when not NULL. */
static void gen_string(struct gen *g, struct buf *dec)
{
    struct buf j = BUF_INIT;
    buf_addc(&j, '"');
    size_t n = rn(4) == 0 ? 0 : rn(8);
    for (size_t i = 0; i < n; i++) {
        const struct piece *p = &PIECES[rn(sizeof PIECES / sizeof *PIECES)];
        buf_adds(&j, p->json);
        if (dec)
            buf_add(dec, p->dec, p->dlen);
    }
    buf_addc(&j, '"');
    tok(g, j.data, j.len);
    buf_free(&j);
}

/* A value; its expected cell text (before CSV quoting) goes to cell when not
 * NULL (a null adds nothing: its cell is empty). */
static void gen_value(struct gen *g, int depth, struct buf *cell)
{
    size_t kind = rn(depth > 0 ? 8 : 6);
    switch (kind) {
    case 0:
    case 1:
        gen_string(g, cell);
        return;
    case 2: {
        const char *n = NUMS[rn(sizeof NUMS / sizeof *NUMS)];
        toks(g, n);
        if (cell)
            buf_adds(cell, n);
        return;
    }
    case 3:
    {
        const char *lit = rn(2) ? "true" : "false";
        toks(g, lit);
        if (cell)
            buf_adds(cell, lit);
        return;
    }
    case 4:
    case 5:
        toks(g, "null");
        return;
    default: {
        size_t start = g->compact.len;
        int obj = kind == 6;
        toks(g, obj ? "{" : "[");
        size_t n = rn(4);
        for (size_t i = 0; i < n; i++) {
            if (i)
                toks(g, ",");
            if (obj) {
                gen_string(g, NULL);
                toks(g, ":");
            }
            gen_value(g, depth - 1, NULL);
        }
        toks(g, obj ? "}" : "]");
        if (cell)
            buf_add(cell, g->compact.data + start, g->compact.len - start);
        return;
    }
    }
}

/* The oracle: a record's members as generated. */
struct gmember {
    const char *name;       /* decoded key */
    struct buf cell;        /* expected cell text, unquoted */
};

struct grec {
    struct gmember m[80];
    size_t n;
    const char *keys[80];   /* distinct names, first position */
    size_t nkeys;
    char names[80][16];     /* the generated names ("u17") */
};

static void naive_field(const char *s, size_t n, struct buf *out)
{
    int q = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n')
            q = 1;
    if (q)
        buf_addc(out, '"');
    for (size_t i = 0; i < n; i++) {
        buf_addc(out, s[i]);
        if (q && s[i] == '"')
            buf_addc(out, '"');
    }
    if (q)
        buf_addc(out, '"');
}

/* The last member named name, NULL if none. */
static const struct gmember *glookup(const struct grec *r, const char *name)
{
    for (size_t i = r->n; i-- > 0;)
        if (strcmp(r->m[i].name, name) == 0)
            return &r->m[i];
    return NULL;
}

static void oracle_row(const struct grec *r, const char *const *cols, size_t ncols,
                       struct buf *out)
{
    for (size_t c = 0; c < ncols; c++) {
        if (c)
            buf_addc(out, ',');
        const struct gmember *m = glookup(r, cols[c]);
        if (m)
            naive_field(m->cell.data ? m->cell.data : "", m->cell.len, out);
    }
    buf_add(out, "\r\n", 2);
}

static void gen_record(struct gen *g, struct grec *r, size_t unique_base)
{
    r->n = 0;
    r->nkeys = 0;
    size_t n = rn(10) == 0 ? 40 + rn(40) : rn(16);
    toks(g, "{");
    for (size_t i = 0; i < n; i++) {
        if (i)
            toks(g, ",");
        struct gmember *m = &r->m[r->n++];
        m->cell = (struct buf)BUF_INIT;
        if (rn(3) == 0) {
            /* a key unique to this position (and this record batch) */
            snprintf(r->names[i], sizeof r->names[i], "u%zu", (unique_base + i) % 100);
            char tokbuf[24];
            snprintf(tokbuf, sizeof tokbuf, "\"%s\"", r->names[i]);
            toks(g, tokbuf);
            m->name = r->names[i];
        } else {
            size_t k = rn(NKEYS);
            toks(g, KEYS[k].json);
            m->name = KEYS[k].name;
        }
        toks(g, ":");
        gen_value(g, 3, &m->cell);
        size_t j;
        for (j = 0; j < r->nkeys; j++)
            if (strcmp(r->keys[j], m->name) == 0)
                break;
        if (j == r->nkeys)
            r->keys[r->nkeys++] = m->name;
    }
    toks(g, "}");
    if (rn(2))
        buf_adds(&g->spaced, "\n");
}

static void grec_free(struct grec *r)
{
    for (size_t i = 0; i < r->n; i++)
        buf_free(&r->m[i].cell);
    r->n = 0;
}

static uint64_t test_seed(void)
{
    const char *env = getenv("EXPORT_TEST_SEED");
    if (env && *env) {
        char *end;
        unsigned long long v = strtoull(env, &end, 10);
        if (*end == '\0')
            return v;
    }
    return 20240611;
}

enum {
    F_VALID, F_COMPACT, F_COMPACT_SIZE, F_COMPACT_PRETTY, F_KEYS, F_ROW, F_ROW_SPACED,
    F_ROW_PRETTY, F_SIZE, F_EXTRA, F_EXTRA_SIZE, F_SHUFFLED, F_UNION, F_UNION_SIZE, F_MEMBERS,
    F_COUNT
};

static const char *const FNAMES[F_COUNT] = {
    "generated records are valid JSON (jtext_validate)",
    "compact of the spaced text is the compact text",
    "export_compact_size of the spaced text",
    "compact of jtext_pretty output is the compact text",
    "export_csv_keys: distinct decoded keys in first-seen order",
    "row for the record's own keys equals the oracle",
    "row of the spaced text equals the row of the compact text",
    "row of jtext_pretty output equals the row of the compact text",
    "row size == cells_size + ncols + 1 for the record's own keys",
    "row with extra absent columns equals the oracle",
    "each absent column adds exactly 1 byte",
    "row with shuffled columns equals the oracle",
    "rows over the union of all keys (SPEC order) equal the oracle",
    "row size == cells_size + ncols + 1 over the union of all keys",
    "export_csv_derive_members on the page's spans == export_csv_derive (3 layouts)",
};

#define NREC 400

static void test_generated(void)
{
    uint64_t seed = test_seed();
    diag("random seed %llu (set EXPORT_TEST_SEED to reproduce)", (unsigned long long)seed);
    rng = seed * 0x9E3779B97F4A7C15ULL + 1;
    size_t fails[F_COUNT] = { 0 };
    struct gen *gens = calloc(NREC, sizeof *gens);
    struct grec *recs = calloc(NREC, sizeof *recs);
    if (!gens || !recs)
        abort();
    const char **ucols = NULL;
    size_t nucols = 0, ucap = 0;
    size_t ntested = 0;

#define FAIL(f, ...) do { if (!fails[f]++) { diag("record %zu: %s", i, FNAMES[f]); __VA_ARGS__; } } while (0)

    for (size_t i = 0; i < NREC; i++) {
        struct gen *g = &gens[i];
        struct grec *r = &recs[i];
        gen_record(g, r, i * 7);
        ntested++;

        const char *ct = g->compact.data, *st = g->spaced.data;
        size_t cl = g->compact.len, sl = g->spaced.len;
        if (jtext_validate(ct, cl) != 0 || jtext_validate(st, sl) != 0)
            FAIL(F_VALID, show("compact", ct, cl));

        struct buf b = BUF_INIT, p = BUF_INIT, want = BUF_INIT, b2 = BUF_INIT;
        export_compact(st, sl, &b);
        if (b.len != cl || memcmp(b.data, ct, cl) != 0)
            FAIL(F_COMPACT, show("spaced", st, sl); show("got", b.data, b.len));
        if (export_compact_size(st, sl) != cl)
            FAIL(F_COMPACT_SIZE, show("spaced", st, sl));
        buf_reset(&b);
        jtext_pretty(ct, cl, &p);
        export_compact(p.data, p.len, &b);
        if (b.len != cl || memcmp(b.data, ct, cl) != 0)
            FAIL(F_COMPACT_PRETTY, show("pretty", p.data, p.len));

        /* keys */
        struct buf kwant = BUF_INIT, kgot = BUF_INIT;
        for (size_t k = 0; k < r->nkeys; k++)
            buf_add(&kwant, r->keys[k], strlen(r->keys[k]) + 1);
        int nk = export_csv_keys(p.data, p.len, &kgot);
        if (nk != (int)r->nkeys || kgot.len != kwant.len ||
            (kgot.len && memcmp(kgot.data, kwant.data, kgot.len) != 0))
            FAIL(F_KEYS, show("record", ct, cl); show("want", kwant.data, kwant.len);
                 show("got", kgot.data, kgot.len));
        buf_free(&kwant);
        buf_free(&kgot);

        /* the record's own keys */
        const char *const *cols = r->keys;
        size_t ncols = r->nkeys;
        oracle_row(r, cols, ncols, &want);
        buf_reset(&b);
        export_csv_row(ct, cl, cols, ncols, &b);
        if (b.len != want.len || memcmp(b.data, want.data, b.len) != 0)
            FAIL(F_ROW, show("record", ct, cl); show("want", want.data, want.len);
                 show("got", b.data, b.len));
        export_csv_row(st, sl, cols, ncols, &b2);
        if (b2.len != b.len || memcmp(b2.data, b.data, b.len) != 0)
            FAIL(F_ROW_SPACED, show("spaced", st, sl));
        buf_reset(&b2);
        export_csv_row(p.data, p.len, cols, ncols, &b2);
        if (b2.len != b.len || memcmp(b2.data, b.data, b.len) != 0)
            FAIL(F_ROW_PRETTY, show("pretty", p.data, p.len));
        size_t cs = export_csv_cells_size(st, sl);
        if (ncols && b.len != cs + ncols + 1)
            FAIL(F_SIZE, show("record", ct, cl); diag("row %zu, cells %zu, ncols %zu", b.len, cs, ncols));
        if (!ncols && (cs != 0 || b.len != 2))
            FAIL(F_SIZE, show("record", ct, cl));
        if (export_csv_cells_size(p.data, p.len) != cs || export_csv_cells_size(ct, cl) != cs)
            FAIL(F_SIZE, diag("cells size differs between pretty, compact and spaced"));

        if (!members_agree(ct, cl) || !members_agree(st, sl) || !members_agree(p.data, p.len))
            FAIL(F_MEMBERS, show("record", ct, cl));

        /* extra columns the record lacks, at random positions */
        const char *ext[100];
        size_t next = 0, nextra = 1 + rn(4);
        size_t slots[5];
        for (size_t e = 0; e < nextra; e++)
            slots[e] = rn(ncols + 1);
        static const char *const ABSENT[] = { "zz absent", "", "idx", "f01", "a,bc" };
        for (size_t c = 0; c <= ncols; c++) {
            for (size_t e = 0; e < nextra; e++)
                if (slots[e] == c && !glookup(r, ABSENT[e]))
                    ext[next++] = ABSENT[e];
            if (c < ncols)
                ext[next++] = cols[c];
        }
        buf_reset(&want);
        oracle_row(r, ext, next, &want);
        buf_reset(&b2);
        export_csv_row(st, sl, ext, next, &b2);
        if (b2.len != want.len || memcmp(b2.data, want.data, want.len) != 0)
            FAIL(F_EXTRA, show("record", ct, cl); show("want", want.data, want.len);
                 show("got", b2.data, b2.len));
        if (ncols && b2.len != cs + next + 1)
            FAIL(F_EXTRA_SIZE, diag("row %zu, cells %zu, ncols %zu", b2.len, cs, next));

        /* shuffled columns */
        const char *shuf[80];
        memcpy(shuf, cols, ncols * sizeof *shuf);
        for (size_t c = ncols; c > 1; c--) {
            size_t d = rn(c);
            const char *t = shuf[c - 1];
            shuf[c - 1] = shuf[d];
            shuf[d] = t;
        }
        buf_reset(&want);
        oracle_row(r, shuf, ncols, &want);
        buf_reset(&b2);
        export_csv_row(p.data, p.len, shuf, ncols, &b2);
        if (b2.len != want.len || memcmp(b2.data, want.data, want.len) != 0)
            FAIL(F_SHUFFLED, show("record", ct, cl); show("want", want.data, want.len);
                 show("got", b2.data, b2.len));

        /* the union of the columns so far, in first-seen order */
        for (size_t k = 0; k < r->nkeys; k++) {
            size_t u;
            for (u = 0; u < nucols; u++)
                if (strcmp(ucols[u], r->keys[k]) == 0)
                    break;
            if (u < nucols)
                continue;
            if (nucols == ucap) {
                ucap = ucap ? ucap * 2 : 64;
                ucols = realloc(ucols, ucap * sizeof *ucols);
                if (!ucols)
                    abort();
            }
            ucols[nucols++] = r->keys[k];
        }
        buf_free(&b);
        buf_free(&b2);
        buf_free(&p);
        buf_free(&want);
    }

    /* every record against the full column list, as exports/employees.csv */
    for (size_t i = 0; i < NREC; i++) {
        struct gen *g = &gens[i];
        struct buf b = BUF_INIT, want = BUF_INIT, p = BUF_INIT;
        jtext_pretty(g->compact.data, g->compact.len, &p);
        oracle_row(&recs[i], ucols, nucols, &want);
        export_csv_row(p.data, p.len, ucols, nucols, &b);
        if (b.len != want.len || memcmp(b.data, want.data, want.len) != 0)
            FAIL(F_UNION, show("record", g->compact.data, g->compact.len);
                 show("want", want.data, want.len); show("got", b.data, b.len));
        if (b.len != export_csv_cells_size(p.data, p.len) + nucols + 1)
            FAIL(F_UNION_SIZE, diag("row %zu", b.len));
        buf_free(&b);
        buf_free(&want);
        buf_free(&p);
    }
#undef FAIL

    for (int f = 0; f < F_COUNT; f++)
        ok(fails[f] == 0, "%s (%zu records, %zu failed)", FNAMES[f], ntested, fails[f]);
    diag("%zu columns in the union", nucols);

    for (size_t i = 0; i < NREC; i++) {
        buf_free(&gens[i].compact);
        buf_free(&gens[i].spaced);
        grec_free(&recs[i]);
    }
    free(gens);
    free(recs);
    free(ucols);
}

int main(void)
{
    test_compact();
    test_cells();
    test_field_header();
    test_keys();
    test_rows();
    test_python_fixtures();
    test_generated();
    return tap_done_testing();
}
