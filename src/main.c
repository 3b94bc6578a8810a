/*
 * main.c — start-up order, daemonising, signals and shutdown (SPEC §1).
 *
 *   kombofs personio:Q4vX8kLm2PzR7tYb3NcW9sHd /srv/hr --api-key-file=/etc/kombofs/key -f
 *
 * Order: options (exit 2 on anything wrong, before anything is mounted) →
 * [fork: the parent waits until the child is mounted or failed] → cache →
 * FUSE session → initial full fetch if the cache has no snapshot → mount →
 * notifier and sync worker → request loop → clean shutdown.
 *
 * The FUSE options are tried on a throw-away session (fuse_session_new, no
 * mount) right after the options, so that `-o bogus` fails before a cache
 * or directory is created. libfuse's messages go through log.c
 * (fuse_set_log_func). Under systemd: READY=1 once mounted, WATCHDOG=1 from
 * a thread of sdnotify.c, EXTEND_TIMEOUT_USEC during a first fetch.
 */
#define FUSE_USE_VERSION 312     /* fuse_loop_cfg_* (libfuse 3.12) */
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <sqlite3.h>

#include "clock.h"
#include "fs.h"
#include "kombo.h"
#include "log.h"
#include "models.h"
#include "notify.h"
#include "options.h"
#include "pack.h"
#include "sdnotify.h"
#include "store.h"
#include "sync.h"
#include "version.h"
#include "mset.h"
#include "webhook.h"
#include "wevent.h"

#define EXIT_USAGE 2

/* How long systemd's start-up timeout is extended past each sign of progress
 * of a first fetch (fetch.c reports every 5 s; a 429 may ask to wait minutes). */
#define EXTEND_USEC (5ull * 60 * 1000000)

/* The write end of the pipe the waiting parent reads; -1 in the foreground. */
static int ready_fd = -1;

/* Tell the parent (background) how start-up ended; it exits with `status`. */
static void report_ready(int status)
{
    if (ready_fd < 0)
        return;
    unsigned char b = (unsigned char)status;
    ssize_t n = write(ready_fd, &b, 1);
    (void)n;
    close(ready_fd);
    ready_fd = -1;
    if (status == 0) {
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, STDIN_FILENO);
            dup2(null, STDOUT_FILENO);
            dup2(null, STDERR_FILENO);
            if (null > 2)
                close(null);
        }
        log_to_syslog();
    }
}

/* Fork; the parent waits for the child's start-up status and exits with it. */
static int daemonize(void)
{
    int fds[2];
    if (pipe(fds) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0) {
        unsigned char b = 1;
        close(fds[1]);
        ssize_t n;
        do
            n = read(fds[0], &b, 1);
        while (n < 0 && errno == EINTR);
        _exit(n == 1 ? b : 1);
    }
    close(fds[0]);
    ready_fd = fds[1];
    setsid();
    if (chdir("/") < 0)
        return -1;
    return 0;
}

static int mkdir_parent(const char *path)
{
    char *dir = strdup(path);
    char *slash = strrchr(dir, '/');
    int rc = 0;
    if (slash && slash != dir) {
        *slash = '\0';
        struct stat st;
        if (stat(dir, &st) < 0) {
            for (char *p = dir + 1; *p; p++) {
                if (*p != '/')
                    continue;
                *p = '\0';
                if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                    rc = -1;
                *p = '/';
            }
            if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                rc = -1;
        }
    }
    free(dir);
    return rc;
}

/* SIGTERM/SIGINT/SIGHUP: libfuse's handler ends the request loop; ours also
 * cancels a fetch in progress (its retries and back-off waits), so a stop
 * during the initial fetch is prompt. Only async-signal-safe calls here. */
static struct sync *signal_sync;
static struct mset *signal_mset;
static struct sigaction fuse_handlers[3];
static const int stop_signals[3] = { SIGTERM, SIGINT, SIGHUP };

static void on_stop_signal(int sig)
{
    if (signal_sync)
        sync_cancel(signal_sync);
    if (signal_mset)
        mset_cancel(signal_mset);
    for (int i = 0; i < 3; i++)
        if (stop_signals[i] == sig && fuse_handlers[i].sa_handler != SIG_DFL &&
            fuse_handlers[i].sa_handler != SIG_IGN)
            fuse_handlers[i].sa_handler(sig);
}

