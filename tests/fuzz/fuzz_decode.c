/* fuzz_decode.c — libFuzzer target: cs_decode() differential against cJSON (Debian libcjson).
 *
 * For every input, cs_decode() and cJSON_ParseWithLengthOpts() must agree on "is this a valid
 * JSON text" and, when it is an object, on the values of the standard fields (and a few extra
 * fields) found by the default paths, byte for byte after unescaping. The time field is checked
 * against an independent RFC 3339 / epoch reader built on timegm(). abort() on any disagreement.
 *
 * Known differences between cJSON 1.7.15 and RFC 8259 (what cs_decode implements), and how this
 * target deals with each of them. A small independent lexer (lex() below) flags inputs that use
 * one of cJSON's leniencies; such an input cannot be valid RFC 8259 JSON, so cs_decode must say
 * not_json for it, while cJSON may accept it.
 *  1. cJSON treats every byte <= 0x20 as whitespace between tokens (NUL and all control
 *     characters), RFC 8259 only space, \t, \n, \r.                       -> lexer flag
 *  2. cJSON accepts raw control characters (< 0x20) inside strings.     -> lexer flag
 *  3. cJSON reads numbers with strtod(): it accepts leading zeros ("01", "-01"), a bare
 *     fraction point ("1.", "1.e5"), "-.5". RFC 8259 does not.        -> lexer flag
 *  4. cJSON's \uXXXX reader turns non-hex digits into code point 0 instead of failing
 *     ("\u00G0" is accepted as U+0000).                                 -> lexer flag
 *  5. cJSON strings are C strings: a \u0000 escape truncates a value or a key (so the key
 *     "userId\u0000x" is found as "userId"). cs_decode keeps the NUL and the full length.
 *     -> when the input contains a \u0000 escape, field values are not compared (validity is).
 *  6. cJSON's nesting limit is CJSON_NESTING_LIMIT (1000) containers, cs_decode's is the plan's
 *     max_depth (default 32). -> the differential decoder uses max_depth 1000, exactly cJSON's
 *     limit; a second decoder with the default limits must then give the same answer when the
 *     document is at most 32 deep and too_deep when it is deeper.
 *  7. A leading UTF-8 BOM is skipped by both (RFC 8259 §8.1 allows it). No restriction.
 *  8. Lone / mismatched UTF-16 surrogates: both reject. No restriction.
 *  9. cJSON needs a NUL terminator to reject trailing garbage (require_null_terminated); the
 *     input is copied with one, so an embedded NUL after the value is difference 1.
 * 10. Number values: cJSON keeps only a double. The lexer records every number token in
 *     document order; in a valid document they correspond one to one, in pre-order, to cJSON's
 *     number nodes, which gives the literal text cs_decode must report.
 * Everything else (duplicate keys: first wins; case-sensitive keys; invalid UTF-8 passed
 * through; escapes; top-level scalars are valid JSON but not objects) is compared as is.
 *
 * In place: every input is also decoded with cs_decode_padded() from an exactly sized buffer of
 * the input and CS_DECODE_PAD NULs (ASan catches a read past the padding) and must give what
 * cs_decode() gave, field for field, its slices at the same offsets of that buffer, which it
 * leaves unchanged. Twice: the second decode follows the one that taught the decoder this
 * input's keys and frames (decode.c kpred), so it takes every predicted path the input has.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "decode.h"
#include "ref_time.h"

#define FALLBACK_TS 1234567LL
#define DEEP_LIMIT 1000 /* = CJSON_NESTING_LIMIT */

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_decode: %s:%d: check failed: %s\n  ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* ---- plans ---------------------------------------------------------------------------------- */

/* Extra fields beyond the standard five: short keys the fuzzer finds quickly, a key that is both
 * a prefix and a leaf, a 3-path field, and one sharing a path with a standard field. */
static const char *const extra1[] = {"a"};
static const char *const extra2[] = {"a.b", "b", "c.d.e"};
static const char *const extra3[] = {"a.b.c"};
static const char *const extra4[] = {"properties.persona"};
static const char *const extra5[] = {"context.page"};
static const char *const extra6[] = {"properties.url"};
static const char *const *const extras[] = {extra1, extra2, extra3, extra4, extra5, extra6};
static const int extra_n[] = {1, 3, 1, 1, 1, 1};
#define NEXTRA 6

