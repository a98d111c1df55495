/* engine.c — worker threads' shared state and the per-batch driver (see include/clickstage.h).
 *
 * Concurrency contract
 *  - Everything reached from a cs_worker is touched by that worker's thread only, so the
 *    per-event path (decode -> sessionize -> classify -> aggregate) has no lock and no atomic.
 *  - Shared, per batch (not per event): each partition's watermark (`wm`, written by its owner,
 *    read by every worker computing the minimum), its state, the overall watermark `W` and the
 *    rule-table pointer. All are _Atomic; the orderings are commented where they are used.
 */
#include "clickstage.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregate.h"
#include "classify.h"
#include "decode.h"
#include "engine.h"
#include "sessionize.h"
#include "snapshot.h"
#include "util.h"

/* Retired rule tables still named by a worker's hazard pointer (a worker that has not picked up
 * a newer table since). Reclaimed at every swap, so this bounds tables in use at once, not
 * reloads: a SIGHUP a minute for weeks is fine (it was a lifetime cap of 64 reloads). */
#define MAX_RETIRED 64

/* A partition slot. Slots are allocated once and reused: a removed partition's slot (owner -1,
 * state UNASSIGNED) is handed to the next partition added. */
typedef struct cs_part {
    cs_pstate *st;
    _Atomic int owner; /* worker id; -1 once removed. Stored with release when a slot is
                          (re)published, loaded with acquire by workers before they touch st */
    _Atomic int state; /* release when a slot is (re)published, acquire in compute_min: a
                          reused slot's state is never seen before its new wm */
    _Atomic int64_t wm; /* partition watermark: max event time - lateness; INT64_MIN if none */
    int64_t next_offset;
    uint64_t counted; /* messages counted (not replayed) since it was added */
    /* Replay (restore after a crash or a move): messages below replay_end were counted by an
     * earlier owner. They rebuild the state without counting (into the worker's discard
     * buffer), judged against min(own watermark, replay_wm); at replay_end the state is
     * advanced to replay_wm, the watermark the earlier owner had applied when it wrote
     * replay_end. -1 = not replaying. Owner thread only (set before the partition is
     * published to it). */
    int64_t replay_end;
    int64_t replay_wm;
    int64_t applied_wm; /* the watermark the state was last advanced to (INT64_MIN none) */
    uint16_t label;     /* the unkeyed-producer detector's name for the Kafka partition */
} cs_part;

/* Events in flight per worker: event i is decoded, event i-1's customer entry and event i-2's
 * session are prefetched, and event i-3 is sessionized, so the three dependent cache misses of
 * a look-up in a table far bigger than the caches overlap with other events' work. Each event
 * in flight needs its own slot of the decoder's output buffers (decoded fields point into
 * them); the decoder itself is one (cs_decoder_new_slots: its learnt state stays in L1).
 * Rejected: a longer pipeline (6, the prefetches two events apart): no faster with one decoder
 * and six slots, 7-13 % slower with six decoders (bench_core, 1M customers; bench/RESULTS-e2e.md
 * "one decoder, four slots"). */
#define PIPE 4

typedef struct inflight {
    cs_decoded ev;
    uint64_t h;
    uint32_t h2;
    int ok;
    uint64_t ph; /* SPEC 3.1: the person's hash when the event has both ids */
    uint32_t ph2;
} inflight;

struct cs_worker {
    cs_engine *e;
    int id;
    const cs_ruleset *rs; /* the table this worker runs; refreshed between batches */
    /* The table this worker may still touch (= rs once worker_pick_rules returns): a hazard
     * pointer. cs_engine_swap_rules frees a retired table only when no worker's hazard names it.
     * seq_cst stores and loads on both sides (see worker_pick_rules). */
    _Atomic(const cs_ruleset *) hazard;
    cs_decoder *dec; /* PIPE slots: event i decodes into slot i % PIPE */
    inflight fl[PIPE];
    cs_agg *agg, *spare;
    cs_agg *discard; /* replayed messages count here; reset after every replayed run */
    cs_sessctx ctx;
    uint64_t messages, events, invalid, late, replayed, multi_part;
};

struct cs_engine {
    _Atomic(cs_ruleset *) rs;
    cs_ruleset *retired[MAX_RETIRED];
    int nretired;
    cs_dimdict_mpmc dicts[CS_MAX_DIMS];
    int ndims;
    int nworkers;
    cs_worker *workers;
    cs_part *parts[CS_MAX_PARTITIONS];
    _Atomic int nparts;  /* slots ever used (high-water mark): loops stop here */
    pthread_mutex_t free_mu; /* free slots; taken at add (control thread) and at remove (the
                                owner, at a barrier): rare, never per event */
    int free_ids[CS_MAX_PARTITIONS];
    int nfree;
    _Atomic int64_t W;
    cs_invalid_hook invalid_hook;
    void *invalid_opaque;
    void (*tick_hook)(void *); /* tests only: cs_engine_set_tick_hook */
    void *tick_hook_arg;
    void (*idle_hook)(void *); /* tests only: cs_engine_set_idle_hook */
    void *idle_hook_arg;
    /* Unkeyed-producer detector: a lossy table of recently created customer entries, each
     * (customer hash with its low 16 bits replaced by the partition label). A new customer
     * entry whose hash is found under another label means one customer on two partitions.
     * Looked at only when a partition creates a customer entry (not per event). Lossy by
     * design (slots are overwritten): it detects, it does not count exactly. Relaxed atomics:
     * a torn race between two workers costs one detection, nothing else hangs off it. */
    _Atomic uint64_t *seen;
    uint32_t seen_mask;
};

