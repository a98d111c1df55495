/* metrics.c — the writers CS_METRICS_TABLE generates (see metrics.h). */
#include "metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#include "clickstage.h"
#include "sink.h"

const double cs_metrics_flush_le[CS_METRICS_FLUSH_BUCKETS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0};

/* ---- value formatting ---------------------------------------------------------------------- */

void cs_put_ms_as_s(FILE *f, int64_t ms)
{
    /* milliseconds as seconds with three decimals, exactly (no double rounding) */
    uint64_t a = ms < 0 ? (uint64_t)0 - (uint64_t)ms : (uint64_t)ms;
    fprintf(f, "%s%" PRIu64 ".%03u", ms < 0 ? "-" : "", a / 1000, (unsigned)(a % 1000));
}

void cs_put_label(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\\\", f);
        else if (*s == '"')
            fputs("\\\"", f);
        else if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

void cs_put_json_n(FILE *f, const char *s, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c == '\r')
            fputs("\\r", f);
        else if (c == '\t')
            fputs("\\t", f);
        else if (c < 0x20 || c == 0x7f)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

void cs_put_json(FILE *f, const char *s)
{
    cs_put_json_n(f, s, strlen(s));
}

/* ---- samples: what a family function hands to a writer -------------------------------------- */

enum { V_U64, V_I64, V_DBL, V_MS };

typedef struct sample {
    const char *suffix;        /* "" or "_bucket", "_sum", "_count" (histograms) */
    int nlabels;
    const char *names[3];
    const char *values[3];
    int kind;                  /* V_* */
    uint64_t u;
    int64_t i;
    double d;
    const char *jkey;          /* the /api/metrics key when it is not the label value */
} sample;

typedef struct writer writer;
struct writer {
    void (*emit)(writer *w, const sample *s);
    FILE *f;
    const char *name; /* the family's full name (prometheus) */
    int n;            /* samples emitted in this family (JSON commas) */
    uint64_t sum;     /* JSON: the total of a counter family */
};

static void emit_u(writer *w, const char *lname, const char *lval, uint64_t v)
{
    sample s = {"", lname ? 1 : 0, {lname}, {lval}, V_U64, v, 0, 0, NULL};
    w->emit(w, &s);
}

/* ---- the families ---------------------------------------------------------------------------
 * One function per FAMILY row of the table, named family_<field>: it emits the samples. */

typedef const cs_metrics M;

static int nstages(M *m)
{
    return m->nstages < 0 ? 0 : m->nstages > CS_MAX_STAGES ? CS_MAX_STAGES : m->nstages;
}

static int nparts(M *m)
{
    return m->npartitions < 0                      ? 0
           : m->npartitions > CS_METRICS_MAX_PARTS ? CS_METRICS_MAX_PARTS
                                                    : (int)m->npartitions;
}

static int nworkers(M *m)
{
    return m->nworkers < 0                        ? 0
           : m->nworkers > CS_METRICS_MAX_WORKERS ? CS_METRICS_MAX_WORKERS
                                                   : m->nworkers;
}

static void family_build(writer *w, M *m, int64_t now)
{
    sample s = {"", 3, {"version", "journey", "rules_sha256"},
                {CLICKSTAGE_VERSION, m->journey, m->rules_sha256}, V_U64, 1, 0, 0, NULL};
    w->emit(w, &s);
}

static void family_events(writer *w, M *m, int64_t now)
{
    for (int i = 0; i < nstages(m); i++)
        emit_u(w, "result", m->stages[i], m->events_by_stage[i]);
    /* JSON: the field names of the Redis events hash */
    sample un = {"", 1, {"result"}, {"unclassified"}, V_U64, m->events_unclassified, 0, 0,
                 "_unclassified"};
    w->emit(w, &un);
    sample la = {"", 1, {"result"}, {"late"}, V_U64, m->events_late, 0, 0, "_late"};
    w->emit(w, &la);
}

/* the journey's own counts, by stage (cardinality: the stages, +1 for _none, x the 19 buckets
 * of the histograms) */
static void family_journey_reached(writer *w, M *m, int64_t now)
{
    for (int i = 0; i < nstages(m); i++)
        emit_u(w, "stage", m->stages[i], (uint64_t)m->j_reached[i + 1]);
}

static void family_journey_funnel(writer *w, M *m, int64_t now)
{
    for (int i = 0; i < nstages(m); i++)
        emit_u(w, "stage", m->stages[i], (uint64_t)m->j_funnel[i]);
}

static void family_journey_funnel_previous(writer *w, M *m, int64_t now)
{
    for (int i = 0; i < nstages(m); i++)
        emit_u(w, "stage", m->stages[i], (uint64_t)(i ? m->j_funnel[i - 1] : m->j_started));
}

static void family_journey_cfunnel(writer *w, M *m, int64_t now)
{
    for (int i = 0; i < nstages(m); i++)
        emit_u(w, "stage", m->stages[i], (uint64_t)m->j_cfunnel[i]);
}

static void family_journey_cfunnel_previous(writer *w, M *m, int64_t now)
{
    for (int i = 0; i < nstages(m); i++)
        emit_u(w, "stage", m->stages[i], (uint64_t)(i ? m->j_cfunnel[i - 1] : m->j_cstarted));
}

static void emit_slots_i(writer *w, M *m, const int64_t *v)
{
    for (int i = 0; i <= nstages(m); i++) {
        sample s = {"", 1, {"stage"}, {i ? m->stages[i - 1] : "_none"}, V_I64, 0, v[i], 0, NULL};
        w->emit(w, &s);
    }
}

static void family_journey_ended(writer *w, M *m, int64_t now)
{
    for (int i = 0; i <= nstages(m); i++)
        emit_u(w, "stage", i ? m->stages[i - 1] : "_none", (uint64_t)m->j_ended[i]);
}

static void family_journey_active(writer *w, M *m, int64_t now)
{
    emit_slots_i(w, m, m->j_active);
}

static void tt_histogram(writer *w, M *m, const int64_t (*h)[CS_TT_NBUCKETS], const int64_t *sum_ms)
{
    for (int i = 0; i < nstages(m); i++) {
        uint64_t cum = 0;
        for (int b = 0; b < CS_TT_NBUCKETS; b++) {
            cum += (uint64_t)h[i][b];
            sample s = {"_bucket", 2, {"stage", "le"},
                        {m->stages[i], b < CS_TT_NBOUNDS ? cs_tt_bucket_name[b] : "+Inf"},
                        V_U64, cum, 0, 0, NULL};
            w->emit(w, &s);
        }
        char ks[96], kc[96]; /* /api/metrics keys: "<stage>/sum", "<stage>/count" */
        snprintf(ks, sizeof ks, "%s/sum", m->stages[i]);
        snprintf(kc, sizeof kc, "%s/count", m->stages[i]);
        sample su = {"_sum", 1, {"stage"}, {m->stages[i]}, V_DBL, 0, 0, (double)sum_ms[i] / 1000.0,
                     ks};
        w->emit(w, &su);
        sample c = {"_count", 1, {"stage"}, {m->stages[i]}, V_U64, cum, 0, 0, kc};
        w->emit(w, &c);
    }
}

static void family_journey_time_to(writer *w, M *m, int64_t now)
{
    tt_histogram(w, m, m->j_time_to, m->j_time_to_sum_ms);
}

static void family_journey_customer_time_to(writer *w, M *m, int64_t now)
{
    tt_histogram(w, m, m->j_ctime_to, m->j_ctime_to_sum_ms);
}

static void family_invalid(writer *w, M *m, int64_t now)
{
    for (int r = 1; r < CS_INV__COUNT; r++)
        emit_u(w, "reason", cs_invalid_name((cs_invalid)r), m->invalid_by_reason[r]);
}

static void family_state_bytes(writer *w, M *m, int64_t now)
{
    emit_u(w, "kind", "sessions", m->session_bytes);
    emit_u(w, "kind", "customers", m->customer_bytes);
}

static void family_flush_duration(writer *w, M *m, int64_t now)
{
    char le[CS_METRICS_FLUSH_BUCKETS][24];
    for (int b = 0; b < CS_METRICS_FLUSH_BUCKETS; b++) {
        snprintf(le[b], sizeof le[b], "%g", cs_metrics_flush_le[b]);
        sample s = {"_bucket", 1, {"le"}, {le[b]}, V_U64, m->flush_bucket[b], 0, 0, NULL};
        w->emit(w, &s);
    }
    sample inf = {"_bucket", 1, {"le"}, {"+Inf"}, V_U64, m->flush_count, 0, 0, NULL};
    w->emit(w, &inf);
    sample sum = {"_sum", 0, {0}, {0}, V_DBL, 0, 0, m->flush_seconds_sum, NULL};
    w->emit(w, &sum);
    sample cnt = {"_count", 0, {0}, {0}, V_U64, m->flush_count, 0, 0, NULL};
    w->emit(w, &cnt);
}

static void family_flushes(writer *w, M *m, int64_t now)
{
    emit_u(w, "result", "ok", m->flushes_ok);
    emit_u(w, "result", "failed", m->flushes_failed);
}

static void family_lag(writer *w, M *m, int64_t now)
{
    for (int i = 0; i < nparts(m); i++) {
        const cs_metrics_part *p = &m->parts[i];
        if (p->lag < 0)
            continue;
        char part[16];
        snprintf(part, sizeof part, "%" PRId32, p->partition);
        sample s = {"", 2, {"topic", "partition"}, {p->topic, part}, V_I64, 0, p->lag, 0, NULL};
        w->emit(w, &s);
    }
}

static void family_redis_errors(writer *w, M *m, int64_t now)
{
    for (int c = CS_REDIS_OK + 1; c < CS_REDIS__COUNT; c++)
        emit_u(w, "class", cs_redis_class_name((cs_redis_class)c), m->redis_errors_n[c]);
}

static void family_redis_refusing(writer *w, M *m, int64_t now)
{
    for (int c = CS_REDIS_OK + 1; c < CS_REDIS__COUNT; c++)
        emit_u(w, "class", cs_redis_class_name((cs_redis_class)c), m->redis_refusal == c);
}

static void family_rule_reloads(writer *w, M *m, int64_t now)
{
    emit_u(w, "result", "ok", m->reloads_ok);
    emit_u(w, "result", "failed", m->reloads_failed);
}

static void family_worker_loops(writer *w, M *m, int64_t now)
{
    for (int i = 0; i < nworkers(m); i++) {
        char id[16];
        snprintf(id, sizeof id, "%d", i);
        emit_u(w, "worker", id, m->worker_loops_n[i]);
    }
}

static void family_worker_last_loop(writer *w, M *m, int64_t now)
{
    for (int i = 0; i < nworkers(m); i++) {
        char id[16];
        snprintf(id, sizeof id, "%d", i);
        sample s = {"", 1, {"worker"}, {id}, V_MS, 0, m->worker_last_loop_ms[i], 0, NULL};
        w->emit(w, &s);
    }
}

static void family_healthy_now(writer *w, M *m, int64_t now)
{
    char why[8];
    emit_u(w, NULL, NULL, (uint64_t)cs_metrics_health(m, now, why, sizeof why));
}

static void family_ready_now(writer *w, M *m, int64_t now)
{
    char why[8];
    emit_u(w, NULL, NULL, (uint64_t)cs_metrics_readiness(m, now, why, sizeof why));
}

/* ---- health ---------------------------------------------------------------------------------- */

void cs_metrics_observe_flush(cs_metrics *m, double secs)
{
    m->flush_count++;
    m->flush_seconds_sum += secs;
    for (int b = 0; b < CS_METRICS_FLUSH_BUCKETS; b++)
        if (secs <= cs_metrics_flush_le[b])
            m->flush_bucket[b]++;
}

int cs_metrics_stale(const cs_metrics *m, int64_t now, char *buf, size_t n)
{
    if (m->now_ms <= 0) {
        snprintf(buf, n, "starting: no metrics snapshot published yet");
        return 1;
    }
    int64_t interval = m->flush_interval_ms > 0 ? m->flush_interval_ms : 60000;
    int64_t limit = 3 * interval > 10000 ? 3 * interval : 10000;
    int64_t age = now - m->now_ms;
    if (age > limit) {
        snprintf(buf, n, "control thread stalled: no metrics snapshot for %.1f s",
                 (double)age / 1000.0);
        return 1;
    }
    return 0;
}

static void append(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void append(char *buf, size_t n, const char *fmt, ...)
{
    size_t used = strlen(buf);
    if (used + 3 >= n)
        return;
    if (used) {
        memcpy(buf + used, "; ", 3);
        used += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + used, n - used, fmt, ap);
    va_end(ap);
}

int cs_metrics_health(const cs_metrics *m, int64_t now, char *why, size_t n)
{
    why[0] = 0;
    if (cs_metrics_stale(m, now, why, n))
        return 0;
    if (m->healthy) {
        snprintf(why, n, "ok");
        return 1;
    }
    for (int w = 0; w < nworkers(m); w++) {
        int64_t idle = m->now_ms - m->worker_last_loop_ms[w];
        if (idle > 10000)
            append(why, n, "worker %d stalled: no loop for %.1f s", w, (double)idle / 1000.0);
    }
    if (!why[0])
        snprintf(why, n, "unhealthy");
    return 0;
}

int cs_metrics_readiness(const cs_metrics *m, int64_t now, char *why, size_t n)
{
    why[0] = 0;
    if (cs_metrics_stale(m, now, why, n))
        return 0;
    if (m->ready) {
        snprintf(why, n, "ok");
        return 1;
    }
    if (!m->drain && m->npartitions <= 0)
        append(why, n, "no Kafka partitions assigned");
    if (m->redis_refusal != CS_REDIS_OK && m->redis_refusal != CS_REDIS_UNREACHABLE)
        append(why, n, "%s (%s): %s", cs_redis_class_meaning(m->redis_refusal),
               cs_redis_class_name((cs_redis_class)m->redis_refusal), m->redis_refusal_text);
    else if (!m->redis_up || m->redis_refusal == CS_REDIS_UNREACHABLE)
        append(why, n, "redis unreachable%s%s", m->redis_refusal_text[0] ? ": " : "",
               m->redis_refusal_text);
    if (m->last_flush_ok_ms <= 0)
        append(why, n, "no flush applied to Redis yet");
    else if (m->now_ms - m->last_flush_ok_ms >= 10000)
        append(why, n, "counts not written to Redis for %.1f s",
               (double)(m->now_ms - m->last_flush_ok_ms) / 1000.0);
    if (!why[0])
        snprintf(why, n, "not ready");
    return 0;
}

/* ---- Prometheus ------------------------------------------------------------------------------ */

static void prom_value(FILE *f, const sample *s)
{
    switch (s->kind) {
    case V_U64:
        fprintf(f, "%" PRIu64, s->u);
        break;
    case V_I64:
        fprintf(f, "%" PRId64, s->i);
        break;
    case V_DBL:
        fprintf(f, "%.9g", s->d);
        break;
    default:
        cs_put_ms_as_s(f, s->i);
        break;
    }
}

static void prom_emit(writer *w, const sample *s)
{
    fprintf(w->f, "%s%s", w->name, s->suffix);
    for (int i = 0; i < s->nlabels; i++) {
        fprintf(w->f, "%s%s=\"", i ? "," : "{", s->names[i]);
        cs_put_label(w->f, s->values[i]);
        fputc('"', w->f);
    }
    fputs(s->nlabels ? "} " : " ", w->f);
    prom_value(w->f, s);
    fputc('\n', w->f);
}

static void prom_meta(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP clickstage_%s %s\n# TYPE clickstage_%s %s\n", name, help, name, type);
}

#define PROM_U64(f_, m, name) fprintf(f_, "clickstage_%s %" PRIu64 "\n", name, (uint64_t)(m))
#define PROM_I64(f_, m, name) fprintf(f_, "clickstage_%s %" PRId64 "\n", name, (int64_t)(m))
#define PROM_FLAG(f_, m, name) fprintf(f_, "clickstage_%s %d\n", name, (m) ? 1 : 0)
#define PROM_TIME(f_, m, name)                                                                \
    do {                                                                                      \
        if ((m) != INT64_MIN) {                                                               \
            fprintf(f_, "clickstage_%s ", name);                                              \
            cs_put_ms_as_s(f_, (m));                                                          \
            fputc('\n', f_);                                                                  \
        }                                                                                     \
    } while (0)
#define PROM_SECONDS(f_, m, name) fprintf(f_, "clickstage_%s %.6f\n", name, (double)(m))

void cs_metrics_write_prometheus(FILE *f, const cs_metrics *m, int64_t now)
{
    char full[128];
    writer w = {prom_emit, f, full, 0, 0};
#define PROM_FAMILY_BODY(name, field) family_##field(&w, m, now)
#define PROM_ROW_U64(name, field) PROM_U64(f, m->field, #name)
#define PROM_ROW_I64(name, field) PROM_I64(f, m->field, #name)
#define PROM_ROW_FLAG(name, field) PROM_FLAG(f, m->field, #name)
#define PROM_ROW_TIME(name, field) PROM_TIME(f, m->field, #name)
#define PROM_ROW_SECONDS(name, field) PROM_SECONDS(f, m->field, #name)
#define PROM_ROW_FAMILY(name, field) PROM_FAMILY_BODY(name, field)
#define PROM_ROW(name, type, shape, field, labels, help)                                      \
    prom_meta(f, #name, #type, help);                                                         \
    snprintf(full, sizeof full, "clickstage_%s", #name);                                      \
    PROM_ROW_##shape(name, field);
    CS_METRICS_TABLE(PROM_ROW)
#undef PROM_ROW
}

/* ---- JSON ------------------------------------------------------------------------------------ */

static void json_emit(writer *w, const sample *s)
{
    FILE *f = w->f;
    if (s->nlabels == 0 && !*s->suffix) { /* a bare value (healthy_now, ready_now) */
        if (s->kind == V_U64)
            fputs(s->u ? "true" : "false", f);
        return;
    }
    fputs(w->n++ ? "," : "", f);
    /* key: the label values joined by "/", or the suffix for a histogram's sum and count */
    if (s->jkey) {
        cs_put_json(f, s->jkey);
    } else if (s->nlabels == 0) {
        cs_put_json(f, s->suffix + 1);
    } else {
        char key[600] = "";
        size_t k = 0;
        for (int i = 0; i < s->nlabels && k < sizeof key; i++)
            k += (size_t)snprintf(key + k, sizeof key - k, "%s%s", i ? "/" : "", s->values[i]);
        cs_put_json(f, key);
    }
    fputc(':', f);
    switch (s->kind) {
    case V_U64:
        fprintf(f, "%" PRIu64, s->u);
        w->sum += s->u;
        break;
    case V_I64:
    case V_MS:
        fprintf(f, "%" PRId64, s->i);
        break;
    default:
        fprintf(f, "%.9g", s->d);
        break;
    }
}

void cs_metrics_write_json(FILE *f, const cs_metrics *m, int64_t now)
{
    writer w = {json_emit, f, NULL, 0, 0};
    fprintf(f, "{\"server_ms\":%" PRId64 ",\"now_ms\":%" PRId64, now, m->now_ms);
    fputs(",\"version\":", f);
    cs_put_json(f, CLICKSTAGE_VERSION);
    fputs(",\"journey\":", f);
    cs_put_json(f, m->journey);
    fputs(",\"stages\":[", f);
    for (int i = 0; i < nstages(m); i++) {
        if (i)
            fputc(',', f);
        cs_put_json(f, m->stages[i]);
    }
    fputs("],\"rules_sha256\":", f);
    cs_put_json(f, m->rules_sha256);
    fprintf(f, ",\"drain\":%s,\"healthy\":%s,\"ready\":%s,\"flush_interval_ms\":%" PRId64,
            m->drain ? "true" : "false", m->healthy ? "true" : "false",
            m->ready ? "true" : "false", m->flush_interval_ms);
#define JSON_ROW_U64(field) fprintf(f, ",\"" #field "\":%" PRIu64, (uint64_t)m->field)
#define JSON_ROW_I64(field) fprintf(f, ",\"" #field "\":%" PRId64, (int64_t)m->field)
#define JSON_ROW_FLAG(field) fprintf(f, ",\"" #field "\":%s", m->field ? "true" : "false")
#define JSON_ROW_TIME(field)                                                                  \
    do {                                                                                      \
        if (m->field == INT64_MIN)                                                            \
            fputs(",\"" #field "\":null", f);                                                 \
        else                                                                                  \
            fprintf(f, ",\"" #field "\":%" PRId64, m->field);                                 \
    } while (0)
#define JSON_ROW_SECONDS(field) fprintf(f, ",\"" #field "\":%.6f", m->field)
#define JSON_ROW_FAMILY(field)                                                                \
    do {                                                                                      \
        if (!strcmp(#field, "build"))                                                         \
            break; /* version, journey and rules_sha256 are above */                          \
        w.n = 0;                                                                              \
        w.sum = 0;                                                                            \
        int bare_ = !strcmp(#field, "healthy_now") || !strcmp(#field, "ready_now");           \
        fputs(",\"" #field "\":", f);                                                         \
        if (!bare_)                                                                           \
            fputc('{', f);                                                                    \
        family_##field(&w, m, now);                                                           \
        if (!bare_)                                                                           \
            fputc('}', f);                                                                    \
        if (is_counter_)                                                                      \
            fprintf(f, ",\"" #field "_total\":%" PRIu64, w.sum);                              \
    } while (0)
#define JSON_ROW(name, type, shape, field, labels, help)                                      \
    {                                                                                         \
        int is_counter_ = !strcmp(#type, "counter");                                          \
        (void)is_counter_;                                                                    \
        JSON_ROW_##shape(field);                                                              \
    }
    CS_METRICS_TABLE(JSON_ROW)
#undef JSON_ROW
    /* the refusal going on now (the web view's status line) */
    if (m->redis_refusal != CS_REDIS_OK) {
        fputs(",\"redis_refusal\":{\"class\":", f);
        cs_put_json(f, cs_redis_class_name((cs_redis_class)m->redis_refusal));
        fputs(",\"meaning\":", f);
        cs_put_json(f, cs_redis_class_meaning(m->redis_refusal));
        fputs(",\"text\":", f);
        cs_put_json(f, m->redis_refusal_text);
        fprintf(f, ",\"since_ms\":%" PRId64 "}", m->redis_refusal_since_ms);
    } else {
        fputs(",\"redis_refusal\":null", f);
    }
    /* per partition and per worker detail (what the families summarise) */
    fputs(",\"partitions\":[", f);
    for (int i = 0; i < nparts(m); i++) {
        const cs_metrics_part *p = &m->parts[i];
        fputs(i ? ",{\"topic\":" : "{\"topic\":", f);
        cs_put_json(f, p->topic);
        fprintf(f,
                ",\"partition\":%" PRId32 ",\"next_offset\":%" PRId64
                ",\"high_watermark\":%" PRId64 ",\"lag\":%" PRId64 ",\"state\":%d",
                p->partition, p->next_offset, p->high_watermark, p->lag, p->state);
        if (p->watermark_ms == INT64_MIN)
            fputs(",\"watermark_ms\":null}", f);
        else
            fprintf(f, ",\"watermark_ms\":%" PRId64 "}", p->watermark_ms);
    }
    fputs("]}\n", f);
}

/* ---- docs ------------------------------------------------------------------------------------ */

void cs_metrics_write_markdown(FILE *f)
{
    fputs("| metric | type | labels | meaning |\n|---|---|---|---|\n", f);
#define MD_ROW(name, type, shape, field, labels, help)                                        \
    fprintf(f, "| `clickstage_%s` | %s | %s | %s |\n", #name, #type, labels, help);
    CS_METRICS_TABLE(MD_ROW)
#undef MD_ROW
}
