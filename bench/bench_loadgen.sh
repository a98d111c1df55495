#!/usr/bin/env bash
# bench/bench_loadgen.sh — is the load generator faster than what it tests? (make bench-loadgen)
#
# On this machine, with its own Kafka broker + redis-server (scripts/stack.sh in a temp dir,
# stopped at the end), LG_RUNS rounds of, in alternating order:
#   new   this build's clickstage-loadgen, flat out, LG_EVENTS events into a fresh 8-partition
#         topic (lz4, defaults; --threads default: one per core; --producer auto: the direct
#         producer on these PLAINTEXT brokers, LG_ARGS="--producer librdkafka" for the other)
#   old   the generator before issue 15 (LG_BASE_REV, built from git in a worktree; or
#         LG_BASE_BIN=path), the same events count into another fresh topic
#   drain `clickstage --drain --threads 2` of the new generator's topic (the events it would
#         benchmark), events / wall seconds of the whole process like bench_e2e.sh
#   mock  new and old against librdkafka's mock cluster (tests/tools/cs_mockbroker, restarted for
#         each), LG_MOCK_EVENTS events
# Figures: medians; ratios per round (same round, same machine state), then their median.
# Progress on stdout; the LAST stdout line is one JSON object.
#   LG_EVENTS=4000000 LG_MOCK_EVENTS=2000000 LG_RUNS=3 LG_BASE_REV=b7f1104 LG_ARGS="" (extra
#   loadgen arguments for the new one, e.g. "--threads 1") KEEP=1 (keep the temp dir)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
B=${BUILD:-build}
EVENTS=${LG_EVENTS:-4000000}
MOCK_EVENTS=${LG_MOCK_EVENTS:-2000000}
RUNS=${LG_RUNS:-3}
BASE_REV=${LG_BASE_REV:-b7f1104}
RULES=$ROOT/deploy/rules/retail.yaml
say() { printf '[%s] %s\n' "$(date +%T)" "$*"; }
die() { say "FAILED: $*"; exit 1; }
WORK=$(mktemp -d /tmp/cs-lgb.XXXXXX)
STACK=$WORK/stack
MOCKPID=
cleanup() {
  [ -n "$MOCKPID" ] && kill "$MOCKPID" 2>/dev/null && wait "$MOCKPID" 2>/dev/null
  scripts/stack.sh down "$STACK" >/dev/null 2>&1
  git worktree remove --force "$WORK/base" >/dev/null 2>&1
  if [ -n "${KEEP:-}" ]; then say "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

make -s "$B/clickstage" "$B/clickstage-loadgen" "$B/cs_mockbroker" >/dev/null || die "make"
BIN=$WORK/bin; mkdir -p "$BIN"
cp "$B/clickstage" "$B/clickstage-loadgen" "$B/cs_mockbroker" "$BIN/" || die "binaries"
if [ -n "${LG_BASE_BIN:-}" ]; then
  cp "$LG_BASE_BIN" "$BIN/loadgen-old" || die "LG_BASE_BIN"
else
  say "building the old generator ($BASE_REV) in a worktree"
  git worktree add --detach "$WORK/base" "$BASE_REV" >/dev/null 2>&1 || die "git worktree $BASE_REV"
  make -C "$WORK/base" -s -j2 build/clickstage-loadgen >"$WORK/base.log" 2>&1 || { tail -5 "$WORK/base.log"; die "old build"; }
  cp "$WORK/base/build/clickstage-loadgen" "$BIN/loadgen-old"
fi
say "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), load $(cut -d' ' -f1-3 /proc/loadavg); librdkafka $(pkg-config --modversion rdkafka 2>/dev/null)"
scripts/stack.sh up "$STACK" >"$WORK/stack-up.log" 2>&1 || { tail -20 "$WORK/stack-up.log"; die "stack up"; }
# shellcheck disable=SC1091
. "$STACK/env"
say "stack: Kafka $KAFKA_VERSION on $KAFKA_BROKERS, redis on $REDIS_PORT"
topic() { scripts/stack.sh topic "$1" 8 "$STACK" retention.ms=-1 >/dev/null 2>&1 || die "topic $1"; }
gen() { # NAME BINARY BROKERS TOPIC EVENTS [ARGS]: last JSON line to $WORK/NAME.json
  local name=$1 bin=$2 brokers=$3 tp=$4 n=$5; shift 5
  "$bin" --brokers "$brokers" --topic "$tp" --events "$n" --rules "$RULES" --progress 0 "$@" \
    >"$WORK/$name.log" 2>&1 || { tail -3 "$WORK/$name.log"; die "$name"; }
  tail -1 "$WORK/$name.log" >"$WORK/$name.json"
  say "    $name: $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["events_per_sec"], "events/s", d.get("producer", ""))' "$WORK/$name.json")"
}
drain() { # NAME TOPIC
  local t0 t1
  t0=$(date +%s%N)
  "$BIN/clickstage" --drain --threads 2 --http-listen "" --brokers "$KAFKA_BROKERS" --redis "$REDIS_URL" \
    --rules "$RULES" --topics "$2" --group "g-$1" --prefix "$1" --log-format json >"$WORK/$1.log" 2>&1 || die "drain $1"
  t1=$(date +%s%N)
  python3 -c 'import json,sys; n=int(sys.argv[2]); s=(int(sys.argv[4])-int(sys.argv[3]))/1e9; json.dump({"events":n,"seconds":s,"events_per_sec":round(n/s)}, open(sys.argv[1],"w"))' \
    "$WORK/$1.json" "$EVENTS" "$t0" "$t1"
  say "    $1 (clickstage --drain --threads 2): $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["events_per_sec"], "events/s")' "$WORK/$1.json")"
}
mock() { # NAME BINARY
  "$BIN/cs_mockbroker" clickstream:8 >"$WORK/mock.out" 2>"$WORK/mock.err" & MOCKPID=$!
  # a whole first line (the bootstrap list), not just a non-empty file
  local i; for i in $(seq 1 300); do [ -n "$(head -1 "$WORK/mock.out")" ] && break; sleep 0.1; done
  [ -n "$(head -1 "$WORK/mock.out")" ] || { cat "$WORK/mock.err"; die "cs_mockbroker did not start (after $i waits; $(kill -0 "$MOCKPID" 2>&1 && echo running || echo exited))"; }
  gen "$1" "$2" "$(head -1 "$WORK/mock.out")" clickstream "$MOCK_EVENTS"
  kill "$MOCKPID"; wait "$MOCKPID" 2>/dev/null; MOCKPID=
}

# shellcheck disable=SC2086
for r in $(seq 1 "$RUNS"); do
  say "round $r of $RUNS ($EVENTS events; mock $MOCK_EVENTS)"
  topic "n$r"; topic "o$r"
  if [ $((r % 2)) = 1 ]; then
    gen "new$r" "$BIN/clickstage-loadgen" "$KAFKA_BROKERS" "n$r" "$EVENTS" ${LG_ARGS:-}
    gen "old$r" "$BIN/loadgen-old" "$KAFKA_BROKERS" "o$r" "$EVENTS"
    drain "drain$r" "n$r"
    mock "mocknew$r" "$BIN/clickstage-loadgen"; mock "mockold$r" "$BIN/loadgen-old"
  else
    gen "old$r" "$BIN/loadgen-old" "$KAFKA_BROKERS" "o$r" "$EVENTS"
    gen "new$r" "$BIN/clickstage-loadgen" "$KAFKA_BROKERS" "n$r" "$EVENTS" ${LG_ARGS:-}
    drain "drain$r" "n$r"
    mock "mockold$r" "$BIN/loadgen-old"; mock "mocknew$r" "$BIN/clickstage-loadgen"
  fi
done
python3 - "$WORK" "$RUNS" "$EVENTS" "$MOCK_EVENTS" "$BASE_REV" <<'EOF'
import json, statistics, sys
w, runs, events, mev, rev = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
def r(name, i): return json.load(open(f'{w}/{name}{i}.json'))['events_per_sec']
rows = []
for i in range(1, runs + 1):
    rows.append(dict(new=r('new', i), old=r('old', i), drain=r('drain', i), mocknew=r('mocknew', i), mockold=r('mockold', i)))
med = lambda k: statistics.median(x[k] for x in rows)
ratio = lambda a, b: statistics.median(x[a] / x[b] for x in rows)
print()
print(f"{'events/s (median of %d rounds)' % runs:44} {'median':>10} {'min':>10} {'max':>10}")
for k, label in [('new', 'new generator -> local broker'), ('old', f'old generator ({rev}) -> local broker'),
                 ('drain', 'clickstage --drain --threads 2'), ('mocknew', 'new generator -> mock cluster'),
                 ('mockold', f'old generator ({rev}) -> mock cluster')]:
    v = [x[k] for x in rows]
    print(f'{label:44} {statistics.median(v):>10.0f} {min(v):>10.0f} {max(v):>10.0f}')
print()
print(f"new generator / drain (same round, median):   {ratio('new', 'drain'):.2f}")
print(f"new / old generator, local broker:             {ratio('new', 'old'):.2f}")
print(f"new / old generator, mock cluster:             {ratio('mocknew', 'mockold'):.2f}")
print(json.dumps(dict(bench='loadgen', events=events, mock_events=mev, runs=runs, base=rev,
                      new_events_per_sec=med('new'), old_events_per_sec=med('old'),
                      drain_events_per_sec=med('drain'), mock_new_events_per_sec=med('mocknew'),
                      mock_old_events_per_sec=med('mockold'),
                      new_over_drain=round(ratio('new', 'drain'), 3), new_over_old=round(ratio('new', 'old'), 3),
                      mock_new_over_old=round(ratio('mocknew', 'mockold'), 3), rounds=rows)))
EOF
