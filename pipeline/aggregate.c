/* aggregate.c — see aggregate.h for the contract. */
#include "aggregate.h"
#include "util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

static const char *const end_names[CS_END__COUNT] = {"gap", "max_duration", "drain", "shutdown"};

const char *cs_end_reason_name(int r)
{
    return (r >= 0 && r < CS_END__COUNT) ? end_names[r] : "?";
}

/* ---- dimension dictionary ---------------------------------------------------------------- */

static cs_dimval *dimval_new(const char *s, uint32_t len, uint64_t h, uint32_t id)
{
    cs_dimval *v = malloc(sizeof *v + len + 1);
    if (!v)
        return NULL;
    v->h = h;
    v->id = id;
    v->len = len;
    memcpy(v->s, s, len);
    v->s[len] = 0;
    return v;
}

int cs_dimdict_init(cs_dimdict_mpmc *d, uint32_t max_values)
{
    memset(d, 0, sizeof *d);
    uint32_t slots = 16;
    while (slots < 2 * max_values + 2)
        slots <<= 1;
    d->max_values = max_values;
    d->mask = slots - 1;
    d->slots = calloc(slots, sizeof *d->slots);
    d->by_id = calloc((size_t)max_values + 2, sizeof *d->by_id);
    if (!d->slots || !d->by_id)
        return -1;
    atomic_init(&d->count, 0);
    pthread_mutex_init(&d->lock, NULL);
    d->by_id[CS_DIM_UNKNOWN] = dimval_new("_unknown", 8, 0, CS_DIM_UNKNOWN);
    d->by_id[CS_DIM_OTHER] = dimval_new("_other", 6, 0, CS_DIM_OTHER);
    return 0;
}

void cs_dimdict_free(cs_dimdict_mpmc *d)
{
    if (!d->by_id)
        return;
    for (uint32_t i = 0; i < d->max_values + 2; i++)
        free(atomic_load_explicit(&d->by_id[i], memory_order_relaxed));
    free(d->by_id);
    free(d->slots);
    pthread_mutex_destroy(&d->lock);
    memset(d, 0, sizeof *d);
}

/* Probe for s; returns the value or NULL at the first empty slot (the slot index in *at).
 * Inlined into cs_dimdict_id's look-up (a call cost ~20 instructions of saves and restores
 * around a one-slot probe; callgrind, issue 18, second pass). */
static inline __attribute__((always_inline)) cs_dimval *dimdict_find(cs_dimdict_mpmc *d, const char *s, uint32_t len, uint64_t h,
                               uint32_t *at)
{
    for (uint32_t i = (uint32_t)h & d->mask;; i = (i + 1) & d->mask) {
        /* acquire: pairs with the release store in cs_dimdict_id, so a non-NULL pointer
         * always shows a fully written cs_dimval. */
        cs_dimval *v = atomic_load_explicit(&d->slots[i], memory_order_acquire);
        if (!v) {
            *at = i;
            return NULL;
        }
        if (v->h == h && v->len == len && cs_bytes_eq(v->s, s, len))
            return v;
    }
}

/* The part of a value that is kept (aggregate.h, CS_MAX_DIM_VALUE_BYTES). */
static uint32_t dimval_len(const char *s, uint32_t len)
{
    if (len > CS_MAX_DIM_VALUE_BYTES) {
        len = CS_MAX_DIM_VALUE_BYTES;
        /* back to the start of the character the cut falls in (continuation bytes 10xxxxxx) */
        for (int k = 0; k < 3 && ((unsigned char)s[len] & 0xC0) == 0x80; k++)
            len--;
    }
    if (len <= 16 && !cs_has_nul_short(s, len))
        return len; /* the common case, without a call (callgrind, issue 18, second pass) */
    const char *z = memchr(s, '\0', len);
    return z ? (uint32_t)(z - s) : len;
}

static uint16_t dimdict_insert(cs_dimdict_mpmc *d, const char *s, uint32_t len, uint64_t h);

uint16_t cs_dimdict_id(cs_dimdict_mpmc *d, const char *s, uint32_t len)
{
    len = dimval_len(s, len);
    if (len == 0)
        return CS_DIM_UNKNOWN;
    uint64_t h = cs_vhash(s, len);
    uint32_t at;
    cs_dimval *v = dimdict_find(d, s, len, h, &at);
    if (__builtin_expect(v != NULL, 1))
        return (uint16_t)v->id;
    return dimdict_insert(d, s, len, h);
}

