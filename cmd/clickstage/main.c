/* clickstage — the daemon: Kafka in, exactly-counted stage deltas out to Redis (SPEC §3-§5).
 *
 * Threads
 *  - N workers: each owns some partitions; loop = fetch a batch from its librdkafka queue,
 *    decode/sessionize/classify/count it (no locks, no atomics per event), tick the watermark,
 *    and answer the control thread's barrier if one is pending.
 *  - The control thread (main): serves librdkafka rebalance callbacks, signals, and every flush:
 *    a barrier collects each worker's deltas together with the next offsets that produced them
 *    (and, when due, snapshots of partitions' state), merges them, and writes them to Redis in
 *    one fenced atomic step; only then are offsets committed to Kafka. A failed flush is
 *    retried unchanged (later deltas wait in a second buffer), so nothing is lost or doubled
 *    across a Redis outage.
 *  - State moves with partitions (docs/state.md): on assignment a partition is restored from
 *    its snapshot in Redis and re-reads, without counting, what an earlier owner counted after
 *    that snapshot; on revoke and on a graceful stop it is snapshotted. A flush that Redis
 *    fences (another instance owns a partition now, or Redis lost acknowledged writes) makes
 *    this process drop all its state, leave the group and re-execute itself, so everything it
 *    owns afterwards is restored from what Redis holds.
 *
 * Exit codes: 0 clean stop or drain done; 1 bad configuration or usage; 2 could not start (rule
 * file, Kafka, Redis URL); 3 the final flush could not be written before shutdown_timeout (the
 * counts since the last flush are not in Redis and their offsets are not committed, so a restart
 * reads them again); 5 Redis lost the counts and redis_state_lost=fail.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aggregate.h"
#include "classify.h"
#include "clickstage.h"
#include "config.h"
#include "engine.h"
#include "metrics.h"
#include "util.h"
#include <xxhash.h>
#include "sink.h"
#include "snapshot.h"
#include "source.h"
#ifdef CS_HAVE_HTTP
#include "http.h"
#endif

#define MAX_ASSIGNED 4096
#define MAX_END MAX_ASSIGNED /* partitions one barrier may snapshot or release */
#define MAX_PARTS 65536 /* engine partition ids */

/* What a barrier asks of a worker for the partitions listed in a request */
enum { REQ_NONE = 0, REQ_SNAPSHOT, REQ_RELEASE };

typedef struct snapout {
    int part;
    char *data;
    size_t len;
    cs_snap_info info;
} snapout;

typedef struct wslot {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t req, ack;
    int req_parts[MAX_END]; /* partitions to snapshot (and, REQ_RELEASE, remove) */
    int n_req;
    int req_mode;
    snapout snaps[MAX_END]; /* snapshots handed over at ack */
    int n_snaps;
    cs_agg *out;            /* deltas handed over at ack */
    cs_worker_stats stats;  /* the worker's counters at ack */
    cs_agg *ret;            /* an emptied buffer going back to the worker */
} wslot;

/* Per engine partition, control thread (workers write poff/pwm of their own partitions only
 * while the control thread waits at the barrier; the slot mutex orders both). */
typedef struct pinfo {
    int64_t poff;        /* next offset whose counts were handed over (-1 none yet) */
    int64_t pwm;         /* watermark its expiry was applied to */
    int64_t redis_off;   /* what Redis holds for it after our last applied flush (-1 none) */
    int64_t last_snap_ms;
    int64_t assigned_ms;
    int replaying;
    int64_t replay_to;   /* the counted offset its replay ran to (-1 none) */
    /* offset gap check: from the first progress reported while counting, offsets and counted
     * messages advance together unless the topic has gaps (transaction markers, compaction) */
    int64_t gap_off;
    uint64_t gap_counted;
    int gap_logged;
    char *snap;          /* latest snapshot not yet in a flush (owned) */
    size_t snap_len;
} pinfo;

typedef struct flsnap { /* a snapshot riding in the flush in flight */
    cs_flush_snap s;
    char *owned;
} flsnap;

static struct {
    cs_config cfg;
    char **argv;          /* for the re-exec after being fenced */
    cs_engine *e;
    cs_source *src;
    cs_sink *sink;       /* the flusher's connection */
    cs_sink *sink_meta;  /* offsets look-ups on assignment (own connection) */
    int nw;
    pthread_t *threads;
    wslot *slots;
    pinfo *pi;            /* [MAX_PARTS] */
    _Atomic int stop_reading;
    cs_agg *next;         /* deltas collected, not yet in a flush */
    cs_agg *inflight;     /* the flush being written (retried unchanged until it lands) */
    int has_inflight;
    uint64_t seq;
    cs_source_tp tps[MAX_ASSIGNED];
    int64_t offs[MAX_ASSIGNED];
    size_t ntps;          /* offsets of the flush in flight */
    cs_flush_offset fo[MAX_ASSIGNED];
    flsnap fsnaps[MAX_ASSIGNED];
    size_t nfsnaps;       /* snapshots of the flush in flight */
    int64_t last_ok_ms;
    int paused;
    int fenced;           /* a flush was fenced: drop everything, rejoin (re-exec) */
    int fatal;            /* exit code to stop with, without writing anything (5) */
    uint64_t reloads_ok, reloads_failed;
    cs_agg *totals;       /* every delta since start: the metrics' counters */
    cs_metrics m;         /* filled by the control thread, published to D.box */
    cs_metrics_box box;
    _Atomic uint64_t *loops;      /* per worker: loops completed (liveness) */
    _Atomic int64_t *last_loop_ms;
} D;

