/* bench_redteam — what hostile or merely huge inputs cost (issue 16, item 4: what the fuzzers'
 * 70 kB inputs do not reach). Every figure is the median of RUNS runs of a loop timed for at
 * least 0.1 s; the last stdout line is one JSON object with every figure.
 *
 *   build/bench_redteam [--runs R] [--quick]
 *
 * Times are this thread's CPU time (CLOCK_THREAD_CPUTIME_ID), not wall time: the machine is
 * shared, and a descheduled thread would otherwise count other work as its own.
 *
 * Sections (keys in the JSON):
 *  glob      cs_glob_match on pathological patterns against 4/16/64 KB urls: ns per byte, flat
 *            in the url length (linear) and in the pattern.
 *  rules     files of N = 10, 1,000, 4,096, 10,000 rules of one kind: exact (event), url_prefix,
 *            glob with a literal head, glob "*\/p/<i>/\*", and event + glob: load ms, heap
 *            bytes of the table, ns per match (a hit on the last rule, a miss), the reference
 *            scan's ns per match on the same file (= the matcher before the url index for
 *            url-only files), candidates tested.
 *  crossover N = 1..32 url-only rules: the matcher vs the scan (where the url index pays).
 *  yaml      load of hostile rule files: deep flow nesting, many anchors, a 4 MiB file, the
 *            longest decode paths, the largest valid table.
 *  dims      1M distinct values into one dimension dictionary (max_values 4096): heap before and
 *            after, ns per value; one aggregate's size and a flush's clear + merge + walk.
 *  decode    deep nesting, 1 MB of keys, escapes, 100 KB customer ids (over the default limit,
 *            and with limits.max_bytes raised), and XXH3-128 of a 100 KB id.
 */
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "aggregate.h"
#include "bench_util.h"
#include "classify.h"
#include "decode.h"

#ifdef CS_BENCH_BASELINE
/* Built against a tree from before issue 16's fixes (8bf4e04) for the "before" figures in
 * bench/RESULTS.md: no work counters, no url index; the inputs that took hours there are
 * skipped. */
typedef struct cs_match_stats {
    uint64_t words, checked, url_passes, url_bytes;
} cs_match_stats;
static int cs_rules_match_stats(const cs_ruleset *rs, const cs_decoded *ev, cs_match_stats *st)
{
    (void)st;
    return cs_rules_match(rs, ev);
}
static int cs_rules_url_indexed(const cs_ruleset *rs)
{
    (void)rs;
    return 0;
}
#define BASELINE 1
#else
#define BASELINE 0
#endif

static int RUNS = 3;
static double MIN_SECS = 0.1;

/* ---- JSON accumulation ------------------------------------------------------------------- */

static char *json;
static size_t jlen, jcap;

static void jadd(const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(json + jlen, jcap - jlen, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < jcap - jlen) {
            jlen += (size_t)n;
            return;
        }
        jcap = jcap ? jcap * 2 : 4096;
        json = realloc(json, jcap);
        if (!json)
            exit(1);
    }
}

/* ---- timing ------------------------------------------------------------------------------- */

static double cpu_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef void (*op_fn)(void *arg);

/* ns per call of f(arg): median over RUNS runs of a loop of at least MIN_SECS. */
static double ns_per(op_fn f, void *arg)
{
    double v[16];
    int runs = RUNS < 16 ? RUNS : 16;
    for (int r = 0; r < runs; r++) {
        long n = 0, batch = 1;
        double t0 = cpu_now_s(), t;
        do {
            for (long i = 0; i < batch; i++)
                f(arg);
            n += batch;
            batch *= 2;
            t = cpu_now_s() - t0;
        } while (t < MIN_SECS);
        v[r] = t / (double)n * 1e9;
    }
    return bench_median(v, runs);
}

static size_t heap_now(void)
{
    struct mallinfo2 m = mallinfo2();
    return m.uordblks + m.hblkhd;
}

static volatile int sink_i;

/* ---- glob ---------------------------------------------------------------------------------- */

typedef struct garg {
    const char *pat, *s;
    size_t plen, slen;
} garg;

static void glob_op(void *p)
{
    garg *g = p;
    sink_i += cs_glob_match(g->pat, g->plen, g->s, g->slen);
}

