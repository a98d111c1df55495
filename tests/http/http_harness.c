/* http_harness.c — serves cmd/clickstage/http.c over a cs_metrics snapshot with known values,
 * for tests/http/run.sh.
 *
 *   http_harness LISTEN REDIS_URL PREFIX JOURNEY
 *
 * Prints "port N" once listening, then republishes the snapshot every 200 ms (now_ms and the
 * workers' last loop advance; nothing else changes unless asked) until SIGTERM/SIGINT.
 *   SIGUSR1  toggle: worker 1 stalled, Redis down, no flush for 30 s (-> /healthz, /readyz 503)
 *   SIGUSR2  toggle: +20 events (stage 0) and +2 invalid (not_json) per 200 ms (rates: 100/s, 10/s)
 *   SIGHUP   toggle: publish a snapshot taken 20 s ago, then stop publishing (the control
 *            thread "hangs")
 *   SIGWINCH toggle: Redis refuses the flushes with OOM for the last 12 s (issue 20)
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "http.h"

static volatile sig_atomic_t g_term, g_usr1, g_usr2, g_hup, g_winch;

static void on_sig(int sig)
{
    if (sig == SIGUSR1)
        g_usr1 = !g_usr1;
    else if (sig == SIGUSR2)
        g_usr2 = !g_usr2;
    else if (sig == SIGWINCH)
        g_winch = !g_winch;
    else if (sig == SIGHUP)
        g_hup = !g_hup;
    else
        g_term = 1;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void known(cs_metrics *m, const char *journey)
{
    static const char *const stages[] = {"visit", "product", "cart", "checkout", "purchase"};
    static const uint64_t events[] = {1000, 600, 300, 120, 45};
    static const uint64_t buckets[CS_METRICS_FLUSH_BUCKETS] = {0, 2, 5, 8, 9, 9, 9, 10, 10, 10};
    memset(m, 0, sizeof *m);
    m->started_ms = 1763820000000;
    snprintf(m->journey, sizeof m->journey, "%s", journey);
    m->nstages = 5;
    for (int i = 0; i < 5; i++) {
        snprintf(m->stages[i], sizeof m->stages[i], "%s", stages[i]);
        m->events_by_stage[i] = events[i];
    }
    m->ndims = 2;
    snprintf(m->dims[0], sizeof m->dims[0], "channel");
    snprintf(m->dims[1], sizeof m->dims[1], "persona");
    /* the journey's own counts: this process's deltas (slot 0 = _none) */
    static const int64_t reached[6] = {0, 500, 320, 150, 60, 20};
    static const int64_t funnel[5] = {530, 330, 150, 60, 20};
    for (int i = 0; i < 6; i++) {
        m->j_reached[i] = reached[i];
        m->j_ended[i] = 10 * i + 1;
        m->j_active[i] = i - 1; /* _none: -1 (deltas of a process that restored sessions) */
    }
    for (int i = 0; i < 5; i++)
        m->j_funnel[i] = funnel[i];
    m->j_started = 900;
    static const int64_t cfunnel[5] = {400, 210, 90, 41, 12};
    for (int i = 0; i < 5; i++)
        m->j_cfunnel[i] = cfunnel[i];
    m->j_cstarted = 700;
    m->j_time_to[2][0] = 100; /* cart: 100 at 0 s, 40 in (10, 30] s, 10 past 90 d */
    m->j_time_to[2][2] = 40;
    m->j_time_to[2][CS_TT_NBUCKETS - 1] = 10;
    m->j_time_to_sum_ms[2] = 1234567;
    m->j_ctime_to[4][16] = 7; /* purchase: 7 in (14, 30] days */
    m->j_ctime_to_sum_ms[4] = 7 * 86400000LL * 20;
    m->messages_total = 12345;
    m->events_unclassified = 77;
    m->events_late = 3;
    m->invalid_by_reason[CS_INV_NOT_JSON] = 5;
    m->invalid_by_reason[CS_INV_TOO_LARGE] = 1;
    m->invalid_by_reason[CS_INV_NO_CUSTOMER] = 2;
    m->invalid_by_reason[CS_INV_BAD_TIME] = 4;
    m->invalid_by_reason[CS_INV_FUTURE_TIME] = 6;
    m->sessions_started = 900;
    m->sessions_ended = 850;
    m->sessions_open = 50;
    m->customers_tracked = 420;
    m->session_bytes = 65536;
    m->customer_bytes = 32768;
    m->watermark_ms = 1763826000123;
    m->flushes_ok = 9;
    m->flushes_failed = 1;
    memcpy(m->flush_bucket, buckets, sizeof buckets);
    m->flush_count = 10;
    m->flush_seconds_sum = 0.0421;
    m->redis_commands = 4711;
    m->redis_reconnects = 2;
    m->redis_up = 1;
    m->flush_seq = 99;
    m->rebalances = 3;
    m->redelivered_skipped = 17;
    m->dead_lettered = 12;
    m->npartitions = 3;
    const char *topics[] = {"clicks", "clicks", "we\"ird\\topic\nx"};
    const int64_t lags[] = {5, 0, 7};
    for (int i = 0; i < 3; i++) {
        cs_metrics_part *p = &m->parts[i];
        snprintf(p->topic, sizeof p->topic, "%s", topics[i]);
        p->partition = i;
        p->next_offset = 100;
        p->high_watermark = 100 + lags[i];
        p->lag = lags[i];
        p->watermark_ms = INT64_MIN;
    }
    m->reloads_ok = 2;
    m->reloads_failed = 1;
    snprintf(m->rules_sha256, sizeof m->rules_sha256, "%s",
             "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    m->nworkers = 2;
    m->worker_loops_n[0] = 1000;
    m->worker_loops_n[1] = 2000;
    m->flush_interval_ms = 250;
}

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "--help-metrics")) { /* the table http.c serves */
        cs_metrics_write_markdown(stdout);
        return 0;
    }
    if (argc != 5) {
        fprintf(stderr, "usage: %s LISTEN REDIS_URL PREFIX JOURNEY\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sig;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGWINCH, &sa, NULL);

    static cs_metrics_box box;
    static cs_metrics m;
    pthread_mutex_init(&box.mu, NULL);
    known(&m, argv[4]);
    /* nothing published yet: /healthz says "starting" until the first publish below */
    cs_http_conf c = {argv[1], argv[2], argv[3], argv[4], &box};
    char err[512];
    cs_http *h = cs_http_start(&c, err, sizeof err);
    if (!h) {
        fprintf(stderr, "cs_http_start: %s\n", err);
        return 1;
    }
    printf("port %d\n", cs_http_port(h));
    fflush(stdout);
    int frozen = 0;
    while (!g_term) {
        int64_t now = now_ms();
        if (g_hup && !frozen) { /* the last snapshot, 20 s old, stays */
            m.now_ms = now - 20000;
            cs_metrics_publish(&box, &m);
            frozen = 1;
        }
        if (!g_hup) {
            frozen = 0;
            m.now_ms = now;
            m.last_flush_ok_ms = now;
            for (int w = 0; w < m.nworkers; w++)
                m.worker_last_loop_ms[w] = now;
            m.healthy = 1;
            m.ready = 1;
            m.redis_up = 1;
            if (g_usr1) {
                m.worker_last_loop_ms[1] = now - 15000;
                m.healthy = 0;
                m.ready = 0;
                m.redis_up = 0;
                m.last_flush_ok_ms = now - 30000;
            }
            m.redis_refusal = CS_REDIS_OK;
            m.redis_refusal_text[0] = 0;
            if (g_winch) {
                m.ready = 0;
                m.last_flush_ok_ms = now - 12000;
                m.redis_refusal = CS_REDIS_OOM;
                snprintf(m.redis_refusal_text, sizeof m.redis_refusal_text, "%s",
                         "OOM command not allowed when used memory > 'maxmemory'.");
                if (!m.redis_refusal_since_ms)
                    m.redis_refusal_since_ms = now - 12000;
                m.redis_errors_n[CS_REDIS_OOM] += 1;
            } else {
                m.redis_refusal_since_ms = 0;
            }
            if (g_usr2) {
                m.events_by_stage[0] += 20;
                m.invalid_by_reason[CS_INV_NOT_JSON] += 2;
                m.messages_total += 22;
            }
            cs_metrics_publish(&box, &m);
        }
        usleep(200000);
    }
    cs_http_stop(h);
    return 0;
}
