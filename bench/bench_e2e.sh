#!/usr/bin/env bash
# bench/bench_e2e.sh — end-to-end benchmark of clickstage on a real local stack (make bench-e2e).
#
# Starts its own Kafka broker + redis-server (scripts/stack.sh up in a temp dir; stopped at the
# end, nothing left running) and measures on this machine:
#  (a) drain: E2E_EVENTS generated events (lz4) in an 8-partition topic, read from the earliest
#      offset by `clickstage --drain --threads 2`, E2E_RUNS times (median): events/s, CPU ns per
#      event, peak RSS, Redis commands; every run checked against the generator's --expect;
#      bytes per open session from pairs of drains (1M customers, 20m span: sessions are still
#      open at the end) against a baseline with 1,000 customers, and from RSS sampled against
#      the open-session count during the big drains;
#  (b) the naive reference (bench/naive_hincrby.c: one HINCRBY per event) on the same topic;
#  (c) live: clickstage (--flush-interval 250ms, 2 threads) while the generator produces at
#      LIVE_RATE for LIVE_SECONDS; produce-to-visible latency (bench/latency_probe.c), lag,
#      Redis commands/s, and the same at LIVE_RATE_LOW;
#  (d) bench/out/live.png (throughput and lag over time), copied to bench/live.png;
#  (e) the scaling model: CPU per event by role (fetch = librdkafka's rdk:broker threads,
#      workers = cs-worker-N, flush = the control thread's flush work as the daemon logs it,
#      control = the rest of the control thread and librdkafka's other threads) from the
#      median drain, and the projected ceiling for 2, 4, 8 and 16 cores (docs/performance.md);
#  (f) a measured --threads 1, 2, 3, 4 sweep of the same drain (E2E_SWEEP_RUNS each, median);
#  (g) the compression matrix: E2E_COMPR_EVENTS events produced with each codec of E2E_COMPR
#      (the producer's choice), drained E2E_COMPR_RUNS times each (median), checked for exactness;
#  (h) the floor: after each drain of (a), a drain of the same topic by the same binary with the
#      rule file's limits.max_bytes at 64, so that every event is refused as too_large before it
#      is scanned: fetch, decompression, the hand-over and the payload copy as in (a), and
#      nothing of the core. The difference of the workers' CPU is what decoding, sessionizing,
#      classifying and counting cost inside the pipeline (docs/performance.md "The floor").
# Progress goes to stdout; the LAST stdout line is one JSON object with the figures.
# Logs, CSVs and JSON of the run are kept in bench/out/ (emptied at the start of each run).
#
# Knobs (environment):
#   E2E_EVENTS=10000000      drain events              E2E_RUNS=3          drain runs (median)
#   E2E_CUSTOMERS=100000     distinct customers of the drain topic (a): 100k fit in the L3 cache;
#                            millions show the cost of state bigger than the caches
#   E2E_NAIVE_EVENTS=min(E2E_EVENTS/5,2000000)  events for the unpipelined naive reference
#   E2E_NAIVE_PIPELINE=64    depth of the second, pipelined naive run (0 = skip it)
#   E2E_SESS_EVENTS=E2E_EVENTS  E2E_SESS_CUSTOMERS=1000000   bytes-per-session variant (0 = skip)
#   E2E_SESS_RUNS=3          bytes-per-session pairs of drains (median)
#   LIVE_RATE=200000  LIVE_RATE_LOW=50000 (0 = skip)  LIVE_SECONDS=60  PROBE_RATE=50
#   LIVE_SPAN=6d             event time the live stream covers (the generator's default: 6 days
#                            in LIVE_SECONDS, so sessions start and end at a high rate)
#   E2E_PERF=1               also a system-wide `perf record` of one more drain (bench/out/perf-*)
#   E2E_NO_BUILD=1           use the binaries in $BUILD (default build/) as they are
#   E2E_PARTS="drain floor sess naive live sweep compr"   run only some parts (the JSON has
#                            null for the others; floor runs only with drain)
#   E2E_THREADS=2            --threads of the drains (a), (a') and the model (e)
#   E2E_DRAIN_ARGS=          more clickstage flags for the drains of (a) (not the baseline's),
#                            e.g. "--fetch-threads 1"
#   E2E_BASELINE_BIN=<clickstage of an earlier build>   each drain run of (a) is paired with a
#                            drain of the same topic by that binary, the baseline first in odd
#                            pairs and second in even ones (a fixed order favoured the second
#                            run: bench/RESULTS-e2e.md "a fresh VM's pages"); the JSON gets its
#                            medians and the ratios (same run, same machine load)
#   E2E_WARMUP=1             one drain of each binary before (a)'s runs, not measured (0 = none):
#                            a fresh VM's first touch of a page costs several times a later one
#   E2E_SWEEP="1 2 3 4"      E2E_SWEEP_RUNS=1      thread counts of (f), runs each (median)
#   E2E_COMPR="none lz4 zstd snappy gzip"  E2E_COMPR_EVENTS=min(E2E_EVENTS,2000000)  E2E_COMPR_RUNS=1
#   E2E_NO_COPY=1            do not copy the plot to bench/live.png (never copied if LIVE_SECONDS < 60)
#   KEEP=1                   keep the temp dir (stack data, logs)
# Quick run (< 3 min): E2E_EVENTS=1000000 LIVE_SECONDS=15 E2E_RUNS=1 E2E_SESS_RUNS=1 bench/bench_e2e.sh
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
B=${BUILD:-build}
E2E_EVENTS=${E2E_EVENTS:-10000000}
E2E_RUNS=${E2E_RUNS:-3}
E2E_CUSTOMERS=${E2E_CUSTOMERS:-100000}
# the unpipelined reference runs at the speed of one loopback round trip: a fifth of the events
# (at most 2M) gives the same rate in a fifth of the time
E2E_NAIVE_EVENTS=${E2E_NAIVE_EVENTS:-$((E2E_EVENTS / 5 < 2000000 ? E2E_EVENTS / 5 : 2000000))}
E2E_NAIVE_PIPELINE=${E2E_NAIVE_PIPELINE:-64}
E2E_SESS_EVENTS=${E2E_SESS_EVENTS:-$E2E_EVENTS}
E2E_SESS_CUSTOMERS=${E2E_SESS_CUSTOMERS:-1000000}
E2E_SESS_RUNS=${E2E_SESS_RUNS:-3}
LIVE_RATE=${LIVE_RATE:-200000}
LIVE_RATE_LOW=${LIVE_RATE_LOW:-50000}
LIVE_SECONDS=${LIVE_SECONDS:-60}
PROBE_RATE=${PROBE_RATE:-50}
LIVE_SPAN=${LIVE_SPAN:-6d}
E2E_PARTS=${E2E_PARTS:-drain floor sess naive live sweep compr}
E2E_THREADS=${E2E_THREADS:-2}
E2E_BASELINE_BIN=${E2E_BASELINE_BIN:-}
E2E_WARMUP=${E2E_WARMUP:-1}
E2E_SWEEP=${E2E_SWEEP:-1 2 3 4}
E2E_SWEEP_RUNS=${E2E_SWEEP_RUNS:-1}
E2E_COMPR=${E2E_COMPR:-none lz4 zstd snappy gzip}
E2E_COMPR_EVENTS=${E2E_COMPR_EVENTS:-$((E2E_EVENTS < 2000000 ? E2E_EVENTS : 2000000))}
E2E_COMPR_RUNS=${E2E_COMPR_RUNS:-1}
part() { [[ " $E2E_PARTS " == *" $1 "* ]]; }
FLUSH=250ms
OUT=$ROOT/bench/out
RULES=$ROOT/deploy/rules/retail.yaml
J=retail
# Prefetch for the bytes-per-session pair only: librdkafka's fetch buffers (8 MB per partition
# by default, decompressed) would otherwise swing peak RSS by more than the state being measured.
SESS_PROPS=fetch.max.bytes=8388608,max.partition.fetch.bytes=1048576,queued.min.messages=20000,queued.max.messages.kbytes=16384

