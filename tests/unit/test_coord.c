/* test_coord.c — the delivery protocol (pipeline/coord.c) driven directly, against librdkafka's
 * mock cluster (a real broker cannot fail on cue) and a real redis-server of the test's own.
 * Every case ends by comparing every §4 count in Redis with the reference model's counts of
 * the same generated stream (loadgen/refmodel.c): nothing lost, nothing counted twice.
 *
 *  - coord_drain_exact: a drain, the baseline; its clean stop removes its meta seq field.
 *  - coord_totals_kept_every_minute: regression; the metrics' running totals keep no per-minute
 *    bucket (they kept one for every minute of event time ever counted).
 *  - coord_lost_reply_after_exec: the connection drops after a flush script ran but before its
 *    reply was read; the retry finds the flush applied (meta seq) and writes nothing twice.
 *  - coord_fenced_by_another_writer: Redis suddenly holds an offset this instance did not write;
 *    the next flush is fenced, the coordinator stops writing (not one more count) and asks to
 *    be re-executed.
 *  - coord_redis_lost_state_fail / _rebuild: Redis comes back empty after a flush was applied;
 *    with redis_state_lost=fail the coordinator stops (fatal, nothing written), with rebuild it
 *    asks to be re-executed and the next run counts everything again from Kafka, exactly.
 *  - coord_rebalance_mid_flush: two coordinators share a consumer group; the second joins while
 *    Redis is stopped (the first one's flushes are in flight and failing), so its revoke cannot
 *    write the revoked partitions' final counts; after Redis is back and both stop, a third
 *    drains what is left and every count is exact.
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "aggregate.h"
#include "classify.h"
#include "clickstage.h"
#include "coord.h"
#include "counts.h"
#include "gen.h"
#include "log.h"
#include "redis.h"
#include "engine_run.h"
#include "rkeys.h"
#include "sink.h"
#include "testsrv.h"

#define TOPIC "clicks"
#define JOURNEY "model"

static const char *const dim_paths[] = {NULL, "properties.persona"};
static ts_redis srv;

/* ---- the stream and what it must count ------------------------------------------------------ */

static cs_gen_out *stream(uint64_t seed, uint64_t nevents)
{
    cs_gen_conf gc;
    cs_gen_defaults(&gc);
    gc.nparts = 4;
    gc.nevents = nevents; /* the mock keeps ~5 MB per partition log */
    gc.ncustomers = 3000;
    gc.too_large_frac = 0; /* the mock's default message.max.bytes */
    gc.skew_frac = 0.001;
    gc.seed = seed;
    return cs_gen_run(&gc);
}

static cs_counts *ref_of(const cs_gen_out *g)
{
    cs_counts *c = cs_test_run_model(g, "data/model.yaml", dim_paths);
    assert_non_null(c);
    return c;
}

/* the §4 count hashes (not the delivery state: offsets, wm, meta, snap:) */
static int count_hash(const char *h, size_t n)
{
    static const char *const plain[] = {CS_RK_ACTIVE, CS_RK_REACHED, CS_RK_TRANSITIONS,
                                         CS_RK_ENDED, CS_RK_ENDED_BY, CS_RK_SESSIONS,
                                         CS_RK_EVENTS, CS_RK_INVALID, CS_RK_CUSTOMERS};
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
        if (strlen(plain[i]) == n && memcmp(plain[i], h, n) == 0)
            return 1;
    return (n > 3 && memcmp(h, CS_RK_BY, 3) == 0) || (n > 7 && memcmp(h, CS_RK_MINUTE, 7) == 0) ||
           (n == strlen(CS_RK_TRANSITION_TIME) && memcmp(h, CS_RK_TRANSITION_TIME, n) == 0) ||
           (n > 8 && memcmp(h, CS_RK_TIME_TO, 8) == 0) ||
           (n > 17 && memcmp(h, CS_RK_CUSTOMER_TIME_TO, 17) == 0);
}

