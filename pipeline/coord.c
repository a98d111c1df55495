/* coord.c — the delivery protocol (see coord.h for the contract, docs/state.md for the why).
 *
 * Data of one partition on its way to Redis:
 *   worker: cs_worker_process counts into the worker's cs_agg and advances the partition's
 *           progress (next offset, applied watermark)
 *   barrier (collect): every worker hands over its cs_agg and the progress of its partitions
 *           (and snapshots, when asked) in one step, so deltas and offsets match
 *   flush (try_flush): the merged deltas + offsets + snapshots -> one fenced script in Redis
 *   commit: only after Redis acknowledged, the same offsets are committed to Kafka
 */
#include "coord.h"

#include <errno.h>
#if defined(__GLIBC__) || defined(__linux__)
#include <malloc.h>
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "aggregate.h"
#include "classify.h"
#include "engine.h"
#include "log.h"
#include "sessionize.h"
#include "sink.h"
#include "snapshot.h"
#include "timeto.h"
#include "source.h"
#include "util.h"

/* What a barrier asks of a worker for the partitions listed in a request */
enum { REQ_NONE = 0, REQ_SNAPSHOT, REQ_RELEASE };

typedef struct snapout {
    int part;
    char *data;
    size_t len;
    cs_snap_info info;
} snapout;

/* One worker's side of the barrier. The control thread writes a request (req_*) and bumps
 * `req`; the worker serves it between batches and bumps `ack`; everything in between is handed
 * over under `mu` (the mutex orders the worker's writes before the control thread's reads). */
typedef struct wslot {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t req, ack;
    int req_parts[CS_MAX_PARTITIONS]; /* partitions to snapshot (and, REQ_RELEASE, remove) */
    int n_req;
    int req_mode;
    snapout snaps[CS_MAX_PARTITIONS]; /* snapshots handed over at ack */
    int n_snaps;
    cs_agg *out;            /* deltas handed over at ack */
    cs_worker_stats stats;  /* the worker's counters at ack */
    cs_agg *ret;            /* an emptied buffer going back to the worker */
} wslot;

/* Per engine partition id, control thread (workers write poff/pwm of their own partitions only
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

typedef struct wctx {
    cs_coord *c;
    int w;
} wctx;

struct cs_coord {
    cs_coord_conf cf;
    char *owned[12];       /* copies of the conf's strings */
    cs_engine *e;
    cs_source *src;
    cs_sink *sink;         /* the flusher's connection */
    cs_sink *sink_meta;    /* offsets look-ups on assignment (own connection) */
    int nw;
    pthread_t *threads;
    wctx *wctx;
    int started;
    wslot *slots;
    pinfo *pi;             /* [CS_MAX_PARTITIONS] */
    _Atomic int stop_reading;
    cs_agg *next;          /* deltas collected, not yet in a flush */
    cs_agg *inflight;      /* the flush being written (retried unchanged until it lands) */
    int has_inflight;
    uint64_t seq;
    cs_source_tp tps[CS_MAX_PARTITIONS];
    int64_t offs[CS_MAX_PARTITIONS];
    size_t ntps;           /* offsets of the flush in flight */
    cs_flush_offset fo[CS_MAX_PARTITIONS];
    flsnap fsnaps[CS_MAX_PARTITIONS];
    size_t nfsnaps;        /* snapshots of the flush in flight */
    int64_t last_ok_ms;
    int64_t next_flush_ms;
    int paused;
    int status;            /* CS_COORD_* */
    cs_agg *totals;        /* every delta since start: the metrics' counters */
    cs_metrics m;          /* filled by the control thread, published to box */
    cs_metrics_box box;
    _Atomic uint64_t *loops;       /* per worker: loops completed (liveness) */
    _Atomic uint64_t *tick_ns;     /* per worker: CPU time spent in cs_worker_tick (metrics) */
    _Atomic int64_t *last_loop_ms;
    int64_t flush_cpu_ns;  /* control thread CPU spent collecting and writing flushes */
    int trim_due;          /* partitions were let go since the last malloc_trim */
    int64_t next_trim_ms;  /* not before (CS_TRIM_INTERVAL_MS apart) */
};

/* After partitions are let go (revoke), free memory is handed back to the system with
 * malloc_trim(0), at most this often. Why: each partition's pools are allocated in chunks
 * (sessionize.c, CHUNK entries: ~270 KB a partition, touched only as far as it is used);
 * freed on revoke, they go back to glibc's arenas, and the next assignments reuse that memory
 * at other offsets and touch other pages, so RSS crept up towards the arenas' size (~145 MB at
 * 384 partitions) while the live heap stayed flat: RSS +26.8 % over a 20-minute soak, heap in
 * use at full assignment +0.1 % (bench/RESULTS.md, "Soak"). malloc_trim(0) madvises the free
 * pages of every arena away. It holds each arena's lock while it walks it (~3 ms a call in the
 * soak: the malloc_trim_* metrics), hence at most every 10 s. Rejected: bounding the arenas
 * (mallopt(M_ARENA_MAX)) does not stop the page drift inside an arena (measured, RESULTS.md). */
#define CS_TRIM_INTERVAL_MS 10000

/* ---- workers --------------------------------------------------------------------------------- */

/* Progress (next offset, applied watermark) of every partition a worker owns, copied at the
 * barrier, so they match the deltas handed over with them. */
static void record_progress(cs_coord *c, int w)
{
    cs_worker *wk = cs_engine_worker(c->e, w);
    cs_source_tp tps[CS_MAX_PARTITIONS];
    size_t n = cs_source_assigned(c->src, tps, CS_MAX_PARTITIONS);
    for (size_t i = 0; i < n; i++) {
        int part = tps[i].part;
        if (cs_engine_part_owner(c->e, part) != w)
            continue;
        pinfo *pi = &c->pi[part];
        cs_worker_part_progress(wk, part, &pi->poff, &pi->pwm);
        int r = cs_engine_part_replaying(c->e, part);
        if (pi->replaying && !r) {
            double secs = (double)(cs_mono_ms() - pi->assigned_ms) / 1000.0;
            c->m.last_replay_seconds = secs;
            CS_LOG(CS_LOG_INFO,
                   "%s[%d]: replayed up to the counted offset %lld %.3f s after its "
                   "assignment; counting again",
                   tps[i].topic, tps[i].partition, (long long)pi->replay_to, secs);
        }
        pi->replaying = r;
        uint64_t counted = cs_worker_part_counted(wk, part);
        if (!r && pi->poff >= 0 && pi->gap_off < 0) {
            pi->gap_off = pi->poff;
            pi->gap_counted = counted;
        } else if (!r && pi->gap_off >= 0 && !pi->gap_logged &&
                   (uint64_t)(pi->poff - pi->gap_off) != counted - pi->gap_counted) {
            pi->gap_logged = 1;
            CS_LOG(CS_LOG_WARN,
                   "%s[%d]: offsets advanced from %lld to %lld but %llu message(s) were "
                   "counted (gaps in the topic: transaction markers or compaction)",
                   tps[i].topic, tps[i].partition, (long long)pi->gap_off, (long long)pi->poff,
                   (unsigned long long)(counted - pi->gap_counted));
        }
    }
}

