/*
 * fuzz_page.c — the API page parser and the record normaliser (jtext.c):
 * jtext_page_parse, and for the page's records and for the whole input
 * jtext_fields, jtext_pretty and jtext_validate, checked against jansson.
 *
 * Input: a response body, any bytes (an exact-size buffer, as the
 * scanner must never read past `len`).
 *
 * Properties, for any text T (the whole input, and each record of a page):
 *  - jtext_validate(T) == 0 exactly when jtext_pretty(T) == 0; a refused
 *    text appends nothing (the buffer keeps its previous content);
 *  - P = pretty(T) ends with a newline, validates, and pretty(P) == P;
 *  - T is accepted by jansson (as fetch.c's parse_record reads a record:
 *    flags 0, then JSON_DECODE_INT_AS_REAL for integers beyond 64 bits),
 *    and jansson reads P as the same value (json_equal). The divergences
 *    listed in known_divergence() are tolerated, and counted, unless
 *    KOMBOFS_FUZZ_STRICT=1 (docs/fuzzing.md: what they cost in fetch.c);
 *  - conversely, whatever jansson accepts jtext accepts too, unless it
 *    nests deeper than JTEXT_MAX_DEPTH.
 * For the page:
 *  - a refused page has a message and an empty struct; an accepted one is
 *    valid JSON, its result spans lie inside the body and each validates;
 *  - differential against jansson (duplicate keys rejected): the success
 *    envelope {"status":"success","data":{"next":…,"results":[…]}} is
 *    accepted exactly when jansson sees it, with the same number of results,
 *    each json_equal to jansson's element, and the same cursor (NULL for
 *    null and "").
 *  - what the page scan learned of each result (its sizes, its members,
 *    the fields and CSV cells read from them) is what reading it alone
 *    gives (check_members).
 * For jtext_fields (id, changed_at, remote_id, remote_deleted_at, ""):
 *  - a valid object gives 0; each field's type, decoded string and raw
 *    span agree with jansson's member (a string holding \u0000 is OTHER);
 *    the raw span is the member's value, verbatim.
 */
#include <jansson.h>
#include <string.h>

#include "buf.h"
#include "fuzz.h"
#include "export.h"
#include "jtext.h"

static const char *const field_keys[] = { "id", "changed_at", "remote_id",
                                          "remote_deleted_at", "" };
#define NFIELDS (sizeof field_keys / sizeof field_keys[0])

/* jansson 2.14 swallows a NUL byte right after a literal or a number
 * ("null\0", "14\0": it compares the token as a C string), where RFC 8259
 * and jtext refuse it. Not jtext's business: such texts count as refused. */
static json_t *load(const char *t, size_t n, size_t flags, json_error_t *e)
{
    if (n && memchr(t, '\0', n)) {
        if (e) {
            memset(e, 0, sizeof *e);
            snprintf(e->text, sizeof e->text, "a NUL byte (not tested against jansson)");
        }
        return NULL;
    }
    return json_loadb(t, n, flags, e);
}

/* jansson's reading of a text, as fetch.c's parse_record does it: when an
 * integer is beyond 64 bits, every number is read as a real (then *as_real,
 * if given, is set, so that parts of the text can be read the same way). */
static json_t *jansson_read2(const char *t, size_t n, size_t flags, json_error_t *e,
                             int *as_real)
{
    json_t *j = load(t, n, flags, e);
    if (as_real)
        *as_real = !j;
    return j ? j : load(t, n, flags | JSON_DECODE_INT_AS_REAL, e);
}

static json_t *jansson_read(const char *t, size_t n, size_t flags, json_error_t *e)
{
    return jansson_read2(t, n, flags, e, NULL);
}

/*
 * What jtext accepts (it copies tokens verbatim, by design) and jansson
 * refuses: invalid UTF-8 (jtext.h: "UTF-8 not re-checked"), \u0000, a lone
 * surrogate escape, a number beyond the range of a double.
 */
