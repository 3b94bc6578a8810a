#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "pack.h"
#include "tap.h"

/* Records shaped like the sandbox's employees: the same keys, other values. */
static void record(int i, struct buf *out)
{
    buf_reset(out);
    buf_printf(out,
               "{\n  \"id\": \"emp%06d\",\n  \"remote_id\": \"%d\",\n  \"first_name\": \"Name%d\",\n"
               "  \"last_name\": \"Family%d\",\n  \"work_email\": \"n%d@example.com\",\n"
               "  \"employments\": [\n    {\n      \"id\": \"job%d\",\n      \"job_title\": "
               "\"Title %d\",\n      \"pay_rate\": %d.%02d,\n      \"changed_at\": "
               "\"2026-01-%02dT10:00:00.000Z\"\n    }\n  ],\n  \"custom_fields\": {\n"
               "    \"cost_center\": \"CC-%03d\",\n    \"remote\": %s\n  },\n  \"notes\": [\n",
               i, 10000 + i, i * 7, i * 13, i, i, i % 17, 1000 + i, i % 100, 1 + i % 28, i % 50,
               i % 2 ? "true" : "false");
    /* about 1.2 KB more each, so that 200 records make the bytes a dictionary needs */
    for (int k = 0; k < 24; k++)
        buf_printf(out, "    \"%s note %d of record %d, day %d\"%s\n",
                   k % 3 ? "A follow-up" : "The first review", k, i, (i * 7 + k) % 31,
                   k < 23 ? "," : "");
    buf_adds(out, "  ]\n}\n");
}

int main(void)
{
    struct buf recs[200], dict = BUF_INIT, z = BUF_INIT, back = BUF_INIT;
    const char *samples[200];
    size_t lens[200], total = 0;
    for (int i = 0; i < 200; i++) {
        recs[i] = (struct buf)BUF_INIT;
        record(i, &recs[i]);
        samples[i] = recs[i].data;
        lens[i] = recs[i].len;
        total += lens[i];
    }

    ok(pack_train(samples, lens, PACK_TRAIN_MIN_SAMPLES - 1, &dict) < 0 && dict.len == 0,
       "too few samples: no dictionary");
    size_t small[200];
    for (int i = 0; i < 200; i++)
        small[i] = 80;
    ok(pack_train(samples, small, 200, &dict) < 0 && dict.len == 0,
       "too few bytes: no dictionary");
    int trained = pack_train(samples, lens, 200, &dict) == 0;
    ok(trained && dict.len > 0 && dict.len <= PACK_DICT_SIZE && dict.len <= total / 4,
       "trained on the samples: %zu bytes, at most a quarter of them", dict.len);
    struct pack_cdict *cd = pack_cdict_new(dict.data, dict.len);
    struct pack_ddict *dd = pack_ddict_new(dict.data, dict.len);
    ok(cd && dd, "both halves of the dictionary");
    ok(!pack_cdict_new("not a dictionary", 16) && !pack_ddict_new("not a dictionary", 16),
       "bytes that are no dictionary are refused");

    struct pack_ctx c = PACK_CTX_INIT, d = PACK_CTX_INIT;
    size_t packed = 0;
    int same = 1;
    for (int i = 0; i < 200; i++) {
        buf_reset(&z);
        size_t n = pack_compress(&c, cd, recs[i].data, recs[i].len, &z);
        packed += n;
        same &= n > 0 && n == z.len && pack_decompress(&d, dd, z.data, z.len, &back) == 0 &&
                back.len == recs[i].len && memcmp(back.data, recs[i].data, back.len) == 0 &&
                back.data[back.len] == '\0';
    }
    ok(same, "every record comes back byte for byte");
    ok(packed * 3 < total, "and packs to less than a third (%zu of %zu bytes)", packed, total);

    buf_reset(&z);
    ok(pack_compress(&c, cd, "{\"a\":1}\n", 8, &z) == 0 && z.len == 0,
       "a tiny body is left as it is");
    char noise[4096];
    unsigned x = 12345;
    for (size_t i = 0; i < sizeof noise; i++) {
        x = x * 1103515245u + 12345u;
        noise[i] = (char)(x >> 16);
    }
    ok(pack_compress(&c, cd, noise, sizeof noise, &z) == 0 && z.len == 0,
       "a body that does not shrink is left as it is");

    /* Decoding refuses what is not one whole valid frame of this dictionary. */
    buf_reset(&z);
    size_t n = pack_compress(&c, cd, recs[7].data, recs[7].len, &z);
    ok(n > 16, "a frame to damage");
    ok(pack_decompress(&d, dd, z.data, n - 1, &back) < 0, "truncated: refused");
    struct buf longer = BUF_INIT;
    buf_add(&longer, z.data, n);
    buf_addc(&longer, 'x');
    ok(pack_decompress(&d, dd, longer.data, longer.len, &back) < 0, "trailing bytes: refused");
    z.data[n / 2] ^= 0x40;
    ok(pack_decompress(&d, dd, z.data, n, &back) < 0 && back.len == 0,
       "a flipped bit: refused (checksum)");
    z.data[n / 2] ^= 0x40;
    ok(pack_decompress(&d, dd, z.data, n, &back) == 0, "restored: decodes again");
    ok(pack_decompress(&d, dd, "garbage bytes", 13, &back) < 0, "not a frame: refused");

    /* Another dictionary (other samples) cannot decode it. */
    struct buf other = BUF_INIT;
    struct buf orecs[150];
    const char *os[150];
    size_t ol[150];
    for (int i = 0; i < 150; i++) {
        orecs[i] = (struct buf)BUF_INIT;
        for (int k = 0; k < 80; k++)
            buf_printf(&orecs[i], "{\"other\": %d, \"shape\": [%d, %d]}\n", i * k, k, i);
        os[i] = orecs[i].data;
        ol[i] = orecs[i].len;
    }
    ok(pack_train(os, ol, 150, &other) == 0, "a second dictionary");
    struct pack_ddict *dd2 = pack_ddict_new(other.data, other.len);
    ok(dd2 && pack_decompress(&d, dd2, z.data, n, &back) < 0,
       "a frame of another dictionary: refused");
    ok(pack_version() && pack_version()[0], "zstd %s", pack_version());

    pack_ddict_free(dd2);
    pack_cdict_free(cd);
    pack_ddict_free(dd);
    pack_ctx_free(&c);
    pack_ctx_free(&d);
    pack_ctx_free(&d);          /* twice is harmless */
    for (int i = 0; i < 200; i++)
        buf_free(&recs[i]);
    for (int i = 0; i < 150; i++)
        buf_free(&orecs[i]);
    buf_free(&dict);
    buf_free(&other);
    buf_free(&z);
    buf_free(&back);
    buf_free(&longer);
    return tap_done_testing();
}
