#include "roster.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"

/* PRAGMA application_id of a roster: "kfsr". */
#define ROSTER_APP_ID 0x6b667372

static const char schema_v1[] =
    "BEGIN;"
    "CREATE TABLE integrations ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " slot INTEGER NOT NULL UNIQUE CHECK (slot BETWEEN 1 AND 65535),"
    " origin_id TEXT,"
    " source TEXT NOT NULL CHECK (source IN ('file', 'control', 'discovered')),"
    " removed INTEGER NOT NULL DEFAULT 0,"
    " deleted INTEGER NOT NULL DEFAULT 0,"
    " paused INTEGER NOT NULL DEFAULT 0);"
    /* the ids of FILE when it was last read, in its order */
    "CREATE TABLE file_ids (pos INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE);"
    /* max_slot: the highest slot ever given */
    "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value);"
    "INSERT INTO meta (key, value) VALUES ('max_slot', 0);"
    "PRAGMA application_id = 1801876338;"   /* ROSTER_APP_ID */
    "PRAGMA user_version = 1;"
    "COMMIT;";

enum {
    S_GET, S_INSERT, S_ACTIVATE, S_SET_SOURCE, S_REMOVE, S_PURGE, S_ORIGIN, S_DELETED,
    S_PAUSED, S_MAX, S_SET_MAX, S_FREE, S_LIST, S_FILE_IDS, S_FILE_CLEAR, S_FILE_ADD,
    S_COUNT
};

static const char *const sql[S_COUNT] = {
    [S_GET] = "SELECT slot, removed FROM integrations WHERE id = ?1",
    [S_INSERT] = "INSERT INTO integrations (id, slot, source) VALUES (?1, ?2, ?3)",
    [S_ACTIVATE] = "UPDATE integrations SET removed = 0, source = ?2 WHERE id = ?1",
    [S_SET_SOURCE] = "UPDATE integrations SET source = ?2 WHERE id = ?1",
    [S_REMOVE] = "UPDATE integrations SET removed = 1 WHERE id = ?1",
    [S_PURGE] = "DELETE FROM integrations WHERE id = ?1",
    [S_ORIGIN] = "UPDATE integrations SET origin_id = ?2 WHERE id = ?1",
    [S_DELETED] = "UPDATE integrations SET deleted = ?2 WHERE id = ?1",
    [S_PAUSED] = "UPDATE integrations SET paused = ?2 WHERE id = ?1",
    [S_MAX] = "SELECT max(coalesce((SELECT value FROM meta WHERE key = 'max_slot'), 0),"
              " coalesce((SELECT max(slot) FROM integrations), 0))",
    [S_SET_MAX] = "INSERT INTO meta (key, value) VALUES ('max_slot', ?1)"
                  " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    /* the lowest free slot up to ?1 */
    [S_FREE] = "SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM integrations WHERE slot = 1)"
               " UNION ALL"
               " SELECT slot + 1 FROM integrations WHERE slot < ?1"
               " AND slot + 1 NOT IN (SELECT slot FROM integrations)"
               " ORDER BY 1 LIMIT 1",
    [S_LIST] = "SELECT id, slot, origin_id, source, removed, deleted, paused"
               " FROM integrations ORDER BY slot",
    [S_FILE_IDS] = "SELECT id FROM file_ids ORDER BY pos",
    [S_FILE_CLEAR] = "DELETE FROM file_ids",
    [S_FILE_ADD] = "INSERT INTO file_ids (pos, id) VALUES (?1, ?2)",
};

struct roster {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *st[S_COUNT];
    char msg[512];
};

static const char *const source_names[] = {
    [ROSTER_FILE] = "file",
    [ROSTER_CONTROL] = "control",
    [ROSTER_DISCOVERED] = "discovered",
};

const char *roster_source_name(enum roster_source s)
{
    if ((unsigned)s >= sizeof source_names / sizeof source_names[0])
        return "?";
    return source_names[s];
}

static enum roster_source source_of(const char *name)
{
    for (unsigned i = 0; i < sizeof source_names / sizeof source_names[0]; i++)
        if (name && strcmp(name, source_names[i]) == 0)
            return (enum roster_source)i;
    return ROSTER_FILE;
}

