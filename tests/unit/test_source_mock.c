/* test_source_mock.c — broker faults a real broker cannot produce on cue, with librdkafka's
 * built-in mock cluster: the source (pipeline/source.c) drains a topic through the engine while
 * brokers go down and come back, fetches fail and the group coordinator moves. The counts must
 * equal the reference model's exactly, which proves consumption resumed at the right offsets
 * (nothing skipped, nothing read twice). Assertions are on the counts, not on
 * rd_kafka_committed() (it misreports on the 2.0.2 mock).
 *
 * Every case runs with one consumer handle and with two (fetch_threads, issue 18: worker w is
 * served by handle w % 2, with 3 workers so that one handle serves two workers): each partition
 * must be fetched by its worker's handle, and without faults no message may arrive below the
 * offset its partition expects next (redelivered_skipped == 0: strictly in order, once). */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "aggregate.h"
#include "classify.h"
#include "clickstage.h"
#include "counts.h"
#include "engine.h"
#include "gen.h"
#include "refmodel.h"
#include "source.h"

enum { API_FETCH = 1, API_LIST_OFFSETS = 2, API_OFFSET_FETCH = 9 };

static const char *const dim_paths[] = {NULL, "properties.persona"};

typedef struct fx {
    cs_engine *e;
    cs_source *src;
    volatile int stop;
    _Atomic uint64_t processed; /* messages the workers have processed so far */
} fx;

static int on_assign(void *opaque, const char *topic, int32_t partition, int worker,
                     int64_t committed, int64_t *start)
{
    fx *f = opaque;
    /* as if Redis held offset 0 for every partition: the 2.0.2 mock answers OffsetFetch for a
     * group that never committed with a made-up offset, so the committed-offset fallback is
     * tested against the real broker (tests/integration) instead */
    *start = 0;
    return cs_engine_add_partition(f->e, worker);
}


static void on_revoke(void *opaque, const int *parts, size_t n) {}

static void *worker(void *p)
{
    void **a = p;
    fx *f = a[0];
    int w = (int)(intptr_t)a[1];
    while (!f->stop) {
        int n = cs_source_fetch_process(f->src, w, 50);
        atomic_fetch_add(&f->processed, (uint64_t)n);
        cs_worker_tick(cs_engine_worker(f->e, w));
    }
    return NULL;
}

static void dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *o)
{
    if (m->err)
        fprintf(stderr, "delivery: %s\n", rd_kafka_err2str(m->err));
}

