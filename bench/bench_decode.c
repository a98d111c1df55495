/* bench_decode — the decoder alone, in CPU time: the generator's Segment stream (1M messages by
 * default, the bench_core mix) decoded with a rule file's plan, P passes, median ns per message.
 * Written against the decoder API that every build since issue 16 has, so the same source
 * compiles against an older build's library and one machine can time both in one run
 * (bench/decode-ab.sh: "JSON decode not slower than before", issue 19).
 *
 *   build/bench_decode [--events N] [--passes P] [--rules FILE] [--format-index CS_GEN_*]
 * Last stdout line: {"bench":"decode","ns_per_message":..,"passes":P,...}
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "classify.h"
#include "decode.h"
#include "gen.h"

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    uint64_t nevents = 1000000;
    int passes = 7, format = 0;
    const char *rules = "deploy/rules/retail.yaml";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--events") && i + 1 < argc)
            nevents = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--passes") && i + 1 < argc)
            passes = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rules") && i + 1 < argc)
            rules = argv[++i];
        else if (!strcmp(argv[i], "--format-index") && i + 1 < argc)
            format = atoi(argv[++i]); /* CS_GEN_*; only builds with formats have it */
        else {
            fprintf(stderr, "usage: %s [--events N] [--passes P] [--rules FILE] [--format-index N]\n", argv[0]);
            return 2;
        }
    }
    if (passes < 1 || passes > 99)
        return 2;
    cs_gen_conf gc;
    cs_gen_defaults(&gc);
    gc.nevents = nevents;
    gc.ncustomers = 200000;
    gc.first_pass = 1;
    gc.nparts = 16;
    gc.span_ms = 20 * 60000;
    gc.invalid_frac = 0.001;
    gc.too_large_frac = 0;
    gc.late_frac = 0.001;
    gc.long_frac = 0;
#ifdef CS_GEN_HAS_FORMATS
    gc.format = format;
#else
    if (format) {
        fprintf(stderr, "this build has no formats\n");
        return 2;
    }
#endif
    cs_gen_out *g = cs_gen_run(&gc);
    char err[512];
    cs_ruleset *rs = cs_rules_load_file(rules, err, sizeof err);
    if (!rs) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    cs_decoder *d = cs_decoder_new(cs_rules_plan(rs));
    static cs_decoded ev;
    double ns[99];
    uint64_t ok = 0, bytes = 0;
    for (int r = 0; r < passes; r++) {
        ok = 0;
        double s = cpu_s();
        for (int q = 0; q < g->nparts; q++)
            for (size_t i = 0; i < g->parts[q].n; i++)
                ok += cs_decode(d, g->parts[q].msgs[i].payload, g->parts[q].msgs[i].len,
                                g->parts[q].msgs[i].ts_ms, &ev) == CS_DECODE_OK;
        ns[r] = (cpu_s() - s) * 1e9 / (double)g->nmsgs;
    }
    for (int q = 0; q < g->nparts; q++)
        for (size_t i = 0; i < g->parts[q].n; i++)
            bytes += g->parts[q].msgs[i].len;
    double best = ns[0];
    for (int r = 1; r < passes; r++)
        best = ns[r] < best ? ns[r] : best;
    double med = bench_median(ns, passes);
    printf("{\"bench\":\"decode\",\"messages\":%llu,\"ok\":%llu,\"avg_bytes\":%.0f,"
           "\"ns_per_message\":%.1f,\"best_ns\":%.1f,\"passes\":%d}\n",
           (unsigned long long)g->nmsgs, (unsigned long long)ok, (double)bytes / (double)g->nmsgs,
           med, best, passes);
    cs_decoder_destroy(d);
    cs_rules_destroy(rs);
    cs_gen_free(g);
    return 0;
}