const char *roster_path(const struct roster *r)
{
    return r->path;
}

const char *roster_errmsg(const struct roster *r)
{
    return r->msg;
}

/* As store.c: wait for another connection's lock in 1 ms steps, up to 10 s
 * (a roster has one connection, but a second daemon or sqlite3(1) may look). */
static int busy_nap(void *ctx, int count)
{
    (void)ctx;
    if (count >= 10000)
        return 0;
    struct timespec ts = { 0, 1000000 };
    nanosleep(&ts, NULL);
    return 1;
}

/* Record SQLite's message for roster_errmsg; returns -EIO. */
static int db_error(struct roster *r, const char *what)
{
    snprintf(r->msg, sizeof r->msg, "roster '%s': %s: %s", r->path, what,
             sqlite3_errmsg(r->db));
    return -EIO;
}

/* Record why a call fails with rc (not an SQLite error); returns rc. */
__attribute__((format(printf, 3, 4)))
static int say(struct roster *r, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof r->msg, fmt, ap);
    va_end(ap);
    return rc;
}

/* -ENOENT from an UPDATE/DELETE of id: say so. */
static int known(struct roster *r, int rc, const char *id)
{
    return rc == -ENOENT ? say(r, rc, "integration '%s' is not known", id) : rc;
}

static int exec(struct roster *r, const char *text, const char *what)
{
    if (sqlite3_exec(r->db, text, NULL, NULL, NULL) != SQLITE_OK)
        return db_error(r, what);
    return 0;
}

static int begin(struct roster *r)
{
    return exec(r, "BEGIN IMMEDIATE", "starting a transaction");
}

static int commit(struct roster *r)
{
    return exec(r, "COMMIT", "committing");
}

/* End a transaction: commit if rc >= 0, else roll back. Returns rc, or
 * -EIO if the commit failed. */
static int end(struct roster *r, int rc)
{
    if (rc >= 0) {
        int c = commit(r);
        if (c == 0)
            return rc;
        rc = c;
    }
    if (!sqlite3_get_autocommit(r->db))
        sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static sqlite3_stmt *stmt(struct roster *r, int which)
{
    sqlite3_stmt *s = r->st[which];
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
}

/* Run a statement that returns no row. */
static int run(struct roster *r, sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return db_error(r, "writing");
    return 0;
}

/* An UPDATE/DELETE of one id: 0, or -ENOENT if no row matched. */
static int run_one(struct roster *r, sqlite3_stmt *s)
{
    int rc = run(r, s);
    if (rc < 0)
        return rc;
    return sqlite3_changes(r->db) ? 0 : -ENOENT;
}

/* 1 and the slot and removed flag if id is known, 0 if not, or -EIO. */
static int get(struct roster *r, const char *id, unsigned *slot, int *removed)
{
    sqlite3_stmt *s = stmt(r, S_GET);
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *slot = (unsigned)sqlite3_column_int64(s, 0);
        *removed = sqlite3_column_int(s, 1) != 0;
        sqlite3_reset(s);
        return 1;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return db_error(r, "reading an integration");
    return 0;
}

static int alloc_slot(struct roster *r, unsigned *slot)
{
    sqlite3_stmt *s = stmt(r, S_MAX);
    if (sqlite3_step(s) != SQLITE_ROW) {
        sqlite3_reset(s);
        return db_error(r, "reading the highest slot");
    }
    sqlite3_int64 max = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    if (max < ROSTER_SLOT_MAX) {
        s = stmt(r, S_SET_MAX);
        sqlite3_bind_int64(s, 1, max + 1);
        if (run(r, s) < 0)
            return -EIO;
        *slot = (unsigned)(max + 1);
        return 0;
    }
    s = stmt(r, S_FREE);
    sqlite3_bind_int64(s, 1, ROSTER_SLOT_MAX);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *slot = (unsigned)sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    if (rc == SQLITE_ROW)
        return 0;
    if (rc != SQLITE_DONE)
        return db_error(r, "looking for a free slot");
    return say(r, -ENOSPC, "roster '%s': all %u slots are taken (purge integrations)", r->path,
               ROSTER_SLOT_MAX);
}

/* roster_add inside a transaction; also tells whether it was removed. */
static int add_locked(struct roster *r, const char *id, enum roster_source source,
                      unsigned *slot, int set_source_if_active)
{
    unsigned sl = 0;
    int removed = 0;
    int rc = get(r, id, &sl, &removed);
    if (rc < 0)
        return rc;
    if (rc == 1) {
        sqlite3_stmt *s = stmt(r, removed ? S_ACTIVATE : S_SET_SOURCE);
        sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, source_names[source], -1, SQLITE_STATIC);
        if ((removed || set_source_if_active) && run(r, s) < 0)
            return -EIO;
        if (slot)
            *slot = sl;
        return removed ? 0 : 1;
    }
    rc = alloc_slot(r, &sl);
    if (rc < 0)
        return rc;
    sqlite3_stmt *s = stmt(r, S_INSERT);
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, sl);
    sqlite3_bind_text(s, 3, source_names[source], -1, SQLITE_STATIC);
    if (run(r, s) < 0)
        return -EIO;
    if (slot)
        *slot = sl;
    return 0;
}

