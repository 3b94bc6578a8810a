/*
 * fuzz_options.c — the command line (options.c, SPEC §1): options_parse on an
 * argv built from the input, and options_duration.
 *
 * Input: [environment bits] then the arguments, separated by NUL bytes
 * (argv[0] is "kombofs"; at most 32 arguments).
 *
 * Sandbox: options_parse reads the key and secret files, stats the mount
 * point and reads the environment. At start-up the target makes a private
 * temp dir (key and secret files, a directory "mnt", an empty, an oversized
 * and a binary file) and clears the environment; each input then sets some
 * KOMBO_* variables from its first byte. fopen and stat are wrapped at link
 * time (-Wl,--wrap): while options_parse runs, a path with a '/' or equal to
 * ".." is refused (EACCES) before it reaches the system, any other path is
 * taken inside the temp dir, and an open for writing fails the run: no file
 * outside the temp dir is ever touched. The temp dir is removed at exit.
 *
 * Properties:
 *  - options_duration agrees with a reference: a lone number of seconds, or
 *    terms NUMBER UNIT (d h m s, each once, largest first), the sum within a
 *    long;
 *  - options_parse returns 0 or -1, never crashes or leaks (options_free
 *    after either);
 *  - a failure leaves a one-line, non-empty message;
 *  - a success (without --help/--version) is complete: an integration, an
 *    http(s) API URL, an API key unless --offline, a webhook secret when
 *    listening, a webhook path starting with '/', a cache path, a mount point
 *    unless --check, non-negative durations, models within MODELS_ALL, and
 *    fuse_argv = kombofs [-d] -o default_permissions,fsname=…,subtype=kombofs[,…];
 *  - no secret (the key and secret files' contents, KOMBO_API_KEY,
 *    KOMBO_WEBHOOK_SECRET) appears in the message or in fuse_argv, unless
 *    the input itself spelled it out;
 *  - no option that kombofs owns or refuses (any spelling: dashes or
 *    underscores) is passed on to FUSE, where libfuse would print it back in
 *    its "unknown option" error.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "models.h"
#include "options.h"

#define MAX_ARGS 32

static const char *const secrets[] = {
    "fuzz-key-FILE-SECRET-1", "fuzz-wh-FILE-SECRET-2",
    "fuzz-key-ENV-SECRET-3", "fuzz-wh-ENV-SECRET-4",
};

/* Options kombofs handles or refuses itself, dashes as underscores. */
static const char *const owned[] = {
    "integration", "api_url", "api_key", "api_key_file", "cache", "webhook_listen",
    "webhook_path", "webhook_secret", "webhook_secret_file", "full_sync_interval",
    "poll_interval", "overlap", "changes_retention", "models", "offline", "check",
    "no_kernel_notify", "uid", "gid", "umask",
};

static char sandbox[64];
static int guarded;     /* 1 while options_parse runs */

/* ---- the file system wrappers ---- */

FILE *__real_fopen(const char *path, const char *mode);
FILE *__real_fopen64(const char *path, const char *mode);
int __real_stat(const char *path, struct stat *st);
int __real_stat64(const char *path, struct stat64 *st);
FILE *__wrap_fopen(const char *path, const char *mode);
FILE *__wrap_fopen64(const char *path, const char *mode);
int __wrap_stat(const char *path, struct stat *st);
int __wrap_stat64(const char *path, struct stat64 *st);

/* While options_parse runs: the path it gave, inside the sandbox, in buf;
 * NULL (errno EACCES) for a path with a '/' or "..". Outside: path itself. */
static const char *confine(const char *path, const char *mode, char *buf, size_t n)
{
    if (!guarded)
        return path;
    if (mode)
        FUZZ_CHECK(mode[0] == 'r' && !strchr(mode, '+'),
                   "options_parse opens '%s' with mode '%s'", path, mode);
    if (strchr(path, '/') || strcmp(path, "..") == 0 ||
        (size_t)snprintf(buf, n, "%s/%s", sandbox, path) >= n) {
        errno = EACCES;
        return NULL;
    }
    return buf;
}

