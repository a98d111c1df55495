#include "refmodel.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aggregate.h"

typedef struct rcust {
    char *id;
    int64_t last;
    int64_t first; /* SPEC §4.1 C.first: the event that began the remembered journey */
    int stage;     /* journey: 0 none, s+1 */
    int has_sess;
    int64_t s_start, s_last;
    int64_t s_reached_at; /* event time at which the session reached s_stage */
    int s_stage;
    char *dimv[CS_MAX_DIMS]; /* NULL = _unknown */
    /* An entry is a key: a session key (its s_* fields) and/or a customer key (the journey:
     * last, first, stage). v1: the same key, and every entry has a journey until finish.
     * SPEC §3.1 identity: a device that logged in keeps its entry for its session and alias. */
    int journey;   /* 1: a live customer journey under this key */
    char *alias;   /* identity: alias(d), the person (the key as looked up), or NULL */
    int64_t klast; /* identity: the latest event time of this key as a session key (the device's
                      clock: its alias is forgotten customer_ttl after it) */
    int kseen;     /* identity: klast is set */
    struct rcust *next;
} rcust;

struct ref_model {
    const cs_ruleset *rs;
    cs_session_conf k;
    const char *dim_paths[CS_MAX_DIMS][CS_MAX_PATHS];
    int dim_npaths[CS_MAX_DIMS];
    int ndims, nstages, nparts;
    rcust **buckets;
    size_t nbuckets;
    int64_t *part_max;
    cs_counts *c;
    char *dimseen[CS_MAX_DIMS][CS_MAX_DIM_VALUES];
    int ndimseen[CS_MAX_DIMS];
    /* SPEC §3.1 identity: on, and the device [0] and person [1] paths */
    int identity;
    const char *id_paths[2][CS_MAX_PATHS];
    int id_n[2];
};

static const char *const std_paths[CS_F_NSTD][5] = {
    {"userId", "user_id", "customer_id", "anonymousId", "anonymous_id"},
    {"event", "type"},
    {"timestamp", "ts", "originalTimestamp"},
    {"url", "context.page.url", "properties.url"},
    {"channel", "context.campaign.medium", "properties.channel"},
};

ref_model *ref_new(const cs_ruleset *rs, const char *const *dim_paths, int nparts)
{
    ref_model *m = calloc(1, sizeof *m);
    m->rs = rs;
    m->k = *cs_rules_session(rs);
    m->ndims = cs_rules_ndims(rs);
    m->nstages = cs_rules_nstages(rs);
    for (int d = 0; d < m->ndims; d++) {
        const cs_dim_conf *dc = cs_rules_dim(rs, d);
        if (dim_paths && dim_paths[d]) {
            m->dim_paths[d][0] = dim_paths[d];
            m->dim_npaths[d] = 1;
        } else {
            for (int i = 0; i < dc->npaths; i++)
                m->dim_paths[d][i] = dc->paths[i];
            m->dim_npaths[d] = dc->npaths;
        }
    }
    m->identity = cs_rules_identity(rs);
    for (int k = 0; k < 2 && m->identity; k++) {
        const char *const *paths;
        m->id_n[k] = cs_rules_identity_paths(rs, k, &paths);
        for (int i = 0; i < m->id_n[k]; i++)
            m->id_paths[k][i] = paths[i];
    }
    m->nbuckets = 1 << 16;
    m->buckets = calloc(m->nbuckets, sizeof *m->buckets);
    m->nparts = nparts;
    m->part_max = malloc((size_t)nparts * sizeof *m->part_max);
    for (int p = 0; p < nparts; p++)
        m->part_max[p] = INT64_MIN;
    m->c = cs_counts_new();
    return m;
}

void ref_free(ref_model *m)
{
    for (size_t b = 0; b < m->nbuckets; b++)
        for (rcust *c = m->buckets[b], *n; c; c = n) {
            n = c->next;
            free(c->id);
            free(c->alias);
            for (int d = 0; d < CS_MAX_DIMS; d++)
                free(c->dimv[d]);
            free(c);
        }
    for (int d = 0; d < CS_MAX_DIMS; d++)
        for (int i = 0; i < m->ndimseen[d]; i++)
            free(m->dimseen[d][i]);
    free(m->buckets);
    free(m->part_max);
    cs_counts_free(m->c);
    free(m);
}

