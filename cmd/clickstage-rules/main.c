/* clickstage-rules — validate a rule file and explain how an event is classified (SPEC §2, §5).
 *
 *   clickstage-rules check FILE
 *   clickstage-rules explain [-v] [--message-time T] FILE EVENT_JSON|@PATH|-
 *
 * Exit status: 0 ok; 1 the rule file is invalid (FILE:LINE:COL: message on stderr); 2 the event
 * is invalid (explain); 64 usage error.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "classify.h"
#include "formats.h"
#include "decode.h"
#include "parse.h"

#define EXIT_RULES 1
#define EXIT_EVENT 2
#define EXIT_USAGE 64

static void usage(FILE *out)
{
    fprintf(out,
            "usage: clickstage-rules check FILE\n"
            "       clickstage-rules explain [-v] [--message-time T] FILE EVENT\n"
            "       clickstage-rules --help\n"
            "\n"
            "Commands:\n"
            "  check FILE           validate the rule file FILE (SPEC §2) and print a one-line\n"
            "                       summary: journey, stages, rules, dimensions, sha256.\n"
            "  explain FILE EVENT   decode EVENT with FILE's decode plan and print the decoded\n"
            "                       fields (customer, event, time, url, channel, each dimension,\n"
            "                       each property the rules use), then the first matching rule\n"
            "                       and its stage, or \"unclassified\".\n"
            "                       EVENT is a JSON object as one argument, @PATH to read it from\n"
            "                       a file, or - to read it from standard input.\n"
            "\n"
            "Options:\n"
            "  -v, --verbose        explain: also print, for every rule before the match, the\n"
            "                       first match key that rejected the event.\n"
            "  --message-time T     explain: the Kafka message timestamp to decode the event\n"
            "                       with (epoch ms or RFC 3339; default: the current time).\n"
            "                       It is the event time when the event has no time field, and\n"
            "                       what session.max_future bounds the event time against.\n"
            "  -h, --help           print this help and exit.\n"
            "\n"
            "An event without a time field is given the message time (the daemon uses the\n"
            "Kafka message timestamp). An event time more than session.max_future ahead of the\n"
            "message time, or of this machine's clock, is invalid: future_time.\n"
            "\n"
            "Exit status: 0 ok; 1 invalid rule file (FILE:LINE:COL: message on stderr);\n"
            "2 invalid event (explain; the reason is printed); 64 usage error.\n"
            "Reference: docs/rules.md\n");
}

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "clickstage-rules: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\ntry 'clickstage-rules --help'\n");
    return EXIT_USAGE;
}

static char *read_all(FILE *f, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n == cap) {
            char *nb = cap > (64u << 20) ? NULL : realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    if (buf && ferror(f)) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

/* Values longer than this are shown cut, with their length: a 100 KB customer id is one
 * unreadable line otherwise (the match uses the whole value, and so does the daemon). */
#define SHOW_MAX 512

