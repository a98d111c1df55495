/* model.c — see model.h. Pure functions only: no I/O, no clock. */
#include "model.h"
#include "redis.h"
#include "rkeys.h"
#include "timeto.h"

#include <errno.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

const char *const top_hash_suffix[TOP_NHASH] = {
    [TOP_ACTIVE] = "active",   [TOP_REACHED] = "reached",   [TOP_TRANSITIONS] = "transitions",
    [TOP_ENDED] = "ended",     [TOP_ENDED_BY] = "ended_by", [TOP_SESSIONS] = "sessions",
    [TOP_EVENTS] = "events",   [TOP_INVALID] = "invalid",   [TOP_CUSTOMERS] = "customers",
    [TOP_IDENTITY] = CS_RK_IDENTITY, [TOP_BY_REACHED] = NULL,  [TOP_BY_ACTIVE] = NULL,
};

/* ---- hash ---------------------------------------------------------------------------------- */

void top_hash_clear(top_hash *h)
{
    for (size_t i = 0; i < h->n; i++)
        free(h->kv[i].key);
    h->n = 0;
    h->bad = 0;
}

void top_hash_free(top_hash *h)
{
    top_hash_clear(h);
    free(h->kv);
    h->kv = NULL;
    h->cap = 0;
}

/* Strict decimal int64: optional '-', digits only, no overflow. */
static int parse_i64(const char *s, size_t n, int64_t *out)
{
    size_t i = 0;
    int neg = 0;
    if (n && s[0] == '-') {
        neg = 1;
        i = 1;
    }
    if (i == n || n - i > 19)
        return -1;
    uint64_t v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1)
            return -1;
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    } else {
        if (v > (uint64_t)INT64_MAX)
            return -1;
        *out = (int64_t)v;
    }
    return 0;
}

const top_kv *top_hash_find(const top_hash *h, const char *key)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcmp(h->kv[i].key, key) == 0)
            return &h->kv[i];
    return NULL;
}

int64_t top_hash_get(const top_hash *h, const char *key)
{
    const top_kv *kv = top_hash_find(h, key);
    return kv ? kv->val : 0;
}

int64_t top_hash_sum(const top_hash *h)
{
    int64_t s = 0;
    for (size_t i = 0; i < h->n; i++)
        s += h->kv[i].val;
    return s;
}

int top_hash_add(top_hash *h, const char *key, size_t klen, const char *val, size_t vlen)
{
    int64_t v;
    if (parse_i64(val, vlen, &v) < 0) {
        h->bad++;
        return 0;
    }
    if (h->n == h->cap) {
        size_t nc = h->cap ? h->cap * 2 : 16;
        top_kv *nk = realloc(h->kv, nc * sizeof *nk);
        if (!nk)
            return -1;
        h->kv = nk;
        h->cap = nc;
    }
    char *k = malloc(klen + 1);
    if (!k)
        return -1;
    memcpy(k, key, klen);
    k[klen] = 0;
    h->kv[h->n].key = k;
    h->kv[h->n].val = v;
    h->n++;
    return 0;
}

/* ---- model --------------------------------------------------------------------------------- */

void top_model_init(top_model *m)
{
    memset(m, 0, sizeof *m);
}

static void free_stages(top_model *m)
{
    for (size_t i = 0; i < m->nstages; i++)
        free(m->stages[i]);
    free(m->stages);
    m->stages = NULL;
    m->nstages = m->nmeta_stages = 0;
}

void top_model_reset(top_model *m)
{
    for (int i = 0; i < TOP_NHASH; i++)
        top_hash_clear(&m->h[i]);
    free_stages(m);
    free(m->seq_instance);
    free(m->version);
    m->seq_instance = m->version = NULL;
    m->has_meta = 0;
    m->updated_ms = 0;
    m->seq = 0;
    memset(m->tt, 0, sizeof m->tt);
    memset(m->ctt, 0, sizeof m->ctt);
}

