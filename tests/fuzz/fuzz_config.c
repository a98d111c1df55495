/* fuzz_config.c — libFuzzer target for the daemon's configuration (cmd/clickstage/config.c).
 *
 * config.c belongs to the daemon, not to the library: the fuzz build compiles it in and this
 * target reads the option table and helpers through cmd/clickstage/config_int.h.
 *
 * Each input is used three ways; none may crash, hang or leak:
 *  1. as a YAML config file (through a memfd, via --config=/proc/self/fd/N, i.e. the real
 *     file path): an error must read "PATH:LINE:COL: ..." with LINE, COL >= 1;
 *  2. split on NUL bytes, as argv (after argv[0]);
 *  3. split on NUL bytes, as the environment.
 * Whenever a load succeeds, the config must satisfy the table (every value inside its bounds,
 * every string free of control characters, the Redis URL parseable), and printing every option
 * in its canonical form and loading that back as flags must give the same config.
 * The parsers for durations and Redis URLs also get the raw input as a string.
 * --config / CLICKSTAGE_CONFIG values from argv or env are blanked, so the fuzzer never opens
 * arbitrary paths (a FIFO or /dev/stdin would block).
 *
 *   make fuzz   (or: build-fuzz/fuzz_config -max_total_time=60 tests/fuzz/corpus/config)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config_int.h"

#define NOPTS cs_cfg_nopts

#define MAX_PARTS 4096

static FILE *devnull;
static int memfd = -1;
static char memfd_path[64];

static void check_config(const cs_config *c);

static void fuzz_init(void)
{
    if (devnull)
        return;
    devnull = fopen("/dev/null", "w");
    if (!devnull)
        abort();
    memfd = memfd_create("fuzz_config.yaml", 0);
    if (memfd < 0)
        abort();
    snprintf(memfd_path, sizeof memfd_path, "/proc/self/fd/%d", memfd);
}

/* Checks rc/errstr coherence; on success the config invariants. Frees c. */
static void after_load(int rc, cs_config *c, const char *err)
{
    if (rc == 0) {
        check_config(c);
    } else if (rc == 1 || rc == -1) {
        cs_config zero;
        memset(&zero, 0, sizeof zero);
        if (memcmp(c, &zero, sizeof zero) != 0)
            abort(); /* c must be left zeroed */
        if (rc == -1 && !err[0])
            abort();
        for (const char *p = err; rc == -1 && *p; p++) /* one line of a log */
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                abort();
        if (rc == 1 && err[0])
            abort();
    } else {
        abort();
    }
    cs_config_free(c);
}

static void check_no_ctl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            abort();
}

