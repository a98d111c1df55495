/* clickstage-repartition — re-key a clickstream by customer id, exactly once.
 *
 * clickstage keeps sessions per customer per Kafka partition, so every message of one customer
 * must arrive on one partition. When producers do not key by customer, this daemon sits in
 * between (as Kafka Streams' repartition topics do): it consumes the input topic(s) in a
 * consumer group, extracts each message's customer id with clickstage's own decoder and the same
 * rule file (so both agree on what "the customer" is), and produces the message unchanged
 * (value, timestamp, headers) to an output topic keyed by that id, partitioned with the
 * Java-compatible murmur2 partitioner (every Kafka client agrees on where a key goes). Messages
 * the decoder rejects go through unkeyed, so the daemon still counts them as invalid.
 *
 * Exactly once: a transactional producer, consume-transform-produce. The input offsets are part
 * of each transaction (rd_kafka_send_offsets_to_transaction); a transaction is committed every
 * --commit-interval or --commit-messages, whichever comes first; an abortable error aborts it
 * and rewinds every partition to where the transaction began. A crash leaves an open transaction
 * that the restarted instance (same transactional.id) aborts before it reads anything, and
 * read_committed consumers (clickstage's default) never see its messages.
 *
 * Order: with --order timestamp (the default) the input partitions are merged by message
 * timestamp, so a customer whose events were spread over several input partitions gets them on
 * the output partition in (producer) time order rather than in fetch-batch order; a partition
 * with nothing fetched yet holds the merge back for at most --max-idle. docs/repartition.md has
 * the why, the mechanics and the limits.
 *
 * Last stdout line: one JSON object with the totals. Progress on stderr.
 */
#include <librdkafka/rdkafka.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "classify.h"
#include "decode.h"
#include "kprops.h"
#include "log.h"
#include "parse.h"

#define PROG "clickstage-repartition"
#define MAX_TOPICS 16
#define BATCH 1024         /* messages taken from one partition's queue at a time */
#define CHUNK 4096         /* messages emitted between two looks at the clock and the group */

enum { EXIT_OK = 0, EXIT_CONFIG = 1, EXIT_START = 2, EXIT_FATAL = 3 };
enum { KEY_SESSION = 0, KEY_DEVICE, KEY_PERSON };
static const char *const KEY_NAMES[] = {"session", "device", "person"};

/* ---- options: one table drives parsing, the environment and --help ------------------------ */

enum {
    O_BROKERS, O_INPUT, O_OUTPUT, O_GROUP, O_INSTANCE, O_TXID, O_RULES, O_KEY, O_COMMIT_INTERVAL,
    O_COMMIT_MESSAGES, O_ORDER, O_MAX_IDLE, O_DRAIN, O_CREATE, O_PARTITIONS, O_RF, O_OFFSET_RESET,
    O_RATE, O_COMPRESSION, O_PROGRESS, O_KAFKA, O_KAFKA_CONSUMER, O_KAFKA_PRODUCER, O__COUNT
};

typedef struct opt {
    const char *name; /* flag without "--" */
    const char *arg;  /* value placeholder; NULL: a switch */
    const char *def;  /* default as text ("" = none, or computed: see help) */
    const char *help;
} opt;

static struct {
    const char *val;  /* current value */
    const char *from; /* where it came from when not a flag, for error messages */
    char env[64];     /* CLICKSTAGE_REPARTITION_<NAME> */
} V[O__COUNT];

static const opt O[O__COUNT] = {
    [O_BROKERS] = {"brokers", "LIST", "127.0.0.1:9092", "bootstrap servers"},
    [O_INPUT] = {"input", "TOPICS", "clickstream", "input topic(s), comma separated"},
    [O_OUTPUT] = {"output", "TOPIC", "clickstream-by-customer",
                  "output topic, keyed by customer (point clickstage --topics at it)"},
    [O_GROUP] = {"group", "ID", "clickstage-repartition",
                 "consumer group; its offsets are committed inside the transactions"},
    [O_INSTANCE] = {"instance", "ID", "", "this instance's name (default: the host name); "
                                           "must be stable across restarts"},
    [O_TXID] = {"transactional-id", "ID", "",
                "transactional.id (default: GROUP.INSTANCE); unique per live instance, the same "
                "after a restart so the new one aborts what the old one left open"},
    [O_RULES] = {"rules", "FILE", "$CLICKSTAGE_RULES, else deploy/rules/retail.yaml",
                 "clickstage rule file: where the customer id is (SPEC §1 paths, size and depth "
                 "limits); use the daemon's"},
    [O_KEY] = {"key", "WHICH", "session",
               "the output key: session = what clickstage keeps sessions by (the SPEC §1 "
               "customer; with identity: in --rules the device, else the person); device = "
               "the device, else the person, and refuse a rule file without identity:; "
               "person = the person, else the device (not for clickstage's identity: it "
               "needs a device's events on one partition)"},
    [O_COMMIT_INTERVAL] = {"commit-interval", "D", "100ms",
                           "commit the open transaction at least this often (ms, s, m)"},
    [O_COMMIT_MESSAGES] = {"commit-messages", "N", "100000",
                           "... or after this many messages, whichever comes first"},
    [O_ORDER] = {"order", "MODE", "timestamp",
                 "timestamp: merge input partitions by message timestamp; none: as fetched"},
    [O_MAX_IDLE] = {"max-idle", "D", "500ms",
                    "--order timestamp: how long a partition with nothing fetched (and not at "
                    "its end) may hold the merge back"},
    [O_DRAIN] = {"drain", NULL, "off",
                 "read every partition of the input up to its end offset at start, commit, exit 0 "
                 "(backfills, tests; one instance, partitions assigned, not subscribed)"},
    [O_CREATE] = {"create", NULL, "off", "create the output topic if missing"},
    [O_PARTITIONS] = {"partitions", "N", "0",
                      "--create: partitions of the output topic (0: as many as the first input "
                      "topic); if it exists and N > 0, it must have N"},
    [O_RF] = {"replication-factor", "N", "-1", "--create: replication factor (-1: broker default)"},
    [O_OFFSET_RESET] = {"auto-offset-reset", "WHERE", "earliest",
                        "earliest|latest: where a partition without committed offset starts"},
    [O_RATE] = {"rate", "R", "0", "at most R messages per second; 0 = flat out"},
    [O_COMPRESSION] = {"compression", "C", "lz4", "none|gzip|snappy|lz4|zstd for the output"},
    [O_PROGRESS] = {"progress", "D", "10s", "progress line interval on stderr, 0 = none"},
    [O_KAFKA] = {"kafka", "k=v,...", "",
                 "librdkafka properties for both clients (applied last; a property the other "
                 "client does not know is ignored with a warning)"},
    [O_KAFKA_CONSUMER] = {"kafka-consumer", "k=v,...", "", "librdkafka properties, consumer only"},
    [O_KAFKA_PRODUCER] = {"kafka-producer", "k=v,...", "", "librdkafka properties, producer only"},
};

