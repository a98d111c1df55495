/* test_identity.c — SPEC v1.3 §3.1 identity, the parts built so far (docs/identity.md): the
 * rule file's `identity:` block (paths, presets, configuration errors as FILE:LINE:COLUMN) and
 * the decoder's ids (device, person, the session key, "person equal to device is no person",
 * no_customer). */
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
#include "engine.h"
#include "formats.h"
#include "counts.h"
#include "gen.h"
#include "engine_run.h"
#include "sessionize.h"
#include "snapshot.h"
#include "refmodel.h"

#define KTS 1793520000000LL

#define HEAD "journey: saas\nstages: [visit, signup, paid]\n"
#define RULES "rules:\n  - name: v\n    stage: visit\n    match: { event: page }\n"

static cs_ruleset *load(const char *yaml)
{
    char err[512] = "";
    cs_ruleset *rs = cs_rules_load_string(yaml, strlen(yaml), "t.yaml", err, sizeof err);
    if (!rs)
        fail_msg("did not load: %s\n--- yaml:\n%s", err, yaml);
    return rs;
}

/* The load must fail with exactly `want` ("t.yaml:L:C: ...") as a prefix. */
static void expect_err(const char *yaml, const char *want)
{
    char err[512] = "";
    cs_ruleset *rs = cs_rules_load_string(yaml, strlen(yaml), "t.yaml", err, sizeof err);
    if (rs) {
        cs_rules_destroy(rs);
        fail_msg("loaded, expected error '%s'\n--- yaml:\n%s", want, yaml);
    }
    if (strncmp(err, want, strlen(want)) != 0)
        fail_msg("got error '%s'\nwanted    '%s...'\n--- yaml:\n%s", err, want, yaml);
    if (strchr(err, '\n'))
        fail_msg("error is more than one line: '%s'", err);
}

static void paths_are(const cs_ruleset *rs, int which, const char *const *want)
{
    const char *const *got;
    int n = cs_rules_identity_paths(rs, which, &got), k = 0;
    while (want[k])
        k++;
    assert_int_equal(n, k);
    for (int i = 0; i < n; i++)
        assert_string_equal(got[i], want[i]);
}

static void test_block_and_presets(void **state)
{
    (void)state;
    cs_ruleset *rs = load(HEAD RULES);
    assert_int_equal(cs_rules_identity(rs), 0);
    assert_int_equal(cs_decode_plan_person_field(cs_rules_plan(rs)), 0);
    cs_rules_destroy(rs);

    rs = load(HEAD "identity:\n  device: [anonymousId, anonymous_id]\n  person: [userId]\n" RULES);
    assert_int_equal(cs_rules_identity(rs), 1);
    assert_true(cs_decode_plan_person_field(cs_rules_plan(rs)) >= CS_F_NSTD);
    paths_are(rs, 0, (const char *[]){"anonymousId", "anonymous_id", NULL});
    paths_are(rs, 1, (const char *[]){"userId", NULL});
    cs_rules_destroy(rs);

    /* one path as a string; the other key from the preset */
    rs = load(HEAD "identity:\n  device: did\n" RULES);
    paths_are(rs, 0, (const char *[]){"did", NULL});
    paths_are(rs, 1, (const char *[]){"userId", "user_id", "customer_id", NULL});
    cs_rules_destroy(rs);

    /* identity: {} and a bare identity: take both presets of the format */
    static const struct {
        const char *fmt;
        const char *dev[4], *per[4];
    } pre[] = {
        {"segment", {"anonymousId", "anonymous_id"}, {"userId", "user_id", "customer_id"}},
        {"rudderstack", {"anonymousId"}, {"userId"}},
        {"posthog", {"properties.$device_id"}, {"distinct_id", "properties.distinct_id"}},
        {"mixpanel", {"properties.$device_id"}, {"properties.$user_id"}},
        {"amplitude", {"device_id"}, {"user_id"}},
        {"snowplow-enriched", {"domain_userid"}, {"user_id"}},
    };
    for (size_t i = 0; i < sizeof pre / sizeof pre[0]; i++)
        for (int bare = 0; bare < 2; bare++) {
            char y[512];
            snprintf(y, sizeof y, HEAD "format: %s\nidentity:%s\n" RULES, pre[i].fmt,
                     bare ? "" : " {}");
            rs = load(y);
            assert_int_equal(cs_rules_identity(rs), 1);
            paths_are(rs, 0, pre[i].dev);
            paths_are(rs, 1, pre[i].per);
            cs_rules_destroy(rs);
        }
    /* every format has presets, and no preset names one path in both lists */
    for (int i = 0; cs_format_at(i); i++) {
        const cs_format *f = cs_format_at(i);
        assert_non_null(f->device[0]);
        assert_non_null(f->person[0]);
        for (int a = 0; f->device[a]; a++)
            for (int b = 0; f->person[b]; b++)
                assert_string_not_equal(f->device[a], f->person[b]);
    }
}

