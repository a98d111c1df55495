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

/* An error reply: "<where> <what>: <Redis's text>", led by what its class means when Redis is
 * refusing for a known reason ("Redis is busy running a script: ... BUSY ..."; issue 20). */
static int reply_err(top_conn *c, const char *what, const char *text)
{
    cs_redis_class k = cs_redis_class_of(text, strlen(text));
    if (k == CS_REDIS_OTHER)
        return seterr(c, "%s %s: %s", c->url->where, what, text);
    return seterr(c, "%s: %s %s: %s", cs_redis_class_meaning(k), c->url->where, what, text);
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
            reply_err(c, "SUBSCRIBE", r->str);
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
        /* Redis refused the SCAN ("<where> SCAN: BUSY ..."): named by its class, as the other
         * refusals */
        const char *t = strstr(c->err, " SCAN: ");
        if (t && cs_redis_class_of(t + 7, strlen(t + 7)) != CS_REDIS_OTHER) {
            char text[256];
            snprintf(text, sizeof text, "%s", t + 7);
            reply_err(c, "SCAN", text);
        }
        c->cmd = cs_redis_ctx(c->cmdr);
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
     * writes each flush in one transaction too). Redis out of memory refuses every command
     * queued in a MULTI, reads included: then the HGETALLs go without it, which is as consistent
     * while Redis accepts no writes (issue 20: the counts stay on screen, frozen, next to why).
     * In a Redis Cluster the journey's keys share a slot, so the transaction runs on its
     * master; a MOVED queued reply (the slot moved: a failover, a finished migration) sends it
     * again there. While the slot is being migrated (ASK, TRYAGAIN) a transaction cannot span
     * the two nodes: this refresh reads the hashes with the layer's pipeline instead, each from
     * where it is. */
    redisReply *exec = NULL, *rs[NK] = {0};
    int hops = 0;
    for (int tx = 1; tx >= 0; tx--) {
        if (!c->cmd) {
            if (cs_redis_connect(c->cmdr, c->err, sizeof c->err) < 0)
                goto out;
            c->cmd = cs_redis_ctx(c->cmdr);
        }
        if (tx)
            redisAppendCommand(c->cmd, "MULTI");
        for (size_t i = 0; i < nk; i++)
            redisAppendCommand(c->cmd, "HGETALL %b", keys[i], strlen(keys[i]));
        if (tx)
            redisAppendCommand(c->cmd, "EXEC");
        int proto = 0, oom = 0;
        char redir[256] = "";
        for (size_t i = 0; i < nk + 2 * (size_t)tx; i++) {
            void *rv = NULL;
            if (redisGetReply(c->cmd, &rv) != REDIS_OK) {
                ctx_err(c, c->cmd, "HGETALL");
                freeReplyObject(exec);
                for (size_t k = 0; k < nk; k++)
                    freeReplyObject(rs[k]);
                goto out; /* the context is unusable now; the caller reconnects */
            }
            redisReply *r = rv;
            if (!tx) {
                rs[i] = r;
                continue;
            }
            if (i == nk + 1) {
                exec = r;
                continue;
            }
            cs_redis_class k = r->type == REDIS_REPLY_ERROR
                                   ? cs_redis_class_of(r->str, (size_t)r->len) : CS_REDIS_OK;
            if ((k == CS_REDIS_MOVED || k == CS_REDIS_ASK || k == CS_REDIS_CLUSTERDOWN) &&
                !redir[0] && hops < CS_REDIS_MAX_REDIRECTS) {
                snprintf(redir, sizeof redir, "%s", r->str);
            } else if (r->type == REDIS_REPLY_ERROR && !proto) {
                oom = cs_redis_class_of(r->str, r->len) == CS_REDIS_OOM;
                reply_err(c, i ? "HGETALL" : "MULTI", r->str);
                proto = 1;
            }
            freeReplyObject(r);
        }
        if (!tx)
            break;
        if (redir[0]) {
            freeReplyObject(exec);
            exec = NULL;
            int delay;
            int act = cs_redis_redirect(c->cmdr, redir, strlen(redir), &delay);
            c->cmd = cs_redis_ctx(c->cmdr);
            hops++;
            if (act == CS_REDIS_RESEND) {
                tx = 2; /* the transaction again, on the slot's node now */
                continue;
            }
            if (act == CS_REDIS_FINAL) {
                reply_err(c, "HGETALL", redir);
                goto out;
            }
            /* migrating: each hash from where it is */
            const char *argv[NK][8];
            int argc[NK];
            for (size_t i = 0; i < nk; i++) {
                argv[i][0] = "HGETALL";
                argv[i][1] = keys[i];
                argc[i] = 2;
            }
            if (cs_redis_pipeline(c->cmdr, (int)nk, (const char *const(*)[8])argv, argc, rs,
                                  c->err, sizeof c->err) < 0)
                goto out;
            c->cmd = cs_redis_ctx(c->cmdr);
            break;
        }
        if (proto) {
            freeReplyObject(exec);
            exec = NULL;
            if (oom)
                continue; /* again without MULTI */
            goto out;
        }
        if (!exec || exec->type != REDIS_REPLY_ARRAY || exec->elements != nk) {
            if (exec && exec->type == REDIS_REPLY_ERROR)
                reply_err(c, "EXEC", exec->str);
            else
                seterr(c, "%s EXEC: unexpected reply", c->url->where);
            freeReplyObject(exec);
            goto out;
        }
        for (size_t i = 0; i < nk; i++)
            rs[i] = exec->element[i];
        break;
    }
    c->err[0] = 0;
    int oomerr = 0;
    for (size_t i = 0; i < nk && !oomerr; i++) {
        redisReply *a = rs[i];
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
                oomerr = 1;
                break;
            }
        }
        if (which[i] >= 0 && m->h[which[i]].bad)
            addwarn(c, keys[i], "non-integer values ignored");
    }
    if (exec)
        freeReplyObject(exec);
    else
        for (size_t k = 0; k < nk; k++)
            freeReplyObject(rs[k]);
    if (oomerr) {
        seterr(c, "out of memory");
        goto out;
    }
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

int top_conn_info(top_conn *c, char **text, size_t *len)
{
    *text = NULL;
    *len = 0;
    if (!c->cmd)
        return seterr(c, "not connected");
    redisReply *r = redisCommand(c->cmd, "INFO");
    if (!r)
        return ctx_err(c, c->cmd, "INFO");
    int rc = -1;
    if (r->type == REDIS_REPLY_STRING) {
        if ((*text = malloc(r->len + 1))) {
            memcpy(*text, r->str, r->len);
            (*text)[r->len] = 0;
            *len = r->len;
            rc = 0;
        } else {
            seterr(c, "out of memory");
        }
    } else {
        if (r->type == REDIS_REPLY_ERROR)
            reply_err(c, "INFO", r->str);
        else
            seterr(c, "%s INFO: unexpected reply", c->url->where);
    }
    freeReplyObject(r);
    return rc;
}
