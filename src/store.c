/*
 * store.c — schema, migrations and every SQL statement of kombofs.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "log.h"

/* The writer's statements, prepared once. */
enum wstmt {
    W_BEGIN, W_COMMIT, W_ROLLBACK,
    W_REC_GET, W_REC_INSERT, W_REC_UPDATE, W_REC_TOUCH, W_REC_DELETE,
    W_REC_STALE, W_REC_COUNT, W_SUPERSEDE, W_SUPERSEDED_PRUNE,
    W_EP_GET, W_EP_ENSURE, W_EP_WATERMARK, W_EP_GEN, W_EP_FULL_AT, W_EP_STATUS,
    W_CH_NEXT, W_CH_INSERT, W_CH_OLD, W_CH_PRUNE, W_CH_BORROWED, W_CH_OWN,
    W_META_GET, W_META_SET, W_WH_INSERT, W_WH_PRUNE,
    W_COUNT
};

static const char *const wsql[W_COUNT] = {
    [W_BEGIN] = "BEGIN IMMEDIATE",
    [W_COMMIT] = "COMMIT",
    [W_ROLLBACK] = "ROLLBACK",
    [W_REC_GET] = "SELECT ino, body, changed_at, ver FROM records WHERE model = ?1 AND name = ?2",
    [W_REC_INSERT] = "INSERT INTO records (model, id, name, body, size, changed_at, remote_id, mtime, gen,"
                     " created_seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    [W_REC_UPDATE] = "UPDATE records SET body = ?2, size = ?3, changed_at = ?4, remote_id = ?5,"
                     " mtime = ?6, gen = ?7, ver = ver + 1, created_seq = 0 WHERE ino = ?1 RETURNING ver",
    [W_REC_TOUCH] = "UPDATE records SET gen = ?2 WHERE ino = ?1",
    [W_REC_DELETE] = "DELETE FROM records WHERE ino = ?1",
    [W_REC_STALE] = "SELECT ino, id, name, ver FROM records WHERE model = ?1 AND gen < ?2"
                    " ORDER BY ino LIMIT ?3",
    [W_SUPERSEDE] = "INSERT OR REPLACE INTO superseded (node, body, size, mtime, until)"
                    " SELECT ?1 + ((ver & 16777215) << 36), body, size, mtime, ?2"
                    " FROM records WHERE ino = ?3",
    [W_SUPERSEDED_PRUNE] = "DELETE FROM superseded WHERE until < ?1",
    [W_REC_COUNT] = "SELECT count(*) FROM records WHERE model = ?1",
    [W_EP_GET] = "SELECT watermark, gen, full_at, status FROM endpoints WHERE model = ?1",
    [W_EP_ENSURE] = "INSERT OR IGNORE INTO endpoints (model) VALUES (?1)",
    [W_EP_WATERMARK] = "UPDATE endpoints SET watermark = ?2 WHERE model = ?1",
    [W_EP_GEN] = "UPDATE endpoints SET gen = ?2 WHERE model = ?1",
    [W_EP_FULL_AT] = "UPDATE endpoints SET full_at = ?2 WHERE model = ?1",
    [W_EP_STATUS] = "UPDATE endpoints SET status = ?2 WHERE model = ?1",
    /* One writer: the next number is known before the entry is rendered. */
    [W_CH_NEXT] = "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'changes'), 0) + 1",
    [W_CH_INSERT] = "INSERT INTO changes (seq, at, body, size, rec, split) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    /* The entry that borrows the current body of record ?1, if any. */
    [W_CH_BORROWED] = "SELECT c.seq, c.body, c.split, r.body FROM records r"
                      " JOIN changes c ON c.seq = r.created_seq AND c.rec = r.ino WHERE r.ino = ?1",
    [W_CH_OWN] = "UPDATE changes SET body = ?2, rec = NULL, split = NULL WHERE seq = ?1",
    /* No ORDER BY: with one, SQLite 3.40 scans the whole log in seq order
     * instead of using changes_at (measured: 70-100 ms per fetch at 100k). */
    [W_CH_OLD] = "SELECT seq FROM changes INDEXED BY changes_at WHERE at < ?1",
    [W_CH_PRUNE] = "DELETE FROM changes WHERE at < ?1",
    [W_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [W_META_SET] = "INSERT INTO meta (key, value) VALUES (?1, ?2)"
                   " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    [W_WH_INSERT] = "INSERT OR IGNORE INTO webhook_events (id, received_at) VALUES (?1, ?2)",
    [W_WH_PRUNE] = "DELETE FROM webhook_events WHERE received_at < ?1",
};

enum rstmt {
    R_LOOKUP, R_ATTR, R_OLD_ATTR, R_LIST, R_BODY, R_OLD_BODY, R_META,
    R_CH_ATTR, R_CH_LIST, R_CH_BODY, R_CH_RANGE, R_COUNT, R_WATERMARK,
    R_NSTMT
};

static const char *const rsql[R_NSTMT] = {
    [R_LOOKUP] = "SELECT ino, size, mtime, ver FROM records WHERE model = ?1 AND name = ?2",
    [R_ATTR] = "SELECT model, size, mtime, ver FROM records WHERE ino = ?1",
    [R_OLD_ATTR] = "SELECT size, mtime FROM superseded WHERE node = ?1",
    [R_LIST] = "SELECT ino, name, size, mtime, ver FROM records WHERE model = ?1 AND ino > ?2"
               " ORDER BY ino LIMIT ?3",
    [R_BODY] = "SELECT body FROM records WHERE ino = ?1 AND ver & 16777215 = ?2",
    [R_OLD_BODY] = "SELECT body FROM superseded WHERE node = ?1",
    [R_META] = "SELECT id, remote_id, changed_at FROM records WHERE ino = ?1",
    [R_CH_ATTR] = "SELECT size, at FROM changes WHERE seq = ?1",
    [R_CH_LIST] = "SELECT seq, size, at FROM changes WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    [R_CH_BODY] = "SELECT c.body, c.split, r.body FROM changes c LEFT JOIN records r ON r.ino = c.rec"
                  " WHERE c.seq = ?1",
    [R_CH_RANGE] = "SELECT (SELECT min(seq) FROM changes),"
                   " (SELECT seq FROM sqlite_sequence WHERE name = 'changes')",
    [R_COUNT] = "SELECT count(*) FROM records WHERE model = ?1",
    [R_WATERMARK] = "SELECT watermark FROM endpoints WHERE model = ?1",
};

struct store_reader {
    sqlite3 *db;
    sqlite3_stmt *st[R_NSTMT];
    struct store_reader *next;
};

struct store {
    char *path;
    sqlite3 *db;
    sqlite3_stmt *st[W_COUNT];
    pthread_mutex_t readers_lock;
    struct store_reader *readers;
    int64_t webhook_pruned_at;  /* unix s of the last prune of old event ids */
    uint64_t serial;            /* unique in the process: a new store may reuse a freed address */
};

static _Atomic uint64_t store_serials;

static _Thread_local struct store_reader *tl_reader;
static _Thread_local uint64_t tl_reader_owner;    /* the serial of its store */

static const char schema_v1[] =
    "CREATE TABLE records ("
    "  ino INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  model INTEGER NOT NULL,"
    "  id TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  body BLOB NOT NULL,"
    "  size INTEGER NOT NULL,"
    "  changed_at TEXT,"
    "  remote_id TEXT,"
    "  mtime INTEGER NOT NULL,"
    "  gen INTEGER NOT NULL DEFAULT 0,"
    "  ver INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE TABLE superseded ("
    "  node INTEGER PRIMARY KEY,"
    "  body BLOB NOT NULL,"
    "  size INTEGER NOT NULL,"
    "  mtime INTEGER NOT NULL,"
    "  until INTEGER NOT NULL"
    ");"
    "CREATE INDEX superseded_until ON superseded (until);"
    "CREATE UNIQUE INDEX records_name ON records (model, name);"
    "CREATE INDEX records_model ON records (model, ino);"
    "CREATE TABLE endpoints ("
    "  model INTEGER PRIMARY KEY,"
    "  watermark TEXT,"
    "  gen INTEGER NOT NULL DEFAULT 0,"
    "  full_at INTEGER NOT NULL DEFAULT 0,"
    "  status TEXT"
    ");"
    "CREATE TABLE changes ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  at INTEGER NOT NULL,"
    "  body BLOB NOT NULL,"
    "  size INTEGER NOT NULL"
    ");"
    "CREATE INDEX changes_at ON changes (at);"
    "CREATE TABLE webhook_events ("
    "  id TEXT PRIMARY KEY,"
    "  received_at INTEGER NOT NULL"
    ");"
    "CREATE INDEX webhook_events_at ON webhook_events (received_at);"
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);"
    "INSERT INTO meta (key, value) VALUES ('application', 'kombofs');"
    "PRAGMA user_version = 1;";

