#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "models.h"
#include "options.h"
#include "tap.h"

static char keyfile[64], idsfile[64], err[1024];

static int parse(struct options *o, const char *const *args)
{
    char *argv[32];
    int argc = 0;
    argv[argc++] = "kombofs";
    for (; *args; args++)
        argv[argc++] = (char *)*args;
    argv[argc] = NULL;
    err[0] = '\0';
    return options_parse(argc, argv, o, err, sizeof err);
}

#define ARGS(...) ((const char *const[]){ __VA_ARGS__, NULL })

static int has_fuse_opt(const struct options *o, const char *needle)
{
    for (int i = 0; i < o->fuse_argc; i++)
        if (strstr(o->fuse_argv[i], needle))
            return 1;
    return 0;
}

static void test_durations(void)
{
    long s;
    ok(options_duration("90", &s) == 0 && s == 90, "90");
    ok(options_duration("90s", &s) == 0 && s == 90, "90s");
    ok(options_duration("15m", &s) == 0 && s == 900, "15m");
    ok(options_duration("1h", &s) == 0 && s == 3600, "1h");
    ok(options_duration("7d", &s) == 0 && s == 604800, "7d");
    ok(options_duration("0", &s) == 0 && s == 0, "0");
    ok(options_duration("", &s) < 0 && options_duration("h", &s) < 0 &&
       options_duration("-1", &s) < 0 && options_duration("1w", &s) < 0 &&
       options_duration("1hh", &s) < 0 && options_duration("99999999999999999999d", &s) < 0,
       "bad durations refused");
}

/* Sums of units, as rclone users write them (SPEC §1). */
static void test_compound_durations(void)
{
    static const struct { const char *s; long secs; } good[] = {
        { "1h30m", 5400 }, { "2h", 7200 }, { "90s", 90 }, { "1d12h", 129600 },
        { "2d12h", 216000 }, { "1d12h30m15s", 131415 }, { "1m30s", 90 }, { "0h0m", 0 },
        { "1d1s", 86401 }, { "106751991167300d15h", 106751991167300L * 86400 + 54000 },
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        long s = -1;
        ok(options_duration(good[i].s, &s) == 0 && s == good[i].secs, "%s = %ld s (got %ld)",
           good[i].s, good[i].secs, s);
    }
    static const char *const bad[] = {
        "1h30", "30m1h", "1h1h", "1h 30m", "1h-30m", "1h+30m", "h1", "1x", "1h30x", "1hm",
        "1d12", "1.5h", " 1h", "1h ", "106751991167301d", "106751991167300d16h",
        "9223372036854775807s1s", "99999999999999999999s",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        long s = 12345;
        ok(options_duration(bad[i], &s) < 0 && s == 12345, "'%s' refused", bad[i]);
    }
}

