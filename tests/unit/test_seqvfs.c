/* test_seqvfs.c — the read-ahead VFS: what a scan reads through it equals
 * what SQLite holds, also after other connections wrote, checkpointed and
 * truncated the file between (and during) its read transactions. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "seqvfs.h"
#include "tap.h"

#define ROWS 2000
#define ROW_BYTES 3000

static char path[128];

static void must(sqlite3 *db, const char *sql)
{
    char *e = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &e) != SQLITE_OK) {
        fprintf(stderr, "%s: %s\n", sql, e ? e : "?");
        exit(1);
    }
}

/* Every row's body is ROW_BYTES of the byte (id + round) % 26 + 'a'. Round 0
 * inserts the rows; the others rewrite them in place (same size: the same
 * pages, so a block read before holds their old bytes). */
static void fill(sqlite3 *db, int round)
{
    must(db, "BEGIN");
    sqlite3_stmt *s;
    sqlite3_prepare_v2(db, round ? "UPDATE t SET body = ?2 WHERE id = ?1"
                                 : "INSERT INTO t (id, body) VALUES (?1, ?2)",
                       -1, &s, NULL);
    char body[ROW_BYTES];
    for (int i = 1; i <= ROWS; i++) {
        memset(body, 'a' + (i + round) % 26, sizeof body);
        sqlite3_bind_int(s, 1, i);
        sqlite3_bind_blob(s, 2, body, sizeof body, SQLITE_STATIC);
        sqlite3_step(s);
        sqlite3_reset(s);
    }
    sqlite3_finalize(s);
    must(db, "COMMIT");
}

/* Rows from id `from` on whose body is not what round wrote, read in one
 * scan of r (-1: the scan failed). */
static int wrong_from(sqlite3 *r, int round, int from)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(r, "SELECT id, body FROM t WHERE id >= ?1 ORDER BY id", -1, &s,
                           NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int(s, 1, from);
    int bad = 0, n = 0, rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int id = sqlite3_column_int(s, 0);
        const unsigned char *b = sqlite3_column_blob(s, 1);
        int len = sqlite3_column_bytes(s, 1);
        int good = len == ROW_BYTES;
        for (int k = 0; good && k < len; k += 97)
            good = b[k] == 'a' + (id + round) % 26;
        bad += !good;
        n++;
    }
    sqlite3_finalize(s);
    return rc == SQLITE_DONE && n == ROWS - from + 1 ? bad : -1;
}

static int wrong(sqlite3 *r, int round)
{
    return wrong_from(r, round, 1);
}

int main(void)
{
    TAP_PLAN(9);
    snprintf(path, sizeof path, "/tmp/kombofs-seqvfs-%d.db", (int)getpid());
    const char *name = seqvfs_register();
    ok(name && strcmp(name, "kombofs-seq") == 0 && seqvfs_register() == name,
       "registered once, by name");

    sqlite3 *w, *r;
    sqlite3_open(path, &w);
    must(w, "PRAGMA page_size = 16384; PRAGMA journal_mode = WAL;"
            /* t's pages start 2 MB into the file, far from page 1, which
             * every transaction reads first: reading t again does not begin
             * with a read that fills a block anew */
            " CREATE TABLE pad (b BLOB); INSERT INTO pad VALUES (zeroblob(2000000));"
            " CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)");
    fill(w, 0);
    must(w, "PRAGMA wal_checkpoint(TRUNCATE)");
    ok(sqlite3_open_v2(path, &r, SQLITE_OPEN_READONLY, name) == SQLITE_OK, "a reader opens");

    struct seqvfs_stats a, b;
    seqvfs_stats(&a);
    ok(wrong(r, 0) == 0, "a scan reads every row as written");
    seqvfs_stats(&b);
    diag("fills %llu, hits %llu, direct %llu", (unsigned long long)(b.fills - a.fills),
         (unsigned long long)(b.hits - a.hits), (unsigned long long)(b.direct - a.direct));
    ok(b.fills > a.fills && b.hits - a.hits > 10 * (b.fills - a.fills) &&
       b.hits - a.hits > b.direct - a.direct,
       "the scan was served from blocks");

    /* Between two read transactions the file changes under the pages the
     * last one read (the rows rewritten, checkpointed into the file): the
     * next transaction reads them again, not the old block. */
    int stale = 0;
    for (int round = 1; round <= 3; round++) {
        fill(w, round);
        must(w, "PRAGMA wal_checkpoint(TRUNCATE)");
        stale += wrong(r, round) != 0;
        /* the last rows twice: the second scan's pages are in the block
         * the first one filled, and the file changed in between */
        stale += wrong_from(r, round, ROWS - 40) != 0;
        fill(w, round + 10);
        must(w, "PRAGMA wal_checkpoint(TRUNCATE)");
        stale += wrong_from(r, round + 10, ROWS - 40) != 0;
    }
    ok(stale == 0, "after a checkpoint the next transaction sees the new rows");

    /* Within one transaction: its snapshot holds while the writer commits
     * and checkpoints what it can (the WAL frames of the reader's snapshot
     * are not backfilled over the pages it reads from the file). */
    fill(w, 4);                         /* in the WAL, not checkpointed */
    must(r, "BEGIN");
    int before = wrong(r, 4);
    fill(w, 5);
    sqlite3_wal_checkpoint_v2(w, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    int during = wrong(r, 4);
    must(r, "COMMIT");
    ok(before == 0 && during == 0, "a transaction keeps its snapshot through commits and a checkpoint");
    ok(wrong(r, 5) == 0, "the next one sees the last commit");

    /* The file shrinks (rows deleted, vacuumed) and grows again. */
    must(w, "DELETE FROM t WHERE id > 10; VACUUM; PRAGMA wal_checkpoint(TRUNCATE)");
    sqlite3_stmt *g;
    sqlite3_prepare_v2(w, "INSERT INTO t (id, body) VALUES (?1, zeroblob(?2))", -1, &g, NULL);
    for (int i = 11; i <= ROWS; i++) {
        sqlite3_bind_int(g, 1, i);
        sqlite3_bind_int(g, 2, ROW_BYTES);
        sqlite3_step(g);
        sqlite3_reset(g);
    }
    sqlite3_finalize(g);
    fill(w, 6);
    must(w, "PRAGMA wal_checkpoint(TRUNCATE)");
    ok(wrong(r, 6) == 0, "after the file was truncated and grew, rows read right");

    sqlite3_stmt *q;
    sqlite3_prepare_v2(r, "PRAGMA quick_check", -1, &q, NULL);
    int quick = sqlite3_step(q) == SQLITE_ROW &&
                strcmp((const char *)sqlite3_column_text(q, 0), "ok") == 0;
    sqlite3_finalize(q);
    ok(quick, "quick_check through the VFS");
    sqlite3_close(r);
    sqlite3_close(w);
    char f[160];
    const char *sfx[] = { "", "-wal", "-shm" };
    for (int i = 0; i < 3; i++) {
        snprintf(f, sizeof f, "%s%s", path, sfx[i]);
        unlink(f);
    }
    return tap_done();
}
