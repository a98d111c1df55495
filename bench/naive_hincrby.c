/* naive_hincrby — the "one HINCRBY per event" reference design for bench/bench_e2e.sh.
 *
 * Reads a topic from the beginning (librdkafka consumer, every partition assigned by hand, no
 * group coordination), finds each message's "event" value with a plain memmem (no JSON parser,
 * no sessions, no stages: it does far less work per event than clickstage) and sends
 *     HINCRBY <prefix>:{<journey>}:events <event-name> 1
 * for every message (messages without an "event" string count under "_invalid").
 *
 *   --pipeline 1   (default) the textbook design: send one command, wait for its reply, next.
 *   --pipeline N   up to N commands written before their replies are read (a stronger
 *                  reference: one round trip per N events, still one command per event).
 *
 * Stops at the end offsets the partitions had at start, or after --max-events messages (taken
 * from all partitions in the order the consumer delivers them). The clock runs from the first
 * message received to the last reply read, so broker connection and start-up are not charged.
 * Last stdout line: {"events":..,"seconds":..,"events_per_sec":..,"pipeline":..,"redis_cmds":..}
 *
 * Build: cc -O2 -Wall -Wextra -o naive_hincrby bench/naive_hincrby.c -lrdkafka -lhiredis
 */
#define _GNU_SOURCE
#include <hiredis/hiredis.h>

#include "redis.h"
#include "rkeys.h"
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t g_stop;
static void on_sig(int s) { (void)s; g_stop = 1; }

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what, const char *why)
{
    fprintf(stderr, "naive_hincrby: %s: %s\n", what, why);
    exit(1);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: naive_hincrby --brokers B --topic T [--redis-host H] [--redis-port P]\n"
            "                     [--prefix clickstage] [--journey retail] [--pipeline 1]\n"
            "                     [--max-events 0 (= to the end offsets at start)]\n");
    exit(2);
}

/* The "event" value of a JSON text, found with memmem: {"...","event":"page_view",...} */
static int find_event(const char *p, size_t n, const char **v, size_t *vl)
{
    static const char key[] = "\"event\"";
    const char *end = p + n, *k = memmem(p, n, key, sizeof key - 1);
    if (!k)
        return 0;
    const char *q = k + sizeof key - 1;
    while (q < end && (*q == ' ' || *q == ':' || *q == '\t'))
        q++;
    if (q >= end || *q != '"')
        return 0;
    const char *s = ++q;
    while (q < end && *q != '"')
        q++;
    if (q >= end || q == s || q - s > 200)
        return 0;
    *v = s;
    *vl = (size_t)(q - s);
    return 1;
}

int main(int argc, char **argv)
{
    const char *brokers = "127.0.0.1:9092", *topic = NULL, *host = "127.0.0.1";
    const char *prefix = "clickstage", *journey = "retail";
    int port = 6379, pipeline = 1;
    long long max_events = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--brokers")) brokers = v;
        else if (!strcmp(a, "--topic")) topic = v;
        else if (!strcmp(a, "--redis-host")) host = v;
        else if (!strcmp(a, "--redis-port")) port = atoi(v);
        else if (!strcmp(a, "--prefix")) prefix = v;
        else if (!strcmp(a, "--journey")) journey = v;
        else if (!strcmp(a, "--pipeline")) pipeline = atoi(v);
        else if (!strcmp(a, "--max-events")) max_events = atoll(v);
        else usage();
    }
    if (!topic || pipeline < 1)
        usage();
    signal(SIGINT, on_sig);
    signal(SIGTERM, on_sig);

    char key[CS_RKEYS_MAX + 16], url[300], cerr[512];
    cs_rkeys keys;
    if (cs_rkeys_init(&keys, prefix, journey) < 0 || !cs_rkey(&keys, CS_RK_EVENTS, key, sizeof key))
        die("key", "prefix or journey too long");
    snprintf(url, sizeof url, "redis://%s:%d", host, port);
    cs_redis_opts ro = {url, 2000, 30000};
    cs_redis *redis = cs_redis_new(&ro, cerr, sizeof cerr);
    if (!redis || cs_redis_connect(redis, cerr, sizeof cerr) < 0)
        die("redis connect", cerr);
    redisContext *rc = cs_redis_ctx(redis); /* pipelined by hand below, one HINCRBY an event */

    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
