/* Command-line parsing shared by the nestc subcommands: flags may come before or after the positional
 * arguments (DESIGN.md §5). */
#ifndef NESTC_CLI_ARGS_H
#define NESTC_CLI_ARGS_H

#include <jansson.h>

#include "nestc/nestc.h"

#define CLI_MAX_POS 8

typedef struct cli_args {
    const char *pos[CLI_MAX_POS];
    int npos;
    int timeout_ms; /* --timeout */
    nc_tls_opts tls;
    int has_tls;
    json_t *metadata; /* --metadata k=v (object), NULL when none */
    json_t *headers;  /* --header k=v (object), NULL when none */
    const char *queue;
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
} cli_args;

/* Parses argv[first..argc). Returns 0, or 2 after printing a message for a bad flag. */
int cli_parse(cli_args *a, int argc, char **argv, int first);
void cli_args_free(cli_args *a);
/* The data of a command: the JSON file given with --data-file, or the JSON text `text` (the positional
 * [data], may be NULL), or JSON null when neither is given. Both at once is an error. On success stores a
 * new reference in *out and returns 0; otherwise prints a message on stderr and returns 2. */
int cli_load_data(const cli_args *a, const char *text, json_t **out);
/* Applies -v/-q to the default logger. */
void cli_setup_logging(const cli_args *a);
/* Prints v as one line of compact JSON (JavaScript JSON.stringify form) to f. */
void cli_print_json(FILE *f, const json_t *v);

#endif
