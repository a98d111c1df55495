/* journey.c — /api/journey: the journey's counts as stored in Redis (see journey.h). */
#include "journey.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "redis.h"
#include "rkeys.h"
#include "timeto.h"
#include "util.h"

#define REDIS_CONNECT_TIMEOUT_MS 1000
#define REDIS_COMMAND_TIMEOUT_MS 2000
#define REDIS_RETRY_MS 500      /* after a link failure, answer 503 without trying for this long */
#define MINUTES_SHOWN 60
#define MINUTES_RESCAN_MS 5000  /* SCAN for minute keys at most this often */

struct cs_journey_reader {
    pthread_mutex_t mu; /* one request at a time on the connection; everything below */
    cs_redis *r;
    char prefix[129];
    char journey[129];
    int64_t retry_after_ms;
    char last_err[512];
    /* minute keys found by the last SCAN: "YYYYMMDDHHMM", sorted, the newest MINUTES_SHOWN */
    char minutes[MINUTES_SHOWN + 1][13];
    int nminutes;
    int64_t minutes_scanned_ms;
};

cs_journey_reader *cs_journey_reader_new(const char *redis_url, const char *prefix,
                                         const char *journey, char *errstr, size_t errlen)
{
    cs_journey_reader *h = calloc(1, sizeof *h);
    if (!h) {
        cs_seterr(errstr, errlen, "out of memory");
        return NULL;
    }
    cs_redis_opts o = {redis_url, REDIS_CONNECT_TIMEOUT_MS, REDIS_COMMAND_TIMEOUT_MS};
    if (!(h->r = cs_redis_new(&o, errstr, errlen))) {
        free(h);
        return NULL;
    }
    pthread_mutex_init(&h->mu, NULL);
    snprintf(h->prefix, sizeof h->prefix, "%s", prefix && *prefix ? prefix : "clickstage");
    snprintf(h->journey, sizeof h->journey, "%s", journey ? journey : "");
    return h;
}

void cs_journey_reader_free(cs_journey_reader *h)
{
    if (!h)
        return;
    cs_redis_free(h->r);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

/* the connection failed (closed by the Redis layer, last_err set): back off briefly */
static int link_failed(cs_journey_reader *h)
{
    h->retry_after_ms = cs_wall_ms() + REDIS_RETRY_MS;
    return -1;
}

static const char *const HASHES[] = {
    CS_RK_ACTIVE, CS_RK_REACHED, CS_RK_ENDED,    CS_RK_CUSTOMERS, CS_RK_TRANSITIONS,
    CS_RK_EVENTS, CS_RK_INVALID, CS_RK_SESSIONS, CS_RK_ENDED_BY, CS_RK_IDENTITY};
#define NHASHES (int)(sizeof HASHES / sizeof HASHES[0])

typedef struct {
    const char *k, *v;
    size_t kl, vl;
    int rank;
} kv;

static int kv_cmp(const void *a, const void *b)
{
    const kv *x = a, *y = b;
    if (x->rank != y->rank)
        return x->rank < y->rank ? -1 : 1;
    size_t n = x->kl < y->kl ? x->kl : y->kl;
    int c = memcmp(x->k, y->k, n);
    return c ? c : x->kl < y->kl ? -1 : x->kl > y->kl;
}

/* a value: the integer it holds, else a JSON string */
static void put_value(FILE *f, const char *v, size_t vl)
{
    char buf[32];
    if (vl > 0 && vl < sizeof buf) {
        memcpy(buf, v, vl);
        buf[vl] = '\0';
        char *end;
        errno = 0;
        long long x = strtoll(buf, &end, 10);
        if (!errno && *end == '\0' && end != buf) {
            fprintf(f, "%lld", x);
            return;
        }
    }
    cs_put_json_n(f, v, vl);
}

/* an HGETALL reply as a JSON object; stages first in journey order, then by name */
static void put_hash(FILE *f, const redisReply *r, char stages[][65], int ns)
{
    fputc('{', f);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
        size_t n = r->elements / 2;
        kv *a = calloc(n, sizeof *a);
        size_t k = 0;
        for (size_t i = 0; a && i < n; i++) {
            const redisReply *key = r->element[2 * i], *val = r->element[2 * i + 1];
            if (key->type != REDIS_REPLY_STRING || val->type != REDIS_REPLY_STRING)
                continue;
            a[k] = (kv){key->str, val->str, (size_t)key->len, (size_t)val->len, ns};
            for (int s = 0; s < ns; s++)
                if (strlen(stages[s]) == a[k].kl && memcmp(stages[s], a[k].k, a[k].kl) == 0)
                    a[k].rank = s;
            k++;
        }
        if (a)
            qsort(a, k, sizeof *a, kv_cmp);
        for (size_t i = 0; i < k; i++) {
            if (i)
                fputc(',', f);
            cs_put_json_n(f, a[i].k, a[i].kl);
            fputc(':', f);
            put_value(f, a[i].v, a[i].vl);
        }
        free(a);
    }
    fputc('}', f);
}

