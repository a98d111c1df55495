/* test_formats.c — SPEC §1.1: format presets, time units, Snowplow enriched TSV
 * (pipeline/formats.c, pipeline/decode.c, the rule file's format: and fields.time_unit). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "classify.h"
#include "decode.h"
#include "formats.h"

#define KTS 1793520000000LL /* message timestamp used by these tests */

/* ---- time units on a bare plan ---------------------------------------------------------- */

typedef struct tcase {
    const char *value; /* JSON text of the time value */
    int unit;
    int ok;
    int64_t ms;
} tcase;

static int decode_time(int unit, const char *value, int64_t *ms)
{
    cs_decode_plan *p = cs_decode_plan_new();
    cs_decode_plan_set_time_unit(p, unit);
    cs_decoder *d = cs_decoder_new(p);
    char msg[512];
    snprintf(msg, sizeof msg, "{\"userId\":\"u\",\"event\":\"e\",\"timestamp\":%s}", value);
    static cs_decoded out;
    cs_invalid r = cs_decode(d, msg, strlen(msg), 4242, &out);
    *ms = out.ts_ms;
    cs_decoder_destroy(d);
    cs_decode_plan_destroy(p);
    return r;
}

static void test_time_units(void **state)
{
    (void)state;
    static const tcase cases[] = {
        /* ms (default): integers, fractions truncated, exponents, strings */
        {"1790000393702", CS_TU_MS, 1, 1790000393702LL},
        {"1790000393702.999", CS_TU_MS, 1, 1790000393702LL},
        {"\"1790000393702\"", CS_TU_MS, 1, 1790000393702LL},
        {"\"1790000393702.5\"", CS_TU_MS, 1, 1790000393702LL},
        {"1.790000393702e12", CS_TU_MS, 1, 1790000393702LL},
        {"1790000393702E0", CS_TU_MS, 1, 1790000393702LL},
        {"17900003937020e-1", CS_TU_MS, 1, 1790000393702LL},
        {"9223372036854775807", CS_TU_MS, 1, INT64_MAX},
        {"9223372036854775807.99", CS_TU_MS, 1, INT64_MAX},
        {"9223372036854775808", CS_TU_MS, 0, 0},
        {"-9223372036854775807", CS_TU_MS, 1, -INT64_MAX},
        {"-1.5", CS_TU_MS, 1, -1}, /* truncated toward zero */
        {"0", CS_TU_MS, 1, 0},
        {"0.0e99999999999999999999", CS_TU_MS, 1, 0},
        {"1e-99999999999999999999", CS_TU_MS, 1, 0},
        {"1e99999999999999999999", CS_TU_MS, 0, 0},
        /* seconds: Mixpanel's float epoch seconds, exactly */
        {"1790000393.702", CS_TU_S, 1, 1790000393702LL},
        {"1790000393.7029999999", CS_TU_S, 1, 1790000393702LL},
        {"1790000393.7", CS_TU_S, 1, 1790000393700LL},
        {"1790000393", CS_TU_S, 1, 1790000393000LL},
        {"\"1790000393.702\"", CS_TU_S, 1, 1790000393702LL},
        {"1.790000393702e9", CS_TU_S, 1, 1790000393702LL},
        {"0.001", CS_TU_S, 1, 1},
        {"0.0009", CS_TU_S, 1, 0},
        {"9223372036854775.807", CS_TU_S, 1, INT64_MAX},
        {"9223372036854775.808", CS_TU_S, 0, 0},
        {"9223372036854776", CS_TU_S, 0, 0},
        /* microseconds, nanoseconds */
        {"1790000393702999", CS_TU_US, 1, 1790000393702LL},
        {"1790000393702999.9", CS_TU_US, 1, 1790000393702LL},
        {"\"1790000393702000\"", CS_TU_US, 1, 1790000393702LL},
        {"1790000393702999999", CS_TU_NS, 1, 1790000393702LL},
        {"1.790000393702999999e18", CS_TU_NS, 1, 1790000393702LL},
        {"99999999999999999999999", CS_TU_NS, 1, 99999999999999999LL},
        {"999", CS_TU_US, 1, 0},
        /* auto: |v| < 1e11 s, < 1e14 ms, < 1e17 us, else ns */
        {"99999999999", CS_TU_AUTO, 1, 99999999999000LL},
        {"99999999999.999", CS_TU_AUTO, 1, 99999999999999LL},
        {"100000000000", CS_TU_AUTO, 1, 100000000000LL},
        {"1e11", CS_TU_AUTO, 1, 100000000000LL},
        {"99999999999999", CS_TU_AUTO, 1, 99999999999999LL},
        {"100000000000000", CS_TU_AUTO, 1, 100000000000LL},
        {"1e14", CS_TU_AUTO, 1, 100000000000LL},
        {"99999999999999999", CS_TU_AUTO, 1, 99999999999999LL},
        {"100000000000000000", CS_TU_AUTO, 1, 100000000000LL},
        {"1e17", CS_TU_AUTO, 1, 100000000000LL},
        {"1790000393.702", CS_TU_AUTO, 1, 1790000393702LL},
        {"1790000393702", CS_TU_AUTO, 1, 1790000393702LL},
        {"1790000393702123", CS_TU_AUTO, 1, 1790000393702LL},
        {"1790000393702123456", CS_TU_AUTO, 1, 1790000393702LL},
        {"\"1790000393.702\"", CS_TU_AUTO, 1, 1790000393702LL},
        {"-1790000393.702", CS_TU_AUTO, 1, -1790000393702LL},
        {"0.5", CS_TU_AUTO, 1, 500},
        /* bad values in every unit */
        {"\"-1000\"", CS_TU_S, 0, 0},
        {"\"1e5\"", CS_TU_MS, 0, 0},
        {"\"1.\"", CS_TU_S, 0, 0},
        {"\".5\"", CS_TU_S, 0, 0},
        {"\"1.5.5\"", CS_TU_S, 0, 0},
        {"\" 1000\"", CS_TU_AUTO, 0, 0},
        {"\"1000 \"", CS_TU_US, 0, 0},
        {"\"0x10\"", CS_TU_NS, 0, 0},
        {"\"yesterday\"", CS_TU_AUTO, 0, 0},
        {"true", CS_TU_S, 0, 0},
        {"false", CS_TU_AUTO, 0, 0},
        {"\"99999999999999999999\"", CS_TU_MS, 0, 0},
        {"\"2026-11-01T08:00:00.123Z\"", CS_TU_S, 1, 1793520000123LL}, /* RFC 3339 in any unit */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t ms = -42;
        int r = decode_time(cases[i].unit, cases[i].value, &ms);
        if (cases[i].ok) {
            if (r != CS_DECODE_OK || ms != cases[i].ms)
                fail_msg("%s in %s: got %s %lld, want %lld", cases[i].value,
                         cs_time_unit_name(cases[i].unit), cs_invalid_name(r), (long long)ms,
                         (long long)cases[i].ms);
        } else if (r != CS_INV_BAD_TIME) {
            fail_msg("%s in %s: got %s %lld, want bad_time", cases[i].value,
                     cs_time_unit_name(cases[i].unit), cs_invalid_name(r), (long long)ms);
        }
    }
}

