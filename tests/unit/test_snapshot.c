/* test_snapshot.c — per-partition state snapshots (pipeline/snapshot.h, docs/snapshot-format.md).
 *
 *  - equivalence: a pstate A built from thousands of events (gap and max_duration ends,
 *    out-of-order and late events, dimensions, customers forgotten by ttl) is snapshotted and
 *    restored into B; the same further events and watermarks go to both; after end_all every
 *    §4 counter of the two aggregates (by-dimension and minutes included) is identical, and so
 *    are snapshots of both taken along the way (the format is canonical). Variants: snapshot
 *    right after a watermark advance, between advances, after advancing far, with dictionaries
 *    shared and overflowing into _other, and with separate dictionaries (another process).
 *  - rejection: every truncation and every single-bit flip of a small snapshot, a wrong
 *    version, other layouts, and hand-built snapshots (written from the format document, so
 *    they also check it) that are wrong in one field each behind a correct checksum.
 *  - an empty pstate round trip; restored entries linked in both wheels (a customer is
 *    forgotten, a session ends, exactly when the watermark passes them).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <xxhash.h>

#include "aggregate.h"
#include "classify.h"
#include "counts.h"
#include "sessionize.h"
#include "snapshot.h"

#define RULES_HEAD                                                                              \
    "stages: [awareness, consideration, purchase, service, loyalty]\n"                          \
    "session: { gap: 10m, max_duration: 40m, lateness: 30s }\n"                                 \
    "customer_ttl: 3h\n"
#define RULES_BODY                                                                              \
    "rules:\n"                                                                                  \
    "  - { name: land, stage: awareness, match: { event: [page, ad_click], channel: [social, "  \
    "search, print, display] } }\n"                                                             \
    "  - { name: research, stage: consideration, match: { event: [product_view, compare] } }\n" \
    "  - { name: reviews, stage: consideration, match: { url: \"*/reviews/*\" } }\n"            \
    "  - { name: buy, stage: purchase, match: { event: [checkout_started, order_completed] } }\n" \
    "  - { name: support, stage: service, match: { event: [support_chat, ticket_opened] } }\n"  \
    "  - { name: advocacy, stage: loyalty, match: { event: [loyalty_signup, referral_sent] } }\n"

static const char *rules_main = "journey: snap\n" RULES_HEAD
    "dimensions:\n"
    "  channel: { max_values: 8 }\n"
    "  persona: { path: properties.persona, max_values: 4 }\n" RULES_BODY;
/* channel overflows into _other */
static const char *rules_small = "journey: snap\n" RULES_HEAD
    "dimensions:\n"
    "  channel: { max_values: 2 }\n"
    "  persona: { path: properties.persona, max_values: 4 }\n" RULES_BODY;
/* other layouts */
static const char *rules_other_names =
    "journey: snap\n"
    "stages: [visit, signup, activation, paid, expansion]\n"
    "dimensions:\n  channel: {}\n  persona: { path: properties.persona }\n"
    "rules:\n  - { name: v, stage: visit, match: { event: [page] } }\n";
static const char *rules_other_count =
    "journey: snap\n"
    "stages: [awareness, consideration, purchase]\n"
    "dimensions:\n  channel: {}\n  persona: { path: properties.persona }\n"
    "rules:\n  - { name: v, stage: awareness, match: { event: [page] } }\n";
static const char *rules_other_journey = "journey: other\n" RULES_HEAD
    "dimensions:\n"
    "  channel: { max_values: 8 }\n"
    "  persona: { path: properties.persona, max_values: 4 }\n" RULES_BODY;
static const char *rules_other_dim = "journey: snap\n" RULES_HEAD
    "dimensions:\n"
    "  channel: { max_values: 8 }\n"
    "  tier: { path: properties.persona, max_values: 4 }\n" RULES_BODY;

#define T0 1793520000000LL /* 2026-11-01T08:00:00Z */
#define MIN 60000LL
#define GAP (10 * MIN)
#define MAXDUR (40 * MIN)
#define TTL (180 * MIN)
#define LATENESS 30000LL

static cs_ruleset *load(const char *yaml)
{
    char err[256];
    cs_ruleset *rs = cs_rules_load_string(yaml, strlen(yaml), "t.yaml", err, sizeof err);
    if (!rs)
        fprintf(stderr, "%s\n", err);
    assert_non_null(rs);
    return rs;
}

typedef struct dicts {
    cs_dimdict_mpmc d[CS_MAX_DIMS];
    int n;
} dicts;

static void dicts_init(dicts *x, const cs_ruleset *rs)
{
    x->n = cs_rules_ndims(rs);
    for (int d = 0; d < x->n; d++)
        assert_int_equal(cs_dimdict_init(&x->d[d], cs_rules_dim(rs, d)->max_values), 0);
}

static void dicts_free(dicts *x)
{
    for (int d = 0; d < x->n; d++)
        cs_dimdict_free(&x->d[d]);
}

/* One pstate with its own aggregate, counting with dictionaries dx. */
typedef struct side {
    cs_pstate *p;
    cs_agg agg;
    cs_sessctx c;
    dicts *dx;
} side;

static void side_init(side *s, const cs_ruleset *rs, dicts *dx, cs_pstate *p)
{
    s->p = p ? p : cs_pstate_new(cs_rules_session(rs), cs_rules_ndims(rs));
    assert_non_null(s->p);
    assert_int_equal(cs_agg_init(&s->agg, rs), 0);
    s->c.rs = rs;
    s->c.agg = &s->agg;
    s->c.dicts = dx->d;
    s->c.W = INT64_MIN;
    s->dx = dx;
}

static void side_free(side *s)
{
    cs_pstate_destroy(s->p);
    cs_agg_free(&s->agg);
}

static cs_counts *side_counts(side *s, const cs_ruleset *rs)
{
    cs_counts *c = cs_counts_new();
    cs_agg_foreach(&s->agg, rs, s->dx->d, cs_counts_agg_cb, c);
    return c;
}

/* ---- events ------------------------------------------------------------------------------ */

typedef struct tev {
    char cust[16];
    const char *name, *channel, *persona, *url;
    int64_t t;
} tev;

static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rnd01(uint64_t *s)
{
    return (double)(rnd(s) >> 11) / 9007199254740992.0;
}

static const char *const names[] = {"page", "ad_click", "product_view", "compare",
                                    "checkout_started", "order_completed", "support_chat",
                                    "ticket_opened", "loyalty_signup", "referral_sent", "scroll",
                                    "other"};
static const char *const channels[] = {"social", "search", "print", "display", "email"};
static const char *const personas[] = {"young", "mid", "old"};

/* n events of ncust customers from t0 on, ~2 s apart: a few customers are busy (sessions end
 * by max_duration), most come back rarely (gap ends; beyond customer_ttl they are forgotten);
 * 8% are a few minutes out of order, 1% up to 3 h (mostly late). */
