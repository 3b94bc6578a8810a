/*
 * test_diff.c — unit tests for src/diff.c (JSON Patch generation, changed
 * embedded objects) and for tests/unit/jpatch.c (JSON Patch application,
 * with which the generated patches are checked). TAP output via tap.h.
 *
 * The random round-trip tests print their seed; set DIFF_TEST_SEED to
 * reproduce a run.
 */
#include "diff.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jpatch.h"
#include "tap.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

/* Parse a JSON text (any value, NUL escapes allowed); abort if malformed. */
static json_t *J(const char *text)
{
    json_error_t err;
    json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (!v) {
        diag("bad test JSON (%s): %s", err.text, text);
        fflush(stdout);
        abort();
    }
    return v;
}

static void show(const char *label, const json_t *v)
{
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    diag("%s: %.2000s", label, s ? s : "(NULL)");
    free(s);
}

/* diff_patch(old, new) must equal the expected patch text exactly. */
static bool patch_is(const char *old_text, const char *new_text, const char *expect_text)
{
    json_t *old = old_text ? J(old_text) : NULL;
    json_t *new = new_text ? J(new_text) : NULL;
    json_t *expect = J(expect_text);
    json_t *patch = diff_patch(old, new);
    bool good = patch && json_equal(patch, expect);
    if (!good) {
        show("expected", expect);
        show("got", patch);
    }
    json_decref(old);
    json_decref(new);
    json_decref(expect);
    json_decref(patch);
    return good;
}

/*
 * The core invariant: apply(copy of old, diff(old, new)) == new, and
 * neither old, new nor the patch is modified along the way.
 */
static bool roundtrip(const json_t *old, const json_t *new)
{
    json_t *old_snap = old ? json_deep_copy(old) : NULL;
    json_t *new_snap = json_deep_copy(new);
    json_t *patch = diff_patch(old, new);
    json_t *patch_snap = patch ? json_deep_copy(patch) : NULL;
    json_t *doc = old ? json_deep_copy(old) : NULL;
    int rc = patch ? jpatch_apply(&doc, patch) : -1;
    bool good = rc == 0 && json_equal(doc, new) &&
                (old ? json_equal(old, old_snap) : true) &&
                json_equal(new, new_snap) && json_equal(patch, patch_snap);
    if (!good) {
        diag("round trip failed (apply rc %d)", rc);
        show("old", old);
        show("new", new);
        show("patch", patch);
        show("result", doc);
    }
    json_decref(old_snap);
    json_decref(new_snap);
    json_decref(patch);
    json_decref(patch_snap);
    json_decref(doc);
    return good;
}

static bool roundtrip_text(const char *old_text, const char *new_text)
{
    json_t *old = J(old_text), *new = J(new_text);
    bool good = roundtrip(old, new);
    json_decref(old);
    json_decref(new);
    return good;
}

/* Apply patch_text to doc_text: expect rc, and (if rc == 0) result_text. */
static bool apply_gives(const char *doc_text, const char *patch_text, int expect_rc,
                        const char *result_text)
{
    json_t *doc = doc_text ? J(doc_text) : NULL;
    json_t *patch = J(patch_text);
    int rc = jpatch_apply(&doc, patch);
    bool good = rc == expect_rc;
    if (good && rc == 0 && result_text) {
        json_t *want = J(result_text);
        good = json_equal(doc, want);
        if (!good)
            show("expected", want);
        json_decref(want);
    }
    if (!good) {
        diag("apply rc %d, expected %d", rc, expect_rc);
        show("doc", doc);
    }
    json_decref(doc);
    json_decref(patch);
    return good;
}

static bool apply_fails(const char *doc_text, const char *patch_text)
{
    return apply_gives(doc_text, patch_text, -1, NULL);
}

static const char *const EMPLOYEE_KEYS[] = {
    "employments", "time_off_balances", "manager", "groups", "teams",
    "legal_entity", "work_location", NULL,
};

static bool nested_is(const char *old_text, const char *new_text,
                      const char *const *keys, const char *expect_text)
{
    json_t *old = J(old_text), *new = J(new_text), *expect = J(expect_text);
    json_t *got = diff_nested(old, new, keys);
    bool good = got && json_equal(got, expect);
    if (!good) {
        show("expected", expect);
        show("got", got);
    }
    json_decref(old);
    json_decref(new);
    json_decref(expect);
    json_decref(got);
    return good;
}

/* A trimmed employee record in the shape of kombo-api.md's example. */
static const char EMPLOYEE[] =
    "{\"id\":\"8fQk2LrT6vWn3XyB9cHd4JmP\",\"remote_id\":\"10245\","
    "\"first_name\":\"Astrid\",\"last_name\":\"Lindqvist\","
    "\"job_title\":\"Payroll Specialist\",\"weekly_hours\":40.0,"
    "\"changed_at\":\"2026-05-02T07:41:10.512Z\",\"remote_deleted_at\":null,"
    "\"custom_fields\":{},\"integration_fields\":[],"
    "\"employments\":[{\"id\":\"Qw7Rt2Yp9Lk4Mn8Bv3Xc6ZsD\",\"remote_id\":\"emp-1\","
    "\"employee_id\":\"8fQk2LrT6vWn3XyB9cHd4JmP\",\"job_title\":\"Payroll Specialist\","
    "\"pay_rate\":64000,\"pay_period\":\"YEAR\",\"pay_currency\":\"SEK\","
    "\"changed_at\":\"2026-05-02T07:41:10.512Z\",\"remote_deleted_at\":null,"
    "\"custom_fields\":{},\"integration_fields\":[]}],"
    "\"time_off_balances\":[{\"id\":\"Pz5Gk8Tn2Wq7Hm4Lc9Xv3BdS\",\"balance\":17.5,"
    "\"changed_at\":\"2026-04-30T22:05:03.020Z\",\"used\":7.5}],"
    "\"manager\":{\"first_name\":\"Jonas\",\"last_name\":\"Berg\","
    "\"id\":\"Rm4Tc8Lp2XvQ9bNk6ZsW3hFy\",\"remote_id\":\"10112\",\"termination_date\":null},"
    "\"groups\":[{\"id\":\"Gt8Wc3Nm6Lq2Xp9Hv4Zb7KdS\",\"remote_id\":\"dep-7\",\"name\":\"Finance\",\"type\":\"DEPARTMENT\"},"
    "{\"id\":\"Hy2Lq7Xm4Tc9Wb3Nv8Kd6ZpR\",\"remote_id\":\"team-31\",\"name\":\"Payroll\",\"type\":\"TEAM\"}],"
    "\"teams\":[{\"id\":\"Gt8Wc3Nm6Lq2Xp9Hv4Zb7KdS\",\"remote_id\":\"dep-7\",\"name\":\"Finance\",\"type\":\"DEPARTMENT\"},"
    "{\"id\":\"Hy2Lq7Xm4Tc9Wb3Nv8Kd6ZpR\",\"remote_id\":\"team-31\",\"name\":\"Payroll\",\"type\":\"TEAM\"}],"
    "\"legal_entity\":{\"id\":\"Vb6Ns2Kq8TzM4hPw7LcY3gJe\",\"name\":\"Northwind Sverige AB\"},"
    "\"work_location\":{\"id\":\"3Ht7ZpQm9WcK2sLv8XbN4dRf\",\"name\":\"Malm\\u00f6 Office\","
    "\"type\":\"OFFICE\",\"changed_at\":\"2025-11-18T10:00:00.000Z\",\"remote_deleted_at\":null}}";

