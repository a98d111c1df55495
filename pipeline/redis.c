/* redis.c — see redis.h for the contract. */
#include "redis.h"

#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

struct cs_redis {
    cs_redis_target t;
    char where[320];
    int connect_timeout_ms, command_timeout_ms;
    redisContext *c;
    int fail_class; /* cs_redis_class of the last cs_redis_connect failure */
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
        free(r);
        return NULL;
    }
    if (r->t.is_unix)
        snprintf(r->where, sizeof r->where, "unix:%s", r->t.path);
    else
        snprintf(r->where, sizeof r->where, strchr(r->t.host, ':') ? "[%s]:%d" : "%s:%d",
                 r->t.host, r->t.port);
    r->connect_timeout_ms = o && o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 2000;
    r->command_timeout_ms = o && o->command_timeout_ms > 0 ? o->command_timeout_ms : 5000;
    return r;
}

void cs_redis_close(cs_redis *r)
{
    if (r && r->c) {
        redisFree(r->c);
        r->c = NULL;
    }
}

void cs_redis_free(cs_redis *r)
{
    if (!r)
        return;
    cs_redis_close(r);
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
const char *cs_redis_where(const cs_redis *r) { return r->where; }
const cs_redis_target *cs_redis_target_of(const cs_redis *r) { return &r->t; }
int cs_redis_command_timeout_ms(const cs_redis *r) { return r->command_timeout_ms; }

const char *cs_redis_io_error(cs_redis *r, char *buf, size_t n)
{
    if (!r->c)
        return "connection closed";
    if (r->c->err == REDIS_ERR_IO && strstr(r->c->errstr, "temporarily unavailable"))
        snprintf(buf, n, "timed out after %d ms", r->command_timeout_ms);
    else
        snprintf(buf, n, "%s", r->c->errstr[0] ? r->c->errstr : "I/O error");
    return buf;
}

/* closes, fills errstr, returns -1 */
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
    return -1;
}

int cs_redis_connect(cs_redis *r, char *errstr, size_t errlen)
{
    if (r->c)
        return 0;
    cs_pipe_guard g;
    cs_pipe_guard_on(&g);
    int rc = -1;
    char b[256];
    r->fail_class = CS_REDIS_UNREACHABLE; /* unless Redis answers with an error below */
    struct timeval ctv = {r->connect_timeout_ms / 1000, (r->connect_timeout_ms % 1000) * 1000};
    struct timeval ttv = {r->command_timeout_ms / 1000, (r->command_timeout_ms % 1000) * 1000};
    r->c = r->t.is_unix ? redisConnectUnixWithTimeout(r->t.path, ctv)
                        : redisConnectWithTimeout(r->t.host, r->t.port, ctv);
    if (!r->c) {
        link_fail(r, errstr, errlen, "connect %s: out of memory", r->where);
        goto out;
    }
    if (r->c->err) {
        link_fail(r, errstr, errlen, "connect %s: %s", r->where, r->c->errstr);
        goto out;
    }
    if (redisSetTimeout(r->c, ttv) != REDIS_OK) {
        link_fail(r, errstr, errlen, "connect %s: setting the timeout: %s", r->where,
                  r->c->errstr);
        goto out;
    }
    if (!r->t.is_unix)
        redisEnableKeepAlive(r->c);
    /* AUTH and SELECT in one round trip */
    int n = 0, i_auth = -1;
    if (r->t.password[0]) {
        if (r->t.user[0])
            redisAppendCommand(r->c, "AUTH %s %s", r->t.user, r->t.password);
        else
            redisAppendCommand(r->c, "AUTH %s", r->t.password);
        i_auth = n++;
    }
    if (r->t.db)
        redisAppendCommand(r->c, "SELECT %d", r->t.db), n++;
    char bad[256] = "";
    for (int i = 0; i < n; i++) {
        redisReply *rep = NULL;
        if (redisGetReply(r->c, (void **)&rep) != REDIS_OK || !rep) {
            link_fail(r, errstr, errlen, "%s: %s", r->where, cs_redis_io_error(r, b, sizeof b));
            goto out;
        }
        if (rep->type == REDIS_REPLY_ERROR && !bad[0]) {
            /* never the password: Redis' own text, then ours */
            if (i == i_auth)
                snprintf(bad, sizeof bad, "AUTH failed: %s", rep->str ? rep->str : "?");
            else
                snprintf(bad, sizeof bad, "SELECT %d failed: %s", r->t.db,
                         rep->str ? rep->str : "?");
        }
        freeReplyObject(rep);
    }
    if (bad[0]) {
        const char *t = strstr(bad, ": ") + 2;
        link_fail(r, errstr, errlen, "%s: %s", r->where, bad);
        r->fail_class = cs_redis_class_of(t, strlen(t));
        goto out;
    }
    rc = 0;
out:
    cs_pipe_guard_off(&g);
    return rc;
}

redisReply *cs_redis_cmd(cs_redis *r, int argc, const char **argv, const size_t *lens,
                         char *errstr, size_t errlen)
{
    if (cs_redis_connect(r, errstr, errlen) < 0)
        return NULL;
    cs_pipe_guard g;
    cs_pipe_guard_on(&g);
    size_t l[16];
    if (!lens) {
        for (int i = 0; i < argc && i < 16; i++)
            l[i] = strlen(argv[i]);
        lens = l;
    }
    redisReply *rep = redisCommandArgv(r->c, argc, argv, lens);
    if (!rep) {
        char b[256];
        link_fail(r, errstr, errlen, "%s %s: %s", r->where, argv[0],
                  cs_redis_io_error(r, b, sizeof b));
    }
    cs_pipe_guard_off(&g);
    return rep;
}

int cs_redis_pipeline(cs_redis *r, int n, const char *const (*argv)[8], const int *argc,
                      redisReply **out, char *errstr, size_t errlen)
{
    if (cs_redis_connect(r, errstr, errlen) < 0)
        return -1;
    cs_pipe_guard g;
    cs_pipe_guard_on(&g);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        size_t lens[8];
        for (int a = 0; a < argc[i] && a < 8; a++)
            lens[a] = strlen(argv[i][a]);
        if (redisAppendCommandArgv(r->c, argc[i], (const char **)argv[i], lens) != REDIS_OK)
            rc = link_fail(r, errstr, errlen, "%s: %s", r->where, r->c->errstr);
    }
    for (int i = 0; i < n && rc == 0; i++) {
        void *rep = NULL;
        if (redisGetReply(r->c, &rep) != REDIS_OK || !rep) {
            for (int j = 0; j < i; j++) {
                freeReplyObject(out[j]);
                out[j] = NULL;
            }
            rc = link_fail(r, errstr, errlen, "%s %s: %s", r->where, argv[i][0],
                           r->c && r->c->errstr[0] ? r->c->errstr : "connection lost");
            break;
        }
        out[i] = rep;
    }
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
           c == CS_REDIS_MOVED || c == CS_REDIS_ASK;
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