static void usage(FILE *f)
{
    fprintf(f, PROG ": re-key a clickstream by customer id for clickstage, exactly once.\n\n"
               "Usage: " PROG " [OPTIONS]\n\n"
               "Every option can also be set as CLICKSTAGE_REPARTITION_<NAME> (upper case, '-' "
               "as '_';\nswitches take 1/0); flags win over the environment. The librdkafka "
               "property lists can\ncome from a properties file (one key=value per line, e.g. a "
               "mounted secret):\nCLICKSTAGE_REPARTITION_KAFKA_FILE, ..._KAFKA_CONSUMER_FILE, "
               "..._KAFKA_PRODUCER_FILE.\nA comma inside a value is written \\, in a flag or "
               "variable. Property values are never printed.\n\n");
    for (int i = 0; i < O__COUNT; i++) {
        char left[64], text[512];
        snprintf(left, sizeof left, "--%s%s%s", O[i].name, O[i].arg ? " " : "",
                 O[i].arg ? O[i].arg : "");
        snprintf(text, sizeof text, "%s%s%s%s", O[i].help, O[i].def[0] ? " (default " : "",
                 O[i].def, O[i].def[0] ? ")" : "");
        /* wrapped at 100 columns, continuation lines under the text */
        const char *t = text;
        fprintf(f, "  %-28s ", left);
        while (strlen(t) > 69) {
            int cut = 69;
            while (cut > 0 && t[cut] != ' ')
                cut--;
            if (!cut)
                cut = 69;
            fprintf(f, "%.*s\n%31s", cut, t, "");
            t += cut + (t[cut] == ' ');
        }
        fprintf(f, "%s\n", t);
    }
    fprintf(f, "  %-28s %s\n\n", "--help", "this text");
    fprintf(f, "Exit: 0 stopped (SIGTERM/SIGINT: the open transaction is committed) or drain done;\n"
               "1 bad option; 2 could not start (rules, Kafka, topics); 3 fatal Kafka error "
               "(e.g. fenced\nby another instance with the same transactional.id). The last "
               "stdout line is JSON:\n"
               "{\"consumed\":N,\"produced\":N,\"unkeyed\":N,\"transactions\":N,\"aborts\":N,"
               "\"seconds\":S,\"rate\":R}\n");
}

static int bad(int o, const char *why, const char *v)
{
    fprintf(stderr, PROG ": --%s%s%s: %s '%s'\n", O[o].name, V[o].from ? " from " : "",
            V[o].from ? V[o].from : "", why, v);
    return -1;
}

/* A duration in the daemon's grammar (pipeline/parse.h): "100ms", "5s", "2m", "1h", "0". */
static int parse_ms(int o, int64_t *out)
{
    const char *v = V[o].val;
    cs_dur_err e = cs_parse_duration(v, strlen(v), out);
    if (e != CS_DUR_OK) {
        char why[128];
        snprintf(why, sizeof why, "bad duration (%s)", cs_dur_err_text(e));
        return bad(o, why, v);
    }
    return 0;
}

static int parse_int(int o, int64_t lo, int64_t hi, int64_t *out)
{
    const char *v = V[o].val;
    int64_t x;
    if (cs_parse_int64(v, strlen(v), &x) < 0 || x < lo || x > hi) {
        char why[96];
        snprintf(why, sizeof why, "not an integer in %lld..%lld", (long long)lo, (long long)hi);
        return bad(o, why, v);
    }
    *out = x;
    return 0;
}

static int parse_switch(int o, int *out)
{
    const char *v = V[o].val;
    if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on"))
        *out = 1;
    else if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off") ||
             !*v)
        *out = 0;
    else
        return bad(o, "not a switch (1/0)", v);
    return 0;
}

/* ---- state -------------------------------------------------------------------------------- */

typedef struct part {
    int topic;                /* index into R.topics */
    int32_t partition;
    int assigned;
    rd_kafka_queue_t *pq;     /* the partition's own queue, forwarded to q while assigned */
    rd_kafka_queue_t *q;
    rd_kafka_message_t **buf; /* fetched, not emitted yet: buf[head .. head+n) */
    int head, n;
    int64_t head_ts;          /* timestamp of buf[head] */
    int eof;                  /* the fetcher reached the partition's end; nothing is pending */
    int reached_end;          /* --drain: the fetcher got to the end offset at start */
    int done;                 /* --drain: everything before the end offset emitted (paused) */
    int dirty;                /* emitted into the open transaction */
    int64_t next;             /* offset after the last emitted message, -1 unknown */
    int64_t base;             /* first offset not yet committed (rewind target), -1 unknown */
    int64_t end;              /* --drain: the end offset at start */
    int64_t empty_since_ms;   /* since when it holds the merge back (empty, not at its end,
                               * while others have data); 0: it does not */
} part;

static struct {
    /* configuration */
    const char *topics[MAX_TOPICS];
    int ntopics;
    int64_t commit_ms, commit_msgs, max_idle_ms, partitions, rf, rate, progress_ms;
    int order_ts, drain, create, earliest;
    int key;                  /* --key: KEY_SESSION, KEY_DEVICE, KEY_PERSON */
    int person_field;         /* the plan's person field (identity), 0 without */
    char txid[512];
    /* clients */
    rd_kafka_t *c, *p;
    rd_kafka_topic_t *out;
    cs_ruleset *rs;
    cs_decoder *dec;
    int wake[2];              /* pipe: librdkafka writes when a queue of ours gets data */
    /* partitions */
    part *parts;
    int nparts, cap;
    int closing;              /* consumer_close() running: no new transaction */
    int txn_open;
    /* the open transaction */
    uint64_t txn_msgs, txn_unkeyed;
    int64_t txn_started_ms;
    /* totals */
    uint64_t consumed, produced, unkeyed, transactions, aborts, strays, past_end;
    int64_t t_first_ms, t_start_ms, t_end_ms;
    uint64_t dr_failed;
    char dr_first_error[256];
    /* start: wrong credentials or TLS settings end the process (await_cluster) */
    _Atomic int starting; /* read by librdkafka threads (log_cb) */
    int start_failed;
    char start_error[512];
} R;

