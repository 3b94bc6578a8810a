/*
 * options.h — the command line of SPEC §1: kombofs [SOURCE] MOUNTPOINT [options].
 *
 * Every long option also works as -o name=value (dashes become underscores).
 * Environment variables fill what the command line leaves unset.
 * Options that are FUSE's own (allow_other, ro, nosuid, …) are collected in
 * fuse_argv for fuse_session_new(); uid=, gid= and umask= are kombofs's own
 * because the low-level API leaves them to the file system.
 *
 * Multi mode (SPEC §9) is on when --integrations-file is given: SOURCE is
 * then only the name shown in mount(8) (default "kombo"), integration is
 * NULL, and the FILE (checked readable here, parsed by ilist.c) lists the
 * integrations; caches go to cache_dir. cache_dir is filled in single mode
 * too, and ignored there.
 *
 * Ownership: options_parse() fills a struct options whose strings are heap
 * copies owned by it; options_free() releases them (and wipes the secrets).
 */
#ifndef KOMBOFS_OPTIONS_H
#define KOMBOFS_OPTIONS_H

#include <stddef.h>
#include <sys/types.h>

struct options {
    char *source;
    char *mountpoint;
    char *integration;
    char *api_url;
    char *api_key;              /* secret: never logged */
    char *api_key_file;
    char *cache;
    char *webhook_listen;
    char *webhook_path;
    char *webhook_secret;       /* secret: never logged */
    char *webhook_secret_file;
    char *metrics_listen;       /* --metrics-listen=ADDR:PORT, checked as --webhook-listen */
    long full_sync_interval;    /* seconds; 0 = only on demand */
    long poll_interval;         /* seconds; 0 = off */
    long overlap;               /* seconds */
    long changes_retention;     /* seconds */
    unsigned models;            /* bit mask over models_table */
    int offline;
    int kernel_notify;          /* 0: --no-kernel-notify (tests of the mechanism) */
    int no_kernel_notify;
    int no_read_ahead;          /* --no-read-ahead: never push files into the page cache */
    int compress;               /* --compress: records packed with zstd (pack.h) */
    int foreground;
    int debug;
    int verbosity;              /* -v/--verbose adds 1, -q/--quiet takes 1 away */
    int single_thread;
    int allow_other;
    int uid_set, gid_set;       /* uid= and gid= take a number or a name */
    uid_t uid;
    gid_t gid;
    mode_t umask;               /* applied to the default modes */
    int max_threads;            /* -o max_threads=N: FUSE worker threads at most (10) */
    int max_idle_threads;       /* -o max_idle_threads=N: idle ones kept (10) */
    int export_support;         /* -o export_support: file handles for NFS (SPEC §11) */
    int show_version;
    int show_help;
    int check;                  /* --check: validate and exit, no mount */
    /* multi mode (SPEC §9) */
    char *integrations_file;    /* --integrations-file: absolute path */
    char *cache_dir;            /* --cache-dir: absolute; default $STATE_DIRECTORY or
                                   /var/lib/kombofs */
    int multi;                  /* 1 when integrations_file is given */
    int discover;               /* --discover: integration-created adds (multi only) */
    int purge_deleted;          /* --purge-deleted: integration-deleted purges (multi only) */
    int max_connections;        /* --max-connections: API requests in flight, 1..64 (4) */
    int fuse_argc;              /* argv for fuse_session_new, [0] = "kombofs" */
    char **fuse_argv;
};

/* Parse argv and the environment. Returns 0 on success. On a bad command
 * line returns -1 with a one-line message (no trailing newline) in err.
 * Reads the key and secret files. With --help or --version, returns 0
 * without checking the rest. */
int options_parse(int argc, char **argv, struct options *o, char *err,
                  size_t errlen);

/* "90", "90s", "15m", "1h", "7d", and sums with each unit once, largest
 * first ("1h30m", "2d12h", "1d12h30m15s") -> seconds. Returns 0, or -1 if
 * invalid or beyond a long. */
int options_duration(const char *s, long *secs);

/* The descriptor N of a mount point "/dev/fd/N" (mount.fuse3 -o
 * drop_privileges has mounted and passes the /dev/fuse descriptor), or -1. */
int options_mount_fd(const char *mountpoint);

void options_free(struct options *o);

/* The usage text for --help. */
extern const char options_usage[];

#endif
