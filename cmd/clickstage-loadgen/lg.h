/* lg.h — the parts of clickstage-loadgen and what they share.
 *
 *   main.c     options, topic metadata, --expect, one run (produce, optionally watched)
 *   produce.c  the producers: N threads, each with its own producer (librdkafka's, or the
 *              direct one) and a disjoint set of partitions, generating each partition's stream
 *              itself (loadgen/gen.h)
 *   direct.c   the direct producer: Kafka's wire protocol on PLAINTEXT clusters (--producer)
 *   watch.c    produce -> visible latency and consumer lag from what clickstage wrote to Redis
 *   sustain.c  --find-sustainable: steps at rising rates, bisection, table, JSON, plot
 *   hist.c     log-linear latency histograms (percentiles without keeping samples)
 *
 * Threads: the producer threads, the watcher thread and the main thread. They share an lg_track
 * (per partition: the newest offset delivered and a ring of latency samples, each partition
 * written by the one producer thread that owns it and read by the watcher) and the counters in
 * lg_prod (atomics).
 */
#ifndef CS_LOADGEN_LG_H
#define CS_LOADGEN_LG_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "gen.h"

#define LG_NAME "clickstage-loadgen"

double lg_now(void);       /* monotonic seconds */
int64_t lg_wall_us(void);  /* CLOCK_REALTIME microseconds */
int64_t lg_parse_dur_ms(const char *s); /* "250ms", "5s", "2m", "1h", "6d", "0"; -1 if bad */

/* ---- latency histogram (hist.c) ----------------------------------------------------------
 * Log-linear buckets over microseconds: exact below 64 us, then 64 buckets per power of two
 * (under 1.6 % relative error), up to about 12 days. Not thread-safe: one owner. */
#define LG_HIST_BUCKETS (64 + 40 * 64)
typedef struct lg_hist {
    uint64_t n;
    uint64_t max_us;
    uint64_t b[LG_HIST_BUCKETS];
} lg_hist;
void lg_hist_reset(lg_hist *h);
void lg_hist_add(lg_hist *h, uint64_t us, uint64_t count);
void lg_hist_merge(lg_hist *into, const lg_hist *h);
/* the q-quantile (0..1) in milliseconds, the bucket's upper bound; 0 when empty */
double lg_hist_ms(const lg_hist *h, double q);

/* ---- per-partition tracking shared by producers and watcher ------------------------------ */
typedef struct lg_sample {
    int64_t offset;
    int64_t t_us; /* wall clock just before the message was handed to librdkafka */
} lg_sample;

#define LG_RING 65536 /* samples per partition not yet seen visible; the oldest are dropped */
typedef struct lg_ptrack {
    _Atomic int64_t next_offset; /* newest delivered offset + 1 (-1: none yet) */
    _Atomic uint64_t delivered;
    pthread_mutex_t mu;          /* guards the ring */
    lg_sample *ring;
    uint64_t head, tail;         /* samples [tail, head) */
    uint64_t dropped;
    int64_t last_sample_us;      /* producer thread only: when it last marked a sample */
} lg_ptrack;

typedef struct lg_track {
    int nparts;
    lg_ptrack *p;
    int64_t sample_every_us; /* at most one latency sample per partition per this */
} lg_track;
lg_track *lg_track_new(int nparts, int with_samples);
void lg_track_free(lg_track *t);

/* ---- producers (produce.c) --------------------------------------------------------------- */
typedef struct lg_kafka_opts {
    const char *brokers, *topic, *compression, *extra;
    int64_t linger_ms, batch;
    const char *producer; /* "direct", "librdkafka" or "auto" (NULL: auto); lg_producer_pick */
} lg_kafka_opts;

/* Which producer a run uses (--producer): 1 direct, 0 librdkafka, -1 refused (message on
 * stderr). auto: direct when the compression is none or lz4 and --kafka sets nothing but
 * security.protocol=plaintext; else librdkafka. direct with gzip/snappy/zstd falls back to
 * librdkafka (a log line); direct with SASL/SSL settings is refused. */
int lg_producer_pick(const lg_kafka_opts *ko);

typedef struct lg_prod lg_prod;
/* Starts nthreads producer threads (1 when unkeyed) over the plan's partitions; nothing is sent
 * until lg_prod_segment. track: NULL, or where delivered offsets (and latency samples, when
 * the track has rings) go. 0 and *out, or -1 with a message on stderr. */
int lg_prod_new(const lg_kafka_opts *ko, const cs_gen_plan *pl, int nthreads, int unkeyed,
                lg_track *track, lg_prod **out);
/* Sends the whole stream's messages [from, to) at rate events/s (0: flat out), paced by their
 * merge keys, and returns when they are all handed to librdkafka (not yet delivered), when
 * *stop becomes non-zero, or at deadline (lg_now() seconds; 0: none). Segments follow each
 * other: from is where the previous one ended. Returns the messages handed over. */
uint64_t lg_prod_segment(lg_prod *p, uint64_t from, uint64_t to, double rate, double deadline,
                         volatile int *stop);
