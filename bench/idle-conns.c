/* Opens N idle TCP connections to a server and holds them, for the per-connection memory figure.
 *
 *   idle-conns --port P --count N [--host H]
 *
 * Prints "connected N" once every connection is established, then sends nothing and waits until it is
 * killed (SIGTERM closes them all at once). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int usage(void) {
    fprintf(stderr, "usage: idle-conns --port P --count N [--host H]\n");
    return 2;
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    long port = 0, count = 0;
    for (int i = 1; i < argc; i++) {
        char *end;
        if (i + 1 >= argc) return usage();
        if (!strcmp(argv[i], "--host")) {
            host = argv[++i];
        } else if (!strcmp(argv[i], "--port")) {
            port = strtol(argv[++i], &end, 10);
            if (*end || port < 1 || port > 65535) return usage();
        } else if (!strcmp(argv[i], "--count")) {
            count = strtol(argv[++i], &end, 10);
            if (*end || count < 1) return usage();
        } else {
            return usage();
        }
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) return usage();
    /* Blocking connects one after the other: loopback completes the handshake in the kernel, so this
     * never waits on the server's accept loop unless its backlog is full. */
    for (long i = 0; i < count; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr)) {
            fprintf(stderr, "idle-conns: connection %ld: ", i + 1);
            perror(NULL);
            return 1;
        }
    }
    printf("connected %ld\n", count);
    fflush(stdout);
    for (;;) pause();
}