/* The barrier's work on worker w's thread (or the control thread once workers are joined):
 * snapshots (and releases) what was asked, then hands over deltas and progress. */
static void serve_request(cs_coord *c, int w, wslot *s)
{
    cs_worker *wk = cs_engine_worker(c->e, w);
    s->n_snaps = 0;
    for (int i = 0; i < s->n_req; i++) {
        int part = s->req_parts[i];
        if (cs_engine_part_owner(c->e, part) != w)
            continue;
        snapout *o = &s->snaps[s->n_snaps];
        if (cs_worker_snapshot_part(wk, part, &o->data, &o->len, &o->info) == 0) {
            o->part = part;
            s->n_snaps++;
        }
        if (s->req_mode == REQ_RELEASE) {
            cs_worker_part_progress(wk, part, &c->pi[part].poff, &c->pi[part].pwm);
            cs_engine_remove_partition(c->e, part); /* by its owner: nobody else touches it */
        }
    }
    s->n_req = 0;
    record_progress(c, w);
    cs_worker_stats_get(wk, &s->stats);
    s->out = cs_worker_take_agg(wk);
}

static void service_slot(cs_coord *c, int w)
{
    wslot *s = &c->slots[w];
    cs_worker *wk = cs_engine_worker(c->e, w);
    pthread_mutex_lock(&s->mu);
    if (s->ret) {
        cs_worker_give_agg(wk, s->ret);
        s->ret = NULL;
    }
    if (s->req != s->ack) {
        serve_request(c, w, s);
        s->ack = s->req;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
}

static void *worker_main(void *arg)
{
    wctx *x = arg;
    cs_coord *c = x->c;
    int w = x->w;
    cs_worker *wk = cs_engine_worker(c->e, w);
    /* relaxed: stop_reading is a request; the join orders everything after it */
    while (!atomic_load_explicit(&c->stop_reading, memory_order_relaxed)) {
        cs_source_fetch_process(c->src, w, 100);
        /* two clock reads per loop (per batch), not per event. The thread's CPU clock, not the
         * monotonic one: a tick preempted by another process on a busy machine took 3x longer
         * by the wall (the CI soak's tick_cost +273 % at load 6.8) without costing more; the
         * metric is the tick's cost. Two syscalls (~0.3 us) per loop. */
        int64_t t0 = cs_thread_cpu_ns();
        cs_worker_tick(wk);
        /* relaxed: a statistic, read by the control thread for the metrics */
        atomic_fetch_add_explicit(&c->tick_ns[w], (uint64_t)(cs_thread_cpu_ns() - t0),
                                  memory_order_relaxed);
        service_slot(c, w);
        /* relaxed: liveness only; read by the control thread for /healthz */
        atomic_fetch_add_explicit(&c->loops[w], 1, memory_order_relaxed);
        atomic_store_explicit(&c->last_loop_ms[w], cs_wall_ms(), memory_order_relaxed);
    }
    return NULL;
}

/* ---- the barrier ------------------------------------------------------------------------------ */

/* A snapshot handed over at a barrier waits for the next flush; a newer one of the same
 * partition replaces it. */
static void take_snaps(cs_coord *c, wslot *s)
{
    for (int i = 0; i < s->n_snaps; i++) {
        snapout *o = &s->snaps[i];
        pinfo *p = &c->pi[o->part];
        free(p->snap);
        p->snap = o->data;
        p->snap_len = o->len;
    }
    s->n_snaps = 0;
}

static void take_deltas(cs_coord *c, cs_agg *a)
{
    cs_agg_merge(c->next, a);
    /* the metrics read no per-minute counts: a running total that kept them would keep one
     * bucket for every minute of event time since the start, forever (issue 12's soak) */
    cs_agg_merge_counters(c->totals, a);
}

/* Barrier: every worker hands over its deltas (after snapshotting, and for REQ_RELEASE
 * removing, the partitions in `parts`), merged into c->next. */
static void collect(cs_coord *c, const int *parts, size_t nparts, int mode)
{
    for (int w = 0; w < c->nw; w++) {
        wslot *s = &c->slots[w];
        pthread_mutex_lock(&s->mu);
        s->n_req = 0;
        for (size_t i = 0; i < nparts && i < CS_MAX_PARTITIONS; i++)
            if (cs_engine_part_owner(c->e, parts[i]) == w)
                s->req_parts[s->n_req++] = parts[i];
        s->req_mode = mode;
        s->req++;
        pthread_mutex_unlock(&s->mu);
        cs_source_wake(c->src, w);
    }
    for (int w = 0; w < c->nw; w++) {
        wslot *s = &c->slots[w];
        pthread_mutex_lock(&s->mu);
        while (s->ack != s->req)
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->out) {
            take_deltas(c, s->out);
            s->ret = s->out;
            s->out = NULL;
        }
        take_snaps(c, s);
        pthread_mutex_unlock(&s->mu);
    }
}

/* The same without threads (they are joined): the control thread owns every worker now.
 * end_reason >= 0 ends every open session first (drain); snapshot: every partition. */
static void collect_joined(cs_coord *c, int end_reason, int snapshot)
{
    cs_source_tp tps[CS_MAX_PARTITIONS];
    size_t n = cs_source_assigned(c->src, tps, CS_MAX_PARTITIONS);
    for (int w = 0; w < c->nw; w++) {
        cs_worker *wk = cs_engine_worker(c->e, w);
        if (end_reason >= 0)
            cs_worker_end_all(wk, end_reason);
        wslot *s = &c->slots[w];
        s->n_req = 0;
        s->req_mode = REQ_SNAPSHOT;
        for (size_t i = 0; snapshot && i < n && s->n_req < CS_MAX_PARTITIONS; i++)
            if (cs_engine_part_owner(c->e, tps[i].part) == w)
                s->req_parts[s->n_req++] = tps[i].part;
        serve_request(c, w, s);
        if (s->out) {
            take_deltas(c, s->out);
            cs_worker_give_agg(wk, s->out);
            s->out = NULL;
        }
        take_snaps(c, s);
    }
}

