/* classify.c — the rule file (SPEC §2): YAML -> validated -> compiled match table.
 *
 * Loading is three steps:
 *  1. cs_yaml_load() (pipeline/yamldoc.c, over libyaml's parser) builds a libyaml node tree;
 *     every node keeps its start mark, so every error can name FILE:LINE:COL of the node at
 *     fault (libyaml marks are 0-based; we print 1-based). YAML syntax errors use libyaml's
 *     problem_mark (reader errors: its byte offset).
 *  2. A schema-driven walk validates the tree into a cs_ruleset: journey, stages, session,
 *     customer_ttl, fields, limits, dimensions, rules. The walk only descends into keys the
 *     schema knows, so its depth is fixed whatever the input (aliases that form cycles are
 *     harmless: they can only ever show up where a scalar or a fixed shape is expected).
 *  3. Compile: rules are numbered 0..N-1 in file order; a rule bitset has W = ceil(N/64) words.
 *     Every field that some rule tests for equality ("exact" keys: event, channel, dimensions,
 *     property.<name>) gets an open-addressing hash table (XXH3 of the value, linear probing,
 *     load <= 1/2) from value -> bitset of the rules accepting it, plus the bitset of rules that
 *     do not test that field at all ("unconstrained"). A value's bitset is kept sparse: only
 *     the words between its lowest and highest accepting rule are stored.
 *     Matching = cand := all rules; for each exact field f: cand &= bits(f, value) |
 *     unconstrained[f] (an absent value or one no rule names contributes no bits); then the
 *     lowest candidate whose url glob / url_prefix predicates (if any) also hold wins. The AND
 *     runs word by word over the intersection of the fields' spans only, stopping at the first
 *     word that yields a rule, so its cost is one hash look-up per exact field plus a few word
 *     operations, whatever the number of rules; globs and prefixes run only on candidates.
 *     Url globs and prefixes have an index of their own ("url index" below) that narrows the
 *     candidates the same way when a file has many of them.
 *  The YAML is composed by pipeline/yamldoc.c (bounded nesting, hashed anchors: libyaml's own
 *  loader is quadratic in both), and the duplicate rule-name check is a hash table, so loading
 *  is linear in the file (cs_rules_load_steps() counts the look-ups; tests bound it).
 *
 * A rule testing the same field twice (e.g. a dimension and property.<name> that resolve to
 * the same path) accepts the intersection of the two value lists.
 */
#include "classify.h"
#include "formats.h"
#include "parse.h"
#include "util.h"
#include "yamldoc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <xxhash.h>
#include <yaml.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define MAX_FILE_BYTES (4u << 20)         /* a rule file larger than this is refused */
#define MAX_NAME_LEN 64                   /* journey, stage and dimension names */
#define MAX_RULE_NAME_LEN 128
#define MAX_GLOB_STARS 16
#define MAX_TOTAL_VALUES 262144           /* match values over all rules (aliases count each use) */
#define MAX_TOTAL_VALUE_BYTES (64u << 20) /* their bytes, likewise */
#define MAX_VALUES_PER_FIELD MAX_TOTAL_VALUES /* defensive: can't be reached */
#define MAX_MATCH_KEYS 32                 /* keys in one match */
#define MIN_MAX_BYTES 64
#define MAX_MAX_BYTES (64u << 20)
#define MAX_MAX_DEPTH 255
/* url index (see "url index" below) */
#define GRAM 4                  /* bytes in a gram */
#define UX_MIN_RULES 8          /* fewer rules with an indexable url key: no index, the scan is
                                   cheaper (bench/bench_redteam.c, "crossover") */
#define UX_FILTER_BITS 16       /* bits of the gram filter (8 KB) */
#define UX_MAX_HITS 128         /* distinct indexed grams one url may hit; past it, every
                                   indexed rule stays a candidate for that event */
#define UX_SKETCH_BITS 20       /* counters of the compile-time gram frequency sketch (4 MB) */

enum { P_EXACT = 0, P_GLOB = 1, P_PREFIX = 2 };

typedef struct val {
    char *p;
    uint32_t len;
    uint32_t gh, gt; /* P_GLOB: bytes before the first '*' and after the last (UINT32_MAX: no '*') */
    uint32_t gm;     /* P_GLOB with two '*' or more: bytes between the first '*' and the second */
} val;

typedef struct pred {
    uint8_t kind;  /* P_EXACT / P_GLOB / P_PREFIX */
    int field;     /* decoder field id */
    char *key;     /* the match key as written (for explain) */
    uint32_t nv;
    val *v;
} pred;

typedef struct rule {
    char *name;
    int stage;
    int line;        /* 1-based, of the name node (duplicate-name errors cite it) */
    uint32_t p0, np; /* all predicates: preds[p0 .. p0+np), exact ones first */
    uint32_t g0, ng; /* glob/prefix predicates: preds[g0 .. g0+ng) */
} rule;

/* One distinct value of an exact-match field. Its rule bitset is stored sparsely: only the
 * words lo .. lo+n-1 (the span between its lowest and highest accepting rule) are kept, in
 * xfield.words from woff; every other word is zero. With rules like `event: e<i>` each value
 * holds one word, whatever the number of rules. */
typedef struct xslot {
    uint64_t h;    /* XXH3_64bits of the value */
    uint32_t koff; /* value bytes: xfield.keys + koff */
    uint32_t klen; /* 0 = empty slot (values are never empty) */
    uint32_t woff;
    uint16_t lo, n;
} xslot;

typedef struct xfield {
    int field;
    uint32_t mask;   /* slots - 1 (a power of two, at least twice the distinct values) */
    uint32_t nvals;
    uint32_t kused;
    xslot *slots;
    char *keys;      /* the distinct values, back to back */
    uint64_t *words; /* the sparse bitsets */
    uint64_t *uncon; /* W words: rules with no exact predicate on this field */
    uint16_t ulo, uhi; /* words of uncon that may be non-zero: [ulo, uhi) */
} xfield;

/* One distinct gram of the url index and the rules it indexes, as a list of the 64-rule words
 * that have any (ascending): a gram shared by rules 78 and 7861 costs two entries, not the 122
 * words between them (xslot's dense spans would make the url pass follow the number of
 * rules). */
typedef struct gslot {
    uint32_t gram;  /* GRAM bytes of a literal, as loaded by memcpy */
    uint32_t off;   /* entries uindex.ew[off .. off + cnt) and .eb[...] */
    uint32_t cnt;   /* 0: empty slot */
    uint32_t used;  /* compile time: the slot holds `gram` */
    uint32_t last;  /* compile time: the last word added + 1 (0: none) */
    uint32_t wr;    /* compile time: entries written */
} gslot;

typedef struct uindex {
    int field;       /* the url field */
    uint32_t mask;   /* slots - 1 */
    uint32_t shift;  /* 32 - log2(slots) */
    uint32_t nrules; /* rules whose candidacy the index decides */
    uint32_t nlo, nhi; /* words holding the other rules: [nlo, nhi) (nlo == nhi: none) */
    gslot *slots;
    uint16_t *ew;  /* entry: word index */
    uint64_t *eb;  /* entry: the rules of that word */
    uint64_t *idx; /* W words: the rules the index decides */
    uint64_t filter[(1u << UX_FILTER_BITS) / 64]; /* bit (hash >> 16): some gram has that hash */
} uindex;

struct cs_ruleset {
    char *journey;
    int nstages;
    char *stages[CS_MAX_STAGES];
    cs_session_conf sess;
    int ndims;
    cs_dim_conf dims[CS_MAX_DIMS];
    int nprops;
    char *prop_name[CS_MAX_FIELDS];
    int prop_field[CS_MAX_FIELDS];
    int nrules;
    rule *rules;
    uint32_t npreds, cappreds;
    pred *preds;
    uint32_t W;
    uint64_t *all; /* W words: bits 0..N-1 */
    int nx;
    xfield x[CS_MAX_FIELDS];
    uindex *ux; /* NULL: url keys are tested by scanning the candidates */
    cs_decode_plan *plan;
    char sha256[65];
    uint64_t load_steps; /* cs_rules_load_steps() */
    /* SPEC §3.1 identity: on, and its device [0] and person [1] paths as in force */
    int identity;
    char *id_paths[2][CS_MAX_PATHS];
    int id_n[2];
};

/* ------------------------------------------------------------------------------------------ */
/* errors */

typedef struct ctx {
    const char *name;
    char *err;
    size_t errlen;
    yaml_document_t *doc;
    cs_ruleset *rs;
    size_t nvalues; /* match values so far (MAX_TOTAL_VALUES) */
    size_t nbytes;  /* and their bytes (MAX_TOTAL_VALUE_BYTES) */
    yaml_node_t *fields_customer; /* fields.customer's value, if the file sets it */
} ctx;

static int verr_at(ctx *c, size_t line0, size_t col0, const char *fmt, va_list ap)
{
    if (!c->err || !c->errlen)
        return -1;
    int n = snprintf(c->err, c->errlen, "%s:%zu:%zu: ", c->name, line0 + 1, col0 + 1);
    if (n >= 0 && (size_t)n < c->errlen)
        vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
    return -1;
}

__attribute__((format(printf, 3, 4))) static int err_mark(ctx *c, yaml_mark_t m, const char *fmt,
                                                          ...)
{
    va_list ap;
    va_start(ap, fmt);
    verr_at(c, m.line, m.column, fmt, ap);
    va_end(ap);
    return -1;
}

__attribute__((format(printf, 3, 4))) static int err_node(ctx *c, const yaml_node_t *n,
                                                          const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verr_at(c, n ? n->start_mark.line : 0, n ? n->start_mark.column : 0, fmt, ap);
    va_end(ap);
    return -1;
}

/* A short, printable rendering of a value for messages: control bytes become '?', long values
 * are cut with "...". */
typedef struct qbuf {
    char s[80];
} qbuf;

static const char *q(qbuf *b, const char *p, size_t len)
{
    const size_t max = sizeof b->s - 4;
    cs_printable(b->s, max + 1, p, len);
    if (len > max)
        memcpy(b->s + max, "...", 4);
    return b->s;
}

/* ------------------------------------------------------------------------------------------ */
/* YAML node helpers */

static yaml_node_t *node(ctx *c, int idx) { return yaml_document_get_node(c->doc, idx); }

static const char *type_name(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SCALAR_NODE: return "a scalar";
    case YAML_SEQUENCE_NODE: return "a list";
    case YAML_MAPPING_NODE: return "a mapping";
    default: return "nothing";
    }
}

static int is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *s = (const char *)n->data.scalar.value;
    size_t l = n->data.scalar.length;
    return l == 0 || (l == 1 && s[0] == '~') ||
           (l == 4 && (!memcmp(s, "null", 4) || !memcmp(s, "Null", 4) || !memcmp(s, "NULL", 4)));
}

