/*
 * buf.h — a growable byte buffer.
 *
 * Ownership: a struct buf owns its `data`; buf_free() releases it and leaves
 * an empty buffer. buf_detach() hands the bytes to the caller (free()).
 * The data is always NUL-terminated (not counted in len) once anything was
 * appended, so it can be used as a C string when it holds text.
 * Allocation failure aborts: kombofs cannot do anything useful without memory.
 */
#ifndef KOMBOFS_BUF_H
#define KOMBOFS_BUF_H

#include <stddef.h>

struct buf {
    char *data;
    size_t len;
    size_t cap;
};

#define BUF_INIT { NULL, 0, 0 }

void buf_reserve(struct buf *b, size_t extra);
void buf_add(struct buf *b, const void *p, size_t n);
void buf_addc(struct buf *b, char c);
void buf_adds(struct buf *b, const char *s);
__attribute__((format(printf, 2, 3)))
void buf_printf(struct buf *b, const char *fmt, ...);
void buf_reset(struct buf *b);          /* len = 0, keeps the allocation */
void buf_free(struct buf *b);
char *buf_detach(struct buf *b);        /* never NULL; caller frees */

#endif
