/* conn.c — see conn.h. */
#include "conn.h"

#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "redis.h"
#include "rkeys.h"

__attribute__((format(printf, 2, 3))) static int seterr(top_conn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    return -1;
}

/* "<where> <what>: <hiredis error>" */
static int ctx_err(top_conn *c, redisContext *ctx, const char *what)
{
    const char *e = ctx && ctx->err ? ctx->errstr : "connection lost";
    if (ctx && ctx->err == REDIS_ERR_EOF)
        e = "server closed the connection";
    return seterr(c, "%s %s: %s", c->url->where, what, e);
}

/* Connects *slot (made from the URL on first use): the live context, or NULL and c->err. */
static redisContext *connect_one(top_conn *c, cs_redis **slot)
{
    if (!*slot) {
        cs_redis_opts o = {c->redis_url, c->connect_timeout_ms > 0 ? c->connect_timeout_ms : 1000,
                           c->command_timeout_ms > 0 ? c->command_timeout_ms : 2000};
        if (!(*slot = cs_redis_new(&o, c->err, sizeof c->err)))
            return NULL;
    }
    if (cs_redis_connect(*slot, c->err, sizeof c->err) < 0)
        return NULL;
    return cs_redis_ctx(*slot);
}

int top_conn_open(top_conn *c)
{
    top_conn_close(c);
    c->err[0] = 0;
    c->cmd = connect_one(c, &c->cmdr);
    return c->cmd ? 0 : -1;
}

void top_conn_close(top_conn *c)
{
    cs_redis_free(c->cmdr);
    cs_redis_free(c->subr);
    c->cmdr = c->subr = NULL;
    c->cmd = c->sub = NULL;
}

int top_conn_sub_fd(const top_conn *c)
{
    return c->sub ? c->sub->fd : -1;
}

/* Handles every reply already in the reader's buffer. */
static int sub_drain(top_conn *c, top_update *u, int *got)
{
    for (;;) {
        void *rv = NULL;
        if (redisGetReplyFromReader(c->sub, &rv) != REDIS_OK)
            return ctx_err(c, c->sub, "subscriber");
        redisReply *r = rv;
        if (!r)
            return 0;
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
            r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, "message") == 0 &&
            r->element[2]->type == REDIS_REPLY_STRING) {
            top_update x;
            (*got)++;
            if (top_parse_update(r->element[2]->str, r->element[2]->len, &x) == 0)
                *u = x;
        }
        freeReplyObject(r);
    }
}

int top_conn_subscribe(top_conn *c, const char *channel)
{
    cs_redis_free(c->subr);
    c->subr = NULL;
    /* In a Redis Cluster any node delivers every PUBLISH (the cluster bus carries it); the
     * channel's slot is the journey's: the same node as the data. */
    cs_redis_opts o = {c->redis_url, c->connect_timeout_ms > 0 ? c->connect_timeout_ms : 1000,
                       c->command_timeout_ms > 0 ? c->command_timeout_ms : 2000};
    if (!(c->subr = cs_redis_new(&o, c->err, sizeof c->err)))
        return -1;
    cs_redis_route(c->subr, channel, strlen(channel));
    c->sub = connect_one(c, &c->subr);
    if (!c->sub)
        return -1;
    redisReply *r = redisCommand(c->sub, "SUBSCRIBE %b", channel, strlen(channel));
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        if (r && r->type == REDIS_REPLY_ERROR)
            seterr(c, "%s SUBSCRIBE: %s", c->url->where, r->str);
        else
            ctx_err(c, c->sub, "SUBSCRIBE");
        freeReplyObject(r);
        cs_redis_free(c->subr);
        c->subr = NULL;
        c->sub = NULL;
        return -1;
    }
    freeReplyObject(r);
    top_update u;
    int got = 0;
    return sub_drain(c, &u, &got); /* a message that came with the confirmation */
}

int top_conn_sub_read(top_conn *c, top_update *u, int *got)
{
    if (!c->sub)
        return seterr(c, "not subscribed");
    if (redisBufferRead(c->sub) != REDIS_OK)
        return ctx_err(c, c->sub, "subscriber");
    return sub_drain(c, u, got);
}

typedef struct scan_acc {
    char **keys;
    size_t n, cap;
} scan_acc;