#define SEEN_SLOTS (1u << 18)

/* max event time - lateness, saturating (event times may be anywhere in int64) */
static inline int64_t wm_of(int64_t max_t, int64_t lateness)
{
    int64_t r;
    return __builtin_sub_overflow(max_t, lateness, &r) ? INT64_MIN + 1 : r;
}

static inline int owner_of(const cs_part *p)
{
    /* acquire: pairs with the release that publishes a (reused) slot to its owner */
    return atomic_load_explicit(&((cs_part *)p)->owner, memory_order_acquire);
}

static cs_agg *agg_new(const cs_ruleset *rs)
{
    cs_agg *a = malloc(sizeof *a);
    if (a && cs_agg_init(a, rs) != 0) {
        cs_agg_free(a);
        free(a);
        a = NULL;
    }
    return a;
}

static void agg_destroy(cs_agg *a)
{
    if (a) {
        cs_agg_free(a);
        free(a);
    }
}

cs_engine *cs_engine_new(cs_ruleset *rs, int nworkers, char *errstr, size_t errlen)
{
    if (nworkers < 1 || nworkers > 256) {
        snprintf(errstr, errlen, "threads must be 1..256 (got %d)", nworkers);
        return NULL;
    }
    cs_engine *e = calloc(1, sizeof *e);
    if (!e)
        goto oom;
    atomic_init(&e->rs, rs);
    atomic_init(&e->W, INT64_MIN);
    atomic_init(&e->nparts, 0);
    pthread_mutex_init(&e->free_mu, NULL);
    e->ndims = cs_rules_ndims(rs);
    for (int d = 0; d < e->ndims; d++)
        if (cs_dimdict_init(&e->dicts[d], cs_rules_dim(rs, d)->max_values) != 0)
            goto oom;
    e->seen = calloc(SEEN_SLOTS, sizeof *e->seen);
    if (!e->seen)
        goto oom;
    e->seen_mask = SEEN_SLOTS - 1;
    e->nworkers = nworkers;
    e->workers = calloc((size_t)nworkers, sizeof *e->workers);
    if (!e->workers)
        goto oom;
    for (int i = 0; i < nworkers; i++) {
        cs_worker *w = &e->workers[i];
        w->e = e;
        w->id = i;
        w->rs = rs;
        atomic_init(&w->hazard, rs);
        if (!(w->dec = cs_decoder_new_slots(cs_rules_plan(rs), PIPE)))
            goto oom;
        w->agg = agg_new(rs);
        w->spare = agg_new(rs);
        w->discard = agg_new(rs);
        if (!w->agg || !w->spare || !w->discard)
            goto oom;
        w->ctx.rs = rs;
        w->ctx.agg = w->agg;
        w->ctx.dicts = e->dicts;
        w->ctx.W = INT64_MIN;
    }
    return e;
oom:
    snprintf(errstr, errlen, "out of memory creating the engine");
    if (e) {
        atomic_store(&e->rs, NULL);
        cs_engine_destroy(e);
    }
    return NULL;
}

void cs_engine_destroy(cs_engine *e)
{
    if (!e)
        return;
    for (int i = 0; e->workers && i < e->nworkers; i++) {
        cs_worker *w = &e->workers[i];
        cs_decoder_destroy(w->dec);
        agg_destroy(w->agg);
        agg_destroy(w->spare);
        agg_destroy(w->discard);
    }
    free(e->workers);
    free((void *)e->seen);
    int np = atomic_load(&e->nparts);
    for (int p = 0; p < np; p++) {
        cs_pstate_destroy(e->parts[p]->st); /* NULL after cs_engine_remove_partition */
        free(e->parts[p]);
    }
    pthread_mutex_destroy(&e->free_mu);
    for (int d = 0; d < e->ndims; d++)
        cs_dimdict_free(&e->dicts[d]);
    for (int i = 0; i < e->nretired; i++)
        cs_rules_destroy(e->retired[i]);
    cs_rules_destroy(atomic_load(&e->rs));
    free(e);
}

int cs_engine_nworkers(const cs_engine *e) { return e->nworkers; }
cs_worker *cs_engine_worker(cs_engine *e, int i) { return &e->workers[i]; }

const cs_ruleset *cs_engine_rules(const cs_engine *e)
{
    /* acquire: pairs with the release in cs_engine_swap_rules (the table is fully built). */
    return atomic_load_explicit(&((cs_engine *)e)->rs, memory_order_acquire);
}

/* Frees every retired table that no worker can still touch. Control thread only (the one that
 * swaps). Hazard-pointer protocol with worker_pick_rules, all seq_cst:
 *   swap:   store e->rs = new            ...later...   reclaim: load every w->hazard
 *   worker: store w->hazard = r          then          load e->rs, must still be r (else retry)
 * A worker that announced r before this load is seen here and r is kept. One that announces
 * it after this load re-reads e->rs after that (single total order of seq_cst operations), finds
 * a newer table and never uses r: r had been replaced before reclaim ran. A worker's own earlier
 * table stays named by its hazard until it has switched over completely. */
static void reclaim_retired(cs_engine *e)
{
    int keep = 0;
    for (int i = 0; i < e->nretired; i++) {
        cs_ruleset *r = e->retired[i];
        int used = 0;
        for (int w = 0; w < e->nworkers && !used; w++)
            used = atomic_load_explicit(&e->workers[w].hazard, memory_order_seq_cst) == r;
        if (used)
            e->retired[keep++] = r;
        else
            cs_rules_destroy(r);
    }
    e->nretired = keep;
}

