/* sustain.c — --find-sustainable: the highest rate clickstage keeps up with (lg.h).
 *
 * A step at rate R: wait until clickstage has caught up with everything sent before (lag 0, or
 * --drain-timeout), send at R for --warmup (not judged: consumer fetch buffers fill, flush
 * cadence settles), then at R for the rest of --step, judged on that window:
 *   - the generator kept up: it handed over >= 97 % of R x window to librdkafka (otherwise the
 *     step says "generator" and the figure is a lower bound of what clickstage sustains);
 *   - clickstage kept up: the consumer lag (delivered - visible offsets, read every flush) did
 *     not grow: its least-squares slope over the window is at most --lag-growth x R (a lag that
 *     saw-tooths with each flush has slope ~0; one that grows by a fraction of R means the
 *     daemon consumes slower than R);
 *   - p99 of produce -> visible latency over the window is under --p99.
 * A step that kept up but missed the latency bound, or at which the generator fell short of the
 * rate, is run again (--retries, default 2) before it counts as a failure: one burst of
 * contention on a shared machine should not decide the figure.
 * The figure is the highest rate clickstage was seen to keep up with: the generator's achieved
 * rate (sent/s) of the best step whose lag and latency held, also one where the generator fell
 * short of the offered rate (then the figure is a lower bound: limited_by "generator"), but
 * never one at or above a rate where clickstage itself fell behind (the step's final verdict,
 * after its retries, was lag or p99). Sustainability is monotonic: a system that cannot keep up
 * with 206k/s cannot keep up with 347k/s, so a step that passed above a clickstage failure met a
 * quiet moment of the machine, not a capacity; it is reported (kept_up_above_failure) and not
 * taken. Without this rule three runs on a shared machine gave 193,747, 193,750 and 347,181.
 * Search: from --start-rate, multiply by --growth while steps pass; after the first failure,
 * bisect between the highest pass and the lowest failure until they are within --precision
 * (or --max-steps). A failure before any pass divides by --growth instead.
 *
 * Output: one table row per step as it ends (stdout), then a last JSON line; --csv FILE the
 * rows; --plot FILE.png rate vs latency (gnuplot).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lg.h"
#include "sustain_pick.h"

typedef struct step {
    double rate, achieved, consumed, secs;
    double p50, p95, p99, max;
    int64_t lag0, lag1;
    double slope;
    uint64_t samples, updates;
    int pass;
    int kept_up;     /* clickstage's part held (lag, p99), whatever the generator sent */
    int retried;     /* a retry of the same rate followed: not the rate's final verdict */
    const char *why; /* failure reason */
} step;

void lg_sustain_defaults(lg_sustain_opts *o)
{
    memset(o, 0, sizeof *o);
    o->start_rate = 50000;
    o->max_rate = 0;
    o->growth = 2;
    o->step_s = 20;
    o->warmup_s = 5;
    o->drain_s = 60;
    o->p99_ms = 500;
    o->lag_slope_frac = 0.01;
    o->precision = 0.05;
    o->max_steps = 20;
    o->retries = 2;
}

static void row(const step *s, int i)
{
    printf("%4d %11.0f %11.0f %11.0f %9lld %9lld %10.0f %8.1f %8.1f %8.1f %8.1f  %s%s%s%s\n", i,
           s->rate, s->achieved, s->consumed, (long long)s->lag0, (long long)s->lag1, s->slope,
           s->p50, s->p95, s->p99, s->max, s->pass ? "pass" : "FAIL", s->why ? ": " : "",
           s->why ? s->why : "", !s->pass && s->kept_up ? " (clickstage kept up with sent/s)" : "");
    fflush(stdout);
}

/* Waits until the lag is 0 (or timeout); returns the lag left. */
static int64_t drain(lg_watch *w, double timeout_s, volatile int *stop)
{
    double end = lg_now() + timeout_s;
    int64_t lag = 0, vis;
    while (!*stop) {
        if (lg_watch_lag(w, &lag, &vis) == 0 && lag == 0)
            return 0;
        if (lg_now() >= end)
            return lag;
        usleep(50000);
    }
    return lag;
}