static int known_divergence(const json_error_t *e)
{
    switch (json_error_code(e)) {
    case json_error_invalid_utf8:
    case json_error_null_character:
    case json_error_null_byte_in_key:
    case json_error_numeric_overflow:
        return 1;
    case json_error_invalid_syntax:
        return strstr(e->text, "invalid Unicode") != NULL;
    default:
        return 0;
    }
}

/* The deepest nesting of arrays and objects outside strings. */
static int nesting(const char *t, size_t n)
{
    int depth = 0, max = 0, in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > max)
                max = depth;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return max;
}

/* Does the text hold `"key"` (then white space and ':' when colon)? jtext
 * compares keys and "success" as raw bytes ("keys with escapes never
 * match", jtext.c); jansson decodes them first. A member jansson found whose
 * raw token is nowhere in the text was written with escapes. */
static int raw_token(const char *t, size_t n, const char *key, int colon)
{
    size_t k = strlen(key);
    for (const char *p = t; (size_t)(t + n - p) >= k + 2;) {
        const char *q = memchr(p, '"', (size_t)(t + n - p));
        if (!q || (size_t)(t + n - q) < k + 2)
            return 0;
        if (memcmp(q + 1, key, k) == 0 && q[k + 1] == '"') {
            const char *r = q + k + 2;
            while (colon && r < t + n && (*r == ' ' || *r == '\t' || *r == '\n' || *r == '\r'))
                r++;
            if (!colon || (r < t + n && *r == ':'))
                return 1;
        }
        p = q + 1;
    }
    return 0;
}

static void check_text(const char *t, size_t n)
{
    static const char prefix[] = "prefix";
    struct buf out = BUF_INIT, again = BUF_INIT;
    buf_adds(&out, prefix);
    int v = jtext_validate(t, n);
    int p = jtext_pretty(t, n, &out);
    FUZZ_CHECK(v == 0 || v == -1, "validate %d", v);
    FUZZ_CHECK(v == p, "validate says %d, pretty says %d", v, p);
    FUZZ_CHECK(out.len >= sizeof prefix - 1 && memcmp(out.data, prefix, sizeof prefix - 1) == 0,
               "pretty changed what the buffer held");
    FUZZ_CHECK(out.data[out.len] == '\0', "buffer not terminated");

    json_error_t e;
    json_t *a = jansson_read(t, n, JSON_DECODE_ANY, &e);
    if (p < 0) {
        FUZZ_CHECK(out.len == sizeof prefix - 1, "a refused text appended %zu bytes",
                   out.len - (sizeof prefix - 1));
        FUZZ_CHECK(!a || nesting(t, n) > JTEXT_MAX_DEPTH,
                   "jansson accepts what jtext refuses (nesting %d)", nesting(t, n));
        json_decref(a);
        buf_free(&out);
        return;
    }
    const char *pr = out.data + sizeof prefix - 1;
    size_t pn = out.len - (sizeof prefix - 1);
    FUZZ_CHECK(pn >= 2 && pr[pn - 1] == '\n', "pretty text without its final newline");
    FUZZ_CHECK(jtext_validate(pr, pn) == 0, "pretty text does not validate");
    FUZZ_CHECK(jtext_pretty(pr, pn, &again) == 0, "pretty text refused by pretty");
    FUZZ_CHECK(again.len == pn && memcmp(again.data, pr, pn) == 0,
               "pretty(pretty(x)) != pretty(x):\n%s\n----\n%s", pr, again.data);

    /* The store's path (schema version 4): a record is measured without output and
     * kept compact; its file is the compact JSON re-indented without validating. */
    struct jtext_sizes sz = { 0, 0, 0 };
    FUZZ_CHECK(jtext_pretty_fields(t, n, NULL, NULL, 0, &sz) == 0, "measuring refused it");
    size_t nl = 0;
    for (size_t i = 0; i < pn; i++)
        nl += pr[i] == '\n';
    FUZZ_CHECK(sz.pretty == pn && sz.lines == nl && sz.compact == export_compact_size(t, n),
               "measured %zu/%zu/%zu, rendered %zu bytes, %zu lines, compact %zu", sz.pretty,
               sz.lines, sz.compact, pn, nl, export_compact_size(t, n));
    struct buf compact = BUF_INIT, fast = BUF_INIT;
    export_compact(t, n, &compact);
    size_t k = jtext_indent_compact(compact.data, compact.len, 0, 1, &fast);
    FUZZ_CHECK(k == pn && fast.len == pn && memcmp(fast.data, pr, pn) == 0,
               "indent_compact(compact(x)) != pretty(x):\n%s\n----\n%s", pr, fast.data);
    buf_free(&compact);
    buf_free(&fast);

    if (!a) {
        FUZZ_CHECK(known_divergence(&e) && !fuzz_strict(),
                   "jtext accepts what jansson refuses: %s (line %d, column %d)", e.text,
                   e.line, e.column);
    } else {
        json_t *b = jansson_read(pr, pn, JSON_DECODE_ANY, &e);
        FUZZ_CHECK(b, "jansson refuses the pretty text of what it accepted: %s", e.text);
        FUZZ_CHECK(json_equal(a, b), "pretty text is another value");
        json_decref(b);
    }
    json_decref(a);
    buf_free(&out);
    buf_free(&again);
}

