/* source.h — the pipeline's source: Kafka partitions in, per-worker message runs out
 * (librdkafka).
 *
 * Contract
 *  - One high-level consumer (consumer group, cooperative-sticky assignment when the broker
 *    agrees) or, in drain mode, a plain assign() of every partition of the topics. Either way
 *    the partitions are split over conf.fetch_threads consumer handles (worker w's partitions
 *    are fetched by handle w % fetch_threads, so fetching and decompression run on that many
 *    librdkafka threads). Live, handle 0 is the group's one member: its rebalance callback
 *    assigns each handle its share by hand (the others never join), so for the group a process
 *    is one member whatever fetch_threads is. Each assigned
 *    partition's queue is forwarded, BEFORE the partition is assigned, to the queue of the worker
 *    that owns it, so a worker gets its partitions' messages in partition order straight from
 *    librdkafka with no hand-off of ours per message. Workers take them with
 *    rd_kafka_consume_callback_queue and copy each payload into a per-worker arena (source.c
 *    says why not the batch API: librdkafka 2.0.x loses messages collected while a rebalance
 *    pauses fetchers).
 *  - Offsets: enable.auto.offset.store=false and enable.auto.commit=false. Where to start is
 *    asked of the caller on assignment (the offsets stored in Redis are authoritative; the
 *    group's committed offset is passed along for the caller to judge), and CS_START_RESET is
 *    auto.offset.reset's position, set explicitly. Commits happen only through
 *    cs_source_commit(), which the caller calls after Redis acknowledged a flush.
 *  - Threads: cs_source_poll() (rebalances, errors, stray messages) and every function not
 *    marked otherwise run on the control thread; cs_source_fetch() runs on worker `w`'s thread.
 */
#ifndef CS_SOURCE_H
#define CS_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "clickstage.h"

typedef struct cs_source cs_source;

#define CS_START_RESET (-1)
#define CS_START_BEGINNING (-2)

typedef struct cs_source_conf {
    const char *brokers;
    const char *group;
    const char *topics;        /* comma list */
    const char *client_id;
    const char *group_instance_id; /* static membership; NULL or "" = dynamic */
    const char *extra_props;   /* "k=v,k=v" passed to librdkafka last (overrides ours), to the
                                  consumer and the dead-letter producer alike; "\," and "\\"
                                  in a value are a comma and a backslash */
    const char *dead_letter_topic; /* NULL or "" = none */
    int earliest;              /* auto.offset.reset */
    int drain;
    int batch_size;
    /* Consumer handles fetching for the workers (each with its own librdkafka broker threads:
     * fetch, decompression, message ops); worker w is served by handle w % n. 0 or 1: one.
     * More than the workers: as many as workers. */
    int fetch_threads;
    /* The fetch wake (source.c "the fetch wake"): a worker whose prefetch queue was full and is
     * below the limit again wakes the broker threads of its handle, which librdkafka < 2.2 leaves
     * asleep for up to 1 s. 0: on where librdkafka lacks fetch.queue.backoff.ms; 1 on; -1 off
     * (tests). */
    int fetch_wake;
    /* Called on the control thread when partitions are assigned: returns the engine partition
     * id for the new state (the callee creates it, restored or empty) and sets *start to the
     * offset to read from: >= 0 that offset, CS_START_RESET where auto.offset.reset says,
     * CS_START_BEGINNING the oldest retained message. `committed` is the group's committed
     * offset of the partition (-1 none or unknown). Returning < 0 fails the assignment of that
     * partition (e.g. Redis unreachable: it is retried on the next rebalance). */
    int (*on_assign)(void *opaque, const char *topic, int32_t partition, int worker,
                     int64_t committed, int64_t *start);
    /* Called on the control thread when partitions are revoked, before they are released: the
     * callee must make their counts durable (flush) and drop their state. */
    void (*on_revoke)(void *opaque, const int *parts, size_t n);
    void *opaque;
} cs_source_conf;

cs_source *cs_source_new(cs_engine *e, const cs_source_conf *conf, char *errstr, size_t errlen);
void cs_source_destroy(cs_source *s);

/* Starts consuming: waits (up to 15 s) for the cluster's first answer, then subscribes (live) or
 * looks up partitions and end offsets and assigns (drain). Fails with errstr "authentication
 * failed: ..." or "TLS failed: ..." when the broker rejects the credentials or the
 * TLS handshake in that time; unreachable brokers fail only drain mode (as before). */
int cs_source_start(cs_source *s, char *errstr, size_t errlen);

