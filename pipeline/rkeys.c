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
