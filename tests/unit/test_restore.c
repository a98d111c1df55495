/* test_restore.c — crashes, snapshots and replay at the engine level: a run that "crashes" at
 * random barriers (losing everything not flushed), restores each partition from its last
 * snapshot and re-reads up to the last flushed offset without counting, must produce exactly
 * the counts of one uninterrupted run — every §4 counter, not only the event totals.
 *
 * What a flush is here: at a barrier the worker's deltas are taken and added to `redis`, and
 * each partition's progress (next offset, applied watermark) is recorded, as the daemon writes
 * them atomically; snapshots are taken at some barriers and "written" in the same step. A crash
 * throws away the engine with every delta since the last barrier. */
#include <setjmp.h>
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
#include "counts.h"
#include "engine.h"
#include "gen.h"
#include "sessionize.h"
#include "snapshot.h"

#define NP_MAX 8

typedef struct saved { /* what "Redis" holds per partition */
    int64_t off;       /* next offset counted, -1 none */
    int64_t wm;
    char *snap;
    size_t snap_len;
} saved;

typedef struct run {
    const cs_gen_out *g;
    cs_engine *e;
    int ids[NP_MAX];
    size_t pos[NP_MAX];      /* next message index to feed per partition */
    saved sv[NP_MAX];
    cs_counts *redis;
    uint64_t replayed, restores, rebuilt;
} run;

static cs_ruleset *load_rules(void)
{
    char err[512];
    cs_ruleset *rs = cs_rules_load_file("data/model.yaml", err, sizeof err);
    if (!rs)
        fail_msg("rules: %s", err);
    return rs;
}

/* index of the first message of partition q with offset >= off */
static size_t index_of(const cs_gen_part *gp, int64_t off)
{
    size_t i = 0;
    while (i < gp->n && gp->msgs[i].offset < off)
        i++;
    return i;
}

/* A new process: restore every partition from what "Redis" holds. */
static void start(run *r)
{
    char err[512];
    r->e = cs_engine_new(load_rules(), 1, err, sizeof err);
    assert_non_null(r->e);
    for (int q = 0; q < r->g->nparts; q++) {
        saved *s = &r->sv[q];
        const cs_gen_part *gp = &r->g->parts[q];
        if (s->off < 0) { /* fresh */
            r->ids[q] = cs_engine_add_partition(r->e, 0);
            r->pos[q] = 0;
        } else if (s->snap) {
            cs_snap_info info;
            cs_pstate *st = cs_snapshot_read(s->snap, s->snap_len, cs_engine_rules(r->e),
                                             cs_engine_dicts(r->e), &info, err, sizeof err);
            if (!st)
                fail_msg("snapshot of partition %d rejected: %s", q, err);
            assert_true(info.next_offset <= s->off);
            r->ids[q] = cs_engine_add_partition_state(r->e, 0, st, info.next_offset, s->off,
                                                      s->wm);
            r->pos[q] = index_of(gp, info.next_offset);
            r->restores++;
        } else { /* offsets but no snapshot: rebuild from the start */
            r->ids[q] = cs_engine_add_partition_state(r->e, 0, NULL, -1, s->off, s->wm);
            r->pos[q] = 0;
            r->rebuilt++;
        }
        assert_true(r->ids[q] >= 0);
        if (r->pos[q] >= gp->n)
            cs_engine_set_part_state(r->e, r->ids[q], CS_PART_DONE);
    }
}

/* A barrier + flush: deltas to "Redis", progress recorded, snapshots if asked. */
static void flush(run *r, int snapshot)
{
    cs_worker *w = cs_engine_worker(r->e, 0);
    cs_agg *a = cs_worker_take_agg(w);
    cs_agg_foreach(a, cs_engine_rules(r->e), cs_engine_dicts(r->e), cs_counts_agg_cb, r->redis);
    cs_worker_give_agg(w, a);
    for (int q = 0; q < r->g->nparts; q++) {
        saved *s = &r->sv[q];
        int64_t off, wm;
        cs_worker_part_progress(w, r->ids[q], &off, &wm);
        if (off >= 0) {
            s->off = off;
            s->wm = wm;
        }
        if (snapshot) {
            char *buf;
            size_t len;
            cs_snap_info info;
            int rc = cs_worker_snapshot_part(w, r->ids[q], &buf, &len, &info);
            assert_true(rc == 0 || rc == 1);
            if (rc == 0) {
                assert_int_equal(info.next_offset, s->off); /* the same cut as the offsets */
                free(s->snap);
                s->snap = buf;
                s->snap_len = len;
            }
        }
    }
}

