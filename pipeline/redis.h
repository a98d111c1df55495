/* redis.h — the one Redis layer. Every connection clickstage makes to Redis is made here: the
 * sink's flushes and the assignment look-ups (pipeline/sink.c), /api/journey
 * (cmd/clickstage/journey.c), clickstage-top, cs_checkredis, clickstage-loadgen's latency watcher
 * and the benchmarks. Key names are pipeline/rkeys.h's.
 *
 * Contract
 *  - A cs_redis is a URL, parsed once (pipeline/redisurl.h: redis://, unix://, a socket path),
 *    plus at most one live hiredis connection to the server it names. Constructing one does no
 *    I/O; a bad URL fails the constructor with errstr (never quoting the password).
 *  - cs_redis_connect() connects if not connected: TCP (keep-alive) or unix socket within the
 *    connect timeout, the command timeout on the socket, then AUTH, SELECT and (plain URLs, first
 *    connect only) INFO cluster, or ROLE (sentinel), pipelined in one round trip. Any failure
 *    closes the connection and fills errstr with "<where>: ...", where <where> is "host:port" or
 *    "unix:/path" of the node it talks to (cluster, sentinel: the current one) — never the user
 *    info.
 *  - Errors are of two kinds, and callers treat them differently: a link failure (no reply:
 *    connect, I/O, timeout, EOF — the connection is closed) and an error reply (Redis answered
 *    "-ERR ..."; the connection stays usable). cs_redis_cmd/cs_redis_pipeline return NULL/-1 only
 *    for the first; error replies come back as replies. cs_redis_class() names an error reply's
 *    class (OOM, READONLY, NOPERM, ...) for logs, metrics and readiness.
 *  - SIGPIPE: hiredis 0.14 writes with write(2), which raises SIGPIPE on a socket the peer
 *    closed. Every function here that does I/O blocks it in the calling thread and consumes one
 *    that became pending meanwhile (cs_pipe_guard). A caller that drives the hiredis context
 *    itself (the sink's pipelined flush) brackets its I/O with cs_pipe_guard_on/off.
 *  - One thread at a time per cs_redis; several cs_redis may talk to the same server.
 *
 * Redis Cluster and Sentinel (docs/redis.md "Cluster, Sentinel, failover"). hiredis 0.14 has
 * neither; what clickstage needs of them is small, because every key of a journey carries the
 * hash tag {J} (pipeline/rkeys.h) and so lives in ONE slot: a cs_redis talks to one node at a
 * time, the node that serves the slot its user routed it to (cs_redis_route).
 *  - A plain redis:// URL whose server says cluster_enabled:1 (INFO cluster, asked in the
 *    connect round trip) turns the cs_redis into a cluster client seeded with that node;
 *    redis+cluster://a,b,c says so up front and gives several seeds. The slot map comes from
 *    CLUSTER SLOTS (any node: known nodes first, then the seeds) on the first connect and after
 *    any link failure or CLUSTERDOWN (that is how a failover is re-discovered: the dead master
 *    stops answering, the map from a survivor names the promoted replica once it is promoted).
 *  - MOVED updates the slot's master and the command is sent again there; ASK sends it once to
 *    the importing node preceded by ASKING (on a connection made for that one request; the next
 *    request goes to the slot's owner again, as the protocol requires); TRYAGAIN and CLUSTERDOWN
 *    are retried after a capped backoff (10 ms doubling to 500 ms). cs_redis_cmd,
 *    cs_redis_pipeline and cs_redis_scan do all of this themselves; a caller that pipelines by
 *    hand (the sink's EVALSHA) asks cs_redis_redirect() what an error reply means and
 *    cs_redis_asking() whether to put ASKING in front.
 *  - redis+sentinel://s1,s2/name: each connect asks the sentinels in turn for the master
 *    (SENTINEL get-master-addr-by-name), connects there and checks ROLE says "master" (in the
 *    same round trip as AUTH and SELECT). Any link failure re-asks on the next connect; so does
 *    READONLY (a master demoted under us; cs_redis_redirect). No +switch-master subscription:
 *    a write that reaches a deposed master is caught by the flush fence when the promoted one
 *    lacks it (docs/state.md), which a subscription would only make rarer.
 *  Rejected: a connection per cluster node kept open (the users hold one connection each and
 *  speak to one slot; ASK is rare and short-lived, one connection made for it costs a round
 *  trip); hiredis-vip / hiredis-cluster (not in Debian 12, and a second client library).
 *
 * Rejected: hiredis' redisConnect* + redisCommand in each caller (six copies of AUTH/SELECT and
 * of the SIGPIPE guard, each with its own error text); a connection pool (every user holds one
 * connection for its whole life).
 */
