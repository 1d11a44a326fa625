/* nestc — command-line tool: send, emit, conformance, bench (DESIGN.md §4–§5). */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "nestc/nestc.h"

static void usage(FILE *f) {
    fprintf(f,
            "nestc %s — NestJS microservices from the command line\n\n"
            "usage:\n"
            "  nestc send <url> <pattern> [data] [options]   one request, print each reply value\n"
            "  nestc emit <url> <pattern> [data] [options]   one event\n"
            "  nestc conformance <url> [options]             serve the conformance service\n"
            "  nestc bench <url> <pattern> [data] [options]  load generator, prints one JSON line\n"
            "  nestc options <scheme>                        the transport options of a scheme\n"
            "  nestc <command> --help                        details of a command\n\n"
            "URLs: tcp://host:port, tls://host:port, redis[s]://host[:port][/db], nats://host[:port];\n"
            "transport options as ?name=value on the URL or --opt name=value\n",
            nc_version());
}

static int cmd_options(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: nestc options <scheme>   (tcp, tls, redis, rediss, nats)\n");
        return 2;
    }
    return cli_print_options(stdout, argv[2]);
}

int main(int argc, char **argv) {
    /* nestc help <scheme>: the same as nestc options <scheme> */
    if (argc == 3 && !strcmp(argv[1], "help")) return cmd_options(argc, argv);
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("%s\n", nc_version());
        return 0;
    }
    if (!strcmp(argv[1], "send")) return cmd_send_or_emit(argc, argv, 0);
    if (!strcmp(argv[1], "emit")) return cmd_send_or_emit(argc, argv, 1);
    if (!strcmp(argv[1], "conformance")) return cmd_conformance(argc, argv);
    if (!strcmp(argv[1], "bench")) return cmd_bench(argc, argv);
    if (!strcmp(argv[1], "options")) return cmd_options(argc, argv);
    fprintf(stderr, "nestc: unknown command \"%s\"\n", argv[1]);
    usage(stderr);
    return 2;
}