/*
 * Version 2: a "created" change entry borrows its record's body instead of
 * holding a copy (the first full fetch wrote every record twice). Such an
 * entry has rec = the record's rowid and split = where the record goes in
 * its body, which then holds the entry without the record: see splice_entry().
 * records.created_seq names the entry that borrows the record's current
 * body; before that body changes or goes, the entry gets its own copy
 * (own_entry()), so an entry's text never changes.
 */
static const char migrate_v2[] =
    "BEGIN;"
    "ALTER TABLE records ADD COLUMN created_seq INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE changes ADD COLUMN rec INTEGER;"
    "ALTER TABLE changes ADD COLUMN split INTEGER;"
    "PRAGMA user_version = 2;"
    "COMMIT;";

/* Wait for another connection's write lock in 1 ms steps (SQLite's own
 * busy_timeout backs off up to 100 ms per step, which turned a 10 ms page
 * transaction into a 300 ms wait for the webhook receiver). Gives up after
 * 10 s. */
static int busy_nap(void *ctx, int count)
{
    (void)ctx;
    if (count >= 10000)
        return 0;
    struct timespec ts = { 0, 1000000 };
    nanosleep(&ts, NULL);
    return 1;
}

static int exec(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "%s", msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int pragma_int(sqlite3 *db, const char *sql, int *out)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
        return -1;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return rc == SQLITE_ROW ? 0 : -1;
}

/* A new file is created here with 0600, before SQLite opens it. */
static int create_private(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create cache '%s': %s", path, strerror(errno));
        return -1;
    }
    close(fd);
    return 0;
}

/* Whether the last daemon on this cache stopped without store_release(),
 * or the flag cannot even be read (then the file needs the check too). */
static int left_in_use(struct store *st)
{
    sqlite3_stmt *s;
    int in_use = 1;
    if (sqlite3_prepare_v2(st->db, "SELECT value FROM meta WHERE key = 'in_use'", -1, &s,
                           NULL) == SQLITE_OK) {
        int rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            const char *v = (const char *)sqlite3_column_text(s, 0);
            in_use = v && strcmp(v, "1") == 0;
        } else if (rc == SQLITE_DONE) {
            in_use = 0;
        }
        sqlite3_finalize(s);
    }
    return in_use;
}