static cs_counts *redis_counts(const char *prefix)
{
    char url[64], err[512], pat[CS_RKEYS_MAX * 2];
    cs_redis_opts o = {ts_redis_url(&srv, url, sizeof url), 2000, 10000};
    cs_redis *r = cs_redis_new(&o, err, sizeof err);
    assert_non_null(r);
    cs_rk_pattern(pat, sizeof pat, prefix, JOURNEY, "*");
    cs_counts *c = cs_counts_new();
    char cursor[32] = "0";
    do {
        const char *sa[] = {"SCAN", cursor, "MATCH", pat, "COUNT", "1000"};
        redisReply *rep = cs_redis_cmd(r, 6, sa, NULL, err, sizeof err);
        assert_non_null(rep);
        assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
        snprintf(cursor, sizeof cursor, "%s", rep->element[0]->str);
        for (size_t i = 0; i < rep->element[1]->elements; i++) {
            const char *key = rep->element[1]->element[i]->str, *j, *h;
            size_t jl, hl;
            if (cs_rk_split(prefix, key, strlen(key), &j, &jl, &h, &hl) < 0 || !count_hash(h, hl))
                continue;
            char hash[256];
            snprintf(hash, sizeof hash, "%.*s", (int)hl, h);
            const char *ha[] = {"HGETALL", key};
            redisReply *hr = cs_redis_cmd(r, 2, ha, NULL, err, sizeof err);
            assert_non_null(hr);
            for (size_t k = 0; hr->type == REDIS_REPLY_ARRAY && k + 1 < hr->elements; k += 2)
                cs_counts_add(c, hash, hr->element[k]->str, atoll(hr->element[k + 1]->str));
            freeReplyObject(hr);
        }
        freeReplyObject(rep);
    } while (strcmp(cursor, "0") != 0);
    cs_redis_free(r);
    return c;
}

static void assert_exact(const cs_gen_out *g, const char *prefix, const char *what)
{
    cs_counts *want = ref_of(g), *got = redis_counts(prefix);
    long d = cs_counts_diff(want, "ref", got, "redis", stderr,
                            getenv("CS_DIFF_MAX") ? atol(getenv("CS_DIFF_MAX")) : 30);
    fprintf(stderr, "   %s: %llu messages, %ld counters, %ld differences\n", what,
            (unsigned long long)g->nmsgs, cs_counts_size(want), d);
    assert_int_equal(cs_counts_check_tt(got, stderr, 10), 0); /* SPEC §4.1 invariants in Redis */
    assert_true(cs_counts_get(want, "transition_time", "_entry>awareness:0") > 0);
    assert_true(cs_counts_size(want) > 1000);
    assert_true(cs_counts_get(want, "invalid", "future_time") > 0);
    assert_int_equal(d, 0);
    cs_counts_free(want);
    cs_counts_free(got);
}

/* ---- coordinators ---------------------------------------------------------------------------- */

typedef struct node {
    cs_engine *e;
    cs_coord *c;
} node;

static volatile sig_atomic_t g_stop_flag;

static node start(const char *bootstraps, const char *prefix, const char *group,
                  const char *instance, int drain, int state_lost)
{
    static char props[300];
    snprintf(props, sizeof props, "fetch.max.bytes=8192,message.max.bytes=8192,"
             "max.partition.fetch.bytes=2048,session.timeout.ms=6000,max.poll.interval.ms=7000,"
             "heartbeat.interval.ms=500%s", getenv("CS_COORD_DEBUG") ? ",debug=cgrp" : "");
    char err[512], url[64];
    node n;
    cs_ruleset *rs = cs_rules_load_file("data/model.yaml", err, sizeof err);
    assert_non_null(rs);
    n.e = cs_engine_new(rs, 2, err, sizeof err);
    assert_non_null(n.e);
    cs_coord_conf cc = {
        .brokers = bootstraps, .group = group, .topics = TOPIC, .client_id = instance,
        /* small fetches: a drain of the test stream takes a few hundred round trips, long
         * enough for faults to land mid-stream */
        .kafka_props = props,
        .earliest = 1, .drain = drain, .batch_size = 500,
        .redis_url = ts_redis_url(&srv, url, sizeof url), .prefix = prefix,
        .instance_id = instance, .minute_ttl_ms = 48LL * 3600000, .flush_interval_ms = 30,
        .snapshot_interval_ms = 200, .shutdown_timeout_ms = 2000, .redis_outage_pause_ms = 0,
        .redis_timeout_ms = 500, .stop_flag = &g_stop_flag,
        .redis_state_lost = state_lost};
    n.c = cs_coord_new(n.e, &cc, err, sizeof err);
    if (!n.c)
        fail_msg("cs_coord_new: %s", err);
    if (cs_coord_start(n.c, err, sizeof err) != 0)
        fail_msg("cs_coord_start: %s", err);
    return n;
}