static void test_good(void)
{
    struct options o;
    unsetenv("KOMBO_API_KEY");
    int rc = parse(&o, ARGS("personio:abc", "/tmp", "--api-key-file", keyfile,
                            "-o", "cache=/tmp/x.db,overlap=5m,allow_other,uid=7,umask=027",
                            "--models=employees,groups", "-f"));
    ok(rc == 0, "fstab-style command line parses (%s)", err);
    ok(rc == 0 && strcmp(o.integration, "personio:abc") == 0, "SOURCE is the integration");
    ok(rc == 0 && strcmp(o.api_key, "secret-key") == 0, "key read from file, newline stripped");
    ok(rc == 0 && strcmp(o.cache, "/tmp/x.db") == 0 && o.overlap == 300, "-o name=value");
    ok(rc == 0 && !o.compress, "records are not packed unless asked");
    struct options c1, c2;
    ok(parse(&c1, ARGS("personio:abc", "/tmp", "--api-key-file", keyfile, "--compress")) == 0 &&
       c1.compress && parse(&c2, ARGS("personio:abc", "/tmp", "--api-key-file", keyfile,
                                      "-o", "compress")) == 0 && c2.compress &&
       !has_fuse_opt(&c2, "compress"), "--compress and -o compress (ours, not FUSE's)");
    options_free(&c1);
    options_free(&c2);
    ok(rc == 0 && o.allow_other && has_fuse_opt(&o, "allow_other"), "allow_other passed to FUSE");
    ok(rc == 0 && o.uid_set && o.uid == 7 && o.umask == 027 && !has_fuse_opt(&o, "uid="),
       "uid and umask are ours");
    ok(rc == 0 && has_fuse_opt(&o, "default_permissions") && has_fuse_opt(&o, "subtype=kombofs"),
       "default_permissions and subtype always");
    ok(rc == 0 && o.models == ((1u << models_by_dir("employees")->index) |
                               (1u << models_by_dir("groups")->index)), "--models");
    ok(rc == 0 && o.foreground && o.full_sync_interval == 604800 && o.poll_interval == 3600 &&
       o.changes_retention == 30 * 86400, "defaults");
    ok(rc == 0 && strcmp(o.api_url, "https://api.kombo.dev/v1") == 0 &&
       strcmp(o.webhook_path, "/webhook") == 0, "default URL and webhook path");
    options_free(&o);

    rc = parse(&o, ARGS("personio:abc", "/tmp", "--api-key-file", keyfile));
    ok(rc == 0 && o.max_threads == 10 && o.max_idle_threads == 10, "10 FUSE workers, 10 idle kept");
    options_free(&o);
    rc = parse(&o, ARGS("personio:abc", "/tmp", "--api-key-file", keyfile, "-o",
                        "max_threads=64,max_idle_threads=0"));
    ok(rc == 0 && o.max_threads == 64 && o.max_idle_threads == 0 &&
       !has_fuse_opt(&o, "max_threads") && !has_fuse_opt(&o, "max_idle"),
       "-o max_threads= and max_idle_threads= are libfuse's loop options, ours to pass");
    options_free(&o);
    rc = parse(&o, ARGS("personio:abc", "/tmp", "--api-key-file", keyfile, "-o",
                        "ro,export_support"));
    ok(rc == 0 && o.export_support && !has_fuse_opt(&o, "export"),
       "-o export_support is ours (the kernel flag asked for at init), not libfuse's");
    options_free(&o);
    rc = parse(&o, ARGS("personio:abc", "/tmp", "--api-key-file", keyfile));
    ok(rc == 0 && !o.export_support, "no export_support unless asked");
    options_free(&o);
    rc = parse(&o, ARGS("personio:abc", "/tmp", "--api-key-file", keyfile, "-o",
                        "export_support=1"));
    ok(rc < 0 && strstr(err, "export_support"), "export_support takes no value: %s", err);
    options_free(&o);
    rc = parse(&o, ARGS("personio:abc", "/tmp", "--api-key-file", keyfile, "-o", "max_threads=0"));
    ok(rc < 0 && strstr(err, "max_threads"), "max_threads=0 is refused: %s", err);
    options_free(&o);
    rc = parse(&o, ARGS("personio:abc", "/tmp", "--api-key-file", keyfile, "-o",
                        "max_idle_threads=many"));
    ok(rc < 0 && strstr(err, "max_idle_threads"), "a word is refused: %s", err);
    options_free(&o);

    setenv("KOMBO_API_KEY", "env-key", 1);
    setenv("KOMBO_INTEGRATION_ID", "workday:xyz", 1);
    unsetenv("STATE_DIRECTORY");
    rc = parse(&o, ARGS("/tmp"));
    ok(rc == 0 && strcmp(o.integration, "workday:xyz") == 0 && strcmp(o.api_key, "env-key") == 0,
       "environment fills in (%s)", err);
    ok(rc == 0 && strcmp(o.cache, "/var/lib/kombofs/workday:xyz.db") == 0, "default cache path");
    options_free(&o);
    setenv("STATE_DIRECTORY", "/run/state:/other", 1);
    rc = parse(&o, ARGS("/tmp", "--integration=a/b"));
    ok(rc == 0 && strcmp(o.cache, "/run/state/a%2Fb.db") == 0, "STATE_DIRECTORY, escaped id");
    options_free(&o);
    unsetenv("STATE_DIRECTORY");

    /* The daemon runs in "/": relative paths are resolved where it was started. */
    char cwd[4096];
    ok(getcwd(cwd, sizeof cwd) && chdir("/tmp") == 0, "in /tmp");
    rc = parse(&o, ARGS(".", "--cache=sub/c.db"));
    ok(rc == 0 && strcmp(o.mountpoint, "/tmp/.") == 0 && strcmp(o.cache, "/tmp/sub/c.db") == 0,
       "relative mount point and cache made absolute (%s, %s)", o.mountpoint, o.cache);
    options_free(&o);
    ok(chdir(cwd) == 0, "back");
    unsetenv("KOMBO_INTEGRATION_ID");
    unsetenv("KOMBO_API_KEY");
}

