/* Loading the .proto files of a gRPC server and keying its methods as NestJS's ServerGrpc does
 * (server-grpc.js createService / getMessageHandler). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/route.h"
#include "nestc/error.h"
#include "transport/grpc/grpc_methods.h"

/* The files come from disk; 1 = not there, so the parser tries the next include directory. */
static int read_file(void *user, const char *path, char **text, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return errno == ENOENT || errno == ENOTDIR ? 1 : NC_EIO;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    while (b) {
        n += fread(b + n, 1, cap - n, f);
        if (n < cap) break;
        char *nb = realloc(b, cap *= 2);
        if (!nb) free(b);
        b = nb;
    }
    int bad = ferror(f);
    fclose(f);
    if (!b) return NC_ENOMEM;
    if (bad) {
        free(b);
        return NC_EIO;
    }
    *text = b;
    *len = n;
    return 0;
}

/* Splits a comma-separated list into trimmed, non-empty items (copies). */
static int split(const char *s, char ***out, size_t *n) {
    *out = NULL;
    *n = 0;
    if (!s) return 0;
    const char *p = s;
    while (*p) {
        const char *e = strchr(p, ',');
        if (!e) e = p + strlen(p);
        const char *a = p, *b = e;
        while (a < b && (*a == ' ' || *a == '\t')) a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t')) b--;
        if (b > a) {
            char **v = realloc(*out, (*n + 1) * sizeof *v);
            if (!v) return NC_ENOMEM;
            *out = v;
            if (!(v[*n] = strndup(a, (size_t)(b - a)))) return NC_ENOMEM;
            (*n)++;
        }
        p = *e ? e + 1 : e;
    }
    return 0;
}

static void strv_free(char **v, size_t n) {
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

/* The route of the handler key {service, rpc, streaming}: the pattern NestJS builds with JSON.stringify,
 * normalised as every nestc route is, so a handler registered with that JSON text matches. */
static char *key_route(const char *service, const char *rpc, const char *streaming) {
    json_t *k = json_pack("{s:s,s:s,s:s}", "service", service, "rpc", rpc, "streaming", streaming);
    char *route = NULL;
    if (k && nc_route_from_value(k, &route)) route = NULL;
    json_decref(k);
    return route;
}

/* The service's name under package `pkg` ("" = its own package), or NULL when it is not under it. */
static const char *relative_name(const nc_pb_service *svc, const char *pkg) {
    const char *base = pkg ? pkg : svc->package;
    size_t bl = strlen(base);
    if (!bl) return svc->full_name;
    if (strncmp(svc->full_name, base, bl) || svc->full_name[bl] != '.') return NULL;
    return svc->full_name + bl + 1;
}

static int add_service(nc_grpc_methods *t, const nc_pb_service *svc, const char *rel) {
    for (size_t i = 0; i < svc->nmethods; i++) {
        const nc_pb_method *pm = &svc->methods[i];
        size_t plen = strlen(svc->full_name) + strlen(pm->name) + 3;
        char *path = malloc(plen);
        if (!path) return NC_ENOMEM;
        snprintf(path, plen, "/%s/%s", svc->full_name, pm->name);
        for (size_t k = 0; k < t->n; k++)
            if (!strcmp(t->v[k].path, path)) { /* loaded twice (two files, two packages): the first wins */
                free(path);
                path = NULL;
                break;
            }
        if (!path) continue;
        nc_grpc_method *v = realloc(t->v, (t->n + 1) * sizeof *v);
        if (!v) {
            free(path);
            return NC_ENOMEM;
        }
        t->v = v;
        const char *streaming = pm->client_stream ? "rx_stream" : "no_stream";
        nc_grpc_method *gm = &t->v[t->n++];
        gm->path = path;
        gm->m = pm;
        gm->route_rel = key_route(rel, pm->name, streaming);
        gm->route_full = key_route(svc->full_name, pm->name, streaming);
        if (!gm->route_rel || !gm->route_full) return NC_ENOMEM;
    }
    return 0;
}

int nc_grpc_methods_load(nc_grpc_methods *t, const char *proto_paths, const char *packages,
                         const char *include_dirs, char *err, size_t errlen) {
    memset(t, 0, sizeof *t);
    char **files = NULL, **pkgs = NULL, **dirs = NULL;
    size_t nfiles = 0, npkgs = 0, ndirs = 0;
    int r = split(proto_paths, &files, &nfiles);
    if (!r) r = split(packages, &pkgs, &npkgs);
    if (!r) r = split(include_dirs, &dirs, &ndirs);
    if (!r && !nfiles) {
        snprintf(err, errlen, "a grpc:// server needs protoPath (the .proto file or files to serve)");
        r = NC_EINVAL;
    }
    if (!r && !(t->pools = calloc(nfiles, sizeof *t->pools))) r = NC_ENOMEM;
    for (size_t i = 0; !r && i < nfiles; i++) {
        char why[400] = "";
        r = nc_proto_load(&t->pools[i], files[i], (const char *const *)dirs, ndirs, read_file, NULL, NULL,
                          why, sizeof why);
        if (r == NC_ENOENT && !why[0]) snprintf(why, sizeof why, "%s: no such file", files[i]);
        if (r)
            snprintf(err, errlen, "cannot load %s: %s", files[i], why[0] ? why : nc_strerror(r));
        else
            t->npools++;
    }
    for (size_t p = 0; !r && p < (npkgs ? npkgs : 1); p++) {
        const char *pkg = npkgs ? pkgs[p] : NULL;
        int found = 0;
        for (size_t i = 0; !r && i < t->npools; i++) {
            const nc_pb_service *svc;
            for (size_t k = 0; !r && (svc = nc_proto_service_at(t->pools[i], k)); k++) {
                const char *rel = relative_name(svc, pkg);
                if (!rel) continue;
                found = 1;
                r = add_service(t, svc, rel);
            }
        }
        if (!r && pkg && !found) {
            snprintf(err, errlen, "The invalid gRPC package (package \"%s\" not found)", pkg);
            r = NC_EINVAL;
        }
    }
    for (size_t i = 0; !r && i < t->n; i++)
        if (nc_map_put(&t->by_path, t->v[i].path, strlen(t->v[i].path), &t->v[i], NULL)) r = NC_ENOMEM;
    strv_free(files, nfiles);
    strv_free(pkgs, npkgs);
    strv_free(dirs, ndirs);
    if (r == NC_ENOMEM) snprintf(err, errlen, "out of memory");
    if (r) nc_grpc_methods_free(t);
    return r;
}

void nc_grpc_methods_free(nc_grpc_methods *t) {
    for (size_t i = 0; i < t->n; i++) {
        free(t->v[i].path);
        free(t->v[i].route_rel);
        free(t->v[i].route_full);
    }
    free(t->v);
    for (size_t i = 0; i < t->npools; i++) nc_proto_free(t->pools[i]);
    free(t->pools);
    nc_map_free(&t->by_path);
    memset(t, 0, sizeof *t);
}

const nc_grpc_method *nc_grpc_methods_find(const nc_grpc_methods *t, const char *path, size_t len) {
    return nc_map_get(&t->by_path, path, len);
}