static int scan_add(const char *key, size_t len, void *arg)
{
    scan_acc *a = arg;
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 16;
        char **nk = realloc(a->keys, nc * sizeof *nk);
        if (!nk)
            return -1;
        a->keys = nk;
        a->cap = nc;
    }
    if (!(a->keys[a->n] = malloc(len + 1)))
        return -1;
    memcpy(a->keys[a->n], key, len);
    a->keys[a->n++][len] = 0;
    return 0;
}

int top_conn_scan(top_conn *c, const char *pattern, char ***keys, size_t *nkeys)
{
    *keys = NULL;
    *nkeys = 0;
    if (!c->cmdr)
        return seterr(c, "not connected");
    /* the layer's SCAN: in a Redis Cluster a pattern of one journey goes to its slot's node, any
     * other (the journeys under a prefix) to every master */
    scan_acc a = {0};
    if (cs_redis_scan(c->cmdr, pattern, scan_add, &a, c->err, sizeof c->err) < 0) {
        for (size_t i = 0; i < a.n; i++)
            free(a.keys[i]);
        free(a.keys);
        return -1;
    }
    c->cmd = cs_redis_ctx(c->cmdr);
    *keys = a.keys;
    *nkeys = a.n;
    return 0;
}

void top_conn_route(top_conn *c, const char *prefix, const char *journey)
{
    cs_rkeys rk;
    if (c->cmdr && cs_rkeys_init(&rk, prefix, journey) == 0) {
        cs_redis_route(c->cmdr, rk.base, rk.len);
        c->cmd = cs_redis_ctx(c->cmdr); /* NULL if that closed it: connected again on use */
    }
}

static void addwarn(top_conn *c, const char *key, const char *what)
{
    if (!c->warn[0])
        snprintf(c->warn, sizeof c->warn, "%s: %s", key, what);
}