say() { printf '[%s] %s\n' "$(date +%T)" "$*"; }
die() { say "FAILED: $*"; exit 1; }
rm -rf "$OUT"; mkdir -p "$OUT"   # bench/out holds the last run only

if [ -z "${E2E_NO_BUILD:-}" ]; then
  make -s "$B/clickstage" "$B/clickstage-loadgen" "$B/cs_checkredis" >/dev/null || die "make"
fi
BG=()   # pids of background processes this script started
cleanup() {
  local p
  for p in "${BG[@]+"${BG[@]}"}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  [ -d "$STACK" ] && scripts/stack.sh down "$STACK" >/dev/null 2>&1
  if [ -n "${KEEP:-}" ]; then say "kept $WORK"; else rm -rf "$WORK"; fi
}
WORK=$(mktemp -d /tmp/cs-e2e.XXXXXX)
STACK=$WORK/stack
trap cleanup EXIT
trap 'exit 130' INT TERM
# A private copy of the binaries: others may rebuild $B while this runs.
BIN=$WORK/bin
mkdir -p "$BIN"
cp "$B/clickstage" "$B/clickstage-loadgen" "$B/cs_checkredis" "$BIN/" || die "no binaries in $B (make all tools)"
if [ -n "$E2E_BASELINE_BIN" ]; then
  cp "$E2E_BASELINE_BIN" "$BIN/clickstage-baseline" || die "E2E_BASELINE_BIN $E2E_BASELINE_BIN"
fi
cc -O2 -g -Wall -Wextra -Iinclude -Ipipeline -o "$BIN/naive_hincrby" bench/naive_hincrby.c "$B/libclickstage.a" \
  -lrdkafka -lhiredis -lxxhash -lyaml -lcrypto -lm -pthread || die "cc naive_hincrby"
cc -O2 -g -Wall -Wextra -pthread -Ipipeline -o "$BIN/latency_probe" bench/latency_probe.c pipeline/rkeys.c -lrdkafka -lhiredis || die "cc latency_probe"
COMMIT="$(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD -- cmd pipeline include 2>/dev/null || echo +dirty)"
if ! command -v gnuplot >/dev/null; then
  if [ "$(id -u)" = 0 ]; then apt-get install -y -qq gnuplot-nox >/dev/null 2>&1 || true; fi
  command -v gnuplot >/dev/null || say "warning: no gnuplot (apt-get install gnuplot-nox): no plot"
fi

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
say "clickstage $COMMIT; machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(free -g | awk '/Mem:/{print $2}') GiB, load $(cut -d' ' -f1-3 /proc/loadavg)"
say "stack up in $STACK"
scripts/stack.sh up "$STACK" >"$WORK/stack-up.log" 2>&1 || { tail -30 "$WORK/stack-up.log"; die "stack up"; }
# shellcheck disable=SC1091
. "$STACK/env"
KAFKA_PID=$(cat "$STACK/kafka.pid"); REDIS_PID=$(cat "$STACK/redis.pid")
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }
# The generator's event times start 2026-11-01 and producers stamp messages with them: with the
# default 7-day time retention the broker would delete segments under the consumer once the
# clock is a week past that. Every topic here keeps everything.
topic() { scripts/stack.sh topic "$1" 8 "$STACK" retention.ms=-1 >/dev/null 2>&1 || die "topic $1"; }
redis_cmds() { rcli INFO stats | tr -d '\r' | sed -n 's/^total_commands_processed://p'; }
# utime+stime of a process in clock ticks (0 if gone)
cpu_ticks() { awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$1/stat" 2>/dev/null || echo 0; }
busy_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat; }
HZ=$(getconf CLK_TCK)
now_ms() { date +%s%3N; }
py() { python3 - "$@"; }

loadgen() { # OUTFILE ARGS...: runs the generator, its last stdout line goes to OUTFILE
  local out=$1; shift
  "$BIN/clickstage-loadgen" --brokers "$KAFKA_BROKERS" --rules "$RULES" --partitions 8 \
    --compression "${COMPRESSION:-lz4}" --progress 0 "$@" >"$out.log" 2>&1 || { tail -5 "$out.log"; die "loadgen $*"; }
  tail -1 "$out.log" >"$out"
}

# ---- (a) drain -------------------------------------------------------------------------------
if part drain || part naive; then
say "(a) preloading $E2E_EVENTS events of $E2E_CUSTOMERS customers into topic drain (8 partitions, lz4), expected counts alongside"
topic drain
"$BIN/clickstage-loadgen" --rules "$RULES" --partitions 8 --events "$E2E_EVENTS" --expect-only \
  --customers "$E2E_CUSTOMERS" --expect "$WORK/drain.expect.json" --progress 0 >"$WORK/expect.log" 2>&1 &
EXP_PID=$!; BG+=("$EXP_PID")
loadgen "$WORK/preload.json" --topic drain --events "$E2E_EVENTS" --customers "$E2E_CUSTOMERS"
say "    produced: $(cat "$WORK/preload.json")"
wait "$EXP_PID" || { tail -5 "$WORK/expect.log"; die "loadgen --expect-only"; }
say "    expected counts: $(tail -1 "$WORK/expect.log")"
fi

