/*
 * store.c — schema, migrations and every SQL statement of kombofs.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
/* malloc_trim is glibc's; under AddressSanitizer, whose allocator replaces
 * glibc's, it walks arenas that were never set up (a CI run crashed in it). */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KOMBOFS_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define KOMBOFS_ASAN 1
#endif
#if defined(__GLIBC__) && !defined(KOMBOFS_ASAN)
#define KOMBOFS_TRIM 1
#include <malloc.h>
#endif
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "entry.h"
#include "export.h"
#include "jtext.h"
#include "log.h"
#include "models.h"
#include "pack.h"
#include "seqvfs.h"

/* The writer's statements, prepared once. */
enum wstmt {
    W_BEGIN, W_COMMIT, W_ROLLBACK,
    W_REC_GET, W_REC_INSERT, W_REC_UPDATE, W_REC_TOUCH, W_REC_DELETE,
    W_REC_STALE, W_REC_COUNT, W_REC_NONE, W_CH_RANGE, W_SUPERSEDE, W_SUPERSEDED_PRUNE,
    W_EP_GET, W_EP_ENSURE, W_EP_WATERMARK, W_EP_GEN, W_EP_FULL_AT, W_EP_STATUS,
    W_CH_NEXT, W_CH_INSERT, W_CH_OLD, W_CH_PRUNE, W_CH_BORROWED, W_CH_OWN,
    W_META_GET, W_META_SET, W_WH_INSERT, W_WH_PRUNE,
    W_REC_SIZES, W_VIEWS_ADD, W_KEYSET_GET, W_KEYSET_ADD, W_MEMBERS_EMAIL, W_MEMBERS_RID,
    W_BACKFILL_GET, W_BACKFILL_SET, W_DICT_GET, W_DICT_LATEST, W_DICT_ADD,
    W_COUNT
};

static const char *const wsql[W_COUNT] = {
    [W_BEGIN] = "BEGIN IMMEDIATE",
    [W_COMMIT] = "COMMIT",
    [W_ROLLBACK] = "ROLLBACK",
    [W_REC_GET] = "SELECT ino, body, changed_at, ver, ename, rname, zdict FROM records"
                  " WHERE model = ?1 AND name = ?2",
    [W_REC_INSERT] = "INSERT INTO records (model, id, name, body, size, changed_at, remote_id, mtime, gen,"
                     " ename, rname, jsize, csize, keyset, created_seq, zdict)"
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    [W_REC_UPDATE] = "UPDATE records SET body = ?2, size = ?3, changed_at = ?4, remote_id = ?5,"
                     " mtime = ?6, gen = ?7, ename = ?8, rname = ?9, jsize = ?10, csize = ?11,"
                     " keyset = ?12, zdict = ?13, ver = ver + 1, created_seq = 0 WHERE ino = ?1"
                     " RETURNING ver",
    [W_REC_SIZES] = "SELECT model, jsize, csize FROM records WHERE ino = ?1",
    /* The exports' version and totals, once per model per transaction. */
    [W_VIEWS_ADD] = "INSERT INTO views (model, ver, mtime, n, jsonl, csv) VALUES (?1, 1, ?2, ?3, ?4, ?5)"
                    " ON CONFLICT (model) DO UPDATE SET ver = ver + 1, mtime = excluded.mtime,"
                    " n = n + excluded.n, jsonl = jsonl + excluded.jsonl, csv = csv + excluded.csv",
    [W_KEYSET_GET] = "SELECT id FROM keysets WHERE keys = ?1",
    [W_KEYSET_ADD] = "INSERT INTO keysets (keys) VALUES (?1)",
    [W_MEMBERS_EMAIL] = "SELECT ino, name FROM records WHERE model = ?1 AND ename = ?2"
                        " AND ename IS NOT NULL ORDER BY id",
    [W_MEMBERS_RID] = "SELECT ino, name FROM records WHERE model = ?1 AND rname = ?2"
                      " AND rname IS NOT NULL ORDER BY id",
    [W_BACKFILL_GET] = "SELECT ino, model, body, zdict FROM records WHERE jsize IS NULL LIMIT 256",
    [W_BACKFILL_SET] = "UPDATE records SET ename = ?2, rname = ?3, jsize = ?4, csize = ?5, keyset = ?6"
                       " WHERE ino = ?1",
    [W_REC_TOUCH] = "UPDATE records SET gen = ?2 WHERE ino = ?1",
    [W_REC_DELETE] = "DELETE FROM records WHERE ino = ?1",
    [W_REC_STALE] = "SELECT ino, id, name, ver, ename, rname FROM records WHERE model = ?1 AND gen < ?2"
                    " ORDER BY ino LIMIT ?3",
    [W_SUPERSEDE] = "INSERT OR REPLACE INTO superseded (node, body, size, mtime, until, zdict)"
                    " SELECT ?1 + ((ver & " INO_REC_VER_MASK_SQL ") << " INO_STR(INO_REC_ROWID_BITS) "),"
                    " body, size, mtime, ?2, zdict"
                    " FROM records WHERE ino = ?3",
    [W_SUPERSEDED_PRUNE] = "DELETE FROM superseded WHERE until < ?1",
    [W_REC_COUNT] = "SELECT count(*) FROM records WHERE model = ?1",
    [W_REC_NONE] = "SELECT NOT EXISTS (SELECT 1 FROM records WHERE model = ?1)",
    [W_CH_RANGE] = "SELECT (SELECT min(seq) FROM changes),"
                   " (SELECT seq FROM sqlite_sequence WHERE name = 'changes')",
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
    [W_CH_BORROWED] = "SELECT c.seq, c.body, c.split, r.body, r.zdict FROM records r"
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
    [W_DICT_GET] = "SELECT bytes FROM dicts WHERE id = ?1",
    [W_DICT_LATEST] = "SELECT id, bytes FROM dicts WHERE model = ?1 ORDER BY id DESC LIMIT 1",
    [W_DICT_ADD] = "INSERT INTO dicts (model, bytes) VALUES (?1, ?2)",
};

enum rstmt {
    R_LOOKUP, R_ATTR, R_OLD_ATTR, R_LIST, R_AHEAD, R_AHEAD_NAME, R_KEY, R_BODY, R_OLD_BODY, R_META,
    R_CH_ATTR, R_CH_LIST, R_CH_BODY, R_CH_AHEAD, R_CH_RANGE, R_COUNT, R_WATERMARK, R_DICT,
    R_GAP, R_GAP_NAME,
    /* one of each per view, email then remote id: R_LNK_x + view */
    R_LNK_FIRST, R_LNK_FIRST_RID, R_LNK_NAMED, R_LNK_NAMED_RID, R_LNK_ROW, R_LNK_ROW_RID,
    R_LNK_LIST, R_LNK_LIST_RID,
    R_NSTMT
};

static const char *const rsql[R_NSTMT] = {
    [R_LOOKUP] = "SELECT ino, size, mtime, ver FROM records WHERE model = ?1 AND name = ?2",
    [R_ATTR] = "SELECT model, size, mtime, ver FROM records WHERE ino = ?1",
    [R_OLD_ATTR] = "SELECT size, mtime FROM superseded WHERE node = ?1",
    [R_LIST] = "SELECT ino, name, size, mtime, ver FROM records WHERE model = ?1 AND ino > ?2"
               " ORDER BY ino LIMIT ?3",
    [R_AHEAD] = "SELECT ino, name, size, mtime, ver, body, zdict FROM records WHERE model = ?1"
                " AND ino > ?2"
                " ORDER BY ino LIMIT ?3",
    [R_AHEAD_NAME] = "SELECT ino, name, size, mtime, ver, body, zdict FROM records WHERE model = ?1"
                     " AND name > ?2 ORDER BY name LIMIT ?3",
    [R_KEY] = "SELECT model, name FROM records WHERE ino = ?1 AND ver & " INO_REC_VER_MASK_SQL " = ?2",
    [R_BODY] = "SELECT body, zdict, size FROM records WHERE ino = ?1 AND ver & "
               INO_REC_VER_MASK_SQL " = ?2",
    [R_OLD_BODY] = "SELECT body, zdict, size FROM superseded WHERE node = ?1",
    [R_META] = "SELECT id, remote_id, changed_at FROM records WHERE ino = ?1",
    [R_CH_ATTR] = "SELECT size, at FROM changes WHERE seq = ?1",
    [R_CH_LIST] = "SELECT seq, size, at FROM changes WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    [R_CH_BODY] = "SELECT c.body, c.split, r.body, r.zdict, c.size FROM changes c"
                  " LEFT JOIN records r ON r.ino = c.rec"
                  " WHERE c.seq = ?1",
    [R_CH_AHEAD] = "SELECT c.body, c.split, r.body, r.zdict, c.seq, c.size, c.at FROM changes c"
                   " LEFT JOIN records r ON r.ino = c.rec WHERE c.seq > ?1 ORDER BY c.seq LIMIT ?2",
    [R_CH_RANGE] = "SELECT (SELECT min(seq) FROM changes),"
                   " (SELECT seq FROM sqlite_sequence WHERE name = 'changes')",
    [R_COUNT] = "SELECT count(*) FROM records WHERE model = ?1",
    [R_WATERMARK] = "SELECT watermark FROM endpoints WHERE model = ?1",
    [R_DICT] = "SELECT bytes FROM dicts WHERE id = ?1",
    [R_GAP] = "SELECT count(*) FROM (SELECT 1 FROM records WHERE model = ?1 AND ino > ?2"
              " AND ino < ?3 LIMIT ?4)",
    [R_GAP_NAME] = "SELECT count(*) FROM (SELECT 1 FROM records WHERE model = ?1 AND name > ?2"
                   " AND name < ?3 LIMIT ?4)",
#define LNK_MIN(col, model, value) \
    "(SELECT min(x.id) FROM records x WHERE x.model = " model " AND x." col " = " value \
    " AND x." col " IS NOT NULL)"
#define LNK_FIRST(col) \
    "SELECT ino, name, mtime, " col " FROM records WHERE model = ?1 AND " col " = ?2" \
    " AND " col " IS NOT NULL ORDER BY id LIMIT 1"
#define LNK_NAMED(col) \
    "SELECT ino, name, mtime, " col ", id = " LNK_MIN(col, "?1", "?2") " FROM records" \
    " WHERE model = ?1 AND " col " = ?2 AND " col " IS NOT NULL AND name = ?3"
#define LNK_ROW(col) \
    "SELECT r.ino, r.name, r.mtime, r." col ", r.id = " LNK_MIN(col, "r.model", "r." col) \
    ", r.model FROM records r WHERE r.ino = ?1 AND r." col " IS NOT NULL"
#define LNK_LIST(col) \
    "SELECT r.ino, r.name, r.mtime, r." col ", r.id = " LNK_MIN(col, "r.model", "r." col) \
    " FROM records r WHERE r.model = ?1 AND r.ino > ?2 AND r." col " IS NOT NULL" \
    " ORDER BY r.ino LIMIT ?3"
    [R_LNK_FIRST] = LNK_FIRST("ename"),
    [R_LNK_FIRST_RID] = LNK_FIRST("rname"),
    [R_LNK_NAMED] = LNK_NAMED("ename"),
    [R_LNK_NAMED_RID] = LNK_NAMED("rname"),
    [R_LNK_ROW] = LNK_ROW("ename"),
    [R_LNK_ROW_RID] = LNK_ROW("rname"),
    [R_LNK_LIST] = LNK_LIST("ename"),
    [R_LNK_LIST_RID] = LNK_LIST("rname"),
};

