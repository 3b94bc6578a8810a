/*
 * jpatch.c — RFC 6902 JSON Patch application, for the tests only (the
 * daemon generates patches, src/diff.c, and never applies one). See
 * jpatch.h for the contract.
 *
 * Keys and pointer tokens are handled as (pointer, length) pairs, so a key
 * is never cut short at a NUL byte.
 */
#include "jpatch.h"

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
/* JSON Pointer parsing and resolution (RFC 6901)                           */
/* ------------------------------------------------------------------------ */

struct tok {
    const char *s;
    size_t len;
};

/* A parsed pointer: n unescaped reference tokens stored back to back in buf. */
struct jptr {
    char *buf;
    struct tok *tok;
    size_t n;
};

static void jptr_free(struct jptr *p)
{
    free(p->buf);
    free(p->tok);
    p->buf = NULL;
    p->tok = NULL;
    p->n = 0;
}

/* "" is the whole document; otherwise every token is introduced by "/". */
static int jptr_parse(const char *s, size_t len, struct jptr *p)
{
    p->buf = NULL;
    p->tok = NULL;
    p->n = 0;
    if (len == 0)
        return 0;
    if (s[0] != '/')
        return -1;
    size_t ntok = 0;
    for (size_t i = 0; i < len; i++)
        ntok += s[i] == '/';
    p->buf = malloc(len);
    p->tok = calloc(ntok, sizeof *p->tok);
    if (!p->buf || !p->tok) {
        jptr_free(p);
        return -1;
    }
    size_t w = 0;
    struct tok *cur = NULL;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '/') {
            cur = &p->tok[p->n++];
            cur->s = p->buf + w;
            cur->len = 0;
            continue;
        }
        if (c == '~') {
            /* Only "~0" and "~1" are valid escapes. */
            if (i + 1 >= len || (s[i + 1] != '0' && s[i + 1] != '1')) {
                jptr_free(p);
                return -1;
            }
            c = s[++i] == '0' ? '~' : '/';
        }
        p->buf[w++] = c;
        cur->len++;
    }
    return 0;
}

/* Parse the pointer held in the string member `name` of a patch operation. */
static int jptr_member(const json_t *op, const char *name, struct jptr *p)
{
    const json_t *v = json_object_get(op, name);
    if (!json_is_string(v))
        return -1;
    return jptr_parse(json_string_value(v), json_string_length(v), p);
}

