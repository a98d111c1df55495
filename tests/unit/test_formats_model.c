/* test_formats_model.c — every format the generator speaks (SPEC §1.1) through the real core
 * (decode with the format's preset -> sessions -> rules -> counts) against ONE ground truth: the
 * reference model (loadgen/refmodel.c) over the Segment spelling of the same seed. The rule
 * files are tests/data/formats/<format>.yaml: the model journey with each stack's own names. */
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
#include "decode.h"
#include "engine.h"
#include "engine_run.h"
#include "formats.h"
#include "gen.h"
#include "refmodel.h"

static cs_counts *ground_truth(const cs_gen_conf *c0, int format)
{
    cs_gen_conf c = *c0;
    c.format = CS_GEN_SEGMENT;
    cs_gen_out *g = cs_gen_run(&c);
    char err[512];
    cs_ruleset *rs = cs_rules_load_file("data/model.yaml", err, sizeof err);
    assert_non_null(rs);
    ref_model *m = ref_new(rs, NULL, g->nparts);
    for (int q = 0; q < g->nparts; q++)
        for (size_t i = 0; i < g->parts[q].n; i++) {
            const cs_msg *msg = &g->parts[q].msgs[i];
            ref_event(m, q, msg->payload, msg->len, msg->ts_ms);
        }
    ref_finish(m, CS_END_DRAIN);
    cs_counts *r = cs_counts_new();
    ref_counts(m, r);
    ref_free(m);
    cs_rules_destroy(rs);
    cs_gen_free(g);
    for (int k = 1; k < CS_INV__COUNT; k++) { /* what Snowplow's TSV cannot tell apart */
        const char *from = cs_invalid_name((cs_invalid)k), *to = cs_gen_expect_reason(format, from);
        int64_t v = cs_counts_get(r, "invalid", from);
        if (to != from && v) {
            cs_counts_add(r, "invalid", from, -v);
            cs_counts_add(r, "invalid", to, v);
        }
    }
    return r;
}

static void one_format(int format, const cs_gen_conf *c)
{
    const char *name = cs_format_at(format)->name;
    char rules[256];
    snprintf(rules, sizeof rules, "data/formats/%s.yaml", name);
    cs_gen_conf cf = *c;
    cf.format = format;
    cs_gen_out *g = cs_gen_run(&cf);
    cs_counts *ref = ground_truth(c, format);
    cs_counts *eng = cs_test_run_engine(g, 2, 256, rules);
    assert_non_null(eng);
    long d = cs_counts_diff(ref, "ground truth", eng, name, stderr, 40);
    fprintf(stderr, "   %-17s %llu messages: %ld counters, %ld differences\n", name,
            (unsigned long long)g->nmsgs, cs_counts_size(ref), d);
    /* the stream exercises what it claims to */
    assert_true(cs_counts_get(ref, "events", "_late") > 0);
    assert_true(cs_counts_get(ref, "invalid", "future_time") > 0);
    assert_true(cs_counts_get(ref, "invalid", "bad_time") > 0);
    assert_true(cs_counts_get(ref, "invalid", "no_customer") > 0);
    assert_true(cs_counts_get(ref, "invalid", "too_large") > 0);
    assert_true(cs_counts_get(ref, "invalid", format == CS_GEN_SNOWPLOW ? "not_tsv" : "too_deep") > 0);
    assert_true(cs_counts_get(ref, "reached", "loyalty") > 0);
    assert_true(cs_counts_get(ref, "by:channel:reached", "social/awareness") > 0);
    assert_true(cs_counts_get(ref, "by:persona:reached", "young/awareness") > 0);
    assert_int_equal(d, 0);
    cs_counts_free(ref);
    cs_counts_free(eng);
    cs_gen_free(g);
}

static void conf(cs_gen_conf *c)
{
    cs_gen_defaults(c);
    c->nevents = 60000;
    c->ncustomers = 3000;
    c->skew_frac = 0.002;
    c->too_large_frac = 0.0005;
    c->seed = 19;
}

#define FMT_TEST(fn, F)                                                                            \
    static void fn(void **st)                                                                      \
    {                                                                                              \
        (void)st;                                                                                  \
        cs_gen_conf c;                                                                             \
        conf(&c);                                                                                  \
        one_format(F, &c);                                                                         \
    }
FMT_TEST(segment, CS_GEN_SEGMENT)
FMT_TEST(rudderstack, CS_GEN_RUDDERSTACK)
FMT_TEST(posthog, CS_GEN_POSTHOG)
FMT_TEST(mixpanel, CS_GEN_MIXPANEL)
FMT_TEST(amplitude, CS_GEN_AMPLITUDE)
FMT_TEST(snowplow_enriched, CS_GEN_SNOWPLOW)

/* The same seed gives the same partitions, keys and Kafka timestamps in every format. */
static void same_stream_every_format(void **st)
{
    (void)st;
    cs_gen_conf c;
    conf(&c);
    c.nevents = 20000;
    cs_gen_out *g0 = cs_gen_run(&c);
    for (int f = 1; f < CS_GEN_NFORMATS; f++) {
        c.format = f;
        cs_gen_out *g = cs_gen_run(&c);
        assert_int_equal(g->nmsgs, g0->nmsgs);
        for (int q = 0; q < c.nparts; q++) {
            assert_int_equal(g->parts[q].n, g0->parts[q].n);
            for (size_t i = 0; i < g->parts[q].n; i++)
                assert_int_equal(g->parts[q].msgs[i].ts_ms, g0->parts[q].msgs[i].ts_ms);
        }
        cs_gen_free(g);
    }
    cs_gen_free(g0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(same_stream_every_format),
        cmocka_unit_test(segment),
        cmocka_unit_test(rudderstack),
        cmocka_unit_test(posthog),
        cmocka_unit_test(mixpanel),
        cmocka_unit_test(amplitude),
        cmocka_unit_test(snowplow_enriched),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