FILE *__wrap_fopen(const char *path, const char *mode)
{
    char buf[PATH_MAX];
    const char *p = confine(path, mode, buf, sizeof buf);
    return p ? __real_fopen(p, mode) : NULL;
}

FILE *__wrap_fopen64(const char *path, const char *mode)
{
    char buf[PATH_MAX];
    const char *p = confine(path, mode, buf, sizeof buf);
    return p ? __real_fopen64(p, mode) : NULL;
}

int __wrap_stat(const char *path, struct stat *st)
{
    char buf[PATH_MAX];
    const char *p = confine(path, NULL, buf, sizeof buf);
    return p ? __real_stat(p, st) : -1;
}

int __wrap_stat64(const char *path, struct stat64 *st)
{
    char buf[PATH_MAX];
    const char *p = confine(path, NULL, buf, sizeof buf);
    return p ? __real_stat64(p, st) : -1;
}

/* ---- set-up ---- */

static void in_sandbox(char *buf, size_t n, const char *name)
{
    FUZZ_CHECK((size_t)snprintf(buf, n, "%s/%s", sandbox, name) < n, "path too long");
}

static void put(const char *name, const char *content, size_t n)
{
    char path[PATH_MAX];
    in_sandbox(path, sizeof path, name);
    FILE *f = __real_fopen(path, "w");
    FUZZ_CHECK(f && fwrite(content, 1, n, f) == n && fclose(f) == 0, "cannot write %s", path);
}

static void cleanup(void)
{
    static const char *const files[] = { "key", "secret", "big", "empty", "nul", "file" };
    char path[PATH_MAX];
    if (!sandbox[0])
        return;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        in_sandbox(path, sizeof path, files[i]);
        unlink(path);
    }
    in_sandbox(path, sizeof path, "mnt");
    rmdir(path);
    rmdir(sandbox);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *tmp = getenv("TMPDIR");
    snprintf(sandbox, sizeof sandbox, "%s/kombofs-fuzz-options.XXXXXX",
             tmp && *tmp && strlen(tmp) < 24 ? tmp : "/tmp");
    FUZZ_CHECK(mkdtemp(sandbox), "cannot make the sandbox %s", sandbox);
    atexit(cleanup);
    char line[64], path[PATH_MAX];
    int n = snprintf(line, sizeof line, "%s\n", secrets[0]);
    put("key", line, (size_t)n);
    n = snprintf(line, sizeof line, "  %s \r\n", secrets[1]);
    put("secret", line, (size_t)n);
    static char big[5000];
    memset(big, 'k', sizeof big);
    put("big", big, sizeof big);
    put("empty", "", 0);
    put("nul", "ab\0cd", 5);
    put("file", "x", 1);
    in_sandbox(path, sizeof path, "mnt");
    FUZZ_CHECK(mkdir(path, 0700) == 0, "mkdir %s", path);
    clearenv();
    return 0;
}

/* ---- options_duration ---- */

static int duration_ref(const char *s, long *out)
{
    /* A lone number of seconds, or terms NUMBER UNIT with units among d h m s,
     * each at most once, largest first ("1h30m", "1d12h"); the sum within a long. */
    static const char units[] = "dhms";
    static const long secs[] = { 86400, 3600, 60, 1 };
    size_t n = strlen(s), digits = strspn(s, "0123456789");
    long total = 0;
    if (digits == 0)
        return -1;
    if (digits == n) {
        for (size_t i = 0; i < n; i++)
            if (__builtin_mul_overflow(total, 10, &total) ||
                __builtin_add_overflow(total, s[i] - '0', &total))
                return -1;
        *out = total;
        return 0;
    }
    int next = 0;       /* the first unit still allowed */
    size_t i = 0;
    while (i < n) {
        size_t d = strspn(s + i, "0123456789");
        if (d == 0 || i + d == n)
            return -1;  /* no number, or a number without its unit */
        const char *u = strchr(units + next, s[i + d]);
        if (!u || s[i + d] == '\0')
            return -1;
        long v = 0;
        for (size_t k = 0; k < d; k++)
            if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, s[i + k] - '0', &v))
                return -1;
        if (__builtin_mul_overflow(v, secs[u - units], &v) || __builtin_add_overflow(total, v, &total))
            return -1;
        next = (int)(u - units) + 1;
        i += d + 1;
    }
    *out = total;
    return 0;
}

