/* source.c — librdkafka consumer, partition queues per worker, assignment and offsets.
 * See source.h for the contract. */
#include "source.h"
#include "engine.h"
#include "kprops.h"
#include "log.h"
#include "util.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_TOPICS 16
#define MAX_PARTITIONS_PER_TOPIC 4096
#define MAX_HANDLES 256

typedef struct wrec {
    int t;                /* topic index, -1 unknown */
    int32_t partition;
    int err;              /* rd_kafka_resp_err_t */
    int64_t offset, ts;
    size_t off, len;      /* payload in the arena */
} wrec;

typedef struct wbuf {
    cs_source *s;
    rd_kafka_t *rk;       /* the handle whose queue this worker serves */
    wrec *recs;
    size_t n, max;
    char *arena;          /* payloads, each followed by CS_MSG_PAD NULs (consume_cb) */
    size_t used, cap;
    size_t bytes;         /* payload bytes in the arena (used less the padding) */
    const rd_kafka_topic_t *cur_rkt;
    int cur_t;
    int oom;
    cs_msg *run;
    /* The fetch wake (see fetch_wake below). Worker thread only, except `pl`: */
    int armed;            /* the queue may have been at the prefetch limit since the last wake */
    size_t avg_len;       /* payload bytes per message of the last batch: the bytes limit */
    int64_t wake_ms;      /* monotonic ms of the last wake */
    /* this worker's assigned partitions (offset RD_KAFKA_OFFSET_END): the control thread adds
     * and removes entries (prepare_one, release_one), the worker reads it to wake; both under
     * pl_mu, which is never held across anything but these list operations and the wake's
     * non-blocking rd_kafka_offsets_for_times */
    pthread_mutex_t pl_mu;
    rd_kafka_topic_partition_list_t *pl;
} wbuf;


typedef struct tp {
    int topic;            /* index into s->topics */
    int32_t partition;
    int part;             /* engine partition id, -1 when not assigned */
    int worker;
    int handle;           /* index into s->hk: the consumer handle that fetches it */
    int64_t end;          /* drain: the high watermark at start */
    rd_kafka_queue_t *pq; /* forwarded to the worker's queue while assigned */
    uint64_t had[MAX_HANDLES / 64]; /* handles (bit h) that have fetched it: strays */
    _Atomic int64_t last_msg_ms;
} tp;

struct cs_source {
    cs_engine *e;
    cs_source_conf c;
    char *topics[MAX_TOPICS];
    int ntopics;
    rd_kafka_t *rk;       /* handle 0: metadata, commits, the group (live mode) */
    /* Fetch handles (conf.fetch_threads): hk[0] == rk. Each is a librdkafka consumer of its own,
     * with its own broker threads, so fetching, decompression and building message ops for its
     * partitions run on its threads. Worker w is served by handle w % nh: the partitions of a
     * worker are assigned to (fetched by) that handle and forwarded to that worker's queue. */
    rd_kafka_t *hk[MAX_HANDLES];
    int nh;
    /* Per handle, where a revoked partition's queue is forwarded: what librdkafka fetched for
     * it before the revocation took effect lands here, and cs_source_poll drops it.
     * - release_one forwards it here at once.
     * - librdkafka's fetch stop (rd_kafka_toppar_fetch_stop, 2.0.2) un-forwards the queue
     *   itself, and a fetch response handled on the broker thread after the stop but before
     *   its next fetch decision is still enqueued (outdated: no consumer would return it). So
     *   for a while after each revocation cs_source_poll forwards every partition queue that
     *   feeds no worker here again (strays): forwarding moves what a queue holds.
     * Rejected: forwarding to nothing and nothing more (the first design). The partition's
     * own queue then kept those messages, each holding its whole fetch response, until the
     * partition was assigned to the same handle again, when they were moved to a worker and
     * skipped there. That can be never: with several handles a partition comes back on another
     * handle half of the time, and a process may never get a partition back. The soak's CI
     * profile with `--fetch-threads 2` grew RSS 23 % in 3 minutes that way (24,000 messages in
     * 556 partition queues); see regression_revoked_prefetch_stranded. */
    rd_kafka_queue_t *dq[MAX_HANDLES];
    _Atomic uint64_t discarded; /* messages dropped from dq; relaxed: a statistic */
    int64_t sweep_until, next_sweep; /* the sweeps' window (monotonic ms); control thread */
    rd_kafka_t *dlq;
    rd_kafka_queue_t **wq;
    struct wbuf **wb;     /* per worker: what one consume call handed over (copies) */
    int nworkers;
    /* Which engine partition a (topic, partition) is, for workers: written by the control
     * thread (release) on assign/revoke, read by workers (acquire) per message run. */
    _Atomic int *part_of[MAX_TOPICS];
    tp *tps;              /* control thread only */
    size_t ntps, cap;
    tp **by_part;         /* engine part id -> tp; see remember_part */
    _Atomic int ndone;    /* drain: partitions that reached their end */
    int ndrain;
    int cooperative;
    int assigned_once;    /* the group gave this member an assignment (kafka_release) */
    int parked;           /* its consumer handle is kept, not destroyed (kafka_release) */
    rd_kafka_t *parked_rk;
    struct cs_source *parked_next;
    int *assign_count;    /* per worker, for balancing */
    _Atomic uint64_t redelivered, past_end, stray, consume_errors, dead_lettered;
    _Atomic uint64_t dead_letter_failed;
    /* fetch wakes sent (fetch_wake); relaxed: a statistic, read by the control thread */
    _Atomic uint64_t fetch_wakes;
    int wake;             /* fetch_wake on (cs_source_new) */
    int64_t qmin;         /* the handles' queued.min.messages */
    int64_t qmax_bytes;   /* and queued.max.messages.kbytes, in bytes */
    uint64_t rebalances, assigned, revoked;
    /* cs_source_start's wait for the cluster's first answer (see await_cluster) */
    _Atomic int starting;
    _Atomic int quiet;    /* a failed start: librdkafka's log lines are dropped */
    int start_failed;     /* an authentication or TLS error arrived while starting */
    int all_down;         /* every bootstrap broker failed while starting */
    char start_error[512];
    char last_error[512]; /* the consumer's last error_cb reason (control thread) */
};

/* The sweeps (strays, see dq): every SWEEP_EVERY_MS until SWEEP_WINDOW_MS after the last
 * revocation. A fetch response in flight at a revocation is handled within fetch.wait.max.ms
 * (500 ms) plus a round trip; a slower one (a broker stalling up to socket.timeout.ms) is caught
 * by the next revocation's window or when the partition comes back. A sweep costs a look-up of
 * the partition's queue (locks and one small allocation) per partition and handle that has
 * fetched it and does not now. */
enum { SWEEP_EVERY_MS = 250, SWEEP_WINDOW_MS = 10000 };

/* the one logger (pipeline/log.h); `s` names the consumer for nothing but symmetry */
#define slog(s, level, ...) CS_LOG(level, __VA_ARGS__)

static int topic_index(cs_source *s, const char *name)
{
    for (int i = 0; i < s->ntopics; i++)
        if (strcmp(s->topics[i], name) == 0)
            return i;
    return -1;
}

static tp *tp_get(cs_source *s, int t, int32_t partition, int create)
{
    for (size_t i = 0; i < s->ntps; i++)
        if (s->tps[i].topic == t && s->tps[i].partition == partition)
            return &s->tps[i];
    if (!create)
        return NULL;
    if (s->ntps == s->cap) {
        /* tps never moves while workers may read it: it is sized once, generously */
        return NULL;
    }
    tp *x = &s->tps[s->ntps++];
    memset(x, 0, sizeof *x);
    x->topic = t;
    x->partition = partition;
    x->part = -1;
    x->end = -1;
    atomic_init(&x->last_msg_ms, cs_wall_ms());
    return x;
}

static void set_part_of(cs_source *s, int t, int32_t partition, int part)
{
    if (partition >= 0 && partition < MAX_PARTITIONS_PER_TOPIC)
        /* release: pairs with the acquire in the worker's look-up; the engine partition
         * (created before) is fully initialised for a worker that sees its id. */
        atomic_store_explicit(&s->part_of[t][partition], part, memory_order_release);
}

/* by_part is sized once (engine ids are below CS_MAX_PARTITIONS) so workers can read it while
 * the control thread adds entries; an entry is written before the release in set_part_of
 * publishes it. */
static void remember_part(cs_source *s, int part, tp *x)
{
    if (part >= 0 && part < CS_MAX_PARTITIONS)
        s->by_part[part] = x;
}

/* ---- configuration ------------------------------------------------------------------------ */

static int set(rd_kafka_conf_t *conf, const char *k, const char *v, char *errstr, size_t errlen)
{
    if (rd_kafka_conf_set(conf, k, v, errstr, errlen) != RD_KAFKA_CONF_OK)
        return -1;
    return 0;
}

