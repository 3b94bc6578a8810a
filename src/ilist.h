/*
 * ilist.h — the integrations file of multi mode (SPEC §9): a list of ids.
 *
 * The text: one integration id per line. Blank lines, and lines whose first
 * non-blank byte is '#', are ignored. Blanks (space, tab) may come before
 * the id and after it, and after the id a comment: blanks, then '#' and any
 * text. A line may end in LF or CRLF; the last one needs no line end. An id
 * is 1..ILIST_ID_MAX bytes of printable ASCII (0x21..0x7e), e.g.
 * personio:Q4vX8kLm2PzR7tYb3NcW9sHd; '#' starts a comment only at the start
 * of a word, so "a#b" is one id. A UTF-8 byte order mark at the start of
 * the text is skipped. A comment may hold any byte but NUL (UTF-8
 * names of customers are fine). Anything else is an error naming the line
 * and the reason, "FILE:3: two ids on one line": two words, a control or
 * NUL byte, a non-ASCII byte in an id, an id over ILIST_ID_MAX bytes, an id
 * listed twice.
 *
 * Ownership: a struct ilist owns its array and every string in it;
 * ilist_free() releases them and leaves an empty list. The functions that
 * fill a list (ilist_parse, ilist_read, ilist_diff) start from an empty
 * list of their own and leave the caller's list empty when they fail.
 */
#ifndef KOMBOFS_ILIST_H
#define KOMBOFS_ILIST_H

#include <stddef.h>

#define ILIST_ID_MAX 255
/* ilist_read refuses a larger file (room for 262,144 lines of 255-byte ids). */
#define ILIST_FILE_MAX (64u << 20)

struct ilist {
    char **ids;     /* n ids, in file order, each NUL-terminated */
    size_t n;
    size_t cap;     /* allocated entries of ids */
};

#define ILIST_INIT { NULL, 0, 0 }

/* Parse the text of an integrations file (len bytes, NUL bytes included).
 * name is the file name used in messages. Returns 0 and fills *out, or -1
 * with "NAME:LINE: why" in err (one line, no trailing newline). */
int ilist_parse(const char *text, size_t len, const char *name, struct ilist *out,
                char *err, size_t errlen);

/* Read and parse the file at path (the path is the name in messages).
 * Returns 0, or -1 with a message in err: cannot open or read it (with
 * strerror), too large, or a parse error as above. */
int ilist_read(const char *path, struct ilist *out, char *err, size_t errlen);

/* Whether id (a NUL-terminated string) is a well-formed id: what
 * ilist_parse accepts as one, so also the check for ids that arrive by
 * other ways (.control, webhooks). */
int ilist_valid_id(const char *id);

/* The index of id in the list, or -1. Linear: for small lists and tests. */
long ilist_find(const struct ilist *l, const char *id);

/* What changed from old to new: *added gets the ids of new that old does
 * not have (in new's order), *removed those of old that new does not have
 * (in old's order). Either may come out empty. Allocation failure aborts. */
void ilist_diff(const struct ilist *old, const struct ilist *new, struct ilist *added,
               struct ilist *removed);

/* Append a copy of id (no check, no de-duplication). */
void ilist_push(struct ilist *l, const char *id);

void ilist_free(struct ilist *l);

#endif
