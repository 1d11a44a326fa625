/* What the broker transports' self-owned connections (MQTT, NATS: one nc_dial each) say when they end:
 * the stream's end turned into one reason that names the phase it happened in, and a failure of ours
 * closed and logged once. Private. */
#ifndef NC_TRANSPORT_DIAL_CONN_H
#define NC_TRANSPORT_DIAL_CONN_H

#include "core/log.h"
#include "io/dial.h"

/* For the stream's on_end: ends the dial (nc_dial_end) with the reason to report. If we closed it
 * (nc_dial_fail: the connect timeout included), that reason, a timeout completed with `no_greeting` when
 * given ("<reason>: <no_greeting>": the TCP connection was made, the peer never answered). Else, when
 * `closed_in` is given (the peer closed it during a handshake), "<closed_in> (<the stream's reason>)",
 * NC_ECONNCLOSED when the stream gave no code. */
void nc_dial_conn_stream_end(nc_dial *d, int err, const char *msg, const char *no_greeting,
                             const char *closed_in);

/* Closes the connection for a reason of ours (nc_dial_fail) and logs "<proto> connection to
 * <host>:<port>: <msg>" the first time (whole in the log, a long reason may be cut in the report). */
void nc_dial_conn_fail(nc_dial *d, int err, const char *msg, const nc_logger *log, const char *component,
                       const char *proto, const char *host, int port);

#endif
