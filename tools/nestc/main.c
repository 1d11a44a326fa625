/* nestc — command-line tool: send, emit, conformance, bench (DESIGN.md §4–§5). */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "gen.h"
#include "nestc/nestc.h"
#include "table.h"

static int cmd_options(int argc, char **argv) {
    if (argc != 3 || argv[2][0] == '-') {
        char buf[200];
        fprintf(stderr, "usage: nestc options <scheme>   (%s)\n", cli_schemes_text(buf, sizeof buf));
        return argc == 3 && (!strcmp(argv[2], "-h") || !strcmp(argv[2], "--help")) ? 0 : 2;
    }
    return cli_print_options(stdout, argv[2]);
}

/* nestc help [command | scheme | --man] */
static int cmd_help(int argc, char **argv) {
    if (argc == 2) {
        cli_overview(stdout);
        return 0;
    }
    if (argc == 3 && !strcmp(argv[2], "--man")) {
        cli_man(stdout);
        return 0;
    }
    if (argc == 3 && cli_cmd_find(argv[2])) {
        cli_usage(stdout, argv[2]);
        return 0;
    }
    if (argc == 3) return cli_print_options(stdout, argv[2]); /* nestc help <scheme> */
    fprintf(stderr, "usage: nestc help [command | scheme | --man]\n");
    return 2;
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        cli_overview(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("%s\n", nc_version());
        return 0;
    }
    if (!strcmp(argv[1], "help")) return cmd_help(argc, argv);
    if (!strcmp(argv[1], "send")) return cmd_send_or_emit(argc, argv, 0);
    if (!strcmp(argv[1], "emit")) return cmd_send_or_emit(argc, argv, 1);
    if (!strcmp(argv[1], "conformance")) return cmd_conformance(argc, argv);
    if (!strcmp(argv[1], "bench")) return cmd_bench(argc, argv);
    if (!strcmp(argv[1], "options")) return cmd_options(argc, argv);
    if (!strcmp(argv[1], "completion")) {
        if (argc == 3 && (!strcmp(argv[2], "-h") || !strcmp(argv[2], "--help"))) {
            cli_usage(stdout, "completion");
            return 0;
        }
        return cli_completion(stdout, argc == 3 ? argv[2] : NULL);
    }
    fprintf(stderr, "nestc: unknown command \"%s\"\n", argv[1]);
    cli_overview(stderr);
    return 2;
}