static void test_config_errors(void **state)
{
    (void)state;
    /* issue 21: empty path lists */
    expect_err(HEAD "identity:\n  device: []\n  person: [userId]\n",
               "t.yaml:4:11: identity.device must list at least one path");
    expect_err(HEAD "identity:\n  device: [a]\n  person: []\n",
               "t.yaml:5:11: identity.person must list at least one path");
    expect_err(HEAD "identity:\n  device: ~\n",
               "t.yaml:4:11: identity.device must list at least one path");
    /* issue 21: a path in both lists (the error at the second occurrence) */
    expect_err(HEAD "identity:\n  device: [anonymousId, userId]\n  person: [user_id, userId]\n",
               "t.yaml:5:21: identity.person: path 'userId' is also in identity.device");
    /* ... also when one side is the preset */
    expect_err(HEAD "identity:\n  device: [x, userId]\n",
               "t.yaml:4:15: identity.device: path 'userId' is also in identity.person");
    /* issue 21: identity: together with fields.customer (at fields.customer, naming identity's
     * line) */
    expect_err(HEAD "fields:\n  customer: [cid]\nidentity:\n  device: [anonymousId]\n",
               "t.yaml:4:13: fields.customer cannot be used with identity: (line 5)");
    expect_err(HEAD "identity: {}\nfields: { customer: cid }\n",
               "t.yaml:4:21: fields.customer cannot be used with identity: (line 3)");
    /* shape */
    expect_err(HEAD "identity: [a, b]\n",
               "t.yaml:3:11: identity must be a mapping with device and/or person paths");
    expect_err(HEAD "identity:\n  devices: [a]\n",
               "t.yaml:4:3: unknown key 'devices' in identity (expected device or person)");
    expect_err(HEAD "identity:\n  device: [a]\n  device: [b]\n",
               "t.yaml:5:3: duplicate key 'device' in identity");
    expect_err(HEAD "identity:\n  device: [a, b, c, d, e, f, g, h, i]\n",
               "t.yaml:4:11: identity.device lists more than 8 paths");
    expect_err(HEAD "identity:\n  person: [\"a..b\"]\n", "t.yaml:4:3: identity: ");
    expect_err(HEAD "identity:\n  device: { a: b }\n", "t.yaml:4:11: identity.device must be");
    /* the rule file's top-level keys name identity */
    expect_err(HEAD "identiy: {}\n", "t.yaml:3:1: unknown key 'identiy' in the rule file");
    char err[512] = "";
    cs_ruleset *rs = cs_rules_load_string(HEAD "identiy: {}\n", strlen(HEAD "identiy: {}\n"),
                                          "t.yaml", err, sizeof err);
    assert_null(rs);
    assert_non_null(strstr(err, "identity"));
}

typedef struct dcase {
    const char *msg;
    cs_invalid r;
    uint8_t idf;
    const char *session; /* f[CS_F_CUSTOMER] */
    const char *person;  /* NULL: absent */
} dcase;

static void run_cases(const char *yaml, const dcase *cases, size_t n)
{
    cs_ruleset *rs = load(yaml);
    const cs_decode_plan *pl = cs_rules_plan(rs);
    const int pf = cs_decode_plan_person_field(pl);
    assert_true(pf >= CS_F_NSTD);
    cs_decoder *d = cs_decoder_new(pl);
    static cs_decoded out;
    for (size_t i = 0; i < n; i++) {
        cs_invalid r = cs_decode(d, cases[i].msg, strlen(cases[i].msg), KTS, &out);
        if (r != cases[i].r)
            fail_msg("%s: got %s, wanted %s", cases[i].msg, cs_invalid_name(r),
                     cs_invalid_name(cases[i].r));
        if (r != CS_DECODE_OK)
            continue;
        if (out.idf != cases[i].idf)
            fail_msg("%s: idf %d, wanted %d", cases[i].msg, out.idf, cases[i].idf);
        const cs_sv *s = &out.f[CS_F_CUSTOMER], *p = &out.f[pf];
        if (s->len != strlen(cases[i].session) || memcmp(s->p, cases[i].session, s->len))
            fail_msg("%s: session key '%.*s', wanted '%s'", cases[i].msg, (int)s->len, s->p,
                     cases[i].session);
        const char *wp = cases[i].person;
        if (!wp ? p->len != 0 : (p->len != strlen(wp) || memcmp(p->p, wp, p->len)))
            fail_msg("%s: person '%.*s', wanted '%s'", cases[i].msg, (int)p->len,
                     p->p ? p->p : "", wp ? wp : "(absent)");
    }
    cs_decoder_destroy(d);
    cs_rules_destroy(rs);
}

