/* sink.h — the pipeline's sink: one flush of merged count deltas, and the Kafka offsets that
 * produced them, written to Redis in one atomic step (SPEC §4). pipeline/coord.c decides what
 * goes into a flush and when.
 *
 * Contract
 *  - A flush is all-or-nothing: one Lua script (one round trip) checks that Redis holds, for every
 *    partition of the flush, the offset this writer expects (fencing), then applies every
 *    HINCRBY of the deltas, the offsets and applied watermarks, the meta hash (stages,
 *    rules_sha256, updated_ms, version, and this instance's flush sequence number), EXPIRE of
 *    the minute keys it touched and the partition snapshots it carries. After it succeeds,
 *    PUBLISH on `<prefix>:{J}:updates` (outside the script: a lost publish costs a watcher one
 *    refresh, never a count).
 *  - Fenced (CS_SINK_FENCED): some partition's offset in Redis is not the expected one — another
 *    instance owns it now, or Redis lost acknowledged writes. Nothing was written; the caller
 *    must not retry this flush (cs_sink_fence_detail says which partitions).
 *  - When the connection breaks after EXEC was sent but before its reply, the outcome is unknown.
 *    cs_sink_flush resolves it on the next attempt by reading this instance's sequence field in
 *    the meta hash: equal to the flush's sequence -> already applied, report success without
 *    writing again. So a retried flush is never applied twice.
 *  - Errors never lose data: on failure the caller keeps the flush exactly as it was (same seq,
 *    same deltas, same offsets; later deltas wait in a separate buffer) and calls cs_sink_flush
 *    again until it succeeds; the sink reconnects with capped exponential backoff
 *    (cs_sink_ready() says whether an attempt is due) and logs once per state change through
 *    the one logger (pipeline/log.h), not per attempt.
 *  - Single-threaded: one thread owns a cs_sink (the flusher). A second cs_sink (its own
 *    connection) may be used by another thread, e.g. to read offsets on partition assignment.
 *  - Before the sequence check after a lost reply, the sink fences the connection that carried
 *    the lost transaction (CLIENT KILL ID on the same server run), so a transaction still queued
 *    in the server's socket buffer cannot be executed after the check said "not applied".
 *  - I/O never raises SIGPIPE in the calling thread (blocked and consumed around each call).
 *  - Clocks: cs_sink_ready() takes the monotonic clock (cs_mono_ms); it anchors a backoff at
 *    its first call after the failure. cs_flush.now_ms is the wall clock (updated_ms).
 *  - Connections and key names are pipeline/redis.h's and pipeline/rkeys.h's. Redis Cluster and
 *    Sentinel are the layer's: the sink routes its connection to the journey's slot
 *    (cs_redis_route) and, when a reply says MOVED / ASK / READONLY (a demoted sentinel master),
 *    sends the same request again where the layer says (at most CS_REDIS_MAX_REDIRECTS times per
 *    call); those replies mean nothing was executed. TRYAGAIN / CLUSTERDOWN fail the call (not
 *    applied) and back off like any failure.
 *  - Layout, transaction and failure behaviour as implemented: docs/redis.md.
 */
#ifndef CS_SINK_H
#define CS_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "aggregate.h"
#include "classify.h"
#include "redis.h"

typedef struct cs_sink cs_sink;

typedef struct cs_sink_conf {
    const char *url;            /* redis://[[user]:password@]host[:port][/db] (port 6379, db 0),
                                   unix:///path/to.sock[?db=N][&password=P], or /path/to.sock;
                                   %XX escapes in user/password; NULL = redis://127.0.0.1:6379 */
    const char *prefix;         /* key prefix, default "clickstage" */
    const char *instance_id;    /* names this instance's sequence field in meta: "seq:<id>";
                                   must differ between instances writing one journey; NULL = the
                                   host name */
    int connect_timeout_ms;     /* default 2000 */
    int command_timeout_ms;     /* default 5000 */
    int backoff_min_ms;         /* default 100 */
    int backoff_max_ms;         /* default 5000 */
    int64_t minute_ttl_s;       /* EXPIRE of minute keys, default 172800 (48 h) */
    int quiet;                  /* 1: log nothing (a second connection to the same Redis,
                                   whose outages the first one already reports) */
    int wait_replicas;          /* > 0: WAIT for that many replicas after each flush (pipelined
                                   behind it); fewer within wait_timeout_ms is logged and
                                   counted (stats.wait_short), not an error: exactness does not
                                   depend on it (docs/redis.md "WAIT") */
    int wait_timeout_ms;        /* WAIT's timeout, default 100 (0 would wait forever) */
} cs_sink_conf;

typedef struct cs_flush_offset {
    const char *topic;
    int32_t partition;
    int64_t next_offset;        /* next offset to read (what the offsets hash stores) */
    int check;                  /* 1: apply only if Redis holds `expected` (fencing) */
    int64_t expected;           /* the offset Redis must hold; -1 = Redis must have none */
    int64_t applied_wm;         /* watermark the partition's expiry was applied to (wm hash) */
} cs_flush_offset;

typedef struct cs_flush_snap {  /* <prefix>:{J}:snap:<topic>/<partition> := data */
    const char *topic;
    int32_t partition;
    const char *data;
    size_t len;
} cs_flush_snap;

typedef struct cs_flush {
    uint64_t seq;               /* strictly increasing per instance, starting at 1 */
    const cs_agg *agg;          /* merged deltas; may be all zero (then only offsets/meta) */
    const cs_ruleset *rs;       /* names stages and dimensions; journey name = {J} */
    cs_dimdict_mpmc *dicts;     /* names dimension value ids */
    const cs_flush_offset *offsets;
    size_t noffsets;
    const cs_flush_snap *snaps; /* written in the same atomic step */
    size_t nsnaps;
    int64_t now_ms;             /* wall clock: updated_ms */
} cs_flush;