static const char *sval(const yaml_node_t *n, size_t *len)
{
    *len = n->data.scalar.length;
    return (const char *)n->data.scalar.value;
}

static int seq_len(const yaml_node_t *n)
{
    return (int)(n->data.sequence.items.top - n->data.sequence.items.start);
}

static int map_len(const yaml_node_t *n)
{
    return (int)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
}

static int key_is(const yaml_node_t *k, const char *name)
{
    size_t l = strlen(name);
    return k->type == YAML_SCALAR_NODE && k->data.scalar.length == l &&
           memcmp(k->data.scalar.value, name, l) == 0;
}

/* `what` must be a mapping; then: every key is a scalar, no key repeats, and (when `allowed`
 * is non-NULL) every key is one of `allowed`. */
static int check_map(ctx *c, yaml_node_t *n, const char *what, const char *const *allowed,
                     const char *expected)
{
    qbuf b;
    if (n->type != YAML_MAPPING_NODE)
        return err_node(c, n, "%s must be a mapping, not %s", what, type_name(n));
    /* open maps (allowed == NULL) are bounded so that the duplicate check stays cheap */
    int maxkeys = !allowed ? (!strcmp(what, "dimensions") ? CS_MAX_DIMS : MAX_MATCH_KEYS) : 1 << 30;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node(c, p->key);
        if (p - n->data.mapping.pairs.start == maxkeys)
            return err_node(c, k, "too many %s (at most %d)",
                            maxkeys == CS_MAX_DIMS ? "dimensions" : "keys in match", maxkeys);
        if (k->type != YAML_SCALAR_NODE)
            return err_node(c, k, "keys in %s must be strings, not %s", what, type_name(k));
        size_t kl;
        const char *ks = sval(k, &kl);
        if (allowed) {
            int ok = 0;
            for (const char *const *a = allowed; *a; a++)
                if (strlen(*a) == kl && memcmp(*a, ks, kl) == 0)
                    ok = 1;
            if (!ok)
                return err_node(c, k, "unknown key '%s' in %s (expected %s)", q(&b, ks, kl), what,
                                expected);
        }
        for (yaml_node_pair_t *o = n->data.mapping.pairs.start; o < p; o++) {
            yaml_node_t *ok = node(c, o->key);
            if (ok->data.scalar.length == kl && memcmp(ok->data.scalar.value, ks, kl) == 0)
                return err_node(c, k, "duplicate key '%s' in %s (first at line %zu)",
                                q(&b, ks, kl), what, ok->start_mark.line + 1);
        }
    }
    return 0;
}

static yaml_node_t *map_get(ctx *c, yaml_node_t *n, const char *key)
{
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++)
        if (key_is(node(c, p->key), key))
            return node(c, p->value);
    return NULL;
}

static yaml_node_t *map_key_node(ctx *c, yaml_node_t *n, const char *key)
{
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++)
        if (key_is(node(c, p->key), key))
            return node(c, p->key);
    return NULL;
}

/* A non-null scalar. */
static int want_string(ctx *c, yaml_node_t *n, const char *what, const char **s, size_t *len)
{
    if (n->type != YAML_SCALAR_NODE)
        return err_node(c, n, "%s must be a string, not %s", what, type_name(n));
    if (is_null(n) || n->data.scalar.length == 0)
        return err_node(c, n, "%s must not be empty", what);
    *s = sval(n, len);
    return 0;
}

static char *dupmem(const char *p, size_t len)
{
    char *s = malloc(len + 1);
    if (s) {
        memcpy(s, p, len);
        s[len] = '\0';
    }
    return s;
}

static int oom(ctx *c, yaml_node_t *n) { return err_node(c, n, "out of memory"); }

/* [a-z0-9_-]+ (journey and stages); dimension names also allow '.' and upper case. */
static int good_name(const char *s, size_t len, int dim)
{
    if (len == 0 || len > MAX_NAME_LEN)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-')
            continue;
        if (dim && ((ch >= 'A' && ch <= 'Z') || ch == '.'))
            continue;
        return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* scalars: durations and integers */

static int parse_duration(ctx *c, yaml_node_t *n, const char *what, int64_t *out)
{
    qbuf b;
    const char *s;
    size_t len;
    if (n->type != YAML_SCALAR_NODE)
        return err_node(c, n, "%s must be a duration like 30m, not %s", what, type_name(n));
    s = sval(n, &len);
    cs_dur_err e = cs_parse_duration(s, len, out);
    if (e == CS_DUR_TOO_LONG)
        return err_node(c, n, "%s '%s' is %s", what, q(&b, s, len), cs_dur_err_text(e));
    if (e != CS_DUR_OK)
        return err_node(c, n, "bad duration '%s' for %s: %s", q(&b, s, len), what,
                        cs_dur_err_text(e));
    return 0;
}

static int parse_uint(ctx *c, yaml_node_t *n, const char *what, uint64_t lo, uint64_t hi,
                      uint64_t *out)
{
    qbuf b;
    if (n->type != YAML_SCALAR_NODE)
        return err_node(c, n, "%s must be an integer, not %s", what, type_name(n));
    size_t len;
    const char *s = sval(n, &len);
    uint64_t v = 0;
    size_t i;
    for (i = 0; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        v = v * 10 + (uint64_t)(s[i] - '0');
        if (v > hi)
            break;
    }
    if (len == 0 || i != len || v < lo || v > hi)
        return err_node(c, n, "%s must be an integer in %llu..%llu, not '%s'", what,
                        (unsigned long long)lo, (unsigned long long)hi, q(&b, s, len));
    *out = v;
    return 0;
}

/* A string, or a list of 1..CS_MAX_PATHS strings, as NUL-terminated dotted paths. */
static int parse_paths(ctx *c, yaml_node_t *n, const char *what, char **paths, int *np)
{
    qbuf b;
    yaml_node_t *items[CS_MAX_PATHS];
    int k = 0;
    if (n->type == YAML_SEQUENCE_NODE) {
        if (seq_len(n) == 0)
            return err_node(c, n, "%s must list at least one path", what);
        if (seq_len(n) > CS_MAX_PATHS)
            return err_node(c, n, "%s lists more than %d paths", what, CS_MAX_PATHS);
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++)
            items[k++] = node(c, *it);
    } else {
        items[k++] = n;
    }
    *np = 0;
    for (int i = 0; i < k; i++) {
        const char *s;
        size_t len;
        if (want_string(c, items[i], what, &s, &len) < 0)
            return -1;
        if (memchr(s, '\0', len) || len >= CS_MAX_PATH_LEN)
            return err_node(c, items[i], "bad path '%s' in %s", q(&b, s, len), what);
        paths[i] = dupmem(s, len);
        if (!paths[i])
            return oom(c, items[i]);
        *np = i + 1;
    }
    return 0;
}

static void free_paths(char **paths, int n)
{
    for (int i = 0; i < n; i++)
        free(paths[i]);
}

/* ------------------------------------------------------------------------------------------ */
/* sections */

static int do_journey(ctx *c, yaml_node_t *n)
{
    qbuf b;
    const char *s;
    size_t len;
    if (want_string(c, n, "journey", &s, &len) < 0)
        return -1;
    if (!good_name(s, len, 0))
        return err_node(c, n, "bad journey name '%s': use 1..%d characters of [a-z0-9_-]",
                        q(&b, s, len), MAX_NAME_LEN);
    if (!(c->rs->journey = dupmem(s, len)))
        return oom(c, n);
    return 0;
}

static int do_stages(ctx *c, yaml_node_t *n)
{
    qbuf b;
    cs_ruleset *rs = c->rs;
    if (n->type != YAML_SEQUENCE_NODE)
        return err_node(c, n, "stages must be a list of stage names, not %s", type_name(n));
    if (seq_len(n) == 0)
        return err_node(c, n, "stages must not be empty (list 1..%d stage names)", CS_MAX_STAGES);
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        yaml_node_t *e = node(c, *it);
        const char *s;
        size_t len;
        if (want_string(c, e, "a stage name", &s, &len) < 0)
            return -1;
        if (!good_name(s, len, 0) || s[0] == '_')
            return err_node(c, e,
                            "bad stage name '%s': use 1..%d characters of [a-z0-9_-], not "
                            "starting with '_'",
                            q(&b, s, len), MAX_NAME_LEN);
        for (int i = 0; i < rs->nstages; i++)
            if (strlen(rs->stages[i]) == len && !memcmp(rs->stages[i], s, len))
                return err_node(c, e, "duplicate stage '%s'", q(&b, s, len));
        if (rs->nstages == CS_MAX_STAGES)
            return err_node(c, e, "too many stages (at most %d)", CS_MAX_STAGES);
        if (!(rs->stages[rs->nstages] = dupmem(s, len)))
            return oom(c, e);
        rs->nstages++;
    }
    return 0;
}

static int do_session(ctx *c, yaml_node_t *n)
{
    static const char *const keys[] = {"gap",        "max_duration", "lateness",
                                       "idle_close", "max_future",   NULL};
    cs_session_conf *sc = &c->rs->sess;
    if (check_map(c, n, "session", keys, "gap, max_duration, lateness, idle_close or max_future") <
        0)
        return -1;
    yaml_node_t *v;
    if ((v = map_get(c, n, "gap"))) {
        if (parse_duration(c, v, "gap", &sc->gap_ms) < 0)
            return -1;
        if (sc->gap_ms <= 0)
            return err_node(c, v, "gap must be greater than 0");
    }
    if ((v = map_get(c, n, "max_duration")) &&
        parse_duration(c, v, "max_duration", &sc->max_duration_ms) < 0)
        return -1;
    if ((v = map_get(c, n, "lateness")) && parse_duration(c, v, "lateness", &sc->lateness_ms) < 0)
        return -1;
    if ((v = map_get(c, n, "idle_close"))) {
        if (parse_duration(c, v, "idle_close", &sc->idle_close_ms) < 0)
            return -1;
        if (sc->idle_close_ms <= 0)
            return err_node(c, v, "idle_close must be greater than 0");
    }
    if ((v = map_get(c, n, "max_future")) &&
        parse_duration(c, v, "max_future", &sc->max_future_ms) < 0)
        return -1;
    return 0;
}

static const char *const std_names[CS_F_NSTD] = {"customer", "event", "time", "url", "channel"};

static int std_field(const char *s, size_t len)
{
    for (int i = 0; i < CS_F_NSTD; i++)
        if (strlen(std_names[i]) == len && !memcmp(std_names[i], s, len))
            return i;
    return -1;
}