/* Array index per RFC 6901: "0", or digits without a leading zero. */
static int parse_index(const struct tok *t, size_t *out)
{
    if (t->len == 0 || (t->len > 1 && t->s[0] == '0'))
        return -1;
    size_t v = 0;
    for (size_t i = 0; i < t->len; i++) {
        if (t->s[i] < '0' || t->s[i] > '9')
            return -1;
        size_t d = (size_t)(t->s[i] - '0');
        if (v > (SIZE_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static bool is_append_tok(const struct tok *t)
{
    return t->len == 1 && t->s[0] == '-';
}

/* The existing child of container c named by t, or NULL. */
static json_t *child(json_t *c, const struct tok *t)
{
    size_t idx;
    if (json_is_object(c))
        return json_object_getn(c, t->s, t->len);
    if (json_is_array(c) && parse_index(t, &idx) == 0)
        return json_array_get(c, idx);
    return NULL;
}

/* Follow the first `depth` tokens of p from doc; NULL if any is missing. */
static json_t *walk(json_t *doc, const struct jptr *p, size_t depth)
{
    for (size_t i = 0; doc && i < depth; i++)
        doc = child(doc, &p->tok[i]);
    return doc;
}

static json_t *jptr_get(json_t *doc, const struct jptr *p)
{
    return walk(doc, p, p->n);
}

/* True when a is a proper prefix of b (token-wise). */
static bool jptr_proper_prefix(const struct jptr *a, const struct jptr *b)
{
    if (a->n >= b->n)
        return false;
    for (size_t i = 0; i < a->n; i++) {
        if (a->tok[i].len != b->tok[i].len ||
            memcmp(a->tok[i].s, b->tok[i].s, a->tok[i].len) != 0)
            return false;
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* Patch operations                                                         */
/* ------------------------------------------------------------------------ */

/* RFC 6902 "test" equality: numbers compare by value (1 == 1.0). */
static bool numbers_equal(const json_t *a, const json_t *b)
{
    if (json_is_integer(a) && json_is_integer(b))
        return json_integer_value(a) == json_integer_value(b);
    if (json_is_real(a) && json_is_real(b))
        return json_real_value(a) == json_real_value(b);
    if (json_is_real(a)) {
        const json_t *t = a;
        a = b;
        b = t;
    }
    _Static_assert(sizeof(json_int_t) == 8, "json_int_t is 64-bit");
    json_int_t i = json_integer_value(a);
    double r = json_real_value(b);
    /* Convert only when r is within json_int_t's range and integral. */
    if (!(r >= -0x1p63 && r < 0x1p63))
        return false;
    json_int_t ri = (json_int_t)r;
    return (double)ri == r && ri == i;
}

static bool values_equal(const json_t *a, const json_t *b)
{
    if (json_is_number(a) && json_is_number(b))
        return numbers_equal(a, b);
    if (json_typeof(a) != json_typeof(b))
        return false;
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b))
            return false;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!values_equal(json_array_get(a, i), json_array_get(b, i)))
                return false;
        return true;
    }
    if (json_is_object(a)) {
        if (json_object_size(a) != json_object_size(b))
            return false;
        for (void *it = obj_iter(a); it; it = obj_next(a, it)) {
            const json_t *bv = json_object_getn(b, json_object_iter_key(it),
                                                json_object_iter_key_len(it));
            if (!bv || !values_equal(json_object_iter_value(it), bv))
                return false;
        }
        return true;
    }
    return json_equal(a, b);
}

/* Add `value` (stolen, even on failure) at p. */
static int op_add(json_t **doc, const struct jptr *p, json_t *value)
{
    if (!value)
        return -1;
    if (p->n == 0) {
        json_decref(*doc);
        *doc = value;
        return 0;
    }
    json_t *parent = walk(*doc, p, p->n - 1);
    const struct tok *last = &p->tok[p->n - 1];
    size_t idx;
    if (json_is_object(parent))
        return json_object_setn_new(parent, last->s, last->len, value);
    if (json_is_array(parent) && is_append_tok(last))
        return json_array_append_new(parent, value);
    if (json_is_array(parent) && parse_index(last, &idx) == 0 &&
        idx <= json_array_size(parent))
        return json_array_insert_new(parent, idx, value);
    json_decref(value);
    return -1;
}

/* Removing the whole document ("") is refused: there is nothing to leave. */
static int op_remove(json_t *doc, const struct jptr *p)
{
    if (p->n == 0)
        return -1;
    json_t *parent = walk(doc, p, p->n - 1);
    const struct tok *last = &p->tok[p->n - 1];
    size_t idx;
    if (json_is_object(parent))
        return json_object_deln(parent, last->s, last->len);
    if (json_is_array(parent) && parse_index(last, &idx) == 0 &&
        idx < json_array_size(parent))
        return json_array_remove(parent, idx);
    return -1;
}

/* Replace the existing value at p by `value` (stolen, even on failure). */
static int op_replace(json_t **doc, const struct jptr *p, json_t *value)
{
    if (!value || !jptr_get(*doc, p)) {
        json_decref(value);
        return -1;
    }
    if (p->n == 0) {
        json_decref(*doc);
        *doc = value;
        return 0;
    }
    json_t *parent = walk(*doc, p, p->n - 1);
    const struct tok *last = &p->tok[p->n - 1];
    size_t idx;
    if (json_is_object(parent))
        return json_object_setn_new(parent, last->s, last->len, value);
    if (parse_index(last, &idx) == 0) /* parent is an array: target exists */
        return json_array_set_new(parent, idx, value);
    json_decref(value);
    return -1;
}

/* move: the value is detached from `from` and re-attached at `to`. */
static int op_move(json_t **doc, const struct jptr *from, const struct jptr *to)
{
    if (jptr_proper_prefix(from, to))
        return -1; /* cannot move a value into one of its own children */
    json_t *v = jptr_get(*doc, from);
    if (!v)
        return -1;
    if (from->n == 0)
        return 0; /* from == to == "": nothing to do */
    json_incref(v);
    if (op_remove(*doc, from) != 0) {
        json_decref(v);
        return -1;
    }
    return op_add(doc, to, v);
}

static int op_copy(json_t **doc, const struct jptr *from, const struct jptr *to)
{
    json_t *v = jptr_get(*doc, from);
    return v ? op_add(doc, to, json_deep_copy(v)) : -1;
}

static int op_test(json_t *doc, const struct jptr *p, const json_t *value)
{
    json_t *v = jptr_get(doc, p);
    return v && value && values_equal(v, value) ? 0 : -1;
}

/* Operations taking a "from" pointer (move, copy). */
static int apply_from_op(json_t **doc, const json_t *op, const char *name,
                         const struct jptr *path)
{
    struct jptr from;
    if (jptr_member(op, "from", &from) != 0)
        return -1;
    int rc = strcmp(name, "move") == 0 ? op_move(doc, &from, path)
                                       : op_copy(doc, &from, path);
    jptr_free(&from);
    return rc;
}

static int apply_op(json_t **doc, const json_t *op)
{
    const char *name = json_string_value(json_object_get(op, "op"));
    const json_t *value = json_object_get(op, "value");
    struct jptr path;
    int rc = -1;
    if (!name || jptr_member(op, "path", &path) != 0)
        return -1;
    if (strcmp(name, "add") == 0)
        rc = value ? op_add(doc, &path, json_deep_copy(value)) : -1;
    else if (strcmp(name, "remove") == 0)
        rc = op_remove(*doc, &path);
    else if (strcmp(name, "replace") == 0)
        rc = value ? op_replace(doc, &path, json_deep_copy(value)) : -1;
    else if (strcmp(name, "move") == 0 || strcmp(name, "copy") == 0)
        rc = apply_from_op(doc, op, name, &path);
    else if (strcmp(name, "test") == 0)
        rc = op_test(*doc, &path, value);
    jptr_free(&path);
    return rc;
}

int jpatch_apply(json_t **doc, const json_t *patch)
{
    if (!doc || !json_is_array(patch))
        return -1;
    for (size_t i = 0; i < json_array_size(patch); i++) {
        const json_t *op = json_array_get(patch, i);
        if (!json_is_object(op) || apply_op(doc, op) != 0)
            return -1;
    }
    return 0;
}