/* EMPLOYEE with patch_text applied (the edits are test setup, not under test). */
static json_t *employee_patched(const char *patch_text)
{
    json_t *doc = J(EMPLOYEE);
    json_t *patch = J(patch_text);
    if (jpatch_apply(&doc, patch) != 0) {
        diag("bad setup patch: %s", patch_text);
        fflush(stdout);
        abort();
    }
    json_decref(patch);
    return doc;
}

static bool employee_nested_is(const char *old_patch, const char *new_patch,
                               const char *expect_text)
{
    json_t *old = employee_patched(old_patch), *new = employee_patched(new_patch);
    json_t *expect = J(expect_text);
    json_t *got = diff_nested(old, new, EMPLOYEE_KEYS);
    bool good = got && json_equal(got, expect) && roundtrip(old, new);
    if (!good) {
        show("expected", expect);
        show("got", got);
    }
    json_decref(old);
    json_decref(new);
    json_decref(expect);
    json_decref(got);
    return good;
}

/* ------------------------------------------------------------------------ */
/* diff_patch: hand-written cases                                           */
/* ------------------------------------------------------------------------ */

static bool t_equal_scalars(void)
{
    return patch_is("1", "1", "[]") && patch_is("\"x\"", "\"x\"", "[]") &&
           patch_is("null", "null", "[]") && patch_is("true", "true", "[]") &&
           patch_is("2.5", "2.5", "[]");
}

static bool t_equal_documents(void)
{
    json_t *a = J(EMPLOYEE), *b = J(EMPLOYEE);
    json_t *p1 = diff_patch(a, b), *p2 = diff_patch(a, a);
    bool good = p1 && p2 && json_array_size(p1) == 0 && json_array_size(p2) == 0;
    json_decref(a);
    json_decref(b);
    json_decref(p1);
    json_decref(p2);
    return good;
}

static bool t_root_scalar_replace(void)
{
    return patch_is("1", "\"x\"", "[{\"op\":\"replace\",\"path\":\"\",\"value\":\"x\"}]") &&
           patch_is("true", "false", "[{\"op\":\"replace\",\"path\":\"\",\"value\":false}]") &&
           patch_is("{}", "[]", "[{\"op\":\"replace\",\"path\":\"\",\"value\":[]}]");
}

static bool t_object_member_changes(void)
{
    return patch_is("{\"a\":1,\"b\":2,\"c\":3}", "{\"a\":1,\"b\":5,\"d\":4}",
                    "[{\"op\":\"replace\",\"path\":\"/b\",\"value\":5},"
                    "{\"op\":\"remove\",\"path\":\"/c\"},"
                    "{\"op\":\"add\",\"path\":\"/d\",\"value\":4}]") &&
           roundtrip_text("{\"a\":1,\"b\":2,\"c\":3}", "{\"d\":4,\"b\":5,\"a\":1}");
}

static bool t_nested_objects(void)
{
    return patch_is("{\"a\":{\"b\":{\"c\":1,\"d\":[1,2]}},\"e\":0}",
                    "{\"a\":{\"b\":{\"c\":2,\"d\":[1,2]}},\"e\":0}",
                    "[{\"op\":\"replace\",\"path\":\"/a/b/c\",\"value\":2}]") &&
           patch_is("{\"a\":{\"b\":{}}}", "{\"a\":{\"b\":{\"x\":{\"y\":null}}}}",
                    "[{\"op\":\"add\",\"path\":\"/a/b/x\",\"value\":{\"y\":null}}]");
}

static bool t_array_grow(void)
{
    return patch_is("[1,2]", "[1,2,3,4]",
                    "[{\"op\":\"add\",\"path\":\"/2\",\"value\":3},"
                    "{\"op\":\"add\",\"path\":\"/3\",\"value\":4}]") &&
           patch_is("[]", "[[1]]", "[{\"op\":\"add\",\"path\":\"/0\",\"value\":[1]}]") &&
           roundtrip_text("{\"a\":[]}", "{\"a\":[1,{\"b\":2},[3],\"x\"]}");
}

static bool t_array_shrink(void)
{
    return patch_is("[1,2,3,4]", "[1,2]",
                    "[{\"op\":\"remove\",\"path\":\"/3\"},{\"op\":\"remove\",\"path\":\"/2\"}]") &&
           patch_is("{\"a\":[1]}", "{\"a\":[]}", "[{\"op\":\"remove\",\"path\":\"/a/0\"}]") &&
           roundtrip_text("[1,[2,3],{\"x\":4},5]", "[]");
}

static bool t_array_insert_remove_middle(void)
{
    return patch_is("[1,2,3]", "[1,9,2,3]", "[{\"op\":\"add\",\"path\":\"/1\",\"value\":9}]") &&
           patch_is("[1,2,3]", "[0,1,2,3]", "[{\"op\":\"add\",\"path\":\"/0\",\"value\":0}]") &&
           patch_is("[1,2,3]", "[1,3]", "[{\"op\":\"remove\",\"path\":\"/1\"}]") &&
           patch_is("[1,1,1]", "[1,1]", "[{\"op\":\"remove\",\"path\":\"/2\"}]") &&
           roundtrip_text("[1,2,3,4,5]", "[1,7,8,9,4,5]") &&
           roundtrip_text("[1,2,3,4,5]", "[5,4,3,2,1]");
}

static bool t_array_element_edit(void)
{
    return patch_is("[{\"id\":\"a\",\"n\":1},{\"id\":\"b\",\"n\":2}]",
                    "[{\"id\":\"a\",\"n\":1},{\"id\":\"b\",\"n\":3}]",
                    "[{\"op\":\"replace\",\"path\":\"/1/n\",\"value\":3}]");
}

static bool t_escaped_keys(void)
{
    return patch_is("{\"a/b\":1,\"m~n\":2,\"~1\":3,\"\":4,\"/\":{\"~\":5}}",
                    "{\"a/b\":9,\"m~n\":8,\"~1\":7,\"\":6,\"/\":{\"~\":0}}",
                    "[{\"op\":\"replace\",\"path\":\"/a~1b\",\"value\":9},"
                    "{\"op\":\"replace\",\"path\":\"/m~0n\",\"value\":8},"
                    "{\"op\":\"replace\",\"path\":\"/~01\",\"value\":7},"
                    "{\"op\":\"replace\",\"path\":\"/\",\"value\":6},"
                    "{\"op\":\"replace\",\"path\":\"/~1/~0\",\"value\":0}]") &&
           roundtrip_text("{\"~01\":{\"a/~b\":[1]}}", "{\"~01\":{\"a/~b\":[1,2]},\"~\":{}}");
}

static bool t_unicode_and_nul(void)
{
    bool good = roundtrip_text("{\"Malm\\u00f6\":\"\\u65e5\\ud83d\\ude00\"}",
                               "{\"Malm\\u00f6\":\"\\u65e5\",\"\\u00e9/\":1}");
    /* NUL bytes inside string values (jansson's json_deep_copy cannot keep
     * NUL bytes in keys, so those are out of scope). */
    json_t *old = J("{\"a\":\"x\"}"), *new = J("{\"a\":\"x\\u0000y\",\"b\":[\"\\u0000\"]}");
    good = good && roundtrip(old, new);
    json_decref(old);
    json_decref(new);
    return good;
}

static bool t_null_object(void)
{
    return patch_is("{\"m\":null}", "{\"m\":{\"id\":\"x\"}}",
                    "[{\"op\":\"replace\",\"path\":\"/m\",\"value\":{\"id\":\"x\"}}]") &&
           patch_is("{\"m\":{\"id\":\"x\"}}", "{\"m\":null}",
                    "[{\"op\":\"replace\",\"path\":\"/m\",\"value\":null}]") &&
           patch_is("{\"m\":[1]}", "{\"m\":{\"0\":1}}",
                    "[{\"op\":\"replace\",\"path\":\"/m\",\"value\":{\"0\":1}}]");
}

