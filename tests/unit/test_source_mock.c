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
#include "engine_run.h"
#include "snapshot.h"
#include "source.h"
#include "util.h"

enum { API_FETCH = 1, API_LIST_OFFSETS = 2, API_OFFSET_FETCH = 9, API_SYNC_GROUP = 14 };

static const char *const dim_paths[] = {NULL, "properties.persona"};

typedef struct moved_part {
    char *snap;           /* the state handed over (NULL: nothing consumed yet) */
    size_t len;
    int64_t next;         /* where the new owner starts */
} moved_part;

typedef struct fx {
    cs_engine *e;
    cs_source *src;
    volatile int stop;
    _Atomic uint64_t processed; /* messages the workers have processed so far */
    moved_part *moved;    /* [4]: on_assign restores these (the moving test) */
    int nw;               /* worker threads running (workers_start) */
    int slow_us;          /* a pause after each consume call (the stranded test) */
    _Atomic uint64_t pause_at; /* the workers stop fetching once this many messages were
                                  processed (0: never): a stop mid-stream that does not depend
                                  on timing */
    pthread_t th[4];
    void *args[4][2];
    /* fx_setup: the stream, the mock cluster holding it, the producer that owns the cluster */
    cs_gen_out *g;
    rd_kafka_mock_cluster_t *mc;
    const char *boot;     /* the cluster's bootstrap servers */
    rd_kafka_t *prod;
} fx;

static int on_assign(void *opaque, const char *topic, int32_t partition, int worker,
                     int64_t committed, int64_t *start)
{
    fx *f = opaque;
    if (f->moved) { /* the partition comes with the state an earlier handle left */
        moved_part *mp = &f->moved[partition];
        *start = mp->next;
        if (!mp->snap)
            return cs_engine_add_partition(f->e, worker);
        char err[256];
        cs_snap_info info;
        cs_pstate *st = cs_snapshot_read(mp->snap, mp->len, cs_engine_rules(f->e),
                                         cs_engine_dicts(f->e), &info, err, sizeof err);
        if (!st) {
            fprintf(stderr, "snapshot: %s\n", err);
            return -1;
        }
        return cs_engine_add_partition_state(f->e, worker, st, info.next_offset, -1, -1);
    }
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
        uint64_t pa = atomic_load(&f->pause_at);
        if (pa && atomic_load(&f->processed) >= pa) {
            usleep(1000);
            continue;
        }
        int n = cs_source_fetch_process(f->src, w, 50);
        atomic_fetch_add(&f->processed, (uint64_t)n);
        if (f->slow_us)
            usleep((useconds_t)f->slow_us);
        cs_worker_tick(cs_engine_worker(f->e, w));
    }
    return NULL;
}

/* One thread per engine worker (at most 4), each fetching and ticking until workers_stop. */
static void workers_start(fx *f, int nw)
{
    assert_true(nw >= 1 && nw <= 4);
    f->stop = 0;
    f->nw = nw;
    for (int i = 0; i < nw; i++) {
        f->args[i][0] = f;
        f->args[i][1] = (void *)(intptr_t)i;
        pthread_create(&f->th[i], NULL, worker, f->args[i]);
    }
}

static void workers_stop(fx *f)
{
    f->stop = 1;
    for (int i = 0; i < f->nw; i++) {
        cs_source_wake(f->src, i);
        pthread_join(f->th[i], NULL);
    }
    f->nw = 0;
}

static void dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *o)
{
    if (m->err)
        fprintf(stderr, "delivery: %s\n", rd_kafka_err2str(m->err));
}

/* A mock cluster of 3 brokers with topic clicks (4 partitions, leaders spread) holding g. */
static rd_kafka_t *produce_mock(const cs_gen_out *g, rd_kafka_mock_cluster_t **mcp)
{
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
    *mcp = mc;
    return prod;
}

static cs_gen_out *gen_stream(uint64_t seed)
{
    cs_gen_conf gc;
    cs_gen_defaults(&gc);
    gc.nparts = 4;
    gc.nevents = 40000; /* the mock keeps ~5 MB per partition log */
    gc.ncustomers = 3000;
    gc.too_large_frac = 0; /* the mock's default message.max.bytes */
    gc.seed = seed;
    return cs_gen_run(&gc);
}

