#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "ilist.h"
#include "tap.h"

static char err[1024];

static int parse(const char *text, size_t len, struct ilist *l)
{
    err[0] = '\0';
    return ilist_parse(text, len, "ids.txt", l, err, sizeof err);
}

#define PARSE_S(s, l) parse((s), sizeof(s) - 1, (l))

/* The list equals the NULL-terminated ids. */
static int is(const struct ilist *l, const char *const *ids)
{
    size_t n = 0;
    for (; ids[n]; n++)
        if (n >= l->n || strcmp(l->ids[n], ids[n]) != 0)
            return 0;
    return n == l->n;
}

#define IDS(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define NONE ((const char *const[]){ NULL })

static void test_good(void)
{
    struct ilist l;
    static const char text[] =
        "# integrations of ACME's customers\n"
        "personio:Q4vX8kLm2PzR7tYb3NcW9sHd\n"
        "\n"
        "   \t\n"
        "  # indented comment\n"
        "  workday:abc   # Müller GmbH, a comment may be UTF-8\n"
        "bamboohr:x\t#tab before the comment\n"
        "hibob:y   \t \n"
        "a#b\n"
        "#last";
    int rc = PARSE_S(text, &l);
    ok(rc == 0, "a file with comments, blanks and trailing comments parses (%s)", err);
    ok(is(&l, IDS("personio:Q4vX8kLm2PzR7tYb3NcW9sHd", "workday:abc", "bamboohr:x", "hibob:y",
                  "a#b")),
       "the ids in file order; '#' inside a word is part of the id");
    ilist_free(&l);
    ok(l.ids == NULL && l.n == 0, "ilist_free leaves an empty list");

    rc = PARSE_S("a:1\r\nb:2 \r\n# c\r\n\r\nc:3 # x\r\n", &l);
    ok(rc == 0 && is(&l, IDS("a:1", "b:2", "c:3")), "CRLF line ends (%s)", err);
    ilist_free(&l);

    rc = PARSE_S("a:1\nb:2", &l);
    ok(rc == 0 && is(&l, IDS("a:1", "b:2")), "no final newline");
    ilist_free(&l);
    rc = PARSE_S("a:1\r", &l);
    ok(rc == 0 && is(&l, IDS("a:1")), "a final CR without LF");
    ilist_free(&l);

    rc = parse("", 0, &l);
    ok(rc == 0 && l.n == 0, "empty file: no ids");
    ilist_free(&l);
    rc = parse(NULL, 0, &l);
    ok(rc == 0 && l.n == 0, "no text at all: no ids");
    ilist_free(&l);
    rc = PARSE_S("# nothing here yet\n#\n   # really\n\n", &l);
    ok(rc == 0 && l.n == 0, "comment-only file: no ids");
    ilist_free(&l);
    rc = PARSE_S("\n\n \t \n", &l);
    ok(rc == 0 && l.n == 0, "blank-only file: no ids");
    ilist_free(&l);

    rc = PARSE_S("\xEF\xBB\xBFpersonio:a\n", &l);
    ok(rc == 0 && is(&l, IDS("personio:a")), "a UTF-8 byte order mark is skipped (%s)", err);
    ilist_free(&l);

    char longid[ILIST_ID_MAX + 2];
    memset(longid, 'x', ILIST_ID_MAX);
    longid[ILIST_ID_MAX] = '\n';
    longid[ILIST_ID_MAX + 1] = '\0';
    rc = parse(longid, strlen(longid), &l);
    ok(rc == 0 && l.n == 1 && strlen(l.ids[0]) == ILIST_ID_MAX, "an id of 255 bytes is fine");
    ilist_free(&l);

    rc = PARSE_S("!\"$%&'()*+,-./0123456789:;<=>?@AZ[\\]^_`az{|}~\n", &l);
    ok(rc == 0 && l.n == 1, "every printable ASCII byte may be in an id (%s)", err);
    ilist_free(&l);
}

static void expect_error(const char *text, size_t len, const char *msg, const char *desc)
{
    struct ilist l = { (char **)1, 99, 0 };   /* garbage: must come back empty */
    int rc = parse(text, len, &l);
    ok(rc < 0 && strcmp(err, msg) == 0 && l.n == 0 && l.ids == NULL, "%s: %s", desc, err);
    if (rc == 0)
        ilist_free(&l);
}

