/* Connection settings of a Redis URL, shared by the server and the client. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/tls.h"
#include "nestc/error.h"
#include "transport/redis/redis.h"

/* The options of redis:// and rediss:// (nestc/options.h), for the server and the client alike. */
const nc_option_spec nc_redis_options[] = {
    {.name = "wildcards",
     .type = NC_OPT_BOOL,
     .levels = NC_OPT_SERVER,
     .help = "NestJS `wildcards`: PSUBSCRIBE instead of SUBSCRIBE, so handler patterns are Redis globs",
     .def = "false"},
    {.name = NULL},
};

int nc_redis_refusal_err(const char *words) {
    return words && (!strncmp(words, "NOAUTH", 6) || !strncmp(words, "NOPERM", 6)) ? NC_EAUTH : NC_EPROTO;
}

int nc_redis_target_init(nc_redis_target *t, const nc_url *url, const nc_tls_opts *tls, const nc_logger *log,
                         const char *component) {
    memset(t, 0, sizeof *t);
    t->port = url->port >= 0 ? url->port : 6379;
    t->host = strdup(url->host[0] ? url->host : "localhost");
    if (!t->host) return NC_ENOMEM;
    if (url->password && *url->password) {
        t->password = strdup(url->password);
        if (url->user && *url->user) t->user = strdup(url->user);
    } else if (url->user && *url->user) {
        /* redis://secret@host is how many tools spell a password without a user name */
        t->password = strdup(url->user);
    }
    const char *db = url->path[0] == '/' ? url->path + 1 : url->path;
    if (*db) {
        char *end;
        long n = strtol(db, &end, 10);
        if (*end || n < 0 || n > 1000000) {
            nc_logf(log, NC_LOG_ERROR, component, "invalid database number \"%s\" in %s", db, url->text);
            nc_redis_target_free(t);
            return NC_EINVAL;
        }
        t->db = (int)n;
    }
    if (!strcmp(url->scheme, "rediss")) {
        static const nc_tls_opts none = {0};
        /* the server's own TLS options name its client certificate and the CA it trusts here: towards
         * Redis a nestc server is a client */
        nc_tls_opts o = tls ? *tls : none;
        char err[300];
        int r = nc_tls_ctx_new(&t->ssl, &o, 0, err, sizeof err);
        if (r) {
            nc_logf(log, NC_LOG_ERROR, component, "%s", err);
            nc_redis_target_free(t);
            return r;
        }
        t->verify_host = strdup(tls && tls->server_name ? tls->server_name : t->host);
    }
    return 0;
}

void nc_redis_target_free(nc_redis_target *t) {
    if (t->ssl) SSL_CTX_free(t->ssl);
    free(t->host);
    free(t->user);
    free(t->password);
    free(t->verify_host);
    memset(t, 0, sizeof *t);
}
