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
 *    connect timeout, the command timeout on the socket, then AUTH and SELECT pipelined in one
 *    round trip. Any failure closes the connection and fills errstr with "<where>: ...", where
 *    <where> is "host:port" or "unix:/path" — never the user info.
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
/* "host:port", "[v6]:port" or "unix:/path": for messages. */
const char *cs_redis_where(const cs_redis *r);
const cs_redis_target *cs_redis_target_of(const cs_redis *r);
int cs_redis_command_timeout_ms(const cs_redis *r);

/* One command; connects first if needed. lens NULL: argv are NUL-terminated. Returns the reply
 * (error replies included; the caller frees it) or NULL on a link failure (closed, errstr). */
redisReply *cs_redis_cmd(cs_redis *r, int argc, const char **argv, const size_t *lens,
                         char *errstr, size_t errlen);
/* n commands of up to 8 NUL-terminated arguments each, one round trip; replies into out[n].
 * 0 ok (replies may be error replies), -1 link failure (nothing in out, errstr). */
int cs_redis_pipeline(cs_redis *r, int n, const char *const (*argv)[8], const int *argc,
                      redisReply **out, char *errstr, size_t errlen);

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
 * readiness check gives them a grace period; 0 for the refusals someone has to act on. */
int cs_redis_class_transient(cs_redis_class c);

/* ---- SIGPIPE guard ---- */
typedef struct cs_pipe_guard {
    sigset_t old;
    int was_pending;
} cs_pipe_guard;
void cs_pipe_guard_on(cs_pipe_guard *g);
void cs_pipe_guard_off(cs_pipe_guard *g);

#endif