static volatile sig_atomic_t g_stop;
static void on_signal(int s)
{
    (void)s;
    g_stop = 1;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The last stdout line, on every exit once the options were accepted. */
static void summary(void)
{
    static int printed;
    if (printed++)
        return;
    int64_t end = R.t_end_ms ? R.t_end_ms : now_ms();
    double secs = R.t_first_ms ? (double)(end - R.t_first_ms) / 1000.0 : 0;
    printf("{\"consumed\":%llu,\"produced\":%llu,\"unkeyed\":%llu,\"transactions\":%llu,"
           "\"aborts\":%llu,\"seconds\":%.3f,\"rate\":%.0f}\n",
           (unsigned long long)R.consumed, (unsigned long long)R.produced,
           (unsigned long long)R.unkeyed, (unsigned long long)R.transactions,
           (unsigned long long)R.aborts, secs, secs > 0 ? (double)R.produced / secs : 0.0);
    fflush(stdout);
}

static _Noreturn void die(int code)
{
    summary();
    exit(code);
}

/* A failed start (exit 2) from the main thread, before anything was consumed. The handles that
 * exist are destroyed first: exit() with their broker threads still inside a failed TLS or
 * SASL handshake ran OpenSSL's atexit clean-up under them, and the process ended with SIGSEGV
 * after its error line (kafka-security's repartition_wrong_password, once in four CI runs). The
 * daemon does the same (source.c, kafka_release). The consumer has not joined a group: no
 * consumer close. */
static _Noreturn void die_start(void)
{
    if (R.out) {
        rd_kafka_topic_destroy(R.out);
        R.out = NULL;
    }
    if (R.c) {
        rd_kafka_destroy_flags(R.c, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
        R.c = NULL;
    }
    if (R.p) {
        rd_kafka_destroy(R.p);
        R.p = NULL;
    }
    die(EXIT_START);
}

static void fatal_error(const char *what, rd_kafka_error_t *e)
{
    CS_LOG(CS_LOG_ERROR, "fatal: %s: %s: %s", what, rd_kafka_error_name(e),
           rd_kafka_error_string(e));
    if (rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR__FENCED ||
        rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH ||
        rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR_PRODUCER_FENCED)
        CS_LOG(CS_LOG_ERROR,
               "another instance runs with transactional.id '%s' (see --transactional-id)", R.txid);
    rd_kafka_error_destroy(e);
    die(EXIT_FATAL);
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    if (m->err && R.dr_failed++ == 0)
        snprintf(R.dr_first_error, sizeof R.dr_first_error, "%s", rd_kafka_err2str(m->err));
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)opaque;
    if (R.starting) {
        int tls = err == RD_KAFKA_RESP_ERR__SSL ||
                  (err == RD_KAFKA_RESP_ERR__TRANSPORT && strstr(reason, "SSL alert"));
        if ((tls || err == RD_KAFKA_RESP_ERR__AUTHENTICATION) && !R.start_failed) {
            R.start_failed = 1;
            snprintf(R.start_error, sizeof R.start_error, "%s: %s",
                     tls ? "TLS failed" : "authentication failed", reason);
        }
        if (R.start_failed)
            return; /* the exit line says it */
    }
    CS_LOG(CS_LOG_WARN, "kafka %s: %s: %s",
           rd_kafka_type(rk) == RD_KAFKA_PRODUCER ? "producer" : "consumer",
           rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

/* librdkafka's log lines (warnings and worse, and whatever `debug` asks for): through CS_LOG; a
 * broker connection failure while starting is said once, by error_cb or the exit line. */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    if (R.starting && !strcmp(fac, "FAIL"))
        return;
    int l = level <= CS_LOG_ERROR  ? CS_LOG_ERROR
            : level <= CS_LOG_WARN ? CS_LOG_WARN
            : level <= CS_LOG_INFO ? CS_LOG_INFO
                                   : CS_LOG_DEBUG;
    CS_LOG(l,
           "kafka %s %s: %s", rd_kafka_type(rk) == RD_KAFKA_PRODUCER ? "producer" : "consumer", fac,
           buf);
}

static int topic_index(const char *name)
{
    for (int i = 0; i < R.ntopics; i++)
        if (!strcmp(R.topics[i], name))
            return i;
    return -1;
}

static part *part_get(int t, int32_t partition, int create)
{
    for (int i = 0; i < R.nparts; i++)
        if (R.parts[i].topic == t && R.parts[i].partition == partition)
            return &R.parts[i];
    if (!create)
        return NULL;
    if (R.nparts == R.cap) {
        int cap = R.cap ? 2 * R.cap : 64;
        part *np = realloc(R.parts, (size_t)cap * sizeof *np);
        if (!np)
            return NULL;
        R.parts = np;
        R.cap = cap;
    }
    part *x = &R.parts[R.nparts++];
    memset(x, 0, sizeof *x);
    x->topic = t;
    x->partition = partition;
    x->next = x->base = x->end = -1;
    return x;
}

static void drop_buffer(part *x)
{
    for (int i = 0; i < x->n; i++)
        rd_kafka_message_destroy(x->buf[x->head + i]);
    x->head = x->n = 0;
}

/* Route the partition's messages to a queue of our own (before it is assigned: otherwise the
 * first ones can reach the consumer queue, librdkafka #3231) and have it wake us up. */
static int part_open(part *x)
{
    if (!x->buf && !(x->buf = malloc(BATCH * sizeof *x->buf)))
        return -1;
    x->pq = rd_kafka_queue_get_partition(R.c, R.topics[x->topic], x->partition);
    x->q = rd_kafka_queue_new(R.c);
    if (!x->pq || !x->q)
        return -1;
    rd_kafka_queue_forward(x->pq, x->q);
    rd_kafka_queue_io_event_enable(x->q, R.wake[1], "p", 1);
    x->assigned = 1;
    x->head = x->n = 0;
    x->eof = x->done = x->dirty = x->reached_end = 0;
    x->next = x->base = -1;
    x->empty_since_ms = 0;
    return 0;
}

static void part_close(part *x)
{
    drop_buffer(x);
    if (x->q) {
        rd_kafka_queue_io_event_enable(x->q, -1, NULL, 0);
        rd_kafka_queue_forward(x->pq, NULL);
        rd_kafka_queue_destroy(x->pq);
        /* whatever is still queued goes with it */
        rd_kafka_queue_destroy(x->q);
    }
    x->pq = x->q = NULL;
    x->assigned = 0;
    x->dirty = 0;
}

/* ---- transactions ------------------------------------------------------------------------- */

static void txn_begin(void)
{
    if (R.txn_open || R.closing)
        return;
    rd_kafka_error_t *e = rd_kafka_begin_transaction(R.p);
    if (e)
        fatal_error("begin_transaction", e);
    R.txn_open = 1;
    R.txn_msgs = R.txn_unkeyed = 0;
    R.txn_started_ms = 0;
}

static void pause_part(part *x, int pause)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, R.topics[x->topic], x->partition);
    if (pause)
        rd_kafka_pause_partitions(R.c, l);
    else
        rd_kafka_resume_partitions(R.c, l);
    rd_kafka_topic_partition_list_destroy(l);
}

/* After an abort: every assigned partition goes back to its first uncommitted offset. */
static void rewind_all(void)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(R.nparts + 1);
    for (int i = 0; i < R.nparts; i++) {
        part *x = &R.parts[i];
        if (!x->assigned)
            continue;
        drop_buffer(x);
        x->dirty = 0;
        x->eof = x->reached_end = 0;
        x->empty_since_ms = 0;
        if (x->base < 0)
            continue; /* nothing was read from it: nothing to go back to */
        x->next = x->base;
        if (x->done && x->base < x->end) {
            x->done = 0;
            pause_part(x, 0);
        }
        if (!x->done)
            rd_kafka_topic_partition_list_add(l, R.topics[x->topic], x->partition)->offset =
                x->base;
    }
    if (l->cnt) {
        rd_kafka_error_t *e = rd_kafka_seek_partitions(R.c, l, 30000);
        if (e)
            fatal_error("seek after abort", e);
        for (int i = 0; i < l->cnt; i++)
            if (l->elems[i].err) {
                CS_LOG(CS_LOG_ERROR, "fatal: seek %s[%d] to %lld: %s", l->elems[i].topic,
                       l->elems[i].partition, (long long)l->elems[i].offset,
                       rd_kafka_err2str(l->elems[i].err));
                die(EXIT_FATAL);
            }
    }
    rd_kafka_topic_partition_list_destroy(l);
}

