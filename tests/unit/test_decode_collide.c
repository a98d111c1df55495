/* test_decode again, with a key prediction table of 2 entries (PRED_BITS 1; kpred in
 * pipeline/decode.c, issue 18), used for every key (the score that turns predictions off when
 * they are mostly wrong is held at 0). With 512 entries a stream's contexts rarely share an
 * entry, so the checks a prediction must pass before it is trusted (same object, same bytes,
 * the closing quote right after them) are met only now and then; with 2, nearly every key is
 * checked against a prediction made for another object, another key or another length, across
 * every test of test_decode (its reference comparison: 30,000 generated messages and their
 * mutations). The decoder is compiled into this test (its symbols take the place of the
 * library's decode.o), as test_config includes config.c. */
#define PRED_BITS 1
#define PRED_ALWAYS 1
#include "../../pipeline/decode.c"
#include "test_decode.c"
