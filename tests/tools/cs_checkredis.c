/* cs_checkredis — compares the clickstage hashes of one journey in Redis with an expected JSON
 * file ({"hash": {"field": n}}; hash names without the "<prefix>:{J}:" part) and prints every
 * difference. Missing fields count as 0. Only the SPEC §4 count hashes are compared (active,
 * reached, transitions, ended, ended_by, sessions, events, invalid, customers, by:*, minute:*,
 * and §4.1's time_to:*, transition_time, customer_time_to:*);
 * bookkeeping keys (`offsets`, `meta`, applied watermarks `wm`, snapshots `snap:*`, anything
 * else the daemon keeps) are not. Exit 0 when equal, 1 when not, 2 on error. Last stdout line:
 *   {"differences": N, "compared": M, "lost": L, "double_counted": D}
 * where, over the message-level hashes `events` (stages, _unclassified, _late) and `invalid`,
 * lost = sum of max(0, expected - redis) and double_counted = sum of max(0, redis - expected);
 * N counts every differing field of every compared hash. The summary also has "tt_compared":
 * the expected SPEC §4.1 fields compared (so a caller can tell they were), and "invariants":
 * §4.1's invariants broken in Redis or in the expected file (time_to buckets summing to other
 * than reached, transition_time buckets to other than transitions; each printed), which also
 * make the exit status 1.
 *
 *   cs_checkredis --redis URL|HOST:PORT --prefix clickstage --journey J --expect FILE
 *                 (any URL of pipeline/redisurl.h: a cluster node, redis+cluster://,
 *                  redis+sentinel://...)
 *                 [--events-only]   (compare only the `events` and `invalid` hashes)
 *                 [--minutes-expire] (the minute:* hashes may have expired (minute_ttl): a
 *                   field in Redis above the expected value is a difference (counted twice),
 *                   one below it or missing is not (expired, or expired and written again);
 *                   the summary adds "minute_fields": {"expected":E,"exact":X,"below":B,
 *                   "above":A}, "minute_keys_present":K)
 *                 [--dim-totals DIM] (the by:DIM:* hashes compared per stage, summed over
 *                   the values: fields "<stage>" prefixed by "*" and a slash. For a dimension with more distinct values
 *                   than max_values: which values are named and which are `_other` is
 *                   first-come in each process (docs/semantics.md "Dimensions"), so instances
 *                   that come and go name different ones; the totals per stage are exact all
 *                   the same. The summary adds "dim_values": the distinct values named in
 *                   Redis's by:DIM:reached, "dim_active_nonzero": by:DIM:active fields not 0)
 *                 [--json FILE]     (also write the summary with every differing field:
 *                   {"differences":N,"compared":M,"lost":L,"double_counted":D,
 *                    "messages_expected":E,"messages_counted":C,   (sums of events + invalid)
 *                    "by_hash":{"<hash>":n,...},
 *                    "fields":[{"hash":h,"field":f,"expected":e,"got":g},...]})
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "counts.h"
#include "redis.h"
#include "rkeys.h"

/* every (hash, field) seen on either side, once, in first-seen order */
typedef struct {
    char **hash, **field;
    size_t n, cap;
    cs_counts *seen;
} keylist;

static void keys_add(keylist *k, const char *hash, const char *field)
{
    if (cs_counts_get(k->seen, hash, field))
        return;
    cs_counts_add(k->seen, hash, field, 1);
    if (k->n == k->cap) {
        k->cap = k->cap ? k->cap * 2 : 1024;
        k->hash = realloc(k->hash, k->cap * sizeof *k->hash);
        k->field = realloc(k->field, k->cap * sizeof *k->field);
        if (!k->hash || !k->field) abort();
    }
    k->hash[k->n] = strdup(hash);
    k->field[k->n] = strdup(field);
    k->n++;
}

static void json_str(FILE *o, const char *s)
{
    fputc('"', o);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(o, "\\%c", *p);
        else if (*p < 0x20) fprintf(o, "\\u%04x", *p);
        else fputc(*p, o);
    }
    fputc('"', o);
}

/* a SPEC §4 count hash (what a drain's ground truth describes) */
static int count_hash(const char *hash)
{
    static const char *const names[] = {"active", "reached", "transitions", "ended", "ended_by",
                                        "sessions", "events", "invalid", "customers",
                                        "identity" /* SPEC 3.1 */};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(hash, names[i]))
            return 1;
    return !strncmp(hash, "by:", 3) || !strncmp(hash, "minute:", 7) ||
           !strncmp(hash, "time_to:", 8) || !strcmp(hash, "transition_time") ||
           !strncmp(hash, "customer_time_to:", 17);
}

