/* gen.c — see gen.h.
 *
 * Speed: the load generator must outrun the daemon, so the hot path (cs_gen_pstream_next) does
 * no allocation, no division by a variable (bounded random numbers are Lemire's multiply-shift,
 * not %), no hashing (a partition's stream knows its partition), no strlen/strcmp (events are
 * indices into tables of pre-built, pre-measured JSON fragments) and no printf (times reuse the
 * "YYYY-MM-DDTHH:MM:" of the minute, cached per time-zone style).
 *
 * Rejected: one global stream dealt out to partitions (the old design: one random-number
 * stream for all partitions, so a partition's bytes depended on every other partition and only
 * one thread could generate); rejection-sampling a partition's customers out of the global Zipf
 * draw (costs nparts draws and hashes per session); Poisson session arrivals per partition (the
 * partitions' event-time axes then drift apart by hours over a stream, and the merged order,
 * which --unkeyed sends, would be hours out of order across partitions). */
#include "gen.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

__extension__ typedef unsigned __int128 u128;

/* ---- random numbers: xoshiro256** ------------------------------------------------------- */

typedef struct rng {
    uint64_t s[4];
} rng;

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
static inline uint64_t next(rng *r)
{
    uint64_t *s = r->s, res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0], s[3] ^= s[1], s[1] ^= s[2], s[0] ^= s[3], s[2] ^= t, s[3] = rotl(s[3], 45);
    return res;
}
static void seed(rng *r, uint64_t x)
{
    for (int i = 0; i < 4; i++) {
        x += 0x9E3779B97F4A7C15ull;
        uint64_t z = x;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        r->s[i] = z ^ (z >> 31);
    }
}
static inline double unif(rng *r) { return (double)(next(r) >> 11) * 0x1.0p-53; }
/* [0, n) by multiply-shift (Lemire): no division; the bias is below 2^-40 for these n */
static inline uint64_t below(rng *r, uint64_t n) { return (uint64_t)(((u128)next(r) * n) >> 64); }
/* Several small draws from one 64-bit number (half the calls to next() per event): [0, n) from
 * 32 bits (n < 2^32) or 16 bits (n small: the bias, n/65536 of a value, is of no consequence
 * for synthetic data), and uniforms in [0, 1) from 32 or 16 bits. */
static inline uint64_t b32(uint64_t x, uint64_t n) { return ((x & 0xffffffffu) * n) >> 32; }
static inline unsigned b16(uint64_t x, unsigned n) { return (unsigned)(((x & 0xffffu) * n) >> 16); }
static inline double u32f(uint64_t x) { return (double)(x & 0xffffffffu) * 0x1.0p-32; }
static inline double u16f(uint64_t x) { return (double)(x & 0xffffu) * 0x1.0p-16; }

void cs_gen_defaults(cs_gen_conf *c)
{
    memset(c, 0, sizeof *c);
    c->seed = 42;
    c->nparts = 8;
    c->nevents = 100000;
    c->ncustomers = 5000;
    c->start_ms = 1793520000000LL; /* 2026-11-01T08:00:00Z */
    c->span_ms = 6LL * 86400000;
    c->invalid_frac = 0.02;
    c->too_large_frac = 0.0002;
    c->late_frac = 0.01;
    c->ooo_frac = 0.2;
    c->long_frac = 0.02;
    c->mean_events = 6;
    c->gap_ms = 30 * 60000;
    c->lateness_ms = 30000;
    c->max_duration_ms = 2 * 3600000;
}

int cs_gen_partition(const char *cust, size_t len, int nparts)
{
    return (int)(XXH3_64bits(cust, len) % (uint64_t)nparts);
}

/* ---- the funnel ------------------------------------------------------------------------- */

/* A JSON fragment padded to FRAG bytes: copied with one fixed-size memcpy (a few vector moves,
 * no call) and the write pointer advanced by its length; buffers have FRAG bytes of slack. */
#define FRAG 48
typedef struct frag {
    char s[FRAG];
    size_t n;
} frag;
#define F(lit) {lit, sizeof(lit) - 1}
/* a fragment of any length, copied by length (off the hot path) */
typedef struct lfrag {
    const char *s;
    size_t n;
} lfrag;
#define L(lit) {lit, sizeof(lit) - 1}

enum { YOUNG, FAMILY, SENIOR };
static const frag persona_name[3] = {F("young"), F("family"), F("senior")};
enum { CH_SOCIAL, CH_DISPLAY, CH_EMAIL, CH_SEARCH, CH_DIRECT, CH_PRINT };
static const frag channel_name[6] = {F("social"), F("display"), F("email"),
                                     F("search"), F("direct"),  F("print")};
/* first touch channel mix per persona (8 slots each) */
static const uint8_t channels[3][8] = {
    {CH_SOCIAL, CH_SOCIAL, CH_SOCIAL, CH_SOCIAL, CH_DISPLAY, CH_DISPLAY, CH_EMAIL, CH_SEARCH},
    {CH_SEARCH, CH_SEARCH, CH_DISPLAY, CH_DISPLAY, CH_EMAIL, CH_EMAIL, CH_DIRECT, CH_SOCIAL},
    {CH_PRINT, CH_PRINT, CH_PRINT, CH_SEARCH, CH_SEARCH, CH_SEARCH, CH_DIRECT, CH_EMAIL},
};
/* probability of moving on to the next stage at an event, per persona and current stage */
static const double advance[3][5] = {
    {0.50, 0.22, 0.35, 0.30, 0},
    {0.45, 0.30, 0.40, 0.35, 0},
    {0.40, 0.35, 0.45, 0.40, 0},
};
enum {
    EV_PAGE_VIEW, EV_AD_CLICK, EV_PAGE, EV_PRODUCT_VIEW, EV_REVIEW_READ, EV_COMPARE,
    EV_ADD_TO_WISHLIST, EV_CHECKOUT_STARTED, EV_PAYMENT_SUBMITTED, EV_ORDER_COMPLETED,
    EV_RETURN_REQUESTED, EV_ORDER_TRACKED, EV_TICKET_OPENED, EV_SUPPORT_CHAT, EV_LOYALTY_SIGNUP,
    EV_REVIEW_WRITTEN, EV_REFERRAL_SENT, EV_REPEAT_PURCHASE, EV_IDENTIFY, EV_SCROLL,
    EV_VIDEO_PLAY, EV_NEWSLETTER_OPEN, EV__N
};
/* the message's opening, up to and including the comma after the event */
#define TRACK(n) F("{\"type\":\"track\",\"event\":\"" n "\",")
static const frag ev_open[EV__N] = {
    TRACK("page_view"), TRACK("ad_click"), F("{\"type\":\"page\","), TRACK("product_view"),
    TRACK("review_read"), TRACK("compare"), TRACK("add_to_wishlist"), TRACK("checkout_started"),
    TRACK("payment_submitted"), TRACK("order_completed"), TRACK("return_requested"),
    TRACK("order_tracked"), TRACK("ticket_opened"), TRACK("support_chat"),
    TRACK("loyalty_signup"), TRACK("review_written"), TRACK("referral_sent"),
    TRACK("repeat_purchase"), TRACK("identify"), TRACK("scroll"), TRACK("video_play"),
    TRACK("newsletter_open"),
};
static const uint8_t stage_events[5][4] = {
    {EV_PAGE_VIEW, EV_AD_CLICK, EV_PAGE, EV_PAGE_VIEW},
    {EV_PRODUCT_VIEW, EV_REVIEW_READ, EV_COMPARE, EV_ADD_TO_WISHLIST},
    {EV_CHECKOUT_STARTED, EV_PAYMENT_SUBMITTED, EV_ORDER_COMPLETED, EV_ORDER_COMPLETED},
    {EV_RETURN_REQUESTED, EV_ORDER_TRACKED, EV_TICKET_OPENED, EV_SUPPORT_CHAT},
    {EV_LOYALTY_SIGNUP, EV_REVIEW_WRITTEN, EV_REFERRAL_SENT, EV_REPEAT_PURCHASE},
};
/* service: young customers chat, seniors phone the service line (a ticket), families both */
static const uint8_t service_event[3] = {EV_SUPPORT_CHAT, EV_ORDER_TRACKED, EV_TICKET_OPENED};
static const frag service_channel[3] = {F("live_chat"), F("web"), F("phone")};
static const uint8_t other_events[4] = {EV_IDENTIFY, EV_SCROLL, EV_VIDEO_PLAY,
                                        EV_NEWSLETTER_OPEN};

/* ---- the plan --------------------------------------------------------------------------- */

struct cs_gen_plan {
    cs_gen_conf c;
    uint64_t total;     /* nevents */
    uint32_t **cust;    /* [nparts]: the partition's customers (global ids), ascending */
    uint32_t *ncust;    /* [nparts] */
    char (**names)[16]; /* [nparts][customer index]: the id, NUL-padded, its length in [15] */
    uint64_t *n;        /* [nparts]: the partition's messages; they add up to nevents */
};

static size_t custname(uint32_t c, char *buf);
static void hex2_init(void);

cs_gen_plan *cs_gen_plan_new(const cs_gen_conf *c)
{
    if (c->nparts < 1 || c->ncustomers < 1 || (uint64_t)c->ncustomers + c->churn > UINT32_MAX / 2)
        return NULL;
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, hex2_init);
    cs_gen_plan *pl = calloc(1, sizeof *pl);
    int P = c->nparts;
    pl->c = *c;
    pl->total = c->nevents;
    pl->cust = calloc((size_t)P, sizeof *pl->cust);
    pl->ncust = calloc((size_t)P, sizeof *pl->ncust);
    pl->n = calloc((size_t)P, sizeof *pl->n);
    uint32_t U = c->ncustomers + c->churn; /* every customer id the stream ever uses */
    uint32_t *part = malloc((size_t)U * sizeof *part);
    char name[24];
    for (uint32_t i = 0; i < U; i++) {
        part[i] = (uint32_t)cs_gen_partition(name, custname(i, name), P);
        pl->ncust[part[i]]++;
    }
    for (int p = 0; p < P; p++)
        pl->cust[p] = malloc((pl->ncust[p] ? pl->ncust[p] : 1) * sizeof **pl->cust);
    pl->names = calloc((size_t)P, sizeof *pl->names);
    for (int p = 0; p < P; p++)
        pl->names[p] = calloc(pl->ncust[p] ? pl->ncust[p] : 1, sizeof **pl->names);
    uint32_t *fill = calloc((size_t)P, sizeof *fill);
    for (uint32_t i = 0; i < U; i++) {
        uint32_t j = fill[part[i]]++;
        pl->cust[part[i]][j] = i;
        char *nm = pl->names[part[i]][j];
        nm[15] = (char)custname(i, nm);
    }
    free(fill);
    free(part);
    /* shares proportional to customers, by largest remainder (ties: lower partition) */
    uint64_t given = 0, N = U;
    u128 *rem = calloc((size_t)P, sizeof *rem);
    for (int p = 0; p < P; p++) {
        u128 x = (u128)pl->total * pl->ncust[p];
        pl->n[p] = (uint64_t)(x / N);
        rem[p] = x % N;
        given += pl->n[p];
    }
    for (; given < pl->total; given++) {
        int best = -1;
        for (int p = 0; p < P; p++)
            if (rem[p] && (best < 0 || rem[p] > rem[best]))
                best = p;
        pl->n[best]++;
        rem[best] = 0;
    }
    free(rem);
    return pl;
}

