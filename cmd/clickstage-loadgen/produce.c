/* produce.c — the producer threads (lg.h).
 *
 * Contract
 *  - Thread i owns the partitions p with p % nthreads == i: it generates their streams itself
 *    (cs_gen_pstream, from the shared read-only plan) and produces them through its own
 *    rd_kafka_t. So a partition's bytes and their order are the generator's, whatever the
 *    thread count, and no two threads touch one partition, one producer handle or one
 *    partition's tracking slot.
 *  - Within a thread, the partition whose next message has the smallest merge key goes next,
 *    LG_BATCH messages at a time: the partitions advance together (their event times stay
 *    within seconds), and one partition's generator state and librdkafka queue stay hot for a
 *    run of messages. Pacing is by merge key, which is about the message's position in the
 *    whole stream: message with key K of a segment [from, to) at rate R is due at
 *    t0 + (K - from) / R, on every thread, so all threads together send at R.
 *  - Delivery reports are served by the owning thread (rd_kafka_poll after each batch, and
 *    while it waits between segments) and, at the end, by lg_prod_flush on the main thread:
 *    the callback's shared updates are atomic (max of the offset, counts) or under the
 *    partition's ring mutex.
 *  - --unkeyed: one thread, the merged stream (cs_gen_next) in its order, each message to a
 *    partition picked from its position: the same placement as before issue 15.
 *
 * --producer direct (direct.c, lg_producer_pick): each thread owns an lg_direct instead of an
 * rd_kafka_t; produce_one appends to the partition's open batch, tpoll sends lingered batches and
 * reads the responses that arrived, a segment's end sends every open batch, and lg_prod_flush
 * waits until the threads' idle polls have every record answered (the sockets stay with their
 * thread). Delivered offsets come from the responses' base offsets.
 *
 * Why one librdkafka producer per thread: a librdkafka producer builds and compresses message
 * sets in one thread per broker; with one broker, one handle's throughput is one core's, and the
 * application threads would contend on its partition queues and its memory accounting.
 * Rejected: rd_kafka_produce_batch (no per-message timestamps: the Kafka timestamp is part of
 * the stream, the decoder reads it); zero-copy payloads (the copy is under 5 % of a message's
 * cost, the lifetime tracking is not); RD_KAFKA_V_TOPIC (a topic lookup by name per message:
 * the topic handle is created once per thread).
 */
#include <librdkafka/rdkafka.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "lg.h"

#define LG_BATCH 64
/* Pacing sleeps only when a message is due more than this ahead (seconds): messages go out in
 * bursts of up to a millisecond's worth, at most a millisecond early. Sleeping for each message
 * (40 us apart at 50k/s over 2 threads) cost the generator most of a core in system calls and
 * context switches, taken from the daemon it measures. */
#define LG_PACE_QUANTUM 0.001

typedef struct lg_thread {
    lg_prod *P;
    int idx;
    pthread_t th;
    int started;
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt;
    lg_direct *d;          /* --producer direct: instead of rk */
    int nmine;
    int *parts;            /* [nmine] */
    cs_gen_pstream **ps;   /* [nmine] */
    uint64_t *hi;          /* [nmine]: index bound of the current segment */
    uint64_t *nextkey;     /* [nmine]: merge key of the next message */
    uint64_t *pos;         /* [nmine]: index of the partition's next message */
    uint64_t bytes, invalid, late;
    _Atomic uint64_t delivered; /* delivery reports (only while reports are on) */
    _Atomic uint64_t failed;
    char first_error[256];
} lg_thread;

struct lg_prod {
    const cs_gen_plan *pl;
    const cs_gen_conf *gc;
    int nthreads, unkeyed, dr_all;
    int direct;            /* the direct producer (direct.c) instead of librdkafka */
    lg_dmeta *md;
    lg_track *track;
    lg_thread *t;
    /* the segment, published under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv_go, cv_done;
    uint64_t seg_id;
    int ndone, quit;
    uint64_t seg_from, seg_to;
    double seg_rate, seg_t0, seg_deadline;
    volatile int *seg_stop;
    _Atomic uint64_t sent;
    /* --unkeyed */
    cs_gen *merged;
    uint64_t merged_pos;
};