static void bench_glob(void)
{
    enum { MAXL = 65536 };
    char *aa = malloc(MAXL), *url = malloc(MAXL);
    memset(aa, 'a', MAXL);
    /* a url-like subject: path segments of letters and digits, no "/reviews/" */
    for (size_t i = 0; i < MAXL; i++)
        url[i] = i % 9 == 0 ? '/' : (char)('a' + (i * 7) % 26);
    static char mid[300];
    mid[0] = '*';
    memset(mid + 1, 'a', 128);
    mid[129] = 'b';
    memset(mid + 130, 'a', 127);
    mid[257] = '*';
    mid[258] = '\0';
    /* subjects: 'u' a url-like path, 'a' all 'a', 'b' all 'a' but a final 'b' */
    struct {
        const char *name, *pat;
        char subj;
    } cases[] = {
        {"reviews_typical_url", "*/reviews/*", 'u'},
        {"star_a128_b_a127_star_vs_aaaa", mid, 'a'},
        {"sixteen_stars_vs_aaaa", "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b*", 'a'},
        {"head_mid_tail_vs_aaab", "aaaa*aaaab*aaab", 'b'},
    };
    printf("\nglob: cs_glob_match, ns per match and per url byte (flat = linear)\n");
    printf("%-36s %8s %12s %10s\n", "pattern", "url B", "ns/match", "ns/byte");
    jadd(",\"glob\":{");
    size_t j0 = jlen;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (size_t L = 4096; L <= MAXL; L *= 4) {
            garg g = {cases[c].pat, cases[c].subj == 'u' ? url : aa, strlen(cases[c].pat), L};
            aa[L - 1] = cases[c].subj == 'b' ? 'b' : 'a';
            double ns = ns_per(glob_op, &g);
            aa[L - 1] = 'a';
            printf("%-36s %8zu %12.1f %10.3f\n", cases[c].name, L, ns, ns / (double)L);
            jadd("%s\"%s_%zuk_ns\":%.1f", jlen > j0 ? "," : "", cases[c].name, L / 1024, ns);
        }
    }
    jadd("}");
    free(aa);
    free(url);
}

/* ---- rules at scale ------------------------------------------------------------------------ */

enum { K_EXACT, K_PREFIX, K_GLOB_HEAD, K_GLOB_STAR, K_EVENT_GLOB, K_N };
static const char *const kind_name[K_N] = {"exact", "prefix", "glob_head", "glob_star",
                                           "event_glob"};

static char *gen_rules(int kind, int n, size_t *len)
{
    size_t cap = (size_t)n * 128 + 256, o = 0;
    char *y = malloc(cap);
    o += (size_t)snprintf(y + o, cap - o, "journey: j\nstages: [a, b]\nrules:\n");
    for (int i = 0; i < n; i++) {
        switch (kind) {
        case K_EXACT:
            o += (size_t)snprintf(y + o, cap - o,
                                  "- {name: rule-%d, stage: a, match: {event: ev%d}}\n", i, i);
            break;
        case K_PREFIX:
            o += (size_t)snprintf(y + o, cap - o,
                                  "- {name: rule-%d, stage: a, match: {url_prefix: "
                                  "\"https://shop.example.com/c/%d/\"}}\n",
                                  i, i);
            break;
        case K_GLOB_HEAD:
            o += (size_t)snprintf(y + o, cap - o,
                                  "- {name: rule-%d, stage: a, match: {url: "
                                  "\"https://shop.example.com/p/%d/*\"}}\n",
                                  i, i);
            break;
        case K_GLOB_STAR:
            o += (size_t)snprintf(y + o, cap - o,
                                  "- {name: rule-%d, stage: a, match: {url: \"*/p/%d/*\"}}\n", i,
                                  i);
            break;
        default:
            o += (size_t)snprintf(y + o, cap - o,
                                  "- {name: rule-%d, stage: a, match: {event: page, url: "
                                  "\"*/p/%d/*\"}}\n",
                                  i, i);
            break;
        }
    }
    *len = o;
    return y;
}

static void setf(cs_decoded *e, int f, const char *s)
{
    e->f[f].p = s;
    e->f[f].len = s ? (uint32_t)strlen(s) : 0;
    e->f[f].kind = CS_SV_STR;
}

typedef struct marg {
    const cs_ruleset *rs;
    cs_decoded ev;
} marg;

static void match_op(void *p)
{
    marg *m = p;
    sink_i += cs_rules_match(m->rs, &m->ev);
}

