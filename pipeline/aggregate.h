/* aggregate.h — the pipeline's aggregation: the §4 counters as deltas between flushes, and the
 * counting rules that turn what happens to a session or a customer into those deltas.
 *
 * Contract
 *  - A cs_agg is owned by one thread at a time (a worker while it counts, the sink after the
 *    hand-off); nothing in it is atomic. Workers hand a full cs_agg to the sink and take an empty
 *    one back (double buffering), so the hot path never synchronises per event.
 *  - Every counter is a plain int64 delta in a dense array indexed by stage, so a flush costs
 *    O(counters that exist), never O(events): at 1M events/s and a 250 ms flush it is a few
 *    hundred HINCRBYs instead of 250,000.
 *  - Stage slots: 0 is "_none" (or "_entry" as a transition source), 1..n are stages 0..n-1.
 *  - Dimension values: 0 is "_unknown", 1 is "_other", 2.. are ids handed out by a cs_dimdict.
 *  - cs_agg_foreach() names every non-zero counter with its SPEC §4 key suffix and field, so the
 *    sink, the tests and the reference model share one definition of the layout.
 *  - The counting rules (below: a session starts, gets a dimension value, advances to a stage,
 *    ends; a customer appears, moves, is forgotten; an event is classified, unclassified or late)
 *    are static inline: sessionize.c decides WHAT happened to a session, these say which
 *    counters that moves, and the compiler puts them back on the hot path with no call.
 */
#ifndef CS_AGGREGATE_H
#define CS_AGGREGATE_H

#include <stdatomic.h>
#include <pthread.h>
#include <stdint.h>

#include "classify.h"
#include "decode.h"

#define CS_NSLOTS (CS_MAX_STAGES + 1)
#define CS_DIM_UNKNOWN 0
#define CS_DIM_OTHER 1

enum cs_end_reason { CS_END_GAP = 0, CS_END_MAX_DURATION, CS_END_DRAIN, CS_END_SHUTDOWN, CS_END__COUNT };
const char *cs_end_reason_name(int r);

/* ---- dimension dictionary: value -> small id, insert-only, shared by all workers ----------
 * Readers are lock-free (one acquire load per probe); inserts take a mutex (they happen at most
 * max_values times per dimension for the life of the process). Which values get ids when more
 * than max_values distinct ones arrive is first-come across all workers; later ones are
 * "_other". Rejected: per-partition dictionaries (a dashboard would see up to P x max_values
 * values), and a lock-free CAS insert (a lost race wastes an id, so ids stop being dense). */
/* Dimension values are cut to this many bytes (at a UTF-8 character boundary), and at their
 * first NUL byte, before they are looked up or stored. They become Redis field names
 * "<value>/<stage>", built as C strings (the sink, the comparator and the reference model all
 * use C strings; the reference model cuts the same way), and a dictionary holds max_values of them: a
 * value costs at most ~300 bytes of memory however long the event's field is, and every field
 * keeps its "/<stage>" (docs/redis.md). A value cut to nothing counts as absent (_unknown).
 * Rejected: no cut (4,096 values of up to max_bytes each: 256 MiB per dimension at the default
 * 64 KiB, unbounded when max_bytes is raised; and Redis field names of that size in every
 * flush); "_other" for long values (a referrer or page dimension would lose them all, where
 * their first 256 bytes still tell them apart). */
#define CS_MAX_DIM_VALUE_BYTES 256

typedef struct cs_dimval {
    uint64_t h;
    uint32_t id;
    uint32_t len;
    char s[];
} cs_dimval;

typedef struct cs_dimdict_mpmc {
    uint32_t max_values;
    uint32_t mask;                  /* slots - 1; slots >= 2 * max_values */
    _Atomic(cs_dimval *) *slots;
    _Atomic(cs_dimval *) *by_id;    /* [max_values + 2]; written before the slot is published */
    _Atomic uint32_t count;         /* values with an id (ids 2..count+1) */
    pthread_mutex_t lock;
} cs_dimdict_mpmc;

int cs_dimdict_init(cs_dimdict_mpmc *d, uint32_t max_values);
void cs_dimdict_free(cs_dimdict_mpmc *d);
/* Id of a value: an existing id, a new one, or CS_DIM_OTHER when full; CS_DIM_UNKNOWN when the
 * value is empty once cut (CS_MAX_DIM_VALUE_BYTES, first NUL byte). */