/* The shared fixture, on a zeroed f: the stream of `seed` (gen_stream) in a mock cluster
 * (produce_mock) and an engine of nw workers on data/model.yaml. No source yet: fx_open. */
static void fx_setup(fx *f, uint64_t seed, int nw)
{
    char err[512];
    f->g = gen_stream(seed);
    f->prod = produce_mock(f->g, &f->mc);
    f->boot = rd_kafka_mock_cluster_bootstraps(f->mc);
    cs_ruleset *rs = cs_rules_load_file("data/model.yaml", err, sizeof err);
    assert_non_null(rs);
    f->e = cs_engine_new(rs, nw, err, sizeof err);
    atomic_init(&f->processed, 0);
    atomic_init(&f->pause_at, 0);
}

/* Creates and starts f->src from sc (group, topics, mode, tuning: the test's own); the brokers
 * (the fixture's cluster) and the callbacks (on_assign, on_revoke, opaque f) are set here. */
static void fx_open(fx *f, cs_source_conf sc)
{
    char err[512];
    sc.brokers = f->boot;
    sc.on_assign = on_assign;
    sc.on_revoke = on_revoke;
    sc.opaque = f;
    f->src = cs_source_new(f->e, &sc, err, sizeof err);
    if (!f->src)
        fprintf(stderr, "cs_source_new: %s\n", err);
    assert_non_null(f->src);
    assert_int_equal(cs_source_start(f->src, err, sizeof err), 0);
}

/* Closes (leaves the group) and destroys f->src; the workers must have stopped. */
static void fx_close(fx *f)
{
    cs_source_close(f->src);
    cs_source_destroy(f->src);
    f->src = NULL;
}

/* Undoes fx_setup (and fx_open, if the source is still open). */
static void fx_teardown(fx *f)
{
    if (f->src)
        fx_close(f);
    cs_engine_destroy(f->e);
    rd_kafka_destroy(f->prod);
    cs_gen_free(f->g);
}

/* The reference model's counts of the whole stream against what the workers counted (plus
 * `got` so far); returns the differences. */
static long compare_with_model(fx *f, const cs_gen_out *g, cs_counts *got, int nw)
{
    cs_engine_set_watermark(f->e, cs_engine_final_watermark(f->e));
    for (int i = 0; i < nw; i++) {
        cs_worker *w = cs_engine_worker(f->e, i);
        cs_worker_end_all(w, CS_END_DRAIN);
        cs_agg *a = cs_worker_take_agg(w);
        cs_agg_foreach(a, cs_engine_rules(f->e), cs_engine_dicts(f->e), cs_counts_agg_cb, got);
        cs_worker_give_agg(w, a);
    }
    cs_counts *want = cs_test_run_model(g, "data/model.yaml", dim_paths);
    assert_non_null(want);
    long d = cs_counts_diff(want, "ref", got, "source", stderr, 30);
    cs_counts_free(want);
    return d;
}

/* live 0: --drain (the source finds the end); 1: live mode, a consumer group (handle 0 joins,
 * the others are assigned their share by it), done once every message was processed */
