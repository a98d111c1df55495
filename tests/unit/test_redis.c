/* test_redis.c — the Redis layer's cluster pieces (pipeline/redis.h) and the sink on a Redis
 * Cluster (pipeline/sink.c), against a real 3-master cluster of redis-servers that this test
 * starts itself (tests/support/testsrv.c: free loopback ports, no persistence, slots assigned
 * with CLUSTER ADDSLOTSRANGE and joined with CLUSTER MEET) and stops at the end.
 *
 * What is proven here:
 *  - slot computation (CRC16/XMODEM mod 16384, hash tags) equals the server's CLUSTER KEYSLOT;
 *  - MOVED / ASK replies parse (IPv4, IPv6 unbracketed, an empty host); others are refused;
 *  - a redis:// URL of any node is detected as a cluster; commands go to the routed slot's
 *    master, an unrouted command follows MOVED, a pipeline sends again only what was redirected;
 *  - during a slot migration a key already moved is read through ASK (ASKING on the importing
 *    node), one not moved yet from the source, and once the slot is handed over MOVED leads to
 *    the new owner; SCAN of a journey's pattern reads its slot's node, a pattern of every
 *    journey reads every master;
 *  - the sink's flush follows MOVED and ASK (counts applied once each), fails without writing on
 *    TRYAGAIN (keys split between the two nodes) and lands once the migration is complete;
 *  - a lost flush that moved no offset is still caught (the fence's seq check: Redis behind).
 * The failover and sentinel cases need replicas and minutes: tests/redis-ha/run.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <signal.h>

#include "aggregate.h"
#include "classify.h"
#include "redis.h"
#include "sink.h"
#include "testsrv.h"

#define N 3
static ts_redis node[N];
static int up;

static redisReply *ctl(int i, const char *fmt, ...)
{
    redisContext *c = ts_redis_ctl(&node[i]);
    if (!c)
        return NULL;
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return r;
}

static void ctl_ok(int i, const char *fmt, ...)
{
    redisContext *c = ts_redis_ctl(&node[i]);
    assert_non_null(c);
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (!r || r->type == REDIS_REPLY_ERROR)
        fail_msg("node %d: %s: %s", i, fmt, r ? r->str : c->errstr);
    freeReplyObject(r);
    redisFree(c);
}

static int cluster_ok(int i)
{
    redisReply *r = ctl(i, "CLUSTER INFO");
    int ok = r && r->type == REDIS_REPLY_STRING && strstr(r->str, "cluster_state:ok") &&
             strstr(r->str, "cluster_known_nodes:3");
    if (r)
        freeReplyObject(r);
    return ok;
}

static const char *node_id(int i, char *buf, size_t n)
{
    redisReply *r = ctl(i, "CLUSTER MYID");
    snprintf(buf, n, "%s", r && r->type == REDIS_REPLY_STRING ? r->str : "?");
    if (r)
        freeReplyObject(r);
    return buf;
}

static int group_setup(void **st)
{
    (void)st;
    signal(SIGPIPE, SIG_DFL);
    for (int i = 0; i < N; i++)
        if (ts_redis_setup_cluster(&node[i], "cluster") < 0)
            return -1;
    static const int range[N][2] = {{0, 5460}, {5461, 10922}, {10923, 16383}};
    for (int i = 0; i < N; i++) {
        redisReply *r = ctl(i, "CLUSTER ADDSLOTSRANGE %d %d", range[i][0], range[i][1]);
        if (!r || r->type == REDIS_REPLY_ERROR)
            return -1;
        freeReplyObject(r);
    }
    for (int i = 1; i < N; i++) {
        redisReply *r = ctl(0, "CLUSTER MEET 127.0.0.1 %d", node[i].port);
        if (!r)
            return -1;
        freeReplyObject(r);
    }
    for (int t = 0; t < 1000; t++) {
        int ok = 1;
        for (int i = 0; i < N; i++)
            ok &= cluster_ok(i);
        if (ok) {
            up = 1;
            return 0;
        }
        ts_sleep_ms(20);
    }
    fprintf(stderr, "the test cluster did not come up\n");
    return -1;
}

static int group_teardown(void **st)
{
    (void)st;
    for (int i = 0; i < N; i++)
        ts_redis_teardown(&node[i]);
    return 0;
}

/* the node serving slot s in the initial layout */
static int owner(unsigned s)
{
    return s <= 5460 ? 0 : s <= 10922 ? 1 : 2;
}