static int do_format(ctx *c, yaml_node_t *n)
{
    qbuf b;
    const char *s;
    size_t len;
    char known[256], msg[256];
    if (want_string(c, n, "format", &s, &len) < 0)
        return -1;
    const cs_format *fmt = cs_format_find(s, len);
    cs_format_list(known, sizeof known);
    if (!fmt)
        return err_node(c, n, "unknown format '%s' (known formats: %s)", q(&b, s, len), known);
    msg[0] = '\0';
    if (cs_decode_plan_set_format(c->rs->plan, fmt, msg, sizeof msg) != 0)
        return err_node(c, n, "format %s: %s", fmt->name, msg[0] ? msg : "cannot be used");
    return 0;
}

static int do_time_unit(ctx *c, yaml_node_t *v)
{
    qbuf b;
    const char *s;
    size_t len;
    if (want_string(c, v, "fields.time_unit", &s, &len) < 0)
        return -1;
    int u = cs_time_unit_find(s, len);
    if (u < 0)
        return err_node(c, v, "unknown time unit '%s' for fields.time_unit (expected ms, s, us, "
                        "ns or auto)", q(&b, s, len));
    const cs_format *fmt = cs_decode_plan_format(c->rs->plan);
    if (!fmt->time_numeric)
        return err_node(c, v, "fields.time_unit does not apply to format %s: its time is a "
                        "'YYYY-MM-DD hh:mm:ss.fff' text, never a number", fmt->name);
    cs_decode_plan_set_time_unit(c->rs->plan, u);
    return 0;
}

static int do_fields(ctx *c, yaml_node_t *n)
{
    static const char *const keys[] = {"customer", "event", "time", "url", "channel", "time_unit",
                                       NULL};
    if (check_map(c, n, "fields", keys,
                  "customer, event, time, url, channel or time_unit") < 0)
        return -1;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node(c, p->key), *v = node(c, p->value);
        size_t kl;
        const char *ks = sval(k, &kl);
        if (kl == 9 && !memcmp(ks, "time_unit", 9)) {
            if (do_time_unit(c, v) < 0)
                return -1;
            continue;
        }
        int f = std_field(ks, kl);
        if (f == CS_F_CUSTOMER)
            c->fields_customer = v;
        char what[64], *paths[CS_MAX_PATHS], msg[256];
        int np = 0;
        snprintf(what, sizeof what, "fields.%s", std_names[f]);
        if (parse_paths(c, v, what, paths, &np) < 0) {
            free_paths(paths, np);
            return -1;
        }
        msg[0] = '\0';
        int r = cs_decode_plan_set_paths(c->rs->plan, f, (const char *const *)paths, np, msg,
                                         sizeof msg);
        free_paths(paths, np);
        if (r < 0)
            return err_node(c, v, "%s: %s", what, msg[0] ? msg : "bad path");
    }
    return 0;
}

/* The i-th path node of a paths value (a list, or one string). */
static yaml_node_t *path_item(ctx *c, yaml_node_t *n, int i)
{
    if (n->type != YAML_SEQUENCE_NODE)
        return n;
    return node(c, n->data.sequence.items.start[i]);
}

/* SPEC §3.1: `identity:` (docs/identity.md "Rule file"). Read after format and fields. A key
 * left out (or the whole block empty) takes the format's preset. */
static int do_identity(ctx *c, yaml_node_t *key, yaml_node_t *n)
{
    static const char *const keys[] = {"device", "person", NULL};
    static const char *const what[2] = {"identity.device", "identity.person"};
    cs_ruleset *rs = c->rs;
    qbuf b;
    yaml_node_t *v[2] = {NULL, NULL};
    if (!is_null(n)) {
        if (n->type != YAML_MAPPING_NODE)
            return err_node(c, n, "identity must be a mapping with device and/or person paths, "
                            "not %s", type_name(n));
        if (check_map(c, n, "identity", keys, "device or person") < 0)
            return -1;
        v[0] = map_get(c, n, "device");
        v[1] = map_get(c, n, "person");
    }
    if (c->fields_customer)
        return err_node(c, c->fields_customer,
                        "fields.customer cannot be used with identity: (line %zu): the customer "
                        "is the person, else the device's alias, else the device (SPEC 3.1); "
                        "name the paths in identity.device and identity.person",
                        key->start_mark.line + 1);
    const cs_format *fmt = cs_decode_plan_format(rs->plan);
    for (int k = 0; k < 2; k++) {
        if (v[k]) {
            if (is_null(v[k]))
                return err_node(c, v[k], "%s must list at least one path", what[k]);
            if (parse_paths(c, v[k], what[k], rs->id_paths[k], &rs->id_n[k]) < 0)
                return -1;
        } else {
            const char *const *pre = k ? fmt->person : fmt->device;
            for (int i = 0; i < CS_FMT_MAX_PATHS && i < CS_MAX_PATHS && pre[i]; i++) {
                if (!(rs->id_paths[k][i] = strdup(pre[i])))
                    return oom(c, n);
                rs->id_n[k] = i + 1;
            }
        }
    }
    /* one path in both lists: its value would always be "person equal to device" */
    for (int i = 0; i < rs->id_n[1]; i++)
        for (int j = 0; j < rs->id_n[0]; j++)
            if (!strcmp(rs->id_paths[1][i], rs->id_paths[0][j])) {
                yaml_node_t *at = v[1] ? path_item(c, v[1], i) : v[0] ? path_item(c, v[0], j) : n;
                return err_node(c, at, "%s: path '%s' is also in %s (an id cannot be both the "
                                "device and the person)", v[1] ? what[1] : what[0],
                                q(&b, rs->id_paths[1][i], strlen(rs->id_paths[1][i])),
                                v[1] ? what[0] : what[1]);
            }
    char msg[256] = "";
    if (cs_decode_plan_set_identity(rs->plan, (const char *const *)rs->id_paths[0], rs->id_n[0],
                                    (const char *const *)rs->id_paths[1], rs->id_n[1], msg,
                                    sizeof msg) != 0)
        return err_node(c, n, "identity: %s", msg[0] ? msg : "cannot be used");
    rs->identity = 1;
    return 0;
}

static int do_limits(ctx *c, yaml_node_t *n)
{
    static const char *const keys[] = {"max_bytes", "max_depth", NULL};
    if (check_map(c, n, "limits", keys, "max_bytes or max_depth") < 0)
        return -1;
    uint64_t mb = CS_DEFAULT_MAX_BYTES, md = CS_DEFAULT_MAX_DEPTH;
    yaml_node_t *v;
    if ((v = map_get(c, n, "max_bytes")) &&
        parse_uint(c, v, "limits.max_bytes", MIN_MAX_BYTES, MAX_MAX_BYTES, &mb) < 0)
        return -1;
    if ((v = map_get(c, n, "max_depth")) &&
        parse_uint(c, v, "limits.max_depth", 1, MAX_MAX_DEPTH, &md) < 0)
        return -1;
    cs_decode_plan_set_limits(c->rs->plan, (size_t)mb, (int)md);
    return 0;
}

static int do_dimensions(ctx *c, yaml_node_t *n)
{
    static const char *const keys[] = {"path", "max_values", NULL};
    qbuf b;
    cs_ruleset *rs = c->rs;
    if (check_map(c, n, "dimensions", NULL, NULL) < 0)
        return -1;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node(c, p->key), *v = node(c, p->value);
        size_t kl;
        const char *ks = sval(k, &kl);
        if (!good_name(ks, kl, 1) || ks[0] == '_')
            return err_node(c, k,
                            "bad dimension name '%s': use 1..%d characters of [A-Za-z0-9_.-], not "
                            "starting with '_'",
                            q(&b, ks, kl), MAX_NAME_LEN);
        if ((kl == 10 && !memcmp(ks, "url_prefix", 10)) || (kl > 9 && !memcmp(ks, "property.", 9)))
            return err_node(c, k, "dimension name '%s' is reserved for a match key",
                            q(&b, ks, kl));
        yaml_node_t *pathn = NULL, *maxn = NULL;
        if (!is_null(v)) {
            if (check_map(c, v, "a dimension", keys, "path or max_values") < 0)
                return -1;
            pathn = map_get(c, v, "path");
            maxn = map_get(c, v, "max_values");
        }
        cs_dim_conf *d = &rs->dims[rs->ndims];
        uint64_t mv = 64;
        if (maxn && parse_uint(c, maxn, "max_values", 1, CS_MAX_DIM_VALUES, &mv) < 0)
            return -1;
        int sf = std_field(ks, kl);
        char *paths[CS_MAX_PATHS];
        int np = 0;
        if (sf >= 0 && pathn)
            return err_node(c, map_key_node(c, v, "path"),
                            "dimension '%s' is the standard %s field and takes no path (change "
                            "its paths under fields: instead)",
                            std_names[sf], std_names[sf]);
        if (sf == CS_F_TIME)
            return err_node(c, k,
                            "'time' cannot be a dimension (to break down by a JSON key named "
                            "time, give the dimension another name and path: time)");
        if (sf >= 0) {
            d->field = sf;
        } else {
            char what[96], msg[256];
            snprintf(what, sizeof what, "dimension %s", q(&b, ks, kl));
            if (pathn) {
                if (parse_paths(c, pathn, "path", paths, &np) < 0) {
                    free_paths(paths, np);
                    return -1;
                }
            } else {
                if (!(paths[0] = dupmem(ks, kl)))
                    return oom(c, k);
                np = 1;
            }
            msg[0] = '\0';
            int f = cs_decode_plan_add_field(rs->plan, (const char *const *)paths, np, msg,
                                             sizeof msg);
            if (f < 0 || f >= CS_MAX_FIELDS) {
                free_paths(paths, np);
                return err_node(c, pathn ? pathn : k, "%s: %s", what,
                                msg[0] ? msg : "bad path");
            }
            d->field = f;
            for (int i = 0; i < np; i++)
                d->paths[i] = paths[i]; /* kept for tools (the reference model); freed below */
            d->npaths = np;
        }
        if (!(d->name = dupmem(ks, kl)))
            return oom(c, k);
        d->max_values = (uint32_t)mv;
        rs->ndims++;
    }
    return 0;
}

static pred *new_pred(ctx *c, yaml_node_t *at)
{
    cs_ruleset *rs = c->rs;
    if (rs->npreds == rs->cappreds) {
        uint32_t nc = rs->cappreds ? rs->cappreds * 2 : 16;
        pred *np = realloc(rs->preds, nc * sizeof *np);
        if (!np) {
            oom(c, at);
            return NULL;
        }
        rs->preds = np;
        rs->cappreds = nc;
    }
    pred *p = &rs->preds[rs->npreds++];
    memset(p, 0, sizeof *p);
    return p;
}

