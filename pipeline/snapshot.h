/* snapshot.h — per-partition state snapshots: one cs_pstate (the SPEC §3 state of one Kafka
 * partition: customer journeys and open sessions) to bytes and back, so that whoever owns the
 * partition next (after a crash, a rebalance, a restart) resumes with the sessions and journeys
 * the previous owner had and replays Kafka only from the snapshot's offset.
 *
 * Contract
 *  - A snapshot holds the LOGICAL state: every live customer (XXH3-128 hash as the table keeps
 *    it, last event time, journey stage) with its open session if it has one (last, span,
 *    stage, first-touch dimension values as strings), and the partition's highest event time.
 *    Not stored: pool layout, wheel positions, ended sessions still waiting for their wheel
 *    bucket, this process's dimension ids. cs_snapshot_read rebuilds pools, index and both
 *    timing wheels as if events had created the entries, so a restored pstate fed the same
 *    events and watermarks produces the same §4 deltas as the original would have, counter by
 *    counter (tests/unit/test_snapshot.c).
 *  - Everything the pstate still holds is in it: a customer already past customer_ttl whose
 *    wheel bucket has not fired, an open session whose deadline the watermark has passed. Redis
 *    counted them (customers, active), so the new owner is the one that must un-count them.
 *    A snapshot is consistent with the §4 counts flushed up to info.next_offset; taking it
 *    after the flush that carried that offset (and before counting further) is the caller's job.
 *  - Canonical: one state has exactly one encoding (records sorted by customer hash, minimal
 *    varints, dimension strings in order of first use) and the reader rejects every other. A
 *    snapshot of a restored pstate is byte-identical to the one it was restored from; equal
 *    bytes mean equal state.
 *  - Layout: a snapshot is tied to the journey name, the stage names in order and the
 *    dimension names in order (a signature; a reader with other rules refuses it). Session
 *    parameters (gap, max_duration, customer_ttl) are not part of it: the restored state runs
 *    under the reader's, as after a rule reload.
 *  - Dimension values travel as strings and are mapped with cs_dimdict_id() of the reader's
 *    dictionaries ("_unknown" and "_other" are codes, not strings). A value the reader's
 *    dictionary has no room for any more becomes "_other" there; the by-dimension gauges of
 *    that session then end under "_other" although Redis counted them under the value. That is
 *    the per-process dictionary's limit (aggregate.h), not the snapshot's; sizing max_values
 *    above the number of distinct values avoids it.
 *  - The reader trusts nothing. Order of checks: size, magic, version, XXH3-64 checksum trailer,
 *    layout, counts against the bytes left, then every record (ranges, hash order, span vs
 *    last, dimension references), the string tables, trailing bytes. Any failure: NULL and
 *    errstr ("snapshot: ..." or "snapshot byte N: ..."), never a crash. Nothing is allocated in
 *    proportion to a count before the count is proven to fit the bytes given, and the shared
 *    dictionaries are touched only after the whole snapshot validated (so a rejected snapshot
 *    leaves no trace).
 *  - Ownership: cs_snapshot_write returns a malloc'd buffer the caller frees; it reads p and
 *    the dictionaries and changes neither (call it on the thread that owns p, or with the
 *    owner stopped). cs_snapshot_read returns a new pstate the caller owns; buf is not kept.
 *    No global state; both may run on any threads at once for different pstates.
 *  - Cost: write O(n): one pass over the customer pool, a bucket sort on the hash's top bits
 *    (expected O(1) per bucket), one pass emitting. Read O(n): a validating pass without
 *    allocation, then a building pass into an index and pools pre-sized from the header counts.
 *    Measured (make bench-restore, 1M open sessions, 2 vCPUs): 21.4 bytes per session, write
 *    155-185 ms, restore 215-260 ms (details in docs/snapshot-format.md).
 *  - Format byte by byte, what is rejected and why: docs/snapshot-format.md.
 *
 * Rejected alternatives
 *  - A raw dump of pools, index and wheels (memcpy speed): ties the bytes to the in-memory
 *    layout and to this process's dimension ids, carries DEAD entries and free lists, and a
 *    reader can only validate it by rebuilding it anyway.
 *  - Records in pool order (no sort): a cheaper writer, but not canonical, 8 bytes per hash
 *    instead of ~7 (deltas of sorted hashes), and duplicates need the index to be found.
 *  - Protobuf / MessagePack / JSON: a tag per field per record and a dependency, for six fields.
 *  - Compression inside the format: the bulk is hash bits and millisecond deltas, which a
 *    general-purpose compressor barely shrinks (docs/snapshot-format.md); a caller that wants it
 *    can compress the buffer.
 */
#ifndef CS_SNAPSHOT_H
#define CS_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "aggregate.h" /* cs_dimdict_mpmc */
#include "classify.h"
#include "sessionize.h"

/* Written: 2 (SPEC §4.1: a customer's journey start, a session's stage time; 16 bits of h2),
 * or 3 when the state holds SPEC §3.1 identity entries (a key with no journey, a device's
 * alias): v2 plus an identity byte per record (docs/snapshot-format.md "v3"). A state has one
 * encoding: v3 only when some record needs it, so a state without identity is written as
 * before, byte for byte. Read: 3, 2, and 1 with stand-ins for the two times ("Reading v1"). */
#define CS_SNAPSHOT_VERSION 3

typedef struct cs_snap_info {
    int64_t next_offset; /* next Kafka offset the state has not consumed (-1 none) */
    int64_t applied_wm;  /* watermark its expiry has been applied to (INT64_MIN = none) */
    int64_t max_t;       /* the partition's highest event time (INT64_MIN = none); restored into
                            the pstate */
    uint64_t sessions, customers; /* filled by both write and read */
} cs_snap_info;

/* Serialises p into a new malloc'd buffer. rs names journey/stages/dimensions (their names go
 * into a layout signature), dicts names the dimension value ids used by sessions (values are
 * stored as strings, ids are per process). info may be NULL; otherwise next_offset and
 * applied_wm are taken from it as given, and max_t (cs_pstate_max_time(p); the caller's value
 * is ignored), sessions and customers are filled in. 0 ok, -1 out of memory (or a pstate that
 * does not fit rs: a stage beyond its stages; cs_sessionize never makes one). */
int cs_snapshot_write(const cs_pstate *p, const cs_ruleset *rs, cs_dimdict_mpmc *dicts,
                      cs_snap_info *info, char **out, size_t *outlen);

/* Validates and loads a snapshot into a NEW pstate made with rs's session conf
 * (cs_rules_session(rs), cs_rules_ndims(rs)); dimension strings are mapped to ids with
 * cs_dimdict_id(&dicts[d], ...) ("_other" stays _other, "_unknown" stays unknown).
 * NULL + errstr for anything wrong: bad magic, unknown version, checksum mismatch, truncated,
 * trailing bytes, counts that do not fit the remaining bytes, out-of-range stage or dim id,
 * a customer hash present twice, layout signature of other stages/dimensions/journey,
 * session with span/last inconsistent... Never crashes, never allocates more than O(len).
 * info (may be NULL) is filled only on success. */
cs_pstate *cs_snapshot_read(const char *buf, size_t len, const cs_ruleset *rs,
                            cs_dimdict_mpmc *dicts, cs_snap_info *info, char *errstr,
                            size_t errlen);

/* Recomputes the checksum trailer (the last 8 bytes) over everything before it. For tests and
 * fuzzing, which edit snapshots and want the parser behind the checksum to see the edit.
 * No-op when len < 8. */
void cs_snapshot_seal(char *buf, size_t len);

#endif
