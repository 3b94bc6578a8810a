/*
 * test_entry.c — the "created" entry (entry.h): what entry_render_created
 * returns, spliced with its record, is exactly entry_render of the entry that
 * holds the record; for every id (escapes, non-ASCII bytes), seq, sync and
 * direct value, and where the entry takes the generic path (nested changes,
 * an id with white space around it, a number) or fails (an id that is no JSON).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "entry.h"
#include "jtext.h"
#include "tap.h"

static const char record[] = "{\"id\":\"x\",\"n\":[1,{\"a\":null}],\"e\":{}}";

/* entry_render of e holding the record, against entry_render_created + splice. */
static int same_as_generic(const struct entry *base, int64_t seq, const char *what)
{
    struct buf patch = BUF_INIT, pretty = BUF_INIT, spliced = BUF_INIT;
    buf_adds(&patch, "[{\"op\":\"add\",\"path\":\"\",\"value\":");
    buf_adds(&patch, record);
    buf_adds(&patch, "}]");
    struct entry e = *base;
    e.patch = patch.data;
    e.patch_len = patch.len;
    char *want = entry_render(&e, seq);
    size_t split = 0;
    char *got = entry_render_created(base, seq, &split);
    int good = want && got && split <= strlen(got) &&
               jtext_pretty(record, strlen(record), &pretty) == 0;
    if (good) {
        entry_splice(got, strlen(got), split, pretty.data, pretty.len, &spliced);
        good = spliced.len == strlen(want) && memcmp(spliced.data, want, spliced.len) == 0 &&
               entry_splice_size(got, strlen(got), split, pretty.data, pretty.len) == spliced.len;
    }
    if (!good)
        diag("%s:\nwant %s\ngot  %.*s", what, want ? want : "(null)", (int)spliced.len,
             spliced.data ? spliced.data : "");
    free(want);
    free(got);
    buf_free(&patch);
    buf_free(&pretty);
    buf_free(&spliced);
    return good;
}

int main(void)
{
    static const char *const ids[] = {
        "\"26vaYRUbfWGSbhfaAuuXEQTN\"",
        "\"a\\\"b\\\\c\\/d\"",
        "\"\\u00e9t\\u00E9 \\n\\t\"",
        "\"caf\xc3\xa9 \xe2\x82\xac\"",
        "\"\"",
        "\"{[,:]}\"",
    };
    static const int64_t seqs[] = { 1, 9, 10, 42, 999999999999, 1000000000000, INT64_MAX };
    int all = 1;
    for (size_t i = 0; i < sizeof ids / sizeof *ids; i++)
        for (size_t k = 0; k < sizeof seqs / sizeof *seqs; k++)
            for (int full = 0; full < 2; full++)
                for (int direct = 0; direct < 2; direct++) {
                    struct entry e = { .at_ns = 1795773600123000000LL + (int64_t)k,
                                       .model = "employees", .id_json = ids[i],
                                       .id_len = strlen(ids[i]), .op = "created",
                                       .full = full, .direct = direct, .nested = "[]" };
                    char what[64];
                    snprintf(what, sizeof what, "id %zu seq %zu full %d direct %d", i, k, full,
                             direct);
                    all &= same_as_generic(&e, seqs[k], what);
                }
    ok(all, "every id, seq, sync and direct: the same bytes as the generic render");

    struct entry e = { .at_ns = 0, .model = "time_off", .id_json = "\"7\"", .id_len = 3,
                       .op = "created", .full = 1, .direct = 1, .nested = "[]" };
    ok(same_as_generic(&e, 1, "time_off at 0"), "a model with '_', the epoch");
    e.nested = "[{\"path\":\"/employments\",\"op\":\"add\"}]";
    ok(same_as_generic(&e, 2, "nested"), "nested changes (the generic path)");
    e.nested = "[]";
    e.id_json = " \"7\" ";
    e.id_len = 5;
    ok(same_as_generic(&e, 3, "white space"), "an id with white space around it");

    e.id_json = "7";
    e.id_len = 1;
    ok(same_as_generic(&e, 4, "number"), "an id that is a number (the generic path)");

    size_t split = 0;
    char *t;
    e.id_json = "\"a\"b\"";
    e.id_len = 5;
    t = entry_render_created(&e, 5, &split);
    ok(t == NULL, "an id that is no JSON: no entry");
    free(t);
    e.id_json = "\"a\x01\"";
    e.id_len = 4;
    t = entry_render_created(&e, 6, &split);
    ok(t == NULL, "an id with a control byte: no entry");
    free(t);
    return tap_done_testing();
}
