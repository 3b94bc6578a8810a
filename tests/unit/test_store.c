#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "entry.h"
#include "export.h"
#include "jtext.h"
#include "pack.h"
#include "store.h"
#include "tap.h"

static char path[128], err[512];

/* No views: what a record without e-mail, remote id or CSV keys derives. */
static const struct store_derived D = { NULL, NULL, 2, 0, NULL, 0 };

/* A file stored as it is (not packed). */
#define FILE_BODY(b, n) (&(struct store_body){ (n), 0, 0, (b), (n) })

static char *created_fn(void *ctx, int64_t seq, size_t *split);

/* A record with its "created" entry; its inode, or 0. */
static uint64_t ins(struct store *st, int model, const char *id, const char *name,
                    const char *body, size_t size, const char *changed_at, const char *remote_id,
                    int64_t mtime, int64_t gen)
{
    uint64_t ino = 0;
    if (store_record_create(st, model, id, name, FILE_BODY(body, size), changed_at, remote_id, &D, mtime,
                            gen, created_fn, "t", &ino) < 0)
        return 0;
    return ino;
}

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
                    const char *name, const char *ename, const char *rname)
{
    struct store *st = ctx;
    (void)node;
    (void)id;
    (void)name;
    (void)ename;
    (void)rname;
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
    uint64_t a = ins(st, 0, "A", "A.json", "{}\n", 3, "t1", "r1", 111, 1);
    uint64_t b = ins(st, 0, "B", "B.json", "[1]\n", 4, NULL, NULL, 222, 1);
    uint64_t c = ins(st, 2, "A", "A.json", "\"g\"\n", 4, NULL, NULL, 333, 1);
    ok(ino_kind(a) == INO_K_RECORD && b > a && c > b, "inodes from rowids, increasing");
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
    ok(store_record_update(st, a, FILE_BODY("{\"x\":1}\n", 8), "t2", "r1", &D, 444, 1, &node) == 0 &&
       store_read_lookup(r, 0, "A.json", &at) == 1 && at.ino == a && at.size == 8,
       "an update keeps the inode");
    ok(node != a && at.node == node && ino_record_st(node) == a, "and gives a new node id");
    char old[8];
    int model = 7;
    struct store_attr oa;
    ok(store_read_body(r, a, old, 0, sizeof old) == 3 && memcmp(old, "{}\n", 3) == 0 &&
       store_read_record_attr(r, a, &model, &oa) == 1 && model == -1 && oa.size == 3,
       "the old version stays readable under its node");
    ok(store_read_record_attr(r, node, &model, &oa) == 1 && model == 0 && oa.ino == a,
       "the new version under the new node");
    ok(ins(st, 0, "A", "A.json", "{}", 2, NULL, NULL, 1, 1) == 0,
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
    uint64_t a3 = ins(st, 0, "A", "A.json", "{}\n", 3, NULL, NULL, 1, 2);
    ok(a3 > c, "a record that comes back gets a new inode (never reused)");

    int64_t s1 = store_change_add(st, 1000, body_fn, "one");
    int64_t s2 = store_change_add(st, 2000, body_fn, "two");
    ok(s1 == 5 && s2 == 6, "sequence numbers (after the 4 created entries)");
    n = store_read_change_body(r, s2, buf, 0, 10);
    ok(n == 10 && memcmp(buf, "{\"seq\": 6,", 10) == 0, "change body built with its seq");
    ok(store_changes_prune(st, 1500, NULL, NULL) == 5, "retention removes old entries");
    int64_t first, last;
    ok(store_read_change_range(r, &first, &last) == 0 && first == 6 && last == 6, "range");
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
    ok(store_change_add(st, 3000, body_fn, "three") == 7, "numbering goes on after a restart");
    ok(store_changes_prune(st, 10000, NULL, NULL) == 2, "prune all");
    ok(store_change_add(st, 3000, body_fn, "four") == 8, "numbering never restarts");
    ok(store_read_change_range(r, &first, &last) == 0 && first == 8 && last == 8, "range again");
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
    ok(store_record_create(st, 0, "X", "X.json", FILE_BODY(rec1, strlen(rec1)), NULL, NULL, &D, 10, 1, created_fn,
                           "x", &x) == 1 && ino_kind(x) == INO_K_RECORD, "record and entry created");
    ok(store_record_create(st, 0, "Y", "Y.json", FILE_BODY(rec2, strlen(rec2)), NULL, NULL, &D, 10, 1, created_fn,
                           "y", &y) == 2 && y > x, "a second one");
    store_commit(st);
    t = entry_text(r, 1, &size);
    ok(t && strcmp(t, want1) == 0, "the entry reads with the record spliced in, indented");
    ok(size == strlen(want1), "its size is the spliced size (%llu)", (unsigned long long)size);
    t = entry_text(r, 2, &size);
    ok(t && strcmp(t, want2) == 0 && size == strlen(want2), "the second one too");

    uint64_t node;
    store_begin(st);
    ok(store_record_update(st, x, FILE_BODY("{}\n", 3), NULL, NULL, &D, 20, 1, &node) == 0, "record X updated");
    ok(store_record_delete(st, y) == 0, "record Y deleted");
    store_commit(st);
    t = entry_text(r, 1, &size);
    ok(t && strcmp(t, want1) == 0 && size == strlen(want1), "X's entry keeps the old content");
    t = entry_text(r, 2, &size);
    ok(t && strcmp(t, want2) == 0 && size == strlen(want2), "Y's entry outlives the record");
    store_begin(st);
    ok(store_record_update(st, x, FILE_BODY("[]\n", 3), NULL, NULL, &D, 30, 1, &node) == 0,
       "a second update has nothing to copy");
    store_commit(st);
    t = entry_text(r, 1, &size);
    ok(t && strcmp(t, want1) == 0, "the entry is still the same");

    store_begin(st);
    uint64_t z = 0;
    ok(store_record_create(st, 0, "Z", "Z.json", FILE_BODY(rec2, strlen(rec2)), NULL, NULL, &D, 10, 1, created_fn,
                           "z", &z) == 3, "a third");
    ok(store_changes_prune(st, 11, NULL, NULL) == 3, "retention removes every entry");
    ok(store_record_update(st, z, FILE_BODY("{}\n", 3), NULL, NULL, &D, 40, 1, &node) == 0,
       "a record whose entry is gone updates");
    store_commit(st);
    ok(entry_text(r, 3, &size) == NULL, "the pruned entry is gone");
    store_close(st);

    /* A version 1 cache (before borrowing): upgraded in place, entries intact. */
    remove_db();
    st = store_open(path, err, sizeof err);
    store_begin(st);
    store_change_add(st, 1000, body_fn, "old");
    store_commit(st);
    store_close(st);
    sqlite3 *db;
    sqlite3_open(path, &db);
    ok(sqlite3_exec(db, "DROP TABLE dicts; ALTER TABLE records DROP COLUMN zdict;"
                        " ALTER TABLE superseded DROP COLUMN zdict;"
                        " DROP INDEX records_ename; DROP INDEX records_rname; DROP INDEX records_sizes;"
                        " DROP INDEX records_underived;"
                        " CREATE INDEX records_model ON records (model, ino);"
                        " ALTER TABLE records DROP COLUMN ename; ALTER TABLE records DROP COLUMN rname;"
                        " ALTER TABLE records DROP COLUMN jsize; ALTER TABLE records DROP COLUMN csize;"
                        " ALTER TABLE records DROP COLUMN keyset; DROP TABLE keysets; DROP TABLE views;"
                        " ALTER TABLE records DROP COLUMN created_seq; ALTER TABLE changes DROP COLUMN rec;"
                        " ALTER TABLE changes DROP COLUMN split; PRAGMA user_version = 1;"
                        " INSERT INTO records (model, id, name, body, size, mtime, gen, remote_id)"
                        " VALUES (0, 'A', 'A.json', '{\"work_email\": \"A@x.example\"}', 29, 1, 1, 'r-1')",
                    NULL, NULL, NULL) == SQLITE_OK, "made a version 1 cache");
    sqlite3_close(db);
    st = store_open(path, err, sizeof err);
    ok(st != NULL, "a version 1 cache opens (%s)", err);
    r = store_reader(st);
    t = entry_text(r, 1, &size);
    ok(t && strcmp(t, "{\"seq\": 1, \"tag\": \"old\"}\n") == 0, "its entries read as before");
    store_begin(st);
    ok(store_record_create(st, 0, "B", "B.json", FILE_BODY(rec2, strlen(rec2)), NULL, NULL, &D, 10, 1, created_fn,
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
    ok(version == STORE_SCHEMA_VERSION && version == 4, "now at schema version %d", version);
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
        ins(st, 0, id, name, "{\"some\": \"padding padding padding\"}\n", 37,
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

/* ---- views (SPEC §10) ---- */

struct emp { const char *id, *email, *rid, *body; };

static uint64_t put(struct store *st, const struct emp *e, struct buf *keys)
{
    struct store_derived d = { e->email, e->rid, export_compact_size(e->body, strlen(e->body)),
                               export_csv_cells_size(e->body, strlen(e->body)), NULL, 0 };
    buf_reset(keys);
    export_csv_keys(e->body, strlen(e->body), keys);
    d.keys = keys->data;
    d.keys_len = keys->len;
    char name[64];
    snprintf(name, sizeof name, "%s.json", e->id);
    uint64_t ino = 0;
    store_record_create(st, 0, e->id, name, FILE_BODY(e->body, strlen(e->body)), NULL, e->rid, &d, 5, 1,
                        created_fn, "v", &ino);
    return ino;
}

static char *export_all(struct store *st, unsigned which, uint64_t ver, size_t chunk, long *len)
{
    static char out[4096];
    long n = 0, got;
    while ((got = store_export_read(st, which, ver, out + n, (size_t)n, chunk)) > 0)
        n += got;
    *len = got < 0 ? got : n;
    out[n > 0 ? n : 0] = '\0';
    return out;
}

static int names_cb(void *ctx, const struct store_link *l)
{
    struct buf *b = ctx;
    store_link_name(l, b);
    buf_addc(b, ' ');
    return 0;
}

static void test_views(void)
{
    struct store *st = store_open(path, err, sizeof err);
    struct store_reader *r = store_reader(st);
    struct buf keys = BUF_INIT, names = BUF_INIT;
    struct emp e[] = {
        { "b", "x%40e", "r1", "{\"id\": \"b\", \"n\": 1}\n" },
        { "a", "x%40e", "r2", "{\"id\": \"a\", \"n\": \"q,\\\"\"}\n" },
        { "c", "y%40e", NULL, "{\"id\": \"c\", \"o\": {\"k\": [1, 2]}}\n" },
    };
    store_begin(st);
    for (int i = 0; i < 3; i++)
        put(st, &e[i], &keys);
    store_commit(st);

    struct store_link l;
    ok(store_read_link_lookup(r, STORE_VIEW_EMAIL, 0, "x%40e", &l) == 1 &&
       strcmp(l.name, "a.json") == 0 && l.first, "a shared address: the smallest id owns the name");
    ok(store_read_link_lookup(r, STORE_VIEW_EMAIL, 0, "x%40e~b", &l) == 1 &&
       strcmp(l.name, "b.json") == 0 && !l.first, "the others are <address>~<id>");
    ok(store_read_link_lookup(r, STORE_VIEW_EMAIL, 0, "x%40e~a", &l) == 0,
       "the owner has no ~ name");
    ok(store_read_link_lookup(r, STORE_VIEW_RID, 0, "r1", &l) == 1 &&
       strcmp(l.name, "b.json") == 0, "by remote id");
    ok(store_read_link_lookup(r, STORE_VIEW_RID, 0, "nope", &l) == 0, "an unknown name");
    ok(store_read_link_list(r, STORE_VIEW_EMAIL, 0, 0, 10, names_cb, &names) == 3 &&
       strcmp(names.data, "x%40e~b x%40e y%40e ") == 0, "listed in rowid order: %s", names.data);

    uint64_t ver = 0, size = 0;
    int64_t mt;
    long len;
    const char *want_jsonl = "{\"id\":\"b\",\"n\":1}\n{\"id\":\"a\",\"n\":\"q,\\\"\"}\n"
                             "{\"id\":\"c\",\"o\":{\"k\":[1,2]}}\n";
    ok(store_export_stat(st, 0, &ver, &size, &mt) == 0 && size == strlen(want_jsonl),
       "the JSONL size is exact (%llu)", (unsigned long long)size);
    uint64_t v1 = ver;
    const char *got = export_all(st, 0, ver, 7, &len);
    ok(len == (long)size && strcmp(got, want_jsonl) == 0, "read in 7-byte pieces");
    const char *want_csv = "id,n,o\r\nb,1,\r\na,\"q,\"\"\",\r\nc,,\"{\"\"k\"\":[1,2]}\"\r\n";
    ver = 0;
    ok(store_export_stat(st, INO_EXPORT_CSV, &ver, &size, &mt) == 0 && ver == v1 &&
       size == strlen(want_csv), "the CSV size is exact (%llu)", (unsigned long long)size);
    got = export_all(st, INO_EXPORT_CSV, ver, 5, &len);
    ok(len == (long)size && strcmp(got, want_csv) == 0, "the CSV, quoted as RFC 4180 says");

    /* A change: the pinned version reads as before, the new one is new. */
    store_begin(st);
    struct store_record old;
    store_record_get(st, 0, "b.json", &old);
    struct emp b2 = { "b", NULL, "r1", "{\"id\": \"b\", \"n\": 22, \"z\": true}\n" };
    struct store_derived d = { NULL, "r1", export_compact_size(b2.body, strlen(b2.body)),
                               export_csv_cells_size(b2.body, strlen(b2.body)), NULL, 0 };
    buf_reset(&keys);
    export_csv_keys(b2.body, strlen(b2.body), &keys);
    d.keys = keys.data;
    d.keys_len = keys.len;
    uint64_t node;
    ok(store_record_update(st, old.ino, FILE_BODY(b2.body, strlen(b2.body)), NULL, "r1", &d, 9, 1, &node) == 0,
       "update b");
    store_record_free(&old);
    store_commit(st);
    got = export_all(st, 0, v1, 4096, &len);
    ok(strcmp(got, want_jsonl) == 0, "the old version still reads whole");
    ver = 0;
    ok(store_export_stat(st, 0, &ver, &size, &mt) == 0 && ver > v1, "a new version");
    got = export_all(st, 0, ver, 3, &len);
    ok(len == (long)size && strncmp(got, "{\"id\":\"b\",\"n\":22,\"z\":true}\n", 27) == 0,
       "which reads the new record");
    ver = 0;
    store_export_stat(st, INO_EXPORT_CSV, &ver, &size, &mt);
    got = export_all(st, INO_EXPORT_CSV, ver, 4096, &len);
    ok(len == (long)size && strncmp(got, "id,n,z,o\r\nb,22,true,\r\na,", 24) == 0,
       "a new key is a new column, after those seen before");
    ok(store_read_link_lookup(r, STORE_VIEW_EMAIL, 0, "x%40e", &l) == 1 &&
       strcmp(l.name, "a.json") == 0 && store_read_link_lookup(r, STORE_VIEW_EMAIL, 0, "x%40e~b", &l) == 0,
       "b's address went with its update");
    store_begin(st);
    store_record_get(st, 0, "a.json", &old);
    ok(store_record_delete(st, old.ino) == 0, "delete a");
    store_record_free(&old);
    store_commit(st);
    ok(store_read_link_lookup(r, STORE_VIEW_EMAIL, 0, "x%40e", &l) == 0, "its link is gone");
    ver = 0;
    store_export_stat(st, 0, &ver, &size, &mt);
    got = export_all(st, 0, ver, 4096, &len);
    ok(len == (long)size && strstr(got, "\"a\"") == NULL, "and its line");
    ok(store_export_read(st, 0, 12345, (char[8]){ 0 }, 0, 8) == -ESTALE,
       "a version neither current nor pinned is stale");
    buf_free(&keys);
    buf_free(&names);
    store_close(st);
}

/* A stat of the current version (ver 0, a LOOKUP or GETATTR) whose pin
 * exists takes that pin and no slot of its own: with the four pins in use,
 * it must not end the transaction of a reader of an older version. */
static void test_current_pin_is_found(void)
{
    struct store *st = store_open(path, err, sizeof err);
    struct buf keys = BUF_INIT;
    struct emp a = { "a", NULL, NULL, "{\"id\": \"a\", \"n\": 1}\n" };
    store_begin(st);
    put(st, &a, &keys);
    store_commit(st);
    uint64_t v0 = 0, ver, size;
    int64_t mt;
    long len;
    store_export_stat(st, 0, &v0, &size, &mt);
    char *got = export_all(st, 0, v0, 4096, &len);
    ok(strcmp(got, "{\"id\":\"a\",\"n\":1}\n") == 0, "employees read at version %llu",
       (unsigned long long)v0);
    /* A change: the pin read just now holds an older version. */
    store_begin(st);
    struct emp b = { "b", NULL, NULL, "{\"id\": \"b\"}\n" };
    put(st, &b, &keys);
    store_commit(st);
    for (unsigned m = 1; m <= 3; m++) {     /* the other three pins: current versions */
        ver = 0;
        store_export_stat(st, m, &ver, &size, &mt);
        export_all(st, m, ver, 4096, &len);
    }
    /* The older version's reader has left its pin for longer than it is
     * kept: a slot that is asked for would be its slot. */
    nanosleep(&(struct timespec){ 0, 300 * 1000000L }, NULL);
    ver = 0;
    ok(store_export_stat(st, 1, &ver, &size, &mt) == 0 && size == 0, "a stat of a current version");
    got = export_all(st, 0, v0, 4096, &len);
    ok(len > 0 && strcmp(got, "{\"id\":\"a\",\"n\":1}\n") == 0,
       "the older version still reads (%ld): the stat took no other pin", len);
    ver = 0;
    int rc = store_export_stat(st, 0, &ver, &size, &mt);
    ok(rc == 0 && ver > v0 && size == 28, "the current employees (%llu bytes)",
       (unsigned long long)size);
    buf_free(&keys);
    store_close(st);
}

/* What a READ skipped since the read-ahead's front: the records between two
 * places of a listing, by rowid and by name, up to a limit. */
static void test_ahead_gap(void)
{
    struct store *st = store_open(path, err, sizeof err);
    struct store_reader *r = store_reader(st);
    struct buf keys = BUF_INIT;
    const char *ids[] = { "e", "b", "d", "a", "c" };    /* rowid order, not name order */
    uint64_t ino[5];
    store_begin(st);
    for (int i = 0; i < 5; i++) {
        struct emp e = { ids[i], NULL, NULL, "{}\n" };
        ino[i] = ino_rowid(put(st, &e, &keys));
    }
    store_commit(st);
    ok(store_read_ahead_gap(r, 0, 0, ino[0], NULL, ino[4], NULL, 9) == 3, "by rowid: 3 between");
    ok(store_read_ahead_gap(r, 0, 0, ino[0], NULL, ino[4], NULL, 2) == 2, "counted up to the limit");
    ok(store_read_ahead_gap(r, 0, 0, ino[1], NULL, ino[2], NULL, 9) == 0, "neighbours: none");
    ok(store_read_ahead_gap(r, 1, 0, ino[0], NULL, ino[4], NULL, 9) == 0, "another model: none");
    ok(store_read_ahead_gap(r, 0, 1, 0, "a.json", 0, "e.json", 9) == 3, "by name: 3 between");
    ok(store_read_ahead_gap(r, 0, 1, 0, "b.json", 0, "c.json", 9) == 0, "by name, neighbours");
    buf_free(&keys);
    store_close(st);
}

static void *read_once(void *arg)
{
    struct store_attr a;
    struct store_reader *r = store_reader(arg);
    store_read_lookup(r, 0, "none.json", &a);
    return NULL;
}

/* Threads that end close their read connections (libfuse ends idle workers). */
static void test_reader_threads(void)
{
    struct store *st = store_open(path, err, sizeof err);
    for (int round = 0; round < 3; round++) {
        pthread_t t[16];
        for (int i = 0; i < 16; i++)
            pthread_create(&t[i], NULL, read_once, st);
        for (int i = 0; i < 16; i++)
            pthread_join(t[i], NULL);
    }
    ok(store_reader_count(st) == 0, "48 threads read and ended: no connection left (%d)",
       store_reader_count(st));
    read_once(st);
    ok(store_reader_count(st) == 1, "this thread's connection stays while it lives");
    store_close(st);
    st = store_open(path, err, sizeof err);
    read_once(st);
    ok(store_reader_count(st) == 1, "a new store gets a new one");
    store_close(st);
}

static int derive_len(void *ctx, int model, const char *body, size_t size,
                      struct store_derived *out)
{
    (void)model;
    (void)body;
    ++*(int *)ctx;
    out->jsize = size - 1;      /* the test's bodies: one line */
    return 0;
}

static long views_n(int model)
{
    sqlite3 *db;
    sqlite3_stmt *s;
    long n = -1;
    sqlite3_open(path, &db);
    sqlite3_prepare_v2(db, "SELECT n FROM views WHERE model = ?1", -1, &s, NULL);
    sqlite3_bind_int(s, 1, model);
    if (sqlite3_step(s) == SQLITE_ROW)
        n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
}

static void sql(const char *text)
{
    sqlite3 *db;
    sqlite3_open(path, &db);
    ok(sqlite3_exec(db, text, NULL, NULL, NULL) == SQLITE_OK, "%s (%s)", text, sqlite3_errmsg(db));
    sqlite3_close(db);
}

/* Rows without their derived columns (a cache from schema version 2) are
 * derived and the views' totals counted again; with nothing to derive the
 * totals are left alone (counting them reads every record: at 100,000
 * employees every start took 1 s), unless a start that derived rows
 * stopped before it counted them. */
static void test_backfill(void)
{
    make_cache(0);
    int calls = 0;
    sql("UPDATE records SET jsize = NULL WHERE ino % 2 = 0; UPDATE views SET n = 7");
    struct store *st = store_open(path, err, sizeof err);
    ok(store_backfill(st, derive_len, &calls) == 100 && calls == 100, "100 rows derived (%d)",
       calls);
    store_close(st);
    ok(views_n(0) == 200, "the totals were counted again (%ld)", views_n(0));

    sql("UPDATE views SET n = 7");
    st = store_open(path, err, sizeof err);
    calls = 0;
    ok(store_backfill(st, derive_len, &calls) == 0 && calls == 0, "nothing to derive");
    store_close(st);
    ok(views_n(0) == 7, "and the totals are not counted again (%ld)", views_n(0));

    /* derived by a start that was killed before it counted */
    sql("INSERT OR REPLACE INTO meta (key, value) VALUES ('views_stale', '1')");
    st = store_open(path, err, sizeof err);
    ok(store_backfill(st, derive_len, &calls) == 0, "nothing to derive");
    store_close(st);
    ok(views_n(0) == 200, "but marked stale: counted again (%ld)", views_n(0));
}

/* ---- packed bodies (schema version 4) ---- */

static void emp_body(int i, struct buf *b)
{
    buf_reset(b);
    buf_printf(b,
               "{\n  \"id\": \"p%03d\",\n  \"first_name\": \"Name %d\",\n  \"employments\": [\n"
               "    {\n      \"id\": \"job%d\",\n      \"job_title\": \"Title %d\",\n"
               "      \"pay_rate\": %d.50\n    }\n  ],\n  \"custom_fields\": {\n"
               "    \"cost_center\": \"CC-%03d\",\n    \"note\": \"%s\"\n  }\n}\n",
               i, i * 7, i, i % 13, 1000 + i, i % 40,
               "a note long enough that every record has some text in it, as records do");
}

struct ahead_cmp {
    struct buf *bodies;
    int n, same;
};

static int ahead_cmp_cb(void *ctx, const char *name, const struct store_attr *a,
                        const void *body, size_t len)
{
    struct ahead_cmp *c = ctx;
    int i = (int)strtol(name + 1, NULL, 10);
    c->same &= i >= 0 && i < 64 && len == c->bodies[i].len && a->size == len &&
               memcmp(body, c->bodies[i].data, len) == 0;
    c->n++;
    return 0;
}

struct change_cmp {
    struct buf *want;
    int n, same;
};

static int change_cmp_cb(void *ctx, const char *name, const struct store_attr *a,
                         const void *body, size_t len)
{
    struct change_cmp *c = ctx;
    long seq = strtol(name, NULL, 10);
    c->same &= seq >= 1 && seq <= 64 && len == c->want[seq - 1].len && a->size == len &&
               memcmp(body, c->want[seq - 1].data, len) == 0;
    c->n++;
    return 0;
}

static int backfill_cmp(void *ctx, int model, const char *body, size_t size,
                        struct store_derived *out)
{
    struct ahead_cmp *c = ctx;
    (void)model;
    int i = -1;
    const char *id = strstr(body, "\"p");
    if (id)
        i = (int)strtol(id + 2, NULL, 10);
    /* the record's JSON, in whatever layout is cheapest: a packed one compact */
    struct buf want = BUF_INIT;
    if (i >= 0 && i < 64)
        export_compact(c->bodies[i].data, c->bodies[i].len, &want);
    c->same &= i >= 0 && i < 64 && size == want.len && memcmp(body, want.data, size) == 0;
    buf_free(&want);
    c->n++;
    out->jsize = export_compact_size(body, size);
    return 0;
}

/* Bodies stored packed read back byte for byte through every path: a READ in
 * pieces, the read-ahead batches, a change entry that borrows one, the
 * exports, the writer's own lookup and backfill, a superseded version; a
 * damaged body or a missing dictionary is an error, never other bytes. */
static void test_packed(void)
{
    struct store *st = store_open(path, err, sizeof err);
    struct buf bodies[64], want[64], dict = BUF_INIT, z = BUF_INIT, got = BUF_INIT;
    /* the dictionary from 200 records of the same shape (a model's first page) */
    struct buf more[200];
    const char *samples[200];
    size_t lens[200], total = 0;
    for (int i = 0; i < 200; i++) {
        more[i] = (struct buf)BUF_INIT;
        emp_body(100 + i, &more[i]);
        for (int k = 0; k < 60; k++)        /* and longer, as employees are */
            buf_printf(&more[i], "{\"note\": %d, \"of\": %d}\n", k, i);
        samples[i] = more[i].data;
        lens[i] = more[i].len;
    }
    for (int i = 0; i < 64; i++) {
        bodies[i] = want[i] = (struct buf)BUF_INIT;
        emp_body(i, &bodies[i]);
    }
    int trained = pack_train(samples, lens, 200, &dict) == 0;
    for (int i = 0; i < 200; i++)
        buf_free(&more[i]);
    ok(trained, "a dictionary (%zu bytes)", dict.len);
    struct pack_cdict *cd = pack_cdict_new(dict.data, dict.len);
    struct pack_ctx pc = PACK_CTX_INIT;
    store_begin(st);
    int64_t id = store_dict_add(st, 0, dict.data, dict.len);
    buf_reset(&got);
    ok(id > 0 && store_dict_latest(st, 0, &got) == id && got.len == dict.len &&
       memcmp(got.data, dict.data, dict.len) == 0 && store_dict_latest(st, 1, &z) == 0,
       "stored: the model's latest, and none for another model");
    int created = 1;
    uint64_t ino[64];
    for (int i = 0; i < 64; i++) {
        char name[32], rid[16];
        snprintf(name, sizeof name, "p%03d.json", i);
        snprintf(rid, sizeof rid, "p%03d", i);
        /* packed: the compact JSON, whose re-indentation is the file */
        struct buf json = BUF_INIT, again = BUF_INIT;
        export_compact(bodies[i].data, bodies[i].len, &json);
        created &= jtext_pretty(json.data, json.len, &again) == 0 && again.len == bodies[i].len &&
                   memcmp(again.data, bodies[i].data, again.len) == 0;
        size_t nl = 0;
        for (size_t k = 0; k < bodies[i].len; k++)
            nl += bodies[i].data[k] == '\n';
        buf_reset(&z);
        struct store_body b = { bodies[i].len, nl, id, z.data, 0 };
        b.len = pack_compress(&pc, cd, json.data, json.len, &z);
        b.bytes = z.data;
        total += b.len;
        struct store_derived d = { NULL, NULL, json.len, 0, NULL, 0 };
        created &= b.len > 0 &&
                   store_record_create(st, 0, rid, name, &b, NULL, NULL, &d, 10, 1, created_fn,
                                       "z", &ino[i]) == i + 1;
        buf_free(&json);
        buf_free(&again);
        size_t split;
        char *e = created_fn("z", i + 1, &split);
        entry_splice(e, strlen(e), split, bodies[i].data, bodies[i].len, &want[i]);
        free(e);
    }
    ok(created && store_commit(st) == 0, "64 records created packed");
    sqlite3 *db;
    sqlite3_stmt *q;
    long npacked = 0, stored = 0, size = 0;
    sqlite3_open(path, &db);
    sqlite3_prepare_v2(db, "SELECT count(zdict), sum(length(body)), sum(size) FROM records", -1,
                       &q, NULL);
    if (sqlite3_step(q) == SQLITE_ROW) {
        npacked = sqlite3_column_int64(q, 0);
        stored = sqlite3_column_int64(q, 1);
        size = sqlite3_column_int64(q, 2);
    }
    sqlite3_finalize(q);
    sqlite3_close(db);
    ok(npacked == 64 && stored == (long)total && stored * 2 < size,
       "the rows hold the frames (%ld bytes for %ld)", stored, size);

    struct store_reader *r = store_reader(st);
    int same = 1;
    for (int i = 0; i < 64; i += 9) {
        char piece[4096];
        long n = 0, k;
        while ((k = store_read_body(r, ino[i], piece + n, (size_t)n, 100)) > 0)
            n += k;
        same &= k == 0 && n == (long)bodies[i].len && memcmp(piece, bodies[i].data, n) == 0;
    }
    ok(same, "read in 100-byte pieces: the files");
    struct ahead_cmp ac = { bodies, 0, 1 };
    ok(store_read_ahead(r, 0, 0, 0, NULL, 100, ahead_cmp_cb, &ac) == 64 && ac.n == 64 && ac.same,
       "read ahead in listing order: the files");
    ac = (struct ahead_cmp){ bodies, 0, 1 };
    ok(store_read_ahead(r, 0, 1, 0, "", 100, ahead_cmp_cb, &ac) == 64 && ac.same,
       "and in name order");
    same = 1;
    for (int i = 0; i < 64; i += 7) {
        uint64_t esize;
        const char *t = entry_text(r, i + 1, &esize);
        same &= t && esize == want[i].len && strcmp(t, want[i].data) == 0;
    }
    ok(same, "a created entry splices its packed record in");
    struct change_cmp cc = { want, 0, 1 };
    ok(store_read_change_ahead(r, 0, 100, change_cmp_cb, &cc) == 64 && cc.same,
       "and so does the change log's read-ahead");
    struct buf jsonl = BUF_INIT;
    for (int i = 0; i < 64; i++) {
        export_compact(bodies[i].data, bodies[i].len, &jsonl);
        buf_addc(&jsonl, '\n');
    }
    uint64_t ver = 0, esz;
    int64_t mt;
    long elen = 0;
    static char exported[65536];
    ok(store_export_stat(st, 0, &ver, &esz, &mt) == 0 && esz == jsonl.len, "export size");
    long k;
    while ((k = store_export_read(st, 0, ver, exported + elen, (size_t)elen, 1000)) > 0)
        elen += k;
    ok(k == 0 && elen == (long)jsonl.len && memcmp(exported, jsonl.data, jsonl.len) == 0,
       "exports/employees.jsonl from the packed files");
    struct store_record old;
    struct buf c5 = BUF_INIT;
    export_compact(bodies[5].data, bodies[5].len, &c5);
    ok(store_record_get(st, 0, "p005.json", &old) == 1 && old.size == c5.len &&
       memcmp(old.body, c5.data, old.size) == 0, "the writer's lookup gives the compact JSON");
    buf_free(&c5);

    /* A new version: the old one stays readable, the entry gets its own copy. */
    store_begin(st);
    uint64_t node;
    const char *nb = "{\n  \"id\": \"p005\",\n  \"replaced\": true\n}\n";
    ok(store_record_update(st, old.ino, FILE_BODY(nb, strlen(nb)), NULL, NULL, &D, 20, 1, &node) == 0 &&
       store_commit(st) == 0, "updated (stored as it is)");
    char piece[4096];
    long n = store_read_body(r, old.node, piece, 0, sizeof piece);
    ok(n == (long)bodies[5].len && memcmp(piece, bodies[5].data, n) == 0,
       "the superseded version reads as before");
    n = store_read_body(r, node, piece, 0, sizeof piece);
    ok(n == (long)strlen(nb) && memcmp(piece, nb, n) == 0, "the new one as it is stored");
    uint64_t esize;
    const char *t = entry_text(r, 6, &esize);
    ok(t && strcmp(t, want[5].data) == 0, "the entry kept the packed record's text");
    store_record_free(&old);
    buf_reset(&bodies[5]);
    buf_adds(&bodies[5], nb);

    /* The backfill of rows not derived yet reads the packed bodies. */
    store_close(st);
    sql("UPDATE records SET jsize = NULL WHERE zdict IS NOT NULL AND ino % 2 = 0");
    st = store_open(path, err, sizeof err);
    ac = (struct ahead_cmp){ bodies, 0, 1 };
    long filled = store_backfill(st, backfill_cmp, &ac);
    ok(filled == ac.n && ac.n > 20 && ac.same, "the backfill derives from the records' JSON (%d)", ac.n);
    store_close(st);

    /* Damage: an error, never other bytes. */
    sql("UPDATE records SET body = substr(body, 1, length(body) - 1) WHERE name = 'p009.json'");
    st = store_open(path, err, sizeof err);
    r = store_reader(st);
    ok(store_read_body(r, ino[9], piece, 0, sizeof piece) == -1, "a truncated frame: EIO");
    ac = (struct ahead_cmp){ bodies, 0, 1 };
    ok(store_read_ahead(r, 0, 0, 0, NULL, 100, ahead_cmp_cb, &ac) == 63 && ac.same,
       "read-ahead leaves it to the READ");
    ok(store_record_get(st, 0, "p009.json", &old) == -1, "the writer's lookup fails");
    ok(store_read_body(r, ino[10], piece, 0, sizeof piece) == (long)bodies[10].len,
       "its neighbours read");
    store_close(st);
    sql("DELETE FROM dicts");
    st = store_open(path, err, sizeof err);
    r = store_reader(st);
    ok(store_read_body(r, ino[10], piece, 0, sizeof piece) == -1 &&
       !entry_text(r, 11, &esize), "without its dictionary: EIO");
    store_close(st);

    for (int i = 0; i < 64; i++) {
        buf_free(&bodies[i]);
        buf_free(&want[i]);
    }
    pack_cdict_free(cd);
    pack_ctx_free(&pc);
    buf_free(&dict);
    buf_free(&z);
    buf_free(&got);
    buf_free(&jsonl);
}

/* A record kept as its compact JSON, not packed (zdict 0, the default): its
 * file rendered on every path, the export and the writer's lookup as it is. */
static void test_compact_rows(void)
{
    struct store *st = store_open(path, err, sizeof err);
    const char *json = "{\"id\":\"c1\",\"a\":[1,{\"b\":\"x, \\\"y\\\"\"}],\"e\":{}}";
    const char *file = "{\n  \"id\": \"c1\",\n  \"a\": [\n    1,\n    {\n      \"b\": \"x, \\\"y\\\"\"\n"
                       "    }\n  ],\n  \"e\": {}\n}\n";
    size_t nl = 0;
    for (const char *q = file; *q; q++)
        nl += *q == '\n';
    struct store_body b = { strlen(file), nl, STORE_COMPACT, json, strlen(json) };
    struct store_derived d = { NULL, NULL, strlen(json), 0, NULL, 0 };
    uint64_t ino = 0;
    store_begin(st);
    ok(store_record_create(st, 0, "c1", "c1.json", &b, NULL, NULL, &d, 10, 1, created_fn, "c",
                           &ino) == 1 && store_commit(st) == 0, "a compact row");
    struct store_reader *r = store_reader(st);
    char out[512];
    long n = 0, k;
    while ((k = store_read_body(r, ino, out + n, (size_t)n, 9)) > 0)
        n += k;
    ok(k == 0 && n == (long)strlen(file) && memcmp(out, file, (size_t)n) == 0,
       "read in pieces: its file");
    uint64_t esize;
    size_t split;
    char *e = created_fn("c", 1, &split);
    struct buf want = BUF_INIT;
    entry_splice(e, strlen(e), split, file, strlen(file), &want);
    free(e);
    const char *t = entry_text(r, 1, &esize);
    ok(t && esize == want.len && strcmp(t, want.data) == 0, "its created entry splices the file");
    buf_free(&want);
    uint64_t ver = 0, size;
    int64_t mt;
    long got = 0;
    ok(store_export_stat(st, 0, &ver, &size, &mt) == 0 && size == strlen(json) + 1 &&
       (got = store_export_read(st, 0, ver, out, 0, sizeof out)) == (long)size &&
       memcmp(out, json, strlen(json)) == 0 && out[got - 1] == '\n', "its export line");
    struct store_record old;
    ok(store_record_get(st, 0, "c1.json", &old) == 1 && old.size == strlen(json) &&
       memcmp(old.body, json, old.size) == 0, "the writer's lookup gives it as it is");
    store_record_free(&old);
    store_close(st);
}

/* The pins' turns: a reader of another version waits for a pin in use what
 * taking it would cost its reader, ten times its offsets' build time, at most
 * half a second, and a pin left for 200 ms is free. */
static void test_pin_turns(void)
{
    const int64_t MS = 1000000, t = 1000000 * MS;  /* used at t, asked since t + 1 ms */
    ok(store_pin_kept_until(t, 0, 1, t + MS) == t + MS,
       "offsets never built: the pin is taken as soon as it is asked for");
    ok(store_pin_kept_until(t, MS / 2, 1, t + MS) == t + 6 * MS,
       "built in 0.5 ms: kept 5 ms for its reader, not half a second");
    ok(store_pin_kept_until(t, 3 * MS, 1, t + MS) == t + 31 * MS, "built in 3 ms: kept 30 ms");
    ok(store_pin_kept_until(t, 30 * MS, 1, t + MS) == t + 200 * MS,
       "built in 30 ms: kept until 200 ms after its last read");
    ok(store_pin_kept_until(t, 30 * MS, 1, t - 50 * MS) == t + 200 * MS,
       "built in 30 ms, asked for since 50 ms before its last read: kept 200 ms after it");
    ok(store_pin_kept_until(t, 30 * MS, 1, t - 250 * MS) == t + 50 * MS,
       "built in 30 ms, asked for since 250 ms before its last read: taken 300 ms after asking");
    ok(store_pin_kept_until(t, 10000 * MS, 1, t - 600 * MS) == t - 100 * MS,
       "built in 10 s: the wait is at most 500 ms");
    ok(store_pin_kept_until(t, INT64_MAX / 2, 1, t) == t + 200 * MS,
       "a huge build time does not overflow");
    ok(store_pin_kept_until(t, -5 * MS, 1, t + MS) == t + MS, "a clock step back waits nothing");
    /* A pin that may hold an older version: taking it fails its reader. */
    ok(store_pin_kept_until(t, MS / 2, 0, t + MS) == t + 200 * MS,
       "an older version built in 0.5 ms: kept until 200 ms after its last read");
    ok(store_pin_kept_until(t, 0, 0, t - 450 * MS) == t + 50 * MS,
       "an older version never built: taken only after a 500 ms wait");
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
    remove_db();
    test_views();
    remove_db();
    test_current_pin_is_found();
    remove_db();
    test_ahead_gap();
    remove_db();
    test_backfill();
    remove_db();
    test_compact_rows();
    remove_db();
    test_packed();
    remove_db();
    test_reader_threads();
    remove_db();
    test_pin_turns();
    return tap_done_testing();
}
