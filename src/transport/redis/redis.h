/* The Redis transport (redis:// and rediss://, spec redis.md): ops tables and the connection settings
 * both sides read from the URL. Private. */
#ifndef NC_TRANSPORT_REDIS_H
#define NC_TRANSPORT_REDIS_H

#include "core/log.h"
#include "core/url.h"
#include "nestc/tls.h"
#include "transport/redis/redis_conn.h"
#include "transport/transport.h"

extern const nc_server_transport nc_redis_server_transport;
extern const nc_client_transport nc_redis_client_transport;

/* Fills t from redis[s]://[user[:password]@]host[:port][/db]: host default localhost, port 6379; rediss
 * builds a TLS client context from tls (may be NULL: the system store). Returns 0 or NC_EINVAL / NC_ETLS
 * (logged). */
int nc_redis_target_init(nc_redis_target *t, const nc_url *url, const nc_tls_opts *tls, const nc_logger *log,
                         const char *component);
void nc_redis_target_free(nc_redis_target *t);

/* The error a refused command means, from Redis's words: NC_EAUTH for NOAUTH / NOPERM (a password or
 * an ACL permission missing), else NC_EPROTO. */
int nc_redis_refusal_err(const char *words);

/* The options of redis:// and rediss:// (wildcards), shared by the server and client tables. */
extern const nc_option_spec nc_redis_options[];

#endif