static void crash(run *r)
{
    cs_worker_stats st;
    cs_worker_stats_get(cs_engine_worker(r->e, 0), &st);
    r->replayed += st.replayed;
    cs_engine_destroy(r->e); /* everything since the last flush is gone */
    r->e = NULL;
}

/* Feeds every partition round-robin in `batch`-sized runs, ticking in between; a flush every
 * `per_flush` runs, a snapshot every `per_snap` flushes (0: never), and a crash at each of the
 * `crashes` run numbers. */
static cs_counts *run_with_crashes(const cs_gen_out *g, size_t batch, int per_flush, int per_snap,
                                   const int *crashes, int ncrashes, uint64_t *replayed)
{
    run r = {0};
    r.g = g;
    r.redis = cs_counts_new();
    for (int q = 0; q < g->nparts; q++)
        r.sv[q].off = -1;
    start(&r);
    int runs = 0, flushes = 0, next_crash = 0;
    for (;;) {
        int left = 0;
        for (int q = 0; q < g->nparts; q++) {
            const cs_gen_part *gp = &g->parts[q];
            if (r.pos[q] >= gp->n)
                continue;
            size_t n = gp->n - r.pos[q] < batch ? gp->n - r.pos[q] : batch;
            cs_worker_process(cs_engine_worker(r.e, 0), r.ids[q], gp->msgs + r.pos[q], n);
            r.pos[q] += n;
            if (r.pos[q] == gp->n)
                cs_engine_set_part_state(r.e, r.ids[q], CS_PART_DONE);
            cs_worker_tick(cs_engine_worker(r.e, 0));
            left += r.pos[q] < gp->n;
            runs++;
            if (runs % per_flush == 0) {
                flushes++;
                flush(&r, per_snap > 0 && flushes % per_snap == 0);
            }
            if (next_crash < ncrashes && runs == crashes[next_crash]) {
                next_crash++;
                crash(&r);
                start(&r);
            }
        }
        if (!left)
            break;
    }
    /* the end of a drain */
    cs_worker *w = cs_engine_worker(r.e, 0);
    cs_worker_finish_replays(w);
    cs_engine_set_watermark(r.e, cs_engine_final_watermark(r.e));
    cs_worker_tick(w);
    cs_worker_end_all(w, CS_END_DRAIN);
    flush(&r, 0);
    crash(&r);
    fprintf(stderr, "   %d crash(es), %llu restores from snapshots, %llu rebuilds from offset 0, "
                    "%llu messages replayed\n",
            ncrashes, (unsigned long long)r.restores, (unsigned long long)r.rebuilt,
            (unsigned long long)r.replayed);
    if (replayed)
        *replayed = r.replayed;
    for (int q = 0; q < g->nparts; q++)
        free(r.sv[q].snap);
    return r.redis;
}

static cs_gen_out *gen(uint64_t seed, uint64_t n)
{
    cs_gen_conf c;
    cs_gen_defaults(&c);
    c.nevents = n;
    c.ncustomers = 6000;
    c.nparts = 4;
    c.span_ms = 10LL * 86400000; /* sessions, max_duration and the 2-day ttl all fire */
    c.seed = seed;
    return cs_gen_run(&c);
}

static void expect_same(const cs_counts *want, const cs_counts *got)
{
    long d = cs_counts_diff(want, "uninterrupted", got, "with crashes", stderr, 30);
    assert_true(cs_counts_get(want, "ended_by", "gap") > 0);
    assert_true(cs_counts_get(want, "ended_by", "max_duration") > 0);
    assert_true(cs_counts_get(want, "events", "_late") > 0);
    assert_int_equal(d, 0);
}

/* One stream run twice with the same batches and flushes: uninterrupted, then crashing at
 * `crashes` with a snapshot every `per_snap` flushes; every counter must agree. Returns the
 * messages replayed. */
