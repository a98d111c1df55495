/* fuzz_snapshot.c — libFuzzer target for the snapshot reader (pipeline/snapshot.c).
 *
 * Every input is read twice with cs_snapshot_read(): as it is (random bytes mostly stop at
 * the magic, version or checksum), and re-sealed (cs_snapshot_seal recomputes the XXH3-64
 * trailer) so that the parser behind the checksum sees the fuzzer's edits. Each read must
 * either fail with errstr "snapshot..." or give a pstate for which:
 *  - cs_pstate_stats and cs_pstate_max_time agree with the cs_snap_info it filled in;
 *  - re-serialising it gives the input byte for byte (the format is canonical and the reader
 *    accepts only canonical encodings), unless a dimension dictionary filled up (then values
 *    became _other and only a successful write is required);
 *  - it survives what a daemon does with it: events for new customers, watermarks advanced in
 *    steps up to far past every deadline, end_all, and the aggregate balances (every restored
 *    and every new session ended exactly once, the active gauge back to its start);
 *  - it is destroyed without leaks (ASan's leak checker).
 * Dictionaries are fresh for every read so runs are independent.
 *
 *   make fuzz   (or: build-fuzz/fuzz_snapshot -max_total_time=60 -max_len=70000 \
 *                    build-fuzz/corpus-fuzz_snapshot tests/fuzz/corpus/snapshot)
 *
 * Seed corpus: tests/fuzz/corpus/snapshot/ was written by this file's seed generator (the four
 * v1 seeds by the build of that time; identity_*.bin, v3, SPEC 3.1, by this one):
 *   cc -std=c11 -D_GNU_SOURCE -DCS_FUZZ_SEED_MAIN -Iinclude -Ipipeline -o /tmp/snapseed \
 *      tests/fuzz/fuzz_snapshot.c pipeline/{aggregate,classify,decode,engine,formats,redisurl,\
 *      sessionize,snapshot,timeto,yamldoc,parse,log,kprops,rkeys}.c \
 *      -lxxhash -lyaml -lcrypto -lm -pthread && /tmp/snapseed tests/fuzz/corpus/snapshot
 * Every input is read with the rules below and with the same rules plus identity: (v3).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregate.h"
#include "classify.h"
#include "sessionize.h"
#include "snapshot.h"

static const char *yaml =
    "journey: fuzz\n"
    "stages: [awareness, consideration, purchase, service, loyalty]\n"
    "session: { gap: 30m, max_duration: 2h, lateness: 30s }\n"
    "customer_ttl: 2d\n"
    "dimensions:\n"
    "  channel: { max_values: 8 }\n"
    "  persona: { path: properties.persona, max_values: 4 }\n"
    "rules:\n"
    "  - { name: land, stage: awareness, match: { event: [page], channel: [social, search] } }\n"
    "  - { name: research, stage: consideration, match: { event: [product_view] } }\n"
    "  - { name: buy, stage: purchase, match: { event: [checkout_started] } }\n"
    "  - { name: support, stage: service, match: { event: [support_chat] } }\n"
    "  - { name: advocacy, stage: loyalty, match: { event: [referral_sent] } }\n";

/* k = 0: the rules above; k = 1: the same with SPEC 3.1 identity: (snapshot v3: keys without a
 * journey, aliases). Every input is read with both: v1 rules refuse v3, identity rules read
 * v1, v2 and v3. */
static cs_ruleset *rules_at(int k)
{
    static cs_ruleset *rs[2];
    if (!rs[k]) {
        char err[256], y[4096];
        snprintf(y, sizeof y, "%s%s", yaml, k ? "identity: {}\n" : "");
        rs[k] = cs_rules_load_string(y, strlen(y), "fuzz.yaml", err, sizeof err);
        if (!rs[k]) {
            fprintf(stderr, "%s\n", err);
            abort();
        }
    }
    return rs[k];
}

static int64_t sat(int64_t a, int64_t b)
{
    int64_t r;
    return __builtin_add_overflow(a, b, &r) ? (b > 0 ? INT64_MAX : INT64_MIN) : r;
}

