/*
 * roster.h — multi mode's persistent list of integrations (SPEC §9).
 *
 * A small SQLite database, <cache-dir>/.kombofs-roster.db (mode 0600, WAL;
 * the leading '.' cannot collide with a cache, since an escaped id never
 * starts with '.'). It remembers across restarts, for each integration the
 * daemon knows:
 *   - its slot, 1..ROSTER_SLOT_MAX (ino.h: the top 16 bits of its inode
 *     numbers). Given once and never changed while the id is known. A new id
 *     gets the highest slot ever given + 1, so a purged slot is not reused
 *     while higher ones remain; only once ROSTER_SLOT_MAX has been given is
 *     the lowest free slot reused; when all are taken, adding fails.
 *   - origin_id (the customer's own id for it, NULL until known);
 *   - source: how it came, ROSTER_FILE, ROSTER_CONTROL or ROSTER_DISCOVERED
 *     (the last way it was added);
 *   - flags: removed (syncing stopped, cache kept), deleted
 *     (integration-deleted seen), paused (integration-state-changed).
 * and the ids FILE listed when it was last read, so that reading FILE
 * applies only what changed in it (roster_apply_file).
 *
 * A file that is not a roster (another SQLite database, not a database, a
 * corrupt one) or has a newer schema is refused and left as it was.
 *
 * Return values: 0 (or a documented positive value) on success; on failure
 * a negative errno: -ENOENT / -EALREADY / -EINVAL / -ENOSPC as documented
 * per function, -EIO when SQLite fails. roster_errmsg() says why, in one
 * line, for every failure.
 *
 * Threads: one thread at a time uses a roster (the caller serialises).
 *
 * Ownership: roster_open returns a roster the caller ends with
 * roster_close. Lists filled through out-parameters (struct ilist) are the
 * caller's (ilist_free). The struct roster_entry passed to a roster_list
 * callback, and its strings, are valid only during the call.
 */
#ifndef KOMBOFS_ROSTER_H
#define KOMBOFS_ROSTER_H

#include <stddef.h>

#include "ilist.h"

#define ROSTER_FILE_NAME ".kombofs-roster.db"
#define ROSTER_SCHEMA_VERSION 1
#define ROSTER_SLOT_MAX 65535u

/* How an integration came (stored as the text in brackets). */
enum roster_source {
    ROSTER_FILE,            /* "file": a line of --integrations-file */
    ROSTER_CONTROL,         /* "control": add ID through .control */
    ROSTER_DISCOVERED,      /* "discovered": integration-created, --discover */
};

enum roster_flag {
    ROSTER_DELETED,         /* integration-deleted seen */
    ROSTER_PAUSED,          /* INACTIVE/INVALID: fetches paused */
};

struct roster_entry {
    const char *id;
    unsigned slot;
    const char *origin_id;      /* NULL if unknown */
    enum roster_source source;
    int removed, deleted, paused;
};

struct roster;

/* Open <dir>/.kombofs-roster.db, creating it (mode 0600) if missing; dir
 * must exist. Returns NULL with a one-line message in err if the file
 * cannot be created or opened, is not a roster, is corrupt, or has a schema
 * newer than ROSTER_SCHEMA_VERSION; such a file is never changed. */
struct roster *roster_open(const char *dir, char *err, size_t errlen);
void roster_close(struct roster *r);        /* NULL is fine */

const char *roster_path(const struct roster *r);
/* Why the last call that failed failed (valid until the next call). */
const char *roster_errmsg(const struct roster *r);

/* "file", "control", "discovered". */
const char *roster_source_name(enum roster_source s);

/* Apply FILE as just read (ids): only what changed since FILE was last
 * read (nothing was, the first time) is applied, in one transaction.
 *   - an id added to FILE is added with source "file": given a slot if
 *     unknown, made active again if it had been removed (also through
 *     .control), its source set to "file" if it was already active;
 *   - an id removed from FILE is marked removed (cache kept) if active;
 *   - an id FILE still lists, or still does not list, is left alone: an id
 *     removed or purged through .control stays so, an id added through
 *     .control or discovered stays.
 * Then FILE's ids become the "last read" set. *added gets the ids that
 * became active (in FILE's order), *removed those that stopped (in the
 * previous FILE's order); both may be NULL. Returns 0, -EINVAL (an id
 * ilist_valid_id refuses), -ENOSPC (no slot left) or -EIO; on failure
 * nothing is applied. */
int roster_apply_file(struct roster *r, const struct ilist *ids, struct ilist *added,
                      struct ilist *removed);

/* Add id (checked with ilist_valid_id), or make it active again if it was
 * removed (its slot kept; source updated, other flags kept). Returns 0
 * (added or re-activated), 1 if it is already present and active (a no-op;
 * source unchanged), -EINVAL for a malformed id, -ENOSPC when no slot is
 * left, -EIO. *slot (if not NULL) gets its slot on 0 and 1. */
int roster_add(struct roster *r, const char *id, enum roster_source source, unsigned *slot);

/* Stop syncing id: mark it removed (slot and cache kept). Returns 0,
 * -ENOENT if unknown, -EALREADY if already removed, -EIO. */
int roster_remove(struct roster *r, const char *id);

/* Forget id (active or removed): its slot is free, though not reused while
 * a higher one was ever given. The caller deletes its cache file. FILE's
 * "last read" set is not touched, so an id FILE still lists stays purged.
 * Returns 0, -ENOENT if unknown, -EIO. */
int roster_purge(struct roster *r, const char *id);

/* Set (or with NULL clear) the origin_id of id. 0, -ENOENT, -EIO. */
int roster_set_origin(struct roster *r, const char *id, const char *origin_id);

/* Set a flag to on (0 or 1). 0, -ENOENT, -EINVAL (unknown flag), -EIO. */
int roster_set_flag(struct roster *r, const char *id, enum roster_flag flag, int on);

/* Call fn for each known integration (removed ones too), in slot order.
 * The rows are read first, so fn may call other roster functions (their
 * changes are not seen by this walk). A non-zero return of fn stops the
 * walk and is returned; otherwise 0, or -EIO. */
int roster_list(struct roster *r, int (*fn)(const struct roster_entry *e, void *ctx),
                void *ctx);

#endif