/* Applies an escaped "k=v,k=v" list (kprops.h). Error messages name the property, never its
 * value: values may be passwords (librdkafka's own message for a string property does not quote
 * it either). */
static int apply_extra(rd_kafka_conf_t *conf, const char *props, char *errstr, size_t errlen)
{
    char item[8192 + 2];
    int rc = 0, r;
    const char *cur = props;
    while (rc == 0 && (r = cs_kprops_next(&cur, item, sizeof item)) != 0) {
        char *eq = r > 0 ? strchr(item, '=') : NULL;
        if (!eq) {
            snprintf(errstr, errlen, "a kafka property is not k=v (or is too long)");
            rc = -1;
            break;
        }
        *eq = 0;
        char e2[256];
        if (set(conf, item, eq + 1, e2, sizeof e2) != 0) {
            snprintf(errstr, errlen, "kafka property %s: %s", item, e2);
            rc = -1;
        }
    }
    memset(item, 0, sizeof item); /* may hold a password */
    return rc;
}

/* Whether the escaped "k=v,k=v" list props sets key. */
static int has_extra(const char *props, const char *key)
{
    char item[8192 + 2];
    const char *cur = props;
    int r, found = 0;
    const size_t kl = strlen(key);
    while (!found && props && (r = cs_kprops_next(&cur, item, sizeof item)) != 0)
        found = r > 0 && strncmp(item, key, kl) == 0 && item[kl] == '=';
    memset(item, 0, sizeof item); /* may hold a password */
    return found;
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque);

static void kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    cs_source *s = rd_kafka_opaque(rk);
    if (!s)
        return;
    int lv = level <= 3 ? CS_LOG_ERROR : level <= 4 ? CS_LOG_WARN : level <= 6 ? CS_LOG_INFO
                                                                               : CS_LOG_DEBUG;
    int dlq = rd_kafka_type(rk) == RD_KAFKA_PRODUCER;
    /* the dead-letter producer gets all of kafka_props (security settings above all): the
     * consumer-only ones among them are expected to be ignored there */
    if (dlq && strcmp(fac, "CONFWARN") == 0 && strstr(buf, "consumer property"))
        lv = CS_LOG_DEBUG;
    /* while starting, a broker's connection failure is reported once, by error_cb, or by the
     * exit line when it is an authentication or TLS failure; after a failed start, nothing */
    if (atomic_load_explicit(&s->starting, memory_order_relaxed) && strcmp(fac, "FAIL") == 0)
        lv = CS_LOG_DEBUG;
    if (atomic_load_explicit(&s->quiet, memory_order_relaxed))
        return;
    slog(s, lv, "kafka%s %s: %s", dlq ? " dead-letter producer" : "", fac, buf);
}

/* Authentication and TLS errors: the credentials, certificates or security.protocol are wrong.
 * librdkafka retries them forever; at start they end the daemon instead (await_cluster). */
