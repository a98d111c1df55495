/* cs_testgen — produces a generated clickstream to a real Kafka topic, partition by partition
 * exactly as the generator assigned them, and writes the counts the reference model expects
 * `clickstage --drain` to leave in Redis (JSON: {"hash": {"field": n}}).
 *
 *   cs_testgen --brokers B --topic T --partitions P --events N --customers C --seed S
 *              --rules FILE --expect OUT.json [--persona-path properties.persona]
 *              [--skip N] [--count N]   (produce only messages [skip, skip+count) of each
 *                                        partition: for runs split in two halves)
 */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregate.h"
#include "classify.h"
#include "counts.h"
#include "gen.h"
#include "refmodel.h"

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    if (m->err) {
        fprintf(stderr, "cs_testgen: delivery failed: %s\n", rd_kafka_err2str(m->err));
        exit(1);
    }
}

int main(int argc, char **argv)
{
    const char *brokers = NULL, *topic = NULL, *rules = NULL, *expect = NULL;
    const char *persona = "properties.persona";
    cs_gen_conf gc;
    cs_gen_defaults(&gc);
    long long skip = 0, count = -1;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--brokers")) brokers = v;
        else if (!strcmp(k, "--topic")) topic = v;
        else if (!strcmp(k, "--partitions")) gc.nparts = atoi(v);
        else if (!strcmp(k, "--events")) gc.nevents = strtoull(v, NULL, 10);
        else if (!strcmp(k, "--customers")) gc.ncustomers = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(k, "--seed")) gc.seed = strtoull(v, NULL, 10);
        else if (!strcmp(k, "--rules")) rules = v;
        else if (!strcmp(k, "--expect")) expect = v;
        else if (!strcmp(k, "--persona-path")) persona = v;
        else if (!strcmp(k, "--skip")) skip = atoll(v);
        else if (!strcmp(k, "--count")) count = atoll(v);
        else if (!strcmp(k, "--span-hours")) gc.span_ms = atoll(v) * 3600000LL;
        else { fprintf(stderr, "cs_testgen: unknown option %s\n", k); return 2; }
    }
    if (!rules) {
        fprintf(stderr, "cs_testgen: --rules is required\n");
        return 2;
    }
    char err[512];
    cs_ruleset *rs = cs_rules_load_file(rules, err, sizeof err);
    if (!rs) {
        fprintf(stderr, "cs_testgen: %s\n", err);
        return 2;
    }
    const cs_session_conf *k = cs_rules_session(rs);
    gc.gap_ms = k->gap_ms;
    gc.lateness_ms = k->lateness_ms;
    gc.max_duration_ms = k->max_duration_ms ? k->max_duration_ms : 24 * 3600000LL;
    cs_gen_out *g = cs_gen_run(&gc);
    if (expect) {
        const char *dim_paths[CS_MAX_DIMS] = {0};
        for (int d = 0; d < cs_rules_ndims(rs); d++)
            if (cs_rules_dim(rs, d)->field >= CS_F_NSTD)
                dim_paths[d] = persona;
        ref_model *m = ref_new(rs, dim_paths, g->nparts);
        for (int q = 0; q < g->nparts; q++)
            for (size_t i = 0; i < g->parts[q].n; i++)
                ref_event(m, q, g->parts[q].msgs[i].payload, g->parts[q].msgs[i].len,
                          g->parts[q].msgs[i].ts_ms);
        ref_finish(m, CS_END_DRAIN);
        cs_counts *c = cs_counts_new();
        ref_counts(m, c);
        FILE *f = fopen(expect, "w");
        if (!f) {
            perror(expect);
            return 1;
        }
        cs_counts_write_json(c, f);
        fclose(f);
        cs_counts_free(c);
        ref_free(m);
    }
    if (brokers && topic) {
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof err) ||
            rd_kafka_conf_set(conf, "linger.ms", "20", err, sizeof err) ||
            rd_kafka_conf_set(conf, "compression.codec", "lz4", err, sizeof err) ||
            rd_kafka_conf_set(conf, "batch.num.messages", "10000", err, sizeof err) ||
            rd_kafka_conf_set(conf, "queue.buffering.max.kbytes", "1048576", err, sizeof err) ||
            rd_kafka_conf_set(conf, "message.max.bytes", "2000000", err, sizeof err)) {
            fprintf(stderr, "cs_testgen: %s\n", err);
            return 2;
        }
        rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
        if (!rk) {
            fprintf(stderr, "cs_testgen: %s\n", err);
            return 2;
        }
        uint64_t sent = 0;
        for (int q = 0; q < g->nparts; q++) {
            size_t from = (size_t)skip, to = g->parts[q].n;
            if (count >= 0 && from + (size_t)count < to)
                to = from + (size_t)count;
            for (size_t i = from; i < to; i++) {
                const cs_msg *m = &g->parts[q].msgs[i];
                for (;;) {
                    rd_kafka_resp_err_t e = rd_kafka_producev(
                        rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(q),
                        RD_KAFKA_V_VALUE((void *)m->payload, m->len),
                        RD_KAFKA_V_TIMESTAMP(m->ts_ms), RD_KAFKA_V_END);
                    if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                        rd_kafka_poll(rk, 10);
                        continue;
                    }
                    if (e) {
                        fprintf(stderr, "cs_testgen: produce: %s\n", rd_kafka_err2str(e));
                        return 1;
                    }
                    break;
                }
                sent++;
                rd_kafka_poll(rk, 0);
            }
        }
        if (rd_kafka_flush(rk, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            fprintf(stderr, "cs_testgen: flush timed out\n");
            return 1;
        }
        rd_kafka_destroy(rk);
        fprintf(stderr, "cs_testgen: produced %llu messages to %s\n", (unsigned long long)sent,
                topic);
    }
    printf("{\"messages\":%llu,\"invalid\":%llu,\"late\":%llu,\"partitions\":%d}\n",
           (unsigned long long)g->nmsgs, (unsigned long long)g->ninvalid,
           (unsigned long long)g->nlate, g->nparts);
    cs_gen_free(g);
    cs_rules_destroy(rs);
    return 0;
}
