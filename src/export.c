/*
 * export.c — compact JSON and CSV cells from a record's text (SPEC §10).
 *
 * Two table-driven scanners over the raw bytes:
 *  - compact_run() drops the white space outside strings; it writes a JSONL
 *    line and the cell of an object or array, or only counts;
 *  - rec_scan() reads the top-level members of an object in one pass into an
 *    array of (key, value span, encoded cell length), so that a CSV row
 *    matches its columns against that array instead of rescanning the text,
 *    and a row's size is known before a byte of it is written.
 * Output is written straight into the reserved room of the struct buf (no
 * per-byte calls); every write is preceded by a reservation of its exact
 * length, which the scans computed.
 */
#include "export.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- byte classes ---- */

enum {
    K_PLAIN = 0,
    K_WS,       /* white space outside strings */
    K_QUOTE,    /* '"' */
    K_BSLASH,   /* '\\' inside a string */
    K_OPEN,     /* '{' '[' */
    K_CLOSE,    /* '}' ']' */
    K_COMMA,    /* ',': a cell holding it is quoted */
    K_CRLF,     /* CR or LF inside a string (invalid JSON, still quoted) */
    K_NUL,      /* a raw NUL byte inside a string (invalid JSON) */
};

/* compact_run: where a run of bytes copied as they are stops. */
static const unsigned char t_cmp[256] = {
    [' '] = K_WS, ['\t'] = K_WS, ['\n'] = K_WS, ['\r'] = K_WS, ['"'] = K_QUOTE,
};

/* Outside strings, skipping a container. */
static const unsigned char t_out[256] = {
    [' '] = K_WS, ['\t'] = K_WS, ['\n'] = K_WS, ['\r'] = K_WS, ['"'] = K_QUOTE,
    ['{'] = K_OPEN, ['['] = K_OPEN, ['}'] = K_CLOSE, [']'] = K_CLOSE, [','] = K_COMMA,
};

/* Inside strings, measuring. */
static const unsigned char t_str[256] = {
    ['"'] = K_QUOTE, ['\\'] = K_BSLASH, [','] = K_COMMA, ['\r'] = K_CRLF,
    ['\n'] = K_CRLF, [0] = K_NUL,
};

/* A raw CSV field: the bytes that make it quoted. */
static const unsigned char t_fld[256] = {
    ['"'] = K_QUOTE, [','] = K_COMMA, ['\r'] = K_CRLF, ['\n'] = K_CRLF,
};

/* The bytes of a number token. */
static const unsigned char t_num[256] = {
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,
    ['7'] = 1, ['8'] = 1, ['9'] = 1, ['-'] = 1, ['+'] = 1, ['.'] = 1, ['e'] = 1,
    ['E'] = 1,
};

#define UC(p) ((unsigned char)*(p))

/* Make room for n more bytes (and buf's NUL) without a call in the common case. */
static inline void room(struct buf *b, size_t n)
{
    if (b->cap - b->len <= n)
        buf_reserve(b, n);
}

/* ---- compact JSON ---- */

/* Write (o != NULL) or count (o == NULL) the compact form of p[0..end - p).
 * With dq, every '"' byte is written twice (a quoted CSV cell). */
static size_t compact_run(const char *p, const char *end, char *o, int dq)
{
    size_t n = 0;
#define PUT(c) do { if (o) o[n] = (c); n++; } while (0)
    while (p < end) {
        const char *q = p;
        while (q < end && !t_cmp[UC(q)])
            q++;
        if (o)
            memcpy(o + n, p, (size_t)(q - p));
        n += (size_t)(q - p);
        if (q == end)
            break;
        if (t_cmp[UC(q)] == K_WS) {
            p = q + 1;
            while (p < end && t_cmp[UC(p)] == K_WS)
                p++;
            continue;
        }
        /* a string, from its opening quote at q to its closing one */
        PUT('"');
        if (dq)
            PUT('"');
        p = q + 1;
        for (;;) {
            const char *r = p;
            while (r < end && *r != '"' && *r != '\\')
                r++;
            if (o)
                memcpy(o + n, p, (size_t)(r - p));
            n += (size_t)(r - p);
            if (r == end) {             /* unterminated: copied to the end */
                p = end;
                break;
            }
            if (*r == '"') {
                PUT('"');
                if (dq)
                    PUT('"');
                p = r + 1;
                break;
            }
            PUT('\\');                  /* an escape: '\\' and the next byte */
            if (++r == end) {
                p = end;
                break;
            }
            PUT(*r);
            if (dq && *r == '"')
                PUT('"');
            p = r + 1;
        }
    }
#undef PUT
    return n;
}

