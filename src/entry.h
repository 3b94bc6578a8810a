/*
 * entry.h — the change-log entry format (SPEC §3), in one place: the file
 * name ("000000000042.json"), the text (the same two-space layout as the
 * records, rendered by jtext_pretty), and the splice of a "created" entry
 * that borrows its record's body instead of holding a copy (store.c keeps
 * such an entry as its text without the record plus the offset where the
 * record goes; see the schema notes there).
 *
 * Ownership: strings returned are malloc'd and freed by the caller; text is
 * appended to caller-owned struct bufs; every input is borrowed.
 */
#ifndef KOMBOFS_ENTRY_H
#define KOMBOFS_ENTRY_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define ENTRY_NAME_LEN 17           /* "000000000042.json" */
#define ENTRY_NAME_SIZE 32          /* a buffer for any seq's name */

/* seq -> "000000000042.json" in out (ENTRY_NAME_SIZE bytes). */
void entry_name(int64_t seq, char *out);
/* "000000000042.json" -> 42; -1 unless the name is exactly that form. */
int64_t entry_seq(const char *name);

/* What an entry says (the JSON fragments are compact JSON text). */
struct entry {
    int64_t at_ns;
    const char *model;              /* directory name, "employees" */
    const char *id_json;            /* the id as a JSON string token */
    size_t id_len;
    const char *op;                 /* "created", "updated", "deleted" */
    int full;                       /* sync: "full" or "delta" */
    int direct;
    const char *nested;             /* JSON array text */
    const char *patch;              /* JSON array text */
    size_t patch_len;
};

/* The entry's file text (indented, final newline), or NULL if a fragment is
 * not valid JSON. */
char *entry_render(const struct entry *e, int64_t seq);

/* A "created" entry without its record: the text with the record left out,
 * and in *split the offset where the record goes (entry_splice). e->patch is
 * ignored (it is the one "add" of the record). NULL on failure. */
char *entry_render_created(const struct entry *e, int64_t seq, size_t *split);

/* The text of a borrowing entry: entry[0, split), the record without its
 * final newline, each of its line breaks followed by the indentation of the
 * line the split is on (a record rendered at depth 0 reads as if rendered
 * in place), then entry[split, elen). Appended to out. */
void entry_splice(const char *entry, size_t elen, size_t split, const char *rec,
                  size_t rlen, struct buf *out);
/* entry_splice of the file of a record kept as compact JSON (store.c), in
 * one pass: the JSON re-indented in place (jtext_indent_compact). */
void entry_splice_json(const char *entry, size_t elen, size_t split, const char *json,
                       size_t jlen, struct buf *out);
/* The length entry_splice() would append. */
size_t entry_splice_size(const char *entry, size_t elen, size_t split,
                         const char *rec, size_t rlen);
/* The same for a record of rlen bytes that ends in a newline and holds
 * `newlines` of them, that one included (known from its rendering): counting
 * them was 5% of a first fetch's writer. */
size_t entry_splice_size_lines(const char *entry, size_t elen, size_t split, size_t rlen,
                               size_t newlines);

#endif
