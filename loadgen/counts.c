#include "counts.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

typedef struct ent {
    char *key; /* "hash\0field\0" */
    size_t klen;
    int64_t v;
} ent;

struct cs_counts {
    ent *t;
    size_t cap, n;
};

cs_counts *cs_counts_new(void)
{
    cs_counts *c = calloc(1, sizeof *c);
    c->cap = 1024;
    c->t = calloc(c->cap, sizeof *c->t);
    return c;
}

void cs_counts_free(cs_counts *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->cap; i++)
        free(c->t[i].key);
    free(c->t);
    free(c);
}

static size_t mkkey(char *buf, size_t cap, const char *hash, const char *field)
{
    size_t a = strlen(hash), b = strlen(field);
    if (a + b + 2 > cap)
        abort();
    memcpy(buf, hash, a + 1);
    memcpy(buf + a + 1, field, b + 1);
    return a + b + 2;
}

static ent *find(const cs_counts *c, const char *k, size_t klen, int create)
{
    size_t i = XXH3_64bits(k, klen) & (c->cap - 1);
    for (;; i = (i + 1) & (c->cap - 1)) {
        ent *e = &c->t[i];
        if (!e->key) {
            if (!create)
                return NULL;
            e->key = malloc(klen);
            memcpy(e->key, k, klen);
            e->klen = klen;
            ((cs_counts *)c)->n++;
            return e;
        }
        if (e->klen == klen && memcmp(e->key, k, klen) == 0)
            return e;
    }
}

static void grow(cs_counts *c)
{
    ent *old = c->t;
    size_t ocap = c->cap;
    c->cap *= 2;
    c->t = calloc(c->cap, sizeof *c->t);
    c->n = 0;
    for (size_t i = 0; i < ocap; i++)
        if (old[i].key) {
            ent *e = find(c, old[i].key, old[i].klen, 1);
            e->v = old[i].v;
            free(old[i].key);
        }
    free(old);
}

void cs_counts_add(cs_counts *c, const char *hash, const char *field, int64_t delta)
{
    char k[1024];
    size_t kl = mkkey(k, sizeof k, hash, field);
    if (c->n * 2 >= c->cap)
        grow(c);
    find(c, k, kl, 1)->v += delta;
}

int64_t cs_counts_get(const cs_counts *c, const char *hash, const char *field)
{
    char k[1024];
    size_t kl = mkkey(k, sizeof k, hash, field);
    ent *e = find(c, k, kl, 0);
    return e ? e->v : 0;
}

long cs_counts_size(const cs_counts *c)
{
    long n = 0;
    for (size_t i = 0; i < c->cap; i++)
        n += c->t[i].key && c->t[i].v != 0;
    return n;
}

void cs_counts_agg_cb(void *opaque, const char *hash, const char *field, int64_t delta)
{
    cs_counts_add(opaque, hash, field, delta);
}

static int cmp_ent(const void *a, const void *b)
{
    const ent *x = *(const ent *const *)a, *y = *(const ent *const *)b;
    int r = strcmp(x->key, y->key);
    return r ? r : strcmp(x->key + strlen(x->key) + 1, y->key + strlen(y->key) + 1);
}

static ent **sorted(const cs_counts *c, size_t *n)
{
    ent **v = malloc((c->n + 1) * sizeof *v);
    *n = 0;
    for (size_t i = 0; i < c->cap; i++)
        if (c->t[i].key)
            v[(*n)++] = &c->t[i];
    qsort(v, *n, sizeof *v, cmp_ent);
    return v;
}

static long diff_one_way(const cs_counts *a, const char *an, const cs_counts *b, const char *bn,
                         FILE *out, long max_print, long *printed, int skip_common)
{
    size_t n;
    ent **v = sorted(a, &n);
    long d = 0;
    for (size_t i = 0; i < n; i++) {
        const char *h = v[i]->key, *f = h + strlen(h) + 1;
        ent *o = find(b, v[i]->key, v[i]->klen, 0);
        if (skip_common && o)
            continue; /* already compared from the other side */
        int64_t bv = o ? o->v : 0;
        if (v[i]->v != bv) {
            d++;
            if (out && (*printed)++ < max_print) {
                if (skip_common)
                    fprintf(out, "  %s %s: %s=0 %s=%lld\n", h, f, bn, an, (long long)v[i]->v);
                else
                    fprintf(out, "  %s %s: %s=%lld %s=%lld\n", h, f, an, (long long)v[i]->v,
                            bn, (long long)bv);
            }
        }
    }
    free(v);
    return d;
}

