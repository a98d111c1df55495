/* watch.c — produce -> visible latency and consumer lag, read from what clickstage wrote to
 * Redis (lg.h).
 *
 * How (the same reading as bench/latency_probe.c, without marker messages): clickstage writes
 * each flush's counts and the Kafka offsets that produced them in one transaction, then
 * PUBLISHes on <prefix>:{<journey>}:updates. So offsets[<topic>/<p>] > o means the message at
 * (p, o) is counted and visible. The producers mark a message per partition per millisecond
 * with its wall time (lg_track); its delivery report gives its offset. The watcher thread
 * SUBSCRIBEs to the updates channel and, on every message (and at least every 100 ms without
 * one), reads the offsets hash; every marked message whose offset is now below its partition's
 * visible offset has latency (time the read returned) - (time it was produced). That is an upper
 * bound by the read's round trip; sampling at most one message per partition per millisecond
 * keeps the cost flat at any rate.
 *
 * Lag = sum over partitions of (newest delivered offset + 1) - visible offset: what Kafka holds
 * that clickstage has not made visible yet (messages still in the producer's queue are not in
 * it: they are the generator's backlog, reported as its achieved rate).
 *
 * Threads: one watcher thread owns both Redis connections (cs_redis: one thread each); the
 * figures are handed over under w->mu. Keys come from pipeline/rkeys.h, connections from
 * pipeline/redis.h. Rejected: polling the offsets hash only (every poll interval is added to
 * every latency; pub/sub reads exactly once per flush); marker messages like latency_probe's
 * (they are invalid events in the daemon's counts and would change the ground truth).
 */
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "lg.h"
#include "redis.h"
#include "rkeys.h"

struct lg_watch {
    lg_track *track;
    cs_redis *sub, *rd;
    char offkey[CS_RKEYS_MAX + 16], chan[CS_RKEYS_MAX + 16];
    char field_prefix[300];
    size_t field_prefix_len;
    pthread_t th;
    _Atomic int stop;
    int64_t *visible; /* watcher thread only */
    /* under mu */
    pthread_mutex_t mu;
    lg_hist win, total;
    double win_t0;
    int64_t win_lag0, win_vis0, last_lag, last_vis;
    double *lt;       /* window's lag readings: times */
    double *lv;       /* and values */
    size_t nl, capl;
    uint64_t updates;
    int64_t dropped0;
    int have_reading;
    uint64_t pending; /* samples not yet resolved at the last reading */
};

static void set_err(char *e, size_t n, const char *what, const char *why)
{
    snprintf(e, n, "%s: %s", what, why);
}

static int subscribe(lg_watch *w, char *err, size_t errlen)
{
    if (cs_redis_connect(w->sub, err, errlen) < 0)
        return -1;
    const char *argv[2] = {"SUBSCRIBE", w->chan};
    redisReply *r = cs_redis_cmd(w->sub, 2, argv, NULL, err, errlen);
    if (!r)
        return -1;
    int ok = r->type == REDIS_REPLY_ARRAY;
    if (!ok)
        set_err(err, errlen, "SUBSCRIBE", r->type == REDIS_REPLY_ERROR ? r->str : "bad reply");
    freeReplyObject(r);
    if (!ok)
        cs_redis_close(w->sub);
    return ok ? 0 : -1;
}

/* Waits up to ms for pub/sub messages; returns how many arrived, -1 on a link failure. */
static int wait_updates(lg_watch *w, int ms)
{
    redisContext *c = cs_redis_ctx(w->sub);
    if (!c)
        return -1;
    int n = 0;
    for (;;) {
        void *reply = NULL;
        if (redisGetReplyFromReader(c, &reply) != REDIS_OK)
            return -1;
        if (reply) {
            freeReplyObject(reply);
            n++;
            continue;
        }
        if (n)
            return n; /* everything buffered is consumed */
        struct pollfd pfd = {c->fd, POLLIN, 0};
        int r = poll(&pfd, 1, ms);
        if (r <= 0)
            return r < 0 ? -1 : 0;
        if (redisBufferRead(c) != REDIS_OK)
            return -1;
        ms = 0;
    }
}

