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
    } else if (err == NC_EREMOTE) {
        cli_print_json(stderr, error); /* the remote error value, verbatim */
        o->exit_code = 1;
    } else {
        const char *msg = json_is_string(error) ? json_string_value(error) : nc_strerror(err);
        fprintf(stderr, "nestc: %s: %s\n", nc_err_name(err), msg);
        o->exit_code = 2;
    }
}

static void usage(FILE *f, int emit) {
    if (emit)
        fputs("usage: nestc emit <url> <pattern> [data] [options]\n"
              "  Publishes one event (NestJS client.emit). Exits 0 once the transport accepted it.\n",
              f);
    else
        fputs("usage: nestc send <url> <pattern> [data] [options]\n"
              "  Sends one request (NestJS client.send) and prints each reply value as one line of\n"
              "  compact JSON. Exit 0 when the reply stream ends; 1 on an error reply (its JSON on\n"
              "  stderr); 2 on timeout, refused connection, TLS failure or bad arguments.\n",
              f);
    fputs(
        "  <url>      tcp://host:port or tls://host:port\n"
        "  <pattern>  a JSON object or number if it parses as one ('{\"cmd\":\"sum\"}', 42), else a string\n"
        "  [data]     JSON text (default null)\n"
        "options:\n"
        "  --timeout MS       request timeout, connecting included (default 5000; 0 = none)\n"
        "  --ca FILE          trust this CA for tls:// instead of the system store\n"
        "  --cert FILE --key FILE   client certificate (mutual TLS)\n"
        "  --servername NAME  TLS name to verify (default: the URL host)\n"
        "  --metadata k=v     packet metadata (NestJS 12), repeatable\n"
        "  --header k=v       transport headers, for transports that have them, repeatable\n"
        "  --opt name=value   transport option, repeatable (nestc options <scheme> lists them)\n"
        "  -v, --verbose      log the library's debug output on stderr\n",
        f);
}

int cmd_send_or_emit(int argc, char **argv, int emit) {
    cli_args a;
    if (cli_parse(&a, argc, argv, 2)) {
        usage(stderr, emit);
        return 2;
    }
    if (a.help) {
        usage(stdout, emit);
        return 0;
    }
    if (a.npos < 2 || a.npos > 3) {
        fprintf(stderr, "nestc %s: expected <url> <pattern> [data]\n", emit ? "emit" : "send");
        usage(stderr, emit);
        cli_args_free(&a);
        return 2;
    }
    nc_log_set_default(NULL, NULL, a.verbose ? NC_LOG_DEBUG : NC_LOG_OFF);
    json_t *data = NULL;
    if (a.npos == 3) {
        char err[200];
        if (nc_json_parse(a.pos[2], strlen(a.pos[2]), &data, err, sizeof err)) {
            fprintf(stderr, "nestc: data is not valid JSON: %s\n", err);
            cli_args_free(&a);
            return 2;
        }
    } else {
        data = json_null();
    }
    nc_option conn_opts[CLI_MAX_OPTS], call_opts[CLI_MAX_OPTS];
    size_t nconn, ncall;
    if (cli_split_opts(&a, a.pos[0], NC_OPT_CLIENT, 1, conn_opts, &nconn, call_opts, &ncall)) {
        json_decref(data);
        cli_args_free(&a);
        return 2;
    }
    nc_client_opts co = {0};
    co.options = conn_opts;
    co.noptions = nconn;
    co.tls = a.has_tls ? &a.tls : NULL;
    co.timeout_ms = a.timeout_ms == 0 ? NC_LIMIT_OFF : a.timeout_ms;
    /* --timeout bounds the whole call, connection included: a slow TLS handshake may use all of it. */
    co.connect_timeout_ms = a.timeout_ms == 0 ? -1 : a.timeout_ms;
    nc_client *cli;
    /* a refused URL parameter or option is named by the library's log line: let errors through until
     * the call is made (quiet afterwards: the outcome is reported below) */
    if (!a.verbose) nc_log_set_default(NULL, NULL, NC_LOG_ERROR);
    int r = nc_client_new(&cli, a.pos[0], &co);
    if (r) {
        fprintf(stderr, "nestc: cannot use %s: %s\n", a.pos[0], nc_strerror(r));
        json_decref(data);
        cli_args_free(&a);
        return 2;
    }
    outcome o = {0, 2};
    nc_call_opts call = {0};
    call.metadata = a.metadata;
    call.headers = a.headers;
    call.options = call_opts;
    call.noptions = ncall;
    r = emit ? nc_client_emit(cli, a.pos[1], data, &call, on_done, &o)
             : nc_client_send(cli, a.pos[1], data, &call, on_value, on_done, &o);
    json_decref(data);
    if (!a.verbose) nc_log_set_default(NULL, NULL, NC_LOG_OFF);
    if (r) {
        fprintf(stderr, "nestc: %s\n", nc_strerror(r));
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