static void chain_signals(struct sync *s)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    signal_sync = s;
    for (int i = 0; i < 3; i++)
        sigaction(stop_signals[i], &sa, &fuse_handlers[i]);
}

static void unchain_signals(void)
{
    for (int i = 0; i < 3; i++)
        sigaction(stop_signals[i], &fuse_handlers[i], NULL);
    signal_sync = NULL;
}

struct daemon {
    struct options o;
    struct store *st;
    struct kombo *k;
    struct sync *sync;
    struct notify *nt;
    struct fs *fs;              /* the tree, owned by fsset */
    struct fsset *fsset;
    struct fuse_session *se;
    struct store *wh_store;     /* the receiver's own connection */
    struct webhook *wh;
    struct webhook *metrics;    /* --metrics-listen: GET /metrics only */
    struct mset *mset;          /* multi mode */
    int claimed;
    int mounted;
    int handlers;
};

static void stop_reloader(void);

/* The watchdog's health check: the request loop has not ended. */
static _Atomic(struct fuse_session *) health_se;

static int healthy(void *ctx)
{
    (void)ctx;
    struct fuse_session *se = atomic_load(&health_se);
    return !se || !fuse_session_exited(se);
}

static void teardown(struct daemon *d)
{
    sdnotify_watchdog_stop();
    atomic_store(&health_se, NULL);
    fsset_stop(d->fsset);       /* the read-ahead pusher uses the session and the caches */
    webhook_stop(d->wh);
    webhook_stop(d->metrics);
    stop_reloader();
    mset_free(d->mset);         /* stops its engines, closes its caches */
    if (d->sync)
        sync_stop(d->sync);
    if (d->nt)
        notify_stop(d->nt);
    if (d->mounted)
        fuse_session_unmount(d->se);
    if (d->handlers) {
        unchain_signals();
        fuse_remove_signal_handlers(d->se);
    }
    if (d->se)
        fuse_session_destroy(d->se);
    sync_free(d->sync);
    notify_free(d->nt);
    fsset_free(d->fsset);
    kombo_free(d->k);
    store_close(d->wh_store);
    if (d->claimed)
        store_release(d->st);   /* a clean stop: the next start skips the check */
    store_close(d->st);
    options_free(&d->o);
}

/* Fetch a first complete snapshot of every model that lacks one. */
static int initial_sync(struct daemon *d)
{
    unsigned missing = sync_models_without_snapshot(d->sync);
    if (!missing || d->o.offline)
        return 0;
    sync_set_state(d->sync, "initial-sync");
    log_info("cache %s has no complete snapshot: fetching everything before mounting",
             store_path(d->st));
    sdnotify_extend_begin(EXTEND_USEC);
    int deferred = store_views_defer(d->st);
    int rc = sync_run_now(d->sync, missing, SYNC_FULL);
    if (deferred > 0 && store_views_index(d->st) < 0)
        rc = -1;
    sync_set_state(d->sync, "ready");
    sdnotify_extend_end();
    return rc;
}

static void *webhook_status(void *ctx)
{
    return webhook_status_json(ctx);
}

static int start_webhooks(struct daemon *d)
{
    char err[512];
    d->wh_store = store_open_again(d->o.cache, err, sizeof err);
    if (d->wh_store)
        d->wh = webhook_start(&d->o, d->sync, d->wh_store, err, sizeof err);
    if (!d->wh) {
        log_errx("webhook receiver: %s", err);
        return -1;
    }
    sync_set_status_extra(d->sync, webhook_status, d->wh);
    log_info("webhook receiver listening on %s%s", d->o.webhook_listen, d->o.webhook_path);
    return 0;
}

/* --metrics-listen: GET /metrics on a listener of its own (also beside a
 * receiver: the reverse proxy in front of the receiver forwards only the
 * webhook path, and metrics name customers' integrations). */
static int start_metrics(struct daemon *d)
{
    char err[512];
    if (!d->o.metrics_listen)
        return 0;
    d->metrics = webhook_start_metrics(d->o.metrics_listen, err, sizeof err);
    if (!d->metrics) {
        log_errx("metrics: %s", err);
        return -1;
    }
    log_info("metrics on http://%s/metrics", d->o.metrics_listen);
    return 0;
}

/* Multi mode: SIGHUP reads the integrations file again (libfuse's handler
 * would end the session). The handler only posts a semaphore; a thread of
 * its own runs the reload. */