/* person: NULL for v1 rules; with identity rules, "" for a device alone, else the person id
 * the event carries too (its login, an alias, maybe a merge or a conflict) */
static void feed_id(cs_pstate *p, cs_sessctx *c, const char *cust, const char *person,
                    const char *event, const char *channel, int64_t t)
{
    cs_decoded ev;
    memset(&ev, 0, sizeof ev);
    ev.f[CS_F_CUSTOMER].p = cust;
    ev.f[CS_F_CUSTOMER].len = (uint32_t)strlen(cust);
    if (person) {
        ev.idf = CS_ID_DEVICE;
        if (*person) {
            int pf = cs_decode_plan_person_field(cs_rules_plan(c->rs));
            ev.f[pf].p = person;
            ev.f[pf].len = (uint32_t)strlen(person);
            ev.idf |= CS_ID_PERSON;
        }
    }
    ev.f[CS_F_EVENT].p = event;
    ev.f[CS_F_EVENT].len = (uint32_t)strlen(event);
    if (channel) {
        ev.f[CS_F_CHANNEL].p = channel;
        ev.f[CS_F_CHANNEL].len = (uint32_t)strlen(channel);
    }
    ev.ts_ms = t;
    ev.ts_from_msg = 1;
    cs_sessionize(p, c, &ev);
}

static void feed(cs_pstate *p, cs_sessctx *c, const char *cust, const char *event,
                 const char *channel, int64_t t)
{
    feed_id(p, c, cust, cs_rules_identity(c->rs) ? "" : NULL, event, channel, t);
}

