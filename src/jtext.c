/*
 * jtext.c — a small recursive-descent JSON scanner over raw bytes.
 *
 * One scanner validates, measures or writes the re-indented form (copying
 * every scalar token verbatim), reads a record's top-level fields in the same
 * pass, and locates the elements of a page's data.results. A second, faster
 * re-indenter (jtext_indent_compact) trusts its input: compact JSON this
 * program stored after validating it.
 */
#include "jtext.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct jtext_field;

struct scan {
    const char *p;
    const char *end;
    int depth;
    struct buf *out;   /* NULL: validate only */
    int indent;
    size_t emitted;    /* bytes of the re-indented form so far (written or not) */
    size_t added;      /* white space the re-indentation added (not in the compact form) */
    size_t lines;      /* line breaks it added */
    /* jtext_pretty_fields: the top-level members asked for (their raw spans) */
    const char *base;
    struct jtext_field *fields;
    size_t nfields;
    /* jtext_page_parse: every top-level member of the element (offsets from base) */
    struct members *ml;
};

struct members {
    struct jtext_member *v;
    size_t n, cap;
};

static void skip_ws(struct scan *s)
{
    while (s->p < s->end &&
           (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

/* Output goes straight into the buffer: the scan is the hot path of a full
 * fetch (every record is scanned once, most without output). buf_reserve() keeps room
 * for the NUL that buf's contract wants, written once at the end. */
static inline void emit(struct scan *s, const char *p, size_t n)
{
    struct buf *b = s->out;
    s->emitted += n;
    if (!b)
        return;
    if (b->cap - b->len <= n)
        buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static inline void newline(struct scan *s)
{
    struct buf *b = s->out;
    size_t n = 1 + (size_t)s->indent * 2;
    s->emitted += n;
    s->added += n;
    s->lines++;
    if (!b)
        return;
    if (b->cap - b->len <= n)
        buf_reserve(b, n);
    b->data[b->len] = '\n';
    memset(b->data + b->len + 1, ' ', n - 1);
    b->len += n;
}

/* A byte a string holds as it is: not '"', not '\\', not a control character. */
static inline int plain(unsigned char c)
{
    return c >= 0x20 && c != '"' && c != '\\';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define JTEXT_SWAR 1
/* The bytes of the word v (eight bytes read little-endian) that are '"' or
 * '\\', and with ctl also those below 0x20, flagged by their high bits: a
 * byte b is flagged in (x - 0x01..) & ~x & 0x80.. when x = b ^ c is zero, and
 * in (b - 0x20..) & ~b & 0x80.. when b < 0x20. A borrow can flag bytes after
 * a true match, never before, so the lowest flag is the first match. */
static inline uint64_t special_bytes(uint64_t v, int ctl)
{
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    uint64_t q = v ^ (ones * '"'), b = v ^ (ones * '\\');
    uint64_t hit = ((q - ones) & ~q) | ((b - ones) & ~b);
    if (ctl)
        hit |= (v - ones * 0x20) & ~v;
    return hit & high;
}
#endif

/* The first byte at or after p that a string does not hold as it is ('"',
 * '\\', a control character), or end; eight bytes at a time where the
 * machine reads words little-endian (the string scan was the largest part of
 * a first fetch's JSON work). */
static inline const char *skip_plain(const char *p, const char *end)
{
#ifdef JTEXT_SWAR
    while (end - p >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        uint64_t hit = special_bytes(v, 1);
        if (hit)
            return p + (__builtin_ctzll(hit) >> 3);
        p += 8;
    }
#endif
    while (p < end && plain((unsigned char)*p))
        p++;
    return p;
}

/* A string token starting at s->p ('"'); copied verbatim. */
static int scan_string(struct scan *s)
{
    const char *start = s->p++;
    while (s->p < s->end) {
        const char *p = skip_plain(s->p, s->end);
        s->p = p;
        if (p == s->end)
            break;
        unsigned char c = (unsigned char)*s->p;
        if (c == '"') {
            s->p++;
            emit(s, start, (size_t)(s->p - start));
            return 0;
        }
        if (c < 0x20)
            return -1;
        if (c == '\\') {
            if (++s->p >= s->end)
                return -1;
            switch (*s->p) {
            case '"': case '\\': case '/': case 'b': case 'f':
            case 'n': case 'r': case 't':
                break;
            case 'u':
                if (s->end - s->p < 5)
                    return -1;
                for (int i = 1; i <= 4; i++)
                    if (hexval(s->p[i]) < 0)
                        return -1;
                s->p += 4;
                break;
            default:
                return -1;
            }
        }
        s->p++;
    }
    return -1;
}

static int is_digit(const struct scan *s)
{
    return s->p < s->end && *s->p >= '0' && *s->p <= '9';
}

static int scan_number(struct scan *s)
{
    const char *start = s->p;
    if (*s->p == '-')
        s->p++;
    if (!is_digit(s))
        return -1;
    if (*s->p == '0')
        s->p++;
    else
        while (is_digit(s))
            s->p++;
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        if (!is_digit(s))
            return -1;
        while (is_digit(s))
            s->p++;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (!is_digit(s))
            return -1;
        while (is_digit(s))
            s->p++;
    }
    emit(s, start, (size_t)(s->p - start));
    return 0;
}

static int scan_literal(struct scan *s, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0)
        return -1;
    emit(s, s->p, n);
    s->p += n;
    return 0;
}

static int scan_value(struct scan *s);
static void capture(struct scan *s, const char *k, size_t klen, const char *v);

static void member_add(struct scan *s, const char *k, size_t klen, const char *v)
{
    struct members *ml = s->ml;
    if (ml->n == ml->cap) {
        ml->cap = ml->cap ? ml->cap * 2 : 1024;
        void *p = realloc(ml->v, ml->cap * sizeof *ml->v);
        if (!p)
            abort();
        ml->v = p;
    }
    ml->v[ml->n++] = (struct jtext_member){
        { (size_t)(k - s->base), klen }, { (size_t)(v - s->base), (size_t)(s->p - v) } };
}

/* Shared by objects and arrays: `close` is '}' or ']'. */
static int scan_container(struct scan *s, char close)
{
    int is_obj = close == '}';
    emit(s, s->p, 1);
    s->p++;
    if (++s->depth > JTEXT_MAX_DEPTH)
        return -1;
    skip_ws(s);
    if (s->p < s->end && *s->p == close) {
        emit(s, s->p, 1);
        s->p++;
        s->depth--;
        return 0;
    }
    s->indent++;
    for (;;) {
        newline(s);
        skip_ws(s);
        const char *key = NULL, *val = NULL;
        size_t klen = 0;
        if (is_obj) {
            key = s->p + 1;
            if (s->p >= s->end || *s->p != '"' || scan_string(s) < 0)
                return -1;
            klen = (size_t)(s->p - 1 - key);
            skip_ws(s);
            if (s->p >= s->end || *s->p != ':')
                return -1;
            s->p++;
            emit(s, ": ", 2);
            s->added++;
            skip_ws(s);
            val = s->p;
        }
        if (scan_value(s) < 0)
            return -1;
        if (is_obj && s->depth == 1) {
            if (s->fields)
                capture(s, key, klen, val);
            if (s->ml)
                member_add(s, key, klen, val);
        }
        skip_ws(s);
        if (s->p >= s->end)
            return -1;
        if (*s->p == ',') {
            s->p++;
            emit(s, ",", 1);
            continue;
        }
        if (*s->p != close)
            return -1;
        s->p++;
        s->indent--;
        newline(s);
        emit(s, &close, 1);
        s->depth--;
        return 0;
    }
}

static int scan_value(struct scan *s)
{
    skip_ws(s);
    if (s->p >= s->end)
        return -1;
    switch (*s->p) {
    case '{':
        return scan_container(s, '}');
    case '[':
        return scan_container(s, ']');
    case '"':
        return scan_string(s);
    case 't':
        return scan_literal(s, "true");
    case 'f':
        return scan_literal(s, "false");
    case 'n':
        return scan_literal(s, "null");
    default:
        return scan_number(s);
    }
}

static int scan_whole(struct scan *s)
{
    if (scan_value(s) < 0)
        return -1;
    skip_ws(s);
    return s->p == s->end ? 0 : -1;
}

int jtext_validate(const char *text, size_t len)
{
    struct scan s = { .p = text, .end = text + len };
    return scan_whole(&s);
}

int jtext_pretty(const char *text, size_t len, struct buf *out)
{
    return jtext_pretty_fields(text, len, out, NULL, 0, NULL);
}

/* ---- re-indenting trusted compact JSON ---- */

/* Output through a cursor: room is made before each step (a line break with
 * its indentation, or one token), then bytes are stored directly; the spaces
 * go eight at a time (the room includes that slack). This runs for every
 * file a scan reads ahead, and calls to memcpy/memset per byte cost more
 * than the bytes. */
struct cursor {
    struct buf *b;
    char *o, *lim;
};

static inline void room_for(struct cursor *c, size_t n)
{
    if ((size_t)(c->lim - c->o) > n + 8)
        return;
    c->b->len = (size_t)(c->o - c->b->data);
    buf_reserve(c->b, n + 16);
    c->o = c->b->data + c->b->len;
    c->lim = c->b->data + c->b->cap;
}

static inline void line_to(struct cursor *c, size_t spaces)
{
    room_for(c, spaces + 1);
    *c->o++ = '\n';
    for (size_t k = 0; k < spaces; k += 8)
        memcpy(c->o + k, "        ", 8);
    c->o += spaces;
}

size_t jtext_indent_compact(const char *json, size_t len, size_t base, int final,
                            struct buf *out)
{
    size_t mark = out->len, depth = 0;
    struct cursor c = { out, NULL, NULL };
    buf_reserve(out, len + len / 2 + 64);
    c.o = out->data + out->len;
    c.lim = out->data + out->cap;
    const char *p = json, *end = json + len;
    while (p < end) {
        const char *q;
        switch (*p) {
        case '"':                       /* a string, to its closing quote */
            room_for(&c, (size_t)(end - p));
            *c.o++ = *p++;
            for (;;) {
#ifdef JTEXT_SWAR
                /* eight bytes copied and searched at a time; past the quote
                 * they land in the room and are overwritten */
                while (end - p >= 8) {
                    uint64_t v;
                    memcpy(&v, p, 8);
                    memcpy(c.o, &v, 8);
                    uint64_t hit = special_bytes(v, 0);
                    if (hit) {
                        size_t k = (size_t)__builtin_ctzll(hit) >> 3;
                        p += k;
                        c.o += k;
                        break;
                    }
                    p += 8;
                    c.o += 8;
                }
#endif
                while (p < end && *p != '"' && *p != '\\')
                    *c.o++ = *p++;
                if (p >= end)
                    break;
                *c.o++ = *p++;
                if (p[-1] == '"')
                    break;
                if (p < end)            /* the escaped byte */
                    *c.o++ = *p++;
            }
            continue;
        case '{':
        case '[':
            room_for(&c, 2);
            *c.o++ = *p;
            if (p + 1 < end && p[1] == (*p == '{' ? '}' : ']')) {
                *c.o++ = p[1];
                p += 2;
                continue;
            }
            depth++;
            line_to(&c, base + 2 * depth);
            break;
        case '}':
        case ']':
            depth -= depth > 0;
            line_to(&c, base + 2 * depth);
            room_for(&c, 1);
            *c.o++ = *p;
            break;
        case ',':
            room_for(&c, 1);
            *c.o++ = ',';
            line_to(&c, base + 2 * depth);
            break;
        case ':':
            room_for(&c, 2);
            *c.o++ = ':';
            *c.o++ = ' ';
            break;
        default:                        /* a number, true, false, null */
            q = p;
            while (q < end && *q != ',' && *q != '}' && *q != ']')
                q++;
            room_for(&c, (size_t)(q - p));
            while (p < q)
                *c.o++ = *p++;
            continue;
        }
        p++;
    }
    room_for(&c, 1);
    if (final)
        *c.o++ = '\n';
    out->len = (size_t)(c.o - out->data);
    out->data[out->len] = '\0';
    return out->len - mark;
}

/* ---- the page envelope ---- */

/* Compare the string token at s->p (not yet consumed) with `key`,
 * consume it, and report whether it matched. Keys with escapes never match. */
static int take_key(struct scan *s, const char *key, int *match)
{
    const char *start = s->p + 1;
    if (scan_string(s) < 0)
        return -1;
    size_t n = (size_t)(s->p - 1 - start);
    *match = n == strlen(key) && memcmp(start, key, n) == 0;
    return 0;
}

static void put_utf8(struct buf *b, unsigned cp)
{
    if (cp < 0x80) {
        buf_addc(b, (char)cp);
    } else if (cp < 0x800) {
        buf_addc(b, (char)(0xC0 | (cp >> 6)));
        buf_addc(b, (char)(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        buf_addc(b, (char)(0xE0 | (cp >> 12)));
        buf_addc(b, (char)(0x80 | ((cp >> 6) & 0x3F)));
        buf_addc(b, (char)(0x80 | (cp & 0x3F)));
    } else {
        buf_addc(b, (char)(0xF0 | (cp >> 18)));
        buf_addc(b, (char)(0x80 | ((cp >> 12) & 0x3F)));
        buf_addc(b, (char)(0x80 | ((cp >> 6) & 0x3F)));
        buf_addc(b, (char)(0x80 | (cp & 0x3F)));
    }
}

static unsigned hex4(const char *p)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++)
        v = v * 16 + (unsigned)hexval(p[i]);
    return v;
}

/* Decode the string token at s->p (validated as it goes) into a new C
 * string; *len gets its length. NULL on invalid input or an escaped NUL.
 * Surrogate pairs become one code point; a lone surrogate becomes U+FFFD. */
static char *take_string(struct scan *s, size_t *len)
{
    const char *start = s->p + 1;
    if (scan_string(s) < 0)
        return NULL;
    const char *end = s->p - 1;
    struct buf b = BUF_INIT;
    buf_reserve(&b, (size_t)(end - start));
    for (const char *q = start; q < end; q++) {
        if (*q != '\\') {
            buf_addc(&b, *q);
            continue;
        }
        q++;
        switch (*q) {
        case 'b': buf_addc(&b, '\b'); break;
        case 'f': buf_addc(&b, '\f'); break;
        case 'n': buf_addc(&b, '\n'); break;
        case 'r': buf_addc(&b, '\r'); break;
        case 't': buf_addc(&b, '\t'); break;
        case 'u': {
            unsigned cp = hex4(q + 1);
            q += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && end - q > 6 && q[1] == '\\' && q[2] == 'u') {
                unsigned lo = hex4(q + 3);
                if (lo >= 0xDC00 && lo < 0xE000) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    q += 6;
                }
            }
            if (cp == 0) {
                buf_free(&b);
                return NULL;
            }
            put_utf8(&b, cp >= 0xD800 && cp < 0xE000 ? 0xFFFD : cp);
            break;
        }
        default: buf_addc(&b, *q); break;
        }
    }
    *len = b.len;
    return buf_detach(&b);
}

/* Iterate over an object's members: calls fn for each key, with s->p at the
 * value; fn must consume the value. */
typedef int (*member_fn)(struct scan *s, const char *kstart, size_t klen,
                         void *ctx);

static int each_member(struct scan *s, member_fn fn, void *ctx)
{
    skip_ws(s);
    if (s->p >= s->end || *s->p != '{')
        return -1;
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return 0;
    }
    for (;;) {
        skip_ws(s);
        if (s->p >= s->end || *s->p != '"')
            return -1;
        const char *k = s->p + 1;
        if (scan_string(s) < 0)
            return -1;
        size_t klen = (size_t)(s->p - 1 - k);
        skip_ws(s);
        if (s->p >= s->end || *s->p != ':')
            return -1;
        s->p++;
        skip_ws(s);
        if (s->p >= s->end)     /* the callbacks look at *s->p */
            return -1;
        if (fn(s, k, klen, ctx) < 0)
            return -1;
        skip_ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
        if (s->p < s->end && *s->p == '}') {
            s->p++;
            return 0;
        }
        return -1;
    }
}