/* "direct" or "librdkafka": the producer the run uses. */
const char *lg_prod_kind(const lg_prod *p);
/* Messages handed to librdkafka so far (any thread). */
uint64_t lg_prod_sent(const lg_prod *p);
/* Waits for every delivery report (up to timeout_ms); then the totals. */
typedef struct lg_prod_stats {
    uint64_t sent, delivered, failed, bytes, invalid, late;
    char first_error[256];
} lg_prod_stats;
void lg_prod_flush(lg_prod *p, int timeout_ms, lg_prod_stats *st);
void lg_prod_free(lg_prod *p);

/* ---- the direct producer (direct.c): Kafka's wire protocol for PLAINTEXT clusters ---------
 * One lg_direct per producer thread, owned by it (not thread-safe), except lg_direct_pending,
 * lg_direct_failed and lg_direct_stats (atomics, any thread). */
typedef struct lg_dmeta lg_dmeta; /* the topic's partition leaders and the versions to speak */
int lg_dmeta_fetch(const char *brokers, const char *topic, lg_dmeta **out, char *err,
                   size_t errlen);
int lg_dmeta_nparts(const lg_dmeta *m);
int lg_dmeta_produce_version(const lg_dmeta *m);
void lg_dmeta_free(lg_dmeta *m);
typedef struct lg_direct lg_direct;
/* compression: "none" or "lz4"; batch_msgs: records per batch at most (plus a byte bound:
 * 1,000,000 bytes of records uncompressed, 2,000,000 before lz4); linger_ms: an open batch is
 * sent at the first lg_direct_poll after it is this old. track: NULL or delivered offsets. */
lg_direct *lg_direct_new(const lg_dmeta *md, const char *compression, int64_t linger_ms,
                         int64_t batch_msgs, lg_track *track);
/* Appends a record (key NULL: null key) to partition part's batch, sending the batch first when
 * it is full. sample_us: 0, or a latency sample's wall time. 0, or -1 once anything failed. */
int lg_direct_add(lg_direct *d, int part, const void *key, size_t keylen, const void *val,
                  size_t len, int64_t ts_ms, int64_t sample_us);
int lg_direct_poll(lg_direct *d);     /* sends lingered batches, reads arrived responses */
int lg_direct_send_all(lg_direct *d); /* sends every open batch */
int lg_direct_flush(lg_direct *d);    /* sends every open batch, waits for every response */
uint64_t lg_direct_pending(const lg_direct *d); /* records added and not yet answered */
int lg_direct_failed(const lg_direct *d);
void lg_direct_stats(const lg_direct *d, uint64_t *delivered, uint64_t *failed, char *err,
                     size_t errlen);
void lg_direct_free(lg_direct *d);
uint32_t lg_crc32c(const void *data, size_t n);
uint32_t lg_crc32c_update(uint32_t crc, const void *data, size_t n);

/* ---- the watcher (watch.c) --------------------------------------------------------------- */
typedef struct lg_watch_opts {
    const char *redis_url, *prefix, *journey, *topic;
} lg_watch_opts;
typedef struct lg_watch lg_watch;
/* One observation window's figures (lg_watch_take). */
typedef struct lg_window {
    double t0, t1;            /* lg_now() */
    lg_hist lat;              /* latency of the samples that became visible in the window */
    int64_t lag0, lag1;       /* delivered - visible, at the start and the end */
    int64_t visible0, visible1; /* sum of visible offsets (consumed) */
    double lag_slope;         /* events/s, least squares over the window's lag readings */
    uint64_t updates;         /* flushes seen (pub/sub messages) */
    int64_t dropped;          /* samples dropped unresolved (ring full) */
} lg_window;
/* Connects (two connections: pub/sub and reads) and starts the watcher thread. */
int lg_watch_start(const lg_watch_opts *o, lg_track *track, lg_watch **out);
/* The figures since the previous take (or the start), and a new window begins. */
void lg_watch_take(lg_watch *w, lg_window *out);
/* Latency over the whole run. */
void lg_watch_total(lg_watch *w, lg_hist *out);
/* The current lag and visible sum (a fresh read of the offsets hash). */
int lg_watch_lag(lg_watch *w, int64_t *lag, int64_t *visible);
/* Waits until every sample taken so far is visible, or timeout_s. 1 all visible, 0 not. */
int lg_watch_settle(lg_watch *w, double timeout_s);
void lg_watch_stop(lg_watch *w);

/* ---- --find-sustainable (sustain.c) ------------------------------------------------------ */
typedef struct lg_sustain_opts {
    double start_rate, max_rate, growth;
    double step_s, warmup_s, drain_s;
    double p99_ms;           /* bound on p99 produce -> visible latency */
    double lag_slope_frac;   /* lag may grow by at most this share of the rate */
    double precision;        /* stop bisecting when hi/lo <= 1 + precision */
    int max_steps;
    int retries;             /* a step failing only on p99 is run again this many times */
    const char *plot, *csv;
} lg_sustain_opts;
void lg_sustain_defaults(lg_sustain_opts *o);
/* Runs the search; prints the table on stdout and, last, one JSON line. 0 ok, 1 failed. */
int lg_sustain_run(const lg_sustain_opts *o, lg_prod *p, lg_watch *w, const cs_gen_plan *pl,
                   volatile int *stop, const char *describe_json);

#endif
