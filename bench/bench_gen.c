/* bench_gen — how fast the synthetic clickstream is written, this build's generator against
 * the one before issue 15 (commit 2cf2765's tests/lib/gen.c, built from git by `make bench-gen`
 * with its symbols renamed cs_oldgen_*), in one run, alternating, so the ratio holds on a noisy
 * machine.
 *
 * Measured (no Kafka: generation only, each message's bytes touched by a checksum like a
 * producer's copy would):
 *   old       the previous generator's cs_gen_next, one thread
 *   merged    this generator's cs_gen_next (the whole stream in its fixed order; what --expect,
 *             --unkeyed and the tests use), one thread
 *   pstream   this generator's partition streams one after another, one thread: what each of
 *             clickstage-loadgen's producer threads does
 *   threads   the partition streams spread over --threads threads (events/s of all together)
 * Single-thread figures are the thread's CPU time (what a producer thread pays, whatever else
 * shares the cores); the threads figure is wall time. Every figure is the median of --runs runs;
 * the speed-up is per pair of runs (old vs partition streams in the same round).
 *
 * Usage: bench_gen [--events N] [--customers C] [--partitions P] [--runs R] [--threads T]
 * Stdout: a table, then as its LAST line one JSON object.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <time.h>

#include "bench_util.h"
#include "gen.h"

/* ---- the old generator (build/bench/oldgen/gen_old.o): its configuration struct is the same
 * as today's cs_gen_conf, its message struct is the prefix declared here ---- */
typedef struct old_msg {
    const char *payload;
    size_t len;
    const char *key;
    size_t keylen;
    int part;
    int64_t ts_ms;
    int invalid, late;
} old_msg;
typedef struct old_gen old_gen;
old_gen *cs_oldgen_new(const cs_gen_conf *c);
int cs_oldgen_next(old_gen *g, old_msg *m);
void cs_oldgen_destroy(old_gen *g);

/* CPU time of the calling thread: the single-thread figures are per-thread costs, not slowed
 * down by whatever else shares the machine's cores */
static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct res {
    double secs;
    uint64_t n, bytes, sum;
} res;

static res run_old(const cs_gen_conf *c)
{
    res r = {0};
    double t0 = thread_cpu_s();
    old_gen *g = cs_oldgen_new(c);
    old_msg m;
    while (cs_oldgen_next(g, &m)) {
        r.n++;
        r.bytes += m.len;
        r.sum += (unsigned char)m.payload[m.len / 2] + m.keylen;
    }
    cs_oldgen_destroy(g);
    r.secs = thread_cpu_s() - t0;
    return r;
}

static res run_merged(const cs_gen_conf *c)
{
    res r = {0};
    double t0 = thread_cpu_s();
    cs_gen *g = cs_gen_new(c);
    cs_gen_msg m;
    while (cs_gen_next(g, &m)) {
        r.n++;
        r.bytes += m.len;
        r.sum += (unsigned char)m.payload[m.len / 2] + m.keylen;
    }
    cs_gen_destroy(g);
    r.secs = thread_cpu_s() - t0;
    return r;
}

typedef struct targ {
    const cs_gen_plan *pl;
    int first, step;
    res r;
} targ;

static void *pstreams(void *a_)
{
    targ *a = a_;
    cs_gen_msg m;
    for (int p = a->first; p < cs_gen_plan_conf(a->pl)->nparts; p += a->step) {
        cs_gen_pstream *s = cs_gen_pstream_new(a->pl, p);
        while (cs_gen_pstream_next(s, &m)) {
            a->r.n++;
            a->r.bytes += m.len;
            a->r.sum += (unsigned char)m.payload[m.len / 2] + m.keylen;
        }
        cs_gen_pstream_destroy(s);
    }
    return NULL;
}

/* the plan is built inside the timed region: clickstage-loadgen pays for it too */
static res run_threads(const cs_gen_conf *c, int nthreads)
{
    /* one thread: its CPU time; several: wall time (what they achieve together) */
    double t0 = nthreads > 1 ? bench_now_s() : thread_cpu_s();
    cs_gen_plan *pl = cs_gen_plan_new(c);
    targ *a = calloc((size_t)nthreads, sizeof *a);
    pthread_t *th = calloc((size_t)nthreads, sizeof *th);
    for (int i = 0; i < nthreads; i++) {
        a[i] = (targ){.pl = pl, .first = i, .step = nthreads};
        if (nthreads > 1)
            pthread_create(&th[i], NULL, pstreams, &a[i]);
        else
            pstreams(&a[i]);
    }
    res r = {0};
    for (int i = 0; i < nthreads; i++) {
        if (nthreads > 1)
            pthread_join(th[i], NULL);
        r.n += a[i].r.n;
        r.bytes += a[i].r.bytes;
        r.sum += a[i].r.sum;
    }
    r.secs = (nthreads > 1 ? bench_now_s() : thread_cpu_s()) - t0;
    cs_gen_plan_free(pl);
    free(a);
    free(th);
    return r;
}

