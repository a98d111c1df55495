/* fuzz_rules.c — libFuzzer target for the rule file compiler (pipeline/classify.c).
 *
 * Arbitrary bytes go to cs_rules_load_string(). It must never crash, hang or leak, and:
 *  - on failure, errstr is "fuzz:LINE:COL: message" with LINE, COL >= 1, and no control byte;
 *  - on success, the table is self-consistent (stage indices in range, dimension fields inside
 *    the plan), and for a handful of events built from words of the input itself (so exact
 *    values and url patterns in the file get hit), the compiled matcher (hash tables + bitsets)
 *    agrees with the reference scan cs_rules_match_scan(). A couple of fixed JSON events also go
 *    through a decoder built from the ruleset's plan.
 *
 *   make fuzz   (or: build-fuzz/fuzz_rules -max_total_time=60 tests/fuzz/corpus/rules)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classify.h"
#include "decode.h"

#define MAX_WORDS 24

static int word_char(unsigned char c)
{
    return c > ' ' && c != ',' && c != '[' && c != ']' && c != '{' && c != '}' && c != '"' &&
           c != '\'' && c != ':' && c != '#';
}

static void check_err(const char *err)
{
    /* "fuzz:" digits ":" digits ": " */
    const char *p = err;
    if (strncmp(p, "fuzz:", 5) != 0)
        abort();
    p += 5;
    for (int part = 0; part < 2; part++) {
        if (*p < '1' || *p > '9')
            abort();
        while (*p >= '0' && *p <= '9')
            p++;
        if (*p != ':')
            abort();
        p++;
    }
    if (*p != ' ' || p[1] == '\0')
        abort();
    /* one line of a log: the file's own bytes are quoted with control bytes as '?' (a property
     * path with a newline made a match key's message three lines) */
    for (; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    err[0] = 'X';
    cs_ruleset *rs = cs_rules_load_string((const char *)data, size, "fuzz", err, sizeof err);
    if (!rs) {
        check_err(err);
        return 0;
    }

    /* consistency */
    int ns = cs_rules_nstages(rs), nr = cs_rules_nrules(rs), nd = cs_rules_ndims(rs);
    const cs_decode_plan *plan = cs_rules_plan(rs);
    int nf = cs_decode_plan_nfields(plan);
    if (ns < 1 || ns > CS_MAX_STAGES || nr < 0 || nr > CS_MAX_RULES || nd < 0 || nd > CS_MAX_DIMS ||
        nf < CS_F_NSTD || nf > CS_MAX_FIELDS || strlen(cs_rules_sha256(rs)) != 64 ||
        !cs_rules_journey(rs)[0])
        abort();
    for (int i = 0; i < ns; i++)
        if (cs_rules_stage_index(rs, cs_rules_stage_name(rs, i)) != i)
            abort();
    for (int r = 0; r < nr; r++) {
        int st = cs_rules_rule_stage(rs, r);
        if (st < 0 || st >= ns || !cs_rules_rule_name(rs, r)[0])
            abort();
    }
    for (int i = 0; i < nd; i++) {
        const cs_dim_conf *d = cs_rules_dim(rs, i);
        if (d->field < 0 || d->field >= nf || d->max_values < 1 || d->max_values > CS_MAX_DIM_VALUES)
            abort();
    }
    for (int i = 0; i < cs_rules_nprops(rs); i++)
        if (cs_rules_prop_field(rs, i) < CS_F_NSTD || cs_rules_prop_field(rs, i) >= nf)
            abort();
    const cs_session_conf *sc = cs_rules_session(rs);
    if (sc->gap_ms <= 0 || sc->max_duration_ms < 0 || sc->lateness_ms < 0 ||
        sc->idle_close_ms <= 0 || sc->customer_ttl_ms <= 0)
        abort();

    /* events made of words of the input */
    const char *w[MAX_WORDS];
    uint32_t wl[MAX_WORDS];
    int nw = 0;
    for (size_t i = 0; i < size && nw < MAX_WORDS;) {
        while (i < size && !word_char(data[i]))
            i++;
        size_t s = i;
        while (i < size && word_char(data[i]))
            i++;
        if (i > s) {
            w[nw] = (const char *)data + s;
            wl[nw] = (uint32_t)(i - s);
            nw++;
        }
    }
    static cs_decoded ev;
    for (int k = 0; k < 16 && nw > 0; k++) {
        memset(&ev, 0, sizeof ev);
        for (int f = 0; f < nf; f++) {
            uint32_t pick = (uint32_t)(k * 7 + f * 13 + (k >> 1) * f) % (uint32_t)(nw + 2);
            if (pick < (uint32_t)nw) {
                ev.f[f].p = w[pick];
                ev.f[f].len = wl[pick];
            }
        }
        int a = cs_rules_match(rs, &ev), b = cs_rules_match_scan(rs, &ev);
        if (a != b) {
            fprintf(stderr, "cs_rules_match %d != cs_rules_match_scan %d (event %d)\n", a, b, k);
            abort();
        }
        if (a >= 0 && !cs_rules_rule_test(rs, a, &ev, NULL, 0))
            abort();
        if (cs_rules_classify(rs, &ev) != (a < 0 ? -1 : cs_rules_rule_stage(rs, a)))
            abort();
    }

    static const char *const msgs[] = {
        "{\"userId\":\"u1\",\"event\":\"page\",\"channel\":\"social\",\"url\":\"https://s/reviews/1\","
        "\"properties\":{\"persona\":\"young\",\"plan\":\"free\"},\"timestamp\":1700000000000}",
        "{\"anonymousId\":42,\"type\":\"checkout_started\",\"context\":{\"page\":{\"url\":\"/a\"}}}",
    };
    cs_decoder *dec = cs_decoder_new(plan);
    if (dec) {
        for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++)
            if (cs_decode(dec, msgs[i], strlen(msgs[i]), 1793520000000LL, &ev) == CS_DECODE_OK &&
                cs_rules_match(rs, &ev) != cs_rules_match_scan(rs, &ev))
                abort();
        cs_decoder_destroy(dec);
    }
    cs_rules_destroy(rs);
    return 0;
}
