/* kprops.c — see kprops.h. */
#include "kprops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *cs_kprops_escape(const char *s, size_t len)
{
    char *o = malloc(2 * len + 1), *w = o;
    if (!o)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == ',' || s[i] == '\\')
            *w++ = '\\';
        *w++ = s[i];
    }
    *w = '\0';
    return o;
}

static int blank(char c) { return c == ' ' || c == '\t'; }

char *cs_kprops_from_properties(const char *src, size_t len, char *why, size_t whylen)
{
    char *out = malloc(2 * len + 1);
    if (!out) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    size_t o = 0, lineno = 0;
    const char *p = src, *end = src + len;
    while (p < end) {
        const char *e = memchr(p, '\n', (size_t)(end - p));
        if (!e)
            e = end;
        lineno++;
        const char *a = p, *z = e;
        p = e < end ? e + 1 : end;
        while (a < z && blank(*a))
            a++;
        while (z > a && (z[-1] == '\r' || blank(z[-1])))
            z--;
        if (a == z || *a == '#')
            continue;
        const char *eq = memchr(a, '=', (size_t)(z - a));
        if (!eq) { /* not quoted: it may be a password that lost its key */
            snprintf(why, whylen, "line %zu is not key=value", lineno);
            free(out);
            return NULL;
        }
        const char *ke = eq, *vs = eq + 1;
        while (ke > a && blank(ke[-1]))
            ke--;
        while (vs < z && blank(*vs))
            vs++;
        if (o)
            out[o++] = ',';
        memcpy(out + o, a, (size_t)(ke - a));
        o += (size_t)(ke - a);
        out[o++] = '=';
        for (const char *q = vs; q < z; q++) {
            if (*q == ',' || *q == '\\')
                out[o++] = '\\';
            out[o++] = *q;
        }
    }
    out[o] = '\0';
    return out;
}

int cs_kprops_next(const char **cursor, char *buf, size_t buflen)
{
    const char *p = *cursor;
    if (!p || !*p)
        return 0;
    size_t n = 0;
    int fits = 1;
    for (; *p && *p != ','; p++) {
        if (*p == '\\' && (p[1] == ',' || p[1] == '\\'))
            p++;
        if (n + 1 < buflen)
            buf[n++] = *p;
        else
            fits = 0;
    }
    if (buflen)
        buf[n] = '\0';
    *cursor = *p == ',' ? p + 1 : p;
    return fits ? 1 : -1;
}
