/* The health and reflection services (grpc_builtin.h). Requests are decoded and responses encoded with
 * the codec, from the services' own .proto files bundled below (the texts of grpc-health-check's
 * health.proto and @grpc/reflection's reflection.proto, comments and language options left out). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "codec/proto_codec.h"
#include "nestc/error.h"
#include "transport/grpc/grpc_builtin.h"
#include "transport/grpc/grpc_descriptor.h"
#include "util/base64.h"

#define REFLECTION_PROTO(pkg)                                                                                \
    "syntax = \"proto3\"; package " pkg ";"                                                                  \
    "service ServerReflection { rpc ServerReflectionInfo(stream ServerReflectionRequest)"                    \
    " returns (stream ServerReflectionResponse); }"                                                          \
    "message ServerReflectionRequest { string host = 1; oneof message_request {"                             \
    " string file_by_filename = 3; string file_containing_symbol = 4;"                                       \
    " ExtensionRequest file_containing_extension = 5; string all_extension_numbers_of_type = 6;"             \
    " string list_services = 7; } }"                                                                         \
    "message ExtensionRequest { string containing_type = 1; int32 extension_number = 2; }"                   \
    "message ServerReflectionResponse { string valid_host = 1; ServerReflectionRequest original_request = "  \
    "2;"                                                                                                     \
    " oneof message_response { FileDescriptorResponse file_descriptor_response = 4;"                         \
    " ExtensionNumberResponse all_extension_numbers_response = 5;"                                           \
    " ListServiceResponse list_services_response = 6; ErrorResponse error_response = 7; } }"                 \
    "message FileDescriptorResponse { repeated bytes file_descriptor_proto = 1; }"                           \
    "message ExtensionNumberResponse { string base_type_name = 1; repeated int32 extension_number = 2; }"    \
    "message ListServiceResponse { repeated ServiceResponse service = 1; }"                                  \
    "message ServiceResponse { string name = 1; }"                                                           \
    "message ErrorResponse { int32 error_code = 1; string error_message = 2; }"

/* The pools' order: health, reflection v1, v1alpha (turned-off ones are not searched). */
static const struct {
    const char *name, *text, *service;
} protos[] = {
    {"grpc/health/v1/health.proto",
     "syntax = \"proto3\"; package grpc.health.v1;"
     "message HealthListRequest {}"
     "message HealthListResponse { map<string, HealthCheckResponse> statuses = 1; }"
     "message HealthCheckRequest { string service = 1; }"
     "message HealthCheckResponse { enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2;"
     " SERVICE_UNKNOWN = 3; } ServingStatus status = 1; }"
     "service Health { rpc Check(HealthCheckRequest) returns (HealthCheckResponse);"
     " rpc Watch(HealthCheckRequest) returns (stream HealthCheckResponse);"
     " rpc List(HealthListRequest) returns (HealthListResponse); }",
     "grpc.health.v1.Health"},
    {"grpc/reflection/v1/reflection.proto", REFLECTION_PROTO("grpc.reflection.v1"),
     "grpc.reflection.v1.ServerReflection"},
    {"grpc/reflection/v1alpha/reflection.proto", REFLECTION_PROTO("grpc.reflection.v1alpha"),
     "grpc.reflection.v1alpha.ServerReflection"},
};
#define NPROTOS (sizeof protos / sizeof protos[0])

enum { SERVING = 1, NOT_SERVING = 2, SERVICE_UNKNOWN = 3 };

static int read_bundled(void *user, const char *path, char **text, size_t *len) {
    for (size_t i = 0; i < NPROTOS; i++)
        if (!strcmp(path, protos[i].name)) {
            *text = strdup(protos[i].text);
            *len = strlen(protos[i].text);
            return *text ? 0 : NC_ENOMEM;
        }
    return 1;
}

static nc_pb_pool **pools(const nc_grpc_builtin *b) {
    return b->pools;
}

static int proto_on(const nc_grpc_builtin *b, size_t i) {
    return i == 0 ? b->health : b->reflection;
}

