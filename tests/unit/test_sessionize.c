/* test_sessionize.c — SPEC §3 session and stage semantics, case by case, through the engine with
 * one worker and one partition. Each test feeds hand-written events and checks the §4 deltas. */
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

static const char *rules_yaml =
    "journey: t\n"
    "stages: [awareness, consideration, purchase]\n"
    "session: { gap: 30m, max_duration: 2h, lateness: 30s }\n"
    "customer_ttl: 1d\n"
    "dimensions:\n"
    "  channel: { max_values: 2 }\n"
    "rules:\n"
    "  - { name: a, stage: awareness, match: { event: [view] } }\n"
    "  - { name: c, stage: consideration, match: { event: [product] } }\n"
    "  - { name: p, stage: purchase, match: { event: [buy] } }\n";

typedef struct fx {
    cs_engine *e;
    cs_worker *w;
    int part;
    cs_counts *c;
    int64_t off;
} fx;

static int setup(void **st)
{
    char err[256];
    fx *f = calloc(1, sizeof *f);
    cs_ruleset *rs = cs_rules_load_string(rules_yaml, strlen(rules_yaml), "t.yaml", err,
                                          sizeof err);
    if (!rs) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    f->e = cs_engine_new(rs, 1, err, sizeof err);
    f->w = cs_engine_worker(f->e, 0);
    f->part = cs_engine_add_partition(f->e, 0);
    f->c = cs_counts_new();
    *st = f;
    return 0;
}

static const char *rules_dims_yaml =
    "journey: t\n"
    "stages: [awareness, consideration, purchase]\n"
    "dimensions:\n"
    "  channel: { max_values: 64 }\n"
    "rules:\n"
    "  - { name: a, stage: awareness, match: { event: [view] } }\n";

static int setup_dims(void **st)
{
    const char *keep = rules_yaml;
    rules_yaml = rules_dims_yaml;
    int r = setup(st);
    rules_yaml = keep;
    return r;
}

static int teardown(void **st)
{
    fx *f = *st;
    cs_engine_destroy(f->e);
    cs_counts_free(f->c);
    free(f);
    return 0;
}

#define T0 1793520000000LL /* 2026-11-01T08:00:00Z */
#define MIN 60000LL

/* One event: customer, event name, minutes after T0, optional channel. */
static void ev(fx *f, const char *cust, const char *name, double minutes, const char *channel)
{
    char buf[4096];
    int n = snprintf(buf, sizeof buf, "{\"userId\":\"%s\",\"event\":\"%s\",\"ts\":%lld%s%s%s}",
                     cust, name, (long long)(T0 + (int64_t)(minutes * MIN)),
                     channel ? ",\"channel\":\"" : "", channel ? channel : "",
                     channel ? "\"" : "");
    /* the Kafka timestamp: when the producer sent it, right at the event time */
    cs_msg m = {buf, (size_t)n, T0 + (int64_t)(minutes * MIN), f->off++};
    cs_worker_process(f->w, f->part, &m, 1);
    cs_worker_tick(f->w);
}

/* Moves the counts of the worker into f->c (as a flush would). */
static cs_counts *counts(fx *f)
{
    cs_agg *a = cs_worker_take_agg(f->w);
    cs_agg_foreach(a, cs_engine_rules(f->e), cs_engine_dicts(f->e), cs_counts_agg_cb, f->c);
    cs_worker_give_agg(f->w, a);
    return f->c;
}

static void drain(fx *f)
{
    cs_engine_set_part_state(f->e, f->part, CS_PART_DONE);
    cs_engine_set_watermark(f->e, cs_engine_final_watermark(f->e));
    cs_worker_end_all(f->w, CS_END_DRAIN);
}

#define GET(h, k) cs_counts_get(counts(f), h, k)

static void gap_splits_sessions(void **st)
{
    fx *f = *st;
    ev(f, "u1", "view", 0, NULL);
    ev(f, "u1", "product", 10, NULL);
    ev(f, "u1", "view", 10 + 30.5, NULL); /* 30.5 min after the last: a new session */
    assert_int_equal(GET("sessions", "started"), 2);
    assert_int_equal(GET("ended_by", "gap"), 1);
    assert_int_equal(GET("ended", "consideration"), 1);
    assert_int_equal(GET("active", "awareness"), 1);
    assert_int_equal(GET("transitions", "_entry>awareness"), 2);
    assert_int_equal(GET("transitions", "awareness>consideration"), 1);
    assert_int_equal(GET("customers", "consideration"), 1); /* the furthest over sessions */
    assert_int_equal(GET("customers", "awareness"), 0);
}

