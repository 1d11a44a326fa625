/* nestc send / nestc emit (DESIGN.md §5). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "codec/json_write.h"
#include "commands.h"

typedef struct outcome {
    int done;
    int exit_code;
} outcome;

static void on_value(void *user, json_t *value) {
    cli_print_json(stdout, value);
}

static void on_done(void *user, int err, json_t *error) {
    outcome *o = user;
    o->done = 1;
    if (err == 0) {
        o->exit_code = 0;
    } else if (err == NC_EREMOTE || err == NC_ENOHANDLER) {
        /* an error reply, "no handler" included on every transport: the error value, verbatim (TCP: the
         * remote's error; Redis, NATS: NestJS's message as a JSON string) */
        if (error)
            cli_print_json(stderr, error);
        else
            fprintf(stderr, "\"%s\"\n", nc_strerror(err));
        o->exit_code = 1;
    } else {
        const char *msg = json_is_string(error) ? json_string_value(error) : nc_strerror(err);
        fprintf(stderr, "nestc: %s: %s\n", nc_err_name(err), msg);
        o->exit_code = 2;
    }
}

static void usage(FILE *f, int emit) {
    cli_usage(f, emit ? "emit" : "send");
}

/* --stream: the first value goes with the call, the others through nc_call_write, then the half-close.
 * Returns 0 or the library's error (the call is cancelled: on_done reports nothing more). */
static int stream_rest(nc_call *call, const json_t *values, outcome *o) {
    for (size_t i = 1; i < json_array_size(values); i++) {
        int r = nc_call_write(call, json_array_get(values, i));
        if (r) {
            fprintf(stderr, "nestc: --stream: %s: cannot send value %zu: %s%s\n", nc_err_name(r), i + 1,
                    nc_strerror(r), r == NC_EUNSUPPORTED ? " (this transport has no client streams)" : "");
            o->exit_code = 2;
            o->done = 1;
            return r;
        }
    }
    return nc_call_end(call);
}

static void on_stream_done(void *user, int err, json_t *error) {
    outcome *o = user;
    if (o->done) return; /* already reported (a write failed and the call was cancelled) */
    on_done(user, err, error);
}

int cmd_send_or_emit(int argc, char **argv, int emit) {
    cli_args a;
    if (cli_parse(&a, argc, argv, 2)) return 2;
    if (a.help) {
        usage(stdout, emit);
        cli_args_free(&a);
        return 0;
    }
    if (a.npos < 2 || a.npos > 3) {
        fprintf(stderr, "nestc %s: expected <url> <pattern> [data]\n", emit ? "emit" : "send");
        usage(stderr, emit);
        cli_args_free(&a);
        return 2;
    }
    nc_log_set_default(NULL, NULL, a.verbose ? NC_LOG_DEBUG : NC_LOG_OFF);
    if (!emit && (!strncmp(a.pos[0], "grpc://", 7) || !strncmp(a.pos[0], "grpcs://", 8))) {
        int rc = send_grpc(&a); /* DESIGN.md §5a: its own output and exit codes (send_grpc.c) */
        cli_args_free(&a);
        return rc;
    }
    json_t *data = NULL;
    const char *text = a.npos == 3 ? a.pos[2] : NULL;
    if (a.stream ? cli_load_stream(text, &data) : cli_load_data(&a, text, &data)) {
        cli_args_free(&a);
        return 2;
    }
    if (a.stream && !json_array_size(data)) {
        /* the call carries its first value: an empty stream cannot be sent */
        fprintf(stderr, "nestc: --stream: no JSON values in %s\n", text ? text : "@- (standard input)");
        json_decref(data);
        cli_args_free(&a);
        return 2;
    }
    nc_option conn_opts[CLI_MAX_OPTS], call_opts[CLI_MAX_OPTS];
    size_t nconn, ncall;
    int r;
    nc_client_opts co = {0};
    co.tls = cli_client_tls(&a, a.pos[0], &r);
    if (r || cli_split_opts(&a, a.pos[0], NC_OPT_CLIENT, 1, conn_opts, &nconn, call_opts, &ncall)) {
        json_decref(data);
        cli_args_free(&a);
        return 2;
    }
    co.options = conn_opts;
    co.noptions = nconn;
    co.timeout_ms = a.timeout_ms == 0 ? NC_LIMIT_OFF : a.timeout_ms;
    /* --timeout bounds the whole call, connection included: a slow TLS handshake may use all of it.
     * Without a request timeout connecting stays bounded (0 = the library's default, 5000 ms): an
     * unanswered SYN would otherwise wait for the kernel's retries (over two minutes). */
    co.connect_timeout_ms = a.connect_timeout_ms ? a.connect_timeout_ms : a.timeout_ms;
    nc_client *cli;
    /* the library stays quiet without -v: a refused URL or option is reported once, below, with the
     * library's reason (nc_last_error) */
    r = nc_client_new(&cli, a.pos[0], &co);
    if (r) {
        fprintf(stderr, "nestc: cannot use %s: %s\n", a.pos[0], cli_reason(r));
        json_decref(data);
        cli_args_free(&a);
        return 2;
    }
    /* --retries: the library's retry policy, defaults but for the attempts (refused connections only:
     * a request that may have reached a handler is not sent twice) */
    if (a.retries > 0) {
        nc_retry_opts ro = {.struct_size = sizeof ro, .max_attempts = a.retries + 1};
        r = nc_client_use_retry(cli, &ro, NULL);
        if (r < 0) {
            fprintf(stderr, "nestc: --retries: %s\n", cli_reason(r));
            nc_client_free(cli);
            json_decref(data);
            cli_args_free(&a);
            return 2;
        }
    }
    outcome o = {0, 2};
    /* --trace: the call is the root span of a new trace, whose id is printed first (stderr: stdout holds
     * the reply values) */
    nc_trace_ctx prev = {0};
    if (a.trace) {
        r = nc_trace_enable_client(cli, NULL);
        if (r < 0) {
            fprintf(stderr, "nestc: --trace: %s\n", cli_reason(r));
            nc_client_free(cli);
            json_decref(data);
            cli_args_free(&a);
            return 2;
        }
        nc_trace_ctx root;
        char id[33];
        nc_trace_new_trace(&root);
        nc_trace_id_hex(&root, id);
        fprintf(stderr, "nestc: trace id %s\n", id);
        prev = nc_trace_set_current(&root);
    }
    nc_call_opts call = {0};
    call.metadata = a.metadata;
    call.headers = a.headers;
    call.options = call_opts;
    call.noptions = ncall;
    if (emit) {
        r = nc_client_emit(cli, a.pos[1], data, &call, on_done, &o);
    } else if (a.stream) {
        nc_call_cbs cbs = {.on_value = on_value, .on_done = on_stream_done};
        nc_call *c;
        r = nc_client_call(cli, a.pos[1], json_array_get(data, 0), &call, &cbs, &o, &c);
        if (!r && stream_rest(c, data, &o)) nc_call_cancel(c);
    } else {
        r = nc_client_send(cli, a.pos[1], data, &call, on_value, on_done, &o);
    }
    if (a.trace) nc_trace_set_current(&prev);
    json_decref(data);
    if (r) {
        fprintf(stderr, "nestc: %s\n", cli_reason(r));
        o.exit_code = 2;
    } else {
        nc_client_run(cli);
        if (!o.done) {
            fprintf(stderr, "nestc: the call did not complete\n");
            o.exit_code = 2;
        }
    }
    nc_client_free(cli);
    cli_args_free(&a);
    return o.exit_code;
}
