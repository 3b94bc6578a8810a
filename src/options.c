#include "options.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "fsname.h"
#include "models.h"
#include "wevent.h"

const char options_usage[] =
    "usage: kombofs [SOURCE] MOUNTPOINT [options]\n"
    "       kombofs [NAME] MOUNTPOINT --integrations-file=FILE [options]\n"
    "\n"
    "Mirror Kombo HRIS integrations as read-only files.\n"
    "\n"
    "  --integration=ID            integration to mirror (env KOMBO_INTEGRATION_ID; default SOURCE)\n"
    "  --api-url=URL               API base URL (env KOMBO_API_URL; default https://api.kombo.dev/v1)\n"
    "  --api-key-file=FILE         file holding the API key (env KOMBO_API_KEY)\n"
    "  --cache=FILE                SQLite cache (env KOMBO_CACHE; default $STATE_DIRECTORY/ID.db\n"
    "                              or /var/lib/kombofs/ID.db)\n"
    "  --webhook-listen=ADDR:PORT  start the webhook receiver\n"
    "  --webhook-path=PATH         path that accepts webhook POSTs (default /webhook)\n"
    "  --webhook-secret-file=FILE  webhook secret (env KOMBO_WEBHOOK_SECRET)\n"
    "  --metrics-listen=ADDR:PORT  serve GET /metrics (Prometheus text) when no webhook\n"
    "                              receiver runs\n"
    "  --full-sync-interval=DUR    periodic full fetch (default 7d, 0 = on demand only)\n"
    "  --poll-interval=DUR         delta fetch without webhooks (default 1h, 0 = off)\n"
    "  --overlap=DUR               subtracted from the watermark (default 60s)\n"
    "  --models=LIST               directories to mirror (default all nine)\n"
    "  --changes-retention=DUR     how long changes/ entries are kept (default 30d)\n"
    "  --max-connections=N         API requests in flight at once, 1 to 64 (default 4)\n"
    "  --offline                   serve the cache, make no API calls\n"
    "  --check                     check options, key, cache and API access, then exit\n"
    "  --no-kernel-notify          never invalidate the kernel's cache (for tests: stale reads)\n"
    "  --no-read-ahead             never push the next files of a scan into the page cache\n"
    "  --compress                  store records zstd-compressed (a cache about a third the\n"
    "                              size; every cold read decodes)\n"
    "  -f                          stay in the foreground\n"
    "  -d                          debug output, also of every FUSE request (implies -f)\n"
    "  -v, --verbose               more log lines (debug); -q, --quiet: fewer (warnings\n"
    "                              only; -qq: errors only)\n"
    "  -o OPT[,OPT...]             any option as name=value, or a FUSE option\n"
    "                              (allow_other, uid=USER, gid=GROUP, umask=OCTAL,\n"
    "                              max_threads=N, max_idle_threads=N, export_support\n"
    "                              (NFS export), ...)\n"
    "  --version                   versions of kombofs and of the libraries it runs with\n"
    "  --help\n"
    "\n"
    "Several integrations in one daemon (multi mode):\n"
    "  --integrations-file=FILE    turns multi mode on: the integration ids, one per line\n"
    "                              (# comments); NAME is only the name shown in mount(8)\n"
    "                              (default kombo); --integration and --cache do not apply\n"
    "  --cache-dir=DIR             one cache per integration, DIR/ID.db (default\n"
    "                              $STATE_DIRECTORY, else /var/lib/kombofs; accepted and\n"
    "                              ignored in single mode)\n"
    "  --discover                  add integrations announced by integration-created webhooks\n"
    "  --purge-deleted             purge an integration when integration-deleted arrives\n"
    "\n"
    "DUR is 90, 90s, 15m, 1h or 7d, or a sum of them from the largest unit down (1h30m, 2d12h).\n";

/* A kombofs option: its long name (dashes) and where it goes. */
enum kind { STR, DUR, FLAG, MODELS, INT };