static int check_glob(ctx *c, yaml_node_t *n, const char *s, size_t len)
{
    qbuf b;
    int stars = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (ch == '*')
            stars++;
        else if (ch == '?' || ch == '[' || ch == ']' || ch == '{' || ch == '}')
            return err_node(c, n,
                            "bad glob '%s': '%c' is not supported (only '*' is special in url "
                            "globs)",
                            q(&b, s, len), ch);
    }
    if (stars > MAX_GLOB_STARS)
        return err_node(c, n, "bad glob '%s': more than %d '*'", q(&b, s, len), MAX_GLOB_STARS);
    return 0;
}

/* A match value: a string or a non-empty list of strings. */
static int parse_values(ctx *c, yaml_node_t *kn, yaml_node_t *n, pred *p, const char *rawkey)
{
    qbuf kb; /* the key as messages show it: a property path may hold control bytes */
    const char *key = q(&kb, rawkey, strlen(rawkey));
    int count = 1;
    if (n->type == YAML_MAPPING_NODE)
        return err_node(c, n, "match.%s must be a string or a list of strings, not a mapping",
                        key);
    if (n->type == YAML_SEQUENCE_NODE) {
        count = seq_len(n);
        if (count == 0)
            return err_node(c, n, "match.%s must not be an empty list", key);
    }
    if ((c->nvalues += (size_t)count) > MAX_TOTAL_VALUES)
        return err_node(c, kn, "too many match values in the file (at most %d)",
                        MAX_TOTAL_VALUES);
    if (!(p->v = calloc((size_t)count, sizeof *p->v)))
        return oom(c, n);
    for (int i = 0; i < count; i++) {
        yaml_node_t *e = n->type == YAML_SEQUENCE_NODE
                             ? node(c, n->data.sequence.items.start[i])
                             : n;
        if (e->type != YAML_SCALAR_NODE)
            return err_node(c, e, "match.%s values must be strings, not %s", key, type_name(e));
        size_t len;
        const char *s = sval(e, &len);
        if (p->kind == P_GLOB && len == 0)
            return err_node(c, e, "bad glob '': an empty pattern never matches");
        if (is_null(e) || len == 0)
            return err_node(c, e, "match.%s: an empty value never matches", key);
        if (len > UINT32_MAX / 2)
            return err_node(c, e, "match.%s: value too long", key);
        if (p->kind == P_GLOB) {
            if (check_glob(c, e, s, len) < 0)
                return -1;
        }
        if ((c->nbytes += len) > MAX_TOTAL_VALUE_BYTES)
            return err_node(c, kn, "match values too large in total (at most %u bytes)",
                            MAX_TOTAL_VALUE_BYTES);
        if (!(p->v[i].p = dupmem(s, len)))
            return oom(c, e);
        p->v[i].len = (uint32_t)len;
        if (p->kind == P_GLOB) {
            const char *f = memchr(s, '*', len), *l = memrchr(s, '*', len);
            p->v[i].gh = f ? (uint32_t)(f - s) : UINT32_MAX;
            p->v[i].gt = l ? (uint32_t)(len - (size_t)(l - s) - 1) : UINT32_MAX;
            const char *f2 = f && f != l ? memchr(f + 1, '*', (size_t)(l - f)) : NULL;
            p->v[i].gm = f2 ? (uint32_t)(f2 - f - 1) : 0;
        }
        p->nv = (uint32_t)(i + 1);
    }
    return 0;
}

/* p->v := p->v ∩ q->v (O(|p| + |q|) with a temporary hash set of q's values). */
static int intersect(ctx *c, yaml_node_t *at, pred *p, const pred *q, const char *rname)
{
    uint32_t cap = 8;
    while (cap < 2 * q->nv)
        cap *= 2;
    uint32_t *set = calloc(cap, sizeof *set); /* index + 1 into q->v; 0 = empty */
    if (!set)
        return oom(c, at);
    for (uint32_t i = 0; i < q->nv; i++) {
        uint32_t h = (uint32_t)XXH3_64bits(q->v[i].p, q->v[i].len) & (cap - 1);
        while (set[h])
            h = (h + 1) & (cap - 1);
        set[h] = i + 1;
    }
    uint32_t kept = 0;
    for (uint32_t i = 0; i < p->nv; i++) {
        val x = p->v[i];
        uint32_t h = (uint32_t)XXH3_64bits(x.p, x.len) & (cap - 1);
        int found = 0;
        for (; set[h]; h = (h + 1) & (cap - 1)) {
            const val *y = &q->v[set[h] - 1];
            if (y->len == x.len && !memcmp(y->p, x.p, x.len)) {
                found = 1;
                break;
            }
        }
        if (found)
            p->v[kept++] = x;
        else
            free(x.p);
    }
    p->nv = kept;
    free(set);
    if (kept == 0)
        return err_node(c, at,
                        "rule '%s' can never match: no value of '%s' is accepted by its '%s' "
                        "too (both test the same field)",
                        rname, p->key, q->key);
    return 0;
}

static int add_prop(ctx *c, yaml_node_t *k, const char *name, size_t nl, int *field)
{
    qbuf b;
    cs_ruleset *rs = c->rs;
    char path[CS_MAX_PATH_LEN + 32], msg[256];
    /* property.<name> is below the format's properties object (a column for TSV formats) */
    const char *pre = cs_decode_plan_format(rs->plan)->prop_prefix;
    const size_t pl = strlen(pre);
    if (nl == 0 || memchr(name, '\0', nl) || nl + pl >= CS_MAX_PATH_LEN)
        return err_node(c, k, "bad match key 'property.%s'", q(&b, name, nl));
    memcpy(path, pre, pl);
    memcpy(path + pl, name, nl);
    path[pl + nl] = '\0';
    const char *pp = path;
    msg[0] = '\0';
    int f = cs_decode_plan_add_field(rs->plan, &pp, 1, msg, sizeof msg);
    if (f < 0 || f >= CS_MAX_FIELDS)
        return err_node(c, k, "match key 'property.%s': %s", q(&b, name, nl),
                        msg[0] ? msg : "bad path");
    *field = f;
    for (int i = 0; i < rs->nprops; i++)
        if (rs->prop_field[i] == f)
            return 0;
    if (!(rs->prop_name[rs->nprops] = dupmem(name, nl)))
        return oom(c, k);
    rs->prop_field[rs->nprops++] = f;
    return 0;
}

static int do_match(ctx *c, yaml_node_t *n, rule *r)
{
    qbuf b;
    cs_ruleset *rs = c->rs;
    if (check_map(c, n, "match", NULL, NULL) < 0)
        return -1;
    if (map_len(n) == 0)
        return err_node(c, n, "match needs at least one key");
    r->p0 = rs->npreds;
    for (yaml_node_pair_t *pp = n->data.mapping.pairs.start; pp < n->data.mapping.pairs.top;
         pp++) {
        yaml_node_t *k = node(c, pp->key), *v = node(c, pp->value);
        size_t kl;
        const char *ks = sval(k, &kl);
        int kind, field = -1;
        if (kl == 5 && !memcmp(ks, "event", 5)) {
            kind = P_EXACT;
            field = CS_F_EVENT;
        } else if (kl == 7 && !memcmp(ks, "channel", 7)) {
            kind = P_EXACT;
            field = CS_F_CHANNEL;
        } else if (kl == 3 && !memcmp(ks, "url", 3)) {
            kind = P_GLOB;
            field = CS_F_URL;
        } else if (kl == 10 && !memcmp(ks, "url_prefix", 10)) {
            kind = P_PREFIX;
            field = CS_F_URL;
        } else if (kl >= 9 && !memcmp(ks, "property.", 9)) {
            kind = P_EXACT;
            if (add_prop(c, k, ks + 9, kl - 9, &field) < 0)
                return -1;
        } else {
            kind = P_EXACT;
            for (int i = 0; i < rs->ndims; i++)
                if (strlen(rs->dims[i].name) == kl && !memcmp(rs->dims[i].name, ks, kl))
                    field = rs->dims[i].field;
            if (field < 0) {
                char dl[CS_MAX_DIMS * (MAX_NAME_LEN + 2) + 1] = "";
                for (int i = 0; i < rs->ndims; i++) {
                    strcat(dl, i ? ", " : ": ");
                    strcat(dl, rs->dims[i].name);
                }
                return err_node(c, k,
                                "unknown match key '%s' (expected event, channel, url, "
                                "url_prefix, property.<name>%s%s)",
                                q(&b, ks, kl), rs->ndims ? " or a dimension" : "", dl);
            }
        }
        pred *p = new_pred(c, k);
        if (!p)
            return -1;
        p->kind = (uint8_t)kind;
        p->field = field;
        if (!(p->key = dupmem(ks, kl)))
            return oom(c, k);
        r->np = rs->npreds - r->p0;
        if (parse_values(c, k, v, p, p->key) < 0)
            return -1;
        if (kind == P_EXACT) {
            /* an earlier exact key of this rule on the same field: keep only the values both
             * accept here, so the last exact predicate on a field holds what the rule accepts */
            for (uint32_t j = rs->npreds - 1; j-- > r->p0;)
                if (rs->preds[j].kind == P_EXACT && rs->preds[j].field == field) {
                    if (intersect(c, k, p, &rs->preds[j], r->name) < 0)
                        return -1;
                    break;
                }
        }
    }
    /* exact predicates first (stable), then glob/prefix ones */
    pred *seg = rs->preds + r->p0;
    uint32_t ne = 0;
    for (uint32_t i = 0; i < r->np; i++)
        if (seg[i].kind == P_EXACT) {
            pred t = seg[i];
            memmove(seg + ne + 1, seg + ne, (i - ne) * sizeof *seg);
            seg[ne++] = t;
        }
    r->g0 = r->p0 + ne;
    r->ng = r->np - ne;
    return 0;
}

static int rules_body(ctx *c, yaml_node_t *n, int count, uint32_t *names, uint32_t nmask);

static int do_rules(ctx *c, yaml_node_t *n)
{
    cs_ruleset *rs = c->rs;
    if (n->type != YAML_SEQUENCE_NODE)
        return err_node(c, n, "rules must be a list, not %s", type_name(n));
    int count = seq_len(n);
    if (count > CS_MAX_RULES)
        return err_node(c, node(c, n->data.sequence.items.start[CS_MAX_RULES]),
                        "too many rules (at most %d)", CS_MAX_RULES);
    if (count && !(rs->rules = calloc((size_t)count, sizeof *rs->rules)))
        return oom(c, n);
    /* rule names seen so far: open addressing on XXH3 of the name, rule index + 1 (0 = empty);
     * a scan of the earlier names made loading quadratic (10,000 rules: 50M compares) */
    uint32_t ncap = 16;
    while (ncap < 2 * (uint32_t)count)
        ncap *= 2;
    uint32_t *names = calloc(ncap, sizeof *names);
    if (!names)
        return oom(c, n);
    int rc = rules_body(c, n, count, names, ncap - 1);
    free(names);
    return rc;
}

