/* The admin HTTP endpoint of a server (nc_server_opts.admin): /metrics, /health/live, /health/ready, on
 * the server's own loop. The core creates, starts and closes it through these calls only (as it reaches
 * the transports through transport/transport.h). Private. */
#ifndef NC_OBS_ADMIN_H
#define NC_OBS_ADMIN_H

#include <stdatomic.h>

#include "nestc/metrics.h"
#include "nestc/server.h"

typedef struct nc_admin nc_admin;

/* Parses `addr` ("host:port", "[v6]:port"; port 0 = any free port), makes a metrics registry and has it
 * watch `srv` (call before workers start, so they are counted too). Nothing is opened yet. Returns 0,
 * NC_EINVAL (the address, logged), NC_ENOMEM, or the error of installing the hook set. */
int nc_admin_new(nc_admin **out, nc_server *srv, const char *addr);
/* Binds and listens on the server's loop. Returns 0, NC_EADDRINUSE, NC_ERESOLVE, NC_EIO ... */
int nc_admin_listen(nc_admin *a);
int nc_admin_port(const nc_admin *a);
nc_metrics *nc_admin_metrics(nc_admin *a);
/* Closes the listener and every connection; `done(user)` runs once all their handles are closed (on the
 * loop; at once when nothing was open). */
void nc_admin_close(nc_admin *a, void (*done)(void *), void *user);
/* nc_admin_close once *closed (counted by other threads) reaches `want`: with workers, the endpoint stays
 * while any worker still drains (polled every 20 ms on the loop, a handle the close waits for). */
void nc_admin_close_after(nc_admin *a, _Atomic int *closed, int want, void (*done)(void *), void *user);
/* Frees it (closing it first, running the loop until closed, when that was not done). NULL: no-op. */
void nc_admin_free(nc_admin *a);

#endif