static void check_duration(const char *s)
{
    long got = -7, want = -9;
    int rc = options_duration(s, &got), ref = duration_ref(s, &want);
    FUZZ_CHECK(rc == ref, "options_duration(\"%s\") = %d, reference %d", s, rc, ref);
    if (rc == 0)
        FUZZ_CHECK(got == want, "options_duration(\"%s\") = %ld s, reference %ld", s, got, want);
}

/* ---- options_parse ---- */

/* Does the input spell s out itself (also once ',' and '\\' are dropped, as
 * they are from the integration id in fsname=)? */
static int in_input(char **argv, int argc, const char *s)
{
    for (int i = 1; i < argc; i++) {
        if (strstr(argv[i], s))
            return 1;
        char *t = strdup(argv[i]), *w = t;
        if (!t)
            abort();
        for (const char *r = argv[i]; *r; r++)
            if (*r != ',' && *r != '\\')
                *w++ = *r;
        *w = '\0';
        int found = strstr(t, s) != NULL;
        free(t);
        if (found)
            return 1;
    }
    return 0;
}

static void check_no_secret(char **argv, int argc, const char *text, const char *where)
{
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++)
        FUZZ_CHECK(!strstr(text, secrets[i]) || in_input(argv, argc, secrets[i]),
                   "secret '%s' in %s: %s", secrets[i], where, text);
}

static void check_fuse_opts(const char *opts)
{
    static const char head[] = "default_permissions,fsname=";
    FUZZ_CHECK(strncmp(opts, head, sizeof head - 1) == 0, "FUSE options '%s'", opts);
    const char *sub = strstr(opts, ",subtype=kombofs");
    FUZZ_CHECK(sub, "no subtype in '%s'", opts);
    FUZZ_CHECK(memchr(opts + sizeof head - 1, ',', (size_t)(sub - opts) - (sizeof head - 1)) ==
                   NULL,
               "a comma in fsname: '%s'", opts);
    const char *p = sub + strlen(",subtype=kombofs");
    FUZZ_CHECK(*p == '\0' || *p == ',', "FUSE options '%s'", opts);
    while (*p == ',') {
        p++;
        size_t len = strcspn(p, ","), n = strcspn(p, ",=");
        FUZZ_CHECK(len > 0, "an empty FUSE option in '%s'", opts);
        char name[64];
        if (n < sizeof name) {
            for (size_t i = 0; i < n; i++)
                name[i] = p[i] == '-' ? '_' : p[i];
            name[n] = '\0';
            for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++)
                FUZZ_CHECK(strcmp(name, owned[i]) != 0,
                           "kombofs's own option '%.*s' is passed on to FUSE: '%s'", (int)len, p,
                           opts);
        }
        p += len;
    }
}

