/* What every test that runs its own RabbitMQ needs (DESIGN: brokers as plain processes on loopback): an epmd
 * of its own on a free loopback port, and in the broker's child (tests/common/broker.h's exec function,
 * run in the broker's directory) the config file, the plugin list and the environment that keep the node,
 * mnesia and logs in that directory. Shared by the unit tests (tests/unit/rabbit_harness.h) and the
 * conformance suite (tests/conformance/harness.c), so the recipe is written once. Needs broker.h. */
#ifndef NESTC_TEST_RABBIT_H
#define NESTC_TEST_RABBIT_H

#include "broker.h"

/* Starts epmd on port (loopback only, its output dropped) and waits until it accepts; returns its PID. */
static inline pid_t rabbit_epmd_start(int port, int time_factor) {
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        const char *argv[] = {"epmd", "-port", p, "-address", "127.0.0.1", NULL};
        execvp("epmd", (char **)argv);
        execv("/usr/lib/erlang/bin/epmd", (char **)argv);
        _exit(127);
    }
    for (int i = 0; i < 1000 * time_factor && !broker_port_open(port); i++) usleep(10000);
    return pid;
}

static inline void rabbit_epmd_stop(pid_t *pid) {
    if (*pid <= 0) return;
    kill(*pid, SIGTERM);
    waitpid(*pid, NULL, 0);
    *pid = 0;
}

/* How one node is laid out: its ports and, for TLS, the test CA, certificate and key. */
typedef struct rabbit_node {
    int epmd_port;
    int dist_port; /* Erlang distribution; 0: any free port at each start */
    int tcp;       /* 1: the plain listener on the broker's port */
    int tls_port;  /* the amqps listener (0: none); may be the broker's port when tcp is 0 */
    const char *ca, *cert, *key;
    int verify_peer;        /* TLS: ask for a client certificate signed by the CA, refuse without one */
    const char *plugins;    /* the enabled_plugins term, NULL: "[]." */
    const char *extra_conf; /* more rabbitmq.conf lines, or NULL */
} rabbit_node;

/* In the child, in the broker's directory: writes rabbitmq.conf and enabled_plugins, sets the node's
 * environment and execs rabbitmq-server. A password in b->pass becomes user "default" instead of guest. */
static inline void rabbit_exec(const broker *b, const char *port, const rabbit_node *n) {
    FILE *f = fopen("rabbitmq.conf", "w");
    if (!f) _exit(125);
    /* no disk alarm on a nearly full test disk; guest may connect from 127.0.0.1 (the default) */
    fprintf(f, "disk_free_limit.absolute = 1\nloopback_users = none\n");
    if (n->tcp)
        fprintf(f, "listeners.tcp.default = 127.0.0.1:%s\n", port);
    else /* TLS only: a case cannot reach the broker without TLS by mistake */
        fprintf(f, "listeners.tcp = none\n");
    if (n->tls_port)
        fprintf(
            f,
            "listeners.ssl.default = 127.0.0.1:%d\nssl_options.cacertfile = %s\nssl_options.certfile = %s\n"
            "ssl_options.keyfile = %s\nssl_options.verify = %s\n"
            "ssl_options.fail_if_no_peer_cert = %s\n",
            n->tls_port, n->ca, n->cert, n->key, n->verify_peer ? "verify_peer" : "verify_none",
            n->verify_peer ? "true" : "false");
    if (n->extra_conf) fputs(n->extra_conf, f);
    if (b->pass[0]) /* the user made on the node's first start, instead of guest */
        fprintf(f, "default_user = default\ndefault_pass = %s\n", b->pass);
    fclose(f);
    if ((f = fopen("enabled_plugins", "w"))) {
        fputs(n->plugins ? n->plugins : "[].\n", f);
        fclose(f);
    }
    char v[300];
    setenv("HOME", b->dir, 1);
    snprintf(v, sizeof v, "%d", n->epmd_port);
    setenv("ERL_EPMD_PORT", v, 1);
    snprintf(v, sizeof v, "nestc%s@localhost", port);
    setenv("RABBITMQ_NODENAME", v, 1);
    setenv("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1", 1);
    setenv("RABBITMQ_NODE_PORT", port, 1);
    snprintf(v, sizeof v, "%d", n->dist_port ? n->dist_port : broker_free_port());
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
    /* not /usr/sbin's wrapper: it would switch to the rabbitmq user, who cannot read this directory */
    execv("/usr/lib/rabbitmq/bin/rabbitmq-server", (char **)argv);
    execvp("rabbitmq-server", (char **)argv);
}

#endif
