/* config_int.h — the daemon's option table and its helpers, for config.c and for the tests and
 * the fuzz target that check the table (tests/unit/test_config.c, tests/fuzz/fuzz_config.c).
 * Not part of the library: config.c belongs to the daemon. The public side is config.h. */
#ifndef CS_CONFIG_INT_H
#define CS_CONFIG_INT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "parse.h"

enum opt_type {
    T_STR,  /* char *: checked by opt->check (whole value) */
    T_LIST, /* char *: comma-separated items, each checked by opt->check; a YAML sequence too */
    T_KV,   /* char *: comma-separated key=value items, keys checked by opt->check; a YAML map */
    T_INT,  /* int, min..max */
    T_DUR,  /* int64_t milliseconds, min..max */
    T_ENUM, /* int, one of opt->enums */
    T_BOOL, /* int 0/1 */
};

typedef struct {
    const char *name;
    int value;
} cs_enum_val;

/* Returns 0 if v is acceptable, else -1 with why set (no option name: the caller adds it). */
typedef int (*cs_check_fn)(const char *v, char *why, size_t n);

#define F_NOFILE 1u /* cannot be set in the config file (the file's own path) */
#define F_SECRET 2u /* may hold a password: masked in the dump, never quoted in errors */

typedef struct cs_opt {
    const char *name;         /* snake_case; the flag and env names are derived from it */
    enum opt_type type;
    size_t off;               /* offsetof(cs_config, field) */
    const char *def;          /* the default, as text, parsed by opt_set() */
    int64_t min, max;         /* T_INT/T_DUR: value bounds; T_LIST/T_KV: item count bounds */
    const cs_enum_val *enums; /* T_ENUM: {NULL, 0}-terminated */
    cs_check_fn check;        /* T_STR/T_LIST/T_KV (see enum opt_type); NULL = any text */
    const char *metavar;      /* the flag's argument in --help */
    const char *values;       /* T_STR/T_LIST/T_KV: what is accepted, for --help and the doc */
    unsigned flags;
    const char *desc;         /* Markdown-lite: `code` (backquotes are dropped in --help) */
} cs_opt;

#define MAX_VALUE_LEN 8192
#define MAX_FILE_SIZE (1024 * 1024)

/* The table: the only place an option is described (config.c). It has cs_cfg_nopts entries, at
 * most CS_CFG_MAX_OPTS (checked at compile time), for callers' arrays. */
#define CS_CFG_MAX_OPTS 128
extern const cs_opt cs_cfg_opts[];
extern const int cs_cfg_nopts;

/* The option's field in c, by type (T_STR/T_LIST/T_KV, T_INT/T_ENUM/T_BOOL, T_DUR). */
char **cs_cfg_str(const cs_config *c, const cs_opt *o);
int *cs_cfg_int(const cs_config *c, const cs_opt *o);
int64_t *cs_cfg_i64(const cs_config *c, const cs_opt *o);
/* "--flush-interval", "CLICKSTAGE_FLUSH_INTERVAL" */
void cs_cfg_flag_name(const cs_opt *o, char *buf, size_t n);
void cs_cfg_env_name(const cs_opt *o, char *buf, size_t n);
/* "1..64", "1s..1h": the option's bounds as text */
void cs_cfg_fmt_bounds(const cs_opt *o, char *buf, size_t n);
/* A Redis URL with its password as *** / key=value items with secret values masked. */
void cs_cfg_mask_redis(const char *url, char *buf, size_t n);
void cs_cfg_mask_kv(const char *v, char *buf, size_t n);
/* The option's value in c in its canonical text (mask: secrets as ***). */
void cs_cfg_format(const cs_opt *o, const cs_config *c, int mask, char *buf, size_t n);
/* The example config file of docs/configuration.md: every option at its default. */
void cs_cfg_print_example_yaml(FILE *out);

#endif