/*
 * Read connections. Each thread keeps up to TL_READERS of them (one per store
 * it reads, the least recently used one closed to make room), in a struct
 * tl_readers that a pthread key destroys when the thread ends: libfuse
 * starts and ends worker threads as load comes and goes (max_idle_threads),
 * and without the destructor every thread that ever read kept its connection
 * (three file descriptors) until the cache was closed. One process-wide
 * mutex guards the per-thread tables and the per-store lists, so that a
 * store closed by one thread and a thread ending at the same time never
 * close a connection twice.
 */
#define TL_READERS 4

/*
 * Packed bodies (schema version 4): a row whose zdict is set holds, as a zstd
 * frame of dictionary zdict (pack.h), the record's compact JSON; its file is
 * that JSON re-indented (jtext_pretty), `size` bytes. A row without zdict
 * holds the file itself. Each connection decodes with its own zstd state and
 * keeps the dictionaries it met, loaded through its own statement (a
 * dictionary never changes once written, and a row is committed with or after
 * its dictionary, so every snapshot that sees the row sees it).
 */
#define DICTS_KEPT 16

struct dict_cache {
    struct pack_ctx ctx;
    int n;
    unsigned next;
    int64_t id[DICTS_KEPT];
    struct pack_ddict *dd[DICTS_KEPT];
    struct buf json;            /* the last packed body decoded */
    struct buf file;            /* and re-indented */
    uint64_t file_node;         /* the record version file holds for READs, 0: none */
};

static void dict_cache_free(struct dict_cache *dc)
{
    for (int i = 0; i < dc->n; i++)
        pack_ddict_free(dc->dd[i]);
    pack_ctx_free(&dc->ctx);
    buf_free(&dc->json);
    buf_free(&dc->file);
    memset(dc, 0, sizeof *dc);
}

/* Dictionary id through the connection's statement get ("SELECT bytes FROM
 * dicts WHERE id = ?1"), or NULL. */
static const struct pack_ddict *dict_find(struct dict_cache *dc, sqlite3_stmt *get, int64_t id)
{
    for (int i = 0; i < dc->n; i++)
        if (dc->id[i] == id)
            return dc->dd[i];
    sqlite3_reset(get);
    sqlite3_bind_int64(get, 1, id);
    struct pack_ddict *dd = NULL;
    if (sqlite3_step(get) == SQLITE_ROW)
        dd = pack_ddict_new(sqlite3_column_blob(get, 0), (size_t)sqlite3_column_bytes(get, 0));
    sqlite3_reset(get);
    if (!dd)
        return NULL;
    int slot;
    if (dc->n < DICTS_KEPT) {
        slot = dc->n++;
    } else {                    /* more dictionaries than models: one goes */
        slot = (int)(dc->next++ % DICTS_KEPT);
        pack_ddict_free(dc->dd[slot]);
    }
    dc->id[slot] = id;
    dc->dd[slot] = dd;
    return dd;
}

/* What body_bytes gives: the file, or the record's JSON in whatever layout
 * costs least (a packed body is not re-indented: exports and comparisons
 * want it compact). */
enum body_as { AS_FILE, AS_JSON };

/* The body in column col of s's current row, as column zcol says: NULL, the
 * file as it is; 0, compact JSON; N > 0, packed with dictionary N. *out is
 * valid until the row moves or the connection decodes again; *compact (may
 * be NULL) says whether it is compact JSON (a body of zdict 0 or N given
 * AS_JSON). 0, or -1 (logged) when a packed body cannot be decoded. */
static int body_bytes(struct dict_cache *dc, sqlite3_stmt *get, sqlite3_stmt *s, int col,
                      int zcol, enum body_as as, const void **out, size_t *len, int *compact)
{
    const void *b = sqlite3_column_blob(s, col);
    size_t n = (size_t)sqlite3_column_bytes(s, col);
    if (compact)
        *compact = 0;
    if (sqlite3_column_type(s, zcol) == SQLITE_NULL) {
        *out = b ? b : "";
        *len = n;
        return 0;
    }
    int64_t id = sqlite3_column_int64(s, zcol);
    const char *json = b ? b : "";
    size_t jlen = n;
    if (id != 0) {              /* packed; 0 is compact JSON as it is */
        const struct pack_ddict *dd = dict_find(dc, get, id);
        if (!dd || pack_decompress(&dc->ctx, dd, b, n, &dc->json) < 0) {
            log_warnx("cache: a record packed with dictionary %lld cannot be decoded%s",
                      (long long)id, dd ? "" : " (the dictionary is missing)");
            return -1;
        }
        json = dc->json.data;
        jlen = dc->json.len;
    }
    if (as == AS_JSON) {
        *out = json;
        *len = jlen;
        if (compact)
            *compact = 1;
        return 0;
    }
    buf_reset(&dc->file);
    dc->file_node = 0;
    jtext_indent_compact(json, jlen, 0, 1, &dc->file);
    *out = dc->file.data;
    *len = dc->file.len;
    return 0;         /* (callers compare the length with the stored size) */
}

struct tl_readers;

struct store_reader {
    sqlite3 *db;
    sqlite3_stmt *st[R_NSTMT];
    struct dict_cache dc;
    struct store *owner;
    struct tl_readers *tl;      /* the thread's table that holds it */
    uint64_t used;              /* the thread's clock of its last use */
    struct store_reader *next;  /* in owner->readers */
};

struct tl_readers {
    struct store_reader *r[TL_READERS];
    uint64_t clock;
};

static pthread_mutex_t readers_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_key_t readers_key;
static pthread_once_t readers_once = PTHREAD_ONCE_INIT;
static _Thread_local struct tl_readers *tl_readers;

struct store {
    char *path;
    sqlite3 *db;
    sqlite3_stmt *st[W_COUNT];
    struct dict_cache dc;       /* the writer's (closed with its connection) */
    struct store_reader *readers;   /* under readers_mu */
    int64_t webhook_pruned_at;  /* unix s of the last prune of old event ids */
    uint64_t serial;            /* unique in the process: a new store may reuse a freed address */
    int unborn;                 /* store_open_lazy of a missing file: created by store_resume */
    int building;               /* store_open_build made it: no journal until store_build_done */
    /* The current transaction's changes to the views table, per model. */
    struct view_delta {
        int touched;
        int64_t mtime, n, jsonl, csv;
    } vd[MODEL_COUNT];
    struct buf keyset;          /* the last keyset looked up, and its id */
    int64_t keyset_id;
    int64_t seq_next;           /* the change log's next number, 0 = ask SQLite */
    _Atomic uint64_t commits;   /* writes made visible to readers (store_commits) */
    pthread_mutex_t pins_lock;  /* the export pins (see "exports" below) */
    pthread_cond_t pins_free;   /* a pin stopped being busy */
    struct pin *pins;
};

static _Atomic uint64_t store_serials;
/* Creating a cache (file, schema) happens under this lock, so that two
 * connections of one process never both find a file empty and create it. */
static pthread_mutex_t create_lock = PTHREAD_MUTEX_INITIALIZER;


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
 * its body, which then holds the entry without the record: see entry_splice().
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

/*
 * Version 3: the views of SPEC §10. Each record carries its by-email and
 * by-remote-id names (ename, rname: escaped, NULL where none), the byte
 * sizes of its JSONL line (jsize, without the newline) and CSV cells
 * (csize), and its set of top-level keys (keyset -> keysets: the CSV
 * columns). jsize NULL marks a row not derived yet: store_backfill() fills
 * those in after an upgrade. views holds per model a data version (bumped by
 * every transaction that changes a record of it) and the exports' totals.
 * records_sizes covers what an export needs to map offsets to rows, and
 * replaces records_model (model, ino). Superseded versions are dropped: their
 * node numbers used the 0.1 layout (ino.h).
 */
static const char migrate_v3[] =
    "BEGIN;"
    "ALTER TABLE records ADD COLUMN ename TEXT;"
    "ALTER TABLE records ADD COLUMN rname TEXT;"
    "ALTER TABLE records ADD COLUMN jsize INTEGER;"
    "ALTER TABLE records ADD COLUMN csize INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE records ADD COLUMN keyset INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX records_ename ON records (model, ename, id) WHERE ename IS NOT NULL;"
    "CREATE INDEX records_rname ON records (model, rname, id) WHERE rname IS NOT NULL;"
    "CREATE INDEX records_sizes ON records (model, ino, jsize, csize, keyset);"
    "DROP INDEX records_model;"
    "CREATE TABLE keysets (id INTEGER PRIMARY KEY, keys BLOB NOT NULL UNIQUE);"
    "CREATE TABLE views ("
    "  model INTEGER PRIMARY KEY,"
    "  ver INTEGER NOT NULL DEFAULT 0,"
    "  mtime INTEGER NOT NULL DEFAULT 0,"
    "  n INTEGER NOT NULL DEFAULT 0,"
    "  jsonl INTEGER NOT NULL DEFAULT 0,"
    "  csv INTEGER NOT NULL DEFAULT 0"
    ");"
    "DELETE FROM superseded;"
    "PRAGMA user_version = 3;"
    "COMMIT;";

/*
 * Version 4: record bodies may be packed (pack.h): zdict names the dictionary
 * in dicts whose zstd frame the body is, NULL a body stored as it is (every
 * row of an older cache, and bodies too small to gain). size stays the file's
 * size. A model's dictionary is trained on the first page that has enough
 * records and is kept (rows point at it); dicts only grows.
 */
static const char migrate_v4[] =
    "BEGIN;"
    "CREATE TABLE dicts (id INTEGER PRIMARY KEY, model INTEGER NOT NULL, bytes BLOB NOT NULL);"
    "ALTER TABLE records ADD COLUMN zdict INTEGER;"
    "ALTER TABLE superseded ADD COLUMN zdict INTEGER;"
    "PRAGMA user_version = 4;"
    "COMMIT;";

/* The views' two lookup indexes: random keys, so that filling them row by row
 * during a first full fetch rewrote most of their pages at every page's commit
 * (measured at 100,000 employees: 4.9 s -> 7.0 s with them, 5.5 s without).
 * A first fetch into an empty cache builds them once at its end
 * (store_views_defer / store_views_index); every open makes sure they exist,
 * so a crash in between costs one build at the next start. */
/* records_underived finds the rows store_backfill() must derive without a
 * scan of the whole table: it is empty once they are all derived (a fetch
 * stores them derived), and without it every start read the whole cache
 * (at 100,000 employees the restart took 1.05 s instead of 18 ms). */
static const char views_indexes[] =
    "CREATE INDEX IF NOT EXISTS records_ename ON records (model, ename, id)"
    " WHERE ename IS NOT NULL;"
    "CREATE INDEX IF NOT EXISTS records_rname ON records (model, rname, id)"
    " WHERE rname IS NOT NULL;"
    "CREATE INDEX IF NOT EXISTS records_underived ON records (ino) WHERE jsize IS NULL;";

/* After a backfill: the totals from the rows. */
static const char views_recount[] =
    "INSERT INTO views (model, ver, mtime, n, jsonl, csv)"
    " SELECT model, 1, max(mtime), count(*), sum(jsize + 1), sum(csize) FROM records"
    " GROUP BY model"
    " ON CONFLICT (model) DO UPDATE SET ver = ver + 1, mtime = excluded.mtime,"
    " n = excluded.n, jsonl = excluded.jsonl, csv = excluded.csv;";

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

/* The marker of a cache being built by store_open_build: while it exists the
 * cache is not in WAL mode and may be torn; a start that finds it begins again. */
static void marker_path(const char *path, char *out, size_t n)
{
    snprintf(out, n, "%s-building", path);
}

static int has_marker(const char *path)
{
    char m[PATH_MAX + 16];
    marker_path(path, m, sizeof m);
    return access(m, F_OK) == 0;
}

