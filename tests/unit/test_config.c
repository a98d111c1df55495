/* test_config.c — the daemon's configuration (cmd/clickstage/config.c, SPEC §5).
 *
 * Run from tests/ (the Makefile does): the generated reference is ../docs/configuration.md.
 * CS_UPDATE_DOCS=1 rewrites that file from cs_config_print_markdown() instead of comparing.
 *
 * What is proven here:
 *  - the defaults are the documented ones, and every default text parses (through the same code
 *    path as user values) to what the table says;
 *  - precedence flags > environment > file > defaults, all four layers on one option;
 *  - every type's parse errors name the option as the user wrote it (flag, env var, or
 *    FILE:LINE:COL + key), exact messages; bounds of every integer and duration option, taken
 *    from the table itself (min and max accepted, one step outside rejected);
 *  - unknown flags, unknown CLICKSTAGE_* variables and unknown file keys are errors; other
 *    environment variables are ignored;
 *  - the duration parser, bool forms, flag syntax, string validators (Redis URL, host:port,
 *    topics, prefix, kafka_props), secret masking in the dump, and --help/--version;
 *  - docs/configuration.md is exactly what the table prints now, and its example config file
 *    loads to the defaults.
 *
 * config.c lives in cmd/clickstage/ (it is the daemon's, not the library's), so it is included
 * here directly; that also gives the tests its option table (cs_cfg_opts[], NOPTS) and static helpers.
 */
#include <ctype.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config_int.h"

#define NOPTS cs_cfg_nopts

#define DOC_PATH "../docs/configuration.md"

/* ---------------------------------------------------------------------------------------- */
/* helpers */

static char tmpdir[256];

static int setup_dir(void **state)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cs_test_config.XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    return 0;
}

static int teardown_dir(void **state)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Writes text to tmpdir/name and returns the path (static buffer, one per call site is fine). */
static const char *write_file(const char *name, const char *text)
{
    static char paths[8][400];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, 400, "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return p;
}

static int count(char **v)
{
    int n = 0;
    while (v && v[n])
        n++;
    return n;
}

#define ARGV(...) ((char *[]){"clickstage", __VA_ARGS__, NULL})
#define ENV(...) ((char *[]){__VA_ARGS__, NULL})
static char *no_args[] = {"clickstage", NULL};

static int load(cs_config *c, char **argv, char **envp, char *err, size_t errlen)
{
    FILE *out = fopen("/dev/null", "w");
    int rc = cs_config_load(c, count(argv), argv, envp, out, err, errlen);
    fclose(out);
    return rc;
}

/* Loads and expects success. */
static void load_ok(cs_config *c, char **argv, char **envp)
{
    char err[1024] = "";
    int rc = load(c, argv, envp, err, sizeof err);
    if (rc != 0)
        fail_msg("unexpected rc %d: %s", rc, err);
}

/* Loads, expects -1 with exactly `want` as the message, and a zeroed config. */
static void load_err(char **argv, char **envp, const char *want)
{
    cs_config c;
    char err[1024] = "";
    int rc = load(&c, argv, envp, err, sizeof err);
    if (rc != -1)
        fail_msg("expected an error '%s', got rc %d", want, rc);
    if (strcmp(err, want) != 0)
        fail_msg("error message\n  got:  %s\n  want: %s", err, want);
    cs_config zero;
    memset(&zero, 0, sizeof zero);
    assert_memory_equal(&c, &zero, sizeof c);
    cs_config_free(&c); /* safe on the zeroed config */
}

/* A config file of 20,000 nested '[' (libyaml's scanner is quadratic in flow nesting: 1.4 s
 * here, ~13 min for the 1 MiB the file may hold) is refused at the 32nd level by the composer
 * (pipeline/yamldoc.c), in the usual FILE:LINE:COL form. */
static void test_regression_config_yaml_deep_nesting(void **state)
{
    size_t depth = 20000;
    char *y = malloc(2 * depth + 16);
    size_t n = (size_t)sprintf(y, "topics: ");
    memset(y + n, '[', depth);
    memset(y + n + depth, ']', depth);
    n += 2 * depth;
    memcpy(y + n, "\n", 2);
    const char *path = write_file("deep.yaml", y);
    free(y);
    char flag[512], want[1024];
    snprintf(flag, sizeof flag, "--config=%s", path);
    snprintf(want, sizeof want, "%s:1:40: YAML syntax error: collections nested more than 32 deep",
             path);
    load_err(ARGV(flag), NULL, want);
}

static const cs_opt *opt_by_name(const char *name)
{
    for (int i = 0; i < NOPTS; i++)
        if (strcmp(cs_cfg_opts[i].name, name) == 0)
            return &cs_cfg_opts[i];
    fail_msg("no option %s", name);
    return NULL;
}

/* Runs f(out) into a malloc'd string. (noinline: gcc 12 otherwise mistakes the result for a
 * pointer to the local that open_memstream filled, -Wdangling-pointer.) */
static __attribute__((noinline)) char *capture(void (*f)(FILE *))
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    assert_non_null(m);
    f(m);
    fclose(m);
    return buf;
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* ---------------------------------------------------------------------------------------- */
/* defaults */

static void test_defaults(void **state)
{
    cs_config c;
    load_ok(&c, no_args, NULL);
    assert_string_equal(c.config_file, "");
    assert_string_equal(c.brokers, "127.0.0.1:9092");
    assert_string_equal(c.topics, "clickstream");
    assert_string_equal(c.group, "clickstage");
    assert_int_equal(c.threads, 0);
    assert_string_equal(c.rules, "deploy/rules/retail.yaml");
    assert_string_equal(c.redis, "redis://127.0.0.1:6379/0");
    assert_string_equal(c.prefix, "clickstage");
    assert_int_equal(c.flush_interval_ms, 250);
    assert_string_equal(c.dead_letter_topic, "");
    assert_string_equal(c.http_listen, "0.0.0.0:9464");
    assert_int_equal(c.log_level, CS_LOG_INFO);
    assert_int_equal(c.log_level, 6);
    assert_int_equal(c.log_format, CS_LOG_FORMAT_JSON);
    assert_int_equal(c.drain, 0);
    assert_int_equal(c.auto_offset_reset_earliest, 1);
    assert_int_equal(c.minute_ttl_ms, 48LL * 3600 * 1000);
    assert_int_equal(c.batch_size, 2048);
    assert_int_equal(c.redis_outage_pause_ms, 30000);
    assert_int_equal(c.shutdown_timeout_ms, 10000);
    assert_string_equal(c.kafka_props, "");
    /* instance_id: "<hostname>-<pid>" */
    char host[256] = "", want[300];
    gethostname(host, sizeof host - 1);
    for (char *p = host; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("_.:-", *p))
            *p = '_';
    snprintf(want, sizeof want, "%s-%ld", host[0] ? host : "localhost", (long)getpid());
    assert_string_equal(c.instance_id, want);
    cs_config_free(&c);
    cs_config_free(&c); /* idempotent */
}

/* Every default text parses to the value the canonical formatter prints back, and the table is
 * well formed (names unique, bounds sane, defaults inside them, flag/env names short). */
static void test_table_consistent(void **state)
{
    cs_config c;
    load_ok(&c, no_args, NULL);
    for (int i = 0; i < NOPTS; i++) {
        const cs_opt *o = &cs_cfg_opts[i];
        char buf[1024], fl[64], en[64];
        cs_cfg_flag_name(o, fl, sizeof fl);
        cs_cfg_env_name(o, en, sizeof en);
        assert_true(strlen(en) < 60);
        assert_non_null(o->desc);
        assert_true(strlen(o->desc) > 10);
        for (int j = 0; j < i; j++)
            assert_string_not_equal(o->name, cs_cfg_opts[j].name);
        cs_cfg_format(o, &c, 0, buf, sizeof buf);
        if (o->off == offsetof(cs_config, instance_id))
            continue; /* filled at load */
        if (o->type == T_DUR) {
            int64_t d;
            assert_int_equal(cs_parse_duration_ms(o->def, &d), 0);
            assert_int_equal(d, *cs_cfg_i64(&c, o));
            assert_true(o->min <= d && d <= o->max);
            assert_true(o->min >= 0 && o->min <= o->max);
        } else if (o->type == T_INT) {
            int v = *cs_cfg_int(&c, o);
            assert_true(o->min <= v && v <= o->max);
            assert_true(o->min >= INT_MIN && o->max <= INT_MAX);
            assert_string_equal(buf, o->def);
        } else {
            assert_string_equal(buf, o->def);
        }
    }
    cs_config_free(&c);
}