static bool t_int_real(void)
{
    json_t *old = J("{\"a\":1,\"b\":2.0,\"c\":[3]}");
    json_t *new = J("{\"a\":1.0,\"b\":2,\"c\":[3.0]}");
    json_t *patch = diff_patch(old, new);
    /* The replaced values must keep new's types exactly. */
    bool good = patch && json_array_size(patch) == 3 &&
                json_is_real(json_object_get(json_array_get(patch, 0), "value")) &&
                json_is_integer(json_object_get(json_array_get(patch, 1), "value")) &&
                json_is_real(json_object_get(json_array_get(patch, 2), "value")) &&
                roundtrip(old, new);
    if (!good)
        show("patch", patch);
    json_decref(old);
    json_decref(new);
    json_decref(patch);
    return good;
}

static bool t_old_null(void)
{
    json_t *new = J(EMPLOYEE);
    json_t *patch = diff_patch(NULL, new);
    json_t *op = json_array_get(patch, 0);
    bool good = patch && json_array_size(patch) == 1 &&
                strcmp(json_string_value(json_object_get(op, "op")), "add") == 0 &&
                strcmp(json_string_value(json_object_get(op, "path")), "") == 0 &&
                json_equal(json_object_get(op, "value"), new) && roundtrip(NULL, new);
    json_decref(new);
    json_decref(patch);
    return good && patch_is(NULL, "3", "[{\"op\":\"add\",\"path\":\"\",\"value\":3}]");
}

static bool t_new_null(void)
{
    return patch_is("{\"a\":1}", NULL, "[]") && patch_is(NULL, NULL, "[]");
}

/* The SPEC §3 example: a changed job title in employments[0]. */
static bool t_employee_example(void)
{
    json_t *old = J(EMPLOYEE);
    json_t *new = employee_patched(
        "[{\"op\":\"replace\",\"path\":\"/employments/0/job_title\",\"value\":\"Lead Payroll Specialist\"},"
        "{\"op\":\"replace\",\"path\":\"/employments/0/changed_at\",\"value\":\"2026-11-27T09:58:00.000Z\"}]");
    json_t *patch = diff_patch(old, new);
    json_t *expect = J(
        "[{\"op\":\"replace\",\"path\":\"/employments/0/job_title\",\"value\":\"Lead Payroll Specialist\"},"
        "{\"op\":\"replace\",\"path\":\"/employments/0/changed_at\",\"value\":\"2026-11-27T09:58:00.000Z\"}]");
    json_t *nested = diff_nested(old, new, EMPLOYEE_KEYS);
    json_t *expect_nested = J("[\"/employments/0\"]");
    bool good = json_equal(patch, expect) && json_equal(nested, expect_nested) &&
                roundtrip(old, new);
    if (!good) {
        show("patch", patch);
        show("nested", nested);
    }
    json_decref(old);
    json_decref(new);
    json_decref(patch);
    json_decref(expect);
    json_decref(nested);
    json_decref(expect_nested);
    return good;
}

/* Arguments are borrowed: no reference is kept on them, none is leaked. */
static bool t_ownership(void)
{
    json_t *old = J(EMPLOYEE);
    json_t *new = employee_patched(
        "[{\"op\":\"add\",\"path\":\"/groups/-\",\"value\":{\"id\":\"g3\",\"name\":\"New\"}},"
        "{\"op\":\"replace\",\"path\":\"/manager\",\"value\":{\"id\":\"m2\"}}]");
    json_t *patch = diff_patch(old, new);
    json_t *nested = diff_nested(old, new, EMPLOYEE_KEYS);
    bool good = patch && nested && old->refcount == 1 && new->refcount == 1 &&
                json_object_get(new, "manager")->refcount == 1 && patch->refcount == 1 &&
                nested->refcount == 1;
    /* The patch owns copies: it stays valid after new is gone. */
    json_decref(new);
    json_t *doc = json_deep_copy(old);
    good = good && jpatch_apply(&doc, patch) == 0 && patch->refcount == 1;
    json_decref(old);
    json_decref(doc);
    json_decref(patch);
    json_decref(nested);
    return good;
}

/* ------------------------------------------------------------------------ */
/* jpatch_apply                                                             */
/* ------------------------------------------------------------------------ */

/* Examples from RFC 6902 appendix A. */
static bool t_apply_rfc_examples(void)
{
    return apply_gives("{\"foo\":\"bar\"}",
                       "[{\"op\":\"add\",\"path\":\"/baz\",\"value\":\"qux\"}]", 0,
                       "{\"baz\":\"qux\",\"foo\":\"bar\"}") &&
           apply_gives("{\"foo\":[\"bar\",\"baz\"]}",
                       "[{\"op\":\"add\",\"path\":\"/foo/1\",\"value\":\"qux\"}]", 0,
                       "{\"foo\":[\"bar\",\"qux\",\"baz\"]}") &&
           apply_gives("{\"baz\":\"qux\",\"foo\":\"bar\"}",
                       "[{\"op\":\"remove\",\"path\":\"/baz\"}]", 0, "{\"foo\":\"bar\"}") &&
           apply_gives("{\"foo\":[\"bar\",\"qux\",\"baz\"]}",
                       "[{\"op\":\"remove\",\"path\":\"/foo/1\"}]", 0,
                       "{\"foo\":[\"bar\",\"baz\"]}") &&
           apply_gives("{\"baz\":\"qux\",\"foo\":\"bar\"}",
                       "[{\"op\":\"replace\",\"path\":\"/baz\",\"value\":\"boo\"}]", 0,
                       "{\"baz\":\"boo\",\"foo\":\"bar\"}") &&
           apply_gives("{\"foo\":{\"bar\":\"baz\",\"waldo\":\"fred\"},\"qux\":{\"corge\":\"grault\"}}",
                       "[{\"op\":\"move\",\"from\":\"/foo/waldo\",\"path\":\"/qux/thud\"}]", 0,
                       "{\"foo\":{\"bar\":\"baz\"},\"qux\":{\"corge\":\"grault\",\"thud\":\"fred\"}}") &&
           apply_gives("{\"foo\":[\"all\",\"grass\",\"cows\",\"eat\"]}",
                       "[{\"op\":\"move\",\"from\":\"/foo/1\",\"path\":\"/foo/3\"}]", 0,
                       "{\"foo\":[\"all\",\"cows\",\"eat\",\"grass\"]}") &&
           apply_gives("{\"baz\":\"qux\",\"foo\":[\"a\",2,\"c\"]}",
                       "[{\"op\":\"test\",\"path\":\"/baz\",\"value\":\"qux\"},"
                       "{\"op\":\"test\",\"path\":\"/foo/1\",\"value\":2}]", 0,
                       "{\"baz\":\"qux\",\"foo\":[\"a\",2,\"c\"]}") &&
           apply_gives("{\"foo\":\"bar\"}",
                       "[{\"op\":\"add\",\"path\":\"/child\",\"value\":{\"grandchild\":{}}}]", 0,
                       "{\"foo\":\"bar\",\"child\":{\"grandchild\":{}}}") &&
           apply_gives("{\"/\":9,\"~1\":10}",
                       "[{\"op\":\"test\",\"path\":\"/~01\",\"value\":10}]", 0, NULL) &&
           apply_gives("{\"foo\":[\"bar\"]}",
                       "[{\"op\":\"add\",\"path\":\"/foo/-\",\"value\":[\"abc\",\"def\"]}]", 0,
                       "{\"foo\":[\"bar\",[\"abc\",\"def\"]]}") &&
           apply_gives("{\"foo\":null}",
                       "[{\"op\":\"test\",\"path\":\"/foo\",\"value\":null},"
                       "{\"op\":\"copy\",\"from\":\"/foo\",\"path\":\"/bar\"}]", 0,
                       "{\"foo\":null,\"bar\":null}");
}