int cs_engine_swap_rules(cs_engine *e, cs_ruleset *rs, char *errstr, size_t errlen)
{
    const cs_ruleset *cur = cs_engine_rules(e);
    int same = strcmp(cs_rules_journey(cur), cs_rules_journey(rs)) == 0 &&
               cs_rules_nstages(cur) == cs_rules_nstages(rs) &&
               cs_rules_ndims(cur) == cs_rules_ndims(rs);
    for (int s = 0; same && s < cs_rules_nstages(cur); s++)
        same = strcmp(cs_rules_stage_name(cur, s), cs_rules_stage_name(rs, s)) == 0;
    for (int d = 0; same && d < cs_rules_ndims(cur); d++)
        same = strcmp(cs_rules_dim(cur, d)->name, cs_rules_dim(rs, d)->name) == 0 &&
               cs_rules_dim(cur, d)->max_values == cs_rules_dim(rs, d)->max_values;
    if (!same) {
        snprintf(errstr, errlen,
                 "journey, stages and dimensions cannot change on reload (restart instead)");
        return -1;
    }
    if (cs_rules_identity(cur) != cs_rules_identity(rs)) { /* SPEC 3.1: what a key means */
        snprintf(errstr, errlen, "identity: cannot be added or removed on reload (restart "
                                 "instead)");
        return -1;
    }
    reclaim_retired(e);
    if (e->nretired == MAX_RETIRED) {
        snprintf(errstr, errlen,
                 "%d earlier rule tables are still in use by a worker that has not picked up a "
                 "newer one (a worker stalled?); try again later",
                 MAX_RETIRED);
        return -1;
    }
    e->retired[e->nretired++] = (cs_ruleset *)cur;
    /* seq_cst (it includes release: workers that load the new pointer see the table fully
     * built): ordered before the hazard loads of the next reclaim_retired, see there. */
    atomic_store_explicit(&e->rs, rs, memory_order_seq_cst);
    return 0;
}

int cs_engine_rules_retired(const cs_engine *e)
{
    return e->nretired;
}

int cs_engine_add_partition(cs_engine *e, int w)
{
    return cs_engine_add_partition_state(e, w, NULL, -1, -1, INT64_MIN);
}

/* The end of a replay: advance to the watermark the earlier owner had applied, counting into a
 * buffer that is thrown away (those ends were counted by the earlier owner). */
static void finish_replay(cs_engine *e, cs_part *p, cs_agg *discard, const cs_ruleset *rs)
{
    /* The earlier owner's applied watermark comes from Redis. An owner that bounded event
     * times (max_future) never applied one above the highest event time it accepted, which is
     * the one the replay has just rebuilt (the bound only ever accepts more as the clock
     * advances); so this is a no-op for it. A value above that was written by a build without
     * the bound: advanced to it, the state's wheels would stop turning and every later event
     * would be late. Bounded like an event time (docs/semantics.md "Event time bounds"); with
     * no event at all, by this clock + max_future. */
    const cs_session_conf *sc = cs_rules_session(rs);
    if (sc->max_future_ms > 0 && p->replay_wm != INT64_MIN) {
        int64_t bound = cs_pstate_max_time(p->st);
        if (bound == INT64_MIN && __builtin_add_overflow(cs_wall_ms(), sc->max_future_ms, &bound))
            bound = INT64_MAX;
        if (p->replay_wm > bound)
            p->replay_wm = bound;
    }
    if (p->replay_wm != INT64_MIN) {
        cs_sessctx c = {rs, discard, e->dicts, p->replay_wm};
        cs_pstate_advance(p->st, &c);
        cs_agg_reset(discard);
        if (p->replay_wm > p->applied_wm)
            p->applied_wm = p->replay_wm;
    }
    p->replay_end = -1;
}

/* A free slot (a reused one first), or -1. *fresh: never used before (not yet in e->parts). */
static int take_slot(cs_engine *e, int *fresh)
{
    int id = -1;
    pthread_mutex_lock(&e->free_mu);
    if (e->nfree > 0) {
        id = e->free_ids[--e->nfree];
        *fresh = 0;
    } else {
        /* relaxed: only this function (under free_mu) advances nparts */
        int hw = atomic_load_explicit(&e->nparts, memory_order_relaxed);
        if (hw < CS_MAX_PARTITIONS) {
            id = hw;
            *fresh = 1;
        }
    }
    pthread_mutex_unlock(&e->free_mu);
    return id;
}

static void give_slot(cs_engine *e, int id)
{
    pthread_mutex_lock(&e->free_mu);
    e->free_ids[e->nfree++] = id;
    pthread_mutex_unlock(&e->free_mu);
}

