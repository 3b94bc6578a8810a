/*
 * sdnotify.h — systemd's notify protocol (sd_notify(3)) without libsystemd:
 * datagrams to the AF_UNIX socket named by $NOTIFY_SOCKET (a path, or an
 * abstract name written "@name"). Everything is a no-op without it.
 *
 *   READY=1, STOPPING=1, STATUS=…   sdnotify_send()
 *   WATCHDOG=1                      a thread, every $WATCHDOG_USEC/2, while
 *                                   the caller's health check says so
 *   EXTEND_TIMEOUT_USEC=…           between sdnotify_extend_begin() and
 *                                   sdnotify_extend_end() (a first fetch
 *                                   before READY=1): sent at the start and
 *                                   with every STATUS= message, so the
 *                                   start-up timeout is extended only while
 *                                   there is progress to report
 *
 * Ownership: every argument is borrowed; nothing is kept but the health
 * callback and its context, which must live until sdnotify_watchdog_stop().
 * All functions may be called from any thread.
 */
#ifndef KOMBOFS_SDNOTIFY_H
#define KOMBOFS_SDNOTIFY_H

/* Send one message ("READY=1\nSTATUS=…"). Returns 0 when sent, -1 when
 * there is no usable NOTIFY_SOCKET or the send failed. */
int sdnotify_send(const char *msg);

/* $WATCHDOG_USEC when it is meant for this process ($WATCHDOG_PID unset or
 * ours), else 0. */
unsigned long long sdnotify_watchdog_usec(void);

/* Start the pinging thread when sdnotify_watchdog_usec() is not 0 and
 * NOTIFY_SOCKET is set: WATCHDOG=1 every half of it while healthy(ctx)
 * returns non-zero (healthy may be NULL: always). Returns 1 if started, 0 if
 * there is no watchdog, -1 on error. */
int sdnotify_watchdog_start(int (*healthy)(void *ctx), void *ctx);
void sdnotify_watchdog_stop(void);

/* While a long start-up runs: EXTEND_TIMEOUT_USEC=usec now and with each
 * STATUS= sent until sdnotify_extend_end(). */
void sdnotify_extend_begin(unsigned long long usec);
void sdnotify_extend_end(void);

#endif