struct page_ctx {
    struct jtext_page *page;
    const char *body;
    int status_ok;
    int have_data;
    int have_next;
    int have_results;
    const char *msg;
    struct members ml;
};

static int key_is(const char *k, size_t klen, const char *want)
{
    return klen == strlen(want) && memcmp(k, want, klen) == 0;
}

/* The elements of data.results, each validated, measured (the counters of
 * the re-indented form are kept by every scan: their growth over one element
 * is its size) and its top-level members located, in one pass. */
static int scan_results(struct scan *s, struct page_ctx *c)
{
    struct jtext_page *pg = c->page;
    size_t cap = 0;
    if (s->p >= s->end || *s->p != '[') {
        c->msg = "data.results is not an array";
        return -1;
    }
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        return 0;
    }
    for (;;) {
        skip_ws(s);
        if (pg->nresults == cap) {
            cap = cap ? cap * 2 : 64;
            void *p = realloc(pg->results, cap * sizeof *pg->results);
            void *q = realloc(pg->info, cap * sizeof *pg->info);
            if (!p || !q)
                abort();
            pg->results = p;
            pg->info = q;
        }
        const char *start = s->p;
        size_t emitted = s->emitted, added = s->added, lines = s->lines;
        size_t first = c->ml.n;
        s->base = start;
        s->ml = &c->ml;
        int rc = scan_value(s);
        s->ml = NULL;
        pg->members = c->ml.v;          /* freed with the page, even on failure */
        if (rc < 0)
            return -1;
        struct jtext_result *r = &pg->info[pg->nresults];
        r->sizes.pretty = s->emitted - emitted + 1;
        r->sizes.compact = (s->emitted - emitted) - (s->added - added);
        r->sizes.lines = s->lines - lines + 1;
        r->first = first;
        r->nmembers = c->ml.n - first;
        pg->results[pg->nresults].off = (size_t)(start - c->body);
        pg->results[pg->nresults].len = (size_t)(s->p - start);
        pg->nresults++;
        skip_ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
        if (s->p < s->end && *s->p == ']') {
            s->p++;
            return 0;
        }
        return -1;
    }
}

