#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "ilist.h"
#include "roster.h"
#include "tap.h"

static char err[1024];
static char dir[64], path[128];

static struct roster *reopen(struct roster *r)
{
    roster_close(r);
    err[0] = '\0';
    r = roster_open(dir, err, sizeof err);
    if (!r)
        diag("roster_open: %s", err);
    return r;
}

/* A fresh directory (and path of its roster) for each group of tests. */
static void fresh_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/kombofs-test-roster-XXXXXX");
    if (!mkdtemp(dir))
        abort();
    snprintf(path, sizeof path, "%s/" ROSTER_FILE_NAME, dir);
}

static void rm_dir(void)
{
    char p[160];
    const char *sfx[] = { "", "-wal", "-shm", "-journal" };
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s%s", path, sfx[i]);
        unlink(p);
    }
    rmdir(dir);
}

/* One line of the listing: "id slot source flags origin". */
static int collect(const struct roster_entry *e, void *ctx)
{
    struct buf *b = ctx;
    buf_printf(b, "%s %u %s%s%s%s %s\n", e->id, e->slot, roster_source_name(e->source),
               e->removed ? " removed" : "", e->deleted ? " deleted" : "",
               e->paused ? " paused" : "", e->origin_id ? e->origin_id : "-");
    return 0;
}

static char listing[8192];

/* The listing on one line, for a TAP description. */
static const char *flat(const char *s)
{
    static char out[8192];
    size_t i = 0;
    for (; s[i] && i + 1 < sizeof out; i++)
        out[i] = s[i] == '\n' ? ';' : s[i];
    out[i] = '\0';
    return out;
}

static const char *list(struct roster *r)
{
    struct buf b = BUF_INIT;
    buf_adds(&b, "");
    int rc = roster_list(r, collect, &b);
    snprintf(listing, sizeof listing, "%s", rc == 0 ? b.data : "(error)");
    buf_free(&b);
    return listing;
}

/* The slot of id, 0 if unknown. */
struct find { const char *id; unsigned slot; int removed; };

static int find_cb(const struct roster_entry *e, void *ctx)
{
    struct find *f = ctx;
    if (strcmp(e->id, f->id) == 0) {
        f->slot = e->slot;
        f->removed = e->removed;
    }
    return 0;
}

static unsigned slot_of(struct roster *r, const char *id, int *removed)
{
    struct find f = { id, 0, 0 };
    roster_list(r, find_cb, &f);
    if (removed)
        *removed = f.removed;
    return f.slot;
}

static int stop_at_second(const struct roster_entry *e, void *ctx)
{
    (void)e;
    return ++*(int *)ctx == 2 ? 42 : 0;
}

static int read_all(const char *p, struct buf *b)
{
    FILE *f = fopen(p, "rb");
    char tmp[4096];
    size_t n;
    if (!f)
        return -1;
    buf_reset(b);
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        buf_add(b, tmp, n);
    fclose(f);
    return 0;
}

static int sql_exec(const char *p, const char *text)
{
    sqlite3 *db;
    int rc = sqlite3_open(p, &db);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, text, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        diag("sql: %s", sqlite3_errmsg(db));
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}

static struct ilist mklist(const char *const *ids)
{
    struct ilist l = ILIST_INIT;
    for (; *ids; ids++)
        ilist_push(&l, *ids);
    return l;
}

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

/* Apply FILE = ids; the ids added and removed must be as given. */
static int apply(struct roster *r, const char *const *file, const char *const *want_added,
                 const char *const *want_removed)
{
    struct ilist l = mklist(file), a, d;
    int rc = roster_apply_file(r, &l, &a, &d);
    int good = rc == 0 && is(&a, want_added) && is(&d, want_removed);
    if (!good) {
        diag("apply: rc %d, %zu added, %zu removed: %s", rc, a.n, d.n,
             rc == -EIO ? roster_errmsg(r) : "");
        for (size_t i = 0; rc == 0 && i < a.n; i++)
            diag("  added %s", a.ids[i]);
        for (size_t i = 0; rc == 0 && i < d.n; i++)
            diag("  removed %s", d.ids[i]);
    }
    if (rc == 0) {
        ilist_free(&a);
        ilist_free(&d);
    }
    ilist_free(&l);
    return good;
}

