/* What the Kafka unit tests share: librdkafka's mock cluster (rdkafka_mock.h) started in-process with three
 * brokers, a real Kafka protocol peer for librdkafka with no external broker, and the kafka:// URL of its
 * bootstrap list. Included after broker_harness.h, inside #ifdef NESTC_HAVE_RDKAFKA. */
#ifndef NESTC_TEST_KAFKA_FIXTURE_H
#define NESTC_TEST_KAFKA_FIXTURE_H

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

static rd_kafka_t *mock_rk;
static rd_kafka_mock_cluster_t *mock;
static char url[512];

/* A topic of `partitions` partitions, each with `replicas` replicas (at most the three brokers). */
static void mock_topic(const char *name, int partitions, int replicas) {
    assert_int_equal(rd_kafka_mock_topic_create(mock, name, partitions, replicas), 0);
}

/* The cluster lives in a silent producer handle of its own, as rdkafka_mock.h requires. */
static void mock_start(void) {
    char err[256];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "log_level", "0", err, sizeof err);
    mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
    assert_non_null(mock_rk);
    mock = rd_kafka_mock_cluster_new(mock_rk, 3);
    assert_non_null(mock);
    snprintf(url, sizeof url, "kafka://%s", rd_kafka_mock_cluster_bootstraps(mock));
}

static void mock_stop(void) {
    rd_kafka_mock_cluster_destroy(mock);
    rd_kafka_destroy(mock_rk);
}

/* A server's "connected" reports, counted (a Kafka server reports it once its assignment's offsets are
 * known). */
typedef struct srv_st {
    int connected;
} srv_st;

static void on_srv_status(void *u, const char *status, int err) {
    (void)err;
    srv_st *s = u;
    if (!strcmp(status, "connected")) s->connected++;
}

/* A server on the mock cluster with `opts` (copied by nc_server_new), its routes added by `add`, listening;
 * not waited for: the caller waits on st->connected (several servers can join their groups side by side). */
static nc_server *kafka_server_start(srv_st *st, const nc_option *opts, size_t nopts,
                                     void (*add)(nc_server *)) {
    nc_server_opts o = {0};
    o.loop = &loop;
    o.log_level = NC_LOG_OFF;
    o.shutdown_timeout_ms = 2000;
    o.options = opts;
    o.noptions = nopts;
    nc_server *srv;
    assert_int_equal(nc_server_new(&srv, url, &o), 0);
    nc_server_on_status(srv, on_srv_status, st);
    add(srv);
    assert_int_equal(nc_server_listen(srv), 0);
    return srv;
}

#endif