# run_drain NAME TOPIC PREFIX [extra clickstage args]: one drain, figures to $WORK/NAME.json
# (DRAIN_BIN: another clickstage binary; DRAIN_THREADS: --threads, default E2E_THREADS)
run_drain() {
  local name=$1 tp=$2 prefix=$3; shift 3
  local c0 c1 k0 k1 r0 r1 m0 m1 t0 t1 rc
  c0=$(redis_cmds); k0=$(cpu_ticks "$KAFKA_PID"); r0=$(cpu_ticks "$REDIS_PID"); m0=$(busy_ticks)
  t0=$(date +%s%N)
  /usr/bin/time -v -o "$WORK/$name.time" "${DRAIN_BIN:-$BIN/clickstage}" --drain --threads "${DRAIN_THREADS:-$E2E_THREADS}" --http-listen "${DRAIN_HTTP:-}" \
    --brokers "$KAFKA_BROKERS" --redis "$REDIS_URL" --rules "$RULES" --topics "$tp" \
    --group "g-$name" --prefix "$prefix" --log-format json "$@" >"$WORK/$name.log" 2>&1 &
  local tpid=$! dpid="" i
  BG+=("$tpid")
  for i in $(seq 1 100); do dpid=$(pgrep -P "$tpid" | head -1); [ -n "$dpid" ] && break; sleep 0.01; done
  # CPU per thread of the daemon: every 0.2 s a copy of /proc/PID/task/*/stat (threads that end,
  # like the workers before the final flush, keep their last sample)
  # and its RSS (with SAMPLE_PREFIX: next to the open sessions Redis shows for that prefix)
  : >"$WORK/$name.threads"; : >"$WORK/$name.rss"
  if [ -n "$dpid" ]; then
    ( while [ -d "/proc/$dpid/task" ]; do
        cat /proc/"$dpid"/task/*/stat 2>/dev/null
        { printf '%s ' "$(awk '/^VmRSS:/{print $2}' "/proc/$dpid/status" 2>/dev/null)"
          if [ -n "${SAMPLE_PREFIX:-}" ]; then
            rcli HMGET "$SAMPLE_PREFIX:{$J}:sessions" started ended | awk '{printf "%s ", ($0 == "" ? 0 : $0)}'
          fi
          port=$(sed -n 's/.*web view on port \([0-9]*\).*/\1/p' "$WORK/$name.log" | head -1)
          if [ -n "$port" ]; then   # the daemon's own state accounting (/metrics)
            curl -s -m 1 "http://127.0.0.1:$port/metrics" | awk '
              /^clickstage_state_bytes\{kind="sessions"\}/ {s=$2} /^clickstage_state_bytes\{kind="customers"\}/ {c=$2}
              /^clickstage_sessions_open / {o=$2} END {if (o != "") printf "%s %s %s", s, c, o}'
          fi; echo; } >>"$WORK/$name.rss"
        sleep 0.2
      done ) >>"$WORK/$name.threads" & BG+=("$!")
  fi
  wait "$tpid"; rc=$?
  t1=$(date +%s%N)
  c1=$(redis_cmds); k1=$(cpu_ticks "$KAFKA_PID"); r1=$(cpu_ticks "$REDIS_PID"); m1=$(busy_ticks)
  [ $rc -eq 0 ] || { tail -20 "$WORK/$name.log"; die "clickstage --drain ($name) exited $rc"; }
  py "$WORK/$name" "$t0" "$t1" "$((c1 - c0 - 1))" "$((k1 - k0))" "$((r1 - r0))" "$((m1 - m0))" "$HZ" "${dpid:-0}" "${DRAIN_THREADS:-$E2E_THREADS}" <<'EOF'
import json, re, sys, datetime
base, t0, t1, cmds, kt, rt, mt, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
dpid, nthreads = sys.argv[9], int(sys.argv[10])
flush_s = None
tv = {}
for line in open(base + '.time'):
    if ':' in line:
        k, v = line.rsplit(':', 1) if 'Elapsed' not in line else (line.split(': ', 1)[0], line.split(': ', 1)[1])
        tv[k.strip()] = v.strip()
user, sys_ = float(tv['User time (seconds)']), float(tv['System time (seconds)'])
rss = int(tv['Maximum resident set size (kbytes)']) * 1024
events, first, last, dcmds = 0, None, None, None
def ts(s): return datetime.datetime.strptime(s, '%Y-%m-%dT%H:%M:%S.%fZ').timestamp()
for line in open(base + '.log'):
    try: o = json.loads(line)
    except Exception: continue
    m = re.match(r'drain \S+: from offset (-?\d+) to (\d+)', o['msg'])
    if m:
        events += int(m.group(2)) - max(0, int(m.group(1)))
        first = first or ts(o['ts'])
    if o['msg'].startswith('drain complete'): last = ts(o['ts'])
    m = re.search(r'(\d+) redis commands', o['msg'])
    if m: dcmds = int(m.group(1))
    m = re.match(r'control thread CPU: ([0-9.]+) s collecting and writing flushes', o['msg'])
    if m: flush_s = float(m.group(1))
wall = (t1 - t0) / 1e9
steady = (last - first) if first and last and last > first else wall
d = dict(events=events, wall_s=round(wall, 3), steady_s=round(steady, 3),
         events_per_sec=round(events / wall), events_per_sec_steady=round(events / steady),
         cpu_s=round(user + sys_, 2), user_s=user, sys_s=sys_,
         cpu_ns_per_event=round((user + sys_) * 1e9 / max(events, 1), 1), rss_bytes=rss,
         # page faults are counted, not timed (they still vary with when glibc trims: compare medians)
         minor_faults_per_kevent=round(int(tv.get('Minor (reclaiming a frame) page faults', 0))
                                       * 1000 / max(events, 1), 2),
         redis_cmds=cmds, daemon_redis_cmds=dcmds, redis_cmds_per_sec=round(cmds / wall, 1),
         broker_cpu_s=round(kt / hz, 2), redis_cpu_s=round(rt / hz, 2),
         machine_busy_cpu_s=round(mt / hz, 2),
         other_cpu_s=round(mt / hz - (user + sys_) - kt / hz - rt / hz, 2))
thr = {}
for line in open(base + '.threads'):
    try:
        tid, rest = line.split(' (', 1)
        comm, rest = rest.rsplit(') ', 1)
        f = rest.split()
        thr[tid] = (comm, max(thr.get(tid, ('', 0))[1], (int(f[11]) + int(f[12])) / hz))
    except Exception: pass
d['threads_cpu_s'] = [[c, round(v, 2)] for c, v in sorted(thr.values(), key=lambda x: -x[1])[:8]]
d['threads_max_busy'] = round(max((c for _, c in thr.values()), default=0) / wall, 2)
# CPU per role, ns per event of the whole stream (docs/performance.md "The scaling model"):
#  fetch   librdkafka's rdk:broker* threads (fetch, decompression, message ops)
#  workers the threads named cs-worker-N, or (builds before they were named) the process's
#          threads still named after the binary, but the main one (drains run without --http)
#  flush   the control thread's flush work, as the daemon logs it at the end (null if it does not)
#  control the rest of the control thread, librdkafka's rdk:main and anything else
ev = max(events, 1)
fetch = [v for tid, (c, v) in thr.items() if c.startswith('rdk:broker')]
work = [v for tid, (c, v) in thr.items()
        if c.startswith('cs-worker') or (c.startswith('clickstage') and tid != dpid)]