int main(int argc, char **argv)
{
    cs_gen_conf c;
    cs_gen_defaults(&c);
    c.nevents = 2000000;
    c.ncustomers = 100000;
    int runs = 5, nthreads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--events")) c.nevents = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--customers")) c.ncustomers = (uint32_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--partitions")) c.nparts = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--runs")) runs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) nthreads = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: bench_gen [--events N] [--customers C] [--partitions P] "
                            "[--runs R] [--threads T]\n");
            return 2;
        }
    }
    if (runs < 1 || nthreads < 1)
        return 2;
    double *ns_old = calloc((size_t)runs, sizeof(double)), *ns_merged = calloc((size_t)runs, sizeof(double)),
           *ns_ps = calloc((size_t)runs, sizeof(double)), *eps_thr = calloc((size_t)runs, sizeof(double)),
           *ratio = calloc((size_t)runs, sizeof(double));
    double bytes_old = 0, bytes_new = 0;
    unsigned long long sink = 0;
    printf("bench_gen: %llu events, %u customers, %d partitions, %d runs, %d threads\n",
           (unsigned long long)c.nevents, c.ncustomers, c.nparts, runs, nthreads);
    for (int i = 0; i < runs; i++) {
        res o = run_old(&c), g = run_merged(&c), p = run_threads(&c, 1),
            t = run_threads(&c, nthreads);
        ns_old[i] = o.secs * 1e9 / (double)o.n;
        ns_merged[i] = g.secs * 1e9 / (double)g.n;
        ns_ps[i] = p.secs * 1e9 / (double)p.n;
        eps_thr[i] = (double)t.n / t.secs;
        ratio[i] = ns_old[i] / ns_ps[i];
        bytes_old = (double)o.bytes / (double)o.n;
        bytes_new = (double)p.bytes / (double)p.n;
        sink += o.sum + g.sum + p.sum + t.sum;
        printf("  run %d: old %.0f ns/event, merged %.0f, pstream %.0f, %d threads %.0f events/s\n",
               i + 1, ns_old[i], ns_merged[i], ns_ps[i], nthreads, eps_thr[i]);
        fflush(stdout);
    }
    double mo = bench_median(ns_old, runs), mm = bench_median(ns_merged, runs),
           mp = bench_median(ns_ps, runs), mt = bench_median(eps_thr, runs),
           mr = bench_median(ratio, runs);
    printf("\n%-34s %12s %14s %12s\n", "generator (median of runs)", "ns/event", "events/s", "bytes/event");
    printf("%-34s %12.0f %14.0f %12.0f\n", "old (2cf2765), 1 thread", mo, 1e9 / mo, bytes_old);
    printf("%-34s %12.0f %14.0f %12.0f\n", "new, merged stream, 1 thread", mm, 1e9 / mm, bytes_new);
    printf("%-34s %12.0f %14.0f %12.0f\n", "new, partition streams, 1 thread", mp, 1e9 / mp, bytes_new);
    printf("%-34s %12s %14.0f %12.0f\n", "new, partition streams, threads", "", mt, bytes_new);
    printf("speed-up per thread (old / partition streams, per pair of runs, median): %.2fx\n", mr);
    fprintf(stderr, "(checksum %llu)\n", sink);
    printf("{\"bench\":\"gen\",\"events\":%llu,\"partitions\":%d,\"runs\":%d,\"threads\":%d,"
           "\"old_ns_per_event\":%.1f,\"merged_ns_per_event\":%.1f,\"pstream_ns_per_event\":%.1f,"
           "\"threads_events_per_sec\":%.0f,\"speedup_per_thread\":%.2f,"
           "\"old_bytes_per_event\":%.1f,\"new_bytes_per_event\":%.1f}\n",
           (unsigned long long)c.nevents, c.nparts, runs, nthreads, mo, mm, mp, mt, mr, bytes_old,
           bytes_new);
    free(ns_old);
    free(ns_merged);
    free(ns_ps);
    free(eps_thr);
    free(ratio);
    return 0;
}
