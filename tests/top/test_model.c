/* test_model.c — unit tests of clickstage-top's pure layers (cmd/clickstage-top/model.c,
 * render.c, url.c): no Redis, no terminal. Built and run by tests/top/run.sh:
 *   cc … -Icmd/clickstage-top tests/top/test_model.c cmd/clickstage-top/{model,render,url}.c -lcmocka
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "model.h"
#include "redis.h"
#include "timeto.h"
#include "render.h"
#include "url.h"

static void hset(top_hash *h, const char *k, const char *v)
{
    assert_int_equal(top_hash_add(h, k, strlen(k), v, strlen(v)), 0);
}

static void meta(top_model *m, const char *k, const char *v)
{
    assert_int_equal(top_model_set_meta(m, k, strlen(k), v, strlen(v)), 0);
}

/* The demo journey of tests/top/fixture.redis, partly. */
static void load_demo(top_model *m)
{
    top_model_init(m);
    meta(m, "stages", "awareness,consideration,intent,purchase,loyalty");
    meta(m, "updated_ms", "1763826000123");
    meta(m, "seq:host-a", "4711");
    meta(m, "seq:host-b", "17");
    meta(m, "version", "0.1.0");
    const char *st[] = {"awareness", "consideration", "intent", "purchase", "loyalty"};
    const char *re[] = {"12000", "7400", "3100", "1234", "321"};
    const char *ac[] = {"410", "233", "97", "41", "12"};
    for (int i = 0; i < 5; i++) {
        hset(&m->h[TOP_REACHED], st[i], re[i]);
        hset(&m->h[TOP_ACTIVE], st[i], ac[i]);
    }
    hset(&m->h[TOP_ACTIVE], "_none", "57");
    hset(&m->h[TOP_TRANSITIONS], "_entry>awareness", "11800");
    hset(&m->h[TOP_TRANSITIONS], "_entry>consideration", "200");
    hset(&m->h[TOP_TRANSITIONS], "purchase>loyalty", "321");
    hset(&m->h[TOP_TRANSITIONS], "awareness>consideration", "7200");
    hset(&m->h[TOP_TRANSITIONS], "intent>purchase", "1234");
    hset(&m->h[TOP_TRANSITIONS], "consideration>intent", "3100");
    hset(&m->h[TOP_EVENTS], "awareness", "40000");
    hset(&m->h[TOP_EVENTS], "_unclassified", "5000");
    hset(&m->h[TOP_EVENTS], "_late", "37");
    hset(&m->h[TOP_INVALID], "not_json", "12");
    hset(&m->h[TOP_INVALID], "bad_time", "3");
    hset(&m->h[TOP_BY_REACHED], "search/awareness", "5000");
    hset(&m->h[TOP_BY_REACHED], "search/purchase", "600");
    hset(&m->h[TOP_BY_REACHED], "a/b/awareness", "9000"); /* a value with a '/' in it */
    hset(&m->h[TOP_BY_ACTIVE], "search/_none", "20");
    hset(&m->h[TOP_BY_ACTIVE], "search/awareness", "180");
    hset(&m->h[TOP_BY_ACTIVE], "email/awareness", "77");
    assert_int_equal(top_model_finish(m), 0);
}

static void test_hash_parse(void **st)
{
    top_hash h = {0};
    hset(&h, "a", "12");
    hset(&h, "b", "-3");
    hset(&h, "c", "x1");                      /* not a number: skipped */
    hset(&h, "d", "");
    hset(&h, "e", "99999999999999999999");    /* overflow: skipped */
    assert_int_equal(h.n, 2);
    assert_int_equal(h.bad, 3);
    assert_int_equal(top_hash_get(&h, "a"), 12);
    assert_int_equal(top_hash_get(&h, "b"), -3);
    assert_int_equal(top_hash_get(&h, "zz"), 0);
    assert_int_equal(top_hash_sum(&h), 9);
    top_hash_free(&h);
}

