#include "gen.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

typedef struct rng {
    uint64_t s[4];
} rng;

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
static uint64_t next(rng *r)
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
static double unif(rng *r) { return (double)(next(r) >> 11) * 0x1.0p-53; }
static uint64_t below(rng *r, uint64_t n) { return n ? next(r) % n : 0; }

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

/* ---- the funnel ---------------------------------------------------------------------------- */

static const char *const stage_events[5][4] = {
    {"page_view", "ad_click", "page", "page_view"},
    {"product_view", "review_read", "compare", "add_to_wishlist"},
    {"checkout_started", "payment_submitted", "order_completed", "order_completed"},
    {"support_chat", "ticket_opened", "return_requested", "order_tracked"},
    {"loyalty_signup", "review_written", "referral_sent", "repeat_purchase"},
};
static const char *const other_events[] = {"identify", "scroll", "video_play", "newsletter_open"};
static const char *const personas[] = {"young", "family", "senior"};
static const char *const channels[3][4] = {
    {"social", "social", "display", "email"},
    {"search", "display", "email", "direct"},
    {"print", "search", "search", "direct"},
};

typedef struct gsess {
    int64_t t;          /* next event time */
    uint32_t cust;
    uint16_t remaining;
    uint8_t stage;      /* furthest stage walked so far */
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

/* ---- output -------------------------------------------------------------------------------- */

static char *reserve(cs_gen_out *o, size_t n)
{
    if (o->arena_len + n > o->arena_cap) {
        size_t nc = o->arena_cap ? o->arena_cap * 2 : (1u << 24);
        while (nc < o->arena_len + n)
            nc *= 2;
        o->arena = realloc(o->arena, nc);
        o->arena_cap = nc;
    }
    return o->arena + o->arena_len;
}

static void emit(cs_gen_out *o, int part, size_t off, size_t len, int64_t kafka_ts)
{
    cs_gen_part *p = &o->parts[part];
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 4096;
        p->msgs = realloc(p->msgs, p->cap * sizeof *p->msgs);
    }
    /* payload holds the arena offset until the arena stops moving (fixed up at the end) */
    p->msgs[p->n] = (cs_msg){(const char *)(uintptr_t)off, len, kafka_ts, (int64_t)p->n};
    p->n++;
    o->nmsgs++;
}

static void custname(uint32_t c, int int_id, char *buf, size_t cap)
{
    if (int_id)
        snprintf(buf, cap, "%u", 100000000u + c);
    else
        snprintf(buf, cap, "c%07u", c);
}