struct optdef {
    const char *name;
    enum kind kind;
    size_t off;
    int lo, hi;             /* INT: the range allowed */
};

#define OFF(f) offsetof(struct options, f)
#define MAX_CONNECTIONS 64

static const struct optdef optdefs[] = {
    { "integration", STR, OFF(integration), 0, 0 },
    { "api-url", STR, OFF(api_url), 0, 0 },
    { "api-key-file", STR, OFF(api_key_file), 0, 0 },
    { "cache", STR, OFF(cache), 0, 0 },
    { "webhook-listen", STR, OFF(webhook_listen), 0, 0 },
    { "webhook-path", STR, OFF(webhook_path), 0, 0 },
    { "webhook-secret-file", STR, OFF(webhook_secret_file), 0, 0 },
    { "metrics-listen", STR, OFF(metrics_listen), 0, 0 },
    { "full-sync-interval", DUR, OFF(full_sync_interval), 0, 0 },
    { "poll-interval", DUR, OFF(poll_interval), 0, 0 },
    { "overlap", DUR, OFF(overlap), 0, 0 },
    { "changes-retention", DUR, OFF(changes_retention), 0, 0 },
    { "models", MODELS, OFF(models), 0, 0 },
    { "offline", FLAG, OFF(offline), 0, 0 },
    { "check", FLAG, OFF(check), 0, 0 },
    { "no-kernel-notify", FLAG, OFF(no_kernel_notify), 0, 0 },
    { "no-read-ahead", FLAG, OFF(no_read_ahead), 0, 0 },
    { "compress", FLAG, OFF(compress), 0, 0 },
    { "integrations-file", STR, OFF(integrations_file), 0, 0 },
    { "cache-dir", STR, OFF(cache_dir), 0, 0 },
    { "discover", FLAG, OFF(discover), 0, 0 },
    { "purge-deleted", FLAG, OFF(purge_deleted), 0, 0 },
    { "max-connections", INT, OFF(max_connections), 1, MAX_CONNECTIONS },
};

struct parser {
    struct options *o;
    char *err;
    size_t errlen;
    struct buf fuse_opts;   /* comma-separated -o options for FUSE */
};

