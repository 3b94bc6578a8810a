/*
 * diff.h — JSON Patch (RFC 6902) between two versions of a record, and the
 * detection of which embedded objects changed (SPEC §3).
 *
 * Ownership: every json_t * argument is borrowed (never stolen, never
 * modified unless the function says so). Every json_t * returned is a NEW
 * reference that the caller must json_decref(). No function does I/O.
 */
#ifndef KOMBOFS_DIFF_H
#define KOMBOFS_DIFF_H

#include <jansson.h>

/*
 * The RFC 6902 patch that turns `old` into `new`, as a JSON array of
 * operations ("add", "remove", "replace" only). Paths are JSON Pointers
 * (RFC 6901, "~" -> "~0", "/" -> "~1"). `old` may be NULL (then the patch is
 * one "add" of the whole `new` at path ""); `new` may be NULL (then the
 * patch is empty). Equal documents give an empty array.
 * Returns NULL only on allocation failure.
 */
json_t *diff_patch(const json_t *old, const json_t *new);

/*
 * JSON Pointers of the embedded objects whose content changed between `old`
 * and `new` (both records of the same model, both non-NULL). `nested_keys`
 * is a NULL-terminated list of the top-level keys that hold embedded objects
 * or arrays of embedded objects (e.g. "employments", "manager", "groups").
 *
 * Rules:
 *  - object (or null) under key K: "/K" if it changed (appeared, vanished,
 *    or differs). If it carries its own "changed_at", a moved changed_at
 *    counts as changed, and so does any other content difference.
 *  - array of objects under key K: elements are matched by their "id"
 *    (by position where an element has no string "id"). An element that was
 *    added or whose content changed: "/K/<index in new>". An element that
 *    was removed: "/K" (once, even if several were removed). Order-only
 *    changes do not count.
 * The result is a JSON array of strings, in the order of `nested_keys` and
 * then of array index; empty if nothing embedded changed.
 */
json_t *diff_nested(const json_t *old, const json_t *new,
                    const char *const *nested_keys);

#endif