size_t export_compact(const char *text, size_t len, struct buf *out)
{
    room(out, len);                     /* the compact form is never longer */
    size_t n = compact_run(text, text + len, out->data + out->len, 0);
    out->len += n;
    out->data[out->len] = '\0';
    return n;
}

size_t export_compact_size(const char *text, size_t len)
{
    return compact_run(text, text + len, NULL, 0);
}

/* ---- JSON strings ---- */

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

/* The 4 hex digits at p as a number, -1 if they are not hex digits. */
static long hex4(const char *p)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

/* Decode the escape at q ('\\') into *cp. A surrogate pair is one code point;
 * a lone surrogate is U+FFFD. Returns the byte after it, NULL if invalid. */
static const char *unescape(const char *q, const char *end, unsigned *cp)
{
    if (end - q < 2)
        return NULL;
    switch (q[1]) {
    case '"': *cp = '"'; return q + 2;
    case '\\': *cp = '\\'; return q + 2;
    case '/': *cp = '/'; return q + 2;
    case 'b': *cp = '\b'; return q + 2;
    case 'f': *cp = '\f'; return q + 2;
    case 'n': *cp = '\n'; return q + 2;
    case 'r': *cp = '\r'; return q + 2;
    case 't': *cp = '\t'; return q + 2;
    case 'u': break;
    default: return NULL;
    }
    if (end - q < 6)
        return NULL;
    long v = hex4(q + 2);
    if (v < 0)
        return NULL;
    q += 6;
    if (v >= 0xD800 && v < 0xDC00 && end - q >= 6 && q[0] == '\\' && q[1] == 'u') {
        long lo = hex4(q + 2);
        if (lo >= 0xDC00 && lo < 0xE000) {
            *cp = (unsigned)(0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00));
            return q + 6;
        }
    }
    *cp = v >= 0xD800 && v < 0xE000 ? 0xFFFD : (unsigned)v;
    return q;
}

static size_t utf8_len(unsigned cp)
{
    return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

static char *put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xC0 | (cp >> 6));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xE0 | (cp >> 12));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (char)(0xF0 | (cp >> 18));
        *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    return o;
}

/* What a string token decodes to, measured by str_scan(). */
struct sinfo {
    size_t dlen;        /* decoded length in bytes */
    size_t nq;          /* '"' in the decoded text */
    int needq;          /* the decoded text needs CSV quoting */
    int esc;            /* the token holds escapes */
    int nul;            /* the decoded text holds a NUL byte */
};

/* Measure the string token whose contents start at p (after the opening
 * quote). Returns the byte after the closing quote, NULL if invalid. */
static const char *str_scan(const char *p, const char *end, struct sinfo *si)
{
    struct sinfo s = { 0, 0, 0, 0, 0 };
    for (;;) {
        const char *q = p;
        while (q < end && !t_str[UC(q)])
            q++;
        s.dlen += (size_t)(q - p);
        if (q == end)
            return NULL;
        switch (t_str[UC(q)]) {
        case K_QUOTE:
            *si = s;
            return q + 1;
        case K_BSLASH: {
            unsigned cp;
            p = unescape(q, end, &cp);
            if (!p)
                return NULL;
            s.esc = 1;
            s.dlen += utf8_len(cp);
            if (cp == '"') {
                s.nq++;
                s.needq = 1;
            } else if (cp == ',' || cp == '\r' || cp == '\n') {
                s.needq = 1;
            } else if (cp == 0) {
                s.nul = 1;
            }
            continue;
        }
        case K_NUL:
            s.nul = 1;
            break;
        default:                        /* K_COMMA, K_CRLF */
            s.needq = 1;
            break;
        }
        s.dlen++;
        p = q + 1;
    }
}

/* Write the decoded contents p[0..end - p) of a string that str_scan()
 * accepted; with dq, each '"' twice. Returns the end of the output. */