static int config_error(int err)
{
    return err == RD_KAFKA_RESP_ERR__AUTHENTICATION || err == RD_KAFKA_RESP_ERR__SSL ||
           err == RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED ||
           err == RD_KAFKA_RESP_ERR_UNSUPPORTED_SASL_MECHANISM ||
           err == RD_KAFKA_RESP_ERR_ILLEGAL_SASL_STATE;
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    cs_source *s = opaque;
    int dlq = rd_kafka_type(rk) == RD_KAFKA_PRODUCER;
    if (!dlq && err != RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        snprintf(s->last_error, sizeof s->last_error, "%s", reason);
    if (!dlq && atomic_load_explicit(&s->starting, memory_order_relaxed)) {
        /* a TLS alert from the broker (e.g. "bad certificate": the SSL listener wants a client
         * certificate) is a transport error to librdkafka, but as deterministic as the rest */
        int tls_alert = err == RD_KAFKA_RESP_ERR__TRANSPORT &&
                        (strstr(reason, "SSL alert") || strstr(reason, "certificate verify failed") ||
                         strstr(reason, "SSL handshake failed"));
        if ((config_error(err) || tls_alert) && !s->start_failed) {
            s->start_failed = 1;
            if (tls_alert)
                err = RD_KAFKA_RESP_ERR__SSL;
            /* librdkafka < 2.6.1 repeats the client nonce in SCRAM's final message, which
             * Kafka >= 4.0 rejects as invalid credentials (librdkafka #4895) */
            int old_scram = rd_kafka_version() < 0x020601ff && strstr(reason, "SCRAM") &&
                            strstr(reason, "invalid credentials");
            snprintf(s->start_error, sizeof s->start_error, "%s: %s%s%s",
                     err == RD_KAFKA_RESP_ERR__SSL ? "TLS failed"
                                                   : "authentication failed",
                     reason, old_scram ? " (if the password is right: librdkafka " : "",
                     old_scram ? rd_kafka_version_str() : "");
            if (old_scram) {
                size_t l = strlen(s->start_error);
                snprintf(s->start_error + l, sizeof s->start_error - l,
                         " cannot do SCRAM with Kafka 4.x brokers, 2.6.1 can; docs/kafka.md)");
            }
        }
        if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
            s->all_down = 1;
        if (s->start_failed)
            return; /* the exit line says it */
    }
    slog(s, err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || config_error(err) ? 3 : 4,
         "kafka%s error %s: %s", dlq ? " dead-letter producer" : "",
         rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

/* Dead-letter delivery reports: failures are counted and the first one is logged. */
static void dlq_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    cs_source *s = opaque;
    if (!m->err)
        return;
    if (atomic_fetch_add_explicit(&s->dead_letter_failed, 1, memory_order_relaxed) == 0)
        slog(s, 3, "dead-letter topic %s: a copy could not be written: %s (further failures "
             "are only counted)", s->c.dead_letter_topic, rd_kafka_err2str(m->err));
}

cs_source *cs_source_new(cs_engine *e, const cs_source_conf *conf, char *errstr, size_t errlen)
{
    cs_source *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->e = e;
    s->c = *conf;
    s->nworkers = cs_engine_nworkers(e);
    char *dup = strdup(conf->topics), *save = NULL;
    for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ')
            t++;
        if (!*t)
            continue;
        if (s->ntopics == MAX_TOPICS) {
            snprintf(errstr, errlen, "at most %d topics", MAX_TOPICS);
            free(dup);
            cs_source_destroy(s);
            return NULL;
        }
        s->topics[s->ntopics] = strdup(t);
        s->part_of[s->ntopics] = malloc(MAX_PARTITIONS_PER_TOPIC * sizeof(_Atomic int));
        for (int i = 0; i < MAX_PARTITIONS_PER_TOPIC; i++)
            atomic_init(&s->part_of[s->ntopics][i], -1);
        s->ntopics++;
    }
    free(dup);
    if (!s->ntopics) {
        snprintf(errstr, errlen, "no topic given");
        cs_source_destroy(s);
        return NULL;
    }
    s->cap = (size_t)s->ntopics * MAX_PARTITIONS_PER_TOPIC;
    s->tps = calloc(s->cap, sizeof *s->tps);
    s->assign_count = calloc((size_t)s->nworkers, sizeof *s->assign_count);
    s->by_part = calloc(CS_MAX_PARTITIONS, sizeof *s->by_part);

    /* librdkafka connects as soon as the handle exists: until cs_source_start has seen the
     * cluster's first answer, connection failures are reported by error_cb only */
    atomic_store(&s->starting, 1);
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    /* The settings that matter, deliberately (docs/kafka.md explains each): */
    if (set(kc, "bootstrap.servers", conf->brokers, errstr, errlen) ||
        set(kc, "group.id", conf->group, errstr, errlen) ||
        set(kc, "client.id", conf->client_id ? conf->client_id : "clickstage", errstr, errlen) ||
        /* offsets move only after Redis acknowledged the counts they produced */
        set(kc, "enable.auto.commit", "false", errstr, errlen) ||
        set(kc, "enable.auto.offset.store", "false", errstr, errlen) ||
        set(kc, "auto.offset.reset", conf->earliest ? "earliest" : "latest", errstr, errlen) ||
        /* state moves with partitions: move as few as possible on a rebalance */
        set(kc, "partition.assignment.strategy", "cooperative-sticky", errstr, errlen) ||
        /* throughput: fetches of at most 16 MB (1 MB per partition). Larger responses
         * (100 MB / 8 MB before issue 18) are allocated with mmap and page-faulted in afresh
         * each time: 173k page faults for a 4M-event drain against 50k, ~8 % of the daemon's
         * CPU (bench/RESULTS-e2e.md).
         * The prefetch bound: the partition queues are forwarded to their worker's queue, and
         * librdkafka compares that queue's length with these (rd_kafka_q_len follows the
         * forward), so they bound each worker's queue, not each partition's. 50,000 messages
         * (~17 MB of 344-byte events) / 32 MB: with the fetch wake a refill starts as soon as
         * the queue is below the bound, so a deeper queue only holds more memory and faults
         * more of it in (200,000 / 128 MB before: 2.4x the peak RSS of a drain and more of its
         * system time; 20,000 / 16 MB starved the workers: bench/RESULTS-e2e.md "the prefetch
         * depth"). */
        set(kc, "fetch.max.bytes", "16777216", errstr, errlen) ||
        set(kc, "max.partition.fetch.bytes", "1048576", errstr, errlen) ||
        set(kc, "queued.min.messages", "50000", errstr, errlen) ||
        set(kc, "queued.max.messages.kbytes", "32768", errstr, errlen) ||
        /* latency: the broker answers a fetch after at most 50 ms even when little is there */
        set(kc, "fetch.wait.max.ms", "50", errstr, errlen) ||
        /* drain: the end of a partition is also "no more messages": the last offsets of a
         * transactional topic are commit markers that are never delivered */
        set(kc, "enable.partition.eof", conf->drain ? "true" : "false", errstr, errlen) ||
        /* payloads are checked by our decoder; CRC checks cost CPU for nothing on loopback */
        set(kc, "check.crcs", "false", errstr, errlen) ||
        /* a restarted broker is found within a second, not after the 10 s default backoff
         * (tests/faults: broker_restart recovery 8 s -> ~1-2 s) */
        set(kc, "reconnect.backoff.max.ms", "1000", errstr, errlen)) {
        rd_kafka_conf_destroy(kc);
        cs_source_destroy(s);
        return NULL;
    }
    char ignore[256];
    /* Not in every librdkafka version (2.0.2 lacks it); where it exists its 1000 ms default
     * stalls a catching-up consumer whenever the prefetch queue was full once. Without it the
     * workers wake the fetcher themselves (fetch_wake). */
    int short_backoff = set(kc, "fetch.queue.backoff.ms", "5", ignore, sizeof ignore) == 0;
    if (!short_backoff)
        slog(s, 7, "librdkafka has no fetch.queue.backoff.ms (%s)", ignore);
    s->wake = conf->fetch_wake > 0 ? 1 : conf->fetch_wake < 0 ? 0 : !short_backoff;
    if (conf->group_instance_id && *conf->group_instance_id &&
        set(kc, "group.instance.id", conf->group_instance_id, errstr, errlen)) {
        rd_kafka_conf_destroy(kc);
        cs_source_destroy(s);
        return NULL;
    }
    if (apply_extra(kc, conf->extra_props, errstr, errlen) != 0) {
        rd_kafka_conf_destroy(kc);
        cs_source_destroy(s);
        return NULL;
    }
    char num[64];
    size_t numlen = sizeof num;
    /* message.max.bytes: for a consumer, librdkafka 2.0.2 uses it only as the cap of its
     * first guess at an lz4 batch's decompressed size (rd_kafka_lz4_decompress: min(4 x the
     * compressed size, message.max.bytes) when the frame has no content size, which neither
     * librdkafka's producer nor Java's writes), and fetch.max.bytes must be at least it. At
     * the default 1 MB every lz4 batch of more than 1 MB of records (a librdkafka producer's
     * batch.size is 1 MB) started in a 1 MB buffer and was grown by 3/4 until it fitted: for
     * the benchmark's 2 MB batches twice (1 -> 1.75 -> 3.06 MB), each a realloc with a copy or
     * a fresh mapping page-faulted in again. Uncapped, a batch starts at 4x its compressed
     * size: one that compresses up to 4x is never grown, up to 7x once (JSON events: ~5x).
     * Raised to fetch.max.bytes as finally set, unless kafka_props sets it (and a kafka_props
     * that only lowers fetch.max.bytes below 1 MB is no longer refused for the rule above).
     * 10M-event lz4 drains, three series of 5 pairs: 0.95-0.99x the CPU per event, the fetch
     * threads 13-28 ns per event less (bench/RESULTS-e2e.md "message.max.bytes"). Only the
     * consumer's: the dead-letter producer keeps librdkafka's default, which bounds what it
     * sends. */
    if (!has_extra(conf->extra_props, "message.max.bytes") &&
        rd_kafka_conf_get(kc, "fetch.max.bytes", num, &numlen) == RD_KAFKA_CONF_OK) {
        long long fmb = atoll(num);
        fmb = fmb < 1000 ? 1000 : fmb > 1000000000 ? 1000000000 : fmb; /* its range */
        char e2[256];
        snprintf(num, sizeof num, "%lld", fmb);
        if (set(kc, "message.max.bytes", num, e2, sizeof e2) != 0)
            slog(s, 7, "message.max.bytes %s not set: %s", num, e2); /* cannot happen */
    }
    /* the prefetch limits as finally set (kafka_props may override ours): fetch_wake's marks */
    numlen = sizeof num;
    s->qmin = rd_kafka_conf_get(kc, "queued.min.messages", num, &numlen) == RD_KAFKA_CONF_OK
                  ? atoll(num) : 100000;
    numlen = sizeof num;
    s->qmax_bytes = (rd_kafka_conf_get(kc, "queued.max.messages.kbytes", num, &numlen) ==
                             RD_KAFKA_CONF_OK
                         ? atoll(num) : 65536) * 1024;
    rd_kafka_conf_set_opaque(kc, s);
    rd_kafka_conf_set_log_cb(kc, kafka_log_cb);
    rd_kafka_conf_set_error_cb(kc, error_cb);
    if (!conf->drain)
        rd_kafka_conf_set_rebalance_cb(kc, rebalance_cb);
    s->nh = conf->fetch_threads > 0 ? conf->fetch_threads
                                    : cs_source_auto_fetch_threads(s->nworkers);
    if (s->nh > s->nworkers)
        s->nh = s->nworkers;
    if (s->nh > MAX_HANDLES)
        s->nh = MAX_HANDLES;
    for (int h = s->nh - 1; h >= 0; h--) {
        /* the last one takes kc itself, the others a copy */
        rd_kafka_conf_t *hc = h ? rd_kafka_conf_dup(kc) : kc;
        s->hk[h] = rd_kafka_new(RD_KAFKA_CONSUMER, hc, errstr, errlen);
        if (!s->hk[h]) {
            rd_kafka_conf_destroy(hc);
            if (h)
                rd_kafka_conf_destroy(kc);
            cs_source_destroy(s);
            return NULL;
        }
        /* rebalance events and errors come through the consumer queue that cs_source_poll
         * serves */
        rd_kafka_poll_set_consumer(s->hk[h]);
    }
    s->rk = s->hk[0];
    for (int h = 0; h < s->nh; h++)
        s->dq[h] = rd_kafka_queue_new(s->hk[h]);
    s->wq = calloc((size_t)s->nworkers, sizeof *s->wq);
    s->wb = calloc((size_t)s->nworkers, sizeof *s->wb);
    int maxb = conf->batch_size > 0 ? conf->batch_size : 2048;
    for (int i = 0; i < s->nworkers; i++) {
        s->wq[i] = rd_kafka_queue_new(s->hk[i % s->nh]);
        s->wb[i] = calloc(1, sizeof **s->wb);
        if (s->wb[i]) {
            s->wb[i]->s = s;
            s->wb[i]->rk = s->hk[i % s->nh];
            s->wb[i]->max = (size_t)maxb;
            s->wb[i]->recs = malloc((size_t)maxb * sizeof *s->wb[i]->recs);
            s->wb[i]->run = malloc((size_t)maxb * sizeof *s->wb[i]->run);
            pthread_mutex_init(&s->wb[i]->pl_mu, NULL);
            s->wb[i]->pl = rd_kafka_topic_partition_list_new(8);
        }
        if (!s->wb[i] || !s->wb[i]->recs || !s->wb[i]->run) {
            snprintf(errstr, errlen, "out of memory");
            cs_source_destroy(s);
            return NULL;
        }
    }

    if (conf->dead_letter_topic && *conf->dead_letter_topic) {
        /* The same cluster as the consumer, so the same connection and security properties:
         * every kafka_props entry is applied (librdkafka ignores the consumer-only ones). */
        rd_kafka_conf_t *pc = rd_kafka_conf_new();
        char dlq_id[320];
        snprintf(dlq_id, sizeof dlq_id, "%s-dlq", conf->client_id ? conf->client_id : "clickstage");
        if (set(pc, "bootstrap.servers", conf->brokers, errstr, errlen) ||
            set(pc, "client.id", dlq_id, errstr, errlen) ||
            set(pc, "linger.ms", "20", errstr, errlen) ||
            set(pc, "reconnect.backoff.max.ms", "1000", errstr, errlen) ||
            apply_extra(pc, conf->extra_props, errstr, errlen)) {
            rd_kafka_conf_destroy(pc);
            cs_source_destroy(s);
            return NULL;
        }
        rd_kafka_conf_set_opaque(pc, s);
        rd_kafka_conf_set_log_cb(pc, kafka_log_cb);
        rd_kafka_conf_set_error_cb(pc, error_cb);
        rd_kafka_conf_set_dr_msg_cb(pc, dlq_dr_cb);
        s->dlq = rd_kafka_new(RD_KAFKA_PRODUCER, pc, errstr, errlen);
        if (!s->dlq) {
            cs_source_destroy(s);
            return NULL;
        }
    }
    return s;
}

/* Stops librdkafka: its queues, then the consumer and the dead-letter producer (their threads
 * end). cs_source_destroy does this; so does a failed cs_source_start, so that the process's
 * exit that follows does not race librdkafka's broker threads (an exit in the middle of a TLS
 * handshake crashed in OpenSSL's exit-time clean-up). */
static void kafka_release(cs_source *s, int consumer_close)
{
    for (size_t i = 0; i < s->ntps; i++)
        if (s->tps[i].pq) {
            rd_kafka_queue_forward(s->tps[i].pq, NULL);
            rd_kafka_queue_destroy(s->tps[i].pq);
            s->tps[i].pq = NULL;
        }
    for (int i = 0; s->wq && i < s->nworkers; i++)
        if (s->wq[i]) {
            rd_kafka_queue_destroy(s->wq[i]);
            s->wq[i] = NULL;
        }
    for (int h = 0; h < s->nh; h++)
        if (s->dq[h]) { /* what is left in it is purged with it */
            rd_kafka_queue_destroy(s->dq[h]);
            s->dq[h] = NULL;
        }
    if (s->rk && consumer_close && !s->c.drain && !s->assigned_once &&
        rd_kafka_version() < 0x020300ff) {
        /* librdkafka < 2.3.0 (Debian 12 has 2.0.2) asserts in rd_kafka_destroy when a JoinGroup
         * has chosen the cooperative-sticky assignor but no SyncGroup has given this member an
         * assignment yet: the assignor's state is still NULL (librdkafka #4312, fixed by #4381).
         * A member stopped in that window (a SIGTERM while joining, a test's short-lived
         * member) aborted instead of exiting. It is closed (it leaves the group) and kept,
         * with its opaque `s`, reachable from `parked` until the process exits: a few hundred
         * KB once per process, not per rebalance. Rejected: waiting for the first assignment
         * before closing (unbounded when the group never completes). A failed start
         * (consumer_close 0) has not joined, nor has a drain (it assigns, no group): destroyed as
         * before. Only hk[0] is a group member; the other fetch handles never join. */
        rd_kafka_consumer_close(s->rk);
        atomic_store_explicit(&s->quiet, 1, memory_order_relaxed);
        s->parked = 1;
        s->parked_rk = s->rk;
        s->hk[0] = NULL;
        s->rk = NULL;
    }
    for (int h = 0; h < s->nh; h++) {
        if (!s->hk[h])
            continue;
        if (consumer_close)
            rd_kafka_destroy(s->hk[h]);
        else
            rd_kafka_destroy_flags(s->hk[h], RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
        s->hk[h] = NULL;
    }
    s->rk = NULL;
    if (s->dlq) {
        if (consumer_close) /* a normal stop: what was dead-lettered gets out */
            rd_kafka_flush(s->dlq, 5000);
        rd_kafka_destroy(s->dlq);
        s->dlq = NULL;
    }
}

void cs_source_destroy(cs_source *s)
{
    if (!s)
        return;
    kafka_release(s, 1);
    free(s->wq);
    for (int i = 0; s->wb && i < s->nworkers; i++) {
        if (s->wb[i]) {
            free(s->wb[i]->recs);
            free(s->wb[i]->run);
            free(s->wb[i]->arena);
            if (s->wb[i]->pl)
                rd_kafka_topic_partition_list_destroy(s->wb[i]->pl);
            pthread_mutex_destroy(&s->wb[i]->pl_mu);
            free(s->wb[i]);
        }
    }
    free(s->wb);
    for (int i = 0; i < s->ntopics; i++) {
        free(s->topics[i]);
        free((void *)s->part_of[i]);
    }
    free(s->tps);
    free(s->by_part);
    free(s->assign_count);
    if (s->parked) { /* kafka_release: its handle's callbacks may still read it */
        static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
        static cs_source *parked; /* a root for leak checkers: kept on purpose */
        pthread_mutex_lock(&lock);
        s->parked_next = parked;
        parked = s;
        pthread_mutex_unlock(&lock);
        return;
    }
    free(s);
}

/* ---- assignment --------------------------------------------------------------------------- */

static int pick_worker(cs_source *s)
{
    int best = 0;
    for (int i = 1; i < s->nworkers; i++)
        if (s->assign_count[i] < s->assign_count[best])
            best = i;
    return best;
}

/* Creates state and resolves the start offset through on_assign (Redis is authoritative), then
 * forwards the partition's queue. CS_START_RESET becomes the explicit position auto.offset.reset
 * names (the oldest retained message or the end), never RD_KAFKA_OFFSET_INVALID: that would let
 * librdkafka start from the group's committed offset, which on_assign has already judged (a
 * committed offset without one in Redis means Redis lost the counts: reading from it would skip
 * them), and a commit landing between that judgement and librdkafka's own look-up must not
 * change where the partition starts. */
static int prepare_one(cs_source *s, rd_kafka_topic_partition_t *p, int64_t committed)
{
    int t = topic_index(s, p->topic);
    if (t < 0 || p->partition < 0 || p->partition >= MAX_PARTITIONS_PER_TOPIC) {
        slog(s, 3, "assigned %s[%d] which is not ours or out of range", p->topic, p->partition);
        return -1;
    }
    tp *x = tp_get(s, t, p->partition, 1);
    if (!x)
        return -1;
    int w = pick_worker(s);
    int64_t start = -1;
    int part = s->c.on_assign(s->c.opaque, p->topic, p->partition, w, committed, &start);
    if (part < 0)
        return -1;
    x->part = part;
    x->worker = w;
    x->handle = w % s->nh;
    s->assign_count[w]++;
    remember_part(s, part, x);
    p->offset = start >= 0                      ? start
                : start == CS_START_BEGINNING ? RD_KAFKA_OFFSET_BEGINNING
                : s->c.earliest               ? RD_KAFKA_OFFSET_BEGINNING
                                              : RD_KAFKA_OFFSET_END;
    atomic_store_explicit(&x->last_msg_ms, cs_wall_ms(), memory_order_relaxed);
    /* forward before assigning: messages must never reach the consumer's own queue */
    x->pq = rd_kafka_queue_get_partition(s->hk[x->handle], p->topic, p->partition);
    /* A version barrier before the workers can see the partition again (set_part_of below):
     * librdkafka drops a message whose fetch version is older than its partition's, and a
     * seek raises that version at once, in this thread (rd_kafka_toppar_op_seek). Without it
     * a message fetched under an earlier assignment of the partition to this handle, still in
     * the worker's queue because the revocation's fetch stop had not run yet (it runs later,
     * on librdkafka's main thread, as does the fetch start of this assignment), was counted
     * under the new one: ahead of the partition's restored position, so that the messages
     * between were then skipped as re-delivered (the soak's CI profile, 2026-12-06: 63 lost,
     * 64 re-delivered skipped). On a partition not being fetched the seek itself fails
     * (__STATE, in librdkafka's thread) and only the barrier remains; on one still fetched
     * for the old assignment it moves the fetch to this assignment's start. Either way what
     * the worker gets from now on starts at p->offset. */
    rd_kafka_topic_partition_list_t *sk = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sk, p->topic, p->partition)->offset = p->offset;
    rd_kafka_error_t *se = rd_kafka_seek_partitions(s->hk[x->handle], sk, 0);
    if (se)
        rd_kafka_error_destroy(se);
    rd_kafka_topic_partition_list_destroy(sk);
    rd_kafka_queue_forward(x->pq, s->wq[w]);
    x->had[x->handle / 64] |= 1ull << (x->handle % 64);
    set_part_of(s, t, p->partition, part);
    wbuf *b = s->wb[w];
    pthread_mutex_lock(&b->pl_mu);
    rd_kafka_topic_partition_list_add(b->pl, p->topic, p->partition)->offset =
        RD_KAFKA_OFFSET_END;
    pthread_mutex_unlock(&b->pl_mu);
    return 0;
}

static void release_one(cs_source *s, tp *x)
{
    set_part_of(s, x->topic, x->partition, -1);
    wbuf *b = s->wb[x->worker];
    pthread_mutex_lock(&b->pl_mu);
    rd_kafka_topic_partition_list_del(b->pl, s->topics[x->topic], x->partition);
    pthread_mutex_unlock(&b->pl_mu);
    if (x->pq) {
        /* not to the worker any more, and not to nothing (see dq): what is still in flight
         * for it is dropped by cs_source_poll; prepare_one forwards it again if it comes back */
        rd_kafka_queue_forward(x->pq, s->dq[x->handle]);
        rd_kafka_queue_destroy(x->pq);
        x->pq = NULL;
    }
    s->assign_count[x->worker]--;
    x->part = -1;
}

static size_t count_assigned(const cs_source *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->ntps; i++)
        n += s->tps[i].part >= 0;
    return n;
}

