/* engine.h — internal extras of the engine for the sink and the tests (the public API is
 * include/clickstage.h). */
#ifndef CS_ENGINE_H
#define CS_ENGINE_H

#include "aggregate.h"
#include "clickstage.h"

/* The dimension dictionaries ([ndims]) that name the value ids in the workers' aggregates. */
cs_dimdict_mpmc *cs_engine_dicts(cs_engine *e);

#endif