/* Stops (the sink's stats of the run into *ss, if given) and destroys. */
static int stop_stats(node *n, cs_sink_stats *ss)
{
    int st = cs_coord_stop(n->c);
    if (ss)
        cs_sink_stats_get(cs_coord_test_sink(n->c), ss);
    cs_coord_destroy(n->c);
    cs_engine_destroy(n->e);
    n->c = NULL;
    return st;
}

static int stop(node *n)
{
    return stop_stats(n, NULL);
}

static cs_metrics *metrics_of(node *n)
{
    static cs_metrics m;
    cs_metrics_read(cs_coord_metrics(n->c), &m);
    return &m;
}

/* Steps until the status leaves RUNNING or `ms` pass. */
static int run_until_done(node *n, int64_t ms)
{
    int64_t end = ts_now_ms() + ms;
    int st;
    while ((st = cs_coord_step(n->c, 20)) == CS_COORD_RUNNING && ts_now_ms() < end) {
    }
    return st;
}

/* Steps until at least `flushes` flushes were applied (and some messages counted). */
static void run_until_flushes(node *n, uint64_t flushes)
{
    int64_t end = ts_now_ms() + 30000;
    while (ts_now_ms() < end) {
        assert_int_equal(cs_coord_step(n->c, 20), CS_COORD_RUNNING);
        cs_metrics *m = metrics_of(n);
        if (m->flushes_ok >= flushes && m->messages_total > 0)
            return;
    }
    fail_msg("no flush applied in 30 s");
}

static void redis_do(const char *fmt, ...)
{
    redisContext *c = ts_redis_ctl(&srv);
    assert_non_null(c);
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    redisFree(c);
}

static long long redis_int(const char *fmt, ...)
{
    redisContext *c = ts_redis_ctl(&srv);
    assert_non_null(c);
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer
                  : r->type == REDIS_REPLY_STRING ? atoll(r->str)
                                                  : 0;
    freeReplyObject(r);
    redisFree(c);
    return v;
}

/* ---- the cases ------------------------------------------------------------------------------- */

static void coord_drain_exact(void **st)
{
    cs_gen_out *g = stream(1, 40000);
    rd_kafka_mock_cluster_t *mc;
    rd_kafka_t *prod = ts_mock_with_stream(3, TOPIC, g, &mc);
    assert_non_null(prod);
    node n = start(rd_kafka_mock_cluster_bootstraps(mc), "c1", "g1", "i1", 1, 0);
    assert_int_equal(run_until_done(&n, 60000), CS_COORD_DRAINED);
    assert_int_equal(redis_int("HEXISTS c1:{" JOURNEY "}:meta seq:i1"), 1);
    assert_int_equal(stop(&n), CS_COORD_STOPPED);
    assert_exact(g, "c1", "drain");
    /* regression (issue 12): a clean stop leaves no seq:<instance> field in meta (every
     * process run with another instance id left one for ever) */
    assert_int_equal(redis_int("HEXISTS c1:{" JOURNEY "}:meta seq:i1"), 0);
    /* the offsets in Redis are each partition's end */
    for (int q = 0; q < g->nparts; q++)
        assert_int_equal(redis_int("HGET c1:{" JOURNEY "}:offsets " TOPIC "/%d", q),
                         (long long)g->parts[q].n);
    rd_kafka_destroy(prod);
    cs_gen_free(g);
}

/* Regression (issue 12's soak): the running totals behind the metrics merged every flush's
 * per-minute buckets and never dropped one, so a long-running process kept a 264-byte bucket for
 * every minute of event time it had ever counted (6 days of stream: ~8,600). The stream here
 * covers 6 days; the totals must hold none, while Redis got every minute. */
static void coord_totals_kept_every_minute(void **st)
{
    cs_gen_out *g = stream(11, 20000);
    rd_kafka_mock_cluster_t *mc;
    rd_kafka_t *prod = ts_mock_with_stream(3, TOPIC, g, &mc);
    node n = start(rd_kafka_mock_cluster_bootstraps(mc), "c11", "g11", "i11", 1, 0);
    assert_int_equal(run_until_done(&n, 60000), CS_COORD_DRAINED);
    uint32_t kept = cs_coord_test_totals_minutes(n.c);
    assert_int_equal(stop(&n), CS_COORD_STOPPED);
    fprintf(stderr, "   minute buckets in the running totals after a 6-day stream: %u\n", kept);
    assert_int_equal(kept, 0);
    assert_exact(g, "c11", "drain");
    rd_kafka_destroy(prod);
    cs_gen_free(g);
}