static void check_fields(const char *t, size_t n)
{
    struct jtext_field f[NFIELDS];
    for (size_t i = 0; i < NFIELDS; i++) {
        memset(&f[i], 0x5a, sizeof f[i]);  /* outputs must all be written */
        f[i].key = field_keys[i];
    }
    int rc = jtext_fields(t, n, f, NFIELDS);
    FUZZ_CHECK(rc == 0 || rc == -1, "rc %d", rc);
    if (rc < 0) {
        for (size_t i = 0; i < NFIELDS; i++)
            FUZZ_CHECK(f[i].str == NULL, "string left allocated after a failure");
    }
    int as_real;
    json_t *o = jansson_read2(t, n, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL, &as_real);
    if (json_is_object(o) && nesting(t, n) <= JTEXT_MAX_DEPTH) {
        FUZZ_CHECK(rc == 0, "jtext_fields refuses an object");
        for (size_t i = 0; i < NFIELDS; i++) {
            json_t *v = json_object_get(o, f[i].key);
            enum jtext_type want = !v                   ? JTEXT_ABSENT
                                   : json_is_null(v)    ? JTEXT_NULL
                                   : json_is_string(v) &&
                                           strlen(json_string_value(v)) == json_string_length(v)
                                       ? JTEXT_STRING
                                       : JTEXT_OTHER;
            if (want != JTEXT_ABSENT && f[i].type == JTEXT_ABSENT &&
                !raw_token(t, n, f[i].key, 1))
                continue;   /* the key is written with escapes: never matched */
            FUZZ_CHECK(f[i].type == want, "field '%s': type %d, jansson %d", f[i].key,
                       (int)f[i].type, (int)want);
            if (want == JTEXT_STRING) {
                FUZZ_CHECK(f[i].str && f[i].len == json_string_length(v) &&
                               memcmp(f[i].str, json_string_value(v), f[i].len) == 0 &&
                               f[i].str[f[i].len] == '\0',
                           "field '%s': string differs from jansson's", f[i].key);
            } else {
                FUZZ_CHECK(f[i].str == NULL, "field '%s': a string for type %d", f[i].key,
                           (int)f[i].type);
            }
            if (want != JTEXT_ABSENT) {
                FUZZ_CHECK(f[i].raw.off < n && f[i].raw.len <= n - f[i].raw.off,
                           "field '%s': raw span out of the text", f[i].key);
                json_t *r = load(t + f[i].raw.off, f[i].raw.len,
                                 JSON_DECODE_ANY | JSON_ALLOW_NUL |
                                     (as_real ? JSON_DECODE_INT_AS_REAL : 0),
                                 NULL);
                FUZZ_CHECK(r && json_equal(r, v), "field '%s': raw span is not the value",
                           f[i].key);
                json_decref(r);
            }
        }
    }
    json_decref(o);
    if (rc == 0)
        jtext_fields_free(f, NFIELDS);
}