static const char *const std_paths[CS_F_NSTD][6] = {
    {"userId", "user_id", "customer_id", "anonymousId", "anonymous_id", NULL},
    {"event", "type", NULL},
    {"timestamp", "ts", "originalTimestamp", NULL},
    {"url", "context.page.url", "properties.url", NULL},
    {"channel", "context.campaign.medium", "properties.channel", NULL},
};

static cs_decode_plan *plan_deep, *plan_def, *plan_bnd;
static cs_decoder *dec_deep, *dec_def, *dec_bnd, *dec_pad;
/* the bounded plan (SPEC v1.1 time bounds) is checked against the unbounded one with this
 * message timestamp and this max_future */
#define BND_KTS 1793520000000LL
#define BND_MAX_FUTURE 3600000LL

static cs_decode_plan *make_plan(void)
{
    char err[256];
    cs_decode_plan *p = cs_decode_plan_new();
    if (!p)
        abort();
    for (int i = 0; i < NEXTRA; i++)
        if (cs_decode_plan_add_field(p, extras[i], extra_n[i], err, sizeof err) != CS_F_NSTD + i)
            abort();
    return p;
}

static void init(void)
{
    if (plan_deep)
        return;
    plan_deep = make_plan();
    cs_decode_plan_set_limits(plan_deep, 1 << 20, DEEP_LIMIT);
    plan_def = make_plan();
    plan_bnd = make_plan();
    cs_decode_plan_set_time_bounds(plan_bnd, CS_MIN_EVENT_TIME_MS, BND_MAX_FUTURE);
    dec_deep = cs_decoder_new(plan_deep);
    dec_def = cs_decoder_new(plan_def);
    dec_bnd = cs_decoder_new(plan_bnd);
    dec_pad = cs_decoder_new(plan_deep);
    if (!dec_deep || !dec_def || !dec_bnd || !dec_pad)
        abort();
}

/* ---- the independent lexer ------------------------------------------------------------------ */

typedef struct tok {
    const uint8_t *p;
    size_t n;
} tok;

typedef struct lexinfo {
    int lenient; /* uses a cJSON leniency (differences 1-4): not RFC 8259 JSON */
    int has_u0000;
    size_t nnum;
    tok *num; /* number tokens in document order */
} lexinfo;

static int ishex(uint8_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int isnumch(uint8_t c)
{
    return (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.' || c == 'e' || c == 'E';
}

/* RFC 8259 number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? exactly */
static int strict_number(const uint8_t *p, size_t n)
{
    size_t i = 0;
#define DIG(k) ((k) < n && p[k] >= '0' && p[k] <= '9')
    if (i < n && p[i] == '-')
        i++;
    if (!DIG(i))
        return 0;
    if (p[i] == '0')
        i++;
    else
        while (DIG(i))
            i++;
    if (i < n && p[i] == '.') {
        i++;
        if (!DIG(i))
            return 0;
        while (DIG(i))
            i++;
    }
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        i++;
        if (i < n && (p[i] == '+' || p[i] == '-'))
            i++;
        if (!DIG(i))
            return 0;
        while (DIG(i))
            i++;
    }
#undef DIG
    return i == n;
}

static void lex(const uint8_t *d, size_t n, lexinfo *L)
{
    memset(L, 0, sizeof *L);
    L->num = malloc((n / 2 + 1) * sizeof *L->num);
    size_t i = 0;
    if (n >= 3 && d[0] == 0xEF && d[1] == 0xBB && d[2] == 0xBF)
        i = 3;
    int in_str = 0;
    while (i < n) {
        uint8_t c = d[i];
        if (in_str) {
            if (c == '"') {
                in_str = 0;
                i++;
            } else if (c == '\\') {
                if (i + 1 < n && d[i + 1] == 'u') {
                    if (i + 5 < n && ishex(d[i + 2]) && ishex(d[i + 3]) && ishex(d[i + 4]) &&
                        ishex(d[i + 5])) {
                        if (d[i + 2] == '0' && d[i + 3] == '0' && d[i + 4] == '0' && d[i + 5] == '0')
                            L->has_u0000 = 1;
                    } else {
                        L->lenient = 1; /* difference 4 */
                    }
                }
                i += 2;
            } else {
                if (c < 0x20)
                    L->lenient = 1; /* difference 2 */
                i++;
            }
            continue;
        }
        if (c == '"') {
            in_str = 1;
            i++;
        } else if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
            L->lenient = 1; /* difference 1 */
            i++;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            size_t j = i;
            while (j < n && isnumch(d[j]))
                j++;
            if (!strict_number(d + i, j - i))
                L->lenient = 1; /* difference 3 */
            L->num[L->nnum].p = d + i;
            L->num[L->nnum].n = j - i;
            L->nnum++;
            i = j;
        } else {
            i++;
        }
    }
}