static void exactly_gap_joins(void **st)
{
    fx *f = *st;
    ev(f, "u1", "view", 0, NULL);
    ev(f, "u1", "view", 30, NULL); /* t == last + gap == deadline: joins */
    assert_int_equal(GET("sessions", "started"), 1);
    assert_int_equal(GET("sessions", "ended"), 0);
}

static void max_duration_ends_session(void **st)
{
    fx *f = *st;
    for (int m = 0; m <= 120; m += 20)
        ev(f, "u1", "view", m, NULL);       /* 0..120: start + 2h = 120 is the deadline */
    ev(f, "u1", "view", 121, NULL);         /* past start + max_duration */
    assert_int_equal(GET("sessions", "started"), 2);
    assert_int_equal(GET("ended_by", "max_duration"), 1);
    assert_int_equal(GET("ended_by", "gap"), 0);
}

static void out_of_order_moves_start_back_and_late(void **st)
{
    fx *f = *st;
    ev(f, "u1", "view", 60, NULL);
    ev(f, "u1", "product", 31, NULL); /* >= start - gap (30): joins, start moves to 31 */
    ev(f, "u1", "buy", 0.9, NULL);    /* >= 31 - 30 = 1? no: 0.9 < 1 -> late */
    assert_int_equal(GET("sessions", "started"), 1);
    assert_int_equal(GET("events", "_late"), 1);
    assert_int_equal(GET("events", "purchase"), 0);
    assert_int_equal(GET("reached", "consideration"), 1);
}

static void late_by_watermark_for_new_customer(void **st)
{
    fx *f = *st;
    ev(f, "u1", "view", 300, NULL);  /* watermark = 300 min - 30 s */
    ev(f, "u2", "view", 200, NULL);  /* 200 + 30 < 299.5: late */
    ev(f, "u3", "view", 270, NULL);  /* 270 + 30 = 300 >= 299.5: a new session */
    assert_int_equal(GET("events", "_late"), 1);
    assert_int_equal(GET("sessions", "started"), 2);
    assert_int_equal(GET("customers", "_none"), 0);
    assert_int_equal(GET("customers", "awareness"), 2);
}

static void watermark_expires_sessions(void **st)
{
    fx *f = *st;
    ev(f, "u1", "product", 0, NULL);
    ev(f, "u2", "view", 10, NULL);
    ev(f, "u3", "view", 31, NULL); /* W = 30.5 min: u1's deadline (30) has passed */
    assert_int_equal(GET("sessions", "ended"), 1);
    assert_int_equal(GET("ended", "consideration"), 1);
    ev(f, "u3", "view", 41, NULL); /* W = 40.5: u2's deadline (40) has passed */
    assert_int_equal(GET("sessions", "ended"), 2);
    assert_int_equal(GET("active", "awareness"), 1);
    assert_int_equal(GET("active", "consideration"), 0);
    assert_int_equal(GET("sessions", "active"), 1);
}

static void furthest_stage_never_goes_back(void **st)
{
    fx *f = *st;
    ev(f, "u1", "buy", 0, NULL);
    ev(f, "u1", "view", 1, NULL);
    ev(f, "u1", "product", 2, NULL);
    ev(f, "u1", "other", 3, NULL);
    assert_int_equal(GET("reached", "purchase"), 1);
    assert_int_equal(GET("reached", "awareness"), 0);
    assert_int_equal(GET("transitions", "_entry>purchase"), 1);
    assert_int_equal(GET("events", "awareness"), 1);
    assert_int_equal(GET("events", "consideration"), 1);
    assert_int_equal(GET("events", "_unclassified"), 1);
    assert_int_equal(GET("active", "purchase"), 1);
}

