#include <string.h>

#include "clock.h"
#include "tap.h"

int main(void)
{
    char buf[CLOCK_ISO_LEN];
    clock_format(1795773600123000000LL, buf, sizeof buf);
    ok(strcmp(buf, "2026-11-27T10:00:00.123Z") == 0, "format: %s", buf);
    ok(clock_parse("2026-11-27T10:00:00.123Z") == 1795773600123000000LL, "parse");
    ok(clock_parse("2026-11-27T10:00:00Z") == 1795773600000000000LL, "no fraction");
    ok(clock_parse("2026-11-27T10:00:00.1Z") == 1795773600100000000LL, "one digit");
    ok(clock_parse("2026-11-27T10:00:00.123456Z") == 1795773600123000000LL, "microseconds");
    ok(clock_parse(NULL) == -1 && clock_parse("") == -1 && clock_parse("yesterday") == -1 &&
       clock_parse("2026-11-27T10:00:00.123") == -1 && clock_parse("2026-11-27T10:00:00Zx") == -1,
       "malformed");
    int64_t now = clock_now_ns();
    clock_format(now, buf, sizeof buf);
    ok(clock_parse(buf) / 1000000 == now / 1000000, "round trip at millisecond precision");
    return tap_done_testing();
}