static int fmt_time(char *b, size_t cap, int64_t t, int style)
{
    int64_t shift = style == 1 ? 2 * 3600000 : style == 2 ? -(5 * 3600000 + 30 * 60000) : 0;
    int64_t lt = t + shift;
    time_t secs = (time_t)(lt >= 0 ? lt / 1000 : (lt - 999) / 1000);
    int ms = (int)(lt - (int64_t)secs * 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    const char *zone = style == 1 ? "+02:00" : style == 2 ? "-05:30" : "Z";
    return snprintf(b, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03d%s", tm.tm_year + 1900,
                    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms, zone);
}

static void event_json(cs_gen_out *o, rng *r, uint32_t cust, int64_t t, const gsess *s,
                       const char *ev, int with_channel, int *part_out, int64_t *kts_out)
{
    char cname[32], tbuf[64];
    int int_id = (cust % 7) == 3; /* a fixed share of customers have integer ids */
    custname(cust, int_id, cname, sizeof cname);
    int persona = (int)((cust * 2654435761u) >> 16) % 3;
    char *b = reserve(o, 1024);
    int n = 0;
    const size_t cap = 1024;
    int idstyle = (int)below(r, 20);
    int is_page = strcmp(ev, "page") == 0;
    n += snprintf(b + n, cap - (size_t)n, "{\"type\":\"%s\",", is_page ? "page" : "track");
    if (!is_page)
        n += snprintf(b + n, cap - (size_t)n, "\"event\":\"%s\",", ev);
    /* customer paths: userId mostly, anonymousId alone sometimes, both (userId wins) */
    if (int_id)
        n += snprintf(b + n, cap - (size_t)n, "\"userId\":%s,", cname);
    else if (idstyle == 0)
        n += snprintf(b + n, cap - (size_t)n, "\"anonymousId\":\"%s\",", cname);
    else if (idstyle == 1)
        n += snprintf(b + n, cap - (size_t)n, "\"anonymousId\":\"anon-%u\",\"userId\":\"%s\",",
                      cust, cname);
    else if (idstyle == 2)
        n += snprintf(b + n, cap - (size_t)n, "\"user_id\":\"%s\",\"userId\":\"\",", cname);
    else
        n += snprintf(b + n, cap - (size_t)n, "\"userId\":\"%s\",", cname);
    int tstyle = (int)below(r, 10);
    int64_t kts = t;
    if (tstyle < 6) {
        fmt_time(tbuf, sizeof tbuf, t, 0);
        n += snprintf(b + n, cap - (size_t)n, "\"timestamp\":\"%s\",", tbuf);
        kts = t + 1500; /* producer time differs from event time */
    } else if (tstyle == 6) {
        fmt_time(tbuf, sizeof tbuf, t, 1);
        n += snprintf(b + n, cap - (size_t)n, "\"timestamp\":\"%s\",", tbuf);
        kts = t + 800;
    } else if (tstyle == 7) {
        fmt_time(tbuf, sizeof tbuf, t, 2);
        n += snprintf(b + n, cap - (size_t)n, "\"originalTimestamp\":\"%s\",", tbuf);
        kts = t + 100;
    } else if (tstyle == 8) {
        n += snprintf(b + n, cap - (size_t)n, "\"ts\":%lld,", (long long)t);
        kts = t + 20;
    } /* else: no time field, the Kafka timestamp is the event time */
    const char *ch = channels[persona][below(r, 4)];
    unsigned sku = (unsigned)below(r, 5000);
    int reviews = below(r, 12) == 0;
    n += snprintf(b + n, cap - (size_t)n,
                  "\"context\":{\"library\":{\"name\":\"analytics.js\",\"version\":\"4.1.0\"},"
                  "\"page\":{\"url\":\"https://shop.example/p/%u%s\",\"title\":\"Item \\u00e9 %u\"}",
                  sku, reviews ? "/reviews/all" : "", sku);
    if (with_channel && below(r, 2) == 0)
        n += snprintf(b + n, cap - (size_t)n, ",\"campaign\":{\"medium\":\"%s\",\"name\":\"fall\"}",
                      ch);
    n += snprintf(b + n, cap - (size_t)n, "},\"properties\":{\"sku\":\"%u\",\"price\":%u.99",
                  sku, sku % 300);
    if (below(r, 10) < 9)
        n += snprintf(b + n, cap - (size_t)n, ",\"persona\":\"%s\"", personas[persona]);
    n += snprintf(b + n, cap - (size_t)n, "}");
    if (with_channel && below(r, 2) == 0)
        n += snprintf(b + n, cap - (size_t)n, ",\"channel\":\"%s\"", ch);
    n += snprintf(b + n, cap - (size_t)n, ",\"messageId\":\"%016llx\"}",
                  (unsigned long long)next(r));
    size_t off = o->arena_len;
    o->arena_len += (size_t)n;
    int part = cs_gen_partition(cname, strlen(cname), o->nparts);
    emit(o, part, off, (size_t)n, kts);
    *part_out = part;
    *kts_out = kts;
    (void)s;
}

static void invalid_json(cs_gen_out *o, rng *r, uint32_t cust, int64_t t, int part,
                         int too_large)
{
    static const char *const kinds[] = {
        "{\"event\":\"page_view\",\"userId\":\"c%u\",\"timestamp\":\"2026-11-01T10:00:00Z\"",
        "[\"c%u\", 1, 2]",
        "{\"event\":\"page_view\",\"timestamp\":\"2026-11-01T10:00:00Z\",\"x\":\"c%u\"}",
        "{\"userId\":\"c%u\",\"properties\":{\"event\":\"nested-is-not-event\"}}",
        "{\"event\":\"page_view\",\"userId\":\"c%u\",\"timestamp\":\"yesterday\"}",
        "{\"event\":\"page_view\",\"userId\":\"c%u\",\"ts\":\"2026-13-01T10:00:00Z\"}",
        "not json at all c%u",
        "{\"event\":\"page_view\",\"userId\":\"c%u\",\"timestamp\":\"2026-11-01T10:00:00Z\"}}",
    };
    char *b = reserve(o, too_large ? 70000 : 1024);
    int n;
    if (too_large) {
        n = snprintf(b, 100, "{\"event\":\"page_view\",\"userId\":\"c%u\",\"pad\":\"", cust);
        memset(b + n, 'x', 66000);
        n += 66000;
        n += snprintf(b + n, 10, "\"}");
    } else {
        int k = (int)below(r, 9);
        if (k == 8) { /* too_deep: 40 nested arrays inside an object */
            n = snprintf(b, 100, "{\"userId\":\"c%u\",\"event\":\"x\",\"deep\":", cust);
            for (int i = 0; i < 40; i++)
                b[n++] = '[';
            for (int i = 0; i < 40; i++)
                b[n++] = ']';
            b[n++] = '}';
        } else {
            n = snprintf(b, 1024, kinds[k], cust);
        }
    }
    size_t off = o->arena_len;
    o->arena_len += (size_t)n;
    emit(o, part, off, (size_t)n, t);
    o->ninvalid++;
}

cs_gen_out *cs_gen_run(const cs_gen_conf *c)
{
    cs_gen_out *o = calloc(1, sizeof *o);
    o->nparts = c->nparts;
    o->parts = calloc((size_t)c->nparts, sizeof *o->parts);
    rng r;
    seed(&r, c->seed);
    int64_t *first_seen = malloc(c->ncustomers * sizeof *first_seen);
    int8_t *cpart = malloc(c->ncustomers);
    for (uint32_t i = 0; i < c->ncustomers; i++)
        first_seen[i] = INT64_MIN;
    heap h = {0};
    double sessions = (double)c->nevents / c->mean_events;
    double inter = (double)c->span_ms / (sessions > 1 ? sessions : 1);
    int64_t clock = c->start_ms;
    double next_arrival = (double)c->start_ms;
    uint32_t first_pass_next = 0;
    uint32_t *recent = calloc(4096, sizeof *recent);
    uint32_t nrecent = 0;
    while (o->nmsgs < c->nevents) {
        if (h.n == 0 || (int64_t)next_arrival < h.v[0].t) {
            gsess s = {0};
            s.t = (int64_t)next_arrival;
            next_arrival += -log(1.0 - unif(&r)) * inter;
            if (c->first_pass && first_pass_next < c->ncustomers)
                s.cust = first_pass_next++;
            else /* Zipf-like activity: low ids are far more active */
                s.cust = (uint32_t)((double)c->ncustomers * pow(unif(&r), 2.2));
            if (s.cust >= c->ncustomers)
                s.cust = c->ncustomers - 1;
            s.long_mode = unif(&r) < c->long_frac;
            double m = c->mean_events;
            s.remaining = s.long_mode ? (uint16_t)(3 * c->max_duration_ms / c->gap_ms + 2)
                                      : (uint16_t)(1 + (int)(-log(1.0 - unif(&r)) * (m - 1)));
            hpush(&h, s);
            continue;
        }
        gsess s = hpop(&h);
        clock = s.t;
        double u = unif(&r);
        if (u < c->invalid_frac + c->too_large_frac) {
            int part = (int)below(&r, (uint64_t)c->nparts);
            invalid_json(o, &r, s.cust, clock, part, u < c->too_large_frac);
            hpush(&h, s); /* the session's next event is still to come */
            continue;
        }
        if (u < c->invalid_frac + c->too_large_frac + c->late_frac && nrecent) {
            uint32_t lc = recent[below(&r, nrecent < 4096 ? nrecent : 4096)];
            int64_t lt = first_seen[lc] - c->gap_ms - c->lateness_ms - 1000 -
                         (int64_t)below(&r, 7200000);
            int part, dummy_p;
            int64_t kts;
            event_json(o, &r, lc, lt, &s, stage_events[below(&r, 2)][below(&r, 4)], 0, &part,
                       &kts);
            (void)dummy_p;
            o->nlate++;
            hpush(&h, s);
            continue;
        }
        /* one event of session s at event time clock - jitter (<= lateness/2) */
        int64_t t = clock - (int64_t)below(&r, (uint64_t)(c->lateness_ms / 2));
        if (first_seen[s.cust] == INT64_MIN || t < first_seen[s.cust])
            first_seen[s.cust] = t;
        const char *ev;
        if (s.nsent > 0 && unif(&r) < 0.45 && s.stage < 4)
            s.stage++; /* progression; drop-off is the session simply ending */
        if (unif(&r) < 0.12)
            ev = other_events[below(&r, 4)];
        else
            ev = stage_events[s.stage][below(&r, 4)];
        int part;
        int64_t kts;
        event_json(o, &r, s.cust, t, &s, ev, s.nsent == 0 || unif(&r) < 0.2, &part, &kts);
        cpart[s.cust] = (int8_t)part;
        recent[nrecent++ & 4095] = s.cust;
        s.nsent++;
        if (--s.remaining > 0) {
            int64_t step;
            if (s.long_mode)
                step = c->gap_ms / 3;
            else if (unif(&r) < 0.08)
                step = c->gap_ms + (int64_t)below(&r, (uint64_t)c->gap_ms); /* a new session */
            else
                step = 5000 + (int64_t)below(&r, (uint64_t)(c->gap_ms / 4));
            s.t = clock + step;
            hpush(&h, s);
        }
    }
    /* Lay each partition's messages out contiguously, as a Kafka fetch response holds them
     * (the generation order interleaves partitions, which would make every message a cache
     * miss that the real consumer does not pay). */
    char *arena = malloc(o->arena_len ? o->arena_len : 1);
    size_t at = 0;
    for (int p = 0; p < c->nparts; p++)
        for (size_t i = 0; i < o->parts[p].n; i++) {
            cs_msg *m = &o->parts[p].msgs[i];
            memcpy(arena + at, o->arena + (uintptr_t)m->payload, m->len);
            m->payload = arena + at;
            at += m->len;
        }
    free(o->arena);
    o->arena = arena;
    o->arena_cap = o->arena_len;
    free(h.v);
    free(first_seen);
    free(cpart);
    free(recent);
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
