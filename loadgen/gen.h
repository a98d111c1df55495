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
 * stream, byte for byte, whatever the rate it is sent at.
 *
 * Determinism of the outcome (docs/semantics.md "Determinism"): within a partition events are
 * out of order by at most lateness/2; deliberately late events are older than the customer's
 * first event - gap - lateness, which is late under every possible watermark. So the counts a
 * drain must produce do not depend on how partitions interleave, and the reference model can
 * compute them.
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
    int64_t span_ms;        /* event time covered by the stream (approx.) */
    double invalid_frac;    /* share of invalid messages (all reasons but too_large) */
    double too_large_frac;  /* share of >64 KiB messages */
    double late_frac;       /* share of deliberately late events */
    double skew_frac;       /* share of events from devices with a wrong clock: their time is
                               far in the future (beyond any max_future: future_time) or before
                               2000 (bad_time); 0 = none, and then no extra random draw, so the
                               stream of a seed is the one it always was */
    double ooo_frac;        /* share of events out of order (by up to lateness/2) */
    double long_frac;       /* share of sessions that outlive max_duration */
    double mean_events;     /* mean events per session */
    int first_pass;         /* 1: the first ncustomers sessions visit every customer once */
    int64_t gap_ms, lateness_ms, max_duration_ms;
} cs_gen_conf;

void cs_gen_defaults(cs_gen_conf *c);

/* ---- streaming ---- */
typedef struct cs_gen cs_gen;
typedef struct cs_gen_msg {
    const char *payload;    /* valid until the next cs_gen_next */
    size_t len;
    const char *key;        /* the customer id (the Kafka message key) */
    size_t keylen;
    int part;               /* partition: cs_gen_partition(key) */
    int64_t ts_ms;          /* the producer (Kafka) timestamp */
    int invalid, late;      /* what it was generated as (skewed-clock events are invalid) */
} cs_gen_msg;
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
} cs_gen_out;

cs_gen_out *cs_gen_run(const cs_gen_conf *c);
void cs_gen_free(cs_gen_out *o);

/* The partition a keyed producer of this generator picks for a customer id. */
int cs_gen_partition(const char *cust, size_t len, int nparts);

#endif