static sem_t reload_sem;
static pthread_t reload_thread;
static int reload_started;
static atomic_int reload_stop;

static void on_sighup(int sig)
{
    (void)sig;
    sem_post(&reload_sem);
}

static void *reloader(void *arg)
{
    struct mset *m = arg;
    for (;;) {
        while (sem_wait(&reload_sem) < 0 && errno == EINTR)
            ;
        if (atomic_load(&reload_stop))
            return NULL;
        log_info("SIGHUP: reading the integrations file again");
        mset_reload(m);
    }
}

static int start_reloader(struct mset *m)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sighup;
    sigemptyset(&sa.sa_mask);
    if (sem_init(&reload_sem, 0, 0) < 0 || pthread_create(&reload_thread, NULL, reloader, m) != 0)
        return -1;
    reload_started = 1;
    return sigaction(SIGHUP, &sa, NULL);
}

static void stop_reloader(void)
{
    if (!reload_started)
        return;
    signal(SIGHUP, SIG_IGN);
    atomic_store(&reload_stop, 1);
    sem_post(&reload_sem);
    pthread_join(reload_thread, NULL);
    sem_destroy(&reload_sem);
    reload_started = 0;
}

static int loop(struct daemon *d)
{
    int rc;
    if (d->o.single_thread) {
        rc = fuse_session_loop(d->se);
    } else {
        struct fuse_loop_config *cfg = fuse_loop_cfg_create();
        if (!cfg)
            return 1;
        fuse_loop_cfg_set_clone_fd(cfg, 0);
        fuse_loop_cfg_set_max_threads(cfg, (unsigned)d->o.max_threads);
        fuse_loop_cfg_set_idle_threads(cfg, (unsigned)d->o.max_idle_threads);
        rc = fuse_session_loop_mt(d->se, cfg);
        fuse_loop_cfg_destroy(cfg);
    }
    log_sd_notify("STOPPING=1");
    log_info("unmounting %s", d->o.mountpoint);
    return rc == 0 || rc == SIGTERM || rc == SIGINT || rc == SIGHUP ? 0 : 1;
}

/* Multi mode (SPEC §9): the mount appears at once; every integration's first
 * fetch runs in the background and its directory appears when it is done. */
static int run_multi(struct daemon *d)
{
    char err[1024];
    if (!d->o.offline && kombo_global_init() < 0) {
        log_errx("cannot initialise libcurl");
        return 1;
    }
    d->nt = notify_new(d->o.kernel_notify);
    d->fsset = fsset_new(&d->o);
    d->mset = mset_new(&d->o, d->nt, d->fsset, err, sizeof err);
    if (!d->mset) {
        log_errx("%s", err);
        return EXIT_USAGE;
    }
    d->se = fs_session(d->fsset);
    if (!d->se)
        return EXIT_USAGE;
    atomic_store(&health_se, d->se);
    if (fuse_set_signal_handlers(d->se) < 0)
        return 1;
    d->handlers = 1;
    chain_signals(NULL);
    signal_mset = d->mset;
    if (start_reloader(d->mset) < 0)
        return 1;
    if (d->o.webhook_listen) {
        d->wh = webhook_start_routed(&d->o, mset_route, d->mset, err, sizeof err);
        if (!d->wh) {
            log_errx("webhook receiver: %s", err);
            return 1;
        }
        mset_set_webhooks(d->mset, webhook_status, d->wh);
        log_info("webhook receiver listening on %s%s", d->o.webhook_listen, d->o.webhook_path);
    }
    if (start_metrics(d) < 0)
        return 1;
    fsset_mounting(d->fsset, d->o.mountpoint);
    if (fuse_session_mount(d->se, d->o.mountpoint) < 0)
        return 1;
    d->mounted = 1;
    fsset_mounted(d->fsset);
    log_info("mounted %s integrations on %s", d->o.source ? d->o.source : "kombo",
             d->o.mountpoint);
    if (notify_start(d->nt, d->se) < 0 || mset_start(d->mset) < 0)
        return 1;
    report_ready(0);
    sdnotify_extend_end();
    log_sd_notify("READY=1\nSTATUS=mounted, serving the caches");
    return loop(d);
}