static void expect_error(const char *const *args, const char *needle, const char *desc)
{
    struct options o;
    int rc = parse(&o, args);
    ok(rc < 0 && strstr(err, needle) && !strchr(err, '\n'), "%s: %s", desc, err);
    options_free(&o);
}

static void test_bad(void)
{
    expect_error(ARGS("personio:abc"), "mount point", "no mount point");
    expect_error(ARGS("personio:abc", "/nonexistent-dir-kombofs", "--api-key-file", keyfile),
                 "No such file", "missing mount point");
    expect_error(ARGS("/tmp", "--api-key-file", keyfile), "no integration", "no integration");
    expect_error(ARGS("x:y", "/tmp"), "no API key", "no key");
    expect_error(ARGS("x:y", "/tmp", "--api-key-file=/nonexistent"), "cannot read API key",
                 "unreadable key file");
    expect_error(ARGS("x:y", "/tmp", "--api-key=abc"), "never accepted", "key as an option");
    expect_error(ARGS("x:y", "/tmp", "-o", "api_key=abc"), "never accepted", "key as -o");
    expect_error(ARGS("x:y", "/tmp", "--api-key-file", keyfile, "--webhook-listen=127.0.0.1:1"),
                 "webhook-secret", "receiver without a secret");
    expect_error(ARGS("x:y", "/tmp", "--api-key-file", keyfile, "--overlap=5x"), "bad duration",
                 "bad duration");
    expect_error(ARGS("x:y", "/tmp", "--api-key-file", keyfile, "--models=employees,foo"),
                 "unknown directory 'foo'", "bad model");
    expect_error(ARGS("x:y", "/tmp", "--api-key-file", keyfile, "--frobnicate"), "unknown option",
                 "unknown option");
    expect_error(ARGS("x:y", "/tmp", "/tmp", "--api-key-file", keyfile), "unexpected argument",
                 "three positionals");
    expect_error(ARGS("x:y", "/tmp", "--api-key-file", keyfile, "-o", "uid=abc"),
                 "no user named 'abc'", "bad uid");
    expect_error(ARGS("x:y", "/tmp", "--api-key-file", keyfile, "--api-url=ftp://x"), "not an http",
                 "bad URL");
    expect_error(ARGS("x:y", "/tmp", "--api-key-file", keyfile, "--cache"), "needs a value",
                 "missing value");
}

