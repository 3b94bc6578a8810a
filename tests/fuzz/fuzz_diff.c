/*
 * fuzz_diff.c — JSON Patch generation and the detection of changed embedded
 * objects (diff.c, SPEC §3), and JSON Patch application (the tests'
 * tests/unit/jpatch.c, with which the generated patches are checked).
 *
 * Input: A NUL B [NUL PATCH] — two JSON documents and an optional patch
 * (a NUL cannot occur in JSON text, so it is a safe separator); each is read
 * by jansson with JSON_DECODE_ANY | JSON_ALLOW_NUL. Without a NUL, B = A.
 *
 * Properties:
 *  - P = diff_patch(A, B) is an array of {"op","path"[,"value"]} with op
 *    add/remove/replace (value exactly for add and replace) and paths that
 *    are JSON Pointers ("" or starting with "/");
 *  - jpatch_apply(copy of A, P) succeeds and gives a document json_equal to B;
 *    diff_patch(A, A) is empty; diff_patch(NULL, B) applied to NULL gives B;
 *    diff_patch(A, NULL) is empty;
 *  - P survives its text form as fetch.c writes it (compact, 17 digits):
 *    jtext_validate and jtext_pretty accept the text, jansson reads it back
 *    as the same patch, and that patch does the same;
 *  - the inputs are borrowed: A, B and an applied patch are unchanged;
 *  - diff_nested(A, B, keys), for every model's key list and the union of
 *    them: an array of strings "/K" or "/K/<index>" for keys K of the list,
 *    each K's value differing between A and B (null = absent); empty when
 *    A equals B;
 *  - jpatch_apply(copy of A, PATCH) with an arbitrary patch never crashes or
 *    leaks and leaves a document jansson can print (at most 8 "copy"
 *    operations, else a patch could double the document 60 times: the
 *    daemon applies only its own patches, so that is not a finding).
 */
#include <jansson.h>
#include <string.h>

#include "buf.h"
#include "diff.h"
#include "fuzz.h"
#include "jpatch.h"
#include "jtext.h"
#include "models.h"

#define LOAD_FLAGS (JSON_DECODE_ANY | JSON_ALLOW_NUL)
#define DUMP_FLAGS (JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17))
#define MAX_COPIES 8

static const char *const *key_lists[MODEL_COUNT + 1];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* The union of every model's embedded-object keys. */
    static const char *all[64];
    size_t n = 0;
    for (int m = 0; m < MODEL_COUNT; m++) {
        key_lists[m] = models_table[m].nested;
        for (const char *const *k = models_table[m].nested; *k; k++) {
            size_t i = 0;
            while (i < n && strcmp(all[i], *k) != 0)
                i++;
            if (i == n && n + 1 < sizeof all / sizeof all[0])
                all[n++] = *k;
        }
    }
    all[n] = NULL;
    key_lists[MODEL_COUNT] = all;
    /* Stable object iteration order between runs (jansson seeds its hash). */
    json_object_seed(1);
    return 0;
}

static char *dump(const json_t *j)
{
    char *s = json_dumps(j, DUMP_FLAGS);
    FUZZ_CHECK(s, "json_dumps failed");
    return s;
}

static void check_patch_shape(const json_t *p)
{
    FUZZ_CHECK(json_is_array(p), "patch is not an array");
    size_t i;
    json_t *op;
    json_array_foreach(p, i, op) {
        const char *name = json_string_value(json_object_get(op, "op"));
        json_t *path = json_object_get(op, "path");
        FUZZ_CHECK(name && (strcmp(name, "add") == 0 || strcmp(name, "remove") == 0 ||
                            strcmp(name, "replace") == 0),
                   "op %zu is '%s'", i, name ? name : "(none)");
        FUZZ_CHECK(json_is_string(path), "op %zu without a string path", i);
        FUZZ_CHECK(json_string_length(path) == 0 || json_string_value(path)[0] == '/',
                   "op %zu: path '%s' is not a pointer", i, json_string_value(path));
        FUZZ_CHECK((json_object_get(op, "value") != NULL) == (strcmp(name, "remove") != 0),
                   "op %zu (%s): value present %d", i, name,
                   json_object_get(op, "value") != NULL);
        FUZZ_CHECK(json_object_size(op) == (strcmp(name, "remove") ? 3u : 2u),
                   "op %zu has extra members", i);
    }
}

/* Apply p to a copy of a and compare with b. */
static void check_roundtrip(const json_t *a, const json_t *b, const json_t *p, const char *what)
{
    json_t *doc = a ? json_deep_copy(a) : NULL;
    FUZZ_CHECK(!a || doc, "deep copy failed");
    int rc = jpatch_apply(&doc, p);
    FUZZ_CHECK(rc == 0, "%s: the generated patch does not apply", what);
    FUZZ_CHECK(json_equal(doc, b), "%s: applying the patch does not give B", what);
    json_decref(doc);
}

/* The value of top-level key k, null counting as absent. */
static json_t *member(const json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_null(v) ? NULL : v;
}

