/*
 * fuzz_fsname.c — fsname_escape() (ids -> file names, SPEC §2).
 *
 * Input: one Kombo id, any bytes (NUL, '/', "..", non-ASCII, invalid UTF-8).
 * Properties:
 *  - the name holds only [A-Za-z0-9._:-] and "%XX" with upper-case hex, so
 *    never '/', never a NUL; it is never "." or "..", never starts with '.';
 *  - every byte is kept as is or becomes exactly one %XX, and the kept ones
 *    are exactly those of [A-Za-z0-9._:-] not at a leading '.';
 *  - escaping is injective: decoding the name gives back the id byte for
 *    byte (so two different ids never share a name), and the id split in
 *    two at the first byte gives two names that differ when the ids do;
 *  - it appends: what the buffer held before is left untouched.
 */
#include <string.h>

#include "buf.h"
#include "fsname.h"
#include "fuzz.h"

static int plain(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' || c == '-';
}

static int hexdigit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;      /* lower case is not what fsname writes */
}

/* Check the name's alphabet and decode it; returns the decoded length. */
static size_t decode(const char *name, size_t n, unsigned char *out)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == '%') {
            FUZZ_CHECK(i + 2 < n, "truncated escape at %zu", i);
            int hi = hexdigit(name[i + 1]), lo = hexdigit(name[i + 2]);
            FUZZ_CHECK(hi >= 0 && lo >= 0, "bad escape '%.3s'", name + i);
            unsigned char b = (unsigned char)(hi * 16 + lo);
            FUZZ_CHECK(!plain(b) || (w == 0 && b == '.'),
                       "byte %#x escaped although it may stay as it is", b);
            out[w++] = b;
            i += 2;
        } else {
            FUZZ_CHECK(plain(c), "byte %#x in a name", c);
            FUZZ_CHECK(!(w == 0 && c == '.'), "leading '.' kept");
            out[w++] = c;
        }
    }
    return w;
}

static void escape_checked(const uint8_t *id, size_t len, struct buf *out)
{
    static const char prefix[] = "employees/";
    buf_reset(out);
    buf_adds(out, prefix);
    char *copy = fuzz_dup(id, len);
    fsname_escape(copy, len, out);
    free(copy);
    FUZZ_CHECK(out->len >= sizeof prefix - 1 &&
                   memcmp(out->data, prefix, sizeof prefix - 1) == 0,
               "the buffer's previous content changed");
    FUZZ_CHECK(out->data[out->len] == '\0', "not NUL-terminated");

    const char *name = out->data + sizeof prefix - 1;
    size_t n = out->len - (sizeof prefix - 1);
    FUZZ_CHECK(memchr(name, '\0', n) == NULL, "NUL in the name");
    FUZZ_CHECK(memchr(name, '/', n) == NULL, "'/' in the name");
    FUZZ_CHECK(!(n == 1 && name[0] == '.') && !(n == 2 && name[0] == '.' && name[1] == '.'),
               "name is . or ..");
    FUZZ_CHECK(n == 0 || name[0] != '.', "hidden name");
    FUZZ_CHECK(len > 0 || n == 0, "empty id gives a non-empty name");

    size_t escaped = 0;
    for (size_t i = 0; i < len; i++)
        escaped += !plain(id[i]) || (i == 0 && id[i] == '.');
    FUZZ_CHECK(n == len + 2 * escaped, "length %zu, want %zu", n, len + 2 * escaped);

    unsigned char *back = malloc(n + 1);
    if (!back)
        abort();
    size_t blen = decode(name, n, back);
    FUZZ_CHECK(blen == len && memcmp(back, id, len) == 0, "decoding does not give the id back");
    free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct buf a = BUF_INIT, b = BUF_INIT;
    escape_checked(data, size, &a);

    /* Two ids: the input cut after its first byte's value (mod size). */
    if (size >= 2) {
        size_t cut = data[0] % size;
        escape_checked(data, cut, &a);
        escape_checked(data + cut, size - cut, &b);
        int same_id = cut == size - cut && memcmp(data, data + cut, cut) == 0;
        int same_name = a.len == b.len && memcmp(a.data, b.data, a.len) == 0;
        FUZZ_CHECK(same_id == same_name, "ids %s but names %s",
                   same_id ? "equal" : "differ", same_name ? "equal" : "differ");
    }
    buf_free(&a);
    buf_free(&b);
    return 0;
}
