/* clickstage-loadgen — the bundled load generator (SPEC §6) and benchmark tool.
 *
 * Produces the synthetic clickstream of loadgen/gen.c (personas, channels, funnel, sessions
 * over days, out-of-order/late/invalid shares; deterministic for a seed) to a Kafka topic, keyed
 * by customer (--unkeyed: no key, any partition, like a producer that does not key), at a target
 * rate or flat out, from several threads over disjoint partitions (--threads: each partition's
 * bytes are the same whatever the thread count), with a progress line. --expect FILE writes the
 * exact SPEC §4 counts `clickstage --drain` must produce for that stream (--unkeyed: once
 * re-keyed), computed by the reference model (loadgen/refmodel.c: cJSON decoding, a plain map
 * per customer, none of the daemon's code paths), so any run can be checked against ground
 * truth (cs_checkredis).
 *
 * --watch-redis: while producing, reads what clickstage has made visible in Redis and reports
 * produce -> visible latency percentiles and consumer lag per interval and overall (watch.c).
 * --find-sustainable: steps at rising rates, then bisection, to the highest rate clickstage keeps
 * up with under a p99 bound (sustain.c). docs/benchmarking.md explains the figures.
 *
 * Last stdout line: one JSON object with the achieved figures.
 */
#include <librdkafka/rdkafka.h>
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aggregate.h"
#include "classify.h"
#include "counts.h"
#include "decode.h"
#include "formats.h"
#include "lg.h"
#include "refmodel.h"

static volatile int g_stop;
static void on_sig(int s) { g_stop = 1; }