static void test_meta_and_stages(void **st)
{
    top_model m;
    load_demo(&m);
    assert_int_equal(m.nstages, 5);
    assert_int_equal(m.nmeta_stages, 5);
    assert_string_equal(m.stages[0], "awareness");
    assert_string_equal(m.stages[4], "loyalty");
    assert_int_equal(m.updated_ms, 1763826000123LL);
    assert_int_equal(m.seq, 4711);
    assert_string_equal(m.seq_instance, "host-a");
    assert_string_equal(m.version, "0.1.0");
    /* A stage counted but missing from meta.stages is appended; markers are not stages. */
    hset(&m.h[TOP_REACHED], "zeta", "1");
    hset(&m.h[TOP_TRANSITIONS], "loyalty>omega", "1");
    assert_int_equal(top_model_finish(&m), 0);
    assert_int_equal(m.nstages, 7);
    assert_string_equal(m.stages[5], "omega");
    assert_string_equal(m.stages[6], "zeta");
    assert_int_equal(top_model_finish(&m), 0); /* idempotent */
    assert_int_equal(m.nstages, 7);
    top_model_free(&m);
}

/* customers at a stage or further now (the customers hash summed from the stage on), and the
 * conversion between those counts: never above 100 %; _none and unknown stages not counted */
static void test_customers_at_least(void **st)
{
    (void)st;
    top_model m;
    load_demo(&m);
    const char *stg[] = {"awareness", "consideration", "intent", "purchase", "loyalty"};
    const char *cu[] = {"5100", "2600", "1100", "650", "290"};
    for (int i = 0; i < 5; i++)
        hset(&m.h[TOP_CUSTOMERS], stg[i], cu[i]);
    hset(&m.h[TOP_CUSTOMERS], "_none", "140");
    assert_int_equal(top_model_finish(&m), 0);
    assert_int_equal(top_customers_at_least(&m, 0), 9740);
    assert_int_equal(top_customers_at_least(&m, 1), 4640);
    assert_int_equal(top_customers_at_least(&m, 4), 290);
    double p;
    assert_int_equal(top_customer_conversion(&m, 0, &p), -1);
    assert_int_equal(top_customer_conversion(&m, 1, &p), 0);
    char buf[16];
    snprintf(buf, sizeof buf, "%.1f%%", p);
    assert_string_equal(buf, "47.6%");
    for (size_t i = 1; i < 5; i++) {
        assert_int_equal(top_customer_conversion(&m, i, &p), 0);
        assert_true(p <= 100.0);
    }
    top_model_free(&m);
}

/* the funnel is sessions that reached AT LEAST each stage (SPEC §4.1): a session that entered
 * at consideration counts at awareness too, one that skipped intent counts at intent */
static void test_at_least(void **st)
{
    top_model m;
    load_demo(&m);
    assert_int_equal(top_at_least(&m, 0), 12000);
    assert_int_equal(top_at_least(&m, 1), 7400);
    hset(&m.h[TOP_TRANSITIONS], "_entry>intent", "5000");        /* entered at intent */
    hset(&m.h[TOP_TRANSITIONS], "consideration>purchase", "100"); /* skipped intent */
    hset(&m.h[TOP_TRANSITIONS], "intent>consideration", "999");   /* not forward: ignored */
    assert_int_equal(top_at_least(&m, 0), 17000);
    assert_int_equal(top_at_least(&m, 1), 12400);
    assert_int_equal(top_at_least(&m, 2), 8200);
    assert_int_equal(top_at_least(&m, 3), 1334);
    double p;
    for (size_t i = 1; i < 5; i++) {
        assert_int_equal(top_conversion(&m, i, &p), 0);
        assert_true(p <= 100.0);
    }
    top_model_free(&m);
}

