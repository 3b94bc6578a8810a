/*
 * pack.h — record bodies compressed with zstd and a dictionary trained on the
 * model's own records (the cache's largest cost was writing them: at 100,000
 * employees 455 MB of indented JSON, about 72 MB packed; see store.c, schema
 * version 4).
 *
 * A packed body is one zstd frame (content size and checksum in it) made with
 * the dictionary that the cache's `dicts` table holds under the row's id, so
 * that decoding checks both the size and the bytes.
 *
 * Ownership: a struct pack_cdict or pack_ddict is immutable once made and may
 * be used by several threads at once (zstd's dictionaries are read-only); its
 * creator frees it after every user is done. A struct pack_ctx holds zstd's
 * working state: one thread at a time, zero-initialised by its owner
 * (PACK_CTX_INIT), released with pack_ctx_free(). Inputs are borrowed; output
 * goes to caller-owned buffers.
 */
#ifndef KOMBOFS_PACK_H
#define KOMBOFS_PACK_H

#include <stddef.h>

#include "buf.h"

/* The dictionary's size at most, and what a page must hold for one to be
 * trained. A dictionary costs its training (about 25 ms) and its bytes in the
 * cache, so a model is packed only when its first page holds many records:
 * in multi mode, 1,000 integrations of 100 employees trained 9,000 of them,
 * and the first mirror took 83 s instead of 30 s. The samples are the page's
 * first records up to PACK_TRAIN_MAX_BYTES: 128 KB of the sandbox's compact
 * employees (37 records) train in 22-28 ms and pack 5.5x, 256 KB in 38 ms
 * and 5.6x. The dictionary is at most a quarter of the samples. */
#define PACK_DICT_SIZE (32 * 1024)
#define PACK_TRAIN_MIN_SAMPLES 128
#define PACK_TRAIN_MIN_BYTES (256 * 1024)
#define PACK_TRAIN_MAX_BYTES (128 * 1024)
/* The largest body decoded (a frame that claims more is refused). */
#define PACK_MAX_BODY ((size_t)1 << 30)

struct pack_cdict;
struct pack_ddict;

struct pack_ctx {
    void *c;    /* ZSTD_CCtx, made on first use */
    void *d;    /* ZSTD_DCtx, made on first use */
};
#define PACK_CTX_INIT { NULL, NULL }
void pack_ctx_free(struct pack_ctx *ctx);

/* Train a dictionary on the first of samples[0..n) (lens[i] bytes each) and
 * append it to out. 0, or -1 (nothing appended) when the samples are too few
 * or too small (the limits above) or zstd cannot make one of them. */
int pack_train(const char *const *samples, const size_t *lens, size_t n, struct buf *out);

/* The two halves of a dictionary: NULL if the bytes are not one. */
struct pack_cdict *pack_cdict_new(const void *dict, size_t len);
void pack_cdict_free(struct pack_cdict *cd);
struct pack_ddict *pack_ddict_new(const void *dict, size_t len);
void pack_ddict_free(struct pack_ddict *dd);

/* Append the frame of src[0..len) to out. Returns its length, or 0 (nothing
 * appended) when it would not be smaller than len or zstd fails: the body is
 * then stored as it is. */
size_t pack_compress(struct pack_ctx *ctx, const struct pack_cdict *cd, const void *src,
                     size_t len, struct buf *out);

/* Decode the frame src[0..len) into out (reset first, then NUL-terminated).
 * 0, or -1 when it is not one whole valid frame of this dictionary (wrong
 * dictionary, truncated, corrupt, checksum, more than PACK_MAX_BODY). */
int pack_decompress(struct pack_ctx *ctx, const struct pack_ddict *dd, const void *src,
                    size_t len, struct buf *out);

/* zstd's version, for --version. */
const char *pack_version(void);

#endif