static void unclassified_session_is_none(void **st)
{
    fx *f = *st;
    ev(f, "u1", "other", 0, NULL);
    assert_int_equal(GET("active", "_none"), 1);
    drain(f);
    assert_int_equal(GET("ended", "_none"), 1);
    assert_int_equal(GET("ended_by", "drain"), 1);
    assert_int_equal(GET("customers", "_none"), 1);
}

static void drain_ends_by_final_watermark(void **st)
{
    fx *f = *st;
    ev(f, "u1", "view", 0, NULL);
    ev(f, "u2", "view", 31, NULL);  /* W = 30.5 min: u1 (deadline 30) ends by gap now */
    ev(f, "u3", "view", 40, NULL);  /* final W = 39.5; u2's deadline 61, u3's 70: drain */
    drain(f);
    assert_int_equal(GET("ended_by", "gap"), 1);
    assert_int_equal(GET("ended_by", "drain"), 2);
    assert_int_equal(GET("sessions", "active"), 0);
    assert_int_equal(GET("customers", "awareness"), 3); /* journeys are kept */
}

static void customer_ttl_resets_journey(void **st)
{
    fx *f = *st;
    ev(f, "u1", "buy", 0, NULL);
    ev(f, "u1", "view", 1 + 24 * 60 + 1, NULL); /* more than 1 day after its last event */
    assert_int_equal(GET("customers", "purchase"), 0);
    assert_int_equal(GET("customers", "awareness"), 1);
}

/* /metrics' customer funnel (aggregate.h cfunnel, cstarted; not a Redis field): a customer whose
 * journey jumps past a stage counts at every stage it crossed, once per journey; a journey
 * forgotten by customer_ttl and started again is a new customer */
static void customer_funnel_counts_every_stage_crossed(void **st)
{
    fx *f = *st;
    ev(f, "u1", "view", 0, NULL);
    ev(f, "u1", "buy", 1, NULL);     /* awareness -> purchase: crosses consideration */
    ev(f, "u2", "product", 2, NULL); /* none -> consideration: crosses awareness */
    ev(f, "u3", "view", 3, NULL);
    ev(f, "u3", "view", 4, NULL);    /* no move: nothing more */
    ev(f, "u1", "view", 5 + 24 * 60 + 1, NULL); /* past customer_ttl: a new journey */
    cs_agg *a = cs_worker_take_agg(f->w);
    int64_t cf[4] = {a->cfunnel[0], a->cfunnel[1], a->cfunnel[2], a->cfunnel[3]};
    int64_t started = a->cstarted;
    cs_worker_give_agg(f->w, a);
    assert_int_equal(started, 4);
    assert_int_equal(cf[0], 0);
    assert_int_equal(cf[1], 4); /* awareness: u1, u2, u3, u1 again */
    assert_int_equal(cf[2], 2); /* consideration: u1 (jumped over it), u2 */
    assert_int_equal(cf[3], 1); /* purchase: u1 */
}

static void customer_ttl_expires_by_watermark(void **st)
{
    fx *f = *st;
    ev(f, "u1", "buy", 0, NULL);
    ev(f, "u2", "view", 24 * 60 + 2, NULL); /* W passes u1's last + 1 day */
    assert_int_equal(GET("customers", "purchase"), 0);
    assert_int_equal(GET("customers", "awareness"), 1);
}

static void dimensions_first_touch_and_other(void **st)
{
    fx *f = *st;
    ev(f, "u1", "view", 0, NULL);       /* _unknown so far */
    ev(f, "u1", "view", 1, "social");   /* first non-empty: social */
    ev(f, "u1", "buy", 2, "email");     /* stays social */
    ev(f, "u2", "view", 3, "email");
    ev(f, "u3", "view", 4, "print");    /* max_values 2: print is _other */
    cs_counts *c = counts(f);
    assert_int_equal(cs_counts_get(c, "by:channel:reached", "_unknown/awareness"), 1);
    assert_int_equal(cs_counts_get(c, "by:channel:reached", "social/purchase"), 1);
    assert_int_equal(cs_counts_get(c, "by:channel:active", "social/purchase"), 1);
    assert_int_equal(cs_counts_get(c, "by:channel:active", "_unknown/awareness"), 0);
    assert_int_equal(cs_counts_get(c, "by:channel:active", "email/awareness"), 1);
    assert_int_equal(cs_counts_get(c, "by:channel:active", "_other/awareness"), 1);
}