static void txn_abort(const char *why)
{
    CS_LOG(CS_LOG_WARN, "aborting transaction (%llu messages): %s", (unsigned long long)R.txn_msgs,
           why);
    for (int tries = 0;; tries++) {
        rd_kafka_error_t *e = rd_kafka_abort_transaction(R.p, -1);
        if (!e)
            break;
        if (rd_kafka_error_is_retriable(e) && tries < 10 && !rd_kafka_error_is_fatal(e)) {
            CS_LOG(CS_LOG_WARN, "abort_transaction: %s (retrying)", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
            continue;
        }
        fatal_error("abort_transaction", e);
    }
    R.aborts++;
    R.txn_open = 0;
    rewind_all();
    txn_begin();
}

/* A retriable call is retried; an abortable error aborts (and rewinds); anything else is
 * fatal. Returns 0 if the call succeeded, -1 if the transaction was aborted. */
static int txn_check(const char *what, rd_kafka_error_t *e, int *retry)
{
    *retry = 0;
    if (!e)
        return 0;
    if (rd_kafka_error_is_fatal(e))
        fatal_error(what, e);
    if (rd_kafka_error_txn_requires_abort(e)) {
        char why[512];
        snprintf(why, sizeof why, "%s: %s%s%s", what, rd_kafka_error_string(e),
                 R.dr_failed ? "; first failed delivery: " : "", R.dr_failed ? R.dr_first_error : "");
        rd_kafka_error_destroy(e);
        txn_abort(why);
        return -1;
    }
    if (rd_kafka_error_is_retriable(e)) {
        CS_LOG(CS_LOG_WARN, "%s: %s (retrying)", what, rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        *retry = 1;
        return 0;
    }
    fatal_error(what, e);
    return -1;
}

/* Commit the open transaction with the offsets after every message it holds.
 * Returns 1 committed, 0 nothing to commit, -1 aborted (and rewound). */
static int txn_commit(void)
{
    if (!R.txn_open || R.txn_msgs == 0)
        return 0;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(R.nparts + 1);
    for (int i = 0; i < R.nparts; i++)
        if (R.parts[i].dirty)
            rd_kafka_topic_partition_list_add(l, R.topics[R.parts[i].topic],
                                              R.parts[i].partition)->offset = R.parts[i].next;
    int retry = 0;
    if (l->cnt) {
        rd_kafka_consumer_group_metadata_t *g = rd_kafka_consumer_group_metadata(R.c);
        do {
            /* retried with the same offsets and group metadata, as the API asks */
            if (txn_check("send_offsets_to_transaction",
                          rd_kafka_send_offsets_to_transaction(R.p, l, g, -1), &retry) < 0) {
                rd_kafka_consumer_group_metadata_destroy(g);
                rd_kafka_topic_partition_list_destroy(l);
                return -1;
            }
        } while (retry);
        rd_kafka_consumer_group_metadata_destroy(g);
    }
    rd_kafka_topic_partition_list_destroy(l);
    do {
        if (txn_check("commit_transaction", rd_kafka_commit_transaction(R.p, -1), &retry) < 0)
            return -1;
    } while (retry);
    R.txn_open = 0;
    R.transactions++;
    R.produced += R.txn_msgs;
    R.unkeyed += R.txn_unkeyed;
    for (int i = 0; i < R.nparts; i++)
        if (R.parts[i].dirty) {
            R.parts[i].dirty = 0;
            R.parts[i].base = R.parts[i].next;
        }
    txn_begin();
    return 1;
}

/* ---- group membership (live mode) --------------------------------------------------------- */

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    (void)opaque;
    int coop = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        for (int i = 0; i < parts->cnt; i++) {
            int t = topic_index(parts->elems[i].topic);
            part *x = t >= 0 ? part_get(t, parts->elems[i].partition, 1) : NULL;
            if (!x || part_open(x) != 0) {
                CS_LOG(CS_LOG_ERROR, "fatal: cannot set up %s[%d]", parts->elems[i].topic,
                       parts->elems[i].partition);
                die(EXIT_FATAL);
            }
        }
        CS_LOG(CS_LOG_INFO, "assigned %d partition(s)", parts->cnt);
        if (coop) {
            rd_kafka_error_t *e = rd_kafka_incremental_assign(rk, parts);
            if (e)
                fatal_error("incremental_assign", e);
        } else if ((err = rd_kafka_assign(rk, parts))) {
            CS_LOG(CS_LOG_ERROR, "fatal: assign: %s", rd_kafka_err2str(err));
            die(EXIT_FATAL);
        }
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        if (rd_kafka_assignment_lost(rk)) {
            /* someone else may already own them: nothing of this transaction may count */
            if (R.txn_open && R.txn_msgs)
                txn_abort("assignment lost");
        } else {
            /* what was read from the revoked partitions is committed before they move */
            txn_commit();
        }
        for (int i = 0; i < parts->cnt; i++) {
            int t = topic_index(parts->elems[i].topic);
            part *x = t >= 0 ? part_get(t, parts->elems[i].partition, 0) : NULL;
            if (x && x->assigned)
                part_close(x);
        }
        CS_LOG(CS_LOG_INFO, "revoked %d partition(s)", parts->cnt);
        if (coop) {
            rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
            if (e)
                fatal_error("incremental_unassign", e);
        } else {
            rd_kafka_assign(rk, NULL);
        }
        return;
    }
    CS_LOG(CS_LOG_WARN, "rebalance error: %s", rd_kafka_err2str(err));
    rd_kafka_assign(rk, NULL);
}

/* ---- setup -------------------------------------------------------------------------------- */

static int set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
    char err[512];
    if (rd_kafka_conf_set(conf, k, v, err, sizeof err) != RD_KAFKA_CONF_OK) {
        CS_LOG(CS_LOG_ERROR, "kafka property %s=%s: %s", k, v, err);
        return -1;
    }
    return 0;
}

/* "k=v,k=v" with "\," and "\\" escapes inside values (pipeline/kprops.h, as the daemon's
 * --kafka-props). Messages name a property, never its value: values may be passwords. */
static int apply_props(rd_kafka_conf_t *conf, int o)
{
    const char *cur = V[o].val;
    char item[8192 + 2];
    int rc = 0, r, n = 0;
    while (!rc && (r = cs_kprops_next(&cur, item, sizeof item)) != 0) {
        n++;
        char *eq = r > 0 ? strchr(item, '=') : NULL;
        if (!eq) {
            fprintf(stderr, PROG ": --%s%s%s: item %d is not k=v (a comma in a value is written "
                    "\\,)\n", O[o].name, V[o].from ? " from " : "", V[o].from ? V[o].from : "", n);
            rc = -1;
            break;
        }
        *eq = 0;
        char err[512];
        if (rd_kafka_conf_set(conf, item, eq + 1, err, sizeof err) != RD_KAFKA_CONF_OK) {
            fprintf(stderr, PROG ": --%s: %s: %s\n", O[o].name, item, err);
            rc = -1;
        }
    }
    memset(item, 0, sizeof item);
    return rc;
}

static rd_kafka_t *make_consumer(void)
{
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    /* the settings of pipeline/source.c where they apply (docs/kafka.md), plus: */
    if (set(kc, "bootstrap.servers", V[O_BROKERS].val) || set(kc, "group.id", V[O_GROUP].val) ||
        set(kc, "client.id", PROG) ||
        /* offsets are committed inside the producer's transactions, never by the consumer */
        set(kc, "enable.auto.commit", "false") || set(kc, "enable.auto.offset.store", "false") ||
        set(kc, "auto.offset.reset", R.earliest ? "earliest" : "latest") ||
        /* an input that is itself transactional: only what was committed */
        set(kc, "isolation.level", "read_committed") ||
        set(kc, "partition.assignment.strategy", "cooperative-sticky") ||
        set(kc, "fetch.max.bytes", "104857600") ||
        set(kc, "max.partition.fetch.bytes", "8388608") ||
        /* prefetch per partition (each has its own queue here): memory is bounded by
         * 32 MB x assigned partitions */
        set(kc, "queued.min.messages", "50000") ||
        set(kc, "queued.max.messages.kbytes", "32768") || set(kc, "fetch.wait.max.ms", "50") ||
        /* the timestamp merge must know a partition that has nothing more from one that is
         * only late; --drain knows when a partition is done even past control records */
        set(kc, "enable.partition.eof", "true") || set(kc, "check.crcs", "false")) {
        rd_kafka_conf_destroy(kc);
        return NULL;
    }
    char ignore[256]; /* librdkafka >= 2.1 only (docs/kafka.md) */
    rd_kafka_conf_set(kc, "fetch.queue.backoff.ms", "5", ignore, sizeof ignore);
    if (apply_props(kc, O_KAFKA) || apply_props(kc, O_KAFKA_CONSUMER)) {
        rd_kafka_conf_destroy(kc);
        return NULL;
    }
    rd_kafka_conf_set_error_cb(kc, error_cb);
    rd_kafka_conf_set_log_cb(kc, log_cb);
    if (!R.drain)
        rd_kafka_conf_set_rebalance_cb(kc, rebalance_cb);
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, err, sizeof err);
    if (!rk)
        CS_LOG(CS_LOG_ERROR, "consumer: %s", err);
    return rk;
}