/* Multi mode (SPEC §9): --integrations-file and the options that go with it. */
static void test_multi(void)
{
    struct options o;
    unsetenv("KOMBO_API_KEY");
    unsetenv("KOMBO_INTEGRATION_ID");
    unsetenv("KOMBO_CACHE");
    unsetenv("STATE_DIRECTORY");

    int rc = parse(&o, ARGS("kombo", "/tmp", "--integrations-file", idsfile, "--api-key-file",
                            keyfile));
    ok(rc == 0, "multi mode parses (%s)", err);
    ok(rc == 0 && o.multi == 1 && strcmp(o.integrations_file, idsfile) == 0,
       "--integrations-file turns multi mode on");
    ok(rc == 0 && strcmp(o.source, "kombo") == 0 && o.integration == NULL && o.cache == NULL,
       "SOURCE is only a name: no integration, no single cache");
    ok(rc == 0 && has_fuse_opt(&o, "fsname=kombo,"), "the NAME is the fsname shown in mount(8)");
    ok(rc == 0 && strcmp(o.cache_dir, "/var/lib/kombofs") == 0, "default --cache-dir (%s)",
       rc == 0 ? o.cache_dir : "");
    ok(rc == 0 && o.max_connections == 4 && !o.discover && !o.purge_deleted,
       "defaults: 4 connections, no discovery, no purge");
    options_free(&o);

    rc = parse(&o, ARGS("/tmp", "--integrations-file=/dev/null", "--api-key-file", keyfile));
    ok(rc == 0 && o.multi && strcmp(o.source, "kombo") == 0 && has_fuse_opt(&o, "fsname=kombo,"),
       "no SOURCE needed in multi mode: named kombo (%s)", err);
    options_free(&o);

    rc = parse(&o, ARGS("hr,x", "/tmp", "--api-key-file", keyfile, "-o",
                        "integrations_file=/dev/null,cache_dir=/srv/c,discover,purge_deleted,"
                        "max_connections=16"));
    ok(rc == 0 && o.multi && strcmp(o.integrations_file, "/dev/null") == 0 &&
       strcmp(o.cache_dir, "/srv/c") == 0 && o.discover && o.purge_deleted &&
       o.max_connections == 16, "every multi-mode option as -o name=value (%s)", err);
    ok(rc == 0 && has_fuse_opt(&o, "fsname=hrx,"), "a comma in NAME does not reach FUSE");
    options_free(&o);

    rc = parse(&o, ARGS("/tmp", "--integrations-file", idsfile, "--api-key-file", keyfile,
                        "--discover", "--purge-deleted", "--cache-dir", "/srv/kombo"));
    ok(rc == 0 && o.discover && o.purge_deleted && strcmp(o.cache_dir, "/srv/kombo") == 0,
       "--discover, --purge-deleted, --cache-dir DIR (%s)", err);
    options_free(&o);

    setenv("STATE_DIRECTORY", "/run/state:/other", 1);
    rc = parse(&o, ARGS("/tmp", "--integrations-file", idsfile, "--api-key-file", keyfile));
    ok(rc == 0 && strcmp(o.cache_dir, "/run/state") == 0, "--cache-dir defaults to STATE_DIRECTORY");
    options_free(&o);
    unsetenv("STATE_DIRECTORY");

    /* Single mode accepts --cache-dir and ignores it; --cache keeps its meaning. */
    rc = parse(&o, ARGS("x:y", "/tmp", "--api-key-file", keyfile, "--cache-dir=/srv/c"));
    ok(rc == 0 && !o.multi && strcmp(o.integration, "x:y") == 0 &&
       strcmp(o.cache, "/var/lib/kombofs/x:y.db") == 0, "single mode: --cache-dir ignored (%s)",
       err);
    options_free(&o);

    /* The daemon runs in "/": relative FILE and DIR are resolved where it started. */
    char cwd[4096], rel[64];
    snprintf(rel, sizeof rel, "%s", idsfile + 5);  /* "/tmp/" stripped */
    ok(getcwd(cwd, sizeof cwd) && chdir("/tmp") == 0, "in /tmp");
    rc = parse(&o, ARGS("/tmp", "--api-key-file", keyfile, "-o", "cache_dir=state/kombo",
                        "--integrations-file", rel));
    ok(rc == 0 && strcmp(o.integrations_file, idsfile) == 0 &&
       strcmp(o.cache_dir, "/tmp/state/kombo") == 0,
       "relative --integrations-file and --cache-dir made absolute (%s, %s)",
       rc == 0 ? o.integrations_file : err, rc == 0 ? o.cache_dir : "");
    options_free(&o);
    ok(chdir(cwd) == 0, "back");

    /* --max-connections, in single mode too */
    rc = parse(&o, ARGS("x:y", "/tmp", "--api-key-file", keyfile));
    ok(rc == 0 && o.max_connections == 4, "--max-connections defaults to 4");
    options_free(&o);
    rc = parse(&o, ARGS("x:y", "/tmp", "--api-key-file", keyfile, "--max-connections=1"));
    ok(rc == 0 && o.max_connections == 1, "--max-connections=1");
    options_free(&o);
    rc = parse(&o, ARGS("x:y", "/tmp", "--api-key-file", keyfile, "--max-connections", "64"));
    ok(rc == 0 && o.max_connections == 64, "--max-connections 64");
    options_free(&o);

    ok(strstr(options_usage, "--integrations-file=FILE") &&
       strstr(options_usage, "--cache-dir=DIR") && strstr(options_usage, "--discover") &&
       strstr(options_usage, "--purge-deleted") && strstr(options_usage, "--max-connections=N") &&
       strstr(options_usage, "ignored in single mode"),
       "--help lists the multi-mode options");
}