void cs_gen_plan_free(cs_gen_plan *pl)
{
    if (!pl)
        return;
    for (int p = 0; p < pl->c.nparts; p++) {
        free(pl->cust[p]);
        free(pl->names[p]);
    }
    free(pl->cust);
    free(pl->names);
    free(pl->ncust);
    free(pl->n);
    free(pl);
}

const cs_gen_conf *cs_gen_plan_conf(const cs_gen_plan *pl) { return &pl->c; }
uint64_t cs_gen_plan_count(const cs_gen_plan *pl, int p) { return pl->n[p]; }

uint64_t cs_gen_plan_key(const cs_gen_plan *pl, int p, uint64_t k)
{
    return (uint64_t)(((u128)(2 * k + 1) * pl->total) / (2 * (u128)pl->n[p]));
}

/* #{k : key(p, k) < K} = #{k : (2k+1) T < 2 K n_p} */
static uint64_t count_below(const cs_gen_plan *pl, int p, uint64_t K)
{
    u128 T = pl->total, a = 2 * (u128)K * pl->n[p];
    if (a <= T)
        return 0;
    u128 c = (a - T + 2 * T - 1) / (2 * T);
    return c < pl->n[p] ? (uint64_t)c : pl->n[p];
}

uint64_t cs_gen_plan_before(const cs_gen_plan *pl, int p, uint64_t n)
{
    if (n >= pl->total)
        return pl->n[p];
    /* the largest K with C(K) = sum_q count_below(q, K) <= n; then the n - C(K) messages with
     * key K, in partition order */
    uint64_t lo = 0, hi = pl->total; /* C(lo) <= n; C(hi) = total > n */
    while (hi - lo > 1) {
        uint64_t mid = lo + (hi - lo) / 2, C = 0;
        for (int q = 0; q < pl->c.nparts; q++)
            C += count_below(pl, q, mid);
        if (C <= n)
            lo = mid;
        else
            hi = mid;
    }
    uint64_t C = 0;
    for (int q = 0; q < pl->c.nparts; q++)
        C += count_below(pl, q, lo);
    uint64_t extra = n - C, mine = count_below(pl, p, lo);
    for (int q = 0; q < pl->c.nparts && extra; q++)
        if (count_below(pl, q, lo + 1) > count_below(pl, q, lo)) { /* q has a message at lo */
            if (q == p)
                return mine + 1;
            extra--;
        }
    return mine;
}

/* ---- sessions --------------------------------------------------------------------------- */

typedef struct gsess {
    int64_t t;     /* next event time */
    uint32_t cust; /* index into the partition's customers */
    uint16_t remaining;
    uint8_t stage;
    uint8_t long_mode;
    uint8_t nsent;
} gsess;

typedef struct heap {
    gsess *v;
    size_t n, cap;
} heap;

/* A 4-ary min-heap on t: half the depth of a binary heap, and the sift-down's three
 * comparisons per level are independent (the sift dominated the generator's profile). */
static void hpush(heap *h, gsess s)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 1024;
        h->v = realloc(h->v, h->cap * sizeof *h->v);
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 4;
        if (h->v[p].t <= s.t)
            break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = s;
}

/* s into the hole at the root. Bottom-up: the hole goes down the smallest children to a leaf
 * without looking at s (a session's next event is usually minutes away, so it belongs near the
 * bottom: no unpredictable "is s smaller" branch per level), then s goes up from there. */
static inline void hsift_root(heap *h, gsess s)
{
    size_t i = 0, n = h->n;
    gsess *v = h->v;
    for (;;) {
        size_t c = 4 * i + 1;
        if (c + 3 < n) {
            size_t m01 = v[c + 1].t < v[c].t ? c + 1 : c;
            size_t m23 = v[c + 3].t < v[c + 2].t ? c + 3 : c + 2;
            size_t m = v[m23].t < v[m01].t ? m23 : m01;
            v[i] = v[m];
            i = m;
        } else {
            if (c < n) {
                size_t m = c;
                for (size_t j = c + 1; j < n; j++)
                    if (v[j].t < v[m].t)
                        m = j;
                v[i] = v[m];
                i = m;
            }
            break;
        }
    }
    while (i > 0) {
        size_t p = (i - 1) / 4;
        if (v[p].t <= s.t)
            break;
        v[i] = v[p];
        i = p;
    }
    v[i] = s;
}

static void hpop(heap *h)
{
    gsess last = h->v[--h->n];
    if (h->n)
        hsift_root(h, last);
}

/* The sessions waiting for their next event: a calendar queue. Buckets of 2^CAL_SHIFT ms
 * (about a second) for the next CAL_N buckets (70 minutes: every step but the rare long gap of
 * a configuration with gap > 35 min), a 4-ary heap beyond. The next session is the most
 * recently queued one of the earliest non-empty bucket: not exactly the earliest event time
 * (within a bucket, last in first out), which moves that event up to a second later (the
 * clock never goes back); every operation is O(1) and touches one bucket head and one slot.
 * Rejected: a heap over all sessions (its sift was a third of the generator's time); a radix
 * heap (exact order, but every session moves through several buckets on its way down). */
#define CAL_SHIFT 10
#define CAL_N 4096
#define CAL_NONE UINT32_MAX
typedef struct cal {
    gsess *slot;    /* sessions, by slot */
    uint32_t *nxt;  /* next slot in the same bucket, or the free list */
    uint32_t cap, free_head;
    uint32_t head[CAL_N];
    int64_t cur;    /* absolute bucket number (t >> CAL_SHIFT) of the current bucket */
    size_t n;       /* sessions queued, overflow included */
    size_t nb;      /* of which in buckets */
    heap over;      /* beyond the buckets' horizon */
} cal;

static void cal_init(cal *c)
{
    memset(c, 0, sizeof *c);
    for (int i = 0; i < CAL_N; i++)
        c->head[i] = CAL_NONE;
    c->free_head = CAL_NONE;
}

static void cal_free(cal *c)
{
    free(c->slot);
    free(c->nxt);
    free(c->over.v);
}

static inline void cal_bucket_put(cal *c, gsess s, int64_t b)
{
    if (c->free_head == CAL_NONE) { /* grow the slots; the new ones go on the free list */
        uint32_t old = c->cap;
        c->cap = c->cap ? c->cap * 2 : 1024;
        c->slot = realloc(c->slot, c->cap * sizeof *c->slot);
        c->nxt = realloc(c->nxt, c->cap * sizeof *c->nxt);
        for (uint32_t i = c->cap; i-- > old;) {
            c->nxt[i] = c->free_head;
            c->free_head = i;
        }
    }
    uint32_t i = c->free_head;
    c->free_head = c->nxt[i];
    c->slot[i] = s;
    uint32_t *h = &c->head[b & (CAL_N - 1)];
    c->nxt[i] = *h;
    *h = i;
    c->nb++;
}

static inline void cal_push(cal *c, gsess s)
{
    int64_t b = s.t >> CAL_SHIFT;
    if (c->n == 0)
        c->cur = b;
    if (b < c->cur)
        b = c->cur;
    c->n++;
    if (b - c->cur < CAL_N)
        cal_bucket_put(c, s, b);
    else
        hpush(&c->over, s);
}

/* The next session (NULL if none); moves the current bucket forward as needed. */
static inline gsess *cal_top(cal *c)
{
    if (c->n == 0)
        return NULL;
    for (;;) {
        uint32_t i = c->head[c->cur & (CAL_N - 1)];
        if (i != CAL_NONE)
            return &c->slot[i];
        if (c->nb == 0) /* only the overflow: jump to it */
            c->cur = c->over.v[0].t >> CAL_SHIFT;
        else
            c->cur++;
        while (c->over.n && (c->over.v[0].t >> CAL_SHIFT) - c->cur < CAL_N) {
            gsess s = c->over.v[0];
            hpop(&c->over);
            cal_bucket_put(c, s, s.t >> CAL_SHIFT);
        }
    }
}

/* Removes the session cal_top returned. */
static inline void cal_pop(cal *c)
{
    uint32_t *h = &c->head[c->cur & (CAL_N - 1)], i = *h;
    *h = c->nxt[i];
    c->nxt[i] = c->free_head;
    c->free_head = i;
    c->nb--;
    c->n--;
}

/* Sessions a partition keeps in flight at most (a stream of very many events over a short
 * span would otherwise start a session at nearly every message and never finish one). */
#define MAX_ACTIVE (1u << 20)
#define RECENT 4096

struct cs_gen_pstream {
    const cs_gen_plan *pl;
    const cs_gen_conf *c;
    int part;
    const uint32_t *cust;
    char (*names)[16];
    uint32_t ncust;
    uint64_t n, k;       /* messages in all, sent so far */
    uint64_t key_q, key_r, key_step_q, key_step_r, key_den; /* merge key of message k */
    double pace0, dpace; /* the k-th message is paced at pace0 + k * dpace */
    int64_t clock;       /* event time of the last session event (never decreases) */
    rng r;
    int64_t *first_seen; /* per customer index: its earliest event time */
    cal q;
    uint32_t first_pass_next;
    uint32_t win_lo, win_hi; /* churn: the active customers' indices [win_lo, win_hi) */
    uint32_t recent[RECENT]; /* customer indices recently sent (late events pick from them) */
    uint32_t nrecent;
    char *buf; /* the current message */
    char key[24]; /* the current message's key, NUL-terminated */
    int64_t day_cache_min[3]; /* per time style: minute of the cached "YYYY-MM-DDTHH:MM:" */
    char day_cache[3][40];
    /* SPEC §3.1 (login_frac > 0): per device index, its valid events so far (saturating);
     * for the message being written, whether it carries the person and which */
    uint8_t *dev_sent;
    int id_known;
    uint32_t id_person;
};

