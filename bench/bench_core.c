/* bench_core — the in-process core benchmark (issue: core pipeline).
 *
 * Generates N events (default 5M) for C customers (default 1M, every one visited) within less
 * than one session gap of event time, so that ~C sessions are open at the end, then measures:
 *   - decode only (the hand-written scanner: cs_decode, which copies each message into the
 *     decoder, "decode_ns" as always; cs_decode_padded on the same messages in place,
 *     "decode_inplace_ns") vs cJSON parse + the five field look-ups;
 *   - when built with libsimdjson-dev (CS_HAVE_SIMDJSON): simdjson On-Demand taking the same
 *     fields, beside the scanner, on the same 1M-message sample (padded copies in one arena,
 *     both timed on it), each run; "simdjson_implementation" names the kernel it ran
 *     (haswell when the build machine has AVX2: simdjson_anchor.cpp);
 *   - the whole core (decode + hash + sessionize + classify + aggregate, with a simulated flush
 *     hand-off every 250k events per worker) on 1 thread and on T threads (default 2), through
 *     cs_worker_process_padded as the daemon's workers run it: the messages are generated
 *     with CS_MSG_PAD NULs after each (cs_gen_run_padded), partition after partition.
 * Each figure is the median of R runs (default 3). The last stdout line is one JSON object.
 * "ns_per_event_1t_best" is the fastest of the R one-thread core runs: on a shared machine other
 * load only ever slows a run down, so across interleaved runs of two builds the best runs say
 * more about a change of a few percent than the medians do (RESULTS-e2e.md, the profile-guided
 * build: medians of pairs 0.81-0.94, best runs 0.98).
 *
 * Decode per format (SPEC §1.1): the same journeys spelled in every format the generator speaks
 * (--format-events N of them, default 1M, min with --events), each decoded with its rule file
 * (tests/data/formats/<format>.yaml, --formats-dir), interleaved run by run; ns per message,
 * median of the runs ("decode_ns_by_format" in the JSON line; --no-formats skips it).
 *
 * With --snapshot-every N, each run also measures the 1-thread core with a snapshot of every
 * partition of the worker (cs_worker_snapshot_part, as the daemon takes them at a flush
 * barrier) after every N events, runs alternating with and without, and reports the ratio.
 *
 * With --span M (default 20), the events cover M minutes of event time instead: past the 30 m
 * session gap, sessions end while the run goes on, so it measures the timing wheels too.
 *
 *   build/bench_core [--events N] [--customers C] [--threads T] [--runs R] [--rules FILE]
 *                    [--core-only] [--snapshot-every N] [--span M]
 */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "aggregate.h"
#include "classify.h"
#include "clickstage.h"
#include "decode.h"
#include "engine.h"
#include "formats.h"
#include "gen.h"
#include "bench_util.h"
#include "snapshot.h"
#ifdef CS_HAVE_SIMDJSON
#include "simdjson_anchor.h"
#endif

static double now_s(void)
{
    return bench_now_s();
}

#define median bench_median

typedef struct warg {
    cs_engine *e;
    int w, nw;
    const cs_gen_out *g;
    size_t batch;
    uint64_t fields_flushed;
    uint64_t snap_every; /* 0: no snapshots */
    uint64_t snaps, snap_bytes;
    double snap_secs;
} warg;

/* v formatted with fmt into buf, or JSON null when the figure was not measured */
static void json_num(char *buf, size_t n, double v, const char *fmt, int have)
{
    if (have && v == v) /* v == v: not NaN */
        snprintf(buf, n, fmt, v);
    else
        snprintf(buf, n, "null");
}

static void count_field(void *op, const char *h, const char *f, int64_t d)
{
    (*(uint64_t *)op)++;
}