static void check_nested(const json_t *a, const json_t *b)
{
    for (int l = 0; l <= MODEL_COUNT; l++) {
        const char *const *keys = key_lists[l];
        json_t *n = diff_nested(a, b, keys);
        FUZZ_CHECK(json_is_array(n), "diff_nested returned no array");
        FUZZ_CHECK(!json_equal(a, b) || json_array_size(n) == 0,
                   "changes reported between equal documents");
        size_t i;
        json_t *s;
        json_array_foreach(n, i, s) {
            FUZZ_CHECK(json_is_string(s), "entry %zu is not a string", i);
            const char *p = json_string_value(s);
            FUZZ_CHECK(p[0] == '/', "entry '%s' is not a pointer", p);
            const char *k = NULL;
            for (const char *const *kk = keys; *kk; kk++) {
                size_t kl = strlen(*kk);
                if (strncmp(p + 1, *kk, kl) == 0 && (p[1 + kl] == '\0' || p[1 + kl] == '/'))
                    k = *kk;
            }
            FUZZ_CHECK(k, "entry '%s' names no key of the list", p);
            const char *rest = p + 1 + strlen(k);
            if (*rest) {
                FUZZ_CHECK(rest[1] && strspn(rest + 1, "0123456789") == strlen(rest + 1),
                           "entry '%s': not /K/<index>", p);
                FUZZ_CHECK(json_is_array(member(b, k)), "entry '%s' but B's value is no array",
                           p);
            }
            json_t *va = member(a, k), *vb = member(b, k);
            FUZZ_CHECK(!json_equal(va, vb) && (va || vb), "entry '%s' for an unchanged key", p);
        }
        json_decref(n);
    }
}

/* Number of operations named `name` in an arbitrary patch. */
static size_t count_ops(const json_t *patch, const char *name)
{
    size_t n = 0, i;
    json_t *op;
    json_array_foreach(patch, i, op) {
        const char *s = json_string_value(json_object_get(op, "op"));
        n += s && strcmp(s, name) == 0;
    }
    return n;
}

static void check_arbitrary(const json_t *a, const json_t *patch)
{
    if (json_is_array(patch) && count_ops(patch, "copy") > MAX_COPIES)
        return;
    char *before = dump(patch);
    json_t *doc = a ? json_deep_copy(a) : NULL;
    int rc = jpatch_apply(&doc, patch);
    FUZZ_CHECK(rc == 0 || rc == -1, "rc %d", rc);
    if (doc) {
        char *s = json_dumps(doc, DUMP_FLAGS);
        FUZZ_CHECK(s, "the patched document cannot be printed");
        free(s);
    }
    FUZZ_CHECK(rc != 0 || doc || !a, "a successful patch left no document");
    char *after = dump(patch);
    FUZZ_CHECK(strcmp(before, after) == 0, "jpatch_apply changed the patch");
    free(before);
    free(after);
    json_decref(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *rest, *prest;
    size_t restlen, prestlen;
    size_t alen = fuzz_split(data, size, 0, &rest, &restlen);
    size_t blen = rest ? fuzz_split(rest, restlen, 0, &prest, &prestlen) : 0;

    json_t *a = json_loadb((const char *)data, alen, LOAD_FLAGS, NULL);
    json_t *b = rest ? json_loadb((const char *)rest, blen, LOAD_FLAGS, NULL) : json_incref(a);
    json_t *patch = rest && prest ? json_loadb((const char *)prest, prestlen, LOAD_FLAGS, NULL)
                                  : NULL;
    if (patch)
        check_arbitrary(a, patch);
    if (!a || !b)
        goto out;

    char *adump = dump(a), *bdump = dump(b);
    json_t *p = diff_patch(a, b);
    FUZZ_CHECK(p, "diff_patch returned NULL");
    check_patch_shape(p);
    check_roundtrip(a, b, p, "diff_patch(A, B)");

    /* The text form, as the change log stores it. */
    char *ptext = dump(p);
    struct buf pretty = BUF_INIT;
    FUZZ_CHECK(jtext_validate(ptext, strlen(ptext)) == 0, "patch text refused by jtext: %s",
               ptext);
    FUZZ_CHECK(jtext_pretty(ptext, strlen(ptext), &pretty) == 0, "patch text not rendered");
    json_t *p2 = json_loadb(pretty.data, pretty.len, LOAD_FLAGS, NULL);
    FUZZ_CHECK(p2 && json_equal(p, p2), "patch text reads back as another patch");
    check_roundtrip(a, b, p2, "patch read back from its text");
    json_decref(p2);
    buf_free(&pretty);
    free(ptext);

    json_t *same = diff_patch(a, a);
    FUZZ_CHECK(same && json_array_size(same) == 0, "diff_patch(A, A) is not empty");
    json_t *whole = diff_patch(NULL, b);
    FUZZ_CHECK(whole && json_array_size(whole) == 1, "diff_patch(NULL, B) is not one add");
    check_patch_shape(whole);
    check_roundtrip(NULL, b, whole, "diff_patch(NULL, B)");
    json_t *none = diff_patch(a, NULL);
    FUZZ_CHECK(none && json_array_size(none) == 0, "diff_patch(A, NULL) is not empty");

    check_nested(a, b);
    check_nested(b, a);

    char *a2 = dump(a), *b2 = dump(b);
    FUZZ_CHECK(strcmp(adump, a2) == 0 && strcmp(bdump, b2) == 0, "an input was modified");
    free(a2);
    free(b2);
    free(adump);
    free(bdump);
    json_decref(p);
    json_decref(same);
    json_decref(whole);
    json_decref(none);
out:
    json_decref(a);
    json_decref(b);
    json_decref(patch);
    return 0;
}