static rd_kafka_t *make_producer(void)
{
    rd_kafka_conf_t *pc = rd_kafka_conf_new();
    if (set(pc, "bootstrap.servers", V[O_BROKERS].val) || set(pc, "client.id", PROG) ||
        set(pc, "transactional.id", R.txid) ||
        /* Java's default partitioner for keyed messages: every client puts a customer on the
         * same partition; unkeyed (invalid) messages go anywhere */
        set(pc, "partitioner", "murmur2_random") ||
        set(pc, "compression.codec", V[O_COMPRESSION].val) || set(pc, "linger.ms", "5") ||
        set(pc, "batch.num.messages", "10000") || set(pc, "batch.size", "1000000") ||
        set(pc, "queue.buffering.max.messages", "500000") ||
        set(pc, "queue.buffering.max.kbytes", "262144") || apply_props(pc, O_KAFKA) ||
        apply_props(pc, O_KAFKA_PRODUCER)) {
        rd_kafka_conf_destroy(pc);
        return NULL;
    }
    rd_kafka_conf_set_dr_msg_cb(pc, dr_cb);
    rd_kafka_conf_set_error_cb(pc, error_cb);
    rd_kafka_conf_set_log_cb(pc, log_cb);
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof err);
    if (!rk)
        CS_LOG(CS_LOG_ERROR, "producer: %s", err);
    return rk;
}

/* Partition count of a topic, 0 if it does not exist, -1 on error. */
static int topic_partitions(rd_kafka_t *rk, const char *topic)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
    rd_kafka_topic_destroy(rkt);
    if (e) {
        CS_LOG(CS_LOG_ERROR, "metadata for %s from %s: %s", topic, V[O_BROKERS].val,
               rd_kafka_err2str(e));
        return -1;
    }
    int n = md->topic_cnt == 1 && !md->topics[0].err ? md->topics[0].partition_cnt : 0;
    rd_kafka_metadata_destroy(md);
    return n;
}

static int create_topic(const char *topic, int partitions, int rf)
{
    char err[512];
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, partitions, rf, err, sizeof err);
    if (!nt) {
        CS_LOG(CS_LOG_ERROR, "create %s: %s", topic, err);
        return -1;
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(R.p);
    rd_kafka_CreateTopics(R.p, &nt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    const rd_kafka_CreateTopics_result_t *res = ev ? rd_kafka_event_CreateTopics_result(ev) : NULL;
    size_t nres = 0;
    const rd_kafka_topic_result_t **tr = res ? rd_kafka_CreateTopics_result_topics(res, &nres) : NULL;
    int rc = 0;
    if (!tr || nres != 1 ||
        (rd_kafka_topic_result_error(tr[0]) &&
         rd_kafka_topic_result_error(tr[0]) != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)) {
        CS_LOG(CS_LOG_ERROR, "create %s: %s", topic,
               tr && nres ? rd_kafka_topic_result_error_string(tr[0])
               : ev       ? rd_kafka_event_error_string(ev)
                          : "timed out");
        rc = -1;
    } else {
        CS_LOG(CS_LOG_INFO, "created %s with %d partitions", topic, partitions);
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    return rc;
}

/* --drain: every partition of every input topic, from the committed offset (else
 * auto.offset.reset) to the end offset now. Called after init_transactions(), which has aborted
 * whatever a previous instance left open, so the committed offsets are settled. */
static int drain_assign(void)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(64);
    for (int t = 0; t < R.ntopics; t++) {
        int n = topic_partitions(R.c, R.topics[t]);
        if (n <= 0) {
            if (n == 0)
                CS_LOG(CS_LOG_ERROR, "input topic %s does not exist", R.topics[t]);
            rd_kafka_topic_partition_list_destroy(l);
            return -1;
        }
        for (int i = 0; i < n; i++)
            rd_kafka_topic_partition_list_add(l, R.topics[t], i);
    }
    rd_kafka_resp_err_t e = rd_kafka_committed(R.c, l, 30000);
    if (e) {
        CS_LOG(CS_LOG_ERROR, "committed offsets of group %s: %s", V[O_GROUP].val,
               rd_kafka_err2str(e));
        rd_kafka_topic_partition_list_destroy(l);
        return -1;
    }
    int64_t total = 0;
    for (int i = 0; i < l->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &l->elems[i];
        int64_t lo = 0, hi = 0;
        e = rd_kafka_query_watermark_offsets(R.c, tp->topic, tp->partition, &lo, &hi, 30000);
        if (e) {
            CS_LOG(CS_LOG_WARN, "%s[%d] watermarks: %s", tp->topic, tp->partition,
                   rd_kafka_err2str(e));
            rd_kafka_topic_partition_list_destroy(l);
            return -1;
        }
        int64_t start = tp->offset >= 0 && !tp->err ? tp->offset : R.earliest ? lo : hi;
        if (start < lo)
            start = lo; /* retention removed what the offset points at */
        tp->offset = start;
        part *x = part_get(topic_index(tp->topic), tp->partition, 1);
        if (!x || part_open(x) != 0) {
            rd_kafka_topic_partition_list_destroy(l);
            return -1;
        }
        x->end = hi;
        x->base = x->next = start;
        if (start >= hi)
            x->done = 1;
        total += hi > start ? hi - start : 0;
    }
    CS_LOG(CS_LOG_INFO,
           "drain: %d partition(s), %lld message(s) to go (offsets, control records included)",
           l->cnt, (long long)total);
    e = rd_kafka_assign(R.c, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        CS_LOG(CS_LOG_ERROR, "assign: %s", rd_kafka_err2str(e));
        return -1;
    }
    for (int i = 0; i < R.nparts; i++)
        if (R.parts[i].done)
            pause_part(&R.parts[i], 1);
    return 0;
}

/* ---- the loop ----------------------------------------------------------------------------- */

static int64_t msg_ts(const rd_kafka_message_t *m)
{
    rd_kafka_timestamp_type_t type;
    return rd_kafka_message_timestamp(m, &type); /* -1 when the message has none */
}

/* --drain: a partition is done once everything before its end offset was emitted: the next
 * offset reached the end, or (control records at the end of a transactional input) the
 * fetcher reported the end or a message past it, and nothing is left in the buffer. */
static void check_done(part *x)
{
    if (!R.drain || x->done || x->n || !(x->next >= x->end || x->reached_end))
        return;
    x->done = 1;
    pause_part(x, 1);
}

/* Take what the partition's queue holds (without waiting) into its empty buffer. */
static void refill(part *x)
{
    if (x->n || !x->assigned || x->done)
        return;
    ssize_t got = rd_kafka_consume_batch_queue(x->q, 0, x->buf, BATCH);
    int keep = 0;
    for (ssize_t i = 0; i < got; i++) {
        rd_kafka_message_t *m = x->buf[i];
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            x->eof = 1;
            if (R.drain && m->offset >= x->end)
                x->reached_end = 1;
            rd_kafka_message_destroy(m);
            continue;
        }
        if (m->err) {
            CS_LOG(CS_LOG_WARN, "consumer %s[%d]: %s", R.topics[x->topic], x->partition,
                   rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        if (R.drain && m->offset >= x->end) {
            /* arrived after the drain started: left for the next run */
            x->reached_end = 1;
            R.past_end++;
            rd_kafka_message_destroy(m);
            continue;
        }
        x->eof = 0;
        if (x->base < 0)
            x->base = m->offset; /* first message since assignment: where a rewind goes */
        x->buf[keep++] = m;
    }
    x->head = 0;
    x->n = keep;
    if (keep) {
        x->head_ts = msg_ts(x->buf[0]);
        x->empty_since_ms = 0;
    } else {
        check_done(x);
    }
}

static int produce(rd_kafka_message_t *m)
{
    cs_decoded ev;
    int64_t ts = msg_ts(m);
    int64_t out_ts = ts > 0 ? ts : 0; /* 0: now (the input had none) */
    const void *key = NULL;
    size_t klen = 0;
    /* the key (--key): session = the decoder's session key, the customer (SPEC §1), with
     * identity: in the rule file the device, else the person (SPEC 3.1: sessions and aliases
     * need a device's events on one partition; docs/identity.md "Partitions and keying");
     * device = the same, spelled out (an event without a device is its person's session);
     * person = the person (absent when equal to the device), else the device */
    if (cs_decode(R.dec, m->payload, m->len, out_ts, &ev) == CS_DECODE_OK) {
        const cs_sv *k = &ev.f[CS_F_CUSTOMER];
        if (R.key == KEY_PERSON && (ev.idf & CS_ID_PERSON) && ev.f[R.person_field].len)
            k = &ev.f[R.person_field];
        key = k->p;
        klen = k->len;
    }
    rd_kafka_headers_t *h = NULL, *hc = NULL;
    if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR && h)
        hc = rd_kafka_headers_copy(h);
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            R.p, RD_KAFKA_V_RKT(R.out), RD_KAFKA_V_PARTITION(RD_KAFKA_PARTITION_UA),
            RD_KAFKA_V_KEY(key, klen), RD_KAFKA_V_VALUE(m->payload, m->len),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_TIMESTAMP(out_ts),
            RD_KAFKA_V_HEADERS(hc), RD_KAFKA_V_END);
        if (!e)
            break;
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(R.p, 10);
            continue;
        }
        if (hc)
            rd_kafka_headers_destroy(hc);
        if (e == RD_KAFKA_RESP_ERR__FATAL) {
            char why[512];
            rd_kafka_fatal_error(R.p, why, sizeof why);
            CS_LOG(CS_LOG_ERROR, "fatal: producer: %s", why);
            die(EXIT_FATAL);
        }
        if (e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) {
            CS_LOG(CS_LOG_ERROR,
                   "fatal: %s[%d] offset %lld: %zu bytes is more than the producer's "
                   "message.max.bytes (raise it with --kafka-producer message.max.bytes=N, "
                   "and the output topic's max.message.bytes)",
                   rd_kafka_topic_name(m->rkt), m->partition, (long long)m->offset, m->len);
            die(EXIT_FATAL);
        }
        char why[256];
        snprintf(why, sizeof why, "produce: %s", rd_kafka_err2str(e));
        txn_abort(why);
        return -1;
    }
    if (!R.txn_msgs)
        R.txn_started_ms = now_ms();
    R.txn_msgs++;
    R.txn_unkeyed += key == NULL;
    R.consumed++;
    return 0;
}