/* Control thread: serves rebalance callbacks and errors for up to timeout_ms. */
void cs_source_poll(cs_source *s, int timeout_ms);

/* Worker thread `w`: takes up to batch_size messages (waiting at most timeout_ms), hands each
 * partition's run to cs_worker_process (decode, sessionize, classify, count), in partition
 * order, and returns how many were processed. Skips messages of partitions no longer assigned, messages below the next
 * expected offset (re-delivery) and, in drain mode, at or past the end offset. */
int cs_source_fetch_process(cs_source *s, int w, int timeout_ms);

/* Wakes worker w if it is blocked waiting for messages (any thread). */
void cs_source_wake(cs_source *s, int w);

/* Drain mode: 1 when every partition has reached its end offset. */
int cs_source_drained(cs_source *s);

/* Marks partitions silent for longer than idle_ms as idle (they stop holding the watermark back)
 * and active again when messages arrive. Any thread. */
void cs_source_update_idle(cs_source *s, int64_t now_ms, int64_t idle_ms);

/* Next offset per assigned partition counted so far, for a flush: fills up to max entries of
 * (topic, partition, engine part id). Control thread. */
typedef struct cs_source_tp {
    const char *topic;
    int32_t partition;
    int part;
} cs_source_tp;
size_t cs_source_assigned(cs_source *s, cs_source_tp *out, size_t max);

/* Commits next offsets to the group after a flush was acknowledged (async unless sync). */
void cs_source_commit(cs_source *s, const cs_source_tp *tps, const int64_t *next, size_t n,
                      int sync);

/* High watermark (librdkafka's cached value, no request) of a partition, -1 if unknown. */
int64_t cs_source_high_watermark(cs_source *s, const char *topic, int32_t partition);

/* Back-pressure: stop / restart fetching every assigned partition. */
void cs_source_pause(cs_source *s, int pause);

/* Copies an invalid message to the dead-letter topic (if configured) with the reason in the
 * header "clickstage-invalid-reason". Any thread. */
void cs_source_dead_letter(cs_source *s, const cs_msg *m, const char *reason);

typedef struct cs_source_stats {
    uint64_t rebalances, assigned, revoked, redelivered_skipped, past_end_skipped, stray,
        consume_errors, dead_lettered, dead_letter_failed;
    uint64_t fetch_wakes; /* wakes the workers sent to their fetch handles (fetch_wake) */
    uint64_t revoked_discarded; /* messages fetched for partitions after their revocation,
                                   dropped (source.c, dq) */
    int npartitions;
} cs_source_stats;
void cs_source_stats_get(cs_source *s, cs_source_stats *st);

/* Closes the consumer (leaves the group) after a final commit. */
void cs_source_close(cs_source *s);

/* The consumer handles `fetch_threads = auto` asks for, given the workers: one per worker (at
 * least one), in drain mode and live alike. A handle fetches for its worker faster than the worker
 * consumes (~400 ns of fetch per lz4 event against ~720 ns of worker), so its partitions' prefetch
 * queues fill; librdkafka 2.2+ looks at them again after fetch.queue.backoff.ms (5 ms here), and
 * for 2.0.2, which waited up to 1 s (0.74x the events/s of one handle at --threads 2), the workers
 * wake their handle's broker threads (conf.fetch_wake, source.c "the fetch wake"). Live, handle 0
 * is the group's one member and assigns the others their share. Live was one handle until the
 * soak's RSS growth with two (+23 % in 3 minutes) was found: revoked partitions' prefetched
 * messages stranded in their queues (source.c, dq); with that fixed, two handles held RSS within
 * 0.2 % over the 20-minute soak. */
int cs_source_auto_fetch_threads(int workers);
/* Consumer handles in use (conf.fetch_threads, bounded), and the one that fetches an engine
 * partition (-1 unknown). Control thread. */
int cs_source_fetch_handles(const cs_source *s);
/* The librdkafka property `key` as handle h's consumer was finally configured (our settings,
 * then kafka_props, then what librdkafka derived), into buf (NUL-terminated); 0, or -1 when
 * there is no such handle or property or buf is too small. Tests read it (nothing else yet). */
int cs_source_kafka_prop(const cs_source *s, int h, const char *key, char *buf, size_t len);
int cs_source_part_handle(cs_source *s, int part);
/* Messages waiting in the queues of partitions that no worker is served from: partitions this
 * process no longer owns, or owns on another handle. cs_source_poll keeps it at 0 once
 * librdkafka has stopped fetching them (a test's measure of regression_revoked_prefetch_
 * stranded). Control thread. */
size_t cs_source_stranded(cs_source *s);

#endif
