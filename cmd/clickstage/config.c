/* config.c — the clickstage daemon's configuration (see config.h).
 *
 * The table `cs_cfg_opts[]` below is the only place an option is described (config_int.h
 * shares it with the tests). Everything else walks it:
 *   - defaults are applied by parsing each option's default text through opt_set(), the same
 *     path a flag, an environment variable or a config-file value takes, so a default that the
 *     parser would reject fails every test at once, and the doc cannot promise what the code
 *     does not do;
 *   - flags (--name VALUE, --name=VALUE), CLICKSTAGE_NAME environment variables and the YAML
 *     config file (a flat mapping) are looked up by the table's names;
 *   - --help, --help-markdown (docs/configuration.md) and cs_config_dump print the table.
 * Modelled on redis's standardConfig table (typed entries with bounds, src/config.c) and
 * librdkafka's property table (which generates its CONFIGURATION.md).
 *
 * Errors name the option as the user wrote it: "--flush-interval: ...",
 * "CLICKSTAGE_THREADS: ...", "FILE:LINE:COL: flush_interval: ..." (1-based positions).
 * Every string value is checked for control characters, so values are safe to log.
 *
 * Secrets: every option can be read from a file named by CLICKSTAGE_<NAME>_FILE (how Kubernetes
 * and Docker mount secrets). Options that may hold one (F_SECRET: the Redis URL, kafka_props,
 * kafka_sasl_password) are masked in the dump and never quoted in an error message: messages
 * show the masked text, and any secret part of the rejected value left in a message is replaced
 * by "***" (scrub_secrets).
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "yamldoc.h"

#include "clickstage.h"
#include "kprops.h"

#include "config_int.h"
#include "parse.h"

/* ------------------------------------------------------------------------------------------ */
/* the option table */

static int check_path(const char *v, char *why, size_t n);
static int check_broker(const char *v, char *why, size_t n);
static int check_topic(const char *v, char *why, size_t n);
static int check_topic_or_empty(const char *v, char *why, size_t n);
static int check_group(const char *v, char *why, size_t n);
static int check_redis(const char *v, char *why, size_t n);
static int check_prefix(const char *v, char *why, size_t n);
static int check_listen(const char *v, char *why, size_t n);
static int check_instance(const char *v, char *why, size_t n);
static int check_kafka_key(const char *v, char *why, size_t n);
static int check_fetch_threads(const char *v, char *why, size_t n);

static const cs_enum_val log_levels[] = {
    {"error", CS_LOG_ERROR}, {"warn", CS_LOG_WARN}, {"info", CS_LOG_INFO}, {"debug", CS_LOG_DEBUG},
    {NULL, 0}};
static const cs_enum_val log_formats[] = {
    {"json", CS_LOG_FORMAT_JSON}, {"text", CS_LOG_FORMAT_TEXT}, {NULL, 0}};
static const cs_enum_val offset_resets[] = {{"earliest", 1}, {"latest", 0}, {NULL, 0}};
static const cs_enum_val state_lost_modes[] = {
    {"rebuild", CS_STATE_LOST_REBUILD}, {"fail", CS_STATE_LOST_FAIL}, {NULL, 0}};

#define OFF(f) offsetof(cs_config, f)
#define SEC 1000LL
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

const cs_opt cs_cfg_opts[] = {
    {.name = "config", .type = T_STR, .off = OFF(config_file), .def = "",
     .check = NULL, .metavar = "PATH", .values = "path; empty = none",
     .flags = F_NOFILE,
     .desc = "YAML config file: a flat mapping of option names (`flush_interval` or "
             "`flush-interval`) to values. The environment and flags override it. Cannot be "
             "set inside the file itself."},
    {.name = "brokers", .type = T_LIST, .off = OFF(brokers), .def = "127.0.0.1:9092",
     .min = 1, .max = 1000, .check = check_broker, .metavar = "HOST:PORT,...",
     .values = "comma-separated `host[:port]` (`[v6]:port`, optional `proto://`)",
     .desc = "Kafka bootstrap servers (librdkafka `bootstrap.servers`)."},
    {.name = "topics", .type = T_LIST, .off = OFF(topics), .def = "clickstream",
     .min = 1, .max = 1000, .check = check_topic, .metavar = "TOPIC,...",
     .values = "comma-separated topic names (`[A-Za-z0-9._-]`, at most 249 bytes) or `^regex`",
     .desc = "Input topics. In the config file a YAML list is accepted too. A name starting "
             "with `^` subscribes to every topic matching that regular expression."},
    {.name = "group", .type = T_STR, .off = OFF(group), .def = "clickstage",
     .check = check_group, .metavar = "ID", .values = "1..255 bytes",
     .desc = "Kafka consumer group. Instances in one group share the partitions of the topics."},
    {.name = "threads", .type = T_INT, .off = OFF(threads), .def = "0", .min = 0, .max = 256,
     .metavar = "N", .desc = "Worker threads; 0 = one per online CPU core."},
    {.name = "fetch_threads", .type = T_STR, .off = OFF(fetch_threads_opt), .def = "auto",
     .check = check_fetch_threads, .metavar = "N|auto", .values = "`auto` or 1..256",
     .desc = "Kafka consumer handles fetching for the workers, each with its own librdkafka "
             "threads (fetch, decompression, message hand-over); worker i is served by handle "
             "i mod N. `auto`: one per worker. At most `threads`. "
             "Live, the process is one member of the consumer group whatever N is: handle 0 "
             "joins, the others fetch their share of what it is assigned (docs/kafka.md)."},
    {.name = "rules", .type = T_STR, .off = OFF(rules), .def = "deploy/rules/retail.yaml",
     .check = check_path, .metavar = "PATH", .values = "path",
     .desc = "Rule file (journey, stages, sessions, rules; SPEC §2). Reloaded on SIGHUP."},
    {.name = "redis", .type = T_STR, .off = OFF(redis), .def = "redis://127.0.0.1:6379/0",
     .check = check_redis, .metavar = "URL",
     .values = "`redis://[[user]:password@]host[:port][/db]`, "
               "`redis+cluster://[[user]:password@]host[:port][,host[:port]...]`, "
               "`redis+sentinel://[[user]:password@]host[:port][,...]/master[/db][?query]`, "
               "`unix:///path.sock[?db=N&password=P]` or `/path.sock`",
     .flags = F_SECRET,
     .desc = "Redis server the counts and offsets are written to. Port 6379 and db 0 unless "
             "given; `redis://secret@host` is a password, as in redis-cli; percent-encode "
             "`@`, `:`, `/`, `?` and `&` in a password. A `redis://` URL of a Redis Cluster "
             "node is detected; `redis+cluster://` lists several seed nodes; "
             "`redis+sentinel://` lists sentinels (port 26379) and names the master "
             "(docs/redis.md). With a password, give the URL from a secret: "
             "`CLICKSTAGE_REDIS_FILE`."},
    {.name = "prefix", .type = T_STR, .off = OFF(prefix), .def = "clickstage",
     .check = check_prefix, .metavar = "PREFIX", .values = "`[A-Za-z0-9_.-]`, 1..128 bytes",
     .desc = "First part of every Redis key and of the update channel, as in "
             "`<prefix>:{<journey>}:active`."},
    {.name = "flush_interval", .type = T_DUR, .off = OFF(flush_interval_ms), .def = "250ms",
     .min = 10, .max = 60 * SEC, .metavar = "DURATION",
     .desc = "How often the counted deltas, together with the offsets that produced them, are "
             "written to Redis in one atomic step."},
    {.name = "dead_letter_topic", .type = T_STR, .off = OFF(dead_letter_topic), .def = "",
     .check = check_topic_or_empty, .metavar = "TOPIC", .values = "topic name; empty = none",
     .desc = "Kafka topic that invalid messages are copied to, unchanged, with the reason in "
             "a header. Empty = invalid messages are only counted. Must not be an input topic."},
    {.name = "http_listen", .type = T_STR, .off = OFF(http_listen), .def = "0.0.0.0:9464",
     .check = check_listen, .metavar = "HOST:PORT",
     .values = "`host:port` or `[v6]:port`, port 0..65535; empty = off",
     .desc = "Address of the HTTP server for `/metrics` (Prometheus), `/healthz` and "
             "`/readyz`. Port 0 takes any free port. Empty disables the server."},
    {.name = "log_level", .type = T_ENUM, .off = OFF(log_level), .def = "info",
     .enums = log_levels, .desc = "Least severe message that is logged (to stderr)."},
    {.name = "log_format", .type = T_ENUM, .off = OFF(log_format), .def = "json",
     .enums = log_formats,
     .desc = "Log lines as one JSON object each, or as plain text for people."},
    {.name = "drain", .type = T_BOOL, .off = OFF(drain), .def = "false",
     .desc = "Batch/backfill mode: read every partition up to the end offset it had at start, "
             "end the open sessions (`drain`), flush, commit and exit 0. As a flag, `--drain` "
             "alone means true."},
    {.name = "instance_id", .type = T_STR, .off = OFF(instance_id), .def = "",
     .check = check_instance, .metavar = "ID",
     .values = "`[A-Za-z0-9_.:-]`, 0..255 bytes",
     .desc = "Name of this process in logs and metrics. Empty = `<hostname>-<pid>`."},
    {.name = "auto_offset_reset", .type = T_ENUM, .off = OFF(auto_offset_reset_earliest),
     .def = "earliest", .enums = offset_resets,
     .desc = "Where to start reading a partition that has no offset in Redis yet: the oldest "
             "message Kafka still has, or only messages produced from now on."},
    {.name = "minute_ttl", .type = T_DUR, .off = OFF(minute_ttl_ms), .def = "48h",
     .min = 1 * MIN, .max = 365 * DAY, .metavar = "DURATION",
     .desc = "Expiry of the per-minute `minute:<YYYYMMDDHHMM>:reached` hashes."},
    {.name = "batch_size", .type = T_INT, .off = OFF(batch_size), .def = "2048", .min = 1,
     .max = 100000, .metavar = "N",
     .desc = "Most messages a worker takes from Kafka in one consume call."},
    {.name = "redis_outage_pause", .type = T_DUR, .off = OFF(redis_outage_pause_ms),
     .def = "30s", .min = 0, .max = DAY, .metavar = "DURATION",
     .desc = "Pause consuming when counts could not be flushed to Redis for this long, so the "
             "backlog waits in Kafka rather than in memory; consuming resumes after the next "
             "successful flush. Set to 0 to never pause."},
    {.name = "shutdown_timeout", .type = T_DUR, .off = OFF(shutdown_timeout_ms), .def = "10s",
     .min = 1 * SEC, .max = 10 * MIN, .metavar = "DURATION",
     .desc = "Longest time a graceful stop (SIGTERM/SIGINT, or the end of `--drain`) may spend "
             "finishing in-flight events, flushing and committing."},
    {.name = "group_instance_id", .type = T_STR, .off = OFF(group_instance_id), .def = "",
     .check = check_instance, .metavar = "ID", .values = "`[A-Za-z0-9_.:-]`, 0..255 bytes; "
     "empty = dynamic membership",
     .desc = "Kafka static membership (`group.instance.id`): a restarted instance that comes "
             "back within `session.timeout.ms` gets its partitions back without a rebalance. "
             "Must be unique per instance (e.g. the pod name of a StatefulSet)."},
    {.name = "snapshot_interval", .type = T_DUR, .off = OFF(snapshot_interval_ms),
     .def = "30s", .min = 0, .max = DAY, .metavar = "DURATION",
     .desc = "How often each partition's open sessions and customer journeys are written to "
             "Redis (in the same atomic step as its offsets), besides on revoke and on a "
             "graceful stop. After a crash the new owner loads the snapshot and re-reads at "
             "most this much of the partition without counting it again. 0 = only on revoke "
             "and stop."},
    {.name = "redis_state_lost", .type = T_ENUM, .off = OFF(redis_state_lost),
     .def = "rebuild", .enums = state_lost_modes,
     .desc = "What to do when Redis has lost the counts (a partition has no offset in Redis "
             "but the consumer group has committed one, or Redis no longer holds the offsets "
             "a flush expects): `rebuild` counts every partition again from the oldest "
             "message Kafka still has (exact if retention kept the whole history), `fail` "
             "stops with exit code 5 and an error naming the partitions."},
    {.name = "redis_wait_replicas", .type = T_INT, .off = OFF(redis_wait_replicas), .def = "0",
     .min = 0, .max = 16, .metavar = "N",
     .desc = "After each flush, `WAIT N` for that many replicas of the Redis master to "
             "acknowledge it (pipelined behind the flush: one round trip plus the replication "
             "delay). A failover to a replica that has every acknowledged flush then needs no "
             "replay. Fewer replicas within `redis_wait_timeout` is logged and counted, not an "
             "error: counts stay exact either way, because a Redis that lost acknowledged "
             "flushes is detected and recovered from (docs/redis.md). 0 = no WAIT."},
    {.name = "redis_wait_timeout", .type = T_DUR, .off = OFF(redis_wait_timeout_ms),
     .def = "100ms", .min = 1, .max = 10 * SEC, .metavar = "DURATION",
     .desc = "Longest a flush's `WAIT` (`redis_wait_replicas`) waits for the replicas."},
    {.name = "kafka_props", .type = T_KV, .off = OFF(kafka_props), .def = "", .min = 0,
     .max = 1000, .check = check_kafka_key, .metavar = "K=V,...",
     .values = "comma-separated `key=value` (`\\,` is a comma in a value, `\\\\` a backslash); a "
               "YAML mapping in the config file; one `key=value` per line in "
               "`CLICKSTAGE_KAFKA_PROPS_FILE`",
     .flags = F_SECRET,
     .desc = "Extra librdkafka properties for the consumer and the dead-letter producer, e.g. "
             "`security.protocol=sasl_ssl,sasl.mechanisms=PLAIN,sasl.username=cs` "
             "(docs/kafka.md, \"Security\"). "
             "`bootstrap.servers`, `metadata.broker.list`, `group.id`, `auto.offset.reset` "
             "and `group.instance.id` are rejected: use their own options. Values of keys "
             "naming a password, secret, token, JAAS config or PEM key are shown as `***`; "
             "a properties file with them belongs in a secret: `CLICKSTAGE_KAFKA_PROPS_FILE`."},
    {.name = "kafka_sasl_password", .type = T_STR, .off = OFF(kafka_sasl_password), .def = "",
     .check = NULL, .metavar = "PASSWORD", .values = "text; empty = none",
     .flags = F_SECRET,
     .desc = "librdkafka `sasl.password`, on its own so that it can come alone from a secret: "
             "`CLICKSTAGE_KAFKA_SASL_PASSWORD_FILE=/run/secrets/kafka/password` (the rest of "
             "the SASL settings in `kafka_props`). An error if `kafka_props` sets "
             "`sasl.password` too. Shown as `***`; avoid the flag (other users see argv)."},
};
#define NOPTS ((int)(sizeof cs_cfg_opts / sizeof cs_cfg_opts[0]))
const int cs_cfg_nopts = NOPTS;
_Static_assert(sizeof cs_cfg_opts / sizeof cs_cfg_opts[0] <= CS_CFG_MAX_OPTS, "CS_CFG_MAX_OPTS");

