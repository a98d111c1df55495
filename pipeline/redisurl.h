/* redisurl.h — the one parser for Redis URLs (docs/redis.md "Connecting"). It serves the
 * daemon's `redis` option (cmd/clickstage/config.c, through cs_config_parse_redis_url), the sink
 * that connects with it (pipeline/sink.c), the HTTP server's own connection and clickstage-top.
 * Pure: no I/O, no allocation, no hiredis.
 *
 *   redis://[[user]:password@]host[:port][/db][?db=N]
 *       host: a name of [A-Za-z0-9._-], an IPv4 address or [IPv6] (hex digits, ':', '.', '%')
 *       port: 1..65535, default 6379
 *   unix:///abs/path.sock[?db=N&password=P]
 *   /abs/path.sock                        (the whole text is the path: no query)
 *
 * db defaults to 0 (0..2147483647; the last of /db and ?db= wins). "secret@host" (no ':') is a
 * password, as in redis-cli; the last '@' before the host ends the user info. user and password
 * are percent-decoded (%40 = '@'); a bad escape or %00 is refused. Sizes: host 255 bytes (264
 * with brackets and port), socket path 107 (sun_path), user 127, password 255.
 */
#ifndef CS_REDISURL_H
#define CS_REDISURL_H

#include <stddef.h>

typedef struct cs_redis_target {
    int is_unix;          /* 1: connect to `path`; 0: to host:port */
    char host[256];
    int port;
    char path[108];       /* sizeof(sun_path) */
    int db;               /* 0..INT_MAX */
    char user[128];       /* "" = no user (AUTH password / the default user) */
    char password[256];   /* "" = no AUTH */
} cs_redis_target;

#define CS_REDIS_URL_BAD (-1)     /* one of the three forms above, with a problem */
#define CS_REDIS_URL_FOREIGN (-2) /* none of them: another scheme (http://, rediss://), no
                                     scheme at all, "" or NULL */

/* Parses url into *t (zeroed first, port 6379). Returns 0, or CS_REDIS_URL_BAD or
 * CS_REDIS_URL_FOREIGN with `why` saying what is wrong, e.g. "bad port '0'" (no "bad Redis URL: "
 * prefix: callers put their own context in front). `why` never quotes the user info or a
 * password. NULL or "" is not a URL: callers with a default substitute it first. */
int cs_redis_url_parse(const char *url, cs_redis_target *t, char *why, size_t whylen);

#endif
