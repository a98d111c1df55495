/* fuzz_formats.c — libFuzzer target for SPEC §1.1 (issue 19): every input surface the formats
 * added, each against a reference written apart from pipeline/decode.c.
 *
 *  - Time units: the input as a time value (a JSON number or string) in each unit (ms, s, us,
 *    ns, auto), inside an event; the decoder's time and verdict against ref_time.h (128-bit
 *    arithmetic over the significant digits), and the JSON validity of the value against
 *    cJSON (a value cJSON rejects must be not_json).
 *  - Snowplow enriched TSV: the input as one message with the snowplow-enriched preset and a
 *    few dimensions; against a plain split on tabs: not_tsv exactly when the column count is
 *    not 131, the first non-empty column of each field's list, the time parsed by
 *    cs_parse_rfc3339 on the same text with a 'Z', the precedence of the reasons.
 *  - The rule file's format:/fields.time_unit keys: any text there loads or gives one error
 *    line with a position (never a crash).
 * The first input byte picks the surface. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "classify.h"
#include "decode.h"
#include "formats.h"
#include "ref_time.h"

#define KTS 1793520000000LL

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_formats: %s:%d: check failed: %s\n  ", __FILE__, __LINE__,     \
                    #cond);                                                                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static cs_decode_plan *unit_plan[CS_TU__COUNT];
static cs_decoder *unit_dec[CS_TU__COUNT];
static cs_ruleset *sp_rules;
static cs_decoder *sp_dec;
static int sp_cust[3], sp_ev[2], sp_time[3], sp_dim_col[2], sp_dim_field[2];

static void init(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    for (int u = 0; u < CS_TU__COUNT; u++) {
        unit_plan[u] = cs_decode_plan_new();
        cs_decode_plan_set_time_unit(unit_plan[u], u);
        unit_dec[u] = cs_decoder_new(unit_plan[u]);
    }
    static const char y[] = "journey: f\nstages: [a]\nformat: snowplow-enriched\n"
                            "session: {max_future: 0}\n"
                            "dimensions:\n  persona: {path: mkt_content}\n  label: {path: se_label}\n";
    char err[256];
    sp_rules = cs_rules_load_string(y, sizeof y - 1, "f.yaml", err, sizeof err);
    if (!sp_rules) {
        fprintf(stderr, "%s\n", err);
        abort();
    }
    sp_dec = cs_decoder_new(cs_rules_plan(sp_rules));
    static const char *const c[] = {"user_id", "domain_userid", "network_userid"};
    static const char *const e[] = {"se_action", "event_name"};
    static const char *const t[] = {"derived_tstamp", "dvce_created_tstamp", "collector_tstamp"};
    for (int i = 0; i < 3; i++) {
        sp_cust[i] = cs_snowplow_column(c[i], strlen(c[i]));
        sp_time[i] = cs_snowplow_column(t[i], strlen(t[i]));
    }
    for (int i = 0; i < 2; i++)
        sp_ev[i] = cs_snowplow_column(e[i], strlen(e[i]));
    sp_dim_col[0] = cs_snowplow_column("mkt_content", 11);
    sp_dim_col[1] = cs_snowplow_column("se_label", 8);
    for (int i = 0; i < 2; i++)
        sp_dim_field[i] = cs_rules_dim(sp_rules, i)->field;
}

/* ---- time units ---------------------------------------------------------------------------- */