static int data_member(struct scan *s, const char *k, size_t klen, void *ctx)
{
    struct page_ctx *c = ctx;
    if (key_is(k, klen, "next")) {
        c->have_next = 1;
        if (*s->p == '"') {
            size_t n;
            free(c->page->next);
            c->page->next = take_string(s, &n);
            if (!c->page->next) {
                c->msg = "data.next is not a valid string";
                return -1;
            }
            if (!c->page->next[0]) {
                free(c->page->next);
                c->page->next = NULL;
            }
            return 0;
        }
        if (scan_literal(s, "null") == 0)
            return 0;
        c->msg = "data.next is neither a string nor null";
        return -1;
    }
    if (key_is(k, klen, "results")) {
        if (c->have_results) {  /* scan_results appends: a second array would overflow */
            c->msg = "data.results appears twice";
            return -1;
        }
        c->have_results = 1;
        return scan_results(s, c);
    }
    return scan_value(s);
}

static int top_member(struct scan *s, const char *k, size_t klen, void *ctx)
{
    struct page_ctx *c = ctx;
    if (key_is(k, klen, "status")) {
        int match = 0;
        if (*s->p != '"' || take_key(s, "success", &match) < 0)
            return scan_value(s);
        c->status_ok = match;
        return 0;
    }
    if (key_is(k, klen, "data")) {
        c->have_data = 1;
        return each_member(s, data_member, c);
    }
    return scan_value(s);
}