static tev *gen(size_t n, int ncust, uint64_t seed, int64_t t0)
{
    tev *v = calloc(n, sizeof *v);
    uint64_t s = seed;
    int64_t t = t0;
    for (size_t i = 0; i < n; i++) {
        t += (int64_t)(rnd(&s) % 4000);
        double u = rnd01(&s);
        snprintf(v[i].cust, sizeof v[i].cust, "c%d", (int)(ncust * u * u * u));
        v[i].name = names[rnd(&s) % (sizeof names / sizeof names[0])];
        if (rnd(&s) % 10 < 7)
            v[i].channel = channels[rnd(&s) % 5];
        if (rnd(&s) % 2)
            v[i].persona = personas[rnd(&s) % 3];
        if (rnd(&s) % 10 == 0)
            v[i].url = "https://shop/reviews/1";
        v[i].t = t;
        uint64_t r = rnd(&s) % 100;
        if (r < 8)
            v[i].t -= (int64_t)(rnd(&s) % (12 * MIN));
        else if (r < 9)
            v[i].t -= (int64_t)(rnd(&s) % (180 * MIN));
    }
    return v;
}

static void set_sv(cs_sv *f, const char *s)
{
    if (s) {
        f->p = s;
        f->len = (uint32_t)strlen(s);
    }
}

static int feed(side *s, const cs_ruleset *rs, const tev *e)
{
    cs_decoded ev;
    memset(&ev, 0, sizeof ev);
    set_sv(&ev.f[CS_F_CUSTOMER], e->cust);
    set_sv(&ev.f[CS_F_EVENT], e->name);
    set_sv(&ev.f[CS_F_CHANNEL], e->channel);
    set_sv(&ev.f[CS_F_URL], e->url);
    set_sv(&ev.f[cs_rules_dim(rs, 1)->field], e->persona);
    ev.ts_ms = e->t;
    ev.ts_from_msg = 1;
    return cs_sessionize(s->p, &s->c, &ev);
}

/* The watermark, driven by the event stream as the engine does for one partition. */
typedef struct wm_clock {
    int64_t maxt, W;
} wm_clock;

static void tick(side **sv, int n, wm_clock *k)
{
    if (k->maxt != INT64_MIN && k->maxt - LATENESS > k->W)
        k->W = k->maxt - LATENESS;
    for (int i = 0; i < n; i++) {
        sv[i]->c.W = k->W;
        cs_pstate_advance(sv[i]->p, &sv[i]->c);
    }
}

/* Feeds ev[0..n) (times shifted by dt) to every side; a tick after every 7th event. */
static void run(side **sv, int ns, const cs_ruleset *rs, const tev *ev, size_t n, int64_t dt,
                wm_clock *k)
{
    for (size_t i = 0; i < n; i++) {
        tev e = ev[i];
        e.t += dt;
        if (e.t > k->maxt)
            k->maxt = e.t;
        for (int j = 0; j < ns; j++)
            feed(sv[j], rs, &e);
        if (i % 7 == 6)
            tick(sv, ns, k);
    }
}

static void end_all(side *s, int64_t W)
{
    s->c.W = W;
    cs_pstate_advance(s->p, &s->c);
    cs_pstate_end_all(s->p, &s->c, CS_END_DRAIN);
    cs_pstate_advance(s->p, &s->c);
}

static void snap(side *s, const cs_ruleset *rs, int64_t next_offset, int64_t wm, char **buf,
                 size_t *len, cs_snap_info *info)
{
    cs_snap_info in = {.next_offset = next_offset, .applied_wm = wm, .max_t = 12345};
    assert_int_equal(cs_snapshot_write(s->p, rs, s->dx->d, &in, buf, len), 0);
    assert_int_equal(in.max_t, cs_pstate_max_time(s->p));
    cs_pstate_stats st;
    cs_pstate_stats_get(s->p, &st);
    assert_int_equal(in.sessions, st.sessions);
    assert_int_equal(in.customers, st.customers);
    if (info)
        *info = in;
}

static void assert_same_stats(side *a, side *b)
{
    cs_pstate_stats sa, sb;
    cs_pstate_stats_get(a->p, &sa);
    cs_pstate_stats_get(b->p, &sb);
    assert_int_equal(sa.sessions, sb.sessions);
    assert_int_equal(sa.customers, sb.customers);
    assert_int_equal(cs_pstate_max_time(a->p), cs_pstate_max_time(b->p));
}

static void assert_same_bytes(const char *a, size_t alen, const char *b, size_t blen)
{
    assert_int_equal(alen, blen);
    assert_memory_equal(a, b, alen);
}

/* A's state snapshotted and restored into B (dictionaries bd); B's own snapshot must be A's,
 * byte for byte (the format is canonical). *wi, *ri: what the write and the read reported. */
static void restore_copy(side *A, side *B, const cs_ruleset *rs, dicts *bd, int64_t next_offset,
                         int64_t wm, cs_snap_info *wi, cs_snap_info *ri)
{
    char *s1, *s2;
    size_t l1, l2;
    char err[256] = "";
    snap(A, rs, next_offset, wm, &s1, &l1, wi);
    cs_pstate *pb = cs_snapshot_read(s1, l1, rs, bd->d, ri, err, sizeof err);
    if (!pb)
        fail_msg("restore: %s", err);
    side_init(B, rs, bd, pb);
    snap(B, rs, next_offset, wm, &s2, &l2, NULL);
    assert_same_bytes(s1, l1, s2, l2);
    free(s1);
    free(s2);
}

typedef struct eqcase {
    const char *rules;
    size_t n1, n2;
    int tick_at_snapshot;  /* advance the watermark right before the snapshot */
    int64_t jump;          /* then also advance it this far past the newest event */
    int shared_dicts;      /* B counts with A's dictionaries (same process) */
    uint64_t seed;
} eqcase;

