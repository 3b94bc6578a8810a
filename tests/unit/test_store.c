#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"
#include "tap.h"

static char path[128], err[512];

static char *body_fn(void *ctx, int64_t seq)
{
    char *s = malloc(64);
    snprintf(s, 64, "{\"seq\": %lld, \"tag\": \"%s\"}\n", (long long)seq, (const char *)ctx);
    return s;
}

static int count_cb(void *ctx, const char *name, const struct store_attr *a)
{
    (void)name;
    (void)a;
    (*(int *)ctx)++;
    return 0;
}

static int stale_cb(void *ctx, uint64_t ino, uint64_t node, const char *id,
                    const char *name)
{
    struct store *st = ctx;
    (void)node;
    (void)id;
    (void)name;
    return store_record_delete(st, ino);
}

static void remove_db(void)
{
    char p[160];
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
}

static void test_records(void)
{
    struct stat sb;
    struct store *st = store_open(path, err, sizeof err);
    ok(st != NULL, "a new cache opens (%s)", err);
    ok(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600, "created with mode 0600");

    ok(store_begin(st) == 0, "begin");
    uint64_t a = store_record_insert(st, 0, "A", "A.json", "{}\n", 3, "t1", "r1", 111, 1);
    uint64_t b = store_record_insert(st, 0, "B", "B.json", "[1]\n", 4, NULL, NULL, 222, 1);
    uint64_t c = store_record_insert(st, 2, "A", "A.json", "\"g\"\n", 4, NULL, NULL, 333, 1);
    ok(a >= STORE_INO_RECORD_BASE && b > a && c > b, "inodes from rowids, increasing");
    struct store_reader *r = store_reader(st);
    struct store_attr at;
    ok(r && store_read_lookup(r, 0, "A.json", &at) == 0, "readers do not see uncommitted rows");
    ok(store_commit(st) == 0, "commit");
    ok(store_read_lookup(r, 0, "A.json", &at) == 1 && at.ino == a && at.size == 3 &&
       at.mtime_ns == 111, "lookup after commit");
    ok(store_read_lookup(r, 2, "A.json", &at) == 1 && at.ino == c, "same id in another model");

    uint64_t node = 0;
    ok(store_read_lookup(r, 0, "A.json", &at) == 1 && at.node == a,
       "version 0: the node id is the inode number");
    ok(store_record_update(st, a, "{\"x\":1}\n", 8, "t2", "r1", 444, 1, &node) == 0 &&
       store_read_lookup(r, 0, "A.json", &at) == 1 && at.ino == a && at.size == 8,
       "an update keeps the inode");
    ok(node != a && at.node == node && store_node_ino(node) == a, "and gives a new node id");
    char old[8];
    int model = 7;
    struct store_attr oa;
    ok(store_read_body(r, a, old, 0, sizeof old) == 3 && memcmp(old, "{}\n", 3) == 0 &&
       store_read_record_attr(r, a, &model, &oa) == 1 && model == -1 && oa.size == 3,
       "the old version stays readable under its node");
    ok(store_read_record_attr(r, node, &model, &oa) == 1 && model == 0 && oa.ino == a,
       "the new version under the new node");
    ok(store_record_insert(st, 0, "A", "A.json", "{}", 2, NULL, NULL, 1, 1) == 0,
       "a second record of the same name is refused");
    char buf[16];
    long n = store_read_body(r, node, buf, 2, sizeof buf);
    ok(n == 6 && memcmp(buf, "x\":1}\n", 6) == 0, "read at an offset");
    ok(store_read_body(r, node, buf, 100, sizeof buf) == 0, "read past the end");
    char *id = NULL, *rid = NULL, *chg = NULL;
    ok(store_read_meta(r, node, &id, &rid, &chg) == 1 && strcmp(id, "A") == 0 &&
       strcmp(rid, "r1") == 0 && strcmp(chg, "t2") == 0, "metadata for xattrs");
    free(id), free(rid), free(chg);
    int seen = 0;
    ok(store_read_list(r, 0, 0, 100, count_cb, &seen) == 2 && seen == 2, "list a model");

    ok(store_record_touch(st, b, 2) == 0, "touch marks a generation");
    ok(store_records_stale(st, 0, 2, 10, stale_cb, st) == 1 &&
       store_read_lookup(r, 0, "A.json", &at) == 0 && store_read_lookup(r, 0, "B.json", &at) == 1,
       "sweep removes what the generation did not see");
    uint64_t a3 = store_record_insert(st, 0, "A", "A.json", "{}\n", 3, NULL, NULL, 1, 2);
    ok(a3 > c, "a record that comes back gets a new inode (never reused)");

    int64_t s1 = store_change_add(st, 1000, body_fn, "one");
    int64_t s2 = store_change_add(st, 2000, body_fn, "two");
    ok(s1 == 1 && s2 == 2, "sequence numbers");
    n = store_read_change_body(r, s2, buf, 0, 10);
    ok(n == 10 && memcmp(buf, "{\"seq\": 2,", 10) == 0, "change body built with its seq");
    ok(store_changes_prune(st, 1500, NULL, NULL) == 1, "retention removes old entries");
    int64_t first, last;
    ok(store_read_change_range(r, &first, &last) == 0 && first == 2 && last == 2, "range");
    ok(store_endpoint_set_watermark(st, 0, "2026-01-01T00:00:00.000Z") == 0 &&
       store_endpoint_set_full_at(st, 0, 77) == 0, "endpoint state");
    store_close(st);

    st = store_open(path, err, sizeof err);
    ok(st != NULL, "reopens");
    r = store_reader(st);
    struct store_endpoint ep;
    ok(store_endpoint_get(st, 0, &ep) == 0 && ep.full_at == 77 &&
       strcmp(ep.watermark, "2026-01-01T00:00:00.000Z") == 0, "endpoint state survives");
    store_endpoint_free(&ep);
    ok(store_change_add(st, 3000, body_fn, "three") == 3, "numbering goes on after a restart");
    ok(store_changes_prune(st, 10000, NULL, NULL) == 2, "prune all");
    ok(store_change_add(st, 3000, body_fn, "four") == 4, "numbering never restarts");
    ok(store_read_change_range(r, &first, &last) == 0 && first == 4 && last == 4, "range again");
    store_close(st);
}