/* Every unit and every number of digits against a plain reference: v = I.F (I up to 20
 * digits, F up to 12), ms = trunc(v * 10^k) in 128-bit integers. */
static void test_time_units_vs_reference(void **state)
{
    (void)state;
    static const int shift[4] = {0, 3, -3, -6}; /* ms s us ns */
    uint64_t x = 88172645463325252ull;
    for (int it = 0; it < 20000; it++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int ni = 1 + (int)(x % 20), nf = (int)((x >> 8) % 13), unit = (int)((x >> 16) % 5);
        char num[64];
        int n = 0;
        uint64_t y = x * 0x9E3779B97F4A7C15ull;
        for (int i = 0; i < ni; i++, y = y * 6364136223846793005ull + 1442695040888963407ull)
            num[n++] = (char)('0' + (i == 0 && ni > 1 ? 1 + (y >> 60) % 9 : (y >> 60) % 10));
        if (nf) {
            num[n++] = '.';
            for (int i = 0; i < nf; i++, y = y * 6364136223846793005ull + 1442695040888963407ull)
                num[n++] = (char)('0' + (y >> 60) % 10);
        }
        num[n] = 0;
        __int128 I = 0, F = 0, P = 1;
        for (int i = 0; i < ni; i++)
            I = I * 10 + (num[i] - '0');
        for (int i = 0; i < nf; i++)
            F = F * 10 + (num[ni + 1 + i] - '0'), P *= 10;
        int u = unit;
        if (u == CS_TU_AUTO)
            u = ni <= 11 ? CS_TU_S : ni <= 14 ? CS_TU_MS : ni <= 17 ? CS_TU_US : CS_TU_NS;
        if (I == 0) /* leading digit 0 only when ni == 1: "0.xxx" */
            u = unit == CS_TU_AUTO ? CS_TU_S : u;
        __int128 want;
        int k = shift[u];
        if (k >= 0) {
            __int128 m = 1;
            for (int i = 0; i < k; i++)
                m *= 10;
            want = I * m + F * m / P;
        } else {
            __int128 dv = 1;
            for (int i = 0; i < -k; i++)
                dv *= 10;
            want = I / dv;
        }
        int64_t ms = 0;
        int r = decode_time(unit, num, &ms);
        if (want > INT64_MAX) {
            if (r != CS_INV_BAD_TIME)
                fail_msg("%s %s: want bad_time, got %s", num, cs_time_unit_name(unit),
                         cs_invalid_name(r));
        } else if (r != CS_DECODE_OK || ms != (int64_t)want) {
            fail_msg("%s %s: want %lld, got %s %lld", num, cs_time_unit_name(unit),
                     (long long)want, cs_invalid_name(r), (long long)ms);
        }
    }
}