static int run_step(const lg_sustain_opts *o, lg_prod *p, lg_watch *w, uint64_t *pos,
                    uint64_t total, double rate, volatile int *stop, step *s)
{
    memset(s, 0, sizeof *s);
    s->rate = rate;
    int64_t left = drain(w, o->drain_s, stop);
    if (*stop)
        return -1;
    if (left > 0)
        fprintf(stderr, LG_NAME ": clickstage has not caught up after %.0fs (lag %lld): "
                        "the next step starts behind\n", o->drain_s, (long long)left);
    double judge = o->step_s - o->warmup_s;
    uint64_t nw = (uint64_t)(rate * o->warmup_s), nj = (uint64_t)(rate * judge);
    if (*pos + nw + nj > total)
        return -1; /* the stream is over (--events) */
    /* warm-up: sent and watched, not judged; a generator that cannot keep up stops at the
     * step's time anyway */
    double t0 = lg_now();
    uint64_t got = lg_prod_segment(p, *pos, *pos + nw, rate, t0 + o->warmup_s * 1.2, stop);
    *pos += got;
    lg_window win;
    lg_watch_take(w, &win); /* discards the warm-up window */
    double t1 = lg_now();
    got = lg_prod_segment(p, *pos, *pos + nj, rate, t1 + judge * 1.2, stop);
    *pos += got;
    double t2 = lg_now();
    /* what is in flight at the end belongs to the window: wait for it up to the time it would
     * take at a latency of --p99 */
    usleep((useconds_t)(o->p99_ms * 1000));
    lg_watch_take(w, &win);
    s->secs = t2 - t1;
    s->achieved = (double)got / (t2 - t1);
    s->consumed = (double)(win.visible1 - win.visible0) / (win.t1 - win.t0);
    s->lag0 = win.lag0;
    s->lag1 = win.lag1;
    s->slope = win.lag_slope;
    s->p50 = lg_hist_ms(&win.lat, 0.5);
    s->p95 = lg_hist_ms(&win.lat, 0.95);
    s->p99 = lg_hist_ms(&win.lat, 0.99);
    s->max = lg_hist_ms(&win.lat, 1);
    s->samples = win.lat.n;
    s->updates = win.updates;
    s->kept_up = 1;
    if (!win.lat.n || !win.updates)
        s->why = "nothing visible";
    else if (s->slope > o->lag_slope_frac * s->achieved && s->slope > 1000)
        s->why = "lag grows";
    else if (s->p99 > o->p99_ms)
        s->why = "p99";
    if (s->why)
        s->kept_up = 0;
    else if (s->achieved < 0.97 * rate)
        s->why = "generator"; /* clickstage kept up with what was sent, which was less */
    s->pass = !s->why;
    return 0;
}