static bool t_apply_root_and_misc(void)
{
    return apply_gives(NULL, "[{\"op\":\"add\",\"path\":\"\",\"value\":{\"a\":1}}]", 0,
                       "{\"a\":1}") &&
           apply_gives("[1]", "[{\"op\":\"add\",\"path\":\"\",\"value\":2}]", 0, "2") &&
           apply_gives("[1]", "[{\"op\":\"replace\",\"path\":\"\",\"value\":{}}]", 0, "{}") &&
           apply_gives("{\"a\":1}", "[]", 0, "{\"a\":1}") &&
           apply_gives("{\"a\":1}", "[{\"op\":\"add\",\"path\":\"/a\",\"value\":2}]", 0,
                       "{\"a\":2}") &&
           apply_gives("{\"a\":[1,2]}", "[{\"op\":\"add\",\"path\":\"/a/2\",\"value\":3}]", 0,
                       "{\"a\":[1,2,3]}") &&
           apply_gives("{\"\":{\"\":1}}", "[{\"op\":\"replace\",\"path\":\"//\",\"value\":2}]", 0,
                       "{\"\":{\"\":2}}") &&
           apply_gives("{\"a\":{\"b\":1}}", "[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/a\"}]",
                       0, "{\"a\":{\"b\":1}}") &&
           apply_gives("{\"a\":{\"b\":[1]}}",
                       "[{\"op\":\"copy\",\"from\":\"/a\",\"path\":\"/a/c\"},"
                       "{\"op\":\"add\",\"path\":\"/a/c/b/-\",\"value\":2}]", 0,
                       "{\"a\":{\"b\":[1],\"c\":{\"b\":[1,2]}}}") &&
           apply_gives("{\"a\":[1,2,3]}",
                       "[{\"op\":\"move\",\"from\":\"/a/0\",\"path\":\"/a/-\"}]", 0,
                       "{\"a\":[2,3,1]}") &&
           apply_gives("{\"a\":\"x\",\"b\":7}", "[{\"op\":\"replace\",\"path\":\"/a\",\"value\":1,"
                       "\"extra\":true}]", 0, "{\"a\":1,\"b\":7}");
}

/* "test" compares numbers by value (RFC 6902 §4.6). */
static bool t_apply_test_numbers(void)
{
    return apply_gives("{\"a\":1}", "[{\"op\":\"test\",\"path\":\"/a\",\"value\":1.0}]", 0, NULL) &&
           apply_gives("{\"a\":[2.0,{\"b\":3}]}",
                       "[{\"op\":\"test\",\"path\":\"/a\",\"value\":[2,{\"b\":3.0}]}]", 0, NULL) &&
           apply_fails("{\"a\":1}", "[{\"op\":\"test\",\"path\":\"/a\",\"value\":1.5}]") &&
           apply_fails("{\"a\":9007199254740993}",
                       "[{\"op\":\"test\",\"path\":\"/a\",\"value\":9007199254740992.0}]") &&
           apply_fails("{\"a\":1}", "[{\"op\":\"test\",\"path\":\"/a\",\"value\":1e300}]") &&
           apply_fails("{\"a\":{\"b\":1}}",
                       "[{\"op\":\"test\",\"path\":\"/a\",\"value\":{\"b\":1,\"c\":2}}]");
}

static bool t_apply_bad_pointer(void)
{
    return apply_fails("{\"a\":1}", "[{\"op\":\"replace\",\"path\":\"a\",\"value\":2}]") &&
           apply_fails("{\"a~2\":1}", "[{\"op\":\"replace\",\"path\":\"/a~2\",\"value\":2}]") &&
           apply_fails("{\"a~\":1}", "[{\"op\":\"remove\",\"path\":\"/a~\"}]") &&
           apply_fails("{\"a\":{}}", "[{\"op\":\"add\",\"path\":\"/x/y\",\"value\":2}]") &&
           apply_fails("{\"a\":1}", "[{\"op\":\"add\",\"path\":\"/a/b\",\"value\":2}]") &&
           apply_fails("{\"a\":[1,2]}", "[{\"op\":\"remove\",\"path\":\"/a/01\"}]") &&
           apply_fails("{\"a\":[1,2]}", "[{\"op\":\"remove\",\"path\":\"/a/-\"}]") &&
           apply_fails("{\"a\":[1,2]}", "[{\"op\":\"remove\",\"path\":\"/a/-1\"}]") &&
           apply_fails("{\"a\":[1,2]}", "[{\"op\":\"remove\",\"path\":\"/a/1x\"}]") &&
           apply_fails("{\"a\":[1,2]}", "[{\"op\":\"add\",\"path\":\"/a/\",\"value\":0}]") &&
           apply_fails("{\"a\":[1,2]}",
                       "[{\"op\":\"remove\",\"path\":\"/a/99999999999999999999999\"}]") &&
           apply_fails("{\"a\":[[1]]}", "[{\"op\":\"add\",\"path\":\"/a/-/0\",\"value\":0}]") &&
           apply_fails(NULL, "[{\"op\":\"add\",\"path\":\"/a\",\"value\":0}]");
}

static bool t_apply_missing_targets(void)
{
    return apply_fails("{\"a\":1}", "[{\"op\":\"remove\",\"path\":\"/b\"}]") &&
           apply_fails("{\"a\":1}", "[{\"op\":\"replace\",\"path\":\"/b\",\"value\":2}]") &&
           apply_fails("{\"a\":1}", "[{\"op\":\"test\",\"path\":\"/b\",\"value\":1}]") &&
           apply_fails("{\"a\":1}", "[{\"op\":\"move\",\"from\":\"/b\",\"path\":\"/c\"}]") &&
           apply_fails("{\"a\":1}", "[{\"op\":\"copy\",\"from\":\"/b\",\"path\":\"/c\"}]") &&
           apply_fails("{\"a\":1}", "[{\"op\":\"remove\",\"path\":\"\"}]") &&
           apply_fails(NULL, "[{\"op\":\"replace\",\"path\":\"\",\"value\":1}]") &&
           apply_fails(NULL, "[{\"op\":\"test\",\"path\":\"\",\"value\":null}]") &&
           apply_fails("\"s\"", "[{\"op\":\"remove\",\"path\":\"/0\"}]");
}

static bool t_apply_index_out_of_range(void)
{
    return apply_fails("[1,2,3]", "[{\"op\":\"add\",\"path\":\"/4\",\"value\":0}]") &&
           apply_fails("[1,2,3]", "[{\"op\":\"remove\",\"path\":\"/3\"}]") &&
           apply_fails("[1,2,3]", "[{\"op\":\"replace\",\"path\":\"/3\",\"value\":0}]") &&
           apply_fails("[1,2,3]", "[{\"op\":\"replace\",\"path\":\"/-\",\"value\":0}]") &&
           apply_fails("[]", "[{\"op\":\"remove\",\"path\":\"/0\"}]") &&
           apply_fails("[1,2,3]", "[{\"op\":\"test\",\"path\":\"/3\",\"value\":null}]") &&
           apply_fails("[1,2,3]", "[{\"op\":\"move\",\"from\":\"/0\",\"path\":\"/3\"}]") &&
           apply_gives("[1,2,3]", "[{\"op\":\"add\",\"path\":\"/3\",\"value\":4}]", 0,
                       "[1,2,3,4]");
}

