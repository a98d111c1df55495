/* redisurl.c — see redisurl.h.
 *
 * Two kinds of checks, for the messages' sake: those pipeline/sink.c's own parser made run in
 * its order and return at once (its messages are tested); those only the daemon's option check
 * made (the host's characters, %00, the sizes of cs_redis_target's fields) are "late": the first
 * one is written to `why` and returned once the rest of the URL has parsed, so a URL the sink
 * used to refuse still gets the sink's message. */
#include "redisurl.h"

#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

__attribute__((format(printf, 4, 5))) static int fail(int rc, char *why, size_t n,
                                                       const char *fmt, ...)
{
    if (why && n) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, n, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into out[cap]. 0, or an index into decode_problem[]: BAD_ESCAPE (as
 * soon as one is seen), else the first late problem (a NUL byte, too long a value). */
enum { BAD_ESCAPE = 1 };
static const char *const decode_problem[] = {"", "bad %-escape", "%00 (a NUL byte)",
                                             "too long a value"};
static int pct_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    int late = 0;
    for (size_t i = 0; i < n; i++) {
        int ch = (unsigned char)s[i];
        if (ch == '%') {
            int hi, lo;
            if (n - i < 3 || (hi = hexval(s[i + 1])) < 0 || (lo = hexval(s[i + 2])) < 0)
                return BAD_ESCAPE;
            ch = hi * 16 + lo;
            i += 2;
            if (ch == 0 && !late)
                late = 2;
        }
        if (o + 1 < cap)
            out[o++] = (char)ch;
        else if (!late)
            late = 3;
    }
    out[o] = '\0';
    return late;
}