/* ---- writing ---------------------------------------------------------------------------- */

/* lit must be a string literal ("" lit does not compile otherwise) */
#define PUT(p, lit) (memcpy((p), "" lit, sizeof("" lit) - 1), (p) += sizeof("" lit) - 1)
/* PUT of one of two literals (a conditional of two arrays would be a pointer to sizeof) */
#define PUTC(p, cond, a, b)                                                                        \
    do {                                                                                           \
        if (cond)                                                                                  \
            PUT(p, a);                                                                             \
        else                                                                                       \
            PUT(p, b);                                                                             \
    } while (0)
static inline char *putf(char *p, const frag *f)
{
    memcpy(p, f->s, FRAG);
    return p + f->n;
}
static inline char *putl(char *p, const lfrag *f)
{
    memcpy(p, f->s, f->n);
    return p + f->n;
}
static const char digits2[201] = "00010203040506070809101112131415161718192021222324252627282930"
                                 "31323334353637383940414243444546474849505152535455565758596061"
                                 "62636465666768697071727374757677787980818283848586878889909192"
                                 "93949596979899";
static const uint64_t pow10[20] = {1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull,
    1000000ull, 10000000ull, 100000000ull, 1000000000ull, 10000000000ull, 100000000000ull,
    1000000000000ull, 10000000000000ull, 100000000000000ull, 1000000000000000ull,
    10000000000000000ull, 100000000000000000ull, 1000000000000000000ull,
    10000000000000000000ull};
static inline char *putu(char *p, uint64_t v)
{
    int n = 1;
    while (n < 20 && v >= pow10[n])
        n++;
    char *e = p + n, *s = e;
    while (v >= 100) {
        unsigned d = (unsigned)(v % 100);
        v /= 100;
        s -= 2;
        memcpy(s, digits2 + 2 * d, 2);
    }
    if (v >= 10)
        memcpy(s - 2, digits2 + 2 * v, 2);
    else
        s[-1] = (char)('0' + v);
    return e;
}

/* The persona property's value: the customer's persona, or with cs_gen_conf.persona_cohort = K
 * the customer's cohort "c<id / K>" (a dimension whose values keep arriving with --churn). */
static inline char *put_persona_value(char *p, int persona, uint32_t cust, uint32_t cohort)
{
    if (__builtin_expect(cohort == 0, 1))
        return putf(p, &persona_name[persona]);
    *p++ = 'c';
    return putu(p, cust / cohort);
}
static inline char *put2(char *p, int v)
{
    memcpy(p, digits2 + 2 * v, 2);
    return p + 2;
}

/* u^2.2 (the Zipf-like activity draw) from a table with linear interpolation: pow() was 4 % of
 * the generator's time; the table is computed with pow() once (same libm, same stream). */
#define ZIPF_N 4096
static double zipf_tab[ZIPF_N + 2];
static inline double zipf_u(double u)
{
    double x = u * ZIPF_N;
    int i = (int)x;
    return zipf_tab[i] + (zipf_tab[i + 1] - zipf_tab[i]) * (x - i);
}

/* byte -> its two hex digits, low nibble first (the order the old nibble loop wrote) */
static char hex2[256][2];
static void hex2_init(void)
{
    for (int i = 0; i <= ZIPF_N + 1; i++)
        zipf_tab[i] = pow((double)i / ZIPF_N, 2.2);
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 256; i++) {
        hex2[i][0] = hex[i & 15];
        hex2[i][1] = hex[i >> 4];
    }
}

/* 16 hex digits of a message id, low byte first */
static inline char *put_hex64(char *p, uint64_t id)
{
    for (int i = 0; i < 8; i++, id >>= 8)
        memcpy(p + 2 * i, hex2[id & 255], 2);
    return p + 16;
}

static void civil(int64_t days, int *y, int *m, int *d)
{
    days += 719468;
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    int64_t doe = days - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

/* RFC 3339 with milliseconds; style 0 Z, 1 +02:00, 2 -05:30 */
static char *put_time(cs_gen_pstream *g, char *p, int64_t t, int style)
{
    static const int64_t shift[3] = {0, 2 * 3600000, -(5 * 3600000 + 30 * 60000)};
    static const frag zone[3] = {F("Z"), F("+02:00"), F("-05:30")};
    int64_t lt = t + shift[style];
    int64_t min = lt >= 0 ? lt / 60000 : (lt - 59999) / 60000;
    int ms = (int)(lt - min * 60000);
    if (min != g->day_cache_min[style]) {
        int64_t days = min >= 0 ? min / 1440 : (min - 1439) / 1440;
        int mod = (int)(min - days * 1440);
        int y, mo, d;
        civil(days, &y, &mo, &d);
        char *q = g->day_cache[style]; /* "YYYY-MM-DDTHH:MM:" (years 0..9999) */
        y = y < 0 ? 0 : y > 9999 ? 9999 : y;
        q = put2(q, y / 100);
        q = put2(q, y % 100);
        *q++ = '-';
        q = put2(q, mo);
        *q++ = '-';
        q = put2(q, d);
        *q++ = 'T';
        q = put2(q, mod / 60);
        *q++ = ':';
        q = put2(q, mod % 60);
        *q = ':';
        g->day_cache_min[style] = min;
    }
    memcpy(p, g->day_cache[style], 17);
    p += 17;
    p = put2(p, ms / 1000);
    *p++ = '.';
    *p++ = (char)('0' + ms % 1000 / 100);
    p = put2(p, ms % 100);
    return putf(p, &zone[style]);
}

static size_t custname(uint32_t c, char *buf)
{
    /* a fixed share of customers have integer ids */
    char *p = buf;
    if ((c % 7) == 3) {
        p = putu(p, 100000000u + c);
    } else {
        *p++ = 'c';
        uint32_t v = c % 10000000u; /* 7 digits, zero-padded */
        memcpy(p + 5, digits2 + 2 * (v % 100), 2);
        v /= 100;
        memcpy(p + 3, digits2 + 2 * (v % 100), 2);
        v /= 100;
        memcpy(p + 1, digits2 + 2 * (v % 100), 2);
        p[0] = (char)('0' + v / 100);
        p += 7;
    }
    *p = 0;
    return (size_t)(p - buf);
}

static inline int persona_of(uint32_t cust) { return (int)(((cust * 2654435761u) >> 16) % 3); }

/* ---- SPEC §3.1 devices and persons (login_frac > 0) --------------------------------------- */

/* A fixed function of (device, salt) in [0, 1): a device's identity plan depends on nothing
 * but its number, so every partition and every run agree on it. */
static double id_u(uint32_t dev, uint64_t salt)
{
    uint64_t z = (uint64_t)dev * 0x9E3779B97F4A7C15ull + salt * 0xBF58476D1CE4E5B9ull + 1;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) * 0x1.0p-53;
}

/* The person of global device gc: its own number, or the device before it's (second device). */
static uint32_t id_person_of(const cs_gen_conf *c, uint32_t gc)
{
    return (gc & 1) && id_u(gc, 2) < c->second_device_frac ? gc - 1 : gc;
}

/* Whether the message about to be written for device gc (local index i) carries its person. */
static void id_prepare(cs_gen_pstream *g, uint32_t gc, uint32_t i)
{
    const cs_gen_conf *c = g->c;
    uint32_t person = id_person_of(c, gc);
    int logs_in = id_u(person, 1) < c->login_frac;
    unsigned at = (unsigned)(id_u(gc, 3) * 5); /* the login at its 1st..5th event */
    g->id_known = logs_in && g->dev_sent[i] >= at;
    g->id_person = person;
    /* a shared device (5 % of those that log in): every 4th event after the login is another
     * person's (SPEC 3.1 conflicts) */
    if (g->id_known && id_u(gc, 4) < 0.05 && g->dev_sent[i] > at && g->dev_sent[i] % 4 == 3)
        g->id_person = person + 1;
}

/* "anonymousId":"<device>",["userId":"p<person>",] */
static char *put_identity_ids(const cs_gen_pstream *g, char *p, const char *cname, size_t clen)
{
    PUT(p, "\"anonymousId\":\"");
    memcpy(p, cname, 16);
    p += clen;
    PUT(p, "\",");
    if (g->id_known) {
        PUT(p, "\"userId\":\"p");
        p = putu(p, g->id_person);
        PUT(p, "\",");
    }
    return p;
}