void top_model_free(top_model *m)
{
    top_model_reset(m);
    for (int i = 0; i < TOP_NHASH; i++)
        top_hash_free(&m->h[i]);
}

static int push_stage(top_model *m, const char *s, size_t n)
{
    char **ns = realloc(m->stages, (m->nstages + 1) * sizeof *ns);
    if (!ns)
        return -1;
    m->stages = ns;
    char *c = strndup(s, n);
    if (!c)
        return -1;
    m->stages[m->nstages++] = c;
    return 0;
}

static int has_stage(const top_model *m, const char *s, size_t n)
{
    for (size_t i = 0; i < m->nstages; i++)
        if (strlen(m->stages[i]) == n && memcmp(m->stages[i], s, n) == 0)
            return 1;
    return 0;
}

int top_model_set_meta(top_model *m, const char *f, size_t fl, const char *v, size_t vl)
{
    m->has_meta = 1;
    if (fl == 6 && memcmp(f, "stages", 6) == 0) {
        free_stages(m);
        size_t i = 0;
        while (i < vl) {
            size_t j = i;
            while (j < vl && v[j] != ',')
                j++;
            size_t a = i, b = j;   /* trim blanks around a name */
            while (a < b && (v[a] == ' ' || v[a] == '\t'))
                a++;
            while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
                b--;
            if (b > a && !has_stage(m, v + a, b - a) && push_stage(m, v + a, b - a) < 0)
                return -1;
            i = j + 1;
        }
        m->nmeta_stages = m->nstages;
    } else if (fl == 10 && memcmp(f, "updated_ms", 10) == 0) {
        int64_t x;
        if (parse_i64(v, vl, &x) == 0 && x > 0)
            m->updated_ms = x;
    } else if (fl == 7 && memcmp(f, "version", 7) == 0) {
        free(m->version);
        m->version = strndup(v, vl);
        if (!m->version)
            return -1;
    } else if (fl > 4 && memcmp(f, "seq:", 4) == 0) {
        int64_t x;
        if (parse_i64(v, vl, &x) == 0 && x > 0 && (uint64_t)x >= m->seq) {
            char *inst = strndup(f + 4, fl - 4);
            if (!inst)
                return -1;
            free(m->seq_instance);
            m->seq_instance = inst;
            m->seq = (uint64_t)x;
        }
    }
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

size_t top_strv_sort_uniq(char **v, size_t n)
{
    if (n < 2)
        return n;
    qsort(v, n, sizeof *v, cmp_str);
    size_t o = 1;
    for (size_t i = 1; i < n; i++) {
        if (strcmp(v[i], v[o - 1]) == 0)
            free(v[i]);
        else
            v[o++] = v[i];
    }
    return o;
}

int top_model_finish(top_model *m)
{
    /* Drop extras of an earlier finish (idempotent). */
    while (m->nstages > m->nmeta_stages)
        free(m->stages[--m->nstages]);
    char **extra = NULL;
    size_t nextra = 0;
    static const int from[] = {TOP_ACTIVE, TOP_REACHED, TOP_ENDED, TOP_CUSTOMERS, TOP_EVENTS};
    for (size_t k = 0; k < sizeof from / sizeof from[0]; k++) {
        const top_hash *h = &m->h[from[k]];
        for (size_t i = 0; i < h->n; i++) {
            const char *s = h->kv[i].key;
            if (s[0] == '_' || has_stage(m, s, strlen(s)))
                continue;
            char **ne = realloc(extra, (nextra + 1) * sizeof *ne);
            if (!ne)
                goto oom;
            extra = ne;
            if (!(extra[nextra] = strdup(s)))
                goto oom;
            nextra++;
        }
    }
    const top_hash *t = &m->h[TOP_TRANSITIONS];
    for (size_t i = 0; i < t->n; i++) {
        const char *s = t->kv[i].key, *gt = strchr(s, '>');
        const char *parts[2][2] = {{s, gt ? gt : s + strlen(s)}, {gt ? gt + 1 : "", NULL}};
        parts[1][1] = parts[1][0] + strlen(parts[1][0]);
        for (int p = 0; p < 2; p++) {
            size_t n = (size_t)(parts[p][1] - parts[p][0]);
            if (!n || parts[p][0][0] == '_' || has_stage(m, parts[p][0], n))
                continue;
            char **ne = realloc(extra, (nextra + 1) * sizeof *ne);
            if (!ne)
                goto oom;
            extra = ne;
            if (!(extra[nextra] = strndup(parts[p][0], n)))
                goto oom;
            nextra++;
        }
    }
    nextra = top_strv_sort_uniq(extra, nextra);
    for (size_t i = 0; i < nextra; i++) {
        if (push_stage(m, extra[i], strlen(extra[i])) < 0)
            goto oom;
        free(extra[i]);
        extra[i] = NULL;
    }
    free(extra);
    return 0;
oom:
    for (size_t i = 0; i < nextra; i++)
        free(extra[i]);
    free(extra);
    return -1;
}

/* ---- derived views ------------------------------------------------------------------------- */

static int cmp_item(const void *a, const void *b)
{
    const top_item *x = a, *y = b;
    if (x->val != y->val)
        return x->val > y->val ? -1 : 1;
    return strcmp(x->key, y->key);
}

size_t top_sorted(const top_hash *h, top_item *out, size_t max)
{
    if (!max)
        return 0;
    top_item *all = malloc((h->n ? h->n : 1) * sizeof *all);
    if (!all)
        return 0;
    for (size_t i = 0; i < h->n; i++) {
        all[i].key = h->kv[i].key;
        all[i].val = h->kv[i].val;
    }
    qsort(all, h->n, sizeof *all, cmp_item);
    size_t n = h->n < max ? h->n : max;
    memcpy(out, all, n * sizeof *out);
    free(all);
    return n;
}

/* position of a transition end in the stage order: 0 for _entry, i + 1 for stages[i], -1 */
static long stage_pos(const top_model *m, const char *s, size_t n)
{
    if (n == 6 && !memcmp(s, "_entry", 6))
        return 0;
    for (size_t i = 0; i < m->nstages; i++)
        if (strlen(m->stages[i]) == n && !memcmp(m->stages[i], s, n))
            return (long)i + 1;
    return -1;
}

int64_t top_at_least(const top_model *m, size_t i)
{
    const top_hash *t = &m->h[TOP_TRANSITIONS];
    long k = (long)i + 1;
    int64_t sum = 0;
    for (size_t j = 0; j < t->n; j++) {
        const char *key = t->kv[j].key, *gt = strchr(key, '>');
        if (!gt)
            continue;
        long a = stage_pos(m, key, (size_t)(gt - key)), b = stage_pos(m, gt + 1, strlen(gt + 1));
        if (a >= 0 && b > 0 && a < k && b >= k)
            sum += t->kv[j].val;
    }
    return sum;
}

int top_conversion(const top_model *m, size_t i, double *pct)
{
    if (i == 0 || i >= m->nstages)
        return -1;
    int64_t prev = top_at_least(m, i - 1);
    int64_t cur = top_at_least(m, i);
    if (prev <= 0)
        return -1;
    *pct = 100.0 * (double)cur / (double)prev;
    return 0;
}

int64_t top_customers_at_least(const top_model *m, size_t i)
{
    int64_t sum = 0;
    for (size_t j = i; j < m->nstages; j++)
        sum += top_hash_get(&m->h[TOP_CUSTOMERS], m->stages[j]);
    return sum;
}

int top_customer_conversion(const top_model *m, size_t i, double *pct)
{
    if (i == 0 || i >= m->nstages)
        return -1;
    int64_t prev = top_customers_at_least(m, i - 1);
    if (prev <= 0)
        return -1;
    *pct = 100.0 * (double)top_customers_at_least(m, i) / (double)prev;
    return 0;
}

void top_model_set_tt(top_model *m, int customers, size_t i, const char *bucket, size_t blen,
                      const char *val, size_t vlen)
{
    if (i >= CS_MAX_STAGES)
        return;
    int b = cs_tt_bucket_index(bucket, (int)blen);
    char buf[32];
    if (b < 0 || vlen == 0 || vlen >= sizeof buf)
        return;
    memcpy(buf, val, vlen);
    buf[vlen] = 0;
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno || *end)
        return;
    (customers ? m->ctt : m->tt)[i][b] = v;
}

