/* clickstage — the daemon: Kafka in, exactly-counted stage deltas out to Redis (SPEC §3-§5).
 *
 * This file is the wiring: options (config.c), the logger, the rule table, the engine
 * (pipeline/engine.c: the worker side of source -> decode -> sessionize -> classify ->
 * aggregate), the coordinator (pipeline/coord.c: worker threads, the flush barrier, restore and
 * replay, fencing — the delivery protocol) and the HTTP server (http.c). It turns signals into
 * the coordinator's stop and the engine's rule swap, and the outcome into an exit code.
 * docs/architecture.md draws who calls whom.
 *
 * Exit codes: 0 clean stop or drain done; 1 bad configuration or usage; 2 could not start (rule
 * file, Kafka, Redis URL, HTTP address); 3 the final flush could not be written before
 * shutdown_timeout (the counts since the last flush are not in Redis and their offsets are not
 * committed, so a restart reads them again); 4 fenced and re-executing failed; 5 Redis lost the
 * counts and redis_state_lost=fail. Fenced (another instance owns a partition now, or Redis lost
 * acknowledged writes): the process re-executes itself, so that everything it owns afterwards is
 * restored from what Redis holds.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "classify.h"
#include "clickstage.h"
#include "config.h"
#include "coord.h"
#include "log.h"
#include "metrics.h"
#include "source.h"
#ifdef CS_HAVE_HTTP
#include "http.h"
#endif

static volatile sig_atomic_t g_term, g_hup;

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        g_hup = 1;
    else
        g_term = 1;
}

/* SIGHUP: a new rule table, or the old one stays (SPEC §2). */
static void reload_rules(const cs_config *cfg, cs_engine *e, cs_coord *c)
{
    char err[1024];
    cs_ruleset *rs = cs_rules_load_file(cfg->rules, err, sizeof err);
    if (!rs || cs_engine_swap_rules(e, rs, err, sizeof err) != 0) {
        if (rs)
            cs_rules_destroy(rs);
        cs_coord_note_reload(c, 0);
        CS_LOG(CS_LOG_ERROR, "rule reload rejected, the running table stays: %s", err);
        return;
    }
    cs_coord_note_reload(c, 1);
    CS_LOG(CS_LOG_INFO, "rules reloaded from %s (sha256 %s)", cfg->rules, cs_rules_sha256(rs));
}

