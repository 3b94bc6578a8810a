/*
 * bdi.c — a mount's read-ahead (bdi.h).
 */
#include "bdi.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"

/* The field of line [p, end) that starts after `skip` spaces: its start and
 * length, or -1 if the line has fewer fields. */
static int field(const char *p, const char *end, int skip, const char **f, size_t *len)
{
    for (int i = 0; i < skip; i++) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        if (!sp)
            return -1;
        p = sp + 1;
    }
    const char *sp = memchr(p, ' ', (size_t)(end - p));
    *f = p;
    *len = (size_t)((sp ? sp : end) - p);
    return 0;
}

static int octal(char c)
{
    return c >= '0' && c <= '7' ? c - '0' : -1;
}

/* Whether the escaped mount point m[0, mlen) is path. */
static int same_path(const char *m, size_t mlen, const char *path)
{
    size_t i = 0;
    for (; i < mlen; path++) {
        if (!*path)
            return 0;
        char c = m[i];
        if (c == '\\' && i + 3 < mlen && octal(m[i + 1]) >= 0 && octal(m[i + 2]) >= 0 &&
            octal(m[i + 3]) >= 0) {
            c = (char)(octal(m[i + 1]) * 64 + octal(m[i + 2]) * 8 + octal(m[i + 3]));
            i += 4;
        } else {
            i++;
        }
        if (*path != c)
            return 0;
    }
    return *path == '\0';
}

/* The " - " that ends the optional fields in [p, end), or NULL. */
static const char *separator(const char *p, const char *end)
{
    while ((p = memchr(p, ' ', (size_t)(end - p))) != NULL && end - p >= 3) {
        if (p[1] == '-' && p[2] == ' ')
            return p;
        p++;
    }
    return NULL;
}

int bdi_find(const char *mountinfo, const char *path, char *out, size_t n)
{
    int found = -1;
    for (const char *p = mountinfo; *p;) {
        const char *end = strchr(p, '\n');
        if (!end)
            end = p + strlen(p);
        /* "36 35 0:52 / /mnt rw,nosuid - fuse.kombofs kombofs rw,...": ids,
         * major:minor, root, mount point, options, optional fields up to
         * "-", then the type. */
        const char *dev, *mnt, *sep;
        size_t devlen, mntlen;
        if (field(p, end, 2, &dev, &devlen) == 0 && field(p, end, 4, &mnt, &mntlen) == 0 &&
            (sep = separator(mnt + mntlen, end)) != NULL) {
            const char *type = sep + 3;
            size_t tlen = (size_t)(end - type);
            const char *sp = memchr(type, ' ', tlen);
            if (sp)
                tlen = (size_t)(sp - type);
            int fuse = (tlen == 4 && memcmp(type, "fuse", 4) == 0) ||
                       (tlen > 5 && memcmp(type, "fuse.", 5) == 0);
            if (fuse && devlen < n && devlen < BDI_DEV_SIZE && same_path(mnt, mntlen, path)) {
                memcpy(out, dev, devlen);
                out[devlen] = '\0';
                found = 0;
            }
        }
        p = *end ? end + 1 : end;
    }
    return found;
}

int bdi_of_mount(const char *path, char *out, size_t n)
{
    int fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct buf text = BUF_INIT;
    char chunk[8192];
    ssize_t got;
    while ((got = read(fd, chunk, sizeof chunk)) > 0)
        buf_add(&text, chunk, (size_t)got);
    close(fd);
    int rc = -1;
    if (got == 0 && text.len) {
        buf_addc(&text, '\0');
        rc = bdi_find(text.data, path, out, n);
    }
    buf_free(&text);
    return rc;
}

int bdi_set_read_ahead(const char *dev, unsigned kb)
{
    char path[128], value[16];
    if (strchr(dev, '/') || snprintf(path, sizeof path, "/sys/class/bdi/%s/read_ahead_kb", dev) >=
                                (int)sizeof path)
        return -EINVAL;
    int len = snprintf(value, sizeof value, "%u\n", kb);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = write(fd, value, (size_t)len) == len ? 0 : -errno;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    return rc;
}
