/* See listen.h. */
#include "io/listen.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "nestc/error.h"
#include "util/errmap.h"

int nc_listen_tcp(uv_loop_t *loop, uv_tcp_t *listener, const char *host, int port, int reuseport,
                  uv_connection_cb on_connection, void *data, int *bound_port, char *why, size_t whylen) {
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    int r = getaddrinfo(host, service, &hints, &res);
    if (r || !res) {
        snprintf(why, whylen, "cannot resolve %s: %s", host, gai_strerror(r));
        return NC_ERESOLVE;
    }
    uv_tcp_init_ex(loop, listener, (unsigned)res->ai_family);
    listener->data = data;
    r = 0;
    if (reuseport) {
        uv_os_fd_t fd;
        int one = 1;
        r = uv_fileno((uv_handle_t *)listener, &fd);
        if (!r && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one))
            r = uv_translate_sys_error(errno);
    }
    if (!r) r = uv_tcp_bind(listener, res->ai_addr, 0);
    freeaddrinfo(res);
    if (!r) r = uv_listen((uv_stream_t *)listener, 1024, on_connection);
    if (r) {
        snprintf(why, whylen, "cannot listen on %s:%d: %s", host, port, uv_strerror(r));
        uv_close((uv_handle_t *)listener, NULL);
        return nc_err_from_uv(r);
    }
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    uv_tcp_getsockname(listener, (struct sockaddr *)&ss, &sl);
    *bound_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}