static int valid_source(enum roster_source source)
{
    return (unsigned)source < sizeof source_names / sizeof source_names[0];
}

int roster_add(struct roster *r, const char *id, enum roster_source source, unsigned *slot)
{
    if (!ilist_valid_id(id))
        return say(r, -EINVAL, "not a valid integration id (1 to %d printable ASCII bytes)",
                   ILIST_ID_MAX);
    if (!valid_source(source))
        return say(r, -EINVAL, "%d is not a source", (int)source);
    int rc = begin(r);
    if (rc < 0)
        return rc;
    return end(r, add_locked(r, id, source, slot, 0));
}

int roster_remove(struct roster *r, const char *id)
{
    unsigned slot;
    int removed = 0;
    int rc = begin(r);
    if (rc < 0)
        return rc;
    rc = get(r, id, &slot, &removed);
    if (rc == 0)
        rc = known(r, -ENOENT, id);
    else if (rc == 1 && removed)
        rc = say(r, -EALREADY, "integration '%s' is already removed", id);
    else if (rc == 1) {
        sqlite3_stmt *s = stmt(r, S_REMOVE);
        sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
        rc = run_one(r, s);
    }
    return end(r, rc);
}

int roster_purge(struct roster *r, const char *id)
{
    sqlite3_stmt *s = stmt(r, S_PURGE);
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    return known(r, run_one(r, s), id);
}

int roster_set_origin(struct roster *r, const char *id, const char *origin_id)
{
    sqlite3_stmt *s = stmt(r, S_ORIGIN);
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    if (origin_id)
        sqlite3_bind_text(s, 2, origin_id, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, 2);
    return known(r, run_one(r, s), id);
}

int roster_set_flag(struct roster *r, const char *id, enum roster_flag flag, int on)
{
    int which;
    switch (flag) {
    case ROSTER_DELETED: which = S_DELETED; break;
    case ROSTER_PAUSED: which = S_PAUSED; break;
    default: return say(r, -EINVAL, "%d is not a flag", (int)flag);
    }
    sqlite3_stmt *s = stmt(r, which);
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, on != 0);
    return known(r, run_one(r, s), id);
}

/* FILE's ids when it was last read. */
static int file_ids(struct roster *r, struct ilist *out)
{
    sqlite3_stmt *s = stmt(r, S_FILE_IDS);
    int rc;
    *out = (struct ilist)ILIST_INIT;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        ilist_push(out, (const char *)sqlite3_column_text(s, 0));
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        ilist_free(out);
        return db_error(r, "reading the last ids of the integrations file");
    }
    return 0;
}

