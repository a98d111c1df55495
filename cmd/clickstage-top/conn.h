/* conn.h — clickstage-top's two Redis connections (made by the one Redis layer,
 * pipeline/redis.h: blocking, with timeouts, AUTH and SELECT): one for reads (SCAN, one
 * MULTI/EXEC of HGETALLs per refresh) and one subscribed to the journey's updates channel, read
 * only when poll() says its socket is readable. Any error closes both; the caller reconnects.
 * Key names are pipeline/rkeys.h's.
 */
#ifndef TOP_CONN_H
#define TOP_CONN_H

#include <stddef.h>

#include "model.h"
#include "url.h"

typedef struct redisContext redisContext;
typedef struct cs_redis cs_redis;

typedef struct top_conn {
    const top_url *url;         /* for the screen (where) */
    const char *redis_url;      /* what the connections are made from */
    int connect_timeout_ms;     /* default 1000 */
    int command_timeout_ms;     /* default 2000 */
    cs_redis *cmdr, *subr;      /* the connections */
    redisContext *cmd, *sub;    /* their live hiredis contexts (NULL when closed) */
    char err[256];              /* why the last call failed */
    char warn[256];             /* non-fatal: a key of the wrong type, bad values */
} top_conn;

/* Opens the command connection (AUTH, SELECT). 0 ok, -1 c->err. */
int top_conn_open(top_conn *c);
/* Opens the subscriber connection and subscribes to channel. 0 ok, -1 c->err. */
int top_conn_subscribe(top_conn *c, const char *channel);
void top_conn_close(top_conn *c);
/* fd to poll for update messages, -1 when not subscribed. */
int top_conn_sub_fd(const top_conn *c);
/* Reads what the subscriber socket has: *got counts messages, *u is the newest parsable one
 * (left alone if none). 0 ok, -1 connection error (c->err). */
int top_conn_sub_read(top_conn *c, top_update *u, int *got);

/* The journey's keys are in one Redis Cluster slot: the command connection goes to its node
 * (no-op without a cluster). top_conn_fetch does it itself. */
void top_conn_route(top_conn *c, const char *prefix, const char *journey);

/* Every key matching pattern (SCAN … MATCH … COUNT 1000; in a Redis Cluster on the journey's
 * node, or on every master for a pattern of several journeys), malloc'd. 0 ok, -1 c->err. */
int top_conn_scan(top_conn *c, const char *pattern, char ***keys, size_t *nkeys);

/* One consistent snapshot (MULTI … EXEC) of the journey's hashes into m (reset first, finished
 * after): meta, active, reached, transitions, ended, ended_by, sessions, events, invalid,
 * customers, and by:<dim>:reached / by:<dim>:active when dim is not NULL. 0 ok, -1 c->err
 * (connection or protocol error). A key holding another type leaves that hash empty and is
 * named in c->warn. */
int top_conn_fetch(top_conn *c, const char *prefix, const char *journey, const char *dim,
                   top_model *m);

/* INFO's text (malloc'd, *len bytes) on the command connection, for top_info_hint. 0 ok, -1
 * c->err (an error reply, e.g. an ACL that denies INFO, leaves the connection usable). */
int top_conn_info(top_conn *c, char **text, size_t *len);

#endif
