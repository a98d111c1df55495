/* rkeys.c — see rkeys.h. */
#include "rkeys.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

int cs_rkeys_init(cs_rkeys *k, const char *prefix, const char *journey)
{
    k->len = 0;
    k->base[0] = 0;
    if (!prefix || !*prefix || !journey || !*journey)
        return -1;
    int n = snprintf(k->base, sizeof k->base, "%s:{%s}:", prefix, journey);
    if (n < 0 || (size_t)n >= sizeof k->base) {
        k->base[0] = 0;
        return -1;
    }
    k->len = (size_t)n;
    return 0;
}

const char *cs_rkey(const cs_rkeys *k, const char *suffix, char *buf, size_t n)
{
    size_t sl = strlen(suffix);
    if (!n || k->len + sl + 1 > n)
        return NULL;
    memcpy(buf, k->base, k->len);
    memcpy(buf + k->len, suffix, sl + 1);
    return buf;
}

static size_t clamp(int l, size_t n)
{
    if (l < 0 || !n)
        return 0;
    return (size_t)l >= n ? n - 1 : (size_t)l;
}

size_t cs_rk_tp_field(char *buf, size_t n, const char *topic, int32_t partition)
{
    return clamp(snprintf(buf, n, "%s/%" PRId32, topic ? topic : "", partition), n);
}

size_t cs_rk_hashtag(char *buf, size_t n, const char *journey)
{
    return clamp(snprintf(buf, n, "{%s}", journey), n);
}

/* glob-escapes s into buf at *o; 0, or -1 when it does not fit */
static int put_escaped(char *buf, size_t n, size_t *o, const char *s)
{
    for (; *s; s++) {
        if (strchr("*?[]\\", *s)) {
            if (*o + 1 >= n)
                return -1;
            buf[(*o)++] = '\\';
        }
        if (*o + 1 >= n)
            return -1;
        buf[(*o)++] = *s;
    }
    return 0;
}

size_t cs_rk_pattern(char *buf, size_t n, const char *prefix, const char *journey,
                     const char *suffix_glob)
{
    size_t o = 0;
    if (!n)
        return 0;
    if (put_escaped(buf, n, &o, prefix) < 0 || put_escaped(buf, n, &o, ":{") < 0)
        goto full;
    if (journey ? put_escaped(buf, n, &o, journey) < 0 : (o + 2 > n ? 1 : (buf[o++] = '*', 0)))
        goto full;
    size_t sl = strlen(suffix_glob);
    if (o + 2 + sl + 1 > n)
        goto full;
    memcpy(buf + o, "}:", 2);
    memcpy(buf + o + 2, suffix_glob, sl + 1);
    return o + 2 + sl;
full:
    buf[0] = 0;
    return 0;
}

int cs_rk_split(const char *prefix, const char *key, size_t klen, const char **journey,
                size_t *jlen, const char **suffix, size_t *slen)
{
    size_t pl = strlen(prefix);
    if (klen < pl + 4 || memcmp(key, prefix, pl) != 0 || key[pl] != ':' || key[pl + 1] != '{')
        return -1;
    const char *j = key + pl + 2, *end = key + klen;
    const char *close = memchr(j, '}', (size_t)(end - j));
    if (!close || close == j || close + 1 >= end || close[1] != ':')
        return -1;
    *journey = j;
    *jlen = (size_t)(close - j);
    *suffix = close + 2;
    *slen = (size_t)(end - close - 2);
    return 0;
}
