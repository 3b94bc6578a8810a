/*
 * diff.c — RFC 6902 JSON Patch generation, and detection of changed embedded
 * objects (SPEC §3). See diff.h for the contract. (Applying a patch is only
 * the tests' business: tests/unit/jpatch.c.)
 *
 * Keys are handled as (pointer, length) pairs, so a key is never cut short
 * at a NUL byte. (jansson's decoder rejects such keys and
 * its json_deep_copy does not keep them, so records never carry them.)
 */
#include "diff.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/*
 * jansson's iteration API takes a non-const object although it does not
 * modify it; these two are the only places where constness is cast away.
 */
static void *obj_iter(const json_t *obj)
{
    return json_object_iter((json_t *)obj);
}

static void *obj_next(const json_t *obj, void *it)
{
    return json_object_iter_next((json_t *)obj, it);
}

/* ------------------------------------------------------------------------ */
/* Growable JSON Pointer buffer, pushed and truncated while recursing.      */
/* ------------------------------------------------------------------------ */

struct pbuf {
    char *buf;
    size_t len;
    size_t cap;
};

static int pbuf_init(struct pbuf *p)
{
    p->cap = 64;
    p->len = 0;
    p->buf = malloc(p->cap);
    return p->buf ? 0 : -1;
}

static int pbuf_reserve(struct pbuf *p, size_t extra)
{
    if (extra > SIZE_MAX / 2 - p->len)
        return -1;
    if (p->len + extra <= p->cap)
        return 0;
    size_t cap = p->cap;
    while (cap < p->len + extra)
        cap *= 2;
    char *nb = realloc(p->buf, cap);
    if (!nb)
        return -1;
    p->buf = nb;
    p->cap = cap;
    return 0;
}

/* Append "/" and the key escaped per RFC 6901 ("~" -> "~0", "/" -> "~1"). */
static int pbuf_push_key(struct pbuf *p, const char *key, size_t klen)
{
    if (klen > SIZE_MAX / 4 || pbuf_reserve(p, 1 + 2 * klen) != 0)
        return -1;
    p->buf[p->len++] = '/';
    for (size_t i = 0; i < klen; i++) {
        if (key[i] == '~' || key[i] == '/') {
            p->buf[p->len++] = '~';
            p->buf[p->len++] = key[i] == '~' ? '0' : '1';
        } else {
            p->buf[p->len++] = key[i];
        }
    }
    return 0;
}

static int pbuf_push_index(struct pbuf *p, size_t idx)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "/%zu", idx);
    if (n < 0 || (size_t)n >= sizeof tmp || pbuf_reserve(p, (size_t)n) != 0)
        return -1;
    memcpy(p->buf + p->len, tmp, (size_t)n);
    p->len += (size_t)n;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Patch generation                                                         */
/* ------------------------------------------------------------------------ */

/* Append {"op": op, "path": path[, "value": deep copy of value]} to patch. */
static int emit(json_t *patch, const char *op, const struct pbuf *path,
                const json_t *value)
{
    json_t *o = json_object();
    if (!o)
        return -1;
    int rc = json_object_set_new(o, "op", json_string(op));
    if (rc == 0)
        rc = json_object_set_new(o, "path", json_stringn(path->buf, path->len));
    if (rc == 0 && value)
        rc = json_object_set_new(o, "value", json_deep_copy(value));
    if (rc != 0) {
        json_decref(o);
        return -1;
    }
    return json_array_append_new(patch, o);
}

static int diff_value(json_t *patch, struct pbuf *path, const json_t *old,
                      const json_t *new);

/* Removed keys (in old's order), changed keys, then added keys (new's order). */
static int diff_object(json_t *patch, struct pbuf *path, const json_t *old,
                       const json_t *new)
{
    size_t base = path->len;
    for (void *it = obj_iter(old); it; it = obj_next(old, it)) {
        const char *key = json_object_iter_key(it);
        size_t klen = json_object_iter_key_len(it);
        const json_t *nv = json_object_getn(new, key, klen);
        int rc = pbuf_push_key(path, key, klen);
        if (rc == 0)
            rc = nv ? diff_value(patch, path, json_object_iter_value(it), nv)
                    : emit(patch, "remove", path, NULL);
        path->len = base;
        if (rc != 0)
            return -1;
    }
    for (void *it = obj_iter(new); it; it = obj_next(new, it)) {
        const char *key = json_object_iter_key(it);
        size_t klen = json_object_iter_key_len(it);
        if (json_object_getn(old, key, klen))
            continue;
        int rc = pbuf_push_key(path, key, klen);
        if (rc == 0)
            rc = emit(patch, "add", path, json_object_iter_value(it));
        path->len = base;
        if (rc != 0)
            return -1;
    }
    return 0;
}

/*
 * Arrays: skip the equal common prefix and the equal common suffix, then
 * diff the middle element-wise over its common length (recursing, so an
 * edited embedded object gives fine-grained paths), and finally insert the
 * extra new elements at their index (before the kept suffix) or remove the
 * extra old ones from the highest index down. A single insertion or removal
 * anywhere thus yields a single operation. Indices stay valid while the
 * patch is applied in order: element-wise edits never change the length,
 * and inserts/removes happen left to right / right to left.
 */