static char *str_write(const char *p, const char *end, char *o, int dq)
{
    while (p < end) {
        const char *b = memchr(p, '\\', (size_t)(end - p));
        const char *stop = b ? b : end;
        memcpy(o, p, (size_t)(stop - p));
        o += stop - p;
        if (!b)
            break;
        unsigned cp = 0;
        p = unescape(b, end, &cp);
        if (!p)                         /* not reached: the token was scanned */
            break;
        if (cp == '"' && dq)
            *o++ = '"';
        o = put_utf8(o, cp);
    }
    return o;
}

/* ---- the members of a record ---- */

enum { V_NULL, V_STRING, V_SCALAR, V_CONTAINER };

#define NONE SIZE_MAX
#define REC_LOCAL 48

struct member {
    size_t koff, klen;  /* the decoded key: text + koff, or keys.data + koff if kesc */
    size_t voff, vlen;  /* a string's contents (inside the quotes), else the token */
    size_t cell;        /* the value's length as a CSV cell, quoting included */
    size_t next;        /* the next member with the same key, or NONE */
    uint32_t hash;      /* of the decoded key */
    unsigned char type; /* V_* */
    unsigned char kesc; /* the key held escapes (decoded into keys) */
    unsigned char knul; /* the decoded key holds a NUL byte */
    unsigned char dup;  /* an earlier member has the same key */
    unsigned char quote;/* the cell is quoted */
    unsigned char vesc; /* a string value with escapes */
};

struct rec {
    const char *text;
    struct member *m;           /* local, or malloc'd beyond REC_LOCAL members */
    size_t n, cap;
    struct buf keys;            /* the decoded keys that held escapes */
    uint64_t bloom[4];          /* hashes of the keys seen, for duplicates */
    struct member local[REC_LOCAL];
};

static void rec_init(struct rec *r, const char *text)
{
    r->text = text;
    r->m = r->local;
    r->n = 0;
    r->cap = REC_LOCAL;
    r->keys = (struct buf)BUF_INIT;
    memset(r->bloom, 0, sizeof r->bloom);
}

static void rec_free(struct rec *r)
{
    if (r->m != r->local)
        free(r->m);
    buf_free(&r->keys);
}

static inline const char *key_of(const struct rec *r, const struct member *m)
{
    return (m->kesc ? r->keys.data : r->text) + m->koff;
}

static struct member *rec_slot(struct rec *r)
{
    if (r->n == r->cap) {
        size_t cap = r->cap * 2;
        struct member *m = malloc(cap * sizeof *m);
        if (!m)
            abort();
        memcpy(m, r->m, r->n * sizeof *m);
        if (r->m != r->local)
            free(r->m);
        r->m = m;
        r->cap = cap;
    }
    struct member *m = &r->m[r->n];
    memset(m, 0, sizeof *m);
    return m;
}

static uint32_t fnv1a(const char *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 16777619u;
    return h;
}

/* Count the slot rec_slot() returned as a member; link it to an earlier
 * member with the same key. */
static void rec_add(struct rec *r)
{
    struct member *m = &r->m[r->n];
    const char *key = key_of(r, m);
    m->hash = fnv1a(key, m->klen);
    m->next = NONE;
    m->dup = 0;
    unsigned bit = (m->hash ^ (m->hash >> 16)) & 255;
    uint64_t mask = (uint64_t)1 << (bit & 63);
    if (r->bloom[bit >> 6] & mask) {
        /* the most recent earlier member with this key ends its chain */
        for (size_t j = r->n; j-- > 0;) {
            struct member *o = &r->m[j];
            if (o->hash == m->hash && o->klen == m->klen &&
                memcmp(key_of(r, o), key, m->klen) == 0) {
                o->next = r->n;
                m->dup = 1;
                break;
            }
        }
    }
    r->bloom[bit >> 6] |= mask;
    r->n++;
}

static inline const char *skip_ws(const char *p, const char *end)
{
    while (p < end && t_cmp[UC(p)] == K_WS)
        p++;
    return p;
}