static void *worker(void *p)
{
    warg *a = p;
    cs_worker *w = cs_engine_worker(a->e, a->w);
    size_t *pos = calloc((size_t)a->g->nparts, sizeof *pos);
    int left = 0;
    for (int q = a->w; q < a->g->nparts; q += a->nw)
        left++;
    uint64_t since_flush = 0, since_snap = 0;
    while (left > 0) {
        for (int q = a->w; q < a->g->nparts; q += a->nw) {
            const cs_gen_part *gp = &a->g->parts[q];
            if (pos[q] >= gp->n)
                continue;
            size_t n = gp->n - pos[q] < a->batch ? gp->n - pos[q] : a->batch;
            if (a->g->pad >= CS_MSG_PAD) /* the daemon's path (source.c pads its arena) */
                cs_worker_process_padded(w, q, gp->msgs + pos[q], n);
            else
                cs_worker_process(w, q, gp->msgs + pos[q], n);
            pos[q] += n;
            since_flush += n;
            since_snap += n;
            if (pos[q] == gp->n) {
                cs_engine_set_part_state(a->e, q, CS_PART_DONE);
                left--;
            }
            cs_worker_tick(w);
            if (since_flush >= 250000) { /* what the sink does once per flush interval */
                cs_agg *ag = cs_worker_take_agg(w);
                cs_agg_foreach(ag, cs_engine_rules(a->e), cs_engine_dicts(a->e), count_field,
                               &a->fields_flushed);
                cs_worker_give_agg(w, ag);
                since_flush = 0;
            }
            if (a->snap_every && since_snap >= a->snap_every) {
                double t = now_s();
                for (int p2 = a->w; p2 < a->g->nparts; p2 += a->nw) {
                    char *buf;
                    size_t len;
                    cs_snap_info info;
                    if (cs_worker_snapshot_part(w, p2, &buf, &len, &info) == 0) {
                        a->snaps++;
                        a->snap_bytes += len;
                        free(buf);
                    }
                }
                a->snap_secs += now_s() - t;
                since_snap = 0;
            }
        }
    }
    free(pos);
    return NULL;
}

typedef struct core_result {
    double secs;
    uint64_t snaps, snap_bytes;
    double snap_secs;
    uint64_t sessions, customers;
    size_t sess_bytes, cust_bytes;
    uint64_t fields_flushed;
    uint64_t aliases;
    size_t alias_bytes;
} core_result;

