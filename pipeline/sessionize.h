/* sessionize.h — the pipeline's sessionizer: sessions per customer and customer journeys, per
 * Kafka partition (SPEC §3). Each event is classified (classify.h) and what it does to its
 * session and customer is counted by aggregate.h's counting rules.
 *
 * Contract
 *  - A cs_pstate holds everything one partition knows: the customer table (journey stage, last
 *    event time) and the open sessions of the customers that arrived on that partition. It is
 *    owned by exactly one worker thread at a time; no function here locks or uses atomics, so the
 *    per-event path has neither. Moving a partition (rebalance, snapshot) moves its cs_pstate.
 *  - Layout: customers and sessions live in chunked pools addressed by 32-bit indexes (entries
 *    never move, so indexes are stable links); one open-addressing index (linear probing,
 *    backward-shift deletion) maps the customer's XXH3-128 hash to its customer entry, which
 *    links to its open session. A slot holds the entry's id and, in the bits the id does not
 *    need (16..0 of 32, re-tagged as the ids grow), a tag of the hash, so a look-up reads only
 *    its own entry (one cache miss in a table far bigger than the caches, not ~1.5). Memory:
 *    32 B per session, 32 B per customer + ~6-11 B of index (the same since SPEC §4.1 added a
 *    session's reach time and a customer's C.first: the entries' layouts in sessionize.c say
 *    where the bits came from).
 *    Only the hash is kept, never the customer string: 64 bits index the table and 16 more are
 *    compared, so two customers are confused with probability ~n^2/2^81 (2^-33 at 16M customers
 *    in one partition; it was 32 more bits and ~n^2/2^97 before SPEC §4.1's C.first needed room).
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
#include <xxhash.h>

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

/* The same with the hashes already computed (cs_customer_hash): (h, h2) of the session key
 * ev->f[CS_F_CUSTOMER]; (ph, ph2) of the person field when ev->idf has both ids (SPEC 3.1),
 * ignored otherwise. */
int cs_sessionize_hashed(cs_pstate *p, cs_sessctx *c, const cs_decoded *ev, uint64_t h,
                         uint32_t h2, uint64_t ph, uint32_t ph2);

/* Software prefetch, for a worker that looks a few events ahead: the index slot of a hash, then
 * (once that is in cache) the customer entry its tag names there, then that customer's open
 * session.
 * Hints only: they read current table memory and never change anything, so a stale guess costs
 * a wasted prefetch, never a wrong result. */
void cs_pstate_prefetch_index(const cs_pstate *p, uint64_t h);
/* Returns 0 when no entry in h's chain carries h's tag: h is (almost surely) a customer the
 * state does not have yet, so its sessionize will create it (the engine prefetches what that
 * touches: engine.c, process_run). 1: an entry was found and prefetched (a rare tag collision
 * makes it another customer's; still only a hint). */
int cs_pstate_prefetch_customer(const cs_pstate *p, uint64_t h);
void cs_pstate_prefetch_session(const cs_pstate *p, uint64_t h, uint32_t h2);
/* SPEC 3.1 (identity) hints of the same kind: the alias slot of device h (for an event with
 * both ids); for an event with a device alone, prefetch_customer and prefetch_session that also
 * prefetch, when the entry h's tag names has an alias (else no alias probe at all), the
 * index slot, then the entry, of the person it aliases. */
void cs_pstate_prefetch_alias(const cs_pstate *p, uint64_t h);
int cs_pstate_prefetch_customer_dev(const cs_pstate *p, uint64_t h, uint32_t h2); /* as _customer */
void cs_pstate_prefetch_session_dev(const cs_pstate *p, uint64_t h, uint32_t h2);

/* Highest event time seen on this partition (INT64_MIN if none): the caller derives the
 * partition watermark (max - lateness) from it. */
int64_t cs_pstate_max_time(const cs_pstate *p);
/* Bytes of session and customer pool chunks mapped directly from the kernel, over every
 * partition state of the process (any thread; see sessionize.c POOL_MAPPED_CHUNKS). */
uint64_t cs_pstate_mapped_bytes(void);

/* Ends sessions whose deadline is < c->W and forgets customers whose last + ttl < c->W. */
void cs_pstate_advance(cs_pstate *p, cs_sessctx *c);

/* Ends every open session: reason by deadline if it is < c->W, else `reason` (drain/shutdown). */
void cs_pstate_end_all(cs_pstate *p, cs_sessctx *c, int reason);

typedef struct cs_pstate_stats {
    uint64_t sessions, customers;
    size_t session_bytes;  /* session pool (incl. unused slack) + session wheel */
    size_t customer_bytes; /* customer pool + index + customer wheel */
    uint64_t aliases;      /* SPEC §3.1: aliases held */
    size_t alias_bytes;    /* the alias table and the key entries' alias bits */
} cs_pstate_stats;
void cs_pstate_stats_get(const cs_pstate *p, cs_pstate_stats *st);

