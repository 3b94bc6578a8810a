/*
 * ino.h — how kombofs spends the 64 bits of a FUSE node id and of st_ino.
 *
 * Every number is computed from the cache, never kept in a table in memory:
 * `forget` needs no bookkeeping, and a number means the same thing after a
 * remount (SPEC §2, and the NFS file handles of SPEC §11).
 *
 *   63          48 47   45 44                                          0
 *  +--------------+-------+---------------------------------------------+
 *  |     slot     | kind  |                  payload                    |
 *  +--------------+-------+---------------------------------------------+
 *
 * slot (16 bits): which mirrored tree. Single mode has one tree, in slot 0,
 *   rooted at FUSE's root (node 1). In multi mode (SPEC §9) slot 0 holds the
 *   daemon's own root and each integration has a slot of its own, 1..65535,
 *   remembered across restarts; its tree root is INO_FIXED(slot, INO_ROOT).
 * kind (3 bits) and payload (45 bits):
 *   INO_K_FIXED   a row of the namespace table (fs.c): directories, .control,
 *                 .status, exports/ ... payload = the row's number (below).
 *   INO_K_RECORD  a record file: payload = version (15 bits) << 30 | rowid
 *                 (30 bits: 2^30 rows per tree, AUTOINCREMENT so never
 *                 reused). Each version of a record is its own node; st_ino
 *                 is the node with the version bits cleared (store.h).
 *   INO_K_CHANGE  a change-log entry: payload = seq (2^45 entries).
 *   INO_K_SNAP    a .status snapshot (snaps.h): payload = its number.
 *   INO_K_EMAIL   the by-email/ link of the record with that rowid.
 *   INO_K_RID     the by-remote-id/<dir>/ link of the record with that rowid.
 *   INO_K_EXPORT  exports/<dir>.jsonl (which = model) or exports/employees.csv
 *                 (which = INO_EXPORT_CSV): payload = which (5 bits) << 40 |
 *                 the data version of the model (40 bits). Like records,
 *                 every version of an export is its own node.
 *   INO_K_ORIGIN  multi mode, slot 0: the by-origin/ link of the
 *                 integration whose slot is the payload.
 *
 * The store (store.c) deals in slot-0 numbers; the file system adds the
 * slot (ino_with_slot). The SQL uses INO_REC_VER_BITS and INO_REC_ROWID_BITS
 * through the INO_STR() strings below, so the layout is written once.
 *
 * Pure arithmetic, no state: nothing to own or free.
 */
#ifndef KOMBOFS_INO_H
#define KOMBOFS_INO_H

#include <stdint.h>

#define INO_SLOT_SHIFT 48
#define INO_SLOT_MAX 65535u
#define INO_KIND_SHIFT 45
#define INO_PAYLOAD_MASK ((1ull << INO_KIND_SHIFT) - 1)

enum ino_kind {
    INO_K_FIXED = 0,
    INO_K_RECORD = 1,
    INO_K_CHANGE = 2,
    INO_K_SNAP = 3,
    INO_K_EMAIL = 4,
    INO_K_RID = 5,
    INO_K_EXPORT = 6,
    INO_K_ORIGIN = 7,
};

/* Records: 30 bits of rowid, 15 of version. */
#define INO_REC_ROWID_BITS 30
#define INO_REC_VER_BITS 15
#define INO_REC_ROWID_MAX ((1ull << INO_REC_ROWID_BITS) - 1)
#define INO_REC_VER_MASK ((1ull << INO_REC_VER_BITS) - 1)

/* Exports: 5 bits of which, 40 of data version. */
#define INO_EXPORT_VER_BITS 40
#define INO_EXPORT_VER_MASK ((1ull << INO_EXPORT_VER_BITS) - 1)
#define INO_EXPORT_CSV 16           /* which: exports/employees.csv; 0..8 = models */

