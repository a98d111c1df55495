/* timeto.h — what viewers derive from the SPEC §4.1 histograms and the §4 transitions: the
 * median and 90th percentile of a time-to-stage histogram, and the funnel of sessions that
 * reached AT LEAST each stage. One definition for /api/journey (cmd/clickstage/journey.c),
 * clickstage-top and the tests, so every viewer shows the same numbers.
 *
 * Contract
 *  - Pure functions over plain arrays: no allocation, no global state, any thread.
 *  - Buckets are indexed like aggregate.h's cs_tt_bound_s / cs_tt_bucket_name: b in
 *    0..CS_TT_NBOUNDS-1 holds durations in (bound[b-1], bound[b]] seconds (bucket 0 is exactly
 *    0), b = CS_TT_NBOUNDS ("inf") those above the last bound.
 *  - cs_tt_quantile interpolates linearly within the bucket the rank falls in (as Prometheus'
 *    histogram_quantile does): rank q x N, the bucket whose cumulative count first reaches it,
 *    lower + (upper - lower) x (rank - count below) / count in it. A rank in "inf" has no upper
 *    bound: the result is the last bound and *open is set (viewers show "> 90 d"). Returns -1
 *    for an empty histogram.
 *  - cs_funnel_at_least: at_least[k] = sum of transitions a>b with a < k+1 <= b over slots
 *    (slot 0 = _entry, s + 1 = stage s): every session crosses each boundary at most once, so
 *    this is the number of sessions whose furthest stage reached stage k or beyond, and it
 *    never grows with k (conversion <= 100 %). Rejected: a cumulative sum of `reached` from the
 *    top (it counts a session once per stage it entered: a session that went awareness ->
 *    purchase is in reached[awareness] and reached[purchase], so the sum over-counts, and a
 *    session that entered at consideration is never in awareness's). */
#ifndef CS_TIMETO_H
#define CS_TIMETO_H

#include <stdint.h>

#include "aggregate.h"

double cs_tt_quantile(const int64_t counts[CS_TT_NBUCKETS], double q, int *open);

/* transitions: [from slot][to slot], from 0 = _entry, row stride `stride` (>= ns + 1); writes
 * at_least[0..ns-1]. */
void cs_funnel_at_least(const int64_t *transitions, int stride, int ns, int64_t *at_least);

/* Short human text of a duration in seconds: "0 s", "42 s", "7.5 min", "3.2 h", "4.1 d",
 * "> 90 d" (open), "–" (negative: none). */
void cs_tt_format(double secs, int open, char *buf, int cap);

/* The same in at most 6 characters and no space, for terminals: "0s", "27s", "1.7m", "9.1h",
 * "12.4d", ">90d", "-". */
void cs_tt_format_short(double secs, int open, char *buf, int cap);

/* The bucket index of a field name ("0" ... "7776000", "inf"), -1 if it is none. */
int cs_tt_bucket_index(const char *name, int len);

#endif