static void equivalence(const eqcase *q)
{
    cs_ruleset *rs = load(q->rules);
    dicts da, db;
    dicts_init(&da, rs);
    dicts_init(&db, rs);
    tev *ev = gen(q->n1 + q->n2, 400, q->seed, T0);
    side A;
    side_init(&A, rs, &da, NULL);
    side *only_a[1] = {&A};
    wm_clock k = {INT64_MIN, INT64_MIN};
    run(only_a, 1, rs, ev, q->n1, 0, &k);
    if (q->tick_at_snapshot)
        tick(only_a, 1, &k);
    int64_t dt = 0;
    if (q->jump) {
        k.W = k.maxt + q->jump;
        tick(only_a, 1, &k);
        dt = q->jump + LATENESS + 1; /* phase 2 starts after the jumped watermark */
    }
    cs_counts *c1 = side_counts(&A, rs);
    assert_true(cs_counts_get(c1, "ended_by", "gap") > 0);
    cs_counts_free(c1);

    /* snapshot A, restore B (canonical: B's snapshot is A's, byte for byte) */
    cs_snap_info wi, ri;
    side B;
    restore_copy(&A, &B, rs, q->shared_dicts ? &da : &db, (int64_t)q->n1, k.W, &wi, &ri);
    assert_true(wi.sessions > (q->jump ? 0u : 10u));
    assert_true(wi.customers > wi.sessions);
    assert_int_equal(ri.next_offset, (int64_t)q->n1);
    assert_int_equal(ri.applied_wm, k.W);
    assert_int_equal(ri.max_t, wi.max_t);
    assert_int_equal(ri.sessions, wi.sessions);
    assert_int_equal(ri.customers, wi.customers);
    assert_same_stats(&A, &B);
    char *s1, *s2;
    size_t l1, l2;

    /* the same future for both, each counting into a fresh aggregate */
    cs_agg_reset(&A.agg);
    B.c.W = A.c.W;
    side *both[2] = {&A, &B};
    size_t half = q->n2 / 2;
    run(both, 2, rs, ev + q->n1, half, dt, &k);
    assert_same_stats(&A, &B);
    snap(&A, rs, 1, k.W, &s1, &l1, NULL);
    snap(&B, rs, 1, k.W, &s2, &l2, NULL);
    assert_same_bytes(s1, l1, s2, l2);
    free(s1);
    free(s2);
    run(both, 2, rs, ev + q->n1 + half, q->n2 - half, dt, &k);
    assert_same_stats(&A, &B);
    int64_t Wend = k.maxt - LATENESS;
    end_all(&A, Wend);
    end_all(&B, Wend);
    assert_same_stats(&A, &B);

    cs_counts *ca = side_counts(&A, rs), *cb = side_counts(&B, rs);
    long diff = cs_counts_diff(ca, "original", cb, "restored", stderr, 40);
    assert_int_equal(diff, 0);
    /* the future really depended on restored state */
    assert_true(cs_counts_size(ca) > 50);
    assert_true(cs_counts_get(ca, "ended_by", "gap") > 0);
    assert_true(cs_counts_get(ca, "ended_by", "max_duration") > 0);
    assert_true(cs_counts_get(ca, "ended_by", "drain") > 0);
    assert_true(cs_counts_get(ca, "events", "_late") > 0);
    /* restored customers left (forgotten by ttl, or their journey restarted): some stage count
     * went below zero in this aggregate, which only restored state can do */
    int neg = 0;
    for (int s = 0; s < cs_rules_nstages(rs); s++)
        neg |= cs_counts_get(ca, "customers", cs_rules_stage_name(rs, s)) < 0;
    assert_true(neg);
    /* restored sessions ended with their first-touch values (_other where the dictionary
     * was full) */
    const char *val = q->rules == rules_small ? "_other" : "social";
    int64_t ended_val = 0;
    char field[64];
    for (int s = 0; s <= cs_rules_nstages(rs); s++) {
        snprintf(field, sizeof field, "%s/%s", val, s ? cs_rules_stage_name(rs, s - 1) : "_none");
        ended_val += cs_counts_get(ca, "by:channel:ended", field);
    }
    assert_true(ended_val > 0);
    cs_counts_free(ca);
    cs_counts_free(cb);
    side_free(&A);
    side_free(&B);
    free(ev);
    dicts_free(&da);
    dicts_free(&db);
    cs_rules_destroy(rs);
}

static void equivalence_after_tick(void **st)
{
    eqcase q = {rules_main, 6000, 8000, 1, 0, 0, 1};
    equivalence(&q);
}

static void equivalence_between_ticks(void **st)
{
    eqcase q = {rules_main, 6003, 8000, 0, 0, 0, 2};
    equivalence(&q);
}

static void equivalence_after_watermark_jump(void **st)
{
    /* 6 min past the newest event: most sessions end, customers stay */
    eqcase q = {rules_main, 6000, 8000, 1, 6 * MIN, 0, 3};
    equivalence(&q);
}

static void equivalence_shared_dicts_other(void **st)
{
    eqcase q = {rules_small, 5000, 6000, 0, 0, 1, 4};
    equivalence(&q);
}

static void equivalence_same_process(void **st)
{
    /* (rules_small with separate dictionaries would diverge by design: B's empty dictionary
     * hands out ids A had none left for; snapshot.h says so) */
    eqcase q = {rules_main, 12000, 4000, 0, 0, 1, 5};
    equivalence(&q);
}

/* 70,000 customers in one partition: their ids pass 16 bits, so A's customer index was re-tagged
 * on the way (sessionize.c idx_put), and B's restore sizes the tags before it fills the index
 * (cs_pstate_reserve). B's snapshot is A's, and the next event of every customer finds its open
 * session in both: no session started, the same counts. */
static void many_customers_round_trip(void **st)
{
    enum { N = 70000 };
    cs_ruleset *rs = load(rules_main);
    dicts d;
    dicts_init(&d, rs);
    tev *ev = calloc(2 * N, sizeof *ev);
    assert_non_null(ev);
    for (int i = 0; i < 2 * N; i++) {
        snprintf(ev[i].cust, sizeof ev[i].cust, "m%d", i % N);
        ev[i].name = i < N ? "page" : "product_view";
        ev[i].t = T0 + (i < N ? 0 : MIN);
    }
    side A, B;
    side_init(&A, rs, &d, NULL);
    side *only_a[1] = {&A};
    wm_clock k = {INT64_MIN, INT64_MIN};
    run(only_a, 1, rs, ev, N, 0, &k);
    cs_snap_info wi, ri;
    restore_copy(&A, &B, rs, &d, N, k.W, &wi, &ri);
    assert_int_equal(wi.customers, N);
    assert_int_equal(wi.sessions, N);
    cs_agg_reset(&A.agg);
    B.c.W = A.c.W;
    side *both[2] = {&A, &B};
    run(both, 2, rs, ev + N, N, 0, &k);
    assert_same_stats(&A, &B);
    cs_counts *ca = side_counts(&A, rs), *cb = side_counts(&B, rs);
    assert_int_equal(cs_counts_diff(ca, "original", cb, "restored", stderr, 40), 0);
    assert_int_equal(cs_counts_get(cb, "sessions", "started"), 0);
    assert_true(cs_counts_size(cb) > 0);
    cs_counts_free(ca);
    cs_counts_free(cb);
    side_free(&A);
    side_free(&B);
    free(ev);
    dicts_free(&d);
    cs_rules_destroy(rs);
}

/* The customer-entry prefetch tells a customer the state has from one it does not (the engine
 * prefetches the unkeyed-producer detector's slot for the latter: engine.c process_run). Every
 * customer restored is known, to both variants; of hashes never added, only a tag collision in
 * their index chain may say known (16-bit tags here: a handful in 20,000 at most). */