static int run(struct daemon *d)
{
    if (d->o.multi)
        return run_multi(d);
    char err[1024];
    if (d->o.cache && mkdir_parent(d->o.cache) < 0)
        log_warn("cannot create the directory of %s", d->o.cache);
    /* A new cache is built by the initial fetch without a journal (store.h);
     * --offline cannot finish a build that was interrupted. */
    if (d->o.offline && store_build_interrupted(d->o.cache)) {
        log_errx("cache %s: its first fetch was interrupted; start without --offline to fetch "
                 "it again", d->o.cache);
        return EXIT_USAGE;
    }
    d->st = d->o.offline ? store_open(d->o.cache, err, sizeof err)
                         : store_open_build(d->o.cache, err, sizeof err);
    if (!d->st) {
        log_errx("%s", err);
        return EXIT_USAGE;
    }
    if (store_claim(d->st) < 0)
        return 1;
    d->claimed = 1;
    long derived = fetch_backfill(d->st);   /* a cache from before the views (schema 3) */
    if (derived < 0) {
        log_errx("cache %s: cannot derive the views of its records", d->o.cache);
        return 1;
    }
    if (derived > 0)
        log_info("cache %s: derived the views of %ld records", d->o.cache, derived);
    if (!d->o.offline) {
        if (kombo_global_init() < 0) {
            log_errx("cannot initialise libcurl");
            return 1;
        }
        d->k = kombo_new(d->o.api_url, d->o.api_key, d->o.integration);
    }
    d->sync = sync_new(d->st, d->k, &d->o);
    d->nt = notify_new(d->o.kernel_notify);
    d->fs = fs_new(d->st, d->sync, d->nt, &d->o, 0);
    d->fsset = fsset_new(&d->o);
    fsset_put(d->fsset, d->fs);
    d->se = fs_session(d->fsset);
    if (!d->se)
        return EXIT_USAGE;
    atomic_store(&health_se, d->se);
    if (fuse_set_signal_handlers(d->se) < 0)
        return 1;
    d->handlers = 1;
    chain_signals(d->sync);
    /* Before the mount: a port that cannot be bound fails the start, and
     * webhooks that come during the initial fetch are queued, not lost. */
    if (d->o.webhook_listen && start_webhooks(d) < 0)
        return 1;
    if (start_metrics(d) < 0)
        return 1;
    int warm = sync_models_without_snapshot(d->sync) == 0;
    if (initial_sync(d) < 0) {
        log_errx("the initial fetch failed; nothing was mounted (see the messages above)");
        return 1;
    }
    if (fuse_session_exited(d->se))
        return 0;       /* a signal arrived during the initial fetch */
    if (store_build_done(d->st) < 0) {
        log_errx("cache %s: cannot finish its first build; nothing was mounted", d->o.cache);
        return 1;
    }
    fsset_mounting(d->fsset, d->o.mountpoint);
    if (fuse_session_mount(d->se, d->o.mountpoint) < 0)
        return 1;
    d->mounted = 1;
    fsset_mounted(d->fsset);
    log_info("mounted %s on %s", d->o.integration, d->o.mountpoint);

    if (notify_start(d->nt, d->se) < 0)
        return 1;
    sync_set_listener(d->sync, fs_changed, d->fs);
    if (!d->o.offline) {
        if (sync_start(d->sync) < 0)
            return 1;
        if (warm)
            sync_request(d->sync, MODELS_ALL, SYNC_DELTA, 0);
    }
    report_ready(0);
    sdnotify_extend_end();
    log_sd_notify("READY=1\nSTATUS=mounted, serving the cache");
    return loop(d);
}

static int check_page(void *ctx, const char *body, const struct jtext_page *page)
{
    (void)ctx;
    (void)body;
    (void)page;
    return 1;   /* one page proves access */
}

static int check_fuse_options(const struct options *o, char *err, size_t errlen);

/* The FUSE device, and for a user other than root the setuid helper and
 * the permission allow_other needs (fuse.conf(5)). Returns 1 if it failed. */
