/* nestc send grpc://… (DESIGN.md §5a, grpcurl-like): the call goes through the library's gRPC client;
 * this file adds the CLI's contract on top of it: the proto3 JSON mapping for printing (field names as
 * written, 64-bit integers as strings, enums by name, bytes as base64), --stream as a JSON array of
 * request messages, and the exit codes: 0 status OK, 1 another status from the server (with
 * {"code":N,"details":"…"} on stderr), 2 a timeout (status 4), no connection (status 14), bad arguments
 * or a method the .proto does not define. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "core/loop_run.h"

typedef struct gsend {
    nc_client *cli;
    const char *method;
    json_t *msgs; /* the request messages (an array) */
    int stream;   /* --stream: the messages are a request stream */
    nc_call_opts call;
    int verbose; /* -v: the response headers on stderr too */
    int done, exit_code;
} gsend;

/* -v: the response metadata on stderr, `nestc: response headers {"name":"value",...}`, as grpcurl -v shows it
 * (binary values decoded, as received). */
static void print_headers(nc_call *c) {
    json_t *o = json_object();
    const char *n, *v;
    size_t nl, vl;
    for (size_t i = 0; nc_call_header_at(c, i, &n, &nl, &v, &vl) == 0; i++) {
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)nl, n);
        json_t *val = json_stringn(v, vl);
        if (val) json_object_set_new(o, name, val);
    }
    fputs("nestc: response headers ", stderr);
    cli_print_json(stderr, o);
    json_decref(o);
}

static void on_headers(void *user, nc_call *c) {
    gsend *s = user;
    if (s->verbose) print_headers(c);
}

/* {"code":N,"details":"…"} on stderr. */
static void print_status(int code, const char *details) {
    json_t *v = json_pack("{s:i,s:s}", "code", code, "details", details ? details : "");
    if (!v) v = json_pack("{s:i,s:s}", "code", code, "details", "");
    cli_print_json(stderr, v);
    json_decref(v);
}

static void on_value(void *user, json_t *value) {
    cli_print_json(stdout, value);
    fflush(stdout);
}

static void on_done(void *user, int err, json_t *error) {
    gsend *s = user;
    if (s->done) return;
    s->done = 1;
    if (!err) {
        s->exit_code = 0;
        return;
    }
    const char *text = json_is_string(error) ? json_string_value(error) : nc_strerror(err);
    if (err == NC_EREMOTE && json_is_object(error)) {
        /* the status the server sent (or the client's own: a dropped connection is 14) */
        int code = (int)json_integer_value(json_object_get(error, "code"));
        print_status(code, json_string_value(json_object_get(error, "details")));
        s->exit_code = code == 4 || code == 14 ? 2 : 1;
    } else if (err == NC_ETIMEDOUT) {
        print_status(4, "Deadline exceeded");
        s->exit_code = 2;
    } else if (err == NC_ECONNREFUSED || err == NC_ECONNCLOSED || err == NC_ECONNLOST || err == NC_ERESOLVE ||
               err == NC_ETLS || err == NC_EIO) {
        print_status(14, text);
        s->exit_code = 2;
    } else {
        fprintf(stderr, "nestc: %s: %s\n", nc_err_name(err), text);
        s->exit_code = 2;
    }
}

/* Connected: the call, then the rest of its request stream and the half-close. */
static void on_connected(void *user, int err, json_t *error) {
    gsend *s = user;
    if (err) {
        on_done(s, err, error);
        return;
    }
    nc_call_cbs cbs = {.on_value = on_value, .on_done = on_done, .on_headers = on_headers};
    nc_call *c;
    size_t n = json_array_size(s->msgs);
    /* the first message goes with the call (none for an empty request stream) */
    int r = nc_client_call(s->cli, s->method, n ? json_array_get(s->msgs, 0) : NULL, &s->call, &cbs, s, &c);
    if (r) {
        fprintf(stderr, "nestc: %s\n", cli_reason(r));
        s->done = 1;
        s->exit_code = 2;
        return;
    }
    for (size_t i = 1; i < n && !s->done; i++) {
        r = nc_call_write(c, json_array_get(s->msgs, i));
        if (r) {
            fprintf(stderr, "nestc: --stream: cannot send message %zu: %s\n", i + 1, cli_reason(r));
            s->exit_code = 2;
            s->done = 1;
            nc_call_cancel(c);
            return;
        }
    }
    if (!s->done) nc_call_end(c);
}

