/* What the observability layer (src/obs: metrics, admin endpoint) reads from the core besides the public
 * API. Private. */
#ifndef NC_CORE_OBS_SUPPORT_H
#define NC_CORE_OBS_SUPPORT_H

#include <stddef.h>

#include "core/log.h"
#include "nestc/client.h"
#include "nestc/message.h"
#include "nestc/server.h"

/* Bytes of the message's data JSON text when the packet gave it as text (the scan path), else 0: never
 * encodes, so it is cheap on every path. */
size_t nc_msg__data_len(const nc_msg *m);
/* The message's metadata object as JSON text while it is still text (the scan path, before anything asked
 * for nc_msg_metadata), else NULL: lets the tracer find one key without building the object. */
const char *nc_msg__meta_text(const nc_msg *m, size_t *len);
/* The wire counters of a server (every worker's slot) or client (io/wire.h), borrowed: take a reference
 * (nc_wire_block_ref) to keep them past nc_server_free / nc_client_free. NULL when not counted. */
struct nc_wire_block *nc_server__wire(nc_server *s);
struct nc_wire_block *nc_client__wire(nc_client *c);
const char *nc_client__scheme(nc_client *c); /* its URL scheme (core/client.c) */
/* The host and port of the client's URL (port -1 when the URL has none): the tracer's server.address. */
const char *nc_client__url_host(const nc_client *c, int *port);
/* The server's logger. (Its scheme: nc_server__scheme, core/server_transport.h.) */
const nc_logger *nc_server__logger(const nc_server *s);

#endif