/* splitmix64's finaliser: --unkeyed's partition for a message number */
static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    lg_thread *t = opaque;
    if (m->err) {
        if (atomic_fetch_add(&t->failed, 1) == 0)
            snprintf(t->first_error, sizeof t->first_error, "%s", rd_kafka_err2str(m->err));
        return;
    }
    atomic_fetch_add_explicit(&t->delivered, 1, memory_order_relaxed);
    lg_track *tr = t->P->track;
    if (!tr || m->partition < 0 || m->partition >= tr->nparts)
        return;
    lg_ptrack *pt = &tr->p[m->partition];
    /* Usually the owning thread, but lg_prod_flush serves reports from the main thread while
     * the owner may still poll: atomic max and count. */
    int64_t want = m->offset + 1, cur = atomic_load_explicit(&pt->next_offset, memory_order_relaxed);
    while (want > cur && !atomic_compare_exchange_weak_explicit(&pt->next_offset, &cur, want,
                                                                  memory_order_release,
                                                                  memory_order_relaxed))
        ;
    atomic_fetch_add_explicit(&pt->delivered, 1, memory_order_relaxed);
    if (m->_private && pt->ring) {
        pthread_mutex_lock(&pt->mu);
        if (pt->head - pt->tail == LG_RING) { /* the watcher is far behind: drop the oldest */
            pt->tail++;
            pt->dropped++;
        }
        pt->ring[pt->head++ % LG_RING] = (lg_sample){m->offset, (int64_t)(uintptr_t)m->_private};
        pthread_mutex_unlock(&pt->mu);
    }
}

