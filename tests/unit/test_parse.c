/* test_parse.c — pipeline/parse.h: the one grammar for durations and integers (issue 11). The
 * daemon's options, the rule file, the repartitioner and the load generator all go through it;
 * these cases are the grammar's definition. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "parse.h"

static cs_dur_err dur(const char *s, int64_t *ms)
{
    *ms = -42;
    return cs_parse_duration(s, strlen(s), ms);
}

static void test_duration_accepted(void **st)
{
    static const struct {
        const char *s;
        int64_t ms;
    } ok[] = {
        {"0", 0},           {"0ms", 0},          {"0d", 0},           {"1ms", 1},
        {"250ms", 250},     {"1s", 1000},        {"30s", 30000},      {"5m", 300000},
        {"48h", 172800000}, {"7d", 604800000},   {"007s", 7000},      {"3650d", 315360000000},
        {"315360000000ms", 315360000000},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t ms;
        assert_int_equal(dur(ok[i].s, &ms), CS_DUR_OK);
        assert_int_equal(ms, ok[i].ms);
        assert_int_equal(cs_parse_duration_ms(ok[i].s, &ms), 0);
        assert_int_equal(ms, ok[i].ms);
    }
}

static void test_duration_refused(void **st)
{
    static const struct {
        const char *s;
        cs_dur_err e;
    } bad[] = {
        {"", CS_DUR_BAD},         {"s", CS_DUR_BAD},          {"1.5s", CS_DUR_BAD},
        {"-1s", CS_DUR_BAD},      {"+1s", CS_DUR_BAD},        {" 1s", CS_DUR_BAD},
        {"1s ", CS_DUR_BAD},      {"1 s", CS_DUR_BAD},        {"1S", CS_DUR_BAD},
        {"1w", CS_DUR_BAD},       {"1sec", CS_DUR_BAD},       {"1e3ms", CS_DUR_BAD},
        {"0x10s", CS_DUR_BAD},    {"1ms1", CS_DUR_BAD},       {"500", CS_DUR_NO_UNIT},
        {"1", CS_DUR_NO_UNIT},    {"3651d", CS_DUR_TOO_LONG}, {"315360000001ms", CS_DUR_TOO_LONG},
        {"99999999999999999999999999s", CS_DUR_TOO_LONG},
        {"99999999999999999999999999", CS_DUR_NO_UNIT},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms;
        if (dur(bad[i].s, &ms) != bad[i].e)
            fail_msg("'%s': %d, wanted %d", bad[i].s, dur(bad[i].s, &ms), bad[i].e);
        assert_int_equal(ms, -42); /* untouched */
        assert_int_equal(cs_parse_duration_ms(bad[i].s, &ms), -1);
    }
    int64_t ms;
    assert_int_equal(cs_parse_duration_ms(NULL, &ms), -1);
    assert_int_equal(cs_parse_duration(NULL, 0, &ms), CS_DUR_BAD);
    /* the length bounds the text: "30s" of "30sx" */
    assert_int_equal(cs_parse_duration("30sx", 3, &ms), CS_DUR_OK);
    assert_int_equal(ms, 30000);
    assert_string_equal(cs_dur_err_text(CS_DUR_NO_UNIT), "missing unit (ms, s, m, h or d), e.g. 30m");
    assert_string_equal(cs_dur_err_text(CS_DUR_TOO_LONG), "too long (at most 3650d)");
}

static void test_duration_format_round_trip(void **st)
{
    static const int64_t v[] = {0, 1, 999, 1000, 1500, 60000, 90000, 3600000, 86400000,
                                172800000, 86400001, CS_DURATION_MAX_MS};
    static const char *const txt[] = {"0", "1ms", "999ms", "1s", "1500ms", "1m", "90s", "1h",
                                      "1d", "2d", "86400001ms", "3650d"};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char b[32];
        int64_t back;
        cs_format_duration(v[i], b, sizeof b);
        assert_string_equal(b, txt[i]);
        assert_int_equal(cs_parse_duration_ms(b, &back), 0);
        assert_int_equal(back, v[i]);
    }
}

static void test_int64(void **st)
{
    static const struct {
        const char *s;
        int ok;
        int64_t v;
    } c[] = {
        {"0", 1, 0},
        {"-0", 1, 0},
        {"+7", 1, 7},
        {"-12", 1, -12},
        {"9223372036854775807", 1, INT64_MAX},
        {"-9223372036854775808", 1, INT64_MIN},
        {"9223372036854775808", 0, 0},
        {"-9223372036854775809", 0, 0},
        {"", 0, 0},
        {"-", 0, 0},
        {"+", 0, 0},
        {" 1", 0, 0},
        {"1 ", 0, 0},
        {"1e3", 0, 0},
        {"0x10", 0, 0},
        {"1.0", 0, 0},
        {"--1", 0, 0},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        int64_t v = 42;
        int rc = cs_parse_int64(c[i].s, strlen(c[i].s), &v);
        if (rc != (c[i].ok ? 0 : -1))
            fail_msg("'%s': rc %d", c[i].s, rc);
        assert_int_equal(v, c[i].ok ? c[i].v : 42);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration_accepted),
        cmocka_unit_test(test_duration_refused),
        cmocka_unit_test(test_duration_format_round_trip),
        cmocka_unit_test(test_int64),
    };
    return cmocka_run_group_tests_name("parse", tests, NULL, NULL);
}