/* HGETALL offsets into w->visible. 0, or -1 on a link failure. */
static int read_offsets(lg_watch *w, char *err, size_t errlen)
{
    const char *argv[2] = {"HGETALL", w->offkey};
    redisReply *r = cs_redis_cmd(w->rd, 2, argv, NULL, err, errlen);
    if (!r)
        return -1;
    if (r->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i + 1 < r->elements; i += 2) {
            const redisReply *f = r->element[i], *v = r->element[i + 1];
            if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING ||
                f->len <= w->field_prefix_len || memcmp(f->str, w->field_prefix, w->field_prefix_len))
                continue;
            char *end;
            long p = strtol(f->str + w->field_prefix_len, &end, 10);
            if (*end || p < 0 || p >= w->track->nparts)
                continue;
            int64_t o = strtoll(v->str, NULL, 10);
            if (o > w->visible[p])
                w->visible[p] = o;
        }
    freeReplyObject(r);
    return 0;
}

/* Resolves the samples now visible and records a lag reading. */
static void observe(lg_watch *w, uint64_t updates)
{
    int64_t now_us = lg_wall_us();
    double now = lg_now();
    lg_hist got;
    lg_hist_reset(&got);
    int64_t lag = 0, vis = 0, dropped = 0;
    uint64_t pending = 0;
    for (int p = 0; p < w->track->nparts; p++) {
        lg_ptrack *pt = &w->track->p[p];
        int64_t v = w->visible[p] > 0 ? w->visible[p] : 0;
        int64_t d = atomic_load_explicit(&pt->next_offset, memory_order_acquire);
        if (d > v)
            lag += d - v;
        vis += v;
        if (!pt->ring)
            continue;
        pthread_mutex_lock(&pt->mu);
        while (pt->tail < pt->head && pt->ring[pt->tail % LG_RING].offset < v) {
            int64_t l = now_us - pt->ring[pt->tail % LG_RING].t_us;
            lg_hist_add(&got, (uint64_t)(l > 0 ? l : 0), 1);
            pt->tail++;
        }
        pending += pt->head - pt->tail;
        dropped += (int64_t)pt->dropped;
        pthread_mutex_unlock(&pt->mu);
    }
    pthread_mutex_lock(&w->mu);
    lg_hist_merge(&w->win, &got);
    lg_hist_merge(&w->total, &got);
    if (w->nl == w->capl) {
        w->capl = w->capl ? 2 * w->capl : 1024;
        w->lt = realloc(w->lt, w->capl * sizeof *w->lt);
        w->lv = realloc(w->lv, w->capl * sizeof *w->lv);
    }
    w->lt[w->nl] = now;
    w->lv[w->nl++] = (double)lag;
    if (!w->have_reading) {
        w->win_lag0 = lag;
        w->win_vis0 = vis;
        w->have_reading = 1;
    }
    w->last_lag = lag;
    w->last_vis = vis;
    w->updates += updates;
    w->pending = pending;
    w->dropped0 = dropped;
    pthread_mutex_unlock(&w->mu);
}

static void *watch_main(void *arg)
{
    lg_watch *w = arg;
    char err[512];
    int down = 0;
    while (!w->stop) {
        if (!cs_redis_connected(w->sub) && subscribe(w, err, sizeof err) < 0) {
            if (!down++)
                fprintf(stderr, "\n" LG_NAME ": watch: %s (retrying)\n", err);
            usleep(500000);
            continue;
        }
        int n = wait_updates(w, 100);
        if (n < 0) {
            cs_redis_close(w->sub);
            continue;
        }
        if (read_offsets(w, err, sizeof err) < 0) {
            if (!down++)
                fprintf(stderr, "\n" LG_NAME ": watch: %s (retrying)\n", err);
            usleep(200000);
            continue;
        }
        if (down) {
            fprintf(stderr, "\n" LG_NAME ": watch: Redis reachable again\n");
            down = 0;
        }
        observe(w, (uint64_t)n);
    }
    return NULL;
}