int nc_grpc_builtin_init(nc_grpc_builtin *b, const nc_grpc_methods *methods, int health, int reflection,
                         char *err, size_t errlen) {
    memset(b, 0, sizeof *b);
    b->methods = methods;
    b->health = health;
    b->reflection = reflection;
    b->serving = 1;
    nc_pb_pool **p = calloc(NPROTOS, sizeof *p);
    if (!p) return NC_ENOMEM;
    b->pools = p;
    for (size_t i = 0; i < NPROTOS; i++) {
        int r = nc_proto_load(&p[i], protos[i].name, NULL, 0, read_bundled, NULL, NULL, err, errlen);
        if (r) {
            nc_grpc_builtin_free(b);
            return r;
        }
    }
    return 0;
}

void nc_grpc_builtin_free(nc_grpc_builtin *b) {
    for (size_t i = 0; i < b->nwatch; i++) {
        free(b->watch[i].service);
        nc_grpc_call_release(b->watch[i].call);
    }
    free(b->watch);
    for (size_t i = 0; i < b->nset; i++) free(b->set[i].service);
    free(b->set);
    if (b->pools)
        for (size_t i = 0; i < NPROTOS; i++) nc_proto_free(b->pools[i]);
    free(b->pools);
    memset(b, 0, sizeof *b);
}

