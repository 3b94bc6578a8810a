#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "sdnotify.h"

static int use_syslog;
static int use_journal;
static int max_level = LOG_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

/* JOURNAL_STREAM is "DEVICE:INODE" of the stream systemd connected to the
 * service's stderr; it is inherited by children whose stderr may be
 * something else, so it counts only when it names our stderr (systemd.exec(5)). */
static int stderr_is_journal(void)
{
    const char *v = getenv("JOURNAL_STREAM");
    struct stat st;
    char *end;
    if (!v || *v < '0' || *v > '9' || fstat(STDERR_FILENO, &st) < 0)
        return 0;
    errno = 0;
    unsigned long long dev = strtoull(v, &end, 10);
    if (errno || *end != ':' || end[1] < '0' || end[1] > '9')
        return 0;
    unsigned long long ino = strtoull(end + 1, &end, 10);
    if (errno || *end)
        return 0;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_init(int level)
{
    if (level < LOG_ERR)
        level = LOG_ERR;
    if (level > LOG_DEBUG)
        level = LOG_DEBUG;
    max_level = level;
    use_syslog = 0;
    use_journal = stderr_is_journal();
}

void log_to_syslog(void)
{
    openlog("kombofs", LOG_PID | LOG_NDELAY, LOG_DAEMON);
    setlogmask(LOG_UPTO(max_level));
    use_syslog = 1;
    use_journal = 0;
}

int log_debug_enabled(void)
{
    return max_level >= LOG_DEBUG;
}

int log_to_journal(void)
{
    return use_journal;
}

static const char *label_of(int pri)
{
    switch (pri) {
    case LOG_EMERG: case LOG_ALERT: case LOG_CRIT: return "fatal: ";
    case LOG_ERR: return "error: ";
    case LOG_WARNING: return "warning: ";
    case LOG_DEBUG: return "debug: ";
    default: return "";
    }
}

static void vlog(int pri, int with_errno, const char *fmt, va_list ap)
{
    char msg[2048];
    int saved = errno;
    if (pri > max_level)
        return;
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (with_errno) {
        size_t n = strlen(msg);
        snprintf(msg + n, sizeof msg - n, ": %s", strerror(saved));
    }
    const char *label = label_of(pri);
    if (use_syslog) {
        syslog(pri, "%s%s", label, msg);
    } else if (use_journal) {
        pthread_mutex_lock(&log_lock);
        fprintf(stderr, "<%d>%s%s\n", pri, label, msg);
        pthread_mutex_unlock(&log_lock);
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

void log_vmsg(int pri, const char *fmt, va_list ap)
{
    vlog(pri < LOG_EMERG ? LOG_EMERG : pri > LOG_DEBUG ? LOG_DEBUG : pri, 0, fmt, ap);
}

void log_usage_error(const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&log_lock);
    if (use_journal)
        fprintf(stderr, "<%d>kombofs: %s\n", LOG_ERR, msg);
    else
        fprintf(stderr, "kombofs: %s\n", msg);
    pthread_mutex_unlock(&log_lock);
}

#define LOGFN(name, pri, with_errno)                                           \
    void name(const char *fmt, ...)                                            \
    {                                                                          \
        va_list ap;                                                            \
        va_start(ap, fmt);                                                     \
        vlog(pri, with_errno, fmt, ap);                                        \
        va_end(ap);                                                            \
    }

LOGFN(log_err, LOG_ERR, 1)
LOGFN(log_errx, LOG_ERR, 0)
LOGFN(log_warn, LOG_WARNING, 1)
LOGFN(log_warnx, LOG_WARNING, 0)
LOGFN(log_notice, LOG_NOTICE, 0)
LOGFN(log_info, LOG_INFO, 0)
LOGFN(log_debug, LOG_DEBUG, 0)

void fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(LOG_CRIT, 1, fmt, ap);
    va_end(ap);
    exit(1);
}

void fatalx(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(LOG_CRIT, 0, fmt, ap);
    va_end(ap);
    exit(1);
}

void log_sd_notify(const char *msg)
{
    if (sdnotify_send(msg) < 0 && errno && getenv("NOTIFY_SOCKET"))
        log_debug("sd_notify: %s", strerror(errno));
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