static int check_fuse(const struct options *o)
{
    int failed = 0;
    int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        printf("  FUSE         FAILED: cannot open /dev/fuse: %s (the fuse module, or the device "
               "in a container)\n", strerror(errno));
        failed = 1;
    } else {
        close(fd);
        printf("  FUSE         /dev/fuse opens\n");
    }
    if (options_mount_fd(o->mountpoint) >= 0) {
        printf("  fusermount3  not needed (mounted by the caller: %s)\n", o->mountpoint);
        return failed;
    }
    if (geteuid() == 0) {
        printf("  fusermount3  not needed (root mounts with mount(2))\n");
        if (o->allow_other)
            printf("  allow_other  allowed (root)\n");
        return failed;
    }
    /* libfuse runs /usr/bin/fusermount3, else the one on PATH */
    char found[4096] = "";
    struct stat st;
    if (stat("/usr/bin/fusermount3", &st) == 0) {
        snprintf(found, sizeof found, "/usr/bin/fusermount3");
    } else {
        const char *path = getenv("PATH");
        while (path && *path && !found[0]) {
            size_t n = strcspn(path, ":");
            char cand[4096];
            if (n && n < sizeof cand - 13) {
                snprintf(cand, sizeof cand, "%.*s/fusermount3", (int)n, path);
                if (stat(cand, &st) == 0)
                    snprintf(found, sizeof found, "%s", cand);
            }
            path += n + (path[n] == ':');
        }
    }
    if (!found[0]) {
        printf("  fusermount3  FAILED: not found in /usr/bin or on PATH (package fuse3): a user "
               "other than root mounts with it\n");
        failed = 1;
    } else if (st.st_uid != 0 || !(st.st_mode & S_ISUID)) {
        printf("  fusermount3  FAILED: %s is not setuid root\n", found);
        failed = 1;
    } else {
        printf("  fusermount3  %s (setuid root)\n", found);
    }
    if (o->allow_other) {
        int allowed = 0;
        FILE *f = fopen("/etc/fuse.conf", "r");
        char line[256];
        while (f && fgets(line, sizeof line, f)) {
            char *p = line + strspn(line, " \t");
            size_t n = strcspn(p, " \t\r\n#");
            if (n == 16 && memcmp(p, "user_allow_other", 16) == 0)
                allowed = 1;
        }
        if (f)
            fclose(f);
        if (allowed) {
            printf("  allow_other  allowed (user_allow_other in /etc/fuse.conf)\n");
        } else {
            printf("  allow_other  FAILED: a user other than root needs user_allow_other in "
                   "/etc/fuse.conf\n");
            failed = 1;
        }
    }
    return failed;
}

/* The directory of the cache (created on the first start if missing) must be
 * writable; nothing is created here. Returns 1 if it failed. */
static int check_cache_dir(const struct options *o)
{
    const char *target = o->multi ? o->cache_dir : o->cache;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", target);
    if (!o->multi) {
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir)
            *slash = '\0';
        else if (slash)
            slash[1] = '\0';
    }
    struct stat st;
    char probe[4096];
    snprintf(probe, sizeof probe, "%s", dir);
    /* the nearest directory that exists: the start creates the rest */
    while (stat(probe, &st) < 0 && (errno == ENOENT || errno == ENOTDIR)) {
        char *slash = strrchr(probe, '/');
        if (!slash || slash == probe) {
            snprintf(probe, sizeof probe, "/");
            break;
        }
        *slash = '\0';
    }
    if (stat(probe, &st) < 0 || !S_ISDIR(st.st_mode)) {
        printf("  cache dir    FAILED: %s: %s\n", probe,
               stat(probe, &st) < 0 ? strerror(errno) : strerror(ENOTDIR));
        return 1;
    }
    if (access(probe, W_OK | X_OK) < 0) {
        printf("  cache dir    FAILED: %s is not writable: %s\n", probe, strerror(errno));
        return 1;
    }
    if (access(o->cache ? o->cache : dir, F_OK) == 0 && o->cache &&
        access(o->cache, R_OK | W_OK) < 0) {
        printf("  cache dir    FAILED: %s is not writable: %s\n", o->cache, strerror(errno));
        return 1;
    }
    if (strcmp(probe, dir) == 0)
        printf("  cache dir    %s is writable\n", dir);
    else
        printf("  cache dir    %s will be created (%s is writable)\n", dir, probe);
    return 0;
}