static void prefetch_customer_tells_new_from_known(void **st)
{
    enum { N = 3000, M = 20000 };
    cs_ruleset *rs = load(rules_main);
    cs_pstate *p = cs_pstate_new(cs_rules_session(rs), cs_rules_ndims(rs));
    assert_non_null(p);
    uint64_t x = 0x9E3779B97F4A7C15u;
    uint64_t hs[N];
    for (int i = 0; i < N; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
        hs[i] = x;
        cs_pstate_entry e;
        memset(&e, 0, sizeof e);
        e.h = x;
        e.h2 = (uint32_t)(x >> 40) & CS_H2_MASK;
        e.last = T0;
        assert_int_equal(cs_pstate_restore_add(p, &e), 0);
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(cs_pstate_prefetch_customer(p, hs[i]), 1);
        assert_int_equal(cs_pstate_prefetch_customer_dev(p, hs[i], 0), 1);
    }
    int said_known = 0;
    for (int i = 0; i < M; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int k = cs_pstate_prefetch_customer(p, x);
        assert_int_equal(cs_pstate_prefetch_customer_dev(p, x, 0), k);
        said_known += k;
    }
    assert_true(said_known <= 10);
    cs_pstate_destroy(p);
    cs_rules_destroy(rs);
}

/* ---- small snapshots --------------------------------------------------------------------- */

/* A few customers: with and without sessions, dimensions set and not, various stages. */
static void small_state(side *s, const cs_ruleset *rs)
{
    static const tev ev[] = {
        {"alice", "page", "social", "young", NULL, T0},
        {"alice", "product_view", NULL, NULL, NULL, T0 + MIN},
        {"bob", "scroll", NULL, NULL, NULL, T0 + 2 * MIN},
        {"carol", "checkout_started", "email", "old", NULL, T0 + 25 * MIN},
        {"dave", "page", "print", NULL, NULL, T0 + 4 * MIN},
        {"erin", "page", "social", "mid", NULL, T0 + 30 * MIN}, /* W passes dave's and bob's */
        {"alice", "compare", NULL, NULL, NULL, T0 + 29 * MIN},  /* new session, out of order */
    };
    for (size_t i = 0; i < sizeof ev / sizeof ev[0]; i++)
        feed(s, rs, &ev[i]);
    s->c.W = T0 + 30 * MIN - LATENESS;
    cs_pstate_advance(s->p, &s->c);
}

static void empty_round_trip(void **st)
{
    cs_ruleset *rs = load(rules_main);
    dicts dx;
    dicts_init(&dx, rs);
    side A;
    side_init(&A, rs, &dx, NULL);
    char *b, *b2;
    size_t n, n2;
    cs_snap_info wi;
    snap(&A, rs, -1, INT64_MIN, &b, &n, &wi);
    assert_int_equal(n, 56 + 2 + 8);
    assert_int_equal(wi.max_t, INT64_MIN);
    assert_int_equal(wi.sessions, 0);
    assert_int_equal(wi.customers, 0);
    cs_snap_info ri;
    memset(&ri, 0x55, sizeof ri);
    char err[256];
    cs_pstate *p = cs_snapshot_read(b, n, rs, dx.d, &ri, err, sizeof err);
    assert_non_null(p);
    assert_int_equal(ri.next_offset, -1);
    assert_int_equal(ri.applied_wm, INT64_MIN);
    assert_int_equal(ri.max_t, INT64_MIN);
    assert_int_equal(ri.sessions, 0);
    assert_int_equal(ri.customers, 0);
    assert_int_equal(cs_pstate_max_time(p), INT64_MIN);
    side B;
    side_init(&B, rs, &dx, p);
    snap(&B, rs, -1, INT64_MIN, &b2, &n2, NULL);
    assert_same_bytes(b, n, b2, n2);
    /* and it works as a pstate */
    tev e = {"x", "page", "social", NULL, NULL, T0};
    assert_int_equal(feed(&B, rs, &e), CS_EV_NEW_CUSTOMER);
    free(b);
    free(b2);
    side_free(&A);
    side_free(&B);
    dicts_free(&dx);
    cs_rules_destroy(rs);
}

static void small_round_trip_and_join(void **st)
{
    cs_ruleset *rs = load(rules_main);
    dicts dx, dy;
    dicts_init(&dx, rs);
    dicts_init(&dy, rs);
    side A;
    side_init(&A, rs, &dx, NULL);
    small_state(&A, rs);
    char *b;
    size_t n;
    cs_snap_info wi;
    snap(&A, rs, 77, A.c.W, &b, &n, &wi);
    assert_int_equal(wi.customers, 5);
    assert_int_equal(wi.sessions, 3); /* alice (new), carol, erin; bob and dave ended */
    char err[256];
    cs_pstate *p = cs_snapshot_read(b, n, rs, dy.d, NULL, err, sizeof err);
    assert_non_null(p);
    side B;
    side_init(&B, rs, &dy, p);
    B.c.W = A.c.W;
    /* alice's restored session is found (joins, no new customer, no new session) and keeps
     * its first-touch channel (_unknown in the new session: its first event had none) */
    tev e = {"alice", "order_completed", "search", NULL, NULL, T0 + 31 * MIN};
    assert_int_equal(feed(&B, rs, &e), CS_EV_COUNTED);
    cs_counts *c = side_counts(&B, rs);
    assert_int_equal(cs_counts_get(c, "sessions", "started"), 0);
    assert_int_equal(cs_counts_get(c, "transitions", "consideration>purchase"), 1);
    assert_int_equal(cs_counts_get(c, "customers", "purchase"), 1);
    assert_int_equal(cs_counts_get(c, "customers", "consideration"), -1);
    assert_int_equal(cs_counts_get(c, "by:channel:active", "search/purchase"), 1);
    assert_int_equal(cs_counts_get(c, "by:channel:active", "_unknown/consideration"), -1);
    cs_counts_free(c);
    /* carol's restored session keeps "email"/"old" as strings through another dictionary */
    end_all(&B, A.c.W);
    c = side_counts(&B, rs);
    assert_int_equal(cs_counts_get(c, "by:channel:ended", "email/purchase"), 1);
    assert_int_equal(cs_counts_get(c, "by:persona:ended", "old/purchase"), 1);
    assert_int_equal(cs_counts_get(c, "by:persona:ended", "mid/awareness"), 1);
    assert_int_equal(cs_counts_get(c, "ended_by", "drain"), 3);
    cs_counts_free(c);
    free(b);
    side_free(&A);
    side_free(&B);
    dicts_free(&dx);
    dicts_free(&dy);
    cs_rules_destroy(rs);
}

