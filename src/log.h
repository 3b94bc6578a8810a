/*
 * log.h — the daemon's logging functions (after OpenBSD's log.c).
 *
 * Three destinations:
 *   - stderr, in the foreground: "HH:MM:SS.mmm kombofs: warning: …";
 *   - the journal, when stderr is it (JOURNAL_STREAM names stderr's device
 *     and inode, as systemd sets it for a unit with -f): "<4>warning: …",
 *     the syslog priority as sd-daemon(3)'s prefix and no timestamp of ours
 *     (the journal has its own), so `journalctl -p warning` filters;
 *   - syslog, once the daemon is in the background (log_to_syslog()).
 * Priorities are syslog's: error 3, warning 4, notice 5, info 6, debug 7;
 * lines above the level given to log_init() are dropped.
 * log_warn, log_err and fatal append strerror(errno); the *x variants do
 * not. fatal/fatalx exit with status 1. No secret may ever be passed to them.
 *
 * Ownership: formats and arguments are borrowed and never kept. Every
 * function may be called from any thread (a line is written in one piece).
 */
#ifndef KOMBOFS_LOG_H
#define KOMBOFS_LOG_H

#include <stdarg.h>
#include <stdnoreturn.h>

/* stderr (or the journal, see above), lines up to `level` (LOG_ERR ..
 * LOG_DEBUG of <syslog.h>; clamped to that range). */
void log_init(int level);
void log_to_syslog(void);          /* after daemonising */
int log_debug_enabled(void);
int log_to_journal(void);          /* 1 when stderr is the journal */

/* systemd's notify protocol (Type=notify) through sdnotify.h: a no-op
 * unless NOTIFY_SOCKET is set. log_status sends "STATUS=<text>". */
void log_sd_notify(const char *msg);
__attribute__((format(printf, 1, 2))) void log_status(const char *fmt, ...);

/* A line at syslog priority `pri` with the label of that priority ("error: ",
 * "warning: ", "" for notice and info, "debug: "); for messages of other
 * libraries (libfuse's fuse_set_log_func). */
void log_vmsg(int pri, const char *fmt, va_list ap);

/* A one-line error before the daemon starts (a bad option): "kombofs: …" on
 * stderr without a timestamp ("<3>…" when stderr is the journal). */
__attribute__((format(printf, 1, 2))) void log_usage_error(const char *fmt, ...);

__attribute__((format(printf, 1, 2))) void log_err(const char *fmt, ...);
__attribute__((format(printf, 1, 2))) void log_errx(const char *fmt, ...);
__attribute__((format(printf, 1, 2))) void log_notice(const char *fmt, ...);
__attribute__((format(printf, 1, 2))) void log_info(const char *fmt, ...);
__attribute__((format(printf, 1, 2))) void log_warn(const char *fmt, ...);
__attribute__((format(printf, 1, 2))) void log_warnx(const char *fmt, ...);
__attribute__((format(printf, 1, 2))) void log_debug(const char *fmt, ...);
__attribute__((format(printf, 1, 2))) noreturn void fatal(const char *fmt, ...);
__attribute__((format(printf, 1, 2))) noreturn void fatalx(const char *fmt, ...);

#endif
