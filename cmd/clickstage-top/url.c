/* url.c — see url.h. Same grammar and messages as pipeline/sink.c's parser. */
#include "url.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t n, const char *fmt, ...)
{
    if (err && n) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, n, fmt, ap);
        va_end(ap);
    }
    return -1;
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

/* Percent-decodes s[0..n) into a new string; NULL on a bad escape or out of memory. */
static char *pct_decode(const char *s, size_t n)
{
    char *d = malloc(n + 1), *o = d;
    if (!d)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            if (i + 2 >= n) {
                free(d);
                return NULL;
            }
            int a = hexval((unsigned char)s[i + 1]), b = hexval((unsigned char)s[i + 2]);
            if (a < 0 || b < 0) {
                free(d);
                return NULL;
            }
            *o++ = (char)(a * 16 + b);
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = 0;
    return d;
}

static int parse_uint(const char *s, size_t n, long max, long *out)
{
    if (n == 0 || n > 10)
        return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_query(top_url *u, const char *q, int allow_password, char *err, size_t errlen)
{
    while (*q) {
        const char *amp = strchr(q, '&');
        size_t n = amp ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', n);
        size_t kl = eq ? (size_t)(eq - q) : n;
        const char *v = eq ? eq + 1 : q + n;
        size_t vl = eq ? n - kl - 1 : 0;
        if (kl == 2 && memcmp(q, "db", 2) == 0) {
            if (parse_uint(v, vl, INT_MAX, &u->db) < 0)
                return fail(err, errlen, "bad Redis URL: db must be a non-negative integer, got '%.*s'",
                            (int)vl, v);
        } else if (allow_password && kl == 8 && memcmp(q, "password", 8) == 0) {
            free(u->password);
            u->password = pct_decode(v, vl);
            if (!u->password)
                return fail(err, errlen, "bad Redis URL: bad %%-escape in password");
        } else {
            return fail(err, errlen, "bad Redis URL: unknown query parameter '%.*s'", (int)kl, q);
        }
        q += n + (amp ? 1 : 0);
    }
    return 0;
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

static int parse(const char *url, top_url *u, char *err, size_t errlen)
{
    if (url[0] == '/') {
        u->is_unix = 1;
        if (!(u->path = strdup(url)))
            return fail(err, errlen, "out of memory");
        return 0;
    }
    if (strncmp(url, "unix://", 7) == 0) {
        const char *p = url + 7;
        if (p[0] != '/')
            return fail(err, errlen,
                        "bad Redis URL: unix:// needs an absolute path (unix:///path/to.sock)");
        const char *q = strchr(p, '?');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        if (n < 2)
            return fail(err, errlen, "bad Redis URL: empty unix socket path");
        u->is_unix = 1;
        if (!(u->path = strndup(p, n)))
            return fail(err, errlen, "out of memory");
        return q ? parse_query(u, q + 1, 1, err, errlen) : 0;
    }
    if (strncmp(url, "rediss://", 9) == 0)
        return fail(err, errlen, "bad Redis URL: TLS (rediss://) is not supported");
    if (strncmp(url, "redis://", 8) != 0) {
        const char *colon = strstr(url, "://");
        if (colon)
            return fail(err, errlen, "bad Redis URL: unsupported scheme '%.*s' (redis://, unix://, "
                        "or an absolute socket path)", (int)(colon - url), url);
        return fail(err, errlen, "bad Redis URL: expected redis://host[:port][/db], "
                    "unix:///path.sock or /path.sock");
    }
    const char *a = url + 8;
    size_t alen = strcspn(a, "/?");
    const char *rest = a + alen;
    const char *at = NULL;
    for (size_t i = 0; i < alen; i++)
        if (a[i] == '@')
            at = a + i;
    const char *h = a;
    size_t hl = alen;
    if (at) {
        size_t ul = (size_t)(at - a);
        const char *colon = memchr(a, ':', ul);
        if (colon) {
            if (colon > a && !(u->user = pct_decode(a, (size_t)(colon - a))))
                return fail(err, errlen, "bad Redis URL: bad %%-escape in user or password");
            u->password = pct_decode(colon + 1, ul - (size_t)(colon - a) - 1);
        } else {
            u->password = pct_decode(a, ul);
        }
        if (!u->password)
            return fail(err, errlen, "bad Redis URL: bad %%-escape in user or password");
        if (!*u->password) {
            free(u->password);
            u->password = NULL;
        }
        h = at + 1;
        hl = alen - (size_t)(h - a);
    }
    const char *portp = NULL;
    size_t portl = 0;
    if (hl && h[0] == '[') {
        const char *rb = memchr(h, ']', hl);
        if (!rb)
            return fail(err, errlen, "bad Redis URL: unterminated '[' in host");
        u->host = strndup(h + 1, (size_t)(rb - h - 1));
        if (rb + 1 < h + hl) {
            if (rb[1] != ':')
                return fail(err, errlen, "bad Redis URL: junk after ']' in host");
            portp = rb + 2;
            portl = hl - (size_t)(portp - h);
        }
    } else {
        const char *colon = memchr(h, ':', hl);
        if (colon && memchr(colon + 1, ':', hl - (size_t)(colon + 1 - h)))
            return fail(err, errlen,
                        "bad Redis URL: an IPv6 host must be in brackets ([::1]:6379)");
        size_t n = colon ? (size_t)(colon - h) : hl;
        u->host = strndup(h, n);
        if (colon) {
            portp = colon + 1;
            portl = hl - n - 1;
        }
    }
    if (!u->host)
        return fail(err, errlen, "out of memory");
    if (!*u->host)
        return fail(err, errlen, "bad Redis URL: missing host");
    if (portp) {
        long port;
        if (parse_uint(portp, portl, 65535, &port) < 0 || port == 0)
            return fail(err, errlen, "bad Redis URL: bad port '%.*s'", (int)portl, portp);
        u->port = (int)port;
    }
    if (*rest == '/') {
        const char *dbp = rest + 1;
        size_t dbl = strcspn(dbp, "?");
        if (dbl && parse_uint(dbp, dbl, INT_MAX, &u->db) < 0)
            return fail(err, errlen, "bad Redis URL: db must be a non-negative integer, got '%.*s'",
                        (int)dbl, dbp);
        rest = dbp + dbl;
    }
    if (*rest == '?' && parse_query(u, rest + 1, 0, err, errlen) < 0)
        return -1;
    return 0;
}

int top_url_parse(const char *url, top_url *u, char *err, size_t errlen)
{
    memset(u, 0, sizeof *u);
    u->port = 6379;
    if (!url || !*url)
        url = "redis://127.0.0.1:6379/0";
    if (parse(url, u, err, errlen) < 0) {
        top_url_free(u);
        return -1;
    }
    set_where(u);
    return 0;
}