/* A decimal of one or more digits (leading zeros allowed) in s[0..n), at most max. */
static int parse_num(const char *s, size_t n, long max, long *out)
{
    long v = 0;
    if (n == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (max - (s[i] - '0')) / 10)
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* "k=v&k=v": db, and (unix sockets only) password. */
static int parse_query(const char *q, int allow_password, cs_redis_target *t, char *why,
                       size_t n, int late)
{
    while (*q) {
        size_t len = strcspn(q, "&");
        const char *eq = memchr(q, '=', len);
        size_t kl = eq ? (size_t)(eq - q) : len;
        const char *v = eq ? eq + 1 : q + len;
        size_t vl = eq ? len - kl - 1 : 0;
        long db;
        int bad;
        if (kl == 2 && memcmp(q, "db", 2) == 0) {
            if (parse_num(v, vl, INT_MAX, &db) < 0)
                return fail(CS_REDIS_URL_BAD, why, n,
                            "db must be a non-negative integer, got '%.*s'", (int)vl, v);
            t->db = (int)db;
        } else if (allow_password && kl == 8 && memcmp(q, "password", 8) == 0) {
            if ((bad = pct_decode(v, vl, t->password, sizeof t->password)) == BAD_ESCAPE)
                return fail(CS_REDIS_URL_BAD, why, n, "%s in password", decode_problem[bad]);
            if (bad && !late)
                late = fail(CS_REDIS_URL_BAD, why, n, "%s in password", decode_problem[bad]);
        } else {
            return fail(CS_REDIS_URL_BAD, why, n, "unknown query parameter '%.*s'", (int)kl, q);
        }
        q += len + (q[len] == '&');
    }
    return late;
}

static int parse_unix(const char *url, cs_redis_target *t, char *why, size_t n)
{
    const char *p = url[0] == '/' ? url : url + 7;
    const char *q = url[0] == '/' ? NULL : strchr(p, '?');
    size_t plen = q ? (size_t)(q - p) : strlen(p);
    if (p[0] != '/')
        return fail(CS_REDIS_URL_BAD, why, n,
                    "unix:// needs an absolute path ('unix:///path/to.sock')");
    if (plen < 2)
        return fail(CS_REDIS_URL_BAD, why, n, "empty unix socket path '%.*s'", (int)plen, p);
    int late = 0;
    t->is_unix = 1;
    if (plen < sizeof t->path)
        memcpy(t->path, p, plen); /* t is zeroed: the NUL is there */
    else
        late = fail(CS_REDIS_URL_BAD, why, n, "unix socket path '%.40s...' is longer than %zu bytes",
                    p, sizeof t->path - 1);
    return q ? parse_query(q + 1, 1, t, why, n, late) : late;
}

static int is_host_char(int c)
{
    return isalnum(c) || c == '.' || c == '-' || c == '_';
}

static int is_ipv6_char(int c)
{
    return isxdigit(c) || c == ':' || c == '.' || c == '%';
}

/* One "host[:port]" of h[0..hl) into host (256 bytes) and *port (default dport). Immediate
 * problems return CS_REDIS_URL_BAD; late ones go to *late (the first one only). */
static int parse_hostport(const char *scheme, const char *h, size_t hl, int has_userinfo,
                          int dport, char *hostout, int *port, char *why, size_t n, int *late)
{
    size_t hostl = hl, portl = 0;
    const char *host = h, *portp = NULL, *end = h + hl;
    int (*host_char)(int) = is_host_char;
    *port = dport;
    if (hl && h[0] == '[') {
        const char *rb = memchr(h, ']', hl);
        if (!rb)
            return fail(CS_REDIS_URL_BAD, why, n, "unterminated '[' in host");
        host = h + 1;
        hostl = (size_t)(rb - host);
        host_char = is_ipv6_char;
        if (rb + 1 < end) {
            if (rb[1] != ':')
                return fail(CS_REDIS_URL_BAD, why, n, "junk after ']' in host");
            portp = rb + 2;
        }
    } else {
        const char *colon = memchr(h, ':', hl);
        if (colon && memchr(colon + 1, ':', (size_t)(end - colon - 1)))
            return fail(CS_REDIS_URL_BAD, why, n, "an IPv6 host must be in brackets ([::1]:6379)");
        if (colon) {
            hostl = (size_t)(colon - h);
            portp = colon + 1;
        }
    }
    if (hostl == 0)
        return fail(CS_REDIS_URL_BAD, why, n, "missing host in '%s%s%.*s'", scheme,
                    has_userinfo ? "***@" : "", (int)hl, h);
    if (portp) {
        long p;
        portl = (size_t)(end - portp);
        if (parse_num(portp, portl, 65535, &p) < 0 || p == 0)
            return fail(CS_REDIS_URL_BAD, why, n, "bad port '%.*s'", (int)portl, portp);
        *port = (int)p;
    }
    size_t good = 0;
    while (good < hostl && host_char((unsigned char)host[good]))
        good++;
    if (good < hostl && !*late)
        *late = fail(CS_REDIS_URL_BAD, why, n, host_char == is_ipv6_char
                     ? "bad IPv6 address '[%.*s]'"
                     : "bad host name '%.*s' (letters, digits, '.', '-' and '_')",
                     (int)hostl, host);
    if (hostl < 256 && hl < 256 + 8)
        memcpy(hostout, host, hostl), hostout[hostl] = '\0';
    else if (!*late)
        *late = fail(CS_REDIS_URL_BAD, why, n, "host '%.40s...' is too long (%d bytes, %d with "
                     "brackets and port)", h, 255, 263);
    return 0;
}

/* "k=v&k=v" of a redis+sentinel:// URL: db, sentinel_user, sentinel_password. */
static int parse_sentinel_query(const char *q, cs_redis_target *t, char *why, size_t n, int late)
{
    while (*q) {
        size_t len = strcspn(q, "&");
        const char *eq = memchr(q, '=', len);
        size_t kl = eq ? (size_t)(eq - q) : len;
        const char *v = eq ? eq + 1 : q + len;
        size_t vl = eq ? len - kl - 1 : 0;
        long db;
        int bad = -1;
        if (kl == 2 && memcmp(q, "db", 2) == 0) {
            if (parse_num(v, vl, INT_MAX, &db) < 0)
                return fail(CS_REDIS_URL_BAD, why, n,
                            "db must be a non-negative integer, got '%.*s'", (int)vl, v);
            t->db = (int)db;
        } else if (kl == 13 && memcmp(q, "sentinel_user", 13) == 0) {
            bad = pct_decode(v, vl, t->sentinel_user, sizeof t->sentinel_user);
        } else if (kl == 17 && memcmp(q, "sentinel_password", 17) == 0) {
            bad = pct_decode(v, vl, t->sentinel_password, sizeof t->sentinel_password);
        } else {
            return fail(CS_REDIS_URL_BAD, why, n, "unknown query parameter '%.*s' (db, "
                        "sentinel_user, sentinel_password)", (int)kl, q);
        }
        if (bad == BAD_ESCAPE)
            return fail(CS_REDIS_URL_BAD, why, n, "%s in %.*s", decode_problem[bad], (int)kl, q);
        if (bad > 0 && !late)
            late = fail(CS_REDIS_URL_BAD, why, n, "%s in %.*s", decode_problem[bad], (int)kl, q);
        q += len + (q[len] == '&');
    }
    return late;
}

static int is_name_char(int c)
{
    return isalnum(c) || c == '.' || c == '-' || c == '_';
}

/* redis://, redis+cluster:// and redis+sentinel://: the scheme is url[0..sl). */
static int parse_tcp(const char *url, size_t sl, int mode, cs_redis_target *t, char *why,
                     size_t n)
{
    char scheme[24];
    snprintf(scheme, sizeof scheme, "%.*s", (int)sl, url);
    const char *a = url + sl;
    const char *end = a + strcspn(a, "/?"); /* of the authority */
    const char *at = NULL;
    for (const char *p = a; p < end; p++)
        if (*p == '@')
            at = p; /* the last '@': a host never has one */
    const char *h = a;
    int late = 0;
    if (at) {
        /* "user:password@" or ":password@"; "secret@" alone is a password, as in redis-cli */
        const char *colon = memchr(a, ':', (size_t)(at - a));
        const char *pw = colon ? colon + 1 : a;
        int bad_user = colon ? pct_decode(a, (size_t)(colon - a), t->user, sizeof t->user) : 0;
        int bad_pw = pct_decode(pw, (size_t)(at - pw), t->password, sizeof t->password);
        int bad = bad_user == BAD_ESCAPE || bad_pw == BAD_ESCAPE ? BAD_ESCAPE
                                                                 : bad_user ? bad_user : bad_pw;
        if (bad == BAD_ESCAPE)
            return fail(CS_REDIS_URL_BAD, why, n, "%s in user or password (before '@')",
                        decode_problem[bad]);
        if (bad)
            late = fail(CS_REDIS_URL_BAD, why, n, "%s in user or password (before '@')",
                        decode_problem[bad]);
        h = at + 1;
    }
    /* the host list: one host for redis://, up to CS_REDIS_MAX_SEEDS for the others */
    int dport = mode == CS_REDIS_MODE_SENTINEL ? 26379 : 6379;
    const char *p = h;
    for (;;) {
        const char *comma = mode == CS_REDIS_MODE_PLAIN ? NULL : memchr(p, ',', (size_t)(end - p));
        const char *he = comma ? comma : end;
        if (t->nseeds == CS_REDIS_MAX_SEEDS)
            return fail(CS_REDIS_URL_BAD, why, n, "more than %d hosts", CS_REDIS_MAX_SEEDS);
        cs_redis_node *s = &t->seeds[t->nseeds];
        if (parse_hostport(scheme, p, (size_t)(he - p), at != NULL, dport, s->host, &s->port,
                           why, n, &late) < 0)
            return CS_REDIS_URL_BAD;
        t->nseeds++;
        if (!comma)
            break;
        p = comma + 1;
    }
    memcpy(t->host, t->seeds[0].host, sizeof t->host);
    t->port = t->seeds[0].port;
    if (mode == CS_REDIS_MODE_PLAIN)
        t->nseeds = 0; /* one server: host and port say it */
    const char *rest = end;
    if (mode == CS_REDIS_MODE_SENTINEL) {
        /* /master_name[/db] */
        const char *nm = *rest == '/' ? rest + 1 : rest;
        size_t nl = strcspn(nm, "/?");
        if (nl == 0)
            return fail(CS_REDIS_URL_BAD, why, n, "%s needs the master's name: "
                        "redis+sentinel://host:26379[,host:26379...]/master_name[/db]", scheme);
        size_t good = 0;
        while (good < nl && is_name_char((unsigned char)nm[good]))
            good++;
        if (good < nl || nl >= sizeof t->master_name)
            return fail(CS_REDIS_URL_BAD, why, n, "bad master name '%.*s' (letters, digits, "
                        "'.', '-' and '_', at most %zu bytes)", (int)(nl < 64 ? nl : 64), nm,
                        sizeof t->master_name - 1);
        memcpy(t->master_name, nm, nl);
        rest = nm + nl;
    }
    if (*rest == '/') {
        const char *dbp = rest + 1;
        size_t dbl = strcspn(dbp, "?");
        long db;
        if (dbl && parse_num(dbp, dbl, INT_MAX, &db) < 0)
            return fail(CS_REDIS_URL_BAD, why, n,
                        "db must be a non-negative integer, got '%.*s'", (int)dbl, dbp);
        if (dbl)
            t->db = (int)db;
        rest = dbp + dbl;
    }
    int rc;
    if (*rest != '?')
        rc = late;
    else if (mode == CS_REDIS_MODE_SENTINEL)
        rc = parse_sentinel_query(rest + 1, t, why, n, late);
    else
        rc = parse_query(rest + 1, 0, t, why, n, late);
    if (rc == 0 && mode == CS_REDIS_MODE_CLUSTER && t->db != 0)
        return fail(CS_REDIS_URL_BAD, why, n, "a Redis Cluster has only db 0, got db %d", t->db);
    return rc;
}

int cs_redis_url_parse(const char *url, cs_redis_target *t, char *why, size_t whylen)
{
    memset(t, 0, sizeof *t);
    t->port = 6379;
    if (!url)
        url = "";
    if (url[0] == '/' || strncmp(url, "unix://", 7) == 0)
        return parse_unix(url, t, why, whylen);
    if (strncmp(url, "redis://", 8) == 0)
        return parse_tcp(url, 8, CS_REDIS_MODE_PLAIN, t, why, whylen);
    if (strncmp(url, "redis+cluster://", 16) == 0) {
        t->mode = CS_REDIS_MODE_CLUSTER;
        return parse_tcp(url, 16, CS_REDIS_MODE_CLUSTER, t, why, whylen);
    }
    if (strncmp(url, "redis+sentinel://", 17) == 0) {
        t->mode = CS_REDIS_MODE_SENTINEL;
        return parse_tcp(url, 17, CS_REDIS_MODE_SENTINEL, t, why, whylen);
    }
    if (strncmp(url, "rediss://", 9) == 0)
        return fail(CS_REDIS_URL_FOREIGN, why, whylen, "TLS (rediss://) is not supported by "
                    "hiredis 0.14: run a TLS client (stunnel) beside clickstage and give it "
                    "redis:// to that (docs/deploy.md)");
    const char *sep = strstr(url, "://");
    if (sep)
        return fail(CS_REDIS_URL_FOREIGN, why, whylen, "unsupported scheme '%.*s' (redis://, "
                    "redis+cluster://, redis+sentinel://, unix://, or an absolute socket path)", (int)(sep - url), url);
    return fail(CS_REDIS_URL_FOREIGN, why, whylen,
                "expected redis://host[:port][/db], unix:///path.sock or /path.sock");
}