/* ---- decoding with cJSON ----------------------------------------------------------------- */

static const cJSON *get_path(const cJSON *root, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *cur = root;
    for (char *save, *seg = strtok_r(buf, ".", &save); seg; seg = strtok_r(NULL, ".", &save)) {
        if (!cJSON_IsObject(cur))
            return NULL;
        const cJSON *nx = NULL;
        for (const cJSON *ch = cur->child; ch; ch = ch->next) /* first duplicate wins */
            if (ch->string && strcmp(ch->string, seg) == 0) {
                nx = ch;
                break;
            }
        cur = nx;
        if (!cur)
            return NULL;
    }
    return cur;
}

/* Textual value of a scalar ("" when absent/null/empty/object/array). */
static const char *scalar(const cJSON *v, char *buf, size_t cap, int *is_num)
{
    *is_num = 0;
    if (!v)
        return "";
    if (cJSON_IsString(v))
        return v->valuestring;
    if (cJSON_IsBool(v))
        return cJSON_IsTrue(v) ? "true" : "false";
    if (cJSON_IsNumber(v)) {
        *is_num = 1;
        snprintf(buf, cap, "%.17g", v->valuedouble);
        return buf;
    }
    return "";
}

static int depth_of(const cJSON *v)
{
    int d = 0;
    for (const cJSON *c = v->child; c; c = c->next) {
        int cd = depth_of(c);
        if (cd > d)
            d = cd;
    }
    return (cJSON_IsObject(v) || cJSON_IsArray(v)) ? d + 1 : 0;
}

static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* An independent, sscanf-based RFC 3339 reader (the decoder has its own). */
static int ref_rfc3339(const char *s, int64_t *out)
{
    int Y, M, D, h, mi, sec, n = 0;
    char sep;
    if (sscanf(s, "%4d-%2d-%2d%c%2d:%2d:%2d%n", &Y, &M, &D, &sep, &h, &mi, &sec, &n) != 7 ||
        n != 19)
        return -1;
    if (sep != 'T' && sep != 't' && sep != ' ')
        return -1;
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0;
    if (M < 1 || M > 12 || D < 1 || D > mdays[M - 1] + (M == 2 && leap) || h > 23 || mi > 59 ||
        sec > 60)
        return -1;
    const char *p = s + 19;
    int64_t ms = 0;
    if (*p == '.') {
        p++;
        int digits = 0;
        while (*p >= '0' && *p <= '9') {
            if (digits < 3)
                ms = ms * 10 + (*p - '0');
            digits++;
            p++;
        }
        if (!digits)
            return -1;
        for (; digits < 3; digits++)
            ms *= 10;
    }
    int64_t off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (sscanf(p + 1, "%2d:%2d", &oh, &om) != 2 || strlen(p) != 6 || oh > 23 || om > 59)
            return -1;
        off = (oh * 60 + om) * 60000LL * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return -1;
    }
    if (*p)
        return -1;
    if (sec == 60)
        sec = 59; /* documented: a leap second reads as :59 */
    *out = ((days_from_civil(Y, M, D) * 24 + h) * 60 + mi) * 60000LL + sec * 1000LL + ms - off;
    return 0;
}

typedef struct rev {
    char customer[512]; /* v1: the customer; identity: the session key (device, else person) */
    char device[512], person[512]; /* identity: "" when absent (person: also when = device) */
    int64_t t;
    cs_decoded d;
    char bufs[CS_MAX_FIELDS][1024]; /* values longer than this are cut (no generated value is) */
} rev;

static int first_of(const cJSON *root, const char *const *paths, int n, char *buf, size_t cap,
                    int *is_num, const cJSON **node)
{
    for (int i = 0; i < n && paths[i]; i++) {
        const cJSON *v = get_path(root, paths[i]);
        char tmp[64];
        const char *s = scalar(v, tmp, sizeof tmp, is_num);
        if (*s) {
            snprintf(buf, cap, "%s", s);
            if (node)
                *node = v;
            return 1;
        }
    }
    return 0;
}