#ifndef CS_REDIS_H
#define CS_REDIS_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "redisurl.h"

typedef struct cs_redis cs_redis;

typedef struct cs_redis_opts {
    const char *url;        /* NULL or "" = redis://127.0.0.1:6379 */
    int connect_timeout_ms; /* <= 0: 2000 */
    int command_timeout_ms; /* <= 0: 5000 */
} cs_redis_opts;

cs_redis *cs_redis_new(const cs_redis_opts *o, char *errstr, size_t errlen);
void cs_redis_free(cs_redis *r);

/* 0 connected (now or already), -1 link failure (errstr). */
int cs_redis_connect(cs_redis *r, char *errstr, size_t errlen);
/* What the last failed cs_redis_connect met, a cs_redis_class (declared below):
 * CS_REDIS_UNREACHABLE (no answer: refused, timed out, closed) or the class of Redis's error
 * reply to AUTH or SELECT (CS_REDIS_AUTH for a wrong password, CS_REDIS_OTHER for a bad db). */
int cs_redis_connect_failure(const cs_redis *r);
/* Closes the connection (the next call connects again). */
void cs_redis_close(cs_redis *r);
int cs_redis_connected(const cs_redis *r);
/* The live hiredis context (NULL when closed), for callers that pipeline by hand. */
redisContext *cs_redis_ctx(cs_redis *r);
/* A number that changes with every new connection (0 before the first): a caller that keeps
 * per-connection state (the sink: CLIENT ID, the loaded script) compares it rather than the
 * context's address, which a new connection may reuse after the layer closed the old one (a
 * cluster re-route, an ASK). */
uint64_t cs_redis_generation(const cs_redis *r);
/* "host:port", "[v6]:port" or "unix:/path": for messages. */
const char *cs_redis_where(const cs_redis *r);
const cs_redis_target *cs_redis_target_of(const cs_redis *r);
int cs_redis_command_timeout_ms(const cs_redis *r);

/* One command; connects first if needed. lens NULL: argv are NUL-terminated. Returns the reply
 * (error replies included; the caller frees it) or NULL on a link failure (closed, errstr). */
redisReply *cs_redis_cmd(cs_redis *r, int argc, const char **argv, const size_t *lens,
                         char *errstr, size_t errlen);
/* n commands of up to 8 NUL-terminated arguments each, one round trip; replies into out[n].
 * 0 ok (replies may be error replies), -1 link failure (nothing in out, errstr). In a cluster the
 * commands that were redirected are sent again (only those): give it commands that are
 * idempotent (reads). */
int cs_redis_pipeline(cs_redis *r, int n, const char *const (*argv)[8], const int *argc,
                      redisReply **out, char *errstr, size_t errlen);

/* SCAN ... MATCH pattern COUNT 1000 to the end, calling cb once per key returned (a key may come
 * twice, as SCAN says). In a cluster: a pattern with a literal hash tag ({J}, no glob in it)
 * scans the node of that slot; any other pattern scans every master, each on a connection of its
 * own. 0 ok, -1 failure (errstr; a cb returning non-zero stops with -1 too). */
int cs_redis_scan(cs_redis *r, const char *pattern,
                  int (*cb)(const char *key, size_t len, void *arg), void *arg, char *errstr,
                  size_t errlen);

/* ---- cluster routing ----------------------------------------------------------------------- */

/* The slot of a key: CRC16 (XMODEM) mod 16384 of its hash tag, the part between the first '{'
 * and the next '}' when that is not empty, else of the whole key (Redis Cluster spec). */
unsigned cs_redis_key_slot(const char *key, size_t len);
/* The commands that follow are about keys of key's slot (pass any key of the journey, e.g. its
 * "<prefix>:{J}:" base): in a cluster the connection goes to that slot's master (a live
 * connection to another node is closed). Harmless without a cluster. */
void cs_redis_route(cs_redis *r, const char *key, size_t len);
/* 1 when this cs_redis speaks to a Redis Cluster (redis+cluster://, or detected). */
int cs_redis_is_cluster(const cs_redis *r);

/* A MOVED or ASK error reply ("MOVED 3999 127.0.0.1:6381", "ASK 3999 ::1:6381"; an empty host
 * means the host of the connection that got it): 0 and *out filled, -1 when it is not one. */
typedef struct cs_redis_redir {
    int ask;     /* 0 MOVED, 1 ASK */
    int slot;
    char host[256];
    int port;
} cs_redis_redir;
int cs_redis_parse_redirect(const char *err, size_t len, cs_redis_redir *out);