static int rules_body(ctx *c, yaml_node_t *n, int count, uint32_t *names, uint32_t nmask)
{
    static const char *const keys[] = {"name", "stage", "match", NULL};
    qbuf b;
    cs_ruleset *rs = c->rs;
    for (int i = 0; i < count; i++) {
        yaml_node_t *e = node(c, n->data.sequence.items.start[i]);
        if (check_map(c, e, "a rule", keys, "name, stage or match") < 0)
            return -1;
        yaml_node_t *nn = map_get(c, e, "name"), *sn = map_get(c, e, "stage"),
                    *mn = map_get(c, e, "match");
        if (!nn)
            return err_node(c, e, "rule has no name");
        const char *s;
        size_t len;
        if (want_string(c, nn, "rule name", &s, &len) < 0)
            return -1;
        if (len > MAX_RULE_NAME_LEN)
            return err_node(c, nn, "rule name longer than %d bytes", MAX_RULE_NAME_LEN);
        for (size_t j = 0; j < len; j++)
            if ((unsigned char)s[j] < 0x20 || s[j] == 0x7f)
                return err_node(c, nn, "rule name contains a control character");
        uint32_t *slot = &names[(uint32_t)XXH3_64bits(s, len) & nmask];
        for (;; slot = slot == names + nmask ? names : slot + 1) {
            rs->load_steps++;
            if (!*slot)
                break;
            const rule *o = &rs->rules[*slot - 1];
            if (strlen(o->name) == len && !memcmp(o->name, s, len))
                return err_node(c, nn, "duplicate rule name '%s' (first at line %d)",
                                q(&b, s, len), o->line);
        }
        *slot = (uint32_t)rs->nrules + 1;
        rule *r = &rs->rules[rs->nrules];
        if (!(r->name = dupmem(s, len)))
            return oom(c, nn);
        r->line = (int)nn->start_mark.line + 1;
        r->p0 = rs->npreds;
        rs->nrules++; /* owns r->name from here on */
        if (!sn)
            return err_node(c, e, "rule '%s' has no stage", r->name);
        if (want_string(c, sn, "stage", &s, &len) < 0)
            return -1;
        r->stage = -1;
        for (int j = 0; j < rs->nstages; j++)
            if (strlen(rs->stages[j]) == len && !memcmp(rs->stages[j], s, len))
                r->stage = j;
        if (r->stage < 0) {
            char sl[CS_MAX_STAGES * (MAX_NAME_LEN + 2) + 1] = "";
            for (int j = 0; j < rs->nstages; j++) {
                if (j)
                    strcat(sl, ", ");
                strcat(sl, rs->stages[j]);
            }
            return err_node(c, sn, "unknown stage '%s' (stages: %s)", q(&b, s, len), sl);
        }
        if (!mn)
            return err_node(c, e, "rule '%s' has no match", r->name);
        if (do_match(c, mn, r) < 0)
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* compile */

static uint64_t *bits_new(uint32_t W) { return calloc(W ? W : 1, sizeof(uint64_t)); }

static xslot *xfind(xfield *x, const char *p, uint32_t len, uint64_t h)
{
    uint32_t i = (uint32_t)h & x->mask;
    for (;;) {
        xslot *s = &x->slots[i];
        if (s->klen == 0 || (s->h == h && s->klen == len && !memcmp(x->keys + s->koff, p, len)))
            return s;
        i = (i + 1) & x->mask;
    }
}

/* Walks every (rule, value) pair where rule `r` accepts value `v` on field x->field, i.e. v is
 * in all of r's exact predicates on that field, in ascending rule order. pass 0: insert the
 * distinct values and find each one's word span (lo, n as max word); pass 1: set the bits. */
static int xfill(ctx *c, yaml_node_t *root, xfield *x, int pass)
{
    cs_ruleset *rs = c->rs;
    for (uint32_t r = 0; r < (uint32_t)rs->nrules; r++) {
        const rule *ru = &rs->rules[r];
        const pred *last = NULL; /* holds the intersection of the rule's keys on this field */
        for (uint32_t k = ru->p0; k < ru->g0; k++)
            if (rs->preds[k].field == x->field)
                last = &rs->preds[k];
        if (!last) {
            if (pass == 0) {
                x->uncon[r / 64] |= 1ull << (r % 64);
                if (x->uhi == 0)
                    x->ulo = (uint16_t)(r / 64);
                x->uhi = (uint16_t)(r / 64 + 1);
            }
            continue;
        }
        for (uint32_t vi = 0; vi < last->nv; vi++) {
            const val *v = &last->v[vi];
            uint64_t h = cs_vhash(v->p, v->len);
            xslot *s = xfind(x, v->p, v->len, h);
            if (pass == 1) {
                x->words[s->woff + r / 64 - s->lo] |= 1ull << (r % 64);
                continue;
            }
            if (s->klen == 0) {
                if (x->nvals == MAX_VALUES_PER_FIELD)
                    return err_node(c, root, "too many distinct values for one field (at most %d)",
                                    MAX_VALUES_PER_FIELD);
                x->nvals++;
                s->h = h;
                s->koff = x->kused;
                s->klen = v->len;
                memcpy(x->keys + x->kused, v->p, v->len);
                x->kused += v->len;
                s->lo = (uint16_t)(r / 64);
            }
            s->n = (uint16_t)(r / 64); /* highest word so far; turned into a count below */
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* url index
 *
 * Exact keys narrow the candidates with hash look-ups; url globs and url_prefix used to be
 * tested on every candidate left, so a file of N url-only rules cost N glob or prefix tests per
 * event (1,000 "*\/p/<i>/\*" rules: 54 us per event, 4,096: 230 us). The index makes their cost
 * independent of N as well:
 *  - every literal a url value requires — a url_prefix value, and each '*'-free piece of a glob
 *    ("https://s/", "/p/", "/reviews/") — must occur in the url for the value to match;
 *  - each indexable value is given ONE gram (GRAM = 4 consecutive bytes of one of its
 *    literals): the one that is rarest over all the file's url values (a count sketch at
 *    compile time), so "http" or ".com" is never picked when "/123" is there;
 *  - a rule is indexed by one of its url predicates whose every value has a literal of at
 *    least GRAM bytes; the gram table maps each chosen gram to the bitset of rules it indexes;
 *  - an event's url is read once, gram by gram (a 64K-bit filter skips grams no rule chose),
 *    and the bitsets of the grams it contains are OR'd: a superset of the indexed rules whose
 *    url predicate can hold. Candidates are then tested exactly as before (pred_holds), so the
 *    index can only remove rules that cannot match: answers are those of the scan.
 * Cost per event: one pass over the url (~1 ns per byte) when, and only when, a candidate that
 * survived the exact keys is an indexed rule; then only rules whose gram occurs are tested.
 * Not indexed (tested on every candidate, as before): globs with no literal of GRAM bytes
 * ("*", "*\/x/\*", "a*b"), and every url key when fewer than UX_MIN_RULES rules are indexable
 * (one pass over the url costs more than a few direct tests).
 * Rejected: Aho-Corasick over all literals (exact, but a sparse automaton per byte is several
 * times slower than a filtered gram probe, and the candidates still need the glob test for
 * order and anchoring); a prefix trie (helps url_prefix and globs with a literal head only,
 * not the "*\/reviews/\*" kind SPEC §2 shows). */

static inline uint32_t ghash(uint32_t g) { return g * 0x9E3779B1u; }

/* Calls f(literal, len, arg) for every literal of value v of predicate p. */
static void for_literals(const pred *p, const val *v, void (*f)(const char *, size_t, void *),
                         void *arg)
{
    if (p->kind == P_PREFIX) {
        f(v->p, v->len, arg);
        return;
    }
    const char *s = v->p, *e = v->p + v->len;
    while (s <= e) {
        const char *star = memchr(s, '*', (size_t)(e - s));
        const char *end = star ? star : e;
        if (end > s)
            f(s, (size_t)(end - s), arg);
        s = end + 1;
    }
}

static void lit_longest(const char *s, size_t len, void *arg)
{
    (void)s;
    size_t *m = arg;
    if (len > *m)
        *m = len;
}

/* Every value of p has a literal of at least GRAM bytes. */
static int pred_indexable(const pred *p)
{
    if (p->kind == P_EXACT)
        return 0;
    for (uint32_t i = 0; i < p->nv; i++) {
        size_t m = 0;
        for_literals(p, &p->v[i], lit_longest, &m);
        if (m < GRAM)
            return 0;
    }
    return 1;
}

static void lit_count(const char *s, size_t len, void *arg)
{
    uint32_t *sk = arg;
    for (size_t i = 0; i + GRAM <= len; i++) {
        uint32_t g;
        memcpy(&g, s + i, GRAM);
        uint32_t *k = &sk[ghash(g) >> (32 - UX_SKETCH_BITS)];
        if (*k != UINT32_MAX)
            (*k)++;
    }
}

typedef struct gpick {
    const uint32_t *sk;
    uint32_t best, bestk;
} gpick;

static void lit_pick(const char *s, size_t len, void *arg)
{
    gpick *gp = arg;
    for (size_t i = 0; i + GRAM <= len; i++) {
        uint32_t g;
        memcpy(&g, s + i, GRAM);
        uint32_t k = gp->sk[ghash(g) >> (32 - UX_SKETCH_BITS)];
        if (k < gp->bestk) {
            gp->bestk = k;
            gp->best = g;
        }
    }
}

static gslot *gfind(const uindex *ux, uint32_t g)
{
    for (uint32_t i = ghash(g) >> ux->shift;; i = (i + 1) & ux->mask) {
        gslot *s = &ux->slots[i];
        if (!s->used || s->gram == g)
            return s;
    }
}

/* The indexed predicate of rule r (index into rs->preds), or UINT32_MAX. */
static uint32_t rule_upred(const cs_ruleset *rs, const rule *ru)
{
    for (uint32_t k = ru->g0; k < ru->g0 + ru->ng; k++)
        if (pred_indexable(&rs->preds[k]))
            return k;
    return UINT32_MAX;
}

static int compile_uindex(ctx *c, yaml_node_t *root)
{
    cs_ruleset *rs = c->rs;
    uint32_t N = (uint32_t)rs->nrules, nidx = 0, nvals = 0;
    uint32_t *up = malloc((N ? N : 1) * sizeof *up);
    if (!up)
        return oom(c, root);
    for (uint32_t r = 0; r < N; r++) {
        up[r] = rule_upred(rs, &rs->rules[r]);
        if (up[r] != UINT32_MAX) {
            nidx++;
            nvals += rs->preds[up[r]].nv;
        }
    }
    if (nidx < UX_MIN_RULES) {
        free(up);
        return 0;
    }
    uint32_t *sk = calloc((size_t)1 << UX_SKETCH_BITS, sizeof *sk);
    uint32_t *vg = malloc((size_t)nvals * sizeof *vg);
    uindex *ux = calloc(1, sizeof *ux);
    int rc = -1;
    if (!sk || !vg || !ux)
        goto oom;
    rs->ux = ux;
    ux->field = CS_F_URL;
    ux->nrules = nidx;
    /* how many times each gram (its sketch counter) occurs over all indexed values */
    for (uint32_t r = 0; r < N; r++)
        if (up[r] != UINT32_MAX) {
            const pred *p = &rs->preds[up[r]];
            for (uint32_t i = 0; i < p->nv; i++)
                for_literals(p, &p->v[i], lit_count, sk);
        }
    /* each value's rarest gram */
    uint32_t k = 0;
    for (uint32_t r = 0; r < N; r++)
        if (up[r] != UINT32_MAX) {
            const pred *p = &rs->preds[up[r]];
            for (uint32_t i = 0; i < p->nv; i++) {
                gpick gp = {sk, 0, UINT32_MAX};
                for_literals(p, &p->v[i], lit_pick, &gp);
                vg[k++] = gp.best;
            }
        }
    uint32_t cap = 16, bits = 4;
    while (cap < 2 * nvals) {
        cap *= 2;
        bits++;
    }
    ux->mask = cap - 1;
    ux->shift = 32 - bits;
    if (!(ux->slots = calloc(cap, sizeof *ux->slots)) || !(ux->idx = bits_new(rs->W)))
        goto oom;
    ux->nlo = ux->nhi = 0;
    for (uint32_t r = 0; r < N; r++)
        if (up[r] == UINT32_MAX) {
            if (ux->nhi == 0)
                ux->nlo = r / 64;
            ux->nhi = r / 64 + 1;
        }
    /* pass 0: distinct grams and how many distinct words each has; pass 1: the entries.
     * Rules come in ascending order, so a slot's words do too. */
    uint64_t nent = 0;
    for (int pass = 0; pass < 2; pass++) {
        k = 0;
        for (uint32_t r = 0; r < N; r++) {
            if (up[r] == UINT32_MAX)
                continue;
            ux->idx[r / 64] |= 1ull << (r % 64);
            for (uint32_t i = 0; i < rs->preds[up[r]].nv; i++) {
                gslot *g = gfind(ux, vg[k++]);
                if (g->last == r / 64 + 1) { /* this word already has an entry */
                    if (pass == 1)
                        ux->eb[g->off + g->wr - 1] |= 1ull << (r % 64);
                    continue;
                }
                g->last = r / 64 + 1;
                if (pass == 0) {
                    g->used = 1;
                    g->gram = vg[k - 1];
                    g->cnt++;
                    nent++;
                } else {
                    ux->ew[g->off + g->wr] = (uint16_t)(r / 64);
                    ux->eb[g->off + g->wr] = 1ull << (r % 64);
                    g->wr++;
                }
            }
        }
        if (pass == 1)
            break;
        uint64_t off = 0;
        for (uint32_t i = 0; i < cap; i++) {
            gslot *g = &ux->slots[i];
            if (!g->cnt)
                continue;
            g->off = (uint32_t)off;
            off += g->cnt;
            g->last = 0;
            uint32_t bb = ghash(g->gram) >> (32 - UX_FILTER_BITS);
            ux->filter[bb / 64] |= 1ull << (bb % 64);
        }
        if (nent > UINT32_MAX || !(ux->ew = malloc((nent ? nent : 1) * sizeof *ux->ew)) ||
            !(ux->eb = malloc((nent ? nent : 1) * sizeof *ux->eb)))
            goto oom;
    }
    rc = 0;
oom:
    if (rc < 0)
        oom(c, root);
    free(up);
    free(sk);
    free(vg);
    return rc;
}

static int compile(ctx *c, yaml_node_t *root)
{
    cs_ruleset *rs = c->rs;
    uint32_t N = (uint32_t)rs->nrules, W = (N + 63) / 64;
    rs->W = W;
    if (!(rs->all = bits_new(W)))
        return oom(c, root);
    for (uint32_t r = 0; r < N; r++)
        rs->all[r / 64] |= 1ull << (r % 64);

    /* the distinct fields tested by exact predicates, in order of first use */
    for (uint32_t i = 0; i < rs->npreds; i++) {
        const pred *p = &rs->preds[i];
        if (p->kind != P_EXACT)
            continue;
        int seen = 0;
        for (int j = 0; j < rs->nx; j++)
            seen |= rs->x[j].field == p->field;
        if (!seen)
            rs->x[rs->nx++].field = p->field;
    }
    for (int xi = 0; xi < rs->nx; xi++) {
        xfield *x = &rs->x[xi];
        uint64_t total = 0;
        for (uint32_t i = 0; i < rs->npreds; i++)
            if (rs->preds[i].kind == P_EXACT && rs->preds[i].field == x->field)
                total += rs->preds[i].nv;
        uint32_t cap = 8;
        while (cap < 2 * total)
            cap *= 2;
        x->mask = cap - 1;
        if (!(x->slots = calloc(cap, sizeof *x->slots)) || !(x->uncon = bits_new(W)))
            return oom(c, root);
        size_t kcap = 0;
        for (uint32_t i = 0; i < rs->npreds; i++)
            if (rs->preds[i].kind == P_EXACT && rs->preds[i].field == x->field)
                for (uint32_t j = 0; j < rs->preds[i].nv; j++)
                    kcap += rs->preds[i].v[j].len;
        if (kcap > UINT32_MAX || !(x->keys = malloc(kcap ? kcap : 1)))
            return oom(c, root);
        if (xfill(c, root, x, 0) < 0)
            return -1;
        uint64_t nwords = 0;
        for (uint32_t i = 0; i <= x->mask; i++) {
            xslot *s = &x->slots[i];
            if (s->klen) {
                s->woff = (uint32_t)nwords;
                s->n = (uint16_t)(s->n - s->lo + 1);
                nwords += s->n;
            }
        }
        if (!(x->words = calloc(nwords ? nwords : 1, sizeof(uint64_t))))
            return oom(c, root);
        if (xfill(c, root, x, 1) < 0)
            return -1;
    }
    return compile_uindex(c, root);
}

/* ------------------------------------------------------------------------------------------ */
/* load */

static void sha256_hex(const void *p, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    static const char hex[] = "0123456789abcdef";
    if (!EVP_Digest(p, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32) {
        out[0] = '\0';
        return;
    }
    for (unsigned i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}

static int yaml_error(ctx *c, yaml_parser_t *ps, const char *src, size_t len)
{
    yaml_mark_t m;
    char msg[512];
    cs_yaml_error(ps, src, len, &m, msg, sizeof msg);
    return err_mark(c, m, "%s", msg);
}

static const char *const top_keys[] = {"journey", "stages",     "session", "customer_ttl",
                                       "format",  "fields",     "limits",  "dimensions",
                                       "rules",   "identity",   NULL};

static int load_doc(ctx *c, yaml_node_t *root)
{
    cs_ruleset *rs = c->rs;
    if (check_map(c, root, "the rule file", top_keys,
                  "journey, stages, session, customer_ttl, dimensions, rules, format, fields, "
                  "identity or limits") < 0)
        return -1;
    yaml_node_t *v;
    if (!(v = map_get(c, root, "journey")))
        return err_node(c, root, "missing required key 'journey'");
    if (do_journey(c, v) < 0)
        return -1;
    if (!(v = map_get(c, root, "stages")))
        return err_node(c, root, "missing required key 'stages'");
    if (do_stages(c, v) < 0)
        return -1;
    if ((v = map_get(c, root, "session")) && !is_null(v) && do_session(c, v) < 0)
        return -1;
    if ((v = map_get(c, root, "customer_ttl"))) {
        if (parse_duration(c, v, "customer_ttl", &rs->sess.customer_ttl_ms) < 0)
            return -1;
        if (rs->sess.customer_ttl_ms <= 0)
            return err_node(c, v, "customer_ttl must be greater than 0");
    }
    /* the format first: fields, dimensions and property keys are read against it */
    if ((v = map_get(c, root, "format")) && do_format(c, v) < 0)
        return -1;
    if ((v = map_get(c, root, "fields")) && !is_null(v) && do_fields(c, v) < 0)
        return -1;
    /* SPEC §3.1, after fields (fields.customer is an error with it) and before dimensions */
    if ((v = map_get(c, root, "identity")) && do_identity(c, map_key_node(c, root, "identity"), v) < 0)
        return -1;
    if ((v = map_get(c, root, "limits")) && !is_null(v) && do_limits(c, v) < 0)
        return -1;
    if ((v = map_get(c, root, "dimensions")) && !is_null(v) && do_dimensions(c, v) < 0)
        return -1;
    if ((v = map_get(c, root, "rules")) && !is_null(v) && do_rules(c, v) < 0)
        return -1;
    return compile(c, root);
}

cs_ruleset *cs_rules_load_string(const char *yaml, size_t len, const char *name, char *errstr,
                                 size_t errlen)
{
    ctx c = {.name = name ? name : "<string>", .err = errstr, .errlen = errlen};
    yaml_mark_t m0 = {0, 0, 0};
    if (errstr && errlen)
        errstr[0] = '\0';
    if (!yaml && len)
        return err_mark(&c, m0, "no input"), NULL;
    if (len > MAX_FILE_BYTES) {
        err_mark(&c, m0, "rule file larger than %u bytes", MAX_FILE_BYTES);
        return NULL;
    }
    cs_ruleset *rs = calloc(1, sizeof *rs);
    if (!rs) {
        err_mark(&c, m0, "out of memory");
        return NULL;
    }
    c.rs = rs;
    rs->sess.gap_ms = 30LL * 60000;
    rs->sess.max_duration_ms = 24LL * 3600000;
    rs->sess.lateness_ms = 30LL * 1000;
    rs->sess.idle_close_ms = 60LL * 1000;
    rs->sess.customer_ttl_ms = 90LL * 86400000;
    rs->sess.max_future_ms = 3600LL * 1000;
    sha256_hex(yaml ? yaml : "", len, rs->sha256);
    if (!rs->sha256[0] || !(rs->plan = cs_decode_plan_new())) {
        err_mark(&c, m0, "out of memory");
        cs_rules_destroy(rs);
        return NULL;
    }

    yaml_parser_t ps;
    yaml_document_t doc, doc2;
    int ok = -1, have_doc = 0;
    if (!yaml_parser_initialize(&ps)) {
        err_mark(&c, m0, "out of memory");
        cs_rules_destroy(rs);
        return NULL;
    }
    yaml_parser_set_input_string(&ps, (const unsigned char *)(yaml ? yaml : ""), len);
    if (!cs_yaml_load(&ps, &doc, &rs->load_steps)) {
        yaml_error(&c, &ps, yaml ? yaml : "", len);
        goto out;
    }
    have_doc = 1;
    c.doc = &doc;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {
        err_mark(&c, m0, "empty rule file (expected a mapping with journey, stages and rules)");
        goto out;
    }
    /* exactly one document: a second one is an error, and so is a syntax error after the first */
    if (!cs_yaml_load(&ps, &doc2, &rs->load_steps)) {
        yaml_error(&c, &ps, yaml, len);
        goto out;
    }
    yaml_node_t *root2 = yaml_document_get_root_node(&doc2);
    if (root2) {
        err_mark(&c, doc2.start_mark, "a rule file holds one YAML document; found a second one");
        yaml_document_delete(&doc2);
        goto out;
    }
    yaml_document_delete(&doc2);
    ok = load_doc(&c, root);
    if (ok == 0)
        cs_decode_plan_set_time_bounds(rs->plan, CS_MIN_EVENT_TIME_MS, rs->sess.max_future_ms);
out:
    if (have_doc)
        yaml_document_delete(&doc);
    yaml_parser_delete(&ps);
    if (ok < 0) {
        if (errstr && errlen && !errstr[0])
            snprintf(errstr, errlen, "%s:1:1: invalid rule file", c.name);
        cs_rules_destroy(rs);
        return NULL;
    }
    return rs;
}

cs_ruleset *cs_rules_load_file(const char *path, char *errstr, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errstr && errlen)
            snprintf(errstr, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (len == cap) {
            if (cap > MAX_FILE_BYTES) {
                fclose(f);
                free(buf);
                if (errstr && errlen)
                    snprintf(errstr, errlen, "%s: rule file larger than %u bytes", path,
                             MAX_FILE_BYTES);
                return NULL;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    int rerr = ferror(f);
    fclose(f);
    if (!buf || rerr) {
        if (errstr && errlen)
            snprintf(errstr, errlen, "%s: %s", path, buf ? "read error" : "out of memory");
        free(buf);
        return NULL;
    }
    cs_ruleset *rs = cs_rules_load_string(buf, len, path, errstr, errlen);
    free(buf);
    return rs;
}

void cs_rules_destroy(cs_ruleset *rs)
{
    if (!rs)
        return;
    free(rs->journey);
    for (int i = 0; i < rs->nstages; i++)
        free(rs->stages[i]);
    for (int i = 0; i < CS_MAX_DIMS; i++) {
        free((char *)rs->dims[i].name);
        for (int j = 0; j < rs->dims[i].npaths; j++)
            free((char *)rs->dims[i].paths[j]);
    }
    for (int i = 0; i < rs->nprops; i++)
        free(rs->prop_name[i]);
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < rs->id_n[k]; i++)
            free(rs->id_paths[k][i]);
    for (int i = 0; i < rs->nrules; i++)
        free(rs->rules[i].name);
    free(rs->rules);
    for (uint32_t i = 0; i < rs->npreds; i++) {
        pred *p = &rs->preds[i];
        if (p->v)
            for (uint32_t j = 0; j < p->nv; j++)
                free(p->v[j].p);
        free(p->v);
        free(p->key);
    }
    free(rs->preds);
    for (int i = 0; i < rs->nx; i++) {
        free(rs->x[i].slots);
        free(rs->x[i].keys);
        free(rs->x[i].words);
        free(rs->x[i].uncon);
    }
    free(rs->all);
    if (rs->ux) {
        free(rs->ux->slots);
        free(rs->ux->ew);
        free(rs->ux->eb);
        free(rs->ux->idx);
        free(rs->ux);
    }
    if (rs->plan)
        cs_decode_plan_destroy(rs->plan);
    free(rs);
}

/* ------------------------------------------------------------------------------------------ */
/* accessors */

const char *cs_rules_journey(const cs_ruleset *rs) { return rs->journey; }
int cs_rules_nstages(const cs_ruleset *rs) { return rs->nstages; }
const char *cs_rules_stage_name(const cs_ruleset *rs, int stage)
{
    return stage >= 0 && stage < rs->nstages ? rs->stages[stage] : NULL;
}
int cs_rules_stage_index(const cs_ruleset *rs, const char *name)
{
    for (int i = 0; name && i < rs->nstages; i++)
        if (!strcmp(rs->stages[i], name))
            return i;
    return -1;
}
const cs_session_conf *cs_rules_session(const cs_ruleset *rs) { return &rs->sess; }
int cs_rules_ndims(const cs_ruleset *rs) { return rs->ndims; }
const cs_dim_conf *cs_rules_dim(const cs_ruleset *rs, int i)
{
    return i >= 0 && i < rs->ndims ? &rs->dims[i] : NULL;
}
int cs_rules_nrules(const cs_ruleset *rs) { return rs->nrules; }
const char *cs_rules_rule_name(const cs_ruleset *rs, int r)
{
    return r >= 0 && r < rs->nrules ? rs->rules[r].name : NULL;
}
int cs_rules_rule_stage(const cs_ruleset *rs, int r)
{
    return r >= 0 && r < rs->nrules ? rs->rules[r].stage : -1;
}
int cs_rules_identity(const cs_ruleset *rs) { return rs->identity; }

int cs_rules_identity_paths(const cs_ruleset *rs, int which, const char *const **paths)
{
    if (which < 0 || which > 1 || !rs->identity) {
        *paths = NULL;
        return 0;
    }
    *paths = (const char *const *)rs->id_paths[which];
    return rs->id_n[which];
}

const cs_decode_plan *cs_rules_plan(const cs_ruleset *rs) { return rs->plan; }
const char *cs_rules_sha256(const cs_ruleset *rs) { return rs->sha256; }
uint64_t cs_rules_load_steps(const cs_ruleset *rs) { return rs->load_steps; }
int cs_rules_nprops(const cs_ruleset *rs) { return rs->nprops; }
const char *cs_rules_prop_name(const cs_ruleset *rs, int i)
{
    return i >= 0 && i < rs->nprops ? rs->prop_name[i] : NULL;
}
int cs_rules_prop_field(const cs_ruleset *rs, int i)
{
    return i >= 0 && i < rs->nprops ? rs->prop_field[i] : -1;
}

/* ------------------------------------------------------------------------------------------ */
/* matching */

/* The leftmost occurrence of n[0..nl) (nl >= 1) in h[0..hl), or NULL: memmem's answer. Values
 * are short (urls), so testing a literal's first and last bytes at 16 positions at a time (the
 * candidates then compared in order, the lowest first), then one position at a time for the
 * last ones, beats glibc memmem, whose set-up alone was ~200 instructions a call for the
 * literal "/reviews/" of retail.yaml's url glob on a ~26-byte url (callgrind, issue 18). The
 * 16-byte loads stay inside h (a value points into the caller's message: nothing may be read
 * past it). Long values still go to memmem. */
static inline const char *find_lit(const char *h, size_t hl, const char *n, size_t nl)
{
    if (hl < nl)
        return NULL;
    if (hl > 256)
        return memmem(h, hl, n, nl);
    const size_t end = hl - nl; /* the last start position */
    size_t i = 0;
#ifdef __SSE2__
    /* positions i .. i+15 a block; the last block ends at the last position (end - 15 .. end,
     * its loads ending at h + hl), with the positions below i (already tested) masked off.
     * Rejected: the last positions one at a time, ~25 instructions per bench_core event on its
     * 27-byte urls (callgrind, issue 18). Scalar when hl < nl + 15. */
    if (end >= 15) {
        const __m128i v0 = _mm_set1_epi8(n[0]), vl = _mm_set1_epi8(n[nl - 1]);
        for (;; i += 16) {
            const size_t b0 = i <= end - 15 ? i : end - 15;
            const __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(h + b0));
            const __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(h + b0 + nl - 1));
            unsigned m = (unsigned)_mm_movemask_epi8(
                             _mm_and_si128(_mm_cmpeq_epi8(a, v0), _mm_cmpeq_epi8(b, vl))) &
                         (0xffffu << (i - b0));
            for (; m; m &= m - 1) {
                const size_t k = b0 + (size_t)__builtin_ctz(m);
                if (memcmp(h + k + 1, n + 1, nl - 1) == 0)
                    return h + k;
            }
            if (b0 == end - 15)
                return NULL;
        }
    }
#endif
    for (; i <= end; i++)
        if (h[i] == n[0] && h[i + nl - 1] == n[nl - 1] && memcmp(h + i + 1, n + 1, nl - 1) == 0)
            return h + i;
    return NULL;
}

static int glob_middle(const char *pat, size_t plen, size_t m1, const char *s, size_t slen);

/* cs_glob_match of a pattern with at least one '*', whose first '*' is at pat[n], whose last
 * is followed by tn bytes, and whose first two '*' have m1 bytes between them (0 with one '*';
 * the rule loader knows all three: val.gh, val.gt, val.gm). */
static inline int glob_match_at(const char *pat, size_t plen, size_t n, size_t tn, size_t m1,
                                const char *s, size_t slen)
{
    /* head: the literal before the first '*' must be a prefix */
    if (slen < n + tn || !cs_bytes_eq(pat, s, n))
        return 0;
    s += n;
    slen -= n;
    pat += n + 1;
    plen -= n + 1;
    /* tail: the literal after the last '*' must be a suffix of what is left (when the first
     * '*' is the last, tn counts the same bytes: then plen == tn) */
    if (!cs_bytes_eq(pat + plen - tn, s + slen - tn, tn))
        return 0;
    slen -= tn;
    plen -= tn;
    return glob_middle(pat, plen, m1, s, slen);
}

int cs_glob_match(const char *pat, size_t plen, const char *s, size_t slen)
{
    const char *star = memchr(pat, '*', plen);
    if (!star)
        return plen == slen && memcmp(pat, s, plen) == 0;
    const char *last = memrchr(pat, '*', plen);
    const char *second = star != last ? memchr(star + 1, '*', (size_t)(last - star)) : NULL;
    return glob_match_at(pat, plen, (size_t)(star - pat), plen - (size_t)(last - pat) - 1,
                         second ? (size_t)(second - star - 1) : 0, s, slen);
}

/* The middle of a glob, "m1*m2*...*mk*" (empty: matches), against s: each literal leftmost,
 * in order (greedy is exact for '*'). */
static int glob_middle(const char *pat, size_t plen, size_t m1, const char *s, size_t slen)
{
    /* the first literal's length is known (m1: the loader's val.gm); rejected, a memchr for it
     * as for the others: ~10 instructions per bench_core event, whose url glob has one */
    for (int first = 1; plen; first = 0) {
        const char *e = first ? pat + m1 : memchr(pat, '*', plen);
        size_t ml = (size_t)(e - pat);
        if (ml) {
            const char *hit = find_lit(s, slen, pat, ml);
            if (!hit)
                return 0;
            size_t adv = (size_t)(hit - s) + ml;
            s += adv;
            slen -= adv;
        }
        pat = e + 1;
        plen -= ml + 1;
    }
    return 1;
}

/* Always inlined (into match_impl and the explain path): the call cost ~20 instructions of a
 * url glob's test (callgrind, issue 18, second pass). */
static inline __attribute__((always_inline)) int pred_holds(const pred *p, const cs_sv *v)
{
    if (v->len == 0)
        return 0;
    for (uint32_t i = 0; i < p->nv; i++) {
        const val *x = &p->v[i];
        switch (p->kind) {
        case P_EXACT:
            if (x->len == v->len && cs_bytes_eq(x->p, v->p, v->len))
                return 1;
            break;
        case P_GLOB:
            if (x->gh == UINT32_MAX ? x->len == v->len && cs_bytes_eq(x->p, v->p, v->len)
                                    : glob_match_at(x->p, x->len, x->gh, x->gt, x->gm, v->p,
                                                    v->len))
                return 1;
            break;
        default:
            if (x->len <= v->len && !memcmp(x->p, v->p, x->len))
                return 1;
            break;
        }
    }
    return 0;
}

/* Inlined into match_impl's loop over the indexed fields (GCC kept it out of line: ~20
 * instructions a call of saves and restores; callgrind, issue 18, second pass). */
static inline __attribute__((always_inline)) const xslot *xlookup(const xfield *x, const cs_sv *v)
{
    if (v->len == 0)
        return NULL;
    uint64_t h = cs_vhash(v->p, v->len);
    uint32_t i = (uint32_t)h & x->mask;
    for (;;) {
        const xslot *s = &x->slots[i];
        if (s->klen == 0)
            return NULL;
        if (s->h == h && s->klen == v->len && cs_bytes_eq(x->keys + s->koff, v->p, v->len))
            return s;
        i = (i + 1) & x->mask;
    }
}

/* The rules the url index keeps for url u: the OR of the rule sets of the grams u contains,
 * from word w0 on. Sets nz (bit w: word w has some) and ub[w] for those words only (the others
 * are stale), and *uhi to the last such word + 1; returns 1. Returns 2 when u hits more than
 * UX_MAX_HITS distinct grams: then every indexed rule stays a candidate, which is always
 * correct. */
static int url_candidates(const uindex *ux, const cs_sv *u, uint64_t *ub, uint64_t *nz,
                          uint32_t w0, uint32_t *uhi, cs_match_stats *st)
{
    if (st) {
        st->url_passes++;
        st->url_bytes += u->len;
    }
    uint32_t seen[2 * UX_MAX_HITS]; /* slot index + 1 of the grams met: a small hash set */
    uint32_t hits[UX_MAX_HITS];
    unsigned nhits = 0;
    memset(seen, 0, sizeof seen);
    const uint8_t *p = (const uint8_t *)u->p;
    for (size_t left = u->len >= GRAM ? u->len - GRAM + 1 : 0; left; left--, p++) {
        uint32_t g;
        memcpy(&g, p, GRAM);
        const uint32_t h = ghash(g), fb = h >> (32 - UX_FILTER_BITS);
        if (!((ux->filter[fb / 64] >> (fb % 64)) & 1))
            continue;
        uint32_t i = h >> ux->shift;
        const gslot *s;
        for (;; i = (i + 1) & ux->mask) {
            s = &ux->slots[i];
            if (!s->cnt || s->gram == g)
                break;
        }
        if (!s->cnt)
            continue;
        uint32_t j = ghash(i + 1) >> (32 - 8); /* 2 * UX_MAX_HITS = 2^8 entries */
        while (seen[j] && seen[j] != i + 1)
            j = (j + 1) & (2 * UX_MAX_HITS - 1);
        if (seen[j])
            continue;
        if (nhits == UX_MAX_HITS)
            return 2;
        seen[j] = i + 1;
        hits[nhits++] = i;
    }
    memset(nz, 0, CS_MAX_RULES / 64 / 64 * sizeof *nz);
    uint32_t e = w0;
    for (unsigned k = 0; k < nhits; k++) {
        const gslot *s = &ux->slots[hits[k]];
        for (uint32_t q = s->off; q < s->off + s->cnt; q++) {
            uint32_t w = ux->ew[q];
            if (w < w0)
                continue;
            uint64_t bit = 1ull << (w % 64);
            if (nz[w / 64] & bit) {
                ub[w] |= ux->eb[q];
            } else {
                nz[w / 64] |= bit;
                ub[w] = ux->eb[q];
            }
            if (w + 1 > e)
                e = w + 1;
        }
    }
    *uhi = e;
    return 1;
}
_Static_assert(2 * UX_MAX_HITS == 256, "url_candidates' seen set hashes to 8 bits");

/* cand = all & AND over exact fields f of (bits(f, value) | unconstrained[f]), then the first
 * candidate (lowest bit) whose glob/prefix predicates hold. The AND is done one 64-bit word at
 * a time, only over the words where every field can have a bit (the intersection of the
 * fields' spans), and stops at the first word that yields a rule: so its cost follows the
 * spans of the values looked up, not the number of rules. When a word still has candidates
 * whose url key the url index decides, the index is computed (once per event) and ANDed in. */
static inline __attribute__((always_inline)) int match_impl(const cs_ruleset *rs,
                                                            const cs_decoded *ev,
                                                            cs_match_stats *st)
{
    const xslot *hit[CS_MAX_FIELDS];
    _Static_assert(CS_MAX_RULES % 4096 == 0, "nz has a bit per 64-rule word");
    uint64_t ub[CS_MAX_RULES / 64], nz[CS_MAX_RULES / 64 / 64];
    int ustate = 0; /* 0: url index not computed yet; 1: nz/ub hold it; 2: not usable */
    uint32_t uhi = 0;
    const uindex *ux = rs->ux;
    uint32_t lo = 0, hi = rs->W;
    for (int xi = 0; xi < rs->nx; xi++) {
        const xfield *x = &rs->x[xi];
        const xslot *s = xlookup(x, &ev->f[x->field]);
        uint32_t flo, fhi;
        hit[xi] = s;
        if (s && x->uhi) {
            flo = s->lo < x->ulo ? s->lo : x->ulo;
            fhi = (uint32_t)s->lo + s->n > x->uhi ? (uint32_t)s->lo + s->n : x->uhi;
        } else if (s) {
            flo = s->lo;
            fhi = (uint32_t)s->lo + s->n;
        } else {
            flo = x->ulo;
            fhi = x->uhi;
        }
        if (flo > lo)
            lo = flo;
        if (fhi < hi)
            hi = fhi;
        if (lo >= hi)
            return -1;
    }
    for (uint32_t w = lo; w < hi; w++) {
        uint64_t m = rs->all[w];
        if (st)
            st->words++;
        for (int xi = 0; xi < rs->nx && m; xi++) {
            const xfield *x = &rs->x[xi];
            const xslot *s = hit[xi];
            uint64_t b = x->uncon[w];
            if (s && w - s->lo < s->n)
                b |= x->words[s->woff + (w - s->lo)];
            m &= b;
        }
        if (ux && (m & ux->idx[w])) {
            if (!ustate) {
                ustate = url_candidates(ux, &ev->f[ux->field], ub, nz, w, &uhi, st);
                /* from here on only words with a url candidate or a rule the index does not
                 * decide can yield a rule */
                uint32_t end = uhi > ux->nhi ? uhi : ux->nhi;
                if (ustate == 1 && end < hi)
                    hi = end;
            }
            if (ustate == 1)
                m &= ~ux->idx[w] | ((nz[w / 64] >> (w % 64)) & 1 ? ub[w] : 0);
        }
        while (m) {
            int r = (int)(w * 64 + (uint32_t)__builtin_ctzll(m));
            const rule *ru = &rs->rules[r];
            uint32_t k = 0;
            if (st)
                st->checked++;
            while (k < ru->ng &&
                   pred_holds(&rs->preds[ru->g0 + k], &ev->f[rs->preds[ru->g0 + k].field]))
                k++;
            if (k == ru->ng)
                return r;
            m &= m - 1;
        }
        if (ustate == 1) {
            /* jump to the next word holding a url candidate, unless a rule the index does not
             * decide comes first (their words are [nlo, nhi), taken as dense): with 10,000
             * url rules the candidates are a few words far apart */
            uint32_t next = hi; /* no url candidate after w */
            for (uint32_t k = (w + 1) / 64; k < (uhi + 63) / 64; k++) {
                uint64_t b = nz[k] & (k == (w + 1) / 64 ? ~0ull << ((w + 1) % 64) : ~0ull);
                if (b) {
                    next = k * 64 + (uint32_t)__builtin_ctzll(b);
                    break;
                }
            }
            if (ux->nhi > w + 1 && ux->nlo < next)
                next = ux->nlo > w + 1 ? ux->nlo : w + 1;
            if (next > hi)
                next = hi;
            w = next - 1;
        }
    }
    return -1;
}

int cs_rules_match(const cs_ruleset *rs, const cs_decoded *ev) { return match_impl(rs, ev, NULL); }

int cs_rules_match_stats(const cs_ruleset *rs, const cs_decoded *ev, cs_match_stats *st)
{
    return match_impl(rs, ev, st);
}

int cs_rules_url_indexed(const cs_ruleset *rs) { return rs->ux ? (int)rs->ux->nrules : 0; }

int cs_rules_match_scan(const cs_ruleset *rs, const cs_decoded *ev)
{
    for (int r = 0; r < rs->nrules; r++)
        if (cs_rules_rule_test(rs, r, ev, NULL, 0))
            return r;
    return -1;
}

int cs_rules_rule_test(const cs_ruleset *rs, int r, const cs_decoded *ev, char *why, size_t wlen)
{
    if (why && wlen)
        why[0] = '\0';
    if (r < 0 || r >= rs->nrules)
        return 0;
    const rule *ru = &rs->rules[r];
    for (uint32_t k = ru->p0; k < ru->p0 + ru->np; k++) {
        const pred *p = &rs->preds[k];
        const cs_sv *v = &ev->f[p->field];
        if (!pred_holds(p, v)) {
            if (why && wlen) {
                qbuf b;
                if (v->len == 0)
                    snprintf(why, wlen, "%s: field absent", p->key);
                else
                    snprintf(why, wlen, "%s: '%s' not accepted", p->key, q(&b, v->p, v->len));
            }
            return 0;
        }
    }
    return 1;
}