/* Partitions whose periodic snapshot is due (or that have none in Redis yet). */
static size_t due_snapshots(cs_coord *c, int *out, size_t max, int64_t now)
{
    if (c->cf.snapshot_interval_ms <= 0)
        return 0;
    cs_source_tp tps[CS_MAX_PARTITIONS];
    size_t n = cs_source_assigned(c->src, tps, CS_MAX_PARTITIONS), k = 0;
    for (size_t i = 0; i < n && k < max; i++) {
        pinfo *p = &c->pi[tps[i].part];
        if (!p->replaying && now - p->last_snap_ms >= c->cf.snapshot_interval_ms) {
            out[k++] = tps[i].part;
            p->last_snap_ms = now;
        }
    }
    return k;
}

/* ---- flushes ---------------------------------------------------------------------------------- */

static void free_flush_snaps(cs_coord *c)
{
    for (size_t i = 0; i < c->nfsnaps; i++)
        free(c->fsnaps[i].owned);
    c->nfsnaps = 0;
}

/* The offsets (and snapshots) of the flush that starts now: every assigned partition's progress
 * as of the last barrier. */
static size_t flush_offsets(cs_coord *c)
{
    cs_source_tp tps[CS_MAX_PARTITIONS];
    size_t n = cs_source_assigned(c->src, tps, CS_MAX_PARTITIONS), k = 0;
    free_flush_snaps(c);
    for (size_t i = 0; i < n; i++) {
        pinfo *p = &c->pi[tps[i].part];
        if (p->snap && c->nfsnaps < CS_MAX_PARTITIONS) {
            flsnap *x = &c->fsnaps[c->nfsnaps++];
            x->s = (cs_flush_snap){tps[i].topic, tps[i].partition, p->snap, p->snap_len};
            x->owned = p->snap;
            p->snap = NULL;
        }
        if (p->poff < 0)
            continue;
        c->tps[k] = tps[i];
        c->offs[k] = p->poff;
        c->fo[k] = (cs_flush_offset){tps[i].topic, tps[i].partition, p->poff, 1, p->redis_off,
                                     p->pwm};
        k++;
    }
    return k;
}

/* The flush was fenced (the sink says which kind): stop writing, and either rejoin with fresh
 * state or, when Redis lost the counts and redis_state_lost = fail, stop. */
static void on_fenced(cs_coord *c)
{
    const char *detail = cs_sink_fence_detail(c->sink);
    c->m.fenced++;
    switch (cs_sink_fence_kind(c->sink)) {
    case CS_FENCE_STATE_LOST:
        c->m.state_lost++;
        if (c->cf.redis_state_lost == CS_STATE_LOST_FAIL) {
            CS_LOG(CS_LOG_ERROR,
                   "Redis lost the counts of partitions it had acknowledged (now holds: %s); "
                   "stopping without writing (redis_state_lost=fail)",
                   detail);
            c->status = CS_COORD_FATAL;
            return;
        }
        CS_LOG(CS_LOG_ERROR,
               "Redis lost the counts of partitions it had acknowledged (now holds: %s); "
               "fenced: dropping all state and rejoining, partitions without offsets in "
               "Redis are counted again from the oldest retained message "
               "(redis_state_lost=rebuild)",
               detail);
        break;
    case CS_FENCE_REDIS_BEHIND:
        CS_LOG(CS_LOG_ERROR,
               "fenced: Redis holds older offsets than this instance wrote (%s): it lost "
               "acknowledged writes (a failover to a replica that lagged, or a restart from an "
               "older AOF/RDB); dropping all state and rejoining: every partition is restored "
               "from what Redis holds, so its counts and offsets stay consistent",
               detail);
        break;
    default:
        CS_LOG(CS_LOG_ERROR,
               "fenced: Redis holds offsets this instance did not write (%s): another "
               "instance owns those partitions now; dropping all state and rejoining the group",
               detail);
        break;
    }
    c->status = CS_COORD_FENCED;
}

/* Tries to write the flush in flight, starting a new one from c->next if none is. With nothing
 * new (no delta, same offsets) it writes nothing, except a heartbeat flush every 5 s so that
 * meta.updated_ms and the updates channel show the pipeline is alive. */
static int try_flush(cs_coord *c, int force)
{
    if (!c->has_inflight && !force && c->next->changes == 0 &&
        cs_mono_ms() - c->last_ok_ms < 5000)
        return 0;
    if (!c->has_inflight) {
        cs_agg *t = c->inflight;
        c->inflight = c->next;
        c->next = t;
        c->ntps = flush_offsets(c);
        c->seq++;
        c->has_inflight = 1;
    }
    if (!cs_sink_ready(c->sink, cs_mono_ms()))
        return -1;
    cs_flush_snap snaps[CS_MAX_PARTITIONS];
    for (size_t i = 0; i < c->nfsnaps; i++)
        snaps[i] = c->fsnaps[i].s;
    cs_flush f = {c->seq, c->inflight, cs_engine_rules(c->e), cs_engine_dicts(c->e), c->fo,
                  c->ntps, snaps, c->nfsnaps, cs_wall_ms()};
    char err[512];
    int64_t t0 = cs_mono_us();
    int rc = cs_sink_flush(c->sink, &f, err, sizeof err);
    cs_metrics_observe_flush(&c->m, (double)(cs_mono_us() - t0) * 1e-6);
    if (rc == CS_SINK_FENCED) {
        on_fenced(c);
        return -1;
    }
    if (rc != 0) {
        c->m.flushes_failed++;
        return -1;
    }
    c->m.flushes_ok++;
    c->m.flush_seq = c->seq;
    for (size_t i = 0; i < c->ntps; i++)
        c->pi[c->tps[i].part].redis_off = c->offs[i];
    for (size_t i = 0; i < c->nfsnaps; i++) {
        c->m.snapshots_written++;
        c->m.snapshot_bytes_written += c->fsnaps[i].s.len;
    }
    free_flush_snaps(c);
    cs_source_commit(c->src, c->tps, c->offs, c->ntps, 0);
    cs_agg_reset(c->inflight);
    c->has_inflight = 0;
    c->last_ok_ms = cs_mono_ms();
    c->m.last_flush_ok_ms = f.now_ms;
    if (c->paused) {
        CS_LOG(CS_LOG_INFO, "redis took the flush: resuming consumption");
        cs_source_pause(c->src, 0);
        c->paused = 0;
    }
    return 0;
}

/* Flushes until everything collected so far is written, or gives up at the deadline
 * (monotonic ms). */
static int flush_until(cs_coord *c, int64_t deadline_ms)
{
    for (;;) {
        if (c->status == CS_COORD_FENCED || c->status == CS_COORD_FATAL)
            return -1;
        if (try_flush(c, 1) == 0 && c->next->changes == 0)
            return 0;
        if (cs_mono_ms() > deadline_ms)
            return -1;
        usleep(20000);
    }
}

