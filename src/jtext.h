/*
 * jtext.h — JSON as text: validation, re-indentation and the Kombo page
 * envelope, working on the raw bytes so that every string and number of a
 * record reaches its file exactly as Kombo sent it (no float re-formatting,
 * no integer overflow, no re-escaping).
 *
 * Ownership: inputs are borrowed byte ranges; outputs are appended to a
 * caller-owned struct buf, or returned in caller-owned structs whose heap
 * members are released with the matching *_free function.
 */
#ifndef KOMBOFS_JTEXT_H
#define KOMBOFS_JTEXT_H

#include <stddef.h>

#include "buf.h"

/* Maximum nesting of arrays/objects accepted (deeper input is invalid). */
#define JTEXT_MAX_DEPTH 200

/* 0 if text[0..len) is exactly one JSON value (surrounding white space
 * allowed, RFC 8259, UTF-8 not re-checked), -1 otherwise. */
int jtext_validate(const char *text, size_t len);

/* Append the value in text[0..len) re-indented with two spaces ("key": value,
 * empty containers as {} and []) and a final newline. Returns -1 (appending
 * nothing) if the text is not one valid JSON value. */
int jtext_pretty(const char *text, size_t len, struct buf *out);

struct jtext_span {
    size_t off;
    size_t len;
};

/* Top-level members of an object, read without building a tree. */
enum jtext_type { JTEXT_ABSENT = 0, JTEXT_NULL, JTEXT_STRING, JTEXT_OTHER };

struct jtext_field {
    const char *key;        /* in: the member's name (plain, no escapes) */
    enum jtext_type type;   /* out */
    char *str;              /* out: decoded value for JTEXT_STRING (malloc'd), else NULL */
    size_t len;             /* out: its length in bytes */
    struct jtext_span raw;  /* out: the value's bytes in the text, verbatim */
};

/* Fill fields[0..n) from the object in text[0..len). Returns 0 if the text
 * is an object (members not asked for are skipped, not validated deeply),
 * -1 if it is not. A string holding \u0000 counts as JTEXT_OTHER. Free the
 * strings with jtext_fields_free(). */
int jtext_fields(const char *text, size_t len, struct jtext_field *fields,
                 size_t n);
void jtext_fields_free(struct jtext_field *fields, size_t n);

/* What jtext_pretty_fields measures on the way. */
struct jtext_sizes {
    size_t pretty;      /* the re-indented form, its final newline included */
    size_t compact;     /* the text's compact form (export_compact_size: every byte
                         * but white space outside strings) */
    size_t lines;       /* '\n' bytes in the re-indented form, the final one included */
};

/* jtext_pretty (into out; with out NULL nothing is written, only measured)
 * and, in the same pass, the top-level fields of an object as jtext_fields
 * reads them (fields may be NULL when n is 0; a text that is no object finds
 * none) and, when sizes is not NULL, the sizes above. -1 if the text is not
 * one valid JSON value: nothing appended, every field absent, sizes untouched.
 * Free the strings with jtext_fields_free(). */
int jtext_pretty_fields(const char *text, size_t len, struct buf *out,
                        struct jtext_field *fields, size_t n, struct jtext_sizes *sizes);

/* jtext_pretty for compact JSON that is known to be valid (a record as the
 * store keeps it): the same bytes, at about three times the speed, without
 * validating. With `base`, every line break is followed by base more spaces
 * (a record spliced into a change entry at that depth), and final says
 * whether the final newline is written. Input that is not valid compact JSON
 * gives some other text, never a read outside json[0..len): callers compare
 * the length with the one they stored. Returns the bytes appended. */
size_t jtext_indent_compact(const char *json, size_t len, size_t base, int final,
                            struct buf *out);

/* A top-level member of an object: its key's bytes between the quotes (as
 * sent, escapes included) and its value's bytes, as offsets into the object's
 * text. */
struct jtext_member {
    struct jtext_span key;
    struct jtext_span value;
};

/* What the page scan learned of one element of data.results, in the same
 * pass that validated it. */
struct jtext_result {
    struct jtext_sizes sizes;   /* as jtext_pretty_fields measures the element */
    size_t first, nmembers;     /* an object's top-level members, in document order:
                                 * page->members[first .. first + nmembers); 0 for
                                 * any other value */
};

/* A Kombo list response: {"status":"success","data":{"next":…,"results":[…]}} */
struct jtext_page {
    char *next;                 /* decoded cursor, NULL when next is null or "" */
    struct jtext_span *results; /* byte range of each element of data.results */
    struct jtext_result *info;  /* per element, as results */
    struct jtext_member *members;   /* spans relative to their element's first byte */
    size_t nresults;
};

/* Parse a list response. Returns 0 on success; -1 if the body is not valid
 * JSON or not the success envelope (then *msg says why, a static string).
 * Each element is scanned once: validated, measured and its members located
 * (every element of a page that parses is one valid JSON value). */
int jtext_page_parse(const char *body, size_t len, struct jtext_page *page,
                     const char **msg);
void jtext_page_free(struct jtext_page *page);

/* The members of element i (borrowed from page), or NULL when it has none: a
 * page whose elements hold no members at all has page->members NULL, and
 * NULL + 0 is undefined in C (found by fuzz_page; regressions/page). */
static inline const struct jtext_member *jtext_page_members(const struct jtext_page *page,
                                                            size_t i)
{
    return page->info[i].nmembers ? page->members + page->info[i].first : NULL;
}

/* The fields of an object from its members (text: the object's first byte,
 * m[0..n) as jtext_page_parse located them), as jtext_fields reads them: the
 * first member of each name, a string decoded. Free the strings with
 * jtext_fields_free(). */
void jtext_member_fields(const char *text, const struct jtext_member *m, size_t n,
                         struct jtext_field *fields, size_t nf);

#endif
