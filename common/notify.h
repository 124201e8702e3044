/*
 * notify.h — the systemd notification protocol, without libsystemd.
 *
 * notify_send sends one datagram ("READY=1", "WATCHDOG=1", "STOPPING=1",
 * "STATUS=…") to $NOTIFY_SOCKET when it is set, and does nothing otherwise.
 * notify_watchdog_usec returns the watchdog interval systemd asked for
 * ($WATCHDOG_USEC, when $WATCHDOG_PID is unset or ours), or 0.
 */
#ifndef CN2_NOTIFY_H
#define CN2_NOTIFY_H

#include <stdint.h>

int notify_send(const char *state);
uint64_t notify_watchdog_usec(void);

#endif
