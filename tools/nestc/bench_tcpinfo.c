/* nestc bench, client engine: bytes through a socket, from the kernel's TCP_INFO.
 *
 * Exists because the client engine does not see the bytes the nestc client library writes and reads;
 * the kernel counts them per socket (tcpi_bytes_acked, tcpi_bytes_received; Linux >= 4.2). Its own file
 * because <linux/tcp.h>, which has those fields, clashes with the <netinet/tcp.h> that uv.h includes. */
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "bench_tcpinfo.h"

int bench_tcp_bytes(int fd, uint64_t *out, uint64_t *in) {
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len)) return -1;
    if (len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof ti.tcpi_bytes_received) return -1;
    *out = ti.tcpi_bytes_acked;
    *in = ti.tcpi_bytes_received;
    return 0;
}
