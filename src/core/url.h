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
} nc_url;

/* Returns 0, NC_EINVAL (malformed, with reason in err) or NC_ENOMEM. Free with nc_url_free. */
int nc_url_parse(nc_url *u, const char *text, char *err, unsigned errlen);
void nc_url_free(nc_url *u);

#endif
