/* A RabbitMQ broker of a test's own (DESIGN: brokers as plain processes on loopback): its own epmd on a free
 * port, then rabbitmq-server in a temporary directory (node name, mnesia, logs and config there), both
 * stopped by PID. Restartable on the same ports with its data kept (durable queues come back). A shared
 * broker named by NESTC_RMQ_URL is used instead when set, or by the env file NESTC_RMQ_ENV names (what ctest
 * gives a test registered with nestc_rabbitmq_test: the run's one broker, tests/interop/rabbitmq.cmake).
 * rabbitmqctl for the broker in use is r->ctl either way (the broker's own counters, for tests that check
 * them). Needs cmocka; the recipe itself is tests/common/rabbit.h. */
#ifndef NESTC_TEST_RABBIT_HARNESS_H
#define NESTC_TEST_RABBIT_HARNESS_H

#include <sys/stat.h>

#include "../common/rabbit.h"

typedef struct rabbit {
    broker b;
    pid_t epmd;
    int epmd_port, dist_port;
    int external; /* NESTC_RMQ_URL given: nothing started here */
    char url[200];
    /* rabbitmqctl with the node's environment ("" if unknown): RMQ_CTL of the shared broker, or a script
     * written into the broker's directory */
    char ctl[200];
    /* TLS: set certs (a directory with gen-certs.sh's ca.pem, server.pem, server.key) before rabbit_start
     * for a TLS listener too (tls_url); an external broker has it when NESTC_RMQS_URL is set */
    char certs[128];
    int tls_port;
    char tls_url[200];
} rabbit;

/* read by the child (fork keeps them) */
static int rabbit_epmd_port_, rabbit_dist_port_, rabbit_tls_port_;
static const char *rabbit_certs_;

/* ctest's shared broker: every NAME=VALUE line of the file NESTC_RMQ_ENV names (NESTC_RMQ_URL,
 * NESTC_RMQS_URL, NESTC_RMQ_CA, RMQ_CTL, …) into the environment, unless NESTC_RMQ_URL is set already.
 * Without the file (run by hand, or under valgrind by scripts/test.sh) nothing changes and the test starts a
 * broker of its own. */
static inline void rabbit_read_env_file_(void) {
    const char *path = getenv("NESTC_RMQ_ENV");
    if (!path || !*path || getenv("NESTC_RMQ_URL")) return;
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "no shared broker (%s missing): starting one\n", path);
        return;
    }
    char line[512];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        char *eq = strchr(line, '=');
        if (!eq || eq == line || line[0] == '#') continue;
        *eq = '\0';
        setenv(line, eq + 1, 0);
    }
    fclose(f);
}

static inline int rabbit_installed(void) {
    rabbit_read_env_file_();
    return getenv("NESTC_RMQ_URL") || access("/usr/lib/rabbitmq/bin/rabbitmq-server", X_OK) == 0;
}

static inline void rabbit_exec_(const broker *b, const char *port) {
    char ca[200], cert[200], key[200];
    snprintf(ca, sizeof ca, "%s/ca.pem", rabbit_certs_);
    snprintf(cert, sizeof cert, "%s/server.pem", rabbit_certs_);
    snprintf(key, sizeof key, "%s/server.key", rabbit_certs_);
    rabbit_node n = {.epmd_port = rabbit_epmd_port_,
                     .dist_port = rabbit_dist_port_,
                     .tcp = 1,
                     .tls_port = rabbit_tls_port_,
                     .ca = ca,
                     .cert = cert,
                     .key = key};
    rabbit_exec(b, port, &n);
}

/* rabbitmqctl for our own node: its name, epmd port and HOME (the Erlang cookie) as rabbit_exec set them. */
static inline void rabbit_write_ctl_(rabbit *r) {
    snprintf(r->ctl, sizeof r->ctl, "%s/rabbitmqctl", r->b.dir);
    FILE *f = fopen(r->ctl, "w");
    if (!f) {
        r->ctl[0] = '\0';
        return;
    }
    fprintf(f,
            "#!/bin/sh\nexec env HOME='%s' ERL_EPMD_PORT=%d RABBITMQ_NODENAME=nestc%d@localhost "
            "RABBITMQ_CTL_ERL_ARGS='-start_epmd false' /usr/lib/rabbitmq/bin/rabbitmqctl \"$@\"\n",
            r->b.dir, r->epmd_port, r->b.port);
    fclose(f);
    chmod(r->ctl, 0755);
}

/* Starts epmd (once) and the broker; returns once the AMQP port accepts connections. */
static inline void rabbit_start(rabbit *r, int time_factor) {
    const char *ext = getenv("NESTC_RMQ_URL");
    if (ext && *ext) {
        r->external = 1;
        snprintf(r->url, sizeof r->url, "%s", ext);
        const char *tls = getenv("NESTC_RMQS_URL");
        snprintf(r->tls_url, sizeof r->tls_url, "%s", tls ? tls : "");
        const char *ctl = getenv("RMQ_CTL");
        snprintf(r->ctl, sizeof r->ctl, "%s", ctl ? ctl : "");
        /* the CA of the shared broker's TLS listener: its directory is the certificate directory */
        const char *ca = getenv("NESTC_RMQ_CA");
        const char *slash = ca ? strrchr(ca, '/') : NULL;
        if (!r->certs[0] && slash && slash - ca < (long)sizeof r->certs)
            snprintf(r->certs, sizeof r->certs, "%.*s", (int)(slash - ca), ca);
        return;
    }
    if (!r->epmd_port) {
        r->epmd_port = broker_free_port();
        r->dist_port = broker_free_port();
        if (r->certs[0]) r->tls_port = broker_free_port();
    }
    rabbit_epmd_port_ = r->epmd_port;
    rabbit_dist_port_ = r->dist_port;
    rabbit_tls_port_ = r->tls_port;
    rabbit_certs_ = r->certs;
    if (r->epmd <= 0) r->epmd = rabbit_epmd_start(r->epmd_port, time_factor);
    broker_start_with(&r->b, time_factor * 2, rabbit_exec_); /* 4-16 s to start */
    snprintf(r->url, sizeof r->url, "amqp://127.0.0.1:%d", r->b.port);
    rabbit_write_ctl_(r);
    if (r->tls_port) {
        snprintf(r->tls_url, sizeof r->tls_url, "amqps://127.0.0.1:%d", r->tls_port);
        /* the TLS listener starts after the plain one */
        for (int i = 0; i < 1000 * time_factor && !broker_port_open(r->tls_port); i++) usleep(10000);
    }
}

/* Stops the broker (kept: its directory and ports, for rabbit_start again). */
static inline void rabbit_stop(rabbit *r) {
    if (!r->external) broker_stop(&r->b);
}

static inline void rabbit_free(rabbit *r) {
    if (r->external) return;
    broker_free(&r->b);
    rabbit_epmd_stop(&r->epmd);
}

#endif
