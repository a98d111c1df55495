/* journey.h — /api/journey: a journey's counts as stored in Redis (SPEC §4), read over their own
 * Redis connection (pipeline/redis.h; key names from pipeline/rkeys.h) and written as one JSON
 * object (docs/observability.md "/api/journey").
 *
 * Threads: any; one request at a time holds the reader's mutex (HTTP threads share it). A failed
 * connection is retried on the next request, but not before 500 ms have passed (a Redis that is
 * down is answered 503 at once). */
#ifndef CS_JOURNEY_H
#define CS_JOURNEY_H

#include <stddef.h>
#include <stdio.h>

#include "metrics.h"

typedef struct cs_journey_reader cs_journey_reader;

/* journey "" = the one in the metrics snapshot. NULL with errstr on a bad URL. */
cs_journey_reader *cs_journey_reader_new(const char *redis_url, const char *prefix,
                                         const char *journey, char *errstr, size_t errlen);
void cs_journey_reader_free(cs_journey_reader *h);

/* 0: the body is in *fp (an open_memstream over buf and len); -1: Redis failed, err says why
 * (the caller answers 503), nothing to free. m gives the running journey and stages (used when
 * Redis has no meta yet). */
int cs_journey_read(cs_journey_reader *h, const cs_metrics *m, FILE **fp, char **buf, size_t *len,
                    char *err, size_t errlen);

#endif