#define SET(k, v)                                                                  \
    if (rd_kafka_conf_set(conf, k, v, err, sizeof err) != RD_KAFKA_CONF_OK)        \
        die(k, err);
    SET("bootstrap.servers", brokers);
    SET("group.id", "naive-hincrby-bench"); /* required by the consumer; nothing is committed */
    SET("enable.auto.commit", "false");
    SET("enable.auto.offset.store", "false");
    /* the same fetch settings as clickstage (docs/kafka.md), so the consumer side is equal */
    SET("fetch.max.bytes", "104857600");
    SET("max.partition.fetch.bytes", "8388608");
    SET("queued.min.messages", "200000");
    SET("queued.max.messages.kbytes", "131072");
    SET("fetch.wait.max.ms", "50");
    SET("check.crcs", "false");
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk)
        die("rd_kafka_new", err);

    /* partitions and their end offsets now */
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
    if (e)
        die("metadata", rd_kafka_err2str(e));
    if (md->topic_cnt != 1 || md->topics[0].err || md->topics[0].partition_cnt < 1)
        die("metadata", "topic not found");
    int np = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    int64_t *endoff = calloc((size_t)np, sizeof *endoff), *next = calloc((size_t)np, sizeof *next);
    int64_t total = 0;
    rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(np);
    for (int p = 0; p < np; p++) {
        int64_t lo, hi;
        e = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000);
        if (e)
            die("watermarks", rd_kafka_err2str(e));
        endoff[p] = hi;
        next[p] = lo;
        total += hi - lo;
        rd_kafka_topic_partition_list_add(tl, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    if (max_events <= 0 || max_events > total)
        max_events = total;
    rd_kafka_poll_set_consumer(rk);
    if ((e = rd_kafka_assign(rk, tl)))
        die("assign", rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_destroy(tl);
    rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(rk);

    long long events = 0, pending = 0, cmds = 0;
    double t0 = 0;
    rd_kafka_message_t *batch[1024];
    int done_parts = 0;
    for (int p = 0; p < np; p++)
        done_parts += next[p] >= endoff[p];
    while (!g_stop && events < max_events && done_parts < np) {
        ssize_t n = rd_kafka_consume_batch_queue(q, 200, batch, 1024);
        if (n < 0)
            die("consume", rd_kafka_err2str(rd_kafka_last_error()));
        for (ssize_t i = 0; i < n; i++) {
            rd_kafka_message_t *m = batch[i];
            if (m->err || m->partition < 0 || m->partition >= np || events >= max_events ||
                m->offset >= endoff[m->partition]) {
                rd_kafka_message_destroy(m);
                continue;
            }
            if (t0 == 0)
                t0 = now_s();
            const char *v = "_invalid";
            size_t vl = 8;
            find_event(m->payload, m->len, &v, &vl);
            if (redisAppendCommand(rc, "HINCRBY %s %b 1", key, v, vl) != REDIS_OK)
                die("redis", rc->errstr);
            cmds++;
            events++;
            if (++pending >= pipeline) {
                for (; pending > 0; pending--) {
                    void *r = NULL;
                    if (redisGetReply(rc, &r) != REDIS_OK)
                        die("redis", rc->errstr);
                    freeReplyObject(r);
                }
            }
            next[m->partition] = m->offset + 1;
            if (next[m->partition] >= endoff[m->partition])
                done_parts++;
            rd_kafka_message_destroy(m);
        }
    }
    for (; pending > 0; pending--) {
        void *r = NULL;
        if (redisGetReply(rc, &r) != REDIS_OK)
            die("redis", rc->errstr);
        freeReplyObject(r);
    }
    double secs = t0 > 0 ? now_s() - t0 : 0;
    rd_kafka_queue_destroy(q);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    cs_redis_free(redis);
    free(endoff);
    free(next);
    printf("{\"events\":%lld,\"seconds\":%.3f,\"events_per_sec\":%.0f,\"pipeline\":%d,"
           "\"redis_cmds\":%lld,\"interrupted\":%s}\n",
           events, secs, secs > 0 ? (double)events / secs : 0.0, pipeline, cmds,
           g_stop ? "true" : "false");
    return g_stop ? 1 : 0;
}