/* Emit up to `budget` messages: smallest timestamp first over the partitions' buffers
 * (--order timestamp), or buffer by buffer (--order none). An empty partition is asked for
 * more once per call and when its buffer runs out; under --order timestamp an empty one that
 * is not at its end holds the merge back (*blocked) for at most --max-idle.
 * Returns how many were emitted. */
static int emit(int budget, int64_t now, int *blocked)
{
    int done = 0;
    *blocked = 0;
    for (int i = 0; i < R.nparts; i++)
        if (R.parts[i].assigned && !R.parts[i].done && !R.parts[i].n)
            refill(&R.parts[i]);
    static int rr; /* --order none: where the next look starts, so that all get their turn */
    while (done < budget) {
        part *best = NULL;
        int hold = 0;
        int64_t bound = INT64_MAX; /* the smallest head timestamp of the other partitions */
        for (int k = 0; k < R.nparts; k++) {
            int i = R.order_ts ? k : (rr + k) % R.nparts;
            part *x = &R.parts[i];
            if (!x->assigned || x->done || !x->n)
                continue;
            if (!R.order_ts) {
                best = x;
                rr = i + 1;
                break;
            }
            if (!best || x->head_ts < best->head_ts) {
                if (best)
                    bound = best->head_ts;
                best = x;
            } else if (x->head_ts < bound) {
                bound = x->head_ts;
            }
        }
        if (!best) {
            /* nothing anywhere: nobody waits for anybody */
            for (int i = 0; i < R.nparts; i++)
                R.parts[i].empty_since_ms = 0;
            break;
        }
        /* Others have data: an empty partition that is not at its end holds them back, for
         * --max-idle from the moment it started to (its next message may be older). */
        for (int i = 0; R.order_ts && i < R.nparts; i++) {
            part *x = &R.parts[i];
            if (!x->assigned || x->done || x->n || x->eof)
                continue;
            if (!x->empty_since_ms)
                x->empty_since_ms = now;
            if (now - x->empty_since_ms < R.max_idle_ms)
                hold = 1;
        }
        if (hold) {
            *blocked = 1;
            break;
        }
        /* a run from this partition while it stays the smallest */
        for (;;) {
            rd_kafka_message_t *m = best->buf[best->head];
            int64_t off = m->offset;
            if (produce(m) < 0)
                return done; /* aborted and rewound: the buffers are gone */
            rd_kafka_message_destroy(m);
            best->head++;
            best->n--;
            best->next = off + 1;
            best->dirty = 1;
            done++;
            if (!best->n) {
                check_done(best);
                refill(best);
                break;
            }
            best->head_ts = msg_ts(best->buf[best->head]);
            if (done >= budget || best->head_ts > bound)
                break;
        }
    }
    return done;
}

static int all_done(void)
{
    for (int i = 0; i < R.nparts; i++)
        if (R.parts[i].assigned && !R.parts[i].done)
            return 0;
    return 1;
}

static void wait_for_data(int timeout_ms)
{
    if (timeout_ms <= 0)
        return;
    struct pollfd pfd = {.fd = R.wake[0], .events = POLLIN};
    poll(&pfd, 1, timeout_ms);
    char junk[256];
    while (read(R.wake[0], junk, sizeof junk) > 0)
        ;
}

static void serve_consumer(void)
{
    /* rebalances, errors; messages never come here (partition queues are forwarded) */
    for (int i = 0; i < 64; i++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(R.c, 0);
        if (!m)
            return;
        if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            CS_LOG(CS_LOG_WARN, "consumer: %s", rd_kafka_message_errstr(m));
        else if (!m->err) {
            /* Not expected. It was not emitted, so it must not be committed past: go back. */
            R.strays++;
            rd_kafka_message_destroy(m);
            if (R.txn_open && R.txn_msgs)
                txn_abort("a message reached the consumer queue");
            else
                rewind_all();
            continue;
        }
        rd_kafka_message_destroy(m);
    }
}

static void progress(int64_t now, int final)
{
    static int64_t last_ms;
    static uint64_t last_n;
    if (!last_ms)
        last_ms = R.t_start_ms;
    if (!final && (R.progress_ms <= 0 || now - last_ms < R.progress_ms))
        return;
    int assigned = 0, done = 0;
    for (int i = 0; i < R.nparts; i++) {
        assigned += R.parts[i].assigned;
        done += R.parts[i].assigned && R.parts[i].done;
    }
    double dt = (double)(now - last_ms) / 1000.0;
    fprintf(stderr,
            PROG ": %s%llu consumed, %llu produced (%llu unkeyed), %.0f/s, %llu transactions, "
                 "%llu aborts, %d partition(s)%s",
            final ? "done: " : "", (unsigned long long)R.consumed, (unsigned long long)R.produced,
            (unsigned long long)R.unkeyed, dt > 0 ? (double)(R.consumed - last_n) / dt : 0.0,
            (unsigned long long)R.transactions, (unsigned long long)R.aborts, assigned,
            R.drain ? "" : " assigned");
    if (R.drain)
        fprintf(stderr, " (%d done)", done);
    if (R.past_end)
        fprintf(stderr, ", %llu past the drain end left for later",
                (unsigned long long)R.past_end);
    if (R.strays)
        fprintf(stderr, ", %llu stray", (unsigned long long)R.strays);
    fprintf(stderr, "\n");
    last_ms = now;
    last_n = R.consumed;
}