static volatile sig_atomic_t g_term, g_hup;

/* ---- logging: one JSON object per line (or text), never per event -------------------------- */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

static void logv(int level, const char *fmt, va_list ap)
{
    if (level > D.cfg.log_level)
        return;
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    static const char *names[8] = {"fatal", "fatal", "fatal", "error", "warn", "info", "info",
                                   "debug"};
    const char *lv = names[level < 0 ? 0 : level > 7 ? 7 : level];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[64];
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    pthread_mutex_lock(&log_mu);
    if (D.cfg.log_format == 1) {
        fprintf(stderr, "%s %-5s %s\n", when, lv, msg);
    } else {
        fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"", when, lv);
        for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
            if (*p == '"' || *p == '\\')
                fprintf(stderr, "\\%c", *p);
            else if (*p < 0x20)
                fprintf(stderr, "\\u%04x", *p);
            else
                fputc(*p, stderr);
        }
        fprintf(stderr, "\"}\n");
    }
    pthread_mutex_unlock(&log_mu);
}

static void logf_(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    logv(level, fmt, ap);
    va_end(ap);
}

static void log_cb(void *opaque, int level, const char *msg)
{
    logf_(level, "%s", msg);
}

/* ---- workers --------------------------------------------------------------------------------- */

/* Progress (next offset, applied watermark) of every partition a worker owns, copied at the
 * barrier, so they match the deltas handed over with them. */
static void record_progress(int w)
{
    cs_worker *wk = cs_engine_worker(D.e, w);
    cs_source_tp tps[MAX_ASSIGNED];
    size_t n = cs_source_assigned(D.src, tps, MAX_ASSIGNED);
    for (size_t i = 0; i < n; i++) {
        int part = tps[i].part;
        if (cs_engine_part_owner(D.e, part) != w)
            continue;
        pinfo *pi = &D.pi[part];
        cs_worker_part_progress(wk, part, &pi->poff, &pi->pwm);
        int r = cs_engine_part_replaying(D.e, part);
        if (pi->replaying && !r) {
            double secs = (double)(cs_mono_ms() - pi->assigned_ms) / 1000.0;
            D.m.last_replay_seconds = secs;
            logf_(6, "%s[%d]: replayed up to the counted offset %lld %.3f s after its "
                     "assignment; counting again", tps[i].topic, tps[i].partition,
                  (long long)pi->replay_to, secs);
        }
        pi->replaying = r;
        uint64_t counted = cs_worker_part_counted(wk, part);
        if (!r && pi->poff >= 0 && pi->gap_off < 0) {
            pi->gap_off = pi->poff;
            pi->gap_counted = counted;
        } else if (!r && pi->gap_off >= 0 && !pi->gap_logged &&
                   (uint64_t)(pi->poff - pi->gap_off) != counted - pi->gap_counted) {
            pi->gap_logged = 1;
            logf_(4, "%s[%d]: offsets advanced from %lld to %lld but %llu message(s) were "
                     "counted (gaps in the topic: transaction markers or compaction)",
                  tps[i].topic, tps[i].partition, (long long)pi->gap_off, (long long)pi->poff,
                  (unsigned long long)(counted - pi->gap_counted));
        }
    }
}

/* The barrier's work on worker w's thread (or the control thread once workers are joined):
 * snapshots (and releases) what was asked, then hands over deltas and progress. */
static void serve_request(int w, wslot *s)
{
    cs_worker *wk = cs_engine_worker(D.e, w);
    s->n_snaps = 0;
    for (int i = 0; i < s->n_req; i++) {
        int part = s->req_parts[i];
        if (cs_engine_part_owner(D.e, part) != w)
            continue;
        snapout *o = &s->snaps[s->n_snaps];
        if (cs_worker_snapshot_part(wk, part, &o->data, &o->len, &o->info) == 0) {
            o->part = part;
            s->n_snaps++;
        }
        if (s->req_mode == REQ_RELEASE) {
            cs_worker_part_progress(wk, part, &D.pi[part].poff, &D.pi[part].pwm);
            cs_engine_remove_partition(D.e, part); /* by its owner: nobody else touches it */
        }
    }
    s->n_req = 0;
    record_progress(w);
    cs_worker_stats_get(wk, &s->stats);
    s->out = cs_worker_take_agg(wk);
}

