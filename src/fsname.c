#include "fsname.h"

static int plain(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
           c == '-';
}

void fsname_escape(const char *id, size_t len, struct buf *out)
{
    static const char hex[] = "0123456789ABCDEF";
    buf_reserve(out, len * 3);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)id[i];
        if (plain(c) && !(i == 0 && c == '.')) {
            buf_addc(out, (char)c);
        } else {
            char esc[3] = { '%', hex[c >> 4], hex[c & 15] };
            buf_add(out, esc, 3);
        }
    }
}