static void run_mode(int fault, int nh, int live)
{
    enum { NW = 3 };
    fx f = {0};
    fx_setup(&f, 100 + (uint64_t)fault, NW);
    const cs_gen_out *g = f.g;
    rd_kafka_mock_cluster_t *mc = f.mc;
    fx_open(&f, (cs_source_conf){.group = "g", .topics = "clicks", .earliest = 1, .drain = !live,
                                 .batch_size = 500, .fetch_threads = nh,
                                 /* small fetches: many round trips for the faults to hit */
                                 .extra_props = "fetch.max.bytes=1000000,max.partition.fetch."
                                                "bytes=16384,message.max.bytes=65536"});
    assert_int_equal(cs_source_fetch_handles(f.src), nh);
    /* the workers wait at a tenth until the fault is in (see moved_between_handles) */
    atomic_store(&f.pause_at, fault && !live ? g->nmsgs / 10 : 0);
    workers_start(&f, NW);

    int16_t fetch_errs = 0;
    int injected_at = -1;
#define NOT_DONE (live ? atomic_load(&f.processed) < g->nmsgs : !cs_source_drained(f.src))
    for (int tick = 0; NOT_DONE && tick < 6000; tick++) {
        cs_source_poll(f.src, 5);
        /* the fault hits mid-stream: once a tenth of the messages were processed */
        if (injected_at < 0 && atomic_load(&f.processed) >= g->nmsgs / 10) {
            injected_at = tick;
            if (fault && !live)
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
            atomic_store(&f.pause_at, 0);
        }
        if (injected_at >= 0 && tick == injected_at + 200 && fault == 1)
            rd_kafka_mock_broker_set_up(mc, 1);
    }
    (void)fetch_errs;
    assert_false(NOT_DONE);
#undef NOT_DONE
    if (fault)
        assert_true(injected_at >= 0);
    workers_stop(&f);
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

    cs_counts *want = cs_test_run_model(g, "data/model.yaml", dim_paths);
    assert_non_null(want);
    long d = cs_counts_diff(want, "ref", got, "source", stderr, getenv("CS_DIFF_MAX") ? atol(getenv("CS_DIFF_MAX")) : 30);
    fprintf(stderr, "   fault %d, %d handle(s)%s: %llu messages, %ld counters, %ld differences, %llu redelivered "
                    "skipped, %llu stray, %llu past end, %llu errors\n", fault, nh, live ? ", live" : "", (unsigned long long)g->nmsgs, cs_counts_size(want), d,
            (unsigned long long)st.redelivered_skipped, (unsigned long long)st.stray, (unsigned long long)st.past_end_skipped, (unsigned long long)st.consume_errors);
    assert_int_equal(d, 0);
    cs_counts_free(want);
    cs_counts_free(got);
    fx_teardown(&f);
}

/* librdkafka < 2.3.0 asserted in rd_kafka_destroy ("rd_kafka_sticky_assignor_state_destroy:
 * Assertion `assignor_state' failed", librdkafka #4312) when a member stopped after its
 * JoinGroup chose the cooperative-sticky assignor and before any SyncGroup gave it an
 * assignment: the process aborted instead of stopping (seen in test_coord, and a SIGTERM while
 * a daemon joins its group hits the same window). Here every SyncGroup fails, so the member
 * joins again and again and never gets an assignment; then it is stopped the normal way. */
static void regression_stop_before_first_assignment_aborted(void **st)
{
    char err[512];
    rd_kafka_conf_t *pc = rd_kafka_conf_new();
    rd_kafka_conf_set(pc, "test.mock.num.brokers", "1", err, sizeof err);
    rd_kafka_t *prod = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof err);
    assert_non_null(prod);
    rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(prod);
    rd_kafka_mock_topic_create(mc, "clicks", 2, 1);
    rd_kafka_resp_err_t errs[200];
    for (int i = 0; i < 200; i++)
        errs[i] = RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS;
    rd_kafka_mock_push_request_errors_array(mc, API_SYNC_GROUP, 200, errs);
    cs_ruleset *rs = cs_rules_load_file("data/model.yaml", err, sizeof err);
    assert_non_null(rs);
    fx f = {0};
    f.e = cs_engine_new(rs, 1, err, sizeof err);
    cs_source_conf sc = {.brokers = rd_kafka_mock_cluster_bootstraps(mc), .group = "g-never",
                         .topics = "clicks", .earliest = 1, .batch_size = 100,
                         .on_assign = on_assign, .on_revoke = on_revoke, .opaque = &f};
    f.src = cs_source_new(f.e, &sc, err, sizeof err);
    assert_non_null(f.src);
    assert_int_equal(cs_source_start(f.src, err, sizeof err), 0);
    for (int i = 0; i < 300; i++) /* 3 s: several JoinGroups, every SyncGroup refused */
        cs_source_poll(f.src, 10);
    cs_source_stats ss;
    cs_source_stats_get(f.src, &ss);
    assert_int_equal(ss.rebalances, 0); /* never assigned: the window of the assertion */
    cs_source_close(f.src);
    cs_source_destroy(f.src); /* aborted here */
    cs_engine_destroy(f.e);
    rd_kafka_destroy(prod);
}

