/* test_watermark.c — the watermark cannot be poisoned (issue 16): one record with a wrong time
 * must not move a partition's watermark beyond what session.max_future allows, whichever input
 * it arrives through. One test per input, named after the case; each fails without the bound.
 *
 *  - an event time far ahead of its message timestamp (a device with a wrong clock): the
 *    issue's own reproduction, at every batch size;
 *  - a message timestamp far ahead of this machine's clock, on an event with no time field;
 *  - a partition that is idle while another receives the bad record;
 *  - a snapshot whose state holds a far-future time, and an applied watermark in Redis beyond
 *    the bound (both written by a build without the bound), restored by a new owner;
 *  - a rule reload that lowers lateness;
 *  - times before 2000 (a clock reset to the epoch): bad_time, no minute key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
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
#include "sessionize.h"
#include "snapshot.h"

#define T0 1793520000000LL /* 2026-11-01T08:00:00Z */
#define MIN 60000LL

static const char *rules_yaml =
    "journey: t\n"
    "stages: [awareness, consideration, purchase]\n"
    "session: { gap: 30m, max_duration: 2h, lateness: 30s }\n"
    "rules:\n"
    "  - { name: a, stage: awareness, match: { event: [page] } }\n"
    "  - { name: p, stage: purchase, match: { event: [checkout_started] } }\n";

static cs_ruleset *rules(const char *yaml)
{
    char err[512];
    cs_ruleset *rs = cs_rules_load_string(yaml, strlen(yaml), "t.yaml", err, sizeof err);
    if (!rs)
        fail_msg("rules: %s", err);
    return rs;
}

/* A stream of messages built by hand: payloads owned here, Kafka timestamps and offsets. */
typedef struct stream {
    cs_msg m[512];
    char *buf[512];
    size_t n;
} stream;

static void add(stream *s, int64_t kts, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void add(stream *s, int64_t kts, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = NULL;
    int n = vasprintf(&p, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && s->n < 512);
    s->buf[s->n] = p;
    s->m[s->n] = (cs_msg){p, (size_t)n, kts, (int64_t)s->n};
    s->n++;
}

static void stream_free(stream *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->buf[i]);
    s->n = 0;
}

static void take(cs_worker *w, const cs_engine *e, cs_counts *c)
{
    cs_agg *a = cs_worker_take_agg(w);
    cs_agg_foreach(a, cs_engine_rules(e), cs_engine_dicts((cs_engine *)e), cs_counts_agg_cb, c);
    cs_worker_give_agg(w, a);
}

/* Feeds s to one partition in batches of `batch`, ticking between batches as the daemon does,
 * then drains. Returns the counts. */
static cs_counts *drain_batches(const stream *s, size_t batch)
{
    char err[256];
    cs_engine *e = cs_engine_new(rules(rules_yaml), 1, err, sizeof err);
    assert_non_null(e);
    cs_worker *w = cs_engine_worker(e, 0);
    int part = cs_engine_add_partition(e, 0);
    for (size_t i = 0; i < s->n; i += batch) {
        size_t k = s->n - i < batch ? s->n - i : batch;
        cs_worker_process(w, part, s->m + i, k);
        cs_worker_tick(w);
    }
    cs_engine_set_part_state(e, part, CS_PART_DONE);
    cs_engine_set_watermark(e, cs_engine_final_watermark(e));
    cs_worker_end_all(w, CS_END_DRAIN);
    cs_counts *c = cs_counts_new();
    take(w, e, c);
    cs_engine_destroy(e);
    return c;
}

/* The reproduction: 100 customers at T, one event dated 9999-12-31, then 100 new
 * customers' checkout_started at T + 1 min. Before the bound: _late 91, purchase 9, every
 * session ended by gap, and the numbers depended on the batch size. */