/* cs_dimdict_id for a value not found: a new id under the lock, or CS_DIM_OTHER when full. */
static __attribute__((noinline)) uint16_t dimdict_insert(cs_dimdict_mpmc *d, const char *s,
                                                         uint32_t len, uint64_t h)
{
    uint32_t at;
    cs_dimval *v;
    /* relaxed: only a hint; the authoritative check is repeated under the lock. */
    if (atomic_load_explicit(&d->count, memory_order_relaxed) >= d->max_values)
        return CS_DIM_OTHER;
    uint16_t id = CS_DIM_OTHER;
    pthread_mutex_lock(&d->lock);
    v = dimdict_find(d, s, len, h, &at); /* another worker may have inserted it meanwhile */
    if (v) {
        id = (uint16_t)v->id;
    } else {
        uint32_t n = atomic_load_explicit(&d->count, memory_order_relaxed);
        if (n < d->max_values) {
            cs_dimval *nv = dimval_new(s, len, h, n + 2);
            if (nv) {
                /* release: by_id first, then the slot; whoever finds the slot finds by_id. */
                atomic_store_explicit(&d->by_id[n + 2], nv, memory_order_release);
                atomic_store_explicit(&d->slots[at], nv, memory_order_release);
                atomic_store_explicit(&d->count, n + 1, memory_order_relaxed);
                id = (uint16_t)(n + 2);
            }
        }
    }
    pthread_mutex_unlock(&d->lock);
    return id;
}

const char *cs_dimdict_name(cs_dimdict_mpmc *d, uint16_t id, uint32_t *len)
{
    /* acquire: pairs with the release store of by_id in cs_dimdict_id. */
    cs_dimval *v = id < d->max_values + 2
                       ? atomic_load_explicit(&d->by_id[id], memory_order_acquire)
                       : NULL;
    if (!v)
        v = atomic_load_explicit(&d->by_id[CS_DIM_OTHER], memory_order_acquire);
    if (len)
        *len = v->len;
    return v->s;
}

/* ---- aggregate --------------------------------------------------------------------------- */

int cs_agg_init(cs_agg *a, const cs_ruleset *rs)
{
    memset(a, 0, sizeof *a);
    a->nstages = cs_rules_nstages(rs);
    a->ndims = cs_rules_ndims(rs);
    a->by_stride = (uint32_t)a->nstages + 1;
    for (int d = 0; d < a->ndims; d++) {
        a->dim_width[d] = cs_rules_dim(rs, d)->max_values + 2;
        for (int m = 0; m < 3; m++) {
            a->by[d][m] = calloc((size_t)a->dim_width[d] * a->by_stride, sizeof(int64_t));
            if (!a->by[d][m])
                return -1;
        }
    }
    {
        size_t ns1 = (size_t)a->by_stride, nb = CS_TT_NBUCKETS;
        size_t n = ns1 * nb * 2 + ns1 * ns1 * nb + ns1 * 2;
        int64_t *h = calloc(n, sizeof *h);
        if (!h)
            return -1;
        a->tt.n = n;
        a->tt.time_to = h;
        a->tt.ctime_to = h + ns1 * nb;
        a->tt.ttime = h + ns1 * nb * 2;
        a->tt.time_to_sum_ms = h + ns1 * nb * 2 + ns1 * ns1 * nb;
        a->tt.ctime_to_sum_ms = a->tt.time_to_sum_ms + ns1;
    }
    a->minutes_cap = 8;
    a->minutes = malloc(a->minutes_cap * sizeof *a->minutes);
    if (!a->minutes)
        return -1;
    for (uint32_t i = 0; i < a->minutes_cap; i++)
        a->minutes[i].minute = INT64_MIN;
    return 0;
}

void cs_agg_free(cs_agg *a)
{
    for (int d = 0; d < CS_MAX_DIMS; d++)
        for (int m = 0; m < 3; m++)
            free(a->by[d][m]);
    free(a->tt.time_to);
    free(a->minutes);
    memset(a, 0, sizeof *a);
}

void cs_agg_reset(cs_agg *a)
{
    if (!a->changes && a->minutes_n == 0)
        return;
    /* Everything from `active` up to `by` is plain counters. */
    memset(a->active, 0, (size_t)((char *)a->by - (char *)a->active));
    for (int d = 0; d < a->ndims; d++)
        for (int m = 0; m < 3; m++)
            memset(a->by[d][m], 0, (size_t)a->dim_width[d] * a->by_stride * sizeof(int64_t));
    memset(a->tt.time_to, 0, a->tt.n * sizeof(int64_t));
    for (uint32_t i = 0; i < a->minutes_cap; i++)
        a->minutes[i].minute = INT64_MIN;
    a->minutes_n = 0;
    a->changes = 0;
}

static inline uint32_t minute_slot(int64_t m, uint32_t cap)
{
    return (uint32_t)(((uint64_t)m * 0x9E3779B97F4A7C15ull) >> 32) & (cap - 1);
}