static void coord_lost_reply_after_exec(void **st)
{
    cs_gen_out *g = stream(2, 40000);
    rd_kafka_mock_cluster_t *mc;
    rd_kafka_t *prod = ts_mock_with_stream(3, TOPIC, g, &mc);
    node n = start(rd_kafka_mock_cluster_bootstraps(mc), "c2", "g2", "i2", 1, 0);
    run_until_flushes(&n, 2);
    cs_sink_test_fault(cs_coord_test_sink(n.c), CS_SINK_FAULT_AFTER_EXEC);
    assert_int_equal(run_until_done(&n, 60000), CS_COORD_DRAINED);
    cs_sink_stats ss;
    assert_int_equal(stop_stats(&n, &ss), CS_COORD_STOPPED);
    assert_int_equal(ss.resolved_ambiguous, 1); /* the retry found it applied */
    assert_exact(g, "c2", "lost reply after the script ran");
    rd_kafka_destroy(prod);
    cs_gen_free(g);
}

static void coord_fenced_by_another_writer(void **st)
{
    cs_gen_out *g = stream(3, 40000);
    rd_kafka_mock_cluster_t *mc;
    rd_kafka_t *prod = ts_mock_with_stream(3, TOPIC, g, &mc);
    node n = start(rd_kafka_mock_cluster_bootstraps(mc), "c3", "g3", "i3", 1, 0);
    run_until_flushes(&n, 2);
    redis_do("HSET c3:{" JOURNEY "}:offsets " TOPIC "/0 999999");
    long long before = redis_int("HGET c3:{" JOURNEY "}:sessions started");
    assert_int_equal(run_until_done(&n, 30000), CS_COORD_FENCED);
    assert_int_equal(metrics_of(&n)->fenced, 1);
    assert_int_equal(stop(&n), CS_COORD_STOPPED_FENCED);
    /* not one count written after the fence, not even by the stop */
    assert_int_equal(redis_int("HGET c3:{" JOURNEY "}:sessions started"), before);
    assert_int_equal(redis_int("HGET c3:{" JOURNEY "}:offsets " TOPIC "/0"), 999999);
    rd_kafka_destroy(prod);
    cs_gen_free(g);
}

static void lost_state(int policy)
{
    cs_gen_out *g = stream(4 + (uint64_t)policy, 40000);
    rd_kafka_mock_cluster_t *mc;
    rd_kafka_t *prod = ts_mock_with_stream(3, TOPIC, g, &mc);
    const char *bs = rd_kafka_mock_cluster_bootstraps(mc);
    const char *prefix = policy == CS_STATE_LOST_FAIL ? "c4" : "c5";
    const char *group = policy == CS_STATE_LOST_FAIL ? "g4" : "g5";
    node n = start(bs, prefix, group, "i4", 1, policy);
    run_until_flushes(&n, 2);
    redis_do("FLUSHALL");
    int st = run_until_done(&n, 30000);
    cs_metrics *m = metrics_of(&n);
    assert_int_equal(m->state_lost, 1);
    if (policy == CS_STATE_LOST_FAIL) {
        assert_int_equal(st, CS_COORD_FATAL);
        assert_int_equal(stop(&n), CS_COORD_STOPPED_FATAL);
        assert_int_equal(redis_int("DBSIZE"), 0); /* nothing written after the loss */
    } else {
        assert_int_equal(st, CS_COORD_FENCED);
        assert_int_equal(stop(&n), CS_COORD_STOPPED_FENCED);
        /* the re-executed process: Redis has no offsets, the group committed some: every
         * partition is counted again from its oldest retained message */
        node again = start(bs, prefix, group, "i4", 1, policy);
        assert_int_equal(run_until_done(&again, 60000), CS_COORD_DRAINED);
        assert_int_equal(metrics_of(&again)->state_lost, 4);
        assert_int_equal(stop(&again), CS_COORD_STOPPED);
        assert_exact(g, prefix, "Redis lost its state, rebuilt");
    }
    rd_kafka_destroy(prod);
    cs_gen_free(g);
}

