/* metrics.h — every metric the daemon exports, from one table.
 *
 * CS_METRICS_TABLE below lists each metric once — its name, type, shape, the field that holds
 * it, its labels and its help text — and generates:
 *  - the scalar members of struct cs_metrics (the rest of the struct, below the table, is the
 *    storage of labelled families: arrays by stage, by reason, by partition, by worker);
 *  - the Prometheus text of /metrics (cs_metrics_write_prometheus);
 *  - the JSON of /api/metrics (cs_metrics_write_json);
 *  - the metric table of docs/observability.md (cs_metrics_write_markdown; `clickstage
 *    --help-metrics` prints it and tests/http/run.sh checks the doc holds exactly that).
 * Adding a metric is one line here plus the code that sets its field.
 *
 * Contract
 *  - The control thread (pipeline/coord.c) fills a cs_metrics after every flush attempt and
 *    publishes it with cs_metrics_publish(); HTTP threads read a copy with cs_metrics_read().
 *    One mutex, held for a memcpy: nothing on the per-event path touches metrics (workers keep
 *    plain per-thread counters that the control thread sums at the flush barrier).
 *  - Counters are process-local and monotone since start (Prometheus `_total` semantics); the
 *    authoritative journey counts are in Redis (/api/journey reads them from there).
 *  - Label sets are bounded by the rule file (stages), fixed enumerations (invalid reasons,
 *    results), the assigned partitions and the worker threads: never by customers or values.
 */
#ifndef CS_METRICS_H
#define CS_METRICS_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#include "aggregate.h" /* CS_NSLOTS, the SPEC §4.1 buckets */
#include "classify.h"
#include "decode.h"
#include "redis.h"

#define CS_METRICS_MAX_PARTS 1024
#define CS_METRICS_MAX_WORKERS 256
/* flush duration histogram upper bounds, seconds (Prometheus `le`), plus +Inf */
#define CS_METRICS_FLUSH_BUCKETS 10
extern const double cs_metrics_flush_le[CS_METRICS_FLUSH_BUCKETS];

/* X(name, type, shape, field, labels, help)
 *   name    Prometheus name after "clickstage_"
 *   type    counter, gauge or histogram
 *   shape   U64 / I64: the integer field; FLAG: an int shown as 0 or 1; TIME: Unix ms shown as
 *           seconds with 3 decimals, absent while INT64_MIN; SECONDS: a double;
 *           FAMILY: the samples come from metrics.c's family_<name>() (labelled, computed or a
 *           histogram), the field names its JSON key (counter families also get "<field>_total")
 *   field   the struct member (scalar shapes) and the /api/metrics key
 *   labels  label names and values, for the docs ("" none)
 *   help    HELP line and the docs' meaning */
