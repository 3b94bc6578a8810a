/*
 * clock.h — wall-clock time as kombofs writes it: nanoseconds since the epoch,
 * and Kombo's ISO-8601 form "2026-11-27T10:00:00.123Z" (UTC, milliseconds).
 * No allocation: callers pass buffers of CLOCK_ISO_LEN bytes or more.
 */
#ifndef KOMBOFS_CLOCK_H
#define KOMBOFS_CLOCK_H

#include <stddef.h>
#include <stdint.h>

#define CLOCK_ISO_LEN 32

int64_t clock_now_ns(void);

/* ns -> "YYYY-MM-DDTHH:MM:SS.mmmZ" into out. */
void clock_format(int64_t ns, char *out, size_t n);

/* "YYYY-MM-DDTHH:MM:SS[.fff...]Z" -> ns; -1 if malformed. */
int64_t clock_parse(const char *s);

#endif
