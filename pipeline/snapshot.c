/* snapshot.c — see snapshot.h for the contract and docs/snapshot-format.md for the bytes. */
#include "snapshot.h"

#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "util.h"

#define SNAP_MAGIC "CSNP"
#define HDR_LEN 56     /* magic 4, version 2, nstages 1, ndims 1, layout 8, 5 x int64 */
#define TRAILER_LEN 8  /* XXH3-64 of everything before it */
#define OFF_CUSTOMERS 40
#define OFF_SESSIONS 48
#define CUST_MIN_V1 7  /* smallest customer record: hash delta 1, h2 4, last delta 1, flags 1 */
#define CUST_MIN 6     /* v2: hash delta 1, h2 2, last delta 1, first 1, flags 1 */
#define SESS_MIN 2     /* + span 1 + stage 1, and 1 per dimension reference */
#define FLAG_STAGE 0x3f
#define FLAG_SESSION 0x40
#define FLAG_SLAST 0x80 /* the session's last differs from the customer's: a delta follows */
#define ID_NOJOURNEY 0x01 /* v3 identity byte: the key has no customer journey */
#define ID_ALIAS 0x02     /* v3 identity byte: a device with an alias: person h (8), h2 (2) */

/* ---- little-endian fixed ints and LEB128 varints ----------------------------------------- */

static inline void put_u16(uint8_t *o, uint16_t v)
{
    o[0] = (uint8_t)v;
    o[1] = (uint8_t)(v >> 8);
}

static inline void put_u64(uint8_t *o, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        o[i] = (uint8_t)(v >> (8 * i));
}