static bool t_apply_test_fails(void)
{
    return apply_fails("{\"a\":\"x\"}", "[{\"op\":\"test\",\"path\":\"/a\",\"value\":\"y\"}]") &&
           apply_fails("{\"a\":[1,2]}", "[{\"op\":\"test\",\"path\":\"/a\",\"value\":[2,1]}]") &&
           apply_fails("{\"a\":null}", "[{\"op\":\"test\",\"path\":\"/a\",\"value\":false}]") &&
           apply_fails("{\"a\":1}", "[{\"op\":\"test\",\"path\":\"/a\",\"value\":\"1\"}]") &&
           apply_fails("{\"a\":1}", "[{\"op\":\"test\",\"path\":\"/a\"}]") &&
           /* A failing op stops the patch: later ops are not applied. */
           apply_fails("{\"a\":1}", "[{\"op\":\"test\",\"path\":\"/a\",\"value\":2},"
                                   "{\"op\":\"add\",\"path\":\"/b\",\"value\":2}]");
}

static bool t_apply_malformed(void)
{
    return apply_fails("{}", "{}") && apply_fails("{}", "[1]") &&
           apply_fails("{}", "[{\"path\":\"/a\",\"value\":1}]") &&
           apply_fails("{}", "[{\"op\":\"add\",\"value\":1}]") &&
           apply_fails("{}", "[{\"op\":\"add\",\"path\":1,\"value\":1}]") &&
           apply_fails("{}", "[{\"op\":\"add\",\"path\":\"/a\"}]") &&
           apply_fails("{\"a\":1}", "[{\"op\":\"replace\",\"path\":\"/a\"}]") &&
           apply_fails("{}", "[{\"op\":\"frobnicate\",\"path\":\"/a\",\"value\":1}]") &&
           apply_fails("{}", "[{\"op\":7,\"path\":\"/a\",\"value\":1}]") &&
           apply_fails("{\"a\":1}", "[{\"op\":\"move\",\"path\":\"/b\"}]") &&
           apply_fails("{\"a\":1}", "[{\"op\":\"copy\",\"from\":\"a\",\"path\":\"/b\"}]") &&
           /* A value cannot be moved into one of its own children. */
           apply_fails("{\"a\":{\"b\":{}}}", "[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/a/b/c\"}]") &&
           apply_fails("{\"a\":{}}", "[{\"op\":\"move\",\"from\":\"\",\"path\":\"/a/b\"}]") &&
           jpatch_apply(NULL, NULL) == -1;
}

/* ------------------------------------------------------------------------ */
/* diff_nested                                                              */
/* ------------------------------------------------------------------------ */

static bool t_nested_unchanged(void)
{
    return employee_nested_is("[]", "[]", "[]") &&
           /* Top-level changes are not nested changes. */
           employee_nested_is("[]", "[{\"op\":\"replace\",\"path\":\"/job_title\",\"value\":\"X\"},"
                                    "{\"op\":\"replace\",\"path\":\"/changed_at\",\"value\":\"Y\"}]",
                              "[]");
}

static bool t_nested_employment_changed(void)
{
    return employee_nested_is(
               "[]", "[{\"op\":\"replace\",\"path\":\"/employments/0/pay_rate\",\"value\":66000}]",
               "[\"/employments/0\"]") &&
           employee_nested_is(
               "[]", "[{\"op\":\"replace\",\"path\":\"/employments/0/changed_at\",\"value\":\"Z\"}]",
               "[\"/employments/0\"]") &&
           /* A new employment inserted first; the old one (now index 1) unchanged. */
           employee_nested_is(
               "[]", "[{\"op\":\"add\",\"path\":\"/employments/0\",\"value\":{\"id\":\"e2\"}}]",
               "[\"/employments/0\"]");
}

static bool t_nested_group_added_removed(void)
{
    return employee_nested_is(
               "[]", "[{\"op\":\"add\",\"path\":\"/groups/-\",\"value\":{\"id\":\"g3\",\"name\":\"HR\"}}]",
               "[\"/groups/2\"]") &&
           employee_nested_is("[]", "[{\"op\":\"remove\",\"path\":\"/groups/0\"}]",
                              "[\"/groups\"]") &&
           /* Several removals still give "/groups" once. */
           employee_nested_is("[]", "[{\"op\":\"replace\",\"path\":\"/groups\",\"value\":[]}]",
                              "[\"/groups\"]") &&
           /* One removed, one renamed (now at index 0), one added. */
           employee_nested_is(
               "[]", "[{\"op\":\"remove\",\"path\":\"/groups/0\"},"
                     "{\"op\":\"replace\",\"path\":\"/groups/0/name\",\"value\":\"Pay\"},"
                     "{\"op\":\"add\",\"path\":\"/groups/-\",\"value\":{\"id\":\"g4\"}}]",
               "[\"/groups\",\"/groups/0\",\"/groups/1\"]");
}

static bool t_nested_manager_changed(void)
{
    return employee_nested_is(
               "[]", "[{\"op\":\"replace\",\"path\":\"/manager/last_name\",\"value\":\"Borg\"}]",
               "[\"/manager\"]") &&
           employee_nested_is("[]", "[{\"op\":\"replace\",\"path\":\"/manager\",\"value\":null}]",
                              "[\"/manager\"]") &&
           employee_nested_is("[{\"op\":\"replace\",\"path\":\"/manager\",\"value\":null}]", "[]",
                              "[\"/manager\"]") &&
           /* Absent and null both mean "no manager". */
           employee_nested_is("[{\"op\":\"remove\",\"path\":\"/manager\"}]",
                              "[{\"op\":\"replace\",\"path\":\"/manager\",\"value\":null}]", "[]");
}

static bool t_nested_work_location(void)
{
    return employee_nested_is(
               "[]", "[{\"op\":\"replace\",\"path\":\"/work_location/changed_at\","
                     "\"value\":\"2026-11-27T10:00:00.000Z\"}]",
               "[\"/work_location\"]") &&
           employee_nested_is(
               "[]", "[{\"op\":\"replace\",\"path\":\"/work_location/name\",\"value\":\"Lund\"}]",
               "[\"/work_location\"]");
}

static bool t_nested_order_only(void)
{
    return employee_nested_is(
               "[]", "[{\"op\":\"move\",\"from\":\"/groups/0\",\"path\":\"/groups/-\"},"
                     "{\"op\":\"move\",\"from\":\"/teams/1\",\"path\":\"/teams/0\"}]",
               "[]") &&
           /* Key order inside an embedded object is not a content change. */
           employee_nested_is(
               "[]", "[{\"op\":\"move\",\"from\":\"/manager/first_name\",\"path\":\"/manager/first_name\"},"
                     "{\"op\":\"remove\",\"path\":\"/work_location/name\"},"
                     "{\"op\":\"add\",\"path\":\"/work_location/name\",\"value\":\"Malm\\u00f6 Office\"}]",
               "[]");
}

static bool t_nested_order_and_many_keys(void)
{
    /* Output follows nested_keys order, then array index. */
    return employee_nested_is(
               "[]", "[{\"op\":\"replace\",\"path\":\"/work_location/type\",\"value\":null},"
                     "{\"op\":\"replace\",\"path\":\"/teams/1/type\",\"value\":null},"
                     "{\"op\":\"replace\",\"path\":\"/teams/0/type\",\"value\":null},"
                     "{\"op\":\"replace\",\"path\":\"/employments/0/job_title\",\"value\":null},"
                     "{\"op\":\"replace\",\"path\":\"/time_off_balances/0/used\",\"value\":8}]",
               "[\"/employments/0\",\"/time_off_balances/0\",\"/teams/0\",\"/teams/1\","
               "\"/work_location\"]");
}