static void service_slot(int w)
{
    wslot *s = &D.slots[w];
    cs_worker *wk = cs_engine_worker(D.e, w);
    pthread_mutex_lock(&s->mu);
    if (s->ret) {
        cs_worker_give_agg(wk, s->ret);
        s->ret = NULL;
    }
    if (s->req != s->ack) {
        serve_request(w, s);
        s->ack = s->req;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
}

static void *worker_main(void *arg)
{
    int w = (int)(intptr_t)arg;
    cs_worker *wk = cs_engine_worker(D.e, w);
    while (!atomic_load_explicit(&D.stop_reading, memory_order_relaxed)) {
        cs_source_fetch_process(D.src, w, 100);
        cs_worker_tick(wk);
        service_slot(w);
        /* relaxed: liveness only; read by the control thread for /healthz */
        atomic_fetch_add_explicit(&D.loops[w], 1, memory_order_relaxed);
        atomic_store_explicit(&D.last_loop_ms[w], cs_wall_ms(), memory_order_relaxed);
    }
    return NULL;
}

/* ---- flushes --------------------------------------------------------------------------------- */

/* A snapshot handed over at a barrier waits for the next flush; a newer one of the same
 * partition replaces it. */
static void take_snaps(wslot *s)
{
    for (int i = 0; i < s->n_snaps; i++) {
        snapout *o = &s->snaps[i];
        pinfo *p = &D.pi[o->part];
        free(p->snap);
        p->snap = o->data;
        p->snap_len = o->len;
    }
    s->n_snaps = 0;
}

/* Barrier: every worker hands over its deltas (after snapshotting, and for REQ_RELEASE
 * removing, the partitions in `parts`), merged into D.next. */
static void collect(const int *parts, size_t nparts, int mode)
{
    for (int w = 0; w < D.nw; w++) {
        wslot *s = &D.slots[w];
        pthread_mutex_lock(&s->mu);
        s->n_req = 0;
        for (size_t i = 0; i < nparts && i < MAX_END; i++)
            if (cs_engine_part_owner(D.e, parts[i]) == w)
                s->req_parts[s->n_req++] = parts[i];
        s->req_mode = mode;
        s->req++;
        pthread_mutex_unlock(&s->mu);
        cs_source_wake(D.src, w);
    }
    for (int w = 0; w < D.nw; w++) {
        wslot *s = &D.slots[w];
        pthread_mutex_lock(&s->mu);
        while (s->ack != s->req)
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->out) {
            cs_agg_merge(D.next, s->out);
            cs_agg_merge(D.totals, s->out);
            s->ret = s->out;
            s->out = NULL;
        }
        take_snaps(s);
        pthread_mutex_unlock(&s->mu);
    }
}

/* The same without threads (they are joined): the control thread owns every worker now.
 * end_reason >= 0 ends every open session first (drain); snapshot: every partition. */
static void collect_joined(int end_reason, int snapshot)
{
    cs_source_tp tps[MAX_ASSIGNED];
    size_t n = cs_source_assigned(D.src, tps, MAX_ASSIGNED);
    for (int w = 0; w < D.nw; w++) {
        cs_worker *wk = cs_engine_worker(D.e, w);
        if (end_reason >= 0)
            cs_worker_end_all(wk, end_reason);
        wslot *s = &D.slots[w];
        s->n_req = 0;
        s->req_mode = REQ_SNAPSHOT;
        for (size_t i = 0; snapshot && i < n && s->n_req < MAX_END; i++)
            if (cs_engine_part_owner(D.e, tps[i].part) == w)
                s->req_parts[s->n_req++] = tps[i].part;
        serve_request(w, s);
        if (s->out) {
            cs_agg_merge(D.next, s->out);
            cs_agg_merge(D.totals, s->out);
            cs_worker_give_agg(wk, s->out);
            s->out = NULL;
        }
        take_snaps(s);
    }
}

/* Partitions whose periodic snapshot is due (or that have none in Redis yet). */
static size_t due_snapshots(int *out, size_t max, int64_t now)
{
    if (D.cfg.snapshot_interval_ms <= 0)
        return 0;
    cs_source_tp tps[MAX_ASSIGNED];
    size_t n = cs_source_assigned(D.src, tps, MAX_ASSIGNED), k = 0;
    for (size_t i = 0; i < n && k < max; i++) {
        pinfo *p = &D.pi[tps[i].part];
        if (!p->replaying && now - p->last_snap_ms >= D.cfg.snapshot_interval_ms) {
            out[k++] = tps[i].part;
            p->last_snap_ms = now;
        }
    }
    return k;
}

static void free_flush_snaps(void)
{
    for (size_t i = 0; i < D.nfsnaps; i++)
        free(D.fsnaps[i].owned);
    D.nfsnaps = 0;
}

static size_t snapshot_offsets(void)
{
    cs_source_tp tps[MAX_ASSIGNED];
    size_t n = cs_source_assigned(D.src, tps, MAX_ASSIGNED), k = 0;
    free_flush_snaps();
    for (size_t i = 0; i < n; i++) {
        pinfo *p = &D.pi[tps[i].part];
        if (p->snap && D.nfsnaps < MAX_ASSIGNED) {
            flsnap *x = &D.fsnaps[D.nfsnaps++];
            x->s = (cs_flush_snap){tps[i].topic, tps[i].partition, p->snap, p->snap_len};
            x->owned = p->snap;
            p->snap = NULL;
        }
        if (p->poff < 0)
            continue;
        D.tps[k] = tps[i];
        D.offs[k] = p->poff;
        D.fo[k] = (cs_flush_offset){tps[i].topic, tps[i].partition, p->poff, 1, p->redis_off,
                                    p->pwm};
        k++;
    }
    return k;
}