/* SPEC §3.1: an id is the first of `paths` holding a non-empty string or an integer (as its
 * decimal text; cJSON reads numbers as doubles, exact up to 2^53, which generated ids stay
 * under); floats, booleans, null, objects and arrays are not ids, a later path may still be. */
static int first_id(const cJSON *root, const char *const *paths, int n, char *buf, size_t cap)
{
    buf[0] = 0;
    for (int i = 0; i < n; i++) {
        const cJSON *v = get_path(root, paths[i]);
        if (cJSON_IsString(v) && v->valuestring[0]) {
            snprintf(buf, cap, "%s", v->valuestring);
            return 1;
        }
        if (cJSON_IsNumber(v) && v->valuedouble == (double)(long long)v->valuedouble) {
            snprintf(buf, cap, "%lld", (long long)v->valuedouble);
            return 1;
        }
    }
    return 0;
}

/* The ids of an event under identity; 0 when it has neither (no_customer). */
static int ref_ids(const ref_model *m, const cJSON *root, rev *e)
{
    first_id(root, m->id_paths[0], m->id_n[0], e->device, sizeof e->device);
    first_id(root, m->id_paths[1], m->id_n[1], e->person, sizeof e->person);
    if (strcmp(e->person, e->device) == 0)
        e->person[0] = 0; /* the device id sent as the person: no person */
    snprintf(e->customer, sizeof e->customer, "%s", e->device[0] ? e->device : e->person);
    return e->customer[0] != 0;
}