/* The minutes table doubled: 0, or -1 when out of memory. */
static __attribute__((noinline)) int minutes_grow(cs_agg *a)
{
    uint32_t ncap = a->minutes_cap * 2;
    cs_minute *n = malloc(ncap * sizeof *n);
    if (!n)
        return -1;
    for (uint32_t i = 0; i < ncap; i++)
        n[i].minute = INT64_MIN;
    for (uint32_t i = 0; i < a->minutes_cap; i++) {
        if (a->minutes[i].minute == INT64_MIN)
            continue;
        uint32_t j = minute_slot(a->minutes[i].minute, ncap);
        while (n[j].minute != INT64_MIN)
            j = (j + 1) & (ncap - 1);
        n[j] = a->minutes[i];
    }
    free(a->minutes);
    a->minutes = n;
    a->minutes_cap = ncap;
    return 0;
}

/* Inlined, the growth out of line: as a call it cost ~39 instructions a sample (callgrind,
 * issue 18, second pass). */
static inline __attribute__((always_inline)) cs_minute *minute_get(cs_agg *a, int64_t m)
{
    if (a->minutes_n * 2 >= a->minutes_cap && minutes_grow(a) != 0)
        return NULL; /* out of memory: caller drops the sample; counted nowhere else */
    uint32_t j = minute_slot(m, a->minutes_cap);
    while (a->minutes[j].minute != m) {
        if (a->minutes[j].minute == INT64_MIN) {
            memset(&a->minutes[j], 0, sizeof a->minutes[j]);
            a->minutes[j].minute = m;
            a->minutes_n++;
            break;
        }
        j = (j + 1) & (a->minutes_cap - 1);
    }
    return &a->minutes[j];
}

static inline int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

void cs_agg_minute_add(cs_agg *a, int64_t t_ms, int stage, int64_t n)
{
    cs_minute *m = minute_get(a, floor_div(t_ms, 60000));
    if (m) {
        m->reached[stage] += n;
        a->changes++;
    }
}

void cs_agg_merge_counters(cs_agg *dst, const cs_agg *src)
{
    if (!src->changes)
        return;
    int64_t *d = dst->active;
    const int64_t *s = src->active;
    size_t n = (size_t)((const char *)src->by - (const char *)src->active) / sizeof(int64_t);
    for (size_t i = 0; i < n; i++)
        d[i] += s[i];
    for (int k = 0; k < src->ndims; k++)
        for (int m = 0; m < 3; m++)
            for (size_t i = 0; i < (size_t)src->dim_width[k] * src->by_stride; i++)
                dst->by[k][m][i] += src->by[k][m][i];
    for (size_t i = 0; i < src->tt.n; i++)
        dst->tt.time_to[i] += src->tt.time_to[i];
    dst->changes += src->changes;
}

void cs_agg_merge(cs_agg *dst, const cs_agg *src)
{
    if (!src->changes)
        return;
    cs_agg_merge_counters(dst, src);
    for (uint32_t i = 0; i < src->minutes_cap; i++) {
        const cs_minute *sm = &src->minutes[i];
        if (sm->minute == INT64_MIN)
            continue;
        cs_minute *dm = minute_get(dst, sm->minute);
        if (!dm)
            continue;
        for (int st = 0; st < CS_MAX_STAGES; st++)
            dm->reached[st] += sm->reached[st];
    }
}

/* ---- naming ------------------------------------------------------------------------------ */

static const char *slot_name(const cs_ruleset *rs, int slot, const char *zero)
{
    return slot == 0 ? zero : cs_rules_stage_name(rs, slot - 1);
}

static void emit_slots(const int64_t *v, int nslots, const cs_ruleset *rs, const char *hash,
                       const char *zero, cs_agg_cb cb, void *op)
{
    for (int i = 0; i < nslots; i++)
        if (v[i])
            cb(op, hash, slot_name(rs, i, zero), v[i]);
}

