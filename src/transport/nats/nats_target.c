/* Connection settings of a NATS URL, shared by the server and the client. */
#include <stdlib.h>
#include <string.h>

#include "io/tls.h"
#include "nestc/error.h"
#include "transport/nats/nats.h"

int nc_nats_target_init(nc_nats_target *t, const nc_url *url, const nc_tls_opts *tls, const nc_logger *log,
                        const char *component) {
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
    const char *name = nc_url_query(url, "name");
    if (name) t->name = strdup(name);
    const char *q = nc_url_query(url, "tls");
    t->tls_required = tls != NULL || (q && (!strcmp(q, "true") || !strcmp(q, "1")));
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
