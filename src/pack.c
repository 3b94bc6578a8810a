/*
 * pack.c — zstd with a trained dictionary, for record bodies.
 *
 * Level 1: on the sandbox's employees (4.5 KB of indented JSON each) it
 * packs 6.3x at about 600 MB/s and unpacks at about 2 GB/s; level 3 packs
 * 6.8x at 10% less speed, and the full fetch is bound by CPU (docs/performance.md).
 */
#include "pack.h"

#include <stdlib.h>
#include <string.h>
#include <zdict.h>
#include <zstd.h>

#define PACK_LEVEL 1

struct pack_cdict {
    ZSTD_CDict *cd;
};

struct pack_ddict {
    ZSTD_DDict *dd;
};

void pack_ctx_free(struct pack_ctx *ctx)
{
    ZSTD_freeCCtx(ctx->c);
    ZSTD_freeDCtx(ctx->d);
    ctx->c = ctx->d = NULL;
}

int pack_train(const char *const *samples, const size_t *lens, size_t n, struct buf *out)
{
    size_t all_bytes = 0, total = 0, used = 0;
    for (size_t i = 0; i < n; i++)
        all_bytes += lens[i];
    if (n < PACK_TRAIN_MIN_SAMPLES || all_bytes < PACK_TRAIN_MIN_BYTES)
        return -1;
    while (used < n && total < PACK_TRAIN_MAX_BYTES)
        total += lens[used++];
    /* ZDICT wants the samples back to back. */
    char *all = malloc(total);
    if (!all)
        abort();
    size_t off = 0;
    for (size_t i = 0; i < used; i++) {
        memcpy(all + off, samples[i], lens[i]);
        off += lens[i];
    }
    size_t cap = total / 4 < PACK_DICT_SIZE ? total / 4 : PACK_DICT_SIZE;
    buf_reserve(out, cap);
    size_t got = ZDICT_trainFromBuffer(out->data + out->len, cap, all, lens, (unsigned)used);
    free(all);
    if (ZDICT_isError(got))
        return -1;
    out->len += got;
    out->data[out->len] = '\0';
    return 0;
}

struct pack_cdict *pack_cdict_new(const void *dict, size_t len)
{
    if (ZDICT_getDictID(dict, len) == 0)    /* not a trained dictionary */
        return NULL;
    ZSTD_CDict *cd = ZSTD_createCDict(dict, len, PACK_LEVEL);
    if (!cd)
        return NULL;
    struct pack_cdict *p = malloc(sizeof *p);
    if (!p)
        abort();
    p->cd = cd;
    return p;
}

void pack_cdict_free(struct pack_cdict *cd)
{
    if (!cd)
        return;
    ZSTD_freeCDict(cd->cd);
    free(cd);
}

struct pack_ddict *pack_ddict_new(const void *dict, size_t len)
{
    if (ZDICT_getDictID(dict, len) == 0)
        return NULL;
    ZSTD_DDict *dd = ZSTD_createDDict(dict, len);
    if (!dd)
        return NULL;
    struct pack_ddict *p = malloc(sizeof *p);
    if (!p)
        abort();
    p->dd = dd;
    return p;
}

void pack_ddict_free(struct pack_ddict *dd)
{
    if (!dd)
        return;
    ZSTD_freeDDict(dd->dd);
    free(dd);
}

size_t pack_compress(struct pack_ctx *ctx, const struct pack_cdict *cd, const void *src,
                     size_t len, struct buf *out)
{
    if (!ctx->c) {
        ctx->c = ZSTD_createCCtx();
        if (!ctx->c)
            abort();
        /* Every frame carries its checksum (4 bytes): a damaged cache
         * gives EIO, never other bytes. */
        ZSTD_CCtx_setParameter(ctx->c, ZSTD_c_checksumFlag, 1);
    }
    if (len < 64)
        return 0;               /* a frame's header and checksum would eat the gain */
    ZSTD_CCtx *c = ctx->c;
    size_t bound = ZSTD_compressBound(len);
    buf_reserve(out, bound);
    if (ZSTD_isError(ZSTD_CCtx_refCDict(c, cd->cd)))
        return 0;
    size_t z = ZSTD_compress2(c, out->data + out->len, bound, src, len);
    if (ZSTD_isError(z) || z >= len) {
        ZSTD_CCtx_reset(c, ZSTD_reset_session_only);
        out->data[out->len] = '\0';     /* (reserved above: never NULL) */
        return 0;
    }
    out->len += z;
    out->data[out->len] = '\0';
    return z;
}

int pack_decompress(struct pack_ctx *ctx, const struct pack_ddict *dd, const void *src,
                    size_t len, struct buf *out)
{
    buf_reset(out);
    unsigned long long size = ZSTD_getFrameContentSize(src, len);
    if (size == ZSTD_CONTENTSIZE_UNKNOWN || size == ZSTD_CONTENTSIZE_ERROR ||
        size > PACK_MAX_BODY || ZSTD_findFrameCompressedSize(src, len) != len)
        return -1;
    if (!ctx->d) {
        ctx->d = ZSTD_createDCtx();
        if (!ctx->d)
            abort();
    }
    buf_reserve(out, (size_t)size);
    size_t got = ZSTD_decompress_usingDDict(ctx->d, out->data, (size_t)size + 1, src, len,
                                            dd->dd);
    if (ZSTD_isError(got) || got != size) {
        out->data[0] = '\0';
        return -1;
    }
    out->len = got;
    out->data[got] = '\0';
    return 0;
}

const char *pack_version(void)
{
    return ZSTD_versionString();
}
