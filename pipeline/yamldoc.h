/* yamldoc.h — libyaml's yaml_parser_load() with bounded cost, for the rule file and the daemon's
 * config file.
 *
 * Contract
 *  - cs_yaml_load() is a drop-in for yaml_parser_load(): same arguments, same result (one
 *    document per call, an empty document (no root node) at the end of the stream, node marks,
 *    scalar styles, aliases sharing the anchored node so cycles are possible), and on failure it
 *    returns 0 with the error in the parser (ps->error, problem, problem_mark, context) exactly
 *    where yaml_parser_load() puts it, so existing error formatting keeps working. On failure
 *    no document is left to delete.
 *  - Its cost is linear in the input, whatever the input. What it adds over yaml_parser_load()
 *    in libyaml 0.2.5:
 *      - nesting: collections nested more than CS_YAML_MAX_DEPTH deep are an error at the
 *        collection that goes too deep. libyaml's scanner re-checks every open flow level on
 *        every token, so 100,000 nested '[' cost 32 s, 1M (2 MB, half a 4 MiB rule file) ~1 h
 *        and a 4 MiB file of them ~14 h (quadratic); the composer stops pulling events at the
 *        limit, and the scanner never runs more than its 1024-character simple-key look-ahead
 *        past it;
 *      - anchors: a hash table instead of libyaml's list, which it scans from the start for
 *        every anchor (duplicate check) and every alias (look-up): 250,000 anchors in a 4 MiB
 *        file took 290 s;
 *      - size: more than CS_YAML_MAX_NODES nodes is an error (a 4 MiB file of "[a,a,a,…" is 2M
 *        nodes, ~340 MB of libyaml nodes; the largest valid rule file needs ~400k).
 *  - Tags are not kept (every node gets libyaml's default tag): clickstage's schemas read
 *    values and scalar styles, never tags.
 *
 * Rejected alternatives: a byte-level pre-scan for nesting (needs YAML's quoting, flow and
 * block rules — a second YAML scanner); a first pass over the events to check depth and count
 * anchors, then yaml_parser_load() (parses twice and keeps the quadratic anchor list, so it
 * would need an arbitrary cap on anchors as well).
 */
#ifndef CS_YAMLDOC_H
#define CS_YAMLDOC_H

#include <stddef.h>
#include <stdint.h>

#include <yaml.h>

#define CS_YAML_MAX_DEPTH 32           /* the rule file's schema needs 5, the config file 2 */
#define CS_YAML_MAX_NODES (1u << 20)

/* Like yaml_parser_load(ps, doc). `steps`, when not NULL, is increased by the number of
 * events read plus anchor-table probes made: a measure of the work done, for tests that prove
 * it stays linear. */
int cs_yaml_load(yaml_parser_t *ps, yaml_document_t *doc, uint64_t *steps);

/* After a failed load of src[0..len): where (0-based line and column, as libyaml's marks) and
 * what ("YAML syntax error: did not find expected key (block mapping started at line 3,
 * column 1)"), for the caller's "FILE:LINE:COL: ..." message. A reader error (bad UTF-8, a
 * control character) has only a byte offset: it is turned into a line and column here. */
void cs_yaml_error(const yaml_parser_t *ps, const char *src, size_t len, yaml_mark_t *at,
                   char *msg, size_t n);

#endif
