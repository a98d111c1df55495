/* sink.c — see sink.h for the contract and docs/redis.md for the layout and failure behaviour.
 *
 * Shape of one flush: one EVALSHA of the flush script (FLUSH_LUA below, loaded with SCRIPT
 * LOAD on every new connection), RESP-encoded by this file into reusable buffers and handed to
 * hiredis in one redisAppendFormattedCommand call, so encoding allocates nothing per counter
 * and every argument carries an explicit length — fields may hold any bytes:
 *
 *   EVALSHA <sha> <nkeys> <offsets> <wm> <meta> <counter and snapshot keys...>
 *           <nh> (how many of the keys are hashes) <np> np x (<topic>/<part> <expected> <next> <wm>)
 *           seq:<id> <seq> <stages> <rules_sha256> <updated_ms> <version> <prev seq>
 *           <nc> nc x (<key index> <field> <delta>)   one per non-zero counter
 *           <ne> <ttl> ne x <key index>              minute keys to EXPIRE
 *           <ns> ns x (<key index> <snapshot bytes>)  partition snapshots
 *   -- one round trip; then, only when the script returned a number:
 *   PUBLISH <p>:{J}:updates {"updated_ms":..,"seq":..,"instance":"..","commands":..}
 *
 * The script is the fence: before writing anything it compares, for every partition of the
 * flush that asks for it, the offset Redis holds with the one the writer expects (the one its
 * previous flush wrote, or none). One mismatch and nothing is written: it returns the error
 * "FENCED <topic>/<part>=<offset in Redis> ...". A writer that lost a partition (a zombie
 * after a rebalance or a long pause), or a Redis that lost acknowledged writes (AOF everysec,
 * a restart without persistence), is detected on its next flush, and that flush applies
 * nothing. Rejected: MULTI/EXEC with WATCH on the offsets hash (a round trip more per flush,
 * and WATCH aborts on any write to the hash, including other instances' partitions).
 *
 * Outcome bookkeeping (the only subtle part):
 *  - From the moment the first byte of a flush may have left this process until the script's
 *    reply is read, the outcome of that seq is "unknown" (s->unknown_seq). A write error, a
 *    timeout, or EOF in that window leaves it unknown. Known outcomes clear it: a number
 *    (applied), FENCED or NOSCRIPT (nothing executed).
 *  - The next cs_sink_flush of the same seq first fences the connection that carried the lost
 *    flush (CLIENT KILL ID, if the server is still the same run — INFO run_id), because
 *    a stalled server may still hold the command in that socket's buffer and execute it
 *    later; then reads meta seq:<id>. Equal to seq: applied, done. Otherwise: write it.
 *  - A counter command can fail inside the script (e.g. WRONGTYPE: someone else wrote that
 *    key). Redis has no rollback, so the script runs every other command (redis.pcall) and
 *    returns the first error; like a partly applied MULTI/EXEC, that flush returns -1 and
 *    stays "unknown", so its retry resolves through the seq check instead of applying the rest
 *    a second time.
 */
#include "sink.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "clickstage.h"
#include "log.h"
#include "redis.h"
#include "rkeys.h"

/* ---- growable byte buffer ---------------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int oom; /* sticky: a reservation failed; the content is incomplete */
} sbuf;

static int sb_reserve(sbuf *b, size_t extra)
{
    if (b->oom)
        return -1;
    if (b->len + extra <= b->cap)
        return 0;
    size_t ncap = b->cap ? b->cap : 4096;
    while (ncap < b->len + extra)
        ncap *= 2;
    char *np = realloc(b->p, ncap);
    if (!np) {
        b->oom = 1;
        return -1;
    }
    b->p = np;
    b->cap = ncap;
    return 0;
}