static void coord_redis_lost_state_fail(void **st) { lost_state(CS_STATE_LOST_FAIL); }
static void coord_redis_lost_state_rebuild(void **st) { lost_state(CS_STATE_LOST_REBUILD); }

/* A node's control thread: steps until told to stop (each coordinator has its own: an
 * assignment blocks its control thread while Redis cannot be read, by design). */
typedef struct stepper {
    node *n;
    char name[16];
    _Atomic int stop;
    _Atomic int status;
    pthread_t th;
} stepper;

static void *step_loop(void *arg)
{
    stepper *s = arg;
    pthread_setname_np(pthread_self(), s->name);
    int st = CS_COORD_RUNNING;
    while (!atomic_load(&s->stop) && (st = cs_coord_step(s->n->c, 10)) == CS_COORD_RUNNING) {
    }
    atomic_store(&s->status, st);
    return NULL;
}

static void step_start(stepper *s, node *n, const char *name)
{
    s->n = n;
    snprintf(s->name, sizeof s->name, "%s", name);
    atomic_init(&s->stop, 0);
    atomic_init(&s->status, CS_COORD_RUNNING);
    pthread_create(&s->th, NULL, step_loop, s);
}

static int step_join(stepper *s)
{
    atomic_store(&s->stop, 1);
    pthread_join(s->th, NULL);
    return atomic_load(&s->status);
}

static int all_counted(const cs_gen_out *g, const char *prefix)
{
    for (int q = 0; q < g->nparts; q++)
        if (redis_int("HGET %s:{" JOURNEY "}:offsets " TOPIC "/%d", prefix, q) !=
            (long long)g->parts[q].n)
            return 0;
    return 1;
}

static void coord_rebalance_mid_flush(void **st)
{
    if (getenv("CS_COORD_DEBUG"))
        cs_log_setup(CS_LOG_DEBUG, CS_LOG_FORMAT_TEXT, "test_coord");
    cs_gen_out *g = stream(6, 40000);
    rd_kafka_mock_cluster_t *mc;
    rd_kafka_t *prod = ts_mock_with_stream(3, TOPIC, g, &mc);
    const char *bs = rd_kafka_mock_cluster_bootstraps(mc);
    node a = start(bs, "c6", "g6", "a", 0, 0);
    run_until_flushes(&a, 3);
    assert_int_equal(metrics_of(&a)->npartitions, 4);
    stepper sa, sb;
    step_start(&sa, &a, "node-a");
    /* Redis stops answering: a's flushes are in flight and fail; b joins meanwhile, so a's
     * revoke cannot write the revoked partitions' final counts (it gives up after
     * shutdown_timeout and the new owner re-reads from the last counted offsets), and b's
     * assignment waits for Redis to tell it where the partitions stand */
    kill(srv.pid, SIGSTOP);
    node b = start(bs, "c6", "g6", "b", 0, 0);
    step_start(&sb, &b, "node-b");
    int64_t end = ts_now_ms() + 30000;
    while (ts_now_ms() < end && atomic_load(&sa.status) == CS_COORD_RUNNING)
        ts_sleep_ms(20);
    ts_sleep_ms(500); /* a little longer: b's assignment retries against a stopped Redis */
    kill(srv.pid, SIGCONT);
    /* a's revoke could not write the revoked partitions' last counts, which are merged with
     * its other partitions' in the buffers still to be written: it must write nothing more
     * (fenced) and rejoin (the daemon re-executes itself) */
    assert_int_equal(step_join(&sa), CS_COORD_FENCED);
    assert_int_equal(stop(&a), CS_COORD_STOPPED_FENCED);
    assert_int_equal(metrics_of(&b)->fenced, 0);
    node a2 = start(bs, "c6", "g6", "a", 0, 0);
    step_start(&sa, &a2, "node-a2");
    a = a2;
    /* both run until everything is counted (every partition's offset at its end) */
    end = ts_now_ms() + 60000;
    while (ts_now_ms() < end && !all_counted(g, "c6"))
        ts_sleep_ms(50);
    assert_int_equal(step_join(&sa), CS_COORD_RUNNING);
    assert_int_equal(step_join(&sb), CS_COORD_RUNNING);
    assert_true(all_counted(g, "c6"));
    assert_true(metrics_of(&b)->partitions_assigned > 0);
    /* graceful stops: open sessions go to Redis as snapshots */
    assert_int_equal(stop(&b), CS_COORD_STOPPED);
    assert_int_equal(stop(&a), CS_COORD_STOPPED);
    /* a drain restores them and ends them: exact, as if one process had drained it all */
    node c = start(bs, "c6", "g6-drain", "c", 1, 0);
    assert_int_equal(run_until_done(&c, 60000), CS_COORD_DRAINED);
    assert_true(metrics_of(&c)->restores > 0);
    assert_int_equal(stop(&c), CS_COORD_STOPPED);
    assert_exact(g, "c6", "rebalance while Redis was stopped");
    rd_kafka_destroy(prod);
    cs_gen_free(g);
}