static void test_regression_skewed_device_poisons_partition(void **state)
{
    (void)state;
    stream s = {0};
    for (int i = 0; i < 100; i++)
        add(&s, T0 + i, "{\"userId\":\"u%d\",\"event\":\"page\",\"timestamp\":%lld}", i,
            (long long)(T0 + i));
    add(&s, T0 + 100,
        "{\"userId\":\"clock-skewed-device\",\"event\":\"page\",\"timestamp\":\"9999-12-31T23:59:59Z\"}");
    for (int i = 0; i < 100; i++)
        add(&s, T0 + MIN + i, "{\"userId\":\"v%d\",\"event\":\"checkout_started\",\"timestamp\":%lld}",
            i, (long long)(T0 + MIN + i));
    static const size_t batches[] = {1, 2, 3, 7, 10, 64, 100, 101, 201};
    for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++) {
        cs_counts *c = drain_batches(&s, batches[b]);
        assert_int_equal(cs_counts_get(c, "events", "purchase"), 100);
        assert_int_equal(cs_counts_get(c, "events", "awareness"), 100);
        assert_int_equal(cs_counts_get(c, "events", "_late"), 0);
        assert_int_equal(cs_counts_get(c, "invalid", "future_time"), 1);
        assert_int_equal(cs_counts_get(c, "sessions", "started"), 200);
        assert_int_equal(cs_counts_get(c, "ended_by", "drain"), 200);
        assert_int_equal(cs_counts_get(c, "ended_by", "gap"), 0);
        assert_int_equal(cs_counts_get(c, "reached", "purchase"), 100);
        cs_counts_free(c);
    }
    stream_free(&s);
}

/* An event within max_future of its message timestamp is valid and counted (a phone a few
 * minutes fast); 1 ms past the bound it is future_time. */
static void test_regression_max_future_boundary(void **state)
{
    (void)state;
    stream s = {0};
    add(&s, T0, "{\"userId\":\"a\",\"event\":\"page\",\"timestamp\":%lld}",
        (long long)(T0 + 3600000));
    add(&s, T0, "{\"userId\":\"b\",\"event\":\"page\",\"timestamp\":%lld}",
        (long long)(T0 + 3600001));
    cs_counts *c = drain_batches(&s, 1);
    assert_int_equal(cs_counts_get(c, "events", "awareness"), 1);
    assert_int_equal(cs_counts_get(c, "invalid", "future_time"), 1);
    cs_counts_free(c);
    stream_free(&s);
}

/* No time field: the Kafka timestamp is the event time. A producer stamping messages with a
 * device's clock puts year 9999 there; the decoder cannot see it (the event time IS the message
 * timestamp), the bound by this machine's clock does. */
static void test_regression_future_message_timestamp_without_event_time(void **state)
{
    (void)state;
    stream s = {0};
    add(&s, T0, "{\"userId\":\"u1\",\"event\":\"page\"}");
    add(&s, 253402300799000LL /* 9999-12-31T23:59:59Z */, "{\"userId\":\"bad\",\"event\":\"page\"}");
    add(&s, T0 + MIN, "{\"userId\":\"u2\",\"event\":\"checkout_started\"}");
    cs_counts *c = drain_batches(&s, 3);
    assert_int_equal(cs_counts_get(c, "invalid", "future_time"), 1);
    assert_int_equal(cs_counts_get(c, "events", "purchase"), 1);
    assert_int_equal(cs_counts_get(c, "events", "_late"), 0);
    assert_int_equal(cs_counts_get(c, "ended_by", "drain"), 2);
    cs_counts_free(c);
    stream_free(&s);
}

/* Two partitions; B is idle (it does not hold the overall watermark back), A receives the bad
 * record. The overall watermark is A's, and stays at A's real events. */
static void test_regression_idle_partition_and_skewed_record(void **state)
{
    (void)state;
    char err[256];
    cs_engine *e = cs_engine_new(rules(rules_yaml), 1, err, sizeof err);
    cs_worker *w = cs_engine_worker(e, 0);
    int a = cs_engine_add_partition(e, 0), b = cs_engine_add_partition(e, 0);
    stream sa = {0}, sb = {0};
    add(&sb, T0, "{\"userId\":\"b1\",\"event\":\"page\",\"timestamp\":%lld}", (long long)T0);
    cs_worker_process(w, b, sb.m, sb.n);
    cs_engine_set_part_state(e, b, CS_PART_IDLE);
    add(&sa, T0 + 5 * MIN, "{\"userId\":\"a1\",\"event\":\"page\",\"timestamp\":%lld}",
        (long long)(T0 + 5 * MIN));
    add(&sa, T0 + 5 * MIN, "{\"userId\":\"a2\",\"event\":\"page\",\"timestamp\":\"9999-12-31T23:59:59Z\"}");
    cs_worker_process(w, a, sa.m, sa.n);
    cs_worker_tick(w);
    assert_int_equal(cs_engine_part_watermark(e, a), T0 + 5 * MIN - 30000);
    assert_int_equal(cs_engine_watermark(e), T0 + 5 * MIN - 30000);
    /* B back: the minimum again */
    cs_engine_set_part_state(e, b, CS_PART_ACTIVE);
    cs_worker_tick(w);
    assert_int_equal(cs_engine_watermark(e), T0 - 30000);
    cs_counts *c = cs_counts_new();
    take(w, e, c);
    assert_int_equal(cs_counts_get(c, "invalid", "future_time"), 1);
    assert_int_equal(cs_counts_get(c, "sessions", "ended"), 0);
    cs_counts_free(c);
    stream_free(&sa);
    stream_free(&sb);
    cs_engine_destroy(e);
}