static rd_kafka_t *make_producer(const lg_kafka_opts *ko, int idx, int dr_all, lg_thread *t)
{
    char err[512], num[32], cid[64];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    snprintf(cid, sizeof cid, LG_NAME "-%d", idx);
    struct {
        const char *k, *v;
    } props[] = {
        {"bootstrap.servers", ko->brokers},
        {"client.id", cid},
        {"compression.codec", ko->compression},
        {"enable.idempotence", "true"}, /* retries never duplicate: ground truth stays exact */
        {"acks", "all"},
        /* a queue of a fraction of a second at full speed, not seconds: what waits in it is
         * malloc'ed per message (measured on the mock cluster: 1M messages queued cost more
         * CPU per event than 200k; below that no difference showed through the noise) */
        {"queue.buffering.max.messages", "200000"},
        {"queue.buffering.max.kbytes", "262144"},
        {"message.max.bytes", "2000000"},
        /* big message sets: the broker validates and appends per batch, so at full speed
         * 2 MB (lz4: ~400 KB on the wire) cost it about a third less CPU per event than 1 MB
         * (bench/RESULTS.md); uncompressed sets must stay under the broker's 1 MB limit */
        {"batch.size", strcmp(ko->compression, "none") ? "2000000" : "1000000"},
        /* without reports of successes librdkafka frees delivered messages in its own thread
         * instead of queueing each to the application: reports are needed only to watch */
        {"delivery.report.only.error", dr_all ? "false" : "true"},
    };
    for (size_t i = 0; i < sizeof props / sizeof *props; i++)
        if (rd_kafka_conf_set(conf, props[i].k, props[i].v, err, sizeof err)) {
            fprintf(stderr, LG_NAME ": %s: %s\n", props[i].k, err);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    snprintf(num, sizeof num, "%lld", (long long)ko->linger_ms);
    rd_kafka_conf_set(conf, "linger.ms", num, err, sizeof err);
    snprintf(num, sizeof num, "%lld", (long long)ko->batch);
    rd_kafka_conf_set(conf, "batch.num.messages", num, err, sizeof err);
    if (ko->extra && *ko->extra) {
        char *dup = strdup(ko->extra), *save = NULL;
        for (char *kv = strtok_r(dup, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
            char *eq = strchr(kv, '=');
            if (!eq || (*eq = 0, rd_kafka_conf_set(conf, kv, eq + 1, err, sizeof err))) {
                fprintf(stderr, LG_NAME ": --kafka %s: %s\n", kv, eq ? err : "not k=v");
                free(dup);
                rd_kafka_conf_destroy(conf);
                return NULL;
            }
        }
        free(dup);
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_opaque(conf, t);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk)
        fprintf(stderr, LG_NAME ": %s\n", err);
    return rk;
}

/* Serves delivery reports (librdkafka) or sends lingered batches and reads the responses that
 * have arrived (direct). */
static inline void tpoll(lg_thread *t, int ms)
{
    if (t->d)
        lg_direct_poll(t->d);
    else
        rd_kafka_poll(t->rk, ms);
}

/* Sleeps until lg_now() >= when (in slices, so that delivery reports keep flowing). */
static void sleep_until(lg_thread *t, double when)
{
    for (;;) {
        double d = when - lg_now();
        if (d <= 0)
            return;
        if (d > 0.002) {
            tpoll(t, 0);
            d = when - lg_now();
            if (d <= 0)
                return;
        }
        struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
        if (ts.tv_sec > 0 || ts.tv_nsec > 10000000)
            ts = (struct timespec){0, 10000000};
        nanosleep(&ts, NULL);
    }
}

/* A message handed over (to the direct producer's batch or librdkafka's queue): the thread's
 * figures and the shared sent count (relaxed: a progress figure, read for rates) */
static inline void count_sent(lg_thread *t, const cs_gen_msg *m)
{
    t->bytes += m->len;
    t->invalid += (uint64_t)m->invalid;
    t->late += (uint64_t)m->late;
    atomic_fetch_add_explicit(&t->P->sent, 1, memory_order_relaxed);
}

/* Hands one message to librdkafka (waits while its queue is full). 0, or -1 on an error. */
static int produce_one(lg_thread *t, int part, const cs_gen_msg *m, const char *key,
                       size_t keylen, void *opaque)
{
    lg_prod *P = t->P;
    if (t->d) {
        if (lg_direct_add(t->d, part, key, keylen, m->payload, m->len, m->ts_ms,
                          (int64_t)(uintptr_t)opaque) < 0)
            return -1;
        count_sent(t, m);
        return 0;
    }
    /* A full queue: without success reports nothing needs polling, so producev blocks until
     * librdkafka frees room (woken exactly then); with reports this thread must serve them,
     * so it polls instead. */
    int flags = RD_KAFKA_MSG_F_COPY | (P->dr_all ? 0 : RD_KAFKA_MSG_F_BLOCK);
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            t->rk, RD_KAFKA_V_RKT(t->rkt), RD_KAFKA_V_PARTITION(part),
            RD_KAFKA_V_KEY(key, keylen), RD_KAFKA_V_VALUE((void *)m->payload, m->len),
            RD_KAFKA_V_MSGFLAGS(flags), RD_KAFKA_V_TIMESTAMP(m->ts_ms),
            RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(t->rk, 1);
            continue;
        }
        if (e) {
            if (atomic_fetch_add(&t->failed, 1) == 0)
                snprintf(t->first_error, sizeof t->first_error, "produce: %s",
                         rd_kafka_err2str(e));
            return -1;
        }
        count_sent(t, m);
        return 0;
    }
}

/* The latency sample mark for a message of partition part: its wall time, or NULL. */
static inline void *sample_mark(lg_prod *P, int part)
{
    if (!P->track || !P->track->p[part].ring)
        return NULL;
    lg_ptrack *pt = &P->track->p[part];
    int64_t now = lg_wall_us();
    if (now - pt->last_sample_us < P->track->sample_every_us)
        return NULL;
    pt->last_sample_us = now;
    return (void *)(uintptr_t)now;
}