static cs_invalid ref_decode(ref_model *m, const char *payload, size_t len, int64_t kts, rev *e)
{
    if (len > CS_DEFAULT_MAX_BYTES)
        return CS_INV_TOO_LARGE;
    char *nt = malloc(len + 1);
    memcpy(nt, payload, len);
    nt[len] = 0;
    if (strlen(nt) != len) { /* NUL inside: cJSON would stop there */
        free(nt);
        return CS_INV_NOT_JSON;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(nt, &end, 1);
    free(nt);
    if (!root)
        return CS_INV_NOT_JSON;
    cs_invalid r = CS_DECODE_OK;
    memset(&e->d, 0, sizeof e->d);
    for (int f = 0; f < CS_MAX_FIELDS; f++)
        e->bufs[f][0] = 0;
    int isnum = 0;
    int own_time = 1;
    const cJSON *node = NULL;
    if (depth_of(root) > CS_DEFAULT_MAX_DEPTH) {
        r = CS_INV_TOO_DEEP;
    } else if (!cJSON_IsObject(root)) {
        r = CS_INV_NOT_OBJECT;
    } else if (m->identity ? !ref_ids(m, root, e)
                           : (!first_of(root, std_paths[CS_F_CUSTOMER], 5, e->customer,
                                        sizeof e->customer, &isnum, &node) ||
                              (isnum && node->valuedouble != (double)(long long)node->valuedouble))) {
        r = CS_INV_NO_CUSTOMER;
    } else {
        if (isnum && !m->identity)
            snprintf(e->customer, sizeof e->customer, "%lld", (long long)node->valuedouble);
        const cJSON *ev = NULL;
        for (int i = 0; i < 2 && !ev; i++) {
            const cJSON *v = get_path(root, std_paths[CS_F_EVENT][i]);
            char tmp[64];
            if (v && *scalar(v, tmp, sizeof tmp, &isnum))
                ev = v;
        }
        if (!ev || !cJSON_IsString(ev)) {
            r = CS_INV_NO_EVENT;
        } else {
            snprintf(e->bufs[CS_F_EVENT], sizeof e->bufs[0], "%s", ev->valuestring);
            char tb[256];
            if (first_of(root, std_paths[CS_F_TIME], 3, tb, sizeof tb, &isnum, &node)) {
                if (isnum) {
                    if (node->valuedouble != (double)(long long)node->valuedouble)
                        r = CS_INV_BAD_TIME;
                    else
                        e->t = (long long)node->valuedouble;
                } else if (cJSON_IsString(node) && tb[strspn(tb, "0123456789")] == 0) {
                    e->t = strtoll(tb, NULL, 10);
                } else if (!cJSON_IsString(node) || ref_rfc3339(tb, &e->t) != 0) {
                    r = CS_INV_BAD_TIME;
                }
            } else {
                e->t = kts;
                own_time = 0;
            }
        }
    }
    /* SPEC v1.1 time bounds, written out plainly: a floor, then "ahead of the message
     * timestamp" (own time only) or "ahead of this machine's clock" by more than max_future */
    if (r == CS_DECODE_OK && e->t < CS_MIN_EVENT_TIME_MS)
        r = CS_INV_BAD_TIME;
    if (r == CS_DECODE_OK && m->k.max_future_ms > 0) {
        __int128 t = e->t, lim_msg = (__int128)kts + m->k.max_future_ms;
        __int128 lim_wall = (__int128)time(NULL) * 1000 + 999 + m->k.max_future_ms;
        if ((own_time && t > lim_msg) || t > lim_wall)
            r = CS_INV_FUTURE_TIME;
    }
    if (r == CS_DECODE_OK) {
        first_of(root, std_paths[CS_F_URL], 3, e->bufs[CS_F_URL], sizeof e->bufs[0], &isnum, NULL);
        first_of(root, std_paths[CS_F_CHANNEL], 3, e->bufs[CS_F_CHANNEL], sizeof e->bufs[0], &isnum,
                 NULL);
        for (int d = 0; d < m->ndims; d++) {
            int f = cs_rules_dim(m->rs, d)->field;
            if (f >= CS_F_NSTD && m->dim_npaths[d])
                first_of(root, m->dim_paths[d], m->dim_npaths[d], e->bufs[f], sizeof e->bufs[f], &isnum, NULL);
        }
        for (int f = 0; f < CS_MAX_FIELDS; f++) {
            e->d.f[f].p = e->bufs[f];
            e->d.f[f].len = (uint32_t)strlen(e->bufs[f]);
        }
        e->d.ts_ms = e->t;
    }
    cJSON_Delete(root);
    return r;
}

/* ---- sessions ---------------------------------------------------------------------------- */

static rcust *lookup(ref_model *m, const char *id, int create)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = id; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    rcust **b = &m->buckets[h & (m->nbuckets - 1)];
    for (rcust *c = *b; c; c = c->next)
        if (strcmp(c->id, id) == 0)
            return c;
    if (!create)
        return NULL;
    rcust *c = calloc(1, sizeof *c);
    c->id = strdup(id);
    c->next = *b;
    *b = c;
    return c;
}

static const char *stage_slot(const ref_model *m, int slot, const char *zero)
{
    return slot == 0 ? zero : cs_rules_stage_name(m->rs, slot - 1);
}

/* SPEC §4.1 buckets, written out here on their own (not aggregate.h's table): the first upper
 * bound b (seconds) with d <= b * 1000 ms, else "inf"; d below 0 counts as 0. */
static const char *tt_bucket(int64_t d_ms, char *buf, size_t cap)
{
    static const long long bounds[] = {0,     10,     30,     60,     120,     300,
                                       600,   1800,   3600,   7200,   21600,   43200,
                                       86400, 172800, 604800, 1209600, 2592000, 7776000};
    if (d_ms < 0)
        d_ms = 0;
    for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++)
        if (d_ms <= bounds[i] * 1000) {
            snprintf(buf, cap, "%lld", bounds[i]);
            return buf;
        }
    return "inf";
}

static const char *dimname(const rcust *c, int d) { return c->dimv[d] ? c->dimv[d] : "_unknown"; }

static void by(ref_model *m, int d, const char *metric, const char *value, int slot, int64_t n)
{
    char hash[128], field[512];
    snprintf(hash, sizeof hash, "by:%s:%s", cs_rules_dim(m->rs, d)->name, metric);
    snprintf(field, sizeof field, "%s/%s", value, stage_slot(m, slot, "_none"));
    cs_counts_add(m->c, hash, field, n);
}

