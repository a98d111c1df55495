/* config.h — the clickstage daemon's configuration (SPEC §5).
 *
 * One table in config.c is the single source of truth for every option: its name, type, default,
 * bounds and description drive the parsing of flags, environment and the YAML config file, the
 * validation, `--help`, `--help-markdown` (docs/configuration.md) and the startup dump (the
 * model is redis's standardConfig table and librdkafka's property table).
 *
 * Naming: option `flush_interval` is the flag `--flush-interval` (`--flush_interval` is accepted
 * too), the environment variable `CLICKSTAGE_FLUSH_INTERVAL` and the config-file key
 * `flush_interval` (or `flush-interval`).
 *
 * Precedence: defaults < config file < environment < flags.
 */
#ifndef CLICKSTAGE_CONFIG_H
#define CLICKSTAGE_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "redisurl.h"

/* log_level values (syslog severities) and log_format values: pipeline/log.h's; redis_state_lost
 * values: pipeline/coord.h's */
#include "coord.h"
#include "log.h"

typedef struct cs_config {
    char *config_file;      /* --config, CLICKSTAGE_CONFIG; "" = none */
    char *brokers;          /* default "127.0.0.1:9092"; normalised "a:1,b:2" (no spaces) */
    char *topics;           /* comma list, default "clickstream"; normalised, no spaces */
    char *group;            /* default "clickstage" */
    int threads;            /* 0 = online cores (default 0), 0..256 */
    char *fetch_threads_opt; /* option fetch_threads: "auto" (default) or 1..256 */
    int fetch_threads;      /* checked at load: 0 = auto (resolved by main with
                               cs_source_auto_fetch_threads: one per worker, drain and live),
                               else never above the workers, in either mode */
    char *rules;            /* default "deploy/rules/retail.yaml" */
    char *redis;            /* default "redis://127.0.0.1:6379/0"; also unix:///path.sock
                               and /path.sock (see cs_config_parse_redis_url) */
    char *prefix;           /* default "clickstage"; [A-Za-z0-9_.-]+ */
    int64_t flush_interval_ms; /* duration, default 250ms, 10ms..60s */
    char *dead_letter_topic;   /* default "" (none) */
    char *http_listen;      /* default "0.0.0.0:9464"; "" disables; host:port ([v6]:port) */
    int log_level;          /* enum error|warn|info|debug -> 3,4,6,7; default info */
    int log_format;         /* enum json|text -> 0,1; default json */
    int drain;              /* bool flag, default false */
    char *instance_id;      /* default "" = "<hostname>-<pid>" filled at load (never "" after) */
    int auto_offset_reset_earliest; /* option auto_offset_reset: earliest (1) | latest (0),
                                       default earliest */
    int64_t minute_ttl_ms;  /* duration, default 48h, 1m..365d */
    int batch_size;         /* messages per consume batch, default 2048, 1..100000 */
    int64_t redis_outage_pause_ms; /* duration, default 30s, 0 = never pause; pause consuming
                                      when counts could not be flushed for this long */
    int64_t shutdown_timeout_ms;   /* duration, default 10s, 1s..10m */
    char *group_instance_id; /* Kafka static membership; default "" = dynamic */
    int64_t snapshot_interval_ms; /* duration, default 30s, 0 = only on revoke/stop, ..1d */
    int redis_state_lost;   /* enum rebuild|fail -> CS_STATE_LOST_*; default rebuild */
    int redis_wait_replicas; /* WAIT for this many replicas after each flush, default 0 = no
                                WAIT, 0..16 */
    int64_t redis_wait_timeout_ms; /* duration, WAIT's timeout, default 100ms, 1ms..10s */
    char *kafka_props;      /* extra librdkafka properties "k=v,k=v", default ""; normalised
                               (no spaces around items; "\," and "\\" in a value are a comma
                               and a backslash); keys with their own option rejected; includes
                               sasl.password=<kafka_sasl_password> when that is set */
    char *kafka_sasl_password; /* default ""; folded into kafka_props at load (see there) */
} cs_config;

/* Fills c from defaults < config file < environment < argv. c's previous contents are ignored
 * (not freed). Returns 0 ok, 1 if --help, --help-markdown or --version was handled (printed to
 * `out`, stdout if NULL; caller exits 0), -1 on error with errstr naming the option and the
 * problem, e.g. "--flush-interval: '5x' is not a duration (use ms, s, m, h, d)" or
 * "unknown option --flsh-interval (did you mean --flush-interval?)" or
 * "CLICKSTAGE_THREADS: 999 is out of range 0..256" or
 * "config.yaml:3:1: unknown key 'brokr' (did you mean 'brokers'?)".
 * On 1 and -1 c is left zeroed (cs_config_free is still safe). argv[0] is the program name.
 * envp is a NULL-terminated "NAME=value" array (main's third argument or `environ`); NULL = none.
 * Only CLICKSTAGE_* variables are read; an unknown CLICKSTAGE_* variable is an error. */
int cs_config_load(cs_config *c, int argc, char **argv, char **envp, FILE *out,
                   char *errstr, size_t errlen);
void cs_config_free(cs_config *c);
/* Every option: flag, env, type, default, bounds, description. */
void cs_config_print_help(FILE *out);
/* The same as Markdown: docs/configuration.md. */
void cs_config_print_markdown(FILE *out);
/* One line per option "name=value" for the startup log (the Redis URL's password and
 * kafka_props values whose key looks secret are masked as "***"). */
void cs_config_dump(const cs_config *c, FILE *out);
/* Durations and integers are parsed by pipeline/parse.h (one grammar for every input). */

/* The Redis URL forms the `redis` option accepts: cs_redis_url_parse's (pipeline/redisurl.h,
 * the grammar the sink connects with), into a cs_redis_target. Returns 0, or -1 with `why`
 * saying what is wrong. */
int cs_config_parse_redis_url(const char *url, cs_redis_target *t, char *why, size_t whylen);

#endif
