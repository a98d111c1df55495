/* gen.c — see gen.h. The JSON is written by hand (no printf): the load generator must reach
 * more than a million events a second. */
#include "gen.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

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
static inline uint64_t below(rng *r, uint64_t n) { return n ? next(r) % n : 0; }

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

enum { YOUNG, FAMILY, SENIOR };
static const char *const persona_name[3] = {"young", "family", "senior"};
/* first touch channel mix per persona (8 slots each) */
static const char *const channels[3][8] = {
    {"social", "social", "social", "social", "display", "display", "email", "search"},
    {"search", "search", "display", "display", "email", "email", "direct", "social"},
    {"print", "print", "print", "search", "search", "search", "direct", "email"},
};
/* probability of moving on to the next stage at an event, per persona and current stage */
static const double advance[3][5] = {
    {0.50, 0.22, 0.35, 0.30, 0},
    {0.45, 0.30, 0.40, 0.35, 0},
    {0.40, 0.35, 0.45, 0.40, 0},
};
static const char *const stage_events[5][4] = {
    {"page_view", "ad_click", "page", "page_view"},
    {"product_view", "review_read", "compare", "add_to_wishlist"},
    {"checkout_started", "payment_submitted", "order_completed", "order_completed"},
    {"return_requested", "order_tracked", "ticket_opened", "support_chat"},
    {"loyalty_signup", "review_written", "referral_sent", "repeat_purchase"},
};
/* service: young customers chat, seniors phone the service line (a ticket), families both */
static const char *const service_event[3] = {"support_chat", "order_tracked", "ticket_opened"};
static const char *const service_channel[3] = {"live_chat", "web", "phone"};
static const char *const other_events[4] = {"identify", "scroll", "video_play",
                                            "newsletter_open"};

typedef struct gsess {
    int64_t t; /* next event time */
    uint32_t cust;
    uint16_t remaining;
    uint8_t stage;
    uint8_t long_mode;
    uint8_t nsent;
} gsess;

typedef struct heap {
    gsess *v;
    size_t n, cap;
} heap;

static void hpush(heap *h, gsess s)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 1024;
        h->v = realloc(h->v, h->cap * sizeof *h->v);
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h->v[p].t <= s.t)
            break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = s;
}

static gsess hpop(heap *h)
{
    gsess top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const gsess *mv = &last;
        if (l < h->n && h->v[l].t < mv->t)
            m = l, mv = &h->v[l];
        if (r < h->n && h->v[r].t < mv->t)
            m = r, mv = &h->v[r];
        if (m == i)
            break;
        h->v[i] = h->v[m];
        i = m;
    }
    if (h->n)
        h->v[i] = last;
    return top;
}

struct cs_gen {
    cs_gen_conf c;
    rng r;
    int64_t *first_seen;
    heap h;
    double inter, next_arrival;
    uint32_t first_pass_next;
    uint32_t recent[4096];
    uint32_t nrecent;
    uint64_t emitted;
    char *buf;     /* the current message */
    char key[32];
    int64_t day_cache_min[3]; /* per time style: minute of the cached "YYYY-MM-DDTHH:MM:" */
    char day_cache[3][40];
};

/* ---- writing ---------------------------------------------------------------------------- */