void cs_agg_foreach(const cs_agg *a, const cs_ruleset *rs, cs_dimdict_mpmc *dicts, cs_agg_cb cb,
                    void *op)
{
    int ns = a->nstages + 1;
    /* a dimension value (<= CS_MAX_DIM_VALUE_BYTES), '/', a stage name (<= 64), NUL; it was 512
     * bytes, so longer values lost their tail and their "/<stage>", and values sharing 511
     * bytes were counted in one field */
    char field[CS_MAX_DIM_VALUE_BYTES + 80], hash[192];
    emit_slots(a->active, ns, rs, "active", "_none", cb, op);
    for (int s = 1; s < ns; s++)
        if (a->reached[s])
            cb(op, "reached", cs_rules_stage_name(rs, s - 1), a->reached[s]);
    emit_slots(a->ended, ns, rs, "ended", "_none", cb, op);
    emit_slots(a->customers, ns, rs, "customers", "_none", cb, op);
    for (int f = 0; f < ns; f++)
        for (int t = 1; t < ns; t++)
            if (a->transitions[f][t]) {
                snprintf(field, sizeof field, "%s>%s", slot_name(rs, f, "_entry"),
                         cs_rules_stage_name(rs, t - 1));
                cb(op, "transitions", field, a->transitions[f][t]);
            }
    for (int r = 0; r < CS_END__COUNT; r++)
        if (a->ended_by[r])
            cb(op, "ended_by", end_names[r], a->ended_by[r]);
    if (a->started)
        cb(op, "sessions", "started", a->started);
    if (a->ended_n)
        cb(op, "sessions", "ended", a->ended_n);
    if (a->started - a->ended_n)
        cb(op, "sessions", "active", a->started - a->ended_n);
    for (int s = 0; s < a->nstages; s++)
        if (a->events[s])
            cb(op, "events", cs_rules_stage_name(rs, s), a->events[s]);
    if (a->unclassified)
        cb(op, "events", "_unclassified", a->unclassified);
    if (a->late)
        cb(op, "events", "_late", a->late);
    if (a->id_merged) /* SPEC §3.1: only written when identity: is on */
        cb(op, "identity", "merged", a->id_merged);
    if (a->id_conflicts)
        cb(op, "identity", "conflicts", a->id_conflicts);
    for (int r = 1; r < CS_INV__COUNT; r++)
        if (a->invalid[r])
            cb(op, "invalid", cs_invalid_name((cs_invalid)r), a->invalid[r]);
    static const char *const metric[3] = {"active", "reached", "ended"};
    for (int d = 0; d < a->ndims; d++) {
        for (int m = 0; m < 3; m++) {
            snprintf(hash, sizeof hash, "by:%s:%s", cs_rules_dim(rs, d)->name, metric[m]);
            const int64_t *v = a->by[d][m];
            for (uint32_t id = 0; id < a->dim_width[d]; id++)
                for (int s = 0; s < ns; s++)
                    if (v[id * a->by_stride + (uint32_t)s]) {
                        snprintf(field, sizeof field, "%s/%s",
                                 cs_dimdict_name(&dicts[d], (uint16_t)id, NULL),
                                 slot_name(rs, s, "_none"));
                        cb(op, hash, field, v[id * a->by_stride + (uint32_t)s]);
                    }
        }
    }
    /* SPEC §4.1: time_to:<stage>, customer_time_to:<stage> (field: bucket), transition_time
     * (field: a>b:bucket) */
    for (int s = 1; s < ns; s++) {
        const int64_t *tv = a->tt.time_to + (size_t)s * CS_TT_NBUCKETS;
        const int64_t *cv = a->tt.ctime_to + (size_t)s * CS_TT_NBUCKETS;
        for (int b = 0; b < CS_TT_NBUCKETS; b++) {
            if (tv[b]) {
                snprintf(hash, sizeof hash, "time_to:%s", cs_rules_stage_name(rs, s - 1));
                cb(op, hash, cs_tt_bucket_name[b], tv[b]);
            }
            if (cv[b]) {
                snprintf(hash, sizeof hash, "customer_time_to:%s", cs_rules_stage_name(rs, s - 1));
                cb(op, hash, cs_tt_bucket_name[b], cv[b]);
            }
        }
    }
    for (int f = 0; f < ns; f++)
        for (int t = f + 1; t < ns; t++) {
            const int64_t *v = a->tt.ttime + ((size_t)f * (size_t)ns + (size_t)t) * CS_TT_NBUCKETS;
            for (int b = 0; b < CS_TT_NBUCKETS; b++)
                if (v[b]) {
                    snprintf(field, sizeof field, "%s>%s:%s", slot_name(rs, f, "_entry"),
                             cs_rules_stage_name(rs, t - 1), cs_tt_bucket_name[b]);
                    cb(op, "transition_time", field, v[b]);
                }
        }
    for (uint32_t i = 0; i < a->minutes_cap; i++) {
        const cs_minute *m = &a->minutes[i];
        if (m->minute == INT64_MIN)
            continue;
        time_t secs = (time_t)(m->minute * 60);
        struct tm tm;
        gmtime_r(&secs, &tm);
        snprintf(hash, sizeof hash, "minute:%04d%02d%02d%02d%02d:reached", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min);
        for (int s = 0; s < a->nstages; s++)
            if (m->reached[s])
                cb(op, hash, cs_rules_stage_name(rs, s), m->reached[s]);
    }
}