static int tt_hash(const char *hash)
{
    return !strncmp(hash, "time_to:", 8) || !strcmp(hash, "transition_time") ||
           !strncmp(hash, "customer_time_to:", 17);
}

static int message_level(const char *hash)
{
    return !strcmp(hash, "events") || !strcmp(hash, "invalid");
}

/* --dim-totals: a by:DIM field "<value>/<stage>" as "*" "/<stage>" (the value is everything
 * before the last '/': a value may hold one); other hashes' fields unchanged */
static const char *dim_field(const char *dim_pre, const char *hash, const char *field)
{
    static char buf[600];
    if (!dim_pre[0] || strncmp(hash, dim_pre, strlen(dim_pre)))
        return field;
    const char *sl = strrchr(field, '/');
    snprintf(buf, sizeof buf, "*/%s", sl ? sl + 1 : field);
    return buf;
}

/* 1 the first time the value of "<value>/<stage>" is seen */
static int count_value(keylist *k, const char *field)
{
    char v[600];
    const char *sl = strrchr(field, '/');
    size_t n = sl ? (size_t)(sl - field) : strlen(field);
    if (n >= sizeof v) n = sizeof v - 1;
    memcpy(v, field, n);
    v[n] = 0;
    size_t before = k->n;
    keys_add(k, "v", v);
    return k->n > before;
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1:6379", *prefix = "clickstage", *journey = NULL, *expect = NULL;
    const char *json_out = NULL;
    int events_only = 0, minutes_expire = 0;
    const char *dim_totals = NULL;
    char dim_pre[300] = "";
    long dim_values = 0, dim_active_nonzero = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--events-only")) { events_only = 1; continue; }
        if (!strcmp(argv[i], "--minutes-expire")) { minutes_expire = 1; continue; }
        if (i + 1 >= argc) break;
        if (!strcmp(argv[i], "--redis")) addr = argv[++i];
        else if (!strcmp(argv[i], "--prefix")) prefix = argv[++i];
        else if (!strcmp(argv[i], "--journey")) journey = argv[++i];
        else if (!strcmp(argv[i], "--expect")) expect = argv[++i];
        else if (!strcmp(argv[i], "--json")) json_out = argv[++i];
        else if (!strcmp(argv[i], "--dim-totals")) dim_totals = argv[++i];
    }
    if (!journey || !expect) {
        fprintf(stderr, "usage: cs_checkredis --redis HOST:PORT --journey J --expect FILE\n");
        return 2;
    }
    FILE *f = fopen(expect, "r");
    if (!f) { perror(expect); return 2; }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) { perror("read"); return 2; }
    buf[n] = 0;
    fclose(f);
    if (dim_totals)
        snprintf(dim_pre, sizeof dim_pre, "by:%s:", dim_totals);
    cJSON *root = cJSON_Parse(buf);
    if (!root) { fprintf(stderr, "%s: not JSON\n", expect); return 2; }
    cs_counts *want = cs_counts_new(), *got = cs_counts_new();
    keylist keys = {0};
    keys.seen = cs_counts_new();
    /* --minutes-expire: the minute hashes on their own (compared "at most", below) */
    cs_counts *want_m = cs_counts_new(), *got_m = cs_counts_new();
    keylist mkeys = {0};
    mkeys.seen = cs_counts_new();
    long minute_keys_present = 0;
    for (cJSON *h = root->child; h; h = h->next)
        for (cJSON *fl = h->child; fl; fl = fl->next)
            if (minutes_expire && !strncmp(h->string, "minute:", 7)) {
                cs_counts_add(want_m, h->string, fl->string, (int64_t)fl->valuedouble);
                keys_add(&mkeys, h->string, fl->string);
            } else if (!events_only || !strcmp(h->string, "events") || !strcmp(h->string, "invalid")) {
                const char *field = dim_field(dim_pre, h->string, fl->string);
                cs_counts_add(want, h->string, field, (int64_t)fl->valuedouble);
                keys_add(&keys, h->string, field);
            }

    /* a URL (pipeline/redis.h: redis://, unix://, a socket path) or the older HOST:PORT */
    char url[600];
    snprintf(url, sizeof url, "%s%s", strstr(addr, "://") || addr[0] == '/' ? "" : "redis://",
             addr);
    char err[512];
    cs_redis_opts ro = {url, 2000, 30000};
    cs_redis *c = cs_redis_new(&ro, err, sizeof err);
    if (!c || cs_redis_connect(c, err, sizeof err) < 0) {
        fprintf(stderr, "redis %s: %s\n", addr, err);
        return 2;
    }
    char pattern[CS_RKEYS_MAX * 2];
    cs_rkeys rk;
    if (!cs_rk_pattern(pattern, sizeof pattern, prefix, journey, "*") ||
        cs_rkeys_init(&rk, prefix, journey) < 0) {
        fprintf(stderr, "prefix or journey too long\n");
        return 2;
    }
    /* a Redis Cluster (a redis:// URL of one of its nodes, or redis+cluster://): the SCAN and the
     * reads go to the node of the journey's slot; redirections are the layer's */
    cs_redis_route(c, rk.base, rk.len);
    keylist dimvals = {0};
    dimvals.seen = cs_counts_new();
    char cursor[32] = "0";
    do {
        const char *sa[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"};
        redisReply *r = cs_redis_cmd(c, 6, sa, NULL, err, sizeof err);
        if (!r || r->type != REDIS_REPLY_ARRAY) { fprintf(stderr, "SCAN failed: %s\n", r ? r->str : err); return 2; }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            const char *key = r->element[1]->element[i]->str;
            const char *jn, *hash;
            size_t jl, hl;
            if (cs_rk_split(prefix, key, strlen(key), &jn, &jl, &hash, &hl) < 0)
                continue;
            /* counts only; bookkeeping (offsets, applied watermarks, meta, snapshots) is not */
            if (!count_hash(hash))
                continue;
            if (events_only && strcmp(hash, "events") && strcmp(hash, "invalid"))
                continue;
            const char *ha[] = {"HGETALL", key};
            redisReply *hr = cs_redis_cmd(c, 2, ha, NULL, err, sizeof err);
            if (!hr) { fprintf(stderr, "HGETALL %s: %s\n", key, err); return 2; }
            if (hr->type != REDIS_REPLY_ARRAY) { freeReplyObject(hr); continue; }
            int minute = minutes_expire && !strncmp(hash, "minute:", 7);
            minute_keys_present += minute;
            int dimh = dim_pre[0] && !strncmp(hash, dim_pre, strlen(dim_pre));
            for (size_t j = 0; j + 1 < hr->elements; j += 2) {
                const char *field = dim_field(dim_pre, hash, hr->element[j]->str);
                int64_t v = atoll(hr->element[j + 1]->str);
                if (dimh && !strcmp(hash + strlen(dim_pre), "reached") &&
                    strncmp(hr->element[j]->str, "_other/", 7) &&
                    strncmp(hr->element[j]->str, "_unknown/", 9))
                    dim_values += count_value(&dimvals, hr->element[j]->str);
                if (dimh && !strcmp(hash + strlen(dim_pre), "active") && v)
                    dim_active_nonzero++;
                cs_counts_add(minute ? got_m : got, hash, field, v);
                keys_add(minute ? &mkeys : &keys, hash, field);
            }
            freeReplyObject(hr);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    cs_redis_free(c);
    long d = cs_counts_diff(want, "expected", got, "redis", stdout, 200);
    /* minute hashes that may have expired: only a value above the expected one is wrong */
    long m_exact = 0, m_below = 0, m_above = 0;
    for (size_t i = 0; i < mkeys.n; i++) {
        int64_t e = cs_counts_get(want_m, mkeys.hash[i], mkeys.field[i]);
        int64_t g = cs_counts_get(got_m, mkeys.hash[i], mkeys.field[i]);
        if (g > e) {
            if (m_above++ < 200)
                printf("  %s %s: expected=%lld redis=%lld (above: counted twice)\n", mkeys.hash[i],
                       mkeys.field[i], (long long)e, (long long)g);
        } else if (g == e) {
            m_exact++;
        } else {
            m_below++;
        }
    }
    d += m_above;
    long long lost = 0, dbl = 0, msgs_want = 0, msgs_got = 0;
    long nd = 0;
    for (size_t i = 0; i < keys.n; i++) {
        int64_t e = cs_counts_get(want, keys.hash[i], keys.field[i]);
        int64_t g = cs_counts_get(got, keys.hash[i], keys.field[i]);
        if (message_level(keys.hash[i])) {
            msgs_want += e;
            msgs_got += g;
        }
        if (e == g) continue;
        nd++;
        if (message_level(keys.hash[i])) {
            if (e > g) lost += e - g;
            else dbl += g - e;
        }
    }
    nd += m_above;
    if (nd != d) fprintf(stderr, "cs_checkredis: internal: %ld vs %ld differences\n", nd, d);
    long tt_compared = 0, inv = 0;
    for (size_t i = 0; i < keys.n; i++)
        tt_compared += tt_hash(keys.hash[i]) && cs_counts_get(want, keys.hash[i], keys.field[i]);
    if (!events_only) {
        long iv = cs_counts_check_tt(got, stdout, 50);
        if (iv) printf("SPEC 4.1 invariants broken in Redis: %ld\n", iv);
        long ie = cs_counts_check_tt(want, stdout, 50);
        if (ie) printf("SPEC 4.1 invariants broken in the expected file: %ld\n", ie);
        inv = iv + ie;
    }
    if (json_out) {
        FILE *o = fopen(json_out, "w");
        if (!o) { perror(json_out); return 2; }
        fprintf(o, "{\"differences\":%ld,\"compared\":%ld,\"lost\":%lld,\"double_counted\":%lld,"
                   "\"tt_compared\":%ld,\"invariants\":%ld,"
                   "\"messages_expected\":%lld,\"messages_counted\":%lld,\"by_hash\":{",
                nd, cs_counts_size(want), lost, dbl, tt_compared, inv, msgs_want, msgs_got);
        /* per hash: how many fields differ (hash names in first-seen order) */
        cs_counts *per = cs_counts_new();
        keylist hk = {0};
        hk.seen = cs_counts_new();
        for (size_t i = 0; i < keys.n; i++) {
            int64_t e = cs_counts_get(want, keys.hash[i], keys.field[i]);
            int64_t g = cs_counts_get(got, keys.hash[i], keys.field[i]);
            if (e == g) continue;
            cs_counts_add(per, keys.hash[i], "", 1);
            keys_add(&hk, keys.hash[i], "");
        }
        for (size_t i = 0; i < hk.n; i++) {
            if (i) fputc(',', o);
            json_str(o, hk.hash[i]);
            fprintf(o, ":%lld", (long long)cs_counts_get(per, hk.hash[i], ""));
        }
        fprintf(o, "},\"fields\":[");
        int first = 1;
        for (size_t i = 0; i < keys.n; i++) {
            int64_t e = cs_counts_get(want, keys.hash[i], keys.field[i]);
            int64_t g = cs_counts_get(got, keys.hash[i], keys.field[i]);
            if (e == g) continue;
            fprintf(o, "%s\n{\"hash\":", first ? "" : ",");
            first = 0;
            json_str(o, keys.hash[i]);
            fprintf(o, ",\"field\":");
            json_str(o, keys.field[i]);
            fprintf(o, ",\"expected\":%lld,\"got\":%lld}", (long long)e, (long long)g);
        }
        fprintf(o, "]");
        if (dim_totals)
            fprintf(o, ",\"dim_values\":%ld,\"dim_active_nonzero\":%ld", dim_values,
                    dim_active_nonzero);
        if (minutes_expire)
            fprintf(o, ",\"minute_fields\":{\"expected\":%ld,\"exact\":%ld,\"below\":%ld,"
                       "\"above\":%ld},\"minute_keys_present\":%ld",
                    cs_counts_size(want_m), m_exact, m_below, m_above, minute_keys_present);
        fprintf(o, "}\n");
        if (fclose(o) != 0) { perror(json_out); return 2; }
    }
    if (dim_totals)
        printf("--dim-totals %s: %ld distinct values named in by:%s:reached, %ld by:%s:active "
               "fields not 0\n", dim_totals, dim_values, dim_totals, dim_active_nonzero, dim_totals);
    if (minutes_expire)
        printf("{\"differences\": %ld, \"compared\": %ld, \"lost\": %lld, \"double_counted\": %lld, "
               "\"tt_compared\": %ld, \"invariants\": %ld, "
               "\"minute_fields\": {\"expected\": %ld, \"exact\": %ld, \"below\": %ld, \"above\": %ld}, "
               "\"minute_keys_present\": %ld}\n",
               d, cs_counts_size(want), lost, dbl, tt_compared, inv, cs_counts_size(want_m), m_exact,
               m_below, m_above, minute_keys_present);
    else
        printf("{\"differences\": %ld, \"compared\": %ld, \"lost\": %lld, \"double_counted\": %lld, "
               "\"tt_compared\": %ld, \"invariants\": %ld}\n",
               d, cs_counts_size(want), lost, dbl, tt_compared, inv);
    return d || inv ? 1 : 0;
}
