/* test_gen_mt — the generator's determinism contract (loadgen/gen.h, issue 15):
 *  - a partition's bytes do not depend on how many threads generate the partitions, nor on
 *    whether they come from the partition streams or from the merged whole stream;
 *  - --skip/--count: the merged stream's first n messages are, per partition, exactly
 *    cs_gen_plan_before(p, n) of them, so a stream sent in parts adds up to the whole;
 *  - the documented properties still hold per partition (out of order by at most lateness/2,
 *    late and invalid shares present).
 * Named *mt*: it also runs under ThreadSanitizer (make tsan-test). */
#include <pthread.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include <cmocka.h>

#include "gen.h"

#define NP 8

/* every byte a producer sends for a message: payload, key, timestamp */
static void digest(XXH3_state_t *h, const cs_gen_msg *m)
{
    XXH3_64bits_update(h, m->payload, m->len);
    XXH3_64bits_update(h, m->key, m->keylen);
    XXH3_64bits_update(h, &m->ts_ms, sizeof m->ts_ms);
    XXH3_64bits_update(h, &m->len, sizeof m->len);
}

typedef struct job {
    const cs_gen_plan *pl;
    int first, step;
    uint64_t hash[NP], n[NP];
} job;

static void *gen_parts(void *a_)
{
    job *a = a_;
    for (int p = a->first; p < NP; p += a->step) {
        XXH3_state_t *h = XXH3_createState();
        XXH3_64bits_reset(h);
        cs_gen_pstream *s = cs_gen_pstream_new(a->pl, p);
        cs_gen_msg m;
        while (cs_gen_pstream_next(s, &m)) {
            digest(h, &m);
            a->n[p]++;
        }
        a->hash[p] = XXH3_64bits_digest(h);
        XXH3_freeState(h);
        cs_gen_pstream_destroy(s);
    }
    return NULL;
}

/* partition digests with nthreads threads over p % nthreads */
static void with_threads(const cs_gen_plan *pl, int nthreads, uint64_t *hash, uint64_t *n)
{
    job j[8];
    pthread_t th[8];
    for (int i = 0; i < nthreads; i++) {
        memset(&j[i], 0, sizeof j[i]);
        j[i].pl = pl;
        j[i].first = i;
        j[i].step = nthreads;
        pthread_create(&th[i], NULL, gen_parts, &j[i]);
    }
    for (int i = 0; i < nthreads; i++) {
        pthread_join(th[i], NULL);
        for (int p = i; p < NP; p += nthreads) {
            hash[p] = j[i].hash[p];
            n[p] = j[i].n[p];
        }
    }
}

static cs_gen_conf conf(uint64_t seed, uint64_t nevents)
{
    cs_gen_conf c;
    cs_gen_defaults(&c);
    c.seed = seed;
    c.nparts = NP;
    c.nevents = nevents;
    c.ncustomers = 6000;
    c.skew_frac = 0.001;
    return c;
}

static void same_bytes_for_1_2_and_4_threads(void **st)
{
    cs_gen_conf c = conf(15, 200000);
    cs_gen_plan *pl = cs_gen_plan_new(&c);
    uint64_t h1[NP], n1[NP], h2[NP], n2[NP], h4[NP], n4[NP];
    with_threads(pl, 1, h1, n1);
    with_threads(pl, 2, h2, n2);
    with_threads(pl, 4, h4, n4);
    uint64_t total = 0;
    for (int p = 0; p < NP; p++) {
        assert_int_equal(n1[p], cs_gen_plan_count(pl, p));
        assert_int_equal(h1[p], h2[p]);
        assert_int_equal(h1[p], h4[p]);
        assert_int_equal(n1[p], n4[p]);
        total += n1[p];
    }
    assert_int_equal(total, c.nevents);
    /* the merged stream, split by partition, is the same bytes */
    XXH3_state_t *hs[NP];
    for (int p = 0; p < NP; p++) {
        hs[p] = XXH3_createState();
        XXH3_64bits_reset(hs[p]);
    }
    cs_gen *g = cs_gen_new(&c);
    cs_gen_msg m;
    while (cs_gen_next(g, &m))
        digest(hs[m.part], &m);
    cs_gen_destroy(g);
    for (int p = 0; p < NP; p++) {
        assert_int_equal(XXH3_64bits_digest(hs[p]), h1[p]);
        XXH3_freeState(hs[p]);
    }
    /* and cs_gen_run lays out the same payloads */
    cs_gen_out *o = cs_gen_run(&c);
    assert_int_equal(o->nmsgs, c.nevents);
    for (int p = 0; p < NP; p++) {
        cs_gen_pstream *s = cs_gen_pstream_new(pl, p);
        for (size_t i = 0; i < o->parts[p].n; i++) {
            assert_true(cs_gen_pstream_next(s, &m));
            assert_int_equal(m.len, o->parts[p].msgs[i].len);
            assert_memory_equal(m.payload, o->parts[p].msgs[i].payload, m.len);
            assert_int_equal(m.ts_ms, o->parts[p].msgs[i].ts_ms);
        }
        assert_false(cs_gen_pstream_next(s, &m));
        cs_gen_pstream_destroy(s);
    }
    cs_gen_free(o);
    cs_gen_plan_free(pl);
}