/* One valid event of (global) customer cust in the Segment spelling. Returns its end. */
static inline __attribute__((always_inline)) char *
event_segment(cs_gen_pstream *g, rng *r, char *p, uint32_t cust, const char *cname, size_t clen,
              int64_t t, int ev, int with_channel, int64_t *kts)
{
    int int_id = (cust % 7) == 3;
    int persona = persona_of(cust);
    p = putf(p, &ev_open[ev]);
    uint64_t x = next(r), y = next(r);
    int idstyle = (int)b16(x, 20);
    if (__builtin_expect(g->c->login_frac > 0, 0)) {
        p = put_identity_ids(g, p, cname, clen);
    } else if (int_id) {
        PUT(p, "\"userId\":");
        memcpy(p, cname, 16);
        p += clen;
        *p++ = ',';
    } else if (idstyle == 0) {
        PUT(p, "\"anonymousId\":\"");
        memcpy(p, cname, 16);
        p += clen;
        PUT(p, "\",");
    } else if (idstyle == 1) { /* both: userId wins */
        PUT(p, "\"anonymousId\":\"anon-");
        p = putu(p, cust);
        PUT(p, "\",\"userId\":\"");
        memcpy(p, cname, 16);
        p += clen;
        PUT(p, "\",");
    } else if (idstyle == 2) { /* an empty userId: the next path wins */
        PUT(p, "\"user_id\":\"");
        memcpy(p, cname, 16);
        p += clen;
        PUT(p, "\",\"userId\":\"\",");
    } else {
        PUT(p, "\"userId\":\"");
        memcpy(p, cname, 16);
        p += clen;
        PUT(p, "\",");
    }
    int tstyle = (int)b16(x >> 16, 10);
    *kts = t;
    if (tstyle < 6) {
        PUT(p, "\"timestamp\":\"");
        p = put_time(g, p, t, 0);
        PUT(p, "\",");
        *kts = t + 1500; /* producer time differs from event time */
    } else if (tstyle == 6) {
        PUT(p, "\"timestamp\":\"");
        p = put_time(g, p, t, 1);
        PUT(p, "\",");
        *kts = t + 800;
    } else if (tstyle == 7) {
        PUT(p, "\"originalTimestamp\":\"");
        p = put_time(g, p, t, 2);
        PUT(p, "\",");
        *kts = t + 100;
    } else if (tstyle == 8) {
        PUT(p, "\"ts\":");
        p = putu(p, (uint64_t)t);
        *p++ = ',';
        *kts = t + 20;
    } /* else: no time field; the Kafka timestamp is the event time */
    const frag *ch = &channel_name[channels[persona][b16(x >> 32, 8)]];
    unsigned sku = (unsigned)b32(y, 5000);
    int reviews = b16(x >> 48, 12) == 0;
    PUT(p, "\"context\":{\"library\":{\"name\":\"analytics.js\",\"version\":\"4.1.0\"},"
           "\"page\":{\"url\":\"https://shop.example/p/");
    /* the sku's digits (sku < 10000) as one 8-byte word, built in a register (constant
     * divisors, no store and reload) and written three times */
    unsigned sd = sku >= 1000 ? 4 : sku >= 100 ? 3 : sku >= 10 ? 2 : 1;
    uint64_t skus = (uint64_t)('0' + sku / 1000) | (uint64_t)('0' + sku / 100 % 10) << 8 |
                    (uint64_t)('0' + sku / 10 % 10) << 16 | (uint64_t)('0' + sku % 10) << 24;
    skus >>= 8 * (4 - sd);
    size_t skul = sd;
    memcpy(p, &skus, 8);
    p += skul;
    if (reviews)
        PUT(p, "/reviews/all");
    PUT(p, "\",\"title\":\"Item \\u00e9 ");
    memcpy(p, &skus, 8);
    p += skul;
    PUT(p, "\"}");
    int ch_where = with_channel ? (int)b16(y >> 32, 2) : 2;
    if (ch_where == 0) {
        PUT(p, ",\"campaign\":{\"medium\":\"");
        p = putf(p, ch);
        PUT(p, "\",\"name\":\"fall\"}");
    }
    PUT(p, "},\"properties\":{\"sku\":\"");
    memcpy(p, &skus, 8);
    p += skul;
    PUT(p, "\",\"price\":");
    p = putu(p, sku % 300);
    PUT(p, ".99");
    if (b16(y >> 48, 10) < 9) {
        PUT(p, ",\"persona\":\"");
        p = put_persona_value(p, persona, cust, g->c->persona_cohort);
        *p++ = '"';
    }
    if (ev == EV_TICKET_OPENED || ev == EV_SUPPORT_CHAT ||
        (ev == EV_ORDER_TRACKED && ev == service_event[persona])) {
        PUT(p, ",\"service_channel\":\"");
        p = putf(p, &service_channel[persona]);
        *p++ = '"';
    }
    *p++ = '}';
    if (ch_where == 1) {
        PUT(p, ",\"channel\":\"");
        p = putf(p, ch);
        *p++ = '"';
    }
    PUT(p, ",\"messageId\":\"");
    p = put_hex64(p, next(r));
    PUT(p, "\"}");
    return p;
}

/* ---- formats (SPEC §1.1) ---------------------------------------------------------------------
 * One stream, several spellings: every random draw is made before anything is written, in the
 * same order for every format, so the same seed gives the same journeys (same customers, event
 * kinds, times, channels, personas, Kafka timestamps) in each format, and one ground truth
 * (computed by the reference model from the Segment spelling) holds for all of them. What each
 * format's message looks like is in docs/formats.md; the rule files that read them with the
 * same outcome are tests/formats/rules/. */

/* What one valid event is, whatever the format. */
typedef struct gev {
    uint32_t cust;
    const char *cname; /* the customer id (16 readable bytes: padded) */
    size_t clen;
    int int_id, idstyle, tstyle, ev, persona, has_persona, service, reviews, ch_where;
    uint32_t cohort; /* cs_gen_conf.persona_cohort */
    int64_t t;
    const frag *ch;
    unsigned sku;
    uint64_t skus; /* the sku's digits, in the low bytes */
    size_t skul;
    uint64_t msgid;
} gev;

/* the "persona" and "service_channel" properties (when the event has them), each after a comma */
static inline char *put_persona_service(char *p, const gev *e)
{
    if (e->has_persona) {
        PUT(p, ",\"persona\":\"");
        p = put_persona_value(p, e->persona, e->cust, e->cohort);
        *p++ = '"';
    }
    if (e->service) {
        PUT(p, ",\"service_channel\":\"");
        p = putf(p, &service_channel[e->persona]);
        *p++ = '"';
    }
    return p;
}

/* the message's event name, per format, for the page call (Segment `page` has no `event`) */
static const lfrag page_name[CS_GEN_NFORMATS] = {
    L(""), L(""), L("$pageview"), L("$mp_web_page_view"), L("[Amplitude] Page Viewed"),
    L("page_view")};

static inline lfrag ev_name(int fmt, int ev)
{
    static const lfrag names[EV__N] = {
        L("page_view"), L("ad_click"), L("page"), L("product_view"), L("review_read"),
        L("compare"), L("add_to_wishlist"), L("checkout_started"), L("payment_submitted"),
        L("order_completed"), L("return_requested"), L("order_tracked"), L("ticket_opened"),
        L("support_chat"), L("loyalty_signup"), L("review_written"), L("referral_sent"),
        L("repeat_purchase"), L("identify"), L("scroll"), L("video_play"), L("newsletter_open"),
    };
    return ev == EV_PAGE ? page_name[fmt] : names[ev];
}

/* JSON string body bytes [s, s+n) that need no escaping here */
#define PUTS(p, s, n) (memcpy((p), (s), (n)), (p) += (n))

/* "YYYY-MM-DD hh:mm:ss.fff" (Snowplow, UTC) */
static char *put_sqlts(cs_gen_pstream *g, char *p, int64_t t)
{
    char *q = put_time(g, p, t, 0); /* "YYYY-MM-DDTHH:MM:SS.fffZ" */
    p[10] = ' ';
    return q - 1; /* drop the Z */
}

/* epoch seconds with 3 decimals (the Mixpanel libraries' float seconds) */
static char *put_secs(char *p, int64_t t)
{
    p = putu(p, (uint64_t)(t / 1000));
    *p++ = '.';
    unsigned ms = (unsigned)(t % 1000);
    *p++ = (char)('0' + ms / 100);
    return put2(p, (int)(ms % 100));
}

/* The event's time in a JSON format: returns p after `"key":value,` (or nothing: no time). */
static char *put_json_time(cs_gen_pstream *g, char *p, int fmt, const gev *e, int in_props)
{
    int ts = e->tstyle;
    if (ts >= 9)
        return p;
    switch (fmt) {
    case CS_GEN_RUDDERSTACK:
    case CS_GEN_POSTHOG:
        if (fmt == CS_GEN_RUDDERSTACK && ts == 7)
            PUT(p, "\"originalTimestamp\":");
        else
            PUT(p, "\"timestamp\":");
        if (ts == 8) {
            p = putu(p, (uint64_t)e->t);
        } else {
            *p++ = '"';
            p = put_time(g, p, e->t, ts < 6 ? 0 : ts == 6 ? 1 : 2);
            *p++ = '"';
        }
        break;
    case CS_GEN_MIXPANEL: /* float seconds from the libraries; integer ms from the import API */
        PUT(p, "\"time\":");
        p = ts == 8 ? putu(p, (uint64_t)e->t) : put_secs(p, e->t);
        break;
    case CS_GEN_AMPLITUDE:
        PUT(p, "\"time\":");
        p = putu(p, (uint64_t)e->t);
        break;
    }
    (void)in_props;
    *p++ = ',';
    return p;
}

/* The customer ids in a JSON format, per the event's id style (see the Segment spelling). */
static char *put_json_ids(char *p, int fmt, const gev *e)
{
    static const lfrag user[CS_GEN_NFORMATS] = {L(""), L("\"userId\":\""), L("\"distinct_id\":\""),
                                                L("\"distinct_id\":\""), L("\"user_id\":\""),
                                                L("")};
    static const lfrag anon[CS_GEN_NFORMATS] = {L(""), L("\"anonymousId\":\""),
                                                L("\"$device_id\":\""), L("\"$device_id\":\""),
                                                L("\"device_id\":\""), L("")};
    int style = e->int_id ? 3 : e->idstyle;
    if (style == 0) { /* anonymous only */
        if (fmt == CS_GEN_POSTHOG) /* PostHog: the device id is the distinct_id until login */
            p = putl(p, &user[fmt]);
        else
            p = putl(p, &anon[fmt]);
        PUTS(p, e->cname, e->clen);
        PUT(p, "\",");
    } else if (style == 1) { /* both: the person wins */
        p = putl(p, &anon[fmt]);
        PUT(p, "anon-");
        p = putu(p, e->cust);
        PUT(p, "\",");
        p = putl(p, &user[fmt]);
        PUTS(p, e->cname, e->clen);
        PUT(p, "\",");
    } else if (style == 2 && fmt == CS_GEN_RUDDERSTACK) { /* an empty userId: the next path */
        PUT(p, "\"userId\":\"\",\"anonymousId\":\"");
        PUTS(p, e->cname, e->clen);
        PUT(p, "\",");
    } else {
        p = putl(p, &user[fmt]);
        PUTS(p, e->cname, e->clen);
        PUT(p, "\",");
    }
    return p;
}

static char *put_url(char *p, const gev *e)
{
    PUT(p, "https://shop.example/p/");
    memcpy(p, &e->skus, 8);
    p += e->skul;
    if (e->reviews)
        PUT(p, "/reviews/all");
    return p;
}

/* RudderStack: Segment's spec plus `channel` (the SDK kind) at the top level. */
static char *render_rudderstack(cs_gen_pstream *g, char *p, const gev *e)
{
    lfrag nm = ev_name(CS_GEN_RUDDERSTACK, e->ev);
    if (e->ev == EV_PAGE) {
        PUT(p, "{\"type\":\"page\",\"channel\":\"web\",");
    } else {
        PUT(p, "{\"type\":\"track\",\"channel\":\"server\",\"event\":\"");
        p = putl(p, &nm);
        PUT(p, "\",");
    }
    p = put_json_ids(p, CS_GEN_RUDDERSTACK, e);
    p = put_json_time(g, p, CS_GEN_RUDDERSTACK, e, 0);
    PUT(p, "\"context\":{\"library\":{\"name\":\"rudder-analytics-python\",\"version\":\"2.1.9\"},"
           "\"page\":{\"url\":\"");
    p = put_url(p, e);
    PUT(p, "\"}");
    if (e->ch_where <= 1) {
        PUT(p, ",\"campaign\":{\"medium\":\"");
        p = putf(p, e->ch);
        PUT(p, "\",\"name\":\"fall\"}");
    }
    PUT(p, "},\"properties\":{\"sku\":\"");
    memcpy(p, &e->skus, 8);
    p += e->skul;
    PUT(p, "\"");
    p = put_persona_service(p, e);
    PUT(p, "},\"messageId\":\"");
    p = put_hex64(p, e->msgid);
    PUT(p, "\"}");
    return p;
}