/* fsync the directory of path, so that a created or removed name is durable. */
static int sync_dir(const char *path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
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

/* Run one upgrade script (a transaction of its own); rolled back on failure. */
static int migrate(struct store *st, const char *sql, int to, char *err, size_t errlen)
{
    if (exec(st->db, sql, err, errlen) == 0)
        return 0;
    if (!sqlite3_get_autocommit(st->db))
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    char why[256];
    snprintf(why, sizeof why, "%s", err);
    snprintf(err, errlen, "cache '%s': cannot upgrade it to schema version %d: %s", st->path, to,
             why);
    return -1;
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
    if ((version < 2 && migrate(st, migrate_v2, 2, err, errlen) < 0) ||
        (version < 3 && migrate(st, migrate_v3, 3, err, errlen) < 0) ||
        (version < 4 && migrate(st, migrate_v4, 4, err, errlen) < 0))
        return -1;
    if (exec(st->db, views_indexes, err, errlen) < 0)
        return -1;
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

/* Open the writing connection of st (again, after store_suspend: verify 0). */
static int open_conn(struct store *st, int verify, char *err, size_t errlen)
{
    const char *path = st->path;
    if (sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open cache '%s': %s", path,
                 st->db ? sqlite3_errmsg(st->db) : "out of memory");
        return -1;
    }
    sqlite3_busy_handler(st->db, busy_nap, NULL);
    /* 16 KiB pages for a new cache (an existing one keeps its size): records
     * average a few KiB, and with 4 KiB pages a full fetch of 100k employees
     * took 3.9 s against 3.4 s (8 KiB: 4.4 s); a cold `cat` of those files
     * was no slower. Must come before the first write; a file that is no
     * database is reported by the next statement. */
    sqlite3_exec(st->db, "PRAGMA page_size = 16384", NULL, NULL, NULL);
    /* Being built (store_open_build): the builder writes every page once, with
     * no journal and no sync; another connection of the process meanwhile (the
     * webhook receiver's) keeps SQLite's rollback journal for its own writes.
     * Otherwise WAL: readers never block the writer. */
    const char *mode = st->building           ? "PRAGMA journal_mode = OFF"
                       : has_marker(st->path) ? "PRAGMA schema_version"
                                              : "PRAGMA journal_mode = WAL";
    if (exec(st->db, mode, err, errlen) < 0) {
        snprintf(err, errlen, "cache '%s' is not a SQLite database or is corrupt", path);
        return -1;
    }
    /* A checkpoint every 64 MB of WAL rather than SQLite's 4 MB: each one
     * syncs the WAL and the database, and a full fetch of 100k employees
     * (545 MB) made about 300 of them (measured: 6.3 s -> 5.3 s). */
    if (exec(st->db, st->building ? "PRAGMA synchronous = OFF" : "PRAGMA synchronous = NORMAL",
             err, errlen) < 0 ||
        exec(st->db, "PRAGMA foreign_keys = OFF;"
                     " PRAGMA wal_autocheckpoint = 16384; PRAGMA cache_size = -32768", err,
             errlen) < 0)
        return -1;
    if (check_schema(st, verify, err, errlen) < 0)
        return -1;
    for (int i = 0; i < W_COUNT; i++) {
        if (sqlite3_prepare_v3(st->db, wsql[i], -1, SQLITE_PREPARE_PERSISTENT,
                               &st->st[i], NULL) != SQLITE_OK) {
            snprintf(err, errlen, "cache '%s': %s", path, sqlite3_errmsg(st->db));
            return -1;
        }
    }
    return 0;
}

/* The writing connection's statements and handle, closed (store_suspend). */
static void close_conn(struct store *st)
{
    for (int i = 0; i < W_COUNT; i++) {
        sqlite3_finalize(st->st[i]);
        st->st[i] = NULL;
    }
    if (st->db)
        sqlite3_close(st->db);
    st->db = NULL;
    dict_cache_free(&st->dc);
    st->seq_next = 0;
}

/* store_open_build: a cache whose first build was interrupted (its marker is
 * there) is removed; a missing one is built. With create_lock held. Returns
 * 1 to build, 0 to open as it is, -1 with err. */
static int prepare_build(const char *path, char *err, size_t errlen)
{
    char m[PATH_MAX + 16];
    marker_path(path, m, sizeof m);
    if (access(m, F_OK) == 0) {
        log_info("cache %s: its first fetch was interrupted; starting it again", path);
        static const char *const suffix[] = { "", "-wal", "-shm", "-journal" };
        for (size_t i = 0; i < sizeof suffix / sizeof *suffix; i++) {
            char f[PATH_MAX + 16];
            snprintf(f, sizeof f, "%s%s", path, suffix[i]);
            if (unlink(f) < 0 && errno != ENOENT) {
                snprintf(err, errlen, "cannot remove '%s': %s", f, strerror(errno));
                return -1;
            }
        }
    } else if (access(path, F_OK) == 0 || errno != ENOENT) {
        return 0;
    }
    /* The marker first, durably: a crash from here on leaves it behind. */
    int fd = open(m, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || fsync(fd) < 0 || close(fd) < 0 || sync_dir(path) < 0) {
        snprintf(err, errlen, "cannot create '%s': %s", m, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return 1;
}

static struct store *open_store(const char *path, int verify, int build, char *err,
                                size_t errlen)
{
    struct store *st = calloc(1, sizeof *st);
    if (!st)
        abort();
    st->path = strdup(path);
    st->serial = ++store_serials;
    pthread_mutex_init(&st->pins_lock, NULL);
    pthread_cond_init(&st->pins_free, NULL);
    pthread_mutex_lock(&create_lock);
    int rc = build ? prepare_build(path, err, errlen) : 0;
    if (rc >= 0) {
        st->building = rc == 1;
        rc = (access(path, F_OK) < 0 && create_private(path, err, errlen) < 0) ||
             open_conn(st, verify, err, errlen) < 0 ? -1 : 0;
    }
    pthread_mutex_unlock(&create_lock);
    if (rc < 0) {
        store_close(st);
        return NULL;
    }
    return st;
}

int store_suspend(struct store *st)
{
    if (!st->db)
        return 0;
    if (!sqlite3_get_autocommit(st->db))
        return -1;      /* in a transaction: cannot happen between batches */
    close_conn(st);
    return 0;
}

int store_resume(struct store *st)
{
    char err[512];
    if (st->db)
        return 0;
    int unborn = st->unborn, rc;
    if (unborn)
        pthread_mutex_lock(&create_lock);
    rc = unborn && access(st->path, F_OK) < 0 ? create_private(st->path, err, sizeof err) : 0;
    if (rc == 0)
        rc = open_conn(st, 0, err, sizeof err);
    if (unborn)
        pthread_mutex_unlock(&create_lock);
    if (rc < 0) {
        log_warnx("%s", err);
        close_conn(st);
        return -1;
    }
    if (unborn) {
        st->unborn = 0;
        if (store_claim(st) < 0) {
            log_warnx("cache %s cannot be written", st->path);
            close_conn(st);
            st->unborn = 1;
            return -1;
        }
    }
    return 0;
}

struct store *store_open_lazy(const char *path, char *err, size_t errlen)
{
    pthread_mutex_lock(&create_lock);
    int missing = access(path, F_OK) < 0 && errno == ENOENT;
    pthread_mutex_unlock(&create_lock);
    if (!missing)
        return store_open(path, err, errlen);
    struct store *st = calloc(1, sizeof *st);
    if (!st)
        abort();
    st->path = strdup(path);
    st->serial = ++store_serials;
    st->unborn = 1;
    pthread_mutex_init(&st->pins_lock, NULL);
    pthread_cond_init(&st->pins_free, NULL);
    return st;
}

int store_opened(const struct store *st)
{
    return !st->unborn;
}

void store_library_init(void)
{
    /* Harmless when SQLite is already initialised: it answers SQLITE_MISUSE. */
    sqlite3_config(SQLITE_CONFIG_STMTJRNL_SPILL, 1 << 20);
}

struct store *store_open(const char *path, char *err, size_t errlen)
{
    return open_store(path, 1, 0, err, errlen);
}

struct store *store_open_build(const char *path, char *err, size_t errlen)
{
    return open_store(path, 1, 1, err, errlen);
}

int store_build_interrupted(const char *path)
{
    return has_marker(path);
}

int store_build_done(struct store *st)
{
    if (!st->building)
        return 0;
    char err[512], m[PATH_MAX + 16];
    /* One synced commit writes the file's pages out (fsync covers what was
     * written without a sync), then the switch to WAL; only then does the
     * marker go. A crash before that finds the marker and builds again. */
    if (exec(st->db, "PRAGMA synchronous = FULL; PRAGMA journal_mode = DELETE", err,
             sizeof err) < 0 ||
        store_meta_set(st, "built", "1") < 0 ||
        exec(st->db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL", err,
             sizeof err) < 0) {
        log_warnx("cache %s: cannot finish its first build: %s", st->path, err);
        return -1;
    }
    st->building = 0;
    marker_path(st->path, m, sizeof m);
    if (unlink(m) < 0 || sync_dir(st->path) < 0) {
        log_warn("cache %s: cannot remove %s", st->path, m);
        return -1;
    }
    return 0;
}

int store_building(const struct store *st)
{
    return st->building;
}

struct store *store_open_again(const char *path, char *err, size_t errlen)
{
    return open_store(path, 0, 0, err, errlen);
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
    dict_cache_free(&r->dc);
    free(r);
}

/* Under readers_mu: take r out of its store's list and its thread's table. */
static void reader_unlink(struct store_reader *r)
{
    struct store_reader **p = &r->owner->readers;
    while (*p && *p != r)
        p = &(*p)->next;
    if (*p)
        *p = r->next;
    for (int i = 0; r->tl && i < TL_READERS; i++)
        if (r->tl->r[i] == r)
            r->tl->r[i] = NULL;
    r->tl = NULL;
}

/* The thread ends: close its connections. */
static void tl_destroy(void *arg)
{
    struct tl_readers *tl = arg;
    struct store_reader *gone[TL_READERS];
    int n = 0;
    pthread_mutex_lock(&readers_mu);
    for (int i = 0; i < TL_READERS; i++) {
        if (tl->r[i]) {
            gone[n++] = tl->r[i];
            reader_unlink(tl->r[i]);
        }
    }
    pthread_mutex_unlock(&readers_mu);
    for (int i = 0; i < n; i++)
        reader_close(gone[i]);
    free(tl);
#ifdef KOMBOFS_TRIM
    /* A closed connection's page cache goes back to this thread's malloc arena,
     * where glibc keeps it: with workers coming and going, every arena ends up
     * holding a few MB nobody uses (measured: RSS 38 -> 74 MB over 160 worker
     * threads). Give it back; threads end rarely, and this costs well under 1 ms. */
    if (n)
        malloc_trim(0);
#endif
}

static void readers_key_init(void)
{
    if (pthread_key_create(&readers_key, tl_destroy) != 0)
        abort();
}

static void pins_close(struct store *st);

void store_close(struct store *st)
{
    if (!st)
        return;
    pthread_mutex_lock(&readers_mu);
    struct store_reader *r = st->readers;
    for (struct store_reader *q = r; q; q = q->next) {
        for (int i = 0; q->tl && i < TL_READERS; i++)
            if (q->tl->r[i] == q)
                q->tl->r[i] = NULL;
        q->tl = NULL;
    }
    st->readers = NULL;
    pthread_mutex_unlock(&readers_mu);
    while (r) {
        struct store_reader *next = r->next;
        reader_close(r);
        r = next;
    }
    pins_close(st);
    close_conn(st);
    pthread_mutex_destroy(&st->pins_lock);
    pthread_cond_destroy(&st->pins_free);
    buf_free(&st->keyset);
    free(st->path);
    free(st);
}

int store_reader_count(struct store *st)
{
    int n = 0;
    pthread_mutex_lock(&readers_mu);
    for (struct store_reader *r = st->readers; r; r = r->next)
        n++;
    pthread_mutex_unlock(&readers_mu);
    return n;
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
    if (sqlite3_get_autocommit(st->db))     /* a COMMIT, or a statement of its own */
        atomic_fetch_add(&st->commits, 1);
    return 0;
}

uint64_t store_commits(struct store *st)
{
    return atomic_load(&st->commits);
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

/* The transaction changed a record of `model`: its exports' version and totals move. */
static void view_add(struct store *st, int model, int64_t mtime, int64_t n, int64_t jsonl,
                     int64_t csv)
{
    if (model < 0 || model >= MODEL_COUNT)
        return;
    struct view_delta *v = &st->vd[model];
    v->touched = 1;
    if (mtime > v->mtime)
        v->mtime = mtime;
    v->n += n;
    v->jsonl += jsonl;
    v->csv += csv;
}

static int views_flush(struct store *st)
{
    int rc = 0;
    for (int m = 0; m < MODEL_COUNT && rc == 0; m++) {
        struct view_delta *v = &st->vd[m];
        if (!v->touched)
            continue;
        sqlite3_stmt *s = w(st, W_VIEWS_ADD);
        sqlite3_bind_int(s, 1, m);
        sqlite3_bind_int64(s, 2, v->mtime);
        sqlite3_bind_int64(s, 3, v->n);
        sqlite3_bind_int64(s, 4, v->jsonl);
        sqlite3_bind_int64(s, 5, v->csv);
        rc = done(st, s, "views");
    }
    return rc;
}

static void views_forget(struct store *st)
{
    memset(st->vd, 0, sizeof st->vd);
}

static void pins_expire(struct store *st, int64_t now);

int store_commit(struct store *st)
{
    int rc = views_flush(st);
    views_forget(st);
    if (rc == 0)
        rc = done(st, w(st, W_COMMIT), "commit");
    pins_expire(st, clock_now_ns());
    return rc;
}

void store_rollback(struct store *st)
{
    views_forget(st);
    st->seq_next = 0;       /* entries of the transaction are gone */
    st->keyset.len = 0;     /* a keyset added by the transaction is gone */
    if (!sqlite3_get_autocommit(st->db))
        done(st, w(st, W_ROLLBACK), "rollback");
}

void store_record_free(struct store_record *r)
{
    free(r->body);
    free(r->changed_at);
    free(r->ename);
    free(r->rname);
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
        out->ino = ino_record((uint64_t)sqlite3_column_int64(s, 0), 0);
        out->node = ino_record((uint64_t)sqlite3_column_int64(s, 0),
                               (uint64_t)sqlite3_column_int64(s, 3));
        const void *b;
        size_t n;
        int compact;
        if (body_bytes(&st->dc, st->st[W_DICT_GET], s, 1, 6, AS_JSON, &b, &n, &compact) < 0) {
            sqlite3_reset(s);
            return -1;
        }
        struct buf json = BUF_INIT;
        if (compact)
            buf_add(&json, b, n);
        else
            export_compact(b, n, &json);      /* a file stored as it is */
        out->size = json.len;
        out->body = buf_detach(&json);
        out->changed_at = col_strdup(s, 2);
        out->ename = col_strdup(s, 4);
        out->rname = col_strdup(s, 5);
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
 * body, size, changed_at, remote_id, mtime, gen; and zdict at zcol. */
static void bind_content(sqlite3_stmt *s, int first, int zcol, const struct store_body *b,
                         const char *changed_at, const char *remote_id, int64_t mtime_ns,
                         int64_t gen)
{
    sqlite3_bind_blob(s, first, b->bytes, (int)b->len, SQLITE_STATIC);
    if (b->dict > 0)
        sqlite3_bind_int64(s, zcol, b->dict);
    else if (b->dict == STORE_COMPACT)
        sqlite3_bind_int64(s, zcol, 0);
    sqlite3_bind_int64(s, first + 1, (sqlite3_int64)b->size);
    if (changed_at)
        sqlite3_bind_text(s, first + 2, changed_at, -1, SQLITE_STATIC);
    if (remote_id)
        sqlite3_bind_text(s, first + 3, remote_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, first + 4, mtime_ns);
    sqlite3_bind_int64(s, first + 5, gen);
}

/* The id of a keyset (its keys, each NUL-terminated), added if new; 0 for none. */
static int64_t keyset_id(struct store *st, const char *keys, size_t len)
{
    if (!len)
        return 0;
    if (st->keyset.len == len && memcmp(st->keyset.data, keys, len) == 0)
        return st->keyset_id;
    sqlite3_stmt *s = w(st, W_KEYSET_GET);
    sqlite3_bind_blob(s, 1, keys, (int)len, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    int64_t id = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    if (rc == SQLITE_DONE) {
        s = w(st, W_KEYSET_ADD);
        sqlite3_bind_blob(s, 1, keys, (int)len, SQLITE_STATIC);
        if (done(st, s, "keyset") < 0)
            return -1;
        id = sqlite3_last_insert_rowid(st->db);
    } else if (rc != SQLITE_ROW) {
        log_warnx("cache: keyset: %s", sqlite3_errmsg(st->db));
        return -1;
    }
    buf_reset(&st->keyset);
    buf_add(&st->keyset, keys, len);
    st->keyset_id = id;
    return id;
}

/* The derived columns, bound from `first`: ename, rname, jsize, csize, keyset. */
static int bind_derived(struct store *st, sqlite3_stmt *s, int first,
                        const struct store_derived *d)
{
    int64_t ks = keyset_id(st, d->keys, d->keys_len);
    if (ks < 0)
        return -1;
    if (d->ename)
        sqlite3_bind_text(s, first, d->ename, -1, SQLITE_STATIC);
    if (d->rname)
        sqlite3_bind_text(s, first + 1, d->rname, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, first + 2, (sqlite3_int64)d->jsize);
    sqlite3_bind_int64(s, first + 3, (sqlite3_int64)d->csize);
    sqlite3_bind_int64(s, first + 4, ks);
    return 0;
}

/* 0 and *ino, STORE_EXISTS (the name is taken: nothing written), or -1. */
static int insert_record(struct store *st, int model, const char *id, const char *name,
                         const struct store_body *b, const char *changed_at,
                         const char *remote_id,
                         const struct store_derived *d, int64_t mtime_ns, int64_t gen,
                         int64_t created_seq, uint64_t *ino)
{
    sqlite3_stmt *s = w(st, W_REC_INSERT);
    sqlite3_bind_int(s, 1, model);
    sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, name, -1, SQLITE_STATIC);
    bind_content(s, 4, 16, b, changed_at, remote_id, mtime_ns, gen);
    if (bind_derived(st, s, 10, d) < 0)
        return -1;
    sqlite3_bind_int64(s, 15, created_seq);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        /* (the reset returned the error; the extended code survives it) */
        if (sqlite3_extended_errcode(st->db) == SQLITE_CONSTRAINT_UNIQUE)
            return STORE_EXISTS;
        log_warnx("cache: record insert: %s", sqlite3_errmsg(st->db));
        return -1;
    }
    view_add(st, model, mtime_ns, 1, (int64_t)d->jsize + 1, (int64_t)d->csize);
    *ino = ino_record((uint64_t)sqlite3_last_insert_rowid(st->db), 0);
    return 0;
}

/* The model and export sizes of record ino, before it changes or goes. */
static int record_sizes(struct store *st, uint64_t ino, int *model, int64_t *jsize,
                        int64_t *csize)
{
    sqlite3_stmt *s = w(st, W_REC_SIZES);
    sqlite3_bind_int64(s, 1, (sqlite3_int64)ino_rowid(ino));
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *model = sqlite3_column_int(s, 0);
        *jsize = sqlite3_column_int64(s, 1);
        *csize = sqlite3_column_int64(s, 2);
    }
    sqlite3_reset(s);
    if (rc == SQLITE_ROW)
        return 0;
    log_warnx("cache: record %llu: %s", (unsigned long long)ino_rowid(ino),
              rc == SQLITE_DONE ? "gone" : sqlite3_errmsg(st->db));
    return -1;
}

/* The text of a borrowing entry from a row whose columns col, col + 1 and
 * col + 2 are its body, its split and the record's body, and zcol the
 * record's zdict (decoded with dc and its dictionary statement get). */
static int borrowed_text(struct dict_cache *dc, sqlite3_stmt *get, sqlite3_stmt *s, int col,
                         int zcol, int64_t seq, struct buf *out)
{
    const char *entry = sqlite3_column_blob(s, col);
    size_t elen = (size_t)sqlite3_column_bytes(s, col);
    int64_t split = sqlite3_column_int64(s, col + 1);
    if (split < 0 || (uint64_t)split > elen || sqlite3_column_type(s, col + 2) == SQLITE_NULL) {
        log_warnx("cache: change entry %lld borrows a record it cannot find", (long long)seq);
        return -1;
    }
    const void *rec;
    size_t rlen;
    int compact;
    if (body_bytes(dc, get, s, col + 2, zcol, AS_JSON, &rec, &rlen, &compact) < 0)
        return -1;
    if (compact)    /* the record's file re-indented in place, in one pass */
        entry_splice_json(entry ? entry : "", elen, (size_t)split, rec, rlen, out);
    else
        entry_splice(entry ? entry : "", elen, (size_t)split, rec, rlen, out);
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
    sqlite3_bind_int64(s, 1, (sqlite3_int64)ino_rowid(ino));
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
    rc = borrowed_text(&st->dc, st->st[W_DICT_GET], s, 1, 4, seq, &text);
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

/* Known after the first entry a connection wrote (it is the only writer of
 * the log): a first fetch asked SQLite once per record. */
static int64_t next_seq(struct store *st)
{
    if (st->seq_next > 0)
        return st->seq_next;
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
        sqlite3_bind_int64(s, 5, (sqlite3_int64)ino_rowid(rec));
        sqlite3_bind_int64(s, 6, (sqlite3_int64)split);
    }
    if (done(st, s, "change insert") < 0)
        return -1;
    st->seq_next = seq + 1;
    return 0;
}

/* The length of a created entry: its text around the record's file. */
static size_t created_size(const char *entry, size_t elen, size_t split,
                           const struct store_body *b)
{
    if (b->dict > 0 || b->dict == STORE_COMPACT)    /* jtext_pretty output ends in '\n' */
        return entry_splice_size_lines(entry, elen, split, (size_t)b->size, (size_t)b->lines);
    const char *file = b->bytes;
    if (b->lines && b->len && file[b->len - 1] == '\n')
        return entry_splice_size_lines(entry, elen, split, b->len, (size_t)b->lines);
    return entry_splice_size(entry, elen, split, file, b->len);
}

int64_t store_record_create(struct store *st, int model, const char *id,
                            const char *name, const struct store_body *b,
                            const char *changed_at, const char *remote_id,
                            const struct store_derived *d, int64_t mtime_ns,
                            int64_t gen, store_created_fn fn, void *ctx,
                            uint64_t *ino)
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
        rc = insert_record(st, model, id, name, b, changed_at, remote_id, d, mtime_ns, gen,
                           seq, ino);
        if (rc == 0)
            rc = insert_change(st, seq, mtime_ns, entry, elen,
                               created_size(entry, elen, split, b), *ino, split);
    }
    free(entry);
    return rc < 0 ? rc : seq;
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
    sqlite3_bind_int64(s, 3, (sqlite3_int64)ino_rowid(ino));
    return done(st, s, "supersede");
}

int store_record_update(struct store *st, uint64_t ino, const struct store_body *b,
                        const char *changed_at, const char *remote_id,
                        const struct store_derived *d, int64_t mtime_ns, int64_t gen,
                        uint64_t *node)
{
    int model;
    int64_t jsize, csize;
    if (record_sizes(st, ino, &model, &jsize, &csize) < 0 || own_entry(st, ino) < 0 ||
        supersede(st, ino) < 0)
        return -1;
    sqlite3_stmt *s = w(st, W_REC_UPDATE);
    sqlite3_bind_int64(s, 1, (sqlite3_int64)ino_rowid(ino));
    bind_content(s, 2, 13, b, changed_at, remote_id, mtime_ns, gen);
    if (bind_derived(st, s, 8, d) < 0)
        return -1;
    view_add(st, model, mtime_ns, 0, (int64_t)d->jsize - jsize, (int64_t)d->csize - csize);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *node = ino_record(ino_rowid(ino), (uint64_t)sqlite3_column_int64(s, 0));
    sqlite3_reset(s);
    if (rc != SQLITE_ROW) {
        log_warnx("cache: record update: %s", sqlite3_errmsg(st->db));
        return -1;
    }
    return 0;
}

int64_t store_dict_add(struct store *st, int model, const void *bytes, size_t len)
{
    sqlite3_stmt *s = w(st, W_DICT_ADD);
    sqlite3_bind_int(s, 1, model);
    sqlite3_bind_blob(s, 2, bytes, (int)len, SQLITE_STATIC);
    if (done(st, s, "dictionary") < 0)
        return -1;
    return sqlite3_last_insert_rowid(st->db);
}

int64_t store_dict_latest(struct store *st, int model, struct buf *out)
{
    sqlite3_stmt *s = w(st, W_DICT_LATEST);
    sqlite3_bind_int(s, 1, model);
    int rc = sqlite3_step(s);
    int64_t id = 0;
    if (rc == SQLITE_ROW) {
        id = sqlite3_column_int64(s, 0);
        buf_add(out, sqlite3_column_blob(s, 1), (size_t)sqlite3_column_bytes(s, 1));
    }
    sqlite3_reset(s);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        return id;
    log_warnx("cache: dictionary: %s", sqlite3_errmsg(st->db));
    return -1;
}

int store_record_touch(struct store *st, uint64_t ino, int64_t gen)
{
    sqlite3_stmt *s = w(st, W_REC_TOUCH);
    sqlite3_bind_int64(s, 1, (sqlite3_int64)ino_rowid(ino));
    sqlite3_bind_int64(s, 2, gen);
    return done(st, s, "record touch");
}

int store_record_delete(struct store *st, uint64_t ino)
{
    int model;
    int64_t jsize, csize;
    if (record_sizes(st, ino, &model, &jsize, &csize) < 0 || own_entry(st, ino) < 0 ||
        supersede(st, ino) < 0)
        return -1;
    view_add(st, model, clock_now_ns(), -1, -(jsize + 1), -csize);
    sqlite3_stmt *s = w(st, W_REC_DELETE);
    sqlite3_bind_int64(s, 1, (sqlite3_int64)ino_rowid(ino));
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
    struct row { uint64_t ino, node; char *id, *name, *ename, *rname; } *rows = NULL;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct row *p = realloc(rows, (size_t)(n + 1) * sizeof *rows);
        if (!p)
            abort();
        rows = p;
        rows[n].ino = ino_record((uint64_t)sqlite3_column_int64(s, 0), 0);
        rows[n].node = ino_record((uint64_t)sqlite3_column_int64(s, 0),
                                  (uint64_t)sqlite3_column_int64(s, 3));
        rows[n].id = col_strdup(s, 1);
        rows[n].name = col_strdup(s, 2);
        rows[n].ename = col_strdup(s, 4);
        rows[n].rname = col_strdup(s, 5);
        n++;
    }
    sqlite3_reset(s);
    int result = rc == SQLITE_DONE ? n : -1;
    for (int i = 0; i < n; i++) {
        if (result >= 0 && fn(ctx, rows[i].ino, rows[i].node, rows[i].id, rows[i].name,
                              rows[i].ename, rows[i].rname) < 0)
            result = -1;
        free(rows[i].id);
        free(rows[i].name);
        free(rows[i].ename);
        free(rows[i].rname);
    }
    free(rows);
    return result;
}