/* What an error reply to a command on the routed slot means, for a caller that pipelines by
 * hand. The reply's command was NOT executed in each case but CS_REDIS_FINAL.
 *  CS_REDIS_FINAL          an answer (an ordinary error reply, or not in a cluster / sentinel
 *                          set-up): handle it yourself
 *  CS_REDIS_RESEND         MOVED (slot map updated), or READONLY from a sentinel-named master
 *                          (demoted): the connection may have been closed; connect and send again
 *  CS_REDIS_RESEND_ASKING  ASK: the connection was closed; the next cs_redis_connect() goes to the
 *                          importing node and cs_redis_asking() is 1: send ASKING first, and
 *                          close after that one request (cs_redis_close)
 *  CS_REDIS_RESEND_LATER   TRYAGAIN / CLUSTERDOWN: send again after *delay_ms (10 ms doubling to
 *                          500 ms over a streak); CLUSTERDOWN also closes and re-reads the map */
enum { CS_REDIS_FINAL = 0, CS_REDIS_RESEND, CS_REDIS_RESEND_ASKING, CS_REDIS_RESEND_LATER };
int cs_redis_redirect(cs_redis *r, const char *err, size_t len, int *delay_ms);
/* 1 while the live connection was made for one ASK'd request (see above). */
int cs_redis_asking(const cs_redis *r);
/* Redirections to follow in one call before giving up with the last error reply. */
#define CS_REDIS_MAX_REDIRECTS 8

/* hiredis' text for the last I/O error of the connection, a timeout called a timeout. */
const char *cs_redis_io_error(cs_redis *r, char *buf, size_t n);

/* ---- error replies -------------------------------------------------------------------------
 * The class of a Redis error reply, by its first word (the Redis convention). Order is the
 * order metrics list them in. */
typedef enum cs_redis_class {
    CS_REDIS_OK = 0,       /* not an error */
    CS_REDIS_OOM,          /* OOM: maxmemory reached under noeviction */
    CS_REDIS_READONLY,     /* READONLY: a replica (failover demoted the node) */
    CS_REDIS_NOPERM,       /* NOPERM: the ACL user may not run a command or touch a key */
    CS_REDIS_WRONGTYPE,    /* WRONGTYPE: a key holds another type (another client wrote it) */
    CS_REDIS_BUSY,         /* BUSY: a script runs too long */
    CS_REDIS_LOADING,      /* LOADING: loading its dataset after a restart */
    CS_REDIS_NOSCRIPT,     /* NOSCRIPT: the script cache lost the flush script */
    CS_REDIS_MASTERDOWN,   /* MASTERDOWN: a replica whose master link is down */
    CS_REDIS_MOVED,        /* MOVED: Redis Cluster, the slot lives elsewhere now */
    CS_REDIS_ASK,          /* ASK: Redis Cluster, the slot is migrating */
    CS_REDIS_CLUSTERDOWN,  /* CLUSTERDOWN / TRYAGAIN: the cluster cannot serve the slot now */
    CS_REDIS_AUTH,         /* NOAUTH / WRONGPASS: authentication */
    CS_REDIS_UNREACHABLE,  /* not an error reply: no reply at all (connect, I/O, timeout, EOF) */
    CS_REDIS_OTHER,        /* any other error reply */
    CS_REDIS__COUNT
} cs_redis_class;
/* The class of an error reply's text: its first word (a leading "-" and the flush script's
 * "PARTIAL " skipped); for "ERR ..." (what Redis makes of an error inside a script, e.g. an ACL
 * denial: "ERR The user executing the script can't run this command"), the words and phrases
 * each class is known by. */
cs_redis_class cs_redis_class_of(const char *err, size_t len);
/* "oom", "readonly", ... (the metric label); "ok" for CS_REDIS_OK. */
const char *cs_redis_class_name(cs_redis_class c);
/* What the class means for a client that writes, one phrase ("Redis is a read-only replica
 * (a failover demoted the node?)"): the log, /readyz, the web view, clickstage-top. */
const char *cs_redis_class_meaning(cs_redis_class c);
/* 1 for the classes a retry usually gets past by itself within a second or two (no reply: a
 * reconnect; NOSCRIPT: the script is loaded again; MOVED/ASK: the slot map is read again), so a
 * readiness check gives them a grace period; 0 for the refusals someone has to act on.
 * CLUSTERDOWN/TRYAGAIN count as passing: a cluster failover (seconds) or a slot migration's
 * split window answers them; one that lasts is named after the grace period. */
int cs_redis_class_transient(cs_redis_class c);

/* ---- SIGPIPE guard ---- */
typedef struct cs_pipe_guard {
    sigset_t old;
    int was_pending;
} cs_pipe_guard;
void cs_pipe_guard_on(cs_pipe_guard *g);
void cs_pipe_guard_off(cs_pipe_guard *g);

#endif
