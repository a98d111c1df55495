/* bench_wait.c — what `redis_wait_replicas` (WAIT n after each flush, pipelined behind it) costs
 * on flush latency. Starts its own redis-servers on loopback (tests/support/testsrv.c: a master
 * and two replicas, no persistence, REPLICAOF), then times cs_sink_flush — the whole flush call
 * the daemon's control thread makes: the EVALSHA of ~320 counters, WAIT when asked, PUBLISH —
 * for each set-up:
 *   wait0          no WAIT (the default)
 *   wait1          WAIT 1 with two replicas attached
 *   wait2          WAIT 2 with two replicas attached
 *   wait1_stopped  WAIT 1 with both replicas frozen (SIGSTOP): every flush waits the timeout
 * Rounds interleave the set-ups (wait0, wait1, wait2, wait0, ...) so that machine noise hits them
 * alike. Prints a table and, as the last line, one JSON object.
 *
 *   build/bench_wait [--flushes N (per set-up, default 400)] [--timeout-ms T (default 100)]
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "aggregate.h"
#include "classify.h"
#include "sink.h"
#include "testsrv.h"
#include "util.h"

static const char *yaml = "journey: bench\n"
                          "stages: [a, b]\n"
                          "dimensions:\n"
                          "  channel: {}\n"
                          "rules:\n"
                          "  - { name: ra, stage: a, match: { event: x } }\n"
                          "  - { name: rb, stage: b, match: { event: y } }\n";

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void ctl(ts_redis *r, const char *cmd)
{
    redisContext *c = ts_redis_ctl(r);
    if (!c) {
        fprintf(stderr, "no connection to %d\n", r->port);
        exit(2);
    }
    redisReply *x = redisCommand(c, cmd);
    if (x)
        freeReplyObject(x);
    redisFree(c);
}

static int connected_replicas(ts_redis *m)
{
    redisContext *c = ts_redis_ctl(m);
    redisReply *x = c ? redisCommand(c, "INFO replication") : NULL;
    int n = -1;
    const char *p = x && x->type == REDIS_REPLY_STRING ? strstr(x->str, "connected_slaves:") : NULL;
    if (p)
        n = atoi(p + 17);
    if (x)
        freeReplyObject(x);
    if (c)
        redisFree(c);
    return n;
}

typedef struct setup {
    const char *name;
    int wait, stopped;
    int64_t *us;
    int n;
    uint64_t short_;
} setup;

int main(int argc, char **argv)
{
    int flushes = 400, timeout_ms = 100;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--flushes"))
            flushes = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--timeout-ms"))
            timeout_ms = atoi(argv[i + 1]);
    }
    if (flushes < 10)
        flushes = 10;
    signal(SIGPIPE, SIG_IGN);
    ts_redis m, r1, r2;
    if (ts_redis_setup(&m, "bw-master") < 0 || ts_redis_setup(&r1, "bw-r1") < 0 ||
        ts_redis_setup(&r2, "bw-r2") < 0)
        return 2;
    char cmd[64];
    snprintf(cmd, sizeof cmd, "REPLICAOF 127.0.0.1 %d", m.port);
    ctl(&r1, cmd);
    ctl(&r2, cmd);
    for (int i = 0; i < 500 && connected_replicas(&m) < 2; i++)
        ts_sleep_ms(20);
    if (connected_replicas(&m) < 2) {
        fprintf(stderr, "replicas did not attach\n");
        return 2;
    }
    /* attached is not yet streaming: after a (diskless) sync a replica counts for WAIT only once
     * its first REPLCONF ACK came (up to a second): wait for both to acknowledge a write */
    redisContext *wc = ts_redis_ctl(&m);
    redisReply *x = wc ? redisCommand(wc, "SET bw:warm 1") : NULL;
    if (x)
        freeReplyObject(x);
    x = NULL;
    for (int i = 0; i < 10 && wc && !(x && x->type == REDIS_REPLY_INTEGER && x->integer >= 2); i++) {
        if (x)
            freeReplyObject(x);
        x = redisCommand(wc, "WAIT 2 1500"); /* the control connection times out at 2 s */
    }
    if (!x || x->type != REDIS_REPLY_INTEGER || x->integer < 2) {
        fprintf(stderr, "replicas do not acknowledge (%s %lld)\n", x ? x->str : "-",
                x ? x->integer : -1LL);
        return 2;
    }
    freeReplyObject(x);
    redisFree(wc);

    char err[256];
    cs_ruleset *rs = cs_rules_load_string(yaml, strlen(yaml), "b.yaml", err, sizeof err);
    if (!rs) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    cs_dimdict_mpmc dicts[CS_MAX_DIMS];
    for (int d = 0; d < cs_rules_ndims(rs); d++)
        cs_dimdict_init(&dicts[d], cs_rules_dim(rs, d)->max_values);
    cs_agg agg;
    cs_agg_init(&agg, rs);
    /* the counters of test_sink's test_flush_timing: 48 dimension values x 2 stages x 3 metrics
     * plus the plain hashes, ~320 HINCRBYs a flush */
    char name[32];
    for (int v = 0; v < 48; v++) {
        snprintf(name, sizeof name, "channel-%02d", v);
        uint16_t id = cs_dimdict_id(&dicts[0], name, (uint32_t)strlen(name));
        for (int slot = 1; slot <= 2; slot++)
            for (int k = 0; k < 3; k++)
                *cs_agg_by(&agg, 0, k, id, slot) = v + slot + k + 1;
    }
    for (int i = 0; i < 3; i++) {
        agg.active[i] = i + 1;
        agg.reached[i] = i + 2;
        agg.events[i] = i + 3;
        for (int j = 0; j < 3; j++)
            agg.transitions[i][j] = i + j + 1;
    }
    agg.started = 9;
    agg.changes = 1;
    int ncounters = 0;

    setup su[] = {{"wait0", 0, 0, NULL, 0, 0},
                  {"wait1", 1, 0, NULL, 0, 0},
                  {"wait2", 2, 0, NULL, 0, 0},
                  {"wait1_stopped", 1, 1, NULL, 0, 0}};
    const int ns = (int)(sizeof su / sizeof su[0]);
    cs_sink *sk[4];
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", m.port);
    for (int i = 0; i < ns; i++) {
        cs_sink_conf c = {.url = url, .prefix = "bw", .instance_id = su[i].name,
                          .wait_replicas = su[i].wait, .wait_timeout_ms = timeout_ms, .quiet = 1};
        sk[i] = cs_sink_new(&c, err, sizeof err);
        su[i].us = calloc((size_t)flushes, sizeof *su[i].us);
        if (!sk[i] || !su[i].us)
            return 2;
    }
    cs_flush_offset fo = {"t", 0, 0, 0, -1, 0};
    uint64_t seq = 1;
    /* a warm-up flush each (connect, SCRIPT LOAD) */
    for (int i = 0; i < ns; i++) {
        cs_flush f = {seq++, &agg, rs, dicts, &fo, 1, NULL, 0, cs_wall_ms()};
        if (cs_sink_flush(sk[i], &f, err, sizeof err) != 0) {
            fprintf(stderr, "warm-up: %s\n", err);
            return 2;
        }
        cs_sink_stats st;
        cs_sink_stats_get(sk[i], &st);
        ncounters = (int)st.last_flush_commands;
    }
    /* the three live set-ups interleaved, then the frozen replicas (fewer rounds: each waits) */
    for (int k = 0; k < flushes; k++)
        for (int i = 0; i < ns; i++) {
            if (su[i].stopped)
                continue;
            fo.next_offset = (int64_t)seq;
            cs_flush f = {seq++, &agg, rs, dicts, &fo, 1, NULL, 0, cs_wall_ms()};
            int64_t t0 = cs_mono_us();
            if (cs_sink_flush(sk[i], &f, err, sizeof err) != 0) {
                fprintf(stderr, "%s: %s\n", su[i].name, err);
                return 2;
            }
            su[i].us[su[i].n++] = cs_mono_us() - t0;
        }
    kill(r1.pid, SIGSTOP);
    kill(r2.pid, SIGSTOP);
    int nstop = flushes / 10 < 20 ? 20 : flushes / 10;
    for (int i = 0; i < ns; i++) {
        if (!su[i].stopped)
            continue;
        for (int k = 0; k < nstop; k++) {
            fo.next_offset = (int64_t)seq;
            cs_flush f = {seq++, &agg, rs, dicts, &fo, 1, NULL, 0, cs_wall_ms()};
            int64_t t0 = cs_mono_us();
            if (cs_sink_flush(sk[i], &f, err, sizeof err) != 0) {
                fprintf(stderr, "%s: %s\n", su[i].name, err);
                return 2;
            }
            su[i].us[su[i].n++] = cs_mono_us() - t0;
        }
    }
    kill(r1.pid, SIGCONT);
    kill(r2.pid, SIGCONT);

    printf("flush of %d commands (EVALSHA of ~320 HINCRBYs + PUBLISH), master + 2 replicas on "
           "loopback, WAIT timeout %d ms\n",
           ncounters, timeout_ms);
    printf("%-14s %8s %10s %10s %10s %10s %8s\n", "set-up", "flushes", "mean ms", "p50 ms",
           "p90 ms", "p99 ms", "short");
    char json[2048];
    size_t o = (size_t)snprintf(json, sizeof json, "{\"flush_commands\":%d,\"wait_timeout_ms\":%d",
                                ncounters, timeout_ms);
    double p50_0 = 0;
    for (int i = 0; i < ns; i++) {
        cs_sink_stats st;
        cs_sink_stats_get(sk[i], &st);
        int64_t *v = su[i].us;
        int n = su[i].n;
        qsort(v, (size_t)n, sizeof *v, cmp_i64);
        double sum = 0;
        for (int k = 0; k < n; k++)
            sum += (double)v[k];
        double mean = sum / n / 1000, p50 = (double)v[n / 2] / 1000,
               p90 = (double)v[n * 9 / 10] / 1000, p99 = (double)v[n * 99 / 100] / 1000;
        if (i == 0)
            p50_0 = p50;
        printf("%-14s %8d %10.3f %10.3f %10.3f %10.3f %8" PRIu64 "\n", su[i].name, n, mean, p50,
               p90, p99, st.wait_short);
        o += (size_t)snprintf(json + o, sizeof json - o,
                              ",\"%s\":{\"flushes\":%d,\"mean_ms\":%.3f,\"p50_ms\":%.3f,"
                              "\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"wait_short\":%" PRIu64
                              ",\"p50_over_wait0_ms\":%.3f}",
                              su[i].name, n, mean, p50, p90, p99, st.wait_short, p50 - p50_0);
        cs_sink_destroy(sk[i]);
        free(su[i].us);
    }
    snprintf(json + o, sizeof json - o, "}");
    cs_agg_free(&agg);
    for (int d = 0; d < cs_rules_ndims(rs); d++)
        cs_dimdict_free(&dicts[d]);
    cs_rules_destroy(rs);
    ts_redis_teardown(&r2);
    ts_redis_teardown(&r1);
    ts_redis_teardown(&m);
    printf("%s\n", json);
    return 0;
}