static void run(int fault, int nh)
{
    enum { NW = 3 };
    cs_gen_conf gc;
    cs_gen_defaults(&gc);
    gc.nparts = 4;
    gc.nevents = 40000; /* the mock keeps ~5 MB per partition log */
    gc.ncustomers = 3000;
    gc.too_large_frac = 0; /* the mock's default message.max.bytes */
    gc.seed = 100 + (uint64_t)fault;
    cs_gen_out *g = cs_gen_run(&gc);

    char err[512];
    rd_kafka_conf_t *pc = rd_kafka_conf_new();
    rd_kafka_conf_set(pc, "test.mock.num.brokers", "3", err, sizeof err);
    rd_kafka_conf_set(pc, "linger.ms", "5", err, sizeof err);
    rd_kafka_conf_set_dr_msg_cb(pc, dr);
    rd_kafka_t *prod = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof err);
    assert_non_null(prod);
    rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(prod);
    assert_non_null(mc);
    rd_kafka_mock_topic_create(mc, "clicks", 4, 1);
    for (int q = 0; q < 4; q++)
        rd_kafka_mock_partition_set_leader(mc, "clicks", q, 1 + q % 3);
    for (int q = 0; q < g->nparts; q++)
        for (size_t i = 0; i < g->parts[q].n; i++) {
            const cs_msg *m = &g->parts[q].msgs[i];
            while (rd_kafka_producev(prod, RD_KAFKA_V_TOPIC("clicks"), RD_KAFKA_V_PARTITION(q),
                                     RD_KAFKA_V_VALUE((void *)m->payload, m->len),
                                     RD_KAFKA_V_TIMESTAMP(m->ts_ms),
                                     RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                     RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rd_kafka_poll(prod, 10);
        }
    assert_int_equal(rd_kafka_flush(prod, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);

    cs_ruleset *rs = cs_rules_load_file("data/model.yaml", err, sizeof err);
    assert_non_null(rs);
    fx f = {0};
    f.e = cs_engine_new(rs, NW, err, sizeof err);
    atomic_init(&f.processed, 0);
    cs_source_conf sc = {.brokers = rd_kafka_mock_cluster_bootstraps(mc), .group = "g",
                         .topics = "clicks", .earliest = 1, .drain = 1, .batch_size = 500,
                         .fetch_threads = nh,
                         .on_assign = on_assign, .on_revoke = on_revoke, .opaque = &f,
                         /* small fetches: many round trips for the faults to hit */
                         .extra_props = "fetch.max.bytes=1000000,max.partition.fetch.bytes=16384,message.max.bytes=65536"};
    f.src = cs_source_new(f.e, &sc, err, sizeof err);
    if (!f.src)
        fprintf(stderr, "cs_source_new: %s\n", err);
    assert_non_null(f.src);
    assert_int_equal(cs_source_start(f.src, err, sizeof err), 0);
    assert_int_equal(cs_source_fetch_handles(f.src), nh);
    pthread_t th[NW];
    void *args[NW][2];
    for (int i = 0; i < NW; i++) {
        args[i][0] = &f;
        args[i][1] = (void *)(intptr_t)i;
        pthread_create(&th[i], NULL, worker, args[i]);
    }

    int16_t fetch_errs = 0;
    int injected_at = -1;
    for (int tick = 0; !cs_source_drained(f.src) && tick < 6000; tick++) {
        cs_source_poll(f.src, 5);
        /* the fault hits mid-stream: once a tenth of the messages were processed */
        if (injected_at < 0 && atomic_load(&f.processed) >= g->nmsgs / 10) {
            injected_at = tick;
            if (fault)
                assert_false(cs_source_drained(f.src)); /* the fault hits mid-stream */
            if (fault == 1) { /* a partition leader goes away and comes back */
                rd_kafka_mock_broker_set_down(mc, 1);
            } else if (fault == 2) { /* a burst of fetch errors that force re-fetches */
                rd_kafka_mock_push_request_errors(
                    mc, API_FETCH, 6, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                    RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                    RD_KAFKA_RESP_ERR_OFFSET_NOT_AVAILABLE, RD_KAFKA_RESP_ERR__TRANSPORT,
                    RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION);
                fetch_errs = 6;
            } else if (fault == 3) { /* leadership moves between brokers mid-stream */
                for (int q = 0; q < 4; q++)
                    rd_kafka_mock_partition_set_leader(mc, "clicks", q, 1 + (q + 1) % 3);
                rd_kafka_mock_coordinator_set(mc, "group", "g", 3);
            }
        }
        if (injected_at >= 0 && tick == injected_at + 200 && fault == 1)
            rd_kafka_mock_broker_set_up(mc, 1);
    }
    (void)fetch_errs;
    assert_true(cs_source_drained(f.src));
    if (fault)
        assert_true(injected_at >= 0);
    f.stop = 1;
    for (int i = 0; i < NW; i++) {
        cs_source_wake(f.src, i);
        pthread_join(th[i], NULL);
    }
    cs_engine_set_watermark(f.e, cs_engine_final_watermark(f.e));
    cs_counts *got = cs_counts_new();
    for (int i = 0; i < NW; i++) {
        cs_worker *w = cs_engine_worker(f.e, i);
        cs_worker_end_all(w, CS_END_DRAIN);
        cs_agg *a = cs_worker_take_agg(w);
        cs_agg_foreach(a, cs_engine_rules(f.e), cs_engine_dicts(f.e), cs_counts_agg_cb, got);
        cs_worker_give_agg(w, a);
    }
    cs_source_stats st;
    cs_source_stats_get(f.src, &st);
    /* every partition fetched by the handle of the worker that owns it */
    cs_source_tp tps[16];
    size_t ntp = cs_source_assigned(f.src, tps, 16);
    assert_int_equal(ntp, 4);
    for (size_t i = 0; i < ntp; i++)
        assert_int_equal(cs_source_part_handle(f.src, tps[i].part),
                         cs_engine_part_owner(f.e, tps[i].part) % nh);
    if (!fault) /* in order and once: nothing arrived below the offset expected next */
        assert_int_equal(st.redelivered_skipped, 0);

    cs_ruleset *rs2 = cs_rules_load_file("data/model.yaml", err, sizeof err);
    ref_model *m = ref_new(rs2, dim_paths, g->nparts);
    for (int q = 0; q < g->nparts; q++)
        for (size_t i = 0; i < g->parts[q].n; i++)
            ref_event(m, q, g->parts[q].msgs[i].payload, g->parts[q].msgs[i].len,
                      g->parts[q].msgs[i].ts_ms);
    ref_finish(m, CS_END_DRAIN);
    cs_counts *want = cs_counts_new();
    ref_counts(m, want);
    long d = cs_counts_diff(want, "ref", got, "source", stderr, getenv("CS_DIFF_MAX") ? atol(getenv("CS_DIFF_MAX")) : 30);
    fprintf(stderr, "   fault %d, %d handle(s): %llu messages, %ld counters, %ld differences, %llu redelivered "
                    "skipped, %llu stray, %llu past end, %llu errors\n", fault, nh, (unsigned long long)g->nmsgs, cs_counts_size(want), d,
            (unsigned long long)st.redelivered_skipped, (unsigned long long)st.stray, (unsigned long long)st.past_end_skipped, (unsigned long long)st.consume_errors);
    assert_int_equal(d, 0);
    cs_counts_free(want);
    cs_counts_free(got);
    ref_free(m);
    cs_rules_destroy(rs2);
    cs_source_close(f.src);
    cs_source_destroy(f.src);
    cs_engine_destroy(f.e);
    rd_kafka_destroy(prod);
    cs_gen_free(g);
}

static void no_fault(void **st) { run(0, 1); }
static void broker_down_and_up(void **st) { run(1, 1); }
static void injected_fetch_errors(void **st) { run(2, 1); }
static void leader_and_coordinator_move(void **st) { run(3, 1); }
static void no_fault_2_handles(void **st) { run(0, 2); }
static void broker_down_and_up_2_handles(void **st) { run(1, 2); }
static void injected_fetch_errors_2_handles(void **st) { run(2, 2); }
static void leader_and_coordinator_move_2_handles(void **st) { run(3, 2); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(no_fault),
        cmocka_unit_test(broker_down_and_up),
        cmocka_unit_test(injected_fetch_errors),
        cmocka_unit_test(leader_and_coordinator_move),
        cmocka_unit_test(no_fault_2_handles),
        cmocka_unit_test(broker_down_and_up_2_handles),
        cmocka_unit_test(injected_fetch_errors_2_handles),
        cmocka_unit_test(leader_and_coordinator_move_2_handles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