/* a journey name whose hash tag lands on node i */
static void journey_on(int i, char *j, size_t n, int skip)
{
    for (int k = 0;; k++) {
        snprintf(j, n, "j%d", k);
        char tag[32];
        snprintf(tag, sizeof tag, "{%s}", j);
        if (owner(cs_redis_key_slot(tag, strlen(tag))) == i && skip-- == 0)
            return;
    }
}

static cs_redis *layer(int via)
{
    char url[64], err[256];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", node[via].port);
    cs_redis_opts o = {url, 1000, 2000};
    cs_redis *r = cs_redis_new(&o, err, sizeof err);
    if (!r)
        fail_msg("%s", err);
    return r;
}

/* ---- pure pieces ------------------------------------------------------------------------- */

static void test_key_slot(void **st)
{
    (void)st;
    /* the Redis Cluster spec's examples */
    assert_int_equal(cs_redis_key_slot("123456789", 9), 0x31C3);
    assert_int_equal(cs_redis_key_slot("somekey", 7), 11058);
    assert_int_equal(cs_redis_key_slot("foo{hash_tag}", 13), 2515);
    assert_int_equal(cs_redis_key_slot("bar{hash_tag}", 13), 2515);
    /* an empty tag hashes the whole key; the first '{' and the next '}' make the tag */
    assert_int_equal(cs_redis_key_slot("foo{}{bar}", 10), cs_redis_key_slot("foo{}{bar}", 10));
    assert_int_not_equal(cs_redis_key_slot("foo{}{bar}", 10), cs_redis_key_slot("bar", 3));
    assert_int_equal(cs_redis_key_slot("foo{{bar}}zap", 13), cs_redis_key_slot("{bar", 4));
    assert_int_equal(cs_redis_key_slot("foo{bar}{zap}", 13), cs_redis_key_slot("bar", 3));
    /* the journey's keys: one slot, the tag's */
    assert_int_equal(cs_redis_key_slot("clickstage:{retail}:active", 26),
                     cs_redis_key_slot("retail", 6));
    assert_int_equal(cs_redis_key_slot("clickstage:{retail}:", 20),
                     cs_redis_key_slot("x:{retail}:snap:t/0", 19));
    /* against the server, many keys */
    if (!up)
        return;
    for (int k = 0; k < 300; k++) {
        char key[64];
        int n = snprintf(key, sizeof key, k % 3 ? "p:{j%d}:active" : "key-%d-\xff", k * 7919);
        redisReply *r = ctl(0, "CLUSTER KEYSLOT %b", key, (size_t)n);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_INTEGER);
        assert_int_equal(cs_redis_key_slot(key, (size_t)n), (unsigned)r->integer);
        freeReplyObject(r);
    }
}

