/* render.c — see render.h. */
#include "render.h"
#include "timeto.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOP_TRANSITIONS_SHOWN 8
#define TOP_BREAKDOWN_ROWS 10

/* ---- frame and line builder ---------------------------------------------------------------- */

void top_frame_clear(top_frame *f)
{
    for (size_t i = 0; i < f->n; i++)
        free(f->lines[i].text);
    f->n = 0;
}

void top_frame_free(top_frame *f)
{
    top_frame_clear(f);
    free(f->lines);
    f->lines = NULL;
    f->cap = 0;
}

typedef struct lb {
    char *buf;
    size_t len, cap;
    top_span spans[TOP_MAX_SPANS];
    int nspans;
    int oom;
} lb;

static void lb_reserve(lb *b, size_t more)
{
    if (b->oom || b->len + more + 1 <= b->cap)
        return;
    size_t nc = b->cap ? b->cap : 128;
    while (nc < b->len + more + 1)
        nc *= 2;
    char *nb = realloc(b->buf, nc);
    if (!nb) {
        b->oom = 1;
        return;
    }
    b->buf = nb;
    b->cap = nc;
}

static void lb_span(lb *b, size_t off, size_t len, int attr)
{
    if (attr == TOP_A_NORMAL || !len || b->nspans == TOP_MAX_SPANS)
        return;
    b->spans[b->nspans].off = (int)off;
    b->spans[b->nspans].len = (int)len;
    b->spans[b->nspans].attr = attr;
    b->nspans++;
}

__attribute__((format(printf, 3, 4))) static void lb_printf(lb *b, int attr, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    lb_reserve(b, (size_t)n);
    if (b->oom)
        return;
    va_start(ap, fmt);
    vsnprintf(b->buf + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    lb_span(b, b->len, (size_t)n, attr);
    b->len += (size_t)n;
}

static size_t lb_width(lb *b) /* display columns so far */
{
    lb_reserve(b, 0);
    if (b->oom)
        return 0;
    b->buf[b->len] = 0;
    return top_u8_width(b->buf);
}

static void lb_pad(lb *b, size_t col) /* spaces up to display column col */
{
    size_t w = lb_width(b);
    if (b->oom)
        return;
    while (w < col) {
        lb_printf(b, TOP_A_NORMAL, " ");
        w++;
    }
}

/* Appends the line (text trimmed of trailing blanks) to f and resets b. */
static int emit(top_frame *f, lb *b)
{
    if (b->oom)
        goto oom;
    if (f->n == f->cap) {
        size_t nc = f->cap ? f->cap * 2 : 64;
        top_line *nl = realloc(f->lines, nc * sizeof *nl);
        if (!nl)
            goto oom;
        f->lines = nl;
        f->cap = nc;
    }
    size_t keep = 0; /* trailing blanks inside a span (reverse video) stay */
    for (int i = 0; i < b->nspans; i++)
        if ((size_t)(b->spans[i].off + b->spans[i].len) > keep)
            keep = (size_t)(b->spans[i].off + b->spans[i].len);
    while (b->len > keep && b->buf[b->len - 1] == ' ')
        b->len--;
    char *t = malloc(b->len + 1);
    if (!t)
        goto oom;
    if (b->len)
        memcpy(t, b->buf, b->len);
    t[b->len] = 0;
    top_line *l = &f->lines[f->n++];
    l->text = t;
    l->nspans = 0;
    for (int i = 0; i < b->nspans; i++) {
        top_span s = b->spans[i];
        if ((size_t)s.off >= b->len)
            continue;
        if ((size_t)(s.off + s.len) > b->len)
            s.len = (int)b->len - s.off;
        l->spans[l->nspans++] = s;
    }
    b->len = 0;
    b->nspans = 0;
    return 0;
oom:
    b->len = 0;
    b->nspans = 0;
    b->oom = 0;
    return -1;
}

static int emit_text(top_frame *f, lb *b, int attr, const char *s)
{
    lb_printf(b, attr, "%s", s);
    return emit(f, b);
}

/* Puts panels side by side: each panel's lines padded to its width plus a gap of 3. */
static int merge_panels(top_frame *out, lb *b, top_frame *const *p, const size_t *w, size_t np)
{
    size_t rows = 0;
    for (size_t i = 0; i < np; i++)
        if (p[i]->n > rows)
            rows = p[i]->n;
    for (size_t r = 0; r < rows; r++) {
        size_t col = 0;
        for (size_t i = 0; i < np; i++) {
            lb_pad(b, col);
            if (r < p[i]->n) {
                const top_line *l = &p[i]->lines[r];
                size_t base = b->len;
                lb_printf(b, TOP_A_NORMAL, "%s", l->text);
                for (int s = 0; s < l->nspans; s++)
                    lb_span(b, base + (size_t)l->spans[s].off, (size_t)l->spans[s].len,
                            l->spans[s].attr);
            }
            col += w[i] + 3;
        }
        if (emit(out, b) < 0)
            return -1;
    }
    return 0;
}

static size_t frame_width(const top_frame *f)
{
    size_t w = 0;
    for (size_t i = 0; i < f->n; i++) {
        size_t x = top_u8_width(f->lines[i].text);
        if (x > w)
            w = x;
    }
    return w;
}

/* ---- formatting helpers -------------------------------------------------------------------- */

size_t top_u8_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            w++;
    return w;
}

