/* util.h — small helpers every part of clickstage needs the same way (internal). */
#ifndef CS_UTIL_H
#define CS_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <xxhash.h>

/* s[0..len) as an error message shows it: at most cap - 1 bytes (cap >= 1), control bytes as
 * '?' (an error is one line of a log, and a rule file's or command line's bytes may hold
 * newlines), NUL-terminated. Returns the bytes written. */
static inline size_t cs_printable(char *dst, size_t cap, const char *s, size_t len)
{
    size_t n = 0;
    for (; n < len && n < cap - 1; n++) {
        const unsigned char ch = (unsigned char)s[n];
        dst[n] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    dst[n] = '\0';
    return n;
}

/* a[0..n) == b[0..n), for the per-event look-ups that confirm a hash hit on a short value (a
 * classify key, a dimension value): two overlapping loads from each end cover 4..16 bytes,
 * three bytes 1..3, so nothing outside [0, n) is read; longer values go to memcmp. Rejected:
 * memcmp for all, a library call of ~20 instructions for a 6-byte compare (callgrind, issue 18;
 * ~3 such compares an event). */
static inline int cs_bytes_eq(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;
    if (n >= 8) {
        if (n > 16)
            return memcmp(x, y, n) == 0;
        uint64_t p, q, r, t;
        memcpy(&p, x, 8);
        memcpy(&q, y, 8);
        memcpy(&r, x + n - 8, 8);
        memcpy(&t, y + n - 8, 8);
        return ((p ^ q) | (r ^ t)) == 0;
    }
    if (n >= 4) {
        uint32_t p, q, r, t;
        memcpy(&p, x, 4);
        memcpy(&q, y, 4);
        memcpy(&r, x + n - 4, 4);
        memcpy(&t, y + n - 4, 4);
        return ((p ^ q) | (r ^ t)) == 0;
    }
    if (n == 0)
        return 1;
    return x[0] == y[0] && x[n >> 1] == y[n >> 1] && x[n - 1] == y[n - 1];
}

/* Whether s[0..n) holds a NUL, n <= 16, read as cs_bytes_eq reads (nothing outside [0, n)):
 * SWAR, a byte b is zero iff (b - 1) & ~b has its top bit set (a borrow into a higher byte only
 * follows a zero byte, so the answer is exact). */
static inline int cs_has_nul_short(const void *p, size_t n)
{
    const unsigned char *s = p;
    if (n >= 8) {
        uint64_t a, b;
        memcpy(&a, s, 8);
        memcpy(&b, s + n - 8, 8);
        const uint64_t lo = 0x0101010101010101u, hi = 0x8080808080808080u;
        return (((a - lo) & ~a) | ((b - lo) & ~b)) & hi ? 1 : 0;
    }
    if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + n - 4, 4);
        const uint32_t lo = 0x01010101u, hi = 0x80808080u;
        return (((a - lo) & ~a) | ((b - lo) & ~b)) & hi ? 1 : 0;
    }
    for (size_t i = 0; i < n; i++)
        if (!s[i])
            return 1;
    return 0;
}

/* Hash of a short value for the per-event tables (classify's value index, the dimension
 * dictionaries): values of up to 16 bytes, nearly all of them, are read as cs_bytes_eq reads
 * them (two overlapping loads, or three bytes; nothing outside [0, n)) and mixed by one
 * 64x64->128 multiply folded to 64 bits; longer ones go to XXH3_64bits. In memory only (a table
 * and its look-ups use the same function; nothing stores it). Rejected: XXH3_64bits for all, a
 * library call of ~30 instructions for a 6-byte value (callgrind, issue 18, second pass). */
static inline uint64_t cs_vhash(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t a, b;
    if (n > 16)
        return XXH3_64bits(p, n);
    if (n >= 8) {
        memcpy(&a, s, 8);
        memcpy(&b, s + n - 8, 8);
    } else if (n >= 4) {
        uint32_t x, y;
        memcpy(&x, s, 4);
        memcpy(&y, s + n - 4, 4);
        a = x;
        b = y;
    } else if (n) {
        a = (uint64_t)s[0] | (uint64_t)s[n >> 1] << 8 | (uint64_t)s[n - 1] << 16;
        b = 0;
    } else {
        a = b = 0;
    }
    const unsigned __int128 m =
        (unsigned __int128)(a ^ 0x9E3779B97F4A7C15u) * (b ^ (0xC2B2AE3D27D4EB4Fu + n));
    return (uint64_t)m ^ (uint64_t)(m >> 64);
}

/* Wall-clock milliseconds since the epoch (timestamps people and Redis see). */
static inline int64_t cs_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Monotonic milliseconds (intervals, timeouts, backoff). */
static inline int64_t cs_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Monotonic microseconds (durations worth measuring finer than a millisecond). */
static inline int64_t cs_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline int64_t cs_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CPU time of the calling thread in nanoseconds (per-role CPU accounting). */
static inline int64_t cs_thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Fills an errstr buffer (librdkafka style); a NULL or empty buffer is ignored. */
static inline void cs_seterr(char *errstr, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline void cs_seterr(char *errstr, size_t errlen, const char *fmt, ...)
{
    if (!errstr || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errstr, errlen, fmt, ap);
    va_end(ap);
}

#endif