static void sb_put(sbuf *b, const void *p, size_t n)
{
    if (n == 0 || sb_reserve(b, n) < 0)
        return;
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void sb_reset(sbuf *b)
{
    b->len = 0;
    b->oom = 0;
}

static void sb_free(sbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* Decimal text of v into d (at least 21 bytes); returns the length. */
static size_t fmt_u64(char *d, uint64_t v)
{
    char t[20];
    size_t n = 0;
    do {
        t[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        d[i] = t[n - 1 - i];
    return n;
}

static size_t fmt_i64(char *d, int64_t v)
{
    if (v < 0) {
        d[0] = '-';
        return 1 + fmt_u64(d + 1, (uint64_t)0 - (uint64_t)v);
    }
    return fmt_u64(d, (uint64_t)v);
}

/* ---- RESP encoding ----------------------------------------------------------------------- */

static void resp_head(sbuf *b, char type, size_t n)
{
    char t[24];
    t[0] = type;
    size_t l = 1 + fmt_u64(t + 1, n);
    t[l++] = '\r';
    t[l++] = '\n';
    sb_put(b, t, l);
}

/* One bulk string made of up to three pieces (NULL pieces are skipped). */
static void resp_bulk3(sbuf *b, const char *a, size_t al, const char *c, size_t cl, const char *d,
                       size_t dl)
{
    resp_head(b, '$', al + cl + dl);
    if (sb_reserve(b, al + cl + dl + 2) < 0)
        return;
    if (al)
        memcpy(b->p + b->len, a, al), b->len += al;
    if (cl)
        memcpy(b->p + b->len, c, cl), b->len += cl;
    if (dl)
        memcpy(b->p + b->len, d, dl), b->len += dl;
    b->p[b->len++] = '\r';
    b->p[b->len++] = '\n';
}

static void resp_bulk(sbuf *b, const char *s, size_t n)
{
    resp_bulk3(b, s, n, NULL, 0, NULL, 0);
}

static void resp_str(sbuf *b, const char *s)
{
    resp_bulk(b, s, strlen(s));
}

static void resp_i64(sbuf *b, int64_t v)
{
    char t[24];
    resp_bulk(b, t, fmt_i64(t, v));
}

static void resp_u64(sbuf *b, uint64_t v)
{
    char t[24];
    resp_bulk(b, t, fmt_u64(t, v));
}

/* ---- the flush script -------------------------------------------------------------------- */

/* KEYS[1] offsets, KEYS[2] wm, KEYS[3] meta, KEYS[4..] counter, minute and snapshot keys
 * (passed as KEYS so Redis Cluster routes the script: every key carries the {J} hash tag).
 * ARGV as in the comment at the top of this file, after ARGV[1] = how many of the KEYS are
 * hashes (the rest are snapshot strings). Returns the number of partitions written, or, having
 * written nothing, the error "FENCED <field>=<offset in Redis, empty if none> ...",
 * "WRONGTYPE <key> holds a <type> ..." or "NOPERM the user may not run ...".
 *
 * Before writing anything it checks the type of every key it writes: a key of another type
 * (another client writing under the prefix) would make the flush land partly, with no way to
 * tell which of its counts are in Redis (issue 20). One TYPE per key, a few dozen per flush.
 * On Redis 7 it also asks the ACL (redis.acl_check_cmd) whether the user may run each write
 * on each key: an ACL that allows some of them (e.g. -hincrby, or key patterns that cover only
 * some keys) would otherwise let the offsets and the sequence number land without the counts,
 * and the retry would take the flush as applied. Refused: "NOPERM the user may not run <command>
 * <key>; nothing ...". A denied read (HMGET, TYPE) stops the script before any write.
 *
 * The fence also compares meta seq:<id> with the sequence number of this writer's previous
 * applied flush (<prev seq>, "*" = no check), once the key types are known good: a flush that
 * moved no offset (expiry deltas, a heartbeat) and was lost in a failover leaves every offset
 * as expected, and only its seq shows the loss ("FENCED seq:<id>=<held>"). */
#define FLUSH_BODY                                                                             \
    "local nh = tonumber(ARGV[1])\n"                                                           \
    "local np = tonumber(ARGV[2])\n"                                                           \
    "local a = 3\n"                                                                            \
    "local chk, want = {}, {}\n"                                                               \
    "for i = 0, np - 1 do\n"                                                                   \
    "  local e = ARGV[a + i * 4 + 1]\n"                                                        \
    "  if e ~= '*' then chk[#chk + 1] = ARGV[a + i * 4]; want[#want + 1] = e end\n"            \
    "end\n"                                                                                    \
    "local bad = {}\n"                                                                         \
    "if #chk > 0 then\n"                                                                       \
    "  local cur = redis.call('HMGET', KEYS[1], unpack(chk))\n"                                \
    "  for i = 1, #chk do\n"                                                                   \
    "    local h = cur[i] or ''\n"                                                             \
    "    if h ~= want[i] then bad[#bad + 1] = chk[i] .. '=' .. h end\n"                        \
    "  end\n"                                                                                  \
    "end\n"                                                                                    \
    "if #bad > 0 then return redis.error_reply('FENCED ' .. table.concat(bad, ' ')) end\n"     \
    "for i = 1, #KEYS do\n"                                                                    \
    "  local t = redis.call('TYPE', KEYS[i])['ok']\n"                                          \
    "  local w = i <= nh and 'hash' or 'string'\n"                                             \
    "  if t ~= 'none' and t ~= w then return redis.error_reply('WRONGTYPE ' .. KEYS[i] ..\n"   \
    "    ' holds a ' .. t .. ', not a ' .. w .. ': another client writes under this prefix;'\n"\
    "    .. ' nothing of this flush was written') end\n"                                      \
    "end\n"                                                                                    \
    "local m = a + np * 4\n"                                                                   \
    "if ARGV[m + 6] ~= '*' then\n"                                                             \
    "  local h = redis.call('HGET', KEYS[3], ARGV[m]) or ''\n"                                 \
    "  if h ~= ARGV[m + 6] then\n"                                                             \
    "    return redis.error_reply('FENCED ' .. ARGV[m] .. '=' .. h)\n"                         \
    "  end\n"                                                                                  \
    "end\n"                                                                                    \
    "if redis.acl_check_cmd then\n"                                                            \
    "  local deny, seen = nil, {}\n"                                                           \
    "  local function may(c, k, ...)\n"                                                        \
    "    if not deny and not seen[c .. k] then\n"                                              \
    "      seen[c .. k] = true\n"                                                              \
    "      if not redis.acl_check_cmd(c, k, ...) then deny = c .. ' ' .. k end\n"              \
    "    end\n"                                                                                \
    "  end\n"                                                                                  \
    "  if np > 0 then may('HSET', KEYS[1], 'f', 'v'); may('HSET', KEYS[2], 'f', 'v') end\n"    \
    "  may('HSET', KEYS[3], 'f', 'v')\n"                                                       \
    "  local b = a + np * 4 + 7\n"                                                             \
    "  local n = tonumber(ARGV[b]); b = b + 1\n"                                               \
    "  for i = 1, n do may('HINCRBY', KEYS[tonumber(ARGV[b])], 'f', '1'); b = b + 3 end\n"     \
    "  n = tonumber(ARGV[b]); b = b + 2\n"                                                     \
    "  for i = 1, n do may('EXPIRE', KEYS[tonumber(ARGV[b])], '1'); b = b + 1 end\n"           \
    "  n = tonumber(ARGV[b]); b = b + 1\n"                                                     \
    "  for i = 1, n do may('SET', KEYS[tonumber(ARGV[b])], 'v'); b = b + 2 end\n"              \
    "  if deny then return redis.error_reply('NOPERM the user may not run ' .. deny ..\n"      \
    "    '; nothing of this flush was written') end\n"                                        \
    "end\n"                                                                                    \
    "if np > 0 then\n"                                                                         \
    "  local off, wm = {}, {}\n"                                                               \
    "  for i = 0, np - 1 do\n"                                                                 \
    "    local b = a + i * 4\n"                                                                \
    "    off[#off + 1] = ARGV[b]; off[#off + 1] = ARGV[b + 2]\n"                               \
    "    wm[#wm + 1] = ARGV[b]; wm[#wm + 1] = ARGV[b + 3]\n"                                   \
    "  end\n"                                                                                  \
    "  redis.call('HSET', KEYS[1], unpack(off))\n"                                             \
    "  redis.call('HSET', KEYS[2], unpack(wm))\n"                                              \
    "end\n"                                                                                    \
    "a = a + np * 4\n"                                                                         \
    "redis.call('HSET', KEYS[3], ARGV[a], ARGV[a + 1], 'stages', ARGV[a + 2],"                 \
    " 'rules_sha256', ARGV[a + 3], 'updated_ms', ARGV[a + 4], 'version', ARGV[a + 5])\n"       \
    "a = a + 7\n"                                                                              \
    "local first\n"                                                                            \
    "local nc = tonumber(ARGV[a]); a = a + 1\n"                                                \
    "for i = 1, nc do\n"                                                                       \
    "  local r = redis.pcall('HINCRBY', KEYS[tonumber(ARGV[a])], ARGV[a + 1], ARGV[a + 2])\n"  \
    "  if type(r) == 'table' and r.err and not first then first = r.err end\n"                \
    "  a = a + 3\n"                                                                            \
    "end\n"                                                                                    \
    "local ne = tonumber(ARGV[a]); local ttl = ARGV[a + 1]; a = a + 2\n"                       \
    "for i = 1, ne do redis.pcall('EXPIRE', KEYS[tonumber(ARGV[a])], ttl); a = a + 1 end\n"    \
    "local ns = tonumber(ARGV[a]); a = a + 1\n"                                                \
    "for i = 1, ns do redis.call('SET', KEYS[tonumber(ARGV[a])], ARGV[a + 1]); a = a + 2 end\n"\
    "if first then return redis.error_reply('PARTIAL ' .. first) end\n"                       \
    "return np\n"

/* Redis 7 loads it as a flagged script ("#!lua", no flags): Redis then refuses it whole, before
 * its first command, when it is out of memory (OOM) or a read-only replica (READONLY), where an
 * unflagged script would be refused at whichever write first meets the condition, having run
 * the writes before it. Redis 6 does not know the shebang: the sink falls back to the body
 * alone (and says so once). */
#define FLUSH_LUA "#!lua\n" FLUSH_BODY

/* ---- the sink ---------------------------------------------------------------------------- */

enum { LINK_UNKNOWN = 0, LINK_UP, LINK_DOWN };

#define RUN_ID_MAX 64

struct cs_sink {
    /* configuration (owned copies) */
    char *prefix, *instance_id;
    int connect_timeout_ms, command_timeout_ms, backoff_min_ms, backoff_max_ms;
    int64_t minute_ttl_s;
    int quiet;
    int wait_replicas, wait_timeout_ms;
    /* the last flush this sink knows applied (its seq; 0 none) and its journey: the next
     * fenced flush of that journey expects Redis to hold that seq */
    uint64_t last_seq;
    char last_journey[CS_RKEYS_MAX];
    int wait_logged; /* the WAIT shortfall was logged (until a WAIT is answered in full) */
    int ask_logged;  /* ASK was logged (until the migration ends with a MOVED) */

    /* the connection (pipeline/redis.h); s->c mirrors its live context, NULL when closed */
    cs_redis *r;
    redisContext *c;
    uint64_t gen; /* cs_redis_generation() of the connection c is (the handshake ran on it) */
    const char *where; /* "host:port" or "unix:/path", for messages (never the password) */
    long long client_id;     /* CLIENT ID of c; 0 unknown */
    char run_id[RUN_ID_MAX]; /* INFO run_id of the server c talks to; "" unknown */
    int ever_connected;

    /* link state, for logging once per change */
    int link;
    int64_t down_since_mono;

    /* backoff: delay of the current failure streak, anchored at the next cs_sink_ready() */
    unsigned fails;
    int64_t backoff_delay_ms;
    int anchor_pending;
    int64_t backoff_until;

    /* a transaction whose outcome is unknown: its seq (0 none), and the connection that
     * carried it (client id + server run id), to fence before checking */
    uint64_t unknown_seq;
    long long unknown_client;
    char unknown_run[RUN_ID_MAX];

    int fault; /* CS_SINK_FAULT_*, one shot */
    uint64_t fence_prev; /* <prev seq> of the flush being written (0: "*") */

    int legacy_script; /* Redis < 7: the flush script loaded without its "#!lua" line */

    /* Refusals (issue 20): the failure streak being reported, by class (pipeline/redis.h:
     * an error reply's class, or CS_REDIS_UNREACHABLE for no reply). Its first failure is
     * logged with Redis's text, a summary every REFUSAL_SUMMARY_MS while it lasts, one line when
     * it clears. */
    int ref_class;             /* CS_REDIS_OK: none */
    char ref_text[256];
    int64_t ref_since_mono, ref_since_wall, ref_summary_mono;
    uint64_t ref_count;
    int fence_kind; /* CS_FENCE_* of the last flush */
    char sha[41]; /* SHA1 of FLUSH_LUA as loaded on this connection; "" = not loaded */

    /* reusable buffers */
    sbuf out;   /* RESP of the commands being built */
    sbuf kp;    /* "<prefix>:{<journey>}:" of the current flush (pipeline/rkeys.h) */
    sbuf last;  /* hash suffix of the previous counter (to reuse its encoded key) */
    sbuf mins;  /* minute suffixes touched in this flush, NUL-separated */
    sbuf tmp;   /* scratch: JSON of the publish */
    sbuf keys;  /* RESP bulks of the script's KEYS[4..] */
    sbuf cargs; /* RESP bulks of the counter triples */
    sbuf eargs; /* RESP bulks of the minute keys' indexes to EXPIRE */
    sbuf fence; /* the FENCED detail of the last flush ("" none) */
    size_t nkeys, ncounters, nexpire;
    size_t last_key_off, last_key_len; /* encoded key bulk of `last` inside out */
    size_t nmins;
    size_t ncmds; /* commands encoded in out */

    cs_sink_stats st;
};

/* The one logger, unless this sink was made quiet (a second connection to the same Redis). */
#define SLOG(s, level, ...)                                                                     \
    do {                                                                                        \
        if (!(s)->quiet)                                                                        \
            CS_LOG(level, __VA_ARGS__);                                                         \
    } while (0)

/* ---- SIGPIPE guard: pipeline/redis.h's, around each public call ---- */
typedef cs_pipe_guard pipe_guard;
#define guard_on cs_pipe_guard_on
#define guard_off cs_pipe_guard_off

/* ---- construction ------------------------------------------------------------------------ */

static int defint(int v, int d)
{
    return v > 0 ? v : d;
}

cs_sink *cs_sink_new(const cs_sink_conf *conf, char *errstr, size_t errlen)
{
    cs_sink_conf zero;
    if (!conf) {
        memset(&zero, 0, sizeof zero);
        conf = &zero;
    }
    cs_sink *s = calloc(1, sizeof *s);
    if (!s) {
        cs_seterr(errstr, errlen, "out of memory");
        return NULL;
    }
    cs_redis_opts ro = {conf->url, defint(conf->connect_timeout_ms, 2000),
                        defint(conf->command_timeout_ms, 5000)};
    if (!(s->r = cs_redis_new(&ro, errstr, errlen))) {
        cs_sink_destroy(s);
        return NULL;
    }
    s->where = cs_redis_where(s->r);
    char host[256];
    const char *inst = conf->instance_id;
    if (!inst || !*inst) {
        if (gethostname(host, sizeof host) != 0 || !host[0])
            snprintf(host, sizeof host, "localhost");
        host[sizeof host - 1] = 0;
        inst = host;
    }
    s->prefix = strdup(conf->prefix && *conf->prefix ? conf->prefix : "clickstage");
    s->instance_id = strdup(inst);
    if (!s->prefix || !s->instance_id) {
        cs_seterr(errstr, errlen, "out of memory");
        cs_sink_destroy(s);
        return NULL;
    }
    s->connect_timeout_ms = defint(conf->connect_timeout_ms, 2000);
    s->command_timeout_ms = defint(conf->command_timeout_ms, 5000);
    s->backoff_min_ms = defint(conf->backoff_min_ms, 100);
    s->backoff_max_ms = defint(conf->backoff_max_ms, 5000);
    if (s->backoff_max_ms < s->backoff_min_ms)
        s->backoff_max_ms = s->backoff_min_ms;
    s->minute_ttl_s = conf->minute_ttl_s > 0 ? conf->minute_ttl_s : 172800;
    s->quiet = conf->quiet;
    s->wait_replicas = conf->wait_replicas > 0 ? conf->wait_replicas : 0;
    s->wait_timeout_ms = defint(conf->wait_timeout_ms, 100);
    s->st.last_wait_replicas = -1;
    return s;
}

static void close_ctx(cs_sink *s)
{
    if (s->r)
        cs_redis_close(s->r);
    s->c = NULL;
    s->client_id = 0;
    s->run_id[0] = 0;
    s->sha[0] = 0;
}

void cs_sink_destroy(cs_sink *s)
{
    if (!s)
        return;
    close_ctx(s);
    cs_redis_free(s->r);
    free(s->prefix);
    free(s->instance_id);
    sb_free(&s->out);
    sb_free(&s->kp);
    sb_free(&s->last);
    sb_free(&s->mins);
    sb_free(&s->tmp);
    sb_free(&s->keys);
    sb_free(&s->cargs);
    sb_free(&s->eargs);
    sb_free(&s->fence);
    free(s);
}

void cs_sink_test_fault(cs_sink *s, int fault)
{
    s->fault = fault;
}

/* ---- failure handling -------------------------------------------------------------------- */

static void backoff_step(cs_sink *s)
{
    s->fails++;
    int64_t d = s->backoff_min_ms;
    for (unsigned i = 1; i < s->fails && d < s->backoff_max_ms; i++)
        d *= 2;
    if (d > s->backoff_max_ms)
        d = s->backoff_max_ms;
    s->backoff_delay_ms = d;
    s->anchor_pending = 1;
}

static void success(cs_sink *s)
{
    s->fails = 0;
    s->anchor_pending = 0;
}

static void refusal_cleared(cs_sink *s);
static void note_refusal(cs_sink *s, int c, const char *text, uint64_t seq);

/* The connection failed: close it, back off. cls says how: CS_REDIS_UNREACHABLE (connect, I/O,
 * timeout, EOF: logs the transition to "down" once) or the class of an error reply Redis gave
 * to the handshake (AUTH, a LOADING or NOPERM SCRIPT LOAD, ...: Redis is up and refuses, logged
 * as a refusal). errstr gets the message. Returns -1. */
static int vfail_conn(cs_sink *s, int cls, char *err, size_t errlen, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    close_ctx(s);
    backoff_step(s);
    if (cls == CS_REDIS_UNREACHABLE) {
        if (s->link != LINK_DOWN) {
            s->link = LINK_DOWN;
            s->down_since_mono = cs_mono_ms();
            SLOG(s, CS_LOG_WARN, "redis unreachable: %s", msg);
        }
    } else {
        if (s->link == LINK_DOWN)
            SLOG(s, CS_LOG_INFO, "redis reachable again after %" PRId64 " ms",
                 cs_mono_ms() - s->down_since_mono);
        s->link = LINK_UP; /* it answered */
    }
    note_refusal(s, cls, msg, 0);
    cs_seterr(err, errlen, "%s", msg);
    return -1;
}

__attribute__((format(printf, 5, 6))) static int fail_conn(cs_sink *s, int cls, char *err,
                                                           size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vfail_conn(s, cls, err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

/* No answer (connect, I/O, timeout, EOF). */
__attribute__((format(printf, 4, 5))) static int fail_link(cs_sink *s, char *err, size_t errlen,
                                                           const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vfail_conn(s, CS_REDIS_UNREACHABLE, err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

/* ---- refusals (issue 20) ----------------------------------------------------------------- */

#define REFUSAL_SUMMARY_MS 30000

static int refusal_level(int c)
{
    switch (c) {
    case CS_REDIS_BUSY:
    case CS_REDIS_LOADING:
    case CS_REDIS_NOSCRIPT:
    case CS_REDIS_MOVED:
    case CS_REDIS_ASK:
    case CS_REDIS_CLUSTERDOWN:
    case CS_REDIS_UNREACHABLE: return CS_LOG_WARN; /* passing states */
    default: return CS_LOG_ERROR; /* someone has to act */
    }
}

/* A failure of class c (text: Redis's error, or the link error; never a secret). */
static void note_refusal(cs_sink *s, int c, const char *text, uint64_t seq)
{
    int64_t now = cs_mono_ms();
    s->st.errors[c]++;
    if (c != s->ref_class) {
        s->ref_class = c;
        snprintf(s->ref_text, sizeof s->ref_text, "%s", text);
        s->ref_since_mono = s->ref_summary_mono = now;
        s->ref_since_wall = cs_wall_ms();
        s->ref_count = 1;
        if (c != CS_REDIS_UNREACHABLE) /* that one is logged as "redis unreachable" */
            SLOG(s, refusal_level(c),
                 "redis refuses %s%.0" PRIu64 " (%s): %s: %s; the flush is kept unchanged and "
                 "retried with backoff, nothing is lost; consumption pauses if it lasts "
                 "(redis_outage_pause)",
                 seq ? "flush " : "a request", seq, cs_redis_class_name(c), cs_redis_class_meaning(c),
                 text);
        return;
    }
    s->ref_count++;
    if (now - s->ref_summary_mono >= REFUSAL_SUMMARY_MS) {
        s->ref_summary_mono = now;
        SLOG(s, refusal_level(c), "redis still %s (%s) after %.1f s: %" PRIu64
             " failed attempts since the first (%s)",
             c == CS_REDIS_UNREACHABLE ? "unreachable" : "refuses writes",
             cs_redis_class_name(c), (double)(now - s->ref_since_mono) / 1000.0, s->ref_count,
             s->ref_text);
    }
}

/* A request succeeded: a streak of refusals ends. */
static void refusal_cleared(cs_sink *s)
{
    if (s->ref_class == CS_REDIS_OK)
        return;
    if (s->ref_class != CS_REDIS_UNREACHABLE) /* "redis reachable again" says it */
        SLOG(s, CS_LOG_INFO, "redis accepts writes again after %.1f s (%s: %" PRIu64
             " failed attempts)",
             (double)(cs_mono_ms() - s->ref_since_mono) / 1000.0,
             cs_redis_class_name(s->ref_class), s->ref_count);
    s->ref_class = CS_REDIS_OK;
    s->ref_text[0] = 0;
}

/* Redis answered, but with an error (WRONGTYPE, NOPERM, ...): the link is fine but the
 * operation failed. Close (resets any transaction state), back off. Returns -1. */
static int fail_reply(cs_sink *s, char *err, size_t errlen, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    close_ctx(s);
    backoff_step(s);
    cs_seterr(err, errlen, "%s", msg);
    return -1;
}

/* hiredis' message for an I/O error, with a timeout called a timeout. */
static const char *io_err(cs_sink *s, char *buf, size_t n)
{
    return s->c ? cs_redis_io_error(s->r, buf, n) : "connection closed";
}

int cs_sink_ready(cs_sink *s, int64_t now_ms)
{
    if (s->fails == 0)
        return 1;
    if (s->anchor_pending) {
        s->backoff_until = now_ms + s->backoff_delay_ms;
        s->anchor_pending = 0;
    }
    return now_ms >= s->backoff_until;
}

void cs_sink_stats_get(const cs_sink *s, cs_sink_stats *st)
{
    *st = s->st;
    /* reachable: the last attempt got an answer (an error reply is an answer: Redis is up) */
    st->connected = s->link == LINK_UP;
    st->refusal = s->ref_class;
    snprintf(st->refusal_text, sizeof st->refusal_text, "%s", s->ref_text);
    st->refusal_since_ms = s->ref_class ? s->ref_since_wall : 0;
}

/* ---- connection -------------------------------------------------------------------------- */

/* Hands out[] to hiredis and counts its commands. -1 on out of memory. */
static int send_out(cs_sink *s, size_t len, size_t ncmds)
{
    if (s->out.oom || redisAppendFormattedCommand(s->c, s->out.p, len) != REDIS_OK)
        return -1;
    s->st.commands += ncmds;
    return 0;
}

static void parse_run_id(cs_sink *s, const redisReply *r)
{
    s->run_id[0] = 0;
    if (r->type != REDIS_REPLY_STRING || !r->str)
        return;
    const char *p = strstr(r->str, "run_id:");
    if (!p)
        return;
    p += 7;
    size_t n = strcspn(p, "\r\n");
    if (n >= sizeof s->run_id)
        n = sizeof s->run_id - 1;
    memcpy(s->run_id, p, n);
    s->run_id[n] = 0;
}

/* Connects if not connected: the connection with AUTH and SELECT (pipeline/redis.h), then one
 * pipelined round trip of CLIENT ID, INFO server and SCRIPT LOAD of the flush script. 0 ok; -1
 * (link failure, errstr set). */
static int ensure_connected(cs_sink *s, char *err, size_t errlen);

/* After falling back to the flagless script: a fresh connection loads it. */
static int ensure_connected_again(cs_sink *s, char *err, size_t errlen)
{
    close_ctx(s);
    return ensure_connected(s, err, errlen);
}

static int ensure_connected(cs_sink *s, char *err, size_t errlen)
{
    if (s->c && s->c == cs_redis_ctx(s->r) && s->gen == cs_redis_generation(s->r))
        return 0;
    if (s->c) /* the layer closed it (re-routed to another cluster node) */
        close_ctx(s);
    char why[512];
    if (cs_redis_connect(s->r, why, sizeof why) < 0)
        return fail_conn(s, cs_redis_connect_failure(s->r), err, errlen, "%s", why);
    s->c = cs_redis_ctx(s->r);
    s->gen = cs_redis_generation(s->r);
    const cs_redis_target *t = cs_redis_target_of(s->r);
    s->st.commands += (t->password[0] ? 1 : 0) + (t->db ? 1 : 0); /* AUTH, SELECT */

    sb_reset(&s->out);
    size_t n = 0;
    resp_head(&s->out, '*', 2);
    resp_str(&s->out, "CLIENT");
    resp_str(&s->out, "ID");
    int i_id = (int)n++;
    resp_head(&s->out, '*', 2);
    resp_str(&s->out, "INFO");
    resp_str(&s->out, "server");
    int i_info = (int)n++;
    resp_head(&s->out, '*', 3);
    resp_str(&s->out, "SCRIPT");
    resp_str(&s->out, "LOAD");
    resp_str(&s->out, s->legacy_script ? FLUSH_BODY : FLUSH_LUA);
    int i_script = (int)n++;
    if (send_out(s, s->out.len, n) < 0)
        return fail_link(s, err, errlen, "connect %s: out of memory", s->where);

    char ebuf[256] = "";
    int bad = 0; /* 3 NOAUTH, 4 SCRIPT LOAD failed */
    for (int i = 0; i < (int)n; i++) {
        redisReply *r = NULL;
        if (redisGetReply(s->c, (void **)&r) != REDIS_OK) {
            char b[160];
            return fail_link(s, err, errlen, "%s: %s", s->where, io_err(s, b, sizeof b));
        }
        if (i == i_id) {
            s->client_id = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
            if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOAUTH", 6) == 0 && !bad) {
                snprintf(ebuf, sizeof ebuf, "%s", r->str);
                bad = 3; /* a password is needed and the URL has none */
            }
        } else if (i == i_info) {
            parse_run_id(s, r);
        } else if (i == i_script) {
            if (r->type == REDIS_REPLY_STRING && r->len == 40)
                memcpy(s->sha, r->str, 41);
            else if (!bad)
                snprintf(ebuf, sizeof ebuf, "%s", r->type == REDIS_REPLY_ERROR ? r->str : "?"),
                    bad = 4;
        }
        freeReplyObject(r);
    }
    if (bad == 3)
        return fail_conn(s, CS_REDIS_AUTH, err, errlen, "%s: %s", s->where, ebuf);
    if (bad == 4 && !s->legacy_script && strstr(ebuf, "compil")) {
        /* Redis 6 knows no "#!lua" flags line: the body alone, next connection */
        s->legacy_script = 1;
        SLOG(s, CS_LOG_WARN, "%s: Redis older than 7 (%s): the flush script runs without "
             "flags, so Redis running out of memory or turning read-only in the middle of a "
             "flush can leave it partly written (docs/redis.md)", s->where, ebuf);
        return ensure_connected_again(s, err, errlen);
    }
    if (bad == 4)
        return fail_conn(s, cs_redis_class_of(ebuf, strlen(ebuf)), err, errlen,
                         "%s: SCRIPT LOAD of the flush script failed: %s", s->where, ebuf);

    if (s->link == LINK_DOWN)
        SLOG(s, CS_LOG_INFO, "redis reachable again after %" PRId64 " ms",
             cs_mono_ms() - s->down_since_mono);
    s->link = LINK_UP;
    if (s->ref_class == CS_REDIS_UNREACHABLE)
        refusal_cleared(s); /* a refusal at connect (AUTH, LOADING...) clears with a flush */
    if (s->ever_connected)
        s->st.reconnects++;
    s->ever_connected = 1;
    return 0;
}

/* Reads one reply; on I/O failure handles it as a link failure (-1). */
static int get_reply(cs_sink *s, redisReply **r, char *err, size_t errlen, const char *what)
{
    *r = NULL;
    if (redisGetReply(s->c, (void **)r) != REDIS_OK || !*r) {
        char b[160];
        return fail_link(s, err, errlen, "%s %s: %s", s->where, what, io_err(s, b, sizeof b));
    }
    return 0;
}

/* "<prefix>:{<journey>}:" into s->kp (pipeline/rkeys.h builds it). */
static void build_kp(cs_sink *s, const char *journey)
{
    cs_rkeys k;
    sb_reset(&s->kp);
    if (cs_rkeys_init(&k, s->prefix, journey) == 0)
        sb_put(&s->kp, k.base, k.len);
    else
        s->kp.oom = 1; /* too long: the flush fails to build, with an error */
}

static void resp_key(cs_sink *s, const char *suffix)
{
    resp_bulk3(&s->out, s->kp.p, s->kp.len, suffix, strlen(suffix), NULL, 0);
}

/* ---- Redis Cluster / Sentinel: where to send, and sending again (pipeline/redis.h) ---------- */

#define REDIRECTED 2 /* internal: the request must be sent again where the layer now points */
#define NOT_NOW 3    /* internal: TRYAGAIN / CLUSTERDOWN: nothing ran; again after a short wait */

/* The journey's slot decides the node (in a cluster; a no-op otherwise). */
static void route(cs_sink *s, const char *journey)
{
    build_kp(s, journey);
    if (!s->kp.oom)
        cs_redis_route(s->r, s->kp.p, s->kp.len);
}

/* An error reply to a request of the journey's slot: REDIRECTED when the layer re-routed (MOVED,
 * ASK, a demoted sentinel master: nothing was executed; the connection, if the layer closed it,
 * is dropped here too); NOT_NOW for TRYAGAIN / CLUSTERDOWN when the caller asks (later_ms: the
 * layer's wait, 10 ms doubling to 500 ms), else 0 as for any answer. */
static int redirected(cs_sink *s, const redisReply *r, int *later_ms)
{
    if (r->type != REDIS_REPLY_ERROR)
        return 0;
    int delay;
    int act = cs_redis_redirect(s->r, r->str, (size_t)r->len, &delay);
    if (act == CS_REDIS_RESEND_LATER && later_ms) {
        if (s->c && s->c != cs_redis_ctx(s->r))
            close_ctx(s);
        *later_ms = delay;
        return NOT_NOW;
    }
    if (act != CS_REDIS_RESEND && act != CS_REDIS_RESEND_ASKING)
        return 0;
    s->st.redirects++;
    /* rare events (a failover, a resharding): logged, an ASK streak once */
    if (act == CS_REDIS_RESEND) {
        SLOG(s, CS_LOG_INFO, "%s answered %s: sending it again where the %s", s->where, r->str,
             cs_redis_is_cluster(s->r) ? "cluster map now says" : "sentinels now say");
        s->ask_logged = 0;
    } else if (!s->ask_logged) {
        SLOG(s, CS_LOG_INFO, "%s answered %s: the slot is being migrated; requests for keys "
             "already moved go to the importing node (ASKING) until it is done", s->where,
             r->str);
        s->ask_logged = 1;
    }
    if (s->c && s->c != cs_redis_ctx(s->r))
        close_ctx(s);
    return REDIRECTED;
}

/* After an ASK the layer's connection serves one request, preceded by ASKING: appends it (1) or
 * nothing (0). */
static int asking_begin(cs_sink *s)
{
    if (!cs_redis_asking(s->r))
        return 0;
    redisAppendCommand(s->c, "ASKING");
    s->st.commands++;
    return 1;
}

/* Reads ASKING's reply when asking_begin sent it. 0, -1 link failure. */
static int asking_reply(cs_sink *s, int asking, char *err, size_t errlen)
{
    redisReply *r;
    if (!asking)
        return 0;
    if (get_reply(s, &r, err, errlen, "ASKING") < 0)
        return -1;
    freeReplyObject(r);
    return 0;
}

/* That one request is done: the next one goes to the slot's owner again. */
static void asking_end(cs_sink *s, int asking)
{
    if (asking && s->c)
        close_ctx(s);
}

/* One HGET round trip of <prefix>:{journey}:<hash> field: 1 string (copied to val), 0 nil,
 * -1 failure. */
static int hget(cs_sink *s, const char *journey, const char *hash, const char *field,
                size_t fieldlen, char *val, size_t vallen, char *err, size_t errlen)
{
    route(s, journey);
    int hops = 0;
again:
    if (ensure_connected(s, err, errlen) < 0)
        return -1;
    build_kp(s, journey);
    sb_reset(&s->out);
    resp_head(&s->out, '*', 3);
    resp_str(&s->out, "HGET");
    resp_key(s, hash);
    resp_bulk(&s->out, field, fieldlen);
    int asking = asking_begin(s);
    if (send_out(s, s->out.len, 1) < 0)
        return fail_reply(s, err, errlen, "out of memory");
    redisReply *r;
    if (asking_reply(s, asking, err, errlen) < 0 || get_reply(s, &r, err, errlen, "HGET") < 0)
        return -1;
    asking_end(s, asking);
    int rc;
    if (hops < CS_REDIS_MAX_REDIRECTS && redirected(s, r, NULL)) {
        freeReplyObject(r);
        hops++;
        goto again;
    }
    if (r->type == REDIS_REPLY_NIL) {
        rc = 0;
    } else if (r->type == REDIS_REPLY_STRING) {
        snprintf(val, vallen, "%.*s", (int)r->len, r->str);
        rc = 1;
    } else {
        rc = fail_reply(s, err, errlen, "HGET %.*s%s: %s", (int)s->kp.len, s->kp.p, hash,
                        r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply type");
    }
    freeReplyObject(r);
    return rc;
}

#define tp_field cs_rk_tp_field

static int parse_i64(const char *v, int64_t *out)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end)
        return -1;
    *out = x;
    return 0;
}

int cs_sink_load_offset(cs_sink *s, const char *journey, const char *topic, int32_t partition,
                        int64_t *off, char *errstr, size_t errlen)
{
    pipe_guard g;
    guard_on(&g);
    char field[512], val[64];
    int fl = (int)cs_rk_tp_field(field, sizeof field, topic, partition);
    int rc;
    if (fl < 0 || (size_t)fl >= sizeof field) {
        cs_seterr(errstr, errlen, "topic name too long");
        rc = -1;
    } else {
        rc = hget(s, journey, CS_RK_OFFSETS, field, (size_t)fl, val, sizeof val, errstr, errlen);
        if (rc == 1 && parse_i64(val, off) < 0) {
            cs_seterr(errstr, errlen, "offsets %s: not an integer: '%s'", field, val);
            rc = -1;
        } else if (rc >= 0) {
            success(s);
        }
    }
    guard_off(&g);
    return rc;
}

int cs_sink_load_part(cs_sink *s, const char *journey, const char *topic, int32_t partition,
                      cs_part_saved *out, char *errstr, size_t errlen)
{
    memset(out, 0, sizeof *out);
    pipe_guard g;
    guard_on(&g);
    int rc = -1;
    char field[600];
    size_t fl = tp_field(field, sizeof field, topic, partition);
    redisReply *r[3] = {NULL, NULL, NULL};
    route(s, journey);
    int hops = 0, need[3] = {1, 1, 1};
again:
    if (ensure_connected(s, errstr, errlen) < 0)
        goto out;
    build_kp(s, journey);
    /* The three reads; after a redirection only those that were redirected are sent again (in a
     * slot being migrated some keys may have moved and others not), each after ASKING when the
     * layer says so (the flag lasts one command). */
    int asking = cs_redis_asking(s->r), nsent = 0;
    sb_reset(&s->out);
    for (int i = 0; i < 3; i++) {
        if (!need[i])
            continue;
        if (asking) {
            resp_head(&s->out, '*', 1);
            resp_str(&s->out, "ASKING");
        }
        resp_head(&s->out, '*', i < 2 ? 3 : 2);
        resp_str(&s->out, i < 2 ? "HGET" : "GET");
        if (i < 2) {
            resp_key(s, i == 0 ? CS_RK_OFFSETS : CS_RK_WM);
            resp_bulk(&s->out, field, fl);
        } else {
            resp_bulk3(&s->out, s->kp.p, s->kp.len, CS_RK_SNAP, strlen(CS_RK_SNAP), field, fl);
        }
        nsent++;
    }
    if (send_out(s, s->out.len, (size_t)(asking ? 2 * nsent : nsent)) < 0) {
        fail_reply(s, errstr, errlen, "out of memory");
        goto out;
    }
    for (int i = 0; i < 3; i++) {
        if (need[i] && (asking_reply(s, asking, errstr, errlen) < 0 ||
                        get_reply(s, &r[i], errstr, errlen, "loading partition state") < 0))
            goto out;
    }
    asking_end(s, asking);
    int redir = 0;
    for (int i = 0; i < 3; i++) {
        int was = need[i];
        need[i] = 0;
        if (!was || r[i]->type != REDIS_REPLY_ERROR || hops >= CS_REDIS_MAX_REDIRECTS)
            continue;
        cs_redis_class k = cs_redis_class_of(r[i]->str, (size_t)r[i]->len);
        if (redir ? (k == CS_REDIS_MOVED || k == CS_REDIS_ASK || k == CS_REDIS_READONLY)
                  : redirected(s, r[i], NULL) != 0)
            redir = need[i] = 1;
        if (need[i]) {
            freeReplyObject(r[i]);
            r[i] = NULL;
        }
    }
    if (redir) {
        hops++;
        goto again;
    }
    for (int i = 0; i < 3; i++) {
        if (r[i]->type == REDIS_REPLY_NIL)
            continue;
        if (r[i]->type != REDIS_REPLY_STRING) {
            fail_reply(s, errstr, errlen, "loading %s: %s", field,
                       r[i]->type == REDIS_REPLY_ERROR ? r[i]->str : "unexpected reply type");
            goto out;
        }
    }
    if (r[0]->type == REDIS_REPLY_STRING) {
        if (parse_i64(r[0]->str, &out->offset) < 0 || out->offset < 0) {
            cs_seterr(errstr, errlen, "offsets %s: not an offset: '%.40s'", field, r[0]->str);
            goto out;
        }
        out->has_offset = 1;
    }
    if (r[1]->type == REDIS_REPLY_STRING) {
        if (parse_i64(r[1]->str, &out->wm) < 0) {
            cs_seterr(errstr, errlen, "wm %s: not a watermark: '%.40s'", field, r[1]->str);
            goto out;
        }
        out->has_wm = 1;
    }
    if (r[2]->type == REDIS_REPLY_STRING && r[2]->len > 0) {
        out->snap = malloc(r[2]->len);
        if (!out->snap) {
            cs_seterr(errstr, errlen, "out of memory loading the snapshot of %s", field);
            goto out;
        }
        memcpy(out->snap, r[2]->str, r[2]->len);
        out->snap_len = r[2]->len;
    }
    success(s);
    rc = 0;
out:
    for (int i = 0; i < 3; i++)
        if (r[i])
            freeReplyObject(r[i]);
    guard_off(&g);
    return rc;
}

int cs_sink_load_seq(cs_sink *s, const char *journey, uint64_t *seq, char *errstr, size_t errlen)
{
    pipe_guard g;
    guard_on(&g);
    char field[512], val[64];
    int fl = snprintf(field, sizeof field, "%s%s", CS_RK_META_SEQ, s->instance_id);
    int rc;
    int64_t v;
    if (fl < 0 || (size_t)fl >= sizeof field) {
        cs_seterr(errstr, errlen, "instance id too long");
        rc = -1;
    } else {
        rc = hget(s, journey, CS_RK_META, field, (size_t)fl, val, sizeof val, errstr, errlen);
        if (rc == 1 && (parse_i64(val, &v) < 0 || v < 0)) {
            cs_seterr(errstr, errlen, "meta %s: not a sequence number: '%s'", field, val);
            rc = -1;
        } else if (rc >= 0) {
            if (rc == 1)
                *seq = (uint64_t)v;
            success(s);
        }
    }
    guard_off(&g);
    return rc;
}

int cs_sink_forget_seq(cs_sink *s, const char *journey, char *errstr, size_t errlen)
{
    if (s->unknown_seq) {
        cs_seterr(errstr, errlen, "a flush's outcome is still unknown");
        return 1; /* its retry would read the field: keep it */
    }
    pipe_guard g;
    guard_on(&g);
    char field[512];
    int fl = snprintf(field, sizeof field, "%s%s", CS_RK_META_SEQ, s->instance_id);
    int rc = -1;
    redisReply *r;
    if (fl < 0 || (size_t)fl >= sizeof field) {
        cs_seterr(errstr, errlen, "instance id too long");
    } else if (ensure_connected(s, errstr, errlen) == 0) {
        build_kp(s, journey);
        sb_reset(&s->out);
        resp_head(&s->out, '*', 3);
        resp_str(&s->out, "HDEL");
        resp_key(s, CS_RK_META);
        resp_bulk(&s->out, field, (size_t)fl);
        if (send_out(s, s->out.len, 1) < 0) {
            fail_reply(s, errstr, errlen, "out of memory");
        } else if (get_reply(s, &r, errstr, errlen, "HDEL") == 0) {
            if (r->type == REDIS_REPLY_INTEGER) {
                rc = 0;
                success(s);
            } else {
                fail_reply(s, errstr, errlen, "HDEL %s: %s", field,
                           r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply type");
            }
            freeReplyObject(r);
        }
    }
    guard_off(&g);
    return rc;
}

int cs_sink_ping(cs_sink *s)
{
    pipe_guard g;
    guard_on(&g);
    int rc = -1;
    redisReply *r;
    if (ensure_connected(s, NULL, 0) == 0) {
        sb_reset(&s->out);
        resp_head(&s->out, '*', 1);
        resp_str(&s->out, "PING");
        if (send_out(s, s->out.len, 1) < 0) {
            fail_reply(s, NULL, 0, "out of memory");
        } else if (get_reply(s, &r, NULL, 0, "PING") == 0) {
            if (r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_STRING) {
                rc = 0;
                success(s);
            } else {
                fail_reply(s, NULL, 0, "PING: %s", r->type == REDIS_REPLY_ERROR ? r->str : "?");
            }
            freeReplyObject(r);
        }
    }
    guard_off(&g);
    return rc;
}

/* ---- flush ------------------------------------------------------------------------------- */

/* cs_agg_foreach callback: one counter triple (key index, field, delta). cs_agg_foreach emits
 * the counters of one hash contiguously, so a key is added to KEYS once per run of counters;
 * each minute key is remembered for its EXPIRE when it starts a run (were a hash not
 * contiguous, it would get a second KEYS entry and EXPIRE: more arguments, same effect). */
static void on_counter(void *op, const char *hash, const char *field, int64_t delta)
{
    cs_sink *s = op;
    size_t hl = strlen(hash);
    if (!(s->last_key_len && hl == s->last.len && memcmp(hash, s->last.p, hl) == 0)) {
        resp_bulk3(&s->keys, s->kp.p, s->kp.len, hash, hl, NULL, 0);
        s->nkeys++;
        s->last_key_len = 1;
        sb_reset(&s->last);
        sb_put(&s->last, hash, hl);
        if (s->last.oom)
            s->keys.oom = 1;
        if (strncmp(hash, "minute:", 7) == 0) {
            resp_u64(&s->eargs, 3 + s->nkeys);
            s->nexpire++;
        }
    }
    resp_u64(&s->cargs, 3 + s->nkeys);
    resp_bulk(&s->cargs, field, strlen(field));
    resp_i64(&s->cargs, delta);
    s->ncounters++;
}

/* Encodes the EVALSHA of f into s->out; s->ncmds = the Redis commands it runs (for stats).
 * -1 on out of memory or bad input. */
static int build_tx(cs_sink *s, const cs_flush *f, char *err, size_t errlen)
{
    sb_reset(&s->out);
    sb_reset(&s->keys);
    sb_reset(&s->cargs);
    sb_reset(&s->eargs);
    sb_reset(&s->last);
    s->last_key_len = 0;
    s->nkeys = s->ncounters = s->nexpire = 0;
    build_kp(s, cs_rules_journey(f->rs));

    if (f->agg)
        cs_agg_foreach(f->agg, f->rs, f->dicts, on_counter, s);
    size_t snap_key0 = 3 + s->nkeys + 1;
    char field[600];
    for (size_t i = 0; i < f->nsnaps; i++) {
        size_t fl = tp_field(field, sizeof field, f->snaps[i].topic, f->snaps[i].partition);
        resp_bulk3(&s->keys, s->kp.p, s->kp.len, CS_RK_SNAP, strlen(CS_RK_SNAP), field, fl);
        s->nkeys++;
    }
    size_t np = f->noffsets;
    size_t nargs = 2 + 4 * np + 7 + 1 + 3 * s->ncounters + 2 + s->nexpire + 1 + 2 * f->nsnaps;
    sbuf *o = &s->out;
    resp_head(o, '*', 3 + 3 + s->nkeys + nargs);
    resp_str(o, "EVALSHA");
    resp_str(o, s->sha);
    resp_u64(o, 3 + s->nkeys);
    resp_key(s, CS_RK_OFFSETS);
    resp_key(s, CS_RK_WM);
    resp_key(s, CS_RK_META);
    sb_put(o, s->keys.p, s->keys.len);

    resp_u64(o, snap_key0 - 1); /* KEYS[1 .. snap_key0 - 1] are hashes */
    resp_u64(o, np);
    for (size_t i = 0; i < np; i++) {
        const cs_flush_offset *x = &f->offsets[i];
        size_t fl = tp_field(field, sizeof field, x->topic, x->partition);
        resp_bulk(o, field, fl);
        if (!x->check)
            resp_str(o, "*");
        else if (x->expected < 0)
            resp_str(o, "");
        else
            resp_i64(o, x->expected);
        resp_i64(o, x->next_offset);
        resp_i64(o, x->applied_wm);
    }

    /* meta: seq:<id>, stages (comma list), rules_sha256, updated_ms, version */
    resp_bulk3(o, CS_RK_META_SEQ, strlen(CS_RK_META_SEQ), s->instance_id, strlen(s->instance_id), NULL, 0);
    resp_u64(o, f->seq);
    int ns = cs_rules_nstages(f->rs);
    size_t sl = 0;
    for (int i = 0; i < ns; i++)
        sl += strlen(cs_rules_stage_name(f->rs, i)) + (i ? 1 : 0);
    resp_head(o, '$', sl);
    for (int i = 0; i < ns; i++) {
        if (i)
            sb_put(o, ",", 1);
        const char *nm = cs_rules_stage_name(f->rs, i);
        sb_put(o, nm, strlen(nm));
    }
    sb_put(o, "\r\n", 2);
    resp_str(o, cs_rules_sha256(f->rs));
    resp_i64(o, f->now_ms);
    resp_str(o, CLICKSTAGE_VERSION);
    /* <prev seq>: only for a fenced flush (an offset with check) of the journey this sink
     * last wrote */
    int fenced = 0;
    for (size_t i = 0; i < np; i++)
        fenced |= f->offsets[i].check;
    s->fence_prev = fenced && s->last_seq && strcmp(s->last_journey, cs_rules_journey(f->rs)) == 0
                        ? s->last_seq
                        : 0;
    if (s->fence_prev)
        resp_u64(o, s->fence_prev);
    else
        resp_str(o, "*");

    resp_u64(o, s->ncounters);
    sb_put(o, s->cargs.p, s->cargs.len);
    resp_u64(o, s->nexpire);
    resp_i64(o, s->minute_ttl_s);
    sb_put(o, s->eargs.p, s->eargs.len);
    resp_u64(o, f->nsnaps);
    for (size_t i = 0; i < f->nsnaps; i++) {
        resp_u64(o, snap_key0 + i);
        resp_bulk(o, f->snaps[i].data, f->snaps[i].len);
    }
    /* the EVALSHA and what the script runs (the fence's HMGET aside): HSET offsets and wm,
     * HSET meta, the counters, EXPIREs and SETs */
    s->ncmds = 2 + (np ? 2 : 0) + s->ncounters + s->nexpire + f->nsnaps;
    if (o->oom || s->keys.oom || s->cargs.oom || s->eargs.oom) {
        cs_seterr(err, errlen, "out of memory building the flush");
        return -1;
    }
    return 0;
}

/* Writes the whole output buffer of hiredis to the socket. -1 on error. */
static int write_all(cs_sink *s)
{
    int done = 0;
    do {
        if (redisBufferWrite(s->c, &done) != REDIS_OK)
            return -1;
    } while (!done);
    return 0;
}

/* Test fault: the transaction (with or without EXEC) is on the wire, the reply is never read. */
static int inject_fault(cs_sink *s, int fault, char *err, size_t errlen)
{
    if (write_all(s) == 0 && fault == CS_SINK_FAULT_AFTER_EXEC) {
        /* Half-close and wait for the server to close its side: by then it has read, and
         * executed, everything we sent (closing earlier could reset the connection under data
         * it has not read yet, which would make the test's outcome a race). */
        shutdown(s->c->fd, SHUT_WR);
        char junk[4096];
        struct pollfd p = {s->c->fd, POLLIN, 0};
        while (poll(&p, 1, s->command_timeout_ms) > 0 && read(s->c->fd, junk, sizeof junk) > 0) {
        }
    }
    return fail_link(s, err, errlen, "%s: test fault: connection dropped %s EXEC", s->where,
                     fault == CS_SINK_FAULT_AFTER_EXEC ? "after" : "before");
}

static void remember_unknown(cs_sink *s, uint64_t seq)
{
    s->unknown_seq = seq;
    s->unknown_client = s->client_id;
    snprintf(s->unknown_run, sizeof s->unknown_run, "%s", s->run_id);
}

/* Resolves the unknown outcome of f->seq: fence the old connection, read meta seq:<id>.
 * 1 applied, 0 not applied, -1 failure (still unknown). */
static int resolve(cs_sink *s, const cs_flush *f, char *err, size_t errlen)
{
    if (ensure_connected(s, err, errlen) < 0)
        return -1;
    /* Fence only the same server run: after a restart the old connection died with the
     * server, and client ids start over (the id could now name somebody else). */
    int fence = s->unknown_client > 0 && strcmp(s->unknown_run, s->run_id) == 0;
    build_kp(s, cs_rules_journey(f->rs));
    sb_reset(&s->out);
    size_t n = 0;
    if (fence) {
        resp_head(&s->out, '*', 4);
        resp_str(&s->out, "CLIENT");
        resp_str(&s->out, "KILL");
        resp_str(&s->out, "ID");
        resp_i64(&s->out, s->unknown_client);
        n++;
    }
    int asking = cs_redis_asking(s->r);
    if (asking) {
        resp_head(&s->out, '*', 1);
        resp_str(&s->out, "ASKING");
        n++;
    }
    resp_head(&s->out, '*', 3);
    resp_str(&s->out, "HGET");
    resp_key(s, CS_RK_META);
    resp_bulk3(&s->out, CS_RK_META_SEQ, strlen(CS_RK_META_SEQ), s->instance_id, strlen(s->instance_id), NULL, 0);
    n++;
    if (send_out(s, s->out.len, n) < 0)
        return fail_reply(s, err, errlen, "out of memory");
    s->st.last_flush_commands += n;
    redisReply *r;
    if (fence) {
        /* CLIENT KILL ID replies with the number killed (0: already gone). An error (e.g.
         * NOPERM) leaves no fence; the check below is then best effort. */
        if (get_reply(s, &r, err, errlen, "CLIENT KILL") < 0)
            return -1;
        freeReplyObject(r);
    }
    if (asking_reply(s, asking, err, errlen) < 0)
        return -1;
    if (get_reply(s, &r, err, errlen, "HGET meta") < 0)
        return -1;
    asking_end(s, asking);
    int rc;
    if (redirected(s, r, NULL)) {
        rc = REDIRECTED; /* ask the slot's node (the unknown outcome stays unknown) */
        freeReplyObject(r);
        return rc;
    } else if (r->type == REDIS_REPLY_NIL) {
        rc = 0;
    } else if (r->type == REDIS_REPLY_STRING) {
        char want[24];
        size_t wl = fmt_u64(want, f->seq);
        rc = r->len == wl && memcmp(r->str, want, wl) == 0;
    } else {
        rc = fail_reply(s, err, errlen, "HGET %.*smeta seq:%s: %s", (int)s->kp.len, s->kp.p,
                        s->instance_id,
                        r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply type");
    }
    freeReplyObject(r);
    if (rc >= 0)
        s->unknown_client = 0; /* fenced (or gone): no old connection can apply it any more */
    return rc;
}

/* JSON string body of s (quotes and control characters escaped) into b. */
static void json_str(sbuf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            char e[2] = {'\\', (char)ch};
            sb_put(b, e, 2);
        } else if (ch < 0x20) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", ch);
            sb_put(b, e, 6);
        } else {
            sb_put(b, s, 1);
        }
    }
}

/* PUBLISH after an applied flush. A failure here loses no count: a broken connection is
 * handled as such (closed, logged), a Redis error is ignored. */
static void publish(cs_sink *s, const cs_flush *f, size_t commands)
{
    char num[24];
    sbuf *j = &s->tmp;
    sb_reset(j);
    sb_put(j, "{\"updated_ms\":", 14);
    sb_put(j, num, fmt_i64(num, f->now_ms));
    sb_put(j, ",\"seq\":", 7);
    sb_put(j, num, fmt_u64(num, f->seq));
    sb_put(j, ",\"instance\":\"", 13);
    json_str(j, s->instance_id);
    sb_put(j, "\",\"commands\":", 13);
    sb_put(j, num, fmt_u64(num, commands));
    sb_put(j, "}", 1);
    if (j->oom)
        return;
    sb_reset(&s->out);
    resp_head(&s->out, '*', 3);
    resp_str(&s->out, "PUBLISH");
    resp_key(s, CS_RK_UPDATES);
    resp_bulk(&s->out, j->p, j->len);
    if (send_out(s, s->out.len, 1) < 0)
        return;
    s->st.last_flush_commands += 1;
    redisReply *r;
    if (get_reply(s, &r, NULL, 0, "PUBLISH") == 0)
        freeReplyObject(r);
    else
        s->fails = 0, s->anchor_pending = 0; /* the flush itself succeeded: no backoff */
}

/* What a FENCED reply says, partition by partition ("<topic>/<part>=<offset in Redis>" for each
 * partition whose offset was not the expected one; empty after "=" when Redis has none),
 * against what this writer expected: the worst kind over the partitions (state lost, then
 * behind, then another writer). */
static int fence_kind_of(const cs_flush *f, uint64_t prev, const char *detail)
{
    int kind = CS_FENCE_OTHER_WRITER;
    char field[600];
    for (const char *p = detail; *p;) {
        const char *end = strchr(p, ' ');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memrchr(p, '=', n);
        if (eq && prev && (size_t)(eq - p) > strlen(CS_RK_META_SEQ) &&
            memcmp(p, CS_RK_META_SEQ, strlen(CS_RK_META_SEQ)) == 0) {
            /* this writer's seq: none (Redis lost everything of it) or older (lost flushes) */
            char num[32];
            size_t vl = n - (size_t)(eq - p) - 1;
            snprintf(num, sizeof num, "%.*s", (int)(vl < 31 ? vl : 31), eq + 1);
            int64_t have;
            if (vl == 0)
                kind = CS_FENCE_STATE_LOST;
            else if (kind != CS_FENCE_STATE_LOST && parse_i64(num, &have) == 0 && have >= 0 &&
                     (uint64_t)have < prev)
                kind = CS_FENCE_REDIS_BEHIND;
        } else if (eq) {
            size_t fl = (size_t)(eq - p);
            const char *val = eq + 1;
            size_t vl = n - fl - 1;
            for (size_t i = 0; i < f->noffsets; i++) {
                size_t l = cs_rk_tp_field(field, sizeof field, f->offsets[i].topic,
                                          f->offsets[i].partition);
                if (l != fl || memcmp(field, p, fl) != 0)
                    continue;
                if (vl == 0) {
                    kind = CS_FENCE_STATE_LOST;
                } else if (kind != CS_FENCE_STATE_LOST) {
                    char num[32];
                    snprintf(num, sizeof num, "%.*s", (int)(vl < 31 ? vl : 31), val);
                    int64_t have;
                    if (parse_i64(num, &have) == 0 && have < f->offsets[i].expected)
                        kind = CS_FENCE_REDIS_BEHIND;
                }
                break;
            }
        }
        p += n;
        while (*p == ' ')
            p++;
    }
    return kind;
}

int cs_sink_fence_kind(const cs_sink *s)
{
    return s->fence_kind;
}

/* Reads the script's reply. 0 applied; CS_SINK_FENCED nothing applied, s->fence has why;
 * -1 failed (the caller's unknown state is set accordingly). */
static int read_tx(cs_sink *s, const cs_flush *f, char *err, size_t errlen)
{
    redisReply *r;
    if (get_reply(s, &r, err, errlen, "flush script") < 0)
        return -1; /* unknown */
    int rc = 0, later = 0, redir;
    if (r->type == REDIS_REPLY_INTEGER) {
        s->unknown_seq = 0;
    } else if ((redir = redirected(s, r, &later)) == REDIRECTED) {
        /* MOVED / ASK (the script did not run), READONLY from a demoted sentinel master (its
         * first write failed: nothing written): send it again where the layer points now */
        s->unknown_seq = 0;
        rc = REDIRECTED;
    } else if (redir == NOT_NOW) {
        /* TRYAGAIN (the slot's keys are split between two nodes mid-migration) or CLUSTERDOWN:
         * refused before running. Not applied; retried after the layer's short wait rather than
         * the sink's growing backoff, so that a migration is followed as it goes */
        s->unknown_seq = 0;
        note_refusal(s, CS_REDIS_CLUSTERDOWN, r->str, f->seq);
        rc = fail_reply(s, err, errlen, "flush %" PRIu64 " not applied: %s", f->seq, r->str);
        s->backoff_delay_ms = later;
    } else if (r->type == REDIS_REPLY_ERROR && (strncmp(r->str, "WRONGTYPE ", 10) == 0 ||
                                                 strncmp(r->str, "NOPERM ", 7) == 0)) {
        /* the script's own checks, before any write, or the ACL refusing EVALSHA itself:
         * nothing ran */
        s->unknown_seq = 0;
        note_refusal(s, r->str[0] == 'W' ? CS_REDIS_WRONGTYPE : CS_REDIS_NOPERM, r->str, f->seq);
        rc = fail_reply(s, err, errlen, "flush %" PRIu64 ": %s", f->seq, r->str);
    } else if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "FENCED ", 7) == 0) {
        s->unknown_seq = 0; /* the script wrote nothing */
        sb_reset(&s->fence);
        sb_put(&s->fence, r->str + 7, strlen(r->str + 7) + 1);
        s->fence_kind = fence_kind_of(f, s->fence_prev, r->str + 7);
        cs_seterr(err, errlen, "flush %" PRIu64 " fenced: Redis holds other offsets than "
                  "expected: %s", f->seq, r->str + 7);
        success(s); /* Redis is fine; what to do is the caller's decision */
        rc = CS_SINK_FENCED;
    } else if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
        /* the server lost the script (SCRIPT FLUSH, failover): nothing ran; reconnecting
         * loads it again */
        s->unknown_seq = 0;
        note_refusal(s, CS_REDIS_NOSCRIPT, r->str, f->seq);
        rc = fail_reply(s, err, errlen, "flush %" PRIu64 ": %s", f->seq, r->str);
    } else if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "PARTIAL ", 8) == 0) {
        /* Applied except the failed HINCRBYs (no rollback): stays unknown, so the retry
         * resolves it through the seq check instead of re-applying; those increments are lost.
         * Gets here only when another client wrote a non-integer into a counter field, or on
         * Redis 6 (no ACL pre-check) with an ACL that denies HINCRBY alone: docs/redis.md. */
        note_refusal(s, cs_redis_class_of(r->str, strlen(r->str)), r->str, f->seq);
        rc = fail_reply(s, err, errlen, "flush %" PRIu64 " partly applied: a command of the "
                        "flush failed: %s", f->seq, r->str + 8);
    } else {
        /* e.g. BUSY, LOADING, OOM, READONLY: the flagged script was refused before it ran, but
         * a script error's outcome is unknown: resolved through the seq check */
        const char *t = r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply type";
        note_refusal(s, r->type == REDIS_REPLY_ERROR ? cs_redis_class_of(t, strlen(t))
                                                     : CS_REDIS_OTHER,
                     t, f->seq);
        rc = fail_reply(s, err, errlen, "flush %" PRIu64 " failed: %s", f->seq, t);
    }
    freeReplyObject(r);
    return rc;
}