/* Skip the object or array at p, measuring its compact form as a cell. */
static const char *skip_container(const char *p, const char *end, struct member *m)
{
    size_t clen = 0, nq = 0;
    int needq = 0, depth = 0;
    while (p < end) {
        switch (t_out[UC(p)]) {
        case K_WS:
            p++;
            continue;
        case K_OPEN:
            depth++;
            break;
        case K_CLOSE:
            if (--depth == 0) {
                clen++;
                m->quote = (unsigned char)(needq || nq);
                m->cell = clen + (m->quote ? nq + 2 : 0);
                return p + 1;
            }
            break;
        case K_COMMA:
            needq = 1;
            break;
        case K_QUOTE:
            nq++;
            clen++;
            p++;
            for (;;) {
                const char *q = p;
                while (q < end && !t_str[UC(q)])
                    q++;
                clen += (size_t)(q - p);
                if (q == end)
                    return NULL;
                switch (t_str[UC(q)]) {
                case K_QUOTE:
                    p = q + 1;
                    break;
                case K_BSLASH:
                    if (end - q < 2)
                        return NULL;
                    if (q[1] == '"')
                        nq++;
                    else if (t_str[UC(q + 1)] == K_COMMA || t_str[UC(q + 1)] == K_CRLF)
                        needq = 1;
                    clen += 2;
                    p = q + 2;
                    continue;
                case K_NUL:
                    clen++;
                    p = q + 1;
                    continue;
                default:                /* K_COMMA, K_CRLF */
                    needq = 1;
                    clen++;
                    p = q + 1;
                    continue;
                }
                break;
            }
            nq++;                       /* the closing quote */
            clen++;
            continue;
        default:
            break;
        }
        clen++;
        p++;
    }
    return NULL;
}

static const char *skip_literal(const char *p, const char *end, const char *lit, size_t n)
{
    return (size_t)(end - p) >= n && memcmp(p, lit, n) == 0 ? p + n : NULL;
}

/* One value at p (not white space) into m. */
static const char *scan_value(const struct rec *r, const char *p, const char *end,
                              struct member *m)
{
    const char *start = p;
    m->quote = 0;
    m->vesc = 0;
    switch (*p) {
    case '"': {
        struct sinfo s;
        p = str_scan(p + 1, end, &s);
        if (!p)
            return NULL;
        m->type = V_STRING;
        m->voff = (size_t)(start + 1 - r->text);
        m->vlen = (size_t)(p - 1 - (start + 1));
        m->vesc = (unsigned char)s.esc;
        m->quote = (unsigned char)s.needq;
        m->cell = s.dlen + (s.needq ? s.nq + 2 : 0);
        return p;
    }
    case '{':
    case '[':
        m->type = V_CONTAINER;
        p = skip_container(p, end, m);
        break;
    case 'n':
        m->type = V_NULL;
        p = skip_literal(p, end, "null", 4);
        break;
    case 't':
        m->type = V_SCALAR;
        p = skip_literal(p, end, "true", 4);
        break;
    case 'f':
        m->type = V_SCALAR;
        p = skip_literal(p, end, "false", 5);
        break;
    default:
        m->type = V_SCALAR;
        while (p < end && t_num[UC(p)])
            p++;
        if (p == start)
            return NULL;
        break;
    }
    if (!p)
        return NULL;
    m->voff = (size_t)(start - r->text);
    m->vlen = (size_t)(p - start);
    if (m->type == V_NULL)
        m->cell = 0;
    else if (m->type == V_SCALAR)
        m->cell = m->vlen;
    return p;
}

/* The key whose contents k[0..kend - k) str_scan() measured as ks, into m:
 * where it lies in the text, or decoded into r->keys if it holds escapes. */
static void set_key(struct rec *r, const char *k, const char *kend, const struct sinfo *ks,
                    struct member *m)
{
    m->klen = ks->dlen;
    m->kesc = (unsigned char)ks->esc;
    m->knul = (unsigned char)ks->nul;
    if (ks->esc) {
        struct buf *kb = &r->keys;
        room(kb, ks->dlen);
        m->koff = kb->len;
        str_write(k, kend, kb->data + kb->len, 0);
        kb->len += ks->dlen;
        kb->data[kb->len] = '\0';
    } else {
        m->koff = (size_t)(k - r->text);
    }
}

/* Read the top-level members of the object in text[0..len). -1 if the text
 * is not one object (the members read so far stay in r). */
