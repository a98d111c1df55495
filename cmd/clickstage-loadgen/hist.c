/* hist.c — see lg.h (latency histogram) and the small helpers every part uses. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lg.h"
#include "parse.h"

double lg_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int64_t lg_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t lg_parse_dur_ms(const char *s)
{
    int64_t ms;
    return cs_parse_duration_ms(s, &ms) == 0 ? ms : -1; /* the daemon's grammar: pipeline/parse.h */
}

static int bucket(uint64_t us)
{
    if (us < 64)
        return (int)us;
    int e = 63 - __builtin_clzll(us); /* >= 6 */
    int i = 64 + (e - 6) * 64 + (int)((us >> (e - 6)) & 63);
    return i < LG_HIST_BUCKETS ? i : LG_HIST_BUCKETS - 1;
}

/* the largest value of bucket i */
static uint64_t bucket_top(int i)
{
    if (i < 64)
        return (uint64_t)i;
    int e = (i - 64) / 64 + 6, sub = (i - 64) % 64;
    return ((uint64_t)(64 + sub) << (e - 6)) + ((1ull << (e - 6)) - 1);
}

void lg_hist_reset(lg_hist *h) { memset(h, 0, sizeof *h); }

void lg_hist_add(lg_hist *h, uint64_t us, uint64_t count)
{
    h->b[bucket(us)] += count;
    h->n += count;
    if (us > h->max_us)
        h->max_us = us;
}

void lg_hist_merge(lg_hist *into, const lg_hist *h)
{
    for (int i = 0; i < LG_HIST_BUCKETS; i++)
        into->b[i] += h->b[i];
    into->n += h->n;
    if (h->max_us > into->max_us)
        into->max_us = h->max_us;
}

double lg_hist_ms(const lg_hist *h, double q)
{
    if (!h->n)
        return 0;
    if (q >= 1)
        return (double)h->max_us / 1000.0;
    uint64_t want = (uint64_t)(q * (double)h->n) + 1, seen = 0;
    if (want > h->n)
        want = h->n;
    for (int i = 0; i < LG_HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= want) {
            uint64_t top = bucket_top(i);
            return (double)(top < h->max_us ? top : h->max_us) / 1000.0;
        }
    }
    return (double)h->max_us / 1000.0;
}

lg_track *lg_track_new(int nparts, int with_samples)
{
    lg_track *t = calloc(1, sizeof *t);
    t->nparts = nparts;
    t->p = calloc((size_t)nparts, sizeof *t->p);
    t->sample_every_us = 1000;
    for (int i = 0; i < nparts; i++) {
        atomic_init(&t->p[i].next_offset, -1);
        atomic_init(&t->p[i].delivered, 0);
        pthread_mutex_init(&t->p[i].mu, NULL);
        if (with_samples)
            t->p[i].ring = malloc(LG_RING * sizeof *t->p[i].ring);
    }
    return t;
}

void lg_track_free(lg_track *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->nparts; i++) {
        pthread_mutex_destroy(&t->p[i].mu);
        free(t->p[i].ring);
    }
    free(t->p);
    free(t);
}
