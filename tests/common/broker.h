/* A broker process of a test's own (redis-server, nats-server): on a free loopback port, in a temporary
 * directory, started, stopped by PID and restarted on the same port. Shared by the broker unit tests
 * (tests/unit/broker_harness.h) and the conformance suite (tests/conformance). The caller gives the
 * function that runs in the child, in the broker's directory, and execs the broker. Needs cmocka.
 * (static inline: a file that includes this need not use every function) */
#ifndef NESTC_TEST_BROKER_H
#define NESTC_TEST_BROKER_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct broker {
    pid_t pid;
    int port;
    char dir[64];
    char pass[32]; /* a password the broker requires, or "" */
    int kind, tls; /* what to run, for the caller's exec function */
} broker;

/* In the child: exec the broker listening on 127.0.0.1:port. */
typedef void (*broker_exec_fn)(const broker *b, const char *port);

static inline int broker_free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &l);
    close(fd);
    return ntohs(a.sin_port);
}

static inline int broker_port_open(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* Starts (or restarts, same port) the broker; returns once it accepts connections, within 60 s × the
 * time factor (usually milliseconds). */
static inline void broker_start_with(broker *b, int time_factor, broker_exec_fn exec) {
    if (!b->port) {
        b->port = broker_free_port();
        const char *tmp = getenv("TMPDIR");
        snprintf(b->dir, sizeof b->dir, "%s/nestc-broker-XXXXXX",
                 tmp && *tmp && strlen(tmp) < 40 ? tmp : "/tmp");
        assert_non_null(mkdtemp(b->dir));
    }
    char port[16];
    snprintf(port, sizeof port, "%d", b->port);
    b->pid = fork();
    assert_true(b->pid >= 0);
    if (b->pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1); /* the broker must not hold the test's output open */
        dup2(null, 2);
        if (chdir(b->dir)) _exit(126);
        exec(b, port);
        _exit(127);
    }
    for (int i = 0; i < 6000 * time_factor && !broker_port_open(b->port); i++) {
        int status;
        assert_int_equal(waitpid(b->pid, &status, WNOHANG), 0); /* it did not exit */
        usleep(10000);
    }
    assert_true(broker_port_open(b->port));
}

static inline void broker_stop(broker *b) {
    if (b->pid <= 0) return;
    kill(b->pid, SIGTERM);
    waitpid(b->pid, NULL, 0);
    b->pid = 0;
}

/* Stops it and removes its directory. */
static inline void broker_free(broker *b) {
    broker_stop(b);
    if (!b->dir[0]) return;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", b->dir);
    if (system(cmd)) {
    }
    b->dir[0] = '\0';
}

/* In the child: exec mosquitto on 127.0.0.1:port with a plain configuration (no persistence, anonymous
 * clients), written into the broker's directory. */
static inline void broker_exec_mosquitto(const broker *b, const char *port) {
    (void)b;
    FILE *f = fopen("mosquitto.conf", "w");
    if (!f) _exit(125);
    fprintf(f, "listener %s 127.0.0.1\npersistence false\nallow_anonymous true\n", port);
    if (getuid() == 0) fprintf(f, "user root\n"); /* else it switches to a user that cannot read this dir */
    fclose(f);
    const char *argv[] = {"mosquitto", "-c", "mosquitto.conf", NULL};
    execvp("mosquitto", (char **)argv);
    execv("/usr/sbin/mosquitto", (char **)argv);
}

#endif