static void usage(FILE *f)
{
    fprintf(f,
        "clickstage-loadgen: synthetic clickstream to Kafka, with exact expected counts; a\n"
        "benchmark of clickstage (produce -> visible latency, highest sustainable rate).\n\n"
        "Usage: clickstage-loadgen [OPTIONS]\n\n"
        "Target\n"
        "  --brokers LIST        bootstrap servers (default 127.0.0.1:9092)\n"
        "  --topic NAME          topic (default clickstream)\n"
        "  --partitions N        partitions to spread customers over; must match the topic\n"
        "                        (default: the topic's partition count)\n"
        "  --create              create the topic with --partitions (default 8) if missing\n"
        "  --unkeyed             no message key, each message to a pseudo-random partition\n"
        "                        (deterministic for the seed): a producer that does not key by\n"
        "                        customer (docs/repartition.md); --expect stays the counts of\n"
        "                        the customer-keyed stream; one thread (default: keyed)\n"
        "Volume and pace\n"
        "  --events N            messages to produce (default 1000000; with --find-sustainable\n"
        "                        1000000000: the event-time axis of the stream, see --span)\n"
        "  --duration D          stop after D (e.g. 60s); with --rate, events = rate x D;\n"
        "                        flat out without --events: up to 1000000000 events\n"
        "  --rate R              messages per second, all threads together; 0 = flat out\n"
        "                        (default 0)\n"
        "  --threads N           producer threads, each with its own producer (--producer) and\n"
        "                        its own partitions (p %% N); the bytes of every partition are\n"
        "                        the same for any N (default: one per core, at most one per\n"
        "                        partition)\n"
        "Content (same values, same stream)\n"
        "  --seed S              (default 42)\n"
        "  --customers C         distinct customers (default 100000); with --churn: active\n"
        "                        at any time\n"
        "  --churn N             N new customers arrive over the stream while as many old ones\n"
        "                        fall silent for good (the newest are the most active): the\n"
        "                        active window slides over C + N ids (default 0: none)\n"
        "  --persona-cohort K    the persona property is the customer's cohort, c<id / K>,\n"
        "                        instead of its persona (same journeys): with --churn new\n"
        "                        values keep arriving, past the rules' max_values (default 0:\n"
        "                        the three personas)\n"
        "  --start TIME          event time of the first event, epoch ms (default 1793520000000 =\n"
        "                        2026-11-01T08:00:00Z)\n"
        "  --span D              event time the stream covers (default 6d)\n"
        "  --mean-events M       mean events per session (default 6)\n"
        "  --invalid F           share of invalid messages, every reason (default 0.02)\n"
        "  --too-large F         share of >64 KiB messages (default 0.0002)\n"
        "  --late F              share of late events (default 0.01)\n"
        "  --skew F              share of events from devices with a wrong clock: times far\n"
        "                        in the future (invalid future_time) or before 2000 (bad_time)\n"
        "                        (default 0)\n"
        "  --out-of-order F      share of events out of order, by up to lateness/2 (default 0.2)\n"
        "  --long F              share of sessions outliving max_duration (default 0.02)\n"
        "  --login F             SPEC 3.1 anonymous-then-known journeys: messages keyed by\n"
        "                        device (anonymousId); the person of a share F of devices\n"
        "                        logs in at the device's 1st..5th event (userId from then on);\n"
        "                        Segment spelling only; --expect follows 3.1 when --rules\n"
        "                        has identity: (docs/identity.md) (default 0: off, v1 ids)\n"
        "  --second-device F     with --login: share of odd-numbered devices that are the\n"
        "                        second device of the person of the device before them\n"
        "                        (default 0.2)\n"
        "  --rules FILE          session parameters and, for --expect, the rules (default\n"
        "                        $CLICKSTAGE_RULES, else deploy/rules/retail.yaml); with\n"
        "                        --expect, the journey's rule file for the Segment spelling\n"
        "  --format NAME         spell the stream as segment (default), rudderstack, posthog,\n"
        "                        mixpanel, amplitude or snowplow-enriched (SPEC 1.1): the same\n"
        "                        journeys, Kafka timestamps and partitions in each, so --expect\n"
        "                        is the same ground truth (Snowplow: not_json, not_object and\n"
        "                        too_deep messages are not_tsv); docs/formats.md\n"
        "Ground truth\n"
        "  --expect FILE         write the §4 counts `clickstage --drain` must produce (JSON)\n"
        "  --expect-only         only write --expect, produce nothing\n"
        "  --dump FILE           write the stream to FILE instead of Kafka, one message a line:\n"
        "                        partition TAB Kafka timestamp (ms) TAB key TAB what it was\n"
        "                        generated as (ok, late, invalid) TAB payload\n"
        "                        (--partitions, default 8; no broker needed)\n"
        "  --skip N              generate but do not send the first N messages, and\n"
        "  --count N             send at most N messages after those: a stream sent in parts\n"
        "                        (same seed and options each time) adds up to the whole one\n"
        "Producer\n"
        "  --producer P          direct|librdkafka|auto (default auto). direct: the load\n"
        "                        generator's own Kafka producer (Kafka's wire protocol over\n"
        "                        plain TCP, Produce v3-v7, record batches v2, acks=all, up to\n"
        "                        5 requests in flight per broker, no retries: any error fails\n"
        "                        the run); PLAINTEXT only, compression none or lz4 (gzip,\n"
        "                        snappy, zstd: falls back to librdkafka, with a log line).\n"
        "                        auto: direct when --compression is none or lz4 and --kafka\n"
        "                        sets nothing but security.protocol=plaintext; otherwise\n"
        "                        librdkafka. Both send the same bytes per partition\n"
        "  --compression C       none|gzip|snappy|lz4|zstd (default lz4)\n"
        "  --linger-ms N         how long a partition's batch may wait to fill (default 5)\n"
        "  --batch N             messages per batch (default 10000); direct: also at most\n"
        "                        1,000,000 bytes of records (none) or 2,000,000 before lz4\n"
        "  --kafka k=v,...       more librdkafka producer properties (every thread's producer;\n"
        "                        with --producer auto, any but security.protocol=plaintext\n"
        "                        selects librdkafka)\n"
        "  --progress D          progress line interval, 0 = none (default 1s)\n"
        "Watching clickstage (produce -> visible latency and consumer lag)\n"
        "  --watch-redis URL     the Redis clickstage writes to (redis://[:pw@]host:port/db or a\n"
        "                        unix socket path); per progress interval and overall: latency\n"
        "                        p50/p95/p99/max from a message being handed to librdkafka to\n"
        "                        its count being visible (offsets hash, read at every flush),\n"
        "                        and the lag (delivered - visible). Off by default\n"
        "  --journey J           the journey whose keys to read (default: the rule file's)\n"
        "  --prefix P            clickstage's --prefix (default clickstage)\n"
        "  --settle D            at the end, wait up to D for the last messages to become\n"
        "                        visible (default 30s)\n"
        "  --latency-csv FILE    one row per progress interval: time, sent/s, visible/s, lag,\n"
        "                        p50, p95, p99, max\n"
        "Finding the highest sustainable rate (needs --watch-redis; docs/benchmarking.md)\n"
        "  --find-sustainable    steps at rising rates (x --growth) until one fails, then\n"
        "                        bisection; a step passes when the generator sent the rate,\n"
        "                        the lag did not grow and p99 latency was under --p99. Prints\n"
        "                        a table; last line JSON with sustainable_events_per_sec\n"
        "  --p99 D               the latency bound (default 500ms)\n"
        "  --start-rate R        first step (default 50000)\n"
        "  --max-rate R          never offer more (default: no limit)\n"
        "  --growth F            rate factor between steps before the first failure (default 2)\n"
        "  --step D              length of a step (default 20s), of which\n"
        "  --warmup D            not judged (default 5s)\n"
        "  --drain-timeout D     before a step, wait up to D for clickstage to catch up\n"
        "                        (default 60s)\n"
        "  --lag-growth F        a step fails when the lag grows by more than F x rate per\n"
        "                        second (default 0.01)\n"
        "  --precision F         stop bisecting when the bounds are within F (default 0.05)\n"
        "  --max-steps N         steps in all, retries included (default 20)\n"
        "  --retries N           a step that missed --p99, or where the generator could not\n"
        "                        send the rate, is run again up to N times before it counts\n"
        "                        as a failure (default 2)\n"
        "  --plot FILE.png       rate vs latency (needs gnuplot: Debian gnuplot-nox)\n"
        "  --csv FILE            the table as CSV\n"
        "  --help\n");
}

