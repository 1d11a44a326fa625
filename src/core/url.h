/* URL parsing: scheme://[user[:pass]@]host[:port][/path][?k=v&...]. Private. */
#ifndef NC_CORE_URL_H
#define NC_CORE_URL_H

typedef struct nc_url {
    char *scheme; /* lowercase */
    char *user, *password;
    char *host;            /* without [] for IPv6; "" when absent */
    int port;              /* -1 when absent */
    char *path;            /* "" or starting with '/' */
    char **qkeys, **qvals; /* the query, split and decoded; validated as options (core/options.h) */
    int nquery;
    char *text; /* the whole URL as given */
    /* The authority's host list after any user info ("h1:5672,h2:5673") when it holds a comma, else NULL:
     * read only by schemes that allow NC_URL_HOSTS (host and port above are then the list's first entry
     * as far as the one-host reading got). */
    char *hosts;
    int hosts_bad; /* the one-host reading of that authority failed: NC_URL_BAD_PORT or NC_URL_BAD_HOST */
} nc_url;

enum { NC_URL_BAD_PORT = 1, NC_URL_BAD_HOST = 2 };

/* Returns 0, NC_EINVAL (malformed, with reason in err) or NC_ENOMEM. Free with nc_url_free. */
int nc_url_parse(nc_url *u, const char *text, char *err, unsigned errlen);
void nc_url_free(nc_url *u);

/* The parts of a URL a scheme gives a meaning to, besides scheme://host[:port] and the ?query of options
 * (validated against the scheme's option table). */
enum {
    NC_URL_USERINFO = 1, /* user[:password]@ (redis, nats) */
    NC_URL_PATH = 2,     /* a /path beyond a lone "/" (redis: the database number) */
    NC_URL_CLIENT = 4,   /* the URL is a client's: a port, when given, is not 0 */
    NC_URL_HOSTS = 8,    /* several comma-separated hosts in the authority (u->hosts; amqp) */
};

/* Refuses what the scheme would otherwise ignore silently: a part `allow` does not name. Without
 * NC_URL_HOSTS a comma in the authority is read as one host, as it always was: "h1,h2:1" is the host
 * "h1,h2", and "h1:1,h2:2" is refused here with the message the parser gave before lists existed. Returns 0,
 * or NC_EINVAL with the reason in err (`invalid URL "tcp://h:1/x": tcp:// takes no path`). */
int nc_url_check(const nc_url *u, unsigned allow, char *err, unsigned errlen);

#endif