static void test_basics(void)
{
    unsigned slot = 0;
    struct stat st;
    fresh_dir();
    struct roster *r = roster_open(dir, err, sizeof err);
    ok(r != NULL, "a roster is created (%s)", err);
    int srv = stat(path, &st);
    ok(srv == 0 && (st.st_mode & 0777) == 0600, "mode 0600 (%o)",
       srv == 0 ? (unsigned)st.st_mode & 0777 : 0u);
    ok(strcmp(roster_path(r), path) == 0, "its path: %s", roster_path(r));

    ok(roster_add(r, "personio:a", ROSTER_CONTROL, &slot) == 0 && slot == 1, "first: slot 1");
    ok(roster_add(r, "workday:b", ROSTER_DISCOVERED, &slot) == 0 && slot == 2, "second: slot 2");
    ok(roster_add(r, "hibob:c", ROSTER_CONTROL, &slot) == 0 && slot == 3, "third: slot 3");
    slot = 0;
    ok(roster_add(r, "personio:a", ROSTER_DISCOVERED, &slot) == 1 && slot == 1,
       "adding a present id: 1, a no-op, its slot");
    ok(roster_add(r, "", ROSTER_CONTROL, NULL) == -EINVAL &&
       roster_add(r, "a b", ROSTER_CONTROL, NULL) == -EINVAL &&
       roster_add(r, "x\n", ROSTER_CONTROL, NULL) == -EINVAL &&
       strcmp(roster_errmsg(r), "not a valid integration id (1 to 255 printable ASCII bytes)") == 0,
       "a malformed id: -EINVAL");
    ok(roster_add(r, "x:y", (enum roster_source)7, NULL) == -EINVAL, "a bad source: -EINVAL");

    r = reopen(r);
    ok(r && strcmp(list(r), "personio:a 1 control -\n"
                            "workday:b 2 discovered -\n"
                            "hibob:c 3 control -\n") == 0,
       "slots and sources survive a reopen: %s", flat(listing));

    ok(roster_remove(r, "workday:b") == 0, "remove: 0");
    ok(roster_remove(r, "workday:b") == -EALREADY &&
       strcmp(roster_errmsg(r), "integration 'workday:b' is already removed") == 0,
       "remove again: -EALREADY (%s)", roster_errmsg(r));
    ok(roster_remove(r, "nope:1") == -ENOENT &&
       strcmp(roster_errmsg(r), "integration 'nope:1' is not known") == 0,
       "remove of an unknown id: -ENOENT (%s)", roster_errmsg(r));
    ok(roster_purge(r, "nope:2") == -ENOENT &&
       strcmp(roster_errmsg(r), "integration 'nope:2' is not known") == 0,
       "purge of an unknown id: -ENOENT (%s)", roster_errmsg(r));
    ok(roster_purge(r, "hibob:c") == 0, "purge of an active id: 0");
    ok(roster_purge(r, "hibob:c") == -ENOENT, "purge again: -ENOENT");
    ok(roster_add(r, "sap:d", ROSTER_CONTROL, &slot) == 0 && slot == 4,
       "a purged slot is not reused while a higher one was given: slot 4 (%u)", slot);
    ok(roster_add(r, "workday:b", ROSTER_CONTROL, &slot) == 0 && slot == 2,
       "adding a removed id makes it active again, same slot");

    ok(roster_set_origin(r, "personio:a", "acme-42") == 0 &&
       roster_set_flag(r, "sap:d", ROSTER_PAUSED, 1) == 0 &&
       roster_set_flag(r, "sap:d", ROSTER_DELETED, 1) == 0 && roster_remove(r, "sap:d") == 0,
       "origin and flags set");
    ok(roster_set_origin(r, "nope:1", "x") == -ENOENT &&
       roster_set_flag(r, "nope:1", ROSTER_PAUSED, 1) == -ENOENT,
       "origin and flags of an unknown id: -ENOENT");
    ok(roster_set_flag(r, "sap:d", (enum roster_flag)9, 1) == -EINVAL, "an unknown flag: -EINVAL");

    r = reopen(r);
    ok(r && strcmp(list(r), "personio:a 1 control acme-42\n"
                            "workday:b 2 control -\n"
                            "sap:d 4 control removed deleted paused -\n") == 0,
       "origin, flags and the re-activation survive a reopen: %s", flat(listing));
    ok(roster_add(r, "sap:e", ROSTER_FILE, &slot) == 0 && slot == 5,
       "the highest slot ever given survives a reopen: slot 5 (%u)", slot);
    ok(roster_add(r, "sap:d", ROSTER_FILE, &slot) == 0 && slot == 4,
       "re-activating keeps the flags but removed");
    ok(roster_set_origin(r, "personio:a", NULL) == 0 &&
       roster_set_flag(r, "sap:d", ROSTER_PAUSED, 0) == 0, "origin cleared, flag off");
    ok(strcmp(list(r), "personio:a 1 control -\n"
                       "workday:b 2 control -\n"
                       "sap:d 4 file deleted -\n"
                       "sap:e 5 file -\n") == 0,
       "listed in slot order: %s", flat(listing));
    int calls = 0;
    ok(roster_list(r, stop_at_second, &calls) == 42 && calls == 2,
       "a non-zero return of the callback stops the walk and is returned");
    roster_close(r);
    rm_dir();
}