/* ---- main --------------------------------------------------------------------------------- */

/* CLICKSTAGE_REPARTITION_KAFKA[_CONSUMER|_PRODUCER]_FILE: the librdkafka properties from a
 * properties file (one key=value per line; how Kubernetes mounts a Secret), never echoed. */
static int kafka_props_file(int o, const char *direct)
{
    char name[80];
    snprintf(name, sizeof name, "%s_FILE", V[o].env);
    const char *path = getenv(name);
    if (!path)
        return 0;
    if (direct) {
        fprintf(stderr, PROG ": %s and %s are both set; set only one of them\n", V[o].env, name);
        return -1;
    }
    struct stat st;
    FILE *f = stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= 1 << 20
                  ? fopen(path, "rb") : NULL;
    if (!f) {
        fprintf(stderr, PROG ": %s: cannot read '%s' (a regular file of at most 1 MB)\n", name,
                path);
        return -1;
    }
    char *buf = malloc((size_t)st.st_size + 1), why[128] = "out of memory";
    size_t len = buf ? fread(buf, 1, (size_t)st.st_size, f) : 0;
    fclose(f);
    char *v = buf ? cs_kprops_from_properties(buf, len, why, sizeof why) : NULL;
    if (buf)
        memset(buf, 0, len);
    free(buf);
    if (!v) {
        fprintf(stderr, PROG ": %s (%s): %s\n", name, path, why);
        return -1;
    }
    static char from[O__COUNT][80];
    snprintf(from[o], sizeof from[o], "%s", name);
    V[o].val = v; /* lives as long as the process */
    V[o].from = from[o];
    return 0;
}

static int configure(int argc, char **argv)
{
    for (int i = 0; i < O__COUNT; i++) {
        V[i].val = O[i].def;
        if (!O[i].arg)
            V[i].val = "0";
        snprintf(V[i].env, sizeof V[i].env, "CLICKSTAGE_REPARTITION_");
        size_t n = strlen(V[i].env);
        for (const char *s = O[i].name; *s && n + 1 < sizeof V[i].env; s++)
            V[i].env[n++] = *s == '-' ? '_' : (char)toupper((unsigned char)*s);
        V[i].env[n] = 0;
    }
    /* the daemon's rule file when run beside it (as clickstage-loadgen does) */
    if (getenv("CLICKSTAGE_RULES") && *getenv("CLICKSTAGE_RULES")) {
        V[O_RULES].val = getenv("CLICKSTAGE_RULES");
        V[O_RULES].from = "CLICKSTAGE_RULES";
    }
    for (int i = 0; i < O__COUNT; i++) {
        const char *v = getenv(V[i].env);
        if (v) {
            V[i].val = v;
            V[i].from = V[i].env;
        }
        if ((i == O_KAFKA || i == O_KAFKA_CONSUMER || i == O_KAFKA_PRODUCER) &&
            kafka_props_file(i, v) != 0)
            return -1;
    }
    for (int a = 1; a < argc; a++) {
        const char *s = argv[a];
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            usage(stdout);
            exit(EXIT_OK);
        }
        if (strncmp(s, "--", 2) != 0) {
            fprintf(stderr, PROG ": unexpected argument '%s' (see --help)\n", s);
            return -1;
        }
        const char *name = s + 2, *eq = strchr(name, '=');
        size_t nl = eq ? (size_t)(eq - name) : strlen(name);
        int o = -1;
        for (int i = 0; i < O__COUNT; i++)
            if (strlen(O[i].name) == nl && !strncmp(O[i].name, name, nl))
                o = i;
        if (o < 0) {
            fprintf(stderr, PROG ": unknown option --%.*s (see --help)\n", (int)nl, name);
            return -1;
        }
        V[o].from = NULL;
        if (!O[o].arg) {
            V[o].val = eq ? eq + 1 : "1";
        } else if (eq) {
            V[o].val = eq + 1;
        } else if (a + 1 < argc) {
            V[o].val = argv[++a];
        } else {
            fprintf(stderr, PROG ": --%s needs a value (%s)\n", O[o].name, O[o].arg);
            return -1;
        }
    }
    /* values */
    if (parse_ms(O_COMMIT_INTERVAL, &R.commit_ms) || parse_ms(O_MAX_IDLE, &R.max_idle_ms) ||
        parse_ms(O_PROGRESS, &R.progress_ms) ||
        parse_int(O_COMMIT_MESSAGES, 1, 100000000, &R.commit_msgs) ||
        parse_int(O_PARTITIONS, 0, 100000, &R.partitions) || parse_int(O_RF, -1, 1000, &R.rf) ||
        parse_int(O_RATE, 0, INT64_MAX / 1000, &R.rate) || parse_switch(O_DRAIN, &R.drain) ||
        parse_switch(O_CREATE, &R.create))
        return -1;
    if (R.commit_ms < 1)
        return bad(O_COMMIT_INTERVAL, "must be at least 1ms", V[O_COMMIT_INTERVAL].val);
    if (!strcmp(V[O_ORDER].val, "timestamp"))
        R.order_ts = 1;
    else if (strcmp(V[O_ORDER].val, "none"))
        return bad(O_ORDER, "not timestamp|none", V[O_ORDER].val);
    R.key = -1;
    for (int k = 0; k < (int)(sizeof KEY_NAMES / sizeof KEY_NAMES[0]); k++)
        if (!strcmp(V[O_KEY].val, KEY_NAMES[k]))
            R.key = k;
    if (R.key < 0)
        return bad(O_KEY, "not session|device|person", V[O_KEY].val);
    if (!strcmp(V[O_OFFSET_RESET].val, "earliest"))
        R.earliest = 1;
    else if (strcmp(V[O_OFFSET_RESET].val, "latest"))
        return bad(O_OFFSET_RESET, "not earliest|latest", V[O_OFFSET_RESET].val);
    static char topics[4096];
    snprintf(topics, sizeof topics, "%s", V[O_INPUT].val);
    char *save = NULL;
    for (char *t = strtok_r(topics, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
        if (R.ntopics == MAX_TOPICS)
            return bad(O_INPUT, "more than 16 topics in", V[O_INPUT].val);
        R.topics[R.ntopics++] = t;
    }
    if (!R.ntopics)
        return bad(O_INPUT, "no topic in", V[O_INPUT].val);
    if (!*V[O_OUTPUT].val)
        return bad(O_OUTPUT, "empty", V[O_OUTPUT].val);
    if (topic_index(V[O_OUTPUT].val) >= 0)
        return bad(O_OUTPUT, "is also an input topic (a loop)", V[O_OUTPUT].val);
    if (!*V[O_GROUP].val)
        return bad(O_GROUP, "empty", V[O_GROUP].val);
    static char host[256];
    const char *instance = V[O_INSTANCE].val;
    if (!*instance) {
        if (gethostname(host, sizeof host - 1) != 0 || !host[0])
            snprintf(host, sizeof host, "0");
        instance = host;
    }
    if (*V[O_TXID].val)
        snprintf(R.txid, sizeof R.txid, "%s", V[O_TXID].val);
    else
        snprintf(R.txid, sizeof R.txid, "%s.%s", V[O_GROUP].val, instance);
    return 0;
}

