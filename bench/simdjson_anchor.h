/* simdjson_anchor.h — simdjson On-Demand over the same messages as cs_decode (bench_core's
 * external anchor; bench/simdjson_anchor.cpp, built when libsimdjson-dev is installed). */
#ifndef CS_SIMDJSON_ANCHOR_H
#define CS_SIMDJSON_ANCHOR_H

#include <stddef.h>
#include <stdint.h>

const char *cs_simdjson_version(void);
/* The kernel On-Demand was compiled for ("haswell", "westmere", "fallback", ...): simdjson 3.0
 * has no run-time dispatch for On-Demand (simdjson_anchor.cpp). */
const char *cs_simdjson_implementation(void);
/* 1 when this CPU runs that kernel. */
int cs_simdjson_runnable(void);
/* Bytes every message must have readable after its end (SIMDJSON_PADDING). */
size_t cs_simdjson_padding(void);
/* Decodes messages arena+off[i] (len[i] bytes, padded) with On-Demand, taking the SPEC §1
 * default fields; returns how many were objects, *found the fields taken. */
long long cs_simdjson_ondemand(const char *arena, const size_t *off, const size_t *len, size_t n,
                               uint64_t *found);

#endif