/* SPEC §9: reading FILE applies only what changed in FILE since it was last read. */
static void test_file_rules(void)
{
    unsigned slot;
    int removed;
    fresh_dir();
    struct roster *r = roster_open(dir, err, sizeof err);

    ok(apply(r, IDS("x:1", "y:2"), IDS("x:1", "y:2"), NONE),
       "first read: every line is added, in FILE's order");
    ok(strcmp(list(r), "x:1 1 file -\ny:2 2 file -\n") == 0, "source file: %s", flat(listing));
    r = reopen(r);
    ok(apply(r, IDS("x:1", "y:2"), NONE, NONE), "FILE unchanged: nothing happens");

    ok(roster_remove(r, "x:1") == 0, "x removed through .control");
    r = reopen(r);
    ok(apply(r, IDS("x:1", "y:2"), NONE, NONE) && slot_of(r, "x:1", &removed) == 1 && removed,
       "an unchanged line does not bring back an id removed through .control (restart)");

    ok(roster_add(r, "z:3", ROSTER_CONTROL, &slot) == 0 && slot == 3, "z added through .control");
    r = reopen(r);
    ok(apply(r, IDS("x:1", "y:2"), NONE, NONE) && slot_of(r, "z:3", &removed) == 3 && !removed,
       "an id added through .control stays when FILE does not list it");
    ok(roster_add(r, "w:4", ROSTER_DISCOVERED, NULL) == 0 &&
       apply(r, IDS("x:1", "y:2"), NONE, NONE) && slot_of(r, "w:4", &removed) == 4 && !removed,
       "so does a discovered one");

    r = reopen(r);
    ok(apply(r, IDS("y:2"), NONE, NONE), "a line removed for an id already removed: nothing to stop");
    ok(apply(r, IDS("y:2", "x:1"), IDS("x:1"), NONE) && slot_of(r, "x:1", &removed) == 1 &&
       !removed, "a line added back brings the id back (removed through .control), same slot");

    ok(apply(r, IDS("x:1"), NONE, IDS("y:2")) && slot_of(r, "y:2", &removed) == 2 && removed,
       "a line removed is removed, its slot kept");
    r = reopen(r);
    ok(apply(r, IDS("x:1"), NONE, NONE) && slot_of(r, "y:2", &removed) == 2 && removed,
       "and stays removed");
    ok(apply(r, IDS("x:1", "y:2"), IDS("y:2"), NONE) && slot_of(r, "y:2", &removed) == 2 &&
       !removed, "its line added again: active again, same slot");

    ok(roster_purge(r, "y:2") == 0, "y purged through .control (FILE still lists it)");
    r = reopen(r);
    ok(apply(r, IDS("x:1", "y:2"), NONE, NONE) && slot_of(r, "y:2", NULL) == 0,
       "an unchanged line does not bring back a purged id");
    ok(apply(r, IDS("x:1"), NONE, NONE), "its line removed: nothing to stop");
    ok(apply(r, IDS("x:1", "y:2"), IDS("y:2"), NONE) && slot_of(r, "y:2", NULL) == 5,
       "its line added again: added with a new slot (5, not its old 2)");

    /* z came through .control; FILE now lists it, then no longer. */
    ok(apply(r, IDS("z:3", "x:1", "y:2"), NONE, NONE),
       "a line added for an id already active: nothing to start");
    ok(strstr(list(r), "z:3 3 file -\n") != NULL, "its source is now file: %s", flat(listing));
    ok(apply(r, IDS("x:1", "y:2"), NONE, IDS("z:3")) && slot_of(r, "z:3", &removed) == 3 &&
       removed, "its line removed: removed");
    ok(roster_add(r, "q:6", ROSTER_CONTROL, NULL) == 0 && roster_remove(r, "q:6") == 0 &&
       apply(r, IDS("x:1", "y:2", "q:6"), IDS("q:6"), NONE),
       "a line added for an id removed through .control: active again");

    ok(apply(r, IDS("n:1", "x:1", "n:2", "y:2", "n:3"), IDS("n:1", "n:2", "n:3"), IDS("q:6")) &&
       apply(r, IDS("n:2"), NONE, IDS("n:1", "x:1", "y:2", "n:3")),
       "added in FILE's order, removed in the previous FILE's order");
    r = reopen(r);
    ok(strcmp(list(r), "x:1 1 file removed -\n"
                       "z:3 3 file removed -\n"
                       "w:4 4 discovered -\n"
                       "y:2 5 file removed -\n"
                       "q:6 6 file removed -\n"
                       "n:1 7 file removed -\n"
                       "n:2 8 file -\n"
                       "n:3 9 file removed -\n") == 0,
       "the whole roster after all that: %s", flat(listing));

    struct ilist bad = mklist(IDS("n:2", "a b")), a, d;
    ok(roster_apply_file(r, &bad, &a, &d) == -EINVAL && a.n == 0 && d.n == 0,
       "a malformed id in the list: -EINVAL");
    ilist_free(&bad);
    ok(apply(r, IDS("n:2"), NONE, NONE), "and nothing was applied");
    struct ilist empty = ILIST_INIT;
    ok(roster_apply_file(r, &empty, NULL, NULL) == 0 && slot_of(r, "n:2", &removed) == 8 &&
       removed, "an empty FILE removes every line; the lists are optional");
    roster_close(r);
    rm_dir();
}