/* ------------------------------------------------------------------------------------------ */
/* small helpers */

static void set_why(char *why, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_why(char *why, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (why && n)
        vsnprintf(why, n, fmt, ap);
    va_end(ap);
}

/* A value quoted for an error message: at most ~60 bytes, control bytes as \xNN. */
typedef struct {
    char s[320];
} qbuf;
static const char *qv(qbuf *b, const char *s)
{
    size_t o = 0, i;
    for (i = 0; s[i] && i < 60; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f) {
            o += (size_t)snprintf(b->s + o, sizeof b->s - o, "\\x%02x", ch);
        } else {
            b->s[o++] = (char)ch;
        }
    }
    if (s[i])
        o += (size_t)snprintf(b->s + o, sizeof b->s - o, "...");
    b->s[o] = '\0';
    return b->s;
}

void cs_cfg_mask_redis(const char *url, char *buf, size_t n);
void cs_cfg_mask_kv(const char *v, char *buf, size_t n);

/* qv() for a value of option o: a secret-bearing option's value is masked first. */
static const char *qsv(qbuf *b, const cs_opt *o, const char *s)
{
    if (!(o->flags & F_SECRET))
        return qv(b, s);
    char m[MAX_VALUE_LEN + 64];
    if (o->check == check_redis)
        cs_cfg_mask_redis(s, m, sizeof m);
    else if (o->type == T_KV)
        cs_cfg_mask_kv(s, m, sizeof m);
    else
        snprintf(m, sizeof m, "***");
    return qv(b, m);
}

/* Replaces every occurrence of s[0..len) in msg with "***" (in place; msg has room n). */
static void scrub_one(char *msg, size_t n, const char *s, size_t len)
{
    if (len == 0)
        return;
    char *p = msg;
    while ((p = memmem(p, strlen(p), s, len))) {
        size_t tail = strlen(p + len);
        if (len >= 3 || (size_t)(p - msg) + 3 + tail < n) {
            memmove(p + 3, p + len, tail + 1);
            memcpy(p, "***", 3);
            p += 3;
        } else {
            break;
        }
    }
}

static int secret_key(const char *k, size_t len);

/* The safety net under every message about a value of a secret-bearing option: whatever part
 * of v may be a secret (the whole value of kafka_sasl_password; the user info and ?password= of
 * a Redis URL; the values of secret-looking kafka_props keys) is replaced by "***" in msg. */
static void scrub_secrets(const cs_opt *o, const char *v, char *msg, size_t n)
{
    if (!(o->flags & F_SECRET) || !v || !msg)
        return;
    if (o->check == check_redis) {
        const char *a = strstr(v, "://");
        a = a ? a + 3 : v;
        const char *end = a + strcspn(a, "/?");
        const char *at = NULL;
        for (const char *p = a; p < end; p++)
            if (*p == '@')
                at = p;
        if (at) {
            const char *colon = memchr(a, ':', (size_t)(at - a));
            const char *pw = colon ? colon + 1 : a;
            scrub_one(msg, n, pw, (size_t)(at - pw));
        }
        for (const char *q = strstr(v, "password="); q; q = strstr(q + 1, "password="))
            scrub_one(msg, n, q + 9, strcspn(q + 9, "&"));
    } else if (o->type == T_KV) {
        for (const char *p = v; *p;) {
            const char *e = p;
            while (*e && *e != ',' && *e != '\n')
                e += (*e == '\\' && e[1]) ? 2 : 1;
            const char *eq = memchr(p, '=', (size_t)(e - p));
            if (eq && secret_key(p, (size_t)(eq - p))) {
                const char *val = eq + 1;
                while (val < e && *val == ' ')
                    val++;
                scrub_one(msg, n, val, (size_t)(e - val));
            }
            p = *e ? e + 1 : e;
        }
    } else {
        scrub_one(msg, n, v, strlen(v));
    }
}

char **cs_cfg_str(const cs_config *c, const cs_opt *o)
{
    return (char **)((char *)c + o->off);
}
int *cs_cfg_int(const cs_config *c, const cs_opt *o)
{
    return (int *)((char *)c + o->off);
}
int64_t *cs_cfg_i64(const cs_config *c, const cs_opt *o)
{
    return (int64_t *)((char *)c + o->off);
}

static int is_str_type(enum opt_type t) { return t == T_STR || t == T_LIST || t == T_KV; }

void cs_cfg_flag_name(const cs_opt *o, char *buf, size_t n)
{
    size_t i = 0;
    if (n < 3)
        return;
    buf[i++] = '-';
    buf[i++] = '-';
    for (const char *p = o->name; *p && i + 1 < n; p++)
        buf[i++] = *p == '_' ? '-' : *p;
    buf[i] = '\0';
}

#define ENV_PREFIX "CLICKSTAGE_"
void cs_cfg_env_name(const cs_opt *o, char *buf, size_t n)
{
    size_t i = strlen(ENV_PREFIX);
    if (n <= i)
        return;
    memcpy(buf, ENV_PREFIX, i);
    for (const char *p = o->name; *p && i + 1 < n; p++)
        buf[i++] = (char)toupper((unsigned char)*p);
    buf[i] = '\0';
}