/* PostHog, Mixpanel, Amplitude: an event name, ids, a time and a properties object. */
static char *render_props_json(cs_gen_pstream *g, char *p, int fmt, const gev *e)
{
    lfrag nm = ev_name(fmt, e->ev);
    PUTC(p, fmt == CS_GEN_AMPLITUDE, "{\"event_type\":\"", "{\"event\":\"");
    p = putl(p, &nm);
    PUT(p, "\",");
    if (fmt != CS_GEN_MIXPANEL) {
        p = put_json_ids(p, fmt, e);
        p = put_json_time(g, p, fmt, e, 0);
    }
    if (fmt == CS_GEN_AMPLITUDE) {
        PUT(p, "\"platform\":\"Web\",\"insert_id\":\"");
    } else if (fmt == CS_GEN_POSTHOG) {
        PUT(p, "\"uuid\":\"");
    }
    if (fmt != CS_GEN_MIXPANEL) {
        p = put_hex64(p, e->msgid);
        PUT(p, "\",");
    }
    PUTC(p, fmt == CS_GEN_AMPLITUDE, "\"event_properties\":{", "\"properties\":{");
    if (fmt == CS_GEN_MIXPANEL) {
        PUT(p, "\"token\":\"clickstage-test\",");
        p = put_json_ids(p, fmt, e);
        p = put_json_time(g, p, fmt, e, 1);
        PUT(p, "\"mp_lib\":\"python\",\"$insert_id\":\"");
        p = put_hex64(p, e->msgid);
        PUT(p, "\",");
    }
    if (fmt == CS_GEN_AMPLITUDE)
        PUTC(p, e->ev == EV_PAGE, "\"[Amplitude] Page URL\":\"", "\"page_url\":\"");
    else
        PUT(p, "\"$current_url\":\"");
    p = put_url(p, e);
    PUT(p, "\",\"sku\":\"");
    memcpy(p, &e->skus, 8);
    p += e->skul;
    PUT(p, "\",\"price\":");
    p = putu(p, e->sku % 300);
    PUT(p, ".99");
    if (e->ch_where <= 1 && !(fmt == CS_GEN_AMPLITUDE && e->ch_where == 1)) {
        PUT(p, ",\"utm_medium\":\"");
        p = putf(p, e->ch);
        PUT(p, "\",\"utm_campaign\":\"fall\"");
    }
    p = put_persona_service(p, e);
    *p++ = '}';
    if (fmt == CS_GEN_AMPLITUDE && e->ch_where == 1) { /* attribution kept on the user */
        PUT(p, ",\"user_properties\":{\"utm_medium\":\"");
        p = putf(p, e->ch);
        PUT(p, "\"}");
    }
    *p++ = '}';
    return p;
}

/* Snowplow enriched TSV: CS_SNOWPLOW_NCOLS columns in the canonical order. */
enum {
    SP_APP_ID = 0, SP_PLATFORM = 1, SP_ETL_TSTAMP = 2, SP_COLLECTOR_TSTAMP = 3,
    SP_DVCE_CREATED_TSTAMP = 4, SP_EVENT = 5, SP_EVENT_ID = 6, SP_NAME_TRACKER = 8,
    SP_V_TRACKER = 9, SP_V_COLLECTOR = 10, SP_V_ETL = 11, SP_USER_ID = 12,
    SP_DOMAIN_USERID = 15, SP_NETWORK_USERID = 17, SP_PAGE_URL = 29, SP_MKT_MEDIUM = 47,
    SP_MKT_CONTENT = 50, SP_MKT_CAMPAIGN = 51, SP_SE_CATEGORY = 53, SP_SE_ACTION = 54,
    SP_SE_LABEL = 55, SP_SE_PROPERTY = 56, SP_DERIVED_TSTAMP = 124, SP_EVENT_VENDOR = 125,
    SP_EVENT_NAME = 126, SP_EVENT_FORMAT = 127, SP_EVENT_VERSION = 128, SP_NCOLS = 131
};

/* n tabs */
static inline char *tabs(char *p, int n)
{
    memset(p, '\t', (size_t)n);
    return p + n;
}

/* Columns [from, to) are empty: the tabs that end them. Returns p. */
#define SP_SKIP(p, col, to) ((p) = tabs((p), (to) - (col)), (col) = (to))
/* Start writing column `to` (the columns before it empty). */
#define SP_AT(p, col, to) SP_SKIP(p, col, to)

static char *render_snowplow(cs_gen_pstream *g, char *p, const gev *e, int64_t kts)
{
    int col = 0;
    PUT(p, "shop\tweb\t");
    col = SP_ETL_TSTAMP;
    p = put_sqlts(g, p, kts + 2000);
    *p++ = '\t', col++;
    /* the collector saw it at the Kafka time; with no device time it is the event time */
    p = put_sqlts(g, p, e->tstyle >= 8 ? e->t : kts);
    *p++ = '\t', col++;
    if (e->tstyle <= 7)
        p = put_sqlts(g, p, e->t);
    *p++ = '\t', col++;
    if (e->ev == EV_PAGE)
        PUT(p, "page_view\t");
    else
        PUT(p, "struct\t");
    col++;
    /* event_id: a UUID from the message id */
    char hx[16];
    put_hex64(hx, e->msgid);
    /* 8-4-4-4-12, version 4, variant 8 */
    memcpy(p, hx, 8), p += 8, *p++ = '-';
    memcpy(p, hx + 8, 4), p += 4;
    PUT(p, "-4");
    memcpy(p, hx + 12, 3), p += 3;
    PUT(p, "-8");
    *p++ = hx[15];
    PUT(p, "00-000000000000\t");
    col++;
    SP_AT(p, col, SP_NAME_TRACKER);
    PUT(p, "sp\tpy-1.0.0\tssc-3.2.0-kafka\tsnowplow-enrich-kafka-5.1.0\t");
    col = SP_USER_ID;
    int style = e->int_id ? 3 : e->idstyle;
    if (style == 0) { /* anonymous: the first-party cookie */
        SP_AT(p, col, SP_DOMAIN_USERID);
        PUTS(p, e->cname, e->clen);
    } else if (style == 1) { /* a known user on a cookied device */
        PUTS(p, e->cname, e->clen);
        SP_AT(p, col, SP_DOMAIN_USERID);
        PUT(p, "anon-");
        p = putu(p, e->cust);
    } else if (style == 2) { /* only the collector's third-party cookie */
        SP_AT(p, col, SP_NETWORK_USERID);
        PUTS(p, e->cname, e->clen);
    } else {
        PUTS(p, e->cname, e->clen);
    }
    SP_AT(p, col, SP_PAGE_URL);
    p = put_url(p, e);
    if (e->ch_where <= 1) {
        SP_AT(p, col, SP_MKT_MEDIUM);
        p = putf(p, e->ch);
    }
    if (e->has_persona) { /* the audience segment of the campaign tagging (utm_content) */
        SP_AT(p, col, SP_MKT_CONTENT);
        p = put_persona_value(p, e->persona, e->cust, e->cohort);
    }
    if (e->ch_where <= 1) {
        SP_AT(p, col, SP_MKT_CAMPAIGN);
        PUT(p, "fall");
    }
    if (e->ev != EV_PAGE) {
        lfrag nm = ev_name(CS_GEN_SNOWPLOW, e->ev);
        SP_AT(p, col, SP_SE_CATEGORY);
        PUT(p, "shop\t");
        col++;
        p = putl(p, &nm);
        *p++ = '\t', col++;
        memcpy(p, &e->skus, 8); /* se_label: the sku */
        p += e->skul;
        if (e->service) {
            SP_AT(p, col, SP_SE_PROPERTY);
            p = putf(p, &service_channel[e->persona]);
        }
    }
    SP_AT(p, col, SP_DERIVED_TSTAMP);
    if (e->tstyle <= 6)
        p = put_sqlts(g, p, e->t);
    *p++ = '\t', col++;
    if (e->ev == EV_PAGE)
        PUT(p, "com.snowplowanalytics.snowplow\tpage_view\tjsonschema\t1-0-0");
    else
        PUT(p, "com.google.analytics\tevent\tjsonschema\t1-0-0");
    col += 3;
    SP_SKIP(p, col, SP_NCOLS - 1);
    return p;
}

/* One valid event of (global) customer cust. Returns its end. */
static inline __attribute__((always_inline)) char *
event_json(cs_gen_pstream *g, rng *r, char *p, uint32_t cust, const char *cname, size_t clen,
           int64_t t, int ev, int with_channel, int64_t *kts)
{
    const int fmt = g->c->format;
    if (__builtin_expect(fmt == CS_GEN_SEGMENT, 1))
        return event_segment(g, r, p, cust, cname, clen, t, ev, with_channel, kts);
    gev e;
    e.cust = cust;
    e.cohort = g->c->persona_cohort;
    e.cname = cname;
    e.clen = clen;
    e.int_id = (cust % 7) == 3;
    e.persona = persona_of(cust);
    e.ev = ev;
    e.t = t;
    uint64_t x = next(r), y = next(r);
    e.idstyle = (int)b16(x, 20);
    e.tstyle = (int)b16(x >> 16, 10);
    static const int64_t kts_add[10] = {1500, 1500, 1500, 1500, 1500, 1500, 800, 100, 20, 0};
    *kts = t + kts_add[e.tstyle];
    e.ch = &channel_name[channels[e.persona][b16(x >> 32, 8)]];
    e.sku = (unsigned)b32(y, 5000);
    e.reviews = b16(x >> 48, 12) == 0;
    unsigned sd = e.sku >= 1000 ? 4 : e.sku >= 100 ? 3 : e.sku >= 10 ? 2 : 1;
    uint64_t skus = (uint64_t)('0' + e.sku / 1000) | (uint64_t)('0' + e.sku / 100 % 10) << 8 |
                    (uint64_t)('0' + e.sku / 10 % 10) << 16 | (uint64_t)('0' + e.sku % 10) << 24;
    e.skus = skus >> (8 * (4 - sd));
    e.skul = sd;
    e.ch_where = with_channel ? (int)b16(y >> 32, 2) : 2;
    e.has_persona = b16(y >> 48, 10) < 9;
    e.service = ev == EV_TICKET_OPENED || ev == EV_SUPPORT_CHAT ||
                (ev == EV_ORDER_TRACKED && ev == service_event[e.persona]);
    e.msgid = next(r);
    switch (fmt) {
    case CS_GEN_RUDDERSTACK:
        return render_rudderstack(g, p, &e);
    case CS_GEN_SNOWPLOW:
        return render_snowplow(g, p, &e, *kts);
    default:
        return render_props_json(g, p, fmt, &e);
    }
}

