/* nestc — transport options: one name=value mechanism at every level, declared by each transport.
 *
 *   nc_option o[] = {{"queue", "workers"}};
 *   nc_server_opts so = NC_SERVER_OPTS_INIT;
 *   so.options = o;
 *   so.noptions = 1;
 *   nc_server_new(&srv, "nats://127.0.0.1:4222", &so);
 *
 * Each transport declares its options in a table: a name, a type, the levels it is valid at and a
 * default. The library checks every option against that table where it is given: an unknown name, an
 * option given at a level it does not belong to (a handler option given to a client) or a value that is
 * not of the option's type fails with NC_EINVAL and a log line naming the option; nothing is ignored.
 * The same table covers URL query parameters (`nats://h:4222?queue=q`), which count as options of the
 * level of the object the URL is given to (server or client).
 *
 * Precedence, highest first: an option in the `options` list, the URL query parameter, the table's
 * default. For a handler, its own options come before the server's (a handler's `queue` replaces the
 * server's for that route). A name given twice in one list: the last one counts.
 *
 * Values are text: integers in decimal; durations in milliseconds (a plain integer); booleans as
 * true/false, 1/0 or yes/no; enums as one of the listed values. A table entry whose name ends with '.'
 * ("kafka.") is a prefix: it takes every longer name starting with it ("kafka.linger.ms"), passed through
 * to the library underneath. `nestc options <scheme>` prints a
 * transport's table; the README lists them all. */
#ifndef NESTC_OPTIONS_H
#define NESTC_OPTIONS_H

#include <stddef.h>

#include "nestc/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One option as given by the caller. Both strings are borrowed for the duration of the call that takes
 * them (the library copies what it keeps). */
typedef struct nc_option {
    const char *name;
    const char *value;
} nc_option;

/* The type of an option's value (nc_option_spec.type). */
typedef enum nc_option_type {
    NC_OPT_STRING = 0,
    NC_OPT_INT,      /* decimal integer within [min, max] */
    NC_OPT_BOOL,     /* true/false, 1/0, yes/no (an empty URL value, `?flag`, is true) */
    NC_OPT_DURATION, /* milliseconds, a non-negative integer within [min, max] */
    NC_OPT_ENUM      /* one of `choices` */
} nc_option_type;

/* Where an option may be given (a bit mask). */
enum {
    NC_OPT_SERVER = 1 << 0,  /* nc_server_opts.options and the server's URL */
    NC_OPT_CLIENT = 1 << 1,  /* nc_client_opts.options and the client's URL */
    NC_OPT_HANDLER = 1 << 2, /* nc_handler_opts.options (one route's handlers) */
    NC_OPT_CALL = 1 << 3     /* nc_call_opts.options (one request or event) */
};

/* One entry of a transport's table. Read-only; obtained with nc_transport_option. */
typedef struct nc_option_spec {
    const char *name;
    nc_option_type type;
    unsigned levels; /* NC_OPT_SERVER | ... */
    const char *help;
    const char *def;            /* the default as text, NULL = none (unset) */
    const char *const *choices; /* NC_OPT_ENUM: the allowed values, NULL-terminated */
    long long min, max;         /* NC_OPT_INT / NC_OPT_DURATION: the range (both 0 = any >= 0) */
} nc_option_spec;

/* The i-th option (from 0) that the transport of `scheme` ("nats") declares, or NULL past the end or
 * for an unknown scheme. The same table serves the scheme's server and client. Use this function
 * rather than indexing the table: nc_option_spec may grow. The result is static. Any thread. */
NC_API const nc_option_spec *nc_transport_option(const char *scheme, size_t i);

/* The names of the levels in `levels`, e.g. "server, handler", into buf (always NUL-terminated).
 * Returns buf. Any thread. */
NC_API const char *nc_option_levels_text(unsigned levels, char *buf, size_t len);

/* Checks options as a server, client, handler or call of `scheme` would (level: one NC_OPT_* bit),
 * without creating anything. Returns 0, NC_EINVAL with the reason in err (the line the log would get),
 * or NC_EUNSUPPORTED for an unknown scheme. err may be NULL. Any thread. */
NC_API int nc_options_check(const char *scheme, unsigned level, const nc_option *opts, size_t n, char *err,
                            size_t errlen);

/* The name of a type ("string", "int", "bool", "duration", "enum"). Static. Any thread. */
NC_API const char *nc_option_type_name(nc_option_type type);

#ifdef __cplusplus
}
#endif
#endif