static void check_success(const struct options *o, char **argv, int argc)
{
    FUZZ_CHECK(o->integration && o->integration[0], "no integration");
    FUZZ_CHECK(o->api_url && (strncmp(o->api_url, "http://", 7) == 0 ||
                              strncmp(o->api_url, "https://", 8) == 0),
               "API URL '%s'", o->api_url ? o->api_url : "(null)");
    FUZZ_CHECK(o->api_key || o->offline, "no API key and not offline");
    FUZZ_CHECK(!o->api_key || o->api_key[0], "empty API key");
    FUZZ_CHECK(!o->webhook_listen || (o->webhook_secret && o->webhook_secret[0]),
               "listening without a webhook secret");
    FUZZ_CHECK(o->webhook_path && o->webhook_path[0] == '/', "webhook path");
    FUZZ_CHECK(o->cache && o->cache[0], "no cache");
    FUZZ_CHECK(o->mountpoint || o->check, "no mount point");
    FUZZ_CHECK(o->full_sync_interval >= 0 && o->poll_interval >= 0 && o->overlap >= 0 &&
                   o->changes_retention >= 0,
               "negative duration");
    FUZZ_CHECK((o->models & ~MODELS_ALL) == 0, "models %#x", o->models);
    FUZZ_CHECK(o->kernel_notify == !o->no_kernel_notify, "kernel_notify");
    FUZZ_CHECK(!o->debug || o->foreground, "-d without foreground");

    int i = 0;
    FUZZ_CHECK(o->fuse_argc >= 3 && o->fuse_argc <= 4, "fuse_argc %d", o->fuse_argc);
    FUZZ_CHECK(strcmp(o->fuse_argv[i++], "kombofs") == 0, "fuse_argv[0]");
    if (o->debug)
        FUZZ_CHECK(strcmp(o->fuse_argv[i++], "-d") == 0, "-d");
    FUZZ_CHECK(i + 2 == o->fuse_argc, "fuse_argc %d", o->fuse_argc);
    FUZZ_CHECK(strcmp(o->fuse_argv[i++], "-o") == 0, "-o");
    check_fuse_opts(o->fuse_argv[i]);
    for (int k = 0; k < o->fuse_argc; k++)
        check_no_secret(argv, argc, o->fuse_argv[k], "fuse_argv");
    FUZZ_CHECK(o->fuse_argv[o->fuse_argc] == NULL, "fuse_argv not NULL-terminated");
}

static void set_env(unsigned bits)
{
    static const char *const vars[][2] = {
        { "KOMBO_API_KEY", "fuzz-key-ENV-SECRET-3" },
        { "KOMBO_WEBHOOK_SECRET", "fuzz-wh-ENV-SECRET-4" },
        { "KOMBO_INTEGRATION_ID", "personio:Q4vX8kLm2PzR7tYb3NcW9sHd" },
        { "KOMBO_API_URL", "http://127.0.0.1:9/v1" },
        { "KOMBO_CACHE", "cache.db" },
        { "STATE_DIRECTORY", "state:second" },
        { "KOMBO_API_URL", "ftp://example.invalid/" },
        { "KOMBO_INTEGRATION_ID", "" },
    };
    clearenv();
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (bits & (1u << i))
            setenv(vars[i][0], vars[i][1], 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned bits = data[0];
    char *args = fuzz_strdup(data + 1, size - 1);
    char *argv[MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = "kombofs";
    for (size_t off = 0; off < size - 1;) {
        if (argc > MAX_ARGS) {
            free(args);
            return 0;
        }
        argv[argc++] = args + off;
        off += strlen(args + off) + 1;
    }
    argv[argc] = NULL;

    if (argc > 1)
        check_duration(argv[1]);

    set_env(bits);
    struct options o;
    char err[512];
    memset(err, 'x', sizeof err);
    memset(&o, 0x5a, sizeof o);
    guarded = 1;
    int rc = options_parse(argc, argv, &o, err, sizeof err);
    guarded = 0;
    FUZZ_CHECK(rc == 0 || rc == -1, "rc %d", rc);
    if (rc < 0) {
        FUZZ_CHECK(memchr(err, '\0', sizeof err), "message not terminated");
        FUZZ_CHECK(err[0], "failure without a message");
        FUZZ_CHECK(!strchr(err, '\n') || in_input(argv, argc, "\n"), "message of two lines: %s",
                   err);
        check_no_secret(argv, argc, err, "the message");
    } else if (!o.show_help && !o.show_version) {
        check_success(&o, argv, argc);
    }
    options_free(&o);
    free(args);
    return 0;
}
