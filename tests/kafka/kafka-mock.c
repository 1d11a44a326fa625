/* kafka-mock — the test suite's Kafka broker: librdkafka's mock cluster (rdkafka_mock.h) as a process.
 *
 *   kafka-mock [--brokers N]
 *
 * Starts a mock cluster of N brokers (default 3) on ephemeral loopback ports (librdkafka 2.0 has no port
 * option), prints one line "bootstrap H:P,H:P,..." on stdout and flushes it, then serves until SIGTERM or
 * SIGINT, or until its standard input ends. Topics are created on first use by any client (Metadata with
 * auto-creation, which KafkaJS and librdkafka both send) with the mock's defaults: 4 partitions, replication
 * min(3, N). Each line on standard input is a command; the answer is one line on stdout, "ok <command>" or
 * "error <command>: <why>":
 *
 *   down B                       broker B (1..N) stops answering: its connections close, new ones are refused
 *   up B                         broker B serves again
 *   rtt B MS                     broker B delays every response by MS milliseconds
 *   leader TOPIC P B             partition P of TOPIC is led by broker B (-1: no leader); creates the topic
 *   topic TOPIC PARTITIONS [RF]  creates TOPIC with that many partitions (replication RF, default min(3, N))
 *   topic-error TOPIC ERR        every Metadata answer reports ERR for TOPIC (NO_ERROR to clear)
 *   request-error API N [ERR]    the next N requests of Kafka API key API (a number: 0 Produce, 1 Fetch, 3
 *                                Metadata, 8 OffsetCommit, 11 JoinGroup, ...) fail with ERR (default
 *                                NOT_LEADER_FOR_PARTITION; _TRANSPORT disconnects the client instead)
 *   produce-error N [ERR]        request-error 0 N [ERR]
 *   clear API                    drops the errors still queued for API
 *
 * ERR is a Kafka error name as librdkafka spells it without its prefix (NOT_LEADER_FOR_PARTITION,
 * REQUEST_TIMED_OUT, _TRANSPORT, ...) or its number. Lines starting with '#' and empty lines are ignored. */
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) {
    stop_signal = sig;
}

/* An error name (with or without RD_KAFKA_RESP_ERR_) or number; 0 when unknown (*ok = 0). */
static rd_kafka_resp_err_t parse_err(const char *s, int *ok) {
    char *end;
    long n = strtol(s, &end, 10);
    *ok = 1;
    if (*s && !*end) return (rd_kafka_resp_err_t)n;
    if (!strncmp(s, "RD_KAFKA_RESP_ERR_", 18)) s += 18;
    const struct rd_kafka_err_desc *descs;
    size_t cnt;
    rd_kafka_get_err_descs(&descs, &cnt);
    for (size_t i = 0; i < cnt; i++)
        if (descs[i].name && !strcmp(descs[i].name, s)) return descs[i].code;
    *ok = 0;
    return RD_KAFKA_RESP_ERR_NO_ERROR;
}

static int parse_int(const char *s, long *out) {
    char *end;
    if (!s || !*s) return 0;
    *out = strtol(s, &end, 10);
    return !*end;
}