static void expect_reject(const char *buf, size_t len, const cs_ruleset *rs, cs_dimdict_mpmc *d,
                          const char *want, const char *what)
{
    char err[256] = "";
    cs_snap_info info = {.next_offset = 99};
    cs_pstate *p = cs_snapshot_read(buf, len, rs, d, &info, err, sizeof err);
    if (p)
        fail_msg("%s: accepted", what);
    if (strncmp(err, "snapshot", 8) != 0 || strlen(err) < 20)
        fail_msg("%s: errstr '%s'", what, err);
    if (want && !strstr(err, want))
        fail_msg("%s: errstr '%s' lacks '%s'", what, err, want);
    assert_int_equal(info.next_offset, 99); /* untouched on failure */
}

static void rejects_truncation_and_bit_flips(void **st)
{
    cs_ruleset *rs = load(rules_main);
    dicts dx;
    dicts_init(&dx, rs);
    side A;
    side_init(&A, rs, &dx, NULL);
    small_state(&A, rs);
    char *b;
    size_t n;
    snap(&A, rs, 77, A.c.W, &b, &n, NULL);
    assert_true(n < 300);
    char err[256];
    cs_pstate *p = cs_snapshot_read(b, n, rs, dx.d, NULL, err, sizeof err);
    assert_non_null(p);
    cs_pstate_destroy(p);
    for (size_t len = 0; len < n; len++) {
        char *t = malloc(len ? len : 1); /* an exact-size copy, so ASan sees any read past it */
        memcpy(t, b, len);
        char what[64];
        snprintf(what, sizeof what, "truncated to %zu", len);
        expect_reject(t, len, rs, dx.d, NULL, what);
        free(t);
    }
    char *c = malloc(n);
    memcpy(c, b, n);
    for (size_t bit = 0; bit < n * 8; bit++) {
        c[bit / 8] ^= (char)(1 << (bit % 8));
        char what[64];
        snprintf(what, sizeof what, "bit %zu flipped", bit);
        expect_reject(c, n, rs, dx.d,
                      bit < 32    ? "bad magic"
                      : bit == 32 ? "checksum" /* version 2 -> 3, which is read (SPEC 3.1) */
                      : bit < 48  ? "unsupported version"
                                  : "checksum",
                      what);
        c[bit / 8] ^= (char)(1 << (bit % 8));
    }
    /* a trailing byte after a valid snapshot */
    char *t = malloc(n + 1);
    memcpy(t, b, n);
    t[n] = 0;
    expect_reject(t, n + 1, rs, dx.d, "checksum", "appended byte");
    free(t);
    /* version 4, correctly sealed */
    c[4] = 4;
    cs_snapshot_seal(c, n);
    expect_reject(c, n, rs, dx.d, "unsupported version 4", "version 4");
    /* a v2 state labelled v3 (no identity byte in its records), correctly sealed */
    c[4] = 3;
    cs_snapshot_seal(c, n);
    expect_reject(c, n, rs, dx.d, "snapshot", "v2 records as version 3");
    free(c);

    /* other layouts */
    const char *other[] = {rules_other_names, rules_other_count, rules_other_journey,
                           rules_other_dim};
    const char *want[] = {"layout signature", "layout differs", "layout signature",
                          "layout signature"};
    for (int i = 0; i < 4; i++) {
        cs_ruleset *o = load(other[i]);
        dicts dy;
        dicts_init(&dy, o);
        expect_reject(b, n, o, dy.d, want[i], "other layout");
        dicts_free(&dy);
        cs_rules_destroy(o);
    }
    free(b);
    side_free(&A);
    dicts_free(&dx);
    cs_rules_destroy(rs);
}

/* ---- hand-built snapshots, written from docs/snapshot-format.md ---------------------------- */

typedef struct hb {
    uint8_t b[1024];
    size_t n;
} hb;

static void hb_u8(hb *x, unsigned v)
{
    x->b[x->n++] = (uint8_t)v;
}

static void hb_le(hb *x, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        hb_u8(x, (unsigned)(v >> (8 * i)) & 0xff);
}

static void hb_uv(hb *x, uint64_t v)
{
    while (v >= 0x80) {
        hb_u8(x, (unsigned)(v & 0x7f) | 0x80);
        v >>= 7;
    }
    hb_u8(x, (unsigned)v);
}

static void hb_strn(hb *x, const char *s, size_t len)
{
    hb_uv(x, len);
    memcpy(x->b + x->n, s, len);
    x->n += len;
}

static void hb_str(hb *x, const char *s) { hb_strn(x, s, strlen(s)); }

static uint64_t doc_layout(const cs_ruleset *rs)
{
    char buf[512];
    size_t n = 0;
    const char *j = cs_rules_journey(rs);
    memcpy(buf + n, j, strlen(j) + 1);
    n += strlen(j) + 1;
    for (int i = 0; i < cs_rules_nstages(rs); i++) {
        const char *s = cs_rules_stage_name(rs, i);
        memcpy(buf + n, s, strlen(s) + 1);
        n += strlen(s) + 1;
    }
    for (int d = 0; d < cs_rules_ndims(rs); d++) {
        const char *s = cs_rules_dim(rs, d)->name;
        memcpy(buf + n, s, strlen(s) + 1);
        n += strlen(s) + 1;
    }
    return XXH3_64bits(buf, n);
}

/* The format version the hand-built snapshots are written in: 2 (what the writer writes), or 1
 * (still read, with stand-ins for the times v1 did not keep). */
static int hb_version = 2;

static void hb_header(hb *x, const cs_ruleset *rs, int64_t max_t, uint64_t customers,
                      uint64_t sessions)
{
    x->n = 0;
    hb_u8(x, 'C');
    hb_u8(x, 'S');
    hb_u8(x, 'N');
    hb_u8(x, 'P');
    hb_le(x, (uint64_t)hb_version, 2);
    hb_u8(x, (unsigned)cs_rules_nstages(rs));
    hb_u8(x, (unsigned)cs_rules_ndims(rs));
    hb_le(x, doc_layout(rs), 8);
    hb_le(x, 1000, 8);                     /* next_offset */
    hb_le(x, (uint64_t)max_t - 60000, 8);  /* applied_wm */
    hb_le(x, (uint64_t)max_t, 8);
    hb_le(x, customers, 8);
    hb_le(x, sessions, 8);
}

static void hb_seal(hb *x)
{
    hb_le(x, XXH3_64bits(x->b, x->n), 8);
}

/* v2 fields of the next record: last - C.first, and the session's reach (after its start) */
static uint64_t hb_first, hb_reach;

/* One customer record. sess: -1 none; else session stage, with last delta dsl, span, refs.
 * v2: h2 is 2 bytes, the journey start follows the last delta, the session's stage time its
 * stage byte (when the stage is not 0). */
