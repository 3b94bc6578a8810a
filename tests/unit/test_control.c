#include <string.h>

#include "control.h"
#include "models.h"
#include "tap.h"

static int parse(const char *s, enum sync_kind *k, unsigned *m)
{
    return control_parse(s, strlen(s), k, m);
}

int main(void)
{
    enum sync_kind k;
    unsigned m;
    ok(parse("sync", &k, &m) == 0 && k == SYNC_DELTA && m == MODELS_ALL, "sync");
    ok(parse("sync\n", &k, &m) == 0 && k == SYNC_DELTA, "trailing newline");
    ok(parse("resync\r\n", &k, &m) == 0 && k == SYNC_FULL && m == MODELS_ALL, "CRLF");
    ok(parse("sync employees\n", &k, &m) == 0 && m == 1u << models_by_dir("employees")->index,
       "sync <dir>");
    ok(parse("resync time-off-balances", &k, &m) == 0 && k == SYNC_FULL &&
       m == 1u << models_by_dir("time-off-balances")->index, "resync <dir>");
    ok(parse("", &k, &m) < 0, "empty");
    ok(parse("\n", &k, &m) < 0, "only a newline");
    ok(parse("sync\n\n", &k, &m) < 0, "two newlines");
    ok(parse("SYNC", &k, &m) < 0, "case matters");
    ok(parse("sync nothing", &k, &m) < 0, "unknown directory");
    ok(parse("sync employees extra", &k, &m) < 0, "extra words");
    ok(parse("sync  employees", &k, &m) < 0, "double space");
    ok(parse("sync changes", &k, &m) < 0, "changes/ is not an endpoint");
    ok(control_parse("sync\0x", 6, &k, &m) < 0, "embedded NUL");
    char big[200];
    memset(big, 'a', sizeof big);
    ok(control_parse(big, sizeof big, &k, &m) < 0, "long garbage");
    return tap_done_testing();
}