main = sum(v for tid, (c, v) in thr.items() if tid == dpid)
other = sum(thr[t][1] for t in thr) - sum(fetch) - sum(work) - main
ns = lambda s: round(s * 1e9 / ev, 1)
roles = dict(fetch=ns(sum(fetch)), fetch_busiest=ns(max(fetch, default=0)),
             fetch_threads=sum(1 for v in fetch if v > 0.05 * max(sum(fetch), 1e-9)),
             workers=ns(sum(work)), worker_busiest=ns(max(work, default=0)), worker_threads=nthreads,
             flush=ns(flush_s) if flush_s is not None else None,
             control=ns(main - (flush_s or 0) + other),
             unattributed=ns(user + sys_ - sum(v for _, v in thr.values())))
d['roles_ns_per_event'] = roles
json.dump(d, open(base + '.json', 'w'))
print('    ' + json.dumps(d))
EOF
}

check_exact() { # PREFIX EXPECT -> prints the differences count
  "$BIN/cs_checkredis" --redis "127.0.0.1:$REDIS_PORT" --prefix "$1" --journey "$J" --expect "$2" \
    >"$WORK/check-$1.txt" 2>&1
  py "$WORK/check-$1.txt" <<'EOF'
import json, sys
last = [l for l in open(sys.argv[1]) if l.strip()][-1]
try: print(json.loads(last)['differences'])
except Exception: print(-1)
EOF
}

exact=null
part drain || E2E_RUNS=0
[ "$E2E_RUNS" -gt 0 ] && exact=true
# (h) the floor's rule file: the drain's, with every event of the topic too large (64 bytes is
# limits.max_bytes' lowest bound; the generator's events are ~340 bytes, so only a few of its
# invalid ones are shorter). The decoder checks the size before anything else.
floor_ok=null
if part floor && [ "$E2E_RUNS" -gt 0 ]; then
  grep -q '^limits:' "$RULES" && die "(h) $RULES has its own limits: the floor's rule file cannot add them"
  { cat "$RULES"; printf '\nlimits:\n  max_bytes: 64\n'; } >"$WORK/floor.yaml"
  floor_ok=true
fi
floor_check() { # PREFIX EVENTS: the events refused as too_large, checked >= 99 %
  local n
  n=$(rcli HGET "$1:{$J}:invalid" too_large)
  say "    floor: ${n:-0} of $2 events refused as too_large (nothing of the core ran for them)"
  (( ${n:-0} * 100 >= $2 * 99 )) || { floor_ok=false; say "    floor: FEWER THAN 99 % REFUSED"; }
}
check_drain() { # PREFIX: the counts of (a)'s drain into PREFIX against the expected ones
  diffs=$(check_exact "$1" "$WORK/drain.expect.json")
  say "    cs_checkredis against --expect: $diffs differences"
  [ "$diffs" = 0 ] || { exact=false; tail -15 "$WORK/check-$1.txt"; }
}
baseline_drain() { # I: the baseline binary's drain of pair I, checked like (a)'s
  say "(a) baseline drain run $1/$E2E_RUNS: $E2E_BASELINE_BIN --drain --threads $E2E_THREADS"
  DRAIN_BIN=$BIN/clickstage-baseline run_drain "base$1" drain "b$1"
  check_drain "b$1"
}
# Warm-up: one drain of each binary, not measured. On a VM booted minutes ago each page the
# daemon touches for the first time is backed by the hypervisor then (~5-10 us a page against
# ~1.4 us once warm: bench/RESULTS-e2e.md "a fresh VM's pages"), and the first drains of a run
# paid it.
if [ "$E2E_RUNS" -gt 0 ] && [ "$E2E_WARMUP" != 0 ]; then
  say "(a) warm-up drain (not measured)"
  # shellcheck disable=SC2086
  run_drain warm drain warm ${E2E_DRAIN_ARGS:-} >/dev/null
  if [ -n "$E2E_BASELINE_BIN" ]; then
    DRAIN_BIN=$BIN/clickstage-baseline run_drain warmb drain warmb >/dev/null
  fi
  rcli --scan --pattern "warm*" | xargs -r -n 500 redis-cli -p "$REDIS_PORT" DEL >/dev/null
fi
for i in $(seq 1 "$E2E_RUNS"); do
  # the baseline first in odd pairs, second in even ones
  if [ -n "$E2E_BASELINE_BIN" ] && [ $((i % 2)) = 1 ]; then
    baseline_drain "$i"
  fi
  say "(a) drain run $i/$E2E_RUNS: clickstage --drain --threads $E2E_THREADS --http-listen \"\" (from earliest)"
  # shellcheck disable=SC2086
  run_drain "drain$i" drain "d$i" ${E2E_DRAIN_ARGS:-}
  check_drain "d$i"
  if [ -n "$E2E_BASELINE_BIN" ] && [ $((i % 2)) = 0 ]; then
    baseline_drain "$i"
  fi
  if [ "$floor_ok" != null ]; then
    say "(h) floor run $i/$E2E_RUNS: the same drain, every event refused as too_large (limits.max_bytes 64)"
    # shellcheck disable=SC2086
    run_drain "floor$i" drain "f$i" ${E2E_DRAIN_ARGS:-} --rules "$WORK/floor.yaml"
    floor_check "f$i" "$E2E_EVENTS"
  fi
done

# ---- (f) --threads sweep -----------------------------------------------------------------------
sweep_ok=null
if part sweep && part drain; then
  sweep_ok=true
  for t in $E2E_SWEEP; do
    for i in $(seq 1 "$E2E_SWEEP_RUNS"); do
      say "(f) sweep: --threads $t, run $i/$E2E_SWEEP_RUNS"
      DRAIN_THREADS=$t run_drain "sweep$t-$i" drain "w$t-$i"
      diffs=$(check_exact "w$t-$i" "$WORK/drain.expect.json")
      say "    cs_checkredis against --expect: $diffs differences"
      [ "$diffs" = 0 ] || { sweep_ok=false; tail -15 "$WORK/check-w$t-$i.txt"; }
      rcli --scan --pattern "w$t-$i:*" | xargs -r -n 500 redis-cli -p "$REDIS_PORT" DEL >/dev/null
    done
  done
fi