static void test_slots(void)
{
    unsigned slot = 0;
    fresh_dir();
    struct roster *r = roster_open(dir, err, sizeof err);
    ok(roster_add(r, "p:1", ROSTER_FILE, NULL) == 0 && roster_add(r, "p:2", ROSTER_FILE, NULL) == 0 &&
       roster_add(r, "p:3", ROSTER_FILE, NULL) == 0 && roster_purge(r, "p:1") == 0 &&
       roster_purge(r, "p:3") == 0, "slots 1 to 3 given, 1 and 3 purged");
    roster_close(r);
    ok(sql_exec(path, "UPDATE meta SET value = 65533 WHERE key = 'max_slot'") == 0,
       "the highest slot given set to 65533");
    r = reopen(NULL);
    ok(roster_add(r, "s:1", ROSTER_FILE, &slot) == 0 && slot == 65534, "next: 65534 (%u)", slot);
    ok(roster_add(r, "s:2", ROSTER_FILE, &slot) == 0 && slot == 65535, "next: 65535 (%u)", slot);
    ok(roster_add(r, "s:3", ROSTER_FILE, &slot) == 0 && slot == 1,
       "65535 given: the lowest free slot is reused (%u)", slot);
    ok(roster_add(r, "s:4", ROSTER_FILE, &slot) == 0 && slot == 3, "then the next free (%u)", slot);
    ok(roster_purge(r, "s:2") == 0 && roster_add(r, "s:5", ROSTER_FILE, &slot) == 0 && slot == 4,
       "a purged 65535 does not lower the mark (%u)", slot);
    roster_close(r);
    rm_dir();

    fresh_dir();
    r = roster_open(dir, err, sizeof err);
    roster_close(r);
    ok(sql_exec(path, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 65535)"
                      " INSERT INTO integrations (id, slot, source) SELECT 'x:' || i, i, 'file' FROM n;"
                      " UPDATE meta SET value = 65535 WHERE key = 'max_slot';") == 0,
       "65,535 integrations");
    r = reopen(NULL);
    ok(r && roster_add(r, "one:more", ROSTER_CONTROL, &slot) == -ENOSPC &&
       strstr(roster_errmsg(r), "all 65535 slots are taken"),
       "every slot taken: -ENOSPC (%s)", r ? roster_errmsg(r) : err);
    ok(apply(r, IDS("x:1"), NONE, NONE), "FILE read once");
    struct ilist l = mklist(IDS("x:1", "one:more")), a, d;
    ok(roster_apply_file(r, &l, &a, &d) == -ENOSPC && a.n == 0 && d.n == 0,
       "a FILE line with no slot left: -ENOSPC");
    ilist_free(&l);
    ok(roster_purge(r, "x:777") == 0 && apply(r, IDS("one:more"), IDS("one:more"), IDS("x:1")) &&
       slot_of(r, "one:more", NULL) == 777 && slot_of(r, "x:1", NULL) == 1,
       "nothing of the failed read was applied; after a purge its slot is reused");
    roster_close(r);
    rm_dir();
}

