/*
 * tap.h — a minimal TAP producer for the C unit tests (meson protocol: 'tap').
 *
 *   TAP_PLAN(n);  ok(cond, "desc %d", i);  return tap_done();
 *
 * Header-only on purpose: each test is one .c file plus the modules it tests.
 */
#ifndef KOMBOFS_TAP_H
#define KOMBOFS_TAP_H

#include <stdarg.h>
#include <stdio.h>

static int tap_count;
static int tap_failed;

static inline void tap_plan(int n) { printf("1..%d\n", n); fflush(stdout); }
#define TAP_PLAN(n) tap_plan(n)

__attribute__((format(printf, 2, 3)))
static inline int ok(int cond, const char *fmt, ...)
{
    va_list ap;
    tap_count++;
    if (!cond)
        tap_failed++;
    printf("%sok %d - ", cond ? "" : "not ", tap_count);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
    return cond;
}

/* Print a diagnostic line (TAP comment). */
__attribute__((format(printf, 1, 2)))
static inline void diag(const char *fmt, ...)
{
    va_list ap;
    fputs("# ", stdout);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

/* Exit status: 0 when every test passed. With no plan printed, print one now. */
static inline int tap_done(void)
{
    return tap_failed ? 1 : 0;
}

/* For tests that do not know their count in advance. */
static inline int tap_done_testing(void)
{
    printf("1..%d\n", tap_count);
    return tap_failed ? 1 : 0;
}

#endif
