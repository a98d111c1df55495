/* engine_run.c — the unit tests' run of the real core over a generated stream (see engine_run.h). */
#include "engine_run.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "aggregate.h"
#include "classify.h"
#include "engine.h"
#include "refmodel.h"

typedef struct run_arg {
    cs_engine *e;
    int w;
    const cs_gen_out *g;
    const int *part_ids;
    size_t batch;
} run_arg;

/* One worker thread: round-robin over its partitions, `batch` messages at a time, ticking the
 * watermark in between (as the daemon does between librdkafka batches). */
static void *worker_main(void *p)
{
    run_arg *a = p;
    cs_worker *w = cs_engine_worker(a->e, a->w);
    int nw = cs_engine_nworkers(a->e);
    size_t *pos = calloc((size_t)a->g->nparts, sizeof *pos);
    int left = 0;
    for (int q = a->w; q < a->g->nparts; q += nw)
        left++;
    while (left > 0) {
        for (int q = a->w; q < a->g->nparts; q += nw) {
            const cs_gen_part *gp = &a->g->parts[q];
            if (pos[q] >= gp->n)
                continue;
            size_t n = gp->n - pos[q] < a->batch ? gp->n - pos[q] : a->batch;
            if (a->g->pad >= CS_MSG_PAD) /* cs_gen_run_padded: decoded in place, as the daemon */
                cs_worker_process_padded(w, a->part_ids[q], gp->msgs + pos[q], n);
            else
                cs_worker_process(w, a->part_ids[q], gp->msgs + pos[q], n);
            pos[q] += n;
            if (pos[q] == gp->n) {
                cs_engine_set_part_state(a->e, a->part_ids[q], CS_PART_DONE);
                left--;
            }
            cs_worker_tick(w);
        }
    }
    free(pos);
    return NULL;
}

static void *end_main(void *p)
{
    run_arg *a = p;
    cs_worker *w = cs_engine_worker(a->e, a->w);
    cs_worker_tick(w);
    cs_worker_end_all(w, CS_END_DRAIN);
    return NULL;
}

/* Runs the engine with `threads` workers; the counts are taken from the workers' aggregates
 * several times during the run (as a sink would) and summed. */
cs_counts *cs_test_run_engine(const cs_gen_out *g, int threads, size_t batch, const char *rules)
{
    char err[512];
    cs_ruleset *rs = cs_rules_load_file(rules, err, sizeof err);
    if (!rs) {
        fprintf(stderr, "%s\n", err);
        return NULL;
    }
    cs_engine *e = cs_engine_new(rs, threads, err, sizeof err);
    if (!e) {
        fprintf(stderr, "%s\n", err);
        return NULL;
    }
    int *ids = malloc((size_t)g->nparts * sizeof *ids);
    for (int q = 0; q < g->nparts; q++) {
        ids[q] = cs_engine_add_partition(e, q % threads);
        if (ids[q] != q) {
            fprintf(stderr, "partition %d got id %d\n", q, ids[q]);
            free(ids);
            cs_engine_destroy(e);
            return NULL;
        }
    }
    if (threads < 1 || threads > 16) {
        free(ids);
        cs_engine_destroy(e);
        return NULL;
    }
    pthread_t th[16];
    run_arg args[16];
    for (int i = 0; i < threads; i++) {
        args[i] = (run_arg){e, i, g, ids, batch};
        pthread_create(&th[i], NULL, worker_main, &args[i]);
    }
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    /* the end of a drain: final watermark, then every worker ends its sessions */
    int64_t Wf = cs_engine_final_watermark(e);
    cs_engine_set_watermark(e, Wf);
    for (int i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, end_main, &args[i]);
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    cs_counts *c = cs_counts_new();
    for (int i = 0; i < threads; i++) {
        cs_worker *w = cs_engine_worker(e, i);
        cs_agg *a = cs_worker_take_agg(w);
        cs_agg_foreach(a, cs_engine_rules(e), cs_engine_dicts(e), cs_counts_agg_cb, c);
        cs_worker_give_agg(w, a);
    }
    free(ids);
    cs_engine_destroy(e);
    return c;
}

cs_counts *cs_test_run_model(const cs_gen_out *g, const char *rules,
                             const char *const *dim_paths)
{
    char err[512];
    cs_ruleset *rs = cs_rules_load_file(rules, err, sizeof err);
    if (!rs) {
        fprintf(stderr, "%s\n", err);
        return NULL;
    }
    ref_model *m = ref_new(rs, dim_paths, g->nparts);
    for (int q = 0; q < g->nparts; q++)
        for (size_t i = 0; i < g->parts[q].n; i++)
            ref_event(m, q, g->parts[q].msgs[i].payload, g->parts[q].msgs[i].len,
                      g->parts[q].msgs[i].ts_ms);
    ref_finish(m, CS_END_DRAIN);
    cs_counts *c = cs_counts_new();
    ref_counts(m, c);
    ref_free(m);
    cs_rules_destroy(rs);
    return c;
}
