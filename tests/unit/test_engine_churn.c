/* test_engine_churn.c — weeks of partition churn in one process (issue 12): 200,000 assignments
 * and revocations against one engine, while the partitions of a generated stream count it and
 * move between workers through snapshots as a rebalance moves them.
 *
 * It checks what a process that runs for weeks needs:
 *  - no lifetime cap on assignments (the engine used to hand out a new id per assignment and
 *    refused the 65,537th);
 *  - the per-tick cost follows the partitions assigned now: the slot high-water mark every tick
 *    loops to stays at the most partitions assigned at once (structural), and the median time
 *    of a tick over the last 4,000 assignments is within 3x of the one after 20,000 (timed;
 *    medians of thousands of ticks, so a loaded machine does not move them much; the engine
 *    that never reused ids looped over 10x more slots at the end than at 10 %);
 *  - memory stays flat: the heap in use after 200,000 assignments is the one after 100,000 (the
 *    stream has ended by then, at about 80,000: from there on only churn and moves change the
 *    heap; 100,000 assignments that leaked one allocation each would add >= 1.6 MB);
 *  - counts stay exact: the stream's counts equal the reference model's. */
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "aggregate.h"
#include "classify.h"
#include "clickstage.h"
#include "counts.h"
#include "engine.h"
#include "gen.h"
#include "refmodel.h"
#include "sessionize.h"
#include "snapshot.h"

#if defined(__SANITIZE_ADDRESS__)
#define CS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CS_ASAN 1
#endif
#endif
#ifdef CS_ASAN
#include <sanitizer/allocator_interface.h>
static size_t malloc_in_use(void) { return __sanitizer_get_current_allocated_bytes(); }
#else
static size_t malloc_in_use(void)
{
    struct mallinfo2 mi = mallinfo2(); /* walks every arena: once */
    return mi.uordblks + mi.hblkhd;
}
#endif
/* the pools' first chunks are mapped outside malloc (sessionize.c POOL_MAPPED_CHUNKS): a leaked
 * partition state shows there */
static size_t heap_in_use(void) { return malloc_in_use() + (size_t)cs_pstate_mapped_bytes(); }

#define ASSIGNMENTS 200000
#define STREAM_PARTS 8
#define TICK_WINDOW 4000 /* ticks timed early (from 10 %) and late (the last ones) */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int64_t median(int64_t *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_i64);
    return v[n / 2];
}

static const char *const dim_paths[] = {NULL, "properties.persona"};

static cs_ruleset *rules(void)
{
    char err[512];
    cs_ruleset *rs = cs_rules_load_file("data/model.yaml", err, sizeof err);
    if (!rs)
        fail_msg("rules: %s", err);
    return rs;
}

/* every worker's deltas into "Redis" (what a flush does) */
static void flush(cs_engine *e, cs_counts *redis)
{
    for (int w = 0; w < cs_engine_nworkers(e); w++) {
        cs_worker *wk = cs_engine_worker(e, w);
        cs_agg *a = cs_worker_take_agg(wk);
        cs_agg_foreach(a, cs_engine_rules(e), cs_engine_dicts(e), cs_counts_agg_cb, redis);
        cs_worker_give_agg(wk, a);
    }
}

/* A revoke and an assignment elsewhere, as the daemon does them: the counts up to now are
 * flushed, the partition is snapshotted at that cut and removed; the new owner restores the
 * snapshot and continues from its offset (nothing to replay). */
static int move(cs_engine *e, int id, int to, cs_counts *redis)
{
    char err[256];
    int from = cs_engine_part_owner(e, id);
    flush(e, redis);
    char *buf = NULL;
    size_t len = 0;
    cs_snap_info info;
    int64_t off, wm;
    cs_worker_part_progress(cs_engine_worker(e, from), id, &off, &wm);
    int rc = cs_worker_snapshot_part(cs_engine_worker(e, from), id, &buf, &len, &info);
    cs_engine_remove_partition(e, id);
    cs_pstate *st = NULL;
    if (rc == 0) {
        st = cs_snapshot_read(buf, len, cs_engine_rules(e), cs_engine_dicts(e), &info, err,
                              sizeof err);
        if (!st)
            fail_msg("snapshot: %s", err);
    }
    free(buf);
    int nid = rc == 0 ? cs_engine_add_partition_state(e, to, st, info.next_offset, off, wm)
                      : cs_engine_add_partition(e, to); /* nothing consumed yet */
    assert_true(nid >= 0);
    return nid;
}

