/* sessionize.h — stage 3 of the pipeline: sessions per customer and customer journeys, per Kafka
 * partition (SPEC §3).
 *
 * Contract
 *  - A cs_pstate holds everything one partition knows: the customer table (journey stage, last
 *    event time) and the open sessions of the customers that arrived on that partition. It is
 *    owned by exactly one worker thread at a time; no function here locks or uses atomics, so the
 *    per-event path has neither. Moving a partition (rebalance, snapshot) moves its cs_pstate.
 *  - Layout: customers and sessions live in chunked pools addressed by 32-bit indexes (entries
 *    never move, so indexes are stable links); one open-addressing index (linear probing,
 *    backward-shift deletion) maps the customer's XXH3-128 hash to its customer entry, which
 *    links to its open session. Memory: 32 B per session, 32 B per customer + ~6-11 B of index.
 *    Only the hash is kept, never the customer string: 64 bits index the table and 32 more are
 *    compared, so two customers are confused with probability ~n^2/2^97.
 *  - Expiry: two hashed timing wheels (sessions keyed by deadline, customers by last + ttl) with
 *    lazy re-linking: an entry whose deadline moved later is re-linked when its old bucket fires.
 *    The cost is per expiring or re-linked entry, never a scan per event. A deadline that moves
 *    earlier (an out-of-order event moving start back under max_duration) fires when its old
 *    bucket does; every event re-checks its session's deadline against the watermark, so counts
 *    never depend on when the wheel fires, only the gauges' timeliness does.
 *  - Time is event time in epoch ms. `W` is the overall watermark (monotone), supplied by the
 *    caller (see engine).
 */
#ifndef CS_SESSIONIZE_H
#define CS_SESSIONIZE_H

#include <stddef.h>
#include <stdint.h>

#include "aggregate.h"
#include "classify.h"
#include "decode.h"

typedef struct cs_pstate cs_pstate;

/* What a worker brings to the per-event call: where counts go and what the watermark is. */
typedef struct cs_sessctx {
    const cs_ruleset *rs;
    cs_agg *agg;
    cs_dimdict_mpmc *dicts; /* [ndims] */
    int64_t W;              /* overall watermark; INT64_MIN before there is one */
} cs_sessctx;

cs_pstate *cs_pstate_new(const cs_session_conf *conf, int ndims);
void cs_pstate_destroy(cs_pstate *p);
/* Session parameters changed by a rule reload (gap, max_duration, ...). Takes effect for the
 * next event; the wheels keep their geometry. */
void cs_pstate_set_conf(cs_pstate *p, const cs_session_conf *conf);

enum cs_ev_result { CS_EV_COUNTED = 0, CS_EV_LATE = 1, CS_EV_NEW_CUSTOMER = 2 };

/* One valid decoded event: session join/start/end, classification, every §4 delta.
 * Returns CS_EV_LATE if the event was late (counted as _late, nothing else changed),
 * CS_EV_NEW_CUSTOMER if it was counted and this partition had no entry for its customer (the
 * engine's unkeyed-producer detector looks at those), else CS_EV_COUNTED. */
int cs_sessionize(cs_pstate *p, cs_sessctx *c, const cs_decoded *ev);

/* The same with the customer hash already computed (cs_customer_hash). */
int cs_sessionize_hashed(cs_pstate *p, cs_sessctx *c, const cs_decoded *ev, uint64_t h,
                         uint32_t h2);

/* Software prefetch, for a worker that looks a few events ahead: the index slot of a hash, then
 * (once that is in cache) the customer entry it points to, then that customer's open session.
 * Hints only: they read current table memory and never change anything, so a stale guess costs
 * a wasted prefetch, never a wrong result. */
void cs_pstate_prefetch_index(const cs_pstate *p, uint64_t h);
void cs_pstate_prefetch_customer(const cs_pstate *p, uint64_t h);
void cs_pstate_prefetch_session(const cs_pstate *p, uint64_t h, uint32_t h2);

/* Highest event time seen on this partition (INT64_MIN if none): the caller derives the
 * partition watermark (max - lateness) from it. */
int64_t cs_pstate_max_time(const cs_pstate *p);

/* Ends sessions whose deadline is < c->W and forgets customers whose last + ttl < c->W. */
void cs_pstate_advance(cs_pstate *p, cs_sessctx *c);

/* Ends every open session: reason by deadline if it is < c->W, else `reason` (drain/shutdown). */
void cs_pstate_end_all(cs_pstate *p, cs_sessctx *c, int reason);

typedef struct cs_pstate_stats {
    uint64_t sessions, customers;
    size_t session_bytes;  /* session pool (incl. unused slack) + session wheel */
    size_t customer_bytes; /* customer pool + index + customer wheel */
} cs_pstate_stats;
void cs_pstate_stats_get(const cs_pstate *p, cs_pstate_stats *st);

/* XXH3-128 of a customer id, as the tables use it. */
void cs_customer_hash(const char *s, size_t len, uint64_t *h, uint32_t *h2);

#endif