static core_result run_core(const cs_gen_out *g, const char *rules, int threads,
                            uint64_t snap_every)
{
    char err[512];
    cs_ruleset *rs = cs_rules_load_file(rules, err, sizeof err);
    if (!rs) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    cs_engine *e = cs_engine_new(rs, threads, err, sizeof err);
    for (int q = 0; q < g->nparts; q++)
        cs_engine_add_partition(e, q % threads);
    pthread_t th[64];
    warg a[64];
    double t0 = now_s();
    for (int i = 0; i < threads; i++) {
        a[i] = (warg){e, i, threads, g, 1024, 0, snap_every, 0, 0, 0};
        pthread_create(&th[i], NULL, worker, &a[i]);
    }
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    core_result r = {now_s() - t0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    for (int i = 0; i < threads; i++) {
        r.snaps += a[i].snaps;
        r.snap_bytes += a[i].snap_bytes;
        r.snap_secs += a[i].snap_secs;
    }
    for (int i = 0; i < threads; i++) {
        cs_worker_stats st;
        cs_worker_stats_get(cs_engine_worker(e, i), &st);
        r.sessions += st.sessions_open;
        r.customers += st.customers;
        r.sess_bytes += st.session_bytes;
        r.cust_bytes += st.customer_bytes;
        r.aliases += st.aliases;
        r.alias_bytes += st.alias_bytes;
        r.fields_flushed += a[i].fields_flushed;
    }
    cs_engine_destroy(e);
    return r;
}

/* The SPEC §1 default paths, pre-split into segments so the look-ups cost cJSON's own work only. */
static const char *const cj_paths[5][5][3] = {
    {{"userId"}, {"user_id"}, {"customer_id"}, {"anonymousId"}, {"anonymous_id"}},
    {{"event"}, {"type"}},
    {{"timestamp"}, {"ts"}, {"originalTimestamp"}},
    {{"url"}, {"context", "page", "url"}, {"properties", "url"}},
    {{"channel"}, {"context", "campaign", "medium"}, {"properties", "channel"}},
};

/* ns per message of cs_decode over all of g's messages with the rule file's plan; 0 on error */
static double decode_pass(const cs_gen_out *g, const cs_ruleset *rs, uint64_t *ok_out)
{
    cs_decoder *d = cs_decoder_new(cs_rules_plan(rs));
    static cs_decoded ev;
    uint64_t ok = 0, n = 0;
    double s = now_s();
    for (int q = 0; q < g->nparts; q++)
        for (size_t i = 0; i < g->parts[q].n; i++, n++)
            ok += cs_decode(d, g->parts[q].msgs[i].payload, g->parts[q].msgs[i].len,
                            g->parts[q].msgs[i].ts_ms, &ev) == CS_DECODE_OK;
    double ns = (now_s() - s) * 1e9 / (double)(n ? n : 1);
    cs_decoder_destroy(d);
    *ok_out = ok;
    return ns;
}

/* What a DOM-based decoder must do at least: parse, then look the five fields up. */
static int cjson_decode(const char *buf, size_t len)
{
    cJSON *root = cJSON_ParseWithLength(buf, len);
    if (!root)
        return 0;
    int found = 0;
    for (int f = 0; f < 5; f++)
        for (int i = 0; i < 5 && cj_paths[f][i][0]; i++) {
            const cJSON *cur = root;
            for (int k = 0; k < 3 && cj_paths[f][i][k] && cur; k++)
                cur = cJSON_GetObjectItemCaseSensitive(cur, cj_paths[f][i][k]);
            if (cur && !cJSON_IsNull(cur)) {
                found++;
                break;
            }
        }
    cJSON_Delete(root);
    return found;
}

/* SPEC 3.1 (issue 21): the core on 1 thread over one device-keyed stream with logins
 * (--login), with the v1 rule file and with the same rules plus identity:, alternating which
 * goes first; the per-event cost of each and the bytes per alias. */
static int bench_identity(uint64_t nevents, uint32_t ncust, int runs, const char *rules,
                          const char *id_rules, double login)
{
    cs_gen_conf gc;
    bench_core_gen_conf(&gc, nevents, ncust);
    gc.login_frac = login;
    gc.second_device_frac = 0.2;
    cs_gen_out *g = cs_gen_run_padded(&gc, CS_MSG_PAD);
    double off[15], on[15], ratio[15];
    core_result r0 = {0}, r1 = {0};
    if (runs > 15)
        runs = 15;
    for (int rr = 0; rr < runs; rr++) {
        if (rr % 2) {
            r1 = run_core(g, id_rules, 1, 0);
            r0 = run_core(g, rules, 1, 0);
        } else {
            r0 = run_core(g, rules, 1, 0);
            r1 = run_core(g, id_rules, 1, 0);
        }
        off[rr] = r0.secs * 1e9 / (double)g->nmsgs;
        on[rr] = r1.secs * 1e9 / (double)g->nmsgs;
        ratio[rr] = on[rr] / off[rr];
        printf("run %d: identity off %.1f ns/event, on %.1f ns/event (%+.1f %%)\n", rr + 1,
               off[rr], on[rr], (ratio[rr] - 1) * 100);
        fflush(stdout);
    }
    double bpa = r1.aliases ? (double)r1.alias_bytes / (double)r1.aliases : 0;
    printf("identity on: %llu aliases in %zu bytes of alias table (%.1f B/alias); %llu key "
           "entries (%.1f B each) vs %llu customers off\n",
           (unsigned long long)r1.aliases, r1.alias_bytes, bpa, (unsigned long long)r1.customers,
           r1.customers ? (double)r1.cust_bytes / (double)r1.customers : 0,
           (unsigned long long)r0.customers);
    printf("{\"bench\":\"core_identity\",\"events\":%llu,\"devices\":%u,\"login\":%.2f,"
           "\"ns_per_event_off\":%.1f,\"ns_per_event_on\":%.1f,\"ratio\":%.3f,"
           "\"aliases\":%llu,\"alias_bytes\":%zu,\"bytes_per_alias\":%.1f,"
           "\"key_entries_on\":%llu,\"customers_off\":%llu,\"runs\":%d}\n",
           (unsigned long long)g->nmsgs, ncust, login, median(off, runs), median(on, runs),
           median(ratio, runs), (unsigned long long)r1.aliases, r1.alias_bytes, bpa,
           (unsigned long long)r1.customers, (unsigned long long)r0.customers, runs);
    cs_gen_free(g);
    return 0;
}

int main(int argc, char **argv)
{
    uint64_t nevents = 5000000;
    uint32_t ncust = BENCH_CORE_CUSTOMERS;
    int threads = 2, runs = 3, core_only = 0;
    uint64_t snap_every = 0;
    int span_min = 20; /* < the 30 m gap: no session ends before the drain; more: the wheels fire */
    const char *rules = "deploy/rules/retail.yaml";
    const char *id_rules = NULL;
    double login = 0.5;
    const char *formats_dir = "tests/data/formats";
    uint64_t format_events = 1000000;
    int no_formats = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--events") && i + 1 < argc)
            nevents = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--customers") && i + 1 < argc)
            ncust = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--core-only")) /* for profiling: no decode/cJSON loops */
            core_only = 1;
        else if (!strcmp(argv[i], "--rules") && i + 1 < argc)
            rules = argv[++i];
        else if (!strcmp(argv[i], "--format-events") && i + 1 < argc)
            format_events = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--formats-dir") && i + 1 < argc)
            formats_dir = argv[++i];
        else if (!strcmp(argv[i], "--no-formats"))
            no_formats = 1;
        else if (!strcmp(argv[i], "--identity") && i + 1 < argc) /* SPEC 3.1: on vs off */
            id_rules = argv[++i];
        else if (!strcmp(argv[i], "--login") && i + 1 < argc)
            login = atof(argv[++i]);
        else if (!strcmp(argv[i], "--snapshot-every") && i + 1 < argc)
            snap_every = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--span") && i + 1 < argc) /* minutes of event time */
            span_min = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--events N] [--customers C] [--threads T] [--runs R] "
                            "[--rules FILE] [--format-events N] [--formats-dir D] [--no-formats] "
                            "[--core-only] [--snapshot-every N] [--identity FILE] [--login F] "
                            "[--span MINUTES]\n",
                    argv[0]);
            return 2;
        }
    }
    if (runs < 1 || runs > 15 || threads < 1 || threads > 64 || span_min < 1)
        return 2;

    if (id_rules)
        return bench_identity(nevents, ncust, runs, rules, id_rules, login);
    cs_gen_conf gc;
    bench_core_gen_conf(&gc, nevents, ncust);
    gc.span_ms = (int64_t)span_min * 60000;
    double t0 = now_s();
    /* padded as the source's arena is, so that the core runs decode in place as the daemon's
     * workers do (cs_worker_process_padded) */
    cs_gen_out *g = cs_gen_run_padded(&gc, CS_MSG_PAD);
    size_t bytes = 0;
    for (int q = 0; q < g->nparts; q++)
        for (size_t i = 0; i < g->parts[q].n; i++)
            bytes += g->parts[q].msgs[i].len;
    printf("generated %llu messages (%.0f bytes avg) for %u customers in %.1fs\n",
           (unsigned long long)g->nmsgs, (double)bytes / (double)g->nmsgs, ncust, now_s() - t0);

    char err[512];
    cs_ruleset *rs = cs_rules_load_file(rules, err, sizeof err);
    if (!rs) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    /* the same journeys in every format, each with its rule file */
    cs_gen_out *fg[CS_GEN_NFORMATS] = {0};
    cs_ruleset *frs[CS_GEN_NFORMATS] = {0};
    double fdec[CS_GEN_NFORMATS][15];
    double fbytes[CS_GEN_NFORMATS] = {0};
    int nfmt = (no_formats || core_only || snap_every) ? 0 : CS_GEN_NFORMATS;
    for (int f = 0; f < nfmt; f++) {
        cs_gen_conf fc = gc;
        fc.format = f;
        fc.nevents = format_events < nevents ? format_events : nevents;
        fg[f] = cs_gen_run(&fc);
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.yaml", formats_dir, cs_format_at(f)->name);
        if (!(frs[f] = cs_rules_load_file(path, err, sizeof err))) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        size_t b = 0;
        for (int q = 0; q < fg[f]->nparts; q++)
            for (size_t i = 0; i < fg[f]->parts[q].n; i++)
                b += fg[f]->parts[q].msgs[i].len;
        fbytes[f] = (double)b / (double)fg[f]->nmsgs;
    }
    double dec[15], decp[15], cj[15], one[15], many[15], snapr[15], ratio[15], decs[15], sj[15];
    int have_sj = 0;