/* kombofs --check: what an operator wants to know before mounting. */
static int run_check(struct daemon *d)
{
    const struct options *o = &d->o;
    char err[1024];
    int failed = 0;

    printf("kombofs %s: checking integration %s\n", KOMBOFS_VERSION, o->integration);
    if (check_fuse_options(o, err, sizeof err) < 0) {
        printf("  options      FAILED: %s\n", err);
        failed = 1;
    } else {
        printf("  options      ok (API %s, cache %s)\n", o->api_url, o->cache);
    }
    if (o->api_key)
        printf("  API key      %zu bytes, from %s\n", strlen(o->api_key),
               o->api_key_file ? o->api_key_file : "KOMBO_API_KEY");
    if (o->webhook_listen) {
        struct sockaddr_storage sa;
        socklen_t salen;
        if (wevent_parse_listen(o->webhook_listen, &sa, &salen, err, sizeof err) < 0) {
            printf("  webhooks     FAILED: %s\n", err);
            failed = 1;
        } else {
            printf("  webhooks     POST %s%s, secret %zu bytes\n", o->webhook_listen,
                   o->webhook_path, strlen(o->webhook_secret));
        }
    }
    failed |= check_fuse(o);
    failed |= check_cache_dir(o);
    if (access(o->cache, F_OK) < 0 && o->offline) {
        printf("  cache        FAILED: %s does not exist, and --offline serves only an existing cache\n",
               o->cache);
        failed = 1;
    } else if (access(o->cache, F_OK) < 0) {
        printf("  cache        %s does not exist yet: the first mount fetches everything\n",
               o->cache);
    } else if (!(d->st = store_open(o->cache, err, sizeof err))) {
        printf("  cache        FAILED: %s\n", err);
        failed = 1;
    } else {
        long total = 0;
        int64_t oldest_full = 0;
        for (int m = 0; m < MODEL_COUNT; m++) {
            struct store_endpoint ep;
            if (!(o->models & (1u << m)))
                continue;
            total += store_record_count(d->st, m);
            if (store_endpoint_get(d->st, m, &ep) == 0 &&
                (!oldest_full || ep.full_at < oldest_full))
                oldest_full = ep.full_at;
            store_endpoint_free(&ep);
        }
        char when[32] = "never";
        if (oldest_full > 0)
            clock_format(oldest_full * 1000000000, when, sizeof when);
        printf("  cache        %s: %ld records, complete snapshot: %s\n", o->cache, total, when);
    }
    if (o->offline) {
        printf("  API          not checked (--offline)\n");
    } else {
        struct kombo_error ke;
        struct kombo_retry once = { 1, 0, 0, 0 };
        kombo_global_init();
        d->k = kombo_new(o->api_url, o->api_key, o->integration);
        kombo_set_retry(d->k, &once);
        enum kombo_result r = kombo_check_key(d->k, &ke);
        if (r != KOMBO_OK) {
            printf("  API          %s/check-api-key: FAILED (%s): %s\n", o->api_url,
                   kombo_result_str(r), ke.message);
            failed = 1;
        } else {
            printf("  API          %s/check-api-key: key accepted\n", o->api_url);
            r = kombo_list(d->k, "/hris/employees", "page_size=1", check_page, NULL, &ke);
            printf("  integration  GET /hris/employees: %s\n",
                   r == KOMBO_OK ? "ok" : ke.message);
            failed |= r != KOMBO_OK;
        }
    }
    printf("%s\n", failed ? "check FAILED" : "all checks passed");
    return failed ? 1 : 0;
}