static int write_expect(const cs_gen_conf *gc, const char *rules, const char *path)
{
    char err[512];
    cs_ruleset *rs = cs_rules_load_file(rules, err, sizeof err);
    if (!rs) {
        fprintf(stderr, LG_NAME ": %s\n", err);
        return -1;
    }
    /* One ground truth per seed: the reference model reads the Segment spelling of the stream
     * (same journeys in every format) with the journey's Segment rule file; only the invalid
     * reasons a format cannot have are renamed (Snowplow TSV: not_tsv). */
    if (cs_decode_plan_format(cs_rules_plan(rs)) != cs_format_default()) {
        fprintf(stderr, LG_NAME ": --expect: %s has format %s; the ground truth is computed from "
                "the Segment spelling of the stream: give --rules the journey's rule file without "
                "format: (the same rules, Segment's names and paths)\n", rules,
                cs_decode_plan_format(cs_rules_plan(rs))->name);
        cs_rules_destroy(rs);
        return -1;
    }
    cs_gen_conf seg = *gc;
    seg.format = CS_GEN_SEGMENT;
    ref_model *m = ref_new(rs, NULL, gc->nparts);
    cs_gen *g = cs_gen_new(&seg);
    cs_gen_msg msg;
    while (g && cs_gen_next(g, &msg))
        ref_event(m, msg.part, msg.payload, msg.len, msg.ts_ms);
    cs_gen_destroy(g);
    ref_finish(m, CS_END_DRAIN);
    cs_counts *c0 = cs_counts_new(), *c = cs_counts_new();
    ref_counts(m, c0);
    for (int r = 1; r < CS_INV__COUNT; r++) {
        const char *from = cs_invalid_name((cs_invalid)r);
        const char *to = cs_gen_expect_reason(gc->format, from);
        int64_t v = cs_counts_get(c0, "invalid", from);
        if (v && to != from) {
            cs_counts_add(c0, "invalid", from, -v);
            cs_counts_add(c0, "invalid", to, v);
        }
    }
    cs_counts_merge(c, c0);
    cs_counts_free(c0);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return -1;
    }
    cs_counts_write_json(c, f);
    fclose(f);
    cs_counts_free(c);
    ref_free(m);
    cs_rules_destroy(rs);
    return 0;
}