/* For SQL text: INO_STR(INO_REC_VER_BITS) is "15". */
#define INO_STR_(x) #x
#define INO_STR(x) INO_STR_(x)
#define INO_REC_VER_MASK_SQL "32767"    /* (1 << INO_REC_VER_BITS) - 1, checked below */
_Static_assert(INO_REC_VER_MASK == 32767, "INO_REC_VER_MASK_SQL is out of date");
_Static_assert(INO_REC_ROWID_BITS + INO_REC_VER_BITS == INO_KIND_SHIFT, "record payload");
_Static_assert(INO_EXPORT_VER_BITS + 5 == INO_KIND_SHIFT, "export payload");

/*
 * The rows of a tree's namespace table (fs.c) that have fixed numbers; the
 * first 13 are the numbers of kombofs 0.1, kept. A model's rows are
 * base + model index (models.h order).
 */
enum {
    INO_ROOT = 1,                   /* the tree's root (FUSE's root in single mode) */
    INO_MODEL_DIR = 2,              /* 2..10: employees/ ... locations/ */
    INO_CHANGES = 11,
    INO_CONTROL = 12,
    INO_STATUS = 13,                /* a link to its latest snapshot (snaps.h) */
    INO_BY_EMAIL = 14,
    INO_BY_RID = 15,
    INO_RID_DIR = 16,               /* 16..24: by-remote-id/<dir>/ */
    INO_EXPORTS = 25,
    /* multi mode, slot 0 only (its .control and .status are rows 12 and 13) */
    INO_BY_ORIGIN = 26,
    INO_FIXED_COUNT = 27,
};

static inline uint64_t ino_make(unsigned slot, enum ino_kind kind, uint64_t payload)
{
    return ((uint64_t)slot << INO_SLOT_SHIFT) | ((uint64_t)kind << INO_KIND_SHIFT) |
           (payload & INO_PAYLOAD_MASK);
}

static inline unsigned ino_slot(uint64_t node)
{
    return (unsigned)(node >> INO_SLOT_SHIFT);
}

static inline enum ino_kind ino_kind(uint64_t node)
{
    return (enum ino_kind)((node >> INO_KIND_SHIFT) & 7);
}

static inline uint64_t ino_payload(uint64_t node)
{
    return node & INO_PAYLOAD_MASK;
}

/* The same number in another slot. */
static inline uint64_t ino_with_slot(uint64_t node, unsigned slot)
{
    return (node & ((1ull << INO_SLOT_SHIFT) - 1)) | ((uint64_t)slot << INO_SLOT_SHIFT);
}

static inline uint64_t ino_fixed(unsigned slot, unsigned row)
{
    return ino_make(slot, INO_K_FIXED, row);
}

/* Records (slot 0). */
static inline uint64_t ino_record(uint64_t rowid, uint64_t ver)
{
    return ino_make(0, INO_K_RECORD,
                    ((ver & INO_REC_VER_MASK) << INO_REC_ROWID_BITS) | (rowid & INO_REC_ROWID_MAX));
}

static inline uint64_t ino_rowid(uint64_t node)
{
    return node & INO_REC_ROWID_MAX;
}

static inline uint64_t ino_ver(uint64_t node)
{
    return (ino_payload(node) >> INO_REC_ROWID_BITS) & INO_REC_VER_MASK;
}

/* st_ino of a record node: the version bits cleared (the slot kept). */
static inline uint64_t ino_record_st(uint64_t node)
{
    return node & ~(INO_REC_VER_MASK << INO_REC_ROWID_BITS);
}

static inline uint64_t ino_change(int64_t seq)
{
    return ino_make(0, INO_K_CHANGE, (uint64_t)seq);
}

static inline uint64_t ino_export(unsigned which, uint64_t ver)
{
    return ino_make(0, INO_K_EXPORT, ((uint64_t)which << INO_EXPORT_VER_BITS) |
                                         (ver & INO_EXPORT_VER_MASK));
}

static inline unsigned ino_export_which(uint64_t node)
{
    return (unsigned)(ino_payload(node) >> INO_EXPORT_VER_BITS);
}

static inline uint64_t ino_export_ver(uint64_t node)
{
    return node & INO_EXPORT_VER_MASK;
}

#endif
