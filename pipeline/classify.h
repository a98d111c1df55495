/* classify.h — the pipeline's classifier: a rule file (SPEC §2) compiled into an immutable table
 * that gives every decoded event a stage.
 *
 * Contract
 *  - cs_rules_load_*() parse YAML with libyaml, validate everything, and either return a complete
 *    table or NULL with errstr = "FILE:LINE:COLUMN: message" (1-based line and column of the
 *    offending YAML node). Nothing half-built escapes.
 *  - The table is immutable after load and may be read by any number of threads at once. Swapping
 *    tables on reload is the caller's business (an atomic pointer + a grace period).
 *  - cs_rules_classify() costs about the same for 10 or 10,000 rules: every exact-match key is
 *    one hash look-up that yields the bitset of rules accepting that value; the candidate set is
 *    the AND of those bitsets; url globs and prefixes are narrowed by the url index (a 4-byte
 *    piece of each value's literal text, looked for in one pass over the url) and then run
 *    only on surviving candidates, in rule order. It allocates nothing. docs/rules.md has the
 *    costs and the limits (CS_MAX_RULES; YAML nesting and size, pipeline/yamldoc.h).
 *  - The table also owns the decode plan (SPEC §1 standard fields + dimension and property paths
 *    the rules mention), because what must be decoded depends on the rules.
 */
#ifndef CS_CLASSIFY_H
#define CS_CLASSIFY_H

#include <stddef.h>
#include <stdint.h>

#include "decode.h"

#define CS_MAX_STAGES 32
#define CS_MAX_DIMS 4
#define CS_MAX_RULES 16384 /* docs/rules.md "Limits": why, and what 10,000 rules cost */
#define CS_MAX_DIM_VALUES 4096

typedef struct cs_ruleset cs_ruleset;

typedef struct cs_session_conf {
    int64_t gap_ms;          /* default 30m */
    int64_t max_duration_ms; /* default 24h; 0 = unlimited */
    int64_t lateness_ms;     /* default 30s */
    int64_t idle_close_ms;   /* default 1m */
    int64_t customer_ttl_ms; /* default 90d */
    int64_t max_future_ms;   /* default 1h; 0 = off. SPEC v1.1: an event time further than this
                                ahead of its message timestamp (or of the processor's clock) is
                                future_time and never moves the watermark */
} cs_session_conf;

typedef struct cs_dim_conf {
    const char *name;  /* the dimension name as written in the rule file */
    int field;         /* decoder field id holding its value */
    uint32_t max_values; /* distinct values before "_other"; default 64, 1..CS_MAX_DIM_VALUES */
    const char *paths[CS_MAX_PATHS]; /* its dotted paths when not a standard field, in order */
    int npaths;                      /* 0 for a standard field */
} cs_dim_conf;

/* Load from a file / from memory (`name` is what errors call the file). */
cs_ruleset *cs_rules_load_file(const char *path, char *errstr, size_t errlen);
cs_ruleset *cs_rules_load_string(const char *yaml, size_t len, const char *name, char *errstr,
                                 size_t errlen);
void cs_rules_destroy(cs_ruleset *rs);

const char *cs_rules_journey(const cs_ruleset *rs);
int cs_rules_nstages(const cs_ruleset *rs);
const char *cs_rules_stage_name(const cs_ruleset *rs, int stage); /* 0-based */
int cs_rules_stage_index(const cs_ruleset *rs, const char *name); /* -1 if unknown */
const cs_session_conf *cs_rules_session(const cs_ruleset *rs);
int cs_rules_ndims(const cs_ruleset *rs);
const cs_dim_conf *cs_rules_dim(const cs_ruleset *rs, int i);
int cs_rules_nrules(const cs_ruleset *rs);
const char *cs_rules_rule_name(const cs_ruleset *rs, int rule);
int cs_rules_rule_stage(const cs_ruleset *rs, int rule);
const cs_decode_plan *cs_rules_plan(const cs_ruleset *rs);
/* SPEC §3.1: 1 if the file has `identity:` (sessions per device, customers per person; the
 * decoded event's ids are described in decode.h "With identity"), else 0 (v1). */
int cs_rules_identity(const cs_ruleset *rs);
/* The identity paths in force (the file's, else the format's preset): which 0 = device,
 * 1 = person. Returns their number (0 without identity) and points *paths at them. */
int cs_rules_identity_paths(const cs_ruleset *rs, int which, const char *const **paths);
/* Lower-case hex SHA-256 of the file's bytes (64 chars + NUL). */
const char *cs_rules_sha256(const cs_ruleset *rs);

/* Index of the first rule that matches, or -1. Use cs_rules_rule_stage() for its stage. */
int cs_rules_match(const cs_ruleset *rs, const cs_decoded *ev);
/* Stage (0-based) of the first matching rule, or -1 (unclassified). */
static inline int cs_rules_classify(const cs_ruleset *rs, const cs_decoded *ev)
{
    int r = cs_rules_match(rs, ev);
    return r < 0 ? -1 : cs_rules_rule_stage(rs, r);
}

/* Additions (clickstage-rules explain, tests, fuzzing). */
/* The distinct fields the rules' `property.<name>` keys read, in order of first use: the name
 * as written after "property." and the decoder field id (path "properties.<name>"). */
int cs_rules_nprops(const cs_ruleset *rs);
const char *cs_rules_prop_name(const cs_ruleset *rs, int i);
int cs_rules_prop_field(const cs_ruleset *rs, int i);
/* cs_rules_match() that also counts its work into *st (added to, not reset), so tests can
 * prove the cost does not follow the number of rules. */
typedef struct cs_match_stats {
    uint64_t words;      /* 64-rule words of the candidate bitset visited */
    uint64_t checked;    /* candidates whose url glob / url_prefix keys were then tested */
    uint64_t url_passes; /* passes of the url index over the url (at most one per event) */
    uint64_t url_bytes;  /* bytes of url those passes read */
} cs_match_stats;
int cs_rules_match_stats(const cs_ruleset *rs, const cs_decoded *ev, cs_match_stats *st);
/* Rules whose url key is decided by the url index (0: the file has no index; docs/rules.md). */
int cs_rules_url_indexed(const cs_ruleset *rs);
/* Reference matcher: a plain scan of the rules in order, testing every predicate directly
 * (no hash tables, no bitsets). Same answer as cs_rules_match(); for tests and fuzzing. */
int cs_rules_match_scan(const cs_ruleset *rs, const cs_decoded *ev);
/* Does rule `rule` accept `ev`? 1/0. When it does not and `why` is non-NULL, `why` gets the
 * first failing match key and the event's value ("event: 'x' not accepted"). */
int cs_rules_rule_test(const cs_ruleset *rs, int rule, const cs_decoded *ev, char *why,
                       size_t wlen);

/* Work the loader did in look-ups that could go quadratic on a hostile file: YAML events read,
 * anchor-table probes, rule-name table probes. Linear in the file; tests assert it. */
uint64_t cs_rules_load_steps(const cs_ruleset *rs);

/* `*` glob over the whole subject (SPEC §2). Exposed for tests. */
int cs_glob_match(const char *pat, size_t plen, const char *s, size_t slen);

#endif