/* The topic's partition count (created with --create if missing); 0 and *have, or an exit code. */
static int topic_partitions(const lg_kafka_opts *ko, int want, int create, int *have_out)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", ko->brokers, err, sizeof err)) {
        fprintf(stderr, LG_NAME ": --brokers: %s\n", err);
        return 2;
    }
    if (ko->extra && *ko->extra) { /* security settings and the like apply here too */
        char *dup = strdup(ko->extra), *save = NULL;
        for (char *kv = strtok_r(dup, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
            char *eq = strchr(kv, '=');
            if (!eq || (*eq = 0, rd_kafka_conf_set(conf, kv, eq + 1, err, sizeof err))) {
                fprintf(stderr, LG_NAME ": --kafka %s: %s\n", kv, eq ? err : "not k=v");
                free(dup);
                return 2;
            }
        }
        free(dup);
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) {
        fprintf(stderr, LG_NAME ": %s\n", err);
        return 2;
    }
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, ko->topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
    int have = (!e && md->topic_cnt == 1 && !md->topics[0].err) ? md->topics[0].partition_cnt : 0;
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    if (e) {
        fprintf(stderr, LG_NAME ": %s: %s\n", ko->brokers, rd_kafka_err2str(e));
        rd_kafka_destroy(rk);
        return 1;
    }
    if (!have && create) {
        int n = want ? want : 8;
        rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(ko->topic, n, 1, err, sizeof err);
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 20000);
        const rd_kafka_CreateTopics_result_t *res = ev ? rd_kafka_event_CreateTopics_result(ev) : NULL;
        size_t nres = 0;
        const rd_kafka_topic_result_t **tr = res ? rd_kafka_CreateTopics_result_topics(res, &nres) : NULL;
        if (!tr || nres != 1 || rd_kafka_topic_result_error(tr[0])) {
            fprintf(stderr, LG_NAME ": create %s: %s\n", ko->topic,
                    tr && nres ? rd_kafka_topic_result_error_string(tr[0]) : "timed out");
            rd_kafka_destroy(rk);
            return 1;
        }
        rd_kafka_event_destroy(ev);
        rd_kafka_queue_destroy(q);
        rd_kafka_NewTopic_destroy(nt);
        have = n;
        fprintf(stderr, LG_NAME ": created %s with %d partitions\n", ko->topic, n);
    }
    rd_kafka_destroy(rk);
    if (!have) {
        fprintf(stderr, LG_NAME ": topic %s does not exist (use --create)\n", ko->topic);
        return 1;
    }
    if (want && want != have) {
        fprintf(stderr, LG_NAME ": topic %s has %d partitions, not %d\n", ko->topic, have, want);
        return 1;
    }
    *have_out = have;
    return 0;
}

/* ---- one run: a segment on a runner thread, progress on the main thread ---- */
typedef struct runner {
    lg_prod *p;
    uint64_t from, to;
    double rate, deadline;
    volatile int done;
    uint64_t sent;
} runner;