/* A snapshot written by a build without the bound: its state holds an event at 9999-12-31 (the
 * customer, its open session and the partition's highest time). The codec reads it (it is a
 * faithful encoding), but the restore path (cmd/clickstage on_assign) must refuse it and rebuild
 * the partition from Kafka: cs_engine_time_beyond_bound says so; a real time passes. */
static void test_regression_restored_snapshot_with_future_time(void **state)
{
    (void)state;
    char err[512];
    const char *off_yaml =
        "journey: t\n"
        "stages: [awareness, consideration, purchase]\n"
        "session: { gap: 30m, max_duration: 2h, lateness: 30s, max_future: 0 }\n"
        "rules:\n"
        "  - { name: a, stage: awareness, match: { event: [page] } }\n"
        "  - { name: p, stage: purchase, match: { event: [checkout_started] } }\n";
    /* the "old build": max_future off, the bad event is counted into the state */
    cs_engine *old = cs_engine_new(rules(off_yaml), 1, err, sizeof err);
    cs_worker *w = cs_engine_worker(old, 0);
    int part = cs_engine_add_partition(old, 0);
    stream s = {0};
    add(&s, T0, "{\"userId\":\"u1\",\"event\":\"page\",\"timestamp\":%lld}", (long long)T0);
    add(&s, T0, "{\"userId\":\"bad\",\"event\":\"page\",\"timestamp\":\"9999-12-31T23:59:59Z\"}");
    cs_worker_process(w, part, s.m, s.n);
    char *snap = NULL;
    size_t len = 0;
    cs_snap_info info;
    assert_int_equal(cs_worker_snapshot_part(w, part, &snap, &len, &info), 0);
    assert_true(info.max_t > 253402300000000LL);

    /* the new owner, with the default max_future of 1 h */
    cs_engine *neu = cs_engine_new(rules(rules_yaml), 1, err, sizeof err);
    cs_pstate *st = cs_snapshot_read(snap, len, cs_engine_rules(neu), cs_engine_dicts(neu), &info,
                                     err, sizeof err);
    assert_non_null(st);
    assert_true(cs_engine_time_beyond_bound(neu, info.max_t));
    assert_false(cs_engine_time_beyond_bound(neu, T0));
    assert_false(cs_engine_time_beyond_bound(neu, INT64_MIN));
    /* with max_future off there is no bound: the old build itself */
    assert_false(cs_engine_time_beyond_bound(old, info.max_t));
    cs_pstate_destroy(st);
    free(snap);
    stream_free(&s);
    cs_engine_destroy(old);
    cs_engine_destroy(neu);
}

/* One worker, one partition with an event 10 h past T0, ticked: the watermark is 10 h past T0,
 * less the lateness. s keeps the partition's messages. */
static cs_engine *engine_ahead(stream *s)
{
    char err[256];
    cs_engine *e = cs_engine_new(rules(rules_yaml), 1, err, sizeof err);
    assert_non_null(e);
    cs_worker *w = cs_engine_worker(e, 0);
    int ahead = cs_engine_add_partition(e, 0);
    add(s, T0 + 600 * MIN, "{\"userId\":\"ahead\",\"event\":\"page\",\"timestamp\":%lld}",
        (long long)(T0 + 600 * MIN));
    cs_worker_process(w, ahead, s->m, s->n);
    cs_worker_tick(w);
    return e;
}

/* Regression (issue 12, found by the 20-minute soak: 721 events _late in 2.4 M): a partition
 * assigned since the worker's last tick is not in the minimum that tick computed; one that came
 * back hours (of event time) behind the others had its first events judged late against them. */