static void hb_cust(hb *x, uint64_t dh, uint32_t h2, uint64_t dlast, unsigned stage, int sess,
                    uint64_t dsl, uint64_t span, uint64_t r0, uint64_t r1)
{
    hb_uv(x, dh);
    hb_le(x, h2, hb_version == 1 ? 4 : 2);
    hb_uv(x, dlast);
    if (hb_version >= 2)
        hb_uv(x, hb_first);
    hb_u8(x, stage | (sess >= 0 ? 0x40u : 0) | (dsl ? 0x80u : 0));
    if (sess >= 0) {
        if (dsl)
            hb_uv(x, dsl);
        hb_uv(x, span);
        hb_u8(x, (unsigned)sess);
        if (hb_version >= 2 && sess > 0)
            hb_uv(x, hb_reach);
        hb_uv(x, r0);
        hb_uv(x, r1);
    }
}

enum {
    V_OK,
    V_DUP,
    V_ORDER,
    V_CSTAGE,
    V_SSTAGE,
    V_REF,
    V_SPAN32,
    V_SPANMIN,
    V_FLAG7,
    V_DSL0,
    V_OVERLONG,
    V_TABCOUNT,
    V_EMPTYSTR,
    V_DUPSTR,
    V_TRAILING,
    V_FIT,
    V_SESSMORE,
    V_SESSLESS,
    V_NOMAXT,
    V_UNREF,
    V_LONGSTR, /* a value the dictionary cuts (CS_MAX_DIM_VALUE_BYTES): never written */
    V_NULSTR,  /* a value with a NUL byte: likewise */
    V_REACH,   /* v2: the session reached its stage after its last event */
    V_FIRST,   /* v2: a journey start beyond 2^40 - 1 ms before the last event */
    V_COUNT
};

static const char *const v_want[V_COUNT] = {
    NULL, "present twice", "not in hash order", "journey stage 6 out of range",
    "session stage 7 out of range", "out of range", "span", "span", "session flag bits",
    "delta 0", "shortest form", "table holds", "empty value", "repeats", "trailing",
    "cannot fit", "more sessions", "header says", "no highest event time", "table holds",
    "longer than 256 bytes or with a NUL byte", "longer than 256 bytes or with a NUL byte",
    "beyond its span", "journey start"};

static void hb_variant(hb *x, const cs_ruleset *rs, int v)
{
    const int64_t mt = T0 + 5 * MIN;
    uint64_t sessions = v == V_SESSMORE ? 1 : v == V_SESSLESS ? 3 : 2;
    uint64_t customers = v == V_FIT ? 40 : 3;
    hb_header(x, rs, v == V_NOMAXT ? INT64_MIN : v == V_SPANMIN ? INT64_MIN + 10 : mt, customers,
              sessions);
    /* 1: no session, journey stage purchase */
    if (v == V_OVERLONG) {
        hb_u8(x, 0x85);
        hb_u8(x, 0x00); /* 5 in two bytes */
        hb_le(x, 0xAABBCCDD, hb_version == 1 ? 4 : 2);
        hb_uv(x, 0);
        if (hb_version >= 2)
            hb_uv(x, 0);
        hb_u8(x, 3);
    } else if (v == V_FLAG7) {
        hb_uv(x, 5);
        hb_le(x, 0xAABBCCDD, hb_version == 1 ? 4 : 2);
        hb_uv(x, 0);
        if (hb_version >= 2)
            hb_uv(x, 0);
        hb_u8(x, 3 | 0x80);
    } else {
        hb_first = v == V_FIRST ? (uint64_t)1 << 40 : v == V_SPANMIN ? 0 : 7000;
        hb_cust(x, 5, 0xAABBCCDD, v == V_SPANMIN ? 0 : 120000, v == V_CSTAGE ? 6 : 3, -1, 0, 0, 0,
                0);
    }
    hb_first = v == V_SPANMIN ? 0 : 100000;
    hb_reach = v == V_REACH ? 60001 : 15000;
    /* 2: same h, greater h2, session: channel value 0 ("social"), persona _unknown */
    uint32_t h2 = v == V_DUP ? 0xAABBCCDD : v == V_ORDER ? 0x11111111 : 0xAABBCCDE;
    hb_cust(x, 0, h2, 0, 2, v == V_SSTAGE ? 7 : 2, v == V_SPANMIN ? 0 : 30000,
            v == V_SPAN32 ? (uint64_t)UINT32_MAX + 1 : v == V_SPANMIN ? 11 : 60000,
            v == V_REF ? 3 : 2, 0);
    if (v == V_DSL0) { /* the flag set, delta 0: patch the flags byte of record 2 */
        x->n = 0;
        hb_header(x, rs, mt, customers, sessions);
        hb_first = 7000;
        hb_cust(x, 5, 0xAABBCCDD, 120000, 3, -1, 0, 0, 0, 0);
        hb_uv(x, 0);
        hb_le(x, 0xAABBCCDE, hb_version == 1 ? 4 : 2);
        hb_uv(x, 0);
        if (hb_version >= 2)
            hb_uv(x, 100000);
        hb_u8(x, 2 | 0x40 | 0x80);
        hb_uv(x, 0);
        hb_uv(x, 60000);
        hb_u8(x, 2);
        if (hb_version >= 2)
            hb_uv(x, 15000);
        hb_uv(x, 2);
        hb_uv(x, 0);
    }
    /* 3: session at the customer's last, span 0: channel "email" (ref 3: the next new table
     * entry), persona _other */
    hb_first = 0;
    hb_reach = 0;
    hb_cust(x, (uint64_t)1 << 40, 7, 5, 1, 1, 0, 0, 3, 1);
    /* tables: channel [social, email], persona [] */
    hb_uv(x, v == V_TABCOUNT ? 1 : v == V_UNREF ? 3 : 2);
    hb_str(x, v == V_EMPTYSTR ? "" : "social");
    if (v == V_LONGSTR) {
        char longv[CS_MAX_DIM_VALUE_BYTES + 1];
        memset(longv, 'e', sizeof longv);
        hb_strn(x, longv, sizeof longv);
    } else if (v == V_NULSTR) {
        hb_strn(x, "em\0ail", 6);
    } else if (v != V_TABCOUNT) {
        hb_str(x, v == V_DUPSTR ? "social" : "email");
    }
    if (v == V_UNREF)
        hb_str(x, "print");
    hb_uv(x, 0);
    if (v == V_TRAILING)
        hb_u8(x, 0);
    hb_seal(x);
}

/* The example of docs/snapshot-format.md, byte for byte: its hex dump is read from the doc
 * (the first column an offset, then two-digit hex bytes up to the comment) and compared with
 * what the writer makes of the events the doc describes. */