/* ---- the reference on cJSON's tree ------------------------------------------------------------ */

/* Pre-order walk: give every number node its token index (in valueint, which nothing else here
 * reads) and measure the nesting depth. */
static void walk(cJSON *j, int depth, size_t *k, int *maxdepth)
{
    if (cJSON_IsArray(j) || cJSON_IsObject(j)) {
        if (depth + 1 > *maxdepth)
            *maxdepth = depth + 1;
        for (cJSON *c = j->child; c; c = c->next)
            walk(c, depth + 1, k, maxdepth);
    } else if (cJSON_IsNumber(j)) {
        j->valueint = (int)(*k)++;
    }
}

typedef struct refval {
    int present;
    int kind; /* CS_SV_* */
    int isint;
    const char *p;
    size_t n;
} refval;

static cJSON *get_path(cJSON *root, const char *path)
{
    char buf[CS_MAX_PATH_LEN];
    snprintf(buf, sizeof buf, "%s", path);
    cJSON *cur = root;
    char *save = NULL;
    for (char *seg = strtok_r(buf, ".", &save); seg; seg = strtok_r(NULL, ".", &save)) {
        if (!cJSON_IsObject(cur))
            return NULL;
        cur = cJSON_GetObjectItemCaseSensitive(cur, seg);
        if (!cur)
            return NULL;
    }
    return cur;
}

