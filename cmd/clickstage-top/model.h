/* model.h — clickstage-top's pure data layer: the Redis hashes of one journey (SPEC §4) parsed
 * into a struct, plus the derived views the screen shows (stage order, sorted transitions,
 * dimension breakdown, event rates). No I/O, no clock, no terminal: the Redis layer (redis.c)
 * fills a top_model from HGETALL replies, render.c turns it into lines, and the unit test
 * (tests/top/test_model.c) feeds it literal field/value pairs.
 */
#ifndef TOP_MODEL_H
#define TOP_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "aggregate.h" /* CS_TT_NBUCKETS */

/* One hash: field -> integer, in insertion order (HGETALL order). */
typedef struct top_kv {
    char *key;
    int64_t val;
} top_kv;

typedef struct top_hash {
    top_kv *kv;
    size_t n, cap;
    size_t bad;                 /* fields whose value was not an integer (skipped) */
} top_hash;

void top_hash_clear(top_hash *h);
void top_hash_free(top_hash *h);
/* Adds field=value; a value that is not a decimal int64 is skipped and counted in h->bad.
 * Fields are not checked for repeats (an HGETALL reply has none; find returns the first).
 * 0 ok, -1 out of memory. */
int top_hash_add(top_hash *h, const char *key, size_t klen, const char *val, size_t vlen);
const top_kv *top_hash_find(const top_hash *h, const char *key);
int64_t top_hash_get(const top_hash *h, const char *key); /* 0 when absent */
int64_t top_hash_sum(const top_hash *h);

/* The hashes of one journey, by key suffix (<prefix>:{J}:<suffix>). */
enum top_hid {
    TOP_ACTIVE,
    TOP_REACHED,
    TOP_TRANSITIONS,
    TOP_ENDED,
    TOP_ENDED_BY,
    TOP_SESSIONS,
    TOP_EVENTS,
    TOP_INVALID,
    TOP_CUSTOMERS,
    TOP_IDENTITY,               /* SPEC 3.1 merged, conflicts: only written with identity: */
    TOP_BY_REACHED,             /* by:<dim>:reached of the selected dimension */
    TOP_BY_ACTIVE,              /* by:<dim>:active of the selected dimension */
    TOP_NHASH
};
/* Key suffix of each hash; the by:* ones are NULL (they depend on the dimension). */
extern const char *const top_hash_suffix[TOP_NHASH];

typedef struct top_model {
    top_hash h[TOP_NHASH];
    char **stages;              /* meta.stages in order, then stages seen only in the counts */
    size_t nstages;
    size_t nmeta_stages;        /* how many of stages[] came from meta.stages */
    int has_meta;               /* the meta hash existed */
    int64_t updated_ms;         /* meta.updated_ms, 0 unknown */
    uint64_t seq;               /* highest meta.seq:<instance> */
    char *seq_instance;         /* its instance */
    char *version;              /* meta.version */
    /* SPEC §4.1 time_to:<stage> and customer_time_to:<stage> of stages[i] (i < CS_MAX_STAGES),
     * by bucket (aggregate.h); read by a second transaction once the stages are known */
    int64_t tt[CS_MAX_STAGES][CS_TT_NBUCKETS];
    int64_t ctt[CS_MAX_STAGES][CS_TT_NBUCKETS];
} top_model;

void top_model_init(top_model *m);
void top_model_free(top_model *m);
/* Empties every hash and the meta fields (keeps allocations). */
void top_model_reset(top_model *m);
/* One field of the meta hash. 0 ok, -1 out of memory. */
int top_model_set_meta(top_model *m, const char *field, size_t flen, const char *val, size_t vlen);
/* After all hashes are loaded: builds stages[] (meta order, then any other stage name found in
 * active/reached/ended/customers/events/transitions, sorted; names starting with '_' are
 * markers, never stages). 0 ok, -1 out of memory. */
int top_model_finish(top_model *m);

/* A hash's fields sorted by value descending, then by name. out must hold max entries; returns
 * how many were written (min(n, max)). Entries point into h (valid until it changes). */
typedef struct top_item {
    const char *key;
    int64_t val;
} top_item;
size_t top_sorted(const top_hash *h, top_item *out, size_t max);

/* Conversion from the previous stage: top_at_least(i) / top_at_least(i - 1) in percent. Returns 0
 * and sets *pct, or -1 when there is no previous stage or its at-least count is 0. */
int top_conversion(const top_model *m, size_t i, double *pct);
/* Sessions that reached at least stages[i] (SPEC §4.1 funnel, timeto.h): the transitions a>b
 * with a below stages[i] (_entry lowest) and b at or above it. top_conversion is the ratio of
 * these for i and i - 1 (never above 100 %). */