#define ERR_S(s, msg, desc) expect_error((s), sizeof(s) - 1, (msg), (desc))

static void test_bad(void)
{
    ERR_S("a:1\nb:2\nc:3 d:4\n", "ids.txt:3: two ids on one line (a comment after an id needs a blank before '#')",
          "two ids on one line");
    ERR_S("a:1\n\tb:2\tc\n", "ids.txt:2: two ids on one line (a comment after an id needs a blank before '#')",
          "two ids separated by a tab");
    ERR_S("a:1\nb\x01:2\n", "ids.txt:2: a control byte (0x01) in an id (printable ASCII only)",
          "a control byte");
    ERR_S("a\x7f\n", "ids.txt:1: a control byte (0x7f) in an id (printable ASCII only)", "DEL");
    ERR_S("a\vb\n", "ids.txt:1: a control byte (0x0b) in an id (printable ASCII only)",
          "a vertical tab is not a blank");
    ERR_S("a\rb\n", "ids.txt:1: a control byte (0x0d) in an id (printable ASCII only)",
          "a CR inside a line");
    ERR_S("a:1 \x1b\n", "ids.txt:1: a control byte (0x1b) after the id", "a control byte after the id");
    ERR_S("\n\npersonio:M\xc3\xbcller\n", "ids.txt:3: a non-ASCII byte (0xc3) in an id (printable ASCII only)",
          "non-ASCII in an id");
    ERR_S("a:1\n# x\0y\n", "ids.txt:2: a NUL byte (not a text file?)", "a NUL byte, even in a comment");
    ERR_S("a:1\nb:2\na:1 # again\n", "ids.txt:3: duplicate id 'a:1' (also on line 1)",
          "a duplicate id");
    ERR_S("z\ny\nx\ny\nz\nx\n", "ids.txt:4: duplicate id 'y' (also on line 2)",
          "the first duplicate in file order is named");
    ERR_S("\xEF\xBB\xBF\xEF\xBB\xBF" "a\n", "ids.txt:1: a non-ASCII byte (0xef) in an id (printable ASCII only)",
          "only one byte order mark");

    char longid[ILIST_ID_MAX + 8];
    snprintf(longid, sizeof longid, "a\n%0*d\n", ILIST_ID_MAX + 1, 7);
    expect_error(longid, strlen(longid), "ids.txt:2: id longer than 255 bytes (256)",
                 "an id of 256 bytes");
}

static void test_many(void)
{
    struct buf b = BUF_INIT;
    buf_adds(&b, "# 10,000 integrations\r\n");
    for (int i = 0; i < 10000; i++)
        buf_printf(&b, "personio:%08dQ4vX8kLm2PzR7tYb3%s\r\n", (i * 7919) % 10000,
                   i % 100 == 0 ? "  # every hundredth" : "");
    struct ilist l;
    int rc = parse(b.data, b.len, &l);
    int order = rc == 0 && l.n == 10000;
    for (int i = 0; order && i < 10000; i++) {
        char want[64];
        snprintf(want, sizeof want, "personio:%08dQ4vX8kLm2PzR7tYb3", (i * 7919) % 10000);
        order = strcmp(l.ids[i], want) == 0;
    }
    ok(order, "10,000 ids, CRLF, in file order (%s)", err);
    ilist_free(&l);

    buf_printf(&b, "personio:%08dQ4vX8kLm2PzR7tYb3\n", 1234 * 7919 % 10000);
    expect_error(b.data, b.len, "ids.txt:10002: duplicate id 'personio:00002046Q4vX8kLm2PzR7tYb3' (also on line 1236)",
                 "a duplicate after 10,000 ids");
    buf_free(&b);
}

