/* testsrv.h — what the unit tests need to run against the real things: a redis-server of their
 * own on a free loopback port (started, killed, restarted), a control connection to it, and
 * librdkafka's mock cluster filled with a generated stream (loadgen/gen.h). Used by
 * tests/unit/test_sink.c, test_coord.c; nothing here is shipped. */
#ifndef CS_TESTSRV_H
#define CS_TESTSRV_H

#include <stdint.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "gen.h"

#define TS_REDIS_SERVER "/usr/bin/redis-server"

typedef struct ts_redis {
    char dir[256];  /* its working directory (logs, socket) */
    char sock[300]; /* its unix socket */
    int port;
    pid_t pid;      /* 0 when not running */
    int cluster;    /* started with --cluster-enabled yes (ts_redis_setup_cluster) */
} ts_redis;

int ts_free_port(void);
int64_t ts_now_ms(void); /* monotonic */
void ts_sleep_ms(int ms);

/* Makes a temporary directory, picks a free port, starts redis-server (no persistence) and
 * waits until it answers PING. 0, or -1 (message on stderr). */
int ts_redis_setup(ts_redis *r, const char *name);
/* The same, as a Redis Cluster node (--cluster-enabled yes, nodes.conf in its directory,
 * cluster-node-timeout 1000 ms); the test makes the cluster (CLUSTER ADDSLOTS, MEET). */
int ts_redis_setup_cluster(ts_redis *r, const char *name);
/* Starts it again on the same port, socket and directory (after ts_redis_kill). */
int ts_redis_start(ts_redis *r);
/* SIGCONT then `sig`, and waits for it to exit. */
void ts_redis_kill(ts_redis *r, int sig);
/* Kills it and removes its directory. */
void ts_redis_teardown(ts_redis *r);
/* A blocking connection for the test's own commands (2 s timeouts), or NULL. */
redisContext *ts_redis_ctl(const ts_redis *r);
/* "redis://127.0.0.1:<port>" */
const char *ts_redis_url(const ts_redis *r, char *buf, size_t n);

/* A mock Kafka cluster (nbrokers) holding `topic` with g's partitions, each message with its
 * generated timestamp. Returns the producer that owns the cluster (destroy it last), or NULL. */
rd_kafka_t *ts_mock_with_stream(int nbrokers, const char *topic, const cs_gen_out *g,
                                rd_kafka_mock_cluster_t **mc);

#endif