int store_change_range(struct store *st, int64_t *first, int64_t *last)
{
    sqlite3_stmt *s = w(st, W_CH_RANGE);
    int rc = sqlite3_step(s);
    *first = *last = 0;
    if (rc == SQLITE_ROW) {
        *first = sqlite3_column_int64(s, 0);
        *last = sqlite3_column_int64(s, 1);
    }
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 0 : -1;
}

int store_model_empty(struct store *st, int model)
{
    sqlite3_stmt *s = w(st, W_REC_NONE);
    int rc = -1;
    sqlite3_bind_int(s, 1, model);
    if (sqlite3_step(s) == SQLITE_ROW)
        rc = sqlite3_column_int(s, 0) ? 1 : 0;
    sqlite3_reset(s);
    return rc;
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
    struct tl_readers *tl = tl_readers;
    struct store_reader *r = NULL, *evicted = NULL;
    int slot = 0;
    if (!tl) {
        pthread_once(&readers_once, readers_key_init);
        tl = calloc(1, sizeof *tl);
        if (!tl)
            abort();
        pthread_setspecific(readers_key, tl);
        tl_readers = tl;
    }
    pthread_mutex_lock(&readers_mu);
    for (int i = 0; i < TL_READERS; i++) {
        if (tl->r[i] && tl->r[i]->owner == st) {
            r = tl->r[i];
            r->used = ++tl->clock;
            break;
        }
        if (!tl->r[i] || (tl->r[slot] && tl->r[i]->used < tl->r[slot]->used))
            slot = i;
    }
    if (!r && tl->r[slot]) {
        evicted = tl->r[slot];
        reader_unlink(evicted);
    }
    pthread_mutex_unlock(&readers_mu);
    if (evicted)
        reader_close(evicted);
    if (r)
        return r;

    r = calloc(1, sizeof *r);
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
    pthread_mutex_lock(&readers_mu);
    r->owner = st;
    r->tl = tl;
    r->used = ++tl->clock;
    r->next = st->readers;
    st->readers = r;
    tl->r[slot] = r;
    pthread_mutex_unlock(&readers_mu);
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

/* A record row's attributes: rowid, size, mtime and version in columns
 * ino_col, size_col, mtime_col, ver_col. */
static void fill_rec_attr(sqlite3_stmt *s, int ino_col, int size_col, int mtime_col,
                          int ver_col, struct store_attr *out)
{
    uint64_t rowid = (uint64_t)sqlite3_column_int64(s, ino_col);
    out->ino = ino_record(rowid, 0);
    out->node = ino_record(rowid, (uint64_t)sqlite3_column_int64(s, ver_col));
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
        fill_rec_attr(s, 0, 1, 2, 3, out);
    rc = row_result(r, rc);
    sqlite3_reset(s);
    return rc;
}

int store_read_record_attr(struct store_reader *r, uint64_t node, int *model,
                           struct store_attr *out)
{
    uint64_t ino = ino_record_st(node);
    sqlite3_stmt *s = rs(r, R_ATTR);
    sqlite3_bind_int64(s, 1, (sqlite3_int64)ino_rowid(ino));
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW && ((uint64_t)sqlite3_column_int64(s, 3) & INO_REC_VER_MASK) ==
                                ino_ver(node)) {
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
    sqlite3_bind_int64(s, 2, ino_kind(after) == INO_K_RECORD ? (sqlite3_int64)ino_rowid(after) : 0);
    sqlite3_bind_int(s, 3, max);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_attr a;
        fill_rec_attr(s, 0, 2, 3, 4, &a);
        if (fn(ctx, (const char *)sqlite3_column_text(s, 1), &a))
            break;
        n++;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        n = row_result(r, rc);
    sqlite3_reset(s);
    return n;
}

int store_read_ahead(struct store_reader *r, int model, int by_name, uint64_t after_rowid,
                     const char *after_name, int max, store_body_fn fn, void *ctx)
{
    sqlite3_stmt *s = rs(r, by_name ? R_AHEAD_NAME : R_AHEAD);
    int n = 0, rc;
    sqlite3_bind_int(s, 1, model);
    if (by_name)
        sqlite3_bind_text(s, 2, after_name, -1, SQLITE_STATIC);
    else
        sqlite3_bind_int64(s, 2, (sqlite3_int64)after_rowid);
    sqlite3_bind_int(s, 3, max);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_attr a;
        fill_rec_attr(s, 0, 2, 3, 4, &a);
        const void *body;
        size_t len;
        if (body_bytes(&r->dc, r->st[R_DICT], s, 5, 6, AS_FILE, &body, &len, NULL) < 0 ||
            len != a.size)
            continue;           /* left to the reader's READ, which says so */
        n++;
        if (fn(ctx, (const char *)sqlite3_column_text(s, 1), &a, body, len))
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        n = row_result(r, rc);
    sqlite3_reset(s);
    return n;
}

int store_read_ahead_gap(struct store_reader *r, int model, int by_name, uint64_t from_rowid,
                         const char *from_name, uint64_t to_rowid, const char *to_name, int limit)
{
    sqlite3_stmt *s = rs(r, by_name ? R_GAP_NAME : R_GAP);
    sqlite3_bind_int(s, 1, model);
    if (by_name) {
        sqlite3_bind_text(s, 2, from_name, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 3, to_name, -1, SQLITE_STATIC);
    } else {
        sqlite3_bind_int64(s, 2, (sqlite3_int64)from_rowid);
        sqlite3_bind_int64(s, 3, (sqlite3_int64)to_rowid);
    }
    sqlite3_bind_int(s, 4, limit);
    int rc = sqlite3_step(s), n = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) : -1;
    sqlite3_reset(s);
    return n;
}