static void check_config(const cs_config *c)
{
    for (int i = 0; i < NOPTS; i++) {
        const cs_opt *o = &cs_cfg_opts[i];
        switch (o->type) {
        case T_STR:
        case T_LIST:
        case T_KV: {
            const char *s = *cs_cfg_str(c, o);
            if (!s || strlen(s) > MAX_VALUE_LEN)
                abort();
            check_no_ctl(s);
            if (o->type != T_STR && s[0]) {
                /* normalised: no empty items, no spaces around commas */
                if (s[0] == ',' || s[strlen(s) - 1] == ',' || strstr(s, ",,") ||
                    strstr(s, " ,") || strstr(s, ", ") || s[0] == ' ')
                    abort();
            }
            break;
        }
        case T_INT:
            if (*cs_cfg_int(c, o) < o->min || *cs_cfg_int(c, o) > o->max)
                abort();
            break;
        case T_DUR:
            if (*cs_cfg_i64(c, o) < o->min || *cs_cfg_i64(c, o) > o->max)
                abort();
            break;
        case T_ENUM: {
            int ok = 0;
            for (const cs_enum_val *e = o->enums; e->name; e++)
                ok |= e->value == *cs_cfg_int(c, o);
            if (!ok)
                abort();
            break;
        }
        case T_BOOL:
            if (*cs_cfg_int(c, o) != 0 && *cs_cfg_int(c, o) != 1)
                abort();
            break;
        }
    }
    cs_redis_target t;
    char why[512];
    if (cs_config_parse_redis_url(c->redis, &t, why, sizeof why) != 0)
        abort();
    if (!c->instance_id[0] || !c->topics[0] || !c->brokers[0])
        abort();

    /* round trip: every option (but config) as --flag=canonical-text loads to the same values */
    static char vals[CS_CFG_MAX_OPTS][MAX_VALUE_LEN + 64];
    static char args[CS_CFG_MAX_OPTS][MAX_VALUE_LEN + 128];
    char *argv[CS_CFG_MAX_OPTS + 2];
    int n = 0;
    argv[n++] = "clickstage";
    for (int i = 0; i < NOPTS; i++) {
        char fl[64];
        cs_cfg_format(&cs_cfg_opts[i], c, 0, vals[i], sizeof vals[i]);
        if (cs_cfg_opts[i].flags & F_NOFILE)
            continue;
        cs_cfg_flag_name(&cs_cfg_opts[i], fl, sizeof fl);
        snprintf(args[i], sizeof args[i], "%s=%s", fl, vals[i]);
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    cs_config c2;
    char err[1024];
    if (cs_config_load(&c2, n, argv, NULL, devnull, err, sizeof err) != 0) {
        fprintf(stderr, "round trip failed: %s\n", err);
        abort();
    }
    for (int i = 0; i < NOPTS; i++) {
        char v2[MAX_VALUE_LEN + 64];
        if (cs_cfg_opts[i].flags & F_NOFILE)
            continue;
        cs_cfg_format(&cs_cfg_opts[i], &c2, 0, v2, sizeof v2);
        if (strcmp(v2, vals[i]) != 0) {
            fprintf(stderr, "round trip changed %s: '%s' -> '%s'\n", cs_cfg_opts[i].name,
                    vals[i], v2);
            abort();
        }
    }
    /* the masked dump never shows a password */
    cs_config_dump(c, devnull);
    cs_config_free(&c2);
}

/* "PATH:" digits ":" digits ": " */
static void check_file_err(const char *err)
{
    size_t pl = strlen(memfd_path);
    if (strncmp(err, memfd_path, pl) != 0 || err[pl] != ':')
        abort();
    const char *p = err + pl + 1;
    for (int part = 0; part < 2; part++) {
        if (*p < '1' || *p > '9')
            abort();
        while (*p >= '0' && *p <= '9')
            p++;
        if (*p++ != ':')
            abort();
    }
    if (*p != ' ')
        abort();
}

/* Splits buf (NUL-terminated copy of the input) on NUL bytes into out[], with `first` (may be
 * NULL) in front; blanks config paths. Returns the count; out[count] = NULL. */
static int split(char *buf, size_t size, const char *first, char **out, int is_env)
{
    int n = 0;
    if (first)
        out[n++] = (char *)first;
    size_t i = 0;
    while (i <= size && n < MAX_PARTS) {
        char *s = buf + i;
        size_t len = strlen(s);
        if (is_env && strncmp(s, "CLICKSTAGE_CONFIG=", 18) == 0)
            s[18] = '\0'; /* value -> "" */
        else if (!is_env && strncmp(s, "--config=", 9) == 0)
            s[9] = '\0';
        out[n++] = !is_env && strcmp(s, "--config") == 0 ? (char *)"--config=" : s;
        i += len + 1;
    }
    out[n] = NULL;
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_init();
    if (size > 200000)
        return 0;
    char err[1024];
    cs_config c;

    /* 1. the input as a config file, through the real file path */
    if (ftruncate(memfd, 0) != 0 || pwrite(memfd, data, size, 0) != (ssize_t)size)
        abort();
    {
        char flag[96];
        snprintf(flag, sizeof flag, "--config=%s", memfd_path);
        char *argv[] = {"clickstage", flag, NULL};
        err[0] = 'x';
        int rc = cs_config_load(&c, 2, argv, NULL, devnull, err, sizeof err);
        if (rc == -1)
            check_file_err(err);
        else if (rc != 0)
            abort();
        after_load(rc, &c, err);
    }

    char *buf = malloc(size + 1);
    if (!buf)
        return 0;
    char **parts = malloc((MAX_PARTS + 2) * sizeof *parts);
    if (!parts) {
        free(buf);
        return 0;
    }

    /* 2. as argv */
    memcpy(buf, data, size);
    buf[size] = '\0';
    int n = split(buf, size, "clickstage", parts, 0);
    int rc = cs_config_load(&c, n, parts, NULL, devnull, err, sizeof err);
    after_load(rc, &c, err);

    /* 3. as the environment (with no flags) */
    memcpy(buf, data, size);
    buf[size] = '\0';
    split(buf, size, NULL, parts, 1);
    char *argv0[] = {"clickstage", NULL};
    rc = cs_config_load(&c, 1, argv0, parts, devnull, err, sizeof err);
    if (rc == 1)
        abort(); /* help/version come only from argv */
    after_load(rc, &c, err);

    /* 4. the scalar parsers on the raw text */
    memcpy(buf, data, size);
    buf[size] = '\0';
    int64_t ms;
    if (cs_parse_duration_ms(buf, &ms) == 0) {
        char txt[32];
        int64_t back;
        cs_format_duration(ms, txt, sizeof txt);
        if (ms < 0 || ms > CS_DURATION_MAX_MS || cs_parse_duration_ms(txt, &back) != 0 ||
            back != ms)
            abort();
    }
    cs_redis_target t;
    char why[512];
    if (cs_config_parse_redis_url(buf, &t, why, sizeof why) == 0) {
        if (t.port < 1 || t.port > 65535 || t.db < 0)
            abort();
        if (t.is_unix ? t.path[0] != '/' : !t.host[0])
            abort();
        /* redis+cluster:// and redis+sentinel://: a non-empty list of valid hosts, host:port
         * the first of them; a sentinel URL names its master; a cluster has db 0 only */
        if (t.mode != CS_REDIS_MODE_PLAIN) {
            if (t.is_unix || t.nseeds < 1 || t.nseeds > CS_REDIS_MAX_SEEDS ||
                strcmp(t.host, t.seeds[0].host) != 0 || t.port != t.seeds[0].port)
                abort();
            for (int i = 0; i < t.nseeds; i++)
                if (!t.seeds[i].host[0] || t.seeds[i].port < 1 || t.seeds[i].port > 65535)
                    abort();
            if ((t.mode == CS_REDIS_MODE_SENTINEL) != (t.master_name[0] != '\0'))
                abort();
            if (t.mode == CS_REDIS_MODE_CLUSTER && t.db != 0)
                abort();
        } else if (t.nseeds != 0 || t.master_name[0] || t.sentinel_password[0]) {
            abort();
        }
    } else if (!why[0]) {
        abort();
    }
    char masked[MAX_VALUE_LEN + 64];
    if (size < MAX_VALUE_LEN) {
        cs_cfg_mask_redis(buf, masked, sizeof masked);
        cs_cfg_mask_kv(buf, masked, sizeof masked);
    }

    free(parts);
    free(buf);
    return 0;
}
