/* bench_restore — snapshot size, write time and restore time of one partition's state
 * (pipeline/snapshot.h) with N open sessions (default 1M).
 *
 * The state: N customers, each with one open session made by 1-4 events (first events spread
 * over 3 hours of event time, later ones up to 20 minutes apart, stages from a retail rule
 * set, channel and persona set on most sessions), no watermark applied (as when another
 * partition holds it back), so all N sessions are open. Then, R times (default 5):
 * cs_snapshot_write, and cs_snapshot_read into a new pstate with fresh dictionaries (another
 * process) until the pstate is usable. Reported: median write and restore times, snapshot bytes
 * (total, per session), whether the restored state has the same counts and re-serialises to the
 * same bytes. The last stdout line is one JSON object.
 *
 *   build/bench_restore [--sessions N] [--runs R] [--out FILE (the snapshot, for inspection)]
 */
#include "bench_util.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aggregate.h"
#include "classify.h"
#include "sessionize.h"
#include "snapshot.h"

static const char *yaml =
    "journey: retail\n"
    "stages: [awareness, consideration, purchase, service, loyalty]\n"
    "session: { gap: 30m, max_duration: 24h, lateness: 30s }\n"
    "customer_ttl: 90d\n"
    "dimensions:\n"
    "  channel: { max_values: 64 }\n"
    "  persona: { path: properties.persona, max_values: 16 }\n"
    "rules:\n"
    "  - { name: land, stage: awareness, match: { event: [page, ad_click], channel: [social, "
    "display, print, search] } }\n"
    "  - { name: research, stage: consideration, match: { event: [product_view, compare] } }\n"
    "  - { name: buy, stage: purchase, match: { event: [checkout_started, order_completed] } }\n"
    "  - { name: support, stage: service, match: { event: [support_chat, order_tracked] } }\n"
    "  - { name: advocacy, stage: loyalty, match: { event: [referral_sent, review_written] } }\n";

static double now_ms(void)
{
    return bench_now_s() * 1e3;
}

#define median bench_median

static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void dicts_init(cs_dimdict_mpmc *d, const cs_ruleset *rs)
{
    for (int i = 0; i < cs_rules_ndims(rs); i++)
        if (cs_dimdict_init(&d[i], cs_rules_dim(rs, i)->max_values))
            exit(1);
}

static void dicts_free(cs_dimdict_mpmc *d, const cs_ruleset *rs)
{
    for (int i = 0; i < cs_rules_ndims(rs); i++)
        cs_dimdict_free(&d[i]);
}