/* ---------------------------------------------------------------------------------------- */
/* precedence */

static void test_precedence_four_layers(void **state)
{
    const char *file = write_file("prec.yaml", "threads: 1\nbatch_size: 11\nprefix: from-file\n");
    char cfg[512];
    snprintf(cfg, sizeof cfg, "CLICKSTAGE_CONFIG=%s", file);
    cs_config c;

    /* flag > env > file > default, one option through all four */
    load_ok(&c, ARGV("--threads", "3"), ENV(cfg, "CLICKSTAGE_THREADS=2"));
    assert_int_equal(c.threads, 3);
    assert_int_equal(c.batch_size, 11); /* file */
    assert_string_equal(c.prefix, "from-file");
    assert_string_equal(c.config_file, file);
    cs_config_free(&c);

    load_ok(&c, no_args, ENV(cfg, "CLICKSTAGE_THREADS=2"));
    assert_int_equal(c.threads, 2);
    cs_config_free(&c);

    load_ok(&c, no_args, ENV(cfg));
    assert_int_equal(c.threads, 1);
    cs_config_free(&c);

    load_ok(&c, no_args, ENV("PATH=/usr/bin"));
    assert_int_equal(c.threads, 0);
    assert_int_equal(c.batch_size, 2048);
    cs_config_free(&c);

    /* the env var order does not matter: the file is read before any env var applies */
    load_ok(&c, no_args, ENV("CLICKSTAGE_PREFIX=from-env", cfg));
    assert_string_equal(c.prefix, "from-env");
    assert_int_equal(c.batch_size, 11);
    cs_config_free(&c);

    /* a repeated flag: the last one wins */
    load_ok(&c, ARGV("--threads", "3", "--threads=4"), NULL);
    assert_int_equal(c.threads, 4);
    cs_config_free(&c);
}

static void test_config_path_sources(void **state)
{
    const char *a = write_file("a.yaml", "group: from-a\n");
    const char *b = write_file("b.yaml", "group: from-b\n");
    char env[512], flag[512];
    snprintf(env, sizeof env, "CLICKSTAGE_CONFIG=%s", a);
    snprintf(flag, sizeof flag, "--config=%s", b);
    cs_config c;
    load_ok(&c, ARGV(flag), ENV(env));
    assert_string_equal(c.group, "from-b");
    assert_string_equal(c.config_file, b);
    cs_config_free(&c);
    load_ok(&c, no_args, ENV(env));
    assert_string_equal(c.group, "from-a");
    cs_config_free(&c);
    /* --config= (empty) turns the env's file off */
    load_ok(&c, ARGV("--config="), ENV(env));
    assert_string_equal(c.group, "clickstage");
    assert_string_equal(c.config_file, "");
    cs_config_free(&c);

    char want[600];
    snprintf(want, sizeof want, "--config: cannot open '%s/none.yaml': No such file or directory",
             tmpdir);
    char arg[400];
    snprintf(arg, sizeof arg, "%s/none.yaml", tmpdir);
    load_err(ARGV("--config", arg), NULL, want);
    snprintf(env, sizeof env, "CLICKSTAGE_CONFIG=%s", arg);
    snprintf(want, sizeof want,
             "CLICKSTAGE_CONFIG: cannot open '%s/none.yaml': No such file or directory", tmpdir);
    load_err(no_args, ENV(env), want);
}

/* ---------------------------------------------------------------------------------------- */
/* errors name the option, for every type and every source */

static void test_type_errors_flags(void **state)
{
    load_err(ARGV("--flush-interval", "5x"), NULL,
             "--flush-interval: '5x' is not a duration (use ms, s, m, h, d)");
    load_err(ARGV("--threads=four"), NULL, "--threads: 'four' is not an integer");
    load_err(ARGV("--threads="), NULL, "--threads: '' is not an integer");
    load_err(ARGV("--log-level", "verbose"), NULL,
             "--log-level: 'verbose' is not one of error, warn, info, debug");
    load_err(ARGV("--log-format", "xml"), NULL, "--log-format: 'xml' is not one of json, text");
    load_err(ARGV("--auto-offset-reset=none"), NULL,
             "--auto-offset-reset: 'none' is not one of earliest, latest");
    load_err(ARGV("--drain=maybe"), NULL,
             "--drain: 'maybe' is not a bool (true, false, 1, 0, yes, no, on, off)");
    load_err(ARGV("--prefix", "a b"), NULL,
             "--prefix: 'a b' is not 1..128 of [A-Za-z0-9_.-]");
    load_err(ARGV("--topics", "a,,b"), NULL, "--topics: 'a,,b' has an empty item");
    load_err(ARGV("--topics", "a,b c"), NULL,
             "--topics: 'b c' is not a topic name (1..249 of [A-Za-z0-9._-])");
    load_err(ARGV("--kafka-props", "linger.ms"), NULL,
             "--kafka-props: item 1 is not key=value (a comma in a value is written \\,)");
    load_err(ARGV("--group", ""), NULL, "--group: a consumer group must be 1..255 bytes");
    load_err(ARGV("--rules", ""), NULL, "--rules: empty path");
    load_err(ARGV("--brokers", "a\tb:1"), NULL,
             "--brokers: 'a\\x09b:1' contains a control character");
}

static void test_type_errors_env(void **state)
{
    load_err(no_args, ENV("CLICKSTAGE_THREADS=999"),
             "CLICKSTAGE_THREADS: 999 is out of range 0..256");
    load_err(no_args, ENV("CLICKSTAGE_FLUSH_INTERVAL=1.5s"),
             "CLICKSTAGE_FLUSH_INTERVAL: '1.5s' is not a duration (use ms, s, m, h, d)");
    load_err(no_args, ENV("CLICKSTAGE_LOG_FORMAT=yaml"),
             "CLICKSTAGE_LOG_FORMAT: 'yaml' is not one of json, text");
    load_err(no_args, ENV("CLICKSTAGE_DRAIN=2"),
             "CLICKSTAGE_DRAIN: '2' is not a bool (true, false, 1, 0, yes, no, on, off)");
    load_err(no_args, ENV("CLICKSTAGE_REDIS=http://x"),
             "CLICKSTAGE_REDIS: 'http://x' is not a Redis URL (expected "
             "redis://[[user]:password@]host[:port][/db], redis+cluster://host[:port],..., "
             "redis+sentinel://host[:port],.../master[/db], "
             "unix:///path.sock[?db=N&password=P] or /path.sock)");
    load_err(no_args, ENV("CLICKSTAGE_HTTP_LISTEN=9464"),
             "CLICKSTAGE_HTTP_LISTEN: '9464' has no port (expected host:port)");
}