int cs_engine_add_partition_state(cs_engine *e, int w, cs_pstate *st, int64_t next_offset,
                                  int64_t replay_end, int64_t replay_wm)
{
    if (w < 0 || w >= e->nworkers)
        return -1;
    int fresh = 0;
    int id = take_slot(e, &fresh);
    if (id < 0)
        return -1;
    cs_part *p = fresh ? calloc(1, sizeof *p) : e->parts[id];
    const cs_ruleset *rs = cs_engine_rules(e);
    cs_pstate *ps = !p ? NULL : st ? st : cs_pstate_new(cs_rules_session(rs), cs_rules_ndims(rs));
    if (!p || !ps) {
        if (fresh)
            free(p); /* never published: nparts did not move, the id comes round again */
        else
            give_slot(e, id);
        return -1;
    }
    if (fresh) {
        atomic_init(&p->owner, -1);
        atomic_init(&p->state, CS_PART_UNASSIGNED);
        atomic_init(&p->wm, INT64_MIN);
    }
    p->st = ps;
    p->counted = 0;
    p->next_offset = next_offset;
    p->replay_end = replay_end;
    p->replay_wm = replay_wm;
    p->applied_wm = INT64_MIN;
    p->label = (uint16_t)id;
    int64_t mt = cs_pstate_max_time(p->st);
    /* relaxed: published by the release of state and owner below */
    atomic_store_explicit(&p->wm,
                          mt == INT64_MIN ? INT64_MIN : wm_of(mt, cs_rules_session(rs)->lateness_ms),
                          memory_order_relaxed);
    if (replay_end >= 0 && next_offset >= replay_end) {
        /* nothing to re-read: only the earlier owner's last expiry is missing. Nobody else
         * sees this partition yet, so a scratch buffer on this thread is fine. */
        cs_agg *scratch = agg_new(rs);
        if (!scratch) {
            cs_pstate_destroy(p->st);
            p->st = NULL;
            if (fresh)
                free(p);
            else
                give_slot(e, id);
            return -1;
        }
        finish_replay(e, p, scratch, rs);
        agg_destroy(scratch);
    }
    /* release: whoever sees the slot ACTIVE, or owned by its worker, sees it fully set up */
    atomic_store_explicit(&p->state, CS_PART_ACTIVE, memory_order_release);
    atomic_store_explicit(&p->owner, w, memory_order_release);
    if (fresh) {
        e->parts[id] = p;
        /* release: a worker that sees nparts > id sees parts[id] fully initialised; only
         * take_slot's caller advances nparts, and ids are handed out in order, so this is
         * id + 1 */
        atomic_store_explicit(&e->nparts, id + 1, memory_order_release);
    }
    return id;
}

int cs_engine_slots_used(const cs_engine *e)
{
    /* relaxed: a statistic */
    return atomic_load_explicit(&((cs_engine *)e)->nparts, memory_order_relaxed);
}

int cs_engine_time_beyond_bound(const cs_engine *e, int64_t t)
{
    int64_t mf = cs_rules_session(cs_engine_rules(e))->max_future_ms, lim;
    if (mf <= 0 || t == INT64_MIN || __builtin_add_overflow(cs_wall_ms(), mf, &lim))
        return 0;
    return t > lim;
}

void cs_engine_set_part_label(cs_engine *e, int part, uint16_t label)
{
    e->parts[part]->label = label; /* before the partition is published to its worker */
}

int cs_engine_part_replaying(const cs_engine *e, int part)
{
    return e->parts[part]->replay_end >= 0;
}

void cs_engine_set_part_state(cs_engine *e, int part, int state)
{
    /* relaxed: the state only feeds the watermark minimum, which tolerates a stale read. */
    atomic_store_explicit(&e->parts[part]->state, state, memory_order_relaxed);
}

int cs_engine_part_state(const cs_engine *e, int part)
{
    return atomic_load_explicit(&((cs_engine *)e)->parts[part]->state, memory_order_relaxed);
}

/* A partition marked IDLE while a message for it was being counted stayed IDLE until its next
 * batch (the control thread read the old last-message time, the worker then stored the new one
 * and saw ACTIVE, then the control thread stored IDLE), and meanwhile ticks could advance it past
 * its own watermark. Both sides now write first and read second, all seq_cst (a store-load
 * pair: only sequential consistency orders a store before a later load of another location):
 * the worker stores the time, then moves IDLE -> ACTIVE; the control thread moves
 * ACTIVE -> IDLE, then reads the time again. In the single order of those four operations, either
 * the worker's move comes after the control thread's and finds IDLE, or the control thread's
 * re-read comes after the worker's store and finds it fresh, and moves the partition back.
 * What is left: between the control thread's two steps (nanoseconds, unless it is preempted
 * there) a tick may see IDLE. Rejected: a lock per partition (taken per run by the worker). */
void cs_engine_part_heard(cs_engine *e, int part, _Atomic int64_t *last_ms, int64_t now_ms)
{
    atomic_store_explicit(last_ms, now_ms, memory_order_seq_cst);
    int idle = CS_PART_IDLE;
    atomic_compare_exchange_strong_explicit(&e->parts[part]->state, &idle, CS_PART_ACTIVE,
                                            memory_order_seq_cst, memory_order_seq_cst);
}

int cs_engine_part_quiet(cs_engine *e, int part, _Atomic int64_t *last_ms, int64_t now_ms,
                         int64_t idle_ms)
{
    _Atomic int *st = &e->parts[part]->state;
    if (now_ms - atomic_load_explicit(last_ms, memory_order_seq_cst) <= idle_ms)
        return atomic_load_explicit(st, memory_order_relaxed) == CS_PART_IDLE;
    int active = CS_PART_ACTIVE;
    if (!atomic_compare_exchange_strong_explicit(st, &active, CS_PART_IDLE, memory_order_seq_cst,
                                                 memory_order_seq_cst))
        return active == CS_PART_IDLE;
    if (e->idle_hook)
        e->idle_hook(e->idle_hook_arg);
    if (now_ms - atomic_load_explicit(last_ms, memory_order_seq_cst) <= idle_ms) {
        int idle = CS_PART_IDLE; /* heard meanwhile: back, unless the worker moved it already */
        atomic_compare_exchange_strong_explicit(st, &idle, CS_PART_ACTIVE, memory_order_seq_cst,
                                                memory_order_seq_cst);
        return 0;
    }
    return 1;
}

