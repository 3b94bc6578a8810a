/*
 * export.h — the text of the exports/ views (SPEC §10), rendered from the
 * stored text of a record: the compact JSON of a JSONL line and the cells of
 * a CSV row. Pure functions: no I/O, no global state, no jansson; each one is
 * a linear pass over the record's bytes, so that an export can be streamed
 * record by record and its exact size computed without rendering it.
 *
 * Ownership: every input (record text, column names) is borrowed and never
 * modified or kept. Output is appended to a caller-owned struct buf (never
 * reset or truncated), which stays NUL-terminated as buf.h promises. No
 * function returns memory that the caller must free.
 *
 * Input: a record is one JSON object as text, with any white space (stored
 * records are jtext_pretty output, but nothing here relies on that). The
 * functions assume valid JSON, as the store holds; on invalid text they
 * still never read outside text[0..len) and their result is stated below.
 */
#ifndef KOMBOFS_EXPORT_H
#define KOMBOFS_EXPORT_H

#include <stddef.h>

#include "buf.h"
#include "jtext.h"

/* ---- JSONL ---- */

/* Append the compact form of the JSON text text[0..len): every white-space
 * byte (space, tab, LF, CR) outside strings removed, every other byte kept
 * as it is (strings, escapes and numbers verbatim). A JSONL line is this plus
 * "\n". Works on any bytes (an unterminated string runs to the end). Returns
 * the number of bytes appended. */
size_t export_compact(const char *text, size_t len, struct buf *out);

/* What export_compact() would append, without writing. */
size_t export_compact_size(const char *text, size_t len);

/* ---- CSV (RFC 4180) ----
 *
 * One row per record; the columns are top-level keys. A cell holds:
 *   a string                the decoded string (UTF-8; \uXXXX and surrogate
 *                           pairs decoded, a lone surrogate as U+FFFD,
 *                           \u0000 as a NUL byte);
 *   a number, true, false   its JSON text verbatim;
 *   an object or array      its compact JSON text (export_compact);
 *   null, or key missing    nothing (an empty cell).
 * A cell holding ',', '"', CR or LF is wrapped in '"' with each '"' doubled
 * (Python's csv.QUOTE_MINIMAL with lineterminator "\r\n"). Cells are joined
 * by ',', a row ends with CRLF, no BOM.
 *
 * A key that occurs twice in a record counts once: at its first position in
 * the key list, with its last value in cells (Python json semantics).
 * A key whose decoded name holds U+0000 cannot be named by a C string: it is
 * left out of the key list, is not counted by export_csv_cells_size() and
 * never matches a column.
 */

/* Append text[0..n) as one CSV field, quoted if it needs to be. */
void export_csv_field(const char *s, size_t n, struct buf *out);

/* The header row: each column name as a field, ',' between, CRLF. */
void export_csv_header(const char *const *cols, size_t ncols, struct buf *out);

/* Append the record's top-level keys, decoded, in document order, each
 * followed by a NUL byte ("id\0first_name\0..."). Returns the number of
 * keys, or -1 (appending nothing) if the text is not one JSON object. */
int export_csv_keys(const char *text, size_t len, struct buf *out);

/* The sum of the lengths of the record's cells, one per listed key (as
 * export_csv_keys lists them), quoting included. For ncols >= 1 distinct columns
 * that include every such key, the row is exactly
 *     export_csv_cells_size() + ncols + 1
 * bytes long (ncols - 1 commas, CRLF; a column the record lacks adds its
 * comma and an empty cell). 0 if the text is not one JSON object. */
size_t export_csv_cells_size(const char *text, size_t len);

/* Both of the above in one scan: export_csv_cells_size() is returned, the
 * keys are appended to keys as export_csv_keys() appends them, and *nkeys is
 * what it returns (-1: not an object, nothing appended, 0 returned). */
size_t export_csv_derive(const char *text, size_t len, struct buf *keys, int *nkeys);

/* export_csv_derive() of a record whose top-level members jtext_page_parse()
 * located, without scanning it again: text is the record's first byte,
 * mem[0..n) its members (spans from text). The text must be valid JSON, as
 * jtext validated it; compact says it has no white space outside strings
 * (its jtext_sizes.compact is its length), which lets an object or array
 * member's cell be measured from its bytes alone. */
size_t export_csv_derive_members(const char *text, const struct jtext_member *mem, size_t n,
                                 int compact, struct buf *keys, int *nkeys);

/* Append the record's row for the columns cols[0..ncols). The members are
 * scanned once; a record whose keys come in the order of the columns is
 * matched without searching. If the text is not one JSON object, every cell
 * is empty. With ncols == 0 the row is just CRLF. */
void export_csv_row(const char *text, size_t len, const char *const *cols,
                    size_t ncols, struct buf *out);

#endif
