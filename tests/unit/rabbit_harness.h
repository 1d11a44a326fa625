/* A RabbitMQ broker of a test's own (DESIGN: brokers as plain processes on loopback): its own epmd on a free
 * port, then rabbitmq-server in a temporary directory (node name, mnesia, logs and config there), both
 * stopped by PID. Restartable on the same ports with its data kept (durable queues come back). A shared
 * broker named by NESTC_RMQ_URL is used instead when set. Needs cmocka and tests/common/broker.h. */
#ifndef NESTC_TEST_RABBIT_HARNESS_H
#define NESTC_TEST_RABBIT_HARNESS_H

#include "../common/broker.h"

typedef struct rabbit {
    broker b;
    pid_t epmd;
    int epmd_port, dist_port;
    int external; /* NESTC_RMQ_URL given: nothing started here */
    char url[200];
    /* TLS: set certs (a directory with gen-certs.sh's ca.pem, server.pem, server.key) before rabbit_start
     * for a TLS listener too (tls_url); an external broker has it when NESTC_RMQS_URL is set */
    char certs[128];
    int tls_port;
    char tls_url[200];
} rabbit;

/* read by the child (fork keeps them) */
static int rabbit_epmd_port_, rabbit_dist_port_, rabbit_tls_port_;
static const char *rabbit_certs_;

static inline int rabbit_installed(void) {
    return getenv("NESTC_RMQ_URL") || access("/usr/lib/rabbitmq/bin/rabbitmq-server", X_OK) == 0;
}

static inline void rabbit_exec_(const broker *b, const char *port) {
    FILE *f = fopen("rabbitmq.conf", "w");
    if (!f) _exit(125);
    /* guest may connect from 127.0.0.1 only (the default); no disk alarm on a nearly full test disk */
    fprintf(f, "listeners.tcp.default = 127.0.0.1:%s\ndisk_free_limit.absolute = 1\nloopback_users = none\n",
            port);
    if (rabbit_tls_port_)
        fprintf(f,
                "listeners.ssl.default = 127.0.0.1:%d\nssl_options.cacertfile = %s/ca.pem\n"
                "ssl_options.certfile = %s/server.pem\nssl_options.keyfile = %s/server.key\n"
                "ssl_options.verify = verify_none\nssl_options.fail_if_no_peer_cert = false\n",
                rabbit_tls_port_, rabbit_certs_, rabbit_certs_, rabbit_certs_);
    fclose(f);
    if ((f = fopen("enabled_plugins", "w"))) {
        fputs("[].\n", f);
        fclose(f);
    }
    char v[300];
    setenv("HOME", b->dir, 1);
    snprintf(v, sizeof v, "%d", rabbit_epmd_port_);
    setenv("ERL_EPMD_PORT", v, 1);
    snprintf(v, sizeof v, "nestc%s@localhost", port);
    setenv("RABBITMQ_NODENAME", v, 1);
    setenv("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1", 1);
    setenv("RABBITMQ_NODE_PORT", port, 1);
    snprintf(v, sizeof v, "%d", rabbit_dist_port_);
    setenv("RABBITMQ_DIST_PORT", v, 1);
    snprintf(v, sizeof v, "%s/mnesia", b->dir);
    setenv("RABBITMQ_MNESIA_BASE", v, 1);
    snprintf(v, sizeof v, "%s/log", b->dir);
    setenv("RABBITMQ_LOG_BASE", v, 1);
    setenv("RABBITMQ_LOGS", "-", 1);
    snprintf(v, sizeof v, "%s/rabbitmq.conf", b->dir);
    setenv("RABBITMQ_CONFIG_FILE", v, 1);
    snprintf(v, sizeof v, "%s/enabled_plugins", b->dir);
    setenv("RABBITMQ_ENABLED_PLUGINS_FILE", v, 1);
    const char *argv[] = {"rabbitmq-server", NULL};
    execv("/usr/lib/rabbitmq/bin/rabbitmq-server", (char **)argv);
}

/* Starts epmd (once) and the broker; returns once the AMQP port accepts connections. */
static inline void rabbit_start(rabbit *r, int time_factor) {
    const char *ext = getenv("NESTC_RMQ_URL");
    if (ext && *ext) {
        r->external = 1;
        snprintf(r->url, sizeof r->url, "%s", ext);
        const char *tls = getenv("NESTC_RMQS_URL");
        snprintf(r->tls_url, sizeof r->tls_url, "%s", tls ? tls : "");
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
    if (r->epmd <= 0) {
        char port[16];
        snprintf(port, sizeof port, "%d", r->epmd_port);
        r->epmd = fork();
        assert_true(r->epmd >= 0);
        if (r->epmd == 0) {
            int null = open("/dev/null", O_WRONLY);
            dup2(null, 1);
            dup2(null, 2);
            const char *argv[] = {"epmd", "-port", port, "-address", "127.0.0.1", NULL};
            execvp("epmd", (char **)argv);
            execv("/usr/lib/erlang/bin/epmd", (char **)argv);
            _exit(127);
        }
        for (int i = 0; i < 1000 * time_factor && !broker_port_open(r->epmd_port); i++) usleep(10000);
    }
    broker_start_with(&r->b, time_factor * 2, rabbit_exec_); /* 4-16 s to start */
    snprintf(r->url, sizeof r->url, "amqp://127.0.0.1:%d", r->b.port);
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
    if (r->epmd > 0) {
        kill(r->epmd, SIGTERM);
        waitpid(r->epmd, NULL, 0);
        r->epmd = 0;
    }
}

#endif