static void churn_200k_assignments(void **state)
{
    (void)state;
    char err[512];
    cs_gen_conf gc;
    cs_gen_defaults(&gc);
    gc.nparts = STREAM_PARTS;
    gc.nevents = 40000;
    gc.ncustomers = 3000;
    gc.seed = 12;
    cs_gen_out *g = cs_gen_run(&gc);

    cs_engine *e = cs_engine_new(rules(), 2, err, sizeof err);
    assert_non_null(e);
    cs_counts *redis = cs_counts_new();
    int ids[STREAM_PARTS];
    size_t pos[STREAM_PARTS] = {0};
    for (int q = 0; q < STREAM_PARTS; q++)
        ids[q] = cs_engine_add_partition(e, q % 2);

    /* a small state to restore into the churning partitions: 5 customers with open sessions */
    cs_engine *src = cs_engine_new(rules(), 1, err, sizeof err);
    int sp = cs_engine_add_partition(src, 0);
    cs_worker_process(cs_engine_worker(src, 0), sp, g->parts[0].msgs, 5);
    char *small = NULL;
    size_t small_len = 0;
    cs_snap_info si;
    assert_int_equal(cs_worker_snapshot_part(cs_engine_worker(src, 0), sp, &small, &small_len, &si), 0);

    size_t heap_early = 0;
    int max_slots = 0;
    static int64_t tick_early[TICK_WINDOW], tick_late[TICK_WINDOW];
    uint64_t moves = 0;
    for (int i = 0; i < ASSIGNMENTS; i++) {
        /* a partition of another topic comes and goes: restored state, a tick, revoked */
        cs_pstate *st = cs_snapshot_read(small, small_len, cs_engine_rules(e), cs_engine_dicts(e),
                                         NULL, err, sizeof err);
        assert_non_null(st);
        int c = cs_engine_add_partition_state(e, i % 2, st, si.next_offset, si.next_offset,
                                              INT64_MIN);
        if (c < 0)
            fail_msg("assignment %d refused", i);
        int64_t t0 = now_ns();
        cs_worker_tick(cs_engine_worker(e, i % 2));
        int64_t dt = now_ns() - t0;
        if (i >= ASSIGNMENTS / 10 && i < ASSIGNMENTS / 10 + TICK_WINDOW)
            tick_early[i - ASSIGNMENTS / 10] = dt;
        else if (i >= ASSIGNMENTS - TICK_WINDOW)
            tick_late[i - (ASSIGNMENTS - TICK_WINDOW)] = dt;
        cs_engine_remove_partition(e, c);
        /* the stream goes on: one message of one partition every other assignment */
        if (i % 2 == 0) {
            int q = (i / 2) % STREAM_PARTS;
            if (pos[q] < g->parts[q].n) {
                cs_worker *w = cs_engine_worker(e, cs_engine_part_owner(e, ids[q]));
                cs_worker_process(w, ids[q], g->parts[q].msgs + pos[q], 1);
                if (++pos[q] == g->parts[q].n)
                    cs_engine_set_part_state(e, ids[q], CS_PART_DONE);
                cs_worker_tick(w);
            }
        }
        /* every 100 assignments a stream partition moves to the other worker */
        if (i % 100 == 99) {
            int q = (i / 100) % STREAM_PARTS;
            int done = cs_engine_part_state(e, ids[q]) == CS_PART_DONE;
            ids[q] = move(e, ids[q], 1 - cs_engine_part_owner(e, ids[q]), redis);
            if (done)
                cs_engine_set_part_state(e, ids[q], CS_PART_DONE);
            moves++;
        }
        if (cs_engine_slots_used(e) > max_slots)
            max_slots = cs_engine_slots_used(e);
        /* the heap's reference point: past the stream's end (its 40,000 messages, one every
         * other assignment, are all in by 80,000), so the stream's own state no longer grows;
         * at 10 % it still did (+0.6 MB by the end in a release build, +0.96 MB under ASan: too
         * close to any bound that would still catch a leak) */
        if (i == ASSIGNMENTS / 2) {
            for (int q = 0; q < STREAM_PARTS; q++)
                assert_true(pos[q] == g->parts[q].n);
            flush(e, redis);
            heap_early = heap_in_use();
        }
    }
    flush(e, redis);
    size_t heap_late = heap_in_use();
    /* the end of a drain */
    for (int q = 0; q < STREAM_PARTS; q++) {
        cs_worker *w = cs_engine_worker(e, cs_engine_part_owner(e, ids[q]));
        cs_engine_set_part_state(e, ids[q], CS_PART_DONE);
        cs_worker_tick(w);
    }
    cs_engine_set_watermark(e, cs_engine_final_watermark(e));
    for (int w = 0; w < 2; w++) {
        cs_worker_tick(cs_engine_worker(e, w));
        cs_worker_end_all(cs_engine_worker(e, w), CS_END_DRAIN);
    }
    flush(e, redis);

    int64_t tick_e = median(tick_early, TICK_WINDOW), tick_l = median(tick_late, TICK_WINDOW);
    fprintf(stderr, "   %d assignments, %llu moves of stream partitions, slots used at most %d, "
                    "heap %zu bytes after 50%%, %zu after 100%%, median tick %lld ns after 10%%, "
                    "%lld ns at the end\n",
            ASSIGNMENTS, (unsigned long long)moves, max_slots, heap_early, heap_late,
            (long long)tick_e, (long long)tick_l);
    /* the tick loops to the most partitions assigned at once: the 8 of the stream + 1 */
    assert_true(max_slots <= STREAM_PARTS + 1);
    /* and costs the same at the end as after 10 % (2 us of slack for ticks this short) */
    assert_true(tick_l <= 3 * tick_e + 2000);
    /* flat: the late heap is the one at 50 % (the stream over; 256 KiB of slack for the
     * allocator's and the engine's free lists) */
    assert_true(heap_late < heap_early + (256u << 10));

    /* exact */
    cs_ruleset *rs = rules();
    ref_model *m = ref_new(rs, dim_paths, g->nparts);
    for (int q = 0; q < g->nparts; q++)
        for (size_t i = 0; i < g->parts[q].n; i++)
            ref_event(m, q, g->parts[q].msgs[i].payload, g->parts[q].msgs[i].len,
                      g->parts[q].msgs[i].ts_ms);
    ref_finish(m, CS_END_DRAIN);
    cs_counts *want = cs_counts_new();
    ref_counts(m, want);
    long d = cs_counts_diff(want, "ref", redis, "engine", stderr, 30);
    assert_int_equal(d, 0);
    cs_counts_free(want);
    ref_free(m);
    cs_rules_destroy(rs);
    free(small);
    cs_engine_destroy(src);
    cs_counts_free(redis);
    cs_engine_destroy(e);
    cs_gen_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(churn_200k_assignments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
