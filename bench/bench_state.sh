#!/usr/bin/env bash
# bench_state.sh — what state snapshots cost end to end: `clickstage --drain` of the same topic
# with snapshots off (--snapshot-interval 0: only the final one), at the default 30 s, and every
# second (30x the default), runs interleaved, median of RUNS each; ratios against "off" measured
# in the same run. Optionally a second binary (BASELINE_BIN, e.g. a build of an older commit)
# drained the same way, for before/after comparisons of the consume path.
# Its own local stack (scripts/stack.sh) in a temp dir, stopped at the end.
#
#   bench/bench_state.sh            knobs: EVENTS (5000000), CUSTOMERS (1000000), RUNS (3),
#                                          PARTITIONS (8), THREADS (2), BASELINE_BIN,
#                                          RULES (deploy/rules/retail.yaml; one an older
#                                          BASELINE_BIN reads too)
# Last stdout line: one JSON object.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
B=${BUILD:-build}
EVENTS=${EVENTS:-5000000}
CUSTOMERS=${CUSTOMERS:-1000000}
RUNS=${RUNS:-3}
PARTS=${PARTITIONS:-8}
THREADS=${THREADS:-2}
RULES=${RULES:-deploy/rules/retail.yaml}
make -s "$B/clickstage" "$B/clickstage-loadgen" >/dev/null || exit 1
WORK=$(mktemp -d /tmp/cs-bstate.XXXXXX)
STACK=$WORK/stack
cleanup() { scripts/stack.sh down "$STACK" >/dev/null 2>&1; [ -n "${KEEP:-}" ] || rm -rf "$WORK"; }
trap cleanup EXIT
scripts/stack.sh up "$STACK" >"$WORK/stack.log" 2>&1 || { tail -20 "$WORK/stack.log"; exit 1; }
# shellcheck disable=SC1091
. "$STACK/env"
scripts/stack.sh topic bs "$PARTS" "$STACK" >/dev/null 2>&1
echo "producing $EVENTS events for $CUSTOMERS customers over $PARTS partitions ..."
"$B/clickstage-loadgen" --brokers "$KAFKA_BROKERS" --topic bs --events "$EVENTS" \
  --customers "$CUSTOMERS" --seed 5 --progress 0 --rules "$RULES" >"$WORK/gen.log" 2>&1 \
  || { tail -5 "$WORK/gen.log"; exit 1; }

n=0
drain() { # label binary interval -> prints "wall-seconds cpu-seconds"
  n=$((n + 1))
  local t0 t1
  t0=$(date +%s%N)
  # in a subshell whose `times` reports the daemon's own CPU (user + system): far less moved by
  # other load on the machine than the wall clock
  ( "$2" --brokers "$KAFKA_BROKERS" --redis "$REDIS_URL" --rules "$RULES" \
    --http-listen "" --drain --threads "$THREADS" --topics bs --group "bs-$n" --prefix "bs$n" \
    --snapshot-interval "$3" --log-format text >"$WORK/d$n.log" 2>&1 || { echo "drain $1 failed" >&2; tail -5 "$WORK/d$n.log" >&2; }
    times >"$WORK/t$n" )
  t1=$(date +%s%N)
  local cpu; cpu=$(sed -n 2p "$WORK/t$n" | awk '{ s = 0; for (i = 1; i <= 2; i++) { split($i, p, /[ms]/); s += p[1] * 60 + p[2] } printf "%.3f", s }')
  local snaps; snaps=$(redis-cli -p "$REDIS_PORT" --scan --pattern "bs$n:*snap:*" | wc -l)
  redis-cli -p "$REDIS_PORT" --scan --pattern "bs$n:*" | xargs -r -n 500 redis-cli -p "$REDIS_PORT" DEL >/dev/null
  awk -v a="$t0" -v b="$t1" -v c="$cpu" 'BEGIN { printf "%.3f %s\n", (b - a) / 1e9, c }'
  echo "  $1: $(awk -v a="$t0" -v b="$t1" -v e="$EVENTS" 'BEGIN { printf "%.3f s, %.0f events/s", (b - a) / 1e9, e / ((b - a) / 1e9) }'), CPU $cpu s ($snaps snapshot keys)" >&2
}
declare -A T C
labels=(off default every1s)
intervals=(0 30s 1s)
if [ -n "${BASELINE_BIN:-}" ]; then labels+=(baseline_off); intervals+=(0); fi
for r in $(seq 1 "$RUNS"); do
  echo "run $r" >&2
  for i in "${!labels[@]}"; do
    bin=$B/clickstage
    [ "${labels[$i]}" = baseline_off ] && bin=$BASELINE_BIN
    read -r w c < <(drain "${labels[$i]}" "$bin" "${intervals[$i]}")
    T[${labels[$i]}]+="$w "; C[${labels[$i]}]+="$c "
  done
done
med() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
off=$(med "${T[off]}"); def=$(med "${T[default]}"); e1=$(med "${T[every1s]}")
echo "median drain seconds: off $off, default (30 s) $def, every 1 s $e1"
json=$(awk -v e="$EVENTS" -v o="$off" -v d="$def" -v s="$e1" 'BEGIN {
  printf "{\"bench\":\"state_snapshots_e2e\",\"events\":%d,\"eps_off\":%.0f,\"eps_default\":%.0f,\"eps_every_1s\":%.0f,\"slowdown_default_pct\":%.1f,\"slowdown_every_1s_pct\":%.1f", e, e/o, e/d, e/s, (d/o-1)*100, (s/o-1)*100 }')
if [ -n "${BASELINE_BIN:-}" ]; then
  bo=$(med "${T[baseline_off]}")
  co=$(med "${C[off]}"); cb=$(med "${C[baseline_off]}")
  echo "baseline binary ($BASELINE_BIN), snapshots off: $bo s; CPU median $cb s (this build: $co s)"
  json+=$(awk -v e="$EVENTS" -v o="$off" -v b="$bo" -v co="$co" -v cb="$cb" 'BEGIN { printf ",\"eps_baseline_off\":%.0f,\"vs_baseline_pct\":%.1f,\"cpu_s_off\":%.3f,\"cpu_s_baseline_off\":%.3f,\"cpu_vs_baseline_pct\":%.1f", e/b, (o/b-1)*100, co, cb, (co/cb-1)*100 }')
fi
echo "$json,\"runs\":$RUNS,\"threads\":$THREADS,\"partitions\":$PARTS}"
