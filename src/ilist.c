#include "ilist.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"

static void *xrealloc(void *p, size_t n, size_t size)
{
    if (size && n > (size_t)-1 / size)
        abort();
    p = realloc(p, n * size);
    if (!p && n)
        abort();
    return p;
}

void ilist_push(struct ilist *l, const char *id)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->ids = xrealloc(l->ids, l->cap, sizeof *l->ids);
    }
    char *copy = strdup(id);
    if (!copy)
        abort();
    l->ids[l->n++] = copy;
}

void ilist_free(struct ilist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->ids[i]);
    free(l->ids);
    l->ids = NULL;
    l->n = l->cap = 0;
}

static int blank(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static int id_byte(unsigned char c)
{
    return c > 0x20 && c < 0x7f;
}

int ilist_valid_id(const char *id)
{
    size_t n = 0;
    if (!id)
        return 0;
    for (; id[n]; n++)
        if (!id_byte((unsigned char)id[n]) || n >= ILIST_ID_MAX)
            return 0;
    return n > 0;
}

long ilist_find(const struct ilist *l, const char *id)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->ids[i], id) == 0)
            return (long)i;
    return -1;
}

__attribute__((format(printf, 5, 6)))
static int line_error(char *err, size_t errlen, const char *name, unsigned long line,
                      const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    snprintf(err, errlen, "%s:%lu: %s", name, line, why);
    return -1;
}

/* Why byte c cannot be in an id (c is not blank and not an id byte). */
static const char *bad_byte(unsigned char c)
{
    if (c == 0)
        return "a NUL byte (not a text file?)";
    if (c >= 0x80)
        return "a non-ASCII byte";
    return "a control byte";
}

/* One line (without its LF; a CR before the LF is removed here). Sets *id
 * and *idlen to the id, or *idlen to 0 for a blank or comment line. */
static int parse_line(const char *line, size_t n, const char **id, size_t *idlen,
                      const char *name, unsigned long lineno, char *err, size_t errlen)
{
    if (memchr(line, '\0', n))
        return line_error(err, errlen, name, lineno, "%s", bad_byte(0));
    if (n && line[n - 1] == '\r')
        n--;
    while (n && blank((unsigned char)line[n - 1]))
        n--;
    size_t i = 0;
    while (i < n && blank((unsigned char)line[i]))
        i++;
    *idlen = 0;
    if (i == n || line[i] == '#')
        return 0;
    size_t start = i;
    for (; i < n && !blank((unsigned char)line[i]); i++) {
        unsigned char c = (unsigned char)line[i];
        if (!id_byte(c))
            return line_error(err, errlen, name, lineno, "%s (0x%02x) in an id (printable ASCII only)",
                              bad_byte(c), c);
    }
    if (i - start > ILIST_ID_MAX)
        return line_error(err, errlen, name, lineno, "id longer than %d bytes (%zu)",
                          ILIST_ID_MAX, i - start);
    *id = line + start;
    *idlen = i - start;
    while (i < n && blank((unsigned char)line[i]))
        i++;
    if (i < n && line[i] != '#') {
        unsigned char c = (unsigned char)line[i];
        if (!id_byte(c))
            return line_error(err, errlen, name, lineno, "%s (0x%02x) after the id", bad_byte(c),
                              c);
        return line_error(err, errlen, name, lineno,
                          "two ids on one line (a comment after an id needs a blank before '#')");
    }
    return 0;
}

struct at {
    const char *id;
    unsigned long line;
};

static int cmp_at(const void *a, const void *b)
{
    const struct at *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    if (c)
        return c;
    return (x->line > y->line) - (x->line < y->line);
}