/* A "created" entry template: the record goes after "value": (indent 2). */
static char *created_fn(void *ctx, int64_t seq, size_t *split)
{
    char *s = malloc(96);
    int n = snprintf(s, 96, "{\n  \"seq\": %lld,\n  \"tag\": \"%s\",\n  \"value\": ", (long long)seq,
                     (const char *)ctx);
    *split = (size_t)n;
    snprintf(s + n, (size_t)(96 - n), "\n}\n");
    return s;
}

/* The whole text of entry seq, and its size as getattr reports it. */
static char *entry_text(struct store_reader *r, int64_t seq, uint64_t *size)
{
    static char buf[512];
    struct store_attr a;
    *size = 0;
    if (store_read_change_attr(r, seq, &a) != 1)
        return NULL;
    *size = a.size;
    long n = 0, got;
    while ((got = store_read_change_body(r, seq, buf + n, (size_t)n, 7)) > 0)  /* 7-byte reads */
        n += got;
    if (got < 0)
        return NULL;
    buf[n] = '\0';
    return buf;
}

static void test_borrowed_entries(void)
{
    struct store *st = store_open(path, err, sizeof err);
    struct store_reader *r = store_reader(st);
    const char *rec1 = "{\n  \"a\": [\n    1\n  ]\n}\n", *rec2 = "{\n  \"b\": 2\n}\n";
    const char *want1 = "{\n  \"seq\": 1,\n  \"tag\": \"x\",\n  \"value\": {\n    \"a\": [\n      1\n    ]\n  }\n}\n";
    const char *want2 = "{\n  \"seq\": 2,\n  \"tag\": \"y\",\n  \"value\": {\n    \"b\": 2\n  }\n}\n";
    uint64_t x = 0, y = 0, size;
    char *t;
    store_begin(st);
    ok(store_record_create(st, 0, "X", "X.json", rec1, strlen(rec1), NULL, NULL, 10, 1, created_fn,
                           "x", &x) == 1 && x >= STORE_INO_RECORD_BASE, "record and entry created");
    ok(store_record_create(st, 0, "Y", "Y.json", rec2, strlen(rec2), NULL, NULL, 10, 1, created_fn,
                           "y", &y) == 2 && y > x, "a second one");
    store_commit(st);
    t = entry_text(r, 1, &size);
    ok(t && strcmp(t, want1) == 0, "the entry reads with the record spliced in, indented");
    ok(size == strlen(want1), "its size is the spliced size (%llu)", (unsigned long long)size);
    t = entry_text(r, 2, &size);
    ok(t && strcmp(t, want2) == 0 && size == strlen(want2), "the second one too");

    uint64_t node;
    store_begin(st);
    ok(store_record_update(st, x, "{}\n", 3, NULL, NULL, 20, 1, &node) == 0, "record X updated");
    ok(store_record_delete(st, y) == 0, "record Y deleted");
    store_commit(st);
    t = entry_text(r, 1, &size);
    ok(t && strcmp(t, want1) == 0 && size == strlen(want1), "X's entry keeps the old content");
    t = entry_text(r, 2, &size);
    ok(t && strcmp(t, want2) == 0 && size == strlen(want2), "Y's entry outlives the record");
    store_begin(st);
    ok(store_record_update(st, x, "[]\n", 3, NULL, NULL, 30, 1, &node) == 0,
       "a second update has nothing to copy");
    store_commit(st);
    t = entry_text(r, 1, &size);
    ok(t && strcmp(t, want1) == 0, "the entry is still the same");

    store_begin(st);
    uint64_t z = 0;
    ok(store_record_create(st, 0, "Z", "Z.json", rec2, strlen(rec2), NULL, NULL, 10, 1, created_fn,
                           "z", &z) == 3, "a third");
    ok(store_changes_prune(st, 11, NULL, NULL) == 3, "retention removes every entry");
    ok(store_record_update(st, z, "{}\n", 3, NULL, NULL, 40, 1, &node) == 0,
       "a record whose entry is gone updates");
    store_commit(st);
    ok(entry_text(r, 3, &size) == NULL, "the pruned entry is gone");
    store_close(st);

    /* A version 1 cache (before borrowing): upgraded in place, entries intact. */
    remove_db();
    st = store_open(path, err, sizeof err);
    store_begin(st);
    store_record_insert(st, 0, "A", "A.json", "{}\n", 3, NULL, NULL, 1, 1);
    store_change_add(st, 1000, body_fn, "old");
    store_commit(st);
    store_close(st);
    sqlite3 *db;
    sqlite3_open(path, &db);
    ok(sqlite3_exec(db, "ALTER TABLE records DROP COLUMN created_seq; ALTER TABLE changes DROP COLUMN rec;"
                        " ALTER TABLE changes DROP COLUMN split; PRAGMA user_version = 1",
                    NULL, NULL, NULL) == SQLITE_OK, "made a version 1 cache");
    sqlite3_close(db);
    st = store_open(path, err, sizeof err);
    ok(st != NULL, "a version 1 cache opens (%s)", err);
    r = store_reader(st);
    t = entry_text(r, 1, &size);
    ok(t && strcmp(t, "{\"seq\": 1, \"tag\": \"old\"}\n") == 0, "its entries read as before");
    store_begin(st);
    ok(store_record_create(st, 0, "B", "B.json", rec2, strlen(rec2), NULL, NULL, 10, 1, created_fn,
                           "y", &x) == 2, "and takes borrowing entries");
    store_commit(st);
    store_close(st);
    sqlite3_open(path, &db);
    int version = 0;
    sqlite3_stmt *s;
    sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL);
    if (sqlite3_step(s) == SQLITE_ROW)
        version = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    ok(version == STORE_SCHEMA_VERSION && version == 2, "now at schema version %d", version);
}

