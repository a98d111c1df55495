/* rkeys.h — every Redis key and field name clickstage reads or writes (SPEC §4, docs/state.md),
 * in one place. No other file formats a "<prefix>:{<journey>}:..." key by hand: the sink, the
 * HTTP server's /api/journey, clickstage-top, cs_checkredis, clickstage-loadgen's latency watcher
 * and the benchmarks build their keys here.
 *
 * Contract
 *  - A key is "<prefix>:{<journey>}:<suffix>". The {journey} hash tag puts every key of a journey
 *    in one Redis Cluster slot, so a flush can be one script (SPEC §4).
 *  - cs_rkeys holds the "<prefix>:{<journey>}:" base once; cs_rkey() appends a suffix into a
 *    caller's buffer. Pure string building: no allocation, no I/O.
 *  - The suffixes below are the whole vocabulary. Counter hashes named by cs_agg_foreach
 *    ("by:<dim>:<metric>", "minute:<YYYYMMDDHHMM>:reached") use the CS_RK_BY / CS_RK_MINUTE
 *    prefixes and are composed by pipeline/aggregate.c.
 */
#ifndef CS_RKEYS_H
#define CS_RKEYS_H

#include <stddef.h>
#include <stdint.h>

/* counter hashes (SPEC §4) */
#define CS_RK_ACTIVE "active"
#define CS_RK_REACHED "reached"
#define CS_RK_TRANSITIONS "transitions"
#define CS_RK_ENDED "ended"
#define CS_RK_ENDED_BY "ended_by"
#define CS_RK_SESSIONS "sessions"
#define CS_RK_EVENTS "events"
#define CS_RK_INVALID "invalid"
#define CS_RK_CUSTOMERS "customers"
#define CS_RK_IDENTITY "identity" /* SPEC 3.1: merged, conflicts (only with identity:) */
#define CS_RK_BY "by:"         /* by:<dim>:<active|reached|ended> */
#define CS_RK_MINUTE "minute:" /* minute:<YYYYMMDDHHMM>:reached */
#define CS_RK_MINUTE_TAIL ":reached"
#define CS_RK_TIME_TO "time_to:"                   /* time_to:<stage> (SPEC §4.1) */
#define CS_RK_TRANSITION_TIME "transition_time"    /* a>b:<bucket> */
#define CS_RK_CUSTOMER_TIME_TO "customer_time_to:" /* customer_time_to:<stage> */
/* delivery state (docs/state.md) */
#define CS_RK_OFFSETS "offsets" /* <topic>/<partition> -> next offset counted */
#define CS_RK_WM "wm"           /* <topic>/<partition> -> applied watermark */
#define CS_RK_SNAP "snap:"      /* snap:<topic>/<partition> -> snapshot bytes */
#define CS_RK_META "meta"
#define CS_RK_UPDATES "updates" /* pub/sub channel, one message per applied flush */
/* meta fields */
#define CS_RK_META_SEQ "seq:"   /* seq:<instance id> -> last applied flush sequence */
#define CS_RK_META_STAGES "stages"
#define CS_RK_META_RULES_SHA "rules_sha256"
#define CS_RK_META_UPDATED "updated_ms"
#define CS_RK_META_VERSION "version"

#define CS_RKEYS_MAX 512 /* bytes of a base: prefix (<= 128) + journey (<= 128) + 4 */

typedef struct cs_rkeys {
    char base[CS_RKEYS_MAX]; /* "<prefix>:{<journey>}:" */
    size_t len;
} cs_rkeys;

/* 0, or -1 when prefix or journey is empty or the base would not fit. */
int cs_rkeys_init(cs_rkeys *k, const char *prefix, const char *journey);

/* base + suffix into buf (NUL-terminated); returns buf, or NULL if it does not fit. */
const char *cs_rkey(const cs_rkeys *k, const char *suffix, char *buf, size_t n);

/* "<topic>/<partition>": the field of the offsets and wm hashes, the tail of a snap: key.
 * Returns the length written (truncated to n - 1). */
size_t cs_rk_tp_field(char *buf, size_t n, const char *topic, int32_t partition);

/* The hash tag itself, "{<journey>}": what a Redis Cluster routes a journey's keys by. */
size_t cs_rk_hashtag(char *buf, size_t n, const char *journey);

/* A SCAN MATCH pattern: "<prefix>:{<journey>}:<suffix_glob>" with prefix and journey
 * glob-escaped (a literal '*' in a prefix matches only itself); journey NULL = any journey
 * ("{*}"). Returns the length, or 0 if it does not fit. */
size_t cs_rk_pattern(char *buf, size_t n, const char *prefix, const char *journey,
                     const char *suffix_glob);

/* Splits a key "<prefix>:{<journey>}:<suffix>" of this prefix: 0 with the journey and the
 * suffix as slices of key, -1 when it is not such a key. */
int cs_rk_split(const char *prefix, const char *key, size_t klen, const char **journey,
                size_t *jlen, const char **suffix, size_t *slen);

#endif
