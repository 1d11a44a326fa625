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

#endif