/* ---- metrics ---------------------------------------------------------------------------------- */

/* The heap as malloc sees it (metrics heap_in_use_bytes, heap_free_bytes, malloc_arenas): the
 * live heap, to tell from RSS (the soak, bench/soak.sh). mallinfo2() walks every arena's bins
 * under its lock, malloc_info() every chunk: read at most every 1 s and 10 s, on the control
 * thread only (the statics). */
static void heap_figures(cs_metrics *m)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    static int64_t next_mi, next_arenas;
    static uint64_t in_use, free_b, arenas;
    int64_t now = cs_mono_ms();
    if (now >= next_mi) {
        struct mallinfo2 mi = mallinfo2();
        /* + the partition pools' chunks mapped outside malloc (sessionize.c) */
        in_use = (uint64_t)mi.uordblks + (uint64_t)mi.hblkhd + cs_pstate_mapped_bytes();
        free_b = (uint64_t)mi.fordblks;
        next_mi = now + 1000;
    }
    if (now >= next_arenas) { /* <heap nr="k"> once per arena in malloc_info's XML */
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (f) {
            if (malloc_info(0, f) == 0 && fflush(f) == 0) {
                uint64_t n = 0;
                for (const char *q = buf; q && (q = strstr(q, "<heap nr=")); q++)
                    n++;
                arenas = n;
            }
            fclose(f);
            free(buf);
        }
        next_arenas = now + 10000;
    }
    m->heap_in_use = in_use;
    m->heap_free = free_b;
    m->malloc_arenas = arenas;
#else
    (void)m;
#endif
}

/* malloc_trim(0) after revokes, at most every CS_TRIM_INTERVAL_MS (see struct cs_coord) */
static void maybe_trim(cs_coord *c, int64_t now)
{
#if defined(__GLIBC__)
    if (!c->trim_due || now < c->next_trim_ms)
        return;
    int64_t t0 = cs_mono_ns();
    malloc_trim(0);
    c->m.malloc_trims++;
    c->m.malloc_trim_seconds += (double)(cs_mono_ns() - t0) * 1e-9;
    c->trim_due = 0;
    c->next_trim_ms = now + CS_TRIM_INTERVAL_MS;
#else
    (void)c;
    (void)now;
#endif
}

static void fill_metrics(cs_coord *c)
{
    cs_metrics *m = &c->m;
    const cs_ruleset *rs = cs_engine_rules(c->e);
    int64_t now = cs_wall_ms();
    m->now_ms = now;
    snprintf(m->journey, sizeof m->journey, "%s", cs_rules_journey(rs));
    m->nstages = cs_rules_nstages(rs);
    for (int i = 0; i < m->nstages; i++)
        snprintf(m->stages[i], sizeof m->stages[i], "%s", cs_rules_stage_name(rs, i));
    snprintf(m->rules_sha256, sizeof m->rules_sha256, "%s", cs_rules_sha256(rs));
    m->ndims = cs_rules_ndims(rs);
    for (int d = 0; d < m->ndims && d < CS_MAX_DIMS; d++)
        snprintf(m->dims[d], sizeof m->dims[d], "%s", cs_rules_dim(rs, d)->name);
    m->drain = c->cf.drain;
    m->flush_interval_ms = c->cf.flush_interval_ms;
    const cs_agg *t = c->totals;
    for (int i = 0; i < m->nstages; i++)
        m->events_by_stage[i] = (uint64_t)t->events[i];
    m->events_unclassified = (uint64_t)t->unclassified;
    m->identity_merged = (uint64_t)t->id_merged;
    m->identity_conflicts = (uint64_t)t->id_conflicts;
    m->events_late = (uint64_t)t->late;
    for (int r = 0; r < CS_INV__COUNT; r++)
        m->invalid_by_reason[r] = (uint64_t)t->invalid[r];
    /* the journey's own counts (metrics.h: this process's deltas since start) */
    {
        int ns1 = m->nstages + 1;
        for (int i = 0; i < ns1 && i < CS_NSLOTS; i++) {
            m->j_reached[i] = t->reached[i];
            m->j_ended[i] = t->ended[i];
            m->j_active[i] = t->active[i];
        }
        cs_funnel_at_least(&t->transitions[0][0], CS_NSLOTS, m->nstages, m->j_funnel);
        m->j_started = t->started;
        for (int i = 0; i < m->nstages && i + 1 < CS_NSLOTS; i++)
            m->j_cfunnel[i] = t->cfunnel[i + 1];
        m->j_cstarted = t->cstarted;
        for (int i = 0; i < m->nstages && t->tt.time_to; i++) {
            for (int b = 0; b < CS_TT_NBUCKETS; b++) {
                m->j_time_to[i][b] = t->tt.time_to[(size_t)(i + 1) * CS_TT_NBUCKETS + (size_t)b];
                m->j_ctime_to[i][b] = t->tt.ctime_to[(size_t)(i + 1) * CS_TT_NBUCKETS + (size_t)b];
            }
            m->j_time_to_sum_ms[i] = t->tt.time_to_sum_ms[i + 1];
            m->j_ctime_to_sum_ms[i] = t->tt.ctime_to_sum_ms[i + 1];
        }
    }
    m->sessions_started = (uint64_t)t->started;
    m->sessions_ended = (uint64_t)t->ended_n;
    /* the sessions in the partitions assigned now (the workers' own count), not started -
     * ended over the process's life: that drifted with every rebalance (sessions started here
     * and ended by the partition's next owner stayed "open" here for ever; restored ones ended
     * here were subtracted without having been added; the soak saw it climb) */
    int64_t open = 0;
    uint64_t msgs = 0, cust = 0, sb = 0, cb = 0, replayed = 0, multi = 0, aliases = 0;
    for (int w = 0; w < c->nw; w++) {
        open += (int64_t)c->slots[w].stats.sessions_open;
        aliases += c->slots[w].stats.aliases;
        replayed += c->slots[w].stats.replayed;
        multi += c->slots[w].stats.multi_partition;
        msgs += c->slots[w].stats.messages;
        cust += c->slots[w].stats.customers;
        sb += c->slots[w].stats.session_bytes;
        cb += c->slots[w].stats.customer_bytes;
    }
    m->replayed_messages = replayed;
    m->multi_partition_customers = multi;
    m->identity_aliases = aliases;
    m->messages_total = msgs;
    m->customers_tracked = cust;
    m->sessions_open = open;
    m->session_bytes = sb;
    m->customer_bytes = cb;
    m->watermark_ms = cs_engine_watermark(c->e);
    cs_sink_stats ss;
    cs_sink_stats_get(c->sink, &ss);
    m->redis_commands = ss.commands;
    m->redis_reconnects = ss.reconnects;
    m->redis_redirects = ss.redirects;
    m->redis_up = ss.connected;
    memcpy(m->redis_errors_n, ss.errors, sizeof m->redis_errors_n);
    m->redis_refusal = ss.refusal;
    snprintf(m->redis_refusal_text, sizeof m->redis_refusal_text, "%s", ss.refusal_text);
    m->redis_refusal_since_ms = ss.refusal_since_ms;
    cs_source_stats st;
    cs_source_stats_get(c->src, &st);
    m->rebalances = st.rebalances;
    m->partitions_assigned = st.assigned;
    m->partitions_revoked = st.revoked;
    m->redelivered_skipped = st.redelivered_skipped;
    m->dead_lettered = st.dead_lettered;
    m->consume_errors = st.consume_errors;
    m->fetch_wakes = st.fetch_wakes;
    m->fetch_discarded = st.revoked_discarded;
    cs_source_tp tps[CS_MAX_PARTITIONS];
    size_t n = cs_source_assigned(c->src, tps, CS_MAX_PARTITIONS);
    m->npartitions = 0;
    m->replaying_partitions = 0;
    for (size_t i = 0; i < n; i++)
        m->replaying_partitions += c->pi[tps[i].part].replaying;
    for (size_t i = 0; i < n && i < CS_METRICS_MAX_PARTS; i++) {
        cs_metrics_part *p = &m->parts[m->npartitions++];
        snprintf(p->topic, sizeof p->topic, "%s", tps[i].topic);
        p->partition = tps[i].partition;
        p->next_offset = c->pi[tps[i].part].poff;
        p->high_watermark = cs_source_high_watermark(c->src, tps[i].topic, tps[i].partition);
        p->lag = p->high_watermark >= 0 && p->next_offset >= 0 ? p->high_watermark - p->next_offset
                                                               : -1;
        p->watermark_ms = cs_engine_part_watermark(c->e, tps[i].part);
        p->state = cs_engine_part_state(c->e, tps[i].part);
    }
    m->paused = c->paused;
    m->nworkers = c->nw < CS_METRICS_MAX_WORKERS ? c->nw : CS_METRICS_MAX_WORKERS;
    int healthy = 1;
    uint64_t ticks = 0, tick_ns = 0;
    for (int w = 0; w < c->nw; w++) { /* one tick per loop */
        ticks += atomic_load_explicit(&c->loops[w], memory_order_relaxed);
        tick_ns += atomic_load_explicit(&c->tick_ns[w], memory_order_relaxed);
    }
    m->worker_ticks = ticks;
    m->worker_tick_seconds = (double)tick_ns * 1e-9;
    m->partition_slots = cs_engine_slots_used(c->e);
    heap_figures(m);
    for (int w = 0; w < m->nworkers; w++) {
        m->worker_loops_n[w] = atomic_load_explicit(&c->loops[w], memory_order_relaxed);
        m->worker_last_loop_ms[w] = atomic_load_explicit(&c->last_loop_ms[w], memory_order_relaxed);
        if (!atomic_load_explicit(&c->stop_reading, memory_order_relaxed) &&
            now - m->worker_last_loop_ms[w] > 10000)
            healthy = 0;
    }
    m->healthy = healthy;
    /* Redis answering with a refusal is not ready at once (it is no blip: someone has to act);
     * an unreachable Redis, or a refusal a retry gets past (NOSCRIPT, MOVED), after 10 s
     * without a flush (a reconnect rides out short blips) */
    m->ready = (c->cf.drain || m->npartitions > 0) && cs_mono_ms() - c->last_ok_ms < 10000 &&
               cs_redis_class_transient((cs_redis_class)ss.refusal);
    cs_metrics_publish(&c->box, m);
}

