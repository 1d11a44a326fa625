/* nestc bench: bytes sent (acknowledged by the peer) and received on a TCP socket, as the kernel counts
 * them since the connection opened. Returns 0, or -1 when the kernel does not tell. */
#ifndef NESTC_CLI_BENCH_TCPINFO_H
#define NESTC_CLI_BENCH_TCPINFO_H

#include <stdint.h>

int bench_tcp_bytes(int fd, uint64_t *out, uint64_t *in);

#endif