/* The CLI's printing and reading: the options the user did not set. */
static size_t add_defaults(nc_option *o, size_t n) {
    static const nc_option defs[] = {{"keepCase", "true"},
                                     {"longs", "String"},
                                     {"enums", "String"},
                                     {"bytes", "String"},
                                     {"json", "true"}};
    for (size_t d = 0; d < sizeof defs / sizeof *defs && n < CLI_MAX_OPTS; d++) {
        size_t i = 0;
        while (i < n && strcmp(o[i].name, defs[d].name)) i++;
        if (i == n) {
            /* first, so that a user's value (later) wins however the library reads duplicates */
            memmove(o + 1, o, n * sizeof *o);
            o[0] = defs[d];
            n++;
        }
    }
    return n;
}

int send_grpc(cli_args *a) {
    gsend s = {0};
    s.exit_code = 2;
    s.verbose = a->verbose;
    s.method = a->pos[1];
    const char *text = a->npos == 3 ? a->pos[2] : NULL;
    json_t *data = NULL;
    if (a->stream) {
        if (cli_load_stream(text, &data)) return 2;
        /* DESIGN §5a: the data is one JSON array of messages (whitespace-separated values work too) */
        if (json_array_size(data) == 1 && json_is_array(json_array_get(data, 0))) {
            json_t *inner = json_incref(json_array_get(data, 0));
            json_decref(data);
            data = inner;
        }
        s.msgs = data;
    } else {
        if (cli_load_data(a, text, &data)) return 2;
        s.msgs = json_array();
        json_array_append_new(s.msgs, json_is_null(data) ? json_object() : json_incref(data));
        json_decref(data);
    }
    nc_option conn_opts[CLI_MAX_OPTS], call_opts[CLI_MAX_OPTS];
    size_t nconn, ncall;
    int r;
    nc_client_opts co = {0};
    co.tls = cli_client_tls(a, a->pos[0], &r);
    if (r || cli_split_opts(a, a->pos[0], NC_OPT_CLIENT, 1, conn_opts, &nconn, call_opts, &ncall)) {
        json_decref(s.msgs);
        return 2;
    }
    nconn = add_defaults(conn_opts, nconn);
    co.options = conn_opts;
    co.noptions = nconn;
    /* --timeout is the call's deadline (sent as grpc-timeout), connecting included */
    co.timeout_ms = a->timeout_ms == 0 ? NC_LIMIT_OFF : a->timeout_ms;
    co.connect_timeout_ms = a->connect_timeout_ms ? a->connect_timeout_ms : a->timeout_ms;
    r = nc_client_new(&s.cli, a->pos[0], &co);
    if (r) {
        fprintf(stderr, "nestc: cannot use %s: %s\n", a->pos[0], cli_reason(r));
        json_decref(s.msgs);
        return 2;
    }
    s.call.headers = a->headers;
    s.call.metadata = a->metadata;
    s.call.options = call_opts;
    s.call.noptions = ncall;
    /* connected first: request-stream writes need the call out on the wire */
    r = nc_client_connect(s.cli, on_connected, &s);
    if (r) on_done(&s, r, NULL);
    uv_loop_t *loop = nc_client_loop(s.cli);
    while (!s.done && nc_loop_run(loop, UV_RUN_ONCE)) {
    }
    if (!s.done) {
        fprintf(stderr, "nestc: the call did not complete\n");
        s.exit_code = 2;
    }
    nc_client_free(s.cli);
    json_decref(s.msgs);
    return s.exit_code;
}