int jtext_page_parse(const char *body, size_t len, struct jtext_page *page,
                     const char **msg)
{
    struct scan s = { .p = body, .end = body + len };
    struct page_ctx c = { .page = page, .body = body };
    memset(page, 0, sizeof *page);
    int rc = each_member(&s, top_member, &c);
    if (rc == 0) {
        skip_ws(&s);
        if (s.p != s.end)
            rc = -1;
    }
    if (rc < 0) {
        *msg = c.msg ? c.msg : "the body is not valid JSON";
    } else if (!c.status_ok) {
        *msg = "status is not \"success\"";
        rc = -1;
    } else if (!c.have_data || !c.have_next || !c.have_results) {
        *msg = "the body lacks data.next or data.results";
        rc = -1;
    }
    if (rc < 0)
        jtext_page_free(page);
    return rc;
}

void jtext_page_free(struct jtext_page *page)
{
    free(page->next);
    free(page->results);
    free(page->info);
    free(page->members);
    memset(page, 0, sizeof *page);
}

/* ---- top-level fields ---- */

static void fields_clear(struct jtext_field *fields, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        fields[i].type = JTEXT_ABSENT;
        fields[i].str = NULL;
        fields[i].len = 0;
        fields[i].raw.off = fields[i].raw.len = 0;
    }
}


