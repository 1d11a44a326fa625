/* The suite's fixture: the loop, waits with deadlines, the broker process (Redis, NATS, mosquitto,
 * RabbitMQ, plain or TLS, or Kafka's mock cluster) and the test certificates, and servers/clients configured
 * for the transport under test. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "suite.h"
#include "../common/rabbit.h"

conf_fx FX;
uv_loop_t loop;

int time_factor(void) {
    static int f;
    if (!f) {
        const char *v = getenv("NESTC_TEST_TIMEOUT_FACTOR");
        f = v && atoi(v) > 0 ? atoi(v) : 1;
    }
    return f;
}

uint64_t now_ms(void) {
    uv_update_time(&loop);
    return uv_now(&loop);
}

static void on_tick(uv_timer_t *t) {
    *(int *)t->data = 1;
}

/* Waits (not timeouts under test) are 3 times as long where a consumer group rebalances now and then
 * (CONF_SHARED_SERVER: Kafka holds a group's records for seconds while it rebalances: a new member, brokers
 * back, a subscription's metadata changing). */
static uint64_t wait_factor(void) {
    return FX.t && (FX.t->flags & CONF_SHARED_SERVER) ? 3 : 1;
}

int run_until(const int *flag, int want, int ms) {
    uint64_t end = now_ms() + (uint64_t)ms * (uint64_t)time_factor() * wait_factor();
    while (*flag < want && now_ms() < end) {
        /* a short timer bounds each turn of the loop, so the deadline is checked even when idle */
        uv_timer_t t;
        int fired = 0;
        uv_timer_init(&loop, &t);
        t.data = &fired;
        uv_timer_start(&t, on_tick, 10, 0);
        while (!fired && *flag < want) uv_run(&loop, UV_RUN_ONCE);
        uv_close((uv_handle_t *)&t, NULL);
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    return *flag >= want;
}

/* ---- the broker ------------------------------------------------------------------------------------- */

/* RabbitMQ needs an epmd (the Erlang port mapper): one of this program's own, on a free loopback port,
 * started with the first broker and stopped at the end. Node, mnesia, logs and config live in the broker's
 * directory (as test_amqp_transport does); each broker is its own node, so the credentials case's second
 * broker shares the epmd. */
static pid_t epmd_pid;
static int epmd_port;

static void epmd_start(void) {
    if (epmd_pid > 0) return;
    epmd_port = broker_free_port();
    epmd_pid = rabbit_epmd_start(epmd_port, time_factor());
}

static void epmd_stop(void) {
    rabbit_epmd_stop(&epmd_pid);
}

static void rabbit_exec_conf(const broker *b, const char *port) {
    /* TLS only: the broker's port is the amqps listener, the plain one is off */
    rabbit_node n = {.epmd_port = epmd_port,
                     .tcp = !b->tls,
                     .tls_port = b->tls ? atoi(port) : 0,
                     .ca = FX.ca,
                     .cert = FX.cert,
                     .key = FX.key};
    rabbit_exec(b, port, &n);
}

/* In the child, in the broker's directory: exec the broker on 127.0.0.1:port. */
static void broker_exec(const broker *b, const char *port) {
    if (b->kind == CONF_RABBIT) {
        rabbit_exec_conf(b, port);
    } else if (b->kind == CONF_REDIS) {
        const char *argv[32] = {"redis-server", "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no",     "--dir",     "."};
        int n = 9;
        if (b->tls) {
            /* TLS only: the plain port is off, so a case cannot reach Redis without TLS by mistake */
            const char *tls[] = {
                "--port",         "0",    "--tls-port",         port,  "--tls-cert-file",    FX.cert,
                "--tls-key-file", FX.key, "--tls-ca-cert-file", FX.ca, "--tls-auth-clients", "no"};
            for (size_t i = 0; i < sizeof tls / sizeof *tls; i++) argv[n++] = tls[i];
        } else {
            argv[n++] = "--port";
            argv[n++] = port;
        }
        if (b->pass[0]) argv[n++] = "--requirepass", argv[n++] = b->pass; /* user "default" */
        argv[n] = NULL;
        execvp("redis-server", (char **)argv);
    } else if (b->kind == CONF_MQTT) {
        FILE *f = fopen("mosquitto.conf", "w");
        if (!f) _exit(125);
        fprintf(f, "listener %s 127.0.0.1\npersistence false\n", port);
        if (b->tls) /* TLS only on this listener: a case cannot reach it without TLS by mistake */
            fprintf(f, "cafile %s\ncertfile %s\nkeyfile %s\n", FX.ca, FX.cert, FX.key);
        if (b->pass[0]) {
            char cmd[160];
            snprintf(cmd, sizeof cmd, "mosquitto_passwd -c -b passwd default '%s' >/dev/null 2>&1", b->pass);
            if (system(cmd)) _exit(124);
            fprintf(f, "allow_anonymous false\npassword_file passwd\n");
        } else {
            fprintf(f, "allow_anonymous true\n");
        }
        if (getuid() == 0)
            fprintf(f, "user root\n"); /* as root it would switch to a user that cannot read
                                        * the broker's directory */
        fclose(f);
        const char *argv[] = {"mosquitto", "-c", "mosquitto.conf", NULL};
        execvp("mosquitto", (char **)argv);
        execv("/usr/sbin/mosquitto", (char **)argv);
    } else {
        FILE *f = fopen("nats.conf", "w");
        if (!f) _exit(125);
        fprintf(f, "listen: 127.0.0.1:%s\n", port);
        fprintf(f, "max_payload: 8MB\n"); /* the large-payload case sends 1 MiB; the default is 1 MB */
        /* CONNECT must come within this (default 2 s; valgrind is slower) */
        fprintf(f, "authorization {\n  timeout: 30\n");
        if (b->pass[0]) fprintf(f, "  user: default\n  password: \"%s\"\n", b->pass);
        fprintf(f, "}\n");
        if (b->tls)
            /* every client must speak TLS; the handshake timeout (default 0.5 s) raised for valgrind */
            fprintf(f,
                    "tls {\n  cert_file: \"%s\"\n  key_file: \"%s\"\n  ca_file: \"%s\"\n  timeout: 30\n}\n",
                    FX.cert, FX.key, FX.ca);
        fclose(f);
        const char *argv[] = {"nats-server", "-c", "nats.conf", NULL};
        execvp("nats-server", (char **)argv);
    }
}

/* ---- Kafka: librdkafka's mock cluster as a process (tests/kafka/kafka-mock) ----------------------------
 * Three brokers on ephemeral ports (the mock has no port option): it prints "bootstrap H:P,H:P,H:P", then
 * takes commands on its standard input and answers each with a line ("ok <command>"). It cannot restart on
 * the same ports, so a "restart" takes every broker down and up again. */
static int kafka_in = -1, kafka_out = -1; /* its standard input and output */
static char kafka_boot[160];              /* the bootstrap list */
static int kafka_down;                    /* its brokers are down (fx_broker_stop) */
static char kafka_group[64];              /* the run's consumer group */

/* One line of the mock's output, within ms × the time factor; 0 when it came. */
static int kafka_read_line(char *line, size_t n, int ms) {
    size_t len = 0;
    uint64_t end = uv_hrtime() / 1000000 + (uint64_t)ms * (uint64_t)time_factor();
    for (;;) {
        uint64_t now = uv_hrtime() / 1000000;
        if (now >= end) return -1;
        struct pollfd p = {.fd = kafka_out, .events = POLLIN};
        int r = poll(&p, 1, (int)(end - now));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        char c;
        if (read(kafka_out, &c, 1) != 1) return -1;
        if (c == '\n') break;
        if (len + 1 < n) line[len++] = c;
    }
    line[len] = '\0';
    return 0;
}

/* Sends a command to the mock and checks its answer. */
static void kafka_command(const char *cmd) {
    char buf[80], line[200];
    int n = snprintf(buf, sizeof buf, "%s\n", cmd);
    assert_int_equal(write(kafka_in, buf, (size_t)n), n);
    assert_int_equal(kafka_read_line(line, sizeof line, 10000), 0);
    if (strncmp(line, "ok ", 3) != 0) print_error("kafka-mock: %s: %s\n", cmd, line);
    assert_int_equal(strncmp(line, "ok ", 3), 0);
}

static void kafka_start(void) {
#ifdef NESTC_KAFKA_MOCK
    if (FX.broker.pid > 0) { /* down: every broker serves again */
        for (int b = 1; b <= 3; b++) {
            char cmd[16];
            snprintf(cmd, sizeof cmd, "up %d", b);
            kafka_command(cmd);
        }
        kafka_down = 0;
        return;
    }
    int in[2], out[2];
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(out), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(null, 2);
        close(in[1]);
        close(out[0]);
        execl(NESTC_KAFKA_MOCK, "kafka-mock", (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    kafka_in = in[1];
    kafka_out = out[0];
    FX.broker.pid = pid;
    char line[200];
    assert_int_equal(kafka_read_line(line, sizeof line, 30000), 0);
    assert_int_equal(strncmp(line, "bootstrap ", 10), 0);
    snprintf(kafka_boot, sizeof kafka_boot, "%.150s", line + 10);
    const char *colon = strchr(kafka_boot, ':');
    FX.broker.port = colon ? atoi(colon + 1) : 0;

#else
    fail_msg("built without Kafka");
#endif
}

static void kafka_end(void) {
    if (kafka_in >= 0) close(kafka_in);
    if (kafka_out >= 0) close(kafka_out);
    kafka_in = kafka_out = -1;
}

void fx_route_ready(const char *route) {
    if (FX.broker.kind != CONF_KAFKA) return;
    static char made[64][64]; /* the topics made so far (the mock refuses to make one twice) */
    static int nmade;
    for (int i = 0; i < nmade; i++)
        if (!strcmp(made[i], route)) return;
    assert_true(nmade < 64 && strlen(route) < sizeof made[0]);
    snprintf(made[nmade++], sizeof made[0], "%s", route);
    char cmd[96];
    snprintf(cmd, sizeof cmd, "topic %s 4", route);
    kafka_command(cmd);
}

void fx_broker_stop(void) {
    if (FX.broker.kind != CONF_KAFKA) {
        broker_stop(&FX.broker);
        return;
    }
    for (int b = 1; b <= 3; b++) {
        char cmd[16];
        snprintf(cmd, sizeof cmd, "down %d", b);
        kafka_command(cmd);
    }
    kafka_down = 1;
}

int fx_broker_running(void) {
    return FX.broker.pid > 0 && !(FX.broker.kind == CONF_KAFKA && kafka_down);
}

/* host:port of the broker (Kafka: the bootstrap list) */
static const char *fx_broker_addr(void) {
    static char a[160];
    if (FX.broker.kind == CONF_KAFKA)
        snprintf(a, sizeof a, "%s", kafka_boot);
    else
        snprintf(a, sizeof a, "127.0.0.1:%d", FX.broker.port);
    return a;
}

static int typed(void);

const char *fx_transport_header_prefix(void) {
    if (typed())
        return "user-agent"; /* gRPC: the client's own header, kept in the metadata as grpc-js does */
    return FX.broker.kind == CONF_KAFKA ? "kafka_" : "";
}

const char *fx_broker_auth_words(void) {
    return FX.broker.kind == CONF_REDIS    ? "WRONGPASS"
           : FX.broker.kind == CONF_MQTT   ? "refused the connection"
           : FX.broker.kind == CONF_RABBIT ? "ACCESS_REFUSED"
                                           : "Authorization Violation";
}

/* ---- typed messages (gRPC) ------------------------------------------------------------------------------
 * suite.proto's service Suite has one method per pattern, named by the pattern in CamelCase ("fail_obj":
 * FailObj, {"cmd":"sum"}: CmdSum); a pattern with non-ASCII bytes is Unicode. Each method takes and
 * returns a Json message, {"json": "<the value as JSON text>"}. */

static int typed(void) {
    return FX.t && (FX.t->flags & CONF_TYPED_MESSAGES);
}

const char *fx_route(const char *pattern, int server) {
    static char bufs[2][160];
    static int which;
    if (!typed()) return pattern;
    char rpc[64] = "";
    size_t n = 0;
    int up = 1, ascii = 1;
    for (const char *p = pattern; *p; p++) ascii &= (unsigned char)*p < 0x80;
    if (!ascii) snprintf(rpc, sizeof rpc, "Unicode");
    for (const char *p = pattern; ascii && *p && n + 1 < sizeof rpc; p++) {
        int alnum = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9');
        if (!alnum) {
            up = 1;
            continue;
        }
        rpc[n++] = up && *p >= 'a' && *p <= 'z' ? (char)(*p - 'a' + 'A') : *p;
        rpc[n] = '\0';
        up = 0;
    }
    char *b = bufs[which ^= 1];
    if (server)
        snprintf(b, sizeof bufs[0], "{\"service\":\"Suite\",\"rpc\":\"%s\",\"streaming\":\"no_stream\"}",
                 rpc);
    else
        snprintf(b, sizeof bufs[0], "nestc.suite.Suite/%s", rpc);
    return b;
}

json_t *fx_wrap(json_t *v) {
    if (!typed() || !v) return v;
    char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    json_decref(v);
    assert_non_null(t);
    json_t *m = json_pack("{s:s}", "json", t);
    free(t);
    return m;
}

json_t *fx_unwrap(const json_t *m) {
    if (!typed()) return json_incref((json_t *)m);
    const char *t = json_string_value(json_object_get(m, "json"));
    json_t *v = t && *t ? json_loads(t, JSON_DECODE_ANY, NULL) : NULL;
    return v ? v : json_null();
}

/* The options of a typed transport's servers and clients: the suite's .proto. */
static nc_option typed_opts[] = {{"protoPath", NESTC_SOURCE_DIR "/tests/conformance/suite.proto"}};

int fx_broker_external(void) {
    return FX.external[0] != '\0';
}

static fx_variant variant;

void fx_use(fx_variant v) {
    variant = v;
}

const char *fx_url_params(void) {
    static char q[240];
    if (FX.broker.kind == CONF_KAFKA) {
        /* a group of the run's own, read from the beginning: a new group has no committed offsets and
         * "latest" would be resolved only after the join (a record produced meanwhile skipped); servers of a
         * group that is not the first's see every event. Short sessions: a member gone without leaving holds
         * a rebalance for 6 s at most. Fetches wait 20 ms for records (librdkafka's default, 500 ms, is the
         * delay of every reply: the mock holds an empty fetch that long). Metadata refreshed every 100 ms:
         * a producer learns a topic it has not written to yet (a route's first request, its first reply) at
         * its next refresh or its 1 s topic scan, so each route's first call took 2-4 s, the whole run's
         * routes over a minute (the library's, not the suite's: measured and left for the transport).
         * NESTC_CONF_KAFKA_PARAMS adds
         * parameters of one's own (e.g. "&kafka.debug=cgrp", with NESTC_CONF_DEBUG=1 to see the logs). */
        snprintf(q, sizeof q,
                 "?groupId=%s%s&fromBeginning=true&sessionTimeout=6000&heartbeatInterval=1000"
                 "&kafka.fetch.wait.max.ms=20&kafka.topic.metadata.refresh.interval.ms=100%s",
                 kafka_group,
                 variant == FX_SETTLING      ? "-settle"
                 : variant == FX_OTHER_GROUP ? "-other"
                                             : "",
                 getenv("NESTC_CONF_KAFKA_PARAMS") ? getenv("NESTC_CONF_KAFKA_PARAMS") : "");
        return q;
    }
    /* a shared broker's URL may have parameters of its own */
    snprintf(q, sizeof q, "%s%s%s",
             !FX.queue[0]               ? ""
             : strchr(FX.external, '?') ? "&queue="
                                        : "?queue=",
             FX.queue,
             /* a queue of its own, settled by the server: a quorum queue counts deliveries
              * (NC_CTX_DELIVERY_COUNT on a redelivery; a classic queue has only the redelivered flag) */
             FX.queue[0] && variant == FX_SETTLING
                 ? "_settle&noAck=false&queueArguments={\"x-queue-type\":\"quorum\"}"
                 : "");
    return q;
}

void fx_broker_start(void) {
    if (fx_broker_external()) return;
    if (FX.broker.kind == CONF_KAFKA) {
        kafka_start();
        return;
    }
    if (FX.broker.kind == CONF_RABBIT) {
        epmd_start();
        broker_start_with(&FX.broker, time_factor() * 2, broker_exec); /* 4-16 s to start */
        return;
    }
    broker_start_with(&FX.broker, time_factor(), broker_exec);
}

static void rm_rf(const char *dir) {
    if (!dir[0]) return;
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) {
    }
}

/* ---- the fixture -------------------------------------------------------------------------------------- */

/* A process that ends early (an assertion outside a case, e.g. in a callback run by the teardown) must
 * not leave its broker running: stop it at exit. Harmless after fx_teardown (pid 0, dir gone). */
static void broker_at_exit(void) {
    broker_free(&FX.broker);
    epmd_stop();
}

/* A run that hangs ends before ctest's time limit kills it (SIGKILL: no atexit), so its broker and epmd are
 * stopped rather than orphaned. */
static void on_alarm(int sig) {
    (void)sig;
    if (FX.broker.pid > 0) kill(FX.broker.pid, SIGTERM);
    if (epmd_pid > 0) kill(epmd_pid, SIGTERM);
    static const char msg[] = "conformance: time limit reached, broker stopped\n";
    if (write(2, msg, sizeof msg - 1)) {
    }
    _exit(1);
}

int fx_setup(const conf_transport *t) {
    memset(&FX, 0, sizeof FX);
    atexit(broker_at_exit);
    if (t->broker) {
        signal(SIGALRM, on_alarm);
        alarm(110u * (unsigned)time_factor()); /* ctest's limit is 120 s × the factor (CMakeLists.txt) */
    }
    FX.t = t;
    if (t->flags & CONF_TLS) {
        const char *tmp = getenv("TMPDIR");
        snprintf(FX.certs, sizeof FX.certs, "%s/nestc-conf-certs-XXXXXX",
                 tmp && *tmp && strlen(tmp) < 40 ? tmp : "/tmp");
        if (!mkdtemp(FX.certs)) return -1;
        char cmd[512];
        snprintf(cmd, sizeof cmd, "'%s/tests/interop/gen-certs.sh' '%s'", NESTC_SOURCE_DIR, FX.certs);
        if (system(cmd)) return -1;
        snprintf(FX.cert, sizeof FX.cert, "%s/server.pem", FX.certs);
        snprintf(FX.key, sizeof FX.key, "%s/server.key", FX.certs);
        snprintf(FX.ca, sizeof FX.ca, "%s/ca.pem", FX.certs);
        /* a broker's certificate is for localhost: servers and clients of a broker are its TLS clients */
        FX.client_tls = (nc_tls_opts){.ca_file = FX.ca, .server_name = "localhost"};
        FX.server_tls = t->broker ? FX.client_tls : (nc_tls_opts){.cert_file = FX.cert, .key_file = FX.key};
    }
    uv_loop_init(&loop);
    if (t->broker == CONF_KAFKA)
        snprintf(kafka_group, sizeof kafka_group, "nestc-conf-%d-%u", (int)getpid(),
                 (unsigned)(uv_hrtime() & 0xffffff));
    if (t->broker == CONF_RABBIT) {
        /* one queue per run: runs sharing a broker never meet */
        snprintf(FX.queue, sizeof FX.queue, "nestc_conf_%d_%u", (int)getpid(),
                 (unsigned)(uv_hrtime() & 0xffffff));
        const char *ext = getenv((t->flags & CONF_TLS) ? "NESTC_RMQS_URL" : "NESTC_RMQ_URL");
        if (ext && *ext) snprintf(FX.external, sizeof FX.external, "%s", ext);
    }
    if (t->broker) {
        FX.broker.kind = t->broker;
        FX.broker.tls = !!(t->flags & CONF_TLS);
        fx_broker_start();
    }
    return 0;
}

int fx_teardown(void) {
    int leaked = 0;
    /* close callbacks of what the cases freed; a handle still active here is a leak: name it and fail */
    for (int i = 0; i < 100 && uv_loop_alive(&loop); i++) uv_run(&loop, UV_RUN_NOWAIT);
    if (uv_loop_alive(&loop)) {
        fprintf(stderr, "conformance: handles still active after the last case:\n");
        uv_print_active_handles(&loop, stderr);
        leaked = 1;
    }
    broker_free(&FX.broker);
    kafka_end();
    epmd_stop();
    rm_rf(FX.certs);
    if (!leaked && uv_loop_close(&loop)) {
        uv_print_all_handles(&loop, stderr);
        leaked = 1;
    }
    return leaked;
}

nc_server *fx_server_new(nc_log_fn log, void *log_user, int shutdown_timeout_ms) {
    char url[300];
    if (fx_broker_external())
        snprintf(url, sizeof url, "%s%s", FX.external, fx_url_params());
    else if (FX.t->broker)
        snprintf(url, sizeof url, "%s://%s%s", FX.t->scheme, fx_broker_addr(), fx_url_params());
    else
        snprintf(url, sizeof url, "%s://127.0.0.1:0", FX.t->scheme);
    nc_server_opts o = {0};
    o.loop = &loop;
    o.log = log;
    o.log_user = log_user;
    o.log_level = !log                         ? NC_LOG_OFF
                  : getenv("NESTC_CONF_DEBUG") ? NC_LOG_DEBUG /* srv_log prints everything then */
                                               : NC_LOG_WARN;
    o.retry_delay_ms = 100;
    o.shutdown_timeout_ms = shutdown_timeout_ms ? shutdown_timeout_ms : 200;
    o.handshake_timeout_ms = 10000 * time_factor(); /* TLS handshakes under valgrind on a loaded host */
    if (FX.t->flags & CONF_TLS) o.tls = &FX.server_tls;
    if (typed()) o.options = typed_opts, o.noptions = 1;
    nc_server *srv;
    assert_int_equal(nc_server_new(&srv, url, &o), 0);
    return srv;
}

void fx_client_url(nc_server *srv, char *url, size_t n) {
    if (fx_broker_external()) {
        snprintf(url, n, "%s%s", FX.external, fx_url_params());
        return;
    }
    if (FX.t->broker)
        snprintf(url, n, "%s://%s%s", FX.t->scheme, fx_broker_addr(), fx_url_params());
    else
        snprintf(url, n, "%s://127.0.0.1:%d%s", FX.t->scheme, nc_server_port(srv), fx_url_params());
}

static void debug_log(void *u, nc_log_level level, const char *component, const char *message) {
    fprintf(stderr, "%llu client: %s: %s\n", (unsigned long long)(uv_hrtime() / 1000000 % 100000), component,
            message);
}

nc_client *fx_client_new(nc_server *srv, int retry_attempts, const json_t *headers) {
    char url[300];
    fx_client_url(srv, url, sizeof url);
    nc_client_opts o = {0};
    o.loop = &loop;
    o.log_level = getenv("NESTC_CONF_DEBUG") ? NC_LOG_DEBUG : NC_LOG_OFF;
    o.log = getenv("NESTC_CONF_DEBUG") ? debug_log : NULL;
    o.timeout_ms = 5000 * time_factor() * (int)wait_factor();
    o.connect_timeout_ms = 5000 * time_factor(); /* a TLS handshake under valgrind took longer than 5 s */
    o.retry_attempts = retry_attempts;
    o.retry_delay_ms = 100;
    o.headers = headers;
    if (FX.t->flags & CONF_TLS) o.tls = &FX.client_tls;
    if (typed()) o.options = typed_opts, o.noptions = 1;
    nc_client *c;
    assert_int_equal(nc_client_new(&c, url, &o), 0);
    return c;
}
