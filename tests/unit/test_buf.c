#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "tap.h"

int main(void)
{
    struct buf b = BUF_INIT;
    buf_adds(&b, "abc");
    ok(b.len == 3 && strcmp(b.data, "abc") == 0, "adds");
    buf_printf(&b, "-%d-%s", 42, "x");
    ok(strcmp(b.data, "abc-42-x") == 0, "printf appends");
    for (int i = 0; i < 10000; i++)
        buf_addc(&b, 'z');
    ok(b.len == 8 + 10000 && b.data[b.len] == '\0', "grows and stays NUL-terminated");
    buf_reset(&b);
    ok(b.len == 0 && b.data[0] == '\0', "reset keeps the allocation, empties it");
    buf_add(&b, "x\0y", 3);
    ok(b.len == 3 && memcmp(b.data, "x\0y", 3) == 0, "binary data");
    char *s = buf_detach(&b);
    ok(s && b.data == NULL && b.len == 0, "detach hands the bytes over");
    free(s);
    struct buf r = BUF_INIT;
    buf_reserve(&r, 10);
    ok(r.data && r.data[0] == '\0', "a reserved buffer is an empty string");
    buf_free(&r);
    struct buf e = BUF_INIT;
    s = buf_detach(&e);
    ok(s && s[0] == '\0', "detach of an empty buffer gives an empty string");
    free(s);
    buf_free(&b);
    return tap_done_testing();
}
