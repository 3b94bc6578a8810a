/*
 * jpatch.h — RFC 6902 JSON Patch application with RFC 6901 JSON Pointers,
 * for the tests only: the daemon never applies a patch, the tests apply
 * the ones src/diff.c generates to check them (tests/unit/test_diff.c,
 * tests/fuzz/fuzz_diff.c).
 *
 * Ownership: the patch is borrowed and never modified; its values are
 * deep-copied into the document. The document is modified in place and may
 * be replaced (then the old reference is json_decref'd and *doc is a new
 * one the caller owns). No I/O.
 */
#ifndef KOMBOFS_TESTS_JPATCH_H
#define KOMBOFS_TESTS_JPATCH_H

#include <jansson.h>

/*
 * Apply `patch` to *doc in place (the document may be replaced, e.g. for an
 * "add" at path "": *doc is then decref'd and set to a new reference).
 * *doc may be NULL before an "add" at "". Supports add, remove, replace,
 * move, copy and test. Returns 0 on success, -1 if the patch is malformed
 * or does not apply (then *doc is left in an unspecified but valid state).
 */
int jpatch_apply(json_t **doc, const json_t *patch);

#endif
