/* clickstage-loadgen — the bundled load generator (SPEC §6).
 *
 * Produces the synthetic clickstream of loadgen/gen.c (personas, channels, funnel, sessions
 * over days, out-of-order/late/invalid shares; deterministic for a seed) to a Kafka topic, keyed
 * by customer (--unkeyed: no key, any partition, like a producer that does not key), at a target
 * rate or flat out, with a progress line. --expect FILE writes the exact SPEC §4 counts
 * `clickstage --drain` must produce for that stream (--unkeyed: once re-keyed), computed by the
 * reference model (loadgen/refmodel.c: cJSON decoding, a plain map per customer, none of the
 * daemon's code paths), so any run can be checked against ground truth (bench/checkredis).
 *
 * Last stdout line: one JSON object with the achieved figures.
 */
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aggregate.h"
#include "classify.h"
#include "counts.h"
#include "decode.h"
#include "gen.h"
#include "refmodel.h"

static volatile sig_atomic_t g_stop;
static _Atomic uint64_t g_delivered, g_failed;
static char g_first_error[512];

static void on_sig(int s) { g_stop = 1; }

/* splitmix64's finaliser: --unkeyed's partition for a message number */
static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void usage(FILE *f)
{
    fprintf(f,
        "clickstage-loadgen: synthetic clickstream to Kafka, with exact expected counts.\n\n"
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
        "                        the customer-keyed stream (default: keyed)\n"
        "Volume and pace\n"
        "  --events N            messages to produce (default 1000000)\n"
        "  --duration D          stop after D (e.g. 60s); with --rate, events = rate x D\n"
        "  --rate R              messages per second; 0 = flat out (default 0)\n"
        "Content (same values, same stream)\n"
        "  --seed S              (default 42)\n"
        "  --customers C         distinct customers (default 100000)\n"
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
        "  --rules FILE          session parameters and, for --expect, the rules (default\n"
        "                        $CLICKSTAGE_RULES, else deploy/rules/retail.yaml)\n"
        "Ground truth\n"
        "  --expect FILE         write the §4 counts `clickstage --drain` must produce (JSON)\n"
        "  --expect-only         only write --expect, produce nothing\n"
        "  --skip N              generate but do not send the first N messages, and\n"
        "  --count N             send at most N messages after those: a stream sent in parts\n"
        "                        (same seed and options each time) adds up to the whole one\n"
        "Producer\n"
        "  --compression C       none|gzip|snappy|lz4|zstd (default lz4)\n"
        "  --linger-ms N         (default 5)\n"
        "  --batch N             messages per batch (default 10000)\n"
        "  --kafka k=v,...       more librdkafka producer properties\n"
        "  --progress D          progress line interval, 0 = none (default 1s)\n"
        "  --help\n");
}

static int64_t parse_dur(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s)
        return -1;
    if (!strcmp(end, "ms")) return (int64_t)v;
    if (!strcmp(end, "s") || !*end) return (int64_t)(v * 1000);
    if (!strcmp(end, "m")) return (int64_t)(v * 60000);
    if (!strcmp(end, "h")) return (int64_t)(v * 3600000);
    if (!strcmp(end, "d")) return (int64_t)(v * 86400000);
    return -1;
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    if (m->err) {
        if (atomic_fetch_add(&g_failed, 1) == 0)
            snprintf(g_first_error, sizeof g_first_error, "%s", rd_kafka_err2str(m->err));
    } else {
        atomic_fetch_add_explicit(&g_delivered, 1, memory_order_relaxed);
    }
}

