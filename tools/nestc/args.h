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
    int connections, inflight, duration_s; /* bench */
    long long max_buffer_size, max_send_buffer_size; /* -2 = not given */
    int incomplete_timeout_ms, shutdown_timeout_ms;    /* -2 = not given */
} cli_args;

/* Parses argv[first..argc). Returns 0, or 2 after printing a message for a bad flag. */
int cli_parse(cli_args *a, int argc, char **argv, int first);
void cli_args_free(cli_args *a);
/* Applies -v/-q to the default logger. */
void cli_setup_logging(const cli_args *a);
/* Prints v as one line of compact JSON (JavaScript JSON.stringify form) to f. */
void cli_print_json(FILE *f, const json_t *v);

#endif