__attribute__((format(printf, 2, 3)))
static int fail(struct parser *ps, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ps->err, ps->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* One unit of a duration, in the order they must come: d, h, m, s. */
static long unit_seconds(char c, int *rank)
{
    switch (c) {
    case 'd': *rank = 0; return 86400;
    case 'h': *rank = 1; return 3600;
    case 'm': *rank = 2; return 60;
    case 's': *rank = 3; return 1;
    default: return 0;
    }
}

int options_duration(const char *s, long *secs)
{
    long total = 0;
    int last_rank = -1;
    if (!s || *s < '0' || *s > '9')
        return -1;
    while (*s) {
        char *end;
        if (*s < '0' || *s > '9')
            return -1;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (errno)
            return -1;
        int rank = 0;
        long mul;
        if (!*end) {
            if (last_rank >= 0)
                return -1;      /* "1h30": a number without its unit after one with */
            mul = 1;
            rank = 3;
        } else if (!(mul = unit_seconds(*end, &rank))) {
            return -1;
        } else {
            end++;
        }
        if (rank <= last_rank)
            return -1;          /* "30m1h", "1h1h": each unit once, largest first */
        if (v > LONG_MAX / mul || v * mul > LONG_MAX - total)
            return -1;
        total += v * mul;
        last_rank = rank;
        s = end;
    }
    *secs = total;
    return 0;
}

/* Match `name` (dashes or underscores, length n) against the table. */
static const struct optdef *find_opt(const char *name, size_t n)
{
    for (size_t i = 0; i < sizeof optdefs / sizeof optdefs[0]; i++) {
        const char *d = optdefs[i].name;
        if (strlen(d) != n)
            continue;
        size_t j = 0;
        while (j < n && (name[j] == d[j] || (name[j] == '_' && d[j] == '-')))
            j++;
        if (j == n)
            return &optdefs[i];
    }
    return NULL;
}

static int set_opt(struct parser *ps, const struct optdef *d, const char *val)
{
    char *field = (char *)ps->o + d->off;
    switch (d->kind) {
    case FLAG:
        if (val)
            return fail(ps, "option '%s' takes no value", d->name);
        *(int *)field = 1;
        return 0;
    case STR:
        if (!val || !*val)
            return fail(ps, "option '%s' needs a value", d->name);
        free(*(char **)field);
        *(char **)field = strdup(val);
        return 0;
    case DUR:
        if (!val || options_duration(val, (long *)field) < 0)
            return fail(ps, "option '%s': bad duration '%s' (use 90, 90s, 15m, 1h, 7d, or a sum such as 1h30m)",
                        d->name, val ? val : "");
        return 0;
    case INT: {
        char *end = NULL;
        long v = -1;
        if (val && *val >= '0' && *val <= '9') {
            errno = 0;
            v = strtol(val, &end, 10);
            if (errno || *end)
                v = -1;
        }
        if (v < d->lo || v > d->hi)
            return fail(ps, "option '%s': bad value '%s' (a number from %d to %d)", d->name,
                        val ? val : "", d->lo, d->hi);
        *(int *)field = (int)v;
        return 0;
    }
    case MODELS: {
        const char *bad;
        int badlen;
        if (!val || !*val)
            return fail(ps, "option 'models' needs a value");
        if (models_parse_list(val, (unsigned *)field, &bad, &badlen) < 0) {
            struct buf names = BUF_INIT;
            for (int i = 0; i < MODEL_COUNT; i++) {
                if (i)
                    buf_adds(&names, ", ");
                buf_adds(&names, models_table[i].dir);
            }
            buf_addc(&names, '\0');
            fail(ps, "option 'models': unknown directory '%.*s' (valid: %s)", badlen, bad,
                 names.data);
            buf_free(&names);
            return -1;
        }
        return 0;
    }
    }
    return -1;
}

static int parse_id(struct parser *ps, const char *name, const char *val,
                    unsigned long *out, int base)
{
    char *end;
    if (!val || !*val)
        return fail(ps, "option '%s' needs a value", name);
    errno = 0;
    unsigned long v = strtoul(val, &end, base);
    if (errno || *end || *val == '-' || v > 0xFFFFFFFFul)
        return fail(ps, "option '%s': bad value '%s'", name, val);
    *out = v;
    return 0;
}

/* uid=/gid=: a number, or a user or group name looked up with NSS
 * (getpwnam_r/getgrnam_r), as mount(8) users write them in fstab. */
static int parse_owner(struct parser *ps, const char *name, const char *val, int group,
                       unsigned long *out)
{
    if (!val || !*val)
        return fail(ps, "option '%s' needs a value", name);
    if (strspn(val, "0123456789") == strlen(val))
        return parse_id(ps, name, val, out, 10);
    long hint = sysconf(group ? _SC_GETGR_R_SIZE_MAX : _SC_GETPW_R_SIZE_MAX);
    size_t size = hint > 0 ? (size_t)hint : 16384;
    for (;;) {
        char *mem = malloc(size);
        if (!mem)
            return fail(ps, "option '%s': out of memory", name);
        int rc;
        int found;
        if (group) {
            struct group gr, *res = NULL;
            rc = getgrnam_r(val, &gr, mem, size, &res);
            found = res != NULL;
            if (found)
                *out = gr.gr_gid;
        } else {
            struct passwd pw, *res = NULL;
            rc = getpwnam_r(val, &pw, mem, size, &res);
            found = res != NULL;
            if (found)
                *out = pw.pw_uid;
        }
        free(mem);
        if (rc == ERANGE && size < (1u << 22)) {
            size *= 2;
            continue;
        }
        if (found)
            return 0;
        /* not found is 0, or ENOENT/ESRCH/EBADF/EPERM by some NSS modules */
        if (rc && rc != ENOENT && rc != ESRCH && rc != EBADF && rc != EPERM)
            return fail(ps, "option '%s': cannot look up %s '%s': %s", name,
                        group ? "group" : "user", val, strerror(rc));
        return fail(ps, "option '%s': no %s named '%s' (a %s name or a number)", name,
                    group ? "group" : "user", val, group ? "group" : "user");
    }
}

/* One item of a -o list. */
static int o_item(struct parser *ps, const char *item)
{
    const char *eq = strchr(item, '=');
    size_t n = eq ? (size_t)(eq - item) : strlen(item);
    const char *val = eq ? eq + 1 : NULL;
    unsigned long v = 0;

    if (n == 0)
        return 0;
    if ((n == 7 && memcmp(item, "api_key", 7) == 0) ||
        (n == 7 && memcmp(item, "api-key", 7) == 0))
        return fail(ps, "the API key is never accepted as an option (it would show in ps): use api_key_file= or KOMBO_API_KEY");
    if ((n == 14 && memcmp(item, "webhook_secret", 14) == 0) ||
        (n == 14 && memcmp(item, "webhook-secret", 14) == 0))
        return fail(ps, "the webhook secret is never accepted as an option: use webhook_secret_file= or KOMBO_WEBHOOK_SECRET");
    const struct optdef *d = find_opt(item, n);
    if (d)
        return set_opt(ps, d, val);
    if ((n == 7 && memcmp(item, "verbose", 7) == 0) || (n == 5 && memcmp(item, "quiet", 5) == 0)) {
        if (val)
            return fail(ps, "option '%.*s' takes no value", (int)n, item);
        ps->o->verbosity += n == 7 ? 1 : -1;
        return 0;
    }
    if (n == 3 && memcmp(item, "uid", 3) == 0) {
        if (parse_owner(ps, "uid", val, 0, &v) < 0)
            return -1;
        ps->o->uid = (uid_t)v;
        ps->o->uid_set = 1;
        return 0;
    }
    if (n == 3 && memcmp(item, "gid", 3) == 0) {
        if (parse_owner(ps, "gid", val, 1, &v) < 0)
            return -1;
        ps->o->gid = (gid_t)v;
        ps->o->gid_set = 1;
        return 0;
    }
    if (n == 5 && memcmp(item, "umask", 5) == 0) {
        if (parse_id(ps, "umask", val, &v, 8) < 0 || v > 0777)
            return fail(ps, "option 'umask': bad value '%s' (an octal number from 0 to 0777, "
                        "such as 027)", val ? val : "");
        ps->o->umask = (mode_t)v;
        return 0;
    }
    /* libfuse's own names for its worker pool (fuse_parse_cmdline's), so that
     * an fstab line written for another FUSE file system means the same here. */
    if ((n == 11 && memcmp(item, "max_threads", 11) == 0) ||
        (n == 16 && memcmp(item, "max_idle_threads", 16) == 0)) {
        int idle = n == 16;
        const char *name = idle ? "max_idle_threads" : "max_threads";
        if (parse_id(ps, name, val, &v, 10) < 0 || v > 10000 || (!idle && v == 0))
            return fail(ps, "option '%s': bad value '%s' (a number%s, at most 10000)", name,
                        val ? val : "", idle ? "" : " from 1");
        *(idle ? &ps->o->max_idle_threads : &ps->o->max_threads) = (int)v;
        return 0;
    }
    /* The kernel's FUSE_EXPORT_SUPPORT, asked for in fs.c's init: not a
     * mount option of libfuse's. */
    if (n == 14 && memcmp(item, "export_support", 14) == 0) {
        if (val)
            return fail(ps, "option 'export_support' takes no value");
        ps->o->export_support = 1;
        return 0;
    }
    if (strcmp(item, "allow_other") == 0)
        ps->o->allow_other = 1;
    /* default_permissions is always on; the rest is FUSE's. */
    if (strcmp(item, "default_permissions") == 0)
        return 0;
    if (ps->fuse_opts.len)
        buf_addc(&ps->fuse_opts, ',');
    buf_adds(&ps->fuse_opts, item);
    return 0;
}

static int o_list(struct parser *ps, const char *list)
{
    char *copy = strdup(list);
    char *save = NULL;
    int rc = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok && rc == 0;
         tok = strtok_r(NULL, ",", &save))
        rc = o_item(ps, tok);
    free(copy);
    return rc;
}

