/* url.h — the Redis URL forms the daemon accepts (docs/redis.md "Connecting"), parsed by the
 * daemon's own parser (pipeline/redisurl.h, cs_redis_url_parse) for clickstage-top:
 *   redis://[[user]:password@]host[:port][/db][?db=N]   (port 6379, db 0; [::1] for IPv6)
 *   unix:///path/to.sock[?db=N][&password=P]
 *   /path/to.sock
 * %XX escapes in user and password. Pure: no I/O.
 */
#ifndef TOP_URL_H
#define TOP_URL_H

#include <stddef.h>

typedef struct top_url {
    int is_unix;
    char *host;                 /* TCP */
    int port;
    char *path;                 /* unix socket */
    long db;
    char *user, *password;      /* NULL when absent */
    char where[320];            /* for the screen: "host:port/db" or "unix:/path[/db]"; never the password */
} top_url;

/* 0 ok; -1 with "bad Redis URL: …" in err. NULL or "" means redis://127.0.0.1:6379/0. */
int top_url_parse(const char *url, top_url *u, char *err, size_t errlen);
void top_url_free(top_url *u);

#endif