/* median and p90 per stage, interpolated within a bucket (pipeline/timeto.c) */
static void test_time_to_quantiles(void **st)
{
    top_model m;
    load_demo(&m);
    top_model_set_tt(&m, 0, 1, "0", 1, "30000", 5);
    top_model_set_tt(&m, 0, 1, "10", 2, "9000", 4);
    top_model_set_tt(&m, 0, 1, "30", 2, "5000", 4);
    top_model_set_tt(&m, 0, 1, "60", 2, "4000", 4);
    top_model_set_tt(&m, 0, 1, "61", 2, "4000", 4); /* not a bucket: ignored */
    top_model_set_tt(&m, 1, 4, "inf", 3, "10", 2);
    int open;
    assert_true(cs_tt_quantile(m.tt[1], 0.5, &open) == 0.0);
    double p90 = cs_tt_quantile(m.tt[1], 0.9, &open); /* rank 43,200: 10 + 20 x 4,200 / 5,000 */
    assert_true(p90 > 26.799 && p90 < 26.801);
    char b[16];
    cs_tt_format_short(p90, open, b, sizeof b);
    assert_string_equal(b, "27s");
    assert_true(cs_tt_quantile(m.ctt[4], 0.5, &open) == 7776000.0 && open);
    cs_tt_format_short(7776000.0, 1, b, sizeof b);
    assert_string_equal(b, ">90d");
    assert_true(cs_tt_quantile(m.tt[0], 0.5, &open) < 0); /* empty */
    top_model_free(&m);
}

static void test_conversion(void **st)
{
    top_model m;
    load_demo(&m);
    double p;
    assert_int_equal(top_conversion(&m, 0, &p), -1);
    assert_int_equal(top_conversion(&m, 1, &p), 0);
    char buf[16];
    snprintf(buf, sizeof buf, "%.1f%%", p);
    assert_string_equal(buf, "61.7%");
    assert_int_equal(top_conversion(&m, 4, &p), 0);
    snprintf(buf, sizeof buf, "%.1f%%", p);
    assert_string_equal(buf, "26.0%");
    top_model_free(&m);
}

static void test_sorted(void **st)
{
    top_model m;
    load_demo(&m);
    top_item it[3];
    assert_int_equal(top_sorted(&m.h[TOP_TRANSITIONS], it, 3), 3);
    assert_string_equal(it[0].key, "_entry>awareness");
    assert_string_equal(it[1].key, "awareness>consideration");
    assert_string_equal(it[2].key, "consideration>intent");
    top_model_free(&m);
}

static void test_breakdown(void **st)
{
    top_model m;
    load_demo(&m);
    top_breakdown bd;
    assert_int_equal(top_breakdown_build(&m, 2, &bd), 0);
    assert_int_equal(bd.nvalues, 3);
    assert_int_equal(bd.nrows, 2);
    assert_string_equal(bd.rows[0].value, "a/b");
    assert_int_equal(bd.rows[0].reached[0], 9000);
    assert_string_equal(bd.rows[1].value, "search");
    assert_int_equal(bd.rows[1].reached[0], 5000);
    assert_int_equal(bd.rows[1].reached[3], 600);
    assert_int_equal(bd.rows[1].active[0], 180);
    assert_int_equal(bd.rows[1].total_active, 200); /* _none included */
    top_breakdown_free(&bd);
    top_model_free(&m);
}

static void test_update_json(void **st)
{
    top_update u;
    const char *j = "{\"updated_ms\":1763826000123,\"seq\":4711,\"instance\":\"host-a\",\"commands\":327}";
    assert_int_equal(top_parse_update(j, strlen(j), &u), 0);
    assert_int_equal(u.updated_ms, 1763826000123LL);
    assert_int_equal(u.seq, 4711);
    assert_int_equal(u.commands, 327);
    assert_string_equal(u.instance, "host-a");
    j = " { \"x\" : {\"y\":[1,\"}\"]}, \"seq\" : 5 , \"instance\":\"a\\\"b\" } ";
    assert_int_equal(top_parse_update(j, strlen(j), &u), 0);
    assert_int_equal(u.seq, 5);
    assert_string_equal(u.instance, "a\"b");
    assert_int_equal(top_parse_update("nope", 4, &u), -1);
    assert_int_equal(top_parse_update("{\"seq\":", 7, &u), -1);
}