void top_breakdown_free(top_breakdown *bd)
{
    for (size_t i = 0; i < bd->nvalues; i++) {
        free(bd->rows[i].value);
        free(bd->rows[i].reached);
        free(bd->rows[i].active);
    }
    free(bd->rows);
    memset(bd, 0, sizeof *bd);
}

static int cmp_row(const void *a, const void *b)
{
    const top_bd_row *x = a, *y = b;
    if (x->total_reached != y->total_reached)
        return x->total_reached > y->total_reached ? -1 : 1;
    if (x->total_active != y->total_active)
        return x->total_active > y->total_active ? -1 : 1;
    return strcmp(x->value, y->value);
}

/* One "<value>/<stage>" field of a by: hash, for grouping by value. */
typedef struct bd_ent {
    const char *value;
    size_t vlen;
    long stage;                 /* index in m->stages, -1 when not a stage (e.g. _none) */
    int active;                 /* from by:<dim>:active */
    int64_t val;
} bd_ent;

static int cmp_ent(const void *a, const void *b)
{
    const bd_ent *x = a, *y = b;
    size_t n = x->vlen < y->vlen ? x->vlen : y->vlen;
    int c = memcmp(x->value, y->value, n);
    if (c)
        return c;
    return x->vlen < y->vlen ? -1 : x->vlen > y->vlen;
}