static void try_read(const char *buf, size_t n, int k)
{
    cs_ruleset *rs = rules_at(k);
    int nd = cs_rules_ndims(rs), ns = cs_rules_nstages(rs);
    cs_dimdict_mpmc dicts[CS_MAX_DIMS];
    for (int d = 0; d < nd; d++)
        if (cs_dimdict_init(&dicts[d], cs_rules_dim(rs, d)->max_values))
            abort();
    char err[256] = "X";
    cs_snap_info info;
    cs_pstate *p = cs_snapshot_read(buf, n, rs, dicts, &info, err, sizeof err);
    if (!p) {
        if (strncmp(err, "snapshot", 8) != 0 || strlen(err) < 20)
            abort();
        goto out;
    }

    cs_pstate_stats st;
    cs_pstate_stats_get(p, &st);
    if (st.sessions != info.sessions || st.customers != info.customers ||
        cs_pstate_max_time(p) != info.max_t || info.sessions > info.customers)
        abort();

    /* canonical: the same bytes again */
    int full = 0;
    for (int d = 0; d < nd; d++)
        full |= atomic_load(&dicts[d].count) >= dicts[d].max_values;
    cs_snap_info wi = {.next_offset = info.next_offset, .applied_wm = info.applied_wm};
    char *out = NULL;
    size_t outlen = 0;
    if (cs_snapshot_write(p, rs, dicts, &wi, &out, &outlen) != 0)
        abort();
    if (!k && n >= 6 && (unsigned char)buf[4] == 3)
        abort(); /* v1 rules must refuse v3 */
    /* a v1 snapshot (still read, with stand-in times) is re-written as v2: canonical is then
     * the v2 bytes, which must read back and re-write to themselves */
    const int v1 = n >= 6 && (unsigned char)buf[4] == 1 && buf[5] == 0;
    if (!full && !v1 && (outlen != n || memcmp(out, buf, n) != 0)) {
        fprintf(stderr, "re-serialised snapshot differs (%zu vs %zu bytes)\n", outlen, n);
        abort();
    }
    if (v1 && !full) {
        cs_snap_info i2;
        char e2[256];
        cs_pstate *p2 = cs_snapshot_read(out, outlen, rs, dicts, &i2, e2, sizeof e2);
        if (!p2) {
            fprintf(stderr, "v1 re-written as v2 rejected: %s\n", e2);
            abort();
        }
        char *o2 = NULL;
        size_t l2 = 0;
        cs_snap_info w2 = {.next_offset = i2.next_offset, .applied_wm = i2.applied_wm};
        if (cs_snapshot_write(p2, rs, dicts, &w2, &o2, &l2) != 0 || l2 != outlen ||
            memcmp(o2, out, l2) != 0)
            abort();
        free(o2);
        cs_pstate_destroy(p2);
    }
    if (wi.sessions != info.sessions || wi.customers != info.customers || wi.max_t != info.max_t)
        abort();
    free(out);

    /* what a daemon does with it; first the restored customer journeys (keys without one, SPEC
     * 3.1, are not counted) */
    int64_t journeys = 0;
    for (uint32_t it = cs_pstate_iter(p, 0, NULL); it; it = cs_pstate_iter(p, it, NULL)) {
        cs_pstate_entry je;
        cs_pstate_entry_get(p, it, &je);
        journeys += !je.nojourney;
    }
    cs_agg agg;
    if (cs_agg_init(&agg, rs))
        abort();
    cs_sessctx c = {.rs = rs, .agg = &agg, .dicts = dicts, .W = INT64_MIN};
    int64_t base = info.max_t == INT64_MIN ? 1793520000000LL : info.max_t;
    /* new customers' events at a sane time near max_t (sessionize's own arithmetic is not what
     * this target tests; times near INT64_MIN are the decoder's and the engine's business) */
    if (base < -((int64_t)1 << 60))
        base = -((int64_t)1 << 60);
    if (base > ((int64_t)1 << 60))
        base = (int64_t)1 << 60;
    if (info.applied_wm != INT64_MIN && info.applied_wm < base) {
        c.W = info.applied_wm;
        cs_pstate_advance(p, &c);
    }
    /* New events only when every restored time is sane too: the fuzzer can plant the hash of
     * "fuzz-a" (it sees the index's compares), and sessionize's join test `t < start - gap` is
     * not saturating (a customer whose session starts near INT64_MIN; events can make one too,
     * so it is sessionize's business, not the snapshot reader's). */
    int sane = 1;
    cs_pstate_entry e;
    for (uint32_t it = cs_pstate_iter(p, 0, NULL); it; it = cs_pstate_iter(p, it, NULL)) {
        cs_pstate_entry_get(p, it, &e);
        if (e.last < -((int64_t)1 << 60) || e.last > ((int64_t)1 << 60) ||
            (e.has_session && e.s_last - (int64_t)e.s_span < -((int64_t)1 << 60)))
            sane = 0;
    }
    if (sane) {
        feed(p, &c, "fuzz-a", "page", "social", base);
        feed(p, &c, "fuzz-b", "checkout_started", "email", sat(base, -5 * 60000));
        if (k) { /* SPEC 3.1: a login (alias, merge), a conflict, the alias used */
            feed_id(p, &c, "fuzz-a", "fuzz-p", "product_view", NULL, sat(base, 1000));
            feed_id(p, &c, "fuzz-a", "fuzz-q", "page", NULL, sat(base, 2000));
            feed_id(p, &c, "fuzz-a", "", "checkout_started", NULL, sat(base, 3000));
        }
    }
    static const int64_t steps[] = {-3600000LL, 1, 1800001LL, 7200001LL, 3 * 86400000LL};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        int64_t W = sat(base, steps[i]);
        if (W > c.W) {
            c.W = W;
            cs_pstate_advance(p, &c);
        }
    }
    cs_pstate_end_all(p, &c, CS_END_SHUTDOWN);
    cs_pstate_advance(p, &c);
    cs_pstate_stats_get(p, &st);
    if (st.sessions != 0)
        abort();
    /* every session, restored or new, ended exactly once; active back where it started */
    if (agg.ended_n != (int64_t)info.sessions + agg.started)
        abort();
    int64_t active = 0, ended = 0;
    for (int s = 0; s <= ns; s++) {
        active += agg.active[s];
        ended += agg.ended[s];
    }
    if (active != -(int64_t)info.sessions || ended != agg.ended_n)
        abort();
    /* every journey, restored or new or merged, forgotten exactly once (3 days past a 2-day
     * customer_ttl): the customers gauge ends at minus the restored journeys */
    int64_t cust = 0;
    for (int s = 0; s <= ns; s++)
        cust += agg.customers[s];
    if (sane && info.max_t == base && cust != -journeys) {
        fprintf(stderr, "rules %d: customers gauge %lld, restored journeys %lld\n", k, (long long)cust,
                (long long)journeys);
        abort();
    }
    cs_agg_free(&agg);
    cs_pstate_destroy(p);
