/* Connection settings of a NATS URL, shared by the server and the client. */
#include <stdlib.h>
#include <string.h>

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
    int r = nc_broker_target_init(&t->b, url, 4222);
    if (r) return r;
    if (!t->b.user) { /* a password without a user name means nothing to NATS */
        free(t->b.password);
        t->b.password = NULL;
    } else if (!t->b.password) { /* token@, as nats.js reads it */
        t->token = t->b.user;
        t->b.user = NULL;
    }
    const char *name = nc_opts_str(opts, "name");
    if (name && !(t->name = strdup(name))) {
        nc_nats_target_free(t);
        return NC_ENOMEM;
    }
    t->tls_required = tls != NULL || nc_opts_bool(opts, "tls");
    /* without TLS options the context is built when the server asks for TLS (nats_conn.c) */
    if (tls && (r = nc_broker_target_tls(&t->b, tls, log, component))) {
        nc_nats_target_free(t);
        return r;
    }
    return 0;
}

void nc_nats_target_free(nc_nats_target *t) {
    nc_broker_target_free(&t->b);
    free(t->token);
    free(t->name);
    memset(t, 0, sizeof *t);
}