/* ---- invalid and skewed messages in the other formats ----------------------------------- */

/* A Snowplow line from (column, text) pairs in column order; `ncols` columns in all. */
typedef struct spcol {
    int col;
    const char *s;
    size_t n;
} spcol;
static char *sp_line(char *p, const spcol *c, int nc, int ncols)
{
    int col = 0;
    for (int i = 0; i < nc; i++) {
        SP_AT(p, col, c[i].col);
        memcpy(p, c[i].s, c[i].n);
        p += c[i].n;
    }
    SP_SKIP(p, col, ncols - 1);
    return p;
}
#define SPC(c, lit) {(c), (lit), sizeof(lit) - 1}

/* kind k (0..8) of invalid_json's list, or too_large, spelled in format fmt: the same reason
 * (for Snowplow, the JSON-level reasons not_json, not_object, too_deep become not_tsv) */
static char *invalid_other(char *p, int fmt, uint32_t cust, int k, int too_large)
{
    char id[24];
    id[0] = 'c';
    size_t idn = (size_t)(putu(id + 1, cust) - id);
    if (fmt == CS_GEN_SNOWPLOW) {
        static char pad[66000];
        if (!pad[0])
            memset(pad, 'x', sizeof pad);
        spcol c[4];
        int n = 0;
        if (too_large) {
            c[n++] = (spcol){SP_USER_ID, id, idn};
            c[n++] = (spcol){SP_SE_LABEL, pad, sizeof pad};
            c[n++] = (spcol)SPC(SP_EVENT_NAME, "page_view");
            return sp_line(p, c, n, SP_NCOLS);
        }
        switch (k) {
        case 0: /* a truncated line */
            c[n++] = (spcol){SP_USER_ID, id, idn};
            return sp_line(p, c, n, 100);
        case 1:
            PUTS(p, id, idn);
            PUT(p, "\t1\t2");
            return p;
        case 2: /* no customer */
            c[n++] = (spcol){SP_SE_LABEL, id, idn};
            c[n++] = (spcol)SPC(SP_DERIVED_TSTAMP, "2026-11-01 10:00:00.000");
            c[n++] = (spcol)SPC(SP_EVENT_NAME, "page_view");
            return sp_line(p, c, n, SP_NCOLS);
        case 3: /* no event */
            c[n++] = (spcol){SP_USER_ID, id, idn};
            c[n++] = (spcol)SPC(SP_SE_CATEGORY, "nested-is-not-event");
            return sp_line(p, c, n, SP_NCOLS);
        case 4:
        case 5:
            c[n++] = (spcol){SP_USER_ID, id, idn};
            if (k == 4)
                c[n++] = (spcol)SPC(SP_DERIVED_TSTAMP, "yesterday");
            else
                c[n++] = (spcol)SPC(SP_DERIVED_TSTAMP, "2026-13-01 10:00:00.000");
            c[n++] = (spcol)SPC(SP_EVENT_NAME, "page_view");
            return sp_line(p, c, n, SP_NCOLS);
        case 6:
            PUT(p, "not json at all ");
            PUTS(p, id, idn);
            return p;
        case 7: /* a column too many */
            c[n++] = (spcol){SP_USER_ID, id, idn};
            c[n++] = (spcol)SPC(SP_EVENT_NAME, "page_view");
            return sp_line(p, c, n, SP_NCOLS + 1);
        default: /* JSON nested too deep */
            PUT(p, "{\"user_id\":\"");
            PUTS(p, id, idn);
            PUT(p, "\",\"deep\":");
            memset(p, '[', 40), p += 40;
            memset(p, ']', 40), p += 40;
            *p++ = '}';
            return p;
        }
    }
    /* JSON: per format, the opening up to the customer id, what closes it, the event member */
    static const lfrag cust_open[CS_GEN_NFORMATS] = {
        L(""), L("\"userId\":\"c"), L("\"distinct_id\":\"c"),
        L("\"properties\":{\"distinct_id\":\"c"), L("\"user_id\":\"c"), L("")};
    static const lfrag cust_close[CS_GEN_NFORMATS] = {L(""), L("\""), L("\""), L("\"}"), L("\""),
                                                      L("")};
    static const lfrag evm[CS_GEN_NFORMATS] = {
        L(""), L("\"type\":\"track\",\"event\":\"page_view\""), L("\"event\":\"$pageview\""),
        L("\"event\":\"page_view\""), L("\"event_type\":\"page_view\""), L("")};
    /* a time member that is fine, "yesterday", and one with month 13 */
    static const lfrag tgood[CS_GEN_NFORMATS] = {
        L(""), L("\"timestamp\":\"2026-11-01T10:00:00Z\""),
        L("\"timestamp\":\"2026-11-01T10:00:00Z\""), L("\"time\":1793527200"),
        L("\"time\":1793527200000"), L("")};
    static const lfrag tkey[CS_GEN_NFORMATS] = {L(""), L("\"originalTimestamp\":"),
                                                L("\"timestamp\":"), L("\"time\":"),
                                                L("\"time\":"), L("")};
    if (too_large) {
        *p++ = '{';
        p = putl(p, &evm[fmt]);
        *p++ = ',';
        p = putl(p, &cust_open[fmt]);
        p = putu(p, cust);
        p = putl(p, &cust_close[fmt]);
        PUT(p, ",\"pad\":\"");
        memset(p, 'x', 66000);
        p += 66000;
        PUT(p, "\"}");
        return p;
    }
    switch (k) {
    case 0: /* unterminated */
    case 7: /* a brace too many */
        *p++ = '{';
        p = putl(p, &evm[fmt]);
        *p++ = ',';
        p = putl(p, &cust_open[fmt]);
        p = putu(p, cust);
        p = putl(p, &cust_close[fmt]);
        *p++ = ',';
        p = putl(p, &tgood[fmt]);
        if (k == 7)
            PUT(p, "}}");
        return p;
    case 1:
        PUT(p, "[\"c");
        p = putu(p, cust);
        PUT(p, "\", 1, 2]");
        return p;
    case 2: /* no customer */
        *p++ = '{';
        p = putl(p, &evm[fmt]);
        *p++ = ',';
        p = putl(p, &tgood[fmt]);
        PUT(p, ",\"x\":\"c");
        p = putu(p, cust);
        PUT(p, "\"}");
        return p;
    case 3: /* no event */
        *p++ = '{';
        p = putl(p, &cust_open[fmt]);
        p = putu(p, cust);
        p = putl(p, &cust_close[fmt]);
        PUT(p, ",\"context\":{\"event\":\"nested-is-not-event\"}}");
        return p;
    case 4:
    case 5:
        *p++ = '{';
        p = putl(p, &evm[fmt]);
        *p++ = ',';
        if (fmt == CS_GEN_MIXPANEL) { /* the time is inside properties */
            PUT(p, "\"properties\":{\"distinct_id\":\"c");
            p = putu(p, cust);
            PUT(p, "\",");
        } else {
            p = putl(p, &cust_open[fmt]);
            p = putu(p, cust);
            p = putl(p, &cust_close[fmt]);
            *p++ = ',';
        }
        p = putl(p, &tkey[fmt]);
        if (k == 4)
            PUT(p, "\"yesterday\"");
        else
            PUT(p, "\"2026-13-01T10:00:00Z\"");
        if (fmt == CS_GEN_MIXPANEL)
            *p++ = '}';
        *p++ = '}';
        return p;
    case 6:
        PUT(p, "not json at all c");
        return putu(p, cust);
    default: /* 40 nested arrays */
        *p++ = '{';
        p = putl(p, &cust_open[fmt]);
        p = putu(p, cust);
        p = putl(p, &cust_close[fmt]);
        *p++ = ',';
        p = putl(p, &evm[fmt]);
        PUT(p, ",\"deep\":");
        memset(p, '[', 40), p += 40;
        memset(p, ']', 40), p += 40;
        *p++ = '}';
        return p;
    }
}

/* skewed_json's event (kind 0..3, `when` its time where it has one) in format fmt */
static char *skewed_other(cs_gen_pstream *g, char *p, int fmt, const char *cname, size_t clen,
                          int kind, int64_t when)
{
    if (fmt == CS_GEN_SNOWPLOW) {
        int col = 0;
        SP_AT(p, col, SP_USER_ID);
        PUTS(p, cname, clen);
        SP_AT(p, col, SP_PAGE_URL);
        PUT(p, "https://shop.example/p/1");
        SP_AT(p, col, SP_SE_CATEGORY);
        PUT(p, "shop\tproduct_view");
        col++;
        SP_AT(p, col, SP_DERIVED_TSTAMP);
        if (kind == 0) {
            PUT(p, "9999-12-31 23:59:59.000");
        } else if (kind == 3) {
            PUT(p, "1970-01-01 00:00:");
            p = put2(p, (int)when);
            PUT(p, ".000");
        } else {
            p = put_sqlts(g, p, when);
        }
        SP_AT(p, col, SP_EVENT_NAME);
        PUT(p, "event");
        SP_SKIP(p, col, SP_NCOLS - 1);
        return p;
    }
    gev e = {0};
    e.cname = cname;
    e.clen = clen;
    e.idstyle = 3;
    e.ev = EV_PRODUCT_VIEW;
    lfrag nm = ev_name(fmt, e.ev);
    PUTC(p, fmt == CS_GEN_AMPLITUDE, "{\"event_type\":\"", "{\"event\":\"");
    p = putl(p, &nm);
    PUT(p, "\",");
    if (fmt == CS_GEN_MIXPANEL)
        PUT(p, "\"properties\":{");
    p = put_json_ids(p, fmt, &e);
    const int iso = fmt == CS_GEN_RUDDERSTACK || fmt == CS_GEN_POSTHOG;
    PUTC(p, fmt == CS_GEN_MIXPANEL || fmt == CS_GEN_AMPLITUDE, "\"time\":", "\"timestamp\":");
    switch (kind) {
    case 0: /* year 9999 */
        if (iso)
            PUT(p, "\"9999-12-31T23:59:59Z\"");
        else if (fmt == CS_GEN_MIXPANEL) /* in ns: the only unit `auto` reads this far out */
            PUT(p, "253402300799000000000");
        else
            PUT(p, "253402300799000");
        break;
    case 1: /* epoch ms */
        p = putu(p, (uint64_t)when);
        break;
    case 2:
        if (iso) {
            *p++ = '"';
            p = put_time(g, p, when, 0);
            *p++ = '"';
        } else if (fmt == CS_GEN_MIXPANEL) {
            p = put_secs(p, when);
        } else {
            p = putu(p, (uint64_t)when);
        }
        break;
    default: /* a clock reset to the epoch */
        if (iso) {
            PUT(p, "\"1970-01-01T00:00:");
            p = put2(p, (int)when);
            PUT(p, "Z\"");
        } else if (fmt == CS_GEN_MIXPANEL) {
            p = putu(p, (uint64_t)when);
        } else {
            p = putu(p, (uint64_t)when * 1000);
        }
        break;
    }
    if (fmt == CS_GEN_MIXPANEL)
        *p++ = '}';
    *p++ = '}';
    return p;
}