static void test_parse_redirect(void **st)
{
    (void)st;
    cs_redis_redir d;
    assert_int_equal(cs_redis_parse_redirect("MOVED 3999 127.0.0.1:6381", 25, &d), 0);
    assert_int_equal(d.ask, 0);
    assert_int_equal(d.slot, 3999);
    assert_string_equal(d.host, "127.0.0.1");
    assert_int_equal(d.port, 6381);
    const char *a = "-ASK 16383 ::1:7002";
    assert_int_equal(cs_redis_parse_redirect(a, strlen(a), &d), 0);
    assert_int_equal(d.ask, 1);
    assert_int_equal(d.slot, 16383);
    assert_string_equal(d.host, "::1");
    assert_int_equal(d.port, 7002);
    a = "MOVED 0 [fe80::1]:1";
    assert_int_equal(cs_redis_parse_redirect(a, strlen(a), &d), 0);
    assert_string_equal(d.host, "fe80::1");
    a = "MOVED 12 :6380"; /* unknown endpoint: the host of the connection */
    assert_int_equal(cs_redis_parse_redirect(a, strlen(a), &d), 0);
    assert_string_equal(d.host, "");
    assert_int_equal(d.port, 6380);
    a = "MOVED 1 redis-2.example.com:6379";
    assert_int_equal(cs_redis_parse_redirect(a, strlen(a), &d), 0);
    assert_string_equal(d.host, "redis-2.example.com");
    static const char *const bad[] = {"MOVED", "MOVED 16384 h:1", "MOVED x h:1", "MOVED 1 h",
                                      "MOVED 1 h:", "MOVED 1 h:0", "MOVED 1 h:70000",
                                      "ASKING 1 h:1", "ERR MOVED 1 h:1", "MOVED 1 h:1x", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (cs_redis_parse_redirect(bad[i], strlen(bad[i]), &d) == 0)
            fail_msg("'%s' parsed", bad[i]);
    /* the class of each, for metrics (issue 20) */
    assert_int_equal(cs_redis_class_of("MOVED 1 h:1", 11), CS_REDIS_MOVED);
    assert_int_equal(cs_redis_class_of("ASK 1 h:1", 9), CS_REDIS_ASK);
    assert_int_equal(cs_redis_class_of("TRYAGAIN x", 10), CS_REDIS_CLUSTERDOWN);
}

/* ---- the layer on the cluster ------------------------------------------------------------ */

static void test_route_and_moved(void **st)
{
    (void)st;
    char j[16], key[64], err[256];
    journey_on(2, j, sizeof j, 0);
    snprintf(key, sizeof key, "t:{%s}:x", j);
    cs_redis *r = layer(0); /* a seed that does not serve the slot */
    cs_redis_route(r, key, strlen(key));
    const char *set[] = {"SET", key, "v1"};
    redisReply *rep = cs_redis_cmd(r, 3, set, NULL, err, sizeof err);
    if (!rep)
        fail_msg("%s", err);
    if (rep->type != REDIS_REPLY_STATUS)
        fail_msg("SET: %s (%s)", rep->str, cs_redis_where(r));
    freeReplyObject(rep);
    assert_true(cs_redis_is_cluster(r));
    char where[64];
    snprintf(where, sizeof where, "127.0.0.1:%d", node[2].port);
    assert_string_equal(cs_redis_where(r), where); /* routed straight to the slot's master */
    rep = ctl(2, "GET %s", key);
    assert_string_equal(rep->str, "v1");
    freeReplyObject(rep);
    cs_redis_free(r);

    /* not routed: connected to some master, the command follows MOVED */
    r = layer(1);
    const char *get[] = {"GET", key};
    rep = cs_redis_cmd(r, 2, get, NULL, err, sizeof err);
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    assert_string_equal(rep->str, "v1");
    freeReplyObject(rep);
    /* a pipeline over three slots on three nodes: each answer from its node */
    char k[3][64], jj[3][16];
    const char *argv[3][8];
    int argc[3];
    for (int i = 0; i < 3; i++) {
        journey_on(i, jj[i], sizeof jj[i], 1);
        snprintf(k[i], sizeof k[i], "t:{%s}:y", jj[i]);
        ctl_ok(i, "SET %s n%d", k[i], i);
        argv[i][0] = "GET";
        argv[i][1] = k[i];
        argc[i] = 2;
    }
    redisReply *out[3];
    assert_int_equal(cs_redis_pipeline(r, 3, (const char *const(*)[8])argv, argc, out, err,
                                       sizeof err), 0);
    for (int i = 0; i < 3; i++) {
        char want[8];
        snprintf(want, sizeof want, "n%d", i);
        assert_int_equal(out[i]->type, REDIS_REPLY_STRING);
        assert_string_equal(out[i]->str, want);
        freeReplyObject(out[i]);
    }
    /* redis+cluster:// with a dead seed first */
    cs_redis_free(r);
    char url[128];
    snprintf(url, sizeof url, "redis+cluster://127.0.0.1:%d,127.0.0.1:%d", ts_free_port(),
             node[1].port);
    cs_redis_opts o = {url, 500, 2000};
    r = cs_redis_new(&o, err, sizeof err);
    assert_non_null(r);
    rep = cs_redis_cmd(r, 2, get, NULL, err, sizeof err);
    if (!rep)
        fail_msg("%s", err);
    assert_string_equal(rep->str, "v1");
    freeReplyObject(rep);
    cs_redis_free(r);
}

typedef struct keys_seen {
    int n;
    char last[128];
} keys_seen;

static int count_key(const char *key, size_t len, void *arg)
{
    keys_seen *k = arg;
    k->n++;
    snprintf(k->last, sizeof k->last, "%.*s", (int)len, key);
    return 0;
}

static void test_scan(void **st)
{
    (void)st;
    char err[256];
    for (int i = 0; i < 3; i++) {
        char j[16];
        journey_on(i, j, sizeof j, 2);
        ctl_ok(i, "HSET scan:{%s}:meta stages a", j);
    }
    cs_redis *r = layer(0);
    keys_seen k = {0};
    assert_int_equal(cs_redis_scan(r, "scan:{*}:meta", count_key, &k, err, sizeof err), 0);
    assert_int_equal(k.n, 3); /* one per master */
    char j[16], pat[64];
    journey_on(1, j, sizeof j, 2);
    snprintf(pat, sizeof pat, "scan:{%s}:*", j);
    memset(&k, 0, sizeof k);
    assert_int_equal(cs_redis_scan(r, pat, count_key, &k, err, sizeof err), 0);
    assert_int_equal(k.n, 1); /* the journey's node only */
    char want[64];
    snprintf(want, sizeof want, "scan:{%s}:meta", j);
    assert_string_equal(k.last, want);
    cs_redis_free(r);
}

/* Moves slot `slot` from node `from` to node `to`: IMPORTING / MIGRATING, then the keys given
 * (all when keys is NULL), then (finish) the slot handed over on every node. */
static void migrate(unsigned slot, int from, int to, const char *const *keys, int nkeys,
                    int begin, int finish)
{
    char idf[64], idt[64];
    node_id(from, idf, sizeof idf);
    node_id(to, idt, sizeof idt);
    if (begin) {
        ctl_ok(to, "CLUSTER SETSLOT %u IMPORTING %s", slot, idf);
        ctl_ok(from, "CLUSTER SETSLOT %u MIGRATING %s", slot, idt);
    }
    if (nkeys < 0) { /* every key of the slot */
        redisReply *r = ctl(from, "CLUSTER GETKEYSINSLOT %u 1000", slot);
        assert_non_null(r);
        for (size_t i = 0; i < r->elements; i++)
            ctl_ok(from, "MIGRATE 127.0.0.1 %d %s 0 5000", node[to].port, r->element[i]->str);
        freeReplyObject(r);
    }
    for (int i = 0; i < nkeys; i++)
        ctl_ok(from, "MIGRATE 127.0.0.1 %d %s 0 5000", node[to].port, keys[i]);
    if (finish)
        for (int i = 0; i < N; i++)
            ctl_ok(i, "CLUSTER SETSLOT %u NODE %s", slot, idt);
}

static void test_ask_during_migration(void **st)
{
    (void)st;
    char j[16], k1[64], k2[64], err[256];
    journey_on(1, j, sizeof j, 3);
    snprintf(k1, sizeof k1, "m:{%s}:one", j);
    snprintf(k2, sizeof k2, "m:{%s}:two", j);
    unsigned slot = cs_redis_key_slot(k1, strlen(k1));
    ctl_ok(1, "SET %s 1", k1);
    ctl_ok(1, "SET %s 2", k2);
    cs_redis *r = layer(1);
    cs_redis_route(r, k1, strlen(k1));
    const char *k1p = k1;
    migrate(slot, 1, 2, &k1p, 1, 1, 0); /* k1 on node 2, k2 still on node 1 */
    const char *argv[2][8] = {{"GET", k1}, {"GET", k2}};
    int argc[2] = {2, 2};
    redisReply *out[2];
    assert_int_equal(cs_redis_pipeline(r, 2, (const char *const(*)[8])argv, argc, out, err,
                                       sizeof err), 0);
    assert_int_equal(out[0]->type, REDIS_REPLY_STRING);
    assert_string_equal(out[0]->str, "1"); /* ASK -> ASKING on the importing node */
    assert_int_equal(out[1]->type, REDIS_REPLY_STRING);
    assert_string_equal(out[1]->str, "2"); /* from the source: not re-sent anywhere */
    freeReplyObject(out[0]);
    freeReplyObject(out[1]);
    redisReply *rep = cs_redis_cmd(r, 2, argv[0], NULL, err, sizeof err);
    assert_string_equal(rep->str, "1");
    freeReplyObject(rep);
    /* hand the slot over: MOVED to node 2, and the layer stays there */
    const char *k2p = k2;
    migrate(slot, 1, 2, &k2p, 1, 0, 1);
    rep = cs_redis_cmd(r, 2, argv[1], NULL, err, sizeof err);
    assert_string_equal(rep->str, "2");
    freeReplyObject(rep);
    char where[64];
    snprintf(where, sizeof where, "127.0.0.1:%d", node[2].port);
    assert_string_equal(cs_redis_where(r), where);
    cs_redis_free(r);
}

/* ---- the sink on the cluster ------------------------------------------------------------- */

static const char *rules_fmt = "journey: %s\n"
                               "stages: [a, b]\n"
                               "rules:\n"
                               "  - { name: ra, stage: a, match: { event: x } }\n";

/* HGET on node i itself (ASKING first: an importing node answers too) */
static int64_t hget_on(int i, const char *key, const char *field)
{
    redisContext *c = ts_redis_ctl(&node[i]);
    assert_non_null(c);
    redisAppendCommand(c, "ASKING");
    redisAppendCommand(c, "HGET %s %s", key, field);
    void *a = NULL, *b = NULL;
    redisGetReply(c, &a);
    redisGetReply(c, &b);
    redisReply *r = b;
    int64_t v = r && r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : -1;
    if (a)
        freeReplyObject(a);
    if (b)
        freeReplyObject(b);
    redisFree(c);
    return v;
}

static void test_sink_moved_ask_tryagain(void **st)
{
    (void)st;
    char j[16], yaml[256], err[256], url[64];
    journey_on(0, j, sizeof j, 4);
    snprintf(yaml, sizeof yaml, rules_fmt, j);
    cs_ruleset *rs = cs_rules_load_string(yaml, strlen(yaml), "t.yaml", err, sizeof err);
    assert_non_null(rs);
    cs_dimdict_mpmc dicts[CS_MAX_DIMS];
    cs_agg agg;
    assert_int_equal(cs_agg_init(&agg, rs), 0);
    agg.events[0] = 5; /* events: a = 5 */
    agg.started = 2;
    agg.changes = 1;
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", node[1].port); /* not the slot's node */
    cs_sink_conf sc = {.url = url, .prefix = "sk", .instance_id = "t", .connect_timeout_ms = 500,
                       .command_timeout_ms = 2000, .backoff_min_ms = 1, .backoff_max_ms = 2};
    cs_sink *s = cs_sink_new(&sc, err, sizeof err);
    assert_non_null(s);
    char ev[64], off[64], snap[64];
    snprintf(ev, sizeof ev, "sk:{%s}:events", j);
    snprintf(off, sizeof off, "sk:{%s}:offsets", j);
    snprintf(snap, sizeof snap, "sk:{%s}:snap:t/0", j);
    cs_flush_offset fo = {"t", 0, 10, 1, -1, 0};
    cs_flush_snap sn = {"t", 0, "state", 5};
    cs_flush f = {1, &agg, rs, dicts, &fo, 1, &sn, 1, 1000};
    int rc = cs_sink_flush(s, &f, err, sizeof err);
    if (rc != 0)
        fail_msg("flush 1: %s", err);
    assert_int_equal(hget_on(0, ev, "a"), 5);
    assert_int_equal(hget_on(0, off, "t/0"), 10);

    /* the slot half-migrated: the flush's keys are split between nodes 0 and 2 -> TRYAGAIN:
     * not applied, nothing written anywhere */
    unsigned slot = cs_redis_key_slot(ev, strlen(ev));
    const char *evp = ev;
    migrate(slot, 0, 2, &evp, 1, 1, 0);
    fo = (cs_flush_offset){"t", 0, 20, 1, 10, 0};
    f.seq = 2;
    rc = cs_sink_flush(s, &f, err, sizeof err);
    assert_int_equal(rc, -1);
    assert_int_equal(hget_on(2, ev, "a"), 5);
    assert_int_equal(hget_on(0, off, "t/0"), 10);
    /* every key moved (the slot still MIGRATING): ASK -> the flush runs once on node 2 */
    migrate(slot, 0, 2, NULL, -1, 0, 0);
    ts_sleep_ms(5);
    rc = cs_sink_flush(s, &f, err, sizeof err);
    if (rc != 0)
        fail_msg("flush 2 (ASK): %s", err);
    assert_int_equal(hget_on(2, ev, "a"), 10);
    assert_int_equal(hget_on(2, off, "t/0"), 20);
    redisReply *x = ctl(0, "EXISTS %s", ev);
    assert_int_equal(x->integer, 0);
    freeReplyObject(x);
    /* handed over: MOVED from node 0 to node 2 */
    migrate(slot, 0, 2, NULL, 0, 0, 1);
    fo = (cs_flush_offset){"t", 0, 30, 1, 20, 0};
    f.seq = 3;
    rc = cs_sink_flush(s, &f, err, sizeof err);
    if (rc != 0)
        fail_msg("flush 3 (MOVED): %s", err);
    assert_int_equal(hget_on(2, ev, "a"), 15);
    assert_int_equal(hget_on(2, off, "t/0"), 30);
    cs_sink_stats ss;
    cs_sink_stats_get(s, &ss);
    assert_true(ss.redirects >= 2);
    assert_int_equal(ss.flushes_ok, 3);
    /* the new owner's read path */
    cs_part_saved sv;
    assert_int_equal(cs_sink_load_part(s, j, "t", 0, &sv, err, sizeof err), 0);
    assert_int_equal(sv.offset, 30);
    assert_int_equal(sv.snap_len, 5);
    free(sv.snap);
    cs_sink_destroy(s);
    cs_agg_free(&agg);
    cs_rules_destroy(rs);
}

/* A flush that moves no offset (expiry deltas, a heartbeat) and is lost in a failover leaves
 * every offset as the writer expects: the fence's seq check is what catches it. */
static void test_sink_lost_quiet_flush(void **st)
{
    (void)st;
    char j[16], yaml[256], err[256], url[64];
    journey_on(1, j, sizeof j, 5);
    snprintf(yaml, sizeof yaml, rules_fmt, j);
    cs_ruleset *rs = cs_rules_load_string(yaml, strlen(yaml), "t.yaml", err, sizeof err);
    assert_non_null(rs);
    cs_dimdict_mpmc dicts[CS_MAX_DIMS];
    cs_agg agg;
    assert_int_equal(cs_agg_init(&agg, rs), 0);
    agg.events[0] = 1;
    agg.changes = 1;
    snprintf(url, sizeof url, "redis+cluster://127.0.0.1:%d", node[0].port);
    cs_sink_conf sc = {.url = url, .prefix = "q", .instance_id = "w", .connect_timeout_ms = 500,
                       .command_timeout_ms = 2000, .backoff_min_ms = 1, .backoff_max_ms = 2};
    cs_sink *s = cs_sink_new(&sc, err, sizeof err);
    assert_non_null(s);
    char ev[64], meta[64];
    snprintf(ev, sizeof ev, "q:{%s}:events", j);
    snprintf(meta, sizeof meta, "q:{%s}:meta", j);
    cs_flush_offset fo = {"t", 0, 10, 1, -1, 0};
    cs_flush f = {100, &agg, rs, dicts, &fo, 1, NULL, 0, 1000};
    assert_int_equal(cs_sink_flush(s, &f, err, sizeof err), 0);
    /* the quiet one: same offset, more counts */
    fo = (cs_flush_offset){"t", 0, 10, 1, 10, 0};
    f.seq = 101;
    assert_int_equal(cs_sink_flush(s, &f, err, sizeof err), 0);
    assert_int_equal(hget_on(1, ev, "a"), 2);
    /* a failover to a replica that had only the first: its counts and seq */
    ctl_ok(1, "HINCRBY %s a -1", ev);
    ctl_ok(1, "HSET %s seq:w 100", meta);
    f.seq = 102;
    assert_int_equal(cs_sink_flush(s, &f, err, sizeof err), CS_SINK_FENCED);
    assert_int_equal(cs_sink_fence_kind(s), CS_FENCE_REDIS_BEHIND);
    assert_non_null(strstr(cs_sink_fence_detail(s), "seq:w=100"));
    assert_int_equal(hget_on(1, ev, "a"), 1); /* nothing written */
    cs_sink_destroy(s);
    /* a new process (re-executed) checks no seq on its first flush: it restored from Redis */
    s = cs_sink_new(&sc, err, sizeof err);
    f.seq = 200;
    assert_int_equal(cs_sink_flush(s, &f, err, sizeof err), 0);
    assert_int_equal(hget_on(1, ev, "a"), 2);
    cs_sink_destroy(s);
    cs_agg_free(&agg);
    cs_rules_destroy(rs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_redirect),
        cmocka_unit_test(test_key_slot),
        cmocka_unit_test(test_route_and_moved),
        cmocka_unit_test(test_scan),
        cmocka_unit_test(test_ask_during_migration),
        cmocka_unit_test(test_sink_moved_ask_tryagain),
        cmocka_unit_test(test_sink_lost_quiet_flush),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