/* O(F log F) in the number of fields: a dimension may have thousands of values. */
int top_breakdown_build(const top_model *m, size_t max_rows, top_breakdown *bd)
{
    memset(bd, 0, sizeof *bd);
    bd->nstages = m->nstages;
    const top_hash *hr = &m->h[TOP_BY_REACHED], *ha = &m->h[TOP_BY_ACTIVE];
    size_t nf = hr->n + ha->n, ne = 0;
    bd_ent *e = malloc((nf ? nf : 1) * sizeof *e);
    if (!e)
        return -1;
    for (int w = 0; w < 2; w++) {
        const top_hash *h = w ? ha : hr;
        for (size_t i = 0; i < h->n; i++) {
            const char *f = h->kv[i].key, *sl = strrchr(f, '/');
            if (!sl)
                continue;
            bd_ent *x = &e[ne++];
            x->value = f;
            x->vlen = (size_t)(sl - f);
            x->stage = -1;
            for (size_t s = 0; s < m->nstages; s++)
                if (strcmp(m->stages[s], sl + 1) == 0) {
                    x->stage = (long)s;
                    break;
                }
            x->active = w;
            x->val = h->kv[i].val;
        }
    }
    qsort(e, ne, sizeof *e, cmp_ent);
    size_t nvalues = 0;
    for (size_t i = 0; i < ne; i++)
        nvalues += i == 0 || cmp_ent(&e[i - 1], &e[i]) != 0;
    bd->rows = calloc(nvalues ? nvalues : 1, sizeof *bd->rows);
    if (!bd->rows) {
        free(e);
        return -1;
    }
    size_t ns = m->nstages ? m->nstages : 1;
    for (size_t i = 0; i < ne; i++) {
        if (i == 0 || cmp_ent(&e[i - 1], &e[i]) != 0) {
            top_bd_row *r = &bd->rows[bd->nvalues++];
            r->value = strndup(e[i].value, e[i].vlen);
            r->reached = calloc(ns, sizeof *r->reached);
            r->active = calloc(ns, sizeof *r->active);
            if (!r->value || !r->reached || !r->active) {
                free(e);
                top_breakdown_free(bd);
                return -1;
            }
        }
        top_bd_row *r = &bd->rows[bd->nvalues - 1];
        if (e[i].active) {
            r->total_active += e[i].val;
            if (e[i].stage >= 0)
                r->active[e[i].stage] += e[i].val;
        } else {
            r->total_reached += e[i].val;
            if (e[i].stage >= 0)
                r->reached[e[i].stage] += e[i].val;
        }
    }
    free(e);
    if (bd->nvalues)
        qsort(bd->rows, bd->nvalues, sizeof *bd->rows, cmp_row);
    bd->nrows = bd->nvalues < max_rows ? bd->nvalues : max_rows;
    return 0;
}