/* jansson's view of the envelope: 1 for a success page, 2 for one whose
 * cursor holds a NUL, 0 for anything else. */
static int jansson_page(json_t *root, json_t **results, const char **next)
{
    json_t *data = json_object_get(root, "data");
    json_t *st = json_object_get(root, "status");
    json_t *nx = json_object_get(data, "next");
    *results = json_object_get(data, "results");
    *next = json_string_value(nx);
    if (*next && !**next)
        *next = NULL;
    if (!(json_is_object(root) && json_is_string(st) &&
          strcmp(json_string_value(st), "success") == 0 && json_is_object(data) &&
          (json_is_null(nx) || json_is_string(nx)) && json_is_array(*results)))
        return 0;
    return json_is_string(nx) && strlen(*next ? *next : "") != json_string_length(nx) ? 2 : 1;
}

/* What the page scan learned of result i (jtext_page_parse's info and
 * members) is what reading the record alone gives: jtext_pretty_fields'
 * sizes, jtext_fields' fields (same type, span and string), and
 * export_csv_derive's keys and cells' size from export_csv_derive_members,
 * told it is compact when it is, and not. */
static void check_members(const char *body, const struct jtext_page *page, size_t i)
{
    const char *t = body + page->results[i].off;
    size_t n = page->results[i].len;
    const struct jtext_result *in = &page->info[i];
    const struct jtext_member *m = jtext_page_members(page, i);
    struct jtext_sizes sz;
    FUZZ_CHECK(jtext_pretty_fields(t, n, NULL, NULL, 0, &sz) == 0, "result %zu refused", i);
    FUZZ_CHECK(sz.pretty == in->sizes.pretty && sz.compact == in->sizes.compact &&
                   sz.lines == in->sizes.lines,
               "result %zu: page sizes %zu/%zu/%zu, alone %zu/%zu/%zu", i, in->sizes.pretty,
               in->sizes.compact, in->sizes.lines, sz.pretty, sz.compact, sz.lines);
    FUZZ_CHECK(t[0] == '{' || in->nmembers == 0, "result %zu: members of a non-object", i);
    struct jtext_field a[NFIELDS], b[NFIELDS];
    for (size_t k = 0; k < NFIELDS; k++) {
        memset(&a[k], 0x5a, sizeof a[k]);
        memset(&b[k], 0x5a, sizeof b[k]);
        a[k].key = b[k].key = field_keys[k];
    }
    int obj = jtext_fields(t, n, a, NFIELDS) == 0;
    jtext_member_fields(t, m, in->nmembers, b, NFIELDS);
    for (size_t k = 0; k < NFIELDS; k++) {
        enum jtext_type want = obj ? a[k].type : JTEXT_ABSENT;
        FUZZ_CHECK(b[k].type == want, "result %zu field '%s': type %d, alone %d", i,
                   b[k].key, (int)b[k].type, (int)want);
        if (want != JTEXT_ABSENT)
            FUZZ_CHECK(b[k].raw.off == a[k].raw.off && b[k].raw.len == a[k].raw.len,
                       "result %zu field '%s': span differs", i, b[k].key);
        if (want == JTEXT_STRING)
            FUZZ_CHECK(b[k].len == a[k].len && memcmp(b[k].str, a[k].str, a[k].len) == 0,
                       "result %zu field '%s': string differs", i, b[k].key);
        else
            FUZZ_CHECK(b[k].str == NULL, "result %zu field '%s': a string", i, b[k].key);
    }
    jtext_fields_free(a, NFIELDS);
    jtext_fields_free(b, NFIELDS);
    struct buf want = BUF_INIT, got = BUF_INIT;
    int wn, gn;
    size_t ws = export_csv_derive(t, n, &want, &wn);
    for (int compact = 0; compact <= (in->sizes.compact == n); compact++) {
        buf_reset(&got);
        size_t gs = export_csv_derive_members(t, m, in->nmembers, compact, &got, &gn);
        FUZZ_CHECK(gs == ws && gn == wn && got.len == want.len &&
                       (!got.len || memcmp(got.data, want.data, got.len) == 0),
                   "result %zu, compact %d: derived from members %zu/%d, alone %zu/%d", i,
                   compact, gs, gn, ws, wn);
    }
    buf_free(&want);
    buf_free(&got);
}

