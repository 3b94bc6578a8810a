#include <string.h>

#include "buf.h"
#include "fsname.h"
#include "tap.h"

static int is(const char *id, size_t len, const char *want)
{
    struct buf b = BUF_INIT;
    fsname_escape(id, len, &b);
    int r = b.data && strcmp(b.data, want) == 0;
    if (!r)
        diag("got '%s', want '%s'", b.data ? b.data : "(null)", want);
    buf_free(&b);
    return r;
}

#define IS(id, want) is(id, sizeof(id) - 1, want)

int main(void)
{
    ok(IS("8fQk2LrT6vWn3XyB9cHd4JmP", "8fQk2LrT6vWn3XyB9cHd4JmP"), "Kombo ids stay as they are");
    ok(IS("A1B2-C3D4_e5.f6:g7", "A1B2-C3D4_e5.f6:g7"), "allowed punctuation");
    ok(IS("a/b", "a%2Fb"), "slash");
    ok(IS("..", "%2E."), "dot-dot");
    ok(IS(".hidden", "%2Ehidden"), "leading dot");
    ok(IS("a.b.", "a.b."), "inner and trailing dots");
    ok(IS("50%", "50%25"), "percent is escaped, so the mapping is injective");
    ok(IS("a b", "a%20b"), "space");
    ok(is("a\0b", 3, "a%00b"), "NUL");
    ok(IS("\xc3\xb6", "%C3%B6"), "non-ASCII bytes, upper-case hex");
    ok(IS("x\\y", "x%5Cy"), "backslash");
    return tap_done_testing();
}