static void run(int fault, int nh) { run_mode(fault, nh, 0); }
static void no_fault(void **st) { run(0, 1); }
static void broker_down_and_up(void **st) { run(1, 1); }
static void injected_fetch_errors(void **st) { run(2, 1); }
static void leader_and_coordinator_move(void **st) { run(3, 1); }
static void no_fault_2_handles(void **st) { run(0, 2); }
static void broker_down_and_up_2_handles(void **st) { run(1, 2); }
static void injected_fetch_errors_2_handles(void **st) { run(2, 2); }
static void leader_and_coordinator_move_2_handles(void **st) { run(3, 2); }

/* Live mode with two handles (issue 18): the group's member is handle 0; it hands each handle
 * its share of the assignment, and every message is counted once, in order, also while a
 * broker goes down and comes back and while fetches fail. */
static void live_2_handles(void **st) { run_mode(0, 2, 1); }
static void live_broker_down_and_up_2_handles(void **st) { run_mode(1, 2, 1); }
static void live_injected_fetch_errors_2_handles(void **st) { run_mode(2, 2, 1); }

/* Revoked partitions must not keep what librdkafka fetched for them. release_one used to
 * un-forward a revoked partition's queue (forward to NULL). What the fetcher still delivered
 * before the revocation took effect then stayed in that queue, each message holding its whole
 * fetch response, until the partition was assigned to the same handle again: with two handles,
 * half of the time never. The soak's CI profile with --fetch-threads 2 grew RSS 23 % in 3
 * minutes (24,000 such messages in 556 partition queues by the end). Here: live, two handles,
 * workers slowed so that fetching goes on; another member joins the group (the
 * source's partitions are revoked) and leaves (they come back, maybe on the other handle), twice.
 * After each revocation, once cs_source_poll has run for a while, no partition queue that feeds
 * no worker may hold a message. Fails without the fix: 4 stranded with release_one forwarding to
 * NULL; 2 (outdated ones, enqueued after librdkafka's fetch stop un-forwarded the queue) with
 * the forward to dq but no sweeps (strays). */