#define CS_METRICS_TABLE(X)                                                                     \
    X(build_info, gauge, FAMILY, build, "`version`, `journey`, `rules_sha256`",                 \
      "Always 1; the labels name the version, the journey and the loaded rule file's SHA-256.") \
    X(start_time_seconds, gauge, TIME, started_ms, "", "When this process started, Unix time in seconds.") \
    X(messages_total, counter, U64, messages_total, "",                                         \
      "Kafka messages taken in by this process (valid and invalid).")                          \
    X(events_total, counter, FAMILY, events, "`result` = a stage name, `unclassified`, `late`", \
      "Valid events by result: the stage they were classified as, unclassified (no rule "      \
      "matched) or late (older than the session watermark).")                                 \
    X(invalid_total, counter, FAMILY, invalid, "`reason` = `not_json`, `not_object`, `too_large`, `too_deep`, `no_customer`, `no_event`, `bad_time`, `future_time`, `not_tsv` (all present, zeros included)", \
      "Invalid messages by reason (not counted as events; copied to the dead-letter topic "    \
      "when one is configured).")                                                              \
    X(journey_reached_total, counter, FAMILY, journey_reached, "`stage`",                       \
      "Sessions that entered each stage (SPEC §4 `reached`, \"entered here\"), counted by this " \
      "process.")                                                                              \
    X(journey_funnel_sessions_total, counter, FAMILY, journey_funnel, "`stage`",                \
      "Sessions that reached at least each stage (the funnel: transitions crossing from below "\
      "the stage to it or beyond; never more at a later stage), counted by this process.")     \
    X(journey_funnel_previous_sessions_total, counter, FAMILY, journey_funnel_previous, "`stage`", \
      "Per stage, the previous stage's journey_funnel_sessions_total (sessions started, for "  \
      "the first stage): conversion into a stage is rate(journey_funnel_sessions_total) / "    \
      "rate(this), matched on `stage` (deploy/alerts.yml).")                                   \
    X(journey_funnel_customers_total, counter, FAMILY, journey_cfunnel, "`stage`",             \
      "Customers whose journey stage reached at least each stage (the customer funnel: moves "\
      "crossing from below the stage to it or beyond), counted by this process.")              \
    X(journey_funnel_previous_customers_total, counter, FAMILY, journey_cfunnel_previous, "`stage`", \
      "Per stage, the previous stage's journey_funnel_customers_total (customer journeys "     \
      "begun, for the first stage: new customers and journeys started over past "              \
      "customer_ttl): customer conversion into a stage is "                                    \
      "rate(journey_funnel_customers_total) / rate(this), matched on `stage`.")                \
    X(journey_ended_total, counter, FAMILY, journey_ended, "`stage` = a stage name or `_none`",  \
      "Sessions that ended at each stage (drop-off: SPEC §4 `ended`), counted by this process.") \
    X(journey_active_sessions, gauge, FAMILY, journey_active, "`stage` = a stage name or `_none`", \
      "Open sessions per current stage, from this process's deltas since it started (like "   \
      "`sessions_open`; Redis `active` is the journey-wide figure).")                          \
    X(journey_time_to_stage_seconds, histogram, FAMILY, journey_time_to, "`stage`, `le` = 0, 10, 30 ... 7776000, `+Inf`", \
      "Time from session start to reaching each stage (SPEC §4.1 `time_to`), seconds; the "   \
      "buckets are the SPEC's, cumulative as Prometheus wants them; counted by this process.") \
    X(journey_customer_time_to_stage_seconds, histogram, FAMILY, journey_customer_time_to,      \
      "`stage`, `le` = 0, 10, 30 ... 7776000, `+Inf`",                                          \
      "Time from the start of the customer's remembered journey to its journey stage moving "  \
      "to each stage (SPEC §4.1 `customer_time_to`), seconds; counted by this process.")       \
    X(sessions_started_total, counter, U64, sessions_started, "", "Sessions opened by this process.") \
    X(sessions_ended_total, counter, U64, sessions_ended, "",                                   \
      "Sessions ended by this process (gap, max duration, drain or shutdown).")                \
    X(sessions_open, gauge, I64, sessions_open, "", "Sessions open in this process.")           \
    X(customers_tracked, gauge, U64, customers_tracked, "",                                     \
      "Customers with state in this process's tables.")                                        \
    X(state_bytes, gauge, FAMILY, state_bytes, "`kind` = `sessions`, `customers`",              \
      "Memory held by per-session and per-customer state, bytes.")                             \
    X(heap_in_use_bytes, gauge, U64, heap_in_use, "",                                          \
      "Bytes the C library's malloc has handed out and not got back (glibc mallinfo2(): "     \
      "uordblks + hblkhd, read at most once a second; 0 without glibc 2.33+), plus the "       \
      "partition pools' first chunks, which are mapped outside malloc: the live heap, "        \
      "to tell from RSS, which also holds free memory malloc keeps.")                         \
    X(heap_free_bytes, gauge, U64, heap_free, "",                                              \
      "Free bytes malloc holds in its arenas (mallinfo2() fordblks): RSS above the live heap " \
      "that the allocator keeps for reuse (fragmentation, high-water marks).")                \
    X(malloc_arenas, gauge, U64, malloc_arenas, "",                                             \
      "glibc malloc arenas (main + per-thread; from malloc_info(), read at most every 10 s; "  \
      "0 without glibc).")                                                                     \
    X(malloc_trims_total, counter, U64, malloc_trims, "",                                      \
      "malloc_trim(0) calls: after partitions are revoked, at most every 10 s, free memory "  \
      "in malloc's arenas is handed back to the system (RSS would otherwise creep up over "    \
      "thousands of assignments, the live heap flat).")                                       \
    X(malloc_trim_seconds_total, counter, SECONDS, malloc_trim_seconds, "",                     \
      "Time spent in those malloc_trim(0) calls, seconds (the control thread's; each arena "   \
      "is locked while it is trimmed).")                                                       \
    X(watermark_seconds, gauge, TIME, watermark_ms, "",                                         \
      "Event-time watermark over all assigned partitions, Unix time in seconds (absent until " \
      "one is known).")                                                                        \
    X(flush_duration_seconds, histogram, FAMILY, flush_duration, "`le` = 0.001 ... 1, `+Inf`",  \
      "Wall time of one flush attempt to Redis (one script call), seconds.")                   \
    X(flushes_total, counter, FAMILY, flushes, "`result` = `ok`, `failed`",                     \
      "Flush attempts by result (a failed flush is retried unchanged).")                       \
    X(flush_sequence, gauge, U64, flush_seq, "", "Sequence number of the last flush applied to Redis.") \
    X(redis_commands_total, counter, U64, redis_commands, "",                                   \
      "Redis commands sent by the sink, connection set-up included.")                          \
    X(redis_redirects_total, counter, U64, redis_redirects, "",                                 \
      "Redis Cluster MOVED/ASK redirections (and Sentinel masters gone read-only) the sink "    \
      "followed: the request was sent again to the right node.")                               \
    X(redis_reconnects_total, counter, U64, redis_reconnects, "",                               \
      "Times the sink connected to Redis again after losing the connection.")                  \
    X(redis_up, gauge, FLAG, redis_up, "", "1 if the sink's last attempt reached Redis (an error reply counts: Redis is up), else 0.")   \
    X(redis_errors_total, counter, FAMILY, redis_errors, "`class` = `oom`, `readonly`, `noperm`, `wrongtype`, `busy`, `loading`, `noscript`, `masterdown`, `moved`, `ask`, `clusterdown`, `auth`, `unreachable`, `other` (all present)", \
      "Failed Redis requests of the sink by class: Redis's error reply, or unreachable (no "     \
      "reply) (docs/redis.md, refusals).")                                                     \
    X(redis_refusing, gauge, FAMILY, redis_refusing, "`class` (as above)",                     \
      "1 for the class of the failure Redis is answering every flush with now, 0 for the "     \
      "others: all 0 while flushes land.")                                                     \
    X(last_flush_timestamp_seconds, gauge, TIME, last_flush_ok_ms, "",                          \
      "When the last flush was applied to Redis, Unix time in seconds (0 = never).")           \
    X(consumer_lag_messages, gauge, FAMILY, lag, "`topic`, `partition`",                        \
      "Messages between the partition's high watermark and the next offset to count (absent "  \
      "while unknown).")                                                                       \
    X(partitions_assigned, gauge, I64, npartitions, "", "Kafka partitions assigned to this process.") \
    X(rebalances_total, counter, U64, rebalances, "", "Consumer group rebalances seen.")        \
    X(partitions_assigned_total, counter, U64, partitions_assigned, "",                         \
      "Partitions assigned to this instance (each restored from Redis).")                      \
    X(partitions_revoked_total, counter, U64, partitions_revoked, "",                           \
      "Partitions revoked from this instance (each snapshotted to Redis first).")              \
    X(snapshots_written_total, counter, U64, snapshots_written, "",                             \
      "Partition state snapshots written to Redis with their offsets.")                        \
    X(snapshot_bytes_written_total, counter, U64, snapshot_bytes_written, "",                   \
      "Bytes of partition state snapshots written to Redis.")                                  \
    X(snapshots_rejected_total, counter, U64, snapshots_rejected, "",                           \
      "Snapshots found corrupt or made for other rules; those partitions were rebuilt from "   \
      "Kafka.")                                                                                \
    X(restores_total, counter, U64, restores, "",                                               \
      "Partitions whose state was restored from a snapshot.")                                  \
    X(restored_sessions_total, counter, U64, restored_sessions, "",                             \
      "Open sessions restored from snapshots.")                                                \
    X(replayed_messages_total, counter, U64, replayed_messages, "",                             \
      "Messages re-read after a restore to rebuild state, not counted again.")                 \
    X(replaying_partitions, gauge, I64, replaying_partitions, "",                               \
      "Partitions still re-reading what an earlier owner counted.")                            \
    X(last_restore_seconds, gauge, SECONDS, last_restore_seconds, "",                           \
      "Time to load and decode the last snapshot.")                                            \
    X(last_replay_seconds, gauge, SECONDS, last_replay_seconds, "",                             \
      "Time from the last assignment to the end of its replay.")                               \
    X(fenced_total, counter, U64, fenced, "",                                                   \
      "Flushes rejected because Redis held other offsets than expected (another instance "     \
      "owns the partition now, or Redis lost writes).")                                        \
    X(redis_state_lost_total, counter, U64, state_lost, "",                                     \
      "Partitions found with committed Kafka offsets but no offsets in Redis.")                \
    X(customers_multi_partition_total, counter, U64, multi_partition_customers, "",             \
      "New customer entries whose customer was recently seen on another partition: producers " \
      "not keying by customer (docs/repartition.md).")                                         \
    X(identity_merged_total, counter, U64, identity_merged, "",                                 \
      "SPEC 3.1: device journeys merged into a person's at the login (Redis identity field "  \
      "merged, this process's share); 0 without identity: (docs/identity.md).")               \
    X(identity_conflicts_total, counter, U64, identity_conflicts, "",                           \
      "SPEC 3.1: events whose device already had another person (Redis identity field "       \
      "conflicts, this process's share).")                                                     \
    X(identity_aliases, gauge, U64, identity_aliases, "",                                       \
      "SPEC 3.1: device -> person aliases held by this process's partitions.")                \
    X(redelivered_skipped_total, counter, U64, redelivered_skipped, "",                         \
      "Messages skipped because their offset was already counted (redelivery after a "        \
      "rebalance or restart).")                                                                \
    X(dead_lettered_total, counter, U64, dead_lettered, "",                                     \
      "Invalid messages copied to the dead-letter topic.")                                     \
    X(consume_errors_total, counter, U64, consume_errors, "",                                   \
      "Errors reported by the Kafka consumer.")                                                \
    X(fetch_wakes_total, counter, U64, fetch_wakes, "",                                         \
      "Times a worker woke its Kafka consumer handle's fetcher after its prefetch queue had "  \
      "been full (librdkafka 2.0.2 waits up to 1 s otherwise: docs/kafka.md).")               \
    X(fetch_discarded_total, counter, U64, fetch_discarded, "",                                 \
      "Messages librdkafka had fetched for partitions after they were revoked from this "     \
      "process (in flight when the revocation took effect), dropped unread: the partition's "  \
      "next owner reads them from the offset in Redis.")                                       \
    X(paused, gauge, FLAG, paused, "",                                                          \
      "1 while consumption is paused because counts could not be written to Redis.")           \
    X(rule_reloads_total, counter, FAMILY, rule_reloads, "`result` = `ok`, `failed`",           \
      "Rule file reloads (SIGHUP) by result.")                                                 \
    X(worker_loops_total, counter, FAMILY, worker_loops, "`worker` = 0 ... threads-1",          \
      "Loops completed by each worker thread (a stalled worker stops counting).")              \
    X(worker_last_loop_timestamp_seconds, gauge, FAMILY, worker_last_loop, "`worker`",          \
      "When each worker thread last completed a loop, Unix time in seconds.")                  \
    X(worker_ticks_total, counter, U64, worker_ticks, "",                                      \
      "Ticks of the worker threads, summed (one per loop: the watermark, and expiry of the "   \
      "worker's partitions).")                                                                 \
    X(worker_tick_seconds_total, counter, SECONDS, worker_tick_seconds, "",                     \
      "CPU time the worker threads spent in ticks (thread CPU clock: preemption by other "     \
      "processes not counted), summed, seconds; divided by "                                   \
      "worker_ticks_total: the mean cost of a tick (flat over uptime: it loops over the "      \
      "partition slots, not over every assignment ever made).")                                \
    X(partition_slots, gauge, I64, partition_slots, "",                                         \
      "Engine partition slots (in use or free for reuse): the most partitions assigned at "    \
      "once since start, whatever the number of assignments.")                                 \
    X(healthy, gauge, FAMILY, healthy_now, "", "1 if /healthz answers 200, else 0.")            \
    X(ready, gauge, FAMILY, ready_now, "", "1 if /readyz answers 200, else 0.")