static void test_regression_partition_assigned_since_the_tick(void **state)
{
    (void)state;
    stream s = {0}, t = {0};
    cs_engine *e = engine_ahead(&s);
    cs_worker *w = cs_engine_worker(e, 0);
    int behind = cs_engine_add_partition(e, 0); /* 10 h behind, assigned now, no tick since */
    add(&t, T0, "{\"userId\":\"behind\",\"event\":\"page\",\"timestamp\":%lld}",
        (long long)T0);
    cs_worker_process(w, behind, t.m, t.n);
    cs_counts *c = cs_counts_new();
    take(w, e, c);
    assert_int_equal(cs_counts_get(c, "events", "_late"), 0);
    assert_int_equal(cs_counts_get(c, "events", "awareness"), 2);
    cs_counts_free(c);
    stream_free(&s);
    stream_free(&t);
    cs_engine_destroy(e);
}

/* Regression (issue 12, 20-minute soaks: 18 and 3 counts moved between fields in runs 6 and 9 of
 * 10, ~60,000 assignments each): a partition the control thread publishes while a worker ticks, after
 * the tick computed the minimum and before it advanced its partitions, was advanced to a
 * watermark it was not part of. Hours (of event time) behind, it got an applied watermark far
 * above its own, and its first events were judged late against it. The hook publishes the
 * partition in exactly that window. */
typedef struct publish_arg {
    cs_engine *e;
    int part;
} publish_arg;

static void publish_during_tick(void *arg)
{
    publish_arg *a = arg;
    if (a->part < 0)
        a->part = cs_engine_add_partition(a->e, 0);
}

static void test_regression_partition_published_during_the_tick(void **state)
{
    (void)state;
    stream s = {0}, t = {0};
    cs_engine *e = engine_ahead(&s);
    cs_worker *w = cs_engine_worker(e, 0);
    publish_arg a = {e, -1};
    cs_engine_set_tick_hook(e, publish_during_tick, &a);
    cs_worker_tick(w); /* the minimum is 10 h past T0; the partition appears after it */
    cs_engine_set_tick_hook(e, NULL, NULL);
    assert_true(a.part >= 0);
    /* 10 h behind: its first events are on time against its own watermark */
    add(&t, T0, "{\"userId\":\"behind\",\"event\":\"page\",\"timestamp\":%lld}", (long long)T0);
    add(&t, T0 + 10 * MIN,
        "{\"userId\":\"behind\",\"event\":\"checkout_started\",\"timestamp\":%lld}",
        (long long)(T0 + 10 * MIN));
    cs_worker_process(w, a.part, t.m, t.n);
    cs_worker_tick(w);
    cs_counts *c = cs_counts_new();
    take(w, e, c);
    assert_int_equal(cs_counts_get(c, "events", "_late"), 0);
    assert_int_equal(cs_counts_get(c, "events", "awareness"), 2);
    assert_int_equal(cs_counts_get(c, "events", "purchase"), 1);
    assert_int_equal(cs_counts_get(c, "reached", "purchase"), 1);
    cs_counts_free(c);
    stream_free(&s);
    stream_free(&t);
    cs_engine_destroy(e);
}

/* The applied watermark stored in Redis by such a build is 9999-12-31 too. A new owner that
 * rebuilds the partition from Kafka (no usable snapshot) replays up to the counted offset and
 * then advances its state to that watermark: unbounded, every later event would be late. */
static void test_regression_replay_to_future_applied_watermark(void **state)
{
    (void)state;
    char err[256];
    cs_engine *e = cs_engine_new(rules(rules_yaml), 1, err, sizeof err);
    cs_worker *w = cs_engine_worker(e, 0);
    stream s = {0};
    add(&s, T0, "{\"userId\":\"u1\",\"event\":\"page\",\"timestamp\":%lld}", (long long)T0);
    add(&s, T0, "{\"userId\":\"bad\",\"event\":\"page\",\"timestamp\":\"9999-12-31T23:59:59Z\"}");
    add(&s, T0 + MIN, "{\"userId\":\"u2\",\"event\":\"checkout_started\",\"timestamp\":%lld}",
        (long long)(T0 + MIN));
    /* offsets 0..1 were counted by the earlier owner, which had applied W = 9999-12-31 */
    int part = cs_engine_add_partition_state(e, 0, NULL, -1, 2, 253402300799000LL - 30000);
    assert_true(part >= 0);
    cs_worker_process(w, part, s.m, s.n);
    cs_worker_tick(w);
    cs_counts *c = cs_counts_new();
    take(w, e, c);
    /* only offset 2 is counted here: it is neither late nor does it end anything */
    assert_int_equal(cs_counts_get(c, "events", "purchase"), 1);
    assert_int_equal(cs_counts_get(c, "events", "_late"), 0);
    assert_int_equal(cs_counts_get(c, "sessions", "started"), 1);
    assert_int_equal(cs_counts_get(c, "sessions", "ended"), 0);
    assert_true(cs_engine_watermark(e) < T0 + 2 * MIN);
    cs_counts_free(c);
    stream_free(&s);
    cs_engine_destroy(e);
}