/* Case-sensitive name comparison where '-' and '_' are the same character. */
static int name_eq(const char *a, size_t alen, const char *name)
{
    size_t i;
    for (i = 0; i < alen && name[i]; i++) {
        char x = a[i] == '-' ? '_' : a[i];
        if (x != name[i])
            return 0;
    }
    return i == alen && name[i] == '\0';
}

static int find_opt(const char *s, size_t len)
{
    for (int i = 0; i < NOPTS; i++)
        if (name_eq(s, len, cs_cfg_opts[i].name))
            return i;
    return -1;
}

/* Levenshtein distance, '-' == '_' and case-insensitive; large for long inputs. */
static int edit_distance(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    if (alen > 48 || blen > 48)
        return 1000;
    int prev[49], cur[49];
    for (size_t j = 0; j <= blen; j++)
        prev[j] = (int)j;
    for (size_t i = 1; i <= alen; i++) {
        cur[0] = (int)i;
        int ca = tolower((unsigned char)(a[i - 1] == '-' ? '_' : a[i - 1]));
        for (size_t j = 1; j <= blen; j++) {
            int cb = tolower((unsigned char)(b[j - 1] == '-' ? '_' : b[j - 1]));
            int d = prev[j - 1] + (ca != cb);
            if (prev[j] + 1 < d)
                d = prev[j] + 1;
            if (cur[j - 1] + 1 < d)
                d = cur[j - 1] + 1;
            cur[j] = d;
        }
        memcpy(prev, cur, sizeof prev);
    }
    return prev[blen];
}

/* The option whose name is closest to s (for "did you mean"), or -1. */
static int suggest(const char *s, size_t len)
{
    int best = -1, bestd = 1000;
    for (int i = 0; i < NOPTS; i++) {
        int d = edit_distance(s, len, cs_cfg_opts[i].name);
        if (d < bestd) {
            bestd = d;
            best = i;
        }
    }
    int limit = len <= 3 ? 1 : len < 12 ? 2 : 3;
    return bestd <= limit ? best : -1;
}

/* ------------------------------------------------------------------------------------------ */
/* scalar parsers */