int lg_watch_start(const lg_watch_opts *o, lg_track *track, lg_watch **out)
{
    char err[512];
    cs_rkeys k;
    if (cs_rkeys_init(&k, o->prefix, o->journey) < 0) {
        fprintf(stderr, LG_NAME ": --prefix/--journey: empty or too long\n");
        return -1;
    }
    lg_watch *w = calloc(1, sizeof *w);
    w->track = track;
    cs_rkey(&k, CS_RK_OFFSETS, w->offkey, sizeof w->offkey);
    cs_rkey(&k, CS_RK_UPDATES, w->chan, sizeof w->chan);
    /* "<topic>/" : what every field of this topic starts with */
    size_t n = cs_rk_tp_field(w->field_prefix, sizeof w->field_prefix, o->topic, 0);
    w->field_prefix_len = n > 0 ? n - 1 : 0;
    w->field_prefix[w->field_prefix_len] = 0;
    /* the pub/sub connection waits for messages itself (poll): no command timeout on reads
     * beyond the SUBSCRIBE; the reading connection keeps the default */
    cs_redis_opts ro = {o->redis_url, 2000, 5000};
    w->sub = cs_redis_new(&ro, err, sizeof err);
    w->rd = w->sub ? cs_redis_new(&ro, err, sizeof err) : NULL;
    if (!w->sub || !w->rd || cs_redis_connect(w->rd, err, sizeof err) < 0 ||
        subscribe(w, err, sizeof err) < 0) {
        fprintf(stderr, LG_NAME ": --watch-redis: %s\n", err);
        cs_redis_free(w->sub);
        cs_redis_free(w->rd);
        free(w);
        return -1;
    }
    w->visible = malloc((size_t)track->nparts * sizeof *w->visible);
    for (int p = 0; p < track->nparts; p++)
        w->visible[p] = -1;
    pthread_mutex_init(&w->mu, NULL);
    lg_hist_reset(&w->win);
    lg_hist_reset(&w->total);
    /* the first reading: where clickstage stands before anything is sent */
    if (read_offsets(w, err, sizeof err) == 0)
        observe(w, 0);
    w->win_t0 = lg_now();
    pthread_create(&w->th, NULL, watch_main, w);
    *out = w;
    return 0;
}

void lg_watch_take(lg_watch *w, lg_window *out)
{
    pthread_mutex_lock(&w->mu);
    memcpy(&out->lat, &w->win, sizeof w->win);
    out->t0 = w->win_t0;
    out->t1 = lg_now();
    out->lag0 = w->win_lag0;
    out->lag1 = w->last_lag;
    out->visible0 = w->win_vis0;
    out->visible1 = w->last_vis;
    out->updates = w->updates;
    out->dropped = w->dropped0;
    /* least-squares slope of the window's lag readings */
    double st = 0, sv = 0, stt = 0, stv = 0, nn = (double)w->nl;
    for (size_t i = 0; i < w->nl; i++) {
        double t = w->lt[i] - out->t0;
        st += t;
        sv += w->lv[i];
        stt += t * t;
        stv += t * w->lv[i];
    }
    double den = nn * stt - st * st;
    out->lag_slope = w->nl >= 3 && den > 0 ? (nn * stv - st * sv) / den : 0;
    /* a new window */
    lg_hist_reset(&w->win);
    w->win_t0 = out->t1;
    w->win_lag0 = w->last_lag;
    w->win_vis0 = w->last_vis;
    w->updates = 0;
    w->nl = 0;
    pthread_mutex_unlock(&w->mu);
}

void lg_watch_total(lg_watch *w, lg_hist *out)
{
    pthread_mutex_lock(&w->mu);
    memcpy(out, &w->total, sizeof *out);
    pthread_mutex_unlock(&w->mu);
}

int lg_watch_lag(lg_watch *w, int64_t *lag, int64_t *visible)
{
    pthread_mutex_lock(&w->mu);
    *lag = w->last_lag;
    *visible = w->last_vis;
    int ok = w->have_reading;
    pthread_mutex_unlock(&w->mu);
    return ok ? 0 : -1;
}

int lg_watch_settle(lg_watch *w, double timeout_s)
{
    double end = lg_now() + timeout_s;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        int done = w->pending == 0 && w->last_lag == 0;
        pthread_mutex_unlock(&w->mu);
        if (done)
            return 1;
        if (lg_now() >= end)
            return 0;
        usleep(20000);
    }
}

void lg_watch_stop(lg_watch *w)
{
    if (!w)
        return;
    w->stop = 1;
    pthread_join(w->th, NULL);
    cs_redis_free(w->sub);
    cs_redis_free(w->rd);
    pthread_mutex_destroy(&w->mu);
    free(w->visible);
    free(w->lt);
    free(w->lv);
    free(w);
}