static void fuzz_time(const uint8_t *d, size_t n)
{
    if (n > 4096)
        return;
    char *msg = malloc(n + 64);
    int k = snprintf(msg, 64, "{\"userId\":\"u\",\"event\":\"e\",\"timestamp\":");
    memcpy(msg + k, d, n);
    memcpy(msg + k + n, "}", 2);
    size_t len = (size_t)k + n + 1;
    /* is the value one JSON value? cJSON on the value alone (it must be a whole text) */
    char *z = malloc(n + 1);
    memcpy(z, d, n);
    z[n] = 0;
    const char *end = NULL;
    cJSON *v = memchr(d, 0, n) ? NULL : cJSON_ParseWithOpts(z, &end, 1);
    int is_num = v && cJSON_IsNumber(v);
    int is_str = v && cJSON_IsString(v);
    for (int u = 0; u < CS_TU__COUNT; u++) {
        static cs_decoded o;
        cs_invalid r = cs_decode(unit_dec[u], msg, len, 4242, &o);
        if (!v) /* not one JSON value (or more than one once embedded): fuzz_decode's */
            continue;
        if (r == CS_INV_NOT_JSON || r == CS_INV_TOO_DEEP)
            continue; /* one of cJSON's leniencies (fuzz_decode checks those) */
        int64_t want = 0;
        int ok;
        if (is_num) {
            ok = ref_num_time((const char *)d + strspn((const char *)z, " \t\r\n"),
                              strcspn(z + strspn(z, " \t\r\n"), " \t\r\n"), 1, u, &want) == 0;
        } else if (is_str) {
            const char *s = v->valuestring;
            size_t sl = strlen(s);
            if (memchr(d, '\\', n) || sl == 0) {
                continue; /* escapes and "" are fuzz_decode's */
            } else if (sl >= 20 && s[4] == '-') {
                ok = cs_parse_rfc3339(s, sl, &want) == 0;
            } else {
                ok = ref_num_time(s, sl, 0, u, &want) == 0;
            }
        } else if (cJSON_IsBool(v)) {
            ok = 0;
        } else {
            /* null, object, array: absent, the fallback */
            CHECK(r == CS_DECODE_OK && o.ts_ms == 4242 && !o.ts_from_msg, "absent time: %s %lld",
                  cs_invalid_name(r), (long long)o.ts_ms);
            continue;
        }
        if (ok) {
            CHECK(r == CS_DECODE_OK && o.ts_ms == want && o.ts_from_msg,
                  "unit %s, value <%.*s>: decoder %s %lld, reference %lld", cs_time_unit_name(u),
                  (int)n, (const char *)d, cs_invalid_name(r), (long long)o.ts_ms,
                  (long long)want);
        } else {
            CHECK(r == CS_INV_BAD_TIME, "unit %s, value <%.*s>: decoder %s, reference bad_time",
                  cs_time_unit_name(u), (int)n, (const char *)d, cs_invalid_name(r));
        }
    }
    cJSON_Delete(v);
    free(z);
    free(msg);
}

/* ---- Snowplow TSV ------------------------------------------------------------------------ */

static int ref_sp_time(const char *s, size_t n, int64_t *ms)
{
    /* "YYYY-MM-DD hh:mm:ss[.digits]": the RFC 3339 reader on the text plus 'Z', every fraction
     * digit kept (the RFC 3339 reader truncates) */
    if (n < 19 || n > 8192)
        return -1;
    if (n > 19) {
        if (s[19] != '.' || n == 20)
            return -1;
        for (size_t i = 20; i < n; i++)
            if (s[i] < '0' || s[i] > '9')
                return -1;
    }
    char *b = malloc(n + 2);
    memcpy(b, s, n);
    b[n] = 'Z';
    int rc = cs_parse_rfc3339(b, n + 1, ms);
    free(b);
    return rc;
}