/* A reload that lowers lateness moves the watermark up to the highest event time seen, never
 * past it; with a skewed record rejected before the reload, it is the real events' time. */
static void test_regression_reload_lowering_lateness(void **state)
{
    (void)state;
    char err[256];
    cs_engine *e = cs_engine_new(rules(rules_yaml), 1, err, sizeof err);
    cs_worker *w = cs_engine_worker(e, 0);
    int part = cs_engine_add_partition(e, 0);
    stream s = {0};
    add(&s, T0, "{\"userId\":\"u1\",\"event\":\"page\",\"timestamp\":%lld}", (long long)T0);
    add(&s, T0, "{\"userId\":\"bad\",\"event\":\"page\",\"timestamp\":\"9999-12-31T23:59:59Z\"}");
    cs_worker_process(w, part, s.m, 2);
    cs_worker_tick(w);
    assert_int_equal(cs_engine_watermark(e), T0 - 30000);
    const char *zero =
        "journey: t\n"
        "stages: [awareness, consideration, purchase]\n"
        "session: { gap: 30m, max_duration: 2h, lateness: 0s }\n"
        "rules:\n"
        "  - { name: a, stage: awareness, match: { event: [page] } }\n"
        "  - { name: p, stage: purchase, match: { event: [checkout_started] } }\n";
    assert_int_equal(cs_engine_swap_rules(e, rules(zero), err, sizeof err), 0);
    add(&s, T0 + 1, "{\"userId\":\"u2\",\"event\":\"page\",\"timestamp\":%lld}", (long long)(T0 + 1));
    cs_worker_process(w, part, s.m + 2, 1);
    cs_worker_tick(w);
    assert_int_equal(cs_engine_watermark(e), T0 + 1);
    stream_free(&s);
    cs_engine_destroy(e);
}

/* A clock reset to the epoch: before 2000-01-01 the time is bad_time (decided in issue 16;
 * before, such an event in a partition with no watermark yet started a session and wrote a
 * minute key for 1970). The same holds for a message timestamp used as the event time. */
static void test_regression_epoch_clock_is_bad_time_not_a_1970_minute(void **state)
{
    (void)state;
    stream s = {0};
    add(&s, T0, "{\"userId\":\"u1\",\"event\":\"page\",\"timestamp\":\"1970-01-01T00:00:05Z\"}");
    add(&s, T0, "{\"userId\":\"u2\",\"event\":\"page\",\"ts\":0}");
    add(&s, 5000, "{\"userId\":\"u3\",\"event\":\"page\"}");
    add(&s, T0, "{\"userId\":\"u4\",\"event\":\"page\",\"timestamp\":\"2000-01-01T00:00:00Z\"}");
    cs_counts *c = drain_batches(&s, 1);
    assert_int_equal(cs_counts_get(c, "invalid", "bad_time"), 3);
    assert_int_equal(cs_counts_get(c, "events", "awareness"), 1);
    assert_int_equal(cs_counts_get(c, "minute:197001010000:reached", "awareness"), 0);
    assert_int_equal(cs_counts_get(c, "minute:200001010000:reached", "awareness"), 1);
    cs_counts_free(c);
    stream_free(&s);
}

/* max_future: 0 turns the bound off (documented): the far-future event is valid again. */
static void test_max_future_zero_is_off(void **state)
{
    (void)state;
    char err[256];
    const char *y = "journey: t\nstages: [a]\nsession: { max_future: 0 }\n"
                    "rules:\n  - { name: a, stage: a, match: { event: [page] } }\n";
    cs_ruleset *rs = rules(y);
    assert_int_equal(cs_rules_session(rs)->max_future_ms, 0);
    cs_decoder *d = cs_decoder_new(cs_rules_plan(rs));
    static cs_decoded ev;
    const char *m = "{\"userId\":\"u\",\"event\":\"page\",\"timestamp\":\"9999-12-31T23:59:59Z\"}";
    assert_int_equal(cs_decode(d, m, strlen(m), T0, &ev), CS_DECODE_OK);
    cs_decoder_destroy(d);
    cs_rules_destroy(rs);
    /* and the default is 1 h, a duration like the others */
    rs = rules("journey: t\nstages: [a]\nrules:\n  - { name: a, stage: a, match: { event: [x] } }\n");
    assert_int_equal(cs_rules_session(rs)->max_future_ms, 3600000);
    cs_rules_destroy(rs);
    const char *bad = "journey: t\nstages: [a]\nsession:\n  max_future: 5x\n"
                      "rules:\n  - { name: a, stage: a, match: { event: [x] } }\n";
    assert_null(cs_rules_load_string(bad, strlen(bad), "b.yaml", err, sizeof err));
    assert_non_null(strstr(err, "b.yaml:4:15:"));
    assert_non_null(strstr(err, "max_future"));
}