static int64_t deadline(const ref_model *m, const rcust *c, int *reason)
{
    int64_t g = c->s_last + m->k.gap_ms;
    if (m->k.max_duration_ms > 0 && c->s_start + m->k.max_duration_ms < g) {
        *reason = CS_END_MAX_DURATION;
        return c->s_start + m->k.max_duration_ms;
    }
    *reason = CS_END_GAP;
    return g;
}

static void end_session(ref_model *m, rcust *c, int reason)
{
    cs_counts_add(m->c, "ended", stage_slot(m, c->s_stage, "_none"), 1);
    cs_counts_add(m->c, "ended_by", cs_end_reason_name(reason), 1);
    cs_counts_add(m->c, "sessions", "ended", 1);
    cs_counts_add(m->c, "sessions", "active", -1);
    cs_counts_add(m->c, "active", stage_slot(m, c->s_stage, "_none"), -1);
    for (int d = 0; d < m->ndims; d++) {
        by(m, d, "active", dimname(c, d), c->s_stage, -1);
        by(m, d, "ended", dimname(c, d), c->s_stage, 1);
        free(c->dimv[d]);
        c->dimv[d] = NULL;
    }
    c->has_sess = 0;
}

static const char *dim_value(ref_model *m, int d, const char *v)
{
    for (int i = 0; i < m->ndimseen[d]; i++)
        if (strcmp(m->dimseen[d][i], v) == 0)
            return v;
    if ((uint32_t)m->ndimseen[d] >= cs_rules_dim(m->rs, d)->max_values)
        return "_other";
    m->dimseen[d][m->ndimseen[d]++] = strdup(v);
    return v;
}

/* The v1 journey step of a customer key: created (+1 _none), or forgotten and started over
 * when the event is more than customer_ttl after its last, then last = max. Returns the entry. */
static rcust *journey_touch(ref_model *m, rcust *c, const char *key, int64_t t)
{
    if (!c)
        c = lookup(m, key, 1);
    if (!c->journey) {
        c->journey = 1;
        c->stage = 0;
        c->last = t;
        c->first = t;
        cs_counts_add(m->c, "customers", "_none", 1);
    } else {
        if (t > c->last + m->k.customer_ttl_ms) {
            cs_counts_add(m->c, "customers", stage_slot(m, c->stage, "_none"), -1);
            cs_counts_add(m->c, "customers", "_none", 1);
            c->stage = 0;
            c->first = t; /* the journey starts over */
        }
        if (t > c->last)
            c->last = t;
    }
    return c;
}

/* A journey the event finds more than customer_ttl after its last is forgotten (as the
 * watermark would have forgotten it): -1 under its stage. */
static void journey_expire(ref_model *m, rcust *c, int64_t t)
{
    if (c && c->journey && t > c->last + m->k.customer_ttl_ms) {
        cs_counts_add(m->c, "customers", stage_slot(m, c->stage, "_none"), -1);
        c->journey = 0;
    }
}

/* SPEC §3.1 keys are per partition (state lives with partitions: a person whose devices land
 * on two partitions is one customer per partition). */
static const char *pkey(char *buf, size_t cap, int part, const char *id)
{
    snprintf(buf, cap, "%d\x1f%s", part, id);
    return buf;
}

/* SPEC §3.1 (docs/identity.md "What §3.1 means operationally", steps 3 and 4) for a valid,
 * not late event whose session entry is s: the alias, the merge, and the customer key's
 * entry, with the journey touched. */