int store_read_record_key(struct store_reader *r, uint64_t node, int *model, char *name,
                          size_t namelen)
{
    sqlite3_stmt *s = rs(r, R_KEY);
    sqlite3_bind_int64(s, 1, (sqlite3_int64)ino_rowid(node));
    sqlite3_bind_int64(s, 2, (sqlite3_int64)ino_ver(node));
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        const char *nm = (const char *)sqlite3_column_text(s, 1);
        *model = sqlite3_column_int(s, 0);
        snprintf(name, namelen, "%s", nm ? nm : "");
    }
    rc = row_result(r, rc);
    sqlite3_reset(s);
    return rc;
}

/* A READ of record version `node` from a row of statement i; -1 when the row
 * is not there, -2 when it is but cannot be decoded. */
static long read_blob(struct store_reader *r, enum rstmt i, int64_t key, int64_t key2,
                      uint64_t node, char *dst, size_t off, size_t n)
{
    sqlite3_stmt *s = rs(r, i);
    sqlite3_bind_int64(s, 1, key);
    if (i == R_BODY)
        sqlite3_bind_int64(s, 2, key2);
    int rc = sqlite3_step(s);
    long copied = -1;
    if (rc == SQLITE_ROW) {
        const void *body;
        size_t len;
        if (body_bytes(&r->dc, r->st[R_DICT], s, 0, 1, AS_FILE, &body, &len, NULL) == 0 &&
            len == (size_t)sqlite3_column_int64(s, 2)) {
            copied = copy_slice(body, len, dst, off, n);
            if (body == r->dc.file.data)
                r->dc.file_node = node;     /* the next READ of a large file: no decoding */
        } else {
            copied = -2;        /* there, but unreadable: not a superseded version either */
        }
    } else {
        row_result(r, rc);
    }
    sqlite3_reset(s);
    return copied;
}

