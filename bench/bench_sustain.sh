#!/usr/bin/env bash
# bench/bench_sustain.sh — the highest rate clickstage sustains on this machine, SUS_RUNS times
# (make bench-sustain).
#
# Starts its own Kafka broker + redis-server (scripts/stack.sh in a temp dir, stopped at the
# end). Each run: a fresh 8-partition topic and Redis prefix, `clickstage --threads 2
# --flush-interval 250ms` live on it, then `clickstage-loadgen --find-sustainable` (defaults:
# steps of 20 s with 5 s warm-up, p99 bound 500 ms; SUS_ARGS adds or overrides), the daemon
# stopped after. Prints every run's table, then the figures, their median and spread
# ((max - min) / median); the plot of the median run is copied to bench/out/sustain.png.
# The LAST stdout line is one JSON object.
#   SUS_RUNS=3  SUS_ARGS=""  SUS_DAEMON_ARGS="--threads 2 --flush-interval 250ms"  KEEP=1
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
B=${BUILD:-build}
RUNS=${SUS_RUNS:-3}
DAEMON_ARGS=${SUS_DAEMON_ARGS:---threads 2 --flush-interval 250ms}
RULES=$ROOT/deploy/rules/retail.yaml
say() { printf '[%s] %s\n' "$(date +%T)" "$*"; }
die() { say "FAILED: $*"; exit 1; }
WORK=$(mktemp -d /tmp/cs-sus.XXXXXX)
STACK=$WORK/stack
DPID=
cleanup() {
  [ -n "$DPID" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
  scripts/stack.sh down "$STACK" >/dev/null 2>&1
  if [ -n "${KEEP:-}" ]; then say "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
make -s "$B/clickstage" "$B/clickstage-loadgen" >/dev/null || die "make"
BIN=$WORK/bin; mkdir -p "$BIN" "$ROOT/bench/out"
cp "$B/clickstage" "$B/clickstage-loadgen" "$BIN/" || die "binaries"
say "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), load $(cut -d' ' -f1-3 /proc/loadavg); librdkafka $(pkg-config --modversion rdkafka 2>/dev/null); commit $(git rev-parse --short HEAD 2>/dev/null)"
scripts/stack.sh up "$STACK" >"$WORK/stack-up.log" 2>&1 || { tail -20 "$WORK/stack-up.log"; die "stack up"; }
# shellcheck disable=SC1091
. "$STACK/env"
say "stack: Kafka $KAFKA_VERSION on $KAFKA_BROKERS, redis on $REDIS_PORT"
for r in $(seq 1 "$RUNS"); do
  scripts/stack.sh topic "sus$r" 8 "$STACK" retention.ms=-1 >/dev/null 2>&1 || die "topic"
  # shellcheck disable=SC2086
  "$BIN/clickstage" --brokers "$KAFKA_BROKERS" --redis "$REDIS_URL" --rules "$RULES" --http-listen "" \
    --log-format text $DAEMON_ARGS --topics "sus$r" --group "g-sus$r" --prefix "sus$r" >"$WORK/d$r.log" 2>&1 & DPID=$!
  sleep 2
  say "run $r: clickstage $DAEMON_ARGS; load $(cut -d' ' -f1-3 /proc/loadavg)"
  # shellcheck disable=SC2086
  "$BIN/clickstage-loadgen" --brokers "$KAFKA_BROKERS" --topic "sus$r" --rules "$RULES" \
    --find-sustainable --watch-redis "$REDIS_URL" --prefix "sus$r" --plot "$WORK/sus$r.png" \
    --csv "$WORK/sus$r.csv" ${SUS_ARGS:-} >"$WORK/sus$r.out" 2>"$WORK/sus$r.err" || say "run $r: no step passed"
  sed 's/^/    /' "$WORK/sus$r.out"
  kill -TERM "$DPID"; wait "$DPID" 2>/dev/null; DPID=
done
python3 - "$WORK" "$RUNS" "$ROOT/bench/out" <<'EOF'
import json, shutil, statistics, sys, os
w, runs, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
res = []
for r in range(1, runs + 1):
    try:
        res.append(json.loads(open(f'{w}/sus{r}.out').read().strip().splitlines()[-1]))
    except Exception:
        res.append({'sustainable_events_per_sec': 0, 'p99_ms_at_sustainable': 0})
figs = [x['sustainable_events_per_sec'] for x in res]
p99s = [x['p99_ms_at_sustainable'] for x in res]
med = statistics.median(figs)
spread = (max(figs) - min(figs)) / med if med else None
mid = sorted(range(runs), key=lambda i: figs[i])[runs // 2]
if os.path.exists(f'{w}/sus{mid + 1}.png'):
    shutil.copy(f'{w}/sus{mid + 1}.png', f'{out}/sustain.png')
print()
print('run  sustainable events/s  p99 ms  limited by')
for i, x in enumerate(res):
    print(f"{i + 1:3}  {x['sustainable_events_per_sec']:>20.0f}  {x['p99_ms_at_sustainable']:>6.1f}  {x.get('limited_by', '?')}")
print(f'median {med:.0f} events/s, spread (max - min) / median {spread * 100 if spread is not None else float("nan"):.1f} %')
print(json.dumps(dict(bench='sustain', runs=runs, sustainable_events_per_sec=figs,
                      p99_ms_at_sustainable=p99s, median_events_per_sec=med,
                      spread=round(spread, 3) if spread is not None else None,
                      limited_by=[x.get('limited_by') for x in res])))
EOF