/* Gives up `parts` (those of them this process has): their counts are made durable
 * (on_revoke) before the workers lose them, each is released (release_one: the engine partition
 * is forgotten, the queue forwarded to dq, the worker's count and wake list updated), and every
 * handle lets go of its share in librdkafka (handle 0's call, possibly with nothing, completes
 * the revocation on the group's side). Partitions not assigned here are ignored. The one path
 * by which a live source lets partitions go: a revocation, and a rebalance error (rebalance_cb).
 * Control thread (the rebalance callback runs in cs_source_poll). */
static void give_up(cs_source *s, rd_kafka_t *rk, const rd_kafka_topic_partition_list_t *parts)
{
    int *ids = calloc((size_t)parts->cnt + 1, sizeof *ids);
    size_t n = 0;
    /* mine[h]: what handle h was assigned of it (a partition prepare_one refused was
     * assigned to none, and librdkafka refuses to unassign what it does not have) */
    rd_kafka_topic_partition_list_t *mine[MAX_HANDLES];
    for (int h = 0; h < s->nh; h++)
        mine[h] = rd_kafka_topic_partition_list_new(parts->cnt);
    for (int i = 0; i < parts->cnt; i++) {
        int t = topic_index(s, parts->elems[i].topic);
        tp *x = t >= 0 ? tp_get(s, t, parts->elems[i].partition, 0) : NULL;
        if (x && x->part >= 0) {
            ids[n++] = x->part;
            set_part_of(s, x->topic, x->partition, -1); /* workers skip it from now on */
            rd_kafka_topic_partition_list_add(mine[x->handle], parts->elems[i].topic,
                                              parts->elems[i].partition);
        }
    }
    /* counts of the revoked partitions become durable before anyone else reads them */
    s->c.on_revoke(s->c.opaque, ids, n);
    s->sweep_until = cs_mono_ms() + SWEEP_WINDOW_MS; /* see dq */
    for (int i = 0; i < parts->cnt; i++) {
        int t = topic_index(s, parts->elems[i].topic);
        tp *x = t >= 0 ? tp_get(s, t, parts->elems[i].partition, 0) : NULL;
        if (x && x->part >= 0) {
            release_one(s, x);
            s->revoked++;
        }
    }
    free(ids);
    slog(s, 6, "rebalance (%s): revoked %d partition(s)%s, now %zu",
         s->cooperative ? "cooperative" : "eager", parts->cnt,
         rd_kafka_assignment_lost(rk) ? " (lost: the group moved on without us)" : "",
         count_assigned(s));
    /* handle 0 is told (possibly nothing: the call completes the revocation on its side),
     * the others let go of theirs by hand */
    for (int h = 0; h < s->nh; h++) {
        rd_kafka_error_t *e = NULL;
        if (h && !mine[h]->cnt)
            ;
        else if (s->cooperative || h)
            e = rd_kafka_incremental_unassign(s->hk[h], mine[h]);
        else
            rd_kafka_assign(rk, NULL);
        if (e) {
            slog(s, 3, "incremental_unassign (handle %d): %s", h, rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        }
        rd_kafka_topic_partition_list_destroy(mine[h]);
    }
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    cs_source *s = opaque;
    s->rebalances++;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
        s->assigned_once = 1; /* the assignor's state exists from here on (kafka_release) */
    /* NULL while the consumer is not in the group (closing, or the assignment was lost): keep
     * what the last rebalance said (strcmp(NULL) crashed; UBSan found it in test_coord) */
    const char *proto = rd_kafka_rebalance_protocol(rk);
    if (proto)
        s->cooperative = strcmp(proto, "COOPERATIVE") == 0;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        /* the group's committed offsets: a partition that has one but no offset in Redis means
         * Redis lost its counts (the caller decides what to do about it) */
        rd_kafka_topic_partition_list_t *com = rd_kafka_topic_partition_list_copy(parts);
        if (rd_kafka_committed(rk, com, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            slog(s, 4, "rebalance: could not read the group's committed offsets");
            for (int i = 0; i < com->cnt; i++)
                com->elems[i].offset = -1;
        }
        /* ok[h]: what handle h fetches (prepare_one picks the worker, hence the handle) */
        rd_kafka_topic_partition_list_t *ok[MAX_HANDLES];
        for (int h = 0; h < s->nh; h++)
            ok[h] = rd_kafka_topic_partition_list_new(parts->cnt);
        int nok = 0;
        for (int i = 0; i < parts->cnt; i++) {
            rd_kafka_topic_partition_t p = {.topic = parts->elems[i].topic,
                                            .partition = parts->elems[i].partition};
            int64_t c = !com->elems[i].err && com->elems[i].offset >= 0 ? com->elems[i].offset
                                                                        : -1;
            /* a failed one is dropped: not consumed until the next rebalance */
            if (prepare_one(s, &p, c) != 0)
                continue;
            tp *x = tp_get(s, topic_index(s, p.topic), p.partition, 0);
            rd_kafka_topic_partition_list_add(ok[x->handle], p.topic, p.partition)->offset =
                p.offset;
            s->assigned++;
            nok++;
        }
        rd_kafka_topic_partition_list_destroy(com);
        slog(s, 6, "rebalance (%s): assigned %d partition(s), %d failed, now %zu",
             s->cooperative ? "cooperative" : "eager", nok, parts->cnt - nok,
             count_assigned(s) );
        /* The group member (handle 0) is told its share, possibly none: the call itself is what
         * completes the rebalance on its side. The other handles never join the group: they are
         * assigned their share by hand (incremental_assign works on a consumer that has not
         * subscribed: its rebalance protocol is NONE) and fetch it from the given offsets. */
        for (int h = 0; h < s->nh; h++) {
            rd_kafka_error_t *e = NULL;
            rd_kafka_resp_err_t r = RD_KAFKA_RESP_ERR_NO_ERROR;
            if (h && !ok[h]->cnt)
                ;
            else if (s->cooperative || h)
                e = rd_kafka_incremental_assign(s->hk[h], ok[h]);
            else
                r = rd_kafka_assign(rk, ok[h]);
            if (e) {
                slog(s, 3, "incremental_assign (handle %d): %s", h, rd_kafka_error_string(e));
                rd_kafka_error_destroy(e);
            } else if (r) {
                slog(s, 3, "assign: %s", rd_kafka_err2str(r));
            }
            rd_kafka_topic_partition_list_destroy(ok[h]);
        }
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        give_up(s, rk, parts);
    } else {
        /* Any other err. librdkafka 2.0.2 never passes one: rd_kafka_rebalance_op (eager) and
         * rd_kafka_rebalance_op_incr (cooperative), rdkafka_cgrp.c, the only places that queue
         * a rebalance op, are always given __ASSIGN_PARTITIONS or __REVOKE_PARTITIONS, and a
         * lost assignment comes as a revocation with rd_kafka_assignment_lost(). Should one
         * come, the contract (rdkafka.h's rd_kafka_conf_set_rebalance_cb example:
         * "rd_kafka_assign(rk, NULL); // sync state") is to drop the whole assignment, whatever
         * `parts` holds. So everything this process has is given up exactly as a revocation
         * gives it up (give_up): counts made durable, engine partitions released, every handle
         * unassigned (handle 0 incrementally when cooperative: rd_kafka_assign(NULL) is refused
         * with __STATE under the cooperative protocol). The group assigns them again on its
         * next rebalance. Not reachable on cue with the 2.0.2 mock cluster, so no test drives
         * this branch; give_up itself runs on every revocation (live_2_handles,
         * regression_revoked_prefetch_stranded). */
        const size_t held = count_assigned(s);
        slog(s, 3, "rebalance error: %s: giving up all %zu partition(s)", rd_kafka_err2str(err),
             held);
        rd_kafka_topic_partition_list_t *all = rd_kafka_topic_partition_list_new((int)held + 1);
        for (size_t i = 0; i < s->ntps; i++)
            if (s->tps[i].part >= 0)
                rd_kafka_topic_partition_list_add(all, s->topics[s->tps[i].topic],
                                                  s->tps[i].partition);
        give_up(s, rk, all);
        rd_kafka_topic_partition_list_destroy(all);
    }
}

static int drain_start(cs_source *s, char *errstr, size_t errlen)
{
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(64);
    for (int t = 0; t < s->ntopics; t++) {
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(s->rk, s->topics[t], NULL);
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err = rd_kafka_metadata(s->rk, 0, rkt, &md, 10000);
        rd_kafka_topic_destroy(rkt);
        if (err || md->topic_cnt != 1 || md->topics[0].err) {
            snprintf(errstr, errlen, "topic %s: %s", s->topics[t],
                     rd_kafka_err2str(err ? err : md->topic_cnt ? md->topics[0].err
                                                                : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC));
            if (md)
                rd_kafka_metadata_destroy(md);
            rd_kafka_topic_partition_list_destroy(list);
            return -1;
        }
        for (int i = 0; i < md->topics[0].partition_cnt; i++)
            rd_kafka_topic_partition_list_add(list, s->topics[t], md->topics[0].partitions[i].id);
        rd_kafka_metadata_destroy(md);
    }
    /* committed offsets: on_assign tells a fresh start from a Redis that lost its counts */
    rd_kafka_topic_partition_list_t *committed = rd_kafka_topic_partition_list_copy(list);
    if (rd_kafka_committed(s->rk, committed, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        for (int i = 0; i < committed->cnt; i++)
            committed->elems[i].offset = RD_KAFKA_OFFSET_INVALID;
    for (int i = 0; i < list->cnt; i++) {
        rd_kafka_topic_partition_t *p = &list->elems[i];
        int64_t lo = 0, hi = 0;
        rd_kafka_resp_err_t err =
            rd_kafka_query_watermark_offsets(s->rk, p->topic, p->partition, &lo, &hi, 10000);
        if (err) {
            snprintf(errstr, errlen, "%s[%d] watermarks: %s", p->topic, p->partition,
                     rd_kafka_err2str(err));
            rd_kafka_topic_partition_list_destroy(committed);
            rd_kafka_topic_partition_list_destroy(list);
            return -1;
        }
        int64_t com = committed->elems[i].offset >= 0 && !committed->elems[i].err
                          ? committed->elems[i].offset
                          : -1;
        if (prepare_one(s, p, com) != 0) {
            snprintf(errstr, errlen, "%s[%d]: could not resolve its start offset", p->topic,
                     p->partition);
            rd_kafka_topic_partition_list_destroy(committed);
            rd_kafka_topic_partition_list_destroy(list);
            return -1;
        }
        int64_t start = p->offset;
        if (start == RD_KAFKA_OFFSET_BEGINNING)
            start = lo;
        else if (start < 0)
            start = s->c.earliest ? lo : hi;
        if (start < lo)
            start = lo; /* retention removed what the offsets point at */
        p->offset = start;
        tp *y = tp_get(s, topic_index(s, p->topic), p->partition, 0);
        y->end = hi;
        s->ndrain++;
        if (start >= hi) {
            cs_engine_set_part_state(s->e, y->part, CS_PART_DONE);
            atomic_fetch_add_explicit(&s->ndone, 1, memory_order_relaxed);
        }
        slog(s, 6, "drain %s[%d]: from offset %lld to %lld", p->topic, p->partition,
             (long long)start, (long long)hi);
    }
    rd_kafka_topic_partition_list_destroy(committed);
    /* each handle is assigned the partitions of its workers (queues already forwarded) */
    for (int h = 0; h < s->nh; h++) {
        rd_kafka_topic_partition_list_t *mine = rd_kafka_topic_partition_list_new(list->cnt);
        for (int i = 0; i < list->cnt; i++) {
            tp *y = tp_get(s, topic_index(s, list->elems[i].topic), list->elems[i].partition, 0);
            if (y && y->handle == h)
                rd_kafka_topic_partition_list_add(mine, list->elems[i].topic,
                                                  list->elems[i].partition)
                    ->offset = list->elems[i].offset;
        }
        rd_kafka_resp_err_t err = mine->cnt ? rd_kafka_assign(s->hk[h], mine)
                                            : RD_KAFKA_RESP_ERR_NO_ERROR;
        if (!err && mine->cnt && s->nh > 1)
            slog(s, 7, "drain: fetch handle %d of %d assigned %d partition(s)", h + 1, s->nh,
                 mine->cnt);
        rd_kafka_topic_partition_list_destroy(mine);
        if (err) {
            snprintf(errstr, errlen, "assign: %s", rd_kafka_err2str(err));
            rd_kafka_topic_partition_list_destroy(list);
            return -1;
        }
    }
    rd_kafka_topic_partition_list_destroy(list);
    return 0;
}

/* Waits for the cluster's first answer (a metadata request) before anything is subscribed or
 * assigned. An authentication or TLS failure in that time ends the start with one line naming
 * it (librdkafka would retry it forever). Brokers that cannot be reached are not an error here,
 * as before: live mode goes on and librdkafka keeps trying; drain mode fails in drain_start. */
#define START_WAIT_MS 15000
static int await_cluster(cs_source *s, char *errstr, size_t errlen)
{
    int64_t deadline = cs_wall_ms() + START_WAIT_MS;
    int rc = 0;
    atomic_store(&s->starting, 1);
    for (;;) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err = rd_kafka_metadata(s->rk, 0, NULL, &md, 250);
        if (md)
            rd_kafka_metadata_destroy(md);
        /* errors reach error_cb through the consumer queue (rd_kafka_poll_set_consumer) */
        rd_kafka_message_t *m;
        while ((m = rd_kafka_consumer_poll(s->rk, 0)))
            rd_kafka_message_destroy(m);
        if (s->start_failed) {
            snprintf(errstr, errlen, "%s", s->start_error);
            rc = -1;
            break;
        }
        if (!err || s->all_down || cs_wall_ms() >= deadline)
            break;
    }
    atomic_store(&s->starting, 0);
    return rc;
}

static int start(cs_source *s, char *errstr, size_t errlen);
int cs_source_start(cs_source *s, char *errstr, size_t errlen)
{
    int rc = start(s, errstr, errlen);
    if (rc != 0) {
        size_t l = strlen(errstr);
        if (s->c.drain && !s->start_failed && s->last_error[0] && l + 32 < errlen)
            /* why the brokers did not answer */
            snprintf(errstr + l, errlen - l, " (last broker error: %s)", s->last_error);
        atomic_store(&s->quiet, 1); /* the exit line said it: librdkafka's last words are noise */
        kafka_release(s, 0);
    }
    return rc;
}

static int start(cs_source *s, char *errstr, size_t errlen)
{
    if (await_cluster(s, errstr, errlen) != 0)
        return -1;
    if (s->c.drain)
        return drain_start(s, errstr, errlen);
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(s->ntopics);
    for (int t = 0; t < s->ntopics; t++)
        rd_kafka_topic_partition_list_add(sub, s->topics[t], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(s->rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (err) {
        snprintf(errstr, errlen, "subscribe: %s", rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}

/* The partition queues of handles that have fetched the partition but do not now feed a worker
 * with it (see dq). sweep: each is forwarded to its handle's dq, which moves what it holds
 * there; returns 0. Otherwise: returns how many messages they hold (cs_source_stranded). A
 * queue forwarded to dq reports dq's length (librdkafka follows forwarding), which
 * cs_source_poll keeps at 0; one forwarded to nothing, its own. Control thread. */
static size_t strays(cs_source *s, int sweep)
{
    size_t n = 0;
    for (size_t i = 0; i < s->ntps; i++) {
        tp *x = &s->tps[i];
        for (int h = 0; h < s->nh; h++) {
            if (!(x->had[h / 64] & (1ull << (h % 64))) || (x->part >= 0 && h == x->handle))
                continue;
            rd_kafka_queue_t *q =
                rd_kafka_queue_get_partition(s->hk[h], s->topics[x->topic], x->partition);
            if (!q)
                continue;
            if (sweep)
                rd_kafka_queue_forward(q, s->dq[h]);
            else
                n += rd_kafka_queue_length(q);
            rd_kafka_queue_destroy(q);
        }
    }
    return n;
}

void cs_source_poll(cs_source *s, int timeout_ms)
{
    if (s->sweep_until) {
        int64_t now = cs_mono_ms();
        if (now >= s->next_sweep) {
            strays(s, 1);
            s->next_sweep = now + SWEEP_EVERY_MS;
            if (now > s->sweep_until)
                s->sweep_until = 0;
        }
    }
    /* handle 0 waits; the others are served without waiting */
    for (int h = 0; h < s->nh; h++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(s->hk[h], h ? 0 : timeout_ms);
        if (!m)
            continue;
        if (m->err)
            slog(s, m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF ? 7 : 4, "consumer: %s",
                 rd_kafka_message_errstr(m));
        else /* should not happen: partition queues are forwarded before assignment */
            atomic_fetch_add_explicit(&s->stray, 1, memory_order_relaxed);
        rd_kafka_message_destroy(m);
    }
    /* what was fetched for revoked partitions (dq): dropped, counted */
    for (int h = 0; h < s->nh; h++) {
        rd_kafka_message_t *m;
        while (s->dq[h] && (m = rd_kafka_consume_queue(s->dq[h], 0))) {
            if (!m->err)
                atomic_fetch_add_explicit(&s->discarded, 1, memory_order_relaxed);
            rd_kafka_message_destroy(m);
        }
    }
    if (s->dlq)
        rd_kafka_poll(s->dlq, 0);
}

size_t cs_source_stranded(cs_source *s) { return strays(s, 0); }

/* ---- the worker's side --------------------------------------------------------------------
 *
 * Why a callback and copies instead of rd_kafka_consume_batch_queue: in librdkafka 2.0.x the
 * batch API is not safe against a pause, resume, seek or rebalance running at the same time
 * (its v2.0.0 release notes; fixed in 2.1.0): a barrier op purges messages already collected
 * into the caller's array after their application offset was advanced, so they are neither
 * returned nor fetched again. A cooperative rebalance pauses and resumes the fetchers of every
 * assigned partition, so each rebalance lost the messages a worker was collecting at that
 * moment (tests/faults found it as offsets advancing past messages never counted).
 * rd_kafka_consume_callback_queue checks each op's version when it hands it over and advances
 * the application offset only for what it hands over. A message is valid only during the
 * callback, so its payload is copied into the worker's arena (~30 ns for a 330-byte event;
 * the batch API's array of pointers is what we give up). Each payload is followed there by
 * CS_MSG_PAD NUL bytes, so the worker decodes it in place (cs_worker_process_padded) rather
 * than copying it once more into the decoder; the arena stays put until the next
 * cs_source_fetch_process, after the batch's cs_worker_process_padded calls returned. */

static void consume_cb(rd_kafka_message_t *m, void *opaque)
{
    wbuf *b = opaque;
    wrec *r = &b->recs[b->n];
    if (m->rkt != b->cur_rkt) {
        b->cur_rkt = m->rkt;
        b->cur_t = topic_index(b->s, rd_kafka_topic_name(m->rkt));
    }
    r->t = b->cur_t;
    r->partition = m->partition;
    r->err = m->err;
    r->offset = m->offset;
    rd_kafka_timestamp_type_t tt;
    r->ts = m->err ? -1 : rd_kafka_message_timestamp(m, &tt);
    r->off = b->used;
    r->len = m->err ? 0 : m->len;
    if (!m->err) { /* an empty payload too: it is decoded, so it needs its padding */
        const size_t need = r->len + CS_MSG_PAD;
        if (b->used + need > b->cap) {
            size_t nc = b->cap ? b->cap : 1 << 20;
            while (nc < b->used + need)
                nc *= 2;
            char *na = realloc(b->arena, nc);
            if (!na) {
                /* cannot keep it: stop here; it was handed over, so the partition's run
                 * would have a hole — mark the batch so it is not counted past it */
                b->oom = 1;
                rd_kafka_yield(b->rk);
                return;
            }
            b->arena = na;
            b->cap = nc;
        }
        if (r->len)
            memcpy(b->arena + b->used, m->payload, r->len);
        memset(b->arena + b->used + r->len, 0, CS_MSG_PAD); /* cs_worker_process_padded's */
        b->used += need;
        b->bytes += r->len;
    }
    if (++b->n >= b->max)
        rd_kafka_yield(b->rk); /* the rest stays queued for the next call */
}

/* Drain: the partition has nothing more to deliver. If its end offset (the high watermark at
 * start) lies beyond the last message delivered, what is left are transaction markers (or
 * records compacted away): the partition is done. On the worker thread that owns it. */
static void drain_eof(cs_source *s, const wrec *r)
{
    if (r->t < 0 || r->partition < 0 || r->partition >= MAX_PARTITIONS_PER_TOPIC)
        return;
    /* acquire: pairs with the release in set_part_of */
    int part = atomic_load_explicit(&s->part_of[r->t][r->partition], memory_order_acquire);
    if (part < 0 || r->offset < s->by_part[part]->end)
        return;
    if (cs_engine_part_state(s->e, part) != CS_PART_DONE) {
        cs_engine_set_part_state(s->e, part, CS_PART_DONE);
        atomic_fetch_add_explicit(&s->ndone, 1, memory_order_relaxed);
    }
}

/* ---- the fetch wake ------------------------------------------------------------------------
 *
 * librdkafka 2.0.2 (Debian 12's) stops fetching a partition whose prefetch queue holds
 * queued.min.messages (or queued.max.messages.kbytes) and does not look again until its broker
 * thread wakes: rd_kafka_toppar_fetch_decide returns an unbounded back-off (RD_TS_MAX) for
 * "queued.min.messages exceeded", so rd_kafka_broker_consumer_serve blocks in
 * rd_kafka_broker_ops_io_serve until its own timeout, rd_kafka_max_block_ms = 1000 ms, unless an
 * op arrives on the broker's ops queue or its socket has something to read. Consuming from the
 * queue wakes nothing (2.2+ re-checks after fetch.queue.backoff.ms). The queue that counts is the
 * worker's: a forwarded partition queue reports the length of the queue it forwards to
 * (rd_kafka_q_len follows the forward), so all partitions of a worker stop together. With one
 * handle per worker nothing else reaches those broker threads (the commits go through handle 0
 * to the group coordinator), and a worker that empties its queue waits for the rest of the
 * second: two handles at --threads 2 drained at 0.74x the events/s of one (bench/RESULTS-e2e.md).
 *
 * The wake: when the worker's queue may have been at the limit since its last look (its length
 * now plus what this consume call took: nothing between two looks is missed) and has been below
 * it for a whole look since (or is empty), the worker sends one
 * ListOffsets request (latest offset) for its partitions through the handle that fetches them,
 * with rd_kafka_offsets_for_times(.., timeout 0): it enqueues the request as an op on the ops
 * queue of each partition leader's broker thread of that handle and returns without waiting
 * (the answer is dropped: librdkafka destroys the reply queue, and the request's callback
 * sees RD_KAFKA_RESP_ERR__DESTROY and ignores it). The op wakes the broker thread; its serve
 * loop runs rd_kafka_toppar_fetch_decide for every partition again, finds the queue below the
 * limit and fetches. A ListOffsets is read-only: no fetch version, position or pause state
 * changes (pause/resume/seek would bump the version and discard what was prefetched).
 * Once per refill of the queue (a fetch response: tens of thousands of events), per batch only a
 * queue-length read (a mutex); nothing per event. Where librdkafka has fetch.queue.backoff.ms
 * (set to 5 ms) the wake is off by default. */
#define WAKE_MIN_MS 2      /* at most one wake per worker per this */
#define WAKE_IDLE_MS 100   /* drain: an empty queue wakes at most this often (a safety net) */

static void fetch_wake_send(cs_source *s, wbuf *b, int64_t now)
{
    b->wake_ms = now;
    pthread_mutex_lock(&b->pl_mu);
    if (b->pl->cnt > 0) {
        /* timeout 0: send and return; the leaders come from the handle's metadata cache (an
         * unknown one makes it return without sending: the next wake tries again) */
        rd_kafka_offsets_for_times(b->rk, b->pl, 0);
        for (int i = 0; i < b->pl->cnt; i++) { /* it may set these; they are ours to reuse */
            b->pl->elems[i].offset = RD_KAFKA_OFFSET_END;
            b->pl->elems[i].err = RD_KAFKA_RESP_ERR_NO_ERROR;
        }
        atomic_fetch_add_explicit(&s->fetch_wakes, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&b->pl_mu);
}

static int at_limit(const cs_source *s, int64_t msgs, size_t avg_len)
{
    return msgs >= s->qmin || msgs * (int64_t)avg_len >= s->qmax_bytes;
}

/* After each consume call of worker w (n messages taken). */
static void fetch_wake(cs_source *s, wbuf *b, int w, size_t n)
{
    if (n) /* payload bytes: the arena's padding is not in the queue */
        b->avg_len = b->bytes / n;
    int64_t len = (int64_t)rd_kafka_queue_length(s->wq[w]);
    /* The most the queue can have held since the last look is what is in it now plus what this
     * call took: responses only add to it and only this call takes from it. If that reached
     * the limit, the broker thread may have stopped fetching for it in the meantime. */
    int full = at_limit(s, len + (int64_t)n, b->avg_len);
    if (full)
        b->armed = 1;
    if (b->armed && (!full || len == 0)) {
        /* below the limit for a whole interval (or empty): fetch_decide would fetch now */
        int64_t now = cs_mono_ms();
        if (now - b->wake_ms < WAKE_MIN_MS)
            return; /* stays armed: the next look tries */
        b->armed = 0;
        fetch_wake_send(s, b, now);
    } else if (!b->armed && n == 0 && s->c.drain && len == 0) {
        /* nothing for a whole consume timeout in a drain: should the byte estimate have missed
         * a full queue (messages of very different sizes), the fetcher waits 100 ms, not 1 s */
        int64_t now = cs_mono_ms();
        if (now - b->wake_ms >= WAKE_IDLE_MS)
            fetch_wake_send(s, b, now);
    }
}

int cs_source_fetch_process(cs_source *s, int w, int timeout_ms)
{
    wbuf *b = s->wb[w];
    b->n = 0;
    b->used = 0;
    b->bytes = 0;
    b->cur_rkt = NULL;
    b->cur_t = -1;
    b->oom = 0;
    rd_kafka_consume_callback_queue(s->wq[w], timeout_ms, consume_cb, b);
    size_t n = b->n;
    if (s->wake)
        fetch_wake(s, b, w, n);
    if (b->oom) {
        /* a message could not be kept: count nothing of this call after it. The offsets
         * of the kept ones are handed on; the lost one is re-read after a restart at worst. */
        atomic_fetch_add_explicit(&s->consume_errors, 1, memory_order_relaxed);
    }
    if (n == 0)
        return 0;
    cs_worker *wk = cs_engine_worker(s->e, w);
    int processed = 0;
    int64_t now = cs_wall_ms();
    for (size_t i = 0; i < n;) {
        const wrec *m = &b->recs[i];
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (s->c.drain)
                drain_eof(s, m);
            i++;
            continue;
        }
        if (m->err) {
            atomic_fetch_add_explicit(&s->consume_errors, 1, memory_order_relaxed);
            i++;
            continue;
        }
        int part = -1;
        if (m->t >= 0 && m->partition >= 0 && m->partition < MAX_PARTITIONS_PER_TOPIC)
            /* acquire: pairs with the release in set_part_of */
            part = atomic_load_explicit(&s->part_of[m->t][m->partition], memory_order_acquire);
        /* the run of consecutive messages of the same partition */
        size_t j = i;
        while (j < n && !b->recs[j].err && b->recs[j].t == m->t &&
               b->recs[j].partition == m->partition)
            j++;
        if (part >= 0 && cs_engine_part_owner(s->e, part) == w) {
            int64_t next = cs_worker_next_offset(wk, part);
            int64_t end = s->c.drain ? s->by_part[part]->end : INT64_MAX;
            size_t k = 0;
            for (size_t q = i; q < j; q++) {
                const wrec *x = &b->recs[q];
                if (next >= 0 && x->offset < next) {
                    atomic_fetch_add_explicit(&s->redelivered, 1, memory_order_relaxed);
                    continue;
                }
                if (x->offset >= end) {
                    atomic_fetch_add_explicit(&s->past_end, 1, memory_order_relaxed);
                    continue;
                }
                b->run[k++] = (cs_msg){b->arena + x->off, x->len, x->ts >= 0 ? x->ts : now,
                                       x->offset};
            }
            if (k) {
                cs_worker_process_padded(wk, part, b->run, k); /* consume_cb padded them */
                processed += (int)k;
                if (!s->c.drain) /* its last-message time, and IDLE back to ACTIVE */
                    cs_engine_part_heard(s->e, part, &s->by_part[part]->last_msg_ms, now);
                if (s->c.drain && cs_worker_next_offset(wk, part) >= end &&
                    cs_engine_part_state(s->e, part) != CS_PART_DONE) {
                    cs_engine_set_part_state(s->e, part, CS_PART_DONE);
                    atomic_fetch_add_explicit(&s->ndone, 1, memory_order_relaxed);
                }
            }
        }
        i = j;
    }
    return processed;
}

void cs_source_wake(cs_source *s, int w)
{
    rd_kafka_queue_yield(s->wq[w]);
}

int cs_source_drained(cs_source *s)
{
    return s->c.drain && atomic_load_explicit(&s->ndone, memory_order_relaxed) >= s->ndrain;
}

void cs_source_update_idle(cs_source *s, int64_t now, int64_t idle_ms)
{
    for (size_t i = 0; i < s->ntps; i++) {
        tp *x = &s->tps[i];
        if (x->part < 0)
            continue;
        cs_engine_part_quiet(s->e, x->part, &x->last_msg_ms, now, idle_ms);
    }
}

size_t cs_source_assigned(cs_source *s, cs_source_tp *out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < s->ntps && n < max; i++)
        if (s->tps[i].part >= 0)
            out[n++] = (cs_source_tp){s->topics[s->tps[i].topic], s->tps[i].partition,
                                      s->tps[i].part};
    return n;
}

void cs_source_commit(cs_source *s, const cs_source_tp *tps, const int64_t *next, size_t n,
                      int sync)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++)
        if (next[i] >= 0)
            rd_kafka_topic_partition_list_add(l, tps[i].topic, tps[i].partition)->offset =
                next[i];
    /* through handle 0 whatever handle fetches the partition: in drain mode no handle is a group
     * member, and a commit of explicit offsets needs none; live, handle 0 is the member, and the
     * coordinator checks the member and generation of a commit, not which partitions it holds */
    if (l->cnt) {
        rd_kafka_resp_err_t err = rd_kafka_commit(s->rk, l, !sync);
        if (err)
            slog(s, 4, "commit: %s", rd_kafka_err2str(err));
    }
    rd_kafka_topic_partition_list_destroy(l);
}

int64_t cs_source_high_watermark(cs_source *s, const char *topic, int32_t partition)
{
    int64_t lo = -1, hi = -1;
    /* cached from the fetch responses of the handle that fetches the partition */
    int t = topic_index(s, topic);
    tp *x = t >= 0 ? tp_get(s, t, partition, 0) : NULL;
    rd_kafka_t *rk = x ? s->hk[x->handle] : s->rk;
    if (rd_kafka_get_watermark_offsets(rk, topic, partition, &lo, &hi) != 0)
        return -1;
    return hi;
}

void cs_source_pause(cs_source *s, int pause)
{
    int n = 0;
    for (int h = 0; h < s->nh; h++) {
        rd_kafka_topic_partition_list_t *l = NULL;
        rd_kafka_resp_err_t err = rd_kafka_assignment(s->hk[h], &l);
        if (err || !l)
            continue;
        if (pause)
            rd_kafka_pause_partitions(s->hk[h], l);
        else
            rd_kafka_resume_partitions(s->hk[h], l);
        n += l->cnt;
        rd_kafka_topic_partition_list_destroy(l);
    }
    slog(s, 4, "%s %d partition(s)", pause ? "paused" : "resumed", n);
}

void cs_source_dead_letter(cs_source *s, const cs_msg *m, const char *reason)
{
    if (!s->dlq)
        return;
    rd_kafka_resp_err_t err = rd_kafka_producev(
        s->dlq, RD_KAFKA_V_TOPIC(s->c.dead_letter_topic),
        RD_KAFKA_V_VALUE((void *)m->payload, m->len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADER("clickstage-invalid-reason", reason, -1), RD_KAFKA_V_END);
    if (!err)
        atomic_fetch_add_explicit(&s->dead_lettered, 1, memory_order_relaxed);
}

void cs_source_stats_get(cs_source *s, cs_source_stats *st)
{
    st->rebalances = s->rebalances;
    st->assigned = s->assigned;
    st->revoked = s->revoked;
    st->redelivered_skipped = atomic_load(&s->redelivered);
    st->past_end_skipped = atomic_load(&s->past_end);
    st->stray = atomic_load(&s->stray);
    st->consume_errors = atomic_load(&s->consume_errors);
    st->dead_lettered = atomic_load(&s->dead_lettered);
    st->dead_letter_failed = atomic_load(&s->dead_letter_failed);
    st->fetch_wakes = atomic_load_explicit(&s->fetch_wakes, memory_order_relaxed);
    st->revoked_discarded = atomic_load_explicit(&s->discarded, memory_order_relaxed);
    int n = 0;
    for (size_t i = 0; i < s->ntps; i++)
        n += s->tps[i].part >= 0;
    st->npartitions = n;
}

void cs_source_close(cs_source *s)
{
    for (int h = 0; h < s->nh; h++)
        rd_kafka_consumer_close(s->hk[h]);
}

int cs_source_auto_fetch_threads(int workers)
{
    /* one per worker, drain and live; with fetch.queue.backoff.ms (librdkafka 2.2+) a full
     * prefetch queue is looked at again after 5 ms, without it (2.0.2) the fetch wake does it.
     * See source.h. */
    return workers < 1 ? 1 : workers;
}

int cs_source_fetch_handles(const cs_source *s)
{
    return s->nh;
}

int cs_source_kafka_prop(const cs_source *s, int h, const char *key, char *buf, size_t len)
{
    if (!s || h < 0 || h >= s->nh || !s->hk[h] || !buf || !len)
        return -1;
    size_t n = len;
    return rd_kafka_conf_get(rd_kafka_conf(s->hk[h]), key, buf, &n) == RD_KAFKA_CONF_OK ? 0
                                                                                       : -1;
}

int cs_source_part_handle(cs_source *s, int part)
{
    if (part < 0 || part >= CS_MAX_PARTITIONS || !s->by_part[part])
        return -1;
    return s->by_part[part]->handle;
}