static int apply_locked(struct roster *r, const struct ilist *ids, struct ilist *added,
                        struct ilist *removed)
{
    struct ilist old, plus, minus;
    int rc = file_ids(r, &old);
    if (rc < 0)
        return rc;
    ilist_diff(&old, ids, &plus, &minus);
    ilist_free(&old);
    for (size_t i = 0; rc >= 0 && i < plus.n; i++) {
        rc = add_locked(r, plus.ids[i], ROSTER_FILE, NULL, 1);
        if (rc == 0)
            ilist_push(added, plus.ids[i]);
    }
    for (size_t i = 0; rc >= 0 && i < minus.n; i++) {
        unsigned slot;
        int was_removed = 0;
        rc = get(r, minus.ids[i], &slot, &was_removed);
        if (rc == 1 && !was_removed) {
            sqlite3_stmt *s = stmt(r, S_REMOVE);
            sqlite3_bind_text(s, 1, minus.ids[i], -1, SQLITE_STATIC);
            rc = run(r, s);
            if (rc == 0)
                ilist_push(removed, minus.ids[i]);
        }
    }
    ilist_free(&plus);
    ilist_free(&minus);
    if (rc < 0)
        return rc;
    if ((rc = run(r, stmt(r, S_FILE_CLEAR))) < 0)
        return rc;
    for (size_t i = 0; i < ids->n; i++) {
        sqlite3_stmt *s = stmt(r, S_FILE_ADD);
        sqlite3_bind_int64(s, 1, (sqlite3_int64)i);
        sqlite3_bind_text(s, 2, ids->ids[i], -1, SQLITE_STATIC);
        if ((rc = run(r, s)) < 0)
            return rc;
    }
    return 0;
}

int roster_apply_file(struct roster *r, const struct ilist *ids, struct ilist *added,
                      struct ilist *removed)
{
    struct ilist a = ILIST_INIT, d = ILIST_INIT;
    if (added)
        *added = (struct ilist)ILIST_INIT;
    if (removed)
        *removed = (struct ilist)ILIST_INIT;
    for (size_t i = 0; i < ids->n; i++)
        if (!ilist_valid_id(ids->ids[i]))
            return say(r, -EINVAL, "id %zu of the list is not a valid integration id (1 to %d printable ASCII bytes)",
                       i + 1, ILIST_ID_MAX);
    int rc = begin(r);
    if (rc == 0)
        rc = end(r, apply_locked(r, ids, &a, &d));
    if (rc < 0 || !added)
        ilist_free(&a);
    else
        *added = a;
    if (rc < 0 || !removed)
        ilist_free(&d);
    else
        *removed = d;
    return rc < 0 ? rc : 0;
}

struct row {
    struct roster_entry e;
    char *id, *origin;
};

int roster_list(struct roster *r, int (*fn)(const struct roster_entry *e, void *ctx),
                void *ctx)
{
    struct row *rows = NULL;
    size_t n = 0, cap = 0;
    sqlite3_stmt *s = stmt(r, S_LIST);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            struct row *p = realloc(rows, cap * sizeof *rows);
            if (!p)
                abort();
            rows = p;
        }
        struct row *w = &rows[n++];
        const char *origin = (const char *)sqlite3_column_text(s, 2);
        w->id = strdup((const char *)sqlite3_column_text(s, 0));
        w->origin = origin ? strdup(origin) : NULL;
        if (!w->id || (origin && !w->origin))
            abort();
        w->e = (struct roster_entry){
            .id = w->id,
            .slot = (unsigned)sqlite3_column_int64(s, 1),
            .origin_id = w->origin,
            .source = source_of((const char *)sqlite3_column_text(s, 3)),
            .removed = sqlite3_column_int(s, 4) != 0,
            .deleted = sqlite3_column_int(s, 5) != 0,
            .paused = sqlite3_column_int(s, 6) != 0,
        };
    }
    sqlite3_reset(s);
    rc = rc == SQLITE_DONE ? 0 : db_error(r, "listing the integrations");
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = fn(&rows[i].e, ctx);
    for (size_t i = 0; i < n; i++) {
        free(rows[i].id);
        free(rows[i].origin);
    }
    free(rows);
    return rc;
}

static int query_int(sqlite3 *db, const char *text, sqlite3_int64 *out)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, text, -1, &s, NULL) != SQLITE_OK)
        return -1;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return rc == SQLITE_ROW ? 0 : -1;
}

