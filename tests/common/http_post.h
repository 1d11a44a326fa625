/* What the test collectors (OTLP receivers on a thread of the test) share: a loopback socket bound to a
 * free port, and reading one HTTP request whose body has a Content-Length. Test code only. */
#ifndef NC_TEST_HTTP_POST_H
#define NC_TEST_HTTP_POST_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A TCP socket bound to 127.0.0.1 on a free port (in *port), not listening yet; -1 on failure. */
static inline int http_post_bind(int *port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &l)) {
        if (fd >= 0) close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

/* Reads one request from s into buf (cap bytes, NUL-terminated): its head, then Content-Length bytes.
 * Returns the body's offset in buf (the head is the bytes before it, less the blank line) and the bytes
 * read in *len; -1 when the peer closed first or the request does not fit. */
static inline long http_post_read(int s, char *buf, size_t cap, size_t *len) {
    size_t n = 0;
    while (n < cap - 1) {
        ssize_t r = read(s, buf + n, cap - 1 - n);
        if (r <= 0) return -1;
        n += (size_t)r;
        buf[n] = 0;
        char *end = strstr(buf, "\r\n\r\n"), *cl = strstr(buf, "Content-Length: ");
        if (end && cl && n >= (size_t)(end + 4 - buf) + (size_t)atol(cl + 16)) {
            *len = n;
            return (long)(end + 4 - buf);
        }
    }
    return -1;
}

#endif