static int long_opt(struct parser *ps, int argc, char **argv, int *i)
{
    const char *arg = argv[*i] + 2;
    const char *eq = strchr(arg, '=');
    size_t n = eq ? (size_t)(eq - arg) : strlen(arg);

    if (strcmp(arg, "help") == 0)
        return ps->o->show_help = 1, 0;
    if (strcmp(arg, "version") == 0)
        return ps->o->show_version = 1, 0;
    if (strcmp(arg, "verbose") == 0)
        return ps->o->verbosity++, 0;
    if (strcmp(arg, "quiet") == 0)
        return ps->o->verbosity--, 0;
    if (n == 7 && memcmp(arg, "api-key", 7) == 0)
        return o_item(ps, "api_key");
    if (n == 14 && memcmp(arg, "webhook-secret", 14) == 0)
        return o_item(ps, "webhook_secret");
    const struct optdef *d = find_opt(arg, n);
    if (!d)
        return fail(ps, "unknown option '--%.*s' (see --help)", (int)n, arg);
    const char *val = eq ? eq + 1 : NULL;
    if (!val && d->kind != FLAG) {
        if (*i + 1 >= argc)
            return fail(ps, "option '--%s' needs a value", d->name);
        val = argv[++*i];
    }
    return set_opt(ps, d, val);
}