typedef struct cs_sink_stats {
    uint64_t flushes_ok, flushes_failed, commands, reconnects, resolved_ambiguous, fenced;
    uint64_t last_flush_commands;
    uint64_t redirects;   /* cluster MOVED/ASK (and a sentinel master gone READONLY) followed */
    uint64_t wait_short;  /* flushes whose WAIT saw fewer replicas than wait_replicas */
    int last_wait_replicas; /* what the last WAIT answered (-1: no WAIT yet) */
    int connected;
    /* refusals (issue 20): failures by class (cs_redis_class: error replies by their class,
     * CS_REDIS_UNREACHABLE no reply), and the streak going on now (CS_REDIS_OK none): its
     * class, Redis's text of its first failure, since when (wall ms) */
    uint64_t errors[CS_REDIS__COUNT];
    int refusal;
    char refusal_text[256];
    int64_t refusal_since_ms;
} cs_sink_stats;

cs_sink *cs_sink_new(const cs_sink_conf *conf, char *errstr, size_t errlen); /* bad URL -> NULL */
void cs_sink_destroy(cs_sink *s);

/* 0: applied (now, or by an earlier attempt of the same seq whose reply was lost); -1: not
 * applied, errstr says why; retry later with the identical flush. CS_SINK_FENCED: not applied
 * and never will be (see the contract). */
#define CS_SINK_FENCED (-2)
int cs_sink_flush(cs_sink *s, const cs_flush *f, char *errstr, size_t errlen);
/* After CS_SINK_FENCED: what kind of fence (the caller's decision depends on it, no text to
 * parse), and for the log "<topic>/<partition>=<offset in Redis> ..." for every partition whose
 * offset was not the expected one (empty after "=" when Redis has none). */
enum {
    CS_FENCE_NONE = 0,
    CS_FENCE_OTHER_WRITER, /* Redis holds offsets this writer did not write: another owner */
    CS_FENCE_REDIS_BEHIND, /* Redis holds older offsets than this writer wrote: it lost
                              acknowledged writes (failover to a lagging replica, old AOF) */
    CS_FENCE_STATE_LOST,   /* Redis holds no offset where this writer wrote one */
};
int cs_sink_fence_kind(const cs_sink *s);
const char *cs_sink_fence_detail(const cs_sink *s);

/* What Redis holds for a partition, for its new owner. */
typedef struct cs_part_saved {
    int has_offset;
    int64_t offset;     /* next offset counted (offsets hash) */
    int has_wm;
    int64_t wm;         /* watermark the counted expiry was applied to (wm hash) */
    char *snap;         /* snapshot bytes (malloc'd, the caller frees), NULL if none */
    size_t snap_len;
} cs_part_saved;
/* One round trip (HGET offsets, HGET wm, GET snap:<topic>/<partition>). 0 ok (fields set),
 * -1 Redis error or malformed values (errstr). */
int cs_sink_load_part(cs_sink *s, const char *journey, const char *topic, int32_t partition,
                      cs_part_saved *out, char *errstr, size_t errlen);

/* 1 when a (re)connection attempt or a flush is due under the backoff, 0 while backing off. */
int cs_sink_ready(cs_sink *s, int64_t now_ms);

/* Next offset stored for topic/partition in <prefix>:{J}:offsets: 1 found (*off set), 0 none,
 * -1 Redis error. */
int cs_sink_load_offset(cs_sink *s, const char *journey, const char *topic, int32_t partition,
                        int64_t *off, char *errstr, size_t errlen);

/* PING round trip: 0 reachable, -1 not. */
int cs_sink_ping(cs_sink *s);

void cs_sink_stats_get(const cs_sink *s, cs_sink_stats *st);

/* ---- additions ---- */

/* The sequence number this instance last applied to journey J (meta field seq:<instance_id>):
 * 1 found (*seq set), 0 none, -1 Redis error. A restarted instance should continue at *seq + 1
 * rather than at 1: then a lost reply of its first flush can never be mistaken for success
 * because the previous run happened to stop at the same number. */
int cs_sink_load_seq(cs_sink *s, const char *journey, uint64_t *seq, char *errstr, size_t errlen);

/* A clean stop: removes this instance's meta field seq:<instance_id>, which nothing needs once
 * every flush's outcome is known (it only resolves a lost reply of this process's own flush).
 * Without it every process with another instance id (the default is host-pid) left one field
 * in meta for ever (issue 12). 0 removed (or there was none), 1 kept (a flush's outcome is still
 * unknown), -1 Redis error (errstr). */
int cs_sink_forget_seq(cs_sink *s, const char *journey, char *errstr, size_t errlen);

/* Test-only fault injection, one shot, applies to the next cs_sink_flush that writes:
 *  CS_SINK_FAULT_AFTER_EXEC   the whole flush command is sent and executed, then the
 *                             connection is closed without reading a reply (lost reply);
 *  CS_SINK_FAULT_BEFORE_EXEC  all but its last bytes are sent, then the connection is closed
 *                             (the server discards the incomplete command; the sink cannot tell).
 * (The names are from the MULTI/EXEC transaction the flush script replaced.)
 * Both make that flush return -1 with its outcome "unknown", as a real broken connection does. */
enum { CS_SINK_FAULT_NONE = 0, CS_SINK_FAULT_AFTER_EXEC = 1, CS_SINK_FAULT_BEFORE_EXEC = 2 };
void cs_sink_test_fault(cs_sink *s, int fault);

#endif