typedef struct cs_metrics_part {
    char topic[256];
    int32_t partition;
    int64_t next_offset;    /* next offset counted (-1 unknown) */
    int64_t high_watermark; /* from librdkafka's cache (-1 unknown) */
    int64_t lag;            /* high - next, or -1 */
    int64_t watermark_ms;   /* partition event-time watermark, INT64_MIN none */
    int state;              /* enum cs_part_state */
} cs_metrics_part;

#define CS_MF_U64(f) uint64_t f;
#define CS_MF_I64(f) int64_t f;
#define CS_MF_FLAG(f) int f;
#define CS_MF_TIME(f) int64_t f;
#define CS_MF_SECONDS(f) double f;
#define CS_MF_FAMILY(f)
#define CS_METRICS_FIELD(name, type, shape, field, labels, help) CS_MF_##shape(field)

typedef struct cs_metrics {
    /* the table's scalar fields */
    CS_METRICS_TABLE(CS_METRICS_FIELD)

    /* context */
    int64_t now_ms;            /* when this snapshot was filled (wall clock) */
    char journey[128];
    int nstages;
    char stages[CS_MAX_STAGES][65];
    char rules_sha256[65];
    int ndims;
    char dims[CS_MAX_DIMS][65]; /* dimension names, rule file order (/api/journey's breakdown) */
    int drain;
    /* how often the snapshot is published (the flush interval); /healthz and /readyz report a
     * snapshot older than max(10 s, 3 x this) as a stalled control thread. 0 = unknown (60 s) */
    int64_t flush_interval_ms;
    /* Redis refusals (issue 20): failures by class since start, and the refusal going on now
     * (CS_REDIS_OK: none), with Redis's text and since when (wall ms) */
    uint64_t redis_errors_n[CS_REDIS__COUNT];
    int redis_refusal;
    char redis_refusal_text[256];
    int64_t redis_refusal_since_ms;
    int healthy; /* every worker looped within the last 10 s, control thread alive */
    int ready;   /* partitions assigned (or drain started) and Redis reachable */

    /* storage of the families */
    uint64_t events_by_stage[CS_MAX_STAGES];
    uint64_t events_unclassified, events_late;
    uint64_t invalid_by_reason[CS_INV__COUNT]; /* by cs_invalid; [0] unused */
    uint64_t session_bytes, customer_bytes;
    /* the journey's own counts (this process's deltas since start; slot 0 = _none) */
    int64_t j_reached[CS_NSLOTS], j_ended[CS_NSLOTS], j_active[CS_NSLOTS];
    int64_t j_funnel[CS_MAX_STAGES];
    int64_t j_started; /* sessions started: the "previous stage" of the first stage */
    int64_t j_cfunnel[CS_MAX_STAGES];
    int64_t j_cstarted; /* customer journeys begun: the customer funnel's step before the first */
    int64_t j_time_to[CS_MAX_STAGES][CS_TT_NBUCKETS], j_time_to_sum_ms[CS_MAX_STAGES];
    int64_t j_ctime_to[CS_MAX_STAGES][CS_TT_NBUCKETS], j_ctime_to_sum_ms[CS_MAX_STAGES];
    uint64_t flush_bucket[CS_METRICS_FLUSH_BUCKETS]; /* cumulative counts per `le` */
    uint64_t flush_count;
    double flush_seconds_sum;
    uint64_t flushes_ok, flushes_failed;
    uint64_t reloads_ok, reloads_failed;
    cs_metrics_part parts[CS_METRICS_MAX_PARTS]; /* [npartitions] */
    int nworkers;
    uint64_t worker_loops_n[CS_METRICS_MAX_WORKERS];
    int64_t worker_last_loop_ms[CS_METRICS_MAX_WORKERS];
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

/* Adds one flush attempt of `secs` to the histogram. */
void cs_metrics_observe_flush(cs_metrics *m, double secs);

/* 0 if the snapshot is current at `now`; else 1 and the reason in buf ("starting: ...",
 * "control thread stalled: ..."). */
int cs_metrics_stale(const cs_metrics *m, int64_t now, char *buf, size_t n);
/* /healthz and /readyz: 1 and "ok", or 0 and every reason that applies, joined by "; ". */
int cs_metrics_health(const cs_metrics *m, int64_t now, char *why, size_t n);
int cs_metrics_readiness(const cs_metrics *m, int64_t now, char *why, size_t n);

/* /metrics (text format 0.0.4), /api/metrics (one JSON object, newline-terminated), the docs'
 * table (Markdown). `now` is the server's wall clock (staleness, "server_ms"). */
void cs_metrics_write_prometheus(FILE *f, const cs_metrics *m, int64_t now);
void cs_metrics_write_json(FILE *f, const cs_metrics *m, int64_t now);
void cs_metrics_write_markdown(FILE *f);

/* Writers' helpers, shared with the HTTP server: a Prometheus label value (\\, \", \n
 * escaped), a JSON string (control characters escaped), ms as seconds with 3 decimals. */
void cs_put_label(FILE *f, const char *s);
void cs_put_json(FILE *f, const char *s);
void cs_put_json_n(FILE *f, const char *s, size_t n);
void cs_put_ms_as_s(FILE *f, int64_t ms);

#endif