static void test_type_errors_file(void **state)
{
    struct {
        const char *yaml, *want; /* want: after "PATH:" */
    } cases[] = {
        {"brokers: a:1\nflush_interval: 5x\n",
         "2:17: flush_interval: '5x' is not a duration (use ms, s, m, h, d)"},
        {"threads: 999\n", "1:10: threads: 999 is out of range 0..256"},
        {"# c\nlog_level: loud\n",
         "2:12: log_level: 'loud' is not one of error, warn, info, debug"},
        {"drain: perhaps\n",
         "1:8: drain: 'perhaps' is not a bool (true, false, 1, 0, yes, no, on, off)"},
        {"threads: ~\n", "1:10: threads: '' is not an integer"},
        {"threads: [1]\n", "1:10: threads: expected a scalar, not a list"},
        {"topics: {a: b}\n", "1:9: topics: expected a scalar or a list, not a mapping"},
        {"topics: [a, [b]]\n", "1:13: topics: items must be scalars, not a list"},
        {"topics: [a, 'b,c']\n", "1:13: topics: 'b,c' cannot contain ','"},
        {"topics: []\n", "1:9: topics: needs at least 1 item"},
        {"kafka_props: [a]\n", "1:14: kafka_props: expected a scalar or a mapping, not a list"},
        {"kafka_props: {group.id: g}\n",
         "1:14: kafka_props: 'group.id' has its own option: use --group"},
        {"prefix: \"a\\nb\"\n", "1:9: prefix: 'a\\x0ab' contains a control character"},
        {"brokr: x\n", "1:1: unknown key 'brokr' (did you mean 'brokers'?)"},
        {"  zzz: 1\n", "1:3: unknown key 'zzz'"},
        {"[a]: 1\n", "1:1: keys must be option names, not a list"},
        {"config: other.yaml\n",
         "1:1: config cannot be set in a config file (use --config or CLICKSTAGE_CONFIG)"},
        {"threads: 1\nbatch-size: 2\nthreads: 3\n",
         "3:1: duplicate key 'threads' (first set at line 1)"},
        {"flush_interval: 1s\nflush-interval: 2s\n",
         "2:1: duplicate key 'flush-interval' (first set at line 1)"},
        {"- threads\n", "1:1: a config file is a mapping of option: value, not a list"},
        {"just text\n", "1:1: a config file is a mapping of option: value, not a scalar"},
        {"threads: 1\n---\nthreads: 2\n",
         "2:1: a config file holds one YAML document; found a second one"},
        {"topics: [a, b\n",
         "2:1: YAML syntax error: did not find expected ',' or ']' (while parsing a flow sequence "
         "started at line 1, column 9)"},
        {"a: b: c\n", "1:5: YAML syntax error: mapping values are not allowed in this context"},
        {"threads: \"\\xff\"\n", NULL}, /* any error is fine; just no crash */
        {"dead_letter_topic: clickstream\n",
         "1:20: dead_letter_topic: 'clickstream' is also an input topic (see topics)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *path = write_file("bad.yaml", cases[i].yaml);
        char flag[512], want[1024];
        snprintf(flag, sizeof flag, "--config=%s", path);
        cs_config c;
        char err[1024] = "";
        int rc = load(&c, ARGV(flag), NULL, err, sizeof err);
        if (rc != -1)
            fail_msg("case %zu: expected an error, rc %d", i, rc);
        if (cases[i].want) {
            snprintf(want, sizeof want, "%s:%s", path, cases[i].want);
            if (strcmp(err, want) != 0)
                fail_msg("case %zu:\n  got:  %s\n  want: %s", i, err, want);
        } else {
            assert_true(strncmp(err, path, strlen(path)) == 0);
        }
        cs_config_free(&c);
    }
}

static void test_file_forms(void **state)
{
    /* empty, comments only: nothing set */
    const char *paths[] = {write_file("e1.yaml", ""), write_file("e2.yaml", "# nothing\n\n"),
                           write_file("e3.yaml", "---\n...\n")};
    for (size_t i = 0; i < 3; i++) {
        char flag[512];
        snprintf(flag, sizeof flag, "--config=%s", paths[i]);
        cs_config c;
        load_ok(&c, ARGV(flag), NULL);
        assert_int_equal(c.threads, 0);
        cs_config_free(&c);
    }
    const char *p = write_file("forms.yaml",
                               "brokers: [k1:9092, 'k2:9093']\n"
                               "topics:\n  - clicks-web\n  - clicks-app\n"
                               "kafka_props:\n  security.protocol: ssl\n  linger.ms: 5\n"
                               "dead-letter-topic:\n"          /* plain null = empty */
                               "http_listen: \"\"\n"
                               "drain: yes\n"
                               "log_level: DEBUG\n"             /* enums: any case */
                               "auto_offset_reset: latest\n"
                               "minute_ttl: 90d\n"
                               "instance_id: &id node-1\n"      /* anchors and aliases */
                               "group: *id\n"
                               "flush-interval: 1s\n");
    char flag[512];
    snprintf(flag, sizeof flag, "--config=%s", p);
    cs_config c;
    load_ok(&c, ARGV(flag), NULL);
    assert_string_equal(c.brokers, "k1:9092,k2:9093");
    assert_string_equal(c.topics, "clicks-web,clicks-app");
    assert_string_equal(c.kafka_props, "security.protocol=ssl,linger.ms=5");
    assert_string_equal(c.dead_letter_topic, "");
    assert_string_equal(c.http_listen, "");
    assert_int_equal(c.drain, 1);
    assert_int_equal(c.log_level, CS_LOG_DEBUG);
    assert_int_equal(c.auto_offset_reset_earliest, 0);
    assert_int_equal(c.minute_ttl_ms, 90LL * 86400000);
    assert_string_equal(c.instance_id, "node-1");
    assert_string_equal(c.group, "node-1");
    assert_int_equal(c.flush_interval_ms, 1000);
    cs_config_free(&c);
}

/* Bounds of every integer and duration option, from the table: min and max pass, one unit
 * outside fails with the option's name and the range in the message. */
static void test_bounds_from_table(void **state)
{
    int tested = 0;
    for (int i = 0; i < NOPTS; i++) {
        const cs_opt *o = &cs_cfg_opts[i];
        if (o->type != T_INT && o->type != T_DUR)
            continue;
        char fl[64], en[64], bounds[128];
        cs_cfg_flag_name(o, fl, sizeof fl);
        cs_cfg_env_name(o, en, sizeof en);
        cs_cfg_fmt_bounds(o, bounds, sizeof bounds);
        int64_t vals[4] = {o->min, o->max, o->min - 1, o->max + 1};
        for (int k = 0; k < 4; k++) {
            char text[64], arg[128], want[512];
            if (o->type == T_INT)
                snprintf(text, sizeof text, "%" PRId64, vals[k]);
            else if (vals[k] < 0)
                continue; /* a negative duration is a syntax error, tested elsewhere */
            else
                snprintf(text, sizeof text, "%" PRId64 "ms", vals[k]);
            snprintf(arg, sizeof arg, "%s=%s", fl, text);
            cs_config c;
            if (k < 2) {
                load_ok(&c, ARGV(arg), NULL);
                if (o->type == T_INT)
                    assert_int_equal(*cs_cfg_int(&c, o), vals[k]);
                else
                    assert_int_equal(*cs_cfg_i64(&c, o), vals[k]);
                cs_config_free(&c);
            } else {
                snprintf(want, sizeof want, "%s: %s is out of range %s", fl, text, bounds);
                load_err(ARGV(arg), NULL, want);
                snprintf(arg, sizeof arg, "%s=%s", en, text);
                snprintf(want, sizeof want, "%s: %s is out of range %s", en, text, bounds);
                load_err(no_args, ENV(arg), want);
            }
            tested++;
        }
    }
    assert_true(tested >= 20);
    /* the documented bounds */
    char b[128];
    cs_cfg_fmt_bounds(opt_by_name("threads"), b, sizeof b);
    assert_string_equal(b, "0..256");
    cs_cfg_fmt_bounds(opt_by_name("flush_interval"), b, sizeof b);
    assert_string_equal(b, "10ms..1m");
    cs_cfg_fmt_bounds(opt_by_name("minute_ttl"), b, sizeof b);
    assert_string_equal(b, "1m..365d");
    cs_cfg_fmt_bounds(opt_by_name("batch_size"), b, sizeof b);
    assert_string_equal(b, "1..100000");
    cs_cfg_fmt_bounds(opt_by_name("shutdown_timeout"), b, sizeof b);
    assert_string_equal(b, "1s..10m");
    load_err(ARGV("--flush-interval", "61s"), NULL,
             "--flush-interval: 61s is out of range 10ms..1m");
    load_err(ARGV("--threads", "-1"), NULL, "--threads: -1 is out of range 0..256");
    load_err(ARGV("--threads", "99999999999999999999"), NULL,
             "--threads: '99999999999999999999' is not an integer");
    cs_config c;
    load_ok(&c, ARGV("--redis-outage-pause", "0", "--flush-interval", "60s", "--minute-ttl=365d"),
            NULL);
    assert_int_equal(c.redis_outage_pause_ms, 0);
    assert_int_equal(c.flush_interval_ms, 60000);
    cs_config_free(&c);
}

/* ---------------------------------------------------------------------------------------- */
/* unknown names */

static void test_unknown_names(void **state)
{
    load_err(ARGV("--flsh-interval", "5s"), NULL,
             "unknown option --flsh-interval (did you mean --flush-interval?)");
    load_err(ARGV("--flsh-interval=5s"), NULL,
             "unknown option --flsh-interval (did you mean --flush-interval?)");
    load_err(ARGV("--frobnicate"), NULL, "unknown option --frobnicate (see --help)");
    load_err(ARGV("-t", "4"), NULL,
             "unknown option -t (options are --name VALUE or --name=VALUE)");
    load_err(ARGV("deploy/rules/retail.yaml"), NULL,
             "unexpected argument 'deploy/rules/retail.yaml' (clickstage takes only options; "
             "see --help)");
    load_err(ARGV("--"), NULL,
             "unexpected argument '--' (clickstage takes only options; see --help)");
    load_err(ARGV("--drain", "false"), NULL,
             "unexpected argument 'false' (clickstage takes only options; see --help)");
    load_err(no_args, ENV("CLICKSTAGE_THREDS=4"),
             "unknown environment variable CLICKSTAGE_THREDS (did you mean CLICKSTAGE_THREADS?)");
    load_err(no_args, ENV("CLICKSTAGE_NOPE=1"),
             "unknown environment variable CLICKSTAGE_NOPE (clickstage reads only its own options "
             "from CLICKSTAGE_*; see --help)");
    load_err(no_args, ENV("CLICKSTAGE_threads=1"),
             "unknown environment variable CLICKSTAGE_threads (did you mean CLICKSTAGE_THREADS?)");
    /* other variables are not ours */
    cs_config c;
    load_ok(&c, no_args,
            ENV("PATH=/bin", "CLICKSTAGEX=1", "clickstage_threads=9", "CS_MODEL_EVENTS=1", "X"));
    assert_int_equal(c.threads, 0);
    cs_config_free(&c);
}

/* ---------------------------------------------------------------------------------------- */
/* scalar syntax */

static void test_duration_parser(void **state)
{
    struct {
        const char *s;
        int64_t ms; /* -1 = error */
    } cases[] = {
        {"0", 0},          {"0ms", 0},         {"250ms", 250},     {"30s", 30000},
        {"5m", 300000},    {"48h", 172800000}, {"90d", 7776000000LL},
        {"1", -1},         {"250", -1},        {"", -1},           {"ms", -1},
        {"5x", -1},        {"5 s", -1},        {" 5s", -1},        {"5s ", -1},
        {"-5s", -1},       {"+5s", -1},        {"1.5s", -1},       {"5S", -1},
        {"5sec", -1},      {"1h30m", -1},      {"5mss", -1},       {"3650d", 3650LL * 86400000},
        {"3651d", -1},     {"99999999999999999999999d", -1},
        {"315360000000ms", 315360000000LL},
        {"315360000001ms", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t v = 12345;
        int rc = cs_parse_duration_ms(cases[i].s, &v);
        if (cases[i].ms < 0) {
            if (rc != -1)
                fail_msg("'%s' should not parse (got %" PRId64 ")", cases[i].s, v);
            assert_int_equal(v, 12345); /* untouched on error */
        } else {
            if (rc != 0 || v != cases[i].ms)
                fail_msg("'%s': rc %d value %" PRId64 ", want %" PRId64, cases[i].s, rc, v,
                         cases[i].ms);
        }
    }
    int64_t v;
    assert_int_equal(cs_parse_duration_ms(NULL, &v), -1);
    /* the formatter's output parses back to the same value */
    int64_t samples[] = {0, 1, 999, 1000, 1500, 60000, 90000, 3600000, 86400000, 172800000,
                         7776000000LL, 86400001};
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        char buf[32];
        cs_format_duration(samples[i], buf, sizeof buf);
        assert_int_equal(cs_parse_duration_ms(buf, &v), 0);
        assert_int_equal(v, samples[i]);
    }
    char buf[32];
    cs_format_duration(172800000, buf, sizeof buf);
    assert_string_equal(buf, "2d");
    cs_format_duration(90000, buf, sizeof buf);
    assert_string_equal(buf, "90s");
}

static void test_bool_forms(void **state)
{
    struct {
        const char *arg;
        int want;
    } cases[] = {{"--drain", 1},         {"--drain=true", 1}, {"--drain=false", 0},
                 {"--drain=1", 1},       {"--drain=0", 0},    {"--drain=yes", 1},
                 {"--drain=no", 0},      {"--drain=on", 1},   {"--drain=off", 0},
                 {"--drain=TRUE", 1},    {"--drain=False", 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cs_config c;
        load_ok(&c, ARGV((char *)cases[i].arg), NULL);
        assert_int_equal(c.drain, cases[i].want);
        cs_config_free(&c);
    }
    cs_config c;
    load_ok(&c, no_args, ENV("CLICKSTAGE_DRAIN=1"));
    assert_int_equal(c.drain, 1);
    cs_config_free(&c);
    load_ok(&c, ARGV("--drain=false"), ENV("CLICKSTAGE_DRAIN=true"));
    assert_int_equal(c.drain, 0);
    cs_config_free(&c);
    load_err(ARGV("--drain="), NULL,
             "--drain: '' is not a bool (true, false, 1, 0, yes, no, on, off)");
}

static void test_flag_syntax(void **state)
{
    cs_config c;
    load_ok(&c, ARGV("--brokers", "k:1", "--topics=a,b", "--flush_interval", "1s",
                     "--dead-letter-topic=", "--kafka-props", "a=b=c"),
            NULL);
    assert_string_equal(c.brokers, "k:1");
    assert_string_equal(c.topics, "a,b");
    assert_int_equal(c.flush_interval_ms, 1000);
    assert_string_equal(c.dead_letter_topic, "");
    assert_string_equal(c.kafka_props, "a=b=c"); /* the first '=' splits */
    cs_config_free(&c);
    /* a value that starts with "--" needs the = form */
    load_err(ARGV("--group", "--x"), NULL,
             "--group: missing value before --x (write --group=VALUE for a value that starts "
             "with --)");
    load_ok(&c, ARGV("--group=--x"), NULL);
    assert_string_equal(c.group, "--x");
    cs_config_free(&c);
    load_ok(&c, ARGV("--group", "-"), NULL); /* a lone dash is a value */
    assert_string_equal(c.group, "-");
    cs_config_free(&c);
    load_err(ARGV("--brokers"), NULL, "--brokers: missing value");
    /* list normalisation: spaces around items and around '=' */
    load_ok(&c, ARGV("--topics", " a , b ", "--kafka-props", "linger.ms = 5 , acks=all"), NULL);
    assert_string_equal(c.topics, "a,b");
    assert_string_equal(c.kafka_props, "linger.ms=5,acks=all");
    cs_config_free(&c);
    /* argc 0 / NULL argv: defaults */
    char err[256];
    assert_int_equal(cs_config_load(&c, 0, NULL, NULL, NULL, err, sizeof err), 0);
    assert_int_equal(c.batch_size, 2048);
    cs_config_free(&c);
    /* NULL errstr is allowed */
    assert_int_equal(cs_config_load(&c, 2, ARGV("--threads=x"), NULL, NULL, NULL, 0), -1);
}

/* ---------------------------------------------------------------------------------------- */
/* string validators */

static void test_redis_urls(void **state)
{
    struct {
        const char *url;
        int ok, is_unix, port, db;
        const char *host_or_path, *user, *password;
    } cases[] = {
        {"redis://127.0.0.1:6379/0", 1, 0, 6379, 0, "127.0.0.1", "", ""},
        {"redis://localhost", 1, 0, 6379, 0, "localhost", "", ""},
        {"redis://localhost/", 1, 0, 6379, 0, "localhost", "", ""},
        {"redis://r.example.com:7000/15", 1, 0, 7000, 15, "r.example.com", "", ""},
        {"redis://[::1]:6380/2", 1, 0, 6380, 2, "::1", "", ""},
        {"redis://:s3cret@h", 1, 0, 6379, 0, "h", "", "s3cret"},
        {"redis://app:p%40ss%3Aw%2Fd@h:1/3", 1, 0, 1, 3, "h", "app", "p@ss:w/d"},
        {"redis://secret@h", 1, 0, 6379, 0, "h", "", "secret"}, /* as redis-cli */
        {"redis://h?db=3", 1, 0, 6379, 3, "h", "", ""},
        {"redis://h/?db=2", 1, 0, 6379, 2, "h", "", ""},
        {"redis://h/2147483647", 1, 0, 6379, 2147483647, "h", "", ""},
        {"/run/redis.sock", 1, 1, 6379, 0, "/run/redis.sock", "", ""},
        {"unix:///s.sock?db=1&password=p%40ss", 1, 1, 6379, 1, "/s.sock", "", "p@ss"},
        {"unix:///s.sock?", 1, 1, 6379, 0, "/s.sock", "", ""},
        {"unix:///run/redis.sock", 1, 1, 6379, 0, "/run/redis.sock", "", ""},
        {"unix:///run/redis.sock?db=4", 1, 1, 6379, 4, "/run/redis.sock", "", ""},
        {"unix://:pw@/tmp/r.sock", 0, 0, 0, 0, NULL, NULL, NULL}, /* the sink has no userinfo */
        {"redis://", 0, 0, 0, 0, NULL, NULL, NULL},
        {"redis://h:0", 0, 0, 0, 0, NULL, NULL, NULL},
        {"redis://h:65536", 0, 0, 0, 0, NULL, NULL, NULL},
        {"redis://h:x", 0, 0, 0, 0, NULL, NULL, NULL},
        {"redis://h/x", 0, 0, 0, 0, NULL, NULL, NULL},
        {"redis://h/2147483648", 0, 0, 0, 0, NULL, NULL, NULL},
        {"redis://h?password=x", 0, 0, 0, 0, NULL, NULL, NULL},
        {"redis://h?db=x", 0, 0, 0, 0, NULL, NULL, NULL},
        {"unix:///s.sock?db=1&bogus", 0, 0, 0, 0, NULL, NULL, NULL},
        {"/", 0, 0, 0, 0, NULL, NULL, NULL},
        {"redis://a:%zz@h", 0, 0, 0, 0, NULL, NULL, NULL},
        {"redis://a:%00@h", 0, 0, 0, 0, NULL, NULL, NULL},
        {"redis://[zz]:1", 0, 0, 0, 0, NULL, NULL, NULL},
        {"rediss://h", 0, 0, 0, 0, NULL, NULL, NULL},
        {"127.0.0.1:6379", 0, 0, 0, 0, NULL, NULL, NULL},
        {"unix://", 0, 0, 0, 0, NULL, NULL, NULL},
        {"unix://relative.sock", 0, 0, 0, 0, NULL, NULL, NULL},
        {"unix:///", 0, 0, 0, 0, NULL, NULL, NULL},
        {"unix:///r.sock?x=1", 0, 0, 0, 0, NULL, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cs_redis_target t;
        char why[512] = "";
        int rc = cs_config_parse_redis_url(cases[i].url, &t, why, sizeof why);
        if (!cases[i].ok) {
            if (rc != -1)
                fail_msg("'%s' should be rejected", cases[i].url);
            assert_non_null(strstr(why, cases[i].url[0] ? "'" : ""));
            continue;
        }
        if (rc != 0)
            fail_msg("'%s': %s", cases[i].url, why);
        assert_int_equal(t.is_unix, cases[i].is_unix);
        assert_int_equal(t.db, cases[i].db);
        assert_string_equal(t.user, cases[i].user);
        assert_string_equal(t.password, cases[i].password);
        if (t.is_unix) {
            assert_string_equal(t.path, cases[i].host_or_path);
        } else {
            assert_string_equal(t.host, cases[i].host_or_path);
            assert_int_equal(t.port, cases[i].port);
        }
    }
    /* a long socket path does not fit sun_path */
    char url[300];
    snprintf(url, sizeof url, "unix:///%0200d", 0);
    cs_redis_target t;
    char why[512];
    assert_int_equal(cs_config_parse_redis_url(url, &t, why, sizeof why), -1);
}

/* redis+cluster:// and redis+sentinel:// (pipeline/redisurl.h): the host list, the master's
 * name, the sentinels' own credentials, and what each refuses. */
static void test_redis_urls_ha(void **state)
{
    cs_redis_target t;
    char why[512];
    assert_int_equal(cs_config_parse_redis_url("redis://h:7000", &t, why, sizeof why), 0);
    assert_int_equal(t.mode, CS_REDIS_MODE_PLAIN);
    assert_int_equal(t.nseeds, 0);

    assert_int_equal(cs_config_parse_redis_url("redis+cluster://:pw@a:7000,b,[::1]:7002/0", &t,
                                               why, sizeof why), 0);
    assert_int_equal(t.mode, CS_REDIS_MODE_CLUSTER);
    assert_int_equal(t.nseeds, 3);
    assert_string_equal(t.seeds[0].host, "a");
    assert_int_equal(t.seeds[0].port, 7000);
    assert_string_equal(t.seeds[1].host, "b");
    assert_int_equal(t.seeds[1].port, 6379);
    assert_string_equal(t.seeds[2].host, "::1");
    assert_int_equal(t.seeds[2].port, 7002);
    assert_string_equal(t.host, "a");
    assert_int_equal(t.port, 7000);
    assert_string_equal(t.password, "pw");
    assert_int_equal(t.db, 0);

    assert_int_equal(cs_config_parse_redis_url(
                         "redis+sentinel://app:p%40ss@s1,s2:26380/my-master.1/3"
                         "?sentinel_password=s%3Ap&sentinel_user=sen",
                         &t, why, sizeof why), 0);
    assert_int_equal(t.mode, CS_REDIS_MODE_SENTINEL);
    assert_int_equal(t.nseeds, 2);
    assert_string_equal(t.seeds[0].host, "s1");
    assert_int_equal(t.seeds[0].port, 26379);
    assert_string_equal(t.seeds[1].host, "s2");
    assert_int_equal(t.seeds[1].port, 26380);
    assert_string_equal(t.master_name, "my-master.1");
    assert_int_equal(t.db, 3);
    assert_string_equal(t.user, "app");
    assert_string_equal(t.password, "p@ss");
    assert_string_equal(t.sentinel_user, "sen");
    assert_string_equal(t.sentinel_password, "s:p");
    assert_int_equal(cs_config_parse_redis_url("redis+sentinel://s/m?db=2", &t, why, sizeof why),
                     0);
    assert_int_equal(t.db, 2);
    assert_string_equal(t.master_name, "m");

    static const char *const bad[] = {
        "redis+cluster://a,b/1",              /* db 0 only */
        "redis+cluster://a,,b",               /* an empty host */
        "redis+cluster://a,b:0",
        "redis+cluster://1,2,3,4,5,6,7,8,9",  /* more than CS_REDIS_MAX_SEEDS */
        "redis+sentinel://s1,s2",             /* no master name */
        "redis+sentinel://s1/",
        "redis+sentinel://s1/m/x",
        "redis+sentinel://s1/m*x",
        "redis+sentinel://s1/m?password=x",   /* the data nodes' password goes before '@' */
        "redis+sentinel://s1/m?sentinel_password=%zz",
        "redis+sentinel://s1/m?sentinel_password=%00",
        "redis://a,b",                        /* one host only */
        "redis+clusters://a",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (cs_config_parse_redis_url(bad[i], &t, why, sizeof why) != -1)
            fail_msg("'%s' should be rejected", bad[i]);
    /* the sentinels' password never shows in a message */
    assert_int_equal(cs_config_parse_redis_url("redis+sentinel://s1/m?sentinel_password=SeKrit&x",
                                               &t, why, sizeof why), -1);
    assert_null(strstr(why, "SeKrit"));
    /* a long master name */
    char url[400];
    snprintf(url, sizeof url, "redis+sentinel://s/%0200d", 0);
    assert_int_equal(cs_config_parse_redis_url(url, &t, why, sizeof why), -1);
}

static void test_other_strings(void **state)
{
    cs_config c;
    load_ok(&c, ARGV("--http-listen", "[::]:0", "--brokers", "SSL://k1:9093, [::1]:9092,k3",
                     "--topics", "^clicks-.*,orders", "--prefix", "cs.prod-1_x", "--instance-id",
                     "pod-7:a", "--dead-letter-topic", "clicks.dlq"),
            NULL);
    assert_string_equal(c.http_listen, "[::]:0");
    assert_string_equal(c.brokers, "SSL://k1:9093,[::1]:9092,k3");
    assert_string_equal(c.topics, "^clicks-.*,orders");
    assert_string_equal(c.instance_id, "pod-7:a");
    cs_config_free(&c);
    load_ok(&c, ARGV("--http-listen="), NULL);
    assert_string_equal(c.http_listen, "");
    cs_config_free(&c);

    load_err(ARGV("--http-listen", "0.0.0.0"), NULL,
             "--http-listen: '0.0.0.0' has no port (expected host:port)");
    load_err(ARGV("--http-listen", ":9464"), NULL,
             "--http-listen: ':9464' has no host (expected host:port)");
    load_err(ARGV("--http-listen", "h:70000"), NULL,
             "--http-listen: 'h:70000' has a bad port (0..65535)");
    load_err(ARGV("--brokers", "k:0"), NULL, "--brokers: 'k:0' has a bad port (1..65535)");
    load_err(ARGV("--brokers", "1ssl://k"), NULL,
             "--brokers: '1ssl://k' has a bad protocol prefix");
    load_err(ARGV("--topics", "^"), NULL, "--topics: '^' is an empty regular expression");
    load_err(ARGV("--topics", ".."), NULL,
             "--topics: '..' is not a topic name (1..249 of [A-Za-z0-9._-])");
    load_err(ARGV("--dead-letter-topic", "^x"), NULL,
             "--dead-letter-topic: a dead-letter topic cannot be a regular expression");
    load_err(ARGV("--topics", "a,dlq", "--dead-letter-topic", "dlq"), NULL,
             "--dead-letter-topic: 'dlq' is also an input topic (see topics)");
    load_err(no_args, ENV("CLICKSTAGE_DEAD_LETTER_TOPIC=clickstream"),
             "CLICKSTAGE_DEAD_LETTER_TOPIC: 'clickstream' is also an input topic (see topics)");
    load_err(ARGV("--instance-id", "a b"), NULL,
             "--instance-id: 'a b' is not 0..255 of [A-Za-z0-9_.:-]");
    load_err(ARGV("--kafka-props", "bootstrap.servers=x"), NULL,
             "--kafka-props: 'bootstrap.servers' has its own option: use --brokers");
    load_err(ARGV("--kafka-props", "auto.offset.reset=latest"), NULL,
             "--kafka-props: 'auto.offset.reset' has its own option: use --auto-offset-reset");
    load_err(ARGV("--kafka-props", "=x"), NULL,
             "--kafka-props: '' is not a librdkafka property name");
    /* too long values are rejected before anything else */
    char *big = malloc(MAX_VALUE_LEN + 16);
    memcpy(big, "--group=", 8);
    memset(big + 8, 'g', MAX_VALUE_LEN + 1);
    big[8 + MAX_VALUE_LEN + 1] = '\0';
    load_err(ARGV(big), NULL, "--group: value is longer than 8192 bytes");
    free(big);
}

static void test_dump_masks_secrets(void **state)
{
    cs_config c;
    load_ok(&c, ARGV("--redis", "redis://app:hunter2@r:6379/1", "--kafka-props",
                     "sasl.password=hunter3,security.protocol=sasl_ssl,ssl.key.password=k,"
                     "sasl.oauthbearer.client.secret=s",
                     "--flush-interval", "1500ms", "--minute-ttl", "48h"),
            NULL);
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    cs_config_dump(&c, m);
    fclose(m);
    assert_null(strstr(buf, "hunter"));
    assert_non_null(strstr(buf, "\nredis=redis://app:***@r:6379/1\n"));
    assert_non_null(strstr(buf, "\nkafka_props=sasl.password=***,security.protocol=sasl_ssl,"
                                "ssl.key.password=***,sasl.oauthbearer.client.secret=***\n"));
    assert_non_null(strstr(buf, "\nflush_interval=1500ms\n"));
    assert_non_null(strstr(buf, "\nminute_ttl=2d\n"));
    assert_non_null(strstr(buf, "\nlog_level=info\n"));
    assert_non_null(strstr(buf, "\ndrain=false\n"));
    /* one line per option, in table order */
    int lines = 0;
    for (char *p = buf; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, NOPTS);
    assert_true(strncmp(buf, "config=\n", 8) == 0);
    free(buf);
    cs_config_free(&c);

    char out[256];
    cs_cfg_mask_redis("redis://onlysecret@h", out, sizeof out);
    assert_string_equal(out, "redis://***@h");
    cs_cfg_mask_redis("unix://:pw@/tmp/s.sock", out, sizeof out);
    assert_string_equal(out, "unix://:***@/tmp/s.sock");
    cs_cfg_mask_redis("redis://h:1/0", out, sizeof out);
    assert_string_equal(out, "redis://h:1/0");
    cs_cfg_mask_redis("unix:///s.sock?db=1&password=pw&x", out, sizeof out);
    assert_string_equal(out, "unix:///s.sock?db=1&password=***&x");
    cs_cfg_mask_redis("unix:///s.sock?password=pw", out, sizeof out);
    assert_string_equal(out, "unix:///s.sock?password=***");
    cs_cfg_mask_redis("/run/redis.sock", out, sizeof out);
    assert_string_equal(out, "/run/redis.sock");
}

/* CLICKSTAGE_<NAME>_FILE: the value from a file (Kubernetes/Docker secrets), trailing newline
 * removed; kafka_props as a properties file; both forms of one option at once are an error. */
static void test_secret_files(void **state)
{
    cs_config c;
    char e1[600], e2[600], e3[600];
    snprintf(e1, sizeof e1, "CLICKSTAGE_REDIS_FILE=%s",
             write_file("redis-url", "redis://app:pw,1@r:6380/2\n"));
    snprintf(e2, sizeof e2, "CLICKSTAGE_KAFKA_PROPS_FILE=%s",
             write_file("kafka.properties", "# client.properties\r\n\n"
                                            "security.protocol = sasl_ssl\r\n"
                                            "  sasl.password=a,b\\c=d\n"
                                            "ssl.cipher.suites=X:Y,Z\n"));
    snprintf(e3, sizeof e3, "CLICKSTAGE_THREADS_FILE=%s", write_file("threads", "3\n\n"));
    load_ok(&c, no_args, ENV(e1, e2, e3));
    assert_string_equal(c.redis, "redis://app:pw,1@r:6380/2");
    assert_string_equal(c.kafka_props,
                        "security.protocol=sasl_ssl,sasl.password=a\\,b\\\\c=d,"
                        "ssl.cipher.suites=X:Y\\,Z");
    assert_int_equal(c.threads, 3);
    cs_config_free(&c);
    /* flags still win */
    load_ok(&c, ARGV("--threads", "5"), ENV(e3));
    assert_int_equal(c.threads, 5);
    cs_config_free(&c);

    /* kafka_sasl_password (from its own file) becomes kafka_props' sasl.password, escaped */
    snprintf(e1, sizeof e1, "CLICKSTAGE_KAFKA_SASL_PASSWORD_FILE=%s",
             write_file("kafka-password", "p,w\\x\n"));
    load_ok(&c, no_args, ENV(e1, "CLICKSTAGE_KAFKA_PROPS=security.protocol=sasl_ssl"));
    assert_string_equal(c.kafka_sasl_password, "p,w\\x");
    assert_string_equal(c.kafka_props, "security.protocol=sasl_ssl,sasl.password=p\\,w\\\\x");
    cs_config_free(&c);
    load_ok(&c, ARGV("--kafka-sasl-password", "pw"), NULL);
    assert_string_equal(c.kafka_props, "sasl.password=pw");
    cs_config_free(&c);
    load_err(ARGV("--kafka-sasl-password", "pw", "--kafka-props", "sasl.password=x"), NULL,
             "--kafka-sasl-password: sasl.password is set in --kafka-props too; set it in one "
             "place");

    /* YAML mapping values may hold commas now (escaped like the flag's "\\,") */
    snprintf(e1, sizeof e1, "CLICKSTAGE_CONFIG=%s",
             write_file("c.yaml", "kafka_props:\n  ssl.cipher.suites: \"A,B\"\n  debug: "
                                  "security,broker\n"));
    load_ok(&c, no_args, ENV(e1));
    assert_string_equal(c.kafka_props, "ssl.cipher.suites=A\\,B,debug=security\\,broker");
    cs_config_free(&c);
    load_ok(&c, ARGV("--kafka-props", "debug=security\\,broker, linger.ms = 5"), NULL);
    assert_string_equal(c.kafka_props, "debug=security\\,broker,linger.ms=5");
    cs_config_free(&c);

    load_err(NULL, ENV("CLICKSTAGE_REDIS=redis://h", "CLICKSTAGE_REDIS_FILE=/x"),
             "CLICKSTAGE_REDIS and CLICKSTAGE_REDIS_FILE are both set; set only one of them");
    load_err(no_args, ENV("CLICKSTAGE_REDIS_FILE=/nonexistent/url"),
             "CLICKSTAGE_REDIS_FILE: cannot open '/nonexistent/url': No such file or directory");
    snprintf(e1, sizeof e1, "CLICKSTAGE_REDIS_FILE=%s", tmpdir);
    char want[600];
    snprintf(want, sizeof want, "CLICKSTAGE_REDIS_FILE: '%s' is not a regular file", tmpdir);
    load_err(no_args, ENV(e1), want);
    load_err(no_args, ENV("CLICKSTAGE_CONFIG_FILE=/x"),
             "CLICKSTAGE_CONFIG_FILE is not read: CLICKSTAGE_CONFIG itself names a file");
    const char *tf = write_file("threads2", "300\n");
    snprintf(e1, sizeof e1, "CLICKSTAGE_THREADS_FILE=%s", tf);
    snprintf(want, sizeof want, "CLICKSTAGE_THREADS_FILE (%s): 300 is out of range 0..256", tf);
    load_err(no_args, ENV(e1), want);
}

/* A rejected value of a secret-bearing option never reaches the error message. */
static void test_secrets_never_quoted(void **state)
{
    static const char *const pw = "S3cr3tPW";
    char e1[600];
    struct {
        char **argv;
        char **envp;
    } cases[] = {
        {ARGV("--redis", "rediss://:S3cr3tPW@h:6379"), NULL},
        {ARGV("--redis", "redis://S3cr3tPW@h:99999"), NULL},
        {ARGV("--redis", "redis://u:S3cr3tPW@h:6379/x"), NULL},
        {ARGV("--redis", "redis://:S3cr3tPW%zz@h"), NULL},
        {ARGV("--redis", "unix:///s.sock?password=S3cr3tPW&x=1"), NULL},
        {ARGV("--redis", "redis+sentinel://s/m?sentinel_password=S3cr3tPW&x=1"), NULL},
        {ARGV("--redis", "redis+sentinel://:S3cr3tPW@s/m*"), NULL},
        {ARGV("--redis", "redis+cluster://:S3cr3tPW@a,b/3"), NULL},
        {ARGV("--redis", "redis+sentinel://s?sentinel_password=S3cr3tPW"), NULL},
        {ARGV("--redis", "redis://:S3cr3tPW\x01@h"), NULL},
        {ARGV("--kafka-props", "sasl.password=S3cr3tPW\x01"), NULL},
        {ARGV("--kafka-props", "sasl.password=S3cr3,tPW"), NULL},
        {ARGV("--kafka-props", "sasl.password=S3cr3tPW,,linger.ms=5"), NULL},
        {ARGV("--kafka-props", "S3cr3tPW"), NULL},
        {ARGV("--kafka-sasl-password", "S3cr3tPW\x02"), NULL},
        {no_args, ENV("CLICKSTAGE_KAFKA_SASL_PASSWORD=S3cr3tPW\x7f")},
        {no_args, ENV("CLICKSTAGE_REDIS=http://:S3cr3tPW@h")},
        {no_args, ENV(e1)},
    };
    snprintf(e1, sizeof e1, "CLICKSTAGE_KAFKA_PROPS_FILE=%s",
             write_file("bad.properties", "security.protocol=sasl_ssl\nS3cr3tPW\n"));
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cs_config c;
        char err[1024] = "";
        int rc = load(&c, cases[i].argv, cases[i].envp, err, sizeof err);
        if (rc != -1)
            fail_msg("case %zu: expected an error, got %d", i, rc);
        if (strstr(err, pw) || strstr(err, "S3cr3") || strstr(err, "tPW"))
            fail_msg("case %zu: the message shows the secret: %s", i, err);
        if (!*err)
            fail_msg("case %zu: empty message", i);
    }
    /* in a config file too (the message names FILE:LINE:COL) */
    snprintf(e1, sizeof e1, "CLICKSTAGE_CONFIG=%s",
             write_file("s.yaml", "kafka_props:\n  sasl.password: \"S3cr3tPW\\x01\"\n"));
    cs_config c;
    char err[1024] = "";
    assert_int_equal(load(&c, no_args, ENV(e1), err, sizeof err), -1);
    assert_null(strstr(err, "S3cr3"));
    assert_non_null(strstr(err, "kafka_props: contains a control character"));
    /* the dump masks the sentinels' password too */
    load_ok(&c, ARGV("--redis", "redis+sentinel://:S3cr3tPW@s1,s2/m?sentinel_password=S3cr3tPW"),
            NULL);
    char *sb = NULL;
    size_t sl = 0;
    FILE *sm = open_memstream(&sb, &sl);
    cs_config_dump(&c, sm);
    fclose(sm);
    assert_null(strstr(sb, "S3cr3"));
    assert_non_null(strstr(sb, "redis+sentinel://:***@s1,s2/m?sentinel_password=***"));
    free(sb);
    cs_config_free(&c);
    /* and the dump masks the folded password */
    load_ok(&c, ARGV("--kafka-sasl-password", "S3cr3tPW"), NULL);
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    cs_config_dump(&c, m);
    fclose(m);
    assert_null(strstr(buf, "S3cr3"));
    assert_non_null(strstr(buf, "\nkafka_props=sasl.password=***\n"));
    assert_non_null(strstr(buf, "\nkafka_sasl_password=***\n"));
    free(buf);
    cs_config_free(&c);
}

/* Formatting every option of a non-default config and loading the text back gives the same
 * config (the canonical text of each type parses to itself). */
static void test_roundtrip(void **state)
{
    cs_config a, b;
    load_ok(&a, ARGV("--brokers=x:1,y", "--threads=7", "--flush-interval=30s", "--log-level=warn",
                     "--log-format=text", "--drain", "--auto-offset-reset=latest",
                     "--kafka-props=a.b=1,c=2", "--redis=unix:///s.sock?db=2",
                     "--redis-outage-pause=0", "--instance-id=me"),
            NULL);
    char *args[CS_CFG_MAX_OPTS + 2];
    char bufs[CS_CFG_MAX_OPTS][1024];
    int n = 0;
    args[n++] = "clickstage";
    for (int i = 0; i < NOPTS; i++) {
        char fl[64], v[900];
        cs_cfg_flag_name(&cs_cfg_opts[i], fl, sizeof fl);
        cs_cfg_format(&cs_cfg_opts[i], &a, 0, v, sizeof v);
        snprintf(bufs[i], sizeof bufs[i], "%s=%s", fl, v);
        args[n++] = bufs[i];
    }
    args[n] = NULL;
    load_ok(&b, args, NULL);
    for (int i = 0; i < NOPTS; i++) {
        char va[900], vb[900];
        cs_cfg_format(&cs_cfg_opts[i], &a, 0, va, sizeof va);
        cs_cfg_format(&cs_cfg_opts[i], &b, 0, vb, sizeof vb);
        assert_string_equal(va, vb);
    }
    assert_int_equal(b.flush_interval_ms, 30000);
    assert_int_equal(b.log_level, CS_LOG_WARN);
    cs_config_free(&a);
    cs_config_free(&b);
}

/* fetch_threads (issue 18): auto is left to the source (0: cs_source_auto_fetch_threads, tested
 * in test_source_mock); 0 or more than the workers is refused naming the option, in drain mode
 * and live (where several handles are allowed) */
static void test_fetch_threads(void **state)
{
    cs_config c;
    load_ok(&c, ARGV("--threads=3", "--drain"), NULL);
    assert_string_equal(c.fetch_threads_opt, "auto");
    assert_int_equal(c.fetch_threads, 0);
    cs_config_free(&c);
    load_ok(&c, ARGV("--threads=3"), NULL);
    assert_int_equal(c.fetch_threads, 0);
    cs_config_free(&c);
    load_ok(&c, ARGV("--threads=4", "--drain", "--fetch-threads=2"), NULL);
    assert_int_equal(c.fetch_threads, 2);
    cs_config_free(&c);
    load_ok(&c, ARGV("--threads=4", "--fetch-threads", "1"), NULL);
    assert_int_equal(c.fetch_threads, 1);
    cs_config_free(&c);
    load_err(ARGV("--fetch-threads=0"), NULL,
             "--fetch-threads: '0' is not `auto` or an integer 1..256 (at least one consumer "
             "handle must fetch)");
    load_err(ARGV("--fetch-threads=many"), NULL,
             "--fetch-threads: 'many' is not `auto` or an integer 1..256 (at least one consumer "
             "handle must fetch)");
    load_err(ARGV("--threads=2", "--drain", "--fetch-threads=3"), NULL,
             "--fetch-threads: 3 is above the worker count (2, threads): a consumer handle "
             "serves at least one worker");
    /* live mode: the process stays one member of the group (handle 0 assigns the others) */
    load_ok(&c, ARGV("--threads=2", "--fetch-threads=2"), NULL);
    assert_int_equal(c.fetch_threads, 2);
    cs_config_free(&c);
    load_err(ARGV("--threads=2", "--fetch-threads=3"), NULL,
             "--fetch-threads: 3 is above the worker count (2, threads): a consumer handle "
             "serves at least one worker");
}

/* ---------------------------------------------------------------------------------------- */
/* --help, --version, the generated doc */

static void test_help_and_version(void **state)
{
    char *buf = NULL;
    size_t len = 0;
    char err[256] = "x";
    cs_config c;
    FILE *m = open_memstream(&buf, &len);
    assert_int_equal(cs_config_load(&c, 2, ARGV("--help"), NULL, m, err, sizeof err), 1);
    fclose(m);
    assert_string_equal(err, "");
    for (int i = 0; i < NOPTS; i++) {
        char fl[64], en[64], needle[128];
        cs_cfg_flag_name(&cs_cfg_opts[i], fl, sizeof fl);
        cs_cfg_env_name(&cs_cfg_opts[i], en, sizeof en);
        snprintf(needle, sizeof needle, "  %s ", fl);
        if (cs_cfg_opts[i].type == T_BOOL)
            snprintf(needle, sizeof needle, "  %s[=BOOL]", fl);
        if (!strstr(buf, needle))
            fail_msg("--help lacks %s", needle);
        snprintf(needle, sizeof needle, "env %s\n", en);
        assert_non_null(strstr(buf, needle));
        snprintf(needle, sizeof needle, " or %s_FILE\n", en);
        assert_true(!strstr(buf, needle) == !(cs_cfg_opts[i].flags & F_SECRET));
        snprintf(needle, sizeof needle, "default: %s", cs_cfg_opts[i].def[0] ? cs_cfg_opts[i].def : "(empty)");
        assert_non_null(strstr(buf, needle));
    }
    assert_non_null(strstr(buf, "10ms..1m"));
    assert_non_null(strstr(buf, "error | warn | info | debug"));
    assert_null(strchr(buf, '`'));
    /* no line wider than 100 columns (UTF-8 aware enough: § is 2 bytes) */
    for (char *p = buf, *e; *p; p = e + 1) {
        e = strchr(p, '\n');
        assert_non_null(e);
        assert_true(e - p <= 101);
    }
    free(buf);

    /* help wins over bad options and bad environment; -h too; the config stays zeroed */
    buf = NULL;
    m = open_memstream(&buf, &len);
    assert_int_equal(cs_config_load(&c, 4, ARGV("--bogus", "-h", "--threads=x"),
                                    ENV("CLICKSTAGE_NOPE=1"), m, err, sizeof err),
                     1);
    fclose(m);
    assert_true(strncmp(buf, "clickstage ", 11) == 0);
    assert_null(c.brokers);
    free(buf);

    buf = NULL;
    m = open_memstream(&buf, &len);
    assert_int_equal(cs_config_load(&c, 2, ARGV("--version"), NULL, m, err, sizeof err), 1);
    fclose(m);
    assert_string_equal(buf, "clickstage " CLICKSTAGE_VERSION "\n");
    free(buf);

    buf = NULL;
    m = open_memstream(&buf, &len);
    assert_int_equal(cs_config_load(&c, 2, ARGV("--help-markdown"), NULL, m, err, sizeof err), 1);
    fclose(m);
    char *md = capture(cs_config_print_markdown);
    assert_string_equal(buf, md);
    free(md);
    free(buf);

    load_err(ARGV("--help=yes"), NULL, "--help takes no value");
}

static void test_doc_is_current(void **state)
{
    char *want = capture(cs_config_print_markdown);
    const char *upd = getenv("CS_UPDATE_DOCS");
    if (upd && strcmp(upd, "1") == 0) {
        FILE *f = fopen(DOC_PATH, "w");
        assert_non_null(f);
        fputs(want, f);
        fclose(f);
        print_message("rewrote %s\n", DOC_PATH);
    }
    char *have = read_all(DOC_PATH);
    if (!have)
        fail_msg("%s is missing: run CS_UPDATE_DOCS=1 ../build/tests/test_config from tests/",
                 DOC_PATH);
    if (strcmp(have, want) != 0)
        fail_msg("%s is stale: regenerate it with `build/clickstage --help-markdown > "
                 "docs/configuration.md` (or CS_UPDATE_DOCS=1 ../build/tests/test_config from "
                 "tests/)",
                 DOC_PATH);
    const char *hdr = "<!-- generated by `build/clickstage --help-markdown`; do not edit";
    assert_true(strncmp(have, hdr, strlen(hdr)) == 0);
    /* every option has its row */
    for (int i = 0; i < NOPTS; i++) {
        char needle[128];
        snprintf(needle, sizeof needle, "\n| `%s` |", cs_cfg_opts[i].name);
        assert_non_null(strstr(have, needle));
    }
    free(want);
    free(have);
}

/* The doc's example config file loads to exactly the defaults; so does its YAML-lists example
 * (to the values it shows). */
static void test_doc_examples_load(void **state)
{
    char *yaml = capture(cs_cfg_print_example_yaml);
    const char *p = write_file("example.yaml", yaml);
    free(yaml);
    char flag[512];
    snprintf(flag, sizeof flag, "--config=%s", p);
    cs_config a, b;
    load_ok(&a, ARGV(flag), NULL);
    load_ok(&b, no_args, NULL);
    for (int i = 0; i < NOPTS; i++) {
        if (cs_cfg_opts[i].flags & F_NOFILE)
            continue;
        char va[900], vb[900];
        cs_cfg_format(&cs_cfg_opts[i], &a, 0, va, sizeof va);
        cs_cfg_format(&cs_cfg_opts[i], &b, 0, vb, sizeof vb);
        assert_string_equal(va, vb);
    }
    cs_config_free(&a);
    cs_config_free(&b);

    /* the "```yaml" blocks of the doc all load */
    char *md = capture(cs_config_print_markdown);
    int blocks = 0;
    for (char *s = strstr(md, "```yaml\n"); s; s = strstr(s, "```yaml\n")) {
        s += 8;
        char *e = strstr(s, "```\n");
        assert_non_null(e);
        *e = '\0';
        p = write_file("block.yaml", s);
        snprintf(flag, sizeof flag, "--config=%s", p);
        load_ok(&a, ARGV(flag), NULL);
        cs_config_free(&a);
        blocks++;
        s = e + 4;
    }
    assert_int_equal(blocks, 2);
    free(md);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_table_consistent),
        cmocka_unit_test(test_precedence_four_layers),
        cmocka_unit_test(test_config_path_sources),
        cmocka_unit_test(test_type_errors_flags),
        cmocka_unit_test(test_fetch_threads),
        cmocka_unit_test(test_type_errors_env),
        cmocka_unit_test(test_type_errors_file),
        cmocka_unit_test(test_regression_config_yaml_deep_nesting),
        cmocka_unit_test(test_file_forms),
        cmocka_unit_test(test_bounds_from_table),
        cmocka_unit_test(test_unknown_names),
        cmocka_unit_test(test_duration_parser),
        cmocka_unit_test(test_bool_forms),
        cmocka_unit_test(test_flag_syntax),
        cmocka_unit_test(test_redis_urls),
        cmocka_unit_test(test_redis_urls_ha),
        cmocka_unit_test(test_other_strings),
        cmocka_unit_test(test_dump_masks_secrets),
        cmocka_unit_test(test_secret_files),
        cmocka_unit_test(test_secrets_never_quoted),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_help_and_version),
        cmocka_unit_test(test_doc_is_current),
        cmocka_unit_test(test_doc_examples_load),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