static void test_decode_ids(void **state)
{
    (void)state;
    const int B = CS_ID_DEVICE | CS_ID_PERSON;
    static const char *T = ",\"event\":\"page\",\"timestamp\":\"2026-11-01T00:00:00Z\"}";
    char m[32][256];
    const char *raw[] = {
        "{\"anonymousId\":\"a1\"",                          /* device only */
        "{\"anonymousId\":\"a1\",\"userId\":\"u7\"",        /* both */
        "{\"userId\":\"u7\"",                               /* person only: session key p */
        "{\"anonymousId\":\"a1\",\"userId\":\"a1\"",        /* p == d: no person */
        "{\"anonymousId\":12,\"userId\":12",                /* the same as integers */
        "{\"anonymousId\":12,\"userId\":\"12\"",            /* ... as text: equal too */
        "{\"anonymousId\":\"a1\",\"userId\":1.5",          /* a float is no id */
        "{\"anonymousId\":\"a1\",\"userId\":1.5,\"user_id\":9", /* ... a lower path wins */
        "{\"anonymousId\":true,\"userId\":\"u7\"",          /* a boolean is no device */
        "{\"userId\":\"\",\"anonymous_id\":\"a2\"",         /* empty is absent */
        "{\"customer_id\":\"c\"",                           /* the v1 customer paths: unread */
        "{\"anonymousId\":null,\"userId\":{}",              /* neither */
        "{\"anonymousId\":\"a\\u0031\",\"userId\":\"a1\"",  /* escapes undone before comparing */
    };
    for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++) {
        snprintf(m[i], sizeof m[i], "%s%s", raw[i], T);
    }
    const dcase cases[] = {
        {m[0], CS_DECODE_OK, CS_ID_DEVICE, "a1", NULL},
        {m[1], CS_DECODE_OK, B, "a1", "u7"},
        {m[2], CS_DECODE_OK, CS_ID_PERSON, "u7", "u7"},
        {m[3], CS_DECODE_OK, CS_ID_DEVICE, "a1", NULL},
        {m[4], CS_DECODE_OK, CS_ID_DEVICE, "12", NULL},
        {m[5], CS_DECODE_OK, CS_ID_DEVICE, "12", NULL},
        {m[6], CS_DECODE_OK, CS_ID_DEVICE, "a1", NULL},
        {m[7], CS_DECODE_OK, B, "a1", "9"},
        {m[8], CS_DECODE_OK, CS_ID_PERSON, "u7", "u7"},
        {m[9], CS_DECODE_OK, CS_ID_DEVICE, "a2", NULL},
        {m[10], CS_INV_NO_CUSTOMER, 0, NULL, NULL},
        {m[11], CS_INV_NO_CUSTOMER, 0, NULL, NULL},
        {m[12], CS_DECODE_OK, CS_ID_DEVICE, "a1", NULL},
    };
    run_cases(HEAD "identity:\n  device: [anonymousId, anonymous_id]\n  person: [userId, user_id]\n"
                   RULES, cases, sizeof cases / sizeof cases[0]);

    /* PostHog: distinct_id is the device id until identify (no person), then the person */
    const dcase ph[] = {
        {"{\"event\":\"$pageview\",\"distinct_id\":\"d1\",\"properties\":{\"$device_id\":\"d1\"}}",
         CS_DECODE_OK, CS_ID_DEVICE, "d1", NULL},
        {"{\"event\":\"$pageview\",\"distinct_id\":\"u7\",\"properties\":{\"$device_id\":\"d1\"}}",
         CS_DECODE_OK, B, "d1", "u7"},
        {"{\"event\":\"x\",\"distinct_id\":\"u7\"}", CS_DECODE_OK, CS_ID_PERSON, "u7", "u7"},
    };
    run_cases(HEAD "format: posthog\nidentity: {}\n" RULES, ph, sizeof ph / sizeof ph[0]);

    /* a dimension on the person's path is its own field: it keeps floats and equal values */
    cs_ruleset *rs = load(HEAD "identity:\n  person: [userId]\ndimensions:\n"
                               "  who: { path: userId }\n" RULES);
    const cs_decode_plan *pl = cs_rules_plan(rs);
    assert_int_not_equal(cs_rules_dim(rs, 0)->field, cs_decode_plan_person_field(pl));
    cs_decoder *d = cs_decoder_new(pl);
    static cs_decoded out;
    const char *msg = "{\"anonymousId\":\"a1\",\"userId\":1.5,\"event\":\"page\"}";
    assert_int_equal(cs_decode(d, msg, strlen(msg), KTS, &out), CS_DECODE_OK);
    assert_int_equal(out.idf, CS_ID_DEVICE);
    assert_int_equal(out.f[cs_rules_dim(rs, 0)->field].len, 3);
    cs_decoder_destroy(d);
    cs_rules_destroy(rs);
}

/* Snowplow enriched TSV: ids are columns */
static void test_decode_tsv(void **state)
{
    (void)state;
    cs_ruleset *rs = load(HEAD "format: snowplow-enriched\nidentity: {}\n" RULES);
    const int pf = cs_decode_plan_person_field(cs_rules_plan(rs));
    cs_decoder *d = cs_decoder_new(cs_rules_plan(rs));
    static cs_decoded out;
    char line[4096];
    for (int k = 0; k < 3; k++) {
        size_t o = 0;
        for (int c = 0; c < CS_SNOWPLOW_NCOLS; c++) {
            const char *v = "";
            const char *name = cs_snowplow_columns[c];
            if (!strcmp(name, "domain_userid"))
                v = k == 2 ? "" : "dev1";
            else if (!strcmp(name, "user_id"))
                v = k == 0 ? "" : "u7";
            else if (!strcmp(name, "event_name"))
                v = "page_view";
            else if (!strcmp(name, "collector_tstamp"))
                v = "2026-11-01 00:00:00.000";
            o += (size_t)snprintf(line + o, sizeof line - o, "%s%s", c ? "\t" : "", v);
        }
        assert_int_equal(cs_decode(d, line, o, KTS, &out), CS_DECODE_OK);
        static const uint8_t want[] = {CS_ID_DEVICE, CS_ID_DEVICE | CS_ID_PERSON, CS_ID_PERSON};
        assert_int_equal(out.idf, want[k]);
        const char *sk = k == 2 ? "u7" : "dev1";
        assert_int_equal(out.f[CS_F_CUSTOMER].len, strlen(sk));
        assert_memory_equal(out.f[CS_F_CUSTOMER].p, sk, strlen(sk));
        assert_int_equal(out.f[pf].len, k == 0 ? 0 : 2);
    }
    cs_decoder_destroy(d);
    cs_rules_destroy(rs);
}