static int is_int_text(const char *p, size_t n)
{
    size_t i = (n && p[0] == '-') ? 1 : 0;
    if (i == n)
        return 0;
    for (; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return 0;
    return 1;
}

static refval value_of(cJSON *j, const lexinfo *L)
{
    refval v = {0};
    if (!j)
        return v;
    if (cJSON_IsString(j) && j->valuestring[0]) {
        v.present = 1;
        v.kind = CS_SV_STR;
        v.p = j->valuestring;
        v.n = strlen(j->valuestring);
    } else if (cJSON_IsNumber(j)) {
        size_t k = (size_t)j->valueint;
        CHECK(k < L->nnum, "number node %zu of %zu tokens", k, L->nnum);
        v.present = 1;
        v.kind = CS_SV_NUM;
        v.p = (const char *)L->num[k].p;
        v.n = L->num[k].n;
        v.isint = is_int_text(v.p, v.n);
        /* the token and cJSON's double must be the same number */
        char tmp[64];
        if (v.n < sizeof tmp) {
            memcpy(tmp, v.p, v.n);
            tmp[v.n] = 0;
            double dv = strtod(tmp, NULL);
            CHECK(dv == j->valuedouble || (dv != dv && j->valuedouble != j->valuedouble),
                  "number token %s vs cJSON %g", tmp, j->valuedouble);
        }
    } else if (cJSON_IsTrue(j)) {
        v = (refval){1, CS_SV_BOOL, 0, "true", 4};
    } else if (cJSON_IsFalse(j)) {
        v = (refval){1, CS_SV_BOOL, 0, "false", 5};
    }
    return v;
}

static int accepts(int field, const refval *v)
{
    if (field == CS_F_CUSTOMER)
        return v->kind == CS_SV_STR || (v->kind == CS_SV_NUM && v->isint);
    if (field == CS_F_EVENT)
        return v->kind == CS_SV_STR;
    return 1;
}

static refval ref_field(cJSON *root, const char *const *paths, int n, int field, const lexinfo *L)
{
    for (int i = 0; i < n && paths[i]; i++) {
        refval v = value_of(get_path(root, paths[i]), L);
        if (v.present && accepts(field, &v))
            return v;
    }
    return (refval){0};
}

/* ---- the reference time reader ---------------------------------------------------------------- */

static int num2(const char *p, int *v)
{
    if (p[0] < '0' || p[0] > '9' || p[1] < '0' || p[1] > '9')
        return -1;
    *v = (p[0] - '0') * 10 + (p[1] - '0');
    return 0;
}

/* RFC 3339 with timegm(); same documented choices: fraction truncated to ms, second 60 read as
 * 59.999, any number of fraction digits, 'T'/'t'/' ' and 'Z'/'z'. */
static int ref_rfc3339(const char *s, size_t n, int64_t *ms)
{
    int y1, y2, mo, da, hh, mi, ss, oh = 0, om = 0;
    if (n < 20)
        return -1;
    if (num2(s, &y1) || num2(s + 2, &y2) || s[4] != '-' || num2(s + 5, &mo) || s[7] != '-' ||
        num2(s + 8, &da) || !(s[10] == 'T' || s[10] == 't' || s[10] == ' ') || num2(s + 11, &hh) ||
        s[13] != ':' || num2(s + 14, &mi) || s[16] != ':' || num2(s + 17, &ss))
        return -1;
    size_t i = 19;
    int frac = 0, nd = 0;
    if (s[i] == '.') {
        i++;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (nd < 3)
                frac = frac * 10 + (s[i] - '0');
            nd++;
            i++;
        }
        if (nd == 0)
            return -1;
        while (nd < 3) {
            frac *= 10;
            nd++;
        }
    }
    if (i >= n)
        return -1;
    int sign = 0;
    if (s[i] == 'Z' || s[i] == 'z') {
        i++;
    } else if (s[i] == '+' || s[i] == '-') {
        sign = s[i] == '+' ? 1 : -1;
        if (n - i != 6 || num2(s + i + 1, &oh) || s[i + 3] != ':' || num2(s + i + 4, &om))
            return -1;
        i += 6;
    } else {
        return -1;
    }
    if (i != n)
        return -1;
    int year = y1 * 100 + y2;
    static const int md[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mo < 1 || mo > 12 || da < 1 || hh > 23 || mi > 59 || ss > 60 || oh > 23 || om > 59)
        return -1;
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (da > md[mo - 1] + (mo == 2 && leap))
        return -1;
    if (ss == 60) {
        ss = 59;
        frac = 999;
    }
    struct tm tm = {0};
    tm.tm_year = year - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = da;
    tm.tm_hour = hh;
    tm.tm_min = mi;
    tm.tm_sec = ss;
    int64_t t = (int64_t)timegm(&tm);
    *ms = (t - (int64_t)sign * (oh * 3600 + om * 60)) * 1000 + frac;
    return 0;
}

static void check_rfc3339_direct(const uint8_t *data, size_t size)
{
    int64_t a = 0, b = 0;
    int ra = cs_parse_rfc3339((const char *)data, size, &a);
    int rb = ref_rfc3339((const char *)data, size, &b);
    CHECK(ra == rb, "cs_parse_rfc3339 %d, reference %d on <%.*s>", ra, rb, (int)size, data);
    CHECK(ra != 0 || a == b, "cs_parse_rfc3339 %lld, reference %lld on <%.*s>", (long long)a,
          (long long)b, (int)size, data);
}

/* ---- the comparison ------------------------------------------------------------------------ */

static const char *rn(cs_invalid r)
{
    return cs_invalid_name(r);
}

