#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snaps.h"
#include "tap.h"

static int renders, fail_next;

static char *render(void *ctx)
{
    (void)ctx;
    if (fail_next)
        return fail_next = 0, NULL;
    renders++;
    char *s = malloc(64);
    snprintf(s, 64, "{\"n\": %d%s}\n", renders, renders % 2 ? "" : ", \"pad\": 1");
    return s;
}

int main(void)
{
    struct snaps *s = snaps_new(render, NULL);
    size_t len, len2 = 0;
    int64_t ns, ns2;
    char buf[64];

    int64_t a = snaps_take(s), b = snaps_take(s);
    ok(a == 1 && b == 2 && renders == 2, "numbered from 1");
    ok(snaps_stat(s, a, &len, &ns) == 1 && snaps_stat(s, b, &len2, &ns2) == 1 &&
       len == strlen("{\"n\": 1}\n") && len2 == strlen("{\"n\": 2, \"pad\": 1}\n") && ns2 >= ns,
       "each keeps its own size and time");
    long n = snaps_read(s, a, 2, buf, sizeof buf);
    ok(n == (long)len - 2 && memcmp(buf, "n\": 1}\n", 7) == 0, "an older one still reads whole");
    ok(snaps_read(s, b, len2, buf, sizeof buf) == 0, "EOF");
    ok(snaps_stat(s, 0, &len, &ns) == 0 && snaps_stat(s, 3, &len, &ns) == 0 &&
       snaps_read(s, 99, 0, buf, 1) == -1, "unknown numbers");
    fail_next = 1;
    ok(snaps_take(s) == -1, "a failed rendering takes no number");
    for (int i = 0; i < SNAPS_KEEP; i++)
        snaps_take(s);
    ok(snaps_stat(s, a, &len, &ns) == 0 && snaps_stat(s, 2 + SNAPS_KEEP, &len, &ns) == 1,
       "the oldest are dropped after SNAPS_KEEP");
    snaps_free(s);
    return tap_done_testing();
}
