/* test_sustain_pick.c — the --find-sustainable figure (loadgen/sustain_pick.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "sustain_pick.h"

/* Regression: run 3 of bench-sustain on 2026-12-05 reported 347,181 events/s, taken from a
 * 400k/s step where the generator sent 347k/s and clickstage kept up in a quiet moment, while
 * every later step from 206,250/s up failed on clickstage's side (runs 1 and 2: 193,750). */
static void pass_above_a_clickstage_failure_is_not_the_figure(void **st)
{
    (void)st;
    cs_sustain_step s[] = {
        {50000, 1, 1},  {100000, 1, 1}, {200000, 1, 1},
        {347181, 1, 1},                 /* offered 400k: "generator", clickstage kept up */
        {300000, 0, 0}, {300000, 0, 0}, {300000, 0, 1}, /* p99 three times */
        {250000, 0, 1}, {225000, 0, 1}, {212500, 0, 1}, {206250, 0, 1},
        {203125, 0, 1},
    };
    double fail;
    int above;
    int best = cs_sustain_pick(s, 12, &fail, &above);
    assert_int_equal(best, 2);
    assert_true(fail == 203125);
    assert_int_equal(above, 1);
}

/* A failure superseded by a passing retry of the same rate does not bound the figure. */
static void failed_attempt_retried_and_passed_counts_as_pass(void **st)
{
    (void)st;
    cs_sustain_step s[] = {
        {100000, 1, 1}, {200000, 0, 0}, {199000, 1, 1}, {400000, 0, 1}, {300000, 1, 1},
        {350000, 0, 1},
    };
    double fail;
    int above;
    int best = cs_sustain_pick(s, 6, &fail, &above);
    assert_int_equal(best, 4);
    assert_true(fail == 350000);
    assert_int_equal(above, 0);
}

/* No clickstage failure (limited by the generator or --max-rate): the best kept-up step. */
static void no_failure_takes_the_best_kept_up(void **st)
{
    (void)st;
    cs_sustain_step s[] = {{50000, 1, 1}, {90000, 1, 1}, {80000, 1, 1}};
    double fail = -1;
    int above = -1;
    assert_int_equal(cs_sustain_pick(s, 3, &fail, &above), 1);
    assert_true(fail == 0);
    assert_int_equal(above, 0);
}

static void nothing_kept_up(void **st)
{
    (void)st;
    cs_sustain_step s[] = {{50000, 0, 1}, {25000, 0, 1}};
    assert_int_equal(cs_sustain_pick(s, 2, NULL, NULL), -1);
    assert_int_equal(cs_sustain_pick(s, 0, NULL, NULL), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pass_above_a_clickstage_failure_is_not_the_figure),
        cmocka_unit_test(failed_attempt_retried_and_passed_counts_as_pass),
        cmocka_unit_test(no_failure_takes_the_best_kept_up),
        cmocka_unit_test(nothing_kept_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
