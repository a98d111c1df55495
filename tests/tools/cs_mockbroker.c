/* cs_mockbroker — librdkafka's built-in mock cluster as a stand-alone broker for the demo when a
 * real Kafka broker cannot be had (no Java, no Maven). Prints its bootstrap servers on stdout,
 * creates the topics named on the command line (NAME:PARTITIONS), serves until SIGTERM.
 * Not for tests of correctness: those use the real broker (tests/integration). */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_sig(int s) { stop = 1; }

int main(int argc, char **argv)
{
    char err[256];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    if (rd_kafka_conf_set(c, "test.mock.num.brokers", "1", err, sizeof err)) {
        fprintf(stderr, "cs_mockbroker: %s\n", err);
        return 1;
    }
    rd_kafka_conf_set(c, "log_level", "3", err, sizeof err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "cs_mockbroker: %s\n", err);
        return 1;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(rk);
    for (int i = 1; i < argc; i++) {
        char name[256];
        int parts = 8;
        snprintf(name, sizeof name, "%s", argv[i]);
        char *colon = strchr(name, ':');
        if (colon) {
            *colon = 0;
            parts = atoi(colon + 1);
        }
        rd_kafka_mock_topic_create(mc, name, parts, 1);
    }
    printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);
    signal(SIGTERM, on_sig);
    signal(SIGINT, on_sig);
    while (!stop)
        usleep(100000);
    rd_kafka_destroy(rk);
    return 0;
}