/* XXH3-128 of a customer id, as the tables (and snapshots) use it. Inline: the engine calls it
 * per event, and a call to this wrapper cost ~13 instructions around XXH3_128bits' ~49
 * (callgrind, issue 18, second pass). */
static inline void cs_customer_hash(const char *s, size_t len, uint64_t *h, uint32_t *h2)
{
    XXH128_hash_t x = XXH3_128bits(s, len);
    *h = x.low64;
    *h2 = (uint32_t)x.high64;
}

/* ---- snapshot support (pipeline/snapshot.c) -----------------------------------------------
 * What a snapshot codec needs to read a partition's state out and to rebuild it elsewhere. Not
 * for the per-event path: these never run while a worker counts into the same pstate.
 *  - One cs_pstate_entry is one live customer with its open session, if it has one. Sessions
 *    that already ended (DEAD entries still linked in the wheel) are not state: never returned.
 *  - cs_pstate_iter walks the customer pool in storage order (sequential memory): pass 0 to
 *    start, then the handle it returned; 0 means the end. It fills only the customer half of
 *    the entry, if e is not NULL (one read of the customer entry). cs_pstate_entry_get fills
 *    all of it for a handle, reading the session too. Handles stay valid while the pstate is
 *    not changed.
 *  - cs_pstate_restore_add inserts one entry into a pstate that has seen no events and no
 *    cs_pstate_advance: pools, index and BOTH wheels (session at its deadline under the pstate's
 *    conf, customer at last + customer_ttl) exactly as if events had created it, so expiry,
 *    joins and gauges behave as in the pstate it came from. While restoring, a wheel's cursor
 *    follows the earliest entry linked (no entry is clamped to a later tick). It counts nothing
 *    into any cs_agg: the counts of restored state were made by whoever wrote the snapshot.
 *    0 ok, -1 out of memory (nothing inserted), -2 the customer hash is already present.
 *    Stages are not checked against a ruleset here (the caller validates them).
 *  - cs_pstate_reserve pre-sizes the index (no growth while n customers are inserted) and the
 *    pools' chunk tables, so a restore of n entries never rehashes. 0 ok, -1 out of memory.
 *  - cs_pstate_prefetch_entry: a hint for a walk in other than storage order (the snapshot
 *    writer's hash order): the customer entry of a handle, or (once that is in cache) its
 *    session. Changes nothing.
 *  - cs_pstate_set_max_time raises the partition's highest event time (never lowers it: it is a
 *    maximum, and every customer's last must stay <= it). */
/* last - C.first saturates here (2^40 - 1 ms, 34.8 years): past 90 days every customer_time_to
 * duration is in "inf", so a saturated value counts the same as the exact one would. */
#define CS_FIRST_OFF_MAX ((((uint64_t)1) << 40) - 1)
/* The bits of h2 a table keeps and compares (cs_customer_hash gives 32; entries carry 16). */
#define CS_H2_MASK 0xffffu

typedef struct cs_pstate_entry {
    uint64_t h;           /* customer hash, as cs_customer_hash gives it */
    uint32_t h2;          /* its low 16 bits are kept (CS_H2_MASK); iteration gives those */
    uint8_t stage;        /* customer journey stage: 0 = none, s + 1 = stage s */
    uint64_t first;       /* last - C.first (SPEC §4.1), <= CS_FIRST_OFF_MAX */
    uint8_t has_session;  /* 1 if the customer has an open session (the s_* fields) */
    int64_t last;         /* customer's latest event time */
    int64_t s_last;       /* open session: latest event time (<= last) */
    uint32_t s_span;      /* open session: last - start in ms */
    uint32_t s_reach;     /* open session: when it reached s_stage, ms after start (<= s_span;
                             0 when s_stage is 0) */
    uint8_t s_stage;      /* open session: stage, 0 = none yet, s + 1 */
    uint16_t s_dim[CS_MAX_DIMS]; /* open session: dimension value ids (0 _unknown, 1 _other) */
    /* SPEC §3.1 identity (snapshot v3): the key has no customer journey (stage and first are
     * then 0; last is the device's clock), and/or it is a device with an alias (a_h, a_h2: the
     * person's hash, a_h2 16 bits) */
    uint8_t nojourney;
    uint8_t has_alias;
    uint64_t a_h;
    uint32_t a_h2;
} cs_pstate_entry;

uint32_t cs_pstate_iter(const cs_pstate *p, uint32_t it, cs_pstate_entry *e);
void cs_pstate_entry_get(const cs_pstate *p, uint32_t handle, cs_pstate_entry *e);
void cs_pstate_prefetch_entry(const cs_pstate *p, uint32_t handle, int session);
int cs_pstate_reserve(cs_pstate *p, uint64_t customers, uint64_t sessions);
int cs_pstate_restore_add(cs_pstate *p, const cs_pstate_entry *e);
void cs_pstate_set_max_time(cs_pstate *p, int64_t max_t);

#endif