/* ---- update message ------------------------------------------------------------------------ */

typedef struct jcur {
    const char *p, *end;
} jcur;

static void jws(jcur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

/* A JSON string at c->p; copies at most outn-1 bytes (escapes \uXXXX kept as '?'). */
static int jstring(jcur *c, char *out, size_t outn)
{
    if (c->p >= c->end || *c->p != '"')
        return -1;
    c->p++;
    size_t o = 0;
    while (c->p < c->end && *c->p != '"') {
        char ch = *c->p++;
        if (ch == '\\') {
            if (c->p >= c->end)
                return -1;
            char e = *c->p++;
            switch (e) {
            case 'n': ch = '\n'; break;
            case 't': ch = '\t'; break;
            case 'r': ch = '\r'; break;
            case 'b': ch = '\b'; break;
            case 'f': ch = '\f'; break;
            case 'u':
                if (c->end - c->p < 4)
                    return -1;
                c->p += 4;
                ch = '?';
                break;
            default: ch = e; break;
            }
        }
        if (out && o + 1 < outn)
            out[o++] = ch;
    }
    if (c->p >= c->end)
        return -1;
    c->p++;
    if (out && outn)
        out[o] = 0;
    return 0;
}

/* Skips any JSON value (nested objects/arrays by bracket depth, strings respected). */
static int jskip(jcur *c)
{
    jws(c);
    if (c->p >= c->end)
        return -1;
    if (*c->p == '"')
        return jstring(c, NULL, 0);
    if (*c->p == '{' || *c->p == '[') {
        int depth = 0;
        while (c->p < c->end) {
            if (*c->p == '"') {
                if (jstring(c, NULL, 0) < 0)
                    return -1;
                continue;
            }
            if (*c->p == '{' || *c->p == '[')
                depth++;
            else if (*c->p == '}' || *c->p == ']')
                depth--;
            c->p++;
            if (depth == 0)
                return 0;
        }
        return -1;
    }
    while (c->p < c->end && *c->p != ',' && *c->p != '}' && *c->p != ']' && *c->p != ' ')
        c->p++;
    return 0;
}

static int jnumber(jcur *c, int64_t *out)
{
    const char *s = c->p;
    while (c->p < c->end && ((*c->p >= '0' && *c->p <= '9') || *c->p == '-'))
        c->p++;
    if (parse_i64(s, (size_t)(c->p - s), out) < 0)
        return -1;
    /* a fraction or exponent: ignore the rest of the number */
    while (c->p < c->end && (*c->p == '.' || *c->p == 'e' || *c->p == 'E' || *c->p == '+' ||
                             (*c->p >= '0' && *c->p <= '9')))
        c->p++;
    return 0;
}

int top_parse_update(const char *json, size_t len, top_update *u)
{
    memset(u, 0, sizeof *u);
    jcur c = {json, json + len};
    jws(&c);
    if (c.p >= c.end || *c.p != '{')
        return -1;
    c.p++;
    jws(&c);
    if (c.p < c.end && *c.p == '}')
        return 0;
    while (c.p < c.end) {
        char key[32];
        jws(&c);
        if (jstring(&c, key, sizeof key) < 0)
            return -1;
        jws(&c);
        if (c.p >= c.end || *c.p != ':')
            return -1;
        c.p++;
        jws(&c);
        int64_t n;
        if (strcmp(key, "instance") == 0 && c.p < c.end && *c.p == '"') {
            if (jstring(&c, u->instance, sizeof u->instance) < 0)
                return -1;
        } else if ((strcmp(key, "updated_ms") == 0 || strcmp(key, "seq") == 0 ||
                    strcmp(key, "commands") == 0) && c.p < c.end &&
                   ((*c.p >= '0' && *c.p <= '9') || *c.p == '-')) {
            if (jnumber(&c, &n) < 0)
                return -1;
            if (key[0] == 'u')
                u->updated_ms = n;
            else if (key[0] == 's')
                u->seq = n > 0 ? (uint64_t)n : 0;
            else
                u->commands = n;
        } else if (jskip(&c) < 0) {
            return -1;
        }
        jws(&c);
        if (c.p < c.end && *c.p == ',') {
            c.p++;
            continue;
        }
        if (c.p < c.end && *c.p == '}')
            return 0;
        return -1;
    }
    return -1;
}

/* ---- rates --------------------------------------------------------------------------------- */

void top_totals_of(const top_model *m, top_totals *t)
{
    t->events = top_hash_sum(&m->h[TOP_EVENTS]);
    t->invalid = top_hash_sum(&m->h[TOP_INVALID]);
    t->late = top_hash_get(&m->h[TOP_EVENTS], "_late");
}

void top_rates_reset(top_rate_hist *h)
{
    h->n = 0;
    h->head = 0;
}

void top_rates_push(top_rate_hist *h, int64_t now_ms, const top_totals *t, top_rates *out)
{
    memset(out, 0, sizeof *out);
    if (h->n) {
        const top_totals *last = &h->v[h->head];
        if (t->events < last->events || t->invalid < last->invalid || t->late < last->late ||
            now_ms < h->t_ms[h->head])
            top_rates_reset(h);
    }
    /* Rate against the newest sample at least the window old, else the oldest kept. */
    if (h->n) {
        size_t pick = h->head;
        for (size_t k = 0; k < h->n; k++) {
            size_t idx = (h->head + TOP_RATE_SAMPLES - k) % TOP_RATE_SAMPLES;
            pick = idx;
            if (now_ms - h->t_ms[idx] >= TOP_RATE_WINDOW_MS)
                break;
        }
        int64_t dt = now_ms - h->t_ms[pick];
        if (dt > 0) {
            double s = (double)dt / 1000.0;
            out->valid = 1;
            out->window_s = s;
            out->events_s = (double)(t->events - h->v[pick].events) / s;
            out->invalid_s = (double)(t->invalid - h->v[pick].invalid) / s;
            out->late_s = (double)(t->late - h->v[pick].late) / s;
        }
    }
    /* Keep the sample; a sample in the same millisecond as the newest replaces it. */
    if (h->n && h->t_ms[h->head] == now_ms) {
        h->v[h->head] = *t;
        return;
    }
    h->head = h->n ? (h->head + 1) % TOP_RATE_SAMPLES : 0;
    h->t_ms[h->head] = now_ms;
    h->v[h->head] = *t;
    if (h->n < TOP_RATE_SAMPLES)
        h->n++;
}

/* ---- keys ---------------------------------------------------------------------------------- */

char *top_glob_escape(const char *s)
{
    size_t n = strlen(s);
    char *o = malloc(2 * n + 1), *p = o;
    if (!o)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (strchr("*?[]\\", s[i]))
            *p++ = '\\';
        *p++ = s[i];
    }
    *p = 0;
    return o;
}