long store_read_body(struct store_reader *r, uint64_t node, char *dst,
                     size_t off, size_t n)
{
    /* A version never changes: the one rendered for the last READ serves the next. */
    if (node && r->dc.file_node == node)
        return copy_slice(r->dc.file.data, r->dc.file.len, dst, off, n);
    long got = read_blob(r, R_BODY, (int64_t)ino_rowid(node), (int64_t)ino_ver(node), node,
                         dst, off, n);
    if (got == -2)
        return -1;
    got = got >= 0 ? got : read_blob(r, R_OLD_BODY, (int64_t)node, 0, node, dst, off, n);
    return got < 0 ? -1 : got;
}

int store_read_meta(struct store_reader *r, uint64_t node, char **id,
                    char **remote_id, char **changed_at)
{
    sqlite3_stmt *s = rs(r, R_META);
    sqlite3_bind_int64(s, 1, (sqlite3_int64)ino_rowid(node));
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
        out->ino = out->node = ino_change(seq);
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
        char name[ENTRY_NAME_SIZE];
        a.ino = a.node = ino_change(sqlite3_column_int64(s, 0));
        a.size = (uint64_t)sqlite3_column_int64(s, 1);
        a.mtime_ns = sqlite3_column_int64(s, 2);
        entry_name(sqlite3_column_int64(s, 0), name);
        if (fn(ctx, name, &a))
            break;
        n++;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        n = row_result(r, rc);
    sqlite3_reset(s);
    return n;
}

/* The text of change entry seq from columns col (body), col + 1 (split) and
 * col + 2 (the record's body) of the current row: its own bytes, or spliced
 * into *text when it borrows its record. *out is valid until the row moves
 * or text changes. 0, or -1 when the record it borrows is missing. */
static int entry_bytes(struct store_reader *r, sqlite3_stmt *s, int col, int size_col,
                       int64_t seq, struct buf *text, const void **out, size_t *len)
{
    if (sqlite3_column_type(s, col + 1) == SQLITE_NULL) {
        *out = sqlite3_column_blob(s, col);
        *len = (size_t)sqlite3_column_bytes(s, col);
        return 0;
    }
    text->len = 0;
    if (borrowed_text(&r->dc, r->st[R_DICT], s, col, col + 3, seq, text) != 0)
        return -1;
    if (text->len != (size_t)sqlite3_column_int64(s, size_col)) {
        log_warnx("cache: change entry %lld: its record does not make its size", (long long)seq);
        return -1;
    }
    *out = text->data;
    *len = text->len;
    return 0;
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
    struct buf text = BUF_INIT;
    const void *body;
    size_t len;
    if (entry_bytes(r, s, 0, 4, seq, &text, &body, &len) == 0)
        copied = copy_slice(body, len, dst, off, n);
    buf_free(&text);
    sqlite3_reset(s);
    return copied;
}

int store_read_change_ahead(struct store_reader *r, int64_t after, int max, store_body_fn fn,
                            void *ctx)
{
    sqlite3_stmt *s = rs(r, R_CH_AHEAD);
    int n = 0, rc;
    struct buf text = BUF_INIT;
    sqlite3_bind_int64(s, 1, after);
    sqlite3_bind_int(s, 2, max);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int64_t seq = sqlite3_column_int64(s, 4);
        struct store_attr a;
        char name[ENTRY_NAME_SIZE];
        a.ino = a.node = ino_change(seq);
        a.size = (uint64_t)sqlite3_column_int64(s, 5);
        a.mtime_ns = sqlite3_column_int64(s, 6);
        entry_name(seq, name);
        const void *body;
        size_t len;
        if (entry_bytes(r, s, 0, 5, seq, &text, &body, &len) != 0)
            continue;           /* left to the reader's READ, which says so */
        n++;
        if (fn(ctx, name, &a, body, len))
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        n = row_result(r, rc);
    sqlite3_reset(s);
    buf_free(&text);
    return n;
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

/* ---- views: by-email/, by-remote-id/ ---- */

int store_view_members(struct store *st, enum store_view view, int model,
                       const char *vname, store_member_fn fn, void *ctx)
{
    sqlite3_stmt *s = w(st, view == STORE_VIEW_EMAIL ? W_MEMBERS_EMAIL : W_MEMBERS_RID);
    int n = 0, rc;
    sqlite3_bind_int(s, 1, model);
    sqlite3_bind_text(s, 2, vname, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        fn(ctx, (uint64_t)sqlite3_column_int64(s, 0), (const char *)sqlite3_column_text(s, 1),
           n == 0);
        n++;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        log_warnx("cache: view members: %s", sqlite3_errmsg(st->db));
        return -1;
    }
    return n;
}

int store_views_defer(struct store *st)
{
    sqlite3_stmt *s;
    int empty = 0;
    char err[256];
    if (sqlite3_prepare_v2(st->db, "SELECT NOT EXISTS (SELECT 1 FROM records)", -1, &s, NULL) !=
        SQLITE_OK)
        return -1;
    if (sqlite3_step(s) == SQLITE_ROW)
        empty = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    if (!empty)
        return 0;
    if (exec(st->db, "DROP INDEX IF EXISTS records_ename; DROP INDEX IF EXISTS records_rname",
             err, sizeof err) < 0) {
        log_warnx("cache: %s", err);
        return -1;
    }
    return 1;
}

int store_views_index(struct store *st)
{
    char err[256];
    if (exec(st->db, views_indexes, err, sizeof err) < 0) {
        log_warnx("cache: view indexes: %s", err);
        return -1;
    }
    return 0;
}

long store_backfill(struct store *st, store_derive_fn fn, void *ctx)
{
    long total = 0;
    for (;;) {
        if (store_begin(st) < 0)
            return -1;
        sqlite3_stmt *s = w(st, W_BACKFILL_GET);
        struct fill { int64_t rowid; int model; char *body; size_t size; } rows[256];
        int n = 0, rc = SQLITE_DONE;
        int failed = 0;
        while (n < 256 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
            const void *b;
            size_t len;
            if (body_bytes(&st->dc, st->st[W_DICT_GET], s, 2, 3, AS_JSON, &b, &len, NULL) < 0) {
                failed = 1;
                break;
            }
            rows[n].rowid = sqlite3_column_int64(s, 0);
            rows[n].model = sqlite3_column_int(s, 1);
            rows[n].size = len;
            rows[n].body = malloc(len + 1);
            if (!rows[n].body)
                abort();
            memcpy(rows[n].body, b, len);
            rows[n].body[len] = '\0';
            n++;
        }
        sqlite3_reset(s);
        failed |= rc != SQLITE_ROW && rc != SQLITE_DONE;
        for (int i = 0; i < n; i++) {
            struct store_derived d;
            memset(&d, 0, sizeof d);
            if (!failed && fn(ctx, rows[i].model, rows[i].body, rows[i].size, &d) < 0)
                failed = 1;
            if (!failed) {
                s = w(st, W_BACKFILL_SET);
                sqlite3_bind_int64(s, 1, rows[i].rowid);
                failed = bind_derived(st, s, 2, &d) < 0 || done(st, s, "backfill") < 0;
            }
            free(rows[i].body);
        }
        /* The totals are counted again (a scan of every record) only after
         * rows were derived, here or by a start that stopped before its end:
         * the first batch marks them stale in its own transaction. */
        if (n > 0 && total == 0 && !failed)
            failed = store_meta_set(st, "views_stale", "1") < 0;
        if (n == 0 && !failed) {
            char *stale = store_meta_get(st, "views_stale");
            if (total > 0 || (stale && strcmp(stale, "1") == 0)) {
                char err[256];
                failed = exec(st->db, views_recount, err, sizeof err) < 0 ||
                         store_meta_set(st, "views_stale", "0") < 0;
                if (failed)
                    log_warnx("cache: views: %s", err);
            }
            free(stale);
        }
        if (failed || store_commit(st) < 0) {
            store_rollback(st);
            return -1;
        }
        if (n == 0)
            return total;
        total += n;
    }
}

static void fill_link(sqlite3_stmt *s, int model, int first_col, struct store_link *out)
{
    memset(out, 0, sizeof *out);
    out->rowid = (uint64_t)sqlite3_column_int64(s, 0);
    out->model = model;
    snprintf(out->name, sizeof out->name, "%s", (const char *)sqlite3_column_text(s, 1));
    out->mtime_ns = sqlite3_column_int64(s, 2);
    const unsigned char *v = sqlite3_column_text(s, 3);
    snprintf(out->vname, sizeof out->vname, "%s", v ? (const char *)v : "");
    out->first = first_col < 0 ? 1 : sqlite3_column_int(s, first_col);
}

void store_link_name(const struct store_link *l, struct buf *out)
{
    buf_adds(out, l->vname);
    if (!l->first) {
        size_t n = strlen(l->name);
        buf_addc(out, '~');
        buf_add(out, l->name, n > 5 ? n - 5 : n);     /* without ".json" */
    }
}

int store_read_link_lookup(struct store_reader *r, enum store_view view, int model,
                           const char *name, struct store_link *out)
{
    const char *tilde = strrchr(name, '~');
    sqlite3_stmt *s;
    if (!tilde) {
        s = rs(r, R_LNK_FIRST + (int)view);
        sqlite3_bind_int(s, 1, model);
        sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
    } else {
        /* "<vname>~<id>": vname and the record's file name "<id>.json" */
        struct buf rec = BUF_INIT;
        buf_adds(&rec, tilde + 1);
        buf_adds(&rec, ".json");
        s = rs(r, R_LNK_NAMED + (int)view);
        sqlite3_bind_int(s, 1, model);
        sqlite3_bind_text(s, 2, name, (int)(tilde - name), SQLITE_TRANSIENT);
        sqlite3_bind_text(s, 3, rec.data, (int)rec.len, SQLITE_TRANSIENT);
        buf_free(&rec);
    }
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        fill_link(s, model, tilde ? 4 : -1, out);
    rc = row_result(r, rc);
    sqlite3_reset(s);
    /* "<vname>~<id>" of the record that owns the plain name is not a name */
    if (rc == 1 && tilde && out->first)
        rc = 0;
    return rc;
}

int store_read_link(struct store_reader *r, enum store_view view, uint64_t rowid,
                    struct store_link *out)
{
    sqlite3_stmt *s = rs(r, R_LNK_ROW + (int)view);
    sqlite3_bind_int64(s, 1, (sqlite3_int64)rowid);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        fill_link(s, sqlite3_column_int(s, 5), 4, out);
    rc = row_result(r, rc);
    sqlite3_reset(s);
    return rc;
}

int store_read_link_list(struct store_reader *r, enum store_view view, int model,
                         uint64_t after, int max, store_link_fn fn, void *ctx)
{
    sqlite3_stmt *s = rs(r, R_LNK_LIST + (int)view);
    int n = 0, rc;
    sqlite3_bind_int(s, 1, model);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)after);
    sqlite3_bind_int(s, 3, max);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_link l;
        fill_link(s, model, 4, &l);
        if (fn(ctx, &l))
            break;
        n++;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        n = row_result(r, rc);
    sqlite3_reset(s);
    return n;
}