/* Without identity: idf stays 0 and the customer is v1's (userId before anonymousId). */
static void test_v1_unchanged(void **state)
{
    (void)state;
    cs_ruleset *rs = load(HEAD RULES);
    cs_decoder *d = cs_decoder_new(cs_rules_plan(rs));
    static cs_decoded out;
    const char *msg = "{\"anonymousId\":\"a1\",\"userId\":\"u7\",\"event\":\"page\"}";
    assert_int_equal(cs_decode(d, msg, strlen(msg), KTS, &out), CS_DECODE_OK);
    assert_int_equal(out.idf, 0);
    assert_int_equal(out.f[CS_F_CUSTOMER].len, 2);
    assert_memory_equal(out.f[CS_F_CUSTOMER].p, "u7", 2);
    cs_decoder_destroy(d);
    cs_rules_destroy(rs);
}

/* ---- the reference model (loadgen/refmodel.c) on hand-made streams ---------------------- */

#define T0 1793520000000LL /* 2026-11-01T08:00:00Z */
#define MIN 60000LL
#define SAAS                                                                                     \
    "journey: saas\nstages: [visit, signup, paid]\ncustomer_ttl: 1d\n%s"                          \
    "rules:\n  - { name: v, stage: visit, match: { event: page } }\n"                            \
    "  - { name: s, stage: signup, match: { event: signup } }\n"                                 \
    "  - { name: p, stage: paid, match: { event: pay } }\n"

typedef struct rin {
    int part;
    const char *dev, *per, *event;
    int64_t t;
} rin;

/* Runs the events through the reference model (identity on or off) and returns its counts. */
static cs_counts *ref_run(int identity, const rin *in, int n)
{
    char y[1024];
    snprintf(y, sizeof y, SAAS, identity ? "identity: {}\n" : "");
    cs_ruleset *rs = load(y);
    ref_model *m = ref_new(rs, NULL, 2);
    for (int i = 0; i < n; i++) {
        char msg[512];
        int o = snprintf(msg, sizeof msg, "{\"event\":\"%s\",\"timestamp\":%lld", in[i].event,
                         (long long)in[i].t);
        if (in[i].dev)
            o += snprintf(msg + o, sizeof msg - (size_t)o, ",\"anonymousId\":\"%s\"", in[i].dev);
        if (in[i].per)
            o += snprintf(msg + o, sizeof msg - (size_t)o, ",\"userId\":\"%s\"", in[i].per);
        snprintf(msg + o, sizeof msg - (size_t)o, "}");
        ref_event(m, in[i].part, msg, strlen(msg), in[i].t);
    }
    ref_finish(m, CS_END_DRAIN);
    cs_counts *c = cs_counts_new();
    ref_counts(m, c);
    ref_free(m);
    cs_rules_destroy(rs);
    return c;
}

#define GET(c, h, f) cs_counts_get((c), (h), (f))

/* The login inside a visit: one session, one customer (the person), merged once; the
 * customer_time_to of the merged journey counts from the first anonymous event. */
static void test_ref_login_mid_visit(void **state)
{
    (void)state;
    const rin in[] = {
        {0, "a1", NULL, "page", T0},
        {0, "a1", "u7", "signup", T0 + 1 * MIN},
        {0, "a1", NULL, "pay", T0 + 2 * MIN}, /* the alias: u7 */
    };
    cs_counts *c = ref_run(1, in, 3);
    assert_int_equal(GET(c, "sessions", "started"), 1);
    assert_int_equal(GET(c, "identity", "merged"), 1);
    assert_int_equal(GET(c, "identity", "conflicts"), 0);
    assert_int_equal(GET(c, "customers", "paid"), 1);
    assert_int_equal(GET(c, "customers", "_none"), 0);
    assert_int_equal(GET(c, "customers", "visit"), 0);
    assert_int_equal(GET(c, "customers", "signup"), 0);
    assert_int_equal(GET(c, "customer_time_to:visit", "0"), 1);   /* a1's, counted as it was */
    assert_int_equal(GET(c, "customer_time_to:signup", "60"), 1); /* u7's, from a1's C.first */
    assert_int_equal(GET(c, "customer_time_to:paid", "120"), 1);
    assert_int_equal(GET(c, "transitions", "_entry>visit"), 1);
    assert_int_equal(GET(c, "transitions", "signup>paid"), 1);
    cs_counts_free(c);

    /* v1 on the same stream: two sessions (a1, u7), two customers, nothing merged */
    c = ref_run(0, in, 3);
    assert_int_equal(GET(c, "sessions", "started"), 2);
    assert_int_equal(GET(c, "identity", "merged"), 0);
    assert_int_equal(GET(c, "customers", "paid"), 1);   /* a1 (userId absent: anonymousId) */
    assert_int_equal(GET(c, "customers", "signup"), 1); /* u7 */
    cs_counts_free(c);
}

/* The person already has a journey (another device): the device's merges into it, the
 * further stage and the earlier C.first win. */