/* ---- the source's callbacks: state moves with partitions --------------------------------------- */

/* A partition arrives: restore it from what Redis holds (docs/state.md).
 *  - offsets + a valid snapshot at S <= C: load it, read from S, re-read S..C without counting;
 *  - offsets, no usable snapshot: rebuild from the oldest retained message up to C, uncounted;
 *  - no offsets, but the group committed one: Redis lost the counts (redis_state_lost);
 *  - neither: a fresh partition, auto.offset.reset. */
static int on_assign(void *opaque, const char *topic, int32_t partition, int worker,
                     int64_t committed, int64_t *start)
{
    cs_coord *c = opaque;
    char err[512];
    const cs_ruleset *rs = cs_engine_rules(c->e);
    const char *journey = cs_rules_journey(rs);
    int64_t delay = 100;
    cs_part_saved sv;
    int64_t t0 = cs_mono_ms();
    while (cs_sink_load_part(c->sink_meta, journey, topic, partition, &sv, err, sizeof err) != 0) {
        if (atomic_load(&c->stop_reading) || c->status != CS_COORD_RUNNING ||
            (c->cf.stop_flag && *c->cf.stop_flag))
            return -1; /* not assigned: the stop goes on, the next owner reads Redis */
        CS_LOG(CS_LOG_WARN, "%s[%d]: cannot read its state from Redis (%s); retrying", topic,
               partition, err);
        usleep((useconds_t)delay * 1000);
        delay = delay * 2 > 5000 ? 5000 : delay * 2;
    }
    int part;
    int64_t redis_off = -1, snap_off = -1;
    int replaying = 0;
    if (!sv.has_offset && committed >= 0) {
        c->m.state_lost++;
        if (c->cf.redis_state_lost == CS_STATE_LOST_FAIL) {
            CS_LOG(CS_LOG_ERROR,
                   "%s[%d]: Redis has no offset for it but the group committed offset %lld: "
                   "Redis lost the counts; stopping (redis_state_lost=fail)",
                   topic, partition, (long long)committed);
            free(sv.snap);
            c->status = CS_COORD_FATAL;
            return -1;
        }
        CS_LOG(CS_LOG_ERROR,
               "%s[%d]: Redis has no offset for it but the group committed offset %lld: "
               "Redis lost the counts; counting the partition again from its oldest "
               "retained message (redis_state_lost=rebuild)",
               topic, partition, (long long)committed);
        free(sv.snap);
        part = cs_engine_add_partition(c->e, worker);
        *start = CS_START_BEGINNING;
    } else if (!sv.has_offset) {
        free(sv.snap);
        part = cs_engine_add_partition(c->e, worker);
        *start = CS_START_RESET;
    } else {
        redis_off = sv.offset;
        int64_t wm = sv.has_wm ? sv.wm : INT64_MIN;
        cs_pstate *st = NULL;
        cs_snap_info info = {0};
        if (sv.snap) {
            st = cs_snapshot_read(sv.snap, sv.snap_len, rs, cs_engine_dicts(c->e), &info, err,
                                  sizeof err);
            if (st && info.next_offset > sv.offset) {
                snprintf(err, sizeof err, "it is at offset %lld, beyond the counted offset %lld",
                         (long long)info.next_offset, (long long)sv.offset);
                cs_pstate_destroy(st);
                st = NULL;
            } else if (st && cs_engine_time_beyond_bound(c->e, info.max_t)) {
                snprintf(err, sizeof err,
                         "its highest event time %lld is more than session.max_future ahead of "
                         "this clock: written without the bound",
                         (long long)info.max_t);
                cs_pstate_destroy(st);
                st = NULL;
            }
            if (!st) {
                c->m.snapshots_rejected++;
                CS_LOG(CS_LOG_WARN, "%s[%d]: snapshot rejected (%s); rebuilding its state from Kafka",
                       topic, partition, err);
            }
        }
        if (st) {
            snap_off = info.next_offset;
            part = cs_engine_add_partition_state(c->e, worker, st, snap_off, sv.offset, wm);
            *start = snap_off;
            c->m.restores++;
            c->m.restored_sessions += info.sessions;
            c->m.last_restore_seconds = (double)(cs_mono_ms() - t0) / 1000.0;
            CS_LOG(CS_LOG_INFO,
                   "%s[%d]: restored %llu sessions and %llu customers from a %zu-byte snapshot "
                   "at offset %lld in %lld ms; re-reading %lld message(s) up to offset %lld "
                   "without counting",
                   topic, partition, (unsigned long long)info.sessions,
                   (unsigned long long)info.customers, sv.snap_len, (long long)snap_off,
                   (long long)(cs_mono_ms() - t0), (long long)(sv.offset - snap_off),
                   (long long)sv.offset);
        } else {
            if (!sv.snap)
                CS_LOG(CS_LOG_WARN,
                       "%s[%d]: offsets in Redis but no snapshot; rebuilding its state from "
                       "the oldest retained message up to offset %lld without counting",
                       topic, partition, (long long)sv.offset);
            part = cs_engine_add_partition_state(c->e, worker, NULL, -1, sv.offset, wm);
            *start = CS_START_BEGINNING;
        }
        replaying = part >= 0 && cs_engine_part_replaying(c->e, part);
        free(sv.snap);
    }
    if (part < 0)
        return -1;
    char label[600];
    snprintf(label, sizeof label, "%s/%d", topic, partition);
    cs_engine_set_part_label(c->e, part, (uint16_t)XXH3_64bits(label, strlen(label)));
    pinfo *p = &c->pi[part];
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
    int64_t iv = c->cf.snapshot_interval_ms > 0 ? c->cf.snapshot_interval_ms : 1;
    p->last_snap_ms = snap_off >= 0 ? cs_mono_ms() - (int64_t)(XXH3_64bits(label, strlen(label)) %
                                                               (uint64_t)iv)
                                    : INT64_MIN / 2;
    if (*start >= 0)
        CS_LOG(CS_LOG_INFO, "assigned %s[%d] to worker %d, reading from offset %lld", topic,
               partition, worker, (long long)*start);
    else
        CS_LOG(CS_LOG_INFO, "assigned %s[%d] to worker %d, reading from %s", topic, partition,
               worker,
               *start == CS_START_BEGINNING ? "its oldest retained message"
                                            : "where auto_offset_reset says");
    return part;
}