static void test_rates(void **st)
{
    top_rate_hist h;
    top_rates r;
    top_rates_reset(&h);
    top_totals t = {1000, 10, 1};
    top_rates_push(&h, 10000, &t, &r);
    assert_int_equal(r.valid, 0);
    t = (top_totals){1100, 10, 1};
    top_rates_push(&h, 10500, &t, &r); /* half a second: against the only sample */
    assert_int_equal(r.valid, 1);
    assert_true(r.events_s > 199.9 && r.events_s < 200.1);
    t = (top_totals){1300, 12, 3};
    top_rates_push(&h, 11000, &t, &r); /* window: against the sample 1 s old */
    assert_true(r.events_s > 299.9 && r.events_s < 300.1);
    assert_true(r.invalid_s > 1.99 && r.invalid_s < 2.01);
    assert_true(r.late_s > 1.99 && r.late_s < 2.01);
    t = (top_totals){5, 0, 0}; /* went down: Redis restarted empty */
    top_rates_push(&h, 11500, &t, &r);
    assert_int_equal(r.valid, 0);
}

static void test_keys(void **st)
{
    char *s = top_glob_escape("a*b?[c]\\");
    assert_string_equal(s, "a\\*b\\?\\[c\\]\\\\");
    free(s);
    const char *k = "clickstage:{demo}:meta";
    s = top_journey_from_key("clickstage", k, strlen(k));
    assert_string_equal(s, "demo");
    free(s);
    k = "clickstage2:{demo}:meta";
    assert_null(top_journey_from_key("clickstage", k, strlen(k)));
    k = "clickstage:{demo}:by:channel:reached";
    s = top_dim_from_key("clickstage", "demo", k, strlen(k));
    assert_string_equal(s, "channel");
    free(s);
    k = "clickstage:{demo}:by:channel:active";
    assert_null(top_dim_from_key("clickstage", "demo", k, strlen(k)));
    char *v[] = {strdup("b"), strdup("a"), strdup("b")};
    assert_int_equal(top_strv_sort_uniq(v, 3), 2);
    assert_string_equal(v[0], "a");
    assert_string_equal(v[1], "b");
    free(v[0]);
    free(v[1]);
}

static void test_url(void **st)
{
    top_url u;
    char err[200];
    assert_int_equal(top_url_parse(NULL, &u, err, sizeof err), 0);
    assert_string_equal(u.where, "127.0.0.1:6379/0");
    top_url_free(&u);
    assert_int_equal(top_url_parse("redis://:p%40ss@h:6380/3", &u, err, sizeof err), 0);
    assert_string_equal(u.host, "h");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 3);
    assert_string_equal(u.password, "p@ss");
    assert_null(strstr(u.where, "p@ss"));
    top_url_free(&u);
    assert_int_equal(top_url_parse("unix:///tmp/r.sock?db=2&password=x", &u, err, sizeof err), 0);
    assert_true(u.is_unix);
    assert_string_equal(u.path, "/tmp/r.sock");
    assert_int_equal(u.db, 2);
    top_url_free(&u);
    assert_int_equal(top_url_parse("redis://[::1]:7000", &u, err, sizeof err), 0);
    assert_string_equal(u.where, "[::1]:7000/0");
    top_url_free(&u);
    assert_int_equal(top_url_parse("http://x", &u, err, sizeof err), -1);
    assert_non_null(strstr(err, "unsupported scheme 'http'"));
    assert_int_equal(top_url_parse("redis://h:0", &u, err, sizeof err), -1);
    assert_int_equal(top_url_parse("redis://h/x", &u, err, sizeof err), -1);
    assert_int_equal(top_url_parse("unix://rel.sock", &u, err, sizeof err), -1);
}

static const char *find_line(const top_frame *f, const char *needle)
{
    for (size_t i = 0; i < f->n; i++)
        if (strstr(f->lines[i].text, needle))
            return f->lines[i].text;
    return NULL;
}