static int rec_scan(struct rec *r, const char *text, size_t len)
{
    const char *end = text + len;
    const char *p = skip_ws(text, end);
    if (p == end || *p != '{')
        return -1;
    p = skip_ws(p + 1, end);
    if (p < end && *p == '}') {
        p++;
    } else {
        for (;;) {
            if (p == end || *p != '"')
                return -1;
            struct sinfo ks;
            const char *k = p + 1;
            p = str_scan(k, end, &ks);
            if (!p)
                return -1;
            struct member *m = rec_slot(r);
            set_key(r, k, p - 1, &ks, m);
            p = skip_ws(p, end);
            if (p == end || *p != ':')
                return -1;
            p = skip_ws(p + 1, end);
            if (p == end)
                return -1;
            p = scan_value(r, p, end, m);
            if (!p)
                return -1;
            rec_add(r);
            p = skip_ws(p, end);
            if (p < end && *p == ',') {
                p = skip_ws(p + 1, end);
                continue;
            }
            if (p < end && *p == '}') {
                p++;
                break;
            }
            return -1;
        }
    }
    p = skip_ws(p, end);
    return p == end ? 0 : -1;
}

/* Whether member m's key is the column name col. */
static inline int key_is(const struct rec *r, const struct member *m, const char *col)
{
    return !m->knul && strncmp(col, key_of(r, m), m->klen) == 0 && col[m->klen] == '\0';
}

/* Write member m's cell into the room reserved for it. */
static void put_cell(const struct rec *r, const struct member *m, struct buf *out)
{
    char *start = out->data + out->len, *o = start;
    const char *v = r->text + m->voff;
    switch (m->type) {
    case V_SCALAR:
        memcpy(o, v, m->vlen);
        o += m->vlen;
        break;
    case V_STRING:
        if (m->quote)
            *o++ = '"';
        if (m->vesc) {
            o = str_write(v, v + m->vlen, o, m->quote);
        } else {                        /* no '"' in it to double */
            memcpy(o, v, m->vlen);
            o += m->vlen;
        }
        if (m->quote)
            *o++ = '"';
        break;
    case V_CONTAINER:
        if (m->quote)
            *o++ = '"';
        o += compact_run(v, v + m->vlen, o, m->quote);
        if (m->quote)
            *o++ = '"';
        break;
    default:                            /* V_NULL */
        break;
    }
    assert((size_t)(o - start) == m->cell);
    out->len += (size_t)(o - start);
}

/* ---- CSV ---- */

void export_csv_field(const char *s, size_t n, struct buf *out)
{
    size_t nq = 0;
    int needq = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char k = t_fld[(unsigned char)s[i]];
        if (k == K_QUOTE)
            nq++;
        else if (k)
            needq = 1;
    }
    if (!nq && !needq) {
        buf_add(out, s, n);
        return;
    }
    room(out, n + nq + 2);
    char *o = out->data + out->len;
    *o++ = '"';
    const char *p = s, *end = s + n;
    while (p < end) {
        const char *q = memchr(p, '"', (size_t)(end - p));
        const char *stop = q ? q + 1 : end;
        memcpy(o, p, (size_t)(stop - p));
        o += stop - p;
        if (q)
            *o++ = '"';
        p = stop;
    }
    *o++ = '"';
    out->len = (size_t)(o - out->data);
    out->data[out->len] = '\0';
}

void export_csv_header(const char *const *cols, size_t ncols, struct buf *out)
{
    for (size_t c = 0; c < ncols; c++) {
        if (c)
            buf_addc(out, ',');
        export_csv_field(cols[c], strlen(cols[c]), out);
    }
    buf_add(out, "\r\n", 2);
}

/* The cells' size and the key list of the members read into r. */
static size_t rec_derive(const struct rec *r, struct buf *keys, int *nkeys)
{
    size_t size = 0;
    *nkeys = 0;
    for (size_t i = 0; i < r->n; i++) {
        const struct member *m = &r->m[i];
        if (m->next == NONE && !m->knul)
            size += m->cell;
        if (m->dup || m->knul)
            continue;
        room(keys, m->klen + 1);
        memcpy(keys->data + keys->len, key_of(r, m), m->klen);
        keys->len += m->klen;
        keys->data[keys->len++] = '\0';
        keys->data[keys->len] = '\0';
        (*nkeys)++;
    }
    return size;
}

size_t export_csv_derive(const char *text, size_t len, struct buf *keys, int *nkeys)
{
    struct rec r;
    rec_init(&r, text);
    size_t size = 0;
    *nkeys = -1;
    if (rec_scan(&r, text, len) == 0)
        size = rec_derive(&r, keys, nkeys);
    rec_free(&r);
    return size;
}

