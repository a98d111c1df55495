/* test_model_mt.c — the sharded, multi-threaded core against the single-threaded reference model
 * (loadgen/refmodel.c) on generated input: every §4 count must be identical.
 * Also the multi-thread stress test for ThreadSanitizer (make tsan-test runs test_*mt*). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
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
#include "engine_run.h"
#include "gen.h"
#include "refmodel.h"

static const char *const dim_paths[] = {NULL, "properties.persona"};

static cs_counts *run_ref(const cs_gen_out *g, const char *rules)
{
    char err[512];
    cs_ruleset *rs = cs_rules_load_file(rules, err, sizeof err);
    assert_non_null(rs);
    ref_model *m = ref_new(rs, dim_paths, g->nparts);
    for (int q = 0; q < g->nparts; q++)
        for (size_t i = 0; i < g->parts[q].n; i++) {
            const cs_msg *msg = &g->parts[q].msgs[i];
            ref_event(m, q, msg->payload, msg->len, msg->ts_ms);
        }
    ref_finish(m, CS_END_DRAIN);
    cs_counts *c = cs_counts_new();
    ref_counts(m, c);
    ref_free(m);
    cs_rules_destroy(rs);
    return c;
}

static void compare(const cs_gen_out *g, int threads, size_t batch)
{
    cs_counts *ref = run_ref(g, "data/model.yaml");
    cs_counts *eng = cs_test_run_engine(g, threads, batch, "data/model.yaml");
    assert_non_null(eng);
    long d = cs_counts_diff(ref, "ref", eng, "engine", stderr, getenv("CS_DIFF_MAX") ? atol(getenv("CS_DIFF_MAX")) : 40);
    fprintf(stderr, "   %llu messages, %d threads, batch %zu: %ld counters, %ld differences\n",
            (unsigned long long)g->nmsgs, threads, batch, cs_counts_size(ref), d);
    /* the data must exercise what it claims to */
    assert_true(cs_counts_get(ref, "events", "_late") > 0);
    assert_true(cs_counts_get(ref, "ended_by", "max_duration") > 0);
    assert_true(cs_counts_get(ref, "ended_by", "gap") > 0);
    assert_true(cs_counts_get(ref, "ended_by", "drain") > 0);
    assert_true(cs_counts_get(ref, "invalid", "too_deep") > 0);
    assert_true(cs_counts_get(ref, "reached", "loyalty") > 0);
    assert_int_equal(cs_counts_get(ref, "sessions", "active"), 0);
    /* SPEC §4.1: the histograms' own invariants on both sides, and data that spreads them over
     * buckets (minutes into a session, days into a customer's journey) */
    assert_int_equal(cs_counts_check_tt(ref, stderr, 10), 0);
    assert_int_equal(cs_counts_check_tt(eng, stderr, 10), 0);
    int spread = 0, days = 0;
    for (int b = 0; b < CS_TT_NBUCKETS; b++) {
        spread += cs_counts_get(ref, "time_to:purchase", cs_tt_bucket_name[b]) > 0;
        days += b >= 12 && cs_counts_get(ref, "customer_time_to:purchase", cs_tt_bucket_name[b]) > 0;
    }
    fprintf(stderr, "   time_to:purchase in %d buckets, customer_time_to:purchase in %d of >= 1 day\n",
            spread, days);
    assert_true(spread >= 3);
    assert_true(days >= 1);
    assert_int_equal(d, 0);
    cs_counts_free(ref);
    cs_counts_free(eng);
}

static void model_small_single_thread(void **st)
{
    cs_gen_conf c;
    cs_gen_defaults(&c);
    c.nevents = 50000;
    c.ncustomers = 2000;
    cs_gen_out *g = cs_gen_run(&c);
    compare(g, 1, 64);
    cs_gen_free(g);
}

/* >= 1M events, 8 partitions, several threads, against the reference model. */
static void model_1m_events_4_threads(void **st)
{
    cs_gen_conf c;
    cs_gen_defaults(&c);
    const char *n = getenv("CS_MODEL_EVENTS");
    c.nevents = n ? strtoull(n, NULL, 10) : 1000000;
    c.ncustomers = 60000;
    c.span_ms = 10LL * 86400000; /* 10 days: sessions, max_duration and the 2-day ttl all fire */
    c.seed = 7;
    cs_gen_out *g = cs_gen_run(&c);
    compare(g, 4, 512);
    cs_gen_free(g);
}

/* Many small batches and more threads than cores: the most interleaving for TSan to look at. */
static void stress_small_batches_8_threads(void **st)
{
    cs_gen_conf c;
    cs_gen_defaults(&c);
    c.nevents = 120000;
    c.ncustomers = 8000;
    c.nparts = 16;
    c.seed = 99;
    cs_gen_out *g = cs_gen_run(&c);
    compare(g, 8, 7);
    cs_gen_free(g);
}

/* Devices with wrong clocks (issue 16): one event in 500 is dated far in the future or before
 * 2000. Before max_future, such a stream's counts depended on the batch size; now the engine
 * agrees with the reference model at every batch size and thread count. */
static void model_skewed_clocks_every_batch_size(void **st)
{
    cs_gen_conf c;
    cs_gen_defaults(&c);
    c.nevents = 120000;
    c.ncustomers = 5000;
    c.skew_frac = 0.002;
    c.seed = 16;
    cs_gen_out *g = cs_gen_run(&c);
    cs_counts *ref = run_ref(g, "data/model.yaml");
    assert_true(cs_counts_get(ref, "invalid", "future_time") > 100);
    assert_true(cs_counts_get(ref, "invalid", "bad_time") > 0);
    cs_counts_free(ref);
    static const size_t batches[] = {1, 10, 333, 4096};
    for (size_t i = 0; i < sizeof batches / sizeof batches[0]; i++)
        compare(g, 1 + (int)(i % 2), batches[i]);
    cs_gen_free(g);
}