struct fields_ctx {
    const char *text;
    struct jtext_field *f;
    size_t n;
};

static int field_member(struct scan *s, const char *k, size_t klen, void *ctx)
{
    struct fields_ctx *c = ctx;
    for (size_t i = 0; i < c->n; i++) {
        struct jtext_field *f = &c->f[i];
        if (!key_is(k, klen, f->key) || f->type != JTEXT_ABSENT)
            continue;
        const char *start = s->p;
        if (*s->p == '"') {
            const char *save = s->p;
            f->str = take_string(s, &f->len);
            if (f->str) {
                f->type = JTEXT_STRING;
            } else {
                s->p = save;        /* invalid, or holds NUL: skip it as a value */
                if (scan_value(s) < 0)
                    return -1;
                f->type = JTEXT_OTHER;
            }
        } else if (scan_literal(s, "null") == 0) {
            f->type = JTEXT_NULL;
        } else {
            if (scan_value(s) < 0)
                return -1;
            f->type = JTEXT_OTHER;
        }
        f->raw.off = (size_t)(start - c->text);
        f->raw.len = (size_t)(s->p - start);
        return 0;
    }
    return scan_value(s);
}

int jtext_fields(const char *text, size_t len, struct jtext_field *fields,
                 size_t n)
{
    struct scan s = { .p = text, .end = text + len };
    struct fields_ctx c = { text, fields, n };
    fields_clear(fields, n);
    if (each_member(&s, field_member, &c) < 0) {
        jtext_fields_free(fields, n);
        return -1;
    }
    return 0;
}