static void log_at(int pri, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_at(int pri, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(pri, fmt, ap);
    va_end(ap);
}

/* libfuse's messages (fuse_set_log_func) as lines of our log, at their own
 * priority (fuse_log_level uses syslog's numbers). libfuse writes some
 * lines in pieces: they are put together per thread up to the newline. */
static void fuse_to_log(enum fuse_log_level level, const char *fmt, va_list ap)
{
    static _Thread_local char line[1024];
    static _Thread_local size_t len;
    int n = vsnprintf(line + len, sizeof line - len, fmt, ap);
    if (n > 0)
        len += (size_t)n < sizeof line - len ? (size_t)n : sizeof line - len - 1;
    if (len && line[len - 1] != '\n' && len < sizeof line - 1)
        return;
    while (len && line[len - 1] == '\n')
        line[--len] = '\0';
    if (len)
        log_at((int)level, "%s", line);
    len = 0;
}

/* While the FUSE options are tried: libfuse's error messages, kept. */
static char probe_msg[512];
static size_t probe_len;

static void fuse_to_probe(enum fuse_log_level level, const char *fmt, va_list ap)
{
    if (level > FUSE_LOG_ERR || probe_len >= sizeof probe_msg - 1)
        return;
    int n = vsnprintf(probe_msg + probe_len, sizeof probe_msg - probe_len, fmt, ap);
    if (n > 0)
        probe_len += (size_t)n < sizeof probe_msg - probe_len ? (size_t)n
                                                               : sizeof probe_msg - probe_len - 1;
}

/* Try the FUSE options on a session that is never mounted, before anything is
 * created: 0, or -1 with libfuse's reason in err. */
static int check_fuse_options(const struct options *o, char *err, size_t errlen)
{
    struct fuse_lowlevel_ops ops;
    memset(&ops, 0, sizeof ops);
    struct fuse_args args = FUSE_ARGS_INIT(o->fuse_argc, o->fuse_argv);
    probe_len = 0;
    probe_msg[0] = '\0';
    fuse_set_log_func(fuse_to_probe);
    struct fuse_session *se = fuse_session_new(&args, &ops, sizeof ops, NULL);
    fuse_opt_free_args(&args);
    fuse_set_log_func(fuse_to_log);
    if (se) {
        fuse_session_destroy(se);
        return 0;
    }
    char *msg = probe_msg;
    if (strncmp(msg, "fuse: ", 6) == 0)
        msg += 6;
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    for (char *p = msg; *p; p++)
        if (*p == '\n')
            *p = ' ';
    snprintf(err, errlen, "FUSE refused the options: %s", n ? msg : "(no reason given)");
    return -1;
}

/* kombofs --version: ours, and the libraries' as they run (not as built). */
static void print_version(void)
{
    const curl_version_info_data *curl = curl_version_info(CURLVERSION_NOW);
    printf("kombofs %s\n", KOMBOFS_VERSION);
    printf("libfuse %s\n", fuse_pkgversion());
    printf("libcurl %s\n", curl && curl->version ? curl->version : "unknown");
    printf("SQLite %s\n", sqlite3_libversion());
    printf("jansson %s\n", jansson_version_str());
    printf("libmicrohttpd %s\n", MHD_get_version());
    const char *ssl = OpenSSL_version(OPENSSL_VERSION);     /* "OpenSSL 3.0.11 19 Sep 2023" */
    printf("%s%s\n", strncmp(ssl, "OpenSSL ", 8) == 0 ? "" : "OpenSSL ", ssl);
    printf("zstd %s\n", pack_version());
    printf("libdeflate %s\n", kombo_inflate_version());
}

static int log_level(const struct options *o)
{
    return o->debug ? LOG_DEBUG : LOG_INFO + o->verbosity;
}

int main(int argc, char **argv)
{
    struct daemon d;
    char err[1024];
    memset(&d, 0, sizeof d);
    log_init(LOG_INFO);
    fuse_set_log_func(fuse_to_log);
    store_library_init();
    if (options_parse(argc, argv, &d.o, err, sizeof err) < 0) {
        log_usage_error("%s", err);
        options_free(&d.o);
        return EXIT_USAGE;
    }
    if (d.o.show_help) {
        fputs(options_usage, stdout);
        options_free(&d.o);
        return 0;
    }
    if (d.o.show_version) {
        print_version();
        options_free(&d.o);
        return 0;
    }
    log_init(log_level(&d.o));
    if (!d.o.check && check_fuse_options(&d.o, err, sizeof err) < 0) {
        log_usage_error("%s", err);
        options_free(&d.o);
        return EXIT_USAGE;
    }
    if (d.o.check) {
        int status = run_check(&d);
        teardown(&d);
        return status;
    }
    if (d.o.webhook_listen &&
        wevent_parse_listen(d.o.webhook_listen, &(struct sockaddr_storage){ 0 },
                            &(socklen_t){ 0 }, err, sizeof err) < 0) {
        log_usage_error("%s", err);
        options_free(&d.o);
        return EXIT_USAGE;
    }
    if (!d.o.foreground && daemonize() < 0) {
        log_usage_error("cannot go to the background: %s", strerror(errno));
        options_free(&d.o);
        return 1;
    }
    if (sdnotify_watchdog_start(healthy, NULL) < 0)
        log_warnx("cannot start the watchdog thread");
    int status = run(&d);
    report_ready(status);
    teardown(&d);
    return status;
}