/* The flush was fenced: decide between "Redis lost the counts" and "another writer". */
static void on_fenced(const char *detail)
{
    D.m.fenced++;
    int lost = strstr(detail, "= ") != NULL || (strlen(detail) > 0 && detail[strlen(detail) - 1] == '=');
    if (lost) {
        D.m.state_lost++;
        if (D.cfg.redis_state_lost == CS_STATE_LOST_FAIL) {
            logf_(3, "Redis lost the counts of partitions it had acknowledged (now holds: %s); "
                     "stopping without writing (redis_state_lost=fail)", detail);
            D.fatal = 5;
            return;
        }
        logf_(3, "Redis lost the counts of partitions it had acknowledged (now holds: %s); "
                 "fenced: dropping all state and rejoining, partitions without offsets in "
                 "Redis are counted again from the oldest retained message "
                 "(redis_state_lost=rebuild)", detail);
    } else {
        logf_(3, "fenced: Redis holds offsets this instance did not write (%s): another "
                 "instance owns those partitions now, or Redis lost writes; dropping all state "
                 "and rejoining the group", detail);
    }
    D.fenced = 1;
}

/* Tries to write the flush in flight, starting a new one from D.next if none is. With nothing
 * new (no delta, same offsets) it writes nothing, except a heartbeat flush every 5 s so that
 * meta.updated_ms and the updates channel show the pipeline is alive. */