/* Read a secret from a file: at most 4 KiB, trailing white space removed. */
/* The daemon changes to "/" when it goes to the background: a relative path
 * is made absolute while the working directory is still the caller's. */
static int make_absolute(struct parser *ps, const char *what, char **path)
{
    if (!*path || (*path)[0] == '/')
        return 0;
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd))
        return fail(ps, "%s '%s' is relative and the current directory is unknown: %s", what,
                    *path, strerror(errno));
    struct buf b = BUF_INIT;
    buf_adds(&b, cwd);
    if (strcmp(cwd, "/") != 0)
        buf_addc(&b, '/');
    buf_adds(&b, *path);
    free(*path);
    *path = buf_detach(&b);
    return 0;
}

static int read_secret(struct parser *ps, const char *what, const char *path,
                       char **out)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return fail(ps, "cannot read %s file '%s': %s", what, path, strerror(errno));
    char tmp[4097];
    size_t n = fread(tmp, 1, sizeof tmp, f);
    int err = ferror(f);
    fclose(f);
    if (err)
        return fail(ps, "cannot read %s file '%s'", what, path);
    if (n == sizeof tmp)
        return fail(ps, "%s file '%s' is larger than 4 KiB", what, path);
    while (n && (tmp[n - 1] == '\n' || tmp[n - 1] == '\r' ||
                 tmp[n - 1] == ' ' || tmp[n - 1] == '\t'))
        n--;
    if (n == 0 || memchr(tmp, '\0', n))
        return fail(ps, "%s file '%s' is empty or not text", what, path);
    *out = strndup(tmp, n);
    memset(tmp, 0, sizeof tmp);
    return 0;
}

static void from_env(char **field, const char *var)
{
    const char *v = getenv(var);
    if (!*field && v && *v)
        *field = strdup(v);
}

static int positional(struct parser *ps, const char *arg)
{
    struct options *o = ps->o;
    if (!o->mountpoint) {
        o->mountpoint = strdup(arg);
        return 0;
    }
    if (!o->source) {
        o->source = o->mountpoint;
        o->mountpoint = strdup(arg);
        return 0;
    }
    return fail(ps, "unexpected argument '%s' (usage: kombofs [SOURCE] MOUNTPOINT [options])", arg);
}