/* Runs one command line; returns NULL on success or why it failed. */
static const char *run_command(rd_kafka_mock_cluster_t *mc, int brokers, char *line) {
    char *argv[6] = {0};
    int argc = 0;
    for (char *save = NULL, *tok = strtok_r(line, " \t", &save); tok && argc < 6;
         tok = strtok_r(NULL, " \t", &save))
        argv[argc++] = tok;
    long a = 0, b = 0, c = 0;
    int ok = 1;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    const char *cmd = argv[0];

    if (!strcmp(cmd, "down") || !strcmp(cmd, "up")) {
        if (argc != 2 || !parse_int(argv[1], &a)) return "usage: down|up BROKER";
        err = !strcmp(cmd, "down") ? rd_kafka_mock_broker_set_down(mc, (int32_t)a)
                                   : rd_kafka_mock_broker_set_up(mc, (int32_t)a);
    } else if (!strcmp(cmd, "rtt")) {
        if (argc != 3 || !parse_int(argv[1], &a) || !parse_int(argv[2], &b)) return "usage: rtt BROKER MS";
        err = rd_kafka_mock_broker_set_rtt(mc, (int32_t)a, (int)b);
    } else if (!strcmp(cmd, "leader")) {
        if (argc != 4 || !parse_int(argv[2], &a) || !parse_int(argv[3], &b))
            return "usage: leader TOPIC PARTITION BROKER";
        err = rd_kafka_mock_partition_set_leader(mc, argv[1], (int32_t)a, (int32_t)b);
    } else if (!strcmp(cmd, "topic")) {
        b = brokers < 3 ? brokers : 3;
        if (argc < 3 || argc > 4 || !parse_int(argv[2], &a) || (argc == 4 && !parse_int(argv[3], &b)))
            return "usage: topic TOPIC PARTITIONS [REPLICATION]";
        err = rd_kafka_mock_topic_create(mc, argv[1], (int)a, (int)b);
    } else if (!strcmp(cmd, "topic-error")) {
        if (argc != 3) return "usage: topic-error TOPIC ERR";
        err = parse_err(argv[2], &ok);
        if (!ok) return "unknown error name";
        rd_kafka_mock_topic_set_error(mc, argv[1], err);
        err = RD_KAFKA_RESP_ERR_NO_ERROR;
    } else if (!strcmp(cmd, "request-error") || !strcmp(cmd, "produce-error")) {
        int produce = !strcmp(cmd, "produce-error");
        int first = produce ? 1 : 2; /* index of N */
        if (!produce && (argc < 2 || !parse_int(argv[1], &a))) return "usage: request-error API N [ERR]";
        if (argc < first + 1 || argc > first + 2 || !parse_int(argv[first], &b) || b < 1 || b > 10000)
            return produce ? "usage: produce-error N [ERR]" : "usage: request-error API N [ERR]";
        err = RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION;
        if (argc == first + 2) err = parse_err(argv[first + 1], &ok);
        if (!ok) return "unknown error name";
        rd_kafka_resp_err_t *errs = malloc((size_t)b * sizeof *errs);
        if (!errs) return "out of memory";
        for (c = 0; c < b; c++) errs[c] = err;
        rd_kafka_mock_push_request_errors_array(mc, (int16_t)a, (size_t)b, errs);
        free(errs);
        err = RD_KAFKA_RESP_ERR_NO_ERROR;
    } else if (!strcmp(cmd, "clear")) {
        if (argc != 2 || !parse_int(argv[1], &a)) return "usage: clear API";
        rd_kafka_mock_clear_request_errors(mc, (int16_t)a);
    } else {
        return "unknown command";
    }
    return err ? rd_kafka_err2str(err) : NULL;
}

static void handle_line(rd_kafka_mock_cluster_t *mc, int brokers, char *line) {
    line[strcspn(line, "\r")] = '\0';
    char *p = line + strspn(line, " \t");
    if (!*p || *p == '#') return;
    char copy[512];
    snprintf(copy, sizeof copy, "%s", p);
    const char *why = run_command(mc, brokers, p);
    if (why)
        printf("error %s: %s\n", copy, why);
    else
        printf("ok %s\n", copy);
    fflush(stdout);
}

int main(int argc, char **argv) {
    int brokers = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--brokers") && i + 1 < argc) {
            brokers = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: kafka-mock [--brokers N]\n");
            return 2;
        }
    }
    if (brokers < 1 || brokers > 16) {
        fprintf(stderr, "kafka-mock: --brokers must be 1..16\n");
        return 2;
    }

    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* The mock cluster lives in a client handle of its own; that client never connects anywhere. */
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "client.id", "kafka-mock", errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "log_level", "4", errstr, sizeof errstr); /* not its "no bootstrap" notice */
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, "kafka-mock: rd_kafka_new: %s\n", errstr);
        return 1;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, brokers);
    if (!mc) {
        fprintf(stderr, "kafka-mock: rd_kafka_mock_cluster_new failed\n");
        rd_kafka_destroy(rk);
        return 1;
    }
    printf("bootstrap %s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);

    /* Commands from stdin, split into lines here (not stdio: poll() would not see stdio's buffer). */
    char buf[4096];
    size_t len = 0;
    int input_open = 1;
    while (!stop_signal && input_open) {
        struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
        int n = poll(&pfd, 1, 200);
        if (n < 0 && errno != EINTR) break;
        if (n <= 0) continue;
        ssize_t r = read(STDIN_FILENO, buf + len, sizeof buf - 1 - len);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            input_open = 0; /* EOF: whoever drove us is gone */
            break;
        }
        len += (size_t)r;
        buf[len] = '\0';
        char *start = buf, *nl;
        while ((nl = memchr(start, '\n', len - (size_t)(start - buf)))) {
            *nl = '\0';
            handle_line(mc, brokers, start);
            start = nl + 1;
        }
        len -= (size_t)(start - buf);
        memmove(buf, start, len);
        if (len == sizeof buf - 1) len = 0; /* a line longer than the buffer: dropped */
    }

    fprintf(stderr, "kafka-mock: stopping (%s)\n", stop_signal ? "signal" : "end of input");
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
}