static int try_flush(int force)
{
    if (!D.has_inflight && !force && D.next->changes == 0 &&
        cs_wall_ms() - D.last_ok_ms < 5000)
        return 0;
    if (!D.has_inflight) {
        cs_agg *t = D.inflight;
        D.inflight = D.next;
        D.next = t;
        D.ntps = snapshot_offsets();
        D.seq++;
        D.has_inflight = 1;
    }
    int64_t now = cs_wall_ms();
    if (!cs_sink_ready(D.sink, now))
        return -1;
    cs_flush_snap snaps[MAX_ASSIGNED];
    for (size_t i = 0; i < D.nfsnaps; i++)
        snaps[i] = D.fsnaps[i].s;
    cs_flush f = {D.seq, D.inflight, cs_engine_rules(D.e), cs_engine_dicts(D.e), D.fo, D.ntps,
                  snaps, D.nfsnaps, now};
    char err[512];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = cs_sink_flush(D.sink, &f, err, sizeof err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    D.m.flush_count++;
    D.m.flush_seconds_sum += secs;
    for (int b = 0; b < CS_METRICS_FLUSH_BUCKETS; b++)
        if (secs <= cs_metrics_flush_le[b])
            D.m.flush_bucket[b]++;
    if (rc == CS_SINK_FENCED) {
        on_fenced(cs_sink_fence_detail(D.sink));
        return -1;
    }
    if (rc != 0) {
        D.m.flushes_failed++;
        return -1;
    }
    D.m.flushes_ok++;
    D.m.flush_seq = D.seq;
    for (size_t i = 0; i < D.ntps; i++)
        D.pi[D.tps[i].part].redis_off = D.offs[i];
    for (size_t i = 0; i < D.nfsnaps; i++) {
        D.m.snapshots_written++;
        D.m.snapshot_bytes_written += D.fsnaps[i].s.len;
    }
    free_flush_snaps();
    cs_source_commit(D.src, D.tps, D.offs, D.ntps, 0);
    cs_agg_reset(D.inflight);
    D.has_inflight = 0;
    D.last_ok_ms = now;
    if (D.paused) {
        cs_source_pause(D.src, 0);
        D.paused = 0;
    }
    return 0;
}

/* Flushes until everything collected so far is written, or gives up at the deadline. */
static int flush_until(int64_t deadline_ms)
{
    for (;;) {
        if (D.fenced || D.fatal)
            return -1;
        if (try_flush(1) == 0 && D.next->changes == 0)
            return 0;
        if (cs_wall_ms() > deadline_ms)
            return -1;
        usleep(20000);
    }
}

/* ---- metrics ------------------------------------------------------------------------------- */

static void fill_metrics(void)
{
    cs_metrics *m = &D.m;
    const cs_ruleset *rs = cs_engine_rules(D.e);
    int64_t now = cs_wall_ms();
    m->now_ms = now;
    snprintf(m->journey, sizeof m->journey, "%s", cs_rules_journey(rs));
    m->nstages = cs_rules_nstages(rs);
    for (int i = 0; i < m->nstages; i++)
        snprintf(m->stages[i], sizeof m->stages[i], "%s", cs_rules_stage_name(rs, i));
    snprintf(m->rules_sha256, sizeof m->rules_sha256, "%s", cs_rules_sha256(rs));
    m->drain = D.cfg.drain;
    m->flush_interval_ms = D.cfg.flush_interval_ms;
    const cs_agg *t = D.totals;
    for (int i = 0; i < m->nstages; i++)
        m->events_by_stage[i] = (uint64_t)t->events[i];
    m->events_unclassified = (uint64_t)t->unclassified;
    m->events_late = (uint64_t)t->late;
    uint64_t inv = 0;
    for (int r = 0; r < CS_INV__COUNT; r++) {
        m->invalid[r] = (uint64_t)t->invalid[r];
        inv += m->invalid[r];
    }
    m->sessions_started = (uint64_t)t->started;
    m->sessions_ended = (uint64_t)t->ended_n;
    m->sessions_open = t->started - t->ended_n;
    uint64_t msgs = 0, cust = 0, sb = 0, cb = 0, replayed = 0, multi = 0;
    for (int w = 0; w < D.nw; w++) {
        replayed += D.slots[w].stats.replayed;
        multi += D.slots[w].stats.multi_partition;
        msgs += D.slots[w].stats.messages;
        cust += D.slots[w].stats.customers;
        sb += D.slots[w].stats.session_bytes;
        cb += D.slots[w].stats.customer_bytes;
    }
    (void)inv;
    m->replayed_messages = replayed;
    m->multi_partition_customers = multi;
    m->messages_total = msgs;
    m->customers_tracked = cust;
    m->session_bytes = sb;
    m->customer_bytes = cb;
    m->watermark_ms = cs_engine_watermark(D.e);
    cs_sink_stats ss;
    cs_sink_stats_get(D.sink, &ss);
    m->redis_commands = ss.commands;
    m->redis_reconnects = ss.reconnects;
    m->redis_up = ss.connected;
    m->last_flush_ok_ms = D.last_ok_ms;
    cs_source_stats st;
    cs_source_stats_get(D.src, &st);
    m->rebalances = st.rebalances;
    m->partitions_assigned = st.assigned;
    m->partitions_revoked = st.revoked;
    m->redelivered_skipped = st.redelivered_skipped;
    m->dead_lettered = st.dead_lettered;
    m->consume_errors = st.consume_errors;
    cs_source_tp tps[MAX_ASSIGNED];
    size_t n = cs_source_assigned(D.src, tps, MAX_ASSIGNED);
    m->npartitions = 0;
    m->replaying_partitions = 0;
    for (size_t i = 0; i < n; i++)
        m->replaying_partitions += D.pi[tps[i].part].replaying;
    for (size_t i = 0; i < n && i < CS_METRICS_MAX_PARTS; i++) {
        cs_metrics_part *p = &m->parts[m->npartitions++];
        snprintf(p->topic, sizeof p->topic, "%s", tps[i].topic);
        p->partition = tps[i].partition;
        p->next_offset = D.pi[tps[i].part].poff;
        p->high_watermark = cs_source_high_watermark(D.src, tps[i].topic, tps[i].partition);
        p->lag = p->high_watermark >= 0 && p->next_offset >= 0 ? p->high_watermark - p->next_offset
                                                               : -1;
        p->watermark_ms = cs_engine_part_watermark(D.e, tps[i].part);
        p->state = cs_engine_part_state(D.e, tps[i].part);
    }
    m->paused = D.paused;
    m->reloads_ok = D.reloads_ok;
    m->reloads_failed = D.reloads_failed;
    m->nworkers = D.nw < CS_METRICS_MAX_WORKERS ? D.nw : CS_METRICS_MAX_WORKERS;
    int healthy = 1;
    for (int w = 0; w < m->nworkers; w++) {
        m->worker_loops[w] = atomic_load_explicit(&D.loops[w], memory_order_relaxed);
        m->worker_last_loop_ms[w] = atomic_load_explicit(&D.last_loop_ms[w], memory_order_relaxed);
        if (!atomic_load(&D.stop_reading) && now - m->worker_last_loop_ms[w] > 10000)
            healthy = 0;
    }
    m->healthy = healthy;
    m->ready = (D.cfg.drain || m->npartitions > 0) && now - D.last_ok_ms < 10000;
    cs_metrics_publish(&D.box, m);
}

/* ---- source callbacks ------------------------------------------------------------------------ */

/* A partition arrives: restore it from what Redis holds (docs/state.md).
 *  - offsets + a valid snapshot at S <= C: load it, read from S, re-read S..C without counting;
 *  - offsets, no usable snapshot: rebuild from the oldest retained message up to C, uncounted;
 *  - no offsets, but the group committed one: Redis lost the counts (redis_state_lost);
 *  - neither: a fresh partition, auto.offset.reset. */
static int on_assign(void *opaque, const char *topic, int32_t partition, int worker,
                     int64_t committed, int64_t *start)
{
    char err[512];
    const cs_ruleset *rs = cs_engine_rules(D.e);
    const char *journey = cs_rules_journey(rs);
    int64_t delay = 100;
    cs_part_saved sv;
    int64_t t0 = cs_mono_ms();
    while (cs_sink_load_part(D.sink_meta, journey, topic, partition, &sv, err, sizeof err) != 0) {
        if (atomic_load(&D.stop_reading) || g_term || D.fatal)
            return -1;
        logf_(4, "%s[%d]: cannot read its state from Redis (%s); retrying", topic, partition,
              err);
        usleep((useconds_t)delay * 1000);
        delay = delay * 2 > 5000 ? 5000 : delay * 2;
    }
    int part;
    int64_t redis_off = -1, snap_off = -1;
    int replaying = 0;
    if (!sv.has_offset && committed >= 0) {
        D.m.state_lost++;
        if (D.cfg.redis_state_lost == CS_STATE_LOST_FAIL) {
            logf_(3, "%s[%d]: Redis has no offset for it but the group committed offset %lld: "
                     "Redis lost the counts; stopping (redis_state_lost=fail)", topic,
                  partition, (long long)committed);
            free(sv.snap);
            D.fatal = 5;
            return -1;
        }
        logf_(3, "%s[%d]: Redis has no offset for it but the group committed offset %lld: "
                 "Redis lost the counts; counting the partition again from its oldest "
                 "retained message (redis_state_lost=rebuild)", topic, partition,
              (long long)committed);
        free(sv.snap);
        part = cs_engine_add_partition(D.e, worker);
        *start = CS_START_BEGINNING;
    } else if (!sv.has_offset) {
        free(sv.snap);
        part = cs_engine_add_partition(D.e, worker);
        *start = CS_START_RESET;
    } else {
        redis_off = sv.offset;
        int64_t wm = sv.has_wm ? sv.wm : INT64_MIN;
        cs_pstate *st = NULL;
        cs_snap_info info = {0};
        if (sv.snap) {
            st = cs_snapshot_read(sv.snap, sv.snap_len, rs, cs_engine_dicts(D.e), &info, err,
                                  sizeof err);
            if (st && info.next_offset > sv.offset) {
                snprintf(err, sizeof err, "it is at offset %lld, beyond the counted offset %lld",
                         (long long)info.next_offset, (long long)sv.offset);
                cs_pstate_destroy(st);
                st = NULL;
            } else if (st && cs_engine_time_beyond_bound(D.e, info.max_t)) {
                snprintf(err, sizeof err, "its highest event time %lld is more than "
                         "session.max_future ahead of this clock: written without the bound",
                         (long long)info.max_t);
                cs_pstate_destroy(st);
                st = NULL;
            }
            if (!st) {
                D.m.snapshots_rejected++;
                logf_(4, "%s[%d]: snapshot rejected (%s); rebuilding its state from Kafka", topic,
                      partition, err);
            }
        }
        if (st) {
            snap_off = info.next_offset;
            part = cs_engine_add_partition_state(D.e, worker, st, snap_off, sv.offset, wm);
            *start = snap_off;
            D.m.restores++;
            D.m.restored_sessions += info.sessions;
            D.m.last_restore_seconds = (double)(cs_mono_ms() - t0) / 1000.0;
            logf_(6, "%s[%d]: restored %llu sessions and %llu customers from a %zu-byte snapshot "
                     "at offset %lld in %lld ms; re-reading %lld message(s) up to offset %lld "
                     "without counting", topic, partition, (unsigned long long)info.sessions,
                  (unsigned long long)info.customers, sv.snap_len, (long long)snap_off,
                  (long long)(cs_mono_ms() - t0), (long long)(sv.offset - snap_off),
                  (long long)sv.offset);
        } else {
            if (!sv.snap)
                logf_(4, "%s[%d]: offsets in Redis but no snapshot; rebuilding its state from "
                         "the oldest retained message up to offset %lld without counting", topic,
                      partition, (long long)sv.offset);
            part = cs_engine_add_partition_state(D.e, worker, NULL, -1, sv.offset, wm);
            *start = CS_START_BEGINNING;
        }
        replaying = part >= 0 && cs_engine_part_replaying(D.e, part);
        free(sv.snap);
    }
    if (part < 0)
        return -1;
    char label[600];
    snprintf(label, sizeof label, "%s/%d", topic, partition);
    cs_engine_set_part_label(D.e, part, (uint16_t)XXH3_64bits(label, strlen(label)));
    pinfo *p = &D.pi[part];
    free(p->snap);
    memset(p, 0, sizeof *p);
    p->poff = -1;
    p->pwm = INT64_MIN;
    p->gap_off = -1;
    p->replay_to = replaying ? redis_off : -1;
    p->redis_off = redis_off;
    p->replaying = replaying;
    p->assigned_ms = cs_mono_ms();
    /* a partition without a snapshot in Redis gets one at its next flush; the others are
     * spread over the interval so that their snapshots do not all land in one flush */
    int64_t iv = D.cfg.snapshot_interval_ms > 0 ? D.cfg.snapshot_interval_ms : 1;
    p->last_snap_ms = snap_off >= 0 ? cs_wall_ms() - (int64_t)(XXH3_64bits(label, strlen(label)) % (uint64_t)iv)
                                    : 0;
    if (*start >= 0)
        logf_(6, "assigned %s[%d] to worker %d, reading from offset %lld", topic, partition,
              worker, (long long)*start);
    else
        logf_(6, "assigned %s[%d] to worker %d, reading from %s", topic, partition, worker,
              *start == CS_START_BEGINNING ? "its oldest retained message"
                                           : "where auto_offset_reset says");
    return part;
}

static void on_revoke(void *opaque, const int *parts, size_t n)
{
    /* During the final close the workers are gone and every partition was already snapshotted
     * and flushed; after a fence or a fatal error nothing may be written. */
    if (!n || atomic_load(&D.stop_reading) || D.fenced || D.fatal)
        return;
    /* snapshot the revoked partitions, hand their final counts over, write them with their
     * offsets, then let them go: the next owner restores exactly this */
    collect(parts, n, REQ_RELEASE);
    if (flush_until(cs_wall_ms() + D.cfg.shutdown_timeout_ms) != 0 && !D.fenced && !D.fatal)
        logf_(3, "revoke: could not write the final counts of %zu partition(s) to Redis; the "
                 "next owner will re-read them from the last counted offsets", n);
}

static void dead_letter(void *opaque, const cs_msg *m, const char *reason)
{
    cs_source_dead_letter(D.src, m, reason);
}

/* ---- main ------------------------------------------------------------------------------------ */

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        g_hup = 1;
    else
        g_term = 1;
}