static void *run_segment(void *a)
{
    runner *r = a;
    r->sent = lg_prod_segment(r->p, r->from, r->to, r->rate, r->deadline, &g_stop);
    __atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void lat_json(char *buf, size_t n, const lg_hist *h)
{
    snprintf(buf, n,
             "\"latency_samples\":%llu,\"latency_p50_ms\":%.1f,\"latency_p95_ms\":%.1f,"
             "\"latency_p99_ms\":%.1f,\"latency_max_ms\":%.1f",
             (unsigned long long)h->n, lg_hist_ms(h, 0.5), lg_hist_ms(h, 0.95),
             lg_hist_ms(h, 0.99), lg_hist_ms(h, 1));
}

int main(int argc, char **argv)
{
    lg_kafka_opts ko = {"127.0.0.1:9092", "clickstream", "lz4", NULL, 5, 10000, "auto"};
    /* the same rule file as the daemon's when run beside it (e.g. in the container image) */
    const char *rules = getenv("CLICKSTAGE_RULES") && *getenv("CLICKSTAGE_RULES")
                            ? getenv("CLICKSTAGE_RULES")
                            : "deploy/rules/retail.yaml";
    const char *dump = NULL;
    const char *expect = NULL, *watch_url = NULL, *journey = NULL, *prefix = "clickstage";
    const char *lat_csv = NULL;
    int partitions = 0, create = 0, expect_only = 0, unkeyed = 0, find = 0, nthreads = 0;
    double rate = 0, progress_s = 1, settle_s = 30;
    int64_t duration_ms = 0;
    lg_sustain_opts so;
    lg_sustain_defaults(&so);
    cs_gen_conf gc;
    cs_gen_defaults(&gc);
    gc.nevents = 1000000;
    gc.ncustomers = 100000;
    int events_set = 0, second_set = 0;
    uint64_t skip = 0, count = UINT64_MAX;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--create")) { create = 1; continue; }
        if (!strcmp(a, "--expect-only")) { expect_only = 1; continue; }
        if (!strcmp(a, "--unkeyed")) { unkeyed = 1; continue; }
        if (!strcmp(a, "--find-sustainable")) { find = 1; continue; }
        if (i + 1 >= argc) {
            fprintf(stderr, LG_NAME ": unknown option or missing value: %s (see --help)\n", a);
            return 2;
        }
        const char *v = argv[++i];
        char *end = NULL;
#define NUM(x) ((x) = strtod(v, &end), (end == v || *end) ? (fprintf(stderr, LG_NAME ": %s: '%s' is not a number\n", a, v), exit(2), 0) : 0)
#define DUR(x) do { int64_t d_ = lg_parse_dur_ms(v); if (d_ < 0) { fprintf(stderr, LG_NAME ": %s: bad duration '%s'\n", a, v); return 2; } (x) = d_; } while (0)
        double d;
        int64_t ms;
        if (!strcmp(a, "--brokers")) ko.brokers = v;
        else if (!strcmp(a, "--topic")) ko.topic = v;
        else if (!strcmp(a, "--partitions")) { NUM(d); partitions = (int)d; }
        else if (!strcmp(a, "--events")) { NUM(d); gc.nevents = (uint64_t)d; events_set = 1; }
        else if (!strcmp(a, "--duration")) { DUR(duration_ms); if (!duration_ms) { fprintf(stderr, LG_NAME ": --duration: must be > 0\n"); return 2; } }
        else if (!strcmp(a, "--rate")) { NUM(rate); }
        else if (!strcmp(a, "--threads")) { NUM(d); nthreads = (int)d; if (nthreads < 1) { fprintf(stderr, LG_NAME ": --threads: at least 1\n"); return 2; } }
        else if (!strcmp(a, "--seed")) { NUM(d); gc.seed = (uint64_t)d; }
        else if (!strcmp(a, "--customers")) { NUM(d); gc.ncustomers = (uint32_t)d; }
        else if (!strcmp(a, "--churn")) { NUM(d); if (d < 0 || d > 1e9) { fprintf(stderr, LG_NAME ": --churn: 0..1000000000\n"); return 2; } gc.churn = (uint32_t)d; }
        else if (!strcmp(a, "--persona-cohort")) { NUM(d); if (d < 0 || d > 1e9) { fprintf(stderr, LG_NAME ": --persona-cohort: 0..1000000000\n"); return 2; } gc.persona_cohort = (uint32_t)d; }
        else if (!strcmp(a, "--start")) { NUM(d); gc.start_ms = (int64_t)d; }
        else if (!strcmp(a, "--span")) { DUR(gc.span_ms); if (!gc.span_ms) { fprintf(stderr, LG_NAME ": --span: must be > 0\n"); return 2; } }
        else if (!strcmp(a, "--mean-events")) { NUM(gc.mean_events); }
        else if (!strcmp(a, "--invalid")) { NUM(gc.invalid_frac); }
        else if (!strcmp(a, "--too-large")) { NUM(gc.too_large_frac); }
        else if (!strcmp(a, "--late")) { NUM(gc.late_frac); }
        else if (!strcmp(a, "--skew")) { NUM(gc.skew_frac); }
        else if (!strcmp(a, "--out-of-order")) { NUM(gc.ooo_frac); }
        else if (!strcmp(a, "--long")) { NUM(gc.long_frac); }
        else if (!strcmp(a, "--login")) { NUM(gc.login_frac); }
        else if (!strcmp(a, "--second-device")) { NUM(gc.second_device_frac); second_set = 1; }
        else if (!strcmp(a, "--rules")) rules = v;
        else if (!strcmp(a, "--format")) {
            const cs_format *f = cs_format_find(v, strlen(v));
            if (!f) {
                char known[256];
                cs_format_list(known, sizeof known);
                fprintf(stderr, LG_NAME ": --format: unknown format '%s' (known formats: %s)\n", v,
                        known);
                return 2;
            }
            for (int k = 0; cs_format_at(k); k++)
                if (cs_format_at(k) == f)
                    gc.format = k;
        }
        else if (!strcmp(a, "--expect")) expect = v;
        else if (!strcmp(a, "--dump")) { dump = v; expect_only = 1; }
        else if (!strcmp(a, "--compression")) ko.compression = v;
        else if (!strcmp(a, "--linger-ms")) { NUM(d); ko.linger_ms = (int64_t)d; }
        else if (!strcmp(a, "--batch")) { NUM(d); ko.batch = (int64_t)d; }
        else if (!strcmp(a, "--kafka")) ko.extra = v;
        else if (!strcmp(a, "--producer")) ko.producer = v;
        else if (!strcmp(a, "--skip")) { NUM(d); skip = (uint64_t)d; }
        else if (!strcmp(a, "--count")) { NUM(d); count = (uint64_t)d; }
        else if (!strcmp(a, "--progress")) { DUR(ms); progress_s = (double)ms / 1000; }
        else if (!strcmp(a, "--watch-redis")) watch_url = v;
        else if (!strcmp(a, "--journey")) journey = v;
        else if (!strcmp(a, "--prefix")) prefix = v;
        else if (!strcmp(a, "--settle")) { DUR(ms); settle_s = (double)ms / 1000; }
        else if (!strcmp(a, "--latency-csv")) lat_csv = v;
        else if (!strcmp(a, "--p99")) { DUR(ms); so.p99_ms = (double)ms; }
        else if (!strcmp(a, "--start-rate")) { NUM(so.start_rate); }
        else if (!strcmp(a, "--max-rate")) { NUM(so.max_rate); }
        else if (!strcmp(a, "--growth")) { NUM(so.growth); }
        else if (!strcmp(a, "--step")) { DUR(ms); so.step_s = (double)ms / 1000; }
        else if (!strcmp(a, "--warmup")) { DUR(ms); so.warmup_s = (double)ms / 1000; }
        else if (!strcmp(a, "--drain-timeout")) { DUR(ms); so.drain_s = (double)ms / 1000; }
        else if (!strcmp(a, "--lag-growth")) { NUM(so.lag_slope_frac); }
        else if (!strcmp(a, "--precision")) { NUM(so.precision); }
        else if (!strcmp(a, "--max-steps")) { NUM(d); so.max_steps = (int)d; }
        else if (!strcmp(a, "--retries")) { NUM(d); so.retries = (int)d; }
        else if (!strcmp(a, "--plot")) so.plot = v;
        else if (!strcmp(a, "--csv")) so.csv = v;
        else {
            fprintf(stderr, LG_NAME ": unknown option %s (see --help)\n", a);
            return 2;
        }
    }
    if (gc.login_frac < 0 || gc.login_frac > 1 || gc.second_device_frac < 0 ||
        gc.second_device_frac > 1) {
        fprintf(stderr, LG_NAME ": --login and --second-device are shares in 0..1\n");
        return 2;
    }
    if (gc.login_frac > 0 && gc.format != CS_GEN_SEGMENT) {
        fprintf(stderr, LG_NAME ": --login: only the Segment spelling (--format segment) has "
                        "device and person ids yet (issue 21)\n");
        return 2;
    }
    if (gc.login_frac > 0 && !second_set)
        gc.second_device_frac = 0.2;
    if (gc.ncustomers < 1 || gc.mean_events < 1 || gc.invalid_frac < 0 || gc.late_frac < 0 ||
        gc.invalid_frac + gc.too_large_frac + gc.late_frac > 0.9 || rate < 0) {
        fprintf(stderr, LG_NAME ": bad values (customers >= 1, mean-events >= 1, "
                        "fractions >= 0 adding up to at most 0.9, rate >= 0)\n");
        return 2;
    }
    if (find && (!watch_url || expect || expect_only || skip || count != UINT64_MAX || unkeyed)) {
        fprintf(stderr, LG_NAME ": --find-sustainable needs --watch-redis and takes no --expect, "
                        "--skip, --count or --unkeyed\n");
        return 2;
    }
    if (find && (so.step_s <= so.warmup_s || so.growth <= 1 || so.start_rate <= 0 ||
                 so.max_steps < 1)) {
        fprintf(stderr, LG_NAME ": --find-sustainable: --step must be longer than --warmup, "
                        "--growth > 1, --start-rate > 0, --max-steps >= 1\n");
        return 2;
    }
    if (find && !events_set)
        gc.nevents = 1000000000ULL;
    else if (duration_ms && rate > 0 && !events_set)
        gc.nevents = (uint64_t)(rate * (double)duration_ms / 1000.0);
    else if (duration_ms && !events_set)
        gc.nevents = 1000000000ULL; /* until the duration is over */
    char err[512];
    cs_ruleset *rs = cs_rules_load_file(rules, err, sizeof err);
    if (!rs) {
        fprintf(stderr, LG_NAME ": %s\n", err);
        return 2;
    }
    const cs_session_conf *k = cs_rules_session(rs);
    gc.gap_ms = k->gap_ms;
    gc.lateness_ms = k->lateness_ms;
    gc.max_duration_ms = k->max_duration_ms ? k->max_duration_ms : 24 * 3600000LL;
    char journey_buf[256];
    snprintf(journey_buf, sizeof journey_buf, "%s", journey ? journey : cs_rules_journey(rs));
    cs_rules_destroy(rs);

    if (!expect_only) {
        int rc = topic_partitions(&ko, partitions, create, &partitions);
        if (rc)
            return rc;
    }
    gc.nparts = partitions ? partitions : 8;

    if (expect) {
        double t0 = lg_now();
        if (write_expect(&gc, rules, expect) != 0)
            return 1;
        fprintf(stderr, LG_NAME ": expected counts written to %s (%.1fs)\n", expect,
                lg_now() - t0);
    }
    if (dump) { /* the stream to a file instead of Kafka (the SDK tests replay it) */
        FILE *f = fopen(dump, "w");
        if (!f) {
            perror(dump);
            return 1;
        }
        cs_gen *g = cs_gen_new(&gc);
        cs_gen_msg m;
        uint64_t nth = 0;
        while (g && cs_gen_next(g, &m)) {
            if (nth++ < skip)
                continue;
            if (nth - skip > count)
                break;
            fprintf(f, "%d\t%lld\t%.*s\t%s\t", m.part, (long long)m.ts_ms, (int)m.keylen, m.key,
                    m.invalid ? "invalid" : m.late ? "late" : "ok");
            fwrite(m.payload, 1, m.len, f);
            fputc('\n', f);
        }
        cs_gen_destroy(g);
        if (fclose(f) != 0) {
            perror(dump);
            return 1;
        }
        printf("{\"dump\":\"%s\",\"events\":%llu,\"partitions\":%d,\"seed\":%llu}\n", dump,
               (unsigned long long)gc.nevents, gc.nparts, (unsigned long long)gc.seed);
        return 0;
    }
    if (expect_only) {
        printf("{\"expect\":\"%s\",\"events\":%llu,\"partitions\":%d,\"seed\":%llu}\n", expect,
               (unsigned long long)gc.nevents, gc.nparts, (unsigned long long)gc.seed);
        return 0;
    }

    signal(SIGINT, on_sig);
    signal(SIGTERM, on_sig);
    /* librdkafka allocates every message on a producer thread and frees it on its broker
     * thread, and message-set buffers come and go per request: keep freed memory in the heap
     * instead of handing it back to the kernel and faulting it in again (measured: page
     * faults and heap growth were ~8 % of the generator's CPU) */
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
    mallopt(M_TOP_PAD, 64 << 20);
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    cs_gen_plan *pl = cs_gen_plan_new(&gc);
    if (!pl) {
        fprintf(stderr, LG_NAME ": nothing to generate\n");
        return 2;
    }
    if (!nthreads)
        nthreads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    lg_track *track = watch_url ? lg_track_new(gc.nparts, 1) : NULL;
    lg_prod *prod = NULL;
    if (lg_prod_new(&ko, pl, nthreads, unkeyed, track, &prod) < 0)
        return 1;
    nthreads = unkeyed ? 1 : (nthreads > gc.nparts ? gc.nparts : nthreads);
    lg_watch *watch = NULL;
    if (watch_url) {
        lg_watch_opts wo = {watch_url, prefix, journey_buf, ko.topic};
        if (lg_watch_start(&wo, track, &watch) < 0) {
            lg_prod_free(prod);
            return 1;
        }
    }
    fprintf(stderr, LG_NAME ": %d partitions, %d producer thread%s (%s producer)%s%s\n",
            gc.nparts, nthreads, nthreads == 1 ? "" : "s", lg_prod_kind(prod),
            watch ? ", watching " : "", watch ? watch_url : "");

    int rc = 0;
    if (find) {
        char desc[512];
        snprintf(desc, sizeof desc,
                 "\"threads\":%d,\"partitions\":%d,\"topic\":\"%s\",\"compression\":\"%s\","
                 "\"seed\":%llu,\"customers\":%u",
                 nthreads, gc.nparts, ko.topic, ko.compression, (unsigned long long)gc.seed,
                 gc.ncustomers);
        rc = lg_sustain_run(&so, prod, watch, pl, &g_stop, desc);
        lg_prod_stats st;
        lg_prod_flush(prod, 60000, &st);
        lg_watch_stop(watch);
        lg_prod_free(prod);
        lg_track_free(track);
        cs_gen_plan_free(pl);
        return rc;
    }

    uint64_t to = count == UINT64_MAX || skip + count > gc.nevents ? gc.nevents : skip + count;
    double t0 = lg_now();
    runner R = {prod, skip < gc.nevents ? skip : gc.nevents, to, rate,
                duration_ms ? t0 + (double)duration_ms / 1000 : 0, 0, 0};
    pthread_t rth;
    pthread_create(&rth, NULL, run_segment, &R);
    FILE *lcsv = lat_csv ? fopen(lat_csv, "w") : NULL;
    if (lat_csv && !lcsv)
        perror(lat_csv);
    if (lcsv)
        fprintf(lcsv, "t_s,sent_per_s,visible_per_s,lag,p50_ms,p95_ms,p99_ms,max_ms,samples\n");
    double last = t0;
    uint64_t last_sent = 0;
    if (watch) {
        lg_window w0;
        lg_watch_take(watch, &w0); /* the first interval starts now */
    }
    while (!__atomic_load_n(&R.done, __ATOMIC_ACQUIRE)) {
        usleep(20000);
        double now = lg_now();
        double every = progress_s > 0 ? progress_s : (watch ? 1 : 0);
        if (every <= 0 || now - last < every)
            continue;
        uint64_t sent = lg_prod_sent(prod);
        double sps = (double)(sent - last_sent) / (now - last);
        if (watch) {
            lg_window w;
            lg_watch_take(watch, &w);
            double vps = (double)(w.visible1 - w.visible0) / (w.t1 - w.t0);
            if (progress_s > 0)
                fprintf(stderr,
                        LG_NAME ": %llu sent, %.0f/s | visible %.0f/s, lag %lld | latency "
                        "p50 %.0f p95 %.0f p99 %.0f max %.0f ms (%llu samples)\n",
                        (unsigned long long)sent, sps, vps, (long long)w.lag1,
                        lg_hist_ms(&w.lat, 0.5), lg_hist_ms(&w.lat, 0.95),
                        lg_hist_ms(&w.lat, 0.99), lg_hist_ms(&w.lat, 1),
                        (unsigned long long)w.lat.n);
            if (lcsv) {
                fprintf(lcsv, "%.2f,%.0f,%.0f,%lld,%.1f,%.1f,%.1f,%.1f,%llu\n", now - t0, sps, vps,
                        (long long)w.lag1, lg_hist_ms(&w.lat, 0.5), lg_hist_ms(&w.lat, 0.95),
                        lg_hist_ms(&w.lat, 0.99), lg_hist_ms(&w.lat, 1),
                        (unsigned long long)w.lat.n);
                fflush(lcsv);
            }
        } else {
            fprintf(stderr, "\r" LG_NAME ": %llu sent, %.0f/s now, %.0f/s average   ",
                    (unsigned long long)sent, sps, (double)sent / (now - t0));
        }
        last = now;
        last_sent = sent;
    }
    pthread_join(rth, NULL);
    double t_sent = lg_now();
    lg_prod_stats st;
    lg_prod_flush(prod, 120000, &st);
    double t_done = lg_now();
    if (progress_s > 0 && !watch)
        fprintf(stderr, "\n");
    if (st.failed)
        fprintf(stderr, LG_NAME ": %llu messages failed: %s\n", (unsigned long long)st.failed,
                st.first_error);
    char latj[512] = "";
    if (watch) {
        int all = lg_watch_settle(watch, settle_s);
        int64_t lag = 0, vis = 0;
        lg_watch_lag(watch, &lag, &vis);
        if (!all)
            fprintf(stderr, LG_NAME ": not everything visible after --settle %.0fs (lag %lld)\n",
                    settle_s, (long long)lag);
        lg_hist tot;
        lg_watch_total(watch, &tot);
        fprintf(stderr,
                LG_NAME ": produce -> visible latency over the run: p50 %.1f p95 %.1f p99 %.1f "
                        "max %.1f ms (%llu samples), lag at the end %lld\n",
                lg_hist_ms(&tot, 0.5), lg_hist_ms(&tot, 0.95), lg_hist_ms(&tot, 0.99),
                lg_hist_ms(&tot, 1), (unsigned long long)tot.n, (long long)lag);
        char lj[300];
        lat_json(lj, sizeof lj, &tot);
        snprintf(latj, sizeof latj, ",%s,\"lag_end\":%lld", lj, (long long)lag);
        lg_watch_stop(watch);
    }
    if (lcsv)
        fclose(lcsv);
    printf("{\"events\":%llu,\"delivered\":%llu,\"failed\":%llu,\"invalid\":%llu,\"late\":%llu,"
           "\"bytes\":%llu,\"partitions\":%d,\"seed\":%llu,\"threads\":%d,\"seconds\":%.3f,"
           "\"events_per_sec\":%.0f,\"send_events_per_sec\":%.0f,\"rate\":%.0f,\"keyed\":%s,"
           "\"producer\":\"%s\"%s}\n",
           (unsigned long long)st.sent, (unsigned long long)st.delivered,
           (unsigned long long)st.failed, (unsigned long long)st.invalid,
           (unsigned long long)st.late, (unsigned long long)st.bytes, gc.nparts,
           (unsigned long long)gc.seed, nthreads, t_done - t0,
           (double)st.sent / (t_done - t0), (double)st.sent / (t_sent - t0), rate,
           unkeyed ? "false" : "true", lg_prod_kind(prod), latj);
    rc = st.failed || st.delivered != st.sent ? 1 : 0;
    lg_prod_free(prod);
    lg_track_free(track);
    cs_gen_plan_free(pl);
    return rc;
}