int main(int argc, char **argv)
{
    long nsess = 1000000;
    int runs = 5;
    const char *out_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--sessions") && i + 1 < argc)
            nsess = atol(argv[++i]);
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out_path = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--sessions N] [--runs R] [--out FILE]\n", argv[0]);
            return 2;
        }
    }
    if (nsess < 1 || runs < 1 || runs > 99)
        return 2;

    char err[256];
    cs_ruleset *rs = cs_rules_load_string(yaml, strlen(yaml), "bench.yaml", err, sizeof err);
    if (!rs) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    cs_dimdict_mpmc dicts[CS_MAX_DIMS];
    dicts_init(dicts, rs);
    cs_agg agg;
    if (cs_agg_init(&agg, rs))
        return 1;
    cs_sessctx c = {.rs = rs, .agg = &agg, .dicts = dicts, .W = INT64_MIN};
    cs_pstate *p = cs_pstate_new(cs_rules_session(rs), cs_rules_ndims(rs));

    static const char *const evn[] = {"page", "ad_click", "product_view", "compare",
                                      "checkout_started", "order_completed", "support_chat",
                                      "referral_sent", "scroll", "search"};
    static const char *const chan[] = {"social", "search", "print", "display",
                                       "email", "tv", "affiliate", "direct"};
    static const char *const pers[] = {"young", "family", "professional", "senior"};
    const int64_t T0 = 1793520000000LL, MIN = 60000;
    const int persona_field = cs_rules_dim(rs, 1)->field;
    uint64_t s = 42;
    double t_build = now_ms();
    long nevents = 0;
    cs_decoded ev;
    memset(&ev, 0, sizeof ev);
    for (long i = 0; i < nsess; i++) {
        char cust[24];
        int cl = snprintf(cust, sizeof cust, "user-%08ld", i);
        int64_t t = T0 + (int64_t)(rnd(&s) % (uint64_t)(180 * MIN));
        int k = 1 + (int)(rnd(&s) % 4);
        const char *ch = rnd(&s) % 10 < 8 ? chan[rnd(&s) % 8] : NULL;
        const char *pe = rnd(&s) % 10 < 6 ? pers[rnd(&s) % 4] : NULL;
        for (int j = 0; j < k; j++) {
            const char *e = evn[rnd(&s) % 10];
            ev.f[CS_F_CUSTOMER].p = cust;
            ev.f[CS_F_CUSTOMER].len = (uint32_t)cl;
            ev.f[CS_F_EVENT].p = e;
            ev.f[CS_F_EVENT].len = (uint32_t)strlen(e);
            ev.f[CS_F_CHANNEL].p = ch;
            ev.f[CS_F_CHANNEL].len = ch ? (uint32_t)strlen(ch) : 0;
            ev.f[persona_field].p = pe;
            ev.f[persona_field].len = pe ? (uint32_t)strlen(pe) : 0;
            ev.ts_ms = t;
            cs_sessionize(p, &c, &ev);
            nevents++;
            t += (int64_t)(rnd(&s) % (uint64_t)(20 * MIN));
        }
    }
    t_build = now_ms() - t_build;
    cs_pstate_stats st;
    cs_pstate_stats_get(p, &st);
    printf("state: %llu customers, %llu open sessions from %ld events (built in %.0f ms); "
           "in memory %.1f MB\n",
           (unsigned long long)st.customers, (unsigned long long)st.sessions, nevents, t_build,
           (double)(st.session_bytes + st.customer_bytes) / 1e6);

    double wt[100], rt[100];
    char *buf = NULL;
    size_t len = 0;
    cs_snap_info wi = {.next_offset = 123456789, .applied_wm = INT64_MIN};
    for (int r = 0; r < runs; r++) {
        free(buf);
        double t0 = now_ms();
        if (cs_snapshot_write(p, rs, dicts, &wi, &buf, &len)) {
            fprintf(stderr, "cs_snapshot_write failed\n");
            return 1;
        }
        wt[r] = now_ms() - t0;
    }
    if (out_path) {
        FILE *f = fopen(out_path, "wb");
        if (!f || fwrite(buf, 1, len, f) != len || fclose(f))
            perror(out_path);
    }

    int same_counts = 1, canonical = 1;
    for (int r = 0; r < runs; r++) {
        cs_dimdict_mpmc d2[CS_MAX_DIMS];
        dicts_init(d2, rs);
        cs_snap_info ri;
        double t0 = now_ms();
        cs_pstate *q = cs_snapshot_read(buf, len, rs, d2, &ri, err, sizeof err);
        rt[r] = now_ms() - t0;
        if (!q) {
            fprintf(stderr, "cs_snapshot_read: %s\n", err);
            return 1;
        }
        cs_pstate_stats qs;
        cs_pstate_stats_get(q, &qs);
        if (qs.sessions != st.sessions || qs.customers != st.customers ||
            ri.sessions != st.sessions || ri.next_offset != wi.next_offset ||
            cs_pstate_max_time(q) != cs_pstate_max_time(p))
            same_counts = 0;
        if (r == 0) {
            char *b2;
            size_t l2;
            if (cs_snapshot_write(q, rs, d2, &wi, &b2, &l2) || l2 != len || memcmp(b2, buf, len))
                canonical = 0;
            free(b2);
        }
        cs_pstate_destroy(q);
        dicts_free(d2, rs);
    }
    double wm = median(wt, runs), rm = median(rt, runs);
    double per = (double)len / (double)st.sessions;
    printf("snapshot: %zu bytes, %.2f bytes per session (%.1f%% of the in-memory state)\n", len,
           per, 100.0 * (double)len / (double)(st.session_bytes + st.customer_bytes));
    printf("write:    %.1f ms (median of %d)\n", wm, runs);
    printf("restore:  %.1f ms (median of %d), %.1f ms per million sessions\n", rm, runs,
           rm * 1e6 / (double)st.sessions);
    printf("restored: %s counts, %s bytes when written again\n", same_counts ? "same" : "DIFFERENT",
           canonical ? "same" : "DIFFERENT");
    printf("{\"sessions\":%llu,\"customers\":%llu,\"bytes\":%zu,\"bytes_per_session\":%.2f,"
           "\"write_ms\":%.1f,\"restore_ms\":%.1f,\"restore_ms_per_million\":%.1f,\"runs\":%d,"
           "\"same_counts\":%s,\"canonical\":%s}\n",
           (unsigned long long)st.sessions, (unsigned long long)st.customers, len, per, wm, rm,
           rm * 1e6 / (double)st.sessions, runs, same_counts ? "true" : "false",
           canonical ? "true" : "false");
    free(buf);
    cs_pstate_destroy(p);
    cs_agg_free(&agg);
    dicts_free(dicts, rs);
    cs_rules_destroy(rs);
    return same_counts && canonical ? 0 : 1;
}
