/* latency_probe — produce-to-visible-in-Redis latency and consumer lag of a live clickstage.
 *
 * Two things run side by side while clickstage consumes a topic:
 *
 *  1. Marker producer (main thread). --rate times a second it produces one marker message into
 *     the topic, round-robin over its partitions, and takes the wall time just before
 *     rd_kafka_producev(). The delivery report gives the marker's (partition, offset). Markers
 *     are `{"latency_probe":N}`: a JSON object without a customer, so clickstage counts each as
 *     invalid `no_customer` and it changes no session, watermark or stage count.
 *
 *  2. Observer (a thread). SUBSCRIBEs to <prefix>:{<journey>}:updates; on every message (one per
 *     applied flush) it reads HGETALL <prefix>:{<journey>}:offsets on a second connection and
 *     records (time after the reply arrived, offsets of every partition of the topic). The
 *     offsets are written in the same MULTI/EXEC as the counts they produced (docs/redis.md), so
 *     `offsets[p] > o` means the count of the message at (p, o) is visible.
 *
 *  Latency of a marker = time of the first observation with offsets[p] > its offset, minus its
 *  produce time (an upper bound: the observation is stamped after HGETALL returned).
 *
 *  Once a second the main thread also samples the lag: sum over partitions of the high
 *  watermark (ListOffsets) minus the sum of the offsets in Redis, the rates of both, and Redis'
 *  total_commands_processed (minus this program's own commands) as commands/s.
 *
 * Output
 *   --samples-csv F  wall_ms,partition,offset,latency_ms,ack_ms  (latency empty if never seen;
 *                    ack_ms = produce -> delivery report)
 *   --lag-csv F      wall_ms,t_s,high_sum,redis_sum,lag,produced_per_s,consumed_per_s,
 *                    redis_cmds_per_s,daemon_cmds_per_s,flushes
 *   stdout, last line: {"samples":..,"resolved":..,"p50_ms":..,"p99_ms":..,"max_ms":..,...}
 * Runs until SIGINT/SIGTERM or --duration seconds, then stops producing markers and waits up to
 * --settle seconds for the last ones to become visible.
 *
 * Build: cc -O2 -Wall -Wextra -pthread -o latency_probe bench/latency_probe.c -lrdkafka -lhiredis
 */
#define _GNU_SOURCE
#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rkeys.h"

#define MAXP 1024

static volatile sig_atomic_t g_stop;
static void on_sig(int s) { (void)s; g_stop = 1; }

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void die(const char *what, const char *why)
{
    fprintf(stderr, "latency_probe: %s: %s\n", what, why);
    exit(1);
}

/* ---- configuration ---- */
static const char *g_topic, *g_host = "127.0.0.1", *g_prefix = "clickstage", *g_journey = "retail";
static int g_port = 6379, g_np;
static char g_offkey[512], g_chan[512], g_field_prefix[300];

/* ---- observations (observer thread writes, main reads under the mutex) ---- */
typedef struct obs {
    int64_t t_us;
    int64_t updated_ms; /* the flush's updated_ms (daemon clock, taken just before the flush) */
    int64_t *off;       /* [g_np] */
} obs;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static obs *g_obs;
static size_t g_nobs, g_capobs;
static int64_t g_latest[MAXP];
static uint64_t g_updates, g_update_cmds, g_own_cmds_observer;

/* ---- samples (main thread only) ---- */
typedef struct sample {
    int64_t t_us;
    int64_t t_dr_us; /* delivery report (acks=all: appended on the broker) */
    int32_t partition;
    int64_t offset; /* -1 until delivered */
    int failed;
} sample;
static sample *g_s;
static size_t g_ns, g_caps;

/* Parses an HGETALL reply of the offsets hash into off[] (fields "<topic>/<p>"); -1 = absent. */
static void parse_offsets(const redisReply *r, int64_t *off)
{
    for (int p = 0; p < g_np; p++)
        off[p] = -1;
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return;
    size_t fl = strlen(g_field_prefix);
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *f = r->element[i], *v = r->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || f->len <= fl || memcmp(f->str, g_field_prefix, fl))
            continue;
        int p = atoi(f->str + fl);
        if (p >= 0 && p < g_np)
            off[p] = strtoll(v->str, NULL, 10);
    }
}