static const redisReply *hash_field(const redisReply *r, const char *name)
{
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING && strcmp(r->element[i]->str, name) == 0)
            return r->element[i + 1]->type == REDIS_REPLY_STRING ? r->element[i + 1] : NULL;
    return NULL;
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

static int is_minute(const char *s, size_t n)
{
    if (n != 12)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

/* "YYYYMMDDHHMM" + 1 minute */
static void next_minute(const char *cur, char out[13])
{
    struct tm tm = {0};
    if (sscanf(cur, "%4d%2d%2d%2d%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min) != 5) {
        out[0] = '\0';
        return;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm) + 60;
    struct tm o;
    gmtime_r(&t, &o);
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%04d%02d%02d%02d%02d", o.tm_year + 1900, o.tm_mon + 1, o.tm_mday,
             o.tm_hour, o.tm_min);
    if (strlen(tmp) == 12)
        memcpy(out, tmp, 13);
    else
        out[0] = '\0';
}

/* Refreshes h->minutes with SCAN (at most every MINUTES_RESCAN_MS). 0 ok, -1 failure. */
static int scan_minutes(cs_journey_reader *h, const char *base, int64_t now)
{
    if (h->minutes_scanned_ms && now - h->minutes_scanned_ms < MINUTES_RESCAN_MS &&
        now >= h->minutes_scanned_ms)
        return 0;
    char pattern[CS_RKEYS_MAX + 64];
    snprintf(pattern, sizeof pattern, "%s" CS_RK_MINUTE "*" CS_RK_MINUTE_TAIL, base);
    size_t plen = strlen(base) + strlen(CS_RK_MINUTE);
    char cursor[32] = "0";
    size_t cap = 0, n = 0;
    char (*all)[13] = NULL;
    int rounds = 0;
    do {
        const char *argv[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"};
        redisReply *r = cs_redis_cmd(h->r, 6, argv, NULL, h->last_err, sizeof h->last_err);
        if (!r) {
            free(all);
            return link_failed(h);
        }
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[1]->type != REDIS_REPLY_ARRAY) {
            snprintf(h->last_err, sizeof h->last_err, "%s SCAN: %s", cs_redis_where(h->r),
                     r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
            freeReplyObject(r);
            free(all);
            return -1;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        const redisReply *keys = r->element[1];
        for (size_t i = 0; i < keys->elements; i++) {
            const redisReply *k = keys->element[i];
            if (k->type != REDIS_REPLY_STRING ||
                (size_t)k->len != plen + 12 + strlen(CS_RK_MINUTE_TAIL) ||
                !is_minute(k->str + plen, 12))
                continue;
            if (n == cap) {
                size_t nc = cap ? 2 * cap : 256;
                void *p = realloc(all, nc * sizeof *all);
                if (!p)
                    break;
                all = p;
                cap = nc;
            }
            memcpy(all[n], k->str + plen, 12);
            all[n++][12] = '\0';
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0 && ++rounds < 100000);
    if (n)
        qsort(all, n, sizeof *all, str_cmp);
    size_t u = 0; /* SCAN may return a key twice */
    for (size_t i = 0; i < n; i++)
        if (!u || strcmp(all[u - 1], all[i]) != 0)
            memmove(all[u++], all[i], 13);
    size_t from = u > MINUTES_SHOWN ? u - MINUTES_SHOWN : 0;
    h->nminutes = (int)(u - from);
    for (size_t i = from; i < u; i++)
        memcpy(h->minutes[i - from], all[i], 13);
    free(all);
    h->minutes_scanned_ms = now;
    return 0;
}

/* the integer value of field `name` in an HGETALL reply (0 when absent) */
static int64_t field_int(const redisReply *r, const char *name)
{
    const redisReply *v = hash_field(r, name);
    return v ? strtoll(v->str, NULL, 10) : 0;
}

/* slot of a stage name (s + 1), 0 for `zero` ("_entry"/"_none"), -1 unknown */
static int slot_of(const char *s, size_t n, char stages[][65], int ns, const char *zero)
{
    if (strlen(zero) == n && memcmp(s, zero, n) == 0)
        return 0;
    for (int i = 0; i < ns; i++)
        if (strlen(stages[i]) == n && memcmp(stages[i], s, n) == 0)
            return i + 1;
    return -1;
}

/* a histogram hash (bucket -> n) into counts[] */
static void hist_of(const redisReply *r, int64_t counts[CS_TT_NBUCKETS])
{
    memset(counts, 0, CS_TT_NBUCKETS * sizeof counts[0]);
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        int b = cs_tt_bucket_index(k->str, (int)k->len);
        if (b >= 0)
            counts[b] += strtoll(v->str, NULL, 10);
    }
}

static void put_hist(FILE *f, const int64_t c[CS_TT_NBUCKETS])
{
    fputc('{', f);
    for (int b = 0, n = 0; b < CS_TT_NBUCKETS; b++)
        if (c[b])
            fprintf(f, "%s\"%s\":%lld", n++ ? "," : "", cs_tt_bucket_name[b], (long long)c[b]);
    fputc('}', f);
}

/* {"n":N,"median":s,"p90":s,"median_open":bool,"p90_open":bool}; null seconds when empty */
static void put_stats(FILE *f, const int64_t c[CS_TT_NBUCKETS])
{
    int64_t n = 0;
    for (int b = 0; b < CS_TT_NBUCKETS; b++)
        n += c[b];
    int o50, o90;
    double q50 = cs_tt_quantile(c, 0.5, &o50), q90 = cs_tt_quantile(c, 0.9, &o90);
    fprintf(f, "{\"n\":%lld", (long long)n);
    if (q50 < 0)
        fputs(",\"median\":null,\"p90\":null", f);
    else
        fprintf(f, ",\"median\":%.3f,\"p90\":%.3f", q50, q90);
    fprintf(f, ",\"median_open\":%s,\"p90_open\":%s}", o50 ? "true" : "false",
            o90 ? "true" : "false");
}

/* SPEC §4.1 and the funnel viewers draw (timeto.h), from the hashes already read (active,
 * reached, ended, customers, transitions) and one more pipeline: time_to:<stage> and
 * customer_time_to:<stage> per stage, transition_time, by:<dim>:<metric> per dimension of the
 * running rule file. 0 ok, -1 with h->last_err. */
static int journey_json_timeto(cs_journey_reader *h, const cs_rkeys *rk, const cs_metrics *m,
                               char stages[][65], int ns, redisReply *const *base, FILE *f)
{
    const redisReply *r_active = base[0], *r_reached = base[1], *r_ended = base[2],
                     *r_customers = base[3], *r_trans = base[4];
    enum { MAXQ = 2 * CS_MAX_STAGES + 1 + 3 * CS_MAX_DIMS };
    static const char *const metric[3] = {"reached", "active", "ended"};
    char keys[MAXQ][CS_RKEYS_MAX + 160];
    const char *argv[MAXQ][8];
    int argc[MAXQ], nq = 0;
    int nd = m->ndims < CS_MAX_DIMS ? m->ndims : CS_MAX_DIMS;
    for (int i = 0; i < ns; i++) {
        char suffix[128];
        snprintf(suffix, sizeof suffix, CS_RK_TIME_TO "%.64s", stages[i]);
        cs_rkey(rk, suffix, keys[nq++], sizeof keys[0]);
        snprintf(suffix, sizeof suffix, CS_RK_CUSTOMER_TIME_TO "%.64s", stages[i]);
        cs_rkey(rk, suffix, keys[nq++], sizeof keys[0]);
    }
    cs_rkey(rk, CS_RK_TRANSITION_TIME, keys[nq++], sizeof keys[0]);
    for (int d = 0; d < nd; d++)
        for (int k = 0; k < 3; k++) {
            char suffix[128];
            snprintf(suffix, sizeof suffix, CS_RK_BY "%.64s:%s", m->dims[d], metric[k]);
            cs_rkey(rk, suffix, keys[nq++], sizeof keys[0]);
        }
    for (int i = 0; i < nq; i++) {
        argv[i][0] = "HGETALL";
        argv[i][1] = keys[i];
        argc[i] = 2;
    }
    redisReply *rep[MAXQ];
    if (cs_redis_pipeline(h->r, nq, (const char *const(*)[8])argv, argc, rep, h->last_err,
                          sizeof h->last_err) < 0)
        return link_failed(h);

    /* the funnel: sessions that reached at least each stage (from transitions) */
    int64_t tr[CS_NSLOTS][CS_NSLOTS];
    memset(tr, 0, sizeof tr);
    if (r_trans && r_trans->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i + 1 < r_trans->elements; i += 2) {
            const redisReply *k = r_trans->element[i], *v = r_trans->element[i + 1];
            if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
                continue;
            const char *gt = memchr(k->str, '>', k->len);
            if (!gt)
                continue;
            int a = slot_of(k->str, (size_t)(gt - k->str), stages, ns, "_entry");
            int b = slot_of(gt + 1, (size_t)(k->str + k->len - gt - 1), stages, ns, "_entry");
            if (a >= 0 && b > 0)
                tr[a][b] += strtoll(v->str, NULL, 10);
        }
    int64_t at_least[CS_MAX_STAGES];
    cs_funnel_at_least(&tr[0][0], CS_NSLOTS, ns, at_least);
    fputs(",\"funnel\":[", f);
    for (int i = 0; i < ns; i++) {
        fprintf(f, "%s{\"stage\":", i ? "," : "");
        cs_put_json(f, stages[i]);
        fprintf(f, ",\"at_least\":%lld,\"entered\":%lld,\"active\":%lld,\"ended\":%lld",
                (long long)at_least[i], (long long)field_int(r_reached, stages[i]),
                (long long)field_int(r_active, stages[i]), (long long)field_int(r_ended, stages[i]));
        if (i > 0 && at_least[i - 1] > 0)
            fprintf(f, ",\"conversion\":%.4f", (double)at_least[i] / (double)at_least[i - 1]);
        else
            fputs(",\"conversion\":null", f);
        fputc('}', f);
    }
    fputc(']', f);
    /* customers: whose journey stage is k now, and at k or beyond */
    fputs(",\"customer_funnel\":[", f);
    int64_t cnow[CS_MAX_STAGES], cal[CS_MAX_STAGES + 1];
    cal[ns] = 0;
    for (int i = ns - 1; i >= 0; i--) {
        cnow[i] = field_int(r_customers, stages[i]);
        cal[i] = cal[i + 1] + cnow[i];
    }
    for (int i = 0; i < ns; i++) {
        fprintf(f, "%s{\"stage\":", i ? "," : "");
        cs_put_json(f, stages[i]);
        fprintf(f, ",\"at_least\":%lld,\"now\":%lld", (long long)cal[i], (long long)cnow[i]);
        if (i > 0 && cal[i - 1] > 0)
            fprintf(f, ",\"conversion\":%.4f", (double)cal[i] / (double)cal[i - 1]);
        else
            fputs(",\"conversion\":null", f);
        fputc('}', f);
    }
    fprintf(f, "],\"customers_no_stage\":%lld", (long long)field_int(r_customers, "_none"));

    /* SPEC §4.1: the buckets (field names in seconds), and per stage median and p90 */
    fputs(",\"buckets\":[", f);
    for (int b = 0; b < CS_TT_NBUCKETS; b++)
        fprintf(f, "%s\"%s\"", b ? "," : "", cs_tt_bucket_name[b]);
    fputc(']', f);
    int64_t hs[CS_MAX_STAGES][CS_TT_NBUCKETS], hc[CS_MAX_STAGES][CS_TT_NBUCKETS];
    for (int i = 0; i < ns; i++) {
        hist_of(rep[2 * i], hs[i]);
        hist_of(rep[2 * i + 1], hc[i]);
    }
    const char *const names[2] = {"time_to", "customer_time_to"};
    for (int w = 0; w < 2; w++) {
        fprintf(f, ",\"%s\":{", names[w]);
        for (int i = 0; i < ns; i++) {
            if (i)
                fputc(',', f);
            cs_put_json(f, stages[i]);
            fputc(':', f);
            put_hist(f, w ? hc[i] : hs[i]);
        }
        fputc('}', f);
    }
    fputs(",\"time_to_stats\":{", f);
    for (int i = 0; i < ns; i++) {
        if (i)
            fputc(',', f);
        cs_put_json(f, stages[i]);
        fputs(":{\"sessions\":", f);
        put_stats(f, hs[i]);
        fputs(",\"customers\":", f);
        put_stats(f, hc[i]);
        fputc('}', f);
    }
    fputc('}', f);
    /* transition_time: {"a>b": {bucket: n}, ...} with per transition median and p90 */
    const redisReply *rt = rep[2 * ns];
    fputs(",\"transition_time\":{", f);
    int nt = 0;
    for (int a = 0; a <= ns; a++)
        for (int b = a + 1; b <= ns; b++) {
            if (!tr[a][b])
                continue;
            char pre[160];
            int pl = snprintf(pre, sizeof pre, "%s>%s:", a ? stages[a - 1] : "_entry", stages[b - 1]);
            int64_t c[CS_TT_NBUCKETS] = {0};
            if (rt && rt->type == REDIS_REPLY_ARRAY)
                for (size_t i = 0; i + 1 < rt->elements; i += 2) {
                    const redisReply *k = rt->element[i], *v = rt->element[i + 1];
                    if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING ||
                        (int)k->len <= pl || memcmp(k->str, pre, (size_t)pl) != 0)
                        continue;
                    int bi = cs_tt_bucket_index(k->str + pl, (int)k->len - pl);
                    if (bi >= 0)
                        c[bi] += strtoll(v->str, NULL, 10);
                }
            if (nt++)
                fputc(',', f);
            cs_put_json_n(f, pre, (size_t)pl - 1);
            fprintf(f, ":{\"count\":%lld,\"buckets\":", (long long)tr[a][b]);
            put_hist(f, c);
            fputs(",\"stats\":", f);
            put_stats(f, c);
            fputc('}', f);
        }
    fputc('}', f);
    /* the breakdown: by:<dim>:<metric> as stored ("<value>/<stage>" -> n) */
    fputs(",\"dimensions\":[", f);
    for (int d = 0; d < nd; d++) {
        if (d)
            fputc(',', f);
        cs_put_json(f, m->dims[d]);
    }
    fputs("],\"by\":{", f);
    for (int d = 0; d < nd; d++) {
        if (d)
            fputc(',', f);
        cs_put_json(f, m->dims[d]);
        fputc(':', f);
        fputc('{', f);
        for (int k = 0; k < 3; k++) {
            fprintf(f, "%s\"%s\":", k ? "," : "", metric[k]);
            put_hash(f, rep[2 * ns + 1 + 3 * d + k], stages, 0);
        }
        fputc('}', f);
    }
    fputc('}', f);
    for (int i = 0; i < nq; i++)
        freeReplyObject(rep[i]);
    return 0;
}

/* Builds the /api/journey body under h->mu. 0 ok; -1 with h->last_err (503). */
static int journey_json(cs_journey_reader *h, const cs_metrics *m, FILE *f)
{
    const char *journey = h->journey[0] ? h->journey : m->journey;
    cs_rkeys rk;
    if (cs_rkeys_init(&rk, h->prefix, journey) < 0) {
        snprintf(h->last_err, sizeof h->last_err, "prefix or journey too long");
        return -1;
    }
    const char *base = rk.base; /* "<prefix>:{<journey>}:" */
    /* a Redis Cluster: the node of the journey's slot ({J}); nothing otherwise */
    cs_redis_route(h->r, rk.base, rk.len);
    int64_t now = cs_wall_ms();
    if (cs_wall_ms() < h->retry_after_ms && !cs_redis_connected(h->r))
        return -1; /* backing off: last_err still says why */
    if (cs_redis_connect(h->r, h->last_err, sizeof h->last_err) < 0)
        return link_failed(h);

    /* meta + the counter hashes, one pipeline */
    char keys[NHASHES + 1][CS_RKEYS_MAX + 64];
    const char *argv[NHASHES + 1][8];
    int argc[NHASHES + 1];
    cs_rkey(&rk, CS_RK_META, keys[0], sizeof keys[0]);
    for (int i = 0; i < NHASHES; i++)
        cs_rkey(&rk, HASHES[i], keys[i + 1], sizeof keys[i + 1]);
    for (int i = 0; i <= NHASHES; i++) {
        argv[i][0] = "HGETALL";
        argv[i][1] = keys[i];
        argc[i] = 2;
    }
    redisReply *rep[NHASHES + 1];
    if (cs_redis_pipeline(h->r, NHASHES + 1, (const char *const(*)[8])argv, argc, rep,
                          h->last_err, sizeof h->last_err) < 0)
        return link_failed(h);
    for (int i = 0; i <= NHASHES; i++)
        if (rep[i]->type == REDIS_REPLY_ERROR) {
            snprintf(h->last_err, sizeof h->last_err, "%s HGETALL %s: %s", cs_redis_where(h->r),
                     keys[i], rep[i]->str);
            for (int j = 0; j <= NHASHES; j++)
                freeReplyObject(rep[j]);
            return -1;
        }

    /* stages: meta's list (what the writer uses), else the running rule file's */
    char stages[CS_MAX_STAGES][65];
    int ns = 0;
    const redisReply *sv = hash_field(rep[0], CS_RK_META_STAGES);
    if (sv && sv->len > 0) {
        const char *p = sv->str, *end = sv->str + sv->len;
        while (p <= end && ns < CS_MAX_STAGES) {
            const char *c = memchr(p, ',', (size_t)(end - p));
            size_t l = (size_t)((c ? c : end) - p);
            if (l > 0 && l < 65) {
                memcpy(stages[ns], p, l);
                stages[ns++][l] = '\0';
            }
            if (!c)
                break;
            p = c + 1;
        }
    } else {
        for (int i = 0; i < m->nstages && i < CS_MAX_STAGES; i++)
            snprintf(stages[ns++], 65, "%s", m->stages[i]);
    }

    fputs("{\"journey\":", f);
    cs_put_json(f, journey);
    fputs(",\"stages\":[", f);
    for (int i = 0; i < ns; i++) {
        if (i)
            fputc(',', f);
        cs_put_json(f, stages[i]);
    }
    fputc(']', f);
    const redisReply *v = hash_field(rep[0], CS_RK_META_UPDATED);
    fputs(",\"updated_ms\":", f);
    if (v)
        put_value(f, v->str, (size_t)v->len);
    else
        fputs("null", f);
    /* seq: the highest of the writers' seq:<instance> fields */
    long long seq = -1;
    fputs(",\"instances\":{", f);
    int ni = 0;
    for (size_t i = 0; rep[0]->type == REDIS_REPLY_ARRAY && i + 1 < rep[0]->elements; i += 2) {
        const redisReply *k = rep[0]->element[i], *x = rep[0]->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || x->type != REDIS_REPLY_STRING ||
            strncmp(k->str, CS_RK_META_SEQ, strlen(CS_RK_META_SEQ)) != 0)
            continue;
        long long s = strtoll(x->str, NULL, 10);
        if (s > seq)
            seq = s;
        if (ni++)
            fputc(',', f);
        cs_put_json_n(f, k->str + strlen(CS_RK_META_SEQ), (size_t)k->len - strlen(CS_RK_META_SEQ));
        fprintf(f, ":%lld", s);
    }
    fputc('}', f);
    if (seq >= 0)
        fprintf(f, ",\"seq\":%lld", seq);
    else
        fputs(",\"seq\":null", f);
    v = hash_field(rep[0], CS_RK_META_VERSION);
    fputs(",\"version\":", f);
    if (v)
        cs_put_json_n(f, v->str, (size_t)v->len);
    else
        fputs("null", f);
    v = hash_field(rep[0], CS_RK_META_RULES_SHA);
    fputs(",\"rules_sha256\":", f);
    if (v)
        cs_put_json_n(f, v->str, (size_t)v->len);
    else
        fputs("null", f);
    fprintf(f, ",\"server_ms\":%" PRId64, now);
    for (int i = 0; i < NHASHES; i++) {
        const int id = !strcmp(HASHES[i], CS_RK_IDENTITY);
        /* SPEC 3.1 merges and conflicts: only when the journey has them (without identity:
         * the key is never written and the JSON stays what it was) */
        if (id && (rep[i + 1]->type != REDIS_REPLY_ARRAY || rep[i + 1]->elements == 0))
            continue;
        fprintf(f, ",\"%s\":", HASHES[i]);
        put_hash(f, rep[i + 1], stages, strcmp(HASHES[i], "transitions") && !id ? ns : 0);
    }
    int trc = journey_json_timeto(h, &rk, m, stages, ns, rep + 1, f);
    for (int i = 0; i <= NHASHES; i++)
        freeReplyObject(rep[i]);
    if (trc < 0)
        return -1;

    /* minute buckets: the keys the last SCAN found, plus the minute after the newest (a new
     * minute shows up before the next SCAN) */
    if (scan_minutes(h, base, now) < 0)
        return -1;
    int nm = h->nminutes;
    char mins[MINUTES_SHOWN + 1][13];
    memcpy(mins, h->minutes, sizeof mins);
    if (nm > 0) {
        next_minute(mins[nm - 1], mins[nm]);
        if (mins[nm][0])
            nm++;
    }
    char mkeys[MINUTES_SHOWN + 1][CS_RKEYS_MAX + 64];
    const char *margv[MINUTES_SHOWN + 1][8];
    int margc[MINUTES_SHOWN + 1];
    redisReply *mrep[MINUTES_SHOWN + 1];
    for (int i = 0; i < nm; i++) {
        char suffix[64];
        snprintf(suffix, sizeof suffix, CS_RK_MINUTE "%.12s" CS_RK_MINUTE_TAIL, mins[i]);
        cs_rkey(&rk, suffix, mkeys[i], sizeof mkeys[i]);
        margv[i][0] = "HGETALL";
        margv[i][1] = mkeys[i];
        margc[i] = 2;
    }
    if (nm > 0 && cs_redis_pipeline(h->r, nm, (const char *const(*)[8])margv, margc, mrep,
                                    h->last_err, sizeof h->last_err) < 0)
        return link_failed(h);
    /* the newest MINUTES_SHOWN that exist */
    int exist = 0, first = 0;
    for (int i = 0; i < nm; i++)
        exist += mrep[i]->type == REDIS_REPLY_ARRAY && mrep[i]->elements > 0;
    if (exist > MINUTES_SHOWN)
        first = 1; /* the newest probe exists: drop the oldest */
    if (nm > 0 && mrep[nm - 1]->type == REDIS_REPLY_ARRAY && mrep[nm - 1]->elements > 0 &&
        h->nminutes > 0) {
        /* remember the new minute until the next SCAN */
        if (h->nminutes == MINUTES_SHOWN) {
            memmove(h->minutes[0], h->minutes[1], (size_t)(MINUTES_SHOWN - 1) * 13);
            h->nminutes--;
        }
        memcpy(h->minutes[h->nminutes++], mins[nm - 1], 13);
    }
    fputs(",\"minutes\":[", f);
    int out = 0;
    for (int i = first; i < nm; i++) {
        if (mrep[i]->type != REDIS_REPLY_ARRAY || mrep[i]->elements == 0)
            continue;
        fprintf(f, "%s{\"minute\":\"%s\",\"reached\":", out++ ? "," : "", mins[i]);
        put_hash(f, mrep[i], stages, ns);
        fputc('}', f);
    }
    for (int i = 0; i < nm; i++)
        freeReplyObject(mrep[i]);
    fputs("]}\n", f);
    return 0;
}


int cs_journey_read(cs_journey_reader *h, const cs_metrics *m, FILE **fp, char **buf, size_t *len,
                    char *err, size_t errlen)
{
    int rc = -1;
    pthread_mutex_lock(&h->mu);
    /* A connection that was up may have gone stale (Redis restarted, an idle timeout): the
     * failure closes it, and one more try on a new connection tells whether Redis is down. */
    for (int attempt = 0; attempt < 2; attempt++) {
        int had_connection = cs_redis_connected(h->r);
        *fp = open_memstream(buf, len);
        if (!*fp) {
            cs_seterr(err, errlen, "out of memory");
            break;
        }
        rc = journey_json(h, m, *fp);
        if (rc == 0)
            break;
        cs_seterr(err, errlen, "%s", h->last_err[0] ? h->last_err : "redis unavailable");
        fclose(*fp);
        free(*buf);
        *fp = NULL;
        *buf = NULL;
        if (!had_connection || cs_redis_connected(h->r))
            break; /* a fresh connection failed, or Redis answered with an error */
        h->retry_after_ms = 0;
    }
    pthread_mutex_unlock(&h->mu);
    return rc;
}