void cs_engine_set_idle_hook(cs_engine *e, void (*fn)(void *), void *arg)
{
    e->idle_hook = fn;
    e->idle_hook_arg = arg;
}

int cs_engine_part_owner(const cs_engine *e, int part)
{
    return owner_of(e->parts[part]);
}

void cs_engine_remove_partition(cs_engine *e, int part)
{
    cs_part *p = e->parts[part];
    if (atomic_load_explicit(&p->owner, memory_order_relaxed) < 0)
        return; /* already removed: the slot is free (or someone else's now) */
    atomic_store_explicit(&p->state, CS_PART_UNASSIGNED, memory_order_relaxed);
    atomic_store_explicit(&p->owner, -1, memory_order_relaxed); /* no worker visits it now */
    cs_pstate_destroy(p->st);
    p->st = NULL;
    p->replay_end = -1;
    give_slot(e, part);
}

void cs_engine_set_tick_hook(cs_engine *e, void (*fn)(void *), void *arg)
{
    e->tick_hook = fn;
    e->tick_hook_arg = arg;
}

void cs_engine_set_invalid_hook(cs_engine *e, cs_invalid_hook hook, void *opaque)
{
    e->invalid_hook = hook;
    e->invalid_opaque = opaque;
}

int64_t cs_engine_part_watermark(const cs_engine *e, int part)
{
    return atomic_load_explicit(&e->parts[part]->wm, memory_order_relaxed);
}

int64_t cs_engine_watermark(const cs_engine *e)
{
    return atomic_load_explicit(&((cs_engine *)e)->W, memory_order_relaxed);
}

/* The minimum over the partitions that count (see enum cs_part_state); INT64_MIN when an
 * active partition without events holds it back. *none: no partition counts at all. */
static int64_t compute_min(const cs_engine *e, int final, int *none)
{
    /* acquire: pairs with the release in cs_engine_add_partition. */
    int np = atomic_load_explicit(&((cs_engine *)e)->nparts, memory_order_acquire);
    int64_t m = INT64_MAX;
    int any = 0;
    *none = 0;
    for (int i = 0; i < np; i++) {
        const cs_part *p = e->parts[i];
        /* acquire on state: pairs with the release that publishes a (reused) slot, so its wm
         * is the new partition's. relaxed on wm: watermarks are monotone per partition and the
         * minimum is recomputed every batch; a stale value only delays expiry, it never makes
         * it wrong. */
        int st = atomic_load_explicit(&((cs_part *)p)->state, memory_order_acquire);
        int64_t wm = atomic_load_explicit(&((cs_part *)p)->wm, memory_order_relaxed);
        if (st == CS_PART_UNASSIGNED || st == CS_PART_IDLE)
            continue;
        if (wm == INT64_MIN) {
            if (st == CS_PART_ACTIVE && !final)
                return INT64_MIN; /* an active partition without events holds everything back */
            continue;
        }
        any = 1;
        if (wm < m)
            m = wm;
    }
    *none = !any;
    return any ? m : INT64_MIN;
}

int64_t cs_engine_final_watermark(const cs_engine *e)
{
    int none;
    return compute_min(e, 1, &none);
}

