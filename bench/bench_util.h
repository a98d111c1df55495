/* bench_util.h — what every in-process benchmark needs: a monotonic clock and the median of a
 * few runs (figures are medians; these machines are noisy); and bench_core's generated stream,
 * which stage1_probe measures too. */
#ifndef CS_BENCH_UTIL_H
#define CS_BENCH_UTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "gen.h"

static inline double bench_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline int bench_cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Sorts v in place. */
static inline double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* bench_core's --customers default */
#define BENCH_CORE_CUSTOMERS 1000000u

/* The generator settings of bench_core's stream, for nevents events of ncust customers: 16
 * partitions, generated in one pass; 20 minutes of event time (< the session gap: every session
 * is still open at the end); 0.1 % invalid and 0.1 % late events, none too large, no long
 * sessions; nevents / ncust events per customer, at least 1.5. Every program that measures
 * "bench_core's messages" (bench_core, stage1_probe) takes them from here, so they are the same
 * messages by construction; a caller may set more (bench_identity: logins) before cs_gen_run. */
static inline void bench_core_gen_conf(cs_gen_conf *gc, uint64_t nevents, uint32_t ncust)
{
    cs_gen_defaults(gc);
    gc->nevents = nevents;
    gc->ncustomers = ncust;
    gc->first_pass = 1;
    gc->nparts = 16;
    gc->span_ms = 20 * 60000;
    gc->invalid_frac = 0.001;
    gc->too_large_frac = 0;
    gc->late_frac = 0.001;
    gc->long_frac = 0;
    gc->mean_events = (double)nevents / ncust < 1.5 ? 1.5 : (double)nevents / ncust;
}

#endif