static void on_revoke(void *opaque, const int *parts, size_t n)
{
    cs_coord *c = opaque;
    /* During the final close the workers are gone and every partition was already snapshotted
     * and flushed; after a fence or a fatal error nothing may be written. */
    if (!n || atomic_load(&c->stop_reading) || c->status == CS_COORD_FENCED ||
        c->status == CS_COORD_FATAL)
        return;
    /* snapshot the revoked partitions, hand their final counts over, write them with their
     * offsets, then let them go: the next owner restores exactly this */
    collect(c, parts, n, REQ_RELEASE);
    c->trim_due = 1;
    if (flush_until(c, cs_mono_ms() + c->cf.shutdown_timeout_ms) != 0 &&
        c->status == CS_COORD_RUNNING) {
        /* The revoked partitions' last counts are merged, in the buffers still to be written,
         * with those of the partitions this process keeps; their next owner re-reads them from
         * the last counted offsets. Writing the buffers later would count them twice, dropping
         * them would lose the kept partitions' counts: drop everything unwritten and rejoin, as
         * when fenced (tests/unit/test_coord.c coord_rebalance_mid_flush found the double
         * count). Nothing is lost: every partition restarts from what Redis holds. */
        CS_LOG(CS_LOG_ERROR,
               "revoke: could not write the final counts of %zu partition(s) to Redis within "
               "shutdown_timeout; their next owner re-reads them from the last counted offsets, "
               "so this process writes nothing more: dropping all state and rejoining",
               n);
        c->m.fenced++;
        c->status = CS_COORD_FENCED;
    }
}

static void dead_letter(void *opaque, const cs_msg *m, const char *reason)
{
    cs_coord *c = opaque;
    cs_source_dead_letter(c->src, m, reason);
}

/* ---- life cycle -------------------------------------------------------------------------------- */

static const char *own(cs_coord *c, int i, const char *s)
{
    c->owned[i] = s ? strdup(s) : NULL;
    return c->owned[i];
}