#ifdef CS_HAVE_SIMDJSON
    /* the sample (the first 1M messages, as cJSON's), each copied with simdjson's padding */
    char *sj_arena = NULL;
    size_t *sj_off = NULL, *sj_len = NULL, sj_n = 0;
    int64_t *sj_ts = NULL;
    if (!cs_simdjson_runnable()) {
        printf("simdjson anchor left out: built for %s, which this CPU does not run\n",
               cs_simdjson_implementation());
    } else {
        size_t pad = cs_simdjson_padding(), need = 0;
        for (int q = 0; q < g->nparts && sj_n < 1000000; q++)
            for (size_t i = 0; i < g->parts[q].n && sj_n < 1000000; i++, sj_n++)
                need += g->parts[q].msgs[i].len + pad;
        sj_arena = malloc(need + pad);
        sj_off = malloc(sj_n * sizeof *sj_off);
        sj_len = malloc(sj_n * sizeof *sj_len);
        sj_ts = malloc(sj_n * sizeof *sj_ts);
        if (!sj_arena || !sj_off || !sj_len || !sj_ts) {
            fprintf(stderr, "bench_core: out of memory\n");
            return 1;
        }
        size_t at = 0, k = 0;
        for (int q = 0; q < g->nparts && k < sj_n; q++)
            for (size_t i = 0; i < g->parts[q].n && k < sj_n; i++, k++) {
                sj_off[k] = at;
                sj_len[k] = g->parts[q].msgs[i].len;
                sj_ts[k] = g->parts[q].msgs[i].ts_ms;
                memcpy(sj_arena + at, g->parts[q].msgs[i].payload, sj_len[k]);
                memset(sj_arena + at + sj_len[k], 0, pad);
                at += sj_len[k] + pad;
            }
        have_sj = 1;
    }