/* ---- Snowplow enriched TSV ---------------------------------------------------------------- */

/* A line of CS_SNOWPLOW_NCOLS columns: named columns set, the rest empty. */
static size_t tsv_line(char *buf, size_t cap, const char *const *kv)
{
    const char *val[CS_SNOWPLOW_NCOLS] = {0};
    for (; kv && kv[0]; kv += 2) {
        int c = cs_snowplow_column(kv[0], strlen(kv[0]));
        assert_true(c >= 0);
        val[c] = kv[1];
    }
    size_t n = 0;
    for (int c = 0; c < CS_SNOWPLOW_NCOLS; c++) {
        int w = snprintf(buf + n, cap - n, "%s%s", c ? "\t" : "", val[c] ? val[c] : "");
        assert_true(w >= 0 && (size_t)w < cap - n);
        n += (size_t)w;
    }
    return n;
}

static cs_ruleset *load(const char *yaml)
{
    char err[512];
    cs_ruleset *rs = cs_rules_load_string(yaml, strlen(yaml), "f.yaml", err, sizeof err);
    if (!rs)
        fail_msg("rule file rejected: %s", err);
    return rs;
}

static const char *fstr(const cs_sv *v)
{
    static char b[4][512];
    static int i;
    char *o = b[i++ & 3];
    snprintf(o, 512, "%.*s", (int)v->len, v->p ? v->p : "");
    return o;
}