uint16_t cs_dimdict_id(cs_dimdict_mpmc *d, const char *s, uint32_t len);
/* Name of an id ("_unknown", "_other", or the value). Safe from any thread for ids it saw. */
const char *cs_dimdict_name(cs_dimdict_mpmc *d, uint16_t id, uint32_t *len);

/* ---- time to stage (SPEC §4.1) ----------------------------------------------------------------
 * A duration d (ms; below 0 counts as 0) goes in the first bucket b with d <= b x 1000, the
 * upper bounds below (seconds), or in "inf" (index CS_TT_NBOUNDS). Buckets are not cumulative.
 * cs_tt_bucket counts the bounds below d with a branch-free binary search (5 steps over the
 * bounds in ms, padded to 32 with INT64_MAX): ~15 instructions whatever d is. Rejected: a
 * linear scan (up to 18 compares and mispredicted branches, 2-3 times per reach; measured
 * with cachegrind as most of the per-event instructions SPEC §4.1 added). */
#define CS_TT_NBOUNDS 18
#define CS_TT_NBUCKETS (CS_TT_NBOUNDS + 1)
extern const int64_t cs_tt_bound_s[CS_TT_NBOUNDS];
extern const int64_t cs_tt_bound_ms_pad[32];              /* x 1000, then INT64_MAX */
extern const char *const cs_tt_bucket_name[CS_TT_NBUCKETS]; /* "0" ... "7776000", "inf" */

static inline int cs_tt_bucket(int64_t d_ms)
{
    /* b = how many bounds are below d: the index of the first bound >= d */
    int b = 0;
    b += (d_ms > cs_tt_bound_ms_pad[b + 15]) ? 16 : 0;
    b += (d_ms > cs_tt_bound_ms_pad[b + 7]) ? 8 : 0;
    b += (d_ms > cs_tt_bound_ms_pad[b + 3]) ? 4 : 0;
    b += (d_ms > cs_tt_bound_ms_pad[b + 1]) ? 2 : 0;
    b += (d_ms > cs_tt_bound_ms_pad[b]) ? 1 : 0;
    return b;
}

/* The histograms of one aggregate, sized by the journey (ns1 = nstages + 1 slots), in one
 * allocation: time_to[ns1][NB] (slot of the stage reached), ctime_to[ns1][NB] (customer level),
 * ttime[ns1 (from, 0 = _entry)][ns1 (to)][NB]. The *_sum_ms arrays are the sums of the
 * (clamped) durations per stage, for the Prometheus histograms' _sum only: they are not a §4.1
 * count and cs_agg_foreach does not name them (Redis never sees them). Rejected: fixed
 * [CS_NSLOTS] arrays inside cs_agg like transitions (the transition histogram alone would be
 * 33 x 33 x 19 x 8 = 165 KB per aggregate, cleared, merged and walked at every flush; sized by
 * the journey it is 5.5 KB for 5 stages). */
typedef struct cs_agg_tt {
    int64_t *time_to;
    int64_t *ctime_to;
    int64_t *ttime;
    int64_t *time_to_sum_ms;
    int64_t *ctime_to_sum_ms;
    size_t n; /* int64s in the allocation (starting at time_to) */
} cs_agg_tt;

/* ---- per-minute reach buckets ------------------------------------------------------------ */
typedef struct cs_minute {
    int64_t minute; /* epoch minutes (event time); INT64_MIN = free slot */
    int64_t reached[CS_MAX_STAGES];
} cs_minute;

typedef struct cs_agg {
    int nstages;
    int ndims;
    uint32_t dim_width[CS_MAX_DIMS];      /* max_values + 2 */
    uint32_t by_stride;                   /* slots per value row in by[][]: nstages + 1 */
    int64_t active[CS_NSLOTS];
    int64_t reached[CS_NSLOTS];
    int64_t ended[CS_NSLOTS];
    int64_t customers[CS_NSLOTS];
    /* for /metrics only (cs_agg_foreach does not name them: no Redis field): customers whose
     * journey stage crossed into each slot or beyond (the customer funnel, "reached at least";
     * [0] unused), and customer journeys that began: new customers and journeys started over past
     * customer_ttl (the step before its first stage) */
    int64_t cfunnel[CS_NSLOTS];
    int64_t cstarted;
    int64_t transitions[CS_NSLOTS][CS_NSLOTS]; /* [from][to], from 0 = _entry */
    int64_t ended_by[CS_END__COUNT];
    int64_t started, ended_n;
    int64_t events[CS_MAX_STAGES];
    int64_t unclassified, late;
    int64_t invalid[CS_INV__COUNT];
    int64_t id_merged, id_conflicts;      /* SPEC §3.1 `identity` hash: merged, conflicts */
    int64_t *by[CS_MAX_DIMS][3];          /* [metric][value * by_stride + slot]; metric 0 active,
                                             1 reached, 2 ended. A row is nstages + 1 wide, not
                                             CS_NSLOTS: with 4 dimensions of 4,096 values and 5
                                             stages an aggregate is 2.4 MB instead of 13 MB, and
                                             every flush clears, merges and walks all of it */
    cs_agg_tt tt;                         /* SPEC §4.1 histograms (above) */
    cs_minute *minutes;                   /* open addressing on minute */
    uint32_t minutes_cap, minutes_n;
    uint64_t changes;                     /* bumped on every update; 0 = nothing to flush */
} cs_agg;