static void scan_op(void *p)
{
    marg *m = p;
    sink_i += cs_rules_match_scan(m->rs, &m->ev);
}

typedef struct larg {
    const char *y;
    size_t len;
} larg;

static void load_op(void *p)
{
    larg *l = p;
    char err[256];
    cs_ruleset *rs = cs_rules_load_string(l->y, l->len, "bench", err, sizeof err);
    cs_rules_destroy(rs);
}

/* an event for `kind` that hits rule `i` (or misses when i < 0) */
static void event_for(int kind, int i, marg *m, char *evbuf, char *urlbuf)
{
    memset(&m->ev, 0, sizeof m->ev);
    setf(&m->ev, CS_F_CUSTOMER, "c1");
    if (kind == K_EXACT)
        snprintf(evbuf, 32, i < 0 ? "nomatch" : "ev%d", i);
    else
        snprintf(evbuf, 32, "page");
    setf(&m->ev, CS_F_EVENT, evbuf);
    if (i < 0)
        snprintf(urlbuf, 256, "https://shop.example.com/q/12345/item?utm_source=x&utm_medium=y");
    else if (kind == K_PREFIX)
        snprintf(urlbuf, 256, "https://shop.example.com/c/%d/shoes?utm_source=x", i);
    else
        snprintf(urlbuf, 256, "https://shop.example.com/p/%d/reviews?utm_source=x", i);
    setf(&m->ev, CS_F_URL, urlbuf);
}

static void bench_rules(int quick)
{
    static const int ns_[] = {10, 1000, 4096, 10000};
    int nn = quick ? 2 : 4;
    printf("\nrules: files of N rules of one kind; match = cs_rules_match, scan = the reference "
           "scan\n(for url-only kinds the scan is what matching cost before the url index)\n");
    printf("%-11s %6s %9s %11s %9s %9s %10s %10s %8s %7s\n", "kind", "N", "load ms", "heap B",
           "hit ns", "miss ns", "hit scan", "miss scan", "tested", "indexed");
    jadd(",\"rules\":{");
    size_t j0 = jlen;
    for (int k = 0; k < K_N; k++)
        for (int x = 0; x < nn; x++) {
            int n = ns_[x];
            size_t len;
            char *y = gen_rules(k, n, &len);
            larg l = {y, len};
            double load_ns = ns_per(load_op, &l);
            char err[256];
            size_t h0 = heap_now();
            cs_ruleset *rs = cs_rules_load_string(y, len, "bench", err, sizeof err);
            size_t heap = heap_now() - h0;
            if (!rs) { /* over this build's rule limit */
                printf("%-11s %6d %9.2f  %s\n", kind_name[k], n, load_ns / 1e6, err);
                jadd("%s\"%s_%d\":{\"load_ms\":%.2f,\"rejected\":1}", jlen > j0 ? "," : "",
                     kind_name[k], n, load_ns / 1e6);
                free(y);
                continue;
            }
            char evb[32], urlb[256], evm[32], urlm[256];
            marg hit = {.rs = rs}, miss = {.rs = rs};
            event_for(k, n - 1, &hit, evb, urlb);
            event_for(k, -1, &miss, evm, urlm);
            if (cs_rules_match(rs, &hit.ev) != n - 1 || cs_rules_match(rs, &miss.ev) != -1) {
                fprintf(stderr, "bench: wrong answer for %s N=%d\n", kind_name[k], n);
                exit(1);
            }
            cs_match_stats st = {0};
            cs_rules_match_stats(rs, &hit.ev, &st);
            cs_rules_match_stats(rs, &miss.ev, &st);
            double h_ns = ns_per(match_op, &hit), m_ns = ns_per(match_op, &miss);
            double hs_ns = ns_per(scan_op, &hit), ms_ns = ns_per(scan_op, &miss);
            printf("%-11s %6d %9.2f %11zu %9.1f %9.1f %10.1f %10.1f %8llu %7d\n", kind_name[k], n,
                   load_ns / 1e6, heap, h_ns, m_ns, hs_ns, ms_ns,
                   (unsigned long long)st.checked, cs_rules_url_indexed(rs));
            jadd("%s\"%s_%d\":{\"load_ms\":%.2f,\"heap_bytes\":%zu,\"hit_ns\":%.1f,"
                 "\"miss_ns\":%.1f,\"hit_scan_ns\":%.1f,\"miss_scan_ns\":%.1f,\"tested\":%llu,"
                 "\"url_indexed\":%d}",
                 jlen > j0 ? "," : "", kind_name[k], n, load_ns / 1e6, heap, h_ns, m_ns, hs_ns,
                 ms_ns, (unsigned long long)st.checked, cs_rules_url_indexed(rs));
            cs_rules_destroy(rs);
            free(y);
        }
    jadd("}");

    /* crossover: a miss on N url-only rules, matcher vs scan */
    printf("\ncrossover: miss on N url-only rules, ns (the index is built from 8 indexable "
           "rules)\n%-11s %4s %10s %10s\n",
           "kind", "N", "match", "scan");
    jadd(",\"crossover\":{");
    j0 = jlen;
    static const int cn[] = {1, 2, 4, 7, 8, 16, 32};
    for (int k = K_PREFIX; k <= K_GLOB_STAR; k += 2)
        for (size_t x = 0; x < sizeof cn / sizeof cn[0]; x++) {
            size_t len;
            char *y = gen_rules(k, cn[x], &len);
            char err[256];
            cs_ruleset *rs = cs_rules_load_string(y, len, "bench", err, sizeof err);
            char evm[32], urlm[256];
            marg miss = {.rs = rs};
            event_for(k, -1, &miss, evm, urlm);
            double m_ns = ns_per(match_op, &miss), s_ns = ns_per(scan_op, &miss);
            printf("%-11s %4d %10.1f %10.1f\n", kind_name[k], cn[x], m_ns, s_ns);
            jadd("%s\"%s_%d\":{\"match_ns\":%.1f,\"scan_ns\":%.1f}", jlen > j0 ? "," : "",
                 kind_name[k], cn[x], m_ns, s_ns);
            cs_rules_destroy(rs);
            free(y);
        }
    jadd("}");
}