char *top_journey_from_key(const char *prefix, const char *key, size_t klen)
{
    const char *j, *suf;
    size_t jl, sl;
    if (cs_rk_split(prefix, key, klen, &j, &jl, &suf, &sl) < 0 || sl != strlen(CS_RK_META) ||
        memcmp(suf, CS_RK_META, sl) != 0)
        return NULL;
    return strndup(j, jl);
}

char *top_dim_from_key(const char *prefix, const char *journey, const char *key, size_t klen)
{
    const char *j, *suf;
    size_t jl, sl;
    static const char tail[] = ":reached";
    size_t bl = strlen(CS_RK_BY), tl = sizeof tail - 1;
    if (cs_rk_split(prefix, key, klen, &j, &jl, &suf, &sl) < 0 || jl != strlen(journey) ||
        memcmp(j, journey, jl) != 0 || sl < bl + tl + 1 || memcmp(suf, CS_RK_BY, bl) != 0 ||
        memcmp(suf + sl - tl, tail, tl) != 0)
        return NULL;
    return strndup(suf + bl, sl - bl - tl);
}

/* ---- INFO hint (issue 20) ------------------------------------------------------------------ */

/* The value of "field:" in INFO's text ("# Section" lines and CRLFs in between), copied into v
 * (cut to vn - 1 bytes). 1 found, 0 not. */