enum { CS_BY_ACTIVE = 0, CS_BY_REACHED = 1, CS_BY_ENDED = 2 };


/* Sizes the arrays from the ruleset (stages, dimensions and their max_values). */
int cs_agg_init(cs_agg *a, const cs_ruleset *rs);
void cs_agg_free(cs_agg *a);
void cs_agg_reset(cs_agg *a);           /* all zero, keeps its memory */
void cs_agg_merge(cs_agg *dst, const cs_agg *src); /* dst += src; same shape */
/* The same without the per-minute buckets: for a running total (the metrics' counters), which
 * would otherwise keep one 264-byte bucket for every minute of event time it ever saw. */
void cs_agg_merge_counters(cs_agg *dst, const cs_agg *src);

/* Adds n reaches of `stage` (0-based) in the UTC minute of t_ms. Allocates only when a new
 * minute appears in this flush (the table doubles), never per event. */
void cs_agg_minute_add(cs_agg *a, int64_t t_ms, int stage, int64_t n);

/* Names: hash is the key suffix after "{J}:" (e.g. "active", "by:channel:reached",
 * "minute:202611221530:reached"); field is the hash field ("purchase", "_entry>awareness",
 * "social/purchase"). Calls cb for every non-zero counter. */
typedef void (*cs_agg_cb)(void *opaque, const char *hash, const char *field, int64_t delta);
void cs_agg_foreach(const cs_agg *a, const cs_ruleset *rs, cs_dimdict_mpmc *dicts, cs_agg_cb cb,
                    void *opaque);

/* Index helpers. */
static inline int64_t *cs_agg_by(cs_agg *a, int dim, int metric, uint16_t value, int slot)
{
    return &a->by[dim][metric][(uint32_t)value * a->by_stride + (uint32_t)slot];
}

/* ---- the counting rules (SPEC §4) ------------------------------------------------------------
 * Stage arguments are slots (0 = none, s + 1 = stage s); dim[] are a session's dimension value
 * ids. Every rule marks the aggregate changed. */

/* A session starts: open, with no stage and no dimension value yet. */
static inline void cs_agg_session_start(cs_agg *a, int ndims)
{
    a->started++;
    a->active[0]++;
    for (int d = 0; d < ndims; d++)
        (*cs_agg_by(a, d, CS_BY_ACTIVE, CS_DIM_UNKNOWN, 0))++;
    a->changes++;
}

/* A session learns its first value of dimension d while at `slot`. */
static inline void cs_agg_session_dim(cs_agg *a, int d, int slot, uint16_t id)
{
    (*cs_agg_by(a, d, CS_BY_ACTIVE, CS_DIM_UNKNOWN, slot))--;
    (*cs_agg_by(a, d, CS_BY_ACTIVE, id, slot))++;
    a->changes++;
}

static inline int64_t *cs_agg_tt_time_to(cs_agg *a, int slot, int b)
{
    return &a->tt.time_to[(size_t)slot * CS_TT_NBUCKETS + (size_t)b];
}

static inline int64_t *cs_agg_tt_ctime_to(cs_agg *a, int slot, int b)
{
    return &a->tt.ctime_to[(size_t)slot * CS_TT_NBUCKETS + (size_t)b];
}

static inline int64_t *cs_agg_tt_ttime(cs_agg *a, int from, int to, int b)
{
    return &a->tt.ttime[((size_t)from * a->by_stride + (size_t)to) * CS_TT_NBUCKETS + (size_t)b];
}

/* A session's furthest stage moves from `from` to `to` (> from) at event time t: one transition
 * and one reach of `to` (also in t's minute and per dimension value), with their durations
 * (SPEC §4.1): d_start = t - S.start (time_to:<to>), d_from = t - t_from, the time the session
 * reached `from` (S.start for from = _entry; transition_time). Negative durations count as 0. */