out:
    for (int d = 0; d < nd; d++)
        cs_dimdict_free(&dicts[d]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* exact-size copies, so ASan sees any read past the end */
    char *b = malloc(size ? size : 1);
    if (!b)
        return 0;
    memcpy(b, data, size);
    for (int k = 0; k < 2; k++) {
        try_read(b, size, k);
        if (size >= 8) {
            cs_snapshot_seal(b, size);
            try_read(b, size, k);
        }
    }
    free(b);
    return 0;
}

#ifdef CS_FUZZ_SEED_MAIN
/* The seed corpus: a few real snapshots of states made by events. */
static void write_seed(const char *dir, const char *name, cs_pstate *p, cs_dimdict_mpmc *dicts,
                       int64_t W, const cs_ruleset *rs)
{
    char *buf;
    size_t n;
    cs_snap_info info = {.next_offset = 42, .applied_wm = W};
    if (cs_snapshot_write(p, rs, dicts, &info, &buf, &n))
        abort();
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, n, f) != n || fclose(f))
        abort();
    printf("%s: %zu bytes, %llu customers, %llu sessions\n", path, n,
           (unsigned long long)info.customers, (unsigned long long)info.sessions);
    free(buf);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : ".";
    static const char *const chan[] = {"social", "search", "email", "print", "display",
                                       "tv", "radio", "sms", "push", "affiliate"};
    static const char *const evn[] = {"page", "product_view", "checkout_started",
                                      "support_chat", "referral_sent", "scroll"};
    for (int k = 0; k < 6; k++) { /* 4, 5: SPEC 3.1 identity (v3) */
        cs_ruleset *rs = rules_at(k >= 4);
        cs_dimdict_mpmc dicts[CS_MAX_DIMS];
        for (int d = 0; d < cs_rules_ndims(rs); d++)
            cs_dimdict_init(&dicts[d], cs_rules_dim(rs, d)->max_values);
        cs_agg agg;
        cs_agg_init(&agg, rs);
        cs_sessctx c = {.rs = rs, .agg = &agg, .dicts = dicts, .W = INT64_MIN};
        cs_pstate *p = cs_pstate_new(cs_rules_session(rs), cs_rules_ndims(rs));
        const int64_t t0 = 1793520000000LL;
        int ncust = k == 0 ? 0 : k == 1 ? 3 : k == 2 || k == 4 ? 12 : 40;
        uint64_t s = 12345 + (uint64_t)k;
        int64_t t = t0;
        for (int i = 0; i < ncust * 4; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            char cust[16];
            snprintf(cust, sizeof cust, "c%d", (int)((s >> 33) % (uint64_t)ncust));
            t += (int64_t)((s >> 20) % 600000);
            char person[16] = "";
            if (k >= 4 && (s >> 52) % 3 == 0) /* logins; now and then another person */
                snprintf(person, sizeof person, "u%d",
                         (int)((s >> 33) % (uint64_t)ncust) / 2 + ((s >> 56) % 8 == 0));
            feed_id(p, &c, cust, k >= 4 ? person : NULL, evn[(s >> 40) % 6],
                    (s >> 50) % 3 ? chan[(s >> 45) % 10] : NULL, (s >> 60) == 0 ? t - 1200000 : t);
            if (i % 5 == 4) {
                c.W = t - 30000;
                cs_pstate_advance(p, &c);
            }
        }
        static const char *const names[] = {"empty.bin",       "three.bin",
                                            "twelve.bin",      "forty_other.bin",
                                            "identity_twelve.bin", "identity_forty.bin"};
        write_seed(dir, names[k], p, dicts, c.W, rs);
        cs_pstate_destroy(p);
        cs_agg_free(&agg);
        for (int d = 0; d < cs_rules_ndims(rs); d++)
            cs_dimdict_free(&dicts[d]);
    }
    return 0;
}
#endif