static int check_schema(struct store *st, int verify, char *err, size_t errlen)
{
    int version = 0, tables = 0;
    if (pragma_int(st->db, "PRAGMA user_version", &version) < 0 ||
        pragma_int(st->db, "SELECT count(*) FROM sqlite_master", &tables) < 0) {
        snprintf(err, errlen, "cache '%s' is not a SQLite database or is corrupt: %s",
                 st->path, sqlite3_errmsg(st->db));
        return -1;
    }
    int fresh = version == 0 && tables == 0;
    if (fresh && exec(st->db, schema_v1, err, errlen) < 0)
        return -1;
    if (fresh)
        version = 1;
    if (version > STORE_SCHEMA_VERSION) {
        snprintf(err, errlen, "cache '%s' has schema version %d, newer than this kombofs (%d): refusing to touch it",
                 st->path, version, STORE_SCHEMA_VERSION);
        return -1;
    }
    if (version < 1) {
        snprintf(err, errlen, "cache '%s' is not a kombofs cache (a SQLite file with other tables)", st->path);
        return -1;
    }
    if (version < 2 && exec(st->db, migrate_v2, err, errlen) < 0) {
        if (!sqlite3_get_autocommit(st->db))
            sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        char why[256];
        snprintf(why, sizeof why, "%s", err);
        snprintf(err, errlen, "cache '%s': cannot upgrade it to schema version 2: %s", st->path, why);
        return -1;
    }
    if (fresh)
        return 0;
    /* A whole-file check costs about 0.5 s per GB: done when the last daemon
     * did not stop cleanly (a crash, a kill -9, a power cut), not every start. */
    if (!verify || !left_in_use(st))
        return 0;
    log_info("cache %s was not closed cleanly: checking it", st->path);
    int quick = 0;
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(st->db, "PRAGMA quick_check", -1, &s, NULL) == SQLITE_OK) {
        if (sqlite3_step(s) == SQLITE_ROW) {
            const char *r = (const char *)sqlite3_column_text(s, 0);
            quick = r && strcmp(r, "ok") == 0;
        }
        sqlite3_finalize(s);
    }
    if (!quick) {
        snprintf(err, errlen, "cache '%s' is corrupt (PRAGMA quick_check failed); move it away to start afresh",
                 st->path);
        return -1;
    }
    return 0;
}

static struct store *open_store(const char *path, int verify, char *err, size_t errlen)
{
    struct store *st = calloc(1, sizeof *st);
    if (!st)
        abort();
    st->path = strdup(path);
    st->serial = ++store_serials;
    pthread_mutex_init(&st->readers_lock, NULL);

    if (access(path, F_OK) < 0 && create_private(path, err, errlen) < 0)
        goto fail;
    if (sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open cache '%s': %s", path,
                 st->db ? sqlite3_errmsg(st->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_handler(st->db, busy_nap, NULL);
    /* 16 KiB pages for a new cache (an existing one keeps its size): records
     * average a few KiB, and with 4 KiB pages a full fetch of 100k employees
     * took 3.9 s against 3.4 s (8 KiB: 4.4 s); a cold `cat` of those files
     * was no slower. Must come before the first write; a file that is no
     * database is reported by the next statement. */
    sqlite3_exec(st->db, "PRAGMA page_size = 16384", NULL, NULL, NULL);
    if (exec(st->db, "PRAGMA journal_mode = WAL", err, errlen) < 0) {
        snprintf(err, errlen, "cache '%s' is not a SQLite database or is corrupt", path);
        goto fail;
    }
    /* A checkpoint every 64 MB of WAL rather than SQLite's 4 MB: each one
     * syncs the WAL and the database, and a full fetch of 100k employees
     * (545 MB) made about 300 of them (measured: 6.3 s -> 5.3 s). */
    if (exec(st->db, "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = OFF;"
                     " PRAGMA wal_autocheckpoint = 16384", err, errlen) < 0)
        goto fail;
    if (check_schema(st, verify, err, errlen) < 0)
        goto fail;
    for (int i = 0; i < W_COUNT; i++) {
        if (sqlite3_prepare_v3(st->db, wsql[i], -1, SQLITE_PREPARE_PERSISTENT,
                               &st->st[i], NULL) != SQLITE_OK) {
            snprintf(err, errlen, "cache '%s': %s", path, sqlite3_errmsg(st->db));
            goto fail;
        }
    }
    return st;
fail:
    store_close(st);
    return NULL;
}

struct store *store_open(const char *path, char *err, size_t errlen)
{
    return open_store(path, 1, err, errlen);
}

struct store *store_open_again(const char *path, char *err, size_t errlen)
{
    return open_store(path, 0, err, errlen);
}

int store_claim(struct store *st)
{
    return store_meta_set(st, "in_use", "1");
}

int store_release(struct store *st)
{
    return store_meta_set(st, "in_use", "0");
}

static void reader_close(struct store_reader *r)
{
    for (int i = 0; i < R_NSTMT; i++)
        sqlite3_finalize(r->st[i]);
    sqlite3_close(r->db);
    free(r);
}

void store_close(struct store *st)
{
    if (!st)
        return;
    pthread_mutex_lock(&st->readers_lock);
    struct store_reader *r = st->readers;
    st->readers = NULL;
    pthread_mutex_unlock(&st->readers_lock);
    while (r) {
        struct store_reader *next = r->next;
        reader_close(r);
        r = next;
    }
    for (int i = 0; i < W_COUNT; i++)
        sqlite3_finalize(st->st[i]);
    if (st->db)
        sqlite3_close(st->db);
    pthread_mutex_destroy(&st->readers_lock);
    free(st->path);
    free(st);
}

const char *store_path(const struct store *st)
{
    return st->path;
}

/* ---- writer helpers ---- */

static sqlite3_stmt *w(struct store *st, enum wstmt i)
{
    sqlite3_stmt *s = st->st[i];
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
}

static int done(struct store *st, sqlite3_stmt *s, const char *what)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        log_warnx("cache: %s: %s", what, sqlite3_errmsg(st->db));
        return -1;
    }
    return 0;
}

