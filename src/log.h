/*
 * log.h — the daemon's six logging functions (after OpenBSD's log.c).
 *
 * In the foreground lines go to stderr ("kombofs: warning: …"); once the
 * daemon is in the background they go to syslog (the journal under systemd).
 * log_warn and fatal append strerror(errno); the *x variants do not.
 * fatal/fatalx exit with status 1. No secret may ever be passed to them.
 */
#ifndef KOMBOFS_LOG_H
#define KOMBOFS_LOG_H

#include <stdnoreturn.h>

void log_init(int debug);          /* stderr, debug lines if debug */
void log_to_syslog(void);          /* after daemonising */
int log_debug_enabled(void);

/* systemd's notify protocol (Type=notify), without libsystemd: a no-op
 * unless NOTIFY_SOCKET is set. log_status sends "STATUS=<text>". */
void log_sd_notify(const char *msg);
__attribute__((format(printf, 1, 2))) void log_status(const char *fmt, ...);

__attribute__((format(printf, 1, 2))) void log_info(const char *fmt, ...);
__attribute__((format(printf, 1, 2))) void log_warn(const char *fmt, ...);
__attribute__((format(printf, 1, 2))) void log_warnx(const char *fmt, ...);
__attribute__((format(printf, 1, 2))) void log_debug(const char *fmt, ...);
__attribute__((format(printf, 1, 2))) noreturn void fatal(const char *fmt, ...);
__attribute__((format(printf, 1, 2))) noreturn void fatalx(const char *fmt, ...);

#endif