static rcust *identity_customer(ref_model *m, int part, rcust *s, const rev *e, int64_t t)
{
    char kp[600];
    if (s->kseen && t > s->klast + m->k.customer_ttl_ms) {
        free(s->alias); /* forgotten with its device */
        s->alias = NULL;
    }
    if (!s->kseen || t > s->klast)
        s->klast = t;
    s->kseen = 1;
    if (!e->person[0]) { /* a device alone: its alias, else itself */
        if (s->alias)
            return journey_touch(m, lookup(m, s->alias, 0), s->alias, t);
        return journey_touch(m, s, s->id, t);
    }
    pkey(kp, sizeof kp, part, e->person);
    rcust *c = lookup(m, kp, 0);
    if (e->device[0]) { /* s is the device's entry */
        if (!s->alias) {
            s->alias = strdup(kp);
            journey_expire(m, s, t);
            if (s->journey) { /* merge d's journey into p's, before the event is applied */
                journey_expire(m, c, t);
                int st = s->stage;
                int64_t first = s->first, last = s->last;
                cs_counts_add(m->c, "customers", stage_slot(m, s->stage, "_none"), -1);
                if (c && c->journey) {
                    cs_counts_add(m->c, "customers", stage_slot(m, c->stage, "_none"), -1);
                    if (c->stage > st)
                        st = c->stage;
                    if (c->first < first)
                        first = c->first;
                    if (c->last > last)
                        last = c->last;
                }
                if (!c)
                    c = lookup(m, kp, 1);
                c->journey = 1;
                c->stage = st;
                c->first = first;
                c->last = last;
                s->journey = 0;
                cs_counts_add(m->c, "customers", stage_slot(m, st, "_none"), 1);
                cs_counts_add(m->c, "identity", "merged", 1);
            }
        } else if (strcmp(s->alias, kp) != 0) {
            cs_counts_add(m->c, "identity", "conflicts", 1);
        }
    }
    return journey_touch(m, c, kp, t);
}