/* The configuration at debug level, one option a line (secrets masked by cs_config_dump). */
static void log_config(const cs_config *cfg)
{
    if (!cs_log_on(CS_LOG_DEBUG))
        return;
    char *dump = NULL;
    size_t dlen = 0;
    FILE *df = open_memstream(&dump, &dlen);
    if (!df)
        return;
    cs_config_dump(cfg, df);
    fclose(df);
    char *save = NULL;
    for (char *line = strtok_r(dump, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        CS_LOG(CS_LOG_DEBUG, "config %s", line);
    free(dump);
}

int main(int argc, char **argv)
{
    extern char **environ;
    static cs_config cfg;
    char err[1024];
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help-metrics")) { /* docs/observability.md's table */
            cs_metrics_write_markdown(stdout);
            return 0;
        }
    int rc = cs_config_load(&cfg, argc, argv, environ, stdout, err, sizeof err);
    if (rc == 1)
        return 0;
    if (rc < 0) {
        fprintf(stderr, "clickstage: %s\n", err);
        return 1;
    }
    cs_log_setup(cfg.log_level, cfg.log_format, NULL);
    log_config(&cfg);
    cs_ruleset *rs = cs_rules_load_file(cfg.rules, err, sizeof err);
    if (!rs) {
        CS_LOG(CS_LOG_ERROR, "rules: %s", err);
        return 2;
    }
    int nw = cfg.threads > 0 ? cfg.threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (nw < 1)
        nw = 1;
    if (cfg.fetch_threads <= 0) /* fetch_threads auto */
        cfg.fetch_threads = cs_source_auto_fetch_threads(nw);
    CS_LOG(CS_LOG_INFO, "clickstage %s starting: journey %s, %d stage(s), %d rule(s), %d worker(s), "
           "%d fetch thread(s), %s",
           CLICKSTAGE_VERSION, cs_rules_journey(rs), cs_rules_nstages(rs), cs_rules_nrules(rs),
           nw, cfg.fetch_threads, cfg.drain ? "drain mode" : "live");
    cs_engine *e = cs_engine_new(rs, nw, err, sizeof err);
    if (!e) {
        CS_LOG(CS_LOG_ERROR, "engine: %s", err);
        return 2;
    }
    char client_id[300];
    snprintf(client_id, sizeof client_id, "clickstage-%s", cfg.instance_id);
    cs_coord_conf cc = {
        .brokers = cfg.brokers, .group = cfg.group, .topics = cfg.topics, .client_id = client_id,
        .group_instance_id = cfg.group_instance_id, .kafka_props = cfg.kafka_props,
        .dead_letter_topic = cfg.dead_letter_topic, .earliest = cfg.auto_offset_reset_earliest,
        .drain = cfg.drain, .batch_size = cfg.batch_size, .fetch_threads = cfg.fetch_threads,
        .redis_url = cfg.redis,
        .prefix = cfg.prefix, .instance_id = cfg.instance_id, .minute_ttl_ms = cfg.minute_ttl_ms,
        .flush_interval_ms = cfg.flush_interval_ms, .snapshot_interval_ms = cfg.snapshot_interval_ms,
        .shutdown_timeout_ms = cfg.shutdown_timeout_ms,
        .redis_outage_pause_ms = cfg.redis_outage_pause_ms, .redis_state_lost = cfg.redis_state_lost,
        .redis_wait_replicas = cfg.redis_wait_replicas,
        .redis_wait_timeout_ms = (int)cfg.redis_wait_timeout_ms,
        .stop_flag = &g_term};
    cs_coord *c = cs_coord_new(e, &cc, err, sizeof err);
    if (!c) {
        CS_LOG(CS_LOG_ERROR, "%s", err);
        cs_engine_destroy(e);
        return 2;
    }

    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (cs_coord_start(c, err, sizeof err) != 0) {
        int fatal = cs_coord_status(c) == CS_COORD_FATAL;
        CS_LOG(CS_LOG_ERROR, "%s%s", fatal ? "" : "kafka: ", err);
        cs_coord_destroy(c);
        cs_engine_destroy(e);
        return fatal ? 5 : 2;
    }
#ifdef CS_HAVE_HTTP
    cs_http *http = NULL;
    if (cfg.http_listen && *cfg.http_listen) {
        cs_http_conf hc = {cfg.http_listen, cfg.redis, cfg.prefix, cs_rules_journey(rs),
                           cs_coord_metrics(c)};
        http = cs_http_start(&hc, err, sizeof err);
        if (!http) {
            CS_LOG(CS_LOG_ERROR, "http %s: %s", cfg.http_listen, err);
            cs_coord_stop(c);
            cs_coord_destroy(c);
            cs_engine_destroy(e);
            return 2;
        }
        CS_LOG(CS_LOG_INFO,
               "serving /metrics, /healthz, /readyz, /api/journey and the web view on port %d",
               cs_http_port(http));
    }
#endif

    while (!g_term && cs_coord_step(c, 100) == CS_COORD_RUNNING) {
        if (g_hup) {
            g_hup = 0;
            reload_rules(&cfg, e, c);
        }
    }
    int st = cs_coord_stop(c);
#ifdef CS_HAVE_HTTP
    cs_http_stop(http);
#endif
    cs_coord_destroy(c);
    cs_engine_destroy(e);
    cs_config_free(&cfg);
    switch (st) {
    case CS_COORD_STOPPED:
        return 0;
    case CS_COORD_FLUSH_FAILED:
        return 3;
    case CS_COORD_STOPPED_FATAL:
        return 5;
    default:
        break;
    }
    /* fenced: a clean slate, the same program, arguments and environment, rejoining the group;
     * every partition it gets is restored from what Redis holds */
    CS_LOG(CS_LOG_WARN, "fenced: re-executing to rejoin the group with fresh state");
    fflush(NULL);
    execv("/proc/self/exe", argv);
    fprintf(stderr, "clickstage: fenced: re-executing failed (%s); exiting\n", strerror(errno));
    return 4;
}