/* One segment on one thread (keyed). */
static void run_keyed(lg_thread *t, uint64_t from, uint64_t to, double rate, double t0,
                      double deadline, volatile int *stop)
{
    lg_prod *P = t->P;
    for (int i = 0; i < t->nmine; i++) {
        t->hi[i] = cs_gen_plan_before(P->pl, t->parts[i], to);
        t->nextkey[i] = t->pos[i] < t->hi[i] ? cs_gen_plan_key(P->pl, t->parts[i], t->pos[i])
                                              : UINT64_MAX;
    }
    double now = lg_now();
    cs_gen_msg m;
    while (!*stop) {
        int best = -1;
        for (int i = 0; i < t->nmine; i++)
            if (t->nextkey[i] != UINT64_MAX && (best < 0 || t->nextkey[i] < t->nextkey[best]))
                best = i;
        if (best < 0)
            break;
        int p = t->parts[best];
        cs_gen_pstream *s = t->ps[best];
        for (int b = 0; b < LG_BATCH && t->pos[best] < t->hi[best]; b++) {
            if (!cs_gen_pstream_next(s, &m)) {
                t->hi[best] = t->pos[best]; /* the partition's stream is over */
                break;
            }
            t->pos[best] = m.index + 1;
            if (rate > 0) {
                double due = t0 + (double)((int64_t)m.key_pos - (int64_t)from) / rate;
                if (due > now + LG_PACE_QUANTUM) {
                    now = lg_now();
                    if (due > now + LG_PACE_QUANTUM) {
                        sleep_until(t, due);
                        now = due;
                    }
                }
            }
            if (produce_one(t, p, &m, m.key, m.keylen, sample_mark(P, p)) < 0) {
                *stop = 1;
                break;
            }
        }
        t->nextkey[best] = t->pos[best] < t->hi[best] ? cs_gen_plan_key(P->pl, p, t->pos[best])
                                                      : UINT64_MAX;
        tpoll(t, 0);
        if (deadline > 0 && (now = lg_now()) >= deadline)
            break;
    }
    if (t->d) /* a segment's end: what it generated goes out now, not after linger.ms */
        lg_direct_send_all(t->d);
}

/* One segment, unkeyed: the merged stream, in its order. */
static void run_unkeyed(lg_thread *t, uint64_t from, uint64_t to, double rate, double t0,
                        double deadline, volatile int *stop)
{
    lg_prod *P = t->P;
    cs_gen_msg m;
    int nparts = P->gc->nparts;
    double now = lg_now();
    while (P->merged_pos < to && !*stop && cs_gen_next(P->merged, &m)) {
        uint64_t pos = P->merged_pos++;
        if (rate > 0) {
            double due = t0 + (double)(pos - from) / rate;
            if (due > now + LG_PACE_QUANTUM) {
                now = lg_now();
                if (due > now + LG_PACE_QUANTUM) {
                    sleep_until(t, due);
                    now = due;
                }
            }
        }
        /* by position in the stream: a stream sent in parts lands the same way */
        int part = (int)(mix64(P->gc->seed ^ pos * 0x9e3779b97f4a7c15ULL) % (uint64_t)nparts);
        if (produce_one(t, part, &m, NULL, 0, sample_mark(P, part)) < 0) {
            *stop = 1;
            break;
        }
        if ((pos & 1023) == 0) {
            tpoll(t, 0);
            if (deadline > 0 && (now = lg_now()) >= deadline)
                break;
        }
    }
    if (t->d)
        lg_direct_send_all(t->d);
}

static void *thread_main(void *arg)
{
    lg_thread *t = arg;
    lg_prod *P = t->P;
    uint64_t seen = 0;
    pthread_mutex_lock(&P->mu);
    for (;;) {
        while (!P->quit && P->seg_id == seen) {
            /* idle: keep delivery reports flowing (the watcher reads delivered offsets) */
            pthread_mutex_unlock(&P->mu);
            tpoll(t, 0);
            pthread_mutex_lock(&P->mu);
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 10000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            if (!P->quit && P->seg_id == seen)
                pthread_cond_timedwait(&P->cv_go, &P->mu, &ts);
        }
        if (P->quit)
            break;
        seen = P->seg_id;
        uint64_t from = P->seg_from, to = P->seg_to;
        double rate = P->seg_rate, t0 = P->seg_t0, deadline = P->seg_deadline;
        volatile int *stop = P->seg_stop;
        pthread_mutex_unlock(&P->mu);
        if (P->unkeyed)
            run_unkeyed(t, from, to, rate, t0, deadline, stop);
        else
            run_keyed(t, from, to, rate, t0, deadline, stop);
        pthread_mutex_lock(&P->mu);
        P->ndone++;
        pthread_cond_broadcast(&P->cv_done);
    }
    pthread_mutex_unlock(&P->mu);
    return NULL;
}

