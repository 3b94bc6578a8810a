/*
 * fuzz.h — shared by the libFuzzer targets in tests/fuzz (issue 8).
 *
 * FUZZ_CHECK(cond, fmt, ...) states a property: when it does not hold the
 * target prints what failed and aborts, which libFuzzer reports as a crash
 * and saves the input as an artifact. Header-only, like tests/unit/tap.h.
 */
#ifndef KOMBOFS_FUZZ_H
#define KOMBOFS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(cond, ...)                                                  \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "\nPROPERTY FAILED at %s:%d: %s\n  ", __FILE__,    \
                    __LINE__, #cond);                                          \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* An exact-size heap copy of a byte range, so that ASan sees one byte past
 * the end as an overflow (libFuzzer's own buffer is exact-size too; the copy
 * matters where a target cuts the input into pieces). Never NULL. */
static inline char *fuzz_dup(const uint8_t *p, size_t n)
{
    char *c = malloc(n ? n : 1);
    if (!c)
        abort();
    if (n)
        memcpy(c, p, n);
    return c;
}

/* The same, NUL-terminated (a C string that may hold no NUL before n). */
static inline char *fuzz_strdup(const uint8_t *p, size_t n)
{
    char *c = malloc(n + 1);
    if (!c)
        abort();
    if (n)
        memcpy(c, p, n);
    c[n] = '\0';
    return c;
}

/* Split [p, p+n) at the first byte `sep`: returns the length of the head;
 * *rest and *restlen get what follows the separator (NULL/0 if none). */
static inline size_t fuzz_split(const uint8_t *p, size_t n, uint8_t sep,
                                const uint8_t **rest, size_t *restlen)
{
    const uint8_t *s = n ? memchr(p, sep, n) : NULL;
    if (!s) {
        *rest = NULL;
        *restlen = 0;
        return n;
    }
    *rest = s + 1;
    *restlen = n - (size_t)(s - p) - 1;
    return (size_t)(s - p);
}

/* Set by the environment (KOMBOFS_FUZZ_STRICT=1): treat the divergences that
 * are known and reported (see docs/fuzzing.md) as failures too. */
static inline int fuzz_strict(void)
{
    static int strict = -1;
    if (strict < 0) {
        const char *v = getenv("KOMBOFS_FUZZ_STRICT");
        strict = v && *v && strcmp(v, "0") != 0;
    }
    return strict;
}

#endif