static void minute_buckets_by_event_time(void **st)
{
    fx *f = *st;
    ev(f, "u1", "view", 0, NULL);
    ev(f, "u1", "buy", 1.5, NULL);
    cs_counts *c = counts(f);
    assert_int_equal(cs_counts_get(c, "minute:202611010800:reached", "awareness"), 1);
    assert_int_equal(cs_counts_get(c, "minute:202611010801:reached", "purchase"), 1);
}

static void invalid_counted_by_reason(void **st)
{
    fx *f = *st;
    const char *bad[] = {"{", "[1]", "{\"event\":\"view\"}", "{\"userId\":\"u\"}",
                         "{\"userId\":\"u\",\"event\":\"view\",\"ts\":\"soon\"}"};
    for (int i = 0; i < 5; i++) {
        cs_msg m = {bad[i], strlen(bad[i]), T0, f->off++};
        cs_worker_process(f->w, f->part, &m, 1);
    }
    cs_counts *c = counts(f);
    assert_int_equal(cs_counts_get(c, "invalid", "not_json"), 1);
    assert_int_equal(cs_counts_get(c, "invalid", "not_object"), 1);
    assert_int_equal(cs_counts_get(c, "invalid", "no_customer"), 1);
    assert_int_equal(cs_counts_get(c, "invalid", "no_event"), 1);
    assert_int_equal(cs_counts_get(c, "invalid", "bad_time"), 1);
    assert_int_equal(cs_worker_next_offset(f->w, f->part), 5);
}

/* Regression (found in review of the first draft): a session restarted in place (t > deadline)
 * had its whole entry zeroed, wheel link included, so the wheel lost every session linked behind
 * it in the same bucket. */
static void restart_in_place_keeps_wheel_links(void **st)
{
    fx *f = *st;
    ev(f, "a", "view", 0, NULL);
    ev(f, "b", "view", 0.1, NULL); /* same wheel bucket as a */
    ev(f, "a", "view", 31, NULL);  /* restarts a's entry in place */
    ev(f, "c", "view", 100, NULL); /* W passes every deadline above */
    assert_int_equal(GET("sessions", "ended"), 3);
    assert_int_equal(GET("sessions", "active"), 1);
}

/* Regression (red team, issue 16): dimension values were formatted into a 512-byte field name,
 * so a value longer than ~500 bytes (a referrer or page-URL dimension) lost its tail AND its
 * "/<stage>" (all stages of it summed into one field), and a value with a NUL byte (JSON
 * "\u0000") lost everything after it, "/<stage>" included. Values are now cut to
 * CS_MAX_DIM_VALUE_BYTES (256) at a UTF-8 boundary and at a NUL before the dictionary sees
 * them, and every field keeps its "/<stage>". */
static void regression_long_dimension_values(void **st)
{
    fx *f = *st;
    enum { LONG = 600, CUT = CS_MAX_DIM_VALUE_BYTES };
    char v1[LONG + 2], v2[LONG + 2], v3[LONG + 1], k[LONG + 64];
    memset(v1, 'x', LONG);
    memcpy(v2, v1, LONG);
    v1[LONG] = '1';
    v2[LONG] = '2';
    v1[LONG + 1] = v2[LONG + 1] = '\0';
    /* byte CUT of this one is the second byte of a 2-byte character (C3 A9) */
    memset(v3, 'y', LONG);
    v3[CUT - 1] = '\xc3';
    v3[CUT] = '\xa9';
    v3[LONG] = '\0';
    ev(f, "u1", "view", 0, v1);
    ev(f, "u2", "view", 1, v2);
    ev(f, "u3", "view", 2, v3);
    ev(f, "u4", "view", 3, "a\\u0000b"); /* JSON escape: the value is "a", NUL, "b" */
    ev(f, "u5", "view", 4, "\\u0000z");  /* nothing before the NUL: still _unknown */
    cs_counts *c = counts(f);
    /* v1 and v2 share their first CUT bytes: one value */
    snprintf(k, sizeof k, "%.*s/awareness", CUT, v1);
    assert_int_equal(cs_counts_get(c, "by:channel:active", k), 2);
    assert_int_equal(cs_counts_get(c, "by:channel:reached", k), 2);
    snprintf(k, sizeof k, "%.*s/awareness", CUT - 1, v3); /* the cut backs up before the C3 */
    assert_int_equal(cs_counts_get(c, "by:channel:reached", k), 1);
    assert_int_equal(cs_counts_get(c, "by:channel:active", "a/awareness"), 1);
    assert_int_equal(cs_counts_get(c, "by:channel:active", "_unknown/awareness"), 1);
    /* no field without its stage */
    assert_int_equal(cs_counts_get(c, "by:channel:active", "a"), 0);
    snprintf(k, sizeof k, "%.511s", v1);
    assert_int_equal(cs_counts_get(c, "by:channel:active", k), 0);
}