long cs_counts_diff(const cs_counts *a, const char *an, const cs_counts *b, const char *bn,
                    FILE *out, long max_print)
{
    long printed = 0;
    long d = diff_one_way(a, an, b, bn, out, max_print, &printed, 0);
    d += diff_one_way(b, bn, a, an, out, max_print, &printed, 1);
    return d;
}

void cs_counts_write_json(const cs_counts *c, FILE *out)
{
    size_t n;
    ent **v = sorted(c, &n);
    const char *cur = NULL;
    fputc('{', out);
    for (size_t i = 0; i < n; i++) {
        if (v[i]->v == 0)
            continue;
        const char *h = v[i]->key, *f = h + strlen(h) + 1;
        if (!cur || strcmp(cur, h) != 0) {
            fprintf(out, "%s\n  \"%s\": {", cur ? "},": "", h);
            cur = h;
        } else {
            fputc(',', out);
        }
        fputc('"', out);
        for (const char *p = f; *p; p++) {
            if (*p == '"' || *p == '\\')
                fputc('\\', out);
            fputc(*p, out);
        }
        fprintf(out, "\": %lld", (long long)v[i]->v);
    }
    fprintf(out, "%s\n}\n", cur ? "}" : "");
    free(v);
}

void cs_counts_merge(cs_counts *dst, const cs_counts *src)
{
    for (size_t i = 0; i < src->cap; i++)
        if (src->t[i].key) {
            if (dst->n * 2 >= dst->cap)
                grow(dst);
            find(dst, src->t[i].key, src->t[i].klen, 1)->v += src->t[i].v;
        }
}

void cs_counts_foreach(const cs_counts *c, void (*cb)(void *, const char *, const char *, int64_t),
                       void *opaque)
{
    for (size_t i = 0; i < c->cap; i++)
        if (c->t[i].key) {
            const char *h = c->t[i].key;
            cb(opaque, h, h + strlen(h) + 1, c->t[i].v);
        }
}

/* SPEC §4.1 invariants: sums["time_to"][S], sums["customer_time_to"][S], sums["transition_time"]
 * [a>b] from the buckets; then every key on either side of each equation compared. */
typedef struct tt_sums {
    cs_counts *sum; /* "time_to" S, "transition_time" a>b: bucket sums */
    cs_counts *want; /* "time_to" S <- reached, "transition_time" a>b <- transitions */
} tt_sums;

static void tt_collect(void *op, const char *hash, const char *field, int64_t v)
{
    tt_sums *s = op;
    if (!strncmp(hash, "time_to:", 8)) {
        cs_counts_add(s->sum, "time_to", hash + 8, v);
        cs_counts_add(s->want, "time_to", hash + 8, 0);
    } else if (!strcmp(hash, "transition_time")) {
        char ab[1024];
        snprintf(ab, sizeof ab, "%s", field);
        char *colon = strrchr(ab, ':');
        if (colon)
            *colon = 0;
        cs_counts_add(s->sum, "transition_time", ab, v);
        cs_counts_add(s->want, "transition_time", ab, 0);
    } else if (!strcmp(hash, "reached")) {
        cs_counts_add(s->want, "time_to", field, v);
        cs_counts_add(s->sum, "time_to", field, 0);
    } else if (!strcmp(hash, "transitions")) {
        cs_counts_add(s->want, "transition_time", field, v);
        cs_counts_add(s->sum, "transition_time", field, 0);
    }
}

long cs_counts_check_tt(const cs_counts *c, FILE *out, long max_print)
{
    tt_sums s = {cs_counts_new(), cs_counts_new()};
    cs_counts_foreach(c, tt_collect, &s);
    long d = cs_counts_diff(s.want, "reached|transitions", s.sum, "sum of buckets", out, max_print);
    cs_counts_free(s.sum);
    cs_counts_free(s.want);
    return d;
}