static void test_snowplow_tsv(void **state)
{
    (void)state;
    cs_ruleset *rs = load("journey: j\nstages: [a]\nformat: snowplow-enriched\n"
                          "dimensions:\n  persona: {path: se_label}\n  channel: {}\n"
                          "rules:\n  - {name: r, stage: a, match: {property.se_category: shop}}\n");
    const cs_decode_plan *pl = cs_rules_plan(rs);
    cs_decoder *d = cs_decoder_new(pl);
    static cs_decoded out;
    static char buf[8192];
    const int fp = cs_rules_dim(rs, 0)->field;
    const int fc = cs_rules_prop_field(rs, 0);

    const char *ev1[] = {"collector_tstamp", "2026-11-01 08:00:05.000", "dvce_created_tstamp",
                         "2026-11-01 08:00:01.250", "derived_tstamp", "2026-11-01 08:00:00.123",
                         "user_id", "", "domain_userid", "d-1", "network_userid", "n-1",
                         "event", "struct", "event_name", "event", "se_action", "add_to_wishlist",
                         "se_label", "young", "se_category", "shop", "page_url",
                         "https://shop.example/p/1", "mkt_medium", "social", NULL};
    size_t n = tsv_line(buf, sizeof buf, ev1);
    assert_int_equal(cs_decode(d, buf, n, KTS, &out), CS_DECODE_OK);
    assert_string_equal(fstr(&out.f[CS_F_CUSTOMER]), "d-1"); /* user_id empty */
    assert_string_equal(fstr(&out.f[CS_F_EVENT]), "add_to_wishlist");
    assert_int_equal(out.ts_ms, 1793520000123LL);
    assert_string_equal(fstr(&out.f[CS_F_URL]), "https://shop.example/p/1");
    assert_string_equal(fstr(&out.f[CS_F_CHANNEL]), "social");
    assert_string_equal(fstr(&out.f[fp]), "young");
    assert_string_equal(fstr(&out.f[fc]), "shop");
    assert_int_equal(cs_rules_classify(rs, &out), 0);
    /* one trailing newline (or CRLF) is not part of the last column */
    buf[n] = '\n';
    assert_int_equal(cs_decode(d, buf, n + 1, KTS, &out), CS_DECODE_OK);
    buf[n] = '\r', buf[n + 1] = '\n';
    assert_int_equal(cs_decode(d, buf, n + 2, KTS, &out), CS_DECODE_OK);

    /* a page view: se_action empty -> event_name; derived_tstamp empty -> dvce_created */
    const char *ev2[] = {"dvce_created_tstamp", "2026-11-01 08:00:01", "collector_tstamp",
                         "2026-11-01 08:00:05.9", "user_id", "u-7", "domain_userid", "d-1",
                         "event", "page_view", "event_name", "page_view", NULL};
    n = tsv_line(buf, sizeof buf, ev2);
    assert_int_equal(cs_decode(d, buf, n, KTS, &out), CS_DECODE_OK);
    assert_string_equal(fstr(&out.f[CS_F_CUSTOMER]), "u-7");
    assert_string_equal(fstr(&out.f[CS_F_EVENT]), "page_view");
    assert_int_equal(out.ts_ms, 1793520001000LL);
    assert_int_equal(out.f[CS_F_URL].len, 0);
    /* no time column at all: the message timestamp */
    const char *ev3[] = {"user_id", "u-7", "event_name", "page_view", NULL};
    n = tsv_line(buf, sizeof buf, ev3);
    assert_int_equal(cs_decode(d, buf, n, KTS, &out), CS_DECODE_OK);
    assert_int_equal(out.ts_ms, KTS);
    assert_int_equal(out.ts_from_msg, 0);

    /* invalid: no customer, no event, bad times, future time */
    const char *bad1[] = {"event_name", "page_view", NULL};
    n = tsv_line(buf, sizeof buf, bad1);
    assert_int_equal(cs_decode(d, buf, n, KTS, &out), CS_INV_NO_CUSTOMER);
    const char *bad2[] = {"network_userid", "n", "event", "page_view", NULL};
    n = tsv_line(buf, sizeof buf, bad2);
    assert_int_equal(cs_decode(d, buf, n, KTS, &out), CS_INV_NO_EVENT);
    static const char *const badt[] = {"2026-11-01T08:00:00Z", "2026-11-01 08:00:00Z",
                                       "2026-11-01 08:00:00.", "2026-11-01 08:00",
                                       "2026-13-01 08:00:00.000", "1793520000000",
                                       "2026-11-01 08:00:00.12a", "1970-01-01 00:00:00.000"};
    for (size_t i = 0; i < sizeof badt / sizeof badt[0]; i++) {
        const char *kv[] = {"user_id", "u", "event_name", "e", "derived_tstamp", badt[i], NULL};
        n = tsv_line(buf, sizeof buf, kv);
        if (cs_decode(d, buf, n, KTS, &out) != CS_INV_BAD_TIME)
            fail_msg("time '%s' should be bad_time", badt[i]);
    }
    const char *fut[] = {"user_id", "u", "event_name", "e", "derived_tstamp",
                         "2026-11-01 10:00:00.000", NULL};
    n = tsv_line(buf, sizeof buf, fut);
    assert_int_equal(cs_decode(d, buf, n, KTS, &out), CS_INV_FUTURE_TIME);
    const char *lf[] = {"user_id", "u", "event_name", "e", "derived_tstamp",
                        "2026-11-01 08:00:00.123456789", NULL};
    n = tsv_line(buf, sizeof buf, lf);
    assert_int_equal(cs_decode(d, buf, n, KTS, &out), CS_DECODE_OK);
    assert_int_equal(out.ts_ms, 1793520000123LL);

    /* not_tsv: a column more or less, empty input, JSON; fields absent */
    n = tsv_line(buf, sizeof buf, ev1);
    buf[n] = '\t';
    assert_int_equal(cs_decode(d, buf, n + 1, KTS, &out), CS_INV_NOT_TSV);
    assert_int_equal(out.f[CS_F_CUSTOMER].len, 0);
    buf[n] = '\0';
    char *last = strrchr(buf, '\t');
    assert_int_equal(cs_decode(d, buf, (size_t)(last - buf), KTS, &out), CS_INV_NOT_TSV);
    assert_int_equal(cs_decode(d, "", 0, KTS, &out), CS_INV_NOT_TSV);
    const char *js = "{\"userId\":\"u\",\"event\":\"e\"}";
    assert_int_equal(cs_decode(d, js, strlen(js), KTS, &out), CS_INV_NOT_TSV);
    memset(buf, '\t', 4000);
    assert_int_equal(cs_decode(d, buf, 4000, KTS, &out), CS_INV_NOT_TSV);
    /* too_large first */
    static char big[70000];
    memset(big, 'x', sizeof big);
    assert_int_equal(cs_decode(d, big, sizeof big, KTS, &out), CS_INV_TOO_LARGE);
    cs_decoder_destroy(d);
    cs_rules_destroy(rs);
}