/* Customers prefix0 .. prefix(n-1), one event `name` each at T0 + minutes, in batches of 1024
 * messages through cs_worker_process (a tick after each batch). */
static void evs(fx *f, const char *prefix, int n, const char *name, double minutes)
{
    enum { B = 1024 };
    static char buf[B][128];
    static cs_msg m[B];
    int64_t ts = T0 + (int64_t)(minutes * MIN);
    for (int i = 0; i < n; i += B) {
        int k = n - i < B ? n - i : B;
        for (int j = 0; j < k; j++) {
            int len = snprintf(buf[j], sizeof buf[j],
                               "{\"userId\":\"%s%d\",\"event\":\"%s\",\"ts\":%lld}", prefix,
                               i + j, name, (long long)ts);
            m[j] = (cs_msg){buf[j], (size_t)len, ts, f->off++};
        }
        cs_worker_process(f->w, f->part, m, (size_t)k);
        cs_worker_tick(f->w);
    }
}

/* The worker decodes event i while events i-1 .. i-3 wait in its pipeline (engine.c PIPE), all
 * with one decoder (cs_decoder_new_slots). An event name whose escapes were undone lives in the
 * decoder's scratch buffer until the event is counted: each event in flight needs its own slot,
 * or a later message's name is counted for it. 24 customers, each one event in one batch, its
 * name escaped ("vi\u0065w"), through the copying and the in-place path, names alternating so
 * that the event three behind always has the other one. */
static void batch_names(fx *f, int padded, const char *prefix)
{
    enum { N = 24, PAD = CS_MSG_PAD };
    static char arena[N][128 + PAD];
    cs_msg m[N];
    for (int j = 0; j < N; j++) {
        const char *name = j == N - 1 ? "b\\u0075y" : j % 2 ? "pr\\u006fduct" : "vi\\u0065w";
        int len = snprintf(arena[j], 128, "{\"userId\":\"%s%d\",\"event\":\"%s\",\"ts\":%lld}",
                           prefix, j, name, (long long)(T0 + j));
        memset(arena[j] + len, 0, PAD);
        m[j] = (cs_msg){arena[j], (size_t)len, T0 + j, f->off++};
    }
    if (padded)
        cs_worker_process_padded(f->w, f->part, m, N);
    else
        cs_worker_process(f->w, f->part, m, N);
    cs_worker_tick(f->w);
}

static void regression_in_flight_events_keep_their_escaped_names(void **st)
{
    fx *f = *st;
    batch_names(f, 0, "c");
    assert_int_equal(GET("sessions", "started"), 24);
    assert_int_equal(GET("customers", "awareness"), 12);     /* view: 0, 2, .. 22 */
    assert_int_equal(GET("customers", "consideration"), 11); /* product: 1, 3, .. 21 */
    assert_int_equal(GET("customers", "purchase"), 1);       /* buy: 23 */
    batch_names(f, 1, "p");
    assert_int_equal(GET("sessions", "started"), 48);
    assert_int_equal(GET("customers", "awareness"), 24);
    assert_int_equal(GET("customers", "consideration"), 22);
    assert_int_equal(GET("customers", "purchase"), 2);
    assert_int_equal(GET("events", "awareness"), 24);
}