int top_conn_fetch(top_conn *c, const char *prefix, const char *journey, const char *dim,
                   top_model *m)
{
    if (!c->cmdr)
        return seterr(c, "not connected");
    top_conn_route(c, prefix, journey);
    c->warn[0] = 0;
    top_model_reset(m);
    enum { NK = TOP_NHASH + 1 };  /* the hashes, then meta */
    char *keys[NK] = {0};
    int which[NK];
    size_t nk = 0;
    int rc = -1;
    cs_rkeys rk;
    if (cs_rkeys_init(&rk, prefix, journey) < 0) {
        seterr(c, "prefix or journey too long");
        goto out;
    }
    for (int h = 0; h <= TOP_NHASH; h++) { /* the hashes, then meta */
        const char *suffix = h == TOP_NHASH ? CS_RK_META : top_hash_suffix[h];
        if (!suffix && !dim)
            continue;
        char sfx[300], *k = malloc(CS_RKEYS_MAX + sizeof sfx);
        if (!suffix) {
            snprintf(sfx, sizeof sfx, CS_RK_BY "%s:%s", dim,
                     h == TOP_BY_REACHED ? "reached" : "active");
            suffix = sfx;
        }
        if (!k || !cs_rkey(&rk, suffix, k, CS_RKEYS_MAX + sizeof sfx)) {
            free(k);
            seterr(c, "out of memory");
            goto out;
        }
        keys[nk] = k;
        which[nk++] = h == TOP_NHASH ? -1 : h;
    }

    /* MULTI, HGETALL × nk, EXEC: one write, one round trip, one consistent snapshot (the daemon
     * writes each flush in one transaction too). In a Redis Cluster the journey's keys share a
     * slot, so the transaction runs on its master; a MOVED queued reply (the slot moved: a
     * failover, a finished migration) sends it again there. While the slot is being migrated
     * (ASK, TRYAGAIN) a transaction cannot span the two nodes: this refresh reads the hashes
     * with the layer's pipeline instead, each from where it is. */
    redisReply *exec = NULL;
    int proto = 0, fallback = 0;
    for (int attempt = 0;; attempt++) {
        if (!c->cmd && cs_redis_connect(c->cmdr, c->err, sizeof c->err) < 0)
            goto out;
        c->cmd = cs_redis_ctx(c->cmdr);
        redisAppendCommand(c->cmd, "MULTI");
        for (size_t i = 0; i < nk; i++)
            redisAppendCommand(c->cmd, "HGETALL %b", keys[i], strlen(keys[i]));
        redisAppendCommand(c->cmd, "EXEC");
        char redir[256] = "";
        proto = 0;
        for (size_t i = 0; i < nk + 2; i++) {
            void *rv = NULL;
            if (redisGetReply(c->cmd, &rv) != REDIS_OK) {
                ctx_err(c, c->cmd, "HGETALL");
                freeReplyObject(exec);
                goto out; /* the context is unusable now; the caller reconnects */
            }
            redisReply *r = rv;
            if (i == nk + 1) {
                exec = r;
                continue;
            }
            if (r->type == REDIS_REPLY_ERROR && !redir[0] && attempt < CS_REDIS_MAX_REDIRECTS) {
                cs_redis_class k = cs_redis_class_of(r->str, (size_t)r->len);
                if (k == CS_REDIS_MOVED || k == CS_REDIS_ASK || k == CS_REDIS_CLUSTERDOWN)
                    snprintf(redir, sizeof redir, "%s", r->str);
            }
            if (r->type == REDIS_REPLY_ERROR && !proto && !redir[0]) {
                seterr(c, "%s %s: %s", c->url->where, i ? "HGETALL" : "MULTI", r->str);
                proto = 1;
            }
            freeReplyObject(r);
        }
        if (!redir[0])
            break;
        freeReplyObject(exec);
        exec = NULL;
        int delay;
        int act = cs_redis_redirect(c->cmdr, redir, strlen(redir), &delay);
        c->cmd = cs_redis_ctx(c->cmdr);
        if (act == CS_REDIS_RESEND)
            continue;
        if (act != CS_REDIS_FINAL) {
            fallback = 1;
            break;
        }
        seterr(c, "%s HGETALL: %s", c->url->where, redir);
        goto out;
    }
    if (fallback) {
        const char *argv[NK][8];
        int argc[NK];
        redisReply *rep[NK];
        for (size_t i = 0; i < nk; i++) {
            argv[i][0] = "HGETALL";
            argv[i][1] = keys[i];
            argc[i] = 2;
        }
        if (cs_redis_pipeline(c->cmdr, (int)nk, (const char *const(*)[8])argv, argc, rep, c->err,
                              sizeof c->err) < 0)
            goto out;
        c->cmd = cs_redis_ctx(c->cmdr);
        if (!(exec = calloc(1, sizeof *exec)) || !(exec->element = calloc(nk, sizeof *rep))) {
            for (size_t i = 0; i < nk; i++)
                freeReplyObject(rep[i]);
            free(exec);
            seterr(c, "out of memory");
            goto out;
        }
        /* an array reply made of the pipeline's replies: freeReplyObject frees it whole */
        exec->type = REDIS_REPLY_ARRAY;
        exec->elements = nk;
        for (size_t i = 0; i < nk; i++)
            exec->element[i] = rep[i];
    }
    if (proto) {
        freeReplyObject(exec);
        goto out;
    }
    if (!exec || exec->type != REDIS_REPLY_ARRAY || exec->elements != nk) {
        if (exec && exec->type == REDIS_REPLY_ERROR)
            seterr(c, "%s EXEC: %s", c->url->where, exec->str);
        else
            seterr(c, "%s EXEC: unexpected reply", c->url->where);
        freeReplyObject(exec);
        goto out;
    }
    for (size_t i = 0; i < nk; i++) {
        redisReply *a = exec->element[i];
        if (a->type == REDIS_REPLY_ERROR) {
            addwarn(c, keys[i], a->str);
            continue;
        }
        if (a->type != REDIS_REPLY_ARRAY || a->elements % 2) {
            addwarn(c, keys[i], "unexpected reply");
            continue;
        }
        for (size_t j = 0; j + 1 < a->elements; j += 2) {
            redisReply *f = a->element[j], *v = a->element[j + 1];
            if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
                continue;
            int e = which[i] < 0 ? top_model_set_meta(m, f->str, f->len, v->str, v->len)
                                 : top_hash_add(&m->h[which[i]], f->str, f->len, v->str, v->len);
            if (e < 0) {
                freeReplyObject(exec);
                seterr(c, "out of memory");
                goto out;
            }
        }
        if (which[i] >= 0 && m->h[which[i]].bad)
            addwarn(c, keys[i], "non-integer values ignored");
    }
    freeReplyObject(exec);
    if (top_model_finish(m) < 0) {
        seterr(c, "out of memory");
        goto out;
    }
    rc = 0;
out:
    for (size_t i = 0; i < nk; i++)
        free(keys[i]);
    return rc;
}