/* The block-skipping tab scan against a plain split, on random lines and random plans. */
static void test_snowplow_tsv_random(void **state)
{
    (void)state;
    static char buf[16384];
    static cs_decoded out;
    uint64_t x = 0x1234567887654321ull;
#define RND() (x ^= x << 13, x ^= x >> 7, x ^= x << 17, x)
    for (int it = 0; it < 300; it++) {
        /* a plan: customer from 1..3 random columns, event from 1..2, plus 0..4 dimensions */
        char yaml[2048];
        int cust[3], ncust = 1 + (int)(RND() % 3), evc = (int)(RND() % CS_SNOWPLOW_NCOLS);
        int n = snprintf(yaml, sizeof yaml,
                         "journey: j\nstages: [a]\nformat: snowplow-enriched\nfields:\n"
                         "  customer: [");
        for (int i = 0; i < ncust; i++) {
            cust[i] = (int)(RND() % CS_SNOWPLOW_NCOLS);
            n += snprintf(yaml + n, sizeof yaml - (size_t)n, "%s%s", i ? ", " : "",
                          cs_snowplow_columns[cust[i]]);
        }
        n += snprintf(yaml + n, sizeof yaml - (size_t)n, "]\n  event: %s\n  time: app_id\n",
                      cs_snowplow_columns[evc]);
        int ndim = (int)(RND() % 5), dimc[4];
        if (ndim)
            n += snprintf(yaml + n, sizeof yaml - (size_t)n, "dimensions:\n");
        for (int i = 0; i < ndim && i < 4; i++) {
            dimc[i] = (int)(RND() % CS_SNOWPLOW_NCOLS);
            n += snprintf(yaml + n, sizeof yaml - (size_t)n, "  d%d: {path: %s}\n", i,
                          cs_snowplow_columns[dimc[i]]);
        }
        if (ndim > 4)
            ndim = 4;
        cs_ruleset *rs = load(yaml);
        cs_decoder *d = cs_decoder_new(cs_rules_plan(rs));
        for (int m = 0; m < 20; m++) {
            /* columns of 0..40 bytes, a tab count of 129..132 */
            int ncols = CS_SNOWPLOW_NCOLS + (RND() % 4 == 0 ? (int)(RND() % 4) - 2 : 0);
            size_t len = 0, cs[140], ce[140];
            for (int c = 0; c < ncols; c++) {
                if (c)
                    buf[len++] = '\t';
                cs[c] = len;
                int w = RND() % 3 == 0 ? 0 : (int)(RND() % 41);
                if (c == 0 && w == 0) /* app_id is the time column here: never absent */
                    w = 1;
                for (int k = 0; k < w; k++)
                    buf[len++] = (char)('a' + RND() % 26);
                ce[c] = len;
            }
            cs_invalid r = cs_decode(d, buf, len, KTS, &out);
            if (ncols != CS_SNOWPLOW_NCOLS) {
                assert_int_equal(r, CS_INV_NOT_TSV);
                continue;
            }
            /* expected: the first non-empty customer column, the event column */
            int wc = -1;
            for (int i = 0; i < ncust && wc < 0; i++)
                if (ce[cust[i]] > cs[cust[i]])
                    wc = cust[i];
            cs_invalid want = wc < 0 ? CS_INV_NO_CUSTOMER
                              : ce[evc] == cs[evc] ? CS_INV_NO_EVENT
                                                   : CS_INV_BAD_TIME;
            assert_int_equal(r, want);
            if (wc >= 0) {
                assert_int_equal(out.f[CS_F_CUSTOMER].len, ce[wc] - cs[wc]);
                assert_ptr_equal(out.f[CS_F_CUSTOMER].p, buf + cs[wc]);
            }
            for (int i = 0; i < ndim; i++) {
                const cs_sv *v = &out.f[cs_rules_dim(rs, i)->field];
                assert_int_equal(v->len, ce[dimc[i]] - cs[dimc[i]]);
                if (v->len)
                    assert_ptr_equal(v->p, buf + cs[dimc[i]]);
            }
        }
        cs_decoder_destroy(d);
        cs_rules_destroy(rs);
    }
#undef RND
}