static long long json_num(const char *s, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = strstr(s, k);
    return p ? strtoll(p + strlen(k), NULL, 10) : 0;
}

static void *observer(void *arg)
{
    (void)arg;
    redisContext *sub = redisConnect(g_host, g_port), *rd = redisConnect(g_host, g_port);
    if (!sub || sub->err || !rd || rd->err)
        die("observer: redis connect", sub && sub->err ? sub->errstr : rd ? rd->errstr : "oom");
    redisReply *r = redisCommand(sub, "SUBSCRIBE %s", g_chan);
    if (!r)
        die("SUBSCRIBE", sub->errstr);
    freeReplyObject(r);
    for (;;) {
        void *vr = NULL;
        if (redisGetReply(sub, &vr) != REDIS_OK)
            die("observer: read", sub->errstr);
        r = vr;
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
            r->element[2]->type != REDIS_REPLY_STRING) {
            freeReplyObject(r);
            continue;
        }
        if (!strcmp(r->element[2]->str, "latency-probe-stop")) {
            freeReplyObject(r);
            break;
        }
        long long cmds = json_num(r->element[2]->str, "commands");
        long long upd_ms = json_num(r->element[2]->str, "updated_ms");
        freeReplyObject(r);
        redisReply *h = redisCommand(rd, "HGETALL %s", g_offkey);
        if (!h)
            die("observer: HGETALL", rd->errstr);
        int64_t t = wall_us();
        int64_t *off = malloc((size_t)g_np * sizeof *off);
        parse_offsets(h, off);
        freeReplyObject(h);
        pthread_mutex_lock(&g_mu);
        if (g_nobs == g_capobs) {
            g_capobs = g_capobs ? 2 * g_capobs : 1024;
            g_obs = realloc(g_obs, g_capobs * sizeof *g_obs);
        }
        g_obs[g_nobs++] = (obs){t, upd_ms, off};
        for (int p = 0; p < g_np; p++)
            if (off[p] > g_latest[p])
                g_latest[p] = off[p];
        g_updates++;
        g_update_cmds += (uint64_t)cmds;
        g_own_cmds_observer++;
        pthread_mutex_unlock(&g_mu);
    }
    redisFree(sub);
    redisFree(rd);
    return NULL;
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    size_t i = (size_t)(uintptr_t)m->_private;
    if (i >= g_ns)
        return;
    if (m->err) {
        g_s[i].failed = 1;
        return;
    }
    g_s[i].t_dr_us = wall_us();
    g_s[i].partition = m->partition;
    g_s[i].offset = m->offset;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double q)
{
    if (!n)
        return 0;
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

int main(int argc, char **argv)
{
    const char *brokers = "127.0.0.1:9092", *samples_csv = NULL, *lag_csv = NULL;
    double rate = 50, duration = 0, settle = 10;
    int linger = 5;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) {
            fprintf(stderr, "latency_probe: %s needs a value\n", a);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--brokers")) brokers = v;
        else if (!strcmp(a, "--topic")) g_topic = v;
        else if (!strcmp(a, "--redis-host")) g_host = v;
        else if (!strcmp(a, "--redis-port")) g_port = atoi(v);
        else if (!strcmp(a, "--prefix")) g_prefix = v;
        else if (!strcmp(a, "--journey")) g_journey = v;
        else if (!strcmp(a, "--rate")) rate = atof(v);
        else if (!strcmp(a, "--duration")) duration = atof(v);
        else if (!strcmp(a, "--settle")) settle = atof(v);
        else if (!strcmp(a, "--linger-ms")) linger = atoi(v);
        else if (!strcmp(a, "--samples-csv")) samples_csv = v;
        else if (!strcmp(a, "--lag-csv")) lag_csv = v;
        else {
            fprintf(stderr,
                    "usage: latency_probe --brokers B --topic T [--redis-host H --redis-port P]\n"
                    "  [--prefix clickstage --journey retail] [--rate 50] [--duration 0=until "
                    "SIGINT]\n  [--settle 10] [--linger-ms 5] [--samples-csv F] [--lag-csv F]\n");
            return 2;
        }
    }
    if (!g_topic || rate <= 0)
        die("usage", "--topic is required and --rate must be > 0");
    cs_rkeys keys; /* key names: pipeline/rkeys.h, like every other reader */
    if (cs_rkeys_init(&keys, g_prefix, g_journey) < 0 ||
        !cs_rkey(&keys, CS_RK_OFFSETS, g_offkey, sizeof g_offkey) ||
        !cs_rkey(&keys, CS_RK_UPDATES, g_chan, sizeof g_chan))
        die("usage", "--prefix or --journey too long");
    snprintf(g_field_prefix, sizeof g_field_prefix, "%s/", g_topic);
    signal(SIGINT, on_sig);
    signal(SIGTERM, on_sig);

    char err[512], lingerbuf[32];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    snprintf(lingerbuf, sizeof lingerbuf, "%d", linger);
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof err) ||
        rd_kafka_conf_set(conf, "linger.ms", lingerbuf, err, sizeof err) ||
        rd_kafka_conf_set(conf, "acks", "all", err, sizeof err))
        die("producer conf", err);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk)
        die("rd_kafka_new", err);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, g_topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
    if (e || md->topic_cnt != 1 || md->topics[0].err || md->topics[0].partition_cnt < 1)
        die("metadata", e ? rd_kafka_err2str(e) : "topic not found");
    g_np = md->topics[0].partition_cnt < MAXP ? md->topics[0].partition_cnt : MAXP;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    for (int p = 0; p < g_np; p++)
        g_latest[p] = -1;

    redisContext *rc = redisConnect(g_host, g_port);
    if (!rc || rc->err)
        die("redis connect", rc ? rc->errstr : "oom");
    FILE *lag = lag_csv ? fopen(lag_csv, "w") : NULL;
    if (lag_csv && !lag)
        die("open", lag_csv);
    if (lag)
        fprintf(lag, "wall_ms,t_s,high_sum,redis_sum,lag,produced_per_s,consumed_per_s,"
                     "redis_cmds_per_s,daemon_cmds_per_s,flushes\n");

    pthread_t th;
    pthread_create(&th, NULL, observer, NULL);

    const int64_t t_start = wall_us(), period = (int64_t)(1e6 / rate);
    int64_t next_mark = t_start, next_lag = t_start;
    int64_t prev_high = -1, prev_redis = -1, prev_t = 0;
    long long prev_cmds = -1, own = 0;
    uint64_t prev_obs_own = 0, prev_upd_cmds = 0, prev_updates = 0;
    int64_t *high = calloc((size_t)g_np, sizeof *high), *roff = calloc((size_t)g_np, sizeof *roff);
    while (!g_stop && (duration <= 0 || wall_us() - t_start < (int64_t)(duration * 1e6))) {
        int64_t now = wall_us();
        if (now >= next_mark) {
            if (g_ns == g_caps) {
                g_caps = g_caps ? 2 * g_caps : 4096;
                g_s = realloc(g_s, g_caps * sizeof *g_s);
            }
            size_t i = g_ns;
            char payload[64];
            int len = snprintf(payload, sizeof payload, "{\"latency_probe\":%zu}", i);
            int32_t part = (int32_t)(i % (size_t)g_np);
            g_s[i] = (sample){0, 0, part, -1, 0};
            g_ns++;
            g_s[i].t_us = wall_us(); /* just before producev */
            e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(g_topic), RD_KAFKA_V_PARTITION(part),
                                  RD_KAFKA_V_VALUE(payload, (size_t)len),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                  RD_KAFKA_V_OPAQUE((void *)(uintptr_t)i), RD_KAFKA_V_END);
            if (e)
                g_s[i].failed = 1;
            next_mark += period;
            if (next_mark < now - 1000000) /* fell far behind (machine stalled): no burst */
                next_mark = now + period;
        }
        if (now >= next_lag) {
            int64_t hs = 0, rs = 0;
            int ok = 1;
            /* Redis first, then the high watermarks: the lag can only be over-stated (by what
             * was produced in between), never come out negative */
            redisReply *h = redisCommand(rc, "HGETALL %s", g_offkey);
            if (!h)
                die("HGETALL", rc->errstr);
            parse_offsets(h, roff);
            freeReplyObject(h);
            redisReply *inf = redisCommand(rc, "INFO stats");
            if (!inf)
                die("INFO", rc->errstr);
            own += 2;
            long long cmds = 0;
            if (inf->type == REDIS_REPLY_STRING) {
                const char *p = strstr(inf->str, "total_commands_processed:");
                cmds = p ? strtoll(p + 25, NULL, 10) : 0;
            }
            freeReplyObject(inf);
            for (int p = 0; p < g_np; p++)
                rs += roff[p] > 0 ? roff[p] : 0;
            for (int p = 0; p < g_np; p++) {
                int64_t lo, hi;
                if (rd_kafka_query_watermark_offsets(rk, g_topic, p, &lo, &hi, 2000)) {
                    ok = 0;
                    break;
                }
                high[p] = hi;
                hs += hi;
            }
            int64_t t = wall_us();
            pthread_mutex_lock(&g_mu);
            uint64_t obs_own = g_own_cmds_observer, upd_cmds = g_update_cmds, upd = g_updates;
            pthread_mutex_unlock(&g_mu);
            if (ok && lag) {
                if (prev_high >= 0) {
                    double dt = (double)(t - prev_t) * 1e-6;
                    long long self = own + (long long)obs_own - (long long)prev_obs_own;
                    fprintf(lag, "%lld,%.3f,%lld,%lld,%lld,%.0f,%.0f,%.0f,%.0f,%llu\n",
                            (long long)(t / 1000), (double)(t - t_start) * 1e-6, (long long)hs,
                            (long long)rs, (long long)(hs - rs), (double)(hs - prev_high) / dt,
                            (double)(rs - prev_redis) / dt,
                            (double)(cmds - prev_cmds - self) / dt,
                            (double)(upd_cmds - prev_upd_cmds) / dt,
                            (unsigned long long)(upd - prev_updates));
                    fflush(lag);
                }
                prev_high = hs;
                prev_redis = rs;
                prev_t = t;
                prev_cmds = cmds;
                own = 0;
                prev_obs_own = obs_own;
                prev_upd_cmds = upd_cmds;
                prev_updates = upd;
            }
            next_lag += 1000000;
            if (next_lag < t)
                next_lag = t + 1000000;
        }
        rd_kafka_poll(rk, 0);
        int64_t wake = next_mark < next_lag ? next_mark : next_lag;
        now = wall_us();
        if (wake > now)
            usleep((useconds_t)(wake - now > 5000 ? 5000 : wake - now));
    }

    /* no more markers: wait until every delivered marker is visible, or --settle passes */
    rd_kafka_flush(rk, 10000);
    int64_t settle_end = wall_us() + (int64_t)(settle * 1e6);
    for (;;) {
        rd_kafka_poll(rk, 0);
        int64_t want[MAXP];
        for (int p = 0; p < g_np; p++)
            want[p] = -1;
        for (size_t i = 0; i < g_ns; i++)
            if (!g_s[i].failed && g_s[i].offset >= 0 && g_s[i].offset > want[g_s[i].partition])
                want[g_s[i].partition] = g_s[i].offset;
        int all = 1;
        pthread_mutex_lock(&g_mu);
        for (int p = 0; p < g_np; p++)
            if (want[p] >= 0 && g_latest[p] <= want[p])
                all = 0;
        pthread_mutex_unlock(&g_mu);
        if (all || wall_us() > settle_end)
            break;
        usleep(20000);
    }
    redisReply *r = redisCommand(rc, "PUBLISH %s %s", g_chan, "latency-probe-stop");
    freeReplyObject(r);
    pthread_join(th, NULL);

    /* match samples to observations (per partition, offsets are monotone in time) */
    double *lat = malloc((g_ns + 1) * sizeof *lat);
    size_t nl = 0, failed = 0;
    double sum = 0;
    FILE *sf = samples_csv ? fopen(samples_csv, "w") : NULL;
    if (sf)
        fprintf(sf, "wall_ms,partition,offset,latency_ms,ack_ms\n");
    for (size_t i = 0; i < g_ns; i++) {
        sample *s = &g_s[i];
        if (s->failed || s->offset < 0) {
            failed++;
            continue;
        }
        size_t lo = 0, hi = g_nobs; /* first obs with off > offset */
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (g_obs[mid].off[s->partition] > s->offset)
                hi = mid;
            else
                lo = mid + 1;
        }
        if (lo < g_nobs) {
            double l = (double)(g_obs[lo].t_us - s->t_us) / 1000.0;
            lat[nl++] = l;
            sum += l;
            if (sf)
                fprintf(sf, "%lld,%d,%lld,%.3f,%.3f\n", (long long)(s->t_us / 1000),
                        s->partition, (long long)s->offset, l,
                        (double)(s->t_dr_us - s->t_us) / 1000.0);
        } else if (sf) {
            fprintf(sf, "%lld,%d,%lld,,%.3f\n", (long long)(s->t_us / 1000), s->partition,
                    (long long)s->offset, (double)(s->t_dr_us - s->t_us) / 1000.0);
        }
    }
    if (sf)
        fclose(sf);
    if (lag)
        fclose(lag);
    qsort(lat, nl, sizeof *lat, cmp_d);
    /* parts of the latency: produce -> delivery report (appended), flush cadence (gaps between
     * consecutive updated_ms), flush start -> observed (write, EXEC, PUBLISH, HGETALL) */
    double *ack = malloc((g_ns + 1) * sizeof *ack), *gap = malloc((g_nobs + 1) * sizeof *gap),
           *pub = malloc((g_nobs + 1) * sizeof *pub);
    size_t na = 0, ng = 0, npub = 0;
    for (size_t i = 0; i < g_ns; i++)
        if (!g_s[i].failed && g_s[i].offset >= 0 && g_s[i].t_dr_us)
            ack[na++] = (double)(g_s[i].t_dr_us - g_s[i].t_us) / 1000.0;
    for (size_t i = 0; i < g_nobs; i++) {
        if (g_obs[i].updated_ms > 0)
            pub[npub++] = (double)g_obs[i].t_us / 1000.0 - (double)g_obs[i].updated_ms;
        if (i && g_obs[i].updated_ms > 0 && g_obs[i - 1].updated_ms > 0)
            gap[ng++] = (double)(g_obs[i].updated_ms - g_obs[i - 1].updated_ms);
    }
    qsort(ack, na, sizeof *ack, cmp_d);
    qsort(gap, ng, sizeof *gap, cmp_d);
    qsort(pub, npub, sizeof *pub, cmp_d);
    printf("{\"samples\":%zu,\"resolved\":%zu,\"failed\":%zu,\"updates\":%zu,\"p50_ms\":%.1f,"
           "\"p90_ms\":%.1f,\"p99_ms\":%.1f,\"max_ms\":%.1f,\"mean_ms\":%.1f,"
           "\"ack_p50_ms\":%.1f,\"ack_p99_ms\":%.1f,\"flush_gap_p50_ms\":%.0f,"
           "\"flush_gap_p99_ms\":%.0f,\"flush_gap_max_ms\":%.0f,\"flush_to_seen_p50_ms\":%.1f,"
           "\"flush_to_seen_p99_ms\":%.1f}\n",
           g_ns, nl, failed, g_nobs, pct(lat, nl, 0.5), pct(lat, nl, 0.9), pct(lat, nl, 0.99),
           nl ? lat[nl - 1] : 0.0, nl ? sum / (double)nl : 0.0, pct(ack, na, 0.5),
           pct(ack, na, 0.99), pct(gap, ng, 0.5), pct(gap, ng, 0.99), ng ? gap[ng - 1] : 0.0,
           pct(pub, npub, 0.5), pct(pub, npub, 0.99));
    free(ack);
    free(gap);
    free(pub);
    for (size_t i = 0; i < g_nobs; i++)
        free(g_obs[i].off);
    free(g_obs);
    free(g_s);
    free(lat);
    free(high);
    free(roff);
    redisFree(rc);
    rd_kafka_destroy(rk);
    return 0;
}
