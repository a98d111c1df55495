/* ref_time.h — the fuzzers' reference of SPEC §1.1 numeric times: a decimal number (a JSON
 * number when `json`, else digits with an optional fraction) in a unit, to epoch ms truncated
 * toward zero. Written apart from pipeline/decode.c: the number is reduced to its significant
 * digits and a power of ten, and the result is computed in 128-bit integers, so a decoder that
 * miscounts digits, rounds through a double or overflows disagrees with it. */
#ifndef CS_FUZZ_REF_TIME_H
#define CS_FUZZ_REF_TIME_H

#include <stddef.h>
#include <stdint.h>

/* units as in pipeline/formats.h: 0 ms, 1 s, 2 us, 3 ns, 4 auto */
static int ref_num_time(const char *s, size_t n, int json, int unit, int64_t *out)
{
    size_t i = 0;
    int neg = 0;
    if (json && n && s[0] == '-')
        neg = 1, i = 1;
    char dig[80]; /* significant digits kept (more cannot make an int64) */
    size_t nd = 0, nint = 0, nfr = 0, lead = 0;
    long long pow10 = 0; /* value = dig * 10^pow10, with the digits not kept added back */
    int any = 0, nonzero = 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, nint++) {
        any = 1;
        if (!nonzero && s[i] == '0')
            continue;
        nonzero = 1;
        if (nd < sizeof dig)
            dig[nd++] = s[i];
        else
            pow10++; /* an integer digit beyond what is kept */
    }
    if (!any)
        return -1;
    if (i < n && s[i] == '.') {
        i++;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, nfr++) {
            if (!nonzero && s[i] == '0') {
                lead++;
                pow10--; /* 0.001: the point moves all the same */
                continue;
            }
            nonzero = 1;
            if (nd < sizeof dig) {
                dig[nd++] = s[i];
                pow10--;
            }
        }
        if (!nfr)
            return -1;
    }
    (void)lead;
    long long e = 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        if (!json)
            return -1;
        i++;
        int en = 0;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            en = s[i++] == '-';
        size_t e0 = i;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            if (e < 1000000000000LL)
                e = e * 10 + (s[i] - '0');
        if (i == e0)
            return -1;
        if (en)
            e = -e;
    }
    if (i != n)
        return -1;
    if (nd == 0) {
        *out = 0;
        return 0;
    }
    /* fraction digits were counted in pow10 when kept; those dropped after the kept ones do
     * not change the integer part of anything with <= 19 digits */
    long long p = pow10 + e;               /* value = dig * 10^p */
    long long intdig = (long long)nd + p;  /* digits before the decimal point */
    if (unit == 4)
        unit = intdig <= 11 ? 1 : intdig <= 14 ? 0 : intdig <= 17 ? 2 : 3;
    static const int k[4] = {0, 3, -3, -6};
    p += k[unit];
    __int128 v = 0;
    const __int128 lim = (__int128)INT64_MAX;
    if (p >= 0) {
        if ((long long)nd + p > 20)
            return -1;
        for (size_t j = 0; j < nd; j++)
            v = v * 10 + (dig[j] - '0');
        for (long long j = 0; j < p; j++)
            v *= 10;
    } else {
        long long keep = (long long)nd + p;
        if (keep > 20)
            return -1;
        for (long long j = 0; j < keep; j++)
            v = v * 10 + (dig[j] - '0');
    }
    if (v > lim)
        return -1;
    *out = neg ? -(int64_t)v : (int64_t)v;
    return 0;
}

#endif