typedef struct wb {
    char *p;
} wb;
#define PUT(w, lit) (memcpy((w)->p, (lit), sizeof(lit) - 1), (w)->p += sizeof(lit) - 1)
static inline void puts_(wb *w, const char *s)
{
    size_t n = strlen(s);
    memcpy(w->p, s, n);
    w->p += n;
}
static inline void putu(wb *w, uint64_t v)
{
    char t[24];
    int n = 0;
    do {
        t[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *w->p++ = t[--n];
}
static inline void put2(wb *w, int v)
{
    *w->p++ = (char)('0' + v / 10);
    *w->p++ = (char)('0' + v % 10);
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
static void put_time(cs_gen *g, wb *w, int64_t t, int style)
{
    static const int64_t shift[3] = {0, 2 * 3600000, -(5 * 3600000 + 30 * 60000)};
    static const char *const zone[3] = {"Z", "+02:00", "-05:30"};
    int64_t lt = t + shift[style];
    int64_t min = lt >= 0 ? lt / 60000 : (lt - 59999) / 60000;
    int64_t ms = lt - min * 60000;
    if (min != g->day_cache_min[style]) {
        int64_t days = min >= 0 ? min / 1440 : (min - 1439) / 1440;
        int mod = (int)(min - days * 1440);
        int y, mo, d;
        civil(days, &y, &mo, &d);
        snprintf(g->day_cache[style], sizeof g->day_cache[style], "%04d-%02d-%02dT%02d:%02d:", y,
                 mo, d, mod / 60, mod % 60);
        g->day_cache_min[style] = min;
    }
    memcpy(w->p, g->day_cache[style], 17);
    w->p += 17;
    put2(w, (int)(ms / 1000));
    *w->p++ = '.';
    *w->p++ = (char)('0' + ms % 1000 / 100);
    put2(w, (int)(ms % 100));
    puts_(w, zone[style]);
}

static size_t custname(uint32_t c, char *buf)
{
    /* a fixed share of customers have integer ids */
    wb w = {buf};
    if ((c % 7) == 3) {
        putu(&w, 100000000u + c);
    } else {
        *w.p++ = 'c';
        char t[8];
        uint32_t v = c;
        for (int i = 6; i >= 0; i--, v /= 10)
            t[i] = (char)('0' + v % 10);
        memcpy(w.p, t, 7);
        w.p += 7;
    }
    *w.p = 0;
    return (size_t)(w.p - buf);
}

static inline int persona_of(uint32_t cust) { return (int)(((cust * 2654435761u) >> 16) % 3); }

/* One valid event. Returns its length. */
static size_t event_json(cs_gen *g, char *out, uint32_t cust, int64_t t, const char *ev,
                         int with_channel, int64_t *kts)
{
    rng *r = &g->r;
    char cname[16];
    size_t clen = custname(cust, cname);
    int int_id = (cust % 7) == 3;
    int persona = persona_of(cust);
    wb w = {out};
    int is_page = strcmp(ev, "page") == 0;
    if (is_page) {
        PUT(&w, "{\"type\":\"page\",");
    } else {
        PUT(&w, "{\"type\":\"track\",\"event\":\"");
        puts_(&w, ev);
        PUT(&w, "\",");
    }
    int idstyle = (int)below(r, 20);
    if (int_id) {
        PUT(&w, "\"userId\":");
        memcpy(w.p, cname, clen);
        w.p += clen;
        *w.p++ = ',';
    } else if (idstyle == 0) {
        PUT(&w, "\"anonymousId\":\"");
        memcpy(w.p, cname, clen);
        w.p += clen;
        PUT(&w, "\",");
    } else if (idstyle == 1) { /* both: userId wins */
        PUT(&w, "\"anonymousId\":\"anon-");
        putu(&w, cust);
        PUT(&w, "\",\"userId\":\"");
        memcpy(w.p, cname, clen);
        w.p += clen;
        PUT(&w, "\",");
    } else if (idstyle == 2) { /* an empty userId: the next path wins */
        PUT(&w, "\"user_id\":\"");
        memcpy(w.p, cname, clen);
        w.p += clen;
        PUT(&w, "\",\"userId\":\"\",");
    } else {
        PUT(&w, "\"userId\":\"");
        memcpy(w.p, cname, clen);
        w.p += clen;
        PUT(&w, "\",");
    }
    int tstyle = (int)below(r, 10);
    *kts = t;
    if (tstyle < 6) {
        PUT(&w, "\"timestamp\":\"");
        put_time(g, &w, t, 0);
        PUT(&w, "\",");
        *kts = t + 1500; /* producer time differs from event time */
    } else if (tstyle == 6) {
        PUT(&w, "\"timestamp\":\"");
        put_time(g, &w, t, 1);
        PUT(&w, "\",");
        *kts = t + 800;
    } else if (tstyle == 7) {
        PUT(&w, "\"originalTimestamp\":\"");
        put_time(g, &w, t, 2);
        PUT(&w, "\",");
        *kts = t + 100;
    } else if (tstyle == 8) {
        PUT(&w, "\"ts\":");
        putu(&w, (uint64_t)t);
        *w.p++ = ',';
        *kts = t + 20;
    } /* else: no time field; the Kafka timestamp is the event time */
    const char *ch = channels[persona][below(r, 8)];
    unsigned sku = (unsigned)below(r, 5000);
    int reviews = below(r, 12) == 0;
    PUT(&w, "\"context\":{\"library\":{\"name\":\"analytics.js\",\"version\":\"4.1.0\"},"
            "\"page\":{\"url\":\"https://shop.example/p/");
    putu(&w, sku);
    if (reviews)
        PUT(&w, "/reviews/all");
    PUT(&w, "\",\"title\":\"Item \\u00e9 ");
    putu(&w, sku);
    PUT(&w, "\"}");
    int ch_where = with_channel ? (int)below(r, 2) : 2;
    if (ch_where == 0) {
        PUT(&w, ",\"campaign\":{\"medium\":\"");
        puts_(&w, ch);
        PUT(&w, "\",\"name\":\"fall\"}");
    }
    PUT(&w, "},\"properties\":{\"sku\":\"");
    putu(&w, sku);
    PUT(&w, "\",\"price\":");
    putu(&w, sku % 300);
    PUT(&w, ".99");
    if (below(r, 10) < 9) {
        PUT(&w, ",\"persona\":\"");
        puts_(&w, persona_name[persona]);
        *w.p++ = '"';
    }
    if (ev == service_event[persona] || strcmp(ev, "ticket_opened") == 0 ||
        strcmp(ev, "support_chat") == 0) {
        PUT(&w, ",\"service_channel\":\"");
        puts_(&w, service_channel[persona]);
        *w.p++ = '"';
    }
    *w.p++ = '}';
    if (ch_where == 1) {
        PUT(&w, ",\"channel\":\"");
        puts_(&w, ch);
        *w.p++ = '"';
    }
    PUT(&w, ",\"messageId\":\"");
    static const char hex[] = "0123456789abcdef";
    uint64_t id = next(r);
    for (int i = 0; i < 16; i++, id >>= 4)
        *w.p++ = hex[id & 15];
    PUT(&w, "\"}");
    return (size_t)(w.p - out);
}

static size_t invalid_json(cs_gen *g, char *out, uint32_t cust, int too_large)
{
    static const char *const kinds[8][2] = {
        {"{\"event\":\"page_view\",\"userId\":\"c", "\",\"timestamp\":\"2026-11-01T10:00:00Z\""},
        {"[\"c", "\", 1, 2]"},
        {"{\"event\":\"page_view\",\"timestamp\":\"2026-11-01T10:00:00Z\",\"x\":\"c", "\"}"},
        {"{\"userId\":\"c", "\",\"properties\":{\"event\":\"nested-is-not-event\"}}"},
        {"{\"event\":\"page_view\",\"userId\":\"c", "\",\"timestamp\":\"yesterday\"}"},
        {"{\"event\":\"page_view\",\"userId\":\"c", "\",\"ts\":\"2026-13-01T10:00:00Z\"}"},
        {"not json at all c", ""},
        {"{\"event\":\"page_view\",\"userId\":\"c", "\",\"timestamp\":\"2026-11-01T10:00:00Z\"}}"},
    };
    wb w = {out};
    if (too_large) {
        PUT(&w, "{\"event\":\"page_view\",\"userId\":\"c");
        putu(&w, cust);
        PUT(&w, "\",\"pad\":\"");
        memset(w.p, 'x', 66000);
        w.p += 66000;
        PUT(&w, "\"}");
    } else {
        int k = (int)below(&g->r, 9);
        if (k == 8) { /* too_deep: 40 nested arrays inside an object */
            PUT(&w, "{\"userId\":\"c");
            putu(&w, cust);
            PUT(&w, "\",\"event\":\"x\",\"deep\":");
            memset(w.p, '[', 40);
            w.p += 40;
            memset(w.p, ']', 40);
            w.p += 40;
            *w.p++ = '}';
        } else {
            puts_(&w, kinds[k][0]);
            putu(&w, cust);
            puts_(&w, kinds[k][1]);
        }
    }
    return (size_t)(w.p - out);
}

/* A device with a wrong clock (issue 16): a valid event of customer `cust` whose time is far
 * ahead of its message timestamp (one of 3 styles), or before 2000 (a clock reset to the
 * epoch). Never late, never counted: future_time or bad_time under any max_future >= 0 ...
 * except max_future 0 (off), where the future ones are valid and poison the watermark. */
static size_t skewed_json(cs_gen *g, char *out, uint32_t cust, int64_t t)
{
    rng *r = &g->r;
    char cname[16];
    size_t clen = custname(cust, cname);
    wb w = {out};
    PUT(&w, "{\"type\":\"track\",\"event\":\"product_view\",\"userId\":\"");
    memcpy(w.p, cname, clen);
    w.p += clen;
    PUT(&w, "\",");
    switch ((int)below(r, 4)) {
    case 0:
        PUT(&w, "\"timestamp\":\"9999-12-31T23:59:59Z\"");
        break;
    case 1: /* days to years ahead, as epoch ms */
        PUT(&w, "\"ts\":");
        putu(&w, (uint64_t)(t + 86400000LL * (1 + (int64_t)below(r, 3650))));
        break;
    case 2: /* a few hours ahead: more than the default max_future of 1 h */
        PUT(&w, "\"timestamp\":\"");
        put_time(g, &w, t + 2 * 3600000LL + (int64_t)below(r, 20 * 3600000ULL), 0);
        *w.p++ = '"';
        break;
    default: /* a clock reset to the epoch */
        PUT(&w, "\"timestamp\":\"1970-01-01T00:00:");
        put2(&w, (int)below(r, 60));
        PUT(&w, "Z\"");
        break;
    }
    PUT(&w, ",\"context\":{\"page\":{\"url\":\"https://shop.example/p/1\"}}}");
    return (size_t)(w.p - out);
}

/* ---- the stream ------------------------------------------------------------------------- */

cs_gen *cs_gen_new(const cs_gen_conf *c)
{
    cs_gen *g = calloc(1, sizeof *g);
    g->c = *c;
    seed(&g->r, c->seed);
    g->first_seen = malloc(c->ncustomers * sizeof *g->first_seen);
    for (uint32_t i = 0; i < c->ncustomers; i++)
        g->first_seen[i] = INT64_MIN;
    double sessions = (double)c->nevents / c->mean_events;
    g->inter = (double)c->span_ms / (sessions > 1 ? sessions : 1);
    g->next_arrival = (double)c->start_ms;
    g->buf = malloc(70000);
    for (int i = 0; i < 3; i++)
        g->day_cache_min[i] = INT64_MIN;
    return g;
}

void cs_gen_destroy(cs_gen *g)
{
    if (!g)
        return;
    free(g->h.v);
    free(g->first_seen);
    free(g->buf);
    free(g);
}

int cs_gen_next(cs_gen *g, cs_gen_msg *m)
{
    const cs_gen_conf *c = &g->c;
    rng *r = &g->r;
    if (g->emitted >= c->nevents)
        return 0;
    for (;;) {
        if (g->h.n == 0 || (int64_t)g->next_arrival < g->h.v[0].t) {
            gsess s = {0};
            s.t = (int64_t)g->next_arrival;
            g->next_arrival += -log(1.0 - unif(r)) * g->inter;
            if (c->first_pass && g->first_pass_next < c->ncustomers)
                s.cust = g->first_pass_next++;
            else /* Zipf-like activity: low ids are far more active */
                s.cust = (uint32_t)((double)c->ncustomers * pow(unif(r), 2.2));
            if (s.cust >= c->ncustomers)
                s.cust = c->ncustomers - 1;
            s.long_mode = unif(r) < c->long_frac;
            s.remaining = s.long_mode
                              ? (uint16_t)(3 * c->max_duration_ms / c->gap_ms + 2)
                              : (uint16_t)(1 + (int)(-log(1.0 - unif(r)) * (c->mean_events - 1)));
            hpush(&g->h, s);
            continue;
        }
        gsess s = hpop(&g->h);
        int64_t clock = s.t;
        double u = unif(r);
        memset(m, 0, sizeof *m);
        m->payload = g->buf;
        if (u < c->invalid_frac + c->too_large_frac) {
            m->len = invalid_json(g, g->buf, s.cust, u < c->too_large_frac);
            m->keylen = custname(s.cust, g->key);
            m->key = g->key;
            m->part = (int)below(r, (uint64_t)c->nparts); /* invalid ones land anywhere */
            m->ts_ms = clock;
            m->invalid = 1;
            hpush(&g->h, s); /* the session's next event is still to come */
            g->emitted++;
            return 1;
        }
        if (u < c->invalid_frac + c->too_large_frac + c->late_frac && g->nrecent) {
            uint32_t lc = g->recent[below(r, g->nrecent < 4096 ? g->nrecent : 4096)];
            int64_t lt = g->first_seen[lc] - c->gap_ms - c->lateness_ms - 1000 -
                         (int64_t)below(r, 7200000);
            m->len = event_json(g, g->buf, lc, lt, stage_events[below(r, 2)][below(r, 4)], 0,
                                &m->ts_ms);
            m->keylen = custname(lc, g->key);
            m->key = g->key;
            m->part = cs_gen_partition(g->key, m->keylen, c->nparts);
            m->late = 1;
            hpush(&g->h, s);
            g->emitted++;
            return 1;
        }
        if (c->skew_frac > 0 &&
            u < c->invalid_frac + c->too_large_frac + c->late_frac + c->skew_frac) {
            m->len = skewed_json(g, g->buf, s.cust, clock);
            m->keylen = custname(s.cust, g->key);
            m->key = g->key;
            m->part = cs_gen_partition(g->key, m->keylen, c->nparts);
            m->ts_ms = clock;
            m->invalid = 1;
            hpush(&g->h, s);
            g->emitted++;
            return 1;
        }
        /* one event of session s at event time clock, or a little earlier (out of order) */
        int64_t t = clock;
        if (unif(r) < c->ooo_frac)
            t -= (int64_t)below(r, (uint64_t)(c->lateness_ms / 2));
        if (g->first_seen[s.cust] == INT64_MIN || t < g->first_seen[s.cust])
            g->first_seen[s.cust] = t;
        int persona = persona_of(s.cust);
        if (s.nsent > 0 && s.stage < 4 && unif(r) < advance[persona][s.stage])
            s.stage++; /* progression; drop-off is the session simply ending */
        const char *ev;
        if (unif(r) < 0.12)
            ev = other_events[below(r, 4)];
        else if (s.stage == 3 && below(r, 2) == 0)
            ev = service_event[persona];
        else
            ev = stage_events[s.stage][below(r, 4)];
        m->len = event_json(g, g->buf, s.cust, t, ev, s.nsent == 0 || unif(r) < 0.2, &m->ts_ms);
        m->keylen = custname(s.cust, g->key);
        m->key = g->key;
        m->part = cs_gen_partition(g->key, m->keylen, c->nparts);
        g->recent[g->nrecent++ & 4095] = s.cust;
        s.nsent++;
        if (--s.remaining > 0) {
            int64_t step;
            if (s.long_mode)
                step = c->gap_ms / 3;
            else if (unif(r) < 0.08)
                step = c->gap_ms + (int64_t)below(r, (uint64_t)c->gap_ms); /* a new session */
            else
                step = 5000 + (int64_t)below(r, (uint64_t)(c->gap_ms / 4));
            s.t = clock + step;
            hpush(&g->h, s);
        }
        g->emitted++;
        return 1;
    }
}

/* ---- in memory -------------------------------------------------------------------------- */

cs_gen_out *cs_gen_run(const cs_gen_conf *c)
{
    cs_gen_out *o = calloc(1, sizeof *o);
    o->nparts = c->nparts;
    o->parts = calloc((size_t)c->nparts, sizeof *o->parts);
    cs_gen *g = cs_gen_new(c);
    cs_gen_msg m;
    /* first pass: sizes per partition, so that each partition's messages are contiguous as in
     * a Kafka fetch response (interleaving would make every message a cache miss the real
     * consumer does not pay) */
    size_t *bytes = calloc((size_t)c->nparts, sizeof *bytes);
    while (cs_gen_next(g, &m)) {
        cs_gen_part *p = &o->parts[m.part];
        if (p->n == p->cap) {
            p->cap = p->cap ? p->cap * 2 : 4096;
            p->msgs = realloc(p->msgs, p->cap * sizeof *p->msgs);
        }
        p->msgs[p->n++] = (cs_msg){NULL, m.len, m.ts_ms, 0};
        bytes[m.part] += m.len;
        o->nmsgs++;
        o->ninvalid += (uint64_t)m.invalid;
        o->nlate += (uint64_t)m.late;
    }
    cs_gen_destroy(g);
    size_t total = 0, *at = calloc((size_t)c->nparts, sizeof *at);
    for (int p = 0; p < c->nparts; p++) {
        at[p] = total;
        total += bytes[p];
    }
    o->arena = malloc(total ? total : 1);
    o->arena_len = o->arena_cap = total;
    /* second pass: the same stream (same seed), copied into place */
    g = cs_gen_new(c);
    size_t *k = calloc((size_t)c->nparts, sizeof *k);
    while (cs_gen_next(g, &m)) {
        cs_msg *msg = &o->parts[m.part].msgs[k[m.part]++];
        memcpy(o->arena + at[m.part], m.payload, m.len);
        msg->payload = o->arena + at[m.part];
        msg->offset = (int64_t)k[m.part] - 1;
        at[m.part] += m.len;
    }
    cs_gen_destroy(g);
    free(bytes);
    free(at);
    free(k);
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
