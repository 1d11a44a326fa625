#include "transport/common/broker_target.h"

#include <stdlib.h>
#include <string.h>

#include "io/tls.h"
#include "nestc/error.h"

int nc_broker_target_init(nc_broker_target *t, const nc_url *url, int default_port) {
    memset(t, 0, sizeof *t);
    t->port = url->port >= 0 ? url->port : default_port;
    t->host = strdup(url->host[0] ? url->host : "localhost");
    if (url->user && *url->user) t->user = strdup(url->user);
    if (url->password) t->password = strdup(url->password);
    if (!t->host || (url->user && *url->user && !t->user) || (url->password && !t->password)) {
        nc_broker_target_free(t);
        return NC_ENOMEM;
    }
    return 0;
}

int nc_broker_target_tls(nc_broker_target *t, const nc_tls_opts *tls, const nc_logger *log,
                         const char *component) {
    static const nc_tls_opts none = {0};
    char err[300];
    int r = nc_tls_ctx_new(&t->ssl, tls ? tls : &none, 0, err, sizeof err);
    if (r) {
        nc_logf(log, NC_LOG_ERROR, component, "%s", err);
        return r;
    }
    t->verify_host = strdup(tls && tls->server_name ? tls->server_name : t->host);
    return t->verify_host ? 0 : NC_ENOMEM;
}

void nc_broker_target_free(nc_broker_target *t) {
    if (t->ssl) SSL_CTX_free(t->ssl);
    free(t->host);
    free(t->user);
    free(t->password);
    free(t->verify_host);
    memset(t, 0, sizeof *t);
}