static void reload_rules(void)
{
    char err[1024];
    cs_ruleset *rs = cs_rules_load_file(D.cfg.rules, err, sizeof err);
    if (!rs || cs_engine_swap_rules(D.e, rs, err, sizeof err) != 0) {
        if (rs)
            cs_rules_destroy(rs);
        D.reloads_failed++;
        logf_(3, "rule reload rejected, the running table stays: %s", err);
        return;
    }
    D.reloads_ok++;
    logf_(6, "rules reloaded from %s (sha256 %s)", D.cfg.rules, cs_rules_sha256(rs));
}

int main(int argc, char **argv)
{
    extern char **environ;
    char err[1024];
    int rc = cs_config_load(&D.cfg, argc, argv, environ, stdout, err, sizeof err);
    if (rc == 1)
        return 0;
    if (rc < 0) {
        fprintf(stderr, "clickstage: %s\n", err);
        return 1;
    }
    {
        char *dump = NULL;
        size_t dlen = 0;
        FILE *df = open_memstream(&dump, &dlen);
        cs_config_dump(&D.cfg, df);
        fclose(df);
        for (char *line = strtok(dump, "\n"); line; line = strtok(NULL, "\n"))
            logf_(7, "config %s", line);
        free(dump);
    }
    cs_ruleset *rs = cs_rules_load_file(D.cfg.rules, err, sizeof err);
    if (!rs) {
        logf_(3, "rules: %s", err);
        return 2;
    }
    D.nw = D.cfg.threads > 0 ? D.cfg.threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (D.nw < 1)
        D.nw = 1;
    logf_(6, "clickstage %s starting: journey %s, %d stage(s), %d rule(s), %d worker(s), %s",
          CLICKSTAGE_VERSION, cs_rules_journey(rs), cs_rules_nstages(rs), cs_rules_nrules(rs),
          D.nw, D.cfg.drain ? "drain mode" : "live");
    D.e = cs_engine_new(rs, D.nw, err, sizeof err);
    if (!D.e) {
        logf_(3, "engine: %s", err);
        return 2;
    }
    cs_sink_conf sc = {D.cfg.redis, D.cfg.prefix, D.cfg.instance_id, 2000, 5000, 100, 5000,
                       D.cfg.minute_ttl_ms / 1000, log_cb, NULL};
    D.sink = cs_sink_new(&sc, err, sizeof err);
    cs_sink_conf sc2 = sc;
    sc2.log = NULL;
    D.sink_meta = D.sink ? cs_sink_new(&sc2, err, sizeof err) : NULL;
    if (!D.sink || !D.sink_meta) {
        logf_(3, "redis: %s", err);
        return 2;
    }
    D.slots = calloc((size_t)D.nw, sizeof *D.slots);
    D.pi = calloc(MAX_PARTS, sizeof *D.pi);
    for (int w = 0; w < D.nw; w++) {
        pthread_mutex_init(&D.slots[w].mu, NULL);
        pthread_cond_init(&D.slots[w].cv, NULL);
    }
    D.next = calloc(1, sizeof *D.next);
    D.inflight = calloc(1, sizeof *D.inflight);
    D.totals = calloc(1, sizeof *D.totals);
    cs_agg_init(D.next, rs);
    cs_agg_init(D.inflight, rs);
    cs_agg_init(D.totals, rs);
    pthread_mutex_init(&D.box.mu, NULL);
    D.m.started_ms = cs_wall_ms();
    D.loops = calloc((size_t)D.nw, sizeof *D.loops);
    D.last_loop_ms = calloc((size_t)D.nw, sizeof *D.last_loop_ms);
    for (int w = 0; w < D.nw; w++)
        atomic_store(&D.last_loop_ms[w], cs_wall_ms());
    /* sequence numbers unique across restarts of the same instance id (see sink.h) */
    D.seq = (uint64_t)cs_wall_ms() * 1000;
    D.last_ok_ms = cs_wall_ms();

    D.argv = argv;
    char client_id[300];
    snprintf(client_id, sizeof client_id, "clickstage-%s", D.cfg.instance_id);
    cs_source_conf srcc = {
        .brokers = D.cfg.brokers, .group = D.cfg.group, .topics = D.cfg.topics,
        .client_id = client_id, .extra_props = D.cfg.kafka_props,
        .group_instance_id = D.cfg.group_instance_id,
        .dead_letter_topic = D.cfg.dead_letter_topic, .earliest = D.cfg.auto_offset_reset_earliest,
        .drain = D.cfg.drain, .batch_size = D.cfg.batch_size, .on_assign = on_assign,
        .on_revoke = on_revoke, .log = log_cb, .opaque = NULL};
    D.src = cs_source_new(D.e, &srcc, err, sizeof err);
    if (!D.src) {
        logf_(3, "kafka: %s", err);
        return 2;
    }
    if (D.cfg.dead_letter_topic && *D.cfg.dead_letter_topic)
        cs_engine_set_invalid_hook(D.e, dead_letter, NULL);

    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (cs_source_start(D.src, err, sizeof err) != 0) {
        if (D.fatal)
            return D.fatal;
        logf_(3, "kafka: %s", err);
        return 2;
    }
    fill_metrics();
#ifdef CS_HAVE_HTTP
    cs_http *http = NULL;
    if (D.cfg.http_listen && *D.cfg.http_listen) {
        cs_http_conf hc = {D.cfg.http_listen, D.cfg.redis, D.cfg.prefix, cs_rules_journey(rs),
                           &D.box};
        http = cs_http_start(&hc, err, sizeof err);
        if (!http) {
            logf_(3, "http %s: %s", D.cfg.http_listen, err);
            return 2;
        }
        logf_(6, "serving /metrics, /healthz, /readyz, /api/journey and the web view on port %d",
              cs_http_port(http));
    }
#endif
    D.threads = calloc((size_t)D.nw, sizeof *D.threads);
    for (int w = 0; w < D.nw; w++)
        pthread_create(&D.threads[w], NULL, worker_main, (void *)(intptr_t)w);

    int64_t next_flush = cs_wall_ms() + D.cfg.flush_interval_ms;
    int64_t idle_ms = cs_rules_session(rs)->idle_close_ms;
    while (!g_term && !D.fenced && !D.fatal && !(D.cfg.drain && cs_source_drained(D.src))) {
        int64_t now = cs_wall_ms();
        int wait = (int)(next_flush > now ? next_flush - now : 0);
        cs_source_poll(D.src, wait < 100 ? wait : 100);
        if (g_hup) {
            g_hup = 0;
            reload_rules();
        }
        now = cs_wall_ms();
        if (now >= next_flush) {
            if (!D.cfg.drain)
                cs_source_update_idle(D.src, now, idle_ms);
            int due[MAX_END];
            size_t ndue = due_snapshots(due, MAX_END, now);
            collect(due, ndue, ndue ? REQ_SNAPSHOT : REQ_NONE);
            if (try_flush(0) != 0 && D.cfg.redis_outage_pause_ms > 0 && !D.paused &&
                now - D.last_ok_ms > D.cfg.redis_outage_pause_ms) {
                logf_(4, "counts not written for %lld ms: pausing consumption until Redis is "
                         "back", (long long)(now - D.last_ok_ms));
                cs_source_pause(D.src, 1);
                D.paused = 1;
            }
            next_flush = now + D.cfg.flush_interval_ms;
            fill_metrics();
        }
    }

    /* stop reading, finish what is in flight, snapshot (drain: end sessions), flush, commit,
     * leave. Fenced or fatal: write nothing more. */
    int draining = D.cfg.drain && !g_term && !D.fenced && !D.fatal;
    logf_(6, "%s: stopping the workers",
          D.fatal    ? "fatal error"
          : D.fenced ? "fenced"
          : draining ? "drain complete"
                     : "signal received");
    atomic_store(&D.stop_reading, 1);
    for (int w = 0; w < D.nw; w++)
        cs_source_wake(D.src, w);
    for (int w = 0; w < D.nw; w++)
        pthread_join(D.threads[w], NULL);
    for (int w = 0; w < D.nw; w++) { /* buffers handed back but not yet taken */
        if (D.slots[w].ret) {
            cs_worker_give_agg(cs_engine_worker(D.e, w), D.slots[w].ret);
            D.slots[w].ret = NULL;
        }
    }
    int ok = 0;
    if (!D.fenced && !D.fatal) {
        if (draining)
            cs_engine_set_watermark(D.e, cs_engine_final_watermark(D.e));
        /* a graceful stop keeps sessions open: their state goes to Redis as snapshots and the
         * next owner continues them */
        collect_joined(draining ? CS_END_DRAIN : -1, 1);
        int64_t deadline = cs_wall_ms() + D.cfg.shutdown_timeout_ms;
        ok = flush_until(deadline) == 0;
        if (ok) /* the offsets of the last flush, now all written: commit them synchronously */
            cs_source_commit(D.src, D.tps, D.offs, D.ntps, 1);
    }
    cs_sink_stats sst;
    cs_sink_stats_get(D.sink, &sst);
    cs_source_stats srs;
    cs_source_stats_get(D.src, &srs);
    if (D.fenced)
        logf_(4, "fenced: re-executing to rejoin the group with fresh state");
    else if (!D.fatal)
        logf_(ok ? 6 : 3,
          "%s: %llu flushes, %llu redis commands, %llu redelivered skipped, %llu stray",
          ok ? "stopped cleanly" : "final flush failed; counts since the last flush will be "
                                   "read again on restart",
          (unsigned long long)sst.flushes_ok, (unsigned long long)sst.commands,
          (unsigned long long)srs.redelivered_skipped, (unsigned long long)srs.stray);
#ifdef CS_HAVE_HTTP
    if (http)
        cs_http_stop(http);
#endif
    cs_source_close(D.src);
    cs_source_destroy(D.src);
    cs_sink_destroy(D.sink);
    cs_sink_destroy(D.sink_meta);
    cs_agg_free(D.next);
    cs_agg_free(D.inflight);
    cs_agg_free(D.totals);
    free(D.next);
    free(D.inflight);
    free(D.totals);
    free((void *)D.loops);
    free((void *)D.last_loop_ms);
    for (int p = 0; p < MAX_PARTS; p++)
        free(D.pi[p].snap);
    free_flush_snaps();
    free(D.pi);
    free(D.slots);
    free(D.threads);
    cs_engine_destroy(D.e);
    cs_config_free(&D.cfg);
    if (D.fatal)
        return D.fatal;
    if (D.fenced) {
        /* a clean slate: the same program, arguments and environment, rejoining the group;
         * every partition it gets is restored from what Redis holds */
        fflush(NULL);
        execv("/proc/self/exe", D.argv);
        fprintf(stderr, "clickstage: fenced: re-executing failed (%s); exiting\n",
                strerror(errno));
        return 4;
    }
    return ok ? 0 : 3;
}