static void test_render(void **st)
{
    top_model m;
    load_demo(&m);
    top_rates r = {1, 123.45, 0.5, 0.0, 1.0};
    top_view v = {.journey = "demo", .where = "127.0.0.1:6379/0", .now_ms = 1763826001123LL,
                  .last_update_ms = 1763826000123LL, .seq = 4711, .seq_instance = "host-a",
                  .stale_s = 5, .rates = &r, .dim = "channel", .dim_index = 0, .ndims = 2,
                  .utf8 = 0, .width = 140, .have_data = 1};
    top_frame f = {0};
    assert_int_equal(top_render(&m, &v, &f), 0);
    assert_non_null(find_line(&f, "updated 1.0s ago"));
    assert_null(find_line(&f, "STALE"));
    const char *l = find_line(&f, "consideration  ");
    assert_non_null(l);
    assert_non_null(strstr(l, "7400"));
    assert_non_null(strstr(l, "61.7%"));
    assert_non_null(find_line(&f, "123.5"));
    assert_non_null(find_line(&f, "By channel"));
    l = find_line(&f, "a/b");
    assert_non_null(l);
    assert_non_null(strstr(l, "9000/0"));
    for (size_t i = 0; i < f.n; i++) /* ASCII mode is pure ASCII */
        for (const char *p = f.lines[i].text; *p; p++)
            assert_true((unsigned char)*p < 0x80);

    v.now_ms += 10000; /* 11 s without an update */
    v.down = 0;
    assert_int_equal(top_render(&m, &v, &f), 0);
    l = find_line(&f, "STALE");
    assert_non_null(l);
    int found = 0;
    for (int i = 0; i < f.lines[0].nspans; i++)
        found |= f.lines[0].spans[i].attr == TOP_A_ALERT &&
                 strncmp(f.lines[0].text + f.lines[0].spans[i].off, " STALE ", 7) == 0;
    assert_true(found);

    v.down = 1;
    v.down_reason = "connect: Connection refused";
    assert_int_equal(top_render(&m, &v, &f), 0);
    assert_non_null(find_line(&f, "REDIS DOWN - reconnecting"));
    assert_null(find_line(&f, "STALE"));
    top_frame_free(&f);
    top_model_free(&m);
}

/* SPEC 3.1: the merges line under the stage table only when the identity hash exists */
static void test_render_identity(void **st)
{
    top_model m;
    load_demo(&m);
    top_view v = {.journey = "demo", .where = "127.0.0.1:6379/0", .now_ms = 1763826001123LL,
                  .last_update_ms = 1763826000123LL, .stale_s = 5, .utf8 = 1, .width = 140,
                  .have_data = 1};
    top_frame f = {0};
    assert_int_equal(top_render(&m, &v, &f), 0);
    assert_null(find_line(&f, "merges"));
    assert_null(find_line(&f, "identity"));
    size_t n_without = f.n;
    hset(&m.h[TOP_IDENTITY], "merged", "3842");
    hset(&m.h[TOP_IDENTITY], "conflicts", "12");
    assert_int_equal(top_render(&m, &v, &f), 0);
    assert_int_equal(f.n, n_without + 1);
    const char *l = find_line(&f, "merges  ");
    assert_non_null(l);
    assert_int_equal(strncmp(l, "merges  3842 merged  12 conflicts  (identity: ", 46), 0);
    /* right under the stage table's _none row */
    for (size_t i = 1; i < f.n; i++)
        if (f.lines[i].text == l)
            assert_int_equal(strncmp(f.lines[i - 1].text, "_none", 5), 0);
    /* a hash with one field only: the other shows 0 */
    top_hash_clear(&m.h[TOP_IDENTITY]);
    hset(&m.h[TOP_IDENTITY], "conflicts", "5");
    assert_int_equal(top_render(&m, &v, &f), 0);
    assert_non_null(find_line(&f, "merges  0 merged  5 conflicts"));
    top_frame_free(&f);
    top_model_free(&m);
}

static void test_format(void **st)
{
    char b[64];
    top_fmt_age(400, b, sizeof b);
    assert_string_equal(b, "0.4s");
    top_fmt_age(185000, b, sizeof b);
    assert_string_equal(b, "3m05s");
    top_fmt_age(-5, b, sizeof b);
    assert_string_equal(b, "0.0s");
    top_fmt_bar(50, 100, 10, 0, b, sizeof b);
    assert_string_equal(b, "#####");
    top_fmt_bar(1, 1000, 10, 0, b, sizeof b);
    assert_string_equal(b, "#"); /* non-zero always shows */
    top_fmt_bar(0, 1000, 10, 0, b, sizeof b);
    assert_string_equal(b, "");
    top_fmt_bar(3, 8, 1, 1, b, sizeof b); /* three eighths of one cell */
    assert_string_equal(b, "\u258D");
    assert_int_equal(top_u8_width("a\u2588b"), 3);
}

