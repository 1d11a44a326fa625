/* The one table of nestc's commands and options. Parsing (args.c), --help, the man page and the shell
 * completion scripts (gen.c) are all generated from it, so they cannot disagree. */
#ifndef NESTC_CLI_TABLE_H
#define NESTC_CLI_TABLE_H

#include <stddef.h>

/* Commands that take options, as bits: an option lists the commands that accept it. */
enum {
    CMD_SEND = 1u << 0,
    CMD_EMIT = 1u << 1,
    CMD_CONFORMANCE = 1u << 2,
    CMD_BENCH = 1u << 3,
    CMD_ALL = CMD_SEND | CMD_EMIT | CMD_CONFORMANCE | CMD_BENCH,
};

typedef enum cli_opt_id {
    O_HELP,
    O_VERBOSE,
    O_QUIET,
    O_TIMEOUT,
    O_CONNECT_TIMEOUT,
    O_CA,
    O_CERT,
    O_KEY,
    O_SERVERNAME,
    O_INSECURE,
    O_METADATA,
    O_HEADER,
    O_OPT,
    O_QUEUE,
    O_PROTO,
    O_STREAM,
    O_DATA_FILE,
    O_WORKERS,
    O_MAX_BUFFER,
    O_MAX_SEND_BUFFER,
    O_INCOMPLETE_TIMEOUT,
    O_SHUTDOWN_TIMEOUT,
    O_HANDSHAKE_TIMEOUT,
    O_EVENTS_HISTORY,
    O_CONNECTIONS,
    O_INFLIGHT,
    O_DURATION,
    O_WARMUP,
    O_EVENTS,
    O_EVENT_PATTERN,
    O_EVENT_DATA,
    O_SERVER_PID,
    O_ENGINE,
    O_ADMIN,         /* observability: conformance --admin host:port */
    O_TRACE,         /* observability: W3C trace context (send, emit, conformance) */
    O_RETRIES,       /* resilience: send --retries N (nestc/policy.h) */
    O_MAX_IN_FLIGHT, /* resilience: conformance --max-in-flight N (a server bulkhead) */
    O_RATE_LIMIT,    /* resilience: conformance --rate-limit N[/BURST] (a server rate limiter) */
} cli_opt_id;

/* What an option's value is: how it is parsed and how the completion scripts complete it. */
typedef enum cli_val {
    V_NONE,   /* a flag */
    V_INT,    /* a non-negative integer in [min, max] */
    V_NUM,    /* a non-negative number (fractions allowed) in [min, max] */
    V_TEXT,   /* free text */
    V_FILE,   /* a file name */
    V_CHOICE, /* one of `choices` */
} cli_val;

typedef struct cli_opt {
    cli_opt_id id;
    const char *name;     /* "--timeout" */
    char short_name;      /* 'v' for -v, 0 = none */
    cli_val val;          /* V_NONE: a flag */
    const char *val_name; /* "MS" */
    unsigned cmds;        /* CMD_* bits of the commands that accept it */
    int repeat;           /* may be given more than once (each adds) */
    double min, max;      /* V_INT / V_NUM range */
    const char *choices;  /* V_CHOICE: "raw|client" */
    const char *help;     /* one line; the same name may have one entry per command group */
} cli_opt;

typedef struct cli_cmd {
    const char *name;
    unsigned bit;         /* CMD_* or 0 for commands without options */
    const char *synopsis; /* after "nestc <name> " */
    const char *summary;  /* one line */
    const char *details;  /* paragraph(s) for --help and the man page, lines of at most 100 columns */
    int npos;             /* positional arguments of the form: the first is a URL when url_first */
    int url_first;
} cli_cmd;

extern const cli_opt cli_opts[];
extern const size_t cli_nopts;
extern const cli_cmd cli_cmds[];
extern const size_t cli_ncmds;

/* The command named `name`, NULL when there is none. */
const cli_cmd *cli_cmd_find(const char *name);
/* The entry of option `name` ("--timeout", "-v") for command bit `cmd`. NULL when the command does not
 * have it; *exists (may be NULL) tells whether some other command has it. */
const cli_opt *cli_opt_find(const char *name, unsigned cmd, int *exists);
/* The i-th URL scheme this build supports (in a fixed order: tcp, tls, redis, rediss, nats, then any
 * other the library registers from a list of known names), NULL past the end. */
const char *cli_scheme(size_t i);
/* "tcp, tls, redis, rediss, nats" into buf. */
const char *cli_schemes_text(char *buf, size_t len);

#endif