static void plot(const lg_sustain_opts *o, const step *v, int n, double best)
{
    char dat[] = "/tmp/clickstage-loadgen-plot.XXXXXX";
    int fd = mkstemp(dat);
    if (fd < 0)
        return;
    FILE *f = fdopen(fd, "w");
    for (int i = 0; i < n; i++)
        fprintf(f, "%.0f %.1f %.1f %.1f %d\n", v[i].achieved, v[i].p50, v[i].p99, v[i].max,
                v[i].kept_up);
    fclose(f);
    FILE *g = popen("gnuplot 2>&1", "w");
    if (!g) {
        fprintf(stderr, LG_NAME ": --plot: no gnuplot (apt-get install gnuplot-nox)\n");
        unlink(dat);
        return;
    }
    if (best > 0) /* the figure: a vertical line */
        fprintf(g, "set arrow 2 from first %g, graph 0 to first %g, graph 1 nohead lc rgb "
                   "'#2a9d3a'\n", best, best);
    fprintf(g,
            "set terminal pngcairo size 1000,650 font 'sans,10' noenhanced\n"
            "set output '%s'\n"
            "set title 'clickstage: produce -> visible latency by rate (sustainable: "
            "%.0f events/s)'\n"
            "set xlabel 'rate sent by the generator (events/s)'\nset ylabel 'latency (ms)'\n"
            "set logscale y\nset grid\nset key outside below horizontal\n"
            "set arrow from graph 0, first %g to graph 1, first %g nohead dt 2 lc rgb 'gray40'\n"
            "set label 'p99 bound %g ms' at graph 0.01, first %g offset 0,0.7 tc rgb 'gray40'\n"
            "plot '%s' using 1:($5==1?$3:1/0) with points pt 7 ps 1.3 lc rgb '#2a9d3a' title 'p99 (kept up)',"
            " '' using 1:($5==0?$3:1/0) with points pt 9 ps 1.4 lc rgb '#d62728' title 'p99 (fell behind or over the bound)',"
            " '' using 1:2 with points pt 1 ps 1.1 lc rgb '#1f77b4' title 'p50',"
            " '' using 1:4 with points pt 2 ps 0.9 lc rgb 'gray50' title 'max'\n",
            o->plot, best, o->p99_ms, o->p99_ms, o->p99_ms, o->p99_ms, dat);
    int rc = pclose(g);
    unlink(dat);
    if (rc != 0)
        fprintf(stderr, LG_NAME ": --plot: gnuplot failed (%d)\n", rc);
    else
        fprintf(stderr, LG_NAME ": plot written to %s\n", o->plot);
}

