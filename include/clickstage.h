/* clickstage.h — the public API of the clickstage core: an engine of worker threads that turns
 * Kafka-style messages (payload, timestamp, partition, offset) into the per-stage count deltas of
 * SPEC §4. Kafka and Redis are not part of this API: cmd/clickstage wires librdkafka to the
 * workers and the workers' deltas to Redis.
 *
 * Ownership and threads (the contract in one place):
 *  - cs_engine: created and destroyed by one control thread. Shared, read-mostly state only:
 *    the current rule table (swapped atomically), dimension dictionaries, partition watermarks.
 *  - cs_worker: one per thread; every function taking a cs_worker is called only by that thread.
 *    A worker owns the state (sessions, customers) of the partitions it is given.
 *  - Partitions are identified by a small engine-wide id (a slot, 0..CS_MAX_PARTITIONS-1) from
 *    cs_engine_add_partition(); a slot freed by cs_engine_remove_partition() is handed out again.
 *    Their state moves only with an explicit hand-over (rebalance), never implicitly.
 *  - Errors: constructors return NULL and fill errstr (librdkafka style).
 */
#ifndef CLICKSTAGE_H
#define CLICKSTAGE_H

#include <stddef.h>
#include <stdint.h>

#define CLICKSTAGE_VERSION "0.1.0"

/* Partitions one process can have assigned at once (engine partition slots; the source's, the
 * coordinator's and the barrier's tables are sized by it). Slots are reused after a revoke, so
 * there is no limit on assignments over the life of a process. */
#define CS_MAX_PARTITIONS 4096

typedef struct cs_engine cs_engine;
typedef struct cs_worker cs_worker;
typedef struct cs_ruleset cs_ruleset;
typedef struct cs_agg cs_agg;
typedef struct cs_pstate cs_pstate;

typedef struct cs_msg {
    const char *payload;
    size_t len;
    int64_t ts_ms;  /* the Kafka message timestamp: the event time when the event has none */
    int64_t offset;
} cs_msg;

/* Partition states for the watermark (SPEC §3): ACTIVE partitions hold the overall watermark
 * back (even before their first event); IDLE ones (silent for idle_close) do not; DONE ones
 * (drained to their end offset) hold it at their final watermark, or not at all if they never
 * had an event; UNASSIGNED ones are ignored. */
enum cs_part_state { CS_PART_UNASSIGNED = 0, CS_PART_ACTIVE, CS_PART_IDLE, CS_PART_DONE };

/* Takes ownership of rs. nworkers >= 1. */
cs_engine *cs_engine_new(cs_ruleset *rs, int nworkers, char *errstr, size_t errlen);
void cs_engine_destroy(cs_engine *e);
int cs_engine_nworkers(const cs_engine *e);
cs_worker *cs_engine_worker(cs_engine *e, int i);
const cs_ruleset *cs_engine_rules(const cs_engine *e);

/* Installs a new rule table (takes ownership). Workers pick it up at their next batch. Stages,
 * journey and dimensions must be unchanged (sessions store stage and value ids); otherwise
 * returns -1 with errstr and leaves the running table in place. The old table is freed by a
 * later swap once every worker has moved past it (hazard pointers, engine.c reclaim_retired),
 * or at cs_engine_destroy: reloads are unlimited. Call it from one thread (the control thread);
 * a cs_engine_rules() pointer read on that thread stays valid until its next swap. */
int cs_engine_swap_rules(cs_engine *e, cs_ruleset *rs, char *errstr, size_t errlen);

/* Called by workers for every invalid message (rare path: dead-letter copies). The hook runs on
 * the worker's thread and must be thread-safe. */
typedef void (*cs_invalid_hook)(void *opaque, const cs_msg *m, const char *reason);
void cs_engine_set_invalid_hook(cs_engine *e, cs_invalid_hook hook, void *opaque);

/* Registers a partition (state created empty) owned by worker `w`; returns its id (>= 0), or -1
 * (out of memory, or CS_MAX_PARTITIONS partitions registered at once). One thread adds
 * partitions (the control thread); workers may run meanwhile. */
int cs_engine_add_partition(cs_engine *e, int w);
void cs_engine_set_part_state(cs_engine *e, int part, int state);
int cs_engine_part_state(const cs_engine *e, int part);
int cs_engine_part_owner(const cs_engine *e, int part);
/* Frees a partition's state and its slot. Only once its owner no longer touches it (by the owner
 * itself, at a barrier, or after the partition was ended with cs_worker_end_part and the owner
 * passed a batch boundary). The id may be handed out again by the next add. */
void cs_engine_remove_partition(cs_engine *e, int part);
int64_t cs_engine_part_watermark(const cs_engine *e, int part);
/* The overall watermark: the minimum over the assigned, non-idle partitions (it moves backwards
 * when a partition that is behind is assigned or comes back from idle); INT64_MIN before there
 * is one. Recomputed by workers. */
int64_t cs_engine_watermark(const cs_engine *e);
/* Recomputes the overall watermark from the partitions now (any thread). */
int64_t cs_engine_refresh_watermark(cs_engine *e);
/* Min over partitions that had events (for the end of a drain); INT64_MIN if none. */
int64_t cs_engine_final_watermark(const cs_engine *e);
/* Raises the watermark to at least W (drain end). */
void cs_engine_set_watermark(cs_engine *e, int64_t W);

/* ---- worker (its own thread only) ---- */
/* Decodes, sessionizes, classifies and counts a batch of one partition, in order. */
void cs_worker_process(cs_worker *w, int part, const cs_msg *msgs, size_t n);
/* The same, without the decoder's copy of each payload: the caller guarantees that every
 * msgs[i].payload is followed by CS_MSG_PAD NUL bytes (payload[len .. len + CS_MSG_PAD)
 * readable and 0, len 0 included), and that they stay there until the call returns; payloads
 * are decoded where they lie and only read. The padding is not part of the message: len
 * excludes it, and the invalid hook gets the message as given (payload, len). */
#define CS_MSG_PAD 64
void cs_worker_process_padded(cs_worker *w, int part, const cs_msg *msgs, size_t n);
/* Publishes this worker's partition watermarks, refreshes the overall one and expires what it
 * has passed. Call between batches. */
void cs_worker_tick(cs_worker *w);
/* Ends every open session of the worker's partitions (drain or shutdown). */
void cs_worker_end_all(cs_worker *w, int reason);
/* Ends the open sessions of one partition it owns (revoke). */
void cs_worker_end_part(cs_worker *w, int part, int reason);
/* The deltas counted since the last call; the worker continues into a fresh buffer. The
 * returned buffer belongs to the caller until cs_worker_give_agg(). */
cs_agg *cs_worker_take_agg(cs_worker *w);
void cs_worker_give_agg(cs_worker *w, cs_agg *a);
/* Next offset per partition counted into the aggregates taken so far (-1 if none). */
int64_t cs_worker_next_offset(const cs_worker *w, int part);

/* Per-worker counters for metrics. */
typedef struct cs_worker_stats {
    uint64_t messages, events, invalid, late;
    uint64_t replayed;        /* messages re-read after a restore, not counted again */
    uint64_t multi_partition; /* new customer entries already seen on another partition */
    uint64_t sessions_open, customers;
    size_t session_bytes, customer_bytes;
    uint64_t aliases;   /* SPEC 3.1 identity: device -> person aliases held */
    size_t alias_bytes; /* and their table (with the key entries' alias bits) */
} cs_worker_stats;
void cs_worker_stats_get(cs_worker *w, cs_worker_stats *st);

#endif