static char *col_strdup(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return t ? strdup((const char *)t) : NULL;
}

int store_begin(struct store *st)
{
    return done(st, w(st, W_BEGIN), "begin");
}

int store_commit(struct store *st)
{
    return done(st, w(st, W_COMMIT), "commit");
}

void store_rollback(struct store *st)
{
    if (!sqlite3_get_autocommit(st->db))
        done(st, w(st, W_ROLLBACK), "rollback");
}

void store_record_free(struct store_record *r)
{
    free(r->body);
    free(r->changed_at);
    memset(r, 0, sizeof *r);
}

int store_record_get(struct store *st, int model, const char *name,
                     struct store_record *out)
{
    sqlite3_stmt *s = w(st, W_REC_GET);
    memset(out, 0, sizeof *out);
    sqlite3_bind_int(s, 1, model);
    sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        out->ino = (uint64_t)sqlite3_column_int64(s, 0) + STORE_INO_RECORD_BASE;
        out->node = store_node(out->ino, (uint64_t)sqlite3_column_int64(s, 3));
        int n = sqlite3_column_bytes(s, 1);
        const void *b = sqlite3_column_blob(s, 1);
        out->body = malloc((size_t)n + 1);
        if (!out->body)
            abort();
        if (n)
            memcpy(out->body, b, (size_t)n);
        out->body[n] = '\0';
        out->size = (size_t)n;
        out->changed_at = col_strdup(s, 2);
    }
    sqlite3_reset(s);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    log_warnx("cache: record lookup: %s", sqlite3_errmsg(st->db));
    return -1;
}

/* The content columns, in the order both record statements bind them from `first`:
 * body, size, changed_at, remote_id, mtime, gen. */
static void bind_content(sqlite3_stmt *s, int first, const char *body, size_t size,
                         const char *changed_at, const char *remote_id, int64_t mtime_ns,
                         int64_t gen)
{
    sqlite3_bind_blob(s, first, body, (int)size, SQLITE_STATIC);
    sqlite3_bind_int64(s, first + 1, (sqlite3_int64)size);
    if (changed_at)
        sqlite3_bind_text(s, first + 2, changed_at, -1, SQLITE_STATIC);
    if (remote_id)
        sqlite3_bind_text(s, first + 3, remote_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, first + 4, mtime_ns);
    sqlite3_bind_int64(s, first + 5, gen);
}

static uint64_t insert_record(struct store *st, int model, const char *id, const char *name,
                              const char *body, size_t size, const char *changed_at,
                              const char *remote_id, int64_t mtime_ns, int64_t gen,
                              int64_t created_seq)
{
    sqlite3_stmt *s = w(st, W_REC_INSERT);
    sqlite3_bind_int(s, 1, model);
    sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, name, -1, SQLITE_STATIC);
    bind_content(s, 4, body, size, changed_at, remote_id, mtime_ns, gen);
    sqlite3_bind_int64(s, 10, created_seq);
    if (done(st, s, "record insert") < 0)
        return 0;
    return (uint64_t)sqlite3_last_insert_rowid(st->db) + STORE_INO_RECORD_BASE;
}

uint64_t store_record_insert(struct store *st, int model, const char *id,
                             const char *name, const char *body, size_t size,
                             const char *changed_at, const char *remote_id,
                             int64_t mtime_ns, int64_t gen)
{
    return insert_record(st, model, id, name, body, size, changed_at, remote_id, mtime_ns,
                         gen, 0);
}

/* ---- entries that borrow a record's body ---- */

/* The indentation (spaces) of the line that offset `at` of text is on. */
static size_t line_indent(const char *text, size_t at)
{
    size_t start = at, n = 0;
    while (start > 0 && text[start - 1] != '\n')
        start--;
    while (start + n < at && text[start + n] == ' ')
        n++;
    return n;
}

/* The record's text as it goes into an entry: without its final newline. */
static size_t rec_len(const char *rec, size_t len)
{
    return len && rec[len - 1] == '\n' ? len - 1 : len;
}

static size_t count_newlines(const char *p, size_t n)
{
    size_t k = 0;
    const char *end = p + n;
    while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        k++;
        p++;
    }
    return k;
}

/* The size of splice_entry(): computed when the entry is written, from the same rule. */
static size_t splice_size(const char *entry, size_t elen, size_t split, const char *rec,
                          size_t rlen)
{
    rlen = rec_len(rec, rlen);
    return elen + rlen + count_newlines(rec, rlen) * line_indent(entry, split);
}

/* A borrowing entry's text: entry[0, split), the record without its final
 * newline, each of its line breaks followed by the indentation of the line
 * the split is on (so a record rendered at depth 0 reads as if rendered in
 * place), then entry[split, elen). Appended to out. */
static void splice_entry(const char *entry, size_t elen, size_t split, const char *rec,
                   size_t rlen, struct buf *out)
{
    size_t indent = line_indent(entry, split);
    rlen = rec_len(rec, rlen);
    buf_reserve(out, elen + rlen + count_newlines(rec, rlen) * indent);
    buf_add(out, entry, split);
    const char *p = rec, *end = rec + rlen;
    while (p < end) {       /* the room was reserved above: plain copies */
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
        memcpy(out->data + out->len, p, n);
        out->len += n;
        if (nl) {
            memset(out->data + out->len, ' ', indent);
            out->len += indent;
        }
        p += n;
    }
    out->data[out->len] = '\0';
    buf_add(out, entry + split, elen - split);
}

