/* redis.c — see redis.h for the contract (and for Cluster and Sentinel: docs/redis.md).
 *
 * One cs_redis = one live connection (r->c) to the node it talks to now:
 *   plain     the URL's server (host:port or unix socket)
 *   cluster   the master of the routed slot in r->slots (or, for one ASK'd request, the
 *             importing node), found from CLUSTER SLOTS
 *   sentinel  the master the sentinels name, checked with ROLE
 * Every way of connecting ends in dial() + handshake(); every failure in link_fail(), which also
 * marks the cluster map stale (a failover shows up as a node that no longer answers).
 */
#include "redis.h"

#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define NSLOTS 16384
#define MAX_NODES 128 /* nodes remembered from CLUSTER SLOTS (masters and replicas) */
#define TRYAGAIN_MIN_MS 10
#define TRYAGAIN_MAX_MS 500

struct cs_redis {
    cs_redis_target t;
    char where[320];
    int connect_timeout_ms, command_timeout_ms;
    redisContext *c;
    uint64_t gen;      /* bumped by every successful connect */
    int mode;          /* effective CS_REDIS_MODE_*: a plain URL becomes CLUSTER when its server
                          says cluster_enabled:1 */
    int checked;       /* plain URL: INFO cluster was looked at */
    cs_redis_node cur; /* the node c talks to (TCP; host "" for the plain URL's own server) */
    int slot;          /* routed slot, -1 none */
    /* cluster */
    int16_t *slots;    /* [NSLOTS] index into nodes of the slot's master, -1 unknown */
    cs_redis_node *nodes;
    int nnodes;
    int map_stale;     /* re-read CLUSTER SLOTS at the next connect */
    int ask_pending;   /* the next connect goes to `ask` */
    int asking;        /* the live connection was made for one ASK'd request */
    cs_redis_node ask;
    int tryagain;      /* TRYAGAIN/CLUSTERDOWN streak, for the backoff */
    int64_t tryagain_ms;
    /* sentinel */
    int first_sentinel; /* the one that answered last is asked first */
    int fail_class;    /* cs_redis_class of the last cs_redis_connect failure */
};

/* ---- SIGPIPE guard ------------------------------------------------------------------------- */

void cs_pipe_guard_on(cs_pipe_guard *g)
{
    sigset_t set, pend;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigemptyset(&pend);
    sigpending(&pend);
    g->was_pending = sigismember(&pend, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &set, &g->old);
}

void cs_pipe_guard_off(cs_pipe_guard *g)
{
    int saved = errno;
    if (!g->was_pending) {
        /* a SIGPIPE that became pending while blocked came from our own write: consume it */
        sigset_t set, pend;
        sigemptyset(&pend);
        sigpending(&pend);
        if (sigismember(&pend, SIGPIPE) == 1) {
            sigemptyset(&set);
            sigaddset(&set, SIGPIPE);
            struct timespec zero = {0, 0};
            while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR) {
            }
        }
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
    errno = saved;
}

/* ---- construction ------------------------------------------------------------------------- */