int main(int argc, char **argv)
{
    cs_log_setup(CS_LOG_INFO, CS_LOG_FORMAT_TEXT, PROG); /* pipeline/log.h, like the daemon's */
    if (configure(argc, argv) != 0)
        return EXIT_CONFIG;
    R.t_start_ms = now_ms();
    char err[512];
    if (!(R.rs = cs_rules_load_file(V[O_RULES].val, err, sizeof err))) {
        fprintf(stderr, PROG ": --rules: %s\n", err);
        die_start();
    }
    if (R.key != KEY_SESSION && !cs_rules_identity(R.rs)) {
        fprintf(stderr,
                PROG ": --key %s needs identity: in the rule file (SPEC 3.1); %s has none, so "
                "its events have one id, the customer: use --key session, or add identity: "
                "(docs/identity.md)\n",
                KEY_NAMES[R.key], V[O_RULES].val);
        die(EXIT_CONFIG);
    }
    R.person_field = cs_decode_plan_person_field(cs_rules_plan(R.rs));
    if (!(R.dec = cs_decoder_new(cs_rules_plan(R.rs)))) {
        CS_LOG(CS_LOG_ERROR, "out of memory");
        die_start();
    }
    if (pipe(R.wake) != 0 || fcntl(R.wake[0], F_SETFL, O_NONBLOCK) != 0 ||
        fcntl(R.wake[1], F_SETFL, O_NONBLOCK) != 0) {
        CS_LOG(CS_LOG_ERROR, "pipe: %s", strerror(errno));
        die_start();
    }
    /* option errors first: both clients are configured before anything connects */
    if (!(R.p = make_producer()) || !(R.c = make_consumer()))
        return EXIT_CONFIG;
    rd_kafka_poll_set_consumer(R.c);
    rd_kafka_queue_t *cq = rd_kafka_queue_get_consumer(R.c);
    if (cq) {
        rd_kafka_queue_io_event_enable(cq, R.wake[1], "c", 1);
        rd_kafka_queue_destroy(cq);
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    /* The cluster's first answer: an authentication or TLS failure ends the start with one line
     * (exit 2) instead of a metadata time-out (as clickstage does, docs/kafka.md "Security"). */
    R.starting = 1;
    for (int64_t end = now_ms() + 15000; now_ms() < end;) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t me = rd_kafka_metadata(R.p, 0, NULL, &md, 250);
        if (md)
            rd_kafka_metadata_destroy(md);
        rd_kafka_poll(R.p, 0);
        if (R.start_failed) {
            CS_LOG(CS_LOG_ERROR, "kafka: %s", R.start_error);
            die_start();
        }
        if (!me)
            break;
    }
    R.starting = 0;
    for (int t = 0; t < R.ntopics; t++) {
        int n = topic_partitions(R.p, R.topics[t]);
        if (n < 0)
            die_start();
        if (n == 0) {
            CS_LOG(CS_LOG_ERROR, "input topic %s does not exist", R.topics[t]);
            die_start();
        }
        if (t == 0 && R.partitions == 0 && R.create)
            R.partitions = n;
    }
    int have = topic_partitions(R.p, V[O_OUTPUT].val);
    if (have < 0)
        die_start();
    if (!have && R.create) {
        if (create_topic(V[O_OUTPUT].val, (int)R.partitions, (int)R.rf) != 0)
            die_start();
        for (int i = 0; i < 100 && have <= 0; i++) {
            have = topic_partitions(R.p, V[O_OUTPUT].val);
            if (have <= 0)
                usleep(100000);
        }
    }
    if (have <= 0) {
        CS_LOG(CS_LOG_ERROR, "output topic %s does not exist (--create makes it)", V[O_OUTPUT].val);
        die_start();
    }
    if (R.partitions && have != R.partitions) {
        CS_LOG(CS_LOG_ERROR, "--partitions: output topic %s has %d partitions, not %lld",
               V[O_OUTPUT].val, have, (long long)R.partitions);
        die_start();
    }
    R.out = rd_kafka_topic_new(R.p, V[O_OUTPUT].val, NULL);

    /* Fences any older producer with this transactional.id and aborts what it left open. */
    rd_kafka_error_t *e = rd_kafka_init_transactions(R.p, 60000);
    if (e) {
        CS_LOG(CS_LOG_ERROR, "init_transactions (transactional.id %s): %s", R.txid,
               rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        die_start();
    }
    if (R.drain) {
        if (drain_assign() != 0)
            die_start();
    } else {
        rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(R.ntopics);
        for (int t = 0; t < R.ntopics; t++)
            rd_kafka_topic_partition_list_add(sub, R.topics[t], RD_KAFKA_PARTITION_UA);
        rd_kafka_resp_err_t se = rd_kafka_subscribe(R.c, sub);
        rd_kafka_topic_partition_list_destroy(sub);
        if (se) {
            CS_LOG(CS_LOG_ERROR, "subscribe: %s", rd_kafka_err2str(se));
            die_start();
        }
    }
    CS_LOG(CS_LOG_INFO,
           "%s -> %s (%d partitions, keyed by %s%s), group %s, transactional.id %s, "
           "order %s%s",
           V[O_INPUT].val, V[O_OUTPUT].val, have, KEY_NAMES[R.key],
           R.key == KEY_SESSION ? (cs_rules_identity(R.rs) ? ": the device, else the person"
                                                           : ": the customer")
                                : "",
           V[O_GROUP].val, R.txid, V[O_ORDER].val,
           R.drain ? ", drain" : "");
    txn_begin();

    int64_t t_rate0 = 0; /* --rate: from the first message on */
    while (!g_stop) {
        int64_t now = now_ms();
        serve_consumer();
        rd_kafka_poll(R.p, 0);
        if (R.drain && all_done()) {
            if (txn_commit() >= 0 && all_done())
                break;
            continue; /* aborted: the rewound partitions are read again */
        }
        int budget = CHUNK;
        if (R.rate > 0) {
            if (!R.t_first_ms)
                t_rate0 = now;
            int64_t allowed = R.rate * (now - t_rate0) / 1000 + 1 - (int64_t)R.consumed;
            budget = allowed <= 0 ? 0 : allowed < CHUNK ? (int)allowed : CHUNK;
        }
        int blocked = 0;
        int n = budget ? emit(budget, now, &blocked) : 0;
        if (n && !R.t_first_ms)
            R.t_first_ms = now;
        now = now_ms();
        if (R.txn_msgs &&
            (R.txn_msgs >= (uint64_t)R.commit_msgs || now - R.txn_started_ms >= R.commit_ms))
            txn_commit();
        progress(now, 0);
        if (!n) {
            /* nothing to do now: sleep until a queue gets data, a commit or idle limit is due */
            int64_t wait = 100;
            if (R.txn_msgs)
                wait = R.txn_started_ms + R.commit_ms - now;
            if (blocked && wait > 5)
                wait = 5; /* the merge waits for a fetch: look again soon */
            if (!budget && wait > 2)
                wait = 2;
            wait_for_data((int)(wait < 0 ? 0 : wait));
        }
    }
    /* stop: what was emitted is committed; what was only fetched is read again next time */
    txn_commit(); /* if it aborts instead, the rewound part is read again next time */
    int64_t t_end = now_ms();
    R.t_end_ms = t_end;
    R.closing = 1;
    for (int i = 0; i < R.nparts; i++)
        drop_buffer(&R.parts[i]);
    rd_kafka_consumer_close(R.c); /* a revoke commits nothing new: nothing is pending */
    if (R.txn_open) {
        /* an empty transaction: nothing on the broker to close */
        rd_kafka_error_t *ae = rd_kafka_abort_transaction(R.p, 10000);
        if (ae)
            rd_kafka_error_destroy(ae);
    }
    progress(t_end, 1);
    summary();
    for (int i = 0; i < R.nparts; i++) {
        if (R.parts[i].assigned)
            part_close(&R.parts[i]);
        free(R.parts[i].buf);
    }
    free(R.parts);
    rd_kafka_topic_destroy(R.out);
    rd_kafka_destroy(R.c);
    rd_kafka_destroy(R.p);
    cs_decoder_destroy(R.dec);
    cs_rules_destroy(R.rs);
    close(R.wake[0]);
    close(R.wake[1]);
    return EXIT_OK;
}