static void regression_revoked_prefetch_stranded(void **st)
{
    enum { NW = 2 };
    char err[512];
    fx f = {0};
    fx_setup(&f, 300, NW);
    const char *boot = f.boot;
    fx_open(&f, (cs_source_conf){.group = "g-strand", .topics = "clicks", .earliest = 1,
                                 .batch_size = 50, .fetch_threads = 2,
                                 /* a few messages per fetch: a fetch is always in flight */
                                 .extra_props = "fetch.max.bytes=65536,max.partition.fetch.bytes="
                                                "2048,message.max.bytes=65536,session.timeout."
                                                "ms=6000,heartbeat.interval.ms=300"});
    f.slow_us = 5000;
    workers_start(&f, NW);
    cs_source_tp tps[8];
    int tick = 0;
    while (cs_source_assigned(f.src, tps, 8) < 4 && tick++ < 8000)
        cs_source_poll(f.src, 5);
    assert_int_equal(cs_source_assigned(f.src, tps, 8), 4);
    int revoked_cycles = 0;
    for (int cycle = 0; cycle < 2; cycle++) {
        rd_kafka_conf_t *jc = rd_kafka_conf_new();
        const char *kv[][2] = {{"bootstrap.servers", boot}, {"group.id", "g-strand"},
                               {"partition.assignment.strategy", "cooperative-sticky"},
                               {"session.timeout.ms", "6000"}, {"heartbeat.interval.ms", "300"},
                               {"enable.auto.commit", "false"}, {"auto.offset.reset", "latest"}};
        for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
            assert_int_equal(rd_kafka_conf_set(jc, kv[i][0], kv[i][1], err, sizeof err),
                             RD_KAFKA_CONF_OK);
        rd_kafka_t *j = rd_kafka_new(RD_KAFKA_CONSUMER, jc, err, sizeof err);
        assert_non_null(j);
        rd_kafka_poll_set_consumer(j);
        rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(sub, "clicks", RD_KAFKA_PARTITION_UA);
        assert_int_equal(rd_kafka_subscribe(j, sub), 0);
        rd_kafka_topic_partition_list_destroy(sub);
        /* until the joiner holds partitions and the source has let them go */
        int held = 0;
        /* ~5 s with the 2.0.2 mock; the bound (>= 40 s) leaves room for sanitizer builds */
        for (tick = 0; tick < 8000 && !(held && cs_source_assigned(f.src, tps, 8) < 4); tick++) {
            cs_source_poll(f.src, 5);
            rd_kafka_message_t *m = rd_kafka_consumer_poll(j, 0);
            if (m)
                rd_kafka_message_destroy(m);
            rd_kafka_topic_partition_list_t *a = NULL;
            if (!rd_kafka_assignment(j, &a) && a) {
                held = a->cnt > 0;
                rd_kafka_topic_partition_list_destroy(a);
            }
        }
        if (held && cs_source_assigned(f.src, tps, 8) < 4) {
            revoked_cycles++;
            /* librdkafka stops fetching them; what it had fetched goes nowhere but dq */
            for (tick = 0; tick < 100; tick++) {
                cs_source_poll(f.src, 5);
                rd_kafka_message_t *m = rd_kafka_consumer_poll(j, 0);
                if (m)
                    rd_kafka_message_destroy(m);
            }
            size_t stranded = cs_source_stranded(f.src);
            if (stranded)
                fprintf(stderr, "cycle %d: %zu message(s) stranded\n", cycle, stranded);
            assert_int_equal(stranded, 0);
        }
        rd_kafka_consumer_close(j);
        rd_kafka_destroy(j);
        /* the partitions come back (~12 s with the 2.0.2 mock; bound >= 40 s) */
        for (tick = 0; tick < 8000 && cs_source_assigned(f.src, tps, 8) < 4; tick++)
            cs_source_poll(f.src, 5);
        assert_int_equal(cs_source_assigned(f.src, tps, 8), 4);
    }
    assert_int_equal(revoked_cycles, 2);
    cs_source_stats ss;
    cs_source_stats_get(f.src, &ss);
    fprintf(stderr, "revocations %llu, messages dropped from revoked partitions %llu\n",
            (unsigned long long)ss.revoked, (unsigned long long)ss.revoked_discarded);
    assert_true(ss.revoked >= 3);
    workers_stop(&f);
    fx_teardown(&f);
}

/* A partition moves between handles: a drain with one handle (3 workers) stops at ~40 %; each
 * partition's counts so far are taken, its state snapshotted and removed (as a revoke does); a
 * new source with 3 handles (worker w on handle w) restores the state on the worker it picks and
 * starts at the next offset. Partitions of workers 1 and 2 are now fetched by another handle;
 * the whole must count exactly what the reference model counts, with nothing re-delivered. */