# ---- (g) compression matrix --------------------------------------------------------------------
compr_ok=null
if part compr && [ "$E2E_COMPR_EVENTS" -gt 0 ]; then
  compr_ok=true
  say "(g) compression matrix: $E2E_COMPR_EVENTS events per codec ($E2E_COMPR), $E2E_COMPR_RUNS drain(s) each"
  "$BIN/clickstage-loadgen" --rules "$RULES" --partitions 8 --events "$E2E_COMPR_EVENTS" --expect-only \
    --expect "$WORK/compr.expect.json" --progress 0 >"$WORK/compr-expect.log" 2>&1 || die "loadgen --expect-only (compr)"
  for z in $E2E_COMPR; do
    topic "c-$z"
    COMPRESSION=$z loadgen "$WORK/c-$z.gen.json" --topic "c-$z" --events "$E2E_COMPR_EVENTS"
    say "    produced ($z): $(cat "$WORK/c-$z.gen.json")"
    for i in $(seq 1 "$E2E_COMPR_RUNS"); do
      run_drain "compr-$z-$i" "c-$z" "z$z$i"
      diffs=$(check_exact "z$z$i" "$WORK/compr.expect.json")
      say "    $z run $i: cs_checkredis against --expect: $diffs differences"
      [ "$diffs" = 0 ] || { compr_ok=false; tail -15 "$WORK/check-z$z$i.txt"; }
      rcli --scan --pattern "z$z$i:*" | xargs -r -n 500 redis-cli -p "$REDIS_PORT" DEL >/dev/null
    done
  done
fi

if [ -n "${E2E_PERF:-}" ] && part drain; then
  say "(a) one more drain under a system-wide perf record (E2E_PERF)"
  perf record -a -F 499 -o "$WORK/perf.data" >/dev/null 2>&1 & PERF_PID=$!; BG+=("$PERF_PID")
  sleep 1
  run_drain drainperf drain dperf
  kill -INT "$PERF_PID"; wait "$PERF_PID" 2>/dev/null
  perf report -i "$WORK/perf.data" --no-children --sort comm,dso --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -30 >"$OUT/perf-drain-comm.txt"
  perf report -i "$WORK/perf.data" --no-children --sort dso,sym --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -60 >"$OUT/perf-drain-sym.txt"
  say "    system-wide profile: bench/out/perf-drain-comm.txt, bench/out/perf-drain-sym.txt"
fi

# ---- bytes per open session --------------------------------------------------------------------
# Two topics with the same number of events, both covering 20m of event time (less than the 30m
# gap, so no session ends before the drain does): SESS_CUSTOMERS customers (about as many open
# sessions at the end) and 1,000 (1,000 sessions). Both drained with the same, smaller prefetch
# (SESS_PROPS). Open sessions at the end = ended_by.drain in Redis.
#  pair:  (peak RSS of the big run - peak RSS of the baseline) / (open sessions difference),
#         median over E2E_SESS_RUNS pairs;
#  slope: within each big run, RSS sampled every 0.2 s against the open sessions Redis shows
#         (started - ended), least-squares slope between 10 % and 95 % of the final count.
bps=null; bps_slope=null
if part sess && [ "$E2E_SESS_EVENTS" -gt 0 ] && [ "$E2E_SESS_CUSTOMERS" -gt 0 ]; then
  say "(a) bytes/session: $E2E_SESS_EVENTS events, 20m of event time (< the 30m gap), $E2E_SESS_CUSTOMERS vs 1000 customers, $E2E_SESS_RUNS pair(s)"
  topic sess; topic sessbase
  loadgen "$WORK/sess.gen.json" --topic sess --events "$E2E_SESS_EVENTS" --customers "$E2E_SESS_CUSTOMERS" --span 20m --seed 7
  loadgen "$WORK/sessbase.gen.json" --topic sessbase --events "$E2E_SESS_EVENTS" --customers 1000 --span 20m --seed 7
  for i in $(seq 1 "$E2E_SESS_RUNS"); do
    DRAIN_HTTP=127.0.0.1:0 SAMPLE_PREFIX=s1x$i run_drain "sess$i" sess "s1x$i" --kafka-props "$SESS_PROPS"
    DRAIN_HTTP=127.0.0.1:0 run_drain "sessbase$i" sessbase "s0x$i" --kafka-props "$SESS_PROPS"
    for pfx in "s1x$i" "s0x$i"; do
      echo "$pfx $(rcli HGET "$pfx:{$J}:ended_by" drain) $(rcli HVALS "$pfx:{$J}:customers" | awk '{s+=$1} END {print s+0}')"
    done >"$WORK/sess$i.open"
  done
  py "$WORK" "$E2E_SESS_RUNS" <<'EOF' >"$WORK/sess.result.json"
import json, statistics, sys
w, n = sys.argv[1], int(sys.argv[2])
pairs, slopes, opens, custs, acct = [], [], [], [], []
for i in range(1, n + 1):
    o = {l.split()[0]: (int(l.split()[1]), int(l.split()[2])) for l in open(f'{w}/sess{i}.open')}
    (o1, c1), (o0, _) = o[f's1x{i}'], o[f's0x{i}']
    a, b = json.load(open(f'{w}/sess{i}.json')), json.load(open(f'{w}/sessbase{i}.json'))
    pairs.append((a['rss_bytes'] - b['rss_bytes']) / max(o1 - o0, 1))
    opens.append(o1); custs.append(c1)
    st = []  # (session_bytes, customer_bytes, sessions_open) from /metrics
    pts = []
    for line in open(f'{w}/sess{i}.rss'):
        f = line.split()
        if len(f) >= 3: pts.append((int(f[1]) - int(f[2]), int(f[0]) * 1024))
        if len(f) == 6 and int(f[5]) > 0 and (not st or int(f[5]) >= st[-1][2]):
            st.append((int(f[3]), int(f[4]), int(f[5])))
    pts = [p for p in pts if 0.10 * o1 <= p[0] <= 0.95 * o1]
    if len(pts) >= 5:
        mx, my = sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts)
        sxx = sum((p[0] - mx) ** 2 for p in pts)
        if sxx > 0: slopes.append(sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx)
    if st: acct.append(st[-1])
print(json.dumps(dict(open_sessions=opens[0], customers=custs[0],
      pairs=[round(x, 1) for x in pairs], slopes=[round(x, 1) for x in slopes],
      bytes_per_session=round(statistics.median(pairs), 1),
      bytes_per_session_slope=round(statistics.median(slopes), 1) if slopes else None,
      daemon_state=dict(session_bytes=acct[0][0], customer_bytes=acct[0][1], sessions_open=acct[0][2],
                        bytes_per_session=round((acct[0][0] + acct[0][1]) / acct[0][2], 1))
                   if acct else None)))