static bool t_nested_positional_and_edge(void)
{
    static const char *const k[] = {"list", "a/b", "obj", "arr", NULL};
    static const char *const none[] = {NULL};
    return /* Elements without a string id match by position. */
        nested_is("{\"list\":[{\"x\":1},{\"x\":2}]}", "{\"list\":[{\"x\":1},{\"x\":3},{\"x\":4}]}",
                  k, "[\"/list/1\",\"/list/2\"]") &&
        nested_is("{\"list\":[{\"x\":1},{\"x\":2}]}", "{\"list\":[{\"x\":1}]}", k, "[\"/list\"]") &&
        nested_is("{\"list\":[{\"id\":1},{\"id\":2}]}", "{\"list\":[{\"id\":2},{\"id\":1}]}", k,
                  "[\"/list/0\",\"/list/1\"]") &&
        /* An id-less element does not pair with an id-keyed one at its position. */
        nested_is("{\"list\":[{\"id\":\"a\"}]}", "{\"list\":[{\"x\":1}]}", k,
                  "[\"/list\",\"/list/0\"]") &&
        /* Duplicate ids pair one to one. */
        nested_is("{\"list\":[{\"id\":\"a\"},{\"id\":\"a\"}]}", "{\"list\":[{\"id\":\"a\"}]}", k,
                  "[\"/list\"]") &&
        nested_is("{\"a/b\":{\"v\":1}}", "{\"a/b\":{\"v\":2}}", k, "[\"/a~1b\"]") &&
        nested_is("{\"obj\":{}}", "{}", k, "[\"/obj\"]") &&
        nested_is("{}", "{\"obj\":{}}", k, "[\"/obj\"]") &&
        nested_is("{\"obj\":{\"a\":1}}", "{\"obj\":[]}", k, "[\"/obj\"]") &&
        /* Arrays versus absent/null: null is an empty array. */
        nested_is("{\"arr\":null}", "{\"arr\":[]}", k, "[]") &&
        nested_is("{\"arr\":[{\"id\":\"a\"}]}", "{\"arr\":null}", k, "[\"/arr\"]") &&
        nested_is("{}", "{\"arr\":[{\"id\":\"a\"}]}", k, "[\"/arr/0\"]") &&
        nested_is("{\"list\":[1]}", "{\"list\":[1.0]}", k, "[\"/list/0\"]") &&
        nested_is("{\"obj\":1}", "{\"obj\":2}", none, "[]");
}

static bool t_nested_null_keys(void)
{
    json_t *a = J("{\"x\":1}"), *b = J("{\"x\":2}");
    json_t *got = diff_nested(a, b, NULL);
    bool good = got && json_is_array(got) && json_array_size(got) == 0;
    json_decref(a);
    json_decref(b);
    json_decref(got);
    return good;
}

/* ------------------------------------------------------------------------ */
/* Allocation failures                                                      */
/* ------------------------------------------------------------------------ */

static long alloc_budget = -1; /* allocations left before failing; -1 = no limit */

static void *failing_malloc(size_t n)
{
    if (alloc_budget == 0)
        return NULL;
    if (alloc_budget > 0)
        alloc_budget--;
    return malloc(n);
}

/*
 * Every jansson allocation failing in turn: each function either reports
 * the failure (NULL / -1) or returns a correct result, and never leaks
 * (checked by ASan/valgrind). diff.c's own path buffers use malloc directly.
 */
static bool t_alloc_failures(void)
{
    json_t *old = J(EMPLOYEE);
    json_t *new = employee_patched(
        "[{\"op\":\"replace\",\"path\":\"/employments/0/job_title\",\"value\":\"Lead\"},"
        "{\"op\":\"remove\",\"path\":\"/groups/0\"},"
        "{\"op\":\"add\",\"path\":\"/groups/-\",\"value\":{\"id\":\"g9\"}},"
        "{\"op\":\"add\",\"path\":\"/a~1b\",\"value\":[1,{\"c\":2}]}]");
    json_t *want_patch = diff_patch(old, new);
    json_t *want_nested = diff_nested(old, new, EMPLOYEE_KEYS);
    bool good = want_patch && want_nested, completed = false;
    json_set_alloc_funcs(failing_malloc, free);
    /* Until a budget is large enough for all three calls to succeed. */
    for (long n = 0; good && !completed && n < 100000; n++) {
        json_t *doc = json_deep_copy(old); /* before arming: not under test */
        alloc_budget = n;
        json_t *patch = diff_patch(old, new);
        alloc_budget = n;
        json_t *nested = diff_nested(old, new, EMPLOYEE_KEYS);
        alloc_budget = n;
        int rc = doc ? jpatch_apply(&doc, want_patch) : -1;
        alloc_budget = -1;
        good = (!patch || json_equal(patch, want_patch)) &&
               (!nested || json_equal(nested, want_nested)) &&
               (rc != 0 || json_equal(doc, new));
        if (!good)
            diag("wrong result with allocation %ld failing", n);
        completed = patch && nested && rc == 0;
        json_decref(patch);
        json_decref(nested);
        json_decref(doc);
    }
    json_set_alloc_funcs(malloc, free);
    json_decref(old);
    json_decref(new);
    json_decref(want_patch);
    json_decref(want_nested);
    return good && completed;
}

/* ------------------------------------------------------------------------ */
/* Random documents and mutations                                           */
/* ------------------------------------------------------------------------ */

static uint64_t seed;     /* of the whole run, printed */
static uint64_t rng;      /* current state */