static char *invalid_json(cs_gen_pstream *g, rng *r, char *p, uint32_t cust, int too_large)
{
    if (g->c->format != CS_GEN_SEGMENT)
        return invalid_other(p, g->c->format, cust, too_large ? -1 : (int)below(r, 9), too_large);
    static const lfrag kinds[8][2] = {
        {L("{\"event\":\"page_view\",\"userId\":\"c"), L("\",\"timestamp\":\"2026-11-01T10:00:00Z\"")},
        {L("[\"c"), L("\", 1, 2]")},
        {L("{\"event\":\"page_view\",\"timestamp\":\"2026-11-01T10:00:00Z\",\"x\":\"c"), L("\"}")},
        {L("{\"userId\":\"c"), L("\",\"properties\":{\"event\":\"nested-is-not-event\"}}")},
        {L("{\"event\":\"page_view\",\"userId\":\"c"), L("\",\"timestamp\":\"yesterday\"}")},
        {L("{\"event\":\"page_view\",\"userId\":\"c"), L("\",\"ts\":\"2026-13-01T10:00:00Z\"}")},
        {L("not json at all c"), L("")},
        {L("{\"event\":\"page_view\",\"userId\":\"c"), L("\",\"timestamp\":\"2026-11-01T10:00:00Z\"}}")},
    };
    if (too_large) {
        PUT(p, "{\"event\":\"page_view\",\"userId\":\"c");
        p = putu(p, cust);
        PUT(p, "\",\"pad\":\"");
        memset(p, 'x', 66000);
        p += 66000;
        PUT(p, "\"}");
    } else {
        int k = (int)below(r, 9);
        if (k == 8) { /* too_deep: 40 nested arrays inside an object */
            PUT(p, "{\"userId\":\"c");
            p = putu(p, cust);
            PUT(p, "\",\"event\":\"x\",\"deep\":");
            memset(p, '[', 40);
            p += 40;
            memset(p, ']', 40);
            p += 40;
            *p++ = '}';
        } else {
            p = putl(p, &kinds[k][0]);
            p = putu(p, cust);
            p = putl(p, &kinds[k][1]);
        }
    }
    return p;
}

/* A device with a wrong clock (issue 16): a valid event of customer `cust` whose time is far
 * ahead of its message timestamp (one of 3 styles), or before 2000 (a clock reset to the
 * epoch). Never late, never counted: future_time or bad_time under any max_future >= 0 ...
 * except max_future 0 (off), where the future ones are valid and poison the watermark. */
static char *skewed_json(cs_gen_pstream *g, rng *r, char *p, const char *cname, size_t clen,
                         int64_t t)
{
    /* the draws first, in the same order for every format */
    const int kind = (int)below(r, 4);
    int64_t when = 0;
    if (kind == 1) /* days to years ahead, as epoch ms */
        when = t + 86400000LL * (1 + (int64_t)below(r, 3650));
    else if (kind == 2) /* a few hours ahead: more than the default max_future of 1 h */
        when = t + 2 * 3600000LL + (int64_t)below(r, 20 * 3600000ULL);
    else if (kind == 3) /* a clock reset to the epoch: the second */
        when = (int64_t)below(r, 60);
    if (g->c->format != CS_GEN_SEGMENT)
        return skewed_other(g, p, g->c->format, cname, clen, kind, when);
    PUT(p, "{\"type\":\"track\",\"event\":\"product_view\",\"userId\":\"");
    memcpy(p, cname, 16);
    p += clen;
    PUT(p, "\",");
    switch (kind) {
    case 0:
        PUT(p, "\"timestamp\":\"9999-12-31T23:59:59Z\"");
        break;
    case 1:
        PUT(p, "\"ts\":");
        p = putu(p, (uint64_t)when);
        break;
    case 2:
        PUT(p, "\"timestamp\":\"");
        p = put_time(g, p, when, 0);
        *p++ = '"';
        break;
    default:
        PUT(p, "\"timestamp\":\"1970-01-01T00:00:");
        p = put2(p, (int)when);
        PUT(p, "Z\"");
        break;
    }
    PUT(p, ",\"context\":{\"page\":{\"url\":\"https://shop.example/p/1\"}}}");
    return p;
}

/* ---- one partition's stream ------------------------------------------------------------- */

cs_gen_pstream *cs_gen_pstream_new(const cs_gen_plan *pl, int part)
{
    cs_gen_pstream *g = calloc(1, sizeof *g);
    const cs_gen_conf *c = &pl->c;
    g->pl = pl;
    g->c = c;
    g->part = part;
    g->cust = pl->cust[part];
    g->names = pl->names[part];
    g->ncust = pl->ncust[part];
    g->n = pl->n[part];
    /* its own random numbers: the seed and the partition number, nothing else */
    seed(&g->r, c->seed ^ (0xD1B54A32D192ED03ull * (uint64_t)(part + 1)));
    g->first_seen = malloc((g->ncust ? g->ncust : 1) * sizeof *g->first_seen);
    if (c->login_frac > 0)
        g->dev_sent = calloc(g->ncust ? g->ncust : 1, 1);
    for (uint32_t i = 0; i < g->ncust; i++)
        g->first_seen[i] = INT64_MIN;
    g->dpace = g->n ? (double)c->span_ms / (double)g->n : 0;
    if (g->n) { /* key(k) = floor((2k+1) T / 2n): quotient and remainder, advanced per message */
        u128 T = pl->total, den = 2 * (u128)g->n;
        g->key_den = (uint64_t)den;
        g->key_q = (uint64_t)(T / den);
        g->key_r = (uint64_t)(T % den);
        g->key_step_q = (uint64_t)(2 * T / den);
        g->key_step_r = (uint64_t)(2 * T % den);
    }
    g->pace0 = (double)c->start_ms + g->dpace / 2;
    g->clock = INT64_MIN;
    cal_init(&g->q);
    g->buf = malloc(70000);
    for (int i = 0; i < 3; i++)
        g->day_cache_min[i] = INT64_MIN;
    return g;
}

void cs_gen_pstream_destroy(cs_gen_pstream *g)
{
    if (!g)
        return;
    cal_free(&g->q);
    free(g->first_seen);
    free(g->dev_sent);
    free(g->buf);
    free(g);
}

/* The key of customer index i into g->key; returns its length. */
static inline size_t put_key(cs_gen_pstream *g, uint32_t i)
{
    memcpy(g->key, g->names[i], 16);
    return (size_t)(unsigned char)g->key[15];
}

/* A new session at event time t (not in the heap yet). */
static inline gsess new_session(cs_gen_pstream *g, rng *r, int64_t t)
{
    const cs_gen_conf *c = g->c;
    gsess s = {0};
    s.t = t;
    if (c->churn) {
        /* the window of active customer ids at this point of the partition's stream; the
         * partition's customers are in ascending id order, so it is a range of indices that
         * only moves up */
        double x = g->n ? ((double)g->k + 0.5) / (double)g->n : 0;
        uint64_t lo = (uint64_t)(x * c->churn), hi = lo + c->ncustomers;
        while (g->win_lo < g->ncust && g->cust[g->win_lo] < lo)
            g->win_lo++;
        if (g->win_hi < g->win_lo)
            g->win_hi = g->win_lo;
        while (g->win_hi < g->ncust && g->cust[g->win_hi] < hi)
            g->win_hi++;
        uint32_t w = g->win_hi - g->win_lo;
        uint32_t back = (uint32_t)((double)w * zipf_u(unif(r))); /* newest: most active */
        s.cust = w ? g->win_hi - 1 - (back < w ? back : w - 1)
                   : (g->win_lo < g->ncust ? g->win_lo : g->ncust - 1);
    } else if (c->first_pass && g->first_pass_next < g->ncust)
        s.cust = g->first_pass_next++;
    else /* Zipf-like activity: low ids are far more active */
        s.cust = (uint32_t)((double)g->ncust * zipf_u(unif(r)));
    if (s.cust >= g->ncust)
        s.cust = g->ncust - 1;
    s.long_mode = unif(r) < c->long_frac;
    s.remaining = s.long_mode
                      ? (uint16_t)(3 * c->max_duration_ms / c->gap_ms + 2)
                      : (uint16_t)(1 + (int)(-log(1.0 - unif(r)) * (c->mean_events - 1)));
    return s;
}

/* The session is back in the queue with its new time (from_heap: it was the queue's top). */
static inline void requeue(cs_gen_pstream *g, gsess s, int from_heap)
{
    if (from_heap)
        cal_pop(&g->q);
    cal_push(&g->q, s);
}

/* One message. The random-number state is the caller's local copy (r): every write through
 * the char buffers could alias g->r, which would keep it out of registers. */