/* The text of a borrowing entry from a row whose columns col, col + 1 and
 * col + 2 are its body, its split and the record's body. */
static int borrowed_text(sqlite3_stmt *s, int col, int64_t seq, struct buf *out)
{
    const char *entry = sqlite3_column_blob(s, col);
    size_t elen = (size_t)sqlite3_column_bytes(s, col);
    int64_t split = sqlite3_column_int64(s, col + 1);
    const char *rec = sqlite3_column_blob(s, col + 2);
    size_t rlen = (size_t)sqlite3_column_bytes(s, col + 2);
    if (split < 0 || (uint64_t)split > elen || sqlite3_column_type(s, col + 2) == SQLITE_NULL) {
        log_warnx("cache: change entry %lld borrows a record it cannot find", (long long)seq);
        return -1;
    }
    splice_entry(entry ? entry : "", elen, (size_t)split, rec ? rec : "", rlen, out);
    return 0;
}

/* Copy up to n bytes from offset off of src[0, size) into dst: the count. */
static long copy_slice(const char *src, size_t size, char *dst, size_t off, size_t n)
{
    if (off >= size)
        return 0;
    size_t k = size - off < n ? size - off : n;
    memcpy(dst, src + off, k);
    return (long)k;
}

/* Before the current body of record ino changes or goes: the entry that
 * borrows it, if any, gets its own copy of its text. */
static int own_entry(struct store *st, uint64_t ino)
{
    sqlite3_stmt *s = w(st, W_CH_BORROWED);
    sqlite3_bind_int64(s, 1, (sqlite3_int64)(ino - STORE_INO_RECORD_BASE));
    int rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(s);
        if (rc == SQLITE_DONE)
            return 0;
        log_warnx("cache: borrowed entry: %s", sqlite3_errmsg(st->db));
        return -1;
    }
    int64_t seq = sqlite3_column_int64(s, 0);
    struct buf text = BUF_INIT;
    rc = borrowed_text(s, 1, seq, &text);
    sqlite3_reset(s);
    if (rc < 0)
        return -1;
    s = w(st, W_CH_OWN);
    sqlite3_bind_int64(s, 1, seq);
    sqlite3_bind_blob(s, 2, text.data, (int)text.len, SQLITE_STATIC);
    rc = done(st, s, "change entry copy");
    buf_free(&text);
    return rc;
}

static int64_t next_seq(struct store *st)
{
    sqlite3_stmt *s = w(st, W_CH_NEXT);
    int rc = sqlite3_step(s);
    int64_t seq = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
    sqlite3_reset(s);
    if (seq < 0)
        log_warnx("cache: change numbering: %s", sqlite3_errmsg(st->db));
    return seq;
}

static int insert_change(struct store *st, int64_t seq, int64_t at_ns, const char *entry,
                         size_t elen, size_t size, uint64_t rec, size_t split)
{
    sqlite3_stmt *s = w(st, W_CH_INSERT);
    sqlite3_bind_int64(s, 1, seq);
    sqlite3_bind_int64(s, 2, at_ns);
    sqlite3_bind_blob(s, 3, entry, (int)elen, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, (sqlite3_int64)size);
    if (rec) {
        sqlite3_bind_int64(s, 5, (sqlite3_int64)(rec - STORE_INO_RECORD_BASE));
        sqlite3_bind_int64(s, 6, (sqlite3_int64)split);
    }
    return done(st, s, "change insert");
}

int64_t store_record_create(struct store *st, int model, const char *id,
                            const char *name, const char *body, size_t size,
                            const char *changed_at, const char *remote_id,
                            int64_t mtime_ns, int64_t gen, store_created_fn fn,
                            void *ctx, uint64_t *ino)
{
    int64_t seq = next_seq(st);
    if (seq < 0)
        return -1;
    size_t split = 0;
    char *entry = fn(ctx, seq, &split);
    if (!entry)
        return -1;
    size_t elen = strlen(entry);
    int rc = -1;
    if (split <= elen) {
        *ino = insert_record(st, model, id, name, body, size, changed_at, remote_id, mtime_ns,
                             gen, seq);
        if (*ino)
            rc = insert_change(st, seq, mtime_ns, entry, elen,
                               splice_size(entry, elen, split, body, size), *ino, split);
    }
    free(entry);
    return rc < 0 ? -1 : seq;
}

/* Keep the current version of record ino readable under its node. */
static int supersede(struct store *st, uint64_t ino)
{
    int64_t now = clock_now_ns();
    sqlite3_stmt *s = w(st, W_SUPERSEDED_PRUNE);
    sqlite3_bind_int64(s, 1, now);
    if (done(st, s, "superseded prune") < 0)
        return -1;
    s = w(st, W_SUPERSEDE);
    sqlite3_bind_int64(s, 1, (sqlite3_int64)ino);
    sqlite3_bind_int64(s, 2, now + (int64_t)STORE_SUPERSEDED_KEEP_S * 1000000000);
    sqlite3_bind_int64(s, 3, (sqlite3_int64)(ino - STORE_INO_RECORD_BASE));
    return done(st, s, "supersede");
}

