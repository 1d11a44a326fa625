/* Command-line parsing shared by the nestc subcommands: flags may come before or after the positional
 * arguments (DESIGN.md §5). */
#ifndef NESTC_CLI_ARGS_H
#define NESTC_CLI_ARGS_H

#include <jansson.h>

#include "nestc/nestc.h"

#define CLI_MAX_POS 8
#define CLI_MAX_OPTS 32

typedef struct cli_args {
    const char *pos[CLI_MAX_POS];
    int npos;
    int timeout_ms;         /* --timeout */
    int connect_timeout_ms; /* --connect-timeout, 0 = not given */
    int insecure;           /* --insecure */
    int stream;             /* --stream (send) */
    nc_tls_opts tls;
    int has_tls;
    json_t *metadata; /* --metadata k=v (object), NULL when none */
    json_t *headers;  /* --header k=v (object), NULL when none */
    /* transport options, in command-line order (a later one wins): --opt name=value, and the dedicated
     * flags that are options (--queue Q is --opt queue=Q). Names are owned, values borrowed from argv. */
    nc_option opts[CLI_MAX_OPTS];
    size_t nopts;
    int verbose, quiet, help;
    const char *data_file; /* --data-file: the data JSON read from this file (see cli_load_data) */
    int workers;           /* --workers (conformance), default 0 */
    /* bench */
    int connections, inflight;   /* --connections (default 1), --inflight per connection (default 1) */
    double duration_s, warmup_s; /* --duration (default 5), --warmup (default 1); fractions allowed */
    int events;                  /* --events K: events before each request (default 0) */
    const char *event_pattern;   /* --event-pattern */
    const char *event_data;      /* --event-data (JSON text), NULL = the request data */
    int server_pid;              /* --server-pid, 0 = none */
    const char *engine;          /* --engine raw|client, NULL = default */
    long long max_buffer_size, max_send_buffer_size; /* -2 = not given */
    int incomplete_timeout_ms, shutdown_timeout_ms;  /* -2 = not given */
    int handshake_timeout_ms;                        /* --handshake-timeout (conformance), -2 = not given */
    int events_history;                              /* --events-history (conformance), -2 = not given */
    const char *admin;                               /* --admin host:port (conformance), NULL = none */
    int trace;                                       /* --trace (send, emit, conformance) */
    int retries;                                     /* --retries (send), 0 = none */
    int max_in_flight;                               /* --max-in-flight (conformance), 0 = none */
    const char *rate_limit;                          /* --rate-limit N[/BURST] (conformance), NULL = none */
} cli_args;

/* Parses argv[first..argc) for the command argv[1], against the option table (table.h): an option the
 * command does not have is refused wherever it stands. Returns 0, or 2 after printing a message. */
int cli_parse(cli_args *a, int argc, char **argv, int first);
/* Prints the --help of command `name` (generated from the table) to f. */
void cli_usage(FILE *f, const char *name);
void cli_args_free(cli_args *a);
/* The data of a command: the JSON file given with --data-file, or `text` (the positional [data], may be
 * NULL): "@FILE" reads the file, "@-" standard input, anything else is JSON text (JSON text never starts
 * with '@', so there is nothing to escape); JSON null when neither is given. Both at once is an error.
 * On success stores a new reference in *out and returns 0; otherwise prints a message on stderr and
 * returns 2. */
int cli_load_data(const cli_args *a, const char *text, json_t **out);
/* --stream: the JSON values of `text` ("@FILE", "@-", or JSON text; NULL = "@-"), separated by
 * whitespace, as a new array in *out. Returns 0, or 2 after a message. */
int cli_load_stream(const char *text, json_t **out);
/* The scheme of url, lowercase, into buf ("" when there is none). */
const char *cli_scheme_of(const char *url, char *buf, size_t len);
/* Fills the client TLS options of a command (--insecure checked against the URL's scheme, warned about
 * once). Returns the options to use (NULL = none), or sets *rc = 2 after a message. */
const nc_tls_opts *cli_client_tls(cli_args *a, const char *url, int *rc);
/* The transport options for a command of `url`: those the transport takes at `level` go to *conn, on
 * send/emit (call_too) those it takes only per call go to *call. Every option is checked against the
 * transport's table first: a refused one prints the reason on stderr and returns 2. */
int cli_split_opts(const cli_args *a, const char *url, unsigned level, int call_too, nc_option *conn,
                   size_t *nconn, nc_option *call, size_t *ncall);
/* nestc options <scheme> / nestc help <scheme>: prints the transport's options. */
int cli_print_options(FILE *f, const char *scheme);
/* The reason of a failed library call on this thread: the library's own text where it has one, else
 * nc_strerror(err). */
const char *cli_reason(int err);
/* Applies -v/-q to the default logger. */
void cli_setup_logging(const cli_args *a);
/* Prints v as one line of compact JSON (JavaScript JSON.stringify form) to f. */
void cli_print_json(FILE *f, const json_t *v);

#endif
