/* A listening TCP socket on the loop, as every server transport that accepts connections opens it. Private.
 */
#ifndef NC_IO_LISTEN_H
#define NC_IO_LISTEN_H

#include <stddef.h>
#include <uv.h>

/* Resolves host (IPv4 or IPv6; "0.0.0.0", "::", a name), initialises `listener` on `loop` and listens on
 * host:port with a backlog of 1024, calling `on_connection` for each connection
 * (the handle's data is `data`). `reuseport`: SO_REUSEPORT,
 * for workers that each listen on the same port from their own loop (the kernel spreads the connections).
 * Returns 0 with *bound_port the port bound (the one chosen when port is 0); or NC_ERESOLVE when the host
 * does not resolve (the handle was not initialised), or the error of the bind or listen, the handle then
 * being closed (without a callback: it is not used again). `why` gets the reason in words. */
int nc_listen_tcp(uv_loop_t *loop, uv_tcp_t *listener, const char *host, int port, int reuseport,
                  uv_connection_cb on_connection, void *data, int *bound_port, char *why, size_t whylen);

#endif
