/* engine_run.h — the unit tests' run of the real core (tests/unit/test_model_mt.c,
 * test_formats_model.c): `threads` worker threads (1..16) take the generated partitions
 * round-robin, `batch` messages at a time with a watermark tick in between (as the daemon does
 * between librdkafka batches); then the final watermark, every session ended as at the end of
 * a drain, and the workers' aggregates summed into counts. NULL (reason on stderr) when the rule
 * file or the engine cannot be set up. A stream from cs_gen_run_padded(.., CS_MSG_PAD) goes
 * through cs_worker_process_padded (the daemon's path), any other through cs_worker_process. */
#ifndef CS_TEST_ENGINE_RUN_H
#define CS_TEST_ENGINE_RUN_H

#include <stddef.h>

#include "counts.h"
#include "gen.h"

cs_counts *cs_test_run_engine(const cs_gen_out *g, int threads, size_t batch, const char *rules);

/* The reference model's counts of the whole stream (loadgen/refmodel.c), partition by partition,
 * ended as at the end of a drain; dim_paths as ref_new takes them. NULL (reason on stderr) when
 * the rule file cannot be loaded. */
cs_counts *cs_test_run_model(const cs_gen_out *g, const char *rules,
                             const char *const *dim_paths);

#endif