/* Read-only checks first: nothing is written to a file that is not ours.
 * Returns 1 for a new (empty) file, 0 for a roster, -1 with err set. */
static int identify(struct roster *r, char *err, size_t errlen)
{
    sqlite3_int64 app = 0, version = 0, tables = 0;
    if (query_int(r->db, "PRAGMA application_id", &app) < 0 ||
        query_int(r->db, "PRAGMA user_version", &version) < 0 ||
        query_int(r->db, "SELECT count(*) FROM sqlite_master", &tables) < 0) {
        snprintf(err, errlen, "roster '%s' is not a SQLite database or is corrupt (%s): move it away",
                 r->path, sqlite3_errmsg(r->db));
        return -1;
    }
    if (app == 0 && version == 0 && tables == 0)
        return 1;
    if (app != ROSTER_APP_ID || version < 1) {
        snprintf(err, errlen, "'%s' is not a kombofs roster (another SQLite database): move it away",
                 r->path);
        return -1;
    }
    if (version > ROSTER_SCHEMA_VERSION) {
        snprintf(err, errlen, "roster '%s' has schema version %lld, newer than this kombofs (%d): refusing to touch it",
                 r->path, (long long)version, ROSTER_SCHEMA_VERSION);
        return -1;
    }
    /* A roster is a few pages: checking all of it costs nothing. */
    sqlite3_stmt *s;
    int good = 0;
    if (sqlite3_prepare_v2(r->db, "PRAGMA quick_check", -1, &s, NULL) == SQLITE_OK) {
        if (sqlite3_step(s) == SQLITE_ROW) {
            const char *t = (const char *)sqlite3_column_text(s, 0);
            good = t && strcmp(t, "ok") == 0;
        }
        sqlite3_finalize(s);
    }
    if (!good) {
        snprintf(err, errlen, "roster '%s' is corrupt (PRAGMA quick_check failed): move it away",
                 r->path);
        return -1;
    }
    return 0;
}

struct roster *roster_open(const char *dir, char *err, size_t errlen)
{
    struct roster *r = calloc(1, sizeof *r);
    if (!r)
        abort();
    struct buf b = BUF_INIT;
    buf_adds(&b, dir);
    if (b.len == 0 || b.data[b.len - 1] != '/')
        buf_addc(&b, '/');
    buf_adds(&b, ROSTER_FILE_NAME);
    r->path = buf_detach(&b);

    /* Created here with 0600, before SQLite opens it (its -wal and -shm
     * files get the same mode). */
    if (access(r->path, F_OK) < 0) {
        int fd = open(r->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) {
            snprintf(err, errlen, "cannot create roster '%s': %s", r->path, strerror(errno));
            goto fail;
        }
        close(fd);
    }
    if (sqlite3_open_v2(r->path, &r->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        snprintf(err, errlen, "cannot open roster '%s': %s", r->path,
                 r->db ? sqlite3_errmsg(r->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_handler(r->db, busy_nap, NULL);
    int fresh = identify(r, err, errlen);
    if (fresh < 0)
        goto fail;
    if (exec(r, "PRAGMA journal_mode = WAL", "setting WAL mode") < 0 ||
        exec(r, "PRAGMA synchronous = FULL", "setting synchronous") < 0 ||
        (fresh && exec(r, schema_v1, "creating the tables") < 0)) {
        snprintf(err, errlen, "%s", r->msg);
        goto fail;
    }
    for (int i = 0; i < S_COUNT; i++) {
        if (sqlite3_prepare_v3(r->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &r->st[i], NULL) !=
            SQLITE_OK) {
            snprintf(err, errlen, "roster '%s': %s", r->path, sqlite3_errmsg(r->db));
            goto fail;
        }
    }
    return r;
fail:
    roster_close(r);
    return NULL;
}

void roster_close(struct roster *r)
{
    if (!r)
        return;
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(r->st[i]);
    if (r->db && !sqlite3_get_autocommit(r->db))
        sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(r->db);
    free(r->path);
    free(r);
}
