/* test_loadgen_direct — clickstage-loadgen's direct producer (cmd/clickstage-loadgen/direct.c):
 *  - CRC-32C: known answers (RFC 3720 B.4, "123456789") and a bitwise reference over lengths and
 *    alignments, whole and in pieces;
 *  - the same seed produced to librdkafka's mock cluster (3 brokers: leaders spread, one
 *    connection per thread and broker) through --producer librdkafka and --producer direct with
 *    1 and 2 threads, compression none and lz4, consumed back with a librdkafka consumer
 *    (check.crcs=true): every partition's (key, timestamp, value) sequence identical across the
 *    producers and thread counts, and equal to the generator's own stream; the delivered offsets
 *    the latency watcher reads (lg_track) equal to each partition's message count;
 *  - --unkeyed: direct and librdkafka place and order the same;
 *  - failures are loud: an injected Produce error fails the run with the Kafka error; a missing
 *    topic fails lg_prod_new;
 *  - a topic whose leaders are not ready yet (ListOffsets answers NOT_LEADER) is waited for;
 *  - --producer auto's rule (lg_producer_pick).
 * Named *mt*-free: the producer threads are exercised, but against the mock cluster's own
 * threads, which ThreadSanitizer does not see. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "gen.h"
#include "lg.h"

#define NP 6
#define NEV 60000

static rd_kafka_t *g_owner;
static rd_kafka_mock_cluster_t *g_mc;
static char g_boot[512];

/* ---- CRC-32C ------------------------------------------------------------------------------ */
static uint32_t crc_ref(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    }
    return ~c;
}