/* ---- presets ------------------------------------------------------------------------------ */

typedef struct pcase {
    const char *format;
    const char *json;
    const char *customer, *event, *url, *channel;
    int64_t ms;
} pcase;

static void test_presets(void **state)
{
    (void)state;
    static const pcase cases[] = {
        {"segment",
         "{\"type\":\"track\",\"event\":\"compare\",\"anonymousId\":\"a-1\",\"userId\":\"u-1\","
         "\"timestamp\":\"2026-11-01T08:00:00.123Z\",\"channel\":\"social\","
         "\"context\":{\"page\":{\"url\":\"https://s/p\"}}}",
         "u-1", "compare", "https://s/p", "social", 1793520000123LL},
        /* RudderStack: the top-level channel is the SDK kind, never the marketing medium */
        {"rudderstack",
         "{\"type\":\"track\",\"event\":\"compare\",\"channel\":\"server\",\"anonymousId\":\"a-1\","
         "\"originalTimestamp\":\"2026-11-01T08:00:00.123Z\",\"context\":{\"campaign\":"
         "{\"medium\":\"email\"},\"page\":{\"url\":\"https://s/p\"}}}",
         "a-1", "compare", "https://s/p", "email", 1793520000123LL},
        {"rudderstack",
         "{\"type\":\"page\",\"channel\":\"web\",\"userId\":\"u-2\",\"anonymousId\":\"a-2\","
         "\"timestamp\":1793520000123,\"properties\":{\"url\":\"https://s/q\"}}",
         "u-2", "page", "https://s/q", "", 1793520000123LL},
        {"posthog",
         "{\"event\":\"$pageview\",\"distinct_id\":\"ph-1\",\"timestamp\":"
         "\"2026-11-01T08:00:00.123+00:00\",\"properties\":{\"$current_url\":\"https://s/p\","
         "\"utm_medium\":\"display\"}}",
         "ph-1", "$pageview", "https://s/p", "display", 1793520000123LL},
        {"posthog",
         "{\"event\":\"compare\",\"properties\":{\"distinct_id\":\"ph-2\"},\"timestamp\":"
         "1793520000123}",
         "ph-2", "compare", "", "", 1793520000123LL},
        /* Mixpanel: float epoch seconds, read exactly */
        {"mixpanel",
         "{\"event\":\"compare\",\"properties\":{\"token\":\"t\",\"distinct_id\":\"m-1\","
         "\"time\":1793520000.123,\"$current_url\":\"https://s/p\",\"utm_medium\":\"print\","
         "\"mp_lib\":\"python\"}}",
         "m-1", "compare", "https://s/p", "print", 1793520000123LL},
        {"mixpanel",
         "{\"event\":\"compare\",\"properties\":{\"$device_id\":\"dev-1\",\"time\":1793520000123}}",
         "dev-1", "compare", "", "", 1793520000123LL},
        {"amplitude",
         "{\"event_type\":\"compare\",\"device_id\":\"dev-9\",\"time\":1793520000123,"
         "\"event_properties\":{\"[Amplitude] Page URL\":\"https://s/p\",\"utm_medium\":"
         "\"search\"}}",
         "dev-9", "compare", "https://s/p", "search", 1793520000123LL},
        {"amplitude",
         "{\"event_type\":\"compare\",\"user_id\":\"amp-1\",\"device_id\":\"dev-9\",\"time\":"
         "1793520000123,\"event_properties\":{\"page_url\":\"https://s/q\"},\"user_properties\":"
         "{\"utm_medium\":\"email\"}}",
         "amp-1", "compare", "https://s/q", "email", 1793520000123LL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char yaml[256];
        snprintf(yaml, sizeof yaml, "journey: j\nstages: [a]\nformat: %s\n", cases[i].format);
        cs_ruleset *rs = load(yaml);
        assert_string_equal(cs_decode_plan_format(cs_rules_plan(rs))->name, cases[i].format);
        cs_decoder *d = cs_decoder_new(cs_rules_plan(rs));
        static cs_decoded out;
        cs_invalid r = cs_decode(d, cases[i].json, strlen(cases[i].json), KTS, &out);
        if (r != CS_DECODE_OK)
            fail_msg("%s case %zu: %s", cases[i].format, i, cs_invalid_name(r));
        assert_string_equal(fstr(&out.f[CS_F_CUSTOMER]), cases[i].customer);
        assert_string_equal(fstr(&out.f[CS_F_EVENT]), cases[i].event);
        assert_string_equal(fstr(&out.f[CS_F_URL]), cases[i].url);
        assert_string_equal(fstr(&out.f[CS_F_CHANNEL]), cases[i].channel);
        assert_int_equal(out.ts_ms, cases[i].ms);
        cs_decoder_destroy(d);
        cs_rules_destroy(rs);
    }
    /* without format: the v1 defaults (= segment), and segment reads RudderStack's channel */
    cs_ruleset *rs = load("journey: j\nstages: [a]\n");
    assert_string_equal(cs_decode_plan_format(cs_rules_plan(rs))->name, "segment");
    cs_decoder *d = cs_decoder_new(cs_rules_plan(rs));
    static cs_decoded out;
    const char *m = cases[1].json;
    assert_int_equal(cs_decode(d, m, strlen(m), KTS, &out), CS_DECODE_OK);
    assert_string_equal(fstr(&out.f[CS_F_CHANNEL]), "server");
    cs_decoder_destroy(d);
    cs_rules_destroy(rs);
}

/* fields: overrides on top of a preset; property.<name> below the format's properties */
static void test_preset_overrides(void **state)
{
    (void)state;
    cs_ruleset *rs = load("journey: j\nstages: [a, b]\nformat: amplitude\n"
                          "fields:\n  channel: event_properties.medium\n  time_unit: s\n"
                          "rules:\n  - {name: r, stage: b, match: {property.plan: pro}}\n");
    cs_decoder *d = cs_decoder_new(cs_rules_plan(rs));
    static cs_decoded out;
    const char *m = "{\"event_type\":\"x\",\"user_id\":\"amp-1\",\"time\":1793520000.5,"
                    "\"event_properties\":{\"medium\":\"social\",\"utm_medium\":\"no\","
                    "\"plan\":\"pro\"},\"properties\":{\"plan\":\"free\"}}";
    assert_int_equal(cs_decode(d, m, strlen(m), KTS, &out), CS_DECODE_OK);
    assert_string_equal(fstr(&out.f[CS_F_CHANNEL]), "social");
    assert_int_equal(out.ts_ms, 1793520000500LL);
    assert_int_equal(cs_rules_classify(rs, &out), 1);
    cs_decoder_destroy(d);
    cs_rules_destroy(rs);
    /* mixpanel with time_unit ms: the same float is now milliseconds (and before 2000) */
    rs = load("journey: j\nstages: [a]\nformat: mixpanel\nfields: {time_unit: ms}\n");
    d = cs_decoder_new(cs_rules_plan(rs));
    m = "{\"event\":\"x\",\"properties\":{\"distinct_id\":\"m\",\"time\":1793520000.5}}";
    assert_int_equal(cs_decode(d, m, strlen(m), KTS, &out), CS_INV_BAD_TIME);
    cs_decoder_destroy(d);
    cs_rules_destroy(rs);
}

static void expect_error(const char *yaml, const char *want)
{
    char err[512];
    cs_ruleset *rs = cs_rules_load_string(yaml, strlen(yaml), "f.yaml", err, sizeof err);
    if (rs) {
        cs_rules_destroy(rs);
        fail_msg("accepted, want error %s", want);
    }
    if (!strstr(err, want))
        fail_msg("error '%s' does not contain '%s'", err, want);
    if (strchr(err, '\n'))
        fail_msg("error '%s' is more than one line", err);
}

static void test_format_errors(void **state)
{
    (void)state;
    expect_error("journey: j\nstages: [a]\nformat: mixpanl\n",
                 "f.yaml:3:9: unknown format 'mixpanl' (known formats: segment, rudderstack, "
                 "posthog, mixpanel, amplitude, snowplow-enriched)");
    expect_error("journey: j\nstages: [a]\nformat: [segment]\n", "f.yaml:3:9: ");
    expect_error("journey: j\nstages: [a]\nfields:\n  time_unit: sec\n",
                 "f.yaml:4:14: unknown time unit 'sec' for fields.time_unit (expected ms, s, us, "
                 "ns or auto)");
    expect_error("journey: j\nstages: [a]\nformat: snowplow-enriched\nfields:\n  time_unit: s\n",
                 "f.yaml:5:14: fields.time_unit does not apply to format snowplow-enriched");
    expect_error("journey: j\nstages: [a]\nformat: snowplow-enriched\n"
                 "dimensions:\n  persona: {path: properties.persona}\n",
                 "f.yaml:5:19: dimension persona: not a column of Snowplow's enriched TSV");
    expect_error("journey: j\nstages: [a]\nformat: snowplow-enriched\n"
                 "fields:\n  customer: userId\n",
                 "f.yaml:5:13: fields.customer: not a column");
    expect_error("journey: j\nstages: [a]\nformat: snowplow-enriched\nrules:\n"
                 "  - {name: r, stage: a, match: {property.persona: x}}\n",
                 "f.yaml:5:33: match key 'property.persona': not a column");
    expect_error("journey: j\nstages: [a]\nformat: segment\nformat: posthog\n",
                 "f.yaml:4:1: duplicate key 'format'");
}

/* fuzz_formats (CI, 2026-12-05): a YAML flow scalar folds blank lines into newlines, and the
 * path's error quoted them raw, so the one-line error was four lines. */
static void regression_path_error_with_newlines_is_one_line(void **state)
{
    (void)state;
    expect_error("journey: j\nstages: [a]\nfields: {time: .s\n\n\n\n679}\n",
                 "f.yaml:3:16: fields.time: empty segment in path: \".s???679\"");
}

static void test_names(void **state)
{
    (void)state;
    for (int u = 0; u < CS_TU__COUNT; u++)
        assert_int_equal(cs_time_unit_find(cs_time_unit_name(u), strlen(cs_time_unit_name(u))), u);
    assert_int_equal(cs_time_unit_find("sec", 3), -1);
    int n = 0;
    for (const cs_format *f; (f = cs_format_at(n)); n++)
        assert_ptr_equal(cs_format_find(f->name, strlen(f->name)), f);
    assert_int_equal(n, 6);
    assert_int_equal(cs_snowplow_column("app_id", 6), 0);
    assert_int_equal(cs_snowplow_column("true_tstamp", 11), 130);
    assert_int_equal(cs_snowplow_column("se_action", 9), 54);
    assert_int_equal(cs_snowplow_column("nope", 4), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_time_units),
        cmocka_unit_test(test_time_units_vs_reference),
        cmocka_unit_test(test_snowplow_tsv),
        cmocka_unit_test(test_snowplow_tsv_random),
        cmocka_unit_test(test_presets),
        cmocka_unit_test(test_preset_overrides),
        cmocka_unit_test(test_format_errors),
        cmocka_unit_test(regression_path_error_with_newlines_is_one_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
