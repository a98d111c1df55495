/* gen.h — the deterministic synthetic clickstream of SPEC §6, shared by clickstage-loadgen,
 * the tests and the benchmarks.
 *
 * What it generates: customers with Zipf-like activity (a few are very active, most come back
 * rarely), three personas with their own channel mix and service channel (young: social media
 * and live chat; family: search, display, e-mail; senior: print and search, and the phone
 * line), per-persona progression probabilities through the five retail stages (drop-off is a
 * session ending before the next step), several sessions per customer over days, Segment-style
 * JSON (track/page calls, userId/anonymousId, nested context.page.url, context.campaign.medium,
 * properties.persona), a share of out-of-order, late and invalid messages. Same seed, same
 * stream, byte for byte, whatever the rate it is sent at and however many threads send it.
 *
 * Structure: one independent stream per partition. The plan (cs_gen_plan) gives every customer
 * to the partition a keyed producer would pick (cs_gen_partition of its id) and every partition
 * a share of the messages proportional to its customers. Each partition's stream
 * (cs_gen_pstream) has its own random-number stream (seeded from the seed and the partition),
 * its own sessions and its own event-time axis covering [start, start + span): the k-th of its
 * n messages is paced at start + span*(k+0.5)/n and its event time is at most
 * CS_GEN_PACE_SLACK_MS behind that. So a partition's bytes depend on nothing but the
 * configuration and the partition number: threads can generate partitions independently and
 * produce exactly what one thread would have produced.
 *
 * The whole stream (cs_gen_next, --skip/--count, --unkeyed) is the partitions' streams merged
 * in a fixed order that depends on the message counts only: message k of partition p has the
 * key floor((2k+1) * nevents / (2 n_p)) and the stream is ordered by (key, p). Keys run from 0
 * to nevents, so a message's key is about its position in the whole stream and its event time
 * is about start + span * key / nevents, within a few seconds across partitions.
 *
 * Determinism of the outcome (docs/semantics.md "Determinism"): within a partition events are
 * out of order by at most lateness/2; deliberately late events are older than the customer's
 * first event - gap - lateness, which is late under every possible watermark. Every message of a
 * customer, invalid ones included, goes to that customer's partition. So the counts a drain must
 * produce do not depend on how partitions interleave, and the reference model can compute them.
 *
 * Threads: a cs_gen_plan is immutable after cs_gen_plan_new and may be shared by any number of
 * threads; a cs_gen_pstream or a cs_gen belongs to one thread at a time.
 */
#ifndef CS_LOADGEN_GEN_H
#define CS_LOADGEN_GEN_H

#include <stddef.h>
#include <stdint.h>

#include "clickstage.h"

typedef struct cs_gen_conf {
    uint64_t seed;
    int nparts;
    uint64_t nevents;       /* messages, invalid ones included */
    uint32_t ncustomers;
    int64_t start_ms;       /* event time of the first event */
    int64_t span_ms;        /* event time covered by the stream */
    double invalid_frac;    /* share of invalid messages (all reasons but too_large) */
    double too_large_frac;  /* share of >64 KiB messages */
    double late_frac;       /* share of deliberately late events */
    double skew_frac;       /* share of events from devices with a wrong clock: their time is
                               far in the future (beyond any max_future: future_time) or before
                               2000 (bad_time); 0 = none */
    double ooo_frac;        /* share of events out of order (by up to lateness/2) */
    double long_frac;       /* share of sessions that outlive max_duration */
    double mean_events;     /* mean events per session */
    int first_pass;         /* 1: each partition's first sessions visit each of its customers once
                               (not with churn) */
    uint32_t churn;         /* customers arriving over the stream (0 = none, the v1 stream): ids
                               0 .. ncustomers + churn - 1 exist; at a fraction x of the stream
                               the active ones are [x * churn, x * churn + ncustomers), the
                               newest the most active (the Zipf-like draw from the top), so old
                               customers fade and then fall silent for good */
    uint32_t persona_cohort; /* 0: the persona property is the customer's persona (young,
                               family, senior); K > 0: it is the customer's cohort "c<id / K>"
                               instead (same draws, same journeys): with churn, new values keep
                               arriving all through the stream, past any max_values (the soak) */
    int format;             /* CS_GEN_*: how messages are spelled (same journeys in each) */
    /* SPEC §3.1 anonymous-then-known journeys (docs/identity.md "Generator"): 0 = off (v1's
     * ids, today's bytes). Otherwise every generated "customer" is a device (the message key,
     * its partition, `anonymousId`); a device logs in with probability login_frac (of its
     * person), at its 1st..5th event (so mostly inside its first visit), and from then on its
     * events also carry `userId` = its person; a share second_device_frac of the odd-numbered
     * devices are the second device of the person of the device before them (which may be on
     * another partition); 5 % of the devices that log in are shared: every 4th of their
     * events after the login carries another person (SPEC §3.1 conflicts). Segment spelling
     * only. */
    double login_frac;
    double second_device_frac;
    int64_t gap_ms, lateness_ms, max_duration_ms;
} cs_gen_conf;

