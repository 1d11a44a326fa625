/* The nestc subcommands. Each returns the process exit code. */
#ifndef NESTC_CLI_COMMANDS_H
#define NESTC_CLI_COMMANDS_H

int cmd_send_or_emit(int argc, char **argv, int emit);
int cmd_conformance(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* nestc send grpc://… (send_grpc.c), with the arguments parsed */
struct cli_args;
int send_grpc(struct cli_args *a);

#include "nestc/nestc.h"
/* conformance on grpc://: the conformance.proto service's handlers */
void conformance_grpc_register(nc_server *s);

#endif
