/* test_rules.c — the rule file compiler (pipeline/classify.c, SPEC §2).
 *
 * Run from tests/ (the Makefile does): fixtures are ../deploy/rules/ and rules/.
 *
 * What is proven here:
 *  - the shipped files load to exactly what SPEC §2 says, and classify the events it implies;
 *  - every error class names FILE:LINE:COL of the offending node (exact positions asserted);
 *  - matching semantics (first rule wins, all keys must hold, exact/glob/prefix, absent fields,
 *    dimensions, property.<name>, bitsets past 64 rules, the CS_MAX_RULES limit);
 *  - the compiled matcher agrees with an independent model of the semantics on random rule
 *    sets and events (and with the library's own reference scan).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "aggregate.h"
#include "classify.h"
#include "util.h"
#include "decode.h"

#define RETAIL "../deploy/rules/retail.yaml"
#define SAAS "../deploy/rules/saas.yaml"

/* ---------------------------------------------------------------------------------------- */
/* helpers */

static cs_ruleset *load_ok(const char *yaml)
{
    char err[512] = "";
    cs_ruleset *rs = cs_rules_load_string(yaml, strlen(yaml), "t.yaml", err, sizeof err);
    if (!rs)
        fail_msg("unexpected error: %s\n--- yaml:\n%s", err, yaml);
    return rs;
}

/* The load must fail with an error starting with `prefix` ("t.yaml:L:C: ") and containing
 * `sub`, on one line. */
static void expect_err_at(const char *yaml, size_t len, const char *prefix, const char *sub)
{
    char err[512] = "";
    cs_ruleset *rs = cs_rules_load_string(yaml, len, "t.yaml", err, sizeof err);
    if (rs) {
        cs_rules_destroy(rs);
        fail_msg("loaded, expected error '%s%s'\n--- yaml:\n%s", prefix, sub, yaml);
    }
    if (strncmp(err, prefix, strlen(prefix)) != 0 || !strstr(err, sub))
        fail_msg("got error   '%s'\nwanted      '%s...%s...'\n--- yaml:\n%s", err, prefix, sub,
                 yaml);
    if (strchr(err, '\n'))
        fail_msg("error '%s' is more than one line", err);
}

static void expect_err(const char *yaml, const char *prefix, const char *sub)
{
    expect_err_at(yaml, strlen(yaml), prefix, sub);
}

static void setf(cs_decoded *e, int f, const char *s)
{
    e->f[f].p = s;
    e->f[f].len = s ? (uint32_t)strlen(s) : 0;
    e->f[f].kind = CS_SV_STR;
}

static cs_decoded ev3(const char *event, const char *channel, const char *url)
{
    cs_decoded e;
    memset(&e, 0, sizeof e);
    setf(&e, CS_F_CUSTOMER, "c1");
    setf(&e, CS_F_EVENT, event);
    setf(&e, CS_F_CHANNEL, channel);
    setf(&e, CS_F_URL, url);
    return e;
}

static const char *stage_of(const cs_ruleset *rs, const cs_decoded *e)
{
    int m = cs_rules_match(rs, e);
    assert_int_equal(m, cs_rules_match_scan(rs, e));
    int st = cs_rules_classify(rs, e);
    return st < 0 ? "-" : cs_rules_stage_name(rs, st);
}

static const char *rule_of(const cs_ruleset *rs, const cs_decoded *e)
{
    int m = cs_rules_match(rs, e);
    assert_int_equal(m, cs_rules_match_scan(rs, e));
    return m < 0 ? "-" : cs_rules_rule_name(rs, m);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[1 << 16];
    *len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return buf;
}

/* ---------------------------------------------------------------------------------------- */
/* the shipped files */

static void test_retail_loads(void **state)
{
    char err[512] = "";
    cs_ruleset *rs = cs_rules_load_file(RETAIL, err, sizeof err);
    if (!rs)
        fail_msg("%s", err);
    assert_string_equal(cs_rules_journey(rs), "retail");
    const char *want[] = {"awareness", "consideration", "purchase", "service", "loyalty"};
    assert_int_equal(cs_rules_nstages(rs), 5);
    for (int i = 0; i < 5; i++) {
        assert_string_equal(cs_rules_stage_name(rs, i), want[i]);
        assert_int_equal(cs_rules_stage_index(rs, want[i]), i);
    }
    assert_int_equal(cs_rules_stage_index(rs, "nope"), -1);
    assert_null(cs_rules_stage_name(rs, 5));
    const cs_session_conf *s = cs_rules_session(rs);
    assert_int_equal(s->gap_ms, 30 * 60000);
    assert_int_equal(s->max_duration_ms, 24LL * 3600000);
    assert_int_equal(s->lateness_ms, 30000);
    assert_int_equal(s->idle_close_ms, 60000);
    assert_int_equal(s->customer_ttl_ms, 90LL * 86400000);
    assert_int_equal(cs_rules_ndims(rs), 2);
    assert_string_equal(cs_rules_dim(rs, 0)->name, "channel");
    assert_int_equal(cs_rules_dim(rs, 0)->field, CS_F_CHANNEL);
    assert_int_equal(cs_rules_dim(rs, 0)->max_values, 64);
    assert_string_equal(cs_rules_dim(rs, 1)->name, "persona");
    assert_true(cs_rules_dim(rs, 1)->field >= CS_F_NSTD);
    assert_int_equal(cs_rules_dim(rs, 1)->max_values, 16);
    assert_null(cs_rules_dim(rs, 2));
    assert_int_equal(cs_decode_plan_nfields(cs_rules_plan(rs)), CS_F_NSTD + 1);
    const char *rules[][2] = {{"paid-or-social-landing", "awareness"},
                              {"research", "consideration"},
                              {"reviews-pages", "consideration"},
                              {"buy", "purchase"},
                              {"support", "service"},
                              {"advocacy", "loyalty"}};
    assert_int_equal(cs_rules_nrules(rs), 6);
    for (int i = 0; i < 6; i++) {
        assert_string_equal(cs_rules_rule_name(rs, i), rules[i][0]);
        assert_string_equal(cs_rules_stage_name(rs, cs_rules_rule_stage(rs, i)), rules[i][1]);
    }
    assert_int_equal(cs_rules_nprops(rs), 0);

    /* sha256 of the raw bytes */
    size_t len;
    const char *bytes = slurp(RETAIL, &len);
    unsigned char md[32];
    unsigned int mdlen = 0;
    assert_true(EVP_Digest(bytes, len, md, &mdlen, EVP_sha256(), NULL));
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    assert_string_equal(cs_rules_sha256(rs), hex);
    cs_rules_destroy(rs);
}

