/* Validated transport options (nestc/options.h): the core checks every name=value against the
 * transport's table once, where it is given; transports then read typed values by name and never parse
 * text themselves. Private. */
#ifndef NC_CORE_OPTIONS_H
#define NC_CORE_OPTIONS_H

#include <stddef.h>

#include "core/log.h"
#include "core/url.h"
#include "nestc/options.h"

typedef struct nc_optval {
    const nc_option_spec *spec;
    char *text;    /* owned: the value as given */
    long long num; /* int, duration, bool (0/1); enum: the index in spec->choices */
    char *name;    /* owned: the full name given for a prefix entry ("kafka.linger.ms"), else NULL */
} nc_optval;

/* The name the value was given under. */
static inline const char *nc_optval_name(const nc_optval *v) {
    return v->name ? v->name : v->spec->name;
}

/* A set of validated values for one level. Zero-initialised = empty (every getter gives the default). */
typedef struct nc_optset {
    const nc_option_spec *table; /* the transport's table (name NULL ends it); NULL = declares none */
    /* Asked for names this set does not hold: a handler's set points to its server's, so a handler's
     * `queue` replaces the server's and everything else falls through to it. Borrowed. */
    const struct nc_optset *parent;
    nc_optval *v;
    size_t n;
} nc_optset;

/* Where a set is built, for the messages: the level (one NC_OPT_* bit), the transport's scheme, the log
 * and its component ("Server", "Client"). */
typedef struct nc_optctx {
    unsigned level;
    const char *scheme;
    const nc_logger *log;
    const char *component;
} nc_optctx;

/* Builds *s (zeroed first) from the URL's query parameters (url may be NULL), then the options list
 * (which overrides them): precedence option > URL parameter > default. Returns 0, NC_EINVAL (unknown,
 * misplaced or bad value: one ERROR line naming the option) or NC_ENOMEM. On failure *s is empty. */
int nc_optset_build(nc_optset *s, const nc_option_spec *table, const nc_optctx *cx, const nc_url *url,
                    const nc_option *opts, size_t nopts);
/* Validates and sets one value (replacing the same name). from_url: the words say "URL parameter". */
int nc_optset_set(nc_optset *s, const nc_optctx *cx, const char *name, const char *value, int from_url);
/* A deep copy with another parent (workers copy their primary's handlers). */
int nc_optset_copy(nc_optset *dst, const nc_optset *src, const nc_optset *parent);
void nc_optset_free(nc_optset *s);
/* The options of s as a list (borrowing s's strings), for rebuilding the same set elsewhere. *out is
 * malloc'd (free it); NULL with n 0 when empty. Returns 0 or NC_ENOMEM. */
int nc_optset_list(const nc_optset *s, nc_option **out, size_t *n);

/* The table's entry for name, or NULL. */
const nc_option_spec *nc_opts_spec(const nc_option_spec *table, const char *name);

/* ---- getters for transports: `name` must be declared in the transport's table ------------------- */

/* The value given (here or in a parent), or NULL when none was. */
const nc_optval *nc_opts_find(const nc_optset *s, const char *name);
/* The text of the value given, else the table's default, else NULL. */
const char *nc_opts_str(const nc_optset *s, const char *name);
/* int, duration, bool (0/1) or enum index: the value given, else the default, else 0. */
long long nc_opts_int(const nc_optset *s, const char *name);
static inline int nc_opts_bool(const nc_optset *s, const char *name) {
    return nc_opts_int(s, name) != 0;
}

#endif
