/* Connection settings of a Redis URL, shared by the server and the client. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fail.h"
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
    int r = nc_broker_target_init(&t->b, url, 6379);
    if (r) return r;
    if (!t->b.password || !*t->b.password) {
        /* redis://secret@host is how many tools spell a password without a user name */
        free(t->b.password);
        t->b.password = t->b.user;
        t->b.user = NULL;
    }
    const char *db = url->path[0] == '/' ? url->path + 1 : url->path;
    if (*db) {
        char *end;
        long n = strtol(db, &end, 10);
        if (*end || n < 0 || n > 1000000) {
            nc_fail(log, component, NC_EINVAL, "invalid database number \"%s\" in %s", db, url->text);
            nc_redis_target_free(t);
            return NC_EINVAL;
        }
        t->db = (int)n;
    }
    if (!strcmp(url->scheme, "rediss") && (r = nc_broker_target_tls(&t->b, tls, log, component))) {
        nc_redis_target_free(t);
        return r;
    }
    return 0;
}

void nc_redis_target_free(nc_redis_target *t) {
    nc_broker_target_free(&t->b);
    memset(t, 0, sizeof *t);
}