/* ---- exports ----
 *
 * A pin is a read connection holding a read transaction open at one version
 * of one model's data (views.ver + 1, so that 0 can mean "the current one"):
 * the sizes given to the kernel and every byte read of that version come from
 * that one snapshot, so an export never mixes two versions however the sync
 * runs meanwhile. A pin ends after PIN_IDLE_NS without a read (an idle reader
 * must not keep the WAL from being reset for long), or when all PINS are in
 * use and another version is asked for. Its per-row offsets are built on the
 * first read, from the covering index records_sizes (8 bytes per row and
 * export; the CSV's only when a CSV read needs them).
 *
 * A pin serves one read at a time (a SQLite connection serves one thread)
 * and a version has one pin, so its offsets are built once: a read of a
 * version whose pin is busy waits for it, while reads of other exports, or
 * of the same export at another version, run on their own pins in
 * parallel. Before, one mutex serialised every export read of the store.
 * With more versions read at once than PINS, readers take turns: a pin read
 * within PIN_KEEP_NS stays its reader's until another has waited what taking
 * it would cost (store_pin_kept_until). For a pin of the current version
 * that is a rebuild of its offsets: PIN_HOLD_X times their build time, at
 * most PIN_WAIT_NS. For a pin that may hold an older version (a write was
 * made visible since its transaction began) it is its reader's whole read,
 * which fails with ESTALE once no pin holds the version: PIN_WAIT_NS, and
 * it is taken only when no pin of the current version is busy or kept (one of
 * those becomes free to take soon), or once the taker has waited PIN_WAIT_NS,
 * so a reader of an older version may pause longer than PIN_KEEP_NS. Taking
 * it at once rebuilt some reader's offsets at nearly every READ; always
 * waiting PIN_WAIT_NS made small exports, whose offsets are built in a
 * millisecond, wait for nothing. A stat of the current version (ver 0: a
 * LOOKUP or GETATTR) takes the pin whose transaction began after the last
 * write made visible, if one exists, instead of beginning on a slot of its
 * own and finding that version there (which took a slot from another reader).
 * pins_lock guards the slots (busy, in_txn, model, ver, used_ns, commits, and
 * build_ns while not busy), and is held while a slot's transaction begins or
 * ends; a busy pin's other fields belong to the thread that marked it busy.
 */
#define PINS 4
#define PIN_IDLE_NS (30 * 1000000000LL)
#define PIN_KEEP_NS (200 * 1000000LL)
#define PIN_WAIT_NS (500 * 1000000LL)
#define PIN_HOLD_X 10

enum { P_VIEW, P_SIZES, P_COLS, P_ROWS, P_DICT, P_NSTMT };

static const char *const psql[P_NSTMT] = {
    [P_VIEW] = "SELECT ver, mtime, n, jsonl, csv FROM views WHERE model = ?1",
    [P_SIZES] = "SELECT ino, jsize, csize FROM records INDEXED BY records_sizes WHERE model = ?1"
                " ORDER BY ino",
    [P_COLS] = "SELECT k.keys FROM (SELECT keyset, min(ino) AS first FROM records"
               " INDEXED BY records_sizes WHERE model = ?1 GROUP BY keyset) g"
               " JOIN keysets k ON k.id = g.keyset ORDER BY g.first",
    [P_ROWS] = "SELECT ino, body, zdict FROM records WHERE model = ?1 AND ino >= ?2 ORDER BY ino",
    [P_DICT] = "SELECT bytes FROM dicts WHERE id = ?1",
};

struct pin {
    sqlite3 *db;
    sqlite3_stmt *st[P_NSTMT];
    struct dict_cache dc;
    int in_txn;
    int model;
    uint64_t ver;
    int64_t used_ns, mtime_ns;
    uint64_t n, jsonl, csv_cells;
    int have_cols;
    struct buf colbuf;          /* the CSV columns, each NUL-terminated */
    const char **colv;
    size_t ncols;
    struct buf header;
    int busy;                   /* a thread is reading from it (under pins_lock) */
    int have_offsets, have_coff;
    int64_t build_ns;           /* spent building its offsets and CSV columns */
    uint64_t commits;           /* store_commits() before its transaction began */
    size_t nrows;
    uint64_t *rowid, *joff, *coff;  /* nrows + 1 starts each (the last = the size) */
    int have_last;              /* the last record rendered */
    unsigned last_which;
    size_t last_idx;
    struct buf last;
};

static void pin_reset(struct pin *p)
{
    if (p->in_txn)
        sqlite3_exec(p->db, "COMMIT", NULL, NULL, NULL);
    p->in_txn = 0;
    buf_free(&p->colbuf);
    buf_free(&p->header);
    buf_free(&p->last);
    free(p->colv);
    free(p->rowid);
    free(p->joff);
    free(p->coff);
    p->colv = NULL;
    p->rowid = p->joff = p->coff = NULL;
    p->have_cols = p->have_offsets = p->have_coff = p->have_last = 0;
    p->ncols = p->nrows = 0;
    p->build_ns = 0;
}

static void pins_close(struct store *st)
{
    if (!st->pins)
        return;
    for (int i = 0; i < PINS; i++) {
        struct pin *p = &st->pins[i];
        pin_reset(p);
        for (int j = 0; j < P_NSTMT; j++)
            sqlite3_finalize(p->st[j]);
        if (p->db)
            sqlite3_close(p->db);
        dict_cache_free(&p->dc);
    }
    free(st->pins);
    st->pins = NULL;
}

/* End the transactions of pins idle since before now - PIN_IDLE_NS. Never
 * waits: the writer calls it after each commit. */
static void pins_expire(struct store *st, int64_t now)
{
    if (!st->pins || pthread_mutex_trylock(&st->pins_lock) != 0)
        return;
    for (int i = 0; i < PINS; i++)
        if (!st->pins[i].busy && st->pins[i].in_txn && now - st->pins[i].used_ns > PIN_IDLE_NS)
            pin_reset(&st->pins[i]);
    pthread_mutex_unlock(&st->pins_lock);
}

/* A pin reads its model's rows in page order: through seqvfs (seqvfs.h), a
 * cold export read makes one pread per 256 KiB instead of one per page. */
static int pin_prepare(struct store *st, struct pin *p)
{
    if (p->db)
        return 0;
    if (sqlite3_open_v2(st->path, &p->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                        seqvfs_register()) != SQLITE_OK)
        goto fail;
    sqlite3_busy_handler(p->db, busy_nap, NULL);
    for (int i = 0; i < P_NSTMT; i++)
        if (sqlite3_prepare_v3(p->db, psql[i], -1, SQLITE_PREPARE_PERSISTENT, &p->st[i], NULL) !=
            SQLITE_OK)
            goto fail;
    return 0;
fail:
    log_warnx("cache: cannot open an export reader: %s",
              p->db ? sqlite3_errmsg(p->db) : "no memory");
    for (int i = 0; i < P_NSTMT; i++) {
        sqlite3_finalize(p->st[i]);
        p->st[i] = NULL;
    }
    sqlite3_close(p->db);
    p->db = NULL;
    return -1;
}

