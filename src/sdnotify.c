#include "sdnotify.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static atomic_ullong extend_usec;   /* 0: not extending */

static int send_raw(const char *msg)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    size_t n = path ? strlen(path) : 0;
    if (!n || (path[0] != '/' && path[0] != '@') || n >= sizeof sa.sun_path)
        return -1;
    memcpy(sa.sun_path, path, n);
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0';    /* an abstract socket: no terminating NUL counted */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    ssize_t rc = sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa, len);
    int e = errno;
    close(fd);
    errno = e;
    return rc < 0 ? -1 : 0;
}

int sdnotify_send(const char *msg)
{
    unsigned long long ext = atomic_load(&extend_usec);
    if (!ext || strncmp(msg, "STATUS=", 7) != 0)
        return send_raw(msg);
    size_t n = strlen(msg);
    char *both = malloc(n + 48);
    if (!both)
        return send_raw(msg);
    snprintf(both, n + 48, "%s\nEXTEND_TIMEOUT_USEC=%llu", msg, ext);
    int rc = send_raw(both);
    free(both);
    return rc;
}

void sdnotify_extend_begin(unsigned long long usec)
{
    char msg[48];
    atomic_store(&extend_usec, usec);
    snprintf(msg, sizeof msg, "EXTEND_TIMEOUT_USEC=%llu", usec);
    send_raw(msg);
}

void sdnotify_extend_end(void)
{
    atomic_store(&extend_usec, 0);
}

/* A decimal number in an environment variable; 0 if unset or not one. */
static unsigned long long env_number(const char *var)
{
    const char *v = getenv(var);
    char *end;
    if (!v || *v < '0' || *v > '9')
        return 0;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    return errno || *end ? 0 : n;
}

unsigned long long sdnotify_watchdog_usec(void)
{
    const char *pid = getenv("WATCHDOG_PID");
    if (pid && *pid && env_number("WATCHDOG_PID") != (unsigned long long)getpid())
        return 0;
    return env_number("WATCHDOG_USEC");
}

static pthread_t wd_thread;
static int wd_running;
static pthread_mutex_t wd_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wd_cond;
static int wd_stop;
static int (*wd_healthy)(void *);
static void *wd_ctx;
static unsigned long long wd_period_ns;

static void *watchdog(void *arg)
{
    (void)arg;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    pthread_mutex_lock(&wd_lock);
    while (!wd_stop) {
        pthread_mutex_unlock(&wd_lock);
        if (!wd_healthy || wd_healthy(wd_ctx))
            send_raw("WATCHDOG=1");
        pthread_mutex_lock(&wd_lock);
        unsigned long long ns = (unsigned long long)next.tv_nsec + wd_period_ns;
        next.tv_sec += (time_t)(ns / 1000000000ull);
        next.tv_nsec = (long)(ns % 1000000000ull);
        while (!wd_stop && pthread_cond_timedwait(&wd_cond, &wd_lock, &next) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&wd_lock);
    return NULL;
}

int sdnotify_watchdog_start(int (*healthy)(void *ctx), void *ctx)
{
    unsigned long long usec = sdnotify_watchdog_usec();
    const char *sock = getenv("NOTIFY_SOCKET");
    if (!usec || !sock || !*sock || wd_running)
        return 0;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&wd_cond, &ca);
    pthread_condattr_destroy(&ca);
    wd_healthy = healthy;
    wd_ctx = ctx;
    wd_stop = 0;
    wd_period_ns = usec * 1000ull / 2;
    if (wd_period_ns < 1000000ull)
        wd_period_ns = 1000000ull;
    if (pthread_create(&wd_thread, NULL, watchdog, NULL) != 0) {
        pthread_cond_destroy(&wd_cond);
        return -1;
    }
    wd_running = 1;
    return 1;
}

void sdnotify_watchdog_stop(void)
{
    if (!wd_running)
        return;
    pthread_mutex_lock(&wd_lock);
    wd_stop = 1;
    pthread_cond_signal(&wd_cond);
    pthread_mutex_unlock(&wd_lock);
    pthread_join(wd_thread, NULL);
    pthread_cond_destroy(&wd_cond);
    wd_running = 0;
}