/* A cache with 200 records, closed: claimed (and left so) if `claim`. */
static void make_cache(int claim)
{
    struct store *st = store_open(path, err, sizeof err);
    char id[16], name[32];
    store_begin(st);
    for (int i = 0; i < 200; i++) {
        snprintf(id, sizeof id, "r%d", i);
        snprintf(name, sizeof name, "r%d.json", i);
        store_record_insert(st, 0, id, name, "{\"some\": \"padding padding padding\"}\n", 37,
                            NULL, NULL, 1, 1);
    }
    store_commit(st);
    if (claim)
        store_claim(st);
    store_close(st);
}

/* Overwrite every page but the first (which holds the header and the schema). */
static void damage(void)
{
    FILE *f = fopen(path, "r+b");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 4096, SEEK_SET);
    for (long i = 4096; i < size; i++)
        fputc(0x5a, f);
    fclose(f);
}

static void test_unclean_stop_is_checked(void)
{
    make_cache(0);
    damage();
    struct store *st = store_open(path, err, sizeof err);
    ok(!st && strstr(err, "corrupt"), "a flag that cannot be read counts as unclean: %s", err);
    remove_db();

    make_cache(1);
    damage();
    st = store_open(path, err, sizeof err);
    ok(!st && strstr(err, "corrupt"), "after an unclean stop the check runs and refuses: %s", err);
    remove_db();

    make_cache(1);
    st = store_open(path, err, sizeof err);
    ok(st && store_release(st) == 0, "an intact cache passes the check");
    store_close(st);
    remove_db();
}

static void test_refusals(void)
{
    sqlite3 *db;
    sqlite3_open(path, &db);
    sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL);
    sqlite3_close(db);
    struct store *st = store_open(path, err, sizeof err);
    ok(!st && strstr(err, "newer"), "a newer schema is refused: %s", err);
    remove_db();

    FILE *f = fopen(path, "w");
    for (int i = 0; i < 1000; i++)
        fputs("this is not a database ", f);
    fclose(f);
    st = store_open(path, err, sizeof err);
    ok(!st && strstr(err, "corrupt"), "a corrupt file is refused: %s", err);
    struct stat sb;
    ok(stat(path, &sb) == 0 && sb.st_size == 23000, "and left untouched");
    remove_db();

    sqlite3_open(path, &db);
    sqlite3_exec(db, "CREATE TABLE other (x); PRAGMA user_version = 0", NULL, NULL, NULL);
    sqlite3_close(db);
    st = store_open(path, err, sizeof err);
    ok(!st && strstr(err, "not a kombofs cache"), "another program's database is refused: %s", err);
    remove_db();
}

int main(void)
{
    snprintf(path, sizeof path, "/tmp/kombofs-test-store-%d.db", (int)getpid());
    remove_db();
    test_records();
    remove_db();
    test_borrowed_entries();
    remove_db();
    test_unclean_stop_is_checked();
    test_refusals();
    return tap_done_testing();
}
