/* engine.h — internal extras of the engine for the sink and the tests (the public API is
 * include/clickstage.h). */
#ifndef CS_ENGINE_H
#define CS_ENGINE_H

#include "aggregate.h"
#include "clickstage.h"

/* The dimension dictionaries ([ndims]) that name the value ids in the workers' aggregates. */
cs_dimdict_mpmc *cs_engine_dicts(cs_engine *e);

/* ---- state that moves: restore, replay, snapshots (see docs/state.md) ----------------------
 *
 * A restored partition starts from a state `st` (from a snapshot; NULL = empty) that has
 * consumed the messages below `next_offset` (-1 = unknown: a fresh partition). Messages below
 * `replay_end` (-1 = none) were counted by an earlier owner, which had advanced the state's
 * expiry to `replay_wm` when it wrote replay_end: they rebuild the state without being counted
 * again, and at replay_end the state is advanced to replay_wm without counting. If
 * next_offset >= replay_end that last step happens here, on the calling thread, before any
 * worker sees the partition. Takes ownership of st. Returns the partition id, or -1. */
int cs_engine_add_partition_state(cs_engine *e, int w, cs_pstate *st, int64_t next_offset,
                                  int64_t replay_end, int64_t replay_wm);
/* 1 if an event time (e.g. a restored state's highest, cs_snap_info.max_t) lies further ahead of
 * this machine's clock than the rules' session.max_future allows: a state written by a build
 * without the bound, or while max_future was off. Restoring it would hold the partition's
 * watermark there; the caller rebuilds the partition from Kafka instead, where those events are
 * rejected one by one (docs/semantics.md "Event time bounds"). 0 when max_future is off. */
int cs_engine_time_beyond_bound(const cs_engine *e, int64_t t);
/* Partition slots ever used at once (the high-water mark every tick loops to): bounded by the
 * most partitions assigned at the same time, whatever the number of assignments over time. */
int cs_engine_slots_used(const cs_engine *e);
/* Retired rule tables not yet freed (a worker may still use them); reclaimed at every swap. */
int cs_engine_rules_retired(const cs_engine *e);
/* The unkeyed-producer detector's name for the Kafka partition (before workers see it). */
void cs_engine_set_part_label(cs_engine *e, int part, uint16_t label);
/* 1 while the partition is still re-reading what an earlier owner counted. Owner thread, or
 * any thread across a worker barrier. */
int cs_engine_part_replaying(const cs_engine *e, int part);

/* Worker thread only (or the control thread once workers are joined). */
struct cs_snap_info;
/* Serialises a partition it owns (pipeline/snapshot.h). 0 ok (*out malloc'd, the caller
 * frees), 1 nothing to write now (still replaying, or nothing consumed yet), -1 out of memory. */
int cs_worker_snapshot_part(cs_worker *w, int part, char **out, size_t *outlen,
                            struct cs_snap_info *info);
/* What a flush may record for a partition: the next offset whose counts are in the handed-over
 * deltas and the watermark the state's expiry has been applied to (the replay target while
 * replaying: nothing new was counted). */
void cs_worker_part_progress(const cs_worker *w, int part, int64_t *next_offset,
                             int64_t *applied_wm);
/* Messages of the partition counted (not replayed) since it was added. */
uint64_t cs_worker_part_counted(const cs_worker *w, int part);
/* Ends any replay still open (nothing below its end is coming: drain end). */
void cs_worker_finish_replays(cs_worker *w);

/* Idle marking, the two sides of one protocol. `last_ms` is the partition's last-message time,
 * written by the worker that owns it. cs_engine_part_heard (that worker, after a run of the
 * partition's messages): stores now_ms in *last_ms and turns IDLE back into ACTIVE.
 * cs_engine_part_quiet (the control thread): turns ACTIVE into IDLE when *last_ms is more than
 * idle_ms before now_ms, and back if a message was heard meanwhile; returns 1 when the partition
 * is IDLE afterwards. Either order of the two leaves a partition that just heard a message
 * ACTIVE (see engine.c). */
void cs_engine_part_heard(cs_engine *e, int part, _Atomic int64_t *last_ms, int64_t now_ms);
int cs_engine_part_quiet(cs_engine *e, int part, _Atomic int64_t *last_ms, int64_t now_ms,
                         int64_t idle_ms);

/* Tests only: fn(arg) runs inside cs_worker_tick between computing the overall watermark and
 * advancing the worker's partitions (where the control thread may publish a partition). */
void cs_engine_set_tick_hook(cs_engine *e, void (*fn)(void *), void *arg);
/* Tests only: fn(arg) runs inside cs_engine_part_quiet between marking the partition IDLE and
 * reading its last-message time again (where its worker may hear a message). */
void cs_engine_set_idle_hook(cs_engine *e, void (*fn)(void *), void *arg);

#endif
