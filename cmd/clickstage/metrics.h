/* metrics.h — what the daemon tells its HTTP endpoints (/metrics, /healthz, /readyz, /api/...).
 *
 * Contract
 *  - The control thread fills a cs_metrics snapshot after every flush attempt (every
 *    flush_interval) and publishes it with cs_metrics_publish(); HTTP threads read a copy with
 *    cs_metrics_read(). One mutex, held for a memcpy: nothing on the per-event path ever touches
 *    metrics (workers keep plain per-thread counters that the control thread sums at the flush
 *    barrier).
 *  - Counters are process-local and monotone since start (Prometheus `_total` semantics); the
 *    authoritative journey counts are in Redis (/api/journey reads them from there).
 */
#ifndef CS_METRICS_H
#define CS_METRICS_H

#include <pthread.h>
#include <stdint.h>

#include "classify.h"
#include "decode.h"

#define CS_METRICS_MAX_PARTS 1024
#define CS_METRICS_MAX_WORKERS 256
/* flush duration histogram upper bounds, seconds (Prometheus `le`), plus +Inf */
#define CS_METRICS_FLUSH_BUCKETS 10
static const double cs_metrics_flush_le[CS_METRICS_FLUSH_BUCKETS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0};

typedef struct cs_metrics_part {
    char topic[256];
    int32_t partition;
    int64_t next_offset;    /* next offset counted (-1 unknown) */
    int64_t high_watermark; /* from librdkafka's cache (-1 unknown) */
    int64_t lag;            /* high - next, or -1 */
    int64_t watermark_ms;   /* partition event-time watermark, INT64_MIN none */
    int state;              /* enum cs_part_state */
} cs_metrics_part;

typedef struct cs_metrics {
    int64_t now_ms, started_ms;
    char journey[128];
    int nstages;
    char stages[CS_MAX_STAGES][65];
    int drain;

    /* events by result, since start */
    uint64_t messages_total;
    uint64_t events_by_stage[CS_MAX_STAGES];
    uint64_t events_unclassified, events_late;
    uint64_t invalid[CS_INV__COUNT];          /* by cs_invalid; [0] unused */
    uint64_t sessions_started, sessions_ended;
    int64_t sessions_open;                    /* in this process */
    uint64_t customers_tracked;               /* entries in this process's tables */
    uint64_t session_bytes, customer_bytes;   /* state memory */
    int64_t watermark_ms;                     /* overall, INT64_MIN none */

    /* flushes and Redis */
    uint64_t flushes_ok, flushes_failed;
    uint64_t flush_bucket[CS_METRICS_FLUSH_BUCKETS]; /* cumulative counts per `le` */
    uint64_t flush_count;
    double flush_seconds_sum;
    uint64_t redis_commands, redis_reconnects;
    int redis_up;
    int64_t last_flush_ok_ms;
    uint64_t flush_seq;

    /* Kafka */
    uint64_t rebalances, redelivered_skipped, dead_lettered, consume_errors;
    uint64_t partitions_assigned, partitions_revoked;

    /* state that moves with partitions (docs/state.md) */
    uint64_t snapshots_written, snapshot_bytes_written, snapshots_rejected;
    uint64_t restores, restored_sessions, replayed_messages;
    int replaying_partitions;
    double last_restore_seconds;       /* loading + decoding the last snapshot */
    double last_replay_seconds;        /* assignment to the end of its replay */
    uint64_t fenced, state_lost;
    uint64_t multi_partition_customers; /* unkeyed-producer detector */
    int npartitions;
    cs_metrics_part parts[CS_METRICS_MAX_PARTS];
    int paused;

    /* rules */
    uint64_t reloads_ok, reloads_failed;
    char rules_sha256[65];

    /* liveness: per worker, loops completed and when it last completed one */
    int nworkers;
    uint64_t worker_loops[CS_METRICS_MAX_WORKERS];
    int64_t worker_last_loop_ms[CS_METRICS_MAX_WORKERS];

    int healthy; /* every worker looped within the last 10 s, control thread alive */
    int ready;   /* partitions assigned (or drain started) and Redis reachable */

    /* how often the snapshot is published (the flush interval); /healthz and /readyz report a
     * snapshot older than max(10 s, 3 × this) as a stalled control thread. 0 = unknown (60 s) */
    int64_t flush_interval_ms;
} cs_metrics;

typedef struct cs_metrics_box {
    pthread_mutex_t mu;
    cs_metrics m;
} cs_metrics_box;

static inline void cs_metrics_publish(cs_metrics_box *b, const cs_metrics *m)
{
    pthread_mutex_lock(&b->mu);
    b->m = *m;
    pthread_mutex_unlock(&b->mu);
}

static inline void cs_metrics_read(cs_metrics_box *b, cs_metrics *out)
{
    pthread_mutex_lock(&b->mu);
    *out = b->m;
    pthread_mutex_unlock(&b->mu);
}

#endif
