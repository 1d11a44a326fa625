#include "core/url.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nestc/error.h"

static char *dupn(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* Percent-decodes in place. */
static void pct_decode(char *s) {
    char *o = s;
    for (; *s; s++) {
        if (*s == '%' && isxdigit((unsigned char)s[1]) && isxdigit((unsigned char)s[2])) {
            char h[3] = {s[1], s[2], 0};
            *o++ = (char)strtol(h, NULL, 16);
            s += 2;
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
}

int nc_url_parse(nc_url *u, const char *text, char *err, unsigned errlen) {
    memset(u, 0, sizeof *u);
    u->port = -1;
    if (!text) {
        snprintf(err, errlen, "no URL given");
        return NC_EINVAL;
    }
    const char *sep = strstr(text, "://");
    if (!sep || sep == text) {
        snprintf(err, errlen, "invalid URL \"%s\": expected scheme://host:port", text);
        return NC_EINVAL;
    }
    if (!(u->text = strdup(text)) || !(u->scheme = dupn(text, (size_t)(sep - text)))) goto nomem;
    for (char *c = u->scheme; *c; c++) *c = (char)tolower((unsigned char)*c);
    const char *p = sep + 3;
    const char *end_auth = p + strcspn(p, "/?");
    const char *at = NULL;
    for (const char *q = p; q < end_auth; q++)
        if (*q == '@') at = q;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon) {
            if (!(u->user = dupn(p, (size_t)(colon - p))) ||
                !(u->password = dupn(colon + 1, (size_t)(at - colon - 1))))
                goto nomem;
            pct_decode(u->password);
        } else if (!(u->user = dupn(p, (size_t)(at - p)))) {
            goto nomem;
        }
        pct_decode(u->user);
        p = at + 1;
    }
    if (memchr(p, ',', (size_t)(end_auth - p)) && !(u->hosts = dupn(p, (size_t)(end_auth - p)))) goto nomem;
    const char *hend;
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(end_auth - p));
        if (!rb) {
            snprintf(err, errlen, "invalid URL \"%s\": unterminated IPv6 address", text);
            goto inval;
        }
        if (!(u->host = dupn(p + 1, (size_t)(rb - p - 1)))) goto nomem;
        hend = rb + 1;
    } else {
        hend = p;
        while (hend < end_auth && *hend != ':') hend++;
        if (!(u->host = dupn(p, (size_t)(hend - p)))) goto nomem;
    }
    if (hend < end_auth && *hend == ',' && u->hosts) {
        u->hosts_bad = NC_URL_BAD_HOST; /* "[::1],h2": the first entry; a scheme without lists refuses it */
    } else if (hend < end_auth) {
        if (*hend != ':') {
            snprintf(err, errlen, "invalid URL \"%s\"", text);
            goto inval;
        }
        char *e;
        long port = strtol(hend + 1, &e, 10);
        if (u->hosts && e > hend + 1 && *e == ',' && port >= 0 && port <= 65535) {
            u->port = (int)port; /* "h1:1,h2:2": the first entry; a scheme without lists refuses it */
            u->hosts_bad = NC_URL_BAD_PORT;
        } else if (e != end_auth || e == hend + 1 || port < 0 || port > 65535) {
            snprintf(err, errlen, "invalid port in URL \"%s\"", text);
            goto inval;
        } else {
            u->port = (int)port;
        }
    }
    const char *path = end_auth;
    const char *qm = strchr(path, '?');
    if (!(u->path = dupn(path, qm ? (size_t)(qm - path) : strlen(path)))) goto nomem;
    if (qm) {
        const char *q = qm + 1;
        while (*q) {
            size_t n = strcspn(q, "&");
            if (n) {
                const char *eq = memchr(q, '=', n);
                char **k = realloc(u->qkeys, (size_t)(u->nquery + 1) * sizeof *k);
                if (!k) goto nomem;
                u->qkeys = k;
                char **v = realloc(u->qvals, (size_t)(u->nquery + 1) * sizeof *v);
                if (!v) goto nomem;
                u->qvals = v;
                u->qkeys[u->nquery] = dupn(q, eq ? (size_t)(eq - q) : n);
                u->qvals[u->nquery] = eq ? dupn(eq + 1, n - (size_t)(eq - q) - 1) : strdup("");
                u->nquery++;
                if (!u->qkeys[u->nquery - 1] || !u->qvals[u->nquery - 1]) goto nomem;
                pct_decode(u->qkeys[u->nquery - 1]);
                pct_decode(u->qvals[u->nquery - 1]);
            }
            q += n;
            if (*q == '&') q++;
        }
    }
    return 0;
nomem:
    nc_url_free(u);
    snprintf(err, errlen, "out of memory");
    return NC_ENOMEM;
inval:
    nc_url_free(u);
    return NC_EINVAL;
}

void nc_url_free(nc_url *u) {
    free(u->scheme);
    free(u->user);
    free(u->password);
    free(u->host);
    free(u->path);
    free(u->text);
    free(u->hosts);
    for (int i = 0; i < u->nquery; i++) {
        free(u->qkeys[i]);
        free(u->qvals[i]);
    }
    free(u->qkeys);
    free(u->qvals);
    memset(u, 0, sizeof *u);
    u->port = -1;
}

int nc_url_check(const nc_url *u, unsigned allow, char *err, unsigned errlen) {
    const char *why = NULL;
    if (!(allow & NC_URL_HOSTS) && u->hosts_bad) { /* the parser's words before host lists */
        snprintf(err, errlen,
                 u->hosts_bad == NC_URL_BAD_PORT ? "invalid port in URL \"%s\"" : "invalid URL \"%s\"",
                 u->text);
        return NC_EINVAL;
    }
    if (!(allow & NC_URL_USERINFO) && (u->user || u->password))
        why = "takes no user name or password";
    else if (!(allow & NC_URL_PATH) && u->path[0] && strcmp(u->path, "/"))
        why = "takes no path";
    else if ((allow & NC_URL_CLIENT) && u->port == 0)
        why = "port 0: a client needs the port the server listens on";
    if (!why) return 0;
    snprintf(err, errlen, "invalid URL \"%s\": %s:// %s", u->text, u->scheme, why);
    return NC_EINVAL;
}