nc_grpc_builtin_kind nc_grpc_builtin_find(const nc_grpc_builtin *b, const char *path) {
    if (b->health) {
        if (!strcmp(path, "/grpc.health.v1.Health/Check")) return NC_GB_CHECK;
        if (!strcmp(path, "/grpc.health.v1.Health/Watch")) return NC_GB_WATCH;
        if (!strcmp(path, "/grpc.health.v1.Health/List")) return NC_GB_LIST;
    }
    if (b->reflection && (!strcmp(path, "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo") ||
                          !strcmp(path, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")))
        return NC_GB_REFLECT;
    return NC_GB_NONE;
}

/* ---- the services served ------------------------------------------------------------------------------ */

/* The service name of method i of the user's table ("/pkg.Svc/M" → "pkg.Svc", into buf). */
static const char *user_service(const nc_grpc_methods *t, size_t i, char *buf, size_t len) {
    const char *p = t->v[i].path + 1, *s = strchr(p, '/');
    size_t n = s ? (size_t)(s - p) : strlen(p);
    if (n >= len) n = len - 1;
    memcpy(buf, p, n);
    buf[n] = 0;
    return buf;
}

/* Calls fn with every service name the server serves, each once, in order; stops at a nonzero return. */
static int each_service(const nc_grpc_builtin *b, int (*fn)(void *, const char *), void *arg) {
    char prev[512] = "", cur[512];
    int r = 0;
    for (size_t i = 0; !r && i < b->methods->n; i++) {
        user_service(b->methods, i, cur, sizeof cur);
        if (strcmp(cur, prev)) r = fn(arg, cur);
        memcpy(prev, cur, sizeof prev);
    }
    for (size_t i = 0; !r && i < NPROTOS; i++)
        if (proto_on(b, i)) r = fn(arg, protos[i].service);
    return r;
}

static int is_name(void *arg, const char *name) {
    return !strcmp(arg, name);
}

static struct nc_grpc_health_set *set_of(const nc_grpc_builtin *b, const char *service) {
    for (size_t i = 0; i < b->nset; i++)
        if (!strcmp(b->set[i].service, service)) return &b->set[i];
    return NULL;
}

/* The status of a service ("" = the server as a whole), or SERVICE_UNKNOWN: what the application set,
 * else SERVING for the services served; NOT_SERVING for every known one once shutting down. */
static int status_of(const nc_grpc_builtin *b, const char *service) {
    const struct nc_grpc_health_set *h = set_of(b, service);
    if (h && h->status == SERVICE_UNKNOWN) return SERVICE_UNKNOWN;
    if (!h && *service && !each_service(b, is_name, (void *)service)) return SERVICE_UNKNOWN;
    if (!b->serving) return NOT_SERVING;
    return h ? h->status : SERVING;
}

/* ---- messages ---------------------------------------------------------------------------------------- */

static const nc_pb_json_opts jo = {.keep_case = 1, .any_case = 1};

static const nc_pb_msg *msg_of(const nc_grpc_builtin *b, size_t proto, const char *name) {
    return nc_proto_message(pools(b)[proto], name);
}

/* Encodes v (stolen) as `type` and sends it. */
static int send_json(const nc_grpc_builtin *b, nc_grpc_call *call, size_t proto, const char *type,
                     json_t *v) {
    nc_buf out = NC_BUF_INIT;
    char err[200];
    int r = v ? nc_pb_encode(msg_of(b, proto, type), v, &jo, &out, err, sizeof err) : NC_ENOMEM;
    json_decref(v);
    if (!r)
        r = nc_grpc_call_send(call, out.data ? out.data : "", out.len);
    else
        nc_grpc_call_finish(call, 13, "cannot encode the response", NULL, 0);
    nc_buf_free(&out);
    return r;
}

static json_t *decode(const nc_grpc_builtin *b, nc_grpc_call *call, size_t proto, const char *type,
                      const char *data, size_t len) {
    json_t *v = NULL;
    char err[200] = "", why[300];
    if (nc_pb_decode(msg_of(b, proto, type), data, len, &jo, &v, err, sizeof err)) {
        snprintf(why, sizeof why, "cannot decode the request as %s: %s", type, err);
        nc_grpc_call_finish(call, 13, why, NULL, 0);
        return NULL;
    }
    return v;
}

/* ---- health ------------------------------------------------------------------------------------------ */

static int add_status(void *arg, const char *name) {
    void **a = arg;
    int st = status_of(a[1], name);
    if (st == SERVICE_UNKNOWN) return 0; /* set so by the application: not listed */
    json_t *one = json_pack("{s:i}", "status", st);
    return !one || json_object_set_new(a[0], name, one);
}

void nc_grpc_builtin_request(nc_grpc_builtin *b, nc_grpc_call *call, nc_grpc_builtin_kind k, const char *data,
                             size_t len) {
    const char *type =
        k == NC_GB_LIST ? "grpc.health.v1.HealthListRequest" : "grpc.health.v1.HealthCheckRequest";
    json_t *req = decode(b, call, 0, type, data, len);
    if (!req) return;
    const char *svc = json_string_value(json_object_get(req, "service"));
    if (!svc) svc = "";
    int st = status_of(b, svc);
    if (k == NC_GB_CHECK) {
        if (st == SERVICE_UNKNOWN) {
            char why[600];
            snprintf(why, sizeof why, "Health status unknown for service %s", svc); /* grpc-health-check's */
            nc_grpc_call_finish(call, 5, why, NULL, 0);
        } else if (!send_json(b, call, 0, "grpc.health.v1.HealthCheckResponse",
                              json_pack("{s:i}", "status", st))) {
            nc_grpc_call_finish(call, 0, NULL, NULL, 0);
        }
    } else if (k == NC_GB_LIST) {
        json_t *all = json_object();
        void *a[2] = {all, b};
        add_status(a, ""); /* the server as a whole, under "" as grpc-health-check lists it */
        int bad = !all || each_service(b, add_status, a);
        for (size_t i = 0; !bad && i < b->nset; i++)
            if (status_of(b, b->set[i].service) != SERVICE_UNKNOWN) bad = add_status(a, b->set[i].service);
        if (bad) {
            json_decref(all);
            nc_grpc_call_finish(call, 8, "out of memory", NULL, 0);
        } else if (!send_json(b, call, 0, "grpc.health.v1.HealthListResponse",
                              json_pack("{s:o}", "statuses", all))) {
            nc_grpc_call_finish(call, 0, NULL, NULL, 0);
        }
    } else { /* Watch: the status now, then every change, until the client cancels or the server ends */
        nc_grpc_watcher *w = b->watch;
        if (b->nwatch == b->capwatch) {
            size_t cap = b->capwatch ? b->capwatch * 2 : 8;
            w = realloc(b->watch, cap * sizeof *w);
            if (w) b->watch = w, b->capwatch = cap;
        }
        char *name = strdup(svc);
        if (!w || !name) {
            free(name);
            nc_grpc_call_finish(call, 8, "out of memory", NULL, 0);
        } else if (!send_json(b, call, 0, "grpc.health.v1.HealthCheckResponse",
                              json_pack("{s:i}", "status", st))) {
            nc_grpc_call_retain(call);
            b->watch[b->nwatch++] = (nc_grpc_watcher){call, name, st};
        } else {
            free(name);
        }
    }
    json_decref(req);
}

void nc_grpc_builtin_forget(nc_grpc_builtin *b, nc_grpc_call *call) {
    for (size_t i = 0; i < b->nwatch; i++)
        if (b->watch[i].call == call) {
            nc_grpc_watcher w = b->watch[i];
            b->watch[i] = b->watch[--b->nwatch];
            free(w.service);
            nc_grpc_call_release(w.call);
            return;
        }
}

/* Tells every watcher whose status changed. */
static void tell_watchers(nc_grpc_builtin *b) {
    for (size_t i = 0; i < b->nwatch; i++) {
        nc_grpc_watcher *w = &b->watch[i];
        int st = status_of(b, w->service);
        if (st == w->last || !nc_grpc_call_live(w->call)) continue;
        w->last = st;
        send_json(b, w->call, 0, "grpc.health.v1.HealthCheckResponse", json_pack("{s:i}", "status", st));
    }
}

void nc_grpc_builtin_not_serving(nc_grpc_builtin *b) {
    b->serving = 0;
    tell_watchers(b);
}

int nc_grpc_builtin_set_health(nc_grpc_builtin *b, const char *service, int status) {
    if (!b->health) return NC_EUNSUPPORTED;
    struct nc_grpc_health_set *h = set_of(b, service);
    if (!h) {
        struct nc_grpc_health_set *v = realloc(b->set, (b->nset + 1) * sizeof *v);
        if (!v) return NC_ENOMEM;
        b->set = v;
        h = &v[b->nset];
        if (!(h->service = strdup(service))) return NC_ENOMEM;
        b->nset++;
    }
    h->status = status;
    tell_watchers(b);
    return 0;
}

void nc_grpc_builtin_end_watches(nc_grpc_builtin *b) {
    while (b->nwatch) {
        nc_grpc_call *call = b->watch[b->nwatch - 1].call;
        nc_grpc_call_retain(call);
        nc_grpc_builtin_forget(b, call);
        nc_grpc_call_finish(call, 14, "the server is shutting down", NULL, 0);
        nc_grpc_call_release(call);
    }
}

/* ---- reflection -------------------------------------------------------------------------------------- */

/* A file by name in the user's pools, then the built-in ones that are on. */
static const nc_pb_pool *find_file(const nc_grpc_builtin *b, const char *name, size_t *fi) {
    for (size_t p = 0; p < b->methods->npools + NPROTOS; p++) {
        if (p >= b->methods->npools && !proto_on(b, p - b->methods->npools)) continue;
        const nc_pb_pool *pl =
            p < b->methods->npools ? b->methods->pools[p] : pools(b)[p - b->methods->npools];
        const nc_pb_file *f;
        for (size_t i = 0; (f = nc_proto_file_at(pl, i)); i++)
            if (!strcmp(f->name, name)) {
                *fi = i;
                return pl;
            }
    }
    return NULL;
}

static const nc_pb_pool *find_symbol(const nc_grpc_builtin *b, const char *sym, size_t *fi) {
    for (size_t p = 0; p < b->methods->npools + NPROTOS; p++) {
        if (p >= b->methods->npools && !proto_on(b, p - b->methods->npools)) continue;
        const nc_pb_pool *pl =
            p < b->methods->npools ? b->methods->pools[p] : pools(b)[p - b->methods->npools];
        long i = nc_grpc_symbol_file(pl, sym);
        if (i >= 0) {
            *fi = (size_t)i;
            return pl;
        }
    }
    return NULL;
}

/* The file and, transitively, every file it imports (each once, the file first), base64 in `list`. */
static int add_files(const nc_pb_pool *pl, size_t fi, json_t *list, unsigned char *seen) {
    if (seen[fi]) return 0;
    seen[fi] = 1;
    nc_buf d = NC_BUF_INIT, t = NC_BUF_INIT;
    int r = nc_grpc_file_descriptor(pl, fi, &d);
    if (!r) r = nc_base64_encode(&t, d.data ? d.data : "", d.len);
    if (!r) r = json_array_append_new(list, json_stringn(t.data ? t.data : "", t.len)) ? NC_ENOMEM : 0;
    nc_buf_free(&d);
    nc_buf_free(&t);
    const nc_pb_file *f = nc_proto_file_at(pl, fi), *g;
    for (size_t k = 0; !r && k < f->ndeps; k++)
        for (size_t j = 0; (g = nc_proto_file_at(pl, j)); j++)
            if (g->name == f->deps[k]) {
                r = add_files(pl, j, list, seen);
                break;
            }
    return r;
}

static json_t *files_response(const nc_pb_pool *pl, size_t fi) {
    size_t n = 0;
    while (nc_proto_file_at(pl, n)) n++;
    unsigned char *seen = calloc(n, 1);
    json_t *list = json_array();
    if (!seen || !list || add_files(pl, fi, list, seen)) {
        free(seen);
        json_decref(list);
        return NULL;
    }
    free(seen);
    return json_pack("{s:o}", "file_descriptor_proto", list);
}

static int add_name(void *arg, const char *name) {
    return json_array_append_new(arg, json_pack("{s:s}", "name", name));
}

static json_t *error_response(int code, const char *fmt, const char *what) {
    char msg[600];
    snprintf(msg, sizeof msg, fmt, what);
    return json_pack("{s:i,s:s}", "error_code", code, "error_message", msg);
}

void nc_grpc_builtin_reflect(nc_grpc_builtin *b, nc_grpc_call *call, const char *data, size_t len) {
    json_t *req = decode(b, call, 1, "grpc.reflection.v1.ServerReflectionRequest", data, len);
    if (!req) return;
    json_t *res = json_object(), *body = NULL;
    const char *key = "file_descriptor_response", *s;
    const nc_pb_pool *pl;
    size_t fi;
    if ((s = json_string_value(json_object_get(req, "file_by_filename")))) {
        body = (pl = find_file(b, s, &fi)) ? files_response(pl, fi) : NULL;
        if (!pl) key = "error_response", body = error_response(5, "File not found: %s", s);
    } else if ((s = json_string_value(json_object_get(req, "file_containing_symbol")))) {
        body = (pl = find_symbol(b, s, &fi)) ? files_response(pl, fi) : NULL;
        if (!pl) key = "error_response", body = error_response(5, "Symbol not found: %s", s);
    } else if (json_object_get(req, "list_services")) {
        json_t *list = json_array();
        key = "list_services_response";
        if (list && !each_service(b, add_name, list))
            body = json_pack("{s:o}", "service", list);
        else
            json_decref(list);
    } else if ((s = json_string_value(json_object_get(req, "all_extension_numbers_of_type")))) {
        /* extensions are not carried (the parser skips extend blocks): a known type has none */
        if (find_symbol(b, s, &fi)) {
            key = "all_extension_numbers_response";
            body = json_pack("{s:s,s:[]}", "base_type_name", s[0] == '.' ? s + 1 : s, "extension_number");
        } else {
            key = "error_response";
            body = error_response(5, "Type not found: %s", s);
        }
    } else if (json_object_get(req, "file_containing_extension")) {
        key = "error_response";
        body = error_response(5, "%s", "Extensions are not served");
    } else {
        key = "error_response";
        body = error_response(12, "%s", "Unknown reflection request");
    }
    if (res && body) {
        json_object_set(res, "original_request", req);
        if (json_is_string(json_object_get(req, "host")))
            json_object_set(res, "valid_host", json_object_get(req, "host"));
        json_object_set_new(res, key, body);
        send_json(b, call, 1, "grpc.reflection.v1.ServerReflectionResponse", res);
    } else {
        json_decref(res);
        json_decref(body);
        nc_grpc_call_finish(call, 8, "out of memory", NULL, 0);
    }
    json_decref(req);
}