static inline uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static inline uint8_t *put_uv(uint8_t *o, uint64_t v)
{
    while (v >= 0x80) {
        *o++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *o++ = (uint8_t)v;
    return o;
}

/* The int64 with the same bits (two's complement, without implementation-defined casts). */
static inline int64_t as_i64(uint64_t u)
{
    int64_t v;
    memcpy(&v, &u, sizeof v);
    return v;
}

/* int64 <-> the uint64 distance from INT64_MIN, so differences of times never overflow. */
static inline uint64_t ubias(int64_t v)
{
    return (uint64_t)v ^ ((uint64_t)1 << 63);
}

static inline int64_t unbias(uint64_t u)
{
    return as_i64(u ^ ((uint64_t)1 << 63));
}

/* ---- layout signature -------------------------------------------------------------------- */

/* XXH3-64 (seed 0) of journey NUL stage_0 NUL ... stage_{n-1} NUL dim_0 NUL ... dim_{m-1} NUL.
 * The header also carries n and m, so the concatenation is unambiguous. */
static int layout_sig(const cs_ruleset *rs, uint64_t *sig)
{
    int ns = cs_rules_nstages(rs), nd = cs_rules_ndims(rs);
    size_t n = strlen(cs_rules_journey(rs)) + 1;
    for (int i = 0; i < ns; i++)
        n += strlen(cs_rules_stage_name(rs, i)) + 1;
    for (int d = 0; d < nd; d++)
        n += strlen(cs_rules_dim(rs, d)->name) + 1;
    char *b = malloc(n), *o = b;
    if (!b)
        return -1;
    for (int i = -1; i < ns + nd; i++) {
        const char *s = i < 0 ? cs_rules_journey(rs)
                        : i < ns ? cs_rules_stage_name(rs, i)
                                 : cs_rules_dim(rs, i - ns)->name;
        size_t l = strlen(s) + 1;
        memcpy(o, s, l);
        o += l;
    }
    *sig = XXH3_64bits(b, n);
    free(b);
    return 0;
}

void cs_snapshot_seal(char *buf, size_t len)
{
    if (len < TRAILER_LEN)
        return;
    put_u64((uint8_t *)buf + len - TRAILER_LEN, XXH3_64bits(buf, len - TRAILER_LEN));
}

/* ---- writer ------------------------------------------------------------------------------ */

typedef struct skey {
    uint64_t h;
    uint32_t h2;
    uint32_t it; /* cs_pstate_iter handle */
} skey;

static inline int skey_less(const skey *a, const skey *b)
{
    return a->h < b->h || (a->h == b->h && a->h2 < b->h2);
}

static int skey_cmp(const void *x, const void *y)
{
    const skey *a = x, *b = y;
    return skey_less(a, b) ? -1 : skey_less(b, a);
}

/* Sorts by (h, h2): a counting pass on the top bits of h (hashes are uniform, so buckets hold
 * ~1 key), then each bucket on its own. Returns the sorted array (tmp, or k if tiny). */
static skey *sort_keys(skey *k, skey *tmp, size_t n)
{
    if (n < 2)
        return k;
    int bits = 1;
    while (bits < 22 && ((size_t)1 << bits) < n)
        bits++;
    size_t nb = (size_t)1 << bits;
    uint32_t *pos = calloc(nb + 1, sizeof *pos);
    if (!pos) {
        qsort(k, n, sizeof *k, skey_cmp);
        return k;
    }
    int sh = 64 - bits;
    for (size_t i = 0; i < n; i++)
        pos[(k[i].h >> sh) + 1]++;
    for (size_t b = 1; b <= nb; b++)
        pos[b] += pos[b - 1];
    for (size_t i = 0; i < n; i++)
        tmp[pos[k[i].h >> sh]++] = k[i]; /* afterwards pos[b] is the end of bucket b */
    size_t lo = 0;
    for (size_t b = 0; b < nb; b++) {
        size_t hi = pos[b];
        if (hi - lo > 16) {
            qsort(tmp + lo, hi - lo, sizeof *tmp, skey_cmp);
        } else {
            for (size_t i = lo + 1; i < hi; i++) {
                skey x = tmp[i];
                size_t j = i;
                while (j > lo && skey_less(&x, &tmp[j - 1])) {
                    tmp[j] = tmp[j - 1];
                    j--;
                }
                tmp[j] = x;
            }
        }
        lo = hi;
    }
    free(pos);
    return tmp;
}

typedef struct wbuf {
    uint8_t *b;
    size_t len, cap;
} wbuf;

static int wbuf_need(wbuf *w, size_t n)
{
    if (w->cap - w->len >= n)
        return 0;
    size_t nc = w->cap ? w->cap : 256;
    while (nc - w->len < n) {
        if (nc > SIZE_MAX / 2)
            return -1;
        nc *= 2;
    }
    uint8_t *b = realloc(w->b, nc);
    if (!b)
        return -1;
    w->b = b;
    w->cap = nc;
    return 0;
}

int cs_snapshot_write(const cs_pstate *p, const cs_ruleset *rs, cs_dimdict_mpmc *dicts,
                      cs_snap_info *info, char **out, size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    const int ns = cs_rules_nstages(rs), nd = cs_rules_ndims(rs);
    const int64_t max_t = cs_pstate_max_time(p);
    cs_pstate_stats st;
    cs_pstate_stats_get(p, &st);
    const size_t n = (size_t)st.customers;

    int rc = -1;
    skey *keys = malloc((n ? n : 1) * sizeof *keys), *tmp = malloc((n ? n : 1) * sizeof *tmp);
    uint32_t *refof[CS_MAX_DIMS] = {0}; /* dimension id -> table index + 1 (0: not yet used) */
    uint16_t *tab[CS_MAX_DIMS] = {0};   /* table index -> dimension id, in order of first use */
    uint32_t ntab[CS_MAX_DIMS] = {0}, width[CS_MAX_DIMS] = {0};
    const char *other_name[CS_MAX_DIMS] = {0};
    wbuf w = {0};
    uint64_t sig;
    if (!keys || !tmp || layout_sig(rs, &sig))
        goto done;

    /* pass 1: the keys, in pool order */
    size_t k = 0;
    int v3 = 0; /* SPEC §3.1 identity entries: written as v3 */
    cs_pstate_entry e;
    for (uint32_t it = cs_pstate_iter(p, 0, &e); it; it = cs_pstate_iter(p, it, &e)) {
        if (k == n || e.last > max_t || e.stage > ns)
            goto done; /* broken invariants: nothing cs_sessionize produces */
        v3 |= e.nojourney | e.has_alias;
        keys[k].h = e.h;
        keys[k].h2 = e.h2;
        keys[k].it = it;
        k++;
    }
    if (k != n)
        goto done;
    const skey *sorted = sort_keys(keys, tmp, n);

    for (int d = 0; d < nd; d++) {
        width[d] = dicts[d].max_values + 2;
        refof[d] = calloc(width[d], sizeof *refof[d]);
        tab[d] = malloc(width[d] * sizeof *tab[d]);
        if (!refof[d] || !tab[d])
            goto done;
        other_name[d] = cs_dimdict_name(&dicts[d], CS_DIM_OTHER, NULL);
    }

    if (wbuf_need(&w, HDR_LEN + n * 20 + (size_t)st.sessions * (6 + (size_t)nd) + 64))
        goto done;
    uint8_t *o = w.b;
    memcpy(o, SNAP_MAGIC, 4);
    put_u16(o + 4, v3 ? 3 : 2);
    o[6] = (uint8_t)ns;
    o[7] = (uint8_t)nd;
    put_u64(o + 8, sig);
    put_u64(o + 16, (uint64_t)(info ? info->next_offset : -1));
    put_u64(o + 24, (uint64_t)(info ? info->applied_wm : INT64_MIN));
    put_u64(o + 32, (uint64_t)max_t);
    w.len = HDR_LEN; /* the counts at 40 and 48 are written at the end */

    /* pass 2: records in hash order */
    const size_t rec_max = 10 + 4 + 10 + 1 + 10 + 5 + 1 + (size_t)CS_MAX_DIMS * 3 + 11;
    uint64_t prev_h = 0, nsess = 0;
    const uint64_t umax = ubias(max_t);
    for (size_t i = 0; i < n; i++) {
        /* hash order is random in the pools: fetch the customer 16 ahead, its session 8 ahead */
        if (i + 16 < n)
            cs_pstate_prefetch_entry(p, sorted[i + 16].it, 0);
        if (i + 8 < n)
            cs_pstate_prefetch_entry(p, sorted[i + 8].it, 1);
        cs_pstate_entry_get(p, sorted[i].it, &e);
        if (wbuf_need(&w, rec_max))
            goto done;
        o = w.b + w.len;
        o = put_uv(o, e.h - prev_h);
        prev_h = e.h;
        put_u16(o, (uint16_t)e.h2);
        o += 2;
        o = put_uv(o, umax - ubias(e.last));
        if (e.first > CS_FIRST_OFF_MAX || e.first > ubias(e.last))
            goto done;
        o = put_uv(o, e.first);
        uint8_t *flags = o++;
        *flags = e.stage;
        if (v3) { /* the identity byte, then the alias */
            if (e.nojourney && (e.stage || e.first))
                goto done;
            *o++ = (uint8_t)((e.nojourney ? ID_NOJOURNEY : 0) | (e.has_alias ? ID_ALIAS : 0));
            if (e.has_alias) {
                put_u64(o, e.a_h);
                put_u16(o + 8, (uint16_t)e.a_h2);
                o += 10;
            }
        }
        if (e.has_session) {
            if (e.s_last > e.last || e.s_stage > ns || ubias(e.s_last) < e.s_span)
                goto done;
            *flags |= FLAG_SESSION;
            if (e.s_last != e.last) {
                *flags |= FLAG_SLAST;
                o = put_uv(o, ubias(e.last) - ubias(e.s_last));
            }
            o = put_uv(o, e.s_span);
            *o++ = e.s_stage;
            if (e.s_stage) {
                if (e.s_reach > e.s_span)
                    goto done;
                o = put_uv(o, e.s_reach);
            }
            for (int d = 0; d < nd; d++) {
                uint16_t id = e.s_dim[d];
                uint64_t ref = 1; /* _other, also for an id this dictionary never gave out */
                if (id == CS_DIM_UNKNOWN) {
                    ref = 0;
                } else if (id != CS_DIM_OTHER && id < width[d]) {
                    if (!refof[d][id] && cs_dimdict_name(&dicts[d], id, NULL) != other_name[d]) {
                        tab[d][ntab[d]++] = id;
                        refof[d][id] = ntab[d];
                    }
                    if (refof[d][id])
                        ref = (uint64_t)refof[d][id] + 1;
                }
                o = put_uv(o, ref);
            }
            nsess++;
        }
        w.len = (size_t)(o - w.b);
    }

    /* dimension string tables */
    for (int d = 0; d < nd; d++) {
        if (wbuf_need(&w, 10))
            goto done;
        w.len = (size_t)(put_uv(w.b + w.len, ntab[d]) - w.b);
        for (uint32_t j = 0; j < ntab[d]; j++) {
            uint32_t len;
            const char *s = cs_dimdict_name(&dicts[d], tab[d][j], &len);
            if (wbuf_need(&w, 10 + (size_t)len))
                goto done;
            o = put_uv(w.b + w.len, len);
            memcpy(o, s, len);
            w.len = (size_t)(o + len - w.b);
        }
    }
    if (wbuf_need(&w, TRAILER_LEN))
        goto done;
    put_u64(w.b + OFF_CUSTOMERS, n);
    put_u64(w.b + OFF_SESSIONS, nsess);
    w.len += TRAILER_LEN;
    cs_snapshot_seal((char *)w.b, w.len);
    if (w.cap - w.len > w.len / 8) {
        uint8_t *b = realloc(w.b, w.len);
        if (b)
            w.b = b;
    }
    *out = (char *)w.b;
    *outlen = w.len;
    w.b = NULL;
    if (info) {
        info->max_t = max_t;
        info->customers = n;
        info->sessions = nsess;
    }
    rc = 0;
done:
    free(w.b);
    free(keys);
    free(tmp);
    for (int d = 0; d < CS_MAX_DIMS; d++) {
        free(refof[d]);
        free(tab[d]);
    }
    return rc;
}

/* ---- reader ------------------------------------------------------------------------------ */

typedef struct rd {
    const uint8_t *base, *p, *end; /* end: the trailer */
    int nstages, ndims;
    int version;
    int64_t max_t;
    uint64_t customers, sessions;
    uint64_t prev_h, nsess;             /* the previous record's hash; sessions so far */
    uint64_t nid;                       /* v3: records with identity bits */
    uint32_t prev_h2;
    uint32_t nref[CS_MAX_DIMS];         /* table entries referenced so far (first-use order) */
    const uint16_t *idmap[CS_MAX_DIMS]; /* building pass: table index -> dictionary id */
    char *err;
    size_t errlen;
} rd;

static int bad(rd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(rd *r, const char *fmt, ...)
{
    if (!r->err || !r->errlen)
        return -1;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cs_seterr(r->err, r->errlen, "snapshot byte %zu: %s", (size_t)(r->p - r->base), msg);
    return -1;
}

/* A minimal LEB128 varint (at most 10 bytes, no 0x80 padding, no bits past 64). */
static inline int get_uv(rd *r, uint64_t *v, const char *what)
{
    if (r->p < r->end && *r->p < 0x80) {
        *v = *r->p++;
        return 0;
    }
    uint64_t x = 0;
    const uint8_t *p = r->p;
    for (int i = 0; i < 10; i++) {
        if (p >= r->end)
            return bad(r, "truncated in %s", what);
        uint8_t b = *p++;
        if (i == 9 && b > 1)
            return bad(r, "%s: varint beyond 64 bits", what);
        x |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            if (b == 0 && i > 0)
                return bad(r, "%s: varint not in its shortest form", what);
            r->p = p;
            *v = x;
            return 0;
        }
    }
    return bad(r, "%s: varint longer than 10 bytes", what);
}

static inline int get_byte(rd *r, uint8_t *v, const char *what)
{
    if (r->p >= r->end)
        return bad(r, "truncated in %s", what);
    *v = *r->p++;
    return 0;
}

/* One customer record into e, validated against everything before it (hash order, ranges,
 * dimension references in order of first use). In the building pass (r->idmap set) the
 * dimension references become dictionary ids. */
static int parse_record(rd *r, uint64_t i, cs_pstate_entry *e)
{
    uint64_t dh = 0, dlast = 0;
    if (get_uv(r, &dh, "customer hash"))
        return -1;
    if (dh > UINT64_MAX - r->prev_h)
        return bad(r, "customer %" PRIu64 ": hash delta beyond 2^64", i);
    const int h2len = r->version == 1 ? 4 : 2;
    if (r->end - r->p < h2len)
        return bad(r, "truncated in customer hash");
    uint32_t h2 = h2len == 4 ? get_u32(r->p) : get_u16(r->p);
    if (i > 0 && dh == 0 && h2 <= r->prev_h2)
        return bad(r, h2 == r->prev_h2 ? "customer %" PRIu64 ": customer hash present twice"
                                       : "customer %" PRIu64 ": customers not in hash order",
                   i);
    r->p += h2len;
    e->h = r->prev_h + dh;
    e->h2 = h2;
    r->prev_h = e->h;
    r->prev_h2 = h2;
    if (get_uv(r, &dlast, "customer last"))
        return -1;
    const uint64_t umax = ubias(r->max_t);
    if (dlast > umax)
        return bad(r, "customer %" PRIu64 ": last event time before INT64_MIN", i);
    e->last = unbias(umax - dlast);
    if (r->version >= 2) {
        uint64_t first = 0;
        if (get_uv(r, &first, "customer journey start"))
            return -1;
        if (first > CS_FIRST_OFF_MAX || first > ubias(e->last))
            return bad(r, "customer %" PRIu64 ": journey start %" PRIu64 " ms before its last event "
                          "out of range", i, first);
        e->first = first;
    } else {
        e->first = 0; /* v1 stand-in, see below */
    }
    uint8_t f = 0;
    if (get_byte(r, &f, "customer flags"))
        return -1;
    e->stage = f & FLAG_STAGE;
    if (e->stage > r->nstages)
        return bad(r, "customer %" PRIu64 ": journey stage %u out of range (%d stages)", i,
                   e->stage, r->nstages);
    e->nojourney = e->has_alias = 0;
    e->a_h = 0;
    e->a_h2 = 0;
    if (r->version >= 3) { /* SPEC §3.1 identity byte */
        uint8_t idb = 0;
        if (get_byte(r, &idb, "customer identity"))
            return -1;
        if (idb & ~(ID_NOJOURNEY | ID_ALIAS))
            return bad(r, "customer %" PRIu64 ": unknown identity bits 0x%02x", i, idb);
        e->nojourney = (idb & ID_NOJOURNEY) != 0;
        if (e->nojourney && (e->stage || e->first))
            return bad(r, "customer %" PRIu64 ": a key with no journey has a journey stage or "
                          "start", i);
        if (idb & ID_ALIAS) {
            if (r->end - r->p < 10)
                return bad(r, "truncated in alias");
            e->has_alias = 1;
            e->a_h = get_u64(r->p);
            e->a_h2 = get_u16(r->p + 8);
            r->p += 10;
            if (e->a_h == e->h && e->a_h2 == e->h2)
                return bad(r, "customer %" PRIu64 ": a device aliased to itself", i);
        }
        r->nid += idb != 0;
    }
    e->has_session = (f & FLAG_SESSION) != 0;
    if ((f & FLAG_SLAST) && !e->has_session)
        return bad(r, "customer %" PRIu64 ": session flag bits without a session", i);
    if (!e->has_session)
        return 0;
    uint64_t dsl = 0, span = 0;
    if ((f & FLAG_SLAST)) {
        if (get_uv(r, &dsl, "session last"))
            return -1;
        if (dsl == 0)
            return bad(r, "customer %" PRIu64 ": session last delta 0 with its flag set", i);
        if (dsl > ubias(e->last))
            return bad(r, "customer %" PRIu64 ": session last before INT64_MIN", i);
    }
    e->s_last = unbias(ubias(e->last) - dsl);
    if (get_uv(r, &span, "session span"))
        return -1;
    if (span > UINT32_MAX || span > ubias(e->s_last))
        return bad(r,
                   "customer %" PRIu64 ": session span %" PRIu64
                   " inconsistent with its last event time",
                   i, span);
    e->s_span = (uint32_t)span;
    if (get_byte(r, &e->s_stage, "session stage"))
        return -1;
    if (e->s_stage > r->nstages)
        return bad(r, "customer %" PRIu64 ": session stage %u out of range (%d stages)", i,
                   e->s_stage, r->nstages);
    e->s_reach = 0;
    if (r->version >= 2 && e->s_stage) {
        uint64_t reach = 0;
        if (get_uv(r, &reach, "session stage time"))
            return -1;
        if (reach > span)
            return bad(r, "customer %" PRIu64 ": session reached its stage %" PRIu64
                          " ms after its start, beyond its span %" PRIu64, i, reach, span);
        e->s_reach = (uint32_t)reach;
    }
    if (r->version == 1) {
        /* v1 knew neither time (docs/snapshot-format.md "Reading v1"): the stand-ins are the
         * session's start for both C.first and the time it reached its stage */
        uint64_t back = (uint64_t)span + dsl;
        e->first = back > CS_FIRST_OFF_MAX ? CS_FIRST_OFF_MAX : back;
    }
    for (int d = 0; d < r->ndims; d++) {
        uint64_t ref = 0;
        if (get_uv(r, &ref, "dimension reference"))
            return -1;
        if (ref < 2) {
            e->s_dim[d] = (uint16_t)ref; /* CS_DIM_UNKNOWN, CS_DIM_OTHER */
            continue;
        }
        uint64_t t = ref - 2;
        if (t > r->nref[d])
            return bad(r,
                       "customer %" PRIu64 ": dimension %d value %" PRIu64
                       " out of range (next new value would be %u)",
                       i, d, t, r->nref[d]);
        if (t == r->nref[d]) {
            if (r->nref[d] == CS_MAX_DIM_VALUES)
                return bad(r, "dimension %d: more than %d distinct values", d, CS_MAX_DIM_VALUES);
            r->nref[d]++;
        }
        e->s_dim[d] = r->idmap[d] ? r->idmap[d][t] : 0;
    }
    if (++r->nsess > r->sessions)
        return bad(r, "more sessions than the header's %" PRIu64, r->sessions);
    return 0;
}

static void rd_rewind(rd *r)
{
    r->p = r->base + HDR_LEN;
    r->prev_h = 0;
    r->prev_h2 = 0;
    r->nsess = 0;
    r->nid = 0;
    memset(r->nref, 0, sizeof r->nref);
}

/* The validating pass over the records. */
static int check_records(rd *r)
{
    cs_pstate_entry e;
    memset(&e, 0, sizeof e);
    for (uint64_t i = 0; i < r->customers; i++)
        if (parse_record(r, i, &e))
            return -1;
    if (r->nsess != r->sessions)
        return bad(r, "header says %" PRIu64 " sessions, the records hold %" PRIu64, r->sessions,
                   r->nsess);
    if (r->version == 3 && r->nid == 0)
        return bad(r, "a v3 snapshot with no identity entry (that state is written as v2)");
    return 0;
}

/* The building pass: parses AHEAD records in front of the one it inserts and prefetches their
 * index slots (then the customer entries those slots point to), because inserting in hash order
 * touches the index at random and a restore is otherwise one cache miss after another. */
#define AHEAD 16
static int build_records(rd *r, cs_pstate *p)
{
    cs_pstate_entry ring[AHEAD];
    memset(ring, 0, sizeof ring);
    const uint64_t n = r->customers;
    for (uint64_t i = 0; i < n && i < AHEAD; i++) {
        if (parse_record(r, i, &ring[i]))
            return -1;
        cs_pstate_prefetch_index(p, ring[i].h);
    }
    for (uint64_t i = 0; i < n; i++) {
        cs_pstate_entry *e = &ring[i % AHEAD];
        if (i + AHEAD / 2 < n)
            cs_pstate_prefetch_customer(p, ring[(i + AHEAD / 2) % AHEAD].h);
        int rc = cs_pstate_restore_add(p, e);
        if (rc == -2)
            return bad(r, "customer %" PRIu64 ": customer hash present twice", i);
        if (rc)
            return bad(r, "out of memory");
        if (i + AHEAD < n) {
            if (parse_record(r, i + AHEAD, e))
                return -1;
            cs_pstate_prefetch_index(p, e->h);
        }
    }
    return 0;
}

typedef struct strtab {
    const uint8_t **s;
    uint32_t *len;
    uint32_t n;
} strtab;

/* The string tables after the records; each value once, non-empty, every one referenced. */
static int parse_tables(rd *r, strtab *tabs)
{
    for (int d = 0; d < r->ndims; d++) {
        uint64_t k = 0;
        if (get_uv(r, &k, "dimension table size"))
            return -1;
        if (k != r->nref[d])
            return bad(r, "dimension %d: table holds %" PRIu64 " values, sessions use %u", d, k,
                       r->nref[d]);
        strtab *t = &tabs[d];
        uint32_t cap = 16;
        while (cap < 2 * k)
            cap *= 2;
        t->s = calloc(k ? k : 1, sizeof *t->s);
        t->len = calloc(k ? k : 1, sizeof *t->len);
        uint32_t *set = calloc(cap, sizeof *set); /* table index + 1, by XXH3 of the value */
        if (!t->s || !t->len || !set) {
            free(set);
            return bad(r, "out of memory");
        }
        for (uint32_t j = 0; j < k; j++) {
            uint64_t len = 0;
            if (get_uv(r, &len, "dimension value length"))
                goto fail;
            if (len == 0) {
                bad(r, "dimension %d: empty value", d);
                goto fail;
            }
            if (len > (uint64_t)(r->end - r->p) || len > UINT32_MAX) {
                bad(r, "truncated in dimension value");
                goto fail;
            }
            /* the dictionary keeps values of at most CS_MAX_DIM_VALUE_BYTES and without a NUL
             * (aggregate.h), so no writer produces other ones; accepting them would map two
             * strings to one id and break the one-encoding rule */
            if (len > CS_MAX_DIM_VALUE_BYTES || memchr(r->p, '\0', (size_t)len)) {
                bad(r, "dimension %d: value %u longer than %d bytes or with a NUL byte", d, j,
                    CS_MAX_DIM_VALUE_BYTES);
                goto fail;
            }
            const uint8_t *s = r->p;
            r->p += len;
            uint32_t at = (uint32_t)XXH3_64bits(s, (size_t)len) & (cap - 1);
            for (; set[at]; at = (at + 1) & (cap - 1)) {
                uint32_t o = set[at] - 1;
                if (t->len[o] == len && memcmp(t->s[o], s, (size_t)len) == 0) {
                    bad(r, "dimension %d: value %u repeats value %u", d, j, o);
                    goto fail;
                }
            }
            set[at] = j + 1;
            t->s[j] = s;
            t->len[j] = (uint32_t)len;
            t->n = j + 1;
        }
        free(set);
        continue;
    fail:
        free(set);
        return -1;
    }
    return 0;
}

cs_pstate *cs_snapshot_read(const char *buf, size_t len, const cs_ruleset *rs,
                            cs_dimdict_mpmc *dicts, cs_snap_info *info, char *errstr, size_t errlen)
{
    const uint8_t *b = (const uint8_t *)buf;
    if (len < 4 || memcmp(b, SNAP_MAGIC, 4) != 0) {
        cs_seterr(errstr, errlen,
                  len < 4 ? "snapshot: truncated (%zu bytes, no magic)"
                          : "snapshot: bad magic (not a clickstage snapshot, %zu bytes)",
                  len);
        return NULL;
    }
    if (len < 6) {
        cs_seterr(errstr, errlen, "snapshot: truncated (%zu bytes, no version)", len);
        return NULL;
    }
    unsigned version = get_u16(b + 4);
    if (version < 1 || version > CS_SNAPSHOT_VERSION) {
        cs_seterr(errstr, errlen, "snapshot: unsupported version %u (this build reads 1 to %d)",
                  version, CS_SNAPSHOT_VERSION);
        return NULL;
    }
    if (len < HDR_LEN + TRAILER_LEN) {
        cs_seterr(errstr, errlen, "snapshot: truncated (%zu bytes, the smallest is %d)", len,
                  HDR_LEN + TRAILER_LEN);
        return NULL;
    }
    if (XXH3_64bits(b, len - TRAILER_LEN) != get_u64(b + len - TRAILER_LEN)) {
        cs_seterr(errstr, errlen, "snapshot: checksum mismatch (corrupt or truncated, %zu bytes)",
                  len);
        return NULL;
    }
    int ns = cs_rules_nstages(rs), nd = cs_rules_ndims(rs);
    uint64_t sig;
    if (layout_sig(rs, &sig)) {
        cs_seterr(errstr, errlen, "snapshot: out of memory");
        return NULL;
    }
    if (b[6] != ns || b[7] != nd) {
        cs_seterr(errstr, errlen,
                  "snapshot: layout differs: written for %u stages and %u dimensions, the rules "
                  "of journey '%s' have %d and %d",
                  b[6], b[7], cs_rules_journey(rs), ns, nd);
        return NULL;
    }
    if (get_u64(b + 8) != sig) {
        cs_seterr(errstr, errlen,
                  "snapshot: layout signature differs: written for another journey name, other "
                  "stage names or other dimension names than the rules of journey '%s'",
                  cs_rules_journey(rs));
        return NULL;
    }

    if (version == 3 && !cs_rules_identity(rs)) {
        cs_seterr(errstr, errlen,
                  "snapshot: written with identity: (SPEC 3.1: aliases, keys without a journey), "
                  "the rules of journey '%s' have none",
                  cs_rules_journey(rs));
        return NULL;
    }

    rd r = {0};
    r.base = b;
    rd_rewind(&r);
    r.end = b + len - TRAILER_LEN;
    r.nstages = ns;
    r.ndims = nd;
    r.version = (int)version;
    r.err = errstr;
    r.errlen = errlen;
    int64_t next_offset = as_i64(get_u64(b + 16)), applied_wm = as_i64(get_u64(b + 24));
    r.max_t = as_i64(get_u64(b + 32));
    r.customers = get_u64(b + OFF_CUSTOMERS);
    r.sessions = get_u64(b + OFF_SESSIONS);
    size_t left = (size_t)(r.end - r.p);
    const size_t cust_min = version == 1 ? CUST_MIN_V1 : version == 2 ? CUST_MIN : CUST_MIN + 1;
    if (r.customers > left / cust_min || r.customers > UINT32_MAX - 2 ||
        r.sessions > r.customers ||
        r.sessions > (left - r.customers * cust_min) / (SESS_MIN + (size_t)nd)) {
        cs_seterr(errstr, errlen,
                  "snapshot: %" PRIu64 " customers and %" PRIu64
                  " sessions cannot fit the %zu bytes of records",
                  r.customers, r.sessions, left);
        return NULL;
    }
    if (r.customers > 0 && r.max_t == INT64_MIN) {
        cs_seterr(errstr, errlen, "snapshot: customers but no highest event time");
        return NULL;
    }

    /* pass 1: validate everything, allocating nothing in proportion to the counts */
    cs_pstate *p = NULL;
    strtab tabs[CS_MAX_DIMS];
    uint16_t *idmap[CS_MAX_DIMS] = {0};
    memset(tabs, 0, sizeof tabs);
    if (check_records(&r) || parse_tables(&r, tabs))
        goto fail;
    if (r.p != r.end) {
        bad(&r, "%zu trailing bytes before the checksum", (size_t)(r.end - r.p));
        goto fail;
    }

    /* valid: now the shared dictionaries, then pass 2 builds the pstate */
    for (int d = 0; d < nd; d++) {
        idmap[d] = malloc((tabs[d].n ? tabs[d].n : 1) * sizeof *idmap[d]);
        if (!idmap[d]) {
            cs_seterr(errstr, errlen, "snapshot: out of memory");
            goto fail;
        }
        for (uint32_t j = 0; j < tabs[d].n; j++)
            idmap[d][j] = cs_dimdict_id(&dicts[d], (const char *)tabs[d].s[j], tabs[d].len[j]);
        r.idmap[d] = idmap[d];
    }
    p = cs_pstate_new(cs_rules_session(rs), nd);
    if (!p || cs_pstate_reserve(p, r.customers, r.sessions)) {
        cs_seterr(errstr, errlen, "snapshot: out of memory");
        goto fail;
    }
    cs_pstate_set_max_time(p, r.max_t);
    rd_rewind(&r);
    if (build_records(&r, p))
        goto fail;
    for (int d = 0; d < CS_MAX_DIMS; d++) {
        free(tabs[d].s);
        free(tabs[d].len);
        free(idmap[d]);
    }
    if (info) {
        info->next_offset = next_offset;
        info->applied_wm = applied_wm;
        info->max_t = r.max_t;
        info->customers = r.customers;
        info->sessions = r.sessions;
    }
    return p;
fail:
    for (int d = 0; d < CS_MAX_DIMS; d++) {
        free(tabs[d].s);
        free(tabs[d].len);
        free(idmap[d]);
    }
    cs_pstate_destroy(p);
    return NULL;
}