EOF
  say "    $(cat "$WORK/sess.result.json")"
  read -r bps bps_slope < <(py "$WORK/sess.result.json" <<'EOF'
import json, sys; d = json.load(open(sys.argv[1])); print(d['bytes_per_session'], d['bytes_per_session_slope'] or 'null')
EOF
)
fi

# ---- (b) naive reference ----------------------------------------------------------------------
if part naive; then
say "(b) naive reference: one HINCRBY per event, not pipelined, first $E2E_NAIVE_EVENTS events of topic drain"
c0=$(redis_cmds)
"$BIN/naive_hincrby" --brokers "$KAFKA_BROKERS" --topic drain --redis-port "$REDIS_PORT" \
  --prefix naive1 --journey "$J" --pipeline 1 --max-events "$E2E_NAIVE_EVENTS" >"$WORK/naive1.json" 2>"$WORK/naive1.err" ||
  { cat "$WORK/naive1.err"; die "naive_hincrby"; }
c1=$(redis_cmds)
say "    $(tail -1 "$WORK/naive1.json") (redis saw $((c1 - c0 - 1)) commands)"
if [ "$E2E_NAIVE_PIPELINE" -gt 0 ]; then
  say "(b) naive reference, pipelined $E2E_NAIVE_PIPELINE deep, all $E2E_EVENTS events"
  "$BIN/naive_hincrby" --brokers "$KAFKA_BROKERS" --topic drain --redis-port "$REDIS_PORT" \
    --prefix naive2 --journey "$J" --pipeline "$E2E_NAIVE_PIPELINE" >"$WORK/naive2.json" 2>"$WORK/naive2.err" ||
    { cat "$WORK/naive2.err"; die "naive_hincrby --pipeline"; }
  say "    $(tail -1 "$WORK/naive2.json")"
fi
fi

# ---- (c) live ----------------------------------------------------------------------------------
# live_run NAME RATE: daemon + probe + generator at RATE for LIVE_SECONDS; figures to $WORK/NAME.json
live_run() {
  local name=$1 rate=$2 dpid ppid d0 d1 k0 k1 r0 r1 m0 m1 l0 l1 i
  topic "$name"
  "$BIN/clickstage" --threads 2 --http-listen "" --flush-interval "$FLUSH" --brokers "$KAFKA_BROKERS" \
    --redis "$REDIS_URL" --rules "$RULES" --topics "$name" --group "g-$name" --prefix "$name" \
    --log-format json >"$WORK/$name.daemon.log" 2>&1 & dpid=$!; BG+=("$dpid")
  for i in $(seq 1 150); do   # until all 8 partitions are assigned and a first flush landed
    [ "$(grep -c '"msg":"assigned ' "$WORK/$name.daemon.log")" -ge 8 ] && break; sleep 0.2
  done
  sleep 1
  "$BIN/latency_probe" --brokers "$KAFKA_BROKERS" --topic "$name" --redis-port "$REDIS_PORT" \
    --prefix "$name" --journey "$J" --rate "$PROBE_RATE" --samples-csv "$OUT/$name.samples.csv" \
    --lag-csv "$OUT/$name.lag.csv" >"$WORK/$name.probe.json" 2>"$WORK/$name.probe.err" & ppid=$!; BG+=("$ppid")
  sleep 2
  d0=$(cpu_ticks "$dpid"); k0=$(cpu_ticks "$KAFKA_PID"); r0=$(cpu_ticks "$REDIS_PID"); m0=$(busy_ticks)
  l0=$(now_ms)
  loadgen "$WORK/$name.gen.json" --topic "$name" --rate "$rate" --duration "${LIVE_SECONDS}s" --span "$LIVE_SPAN"
  l1=$(now_ms)
  d1=$(cpu_ticks "$dpid"); k1=$(cpu_ticks "$KAFKA_PID"); r1=$(cpu_ticks "$REDIS_PID"); m1=$(busy_ticks)
  sleep 1
  kill -INT "$ppid"; wait "$ppid" || { cat "$WORK/$name.probe.err"; die "latency_probe"; }
  kill -TERM "$dpid"; wait "$dpid" || { tail -20 "$WORK/$name.daemon.log"; die "clickstage (live) exit"; }
  cp "$WORK/$name.daemon.log" "$OUT/"
  py "$WORK" "$name" "$l0" "$l1" "$rate" "$((d1 - d0))" "$((k1 - k0))" "$((r1 - r0))" "$HZ" "$OUT" "$((m1 - m0))" <<'EOF'
import csv, json, sys
w, name, l0, l1, rate, dt, kt, rt, hz, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8]), int(sys.argv[9]), sys.argv[10]
lat = sorted(float(r['latency_ms']) for r in csv.DictReader(open(f'{out}/{name}.samples.csv'))
             if r['latency_ms'] and l0 <= int(r['wall_ms']) <= l1)
unres = sum(1 for r in csv.DictReader(open(f'{out}/{name}.samples.csv')) if not r['latency_ms'])
def pct(q): return round(lat[min(len(lat) - 1, int(q * (len(lat) - 1) + 0.5))], 1) if lat else None
rows = [r for r in csv.DictReader(open(f'{out}/{name}.lag.csv')) if l0 + 1000 <= int(r['wall_ms']) <= l1]
cmds = [float(r['redis_cmds_per_s']) for r in rows]
lags = [int(r['lag']) for r in rows]
gen = json.loads(open(f'{w}/{name}.gen.json').read())
probe = json.loads(open(f'{w}/{name}.probe.json').read().strip().splitlines()[-1])
secs = (l1 - l0) / 1000
d = dict(rate=rate, achieved_rate=gen.get('events_per_sec'), events=gen.get('events'),
         samples=len(lat), unresolved=unres, p50_ms=pct(0.5), p90_ms=pct(0.9), p99_ms=pct(0.99),
         max_ms=lat[-1] if lat else None, mean_ms=round(sum(lat) / len(lat), 1) if lat else None,
         redis_cmds_per_sec=round(sum(cmds) / len(cmds), 1) if cmds else None,
         lag_max=max(lags) if lags else None, lag_mean=round(sum(lags) / len(lags)) if lags else None,
         daemon_cpu_share=round(dt / hz / secs, 3), broker_cpu_share=round(kt / hz / secs, 3),
         redis_cpu_share=round(rt / hz / secs, 3),
         machine_busy_share=round(int(sys.argv[11]) / hz / secs, 3),  # of 1 core; nproc cores in all
         t0_ms=l0, t1_ms=l1,
         ack_p50_ms=probe['ack_p50_ms'], ack_p99_ms=probe['ack_p99_ms'],
         flush_gap_p50_ms=probe['flush_gap_p50_ms'], flush_gap_p99_ms=probe['flush_gap_p99_ms'],
         flush_gap_max_ms=probe['flush_gap_max_ms'],
         flush_to_seen_p50_ms=probe['flush_to_seen_p50_ms'],
         flush_to_seen_p99_ms=probe['flush_to_seen_p99_ms'])