static void test_crc32c(void **state)
{
    assert_int_equal(lg_crc32c("123456789", 9), 0xE3069283u);
    uint8_t b[32];
    memset(b, 0, sizeof b);
    assert_int_equal(lg_crc32c(b, 32), 0x8A9136AAu);
    memset(b, 0xff, sizeof b);
    assert_int_equal(lg_crc32c(b, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)i;
    assert_int_equal(lg_crc32c(b, 32), 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)(31 - i);
    assert_int_equal(lg_crc32c(b, 32), 0x113FDB5Cu);
    assert_int_equal(lg_crc32c("", 0), 0u);
    uint8_t buf[300];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(i * 131 + 7);
    for (size_t off = 0; off < 9; off++)
        for (size_t n = 0; n + off <= sizeof buf; n += 7) {
            uint32_t want = crc_ref(buf + off, n);
            assert_int_equal(lg_crc32c(buf + off, n), want);
            size_t h = n / 3;
            assert_int_equal(lg_crc32c_update(lg_crc32c(buf + off, h), buf + off + h, n - h), want);
        }
}

/* ---- producing and consuming back --------------------------------------------------------- */
typedef struct digest {
    uint64_t h[NP];
    uint64_t n[NP];
} digest;

static void dig_msg(XXH3_state_t *s, const void *key, int64_t keylen, int64_t ts, const void *val,
                    size_t len)
{
    XXH3_64bits_update(s, &keylen, sizeof keylen);
    if (keylen > 0)
        XXH3_64bits_update(s, key, (size_t)keylen);
    XXH3_64bits_update(s, &ts, sizeof ts);
    XXH3_64bits_update(s, &len, sizeof len);
    XXH3_64bits_update(s, val, len);
}

static void gen_conf(cs_gen_conf *gc)
{
    cs_gen_defaults(gc);
    gc->seed = 1515;
    gc->nparts = NP;
    gc->nevents = NEV;
    gc->ncustomers = 3000;
}

/* the generator's own partitions (keyed) */
static void expected(digest *d)
{
    cs_gen_conf gc;
    gen_conf(&gc);
    cs_gen_plan *pl = cs_gen_plan_new(&gc);
    for (int p = 0; p < NP; p++) {
        XXH3_state_t *s = XXH3_createState();
        XXH3_64bits_reset(s);
        cs_gen_pstream *ps = cs_gen_pstream_new(pl, p);
        cs_gen_msg m;
        d->n[p] = 0;
        while (cs_gen_pstream_next(ps, &m)) {
            dig_msg(s, m.key, m.key ? (int64_t)m.keylen : -1, m.ts_ms, m.payload, m.len);
            d->n[p]++;
        }
        d->h[p] = XXH3_64bits_digest(s);
        XXH3_freeState(s);
        cs_gen_pstream_destroy(ps);
    }
    cs_gen_plan_free(pl);
}

static void consume(const char *topic, digest *d)
{
    char err[256];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    assert_int_equal(rd_kafka_conf_set(c, "bootstrap.servers", g_boot, err, sizeof err), 0);
    rd_kafka_conf_set(c, "group.id", "test_loadgen_direct", err, sizeof err);
    rd_kafka_conf_set(c, "enable.partition.eof", "true", err, sizeof err);
    rd_kafka_conf_set(c, "check.crcs", "true", err, sizeof err);
    rd_kafka_conf_set(c, "enable.auto.commit", "false", err, sizeof err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof err);
    assert_non_null(rk);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(NP);
    for (int p = 0; p < NP; p++)
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    assert_int_equal(rd_kafka_assign(rk, l), 0);
    rd_kafka_topic_partition_list_destroy(l);
    XXH3_state_t *s[NP];
    int eof[NP] = {0}, neof = 0;
    for (int p = 0; p < NP; p++) {
        s[p] = XXH3_createState();
        XXH3_64bits_reset(s[p]);
        d->n[p] = 0;
    }
    int idle = 0;
    while (neof < NP && idle < 3000) { /* up to 30 s without a message */
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 10);
        idle = m ? 0 : idle + 1;
        if (!m)
            continue;
        int p = m->partition;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (p >= 0 && p < NP && !eof[p]) {
                eof[p] = 1;
                neof++;
            }
        } else if (m->err) {
            fail_msg("consume %s: %s", topic, rd_kafka_message_errstr(m));
        } else {
            assert_true(p >= 0 && p < NP);
            assert_int_equal(m->offset, (int64_t)d->n[p]);
            rd_kafka_timestamp_type_t tt;
            int64_t ts = rd_kafka_message_timestamp(m, &tt);
            assert_int_equal(tt, RD_KAFKA_TIMESTAMP_CREATE_TIME);
            dig_msg(s[p], m->key, m->key ? (int64_t)m->key_len : -1, ts, m->payload, m->len);
            d->n[p]++;
        }
        rd_kafka_message_destroy(m);
    }
    assert_int_equal(neof, NP);
    for (int p = 0; p < NP; p++) {
        d->h[p] = XXH3_64bits_digest(s[p]);
        XXH3_freeState(s[p]);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

/* Produces the whole stream to topic (created here); the delivery figures checked. */
static void produce(const char *topic, const char *producer, const char *comp, int nthreads,
                    int unkeyed, int64_t batch)
{
    assert_int_equal(rd_kafka_mock_topic_create(g_mc, topic, NP, 1), 0);
    cs_gen_conf gc;
    gen_conf(&gc);
    cs_gen_plan *pl = cs_gen_plan_new(&gc);
    lg_track *tr = lg_track_new(NP, 0);
    lg_kafka_opts ko = {g_boot, topic, comp, NULL, 5, batch, producer};
    lg_prod *p = NULL;
    assert_int_equal(lg_prod_new(&ko, pl, nthreads, unkeyed, tr, &p), 0);
    assert_string_equal(lg_prod_kind(p), producer);
    volatile int stop = 0;
    /* in two segments, as --find-sustainable and --duration runs send */
    assert_int_equal(lg_prod_segment(p, 0, NEV / 3, 0, 0, &stop), NEV / 3);
    assert_int_equal(lg_prod_segment(p, NEV / 3, NEV, 0, 0, &stop), NEV - NEV / 3);
    lg_prod_stats st;
    lg_prod_flush(p, 30000, &st);
    assert_int_equal(st.failed, 0);
    assert_int_equal(st.sent, NEV);
    assert_int_equal(st.delivered, NEV);
    /* what the latency watcher reads: every partition's next offset, the deliveries */
    uint64_t dl = 0;
    for (int k = 0; k < NP; k++) {
        int64_t nx = atomic_load(&tr->p[k].next_offset);
        uint64_t pd = atomic_load(&tr->p[k].delivered);
        assert_int_equal(nx < 0 ? 0 : nx, (int64_t)pd);
        dl += pd;
    }
    assert_int_equal(dl, NEV);
    lg_prod_free(p);
    lg_track_free(tr);
    cs_gen_plan_free(pl);
}

static void same(const digest *a, const digest *b)
{
    for (int p = 0; p < NP; p++) {
        assert_int_equal(a->n[p], b->n[p]);
        assert_true(a->h[p] == b->h[p]);
    }
}

static void keyed_case(const char *comp)
{
    char tr[64], t1[64], t2[64];
    snprintf(tr, sizeof tr, "k-%s-rdkafka", comp);
    snprintf(t1, sizeof t1, "k-%s-direct1", comp);
    snprintf(t2, sizeof t2, "k-%s-direct2", comp);
    produce(tr, "librdkafka", comp, 2, 0, 10000);
    produce(t1, "direct", comp, 1, 0, 10000);
    produce(t2, "direct", comp, 2, 0, 700); /* small batches: many requests in flight */
    digest want, r, d1, d2;
    expected(&want);
    consume(tr, &r);
    consume(t1, &d1);
    consume(t2, &d2);
    uint64_t tot = 0;
    for (int p = 0; p < NP; p++)
        tot += want.n[p];
    assert_int_equal(tot, NEV);
    same(&want, &r);
    same(&want, &d1);
    same(&want, &d2);
}

static void test_keyed_none(void **state) { keyed_case("none"); }
static void test_keyed_lz4(void **state) { keyed_case("lz4"); }

static void test_unkeyed(void **state)
{
    produce("u-rdkafka", "librdkafka", "lz4", 1, 1, 10000);
    produce("u-direct", "direct", "lz4", 1, 1, 10000);
    digest r, d;
    consume("u-rdkafka", &r);
    consume("u-direct", &d);
    uint64_t tot = 0;
    for (int p = 0; p < NP; p++)
        tot += d.n[p];
    assert_int_equal(tot, NEV);
    same(&r, &d);
}

/* an error answered by the broker fails the run, with the Kafka error */
static void test_kafka_error_fails(void **state)
{
    assert_int_equal(rd_kafka_mock_topic_create(g_mc, "e", NP, 1), 0);
    cs_gen_conf gc;
    gen_conf(&gc);
    cs_gen_plan *pl = cs_gen_plan_new(&gc);
    lg_kafka_opts ko = {g_boot, "e", "none", NULL, 5, 10000, "direct"};
    lg_prod *p = NULL;
    assert_int_equal(lg_prod_new(&ko, pl, 2, 0, NULL, &p), 0);
    rd_kafka_mock_push_request_errors(g_mc, 0 /* Produce */, 1,
                                      RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS);
    volatile int stop = 0;
    lg_prod_segment(p, 0, NEV, 0, 0, &stop);
    lg_prod_stats st;
    lg_prod_flush(p, 30000, &st);
    assert_true(st.failed > 0);
    assert_true(st.delivered < NEV);
    assert_non_null(strstr(st.first_error, "Kafka error 19"));
    lg_prod_free(p);
    /* a topic of another partition count (the mock creates unknown topics): refused up front */
    lg_kafka_opts k2 = {g_boot, "no-such-topic", "none", NULL, 5, 10000, "direct"};
    p = NULL;
    assert_int_equal(lg_prod_new(&k2, pl, 2, 0, NULL, &p), -1);
    cs_gen_plan_free(pl);
}

/* Regression: a bench's fresh topic failed its first Produce with "Not leader for partition"
 * (Kafka error 6) when the broker listed itself as leader in the metadata before it had taken
 * the partition's leadership; the direct producer does not retry, so the whole preload failed
 * (twice in a row on a loaded machine). lg_dmeta_fetch now asks every leader with ListOffsets
 * until none answers NOT_LEADER / LEADER_NOT_AVAILABLE / UNKNOWN_TOPIC_OR_PARTITION. The mock
 * cluster answers the next 4 ListOffsets with NOT_LEADER: the call waits (100 ms between tries)
 * and then succeeds; another error is reported at once. */
static void test_regression_not_leader_right_after_create(void **state)
{
    assert_int_equal(rd_kafka_mock_topic_create(g_mc, "fresh", NP, 1), 0);
    rd_kafka_mock_push_request_errors(g_mc, 2 /* ListOffsets */, 4,
                                      RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                                      RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                                      RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
                                      RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
    char err[1024] = "";
    lg_dmeta *m = NULL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(lg_dmeta_fetch(g_boot, "fresh", &m, err, sizeof err), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    assert_true(s >= 0.35); /* 4 refusals, 100 ms apart */
    assert_true(s < 10);
    assert_int_equal(lg_dmeta_nparts(m), NP);
    lg_dmeta_free(m);
    /* not a transient error: reported without waiting */
    rd_kafka_mock_push_request_errors(g_mc, 2, 1, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    m = NULL;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(lg_dmeta_fetch(g_boot, "fresh", &m, err, sizeof err), -1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_null(m);
    assert_non_null(strstr(err, "ListOffsets partition"));
    assert_true(t1.tv_sec - t0.tv_sec < 5);
}

static void test_producer_pick(void **state)
{
    lg_kafka_opts ko = {g_boot, "t", "lz4", NULL, 5, 10000, "auto"};
    assert_int_equal(lg_producer_pick(&ko), 1);
    ko.compression = "none";
    assert_int_equal(lg_producer_pick(&ko), 1);
    ko.extra = "security.protocol=PLAINTEXT";
    assert_int_equal(lg_producer_pick(&ko), 1);
    ko.extra = "security.protocol=SASL_SSL,sasl.mechanism=PLAIN";
    assert_int_equal(lg_producer_pick(&ko), 0);
    ko.producer = "direct";
    assert_int_equal(lg_producer_pick(&ko), -1); /* refused: direct is plaintext only */
    ko.extra = "linger.ms=20";
    assert_int_equal(lg_producer_pick(&ko), 1); /* a librdkafka tuning: ignored */
    ko.producer = "auto";
    assert_int_equal(lg_producer_pick(&ko), 0);
    ko.extra = NULL;
    ko.compression = "zstd";
    assert_int_equal(lg_producer_pick(&ko), 0);
    ko.producer = "direct";
    assert_int_equal(lg_producer_pick(&ko), 0); /* falls back, with a log line */
    ko.producer = "librdkafka";
    ko.compression = "lz4";
    assert_int_equal(lg_producer_pick(&ko), 0);
    ko.producer = "fast";
    assert_int_equal(lg_producer_pick(&ko), -1);
}

static int setup(void **state)
{
    char err[256];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    if (rd_kafka_conf_set(c, "test.mock.num.brokers", "3", err, sizeof err))
        return -1;
    rd_kafka_conf_set(c, "log_level", "3", err, sizeof err);
    g_owner = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
    if (!g_owner)
        return -1;
    g_mc = rd_kafka_handle_mock_cluster(g_owner);
    snprintf(g_boot, sizeof g_boot, "%s", rd_kafka_mock_cluster_bootstraps(g_mc));
    return 0;
}

static int teardown(void **state)
{
    rd_kafka_destroy(g_owner);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c),
        cmocka_unit_test(test_producer_pick),
        cmocka_unit_test(test_keyed_none),
        cmocka_unit_test(test_keyed_lz4),
        cmocka_unit_test(test_unkeyed),
        cmocka_unit_test(test_kafka_error_fails),
        cmocka_unit_test(test_regression_not_leader_right_after_create),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