/* Regression (issue 12's code review): cs_source_update_idle read a partition's last-message
 * time, then marked it IDLE; a worker that stored a new time in between and then read the state
 * (still ACTIVE) left it IDLE with fresh messages until its next batch, and ticks could advance
 * it past its own watermark meanwhile. cs_engine_part_quiet marks first and reads again; the
 * hook runs in between, where the worker's store (and its own IDLE -> ACTIVE) can land. */
typedef struct hear_arg {
    cs_engine *e;
    int part;
    _Atomic int64_t *last;
    int64_t now;
    int full; /* 1: the worker's whole step; 0: only its store (its state read came first) */
} hear_arg;

static void hear_during_quiet(void *arg)
{
    hear_arg *a = arg;
    if (a->full)
        cs_engine_part_heard(a->e, a->part, a->last, a->now);
    else
        atomic_store(a->last, a->now);
}

static void test_regression_message_heard_while_marked_idle(void **state)
{
    (void)state;
    char err[256];
    cs_engine *e = cs_engine_new(rules(rules_yaml), 1, err, sizeof err);
    assert_non_null(e);
    int part = cs_engine_add_partition(e, 0);
    assert_true(part >= 0);
    cs_engine_set_part_state(e, part, CS_PART_ACTIVE);
    _Atomic int64_t last = 1000;
    /* heard 30 s ago: stays ACTIVE; 70 s: IDLE; a message: ACTIVE again */
    assert_int_equal(cs_engine_part_quiet(e, part, &last, 31000, 60000), 0);
    assert_int_equal(cs_engine_part_state(e, part), CS_PART_ACTIVE);
    assert_int_equal(cs_engine_part_quiet(e, part, &last, 71000, 60000), 1);
    assert_int_equal(cs_engine_part_state(e, part), CS_PART_IDLE);
    cs_engine_part_heard(e, part, &last, 72000);
    assert_int_equal(cs_engine_part_state(e, part), CS_PART_ACTIVE);
    assert_int_equal(atomic_load(&last), 72000);
    /* the races: a message heard between the control thread's two steps */
    for (int full = 0; full <= 1; full++) {
        atomic_store(&last, 1000);
        hear_arg a = {e, part, &last, 71000, full};
        cs_engine_set_idle_hook(e, hear_during_quiet, &a);
        assert_int_equal(cs_engine_part_quiet(e, part, &last, 71000, 60000), 0);
        cs_engine_set_idle_hook(e, NULL, NULL);
        assert_int_equal(cs_engine_part_state(e, part), CS_PART_ACTIVE);
    }
    /* DONE and UNASSIGNED partitions are left alone */
    cs_engine_set_part_state(e, part, CS_PART_DONE);
    atomic_store(&last, 1000);
    assert_int_equal(cs_engine_part_quiet(e, part, &last, 71000, 60000), 0);
    assert_int_equal(cs_engine_part_state(e, part), CS_PART_DONE);
    cs_engine_part_heard(e, part, &last, 72000);
    assert_int_equal(cs_engine_part_state(e, part), CS_PART_DONE);
    cs_engine_destroy(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_regression_skewed_device_poisons_partition),
        cmocka_unit_test(test_regression_max_future_boundary),
        cmocka_unit_test(test_regression_future_message_timestamp_without_event_time),
        cmocka_unit_test(test_regression_idle_partition_and_skewed_record),
        cmocka_unit_test(test_regression_restored_snapshot_with_future_time),
        cmocka_unit_test(test_regression_replay_to_future_applied_watermark),
        cmocka_unit_test(test_regression_reload_lowering_lateness),
        cmocka_unit_test(test_regression_epoch_clock_is_bad_time_not_a_1970_minute),
        cmocka_unit_test(test_max_future_zero_is_off),
        cmocka_unit_test(test_regression_partition_assigned_since_the_tick),
        cmocka_unit_test(test_regression_partition_published_during_the_tick),
        cmocka_unit_test(test_regression_message_heard_while_marked_idle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