static void moved_between_handles(void **state)
{
    enum { NW = 3 };
    fx f = {0};
    fx_setup(&f, 200, NW);
    const cs_gen_out *g = f.g;
    cs_counts *got = cs_counts_new();
    moved_part mp[4] = {{0}};
    int before[4];
    uint64_t redelivered = 0;
    for (int phase = 0; phase < 2; phase++) {
        f.moved = phase ? mp : NULL;
        fx_open(&f, (cs_source_conf){.group = "g", .topics = "clicks", .earliest = 1, .drain = 1,
                                     .batch_size = 500, .fetch_threads = phase ? NW : 1,
                                     .extra_props = "fetch.max.bytes=1000000,max.partition."
                                                    "fetch.bytes=16384,message.max.bytes=65536"});
        assert_int_equal(cs_source_fetch_handles(f.src), phase ? NW : 1);
        /* phase 0 stops at ~40 %: the workers pause there by themselves. Waiting for the count
         * in the polling loop alone was a race the workers could win: CI of eb0d6a2 saw the
         * whole drain done within one 5 ms poll ("stopped mid-stream" failed). */
        atomic_store(&f.pause_at, phase ? 0 : g->nmsgs * 4 / 10);
        workers_start(&f, NW);
        for (int tick = 0; !cs_source_drained(f.src) && tick < 6000; tick++) {
            cs_source_poll(f.src, 5);
            if (!phase && atomic_load(&f.processed) >= g->nmsgs * 4 / 10)
                break;
        }
        workers_stop(&f);
        cs_source_tp tps[16];
        size_t ntp = cs_source_assigned(f.src, tps, 16);
        assert_int_equal(ntp, 4);
        cs_source_stats st;
        cs_source_stats_get(f.src, &st);
        redelivered += st.redelivered_skipped;
        if (!phase) {
            assert_false(cs_source_drained(f.src)); /* stopped mid-stream */
            for (int i = 0; i < NW; i++) { /* the counts so far, as a flush takes them */
                cs_worker *w = cs_engine_worker(f.e, i);
                cs_agg *a = cs_worker_take_agg(w);
                cs_agg_foreach(a, cs_engine_rules(f.e), cs_engine_dicts(f.e), cs_counts_agg_cb,
                               got);
                cs_worker_give_agg(w, a);
            }
            for (size_t i = 0; i < ntp; i++) { /* the state, as a revoke hands it over */
                int part = tps[i].part, q = tps[i].partition;
                cs_worker *w = cs_engine_worker(f.e, cs_engine_part_owner(f.e, part));
                int64_t off, wm;
                cs_worker_part_progress(w, part, &off, &wm);
                cs_snap_info info;
                int rc = cs_worker_snapshot_part(w, part, &mp[q].snap, &mp[q].len, &info);
                assert_true(rc >= 0);
                if (rc != 0)
                    mp[q].snap = NULL;
                mp[q].next = off >= 0 ? off : 0;
                before[q] = cs_source_part_handle(f.src, part);
                assert_int_equal(before[q], 0);
                cs_engine_remove_partition(f.e, part);
            }
        } else {
            assert_true(cs_source_drained(f.src));
            int moved = 0;
            for (size_t i = 0; i < ntp; i++) {
                int h = cs_source_part_handle(f.src, tps[i].part);
                assert_int_equal(h, cs_engine_part_owner(f.e, tps[i].part) % NW);
                moved += h != before[tps[i].partition];
            }
            assert_true(moved >= 2);
        }
        fx_close(&f);
    }
    assert_int_equal(redelivered, 0); /* each part started exactly where the last one stopped */
    long d = compare_with_model(&f, g, got, NW);
    fprintf(stderr, "   moved between handles: %llu messages, %ld differences\n",
            (unsigned long long)g->nmsgs, d);
    assert_int_equal(d, 0);
    for (int q = 0; q < 4; q++)
        free(mp[q].snap);
    cs_counts_free(got);
    fx_teardown(&f);
}

/* The fetch wake (source.c): with one handle per worker and a small prefetch limit, every
 * partition's queue is full again and again; librdkafka 2.0.2 then leaves the handle's broker
 * threads asleep for up to 1 s each time (rd_kafka_max_block_ms) unless something wakes them.
 * With the wake the 40000 messages took 36-111 ms (10-14 wakes); without it
 * (CS_TEST_FETCH_WAKE_OFF=1, which fails this test) 3.0-5.0 s: a stall of up to 1 s per refill.
 * Counts exact as everywhere. */