void top_fmt_age(int64_t ms, char *out, size_t n)
{
    if (ms < 0)
        ms = 0;
    int64_t s = ms / 1000;
    if (ms < 60000)
        snprintf(out, n, "%.1fs", (double)ms / 1000.0);
    else if (s < 3600)
        snprintf(out, n, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
    else if (s < 86400)
        snprintf(out, n, "%lldh%02lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
    else
        snprintf(out, n, "%lldd%02lldh", (long long)(s / 86400), (long long)(s % 86400 / 3600));
}

void top_fmt_bar(int64_t val, int64_t max, int width, int utf8, char *out, size_t n)
{
    static const char *const eighths[8] = {"", "\u258F", "\u258E", "\u258D",
                                           "\u258C", "\u258B", "\u258A", "\u2589"};
    size_t o = 0;
    out[0] = 0;
    if (val <= 0 || max <= 0 || width <= 0)
        return;
    if (val > max)
        val = max;
    int units = utf8 ? 8 : 1;
    int64_t total = (int64_t)width * units;
    int64_t cells = (int64_t)(((double)val * (double)total / (double)max) + 0.5);
    if (cells == 0)
        cells = 1; /* anything non-zero shows */
    for (int64_t i = 0; i < cells / units; i++) {
        const char *c = utf8 ? "\u2588" : "#";
        size_t cl = strlen(c);
        if (o + cl + 1 > n)
            break;
        memcpy(out + o, c, cl);
        o += cl;
    }
    if (utf8 && cells % units) {
        const char *c = eighths[cells % units];
        size_t cl = strlen(c);
        if (o + cl + 1 <= n) {
            memcpy(out + o, c, cl);
            o += cl;
        }
    }
    out[o] = 0;
}

static void fmt_rate(const top_rates *r, int which, char *out, size_t n)
{
    if (!r || !r->valid) {
        snprintf(out, n, "-");
        return;
    }
    double v = which == 0 ? r->events_s : which == 1 ? r->invalid_s : r->late_s;
    snprintf(out, n, "%.1f", v);
}

/* Copy of s cut to at most w display columns ("…" or "~" marks the cut). */
static void cut(const char *s, size_t w, int utf8, char *out, size_t n)
{
    if (top_u8_width(s) <= w) {
        snprintf(out, n, "%s", s);
        return;
    }
    size_t o = 0, cols = 0;
    for (const char *p = s; *p && o + 8 < n; p++) {
        if (((unsigned char)*p & 0xC0) != 0x80) {
            if (cols + 1 >= w)
                break;
            cols++;
        }
        out[o++] = *p;
    }
    const char *mark = utf8 ? "\u2026" : "~";
    size_t ml = strlen(mark);
    memcpy(out + o, mark, ml);
    out[o + ml] = 0;
}

static size_t imax(size_t a, size_t b)
{
    return a > b ? a : b;
}

/* ---- sections ------------------------------------------------------------------------------ */

static int render_header(const top_model *m, const top_view *v, top_frame *f, lb *b)
{
    lb_printf(b, TOP_A_TITLE, "clickstage-top");
    lb_printf(b, TOP_A_NORMAL, "  journey %s", v->journey ? v->journey : "?");
    char age[32] = "";
    int stale = 0;
    if (v->last_update_ms > 0) {
        int64_t a = v->now_ms - v->last_update_ms;
        top_fmt_age(a, age, sizeof age);
        stale = (double)a > v->stale_s * 1000.0;
    } else {
        stale = v->have_data;
    }
    if (stale && !v->down) {
        lb_printf(b, TOP_A_NORMAL, "  ");
        lb_printf(b, TOP_A_ALERT, " STALE ");
    }
    if (age[0])
        lb_printf(b, TOP_A_NORMAL, "  updated %s ago", age);
    else
        lb_printf(b, TOP_A_NORMAL, "  updated never");
    if (v->seq)
        lb_printf(b, TOP_A_NORMAL, "  seq %llu%s%s", (unsigned long long)v->seq,
                  v->seq_instance && *v->seq_instance ? " @" : "",
                  v->seq_instance ? v->seq_instance : "");
    lb_printf(b, TOP_A_NORMAL, "  redis %s", v->where ? v->where : "?");
    if (m->version && *m->version)
        lb_printf(b, TOP_A_DIM, "  v%s", m->version);
    if (emit(f, b) < 0)
        return -1;
    if (v->down) {
        lb_printf(b, TOP_A_ALERT, " REDIS DOWN %s reconnecting ", v->utf8 ? "\u2013" : "-");
        if (v->down_reason && *v->down_reason)
            lb_printf(b, TOP_A_NORMAL, " %s", v->down_reason);
    } else if (v->status && *v->status) {
        lb_printf(b, TOP_A_DIM, "%s", v->status);
    }
    return emit(f, b);
}

static int ndigits(int64_t v)
{
    char t[32];
    return snprintf(t, sizeof t, "%lld", (long long)v);
}

/* The stage table: the funnel is sessions that reached AT LEAST each stage (timeto.h; SPEC §4.1),
 * `reached` stays as "entered"; median and p90 of the time to each stage, session and customer
 * level (interpolated within the SPEC's buckets). */
static int render_stages(const top_model *m, const top_view *v, top_frame *f, lb *b)
{
    const top_hash *hs[4] = {&m->h[TOP_ACTIVE], &m->h[TOP_REACHED], &m->h[TOP_ENDED],
                             &m->h[TOP_CUSTOMERS]};
    static const char *const head[5] = {"open", "entered", "ended here", "customers", "reached>="};
    size_t sw = 5;
    for (size_t i = 0; i < m->nstages; i++)
        sw = imax(sw, top_u8_width(m->stages[i]) + (i >= m->nmeta_stages ? 1 : 0));
    if (sw > 24)
        sw = 24;
    int cw[5];
    int64_t maxr = 0;
    for (int c = 0; c < 5; c++) {
        cw[c] = (int)strlen(head[c]);
        for (size_t i = 0; i < m->nstages; i++) {
            int64_t x = c < 4 ? top_hash_get(hs[c], m->stages[i]) : top_at_least(m, i);
            cw[c] = cw[c] > ndigits(x) ? cw[c] : ndigits(x);
            if (c == 4 && x > maxr)
                maxr = x;
        }
        if (c < 4) {
            int64_t none = top_hash_get(hs[c], "_none");
            cw[c] = cw[c] > ndigits(none) ? cw[c] : ndigits(none);
        }
    }
    int fixed = (int)sw + 2 + cw[0] + 2 + cw[1] + 2 + cw[2] + 2 + cw[3] + 2 + cw[4] + 2 + 1 + 7 +
                4 * 7 + 8;
    int bw = v->width - fixed - 1;
    if (bw > 30)
        bw = 30;
    if (bw < 6)
        bw = 6;

    lb_printf(b, TOP_A_TITLE, "Stages");
    lb_printf(b, TOP_A_DIM, "  (reached>=: here or further; conv: of previous; ended here: "
                            "drop-off; med/p90: from session start; c.*: customers, from first "
                            "touch)");
    if (emit(f, b) < 0)
        return -1;
    size_t base = b->len;
    lb_printf(b, TOP_A_NORMAL, "%-*s  %*s  %*s  %*s  %*s  %*s  %-*s %7s %6s %6s %6s %6s %7s", (int)sw,
              "stage", cw[0], head[0], cw[1], head[1], cw[2], head[2], cw[3], head[3], cw[4],
              head[4], bw, bw >= 16 ? "funnel (reached>=)" : "funnel", "conv", "med", "p90",
              "c.med", "c.p90", "c.conv");
    lb_span(b, base, b->len - base, TOP_A_HEAD);
    if (emit(f, b) < 0)
        return -1;
    int extras = 0;
    for (size_t i = 0; i < m->nstages; i++) {
        char name[128], nm[160], bar[512], conv[32], cconv[32], q[4][16];
        snprintf(nm, sizeof nm, "%s%s", m->stages[i], i >= m->nmeta_stages ? "*" : "");
        extras |= i >= m->nmeta_stages;
        cut(nm, sw, v->utf8, name, sizeof name);
        int64_t al = top_at_least(m, i);
        top_fmt_bar(al, maxr, bw, v->utf8, bar, sizeof bar);
        double pct;
        if (top_conversion(m, i, &pct) == 0)
            snprintf(conv, sizeof conv, "%.1f%%", pct);
        else
            snprintf(conv, sizeof conv, "-");
        if (top_customer_conversion(m, i, &pct) == 0)
            snprintf(cconv, sizeof cconv, "%.1f%%", pct);
        else
            snprintf(cconv, sizeof cconv, "-");
        for (int k = 0; k < 4; k++) {
            int open = 0;
            double x = -1;
            if (i < CS_MAX_STAGES)
                x = cs_tt_quantile(k < 2 ? m->tt[i] : m->ctt[i], k % 2 ? 0.9 : 0.5, &open);
            cs_tt_format_short(x, open, q[k], sizeof q[k]);
        }
        lb_printf(b, TOP_A_NORMAL, "%s", name);
        lb_pad(b, sw);
        for (int c = 0; c < 4; c++)
            lb_printf(b, TOP_A_NORMAL, "  %*lld", cw[c],
                      (long long)top_hash_get(hs[c], m->stages[i]));
        lb_printf(b, TOP_A_NORMAL, "  %*lld", cw[4], (long long)al);
        lb_printf(b, TOP_A_NORMAL, "  ");
        size_t col = lb_width(b);
        lb_printf(b, TOP_A_BAR, "%s", bar);
        lb_pad(b, col + (size_t)bw);
        lb_printf(b, TOP_A_NORMAL, " %7s %6s %6s %6s %6s %7s", conv, q[0], q[1], q[2], q[3], cconv);
        if (emit(f, b) < 0)
            return -1;
    }
    lb_printf(b, TOP_A_DIM, "%-*s  %*lld  %*s  %*lld  %*lld", (int)sw, "_none", cw[0],
              (long long)top_hash_get(hs[0], "_none"), cw[1], "", cw[2],
              (long long)top_hash_get(hs[2], "_none"), cw[3],
              (long long)top_hash_get(hs[3], "_none"));
    if (emit(f, b) < 0)
        return -1;
    if (extras && emit_text(f, b, TOP_A_DIM, "* counted but not in meta.stages") < 0)
        return -1;
    /* SPEC 3.1: customers are persons; the merges line only when the identity hash exists
     * (never written without identity:, so a v1 journey's screen is what it was) */
    const top_hash *id = &m->h[TOP_IDENTITY];
    if (id->n) {
        lb_printf(b, TOP_A_TITLE, "merges");
        lb_printf(b, TOP_A_NORMAL, "  %lld merged  %lld conflicts",
                  (long long)top_hash_get(id, "merged"), (long long)top_hash_get(id, "conflicts"));
        lb_printf(b, TOP_A_DIM, "  (identity: customers are people; merged: anonymous device "
                                "journeys joined to their person's at login; conflicts: events "
                                "of another person on an identified device)");
        if (emit(f, b) < 0)
            return -1;
    }
    return 0;
}

static int panel_transitions(const top_model *m, const top_view *v, top_frame *p, lb *b)
{
    const top_hash *t = &m->h[TOP_TRANSITIONS];
    top_item it[TOP_TRANSITIONS_SHOWN];
    size_t n = top_sorted(t, it, TOP_TRANSITIONS_SHOWN);
    lb_printf(b, TOP_A_TITLE, "Top transitions");
    lb_printf(b, TOP_A_DIM, "  (%zu of %zu)", n, t->n);
    if (emit(p, b) < 0)
        return -1;
    char labels[TOP_TRANSITIONS_SHOWN][160];
    size_t lw = 10;
    for (size_t i = 0; i < n; i++) {
        const char *gt = strchr(it[i].key, '>');
        char full[300];
        if (gt)
            snprintf(full, sizeof full, "%.*s > %s", (int)(gt - it[i].key), it[i].key, gt + 1);
        else
            snprintf(full, sizeof full, "%s", it[i].key);
        cut(full, 40, v->utf8, labels[i], sizeof labels[i]);
        lw = imax(lw, top_u8_width(labels[i]));
    }
    size_t base = b->len;
    lb_printf(b, TOP_A_NORMAL, "%-*s %10s", (int)lw, "from > to", "count");
    lb_span(b, base, b->len - base, TOP_A_HEAD);
    if (emit(p, b) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        lb_printf(b, TOP_A_NORMAL, "%s", labels[i]);
        lb_pad(b, lw);
        lb_printf(b, TOP_A_NORMAL, " %10lld", (long long)it[i].val);
        if (emit(p, b) < 0)
            return -1;
    }
    if (!n && emit_text(p, b, TOP_A_DIM, "(none yet)") < 0)
        return -1;
    return 0;
}

static int panel_events(const top_model *m, const top_view *v, top_frame *p, lb *b)
{
    const top_hash *ev = &m->h[TOP_EVENTS], *inv = &m->h[TOP_INVALID];
    char r[3][32];
    for (int i = 0; i < 3; i++)
        fmt_rate(v->rates, i, r[i], sizeof r[i]);
    lb_printf(b, TOP_A_TITLE, "Events");
    if (v->rates && v->rates->valid)
        lb_printf(b, TOP_A_DIM, "  (rates over %.1fs)", v->rates->window_s);
    if (emit(p, b) < 0)
        return -1;
    size_t base = b->len;
    lb_printf(b, TOP_A_NORMAL, "%-16s %10s %12s", "", "per s", "total");
    lb_span(b, base, b->len - base, TOP_A_HEAD);
    if (emit(p, b) < 0)
        return -1;
    lb_printf(b, TOP_A_NORMAL, "%-16s %10s %12lld", "events", r[0], (long long)top_hash_sum(ev));
    if (emit(p, b) < 0)
        return -1;
    lb_printf(b, TOP_A_NORMAL, "%-16s %10s %12lld", "invalid", r[1], (long long)top_hash_sum(inv));
    if (emit(p, b) < 0)
        return -1;
    lb_printf(b, TOP_A_NORMAL, "%-16s %10s %12lld", "late", r[2],
              (long long)top_hash_get(ev, "_late"));
    if (emit(p, b) < 0)
        return -1;
    lb_printf(b, TOP_A_NORMAL, "%-16s %10s %12lld", "unclassified", "",
              (long long)top_hash_get(ev, "_unclassified"));
    if (emit(p, b) < 0)
        return -1;
    if (emit_text(p, b, TOP_A_TITLE, "Invalid by reason") < 0)
        return -1;
    top_item *it = malloc((inv->n ? inv->n : 1) * sizeof *it);
    if (!it)
        return -1;
    size_t n = top_sorted(inv, it, inv->n);
    for (size_t i = 0; i < n; i++) {
        char name[64];
        cut(it[i].key, 25, v->utf8, name, sizeof name);
        lb_printf(b, TOP_A_NORMAL, "  %s", name);
        lb_pad(b, 27);
        lb_printf(b, TOP_A_NORMAL, " %12lld", (long long)it[i].val);
        if (emit(p, b) < 0) {
            free(it);
            return -1;
        }
    }
    free(it);
    if (!n && emit_text(p, b, TOP_A_DIM, "  (none)") < 0)
        return -1;
    return 0;
}

static int panel_sessions(const top_model *m, const top_view *v, top_frame *p, lb *b)
{
    const top_hash *s = &m->h[TOP_SESSIONS], *eb = &m->h[TOP_ENDED_BY];
    if (emit_text(p, b, TOP_A_TITLE, "Sessions") < 0)
        return -1;
    static const char *const rows[] = {"started", "ended", "active"};
    for (size_t i = 0; i < 3; i++) {
        lb_printf(b, TOP_A_NORMAL, "%-14s %12lld", rows[i], (long long)top_hash_get(s, rows[i]));
        if (emit(p, b) < 0)
            return -1;
    }
    if (emit_text(p, b, TOP_A_TITLE, "Ended by") < 0)
        return -1;
    static const char *const why[] = {"gap", "max_duration", "drain", "shutdown"};
    for (size_t i = 0; i < 4; i++) {
        lb_printf(b, TOP_A_NORMAL, "  %-12s %12lld", why[i], (long long)top_hash_get(eb, why[i]));
        if (emit(p, b) < 0)
            return -1;
    }
    for (size_t i = 0; i < eb->n; i++) { /* reasons this version does not know */
        int known = 0;
        for (size_t k = 0; k < 4; k++)
            known |= strcmp(eb->kv[i].key, why[k]) == 0;
        if (known)
            continue;
        char name[64];
        cut(eb->kv[i].key, 12, v->utf8, name, sizeof name);
        lb_printf(b, TOP_A_NORMAL, "  %s", name);
        lb_pad(b, 14);
        lb_printf(b, TOP_A_NORMAL, " %12lld", (long long)eb->kv[i].val);
        if (emit(p, b) < 0)
            return -1;
    }
    return 0;
}

static int render_panels(const top_model *m, const top_view *v, top_frame *f, lb *b)
{
    top_frame pf[3] = {{0}};
    top_frame *pp[3] = {&pf[0], &pf[1], &pf[2]};
    int rc = -1;
    if (panel_transitions(m, v, &pf[0], b) < 0 || panel_events(m, v, &pf[1], b) < 0 ||
        panel_sessions(m, v, &pf[2], b) < 0)
        goto out;
    size_t w[3];
    for (int i = 0; i < 3; i++)
        w[i] = frame_width(&pf[i]);
    /* Greedy rows: as many panels side by side as fit the width. */
    size_t i = 0;
    while (i < 3) {
        size_t j = i + 1, used = w[i];
        while (j < 3 && used + 3 + w[j] <= (size_t)(v->width > 0 ? v->width : 0)) {
            used += 3 + w[j];
            j++;
        }
        if (i > 0 && emit(f, b) < 0)
            goto out;
        if (merge_panels(f, b, pp + i, w + i, j - i) < 0)
            goto out;
        i = j;
    }
    rc = 0;
out:
    for (int k = 0; k < 3; k++)
        top_frame_free(&pf[k]);
    return rc;
}

static int render_breakdown(const top_model *m, const top_view *v, top_frame *f, lb *b)
{
    if (!v->dim) {
        lb_printf(b, TOP_A_TITLE, "Breakdown");
        lb_printf(b, TOP_A_DIM, "  (no dimensions: no by:<dim>:reached keys for this journey)");
        return emit(f, b);
    }
    top_breakdown bd;
    if (top_breakdown_build(m, TOP_BREAKDOWN_ROWS, &bd) < 0)
        return -1;
    lb_printf(b, TOP_A_TITLE, "By %s", v->dim);
    lb_printf(b, TOP_A_DIM, "  (reached/open sessions per stage; dimension %zu of %zu%s)",
              v->dim_index + 1, v->ndims, v->interactive && v->ndims > 1 ? ", d: next" : "");
    int rc = -1;
    if (emit(f, b) < 0)
        goto out;
    size_t vw = 8;
    for (size_t r = 0; r < bd.nrows; r++)
        vw = imax(vw, top_u8_width(bd.rows[r].value));
    if (vw > 24)
        vw = 24;
    size_t ns = m->nstages;
    size_t *cw = calloc(ns + 1, sizeof *cw);
    if (!cw)
        goto out;
    char cell[64], name[128];
    for (size_t s = 0; s < ns; s++) {
        cw[s] = imax(top_u8_width(m->stages[s]) > 14 ? 14 : top_u8_width(m->stages[s]), 7);
        for (size_t r = 0; r < bd.nrows; r++) {
            snprintf(cell, sizeof cell, "%lld/%lld", (long long)bd.rows[r].reached[s],
                     (long long)bd.rows[r].active[s]);
            cw[s] = imax(cw[s], strlen(cell));
        }
    }
    cw[ns] = 4;
    for (size_t r = 0; r < bd.nrows; r++) {
        snprintf(cell, sizeof cell, "%lld", (long long)bd.rows[r].total_active);
        cw[ns] = imax(cw[ns], strlen(cell));
    }
    size_t base = b->len;
    lb_printf(b, TOP_A_NORMAL, "%-*s", (int)vw, "value");
    for (size_t s = 0; s < ns; s++) {
        cut(m->stages[s], 14, v->utf8, name, sizeof name);
        lb_printf(b, TOP_A_NORMAL, "  ");
        lb_pad(b, lb_width(b) + cw[s] - top_u8_width(name));
        lb_printf(b, TOP_A_NORMAL, "%s", name);
    }
    lb_printf(b, TOP_A_NORMAL, "  %*s", (int)cw[ns], "open");
    lb_span(b, base, b->len - base, TOP_A_HEAD);
    if (emit(f, b) < 0) {
        free(cw);
        goto out;
    }
    for (size_t r = 0; r < bd.nrows; r++) {
        cut(bd.rows[r].value, vw, v->utf8, name, sizeof name);
        lb_printf(b, TOP_A_NORMAL, "%s", name);
        lb_pad(b, vw);
        for (size_t s = 0; s < ns; s++) {
            snprintf(cell, sizeof cell, "%lld/%lld", (long long)bd.rows[r].reached[s],
                     (long long)bd.rows[r].active[s]);
            lb_printf(b, TOP_A_NORMAL, "  %*s", (int)cw[s], cell);
        }
        lb_printf(b, TOP_A_NORMAL, "  %*lld", (int)cw[ns], (long long)bd.rows[r].total_active);
        if (emit(f, b) < 0) {
            free(cw);
            goto out;
        }
    }
    free(cw);
    if (bd.nvalues > bd.nrows) {
        lb_printf(b, TOP_A_DIM, "%s %zu more value%s", v->utf8 ? "\u2026" : "...",
                  bd.nvalues - bd.nrows, bd.nvalues - bd.nrows == 1 ? "" : "s");
        if (emit(f, b) < 0)
            goto out;
    }
    if (!bd.nvalues && emit_text(f, b, TOP_A_DIM, "(no values yet)") < 0)
        goto out;
    rc = 0;
out:
    top_breakdown_free(&bd);
    return rc;
}

int top_render(const top_model *m, const top_view *v, top_frame *f)
{
    lb b = {0};
    int rc = -1;
    top_frame_clear(f);
    if (render_header(m, v, f, &b) < 0)
        goto out;
    if (v->have_data) {
        if (emit(f, &b) < 0 || render_stages(m, v, f, &b) < 0 || emit(f, &b) < 0 ||
            render_panels(m, v, f, &b) < 0 || emit(f, &b) < 0 ||
            render_breakdown(m, v, f, &b) < 0)
            goto out;
    }
    if (v->interactive) {
        if (emit(f, &b) < 0)
            goto out;
        lb_printf(&b, TOP_A_DIM, "q quit   r refresh   d next dimension");
        if (v->dim)
            lb_printf(&b, TOP_A_DIM, " (%s, %zu of %zu)", v->dim, v->dim_index + 1, v->ndims);
        if (emit(f, &b) < 0)
            goto out;
    }
    rc = 0;
out:
    free(b.buf);
    return rc;
}