static int diff_array(json_t *patch, struct pbuf *path, const json_t *old,
                      const json_t *new)
{
    size_t no = json_array_size(old), nn = json_array_size(new);
    size_t pre = 0, suf = 0;
    while (pre < no && pre < nn &&
           json_equal(json_array_get(old, pre), json_array_get(new, pre)))
        pre++;
    while (suf < no - pre && suf < nn - pre &&
           json_equal(json_array_get(old, no - 1 - suf),
                      json_array_get(new, nn - 1 - suf)))
        suf++;
    size_t mo = no - pre - suf, mn = nn - pre - suf;
    size_t common = mo < mn ? mo : mn;
    size_t base = path->len;
    int rc = 0;

    for (size_t i = 0; rc == 0 && i < common; i++) {
        rc = pbuf_push_index(path, pre + i);
        if (rc == 0)
            rc = diff_value(patch, path, json_array_get(old, pre + i),
                            json_array_get(new, pre + i));
        path->len = base;
    }
    for (size_t i = common; rc == 0 && i < mn; i++) {
        rc = pbuf_push_index(path, pre + i);
        if (rc == 0)
            rc = emit(patch, "add", path, json_array_get(new, pre + i));
        path->len = base;
    }
    for (size_t i = mo; rc == 0 && i > common; i--) {
        rc = pbuf_push_index(path, pre + i - 1);
        if (rc == 0)
            rc = emit(patch, "remove", path, NULL);
        path->len = base;
    }
    return rc;
}

/*
 * Same container type: recurse. Anything else (including integer vs real,
 * which jansson's json_equal treats as different): one "replace".
 */
static int diff_value(json_t *patch, struct pbuf *path, const json_t *old,
                      const json_t *new)
{
    if (json_is_object(old) && json_is_object(new))
        return diff_object(patch, path, old, new);
    if (json_is_array(old) && json_is_array(new))
        return diff_array(patch, path, old, new);
    if (json_equal(old, new))
        return 0;
    return emit(patch, "replace", path, new);
}

json_t *diff_patch(const json_t *old, const json_t *new)
{
    json_t *patch = json_array();
    if (!patch || !new)
        return patch;
    struct pbuf path;
    if (pbuf_init(&path) != 0) {
        json_decref(patch);
        return NULL;
    }
    int rc = old ? diff_value(patch, &path, old, new)
                 : emit(patch, "add", &path, new);
    free(path.buf);
    if (rc != 0) {
        json_decref(patch);
        return NULL;
    }
    return patch;
}

/* ------------------------------------------------------------------------ */
/* Changed embedded objects                                                 */
/* ------------------------------------------------------------------------ */

static const json_t *string_id(const json_t *elem)
{
    const json_t *id = json_object_get(elem, "id");
    return json_is_string(id) ? id : NULL;
}

/*
 * The index in `old` of the partner of new[i], or SIZE_MAX if none: the
 * first unused element with the same string "id"; for an element without
 * one, the element at the same position if that lacks a string "id" too.
 */
static size_t match_elem(const json_t *old, const bool *used,
                         const json_t *elem, size_t i)
{
    const json_t *id = string_id(elem);
    size_t no = json_array_size(old);
    if (!id)
        return i < no && !used[i] && !string_id(json_array_get(old, i))
                   ? i : SIZE_MAX;
    for (size_t j = 0; j < no; j++) {
        if (!used[j] && json_equal(id, string_id(json_array_get(old, j))))
            return j;
    }
    return SIZE_MAX;
}

static int append_path(json_t *out, const struct pbuf *path)
{
    return json_array_append_new(out, json_stringn(path->buf, path->len));
}

/*
 * Array of embedded objects under the key whose pointer is in `path` (old or
 * new may be NULL = no array). Appends "/K" once if any element was removed
 * (before the per-element entries) and "/K/<i>" per added/changed element.
 */
static int nested_array(json_t *out, struct pbuf *path, const json_t *old,
                        const json_t *new)
{
    size_t no = json_array_size(old), nn = json_array_size(new);
    size_t first = json_array_size(out), base = path->len;
    bool *used = calloc(no ? no : 1, sizeof *used);
    int rc = used ? 0 : -1;

    for (size_t i = 0; rc == 0 && i < nn; i++) {
        const json_t *ne = json_array_get(new, i);
        size_t j = match_elem(old, used, ne, i);
        if (j != SIZE_MAX)
            used[j] = true;
        if (j != SIZE_MAX && json_equal(json_array_get(old, j), ne))
            continue;
        rc = pbuf_push_index(path, i);
        if (rc == 0)
            rc = append_path(out, path);
        path->len = base;
    }
    bool removed = false;
    for (size_t j = 0; rc == 0 && j < no; j++)
        removed = removed || !used[j];
    if (rc == 0 && removed)
        rc = json_array_insert_new(out, first, json_stringn(path->buf, path->len));
    free(used);
    return rc;
}

/*
 * One top-level key. An absent key and a null value are both "no embedded
 * object". An array on either side (the other being an array or nothing)
 * follows the array rule; anything else is compared as a whole.
 */
static int nested_key(json_t *out, const json_t *old, const json_t *new,
                      const char *key)
{
    const json_t *o = json_object_get(old, key), *n = json_object_get(new, key);
    if (json_is_null(o))
        o = NULL;
    if (json_is_null(n))
        n = NULL;
    if (!o && !n)
        return 0;
    bool arrays = (!o || json_is_array(o)) && (!n || json_is_array(n));
    if (!arrays && o && n && json_equal(o, n))
        return 0;
    struct pbuf path;
    if (pbuf_init(&path) != 0)
        return -1;
    int rc = pbuf_push_key(&path, key, strlen(key));
    if (rc == 0)
        rc = arrays ? nested_array(out, &path, o, n) : append_path(out, &path);
    free(path.buf);
    return rc;
}

json_t *diff_nested(const json_t *old, const json_t *new,
                    const char *const *nested_keys)
{
    json_t *out = json_array();
    if (!out || !nested_keys)
        return out;
    for (size_t k = 0; nested_keys[k]; k++) {
        if (nested_key(out, old, new, nested_keys[k]) != 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}
