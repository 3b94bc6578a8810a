#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static int use_syslog;
static int debug_on;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void log_init(int debug)
{
    debug_on = debug;
    use_syslog = 0;
}

void log_to_syslog(void)
{
    openlog("kombofs", LOG_PID | LOG_NDELAY, LOG_DAEMON);
    use_syslog = 1;
}

int log_debug_enabled(void)
{
    return debug_on;
}

static void vlog(int pri, const char *label, int with_errno, const char *fmt,
                 va_list ap)
{
    char msg[2048];
    int saved = errno;
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (with_errno) {
        size_t n = strlen(msg);
        snprintf(msg + n, sizeof msg - n, ": %s", strerror(saved));
    }
    if (use_syslog) {
        syslog(pri, "%s%s", label, msg);
    } else {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        localtime_r(&ts.tv_sec, &tm);
        pthread_mutex_lock(&log_lock);
        fprintf(stderr, "%02d:%02d:%02d.%03ld kombofs: %s%s\n", tm.tm_hour,
                tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, label, msg);
        pthread_mutex_unlock(&log_lock);
    }
    errno = saved;
}

#define LOGFN(name, pri, label, with_errno)                                    \
    void name(const char *fmt, ...)                                            \
    {                                                                          \
        va_list ap;                                                            \
        va_start(ap, fmt);                                                     \
        vlog(pri, label, with_errno, fmt, ap);                                 \
        va_end(ap);                                                            \
    }

LOGFN(log_info, LOG_INFO, "", 0)
LOGFN(log_warn, LOG_WARNING, "warning: ", 1)
LOGFN(log_warnx, LOG_WARNING, "warning: ", 0)

void log_debug(const char *fmt, ...)
{
    if (!debug_on)
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(LOG_DEBUG, "debug: ", 0, fmt, ap);
    va_end(ap);
}

void fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(LOG_CRIT, "fatal: ", 1, fmt, ap);
    va_end(ap);
    exit(1);
}

void fatalx(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(LOG_CRIT, "fatal: ", 0, fmt, ap);
    va_end(ap);
    exit(1);
}

void log_sd_notify(const char *msg)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    size_t n = path ? strlen(path) : 0;
    if (!n || (path[0] != '/' && path[0] != '@') || n >= sizeof sa.sun_path)
        return;
    memcpy(sa.sun_path, path, n);
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0';    /* an abstract socket */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa, len) < 0)
        log_debug("sd_notify: %s", strerror(errno));
    close(fd);
}

void log_status(const char *fmt, ...)
{
    char msg[512] = "STATUS=";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + 7, sizeof msg - 7, fmt, ap);
    va_end(ap);
    log_sd_notify(msg);
}