void cs_engine_set_watermark(cs_engine *e, int64_t W)
{
    int64_t cur = atomic_load_explicit(&e->W, memory_order_relaxed);
    /* relaxed CAS-max: W is a hint shared between workers; no other data hangs off it. */
    while (W > cur &&
           !atomic_compare_exchange_weak_explicit(&e->W, &cur, W, memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
}

/* The overall watermark is the minimum over the partitions assigned (and not idle) NOW, so it
 * moves backwards when a partition that is behind joins: one restored after a crash or moved
 * here by a rebalance, or one back from idle. Keeping it monotone instead would judge that
 * partition's events against partitions it never shared a process with (after a kill -9 the
 * group hands a restarted instance its partitions in waves; the first wave can be hours of
 * event time ahead of the second) and count them late. What has ended stays ended; each
 * partition is never judged below the watermark its own state was advanced to
 * (cs_worker_process). With no partition counting at all, the last value stays. */
int64_t cs_engine_refresh_watermark(cs_engine *e)
{
    int none;
    int64_t m = compute_min(e, 0, &none);
    if (!none)
        /* relaxed: W is a hint shared between workers; no other data hangs off it. */
        atomic_store_explicit(&e->W, m, memory_order_relaxed);
    return cs_engine_watermark(e);
}

/* ---- worker ------------------------------------------------------------------------------ */

static void worker_pick_rules(cs_worker *w)
{
    const cs_ruleset *rs = cs_engine_rules(w->e);
    if (rs != w->rs) {
        /* announce the table before touching it, then check it is still the current one (the
         * hazard-pointer protocol of reclaim_retired); until then w->rs stays announced */
        for (;;) {
            atomic_store_explicit(&w->hazard, rs, memory_order_seq_cst);
            const cs_ruleset *now = atomic_load_explicit(&w->e->rs, memory_order_seq_cst);
            if (now == rs)
                break;
            rs = now;
        }
        w->rs = rs;
        w->ctx.rs = rs;
        cs_decoder_set_plan(w->dec, cs_rules_plan(rs));
        int np = atomic_load_explicit(&w->e->nparts, memory_order_acquire);
        for (int i = 0; i < np; i++)
            if (owner_of(w->e->parts[i]) == w->id)
                cs_pstate_set_conf(w->e->parts[i]->st, cs_rules_session(rs));
    }
}

/* The unkeyed-producer detector's slot for customer hash h (see cs_engine.seen) */
static inline _Atomic uint64_t *seen_slot(const cs_engine *e, uint64_t h)
{
    return &e->seen[(uint32_t)(h >> 16) & e->seen_mask];
}

/* The unkeyed-producer detector (see cs_engine.seen), for a customer entry just created. */
static void note_new_customer(cs_worker *w, const cs_part *p, uint64_t h)
{
    cs_engine *e = w->e;
    uint64_t tag = (h & ~(uint64_t)0xFFFF) | p->label;
    _Atomic uint64_t *slot = seen_slot(e, h);
    uint64_t old = atomic_load_explicit(slot, memory_order_relaxed);
    if (old != 0 && old != tag && ((old ^ tag) >> 16) == 0)
        w->multi_part++; /* the same customer, created on another partition */
    if (old != tag)
        atomic_store_explicit(slot, tag, memory_order_relaxed);
}

/* Decode -> sessionize -> classify -> count, in partition order, through the software pipeline
 * (see PIPE). `replay`: counts go to the discard buffer and invalid messages are not
 * dead-lettered again (the earlier owner did both). `padded`: every payload is followed by
 * CS_MSG_PAD NULs (cs_worker_process_padded), so it is scanned where it lies instead of in the
 * decoder's copy; either way the events' slices point into the payloads (or into a slot's
 * decoder's scratch), valid for the whole call, which is as long as the pipeline holds them. */
static void process_run(cs_worker *w, cs_part *p, const cs_msg *msgs, size_t n, int replay,
                        const int padded)
{
    cs_pstate *st = p->st;
    cs_agg *a = w->ctx.agg;
    uint64_t inv = 0, late = 0;
    /* The decoder bounds an event time by its message timestamp; this bounds it by our own
     * clock too, read once per batch, so that a message timestamp far ahead (a producer that
     * stamps messages with the device's clock) cannot move the watermark either
     * (docs/semantics.md "Event time bounds"). */
    int64_t mf = cs_rules_session(w->rs)->max_future_ms;
    const int pf = cs_decode_plan_person_field(cs_rules_plan(w->rs)); /* SPEC 3.1; 0: none */
    int64_t wall_limit = INT64_MAX;
    if (mf > 0 && __builtin_add_overflow(cs_wall_ms(), mf, &wall_limit))
        wall_limit = INT64_MAX;
    for (size_t i = 0; i < n + PIPE - 1; i++) {
        if (i < n) {
            inflight *f = &w->fl[i % PIPE];
            cs_decoder_use_slot(w->dec, (int)(i % PIPE));
            cs_invalid r = padded ? cs_decode_padded(w->dec, msgs[i].payload, msgs[i].len,
                                                     msgs[i].ts_ms, &f->ev)
                                  : cs_decode(w->dec, msgs[i].payload, msgs[i].len,
                                              msgs[i].ts_ms, &f->ev);
            if (r == CS_DECODE_OK && __builtin_expect(f->ev.ts_ms > wall_limit, 0))
                r = CS_INV_FUTURE_TIME;
            f->ok = r == CS_DECODE_OK;
            if (!f->ok) {
                if (w->e->invalid_hook && !replay)
                    w->e->invalid_hook(w->e->invalid_opaque, &msgs[i], cs_invalid_name(r));
                a->invalid[r]++;
                a->changes++;
                inv++;
            } else {
                cs_customer_hash(f->ev.f[CS_F_CUSTOMER].p, f->ev.f[CS_F_CUSTOMER].len, &f->h,
                                 &f->h2);
                cs_pstate_prefetch_index(st, f->h);
                if (__builtin_expect(f->ev.idf == (CS_ID_DEVICE | CS_ID_PERSON), 0)) {
                    /* SPEC 3.1: the person's hash (once, for the prefetch and the sessionizer)
                     * and index slot; the alias slot, which the sessionizer reads when the
                     * device has an alias or gets one now. A device alone probes the alias
                     * table only when its entry has an alias (one stage later). */
                    cs_customer_hash(f->ev.f[pf].p, f->ev.f[pf].len, &f->ph, &f->ph2);
                    cs_pstate_prefetch_index(st, f->ph);
                    cs_pstate_prefetch_alias(st, f->h);
                }
            }
        }
        if (i >= 1 && i - 1 < n && w->fl[(i - 1) % PIPE].ok) {
            const inflight *f = &w->fl[(i - 1) % PIPE];
            int known;
            if (__builtin_expect(f->ev.idf == CS_ID_DEVICE, 0)) {
                /* SPEC 3.1, and its alias */
                known = cs_pstate_prefetch_customer_dev(st, f->h, f->h2);
            } else {
                known = cs_pstate_prefetch_customer(st, f->h);
                if (__builtin_expect(f->ev.idf == (CS_ID_DEVICE | CS_ID_PERSON), 0))
                    cs_pstate_prefetch_customer(st, f->ph);
            }
            /* A customer the index does not have is created when this event is sessionized,
             * and note_new_customer then reads its detector slot: a line of a 2 MB table that
             * the state's traffic keeps out of the caches. Not prefetched, that read was ~7 %
             * of the one-thread core's time with bench_core's 1M new customers in 5M events
             * (perf: the samples of process_run on its load; RESULTS-e2e.md "the detector's
             * slot"). For write: the slot is then stored. */
            if (!known && !replay)
                __builtin_prefetch(seen_slot(w->e, f->h), 1);
        }
        if (i >= 2 && i - 2 < n && w->fl[(i - 2) % PIPE].ok) {
            const inflight *f = &w->fl[(i - 2) % PIPE];
            if (__builtin_expect(f->ev.idf == CS_ID_DEVICE, 0))
                cs_pstate_prefetch_session_dev(st, f->h, f->h2);
            else
                cs_pstate_prefetch_session(st, f->h, f->h2);
        }
        if (i >= PIPE - 1) {
            inflight *f = &w->fl[(i - (PIPE - 1)) % PIPE];
            if (f->ok) {
                int r = cs_sessionize_hashed(st, &w->ctx, &f->ev, f->h, f->h2, f->ph, f->ph2);
                late += r == CS_EV_LATE;
                if (r == CS_EV_NEW_CUSTOMER && !replay)
                    note_new_customer(w, p, f->h);
            }
        }
    }
    if (n)
        p->next_offset = msgs[n - 1].offset + 1;
    if (replay) {
        w->replayed += n;
    } else {
        p->counted += n;
        w->messages += n;
        w->invalid += inv;
        w->late += late;
        w->events += n - inv;
    }
    int64_t mt = cs_pstate_max_time(st);
    if (mt != INT64_MIN) {
        int64_t wm = wm_of(mt, cs_rules_session(w->rs)->lateness_ms);
        /* relaxed: see compute_min. */
        if (wm > atomic_load_explicit(&p->wm, memory_order_relaxed))
            atomic_store_explicit(&p->wm, wm, memory_order_relaxed);
    }
}

_Static_assert(CS_MSG_PAD >= CS_DECODE_PAD, "the engine's padding must be the decoder's");

static void worker_process(cs_worker *w, int part, const cs_msg *msgs, size_t n, const int padded)
{
    worker_pick_rules(w);
    cs_part *p = w->e->parts[part];
    if (p->replay_end >= 0) {
        size_t k = 0;
        while (k < n && msgs[k].offset < p->replay_end)
            k++;
        if (k) {
            /* judged against the partition's own watermark, capped at what the earlier
             * owner had applied: the outcome of every event is then the one it had */
            int64_t W = w->ctx.W;
            int64_t own = atomic_load_explicit(&p->wm, memory_order_relaxed);
            w->ctx.W = own < p->replay_wm ? own : p->replay_wm;
            w->ctx.agg = w->discard;
            process_run(w, p, msgs, k, 1, padded);
            cs_agg_reset(w->discard);
            w->ctx.agg = w->agg;
            w->ctx.W = W;
        }
        if (k < n || p->next_offset >= p->replay_end)
            finish_replay(w->e, p, w->discard, w->rs);
        msgs += k;
        n -= k;
    }
    if (n) {
        /* A partition's events are never judged against a watermark below the one its state was
         * advanced to (by this worker, or by an earlier owner before a restore): right after a
         * restart this worker's own watermark is still "none" until its first tick. */
        /* Nor above the partition's own: W is the minimum computed at this worker's last tick,
         * which does not include a partition assigned since. A partition restored after lagging
         * (a lost assignment: seconds, hours of event time at the soak's speed) had its first
         * events judged late against the others' watermark (the soak: 721 in 2.4 M); the
         * minimum it would be part of is at most its own, or none while it has no events. */
        int64_t W = w->ctx.W;
        int st = atomic_load_explicit(&p->state, memory_order_relaxed);
        int64_t own = atomic_load_explicit(&p->wm, memory_order_relaxed);
        if (st == CS_PART_ACTIVE && own < w->ctx.W)
            w->ctx.W = own; /* INT64_MIN (no events yet) included, as compute_min does */
        if (w->ctx.W < p->applied_wm)
            w->ctx.W = p->applied_wm;
        process_run(w, p, msgs, n, 0, padded);
        w->ctx.W = W;
    }
}

void cs_worker_process(cs_worker *w, int part, const cs_msg *msgs, size_t n)
{
    worker_process(w, part, msgs, n, 0);
}

void cs_worker_process_padded(cs_worker *w, int part, const cs_msg *msgs, size_t n)
{
    worker_process(w, part, msgs, n, 1);
}

void cs_worker_tick(cs_worker *w)
{
    worker_pick_rules(w);
    const int64_t W = cs_engine_refresh_watermark(w->e);
    if (w->e->tick_hook)
        w->e->tick_hook(w->e->tick_hook_arg);
    int np = atomic_load_explicit(&w->e->nparts, memory_order_acquire);
    for (int i = 0; i < np; i++) {
        cs_part *p = w->e->parts[i];
        /* a replaying partition's expiry was counted by its earlier owner up to replay_wm */
        if (owner_of(p) == w->id && p->replay_end < 0) {
            /* Never above an ACTIVE partition's own watermark. W is the minimum computed above;
             * a partition the control thread published since (on_assign) is not in it, yet this
             * loop finds it owned. Advanced to W, a partition restored hours (of event time)
             * behind the others had its open sessions ended early and its applied watermark
             * raised, so its next events were judged against the others' watermark: sessions
             * split, events late. 20-minute soaks moved 18 and 3 counts between fields that way,
             * in 2 runs of 10 (~60,000 assignments each; bench/RESULTS.md "Soak"; regression test
             * test_watermark.c test_regression_partition_published_during_the_tick). The owner
             * load above is an acquire that pairs with the release of owner at publication, so
             * state and wm read here are the published ones. An IDLE partition is advanced past
             * its own watermark on purpose (SPEC §3: idle partitions do not hold it back). */
            int64_t pw = W;
            int st = atomic_load_explicit(&p->state, memory_order_relaxed);
            int64_t own = atomic_load_explicit(&p->wm, memory_order_relaxed);
            if (st == CS_PART_ACTIVE && own < pw)
                pw = own; /* INT64_MIN (no event yet) included, as compute_min does */
            w->ctx.W = pw;
            cs_pstate_advance(p->st, &w->ctx);
            if (pw > p->applied_wm)
                p->applied_wm = pw;
        }
    }
    w->ctx.W = W;
}

/* Ends the open sessions of one partition: a replay still open is finished first (the
 * caller knows nothing more of it is coming: drain end or revoke), so nothing counted by an
 * earlier owner is counted again. */
static void end_part(cs_worker *w, cs_part *p, int reason)
{
    if (p->replay_end >= 0)
        finish_replay(w->e, p, w->discard, w->rs);
    cs_pstate_advance(p->st, &w->ctx);
    cs_pstate_end_all(p->st, &w->ctx, reason);
    cs_pstate_advance(p->st, &w->ctx);
    if (w->ctx.W > p->applied_wm)
        p->applied_wm = w->ctx.W;
}

void cs_worker_end_all(cs_worker *w, int reason)
{
    w->ctx.W = cs_engine_watermark(w->e);
    int np = atomic_load_explicit(&w->e->nparts, memory_order_acquire);
    for (int i = 0; i < np; i++)
        if (owner_of(w->e->parts[i]) == w->id)
            end_part(w, w->e->parts[i], reason);
}

void cs_worker_end_part(cs_worker *w, int part, int reason)
{
    cs_part *p = w->e->parts[part];
    if (owner_of(p) != w->id || !p->st)
        return;
    w->ctx.W = cs_engine_watermark(w->e);
    end_part(w, p, reason);
}

void cs_worker_finish_replays(cs_worker *w)
{
    int np = atomic_load_explicit(&w->e->nparts, memory_order_acquire);
    for (int i = 0; i < np; i++) {
        cs_part *p = w->e->parts[i];
        if (owner_of(p) == w->id && p->replay_end >= 0)
            finish_replay(w->e, p, w->discard, w->rs);
    }
}

int cs_worker_snapshot_part(cs_worker *w, int part, char **out, size_t *outlen,
                            cs_snap_info *info)
{
    cs_part *p = w->e->parts[part];
    if (owner_of(p) != w->id || !p->st || p->replay_end >= 0 || p->next_offset < 0)
        return 1; /* nothing consistent to write: the one in Redis stays */
    memset(info, 0, sizeof *info);
    info->next_offset = p->next_offset;
    info->applied_wm = p->applied_wm;
    info->max_t = cs_pstate_max_time(p->st);
    return cs_snapshot_write(p->st, w->rs, w->e->dicts, info, out, outlen) == 0 ? 0 : -1;
}

void cs_worker_part_progress(const cs_worker *w, int part, int64_t *next_offset,
                             int64_t *applied_wm)
{
    const cs_part *p = w->e->parts[part];
    if (p->replay_end >= 0) {
        *next_offset = p->replay_end;
        *applied_wm = p->replay_wm;
    } else {
        *next_offset = p->next_offset;
        *applied_wm = p->applied_wm;
    }
}

uint64_t cs_worker_part_counted(const cs_worker *w, int part)
{
    return w->e->parts[part]->counted;
}

cs_agg *cs_worker_take_agg(cs_worker *w)
{
    cs_agg *full = w->agg;
    cs_agg *next = w->spare ? w->spare : agg_new(w->rs);
    if (!next)
        return NULL; /* keep counting into the current buffer; the caller retries */
    w->spare = NULL;
    w->agg = next;
    w->ctx.agg = next;
    return full;
}

void cs_worker_give_agg(cs_worker *w, cs_agg *a)
{
    cs_agg_reset(a);
    if (!w->spare)
        w->spare = a;
    else
        agg_destroy(a);
}

int64_t cs_worker_next_offset(const cs_worker *w, int part)
{
    return w->e->parts[part]->next_offset;
}

void cs_worker_stats_get(cs_worker *w, cs_worker_stats *st)
{
    memset(st, 0, sizeof *st);
    st->messages = w->messages;
    st->events = w->events;
    st->invalid = w->invalid;
    st->late = w->late;
    st->replayed = w->replayed;
    st->multi_partition = w->multi_part;
    int np = atomic_load_explicit(&w->e->nparts, memory_order_acquire);
    for (int i = 0; i < np; i++) {
        if (owner_of(w->e->parts[i]) != w->id)
            continue;
        cs_pstate_stats ps;
        cs_pstate_stats_get(w->e->parts[i]->st, &ps);
        st->sessions_open += ps.sessions;
        st->customers += ps.customers;
        st->session_bytes += ps.session_bytes;
        st->customer_bytes += ps.customer_bytes;
        st->aliases += ps.aliases;
        st->alias_bytes += ps.alias_bytes;
    }
}

cs_dimdict_mpmc *cs_engine_dicts(cs_engine *e)
{
    return e->dicts;
}
