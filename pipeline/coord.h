/* coord.h — the delivery protocol: how counts and the Kafka offsets that produced them reach
 * Redis together, once (SPEC §4; docs/state.md; docs/architecture.md draws it).
 *
 * The coordinator owns the control plane of a running pipeline:
 *  - the worker threads (each runs source -> decode -> sessionize -> classify -> aggregate on
 *    the partitions it owns, pipeline/engine.c) and the BARRIER through which every worker hands
 *    over its deltas, the progress (next offset, applied watermark) of its partitions and, when
 *    asked, snapshots of their state;
 *  - the FLUSH loop: every flush_interval the deltas collected so far and the offsets that
 *    produced them go to Redis in one fenced atomic step (pipeline/sink.c); only then are the
 *    offsets committed to Kafka. A failed flush is retried unchanged (later deltas wait in a
 *    second buffer), so nothing is lost or doubled across a Redis outage; after
 *    redis_outage_pause of failures consumption pauses until Redis takes writes again;
 *  - RESTORE AND REPLAY on assignment: a partition comes back from what Redis holds (its offset,
 *    applied watermark and snapshot) and re-reads, without counting, what an earlier owner
 *    counted after that snapshot; on revoke and on a graceful stop it is snapshotted and flushed;
 *  - FENCING: a flush Redis refuses because it holds other offsets than this writer expects
 *    (another instance owns a partition now, or Redis lost acknowledged writes) stops this
 *    process from writing anything more; the caller re-executes it so that everything it owns
 *    afterwards is restored from what Redis holds. Redis that lost a partition's counts follows
 *    redis_state_lost (rebuild, or stop with CS_COORD_FATAL).
 *
 * Threads and ownership
 *  - One control thread calls every function here (main's thread, or a test's). It serves
 *    librdkafka's rebalance callbacks from cs_coord_step, so assignment and revocation happen on
 *    it too. The worker threads are the coordinator's own (started by cs_coord_start, joined by
 *    cs_coord_stop); they touch only their partitions' state and their barrier slot.
 *  - The metrics box (cs_coord_metrics) is the only thing other threads (the HTTP server) read.
 *  - No globals: two coordinators in one process (tests do it) do not share anything but the
 *    logger.
 *
 * Life cycle
 *      c = cs_coord_new(engine, &conf, err)        no I/O beyond creating the Kafka handle
 *      cs_coord_start(c, err)                      subscribe (live) or assign everything (drain),
 *                                                  start the workers
 *      while (cs_coord_step(c, 100) == CS_COORD_RUNNING) { ...signals, reloads... }
 *      status = cs_coord_stop(c)                   stop reading, snapshot (drain: end sessions),
 *                                                  final flush, commit, leave the group
 *      cs_coord_destroy(c)
 */
#ifndef CS_COORD_H
#define CS_COORD_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "clickstage.h"
#include "metrics.h"

typedef struct cs_coord cs_coord;
struct cs_sink;

/* redis_state_lost values */
#define CS_STATE_LOST_REBUILD 0
#define CS_STATE_LOST_FAIL 1

typedef struct cs_coord_conf {
    /* Kafka (pipeline/source.h) */
    const char *brokers, *group, *topics, *client_id, *group_instance_id;
    const char *kafka_props;       /* "k=v,k=v", applied last */
    const char *dead_letter_topic; /* NULL or "" = none */
    int earliest;                  /* auto.offset.reset */
    int drain;
    int batch_size;
    int fetch_threads;             /* consumer handles (pipeline/source.h); 0: auto */
    /* Redis (pipeline/sink.h) */
    const char *redis_url, *prefix, *instance_id;
    int64_t minute_ttl_ms;
    int redis_timeout_ms;          /* a command's reply; 0: 5000 (connect: 2000) */
    int redis_wait_replicas;       /* > 0: WAIT for that many replicas after each flush */
    int redis_wait_timeout_ms;     /* its timeout; 0: 100 */
    /* the protocol */
    int64_t flush_interval_ms;     /* > 0 */
    int64_t snapshot_interval_ms;  /* 0: only on revoke and stop */
    int64_t shutdown_timeout_ms;   /* final flush and revoke flush deadline */
    int64_t redis_outage_pause_ms; /* 0: never pause */
    int redis_state_lost;          /* CS_STATE_LOST_* */
    /* The caller's stop request (a signal handler's flag), looked at where the control thread
     * waits inside librdkafka's callbacks (an assignment retrying an unreachable Redis), so a
     * SIGTERM is not held up by them. NULL: none. */
    const volatile sig_atomic_t *stop_flag;
} cs_coord_conf;

/* cs_coord_step / cs_coord_status */
enum {
    CS_COORD_RUNNING = 0,
    CS_COORD_DRAINED,  /* drain mode: every partition reached its end offset */
    CS_COORD_FENCED,   /* a flush was fenced: stop writing, rejoin with fresh state */
    CS_COORD_FATAL,    /* Redis lost the counts and redis_state_lost = fail */
};

/* cs_coord_stop */
enum {
    CS_COORD_STOPPED = 0,     /* everything flushed and committed */
    CS_COORD_FLUSH_FAILED,    /* the final flush missed shutdown_timeout: nothing lost, the
                                 uncommitted offsets are read again by the next owner */
    CS_COORD_STOPPED_FENCED,  /* fenced: nothing more was written; re-execute */
    CS_COORD_STOPPED_FATAL,   /* redis_state_lost = fail: nothing more was written */
};

/* Takes nothing over: the engine stays the caller's (destroy it after cs_coord_destroy).
 * NULL and errstr on a bad Redis URL, bad Kafka properties, out of memory. */
cs_coord *cs_coord_new(cs_engine *e, const cs_coord_conf *conf, char *errstr, size_t errlen);
void cs_coord_destroy(cs_coord *c);

/* Subscribes (live) or resolves every partition's start and assigns them (drain; this reads
 * Redis and may set CS_COORD_FATAL), then starts the worker threads. -1 with errstr. */
int cs_coord_start(cs_coord *c, char *errstr, size_t errlen);

/* One turn of the control loop: serves rebalances and Kafka errors for up to max_wait_ms (less
 * when a flush is due sooner), then flushes if one is due (taking due snapshots with it). Returns
 * CS_COORD_RUNNING or why the caller should stop. */
int cs_coord_step(cs_coord *c, int max_wait_ms);
int cs_coord_status(const cs_coord *c);

/* Stops reading, joins the workers and, unless fenced or fatal: ends every open session (drain)
 * or keeps them (a graceful stop: they go to Redis as snapshots), flushes until everything is
 * written or shutdown_timeout passes, commits, leaves the group. */
int cs_coord_stop(cs_coord *c);

/* A rule reload happened (the caller swapped the engine's table): counted in the metrics. */
void cs_coord_note_reload(cs_coord *c, int ok);

/* What the HTTP server reads (republished every flush interval). */
cs_metrics_box *cs_coord_metrics(cs_coord *c);

/* Tests: the flusher's sink (cs_sink_test_fault) and one flush now (0 applied, -1 not). */
struct cs_sink *cs_coord_test_sink(cs_coord *c);
int cs_coord_test_flush(cs_coord *c);
/* Tests: per-minute buckets held by the running totals behind the metrics (0: none kept). */
uint32_t cs_coord_test_totals_minutes(const cs_coord *c);

#endif