/* ---- hostile YAML ---------------------------------------------------------------------------- */

static double time_load_ms(const char *y, size_t len, char *err, size_t errlen, size_t *heap)
{
    double v[16];
    int runs = RUNS < 16 ? RUNS : 16;
    for (int r = 0; r < runs; r++) {
        size_t h0 = heap_now();
        double t0 = cpu_now_s();
        cs_ruleset *rs = cs_rules_load_string(y, len, "bench", err, errlen);
        v[r] = (cpu_now_s() - t0) * 1e3;
        if (heap)
            *heap = rs ? heap_now() - h0 : 0;
        cs_rules_destroy(rs);
    }
    return bench_median(v, runs);
}

static void bench_yaml(void)
{
    size_t cap = 5u << 20, n;
    char *y = malloc(cap), err[512];
    printf("\nyaml: hostile and huge rule files (load, median ms; the result); CS_MAX_RULES = %d\n",
           CS_MAX_RULES);
    jadd(",\"yaml\":{");
    /* nested '[': 20,000 (1.4 s before the composer), 1M (half the 4 MiB file limit; ~1 h
     * before, so not run by the baseline build) */
    static const int depths[] = {20000, 1000000};
    for (int i = 0; i < 2 - BASELINE; i++) {
        n = (size_t)snprintf(y, cap, "journey: j\nstages: [a]\nrules: ");
        memset(y + n, '[', (size_t)depths[i]);
        memset(y + n + depths[i], ']', (size_t)depths[i]);
        n += 2 * (size_t)depths[i];
        double t = time_load_ms(y, n, err, sizeof err, NULL);
        char label[64];
        snprintf(label, sizeof label, "%d nested '['", depths[i]);
        printf("%-44s %9.2f ms  %s\n", label, t, err);
        jadd("%s\"flow_nesting_%d_ms\":%.2f", i ? "," : "", depths[i], t);
    }
    /* anchors: 4,000 rules with 5 each (valid in both builds), 50,000 rules with 5 each (a
     * 4 MiB file; 290 s before, so not run by the baseline build) */
    static const int arules[] = {4000, 50000};
    for (int i = 0; i < 2 - BASELINE; i++) {
        n = (size_t)snprintf(y, cap, "journey: j\nstages: [a]\nrules:\n");
        for (int r = 0; r < arules[i] && n < cap - 200; r++)
            n += (size_t)snprintf(y + n, cap - n,
                                  "- {name: &n%d r%d, stage: &s%d a, match: &m%d {event: &e%d "
                                  "e%d}}\n",
                                  r, r, r, r, r, r);
        double t = time_load_ms(y, n, err, sizeof err, NULL);
        char label[64];
        snprintf(label, sizeof label, "%d anchors, %d rules (%zu B)", 5 * arules[i], arules[i], n);
        printf("%-44s %9.2f ms  %s\n", label, t, err[0] ? err : "ok");
        jadd(",\"anchors_%d_ms\":%.2f", 5 * arules[i], t);
        err[0] = '\0';
    }
    double t;
    /* a valid file where every other rule aliases the previous one's parts */
    n = (size_t)snprintf(y, cap, "journey: j\nstages: [a, b]\nrules:\n");
    for (int i = 0; i < CS_MAX_RULES / 2; i++)
        n += (size_t)snprintf(y + n, cap - n,
                              "- {name: &n%d r%d, stage: &s%d b, match: &m%d {event: e%d}}\n"
                              "- {name: q%d, stage: *s%d, match: *m%d}\n",
                              i, i, i, i, i, i, i, i);
    size_t heap = 0;
    t = time_load_ms(y, n, err, sizeof err, &heap);
    printf("%-44s %9.2f ms  ok, %zu heap bytes\n", "CS_MAX_RULES rules, 1.5 anchors + 1 alias each",
           t, heap);
    jadd(",\"anchors_valid_max_rules_ms\":%.2f", t);
    /* the most values a file may hold: one rule, 4 MiB of event values (rejected at 262,144) */
    n = (size_t)snprintf(y, cap, "journey: j\nstages: [a]\nrules:\n- {name: r, stage: a, match: "
                                 "{event: [");
    for (int i = 0; n < (4u << 20) - 64; i++)
        n += (size_t)snprintf(y + n, cap - n, "%se%d", i ? "," : "", i);
    n += (size_t)snprintf(y + n, cap - n, "]}}\n");
    t = time_load_ms(y, n, err, sizeof err, NULL);
    printf("%-44s %9.2f ms  %s\n", "one list of 4 MiB of values", t, err);
    jadd(",\"values_4mib_ms\":%.2f", t);
    /* long paths: 4 dimensions of 8 paths x 120 segments, then 55 property keys, 64 decoded
     * fields and ~3,900 trie nodes (the decoder's plan rebuilds its trie per added field with
     * a linear child search: bounded by its 4,096-node limit) */
    n = (size_t)snprintf(y, cap, "journey: j\nstages: [a]\ndimensions:\n");
    for (int d = 0; d < 4; d++) {
        n += (size_t)snprintf(y + n, cap - n, "  d%d: {path: [", d);
        for (int p = 0; p < 8; p++) {
            n += (size_t)snprintf(y + n, cap - n, "%sx%d%d", p ? ", " : "", d, p);
            for (int k = 0; k < 119; k++)
                n += (size_t)snprintf(y + n, cap - n, ".%c", 'a' + k % 26);
        }
        n += (size_t)snprintf(y + n, cap - n, "]}\n");
    }
    n += (size_t)snprintf(y + n, cap - n, "rules:\n");
    for (int i = 0; i < 55; i++)
        n += (size_t)snprintf(y + n, cap - n, "- {name: r%d, stage: a, match: {property.p%d: v}}\n",
                              i, i);
    t = time_load_ms(y, n, err, sizeof err, &heap);
    printf("%-44s %9.2f ms  %s\n", "64 fields, ~3,900 path segments", t, heap ? "ok" : err);
    jadd(",\"long_paths_load_ms\":%.2f", t);
    /* the largest valid table: CS_MAX_RULES rules, 262,144 values in all */
    n = (size_t)snprintf(y, cap, "journey: j\nstages: [a]\nrules:\n");
    for (int i = 0; i < CS_MAX_RULES; i++) {
        n += (size_t)snprintf(y + n, cap - n, "- {name: r%d, stage: a, match: {event: [", i);
        for (int v = 0; v < 262144 / CS_MAX_RULES; v++)
            n += (size_t)snprintf(y + n, cap - n, "%se%d_%d", v ? "," : "", i, v);
        n += (size_t)snprintf(y + n, cap - n, "]}}\n");
    }
    t = time_load_ms(y, n, err, sizeof err, &heap);
    printf("%-44s %9.2f ms  %s, %zu heap bytes (%zu-byte file)\n",
           "CS_MAX_RULES rules, 262,144 values", t, heap ? "ok" : err, heap, n);
    jadd(",\"max_values_load_ms\":%.2f,\"max_values_heap_bytes\":%zu,\"max_values_file_bytes\":%zu",
         t, heap, n);
    jadd("}");
    free(y);
}