static void doc_example_bytes(void **st)
{
    FILE *f = fopen("../docs/snapshot-format.md", "r");
    assert_non_null(f);
    uint8_t want[512];
    size_t nwant = 0;
    char line[512];
    int in = 0, seen = 0;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "## Example", 10))
            seen = 1;
        else if (seen && !strncmp(line, "```", 3)) {
            if (in)
                break;
            in = 1;
        } else if (in && line[0] != ' ') {
            char *p = line + 2; /* after the offset */
            for (;;) {
                while (*p == ' ')
                    p++;
                unsigned v;
                int used = 0;
                if (sscanf(p, "%2x%n", &v, &used) != 1 || used != 2 || (p[2] != ' ' && p[2] != '\n'))
                    break;
                want[nwant++] = (uint8_t)v;
                p += 2;
            }
        }
    }
    fclose(f);
    assert_true(nwant > 100);
    const char *yaml = "journey: retail\n"
                       "stages: [awareness, consideration, purchase, service, loyalty]\n"
                       "session: { gap: 30m, max_duration: 24h, lateness: 30s }\n"
                       "dimensions:\n"
                       "  channel: { max_values: 8 }\n"
                       "  persona: { path: properties.persona, max_values: 4 }\n" RULES_BODY;
    cs_ruleset *rs = load(yaml);
    dicts dx;
    dicts_init(&dx, rs);
    side A;
    side_init(&A, rs, &dx, NULL);
    const int64_t T = 1793520000000LL;
    tev e1 = {"alice", "page", "social", NULL, NULL, T};
    tev e2 = {"alice", "checkout_started", NULL, NULL, NULL, T + 90000};
    tev e3 = {"bob", "scroll", NULL, NULL, NULL, T};
    feed(&A, rs, &e1);
    feed(&A, rs, &e2);
    feed(&A, rs, &e3);
    A.c.W = T + 31 * MIN;
    cs_pstate_advance(A.p, &A.c);
    char *b;
    size_t n;
    snap(&A, rs, 1000, T + 31 * MIN, &b, &n, NULL);
    if (n != nwant || memcmp(want, b, n)) {
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, "%02x%s", (uint8_t)b[i], i % 16 == 15 ? "\n" : " ");
        fprintf(stderr, "\n");
    }
    assert_same_bytes((const char *)want, nwant, b, n);
    free(b);
    side_free(&A);
    dicts_free(&dx);
    cs_rules_destroy(rs);
}

static void hand_built_snapshots(void **st)
{
    cs_ruleset *rs = load(rules_main);
    dicts dx;
    dicts_init(&dx, rs);
    hb x;
    /* the valid one: accepted, and re-written byte for byte (so the document is the format) */
    hb_variant(&x, rs, V_OK);
    char err[256] = "";
    cs_snap_info info;
    cs_pstate *p = cs_snapshot_read((const char *)x.b, x.n, rs, dx.d, &info, err, sizeof err);
    if (!p)
        fail_msg("hand-built snapshot rejected: %s", err);
    assert_int_equal(info.customers, 3);
    assert_int_equal(info.sessions, 2);
    assert_int_equal(info.next_offset, 1000);
    assert_int_equal(info.applied_wm, T0 + 4 * MIN);
    side B;
    side_init(&B, rs, &dx, p);
    char *b;
    size_t n;
    snap(&B, rs, 1000, T0 + 4 * MIN, &b, &n, NULL);
    assert_same_bytes((const char *)x.b, x.n, b, n);
    free(b);
    /* what it holds: the journey of customer 1, the two sessions with their dimensions */
    B.c.W = T0 + 4 * MIN;
    end_all(&B, T0 + 4 * MIN);
    cs_counts *c = side_counts(&B, rs);
    assert_int_equal(cs_counts_get(c, "ended", "consideration"), 1);
    assert_int_equal(cs_counts_get(c, "ended", "awareness"), 1);
    assert_int_equal(cs_counts_get(c, "by:channel:ended", "social/consideration"), 1);
    assert_int_equal(cs_counts_get(c, "by:channel:ended", "email/awareness"), 1);
    assert_int_equal(cs_counts_get(c, "by:persona:ended", "_unknown/consideration"), 1);
    assert_int_equal(cs_counts_get(c, "by:persona:ended", "_other/awareness"), 1);
    cs_counts_free(c);
    side_free(&B);

    /* the same state written as v1 (no journey start, no stage time, 32-bit h2): still read,
     * with the same counts (the §4.1 times are the stand-ins; docs/snapshot-format.md) */
    hb_version = 1;
    hb_variant(&x, rs, V_OK);
    p = cs_snapshot_read((const char *)x.b, x.n, rs, dx.d, &info, err, sizeof err);
    if (!p)
        fail_msg("hand-built v1 snapshot rejected: %s", err);
    assert_int_equal(info.customers, 3);
    assert_int_equal(info.sessions, 2);
    side_init(&B, rs, &dx, p);
    B.c.W = T0 + 4 * MIN;
    end_all(&B, T0 + 4 * MIN);
    c = side_counts(&B, rs);
    assert_int_equal(cs_counts_get(c, "ended", "consideration"), 1);
    assert_int_equal(cs_counts_get(c, "by:channel:ended", "email/awareness"), 1);
    cs_counts_free(c);
    side_free(&B);

    /* each variant is wrong in one field behind a correct checksum */
    for (int v = 1; v < V_COUNT; v++) {
        hb_version = 2;
        hb_variant(&x, rs, v);
        char what[32];
        snprintf(what, sizeof what, "variant %d", v);
        char *copy = malloc(x.n);
        memcpy(copy, x.b, x.n);
        expect_reject(copy, x.n, rs, dx.d, v_want[v], what);
        free(copy);
    }
    /* none of the rejected ones left a value in the shared dictionary */
    assert_int_equal(atomic_load(&dx.d[0].count), 2); /* social, email: from the valid one */
    dicts_free(&dx);
    cs_rules_destroy(rs);
}

/* ---- the wheels of a restored pstate ----------------------------------------------------- */