static void test_read(void)
{
    char path[64], dir[64];
    struct ilist l;
    snprintf(path, sizeof path, "/tmp/kombofs-test-ilist-%d", (int)getpid());
    snprintf(dir, sizeof dir, "/tmp/kombofs-test-ilist-dir-%d", (int)getpid());

    FILE *f = fopen(path, "w");
    fputs("a:1\n# b\nc:2\n", f);
    fclose(f);
    int rc = ilist_read(path, &l, err, sizeof err);
    ok(rc == 0 && is(&l, IDS("a:1", "c:2")), "ilist_read reads a file (%s)", err);
    ilist_free(&l);

    f = fopen(path, "w");
    fputs("a:1\na:1 b\n", f);
    fclose(f);
    char want[256];
    snprintf(want, sizeof want, "%s:2: two ids on one line", path);
    rc = ilist_read(path, &l, err, sizeof err);
    ok(rc < 0 && strncmp(err, want, strlen(want)) == 0, "a parse error names the file: %s", err);

    f = fopen(path, "w");
    fclose(f);
    rc = ilist_read(path, &l, err, sizeof err);
    ok(rc == 0 && l.n == 0, "an empty file");
    ilist_free(&l);
    unlink(path);

    rc = ilist_read(path, &l, err, sizeof err);
    snprintf(want, sizeof want, "cannot open integrations file '%s': No such file or directory",
             path);
    ok(rc < 0 && strcmp(err, want) == 0 && l.n == 0, "a missing file: %s", err);

    mkdir(dir, 0700);
    rc = ilist_read(dir, &l, err, sizeof err);
    snprintf(want, sizeof want, "cannot read integrations file '%s': Is a directory", dir);
    ok(rc < 0 && strcmp(err, want) == 0, "a directory: %s", err);
    rmdir(dir);
}

static void test_valid_find(void)
{
    char id[ILIST_ID_MAX + 2];
    memset(id, 'a', sizeof id - 1);
    id[ILIST_ID_MAX] = '\0';
    ok(ilist_valid_id("personio:Q4vX8kLm2PzR7tYb3NcW9sHd") && ilist_valid_id(id) &&
       ilist_valid_id("a#b"), "valid ids");
    id[ILIST_ID_MAX] = 'a';
    id[ILIST_ID_MAX + 1] = '\0';
    ok(!ilist_valid_id(id) && !ilist_valid_id("") && !ilist_valid_id(NULL) &&
       !ilist_valid_id("a b") && !ilist_valid_id("a\tb") && !ilist_valid_id("a\n") &&
       !ilist_valid_id("M\xc3\xbcller") && !ilist_valid_id("\x7f"),
       "invalid ids: 256 bytes, empty, blanks, control, non-ASCII");

    struct ilist l = ILIST_INIT;
    ilist_push(&l, "a");
    ilist_push(&l, "b");
    ok(ilist_find(&l, "b") == 1 && ilist_find(&l, "a") == 0 && ilist_find(&l, "c") == -1,
       "ilist_find");
    ilist_free(&l);
}

static void test_diff(void)
{
    struct ilist old = ILIST_INIT, new = ILIST_INIT, added, removed;
    const char *o[] = { "e", "a", "b", "c", "d" };
    const char *n[] = { "z", "c", "a", "y", "x" };
    for (int i = 0; i < 5; i++) {
        ilist_push(&old, o[i]);
        ilist_push(&new, n[i]);
    }
    ilist_diff(&old, &new, &added, &removed);
    ok(is(&added, IDS("z", "y", "x")), "added: in the new list's order");
    ok(is(&removed, IDS("e", "b", "d")), "removed: in the old list's order");
    ilist_free(&added);
    ilist_free(&removed);

    ilist_diff(&old, &old, &added, &removed);
    ok(added.n == 0 && removed.n == 0, "no change: nothing added or removed");
    ilist_free(&added);
    ilist_free(&removed);

    struct ilist empty = ILIST_INIT;
    ilist_diff(&empty, &new, &added, &removed);
    ok(is(&added, IDS("z", "c", "a", "y", "x")) && is(&removed, NONE),
       "from an empty list: everything added");
    ilist_free(&added);
    ilist_free(&removed);
    ilist_diff(&old, &empty, &added, &removed);
    ok(is(&added, NONE) && is(&removed, IDS("e", "a", "b", "c", "d")),
       "to an empty list: everything removed");
    ilist_free(&added);
    ilist_free(&removed);
    ilist_free(&old);
    ilist_free(&new);
}

int main(void)
{
    test_good();
    test_bad();
    test_many();
    test_read();
    test_valid_find();
    test_diff();
    return tap_done_testing();
}
