/* redisurl.h — the one parser for Redis URLs (docs/redis.md "Connecting"). It serves the
 * daemon's `redis` option (cmd/clickstage/config.c, through cs_config_parse_redis_url), the sink
 * that connects with it (pipeline/sink.c), the HTTP server's own connection and clickstage-top.
 * Pure: no I/O, no allocation, no hiredis.
 *
 *   redis://[[user]:password@]host[:port][/db][?db=N]
 *       host: a name of [A-Za-z0-9._-], an IPv4 address or [IPv6] (hex digits, ':', '.', '%')
 *       port: 1..65535, default 6379
 *       (a node of a Redis Cluster is detected when connecting: pipeline/redis.h)
 *   redis+cluster://[[user]:password@]host[:port][,host[:port]...][/0]
 *       Redis Cluster seed nodes (any nodes of the cluster; the slot map comes from them);
 *       db 0 only (a cluster has no other)
 *   redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/master_name[/db][?query]
 *       Sentinels (port default 26379) that know the master named master_name ([A-Za-z0-9._-],
 *       at most 127 bytes); user and password are the data nodes'; the query may set db,
 *       sentinel_user and sentinel_password (for sentinels with requirepass / ACLs)
 *   unix:///abs/path.sock[?db=N&password=P]
 *   /abs/path.sock                        (the whole text is the path: no query)
 *
 * The +cluster / +sentinel scheme suffixes follow the convention of redis-sentinel-url (Python)
 * and Lettuce's "redis-sentinel://"; one host list, comma-separated, at most CS_REDIS_MAX_SEEDS.
 *
 * db defaults to 0 (0..2147483647; the last of /db and ?db= wins). "secret@host" (no ':') is a
 * password, as in redis-cli; the last '@' before the host ends the user info. user and password
 * are percent-decoded (%40 = '@'); a bad escape or %00 is refused. Sizes: host 255 bytes (264
 * with brackets and port), socket path 107 (sun_path), user 127, password 255.
 */
#ifndef CS_REDISURL_H
#define CS_REDISURL_H

#include <stddef.h>

enum {
    CS_REDIS_MODE_PLAIN = 0, /* redis://, unix://, a path: one server (maybe a cluster node) */
    CS_REDIS_MODE_CLUSTER,   /* redis+cluster:// */
    CS_REDIS_MODE_SENTINEL,  /* redis+sentinel:// */
};
#define CS_REDIS_MAX_SEEDS 8

typedef struct cs_redis_node {
    char host[256];
    int port;
} cs_redis_node;

typedef struct cs_redis_target {
    int mode;             /* CS_REDIS_MODE_* */
    int is_unix;          /* 1: connect to `path`; 0: to host:port */
    char host[256];       /* the (first) host: seeds[0] */
    int port;
    char path[108];       /* sizeof(sun_path) */
    int db;               /* 0..INT_MAX */
    char user[128];       /* "" = no user (AUTH password / the default user) */
    char password[256];   /* "" = no AUTH */
    /* cluster and sentinel: every host of the list (seeds[0] is host:port above) */
    int nseeds;
    cs_redis_node seeds[CS_REDIS_MAX_SEEDS];
    char master_name[128];        /* sentinel: the monitored master's name */
    char sentinel_user[128];      /* sentinel: AUTH for the sentinels themselves ("" none) */
    char sentinel_password[256];
} cs_redis_target;

#define CS_REDIS_URL_BAD (-1)     /* one of the forms above, with a problem */
#define CS_REDIS_URL_FOREIGN (-2) /* none of them: another scheme (http://, rediss://), no
                                     scheme at all, "" or NULL */

/* Parses url into *t (zeroed first, port 6379). Returns 0, or CS_REDIS_URL_BAD or
 * CS_REDIS_URL_FOREIGN with `why` saying what is wrong, e.g. "bad port '0'" (no "bad Redis URL: "
 * prefix: callers put their own context in front). `why` never quotes the user info or a
 * password. NULL or "" is not a URL: callers with a default substitute it first. */
int cs_redis_url_parse(const char *url, cs_redis_target *t, char *why, size_t whylen);

#endif
