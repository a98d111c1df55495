/* parse.h — the one grammar for durations and integers, in every input surface: the daemon's
 * options (command line, environment, config file), the rule file (session.gap, customer_ttl,
 * ...), the repartitioner's options and the load generator's.
 *
 * Durations: a non-negative decimal integer and a unit, no space: ms, s, m, h, d ("250ms", "30s",
 * "30m", "36h", "7d"); "0" alone is zero. At most 3650d. Not accepted, on purpose: fractions
 * ("1.5s": say 1500ms), a bare number other than 0 (is "500" milliseconds or seconds? the
 * repartitioner and the load generator used to disagree), signs, spaces, other units. The
 * canonical text (cs_format_duration) is the largest unit that divides the value exactly, and
 * parses back to the same value.
 *
 * Integers: an optional sign and decimal digits, nothing else (no spaces, no "1e6", no "0x"),
 * within int64_t.
 *
 * Pure functions of their arguments; thread-safe; no allocation.
 */
#ifndef CS_PARSE_H
#define CS_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define CS_DURATION_MAX_MS (3650LL * 86400000LL)

typedef enum cs_dur_err {
    CS_DUR_OK = 0,
    CS_DUR_BAD,      /* not <digits><unit> */
    CS_DUR_NO_UNIT,  /* digits alone, other than 0 */
    CS_DUR_TOO_LONG, /* above CS_DURATION_MAX_MS */
} cs_dur_err;

/* s[0..len) as a duration in milliseconds. CS_DUR_OK and *ms set, or the reason (*ms kept). */
cs_dur_err cs_parse_duration(const char *s, size_t len, int64_t *ms);
/* The reason as a phrase for "bad duration '<text>' for <what>: <phrase>":
 * "expected an integer and a unit (ms, s, m, h or d), e.g. 30m", ... */
const char *cs_dur_err_text(cs_dur_err e);
/* NUL-terminated form: 0 ok, -1 bad (any reason, or s NULL). */
int cs_parse_duration_ms(const char *s, int64_t *ms);
/* "0", "250ms", "90s", "30m", "2d": the largest unit that divides ms exactly (ms >= 0). */
void cs_format_duration(int64_t ms, char *buf, size_t n);

/* s[0..len) as a strict decimal integer. 0 ok (*out set), -1 not one or out of int64_t. */
int cs_parse_int64(const char *s, size_t len, int64_t *out);

#endif