/* splitmix64 */
static uint64_t rnd(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static size_t rn(size_t n)
{
    return n ? (size_t)(rnd() % n) : 0;
}

struct bytes {
    const char *s;
    size_t len;
};
#define B(lit) {lit, sizeof(lit) - 1}

/* String pieces: pointer specials, JSON escapes, 2/3/4-byte UTF-8. */
static const struct bytes PIECES[] = {
    B("a"), B("b"), B("z"), B("0"), B("1"), B("-"), B("~"), B("/"), B("~0"), B("~1"),
    B(" "), B("\""), B("\\"), B("\n"), B("\xc3\xa9"), B("\xe6\x97\xa5"),
    B("\xf0\x9f\x98\x80"), B("\x7f"), B("\0"),
};

/* A small key set, so that old and new share keys often. */
static const struct bytes KEYS[] = {
    B("id"), B("a"), B("b"), B("c"), B(""), B("~"), B("/"), B("~1"), B("0"), B("-"),
    B("a/b"), B("m~n"), B("Malm\xc3\xb6"), B("changed_at"),
};
#define NKEYS (sizeof KEYS / sizeof KEYS[0])
#define NPIECES (sizeof PIECES / sizeof PIECES[0])

static json_t *rand_string(void)
{
    char buf[64];
    size_t len = 0, n = rn(6);
    for (size_t i = 0; i < n; i++) {
        const struct bytes *p = &PIECES[rn(NPIECES)];
        memcpy(buf + len, p->s, p->len);
        len += p->len;
    }
    return json_stringn(buf, len);
}

static json_t *rand_number(void)
{
    switch (rn(6)) {
    case 0:
    case 1:
        return json_integer((json_int_t)rn(7) - 3);
    case 2:
        return json_integer((json_int_t)(rnd() >> 1) * (rn(2) ? 1 : -1));
    case 3:
        return json_real((double)rn(7) - 3.0); /* integral reals vs integers */
    case 4:
        return json_real(0.5);
    default:
        return json_real((double)(int64_t)rnd() / 65536.0);
    }
}

static json_t *rand_value(int depth);

static json_t *rand_array(int depth)
{
    json_t *a = json_array();
    for (size_t i = rn(5); i > 0; i--)
        json_array_append_new(a, rand_value(depth - 1));
    return a;
}

static json_t *rand_object(int depth)
{
    json_t *o = json_object();
    for (size_t i = rn(5); i > 0; i--) {
        const struct bytes *k = &KEYS[rn(NKEYS)];
        json_object_setn_new(o, k->s, k->len, rand_value(depth - 1));
    }
    return o;
}

static json_t *rand_value(int depth)
{
    switch (rn(depth > 0 ? 9 : 6)) {
    case 0:
        return json_null();
    case 1:
        return json_true();
    case 2:
        return json_false();
    case 3:
    case 4:
        return rand_number();
    case 5:
        return rand_string();
    case 6:
        return rand_array(depth);
    default:
        return rand_object(depth);
    }
}

/* A leaf turned into a near neighbour: same number with the other type, etc. */
static json_t *tweak_scalar(json_t *v)
{
    json_t *r;
    if (json_is_integer(v) && rn(2))
        r = json_real((double)json_integer_value(v));
    else if (json_is_real(v) && rn(2))
        r = json_integer((json_int_t)json_real_value(v) / 2);
    else
        r = rand_value(2);
    json_decref(v);
    return r;
}

static void *nth_iter(json_t *obj, size_t n)
{
    void *it = json_object_iter(obj);
    while (n-- > 0)
        it = json_object_iter_next(obj, it);
    return it;
}

static json_t *mutate(json_t *v);

static void mutate_object(json_t *o)
{
    size_t n = json_object_size(o);
    const struct bytes *k = &KEYS[rn(NKEYS)];
    void *it = n ? nth_iter(o, rn(n)) : NULL;
    size_t action = it ? rn(5) : 0;
    if (action == 0) { /* add or overwrite */
        json_object_setn_new(o, k->s, k->len, rand_value(3));
        return;
    }
    const char *key = json_object_iter_key(it);
    size_t klen = json_object_iter_key_len(it);
    json_t *child = json_incref(json_object_iter_value(it));
    if (action == 1) { /* delete */
        json_object_deln(o, key, klen);
    } else if (action == 2) { /* move to the end: an order-only change */
        char kbuf[64];
        memcpy(kbuf, key, klen);
        json_object_deln(o, kbuf, klen);
        json_object_setn(o, kbuf, klen, child);
    } else { /* edit inside */
        json_object_setn_new(o, key, klen, mutate(json_incref(child)));
    }
    json_decref(child);
}

static void mutate_array(json_t *a)
{
    size_t n = json_array_size(a);
    size_t i = rn(n), j = rn(n);
    switch (n ? rn(6) : 0) {
    case 0:
        json_array_insert_new(a, rn(n + 1), rand_value(3));
        break;
    case 1:
        json_array_remove(a, i);
        break;
    case 2: { /* swap */
        json_t *x = json_incref(json_array_get(a, i));
        json_array_set(a, i, json_array_get(a, j));
        json_array_set_new(a, j, x);
        break;
    }
    case 3: /* duplicate an element */
        json_array_insert_new(a, j, json_deep_copy(json_array_get(a, i)));
        break;
    default:
        json_array_set_new(a, i, mutate(json_incref(json_array_get(a, i))));
        break;
    }
}

/* One random edit somewhere in v (reference taken); returns the result. */
static json_t *mutate(json_t *v)
{
    if (rn(12) == 0)
        return json_decref(v), rand_value(3);
    if (json_is_object(v))
        mutate_object(v);
    else if (json_is_array(v))
        mutate_array(v);
    else
        v = tweak_scalar(v);
    return v;
}

/* A fresh document, mostly record-like (an object at the root). */
static json_t *rand_doc(void)
{
    return rn(5) ? rand_object(4) : rand_value(4);
}

/* A copy of `old` with 1..6 random edits. */
static json_t *mutated_copy(const json_t *old)
{
    json_t *v = json_deep_copy(old);
    for (size_t k = rn(6) + 1; k > 0; k--)
        v = mutate(v);
    return v;
}

/* ------------------------------------------------------------------------ */
/* Property tests                                                           */
/* ------------------------------------------------------------------------ */

static void reseed(unsigned property)
{
    rng = seed ^ ((uint64_t)property * 0xd1342543de82ef95u);
}

static bool report(bool good, unsigned property, size_t iter)
{
    if (!good)
        diag("failed at seed %llu, property %u, iteration %zu (DIFF_TEST_SEED=%llu)",
             (unsigned long long)seed, property, iter, (unsigned long long)seed);
    return good;
}

static bool p_roundtrip_mutations(void)
{
    reseed(1);
    for (size_t i = 0; i < 3000; i++) {
        json_t *old = rand_doc(), *new = mutated_copy(old);
        bool good = roundtrip(old, new);
        json_decref(old);
        json_decref(new);
        if (!report(good, 1, i))
            return false;
    }
    return true;
}

static bool p_roundtrip_unrelated(void)
{
    reseed(2);
    for (size_t i = 0; i < 1500; i++) {
        json_t *old = rand_doc(), *new = rand_doc();
        bool good = roundtrip(old, new) && roundtrip(new, old);
        json_decref(old);
        json_decref(new);
        if (!report(good, 2, i))
            return false;
    }
    return true;
}

static bool p_roundtrip_from_null(void)
{
    reseed(3);
    for (size_t i = 0; i < 300; i++) {
        json_t *new = rand_doc();
        bool good = roundtrip(NULL, new);
        json_decref(new);
        if (!report(good, 3, i))
            return false;
    }
    return true;
}

static bool empty_array(json_t *v)
{
    bool good = v && json_is_array(v) && json_array_size(v) == 0;
    json_decref(v);
    return good;
}

/* Same content (even with a different key order) gives no change at all. */
static bool p_equal_is_empty(void)
{
    static const char *const keys[] = {"id", "a", "b", "", "~", "/", "a/b", NULL};
    reseed(4);
    for (size_t i = 0; i < 1000; i++) {
        json_t *a = rand_doc(), *b = json_deep_copy(a);
        bool good = empty_array(diff_patch(a, b)) && empty_array(diff_patch(a, a)) &&
                    empty_array(diff_nested(a, b, keys));
        json_decref(a);
        json_decref(b);
        if (!report(good, 4, i))
            return false;
    }
    return true;
}

/* The patch survives serialisation (paths are valid JSON strings). */
static bool p_serialized_patch(void)
{
    reseed(5);
    for (size_t i = 0; i < 1000; i++) {
        json_t *old = rand_doc(), *new = mutated_copy(old);
        json_t *patch = diff_patch(old, new);
        char *text = json_dumps(patch, JSON_COMPACT);
        json_t *back = text ? json_loads(text, JSON_ALLOW_NUL, NULL) : NULL;
        json_t *doc = json_deep_copy(old);
        bool good = back && jpatch_apply(&doc, back) == 0 && json_equal(doc, new);
        free(text);
        json_decref(old);
        json_decref(new);
        json_decref(patch);
        json_decref(back);
        json_decref(doc);
        if (!report(good, 5, i))
            return false;
    }
    return true;
}

/* RFC 6901 escaping of a key, for checking diff_nested's output. */
static size_t escape_key(const char *key, char *out, size_t cap)
{
    size_t w = 0;
    out[w++] = '/';
    for (size_t i = 0; key[i] && w + 2 < cap; i++) {
        if (key[i] == '~' || key[i] == '/') {
            out[w++] = '~';
            out[w++] = key[i] == '~' ? '0' : '1';
        } else {
            out[w++] = key[i];
        }
    }
    return w;
}

static const json_t *nonnull(const json_t *v)
{
    return json_is_null(v) ? NULL : v;
}

/*
 * diff_nested agrees with the data, per key: entries appear only when the
 * value under the key differs; every entry is "/K" or "/K/<i>" with i a
 * valid index in new; a differing non-array value gives exactly "/K".
 */
static bool nested_consistent(const json_t *old, const json_t *new,
                              const char *const *keys, const json_t *got)
{
    size_t g = 0;
    for (size_t k = 0; keys[k]; k++) {
        char pfx[64];
        size_t plen = escape_key(keys[k], pfx, sizeof pfx);
        const json_t *o = nonnull(json_object_get(old, keys[k]));
        const json_t *n = nonnull(json_object_get(new, keys[k]));
        size_t first = g;
        for (; g < json_array_size(got); g++) {
            const json_t *e = json_array_get(got, g);
            const char *s = json_string_value(e);
            size_t len = json_string_length(e);
            /* Entries of this key are "/K" or "/K/..." */
            if (!s || len < plen || memcmp(s, pfx, plen) != 0 ||
                (len > plen && s[plen] != '/'))
                break;
            if (len == plen)
                continue;
            char *end;
            long idx = strtol(s + plen + 1, &end, 10);
            if (end != s + len || idx < 0 || (size_t)idx >= json_array_size(n))
                return false;
        }
        bool same = (!o && !n) || (o && n && json_equal(o, n));
        bool arrays = (!o || json_is_array(o)) && (!n || json_is_array(n));
        if (same && g != first)
            return false;
        if (!same && !arrays && g != first + 1)
            return false;
    }
    return g == json_array_size(got);
}

/* Record-shaped mutations: the example employee, edited at random. */
static bool p_employee_mutations(void)
{
    static const char *const keys[] = {
        "employments", "time_off_balances", "manager", "groups", "teams",
        "legal_entity", "work_location", "id", "a", "b", "~", "/", "a/b", NULL,
    };
    reseed(6);
    json_t *base = J(EMPLOYEE);
    for (size_t i = 0; i < 1500; i++) {
        json_t *old = mutated_copy(base), *new = mutated_copy(old);
        json_t *nested = diff_nested(old, new, keys);
        bool good = roundtrip(old, new) && nested &&
                    nested_consistent(old, new, keys, nested);
        if (!good)
            show("nested", nested);
        json_decref(old);
        json_decref(new);
        json_decref(nested);
        if (!report(good, 6, i)) {
            json_decref(base);
            return false;
        }
    }
    json_decref(base);
    return true;
}

/* Random nested-array edits: shuffles keep nested empty, edits show up. */
static bool p_nested_shuffle(void)
{
    static const char *const keys[] = {"groups", NULL};
    reseed(7);
    for (size_t i = 0; i < 500; i++) {
        json_t *old = json_pack("{s:[]}", "groups");
        json_t *arr = json_object_get(old, "groups");
        size_t n = rn(6) + 1;
        for (size_t j = 0; j < n; j++)
            json_array_append_new(arr, json_pack("{s:I,s:o}", "id", (json_int_t)j, "v", rand_value(1)));
        /* ids as strings, so elements match by id */
        for (size_t j = 0; j < n; j++) {
            char id[24];
            snprintf(id, sizeof id, "g%zu", j);
            json_object_set_new(json_array_get(arr, j), "id", json_string(id));
        }
        json_t *new = json_deep_copy(old);
        json_t *narr = json_object_get(new, "groups");
        for (size_t s = n; s > 1; s--) { /* Fisher-Yates */
            size_t r = rn(s);
            json_t *x = json_incref(json_array_get(narr, s - 1));
            json_array_set(narr, s - 1, json_array_get(narr, r));
            json_array_set_new(narr, r, x);
        }
        bool good = empty_array(diff_nested(old, new, keys)) && roundtrip(old, new);
        /* Now edit one element: exactly its new index is reported. */
        size_t e = rn(n);
        json_object_set_new(json_array_get(narr, e), "v", json_string("edited\xe2\x9c\x93"));
        char want[32];
        snprintf(want, sizeof want, "[\"/groups/%zu\"]", e);
        json_t *expect = J(want), *got = diff_nested(old, new, keys);
        good = good && json_equal(expect, got) && roundtrip(old, new);
        json_decref(expect);
        json_decref(got);
        json_decref(old);
        json_decref(new);
        if (!report(good, 7, i))
            return false;
    }
    return true;
}

/* ------------------------------------------------------------------------ */

struct test {
    const char *name;
    bool (*fn)(void);
};

static const struct test TESTS[] = {
    {"patch: equal scalars give an empty patch", t_equal_scalars},
    {"patch: equal documents give an empty patch", t_equal_documents},
    {"patch: root scalar/type change is a replace at \"\"", t_root_scalar_replace},
    {"patch: object members replaced, removed, added", t_object_member_changes},
    {"patch: nested objects give deep paths", t_nested_objects},
    {"patch: growing arrays", t_array_grow},
    {"patch: shrinking arrays remove from the end backwards", t_array_shrink},
    {"patch: single insert/remove in the middle is one op", t_array_insert_remove_middle},
    {"patch: edited array element recurses", t_array_element_edit},
    {"patch: keys escaped with ~0 and ~1", t_escaped_keys},
    {"patch: unicode keys, NUL bytes in strings", t_unicode_and_nul},
    {"patch: null <-> object <-> array are replaces", t_null_object},
    {"patch: int <-> real is a replace keeping the type", t_int_real},
    {"patch: old NULL is one add at \"\"", t_old_null},
    {"patch: new NULL is empty", t_new_null},
    {"patch+nested: SPEC example, employments[0].job_title", t_employee_example},
    {"patch+nested: arguments borrowed, results owned", t_ownership},
    {"apply: RFC 6902 appendix examples", t_apply_rfc_examples},
    {"apply: root, copy, move, append and no-op cases", t_apply_root_and_misc},
    {"apply: test compares numbers by value", t_apply_test_numbers},
    {"apply: bad pointers fail", t_apply_bad_pointer},
    {"apply: missing targets fail", t_apply_missing_targets},
    {"apply: array index out of range fails", t_apply_index_out_of_range},
    {"apply: failing test op fails the patch", t_apply_test_fails},
    {"apply: malformed patches fail", t_apply_malformed},
    {"nested: nothing embedded changed", t_nested_unchanged},
    {"nested: changed/added employment", t_nested_employment_changed},
    {"nested: group added/removed", t_nested_group_added_removed},
    {"nested: manager changed/appeared/vanished", t_nested_manager_changed},
    {"nested: work_location changed_at moved", t_nested_work_location},
    {"nested: order-only changes do not count", t_nested_order_only},
    {"nested: output in key then index order", t_nested_order_and_many_keys},
    {"nested: positional matching and edge cases", t_nested_positional_and_edge},
    {"nested: NULL key list gives empty array", t_nested_null_keys},
    {"all: allocation failures reported, nothing leaked", t_alloc_failures},
    {"random: apply(old, diff(old, mutated old)) == new", p_roundtrip_mutations},
    {"random: round trip between unrelated documents", p_roundtrip_unrelated},
    {"random: round trip from NULL", p_roundtrip_from_null},
    {"random: equal content gives empty patch and nested", p_equal_is_empty},
    {"random: serialised patches apply the same", p_serialized_patch},
    {"random: employee mutations round trip, nested consistent", p_employee_mutations},
    {"random: shuffled id arrays are not nested changes", p_nested_shuffle},
};

static uint64_t pick_seed(void)
{
    const char *env = getenv("DIFF_TEST_SEED");
    if (env && *env) {
        char *end;
        unsigned long long v = strtoull(env, &end, 10);
        if (*end == '\0')
            return v;
    }
    return (uint64_t)time(NULL) ^ ((uint64_t)clock() << 32);
}

int main(void)
{
    size_t n = sizeof TESTS / sizeof TESTS[0];
    seed = pick_seed();
    TAP_PLAN((int)n);
    diag("random seed %llu (set DIFF_TEST_SEED to reproduce)", (unsigned long long)seed);
    for (size_t i = 0; i < n; i++)
        ok(TESTS[i].fn(), "%s", TESTS[i].name);
    return tap_done();
}