static void wake_drain(int batch)
{
    enum { NW = 2 };
    int off = getenv("CS_TEST_FETCH_WAKE_OFF") != NULL;
    fx f = {0};
    fx_setup(&f, 300, NW);
    const cs_gen_out *g = f.g;
    fx_open(&f, (cs_source_conf){.group = "g", .topics = "clicks", .earliest = 1, .drain = 1,
                                 .batch_size = batch, .fetch_threads = NW,
                                 .fetch_wake = off ? -1 : 1,
                                 /* one response fills the queue past queued.min.messages */
                                 .extra_props = "queued.min.messages=1000,fetch.max.bytes="
                                                "4000000,max.partition.fetch.bytes=1000000,"
                                                "message.max.bytes=65536"});
    assert_int_equal(cs_source_fetch_handles(f.src), NW);
    int64_t t0 = cs_mono_ms();
    workers_start(&f, NW);
    for (int tick = 0; !cs_source_drained(f.src) && tick < 6000; tick++)
        cs_source_poll(f.src, 5);
    int64_t ms = cs_mono_ms() - t0;
    assert_true(cs_source_drained(f.src));
    workers_stop(&f);
    cs_source_stats st;
    cs_source_stats_get(f.src, &st);
    cs_counts *got = cs_counts_new();
    long d = compare_with_model(&f, g, got, NW);
    fprintf(stderr, "   wake %s, batch %d: %llu messages in %lld ms, %llu fetch wakes, %ld "
            "differences\n", off ? "off" : "on", batch, (unsigned long long)g->nmsgs, (long long)ms,
            (unsigned long long)st.fetch_wakes, d);
    assert_int_equal(d, 0);
    assert_int_equal(st.redelivered_skipped, 0);
    if (!off)
        assert_true(st.fetch_wakes > 0);
    /* without the wake each refill may cost up to 1 s (3-4 s in all here) */
    assert_true(ms < 1500);
    cs_counts_free(got);
    fx_teardown(&f);
}

/* batches of 200 and of 2000, twice queued.min.messages (the worker may take the whole queue
 * in one call: it must still notice that the queue was at the limit) */
static void wake_after_full_queue(void **state)
{
    (void)state;
    wake_drain(200);
    wake_drain(2000);
}

/* The same in live mode (one handle, a consumer group, one worker): the group's heartbeats wake
 * the coordinator's broker thread only (nothing commits here); the partitions' leaders stalled for
 * up to 1 s per refill without the wake. Timed from the first message counted to the last: 41-67 ms
 * with the wake (5-10 wakes), 5.0-8.0 s without (CS_TEST_FETCH_WAKE_OFF=1). */
static void wake_live_mode(void **state)
{
    (void)state;
    int off = getenv("CS_TEST_FETCH_WAKE_OFF") != NULL;
    fx f = {0};
    fx_setup(&f, 400, 1);
    const cs_gen_out *g = f.g;
    fx_open(&f, (cs_source_conf){.group = "g-live", .topics = "clicks", .earliest = 1,
                                 .batch_size = 200,
                                 .fetch_wake = off ? -1 : 0, /* 0: on with librdkafka 2.0.2 */
                                 .extra_props = "queued.min.messages=1000,fetch.max.bytes="
                                                "4000000,max.partition.fetch.bytes=1000000,"
                                                "message.max.bytes=65536"});
    workers_start(&f, 1);
    int64_t t_first = -1, deadline = cs_mono_ms() + 30000;
    while (atomic_load(&f.processed) < g->nmsgs && cs_mono_ms() < deadline) {
        cs_source_poll(f.src, 5);
        if (t_first < 0 && atomic_load(&f.processed) > 0)
            t_first = cs_mono_ms();
    }
    int64_t ms = cs_mono_ms() - t_first;
    workers_stop(&f);
    cs_source_stats st;
    cs_source_stats_get(f.src, &st);
    fprintf(stderr, "   live, wake %s: %llu of %llu messages in %lld ms after the first, %llu "
            "fetch wakes\n", off ? "off" : "on", (unsigned long long)atomic_load(&f.processed),
            (unsigned long long)g->nmsgs, (long long)ms, (unsigned long long)st.fetch_wakes);
    assert_int_equal(atomic_load(&f.processed), g->nmsgs);
    if (!off)
        assert_true(st.fetch_wakes > 0);
    assert_true(ms < 1500);
    fx_teardown(&f);
}

/* fetch_threads auto (issue 18, the handle default): one per worker, in drain mode (with
 * librdkafka 2.0.2 too: the fetch wake keeps a full prefetch queue from stalling the worker,
 * wake_after_full_queue) and live (live_2_handles; regression_revoked_prefetch_stranded) */
static void auto_fetch_threads(void **state)
{
    (void)state;
    for (int w = 1; w <= 16; w++)
        assert_int_equal(cs_source_auto_fetch_threads(w), w);
}

