/* counts.h — a flat map "(hash, field) -> value" used by tests and benchmarks to compare the
 * engine, the reference model, Redis and ground-truth files. Missing means 0. */
#ifndef CS_LOADGEN_COUNTS_H
#define CS_LOADGEN_COUNTS_H

#include <stdint.h>
#include <stdio.h>

typedef struct cs_counts cs_counts;

cs_counts *cs_counts_new(void);
void cs_counts_free(cs_counts *c);
void cs_counts_add(cs_counts *c, const char *hash, const char *field, int64_t delta);
int64_t cs_counts_get(const cs_counts *c, const char *hash, const char *field);
/* Prints every (hash, field) whose values differ (at most `max_print` lines) and returns how
 * many differ. */
long cs_counts_diff(const cs_counts *a, const char *aname, const cs_counts *b, const char *bname,
                    FILE *out, long max_print);
long cs_counts_size(const cs_counts *c);
/* dst += src */
void cs_counts_merge(cs_counts *dst, const cs_counts *src);
/* cs_agg_cb-compatible adder: opaque is a cs_counts*. */
void cs_counts_agg_cb(void *opaque, const char *hash, const char *field, int64_t delta);
/* Calls cb for every (hash, field) held (zeros included), in no particular order. */
void cs_counts_foreach(const cs_counts *c, void (*cb)(void *, const char *, const char *, int64_t),
                       void *opaque);
/* The invariants of SPEC §4.1: per stage S the `time_to:S` buckets sum to `reached` S, per a>b
 * the `transition_time` "a>b:<bucket>" fields sum to `transitions` a>b. Prints each violation
 * (at most max_print, when out is not NULL) and returns how many there are. */
long cs_counts_check_tt(const cs_counts *c, FILE *out, long max_print);
/* JSON: {"hash": {"field": n, ...}, ...}, sorted, zero values omitted. */
void cs_counts_write_json(const cs_counts *c, FILE *out);

#endif