int store_record_update(struct store *st, uint64_t ino, const char *body,
                        size_t size, const char *changed_at,
                        const char *remote_id, int64_t mtime_ns, int64_t gen,
                        uint64_t *node)
{
    if (own_entry(st, ino) < 0 || supersede(st, ino) < 0)
        return -1;
    sqlite3_stmt *s = w(st, W_REC_UPDATE);
    sqlite3_bind_int64(s, 1, (sqlite3_int64)(ino - STORE_INO_RECORD_BASE));
    bind_content(s, 2, body, size, changed_at, remote_id, mtime_ns, gen);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *node = store_node(ino, (uint64_t)sqlite3_column_int64(s, 0));
    sqlite3_reset(s);
    if (rc != SQLITE_ROW) {
        log_warnx("cache: record update: %s", sqlite3_errmsg(st->db));
        return -1;
    }
    return 0;
}

int store_record_touch(struct store *st, uint64_t ino, int64_t gen)
{
    sqlite3_stmt *s = w(st, W_REC_TOUCH);
    sqlite3_bind_int64(s, 1, (sqlite3_int64)(ino - STORE_INO_RECORD_BASE));
    sqlite3_bind_int64(s, 2, gen);
    return done(st, s, "record touch");
}

int store_record_delete(struct store *st, uint64_t ino)
{
    if (own_entry(st, ino) < 0 || supersede(st, ino) < 0)
        return -1;
    sqlite3_stmt *s = w(st, W_REC_DELETE);
    sqlite3_bind_int64(s, 1, (sqlite3_int64)(ino - STORE_INO_RECORD_BASE));
    return done(st, s, "record delete");
}

int store_records_stale(struct store *st, int model, int64_t gen, int max,
                        store_stale_fn fn, void *ctx)
{
    sqlite3_stmt *s = w(st, W_REC_STALE);
    int n = 0, rc;
    sqlite3_bind_int(s, 1, model);
    sqlite3_bind_int64(s, 2, gen);
    sqlite3_bind_int(s, 3, max);
    /* Copy the rows first: fn may delete them, which would disturb the cursor. */
    struct row { uint64_t ino, node; char *id, *name; } *rows = NULL;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct row *p = realloc(rows, (size_t)(n + 1) * sizeof *rows);
        if (!p)
            abort();
        rows = p;
        rows[n].ino = (uint64_t)sqlite3_column_int64(s, 0) + STORE_INO_RECORD_BASE;
        rows[n].node = store_node(rows[n].ino, (uint64_t)sqlite3_column_int64(s, 3));
        rows[n].id = col_strdup(s, 1);
        rows[n].name = col_strdup(s, 2);
        n++;
    }
    sqlite3_reset(s);
    int result = rc == SQLITE_DONE ? n : -1;
    for (int i = 0; i < n; i++) {
        if (result >= 0 && fn(ctx, rows[i].ino, rows[i].node, rows[i].id, rows[i].name) < 0)
            result = -1;
        free(rows[i].id);
        free(rows[i].name);
    }
    free(rows);
    return result;
}

long store_record_count(struct store *st, int model)
{
    sqlite3_stmt *s = w(st, W_REC_COUNT);
    long n = -1;
    sqlite3_bind_int(s, 1, model);
    if (sqlite3_step(s) == SQLITE_ROW)
        n = (long)sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    return n;
}

/* ---- endpoints ---- */

void store_endpoint_free(struct store_endpoint *e)
{
    free(e->watermark);
    free(e->status_json);
    memset(e, 0, sizeof *e);
}

static int ensure_endpoint(struct store *st, int model)
{
    sqlite3_stmt *s = w(st, W_EP_ENSURE);
    sqlite3_bind_int(s, 1, model);
    return done(st, s, "endpoint");
}

int store_endpoint_get(struct store *st, int model, struct store_endpoint *out)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s = w(st, W_EP_GET);
    sqlite3_bind_int(s, 1, model);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        out->watermark = col_strdup(s, 0);
        out->gen = sqlite3_column_int64(s, 1);
        out->full_at = sqlite3_column_int64(s, 2);
        out->status_json = col_strdup(s, 3);
    }
    sqlite3_reset(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

static int ep_update(struct store *st, enum wstmt i, int model,
                     const char *text, int64_t num)
{
    if (ensure_endpoint(st, model) < 0)
        return -1;
    sqlite3_stmt *s = w(st, i);
    sqlite3_bind_int(s, 1, model);
    if (i == W_EP_GEN || i == W_EP_FULL_AT)
        sqlite3_bind_int64(s, 2, num);
    else if (text)
        sqlite3_bind_text(s, 2, text, -1, SQLITE_STATIC);
    return done(st, s, "endpoint update");
}

int store_endpoint_set_watermark(struct store *st, int model, const char *wm)
{
    return ep_update(st, W_EP_WATERMARK, model, wm, 0);
}

int store_endpoint_set_gen(struct store *st, int model, int64_t gen)
{
    return ep_update(st, W_EP_GEN, model, NULL, gen);
}

int store_endpoint_set_full_at(struct store *st, int model, int64_t full_at)
{
    return ep_update(st, W_EP_FULL_AT, model, NULL, full_at);
}

int store_endpoint_set_status(struct store *st, int model, const char *json)
{
    return ep_update(st, W_EP_STATUS, model, json, 0);
}

/* ---- change log ---- */

int64_t store_change_add(struct store *st, int64_t at_ns, store_change_fn fn,
                         void *ctx)
{
    int64_t seq = next_seq(st);
    if (seq < 0)
        return -1;
    char *body = fn(ctx, seq);
    if (!body)
        return -1;
    size_t len = strlen(body);
    int rc = insert_change(st, seq, at_ns, body, len, len, 0, 0);
    free(body);
    return rc < 0 ? -1 : seq;
}

long store_changes_prune(struct store *st, int64_t before_ns, store_seq_fn fn,
                         void *ctx)
{
    sqlite3_stmt *s = w(st, W_CH_OLD);
    sqlite3_bind_int64(s, 1, before_ns);
    while (fn && sqlite3_step(s) == SQLITE_ROW)
        fn(ctx, sqlite3_column_int64(s, 0));
    sqlite3_reset(s);
    s = w(st, W_CH_PRUNE);
    sqlite3_bind_int64(s, 1, before_ns);
    if (done(st, s, "change prune") < 0)
        return -1;
    return sqlite3_changes(st->db);
}

/* ---- webhook event ids ---- */

int store_webhook_record(struct store *st, const char *id, int64_t now_s,
                         int64_t keep_s)
{
    sqlite3_stmt *s;
    if (now_s - st->webhook_pruned_at >= 3600) {   /* ids are kept keep_s, give or take an hour */
        s = w(st, W_WH_PRUNE);
        sqlite3_bind_int64(s, 1, now_s - keep_s);
        if (done(st, s, "webhook prune") < 0)
            return -1;
        st->webhook_pruned_at = now_s;
    }
    s = w(st, W_WH_INSERT);
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, now_s);
    if (done(st, s, "webhook insert") < 0)
        return -1;
    return sqlite3_changes(st->db) > 0 ? 1 : 0;
}