static void expect_error(const char *const *args, const char *needle, const char *desc);

/* Issue 16: what operators write in fstab and unit files. */
static void test_operations(void)
{
    struct options o;
    int rc;
    unsetenv("KOMBO_API_KEY");
    unsetenv("KOMBO_INTEGRATION_ID");

    /* uid= and gid= take names (examples/kombofs.env has gid=hr). */
    struct group *gr = getgrnam("daemon");
    struct passwd *pw = getpwnam("daemon");
    gid_t daemon_gid = gr ? gr->gr_gid : 0;
    uid_t daemon_uid = pw ? pw->pw_uid : 0;
    ok(gr && pw && daemon_gid != 0 && daemon_uid != 0, "this system has a user and group daemon");
    rc = parse(&o, ARGS("x:y", "/tmp", "--api-key-file", keyfile, "-o", "uid=daemon,gid=daemon"));
    ok(rc == 0 && o.uid_set && o.uid == daemon_uid && o.gid_set && o.gid == daemon_gid,
       "uid=daemon,gid=daemon looked up (%s)", err);
    ok(rc == 0 && !has_fuse_opt(&o, "uid=") && !has_fuse_opt(&o, "gid="), "and stay ours");
    options_free(&o);
    rc = parse(&o, ARGS("x:y", "/tmp", "--api-key-file", keyfile, "-o", "uid=root,gid=0"));
    ok(rc == 0 && o.uid == 0 && o.gid_set && o.gid == 0, "uid=root, gid=0 (%s)", err);
    options_free(&o);
    expect_error(ARGS("x:y", "/tmp", "--api-key-file", keyfile, "-o", "gid=no-such-group-kfs"),
                 "option 'gid': no group named 'no-such-group-kfs'", "unknown group");
    expect_error(ARGS("x:y", "/tmp", "--api-key-file", keyfile, "-o", "uid=no-such-user-kfs"),
                 "option 'uid': no user named 'no-such-user-kfs'", "unknown user");
    expect_error(ARGS("x:y", "/tmp", "--api-key-file", keyfile, "-o", "uid=-1"),
                 "option 'uid'", "uid=-1");
    expect_error(ARGS("x:y", "/tmp", "--api-key-file", keyfile, "-o", "gid="),
                 "option 'gid' needs a value", "gid=");

    /* Messages that say what is expected. */
    expect_error(ARGS("x:y", "/tmp", "--api-key-file", keyfile, "-o", "umask=999"),
                 "an octal number", "umask=999 says octal");
    expect_error(ARGS("x:y", "/tmp", "--api-key-file", keyfile, "--models=payroll"),
                 "unknown directory 'payroll' (valid: employees, employments, groups, "
                 "absences, absence-types, time-off-balances, timesheets, legal-entities, "
                 "locations)", "--models=payroll lists the valid names");
    expect_error(ARGS("x:y", "/tmp", "--api-key-file", keyfile, "--poll-interval=1h30"),
                 "1h30m", "a bad duration shows a sum as an example");

    /* mount.fuse3 -o drop_privileges: the mount point is /dev/fd/N. */
    int fd = open("/dev/null", O_RDWR);
    char fdpath[32];
    snprintf(fdpath, sizeof fdpath, "/dev/fd/%d", fd);
    rc = parse(&o, ARGS("x:y", fdpath, "--api-key-file", keyfile));
    ok(rc == 0 && strcmp(o.mountpoint, fdpath) == 0, "%s is a mount point (%s)", fdpath, err);
    options_free(&o);
    ok(options_mount_fd(fdpath) == fd && options_mount_fd("/dev/fd/") < 0 &&
       options_mount_fd("/dev/fd/1x") < 0 && options_mount_fd("/dev/fdx/1") < 0 &&
       options_mount_fd("/tmp") < 0 && options_mount_fd(NULL) < 0 &&
       options_mount_fd("/dev/fd/99999999999") < 0, "options_mount_fd");
    close(fd);
    expect_error(ARGS("x:y", fdpath, "--api-key-file", keyfile), "is not open",
                 "a closed /dev/fd/N");
    expect_error(ARGS("x:y", "/dev/null", "--api-key-file", keyfile), "is not a directory",
                 "a device that is not /dev/fd/N is still refused");

    /* -v and -q, repeatable. */
    rc = parse(&o, ARGS("x:y", "/tmp", "--api-key-file", keyfile));
    ok(rc == 0 && o.verbosity == 0, "verbosity 0 by default");
    options_free(&o);
    rc = parse(&o, ARGS("x:y", "/tmp", "--api-key-file", keyfile, "-v", "-vv", "--verbose"));
    ok(rc == 0 && o.verbosity == 4, "-v -vv --verbose: 4 (%s)", err);
    options_free(&o);
    rc = parse(&o, ARGS("x:y", "/tmp", "--api-key-file", keyfile, "-q", "--quiet", "-o", "quiet"));
    ok(rc == 0 && o.verbosity == -3, "-q --quiet -o quiet: -3 (%s)", err);
    options_free(&o);
    rc = parse(&o, ARGS("x:y", "/tmp", "--api-key-file", keyfile, "-o", "verbose", "-qq"));
    ok(rc == 0 && o.verbosity == -1, "-o verbose -qq: -1 (%s)", err);
    options_free(&o);
    expect_error(ARGS("x:y", "/tmp", "--api-key-file", keyfile, "-vq"), "unknown option '-vq'",
                 "-vq");
    expect_error(ARGS("x:y", "/tmp", "--api-key-file", keyfile, "-o", "verbose=2"),
                 "takes no value", "verbose=2");

    /* --metrics-listen: checked as --webhook-listen is. */
    rc = parse(&o, ARGS("x:y", "/tmp", "--api-key-file", keyfile, "--metrics-listen=127.0.0.1:9187"));
    ok(rc == 0 && o.metrics_listen && strcmp(o.metrics_listen, "127.0.0.1:9187") == 0,
       "--metrics-listen=127.0.0.1:9187 (%s)", err);
    options_free(&o);
    rc = parse(&o, ARGS("x:y", "/tmp", "--api-key-file", keyfile, "-o", "metrics_listen=[::1]:9187"));
    ok(rc == 0 && o.metrics_listen && strcmp(o.metrics_listen, "[::1]:9187") == 0,
       "-o metrics_listen=[::1]:9187 (%s)", err);
    options_free(&o);
    rc = parse(&o, ARGS("x:y", "/tmp", "--api-key-file", keyfile));
    ok(rc == 0 && o.metrics_listen == NULL, "no metrics listener by default");
    options_free(&o);
    expect_error(ARGS("x:y", "/tmp", "--api-key-file", keyfile, "--metrics-listen=127.0.0.1:99999"),
                 "--metrics-listen=127.0.0.1:99999: the port must be a number", "bad metrics port");
    expect_error(ARGS("x:y", "/tmp", "--api-key-file", keyfile, "--metrics-listen=nonsense"),
                 "--metrics-listen=nonsense: expected ADDR:PORT", "bad metrics address");
    expect_error(ARGS("x:y", "/tmp", "--api-key-file", keyfile, "--metrics-listen="),
                 "needs a value", "empty --metrics-listen");
    ok(strstr(options_usage, "--metrics-listen=ADDR:PORT") && strstr(options_usage, "--verbose") &&
       strstr(options_usage, "--quiet") && strstr(options_usage, "1h30m"),
       "--help lists --metrics-listen, -v, -q and compound durations");
}