/* ---- dimension values -------------------------------------------------------------------- */

typedef struct darg {
    cs_dimdict_mpmc *d;
    char buf[64];
    uint64_t i;
} darg;

static void dim_op(void *p)
{
    darg *a = p;
    int n = snprintf(a->buf, sizeof a->buf, "value-%llu", (unsigned long long)a->i++);
    sink_i += cs_dimdict_id(a->d, a->buf, (uint32_t)n);
}

typedef struct flarg {
    cs_agg *a, *b;
    const cs_ruleset *rs;
    cs_dimdict_mpmc *dicts;
} flarg;

static void count_cb(void *op, const char *h, const char *f, int64_t d)
{
    (void)h;
    (void)f;
    (void)d;
    (*(long *)op)++;
}

static void flush_op(void *p)
{
    flarg *f = p;
    long n = 0;
    f->a->changes = 1;
    cs_agg_merge(f->b, f->a);
    cs_agg_foreach(f->b, f->rs, f->dicts, count_cb, &n);
    cs_agg_reset(f->b);
    sink_i += (int)n;
}

static void bench_dims(void)
{
    printf("\ndims: one dimension dictionary (max_values 4096) fed 1M distinct values\n");
    cs_dimdict_mpmc d;
    size_t h0 = heap_now();
    cs_dimdict_init(&d, 4096);
    size_t h1 = heap_now();
    darg a = {&d, "", 0};
    double t0 = cpu_now_s();
    for (int i = 0; i < 1000000; i++)
        dim_op(&a);
    double per = (cpu_now_s() - t0) / 1e6 * 1e9;
    size_t h2 = heap_now();
    /* another 1M, all "_other" now */
    double other = ns_per(dim_op, &a);
    size_t h3 = heap_now();
    printf("heap: %zu B empty, %zu B after 1M values (4096 kept), %zu B after %llu more\n",
           h1 - h0, h2 - h0, h3 - h0, (unsigned long long)a.i - 1000000);
    printf("ns per value: %.1f over the first 1M, %.1f once full (all _other)\n", per, other);
    /* a 2,000-byte value is kept as 256 bytes */
    char big[2000];
    memset(big, 'v', sizeof big);
    cs_dimdict_mpmc d2;
    cs_dimdict_init(&d2, 4096);
    size_t h4 = heap_now();
    for (int i = 0; i < 4096; i++) {
        snprintf(big, 16, "%015d", i);
        big[15] = 'v';
        cs_dimdict_id(&d2, big, sizeof big);
    }
    size_t h5 = heap_now();
    printf("4096 values of 2,000 bytes: %zu heap bytes (%.0f per value)\n", h5 - h4,
           (double)(h5 - h4) / 4096);
    jadd(",\"dims\":{\"dict_empty_bytes\":%zu,\"dict_after_1m_bytes\":%zu,"
         "\"dict_after_more_bytes\":%zu,\"ns_per_value_first_1m\":%.1f,\"ns_per_value_full\":%.1f,"
         "\"dict_4096_long_values_bytes\":%zu",
         h1 - h0, h2 - h0, h3 - h0, per, other, h5 - h4);
    /* one aggregate with 4 dimensions of 4096 values, 5 stages: its size and a flush's work */
    const char *yaml = "journey: j\nstages: [s1, s2, s3, s4, s5]\ndimensions:\n"
                       "  d1: {max_values: 4096}\n  d2: {max_values: 4096}\n"
                       "  d3: {max_values: 4096}\n  d4: {max_values: 4096}\n";
    char err[256];
    cs_ruleset *rs = cs_rules_load_string(yaml, strlen(yaml), "bench", err, sizeof err);
    cs_dimdict_mpmc dicts[CS_MAX_DIMS];
    for (int i = 0; i < 4; i++)
        cs_dimdict_init(&dicts[i], 4096);
    cs_agg A, B;
    size_t h6 = heap_now();
    cs_agg_init(&A, rs);
    size_t agg_bytes = heap_now() - h6;
    cs_agg_init(&B, rs);
    for (int i = 0; i < 4; i++) /* a few hundred counters set, as a busy flush has */
        for (int v = 0; v < 100; v++)
            (*cs_agg_by(&A, i, CS_BY_ACTIVE, (uint16_t)(2 + v), 1))++;
    flarg fa = {&A, &B, rs, dicts};
    double fl = ns_per(flush_op, &fa);
    printf("aggregate, 4 dims x 4096 values x 5 stages: %zu bytes; merge + walk + clear: %.0f us "
           "per flush\n",
           agg_bytes, fl / 1e3);
    jadd(",\"agg_4x4096_bytes\":%zu,\"agg_flush_us\":%.1f}", agg_bytes, fl / 1e3);
    cs_agg_free(&A);
    cs_agg_free(&B);
    for (int i = 0; i < 4; i++)
        cs_dimdict_free(&dicts[i]);
    cs_rules_destroy(rs);
    cs_dimdict_free(&d);
    cs_dimdict_free(&d2);
}