static inline __attribute__((always_inline)) void gen_one(cs_gen_pstream *g, rng *r,
                                                          cs_gen_msg *m)
{
    const cs_gen_conf *c = g->c;
    /* The pace: sessions are started so that event time follows pace0 + k*dpace. A new session
     * starts at the pace whenever no session has an event due by then; a session event due
     * more than CS_GEN_PACE_SLACK_MS earlier is moved up to that (the customer paused). */
    int64_t pace = (int64_t)(g->pace0 + (double)g->k * g->dpace);
    gsess s;
    int from_heap;
    gsess *top = cal_top(&g->q);
    if (!top || (top->t > pace && g->q.n < MAX_ACTIVE)) {
        s = new_session(g, r, pace > g->clock ? pace : g->clock);
        from_heap = 0;
    } else {
        s = *top; /* stays queued until it is requeued or ends */
        from_heap = 1;
    }
    int64_t clock = s.t;
    if (clock < pace - CS_GEN_PACE_SLACK_MS)
        clock = pace - CS_GEN_PACE_SLACK_MS;
    if (clock < g->clock)
        clock = g->clock;
    g->clock = clock;
    s.t = clock;
    uint32_t gc = g->cust[s.cust];
    double u = unif(r);
    m->payload = g->buf;
    m->part = g->part;
    m->key = g->key;
    m->index = g->k;
    m->key_pos = g->key_q;
    m->invalid = m->late = 0;
    g->k++;
    /* the next message's merge key: floor((2k+1) T / 2n), one step of 2T/2n further */
    g->key_q += g->key_step_q;
    g->key_r += g->key_step_r;
    if (g->key_r >= g->key_den) {
        g->key_r -= g->key_den;
        g->key_q++;
    }
    if (u < c->invalid_frac + c->too_large_frac) {
        m->len = (size_t)(invalid_json(g, r, g->buf, gc, u < c->too_large_frac) - g->buf);
        m->keylen = put_key(g, s.cust);
        m->ts_ms = clock;
        m->invalid = 1;
        requeue(g, s, from_heap); /* the session's next event is still to come */
        return;
    }
    if (u < c->invalid_frac + c->too_large_frac + c->late_frac && g->nrecent) {
        uint32_t lc = g->recent[below(r, g->nrecent < RECENT ? g->nrecent : RECENT)];
        int64_t lt = g->first_seen[lc] - c->gap_ms - c->lateness_ms - 1000 -
                     (int64_t)below(r, 7200000);
        uint32_t lgc = g->cust[lc];
        m->keylen = put_key(g, lc);
        int ev = stage_events[below(r, 2)][below(r, 4)];
        if (c->login_frac > 0)
            id_prepare(g, lgc, lc);
        m->len = (size_t)(event_json(g, r, g->buf, lgc, g->key, m->keylen, lt, ev, 0, &m->ts_ms) -
                          g->buf);
        m->late = 1;
        requeue(g, s, from_heap);
        return;
    }
    m->keylen = put_key(g, s.cust);
    if (c->skew_frac > 0 &&
        u < c->invalid_frac + c->too_large_frac + c->late_frac + c->skew_frac) {
        m->len = (size_t)(skewed_json(g, r, g->buf, g->key, m->keylen, clock) - g->buf);
        m->ts_ms = clock;
        m->invalid = 1;
        requeue(g, s, from_heap);
        return;
    }
    /* one event of session s at event time clock, or a little earlier (out of order) */
    int64_t t = clock;
    uint64_t w = next(r), v = next(r), st = next(r);
    if (u32f(w) < c->ooo_frac)
        t -= (int64_t)b32(w >> 32, (uint64_t)(c->lateness_ms / 2));
    if (g->first_seen[s.cust] == INT64_MIN || t < g->first_seen[s.cust])
        g->first_seen[s.cust] = t;
    int persona = persona_of(gc);
    if (s.nsent > 0 && s.stage < 4 && u32f(v) < advance[persona][s.stage])
        s.stage++; /* progression; drop-off is the session simply ending */
    int ev;
    if (u16f(v >> 32) < 0.12)
        ev = other_events[(v >> 48) & 3];
    else if (s.stage == 3 && ((v >> 50) & 1) == 0)
        ev = service_event[persona];
    else
        ev = stage_events[s.stage][(v >> 51) & 3];
    int with_channel = s.nsent == 0 || u16f(st) < 0.2;
    if (c->login_frac > 0) {
        id_prepare(g, gc, s.cust);
        if (g->dev_sent[s.cust] < 255)
            g->dev_sent[s.cust]++;
    }
    m->len = (size_t)(event_json(g, r, g->buf, gc, g->key, m->keylen, t, ev, with_channel,
                                 &m->ts_ms) -
                      g->buf);
    g->recent[g->nrecent++ & (RECENT - 1)] = s.cust;
    if (s.nsent < 255)
        s.nsent++;
    if (--s.remaining > 0) {
        int64_t step;
        if (s.long_mode)
            step = c->gap_ms / 3;
        else if (u16f(st >> 16) < 0.08)
            step = c->gap_ms + (int64_t)b32(st >> 32, (uint64_t)c->gap_ms); /* a new session */
        else
            step = 5000 + (int64_t)b32(st >> 32, (uint64_t)(c->gap_ms / 4));
        s.t = clock + step;
        requeue(g, s, from_heap);
    } else if (from_heap) {
        cal_pop(&g->q); /* the session ends */
    }
}

int cs_gen_pstream_next(cs_gen_pstream *g, cs_gen_msg *m)
{
    if (g->k >= g->n)
        return 0;
    rng r = g->r;
    gen_one(g, &r, m);
    g->r = r;
    return 1;
}

uint64_t cs_gen_pstream_skip(cs_gen_pstream *g, uint64_t n)
{
    cs_gen_msg m;
    uint64_t i = 0;
    while (i < n && cs_gen_pstream_next(g, &m))
        i++;
    return i;
}

/* ---- the whole stream ------------------------------------------------------------------- */

typedef struct mitem {
    uint64_t key;
    int p;
} mitem;

struct cs_gen {
    cs_gen_plan *pl;
    cs_gen_pstream **ps;
    mitem *h; /* min-heap on (key, p) of each unfinished partition's next message */
    int n;
};

static int mless(mitem a, mitem b) { return a.key < b.key || (a.key == b.key && a.p < b.p); }

static void msift(cs_gen *g, int i)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < g->n && mless(g->h[l], g->h[m]))
            m = l;
        if (r < g->n && mless(g->h[r], g->h[m]))
            m = r;
        if (m == i)
            return;
        mitem t = g->h[i];
        g->h[i] = g->h[m];
        g->h[m] = t;
        i = m;
    }
}

cs_gen *cs_gen_new(const cs_gen_conf *c)
{
    cs_gen_plan *pl = cs_gen_plan_new(c);
    if (!pl)
        return NULL;
    cs_gen *g = calloc(1, sizeof *g);
    g->pl = pl;
    g->ps = calloc((size_t)c->nparts, sizeof *g->ps);
    g->h = calloc((size_t)c->nparts, sizeof *g->h);
    for (int p = 0; p < c->nparts; p++) {
        g->ps[p] = cs_gen_pstream_new(pl, p);
        if (pl->n[p])
            g->h[g->n++] = (mitem){cs_gen_plan_key(pl, p, 0), p};
    }
    for (int i = g->n / 2; i >= 0; i--)
        msift(g, i);
    return g;
}

void cs_gen_destroy(cs_gen *g)
{
    if (!g)
        return;
    for (int p = 0; p < g->pl->c.nparts; p++)
        cs_gen_pstream_destroy(g->ps[p]);
    free(g->ps);
    free(g->h);
    cs_gen_plan_free(g->pl);
    free(g);
}

int cs_gen_next(cs_gen *g, cs_gen_msg *m)
{
    if (!g->n)
        return 0;
    int p = g->h[0].p;
    cs_gen_pstream *s = g->ps[p];
    cs_gen_pstream_next(s, m);
    if (s->k < s->n)
        g->h[0].key = cs_gen_plan_key(g->pl, p, s->k);
    else
        g->h[0] = g->h[--g->n];
    msift(g, 0);
    return 1;
}

/* ---- in memory -------------------------------------------------------------------------- */

cs_gen_out *cs_gen_run(const cs_gen_conf *c)
{
    return cs_gen_run_padded(c, 0);
}

cs_gen_out *cs_gen_run_padded(const cs_gen_conf *c, size_t pad)
{
    cs_gen_out *o = calloc(1, sizeof *o);
    o->nparts = c->nparts;
    o->pad = pad;
    o->parts = calloc((size_t)c->nparts, sizeof *o->parts);
    cs_gen_plan *pl = cs_gen_plan_new(c);
    if (!pl)
        return o;
    /* partition after partition, each partition's messages contiguous as in a Kafka fetch
     * response (interleaving would make every message a cache miss the real consumer does not
     * pay); payloads are arena offsets until the arena stops moving */
    o->arena_cap = 1 << 20;
    o->arena = malloc(o->arena_cap);
    for (int p = 0; p < c->nparts; p++) {
        cs_gen_part *gp = &o->parts[p];
        gp->cap = pl->n[p] ? pl->n[p] : 1;
        gp->msgs = malloc(gp->cap * sizeof *gp->msgs);
        cs_gen_pstream *s = cs_gen_pstream_new(pl, p);
        cs_gen_msg m;
        while (cs_gen_pstream_next(s, &m)) {
            if (o->arena_len + m.len + pad > o->arena_cap) {
                while (o->arena_len + m.len + pad > o->arena_cap)
                    o->arena_cap *= 2;
                o->arena = realloc(o->arena, o->arena_cap);
            }
            memcpy(o->arena + o->arena_len, m.payload, m.len);
            memset(o->arena + o->arena_len + m.len, 0, pad);
            gp->msgs[gp->n] = (cs_msg){(const char *)(uintptr_t)o->arena_len, m.len, m.ts_ms,
                                       (int64_t)gp->n};
            gp->n++;
            o->arena_len += m.len + pad;
            o->nmsgs++;
            o->ninvalid += (uint64_t)m.invalid;
            o->nlate += (uint64_t)m.late;
        }
        cs_gen_pstream_destroy(s);
    }
    for (int p = 0; p < c->nparts; p++)
        for (size_t i = 0; i < o->parts[p].n; i++)
            o->parts[p].msgs[i].payload = o->arena + (uintptr_t)o->parts[p].msgs[i].payload;
    cs_gen_plan_free(pl);
    return o;
}

void cs_gen_free(cs_gen_out *o)
{
    if (!o)
        return;
    for (int p = 0; p < o->nparts; p++)
        free(o->parts[p].msgs);
    free(o->parts);
    free(o->arena);
    free(o);
}

const char *cs_gen_expect_reason(int format, const char *reason)
{
    if (format == CS_GEN_SNOWPLOW && (!strcmp(reason, "not_json") ||
                                      !strcmp(reason, "not_object") || !strcmp(reason, "too_deep")))
        return "not_tsv";
    return reason;
}