int64_t top_at_least(const top_model *m, size_t i);
/* Customers whose journey stage is stages[i] or a later one now: the customers hash summed from
 * stage i on (/api/journey's customer_funnel). A customer's journey stage only moves forward, so
 * this never grows with i. top_customer_conversion is its ratio for i and i - 1 in percent (0 and
 * *pct set; -1 for the first stage or a previous count of 0). */
int64_t top_customers_at_least(const top_model *m, size_t i);
int top_customer_conversion(const top_model *m, size_t i, double *pct);
/* One field of time_to:<stages[i]> (customers 0) or customer_time_to:<stages[i]> (1): a bucket
 * name and an integer; others are ignored. */
void top_model_set_tt(top_model *m, int customers, size_t i, const char *bucket, size_t blen,
                      const char *val, size_t vlen);

/* Breakdown by the selected dimension: one row per value (field "<value>/<stage>", split at the
 * last '/', so a value may contain '/'), a column per stage of m->stages. Rows sorted by reached
 * summed over the stages descending, then open sessions, then value; at most max_rows kept,
 * nvalues says how many there were. */
typedef struct top_bd_row {
    char *value;
    int64_t *reached;           /* [nstages] */
    int64_t *active;            /* [nstages] */
    int64_t total_reached;
    int64_t total_active;       /* including sessions with no stage yet (_none) */
} top_bd_row;

typedef struct top_breakdown {
    top_bd_row *rows;
    size_t nrows;               /* kept (<= max_rows) */
    size_t nvalues;             /* distinct values found */
    size_t nstages;
} top_breakdown;

int top_breakdown_build(const top_model *m, size_t max_rows, top_breakdown *bd);
void top_breakdown_free(top_breakdown *bd);

/* A message on <prefix>:{J}:updates: {"updated_ms":…,"seq":…,"instance":"…","commands":…}.
 * Unknown members are ignored; missing ones stay 0/"". 0 ok, -1 not a JSON object. */
typedef struct top_update {
    int64_t updated_ms;
    uint64_t seq;
    int64_t commands;
    char instance[128];
} top_update;
int top_parse_update(const char *json, size_t len, top_update *u);

/* Totals the rates are computed from. events = every valid event (all fields of the events
 * hash: stages, _unclassified and _late); invalid = sum of the invalid hash; late = events._late. */
typedef struct top_totals {
    int64_t events, invalid, late;
} top_totals;
void top_totals_of(const top_model *m, top_totals *t);

/* Rates from deltas between refreshes over wall time. Each refresh pushes its totals; the rate
 * is taken against the newest earlier sample at least TOP_RATE_WINDOW_MS old (or the oldest
 * one kept), so refreshes 100 ms apart do not make the numbers jump. A counter going down
 * (keys deleted, Redis restarted empty) discards the history. */
#define TOP_RATE_SAMPLES 64
#define TOP_RATE_WINDOW_MS 1000
typedef struct top_rate_hist {
    int64_t t_ms[TOP_RATE_SAMPLES];
    top_totals v[TOP_RATE_SAMPLES];
    size_t n, head;             /* head: index of the newest sample */
} top_rate_hist;

typedef struct top_rates {
    int valid;                  /* 0 until two samples exist */
    double events_s, invalid_s, late_s;
    double window_s;            /* the time the rates were measured over */
} top_rates;

void top_rates_reset(top_rate_hist *h);
void top_rates_push(top_rate_hist *h, int64_t now_ms, const top_totals *t, top_rates *out);

/* Key helpers. Redis glob characters (* ? [ ] \) in s are escaped with '\'. Returns a malloc'd
 * string or NULL. */
char *top_glob_escape(const char *s);
/* "<prefix>:{J}:meta" -> J (malloc'd), NULL if key does not have that shape. */
char *top_journey_from_key(const char *prefix, const char *key, size_t klen);
/* "<prefix>:{J}:by:<dim>:reached" -> dim (malloc'd), NULL if key does not have that shape. */
char *top_dim_from_key(const char *prefix, const char *journey, const char *key, size_t klen);
/* Sorts and de-duplicates a list of malloc'd strings in place; returns the new count. */
size_t top_strv_sort_uniq(char **v, size_t n);

/* Why Redis may refuse the daemon's writes, read from the text of INFO (issue 20): clickstage-top
 * only reads, so it cannot see the daemon's refusals; when no flush arrived for --stale seconds
 * it asks Redis what it can see. Returns the class (pipeline/redis.h) and a one-line reason in
 * out: CS_REDIS_READONLY (role:slave), CS_REDIS_LOADING (loading:1), CS_REDIS_OOM (maxmemory set,
 * used_memory at or above it, policy noeviction or volatile-*); CS_REDIS_OK with out "" when INFO shows none
 * of them (the daemon is stopped, or refused for a reason INFO does not show, e.g. an ACL). */
int top_info_hint(const char *info, size_t len, char *out, size_t outlen);

#endif