static void test_info_hint(void **st)
{
    char out[384];
    /* a master with room: nothing to say */
    const char *ok = "# Replication\r\nrole:master\r\nconnected_slaves:0\r\n# Memory\r\n"
                     "used_memory:1000000\r\nused_memory_human:976.56K\r\nmaxmemory:0\r\n"
                     "maxmemory_human:0B\r\nmaxmemory_policy:noeviction\r\n# Persistence\r\n"
                     "loading:0\r\n";
    assert_int_equal(top_info_hint(ok, strlen(ok), out, sizeof out), CS_REDIS_OK);
    assert_string_equal(out, "");
    /* demoted by a failover */
    const char *rep = "# Persistence\r\nloading:0\r\n# Replication\r\nrole:slave\r\n"
                      "master_host:10.0.0.7\r\nmaster_port:6380\r\nmaster_link_status:up\r\n";
    assert_int_equal(top_info_hint(rep, strlen(rep), out, sizeof out), CS_REDIS_READONLY);
    assert_non_null(strstr(out, "read-only replica of 10.0.0.7:6380 (link up)"));
    /* loading a big AOF */
    const char *ld = "role:master\nloading:1\nmaxmemory:0\n";
    assert_int_equal(top_info_hint(ld, strlen(ld), out, sizeof out), CS_REDIS_LOADING);
    /* full, noeviction; and the same under volatile-lru (only TTL keys can go) */
    char full[512];
    snprintf(full, sizeof full, "role:master\r\nloading:0\r\nused_memory:2000000\r\n"
             "used_memory_human:1.91M\r\nmaxmemory:1048576\r\nmaxmemory_human:1.00M\r\n"
             "maxmemory_policy:%s\r\n", "noeviction");
    assert_int_equal(top_info_hint(full, strlen(full), out, sizeof out), CS_REDIS_OOM);
    assert_non_null(strstr(out, "used 1.91M of maxmemory 1.00M (policy noeviction)"));
    snprintf(full, sizeof full, "used_memory:2000000\nmaxmemory:1048576\nmaxmemory_policy:%s\n",
             "volatile-lru");
    assert_int_equal(top_info_hint(full, strlen(full), out, sizeof out), CS_REDIS_OOM);
    /* allkeys-lru evicts instead of refusing; under the limit is no refusal */
    snprintf(full, sizeof full, "used_memory:2000000\nmaxmemory:1048576\nmaxmemory_policy:%s\n",
             "allkeys-lru");
    assert_int_equal(top_info_hint(full, strlen(full), out, sizeof out), CS_REDIS_OK);
    const char *room = "used_memory:1000\nmaxmemory:1048576\nmaxmemory_policy:noeviction\n";
    assert_int_equal(top_info_hint(room, strlen(room), out, sizeof out), CS_REDIS_OK);
    /* a field name that only starts like another ("role_x") and a value cut by the length */
    const char *tricky = "role_x:slave\nrole:master\nloading:1";
    assert_int_equal(top_info_hint(tricky, strlen(tricky), out, sizeof out), CS_REDIS_LOADING);
    assert_int_equal(top_info_hint(tricky, strlen(tricky) - 1, out, sizeof out), CS_REDIS_OK);
    assert_int_equal(top_info_hint("", 0, out, sizeof out), CS_REDIS_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_parse),  cmocka_unit_test(test_meta_and_stages),
        cmocka_unit_test(test_conversion),
        cmocka_unit_test(test_at_least),
        cmocka_unit_test(test_customers_at_least),
        cmocka_unit_test(test_time_to_quantiles),  cmocka_unit_test(test_sorted),
        cmocka_unit_test(test_breakdown),   cmocka_unit_test(test_update_json),
        cmocka_unit_test(test_rates),       cmocka_unit_test(test_keys),
        cmocka_unit_test(test_url),         cmocka_unit_test(test_render),
        cmocka_unit_test(test_render_identity),
        cmocka_unit_test(test_format),      cmocka_unit_test(test_info_hint),
    };
    return cmocka_run_group_tests_name("top_model", tests, NULL, NULL);
}