static void test_multi_bad(void)
{
    expect_error(ARGS("/tmp", "--api-key-file", keyfile, "--integrations-file", idsfile,
                      "--integration=x:y"), "--integration cannot be combined",
                 "--integration in multi mode");
    expect_error(ARGS("x:y", "/tmp", "--api-key-file", keyfile, "-o",
                      "integration=x:y,integrations_file=/dev/null"),
                 "--integration cannot be combined", "-o integration= in multi mode");
    setenv("KOMBO_INTEGRATION_ID", "x:y", 1);
    expect_error(ARGS("/tmp", "--api-key-file", keyfile, "--integrations-file", idsfile),
                 "KOMBO_INTEGRATION_ID", "KOMBO_INTEGRATION_ID in multi mode");
    unsetenv("KOMBO_INTEGRATION_ID");
    expect_error(ARGS("/tmp", "--api-key-file", keyfile, "--integrations-file", idsfile,
                      "--cache=/tmp/x.db"), "use --cache-dir in multi mode",
                 "--cache in multi mode");
    setenv("KOMBO_CACHE", "/tmp/x.db", 1);
    expect_error(ARGS("/tmp", "--api-key-file", keyfile, "--integrations-file", idsfile),
                 "use --cache-dir in multi mode", "KOMBO_CACHE in multi mode");
    unsetenv("KOMBO_CACHE");
    expect_error(ARGS("/tmp", "--api-key-file", keyfile, "--integrations-file",
                      "/nonexistent/kombofs-ids"),
                 "cannot read integrations file '/nonexistent/kombofs-ids': No such file",
                 "missing integrations file");
    expect_error(ARGS("/tmp", "--api-key-file", keyfile, "--integrations-file", "/tmp"),
                 "cannot read integrations file '/tmp': Is a directory",
                 "a directory as integrations file");
    expect_error(ARGS("/tmp", "--api-key-file", keyfile, "--integrations-file"), "needs a value",
                 "--integrations-file without FILE");
    expect_error(ARGS("/tmp", "--api-key-file", keyfile, "--integrations-file", idsfile,
                      "--cache-dir="), "needs a value", "empty --cache-dir");
    expect_error(ARGS("x:y", "/tmp", "--api-key-file", keyfile, "--discover"),
                 "--discover needs --integrations-file", "--discover in single mode");
    expect_error(ARGS("x:y", "/tmp", "--api-key-file", keyfile, "-o", "purge_deleted"),
                 "--purge-deleted needs --integrations-file", "purge_deleted in single mode");
    expect_error(ARGS("/tmp", "--api-key-file", keyfile, "--integrations-file", idsfile,
                      "-o", "discover=yes"), "takes no value", "discover=yes");
    static const char *const bad[] = { "0", "65", "-1", "abc", "4x", "", "99999999999999999999" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char arg[64];
        snprintf(arg, sizeof arg, "--max-connections=%s", bad[i]);
        expect_error(ARGS("x:y", "/tmp", "--api-key-file", keyfile, arg),
                     "option 'max-connections': bad value", arg);
    }
    expect_error(ARGS("x:y", "/tmp", "--api-key-file", keyfile, "-o", "max_connections=100"),
                 "a number from 1 to 64", "-o max_connections=100");
}

int main(void)
{
    snprintf(keyfile, sizeof keyfile, "/tmp/kombofs-test-key-%d", (int)getpid());
    FILE *f = fopen(keyfile, "w");
    fputs("secret-key\n", f);
    fclose(f);
    snprintf(idsfile, sizeof idsfile, "/tmp/kombofs-test-ids-%d", (int)getpid());
    f = fopen(idsfile, "w");
    fputs("personio:abc\n", f);
    fclose(f);
    test_durations();
    test_compound_durations();
    test_operations();
    test_good();
    test_bad();
    test_multi();
    test_multi_bad();
    unlink(keyfile);
    unlink(idsfile);
    return tap_done_testing();
}