/* Prints bytes as a JSON-ish quoted string, escaping quotes, backslashes and control bytes. */
static void print_value(const cs_sv *v)
{
    if (v->len == 0) {
        fputs("(absent)", stdout);
        return;
    }
    uint32_t show = v->len > SHOW_MAX ? SHOW_MAX : v->len;
    putchar('"');
    for (uint32_t i = 0; i < show; i++) {
        unsigned char ch = (unsigned char)v->p[i];
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
    if (show < v->len)
        printf("... (%u bytes, first %d shown)", v->len, SHOW_MAX);
    if (v->kind == CS_SV_NUM)
        fputs(" (number)", stdout);
    else if (v->kind == CS_SV_BOOL)
        fputs(" (boolean)", stdout);
}

static void format_rfc3339(int64_t ms, char *out, size_t len)
{
    int64_t sec = ms / 1000, frac = ms % 1000;
    if (frac < 0) {
        frac += 1000;
        sec -= 1;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        snprintf(out, len, "(out of range)");
        return;
    }
    snprintf(out, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
}

static cs_ruleset *load(const char *path)
{
    char err[1024];
    cs_ruleset *rs = cs_rules_load_file(path, err, sizeof err);
    if (!rs)
        fprintf(stderr, "%s\n", err);
    return rs;
}

static int cmd_check(const char *path)
{
    cs_ruleset *rs = load(path);
    if (!rs)
        return EXIT_RULES;
    printf("%s: ok: journey %s, %d stages (", path, cs_rules_journey(rs), cs_rules_nstages(rs));
    for (int i = 0; i < cs_rules_nstages(rs); i++)
        printf("%s%s", i ? " > " : "", cs_rules_stage_name(rs, i));
    printf("), %d rules, %d dims", cs_rules_nrules(rs), cs_rules_ndims(rs));
    for (int i = 0; i < cs_rules_ndims(rs); i++)
        printf("%s%s", i ? "," : " (", cs_rules_dim(rs, i)->name);
    const cs_decode_plan *pl = cs_rules_plan(rs);
    printf("%s, format %s", cs_rules_ndims(rs) ? ")" : "", cs_decode_plan_format(pl)->name);
    if (cs_decode_plan_time_unit(pl) != cs_decode_plan_format(pl)->time_unit)
        printf(" (time_unit %s)", cs_time_unit_name(cs_decode_plan_time_unit(pl)));
    if (cs_rules_identity(rs)) /* SPEC §3.1 */
        for (int k = 0; k < 2; k++) {
            const char *const *paths;
            int n = cs_rules_identity_paths(rs, k, &paths);
            printf("%s%s ", k ? "; " : ", identity (", k ? "person" : "device");
            for (int i = 0; i < n; i++)
                printf("%s%s", i ? "|" : "", paths[i]);
            if (k)
                putchar(')');
        }
    printf(", sha256 %s\n", cs_rules_sha256(rs));
    cs_rules_destroy(rs);
    return 0;
}

/* --message-time: epoch milliseconds or RFC 3339. */
static int parse_time_arg(const char *s, int64_t *ms)
{
    if (cs_parse_int64(s, strlen(s), ms) == 0)
        return 0;
    return cs_parse_rfc3339(s, strlen(s), ms);
}

static int cmd_explain(const char *path, const char *event, int verbose, const char *msg_time)
{
    size_t len = 0;
    char *buf = NULL;
    if (!strcmp(event, "-") || event[0] == '@') {
        FILE *f = !strcmp(event, "-") ? stdin : fopen(event + 1, "rb");
        if (!f) {
            fprintf(stderr, "clickstage-rules: %s: %s\n", event + 1, strerror(errno));
            return EXIT_USAGE;
        }
        buf = read_all(f, &len);
        if (f != stdin)
            fclose(f);
        if (!buf) {
            fprintf(stderr, "clickstage-rules: cannot read the event\n");
            return EXIT_USAGE;
        }
    } else {
        len = strlen(event);
        buf = malloc(len + 1);
        if (!buf)
            return EXIT_USAGE;
        memcpy(buf, event, len + 1);
    }
    /* a trailing newline from a file or a pipe is not part of the message */
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        len--;

    cs_ruleset *rs = load(path);
    if (!rs) {
        free(buf);
        return EXIT_RULES;
    }
    int rc = 0;
    cs_decoder *d = cs_decoder_new(cs_rules_plan(rs));
    if (!d) {
        fprintf(stderr, "clickstage-rules: out of memory\n");
        cs_rules_destroy(rs);
        free(buf);
        return EXIT_RULES;
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    int64_t kts = now_ms;
    if (msg_time && parse_time_arg(msg_time, &kts) != 0) {
        fprintf(stderr, "clickstage-rules: --message-time: '%s' is neither epoch ms nor RFC 3339\n",
                msg_time);
        rc = EXIT_USAGE;
        goto out;
    }
    static cs_decoded ev; /* large: keep it off the stack */
    cs_invalid inv = cs_decode(d, buf, len, kts, &ev);
    int64_t mf = cs_rules_session(rs)->max_future_ms;
    /* the daemon's second bound (pipeline/engine.c): the processor's own clock */
    if (inv == CS_DECODE_OK && mf > 0 && ev.ts_ms > now_ms && ev.ts_ms - now_ms > mf)
        inv = CS_INV_FUTURE_TIME;
    printf("rules:    %s (journey %s, sha256 %s)\n", path, cs_rules_journey(rs),
           cs_rules_sha256(rs));
    {
        const cs_decode_plan *pl = cs_rules_plan(rs);
        const cs_format *fmt = cs_decode_plan_format(pl);
        if (fmt->tsv)
            printf("format:   %s (Snowplow enriched TSV, %d columns; times 'YYYY-MM-DD "
                   "hh:mm:ss.fff' UTC)\n", fmt->name, CS_SNOWPLOW_NCOLS);
        else if (cs_decode_plan_time_unit(pl) == CS_TU_AUTO)
            printf("format:   %s (JSON; numeric times: auto, i.e. s below 1e11, ms below 1e14, us "
                   "below 1e17, else ns)\n", fmt->name);
        else
            printf("format:   %s (JSON; numeric times in %s)\n", fmt->name,
                   cs_time_unit_name(cs_decode_plan_time_unit(pl)));
    }
    char ts[64];
    if (inv != CS_DECODE_OK) {
        printf("invalid:  %s\n", cs_invalid_name(inv));
        if (inv == CS_INV_TOO_LARGE)
            printf("why:      the message is %zu bytes; limits.max_bytes is %zu (raise it, and "
                   "restart)\n",
                   len, cs_decode_plan_max_bytes(cs_rules_plan(rs)));
        if (inv == CS_INV_NOT_TSV) {
            size_t cols = 1, l = len;
            if (l && buf[l - 1] == '\n')
                l--;
            for (size_t i = 0; i < l; i++)
                cols += buf[i] == '\t';
            printf("why:      %zu tab-separated columns; Snowplow's enriched TSV has %d\n", cols,
                   CS_SNOWPLOW_NCOLS);
        }
        if (inv == CS_INV_FUTURE_TIME || inv == CS_INV_BAD_TIME) {
            char kb[64], nb[64];
            format_rfc3339(ev.ts_ms, ts, sizeof ts);
            format_rfc3339(kts, kb, sizeof kb);
            format_rfc3339(now_ms, nb, sizeof nb);
            if (inv == CS_INV_FUTURE_TIME)
                printf("why:      event time %s is more than session.max_future (%lld ms) ahead "
                       "of the message time %s or of this clock %s\n",
                       ts, (long long)mf, kb, nb);
            else if (ev.ts_ms < CS_MIN_EVENT_TIME_MS)
                printf("why:      event time %s is before 2000-01-01T00:00:00Z (a device clock "
                       "reset to the epoch?)\n", ts);
            else if (cs_decode_plan_format(cs_rules_plan(rs))->tsv)
                printf("why:      the time column is not 'YYYY-MM-DD hh:mm:ss[.fff]'\n");
            else
                printf("why:      the time field is neither RFC 3339 nor a number of %s (an "
                       "integer or a decimal fraction, within the int64 range of ms)\n",
                       cs_time_unit_name(cs_decode_plan_time_unit(cs_rules_plan(rs))));
        }
        rc = EXIT_EVENT;
        goto out;
    }
    format_rfc3339(ev.ts_ms, ts, sizeof ts);
    if (cs_rules_identity(rs)) { /* SPEC §3.1: the ids, the session key, the customer key */
        const cs_sv *pv = &ev.f[cs_decode_plan_person_field(cs_rules_plan(rs))];
        printf("device:   ");
        if (ev.idf & CS_ID_DEVICE)
            print_value(&ev.f[CS_F_CUSTOMER]);
        else
            fputs("(absent)", stdout);
        printf("\nperson:   ");
        if (ev.idf & CS_ID_PERSON)
            print_value(pv);
        else
            fputs(ev.idf & CS_ID_DEVICE ? "(absent, or equal to the device: no person)" : "(absent)",
                  stdout);
        printf("\nsession:  ");
        print_value(&ev.f[CS_F_CUSTOMER]);
        printf(ev.idf & CS_ID_DEVICE ? " (the device)" : " (the person: no device)");
        printf("\ncustomer: ");
        if (ev.idf & CS_ID_PERSON) {
            print_value(pv);
            printf(ev.idf & CS_ID_DEVICE ? " (the person; sets the device's alias if it has none)"
                                         : " (the person)");
        } else {
            printf("the device's alias if an earlier event set one, else ");
            print_value(&ev.f[CS_F_CUSTOMER]);
        }
    } else {
        printf("customer: ");
        print_value(&ev.f[CS_F_CUSTOMER]);
    }
    printf("\nevent:    ");
    print_value(&ev.f[CS_F_EVENT]);
    printf("\ntime:     %lld ms = %s%s\n", (long long)ev.ts_ms, ts,
           ev.ts_from_msg ? "" : " (no time field: the message time used)");
    printf("url:      ");
    print_value(&ev.f[CS_F_URL]);
    printf("\nchannel:  ");
    print_value(&ev.f[CS_F_CHANNEL]);
    putchar('\n');
    for (int i = 0; i < cs_rules_ndims(rs); i++) {
        const cs_dim_conf *dc = cs_rules_dim(rs, i);
        printf("dimension %s: ", dc->name);
        print_value(&ev.f[dc->field]);
        if (ev.f[dc->field].len == 0)
            fputs(" -> _unknown", stdout);
        putchar('\n');
    }
    for (int i = 0; i < cs_rules_nprops(rs); i++) {
        printf("property.%s: ", cs_rules_prop_name(rs, i));
        print_value(&ev.f[cs_rules_prop_field(rs, i)]);
        putchar('\n');
    }
    cs_match_stats work = {0};
    int r = cs_rules_match_stats(rs, &ev, &work);
    if (verbose) {
        int upto = r < 0 ? cs_rules_nrules(rs) : r;
        for (int i = 0; i < upto; i++) {
            char why[256];
            cs_rules_rule_test(rs, i, &ev, why, sizeof why);
            printf("  rule %d %s: no (%s)\n", i + 1, cs_rules_rule_name(rs, i), why);
        }
        int ux = cs_rules_url_indexed(rs);
        printf("work:     %llu candidate(s) tested after the exact keys",
               (unsigned long long)work.checked);
        if (ux)
            printf("; url index (%d of %d rules): %s", ux, cs_rules_nrules(rs),
                   work.url_passes ? "consulted" : "not needed");
        putchar('\n');
    }
    if (r < 0) {
        printf("rule:     none\nstage:    unclassified\n");
    } else {
        int st = cs_rules_rule_stage(rs, r);
        printf("rule:     %s (#%d of %d)\nstage:    %s (%d of %d)\n", cs_rules_rule_name(rs, r),
               r + 1, cs_rules_nrules(rs), cs_rules_stage_name(rs, st), st + 1,
               cs_rules_nstages(rs));
    }
out:
    cs_decoder_destroy(d);
    cs_rules_destroy(rs);
    free(buf);
    return rc;
}

int main(int argc, char **argv)
{
    int verbose = 0;
    const char *msg_time = NULL;
    const char *pos[3];
    int npos = 0;
    int only_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!only_pos && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
            usage(stdout);
            return 0;
        } else if (!only_pos && (!strcmp(a, "-v") || !strcmp(a, "--verbose"))) {
            verbose = 1;
        } else if (!only_pos && !strcmp(a, "--message-time")) {
            if (i + 1 >= argc)
                return usage_error("%s", "--message-time needs a value");
            msg_time = argv[++i];
        } else if (!only_pos && !strcmp(a, "--")) {
            only_pos = 1;
        } else if (!only_pos && a[0] == '-' && a[1] != '\0') {
            return usage_error("unknown option '%s'", a);
        } else {
            if (npos == 3)
                return usage_error("unexpected argument '%s'", a);
            pos[npos++] = a;
        }
    }
    if (npos == 0)
        return usage_error("%s", "missing command (check or explain)");
    if (!strcmp(pos[0], "check")) {
        if (npos != 2)
            return usage_error("%s", "usage: clickstage-rules check FILE");
        if (verbose || msg_time)
            return usage_error("%s", "-v and --message-time apply to explain only");
        return cmd_check(pos[1]);
    }
    if (!strcmp(pos[0], "explain")) {
        if (npos != 3)
            return usage_error("%s", "usage: clickstage-rules explain [-v] FILE EVENT");
        return cmd_explain(pos[1], pos[2], verbose, msg_time);
    }
    return usage_error("unknown command '%s' (expected check or explain)", pos[0]);
}
