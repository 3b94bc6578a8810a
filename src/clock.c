#include "clock.h"

#include <stdio.h>
#include <time.h>

int64_t clock_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void clock_format(int64_t ns, char *out, size_t n)
{
    time_t sec = (time_t)(ns / 1000000000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(ns % 1000000000 / 1000000));
}

int64_t clock_parse(const char *s)
{
    struct tm tm = { 0 };
    int ms = 0;
    const char *rest = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (!rest)
        return -1;
    if (*rest == '.') {
        int digits = 0;
        for (rest++; *rest >= '0' && *rest <= '9'; rest++)
            if (digits++ < 3)
                ms = ms * 10 + (*rest - '0');
        while (digits++ < 3)
            ms *= 10;
    }
    if (*rest != 'Z' || rest[1])
        return -1;
    return (int64_t)timegm(&tm) * 1000000000 + (int64_t)ms * 1000000;
}
