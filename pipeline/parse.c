/* parse.c — see parse.h. */
#include "parse.h"

#include <inttypes.h>
#include <stdio.h>

#define SEC 1000LL
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

cs_dur_err cs_parse_duration(const char *s, size_t len, int64_t *ms)
{
    if (!s)
        return CS_DUR_BAD;
    size_t i = 0;
    int64_t v = 0;
    int big = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        if (v > CS_DURATION_MAX_MS)
            big = 1; /* keeps v small; still read the rest to tell "too long" from "bad" */
        else
            v = v * 10 + (s[i] - '0');
        i++;
    }
    if (i == 0)
        return CS_DUR_BAD;
    const char *u = s + i;
    size_t ul = len - i;
    int64_t mult;
    if (ul == 0) {
        if (v != 0 || big)
            return CS_DUR_NO_UNIT;
        mult = 1;
    } else if (ul == 2 && u[0] == 'm' && u[1] == 's') {
        mult = 1;
    } else if (ul == 1 && u[0] == 's') {
        mult = SEC;
    } else if (ul == 1 && u[0] == 'm') {
        mult = MIN;
    } else if (ul == 1 && u[0] == 'h') {
        mult = HOUR;
    } else if (ul == 1 && u[0] == 'd') {
        mult = DAY;
    } else {
        return CS_DUR_BAD;
    }
    if (big || v > CS_DURATION_MAX_MS / mult)
        return CS_DUR_TOO_LONG;
    *ms = v * mult;
    return CS_DUR_OK;
}

const char *cs_dur_err_text(cs_dur_err e)
{
    switch (e) {
    case CS_DUR_OK: return "ok";
    case CS_DUR_NO_UNIT: return "missing unit (ms, s, m, h or d), e.g. 30m";
    case CS_DUR_TOO_LONG: return "too long (at most 3650d)";
    default: return "expected an integer and a unit (ms, s, m, h or d), e.g. 30m";
    }
}

int cs_parse_duration_ms(const char *s, int64_t *ms)
{
    size_t n = 0;
    if (!s || !ms)
        return -1;
    while (s[n])
        n++;
    return cs_parse_duration(s, n, ms) == CS_DUR_OK ? 0 : -1;
}

void cs_format_duration(int64_t ms, char *buf, size_t n)
{
    static const struct {
        int64_t mult;
        const char *unit;
    } units[] = {{DAY, "d"}, {HOUR, "h"}, {MIN, "m"}, {SEC, "s"}, {1, "ms"}};
    if (ms <= 0) {
        snprintf(buf, n, "0");
        return;
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (ms % units[i].mult == 0) {
            snprintf(buf, n, "%" PRId64 "%s", ms / units[i].mult, units[i].unit);
            return;
        }
}

int cs_parse_int64(const char *s, size_t len, int64_t *out)
{
    size_t i = 0;
    int neg = 0;
    if (!s || !len)
        return -1;
    if (s[0] == '+' || s[0] == '-')
        neg = s[i++] == '-';
    if (i == len)
        return -1;
    uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (lim - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}