cs_coord *cs_coord_new(cs_engine *e, const cs_coord_conf *conf, char *errstr, size_t errlen)
{
    cs_coord *c = calloc(1, sizeof *c);
    if (!c) {
        cs_seterr(errstr, errlen, "out of memory");
        return NULL;
    }
    c->cf = *conf;
    c->cf.brokers = own(c, 0, conf->brokers);
    c->cf.group = own(c, 1, conf->group);
    c->cf.topics = own(c, 2, conf->topics);
    c->cf.client_id = own(c, 3, conf->client_id);
    c->cf.group_instance_id = own(c, 4, conf->group_instance_id);
    c->cf.kafka_props = own(c, 5, conf->kafka_props);
    c->cf.dead_letter_topic = own(c, 6, conf->dead_letter_topic);
    c->cf.redis_url = own(c, 7, conf->redis_url);
    c->cf.prefix = own(c, 8, conf->prefix);
    c->cf.instance_id = own(c, 9, conf->instance_id);
    if (c->cf.flush_interval_ms <= 0)
        c->cf.flush_interval_ms = 250;
    c->e = e;
    c->nw = cs_engine_nworkers(e);
    c->status = CS_COORD_RUNNING;
    const cs_ruleset *rs = cs_engine_rules(e);

    int rto = c->cf.redis_timeout_ms > 0 ? c->cf.redis_timeout_ms : 5000;
    cs_sink_conf sc = {c->cf.redis_url, c->cf.prefix, c->cf.instance_id, rto < 2000 ? rto : 2000,
                       rto, 100, 5000, c->cf.minute_ttl_ms / 1000, 0,
                       c->cf.redis_wait_replicas, c->cf.redis_wait_timeout_ms};
    c->sink = cs_sink_new(&sc, errstr, errlen);
    cs_sink_conf sc2 = sc;
    sc2.quiet = 1; /* the flusher reports Redis going away; this one would say it again */
    sc2.wait_replicas = 0; /* it only reads */
    c->sink_meta = c->sink ? cs_sink_new(&sc2, errstr, errlen) : NULL;
    if (!c->sink || !c->sink_meta)
        goto fail;
    c->slots = calloc((size_t)c->nw, sizeof *c->slots);
    c->pi = calloc(CS_MAX_PARTITIONS, sizeof *c->pi);
    c->next = calloc(1, sizeof *c->next);
    c->inflight = calloc(1, sizeof *c->inflight);
    c->totals = calloc(1, sizeof *c->totals);
    c->loops = calloc((size_t)c->nw, sizeof *c->loops);
    c->tick_ns = calloc((size_t)c->nw, sizeof *c->tick_ns);
    c->last_loop_ms = calloc((size_t)c->nw, sizeof *c->last_loop_ms);
    c->threads = calloc((size_t)c->nw, sizeof *c->threads);
    c->wctx = calloc((size_t)c->nw, sizeof *c->wctx);
    if (!c->slots || !c->pi || !c->next || !c->inflight || !c->totals || !c->loops || !c->tick_ns ||
        !c->last_loop_ms || !c->threads || !c->wctx || cs_agg_init(c->next, rs) ||
        cs_agg_init(c->inflight, rs) || cs_agg_init(c->totals, rs)) {
        cs_seterr(errstr, errlen, "out of memory");
        goto fail;
    }
    for (int w = 0; w < c->nw; w++) {
        pthread_mutex_init(&c->slots[w].mu, NULL);
        pthread_cond_init(&c->slots[w].cv, NULL);
        atomic_init(&c->loops[w], 0);
        atomic_init(&c->tick_ns[w], 0);
        atomic_init(&c->last_loop_ms[w], cs_wall_ms());
        c->wctx[w] = (wctx){c, w};
    }
    atomic_init(&c->stop_reading, 0);
    pthread_mutex_init(&c->box.mu, NULL);
    c->m.started_ms = cs_wall_ms();
    c->m.last_flush_ok_ms = 0;
    c->m.watermark_ms = INT64_MIN;
    /* sequence numbers unique across restarts of the same instance id (see sink.h) */
    c->seq = (uint64_t)cs_wall_ms() * 1000;
    c->last_ok_ms = cs_mono_ms();

    cs_source_conf srcc = {
        .brokers = c->cf.brokers, .group = c->cf.group, .topics = c->cf.topics,
        .client_id = c->cf.client_id, .extra_props = c->cf.kafka_props,
        .group_instance_id = c->cf.group_instance_id,
        .dead_letter_topic = c->cf.dead_letter_topic, .earliest = c->cf.earliest,
        .drain = c->cf.drain, .batch_size = c->cf.batch_size,
        .fetch_threads = c->cf.fetch_threads, .on_assign = on_assign,
        .on_revoke = on_revoke, .opaque = c};
    c->src = cs_source_new(e, &srcc, errstr, errlen);
    if (!c->src)
        goto fail;
    if (c->cf.dead_letter_topic && *c->cf.dead_letter_topic)
        cs_engine_set_invalid_hook(e, dead_letter, c);
    return c;
fail:
    cs_coord_destroy(c);
    return NULL;
}

int cs_coord_start(cs_coord *c, char *errstr, size_t errlen)
{
    if (cs_source_start(c->src, errstr, errlen) != 0) {
        if (c->status == CS_COORD_FATAL)
            cs_seterr(errstr, errlen, "Redis lost the counts (redis_state_lost=fail)");
        return -1;
    }
    fill_metrics(c);
    for (int w = 0; w < c->nw; w++) {
        pthread_create(&c->threads[w], NULL, worker_main, &c->wctx[w]);
        /* named for top -H, perf and bench/bench_e2e.sh's CPU per role */
        char name[16];
        snprintf(name, sizeof name, "cs-worker-%u", (unsigned)w % 10000u); /* <= 256 */
        pthread_setname_np(c->threads[w], name);
    }
    c->started = 1;
    c->next_flush_ms = cs_mono_ms() + c->cf.flush_interval_ms;
    return 0;
}

int cs_coord_status(const cs_coord *c)
{
    return c->status;
}

int cs_coord_step(cs_coord *c, int max_wait_ms)
{
    if (c->status != CS_COORD_RUNNING)
        return c->status;
    if (c->cf.drain && cs_source_drained(c->src))
        return c->status = CS_COORD_DRAINED;
    int64_t now = cs_mono_ms();
    int64_t wait = c->next_flush_ms > now ? c->next_flush_ms - now : 0;
    cs_source_poll(c->src, (int)(wait < max_wait_ms ? wait : max_wait_ms));
    now = cs_mono_ms();
    if (now >= c->next_flush_ms && c->status == CS_COORD_RUNNING) {
        if (!c->cf.drain)
            cs_source_update_idle(c->src, cs_wall_ms(),
                                  cs_rules_session(cs_engine_rules(c->e))->idle_close_ms);
        int64_t cpu0 = cs_thread_cpu_ns();
        int due[CS_MAX_PARTITIONS];
        size_t ndue = due_snapshots(c, due, CS_MAX_PARTITIONS, now);
        collect(c, due, ndue, ndue ? REQ_SNAPSHOT : REQ_NONE);
        if (try_flush(c, 0) != 0 && c->cf.redis_outage_pause_ms > 0 && !c->paused &&
            c->status == CS_COORD_RUNNING && now - c->last_ok_ms > c->cf.redis_outage_pause_ms) {
            cs_sink_stats ss;
            cs_sink_stats_get(c->sink, &ss);
            CS_LOG(CS_LOG_WARN,
                   "counts not written for %lld ms (%s: %s): pausing consumption until Redis "
                   "takes the flush",
                   (long long)(now - c->last_ok_ms),
                   cs_redis_class_name((cs_redis_class)ss.refusal), ss.refusal_text);
            cs_source_pause(c->src, 1);
            c->paused = 1;
        }
        c->next_flush_ms = now + c->cf.flush_interval_ms;
        maybe_trim(c, now);
        fill_metrics(c);
        c->flush_cpu_ns += cs_thread_cpu_ns() - cpu0;
    }
    if (c->status == CS_COORD_RUNNING && c->cf.drain && cs_source_drained(c->src))
        c->status = CS_COORD_DRAINED;
    return c->status;
}