void ref_event(ref_model *m, int part, const char *payload, size_t len, int64_t kafka_ts)
{
    static rev e;
    cs_invalid r = ref_decode(m, payload, len, kafka_ts, &e);
    if (r != CS_DECODE_OK) {
        cs_counts_add(m->c, "invalid", cs_invalid_name(r), 1);
        return;
    }
    int64_t t = e.t;
    if (t > m->part_max[part])
        m->part_max[part] = t;
    char ks[600];
    const char *skey = m->identity ? pkey(ks, sizeof ks, part, e.customer) : e.customer;
    rcust *c = lookup(m, skey, 0); /* the session's entry; v1: the customer's too */
    if (c && c->has_sess) {
        int reason;
        int64_t dl = deadline(m, c, &reason);
        if (t > dl) {
            end_session(m, c, reason);
        } else if (t < c->s_start - m->k.gap_ms) {
            cs_counts_add(m->c, "events", "_late", 1);
            return;
        }
    }
    rcust *cu; /* the customer's entry */
    if (m->identity) {
        if (!c)
            c = lookup(m, skey, 1);
        cu = identity_customer(m, part, c, &e, t);
    } else {
        c = cu = journey_touch(m, c, skey, t);
    }
    if (!c->has_sess) {
        c->has_sess = 1;
        c->s_start = c->s_last = t;
        c->s_stage = 0;
        cs_counts_add(m->c, "sessions", "started", 1);
        cs_counts_add(m->c, "sessions", "active", 1);
        cs_counts_add(m->c, "active", "_none", 1);
        for (int d = 0; d < m->ndims; d++)
            by(m, d, "active", "_unknown", 0, 1);
    } else {
        if (t < c->s_start)
            c->s_start = t;
        if (t > c->s_last)
            c->s_last = t;
    }
    for (int d = 0; d < m->ndims; d++) {
        const cs_sv *v = &e.d.f[cs_rules_dim(m->rs, d)->field];
        if (c->dimv[d] || !v->len)
            continue;
        /* a dimension value keeps its first CS_MAX_DIM_VALUE_BYTES bytes, cut back to the
         * start of a UTF-8 character (aggregate.h) */
        char cut[CS_MAX_DIM_VALUE_BYTES + 1];
        size_t n = strlen(v->p);
        if (n > CS_MAX_DIM_VALUE_BYTES) {
            n = CS_MAX_DIM_VALUE_BYTES;
            for (int k = 0; k < 3 && ((unsigned char)v->p[n] & 0xC0) == 0x80; k++)
                n--;
        }
        memcpy(cut, v->p, n);
        cut[n] = 0;
        if (!n)
            continue;
        c->dimv[d] = strdup(dim_value(m, d, cut));
        by(m, d, "active", "_unknown", c->s_stage, -1);
        by(m, d, "active", c->dimv[d], c->s_stage, 1);
    }
    int stage = cs_rules_classify(m->rs, &e.d);
    if (stage < 0) {
        cs_counts_add(m->c, "events", "_unclassified", 1);
        return;
    }
    cs_counts_add(m->c, "events", cs_rules_stage_name(m->rs, stage), 1);
    int to = stage + 1;
    if (to > c->s_stage) {
        char f[256], hb[32], tb[32];
        snprintf(f, sizeof f, "%s>%s", stage_slot(m, c->s_stage, "_entry"),
                 cs_rules_stage_name(m->rs, stage));
        cs_counts_add(m->c, "transitions", f, 1);
        /* SPEC §4.1: from S.start as it stands now; from when the session reached its stage */
        snprintf(hb, sizeof hb, "time_to:%s", cs_rules_stage_name(m->rs, stage));
        cs_counts_add(m->c, hb, tt_bucket(t - c->s_start, tb, sizeof tb), 1);
        char tf[300];
        snprintf(tf, sizeof tf, "%s:%s", f,
                 tt_bucket(t - (c->s_stage ? c->s_reached_at : c->s_start), tb, sizeof tb));
        cs_counts_add(m->c, "transition_time", tf, 1);
        c->s_reached_at = t;
        cs_counts_add(m->c, "reached", cs_rules_stage_name(m->rs, stage), 1);
        cs_counts_add(m->c, "active", stage_slot(m, c->s_stage, "_none"), -1);
        cs_counts_add(m->c, "active", cs_rules_stage_name(m->rs, stage), 1);
        time_t secs = (time_t)((t >= 0 ? t : t - 59999) / 60000 * 60);
        struct tm tm;
        gmtime_r(&secs, &tm);
        char hash[64];
        snprintf(hash, sizeof hash, "minute:%04d%02d%02d%02d%02d:reached", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min);
        cs_counts_add(m->c, hash, cs_rules_stage_name(m->rs, stage), 1);
        for (int d = 0; d < m->ndims; d++) {
            by(m, d, "active", dimname(c, d), c->s_stage, -1);
            by(m, d, "active", dimname(c, d), to, 1);
            by(m, d, "reached", dimname(c, d), to, 1);
        }
        c->s_stage = to;
        if (to > cu->stage) {
            cs_counts_add(m->c, "customers", stage_slot(m, cu->stage, "_none"), -1);
            cs_counts_add(m->c, "customers", cs_rules_stage_name(m->rs, stage), 1);
            char ch[128], tb2[32];
            snprintf(ch, sizeof ch, "customer_time_to:%s", cs_rules_stage_name(m->rs, stage));
            cs_counts_add(m->c, ch, tt_bucket(t - cu->first, tb2, sizeof tb2), 1);
            cu->stage = to;
        }
    }
}

void ref_finish(ref_model *m, int reason)
{
    int64_t W = INT64_MAX;
    int any = 0;
    for (int p = 0; p < m->nparts; p++)
        if (m->part_max[p] != INT64_MIN) {
            any = 1;
            if (m->part_max[p] - m->k.lateness_ms < W)
                W = m->part_max[p] - m->k.lateness_ms;
        }
    if (!any)
        W = INT64_MIN;
    for (size_t b = 0; b < m->nbuckets; b++)
        for (rcust *c = m->buckets[b]; c; c = c->next) {
            if (c->has_sess) {
                int r;
                int64_t dl = deadline(m, c, &r);
                end_session(m, c, dl < W ? r : reason);
            }
            if (c->journey && c->last + m->k.customer_ttl_ms < W) {
                cs_counts_add(m->c, "customers", stage_slot(m, c->stage, "_none"), -1);
                c->journey = 0; /* forgotten */
            }
        }
}

void ref_counts(const ref_model *m, cs_counts *out)
{
    cs_counts_merge(out, m->c);
}