json.dump(d, open(f'{w}/{name}.json', 'w'))
print('    ' + json.dumps(d))
EOF
}

if part live; then
  say "(c) live at $LIVE_RATE events/s for ${LIVE_SECONDS}s (flush $FLUSH, 2 threads, probe $PROBE_RATE markers/s)"
  live_run live "$LIVE_RATE"
  if [ "$LIVE_RATE_LOW" -gt 0 ]; then
    say "(c) live at $LIVE_RATE_LOW events/s for ${LIVE_SECONDS}s"
    live_run livelow "$LIVE_RATE_LOW"
  fi
fi

# ---- (d) plot ----------------------------------------------------------------------------------
if part live && command -v gnuplot >/dev/null; then
  T0=$(py "$WORK/live.json" <<'EOF'
import json, sys; print(json.load(open(sys.argv[1]))['t0_ms'])
EOF
)
  gnuplot <<EOF 2>"$WORK/gnuplot.err" || say "warning: gnuplot failed: $(head -3 "$WORK/gnuplot.err")"
set terminal pngcairo size 1100,800 font "sans,10" noenhanced
set output "$OUT/live.png"
set datafile separator ","
set multiplot layout 2,1 title "clickstage live: $LIVE_RATE events/s offered for ${LIVE_SECONDS} s, flush $FLUSH, 2 threads, 8 partitions ($(nproc) cores, broker + redis on the same machine)"
set grid
set key top left
set xrange [-3:$((LIVE_SECONDS + 4))]
set xlabel "seconds since the generator started"
set ylabel "events/s"
set yrange [0:*]
plot "$OUT/live.lag.csv" every ::1 using ((\$1-$T0)/1000.0):6 with lines lw 2 title "produced (high watermark sum, per s)", \
     "" every ::1 using ((\$1-$T0)/1000.0):7 with lines lw 2 title "counted in Redis (offsets sum, per s)", \
     $LIVE_RATE with lines dt 2 lc rgb "gray" title "offered rate"
set ylabel "lag (messages)"
set y2label "produce -> visible latency (ms)"
set y2tics
set ytics nomirror
set y2range [0:*]
plot "$OUT/live.lag.csv" every ::1 using ((\$1-$T0)/1000.0):5 with lines lw 2 title "lag: high watermark sum - offsets in Redis", \
     "$OUT/live.samples.csv" every ::1 using ((\$1-$T0)/1000.0):4 axes x1y2 with points pt 7 ps 0.4 lc rgb "#d95f02" title "latency of each marker (right axis)"
unset multiplot
EOF
  # bench/live.png (committed) only from a run of at least 60 s, not from quick runs
  if [ -s "$OUT/live.png" ] && [ "$LIVE_SECONDS" -ge 60 ] && [ -z "${E2E_NO_COPY:-}" ]; then
    cp "$OUT/live.png" "$ROOT/bench/live.png" && say "(d) plot: bench/out/live.png (copied to bench/live.png)"
  else
    say "(d) plot: bench/out/live.png (bench/live.png left alone: LIVE_SECONDS < 60 or E2E_NO_COPY)"
  fi
fi