/* The customer index keeps a tag of each hash beside the entry's id and re-tags every slot when
 * the ids outgrow their bits (16 to 20 at id 65,536; sessionize.c idx_put). 140,000 customers in
 * one partition cross that, with the index grown from 1,024 slots to 262,144 on the way (its
 * last growth at 98,305 customers, with 20-bit ids); half of
 * them are then forgotten (customer_ttl), which shifts the others' slots back over theirs, and
 * come back on the freed ids. Any look-up that misses its own entry starts a second journey
 * (cstarted) and moves the gauges. */
static void index_tags_across_id_growth_and_deletion(void **st)
{
    fx *f = *st;
    enum { N = 140000 };
    evs(f, "a", N / 2, "view", 0);         /* ids 1 .. 70,000: the re-tag at 65,536 */
    evs(f, "b", N / 2, "view", 23 * 60);   /* ids to 140,000: the index grows at 98,305 */
    evs(f, "b", N / 2, "view", 23 * 60 + 1); /* every b found again after it */
    ev(f, "z", "view", 24 * 60 + 2, NULL); /* W passes a's last + 1 day: a forgotten */
    evs(f, "b", N / 2, "product", 24 * 60 + 3);
    evs(f, "a", N / 2, "view", 24 * 60 + 4); /* new journeys, on the freed ids */
    evs(f, "a", N / 2, "buy", 24 * 60 + 5);
    cs_agg *a = cs_worker_take_agg(f->w); /* as counts(), cstarted read on the way */
    int64_t started = a->cstarted;
    cs_agg_foreach(a, cs_engine_rules(f->e), cs_engine_dicts(f->e), cs_counts_agg_cb, f->c);
    cs_worker_give_agg(f->w, a);
    assert_int_equal(started, N + 1 + N / 2);
    assert_int_equal(cs_counts_get(f->c, "customers", "awareness"), 1); /* z */
    assert_int_equal(cs_counts_get(f->c, "customers", "consideration"), N / 2);
    assert_int_equal(cs_counts_get(f->c, "customers", "purchase"), N / 2);
}

/* A wheel bucket is WHEEL_LANES chains walked in turn (sessionize.c wheel_advance). 1,001
 * sessions start in the same bucket; 500 of them get an event later, so their bucket's firing
 * ends the others and re-links these (into later buckets, while the chains are being walked);
 * the second firing ends them. Every session is ended exactly once, by gap, whichever chain it
 * is in. */
static void wheel_lanes_fire_every_chain(void **st)
{
    fx *f = *st;
    enum { N = 1001, M = 500 };
    evs(f, "w", N, "view", 0);
    evs(f, "w", M, "product", 20); /* w0 .. w499: deadline 50 min, the rest 30 */
    ev(f, "z", "view", 40, NULL);  /* W = 39.5 min: the first 501 have ended */
    assert_int_equal(GET("sessions", "started"), N + 1);
    assert_int_equal(GET("ended_by", "gap"), N - M);
    assert_int_equal(GET("ended", "awareness"), N - M);
    assert_int_equal(GET("active", "consideration"), M);
    ev(f, "z", "view", 60, NULL); /* W = 59.5 min: the other 500 too */
    assert_int_equal(GET("ended_by", "gap"), N);
    assert_int_equal(GET("ended", "consideration"), M);
    assert_int_equal(GET("active", "consideration"), 0);
    assert_int_equal(GET("sessions", "ended"), N);
}

/* One event at T0 + ms (exact milliseconds; ev() takes minutes). */
static void evms(fx *f, const char *cust, const char *name, int64_t ms)
{
    char buf[512];
    int n = snprintf(buf, sizeof buf, "{\"userId\":\"%s\",\"event\":\"%s\",\"ts\":%lld}", cust,
                     name, (long long)(T0 + ms));
    cs_msg m = {buf, (size_t)n, T0 + ms, f->off++};
    cs_worker_process(f->w, f->part, &m, 1);
    cs_worker_tick(f->w);
}