static void check_page(const char *body, size_t len)
{
    struct jtext_page page;
    const char *msg = NULL;
    memset(&page, 0x5a, sizeof page);
    int rc = jtext_page_parse(body, len, &page, &msg);
    FUZZ_CHECK(rc == 0 || rc == -1, "rc %d", rc);
    if (rc < 0) {
        FUZZ_CHECK(msg && *msg, "refused without a message");
        FUZZ_CHECK(!page.next && !page.results && !page.nresults, "refused page not emptied");
    } else {
        FUZZ_CHECK(jtext_validate(body, len) == 0, "accepted page is not valid JSON");
        FUZZ_CHECK(!page.next || page.next[0], "empty cursor instead of NULL");
        for (size_t i = 0; i < page.nresults; i++) {
            const struct jtext_span *r = &page.results[i];
            FUZZ_CHECK(r->off < len && r->len <= len - r->off && r->len > 0,
                       "result %zu out of the body", i);
            FUZZ_CHECK(jtext_validate(body + r->off, r->len) == 0, "result %zu invalid", i);
            check_text(body + r->off, r->len);
            check_fields(body + r->off, r->len);
            check_members(body, &page, i);
        }
    }

    int as_real;
    json_t *root = jansson_read2(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL, &as_real);
    json_t *results;
    const char *next;
    int plain = raw_token(body, len, "status", 1) && raw_token(body, len, "success", 0) &&
                raw_token(body, len, "data", 1) && raw_token(body, len, "next", 1) &&
                raw_token(body, len, "results", 1);
    if (root && nesting(body, len) <= JTEXT_MAX_DEPTH) {
        int want = jansson_page(root, &results, &next);
        if (want && !plain)
            goto out;   /* a member written with escapes: jtext does not see it */
        if (want == 2)
            goto out;   /* a cursor holding \u0000: refused by jtext, on purpose */
        FUZZ_CHECK(rc == (want ? 0 : -1), "page: jtext %d, jansson %s (%s)", rc,
                   want ? "a success page" : "not a success page", rc ? msg : "");
        if (want) {
            FUZZ_CHECK(page.nresults == json_array_size(results), "%zu results, jansson %zu",
                       page.nresults, json_array_size(results));
            for (size_t i = 0; i < page.nresults; i++) {
                json_t *r = load(body + page.results[i].off, page.results[i].len,
                                 JSON_DECODE_ANY | JSON_ALLOW_NUL |
                                     (as_real ? JSON_DECODE_INT_AS_REAL : 0),
                                 NULL);
                FUZZ_CHECK(r && json_equal(r, json_array_get(results, i)),
                           "result %zu is not jansson's element", i);
                json_decref(r);
            }
            FUZZ_CHECK((!next && !page.next) ||
                           (next && page.next && strcmp(next, page.next) == 0),
                       "cursor '%s', jansson '%s'", page.next ? page.next : "(null)",
                       next ? next : "(null)");
        }
    }
out:
    json_decref(root);
    if (rc == 0)
        jtext_page_free(&page);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    check_page(body, size);
    check_text(body, size);
    check_fields(body, size);
    return 0;
}