/* The whole stream's position i is partition p's message before(p, i); parts add up. */
static void skip_count_parts_add_up(void **st)
{
    cs_gen_conf c = conf(3, 30011);
    c.nparts = 5;
    cs_gen_plan *pl = cs_gen_plan_new(&c);
    cs_gen *g = cs_gen_new(&c);
    cs_gen_msg m;
    uint64_t i = 0, prevkey = 0;
    while (cs_gen_next(g, &m)) {
        assert_int_equal(m.index, cs_gen_plan_before(pl, m.part, i));
        assert_int_equal(m.key_pos, cs_gen_plan_key(pl, m.part, m.index));
        assert_true(m.key_pos >= prevkey); /* merged in key order */
        prevkey = m.key_pos;
        i++;
    }
    assert_int_equal(i, c.nevents);
    cs_gen_destroy(g);
    static const uint64_t cuts[] = {0, 1, 2, 17, 1000, 12345, 30000, 30010, 30011, 99999};
    for (size_t k = 0; k < sizeof cuts / sizeof *cuts; k++) {
        uint64_t sum = 0;
        for (int p = 0; p < c.nparts; p++)
            sum += cs_gen_plan_before(pl, p, cuts[k]);
        assert_int_equal(sum, cuts[k] < c.nevents ? cuts[k] : c.nevents);
    }
    cs_gen_plan_free(pl);
}

/* Per partition: event times out of order by at most lateness/2 (plus the producer-time
 * offsets of at most 1.5 s, seen here through the Kafka timestamps), late and invalid shares. */
static void properties_per_partition(void **st)
{
    cs_gen_conf c = conf(7, 300000);
    cs_gen_plan *pl = cs_gen_plan_new(&c);
    uint64_t late = 0, invalid = 0, total = 0;
    for (int p = 0; p < NP; p++) {
        cs_gen_pstream *s = cs_gen_pstream_new(pl, p);
        cs_gen_msg m;
        int64_t hi = INT64_MIN, worst = 0;
        while (cs_gen_pstream_next(s, &m)) {
            assert_int_equal(m.part, p);
            assert_int_equal(cs_gen_partition(m.key, m.keylen, NP), p);
            total++;
            late += (uint64_t)m.late;
            invalid += (uint64_t)m.invalid;
            if (m.late || m.invalid)
                continue;
            if (m.ts_ms > hi)
                hi = m.ts_ms;
            if (hi - m.ts_ms > worst)
                worst = hi - m.ts_ms;
            assert_true(m.ts_ms >= c.start_ms - c.lateness_ms);
            assert_true(m.ts_ms <= c.start_ms + c.span_ms + 1500);
        }
        assert_true(worst <= c.lateness_ms / 2 + 1500);
        cs_gen_pstream_destroy(s);
    }
    /* 1 % late, 2 % + 0.02 % + 0.1 % invalid */
    assert_true(late > total / 200 && late < total / 50);
    assert_true(invalid > total / 100 && invalid < total / 20);
    cs_gen_plan_free(pl);
}

/* --churn (issue 12's soak): new customers keep arriving and old ones fall silent. Over the
 * first and the last tenth of every partition the customers are different people; far more
 * distinct customers than --customers appear over the stream, every id below customers + churn;
 * and the bytes still depend on nothing but the configuration (1 and 4 threads). */
static void churn_customers_arrive_and_fall_silent(void **st)
{
    cs_gen_conf c = conf(12, 120000);
    c.ncustomers = 2000;
    c.churn = 20000;
    cs_gen_plan *pl = cs_gen_plan_new(&c);
    assert_non_null(pl);
    uint64_t h1[NP], n1[NP], h4[NP], n4[NP];
    with_threads(pl, 1, h1, n1);
    with_threads(pl, 4, h4, n4);
    for (int p = 0; p < NP; p++)
        assert_int_equal(h1[p], h4[p]);
    uint32_t U = c.ncustomers + c.churn;
    uint8_t *seen = calloc(U, 1); /* bit 0: first tenth, bit 1: last tenth, bit 2: anywhere */
    for (int p = 0; p < NP; p++) {
        cs_gen_pstream *s = cs_gen_pstream_new(pl, p);
        uint64_t n = cs_gen_plan_count(pl, p);
        cs_gen_msg m;
        while (cs_gen_pstream_next(s, &m)) {
            char id[24];
            snprintf(id, sizeof id, "%.*s", (int)m.keylen, m.key);
            /* ids: "c" + 7 digits, or 100000000 + id (gen.c custname) */
            uint32_t i = id[0] == 'c' ? (uint32_t)atol(id + 1) : (uint32_t)(atol(id) - 100000000);
            assert_true(i < U);
            seen[i] |= 4;
            if (m.index < n / 10)
                seen[i] |= 1;
            else if (m.index >= n - n / 10)
                seen[i] |= 2;
        }
        cs_gen_pstream_destroy(s);
    }
    uint32_t distinct = 0, first = 0, last = 0, both = 0;
    for (uint32_t i = 0; i < U; i++) {
        distinct += (seen[i] & 4) != 0;
        first += seen[i] & 1;
        last += (seen[i] & 2) != 0;
        both += (seen[i] & 3) == 3;
    }
    fprintf(stderr, "   %u distinct customers (%u active at a time), %u in the first tenth, %u in "
                    "the last, %u in both\n",
            distinct, c.ncustomers, first, last, both);
    assert_true(distinct > 5 * c.ncustomers);
    assert_true(first > 0 && last > 0);
    assert_true(both <= first / 100);
    free(seen);
    cs_gen_plan_free(pl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(churn_customers_arrive_and_fall_silent),
        cmocka_unit_test(same_bytes_for_1_2_and_4_threads),
        cmocka_unit_test(skip_count_parts_add_up),
        cmocka_unit_test(properties_per_partition),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