int lg_producer_pick(const lg_kafka_opts *ko)
{
    const char *want = ko->producer && *ko->producer ? ko->producer : "auto";
    int is_direct = !strcmp(want, "direct"), is_auto = !strcmp(want, "auto");
    if (!strcmp(want, "librdkafka"))
        return 0;
    if (!is_direct && !is_auto) {
        fprintf(stderr, LG_NAME ": --producer %s: direct, librdkafka or auto\n", want);
        return -1;
    }
    /* --kafka: security settings need librdkafka; anything else is librdkafka's tuning */
    int security = 0, other = 0;
    char keys[512] = ""; /* the other properties' names (never their values: secrets) */
    if (ko->extra && *ko->extra) {
        char *dup = strdup(ko->extra), *save = NULL;
        for (char *kv = strtok_r(dup, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
            char *eq = strchr(kv, '=');
            const char *v = eq ? eq + 1 : "";
            if (eq)
                *eq = 0;
            if (!strcmp(kv, "security.protocol"))
                security |= strcasecmp(v, "plaintext") != 0;
            else if (!strncmp(kv, "sasl.", 5) || !strncmp(kv, "ssl.", 4) ||
                     !strncmp(kv, "ssl_", 4))
                security = 1;
            else {
                other = 1;
                size_t n = strlen(keys);
                snprintf(keys + n, sizeof keys - n, "%s%s", n ? "," : "", kv);
            }
        }
        free(dup);
    }
    int codec_ok = !strcmp(ko->compression, "none") || !strcmp(ko->compression, "lz4");
    if (is_auto)
        return codec_ok && !security && !other;
    if (security) {
        fprintf(stderr, LG_NAME ": --producer direct speaks PLAINTEXT only; --kafka sets "
                "SASL/SSL: use --producer librdkafka (or auto)\n");
        return -1;
    }
    if (!codec_ok) {
        fprintf(stderr, LG_NAME ": --producer direct has no %s compression (none, lz4): "
                "falling back to librdkafka\n", ko->compression);
        return 0;
    }
    if (other)
        fprintf(stderr, LG_NAME ": --producer direct: --kafka %s: librdkafka's, ignored\n",
                keys);
    return 1;
}

const char *lg_prod_kind(const lg_prod *P) { return P->direct ? "direct" : "librdkafka"; }

int lg_prod_new(const lg_kafka_opts *ko, const cs_gen_plan *pl, int nthreads, int unkeyed,
                lg_track *track, lg_prod **out)
{
    const cs_gen_conf *gc = cs_gen_plan_conf(pl);
    if (unkeyed)
        nthreads = 1;
    if (nthreads > gc->nparts)
        nthreads = gc->nparts;
    if (nthreads < 1)
        nthreads = 1;
    int direct = lg_producer_pick(ko);
    if (direct < 0)
        return -1;
    if (!direct && ko->producer && !strcmp(ko->producer, "auto") &&
        strcmp(ko->compression, "none") && strcmp(ko->compression, "lz4"))
        fprintf(stderr, LG_NAME ": --compression %s: the librdkafka producer (the direct one "
                "has none and lz4)\n", ko->compression);
    lg_dmeta *md = NULL;
    if (direct) {
        char err[512];
        if (lg_dmeta_fetch(ko->brokers, ko->topic, &md, err, sizeof err) < 0) {
            fprintf(stderr, LG_NAME ": direct producer: %s\n", err);
            return -1;
        }
        if (lg_dmeta_nparts(md) != gc->nparts) {
            fprintf(stderr, LG_NAME ": direct producer: topic %s has %d partitions, not %d\n",
                    ko->topic, lg_dmeta_nparts(md), gc->nparts);
            lg_dmeta_free(md);
            return -1;
        }
    }
    lg_prod *P = calloc(1, sizeof *P);
    P->direct = direct;
    P->md = md;
    P->pl = pl;
    P->gc = gc;
    P->nthreads = nthreads;
    P->unkeyed = unkeyed;
    P->track = track;
    P->dr_all = track != NULL;
    pthread_mutex_init(&P->mu, NULL);
    pthread_cond_init(&P->cv_go, NULL);
    pthread_cond_init(&P->cv_done, NULL);
    atomic_init(&P->sent, 0);
    P->t = calloc((size_t)nthreads, sizeof *P->t);
    if (unkeyed)
        P->merged = cs_gen_new(gc);
    for (int i = 0; i < nthreads; i++) {
        lg_thread *t = &P->t[i];
        t->P = P;
        t->idx = i;
        atomic_init(&t->failed, 0);
        atomic_init(&t->delivered, 0);
        if (!unkeyed) {
            for (int p = i; p < gc->nparts; p += nthreads)
                t->nmine++;
            t->parts = calloc((size_t)t->nmine, sizeof *t->parts);
            t->ps = calloc((size_t)t->nmine, sizeof *t->ps);
            t->hi = calloc((size_t)t->nmine, sizeof *t->hi);
            t->nextkey = calloc((size_t)t->nmine, sizeof *t->nextkey);
            t->pos = calloc((size_t)t->nmine, sizeof *t->pos);
            for (int p = i, j = 0; p < gc->nparts; p += nthreads, j++) {
                t->parts[j] = p;
                t->ps[j] = cs_gen_pstream_new(pl, p);
            }
        }
        if (direct) {
            t->d = lg_direct_new(md, ko->compression, ko->linger_ms, ko->batch, track);
            if (!t->d) {
                fprintf(stderr, LG_NAME ": direct producer: no lz4 context\n");
                lg_prod_free(P);
                return -1;
            }
            continue;
        }
        t->rk = make_producer(ko, i, P->dr_all, t);
        if (!t->rk) {
            lg_prod_free(P);
            return -1;
        }
        t->rkt = rd_kafka_topic_new(t->rk, ko->topic, NULL);
    }
    for (int i = 0; i < nthreads; i++) {
        if (pthread_create(&P->t[i].th, NULL, thread_main, &P->t[i])) {
            fprintf(stderr, LG_NAME ": cannot start a producer thread\n");
            lg_prod_free(P);
            return -1;
        }
        P->t[i].started = 1;
    }
    *out = P;
    return 0;
}

/* Generates and drops what lies before `from` in each stream (a --skip run's first segment),
 * on the calling thread while the producer threads are idle. */
static void skip_to(lg_prod *P, uint64_t from)
{
    if (P->unkeyed) {
        cs_gen_msg m;
        while (P->merged_pos < from && cs_gen_next(P->merged, &m))
            P->merged_pos++;
        return;
    }
    for (int i = 0; i < P->nthreads; i++) {
        lg_thread *t = &P->t[i];
        for (int j = 0; j < t->nmine; j++) {
            uint64_t lo = cs_gen_plan_before(P->pl, t->parts[j], from);
            if (lo > t->pos[j])
                t->pos[j] += cs_gen_pstream_skip(t->ps[j], lo - t->pos[j]);
        }
    }
}

uint64_t lg_prod_segment(lg_prod *P, uint64_t from, uint64_t to, double rate, double deadline,
                         volatile int *stop)
{
    uint64_t before = lg_prod_sent(P);
    skip_to(P, from); /* a no-op unless the streams stand before `from` (--skip) */
    if (to <= from)
        return 0;
    pthread_mutex_lock(&P->mu);
    P->seg_from = from;
    P->seg_to = to;
    P->seg_rate = rate;
    P->seg_t0 = lg_now();
    P->seg_deadline = deadline;
    P->seg_stop = stop;
    P->ndone = 0;
    P->seg_id++;
    pthread_cond_broadcast(&P->cv_go);
    while (P->ndone < P->nthreads)
        pthread_cond_wait(&P->cv_done, &P->mu);
    pthread_mutex_unlock(&P->mu);
    return lg_prod_sent(P) - before;
}

uint64_t lg_prod_sent(const lg_prod *P)
{
    return atomic_load_explicit(&((lg_prod *)P)->sent, memory_order_relaxed);
}

void lg_prod_flush(lg_prod *P, int timeout_ms, lg_prod_stats *st)
{
    memset(st, 0, sizeof *st);
    double end = lg_now() + timeout_ms / 1000.0;
    uint64_t outq = 0;
    if (P->direct) {
        /* the owning threads send and read (their idle loop polls every 10 ms): wait for every
         * record to be answered, or a failure */
        for (;;) {
            uint64_t pend = 0;
            int failed = 0;
            for (int i = 0; i < P->nthreads; i++) {
                pend += lg_direct_pending(P->t[i].d);
                failed |= lg_direct_failed(P->t[i].d);
            }
            if (!pend || failed || lg_now() >= end)
                break;
            usleep(1000);
        }
        for (int i = 0; i < P->nthreads; i++) {
            lg_thread *t = &P->t[i];
            uint64_t dl, f;
            char e[256];
            lg_direct_stats(t->d, &dl, &f, e, sizeof e);
            st->bytes += t->bytes;
            st->invalid += t->invalid;
            st->late += t->late;
            st->delivered += dl;
            st->failed += f;
            if (e[0] && !st->first_error[0])
                snprintf(st->first_error, sizeof st->first_error, "%s", e);
        }
        st->sent = lg_prod_sent(P);
        if (st->first_error[0] && !st->failed) /* failed before anything was answered */
            st->failed = st->sent > st->delivered ? st->sent - st->delivered : 1;
        return;
    }
    for (int i = 0; i < P->nthreads; i++) {
        lg_thread *t = &P->t[i];
        int left = (int)((end - lg_now()) * 1000);
        rd_kafka_flush(t->rk, left > 0 ? left : 0);
        outq += (uint64_t)rd_kafka_outq_len(t->rk);
        st->bytes += t->bytes;
        st->invalid += t->invalid;
        st->late += t->late;
        uint64_t f = atomic_load(&t->failed);
        st->failed += f;
        if (f && !st->first_error[0])
            snprintf(st->first_error, sizeof st->first_error, "%s", t->first_error);
        st->delivered += atomic_load(&t->delivered);
    }
    st->sent = lg_prod_sent(P);
    if (!P->dr_all) /* only errors are reported: the rest was delivered once the queue is empty */
        st->delivered = st->sent > st->failed + outq ? st->sent - st->failed - outq : 0;
}

void lg_prod_free(lg_prod *P)
{
    if (!P)
        return;
    pthread_mutex_lock(&P->mu);
    P->quit = 1;
    pthread_cond_broadcast(&P->cv_go);
    pthread_mutex_unlock(&P->mu);
    for (int i = 0; i < P->nthreads; i++)
        if (P->t[i].started)
            pthread_join(P->t[i].th, NULL);
    for (int i = 0; i < P->nthreads; i++) {
        lg_thread *t = &P->t[i];
        if (t->rkt)
            rd_kafka_topic_destroy(t->rkt);
        if (t->rk)
            rd_kafka_destroy(t->rk);
        lg_direct_free(t->d);
        for (int j = 0; j < t->nmine; j++)
            cs_gen_pstream_destroy(t->ps[j]);
        free(t->parts);
        free(t->ps);
        free(t->hi);
        free(t->nextkey);
        free(t->pos);
    }
    cs_gen_destroy(P->merged);
    lg_dmeta_free(P->md);
    free(P->t);
    pthread_mutex_destroy(&P->mu);
    pthread_cond_destroy(&P->cv_go);
    pthread_cond_destroy(&P->cv_done);
    free(P);
}