int lg_sustain_run(const lg_sustain_opts *o, lg_prod *p, lg_watch *w, const cs_gen_plan *pl,
                   volatile int *stop, const char *describe_json)
{
    uint64_t total = cs_gen_plan_conf(pl)->nevents, pos = 0;
    step *v = calloc((size_t)o->max_steps + 1, sizeof *v);
    int n = 0, best = -1, lowest_fail = -1, gen_limited = 0, above_fail = 0, over = 0;
    double lo = 0, hi = 0, rate = o->start_rate;
    double clk_fail = 0; /* lowest sent/s of a final clickstage failure (lag, p99, nothing
                            visible); 0 = none */
    printf("find-sustainable: steps of %.0fs (%.0fs warm-up), p99 bound %.0f ms, lag growth "
           "bound %.1f%% of the rate\n",
           o->step_s, o->warmup_s, o->p99_ms, o->lag_slope_frac * 100);
    printf("%4s %11s %11s %11s %9s %9s %10s %8s %8s %8s %8s  %s\n", "step", "offered/s",
           "sent/s", "visible/s", "lag0", "lag1", "lag/s", "p50 ms", "p95 ms", "p99 ms",
           "max ms", "verdict");
    fflush(stdout);
    while (n < o->max_steps && !*stop) {
        if (run_step(o, p, w, &pos, total, rate, stop, &v[n]) < 0)
            break;
        row(&v[n], n + 1);
        /* a step that kept up but missed the latency bound, or where the generator fell short
         * of the rate, may have met a burst of contention (other processes, a broker GC): it
         * gets --retries more chances. A growing lag is not retried: that is clickstage. */
        for (int t = 0; t < o->retries && !v[n].pass && v[n].why &&
                        (!strcmp(v[n].why, "p99") || !strcmp(v[n].why, "generator")) &&
                        n + 1 < o->max_steps && !*stop;
             t++) {
            v[n].retried = 1;
            n++;
            if (run_step(o, p, w, &pos, total, rate, stop, &v[n]) < 0) {
                over = 1; /* the stream is over: v[n] was not run, steps 0..n-1 count */
                v[n - 1].retried = 0;
                break;
            }
            row(&v[n], n + 1);
        }
        if (over)
            break;
        if (v[n].pass) {
            lo = rate;
        } else {
            if (v[n].why && !strcmp(v[n].why, "generator"))
                gen_limited = 1;
            if (lowest_fail < 0 || v[n].rate < v[lowest_fail].rate)
                lowest_fail = n;
            hi = rate;
        }
        n++;
        if (o->max_rate > 0 && lo >= o->max_rate)
            break;
        if (lo > 0 && hi > 0 && hi / lo <= 1 + o->precision)
            break;
        if (hi == 0)
            rate = rate * o->growth;
        else if (lo == 0)
            rate = rate / o->growth;
        else
            rate = (lo + hi) / 2;
        if (o->max_rate > 0 && rate > o->max_rate)
            rate = o->max_rate;
        if (rate < 100)
            break;
    }
    /* the figure: the best kept-up step below every rate clickstage failed at (see the top) */
    {
        cs_sustain_step *ps = calloc((size_t)n + 1, sizeof *ps);
        for (int i = 0; i < n; i++)
            ps[i] = (cs_sustain_step){v[i].achieved, v[i].kept_up, !v[i].retried};
        best = cs_sustain_pick(ps, n, &clk_fail, &above_fail);
        free(ps);
    }
    if (above_fail)
        printf("\n%d step(s) kept up at or above %.0f events/s, where clickstage fell behind in "
               "another step: not taken (a quiet moment of the machine, not a capacity)\n",
               above_fail, clk_fail);
    const char *limited = best < 0 ? "none passed"
                          : lowest_fail < 0 ? (o->max_rate > 0 ? "max-rate" : "steps")
                          : gen_limited && v[lowest_fail].why && !strcmp(v[lowest_fail].why, "generator")
                              ? "generator"
                              : "clickstage";
    if (best >= 0)
        printf("\nsustainable: %.0f events/s (p99 %.1f ms, p50 %.1f ms); lowest failing step: %s\n",
               v[best].achieved, v[best].p99, v[best].p50,
               lowest_fail >= 0 ? v[lowest_fail].why : "none");
    else
        printf("\nsustainable: none of the steps passed\n");
    if (o->csv) {
        FILE *f = fopen(o->csv, "w");
        if (f) {
            fprintf(f, "step,offered,sent,visible,lag0,lag1,lag_slope,p50_ms,p95_ms,p99_ms,"
                       "max_ms,samples,flushes,pass,why\n");
            for (int i = 0; i < n; i++)
                fprintf(f, "%d,%.0f,%.0f,%.0f,%lld,%lld,%.0f,%.1f,%.1f,%.1f,%.1f,%llu,%llu,%d,%s\n",
                        i + 1, v[i].rate, v[i].achieved, v[i].consumed, (long long)v[i].lag0,
                        (long long)v[i].lag1, v[i].slope, v[i].p50, v[i].p95, v[i].p99, v[i].max,
                        (unsigned long long)v[i].samples, (unsigned long long)v[i].updates,
                        v[i].pass, v[i].why ? v[i].why : "");
            fclose(f);
        }
    }
    if (o->plot && n)
        plot(o, v, n, best >= 0 ? v[best].achieved : 0);
    printf("{\"sustainable_events_per_sec\":%.0f,\"p99_ms_at_sustainable\":%.1f,"
           "\"p95_ms_at_sustainable\":%.1f,\"p50_ms_at_sustainable\":%.1f,"
           "\"max_ms_at_sustainable\":%.1f,\"lowest_failing_rate\":%.0f,\"limited_by\":\"%s\","
           "\"p99_bound_ms\":%.0f,\"step_seconds\":%.0f,\"warmup_seconds\":%.0f,\"steps\":%d,"
           "\"sent\":%llu,\"kept_up_above_failure\":%d%s%s}\n",
           best >= 0 ? v[best].achieved : 0, best >= 0 ? v[best].p99 : 0,
           best >= 0 ? v[best].p95 : 0, best >= 0 ? v[best].p50 : 0,
           best >= 0 ? v[best].max : 0, lowest_fail >= 0 ? v[lowest_fail].rate : 0, limited,
           o->p99_ms, o->step_s, o->warmup_s, n, (unsigned long long)lg_prod_sent(p),
           above_fail, describe_json && *describe_json ? "," : "", describe_json ? describe_json : "");
    free(v);
    return best >= 0 ? 0 : 1;
}