int cs_coord_stop(cs_coord *c)
{
    /* stop reading, finish what is in flight, snapshot (drain: end sessions), flush, commit,
     * leave. Fenced or fatal: write nothing more. */
    int draining = c->status == CS_COORD_DRAINED;
    int clean = c->status == CS_COORD_RUNNING || draining;
    CS_LOG(CS_LOG_INFO, "%s: stopping the workers",
           c->status == CS_COORD_FATAL    ? "fatal error"
           : c->status == CS_COORD_FENCED ? "fenced"
           : draining                     ? "drain complete"
                                          : "stop requested");
    atomic_store(&c->stop_reading, 1);
    if (c->started) {
        for (int w = 0; w < c->nw; w++)
            cs_source_wake(c->src, w);
        for (int w = 0; w < c->nw; w++)
            pthread_join(c->threads[w], NULL);
        c->started = 0;
    }
    for (int w = 0; w < c->nw; w++) { /* buffers handed back but not yet taken */
        if (c->slots[w].ret) {
            cs_worker_give_agg(cs_engine_worker(c->e, w), c->slots[w].ret);
            c->slots[w].ret = NULL;
        }
    }
    int ok = 0;
    int64_t cpu0 = cs_thread_cpu_ns();
    if (clean) {
        if (draining)
            cs_engine_set_watermark(c->e, cs_engine_final_watermark(c->e));
        /* a graceful stop keeps sessions open: their state goes to Redis as snapshots and the
         * next owner continues them */
        collect_joined(c, draining ? CS_END_DRAIN : -1, 1);
        ok = flush_until(c, cs_mono_ms() + c->cf.shutdown_timeout_ms) == 0;
        if (ok) { /* the offsets of the last flush, now all written: commit them synchronously */
            cs_source_commit(c->src, c->tps, c->offs, c->ntps, 1);
            /* every flush's outcome is known: this instance's sequence field is of no more use
             * (left behind, meta gained one field per process run for ever) */
            char err[512];
            if (cs_sink_forget_seq(c->sink, cs_rules_journey(cs_engine_rules(c->e)), err,
                                   sizeof err) < 0)
                CS_LOG(CS_LOG_WARN, "could not remove this instance's sequence field from meta: %s",
                       err);
        }
    }
    c->flush_cpu_ns += cs_thread_cpu_ns() - cpu0;
    /* bench/bench_e2e.sh's per-role CPU report reads this line */
    CS_LOG(CS_LOG_INFO, "control thread CPU: %.3f s collecting and writing flushes",
           (double)c->flush_cpu_ns * 1e-9);
    fill_metrics(c);
    cs_sink_stats sst;
    cs_sink_stats_get(c->sink, &sst);
    cs_source_stats srs;
    cs_source_stats_get(c->src, &srs);
    if (c->status == CS_COORD_FENCED)
        CS_LOG(CS_LOG_WARN, "fenced: nothing more is written by this process");
    else if (c->status != CS_COORD_FATAL)
        CS_LOG(ok ? CS_LOG_INFO : CS_LOG_ERROR,
               "%s: %llu flushes, %llu redis commands, %llu redelivered skipped, %llu stray, "
               "%llu fetch wakes",
               ok ? "stopped cleanly"
                  : "final flush failed; counts since the last flush will be read again on "
                    "restart",
               (unsigned long long)sst.flushes_ok, (unsigned long long)sst.commands,
               (unsigned long long)srs.redelivered_skipped, (unsigned long long)srs.stray,
               (unsigned long long)srs.fetch_wakes);
    cs_source_close(c->src);
    if (c->status == CS_COORD_FENCED)
        return CS_COORD_STOPPED_FENCED;
    if (c->status == CS_COORD_FATAL)
        return CS_COORD_STOPPED_FATAL;
    return ok ? CS_COORD_STOPPED : CS_COORD_FLUSH_FAILED;
}

void cs_coord_destroy(cs_coord *c)
{
    if (!c)
        return;
    if (c->started) {
        atomic_store(&c->stop_reading, 1);
        for (int w = 0; w < c->nw; w++)
            cs_source_wake(c->src, w);
        for (int w = 0; w < c->nw; w++)
            pthread_join(c->threads[w], NULL);
    }
    cs_engine_set_invalid_hook(c->e, NULL, NULL);
    cs_source_destroy(c->src);
    cs_sink_destroy(c->sink);
    cs_sink_destroy(c->sink_meta);
    if (c->next)
        cs_agg_free(c->next);
    if (c->inflight)
        cs_agg_free(c->inflight);
    if (c->totals)
        cs_agg_free(c->totals);
    free(c->next);
    free(c->inflight);
    free(c->totals);
    free((void *)c->loops);
    free((void *)c->tick_ns);
    free((void *)c->last_loop_ms);
    if (c->pi)
        for (int p = 0; p < CS_MAX_PARTITIONS; p++)
            free(c->pi[p].snap);
    free_flush_snaps(c);
    for (int w = 0; c->slots && w < c->nw; w++) {
        if (c->slots[w].ret)
            cs_worker_give_agg(cs_engine_worker(c->e, w), c->slots[w].ret);
        pthread_mutex_destroy(&c->slots[w].mu);
        pthread_cond_destroy(&c->slots[w].cv);
    }
    free(c->pi);
    free(c->slots);
    free(c->threads);
    free(c->wctx);
    pthread_mutex_destroy(&c->box.mu);
    for (size_t i = 0; i < sizeof c->owned / sizeof c->owned[0]; i++)
        free(c->owned[i]);
    free(c);
}

void cs_coord_note_reload(cs_coord *c, int ok)
{
    if (ok)
        c->m.reloads_ok++;
    else
        c->m.reloads_failed++;
}

cs_metrics_box *cs_coord_metrics(cs_coord *c)
{
    return &c->box;
}

cs_sink *cs_coord_test_sink(cs_coord *c)
{
    return c->sink;
}

uint32_t cs_coord_test_totals_minutes(const cs_coord *c)
{
    return c->totals->minutes_n;
}

int cs_coord_test_flush(cs_coord *c)
{
    collect(c, NULL, 0, REQ_NONE);
    return try_flush(c, 1);
}