#endif
    core_result r1 = {0}, rn = {0}, rs1 = {0};
    /* cJSON over a 1M-message sample (it is slow); the scanner over the same sample */
    size_t sample = g->parts[0].n;
    for (int rr = 0; rr < runs; rr++) {
        if (snap_every) { /* alternate the order: neither variant always runs on a warm heap */
            if (rr % 2) {
                rs1 = run_core(g, rules, 1, snap_every);
                r1 = run_core(g, rules, 1, 0);
            } else {
                r1 = run_core(g, rules, 1, 0);
                rs1 = run_core(g, rules, 1, snap_every);
            }
            snapr[rr] = (double)g->nmsgs / rs1.secs;
            ratio[rr] = rs1.secs / r1.secs;
            printf("run %d: core 1 thread %.3f M events/s without snapshots, %.3f M events/s "
                   "with a snapshot of every partition every %llu events (%llu snapshots, "
                   "%.1f MB, %.0f ms writing them): %.1f %% slower\n",
                   rr + 1, (double)g->nmsgs / r1.secs / 1e6, snapr[rr] / 1e6,
                   (unsigned long long)snap_every, (unsigned long long)rs1.snaps,
                   (double)rs1.snap_bytes / 1e6, rs1.snap_secs * 1e3, (ratio[rr] - 1) * 100);
            fflush(stdout);
        }
        if (core_only) {
            if (!snap_every)
                r1 = run_core(g, rules, 1, 0);
            one[rr] = many[rr] = (double)g->nmsgs / r1.secs;
            dec[rr] = decp[rr] = cj[rr] = 0;
            printf("run %d: core 1 thread %.2f M events/s\n", rr + 1, one[rr] / 1e6);
            continue;
        }
        cs_decoder *d = cs_decoder_new(cs_rules_plan(rs));
        cs_decoded ev;
        uint64_t ok = 0, n = 0;
        double s = now_s();
        for (int q = 0; q < g->nparts; q++)
            for (size_t i = 0; i < g->parts[q].n; i++, n++)
                ok += cs_decode(d, g->parts[q].msgs[i].payload, g->parts[q].msgs[i].len,
                                g->parts[q].msgs[i].ts_ms, &ev) == CS_DECODE_OK;
        dec[rr] = (now_s() - s) * 1e9 / (double)n;
        /* the same messages decoded in place (what the core and the daemon do) */
        n = 0;
        s = now_s();
        for (int q = 0; q < g->nparts; q++)
            for (size_t i = 0; i < g->parts[q].n; i++, n++)
                cs_decode_padded(d, g->parts[q].msgs[i].payload, g->parts[q].msgs[i].len,
                                 g->parts[q].msgs[i].ts_ms, &ev);
        decp[rr] = (now_s() - s) * 1e9 / (double)n;
        cs_decoder_destroy(d);
        if (ok < n * 9 / 10) { /* the generated stream is ~98 % valid */
            fprintf(stderr, "bench_core: only %llu of %llu messages decoded: the decode figure "
                            "would time the failure path\n",
                    (unsigned long long)ok, (unsigned long long)n);
            return 1;
        }
        n = 0;
        uint64_t found = 0;
        s = now_s();
        for (int q = 0; q < g->nparts && n < 1000000; q++)
            for (size_t i = 0; i < g->parts[q].n && n < 1000000; i++, n++)
                found += (uint64_t)cjson_decode(g->parts[q].msgs[i].payload,
                                                g->parts[q].msgs[i].len);
        cj[rr] = (now_s() - s) * 1e9 / (double)n;
        sample = n;
        decs[rr] = sj[rr] = 0;
#ifdef CS_HAVE_SIMDJSON
        if (have_sj) { /* not on a CPU that cannot run the anchor's kernel */
            cs_decoder *d2 = cs_decoder_new(cs_rules_plan(rs));
            uint64_t ok2 = 0, sjfound = 0;
            s = now_s();
            for (size_t i = 0; i < sj_n; i++)
                ok2 += cs_decode(d2, sj_arena + sj_off[i], sj_len[i], sj_ts[i], &ev) == CS_DECODE_OK;
            decs[rr] = (now_s() - s) * 1e9 / (double)sj_n;
            cs_decoder_destroy(d2);
            s = now_s();
            long long sjok = cs_simdjson_ondemand(sj_arena, sj_off, sj_len, sj_n, &sjfound);
            sj[rr] = (now_s() - s) * 1e9 / (double)sj_n;
            printf("run %d: same %zu-message sample: decode %.1f ns (ok %llu), simdjson %s "
                   "On-Demand (%s) %.1f ns (objects %lld, found %llu)\n",
                   rr + 1, sj_n, decs[rr], (unsigned long long)ok2, cs_simdjson_version(),
                   cs_simdjson_implementation(), sj[rr], sjok, (unsigned long long)sjfound);
        }
#endif
        if (!snap_every)
            r1 = run_core(g, rules, 1, 0);
        one[rr] = (double)g->nmsgs / r1.secs;
        rn = run_core(g, rules, threads, 0);
        many[rr] = (double)g->nmsgs / rn.secs;
        for (int k = 0; k < nfmt; k++) { /* a different order every run */
            int f = (k + rr) % nfmt;
            uint64_t fok = 0;
            fdec[f][rr] = decode_pass(fg[f], frs[f], &fok);
            if (fok < fg[f]->nmsgs * 9 / 10) {
                fprintf(stderr, "bench_core: %s: only %llu of %llu messages decoded\n",
                        cs_format_at(f)->name, (unsigned long long)fok,
                        (unsigned long long)fg[f]->nmsgs);
                return 1;
            }
        }
        if (nfmt) {
            printf("run %d: decode by format (ns/message):", rr + 1);
            for (int f = 0; f < nfmt; f++)
                printf(" %s %.1f", cs_format_at(f)->name, fdec[f][rr]);
            putchar('\n');
        }
        printf("run %d: decode %.1f ns (in place %.1f ns), cJSON %.1f ns (ok %llu, found %llu), "
               "core 1 thread %.2f M events/s, %d threads %.2f M events/s\n",
               rr + 1, dec[rr], decp[rr], cj[rr], (unsigned long long)ok,
               (unsigned long long)found, one[rr] / 1e6, threads, many[rr] / 1e6);
        fflush(stdout);
    }
    double eps1 = median(one, runs), epsn = median(many, runs);
    const double best1 = one[runs - 1]; /* median() sorted one[] ascending */
    double decode_ns = median(dec, runs), cjson_ns = median(cj, runs);
    double bps = r1.sessions ? (double)r1.sess_bytes / (double)r1.sessions : 0;
    double bpc = r1.customers ? (double)r1.cust_bytes / (double)r1.customers : 0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("open sessions at end: %llu, customers: %llu; session state %.1f B/session, customer "
           "state %.1f B/customer; flushed fields per 250k events: %.0f\n",
           (unsigned long long)r1.sessions, (unsigned long long)r1.customers, bps, bpc,
           (double)r1.fields_flushed / ((double)g->nmsgs / 250000.0));
    if (snap_every) {
        double mr = median(ratio, runs);
        printf("{\"bench\":\"core_snapshots\",\"events\":%llu,\"customers\":%u,"
               "\"snapshot_every\":%llu,\"events_per_sec_1t\":%.0f,"
               "\"events_per_sec_1t_snapshots\":%.0f,\"slowdown_pct\":%.1f,"
               "\"snapshots_per_run\":%llu,\"snapshot_mb_per_run\":%.1f,\"runs\":%d}\n",
               (unsigned long long)g->nmsgs, ncust, (unsigned long long)snap_every, eps1,
               median(snapr, runs), (mr - 1) * 100, (unsigned long long)rs1.snaps,
               (double)rs1.snap_bytes / 1e6, runs);
        cs_rules_destroy(rs);
        cs_gen_free(g);
        return 0;
    }
    /* --core-only measures no decode loops: those figures are null, not 0 (and no 0/0) */
    char jdec[32], jdecp[32], jcj[32], jsp[32];
    json_num(jdec, sizeof jdec, decode_ns, "%.1f", !core_only);
    json_num(jdecp, sizeof jdecp, median(decp, runs), "%.1f", !core_only);
    json_num(jcj, sizeof jcj, cjson_ns, "%.1f", !core_only);
    json_num(jsp, sizeof jsp, cjson_ns / decode_ns, "%.1f", !core_only && decode_ns > 0);
    printf("{\"bench\":\"core\",\"events\":%llu,\"customers\":%u,\"threads\":%d,"
           "\"span_min\":%d,"
           "\"events_per_sec\":%.0f,\"ns_per_event\":%.1f,\"events_per_sec_1t\":%.0f,"
           "\"ns_per_event_1t\":%.1f,\"scaling\":%.2f,\"bytes_per_session\":%.1f,"
           "\"bytes_per_customer\":%.1f,\"open_sessions\":%llu,\"decode_ns\":%s,"
           "\"decode_inplace_ns\":%s,\"cjson_decode_ns\":%s,\"cjson_sample\":%zu,"
           "\"decode_speedup\":%s,"
           "\"avg_event_bytes\":%.0f,\"runs\":%d,\"max_rss_kb\":%ld,"
           "\"ns_per_event_1t_best\":%.1f",
           (unsigned long long)g->nmsgs, ncust, threads, span_min, epsn, 1e9 / epsn, eps1,
           1e9 / eps1, epsn / eps1, bps, bpc, (unsigned long long)r1.sessions, jdec, jdecp, jcj,
           sample, jsp, (double)bytes / (double)g->nmsgs, runs, ru.ru_maxrss, 1e9 / best1);
    if (nfmt) {
        printf(",\"format_events\":%llu,\"decode_ns_by_format\":{",
               (unsigned long long)fg[0]->nmsgs);
        for (int f = 0; f < nfmt; f++)
            printf("%s\"%s\":%.1f", f ? "," : "", cs_format_at(f)->name, median(fdec[f], runs));
        printf("},\"avg_bytes_by_format\":{");
        for (int f = 0; f < nfmt; f++)
            printf("%s\"%s\":%.0f", f ? "," : "", cs_format_at(f)->name, fbytes[f]);
        putchar('}');
    }
    for (int f = 0; f < nfmt; f++) {
        cs_gen_free(fg[f]);
        cs_rules_destroy(frs[f]);
    }
    if (have_sj && !core_only) {
        double a = median(decs, runs), b = median(sj, runs);
#ifdef CS_HAVE_SIMDJSON
        const char *ver = cs_simdjson_version(), *impl = cs_simdjson_implementation();
#else
        const char *ver = "", *impl = "";
#endif
        printf(",\"decode_sample_ns\":%.1f,\"simdjson_ondemand_ns\":%.1f,"
               "\"simdjson_version\":\"%s\",\"simdjson_implementation\":\"%s\","
               "\"simdjson_vs_decode\":%.2f}\n",
               a, b, ver, impl, b / a);
    } else {
        printf(",\"decode_sample_ns\":null,\"simdjson_ondemand_ns\":null,"
               "\"simdjson_version\":null,\"simdjson_implementation\":null,"
               "\"simdjson_vs_decode\":null}\n");
    }
#ifdef CS_HAVE_SIMDJSON
    free(sj_arena);
    free(sj_off);
    free(sj_len);
    free(sj_ts);
#endif
    cs_rules_destroy(rs);
    cs_gen_free(g);
    return 0;
}