/* ---- meta ---- */

char *store_meta_get(struct store *st, const char *key)
{
    sqlite3_stmt *s = w(st, W_META_GET);
    char *v = NULL;
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW)
        v = col_strdup(s, 0);
    sqlite3_reset(s);
    return v;
}

int store_meta_set(struct store *st, const char *key, const char *value)
{
    sqlite3_stmt *s = w(st, W_META_SET);
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, value, -1, SQLITE_STATIC);
    return done(st, s, "meta");
}

/* ---- readers ---- */

struct store_reader *store_reader(struct store *st)
{
    if (tl_reader && tl_reader_owner == st->serial)
        return tl_reader;
    struct store_reader *r = calloc(1, sizeof *r);
    if (!r)
        abort();
    if (sqlite3_open_v2(st->path, &r->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK)
        goto fail;
    sqlite3_busy_handler(r->db, busy_nap, NULL);
    for (int i = 0; i < R_NSTMT; i++)
        if (sqlite3_prepare_v3(r->db, rsql[i], -1, SQLITE_PREPARE_PERSISTENT,
                               &r->st[i], NULL) != SQLITE_OK)
            goto fail;
    pthread_mutex_lock(&st->readers_lock);
    r->next = st->readers;
    st->readers = r;
    pthread_mutex_unlock(&st->readers_lock);
    tl_reader = r;
    tl_reader_owner = st->serial;
    return r;
fail:
    log_warnx("cache: cannot open a reader: %s", r->db ? sqlite3_errmsg(r->db) : "no memory");
    reader_close(r);
    return NULL;
}

static sqlite3_stmt *rs(struct store_reader *r, enum rstmt i)
{
    sqlite3_stmt *s = r->st[i];
    sqlite3_reset(s);
    return s;
}

/* ver_col < 0: no version (change-log entries). */
static void fill_attr(sqlite3_stmt *s, int ino_col, uint64_t base, int size_col,
                      int mtime_col, int ver_col, struct store_attr *out)
{
    out->ino = (uint64_t)sqlite3_column_int64(s, ino_col) + base;
    out->node = ver_col < 0 ? out->ino
                            : store_node(out->ino, (uint64_t)sqlite3_column_int64(s, ver_col));
    out->size = (uint64_t)sqlite3_column_int64(s, size_col);
    out->mtime_ns = sqlite3_column_int64(s, mtime_col);
}

static int row_result(struct store_reader *r, int rc)
{
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    log_warnx("cache: read: %s", sqlite3_errmsg(r->db));
    return -1;
}

int store_read_lookup(struct store_reader *r, int model, const char *name,
                      struct store_attr *out)
{
    sqlite3_stmt *s = rs(r, R_LOOKUP);
    sqlite3_bind_int(s, 1, model);
    sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        fill_attr(s, 0, STORE_INO_RECORD_BASE, 1, 2, 3, out);
    rc = row_result(r, rc);
    sqlite3_reset(s);
    return rc;
}

static uint64_t node_ver(uint64_t node)
{
    return (node - STORE_INO_RECORD_BASE) >> STORE_NODE_VER_SHIFT;
}

int store_read_record_attr(struct store_reader *r, uint64_t node, int *model,
                           struct store_attr *out)
{
    uint64_t ino = store_node_ino(node);
    sqlite3_stmt *s = rs(r, R_ATTR);
    sqlite3_bind_int64(s, 1, (sqlite3_int64)(ino - STORE_INO_RECORD_BASE));
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW && ((uint64_t)sqlite3_column_int64(s, 3) & STORE_NODE_VER_MASK) ==
                                node_ver(node)) {
        *model = sqlite3_column_int(s, 0);
        out->node = node;
        out->ino = ino;
        out->size = (uint64_t)sqlite3_column_int64(s, 1);
        out->mtime_ns = sqlite3_column_int64(s, 2);
        sqlite3_reset(s);
        return 1;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return row_result(r, rc);
    /* Not the current version: a superseded one? */
    s = rs(r, R_OLD_ATTR);
    sqlite3_bind_int64(s, 1, (sqlite3_int64)node);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *model = -1;
        out->node = node;
        out->ino = ino;
        out->size = (uint64_t)sqlite3_column_int64(s, 0);
        out->mtime_ns = sqlite3_column_int64(s, 1);
    }
    rc = row_result(r, rc);
    sqlite3_reset(s);
    return rc;
}