static void named_log(void *o, int level, const char *line)
{
    char name[16] = "?";
    pthread_getname_np(pthread_self(), name, sizeof name);
    fprintf(stderr, "[%s] %s\n", name, line);
}

/* Regression (found by the Kafka security tests): an assignment retries Redis until it answers,
 * inside librdkafka's rebalance callback on the control thread; a stop request (SIGTERM) must
 * end that wait instead of being held up by it. */
static _Atomic int g_waits; /* "cannot read its state from Redis" lines */

static void count_waits(void *o, int level, const char *line)
{
    if (strstr(line, "cannot read its state from Redis"))
        g_waits++;
}

static void *raise_stop_later(void *arg)
{
    /* once the assignment has been waiting for Redis for a while */
    int64_t t0 = ts_now_ms();
    while (g_waits < 2 && ts_now_ms() - t0 < 20000)
        ts_sleep_ms(10);
    g_stop_flag = 1;
    return NULL;
}

static void coord_stop_while_assignment_waits_for_redis(void **st)
{
    cs_gen_out *g = stream(7, 4000);
    rd_kafka_mock_cluster_t *mc;
    rd_kafka_t *prod = ts_mock_with_stream(1, TOPIC, g, &mc);
    kill(srv.pid, SIGSTOP); /* Redis cannot say where the partitions stand */
    node n = start(rd_kafka_mock_cluster_bootstraps(mc), "c7", "g7", "i7", 0, 0);
    pthread_t th;
    g_stop_flag = 0;
    g_waits = 0;
    cs_log_set_sink(count_waits, NULL);
    pthread_create(&th, NULL, raise_stop_later, NULL);
    int64_t stop_at = 0;
    for (int64_t t0 = ts_now_ms(); ts_now_ms() - t0 < 30000;) {
        assert_int_equal(cs_coord_step(n.c, 20), CS_COORD_RUNNING);
        if (g_stop_flag && !stop_at)
            stop_at = ts_now_ms();
        if (g_stop_flag)
            break;
    }
    int64_t after_stop = ts_now_ms() - stop_at;
    pthread_join(th, NULL);
    cs_log_set_sink(NULL, NULL);
    kill(srv.pid, SIGCONT);
    assert_true(g_waits >= 2); /* it did wait for Redis inside the assignment */
    /* and the step serving it came back within one retry of the stop (<= 5 s backoff + 0.5 s) */
    assert_true(after_stop < 6000);
    assert_int_equal(metrics_of(&n)->npartitions, 0);
    assert_int_equal(stop(&n), CS_COORD_STOPPED);
    g_stop_flag = 0;
    rd_kafka_destroy(prod);
    cs_gen_free(g);
}

static int group_setup(void **st)
{
    if (getenv("CS_COORD_DEBUG"))
        cs_log_set_sink(named_log, NULL);
    cs_log_setup(CS_LOG_WARN, CS_LOG_FORMAT_TEXT, "test_coord");
    return ts_redis_setup(&srv, "coord");
}

static int group_teardown(void **st)
{
    ts_redis_teardown(&srv);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(coord_drain_exact),
        cmocka_unit_test(coord_totals_kept_every_minute),
        cmocka_unit_test(coord_lost_reply_after_exec),
        cmocka_unit_test(coord_fenced_by_another_writer),
        cmocka_unit_test(coord_redis_lost_state_fail),
        cmocka_unit_test(coord_redis_lost_state_rebuild),
        cmocka_unit_test(coord_rebalance_mid_flush),
        cmocka_unit_test(coord_stop_while_assignment_waits_for_redis),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
