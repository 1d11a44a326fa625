/* Connection settings of a NATS URL, shared by the server and the client. */
#include <stdlib.h>
#include <string.h>

#include "io/tls.h"
#include "nestc/error.h"
#include "transport/nats/nats.h"

/* The options of nats:// (nestc/options.h), for the server and the client alike. */
const nc_option_spec nc_nats_options[] = {
    {.name = "queue",
     .type = NC_OPT_STRING,
     .levels = NC_OPT_SERVER | NC_OPT_HANDLER,
     .help =
         "queue group of the subscriptions (NestJS `queue`): the members of a group share its messages; a "
         "handler's replaces the server's for its route"},
    {.name = "name",
     .type = NC_OPT_STRING,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "connection name shown by the NATS server (CONNECT `name`)"},
    {.name = "tls",
     .type = NC_OPT_BOOL,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "require TLS (also on when TLS options are given, and whenever the NATS server asks for it)",
     .def = "false"},
    {.name = NULL},
};

int nc_nats_target_init(nc_nats_target *t, const nc_url *url, const nc_optset *opts, const nc_tls_opts *tls,
                        const nc_logger *log, const char *component) {
    memset(t, 0, sizeof *t);
    t->port = url->port >= 0 ? url->port : 4222;
    t->host = strdup(url->host[0] ? url->host : "localhost");
    if (!t->host) return NC_ENOMEM;
    if (url->user && *url->user) {
        if (url->password) { /* user:pass@ */
            t->user = strdup(url->user);
            t->pass = strdup(url->password);
        } else { /* token@, as nats.js reads it */
            t->token = strdup(url->user);
        }
    }
    const char *name = nc_opts_str(opts, "name");
    if (name && !(t->name = strdup(name))) {
        nc_nats_target_free(t);
        return NC_ENOMEM;
    }
    t->tls_required = tls != NULL || nc_opts_bool(opts, "tls");
    if (tls) {
        char err[300];
        int r = nc_tls_ctx_new(&t->ssl, tls, 0, err, sizeof err);
        if (r) {
            nc_logf(log, NC_LOG_ERROR, component, "%s", err);
            nc_nats_target_free(t);
            return r;
        }
        if (tls->server_name) t->verify_host = strdup(tls->server_name);
    }
    return 0;
}

void nc_nats_target_free(nc_nats_target *t) {
    if (t->ssl) SSL_CTX_free(t->ssl);
    free(t->host);
    free(t->user);
    free(t->pass);
    free(t->token);
    free(t->name);
    free(t->verify_host);
    memset(t, 0, sizeof *t);
}