int store_read_list(struct store_reader *r, int model, uint64_t after, int max,
                    store_list_fn fn, void *ctx)
{
    sqlite3_stmt *s = rs(r, R_LIST);
    int n = 0, rc;
    sqlite3_bind_int(s, 1, model);
    sqlite3_bind_int64(s, 2, after >= STORE_INO_RECORD_BASE
                                 ? (sqlite3_int64)(after - STORE_INO_RECORD_BASE) : 0);
    sqlite3_bind_int(s, 3, max);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_attr a;
        fill_attr(s, 0, STORE_INO_RECORD_BASE, 2, 3, 4, &a);
        if (fn(ctx, (const char *)sqlite3_column_text(s, 1), &a))
            break;
        n++;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        n = row_result(r, rc);
    sqlite3_reset(s);
    return n;
}

static long read_blob(struct store_reader *r, enum rstmt i, int64_t key, int64_t key2,
                      char *dst, size_t off, size_t n)
{
    sqlite3_stmt *s = rs(r, i);
    sqlite3_bind_int64(s, 1, key);
    if (i == R_BODY)
        sqlite3_bind_int64(s, 2, key2);
    int rc = sqlite3_step(s);
    long copied = -1;
    if (rc == SQLITE_ROW) {
        copied = copy_slice(sqlite3_column_blob(s, 0), (size_t)sqlite3_column_bytes(s, 0),
                            dst, off, n);
    } else {
        row_result(r, rc);
    }
    sqlite3_reset(s);
    return copied;
}

long store_read_body(struct store_reader *r, uint64_t node, char *dst,
                     size_t off, size_t n)
{
    long got = read_blob(r, R_BODY, (int64_t)(store_node_ino(node) - STORE_INO_RECORD_BASE),
                         (int64_t)node_ver(node), dst, off, n);
    return got >= 0 ? got : read_blob(r, R_OLD_BODY, (int64_t)node, 0, dst, off, n);
}

int store_read_meta(struct store_reader *r, uint64_t node, char **id,
                    char **remote_id, char **changed_at)
{
    sqlite3_stmt *s = rs(r, R_META);
    sqlite3_bind_int64(s, 1, (sqlite3_int64)(store_node_ino(node) - STORE_INO_RECORD_BASE));
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *id = col_strdup(s, 0);
        *remote_id = col_strdup(s, 1);
        *changed_at = col_strdup(s, 2);
    }
    rc = row_result(r, rc);
    sqlite3_reset(s);
    return rc;
}

int store_read_change_attr(struct store_reader *r, int64_t seq,
                           struct store_attr *out)
{
    sqlite3_stmt *s = rs(r, R_CH_ATTR);
    sqlite3_bind_int64(s, 1, seq);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        out->ino = out->node = STORE_INO_CHANGE_BASE + (uint64_t)seq;
        out->size = (uint64_t)sqlite3_column_int64(s, 0);
        out->mtime_ns = sqlite3_column_int64(s, 1);
    }
    rc = row_result(r, rc);
    sqlite3_reset(s);
    return rc;
}

int store_read_change_list(struct store_reader *r, int64_t after, int max,
                           store_list_fn fn, void *ctx)
{
    sqlite3_stmt *s = rs(r, R_CH_LIST);
    int n = 0, rc;
    sqlite3_bind_int64(s, 1, after);
    sqlite3_bind_int(s, 2, max);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_attr a;
        char name[32];
        fill_attr(s, 0, STORE_INO_CHANGE_BASE, 1, 2, -1, &a);
        snprintf(name, sizeof name, "%012lld.json", (long long)sqlite3_column_int64(s, 0));
        if (fn(ctx, name, &a))
            break;
        n++;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        n = row_result(r, rc);
    sqlite3_reset(s);
    return n;
}

long store_read_change_body(struct store_reader *r, int64_t seq, char *dst,
                            size_t off, size_t n)
{
    sqlite3_stmt *s = rs(r, R_CH_BODY);
    sqlite3_bind_int64(s, 1, seq);
    int rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        row_result(r, rc);
        sqlite3_reset(s);
        return -1;
    }
    long copied = -1;
    if (sqlite3_column_type(s, 1) == SQLITE_NULL) {
        copied = copy_slice(sqlite3_column_blob(s, 0), (size_t)sqlite3_column_bytes(s, 0), dst,
                            off, n);
    } else {
        struct buf text = BUF_INIT;
        if (borrowed_text(s, 0, seq, &text) == 0)
            copied = copy_slice(text.data, text.len, dst, off, n);
        buf_free(&text);
    }
    sqlite3_reset(s);
    return copied;
}

int store_read_change_range(struct store_reader *r, int64_t *first,
                            int64_t *last)
{
    sqlite3_stmt *s = rs(r, R_CH_RANGE);
    int rc = sqlite3_step(s);
    *first = *last = 0;
    if (rc == SQLITE_ROW) {
        *first = sqlite3_column_int64(s, 0);
        *last = sqlite3_column_int64(s, 1);
    }
    rc = row_result(r, rc);
    sqlite3_reset(s);
    return rc < 0 ? -1 : 0;
}

long store_read_count(struct store_reader *r, int model)
{
    sqlite3_stmt *s = rs(r, R_COUNT);
    long n = -1;
    sqlite3_bind_int(s, 1, model);
    if (sqlite3_step(s) == SQLITE_ROW)
        n = (long)sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    return n;
}

char *store_read_watermark(struct store_reader *r, int model)
{
    sqlite3_stmt *s = rs(r, R_WATERMARK);
    char *v = NULL;
    sqlite3_bind_int(s, 1, model);
    if (sqlite3_step(s) == SQLITE_ROW)
        v = col_strdup(s, 0);
    sqlite3_reset(s);
    return v;
}
