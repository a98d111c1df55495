/* refmodel.h — the deliberately simple, single-threaded reference model of SPEC §1 and §3-§4,
 * the ground truth of clickstage-loadgen --expect and of the tests: cJSON for decoding, a string-keyed map per customer, no watermark until
 * the end, no wheels, no deltas. The real pipeline must agree with it on generated input. */
#ifndef CS_LOADGEN_REFMODEL_H
#define CS_LOADGEN_REFMODEL_H

#include <stddef.h>
#include <stdint.h>

#include "classify.h"
#include "counts.h"

typedef struct ref_model ref_model;

/* dim_paths: NULL to take every dimension's paths from the rule file, or per dimension one
 * dotted path overriding it (NULL entries: from the rule file). */
ref_model *ref_new(const cs_ruleset *rs, const char *const *dim_paths, int nparts);
void ref_free(ref_model *m);
void ref_event(ref_model *m, int part, const char *payload, size_t len, int64_t kafka_ts);
/* End of input: the final watermark, sessions ended (reason by deadline or `reason`), expired
 * customers forgotten. */
void ref_finish(ref_model *m, int reason);
/* Adds every §4 count (cumulative) to out. */
void ref_counts(const ref_model *m, cs_counts *out);

#endif