/* In place (cs_worker_process_padded, what the daemon runs on the source's padded arena): the
 * skewed-clock stream generated with CS_MSG_PAD NULs after every payload; the engine decodes
 * the payloads where they lie and still agrees with the reference model, at small and large
 * batches and on 1 and 2 threads. */
static void model_padded_in_place(void **st)
{
    cs_gen_conf c;
    cs_gen_defaults(&c);
    c.nevents = 60000;
    c.ncustomers = 3000;
    c.skew_frac = 0.002;
    c.seed = 17;
    cs_gen_out *g = cs_gen_run_padded(&c, CS_MSG_PAD);
    assert_int_equal(g->pad, CS_MSG_PAD);
    for (int q = 0; q < g->nparts; q++) /* the padding is there, the payloads are unchanged */
        for (size_t i = 0; i < g->parts[q].n; i++)
            for (size_t k = 0; k < CS_MSG_PAD; k++)
                assert_int_equal(g->parts[q].msgs[i].payload[g->parts[q].msgs[i].len + k], 0);
    compare(g, 1, 3);
    compare(g, 2, 1000);
    cs_gen_free(g);
}

typedef struct hook_log {
    int n;
    const char *p[16];
    size_t len[16];
    char reason[16][32];
} hook_log;

static void log_invalid(void *opaque, const cs_msg *m, const char *reason)
{
    hook_log *h = opaque;
    if (h->n < 16) {
        h->p[h->n] = m->payload;
        h->len[h->n] = m->len;
        snprintf(h->reason[h->n], sizeof h->reason[h->n], "%s", reason);
    }
    h->n++;
}

/* The invalid hook (dead letters) of a padded batch gets each invalid message exactly as given:
 * the same payload pointer and length (the padding is not part of it), the bytes unchanged. */
static void padded_invalid_hook_gets_the_message(void **st)
{
    static const char *const m[] = {
        "{\"userId\":\"u1\",\"event\":\"view\",\"timestamp\":\"2026-11-01T08:00:00Z\"}",
        "{\"userId\":\"u1\",\"event\":\"vi",
        "",
        "[1,2,3]",
        "{\"event\":\"view\"}",
        "{\"userId\":\"u2\",\"event\":\"buy\",\"timestamp\":\"2026-11-01T08:00:01Z\"}",
        "12345",
    };
    static const char *const want[] = {"not_json", "not_json", "not_object", "no_customer",
                                       "not_object"};
    enum { N = sizeof m / sizeof *m };
    char *arena = malloc(4096);
    assert_non_null(arena);
    cs_msg msgs[N];
    size_t at = 0;
    for (int i = 0; i < N; i++) {
        const size_t n = strlen(m[i]);
        memcpy(arena + at, m[i], n);
        memset(arena + at + n, 0, CS_MSG_PAD);
        msgs[i] = (cs_msg){arena + at, n, 1793520000000LL, i};
        at += n + CS_MSG_PAD;
    }
    char err[512];
    cs_ruleset *rs = cs_rules_load_file("data/model.yaml", err, sizeof err);
    assert_non_null(rs);
    cs_engine *e = cs_engine_new(rs, 1, err, sizeof err);
    assert_non_null(e);
    hook_log h = {0};
    cs_engine_set_invalid_hook(e, log_invalid, &h);
    const int part = cs_engine_add_partition(e, 0);
    assert_true(part >= 0);
    cs_worker *w = cs_engine_worker(e, 0);
    cs_worker_process_padded(w, part, msgs, N);
    assert_int_equal(h.n, 5);
    static const int invalid_at[] = {1, 2, 3, 4, 6};
    for (int k = 0; k < 5; k++) {
        const cs_msg *x = &msgs[invalid_at[k]];
        assert_ptr_equal(h.p[k], x->payload);
        assert_int_equal(h.len[k], strlen(m[invalid_at[k]]));
        assert_memory_equal(h.p[k], m[invalid_at[k]], h.len[k]);
        assert_string_equal(h.reason[k], want[k]);
    }
    cs_worker_stats ws;
    cs_worker_stats_get(w, &ws);
    assert_int_equal(ws.messages, N);
    assert_int_equal(ws.invalid, 5);
    assert_int_equal(ws.events, 2);
    assert_int_equal(cs_worker_next_offset(w, part), N);
    cs_engine_destroy(e);
    free(arena);
}

/* Customer churn (issue 12): new customers keep arriving, old ones fall silent past the 2-day
 * customer_ttl and are forgotten; the engine still agrees with the reference model. */
static void model_customer_churn(void **st)
{
    cs_gen_conf c;
    cs_gen_defaults(&c);
    c.nevents = getenv("CS_MODEL_EVENTS") ? 60000 : 150000;
    c.ncustomers = 3000;
    c.churn = 30000;
    c.span_ms = 12LL * 86400000;
    c.seed = 12;
    cs_gen_out *g = cs_gen_run(&c);
    compare(g, 2, 256);
    cs_gen_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(model_customer_churn),
        cmocka_unit_test(model_small_single_thread),
        cmocka_unit_test(model_padded_in_place),
        cmocka_unit_test(padded_invalid_hook_gets_the_message),
        cmocka_unit_test(stress_small_batches_8_threads),
        cmocka_unit_test(model_1m_events_4_threads),
        cmocka_unit_test(model_skewed_clocks_every_batch_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