static void test_ref_merge_into_existing(void **state)
{
    (void)state;
    const rin in[] = {
        {0, "b1", "u7", "pay", T0 - 60 * MIN},  /* first event with both: alias, nothing merged */
        {0, "a1", NULL, "page", T0},
        {0, "a1", "u7", "page", T0 + 1 * MIN}, /* merge a1 (visit) into u7 (paid) */
        {0, "a1", NULL, "signup", T0 + 2 * MIN},
    };
    cs_counts *c = ref_run(1, in, 4);
    assert_int_equal(GET(c, "identity", "merged"), 1);
    assert_int_equal(GET(c, "customers", "paid"), 1);
    assert_int_equal(GET(c, "customers", "visit"), 0);
    assert_int_equal(GET(c, "customers", "_none"), 0);
    assert_int_equal(GET(c, "sessions", "started"), 2); /* b1's, a1's */
    cs_counts_free(c);
}

/* Another person on an aliased device: a conflict, counted for the event's own person; the
 * alias stays. p equal to d is no person. */
static void test_ref_conflict_and_equal(void **state)
{
    (void)state;
    const rin in[] = {
        {0, "a1", "u7", "page", T0},
        {0, "a1", "u8", "page", T0 + 1 * MIN}, /* conflict: customer u8 */
        {0, "a1", NULL, "signup", T0 + 2 * MIN}, /* alias: u7 */
        {1, "c1", "c1", "page", T0},             /* no person: customer c1 */
    };
    cs_counts *c = ref_run(1, in, 4);
    assert_int_equal(GET(c, "identity", "conflicts"), 1);
    assert_int_equal(GET(c, "identity", "merged"), 0);
    assert_int_equal(GET(c, "customers", "signup"), 1); /* u7 */
    /* u8's event moved no session stage (a1's session was at visit already), so u8's journey
     * stays _none: a customer's stage moves with its session's moves (docs/identity.md) */
    assert_int_equal(GET(c, "customers", "_none"), 1);
    assert_int_equal(GET(c, "customers", "visit"), 1); /* c1 */
    assert_int_equal(GET(c, "sessions", "started"), 2);
    cs_counts_free(c);
}

/* The alias is forgotten customer_ttl after the device's last event; a person on two
 * partitions is one customer per partition. */
static void test_ref_ttl_and_partitions(void **state)
{
    (void)state;
    const rin in[] = {
        {0, "a1", "u7", "page", T0},
        {0, "a1", NULL, "signup", T0 + 25 * 60 * MIN}, /* > 1d later: alias gone, customer a1 */
        {1, "b1", "u7", "pay", T0},                    /* u7 on partition 1: its own journey */
    };
    cs_counts *c = ref_run(1, in, 3);
    assert_int_equal(GET(c, "identity", "merged"), 0);
    /* a1 at signup (a journey of its own: the alias was forgotten); u7 on partition 0 still at
     * visit and u7 on partition 1 at paid (the final watermark is partition 1's, T0 - lateness:
     * nothing is older than a day under it) */
    assert_int_equal(GET(c, "customers", "signup"), 1);
    assert_int_equal(GET(c, "customers", "visit"), 1);
    assert_int_equal(GET(c, "customers", "paid"), 1);
    assert_int_equal(GET(c, "sessions", "started"), 3);
    cs_counts_free(c);
    const rin in2[] = {
        {0, "a1", "u7", "page", T0},
        {1, "b1", "u7", "pay", T0 + 1 * MIN},
    };
    c = ref_run(1, in2, 2);
    assert_int_equal(GET(c, "customers", "visit"), 1); /* u7 on partition 0 */
    assert_int_equal(GET(c, "customers", "paid"), 1);  /* u7 on partition 1 */
    cs_counts_free(c);
}

/* ---- the generator's anonymous-then-known journeys (--login) --------------------------- */

/* The value of "key":"..." in a generated Segment message, or "" */
static const char *jstr(const char *msg, size_t len, const char *key, char *out, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    out[0] = 0;
    const char *a = memmem(msg, len, pat, strlen(pat));
    if (!a)
        return out;
    a += strlen(pat);
    const char *b = memchr(a, '"', (size_t)(msg + len - a));
    if (b && (size_t)(b - a) < cap) {
        memcpy(out, a, (size_t)(b - a));
        out[b - a] = 0;
    }
    return out;
}

typedef struct devseen {
    char dev[64], person[64];
    int part;
} devseen;