/* The number of bytes equal to c in p[0..n), and whether any equals d: eight
 * bytes at a time, with the exact zero-byte mask (Hacker's Delight 6-1: no
 * false positives, unlike the quick test) and a multiply that sums its bits. */
static size_t count_and_find(const char *p, size_t n, unsigned char c, unsigned char d,
                             int *found)
{
    const uint64_t ones = 0x0101010101010101u, low7 = 0x7F7F7F7F7F7F7F7Fu;
    const uint64_t cc = ones * c, dd = ones * d;
    uint64_t any = 0;
    size_t count = 0, i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        uint64_t x = w ^ cc, y = w ^ dd;
        uint64_t zx = ~(((x & low7) + low7) | x | low7);    /* 0x80 where x's byte is 0 */
        uint64_t zy = ~(((y & low7) + low7) | y | low7);
        count += (size_t)(((zx >> 7) * ones) >> 56);
        any |= zy;
    }
    for (; i < n; i++) {
        count += (unsigned char)p[i] == c;
        any |= (unsigned char)p[i] == d;
    }
    *found = any != 0;
    return count;
}

size_t export_csv_derive_members(const char *text, const struct jtext_member *mem, size_t n,
                                 int compact, struct buf *keys, int *nkeys)
{
    struct rec r;
    rec_init(&r, text);
    size_t size = 0;
    *nkeys = -1;
    if (*text != '{')
        goto out;
    for (size_t j = 0; j < n; j++) {
        const char *k = text + mem[j].key.off, *kend = k + mem[j].key.len;
        const char *v = text + mem[j].value.off, *vend = v + mem[j].value.len;
        struct sinfo ks;
        if (str_scan(k, kend + 1, &ks) != kend + 1)
            goto out;
        struct member *m = rec_slot(&r);
        set_key(&r, k, kend, &ks, m);
        if (compact && (*v == '{' || *v == '[')) {
            /* nothing to drop: the cell is the text, each '"' doubled if quoted */
            int comma;
            size_t nq = count_and_find(v, mem[j].value.len, '"', ',', &comma);
            m->type = V_CONTAINER;
            m->voff = mem[j].value.off;
            m->vlen = mem[j].value.len;
            m->quote = (unsigned char)(nq || comma);
            m->cell = m->vlen + (m->quote ? nq + 2 : 0);
        } else if (scan_value(&r, v, vend, m) != vend) {
            goto out;
        }
        rec_add(&r);
    }
    size = rec_derive(&r, keys, nkeys);
out:
    rec_free(&r);
    return size;
}

int export_csv_keys(const char *text, size_t len, struct buf *out)
{
    int n;
    export_csv_derive(text, len, out, &n);
    return n;
}

size_t export_csv_cells_size(const char *text, size_t len)
{
    struct buf keys = BUF_INIT;
    int n;
    size_t size = export_csv_derive(text, len, &keys, &n);
    buf_free(&keys);
    return size;
}

void export_csv_row(const char *text, size_t len, const char *const *cols,
                    size_t ncols, struct buf *out)
{
    struct rec r;
    rec_init(&r, text);
    if (rec_scan(&r, text, len) < 0)
        r.n = 0;
    size_t k = 0;                       /* the member expected for the next column */
    for (size_t c = 0; c < ncols; c++) {
        const char *col = cols[c];
        size_t i = NONE;
        while (k < r.n && r.m[k].dup)
            k++;
        if (k < r.n && key_is(&r, &r.m[k], col)) {
            i = k++;
        } else {
            for (size_t j = 0; j < r.n; j++) {
                if (!r.m[j].dup && key_is(&r, &r.m[j], col)) {
                    i = j;
                    k = j + 1;
                    break;
                }
            }
        }
        if (i != NONE)
            while (r.m[i].next != NONE)     /* a duplicate key: its last value */
                i = r.m[i].next;
        room(out, 1 + (i != NONE ? r.m[i].cell : 0));
        if (c)
            out->data[out->len++] = ',';
        if (i != NONE)
            put_cell(&r, &r.m[i], out);
    }
    room(out, 2);
    out->data[out->len++] = '\r';
    out->data[out->len++] = '\n';
    out->data[out->len] = '\0';
    rec_free(&r);
}
