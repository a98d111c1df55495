/* test_reload_mt.c — rule reloads for weeks (issue 12): a SIGHUP a minute is 10,080 reloads a
 * week. The engine kept every replaced rule table until it was destroyed and refused the 65th
 * reload ("too many reloads (64) in one process; restart"); it now frees a replaced table once
 * no worker can still touch it (hazard pointers, engine.c reclaim_retired).
 *
 *  - reload_past_64_times_while_counting: regression. Two worker threads count a generated
 *    stream in small batches, ticking in between, while this thread swaps in a freshly loaded
 *    copy of the same rule file 2,000 times. Every swap must succeed, the tables kept at the
 *    end are at most one per worker, and the counts equal the reference model's (a table freed
 *    while a worker used it would show up here under ASan, or as a race under TSan: the file
 *    is named *mt* so `make tsan-test` runs it). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
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
#include "refmodel.h"

#define SWAPS 2000
#define THREADS 2

static const char *const dim_paths[] = {NULL, "properties.persona"};

typedef struct run_arg {
    cs_engine *e;
    int w;
    const cs_gen_out *g;
    const int *ids;
    _Atomic int *swapping; /* 1 while the main thread still swaps */
} run_arg;

/* Counts the worker's partitions 7 messages at a time, ticking after each batch; once they are
 * done, keeps ticking (picking up tables) until the swaps are over. */
static void *worker_main(void *p)
{
    run_arg *a = p;
    cs_worker *w = cs_engine_worker(a->e, a->w);
    size_t *pos = calloc((size_t)a->g->nparts, sizeof *pos);
    int left = 0;
    for (int q = a->w; q < a->g->nparts; q += THREADS)
        left++;
    while (left > 0 || atomic_load(a->swapping)) {
        for (int q = a->w; q < a->g->nparts; q += THREADS) {
            const cs_gen_part *gp = &a->g->parts[q];
            if (pos[q] < gp->n) {
                size_t n = gp->n - pos[q] < 7 ? gp->n - pos[q] : 7;
                cs_worker_process(w, a->ids[q], gp->msgs + pos[q], n);
                pos[q] += n;
                if (pos[q] == gp->n) {
                    cs_engine_set_part_state(a->e, a->ids[q], CS_PART_DONE);
                    left--;
                }
            }
            cs_worker_tick(w);
        }
    }
    free(pos);
    return NULL;
}

static void reload_past_64_times_while_counting(void **st)
{
    (void)st;
    char err[512];
    cs_gen_conf gc;
    cs_gen_defaults(&gc);
    gc.nparts = 4;
    gc.nevents = getenv("CS_MODEL_EVENTS") ? 20000 : 60000;
    gc.ncustomers = 2000;
    gc.seed = 64;
    cs_gen_out *g = cs_gen_run(&gc);

    cs_ruleset *rs = cs_rules_load_file("data/model.yaml", err, sizeof err);
    assert_non_null(rs);
    cs_engine *e = cs_engine_new(rs, THREADS, err, sizeof err);
    assert_non_null(e);
    int ids[4];
    for (int q = 0; q < 4; q++)
        ids[q] = cs_engine_add_partition(e, q % THREADS);
    _Atomic int swapping = 1;
    pthread_t th[THREADS];
    run_arg args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (run_arg){e, i, g, ids, &swapping};
        pthread_create(&th[i], NULL, worker_main, &args[i]);
    }
    int failed = 0, most_retired = 0;
    for (int i = 0; i < SWAPS; i++) {
        cs_ruleset *n = cs_rules_load_file("data/model.yaml", err, sizeof err);
        assert_non_null(n);
        if (cs_engine_swap_rules(e, n, err, sizeof err) != 0) {
            if (!failed++)
                fprintf(stderr, "   swap %d refused: %s\n", i + 1, err);
            cs_rules_destroy(n);
        }
        if (cs_engine_rules_retired(e) > most_retired)
            most_retired = cs_engine_rules_retired(e);
    }
    atomic_store(&swapping, 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    /* one more swap with the workers parked: only what their hazards name may stay, plus the
     * table this swap replaced (retired after its reclaim ran: freed at the next swap). A
     * worker that parked before picking up the newest table names an older one: THREADS + 1
     * (seen under ASan, where the workers lag the swapping thread) */
    cs_ruleset *last = cs_rules_load_file("data/model.yaml", err, sizeof err);
    assert_int_equal(cs_engine_swap_rules(e, last, err, sizeof err), 0);
    int retired_end = cs_engine_rules_retired(e);
    fprintf(stderr, "   %d swaps, %d refused, at most %d replaced tables kept at once, %d at the end\n",
            SWAPS, failed, most_retired, retired_end);
    assert_int_equal(failed, 0);
    assert_true(retired_end <= THREADS + 1);

    /* the end of a drain, then the counts */
    cs_engine_set_watermark(e, cs_engine_final_watermark(e));
    cs_counts *got = cs_counts_new();
    for (int i = 0; i < THREADS; i++) {
        cs_worker *w = cs_engine_worker(e, i);
        cs_worker_tick(w);
        cs_worker_end_all(w, CS_END_DRAIN);
        cs_agg *a = cs_worker_take_agg(w);
        cs_agg_foreach(a, cs_engine_rules(e), cs_engine_dicts(e), cs_counts_agg_cb, got);
        cs_worker_give_agg(w, a);
    }
    cs_ruleset *rrs = cs_rules_load_file("data/model.yaml", err, sizeof err);
    ref_model *m = ref_new(rrs, dim_paths, g->nparts);
    for (int q = 0; q < g->nparts; q++)
        for (size_t i = 0; i < g->parts[q].n; i++)
            ref_event(m, q, g->parts[q].msgs[i].payload, g->parts[q].msgs[i].len,
                      g->parts[q].msgs[i].ts_ms);
    ref_finish(m, CS_END_DRAIN);
    cs_counts *want = cs_counts_new();
    ref_counts(m, want);
    assert_true(cs_counts_get(want, "ended_by", "gap") > 0);
    long d = cs_counts_diff(want, "ref", got, "engine", stderr, 30);
    assert_int_equal(d, 0);
    cs_counts_free(want);
    cs_counts_free(got);
    ref_free(m);
    cs_rules_destroy(rrs);
    cs_engine_destroy(e);
    cs_gen_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reload_past_64_times_while_counting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