static int parse_argv(struct parser *ps, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int rc = 0;
        if (strncmp(a, "--", 2) == 0 && a[2]) {
            rc = long_opt(ps, argc, argv, &i);
        } else if (strcmp(a, "-o") == 0) {
            if (i + 1 >= argc)
                return fail(ps, "option '-o' needs a value");
            rc = o_list(ps, argv[++i]);
        } else if (strncmp(a, "-o", 2) == 0) {
            rc = o_list(ps, a + 2);
        } else if (strcmp(a, "-f") == 0) {
            ps->o->foreground = 1;
        } else if (strcmp(a, "-d") == 0) {
            ps->o->debug = ps->o->foreground = 1;
        } else if (strcmp(a, "-s") == 0) {
            ps->o->single_thread = 1;
        } else if (strcmp(a, "-h") == 0) {
            ps->o->show_help = 1;
        } else if (strcmp(a, "-V") == 0) {
            ps->o->show_version = 1;
        } else if (a[0] == '-' && (a[1] == 'v' || a[1] == 'q') &&
                   strspn(a + 1, a[1] == 'v' ? "v" : "q") == strlen(a + 1)) {
            int n = (int)strlen(a + 1);     /* -v, -vv, -q, -qq */
            ps->o->verbosity += a[1] == 'v' ? n : -n;
        } else if (a[0] == '-' && a[1]) {
            rc = fail(ps, "unknown option '%s' (see --help)", a);
        } else {
            rc = positional(ps, a);
        }
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* The first directory of $STATE_DIRECTORY (systemd may pass several,
 * separated by ':'), else /var/lib/kombofs. */
static void state_dir(struct buf *b)
{
    const char *dir = getenv("STATE_DIRECTORY");
    size_t n = dir ? strcspn(dir, ":") : 0;
    if (n)
        buf_add(b, dir, n);
    else
        buf_adds(b, "/var/lib/kombofs");
}

static int env_set(const char *var)
{
    const char *v = getenv(var);
    return v && *v;
}

/* Multi mode (SPEC §9): no integration and no single cache; FILE must be
 * readable now (ilist.c parses it later). */
static int check_multi(struct parser *ps, int integration_given, int cache_given)
{
    struct options *o = ps->o;
    if (integration_given)
        return fail(ps, "--integration cannot be combined with --integrations-file (in multi mode the integrations are listed in FILE)");
    if (env_set("KOMBO_INTEGRATION_ID"))
        return fail(ps, "KOMBO_INTEGRATION_ID is set: it cannot be combined with --integrations-file (in multi mode the integrations are listed in FILE)");
    if (cache_given)
        return fail(ps, "--cache cannot be combined with --integrations-file: use --cache-dir in multi mode");
    if (env_set("KOMBO_CACHE"))
        return fail(ps, "KOMBO_CACHE is set: use --cache-dir in multi mode");
    if (!o->source)
        o->source = strdup("kombo");

    /* O_NONBLOCK: a FIFO must not hang the check. */
    int fd = open(o->integrations_file, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (fd < 0)
        return fail(ps, "cannot read integrations file '%s': %s", o->integrations_file,
                    strerror(errno));
    int rc = fstat(fd, &st);
    int e = errno;
    close(fd);
    if (rc < 0)
        return fail(ps, "cannot read integrations file '%s': %s", o->integrations_file,
                    strerror(e));
    if (S_ISDIR(st.st_mode))
        return fail(ps, "cannot read integrations file '%s': %s", o->integrations_file,
                    strerror(EISDIR));
    return 0;
}

static int check_and_fill(struct parser *ps)
{
    struct options *o = ps->o;
    struct stat st;
    int integration_given = o->integration != NULL;
    int cache_given = o->cache != NULL;

    o->multi = o->integrations_file != NULL;
    if (!o->multi && (o->discover || o->purge_deleted))
        return fail(ps, "--%s needs --integrations-file (multi mode)",
                    o->discover ? "discover" : "purge-deleted");
    if (o->multi && check_multi(ps, integration_given, cache_given) < 0)
        return -1;
    if (!o->multi) {
        from_env(&o->integration, "KOMBO_INTEGRATION_ID");
        if (!o->integration && o->source)
            o->integration = strdup(o->source);
        from_env(&o->cache, "KOMBO_CACHE");
    }
    from_env(&o->api_url, "KOMBO_API_URL");
    if (!o->api_url)
        o->api_url = strdup("https://api.kombo.dev/v1");
    if (!o->webhook_path)
        o->webhook_path = strdup("/webhook");

    if (o->check && !o->multi && o->mountpoint && !o->source) {
        /* kombofs --check SOURCE: the one argument is the integration */
        o->source = o->mountpoint;
        o->mountpoint = NULL;
        if (!o->integration)
            o->integration = strdup(o->source);
    }
    if (!o->mountpoint && !o->check)
        return fail(ps, "no mount point given (usage: kombofs [SOURCE] MOUNTPOINT [options])");
    int fd = options_mount_fd(o->mountpoint);
    if (fd >= 0) {
        /* mount.fuse3 -o drop_privileges mounted already and passes /dev/fuse:
         * libfuse's fuse_session_mount takes the descriptor as it is. */
        if (fcntl(fd, F_GETFD) < 0)
            return fail(ps, "mount point '%s': descriptor %d is not open", o->mountpoint, fd);
    } else if (o->mountpoint && stat(o->mountpoint, &st) < 0) {
        return fail(ps, "mount point '%s': %s", o->mountpoint, strerror(errno));
    } else if (o->mountpoint && !S_ISDIR(st.st_mode)) {
        return fail(ps, "mount point '%s' is not a directory", o->mountpoint);
    }
    if (!o->multi && (!o->integration || !*o->integration))
        return fail(ps, "no integration given: pass SOURCE, --integration=ID or KOMBO_INTEGRATION_ID");
    if (strncmp(o->api_url, "http://", 7) != 0 && strncmp(o->api_url, "https://", 8) != 0)
        return fail(ps, "--api-url '%s' is not an http(s) URL", o->api_url);

    if (o->api_key_file) {
        if (read_secret(ps, "API key", o->api_key_file, &o->api_key) < 0)
            return -1;
    } else {
        from_env(&o->api_key, "KOMBO_API_KEY");
    }
    if (!o->api_key && !o->offline)
        return fail(ps, "no API key: pass --api-key-file=FILE or set KOMBO_API_KEY");

    if (o->webhook_secret_file) {
        if (read_secret(ps, "webhook secret", o->webhook_secret_file, &o->webhook_secret) < 0)
            return -1;
    } else {
        from_env(&o->webhook_secret, "KOMBO_WEBHOOK_SECRET");
    }
    if (o->webhook_listen && !o->webhook_secret)
        return fail(ps, "--webhook-listen needs --webhook-secret-file=FILE or KOMBO_WEBHOOK_SECRET");
    if (o->webhook_path[0] != '/')
        return fail(ps, "--webhook-path '%s' must start with '/'", o->webhook_path);
    if (o->metrics_listen) {
        struct sockaddr_storage sa;
        socklen_t salen;
        char why[256];
        if (wevent_parse_listen(o->metrics_listen, &sa, &salen, why, sizeof why) < 0) {
            /* the same rules as --webhook-listen; its message names that option */
            const char *colon = strstr(why, ": ");
            return fail(ps, "--metrics-listen=%.100s: %s", o->metrics_listen,
                        colon ? colon + 2 : why);
        }
    }

    if (!o->cache_dir) {
        struct buf b = BUF_INIT;
        state_dir(&b);
        o->cache_dir = buf_detach(&b);
    }
    if (!o->cache && !o->multi) {
        struct buf b = BUF_INIT;
        state_dir(&b);
        buf_addc(&b, '/');
        fsname_escape(o->integration, strlen(o->integration), &b);
        buf_adds(&b, ".db");
        o->cache = buf_detach(&b);
    }
    if (make_absolute(ps, "mount point", &o->mountpoint) < 0 ||
        make_absolute(ps, "--cache", &o->cache) < 0 ||
        make_absolute(ps, "--cache-dir", &o->cache_dir) < 0 ||
        make_absolute(ps, "--integrations-file", &o->integrations_file) < 0)
        return -1;
    return 0;
}

static void build_fuse_argv(struct parser *ps)
{
    struct options *o = ps->o;
    o->fuse_argv = calloc(8, sizeof *o->fuse_argv);
    if (!o->fuse_argv)
        abort();
    o->fuse_argv[o->fuse_argc++] = strdup("kombofs");
    if (o->debug)
        o->fuse_argv[o->fuse_argc++] = strdup("-d");
    struct buf b = BUF_INIT;
    buf_adds(&b, "default_permissions,fsname=");
    /* fsname is shown in mount(8): the integration id, or in multi mode the
     * NAME; commas and backslashes would end or escape the option. */
    for (const char *p = o->multi ? o->source : o->integration; *p; p++)
        if (*p != ',' && *p != '\\')
            buf_addc(&b, *p);
    buf_adds(&b, ",subtype=kombofs");
    if (ps->fuse_opts.len) {
        buf_addc(&b, ',');
        buf_add(&b, ps->fuse_opts.data, ps->fuse_opts.len);
    }
    o->fuse_argv[o->fuse_argc++] = strdup("-o");
    o->fuse_argv[o->fuse_argc++] = buf_detach(&b);
}

int options_mount_fd(const char *mountpoint)
{
    if (!mountpoint || strncmp(mountpoint, "/dev/fd/", 8) != 0)
        return -1;
    const char *p = mountpoint + 8;
    if (*p < '0' || *p > '9' || strspn(p, "0123456789") != strlen(p) || strlen(p) > 9)
        return -1;
    char *end;
    long fd = strtol(p, &end, 10);
    return fd <= INT_MAX ? (int)fd : -1;
}

int options_parse(int argc, char **argv, struct options *o, char *err,
                  size_t errlen)
{
    struct parser ps = { o, err, errlen, BUF_INIT };
    memset(o, 0, sizeof *o);
    o->full_sync_interval = 7 * 86400;
    o->poll_interval = 3600;
    o->overlap = 60;
    o->changes_retention = 30 * 86400;
    o->models = MODELS_ALL;
    o->umask = 0;
    o->max_threads = 10;
    o->max_idle_threads = 10;
    o->kernel_notify = 1;
    o->max_connections = 4;

    int rc = parse_argv(&ps, argc, argv);
    if (rc == 0 && !o->show_help && !o->show_version) {
        rc = check_and_fill(&ps);
        o->kernel_notify = !o->no_kernel_notify;
        if (rc == 0)
            build_fuse_argv(&ps);
    }
    buf_free(&ps.fuse_opts);
    return rc;
}

static void wipe(char *s)
{
    if (s) {
        volatile char *p = s;
        while (*p)
            *p++ = 0;
        free(s);
    }
}

void options_free(struct options *o)
{
    free(o->source);
    free(o->mountpoint);
    free(o->integration);
    free(o->api_url);
    wipe(o->api_key);
    free(o->api_key_file);
    free(o->cache);
    free(o->webhook_listen);
    free(o->metrics_listen);
    free(o->webhook_path);
    wipe(o->webhook_secret);
    free(o->webhook_secret_file);
    free(o->integrations_file);
    free(o->cache_dir);
    for (int i = 0; i < o->fuse_argc; i++)
        free(o->fuse_argv[i]);
    free(o->fuse_argv);
    memset(o, 0, sizeof *o);
}