void cs_gen_defaults(cs_gen_conf *c);

/* Formats the generator speaks (SPEC §1.1), in the order of pipeline/formats.c's table, so
 * cs_format_at(CS_GEN_x) names them. The random draws do not depend on the format: the same
 * seed gives the same journeys, Kafka timestamps and partitions in each, and the Segment
 * spelling's ground truth (loadgen/refmodel.c) is every format's, except that Snowplow's TSV
 * has no JSON-level reasons: not_json, not_object and too_deep are not_tsv there
 * (cs_gen_expect_reason). */
#define CS_GEN_HAS_FORMATS 1
enum { CS_GEN_SEGMENT = 0, CS_GEN_RUDDERSTACK, CS_GEN_POSTHOG, CS_GEN_MIXPANEL, CS_GEN_AMPLITUDE,
       CS_GEN_SNOWPLOW, CS_GEN_NFORMATS };
/* The invalid reason the message generated as `reason` (in the Segment spelling) has in
 * `format`. */
const char *cs_gen_expect_reason(int format, const char *reason);

/* How far a partition's event time may fall behind its pace (start + span*(k+0.5)/n): a
 * session event due earlier is sent this much behind the pace, as if the customer had paused
 * a little longer. Bounds the event-time skew between partitions in the merged order. */
#define CS_GEN_PACE_SLACK_MS 2000

typedef struct cs_gen_msg {
    const char *payload;    /* valid until the next call on the same stream */
    size_t len;
    const char *key;        /* the customer id (the Kafka message key) */
    size_t keylen;
    int part;               /* partition: cs_gen_partition(key) */
    int64_t ts_ms;          /* the producer (Kafka) timestamp */
    int invalid, late;      /* what it was generated as (skewed-clock events are invalid) */
    uint64_t index;         /* position in its partition's stream (0-based) */
    uint64_t key_pos;       /* its merge key: about its position in the whole stream */
} cs_gen_msg;

/* ---- the plan ---- */
typedef struct cs_gen_plan cs_gen_plan;
/* NULL when the configuration cannot make a stream (nparts < 1, no customers). */
cs_gen_plan *cs_gen_plan_new(const cs_gen_conf *c);
void cs_gen_plan_free(cs_gen_plan *pl);
const cs_gen_conf *cs_gen_plan_conf(const cs_gen_plan *pl);
/* Messages of partition p in the whole stream. */
uint64_t cs_gen_plan_count(const cs_gen_plan *pl, int p);
/* Messages of partition p among the first n of the whole stream (n >= nevents: all of them).
 * For --skip/--count: the whole stream's messages [a, b) are partition p's
 * [before(p, a), before(p, b)). O(nparts * log nevents). */
uint64_t cs_gen_plan_before(const cs_gen_plan *pl, int p, uint64_t n);
/* The merge key of partition p's message k (see above). */
uint64_t cs_gen_plan_key(const cs_gen_plan *pl, int p, uint64_t k);

/* ---- one partition's stream ---- */
typedef struct cs_gen_pstream cs_gen_pstream;
cs_gen_pstream *cs_gen_pstream_new(const cs_gen_plan *pl, int p);
/* 1 and *m filled, or 0 at the end of the partition's messages. */
int cs_gen_pstream_next(cs_gen_pstream *s, cs_gen_msg *m);
/* Generates and drops up to n messages (the random streams cannot jump); returns how many. */
uint64_t cs_gen_pstream_skip(cs_gen_pstream *s, uint64_t n);
void cs_gen_pstream_destroy(cs_gen_pstream *s);

/* ---- the whole stream, merged ---- */
typedef struct cs_gen cs_gen;
cs_gen *cs_gen_new(const cs_gen_conf *c);
/* 1 and *m filled, or 0 when nevents messages were generated. */
int cs_gen_next(cs_gen *g, cs_gen_msg *m);
void cs_gen_destroy(cs_gen *g);

/* ---- everything in memory, laid out per partition (tests, in-process benchmarks) ---- */
typedef struct cs_gen_part {
    cs_msg *msgs;
    size_t n, cap;
} cs_gen_part;

typedef struct cs_gen_out {
    char *arena;
    size_t arena_len, arena_cap;
    cs_gen_part *parts;
    int nparts;
    uint64_t nmsgs, ninvalid, nlate;
    size_t pad; /* NUL bytes after every payload in the arena (cs_gen_run_padded) */
} cs_gen_out;

cs_gen_out *cs_gen_run(const cs_gen_conf *c);
/* cs_gen_run with every payload followed by `pad` NUL bytes in the arena (not in len), as the
 * source's arena holds them: pad = CS_MSG_PAD for cs_worker_process_padded. Same messages. */
cs_gen_out *cs_gen_run_padded(const cs_gen_conf *c, size_t pad);
void cs_gen_free(cs_gen_out *o);

/* The partition a keyed producer of this generator picks for a customer id. */
int cs_gen_partition(const char *cust, size_t len, int nparts);

#endif
