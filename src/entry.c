/*
 * entry.c — the change-log entry format: names, text, and the splice of a
 * borrowed record (entry.h).
 */
#include "entry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "jtext.h"

void entry_name(int64_t seq, char *out)
{
    snprintf(out, ENTRY_NAME_SIZE, "%012lld.json", (long long)seq);
}

int64_t entry_seq(const char *name)
{
    int64_t seq = 0;
    for (int i = 0; i < 12; i++) {
        if (name[i] < '0' || name[i] > '9')
            return -1;
        seq = seq * 10 + (name[i] - '0');
    }
    return strcmp(name + 12, ".json") == 0 ? seq : -1;
}

/*
 * The entry is written as compact JSON text and re-indented by jtext_pretty,
 * like the records: the record of a "created" entry is copied byte for byte
 * from the API's response, without a jansson round trip.
 */
char *entry_render(const struct entry *e, int64_t seq)
{
    struct buf text = BUF_INIT, out = BUF_INIT;
    char at[CLOCK_ISO_LEN];
    clock_format(e->at_ns, at, sizeof at);
    buf_printf(&text, "{\"seq\":%lld,\"at\":\"%s\",\"model\":\"%s\",\"id\":", (long long)seq,
               at, e->model);
    buf_add(&text, e->id_json, e->id_len);
    buf_printf(&text, ",\"op\":\"%s\",\"sync\":\"%s\",\"direct\":%s,\"nested\":%s,\"patch\":",
               e->op, e->full ? "full" : "delta", e->direct ? "true" : "false", e->nested);
    buf_add(&text, e->patch, e->patch_len);
    buf_addc(&text, '}');
    int rc = jtext_pretty(text.data, text.len, &out);
    buf_free(&text);
    if (rc < 0) {
        buf_free(&out);
        return NULL;
    }
    return buf_detach(&out);
}

/* The placeholder value 0 marks where the record goes. */
static const char created_patch[] = "[{\"op\":\"add\",\"path\":\"\",\"value\":0}]";
static const char created_tail[] = "\n    }\n  ]\n}\n";

/* Whether s is a plain word: it goes into the text as it is, with no escape. */
static int plain_word(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
            return 0;
    return 1;
}

/* The entry of a record created with no nested changes (each record of a
 * first fetch), written at once in the layout jtext_pretty gives it: the
 * generic render formats compact text and re-indents it, which took 4 % of
 * the storing thread's time in a first fetch of 100,000 employees. The same
 * bytes, compared in test_entry; NULL where the generic path must decide. */
static char *render_created_fast(const struct entry *e, int64_t seq, size_t *split)
{
    if (seq < 0 || strcmp(e->nested, "[]") != 0 || !plain_word(e->model) ||
        e->id_len < 2 || e->id_json[0] != '"' || e->id_json[e->id_len - 1] != '"' ||
        jtext_validate(e->id_json, e->id_len) < 0)
        return NULL;
    char at[CLOCK_ISO_LEN], digits[24];
    clock_format(e->at_ns, at, sizeof at);
    size_t nd = 0;
    for (uint64_t v = (uint64_t)seq; nd == 0 || v; v /= 10)
        digits[sizeof digits - ++nd] = (char)('0' + v % 10);
    struct buf t = BUF_INIT;
    buf_reserve(&t, 256 + e->id_len);
    buf_adds(&t, "{\n  \"seq\": ");
    buf_add(&t, digits + sizeof digits - nd, nd);
    buf_adds(&t, ",\n  \"at\": \"");
    buf_adds(&t, at);
    buf_adds(&t, "\",\n  \"model\": \"");
    buf_adds(&t, e->model);
    buf_adds(&t, "\",\n  \"id\": ");
    buf_add(&t, e->id_json, e->id_len);
    buf_adds(&t, ",\n  \"op\": \"created\",\n  \"sync\": \"");
    buf_adds(&t, e->full ? "full" : "delta");
    buf_adds(&t, "\",\n  \"direct\": ");
    buf_adds(&t, e->direct ? "true" : "false");
    buf_adds(&t, ",\n  \"nested\": [],\n  \"patch\": [\n    {\n      \"op\": \"add\",\n"
                 "      \"path\": \"\",\n      \"value\": ");
    *split = t.len;
    buf_adds(&t, created_tail);
    return buf_detach(&t);
}

char *entry_render_created(const struct entry *e, int64_t seq, size_t *split)
{
    char *fast = render_created_fast(e, seq, split);
    if (fast)
        return fast;
    struct entry c = *e;
    c.patch = created_patch;
    c.patch_len = sizeof created_patch - 1;
    char *t = entry_render(&c, seq);
    if (!t)
        return NULL;
    size_t len = strlen(t), tail = sizeof created_tail - 1;
    if (len < tail + 1 || t[len - tail - 1] != '0' ||
        memcmp(t + len - tail, created_tail, tail) != 0) {
        free(t);    /* cannot happen: the template above decides the shape */
        return NULL;
    }
    memmove(t + len - tail - 1, t + len - tail, tail + 1);
    *split = len - tail - 1;
    return t;
}

/* The indentation (spaces) of the line that offset `at` of text is on. */
static size_t line_indent(const char *text, size_t at)
{
    size_t start = at, n = 0;
    while (start > 0 && text[start - 1] != '\n')
        start--;
    while (start + n < at && text[start + n] == ' ')
        n++;
    return n;
}

/* The record's text as it goes into an entry: without its final newline. */
static size_t rec_len(const char *rec, size_t len)
{
    return len && rec[len - 1] == '\n' ? len - 1 : len;
}

static size_t count_newlines(const char *p, size_t n)
{
    size_t k = 0;
    const char *end = p + n;
    while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        k++;
        p++;
    }
    return k;
}

void entry_splice_json(const char *entry, size_t elen, size_t split, const char *json,
                       size_t jlen, struct buf *out)
{
    buf_add(out, entry, split);
    jtext_indent_compact(json, jlen, line_indent(entry, split), 0, out);
    buf_add(out, entry + split, elen - split);
}

size_t entry_splice_size(const char *entry, size_t elen, size_t split, const char *rec,
                         size_t rlen)
{
    rlen = rec_len(rec, rlen);
    return elen + rlen + count_newlines(rec, rlen) * line_indent(entry, split);
}

size_t entry_splice_size_lines(const char *entry, size_t elen, size_t split, size_t rlen,
                               size_t newlines)
{
    /* the record's final newline does not go in */
    return elen + rlen - 1 + (newlines - 1) * line_indent(entry, split);
}

void entry_splice(const char *entry, size_t elen, size_t split, const char *rec,
                  size_t rlen, struct buf *out)
{
    size_t indent = line_indent(entry, split);
    rlen = rec_len(rec, rlen);
    buf_reserve(out, elen + rlen + count_newlines(rec, rlen) * indent);
    buf_add(out, entry, split);
    const char *p = rec, *end = rec + rlen;
    while (p < end) {       /* the room was reserved above: plain copies */
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
        memcpy(out->data + out->len, p, n);
        out->len += n;
        if (nl) {
            memset(out->data + out->len, ' ', indent);
            out->len += indent;
        }
        p += n;
    }
    out->data[out->len] = '\0';
    buf_add(out, entry + split, elen - split);
}