static void fuzz_tsv(const uint8_t *d, size_t n)
{
    static cs_decoded o;
    cs_invalid r = cs_decode(sp_dec, (const char *)d, n, KTS, &o);
    if (n > CS_DEFAULT_MAX_BYTES) {
        CHECK(r == CS_INV_TOO_LARGE, "%zu bytes: %s", n, cs_invalid_name(r));
        return;
    }
    size_t len = n;
    if (len && d[len - 1] == '\n') {
        len--;
        if (len && d[len - 1] == '\r')
            len--;
    }
    size_t cs[CS_SNOWPLOW_NCOLS], ce[CS_SNOWPLOW_NCOLS];
    int cols = 0;
    size_t st = 0;
    for (size_t i = 0; i <= len; i++)
        if (i == len || d[i] == '\t') {
            if (cols < CS_SNOWPLOW_NCOLS)
                cs[cols] = st, ce[cols] = i;
            cols++;
            st = i + 1;
        }
    if (cols != CS_SNOWPLOW_NCOLS) {
        CHECK(r == CS_INV_NOT_TSV, "%d columns: %s", cols, cs_invalid_name(r));
        for (int f = 0; f < cs_decode_plan_nfields(cs_rules_plan(sp_rules)); f++)
            CHECK(o.f[f].len == 0, "not_tsv with field %d", f);
        return;
    }
#define FIRST(arr, k, out)                                                                         \
    do {                                                                                           \
        out = -1;                                                                                  \
        for (int i_ = 0; i_ < (k) && out < 0; i_++)                                                \
            if (ce[arr[i_]] > cs[arr[i_]])                                                         \
                out = arr[i_];                                                                     \
    } while (0)
    int cc, ec, tc;
    FIRST(sp_cust, 3, cc);
    FIRST(sp_ev, 2, ec);
    FIRST(sp_time, 3, tc);
    cs_invalid want = CS_DECODE_OK;
    int64_t t = KTS;
    if (cc < 0)
        want = CS_INV_NO_CUSTOMER;
    else if (ec < 0)
        want = CS_INV_NO_EVENT;
    else if (tc >= 0 && ref_sp_time((const char *)d + cs[tc], ce[tc] - cs[tc], &t) != 0)
        want = CS_INV_BAD_TIME;
    else if (t < CS_MIN_EVENT_TIME_MS)
        want = CS_INV_BAD_TIME;
    CHECK(r == want, "decoder %s, reference %s", cs_invalid_name(r), cs_invalid_name(want));
    if (cc >= 0) {
        CHECK(o.f[CS_F_CUSTOMER].p == (const char *)d + cs[cc] &&
                  o.f[CS_F_CUSTOMER].len == ce[cc] - cs[cc],
              "customer column");
    }
    if (want == CS_DECODE_OK) {
        CHECK(o.f[CS_F_EVENT].p == (const char *)d + cs[ec], "event column");
        CHECK(o.ts_ms == t && o.ts_from_msg == (tc >= 0), "time %lld vs %lld", (long long)o.ts_ms,
              (long long)t);
        for (int i = 0; i < 2; i++) {
            const cs_sv *v = &o.f[sp_dim_field[i]];
            size_t w = ce[sp_dim_col[i]] - cs[sp_dim_col[i]];
            CHECK(v->len == w && (!w || v->p == (const char *)d + cs[sp_dim_col[i]]),
                  "dimension %d", i);
        }
    }
}

/* ---- the rule file's format keys ------------------------------------------------------------ */

static void fuzz_rules_keys(const uint8_t *d, size_t n)
{
    if (n > 512)
        return;
    char y[1024];
    int k = snprintf(y, sizeof y, "journey: f\nstages: [a]\n");
    memcpy(y + k, d, n);
    char err[512];
    err[0] = 0;
    cs_ruleset *rs = cs_rules_load_string(y, (size_t)k + n, "f.yaml", err, sizeof err);
    if (rs) {
        CHECK(cs_decode_plan_format(cs_rules_plan(rs)) != NULL, "no format");
        cs_rules_destroy(rs);
    } else {
        CHECK(!strncmp(err, "f.yaml:", 7) && !strchr(err, '\n'), "error <%s>", err);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init();
    if (size == 0)
        return 0;
    switch (data[0] % 3) {
    case 0:
        fuzz_time(data + 1, size - 1);
        break;
    case 1:
        fuzz_tsv(data + 1, size - 1);
        break;
    default:
        fuzz_rules_keys(data + 1, size - 1);
        break;
    }
    return 0;
}
