/* url.c — see url.h. The grammar and messages are pipeline/redisurl.c's (linked from
 * libclickstage.a; tests/top/run.sh compiles pipeline/redisurl.c beside this file). */
#include "url.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redisurl.h"

__attribute__((format(printf, 3, 4))) static int top_fail(char *err, size_t n, const char *fmt, ...)
{
    if (err && n) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* A malloc'd copy of s into *d, or NULL for "". 0, or -1 out of memory. */
static int dup_or_null(char **d, const char *s)
{
    *d = *s ? strdup(s) : NULL;
    return *s && !*d ? -1 : 0;
}

static void set_where(top_url *u)
{
    if (u->is_unix)
        snprintf(u->where, sizeof u->where, u->db ? "unix:%s/%ld" : "unix:%s", u->path, u->db);
    else
        snprintf(u->where, sizeof u->where, strchr(u->host, ':') ? "[%s]:%d/%ld" : "%s:%d/%ld",
                 u->host, u->port, u->db);
}

void top_url_free(top_url *u)
{
    free(u->host);
    free(u->path);
    free(u->user);
    free(u->password);
    memset(u, 0, sizeof *u);
}

int top_url_parse(const char *url, top_url *u, char *err, size_t errlen)
{
    cs_redis_target t;
    char why[512];
    memset(u, 0, sizeof *u);
    if (cs_redis_url_parse(url && *url ? url : "redis://127.0.0.1:6379/0", &t, why, sizeof why) < 0)
        return top_fail(err, errlen, "bad Redis URL: %s", why);
    u->is_unix = t.is_unix;
    u->port = t.port;
    u->db = t.db;
    if (dup_or_null(t.is_unix ? &u->path : &u->host, t.is_unix ? t.path : t.host) < 0 ||
        dup_or_null(&u->user, t.user) < 0 || dup_or_null(&u->password, t.password) < 0) {
        top_url_free(u);
        return top_fail(err, errlen, "out of memory");
    }
    set_where(u);
    return 0;
}