const char *cs_sink_fence_detail(const cs_sink *s)
{
    return s->fence.len ? s->fence.p : "";
}

/* Reads WAIT's reply (it was pipelined behind the flush): what the replicas acknowledged. A
 * shortfall is logged once until a WAIT is answered in full again, and counted. A broken link
 * here is handled like one during the PUBLISH: the flush itself is applied. */
static void read_wait(cs_sink *s, int applied)
{
    redisReply *r;
    if (!s->c || get_reply(s, &r, NULL, 0, "WAIT") < 0) {
        if (applied)
            s->fails = 0, s->anchor_pending = 0;
        return;
    }
    if (r->type == REDIS_REPLY_INTEGER && applied) {
        s->st.last_wait_replicas = (int)r->integer;
        if (r->integer < s->wait_replicas) {
            s->st.wait_short++;
            if (!s->wait_logged)
                SLOG(s, CS_LOG_WARN,
                     "%s: WAIT %d %d: only %lld replica(s) acknowledged the flush; it is "
                     "applied, and a failover to a replica that lacks it is detected and "
                     "recovered from (docs/redis.md)",
                     s->where, s->wait_replicas, s->wait_timeout_ms, r->integer);
            s->wait_logged = 1;
        } else {
            s->wait_logged = 0;
        }
    }
    freeReplyObject(r);
}