/* SPEC §4.1 case by case, at the buckets' edges to the millisecond: d <= b x 1000 is bucket b. */
static void time_to_stage_exact_at_bucket_edges(void **st)
{
    fx *f = *st;
    /* u1: start at 0; consideration at exactly 10 s; purchase 30.001 s later */
    evms(f, "u1", "view", 0);
    evms(f, "u1", "product", 10000);
    evms(f, "u1", "buy", 40001);
    assert_int_equal(GET("time_to:awareness", "0"), 1);
    assert_int_equal(GET("transition_time", "_entry>awareness:0"), 1);
    assert_int_equal(GET("customer_time_to:awareness", "0"), 1);
    assert_int_equal(GET("time_to:consideration", "10"), 1);
    assert_int_equal(GET("transition_time", "awareness>consideration:10"), 1);
    assert_int_equal(GET("customer_time_to:consideration", "10"), 1);
    assert_int_equal(GET("time_to:purchase", "60"), 1);          /* 40.001 s from the start */
    assert_int_equal(GET("transition_time", "consideration>purchase:60"), 1); /* 30.001 s */
    assert_int_equal(GET("customer_time_to:purchase", "60"), 1);
    /* u2: consideration at 0; an out-of-order event 20 s earlier moves the start back (time_to
     * counts from the start as it stands), not the time it reached consideration */
    evms(f, "u2", "product", 100000);
    evms(f, "u2", "noise", 80000);
    evms(f, "u2", "buy", 110000);
    assert_int_equal(GET("time_to:consideration", "0"), 1);
    assert_int_equal(GET("time_to:purchase", "30"), 1);                    /* 30 s exactly */
    assert_int_equal(GET("transition_time", "consideration>purchase:10"), 1); /* 10 s */
    assert_int_equal(GET("customer_time_to:purchase", "10"), 1);          /* C.first: the 1st */
    /* u3: awareness; a second session an hour later reaches consideration: 0 s into it,
     * 3,600 s exactly into the customer's journey */
    evms(f, "u3", "view", 200000);
    evms(f, "u3", "product", 200000 + 3600000);
    assert_int_equal(GET("time_to:consideration", "0"), 2);
    assert_int_equal(GET("transition_time", "_entry>consideration:0"), 2);
    assert_int_equal(GET("customer_time_to:consideration", "3600"), 1);
    /* u4: a late-arriving earlier event reaches a stage before the one it had: its transition
     * duration is negative and counts as 0 */
    evms(f, "u4", "product", 4000000);
    evms(f, "u4", "buy", 3990000);
    assert_int_equal(GET("transition_time", "consideration>purchase:0"), 1);
    assert_int_equal(GET("time_to:purchase", "0"), 1); /* the start moved back to it */
    /* u5: customer_ttl (1 d) forgets the journey: C.first is the event that starts it over */
    evms(f, "u5", "view", 4100000);
    evms(f, "u5", "view", 4100000 + 86400000 + 3600000);
    evms(f, "u5", "product", 4100000 + 86400000 + 3600000 + 30001);
    assert_int_equal(GET("customer_time_to:awareness", "0"), 4); /* u1, u3, u5 twice */
    assert_int_equal(GET("customer_time_to:consideration", "60"), 1);
    drain(f);
    assert_int_equal(cs_counts_check_tt(counts(f), stderr, 10), 0);
}

int main(void)
{
#define T(x) cmocka_unit_test_setup_teardown(x, setup, teardown)
#define T_DIMS(x) cmocka_unit_test_setup_teardown(x, setup_dims, teardown)
    const struct CMUnitTest tests[] = {
        T(gap_splits_sessions),
        T(time_to_stage_exact_at_bucket_edges),
        T(exactly_gap_joins),
        T(max_duration_ends_session),
        T(out_of_order_moves_start_back_and_late),
        T(late_by_watermark_for_new_customer),
        T(watermark_expires_sessions),
        T(furthest_stage_never_goes_back),
        T(unclassified_session_is_none),
        T(drain_ends_by_final_watermark),
        T(customer_ttl_resets_journey),
        T(customer_ttl_expires_by_watermark),
        T(customer_funnel_counts_every_stage_crossed),
        T(dimensions_first_touch_and_other),
        T(minute_buckets_by_event_time),
        T(invalid_counted_by_reason),
        T(restart_in_place_keeps_wheel_links),
        T_DIMS(regression_long_dimension_values),
        T(regression_in_flight_events_keep_their_escaped_names),
        T(index_tags_across_id_growth_and_deletion),
        T(wheel_lanes_fire_every_chain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