static void test_retail_classifies(void **state)
{
    cs_ruleset *rs = cs_rules_load_file(RETAIL, NULL, 0);
    assert_non_null(rs);
    struct {
        const char *event, *channel, *url, *stage;
    } cases[] = {
        {"page", "social", NULL, "awareness"},
        {"page_view", "search", "https://shop/x", "awareness"},
        {"ad_click", "print", NULL, "awareness"},
        {"page", "email", NULL, "-"},   /* channel not in the list */
        {"page", NULL, NULL, "-"},      /* absent channel never matches */
        {"Page", "social", NULL, "-"},  /* case-sensitive */
        {"page", "Social", NULL, "-"},
        {"page", "email", "https://shop/p/1/reviews/2", "consideration"}, /* reviews-pages */
        {"page", "social", "https://shop/p/1/reviews/2", "awareness"},    /* first rule wins */
        {"page", "email", "https://shop/reviews", "-"},   /* glob needs ".../reviews/..." */
        {"page", "email", "/reviews/", "consideration"},  /* '*' matches the empty run */
        {"product_view", NULL, NULL, "consideration"},
        {"compare", "social", NULL, "consideration"},
        {"add_to_wishlist", NULL, NULL, "consideration"},
        {"checkout_started", NULL, NULL, "purchase"},
        {"order_completed", NULL, "https://shop/reviews/x", "consideration"}, /* rule order */
        {"order_completed", NULL, "https://shop/thanks", "purchase"},
        {"support_chat", NULL, NULL, "service"},
        {"order_tracked", NULL, NULL, "service"},
        {"referral_sent", NULL, NULL, "loyalty"},
        {"repeat_purchase", "email", NULL, "loyalty"},
        {"unknown_event", "social", NULL, "-"},
        {"order_complete", NULL, NULL, "-"},
        {"order_completedX", NULL, NULL, "-"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cs_decoded e = ev3(cases[i].event, cases[i].channel, cases[i].url);
        const char *got = stage_of(rs, &e);
        if (strcmp(got, cases[i].stage))
            fail_msg("case %zu (%s/%s/%s): got %s want %s", i, cases[i].event,
                     cases[i].channel ? cases[i].channel : "-", cases[i].url ? cases[i].url : "-",
                     got, cases[i].stage);
    }
    cs_rules_destroy(rs);
}

static void test_saas_loads_and_classifies(void **state)
{
    char err[512] = "";
    cs_ruleset *rs = cs_rules_load_file(SAAS, err, sizeof err);
    if (!rs)
        fail_msg("%s", err);
    assert_string_equal(cs_rules_journey(rs), "saas");
    assert_int_equal(cs_rules_nstages(rs), 5);
    assert_string_equal(cs_rules_stage_name(rs, 0), "visit");
    assert_string_equal(cs_rules_stage_name(rs, 4), "expansion");
    assert_int_equal(cs_rules_session(rs)->customer_ttl_ms, 365LL * 86400000);
    assert_int_equal(cs_rules_session(rs)->max_duration_ms, 12LL * 3600000);
    assert_int_equal(cs_rules_ndims(rs), 3);
    int plan = cs_rules_dim(rs, 1)->field;
    assert_string_equal(cs_rules_dim(rs, 1)->name, "plan");
    assert_int_equal(cs_rules_dim(rs, 1)->max_values, 8);
    assert_int_equal(cs_rules_nprops(rs), 1);
    assert_string_equal(cs_rules_prop_name(rs, 0), "step");
    int step = cs_rules_prop_field(rs, 0);
    assert_true(step >= CS_F_NSTD && step != plan);

    cs_decoded e = ev3("plan_upgraded", NULL, NULL);
    setf(&e, plan, "team");
    assert_string_equal(rule_of(rs, &e), "seats-added");
    setf(&e, plan, "free");
    assert_string_equal(rule_of(rs, &e), "upgrade-from-free");
    setf(&e, plan, NULL);
    assert_string_equal(rule_of(rs, &e), "-");
    e = ev3("onboarding_step_completed", NULL, NULL);
    assert_string_equal(rule_of(rs, &e), "-");
    setf(&e, step, "final");
    assert_string_equal(stage_of(rs, &e), "activation");
    e = ev3("page", NULL, "https://example.com/pricing");
    assert_string_equal(rule_of(rs, &e), "pricing-and-docs");
    e = ev3("screen", NULL, "https://app.example.com/home");
    assert_string_equal(rule_of(rs, &e), "app-pages");
    e = ev3("screen", NULL, "https://www.example.com/home");
    assert_string_equal(rule_of(rs, &e), "-");
    e = ev3("page", NULL, "https://www.example.com/home");
    assert_string_equal(rule_of(rs, &e), "marketing-pages");
    cs_rules_destroy(rs);
}

/* ---------------------------------------------------------------------------------------- */
/* defaults, durations, scalars */

static void test_defaults(void **state)
{
    cs_ruleset *rs = load_ok("journey: j\nstages: [a]\n");
    const cs_session_conf *s = cs_rules_session(rs);
    assert_int_equal(s->gap_ms, 1800000);
    assert_int_equal(s->max_duration_ms, 86400000);
    assert_int_equal(s->lateness_ms, 30000);
    assert_int_equal(s->idle_close_ms, 60000);
    assert_int_equal(s->customer_ttl_ms, 90LL * 86400000);
    assert_int_equal(cs_rules_ndims(rs), 0);
    assert_int_equal(cs_rules_nrules(rs), 0);
    assert_int_equal(cs_decode_plan_nfields(cs_rules_plan(rs)), CS_F_NSTD);
    cs_decoded e = ev3("page", "social", "u");
    assert_int_equal(cs_rules_match(rs, &e), -1);
    assert_int_equal(cs_rules_classify(rs, &e), -1);
    assert_int_equal(strlen(cs_rules_sha256(rs)), 64);
    cs_rules_destroy(rs);
    /* empty session / dimensions / rules sections are fine */
    rs = load_ok("journey: j\nstages: [a]\nsession:\ndimensions: {}\nrules: []\n");
    assert_int_equal(cs_rules_session(rs)->gap_ms, 1800000);
    cs_rules_destroy(rs);
}

static void test_sha256_known(void **state)
{
    /* printf 'journey: j\nstages: [a]\n' | sha256sum */
    cs_ruleset *rs = load_ok("journey: j\nstages: [a]\n");
    char want[65];
    unsigned char md[32];
    unsigned int mdlen;
    EVP_Digest("journey: j\nstages: [a]\n", 23, md, &mdlen, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        snprintf(want + 2 * i, 3, "%02x", md[i]);
    assert_string_equal(cs_rules_sha256(rs), want);
    cs_rules_destroy(rs);
}

static void test_durations(void **state)
{
    struct {
        const char *key, *val;
        int64_t ms;
    } ok[] = {
        {"gap", "1500ms", 1500},          {"gap", "45s", 45000},
        {"gap", "30m", 1800000},          {"gap", "2h", 7200000},
        {"gap", "1d", 86400000},          {"max_duration", "0", 0},
        {"max_duration", "0h", 0},        {"lateness", "0", 0},
        {"lateness", "0s", 0},            {"idle_close", "90s", 90000},
        {"gap", "\"10m\"", 600000},       {"gap", "007m", 420000},
        {"max_duration", "3650d", 3650LL * 86400000},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char y[256];
        snprintf(y, sizeof y, "journey: j\nstages: [a]\nsession:\n  %s: %s\n", ok[i].key,
                 ok[i].val);
        cs_ruleset *rs = load_ok(y);
        const cs_session_conf *s = cs_rules_session(rs);
        int64_t got = !strcmp(ok[i].key, "gap")            ? s->gap_ms
                      : !strcmp(ok[i].key, "max_duration") ? s->max_duration_ms
                      : !strcmp(ok[i].key, "lateness")     ? s->lateness_ms
                                                           : s->idle_close_ms;
        assert_int_equal(got, ok[i].ms);
        cs_rules_destroy(rs);
    }
    cs_ruleset *rs = load_ok("journey: j\nstages: [a]\ncustomer_ttl: 7d\n");
    assert_int_equal(cs_rules_session(rs)->customer_ttl_ms, 7LL * 86400000);
    cs_rules_destroy(rs);
}

static void test_err_bad_duration(void **state)
{
    const char *bad[] = {"30", "30 m", "-5m", "1w", "m", "1.5h", "30M", "5mm", "+5m", "0x10s",
                         "5 ", "[5m]", "{a: 1}", "3651d", "99999999999999999999d", "~", "\"\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char y[256];
        /* the value starts at line 4, column 8 */
        snprintf(y, sizeof y, "journey: j\nstages: [a]\nsession:\n  gap: %s\n", bad[i]);
        expect_err(y, "t.yaml:4:8: ", "gap");
    }
    expect_err("journey: j\nstages: [a]\nsession:\n  gap: 30\n", "t.yaml:4:8: ",
               "bad duration '30' for gap: missing unit");
    expect_err("journey: j\nstages: [a]\nsession:\n  gap: 1w\n", "t.yaml:4:8: ",
               "bad duration '1w' for gap");
    expect_err("journey: j\nstages: [a]\nsession: {lateness: 30sec}\n", "t.yaml:3:21: ",
               "bad duration '30sec' for lateness");
    expect_err("journey: j\nstages: [a]\ncustomer_ttl: 90days\n", "t.yaml:3:15: ",
               "bad duration '90days' for customer_ttl");
    expect_err("journey: j\nstages: [a]\nsession:\n  idle_close: 1 h\n", "t.yaml:4:15: ",
               "idle_close");
    /* zero where it is not allowed */
    expect_err("journey: j\nstages: [a]\nsession:\n  gap: 0\n", "t.yaml:4:8: ",
               "gap must be greater than 0");
    expect_err("journey: j\nstages: [a]\nsession:\n  gap: 0ms\n", "t.yaml:4:8: ",
               "gap must be greater than 0");
    expect_err("journey: j\nstages: [a]\ncustomer_ttl: 0d\n", "t.yaml:3:15: ",
               "customer_ttl must be greater than 0");
    expect_err("journey: j\nstages: [a]\nsession: {idle_close: 0}\n", "t.yaml:3:23: ",
               "idle_close must be greater than 0");
}

/* ---------------------------------------------------------------------------------------- */
/* error classes, each with its exact position */

static void test_err_unknown_key(void **state)
{
    expect_err("journey: j\nstages: [a]\nsesion:\n  gap: 5m\n", "t.yaml:3:1: ",
               "unknown key 'sesion' in the rule file");
    expect_err("journey: j\nstages: [a]\nsession:\n  gap: 5m\n  gapp: 5m\n", "t.yaml:5:3: ",
               "unknown key 'gapp' in session");
    expect_err("journey: j\nstages: [a]\nrules:\n  - name: r\n    stage: a\n"
               "    match: {event: x}\n    priority: 1\n",
               "t.yaml:7:5: ", "unknown key 'priority' in a rule");
    expect_err("journey: j\nstages: [a]\ndimensions:\n  persona: {path: p, max: 3}\n",
               "t.yaml:4:22: ", "unknown key 'max' in a dimension");
    expect_err("journey: j\nstages: [a]\nlimits: {max_size: 10}\n", "t.yaml:3:10: ",
               "unknown key 'max_size' in limits");
    expect_err("journey: j\nstages: [a]\nfields: {user: [uid]}\n", "t.yaml:3:10: ",
               "unknown key 'user' in fields");
    /* unknown match key */
    expect_err("journey: j\nstages: [a]\nrules:\n  - name: r\n    stage: a\n"
               "    match: {event: x, referrer: y}\n",
               "t.yaml:6:23: ", "unknown match key 'referrer'");
    expect_err("journey: j\nstages: [a]\ndimensions: {persona: {path: properties.p}}\n"
               "rules:\n  - name: r\n    stage: a\n    match:\n      Persona: young\n",
               "t.yaml:8:7: ", "unknown match key 'Persona' (expected event, channel, url, "
                               "url_prefix, property.<name> or a dimension: persona)");
    /* a duplicate key is an error too (YAML requires unique keys) */
    expect_err("journey: j\nstages: [a]\njourney: k\n", "t.yaml:3:1: ",
               "duplicate key 'journey' in the rule file (first at line 1)");
    expect_err("journey: j\nstages: [a]\nrules:\n  - name: r\n    stage: a\n"
               "    match: {event: x, event: y}\n",
               "t.yaml:6:23: ", "duplicate key 'event' in match");
}

static void test_err_unknown_stage(void **state)
{
    expect_err("journey: j\nstages: [awareness, purchase]\nrules:\n  - name: r1\n"
               "    stage: awareness\n    match: {event: a}\n  - name: r2\n"
               "    stage: purchse\n    match: {event: b}\n",
               "t.yaml:8:12: ", "unknown stage 'purchse' (stages: awareness, purchase)");
    expect_err("journey: j\nstages: [a]\nrules:\n  - {name: r, stage: A, match: {event: x}}\n",
               "t.yaml:4:22: ", "unknown stage 'A'");
}

static void test_err_empty_stages(void **state)
{
    expect_err("journey: j\nstages: []\n", "t.yaml:2:9: ", "stages must not be empty");
    expect_err("journey: j\nstages:\n", "t.yaml:2:8: ", "stages must be a list");
    expect_err("journey: j\nrules: []\n", "t.yaml:1:1: ", "missing required key 'stages'");
    expect_err("stages: [a]\n", "t.yaml:1:1: ", "missing required key 'journey'");
}

static void test_err_duplicate_stage(void **state)
{
    expect_err("journey: j\nstages: [a, b, a]\n", "t.yaml:2:16: ", "duplicate stage 'a'");
    expect_err("journey: j\nstages:\n  - a\n  - b\n  - b\n", "t.yaml:5:5: ",
               "duplicate stage 'b'");
}

static void test_err_bad_names(void **state)
{
    expect_err("journey: Retail\nstages: [a]\n", "t.yaml:1:10: ", "bad journey name 'Retail'");
    expect_err("journey: re tail\nstages: [a]\n", "t.yaml:1:10: ", "bad journey name");
    expect_err("journey: \"\"\nstages: [a]\n", "t.yaml:1:10: ", "journey must not be empty");
    expect_err("journey:\nstages: [a]\n", "t.yaml:1:9: ", "journey must not be empty");
    expect_err("journey: j\nstages: [a, _none]\n", "t.yaml:2:13: ", "bad stage name '_none'");
    expect_err("journey: j\nstages: [a, B]\n", "t.yaml:2:13: ", "bad stage name 'B'");
    expect_err("journey: j\nstages: [a, \"x y\"]\n", "t.yaml:2:13: ", "bad stage name");
    expect_err("journey: j\nstages: [a, \"a\\tb\"]\n", "t.yaml:2:13: ",
               "bad stage name 'a?b'");
    expect_err("journey: j\nstages: [a]\nrules:\n  - name: \"\"\n    stage: a\n"
               "    match: {event: x}\n",
               "t.yaml:4:11: ", "rule name must not be empty");
    expect_err("journey: j\nstages: [a]\nrules:\n  - name: \"a\\nb\"\n    stage: a\n"
               "    match: {event: x}\n",
               "t.yaml:4:11: ", "control character");
    /* 33 stages */
    char y[512] = "journey: j\nstages: [";
    for (int i = 0; i < 33; i++)
        snprintf(y + strlen(y), sizeof y - strlen(y), "%ss%02d", i ? ", " : "", i);
    strcat(y, "]\n");
    /* "stages: [" is 9 chars, each later item 5 chars: s32 is at column 10 + 32*5 */
    expect_err(y, "t.yaml:2:170: ", "too many stages (at most 32)");
    y[strlen(y) - 7] = ']';
    y[strlen(y) - 6] = '\n';
    y[strlen(y) - 5] = '\0';
    cs_ruleset *rs = load_ok(y);
    assert_int_equal(cs_rules_nstages(rs), 32);
    assert_string_equal(cs_rules_stage_name(rs, 31), "s31");
    cs_rules_destroy(rs);
}

static void test_err_duplicate_rule_name(void **state)
{
    expect_err("journey: j\nstages: [a]\nrules:\n"
               "  - name: dup\n    stage: a\n    match: {event: x}\n"
               "  - name: other\n    stage: a\n    match: {event: y}\n"
               "  - name: dup\n    stage: a\n    match: {event: z}\n",
               "t.yaml:10:11: ", "duplicate rule name 'dup' (first at line 4)");
}

static void test_err_bad_glob(void **state)
{
    const char *bad[] = {"\"*/a?b\"", "\"*[ab]*\"", "\"/a]\"", "\"*{a,b}\"", "\"a}\"",
                         "\"\"", "\"*****************\""};
    const char *why[] = {"'?' is not supported", "'[' is not supported", "']' is not supported",
                         "'{' is not supported", "'}' is not supported", "bad glob '': an empty pattern",
                         "more than 16 '*'"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char y[512];
        snprintf(y, sizeof y,
                 "journey: j\nstages: [a]\nrules:\n  - name: r\n    stage: a\n"
                 "    match:\n      url: %s\n",
                 bad[i]);
        expect_err(y, "t.yaml:7:12: ", why[i]);
        /* the same inside a list: position of the bad item */
        snprintf(y, sizeof y,
                 "journey: j\nstages: [a]\nrules:\n  - name: r\n    stage: a\n"
                 "    match:\n      url: [\"*/ok/*\", %s]\n",
                 bad[i]);
        expect_err(y, "t.yaml:7:23: ", why[i]);
    }
    /* exactly 16 stars is fine; '?' in a prefix or an exact value is literal */
    cs_ruleset *rs = load_ok("journey: j\nstages: [a]\nrules:\n  - name: r\n    stage: a\n"
                             "    match: {url: \"****************\"}\n"
                             "  - name: s\n    stage: a\n"
                             "    match: {url_prefix: \"/a?b\", event: \"x[1]\"}\n");
    cs_rules_destroy(rs);
}

static void test_err_wrong_type(void **state)
{
    expect_err("- journey: j\n", "t.yaml:1:1: ", "the rule file must be a mapping, not a list");
    expect_err("just a string\n", "t.yaml:1:1: ", "the rule file must be a mapping");
    expect_err("journey: [j]\nstages: [a]\n", "t.yaml:1:10: ", "journey must be a string, not a list");
    expect_err("journey: j\nstages: a, b\n", "t.yaml:2:9: ", "stages must be a list of stage names");
    expect_err("journey: j\nstages: [a, [b]]\n", "t.yaml:2:13: ", "a stage name must be a string, not a list");
    expect_err("journey: j\nstages: [a]\nsession: 30m\n", "t.yaml:3:10: ", "session must be a mapping, not a scalar");
    expect_err("journey: j\nstages: [a]\nrules: {name: r}\n", "t.yaml:3:8: ", "rules must be a list, not a mapping");
    expect_err("journey: j\nstages: [a]\nrules:\n  - r\n", "t.yaml:4:5: ", "a rule must be a mapping, not a scalar");
    expect_err("journey: j\nstages: [a]\nrules:\n  - {name: r, stage: a, match: [event, x]}\n",
               "t.yaml:4:32: ", "match must be a mapping, not a list");
    expect_err("journey: j\nstages: [a]\nrules:\n  - {name: r, stage: [a], match: {event: x}}\n",
               "t.yaml:4:22: ", "stage must be a string, not a list");
    expect_err("journey: j\nstages: [a]\nrules:\n  - {name: r, stage: a, match: {event: {x: 1}}}\n",
               "t.yaml:4:40: ", "match.event must be a string or a list of strings, not a mapping");
    expect_err("journey: j\nstages: [a]\nrules:\n  - {name: r, stage: a, match: {event: [x, [y]]}}\n",
               "t.yaml:4:44: ", "match.event values must be strings, not a list");
    expect_err("journey: j\nstages: [a]\nrules:\n  - {name: r, stage: a, match: {event: []}}\n",
               "t.yaml:4:40: ", "match.event must not be an empty list");
    expect_err("journey: j\nstages: [a]\nrules:\n  - {name: r, stage: a, match: {event: null}}\n",
               "t.yaml:4:40: ", "match.event: an empty value never matches");
    expect_err("journey: j\nstages: [a]\nrules:\n  - {name: r, stage: a, match: {channel: \"\"}}\n",
               "t.yaml:4:42: ", "match.channel: an empty value never matches");
    expect_err("journey: j\nstages: [a]\nrules:\n  - {name: r, stage: a, match: {}}\n",
               "t.yaml:4:32: ", "match needs at least one key");
    expect_err("journey: j\nstages: [a]\nrules:\n  - {name: r, stage: a}\n", "t.yaml:4:5: ",
               "rule 'r' has no match");
    expect_err("journey: j\nstages: [a]\nrules:\n  - {name: r, match: {event: x}}\n",
               "t.yaml:4:5: ", "rule 'r' has no stage");
    expect_err("journey: j\nstages: [a]\nrules:\n  - {stage: a, match: {event: x}}\n",
               "t.yaml:4:5: ", "rule has no name");
    expect_err("journey: j\nstages: [a]\n[x]: 1\n", "t.yaml:3:1: ",
               "keys in the rule file must be strings, not a list");
    expect_err("journey: j\nstages: [a]\ndimensions: {persona: {max_values: 0}}\n",
               "t.yaml:3:36: ", "max_values must be an integer in 1..4096, not '0'");
    expect_err("journey: j\nstages: [a]\ndimensions: {persona: {max_values: 4097}}\n",
               "t.yaml:3:36: ", "max_values must be an integer in 1..4096");
    expect_err("journey: j\nstages: [a]\ndimensions: {persona: {max_values: 1e3}}\n",
               "t.yaml:3:36: ", "max_values must be an integer");
    expect_err("journey: j\nstages: [a]\nlimits: {max_depth: 0}\n", "t.yaml:3:21: ",
               "limits.max_depth must be an integer in 1..255");
    expect_err("journey: j\nstages: [a]\nlimits: {max_bytes: 10}\n", "t.yaml:3:21: ",
               "limits.max_bytes must be an integer in 64..");
}

static void test_err_yaml_syntax(void **state)
{
    /* unterminated flow sequence: libyaml stops at the next line's start */
    expect_err("journey: j\nstages: [a, b\n", "t.yaml:3:1: ",
               "YAML syntax error: did not find expected ',' or ']' (while parsing a flow "
               "sequence started at line 2, column 9)");
    /* a tab where indentation is expected */
    expect_err("journey: j\nstages:\n\t- a\n", "t.yaml:3:1: ",
               "found character that cannot start any token");
    /* a mapping value where none is allowed */
    expect_err("journey: j\n  stages: [a]\n", "t.yaml:2:9: ",
               "mapping values are not allowed in this context");
    /* bad indentation inside a rule */
    expect_err("journey: j\nstages: [a]\nrules:\n  - name: x\n   stage: a\n", "t.yaml:5:4: ",
               "did not find expected '-' indicator");
    /* unterminated quoted scalar */
    expect_err("journey: \"j\nstages: [a]\n", "t.yaml:3:1: ",
               "found unexpected end of stream (while scanning a quoted scalar started at line 1, "
               "column 10)");
    /* undefined alias */
    expect_err("journey: j\nstages: [a]\nrules: *x\n", "t.yaml:3:8: ", "found undefined alias");
    /* invalid UTF-8 (a reader error: position computed from libyaml's byte offset) */
    expect_err("journey: j\nstages: [a, \xff]\n", "t.yaml:2:13: ",
               "invalid leading UTF-8 octet (byte 0xff)");
    /* a NUL byte */
    expect_err_at("journey: j\nst\0ages: [a]\n", 23, "t.yaml:2:3: ",
                  "control characters are not allowed");
    /* two documents */
    expect_err("journey: j\nstages: [a]\n---\njourney: k\nstages: [a]\n", "t.yaml:3:1: ",
               "a rule file holds one YAML document");
    /* a syntax error in a later document is still an error */
    expect_err("journey: j\nstages: [a]\n---\n[\n", "t.yaml:5:1: ", "YAML syntax error");
    /* empty */
    expect_err("", "t.yaml:1:1: ", "empty rule file");
    expect_err("# nothing\n\n", "t.yaml:1:1: ", "empty rule file");
}

static void test_err_dimensions(void **state)
{
    expect_err("journey: j\nstages: [a]\ndimensions:\n  a: {}\n  b: {}\n  c: {}\n  d: {}\n"
               "  e: {}\n",
               "t.yaml:8:3: ", "too many dimensions (at most 4)");
    expect_err("journey: j\nstages: [a]\ndimensions:\n  channel: {path: properties.src}\n",
               "t.yaml:4:13: ", "dimension 'channel' is the standard channel field");
    expect_err("journey: j\nstages: [a]\ndimensions:\n  time: {}\n", "t.yaml:4:3: ",
               "'time' cannot be a dimension");
    expect_err("journey: j\nstages: [a]\ndimensions:\n  url_prefix: {}\n", "t.yaml:4:3: ",
               "reserved for a match key");
    expect_err("journey: j\nstages: [a]\ndimensions:\n  property.x: {}\n", "t.yaml:4:3: ",
               "reserved for a match key");
    expect_err("journey: j\nstages: [a]\ndimensions:\n  _x: {}\n", "t.yaml:4:3: ",
               "bad dimension name '_x'");
    expect_err("journey: j\nstages: [a]\ndimensions:\n  \"a:b\": {}\n", "t.yaml:4:3: ",
               "bad dimension name 'a:b'");
    expect_err("journey: j\nstages: [a]\ndimensions:\n  persona: {path: \"a..b\"}\n",
               "t.yaml:4:19: ", "dimension persona: ");
    expect_err("journey: j\nstages: [a]\ndimensions:\n  persona: {path: []}\n",
               "t.yaml:4:19: ", "path must list at least one path");
    expect_err("journey: j\nstages: [a]\ndimensions:\n  persona: [properties.persona]\n",
               "t.yaml:4:12: ", "a dimension must be a mapping, not a list");
}

static void test_err_limits(void **state)
{
    /* CS_MAX_RULES + 1 rules */
    enum { M = CS_MAX_RULES };
    size_t cap = (size_t)(M + 100) * 64;
    char *y = malloc(cap);
    size_t n = (size_t)snprintf(y, cap, "journey: j\nstages: [a]\nrules:\n");
    for (int i = 0; i < M + 1; i++)
        n += (size_t)snprintf(y + n, cap - n, "- {name: r%d, stage: a, match: {event: e%d}}\n",
                              i, i);
    /* the one past the limit is on line 3 + M + 1 */
    char at[64], msg[64];
    snprintf(at, sizeof at, "t.yaml:%d:3: ", 3 + M + 1);
    snprintf(msg, sizeof msg, "too many rules (at most %d)", M);
    expect_err(y, at, msg);
    /* M is fine, and the last one matches */
    char name[64];
    snprintf(name, sizeof name, "- {name: r%d,", M);
    char *last = strstr(y, name);
    *last = '\0';
    cs_ruleset *rs = load_ok(y);
    assert_int_equal(cs_rules_nrules(rs), CS_MAX_RULES);
    snprintf(name, sizeof name, "e%d", M - 1);
    cs_decoded e = ev3(name, NULL, NULL);
    assert_int_equal(cs_rules_match(rs, &e), M - 1);
    e = ev3("e0", NULL, NULL);
    assert_int_equal(cs_rules_match(rs, &e), 0);
    snprintf(name, sizeof name, "e%d", M);
    e = ev3(name, NULL, NULL);
    assert_int_equal(cs_rules_match(rs, &e), -1);
    cs_rules_destroy(rs);
    free(y);
}

static void test_err_never_matches_and_bounds(void **state)
{
    /* two keys on the same field with no common value */
    expect_err("journey: j\nstages: [a]\ndimensions: {persona: {path: properties.persona}}\n"
               "rules:\n  - name: r\n    stage: a\n    match:\n      persona: [young]\n"
               "      property.persona: [old, teen]\n",
               "t.yaml:9:7: ",
               "rule 'r' can never match: no value of 'property.persona' is accepted by its "
               "'persona' too");
    /* too many keys in one match */
    char y[4096];
    size_t n = (size_t)snprintf(y, sizeof y, "journey: j\nstages: [a]\nrules:\n  - name: r\n"
                                             "    stage: a\n    match:\n");
    for (int i = 0; i < 33; i++)
        n += (size_t)snprintf(y + n, sizeof y - n, "      property.p%d: x\n", i);
    expect_err(y, "t.yaml:39:7: ", "too many keys in match (at most 32)");
    /* aliases can't multiply match values without bound */
    size_t cap = 1 << 20;
    char *big = malloc(cap);
    n = (size_t)snprintf(big, cap, "journey: j\nstages: [a]\nrules:\n"
                                   "- {name: r0, stage: a, match: {event: &L [");
    for (int i = 0; i < 1000; i++)
        n += (size_t)snprintf(big + n, cap - n, "%se%d", i ? ", " : "", i);
    n += (size_t)snprintf(big + n, cap - n, "]}}\n");
    for (int r = 1; r < 300; r++)
        n += (size_t)snprintf(big + n, cap - n, "- {name: r%d, stage: a, match: {event: *L}}\n", r);
    /* the 263rd use (rule r262, line 266) crosses 262144 values: the error names that key */
    expect_err(big, "t.yaml:266:34: ", "too many match values in the file (at most 262144)");
    /* nor their bytes: a 100 KB value used 700 times */
    n = (size_t)snprintf(big, cap, "journey: j\nstages: [a]\nrules:\n"
                                   "- {name: r0, stage: a, match: {event: &V x");
    memset(big + n, 'x', 100000);
    n += 100000;
    n += (size_t)snprintf(big + n, cap - n, "}}\n");
    for (int r = 1; r < 700; r++)
        n += (size_t)snprintf(big + n, cap - n, "- {name: r%d, stage: a, match: {event: *V}}\n", r);
    /* 64 MiB / 100001 bytes: use 672 (rule r671, line 675) crosses the limit */
    expect_err(big, "t.yaml:675:34: ", "match values too large in total (at most 67108864 bytes)");
    free(big);
}

static void test_load_file_errors(void **state)
{
    char err[512];
    assert_null(cs_rules_load_file("rules/does-not-exist.yaml", err, sizeof err));
    assert_string_equal(err, "rules/does-not-exist.yaml: No such file or directory");
    assert_null(cs_rules_load_file("rules/bad_unknown_stage.yaml", err, sizeof err));
    assert_string_equal(err, "rules/bad_unknown_stage.yaml:14:12: unknown stage 'checkout' "
                             "(stages: browse, cart, buy)");
    assert_null(cs_rules_load_file("rules/bad_syntax.yaml", err, sizeof err));
    assert_string_equal(err, "rules/bad_syntax.yaml:7:4: YAML syntax error: did not find expected "
                             "'-' indicator (while parsing a block collection started at line 5, "
                             "column 3)");
    /* a small errstr is cut, never overrun */
    char small[16];
    assert_null(cs_rules_load_file("rules/bad_unknown_stage.yaml", small, sizeof small));
    assert_int_equal(strlen(small), sizeof small - 1);
    /* NULL errstr is allowed */
    assert_null(cs_rules_load_file("rules/bad_unknown_stage.yaml", NULL, 0));
}

static void test_fixture_all_keys(void **state)
{
    char err[512] = "";
    cs_ruleset *rs = cs_rules_load_file("rules/all_keys.yaml", err, sizeof err);
    if (!rs)
        fail_msg("%s", err);
    const cs_session_conf *s = cs_rules_session(rs);
    assert_int_equal(s->gap_ms, 1500);
    assert_int_equal(s->max_duration_ms, 0);
    assert_int_equal(s->lateness_ms, 0);
    assert_int_equal(s->idle_close_ms, 5 * 60000);
    assert_int_equal(s->customer_ttl_ms, 30LL * 86400000);
    assert_int_equal(cs_rules_ndims(rs), 4);
    assert_string_equal(cs_rules_dim(rs, 0)->name, "customer");
    assert_int_equal(cs_rules_dim(rs, 0)->field, CS_F_CUSTOMER);
    assert_int_equal(cs_rules_dim(rs, 0)->max_values, 4096);
    assert_string_equal(cs_rules_dim(rs, 1)->name, "properties.persona");
    int persona = cs_rules_dim(rs, 1)->field;
    assert_string_equal(cs_rules_dim(rs, 2)->name, "src");
    int src = cs_rules_dim(rs, 2)->field;
    assert_string_equal(cs_rules_dim(rs, 3)->name, "event");
    assert_int_equal(cs_rules_dim(rs, 3)->field, CS_F_EVENT);
    assert_int_equal(cs_rules_dim(rs, 3)->max_values, 64);
    assert_int_equal(cs_rules_nprops(rs), 2);
    assert_string_equal(cs_rules_prop_name(rs, 0), "persona");
    assert_int_equal(cs_rules_prop_field(rs, 0), persona); /* same path, same field */
    assert_string_equal(cs_rules_prop_name(rs, 1), "cart.total");
    int total = cs_rules_prop_field(rs, 1);
    assert_int_equal(cs_decode_plan_nfields(cs_rules_plan(rs)), CS_F_NSTD + 3);

    cs_decoded e = ev3("order", NULL, NULL);
    /* vip: customer dimension (exact on the customer field) */
    setf(&e, CS_F_CUSTOMER, "vip-1");
    assert_string_equal(rule_of(rs, &e), "vip");
    setf(&e, CS_F_CUSTOMER, "c9");
    /* young-social: dimension + property on the same path must both hold (intersection) */
    e = ev3("page", "social", NULL);
    setf(&e, persona, "young");
    assert_string_equal(rule_of(rs, &e), "young-social");
    setf(&e, persona, "teen"); /* accepted by property.persona, not by the dimension key */
    assert_string_equal(rule_of(rs, &e), "-");
    /* big-cart: nested property, number values compare as their text */
    e = ev3("checkout", NULL, NULL);
    e.f[total].p = "100";
    e.f[total].len = 3;
    e.f[total].kind = CS_SV_NUM;
    assert_string_equal(rule_of(rs, &e), "big-cart");
    setf(&e, total, "100.0");
    assert_string_equal(rule_of(rs, &e), "-");
    /* from-ads: src dimension with two alternative paths, and url_prefix + glob together */
    e = ev3("landing", NULL, "https://shop.example/sale/shoes?x=1");
    setf(&e, src, "google");
    assert_string_equal(rule_of(rs, &e), "from-ads");
    setf(&e, CS_F_URL, "https://shop.example/sale/");
    assert_string_equal(rule_of(rs, &e), "-"); /* the url glob needs a '=' after /sale/ */
    setf(&e, CS_F_URL, "http://shop.example/sale/shoes?x=1");
    assert_string_equal(rule_of(rs, &e), "-"); /* prefix is https:// */
    /* event dimension used as a match key (same as event) */
    e = ev3("ping", NULL, NULL);
    assert_string_equal(rule_of(rs, &e), "ping-by-dim");
    cs_rules_destroy(rs);
}

/* ---------------------------------------------------------------------------------------- */
/* matching semantics */

static void test_glob(void **state)
{
    struct {
        const char *pat, *s;
        int want;
    } t[] = {
        {"*", "", 1},        {"*", "abc", 1},      {"", "", 1},         {"", "a", 0},
        {"abc", "abc", 1},   {"abc", "abcd", 0},   {"abc", "ab", 0},    {"a*", "a", 1},
        {"a*", "abc", 1},    {"a*", "ba", 0},      {"*c", "abc", 1},    {"*c", "cb", 0},
        {"a*c", "ac", 1},    {"a*c", "abbbc", 1},  {"a*c", "abcb", 0},  {"a*a", "a", 0},
        {"a*a", "aa", 1},    {"*a*", "bab", 1},    {"*a*", "bbb", 0},   {"**", "x", 1},
        {"*/reviews/*", "https://s/p/reviews/1", 1},
        {"*/reviews/*", "https://s/p/reviews", 0},
        {"*/reviews/*", "/reviews/", 1},
        {"*/reviews/*", "https://s/REVIEWS/1", 0},
        {"*ab*ab*", "abab", 1},  {"*ab*ab*", "aab", 0},  {"*ab*ab", "ababab", 1},
        {"a*b*c*d", "abcd", 1},  {"a*b*c*d", "abdc", 0}, {"a*b*c*d", "aXbYcZd", 1},
        {"*aba", "ababa", 1},    {"ab*ba", "aba", 0},    {"ab*ba", "abba", 1},
        {"x?y", "x?y", 1},       {"x?y", "xzy", 0}, /* '?' is literal here */
        /* middle literals past the first 16 start positions (find_lit's 16-wide block, then
         * its one-at-a-time tail), and first/last-byte candidates that fail in the middle */
        {"*/reviews/*", "https://shop.example/reviews/123", 1},
        {"*/reviews/*", "https://shop.example/r/reviewz/a/reviews/x", 1},
        {"*/reviews/*", "https://shop.example/r/reviewz/a/b/c/d/reviews", 0},
        {"*ab*ab*", "xxxxxxxxxxxxxxxxxxxxxxabxxxxxxxxxxxxxxxxxxxxxxab", 1},
        {"*ab*ab*", "xxxxxxxxxxxxxxxxxxxxxxabxxxxxxxxxxxxxxxxxxxxxxa", 0},
        {"*abc*", "abxabxabxabxabxabxabxabxabxabxabc", 1},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        int got = cs_glob_match(t[i].pat, strlen(t[i].pat), t[i].s, strlen(t[i].s));
        if (got != t[i].want)
            fail_msg("glob '%s' vs '%s': got %d want %d", t[i].pat, t[i].s, got, t[i].want);
    }
    /* embedded NUL bytes are ordinary bytes */
    assert_true(cs_glob_match("a*\0b", 4, "axx\0b", 5));
    assert_false(cs_glob_match("a*\0b", 4, "axxb", 4));
    /* a value over 256 bytes (memmem), the literal near its end or absent */
    char big[301];
    memset(big, 'x', 300);
    memcpy(big + 280, "/reviews/", 9);
    assert_true(cs_glob_match("*/reviews/*", 11, big, 300));
    big[281] = 'R';
    assert_false(cs_glob_match("*/reviews/*", 11, big, 300));
}

static unsigned lcg_next(uint64_t *s)
{
    *s = *s * 6364136223846793005u + 1442695040888963407u;
    return (unsigned)(*s >> 33);
}

/* '*' matches any run of bytes, everything else itself: the definition, recursively. */
static int ref_glob(const char *p, size_t pl, const char *s, size_t sl)
{
    if (pl == 0)
        return sl == 0;
    if (*p == '*') {
        for (size_t k = 0; k <= sl; k++)
            if (ref_glob(p + 1, pl - 1, s + k, sl - k))
                return 1;
        return 0;
    }
    return sl > 0 && *p == *s && ref_glob(p + 1, pl - 1, s + 1, sl - 1);
}

/* Url globs as rules use them (the loader's first and last '*' positions, glob_match_at) and
 * cs_glob_match, against ref_glob: random patterns of a, b, '/' and '*' (with and without a
 * '*', stars side by side, at either end), random values of a, b and '/', 0..40 bytes (past
 * 16 + the literal: find_lit's blocks, the last one overlapping), each in a buffer of its size. */
static void test_glob_rules_differential(void **state)
{
    uint64_t seed = 99;
    for (int i = 0; i < 400; i++) {
        char pat[16];
        const size_t pl = 1 + lcg_next(&seed) % 10;
        int stars = 0;
        for (size_t k = 0; k < pl; k++) {
            const unsigned c = lcg_next(&seed) % 5;
            pat[k] = c == 4 && stars < 4 ? '*' : "ab/a"[c & 3];
            stars += pat[k] == '*';
        }
        pat[pl] = 0;
        char yaml[256];
        snprintf(yaml, sizeof yaml,
                 "journey: j\nstages: [s1]\nrules:\n  - {name: g, stage: s1, match: {url: \"%s\"}}\n",
                 pat);
        cs_ruleset *rs = load_ok(yaml);
        for (int j = 0; j < 300; j++) {
            char s[48];
            const size_t sl = lcg_next(&seed) % 41;
            for (size_t k = 0; k < sl; k++)
                s[k] = "ab/"[lcg_next(&seed) % 3];
            s[sl] = 0;
            const int want = ref_glob(pat, pl, s, sl);
            char *exact = malloc(sl ? sl : 1); /* ASan sees any read past the value */
            assert_non_null(exact);
            memcpy(exact, s, sl);
            const int m = cs_glob_match(pat, pl, exact, sl);
            free(exact);
            if (m != want)
                fail_msg("cs_glob_match '%s' vs '%s': want %d", pat, s, want);
            cs_decoded e = ev3("e", NULL, sl ? s : NULL);
            const int got = strcmp(rule_of(rs, &e), "g") == 0;
            if (got != (want && sl > 0)) /* an empty url is absent: no rule holds on it */
                fail_msg("rule url '%s' vs '%s': got %d want %d", pat, s, got, want);
        }
        cs_rules_destroy(rs);
    }
}

/* cs_bytes_eq (util.h), which confirms classify's and the dimension dictionary's hash hits:
 * memcmp's answer for every length 0..40 and a difference at each byte, on exact-size copies
 * (ASan, make asan-test, sees any read outside them). */
static void test_bytes_eq(void **state)
{
    unsigned char a[40], b[40];
    for (size_t i = 0; i < sizeof a; i++)
        a[i] = (unsigned char)(i * 37 + 11);
    for (size_t n = 0; n <= sizeof a; n++) {
        for (size_t k = 0; k <= n; k++) { /* k == n: no difference */
            memcpy(b, a, n);
            if (k < n)
                b[k] ^= 0x40;
            unsigned char *x = malloc(n ? n : 1), *y = malloc(n ? n : 1);
            assert_non_null(x);
            assert_non_null(y);
            memcpy(x, a, n);
            memcpy(y, b, n);
            if (cs_bytes_eq(x, y, n) != (memcmp(x, y, n) == 0))
                fail_msg("cs_bytes_eq: n %zu, difference at %zu", n, k);
            free(x);
            free(y);
        }
    }
}

/* cs_vhash (util.h), the hash of classify's value index and the dimension dictionaries: the
 * same value at two addresses hashes alike, each one-byte change (every length 0..40, every
 * position) and each length change hashes differently, longer values are XXH3_64bits; on
 * exact-size copies (ASan, make asan-test, sees any read outside them). */
static void test_vhash(void **state)
{
    unsigned char a[40];
    for (size_t i = 0; i < sizeof a; i++)
        a[i] = (unsigned char)(i * 37 + 11);
    uint64_t prev = 0;
    for (size_t n = 0; n <= sizeof a; n++) {
        unsigned char *x = malloc(n ? n : 1), *y = malloc(n ? n : 1);
        assert_non_null(x);
        assert_non_null(y);
        memcpy(x, a, n);
        memcpy(y, a, n);
        const uint64_t h = cs_vhash(x, n);
        assert_true(cs_vhash(y, n) == h);
        if (n > 16)
            assert_true(h == XXH3_64bits(x, n));
        if (n > 0)
            assert_true(h != prev); /* a[0..n) against a[0..n-1) */
        prev = h;
        for (size_t k = 0; k < n; k++) {
            for (unsigned bit = 0; bit < 8; bit++) {
                y[k] ^= (unsigned char)(1u << bit);
                if (cs_vhash(y, n) == h)
                    fail_msg("cs_vhash: n %zu, byte %zu bit %u changed, same hash", n, k, bit);
                y[k] ^= (unsigned char)(1u << bit);
            }
        }
        free(x);
        free(y);
    }
}

/* cs_has_nul_short (util.h), the dimension dictionary's NUL test for values of up to 16 bytes:
 * memchr's answer for every length 0..16, with no NUL and with one at each position, over
 * bytes around the SWAR borrow (0x00, 0x01, 0x7F, 0x80, 0x81, 0xFF), on exact-size copies. */
static void test_has_nul_short(void **state)
{
    static const unsigned char fill[] = {0x01, 0x7F, 0x80, 0x81, 0xFF, 'a'};
    for (size_t n = 0; n <= 16; n++) {
        for (size_t fi = 0; fi < sizeof fill; fi++) {
            for (size_t z = 0; z <= n; z++) { /* z == n: no NUL */
                for (unsigned v = 0; v < 2; v++) {
                    unsigned char *x = malloc(n ? n : 1);
                    assert_non_null(x);
                    for (size_t i = 0; i < n; i++)
                        x[i] = v && (i & 1) ? 0x01 : fill[fi];
                    if (z < n)
                        x[z] = 0;
                    const int want = n && memchr(x, 0, n) != NULL;
                    if (cs_has_nul_short(x, n) != want)
                        fail_msg("cs_has_nul_short: n %zu, fill %#x, NUL at %zu", n, fill[fi], z);
                    free(x);
                }
            }
        }
    }
}

/* cs_dimdict_id: the inlined look-up and the insert behind it (a new value, one seen before,
 * the dictionary full), and the kept part of a value (cut at the first NUL, short or long; cut
 * at CS_MAX_DIM_VALUE_BYTES) against the same value spelt without what is cut. */
static void test_dimdict_ids(void **state)
{
    cs_dimdict_mpmc d;
    assert_int_equal(cs_dimdict_init(&d, 3), 0);
    const uint16_t a = cs_dimdict_id(&d, "social", 6), b = cs_dimdict_id(&d, "print", 5);
    assert_true(a >= 2 && b >= 2 && a != b);
    assert_int_equal(cs_dimdict_id(&d, "social", 6), a);
    assert_int_equal(cs_dimdict_id(&d, "social\0junk", 11), a);   /* 11 bytes, NUL in the first 16 */
    char big[400];
    memset(big, 'p', sizeof big);
    memcpy(big, "print", 5);
    big[5] = 0;
    assert_int_equal(cs_dimdict_id(&d, big, 300), b);              /* NUL past 16 bytes */
    assert_int_equal(cs_dimdict_id(&d, "\0x", 2), CS_DIM_UNKNOWN); /* empty once cut */
    assert_int_equal(cs_dimdict_id(&d, "", 0), CS_DIM_UNKNOWN);
    memset(big, 'q', sizeof big);
    const uint16_t c = cs_dimdict_id(&d, big, 400);                /* cut at 256 bytes */
    assert_true(c >= 2 && c != a && c != b);
    assert_int_equal(cs_dimdict_id(&d, big, CS_MAX_DIM_VALUE_BYTES), c);
    assert_int_equal(cs_dimdict_id(&d, "search", 6), CS_DIM_OTHER); /* full: 3 values */
    assert_int_equal(cs_dimdict_id(&d, "print", 5), b);
    uint32_t n = 0;
    const char *name = cs_dimdict_name(&d, a, &n);
    assert_non_null(name);
    assert_int_equal(n, 6);
    assert_memory_equal(name, "social", 6);
    cs_dimdict_free(&d);
}

static void test_match_semantics(void **state)
{
    cs_ruleset *rs = load_ok(
        "journey: j\nstages: [s1, s2, s3]\n"
        "rules:\n"
        "  - {name: both, stage: s3, match: {event: buy, channel: [web, app]}}\n"
        "  - {name: any-buy, stage: s2, match: {event: buy}}\n"
        "  - {name: prefix, stage: s1, match: {url_prefix: [\"https://a/\", \"https://b/\"]}}\n"
        "  - {name: glob-and-event, stage: s2, match: {event: view, url: \"*.pdf\"}}\n"
        "  - {name: glob-any, stage: s1, match: {url: [\"*/x/*\", \"*/y\"]}}\n"
        "  - {name: exact-url-glob, stage: s3, match: {url: \"/home\"}}\n");
    struct {
        const char *ev, *ch, *url, *rule;
    } t[] = {
        {"buy", "web", NULL, "both"},
        {"buy", "app", "https://a/1", "both"},
        {"buy", "shop", NULL, "any-buy"},
        {"buy", NULL, NULL, "any-buy"},
        {"view", NULL, "https://a/doc.pdf", "prefix"},  /* earlier rule wins */
        {"view", NULL, "https://c/doc.pdf", "glob-and-event"},
        {"view", NULL, "https://c/doc.pdfx", "-"},
        {"click", NULL, "https://c/doc.pdf", "-"},
        {"click", NULL, "https://c/x/1", "glob-any"},
        {"click", NULL, "https://c/y", "glob-any"},
        {"click", NULL, "https://c/y/", "-"},
        {"click", NULL, "https://b/", "prefix"},
        {"click", NULL, "https://b", "-"},
        {"click", NULL, "/home", "exact-url-glob"},
        {"click", NULL, "/home/", "-"},
        {"click", NULL, NULL, "-"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        cs_decoded e = ev3(t[i].ev, t[i].ch, t[i].url);
        const char *got = rule_of(rs, &e);
        if (strcmp(got, t[i].rule))
            fail_msg("case %zu: got %s want %s", i, got, t[i].rule);
    }
    /* rule_test explains the first failing key */
    cs_decoded e = ev3("buy", "shop", NULL);
    char why[128];
    assert_int_equal(cs_rules_rule_test(rs, 0, &e, why, sizeof why), 0);
    assert_string_equal(why, "channel: 'shop' not accepted");
    e = ev3("view", NULL, NULL);
    assert_int_equal(cs_rules_rule_test(rs, 3, &e, why, sizeof why), 0);
    assert_string_equal(why, "url: field absent");
    assert_int_equal(cs_rules_rule_test(rs, 99, &e, why, sizeof why), 0);
    cs_rules_destroy(rs);
}

static void test_many_rules_bitset_words(void **state)
{
    /* 200 rules: exact on event, with rule i also requiring a channel on odd i; plus url-only
     * rules interleaved; crosses 64-bit word boundaries. */
    size_t cap = 1 << 16, n = 0;
    char *y = malloc(cap);
    n += (size_t)snprintf(y + n, cap - n, "journey: j\nstages: [a, b]\nrules:\n");
    for (int i = 0; i < 200; i++) {
        if (i % 3 == 2)
            n += (size_t)snprintf(y + n, cap - n,
                                  "- {name: r%d, stage: b, match: {url: \"*/p%d\"}}\n", i, i);
        else if (i % 2)
            n += (size_t)snprintf(y + n, cap - n,
                                  "- {name: r%d, stage: a, match: {event: [e%d, all], channel: "
                                  "c%d}}\n",
                                  i, i, i);
        else
            n += (size_t)snprintf(y + n, cap - n,
                                  "- {name: r%d, stage: a, match: {event: [e%d, all]}}\n", i, i);
    }
    cs_ruleset *rs = load_ok(y);
    char ev[16], ch[16], url[32];
    for (int i = 0; i < 200; i++) {
        snprintf(ev, sizeof ev, "e%d", i);
        snprintf(ch, sizeof ch, "c%d", i);
        snprintf(url, sizeof url, "/x/p%d", i);
        cs_decoded e = ev3(ev, ch, url);
        /* event rules accept only their own e<i> (and "all"); url rules only their own /p<i> */
        assert_int_equal(cs_rules_match(rs, &e), i);
        assert_int_equal(cs_rules_match_scan(rs, &e), i);
    }
    /* "all" is accepted by every event rule: the first one without a channel needed is r0 */
    cs_decoded e = ev3("all", NULL, NULL);
    assert_int_equal(cs_rules_match(rs, &e), 0);
    /* r67 (67 % 3 == 1, odd) needs event e67 and channel c67 */
    e = ev3("all", "c67", NULL);
    assert_int_equal(cs_rules_match(rs, &e), 0); /* r0 has no channel key and wins */
    e = ev3("e67", "c67", NULL);
    assert_int_equal(cs_rules_match(rs, &e), 67);
    e = ev3("e67", "c63", NULL);
    assert_int_equal(cs_rules_match(rs, &e), -1);
    e = ev3("e67", NULL, NULL);
    assert_int_equal(cs_rules_match(rs, &e), -1);
    e = ev3("zzz", NULL, "/x/p197");
    assert_int_equal(cs_rules_match(rs, &e), 197);
    cs_rules_destroy(rs);
    free(y);
}

/* ---------------------------------------------------------------------------------------- */
/* random rule sets vs an independent model */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

/* model keys */
enum { K_EVENT, K_CHANNEL, K_PERSONA, K_PPERSONA, K_TIER, K_URL, K_PREFIX, K_N };
static const char *const kname[K_N] = {"event", "channel", "persona", "property.persona",
                                       "property.tier", "url", "url_prefix"};
static const char *const alpha[K_N][4] = {
    {"e0", "e1", "e2", "e3"},   {"c0", "c1", "c2", "c3"}, {"p0", "p1", "p2", "p3"},
    {"p0", "p1", "p2", "p3"},   {"t0", "t1", "t2", "t3"},
    {"*/a*", "*b", "/a/*/c", "*"},
    {"/a", "/a/b", "/b", "/c/a"},
};
static const char *const url_seg[] = {"/a", "/b", "/c"};

typedef struct mrule {
    int has[K_N];
    int nv[K_N];
    int v[K_N][4];
} mrule;

/* a deliberately naive recursive glob: the model's own */
static int mglob(const char *p, const char *s)
{
    if (!*p)
        return !*s;
    if (*p == '*')
        return mglob(p + 1, s) || (*s && mglob(p, s + 1));
    return *s == *p && mglob(p + 1, s + 1);
}

static int mholds(const mrule *r, const char *val[K_N])
{
    for (int k = 0; k < K_N; k++) {
        if (!r->has[k])
            continue;
        const char *x = val[k];
        if (!x || !*x)
            return 0;
        int ok = 0;
        for (int i = 0; i < r->nv[k]; i++) {
            const char *a = alpha[k][r->v[k][i]];
            if (k == K_URL ? mglob(a, x)
                : k == K_PREFIX ? strncmp(a, x, strlen(a)) == 0
                                : strcmp(a, x) == 0)
                ok = 1;
        }
        if (!ok)
            return 0;
    }
    return 1;
}

static void test_random_vs_model(void **state)
{
    enum { ROUNDS = 60, EVENTS = 400 };
    static mrule rules[300];
    size_t cap = 1 << 17;
    char *y = malloc(cap);
    for (int round = 0; round < ROUNDS; round++) {
        int nr = 1 + (int)rnd(round % 2 ? 300 : 70);
        size_t n = (size_t)snprintf(y, cap,
                                    "journey: j\nstages: [a]\n"
                                    "dimensions: {persona: {path: properties.persona}}\n"
                                    "rules:\n");
        for (int r = 0; r < nr; r++) {
            mrule *m = &rules[r];
            memset(m, 0, sizeof *m);
            int any = 0;
            while (!any)
                for (int k = 0; k < K_N; k++)
                    if (rnd(4) == 0)
                        m->has[k] = any = 1;
            n += (size_t)snprintf(y + n, cap - n, "- name: r%d\n  stage: a\n  match:\n", r);
            for (int k = 0; k < K_N; k++) {
                if (!m->has[k])
                    continue;
                m->nv[k] = 1 + (int)rnd(3);
                n += (size_t)snprintf(y + n, cap - n, "    %s: [", kname[k]);
                for (int i = 0; i < m->nv[k]; i++) {
                    m->v[k][i] = (int)rnd(4);
                    if (k == K_PPERSONA && m->has[K_PERSONA] && i == 0)
                        m->v[k][0] = m->v[K_PERSONA][0]; /* keep the intersection non-empty */
                    n += (size_t)snprintf(y + n, cap - n, "%s\"%s\"", i ? ", " : "",
                                          alpha[k][m->v[k][i]]);
                }
                n += (size_t)snprintf(y + n, cap - n, "]\n");
            }
            assert_true(n < cap - 256);
        }
        cs_ruleset *rs = load_ok(y);
        int persona = cs_rules_dim(rs, 0)->field;
        int tier = -1;
        for (int i = 0; i < cs_rules_nprops(rs); i++)
            if (!strcmp(cs_rules_prop_name(rs, i), "tier"))
                tier = cs_rules_prop_field(rs, i);
        for (int i = 0; i < cs_rules_nprops(rs); i++)
            if (!strcmp(cs_rules_prop_name(rs, i), "persona"))
                assert_int_equal(cs_rules_prop_field(rs, i), persona);
        for (int k = 0; k < EVENTS; k++) {
            const char *val[K_N] = {0};
            char url[16] = "";
            for (int f = 0; f < K_N; f++)
                val[f] = rnd(5) ? alpha[f][rnd(4)] : NULL;
            int segs = (int)rnd(4);
            for (int s = 0; s < segs; s++)
                strcat(url, url_seg[rnd(3)]);
            val[K_URL] = val[K_PREFIX] = url;
            val[K_PPERSONA] = val[K_PERSONA];
            cs_decoded e = ev3(val[K_EVENT], val[K_CHANNEL], url);
            setf(&e, persona, val[K_PERSONA]);
            if (tier >= 0)
                setf(&e, tier, val[K_TIER]);
            else
                val[K_TIER] = NULL;
            int want = -1;
            for (int r = 0; r < nr && want < 0; r++)
                if (mholds(&rules[r], val))
                    want = r;
            int got = cs_rules_match(rs, &e);
            if (got != want)
                fail_msg("round %d event %d: got rule %d, model says %d", round, k, got, want);
            assert_int_equal(cs_rules_match_scan(rs, &e), want);
        }
        cs_rules_destroy(rs);
    }
    free(y);
}

/* ---------------------------------------------------------------------------------------- */
/* the decode plan the rules build, through the real decoder */

static void test_plan_with_decoder(void **state)
{
    cs_ruleset *rs = load_ok("journey: j\nstages: [a, b]\n"
                             "fields:\n  customer: [uid, who.id]\n  event: name\n"
                             "dimensions:\n  tier: {path: properties.tier}\n"
                             "rules:\n"
                             "  - {name: gold, stage: b, match: {event: x, tier: gold}}\n"
                             "  - {name: size, stage: a, match: {property.size: \"42\"}}\n");
    cs_decoder *d = cs_decoder_new(cs_rules_plan(rs));
    assert_non_null(d);
    static cs_decoded e;
    const char *m1 = "{\"who\":{\"id\":\"w1\"},\"name\":\"x\",\"properties\":{\"tier\":\"gold\"}}";
    assert_int_equal(cs_decode(d, m1, strlen(m1), 1793520000000LL, &e), CS_DECODE_OK);
    assert_int_equal(e.f[CS_F_CUSTOMER].len, 2);
    assert_memory_equal(e.f[CS_F_CUSTOMER].p, "w1", 2);
    assert_string_equal(rule_of(rs, &e), "gold");
    /* the default paths for event are replaced: "event" is no longer read */
    const char *m2 = "{\"uid\":\"u\",\"event\":\"x\",\"properties\":{\"tier\":\"gold\"}}";
    assert_int_equal(cs_decode(d, m2, strlen(m2), 1793520000000LL, &e), CS_INV_NO_EVENT);
    /* a numeric property compares as its text */
    const char *m3 = "{\"uid\":\"u\",\"name\":\"y\",\"properties\":{\"size\":42}}";
    assert_int_equal(cs_decode(d, m3, strlen(m3), 1793520000000LL, &e), CS_DECODE_OK);
    assert_string_equal(rule_of(rs, &e), "size");
    cs_decoder_destroy(d);
    cs_rules_destroy(rs);

    /* a bad path for a standard field, reported at the path node */
    expect_err("journey: j\nstages: [a]\nfields:\n  url: [url, \"a..b\"]\n", "t.yaml:4:8: ",
               "fields.url: ");
    expect_err("journey: j\nstages: [a]\nfields:\n  url: []\n", "t.yaml:4:8: ",
               "fields.url must list at least one path");
    expect_err("journey: j\nstages: [a]\nfields:\n  url: [a, b, c, d, e, f, g, h, i]\n",
               "t.yaml:4:8: ", "fields.url lists more than 8 paths");
    expect_err("journey: j\nstages: [a]\nrules:\n  - {name: r, stage: a, match: {property.: x}}\n",
               "t.yaml:4:33: ", "bad match key 'property.'");
    expect_err("journey: j\nstages: [a]\nrules:\n  - {name: r, stage: a, match: {property.a..b: x}}\n",
               "t.yaml:4:33: ", "match key 'property.a..b': ");
}

static void test_limits_reach_decoder(void **state)
{
    cs_ruleset *rs = load_ok("journey: j\nstages: [a]\nlimits: {max_bytes: 100, max_depth: 3}\n");
    cs_decoder *d = cs_decoder_new(cs_rules_plan(rs));
    static cs_decoded e;
    char big[256];
    snprintf(big, sizeof big, "{\"userId\":\"u\",\"event\":\"e\",\"pad\":\"%0150d\"}", 0);
    assert_int_equal(cs_decode(d, big, strlen(big), 0, &e), CS_INV_TOO_LARGE);
    const char *deep = "{\"userId\":\"u\",\"event\":\"e\",\"a\":{\"b\":{\"c\":{\"d\":1}}}}";
    assert_int_equal(cs_decode(d, deep, strlen(deep), 0, &e), CS_INV_TOO_DEEP);
    const char *ok = "{\"userId\":\"u\",\"event\":\"e\",\"a\":{\"b\":1}}";
    assert_int_equal(cs_decode(d, ok, strlen(ok), 1793520000000LL, &e), CS_DECODE_OK);
    cs_decoder_destroy(d);
    cs_rules_destroy(rs);
}

/* Many invalid files in a row: under ASan/LSan this proves nothing half-built leaks. */
static void test_no_leak_on_errors(void **state)
{
    const char *bad[] = {
        "journey: j\nstages: [a]\ndimensions: {x: {}, y: {path: properties.y}}\nrules:\n"
        "  - {name: r, stage: a, match: {x: [a, b], property.q: z, url: \"*a\"}}\n"
        "  - {name: r, stage: a, match: {event: e}}\n",
        "journey: j\nstages: [a]\nrules:\n  - {name: r, stage: a, match: {event: [a, b, []]}}\n",
        "journey: j\nstages: [a]\nrules:\n  - {name: r, stage: a, match: {url: [\"*\", \"?\"]}}\n",
        "journey: j\nstages: [a]\nfields: {event: [a, \"\"]}\n",
        "journey: j\nstages: [a, a]\n",
        "journey: j\nstages: [a]\nrules:\n  - {name: r, stage: zz, match: {event: e}}\n",
        "journey: j\nstages: [a]\n---\n",
    };
    for (int rep = 0; rep < 3; rep++)
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            char err[256];
            assert_null(cs_rules_load_string(bad[i], strlen(bad[i]), "t.yaml", err, sizeof err));
            assert_true(strncmp(err, "t.yaml:", 7) == 0);
        }
    cs_rules_destroy(NULL);
}

/* Extension keys ("x-...") are not a thing: an anchor must live under a known key. */
static void test_no_extension_keys(void **state)
{
    expect_err("journey: j\nstages: [a, b]\nx-events: &ev [buy, pay]\n"
               "rules:\n  - {name: r1, stage: b, match: {event: *ev}}\n",
               "t.yaml:3:1: ", "unknown key 'x-events' in the rule file");
}

/* Aliases work; cycles through aliases can't hang the walk. */
static void test_aliases_and_cycles(void **state)
{
    cs_ruleset *rs = load_ok("journey: j\nstages: &st [a, b]\n"
                             "rules:\n"
                             "  - {name: r1, stage: b, match: &m {event: [buy, pay]}}\n"
                             "  - {name: r2, stage: a, match: *m}\n");
    cs_decoded e = ev3("pay", NULL, NULL);
    assert_int_equal(cs_rules_match(rs, &e), 0);
    cs_rules_destroy(rs);
    expect_err("journey: j\nstages: [a]\nrules: &r [*r]\n", "t.yaml:3:8: ",
               "a rule must be a mapping, not a list");
    expect_err("journey: j\nstages: [a]\nrules:\n  - &m {name: r, stage: a, match: {event: *m}}\n",
               "t.yaml:4:5: ", "match.event must be a string or a list of strings, not a mapping");
}


/* 10,000 url-only rules (globs with no literal head, globs with one, url_prefix): every event
 * used to test them one by one (4,096 "*\/p/<i>/\*" rules: 230 us per event), against SPEC §2's
 * "10 rules or 1,000 cost about the same". The url index keeps a rule only when the rarest
 * 4-byte gram of its value occurs in the url; the work counters prove the candidates tested no
 * longer follow the number of rules, and the answers are the reference scan's. */
static void test_regression_url_rules_scan_every_rule(void **state)
{
    enum { N = 10000 };
    size_t cap = (size_t)N * 96 + 256, n = 0;
    char *y = malloc(cap);
    n += (size_t)snprintf(y + n, cap - n, "journey: j\nstages: [a, b]\nrules:\n");
    for (int i = 0; i < N; i++) {
        if (i % 3 == 0)
            n += (size_t)snprintf(y + n, cap - n,
                                  "- {name: r%d, stage: a, match: {url: \"*/p/%d/*\"}}\n", i, i);
        else if (i % 3 == 1)
            n += (size_t)snprintf(y + n, cap - n,
                                  "- {name: r%d, stage: b, match: {url_prefix: "
                                  "\"https://shop.example.com/c/%d/\"}}\n",
                                  i, i);
        else
            n += (size_t)snprintf(y + n, cap - n,
                                  "- {name: r%d, stage: b, match: {url: "
                                  "\"https://shop.example.com/l/%d/*\"}}\n",
                                  i, i);
    }
    cs_ruleset *rs = load_ok(y);
    assert_int_equal(cs_rules_url_indexed(rs), N);
    char url[256];
    cs_match_stats st;
    for (int i = 0; i < N; i += 7) {
        if (i % 3 == 0)
            snprintf(url, sizeof url, "https://shop.example.com/p/%d/reviews?page=2", i);
        else if (i % 3 == 1)
            snprintf(url, sizeof url, "https://shop.example.com/c/%d/shoes", i);
        else
            snprintf(url, sizeof url, "https://shop.example.com/l/%d/item", i);
        cs_decoded e = ev3("page", NULL, url);
        memset(&st, 0, sizeof st);
        int m = cs_rules_match_stats(rs, &e, &st);
        if (m != i)
            fail_msg("url %s: rule %d, want %d", url, m, i);
        assert_int_equal(cs_rules_match_scan(rs, &e), i);
        /* without the index: i + 1 candidates tested (every rule up to the match), and every
         * 64-rule word up to it visited */
        if (st.checked > 8 || st.url_passes != 1 || st.words > 16)
            fail_msg("url %s: %llu candidates tested, %llu words, %llu url passes", url,
                     (unsigned long long)st.checked, (unsigned long long)st.words,
                     (unsigned long long)st.url_passes);
    }
    /* no match: the old scan tested all N */
    const char *miss[] = {"https://shop.example.com/q/123/item?utm_source=x",
                          "https://shop.example.com/p/x123/", "https://other.example.org/c/5/",
                          "", "/p/", "https://shop.example.com/c/"};
    for (size_t i = 0; i < sizeof miss / sizeof miss[0]; i++) {
        cs_decoded e = ev3("page", NULL, miss[i][0] ? miss[i] : NULL);
        memset(&st, 0, sizeof st);
        assert_int_equal(cs_rules_match_stats(rs, &e, &st), -1);
        assert_int_equal(cs_rules_match_scan(rs, &e), -1);
        if (st.checked > 8 || st.words > 16)
            fail_msg("url %s: %llu candidates tested, %llu words", miss[i],
                     (unsigned long long)st.checked, (unsigned long long)st.words);
    }
    /* a 64 KB url: one pass over it, still few candidates (no gram of "aaaa" was chosen) */
    size_t L = 65536;
    char *big = malloc(L + 1);
    memset(big, 'a', L);
    big[L] = '\0';
    cs_decoded e = ev3("page", NULL, big);
    memset(&st, 0, sizeof st);
    assert_int_equal(cs_rules_match_stats(rs, &e, &st), -1);
    assert_int_equal(st.url_passes, 1);
    assert_int_equal(st.url_bytes, L);
    assert_true(st.checked <= 8);
    /* a url holding more than UX_MAX_HITS (128) distinct indexed grams: the index gives up for
     * that event, every rule is tested, the answer is still right */
    size_t o = 0;
    for (int i = 0; i < 400 && o < L - 32; i++)
        o += (size_t)snprintf(big + o, L - o, "/p/%d/", 3 * i + 3 * 1000);
    snprintf(big + o, L - o, "/p/3/x");
    e = ev3("page", NULL, big);
    e.f[CS_F_URL].len = (uint32_t)strlen(big);
    memset(&st, 0, sizeof st);
    assert_int_equal(cs_rules_match_stats(rs, &e, &st), cs_rules_match_scan(rs, &e));
    assert_int_equal(cs_rules_match(rs, &e), 3);
    free(big);
    cs_rules_destroy(rs);
    free(y);
}

/* The url index on random rule sets: literals long enough to be indexed and short ones that are
 * not, several values per key, url and url_prefix in one rule, exact keys alongside; urls built
 * from the same pieces. The compiled matcher must agree with the reference scan everywhere. */
static void test_regression_url_index_random_vs_scan(void **state)
{
    static const char *const lit[] = {"/shop", "/reviews", "/p/1234", "/p/12", "/cart", "/x",
                                      "&utm=", ".pdf", "/a", "https://s.example", "/blog/2024"};
    enum { NL = sizeof lit / sizeof lit[0], ROUNDS = 30, RULES = 120, EVENTS = 600 };
    size_t cap = 1 << 18;
    char *y = malloc(cap);
    int indexed_rounds = 0;
    for (int round = 0; round < ROUNDS; round++) {
        size_t n = (size_t)snprintf(y, cap, "journey: j\nstages: [a, b]\nrules:\n");
        for (int r = 0; r < RULES; r++) {
            n += (size_t)snprintf(y + n, cap - n, "- {name: r%d, stage: a, match: {", r);
            int keys = 0;
            if (rnd(4) == 0) {
                n += (size_t)snprintf(y + n, cap - n, "event: [e%u, e%u]", rnd(3), rnd(3));
                keys++;
            }
            for (int kind = 0; kind < 2; kind++) {
                if (kind == 1 && rnd(3) != 0)
                    continue;
                if (kind == 0 && keys && rnd(2))
                    continue;
                n += (size_t)snprintf(y + n, cap - n, "%s%s: [", keys ? ", " : "",
                                      kind ? "url_prefix" : "url");
                int nv = 1 + (int)rnd(3);
                for (int v = 0; v < nv; v++) {
                    n += (size_t)snprintf(y + n, cap - n, "%s\"", v ? ", " : "");
                    int parts = 1 + (int)rnd(3);
                    for (int k = 0; k < parts; k++) {
                        if (kind == 0 && rnd(2))
                            n += (size_t)snprintf(y + n, cap - n, "*");
                        n += (size_t)snprintf(y + n, cap - n, "%s", lit[rnd(NL)]);
                    }
                    if (kind == 0 && rnd(2))
                        n += (size_t)snprintf(y + n, cap - n, "*");
                    n += (size_t)snprintf(y + n, cap - n, "\"");
                }
                n += (size_t)snprintf(y + n, cap - n, "]");
                keys++;
            }
            if (!keys)
                n += (size_t)snprintf(y + n, cap - n, "url: \"*%s*\"", lit[rnd(NL)]);
            n += (size_t)snprintf(y + n, cap - n, "}}\n");
        }
        cs_ruleset *rs = load_ok(y);
        indexed_rounds += cs_rules_url_indexed(rs) > 0;
        char url[512], ev[8];
        for (int i = 0; i < EVENTS; i++) {
            size_t o = 0;
            int parts = (int)rnd(6);
            for (int k = 0; k < parts; k++)
                o += (size_t)snprintf(url + o, sizeof url - o, "%s", lit[rnd(NL)]);
            snprintf(ev, sizeof ev, "e%u", rnd(4));
            cs_decoded e = ev3(ev, NULL, parts ? url : NULL);
            int got = cs_rules_match(rs, &e), want = cs_rules_match_scan(rs, &e);
            if (got != want)
                fail_msg("round %d url '%s' event %s: index %d, scan %d", round, url, ev, got,
                         want);
        }
        cs_rules_destroy(rs);
    }
    assert_true(indexed_rounds > ROUNDS / 2); /* the index was actually exercised */
    free(y);
}

/* A property path may hold any byte a JSON key may (escaped in the message), newlines too, and a
 * match key's messages printed it raw: "match.property.a\n\nb must not be an empty list" was
 * three lines of a log (found by reading the rule loader's messages after fuzz_formats found
 * the same in a format path; fuzz_rules now rejects an error with a control byte). */
static void test_regression_match_key_error_with_newlines_is_one_line(void **state)
{
    (void)state;
    const char *y = "journey: j\nstages: [a]\nrules:\n"
                    "  - {name: r, stage: a, match: {\"property.a\\n\\nb\": []}}\n";
    expect_err(y, "t.yaml:4:", "match.property.a??b must not be an empty list"); /* one line */
}

/* ---------------------------------------------------------------------------------------- */
/* regressions: hostile rule files the fuzzers' 70 kB inputs do not reach (issue 16, item 4) */

/* 20,000 nested '[': libyaml's scanner re-checks every open flow level on each token, so
 * yaml_parser_load() took 1.4 s on this, 32 s on 100,000 levels and ~1 h on 1M (2 MB, half the
 * 4 MiB file limit). The composer (pipeline/yamldoc.c) stops at 32 levels with an error at the
 * collection that goes too deep; a little nesting still gets the schema's own message. */
static void test_regression_yaml_deep_flow_nesting(void **state)
{
    size_t depth = 20000;
    const char *head = "journey: j\nstages: [a]\nrules: ";
    size_t hl = strlen(head), n = hl + 2 * depth + 1;
    char *y = malloc(n);
    memcpy(y, head, hl);
    memset(y + hl, '[', depth);
    memset(y + hl + depth, ']', depth);
    y[n - 1] = '\n';
    /* the root mapping is level 1, so the 32nd '[' (column 8 + 31) is where it stops */
    expect_err_at(y, n, "t.yaml:3:39: ", "YAML syntax error: collections nested more than 32 deep");
    free(y);
    /* block nesting: "- - - ... x" */
    depth = 100000;
    n = hl + 2 * depth + 2;
    y = malloc(n);
    memcpy(y, "journey: j\nstages: [a]\nrules:\n", hl); /* as long as `head` */
    for (size_t i = 0; i < depth; i++)
        memcpy(y + hl + 2 * i, "- ", 2);
    memcpy(y + n - 2, "x\n", 2);
    expect_err_at(y, n, "t.yaml:4:63: ", "collections nested more than 32 deep");
    free(y);
    expect_err("journey: j\nstages: [a]\nrules:\n  - {name: r, stage: a, match: {event: [[x]]}}\n",
               "t.yaml:4:41: ", "match.event values must be strings, not a list");
}

/* 4,000 rules, half of them with three anchors, the other half with two aliases (6,000 anchors): libyaml's loader scans
 * its anchor list from the start for every anchor and every alias (quadratic: 250,000 anchors in
 * a 4 MiB file took 290 s). The composer's anchor table makes it a few probes each; and the
 * rule-name check is a hash table too (it was a scan of the earlier names). The load's work
 * counter (events + probes) must stay a small multiple of the file's events. */
static void test_regression_yaml_many_anchors(void **state)
{
    enum { N = 2000 };
    size_t cap = (size_t)N * 160 + 256, n = 0;
    char *y = malloc(cap);
    n += (size_t)snprintf(y + n, cap - n, "journey: j\nstages: &st0 [a, b]\nrules:\n");
    for (int i = 0; i < N; i++)
        n += (size_t)snprintf(y + n, cap - n,
                              "- {name: &n%d r%d, stage: &s%d b, match: &m%d {event: e%d}}\n"
                              "- {name: q%d, stage: *s%d, match: *m%d}\n",
                              i, i, i, i, i, i, i, i);
    char err[512] = "";
    cs_ruleset *rs = cs_rules_load_string(y, n, "t.yaml", err, sizeof err);
    if (!rs)
        fail_msg("%s", err);
    assert_int_equal(cs_rules_nrules(rs), 2 * N);
    cs_decoded e = ev3("e1234", NULL, NULL);
    assert_int_equal(cs_rules_match(rs, &e), 2 * 1234);
    /* per rule pair: ~17 events; an anchor or alias costs ~1-2 probes, a name ~1-2; the old
     * list scans would be ~N^2 = 16M here */
    uint64_t steps = cs_rules_load_steps(rs);
    if (steps > (uint64_t)N * 40)
        fail_msg("load did %llu steps for %d rules: not linear", (unsigned long long)steps, 2 * N);
    cs_rules_destroy(rs);
    /* a duplicate anchor is still an error, as libyaml made it */
    expect_err("journey: &j j\nstages: &j [a]\n", "t.yaml:2:9: ",
               "YAML syntax error: second occurrence (found duplicate anchor; first occurrence");
    free(y);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retail_loads),
        cmocka_unit_test(test_retail_classifies),
        cmocka_unit_test(test_saas_loads_and_classifies),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_sha256_known),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_err_bad_duration),
        cmocka_unit_test(test_err_unknown_key),
        cmocka_unit_test(test_err_unknown_stage),
        cmocka_unit_test(test_err_empty_stages),
        cmocka_unit_test(test_err_duplicate_stage),
        cmocka_unit_test(test_err_bad_names),
        cmocka_unit_test(test_err_duplicate_rule_name),
        cmocka_unit_test(test_err_bad_glob),
        cmocka_unit_test(test_err_wrong_type),
        cmocka_unit_test(test_err_yaml_syntax),
        cmocka_unit_test(test_err_dimensions),
        cmocka_unit_test(test_err_limits),
        cmocka_unit_test(test_err_never_matches_and_bounds),
        cmocka_unit_test(test_load_file_errors),
        cmocka_unit_test(test_fixture_all_keys),
        cmocka_unit_test(test_glob),
        cmocka_unit_test(test_bytes_eq),
        cmocka_unit_test(test_glob_rules_differential),
        cmocka_unit_test(test_vhash),
        cmocka_unit_test(test_has_nul_short),
        cmocka_unit_test(test_dimdict_ids),
        cmocka_unit_test(test_match_semantics),
        cmocka_unit_test(test_many_rules_bitset_words),
        cmocka_unit_test(test_random_vs_model),
        cmocka_unit_test(test_plan_with_decoder),
        cmocka_unit_test(test_limits_reach_decoder),
        cmocka_unit_test(test_no_leak_on_errors),
        cmocka_unit_test(test_no_extension_keys),
        cmocka_unit_test(test_aliases_and_cycles),
        cmocka_unit_test(test_regression_yaml_deep_flow_nesting),
        cmocka_unit_test(test_regression_match_key_error_with_newlines_is_one_line),
        cmocka_unit_test(test_regression_yaml_many_anchors),
        cmocka_unit_test(test_regression_url_rules_scan_every_rule),
        cmocka_unit_test(test_regression_url_index_random_vs_scan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