# ---- summary -----------------------------------------------------------------------------------
cp "$WORK"/*.json "$OUT/" 2>/dev/null
cp "$WORK"/drain*.log "$WORK"/sess*.log "$WORK"/*.rss "$WORK"/sess*.open "$OUT/" 2>/dev/null
say "done; load average $(cut -d' ' -f1-3 /proc/loadavg); details in bench/out/"
py "$WORK" "$E2E_RUNS" "$exact" "$bps" "$LOAD0" "$(cut -d' ' -f1-3 /proc/loadavg)" "$bps_slope" "$COMMIT" \
   "$E2E_SWEEP" "$E2E_SWEEP_RUNS" "$sweep_ok" "$E2E_COMPR" "$E2E_COMPR_RUNS" "$compr_ok" "$E2E_THREADS" "$E2E_CUSTOMERS" \
   "$floor_ok" <<'EOF' | tee "$OUT/summary.json"
import json, os, statistics, sys
w, runs, exact, bps = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
sweep_t, sweep_runs, sweep_ok = sys.argv[9].split(), int(sys.argv[10]), sys.argv[11]
compr, compr_runs, compr_ok, nthreads = sys.argv[12].split(), int(sys.argv[13]), sys.argv[14], int(sys.argv[15])
def load(name):
    try: return json.loads(open(f'{w}/{name}.json').read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError): return {}
d = [load(f'drain{i}') for i in range(1, runs + 1)]
med = lambda k: statistics.median(x[k] for x in d) if d else None
n1, n2, lv, lo = load('naive1'), load('naive2'), load('live'), load('livelow')
eps = med('events_per_sec')
ratio = lambda a, b: round(a / b, 1) if a and b else None
r = {"drain_events": d[0]['events'] if d else None, "drain_events_per_sec": round(eps) if eps else None,
     "cpu_ns_per_event": med('cpu_ns_per_event'), "rss_bytes": int(med('rss_bytes')) if d else None,
     "minor_faults_per_kevent": med('minor_faults_per_kevent'),
     "bytes_per_session": None if bps == 'null' else float(bps),
     "redis_cmds": int(med('redis_cmds')) if d else None, "redis_cmds_per_sec": med('redis_cmds_per_sec'),
     "naive_events_per_sec": n1.get('events_per_sec'),
     "gain_vs_naive": ratio(eps, n1.get('events_per_sec')),
     "live_rate": lv.get('rate'), "p50_ms": lv.get('p50_ms'), "p99_ms": lv.get('p99_ms'),
     "max_ms": lv.get('max_ms'), "redis_cmds_per_sec_live": lv.get('redis_cmds_per_sec'),
     "redis_cmds_per_sec_live_low": lo.get('redis_cmds_per_sec'),
     "drain_exact": None if exact == 'null' else exact == 'true',
     # extras
     "bytes_per_session_slope": None if sys.argv[7] == 'null' else float(sys.argv[7]),
     "drain_runs": runs, "drain_events_per_sec_steady": round(med('events_per_sec_steady')) if d else None,
     "drain_others_cpu_cores": round(statistics.median(x['other_cpu_s'] / x['wall_s'] for x in d), 2) if d else None,
     "naive_pipelined_events_per_sec": n2.get('events_per_sec'),
     "gain_vs_naive_pipelined": ratio(eps, n2.get('events_per_sec')),
     "live_achieved_rate": lv.get('achieved_rate'), "live_lag_max": lv.get('lag_max'),
     "live_low_rate": lo.get('rate'), "live_low_p99_ms": lo.get('p99_ms'),
     "load_avg_start": sys.argv[5], "load_avg_end": sys.argv[6], "commit": sys.argv[8]}
# CPU per role (median over the drain runs, each role on its own) and the scaling model
def med_role(runs_, k):
    v = [x['roles_ns_per_event'][k] for x in runs_ if x.get('roles_ns_per_event', {}).get(k) is not None]
    return statistics.median(v) if v else None
roles = {k: med_role(d, k) for k in ('fetch', 'fetch_busiest', 'fetch_threads', 'workers',
                                     'worker_busiest', 'worker_threads', 'flush', 'control',
                                     'unattributed')} if d else None
r['threads'] = nthreads
r['drain_customers'] = int(sys.argv[16])
if roles:
    roles['fetch_auto'] = '--fetch-threads' not in os.environ.get('E2E_DRAIN_ARGS', '')
r['roles_ns_per_event'] = roles
def model(ro, total, parts=8):
    # Each role's CPU per event of the whole stream, and how many threads it can spread over on
    # n cores: workers over min(n, partitions); fetch over the fetch threads that carried load
    # (librdkafka: one per broker per consumer handle): when the run left fetch_threads at auto
    # (the drains of (a) unless E2E_DRAIN_ARGS sets --fetch-threads), they grow with the
    # workers at the ratio measured (auto: one handle per worker, or per two workers with
    # librdkafka 2.0.2: pipeline/source.h), at least one; else they stay what was measured;
    # flush + control over one thread. The ceiling is the lowest of: every core busy
    # (n * 1e9 / total), and each role's threads busy (docs/performance.md).
    if not ro or not total: return None
    out = {}
    auto = ro.get('fetch_auto') and ro['fetch_threads'] and ro.get('worker_threads')
    for n in (2, 4, 8, 16):
        b = {'cpu': n * 1e9 / total}
        if auto:
            ft = max(1, int(min(n, parts) * ro['fetch_threads'] / ro['worker_threads']))
        else:
            ft = max(1, min(n, int(ro['fetch_threads'] or 1)))
        if ro['fetch']: b['fetch'] = ft * 1e9 / ro['fetch']
        if ro['workers']: b['workers'] = min(n, parts) * 1e9 / ro['workers']
        ctl = (ro['control'] or 0) + (ro['flush'] or 0)
        if ctl > 0: b['control'] = 1e9 / ctl
        lim = min(b, key=b.get)
        out[str(n)] = dict(events_per_sec=round(b[lim]), bound_by=lim)
    return out
r['model_ceiling'] = model(roles, med('cpu_ns_per_event') if d else None)
base = [load(f'base{i}') for i in range(1, runs + 1)]
base = [x for x in base if x]
if base:
    bmed = lambda k: statistics.median(x[k] for x in base)
    r['baseline'] = dict(cpu_ns_per_event=bmed('cpu_ns_per_event'), events_per_sec=round(bmed('events_per_sec')),
                         roles_ns_per_event={k: med_role(base, k) for k in ('fetch', 'fetch_busiest', 'workers', 'control')},
                         minor_faults_per_kevent=bmed('minor_faults_per_kevent'),
                         cpu_ns_per_event_runs=[x['cpu_ns_per_event'] for x in base],
                         events_per_sec_runs=[round(x['events_per_sec']) for x in base])
    r['baseline']['model_ceiling'] = model({**{k: med_role(base, k) for k in ('fetch', 'fetch_busiest', 'fetch_threads', 'workers', 'worker_threads', 'control')}, 'flush': None, 'fetch_auto': True},
                                           bmed('cpu_ns_per_event'))
    r['cpu_vs_baseline'] = round(med('cpu_ns_per_event') / bmed('cpu_ns_per_event'), 3)
    r['events_per_sec_vs_baseline'] = round(eps / bmed('events_per_sec'), 3)
    r['cpu_ns_per_event_runs'] = [x['cpu_ns_per_event'] for x in d]
    r['events_per_sec_runs'] = [round(x['events_per_sec']) for x in d]
sw = {}
for t in sweep_t:
    xs = [load(f'sweep{t}-{i}') for i in range(1, sweep_runs + 1)]
    xs = [x for x in xs if x]
    if xs:
        sw[t] = dict(events_per_sec=round(statistics.median(x['events_per_sec'] for x in xs)),
                     cpu_ns_per_event=statistics.median(x['cpu_ns_per_event'] for x in xs),
                     fetch_ns=med_role(xs, 'fetch'), fetch_busiest_ns=med_role(xs, 'fetch_busiest'),
                     workers_ns=med_role(xs, 'workers'),
                     others_cpu_cores=round(statistics.median(x['other_cpu_s'] / x['wall_s'] for x in xs), 2))
r['sweep'] = sw or None
r['sweep_exact'] = None if sweep_ok == 'null' else sweep_ok == 'true'
cm = {}
for z in compr:
    xs = [load(f'compr-{z}-{i}') for i in range(1, compr_runs + 1)]
    xs = [x for x in xs if x]
    if xs:
        cm[z] = dict(cpu_ns_per_event=statistics.median(x['cpu_ns_per_event'] for x in xs),
                     events_per_sec=round(statistics.median(x['events_per_sec'] for x in xs)),
                     fetch_ns=med_role(xs, 'fetch'), workers_ns=med_role(xs, 'workers'),
                     broker_cpu_s=statistics.median(x['broker_cpu_s'] for x in xs))
r['compression'] = cm or None
r['compression_exact'] = None if compr_ok == 'null' else compr_ok == 'true'
# (h) the floor: the same drains with every event refused before the decoder scans it
fl = [load(f'floor{i}') for i in range(1, runs + 1)]
fl = [x for x in fl if x]
if fl:
    fmed = lambda k: statistics.median(x[k] for x in fl)
    froles = {k: med_role(fl, k) for k in ('fetch', 'fetch_busiest', 'workers', 'control')}
    r['floor'] = dict(cpu_ns_per_event=fmed('cpu_ns_per_event'), events_per_sec=round(fmed('events_per_sec')),
                      roles_ns_per_event=froles,
                      cpu_ns_per_event_runs=[x['cpu_ns_per_event'] for x in fl],
                      # what the core costs inside the pipeline: the workers' CPU with it less without it
                      core_in_workers_ns=round(roles['workers'] - froles['workers'], 1)
                      if roles and roles.get('workers') is not None and froles['workers'] is not None else None,
                      share_of_drain=round(fmed('cpu_ns_per_event') / med('cpu_ns_per_event'), 3) if d else None,
                      all_refused=sys.argv[17] == 'true')
else:
    r['floor'] = None
print(json.dumps(r))
EOF