/* The first line (in file order) whose id an earlier line already has. */
static int check_duplicates(const struct ilist *l, const unsigned long *lines,
                            const char *name, char *err, size_t errlen)
{
    if (l->n < 2)
        return 0;
    struct at *v = xrealloc(NULL, l->n, sizeof *v);
    for (size_t i = 0; i < l->n; i++)
        v[i] = (struct at){ l->ids[i], lines[i] };
    qsort(v, l->n, sizeof *v, cmp_at);
    size_t dup = 0;
    for (size_t i = 1; i < l->n; i++)
        if (strcmp(v[i].id, v[i - 1].id) == 0 && (!dup || v[i].line < v[dup].line))
            dup = i;
    int rc = 0;
    if (dup) {
        /* the earliest line with this id: the start of its run */
        size_t first = dup;
        while (first && strcmp(v[first - 1].id, v[dup].id) == 0)
            first--;
        rc = line_error(err, errlen, name, v[dup].line, "duplicate id '%s' (also on line %lu)",
                        v[dup].id, v[first].line);
    }
    free(v);
    return rc;
}

int ilist_parse(const char *text, size_t len, const char *name, struct ilist *out,
                char *err, size_t errlen)
{
    struct ilist l = ILIST_INIT;
    unsigned long *lines = NULL;
    size_t lcap = 0, pos = 0;
    unsigned long lineno = 0;

    *out = (struct ilist)ILIST_INIT;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        pos = 3;
    while (pos < len) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        const char *id = NULL;
        size_t idlen = 0;
        pos += n + (nl != NULL);
        lineno++;
        if (parse_line(line, n, &id, &idlen, name, lineno, err, errlen) < 0)
            goto fail;
        if (!idlen)
            continue;
        char tmp[ILIST_ID_MAX + 1];
        memcpy(tmp, id, idlen);
        tmp[idlen] = '\0';
        ilist_push(&l, tmp);
        if (l.n > lcap) {
            lcap = l.cap;
            lines = xrealloc(lines, lcap, sizeof *lines);
        }
        lines[l.n - 1] = lineno;
    }
    if (check_duplicates(&l, lines, name, err, errlen) < 0)
        goto fail;
    free(lines);
    *out = l;
    return 0;
fail:
    free(lines);
    ilist_free(&l);
    return -1;
}

int ilist_read(const char *path, struct ilist *out, char *err, size_t errlen)
{
    struct buf b = BUF_INIT;
    struct stat st;
    *out = (struct ilist)ILIST_INIT;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open integrations file '%s': %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "cannot read integrations file '%s': %s", path, strerror(EISDIR));
        close(fd);
        return -1;
    }
    for (;;) {
        buf_reserve(&b, 65536);
        ssize_t r = read(fd, b.data + b.len, b.cap - b.len - 1);  /* room for the NUL */
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "cannot read integrations file '%s': %s", path,
                     strerror(errno));
            goto fail;
        }
        if (r == 0)
            break;
        b.len += (size_t)r;
        b.data[b.len] = '\0';
        if (b.len > ILIST_FILE_MAX) {
            snprintf(err, errlen, "integrations file '%s' is larger than %u MiB", path,
                     ILIST_FILE_MAX >> 20);
            goto fail;
        }
    }
    close(fd);
    int rc = ilist_parse(b.data ? b.data : "", b.len, path, out, err, errlen);
    buf_free(&b);
    return rc;
fail:
    close(fd);
    buf_free(&b);
    return -1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A sorted copy of the list's pointers, for bsearch. */
static const char **sorted(const struct ilist *l)
{
    const char **v = xrealloc(NULL, l->n ? l->n : 1, sizeof *v);
    for (size_t i = 0; i < l->n; i++)
        v[i] = l->ids[i];
    qsort(v, l->n, sizeof *v, cmp_str);
    return v;
}

/* The ids of a that b does not have, in a's order. */
static void minus(const struct ilist *a, const struct ilist *b, struct ilist *out)
{
    const char **v = sorted(b);
    *out = (struct ilist)ILIST_INIT;
    for (size_t i = 0; i < a->n; i++)
        if (!bsearch(&a->ids[i], v, b->n, sizeof *v, cmp_str))
            ilist_push(out, a->ids[i]);
    free(v);
}

void ilist_diff(const struct ilist *old, const struct ilist *new, struct ilist *added,
                struct ilist *removed)
{
    minus(new, old, added);
    minus(old, new, removed);
}