/* Start a read transaction on p and read the model's version and totals. */
static int pin_begin(struct pin *p, int model)
{
    if (sqlite3_exec(p->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        return -1;
    p->in_txn = 1;
    p->model = model;
    sqlite3_stmt *s = p->st[P_VIEW];
    sqlite3_reset(s);
    sqlite3_bind_int(s, 1, model);
    int rc = sqlite3_step(s);
    p->ver = 1;
    p->mtime_ns = 0;
    p->n = p->jsonl = p->csv_cells = 0;
    if (rc == SQLITE_ROW) {
        p->ver = (uint64_t)sqlite3_column_int64(s, 0) + 1;
        p->mtime_ns = sqlite3_column_int64(s, 1);
        p->n = (uint64_t)sqlite3_column_int64(s, 2);
        p->jsonl = (uint64_t)sqlite3_column_int64(s, 3);
        p->csv_cells = (uint64_t)sqlite3_column_int64(s, 4);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        log_warnx("cache: export version: %s", sqlite3_errmsg(p->db));
        pin_reset(p);
        return -1;
    }
    return 0;
}

/* Wait on pins_free, until deadline_ns (CLOCK_REALTIME, as clock_now_ns) if not 0. */
static void pins_wait(struct store *st, int64_t deadline_ns)
{
    if (!deadline_ns) {
        pthread_cond_wait(&st->pins_free, &st->pins_lock);
        return;
    }
    struct timespec ts = { (time_t)(deadline_ns / 1000000000), (long)(deadline_ns % 1000000000) };
    pthread_cond_timedwait(&st->pins_free, &st->pins_lock, &ts);
}

int64_t store_pin_kept_until(int64_t used_ns, int64_t build_ns, int current, int64_t since_ns)
{
    int64_t hold = !current || build_ns > PIN_WAIT_NS / PIN_HOLD_X ? PIN_WAIT_NS
                                                                  : PIN_HOLD_X * build_ns;
    if (hold < 0)
        hold = 0;
    int64_t keep = used_ns + PIN_KEEP_NS, wait = since_ns + hold;
    return keep < wait ? keep : wait;
}

/* The pin of version ver of `model` (0: the current one), marked busy for
 * the caller, who gives it back with pin_put(). Under pins_lock, which it
 * releases while it waits for a busy pin. Returns it, or NULL with *err =
 * ESTALE (that version is no longer current and no pin holds it) or EIO.
 *
 * A pin read from within PIN_KEEP_NS is its reader's between two READs: it
 * is taken for another version only once store_pin_kept_until() has passed,
 * so more readers of different versions than PINS take turns on the pins
 * instead of rebuilding each other's offsets at every READ. */
static struct pin *pin_get(struct store *st, int model, uint64_t ver, int *err)
{
    *err = EIO;
    if (!st->pins && !(st->pins = calloc(PINS, sizeof *st->pins)))
        abort();
    int64_t since = clock_now_ns();
    for (;;) {
        int64_t now = clock_now_ns();
        /* Version 0 is the current one: a pin whose transaction began after
         * the last write made visible holds it. */
        uint64_t commits = store_commits(st);
        int held = 0;               /* the version asked for is busy */
        for (int i = 0; i < PINS; i++) {
            struct pin *p = &st->pins[i];
            int match = p->in_txn && p->model == model &&
                        (ver ? p->ver == ver : p->commits == commits);
            if (p->busy) {
                held |= match;
            } else if (p->in_txn && now - p->used_ns > PIN_IDLE_NS) {
                pin_reset(p);
            } else if (match) {
                p->busy = 1;
                p->used_ns = now;
                return p;
            }
        }
        if (held) {                 /* its offsets are built already: wait for it */
            pins_wait(st, 0);
            continue;
        }
        /* A free slot, else the least recently used idle one that its reader
         * has left (or any, once the caller has waited long enough); one that
         * may hold an older version only as the comment above says. */
        struct pin *p = NULL, *old = NULL;
        int64_t kept = 0;           /* the earliest a kept pin may be taken */
        int others = 0;             /* pins of the current version busy or kept */
        for (int i = 0; i < PINS; i++) {
            struct pin *q = &st->pins[i];
            int current = q->commits == commits;
            if (q->busy) {
                others += current;
                continue;
            }
            if (!q->in_txn) {
                p = q;
                break;
            }
            int64_t until = store_pin_kept_until(q->used_ns, q->build_ns, current, since);
            if (now < until) {
                if (!kept || until < kept)
                    kept = until;
                others += current;
                continue;
            }
            struct pin **best = current ? &p : &old;
            if (!*best || q->used_ns < (*best)->used_ns)
                *best = q;
        }
        if (!p && old && (!others || now - since >= PIN_WAIT_NS))
            p = old;
        if (!p) {                   /* every pin is busy or kept: wait */
            if (old && (!kept || since + PIN_WAIT_NS < kept))
                kept = since + PIN_WAIT_NS;
            pins_wait(st, kept);
            continue;
        }
        if (p->in_txn && now - p->used_ns < PIN_KEEP_NS)
            log_debug("cache: model %d took the pin of model %d read %.2f ms ago, after"
                      " waiting %.2f ms (its offsets took %.2f ms)", model, p->model,
                      (double)(now - p->used_ns) / 1e6, (double)(now - since) / 1e6,
                      (double)p->build_ns / 1e6);
        pin_reset(p);
        p->commits = store_commits(st);
        if (pin_prepare(st, p) < 0 || pin_begin(p, model) < 0)
            return NULL;
        if (ver && p->ver != ver) {
            pin_reset(p);
            *err = ESTALE;
            return NULL;
        }
        struct pin *q = NULL;       /* another pin of the version just seen */
        for (int i = 0; i < PINS && !q; i++)
            if (&st->pins[i] != p && st->pins[i].in_txn && st->pins[i].model == model &&
                st->pins[i].ver == p->ver)
                q = &st->pins[i];
        if (q) {
            pin_reset(p);
            if (q->busy) {          /* wait for it: its offsets are built already */
                pins_wait(st, 0);
                continue;
            }
            p = q;
        }
        p->busy = 1;
        p->used_ns = now;
        return p;
    }
}

/* Give back a pin that pin_get() returned. Under pins_lock. */
static void pin_put(struct store *st, struct pin *p)
{
    p->busy = 0;
    p->used_ns = clock_now_ns();
    pthread_cond_broadcast(&st->pins_free);
}

/* The CSV columns: every keyset's keys, in the order of the first row that
 * has each keyset, each key once. */
static int pin_cols(struct pin *p)
{
    if (p->have_cols)
        return 0;
    struct buf all = BUF_INIT;
    sqlite3_stmt *s = p->st[P_COLS];
    sqlite3_reset(s);
    sqlite3_bind_int(s, 1, p->model);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        buf_add(&all, sqlite3_column_blob(s, 0), (size_t)sqlite3_column_bytes(s, 0));
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        log_warnx("cache: export columns: %s", sqlite3_errmsg(p->db));
        buf_free(&all);
        return -1;
    }
    /* keys are copied into colbuf first, then pointed at (colbuf may move while it grows) */
    size_t cap = 16, ncols = 0;
    size_t *offs = malloc(cap * sizeof *offs);
    if (!offs)
        abort();
    for (size_t i = 0; i < all.len;) {
        const char *k = all.data + i;
        size_t klen = strnlen(k, all.len - i);
        int seen = 0;
        for (size_t j = 0; j < ncols && !seen; j++)
            seen = strcmp(p->colbuf.data + offs[j], k) == 0;
        if (!seen) {
            if (ncols == cap) {
                cap *= 2;
                size_t *more = realloc(offs, cap * sizeof *offs);
                if (!more)
                    abort();
                offs = more;
            }
            offs[ncols++] = p->colbuf.len;
            buf_add(&p->colbuf, k, klen);
            buf_addc(&p->colbuf, '\0');
        }
        i += klen + 1;
    }
    p->colv = malloc((ncols ? ncols : 1) * sizeof *p->colv);
    if (!p->colv)
        abort();
    for (size_t j = 0; j < ncols; j++)
        p->colv[j] = p->colbuf.data + offs[j];
    p->ncols = ncols;
    free(offs);
    buf_free(&all);
    if (p->ncols)
        export_csv_header(p->colv, p->ncols, &p->header);
    p->have_cols = 1;
    return 0;
}

static uint64_t pin_size(struct pin *p, unsigned which)
{
    if (which != INO_EXPORT_CSV)
        return p->jsonl;
    if (!p->ncols)
        return 0;
    return p->header.len + p->csv_cells + p->n * (p->ncols + 1);
}

/* The row offsets export `which` needs, checked against the totals: one
 * scan of records_sizes gives the rows, the JSONL's offsets and each row's
 * CSV cells (kept in coff until the CSV needs its offsets, which count the
 * columns: a JSONL read never reads them). */
static int pin_offsets(struct pin *p, unsigned which)
{
    if (!p->have_offsets) {
        int64_t t0 = clock_now_ns();
        size_t cap = p->n + 1;
        free(p->rowid);
        free(p->joff);
        free(p->coff);
        p->rowid = malloc(cap * sizeof *p->rowid);
        p->joff = malloc(cap * sizeof *p->joff);
        p->coff = malloc(cap * sizeof *p->coff);
        if (!p->rowid || !p->joff || !p->coff)
            abort();
        sqlite3_stmt *s = p->st[P_SIZES];
        sqlite3_reset(s);
        sqlite3_bind_int(s, 1, p->model);
        uint64_t j = 0;
        size_t n = 0;
        int rc;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW && n < p->n) {
            p->rowid[n] = (uint64_t)sqlite3_column_int64(s, 0);
            p->joff[n] = j;
            p->coff[n] = (uint64_t)sqlite3_column_int64(s, 2);
            j += (uint64_t)sqlite3_column_int64(s, 1) + 1;
            n++;
        }
        sqlite3_reset(s);
        p->rowid[n] = 0;
        p->joff[n] = j;
        p->coff[n] = 0;
        p->nrows = n;
        p->have_coff = 0;
        if ((rc != SQLITE_DONE && rc != SQLITE_ROW) || n != p->n || j != p->jsonl) {
            log_warnx("cache: model %d: export sizes do not add up (%zu rows of %llu)", p->model,
                      n, (unsigned long long)p->n);
            return -1;
        }
        p->have_offsets = 1;
        int64_t t1 = clock_now_ns();
        p->build_ns += t1 - t0;
        log_debug("cache: model %d, version %llu: export offsets of %zu rows built (%.1f ms)",
                  p->model, (unsigned long long)p->ver, n, (double)(t1 - t0) / 1e6);
    }
    if (which != INO_EXPORT_CSV || p->have_coff)
        return 0;
    int64_t t0 = clock_now_ns();
    if (pin_cols(p) < 0)
        return -1;
    uint64_t c = p->header.len;
    for (size_t i = 0; i <= p->nrows; i++) {
        uint64_t cells = p->coff[i];
        p->coff[i] = c;
        c += cells + p->ncols + 1;
    }
    if (p->ncols && p->coff[p->nrows] != pin_size(p, INO_EXPORT_CSV)) {
        log_warnx("cache: model %d: export sizes do not add up (CSV)", p->model);
        p->have_offsets = 0;        /* coff no longer holds the cells: scan again next time */
        return -1;
    }
    p->have_coff = 1;
    p->build_ns += clock_now_ns() - t0;
    return 0;
}

/* Render row idx of export `which` from its JSON (compact: as it is, a
 * packed row's) into p->last. */
static int pin_render(struct pin *p, unsigned which, size_t idx, const char *body,
                      size_t len, int compact)
{
    const uint64_t *start = which == INO_EXPORT_CSV ? p->coff : p->joff;
    buf_reset(&p->last);
    if (which == INO_EXPORT_CSV) {
        export_csv_row(body, len, p->colv, p->ncols, &p->last);
    } else {
        if (compact)
            buf_add(&p->last, body, len);
        else
            export_compact(body, len, &p->last);
        buf_addc(&p->last, '\n');
    }
    if (p->last.len != start[idx + 1] - start[idx]) {
        log_warnx("cache: model %d: an export row has %zu bytes, %llu were counted", p->model,
                  p->last.len, (unsigned long long)(start[idx + 1] - start[idx]));
        p->have_last = 0;
        return -1;
    }
    p->have_last = 1;
    p->last_which = which;
    p->last_idx = idx;
    return 0;
}

/* A whole JSONL line of a compact row that fits in the reply goes straight
 * into it, without the copy in p->last (a cold read of 100k employees copied
 * its 353 MB once more that way): the line's length, 0 where pin_render
 * must (a CSV row, a body kept indented by an older cache, a line cut by the
 * reply's end), -1 if the line is not the length counted. A packed body is
 * compact once decoded. */
static long pin_line_direct(struct pin *p, unsigned which, size_t idx, const char *body,
                            size_t len, int compact, uint64_t off, char *dst, size_t room)
{
    if (which == INO_EXPORT_CSV || !compact || off != p->joff[idx] || len + 1 > room)
        return 0;
    if (len + 1 != p->joff[idx + 1] - p->joff[idx]) {
        log_warnx("cache: model %d: an export row has %zu bytes, %llu were counted", p->model,
                  len + 1, (unsigned long long)(p->joff[idx + 1] - p->joff[idx]));
        return -1;
    }
    memcpy(dst, body, len);
    dst[len] = '\n';
    return (long)(len + 1);
}

static long pin_read(struct pin *p, unsigned which, char *dst, size_t off, size_t n)
{
    uint64_t size = pin_size(p, which);
    if (off >= size)
        return 0;
    if (n > size - off)
        n = (size_t)(size - off);
    size_t got = 0;
    if (which == INO_EXPORT_CSV && off < p->header.len) {
        got = copy_slice(p->header.data, p->header.len, dst, off, n) ;
        off += got;
    }
    if (got == n)
        return (long)got;
    if (pin_offsets(p, which) < 0)
        return -EIO;
    const uint64_t *start = which == INO_EXPORT_CSV ? p->coff : p->joff;
    size_t lo = 0, hi = p->nrows;       /* the last row that starts at or before off */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (start[mid] <= off)
            lo = mid;
        else
            hi = mid;
    }
    sqlite3_stmt *s = NULL;
    long rc = 0;
    for (size_t i = lo; i < p->nrows && got < n; i++) {
        if (!(p->have_last && p->last_which == which && p->last_idx == i)) {
            if (!s) {
                s = p->st[P_ROWS];
                sqlite3_reset(s);
                sqlite3_bind_int(s, 1, p->model);
                sqlite3_bind_int64(s, 2, (sqlite3_int64)p->rowid[i]);
            }
            const void *body;
            size_t len;
            int compact;
            if (sqlite3_step(s) != SQLITE_ROW ||
                (uint64_t)sqlite3_column_int64(s, 0) != p->rowid[i] ||
                body_bytes(&p->dc, p->st[P_DICT], s, 1, 2, AS_JSON, &body, &len, &compact) < 0) {
                rc = -EIO;
                break;
            }
            long direct = pin_line_direct(p, which, i, body, len, compact, off, dst + got,
                                          n - got);
            if (direct < 0) {
                rc = -EIO;
                break;
            }
            if (direct > 0) {
                got += (size_t)direct;
                off += (size_t)direct;
                continue;
            }
            if (pin_render(p, which, i, body, len, compact) < 0) {
                rc = -EIO;
                break;
            }
        } else if (s) {
            sqlite3_step(s);    /* keep the statement on row i + 1 */
        }
        size_t k = copy_slice(p->last.data, p->last.len, dst + got, off - start[i], n - got);
        got += k;
        off += k;
    }
    if (s)
        sqlite3_reset(s);
    return rc < 0 ? rc : (long)got;
}

static int export_model(unsigned which)
{
    return which == INO_EXPORT_CSV ? 0 : (int)which;
}

int store_export_stat(struct store *st, unsigned which, uint64_t *ver, uint64_t *size,
                      int64_t *mtime_ns)
{
    int err, rc = 0;
    pthread_mutex_lock(&st->pins_lock);
    struct pin *p = pin_get(st, export_model(which), *ver, &err);
    pthread_mutex_unlock(&st->pins_lock);
    if (!p)
        return -err;
    if (which == INO_EXPORT_CSV && pin_cols(p) < 0) {
        rc = -EIO;
    } else {
        *ver = p->ver;
        *size = pin_size(p, which);
        *mtime_ns = p->mtime_ns;
    }
    pthread_mutex_lock(&st->pins_lock);
    pin_put(st, p);
    pthread_mutex_unlock(&st->pins_lock);
    return rc;
}

long store_export_read(struct store *st, unsigned which, uint64_t ver, char *dst,
                       size_t off, size_t n)
{
    int err;
    long rc;
    pthread_mutex_lock(&st->pins_lock);
    struct pin *p = pin_get(st, export_model(which), ver, &err);
    pthread_mutex_unlock(&st->pins_lock);
    if (!p)
        return -err;
    if (which == INO_EXPORT_CSV && pin_cols(p) < 0)
        rc = -EIO;
    else
        rc = pin_read(p, which, dst, off, n);
    pthread_mutex_lock(&st->pins_lock);
    pin_put(st, p);
    pthread_mutex_unlock(&st->pins_lock);
    return rc;
}