static uint64_t check_crashes(uint64_t seed, uint64_t nevents, size_t batch, int per_flush,
                              int per_snap, const int *crashes, int ncrashes)
{
    cs_gen_out *g = gen(seed, nevents);
    cs_counts *want = run_with_crashes(g, batch, per_flush, 0, NULL, 0, NULL);
    uint64_t replayed = 0;
    cs_counts *got = run_with_crashes(g, batch, per_flush, per_snap, crashes, ncrashes,
                                      &replayed);
    expect_same(want, got);
    cs_counts_free(want);
    cs_counts_free(got);
    cs_gen_free(g);
    return replayed;
}

/* Crashes between snapshots: restore + replay reproduce every counter. */
static void crash_restore_replay_exact(void **st)
{
    int crashes[] = {40, 41, 97, 230, 231, 232, 400};
    assert_true(check_crashes(31, 150000, 256, 3, 4, crashes, 7) > 0); /* replay really ran */
}

/* A snapshot every flush: restores at exactly the counted offset (nothing to replay but the
 * earlier owner's last expiry). */
static void crash_snapshot_every_flush(void **st)
{
    int crashes[] = {11, 50, 51, 300, 301};
    check_crashes(32, 100000, 100, 2, 1, crashes, 5);
}

/* No snapshot ever: every restart rebuilds from offset 0, uncounted up to the flushed offset. */
static void crash_without_snapshots_rebuilds(void **st)
{
    int crashes[] = {30, 150, 151};
    assert_true(check_crashes(33, 80000, 128, 2, 0, crashes, 3) > 0);
}

/* Crash after crash right after restarting, a flush after every run: each restart restores
 * from a snapshot older than the counted offset and replays, and the flushes in between carry
 * little more than expiry (the applied watermark moving), which the replay's final uncounted
 * advance must reproduce exactly. */
static void crash_after_expiry_only_flushes(void **st)
{
    int crashes[] = {5, 6, 7, 8, 60};
    check_crashes(34, 60000, 512, 1, 2, crashes, 5);
}

/* The unkeyed-producer detector: a keyed stream (every customer on one partition) counts
 * nothing; the same messages dealt round-robin over the partitions (an unkeyed producer) count
 * customers seen on more than one partition. */
static uint64_t multi_partition_count(const cs_gen_out *g, int unkeyed)
{
    char err[512];
    cs_engine *e = cs_engine_new(load_rules(), 1, err, sizeof err);
    assert_non_null(e);
    int ids[NP_MAX];
    for (int q = 0; q < g->nparts; q++) {
        ids[q] = cs_engine_add_partition(e, 0);
        cs_engine_set_part_label(e, ids[q], (uint16_t)(100 + q));
    }
    cs_worker *w = cs_engine_worker(e, 0);
    for (int q = 0; q < g->nparts; q++) {
        const cs_gen_part *gp = &g->parts[q];
        for (size_t i = 0; i < gp->n; i++) {
            int to = unkeyed ? (int)((i + (size_t)q) % (size_t)g->nparts) : q;
            cs_msg m = gp->msgs[i];
            m.offset = (int64_t)i; /* offsets only need to grow per partition here */
            cs_worker_process(w, ids[to], &m, 1);
        }
    }
    cs_worker_stats st;
    cs_worker_stats_get(w, &st);
    cs_engine_destroy(e);
    return st.multi_partition;
}

static void unkeyed_customers_detected(void **st)
{
    cs_gen_out *g = gen(35, 40000);
    uint64_t keyed = multi_partition_count(g, 0), unkeyed = multi_partition_count(g, 1);
    fprintf(stderr, "   customers seen on another partition: keyed %llu, unkeyed %llu\n",
            (unsigned long long)keyed, (unsigned long long)unkeyed);
    assert_int_equal(keyed, 0);
    assert_true(unkeyed > 1000);
    cs_gen_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(crash_restore_replay_exact),
        cmocka_unit_test(crash_snapshot_every_flush),
        cmocka_unit_test(crash_without_snapshots_rebuilds),
        cmocka_unit_test(crash_after_expiry_only_flushes),
        cmocka_unit_test(unkeyed_customers_detected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