/* message.max.bytes follows fetch.max.bytes on every consumer handle unless kafka_props sets
 * it (source.c: librdkafka 2.0.2 caps its first guess at an lz4 batch's decompressed size with
 * it, and the 1 MB default made every large batch grow twice); a kafka_props that only lowers
 * fetch.max.bytes is accepted, and one librdkafka cannot take is refused with its reason. */
static void consumer_message_max_bytes(void **state)
{
    (void)state;
    char err[512], v[64];
    rd_kafka_conf_t *pc = rd_kafka_conf_new();
    assert_int_equal(rd_kafka_conf_set(pc, "test.mock.num.brokers", "1", err, sizeof err),
                     RD_KAFKA_CONF_OK);
    rd_kafka_t *mock = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof err);
    assert_non_null(mock);
    const char *boot = rd_kafka_mock_cluster_bootstraps(rd_kafka_handle_mock_cluster(mock));
    cs_ruleset *rs = cs_rules_load_file("data/model.yaml", err, sizeof err);
    assert_non_null(rs);
    cs_engine *e = cs_engine_new(rs, 2, err, sizeof err);
    assert_non_null(e);
    static const struct {
        const char *props, *fetch_max, *msg_max; /* msg_max NULL: refused */
    } c[] = {
        {NULL, "16777216", "16777216"},                      /* ours: the two equal */
        {"fetch.max.bytes=65536", "65536", "65536"},         /* refused before */
        {"message.max.bytes=2000000", "16777216", "2000000"}, /* the user's stays */
        {"fetch.max.bytes=4000000,message.max.bytes=3000000", "4000000", "3000000"},
        {"fetch.max.bytes=500", NULL, NULL}, /* below message.max.bytes' least (1000) */
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        cs_source_conf sc = {.brokers = boot, .group = "g", .topics = "clicks", .drain = 1,
                             .earliest = 1, .fetch_threads = 2, .extra_props = c[i].props,
                             .on_assign = on_assign, .on_revoke = on_revoke};
        err[0] = 0;
        cs_source *src = cs_source_new(e, &sc, err, sizeof err);
        if (!c[i].msg_max) {
            assert_null(src);
            assert_non_null(strstr(err, "fetch.max.bytes"));
            continue;
        }
        if (!src)
            fprintf(stderr, "case %zu: %s\n", i, err);
        assert_non_null(src);
        assert_int_equal(cs_source_fetch_handles(src), 2);
        for (int h = 0; h < 2; h++) {
            assert_int_equal(cs_source_kafka_prop(src, h, "fetch.max.bytes", v, sizeof v), 0);
            assert_string_equal(v, c[i].fetch_max);
            assert_int_equal(cs_source_kafka_prop(src, h, "message.max.bytes", v, sizeof v), 0);
            assert_string_equal(v, c[i].msg_max);
        }
        assert_int_equal(cs_source_kafka_prop(src, 2, "message.max.bytes", v, sizeof v), -1);
        cs_source_destroy(src);
    }
    cs_engine_destroy(e);
    rd_kafka_destroy(mock);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(regression_stop_before_first_assignment_aborted),
        cmocka_unit_test(no_fault),
        cmocka_unit_test(broker_down_and_up),
        cmocka_unit_test(injected_fetch_errors),
        cmocka_unit_test(leader_and_coordinator_move),
        cmocka_unit_test(no_fault_2_handles),
        cmocka_unit_test(broker_down_and_up_2_handles),
        cmocka_unit_test(injected_fetch_errors_2_handles),
        cmocka_unit_test(leader_and_coordinator_move_2_handles),
        cmocka_unit_test(moved_between_handles),
        cmocka_unit_test(regression_revoked_prefetch_stranded),
        cmocka_unit_test(live_2_handles),
        cmocka_unit_test(live_broker_down_and_up_2_handles),
        cmocka_unit_test(live_injected_fetch_errors_2_handles),
        cmocka_unit_test(auto_fetch_threads),
        cmocka_unit_test(consumer_message_max_bytes),
        cmocka_unit_test(wake_after_full_queue),
        cmocka_unit_test(wake_live_mode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