static void set_where(cs_redis *r, const char *host, int port)
{
    if (!host)
        snprintf(r->where, sizeof r->where, "unix:%s", r->t.path);
    else
        snprintf(r->where, sizeof r->where, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
}

cs_redis *cs_redis_new(const cs_redis_opts *o, char *errstr, size_t errlen)
{
    cs_redis *r = calloc(1, sizeof *r);
    if (!r) {
        cs_seterr(errstr, errlen, "out of memory");
        return NULL;
    }
    const char *url = o && o->url && *o->url ? o->url : "redis://127.0.0.1:6379";
    char why[512];
    if (cs_redis_url_parse(url, &r->t, why, sizeof why) < 0) {
        cs_seterr(errstr, errlen, "bad Redis URL: %s", why);
        memset(&r->t, 0, sizeof r->t);
        free(r);
        return NULL;
    }
    set_where(r, r->t.is_unix ? NULL : r->t.host, r->t.port);
    r->connect_timeout_ms = o && o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 2000;
    r->command_timeout_ms = o && o->command_timeout_ms > 0 ? o->command_timeout_ms : 5000;
    r->mode = r->t.mode;
    r->slot = -1;
    return r;
}

void cs_redis_close(cs_redis *r)
{
    if (r && r->c) {
        redisFree(r->c);
        r->c = NULL;
    }
    if (r)
        r->asking = 0;
}

void cs_redis_free(cs_redis *r)
{
    if (!r)
        return;
    cs_redis_close(r);
    free(r->slots);
    free(r->nodes);
    /* the password lives in the target: do not leave it in freed memory */
    memset(&r->t, 0, sizeof r->t);
    free(r);
}

int cs_redis_connected(const cs_redis *r) { return r->c != NULL; }
int cs_redis_connect_failure(const cs_redis *r)
{
    return r->fail_class;
}

redisContext *cs_redis_ctx(cs_redis *r) { return r->c; }
uint64_t cs_redis_generation(const cs_redis *r) { return r->gen; }
const char *cs_redis_where(const cs_redis *r) { return r->where; }
const cs_redis_target *cs_redis_target_of(const cs_redis *r) { return &r->t; }
int cs_redis_command_timeout_ms(const cs_redis *r) { return r->command_timeout_ms; }
int cs_redis_is_cluster(const cs_redis *r) { return r->mode == CS_REDIS_MODE_CLUSTER; }
int cs_redis_asking(const cs_redis *r) { return r->c && r->asking; }

static const char *ctx_error(redisContext *c, int timeout_ms, char *buf, size_t n)
{
    if (!c)
        return "connection closed";
    if (c->err == REDIS_ERR_IO && strstr(c->errstr, "temporarily unavailable"))
        snprintf(buf, n, "timed out after %d ms", timeout_ms);
    else
        snprintf(buf, n, "%s", c->errstr[0] ? c->errstr : "I/O error");
    return buf;
}

const char *cs_redis_io_error(cs_redis *r, char *buf, size_t n)
{
    return ctx_error(r->c, r->command_timeout_ms, buf, n);
}

/* closes, fills errstr, returns -1; a cluster map is re-read at the next connect */
static int link_fail(cs_redis *r, char *errstr, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int link_fail(cs_redis *r, char *errstr, size_t errlen, const char *fmt, ...)
{
    if (errstr && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errstr, errlen, fmt, ap);
        va_end(ap);
    }
    cs_redis_close(r);
    r->map_stale = 1;
    return -1;
}

/* ---- slots ---------------------------------------------------------------------------------- */

static uint16_t crc16(const char *buf, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((uint8_t)buf[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = crc & 0x8000 ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

unsigned cs_redis_key_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t rest = len - (size_t)(open - key) - 1;
        const char *close = memchr(open + 1, '}', rest);
        if (close && close > open + 1)
            return crc16(open + 1, (size_t)(close - open - 1)) & (NSLOTS - 1);
    }
    return crc16(key, len) & (NSLOTS - 1);
}

static int node_index(const cs_redis *r, const char *host, int port)
{
    for (int i = 0; i < r->nnodes; i++)
        if (r->nodes[i].port == port && strcmp(r->nodes[i].host, host) == 0)
            return i;
    return -1;
}

/* index of host:port in the node table, added if new; -1 when full or out of memory */
static int node_add(cs_redis *r, const char *host, int port)
{
    int i = node_index(r, host, port);
    if (i >= 0)
        return i;
    if (!r->nodes && !(r->nodes = calloc(MAX_NODES, sizeof *r->nodes)))
        return -1;
    if (r->nnodes == MAX_NODES || strlen(host) >= sizeof r->nodes[0].host)
        return -1;
    snprintf(r->nodes[r->nnodes].host, sizeof r->nodes[0].host, "%s", host);
    r->nodes[r->nnodes].port = port;
    return r->nnodes++;
}

void cs_redis_route(cs_redis *r, const char *key, size_t len)
{
    int slot = (int)cs_redis_key_slot(key, len);
    if (slot == r->slot)
        return;
    r->slot = slot;
    /* a live connection to a node that does not serve the new slot goes */
    if (r->c && r->mode == CS_REDIS_MODE_CLUSTER && !r->asking && r->slots &&
        (r->slots[slot] < 0 ||
         node_index(r, r->cur.host, r->cur.port) != r->slots[slot]))
        cs_redis_close(r);
}

int cs_redis_parse_redirect(const char *err, size_t len, cs_redis_redir *out)
{
    memset(out, 0, sizeof *out);
    if (len && err[0] == '-')
        err++, len--;
    size_t w;
    if (len > 6 && memcmp(err, "MOVED ", 6) == 0)
        w = 6;
    else if (len > 4 && memcmp(err, "ASK ", 4) == 0)
        w = 4, out->ask = 1;
    else
        return -1;
    const char *p = err + w, *end = err + len;
    long slot = 0;
    if (p == end || *p < '0' || *p > '9')
        return -1;
    while (p < end && *p >= '0' && *p <= '9' && slot < NSLOTS)
        slot = slot * 10 + (*p++ - '0');
    if (slot >= NSLOTS || p == end || *p != ' ')
        return -1;
    p++;
    /* host:port, the port after the last ':' (Redis writes an IPv6 address unbracketed) */
    const char *e = p;
    while (e < end && *e != ' ' && *e != '\r' && *e != '\n')
        e++;
    const char *colon = NULL;
    for (const char *q = p; q < e; q++)
        if (*q == ':')
            colon = q;
    if (!colon || colon + 1 == e)
        return -1;
    long port = 0;
    for (const char *q = colon + 1; q < e; q++) {
        if (*q < '0' || *q > '9' || port > 65535)
            return -1;
        port = port * 10 + (*q - '0');
    }
    if (port < 1 || port > 65535)
        return -1;
    const char *h = p, *he = colon;
    if (he > h && h[0] == '[' && he[-1] == ']')
        h++, he--;
    if ((size_t)(he - h) >= sizeof out->host)
        return -1;
    memcpy(out->host, h, (size_t)(he - h));
    out->host[he - h] = '\0';
    out->slot = (int)slot;
    out->port = (int)port;
    return 0;
}

/* ---- connecting ------------------------------------------------------------------------------ */

/* A TCP (host) or unix (host NULL) connection with the connect and command timeouts. NULL with
 * errstr on failure. */
static redisContext *dial(cs_redis *r, const char *host, int port, int connect_ms, char *errstr,
                          size_t errlen)
{
    struct timeval ctv = {connect_ms / 1000, (connect_ms % 1000) * 1000};
    struct timeval ttv = {r->command_timeout_ms / 1000, (r->command_timeout_ms % 1000) * 1000};
    char where[320];
    if (host)
        snprintf(where, sizeof where, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    else
        snprintf(where, sizeof where, "unix:%s", r->t.path);
    redisContext *c = host ? redisConnectWithTimeout(host, port, ctv)
                           : redisConnectUnixWithTimeout(r->t.path, ctv);
    if (!c) {
        cs_seterr(errstr, errlen, "connect %s: out of memory", where);
        return NULL;
    }
    if (c->err) {
        cs_seterr(errstr, errlen, "connect %s: %s", where, c->errstr);
        redisFree(c);
        return NULL;
    }
    if (redisSetTimeout(c, ttv) != REDIS_OK) {
        cs_seterr(errstr, errlen, "connect %s: setting the timeout: %s", where, c->errstr);
        redisFree(c);
        return NULL;
    }
    if (host)
        redisEnableKeepAlive(c);
    return c;
}

enum { HS_INFO_CLUSTER = 1, HS_ROLE = 2, HS_SELECT = 4 };

/* On a fresh connection, one round trip: AUTH (user/password, if any), SELECT db (HS_SELECT and
 * db != 0), INFO cluster (HS_INFO_CLUSTER: *cluster = cluster_enabled), ROLE (HS_ROLE: *role =
 * its first word, e.g. "master"). 0, or -1 with errstr ("<where>: ..."; never the password). */
static int handshake(redisContext *c, const char *where, int timeout_ms, const char *user,
                     const char *password, int db, int what, int *cluster, char *role,
                     size_t rolelen, char *errstr, size_t errlen)
{
    int n = 0, i_auth = -1, i_select = -1, i_info = -1, i_role = -1;
    if (password && password[0]) {
        if (user && user[0])
            redisAppendCommand(c, "AUTH %s %s", user, password);
        else
            redisAppendCommand(c, "AUTH %s", password);
        i_auth = n++;
    }
    if ((what & HS_SELECT) && db)
        redisAppendCommand(c, "SELECT %d", db), i_select = n++;
    if (what & HS_INFO_CLUSTER)
        redisAppendCommand(c, "INFO cluster"), i_info = n++;
    if (what & HS_ROLE)
        redisAppendCommand(c, "ROLE"), i_role = n++;
    char bad[256] = "";
    for (int i = 0; i < n; i++) {
        redisReply *rep = NULL;
        if (redisGetReply(c, (void **)&rep) != REDIS_OK || !rep) {
            char b[256];
            cs_seterr(errstr, errlen, "%s: %s", where, ctx_error(c, timeout_ms, b, sizeof b));
            return -1;
        }
        if (rep->type == REDIS_REPLY_ERROR && !bad[0]) {
            /* never the password: Redis' own text, then ours. INFO cluster refused (an ACL, a
             * proxy): not a cluster. */
            if (i == i_auth)
                snprintf(bad, sizeof bad, "AUTH failed: %s", rep->str ? rep->str : "?");
            else if (i == i_select)
                snprintf(bad, sizeof bad, "SELECT %d failed: %s", db, rep->str ? rep->str : "?");
            else if (i == i_role)
                snprintf(bad, sizeof bad, "ROLE failed: %s", rep->str ? rep->str : "?");
        } else if (i == i_info && rep->type == REDIS_REPLY_STRING) {
            *cluster = strstr(rep->str, "cluster_enabled:1") != NULL;
        } else if (i == i_role && rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 &&
                   rep->element[0]->type == REDIS_REPLY_STRING) {
            snprintf(role, rolelen, "%s", rep->element[0]->str);
        }
        freeReplyObject(rep);
    }
    if (bad[0]) {
        cs_seterr(errstr, errlen, "%s: %s", where, bad);
        return -1;
    }
    return 0;
}

/* Reads CLUSTER SLOTS from one node (connected here, AUTH'd): the new slot map. 0, or -1. */
static int map_from(cs_redis *r, const char *host, int port, char *errstr, size_t errlen)
{
    int cms = r->connect_timeout_ms < 1000 ? r->connect_timeout_ms : 1000;
    redisContext *c = dial(r, host, port, cms, errstr, errlen);
    if (!c)
        return -1;
    char where[320];
    snprintf(where, sizeof where, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    int rc = -1;
    if (handshake(c, where, r->command_timeout_ms, r->t.user, r->t.password, 0, 0, NULL, NULL, 0,
                  errstr, errlen) < 0)
        goto out;
    redisReply *rep = redisCommand(c, "CLUSTER SLOTS");
    if (!rep) {
        char b[256];
        cs_seterr(errstr, errlen, "%s CLUSTER SLOTS: %s", where,
                  ctx_error(c, r->command_timeout_ms, b, sizeof b));
        goto out;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements == 0) {
        cs_seterr(errstr, errlen, "%s CLUSTER SLOTS: %s", where,
                  rep->type == REDIS_REPLY_ERROR ? rep->str : "no slot is served");
        freeReplyObject(rep);
        goto out;
    }
    if (!r->slots && !(r->slots = malloc(NSLOTS * sizeof *r->slots))) {
        cs_seterr(errstr, errlen, "out of memory");
        freeReplyObject(rep);
        goto out;
    }
    for (int i = 0; i < NSLOTS; i++)
        r->slots[i] = -1;
    r->nnodes = 0; /* the table is this answer's nodes (refresh_map asks from a copy) */
    for (size_t i = 0; i < rep->elements; i++) {
        redisReply *e = rep->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER || e->element[1]->type != REDIS_REPLY_INTEGER)
            continue;
        long long a = e->element[0]->integer, b = e->element[1]->integer;
        int master = -1;
        for (size_t k = 2; k < e->elements; k++) {
            redisReply *nd = e->element[k];
            if (nd->type != REDIS_REPLY_ARRAY || nd->elements < 2 ||
                nd->element[0]->type != REDIS_REPLY_STRING ||
                nd->element[1]->type != REDIS_REPLY_INTEGER)
                continue;
            /* "" or "?": the node does not know its endpoint; it is the one we asked */
            const char *h = nd->element[0]->str;
            if (!h[0] || strcmp(h, "?") == 0)
                h = host;
            int idx = node_add(r, h, (int)nd->element[1]->integer);
            if (k == 2)
                master = idx;
        }
        for (long long s = a; s <= b && s < NSLOTS; s++)
            if (s >= 0)
                r->slots[s] = (int16_t)master;
    }
    freeReplyObject(rep);
    r->map_stale = 0;
    rc = 0;
out:
    redisFree(c);
    return rc;
}

/* The slot map from the first node that answers: known nodes, then the URL's seeds. */
static int refresh_map(cs_redis *r, char *errstr, size_t errlen)
{
    char last[512] = "no node to ask";
    int n = r->nnodes;
    cs_redis_node *known = n ? malloc((size_t)n * sizeof *known) : NULL;
    if (n && !known)
        n = 0;
    if (known)
        memcpy(known, r->nodes, (size_t)n * sizeof *known);
    int rc = -1;
    for (int i = 0; i < n && rc < 0; i++)
        rc = map_from(r, known[i].host, known[i].port, last, sizeof last);
    int ns = r->t.nseeds ? r->t.nseeds : 1;
    for (int i = 0; i < ns && rc < 0; i++) {
        const cs_redis_node *sd = r->t.nseeds ? &r->t.seeds[i] : NULL;
        rc = map_from(r, sd ? sd->host : r->t.host, sd ? sd->port : r->t.port, last, sizeof last);
    }
    free(known);
    if (rc < 0)
        cs_seterr(errstr, errlen, "Redis Cluster: no node gave the slot map (last: %s)", last);
    return rc;
}

/* Connects to one node (TCP) as the current connection: AUTH (cluster: no SELECT). */
static int connect_node(cs_redis *r, const char *host, int port, int what, char *role,
                        size_t rolelen, char *errstr, size_t errlen)
{
    set_where(r, host, port);
    snprintf(r->cur.host, sizeof r->cur.host, "%s", host);
    r->cur.port = port;
    r->c = dial(r, host, port, r->connect_timeout_ms, errstr, errlen);
    if (!r->c)
        return link_fail(r, NULL, 0, "-");
    if (handshake(r->c, r->where, r->command_timeout_ms, r->t.user, r->t.password, r->t.db, what,
                  NULL, role, rolelen, errstr, errlen) < 0)
        return link_fail(r, NULL, 0, "-");
    return 0;
}

static int connect_cluster(cs_redis *r, char *errstr, size_t errlen)
{
    if (r->ask_pending) {
        r->ask_pending = 0;
        cs_redis_node a = r->ask;
        if (connect_node(r, a.host, a.port, 0, NULL, 0, errstr, errlen) < 0)
            return -1;
        r->asking = 1;
        return 0;
    }
    if ((!r->slots || r->map_stale) && refresh_map(r, errstr, errlen) < 0)
        return link_fail(r, NULL, 0, "-");
    int idx = r->slot >= 0 ? r->slots[r->slot] : -1;
    for (int s = 0; idx < 0 && s < NSLOTS; s++) /* no slot routed: any master */
        idx = r->slots[s];
    if (idx < 0) {
        r->map_stale = 1;
        cs_seterr(errstr, errlen, "Redis Cluster: no master serves slot %d (cluster down?)",
                  r->slot);
        return -1;
    }
    cs_redis_node nd = r->nodes[idx];
    return connect_node(r, nd.host, nd.port, 0, NULL, 0, errstr, errlen);
}

/* A plain URL: its server; the first time, INFO cluster says whether it is a cluster node. */
static int connect_plain(cs_redis *r, char *errstr, size_t errlen)
{
    const char *host = r->t.is_unix ? NULL : r->t.host;
    set_where(r, host, r->t.port);
    r->cur.host[0] = '\0';
    r->c = dial(r, host, r->t.port, r->connect_timeout_ms, errstr, errlen);
    if (!r->c)
        return link_fail(r, NULL, 0, "-");
    int cluster = 0;
    if (handshake(r->c, r->where, r->command_timeout_ms, r->t.user, r->t.password, r->t.db,
                  HS_SELECT | (r->checked ? 0 : HS_INFO_CLUSTER), &cluster, NULL, 0, errstr,
                  errlen) < 0)
        return link_fail(r, NULL, 0, "-");
    r->checked = 1;
    if (!cluster || r->t.is_unix) /* a cluster is reached over TCP (CLUSTER SLOTS names those) */
        return 0;
    /* a node of a Redis Cluster: from now on a cluster client seeded with it */
    cs_redis_close(r);
    r->mode = CS_REDIS_MODE_CLUSTER;
    r->map_stale = 1;
    return connect_cluster(r, errstr, errlen);
}

static int connect_sentinel(cs_redis *r, char *errstr, size_t errlen)
{
    char last[512] = "no sentinel";
    char host[256] = "";
    long long port = 0;
    int cms = r->connect_timeout_ms < 1000 ? r->connect_timeout_ms : 1000;
    for (int k = 0; k < r->t.nseeds && !host[0]; k++) {
        int i = (r->first_sentinel + k) % r->t.nseeds;
        const cs_redis_node *sn = &r->t.seeds[i];
        char where[320];
        snprintf(where, sizeof where, strchr(sn->host, ':') ? "sentinel [%s]:%d" : "sentinel %s:%d",
                 sn->host, sn->port);
        redisContext *c = dial(r, sn->host, sn->port, cms, last, sizeof last);
        if (!c)
            continue;
        if (handshake(c, where, r->command_timeout_ms, r->t.sentinel_user,
                      r->t.sentinel_password, 0, 0, NULL, NULL, 0, last, sizeof last) == 0) {
            redisReply *rep = redisCommand(c, "SENTINEL get-master-addr-by-name %s",
                                           r->t.master_name);
            if (!rep) {
                char b[256];
                snprintf(last, sizeof last, "%s: %s", where,
                         ctx_error(c, r->command_timeout_ms, b, sizeof b));
            } else if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
                       rep->element[0]->type == REDIS_REPLY_STRING &&
                       rep->element[1]->type == REDIS_REPLY_STRING &&
                       rep->element[0]->len < sizeof host) {
                port = strtoll(rep->element[1]->str, NULL, 10);
                if (port > 0 && port <= 65535) {
                    snprintf(host, sizeof host, "%s", rep->element[0]->str);
                    r->first_sentinel = i;
                } else {
                    snprintf(last, sizeof last, "%s: bad port '%s'", where, rep->element[1]->str);
                }
            } else {
                snprintf(last, sizeof last, "%s: %s", where,
                         rep->type == REDIS_REPLY_ERROR ? rep->str
                         : rep->type == REDIS_REPLY_NIL ? "does not know this master name"
                                                        : "unexpected reply");
            }
            freeReplyObject(rep);
        }
        redisFree(c);
    }
    if (!host[0]) {
        cs_seterr(errstr, errlen, "Redis Sentinel: no sentinel named the master '%s' (last: %s)",
                  r->t.master_name, last);
        return -1;
    }
    char role[32] = "";
    if (connect_node(r, host, (int)port, HS_SELECT | HS_ROLE, role, sizeof role, errstr,
                     errlen) < 0)
        return -1;
    if (strcmp(role, "master") != 0) {
        /* a failover in progress: the sentinels have not switched yet, or the node was demoted */
        cs_seterr(errstr, errlen, "%s: the sentinels name it master of '%s' but its ROLE is '%s'",
                  r->where, r->t.master_name, role[0] ? role : "?");
        return link_fail(r, NULL, 0, "-");
    }
    return 0;
}

/* The class of a failed connect, from its message: Redis's own refusal of AUTH / SELECT / ROLE
 * ("... failed: <Redis's text>"), a sentinel-named node that is a replica (READONLY: not a
 * master yet), a cluster without a master for the slot (CLUSTERDOWN), else no answer. */
static int connect_class(const char *err)
{
    const char *f = strstr(err, " failed: ");
    if (f)
        return cs_redis_class_of(f + 9, strlen(f + 9));
    if (strstr(err, "but its ROLE is"))
        return CS_REDIS_READONLY;
    if (strstr(err, "no master serves slot"))
        return CS_REDIS_CLUSTERDOWN;
    return CS_REDIS_UNREACHABLE;
}

int cs_redis_connect(cs_redis *r, char *errstr, size_t errlen)
{
    if (r->c)
        return 0;
    cs_pipe_guard g;
    cs_pipe_guard_on(&g);
    char err[512] = "";
    int rc;
    switch (r->mode) {
    case CS_REDIS_MODE_CLUSTER:
        rc = connect_cluster(r, err, sizeof err);
        break;
    case CS_REDIS_MODE_SENTINEL:
        rc = connect_sentinel(r, err, sizeof err);
        break;
    default:
        rc = connect_plain(r, err, sizeof err);
        break;
    }
    if (rc < 0) {
        cs_seterr(errstr, errlen, "%s", err);
        r->fail_class = connect_class(err);
    } else {
        r->gen++;
    }
    cs_pipe_guard_off(&g);
    return rc;
}

/* ---- redirections ---------------------------------------------------------------------------- */

int cs_redis_redirect(cs_redis *r, const char *err, size_t len, int *delay_ms)
{
    if (delay_ms)
        *delay_ms = 0;
    if (!err)
        return CS_REDIS_FINAL;
    cs_redis_class k = cs_redis_class_of(err, len);
    if (r->mode == CS_REDIS_MODE_SENTINEL) {
        /* READONLY: the node we write to is a replica now (a failover demoted it); a script's
         * error may carry it inside its text on older servers */
        if (k == CS_REDIS_READONLY || memmem(err, len, "READONLY", 8)) {
            cs_redis_close(r);
            return CS_REDIS_RESEND;
        }
        return CS_REDIS_FINAL;
    }
    if (r->mode != CS_REDIS_MODE_CLUSTER)
        return CS_REDIS_FINAL;
    if (k == CS_REDIS_MOVED || k == CS_REDIS_ASK) {
        cs_redis_redir d;
        if (cs_redis_parse_redirect(err, len, &d) < 0)
            return CS_REDIS_FINAL;
        if (!d.host[0]) /* "MOVED 1 :6380": the host of this connection */
            snprintf(d.host, sizeof d.host, "%s", r->cur.host[0] ? r->cur.host : r->t.host);
        r->tryagain = 0;
        if (d.ask) {
            r->ask_pending = 1;
            snprintf(r->ask.host, sizeof r->ask.host, "%s", d.host);
            r->ask.port = d.port;
            cs_redis_close(r);
            return CS_REDIS_RESEND_ASKING;
        }
        int idx = node_add(r, d.host, d.port);
        r->slot = d.slot; /* an unrouted cs_redis learns its slot from the redirection */
        if (r->slots && idx >= 0)
            r->slots[d.slot] = (int16_t)idx;
        else
            r->map_stale = 1;
        if (!r->c || r->asking || idx < 0 || strcmp(r->cur.host, d.host) != 0 ||
            r->cur.port != d.port)
            cs_redis_close(r);
        return CS_REDIS_RESEND;
    }
    if (k == CS_REDIS_CLUSTERDOWN) {
        int64_t now = cs_mono_ms();
        if (now - r->tryagain_ms > 2000)
            r->tryagain = 0;
        r->tryagain_ms = now;
        int d = TRYAGAIN_MIN_MS << (r->tryagain < 6 ? r->tryagain : 6);
        r->tryagain++;
        if (delay_ms)
            *delay_ms = d < TRYAGAIN_MAX_MS ? d : TRYAGAIN_MAX_MS;
        if (len >= 11 && memcmp(err[0] == '-' ? err + 1 : err, "CLUSTERDOWN", 11) == 0) {
            /* the map may be wrong (a failover): read it again on a new connection */
            cs_redis_close(r);
            r->map_stale = 1;
        }
        return CS_REDIS_RESEND_LATER;
    }
    return CS_REDIS_FINAL;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* ---- commands -------------------------------------------------------------------------------- */

redisReply *cs_redis_cmd(cs_redis *r, int argc, const char **argv, const size_t *lens,
                         char *errstr, size_t errlen)
{
    size_t l[16];
    if (!lens) {
        for (int i = 0; i < argc && i < 16; i++)
            l[i] = strlen(argv[i]);
        lens = l;
    }
    int64_t deadline = cs_mono_ms() + r->command_timeout_ms;
    for (int hop = 0;; hop++) {
        if (cs_redis_connect(r, errstr, errlen) < 0)
            return NULL;
        cs_pipe_guard g;
        cs_pipe_guard_on(&g);
        int asking = r->asking;
        redisReply *rep = NULL;
        if (asking && redisAppendCommand(r->c, "ASKING") == REDIS_OK) {
            void *ok = NULL;
            if (redisAppendCommandArgv(r->c, argc, argv, lens) == REDIS_OK &&
                redisGetReply(r->c, &ok) == REDIS_OK && ok) {
                freeReplyObject(ok);
                redisGetReply(r->c, (void **)&rep);
            }
        } else {
            rep = redisCommandArgv(r->c, argc, argv, lens);
        }
        if (!rep) {
            char b[256];
            link_fail(r, errstr, errlen, "%s %s: %s", r->where, argv[0],
                      cs_redis_io_error(r, b, sizeof b));
        } else if (asking) {
            cs_redis_close(r); /* one request per ASK */
        }
        cs_pipe_guard_off(&g);
        if (!rep || rep->type != REDIS_REPLY_ERROR || hop >= CS_REDIS_MAX_REDIRECTS)
            return rep;
        int delay;
        int act = cs_redis_redirect(r, rep->str, (size_t)rep->len, &delay);
        if (act == CS_REDIS_FINAL ||
            (act == CS_REDIS_RESEND_LATER && cs_mono_ms() + delay > deadline))
            return rep;
        freeReplyObject(rep);
        if (delay)
            sleep_ms(delay);
    }
}

/* An error reply a cluster or sentinel client sends again (cs_redis_redirect decides). */
static int redirectable(const cs_redis *r, const redisReply *x)
{
    if (x->type != REDIS_REPLY_ERROR || r->mode == CS_REDIS_MODE_PLAIN)
        return 0;
    cs_redis_class c = cs_redis_class_of(x->str, (size_t)x->len);
    if (r->mode == CS_REDIS_MODE_SENTINEL)
        return c == CS_REDIS_READONLY;
    return c == CS_REDIS_MOVED || c == CS_REDIS_ASK || c == CS_REDIS_CLUSTERDOWN;
}

int cs_redis_pipeline(cs_redis *r, int n, const char *const (*argv)[8], const int *argc,
                      redisReply **out, char *errstr, size_t errlen)
{
    int idx[n > 0 ? n : 1], np = n;
    for (int i = 0; i < n; i++) {
        idx[i] = i;
        out[i] = NULL;
    }
    int64_t deadline = cs_mono_ms() + r->command_timeout_ms;
    int rc = 0;
    for (int hop = 0; np > 0; hop++) {
        if (cs_redis_connect(r, errstr, errlen) < 0) {
            rc = -1;
            break;
        }
        cs_pipe_guard g;
        cs_pipe_guard_on(&g);
        int asking = r->asking;
        for (int k = 0; k < np && rc == 0; k++) {
            int i = idx[k];
            size_t lens[8];
            for (int a = 0; a < argc[i] && a < 8; a++)
                lens[a] = strlen(argv[i][a]);
            if ((asking && redisAppendCommand(r->c, "ASKING") != REDIS_OK) ||
                redisAppendCommandArgv(r->c, argc[i], (const char **)argv[i], lens) != REDIS_OK)
                rc = link_fail(r, errstr, errlen, "%s: %s", r->where, r->c->errstr);
        }
        /* every reply first (a redirect may close the connection), then what to send again */
        int first = -1;
        for (int k = 0; k < np && rc == 0; k++) {
            int i = idx[k];
            void *rep = NULL;
            int ok = 1;
            if (asking) {
                ok = redisGetReply(r->c, &rep) == REDIS_OK && rep;
                if (rep)
                    freeReplyObject(rep);
                rep = NULL;
            }
            if (!ok || redisGetReply(r->c, &rep) != REDIS_OK || !rep) {
                rc = link_fail(r, errstr, errlen, "%s %s: %s", r->where, argv[i][0],
                               r->c && r->c->errstr[0] ? r->c->errstr : "connection lost");
                break;
            }
            out[i] = rep;
            if (first < 0 && hop < CS_REDIS_MAX_REDIRECTS && redirectable(r, out[i]))
                first = i;
        }
        if (rc == 0 && asking)
            cs_redis_close(r); /* one request per ASK */
        cs_pipe_guard_off(&g);
        if (rc < 0 || first < 0)
            break;
        int delay = 0;
        int act = cs_redis_redirect(r, out[first]->str, (size_t)out[first]->len, &delay);
        if (act == CS_REDIS_FINAL ||
            (act == CS_REDIS_RESEND_LATER && cs_mono_ms() + delay > deadline))
            break; /* the error replies are the answer */
        int nnext = 0;
        for (int k = 0; k < np; k++) {
            int i = idx[k];
            if (redirectable(r, out[i])) {
                freeReplyObject(out[i]);
                out[i] = NULL;
                idx[nnext++] = i;
            }
        }
        np = nnext;
        if (delay)
            sleep_ms(delay);
    }
    if (rc < 0)
        for (int i = 0; i < n; i++) {
            if (out[i])
                freeReplyObject(out[i]);
            out[i] = NULL;
        }
    return rc;
}

/* SCAN of one node on its own connection (cluster, a master other than the routed one). */
static int scan_node(cs_redis *r, redisContext *c, const char *where, const char *pattern,
                     int (*cb)(const char *, size_t, void *), void *arg, char *errstr,
                     size_t errlen)
{
    char cursor[32] = "0";
    do {
        redisReply *rep = redisCommand(c, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        if (!rep) {
            char b[256];
            cs_seterr(errstr, errlen, "%s SCAN: %s", where,
                      ctx_error(c, r->command_timeout_ms, b, sizeof b));
            return -1;
        }
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
            rep->element[0]->type != REDIS_REPLY_STRING ||
            rep->element[1]->type != REDIS_REPLY_ARRAY) {
            cs_seterr(errstr, errlen, "%s SCAN: %s", where,
                      rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
            freeReplyObject(rep);
            return -1;
        }
        snprintf(cursor, sizeof cursor, "%s", rep->element[0]->str);
        redisReply *a = rep->element[1];
        for (size_t i = 0; i < a->elements; i++)
            if (a->element[i]->type == REDIS_REPLY_STRING &&
                cb(a->element[i]->str, (size_t)a->element[i]->len, arg) != 0) {
                freeReplyObject(rep);
                cs_seterr(errstr, errlen, "stopped");
                return -1;
            }
        freeReplyObject(rep);
    } while (strcmp(cursor, "0") != 0);
    return 0;
}

/* 1 when pattern has a hash tag with no glob character in it: its keys are in one slot */
static int literal_tag(const char *pattern)
{
    const char *o = strchr(pattern, '{');
    const char *c = o ? strchr(o + 1, '}') : NULL;
    if (!c || c == o + 1)
        return 0;
    for (const char *p = pattern; p < c; p++)
        if (*p == '*' || *p == '?' || *p == '[' || *p == '\\')
            return 0;
    return 1;
}

int cs_redis_scan(cs_redis *r, const char *pattern,
                  int (*cb)(const char *key, size_t len, void *arg), void *arg, char *errstr,
                  size_t errlen)
{
    if (cs_redis_connect(r, errstr, errlen) < 0)
        return -1;
    cs_pipe_guard g;
    cs_pipe_guard_on(&g);
    int rc;
    if (r->mode != CS_REDIS_MODE_CLUSTER || !r->slots) {
        rc = scan_node(r, r->c, r->where, pattern, cb, arg, errstr, errlen);
    } else if (literal_tag(pattern)) {
        /* the slot of the tag: route there (the braces and what is between them decide) */
        cs_redis_route(r, pattern, strlen(pattern));
        rc = cs_redis_connect(r, errstr, errlen);
        if (rc == 0)
            rc = scan_node(r, r->c, r->where, pattern, cb, arg, errstr, errlen);
    } else {
        /* every master once, each on its own short connection */
        rc = 0;
        char seen[MAX_NODES] = {0};
        for (int s = 0; s < NSLOTS && rc == 0; s++) {
            int m = r->slots[s];
            if (m < 0 || seen[m])
                continue;
            seen[m] = 1;
            cs_redis_node nd = r->nodes[m];
            char where[320];
            snprintf(where, sizeof where, strchr(nd.host, ':') ? "[%s]:%d" : "%s:%d", nd.host,
                     nd.port);
            redisContext *c = dial(r, nd.host, nd.port, r->connect_timeout_ms, errstr, errlen);
            if (!c) {
                rc = -1;
                break;
            }
            rc = handshake(c, where, r->command_timeout_ms, r->t.user, r->t.password, 0, 0, NULL,
                           NULL, 0, errstr, errlen);
            if (rc == 0)
                rc = scan_node(r, c, where, pattern, cb, arg, errstr, errlen);
            redisFree(c);
        }
        if (rc < 0)
            r->map_stale = 1;
    }
    if (rc < 0 && r->c && r->c->err)
        cs_redis_close(r);
    cs_pipe_guard_off(&g);
    return rc;
}

/* ---- error classes ------------------------------------------------------------------------- */

static const char *const class_names[CS_REDIS__COUNT] = {
    [CS_REDIS_OK] = "ok",
    [CS_REDIS_OOM] = "oom",
    [CS_REDIS_READONLY] = "readonly",
    [CS_REDIS_NOPERM] = "noperm",
    [CS_REDIS_WRONGTYPE] = "wrongtype",
    [CS_REDIS_BUSY] = "busy",
    [CS_REDIS_LOADING] = "loading",
    [CS_REDIS_NOSCRIPT] = "noscript",
    [CS_REDIS_MASTERDOWN] = "masterdown",
    [CS_REDIS_MOVED] = "moved",
    [CS_REDIS_ASK] = "ask",
    [CS_REDIS_CLUSTERDOWN] = "clusterdown",
    [CS_REDIS_AUTH] = "auth",
    [CS_REDIS_UNREACHABLE] = "unreachable",
    [CS_REDIS_OTHER] = "other",
};

const char *cs_redis_class_name(cs_redis_class c)
{
    return (unsigned)c < CS_REDIS__COUNT ? class_names[c] : "other";
}

const char *cs_redis_class_meaning(cs_redis_class c)
{
    switch (c) {
    case CS_REDIS_OOM: return "Redis is out of memory (maxmemory reached under noeviction)";
    case CS_REDIS_READONLY: return "Redis is a read-only replica (a failover demoted the node?)";
    case CS_REDIS_NOPERM: return "the Redis user lacks a permission (ACL)";
    case CS_REDIS_WRONGTYPE: return "a key under the prefix holds another type (another client writes there)";
    case CS_REDIS_BUSY: return "Redis is busy running a script";
    case CS_REDIS_LOADING: return "Redis is loading its dataset";
    case CS_REDIS_NOSCRIPT: return "Redis lost the flush script (it is loaded again)";
    case CS_REDIS_MASTERDOWN: return "Redis is a replica whose master is down";
    case CS_REDIS_MOVED:
    case CS_REDIS_ASK: return "the journey's Redis Cluster slot lives on another node";
    case CS_REDIS_CLUSTERDOWN: return "the Redis Cluster cannot serve the journey's slot";
    case CS_REDIS_AUTH: return "Redis refuses the credentials";
    case CS_REDIS_UNREACHABLE: return "Redis is unreachable";
    default: return "Redis answers with an error";
    }
}

int cs_redis_class_transient(cs_redis_class c)
{
    return c == CS_REDIS_OK || c == CS_REDIS_UNREACHABLE || c == CS_REDIS_NOSCRIPT ||
           c == CS_REDIS_MOVED || c == CS_REDIS_ASK || c == CS_REDIS_CLUSTERDOWN;
}

cs_redis_class cs_redis_class_of(const char *err, size_t len)
{
    static const struct {
        const char *word;
        cs_redis_class c;
    } words[] = {
        {"OOM", CS_REDIS_OOM},           {"READONLY", CS_REDIS_READONLY},
        {"NOPERM", CS_REDIS_NOPERM},     {"WRONGTYPE", CS_REDIS_WRONGTYPE},
        {"BUSY", CS_REDIS_BUSY},         {"LOADING", CS_REDIS_LOADING},
        {"NOSCRIPT", CS_REDIS_NOSCRIPT}, {"MASTERDOWN", CS_REDIS_MASTERDOWN},
        {"MOVED", CS_REDIS_MOVED},       {"ASK", CS_REDIS_ASK},
        {"CLUSTERDOWN", CS_REDIS_CLUSTERDOWN}, {"TRYAGAIN", CS_REDIS_CLUSTERDOWN},
        {"NOAUTH", CS_REDIS_AUTH},       {"WRONGPASS", CS_REDIS_AUTH},
    };
    /* inside "ERR ...": phrases Redis uses when it wraps an error of a script's command */
    static const struct {
        const char *phrase;
        cs_redis_class c;
    } phrases[] = {
        {"can't run this command", CS_REDIS_NOPERM}, {"no permissions", CS_REDIS_NOPERM},
        {"OOM command not allowed", CS_REDIS_OOM},   {"read only replica", CS_REDIS_READONLY},
        {"WRONGTYPE", CS_REDIS_WRONGTYPE},           {"-READONLY", CS_REDIS_READONLY},
        {"-NOPERM", CS_REDIS_NOPERM},                {"-OOM", CS_REDIS_OOM},
    };
    if (!err || !len)
        return CS_REDIS_OTHER;
    if (err[0] == '-') {
        err++;
        len--;
    }
    if (len > 8 && memcmp(err, "PARTIAL ", 8) == 0) {
        err += 8;
        len -= 8;
    }
    size_t w = 0;
    while (w < len && err[w] != ' ')
        w++;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strlen(words[i].word) == w && memcmp(words[i].word, err, w) == 0)
            return words[i].c;
    if (w == 3 && memcmp(err, "ERR", 3) == 0)
        for (size_t i = 0; i < sizeof phrases / sizeof phrases[0]; i++)
            if (memmem(err, len, phrases[i].phrase, strlen(phrases[i].phrase)))
                return phrases[i].c;
    return CS_REDIS_OTHER;
}