static void test_gen_login(void **state)
{
    (void)state;
    cs_gen_conf gc;
    cs_gen_defaults(&gc);
    gc.nevents = 60000;
    gc.ncustomers = 3000;
    gc.nparts = 4;
    gc.login_frac = 0.5;
    gc.second_device_frac = 0.3;
    static devseen seen[3000];
    int nseen = 0, known = 0, second = 0, valid = 0;
    cs_gen *g = cs_gen_new(&gc);
    cs_gen_msg m;
    char dev[64], per[64];
    while (cs_gen_next(g, &m)) {
        if (m.invalid)
            continue;
        valid++;
        jstr(m.payload, m.len, "anonymousId", dev, sizeof dev);
        jstr(m.payload, m.len, "userId", per, sizeof per);
        /* keyed by device: the key is the device, on the device's partition */
        assert_true(dev[0]);
        assert_int_equal(m.keylen, strlen(dev));
        assert_memory_equal(m.key, dev, m.keylen);
        assert_int_equal(m.part, cs_gen_partition(dev, strlen(dev), gc.nparts));
        devseen *d = NULL;
        for (int i = 0; i < nseen && !d; i++)
            if (!strcmp(seen[i].dev, dev))
                d = &seen[i];
        if (!d) {
            assert_true(nseen < 3000);
            d = &seen[nseen++];
            snprintf(d->dev, sizeof d->dev, "%s", dev);
            d->part = m.part;
        }
        if (d->person[0]) /* once known, always known (shared devices: sometimes another) */
            assert_true(per[0] != 0);
        else if (per[0])
            snprintf(d->person, sizeof d->person, "%s", per);
        known += per[0] != 0;
    }
    cs_gen_destroy(g);
    /* persons with two devices: the same userId on two device ids */
    for (int i = 0; i < nseen; i++)
        for (int j = i + 1; j < nseen && seen[i].person[0]; j++)
            second += !strcmp(seen[i].person, seen[j].person);
    int logged = 0;
    for (int i = 0; i < nseen; i++)
        logged += seen[i].person[0] != 0;
    print_message("devices %d, logged in %d, persons with 2 devices %d, events with userId "
                  "%d of %d\n", nseen, logged, second, known, valid);
    assert_true(logged > nseen / 3 && logged < nseen * 2 / 3);
    assert_true(second > 0);
    assert_true(known > valid / 5);

    /* ground truth: identity merges; fewer customers and sessions than v1 on the same stream */
    cs_counts *c[2];
    for (int id = 0; id < 2; id++) {
        char err[512];
        cs_ruleset *rs = cs_rules_load_file(id ? "data/identity/retail-identity.yaml"
                                               : "../deploy/rules/retail.yaml",
                                            err, sizeof err);
        if (!rs)
            fail_msg("%s", err);
        ref_model *rm = ref_new(rs, NULL, gc.nparts);
        g = cs_gen_new(&gc);
        while (cs_gen_next(g, &m))
            ref_event(rm, m.part, m.payload, m.len, m.ts_ms);
        cs_gen_destroy(g);
        ref_finish(rm, CS_END_DRAIN);
        c[id] = cs_counts_new();
        ref_counts(rm, c[id]);
        ref_free(rm);
        cs_rules_destroy(rs);
    }
    int64_t cust[2] = {0, 0};
    static const char *const cf[] = {"_none", "awareness", "consideration", "purchase", "service",
                                     "loyalty"};
    for (int id = 0; id < 2; id++)
        for (int k = 0; k < 6; k++)
            cust[id] += cs_counts_get(c[id], "customers", cf[k]);
    print_message("customers v1 %lld, identity %lld; sessions v1 %lld, identity %lld; merged "
                  "%lld\n", (long long)cust[0], (long long)cust[1],
                  (long long)cs_counts_get(c[0], "sessions", "started"),
                  (long long)cs_counts_get(c[1], "sessions", "started"),
                  (long long)cs_counts_get(c[1], "identity", "merged"));
    assert_true(cs_counts_get(c[1], "identity", "merged") > 0);
    assert_int_equal(cs_counts_get(c[0], "identity", "merged"), 0);
    assert_true(cust[1] < cust[0]);
    assert_true(cs_counts_get(c[1], "sessions", "started") <
                cs_counts_get(c[0], "sessions", "started"));
    /* the same invalid messages either way (which events are late depends on the session
     * keys: a late event with a userId is judged against the person's session under v1) */
    assert_int_equal(cs_counts_get(c[1], "invalid", "not_json"),
                     cs_counts_get(c[0], "invalid", "not_json"));
    assert_true(cs_counts_get(c[1], "events", "_late") > 0);
    cs_counts_free(c[0]);
    cs_counts_free(c[1]);
}

/* ---- the engine against the reference model (SPEC §3.1 exactly) ------------------------- */

static cs_counts *ref_of(const cs_gen_out *g, const char *rules)
{
    char err[512];
    cs_ruleset *rs = cs_rules_load_file(rules, err, sizeof err);
    if (!rs)
        fail_msg("%s", err);
    ref_model *m = ref_new(rs, NULL, g->nparts);
    for (size_t k = 0;; k++) { /* partitions interleaved, each in its order */
        int any = 0;
        for (int q = 0; q < g->nparts; q++)
            if (k < g->parts[q].n) {
                const cs_msg *msg = &g->parts[q].msgs[k];
                ref_event(m, q, msg->payload, msg->len, msg->ts_ms);
                any = 1;
            }
        if (!any)
            break;
    }
    ref_finish(m, CS_END_DRAIN);
    cs_counts *c = cs_counts_new();
    ref_counts(m, c);
    ref_free(m);
    cs_rules_destroy(rs);
    return c;
}

