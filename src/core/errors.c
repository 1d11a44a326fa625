#include "core/errors.h"

#include "nestc/error.h"
#include "nestc/version.h"

static const struct {
    int code;
    const char *name, *text;
} table[] = {
    {NC_OK, "NC_OK", "success"},
    {NC_EINVAL, "NC_EINVAL", "invalid argument"},
    {NC_ENOMEM, "NC_ENOMEM", "out of memory"},
    {NC_ETIMEDOUT, "NC_ETIMEDOUT", "timed out"},
    {NC_ECONNREFUSED, "NC_ECONNREFUSED", "connection refused"},
    {NC_ECONNCLOSED, "NC_ECONNCLOSED", "Connection closed"},
    {NC_ECLOSED, "NC_ECLOSED", "closed"},
    {NC_EPROTO, "NC_EPROTO", "protocol error"},
    {NC_ETOOBIG, "NC_ETOOBIG", "message too large"},
    {NC_ENOHANDLER, "NC_ENOHANDLER", "There is no matching message handler defined in the remote service."},
    {NC_ETLS, "NC_ETLS", "TLS error"},
    {NC_EADDRINUSE, "NC_EADDRINUSE", "address already in use"},
    {NC_EUNSUPPORTED, "NC_EUNSUPPORTED", "not supported"},
    {NC_EIO, "NC_EIO", "I/O error"},
    {NC_EREMOTE, "NC_EREMOTE", "the remote handler failed"},
    {NC_ECANCELED, "NC_ECANCELED", "canceled"},
    {NC_ESTATE, "NC_ESTATE", "invalid state for this call"},
    {NC_ERESOLVE, "NC_ERESOLVE", "host name not found"},
    {NC_ESTALLED, "NC_ESTALLED", "the peer stalled"},
    /* NestJS's words for a call made while its Redis client reconnects */
    {NC_ECONNLOST, "NC_ECONNLOST", "Connection lost. Trying to reconnect..."},
    {NC_EAUTH, "NC_EAUTH", "authentication failed"},
    {NC_ENOENT, "NC_ENOENT", "not present"},
    /* a hook (include/nestc/hooks.h) refused the message or call before it reached a handler or a peer */
    {NC_EREFUSED, "NC_EREFUSED", "refused (bulkhead full, rate limited or circuit open)"},
    /* a circuit breaker (include/nestc/policy.h) failed the call at once: the peer is failing */
    {NC_ECIRCUITOPEN, "NC_ECIRCUITOPEN", "circuit open: the call was not sent"},
};

const char *nc_strerror(int err) {
    for (unsigned i = 0; i < sizeof table / sizeof *table; i++)
        if (table[i].code == err) return table[i].text;
    return "unknown error";
}

const char *nc_err_name(int err) {
    for (unsigned i = 0; i < sizeof table / sizeof *table; i++)
        if (table[i].code == err) return table[i].name;
    return "NC_UNKNOWN";
}

const char *nc_version(void) {
    return NESTC_VERSION;
}