/* roster_open refuses the file and leaves it byte for byte as it was. */
static void expect_refused(const char *needle, const char *desc)
{
    struct buf before = BUF_INIT, after = BUF_INIT;
    read_all(path, &before);
    err[0] = '\0';
    struct roster *r = roster_open(dir, err, sizeof err);
    int same = read_all(path, &after) == 0 && before.len == after.len &&
               memcmp(before.data, after.data, before.len) == 0;
    ok(!r && strstr(err, needle) && !strchr(err, '\n') && same, "%s: %s%s", desc, err,
       same ? "" : " (the file changed)");
    roster_close(r);
    buf_free(&before);
    buf_free(&after);
}

static void test_refused(void)
{
    fresh_dir();
    FILE *f = fopen(path, "w");
    fputs("personio:abc\nthis is not a database, but it is somebody's file\n", f);
    fclose(f);
    expect_refused("is not a SQLite database or is corrupt", "a text file");
    unlink(path);

    ok(sql_exec(path, "CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT);"
                      " INSERT INTO accounts (name) VALUES ('acme');") == 0,
       "another program's SQLite file");
    expect_refused("is not a kombofs roster", "a foreign SQLite database");
    unlink(path);

    struct roster *r = roster_open(dir, err, sizeof err);
    roster_add(r, "a:1", ROSTER_FILE, NULL);
    roster_close(r);
    ok(sql_exec(path, "PRAGMA user_version = 2") == 0, "a roster of schema version 2");
    expect_refused("has schema version 2, newer than this kombofs (1)", "a newer roster");
    ok(sql_exec(path, "PRAGMA user_version = 1") == 0, "back to version 1");
    r = reopen(NULL);
    ok(r && slot_of(r, "a:1", NULL) == 1, "and it opens again");
    roster_close(r);

    /* scribble over the second page: the integrations table */
    struct buf b = BUF_INIT;
    read_all(path, &b);
    size_t page = b.len >= 18 ? ((unsigned char)b.data[16] << 8 | (unsigned char)b.data[17]) : 0;
    if (page == 1)
        page = 65536;
    ok(page >= 512 && b.len >= 2 * page, "the roster has a second page (%zu bytes)", page);
    if (page >= 512 && b.len >= 2 * page) {
        memset(b.data + page, 0xA5, 64);
        f = fopen(path, "wb");
        fwrite(b.data, 1, b.len, f);
        fclose(f);
    }
    buf_free(&b);
    expect_refused("is corrupt (PRAGMA quick_check failed)", "a corrupt roster");
    rm_dir();

    r = roster_open("/nonexistent-kombofs-dir", err, sizeof err);
    ok(!r && strstr(err, "cannot create roster '/nonexistent-kombofs-dir/.kombofs-roster.db': No such file"),
       "a missing directory: %s", err);
}

int main(void)
{
    test_basics();
    test_file_rules();
    test_slots();
    test_refused();
    return tap_done_testing();
}