static void engine_vs_ref(const cs_gen_conf *gc, int threads, size_t batch, const char *rules)
{
    cs_gen_out *g = cs_gen_run(gc);
    cs_counts *ref = ref_of(g, rules);
    cs_counts *eng = cs_test_run_engine(g, threads, batch, rules);
    assert_non_null(eng);
    long d = cs_counts_diff(ref, "ref", eng, "engine", stderr, 40);
    print_message("%s: %llu messages, %d thread(s), batch %zu: merged %lld, conflicts %lld, "
                  "%ld differences\n", rules, (unsigned long long)g->nmsgs, threads, batch,
                  (long long)cs_counts_get(ref, "identity", "merged"),
                  (long long)cs_counts_get(ref, "identity", "conflicts"), d);
    assert_int_equal(d, 0);
    if (strstr(rules, "identity")) {
        assert_true(cs_counts_get(ref, "identity", "merged") > 0);
        assert_true(cs_counts_get(ref, "identity", "conflicts") > 0);
    }
    cs_counts_free(ref);
    cs_counts_free(eng);
    cs_gen_free(g);
}

static void test_engine_exact(void **state)
{
    (void)state;
    cs_gen_conf gc;
    cs_gen_defaults(&gc);
    gc.nevents = getenv("CS_MODEL_EVENTS") ? strtoull(getenv("CS_MODEL_EVENTS"), NULL, 10) / 2
                                           : 200000;
    gc.ncustomers = 8000;
    gc.nparts = 6;
    gc.login_frac = 0.5;
    gc.second_device_frac = 0.3;
    engine_vs_ref(&gc, 3, 512, "data/identity/retail-identity.yaml");
    engine_vs_ref(&gc, 1, 64, "data/identity/retail-identity.yaml");
    /* (v1 rules on this stream are not exact, and need not be: v1's customer is the userId,
     * and the stream is keyed by device, so a person with two devices is a v1 customer on two
     * partitions; test_model_mt checks v1 on streams keyed by v1's customer) */
    /* a short customer_ttl: aliases and journeys forgotten while the stream runs */
    engine_vs_ref(&gc, 2, 256, "data/identity/retail-identity-ttl.yaml");
}

/* ---- snapshot v3: aliases and keys without a journey, restored exactly ------------------- */

typedef struct iside {
    cs_pstate *p;
    cs_agg agg;
    cs_sessctx c;
} iside;

static void iside_init(iside *s, const cs_ruleset *rs, cs_dimdict_mpmc *d, cs_pstate *p)
{
    s->p = p ? p : cs_pstate_new(cs_rules_session(rs), cs_rules_ndims(rs));
    assert_non_null(s->p);
    assert_int_equal(cs_agg_init(&s->agg, rs), 0);
    s->c.rs = rs;
    s->c.agg = &s->agg;
    s->c.dicts = d;
    s->c.W = INT64_MIN;
}

/* Partition 0 of a generated login stream: A counts all of it; B counts up to `cut`, is
 * snapshotted, restored as C (the snapshot is v3 and C's snapshot is byte for byte B's), and C
 * counts the rest. A's counts == B's + C's, and the end states snapshot to the same bytes. */