static int write_expect(const cs_gen_conf *gc, const char *rules, const char *path)
{
    char err[512];
    cs_ruleset *rs = cs_rules_load_file(rules, err, sizeof err);
    if (!rs) {
        fprintf(stderr, "clickstage-loadgen: %s\n", err);
        return -1;
    }
    ref_model *m = ref_new(rs, NULL, gc->nparts);
    cs_gen *g = cs_gen_new(gc);
    cs_gen_msg msg;
    while (cs_gen_next(g, &msg))
        ref_event(m, msg.part, msg.payload, msg.len, msg.ts_ms);
    cs_gen_destroy(g);
    ref_finish(m, CS_END_DRAIN);
    cs_counts *c = cs_counts_new();
    ref_counts(m, c);
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

int main(int argc, char **argv)
{
    const char *brokers = "127.0.0.1:9092", *topic = "clickstream";
    /* the same rule file as the daemon's when run beside it (e.g. in the container image) */
    const char *rules = getenv("CLICKSTAGE_RULES") && *getenv("CLICKSTAGE_RULES")
                            ? getenv("CLICKSTAGE_RULES")
                            : "deploy/rules/retail.yaml";
    const char *expect = NULL, *compression = "lz4", *extra = NULL;
    int partitions = 0, create = 0, expect_only = 0, unkeyed = 0;
    double rate = 0, progress_s = 1;
    int64_t duration_ms = 0, linger = 5, batch = 10000;
    cs_gen_conf gc;
    cs_gen_defaults(&gc);
    gc.nevents = 1000000;
    gc.ncustomers = 100000;
    int events_set = 0;
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
        if (i + 1 >= argc) {
            fprintf(stderr, "clickstage-loadgen: unknown option or missing value: %s (see --help)\n", a);
            return 2;
        }
        const char *v = argv[++i];
        char *end = NULL;
#define NUM(x) ((x) = strtod(v, &end), (end == v || *end) ? (fprintf(stderr, "clickstage-loadgen: %s: '%s' is not a number\n", a, v), exit(2), 0) : 0)
        double d;
        if (!strcmp(a, "--brokers")) brokers = v;
        else if (!strcmp(a, "--topic")) topic = v;
        else if (!strcmp(a, "--partitions")) { NUM(d); partitions = (int)d; }
        else if (!strcmp(a, "--events")) { NUM(d); gc.nevents = (uint64_t)d; events_set = 1; }
        else if (!strcmp(a, "--duration")) { if ((duration_ms = parse_dur(v)) <= 0) { fprintf(stderr, "clickstage-loadgen: --duration: bad duration '%s'\n", v); return 2; } }
        else if (!strcmp(a, "--rate")) { NUM(rate); }
        else if (!strcmp(a, "--seed")) { NUM(d); gc.seed = (uint64_t)d; }
        else if (!strcmp(a, "--customers")) { NUM(d); gc.ncustomers = (uint32_t)d; }
        else if (!strcmp(a, "--start")) { NUM(d); gc.start_ms = (int64_t)d; }
        else if (!strcmp(a, "--span")) { if ((gc.span_ms = parse_dur(v)) <= 0) { fprintf(stderr, "clickstage-loadgen: --span: bad duration '%s'\n", v); return 2; } }
        else if (!strcmp(a, "--mean-events")) { NUM(gc.mean_events); }
        else if (!strcmp(a, "--invalid")) { NUM(gc.invalid_frac); }
        else if (!strcmp(a, "--too-large")) { NUM(gc.too_large_frac); }
        else if (!strcmp(a, "--late")) { NUM(gc.late_frac); }
        else if (!strcmp(a, "--skew")) { NUM(gc.skew_frac); }
        else if (!strcmp(a, "--out-of-order")) { NUM(gc.ooo_frac); }
        else if (!strcmp(a, "--long")) { NUM(gc.long_frac); }
        else if (!strcmp(a, "--rules")) rules = v;
        else if (!strcmp(a, "--expect")) expect = v;
        else if (!strcmp(a, "--compression")) compression = v;
        else if (!strcmp(a, "--linger-ms")) { NUM(d); linger = (int64_t)d; }
        else if (!strcmp(a, "--batch")) { NUM(d); batch = (int64_t)d; }
        else if (!strcmp(a, "--kafka")) extra = v;
        else if (!strcmp(a, "--skip")) { NUM(d); skip = (uint64_t)d; }
        else if (!strcmp(a, "--count")) { NUM(d); count = (uint64_t)d; }
        else if (!strcmp(a, "--progress")) { int64_t p = parse_dur(v); if (p < 0) { fprintf(stderr, "clickstage-loadgen: --progress: bad duration\n"); return 2; } progress_s = (double)p / 1000; }
        else {
            fprintf(stderr, "clickstage-loadgen: unknown option %s (see --help)\n", a);
            return 2;
        }
    }
    if (gc.ncustomers < 1 || gc.mean_events < 1 || gc.invalid_frac < 0 || gc.late_frac < 0 ||
        gc.invalid_frac + gc.too_large_frac + gc.late_frac > 0.9 || rate < 0) {
        fprintf(stderr, "clickstage-loadgen: bad values (customers >= 1, mean-events >= 1, "
                        "fractions >= 0 adding up to at most 0.9, rate >= 0)\n");
        return 2;
    }
    if (duration_ms && rate > 0 && !events_set)
        gc.nevents = (uint64_t)(rate * (double)duration_ms / 1000.0);
    else if (duration_ms && !events_set)
        gc.nevents = UINT64_MAX / 2; /* until the duration is over */
    char err[512];
    cs_ruleset *rs = cs_rules_load_file(rules, err, sizeof err);
    if (!rs) {
        fprintf(stderr, "clickstage-loadgen: %s\n", err);
        return 2;
    }
    const cs_session_conf *k = cs_rules_session(rs);
    gc.gap_ms = k->gap_ms;
    gc.lateness_ms = k->lateness_ms;
    gc.max_duration_ms = k->max_duration_ms ? k->max_duration_ms : 24 * 3600000LL;
    cs_rules_destroy(rs);

    rd_kafka_t *rk = NULL;
    if (!expect_only) {
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        char num[32];
        struct { const char *k, *v; } props[] = {
            {"bootstrap.servers", brokers},
            {"compression.codec", compression},
            {"enable.idempotence", "true"}, /* retries never duplicate: ground truth stays exact */
            {"acks", "all"},
            {"queue.buffering.max.messages", "2000000"},
            {"queue.buffering.max.kbytes", "2097151"},
            {"message.max.bytes", "2000000"},
            {"batch.size", "1000000"},
        };
        for (size_t i = 0; i < sizeof props / sizeof *props; i++)
            if (rd_kafka_conf_set(conf, props[i].k, props[i].v, err, sizeof err)) {
                fprintf(stderr, "clickstage-loadgen: %s: %s\n", props[i].k, err);
                return 2;
            }
        snprintf(num, sizeof num, "%lld", (long long)linger);
        rd_kafka_conf_set(conf, "linger.ms", num, err, sizeof err);
        snprintf(num, sizeof num, "%lld", (long long)batch);
        rd_kafka_conf_set(conf, "batch.num.messages", num, err, sizeof err);
        if (extra && *extra) {
            char *dup = strdup(extra), *save = NULL;
            for (char *kv = strtok_r(dup, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
                char *eq = strchr(kv, '=');
                if (!eq || (*eq = 0, rd_kafka_conf_set(conf, kv, eq + 1, err, sizeof err))) {
                    fprintf(stderr, "clickstage-loadgen: --kafka %s: %s\n", kv,
                            eq ? err : "not k=v");
                    return 2;
                }
            }
            free(dup);
        }
        rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
        if (!rk) {
            fprintf(stderr, "clickstage-loadgen: %s\n", err);
            return 2;
        }
        /* the topic's partition count decides where each customer goes */
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
        int have = (!e && md->topic_cnt == 1 && !md->topics[0].err) ? md->topics[0].partition_cnt : 0;
        if (md)
            rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
        if (e) {
            fprintf(stderr, "clickstage-loadgen: %s: %s\n", brokers, rd_kafka_err2str(e));
            return 1;
        }
        if (!have && create) {
            int want = partitions ? partitions : 8;
            rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, want, 1, err, sizeof err);
            rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
            rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
            rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 20000);
            const rd_kafka_CreateTopics_result_t *res = ev ? rd_kafka_event_CreateTopics_result(ev) : NULL;
            size_t nres = 0;
            const rd_kafka_topic_result_t **tr = res ? rd_kafka_CreateTopics_result_topics(res, &nres) : NULL;
            if (!tr || nres != 1 || rd_kafka_topic_result_error(tr[0])) {
                fprintf(stderr, "clickstage-loadgen: create %s: %s\n", topic,
                        tr && nres ? rd_kafka_topic_result_error_string(tr[0]) : "timed out");
                return 1;
            }
            rd_kafka_event_destroy(ev);
            rd_kafka_queue_destroy(q);
            rd_kafka_NewTopic_destroy(nt);
            have = want;
            fprintf(stderr, "clickstage-loadgen: created %s with %d partitions\n", topic, want);
        }
        if (!have) {
            fprintf(stderr, "clickstage-loadgen: topic %s does not exist (use --create)\n", topic);
            return 1;
        }
        if (partitions && partitions != have) {
            fprintf(stderr, "clickstage-loadgen: topic %s has %d partitions, not %d\n", topic,
                    have, partitions);
            return 1;
        }
        partitions = have;
    }
    gc.nparts = partitions ? partitions : 8;

    if (expect) {
        double t0 = now_s();
        if (write_expect(&gc, rules, expect) != 0)
            return 1;
        fprintf(stderr, "clickstage-loadgen: expected counts written to %s (%.1fs)\n", expect,
                now_s() - t0);
    }
    if (expect_only) {
        printf("{\"expect\":\"%s\",\"events\":%llu,\"partitions\":%d,\"seed\":%llu}\n", expect,
               (unsigned long long)gc.nevents, gc.nparts, (unsigned long long)gc.seed);
        return 0;
    }

    signal(SIGINT, on_sig);
    signal(SIGTERM, on_sig);
    cs_gen *g = cs_gen_new(&gc);
    cs_gen_msg m;
    uint64_t sent = 0, bytes = 0, ninv = 0, nlate = 0, last_sent = 0;
    for (uint64_t i = 0; i < skip && cs_gen_next(g, &m); i++)
        ;
    double t0 = now_s(), last = t0, deadline = duration_ms ? t0 + (double)duration_ms / 1000 : 0;
    while (!g_stop && sent < count && cs_gen_next(g, &m)) {
        if (rate > 0 && (sent & 255) == 0) {
            double due = t0 + (double)sent / rate;
            double now = now_s();
            if (due > now)
                usleep((useconds_t)((due - now) * 1e6));
        }
        int part = m.part;
        const char *key = m.key; /* a plain variable: RD_KAFKA_V_KEY casts without parentheses */
        size_t keylen = m.keylen;
        if (unkeyed) { /* by position in the stream: a stream sent in parts lands the same way */
            part = (int)(mix64(gc.seed ^ (skip + sent) * 0x9e3779b97f4a7c15ULL) %
                         (uint64_t)gc.nparts);
            key = NULL;
            keylen = 0;
        }
        for (;;) {
            rd_kafka_resp_err_t e = rd_kafka_producev(
                rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(part),
                RD_KAFKA_V_KEY(key, keylen),
                RD_KAFKA_V_VALUE((void *)m.payload, m.len),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_TIMESTAMP(m.ts_ms),
                RD_KAFKA_V_END);
            if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                rd_kafka_poll(rk, 5);
                continue;
            }
            if (e) {
                fprintf(stderr, "clickstage-loadgen: produce: %s\n", rd_kafka_err2str(e));
                return 1;
            }
            break;
        }
        sent++;
        bytes += m.len;
        ninv += (uint64_t)m.invalid;
        nlate += (uint64_t)m.late;
        if ((sent & 1023) == 0) {
            rd_kafka_poll(rk, 0);
            double now = now_s();
            if (deadline && now >= deadline)
                break;
            if (progress_s > 0 && now - last >= progress_s) {
                fprintf(stderr, "\rclickstage-loadgen: %llu sent, %.0f/s now, %.0f/s average, "
                                "%llu delivered   ",
                        (unsigned long long)sent, (double)(sent - last_sent) / (now - last),
                        (double)sent / (now - t0),
                        (unsigned long long)atomic_load(&g_delivered));
                last = now;
                last_sent = sent;
            }
        }
    }
    double t_sent = now_s();
    rd_kafka_flush(rk, 120000);
    double t_done = now_s();
    if (progress_s > 0)
        fprintf(stderr, "\n");
    uint64_t failed = atomic_load(&g_failed), delivered = atomic_load(&g_delivered);
    if (failed)
        fprintf(stderr, "clickstage-loadgen: %llu messages failed: %s\n",
                (unsigned long long)failed, g_first_error);
    printf("{\"events\":%llu,\"delivered\":%llu,\"failed\":%llu,\"invalid\":%llu,\"late\":%llu,"
           "\"bytes\":%llu,\"partitions\":%d,\"seed\":%llu,\"seconds\":%.3f,"
           "\"events_per_sec\":%.0f,\"send_events_per_sec\":%.0f,\"rate\":%.0f,\"keyed\":%s}\n",
           (unsigned long long)sent, (unsigned long long)delivered, (unsigned long long)failed,
           (unsigned long long)ninv, (unsigned long long)nlate, (unsigned long long)bytes,
           gc.nparts, (unsigned long long)gc.seed, t_done - t0, (double)sent / (t_done - t0),
           (double)sent / (t_sent - t0), rate, unkeyed ? "false" : "true");
    cs_gen_destroy(g);
    rd_kafka_destroy(rk);
    return failed || delivered != sent ? 1 : 0;
}