static void restored_entries_expire_on_time(void **st)
{
    cs_ruleset *rs = load(rules_main);
    dicts dx;
    dicts_init(&dx, rs);
    side A;
    side_init(&A, rs, &dx, NULL);
    tev e1 = {"u1", "product_view", "social", NULL, NULL, T0};
    tev e2 = {"u2", "page", "search", NULL, NULL, T0 + 20 * MIN};
    feed(&A, rs, &e1);
    feed(&A, rs, &e2);
    A.c.W = T0 + 15 * MIN; /* u1's session (deadline T0 + 10m) ends; u1 stays a customer */
    cs_pstate_advance(A.p, &A.c);
    char *b;
    size_t n;
    cs_snap_info wi;
    snap(&A, rs, 2, A.c.W, &b, &n, &wi);
    assert_int_equal(wi.customers, 2);
    assert_int_equal(wi.sessions, 1);
    char err[256];
    cs_pstate *p = cs_snapshot_read(b, n, rs, dx.d, NULL, err, sizeof err);
    assert_non_null(p);
    free(b);
    side B;
    side_init(&B, rs, &dx, p);
    cs_pstate_stats s;

    /* u2's session: deadline T0 + 30m, ends when W passes it, not before */
    B.c.W = T0 + 30 * MIN;
    cs_pstate_advance(B.p, &B.c);
    cs_pstate_stats_get(B.p, &s);
    assert_int_equal(s.sessions, 1);
    B.c.W = T0 + 30 * MIN + 1;
    cs_pstate_advance(B.p, &B.c);
    cs_pstate_stats_get(B.p, &s);
    assert_int_equal(s.sessions, 0);
    cs_counts *c = side_counts(&B, rs);
    assert_int_equal(cs_counts_get(c, "ended_by", "gap"), 1);
    assert_int_equal(cs_counts_get(c, "active", "awareness"), -1);
    assert_int_equal(cs_counts_get(c, "by:channel:active", "search/awareness"), -1);
    cs_counts_free(c);

    /* u1 is forgotten when W passes its last + customer_ttl, not before */
    B.c.W = T0 + TTL;
    cs_pstate_advance(B.p, &B.c);
    cs_pstate_stats_get(B.p, &s);
    assert_int_equal(s.customers, 2);
    B.c.W = T0 + TTL + 1;
    cs_pstate_advance(B.p, &B.c);
    cs_pstate_stats_get(B.p, &s);
    assert_int_equal(s.customers, 1);
    c = side_counts(&B, rs);
    assert_int_equal(cs_counts_get(c, "customers", "consideration"), -1);
    assert_int_equal(cs_counts_get(c, "customers", "awareness"), 0);
    cs_counts_free(c);
    B.c.W = T0 + 20 * MIN + TTL + 1;
    cs_pstate_advance(B.p, &B.c);
    cs_pstate_stats_get(B.p, &s);
    assert_int_equal(s.customers, 0);
    c = side_counts(&B, rs);
    assert_int_equal(cs_counts_get(c, "customers", "awareness"), -1);
    cs_counts_free(c);
    side_free(&A);
    side_free(&B);
    dicts_free(&dx);
    cs_rules_destroy(rs);
}

/* A restored session whose deadline the restoring rules' (shorter) max_duration has passed:
 * the new conf applies, as on a rule reload. */
static void restore_uses_readers_session_conf(void **st)
{
    cs_ruleset *rs = load(rules_main);
    const char *shorter = "journey: snap\n"
                          "stages: [awareness, consideration, purchase, service, loyalty]\n"
                          "session: { gap: 5m, max_duration: 40m, lateness: 30s }\n"
                          "customer_ttl: 3h\n"
                          "dimensions:\n"
                          "  channel: { max_values: 8 }\n"
                          "  persona: { path: properties.persona, max_values: 4 }\n" RULES_BODY;
    cs_ruleset *rs2 = load(shorter);
    dicts dx;
    dicts_init(&dx, rs);
    side A;
    side_init(&A, rs, &dx, NULL);
    tev e1 = {"u1", "page", "social", NULL, NULL, T0};
    feed(&A, rs, &e1);
    char *b;
    size_t n;
    snap(&A, rs, 1, INT64_MIN, &b, &n, NULL);
    char err[256];
    cs_pstate *p = cs_snapshot_read(b, n, rs2, dx.d, NULL, err, sizeof err);
    assert_non_null(p);
    free(b);
    side B;
    side_init(&B, rs2, &dx, p);
    B.c.W = T0 + 5 * MIN + 1; /* past the 5m gap, not the 10m one */
    cs_pstate_advance(B.p, &B.c);
    cs_pstate_stats s;
    cs_pstate_stats_get(B.p, &s);
    assert_int_equal(s.sessions, 0);
    side_free(&A);
    side_free(&B);
    dicts_free(&dx);
    cs_rules_destroy(rs);
    cs_rules_destroy(rs2);
}

/* Event times at both ends of int64 (the decoder accepts -(2^63 - 1) .. 2^63 - 1 epoch ms): the
 * deltas below max_t span the whole range and still round-trip. */
static void extreme_times_round_trip(void **st)
{
    cs_ruleset *rs = load(rules_main);
    dicts dx;
    dicts_init(&dx, rs);
    side A;
    side_init(&A, rs, &dx, NULL);
    tev e1 = {"early", "page", "social", NULL, NULL, INT64_MIN + 1};
    tev e2 = {"late", "checkout_started", NULL, "old", NULL, INT64_MAX};
    tev e3 = {"zero", "page", "search", NULL, NULL, 0};
    feed(&A, rs, &e1);
    feed(&A, rs, &e2);
    feed(&A, rs, &e3);
    char *b, *b2;
    size_t n, n2;
    cs_snap_info wi;
    snap(&A, rs, INT64_MAX, INT64_MIN + 1, &b, &n, &wi);
    assert_int_equal(wi.max_t, INT64_MAX);
    char err[256];
    cs_snap_info ri;
    cs_pstate *p = cs_snapshot_read(b, n, rs, dx.d, &ri, err, sizeof err);
    if (!p)
        fail_msg("%s", err);
    assert_int_equal(ri.next_offset, INT64_MAX);
    assert_int_equal(ri.applied_wm, INT64_MIN + 1);
    side B;
    side_init(&B, rs, &dx, p);
    snap(&B, rs, INT64_MAX, INT64_MIN + 1, &b2, &n2, NULL);
    assert_same_bytes(b, n, b2, n2);
    /* the wheels cope: "early" and "zero" end by gap, "late" (deadline INT64_MAX) by drain */
    B.c.W = 1000 * MIN;
    cs_pstate_advance(B.p, &B.c);
    end_all(&B, INT64_MAX - 1);
    cs_counts *c = side_counts(&B, rs);
    assert_int_equal(cs_counts_get(c, "ended_by", "gap"), 2);
    assert_int_equal(cs_counts_get(c, "ended_by", "drain"), 1);
    assert_int_equal(cs_counts_get(c, "by:persona:ended", "old/purchase"), 1);
    cs_counts_free(c);
    free(b);
    free(b2);
    side_free(&A);
    side_free(&B);
    dicts_free(&dx);
    cs_rules_destroy(rs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(equivalence_after_tick),
        cmocka_unit_test(equivalence_between_ticks),
        cmocka_unit_test(equivalence_after_watermark_jump),
        cmocka_unit_test(equivalence_shared_dicts_other),
        cmocka_unit_test(equivalence_same_process),
        cmocka_unit_test(many_customers_round_trip),
        cmocka_unit_test(prefetch_customer_tells_new_from_known),
        cmocka_unit_test(empty_round_trip),
        cmocka_unit_test(small_round_trip_and_join),
        cmocka_unit_test(rejects_truncation_and_bit_flips),
        cmocka_unit_test(hand_built_snapshots),
        cmocka_unit_test(doc_example_bytes),
        cmocka_unit_test(restored_entries_expire_on_time),
        cmocka_unit_test(restore_uses_readers_session_conf),
        cmocka_unit_test(extreme_times_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