/* f is applied in Redis: the next fenced flush of its journey expects its seq there. */
static void remember_applied(cs_sink *s, const cs_flush *f)
{
    s->last_seq = f->seq;
    snprintf(s->last_journey, sizeof s->last_journey, "%s", cs_rules_journey(f->rs));
}

int cs_sink_flush(cs_sink *s, const cs_flush *f, char *errstr, size_t errlen)
{
    if (!f || !f->rs || f->seq == 0 || (f->noffsets && !f->offsets) ||
        (f->nsnaps && !f->snaps)) {
        cs_seterr(errstr, errlen, "bad flush (needs rs, seq >= 1, offsets)");
        return -1;
    }
    pipe_guard g;
    guard_on(&g);
    int rc = -1;
    s->st.last_flush_commands = 0;
    sb_reset(&s->fence);
    s->fence_kind = CS_FENCE_NONE;

    if (s->unknown_seq && s->unknown_seq != f->seq)
        s->unknown_seq = 0; /* the caller moved on; nothing of that seq is ours to check now */

    /* a cluster: the journey's slot decides the node; MOVED / ASK / a demoted sentinel master
     * send the flush (or the check of a lost reply) again where the layer then points */
    route(s, cs_rules_journey(f->rs));
    int hops = 0;
again:
    if (hops > CS_REDIS_MAX_REDIRECTS) {
        fail_reply(s, errstr, errlen, "flush %" PRIu64 ": more than %d cluster redirections",
                   f->seq, CS_REDIS_MAX_REDIRECTS);
        goto out;
    }
    if (ensure_connected(s, errstr, errlen) < 0)
        goto out;
    if (s->unknown_seq) {
        int applied = resolve(s, f, errstr, errlen);
        if (applied == REDIRECTED) {
            hops++;
            goto again;
        }
        if (applied < 0)
            goto out;
        s->unknown_seq = 0;
        if (applied) {
            remember_applied(s, f);
            s->st.resolved_ambiguous++;
            s->st.flushes_ok++;
            success(s);
            refusal_cleared(s);
            build_kp(s, cs_rules_journey(f->rs));
            if (ensure_connected(s, NULL, 0) == 0) /* an ASK connection is used up */
                publish(s, f, s->st.last_flush_commands + 1);
            else
                success(s);
            rc = 0;
            goto out;
        }
        if (!s->c) /* the check went to an importing node (ASK): back to the slot's owner */
            goto again;
    }
    if (build_tx(s, f, errstr, errlen) < 0) {
        backoff_step(s);
        goto out;
    }
    size_t ncmds = s->ncmds;
    size_t len = s->out.len;
    int fault = s->fault;
    s->fault = CS_SINK_FAULT_NONE;
    if (fault == CS_SINK_FAULT_BEFORE_EXEC)
        len -= 2; /* an incomplete command: the server waits for the rest, never runs it */
    int asking = asking_begin(s);
    if (send_out(s, len, ncmds) < 0) {
        fail_reply(s, errstr, errlen, "out of memory");
        goto out;
    }
    /* From here on some bytes of the transaction may reach the server. */
    remember_unknown(s, f->seq);
    s->st.last_flush_commands = ncmds + (size_t)asking;
    if (fault) {
        inject_fault(s, fault, errstr, errlen);
        goto out;
    }
    int waiting = s->wait_replicas > 0;
    if (waiting) { /* one round trip with the flush: WAIT counts the replicas that have it */
        redisAppendCommand(s->c, "WAIT %d %d", s->wait_replicas, s->wait_timeout_ms);
        s->st.commands++;
        s->st.last_flush_commands++;
    }
    if (asking_reply(s, asking, errstr, errlen) < 0)
        goto out; /* unknown, like any broken link here */
    rc = read_tx(s, f, errstr, errlen);
    if (waiting && s->c)
        read_wait(s, rc == 0);
    asking_end(s, asking);
    if (rc == REDIRECTED) {
        hops++;
        goto again;
    }
    if (rc != 0)
        goto out;
    remember_applied(s, f);
    s->st.flushes_ok++;
    success(s);
    refusal_cleared(s);
    if (ensure_connected(s, NULL, 0) == 0) /* an ASK connection is used up */
        publish(s, f, s->st.last_flush_commands + 1);
    else
        success(s); /* the flush is applied: no backoff for a publish that could not go */
    rc = 0;
out:
    if (rc == CS_SINK_FENCED)
        s->st.fenced++;
    else if (rc < 0)
        s->st.flushes_failed++;
    guard_off(&g);
    return rc;
}