/* ---- decoder --------------------------------------------------------------------------------- */

typedef struct decarg {
    cs_decoder *d;
    const char *m;
    size_t n;
    cs_invalid r;
} decarg;

static cs_decoded dec_out;

static void dec_op(void *p)
{
    decarg *a = p;
    a->r = cs_decode(a->d, a->m, a->n, 0, &dec_out);
}

typedef struct harg {
    const char *s;
    size_t n;
} harg;

static void hash_op(void *p)
{
    harg *a = p;
    XXH128_hash_t h = XXH3_128bits(a->s, a->n);
    sink_i += (int)h.low64;
}

static void bench_decode(void)
{
    const char *big_yaml = "journey: j\nstages: [a]\nlimits: {max_bytes: 1048576, max_depth: 255}\n"
                           "rules:\n- {name: r, stage: a, match: {event: x, property.a: y}}\n";
    const char *def_yaml = "journey: j\nstages: [a]\nrules:\n- {name: r, stage: a, match: {event: x}}\n";
    char err[256];
    cs_ruleset *rs = cs_rules_load_string(big_yaml, strlen(big_yaml), "b", err, sizeof err);
    cs_ruleset *rd = cs_rules_load_string(def_yaml, strlen(def_yaml), "b", err, sizeof err);
    cs_decoder *d = cs_decoder_new(cs_rules_plan(rs)), *dd = cs_decoder_new(cs_rules_plan(rd));
    size_t cap = 2u << 20, o;
    char *m = malloc(cap);
    printf("\ndecode: limits.max_bytes 1 MiB, max_depth 255 unless said (ns per message)\n");
    jadd(",\"decode\":{");
    size_t j0 = jlen;
#define CASE(key, label, dec)                                                                      \
    do {                                                                                           \
        decarg a = {dec, m, o, CS_DECODE_OK};                                                      \
        double ns = ns_per(dec_op, &a);                                                            \
        printf("%-46s %8zu B %11.1f ns %6.2f ns/B  %s\n", label, o, ns, ns / (double)o,          \
               cs_invalid_name(a.r));                                                              \
        jadd("%s\"%s_ns\":%.1f", jlen > j0 ? "," : "", key, ns);                                  \
    } while (0)
    o = (size_t)sprintf(m, "{\"userId\":\"u1\",\"event\":\"x\",\"properties\":{\"a\":\"y\"}}");
    CASE("baseline", "baseline (tiny event)", d);
    o = (size_t)sprintf(m, "{\"userId\":\"u1\",\"event\":\"x\",\"properties\":");
    for (int i = 0; i < 253; i++)
        m[o++] = '[';
    for (int i = 0; i < 253; i++)
        m[o++] = ']';
    m[o++] = '}';
    CASE("arrays_254_deep", "arrays nested to depth 254 (limit 255)", d);
    o = (size_t)sprintf(m, "{\"userId\":\"u1\",\"event\":\"x\",\"properties\":");
    for (int i = 0; i < 252; i++)
        o += (size_t)sprintf(m + o, "{\"a\":");
    m[o++] = '1';
    for (int i = 0; i < 253; i++)
        m[o++] = '}';
    CASE("objects_254_deep_tracked", "objects to depth 254 along a wanted path", d);
    o = (size_t)sprintf(m, "{\"userId\":\"u1\",\"event\":\"x\",\"p\":");
    for (int i = 0; i < 300000; i++)
        m[o++] = '[';
    for (int i = 0; i < 300000; i++)
        m[o++] = ']';
    m[o++] = '}';
    CASE("arrays_300k_deep", "300,000 nested '[' (too_deep)", d);
    o = (size_t)sprintf(m, "{\"userId\":\"u1\",\"event\":\"x\"");
    for (int k = 0; o < 1000000; k++)
        o += (size_t)sprintf(m + o, ",\"k%d\":1", k);
    m[o++] = '}';
    CASE("root_keys_1mb", "~110,000 keys in the root object (1 MB)", d);
    o = (size_t)sprintf(m, "{\"userId\":\"u1\",\"event\":\"x\",\"properties\":{");
    for (int k = 0; o < 1000000; k++)
        o += (size_t)sprintf(m + o, "%s\"k%d\":1", k ? "," : "", k);
    o += (size_t)sprintf(m + o, "}}");
    CASE("properties_keys_1mb", "~110,000 keys in a wanted object (1 MB)", d);
    o = (size_t)sprintf(m, "{\"userId\":\"u1\",\"event\":\"x\"");
    while (o < 1000000)
        o += (size_t)sprintf(m + o, ",\"userId\":\"u2\"");
    m[o++] = '}';
    CASE("dup_keys_1mb", "a wanted key repeated 70,000 times (1 MB)", d);
    o = (size_t)sprintf(m, "{\"userId\":\"u1\",\"event\":\"x\"");
    while (o < 1000000) {
        o += (size_t)sprintf(m + o, ",\"");
        for (int i = 0; i < 300; i++)
            o += (size_t)sprintf(m + o, "\\u0041");
        o += (size_t)sprintf(m + o, "\":1");
    }
    m[o++] = '}';
    CASE("escaped_keys_1mb", "300-char keys written as \\u escapes (1 MB)", d);
    o = (size_t)sprintf(m, "{\"event\":\"x\",\"userId\":\"");
    while (o < 1000000)
        o += (size_t)sprintf(m + o, "\\u00e9\\n");
    o += (size_t)sprintf(m + o, "\"}");
    CASE("customer_escapes_1mb", "a 1 MB customer id of escapes", d);
    o = (size_t)sprintf(m, "{\"event\":\"x\",\"userId\":\"");
    memset(m + o, 'c', 102400);
    o += 102400;
    o += (size_t)sprintf(m + o, "\"}");
    CASE("customer_100k_default_limit", "100 KB customer id, default 64 KiB limit", dd);
    CASE("customer_100k", "100 KB customer id, max_bytes 1 MiB", d);
    harg h = {m + 25, 102400};
    double hns = ns_per(hash_op, &h);
    printf("%-46s %8d B %11.1f ns\n", "XXH3-128 of the 100 KB id (sessionize's key)", 102400,
           hns);
    jadd(",\"xxh3_128_100k_ns\":%.1f", hns);
    o = (size_t)sprintf(m, "{\"event\":\"x\",\"userId\":1");
    memset(m + o, '0', 102400);
    o += 102400;
    o += (size_t)sprintf(m + o, "}");
    CASE("integer_customer_100k", "100 KB integer customer id", d);
    o = (size_t)sprintf(m, "{\"event\":\"x\",\"userId\":1,\"timestamp\":\"2024-01-01T00:00:00.");
    memset(m + o, '1', 500000);
    o += 500000;
    o += (size_t)sprintf(m + o, "Z\"}");
    CASE("rfc3339_500k_fraction", "RFC 3339 time with 500,000 fraction digits", d);
    jadd("}");
#undef CASE
    cs_decoder_destroy(d);
    cs_decoder_destroy(dd);
    cs_rules_destroy(rs);
    cs_rules_destroy(rd);
    free(m);
}

int main(int argc, char **argv)
{
    int quick = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            RUNS = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else {
            fprintf(stderr, "usage: bench_redteam [--runs R] [--quick]\n");
            return 64;
        }
    }
    if (RUNS < 1)
        RUNS = 1;
    if (quick)
        MIN_SECS = 0.02;
    jadd("{\"bench\":\"redteam\",\"baseline\":%d,\"runs\":%d,\"max_rules\":%d", BASELINE, RUNS,
         CS_MAX_RULES);
    printf("bench_redteam: median of %d runs per figure\n", RUNS);
    bench_glob();
    bench_rules(quick);
    bench_yaml();
    bench_dims();
    bench_decode();
    jadd("}");
    fflush(stdout);
    printf("%s\n", json);
    return 0;
}