static void compare_fields(const cs_decoded *o, cJSON *root, const lexinfo *L, int *want_reason,
                           int64_t *want_ts, int *want_from_msg)
{
    refval rv[CS_F_NSTD + NEXTRA];
    for (int f = 0; f < CS_F_NSTD; f++)
        rv[f] = ref_field(root, std_paths[f], 6, f, L);
    for (int i = 0; i < NEXTRA; i++)
        rv[CS_F_NSTD + i] = ref_field(root, extras[i], extra_n[i], CS_F_NSTD + i, L);

    *want_from_msg = 0;
    *want_ts = FALLBACK_TS;
    if (!rv[CS_F_CUSTOMER].present) {
        *want_reason = CS_INV_NO_CUSTOMER;
    } else if (!rv[CS_F_EVENT].present) {
        *want_reason = CS_INV_NO_EVENT;
    } else {
        *want_reason = CS_DECODE_OK;
        const refval *t = &rv[CS_F_TIME];
        if (t->present) {
            int64_t ms = 0;
            int rc;
            /* SPEC v1.2: numbers and strings of digits with a fraction or (numbers) an
             * exponent are exact times in ms (tests/fuzz/ref_time.h) */
            if (t->kind == CS_SV_NUM)
                rc = ref_num_time(t->p, t->n, 1, 0, &ms);
            else if (t->kind == CS_SV_BOOL)
                rc = -1;
            else if (ref_num_time(t->p, t->n, 0, 0, &ms) == 0)
                rc = 0;
            else
                rc = ref_rfc3339(t->p, t->n, &ms);
            if (rc != 0) {
                *want_reason = CS_INV_BAD_TIME;
            } else {
                *want_ts = ms;
                *want_from_msg = 1;
            }
        }
    }
    for (int f = 0; f < CS_F_NSTD + NEXTRA; f++) {
        const cs_sv *g = &o->f[f];
        CHECK(rv[f].present == (g->len != 0), "field %d: reference %s, decoder %s", f,
              rv[f].present ? "present" : "absent", g->len ? "present" : "absent");
        if (!rv[f].present)
            continue;
        CHECK(rv[f].kind == g->kind, "field %d: kind %d vs %d", f, rv[f].kind, g->kind);
        CHECK(rv[f].n == g->len && memcmp(rv[f].p, g->p, g->len) == 0,
              "field %d: reference <%.*s> (%zu), decoder <%.*s> (%u)", f, (int)rv[f].n, rv[f].p,
              rv[f].n, (int)g->len, g->p, g->len);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init();
    check_rfc3339_direct(data, size);

    cs_decoded od, o2;
    cs_invalid r = cs_decode(dec_deep, (const char *)data, size, FALLBACK_TS, &od);
    cs_invalid r2 = cs_decode(dec_def, (const char *)data, size, FALLBACK_TS, &o2);

    lexinfo L;
    lex(data, size, &L);

    char *z = malloc(size + 1);
    if (size)
        memcpy(z, data, size);
    z[size] = 0;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(z, size + 1, &end, 1);

    int ours_valid = r != CS_INV_NOT_JSON && r != CS_INV_TOO_DEEP && r != CS_INV_TOO_LARGE;
    int cj_valid = root != NULL;

    if (L.lenient) {
        /* not RFC 8259 JSON whatever cJSON says */
        CHECK(!ours_valid, "decoder accepted (%s) an input using a cJSON leniency", rn(r));
    } else {
        CHECK(ours_valid == cj_valid, "decoder %s, cJSON %s", rn(r), cj_valid ? "valid" : "invalid");
    }

    int maxdepth = 0;
    if (cj_valid && ours_valid) {
        size_t k = 0;
        walk(root, 0, &k, &maxdepth);
        CHECK(k == L.nnum, "cJSON has %zu numbers, lexer %zu", k, L.nnum);
        if (!cJSON_IsObject(root)) {
            CHECK(r == CS_INV_NOT_OBJECT, "top-level %d: decoder %s", root->type, rn(r));
        } else {
            CHECK(r != CS_INV_NOT_OBJECT, "top-level object: decoder not_object");
            if (!L.has_u0000) {
                int want;
                int64_t ts;
                int from;
                compare_fields(&od, root, &L, &want, &ts, &from);
                CHECK((int)r == want, "reason: decoder %s, reference %s", rn(r), rn((cs_invalid)want));
                if (r == CS_DECODE_OK) {
                    CHECK(od.ts_ms == ts && od.ts_from_msg == from,
                          "time: decoder %lld (%d), reference %lld (%d)", (long long)od.ts_ms,
                          od.ts_from_msg, (long long)ts, from);
                }
            }
        }
    }

    /* the decoder with default limits */
    if (size > CS_DEFAULT_MAX_BYTES) {
        CHECK(r2 == CS_INV_TOO_LARGE, "%zu bytes: default decoder %s", size, rn(r2));
    } else if (r == CS_INV_TOO_DEEP) {
        CHECK(r2 == CS_INV_TOO_DEEP, "deep decoder too_deep, default decoder %s", rn(r2));
    } else if (r == CS_INV_NOT_JSON) {
        CHECK(r2 == CS_INV_NOT_JSON || r2 == CS_INV_TOO_DEEP, "deep not_json, default %s", rn(r2));
    } else if (cj_valid && maxdepth > CS_DEFAULT_MAX_DEPTH) {
        CHECK(r2 == CS_INV_TOO_DEEP, "depth %d: default decoder %s", maxdepth, rn(r2));
    } else if (cj_valid || !L.lenient) {
        CHECK(r2 == r, "deep decoder %s, default decoder %s", rn(r), rn(r2));
        for (int f = 0; f < cs_decode_plan_nfields(plan_def); f++) {
            CHECK(od.f[f].len == o2.f[f].len && od.f[f].kind == o2.f[f].kind &&
                      (od.f[f].len == 0 || memcmp(od.f[f].p, o2.f[f].p, od.f[f].len) == 0),
                  "field %d differs between the two decoders", f);
        }
        CHECK(od.ts_ms == o2.ts_ms && od.ts_from_msg == o2.ts_from_msg, "time differs");
    }

    /* the time bounds: the bounded decoder is the unbounded one plus two compares */
    {
        static cs_decoded ou, ob;
        cs_invalid ru = cs_decode(dec_def, (const char *)data, size, BND_KTS, &ou);
        cs_invalid rb = cs_decode(dec_bnd, (const char *)data, size, BND_KTS, &ob);
        cs_invalid want = ru;
        if (ru == CS_DECODE_OK) {
            if (ou.ts_ms < CS_MIN_EVENT_TIME_MS)
                want = CS_INV_BAD_TIME;
            else if (ou.ts_from_msg && (__int128)ou.ts_ms > (__int128)BND_KTS + BND_MAX_FUTURE)
                want = CS_INV_FUTURE_TIME;
        }
        CHECK(rb == want, "bounded decoder %s, expected %s (time %lld, from message %d)",
              rn(rb), rn(want), (long long)ou.ts_ms, ou.ts_from_msg);
    }

    /* in place: cs_decode_padded on the input followed by CS_DECODE_PAD NULs, against od */
    {
        char *pb = malloc(size + CS_DECODE_PAD);
        if (!pb)
            abort();
        if (size)
            memcpy(pb, data, size);
        memset(pb + size, 0, CS_DECODE_PAD);
        /* twice: the second time after the decoder learnt this very input's keys and frames
         * (decode.c kpred), so every predicted path of the input is taken */
        for (int pass = 0; pass < 2; pass++) {
            cs_decoded op;
            cs_invalid rp = cs_decode_padded(dec_pad, pb, size, FALLBACK_TS, &op);
            CHECK(rp == r, "in place %s, copy %s", rn(rp), rn(r));
            CHECK(op.ts_ms == od.ts_ms && op.ts_from_msg == od.ts_from_msg && op.idf == od.idf,
                  "in place: time or ids differ");
            for (int f = 0; f < cs_decode_plan_nfields(plan_deep); f++) {
                const cs_sv *a = &od.f[f], *b = &op.f[f];
                CHECK(a->len == b->len && a->kind == b->kind &&
                          (a->len == 0 || memcmp(a->p, b->p, a->len) == 0),
                      "in place: field %d differs (%u / %u bytes)", f, a->len, b->len);
                if (!a->len)
                    continue;
                const char *in = (const char *)data;
                const int a_in = a->p >= in && a->p + a->len <= in + size;
                const int b_in = b->p >= pb && b->p + b->len <= pb + size;
                CHECK(a_in ? b->p == pb + (a->p - in) : !b_in,
                      "in place: field %d's slice is %s the input, the copy's %s", f,
                      b_in ? "in" : "not in", a_in ? "in" : "not in");
            }
            CHECK(size == 0 || memcmp(pb, data, size) == 0, "in place: the input was changed");
            for (size_t i = 0; i < CS_DECODE_PAD; i++)
                CHECK(pb[size + i] == 0, "in place: the padding was changed");
        }
        free(pb);
    }

    /* every returned slice lies in the input or in the decoder's scratch and is readable */
    if (r == CS_DECODE_OK || r == CS_INV_NO_EVENT || r == CS_INV_BAD_TIME) {
        volatile unsigned sum = 0;
        for (int f = 0; f < cs_decode_plan_nfields(plan_deep); f++)
            for (uint32_t i = 0; i < od.f[f].len; i++)
                sum += (unsigned char)od.f[f].p[i];
        (void)sum;
    }

    cJSON_Delete(root);
    free(z);
    free(L.num);
    return 0;
}