static int info_field(const char *info, size_t len, const char *field, char *v, size_t vn)
{
    size_t fl = strlen(field);
    const char *p = info, *end = info + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        if ((size_t)(le - p) > fl && memcmp(p, field, fl) == 0 && p[fl] == ':') {
            const char *s = p + fl + 1, *e = le;
            if (e > s && e[-1] == '\r')
                e--;
            size_t n = (size_t)(e - s) < vn - 1 ? (size_t)(e - s) : vn - 1;
            memcpy(v, s, n);
            v[n] = 0;
            return 1;
        }
        p = nl ? nl + 1 : end;
    }
    return 0;
}

static int info_u64(const char *info, size_t len, const char *field, unsigned long long *out)
{
    char v[32], *e;
    if (!info_field(info, len, field, v, sizeof v) || !v[0])
        return 0;
    errno = 0;
    *out = strtoull(v, &e, 10);
    return errno == 0 && *e == 0;
}

int top_info_hint(const char *info, size_t len, char *out, size_t outlen)
{
    char role[16], host[128] = "?", port[16] = "?", link[16] = "?", loading[8], policy[32] = "?";
    char used_h[32] = "", max_h[32] = "";
    out[0] = 0;
    if (info_field(info, len, "role", role, sizeof role) && strcmp(role, "slave") == 0) {
        info_field(info, len, "master_host", host, sizeof host);
        info_field(info, len, "master_port", port, sizeof port);
        info_field(info, len, "master_link_status", link, sizeof link);
        snprintf(out, outlen, "Redis is a read-only replica of %s:%s (link %s): the daemon's "
                 "writes are refused (READONLY); point it at the master", host, port, link);
        return CS_REDIS_READONLY;
    }
    if (info_field(info, len, "loading", loading, sizeof loading) && strcmp(loading, "1") == 0) {
        snprintf(out, outlen, "Redis is loading its dataset: every command is refused (LOADING) "
                 "until it is done");
        return CS_REDIS_LOADING;
    }
    unsigned long long used, max;
    if (info_u64(info, len, "maxmemory", &max) && max > 0 &&
        info_u64(info, len, "used_memory", &used) && used >= max) {
        info_field(info, len, "maxmemory_policy", policy, sizeof policy);
        info_field(info, len, "used_memory_human", used_h, sizeof used_h);
        info_field(info, len, "maxmemory_human", max_h, sizeof max_h);
        /* noeviction refuses; volatile-* can only evict keys with a TTL (the minute keys) */
        if (strcmp(policy, "noeviction") == 0 || strncmp(policy, "volatile-", 9) == 0) {
            snprintf(out, outlen, "Redis is out of memory: used %s of maxmemory %s (policy "
                     "%s): the daemon's writes are refused (OOM)",
                     used_h[0] ? used_h : "?", max_h[0] ? max_h : "?", policy);
            return CS_REDIS_OOM;
        }
    }
    return CS_REDIS_OK;
}