static void test_snapshot_v3(void **state)
{
    (void)state;
    char err[512];
    cs_ruleset *rs = cs_rules_load_file("data/identity/retail-identity-ttl.yaml", err, sizeof err);
    if (!rs)
        fail_msg("%s", err);
    cs_dimdict_mpmc d[CS_MAX_DIMS];
    for (int k = 0; k < cs_rules_ndims(rs); k++)
        assert_int_equal(cs_dimdict_init(&d[k], cs_rules_dim(rs, k)->max_values), 0);
    cs_gen_conf gc;
    cs_gen_defaults(&gc);
    gc.nevents = 120000;
    gc.ncustomers = 4000;
    gc.nparts = 2;
    gc.login_frac = 0.6;
    gc.second_device_frac = 0.3;
    cs_gen_out *g = cs_gen_run(&gc);
    const cs_gen_part *gp = &g->parts[0];
    const int64_t lateness = cs_rules_session(rs)->lateness_ms;
    iside A, B, C;
    iside_init(&A, rs, d, NULL);
    iside_init(&B, rs, d, NULL);
    cs_decoder *dec = cs_decoder_new(cs_rules_plan(rs));
    static cs_decoded ev;
    const size_t cut = gp->n / 2;
    char *b1 = NULL, *b2 = NULL;
    size_t l1 = 0, l2 = 0;
    int restored = 0;
    for (size_t i = 0; i < gp->n; i++) {
        if (i == cut) { /* B -> bytes -> C */
            cs_snap_info in = {.next_offset = (int64_t)i, .applied_wm = B.c.W};
            assert_int_equal(cs_snapshot_write(B.p, rs, d, &in, &b1, &l1), 0);
            assert_int_equal(b1[4], 3); /* identity entries: v3 */
            cs_snap_info out;
            cs_pstate *p = cs_snapshot_read(b1, l1, rs, d, &out, err, sizeof err);
            if (!p)
                fail_msg("%s", err);
            assert_int_equal(out.next_offset, (int64_t)i);
            iside_init(&C, rs, d, p);
            C.c.W = B.c.W;
            cs_snap_info in2 = {.next_offset = (int64_t)i, .applied_wm = C.c.W};
            assert_int_equal(cs_snapshot_write(C.p, rs, d, &in2, &b2, &l2), 0);
            assert_int_equal(l1, l2); /* canonical: the restored state writes the same bytes */
            assert_memory_equal(b1, b2, l1);
            free(b1);
            free(b2);
            restored = 1;
        }
        const cs_msg *m = &gp->msgs[i];
        if (cs_decode(dec, m->payload, m->len, m->ts_ms, &ev) != CS_DECODE_OK)
            continue;
        iside *sv[2] = {&A, restored ? &C : &B};
        for (int k = 0; k < 2; k++) {
            cs_sessionize(sv[k]->p, &sv[k]->c, &ev);
            if ((i & 63) == 0) { /* the watermark moves between batches */
                int64_t mt = cs_pstate_max_time(sv[k]->p);
                if (mt != INT64_MIN && mt - lateness > sv[k]->c.W) {
                    sv[k]->c.W = mt - lateness;
                    cs_pstate_advance(sv[k]->p, &sv[k]->c);
                }
            }
        }
    }
    cs_pstate_stats sa, sc;
    cs_pstate_stats_get(A.p, &sa);
    cs_pstate_stats_get(C.p, &sc);
    assert_true(sa.aliases > 0);
    assert_int_equal(sa.aliases, sc.aliases);
    assert_int_equal(sa.customers, sc.customers);
    assert_int_equal(sa.sessions, sc.sessions);
    cs_snap_info ia = {0}, ic = {0};
    assert_int_equal(cs_snapshot_write(A.p, rs, d, &ia, &b1, &l1), 0);
    assert_int_equal(cs_snapshot_write(C.p, rs, d, &ic, &b2, &l2), 0);
    assert_int_equal(l1, l2);
    assert_memory_equal(b1, b2, l1);
    cs_agg_merge(&B.agg, &C.agg);
    cs_counts *ca = cs_counts_new(), *cb = cs_counts_new();
    cs_agg_foreach(&A.agg, rs, d, cs_counts_agg_cb, ca);
    cs_agg_foreach(&B.agg, rs, d, cs_counts_agg_cb, cb);
    assert_int_equal(cs_counts_diff(ca, "uninterrupted", cb, "snapshot+restore", stderr, 20), 0);
    print_message("v3 snapshot of partition 0 at message %zu: %zu bytes at the end, %llu "
                  "aliases, %llu key entries; merged %lld, conflicts %lld\n", cut, l1,
                  (unsigned long long)sa.aliases, (unsigned long long)sa.customers,
                  (long long)cs_counts_get(ca, "identity", "merged"),
                  (long long)cs_counts_get(ca, "identity", "conflicts"));
    assert_true(cs_counts_get(ca, "identity", "merged") > 0);
    /* corrupt identity bytes are rejected: every single-byte change, re-sealed */
    size_t rejected = 0, tried = 0;
    for (size_t k = 56; k + 8 < l1 && tried < 4000; k += 1 + l1 / 4000, tried++) {
        char *c = malloc(l1);
        memcpy(c, b1, l1);
        c[k] ^= 0x5a;
        cs_snapshot_seal(c, l1);
        cs_pstate *p = cs_snapshot_read(c, l1, rs, d, NULL, err, sizeof err);
        if (!p)
            rejected++;
        else { /* accepted: then it must be canonical (writes back the same bytes) */
            char *w;
            size_t wl;
            cs_snap_info wi = {0};
            memcpy(&wi, &ia, sizeof wi);
            assert_int_equal(cs_snapshot_write(p, rs, d, &wi, &w, &wl), 0);
            assert_int_equal(wl, l1);
            assert_memory_equal(w + 56, c + 56, wl - 56 - 8);
            free(w);
            cs_pstate_destroy(p);
        }
        free(c);
    }
    print_message("%zu of %zu byte changes rejected, the rest read back canonically\n", rejected,
                  tried);
    /* rules without identity: (same journey, stages, dimensions) refuse a v3 snapshot: its keys
     * mean devices and persons */
    cs_ruleset *v1 = cs_rules_load_file("../deploy/rules/retail.yaml", err, sizeof err);
    assert_non_null(v1);
    assert_null(cs_snapshot_read(b1, l1, v1, d, NULL, err, sizeof err));
    assert_non_null(strstr(err, "identity"));
    /* nor can a reload add or remove identity: */
    cs_engine *e = cs_engine_new(v1, 1, err, sizeof err);
    assert_non_null(e);
    assert_int_equal(cs_engine_swap_rules(e, rs, err, sizeof err), -1);
    assert_non_null(strstr(err, "identity"));
    cs_engine_destroy(e); /* it owns v1 */
    free(b1);
    free(b2);
    cs_counts_free(ca);
    cs_counts_free(cb);
    cs_decoder_destroy(dec);
    cs_pstate_destroy(A.p);
    cs_pstate_destroy(B.p);
    cs_pstate_destroy(C.p);
    cs_agg_free(&A.agg);
    cs_agg_free(&B.agg);
    cs_agg_free(&C.agg);
    cs_gen_free(g);
    for (int k = 0; k < cs_rules_ndims(rs); k++)
        cs_dimdict_free(&d[k]);
    cs_rules_destroy(rs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_block_and_presets),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_decode_ids),
        cmocka_unit_test(test_decode_tsv),
        cmocka_unit_test(test_v1_unchanged),
        cmocka_unit_test(test_ref_login_mid_visit),
        cmocka_unit_test(test_ref_merge_into_existing),
        cmocka_unit_test(test_ref_conflict_and_equal),
        cmocka_unit_test(test_ref_ttl_and_partitions),
        cmocka_unit_test(test_gen_login),
        cmocka_unit_test(test_engine_exact),
        cmocka_unit_test(test_snapshot_v3),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