void jtext_fields_free(struct jtext_field *fields, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(fields[i].str);
        fields[i].str = NULL;
    }
}

/* A top-level member of the scanned object: key[0..klen) raw (between its
 * quotes), its value from v to s->p. The first member of a name asked for is
 * kept (as jtext_fields does), as a raw span; decoded after the scan. */
static void capture(struct scan *s, const char *k, size_t klen, const char *v)
{
    for (size_t i = 0; i < s->nfields; i++) {
        struct jtext_field *f = &s->fields[i];
        if (f->type != JTEXT_ABSENT || !key_is(k, klen, f->key))
            continue;
        f->type = JTEXT_OTHER;          /* found: resolved by resolve_field() */
        f->raw.off = (size_t)(v - s->base);
        f->raw.len = (size_t)(s->p - v);
        return;
    }
}

/* A captured field's type and decoded string, as jtext_fields reads them. */
static void resolve_field(const char *text, struct jtext_field *f)
{
    const char *v = text + f->raw.off;
    if (*v == '"') {
        struct scan t = { .p = v, .end = v + f->raw.len };
        f->str = take_string(&t, &f->len);
        f->type = f->str ? JTEXT_STRING : JTEXT_OTHER;     /* NUL inside: other */
    } else if (*v == 'n') {
        f->type = JTEXT_NULL;           /* validated: it is "null" */
    }
}

int jtext_pretty_fields(const char *text, size_t len, struct buf *out,
                        struct jtext_field *fields, size_t n, struct jtext_sizes *sizes)
{
    size_t mark = out ? out->len : 0;
    struct scan s = { .p = text, .end = text + len, .out = out, .base = text,
                      .fields = n ? fields : NULL, .nfields = n };
    fields_clear(fields, n);
    if (scan_whole(&s) < 0) {
        if (out) {
            out->len = mark;
            if (out->data)
                out->data[mark] = '\0';
        }
        fields_clear(fields, n);
        return -1;
    }
    if (out)
        buf_addc(out, '\n');
    for (size_t i = 0; i < n; i++)
        if (fields[i].type != JTEXT_ABSENT)
            resolve_field(text, &fields[i]);
    if (sizes) {
        sizes->pretty = s.emitted + 1;
        sizes->compact = s.emitted - s.added;
        sizes->lines = s.lines + 1;
    }
    return 0;
}

void jtext_member_fields(const char *text, const struct jtext_member *m, size_t n,
                         struct jtext_field *fields, size_t nf)
{
    size_t left = nf;
    fields_clear(fields, nf);
    for (size_t j = 0; j < n && left; j++) {
        for (size_t i = 0; i < nf; i++) {
            struct jtext_field *f = &fields[i];
            if (f->type != JTEXT_ABSENT || !key_is(text + m[j].key.off, m[j].key.len, f->key))
                continue;
            f->type = JTEXT_OTHER;
            f->raw = m[j].value;
            resolve_field(text, f);
            left--;
            break;
        }
    }
}