static int parse_bool(const char *s, int *out)
{
    static const char *const t[] = {"true", "1", "yes", "on"};
    static const char *const f[] = {"false", "0", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, t[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(s, f[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

static void enum_list(const cs_enum_val *e, const char *sep, char *buf, size_t n)
{
    size_t o = 0;
    buf[0] = '\0';
    for (; e->name && o < n; e++)
        o += (size_t)snprintf(buf + o, n - o, "%s%s", o ? sep : "", e->name);
}

void cs_cfg_fmt_bounds(const cs_opt *o, char *buf, size_t n)
{
    char a[32], b[32];
    switch (o->type) {
    case T_INT:
        snprintf(buf, n, "%" PRId64 "..%" PRId64, o->min, o->max);
        break;
    case T_DUR:
        cs_format_duration(o->min, a, sizeof a);
        cs_format_duration(o->max, b, sizeof b);
        snprintf(buf, n, "%s..%s", a, b);
        break;
    case T_ENUM:
        enum_list(o->enums, " | ", buf, n);
        break;
    case T_BOOL:
        snprintf(buf, n, "true | false (also 1/0, yes/no, on/off)");
        break;
    default:
        snprintf(buf, n, "%s", o->values ? o->values : "text");
        break;
    }
}

static const char *type_name(enum opt_type t)
{
    switch (t) {
    case T_STR: return "string";
    case T_LIST: return "list";
    case T_KV: return "key=value list";
    case T_INT: return "integer";
    case T_DUR: return "duration";
    case T_ENUM: return "enum";
    case T_BOOL: return "bool";
    }
    return "?";
}

/* ------------------------------------------------------------------------------------------ */
/* string validators (each gets a value without control characters) */

static int check_path(const char *v, char *why, size_t n)
{
    if (!*v) {
        set_why(why, n, "empty path");
        return -1;
    }
    return 0;
}

static int is_host_char(int ch) { return isalnum(ch) || ch == '.' || ch == '-' || ch == '_'; }

/* host:port, host or [v6][:port]; port_req: 1 required, 0 optional; port_min 0 or 1. */
static int check_hostport(const char *v, int port_req, int port_min, char *why, size_t n)
{
    qbuf b;
    const char *p = v, *host_end;
    if (*p == '[') {
        const char *e = strchr(p, ']');
        if (!e || e == p + 1) {
            set_why(why, n, "'%s' has a bad [IPv6] address", qv(&b, v));
            return -1;
        }
        for (const char *q = p + 1; q < e; q++)
            if (!isxdigit((unsigned char)*q) && *q != ':' && *q != '.' && *q != '%') {
                set_why(why, n, "'%s' has a bad [IPv6] address", qv(&b, v));
                return -1;
            }
        host_end = e + 1;
    } else {
        host_end = p;
        while (is_host_char((unsigned char)*host_end))
            host_end++;
        if (host_end == p) {
            set_why(why, n, "'%s' has no host (expected host:port)", qv(&b, v));
            return -1;
        }
    }
    if (*host_end == '\0') {
        if (port_req) {
            set_why(why, n, "'%s' has no port (expected host:port)", qv(&b, v));
            return -1;
        }
        return 0;
    }
    if (*host_end != ':') {
        set_why(why, n, "'%s' is not host:port", qv(&b, v));
        return -1;
    }
    int64_t port;
    if (!isdigit((unsigned char)host_end[1]) ||
        cs_parse_int64(host_end + 1, strlen(host_end + 1), &port) < 0 ||
        port < port_min || port > 65535) {
        set_why(why, n, "'%s' has a bad port (%d..65535)", qv(&b, v), port_min);
        return -1;
    }
    return 0;
}

static int check_broker(const char *v, char *why, size_t n)
{
    const char *p = strstr(v, "://");
    if (p) {
        for (const char *q = v; q < p; q++)
            if (!isalpha((unsigned char)*q) && *q != '_') {
                qbuf b;
                set_why(why, n, "'%s' has a bad protocol prefix", qv(&b, v));
                return -1;
            }
        v = p + 3;
    }
    return check_hostport(v, 0, 1, why, n);
}

static int check_topic(const char *v, char *why, size_t n)
{
    qbuf b;
    size_t len = strlen(v);
    if (v[0] == '^') {
        if (len < 2) {
            set_why(why, n, "'^' is an empty regular expression");
            return -1;
        }
        return 0;
    }
    if (len == 0 || len > 249 || strcmp(v, ".") == 0 || strcmp(v, "..") == 0) {
        set_why(why, n, "'%s' is not a topic name (1..249 of [A-Za-z0-9._-])", qv(&b, v));
        return -1;
    }
    for (const char *p = v; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-') {
            set_why(why, n, "'%s' is not a topic name (1..249 of [A-Za-z0-9._-])", qv(&b, v));
            return -1;
        }
    return 0;
}

static int check_topic_or_empty(const char *v, char *why, size_t n)
{
    if (!*v)
        return 0;
    if (v[0] == '^') {
        set_why(why, n, "a dead-letter topic cannot be a regular expression");
        return -1;
    }
    return check_topic(v, why, n);
}

static int check_group(const char *v, char *why, size_t n)
{
    size_t len = strlen(v);
    if (len == 0 || len > 255) {
        set_why(why, n, "a consumer group must be 1..255 bytes");
        return -1;
    }
    return 0;
}

static int check_redis(const char *v, char *why, size_t n)
{
    cs_redis_target t;
    return cs_config_parse_redis_url(v, &t, why, n);
}

static int check_prefix(const char *v, char *why, size_t n)
{
    qbuf b;
    size_t len = strlen(v);
    int ok = len >= 1 && len <= 128;
    for (const char *p = v; ok && *p; p++)
        ok = isalnum((unsigned char)*p) || *p == '_' || *p == '.' || *p == '-';
    if (!ok) {
        set_why(why, n, "'%s' is not 1..128 of [A-Za-z0-9_.-]", qv(&b, v));
        return -1;
    }
    return 0;
}

static int check_listen(const char *v, char *why, size_t n)
{
    if (!*v)
        return 0;
    return check_hostport(v, 1, 0, why, n);
}

static int check_instance(const char *v, char *why, size_t n)
{
    qbuf b;
    int ok = strlen(v) <= 255;
    for (const char *p = v; ok && *p; p++)
        ok = isalnum((unsigned char)*p) || *p == '_' || *p == '.' || *p == ':' || *p == '-';
    if (!ok) {
        set_why(why, n, "'%s' is not 0..255 of [A-Za-z0-9_.:-]", qv(&b, v));
        return -1;
    }
    return 0;
}

static int check_fetch_threads(const char *v, char *why, size_t n)
{
    qbuf b;
    if (strcmp(v, "auto") == 0)
        return 0;
    char *end = NULL;
    long k = strtol(v, &end, 10);
    if (!*v || *end || k < 1 || k > 256) {
        set_why(why, n, "'%s' is not `auto` or an integer 1..256 (at least one consumer handle "
                        "must fetch)", qv(&b, v));
        return -1;
    }
    return 0;
}

static int check_kafka_key(const char *v, char *why, size_t n)
{
    static const char *const own[][2] = {{"bootstrap.servers", "--brokers"},
                                          {"metadata.broker.list", "--brokers"},
                                          {"group.id", "--group"},
                                          {"auto.offset.reset", "--auto-offset-reset"},
                                          {"group.instance.id", "--group-instance-id"}};
    qbuf b;
    int ok = *v != '\0';
    for (const char *p = v; ok && *p; p++)
        ok = isalnum((unsigned char)*p) || *p == '.' || *p == '_' || *p == '-';
    if (!ok) {
        set_why(why, n, "'%s' is not a librdkafka property name", qv(&b, v));
        return -1;
    }
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
        if (strcmp(v, own[i][0]) == 0) {
            set_why(why, n, "'%s' has its own option: use %s", v, own[i][1]);
            return -1;
        }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Redis URL */

/* The grammar and messages are pipeline/redisurl.c's (shared with the sink, the HTTP server and
 * clickstage-top); a text in none of the URL forms keeps this file's message, which names them. */
int cs_config_parse_redis_url(const char *url, cs_redis_target *t, char *why, size_t n)
{
    qbuf b;
    int rc = cs_redis_url_parse(url, t, why, n);
    if (rc == CS_REDIS_URL_FOREIGN) {
        char m[MAX_VALUE_LEN + 64];
        cs_cfg_mask_redis(url ? url : "", m, sizeof m);
        set_why(why, n, "'%s' is not a Redis URL (expected redis://[[user]:password@]host[:port]"
                "[/db], redis+cluster://host[:port],..., redis+sentinel://host[:port],.../master[/db], "
                "unix:///path.sock[?db=N&password=P] or /path.sock)", qv(&b, m));
    }
    return rc < 0 ? -1 : 0;
}

/* ------------------------------------------------------------------------------------------ */
/* setting a value: the one path for defaults, file, environment and flags */

/* Splits a T_LIST/T_KV value on commas, trims spaces around items (and around '=' for T_KV),
 * checks each item, and returns the normalised text (malloc'd) or NULL with why. */
static char *normalise_list(const cs_opt *o, const char *v, char *why, size_t n)
{
    qbuf b;
    size_t len = strlen(v);
    char *out = malloc(len + 1);
    if (!out) {
        set_why(why, n, "out of memory");
        return NULL;
    }
    size_t olen = 0;
    int64_t count = 0;
    const char *p = v;
    while (*v) { /* "" is the empty list */
        const char *e = p;
        if (o->type == T_KV) /* "\," inside a value is not a separator */
            while (*e && *e != ',')
                e += (*e == '\\' && e[1]) ? 2 : 1;
        else
            e = p + strcspn(p, ",");
        const char *s = p, *t = e;
        while (s < t && *s == ' ')
            s++;
        while (t > s && t[-1] == ' ')
            t--;
        if (s == t) {
            set_why(why, n, "'%s' has an empty item", qsv(&b, o, v));
            goto bad;
        }
        char item[MAX_VALUE_LEN + 1];
        size_t ilen = (size_t)(t - s);
        memcpy(item, s, ilen);
        item[ilen] = '\0';
        if (o->type == T_KV) {
            char *eq = strchr(item, '=');
            if (!eq) {
                if (o->flags & F_SECRET) /* it might be a password that lost its key */
                    set_why(why, n, "item %" PRId64 " is not key=value (a comma in a value is "
                            "written \\,)", count + 1);
                else
                    set_why(why, n, "'%s' is not key=value", qv(&b, item));
                goto bad;
            }
            char *ke = eq, *vs = eq + 1;
            while (ke > item && ke[-1] == ' ')
                ke--;
            *ke = '\0';
            while (*vs == ' ')
                vs++;
            if (o->check && o->check(item, why, n) < 0)
                goto bad;
            olen += (size_t)sprintf(out + olen, "%s%s=%s", count ? "," : "", item, vs);
        } else {
            if (o->check && o->check(item, why, n) < 0)
                goto bad;
            olen += (size_t)sprintf(out + olen, "%s%s", count ? "," : "", item);
        }
        count++;
        if (!*e)
            break;
        p = e + 1;
    }
    if (count < o->min || count > o->max) {
        if (count == 0)
            set_why(why, n, "needs at least %" PRId64 " item%s", o->min, o->min == 1 ? "" : "s");
        else
            set_why(why, n, "has %" PRId64 " items; at most %" PRId64, count, o->max);
        goto bad;
    }
    out[olen] = '\0';
    return out;
bad:
    free(out);
    return NULL;
}

/* Parses v for option o and stores it in c (replacing and freeing a previous string).
 * Returns 0, or -1 with why (the problem, without the option's name). */
static int opt_set_(const cs_opt *o, cs_config *c, const char *v, char *why, size_t n);
static int opt_set(const cs_opt *o, cs_config *c, const char *v, char *why, size_t n)
{
    int rc = opt_set_(o, c, v, why, n);
    if (rc < 0)
        scrub_secrets(o, v, why, n);
    return rc;
}

static int opt_set_(const cs_opt *o, cs_config *c, const char *v, char *why, size_t n)
{
    qbuf b;
    char bounds[256];
    if (strlen(v) > MAX_VALUE_LEN) {
        set_why(why, n, "value is longer than %d bytes", MAX_VALUE_LEN);
        return -1;
    }
    switch (o->type) {
    case T_STR:
    case T_LIST:
    case T_KV: {
        for (const char *p = v; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f) {
                if (o->flags & F_SECRET)
                    set_why(why, n, "contains a control character (byte %zu)",
                            (size_t)(p - v) + 1);
                else
                    set_why(why, n, "'%s' contains a control character", qv(&b, v));
                return -1;
            }
        char *s;
        if (o->type == T_STR) {
            if (o->check && o->check(v, why, n) < 0)
                return -1;
            s = strdup(v);
            if (!s) {
                set_why(why, n, "out of memory");
                return -1;
            }
        } else if (!(s = normalise_list(o, v, why, n))) {
            return -1;
        }
        char **f = cs_cfg_str(c, o);
        free(*f);
        *f = s;
        return 0;
    }
    case T_INT: {
        int64_t x;
        if (cs_parse_int64(v, strlen(v), &x) < 0) {
            set_why(why, n, "'%s' is not an integer", qv(&b, v));
            return -1;
        }
        if (x < o->min || x > o->max) {
            cs_cfg_fmt_bounds(o, bounds, sizeof bounds);
            set_why(why, n, "%s is out of range %s", qv(&b, v), bounds);
            return -1;
        }
        *cs_cfg_int(c, o) = (int)x;
        return 0;
    }
    case T_DUR: {
        int64_t x;
        if (cs_parse_duration_ms(v, &x) < 0) {
            set_why(why, n, "'%s' is not a duration (use ms, s, m, h, d)", qv(&b, v));
            return -1;
        }
        if (x < o->min || x > o->max) {
            cs_cfg_fmt_bounds(o, bounds, sizeof bounds);
            set_why(why, n, "%s is out of range %s", qv(&b, v), bounds);
            return -1;
        }
        *cs_cfg_i64(c, o) = x;
        return 0;
    }
    case T_ENUM:
        for (const cs_enum_val *e = o->enums; e->name; e++)
            if (strcasecmp(v, e->name) == 0) {
                *cs_cfg_int(c, o) = e->value;
                return 0;
            }
        enum_list(o->enums, ", ", bounds, sizeof bounds);
        set_why(why, n, "'%s' is not one of %s", qv(&b, v), bounds);
        return -1;
    case T_BOOL: {
        int x;
        if (parse_bool(v, &x) < 0) {
            set_why(why, n, "'%s' is not a bool (true, false, 1, 0, yes, no, on, off)",
                    qv(&b, v));
            return -1;
        }
        *cs_cfg_int(c, o) = x;
        return 0;
    }
    }
    return -1;
}

/* The canonical text of o's value in c ("***" for secrets when mask). */
void cs_cfg_format(const cs_opt *o, const cs_config *c, int mask, char *buf, size_t n);

static void mask_userinfo(const char *url, char *buf, size_t n)
{
    const char *s = strstr(url, "://");
    if (!s) {
        snprintf(buf, n, "%s", url);
        return;
    }
    s += 3;
    const char *end = s + strcspn(s, "/?");
    const char *at = NULL;
    for (const char *p = s; p < end; p++)
        if (*p == '@')
            at = p;
    if (!at) {
        snprintf(buf, n, "%s", url);
        return;
    }
    const char *colon = memchr(s, ':', (size_t)(at - s));
    if (colon) /* keep the user name, hide the password */
        snprintf(buf, n, "%.*s***%s", (int)(colon + 1 - url), url, at);
    else /* "secret@host" is a password */
        snprintf(buf, n, "%.*s***%s", (int)(s - url), url, at);
}

/* The URL with its password (userinfo or ?password=) replaced by "***". */
void cs_cfg_mask_redis(const char *url, char *buf, size_t n)
{
    char tmp[MAX_VALUE_LEN + 64];
    mask_userinfo(url, tmp, sizeof tmp);
    const char *q = strchr(tmp, '?');
    size_t o = 0;
    if (!q) {
        snprintf(buf, n, "%s", tmp);
        return;
    }
    o = (size_t)snprintf(buf, n, "%.*s", (int)(q - tmp), tmp);
    while (*q && o + 1 < n) {
        size_t len = 1 + strcspn(q + 1, "&"); /* the separator and one key=value */
        /* password=, sentinel_password= (redis+sentinel://) */
        const char *eq = memchr(q + 1, '=', len - 1);
        if (eq && eq - (q + 1) >= 8 && strncmp(eq - 8, "password", 8) == 0)
            o += (size_t)snprintf(buf + o, n - o, "%.*s***", (int)(eq + 1 - q), q);
        else
            o += (size_t)snprintf(buf + o, n - o, "%.*s", (int)len, q);
        q += len;
    }
}

static int secret_key(const char *k, size_t len)
{
    static const char *const words[] = {"password", "secret", "key.pem", "oauthbearer.config",
                                        "jaas", "token"};
    char tmp[256];
    if (len >= sizeof tmp)
        return 1;
    for (size_t i = 0; i < len; i++)
        tmp[i] = (char)tolower((unsigned char)k[i]);
    tmp[len] = '\0';
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strstr(tmp, words[i]))
            return 1;
    return 0;
}

void cs_cfg_mask_kv(const char *v, char *buf, size_t n)
{
    size_t o = 0;
    buf[0] = '\0';
    while (*v && o + 1 < n) {
        const char *e = v;
        while (*e && *e != ',')
            e += (*e == '\\' && e[1]) ? 2 : 1;
        const char *eq = memchr(v, '=', (size_t)(e - v));
        if (eq && secret_key(v, (size_t)(eq - v)))
            o += (size_t)snprintf(buf + o, n - o, "%.*s***", (int)(eq + 1 - v), v);
        else
            o += (size_t)snprintf(buf + o, n - o, "%.*s", (int)(e - v), v);
        if (!*e || o + 1 >= n)
            break;
        buf[o++] = ',';
        buf[o] = '\0';
        v = e + 1;
    }
}

void cs_cfg_format(const cs_opt *o, const cs_config *c, int mask, char *buf, size_t n)
{
    switch (o->type) {
    case T_STR:
    case T_LIST:
    case T_KV: {
        const char *s = *cs_cfg_str(c, o);
        if (!s)
            s = "";
        if (mask && o->check == check_redis)
            cs_cfg_mask_redis(s, buf, n);
        else if (mask && o->type == T_KV)
            cs_cfg_mask_kv(s, buf, n);
        else if (mask && (o->flags & F_SECRET) && *s)
            snprintf(buf, n, "***");
        else
            snprintf(buf, n, "%s", s);
        return;
    }
    case T_INT:
        snprintf(buf, n, "%d", *cs_cfg_int(c, o));
        return;
    case T_DUR:
        cs_format_duration(*cs_cfg_i64(c, o), buf, n);
        return;
    case T_ENUM:
        for (const cs_enum_val *e = o->enums; e->name; e++)
            if (e->value == *cs_cfg_int(c, o)) {
                snprintf(buf, n, "%s", e->name);
                return;
            }
        snprintf(buf, n, "%d", *cs_cfg_int(c, o));
        return;
    case T_BOOL:
        snprintf(buf, n, "%s", *cs_cfg_int(c, o) ? "true" : "false");
        return;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* loading */

enum { SRC_DEFAULT, SRC_FILE, SRC_ENV, SRC_ARGV };

typedef struct {
    int src;
    size_t line, col; /* SRC_FILE, 1-based */
    int from_file;    /* SRC_ENV: CLICKSTAGE_<NAME>_FILE */
} origin;

typedef struct {
    cs_config *c;
    char *err;
    size_t errlen;
    const char *file; /* the config file's path as given */
    origin org[NOPTS];
} ctx;

static int set_err(ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int set_err(ctx *x, const char *fmt, ...)
{
    if (!x->err[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(x->err, x->errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* How the user named option i where it was last set: "--topics", "CLICKSTAGE_TOPICS", ... */
static void origin_label(const ctx *x, int i, char *buf, size_t n)
{
    char name[64];
    switch (x->org[i].src) {
    case SRC_FILE:
        snprintf(buf, n, "%s:%zu:%zu: %s", x->file, x->org[i].line, x->org[i].col,
                 cs_cfg_opts[i].name);
        break;
    case SRC_ENV:
        cs_cfg_env_name(&cs_cfg_opts[i], name, sizeof name);
        snprintf(buf, n, "%s%s", name, x->org[i].from_file ? "_FILE" : "");
        break;
    case SRC_ARGV:
        cs_cfg_flag_name(&cs_cfg_opts[i], name, sizeof name);
        snprintf(buf, n, "%s", name);
        break;
    default:
        snprintf(buf, n, "%s (default)", cs_cfg_opts[i].name);
        break;
    }
}

/* --- YAML config file ---------------------------------------------------------------------- */

static int err_at(ctx *x, yaml_mark_t m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int err_at(ctx *x, yaml_mark_t m, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return set_err(x, "%s:%zu:%zu: %s", x->file, m.line + 1, m.column + 1, msg);
}

static int yaml_error(ctx *x, yaml_parser_t *ps, const char *src, size_t len)
{
    yaml_mark_t m;
    char msg[512];
    cs_yaml_error(ps, src, len, &m, msg, sizeof msg);
    return err_at(x, m, "%s", msg);
}

static const char *node_kind(const yaml_node_t *nd)
{
    switch (nd->type) {
    case YAML_SCALAR_NODE: return "a scalar";
    case YAML_SEQUENCE_NODE: return "a list";
    case YAML_MAPPING_NODE: return "a mapping";
    default: return "nothing";
    }
}

/* A scalar's text; a plain null (empty, ~, null) is "". Scalars with NUL bytes are rejected. */
static int scalar_text(ctx *x, const cs_opt *o, yaml_node_t *nd, const char **out)
{
    const char *s = (const char *)nd->data.scalar.value;
    size_t len = nd->data.scalar.length;
    if (memchr(s, '\0', len))
        return err_at(x, nd->start_mark, "%s: value contains a NUL byte", o->name);
    if (nd->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
        (strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
         strcmp(s, "NULL") == 0))
        s = "";
    *out = s;
    return 0;
}

/* Joins a YAML list (T_LIST) or mapping (T_KV) into the flag syntax "a,b" / "k=v,k=v". */
static char *join_node(ctx *x, const cs_opt *o, yaml_document_t *doc, yaml_node_t *nd)
{
    size_t cap = 256, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        set_err(x, "out of memory");
        return NULL;
    }
    buf[0] = '\0';
    int nitems = nd->type == YAML_SEQUENCE_NODE
                     ? (int)(nd->data.sequence.items.top - nd->data.sequence.items.start)
                     : (int)(nd->data.mapping.pairs.top - nd->data.mapping.pairs.start);
    for (int i = 0; i < nitems; i++) {
        yaml_node_t *parts[2] = {NULL, NULL};
        int np;
        if (nd->type == YAML_SEQUENCE_NODE) {
            parts[0] = yaml_document_get_node(doc, nd->data.sequence.items.start[i]);
            np = 1;
        } else {
            parts[0] = yaml_document_get_node(doc, nd->data.mapping.pairs.start[i].key);
            parts[1] = yaml_document_get_node(doc, nd->data.mapping.pairs.start[i].value);
            np = 2;
        }
        for (int k = 0; k < np; k++) {
            const char *s;
            yaml_node_t *p = parts[k];
            if (!p || p->type != YAML_SCALAR_NODE) {
                err_at(x, p ? p->start_mark : nd->start_mark, "%s: items must be scalars, not %s",
                       o->name, p ? node_kind(p) : "nothing");
                goto bad;
            }
            if (scalar_text(x, o, p, &s) < 0)
                goto bad;
            qbuf b;
            char *esc = NULL;
            if (k == 1) { /* a mapping's value: commas and backslashes are escaped */
                if (!(esc = cs_kprops_escape(s, strlen(s)))) {
                    set_err(x, "out of memory");
                    goto bad;
                }
                s = esc;
            } else if (strchr(s, ',') || (np == 2 && strchr(s, '='))) {
                err_at(x, p->start_mark, "%s: '%s' cannot contain '%s'", o->name, qv(&b, s),
                       strchr(s, ',') ? "," : "=");
                goto bad;
            }
            size_t sl = strlen(s);
            if (len + sl + 2 > MAX_VALUE_LEN + 2) {
                free(esc);
                err_at(x, nd->start_mark, "%s: value is longer than %d bytes", o->name,
                       MAX_VALUE_LEN);
                goto bad;
            }
            if (len + sl + 2 >= cap) {
                while (len + sl + 2 >= cap)
                    cap *= 2;
                char *nb = realloc(buf, cap);
                if (!nb) {
                    free(esc);
                    set_err(x, "out of memory");
                    goto bad;
                }
                buf = nb;
            }
            if (len && k == 0)
                buf[len++] = ',';
            if (k == 1)
                buf[len++] = '=';
            memcpy(buf + len, s, sl);
            len += sl;
            buf[len] = '\0';
            free(esc);
        }
    }
    return buf;
bad:
    free(buf);
    return NULL;
}

static int apply_doc(ctx *x, yaml_document_t *doc, yaml_node_t *root)
{
    if (root->type != YAML_MAPPING_NODE)
        return err_at(x, root->start_mark,
                      "a config file is a mapping of option: value, not %s", node_kind(root));
    size_t seen_line[NOPTS];
    memset(seen_line, 0, sizeof seen_line);
    for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top;
         pr++) {
        yaml_node_t *k = yaml_document_get_node(doc, pr->key);
        yaml_node_t *v = yaml_document_get_node(doc, pr->value);
        qbuf b;
        if (!k || !v)
            return err_at(x, root->start_mark, "malformed mapping");
        if (k->type != YAML_SCALAR_NODE)
            return err_at(x, k->start_mark, "keys must be option names, not %s", node_kind(k));
        const char *ks = (const char *)k->data.scalar.value;
        size_t klen = k->data.scalar.length;
        int i = memchr(ks, '\0', klen) ? -1 : find_opt(ks, klen);
        if (i < 0) {
            int s = suggest(ks, klen);
            if (s >= 0)
                return err_at(x, k->start_mark, "unknown key '%s' (did you mean '%s'?)",
                              qv(&b, ks), cs_cfg_opts[s].name);
            return err_at(x, k->start_mark, "unknown key '%s'", qv(&b, ks));
        }
        const cs_opt *o = &cs_cfg_opts[i];
        if (o->flags & F_NOFILE)
            return err_at(x, k->start_mark, "%s cannot be set in a config file (use --%s or "
                          "CLICKSTAGE_CONFIG)", o->name, o->name);
        if (seen_line[i])
            return err_at(x, k->start_mark, "duplicate key '%s' (first set at line %zu)",
                          qv(&b, ks), seen_line[i]);
        seen_line[i] = k->start_mark.line + 1;

        char why[512];
        int rc;
        if (v->type == YAML_SCALAR_NODE) {
            const char *s;
            if (scalar_text(x, o, v, &s) < 0)
                return -1;
            rc = opt_set(o, x->c, s, why, sizeof why);
        } else if ((v->type == YAML_SEQUENCE_NODE && o->type == T_LIST) ||
                   (v->type == YAML_MAPPING_NODE && o->type == T_KV)) {
            char *joined = join_node(x, o, doc, v);
            if (!joined)
                return -1;
            rc = opt_set(o, x->c, joined, why, sizeof why);
            free(joined);
        } else {
            return err_at(x, v->start_mark, "%s: expected %s, not %s", o->name,
                          o->type == T_LIST   ? "a scalar or a list"
                          : o->type == T_KV ? "a scalar or a mapping"
                                            : "a scalar",
                          node_kind(v));
        }
        if (rc < 0)
            return err_at(x, v->start_mark, "%s: %s", o->name, why);
        x->org[i].src = SRC_FILE;
        x->org[i].line = v->start_mark.line + 1;
        x->org[i].col = v->start_mark.column + 1;
    }
    return 0;
}

static int apply_yaml(ctx *x, const char *src, size_t len)
{
    yaml_parser_t ps;
    yaml_document_t doc, doc2;
    int rc = -1, have_doc = 0;
    yaml_mark_t m0 = {0, 0, 0};
    if (!yaml_parser_initialize(&ps))
        return err_at(x, m0, "out of memory");
    yaml_parser_set_input_string(&ps, (const unsigned char *)src, len);
    if (!cs_yaml_load(&ps, &doc, NULL)) {
        yaml_error(x, &ps, src, len);
        goto out;
    }
    have_doc = 1;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root || (root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0 &&
                  root->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)) {
        /* empty file, only comments, or an empty document ("---"): nothing set */
        rc = 0;
        goto out;
    }
    if (!cs_yaml_load(&ps, &doc2, NULL)) {
        yaml_error(x, &ps, src, len);
        goto out;
    }
    if (yaml_document_get_root_node(&doc2)) {
        err_at(x, doc2.start_mark, "a config file holds one YAML document; found a second one");
        yaml_document_delete(&doc2);
        goto out;
    }
    yaml_document_delete(&doc2);
    rc = apply_doc(x, &doc, root);
out:
    if (have_doc)
        yaml_document_delete(&doc);
    yaml_parser_delete(&ps);
    return rc;
}

/* label: how the path was given ("--config" or "CLICKSTAGE_CONFIG"), for open errors. */
static int apply_file(ctx *x, const char *path, const char *label)
{
    qbuf b;
    FILE *f = fopen(path, "rb");
    if (!f)
        return set_err(x, "%s: cannot open '%s': %s", label, qv(&b, path), strerror(errno));
    char *buf = malloc(MAX_FILE_SIZE + 1);
    if (!buf) {
        fclose(f);
        return set_err(x, "out of memory");
    }
    size_t len = fread(buf, 1, MAX_FILE_SIZE + 1, f);
    int rerr = ferror(f) ? errno : 0;
    fclose(f);
    int rc;
    if (rerr)
        rc = set_err(x, "%s: cannot read '%s': %s", label, qv(&b, path), strerror(rerr));
    else if (len > MAX_FILE_SIZE)
        rc = set_err(x, "%s: '%s' is larger than %d bytes", label, qv(&b, path), MAX_FILE_SIZE);
    else {
        x->file = path;
        rc = apply_yaml(x, buf, len);
    }
    free(buf);
    return rc;
}

/* --- CLICKSTAGE_<NAME>_FILE ------------------------------------------------------------------ */

/* The value of option o from the file at path (CLICKSTAGE_<NAME>_FILE): a regular file (a
 * Kubernetes secret volume's symlinks are followed) of at most MAX_FILE_SIZE bytes; its trailing
 * newlines are removed; for kafka_props it is a properties file. Its content is never quoted. */
static char *read_value_file(ctx *x, const cs_opt *o, const char *label, const char *path)
{
    qbuf b;
    struct stat st;
    if (stat(path, &st) != 0) {
        set_err(x, "%s: cannot open '%s': %s", label, qv(&b, path), strerror(errno));
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        set_err(x, "%s: '%s' is not a regular file", label, qv(&b, path));
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        set_err(x, "%s: cannot open '%s': %s", label, qv(&b, path), strerror(errno));
        return NULL;
    }
    char *buf = malloc(MAX_FILE_SIZE + 1);
    if (!buf) {
        fclose(f);
        set_err(x, "out of memory");
        return NULL;
    }
    size_t len = fread(buf, 1, MAX_FILE_SIZE + 1, f);
    int rerr = ferror(f) ? errno : 0;
    fclose(f);
    char *v = NULL, why[512];
    if (rerr)
        set_err(x, "%s: cannot read '%s': %s", label, qv(&b, path), strerror(rerr));
    else if (len > MAX_FILE_SIZE)
        set_err(x, "%s: '%s' is larger than %d bytes", label, qv(&b, path), MAX_FILE_SIZE);
    else if (memchr(buf, '\0', len))
        set_err(x, "%s: '%s' contains a NUL byte", label, qv(&b, path));
    else if (o->type == T_KV) {
        if (!(v = cs_kprops_from_properties(buf, len, why, sizeof why)))
            set_err(x, "%s (%s): %s", label, qv(&b, path), why);
    } else {
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
            len--;
        buf[len] = '\0';
        v = strdup(buf);
        if (!v)
            set_err(x, "out of memory");
    }
    memset(buf, 0, len < MAX_FILE_SIZE ? len : MAX_FILE_SIZE); /* may be a password */
    free(buf);
    return v;
}

/* --- argv ---------------------------------------------------------------------------------- */

enum { SPECIAL_NONE, SPECIAL_HELP, SPECIAL_MARKDOWN, SPECIAL_VERSION };

typedef struct {
    int opt;
    const char *val;
} argv_item;

/* Parses argv into items (not applied yet). Returns the count, or -1 (error in x) — but a
 * --help/--help-markdown/--version anywhere wins over errors: *special is set either way. */
static int scan_argv(ctx *x, int argc, char **argv, argv_item *items, int *special)
{
    int n = 0, rc = 0;
    qbuf b;
    *special = SPECIAL_NONE;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!a)
            break;
        int sp = SPECIAL_NONE;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            sp = SPECIAL_HELP;
        else if (strcmp(a, "--help-markdown") == 0)
            sp = SPECIAL_MARKDOWN;
        else if (strcmp(a, "--version") == 0)
            sp = SPECIAL_VERSION;
        if (sp != SPECIAL_NONE) {
            if (*special == SPECIAL_NONE)
                *special = sp;
            continue;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            if (a[0] == '-' && a[1] != '\0' && a[1] != '-')
                rc = set_err(x, "unknown option %s (options are --name VALUE or --name=VALUE)",
                          qv(&b, a));
            else
                rc = set_err(x, "unexpected argument '%s' (clickstage takes only options; see "
                          "--help)", qv(&b, a));
            continue;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        int o = find_opt(name, nlen);
        if (o < 0) {
            if (nlen == 4 && strncmp(name, "help", 4) == 0) {
                rc = set_err(x, "--help takes no value");
                continue;
            }
            if (x->err[0]) { /* only the first error is reported: skip the suggestion */
                rc = -1;
                continue;
            }
            int s = suggest(name, nlen);
            char fl[64], nm[64];
            snprintf(nm, sizeof nm, "%.*s", (int)(nlen < 63 ? nlen : 63), name);
            if (s >= 0) {
                cs_cfg_flag_name(&cs_cfg_opts[s], fl, sizeof fl);
                rc = set_err(x, "unknown option --%s (did you mean %s?)", qv(&b, nm), fl);
            } else {
                rc = set_err(x, "unknown option --%s (see --help)", qv(&b, nm));
            }
            continue;
        }
        char fl[64];
        cs_cfg_flag_name(&cs_cfg_opts[o], fl, sizeof fl);
        const char *val;
        if (eq) {
            val = eq + 1;
        } else if (cs_cfg_opts[o].type == T_BOOL) {
            val = "true";
        } else if (i + 1 >= argc || !argv[i + 1]) {
            rc = set_err(x, "%s: missing value", fl);
            continue;
        } else if (strncmp(argv[i + 1], "--", 2) == 0 && argv[i + 1][2] != '\0') {
            rc = set_err(x, "%s: missing value before %s (write %s=VALUE for a value that "
                      "starts with --)", fl, qv(&b, argv[i + 1]), fl);
            continue;
        } else {
            val = argv[++i];
        }
        items[n].opt = o;
        items[n].val = val;
        n++;
    }
    return rc < 0 ? -1 : n;
}

/* --- the whole load ------------------------------------------------------------------------ */

/* The option whose environment variable is CLICKSTAGE_ + name[0..nlen), or -1. */
static int env_opt(const char *name, size_t nlen)
{
    size_t pl = strlen(ENV_PREFIX);
    for (int k = 0; k < NOPTS; k++) {
        char en[64];
        cs_cfg_env_name(&cs_cfg_opts[k], en, sizeof en);
        if (strlen(en + pl) == nlen && memcmp(en + pl, name, nlen) == 0)
            return k;
    }
    return -1;
}

static int opt_index(size_t off)
{
    for (int i = 0; i < NOPTS; i++)
        if (cs_cfg_opts[i].off == off)
            return i;
    return -1;
}

/* kafka_sasl_password becomes kafka_props' sasl.password (escaped), which is what the source
 * hands to librdkafka; kafka_props setting it as well is an error naming both. */
static int fold_sasl_password(ctx *x)
{
    cs_config *c = x->c;
    if (!c->kafka_sasl_password || !*c->kafka_sasl_password)
        return 0;
    for (const char *p = c->kafka_props; *p;) {
        const char *e = p;
        while (*e && *e != ',')
            e += (*e == '\\' && e[1]) ? 2 : 1;
        if ((size_t)(e - p) > 14 && strncmp(p, "sasl.password=", 14) == 0) {
            char a[600], b2[600];
            origin_label(x, opt_index(offsetof(cs_config, kafka_sasl_password)), a, sizeof a);
            origin_label(x, opt_index(offsetof(cs_config, kafka_props)), b2, sizeof b2);
            return set_err(x, "%s: sasl.password is set in %s too; set it in one place", a, b2);
        }
        p = *e ? e + 1 : e;
    }
    char *esc = cs_kprops_escape(c->kafka_sasl_password, strlen(c->kafka_sasl_password));
    size_t len = strlen(c->kafka_props) + strlen(esc ? esc : "") + 32;
    char *kp = esc ? malloc(len) : NULL;
    if (!kp) {
        free(esc);
        return set_err(x, "out of memory");
    }
    snprintf(kp, len, "%s%ssasl.password=%s", c->kafka_props, *c->kafka_props ? "," : "", esc);
    memset(esc, 0, strlen(esc));
    free(esc);
    free(c->kafka_props);
    c->kafka_props = kp;
    return 0;
}

static int fill_instance_id(ctx *x)
{
    cs_config *c = x->c;
    if (c->instance_id && c->instance_id[0])
        return 0;
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) < 0 || !host[0])
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    /* keep it within the instance_id alphabet */
    for (char *p = host; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '.' && *p != ':' && *p != '-')
            *p = '_';
    char buf[300];
    snprintf(buf, sizeof buf, "%.200s-%ld", host, (long)getpid());
    char *s = strdup(buf);
    if (!s)
        return set_err(x, "out of memory");
    free(c->instance_id);
    c->instance_id = s;
    return 0;
}

static int cross_checks(ctx *x)
{
    cs_config *c = x->c;
    /* fetch_threads against the workers and the mode */
    {
        long nw = c->threads > 0 ? c->threads : sysconf(_SC_NPROCESSORS_ONLN);
        if (nw < 1)
            nw = 1;
        char lab[600];
        origin_label(x, opt_index(offsetof(cs_config, fetch_threads_opt)), lab, sizeof lab);
        if (strcmp(c->fetch_threads_opt, "auto") == 0) {
            c->fetch_threads = 0; /* the source decides: cs_source_auto_fetch_threads() */
        } else {
            long k = strtol(c->fetch_threads_opt, NULL, 10);
            if (k > nw)
                return set_err(x, "%s: %ld is above the worker count (%ld%s): a consumer handle "
                                  "serves at least one worker", lab, k, nw,
                               c->threads > 0 ? ", threads" : ", one per online CPU core");
            c->fetch_threads = (int)k;
        }
    }
    if (c->dead_letter_topic[0]) {
        size_t dl = strlen(c->dead_letter_topic);
        for (const char *p = c->topics; *p;) {
            const char *e = strchr(p, ',');
            size_t len = e ? (size_t)(e - p) : strlen(p);
            if (len == dl && memcmp(p, c->dead_letter_topic, dl) == 0) {
                char lab[600];
                int i;
                for (i = 0; i < NOPTS; i++)
                    if (cs_cfg_opts[i].off == offsetof(cs_config, dead_letter_topic))
                        break;
                origin_label(x, i, lab, sizeof lab);
                return set_err(x, "%s: '%s' is also an input topic (see topics)", lab,
                            c->dead_letter_topic);
            }
            if (!e)
                break;
            p = e + 1;
        }
    }
    return 0;
}

int cs_config_load(cs_config *c, int argc, char **argv, char **envp, FILE *out, char *errstr,
                   size_t errlen)
{
    char dummy[1024];
    if (!errstr || !errlen) {
        errstr = dummy;
        errlen = sizeof dummy;
    }
    errstr[0] = '\0';
    memset(c, 0, sizeof *c);
    if (!out)
        out = stdout;
    ctx x;
    memset(&x, 0, sizeof x);
    x.c = c;
    x.err = errstr;
    x.errlen = errlen;
    x.file = "";
    argv_item *items = NULL;
    int special = SPECIAL_NONE, nitems = 0;

    /* 1. defaults, through the same parser as everything else */
    for (int i = 0; i < NOPTS; i++) {
        char why[512];
        if (opt_set(&cs_cfg_opts[i], c, cs_cfg_opts[i].def, why, sizeof why) < 0) {
            set_err(&x, "internal error: the default of %s: %s", cs_cfg_opts[i].name, why);
            goto bad;
        }
    }

    /* 2. argv, parsed but not applied: --help wins over any error, --config picks the file */
    if (argc > 1 && argv) {
        items = calloc((size_t)argc, sizeof *items);
        if (!items) {
            set_err(&x, "out of memory");
            goto bad;
        }
        nitems = scan_argv(&x, argc, argv, items, &special);
    }
    if (special != SPECIAL_NONE) {
        errstr[0] = '\0';
        if (special == SPECIAL_HELP)
            cs_config_print_help(out);
        else if (special == SPECIAL_MARKDOWN)
            cs_config_print_markdown(out);
        else
            fprintf(out, "clickstage %s\n", CLICKSTAGE_VERSION);
        free(items);
        cs_config_free(c);
        return 1;
    }
    if (nitems < 0)
        goto bad;

    /* 3. the config file: --config, else CLICKSTAGE_CONFIG */
    {
        const char *path = NULL, *label = "--config";
        for (int k = 0; k < nitems; k++)
            if (cs_cfg_opts[items[k].opt].off == offsetof(cs_config, config_file)) {
                path = items[k].val;
                label = "--config";
            }
        if (!path && envp)
            for (char **e = envp; *e; e++)
                if (strncmp(*e, "CLICKSTAGE_CONFIG=", 18) == 0) {
                    path = *e + 18;
                    label = "CLICKSTAGE_CONFIG";
                }
        if (path && *path && apply_file(&x, path, label) < 0)
            goto bad;
    }

    /* 4. the environment: CLICKSTAGE_<NAME>=value or CLICKSTAGE_<NAME>_FILE=path */
    if (envp) {
        int env_seen[NOPTS]; /* 1: CLICKSTAGE_<NAME>, 2: CLICKSTAGE_<NAME>_FILE */
        memset(env_seen, 0, sizeof env_seen);
        for (char **e = envp; *e; e++) {
            size_t pl = strlen(ENV_PREFIX);
            if (strncmp(*e, ENV_PREFIX, pl) != 0)
                continue;
            const char *name = *e + pl;
            const char *eq = strchr(name, '=');
            size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
            const char *val = eq ? eq + 1 : "";
            int i = env_opt(name, nlen), is_file = 0;
            if (i < 0 && nlen > 5 && memcmp(name + nlen - 5, "_FILE", 5) == 0) {
                /* CLICKSTAGE_<NAME>_FILE (not CLICKSTAGE_CONFIG_FILE: the config file's path
                 * is CLICKSTAGE_CONFIG itself) */
                i = env_opt(name, nlen - 5);
                if (i >= 0 && (cs_cfg_opts[i].flags & F_NOFILE))
                    i = -1;
                is_file = i >= 0;
            }
            qbuf b;
            if (i < 0 && nlen > 5 && memcmp(name + nlen - 5, "_FILE", 5) == 0 &&
                (i = env_opt(name, nlen - 5)) >= 0) {
                char en[64];
                cs_cfg_env_name(&cs_cfg_opts[i], en, sizeof en);
                set_err(&x, "%s_FILE is not read: %s itself names a file", en, en);
                goto bad;
            }
            if (i < 0) {
                int s = suggest(name, nlen);
                char en[64], nm[64];
                snprintf(nm, sizeof nm, "%.*s", (int)(nlen < 63 ? nlen : 63), name);
                if (s >= 0) {
                    cs_cfg_env_name(&cs_cfg_opts[s], en, sizeof en);
                    set_err(&x, "unknown environment variable " ENV_PREFIX "%s (did you mean %s?)",
                         qv(&b, nm), en);
                } else {
                    set_err(&x, "unknown environment variable " ENV_PREFIX "%s (clickstage "
                         "reads only its own options from CLICKSTAGE_*; see --help)",
                         qv(&b, nm));
                }
                goto bad;
            }
            char why[512], en[64];
            cs_cfg_env_name(&cs_cfg_opts[i], en, sizeof en);
            if (env_seen[i] && env_seen[i] != 1 + is_file) {
                set_err(&x, "%s and %s_FILE are both set; set only one of them", en, en);
                goto bad;
            }
            env_seen[i] = 1 + is_file;
            if (is_file) {
                char label[80];
                snprintf(label, sizeof label, "%s_FILE", en);
                char *fv = read_value_file(&x, &cs_cfg_opts[i], label, val);
                if (!fv)
                    goto bad;
                int rc2 = opt_set(&cs_cfg_opts[i], c, fv, why, sizeof why);
                memset(fv, 0, strlen(fv));
                free(fv);
                if (rc2 < 0) {
                    set_err(&x, "%s (%s): %s", label, qv(&b, val), why);
                    goto bad;
                }
            } else if (opt_set(&cs_cfg_opts[i], c, val, why, sizeof why) < 0) {
                set_err(&x, "%s: %s", en, why);
                goto bad;
            }
            x.org[i].src = SRC_ENV;
            x.org[i].from_file = is_file;
        }
    }

    /* 5. flags, in order (the last of a repeated flag wins) */
    for (int k = 0; k < nitems; k++) {
        const cs_opt *o = &cs_cfg_opts[items[k].opt];
        char why[512], fl[64];
        cs_cfg_flag_name(o, fl, sizeof fl);
        if (opt_set(o, c, items[k].val, why, sizeof why) < 0) {
            set_err(&x, "%s: %s", fl, why);
            goto bad;
        }
        x.org[items[k].opt].src = SRC_ARGV;
    }

    /* 6. derived values and checks across options */
    if (fill_instance_id(&x) < 0 || cross_checks(&x) < 0 || fold_sasl_password(&x) < 0)
        goto bad;
    free(items);
    return 0;
bad:
    if (!errstr[0])
        snprintf(errstr, errlen, "invalid configuration");
    free(items);
    cs_config_free(c);
    return -1;
}

void cs_config_free(cs_config *c)
{
    if (!c)
        return;
    for (int i = 0; i < NOPTS; i++)
        if (is_str_type(cs_cfg_opts[i].type)) {
            char **f = cs_cfg_str(c, &cs_cfg_opts[i]);
            free(*f);
            *f = NULL;
        }
    memset(c, 0, sizeof *c);
}

void cs_config_dump(const cs_config *c, FILE *out)
{
    char buf[MAX_VALUE_LEN + 64];
    for (int i = 0; i < NOPTS; i++) {
        cs_cfg_format(&cs_cfg_opts[i], c, 1, buf, sizeof buf);
        fprintf(out, "%s=%s\n", cs_cfg_opts[i].name, buf);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* --help and --help-markdown */

#define NBSP '\x01' /* a space print_wrapped() does not break at */

/* Prints s without backquotes, wrapped at `width`, each line indented by `indent`. */
static void print_wrapped(FILE *out, const char *s, int indent, int width)
{
    int col = 0;
    while (*s) {
        while (*s == ' ')
            s++;
        if (!*s)
            break;
        const char *e = s;
        int wl = 0;
        while (*e && *e != ' ') {
            if (*e != '`')
                wl++;
            e++;
        }
        if (col > 0 && col + 1 + wl > width) {
            fputc('\n', out);
            col = 0;
        }
        if (col == 0) {
            fprintf(out, "%*s", indent, "");
            col = indent;
        } else {
            fputc(' ', out);
            col++;
        }
        for (const char *p = s; p < e; p++)
            if (*p != '`')
                fputc(*p == NBSP ? ' ' : *p, out);
        col += wl;
        s = e;
    }
    if (col > 0)
        fputc('\n', out);
}

static const char *intro =
    "Every option can be given as a flag (`--name VALUE` or `--name=VALUE`), an environment "
    "variable (`CLICKSTAGE_NAME`) or a key of the YAML config file (`name: value`, a flat "
    "mapping; `name` may be spelled with `_` or `-`). Flags override the environment, which "
    "overrides the config file, which overrides the defaults. Unknown flags, unknown "
    "`CLICKSTAGE_*` variables, unknown keys and bad values are errors that name the option. "
    "Durations are an integer and a unit: `ms`, `s`, `m`, `h` or `d` (`250ms`, `30s`, `48h`); "
    "`0` needs no unit. Bools are `true`/`false`, `1`/`0`, `yes`/`no` or `on`/`off`. "
    "Secrets: every option can also be read from a file, `CLICKSTAGE_NAME_FILE=/path` (how "
    "Kubernetes and Docker mount secrets): the file's content without its trailing newline is "
    "the value (for `kafka_props`, a properties file: one `key=value` per line, `#` comments), "
    "at the environment's precedence; setting both `CLICKSTAGE_NAME` and "
    "`CLICKSTAGE_NAME_FILE` is an error. Passwords (`redis`, `kafka_sasl_password`, secret "
    "`kafka_props` values) are shown as `***` in logs and never quoted in error messages.";


/* The daemon's exit codes (cmd/clickstage/main.c returns them): --help and docs/configuration.md. */
static const struct {
    int code;
    const char *text;
} exit_codes[] = {
    {0, "stopped cleanly (SIGTERM/SIGINT, the end of --drain, --help, --version)"},
    {1, "bad configuration (an option, a variable, the config file): one line names it"},
    {2, "could not start: the rule file, Kafka (authentication, TLS, unknown topic), the HTTP "
        "listener"},
    {3, "stopped, but the final flush did not reach Redis: the counts since the last flush are "
        "read again from Kafka at the next start (nothing is lost)"},
    {4, "fenced and the re-exec to rejoin with fresh state failed"},
    {5, "Redis lost the counts and redis_state_lost is fail"},
};

void cs_config_print_help(FILE *out)
{
    char buf[512], fl[64], en[64];
    fprintf(out, "clickstage %s: Kafka clickstream in, journey-stage counts in Redis out.\n\n",
            CLICKSTAGE_VERSION);
    fprintf(out, "Usage: clickstage [OPTIONS]\n\n");
    print_wrapped(out, intro, 0, 96);
    fprintf(out, "\nOptions:\n");
    for (int i = 0; i < NOPTS; i++) {
        const cs_opt *o = &cs_cfg_opts[i];
        cs_cfg_flag_name(o, fl, sizeof fl);
        cs_cfg_env_name(o, en, sizeof en);
        char arg[128];
        if (o->type == T_BOOL)
            snprintf(arg, sizeof arg, "%s[=BOOL]", fl);
        else if (o->type == T_ENUM) {
            enum_list(o->enums, "|", buf, sizeof buf);
            snprintf(arg, sizeof arg, "%s %s", fl, buf);
        } else
            snprintf(arg, sizeof arg, "%s %s", fl, o->metavar ? o->metavar : "VALUE");
        fprintf(out, "  %-44s env %s\n", arg, en);
        if (o->flags & F_SECRET)
            fprintf(out, "  %-44s  or %s_FILE\n", "", en);
        print_wrapped(out, o->desc, 6, 96);
        cs_cfg_fmt_bounds(o, buf, sizeof buf);
        char line[1024];
        snprintf(line, sizeof line, "%s: %s; default:%c%s", type_name(o->type), buf, NBSP,
                 o->def[0] ? o->def : "(empty)");
        print_wrapped(out, line, 6, 96);
    }
    fprintf(out, "\n  %-44s print this help and exit\n", "--help, -h");
    fprintf(out, "  %-44s print this reference as Markdown and exit\n", "--help-markdown");
    fprintf(out, "  %-44s print \"clickstage %s\" and exit\n", "--version", CLICKSTAGE_VERSION);
    fprintf(out, "\nExit status:\n");
    for (size_t i = 0; i < sizeof exit_codes / sizeof exit_codes[0]; i++) {
        /* "  3  text", wrapped at 96 columns, continuation lines under the text */
        fprintf(out, "  %d  ", exit_codes[i].code);
        int col = 5;
        for (const char *w = exit_codes[i].text; *w;) {
            size_t wl = strcspn(w, " ");
            if (col > 5 && col + 1 + (int)wl > 96) {
                fprintf(out, "\n     ");
                col = 5;
            } else if (col > 5) {
                fputc(' ', out);
                col++;
            }
            fwrite(w, 1, wl, out);
            col += (int)wl;
            w += wl;
            while (*w == ' ')
                w++;
        }
        fputc('\n', out);
    }
}

/* Markdown table cell text: '|' escaped, so a cell never splits. */
static void md_cell(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            fputc('\\', out);
        fputc(*s, out);
    }
}

/* A YAML double-quoted scalar (values never hold control characters). */
static void yaml_quoted(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

/* A config file that sets every option (but `config`) to its default. */
void cs_cfg_print_example_yaml(FILE *out)
{
    for (int i = 0; i < NOPTS; i++) {
        const cs_opt *o = &cs_cfg_opts[i];
        if (o->flags & F_NOFILE)
            continue;
        fprintf(out, "%s: ", o->name);
        if (is_str_type(o->type))
            yaml_quoted(out, o->def);
        else
            fputs(o->def, out);
        fputc('\n', out);
    }
}

void cs_config_print_markdown(FILE *out)
{
    char buf[512], fl[64], en[64];
    fprintf(out, "<!-- generated by `build/clickstage --help-markdown`; do not edit "
                 "(tests/unit/test_config.c fails when this file is stale) -->\n");
    fprintf(out, "# clickstage configuration\n\n");
    fprintf(out, "The options of the `clickstage` daemon. %s\n\n", intro);
    fprintf(out, "| option | flag | environment | type | default | values | description |\n");
    fprintf(out, "|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < NOPTS; i++) {
        const cs_opt *o = &cs_cfg_opts[i];
        cs_cfg_flag_name(o, fl, sizeof fl);
        cs_cfg_env_name(o, en, sizeof en);
        if (o->flags & F_SECRET)
            fprintf(out, "| `%s` | `%s` | `%s`, `%s_FILE` | %s | ", o->name, fl, en, en,
                    type_name(o->type));
        else
            fprintf(out, "| `%s` | `%s` | `%s` | %s | ", o->name, fl, en, type_name(o->type));
        if (o->def[0]) {
            fputc('`', out);
            md_cell(out, o->def);
            fputc('`', out);
        } else {
            fputs("(empty)", out);
        }
        fputs(" | ", out);
        cs_cfg_fmt_bounds(o, buf, sizeof buf);
        if (o->type == T_STR || o->type == T_LIST || o->type == T_KV || o->type == T_BOOL) {
            md_cell(out, buf);
        } else {
            fputc('`', out);
            md_cell(out, buf);
            fputc('`', out);
        }
        fputs(" | ", out);
        md_cell(out, o->desc);
        fputs(" |\n", out);
    }
    fprintf(out, "\nOther flags: `--help` (`-h`) prints this reference as text, "
                 "`--help-markdown` prints this page, `--version` prints "
                 "`clickstage VERSION`; each exits 0.\n\n");
    fprintf(out, "## Exit status\n\n| code | meaning |\n|---|---|\n");
    for (size_t i = 0; i < sizeof exit_codes / sizeof exit_codes[0]; i++)
        fprintf(out, "| %d | %s |\n", exit_codes[i].code, exit_codes[i].text);
    fputc('\n', out);
    fprintf(out, "## Config file\n\n");
    fprintf(out, "`--config FILE` (or `CLICKSTAGE_CONFIG=FILE`) reads a YAML file holding one "
                 "flat mapping. Errors name `FILE:LINE:COLUMN`. This file sets every option to "
                 "its default:\n\n");
    fprintf(out, "```yaml\n");
    cs_cfg_print_example_yaml(out);
    fprintf(out, "```\n\n");
    fprintf(out, "Lists and properties can also be written as YAML:\n\n");
    fprintf(out, "```yaml\ntopics: [clicks-web, clicks-app]\nkafka_props:\n"
                 "  security.protocol: ssl\n  fetch.max.bytes: 10485760\n```\n\n");
    fprintf(out, "## Examples\n\n");
    fprintf(out, "```sh\n"
                 "clickstage --brokers kafka1:9092,kafka2:9092 --topics clicks --threads 8\n"
                 "CLICKSTAGE_REDIS=unix:///run/redis/redis.sock clickstage --flush-interval=1s\n"
                 "clickstage --config /etc/clickstage.yaml --drain --log-format text\n"
                 "```\n\n");
    fprintf(out, "At startup the daemon logs every effective value (`name=value`, at level "
                 "debug), with the Redis password, `kafka_sasl_password` and secret-looking "
                 "`kafka_props` values shown as `***`.\n\n");
    fprintf(out, "## Secrets from files\n\n"
                 "```sh\n"
                 "# Kubernetes: a Secret mounted at /run/secrets/clickstage (docs/deploy.md)\n"
                 "CLICKSTAGE_REDIS_FILE=/run/secrets/clickstage/redis-url\n"
                 "CLICKSTAGE_KAFKA_PROPS='security.protocol=sasl_ssl,sasl.mechanisms=SCRAM-SHA-512,"
                 "sasl.username=clickstage,ssl.ca.location=/etc/kafka-ca/ca.crt'\n"
                 "CLICKSTAGE_KAFKA_SASL_PASSWORD_FILE=/run/secrets/clickstage/kafka-password\n"
                 "# or every Kafka security setting in one properties file:\n"
                 "CLICKSTAGE_KAFKA_PROPS_FILE=/run/secrets/clickstage/kafka.properties\n"
                 "```\n");
}