static inline void cs_agg_session_advance(cs_agg *a, int from, int to, const uint16_t *dim,
                                          int ndims, int64_t t, int64_t d_start, int64_t d_from)
{
    if (d_start < 0)
        d_start = 0;
    int bs = cs_tt_bucket(d_start); /* _entry>b: the same duration, the same bucket */
    (*cs_agg_tt_time_to(a, to, bs))++;
    a->tt.time_to_sum_ms[to] += d_start;
    (*cs_agg_tt_ttime(a, from, to, from ? cs_tt_bucket(d_from) : bs))++;
    a->transitions[from][to]++;
    a->reached[to]++;
    a->active[from]--;
    a->active[to]++;
    cs_agg_minute_add(a, t, to - 1, 1);
    for (int d = 0; d < ndims; d++) {
        (*cs_agg_by(a, d, CS_BY_ACTIVE, dim[d], from))--;
        (*cs_agg_by(a, d, CS_BY_ACTIVE, dim[d], to))++;
        (*cs_agg_by(a, d, CS_BY_REACHED, dim[d], to))++;
    }
    a->changes++;
}

/* A session at `slot` ends, for `reason` (enum cs_end_reason): its stage is the drop-off. */
static inline void cs_agg_session_end(cs_agg *a, int slot, const uint16_t *dim, int ndims,
                                      int reason)
{
    a->ended[slot]++;
    a->ended_by[reason]++;
    a->ended_n++;
    a->active[slot]--;
    for (int d = 0; d < ndims; d++) {
        (*cs_agg_by(a, d, CS_BY_ACTIVE, dim[d], slot))--;
        (*cs_agg_by(a, d, CS_BY_ENDED, dim[d], slot))++;
    }
    a->changes++;
}

/* A customer's journey: appears (at no stage), moves from one stage slot to another (a
 * further stage, or back to none when customer_ttl forgot it), is forgotten. */
static inline void cs_agg_customer_new(cs_agg *a)
{
    a->customers[0]++;
    a->cstarted++;
    a->changes++;
}

static inline void cs_agg_customer_move(cs_agg *a, int from, int to)
{
    a->customers[from]--;
    a->customers[to]++;
    a->changes++;
}

/* A customer's journey is beyond customer_ttl and starts over at no stage: for Redis a move
 * back to _none, for the customer funnel of /metrics a journey that appears again. */
static inline void cs_agg_customer_restart(cs_agg *a, int from)
{
    cs_agg_customer_move(a, from, 0);
    a->cstarted++;
}

/* A customer's journey stage moves forward from `from` to `to` (> from), d_ms = t - C.first
 * (SPEC §4.1 customer_time_to:<to>; negative counts as 0). */
static inline void cs_agg_customer_advance(cs_agg *a, int from, int to, int64_t d_ms)
{
    if (d_ms < 0)
        d_ms = 0;
    (*cs_agg_tt_ctime_to(a, to, cs_tt_bucket(d_ms)))++;
    a->tt.ctime_to_sum_ms[to] += d_ms;
    for (int s = from + 1; s <= to; s++) /* a stage change, not an event: a few per customer */
        a->cfunnel[s]++;
    cs_agg_customer_move(a, from, to);
}

/* SPEC §3.1: a journey appears at a stage slot (the merge of a device's journey into a
 * person's: the two are forgotten, the merged one added), and the identity counters. */
static inline void cs_agg_customer_add(cs_agg *a, int slot)
{
    a->customers[slot]++;
    a->changes++;
}

static inline void cs_agg_identity_merged(cs_agg *a)
{
    a->id_merged++;
    a->changes++;
}

static inline void cs_agg_identity_conflict(cs_agg *a)
{
    a->id_conflicts++;
    a->changes++;
}

static inline void cs_agg_customer_forget(cs_agg *a, int slot)
{
    a->customers[slot]--;
    a->changes++;
}

/* An event: classified as `stage` (0-based), unclassified, or late (changes nothing else). */
static inline void cs_agg_event(cs_agg *a, int stage)
{
    a->events[stage]++;
    a->changes++;
}

static inline void cs_agg_event_unclassified(cs_agg *a)
{
    a->unclassified++;
    a->changes++;
}

static inline void cs_agg_event_late(cs_agg *a)
{
    a->late++;
    a->changes++;
}

#endif
