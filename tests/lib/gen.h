/* gen.h — deterministic synthetic clickstream for tests and benchmarks (in memory).
 *
 * Shapes the data so that the outcome does not depend on how partitions interleave (see
 * docs/semantics.md "Determinism"): within a partition, events are out of order by at most
 * lateness/2; deliberately late events are older than (first time the customer was seen) - gap
 * - lateness, so they are late under any watermark. */
#ifndef CS_TEST_GEN_H
#define CS_TEST_GEN_H

#include <stddef.h>
#include <stdint.h>

#include "clickstage.h"

typedef struct cs_gen_conf {
    uint64_t seed;
    int nparts;
    uint64_t nevents;
    uint32_t ncustomers;
    int64_t start_ms;       /* event time of the first event */
    int64_t span_ms;        /* event time covered by the stream (approx.) */
    double invalid_frac;    /* share of invalid messages (all reasons but too_large) */
    double too_large_frac;  /* share of >64 KiB messages */
    double late_frac;
    double long_frac;       /* share of sessions that outlive max_duration */
    double mean_events;     /* mean events per session */
    int first_pass;         /* 1: the first ncustomers sessions visit every customer once */
    int64_t gap_ms, lateness_ms, max_duration_ms;
} cs_gen_conf;

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

void cs_gen_defaults(cs_gen_conf *c);
cs_gen_out *cs_gen_run(const cs_gen_conf *c);
void cs_gen_free(cs_gen_out *o);

/* The partition a keyed producer would pick for a customer id (murmur2 is Kafka's; any fixed
 * hash is fine here). */
int cs_gen_partition(const char *cust, size_t len, int nparts);

#endif
